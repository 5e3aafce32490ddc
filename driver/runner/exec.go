package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/flexblock/flexblock/driver/logging"
)

// safePath is used for tools: kubelet may run us with a minimal PATH.
const safePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// maxOutput bounds captured output so a chatty tool cannot exhaust memory.
const maxOutput = 4 << 20

// Exec runs real programs.
type Exec struct {
	// Timeout gives the bound for a tool by name.
	Timeout func(tool string) time.Duration
	// Nsenter runs programs in PID 1's mount namespace.
	Nsenter bool
	Log     *slog.Logger
	Mask    *logging.Masker
	// Dir is the working directory of the programs ("/" when empty), so a
	// relative path in an argument can never point into our own files.
	Dir string
}

// Run executes c, killing its whole process group when the timeout expires
// or ctx is cancelled.
func (e *Exec) Run(ctx context.Context, c Cmd) (Result, error) {
	timeout := c.Timeout
	if timeout == 0 && e.Timeout != nil {
		timeout = e.Timeout(c.Name)
	}
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := e.command(ctx, c)
	var stdout, stderr limitedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Duration: time.Since(start)}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	err = e.classify(ctx, c, res, err, timeout)
	e.log(c, res, err)
	return res, err
}

func (e *Exec) command(ctx context.Context, c Cmd) *exec.Cmd {
	name, args := c.Name, c.Args
	if e.Nsenter {
		name, args = "nsenter", append([]string{"--mount=/proc/1/ns/mnt", "--", c.Name}, c.Args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	if p, err := lookPath(name); err == nil {
		cmd.Path, cmd.Err = p, nil
	}
	cmd.Env = []string{"PATH=" + safePath, "LC_ALL=C"}
	cmd.Dir = e.Dir
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	// Own process group: on expiry we kill the tool and everything it forked
	// (rbd and iscsiadm fork helpers that would otherwise outlive us).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A grandchild holding our pipes must not keep Wait from returning.
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// lookPath finds a tool on the safe PATH, not on kubelet's.
func lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range strings.Split(safePath, ":") {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

func (e *Exec) classify(ctx context.Context, c Cmd, res Result, err error, timeout time.Duration) error {
	line := e.Mask.Mask(c.String())
	switch {
	case err == nil:
		return nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%s: %w after %s (process group killed)", line, ErrTimeout, timeout)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: cancelled: %w", line, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Cmd: line, Code: res.ExitCode, Stderr: e.Mask.Mask(strings.TrimSpace(string(res.Stderr)))}
	}
	return fmt.Errorf("%s: %s", line, e.Mask.Mask(err.Error()))
}

func (e *Exec) log(c Cmd, res Result, err error) {
	if e.Log == nil {
		return
	}
	level := slog.LevelInfo
	if err != nil && !(c.Quiet && res.ExitCode > 0) {
		level = slog.LevelWarn
	}
	attrs := []any{
		"tool", c.Name,
		"argv", e.Mask.MaskAll(append([]string{c.Name}, c.Args...)),
		"exit", res.ExitCode,
		"ms", float64(res.Duration.Microseconds()) / 1000,
	}
	if len(res.Stderr) > 0 {
		attrs = append(attrs, "stderr", e.Mask.Mask(tail(res.Stderr)))
	}
	if err != nil {
		attrs = append(attrs, "error", e.Mask.Mask(err.Error()))
	}
	e.Log.Log(context.Background(), level, logging.EventExec, attrs...)
}

func tail(b []byte) string {
	const n = 2048
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// limitedBuffer keeps the first maxOutput bytes and drops the rest. The
// buffer is a field, not embedded, so io.Copy cannot bypass Write through
// bytes.Buffer's ReadFrom.
type limitedBuffer struct{ buf bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxOutput - l.buf.Len(); room > 0 {
		if len(p) > room {
			l.buf.Write(p[:room])
		} else {
			l.buf.Write(p)
		}
	}
	return len(p), nil
}

func (l *limitedBuffer) Bytes() []byte { return l.buf.Bytes() }
