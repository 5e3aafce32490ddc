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
	// Variants are the driver with a proposal applied, in RefcountOpts order.
	Variants []*VariantCycle
}

// VariantCycle is the mount and unmount of one variant of the driver.
type VariantCycle struct {
	Name           string
	Mount, Unmount *Series
	// Reads of mountinfo by the driver in one mount and one unmount (strace).
	Traced                   bool
	MountReads, UnmountReads int
}

// MicroResult is one in-process way of asking the mount table a question.
type MicroResult struct {
	Name string
	Us   Stats // microseconds per call
}

// RefcountOpts configures Refcount.
type RefcountOpts struct {
	Counts   []int     // unrelated mounts, ascending (100, 10000)
	N        int       // mount+unmount cycles per count
	MicroN   int       // in-process repetitions per way, at the smallest count (scaled down for larger)
	Variants []Variant // other builds of the driver, measured interleaved with ours
	Progress func(string)
}

// Refcount runs benchmark 4: a real mount and unmount (ext4 on a loop
// device, real tools) with a growing number of unrelated mounts in the
// namespace; the unmount's refcount check reads mountinfo. It also times,
// in process, the ways to ask the mount table (the driver's through
// github.com/moby/sys/mountinfo and the prototype in fastmountinfo).
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
	type drv struct {
		p   *Plugin
		log *LogReader
	}
	ours, err := Install(filepath.Join(root, "ours"), e.TestBin, "flexblock", "loop", Config, true)
	if err != nil {
		return nil, err
	}
	drivers := []drv{{ours, &LogReader{Path: ours.Log}}}
	for i, v := range o.Variants {
		pp, err := Install(filepath.Join(root, fmt.Sprintf("variant%d", i)), v.Bin, "flexblock", "loop", Config, true)
		if err != nil {
			return nil, err
		}
		drivers = append(drivers, drv{pp, &LogReader{Path: pp.Log}})
	}
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
		for _, v := range o.Variants {
			row.Variants = append(row.Variants, &VariantCycle{Name: v.Name, Mount: &Series{Name: v.Name + " mount"}, Unmount: &Series{Name: v.Name + " unmount"}})
		}
		rows = append(rows, row)
		for i := 0; i < o.N+1; i++ {
			for k, d := range drivers {
				pod := d.p.PodDir(fmt.Sprintf("rc-%d-%d", count, i), "flexblock", "data")
				if err := MkPodDir(pod); err != nil {
					return nil, err
				}
				d.log.Skip()
				if i == 0 {
					// Warm-up round: count the mountinfo reads (strace) and,
					// for the current driver, time the in-process ways.
					if k == 0 {
						if err := row.trace(d.p, pod, opts, o.MicroN*o.Counts[0]/count); err != nil {
							return nil, err
						}
					} else if err := row.Variants[k-1].trace(d.p, pod, opts); err != nil {
						return nil, err
					}
					if _, err := d.log.Next(); err != nil {
						return nil, err
					}
					_ = os.Remove(pod)
					continue
				}
				mx, err := c.Run(KubeletEnv, d.p.Exe, "mount", pod, opts)
				if err != nil {
					return nil, err
				}
				if a := Decode(mx.Output); a.Status != "Success" {
					return nil, fmt.Errorf("mount with %d mounts: %s", count, a.Message)
				}
				ux, err := c.Run(KubeletEnv, d.p.Exe, "unmount", pod)
				if err != nil {
					return nil, err
				}
				if a := Decode(ux.Output); a.Status != "Success" {
					return nil, fmt.Errorf("unmount with %d mounts: %s", count, a.Message)
				}
				calls, err := d.log.Next()
				if err != nil || len(calls) != 2 {
					return nil, fmt.Errorf("driver log: want 2 calls, got %d (%v)", len(calls), err)
				}
				if left := MountsUnder(d.p.Kubelet); len(left) != 0 {
					return nil, fmt.Errorf("mounts left after unmount: %v", left)
				}
				_ = os.Remove(pod)
				if i == 0 {
					continue // warm-up
				}
				if k == 0 {
					row.Mount.Add(mx)
					row.Mount.AddLog(calls[0])
					row.Unmount.Add(ux)
					row.Unmount.AddLog(calls[1])
				} else {
					v := row.Variants[k-1]
					v.Mount.Add(mx)
					v.Mount.AddLog(calls[0])
					v.Unmount.Add(ux)
					v.Unmount.AddLog(calls[1])
				}
			}
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

func (v *VariantCycle) trace(p *Plugin, pod, opts string) error {
	var err error
	var out string
	v.MountReads, _, out, v.Traced, err = MountinfoReads(KubeletEnv, p.Exe, "mount", pod, opts)
	if err != nil || (v.Traced && Decode(out).Status != "Success") {
		return fmt.Errorf("traced mount: %v: %s", err, out)
	}
	if !v.Traced {
		if _, _, err := p.Call(KubeletEnv, "mount", pod, opts); err != nil {
			return err
		}
		_, _, err = p.Call(KubeletEnv, "unmount", pod)
		return err
	}
	v.UnmountReads, _, out, _, err = MountinfoReads(KubeletEnv, p.Exe, "unmount", pod)
	if err != nil || Decode(out).Status != "Success" {
		return fmt.Errorf("traced unmount: %v: %s", err, out)
	}
	return nil
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
	global := filepath.Join(p.Kubelet, "plugins", "flexblock", p.Name, "mounts", filepath.Base(g.Source))
	ways := []struct {
		name string
		fn   func()
	}{
		{"read mountinfo, no parsing (the kernel's share)", func() {
			f, cl, err := fastmountinfo.Open()
			if err == nil {
				_, _ = io.Copy(io.Discard, f)
				cl()
			}
		}},
		{"driver Lookup: mountinfo.GetMounts(SingleEntryFilter)", func() {
			_, _ = mountinfo.GetMounts(mountinfo.SingleEntryFilter(pod))
		}},
		{"driver Users: mountinfo.GetMounts(same device and root)", func() {
			_, _ = mountinfo.GetMounts(func(i *mountinfo.Info) (bool, bool) {
				return !(i.Major == g.Major && i.Minor == g.Minor && i.Root == g.Root) || i.Mountpoint == g.Mountpoint, false
			})
		}},
		{"mountinfo.GetMounts(PrefixFilter(kubelet root))", func() {
			_, _ = mountinfo.GetMounts(mountinfo.PrefixFilter(p.Kubelet))
		}},
		{"prototype Lookup: byte pre-filter, parse matches only", func() {
			f, cl, err := fastmountinfo.Open()
			if err == nil {
				_, _ = fastmountinfo.Lookup(f, pod)
				cl()
			}
		}},
		{"prototype Users: byte pre-filter, parse matches only", func() {
			f, cl, err := fastmountinfo.Open()
			if err == nil {
				_, _ = fastmountinfo.Users(f, g)
				cl()
			}
		}},
		{"mountinfo.Mounted (openat2/statx, no table read)", func() {
			_, _ = mountinfo.Mounted(pod)
		}},
		{"prototype SameMount: statx of global and pod (no table read)", func() {
			if ok, err := fastmountinfo.SameMount(global, pod); err != nil || !ok {
				panic(fmt.Sprintf("SameMount(%s, %s) = %v, %v", global, pod, ok, err))
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
		out = append(out, MicroResult{Name: w.name, Us: Summarize(us)})
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
