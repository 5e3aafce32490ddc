package flexbench

import (
	"fmt"
	"os"
	"path/filepath"
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
	Variants                                       []*Series // the driver with a proposal applied
	VariantSize                                    []int64
}

// Variant is another build of the driver to measure next to ours.
type Variant struct{ Name, Bin string }

// Init measures `init` n times per candidate, interleaved (one of each in
// turn, so drift in the machine's load hits all of them alike), after
// warm-up runs that put every file in the page cache.
func Init(e *Env, root string, n int, variants []Variant) (*InitResult, error) {
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
	cands := []struct {
		s    *Series
		argv []string
	}{
		{r.Floor, []string{"/bin/true", "init"}},
		{r.GoFloor, []string{e.HelloBin, "init"}},
		{r.Ours, []string{ours.Exe, "init"}},
		{r.BaselineJQ, []string{jq.Exe, "init"}},
		{r.BaselineEcho, []string{echo.Exe, "init"}},
	}
	for i, v := range variants {
		p, err := Install(filepath.Join(root, fmt.Sprintf("variant%d", i)), v.Bin, "flexblock", "rbd", Config, false)
		if err != nil {
			return nil, err
		}
		s := &Series{Name: v.Name}
		r.Variants = append(r.Variants, s)
		r.VariantSize = append(r.VariantSize, FileSize(v.Bin))
		cands = append(cands, struct {
			s    *Series
			argv []string
		}{s, []string{p.Exe, "init"}})
	}
	const warm = 10
	for i := 0; i < n+warm; i++ {
		for _, cand := range cands {
			x, err := c.Run(KubeletEnv, cand.argv...)
			if err != nil {
				return nil, err
			}
			if cand.s != r.Floor && Decode(x.Output).Status != "Success" {
				cand.s.fail("init answered %q", x.Output)
			}
			if i >= warm {
				cand.s.Add(x)
			}
		}
	}
	return r, nil
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
	out, err := execCommand(name, args...).CombinedOutput()
	return string(out), err
}

// since is time.Since in ms.
func since(t time.Time) float64 { return Ms(time.Since(t)) }
