package blockdev

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/moby/sys/mountinfo"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/runner"
)

// FSUUID returns the filesystem UUID on dev ("" when it has none: blank,
// or a signature without a UUID), probed by blkid in low-level mode (no
// cache), bounded by the runner.
func (k Kernel) FSUUID(ctx context.Context, dev string) (string, error) {
	m, err := k.uuids(ctx, []string{dev})
	return m[dev], err
}

// uuids probes devs for their filesystem UUIDs; devices without one are
// absent. One blkid run covers them all, but blkid gives up at the first
// device it cannot open, so when the run did not report every device the
// missing ones are probed one at a time. A run that fails otherwise (or
// times out) is an error: the caller cannot tell what it missed.
func (k Kernel) uuids(ctx context.Context, devs []string) (map[string]string, error) {
	found, complete, err := k.probe(ctx, devs)
	if err != nil || complete || len(devs) == 1 {
		return found, err
	}
	for _, d := range devs {
		if _, ok := found[d]; ok {
			continue
		}
		one, _, err := k.probe(ctx, []string{d})
		if err != nil {
			return nil, err
		}
		maps.Copy(found, one)
	}
	return found, nil
}

// probe runs blkid once over devs; complete means it found a UUID on each.
func (k Kernel) probe(ctx context.Context, devs []string) (map[string]string, bool, error) {
	args := append([]string{"-p", "-s", "UUID", "-o", "export", "--"}, devs...)
	res, err := k.Run.Run(ctx, runner.Cmd{Name: "blkid", Args: args, Quiet: true})
	// 2: nothing with a UUID on some device, or one it could not open;
	// 8: ambivalent signatures (format refuses such a device anyway).
	if code := runner.ExitCode(err); err != nil && code != 2 && code != 8 {
		return nil, false, fmt.Errorf("filesystem UUIDs: %w", err)
	}
	found := parseUUIDs(string(res.Stdout))
	return found, err == nil && len(found) == len(devs), nil
}

// parseUUIDs reads blkid's export blocks ("DEVNAME=...", "UUID=...").
func parseUUIDs(out string) map[string]string {
	m := map[string]string{}
	dev := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "DEVNAME":
			dev = v
		case "UUID":
			if dev != "" && v != "" {
				m[dev] = v
			}
		}
	}
	return m
}

// InUse returns the first mount in mounts that already uses the storage
// behind self: the same device, a device on the same LUN (WWID), a
// device-mapper device built on self or one self is built on, or (when
// uuid is not "" and self can be written) a filesystem with the same UUID
// on another device (one LUN through two paths that carry no WWID, an rbd
// image mapped twice).
// The mount at except (the volume's own global mount) and the other
// mounts of its filesystem are skipped when except holds self. The error
// is errkind.Busy and says which mount, why, and what to do.
func (k Kernel) InUse(ctx context.Context, self ID, uuid string, mounts []*mountinfo.Info, except string) (*mountinfo.Info, error) {
	c := &check{k: k, self: self, ids: map[Dev]*ID{}}
	others := c.others(mounts, except)
	for _, m := range others {
		if why := c.shares(m); why != "" {
			return m.Info, c.busy(m.Info, why)
		}
	}
	// The same filesystem on another device is refused only when this
	// device can be written: a device the kernel holds read-only (an RBD
	// snapshot, a read-only map) cannot corrupt the other mount, even with
	// a journal to replay, so a snapshot of a mounted image stays usable.
	if uuid == "" || self.ReadOnly {
		return nil, nil
	}
	return c.sameUUID(ctx, uuid, others)
}

// check holds one InUse call's state; ids caches sysfs reads per device.
type check struct {
	k    Kernel
	self ID
	ids  map[Dev]*ID
}

// mounted is a mount and the block device it is on (zero when none).
type mounted struct {
	*mountinfo.Info
	dev Dev
}

// others drops the mount(s) at except, and every mount of except's
// filesystem when that is self's (its pod binds), and pairs the rest with
// their devices.
func (c *check) others(mounts []*mountinfo.Info, except string) []mounted {
	var at *mountinfo.Info
	for _, m := range mounts {
		if m.Mountpoint == except {
			at = m
		}
	}
	ours := at != nil && c.k.devOf(at) == c.self.Dev
	var out []mounted
	for _, m := range mounts {
		sameFS := ours && m.Major == at.Major && m.Minor == at.Minor
		if m.Mountpoint != except && !sameFS {
			out = append(out, mounted{m, c.k.devOf(m)})
		}
	}
	return out
}

// devOf is the block device a mount is on: its st_dev, or for a
// filesystem with an anonymous st_dev (major 0: btrfs) its source node.
func (k Kernel) devOf(m *mountinfo.Info) Dev {
	if m.Major != 0 {
		return Dev{uint32(m.Major), uint32(m.Minor)}
	}
	if k.isNode(m.Source) {
		if d, err := Number(m.Source); err == nil {
			return d
		}
	}
	return Dev{}
}

// isNode tells whether p names something in the device directory (only
// those are stat'ed: a mount's source may name anything, even a path on a
// hung network filesystem).
func (k Kernel) isNode(p string) bool {
	return strings.HasPrefix(p, k.devRoot()+"/")
}

