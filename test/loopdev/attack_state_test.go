package loopdev

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flexblock/flexblock/test/testkit"
)

// recordOf is the one state record of the loop backend.
func recordOf(t *testing.T, p *testkit.Plugin) string {
	t.Helper()
	recs, _ := filepath.Glob(filepath.Join(p.State, "volumes", "loop", "*.json"))
	if len(recs) != 1 {
		t.Fatalf("want one record, got %v", recs)
	}
	return recs[0]
}

// The record of a mounted volume is damaged (truncated, garbage, edited to
// point at /etc or at another volume's mount, another backend's, a FIFO, a
// symlink to /dev/zero). The pod's unmount must answer within a bound,
// never touch what the record names outside the driver's own dirs, set the
// record aside, and still release the volume: what the record described
// is recovered from the mount table (issue 13 point 7). Before, a FIFO hung
// the call forever and /dev/zero ran it out of memory; a record set aside
// left the global mount and the device in use forever.
func TestAttackDamagedRecordOfMountedVolume(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, file string, b []byte)
	}{
		{"truncated", func(t *testing.T, file string, b []byte) { write(t, file, b[:len(b)/2]) }},
		{"garbage", func(t *testing.T, file string, _ []byte) { write(t, file, []byte("\x00\xff{{{")) }},
		{"global mount at etc", func(t *testing.T, file string, b []byte) {
			write(t, file, []byte(strings.Replace(string(b), `"globalMount": "`, `"globalMount": "/etc/x`, 1)))
		}},
		{"other backend", func(t *testing.T, file string, b []byte) {
			write(t, file, []byte(strings.Replace(string(b), `"backend": "loop"`, `"backend": "rbd"`, 1)))
		}},
		{"fifo", func(t *testing.T, file string, _ []byte) {
			os.Remove(file)
			if err := syscall.Mkfifo(file, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"symlink to dev zero", func(t *testing.T, file string, _ []byte) {
			os.Remove(file)
			if err := os.Symlink("/dev/zero", file); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			p := newPlugin(t)
			dev, _ := loopDev(t, 64)
			pod := p.PodDir("pod-a", "v")
			if a := p.Call(t, "mount", pod, opts(dev)); a.Status != "Success" {
				t.Fatalf("mount: %+v", a)
			}
			file := recordOf(t, p)
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			tc.corrupt(t, file, b)
			start := time.Now()
			a := p.Run("unmount", pod)
			if time.Since(start) > 30*time.Second || a.Exit != 0 {
				t.Fatalf("unmount took %s, exit %d: %+v", time.Since(start), a.Exit, a)
			}
			if _, err := os.Lstat(file); err == nil {
				t.Errorf("damaged record %s still in place", file)
			}
			if q, _ := os.ReadDir(filepath.Join(p.State, "quarantine")); len(q) == 0 {
				t.Errorf("damaged record not set aside in quarantine/")
			}
			if a.Status != "Success" {
				t.Fatalf("unmount: %+v", a)
			}
			if ms := mountsUnder(t, p.Kubelet); len(ms) != 0 {
				t.Fatalf("unmount with a damaged record left mounts: %v", ms)
			}
			assertReleases(t, p, "the volume is released", filepath.Base(dev))
		})
	}
}

func write(t *testing.T, file string, b []byte) {
	t.Helper()
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
