package main

import (
	"fmt"
	"os"
	"strings"

	fb "github.com/flexblock/flexblock/bench/internal/flexbench"
)

// floorProgs are the exec floors the VM's slowdown is measured by: the
// scenario's name, the report's, and the host series (benchmark 1a's).
var floorProgs = []struct {
	prog, name string
	host       func(*fb.InitResult) *fb.Series
}{
	{"true", "`/bin/true`", func(x *fb.InitResult) *fb.Series { return x.Floor }},
	{"gohello", "Go's floor (`bench/internal/cmd/gohello`)", func(x *fb.InitResult) *fb.Series { return x.GoFloor }},
	{"init", "flexblock `init` (production build)", func(x *fb.InitResult) *fb.Series { return x.Ours }},
}

// tcgFactor is one program's slowdown in the VM: guest median / host median.
type tcgFactor struct {
	prog, name       string
	host, guest      float64
	hostN, guestN    int
	factor           float64
	guestFailedExits int
}

// tcgFactors are the factors this run measured (programs without figures
// on both sides left out).
func (r *report) tcgFactors() []tcgFactor {
	if r.vm == nil || r.hostFloor == nil {
		return nil
	}
	var out []tcgFactor
	for _, fp := range floorProgs {
		hs := fp.host(r.hostFloor)
		guest := r.vm.FloorOf(fp.prog)
		if hs == nil || len(hs.Wall) == 0 || len(guest) == 0 {
			continue
		}
		f := tcgFactor{prog: fp.prog, name: fp.name, host: med(hs.Wall), hostN: len(hs.Wall), guest: med(guest), guestN: len(guest)}
		for _, x := range r.vm.Floor {
			if x.Prog == fp.prog && x.Exit != 0 {
				f.guestFailedExits++
			}
		}
		if f.host > 0 {
			f.factor = f.guest / f.host
		}
		out = append(out, f)
	}
	return out
}

// vmKinds are the rows of the VM table, in order.
var vmKinds = []string{"first mount (formats)", "mount", "unmount"}

// vmKind is the row a call belongs to ("" for tagged calls, which are not
// part of the mount+unmount cycles).
func vmKind(c fb.VMCall) string {
	if c.Tag != "" {
		return ""
	}
	if c.Call == "mount" && c.Formatted {
		return vmKinds[0]
	}
	return c.Call
}

