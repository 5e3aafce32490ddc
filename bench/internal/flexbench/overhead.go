package flexbench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Series is the samples of one candidate in one benchmark.
type Series struct {
	Name    string
	Wall    []float64 // ms
	CPU     []float64 // ms, user+sys of the process and its tools
	RSS     []float64 // KiB
	Floor   []float64 // KiB: the caller's own peak (see Sample.FloorKiB)
	OwnMs   []float64 // driver log: call time minus tool time
	ToolMs  []float64 // driver log: time inside tools
	CallMs  []float64 // driver log: call time
	Failure string    // first failure, if any
}

// Add records a sample.
func (s *Series) Add(x Sample) {
	s.Wall = append(s.Wall, Ms(x.Wall))
	s.CPU = append(s.CPU, Ms(x.CPU))
	s.RSS = append(s.RSS, float64(x.MaxRSSKiB))
	s.Floor = append(s.Floor, float64(x.FloorKiB))
}

// AddLog records the driver's own account of the same call.
func (s *Series) AddLog(c CallLog) {
	s.OwnMs = append(s.OwnMs, c.OwnMs())
	s.ToolMs = append(s.ToolMs, c.ToolMs)
	s.CallMs = append(s.CallMs, c.CallMs)
}

// RSSIsFloor tells whether the peak RSS figures are the caller's own floor
// (the process was smaller than the spawn helper).
func (s *Series) RSSIsFloor() bool {
	return len(s.RSS) > 0 && Summarize(s.RSS).Max <= Summarize(s.Floor).Max
}

func (s *Series) fail(format string, a ...any) {
	if s.Failure == "" {
		s.Failure = fmt.Sprintf(format, a...)
	}
}

// InitResult is benchmark 1a: the init call.
type InitResult struct {
	Floor, GoFloor, Ours, BaselineJQ, BaselineEcho *Series
	ProdSize, TestSize                             int64
	// Trace is the production binary's package initialisation, from
	// GODEBUG=inittrace=1 runs of init (nil when it printed nothing).
	Trace *InitTrace
	// Modules are the modules linked into the production binary (go
	// version -m), the main module excluded.
	Modules []string
}

// Init measures `init` n times per candidate, interleaved (one of each in
// turn, so drift in the machine's load hits all of them alike), after
// warm-up runs that put every file in the page cache.
func Init(e *Env, root string, n int) (*InitResult, error) {
	ours, err := Install(filepath.Join(root, "ours"), e.ProdBin, "flexblock", "rbd", Config, false)
	if err != nil {
		return nil, err
	}
	jq, err := Install(filepath.Join(root, "jq"), e.Baseline, "example", "block", Config, false)
	if err != nil {
		return nil, err
	}
	echo, err := Install(filepath.Join(root, "echo"), e.Baseline, "example", "block", nil, false)
	if err != nil {
		return nil, err
	}
	c, err := StartCaller(e.SpawnBin)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r := &InitResult{
		Floor:        &Series{Name: "/bin/true (floor)"},
		GoFloor:      &Series{Name: "Go program printing the same answer (Go's floor)"},
		Ours:         &Series{Name: "flexblock init (production build)"},
		BaselineJQ:   &Series{Name: "bash+jq example driver, same init (config read with jq)"},
		BaselineEcho: &Series{Name: "bash example driver, fixed answer (echo, as kubernetes/examples)"},
		ProdSize:     FileSize(e.ProdBin), TestSize: FileSize(e.TestBin),
	}
	err = runInits(c, r.Floor, 10, n,
		initCand{r.Floor, []string{"/bin/true", "init"}},
		initCand{r.GoFloor, []string{e.HelloBin, "init"}},
		initCand{r.Ours, []string{ours.Exe, "init"}},
		initCand{r.BaselineJQ, []string{jq.Exe, "init"}},
		initCand{r.BaselineEcho, []string{echo.Exe, "init"}})
	if err != nil {
		return nil, err
	}
	r.Trace = TraceInit(ours.Exe, min(max(n, 5), 50))
	r.Modules = Modules(e.ProdBin)
	return r, nil
}

