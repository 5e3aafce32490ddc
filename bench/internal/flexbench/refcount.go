package flexbench

import (
	"fmt"
	"github.com/flexblock/flexblock/test/testkit"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// unrelated is a set of bind mounts that have nothing to do with the
// driver: the background of a busy node (container rootfs, secrets,
// projected volumes). They are made before the volume's mounts, so the
// volume's lines come last in mountinfo: the worst case for a lookup.
type unrelated struct {
	dir string
	n   int
}

// newUnrelated mounts a tmpfs at dir for the mount points. Call only in a
// private mount namespace.
func newUnrelated(dir string) (*unrelated, error) {
	if !inPrivateNS() {
		return nil, fmt.Errorf("refusing to make thousands of mounts outside a private mount namespace")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := unix.Mount("flexbench-unrelated", dir, "tmpfs", 0, "mode=0755"); err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(dir, "src"), 0o755); err != nil {
		return nil, err
	}
	return &unrelated{dir: dir}, nil
}

// grow adds bind mounts until there are n.
func (u *unrelated) grow(n int) error {
	for ; u.n < n; u.n++ {
		t := filepath.Join(u.dir, fmt.Sprintf("m%05d", u.n))
		if err := os.Mkdir(t, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(filepath.Join(u.dir, "src"), t, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount #%d: %w", u.n, err)
		}
	}
	return nil
}

// Close takes them all down.
func (u *unrelated) Close() { _ = unix.Unmount(u.dir, unix.MNT_DETACH) }

// tableSize is the number of lines in this process's mountinfo.
func tableSize() int {
	ms, _ := mounts()
	return len(ms)
}

// RefcountRow is benchmark 4 at one size of the mount table.
type RefcountRow struct {
	Unrelated  int // unrelated mounts made
	TableLines int // mountinfo lines in the namespace, all told
	Mount      *Series
	Unmount    *Series
}

// RefcountOpts configures Refcount.
type RefcountOpts struct {
	Counts   []int // unrelated mounts, ascending (100, 10000)
	N        int   // mount+unmount cycles per count
	Progress func(string)
}

// Refcount runs benchmark 4: a real mount and unmount (ext4 on a loop
// device, real tools) with a growing number of unrelated mounts in the
// namespace, the volume's mounts last. The driver answers its questions
// (is the pod dir mounted, whose bind is it, does another pod still use the
// global mount) with statx of the paths it recorded; its tools (mount,
// umount: libmount) still read the table. The first cycle of each count
// is a warm-up. Needs a private mount namespace.
func Refcount(e *Env, root string, o RefcountOpts) ([]*RefcountRow, error) {
	loop, err := newLoop(filepath.Join(root, "refcount.img"), GiB)
	if err != nil {
		return nil, err
	}
	defer loop.Close()
	if out, err := runOut("mkfs.ext4", "-q", "-F", "-m0", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", loop.Dev); err != nil {
		return nil, fmt.Errorf("mkfs: %v: %s", err, out)
	}
	p, err := install(filepath.Join(root, "ours"), e.TestBin, "flexblock", "loop", true)
	if err != nil {
		return nil, err
	}
	log := &logReader{Path: p.Log}
	defer UnmountUnder(root)
	un, err := newUnrelated(filepath.Join(root, "unrelated"))
	if err != nil {
		return nil, err
	}
	defer un.Close()
	c, err := startCaller(e.SpawnBin)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	opts := loopOptions(loop.Dev, "ext4")
	var rows []*RefcountRow
	for _, count := range o.Counts {
		if o.Progress != nil {
			o.Progress(fmt.Sprintf("refcount: making %d unrelated mounts", count))
		}
		if err := un.grow(count); err != nil {
			return nil, err
		}
		row := &RefcountRow{Unrelated: count, TableLines: tableSize(),
			Mount: &Series{Name: "flexblock mount"}, Unmount: &Series{Name: "flexblock unmount"}}
		rows = append(rows, row)
		for i := 0; i < o.N+1; i++ {
			pod := p.PodDir(fmt.Sprintf("rc-%d-%d", count, i), "data")
			if err := mkPodDir(pod); err != nil {
				return nil, err
			}
			log.skip()
			mx, err := c.run(testkit.KubeletEnv, p.Exe, "mount", pod, opts)
			if err != nil {
				return nil, err
			}
			if a := testkit.Decode(mx.Output); a.Status != "Success" {
				return nil, fmt.Errorf("mount with %d mounts: %s", count, a.Message)
			}
			ux, err := c.run(testkit.KubeletEnv, p.Exe, "unmount", pod)
			if err != nil {
				return nil, err
			}
			if a := testkit.Decode(ux.Output); a.Status != "Success" {
				return nil, fmt.Errorf("unmount with %d mounts: %s", count, a.Message)
			}
			calls, err := log.next()
			if err != nil || len(calls) != 2 {
				return nil, fmt.Errorf("driver log: want 2 calls, got %d (%v)", len(calls), err)
			}
			if left := mountsUnder(p.Kubelet); len(left) != 0 {
				return nil, fmt.Errorf("mounts left after unmount: %v", left)
			}
			_ = os.Remove(pod)
			if i == 0 {
				continue // warm-up
			}
			row.Mount.add(mx)
			row.Mount.addLog(calls[0])
			row.Unmount.add(ux)
			row.Unmount.addLog(calls[1])
		}
	}
	return rows, nil
}
