package blockdev

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/runner"
)

// sysfs is a fake /sys laid out as the kernel lays it out:
// dev/block/M:m -> ../../devices/block/<disk>[/<partition>].
type sysfs struct {
	t    *testing.T
	root string
	dirs map[string]string // device name -> its directory
}

func newSysfs(t *testing.T) *sysfs {
	return &sysfs{t: t, root: t.TempDir(), dirs: map[string]string{}}
}

// add makes device name (in disk's dir when disk is not "") with attrs.
func (s *sysfs) add(name, disk string, d Dev, attrs map[string]string) Dev {
	rel := "devices/block/" + name
	if disk != "" {
		rel = "devices/block/" + disk + "/" + name
		attrs["partition"] = "1"
	}
	dir := filepath.Join(s.root, rel)
	s.dirs[name] = dir
	attrs["dev"] = d.String()
	for k, v := range attrs {
		s.write(filepath.Join(dir, k), v+"\n")
	}
	link := filepath.Join(s.root, "dev/block", d.String())
	s.must(os.MkdirAll(filepath.Dir(link), 0o755))
	s.must(os.Symlink("../../"+rel, link))
	return d
}

// slave lists lower as a slave of upper (the kernel's symlink).
func (s *sysfs) slave(upper, lower string) {
	dir := filepath.Join(s.dirs[upper], "slaves")
	s.must(os.MkdirAll(dir, 0o755))
	s.must(os.Symlink(s.dirs[lower], filepath.Join(dir, lower)))
}

func (s *sysfs) write(p, v string) {
	s.must(os.MkdirAll(filepath.Dir(p), 0o755))
	s.must(os.WriteFile(p, []byte(v), 0o644))
}

func (s *sysfs) must(err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatal(err)
	}
}

func (s *sysfs) id(d Dev) ID {
	s.t.Helper()
	id, err := Kernel{Sys: s.root}.ByNumber(d)
	s.must(err)
	return id
}

func mnt(point, source string, d Dev) *mountinfo.Info {
	return &mountinfo.Info{Mountpoint: point, Source: source, Major: int(d.Major), Minor: int(d.Minor), Root: "/", FSType: "ext4"}
}

var (
	sda   = Dev{8, 0}
	sda1  = Dev{8, 1}
	sdb   = Dev{8, 16}
	sdb1  = Dev{8, 17}
	sdc   = Dev{8, 32}
	sdd   = Dev{8, 48}
	dm0   = Dev{253, 0}
	loopX = Dev{7, 3}
)

const lun = "naa.6001405aabbccdd"

// node: the root disk sda (sda1 /), LUN sdb+sdc (two iSCSI paths),
// multipath dm-0 over them, sdd another LUN.
func node(t *testing.T) *sysfs {
	s := newSysfs(t)
	s.add("sda", "", sda, map[string]string{"device/wwid": "t10.ATA     QEMU HARDDISK   QM00001", "ro": "0"})
	s.add("sda1", "sda", sda1, map[string]string{"ro": "0"})
	s.add("sdb", "", sdb, map[string]string{"device/wwid": strings.ToUpper(lun) + "  ", "ro": "0"})
	s.add("sdb1", "sdb", sdb1, map[string]string{})
	s.add("sdc", "", sdc, map[string]string{"device/wwid": lun, "ro": "1"})
	s.add("sdd", "", sdd, map[string]string{"device/wwid": "naa.600140511112222"})
	s.add("dm-0", "", dm0, map[string]string{"dm/uuid": "mpath-36001405aabbccdd"})
	s.slave("dm-0", "sdb")
	s.slave("dm-0", "sdc")
	s.add("loop3", "", loopX, map[string]string{"ro": "0"})
	return s
}