func (r *report) writeVM(b *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	x := r.vm
	if x == nil || len(x.Calls) == 0 {
		p("### In the VM (RBD and iSCSI): not run\n\n`go -C bench run ./report -only real -vm` boots the real-kernel VM (`scripts/vm/run.sh`, Ceph + iSCSI target) and runs `bench/vm/scenarios/90-overhead.sh` through `scripts/e2e/run-all.sh`: N mount+unmount cycles per backend, each call split from the driver log the same way.")
		if x != nil || r.vmErr() != "" {
			p(" This run tried and failed: %s.", r.vmErr())
			r.setGoal("overhead-vm", "", "the VM run failed: "+r.vmErr(), yes(false))
		}
		p("\n\n")
		return
	}
	cycles := 0
	for _, c := range x.Calls {
		if vmKind(c) != "" {
			cycles++
		}
	}
	p("### In the VM: production driver, real Ceph RBD and iSCSI target (%d calls, %.0f s with boot and setup; %s)\n\n", cycles, x.Seconds, x.Summary)
	if e := r.vmErr(); e != "" {
		p("**This VM run did not finish** (%s); the tables have what was measured before that.\n\n", e)
	}
	p("The VM runs under TCG (`scripts/vm/run.sh`: `-accel tcg`): every instruction is emulated, the driver's own code included, so these figures are not what a node would see; the slowdown measured in the same boot (below) says by how much. Every call is started by the same spawn helper as on the host (`E2E_BENCH_SPAWN`), so wall time is measured the same way on both sides.\n\n")
	p("| backend | call | calls | wall median ms | in tools | waiting for the device (iSCSI) | wall − tools − wait, median / p90 | in-process only, minus wait (median) |\n|---|---|---|---|---|---|---|---|\n")
	type fig struct {
		label  string
		median float64
	}
	var figs []fig
	met := r.vmErr() == ""
	for _, backend := range []string{"rbd", "iscsi"} {
		for _, kind := range vmKinds {
			var wall, tools, waits, o, inproc []float64
			for _, c := range x.Calls {
				if c.Backend != backend || vmKind(c) != kind {
					continue
				}
				wall, tools, waits = append(wall, c.WallMs), append(tools, c.ToolMs), append(waits, c.WaitMs)
				o, inproc = append(o, c.WallMs-c.ToolMs-c.WaitMs), append(inproc, c.CallMs-c.ToolMs-c.WaitMs)
			}
			if len(wall) == 0 {
				if kind != vmKinds[0] {
					met = false // a call kind the goal needs is missing
				}
				continue
			}
			p("| %s | %s | %d | %s | %s | %s | %s / %s | %s |\n", backend, kind, len(wall), ms(med(wall)), ms(med(tools)), ms(med(waits)), ms(med(o)), ms(p90(o)), ms(med(inproc)))
			if kind != vmKinds[0] {
				figs = append(figs, fig{backend + " " + kind, med(o)})
				met = met && med(o) < 20
			}
		}
	}
	var figText []string
	for _, f := range figs {
		figText = append(figText, fmt.Sprintf("%s %s ms", f.label, ms(f.median)))
	}
	verdict := yes(met) + " under TCG"
	r.setGoal("overhead-vm", "", "medians (TCG, emulated): "+strings.Join(figText, "; "), verdict)
	p("\nMedians of wall − tools − device wait in the VM: %s. They include the emulated start of the %.1f MiB production binary; the iSCSI device wait (the kernel's scan of the LUN after login, polled until the block device appears) is the kernel's time, not the driver's, and is shown apart.\n\n", strings.Join(figText, "; "), float64(fb.FileSize(r.env.ProdBin))/(1<<20))

	// The slowdown, measured in the same boot.
	factors := r.tcgFactors()
	p("#### The VM's slowdown, measured in the same boot\n\n")
	source := fmt.Sprintf("benchmark 1a's (%d runs each, interleaved)", len(r.hostFloor.Floor.Wall))
	if r.init == nil && r.hostFloor != nil {
		source = fmt.Sprintf("measured for this on the host just before the VM booted (%d runs each, interleaved, the same way)", len(r.hostFloor.Floor.Wall))
	}
	if r.hostFloor == nil {
		source = "missing: the host's exec floors did not run"
	}
	p("Spread between the driver's cycles, the guest ran three exec floors, one of each in turn, through the same spawn helper and with the same argument (`init`) as benchmark 1a on the host: `/bin/true`, Go's floor (the host-built `gohello`, which the guest reads from the host's files and runs from its tmpfs, next to the driver) and the production driver's `init` (the installed `rbd` driver, its `flexblock.json` next to it). The host figures are %s. The factor is the guest's median over the host's: how much slower the same program starts and runs in this VM, in this run, with whatever else the host was doing at the time (see the load average above).\n\n", source)
	for _, n := range x.Notes {
		p("- The scenario noted: %s.\n", strings.TrimSuffix(n, "."))
	}
	if len(x.Notes) > 0 {
		p("\n")
	}
	if len(factors) == 0 {
		p("No factor: the exec floors were not measured on both sides in this run, so the VM figures cannot be scaled.\n\n")
		r.setGoal("overhead-vm-est", "", "not estimated: no exec floors measured on both sides", "")
		p("- Goal (VM): under 20 ms added: %s (the figures as measured, emulated).\n", verdict)
		r.writeVMFormat(b)
		return
	}
	p("| program | host median ms (runs) | VM median ms (runs) | VM / host: the TCG slowdown factor |\n|---|---|---|---|\n")
	var initF *tcgFactor
	lo, hi := factors[0].factor, factors[0].factor
	for i, f := range factors {
		failed := ""
		if f.guestFailedExits > 0 {
			failed = fmt.Sprintf(" (%d runs exited non-zero)", f.guestFailedExits)
		}
		p("| %s | %s (%d) | %s (%d)%s | %.1f× |\n", f.name, ms(f.host), f.hostN, ms(f.guest), f.guestN, failed, f.factor)
		if f.prog == "init" {
			initF = &factors[i]
		}
		lo, hi = min(lo, f.factor), max(hi, f.factor)
	}
	p("\n")
	if initF == nil || initF.factor <= 0 {
		p("The driver's `init` was not measured on both sides, so the VM figures are not scaled.\n\n")
		r.setGoal("overhead-vm-est", "", "not estimated: the driver's init was not measured on both sides", "")
	} else {
		F := initF.factor
		var est, spread []string
		for _, f := range figs {
			est = append(est, fmt.Sprintf("%s %s ms", f.label, ms(f.median/F)))
			spread = append(spread, fmt.Sprintf("%s %s–%s ms", f.label, ms(f.median/hi), ms(f.median/lo)))
		}
		p("**Estimated on a node (an estimate, not a measurement):** the VM's medians above divided by the slowdown of the driver's own `init` measured in this boot (F = %.1f×): %s. The three programs' factors span %.1f× to %.1f×; divided by those instead: %s. Why the `init` factor: it is the same binary started the same way, so it carries what every call pays to start (the Go runtime, the page faults of the binary, its package initialisation, reading `flexblock.json`); a call's own work also makes system calls (files, locks, `statx`, the log) that TCG may slow by another factor, so the estimate is rough. The host figure above (loop backend, real tools) is a measurement.\n\n",
			F, strings.Join(est, "; "), lo, hi, strings.Join(spread, "; "))
		r.setGoal("overhead-vm-est", "", fmt.Sprintf("estimated on a node: %s (VM figure / measured TCG factor F = %.1f×, the driver's `init`; %.1f–%.1f× across the three exec floors)", strings.Join(est, "; "), F, lo, hi), "estimate, not judged")
	}
	p("- Goal (VM): under 20 ms added: %s (the figures as measured, emulated). Why: ", verdict)
	if initF != nil && initF.factor > 0 {
		p("the emulation: in the same boot the driver's `init` alone takes %s ms against %s ms on the host (%.1f×), so a call that costs a few ms of process start and work on a node costs tens to hundreds here. ", ms(initF.guest), ms(initF.host), initF.factor)
	} else {
		p("the emulation (every instruction emulated). ")
	}
	p("What would close it: running this scenario where the guest's code runs natively, on a node or in a VM with hardware virtualisation (KVM)")
	if hw, known := hwVirt(); known && !hw {
		p(", which this machine cannot do: its CPUs advertise no hardware virtualisation (no `vmx` or `svm` flag in /proc/cpuinfo)")
	} else if known {
		p(" (this machine's CPUs advertise it: `scripts/vm/run.sh` could use `-accel kvm`)")
	}
	p("; until then the estimate above is what the measured slowdown predicts, and the summary keeps the VM's verdict on the emulated figures.\n")
	r.writeVMFormat(b)
}

