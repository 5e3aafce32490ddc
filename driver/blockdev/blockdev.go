// Package blockdev tells what a block device is from the kernel (its
// number, the LUN behind it, what it is built on), never from its name, and
// whether the storage behind it is already mounted somewhere on the node:
// the same device, the same LUN through another path, a device-mapper
// device over it (or under it), or the same filesystem by its UUID. Two
// read-write mounts of one filesystem through two devices corrupt it.
package blockdev

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/runner"
)

// Dev is a block device number.
type Dev struct{ Major, Minor uint32 }

func (d Dev) String() string { return fmt.Sprintf("%d:%d", d.Major, d.Minor) }

// ID is what the kernel says a block device is.
type ID struct {
	Dev Dev
	// WWID is the LUN's world-wide identifier (SCSI VPD 0x83 or NVMe),
	// normalized ("naa.6001405..."); for a multipath map, its LUN's. Empty
	// when the device has none (loop, rbd, virtio).
	WWID string
	// DMUUID is the device-mapper uuid ("mpath-3600...", "LVM-..."), if dm.
	DMUUID string
	// Slaves are the devices a device-mapper device is built on.
	Slaves []ID
	// Disk is the whole disk of a partition.
	Disk *ID
	// ReadOnly is the kernel's ro flag for the device.
	ReadOnly bool
}

// Kernel reads identities from sysfs and probes filesystems with blkid.
type Kernel struct {
	// Sys is where sysfs is mounted; "" means /sys. Tests use a fake tree.
	Sys string
	// DevDir is where device nodes live; "" means /dev. Only mount sources
	// under it are looked at.
	DevDir string
	// MountInfo is the mount table Free reads: "" for this process's,
	// /proc/1/mountinfo when the tools run in the host's namespace.
	MountInfo string
	// Run runs blkid (FSUUID, InUse's filesystem UUID check).
	Run runner.Runner
	// MaxProbes bounds how many other mounted devices InUse probes for
	// their filesystem UUID in one call; 0 means DefaultMaxProbes.
	MaxProbes int
}

// DefaultMaxProbes bounds the filesystem UUID probes of one InUse call
// (one blkid run for all of them).
const DefaultMaxProbes = 256

// maxDepth bounds how deep a device stack (dm over dm over a partition)
// is followed.
const maxDepth = 8

// Identify stats devPath (a symlink such as /dev/disk/by-path/... is
// followed: only the number it leads to counts) and reads the device's
// identity from sysfs. A path that is not a block device is refused.
func (k Kernel) Identify(devPath string) (ID, error) {
	d, err := Number(devPath)
	if err != nil {
		return ID{}, err
	}
	return k.ByNumber(d)
}

// Number returns the device number of the block device node at path.
func Number(path string) (Dev, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return Dev{}, errkind.Errorf(errkind.NotFound, "device %s does not exist: %w", path, fs.ErrNotExist)
		}
		return Dev{}, fmt.Errorf("stat device %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return Dev{}, errkind.Errorf(errkind.Mismatch, "%s is not a block device", path)
	}
	return Dev{unix.Major(st.Rdev), unix.Minor(st.Rdev)}, nil
}

// DeviceNumber is Number as volume.Lifecycle.DeviceNumber takes it.
func DeviceNumber(dev string) (major, minor int, err error) {
	d, err := Number(dev)
	return int(d.Major), int(d.Minor), err
}

// ByNumber reads device d's identity from sysfs (/sys/dev/block/M:m).
func (k Kernel) ByNumber(d Dev) (ID, error) {
	return k.byNumber(d, maxDepth)
}

