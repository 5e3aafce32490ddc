package flexbench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"github.com/flexblock/flexblock/bench/internal/spawnwire"
	"io"
	"os/exec"
	"time"
)

// sample is one measured process run.
type sample struct {
	Wall      time.Duration
	CPU       time.Duration // user + system, the process and its tools
	MaxRSSKiB int64         // wait4's ru_maxrss: the process or its largest tool
	FloorKiB  int64         // the caller's own peak: MaxRSSKiB <= FloorKiB is a floor
	Exit      int
	Output    string
}

// caller runs programs through the small spawn process (see
// bench/internal/cmd/spawn: it keeps ru_maxrss honest and calls exactly as
// kubelet does, os/exec with CombinedOutput).
type caller struct {
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

// startCaller starts the spawn helper.
func startCaller(spawnBin string) (*caller, error) {
	c := &caller{bin: spawnBin}
	return c, c.start()
}

func (c *caller) start() error {
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

// runTool runs a tool found in this process's PATH (argv[0] a bare name),
// as Run does.
func (c *caller) runTool(env []string, argv ...string) (sample, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return sample{}, err
	}
	return c.run(env, append([]string{path}, argv[1:]...)...)
}

// run runs argv with env and waits for it.
func (c *caller) run(env []string, argv ...string) (sample, error) {
	if c.runs >= restartEvery {
		c.Close()
		if err := c.start(); err != nil {
			return sample{}, err
		}
	}
	c.runs++
	req, _ := json.Marshal(spawnwire.Request{Argv: argv, Env: env, Dir: "/"})
	if _, err := c.in.Write(append(req, '\n')); err != nil {
		return sample{}, err
	}
	if !c.out.Scan() {
		return sample{}, fmt.Errorf("spawn helper died: %v", c.out.Err())
	}
	var r spawnwire.Reply
	if err := json.Unmarshal(c.out.Bytes(), &r); err != nil {
		return sample{}, err
	}
	s := sample{Wall: time.Duration(r.WallNs), CPU: time.Duration(r.UserNs + r.SysNs), MaxRSSKiB: r.MaxRSSKiB,
		FloorKiB: r.SelfRSSKiB, Exit: r.Exit, Output: r.Output}
	if r.StartFailed {
		return s, fmt.Errorf("%v: %s", argv, r.Error)
	}
	return s, nil
}

// Close stops the helper.
func (c *caller) Close() {
	c.in.Close()
	_ = c.cmd.Wait()
}