func TestByNumber(t *testing.T) {
	s := node(t)
	if id := s.id(sdb); id.WWID != lun || id.ReadOnly || id.Disk != nil || len(id.Slaves) != 0 {
		t.Fatalf("sdb: %+v", id)
	}
	if id := s.id(sdc); !id.ReadOnly {
		t.Fatalf("sdc ro flag lost: %+v", id)
	}
	dm := s.id(dm0)
	if dm.WWID != lun || len(dm.Slaves) != 2 || dm.Slaves[0].Dev != sdb || dm.Slaves[1].Dev != sdc {
		t.Fatalf("dm-0: %+v", dm)
	}
	if p := s.id(sdb1); p.Disk == nil || p.Disk.Dev != sdb || p.Disk.WWID != lun {
		t.Fatalf("sdb1's disk: %+v", p)
	}
	if _, err := (Kernel{Sys: s.root}).ByNumber(Dev{9, 9}); !errors.Is(err, errkind.NotFound) {
		t.Fatalf("unknown device: %v", err)
	}
}

// baseline mounts on every node: nothing of the volume's storage.
func baseline() []*mountinfo.Info {
	return []*mountinfo.Info{
		mnt("/", "/dev/sda1", sda1),
		mnt("/proc", "proc", Dev{0, 21}),
		mnt("/run", "tmpfs", Dev{0, 23}),
		mnt("/mnt/other", "/dev/sdd", sdd),
	}
}

func inUse(t *testing.T, s *sysfs, self Dev, mounts []*mountinfo.Info, except string) (*mountinfo.Info, error) {
	t.Helper()
	run := &runner.Script{Strict: true}
	m, err := Kernel{Sys: s.root, Run: run}.InUse(context.Background(), s.id(self), "", mounts, except)
	if len(run.Calls) != 0 {
		t.Fatalf("ran tools with no filesystem UUID to compare: %v", run.Lines())
	}
	return m, err
}

func wantBusy(t *testing.T, m *mountinfo.Info, err error, point, why string) {
	t.Helper()
	if !errors.Is(err, errkind.Busy) || m == nil || m.Mountpoint != point {
		t.Fatalf("want busy at %s, got %v at %+v", point, err, m)
	}
	for _, w := range []string{point, why, "Unmount"} {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("message lacks %q: %v", w, err)
		}
	}
}

func TestFreeDevice(t *testing.T) {
	s := node(t)
	for _, self := range []Dev{sdb, dm0, loopX} {
		if m, err := inUse(t, s, self, baseline(), "/g"); m != nil || err != nil {
			t.Fatalf("%s reported in use: %v %+v", self, err, m)
		}
	}
}

func TestSameDevice(t *testing.T) {
	s := node(t)
	ms := append(baseline(), mnt("/mnt/x", "/dev/sdb", sdb))
	m, err := inUse(t, s, sdb, ms, "/g")
	wantBusy(t, m, err, "/mnt/x", "same block device")
}

// The volume's own global mount and its pod binds are not "in use"; a
// foreign mount of the same device elsewhere is found even then only when
// except holds another device.
func TestExceptAndItsBinds(t *testing.T) {
	s := node(t)
	g := "/var/lib/kubelet/plugins/flexblock/mounts/v"
	ms := append(baseline(), mnt(g, "/dev/sdb", sdb), mnt("/var/lib/kubelet/pods/p1/volumes/v", "/dev/sdb", sdb))
	if m, err := inUse(t, s, sdb, ms, g); m != nil || err != nil {
		t.Fatalf("own global mount and bind: %v %+v", err, m)
	}
	ms = append(baseline(), mnt(g, "/dev/sdd", sdd), mnt("/mnt/x", "/dev/sdb", sdb))
	m, err := inUse(t, s, sdb, ms, g)
	wantBusy(t, m, err, "/mnt/x", "same block device")
}

// One LUN through two paths: sdc mounted, sdb asked for.
func TestSameLUNAnotherPath(t *testing.T) {
	s := node(t)
	m, err := inUse(t, s, sdb, append(baseline(), mnt("/mnt/x", "/dev/sdc", sdc)), "/g")
	wantBusy(t, m, err, "/mnt/x", "same LUN (WWID "+lun+")")
}

