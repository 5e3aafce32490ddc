// Command report runs flexblock's benchmarks and writes BENCHMARKS.md:
// one table per benchmark with our figure, the baseline measured in the
// same run, the ratio, the machine, and the command that reproduces it.
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
	noProposals := flag.Bool("no-proposals", false, "do not build and measure the patches in bench/proposals")
	flag.IntVar(&fb.Nice, "nice", fb.Nice, "nice value for the whole run (0: leave it)")
	vm := flag.Bool("vm", false, "also run benchmark 3 in the real-kernel VM (scripts/vm: RBD and iSCSI; several minutes)")
	vmN := flag.Int("vm-n", 5, "mount+unmount cycles per backend in the VM")
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
	if !*noProposals && (want("init") || want("refcount") || want("first")) {
		r.buildProposals(work)
	}
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
		var vs []fb.Variant
		for _, p := range r.proposals {
			if p.ProdBin != "" && p.initMatters {
				vs = append(vs, fb.Variant{Name: "proposal: " + p.Name, Bin: p.ProdBin})
			}
		}
		r.init, err = fb.Init(env, dir, cfg.initN, vs)
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
		for _, p := range r.proposals {
			if p.TestBin != "" && p.firstMatters {
				o.Variant, o.VariantFS, r.firstPatch = p.TestBin, []string{"ext4"}, p.Name
			}
		}
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
		return err
	})
	run("refcount", func(dir string) error {
		o := fb.RefcountOpts{Counts: cfg.refCounts, N: cfg.refN, MicroN: cfg.microN, Progress: progress}
		for _, p := range r.proposals {
			if p.TestBin != "" && p.refcountMatters {
				o.Variants = append(o.Variants, fb.Variant{Name: p.Name, Bin: p.TestBin})
			}
		}
		r.refcount, err = fb.Refcount(env, dir, o)
		return err
	})
	run("concurrency", func(dir string) error {
		r.conc, err = fb.Concurrency(env, dir, dir, cfg.volumes, cfg.pods, cfg.round, progress)
		return err
	})
	if *vm && want("real") {
		progress("running real in the VM (scripts/vm/run.sh)")
		start := time.Now()
		r.vm, err = fb.RunVM(env, env.ProdBin, *vmN, progress)
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

func progress(s string) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), s)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench/report:", err)
	os.Exit(1)
}

type proposal struct {
	fb.Proposal
	what                                       string
	initMatters, refcountMatters, firstMatters bool
}

func (r *report) buildProposals(work string) {
	r.proposals = []*proposal{
		{Proposal: fb.Proposal{Name: "-tags urfave_cli_no_docs", Tags: "urfave_cli_no_docs"}, initMatters: true,
			what: "Build with `-tags urfave_cli_no_docs` (Makefile `build`): urfave/cli then leaves out its man/markdown generator and with it blackfriday and go-md2man, whose package init runs on every driver call."},
		{Proposal: fb.Proposal{Name: "lazy regexps", Patch: "lazy-regexp.patch", Transform: fb.LazyRegexps}, initMatters: true,
			what: "Compile the package-level regexps on first use (`driver/internal/lazyre`): the 24 `regexp.MustCompile` of `driver/...` run at every process start, including counted repetitions such as `{0,252}`, `{1,100}`, `{1,64}` that compile into large programs; `init` uses none of them. A mechanical change (`flexbench.LazyRegexps` makes it on the run's snapshot, so it follows the tree; the patch file is its output on one snapshot)."},
		{Proposal: fb.Proposal{Name: "lazy regexps + no_docs", Patch: "lazy-regexp.patch", Transform: fb.LazyRegexps, Tags: "urfave_cli_no_docs"}, initMatters: true,
			what: "Both of the above."},
		{Proposal: fb.Proposal{Name: "driver-only binary + lazy regexps", Patch: "lazy-regexp.patch", Transform: fb.LazyRegexps, Pkg: "./bench/internal/cmd/driveronly"}, initMatters: true,
			what: "Install a driver binary built without the operator CLI and the installer (`bench/internal/cmd/driveronly`: the rbd and iscsi backends and `driver/app`, nothing else), with lazy regexps: what a separate `cmd/flexblock-driver` main package installed as `flexblock~rbd/rbd` would cost, the `flexblock` CLI staying as it is."},
		{Proposal: fb.Proposal{Name: "ext4 layout", Patch: "mkfs-ext4-layout.patch"}, firstMatters: true,
			what: "`driver/format`: format ext4 with `-G 256 -O sparse_super2` added: the metadata of 256 block groups packed together instead of 16, and two superblock backups instead of one in every group numbered 0, 1 or a power of 3, 5 or 7. Lazy init still leaves metadata proportional to the size to write at 1 TiB; this halves it. Same features otherwise (resize_inode kept, so online growth works as before)."},
		{Proposal: fb.Proposal{Name: "mountinfo pre-filter", Patch: "mountinfo-prefilter.patch"}, refcountMatters: true,
			what: "`driver/mount`: find candidate lines of mountinfo by comparing the raw bytes of one field (mount point for Lookup; device and root for Users) and parse only those, instead of `mountinfo.GetMounts`, which parses every line into an Info before the filter sees it (the filter approach the issue suggests, done the only way that saves time). Lookup also returns the last of stacked mounts, as its comment says (the current SingleEntryFilter stops at the first)."},
		{Proposal: fb.Proposal{Name: "statx + recorded binds", Patch: "statx-refcount.patch"}, refcountMatters: true,
			what: "`driver/mount`, `driver/volume`, `driver/state`: answer \"is this a mount point\" and \"is this pod dir a bind of that global mount\" with statx (device, inode, `STATX_ATTR_MOUNT_ROOT`) instead of reading the mount table, and keep in the volume's state record the pod dirs bound to it (each written before its bind, checked with statx and pruned at unmount), so the refcount looks at this volume's pods only. A pod mount and unmount then need no read of mountinfo at all (see the strace counts in benchmark 4). Records written by older versions, and nsenter setups (tools in another mount namespace), keep the table-based path. `go test ./driver/... ./test/loopdev ./test/hostile ./test/contract` and `test/kubelet` pass with it, crash matrix included."},
	}
	for i, p := range r.proposals {
		progress("building proposal: " + p.Name)
		dir := filepath.Join(work, fmt.Sprintf("proposal%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			p.Err = err.Error()
			continue
		}
		r.env.BuildProposal(dir, &p.Proposal)
		if p.Err != "" {
			progress("  not built: " + p.Err)
		}
	}
}
