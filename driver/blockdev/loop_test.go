package blockdev

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/runner"
)

// losetup attaches file (read-only with -r) and detaches it at cleanup.
func losetup(t *testing.T, file string, args ...string) string {
	t.Helper()
	out, err := exec.Command("losetup", append(append([]string{"-f", "--show"}, args...), file)...).CombinedOutput()
	if err != nil {
		t.Skipf("losetup unavailable here (%v: %s): the loop-device test needs root and /dev/loop-control", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	return dev
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

// The production case of one LUN through two paths, for real: two loop
// devices over one file, one mounted. The other has its own number and no
// WWID; only the filesystem UUID shows it is the same storage.
func TestTwoLoopDevicesOneFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices and mount")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "lun.img")
	run(t, "truncate", "-s", "64M", img)
	run(t, "mkfs.ext4", "-q", "-F", img)
	a, b := losetup(t, img), losetup(t, img)
	ro := losetup(t, img, "-r")
	mp := filepath.Join(dir, "global")
	if err := os.Mkdir(mp, 0o750); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "-t", "ext4", a, mp)
	t.Cleanup(func() { _ = exec.Command("umount", mp).Run() })

	k := Kernel{Run: &runner.Exec{Dir: t.TempDir(), Timeout: func(string) time.Duration { return 20 * time.Second }}}
	idA, idB := identify(t, k, a), identify(t, k, b)
	if idA.Dev == idB.Dev || idA.Dev.Major != 7 || idA.ReadOnly || idA.WWID != "" {
		t.Fatalf("loop identities: %+v %+v", idA, idB)
	}
	if idRO := identify(t, k, ro); !idRO.ReadOnly {
		t.Fatalf("losetup -r device not read-only: %+v", idRO)
	}
	ctx := context.Background()
	uuid, err := k.FSUUID(ctx, b)
	if err != nil || uuid == "" {
		t.Fatalf("FSUUID(%s) = %q, %v", b, uuid, err)
	}
	mounts, err := mountinfo.GetMounts(nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	m, err := k.InUse(ctx, idB, uuid, mounts, filepath.Join(dir, "other-global"))
	t.Logf("InUse over %d mounts with a UUID probe: %s", len(mounts), time.Since(start))
	wantBusy(t, m, err, mp, "same filesystem (UUID "+uuid+")")

	if m, err := k.InUse(ctx, idA, uuid, mounts, mp); m != nil || err != nil {
		t.Fatalf("the volume's own global mount counted as another user: %v %+v", err, m)
	}
	m, err = k.InUse(ctx, idA, uuid, mounts, filepath.Join(dir, "other-global"))
	wantBusy(t, m, err, mp, "same block device")

	start = time.Now()
	err = k.Free(ctx, b, filepath.Join(dir, "other-global"))
	t.Logf("Free (identify, blkid of the device, mount table, InUse): %s", time.Since(start))
	if !errors.Is(err, errkind.Busy) {
		t.Fatalf("Free of the second loop device: %v", err)
	}
	if err := k.Free(ctx, a, mp); err != nil {
		t.Fatalf("Free of the mounted device at its own global mount: %v", err)
	}
}

func identify(t *testing.T, k Kernel, dev string) ID {
	t.Helper()
	id, err := k.Identify(dev)
	if err != nil {
		t.Fatalf("Identify(%s): %v", dev, err)
	}
	// A symlink to the node is the same device: only numbers count.
	link := filepath.Join(t.TempDir(), "by-path")
	if err := os.Symlink(dev, link); err != nil {
		t.Fatal(err)
	}
	if viaLink, err := k.Identify(link); err != nil || viaLink.Dev != id.Dev {
		t.Fatalf("Identify via a symlink: %+v %v", viaLink, err)
	}
	return id
}

func TestFSUUIDBlank(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices")
	}
	img := filepath.Join(t.TempDir(), "blank.img")
	run(t, "truncate", "-s", "8M", img)
	dev := losetup(t, img)
	k := Kernel{Run: &runner.Exec{Dir: t.TempDir(), Timeout: func(string) time.Duration { return 20 * time.Second }}}
	uuid, err := k.FSUUID(context.Background(), dev)
	if err != nil || uuid != "" {
		t.Fatalf("blank device: %q %v", uuid, err)
	}
}
