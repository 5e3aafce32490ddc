package volume

import (
	"errors"
	"testing"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/state"
)

func (n *node) waitForAttach(dev string, kv ...string) (string, error) {
	var got string
	err := n.call(func() error {
		var err error
		got, err = n.l.WaitForAttach(ctx, opts(dev, kv...))
		return err
	})
	return got, err
}

func (n *node) mountDevice(dev, name string, kv ...string) error {
	return n.call(func() error { return n.l.MountDevice(ctx, n.dmp(name), opts(dev, kv...)) })
}

func (n *node) unmountDevice(name string) error {
	return n.call(func() error { return n.l.UnmountDevice(ctx, n.dmp(name)) })
}

// kubelet's attach flow: waitforattach (once per pod), mountdevice, its
// own binds, unmountdevice.
func TestAttachModeLifecycle(t *testing.T) {
	n := newNode(t, true)
	dev, err := n.waitForAttach("/dev/sdz")
	if err != nil || dev != "/dev/sdz" {
		t.Fatalf("waitforattach: %q %v", dev, err)
	}
	n.mnt.Devices = map[string][2]int{"/dev/sdz": {8, 16}, "/dev/other": {8, 32}}
	if dev, err = n.waitForAttach("/dev/sdz"); err != nil || dev != "/dev/sdz" || len(n.b.acquired) != 1 {
		t.Fatalf("second waitforattach acquired again: %v %v", n.b.acquired, err)
	}
	must(t, n.mountDevice("/dev/sdz", "pv1"))
	if !n.mounted(n.dmp("pv1")) || len(n.fmt.calls) != 1 {
		t.Fatal("mountdevice did not format and mount")
	}
	// kubelet retries mountdevice: no second mount.
	must(t, n.mountDevice("/dev/sdz", "pv1"))
	if n.mnt.Calls["mount"] != 1 {
		t.Fatal("retried mountdevice mounted again")
	}
	// The same storage at a second dir is a second mount: refused.
	is(t, n.mountDevice("/dev/sdz", "pv2"), errkind.Mismatch, "already mounted")
	must(t, n.unmountDevice("pv1"))
	n.clean()
	// unmountdevice again (kubelet retries): a no-op.
	must(t, n.unmountDevice("pv1"))
}

// A recorded device name the kernel has since given to another volume is
// not reused (and not released: it is the other volume's).
func TestWaitForAttachChecksIdentity(t *testing.T) {
	n := newNode(t, true)
	_, err := n.waitForAttach("/dev/sdz")
	must(t, err)
	n.b.identifyErr = errkind.Errorf(errkind.Mismatch, "/dev/sdz is now image other")
	dev, err := n.waitForAttach("/dev/sdz")
	if err != nil || dev != "/dev/sdz" || len(n.b.acquired) != 2 || len(n.b.released) != 0 {
		t.Fatalf("got %q %v, acquired %v released %v", dev, err, n.b.acquired, n.b.released)
	}
	// Any other failure to tell is an error, not a guess.
	n.b.identifyErr = errors.New("sysfs unreadable")
	if _, err := n.waitForAttach("/dev/sdz"); err == nil || len(n.b.acquired) != 2 {
		t.Fatalf("identity error ignored: %v", err)
	}
}

// mountdevice on a dir that already holds another device fails, and
// unmountdevice of such a dir leaves the other device's mount alone.
func TestDeviceMountPathHoldingAnotherDevice(t *testing.T) {
	n := newNode(t, true)
	n.mnt.Devices = map[string][2]int{"/dev/sdz": {8, 16}, "/dev/other": {8, 32}}
	must(t, n.mnt.Mount(ctx, "/dev/other", n.dmp("pv1"), "ext4", nil))
	is(t, n.mountDevice("/dev/sdz", "pv1"), errkind.Mismatch, "holds another device")
	is(t, n.unmountDevice("pv1"), errkind.Mismatch, "did not mount")
	if !n.mounted(n.dmp("pv1")) || len(n.b.released) != 0 {
		t.Fatal("tore down another device's mount")
	}
	// A record that names the dir, but whose device is not the one
	// mounted there (or is gone), does not tear that mount down either.
	rec := n.record("/dev/sdz")
	rec.GlobalMount = n.dmp("pv1")
	must(t, n.recs.Save(rec))
	is(t, n.unmountDevice("pv1"), errkind.Mismatch, "holds another device")
	rec.Device = "/dev/gone"
	must(t, n.recs.Save(rec))
	if err := n.unmountDevice("pv1"); err == nil || !n.mounted(n.dmp("pv1")) || len(n.b.released) != 0 {
		t.Fatalf("unmountdevice without a way to check: %v", err)
	}
}

