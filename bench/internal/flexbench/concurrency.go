package flexbench

import (
	"errors"
	"fmt"
	"github.com/flexblock/flexblock/test/testkit"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Phase is one batch of driver calls.
type Phase struct {
	Name     string
	Calls    int
	Failed   int
	FirstErr string
	TotalMs  float64   // wall time of the whole batch
	CallMs   []float64 // wall time of each call
}

// Slowest is the longest call.
func (p Phase) Slowest() float64 { return Summarize(p.CallMs).Max }

type call struct{ args []string }

// run runs calls with the given parallelism (1: one after the other),
// each as its own driver process; concurrent calls start together.
func runPhase(p *testkit.Plugin, name string, calls []call, parallel bool) Phase {
	ph := Phase{Name: name, Calls: len(calls), CallMs: make([]float64, len(calls))}
	errs := make([]error, len(calls))
	start := time.Now()
	if parallel {
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for i, c := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				d, err := callTimed(p, c.args...)
				ph.CallMs[i], errs[i] = ms(d), err
			}()
		}
		start = time.Now()
		close(gate)
		wg.Wait()
	} else {
		for i, c := range calls {
			d, err := callTimed(p, c.args...)
			ph.CallMs[i], errs[i] = ms(d), err
		}
	}
	ph.TotalMs = since(start)
	for _, err := range errs {
		if err != nil {
			ph.Failed++
			if ph.FirstErr == "" {
				ph.FirstErr = err.Error()
			}
		}
	}
	return ph
}

// ConcurrencyResult is benchmark 5.
type ConcurrencyResult struct {
	Volumes int
	FS      string
	Size    int64
	// 64 volumes: first mounts (blank devices: probe, format, mount, bind)
	// and unmounts, all at once and, as the baseline, one after the other.
	ConcMount, ConcUnmount, SeqMount, SeqUnmount Phase
	Checks                                       []string // what was verified, with the outcome
	Problems                                     []string
	// VolumesOK: every check of the many-volumes part passed; PodsOK: every
	// check of the same-volume rounds did (false when none ran).
	VolumesOK, PodsOK bool
	// One volume, 8 pods, all at once, Rounds times.
	Pods   int
	Rounds []SameVolumeRound
}

// SameVolumeRound is one round of the same-volume test.
type SameVolumeRound struct {
	Mount, Unmount                   Phase
	GlobalMounts, Binds, LeftMounted int
	Releases                         int // device releases logged in this round
}

