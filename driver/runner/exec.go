package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/logging"
)

// safePath is used for tools: kubelet may run us with a minimal PATH.
const safePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// maxOutput bounds captured stdout so a chatty tool cannot exhaust memory.
const maxOutput = 4 << 20

// stderrKeep is how much of the head and of the tail of stderr is kept.
// It must stay far above what Clip shows of either end (maxStderr/2): the
// bytes around a drop point may be a fragment of a secret that the masker
// cannot recognise, and only Clip's own cut, made after masking, may
// remove them from sight.
const stderrKeep = 64 << 10

// maxStderr bounds a tool's stderr in errors and log lines, leaving room
// in an answer (logging.MaxAnswer) for the command line and the context.
const maxStderr = logging.MaxAnswer - 1024

// Exec runs real programs.
type Exec struct {
	// Timeout gives the bound for a tool by name.
	Timeout func(tool string) time.Duration
	// Nsenter runs programs in PID 1's mount namespace.
	Nsenter bool
	Log     *slog.Logger
	Mask    *logging.Masker
	// Dir is the working directory of the programs: an empty directory of
	// the driver's own (state.Layout.Work()), created 0700 when missing, so
	// a relative path in an argument (mkfs.ext4 -d etc) names nothing of
	// the node. Required: a tool is never run anywhere else.
	Dir string
}

// Run executes c, killing its whole process group when the timeout expires
// or ctx is cancelled. The timeout lives inside ctx's own deadline (the
// call's), whichever comes first.
func (e *Exec) Run(ctx context.Context, c Cmd) (Result, error) {
	if err := PrivateDir(e.Dir); err != nil {
		err = fmt.Errorf("%s: not run: working directory: %w", e.Mask.Mask(c.String()), err)
		e.log(c, Result{ExitCode: -1}, "", err)
		return Result{ExitCode: -1}, err
	}
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
	var stdout limitedBuffer
	stderr := headTail{keep: stderrKeep}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := runBoundToUs(cmd)
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Duration: time.Since(start)}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	// Mask first, then cut: a cut through a secret leaves a fragment the
	// masker no longer recognises.
	shown := logging.Clip(e.Mask.Mask(strings.TrimSpace(string(res.Stderr))), maxStderr)
	err = e.classify(ctx, c, res, shown, err, timeout)
	e.log(c, res, shown, err)
	return res, err
}

// runBoundToUs runs cmd so that it cannot outlive the driver.
//
// Every fd but 0, 1 and 2 is made close-on-exec first: Go opens its own
// fds that way, but not an fd the process inherited (kubelet's) or made
// with a plain dup, and a tool's descendant that outlives the call while
// holding kubelet's pipe makes kubelet wait for it.
//
// The child gets PR_SET_PDEATHSIG=SIGKILL, so a SIGKILLed driver (which
// cannot kill the group) does not leave its tool running. The kernel sends
// it when the OS thread that forked the child exits, not the process; Go
// ends a thread when a goroutine locked to it returns, so this goroutine
// holds its thread from Start to Wait and no other goroutine can end it.
func runBoundToUs(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	closeOnExecFrom3()
	return cmd.Run()
}

func (e *Exec) command(ctx context.Context, c Cmd) *exec.Cmd {
	name, args := c.Name, c.Args
	if e.Nsenter {
		// Entering a mount namespace moves the working directory to its
		// root; --wd makes nsenter open ours before and return to it after.
		name, args = "nsenter", append([]string{"--mount=/proc/1/ns/mnt", "--wd=" + e.Dir, "--", c.Name}, c.Args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	if p, err := lookPath(name); err == nil {
		cmd.Path, cmd.Err = p, nil
	}
	cmd.Env = []string{"PATH=" + safePath, "LC_ALL=C"}
	cmd.Dir = e.Dir
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	// Own process group: on expiry we kill the tool and everything it forked
	// (rbd and iscsiadm fork helpers that would otherwise outlive us).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
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

// classify turns the outcome into an error; stderr is already masked and
// clipped.
func (e *Exec) classify(ctx context.Context, c Cmd, res Result, stderr string, err error, timeout time.Duration) error {
	line := e.Mask.Mask(c.String())
	switch {
	case err == nil:
		return nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return errkind.Mark(errkind.Timeout, fmt.Errorf("%s: %w after %s (process group killed)", line, ErrTimeout, timeout))
	case ctx.Err() != nil:
		return fmt.Errorf("%s: cancelled: %w", line, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Cmd: line, Code: res.ExitCode, Stderr: stderr}
	}
	return fmt.Errorf("%s: %s", line, e.Mask.Mask(err.Error()))
}

func (e *Exec) log(c Cmd, res Result, stderr string, err error) {
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
	if stderr != "" {
		attrs = append(attrs, "stderr", stderr)
	}
	// An exit status is told by exit and stderr above; other errors
	// (timeout, missing tool) are told here.
	var ee *ExitError
	if err != nil && !errors.As(err, &ee) {
		attrs = append(attrs, "error", logging.Clip(e.Mask.Mask(err.Error()), logging.MaxAnswer))
	}
	e.Log.Log(context.Background(), level, "exec", attrs...)
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

// headTail keeps the first and the last keep bytes of what is written:
// a tool says what it does at the start and why it failed at the end.
type headTail struct {
	keep    int
	head    []byte
	tail    []byte // a window of the last bytes, compacted as it grows
	dropped int64
}

func (h *headTail) Write(p []byte) (int, error) {
	n := len(p)
	if room := h.keep - len(h.head); room > 0 {
		take := min(room, len(p))
		h.head = append(h.head, p[:take]...)
		p = p[take:]
	}
	h.tail = append(h.tail, p...)
	if over := len(h.tail) - h.keep; over > 0 {
		h.dropped += int64(over)
		h.tail = append(h.tail[:0], h.tail[over:]...)
	}
	return n, nil
}

func (h *headTail) Bytes() []byte {
	if h.dropped == 0 {
		return append(h.head[:len(h.head):len(h.head)], h.tail...)
	}
	note := fmt.Sprintf("\n...[%d bytes dropped]...\n", h.dropped)
	return append(append(h.head[:len(h.head):len(h.head)], note...), h.tail...)
}
