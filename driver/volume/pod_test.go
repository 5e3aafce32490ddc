package volume

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/state"
)

// The first pod acquires, formats, mounts once and binds; the second only
// binds (after proving its credentials); the last one out tears it down.
func TestMountRefcountAndTeardown(t *testing.T) {
	n := newNode(t, false)
	if err := n.mount("/dev/sdz", "a", "mountOptions", "noatime"); err != nil {
		t.Fatal(err)
	}
	g := n.global("/dev/sdz")
	if !n.mounted(g) || !n.mounted(n.pod("a")) || len(n.b.acquired) != 1 {
		t.Fatalf("first mount: global %v pod %v acquired %v", n.mounted(g), n.mounted(n.pod("a")), n.b.acquired)
	}
	if want := []Step{StepAfterAcquire, StepAfterFormat, StepAfterGlobalMount, StepAfterBind}; !slices.Equal(n.steps, want) {
		t.Fatalf("steps %v, want %v", n.steps, want)
	}
	if err := n.mount("/dev/sdz", "b"); err != nil {
		t.Fatal(err)
	}
	if len(n.b.acquired) != 1 || len(n.b.authorized) != 1 || !n.b.authorized[0] || n.mnt.Calls["mount"] != 1 {
		t.Fatalf("second pod: acquired %v authorized %v mounts %d", n.b.acquired, n.b.authorized, n.mnt.Calls["mount"])
	}
	if r := n.record("/dev/sdz"); len(r.Pods) != 2 || r.Updated.IsZero() {
		t.Fatalf("record %+v", r)
	}
	// kubelet retries a mount that succeeded: nothing happens.
	if err := n.mount("/dev/sdz", "b"); err != nil || n.mnt.Calls["bind"] != 2 {
		t.Fatalf("repeat: %v, binds %d", err, n.mnt.Calls["bind"])
	}
	if err := n.unmount("a"); err != nil {
		t.Fatal(err)
	}
	if !n.mounted(g) || len(n.b.released) != 0 || len(n.record("/dev/sdz").Pods) != 1 {
		t.Fatal("first unmount tore down a volume still in use")
	}
	if err := n.unmount("b"); err != nil {
		t.Fatal(err)
	}
	n.clean()
	if _, err := os.Stat(g); !os.IsNotExist(err) {
		t.Errorf("global mount dir left: %v", err)
	}
	// kubelet retries the unmount: still fine.
	if err := n.unmount("b"); err != nil {
		t.Fatal(err)
	}
}