func TestMultipath(t *testing.T) {
	s := node(t)
	// dm-0 over sdb mounted; sdb asked for.
	m, err := inUse(t, s, sdb, append(baseline(), mnt("/mnt/mp", "/dev/mapper/mpatha", dm0)), "/g")
	wantBusy(t, m, err, "/mnt/mp", "built on 8:16")
	// sdc (a slave) mounted directly; dm-0 asked for.
	m, err = inUse(t, s, dm0, append(baseline(), mnt("/mnt/x", "/dev/sdc", sdc)), "/g")
	wantBusy(t, m, err, "/mnt/x", "built on that mount's device")
	// A third path the map does not list yet: caught by the map's WWID.
	s.add("sde", "", Dev{8, 64}, map[string]string{"device/wwid": lun})
	m, err = inUse(t, s, Dev{8, 64}, append(baseline(), mnt("/mnt/mp", "/dev/dm-0", dm0)), "/g")
	wantBusy(t, m, err, "/mnt/mp", "same LUN")
}

// A partition of the device is mounted: it is the same storage.
func TestPartitionOfDevice(t *testing.T) {
	s := node(t)
	m, err := inUse(t, s, sdb, append(baseline(), mnt("/mnt/p", "/dev/sdb1", sdb1)), "/g")
	wantBusy(t, m, err, "/mnt/p", "built on 8:16")
}

// blkidAnswers answers blkid -o export from uuids (by node) as blkid
// does: devices without a UUID print nothing, and the run stops (exit 2)
// at the first device listed in unreadable.
func blkidAnswers(uuids map[string]string, unreadable ...string) func(runner.Cmd) (runner.Result, error) {
	return func(c runner.Cmd) (runner.Result, error) {
		var b strings.Builder
		code := 0
		for _, dev := range c.Args[slices.Index(c.Args, "--")+1:] {
			if slices.Contains(unreadable, dev) {
				code = 2
				break
			}
			if u, ok := uuids[dev]; ok {
				fmt.Fprintf(&b, "DEVNAME=%s\nUUID=%s\n\n", dev, u)
			} else {
				code = 2
			}
		}
		res := runner.Result{Stdout: []byte(b.String()), ExitCode: code}
		if code != 0 {
			return res, &runner.ExitError{Cmd: c.String(), Code: code}
		}
		return res, nil
	}
}

// blkid gives up at the first device it cannot open: the devices after it
// are still probed (one at a time).
func TestUUIDsPastAnUnreadableDevice(t *testing.T) {
	run := (&runner.Script{Strict: true}).OnFunc("blkid", blkidAnswers(map[string]string{"/dev/b": "ub", "/dev/d": "ud"}, "/dev/a"))
	got, err := Kernel{Run: run}.uuids(context.Background(), []string{"/dev/a", "/dev/b", "/dev/c", "/dev/d"})
	if err != nil || len(got) != 2 || got["/dev/b"] != "ub" || got["/dev/d"] != "ud" {
		t.Fatalf("got %v %v after %q", got, err, run.Lines())
	}
	run = (&runner.Script{Strict: true}).OnFunc("blkid", blkidAnswers(map[string]string{"/dev/b": "ub"}))
	if _, err := (Kernel{Run: run}).uuids(context.Background(), []string{"/dev/b"}); err != nil || len(run.Calls) != 1 {
		t.Fatalf("complete run repeated: %q %v", run.Lines(), err)
	}
}

