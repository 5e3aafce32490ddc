package loopdev

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/flexblock/flexblock/test/testkit"
)

// The driver's config file next to it replaced by a FIFO or a symlink to
// /dev/zero (a careless operator, a broken config management run): every
// call, init included, must still answer one JSON Failure within a bound
// naming the config. Before: a FIFO hung every call forever (kubelet's
// volume operations with it); /dev/zero crashed the driver out of memory
// with a Go trace on kubelet's pipe.
func TestAttackConfigFileNotARegularFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, file string)
	}{
		{"fifo", func(t *testing.T, file string) {
			if err := syscall.Mkfifo(file, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"dev-zero", func(t *testing.T, file string) {
			if err := os.Symlink("/dev/zero", file); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPlugin(t)
			cfg := filepath.Join(filepath.Dir(p.Exe), "flexblock.json")
			if err := os.Remove(cfg); err != nil {
				t.Fatal(err)
			}
			tc.plant(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// 2 GB of address space at most: a driver reading /dev/zero must
			// not take the test machine's memory with it.
			cmd := exec.CommandContext(ctx, "prlimit", "--as=2000000000", "--", p.Exe, "init")
			cmd.Env = testkit.KubeletEnv
			out, _ := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatal("init did not answer within 10 s")
			}
			a := testkit.Decode(string(out))
			if a.Status != "Failure" {
				t.Fatalf("want one JSON Failure, got %q", string(out)[:min(len(out), 300)])
			}
		})
	}
}