func TestMountRefusals(t *testing.T) {
	cases := []struct {
		name  string
		setup func(n *node)
		dev   string
		uid   string
		kv    []string
		kind  *errkind.Kind
		text  string
	}{
		{name: "bad option", dev: "sdz", uid: "a", kind: errkind.Invalid, text: `"device"`},
		{name: "unknown option", dev: "/dev/sdz", uid: "a", kv: []string{"colour", "red"}, kind: errkind.Invalid, text: "colour"},
		{name: "read-write pod on a read-only volume", dev: "/dev/sdz", uid: "b",
			setup: func(n *node) { must(n.t, n.mount("/dev/sdz", "a", "readOnly", "true")) }, kind: errkind.Busy, text: "read-only"},
		{name: "credentials refused", dev: "/dev/sdz", uid: "b",
			setup: func(n *node) {
				must(n.t, n.mount("/dev/sdz", "a"))
				n.b.authorizeErr = errkind.Errorf(errkind.Denied, "key of user kube does not open kube/img")
			}, kind: errkind.Denied, text: "does not open"},
		{name: "busy volume", dev: "/dev/sdz", uid: "a",
			setup: func(n *node) { n.locks.Busy = map[string]bool{"fake-vol-sdz": true} }, kind: errkind.Busy, text: "busy"},
		{name: "busy extra lock", dev: "/dev/sdz", uid: "a", kv: []string{"extraLock", "target-1"},
			setup: func(n *node) { n.locks.Busy = map[string]bool{"target-1": true} }, kind: errkind.Busy, text: "busy"},
		{name: "another first mount holds the storage lock", dev: "/dev/sdz", uid: "a",
			setup: func(n *node) { n.locks.Busy = map[string]bool{storageLock: true} }, kind: errkind.Busy, text: "busy"},
		{name: "acquire fails", dev: "/dev/sdz", uid: "a",
			setup: func(n *node) { n.b.acquireErr = errkind.Errorf(errkind.NotFound, "image kube/img does not exist") }, kind: errkind.NotFound, text: "does not exist"},
		{name: "not blank", dev: "/dev/sdz", uid: "a",
			setup: func(n *node) { n.fmt.err = errkind.Errorf(errkind.NotBlank, "device holds data") }, kind: errkind.NotBlank, text: "holds data"},
		{name: "device in use elsewhere", dev: "/dev/sdz", uid: "a",
			setup: func(n *node) {
				n.l.Free = func(_ context.Context, dev, global string) error {
					return errkind.Errorf(errkind.Busy, "%s is mounted at /mnt/other", dev)
				}
			}, kind: errkind.Busy, text: "/mnt/other"},
		{name: "global mount fails", dev: "/dev/sdz", uid: "a",
			setup: func(n *node) { n.mnt.Fail = failOn("mount", errors.New("wrong fs type")) }, kind: nil, text: "wrong fs type"},
		{name: "bind fails", dev: "/dev/sdz", uid: "a",
			setup: func(n *node) { n.mnt.Fail = failOn("bind", errors.New("bind refused")) }, kind: nil, text: "bind refused"},
		{name: "pod dir already holds something else", dev: "/dev/sdz", uid: "a",
			setup: func(n *node) { must(n.t, n.mnt.Mount(ctx, "/dev/other", n.pod("a"), "ext4", nil)) }, kind: errkind.Mismatch, text: "did not mount"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, false)
			if tc.setup != nil {
				tc.setup(n)
			}
			before := n.b.acquired
			err := n.mount(tc.dev, tc.uid, tc.kv...)
			if err == nil || !strings.Contains(err.Error(), tc.text) || (tc.kind != nil && !errors.Is(err, tc.kind)) {
				t.Fatalf("got %v, want kind %v with %q", err, tc.kind, tc.text)
			}
			if n.mounted(n.pod(tc.uid)) && tc.name != "pod dir already holds something else" {
				t.Error("pod dir mounted after a refusal")
			}
			if len(n.b.acquired) > len(before) && len(n.b.released) != len(n.b.acquired)-len(before) {
				t.Errorf("a failed first mount kept its device: acquired %v released %v", n.b.acquired, n.b.released)
			}
			if r := n.record(tc.dev); r != nil && !n.mounted(r.GlobalMount) {
				t.Errorf("record left without a mount: %+v", r)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func failOn(op string, err error) func(string, string) error {
	return func(o, _ string) error {
		if o == op {
			return err
		}
		return nil
	}
}

// A crash (SIGKILL) at any step of mount or unmount leaves a node that
// kubelet's retries bring back to a clean state: the retried mount works,
// and the pod's unmount then releases everything exactly once.
func TestCrashAtEveryStepConverges(t *testing.T) {
	for _, step := range Steps() {
		t.Run(string(step), func(t *testing.T) {
			n := newNode(t, false)
			mountStep := slices.Index(Steps(), step) <= slices.Index(Steps(), StepAfterBind)
			if !mountStep {
				must(t, n.mount("/dev/sdz", "a"))
			}
			n.crashAt = step
			var err error
			if mountStep {
				err = n.mount("/dev/sdz", "a")
			} else {
				err = n.unmount("a")
			}
			if err != errCrash {
				t.Fatalf("no crash at %s: %v", step, err)
			}
			if mountStep {
				// kubelet retries the mount, then the pod goes away.
				must(t, n.mount("/dev/sdz", "a"))
				if !n.mounted(n.pod("a")) {
					t.Fatal("retried mount did not bind")
				}
			}
			must(t, n.unmount("a"))
			n.clean()
		})
	}
}

// An unmount whose pod dir is already gone finishes the job a killed call
// left (collect); another volume's failing release is only logged.
func TestCollectAfterALostUnmount(t *testing.T) {
	n := newNode(t, false)
	must(t, n.mount("/dev/sda", "a"))
	must(t, n.mount("/dev/sdb", "b"))
	// Pod a's bind vanished behind our back (a call killed after unbind).
	must(t, n.mnt.Unmount(ctx, n.pod("a")))
	n.b.releaseErr = errors.New("unmap failed: device busy")
	// Pod b's unmount must not fail because of a's release.
	n.mnt.Fail = nil
	must(t, n.mnt.Unmount(ctx, n.pod("b")))
	if err := n.unmount("c"); err != nil {
		t.Fatalf("unmount of an unrelated pod failed for another volume's cleanup: %v", err)
	}
	if !strings.Contains(n.log.String(), "collecting unused volume failed") {
		t.Errorf("failure not logged: %s", n.log.String())
	}
	// But the pod whose own volume cannot be released hears about it.
	if err := n.unmount("a"); err == nil || !strings.Contains(err.Error(), "device busy") {
		t.Fatalf("own release failure: %v", err)
	}
	n.b.releaseErr = nil
	must(t, n.unmount("a"))
	n.clean()
}

// A collect skips volumes another call is working on.
func TestCollectSkipsBusyVolumes(t *testing.T) {
	n := newNode(t, false)
	must(t, n.mount("/dev/sda", "a"))
	must(t, n.mnt.Unmount(ctx, n.pod("a")))
	n.locks.Busy = map[string]bool{"fake-vol-sda": true}
	must(t, n.unmount("x"))
	if len(n.b.released) != 0 {
		t.Fatal("collect released a volume whose lock is held")
	}
	n.locks.Busy = nil
	must(t, n.unmount("x"))
	n.clean()
}

// A record whose global mount points outside flexblock's dir (corrupt or
// hand-edited) is set aside: no call ever unmounts or deletes what it names.
func TestRecordWithForeignPathsIsSetAside(t *testing.T) {
	for _, bad := range []func(r *state.Record, n *node){
		func(r *state.Record, n *node) { r.GlobalMount = "/etc" },
		func(r *state.Record, n *node) { r.GlobalMount = n.global("/dev/other") },
		func(r *state.Record, n *node) { r.Pods = []string{"/var/lib/docker"} },
		func(r *state.Record, n *node) { r.Device = "/etc/shadow" },
	} {
		n := newNode(t, false)
		must(t, n.mnt.Mount(ctx, "/dev/root", "/etc", "ext4", nil))
		rec := &state.Record{Backend: "fake", ID: "sdz", Mode: state.ModePod, Device: "/dev/sdz", GlobalMount: n.global("/dev/sdz")}
		bad(rec, n)
		must(t, n.recs.Save(rec))
		must(t, n.unmount("a"))
		if !n.mounted("/etc") || len(n.b.released) != 0 {
			t.Fatalf("acted on a foreign record %+v", rec)
		}
		if len(n.recs.Quarantined) != 1 || n.recs.Len() != 0 {
			t.Fatalf("record not set aside: %d quarantined", len(n.recs.Quarantined))
		}
	}
}

// A global mount whose record was lost is adopted from the mount table
// once the backend confirms the device from the kernel; a mount it cannot
// confirm is refused.
func TestLostRecordIsRebuilt(t *testing.T) {
	n := newNode(t, false)
	must(t, n.mount("/dev/sdz", "a"))
	must(t, n.recs.Delete("fake", "sdz"))
	must(t, n.mount("/dev/sdz", "b"))
	r := n.record("/dev/sdz")
	if r == nil || r.Device != "/dev/sdz" || !slices.Contains(r.Pods, n.pod("a")) || !slices.Contains(r.Pods, n.pod("b")) {
		t.Fatalf("rebuilt record %+v", r)
	}
	must(t, n.unmount("a"))
	must(t, n.unmount("b"))
	n.clean()

	n = newNode(t, false)
	must(t, n.mnt.Mount(ctx, "/dev/impostor", n.global("/dev/sdz"), "ext4", nil))
	err := n.mount("/dev/sdz", "a")
	is(t, err, errkind.Mismatch, "did not mount")
	if n.mounted(n.pod("a")) {
		t.Fatal("bound a pod to a mount whose device is not the volume's")
	}
}

// A pod dir under another kubelet root than the volume's existing global
// mount would make a second mount of the same storage: refused.
func TestPodUnderAnotherRootRefused(t *testing.T) {
	n := newNode(t, false)
	must(t, n.mount("/dev/sdz", "a"))
	n.l.Env.Config.KubeletRoot = ""
	other := t.TempDir() + "/pods/u/volumes/flexblock~fake/vol"
	err := n.l.Mount(ctx, other, opts("/dev/sdz"))
	is(t, err, errkind.Mismatch, "outside the kubelet root")
	if n.mnt.Calls["mount"] != 1 {
		t.Fatal("second global mount made")
	}
}

func TestPathsRefusedBeforeAnything(t *testing.T) {
	n := newNode(t, false)
	for _, p := range []string{"relative/pods/x/volumes/flexblock~fake/v", n.root + "/pods/x/volumes/flexblock~rbd/v",
		n.root + "/pods/../x/volumes/flexblock~fake/v", "/elsewhere/pods/x/volumes/flexblock~fake/v"} {
		is(t, n.l.Mount(ctx, p, opts("/dev/sdz")), errkind.Invalid, "pod volume dir")
		is(t, n.l.Unmount(ctx, p), errkind.Invalid, "pod volume dir")
	}
	if len(n.mnt.Calls) != 0 || len(n.b.acquired) != 0 {
		t.Fatal("acted on a bad path")
	}
}

func TestModesRefuseTheOtherModesCalls(t *testing.T) {
	a := newNode(t, true)
	is(t, a.l.Mount(ctx, a.pod("a"), opts("/dev/sdz")), errkind.Unsupported, "attach mode")
	is(t, a.l.Unmount(ctx, a.pod("a")), errkind.Unsupported, "attach mode")
	c := a.l.Init()
	if !c.Attach || !c.RequiresFSResize || !c.SupportsMetrics {
		t.Fatalf("capabilities %+v", c)
	}
	must(t, a.l.Attach(ctx, opts("/dev/sdz")))
	is(t, a.l.Attach(ctx, opts("nodev")), errkind.Invalid, "device")
	if ok, err := a.l.IsAttached(ctx, nil); !ok || err != nil {
		t.Fatal("isattached")
	}
	must(t, a.l.Detach(ctx))
}

// Secrets in the options are registered with the masker before anything
// can log them.
func TestSecretsMaskedBeforeUse(t *testing.T) {
	n := newNode(t, false)
	n.b.acquireErr = errors.New("rbd said: key s3cr3t-value is wrong")
	err := n.mount("/dev/sdz", "a", "kubernetes.io/secret/key", "czNjcjN0LXZhbHVl")
	if err == nil || n.l.Env.Mask.Mask(err.Error()) == err.Error() {
		t.Fatalf("secret not registered for masking: %v", err)
	}
}

// Paths kubelet passes are walked without following a symlink: a pod dir
// (or one of its parents) that is a symlink is refused before anything is
// mounted, created or unmounted, so nothing lands outside the kubelet root.
func TestSymlinkedPathsRefused(t *testing.T) {
	for _, at := range []string{"vol", "flexblock~fake", "volumes", "uid"} {
		t.Run(strings.ReplaceAll(at, "~", "-"), func(t *testing.T) {
			n := newNode(t, false)
			outside := t.TempDir()
			pod := n.pod("uid")
			link := pod
			for strings.TrimSuffix(link, "/"+at) == link {
				link = filepathDir(link)
			}
			must(t, os.MkdirAll(filepathDir(link), 0o750))
			must(t, os.Symlink(outside, link))
			is(t, n.l.Mount(ctx, pod, opts("/dev/sdz")), errkind.Unsafe, "symlink")
			is(t, n.l.Unmount(ctx, pod), errkind.Unsafe, "symlink")
			if len(n.mnt.Calls) != 0 || len(n.b.acquired) != 0 {
				t.Fatalf("acted through a symlink: %v", n.mnt.Calls)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("created %v outside the kubelet root", ents)
			}
		})
	}
	n := newNode(t, true)
	dmp := n.dmp("pv1")
	must(t, os.MkdirAll(filepathDir(filepathDir(dmp)), 0o750))
	must(t, os.Symlink(t.TempDir(), filepathDir(dmp)))
	is(t, n.l.MountDevice(ctx, dmp, opts("/dev/sdz")), errkind.Unsafe, "symlink")
	is(t, n.l.UnmountDevice(ctx, dmp), errkind.Unsafe, "symlink")
}

func filepathDir(p string) string { return p[:strings.LastIndex(p, "/")] }

// A pod dir moved away keeps its bind: the last unmount must not tear the
// volume down under it (the mount table is read once, when the recorded
// pods are all gone).
func TestMovedPodDirKeepsTheVolume(t *testing.T) {
	n := newNode(t, false)
	must(t, n.mount("/dev/sdz", "a"))
	moved := n.pod("a") + ".moved"
	must(t, n.mnt.Bind(ctx, n.global("/dev/sdz"), moved, false))
	must(t, n.mnt.Unmount(ctx, n.pod("a")))
	// The pod hears why (kubelet retries until the bind is gone).
	is(t, n.unmount("a"), errkind.Busy, "vol.moved")
	if len(n.b.released) != 0 || !n.mounted(n.global("/dev/sdz")) {
		t.Fatal("released the volume under a live bind")
	}
	// A copy of the global mount outside the pods dir (propagation) is
	// not a user.
	must(t, n.mnt.Unmount(ctx, moved))
	must(t, n.mnt.Bind(ctx, n.global("/dev/sdz"), "/host/view/of/global", false))
	must(t, n.unmount("a"))
	if len(n.b.released) != 1 {
		t.Fatalf("a propagated copy kept the volume: released %v", n.b.released)
	}
}

// The last pod out of a volume whose record was lost still tears it down:
// the record is rebuilt from the mount table on unmount too.
func TestUnmountRebuildsALostRecord(t *testing.T) {
	n := newNode(t, false)
	must(t, n.mount("/dev/sdz", "a"))
	must(t, n.mount("/dev/sdz", "b"))
	must(t, n.recs.Delete("fake", "sdz"))
	must(t, n.unmount("a"))
	if !n.mounted(n.global("/dev/sdz")) || len(n.b.released) != 0 {
		t.Fatal("tore down a volume another pod still uses")
	}
	must(t, n.unmount("b"))
	n.clean()
	if !strings.Contains(n.log.String(), "state record rebuilt") {
		t.Error("rebuild not logged")
	}
}

// Paths read from a record are checked by shape only: a symlink planted
// at a recorded pod dir must not get the record set aside (which would
// leak the volume), it only makes calls through that path refuse.
func TestPlantedSymlinkDoesNotSetARecordAside(t *testing.T) {
	n := newNode(t, false)
	must(t, n.mount("/dev/sdz", "a"))
	rec := n.record("/dev/sdz")
	rec.Pods = append(rec.Pods, n.pod("b"))
	must(t, n.recs.Save(rec))
	must(t, os.MkdirAll(filepathDir(n.pod("b")), 0o750))
	must(t, os.Symlink(t.TempDir(), n.pod("b")))
	must(t, n.unmount("c"))
	if len(n.recs.Quarantined) != 0 || n.record("/dev/sdz") == nil {
		t.Fatal("a planted symlink got the record set aside")
	}
}
