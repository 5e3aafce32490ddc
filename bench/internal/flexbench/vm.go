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
	// Tag sets a call apart from the mount+unmount cycles: "format" for
	// the first mount of the blank image of the format comparison.
	Tag string `json:"tag,omitempty"`
}

// ToolMsOf is the time the call spent in runs of tool (from Tools).
func (c VMCall) ToolMsOf(tool string) float64 {
	var t float64
	for _, s := range c.Tools {
		name, ms, ok := strings.Cut(s, " ")
		if ok && name == tool {
			x, _ := strconv.ParseFloat(ms, 64)
			t += x
		}
	}
	return t
}

// ToolRuns is how many times the call ran tool.
func (c VMCall) ToolRuns(tool string) int {
	n := 0
	for _, s := range c.Tools {
		if name, _, _ := strings.Cut(s, " "); name == tool {
			n++
		}
	}
	return n
}

// vMExec is one run of an exec floor program in the guest, through the
// same spawn helper as on the host.
type vMExec struct {
	Prog   string  `json:"prog"` // "true", "gohello", "init"
	WallMs float64 `json:"wall_ms"`
	CPUMs  float64 `json:"cpu_ms"`
	Exit   int     `json:"exit"`
}

// VMPlainFormat is the plain sequence (rbd map, blkid, mkfs.ext4 -F -m0,
// mount) on a blank RBD image, each step timed through the spawn helper.
type VMPlainFormat struct {
	SizeMiB int64   `json:"size_mib"`
	MapMs   float64 `json:"map_ms"`
	BlkidMs float64 `json:"blkid_ms"`
	MkfsMs  float64 `json:"mkfs_ms"`
	MountMs float64 `json:"mount_ms"`
}

// Total is the whole plain sequence.
func (p VMPlainFormat) Total() float64 { return p.MapMs + p.BlkidMs + p.MkfsMs + p.MountMs }

// VMGrow is the check that the VM's kernel grows an ext4 filesystem made
// with a given layout while it is mounted (resize2fs on the mounted
// filesystem, as the driver's expandfs runs it), on an RBD image.
type VMGrow struct {
	Layout      string `json:"layout"` // the options added to the driver's mkfs
	Features    string `json:"features"`
	BeforeBytes int64  `json:"before"` // df size before and after
	AfterBytes  int64  `json:"after"`
	Exit        int    `json:"exit"` // resize2fs's
	Output      string `json:"output"`
}

// OK tells whether the filesystem grew.
func (g VMGrow) OK() bool { return g.Exit == 0 && g.AfterBytes > g.BeforeBytes }

// VMResult is benchmark 3 in the VM.
type VMResult struct {
	Calls   []VMCall
	Floor   []vMExec
	Notes   []string // what the scenario reports it skipped, and why
	Plain   []VMPlainFormat
	Grow    []VMGrow
	Summary string // the runner's "N passed, N failed" line
	Seconds float64
}

// FloorOf is the guest's wall times of one floor program.
func (r *VMResult) FloorOf(prog string) []float64 {
	var out []float64
	for _, x := range r.Floor {
		if x.Prog == prog {
			out = append(out, x.WallMs)
		}
	}
	return out
}

// VMOpts configures RunVM.
type VMOpts struct {
	N          int    // mount+unmount cycles per backend
	FloorN     int    // runs of each exec floor program in the guest
	FormatSize string // blank RBD image size for the format comparison ("" to skip), as rbd create --size takes it
}

// RunVM boots the real-kernel VM (scripts/vm/run.sh, with its Ceph and
// iSCSI setup) and runs the overhead scenario through
// scripts/e2e/run-all.sh, with the production binary bin.
func RunVM(e *Env, bin string, o VMOpts, log func(string)) (*VMResult, error) {
	n := o.N
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
		fmt.Sprintf("E2E_BENCH_N=%d", n), fmt.Sprintf("E2E_SCENARIO_TIMEOUT=%d", 600+120*n),
		"E2E_BENCH_SPAWN="+e.SpawnBin, "E2E_BENCH_GOHELLO="+e.HelloBin,
		fmt.Sprintf("E2E_BENCH_FLOOR_N=%d", o.FloorN), "E2E_BENCH_FORMAT_SIZE="+o.FormatSize)
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
		if note := r.parseLine(sc.Text()); note != "" && log != nil {
			log("  vm: " + note)
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
		cycles := 0
		for _, c := range r.Calls {
			if c.Tag == "" {
				cycles++
			}
		}
		return r, fmt.Errorf("the VM run ended with %v after %d of %d calls%s", err, cycles, 4*n, why)
	}
	return r, nil
}

// parseLine adds what one line of the VM run's output tells to r: the
// scenario's FLEX* records (JSON after the tag), the runner's summary. It
// returns what is worth a progress line ("" for nothing).
func (r *VMResult) parseLine(line string) string {
	line = strings.TrimSpace(line)
	tag, js, _ := strings.Cut(line, " ")
	switch tag {
	case "FLEXBENCH":
		if c, ok := appendJSON(&r.Calls, js); ok {
			return fmt.Sprintf("%s %s %.0f ms %s", c.Backend, c.Call, c.WallMs, c.Tag)
		}
		return ""
	case "FLEXFLOOR":
		appendJSON(&r.Floor, js)
		return ""
	case "FLEXPLAIN":
		if x, ok := appendJSON(&r.Plain, js); ok {
			return fmt.Sprintf("plain format %d MiB: %.0f ms", x.SizeMiB, x.Total())
		}
		return ""
	case "FLEXGROW":
		if x, ok := appendJSON(&r.Grow, js); ok {
			return fmt.Sprintf("online grow (%s): exit %d, %d -> %d bytes", x.Layout, x.Exit, x.BeforeBytes, x.AfterBytes)
		}
		return ""
	case "FLEXNOTE":
		r.Notes = append(r.Notes, js)
		return "note: " + js
	}
	if strings.HasSuffix(line, "failed") && strings.Contains(line, "passed,") {
		r.Summary = line
	}
	if strings.HasPrefix(line, "setup:") || strings.HasPrefix(line, "---") || strings.HasPrefix(line, "FAIL") {
		return line
	}
	return ""
}

// appendJSON decodes js and appends it to dst; a record that does not
// decode is left out.
func appendJSON[T any](dst *[]T, js string) (T, bool) {
	var x T
	if json.Unmarshal([]byte(js), &x) != nil {
		return x, false
	}
	*dst = append(*dst, x)
	return x, true
}