// ExecFloor measures the three exec floors the VM's slowdown is judged by
// (/bin/true, Go's floor, the production driver's init) n times each,
// interleaved, the same way Init does: the host side of the TCG factor
// when benchmark 1a does not run. Only Floor, GoFloor and Ours are set.
func ExecFloor(e *Env, root string, n int) (*InitResult, error) {
	ours, err := Install(filepath.Join(root, "ours"), e.ProdBin, "flexblock", "rbd", Config, false)
	if err != nil {
		return nil, err
	}
	c, err := StartCaller(e.SpawnBin)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r := &InitResult{
		Floor:    &Series{Name: "/bin/true (floor)"},
		GoFloor:  &Series{Name: "Go program printing the same answer (Go's floor)"},
		Ours:     &Series{Name: "flexblock init (production build)"},
		ProdSize: FileSize(e.ProdBin), TestSize: FileSize(e.TestBin),
	}
	err = runInits(c, r.Floor, 5, n,
		initCand{r.Floor, []string{"/bin/true", "init"}},
		initCand{r.GoFloor, []string{e.HelloBin, "init"}},
		initCand{r.Ours, []string{ours.Exe, "init"}})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// initCand is one program whose `init` is timed into s.
type initCand struct {
	s    *Series
	argv []string
}

// runInits runs every candidate's init warm+n times, interleaved (one of
// each in turn), keeping the last n samples; every answer but the floor's
// must be a Success.
func runInits(c *Caller, floor *Series, warm, n int, cands ...initCand) error {
	for i := 0; i < n+warm; i++ {
		for _, cand := range cands {
			x, err := c.Run(KubeletEnv, cand.argv...)
			if err != nil {
				return err
			}
			if cand.s != floor && Decode(x.Output).Status != "Success" {
				cand.s.fail("init answered %q", x.Output)
			}
			if i >= warm {
				cand.s.Add(x)
			}
		}
	}
	return nil
}

// InitTrace is where a Go binary's package initialisation spends its time.
type InitTrace struct {
	Runs     int
	TotalMs  float64   // median over runs of the sum of every package's init clock time
	EndMs    float64   // median over runs of the time after the runtime's start at which the last init ends
	Packages int       // packages with an init
	Top      []InitPkg // every package with an init, by median clock time, descending
}

// InitPkg is one package's init, medians over the runs.
type InitPkg struct {
	Pkg   string
	Ms    float64
	Bytes float64
}

var initLine = regexp.MustCompile(`^init (\S+) @([0-9.]+) ms, ([0-9.]+) ms clock, ([0-9]+) bytes, ([0-9]+) allocs`)

// TraceInit runs exe init runs times with GODEBUG=inittrace=1 (the runtime
// prints one line per package init on stderr) and summarizes the lines.
// It returns nil when no run printed any.
func TraceInit(exe string, runs int) *InitTrace {
	ms := map[string][]float64{}
	bytes := map[string][]float64{}
	var totals, ends []float64
	for i := 0; i < runs; i++ {
		cmd := exec.Command(exe, "init")
		cmd.Env = append(append([]string{}, KubeletEnv...), "GODEBUG=inittrace=1")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if cmd.Run() != nil {
			continue
		}
		total, end, seen := 0.0, 0.0, false
		for _, l := range strings.Split(stderr.String(), "\n") {
			m := initLine.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			at, _ := strconv.ParseFloat(m[2], 64)
			clock, _ := strconv.ParseFloat(m[3], 64)
			b, _ := strconv.ParseFloat(m[4], 64)
			ms[m[1]] = append(ms[m[1]], clock)
			bytes[m[1]] = append(bytes[m[1]], b)
			total += clock
			end = max(end, at+clock)
			seen = true
		}
		if seen {
			totals, ends = append(totals, total), append(ends, end)
		}
	}
	if len(totals) == 0 {
		return nil
	}
	t := &InitTrace{Runs: len(totals), TotalMs: Summarize(totals).Median, EndMs: Summarize(ends).Median, Packages: len(ms)}
	for pkg, xs := range ms {
		t.Top = append(t.Top, InitPkg{Pkg: pkg, Ms: Summarize(xs).Median, Bytes: Summarize(bytes[pkg]).Median})
	}
	sort.Slice(t.Top, func(i, j int) bool {
		if t.Top[i].Ms != t.Top[j].Ms {
			return t.Top[i].Ms > t.Top[j].Ms
		}
		return t.Top[i].Pkg < t.Top[j].Pkg
	})
	return t
}

// Modules lists the dependency modules linked into bin (go version -m).
func Modules(bin string) []string {
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		return nil
	}
	var mods []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "dep" {
			mods = append(mods, f[1])
		}
	}
	return mods
}

// CycleResult is a mount + unmount benchmark: our driver against a
// baseline, per call.
type CycleResult struct {
	Floor                       *Series
	OursMount, OursUnmount      *Series
	BaseMount, BaseUnmount      *Series
	Tools                       map[string][]float64 // our tools' ms by "call/tool"
	Mode                        string
	MountToolRuns, UnmountTools int
}

// NoopCycle is benchmark 1b: mount and unmount with the external tools
// replaced by no-op stand-ins (InstallStubs), so what remains is the
// driver's own work plus the cost of exec'ing trivial tools. The device is
// a real (1 MiB, never touched) loop device because the loop backend stats
// it. Needs a private mount namespace.
func NoopCycle(e *Env, root string, n int) (*CycleResult, error) {
	undo, err := InstallStubs(e.StubBin)
	if err != nil {
		return nil, err
	}
	defer undo()
	loop, err := NewLoop(filepath.Join(root, "noop.img"), MiB)
	if err != nil {
		return nil, err
	}
	defer loop.Close()
	r, err := cycle(e, root, loop.Dev, "ext4", n)
	if err != nil {
		return nil, err
	}
	r.Mode = "no-op tools"
	return r, nil
}