func (k Kernel) byNumber(d Dev, depth int) (ID, error) {
	dir := k.devDir(d)
	if _, err := os.Stat(dir); err != nil {
		return ID{}, errkind.Errorf(errkind.NotFound, "block device %s is not in sysfs (%s): %w", d, dir, err)
	}
	id := ID{Dev: d, ReadOnly: k.read(dir, "ro") == "1", DMUUID: k.read(dir, "dm/uuid")}
	id.WWID = wwid(k.read(dir, "device/wwid"), k.read(dir, "wwid"), id.DMUUID)
	if depth == 0 {
		return id, nil
	}
	var err error
	if id.Slaves, err = k.slaves(dir, depth-1); err != nil {
		return ID{}, err
	}
	if _, err := os.Stat(dir + "/partition"); err == nil {
		// The partition's directory sits in its disk's: ".." is resolved by
		// the kernel after the /sys/dev/block symlink, so no filepath.Join.
		disk, err := k.relative(dir+"/../dev", depth-1)
		if err != nil {
			return ID{}, err
		}
		id.Disk = &disk
	}
	return id, nil
}

func (k Kernel) devDir(d Dev) string {
	sys := k.Sys
	if sys == "" {
		sys = "/sys"
	}
	return filepath.Join(sys, "dev", "block", d.String())
}

// slaves identifies the devices listed in dir/slaves.
func (k Kernel) slaves(dir string, depth int) ([]ID, error) {
	ents, err := os.ReadDir(dir + "/slaves")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s/slaves: %w", dir, err)
	}
	var out []ID
	for _, e := range ents {
		s, err := k.relative(dir+"/slaves/"+e.Name()+"/dev", depth)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// relative identifies the device whose sysfs "dev" file is at devFile.
func (k Kernel) relative(devFile string, depth int) (ID, error) {
	b, err := os.ReadFile(devFile)
	if err != nil {
		return ID{}, fmt.Errorf("read %s: %w", devFile, err)
	}
	d, err := parseDev(strings.TrimSpace(string(b)))
	if err != nil {
		return ID{}, fmt.Errorf("%s: %w", devFile, err)
	}
	return k.byNumber(d, depth)
}

func parseDev(s string) (Dev, error) {
	ma, mi, ok := strings.Cut(s, ":")
	major, err1 := strconv.ParseUint(ma, 10, 32)
	minor, err2 := strconv.ParseUint(mi, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return Dev{}, fmt.Errorf("not a device number: %q", s)
	}
	return Dev{uint32(major), uint32(minor)}, nil
}

// read returns a sysfs attribute, trimmed, or "" when absent.
func (k Kernel) read(dir, name string) string {
	b, err := os.ReadFile(dir + "/" + name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// wwid normalizes a LUN identity so the SCSI disk's ("naa.6001405...")
// and its multipath map's ("mpath-36001405...": scsi_id's designator type
// digit, 3 for NAA, 2 for EUI-64, then the hex) compare equal.
func wwid(scsi, nvme, dmUUID string) string {
	for _, w := range []string{scsi, nvme} {
		if w != "" {
			return strings.ToLower(strings.Join(strings.Fields(w), " "))
		}
	}
	mp, ok := strings.CutPrefix(dmUUID, "mpath-")
	if !ok || len(mp) < 2 {
		return ""
	}
	switch mp[0] {
	case '3':
		return "naa." + strings.ToLower(mp[1:])
	case '2':
		return "eui." + strings.ToLower(mp[1:])
	}
	return ""
}

// stack lists d and every device it is built on (slaves, disk).
func (id ID) stack() []Dev {
	out := []Dev{id.Dev}
	for _, s := range id.lower() {
		out = append(out, s.stack()...)
	}
	return out
}

// wwids lists the LUNs under id (its own and those it is built on).
func (id ID) wwids() []string {
	var out []string
	if id.WWID != "" {
		out = append(out, id.WWID)
	}
	for _, s := range id.lower() {
		out = append(out, s.wwids()...)
	}
	return out
}

func (id ID) lower() []ID {
	if id.Disk == nil {
		return id.Slaves
	}
	return append(slices.Clone(id.Slaves), *id.Disk)
}
