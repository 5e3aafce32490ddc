package loopdev

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flexblock/flexblock/test/testkit"
)

// The crash matrix: the driver is killed with SIGKILL at each step of mount
// and unmount (test builds honour FLEXBLOCK_TEST_CRASH_AT), then kubelet's
// retry of the same call must reach the right final state with nothing
// leaked and the data written before the crash intact.
func TestCrashMatrix(t *testing.T) {
	testkit.NeedRoot(t) // a skipped step would read as "converged" in the table
	type row struct{ call, step, result string }
	var table []row
	defer func() {
		var b strings.Builder
		fmt.Fprintf(&b, "\n%-20s %-22s %s\n", "call", "killed at", "after replay")
		for _, r := range table {
			fmt.Fprintf(&b, "%-20s %-22s %s\n", r.call, r.step, r.result)
		}
		t.Log(b.String())
	}()
	for _, step := range []string{"after-acquire", "after-format", "after-global-mount", "after-bind"} {
		ok := t.Run("mount/"+step, func(t *testing.T) { crashMount(t, step) })
		table = append(table, row{"mount", step, verdict(ok)})
		ok = t.Run("mount-then-pod-deleted/"+step, func(t *testing.T) { crashMountThenDelete(t, step) })
		table = append(table, row{"mount, then unmount", step, verdict(ok)})
	}
	for _, step := range []string{"after-unbind", "after-global-unmount", "before-release"} {
		ok := t.Run("unmount/"+step, func(t *testing.T) { crashUnmount(t, step) })
		table = append(table, row{"unmount", step, verdict(ok)})
	}
}

func verdict(ok bool) string {
	if ok {
		return "converged, nothing leaked, data intact"
	}
	return "FAILED"
}

// withData makes an ext4 device holding a file.
func withData(t *testing.T) string {
	dev, _ := loopDev(t, 64)
	run(t, "mkfs.ext4", "-q", "-F", dev)
	tmp := t.TempDir()
	run(t, "mount", dev, tmp)
	if err := os.WriteFile(filepath.Join(tmp, "before-crash"), []byte("intact"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "umount", tmp)
	return dev
}

func crash(t *testing.T, p *testkit.Plugin, step string, args ...string) {
	t.Helper()
	a := p.RunEnv([]string{"FLEXBLOCK_TEST_CRASH_AT=" + step}, args...)
	if a.Exit != -1 || a.Stdout != "" {
		t.Fatalf("driver was not killed at %s: exit %d, %q", step, a.Exit, a.Stdout)
	}
}

func crashMount(t *testing.T, step string) {
	p := newPlugin(t)
	dev := withData(t)
	pod := p.PodDir("pod-a", "v")
	crash(t, p, step, "mount", pod, opts(dev))
	if a := p.Call(t, "mount", pod, opts(dev)); a.Status != "Success" {
		t.Fatalf("replayed mount: %+v", a)
	}
	if ms := mountsUnder(t, p.Kubelet); len(ms) != 2 {
		t.Fatalf("want global + bind, got %v", ms)
	}
	assertData(t, pod)
	p.Call(t, "unmount", pod)
	assertClean(t, p, dev)
}

// The pod is deleted instead: kubelet calls unmount for the dir of the
// mount that never answered. The device must still be released.
func crashMountThenDelete(t *testing.T, step string) {
	p := newPlugin(t)
	dev := withData(t)
	pod := p.PodDir("pod-a", "v")
	crash(t, p, step, "mount", pod, opts(dev))
	if a := p.Call(t, "unmount", pod); a.Status != "Success" {
		t.Fatalf("unmount after crashed mount: %+v", a)
	}
	assertClean(t, p, dev)
}

func crashUnmount(t *testing.T, step string) {
	p := newPlugin(t)
	dev := withData(t)
	pod := p.PodDir("pod-a", "v")
	p.Call(t, "mount", pod, opts(dev))
	crash(t, p, step, "unmount", pod)
	if a := p.Call(t, "unmount", pod); a.Status != "Success" {
		t.Fatalf("replayed unmount: %+v", a)
	}
	assertClean(t, p, dev)
	pod2 := p.PodDir("pod-b", "v")
	p.Call(t, "mount", pod2, opts(dev))
	assertData(t, pod2)
	p.Call(t, "unmount", pod2)
}

func assertData(t *testing.T, pod string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pod, "before-crash"))
	if err != nil || string(b) != "intact" {
		t.Fatalf("data: %q %v", b, err)
	}
}

func assertClean(t *testing.T, p *testkit.Plugin, dev string) {
	t.Helper()
	if ms := mountsUnder(t, p.Kubelet); len(ms) != 0 {
		t.Fatalf("left mounts: %v", ms)
	}
	assertNoState(t, p)
	assertReleases(t, p, "exactly one release", filepath.Base(dev))
	_ = os.Remove(filepath.Join(p.State, "loop-releases.log"))
}
