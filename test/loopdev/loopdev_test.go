// Real tests on the host: the built driver (test build with the loop
// backend) formats, mounts, binds and unmounts real loop devices. Needs root
// and loop devices; CI runs as root.
package loopdev

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/flexblock/flexblock/test/testkit"
)

var bin string

func TestMain(m *testing.M) { testkit.Main(m, &bin, "flexblocktest") }

// loopDev attaches a sparse file of size MiB and detaches it at cleanup.
func loopDev(t *testing.T, mib int) (dev, file string) {
	t.Helper()
	testkit.NeedRoot(t)
	file = filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(mib) << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command("losetup", "-f", "--show", file).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v %s", err, out)
	}
	dev = strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	return dev, file
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func digest(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// mountsUnder lists mount points under dir from /proc/self/mountinfo.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			out = append(out, fields[4])
		}
	}
	return out
}

func fsTypeOf(t *testing.T, dev string) string {
	out, _ := exec.Command("blkid", "-p", "-s", "TYPE", "-o", "value", dev).Output()
	return strings.TrimSpace(string(out))
}

func opts(dev string, kv ...string) string {
	return testkit.Options(append([]string{"device", dev, "kubernetes.io/readwrite", "rw"}, kv...)...)
}

func cleanupMounts(t *testing.T, p *testkit.Plugin) {
	t.Cleanup(func() {
		ms := mountsUnder(t, p.Kubelet)
		for i := len(ms) - 1; i >= 0; i-- {
			_ = exec.Command("umount", "-l", ms[i]).Run()
		}
	})
}

func newPlugin(t *testing.T) *testkit.Plugin {
	testkit.NeedRoot(t)
	p := testkit.Install(t, bin, "loop", nil)
	cleanupMounts(t, p)
	return p
}

func TestBlankDeviceIsFormattedMountedAndReleased(t *testing.T) {
	testkit.NeedRoot(t)
	for _, fs := range []string{"ext4", "xfs", "btrfs"} {
		t.Run(fs, func(t *testing.T) {
			p := newPlugin(t)
			dev, _ := loopDev(t, 320)
			pod := p.PodDir("pod-a", "data")
			a := p.Call(t, "mount", pod, opts(dev, "kubernetes.io/fsType", fs))
			if a.Status != "Success" {
				t.Fatalf("mount: %+v", a)
			}
			if got := fsTypeOf(t, dev); got != fs {
				t.Fatalf("device has %q, want %s", got, fs)
			}
			if err := os.WriteFile(filepath.Join(pod, "hello"), []byte("world"), 0o644); err != nil {
				t.Fatal(err)
			}
			if ms := mountsUnder(t, p.Kubelet); len(ms) != 2 {
				t.Fatalf("want global mount + 1 bind, got %v", ms)
			}
			if a := p.Call(t, "unmount", pod); a.Status != "Success" {
				t.Fatalf("unmount: %+v", a)
			}
			if ms := mountsUnder(t, p.Kubelet); len(ms) != 0 {
				t.Fatalf("mounts left: %v", ms)
			}
			assertReleases(t, p, "1 release", filepath.Base(dev))
			assertNoState(t, p)
			entries, _ := os.ReadDir(pod)
			if len(entries) != 0 {
				t.Fatalf("pod dir not empty after unmount: %v", entries)
			}
			// Second pod: same data, not formatted again.
			pod2 := p.PodDir("pod-b", "data")
			if a := p.Call(t, "mount", pod2, opts(dev, "kubernetes.io/fsType", fs)); a.Status != "Success" {
				t.Fatalf("mount again: %+v", a)
			}
			b, err := os.ReadFile(filepath.Join(pod2, "hello"))
			if err != nil || string(b) != "world" {
				t.Fatalf("data after remount: %q %v", b, err)
			}
			p.Call(t, "unmount", pod2)
		})
	}
}

