package flexbench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"time"
)

// Sample is one measured process run.
type Sample struct {
	Wall      time.Duration
	CPU       time.Duration // user + system, the process and its tools
	MaxRSSKiB int64         // wait4's ru_maxrss: the process or its largest tool
	FloorKiB  int64         // the caller's own peak: MaxRSSKiB <= FloorKiB is a floor
	Exit      int
	Output    string
}

// Caller runs programs through the small spawn process (see
// bench/internal/cmd/spawn: it keeps ru_maxrss honest and calls exactly as
// kubelet does, os/exec with CombinedOutput).
type Caller struct {
	bin  string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	runs int
}

// restartEvery bounds the helper's own peak RSS, the floor of every
// figure it reports: it grows by about 12 KiB per run (threads, stacks the
// vfork'd children touch), from about 3 MiB.
const restartEvery = 25

// StartCaller starts the spawn helper.
func StartCaller(spawnBin string) (*Caller, error) {
	c := &Caller{bin: spawnBin}
	return c, c.start()
}

func (c *Caller) start() error {
	cmd := exec.Command(c.bin)
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	c.cmd, c.in, c.out, c.runs = cmd, in, sc, 0
	return nil
}

// RunTool runs a tool found in this process's PATH (argv[0] a bare name),
// as Run does.
func (c *Caller) RunTool(env []string, argv ...string) (Sample, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return Sample{}, err
	}
	return c.Run(env, append([]string{path}, argv[1:]...)...)
}

// Run runs argv with env and waits for it.
func (c *Caller) Run(env []string, argv ...string) (Sample, error) {
	if c.runs >= restartEvery {
		c.Close()
		if err := c.start(); err != nil {
			return Sample{}, err
		}
	}
	c.runs++
	req, _ := json.Marshal(map[string]any{"argv": argv, "env": env, "dir": "/"})
	if _, err := c.in.Write(append(req, '\n')); err != nil {
		return Sample{}, err
	}
	if !c.out.Scan() {
		return Sample{}, fmt.Errorf("spawn helper died: %v", c.out.Err())
	}
	var r struct {
		WallNs      int64  `json:"wall_ns"`
		UserNs      int64  `json:"user_ns"`
		SysNs       int64  `json:"sys_ns"`
		MaxRSSKiB   int64  `json:"maxrss_kib"`
		SelfRSSKiB  int64  `json:"self_maxrss_kib"`
		Exit        int    `json:"exit"`
		Output      string `json:"output"`
		Error       string `json:"error"`
		StartFailed bool   `json:"start_failed"`
	}
	if err := json.Unmarshal(c.out.Bytes(), &r); err != nil {
		return Sample{}, err
	}
	s := Sample{Wall: time.Duration(r.WallNs), CPU: time.Duration(r.UserNs + r.SysNs), MaxRSSKiB: r.MaxRSSKiB,
		FloorKiB: r.SelfRSSKiB, Exit: r.Exit, Output: r.Output}
	if r.StartFailed {
		return s, fmt.Errorf("%v: %s", argv, r.Error)
	}
	return s, nil
}

// Close stops the helper.
func (c *Caller) Close() {
	c.in.Close()
	_ = c.cmd.Wait()
}