// RealCycle is benchmark 3 on the host: mount and unmount of an existing
// ext4 filesystem on a loop device with the real tools (blkid, fsck,
// mount, umount). Needs a private mount namespace.
func RealCycle(e *Env, root string, n int) (*CycleResult, error) {
	loop, err := NewLoop(filepath.Join(root, "real.img"), GiB)
	if err != nil {
		return nil, err
	}
	defer loop.Close()
	if out, err := runOut("mkfs.ext4", "-q", "-F", "-m0", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", loop.Dev); err != nil {
		return nil, fmt.Errorf("mkfs: %v: %s", err, out)
	}
	r, err := cycle(e, root, loop.Dev, "ext4", n)
	if err != nil {
		return nil, err
	}
	r.Mode = "real tools"
	return r, nil
}

func cycle(e *Env, root, dev, fsType string, n int) (*CycleResult, error) {
	ours, err := Install(filepath.Join(root, "ours"), e.TestBin, "flexblock", "loop", Config, true)
	if err != nil {
		return nil, err
	}
	defer UnmountUnder(root)
	base, err := Install(filepath.Join(root, "base"), e.Baseline, "example", "block", Config, false)
	if err != nil {
		return nil, err
	}
	c, err := StartCaller(e.SpawnBin)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	log := &LogReader{Path: ours.Log}
	r := &CycleResult{
		Floor:       &Series{Name: "/bin/true (floor)"},
		OursMount:   &Series{Name: "flexblock mount"},
		OursUnmount: &Series{Name: "flexblock unmount"},
		BaseMount:   &Series{Name: "bash+jq example driver mount"},
		BaseUnmount: &Series{Name: "bash+jq example driver unmount"},
		Tools:       map[string][]float64{},
	}
	opts := LoopOptions(dev, fsType)
	const warm = 3
	for i := 0; i < n+warm; i++ {
		keep := i >= warm
		x, err := c.Run(KubeletEnv, "/bin/true")
		if err != nil {
			return nil, err
		}
		if keep {
			r.Floor.Add(x)
		}
		// Ours: a new pod each time, as kubelet would.
		pod := ours.PodDir(fmt.Sprintf("pod-%d", i), "flexblock", "data")
		if err := MkPodDir(pod); err != nil {
			return nil, err
		}
		log.Skip()
		for _, step := range []struct {
			s    *Series
			argv []string
		}{
			{r.OursMount, []string{ours.Exe, "mount", pod, opts}},
			{r.OursUnmount, []string{ours.Exe, "unmount", pod}},
		} {
			x, err := c.Run(KubeletEnv, step.argv...)
			if err != nil {
				return nil, err
			}
			if a := Decode(x.Output); a.Status != "Success" {
				step.s.fail("%s: %s %s", step.argv[1], a.Status, a.Message)
			}
			calls, err := log.Next()
			if err != nil || len(calls) != 1 {
				return nil, fmt.Errorf("driver log: want 1 call, got %d (%v)", len(calls), err)
			}
			if keep {
				step.s.Add(x)
				step.s.AddLog(calls[0])
				for _, t := range calls[0].Tools {
					k := step.argv[1] + "/" + t.Tool
					r.Tools[k] = append(r.Tools[k], t.Ms)
				}
				if step.s == r.OursMount {
					r.MountToolRuns = len(calls[0].Tools)
				} else {
					r.UnmountTools = len(calls[0].Tools)
				}
			}
		}
		if left := MountsUnder(ours.Kubelet); len(left) != 0 {
			return nil, fmt.Errorf("mounts left after unmount: %v", left)
		}
		_ = os.Remove(pod)
		// Baseline: the same pod lifecycle.
		bpod := base.PodDir(fmt.Sprintf("pod-%d", i), "example", "data")
		if err := MkPodDir(bpod); err != nil {
			return nil, err
		}
		for _, step := range []struct {
			s    *Series
			argv []string
		}{
			{r.BaseMount, []string{base.Exe, "mount", bpod, opts}},
			{r.BaseUnmount, []string{base.Exe, "unmount", bpod}},
		} {
			x, err := c.Run(KubeletEnv, step.argv...)
			if err != nil {
				return nil, err
			}
			if a := Decode(x.Output); a.Status != "Success" {
				step.s.fail("%s: %s %s", step.argv[1], a.Status, a.Message)
			}
			if keep {
				step.s.Add(x)
			}
		}
		_ = os.Remove(bpod)
	}
	return r, nil
}

func runOut(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// since is time.Since in ms.
func since(t time.Time) float64 { return Ms(time.Since(t)) }