// writeVMFormat renders the format comparison on RBD and the online
// growth check, when the VM run made them.
func (r *report) writeVMFormat(b *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	x := r.vm
	if o, pl, ok := r.vmFormat(); ok {
		size := fb.SizeName(pl.SizeMiB * fb.MiB)
		oursMkfs := o.ToolMsOf("mkfs.ext4")
		p("\n#### First mount on thin storage: a blank %s RBD image, plain against flexblock (in the VM)\n\n", size)
		p("Two blank %s images, created with the feature flexblock gives the images it creates (`layering`): flexblock's first mount of one (the whole call: `rbd device list`, `rbd info`, `rbd status`, `rbd map`, probe, read check, format, mount, bind), and on the other the sequence of kubelet's in-tree RBD plugin: `rbd map`, then mount-utils' `blkid`, `mkfs.ext4 -F -m0`, `mount`, each step started by the spawn helper. One run each (under TCG a bigger image or more runs would add minutes), so these are single samples, emulated: the ratio is the figure to read.\n\n", size)
		p("| | whole sequence ms | of which mkfs.ext4 | of which `rbd` commands |\n|---|---|---|---|\n")
		p("| flexblock first mount | %s | %s | %s (%s) |\n", ms(o.WallMs), ms(oursMkfs), ms(o.ToolMsOf("rbd")), plural(o.ToolRuns("rbd"), "run"))
		p("| plain: rbd map + blkid + `mkfs.ext4 -F -m0` + mount | %s | %s | %s (1 run: the map) |\n\n", ms(pl.Total()), ms(pl.MkfsMs), ms(pl.MapMs))
		p("Plain / flexblock at %s: whole sequence %s, mkfs alone %s. The plain `mkfs.ext4` discards the whole image first (a request per 4 MiB object to the OSD) and zeroes its journal; flexblock's format does neither. Under TCG the `rbd` command line tool costs most of a second per run, emulated like everything else, which weighs on flexblock's whole call (%d runs: its checks of the mappings, the image and its watchers, then the map) more than on the plain sequence (one, the map).\n", size, ratio(pl.Total(), o.WallMs), ratio(pl.MkfsMs, oursMkfs), o.ToolRuns("rbd"))
	}
	for _, g := range x.Grow {
		p("\n- Online growth of ext4 made with the driver's options plus `%s` (features: %s), in this VM's kernel: an RBD image grown from 1 GiB to 2 GiB, then `resize2fs` on the mounted filesystem, as the driver's expandfs runs it: ", g.Layout, g.Features)
		if g.OK() {
			p("**grew** (df: %s → %s).\n", bytesName(float64(g.BeforeBytes)), bytesName(float64(g.AfterBytes)))
		} else {
			p("**did not grow** (resize2fs exit %d, df %s → %s: %s).\n", g.Exit, bytesName(float64(g.BeforeBytes)), bytesName(float64(g.AfterBytes)), strings.TrimSpace(g.Output))
		}
	}
	p("\n")
}

