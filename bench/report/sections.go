package main

import (
	"fmt"
	"math"
	"sort"
	"strings"

	fb "github.com/flexblock/flexblock/bench/internal/flexbench"
	"github.com/flexblock/flexblock/test/testkit"
)

func (r *report) writeInit(b *strings.Builder) {
	x := r.init
	if x == nil {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("## 1a. Per-call overhead: `init`\n\n")
	p("kubelet runs `init` at every plugin probe. Each candidate ran %d times, interleaved (one of each in turn), after 10 warm-up runs. Floor: exec'ing `/bin/true`; Go's floor: a Go program that prints the same answer and does nothing else (`bench/internal/cmd/gohello`). Baseline: `bench/baseline/example-driver.sh` reading the same `flexblock.json` with jq to answer the same capabilities (the same work as flexblock's).\n\n", fb.Summarize(x.Ours.Wall).N)
	floor := med(x.Floor.Wall)
	ours := med(x.Ours.Wall)
	p("| candidate | median ms | p90 ms | min ms | CPU ms (median) | peak RSS (max) | median − floor | candidate / flexblock |\n|---|---|---|---|---|---|---|---|\n")
	for _, s := range []*fb.Series{x.Floor, x.GoFloor, x.Ours, x.BaselineJQ} {
		st := fb.Summarize(s.Wall)
		rss := mib(fb.Summarize(s.RSS).Max)
		if s.RSSIsFloor() {
			rss = "≤ " + rss + " (helper's floor)"
		}
		name := s.Name
		if s.Failure != "" {
			name += " — FAILED: " + s.Failure
		}
		p("| %s | %s | %s | %s | %s | %s | %+.2f ms | %s |\n", name, ms(st.Median), ms(st.P90), ms(st.Min), ms(med(s.CPU)), rss, st.Median-floor, ratio(st.Median, ours))
	}
	p("\nBinary size: production build %.2f MiB (%d bytes, static, stripped); test build with the loop backend %.2f MiB.\n\n", float64(x.ProdSize)/(1<<20), x.ProdSize, float64(x.TestSize)/(1<<20))

	d := ours - floor
	rssMax := fb.Summarize(x.Ours.RSS).Max
	r.setGoal("init-time", "", fmt.Sprintf("%+.2f ms (median %s ms vs %s ms)", d, ms(ours), ms(floor)), yes(d <= 2))
	rssFig := mib(rssMax)
	if x.Ours.RSSIsFloor() {
		rssFig = "≤ " + rssFig + " (the helper's floor)"
	}
	r.setGoal("init-rss", "", rssFig, yes(rssMax < 12*1024))
	r.setGoal("init-size", "", fmt.Sprintf("%.2f MiB (%d bytes)", float64(x.ProdSize)/(1<<20), x.ProdSize), "reported")
	p("- Goal: median within 2 ms of the floor: %s (%+.2f ms). Goal: peak RSS under 12 MiB: %s (%s).\n", yes(d <= 2), d, yes(rssMax < 12*1024), rssFig)
	p("- The bash+jq baseline doing the same work takes %s the time of flexblock's `init` (median).\n", ratio(med(x.BaselineJQ.Wall), ours))
	goFloor := med(x.GoFloor.Wall)
	p("- Where flexblock's %+.2f ms over the floor go: starting any Go program costs %+.2f ms here (Go's floor: the runtime's start, the page faults of a static binary); the other %+.2f ms are flexblock's own: a bigger binary to fault in, the package initialisation of everything it links, and the call itself (reading `flexblock.json`, the answer).", d, goFloor-floor, ours-goFloor)
	p("\n")
	p("- What the driver does to keep `init` small: the package-level regexps of `driver/...` compile on first use (`driver/internal/lazyre`), so a call that validates nothing (init) compiles none; and the production build uses `-tags %s`, which leaves urfave/cli's man/markdown generator, and the package init of its dependencies, out of the binary.", testkit.ProdTags)
	p("\n- Reproduce: %s.\n\n", r.cmd("init"))
}

func (r *report) writeNoop(b *strings.Builder) {
	x := r.noop
	if x == nil {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("## 1b. Per-call overhead: `mount` and `unmount` with no-op tools\n\n")
	p("The tools are replaced inside a private mount namespace: a tmpfs over `/usr/local/sbin`, the first directory of the fixed PATH the driver's runner uses (`driver/runner/exec.go`; PATH cannot be used, the runner ignores it), holds `blkid` (a shell script answering `TYPE=ext4`: the path of every mount but a volume's first), `fsck` (a script exiting 0), and `mount`/`umount` (`bench/internal/cmd/mountstub`, one syscall each: a 1 MiB tmpfs named after the device, a bind, an umount2). mount/umount cannot be plain no-ops: the driver checks with statx that what it mounted is a mount point and that the pod dir is a bind of the global mount, and with nothing mounted the unmount would take a different, shorter path (\"already unmounted\"). So what remains is the driver's own work (config, log, lock, state records written atomically, statx checks, validation) plus exec'ing %d trivial tools for a mount and %d for an unmount. The example driver (bash+jq) runs with the same stubs; it mounts straight at the pod dir, with no global mount, lock, state or refcount, so it does less. %d cycles (a new pod each), interleaved.\n\n", x.MountToolRuns, x.UnmountTools, fb.Summarize(x.OursMount.Wall).N)
	r.cycleTable(b, x)
	p("- Reproduce: %s.\n\n", r.cmd("noop"))
}

func (r *report) cycleTable(b *strings.Builder, x *fb.CycleResult) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("| call | flexblock median / p90 ms | of which in tools (driver log) | flexblock without tools: wall − tools, median / p90 | in-process only (`call done` ms − tools) | CPU ms | peak RSS | example driver median / p90 ms | example / flexblock |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range []struct {
		name       string
		ours, base *fb.Series
	}{{"mount", x.OursMount, x.BaseMount}, {"unmount", x.OursUnmount, x.BaseUnmount}} {
		o := own(c.ours)
		name := c.name
		if c.ours.Failure != "" {
			name += " — FAILED: " + c.ours.Failure
		}
		if c.base.Failure != "" {
			name += " (example FAILED: " + c.base.Failure + ")"
		}
		p("| %s | %s / %s | %s | %s / %s | %s | %s | %s | %s / %s | %s |\n", name, ms(med(c.ours.Wall)), ms(p90(c.ours.Wall)), ms(med(c.ours.ToolMs)),
			ms(med(o)), ms(p90(o)), ms(med(c.ours.OwnMs)), ms(med(c.ours.CPU)), mib(fb.Summarize(c.ours.RSS).Max),
			ms(med(c.base.Wall)), ms(p90(c.base.Wall)), ratio(med(c.base.Wall), med(c.ours.Wall)))
	}
	p("| `/bin/true` (floor, one exec) | %s / %s | | | | %s | | | |\n\n", ms(med(x.Floor.Wall)), ms(p90(x.Floor.Wall)), ms(med(x.Floor.CPU)))
	var keys []string
	for k := range x.Tools {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %s ms", k, ms(med(x.Tools[k]))))
	}
	p("Tool times (median, as the driver logs them, each including its fork/exec): %s.\n\n", strings.Join(parts, ", "))
}

func (r *report) writeReal(b *strings.Builder) {
	x := r.real
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	if x == nil && r.vm == nil {
		return
	}
	p("## 3. Driver overhead on a real mount\n\n")
	p("The runner logs each tool's duration (`\"msg\":\"exec\"`, `ms`) and each call's (`\"call done\"`, `ms`), so *overhead = call wall time − time inside tools*. Wall time is measured by the caller and includes the driver's process start and exit; the in-process column is the log's own call time minus tools. On the host the loop backend runs the same core path (`driver/volume`) with the real tools; in the VM the production driver runs against real Ceph RBD and a real iSCSI target.\n\n")
	if x != nil {
		p("### Mount and unmount of an existing ext4 filesystem (1 GiB loop device), %d cycles\n\n", fb.Summarize(x.OursMount.Wall).N)
		r.cycleTable(b, x)
		met := true
		var figs []string
		for _, s := range []*fb.Series{x.OursMount, x.OursUnmount} {
			o := own(s)
			figs = append(figs, fmt.Sprintf("%s %s ms (p90 %s)", strings.TrimPrefix(s.Name, "flexblock "), ms(med(o)), ms(p90(o))))
			met = met && med(o) < 20 && s.Failure == ""
		}
		r.setGoal("overhead-host", "", "medians: "+strings.Join(figs, "; "), yes(met))
		p("- Goal: under 20 ms added: %s (wall − tools, medians: %s).\n\n", yes(met), strings.Join(figs, "; "))
	}
	r.writeVM(b)
	p("- Waits: the driver has no fixed sleep on these paths. Its waits end as soon as their condition holds: polling the volume lock while another call holds it (benchmark 5 shows it under contention), and in the RBD and iSCSI backends fencing while another client watches the image, the device's appearance and the kernel's size after a resize; a device whose read check fails is re-probed after a short backoff, a bounded number of times, before the driver refuses to format it.\n")
	p("- Reproduce: %s; the VM: `go -C bench run ./report -only real -vm -o -`.\n\n", r.cmd("real"))
}

func (r *report) vmErr() string {
	for _, e := range r.errors {
		if strings.HasPrefix(e, "real (VM)") {
			return strings.SplitN(e, "\n", 2)[0]
		}
	}
	return ""
}

func (r *report) writeFirst(b *strings.Builder) {
	if len(r.first) == 0 {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	var cmds []string
	for _, fs := range r.cfg.fsTypes {
		for _, row := range r.first {
			if row.FS == fs && len(row.OursMkfsArgv) > 0 {
				cmds = append(cmds, "`"+shellWords(row.OursMkfsArgv)+"`")
				break
			}
		}
	}
	p("## 2. First mount of a blank volume vs size\n\n")
	p("A blank sparse file behind a loop device, re-blanked before each run (the whole file punched back to holes, the device's cache dropped, then `sync`). *flexblock*: the whole `mount` call of the driver (blkid probe, read check of both ends, format, global mount, bind), where the format is, as the driver's log of this run has it, %s. *Plain*: the sequence kubelet's mount-utils (`SafeFormatAndMount`) ran, each step exec'd the same way: `blkid -p -s TYPE -s PTTYPE -o export`, `%s` or `%s`, `mount -t FS -o defaults`. Runs alternate between the two. *Allocated* is what the image file had allocated afterwards: what the format wrote or had the kernel zero.\n\n",
		strings.Join(cmds, " and "), shellWords(fb.PlainMkfsArgs("ext4", "DEV")), shellWords(fb.PlainMkfsArgs("xfs", "DEV")))
	p("Two kinds of storage: **disk**: the image on %s, where the loop driver turns a discard into a hole punch and a zeroing (`BLKZEROOUT`, which mke2fs uses for the journal and mkfs.xfs for the log) into an unwritten-extent allocation, both metadata only; **tmpfs**: the image on a tmpfs, which punches holes but cannot zero ranges, so the kernel falls back to writing the zeroes, as on storage without zeroing offload.\n\n", r.machine.DiskFS)
	p("| storage | fs | size | flexblock median ms (runs) | of which mkfs | plain median ms (runs) | of which mkfs | plain / flexblock | allocated: flexblock / plain |\n|---|---|---|---|---|---|---|---|---|\n")
	type key struct {
		storage, fs string
		size        int64
	}
	rows := map[key]*fb.FirstMountRow{}
	sizes := map[int64]bool{}
	for _, row := range r.first {
		rows[key{row.Storage, row.FS, row.Size}] = row
		sizes[row.Size] = true
		p("| %s | %s | %s | %s (%d) | %s | %s (%d) | %s | %s | %s / %s |\n", row.Storage, row.FS, fb.SizeName(row.Size),
			ms(med(row.Ours.Wall)), len(row.Ours.Wall), ms(med(row.OursMkfs)),
			ms(med(row.Plain.Wall)), len(row.Plain.Wall), ms(med(row.PlainMkfs)),
			ratio(med(row.Plain.Wall), med(row.Ours.Wall)), bytesName(med(row.OursAlloc)), bytesName(med(row.PlainAlloc)))
	}
	p("\n")
	for _, storage := range []string{diskStorage, tmpfsStorage} {
		for _, fs := range r.cfg.fsTypes {
			small, big := rows[key{storage, fs, fb.GiB}], rows[key{storage, fs, fb.TiB}]
			if big != nil {
				speedup := med(big.Plain.Wall) / med(big.Ours.Wall)
				if storage == diskStorage {
					r.setGoal("first-speedup-"+fs, "", fmt.Sprintf("%.2f× (%s ms vs %s ms)", speedup, ms(med(big.Ours.Wall)), ms(med(big.Plain.Wall))), yes(speedup >= 4))
				}
				p("- %s, %s: at 1 TiB flexblock is %.2f× faster than the plain invocation (goal ≥ 4×: %s).", storage, fs, speedup, yes(speedup >= 4))
				if small != nil {
					growth := med(big.Ours.Wall) / med(small.Ours.Wall)
					mkfsGrowth := med(big.OursMkfs) / med(small.OursMkfs)
					if storage == diskStorage {
						r.setGoal("first-growth-"+fs, "", fmt.Sprintf("%.2f× (%s ms vs %s ms)", growth, ms(med(big.Ours.Wall)), ms(med(small.Ours.Wall))), yes(growth <= 1.5))
					}
					p(" 1 TiB takes %.2f× the 1 GiB time (goal ≤ 1.5×: %s; mkfs alone %.2f×).", growth, yes(growth <= 1.5), mkfsGrowth)
				}
				p("\n")
			}
		}
	}
	if !sizes[fb.TiB] {
		p("- This run did not format 1 TiB, so the goals of benchmark 2 are not judged here (a full run formats 1 GiB, 100 GiB and 1 TiB).\n")
	}
	p("\n")
	r.writeLayouts(b)
	r.writeWhyMissed(b)
	p("- Reproduce: %s.\n\n", r.cmd("first"))
}

func bytesName(b float64) string {
	switch {
	case b >= float64(fb.GiB):
		return fmt.Sprintf("%.2f GiB", b/float64(fb.GiB))
	case b >= float64(fb.MiB):
		return fmt.Sprintf("%.0f MiB", b/float64(fb.MiB))
	}
	return fmt.Sprintf("%.0f KiB", b/1024)
}

func (r *report) writeRefcount(b *strings.Builder) {
	rows := r.refcount
	if len(rows) == 0 {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("## 4. Scale of the refcount check: unmount with many unrelated mounts\n\n")
	p("In a private mount namespace, N unrelated bind mounts (a busy node's container mounts), made before the volume's, so the volume's lines come last in mountinfo; then real mount and unmount calls (ext4 on a loop device, real tools), %d cycles per N.\n\n", fb.Summarize(rows[0].Unmount.Wall).N)
	p("How the driver answers an unmount's questions without the mount table: whether the pod dir is mounted (statx: `STATX_ATTR_MOUNT_ROOT`), which volume it belongs to (the state records' global mounts, each compared with the pod dir by statx: same device, same inode, both mount roots), and, once the pod's bind is gone, whether another pod still uses the global mount (the refcount): the volume's state record lists the pod dirs bound to it, each written before its bind, and each listed pod dir is checked with statx, the gone ones forgotten. Its tools (`mount`, `umount`: libmount) still read the table. The driver reads the table itself only where statx cannot answer: for a state record written by an older driver (no pod list), when its tools run in the host's mount namespace (`nsenter` setups), and on kernels without `STATX_ATTR_MOUNT_ROOT` (before 5.8); none of these is measured here.\n\n")
	p("| unrelated mounts (mountinfo lines) | unmount median / p90 ms | of which in tools | driver without tools (wall − tools) | mount median ms |\n|---|---|---|---|---|\n")
	for _, row := range rows {
		p("| %d (%d) | %s / %s | %s | %s | %s |\n", row.Unrelated, row.TableLines, ms(med(row.Unmount.Wall)), ms(p90(row.Unmount.Wall)), ms(med(row.Unmount.ToolMs)), ms(med(own(row.Unmount))), ms(med(row.Mount.Wall)))
	}
	first, last := rows[0], rows[len(rows)-1]
	added := med(last.Unmount.Wall) - med(first.Unmount.Wall)
	addedOwn := med(own(last.Unmount)) - med(own(first.Unmount))
	addedTools := med(last.Unmount.ToolMs) - med(first.Unmount.ToolMs)
	addedMount := med(last.Mount.Wall) - med(first.Mount.Wall)
	// Rounded to the 0.1 ms shown: no "-0.0".
	added, addedOwn, addedTools, addedMount = round1(added), round1(addedOwn), round1(addedTools), round1(addedMount)
	p("\nAdded by %d unrelated mounts against %d: **%+.1f ms** per unmount (median), of which %+.1f ms in the driver itself and %+.1f ms in the tools; %+.1f ms per mount.\n\n", last.Unrelated, first.Unrelated, added, addedOwn, addedTools, addedMount)
	fig := fmt.Sprintf("%+.1f ms at %d vs %d mounts (driver %+.1f, tools %+.1f)", added, last.Unrelated, first.Unrelated, addedOwn, addedTools)
	if first.Unrelated <= 100 && last.Unrelated >= 10000 {
		r.setGoal("refcount", "", fig, yes(added < 20))
		p("- Goal: under 20 ms added with 10,000 mounts: %s: %s.\n\n", yes(added < 20), fig)
	} else {
		r.setGoal("refcount", "", fig, notJudged(fmt.Sprintf("this run went to %d mounts, the goal is at 10,000", last.Unrelated)))
	}
	p("- Reproduce: %s.\n\n", r.cmd("refcount"))
}

func (r *report) writeConcurrency(b *strings.Builder) {
	x := r.conc
	if x == nil {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("## 5. Concurrency\n\n")
	p("%d blank %s loop devices (%s sparse each), first-mounted (probe, format, global mount, bind) by %d driver processes started together, then unmounted by %d together. Baseline: the same calls one after the other, on the devices blanked again.\n\n", x.Volumes, x.FS, fb.SizeName(x.Size), x.Volumes, x.Volumes)
	p("| phase | calls | failed | total wall ms | slowest call ms | median call ms |\n|---|---|---|---|---|---|\n")
	for _, ph := range []fb.Phase{x.ConcMount, x.ConcUnmount, x.SeqMount, x.SeqUnmount} {
		if ph.Calls == 0 {
			continue
		}
		p("| %s | %d | %d | %s | %s | %s |\n", ph.Name, ph.Calls, ph.Failed, ms(ph.TotalMs), ms(ph.Slowest()), ms(med(ph.CallMs)))
	}
	if x.SeqMount.Calls > 0 && x.ConcMount.Calls > 0 {
		p("\nConcurrent against sequential, total wall: mount %s, unmount %s (below 1× is faster; %d CPUs).\n\n", ratio(x.ConcMount.TotalMs, x.SeqMount.TotalMs), ratio(x.ConcUnmount.TotalMs, x.SeqUnmount.TotalMs), r.machine.NProc)
	}
	if len(x.Rounds) > 0 {
		p("Same volume: %d pods mount one blank volume at once (the first formats it, the others wait on the volume's lock, then bind), then all unmount at once; %s (the first formats, the others find the filesystem).\n\n", x.Pods, plural(len(x.Rounds), "round"))
		p("| round | mount total / slowest ms | global mounts | binds | unmount total / slowest ms | mounts left | device releases |\n|---|---|---|---|---|---|---|\n")
		for i, sr := range x.Rounds {
			p("| %d | %s / %s | %d | %d | %s / %s | %d | %d |\n", i+1, ms(sr.Mount.TotalMs), ms(sr.Mount.Slowest()), sr.GlobalMounts, sr.Binds, ms(sr.Unmount.TotalMs), ms(sr.Unmount.Slowest()), sr.LeftMounted, sr.Releases)
		}
		p("\n")
	}
	p("Checked:\n\n")
	for _, c := range x.Checks {
		p("- %s\n", c)
	}
	volText := fmt.Sprintf("%d volumes first-mounted and unmounted by %d concurrent driver processes: all succeed (total wall and slowest call reported)", x.Volumes, x.Volumes)
	volFig := fmt.Sprintf("mount: total %s ms, slowest %s ms; unmount: total %s ms, slowest %s ms", ms(x.ConcMount.TotalMs), ms(x.ConcMount.Slowest()), ms(x.ConcUnmount.TotalMs), ms(x.ConcUnmount.Slowest()))
	volVerdict := yes(x.VolumesOK)
	if x.VolumesOK && x.Volumes < 64 {
		volVerdict = notJudged(fmt.Sprintf("every check passed with %d volumes, the goal is 64", x.Volumes))
	}
	if x.ConcMount.Failed+x.ConcUnmount.Failed > 0 {
		volFig += fmt.Sprintf("; %d mounts and %d unmounts failed", x.ConcMount.Failed, x.ConcUnmount.Failed)
	}
	r.setGoal("conc-volumes", volText, volFig, volVerdict)
	if len(x.Rounds) > 0 {
		podText := fmt.Sprintf("%d pods mount one volume at once: exactly one global mount and %d binds, then none after their unmounts", x.Pods, x.Pods)
		var slowest float64
		for _, sr := range x.Rounds {
			slowest = max(slowest, sr.Mount.Slowest())
		}
		podFig := fmt.Sprintf("%s: global mounts %s, binds %s, left after unmount %s; slowest mount %s ms", plural(len(x.Rounds), "round"),
			roundsList(x.Rounds, func(sr fb.SameVolumeRound) int { return sr.GlobalMounts }),
			roundsList(x.Rounds, func(sr fb.SameVolumeRound) int { return sr.Binds }),
			roundsList(x.Rounds, func(sr fb.SameVolumeRound) int { return sr.LeftMounted }), ms(slowest))
		podVerdict := yes(x.PodsOK)
		if x.PodsOK && x.Pods < 8 {
			podVerdict = notJudged(fmt.Sprintf("every check passed with %d pods, the goal is 8", x.Pods))
		}
		r.setGoal("conc-pods", podText, podFig, podVerdict)
	}
	p("\n- Reproduce: %s.\n\n", r.cmd("concurrency"))
}

// roundsList is one figure per round, "1" or "1, 1, 1".
func roundsList(rounds []fb.SameVolumeRound, f func(fb.SameVolumeRound) int) string {
	var out []string
	for _, sr := range rounds {
		out = append(out, fmt.Sprint(f(sr)))
	}
	return strings.Join(out, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// round1 rounds to one decimal, with no negative zero.
func round1(x float64) float64 {
	r := math.Round(x*10) / 10
	if r == 0 {
		return 0
	}
	return r
}
