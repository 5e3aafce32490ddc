// Command report runs flexblock's benchmarks and writes BENCHMARKS.md:
// one table per benchmark with the current driver's figure, the baseline
// measured in the same run (the /bin/true floor, the bash+jq example
// driver, the plain mkfs sequence), the ratio, the goal of issue #8 it
// answers, the machine, and the command that reproduces it.
//
//	go -C bench run ./report                  # everything, writes BENCHMARKS.md
//	go -C bench run ./report -quick -o -      # a few iterations each, to stdout
//	go -C bench run ./report -only 'init|refcount' -o /tmp/part.md
//
// It needs root (loop devices, mounts) and re-executes itself in a private
// mount namespace (unshare -m): every mount it makes disappears with it.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	fb "github.com/flexblock/flexblock/bench/internal/flexbench"
	"github.com/flexblock/flexblock/test/testkit"
)

type config struct {
	quick                bool
	initN, noopN, realN  int
	sizes, tmpfsSizes    []int64
	fsTypes              []string
	firstReps, tmpfsReps func(int64) (int, int)
	refCounts            []int
	refN                 int
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
		refCounts: []int{100, 10000}, refN: 20,
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
		refCounts: []int{100, 1000}, refN: 2,
		volumes: 8, pods: 4, round: 1,
		layoutReps: 1, floorN: 5,
	}
}

const (
	diskStorage  = "disk"
	tmpfsStorage = "tmpfs"
)

// section is one benchmark the report can run (-only selects by name).
type section struct {
	name string
	run  func(r *report, dir string) error
}

// sections are the report's benchmarks, in the order they run.
var sections = []section{
	{"init", func(r *report, dir string) (err error) { r.init, err = fb.Init(r.env, dir, r.cfg.initN); return err }},
	{"noop", func(r *report, dir string) (err error) {
		r.noop, err = fb.NoopCycle(r.env, dir, r.cfg.noopN)
		return err
	}},
	{"real", func(r *report, dir string) (err error) {
		r.real, err = fb.RealCycle(r.env, dir, r.cfg.realN)
		return err
	}},
	{"first", (*report).runFirst},
	{"refcount", func(r *report, dir string) (err error) {
		r.refcount, err = fb.Refcount(r.env, dir, fb.RefcountOpts{Counts: r.cfg.refCounts, N: r.cfg.refN, Progress: progress})
		return err
	}},
	{"concurrency", func(r *report, dir string) (err error) {
		r.conc, err = fb.Concurrency(r.env, dir, dir, r.cfg.volumes, r.cfg.pods, r.cfg.round, progress)
		return err
	}},
}

func sectionNames() []string {
	var out []string
	for _, s := range sections {
		out = append(out, s.name)
	}
	return out
}

// options are the command line's.
type options struct {
	out  string
	only *regexp.Regexp
	cfg  config
	vm   bool
	vmO  fb.VMOpts
	// cluster runs benchmark 6 on the test cluster; clusterOnly runs just
	// it and replaces its section in the report at out.
	cluster, clusterOnly bool
}

func parseFlags() options {
	out := flag.String("o", filepath.Join(testkit.Root(), "BENCHMARKS.md"), "where to write the report (- for stdout)")
	only := flag.String("only", "", "run only the sections matching this regexp ("+strings.Join(sectionNames(), ", ")+")")
	q := flag.Bool("quick", false, "a few iterations of each (CI smoke run: proves they run, figures mean nothing)")
	flag.IntVar(&fb.Nice, "nice", fb.Nice, "nice value for the whole run (0: leave it)")
	vm := flag.Bool("vm", false, "also run benchmark 3 in the real-kernel VM (scripts/vm: RBD and iSCSI; several minutes)")
	vmN := flag.Int("vm-n", 5, "mount+unmount cycles per backend in the VM")
	vmFloorN := flag.Int("vm-floor-n", 30, "runs of each exec floor program in the VM (the TCG slowdown factor)")
	vmFormat := flag.String("vm-format-size", "50G", "size of the blank RBD images of the plain-vs-flexblock format comparison in the VM (empty: skip it)")
	cluster := flag.Bool("cluster", false, "also run benchmark 6 on the test cluster (scripts/cluster/bench.sh: starts it unless one is up; ~15 min); without it the last cluster section of the report at -o is kept")
	clusterOnly := flag.Bool("cluster-only", false, "run only benchmark 6 and replace its section in the report at -o")
	flag.Parse()
	sel, err := regexp.Compile(*only)
	if err != nil {
		fatal(fmt.Errorf("-only: %w", err))
	}
	o := options{out: *out, only: sel, cfg: full(), vm: *vm, vmO: fb.VMOpts{N: *vmN, FloorN: *vmFloorN, FormatSize: *vmFormat},
		cluster: *cluster, clusterOnly: *clusterOnly}
	if *q {
		o.cfg = quick()
	}
	return o
}

