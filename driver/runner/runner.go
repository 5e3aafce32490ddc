// Package runner is the one way flexblock runs external programs: bounded by
// a timeout, in its own process group that is killed whole on expiry and
// dies with the driver, in an empty working directory of the driver's own,
// with no descriptor but 0, 1 and 2, its output captured and bounded, and
// secrets masked in everything it logs or returns.
package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Cmd is one external program invocation.
type Cmd struct {
	Name string
	Args []string
	// Stdin, if set, is written to the program's standard input.
	Stdin []byte
	// Timeout overrides the per-tool default when non-zero.
	Timeout time.Duration
	// Quiet keeps a non-zero exit out of the warning log (expected answers,
	// such as blkid's 2 for "no signature").
	Quiet bool
}

// String is the command line for messages. It is masked by the runner
// before it is shown anywhere.
func (c Cmd) String() string {
	return strings.TrimSpace(c.Name + " " + strings.Join(c.Args, " "))
}

// Result is what a program did.
type Result struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
	Duration time.Duration
}

// Runner runs commands. Tests replace it with a scripted fake.
type Runner interface {
	Run(ctx context.Context, c Cmd) (Result, error)
}

// ExitError reports a program that ran and exited non-zero.
type ExitError struct {
	Cmd    string // masked command line
	Code   int
	Stderr string // masked, then clipped to its head and tail (logging.Clip)
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s: exit status %d", e.Cmd, e.Code)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// ErrTimeout is wrapped by errors of programs killed at their deadline.
var ErrTimeout = errors.New("timed out")

// ExitCode extracts the exit code of an ExitError, or -1.
func ExitCode(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return -1
}
