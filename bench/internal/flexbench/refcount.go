package flexbench

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/flexblock/flexblock/bench/internal/fastmountinfo"
	"github.com/flexblock/flexblock/driver/mount"
	"github.com/flexblock/flexblock/driver/volume"
)

// Unrelated is a set of bind mounts that have nothing to do with the
// driver: the background of a busy node (container rootfs, secrets,
// projected volumes). They are made before the volume's mounts, so the
// volume's lines come last in mountinfo: the worst case for a lookup.
type Unrelated struct {
	dir string
	n   int
}

// NewUnrelated mounts a tmpfs at dir for the mount points. Call only in a
// private mount namespace.
func NewUnrelated(dir string) (*Unrelated, error) {
	if !InPrivateNS() {
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
	return &Unrelated{dir: dir}, nil
}

// Grow adds bind mounts until there are n.
func (u *Unrelated) Grow(n int) error {
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
func (u *Unrelated) Close() { _ = unix.Unmount(u.dir, unix.MNT_DETACH) }

// TableSize is the number of lines in this process's mountinfo.
func TableSize() int {
	ms, _ := Mounts()
	return len(ms)
}

// RefcountRow is benchmark 4 at one size of the mount table.
type RefcountRow struct {
	Unrelated  int // unrelated mounts made
	TableLines int // mountinfo lines in the namespace, all told
	Mount      *Series
	Unmount    *Series
	Micro      []MicroResult
	// Reads of mountinfo by one mount and one unmount call (strace), by
	// the driver itself and by its tools; Traced is false without strace.
	Traced                                                     bool
	MountReads, MountToolReads, UnmountReads, UnmountToolReads int
}

// MicroResult is one in-process way of asking the mount table a question.
type MicroResult struct {
	Key  string // stable identifier (the Micro* constants)
	Name string
	Us   Stats // microseconds per call
}

// Keys of the in-process ways (MicroResult.Key).
const (
	MicroReadOnly      = "read"
	MicroLibLookup     = "lib-lookup"
	MicroLibUsers      = "lib-users"
	MicroLibPrefix     = "lib-prefix"
	MicroProtoLookup   = "proto-lookup"
	MicroProtoUsers    = "proto-users"
	MicroDriverMounted = "driver-mounted"
	MicroDriverSame    = "driver-same"
)

// RefcountOpts configures Refcount.
type RefcountOpts struct {
	Counts   []int // unrelated mounts, ascending (100, 10000)
	N        int   // mount+unmount cycles per count
	MicroN   int   // in-process repetitions per way, at the smallest count (scaled down for larger)
	Progress func(string)
}

// Refcount runs benchmark 4: a real mount and unmount (ext4 on a loop
// device, real tools) with a growing number of unrelated mounts in the
// namespace, the volume's mounts last. The driver answers its questions
// (is the pod dir mounted, whose bind is it, does another pod still use the
// global mount) with statx of the paths it recorded; its tools (mount,
// umount: libmount) still read the table. It also times, in process, the
// ways to ask those questions: the driver's (driver/mount, statx), and the
// mount-table ones it falls back to or that were measured against it
// (github.com/moby/sys/mountinfo, the byte pre-filter in fastmountinfo).
// Needs a private mount namespace.
func Refcount(e *Env, root string, o RefcountOpts) ([]*RefcountRow, error) {
	loop, err := NewLoop(filepath.Join(root, "refcount.img"), GiB)
	if err != nil {
		return nil, err
	}
	defer loop.Close()
	if out, err := runOut("mkfs.ext4", "-q", "-F", "-m0", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", loop.Dev); err != nil {
		return nil, fmt.Errorf("mkfs: %v: %s", err, out)
	}
	p, err := Install(filepath.Join(root, "ours"), e.TestBin, "flexblock", "loop", Config, true)
	if err != nil {
		return nil, err
	}
	log := &LogReader{Path: p.Log}
	defer UnmountUnder(root)
	un, err := NewUnrelated(filepath.Join(root, "unrelated"))
	if err != nil {
		return nil, err
	}
	defer un.Close()
	c, err := StartCaller(e.SpawnBin)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	opts := LoopOptions(loop.Dev, "ext4")
	var rows []*RefcountRow
	for _, count := range o.Counts {
		if o.Progress != nil {
			o.Progress(fmt.Sprintf("refcount: making %d unrelated mounts", count))
		}
		if err := un.Grow(count); err != nil {
			return nil, err
		}
		row := &RefcountRow{Unrelated: count, TableLines: TableSize(),
			Mount: &Series{Name: "flexblock mount"}, Unmount: &Series{Name: "flexblock unmount"}}
		rows = append(rows, row)
		for i := 0; i < o.N+1; i++ {
			pod := p.PodDir(fmt.Sprintf("rc-%d-%d", count, i), "flexblock", "data")
			if err := MkPodDir(pod); err != nil {
				return nil, err
			}
			log.Skip()
			if i == 0 {
				// Warm-up round: count the mountinfo reads (strace) and
				// time the in-process ways.
				if err := row.trace(p, pod, opts, o.MicroN*o.Counts[0]/count); err != nil {
					return nil, err
				}
				if _, err := log.Next(); err != nil {
					return nil, err
				}
				_ = os.Remove(pod)
				continue
			}
			mx, err := c.Run(KubeletEnv, p.Exe, "mount", pod, opts)
			if err != nil {
				return nil, err
			}
			if a := Decode(mx.Output); a.Status != "Success" {
				return nil, fmt.Errorf("mount with %d mounts: %s", count, a.Message)
			}
			ux, err := c.Run(KubeletEnv, p.Exe, "unmount", pod)
			if err != nil {
				return nil, err
			}
			if a := Decode(ux.Output); a.Status != "Success" {
				return nil, fmt.Errorf("unmount with %d mounts: %s", count, a.Message)
			}
			calls, err := log.Next()
			if err != nil || len(calls) != 2 {
				return nil, fmt.Errorf("driver log: want 2 calls, got %d (%v)", len(calls), err)
			}
			if left := MountsUnder(p.Kubelet); len(left) != 0 {
				return nil, fmt.Errorf("mounts left after unmount: %v", left)
			}
			_ = os.Remove(pod)
			row.Mount.Add(mx)
			row.Mount.AddLog(calls[0])
			row.Unmount.Add(ux)
			row.Unmount.AddLog(calls[1])
		}
	}
	return rows, nil
}

func (row *RefcountRow) trace(p *Plugin, pod, opts string, microN int) error {
	var err error
	var out string
	row.MountReads, row.MountToolReads, out, row.Traced, err = MountinfoReads(KubeletEnv, p.Exe, "mount", pod, opts)
	if err != nil || (row.Traced && Decode(out).Status != "Success") {
		return fmt.Errorf("traced mount: %v: %s", err, out)
	}
	if !row.Traced {
		if _, _, err := p.Call(KubeletEnv, "mount", pod, opts); err != nil {
			return err
		}
	}
	row.Micro = micro(p, pod, microN)
	if row.Traced {
		row.UnmountReads, row.UnmountToolReads, out, _, err = MountinfoReads(KubeletEnv, p.Exe, "unmount", pod)
		if err != nil || Decode(out).Status != "Success" {
			return fmt.Errorf("traced unmount: %v: %s", err, out)
		}
		return nil
	}
	_, _, err = p.Call(KubeletEnv, "unmount", pod)
	return err
}

// micro times the in-process ways to ask the two questions of an unmount,
// with the volume mounted (global mount + pod bind at the table's end).
func micro(p *Plugin, pod string, n int) []MicroResult {
	n = max(n, 5)
	bind, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(pod))
	if err != nil || len(bind) == 0 {
		return nil
	}
	g := bind[0] // Users of the pod's bind: the global mount
	global := volume.GlobalMount(p.Kubelet, p.Name, filepath.Base(g.Source))
	drv := &mount.Tools{} // the driver's Mounter, as app.NewDriver makes it (no nsenter)
	ways := []struct {
		key, name string
		fn        func()
	}{
		{MicroReadOnly, "read mountinfo, no parsing (the kernel's share of any table read)", func() {
			f, cl, err := fastmountinfo.Open()
			if err == nil {
				_, _ = io.Copy(io.Discard, f)
				cl()
			}
		}},
		{MicroLibLookup, "table Lookup: mountinfo.GetMounts(SingleEntryFilter) (the driver's fallback)", func() {
			_, _ = mountinfo.GetMounts(mountinfo.SingleEntryFilter(pod))
		}},
		{MicroLibUsers, "table Users: mountinfo.GetMounts(same device and root) (the driver's fallback)", func() {
			_, _ = mountinfo.GetMounts(func(i *mountinfo.Info) (bool, bool) {
				return !(i.Major == g.Major && i.Minor == g.Minor && i.Root == g.Root) || i.Mountpoint == g.Mountpoint, false
			})
		}},
		{MicroLibPrefix, "mountinfo.GetMounts(PrefixFilter(kubelet root))", func() {
			_, _ = mountinfo.GetMounts(mountinfo.PrefixFilter(p.Kubelet))
		}},
		{MicroProtoLookup, "pre-filter prototype Lookup: compare raw bytes, parse matches only", func() {
			f, cl, err := fastmountinfo.Open()
			if err == nil {
				_, _ = fastmountinfo.Lookup(f, pod)
				cl()
			}
		}},
		{MicroProtoUsers, "pre-filter prototype Users: compare raw bytes, parse matches only", func() {
			f, cl, err := fastmountinfo.Open()
			if err == nil {
				_, _ = fastmountinfo.Users(f, g)
				cl()
			}
		}},
		{MicroDriverMounted, "driver Mounted(pod dir): statx, no table read", func() {
			if ok, err := drv.Mounted(pod); err != nil || !ok {
				panic(fmt.Sprintf("Mounted(%s) = %v, %v", pod, ok, err))
			}
		}},
		{MicroDriverSame, "driver Same(global mount, pod dir): two statx, no table read", func() {
			if ok, err := drv.Same(global, pod); err != nil || !ok {
				panic(fmt.Sprintf("Same(%s, %s) = %v, %v", global, pod, ok, err))
			}
		}},
	}
	var out []MicroResult
	for _, w := range ways {
		var us []float64
		w.fn() // warm
		for i := 0; i < n; i++ {
			start := time.Now()
			w.fn()
			us = append(us, float64(time.Since(start).Nanoseconds())/1000)
		}
		out = append(out, MicroResult{Key: w.key, Name: w.name, Us: Summarize(us)})
	}
	return out
}

// MountinfoReads runs one driver call under strace and counts the opens
// of mountinfo: by the driver (github.com/moby/sys/mountinfo opens
// /proc/thread-self/mountinfo) and by its tools (libmount opens
// /proc/self/mountinfo). ok is false when strace is missing.
func MountinfoReads(env []string, argv ...string) (driver, tools int, output string, ok bool, err error) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		return 0, 0, "", false, nil
	}
	tmp, err := os.CreateTemp("", "flexbench-strace")
	if err != nil {
		return 0, 0, "", false, err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command(strace, append([]string{"-f", "-qq", "-e", "trace=openat", "-o", tmp.Name()}, argv...)...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, string(out), false, err
	}
	b, _ := os.ReadFile(tmp.Name())
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.Contains(l, "ENOENT"):
		case strings.Contains(l, "\"/proc/thread-self/mountinfo\""):
			driver++
		case strings.Contains(l, "/mountinfo\""):
			tools++
		}
	}
	return driver, tools, string(out), true, nil
}