// Concurrency runs benchmark 5. Images go under imageDir. Needs a private
// mount namespace.
func Concurrency(e *Env, root, imageDir string, volumes, pods, rounds int, progress func(string)) (*ConcurrencyResult, error) {
	r := &ConcurrencyResult{Volumes: volumes, FS: "ext4", Size: GiB, Pods: pods}
	p, err := install(filepath.Join(root, "ours"), e.TestBin, "flexblock", "loop", true)
	if err != nil {
		return nil, err
	}
	defer UnmountUnder(root)
	var loops []*loop
	defer func() {
		for _, l := range loops {
			l.Close()
		}
	}()
	for i := 0; i < volumes; i++ {
		l, err := newLoop(filepath.Join(imageDir, fmt.Sprintf("conc-%02d.img", i)), r.Size)
		if err != nil {
			return nil, err
		}
		loops = append(loops, l)
	}
	mounts := func(tag string) (m, u []call) {
		for i, l := range loops {
			pod := p.PodDir(fmt.Sprintf("%s-%02d", tag, i), "data")
			_ = mkPodDir(pod)
			m = append(m, call{[]string{"mount", pod, loopOptions(l.Dev, r.FS)}})
			u = append(u, call{[]string{"unmount", pod}})
		}
		return m, u
	}
	check := func(what string, ok bool, detail string) {
		verdict := "yes"
		if !ok {
			verdict = "NO: " + detail
			r.Problems = append(r.Problems, what+": "+detail)
		}
		r.Checks = append(r.Checks, what+": "+verdict)
	}
	releases := func() int {
		b, _ := os.ReadFile(filepath.Join(p.State, "loop-releases.log"))
		return strings.Count(string(b), "\n")
	}
	records := func() int {
		fs, _ := filepath.Glob(filepath.Join(p.State, "volumes", "*", "*.json"))
		return len(fs)
	}
	for _, parallel := range []bool{true, false} {
		mode := "concurrent"
		if !parallel {
			mode = "sequential"
		}
		for _, l := range loops {
			if err := l.blank(); err != nil {
				return nil, err
			}
		}
		if progress != nil {
			progress(fmt.Sprintf("concurrency: %d %s first mounts", volumes, mode))
		}
		rel0 := releases()
		m, u := mounts(mode)
		mp := runPhase(p, mode+" mount", m, parallel)
		n := len(mountsUnder(p.Kubelet))
		check(fmt.Sprintf("%s: all %d mounts answered Success", mode, volumes), mp.Failed == 0, fmt.Sprintf("%d failed, first: %s", mp.Failed, mp.FirstErr))
		check(fmt.Sprintf("%s: %d global mounts + %d binds after the mounts", mode, volumes, volumes), n == 2*volumes, fmt.Sprintf("%d mounts", n))
		up := runPhase(p, mode+" unmount", u, parallel)
		left := mountsUnder(p.Kubelet)
		check(fmt.Sprintf("%s: all %d unmounts answered Success", mode, volumes), up.Failed == 0, fmt.Sprintf("%d failed, first: %s", up.Failed, up.FirstErr))
		check(fmt.Sprintf("%s: nothing mounted, %d releases, no state record left", mode, volumes),
			len(left) == 0 && releases()-rel0 == volumes && records() == 0,
			fmt.Sprintf("%d mounts, %d releases, %d records", len(left), releases()-rel0, records()))
		if parallel {
			r.ConcMount, r.ConcUnmount = mp, up
		} else {
			r.SeqMount, r.SeqUnmount = mp, up
		}
		UnmountUnder(p.Kubelet)
	}
	r.VolumesOK = len(r.Problems) == 0
	before := len(r.Problems)
	// Same volume, many pods.
	l := loops[0]
	if err := l.blank(); err != nil {
		return nil, err
	}
	dev := devMajMin(l.Dev)
	for round := 0; round < rounds; round++ {
		if progress != nil {
			progress(fmt.Sprintf("concurrency: %d pods on one volume, round %d", pods, round+1))
		}
		var m, u []call
		for i := 0; i < pods; i++ {
			pod := p.PodDir(fmt.Sprintf("same-%d-%d", round, i), "data")
			_ = mkPodDir(pod)
			m = append(m, call{[]string{"mount", pod, loopOptions(l.Dev, r.FS)}})
			u = append(u, call{[]string{"unmount", pod}})
		}
		rel0 := releases()
		sr := SameVolumeRound{Mount: runPhase(p, "mount", m, true)}
		for _, mt := range mountsUnder(p.Kubelet) {
			switch {
			case mt.MajMin != dev:
			case strings.HasPrefix(mt.Mountpoint, filepath.Join(p.Kubelet, "plugins")+"/"):
				sr.GlobalMounts++
			case strings.HasPrefix(mt.Mountpoint, filepath.Join(p.Kubelet, "pods")+"/"):
				sr.Binds++
			}
		}
		sr.Unmount = runPhase(p, "unmount", u, true)
		sr.LeftMounted = len(mountsUnder(p.Kubelet))
		sr.Releases = releases() - rel0
		r.Rounds = append(r.Rounds, sr)
		check(fmt.Sprintf("same volume round %d: %d mounts and %d unmounts answered Success", round+1, pods, pods),
			sr.Mount.Failed == 0 && sr.Unmount.Failed == 0, fmt.Sprintf("mount: %s unmount: %s", sr.Mount.FirstErr, sr.Unmount.FirstErr))
		check(fmt.Sprintf("same volume round %d: exactly 1 global mount and %d binds, then none; 1 release", round+1, pods),
			sr.GlobalMounts == 1 && sr.Binds == pods && sr.LeftMounted == 0 && sr.Releases == 1 && records() == 0,
			fmt.Sprintf("%d global, %d binds, %d left, %d releases, %d records", sr.GlobalMounts, sr.Binds, sr.LeftMounted, sr.Releases, records()))
		UnmountUnder(p.Kubelet)
	}
	r.PodsOK = rounds > 0 && len(r.Problems) == before
	if len(r.Problems) > 0 {
		return r, errors.New(strings.Join(r.Problems, "; "))
	}
	return r, nil
}
