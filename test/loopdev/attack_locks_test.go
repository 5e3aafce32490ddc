package loopdev

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Lock files and the lock dir replaced by a FIFO, a symlink to a file
// root would create, a symlink dir: the call refuses naming the lock,
// never blocks, never creates the link's target; put right, it works.
func TestAttackPlantedLockFiles(t *testing.T) {
	p := newPlugin(t)
	dev, _ := loopDev(t, 64)
	pod := p.PodDir("pod-a", "v")
	p.Call(t, "mount", pod, opts(dev))
	p.Call(t, "unmount", pod)
	locks := filepath.Join(p.State, "locks")
	files, _ := filepath.Glob(filepath.Join(locks, "*.lock"))
	if len(files) == 0 {
		t.Fatal("no lock files")
	}
	target := filepath.Join(t.TempDir(), "created-by-root")
	other := t.TempDir()
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T)
	}{
		{"fifo", func(t *testing.T) {
			for _, f := range files {
				os.Remove(f)
				if err := syscall.Mkfifo(f, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"symlink", func(t *testing.T) {
			for _, f := range files {
				os.Remove(f)
				if err := os.Symlink(target, f); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"dir symlink", func(t *testing.T) {
			os.RemoveAll(locks)
			if err := os.Symlink(other, locks); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		if err := os.MkdirAll(locks, 0o700); err != nil {
			t.Fatal(err)
		}
		tc.plant(t)
		a := p.Call(t, "mount", pod, opts(dev))
		if a.Status != "Failure" || !strings.Contains(a.Message, "lock") {
			t.Errorf("%s: got %+v", tc.name, a)
		}
		if _, err := os.Lstat(target); err == nil {
			t.Fatalf("%s: root created the symlink's target", tc.name)
		}
		if ents, _ := os.ReadDir(other); len(ents) != 0 {
			t.Fatalf("%s: lock files made through a symlinked dir: %v", tc.name, ents)
		}
		if ms := mountsUnder(t, p.Kubelet); len(ms) != 0 {
			t.Fatalf("%s: mounted without its lock: %v", tc.name, ms)
		}
		os.RemoveAll(locks)
	}
	if a := p.Call(t, "mount", pod, opts(dev)); a.Status != "Success" {
		t.Fatalf("after the operator cleaned up: %+v", a)
	}
	p.Call(t, "unmount", pod)
}

// kubelet passes a pod dir under another root than the configured
// kubeletRoot: a symlink alias of it, or another dir. Refused, nothing
// mounted or made there.
func TestAttackPodDirUnderAnotherKubeletRoot(t *testing.T) {
	p := newPlugin(t)
	dev, _ := loopDev(t, 64)
	alias := p.Kubelet + "-alias"
	if err := os.Symlink(p.Kubelet, alias); err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(t.TempDir(), "kubelet")
	for _, root := range []string{alias, elsewhere, p.Kubelet + "/pods/u/volumes/x"} {
		pod := filepath.Join(root, "pods/uid/volumes/flexblock~loop/v")
		a := p.Call(t, "mount", pod, opts(dev))
		if a.Status != "Failure" || !strings.Contains(a.Message, "kubelet root") && !strings.Contains(a.Message, "not of the form") {
			t.Errorf("pod dir %s: got %+v", pod, a)
		}
	}
	if ms := mountsUnder(t, filepath.Dir(p.Kubelet)); len(ms) != 0 {
		t.Fatalf("mounted: %v", ms)
	}
	if _, err := os.Stat(elsewhere); err == nil {
		t.Fatalf("made %s", elsewhere)
	}
}
