package runner

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// Script is a scripted Runner for tests: it records every command and
// answers from a list of expectations, matched by command-line prefix.
type Script struct {
	mu    sync.Mutex
	Calls []Cmd
	rules []rule
	// Strict makes an unmatched command fail the call.
	Strict bool
}

type rule struct {
	prefix string
	res    Result
	err    error
	fn     func(Cmd) (Result, error)
}

// On answers commands whose line starts with prefix with stdout and code.
func (s *Script) On(prefix, stdout string, code int) *Script {
	var err error
	if code != 0 {
		err = &ExitError{Cmd: prefix, Code: code}
	}
	s.rules = append(s.rules, rule{prefix: prefix, res: Result{Stdout: []byte(stdout), ExitCode: code}, err: err})
	return s
}

// OnFunc answers commands whose line starts with prefix by calling fn.
func (s *Script) OnFunc(prefix string, fn func(Cmd) (Result, error)) *Script {
	s.rules = append(s.rules, rule{prefix: prefix, fn: fn})
	return s
}

// Run records c and answers with the last matching rule (so a test can
// override an earlier default).
func (s *Script) Run(_ context.Context, c Cmd) (Result, error) {
	s.mu.Lock()
	s.Calls = append(s.Calls, c)
	s.mu.Unlock()
	line := c.String()
	for i := len(s.rules) - 1; i >= 0; i-- {
		r := s.rules[i]
		if strings.HasPrefix(line, r.prefix) {
			if r.fn != nil {
				return r.fn(c)
			}
			return r.res, r.err
		}
	}
	if s.Strict {
		return Result{ExitCode: 127}, fmt.Errorf("unscripted command: %s", line)
	}
	return Result{}, nil
}

// Lines returns the recorded command lines.
func (s *Script) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.Calls))
	for i, c := range s.Calls {
		out[i] = c.String()
	}
	return out
}
