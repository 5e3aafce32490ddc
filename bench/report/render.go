package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	fb "github.com/flexblock/flexblock/bench/internal/flexbench"
)

type report struct {
	cfg        config
	env        *fb.Env
	machine    fb.Machine
	start, end time.Time
	loadEnd    string
	args       []string
	errors     []string

	init     *fb.InitResult
	noop     *fb.CycleResult
	real     *fb.CycleResult
	first    []*fb.FirstMountRow
	refcount []*fb.RefcountRow
	conc     *fb.ConcurrencyResult
	vm       *fb.VMResult
	layouts  []*fb.LayoutRow
	// hostFloor is the host side of the VM's slowdown factor: benchmark
	// 1a's exec floors (or the same measured for it).
	hostFloor *fb.InitResult
	// cluster is benchmark 6's section (markers included): this run's, or
	// the one carried over from the report being rewritten.
	cluster string

	goals map[string]goal
}

// goal is one line of the summary: a goal of issue #8 and what this run
// measured for it. An empty figure means the run did not measure it.
type goal struct {
	bench, text string
	figure      string
	verdict     string // yes(met), or why it is not judged
	missing     string // why it is not measured, when the run does not measure it
}

// goalOrder is the summary's order, with each goal's text and what a run
// needs to measure it.
var goalOrder = []struct {
	id string
	goal
}{
	{"init-time", goal{bench: "1", text: "`init` median within 2 ms of the `/bin/true` floor", missing: "section `init` did not run"}},
	{"init-rss", goal{bench: "1", text: "`init` peak RSS under 12 MiB", missing: "section `init` did not run"}},
	{"init-size", goal{bench: "1", text: "binary size (reported, no target)", missing: "section `init` did not run"}},
	{"first-growth-ext4", goal{bench: "2", text: "ext4: first mount of a blank volume at 1 TiB ≤ 1.5× the 1 GiB time (sparse loop device on disk)", missing: "needs the 1 GiB and 1 TiB sizes: a full run of section `first`"}},
	{"first-speedup-ext4", goal{bench: "2", text: "ext4: at 1 TiB ≥ 4× faster than plain blkid + mkfs + mount (same)", missing: "needs the 1 TiB size: a full run of section `first`"}},
	{"first-growth-xfs", goal{bench: "2", text: "xfs: first mount of a blank volume at 1 TiB ≤ 1.5× the 1 GiB time (same)", missing: "needs the 1 GiB and 1 TiB sizes: a full run of section `first`"}},
	{"first-speedup-xfs", goal{bench: "2", text: "xfs: at 1 TiB ≥ 4× faster than plain blkid + mkfs + mount (same)", missing: "needs the 1 TiB size: a full run of section `first`"}},
	{"overhead-host", goal{bench: "3", text: "driver overhead (call wall − time in tools) on a real mount and unmount under 20 ms: host, loop backend, real tools", missing: "section `real` did not run"}},
	{"overhead-vm", goal{bench: "3", text: "the same in the real-kernel VM: production driver, Ceph RBD and iSCSI (wall − tools − device wait)", missing: "run with `-vm`"}},
	{"overhead-vm-est", goal{bench: "3", text: "the VM figure scaled to a node: divided by the VM's slowdown (TCG factor) measured in the same run (an estimate)", missing: "run with `-vm`"}},
	{"refcount", goal{bench: "4", text: "unmount with 10,000 unrelated mounts: under 20 ms added vs 100 mounts", missing: "section `refcount` did not run"}},
	{"conc-volumes", goal{bench: "5", text: "64 volumes first-mounted and unmounted by 64 concurrent driver processes: all succeed (total wall and slowest call reported)", missing: "section `concurrency` did not run"}},
	{"conc-pods", goal{bench: "5", text: "8 pods mount one volume at once: exactly one global mount and 8 binds, then none after their unmounts", missing: "section `concurrency` did not run"}},
}

