// Command report runs flexblock's benchmarks and writes BENCHMARKS.md:
// one table per benchmark with the current driver's figure, the baseline
// measured in the same run (the /bin/true floor, the bash+jq example
// driver, the plain mkfs sequence), the ratio, the goal of issue #8 it
// answers, the machine, and the command that reproduces it.
//
//	go run ./bench/report                  # everything, writes BENCHMARKS.md
//	go run ./bench/report -quick -o -      # a few iterations each, to stdout
//	go run ./bench/report -only 'init|refcount' -o /tmp/part.md
//
// It needs root (loop devices, mounts) and re-executes itself in a private
// mount namespace (unshare -m): every mount it makes disappears with it.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	fb "github.com/flexblock/flexblock/bench/internal/flexbench"
)

type config struct {
	quick                bool
	initN, noopN, realN  int
	sizes, tmpfsSizes    []int64
	fsTypes              []string
	firstReps, tmpfsReps func(int64) (int, int)
	refCounts            []int
	refN, microN         int
	volumes, pods, round int
	layoutReps           int
	floorN               int // host exec floors for the TCG factor, when section init does not run
}

func full() config {
	return config{
		initN: 300, noopN: 150, realN: 40,
		sizes: []int64{fb.GiB, 100 * fb.GiB, fb.TiB}, fsTypes: []string{"ext4", "xfs"},
		firstReps:  func(int64) (int, int) { return 7, 7 },
		tmpfsSizes: []int64{fb.GiB, fb.TiB},
		tmpfsReps: func(size int64) (int, int) {
			if size >= fb.TiB {
				return 5, 3 // the plain mkfs writes its 1 GiB journal for real here
			}
			return 5, 5
		},
		refCounts: []int{100, 10000}, refN: 20, microN: 400,
		volumes: 64, pods: 8, round: 5,
		layoutReps: 5, floorN: 30,
	}
}

func quick() config {
	return config{
		quick: true, initN: 10, noopN: 5, realN: 3,
		sizes: []int64{fb.GiB}, fsTypes: []string{"ext4", "xfs"},
		firstReps:  func(int64) (int, int) { return 1, 1 },
		tmpfsSizes: []int64{fb.GiB}, tmpfsReps: func(int64) (int, int) { return 1, 1 },
		refCounts: []int{100, 1000}, refN: 2, microN: 20,
		volumes: 8, pods: 4, round: 1,
		layoutReps: 1, floorN: 5,
	}
}

const (
	diskStorage  = "disk"
	tmpfsStorage = "tmpfs"
)

var sections = []string{"init", "noop", "real", "first", "refcount", "concurrency"}