// devNodes makes real block device nodes (mknod: root only) so the names
// in mount sources can be checked against their numbers.
func devNodes(t *testing.T, nodes map[string]Dev) string {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mknod device nodes")
	}
	dir := t.TempDir()
	for name, d := range nodes {
		if err := unix.Mknod(filepath.Join(dir, name), unix.S_IFBLK|0o600, int(unix.Mkdev(d.Major, d.Minor))); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The same filesystem on another device with no WWID (two loop devices
// over one file, an rbd image mapped twice): the filesystem UUID is the
// only thing that tells.
func TestSameFilesystemUUID(t *testing.T) {
	s := node(t)
	loopY := s.add("loop4", "", Dev{7, 4}, map[string]string{})
	dev := devNodes(t, map[string]Dev{"sda1": sda1, "sdd": sdd, "loop4": loopY, "liar": sdb})
	ms := []*mountinfo.Info{
		mnt("/", dev+"/sda1", sda1),
		mnt("/mnt/other", dev+"/sdd", sdd),
		mnt("/mnt/lie", dev+"/liar", loopY), // a source name that is not its device
		mnt("/mnt/y", dev+"/loop4", loopY),
		mnt("/run", "tmpfs", Dev{0, 23}),
	}
	run := (&runner.Script{Strict: true}).OnFunc("blkid", blkidAnswers(map[string]string{
		dev + "/sda1": "root-uuid", dev + "/sdd": "other-uuid", dev + "/loop4": "vol-uuid",
	}))
	k := Kernel{Sys: s.root, DevDir: dev, Run: run}
	m, err := k.InUse(context.Background(), s.id(loopX), "vol-uuid", ms, "/g")
	wantBusy(t, m, err, "/mnt/lie", "same filesystem (UUID vol-uuid)")
	if lines := run.Lines(); len(lines) != 1 || strings.Contains(lines[0], "liar") {
		t.Fatalf("want one blkid run over verified nodes, got %q", lines)
	}
	if m, err := k.InUse(context.Background(), s.id(loopX), "new-uuid", ms, "/g"); m != nil || err != nil {
		t.Fatalf("different UUID: %v %+v", err, m)
	}
	// A device the kernel holds read-only (an RBD snapshot of a mounted
	// image) shares the UUID but cannot write: allowed.
	ro := s.id(loopX)
	ro.ReadOnly = true
	if m, err := k.InUse(context.Background(), ro, "vol-uuid", ms, "/g"); m != nil || err != nil {
		t.Fatalf("read-only device with the same UUID: %v %+v", err, m)
	}
	k.MaxProbes = 2
	if _, err := k.InUse(context.Background(), s.id(loopX), "vol-uuid", ms, "/g"); !errors.Is(err, errkind.Timeout) {
		t.Fatalf("over the probe bound: %v", err)
	}
	k.Run = (&runner.Script{}).On("blkid", "", 4)
	if _, err := k.InUse(context.Background(), s.id(loopX), "vol-uuid", ms, "/g"); err == nil {
		t.Fatal("a failing blkid was taken as 'no match'")
	}
}

func TestIdentifyRefusesNonBlock(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f, "/dev/null"} {
		if _, err := (Kernel{}).Identify(p); !errors.Is(err, errkind.Mismatch) {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if _, err := (Kernel{}).Identify(f + "-missing"); !errors.Is(err, errkind.NotFound) {
		t.Fatalf("missing: %v", err)
	}
}

func TestParseUUIDs(t *testing.T) {
	got := parseUUIDs("DEVNAME=/dev/a\nUUID=1\n\nDEVNAME=/dev/b\n\nDEVNAME=/dev/c\nUUID=3\n")
	if len(got) != 2 || got["/dev/a"] != "1" || got["/dev/c"] != "3" {
		t.Fatalf("%v", got)
	}
}

// Free reads the mount table it is given and identifies the device by its
// node: sdb asked for while sdc (same LUN) is mounted is refused; with
// only its own global mount and that mount's pod bind, it is free.
func TestFree(t *testing.T) {
	s := node(t)
	dev := devNodes(t, map[string]Dev{"sdb": sdb, "sdc": sdc})
	table := filepath.Join(t.TempDir(), "mountinfo")
	write := func(lines ...string) {
		if err := os.WriteFile(table, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root := "20 1 8:1 / / rw - ext4 /dev/sda1 rw"
	write(root, "30 20 8:32 / /mnt/x rw - ext4 "+dev+"/sdc rw")
	run := (&runner.Script{Strict: true}).OnFunc("blkid", blkidAnswers(map[string]string{}))
	k := Kernel{Sys: s.root, DevDir: dev, MountInfo: table, Run: run}
	err := k.Free(context.Background(), dev+"/sdb", "/g")
	if !errors.Is(err, errkind.Busy) || !strings.Contains(err.Error(), "/mnt/x") {
		t.Fatalf("same LUN mounted: %v", err)
	}
	write(root, "30 20 8:16 / /g rw - ext4 "+dev+"/sdb rw", "31 20 8:16 / /pods/p/vol rw - ext4 "+dev+"/sdb rw")
	if err := k.Free(context.Background(), dev+"/sdb", "/g"); err != nil {
		t.Fatalf("own global mount and bind: %v", err)
	}
	if err := k.Free(context.Background(), table, "/g"); !errors.Is(err, errkind.Mismatch) {
		t.Fatalf("not a device: %v", err)
	}
}
