package loopdev

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexblock/flexblock/test/testkit"
)

// twoPaths is one backing file behind two loop devices: one storage (one
// LUN) reached through two device paths, which get two volume ids.
func twoPaths(t *testing.T, mib int, mkfs string) (dev1, dev2 string) {
	t.Helper()
	dev1, file := loopDev(t, mib)
	if mkfs != "" {
		run(t, "mkfs."+mkfs, "-q", "-F", dev1)
	}
	out := run(t, "losetup", "-f", "--show", file)
	dev2 = strings.TrimSpace(out)
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev2).Run() })
	return dev1, dev2
}

// globalsOf counts the mounts below root/plugins whose device is one of devs
// (by the major:minor in mountinfo).
func globalsOf(t *testing.T, root string, devs ...string) int {
	t.Helper()
	nums := map[string]bool{}
	for _, d := range devs {
		var st = run(t, "stat", "-L", "-c", "%t:%T", d)
		var maj, min int
		fmt.Sscanf(strings.TrimSpace(st), "%x:%x", &maj, &min)
		nums[fmt.Sprintf("%d:%d", maj, min)] = true
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) > 4 && nums[fl[2]] && strings.HasPrefix(fl[4], filepath.Join(root, "plugins")+"/") {
			n++
		}
	}
	return n
}

// Two pods mount one storage through two device paths AT THE SAME TIME
// (kubelet runs volume operations of different volumes in parallel). The
// in-use check and the mount are not one step across volume ids: both
// calls passed the check before either mounted, and the filesystem was
// mounted read-write twice (6 of 8 rounds on the host). At most one may
// succeed, whether the storage already holds a filesystem or is blank
// (then both formatted it).
func TestAttackOneStorageTwoPathsConcurrently(t *testing.T) {
	for _, mkfs := range []string{"ext4", ""} {
		name := mkfs
		if name == "" {
			name = "blank"
		}
		t.Run(name, func(t *testing.T) {
			for round := 0; round < 6; round++ {
				p := newPlugin(t)
				d1, d2 := twoPaths(t, 320, mkfs)
				var wg sync.WaitGroup
				answers := make([]testkit.Answer, 2)
				for i, d := range []string{d1, d2} {
					wg.Add(1)
					go func(i int, d string) {
						defer wg.Done()
						answers[i] = p.Run("mount", p.PodDir(fmt.Sprint("pod-", i), "v"), opts(d))
					}(i, d)
				}
				wg.Wait()
				if n := globalsOf(t, p.Kubelet, d1, d2); n > 1 {
					t.Fatalf("round %d: one filesystem mounted %d times through two devices: %q / %q", round, n, answers[0].Message, answers[1].Message)
				}
				for i := range answers {
					p.Run("unmount", p.PodDir(fmt.Sprint("pod-", i), "v"))
				}
			}
		})
	}
}

// The same storage already mounted in ANOTHER mount namespace (a
// container's, a systemd service's PrivateMounts) is invisible in the
// driver's mountinfo: the driver mounted the second path read-write next
// to it. The kernel's claims are node-wide; the check must be too.
func TestAttackStorageMountedInAnotherNamespace(t *testing.T) {
	p := newPlugin(t)
	d1, d2 := twoPaths(t, 64, "ext4")
	dir := t.TempDir()
	ready := filepath.Join(t.TempDir(), "ready")
	holder := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		fmt.Sprintf("mount %s %s && touch %s && sleep 60", d1, dir, ready))
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	for i := 0; ; i++ {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if i == 100 {
			t.Fatal("holder namespace did not mount")
		}
		time.Sleep(50 * time.Millisecond)
	}
	pod := p.PodDir("pod-a", "v")
	a := p.Call(t, "mount", pod, opts(d2))
	if a.Status == "Success" {
		p.Call(t, "unmount", pod)
		t.Fatalf("mounted %s read-write while the same filesystem is mounted from %s in another mount namespace", d2, d1)
	}
	if !strings.Contains(a.Message, "in use") {
		t.Errorf("refusal does not say the storage is in use: %q", a.Message)
	}
}