func TestExistingFilesystemIsMountedNotFormatted(t *testing.T) {
	testkit.NeedRoot(t)
	p := newPlugin(t)
	dev, _ := loopDev(t, 64)
	run(t, "mkfs.ext4", "-q", "-F", dev)
	tmp := t.TempDir()
	run(t, "mount", dev, tmp)
	if err := os.WriteFile(filepath.Join(tmp, "keep"), []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "umount", tmp)
	uuid := run(t, "blkid", "-p", "-s", "UUID", "-o", "value", dev)

	pod := p.PodDir("pod-a", "data")
	if a := p.Call(t, "mount", pod, opts(dev)); a.Status != "Success" {
		t.Fatalf("mount: %+v", a)
	}
	b, err := os.ReadFile(filepath.Join(pod, "keep"))
	if err != nil || string(b) != "precious" {
		t.Fatalf("data: %q %v", b, err)
	}
	if got := run(t, "blkid", "-p", "-s", "UUID", "-o", "value", dev); got != uuid {
		t.Fatalf("filesystem was recreated: uuid %s -> %s", uuid, got)
	}
	p.Call(t, "unmount", pod)
}

// Devices that must never be formatted: each refusal leaves the device
// byte-for-byte unchanged and nothing mounted.
func TestRefusalsLeaveDeviceUnchanged(t *testing.T) {
	testkit.NeedRoot(t)
	cases := []struct {
		name    string
		prepare func(t *testing.T, dev string)
		extra   []string
		want    []string
	}{
		{"partition table", func(t *testing.T, dev string) {
			cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", dev)
			cmd.Stdin = strings.NewReader("label: dos\n,,L\n")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("sfdisk: %v %s", err, out)
			}
		}, nil, []string{"partition table", "dos"}},
		{"other filesystem", func(t *testing.T, dev string) { run(t, "mkfs.xfs", "-q", "-f", dev) },
			[]string{"kubernetes.io/fsType", "ext4"}, []string{"holds xfs", "fsType ext4"}},
		{"read-only blank", func(*testing.T, string) {},
			[]string{"kubernetes.io/readwrite", "ro"}, []string{"read-only", "never formats"}},
		{"swap signature", func(t *testing.T, dev string) { run(t, "mkswap", dev) },
			nil, []string{"holds a swap signature"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPlugin(t)
			dev, file := loopDev(t, 320)
			tc.prepare(t, dev)
			before := digest(t, file)
			pod := p.PodDir("pod-a", "data")
			a := p.Call(t, "mount", pod, opts(dev, tc.extra...))
			if a.Status != "Failure" {
				t.Fatalf("want Failure, got %+v", a)
			}
			for _, w := range tc.want {
				if !strings.Contains(a.Message, w) {
					t.Errorf("message %q lacks %q", a.Message, w)
				}
			}
			if after := digest(t, file); after != before {
				t.Fatalf("device changed")
			}
			if ms := mountsUnder(t, p.Kubelet); len(ms) != 0 {
				t.Fatalf("left mounts: %v", ms)
			}
			assertNoState(t, p)
		})
	}
}

func TestTwoPodsShareOneGlobalMount(t *testing.T) {
	testkit.NeedRoot(t)
	p := newPlugin(t)
	dev, _ := loopDev(t, 64)
	pod1, pod2 := p.PodDir("pod-1", "v"), p.PodDir("pod-2", "v")
	p.Call(t, "mount", pod1, opts(dev))
	p.Call(t, "mount", pod2, opts(dev, "kubernetes.io/readwrite", "ro"))
	if a := p.Call(t, "mount", pod1, opts(dev)); a.Status != "Success" {
		t.Fatalf("repeated mount is not idempotent: %+v", a)
	}
	if ms := mountsUnder(t, p.Kubelet); len(ms) != 3 {
		t.Fatalf("want 1 global + 2 binds, got %v", ms)
	}
	if err := os.WriteFile(filepath.Join(pod2, "x"), nil, 0o644); err == nil {
		t.Fatalf("read-only bind is writable")
	}
	if err := os.WriteFile(filepath.Join(pod1, "x"), []byte("1"), 0o644); err != nil {
		t.Fatalf("rw bind: %v", err)
	}
	p.Call(t, "unmount", pod1)
	if ms := mountsUnder(t, p.Kubelet); len(ms) != 2 {
		t.Fatalf("after first unmount want global + 1 bind, got %v", ms)
	}
	if _, err := os.ReadFile(filepath.Join(pod2, "x")); err != nil {
		t.Fatalf("second pod lost its volume: %v", err)
	}
	assertReleases(t, p, "no release yet")
	p.Call(t, "unmount", pod2)
	if ms := mountsUnder(t, p.Kubelet); len(ms) != 0 {
		t.Fatalf("left mounts: %v", ms)
	}
	assertReleases(t, p, "1 release", filepath.Base(dev))
	for i := 0; i < 2; i++ {
		if a := p.Call(t, "unmount", pod2); a.Status != "Success" {
			t.Fatalf("unmount is not idempotent: %+v", a)
		}
	}
	assertNoState(t, p)
}

