package flexbench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// VMCall is one driver call measured inside the real-kernel VM (see
// bench/vm/scenarios/90-overhead.sh).
type VMCall struct {
	Backend   string   `json:"backend"`
	Call      string   `json:"call"`
	WallMs    float64  `json:"wall_ms"`
	CallMs    float64  `json:"call_ms"`
	ToolMs    float64  `json:"tool_ms"`
	WaitMs    float64  `json:"wait_ms"` // waiting for the kernel (iSCSI: the LUN's device to appear)
	Tools     []string `json:"tools"`
	Formatted bool     `json:"formatted"`
}

// VMResult is benchmark 3 in the VM.
type VMResult struct {
	Calls   []VMCall
	Summary string // the runner's "N passed, N failed" line
	Seconds float64
}

// RunVM boots the real-kernel VM (scripts/vm/run.sh, with its Ceph and
// iSCSI setup) and runs the overhead scenario n cycles per backend through
// scripts/e2e/run-all.sh, with the production binary bin.
func RunVM(e *Env, bin string, n int, log func(string)) (*VMResult, error) {
	run := filepath.Join(e.Repo, "scripts", "vm", "run.sh")
	if _, err := os.Stat(run); err != nil {
		return nil, fmt.Errorf("no VM runner: %w", err)
	}
	if deps := filepath.Join(e.Repo, "scripts", "vm", "deps.sh"); FileSize(deps) > 0 {
		if out, err := exec.Command(deps).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: %v: %s", deps, err, out)
		}
	}
	// The VM is not part of a measured run: start it at the normal
	// priority, not the raised one it would inherit, so that its emulated
	// CPUs do not starve the machine's other jobs.
	argv := []string{run, filepath.Join(e.Repo, "scripts", "e2e", "run-all.sh")}
	if p := Priority(); p < 0 {
		argv = append([]string{"nice", "-n", strconv.Itoa(-p)}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = e.Repo
	cmd.Env = append(os.Environ(), "FLEXBLOCK_BIN="+bin, "E2E_SCENARIOS="+filepath.Join(e.Repo, "bench", "vm", "scenarios"),
		fmt.Sprintf("E2E_BENCH_N=%d", n), fmt.Sprintf("E2E_SCENARIO_TIMEOUT=%d", 300+120*n))
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pw.Close()
		pr.Close()
		return nil, err
	}
	pw.Close()
	r := &VMResult{}
	var out bytes.Buffer
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		line := strings.TrimSpace(sc.Text())
		if js, ok := strings.CutPrefix(line, "FLEXBENCH "); ok {
			var c VMCall
			if json.Unmarshal([]byte(js), &c) == nil {
				r.Calls = append(r.Calls, c)
				if log != nil {
					log(fmt.Sprintf("  vm: %s %s %.0f ms", c.Backend, c.Call, c.WallMs))
				}
			}
			continue
		}
		if strings.HasSuffix(line, "failed") && strings.Contains(line, "passed,") {
			r.Summary = line
		}
		if log != nil && (strings.HasPrefix(line, "setup:") || strings.HasPrefix(line, "---") || strings.HasPrefix(line, "FAIL")) {
			log("  vm: " + line)
		}
	}
	pr.Close()
	err = cmd.Wait()
	if err != nil || len(r.Calls) == 0 {
		tail := out.String()
		if len(tail) > 3000 {
			tail = tail[len(tail)-3000:]
		}
		if log != nil {
			log("  vm output, last lines:\n" + tail)
		}
		why := ""
		for _, l := range strings.Split(tail, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "vm: FAILED") || strings.HasPrefix(strings.TrimSpace(l), "FAIL") {
				why = ": " + strings.TrimSpace(l)
			}
		}
		return r, fmt.Errorf("the VM run ended with %v after %d of %d calls%s", err, len(r.Calls), 4*n, why)
	}
	return r, nil
}