// vmFormat is the VM's format comparison on RBD: flexblock's first mount
// of the blank image and the plain sequence.
func (r *report) vmFormat() (fb.VMCall, fb.VMPlainFormat, bool) {
	if r.vm == nil || len(r.vm.Plain) == 0 {
		return fb.VMCall{}, fb.VMPlainFormat{}, false
	}
	for _, c := range r.vm.Calls {
		if c.Tag == "format" && c.Call == "mount" {
			return c, r.vm.Plain[0], true
		}
	}
	return fb.VMCall{}, fb.VMPlainFormat{}, false
}

// rbdFormatSummary sums the VM's format comparison up in a clause ("" when
// the run did not make it).
func (r *report) rbdFormatSummary() string {
	o, pl, ok := r.vmFormat()
	if !ok {
		return ""
	}
	return fmt.Sprintf("on a blank %s RBD image in the VM, the plain sequence took %s flexblock's first mount (mkfs alone %s; one emulated run each, benchmark 3)",
		fb.SizeName(pl.SizeMiB*fb.MiB), ratio(pl.Total(), o.WallMs), ratio(pl.MkfsMs, o.ToolMsOf("mkfs.ext4")))
}

// metaBGGrow is what this run's VM found about growing meta_bg online.
func (r *report) metaBGGrow() *fb.VMGrow {
	if r.vm == nil {
		return nil
	}
	for i, g := range r.vm.Grow {
		if strings.Contains(g.Layout, "meta_bg") {
			return &r.vm.Grow[i]
		}
	}
	return nil
}

// hwVirt tells whether the CPUs advertise hardware virtualisation (the vmx
// or svm flag), which KVM needs.
func hwVirt() (has, known bool) {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(k) != "flags" {
			continue
		}
		for _, f := range strings.Fields(v) {
			if f == "vmx" || f == "svm" {
				return true, true
			}
		}
		return false, true
	}
	return false, false
}