func TestAttachModeLifecycle(t *testing.T) {
	testkit.NeedRoot(t)
	p := testkit.Install(t, bin, "loop", map[string]any{"attach": true})
	cleanupMounts(t, p)
	dev, _ := loopDev(t, 64)
	o := opts(dev)
	if a := p.Call(t, "mount", p.PodDir("u", "v"), o); a.Status != "Not supported" {
		t.Fatalf("mount in attach mode: %+v", a)
	}
	a := p.Call(t, "waitforattach", "", o)
	if a.Status != "Success" || a.Device != dev {
		t.Fatalf("waitforattach: %+v", a)
	}
	dmp := filepath.Join(p.Kubelet, "plugins/kubernetes.io/flexvolume/flexblock/loop/mounts/v")
	if err := os.MkdirAll(dmp, 0o750); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // kubelet retries: idempotent
		if a := p.Call(t, "mountdevice", dmp, dev, o); a.Status != "Success" {
			t.Fatalf("mountdevice: %+v", a)
		}
	}
	if ms := mountsUnder(t, p.Kubelet); len(ms) != 1 || ms[0] != dmp {
		t.Fatalf("mounts: %v", ms)
	}
	if a := p.Call(t, "unmountdevice", dmp); a.Status != "Success" {
		t.Fatalf("unmountdevice: %+v", a)
	}
	if ms := mountsUnder(t, p.Kubelet); len(ms) != 0 {
		t.Fatalf("left mounts: %v", ms)
	}
	assertReleases(t, p, "1 release", filepath.Base(dev))
	assertNoState(t, p)
}

// 20 concurrent driver processes: 4 volumes x 5 pods mount at once, then
// all unmount at once. The end state is consistent: one global mount and
// five binds per volume in between, nothing at the end, one release each.
func TestConcurrentCallsConverge(t *testing.T) {
	testkit.NeedRoot(t)
	p := newPlugin(t)
	var devs []string
	for i := 0; i < 4; i++ {
		d, _ := loopDev(t, 64)
		devs = append(devs, d)
	}
	type job struct{ dev, pod string }
	var jobs []job
	for i, d := range devs {
		for j := 0; j < 5; j++ {
			jobs = append(jobs, job{d, p.PodDir(fmt.Sprintf("pod-%d-%d", i, j), "v")})
		}
	}
	parallel := func(call func(j job) testkit.Answer) {
		var wg sync.WaitGroup
		errs := make(chan string, len(jobs))
		for _, j := range jobs {
			wg.Add(1)
			go func(j job) {
				defer wg.Done()
				a := call(j)
				if a.Status != "Success" || a.Exit != 0 || a.Stderr != "" {
					errs <- fmt.Sprintf("%s: %+v", j.pod, a)
				}
			}(j)
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
	}
	parallel(func(j job) testkit.Answer { return p.Run("mount", j.pod, opts(j.dev)) })
	if ms := mountsUnder(t, p.Kubelet); len(ms) != 4+20 {
		t.Fatalf("want 4 global mounts + 20 binds, got %d: %v", len(ms), ms)
	}
	parallel(func(j job) testkit.Answer { return p.Run("unmount", j.pod) })
	if ms := mountsUnder(t, p.Kubelet); len(ms) != 0 {
		t.Fatalf("left mounts: %v", ms)
	}
	var names []string
	for _, d := range devs {
		names = append(names, filepath.Base(d))
	}
	assertReleases(t, p, "one release per volume", names...)
	assertNoState(t, p)
}

func assertReleases(t *testing.T, p *testkit.Plugin, what string, ids ...string) {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(p.State, "loop-releases.log"))
	got := strings.Fields(string(b))
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	if len(got) != len(ids) {
		t.Fatalf("%s: releases %v, want %v", what, got, ids)
	}
	for _, id := range ids {
		if count[id] != 1 {
			t.Fatalf("%s: releases %v, want %v", what, got, ids)
		}
	}
}

func assertNoState(t *testing.T, p *testkit.Plugin) {
	t.Helper()
	recs, _ := filepath.Glob(filepath.Join(p.State, "volumes", "*", "*.json"))
	if len(recs) != 0 {
		t.Fatalf("state records left: %v", recs)
	}
}