// setGoal records what the run measured for goal id; text, when not
// empty, replaces the goal's text (to name the sizes actually run).
func (r *report) setGoal(id, text, figure, verdict string) {
	if r.goals == nil {
		r.goals = map[string]goal{}
	}
	for _, g := range goalOrder {
		if g.id != id {
			continue
		}
		ng := g.goal
		if text != "" {
			ng.text = text
		}
		ng.figure, ng.verdict = figure, verdict
		r.goals[id] = ng
		return
	}
	panic("unknown goal " + id)
}

// duration is d rounded for reading: minutes from one minute on.
func duration(d time.Duration) string {
	if d >= time.Minute {
		return "~" + d.Round(time.Minute).String()
	}
	return d.Round(time.Second).String()
}

// ms formats milliseconds with sensible precision.
func ms(x float64) string {
	switch {
	case x < 10:
		return fmt.Sprintf("%.2f", x)
	case x < 100:
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.0f", x)
}

func mib(kib float64) string { return fmt.Sprintf("%.1f MiB", kib/1024) }

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func med(xs []float64) float64 { return fb.Summarize(xs).Median }
func p90(xs []float64) float64 { return fb.Summarize(xs).P90 }

func yes(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}

// notJudged is the verdict of a goal measured at other sizes than the
// goal's.
func notJudged(why string) string { return "not judged: " + why }

// own is wall − time in tools, per sample.
func own(s *fb.Series) []float64 {
	var o []float64
	for i := range s.Wall {
		o = append(o, s.Wall[i]-s.ToolMs[i])
	}
	return o
}

// shellWords renders argv as a command line (words with spaces quoted).
func shellWords(argv []string) string {
	var out []string
	for _, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t'\"") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

func (r *report) cmd(section string) string {
	return "`go -C bench run ./report -only " + section + " -o -`"
}

func (r *report) write(w io.Writer) {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# flexblock benchmarks\n\n")
	p("Generated by `go -C bench run ./report` (`make bench` runs it with `-vm`) on %s in %s; do not edit by hand, rerun it. ", r.start.UTC().Format("2006-01-02 15:04 UTC"), duration(r.end.Sub(r.start)))
	if r.cfg.quick {
		p("**This is a `-quick` run: a few iterations each, at small sizes; the figures mean nothing.** ")
	}
	if len(r.args) > 0 {
		p("Arguments: `%s`. ", strings.Join(r.args, " "))
	}
	p("Issue #8 asks for these figures; no benchmark is a pass/fail test. Every figure is the current driver (built from the snapshot named under *driver source*) against baselines measured in the same run: the `/bin/true` floor, `bench/baseline/example-driver.sh` (a bash+jq driver of the kubernetes/examples shape), and the plain format-and-mount sequence of kubelet's mount-utils. Runs are interleaved where the benchmark allows it.\n\n")
	m := r.machine
	p("| machine | |\n|---|---|\n")
	p("| CPUs (nproc) | %d × %s |\n| kernel | %s |\n| Go | %s |\n| e2fsprogs | %s |\n| xfsprogs | %s |\n| util-linux | %s |\n", m.NProc, m.CPU, m.Kernel, m.Go, m.Mke2fs, m.MkfsXFS, m.UtilLinux)
	p("| sparse images on | %s (`%s`) |\n| load average (1/5/15 min) | %s at the start, %s at the end |\n| priority of the run | nice %d (every process it starts inherits it) |\n| driver source | %s |\n\n", m.DiskFS, "/var/tmp", m.Load, r.loadEnd, fb.Priority(), m.Commit)
	p("The load average is the machine's, not the benchmark's: other jobs may share these %d CPUs during the run. The run raises its own priority (nice) so that they disturb it less, but on a busy machine every figure is noisier than on an idle node, the p90 columns much more than the medians. CPU time (user+sys from `wait4`) is shown where it matters, because it is far less sensitive to that noise than wall time.\n\n", m.NProc)
	p("How calls are made: every driver call is a fresh process started the way kubelet starts it (`os/exec`, `CombinedOutput`, argv[0] = `<plugin dir>/flexblock~NAME/NAME`, `flexblock.json` next to it, a plain PATH), from a small helper process (`bench/internal/cmd/spawn`) so that `ru_maxrss` is the child's own peak: a child forked from a big process inherits its parent's RSS high-water mark in `ru_maxrss`. The production binary is built as `make build` builds it (`CGO_ENABLED=0 go build %s`, the version stamp left out); benchmarks that need a device use `CGO_ENABLED=0 go build %s`, which adds only the test backend `loop` (an existing loop device). The state dir is a tmpfs, as `/run/flexblock` is on a node; the kubelet root and the log are on disk.\n\n", shellWords(fb.ProdBuildFlags), shellWords(fb.TestBuildFlags))

	var body strings.Builder
	r.writeInit(&body)
	r.writeNoop(&body)
	r.writeFirst(&body)
	r.writeReal(&body)
	r.writeRefcount(&body)
	r.writeConcurrency(&body)
	if r.cluster != "" {
		body.WriteString(r.cluster + "\n")
	} else {
		body.WriteString("## 6. In a real cluster: not run\n\n`make cluster-bench` (`go -C bench run ./report -cluster-only`) measures pods through the test cluster and puts its section here.\n\n")
	}

	p("## Summary of the goals\n\n| # | goal (issue #8) | measured, current driver | verdict |\n|---|---|---|---|\n")
	for _, og := range goalOrder {
		g, ok := r.goals[og.id]
		if !ok {
			p("| %s | %s | not measured in this run: %s | |\n", og.bench, og.text, og.missing)
			continue
		}
		p("| %s | %s | %s | %s |\n", g.bench, g.text, g.figure, g.verdict)
	}
	p("\n")
	var where []string
	for _, og := range goalOrder {
		g, ok := r.goals[og.id]
		if !ok || !strings.HasPrefix(g.verdict, yes(false)) {
			continue
		}
		switch {
		case g.bench == "2":
			where = append(where, "benchmark 2 (*Why the missed goals are missed, and what would close them*)")
		case og.id == "overhead-vm":
			where = append(where, "benchmark 3 (the VM's goal, under *The VM's slowdown*)")
		default:
			where = append(where, "benchmark "+g.bench)
		}
	}
	if len(where) > 0 {
		p("Why each missed goal is missed, and what would close it: %s.\n\n", strings.Join(uniq(where), "; "))
	}
	if len(r.errors) > 0 {
		p("**Errors in this run:**\n\n")
		for _, e := range r.errors {
			e, _, _ = strings.Cut(e, "\n")
			p("- %s\n", e)
		}
		p("\n")
	}
	b.WriteString(body.String())
	p("## Reproduce\n\n")
	p("- Everything: `make bench` (`go -C bench run ./report -vm`; root, loop devices, mkfs.ext4, mkfs.xfs, unshare, qemu for the VM; %s for this run). It builds the binaries from a snapshot of the working tree, runs every benchmark in a private mount namespace and rewrites this file.\n", duration(r.end.Sub(r.start)))
	p("- One section: `go -C bench run ./report -only SECTION -o -` with SECTION one of %s; `-quick` runs a few iterations of each at small sizes; `-vm` adds benchmark 3 in the real-kernel VM (`-vm-n` cycles per backend, `-vm-floor-n` runs of each exec floor for the slowdown factor, `-vm-format-size` the blank RBD images of the format comparison, empty to skip it); `-cluster` adds benchmark 6 on the test cluster, `-cluster-only` runs just it and replaces its section (`make cluster-bench`).\n", strings.Join(sectionNames(), ", "))
	p("- The baseline driver is `bench/baseline/example-driver.sh`; the VM scenario is `bench/vm/scenarios/90-overhead.sh`.\n")
	_, _ = io.WriteString(w, b.String())
}

// uniq drops repeats, keeping the first of each.
func uniq(xs []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