func TestAttachModeFailures(t *testing.T) {
	n := newNode(t, true)
	n.b.acquireErr = errkind.Errorf(errkind.NotFound, "no such image")
	_, err := n.waitForAttach("/dev/sdz")
	is(t, err, errkind.NotFound, "no such image")
	if n.recs.Len() != 0 {
		t.Fatal("record left after a failed acquire")
	}
	is(t, n.l.MountDevice(ctx, "/tmp/x", opts("/dev/sdz")), errkind.Invalid, "device mount path")
	is(t, n.l.UnmountDevice(ctx, "/tmp/x"), errkind.Invalid, "device mount path")
	n.b.acquireErr = nil
	n.fmt.err = errkind.Errorf(errkind.NotBlank, "holds data")
	is(t, n.mountDevice("/dev/sdz", "pv1"), errkind.NotBlank, "holds data")
	if n.mounted(n.dmp("pv1")) {
		t.Fatal("mounted a refused device")
	}
	// A crash right after mountdevice's mount: the retry and the
	// unmountdevice still converge.
	n.fmt.err = nil
	n.crashAt = StepAfterGlobalMount
	if err := n.mountDevice("/dev/sdz", "pv1"); err != errCrash {
		t.Fatalf("no crash: %v", err)
	}
	n.mnt.Devices["/dev/sdz"] = [2]int{250, 1}
	must(t, n.mountDevice("/dev/sdz", "pv1"))
	must(t, n.unmountDevice("pv1"))
	n.clean()
}

// unmountdevice of a dir flexblock has no record of mounting leaves its
// mount alone (every flexblock mount is recorded before it is made).
func TestUnmountDeviceWithoutRecord(t *testing.T) {
	n := newNode(t, true)
	must(t, n.unmountDevice("pv1"))
	must(t, n.mnt.Mount(ctx, "/dev/sdz", n.dmp("pv1"), "ext4", nil))
	is(t, n.unmountDevice("pv1"), errkind.Mismatch, "did not mount")
	if !n.mounted(n.dmp("pv1")) || len(n.b.released) != 0 {
		t.Fatal("unmounted a mount flexblock did not make")
	}
}

func TestExpandFS(t *testing.T) {
	for _, fs := range []struct{ fsType, tool string }{{"ext4", "resize2fs /dev/sdz"}, {"xfs", "xfs_growfs -d "}, {"btrfs", "btrfs filesystem resize max "}} {
		n := newNode(t, false)
		is(t, n.l.ExpandFS(ctx, opts("/dev/sdz"), 1<<30), errkind.NotFound, "not mounted")
		must(t, n.mount("/dev/sdz", "a", "fsType", fs.fsType))
		n.run.On(fs.tool, "", 0)
		must(t, n.l.ExpandFS(ctx, opts("/dev/sdz", "fsType", fs.fsType), 1<<30))
		if len(n.b.expanded) != 1 || n.b.expanded[0] != "/dev/sdz:1073741824" || len(n.run.Calls) != 1 {
			t.Fatalf("%s: expanded %v ran %v", fs.fsType, n.b.expanded, n.run.Lines())
		}
		n.b.expandErr = errors.New("rbd resize failed")
		if err := n.l.ExpandFS(ctx, opts("/dev/sdz"), 2<<30); err == nil || len(n.run.Calls) != 1 {
			t.Fatalf("grew the filesystem after the device failed to grow: %v", err)
		}
	}
	n := newNode(t, false)
	must(t, n.mount("/dev/sdz", "a", "readOnly", "true"))
	is(t, n.l.ExpandFS(ctx, opts("/dev/sdz"), 1<<30), errkind.Invalid, "read-only")
	n = newNode(t, false)
	must(t, n.mount("/dev/sdz", "a"))
	n.run.On("resize2fs", "", 1)
	if err := n.l.ExpandFS(ctx, opts("/dev/sdz"), 1<<30); err == nil {
		t.Fatal("a failing resize2fs succeeded")
	}
	// A device that is no longer the volume's is not grown.
	n.b.identifyErr = errkind.Errorf(errkind.Mismatch, "not ours")
	is(t, n.l.ExpandFS(ctx, opts("/dev/sdz"), 1<<30), errkind.Mismatch, "not ours")
}

func TestRecordFailuresAreErrors(t *testing.T) {
	n := newNode(t, false)
	boom := errors.New("disk full")
	n.recs.Fail = func(op string, _ *state.Record) error {
		if op == "save" {
			return boom
		}
		return nil
	}
	if err := n.mount("/dev/sdz", "a"); !errors.Is(err, boom) || len(n.b.acquired) != 0 {
		t.Fatalf("mount without a record: %v acquired %v", err, n.b.acquired)
	}
	n.recs.Fail = func(op string, _ *state.Record) error {
		if op == "list" {
			return boom
		}
		return nil
	}
	if err := n.unmount("a"); !errors.Is(err, boom) {
		t.Fatalf("unmount: %v", err)
	}
	n.recs.Fail = func(op string, _ *state.Record) error {
		if op == "load" {
			return boom
		}
		return nil
	}
	if _, err := n.waitForAttach("/dev/sdz"); !errors.Is(err, boom) {
		t.Fatalf("waitforattach: %v", err)
	}
}
