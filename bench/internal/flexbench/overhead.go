package flexbench

import (
	"fmt"
	"github.com/flexblock/flexblock/test/testkit"
	"os"
	"os/exec"
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

// add records a sample.
func (s *Series) add(x sample) {
	s.Wall = append(s.Wall, ms(x.Wall))
	s.CPU = append(s.CPU, ms(x.CPU))
	s.RSS = append(s.RSS, float64(x.MaxRSSKiB))
	s.Floor = append(s.Floor, float64(x.FloorKiB))
}

// addLog records the driver's own account of the same call.
func (s *Series) addLog(c callLog) {
	s.OwnMs = append(s.OwnMs, c.ownMs())
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
	Floor, GoFloor, Ours, BaselineJQ *Series
	ProdSize, TestSize               int64
}

// Init measures `init` n times per candidate, interleaved (one of each in
// turn, so drift in the machine's load hits all of them alike), after
// warm-up runs that put every file in the page cache: the exec floors
// and the bash+jq baseline.
func Init(e *Env, root string, n int) (*InitResult, error) { return initRuns(e, root, 10, n, true) }

// ExecFloor measures the three exec floors the VM's slowdown is judged by
// (/bin/true, Go's floor, the production driver's init) the way Init
// does: the host side of the TCG factor when benchmark 1a does not run.
func ExecFloor(e *Env, root string, n int) (*InitResult, error) {
	return initRuns(e, root, 5, n, false)
}

func initRuns(e *Env, root string, warm, n int, baseline bool) (*InitResult, error) {
	ours, err := install(filepath.Join(root, "ours"), e.ProdBin, "flexblock", "rbd", false)
	if err != nil {
		return nil, err
	}
	r := &InitResult{
		Floor:    &Series{Name: "/bin/true (floor)"},
		GoFloor:  &Series{Name: "Go program printing the same answer (Go's floor)"},
		Ours:     &Series{Name: "flexblock init (production build)"},
		ProdSize: FileSize(e.ProdBin), TestSize: FileSize(e.TestBin),
	}
	cands := []initCand{{r.Floor, []string{"/bin/true", "init"}}, {r.GoFloor, []string{e.HelloBin, "init"}}, {r.Ours, []string{ours.Exe, "init"}}}
	if baseline {
		jq, err := install(filepath.Join(root, "jq"), e.Baseline, "example", "block", false)
		if err != nil {
			return nil, err
		}
		r.BaselineJQ = &Series{Name: "bash+jq example driver, same init (config read with jq)"}
		cands = append(cands, initCand{r.BaselineJQ, []string{jq.Exe, "init"}})
	}
	c, err := startCaller(e.SpawnBin)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return r, runInits(c, r.Floor, warm, n, cands...)
}

// initCand is one program whose `init` is timed into s.
type initCand struct {
	s    *Series
	argv []string
}

// runInits runs every candidate's init warm+n times, interleaved (one of
// each in turn), keeping the last n samples; every answer but the floor's
// must be a Success.
func runInits(c *caller, floor *Series, warm, n int, cands ...initCand) error {
	for i := 0; i < n+warm; i++ {
		for _, cand := range cands {
			x, err := c.run(testkit.KubeletEnv, cand.argv...)
			if err != nil {
				return err
			}
			if cand.s != floor && testkit.Decode(x.Output).Status != "Success" {
				cand.s.fail("init answered %q", x.Output)
			}
			if i >= warm {
				cand.s.add(x)
			}
		}
	}
	return nil
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
	undo, err := installStubs(e.StubBin)
	if err != nil {
		return nil, err
	}
	defer undo()
	loop, err := newLoop(filepath.Join(root, "noop.img"), MiB)
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
	loop, err := newLoop(filepath.Join(root, "real.img"), GiB)
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
	ours, err := install(filepath.Join(root, "ours"), e.TestBin, "flexblock", "loop", true)
	if err != nil {
		return nil, err
	}
	defer UnmountUnder(root)
	base, err := install(filepath.Join(root, "base"), e.Baseline, "example", "block", false)
	if err != nil {
		return nil, err
	}
	c, err := startCaller(e.SpawnBin)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	log := &logReader{Path: ours.Log}
	r := &CycleResult{
		Floor:       &Series{Name: "/bin/true (floor)"},
		OursMount:   &Series{Name: "flexblock mount"},
		OursUnmount: &Series{Name: "flexblock unmount"},
		BaseMount:   &Series{Name: "bash+jq example driver mount"},
		BaseUnmount: &Series{Name: "bash+jq example driver unmount"},
		Tools:       map[string][]float64{},
	}
	opts := loopOptions(dev, fsType)
	const warm = 3
	for i := 0; i < n+warm; i++ {
		keep := i >= warm
		x, err := c.run(testkit.KubeletEnv, "/bin/true")
		if err != nil {
			return nil, err
		}
		if keep {
			r.Floor.add(x)
		}
		// A new pod each time, as kubelet would; the baseline does the
		// same pod lifecycle.
		pod := fmt.Sprintf("pod-%d", i)
		if err := r.podCycle(c, ours, log, pod, opts, keep, r.OursMount, r.OursUnmount); err != nil {
			return nil, err
		}
		if err := r.podCycle(c, base, nil, pod, opts, keep, r.BaseMount, r.BaseUnmount); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// podCycle mounts and unmounts one pod's volume through p, into mount
// and unmount when keep. With log (flexblock's own), each call is also
// split into tool time and own time, and nothing may stay mounted.
func (r *CycleResult) podCycle(c *caller, p *testkit.Plugin, log *logReader, uid, opts string, keep bool, mount, unmount *Series) error {
	pod := p.PodDir(uid, "data")
	if err := mkPodDir(pod); err != nil {
		return err
	}
	defer os.Remove(pod)
	if log != nil {
		log.skip()
	}
	for _, step := range []struct {
		s    *Series
		argv []string
	}{{mount, []string{p.Exe, "mount", pod, opts}}, {unmount, []string{p.Exe, "unmount", pod}}} {
		x, err := c.run(testkit.KubeletEnv, step.argv...)
		if err != nil {
			return err
		}
		if a := testkit.Decode(x.Output); a.Status != "Success" {
			step.s.fail("%s: %s %s", step.argv[1], a.Status, a.Message)
		}
		if keep {
			step.s.add(x)
		}
		if log != nil {
			if err := r.addCallLog(log, step.s, step.argv[1], keep); err != nil {
				return err
			}
		}
	}
	if left := mountsUnder(p.Kubelet); log != nil && len(left) != 0 {
		return fmt.Errorf("mounts left after unmount: %v", left)
	}
	return nil
}

// addCallLog reads the one call the driver logged since the last read
// into s (when keep), with its tools' times by "call/tool".
func (r *CycleResult) addCallLog(log *logReader, s *Series, call string, keep bool) error {
	calls, err := log.next()
	if err != nil || len(calls) != 1 {
		return fmt.Errorf("driver log: want 1 call, got %d (%v)", len(calls), err)
	}
	if !keep {
		return nil
	}
	s.addLog(calls[0])
	for _, t := range calls[0].Tools {
		r.Tools[call+"/"+t.Tool] = append(r.Tools[call+"/"+t.Tool], t.Ms)
	}
	if call == "mount" {
		r.MountToolRuns = len(calls[0].Tools)
	} else {
		r.UnmountTools = len(calls[0].Tools)
	}
	return nil
}

func runOut(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// since is time.Since in ms.
func since(t time.Time) float64 { return ms(time.Since(t)) }
