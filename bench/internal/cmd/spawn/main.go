// Command spawn runs programs the way kubelet runs a FlexVolume driver
// (os/exec, CombinedOutput) and reports each run's wall time, CPU time and
// peak RSS. It exists because a child's ru_maxrss includes the RSS high-water
// mark of the memory it was forked from (exec_mmap keeps the old mm's peak):
// measured from a large Go benchmark process, even /bin/true "uses" 200 MiB.
// This process stays small, so the peak it reports is the child's own,
// floored at this process's own peak (VmHWM, reported as self_maxrss_kib so
// a reader can tell a floor from a figure).
//
// Protocol: internal/spawnwire, until stdin closes.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flexblock/flexblock/bench/internal/spawnwire"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req spawnwire.Request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil || len(req.Argv) == 0 {
			_ = out.Encode(spawnwire.Reply{Error: "bad request", StartFailed: true})
			continue
		}
		_ = out.Encode(run(req))
	}
}

func run(req spawnwire.Request) spawnwire.Reply {
	cmd := exec.Command(req.Argv[0], req.Argv[1:]...)
	cmd.Env = req.Env
	cmd.Dir = req.Dir
	start := time.Now()
	output, err := cmd.CombinedOutput()
	wall := time.Since(start)
	r := spawnwire.Reply{WallNs: wall.Nanoseconds(), Output: string(output)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Exit = ee.ExitCode()
	default:
		r.Error, r.StartFailed, r.Exit = err.Error(), true, -1
	}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.MaxRSSKiB = ru.Maxrss
			r.UserNs = syscall.TimevalToNsec(ru.Utime)
			r.SysNs = syscall.TimevalToNsec(ru.Stime)
		}
	}
	r.SelfRSSKiB = vmHWM()
	return r
}

// vmHWM is this process's own peak RSS in KiB: the floor a child's
// ru_maxrss cannot go below. Not getrusage(RUSAGE_SELF), which also holds
// the peak this process inherited from its own (big) parent at exec.
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