func main() {
	o := parseFlags()
	if o.clusterOnly {
		clusterOnly(o.out)
		return
	}
	if err := fb.EnterPrivateMountNS(); err != nil {
		fatal(err)
	}
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
	r := &report{cfg: o.cfg, env: env, start: time.Now(), args: os.Args[1:], machine: env.Describe()}
	for _, s := range sections {
		if o.only.MatchString(s.name) {
			r.runSection(work, s)
		}
	}
	if o.vm && o.only.MatchString("real") {
		r.runVM(work, o.vmO)
	}
	if o.cluster {
		progress("running the cluster benchmark (scripts/cluster/bench.sh)")
		c, err := runCluster(work)
		r.check("cluster", err)
		if c != nil {
			r.cluster = c.block()
		}
	} else if o.out != "-" {
		r.cluster = carriedBlock(o.out)
	}
	r.end, r.loadEnd = time.Now(), fb.LoadAvg()
	r.writeTo(o.out)
	if len(r.errors) > 0 {
		for _, e := range r.errors {
			fmt.Fprintln(os.Stderr, "error:", e)
		}
		os.Exit(1)
	}
}

// clusterOnly runs benchmark 6 alone and puts its section into the report
// at out (stdout for -).
func clusterOnly(out string) {
	work, err := os.MkdirTemp("/var/tmp", "flexbench-cluster-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(work)
	c, err := runCluster(work)
	if err != nil {
		fatal(err)
	}
	if out == "-" {
		fmt.Print(c.block())
		return
	}
	if err := spliceCluster(out, c.block()); err != nil {
		fatal(err)
	}
	progress("wrote the cluster section of " + out)
}

// runSection runs one benchmark in its own scratch dir; a failure is
// recorded in the report, and the next section runs.
func (r *report) runSection(work string, s section) {
	dir := filepath.Join(work, s.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fatal(err)
	}
	progress("running " + s.name)
	r.check(s.name, s.run(r, dir))
	fb.UnmountUnder(dir)
}

// check records err (nil: nothing) as a failure of what.
func (r *report) check(what string, err error) {
	if err != nil {
		r.errors = append(r.errors, fmt.Sprintf("%s: %v", what, err))
		progress("  FAILED: " + err.Error())
	}
}

// runFirst is benchmark 2: on disk, on a tmpfs (no zeroing offload, see
// writeFirst), then the layouts the driver does not use (yet).
func (r *report) runFirst(dir string) error {
	cfg := r.cfg
	o := fb.FirstMountOpts{Storage: diskStorage, ImageDir: dir, FSTypes: cfg.fsTypes, Sizes: cfg.sizes, Reps: cfg.firstReps, Progress: progress}
	var err error
	if r.first, err = fb.FirstMount(r.env, dir, o); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "tmpfs")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("flexbench-images", tmp, "tmpfs", 0, "size=4T"); err != nil {
		return err
	}
	defer unix.Unmount(tmp, unix.MNT_DETACH)
	o.Storage, o.ImageDir, o.Sizes, o.Reps = tmpfsStorage, tmp, cfg.tmpfsSizes, cfg.tmpfsReps
	rows, err := fb.FirstMount(r.env, filepath.Join(dir, "t"), o)
	r.first = append(r.first, rows...)
	if err != nil {
		return err
	}
	return r.runLayouts(dir, tmp)
}

// runLayouts measures mkfs alone with the layouts flexblock does not use
// (yet), at the smallest and largest sizes, on both storages: what they
// would save.
func (r *report) runLayouts(diskDir, tmpfsDir string) error {
	variants := layoutVariants(r.first)
	if len(variants) == 0 {
		return nil
	}
	for _, st := range []struct {
		storage, dir string
		sizes        []int64
	}{{diskStorage, diskDir, ends(r.cfg.sizes)}, {tmpfsStorage, tmpfsDir, ends(r.cfg.tmpfsSizes)}} {
		lo := fb.LayoutOpts{Storage: st.storage, ImageDir: st.dir, Sizes: st.sizes, Variants: variants, Reps: r.cfg.layoutReps, Progress: progress}
		rows, err := fb.Layouts(r.env, filepath.Join(diskDir, "layout-"+st.storage), lo)
		r.layouts = append(r.layouts, rows...)
		if err != nil {
			return err
		}
	}
	return nil
}

// runVM is benchmark 3 in the real-kernel VM, with the host side of its
// slowdown factor: benchmark 1a's exec floors, or the same three measured
// here when section init did not run.
func (r *report) runVM(work string, o fb.VMOpts) {
	r.hostFloor = r.init
	if r.hostFloor == nil {
		progress("running the exec floors on the host (the VM's slowdown factor)")
		dir := filepath.Join(work, "floor")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fatal(err)
		}
		var err error
		r.hostFloor, err = fb.ExecFloor(r.env, dir, r.cfg.floorN)
		r.check("floor", err)
	}
	progress("running real in the VM (scripts/vm/run.sh)")
	start := time.Now()
	vm, err := fb.RunVM(r.env, r.env.ProdBin, o, progress)
	if r.vm = vm; vm != nil {
		vm.Seconds = time.Since(start).Seconds()
	}
	r.check("real (VM)", err)
}

// writeTo writes the report to path (- for stdout).
func (r *report) writeTo(path string) {
	if path == "-" {
		r.write(os.Stdout)
		return
	}
	f, err := os.Create(path)
	if err != nil {
		fatal(err)
	}
	r.write(f)
	if err := f.Close(); err != nil {
		fatal(err)
	}
	progress("wrote " + path)
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
	fmt.Fprintln(os.Stderr, "report:", err)
	os.Exit(1)
}
