package loopdev

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// After a pod's mount, its volume's parent dir is replaced by a symlink
// to a dir that holds another mount (what a planted link between two
// calls looks like). unmount must refuse, and leave both the foreign mount
// and the volume alone: before issue 13 it unmounted the foreign mount.
func TestAttackParentSwappedForSymlinkBeforeUnmount(t *testing.T) {
	p := newPlugin(t)
	dev, _ := loopDev(t, 64)
	pod := p.PodDir("pod-a", "v")
	if a := p.Call(t, "mount", pod, opts(dev)); a.Status != "Success" {
		t.Fatalf("mount: %+v", a)
	}
	// A foreign mount at elsewhere/v.
	elsewhere := filepath.Join(t.TempDir(), "elsewhere")
	foreign := filepath.Join(elsewhere, "v")
	if err := os.MkdirAll(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "-t", "tmpfs", "tmpfs", foreign)
	t.Cleanup(func() { run(t, "umount", "-l", foreign) })
	parent := filepath.Dir(pod)
	moved := parent + ".moved"
	if err := os.Rename(parent, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, parent); err != nil {
		t.Fatal(err)
	}
	a := p.Call(t, "unmount", pod)
	if a.Status == "Success" {
		t.Errorf("unmount through a symlinked parent answered Success")
	}
	if ok := mounted(t, foreign); !ok {
		t.Fatalf("the foreign mount at %s was unmounted", foreign)
	}
	if !mounted(t, filepath.Join(moved, "v")) {
		t.Fatalf("the pod's bind was unmounted through the link")
	}
	assertReleases(t, p, "no release while the pod's bind exists")
	// The operator removes the link and puts the dir back: unmount works.
	if err := os.Remove(parent); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(moved, parent); err != nil {
		t.Fatal(err)
	}
	if a := p.Call(t, "unmount", pod); a.Status != "Success" {
		t.Fatalf("unmount after repair: %+v", a)
	}
}

// A symlink swapped in and out of the pod dir's parent WHILE mount runs
// (a race, not a planted link between calls): the bind must never land
// outside the kubelet root. mount(8) resolves its target path again, so
// only a descriptor-based target (or --no-canonicalize of a /proc/self/fd
// path) closes this.
func TestAttackSymlinkRaceDuringMount(t *testing.T) {
	p := newPlugin(t)
	dev, _ := loopDev(t, 64)
	elsewhere := filepath.Join(t.TempDir(), "elsewhere")
	var escaped atomic.Int32
	for round := 0; round < 40 && escaped.Load() == 0; round++ {
		uid := fmt.Sprint("pod-", round)
		pod := p.PodDir(uid, "v")
		parent := filepath.Dir(pod)
		if err := os.MkdirAll(pod, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(elsewhere, uid, "v"), 0o755); err != nil {
			t.Fatal(err)
		}
		var stop atomic.Bool
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // the attacker
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				time.Sleep(time.Duration(i%7) * 300 * time.Microsecond) // the real dir, for a varying while
				if os.Rename(parent, parent+".real") == nil {
					_ = os.Symlink(filepath.Join(elsewhere, uid), parent)
					time.Sleep(300 * time.Microsecond)
					_ = os.Remove(parent)
					_ = os.Rename(parent+".real", parent)
				}
			}
		}()
		a := p.Run("mount", pod, opts(dev))
		stop.Store(true)
		wg.Wait()
		for _, m := range mountsUnder(t, elsewhere) {
			escaped.Add(1)
			t.Errorf("round %d: a bind escaped the kubelet root to %s (answer %s %q)", round, m, a.Status, a.Message)
			run(t, "umount", m)
		}
		t.Logf("round %d: %s %.80q", round, a.Status, a.Message)
		if a.Status == "Success" {
			p.Run("unmount", pod)
		}
	}
	for _, m := range mountsUnder(t, p.Kubelet) {
		if strings.Contains(m, ".real") {
			run(t, "umount", "-l", m)
		}
	}
}

func mounted(t *testing.T, dir string) bool {
	t.Helper()
	for _, m := range mountsUnder(t, filepath.Dir(dir)) {
		if m == dir {
			return true
		}
	}
	return false
}

// The same race during unmount: umount(8) resolves its target again after
// the driver's symlink-free check, so a link swapped in meanwhile makes it
// unmount a foreign mount (and the driver then releases the volume whose
// bind is still in place).
func TestAttackSymlinkRaceDuringUnmount(t *testing.T) {
	p := newPlugin(t)
	dev, _ := loopDev(t, 64)
	elsewhere := filepath.Join(t.TempDir(), "elsewhere")
	for round := 0; round < 40; round++ {
		uid := fmt.Sprint("pod-", round)
		pod := p.PodDir(uid, "v")
		parent := filepath.Dir(pod)
		if a := p.Call(t, "mount", pod, opts(dev)); a.Status != "Success" {
			t.Fatalf("round %d: mount: %+v", round, a)
		}
		foreign := filepath.Join(elsewhere, uid, "v")
		if err := os.MkdirAll(foreign, 0o755); err != nil {
			t.Fatal(err)
		}
		run(t, "mount", "-t", "tmpfs", "tmpfs", foreign)
		var stop atomic.Bool
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // the attacker
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				time.Sleep(time.Duration(i%7) * 300 * time.Microsecond)
				if os.Rename(parent, parent+".real") == nil {
					_ = os.Symlink(filepath.Join(elsewhere, uid), parent)
					time.Sleep(300 * time.Microsecond)
					_ = os.Remove(parent)
					_ = os.Rename(parent+".real", parent)
				}
			}
		}()
		a := p.Run("unmount", pod)
		stop.Store(true)
		wg.Wait()
		lost := !mounted(t, foreign)
		if !lost {
			run(t, "umount", foreign)
		}
		if lost {
			t.Fatalf("round %d: unmount of %s unmounted the foreign mount %s through a swapped-in symlink (answer %s %q)", round, pod, foreign, a.Status, a.Message)
		}
		if a.Status == "Success" && mounted(t, pod) {
			run(t, "umount", "-l", pod)
			t.Fatalf("round %d: unmount answered Success with the pod's bind still mounted (the volume was released under it)", round)
		}
		for i := 0; a.Status != "Success" && i < 5; i++ {
			a = p.Run("unmount", pod)
		}
	}
}

// A pod's volume dir moved away (renamed, not removed) keeps its bind,
// and so the filesystem stays in use. Unmount of the old path found
// "not mounted", counted the pod as gone, unmounted the global mount and
// released the device under the live bind (rbd: a later pod maps and
// mounts the image again next to it). The mount table, not a path, tells
// whether a bind of the volume is left.
func TestAttackPodDirMovedBeforeUnmount(t *testing.T) {
	p := newPlugin(t)
	dev, _ := loopDev(t, 64)
	pod := p.PodDir("pod-a", "v")
	if a := p.Call(t, "mount", pod, opts(dev)); a.Status != "Success" {
		t.Fatalf("mount: %+v", a)
	}
	parent := filepath.Dir(pod)
	if err := os.Rename(parent, parent+".moved"); err != nil {
		t.Fatal(err)
	}
	p.Run("unmount", pod)
	if !mounted(t, filepath.Join(parent+".moved", "v")) {
		t.Fatal("test broken: the moved bind is gone")
	}
	assertReleases(t, p, "no release while a bind of the volume is mounted")
	if ms := mountsUnder(t, filepath.Join(p.Kubelet, "plugins")); len(ms) != 1 {
		t.Fatalf("the global mount was torn down under a live bind: %v", ms)
	}
}
