package testkit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// KubeletEnv is the environment a driver gets from kubelet on a node: a
// plain PATH.
var KubeletEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}

// Answer is a driver's decoded answer plus how the process behaved.
type Answer struct {
	Status       string          `json:"status"`
	Message      string          `json:"message"`
	Device       string          `json:"device"`
	Attached     *bool           `json:"attached"`
	Capabilities map[string]bool `json:"capabilities"`
	Stdout       string          `json:"-"`
	Stderr       string          `json:"-"`
	Exit         int             `json:"-"` // -1: killed, or did not start
	Wall         time.Duration   `json:"-"`
}

// Unparsable is the Status of an answer that is not a JSON object.
const Unparsable = "Unparsable"

// Decode parses what kubelet reads from a driver: its stdout and stderr
// together, which must be one JSON object. An output that is not one has
// Status Unparsable and the output as Message.
func Decode(out string) Answer {
	var a Answer
	if err := OneObject(out); err != nil {
		return Answer{Status: Unparsable, Message: out}
	}
	_ = json.Unmarshal([]byte(out), &a)
	return a
}

// Exec runs the driver as kubelet does (argv[0] the installed path, env
// the whole environment) and decodes stdout and stderr together.
func (p *Plugin) Exec(env []string, args ...string) Answer {
	cmd := exec.Command(p.Exe, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	a := Decode(stdout.String() + stderr.String())
	a.Stdout, a.Stderr, a.Wall = stdout.String(), stderr.String(), wall
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		a.Exit = ee.ExitCode()
	} else if err != nil {
		a.Exit = -1
	}
	return a
}

// Run is Exec with this process's environment, checking nothing.
func (p *Plugin) Run(args ...string) Answer { return p.RunEnv(nil, args...) }

// RunEnv is Run with extra environment variables ("K=V").
func (p *Plugin) RunEnv(env []string, args ...string) Answer {
	return p.Exec(append(os.Environ(), env...), args...)
}

// Call runs the driver like kubelet and checks the output discipline:
// exactly one JSON object on stdout, nothing on stderr, exit status 0.
func (p *Plugin) Call(t testing.TB, args ...string) Answer {
	t.Helper()
	a := p.Run(args...)
	if a.Exit != 0 || a.Stderr != "" {
		t.Fatalf("%v: exit %d, stderr %q (stdout %q)", args, a.Exit, a.Stderr, a.Stdout)
	}
	if err := OneObject(a.Stdout); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return a
}

// OneObject checks s is exactly one JSON object with a status (and
// nothing but white space after it).
func OneObject(s string) error {
	dec := json.NewDecoder(strings.NewReader(s))
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("output is not a JSON object: %v: %q", err, s)
	}
	if strings.TrimSpace(s[dec.InputOffset():]) != "" {
		return fmt.Errorf("output has bytes after the JSON object: %q", s)
	}
	if _, ok := v["status"].(string); !ok {
		return fmt.Errorf("answer has no status: %q", s)
	}
	return nil
}

// RunCLI runs bin with args and this process's environment plus env, as an
// operator would: the combined output and the exit code.
func RunCLI(bin string, env []string, args ...string) (string, int, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode(), nil
	}
	return string(out), 0, err
}
