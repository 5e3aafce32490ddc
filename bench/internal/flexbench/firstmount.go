package flexbench

import (
	"fmt"
	"github.com/flexblock/flexblock/test/testkit"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// FirstMountRow is benchmark 2 for one filesystem and size: the first
// mount of a blank volume, our driver (the whole mount call: blkid probe,
// read check of both ends, lazy mkfs, global mount, bind) against the plain
// sequence kubelet's mount-utils (SafeFormatAndMount) ran: blkid probe,
// mkfs.ext4 -F -m0 DEV | mkfs.xfs -f DEV, mount.
type FirstMountRow struct {
	Storage             string // what the sparse image lives on
	FS                  string
	Size                int64
	Ours, Plain         *Series // wall of the whole first mount
	OursMkfs, PlainMkfs []float64
	// OursMount is the driver's first `mount` after its mkfs: the kernel's
	// mount of the new filesystem (as the driver's log times it).
	OursMount             []float64
	OursAlloc, PlainAlloc []float64 // bytes allocated in the sparse file after it
	// OursMkfsArgv is the mkfs command the driver ran (its log), with the
	// device replaced by DEV.
	OursMkfsArgv []string
}

// FirstMountOpts configures FirstMount.
type FirstMountOpts struct {
	Storage  string // what ImageDir is on, for the rows
	ImageDir string // must support sparse files
	FSTypes  []string
	Sizes    []int64
	Reps     func(size int64) (ours, plain int)
	Progress func(string)
}

// PlainMkfsArgs are mount-utils' arguments (k8s.io/mount-utils format.go).
func PlainMkfsArgs(fsType, dev string) []string {
	if fsType == "xfs" {
		return []string{"mkfs.xfs", "-f", dev}
	}
	return []string{"mkfs." + fsType, "-F", "-m0", dev}
}

// FirstMount runs benchmark 2: for each fs and size, Reps(size) first
// mounts each way, alternating, on one loop device blanked before each.
// Needs a private mount namespace.
func FirstMount(e *Env, root string, o FirstMountOpts) ([]*FirstMountRow, error) {
	p, err := install(filepath.Join(root, "ours"), e.TestBin, "flexblock", "loop", true)
	if err != nil {
		return nil, err
	}
	defer UnmountUnder(root)
	c, err := startCaller(e.SpawnBin)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	log := &logReader{Path: p.Log}
	plainDir := filepath.Join(root, "plain-mnt")
	if err := os.MkdirAll(plainDir, 0o755); err != nil {
		return nil, err
	}
	progress := func(format string, a ...any) {
		if o.Progress != nil {
			o.Progress(fmt.Sprintf(format, a...))
		}
	}
	var rows []*FirstMountRow
	for _, fs := range o.FSTypes {
		for _, size := range o.Sizes {
			row := &FirstMountRow{Storage: o.Storage, FS: fs, Size: size, Ours: &Series{Name: "flexblock mount"}, Plain: &Series{Name: "blkid + plain mkfs + mount"}}
			rows = append(rows, row)
			loop, err := newLoop(filepath.Join(o.ImageDir, fmt.Sprintf("first-%s-%d.img", fs, size>>30)), size)
			if err != nil {
				return nil, err
			}
			no, np := o.Reps(size)
			for i := 0; i < max(no, np); i++ {
				if i < no {
					progress("first mount %s %s on %s: flexblock #%d", fs, SizeName(size), o.Storage, i+1)
					if err := row.ours(c, p, log, loop, i); err != nil {
						loop.Close()
						return nil, err
					}
				}
				if i < np {
					progress("first mount %s %s on %s: plain #%d", fs, SizeName(size), o.Storage, i+1)
					if err := row.plain(c, loop, plainDir); err != nil {
						loop.Close()
						return nil, err
					}
				}
			}
			loop.Close()
		}
	}
	return rows, nil
}

func settle(loop *loop) error {
	if err := loop.blank(); err != nil {
		return err
	}
	unix.Sync() // nothing of the previous run is left to write back during this one
	return nil
}

func (row *FirstMountRow) ours(c *caller, p *testkit.Plugin, log *logReader, loop *loop, i int) error {
	if err := settle(loop); err != nil {
		return err
	}
	pod := p.PodDir(fmt.Sprintf("first-%d", i), "data")
	if err := mkPodDir(pod); err != nil {
		return err
	}
	log.skip()
	x, err := c.run(testkit.KubeletEnv, p.Exe, "mount", pod, loopOptions(loop.Dev, row.FS))
	if err != nil {
		return err
	}
	if a := testkit.Decode(x.Output); a.Status != "Success" {
		return fmt.Errorf("flexblock first mount %s %s: %s", row.FS, SizeName(row.Size), a.Message)
	}
	calls, err := log.next()
	if err != nil || len(calls) != 1 {
		return fmt.Errorf("driver log: want 1 call, got %d (%v)", len(calls), err)
	}
	formatted, mounted := false, false
	for _, t := range calls[0].Tools {
		if formatted && !mounted && t.Tool == "mount" {
			row.OursMount = append(row.OursMount, t.Ms)
			mounted = true
		}
		if strings.HasPrefix(t.Tool, "mkfs.") {
			row.OursMkfs = append(row.OursMkfs, t.Ms)
			row.OursMkfsArgv = nil
			for _, a := range t.Argv {
				if a == loop.Dev {
					a = "DEV"
				}
				row.OursMkfsArgv = append(row.OursMkfsArgv, a)
			}
			formatted = true
		}
	}
	if !formatted {
		return fmt.Errorf("flexblock did not format the blank %s", loop.Dev)
	}
	row.Ours.add(x)
	row.Ours.addLog(calls[0])
	if got := blkidType(loop.Dev); got != row.FS {
		return fmt.Errorf("after flexblock mount %s holds %q", loop.Dev, got)
	}
	if _, err := callTimed(p, "unmount", pod); err != nil {
		return err
	}
	row.OursAlloc = append(row.OursAlloc, float64(loop.allocated()))
	return os.Remove(pod)
}

func (row *FirstMountRow) plain(c *caller, loop *loop, dir string) error {
	if err := settle(loop); err != nil {
		return err
	}
	var total sample
	steps := [][]string{
		{"blkid", "-p", "-s", "TYPE", "-s", "PTTYPE", "-o", "export", loop.Dev},
		PlainMkfsArgs(row.FS, loop.Dev),
		{"mount", "-t", row.FS, "-o", "defaults", loop.Dev, dir},
	}
	for i, argv := range steps {
		x, err := c.runTool(testkit.KubeletEnv, argv...)
		if err != nil {
			return err
		}
		if i == 0 && x.Exit != 2 {
			return fmt.Errorf("plain: blkid on the blank device exited %d: %s", x.Exit, x.Output)
		}
		if i > 0 && x.Exit != 0 {
			return fmt.Errorf("plain: %v exited %d: %s", argv, x.Exit, x.Output)
		}
		if i == 1 {
			row.PlainMkfs = append(row.PlainMkfs, ms(x.Wall))
		}
		total.Wall += x.Wall
		total.CPU += x.CPU
		total.MaxRSSKiB = max(total.MaxRSSKiB, x.MaxRSSKiB)
		total.FloorKiB = max(total.FloorKiB, x.FloorKiB)
	}
	row.Plain.add(total)
	if err := unix.Unmount(dir, 0); err != nil {
		return err
	}
	row.PlainAlloc = append(row.PlainAlloc, float64(loop.allocated()))
	return nil
}

func blkidType(dev string) string {
	out, _ := exec.Command("blkid", "-p", "-s", "TYPE", "-o", "value", dev).Output()
	return strings.TrimSpace(string(out))
}