func (k Kernel) devRoot() string {
	if k.DevDir == "" {
		return "/dev"
	}
	return k.DevDir
}

// shares says how m's device shares self's storage, or "".
func (c *check) shares(m mounted) string {
	d := m.dev
	switch {
	case d == Dev{}:
		return ""
	case d == c.self.Dev:
		return "it is the same block device"
	case slices.Contains(c.self.stack(), d):
		return fmt.Sprintf("%s is built on that mount's device", c.self.Dev)
	}
	id := c.id(d)
	if slices.Contains(id.stack(), c.self.Dev) {
		return fmt.Sprintf("that mount's device %s is built on %s (device-mapper or partition)", d, c.self.Dev)
	}
	for _, w := range c.self.wwids() {
		if slices.Contains(id.wwids(), w) {
			return fmt.Sprintf("its device %s is the same LUN (WWID %s) reached through another path", d, w)
		}
	}
	return ""
}

// id identifies d once per call; a device sysfs does not know is just its
// number (nothing else can be compared).
func (c *check) id(d Dev) *ID {
	if id, ok := c.ids[d]; ok {
		return id
	}
	id, err := c.k.ByNumber(d)
	if err != nil {
		id = ID{Dev: d}
	}
	c.ids[d] = &id
	return &id
}

// sameUUID probes, in one bounded blkid run, the devices of the other
// block-device mounts and returns the first mount whose filesystem UUID
// is uuid.
func (c *check) sameUUID(ctx context.Context, uuid string, mounts []mounted) (*mountinfo.Info, error) {
	paths := map[Dev]string{}
	var list []string
	for _, m := range mounts {
		d := m.dev
		if paths[d] != "" || d == (Dev{}) || d == c.self.Dev {
			continue
		}
		// Another mount of d may name a node that really is d.
		if p := c.k.nodeOf(m.Source, d); p != "" {
			paths[d] = p
			list = append(list, p)
		}
	}
	if len(list) == 0 {
		return nil, nil
	}
	if max := c.k.maxProbes(); len(list) > max {
		return nil, errkind.Errorf(errkind.Timeout, "%d mounted block devices to check for filesystem UUID %s, more than the bound of %d: refusing rather than checking some", len(list), uuid, max)
	}
	found, err := c.k.uuids(ctx, list)
	if err != nil {
		return nil, err
	}
	for _, m := range mounts {
		if p := paths[m.dev]; p != "" && found[p] == uuid {
			return m.Info, c.busy(m.Info, fmt.Sprintf("its device %s holds the same filesystem (UUID %s): one storage reached through two devices", p, uuid))
		}
	}
	return nil, nil
}

// nodeOf is a device node for d that blkid can open: the mount's source
// or <dev>/block/M:m, whichever really is d (names are checked, not
// trusted); "" when neither is.
func (k Kernel) nodeOf(source string, d Dev) string {
	for _, p := range []string{source, k.devRoot() + "/block/" + d.String()} {
		if k.isNode(p) {
			if got, err := Number(p); err == nil && got == d {
				return p
			}
		}
	}
	return ""
}

func (k Kernel) maxProbes() int {
	if k.MaxProbes > 0 {
		return k.MaxProbes
	}
	return DefaultMaxProbes
}

func (c *check) busy(m *mountinfo.Info, why string) error {
	return errkind.Errorf(errkind.Busy,
		"device %s is already in use: %s is mounted from %s and %s; two mounts of one storage corrupt it. Unmount %s first (or use the volume that mounts it); if this device is a copy (clone, snapshot) of that filesystem, give it a new UUID (tune2fs -U random, xfs_admin -U generate)",
		c.self.Dev, m.Mountpoint, m.Source, why, m.Mountpoint)
}

// Free is the lifecycle's check before a device is checked, formatted or
// mounted at global (volume.Lifecycle.Free): it identifies dev from the
// kernel, probes its filesystem UUID, reads the mount table (and those of
// the node's other mount namespaces, foreignMounts) and refuses
// (errkind.Busy) when another mount already uses the same storage.
func (k Kernel) Free(ctx context.Context, dev, global string) error {
	self, err := k.Identify(dev)
	if err != nil {
		return err
	}
	uuid, err := k.FSUUID(ctx, dev)
	if err != nil {
		return err
	}
	mounts, err := k.mounts()
	if err != nil {
		return err
	}
	foreign, err := k.foreignMounts(self.Dev)
	if err != nil {
		return err
	}
	_, err = k.InUse(ctx, self, uuid, append(mounts, foreign...), global)
	return err
}

// mounts reads the mount table (k.MountInfo, or this process's).
func (k Kernel) mounts() ([]*mountinfo.Info, error) {
	if k.MountInfo == "" {
		return mountinfo.GetMounts(nil)
	}
	f, err := os.Open(k.MountInfo)
	if err != nil {
		return nil, fmt.Errorf("mount table: %w", err)
	}
	defer f.Close()
	return mountinfo.GetMountsFromReader(f, nil)
}