func main() {
	out := flag.String("o", filepath.Join(fb.RepoRoot(), "BENCHMARKS.md"), "where to write the report (- for stdout)")
	only := flag.String("only", "", "run only the sections matching this regexp ("+strings.Join(sections, ", ")+")")
	q := flag.Bool("quick", false, "a few iterations of each (CI smoke run: proves they run, figures mean nothing)")
	flag.IntVar(&fb.Nice, "nice", fb.Nice, "nice value for the whole run (0: leave it)")
	vm := flag.Bool("vm", false, "also run benchmark 3 in the real-kernel VM (scripts/vm: RBD and iSCSI; several minutes)")
	vmN := flag.Int("vm-n", 5, "mount+unmount cycles per backend in the VM")
	vmFloorN := flag.Int("vm-floor-n", 30, "runs of each exec floor program in the VM (the TCG slowdown factor)")
	vmFormat := flag.String("vm-format-size", "50G", "size of the blank RBD images of the plain-vs-flexblock format comparison in the VM (empty: skip it)")
	flag.Parse()
	if err := fb.EnterPrivateMountNS(); err != nil {
		fatal(err)
	}
	cfg := full()
	if *q {
		cfg = quick()
	}
	sel, err := regexp.Compile(*only)
	if err != nil {
		fatal(err)
	}
	want := func(s string) bool { return sel.MatchString(s) }
	work, err := os.MkdirTemp("/var/tmp", "flexbench-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(work)
	progress("building (production, test build, helpers) in " + work)
	env, err := fb.Setup(work)
	if err != nil {
		fatal(err)
	}
	r := &report{cfg: cfg, env: env, start: time.Now(), args: os.Args[1:]}
	r.machine = env.Describe()
	run := func(name string, fn func(dir string) error) {
		if !want(name) {
			return
		}
		dir := filepath.Join(work, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fatal(err)
		}
		progress("running " + name)
		if err := fn(dir); err != nil {
			r.errors = append(r.errors, fmt.Sprintf("%s: %v", name, err))
			progress("  FAILED: " + err.Error())
		}
		fb.UnmountUnder(dir)
	}
	run("init", func(dir string) error {
		r.init, err = fb.Init(env, dir, cfg.initN)
		return err
	})
	run("noop", func(dir string) error {
		r.noop, err = fb.NoopCycle(env, dir, cfg.noopN)
		return err
	})
	run("real", func(dir string) error {
		r.real, err = fb.RealCycle(env, dir, cfg.realN)
		return err
	})
	run("first", func(dir string) error {
		o := fb.FirstMountOpts{Storage: diskStorage, ImageDir: dir, FSTypes: cfg.fsTypes, Sizes: cfg.sizes, Reps: cfg.firstReps, Progress: progress}
		r.first, err = fb.FirstMount(env, dir, o)
		if err != nil {
			return err
		}
		// The same on a tmpfs: no zeroing offload (see writeFirst).
		tmp := filepath.Join(dir, "tmpfs")
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			return err
		}
		if err := unix.Mount("flexbench-images", tmp, "tmpfs", 0, "size=4T"); err != nil {
			return err
		}
		defer unix.Unmount(tmp, unix.MNT_DETACH)
		o.Storage, o.ImageDir, o.Sizes, o.Reps = tmpfsStorage, tmp, cfg.tmpfsSizes, cfg.tmpfsReps
		rows, err := fb.FirstMount(env, filepath.Join(dir, "t"), o)
		r.first = append(r.first, rows...)
		if err != nil {
			return err
		}
		// What the layouts flexblock does not use (yet) would save: mkfs
		// alone at the smallest and largest sizes, on both storages.
		variants := layoutVariants(r.first)
		if len(variants) == 0 {
			return nil
		}
		for _, st := range []struct {
			storage, dir string
			sizes        []int64
		}{{diskStorage, dir, ends(cfg.sizes)}, {tmpfsStorage, tmp, ends(cfg.tmpfsSizes)}} {
			lo := fb.LayoutOpts{Storage: st.storage, ImageDir: st.dir, Sizes: st.sizes, Variants: variants, Reps: cfg.layoutReps, Progress: progress}
			rows, err := fb.Layouts(env, filepath.Join(dir, "layout-"+st.storage), lo)
			r.layouts = append(r.layouts, rows...)
			if err != nil {
				return err
			}
		}
		return nil
	})
	run("refcount", func(dir string) error {
		o := fb.RefcountOpts{Counts: cfg.refCounts, N: cfg.refN, MicroN: cfg.microN, Progress: progress}
		r.refcount, err = fb.Refcount(env, dir, o)
		return err
	})
	run("concurrency", func(dir string) error {
		r.conc, err = fb.Concurrency(env, dir, dir, cfg.volumes, cfg.pods, cfg.round, progress)
		return err
	})
	if *vm && want("real") {
		// The host side of the VM's slowdown factor: benchmark 1a's exec
		// floors, or the same three measured here when it did not run.
		r.hostFloor = r.init
		if r.hostFloor == nil {
			progress("running the exec floors on the host (the VM's slowdown factor)")
			dir := filepath.Join(work, "floor")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				fatal(err)
			}
			if r.hostFloor, err = fb.ExecFloor(env, dir, cfg.floorN); err != nil {
				r.errors = append(r.errors, "floor: "+err.Error())
				progress("  FAILED: " + err.Error())
			}
		}
		progress("running real in the VM (scripts/vm/run.sh)")
		start := time.Now()
		r.vm, err = fb.RunVM(env, env.ProdBin, fb.VMOpts{N: *vmN, FloorN: *vmFloorN, FormatSize: *vmFormat}, progress)
		if r.vm != nil {
			r.vm.Seconds = time.Since(start).Seconds()
		}
		if err != nil {
			r.errors = append(r.errors, "real (VM): "+err.Error())
			progress("  FAILED: " + err.Error())
		}
	}
	r.end = time.Now()
	r.loadEnd = fb.LoadAvg()
	var w io.Writer = os.Stdout
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			fatal(err)
		}
		defer f.Close()
		w = f
	}
	r.write(w)
	if *out != "-" {
		progress("wrote " + *out)
	}
	if len(r.errors) > 0 {
		for _, e := range r.errors {
			fmt.Fprintln(os.Stderr, "error:", e)
		}
		os.Exit(1)
	}
}

// ends is the smallest and the largest of sizes (one size: just it).
func ends(sizes []int64) []int64 {
	if len(sizes) == 0 {
		return nil
	}
	lo, hi := sizes[0], sizes[0]
	for _, s := range sizes {
		lo, hi = min(lo, s), max(hi, s)
	}
	if lo == hi {
		return []int64{lo}
	}
	return []int64{lo, hi}
}

// layoutVariants are the mkfs commands the layout comparison runs: the
// driver's own (as benchmark 2's log has it) and the same with the option
// that bounds what grows with the size, which the driver does not use.
func layoutVariants(rows []*fb.FirstMountRow) []fb.LayoutVariant {
	var out []fb.LayoutVariant
	for _, fs := range []string{"ext4", "xfs"} {
		var argv []string
		for _, row := range rows {
			if row.FS == fs && len(row.OursMkfsArgv) > 0 {
				argv = row.OursMkfsArgv
				break
			}
		}
		if len(argv) == 0 || argv[len(argv)-1] != "DEV" {
			continue
		}
		extra := layoutExtra[fs]
		with := append(append(append([]string{}, argv[:len(argv)-1]...), extra...), "DEV")
		out = append(out,
			fb.LayoutVariant{FS: fs, Name: layoutCurrent, Argv: argv},
			fb.LayoutVariant{FS: fs, Name: "+ " + strings.Join(extra, " "), Argv: with})
	}
	return out
}

const layoutCurrent = "the driver's format"

// layoutExtra is, per filesystem, the mkfs option that would bound what
// still grows with the size: ext4's descriptor copies and reserved GDT
// blocks (meta_bg keeps three copies of each descriptor block, no resize
// inode), xfs's log (a fixed size instead of one that grows to 512 MiB at
// 1 TiB with xfsprogs 6.1; 64 MiB is its size at 1 GiB).
var layoutExtra = map[string][]string{
	"ext4": {"-O", "meta_bg,^resize_inode"},
	"xfs":  {"-l", "size=64m"},
}

func progress(s string) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), s)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench/report:", err)
	os.Exit(1)
}
