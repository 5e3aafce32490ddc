package installer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Capabilities every init answer must carry: kubelet treats a missing key
// as true, so the driver always sends all five.
var Capabilities = []string{"attach", "selinuxRelabel", "supportsMetrics", "fsGroup", "requiresFSResize"}

// SelfTestTimeout bounds the init call.
var SelfTestTimeout = 10 * time.Second

// SelfTest runs exe init exactly as kubelet does and checks the answer:
// exit status 0, nothing on stderr, exactly one JSON object on stdout with
// status Success and all five capabilities as booleans. When wantAttach is
// set, the attach capability must equal it (proof that the config next to
// the executable was read).
func SelfTest(exe string, wantAttach *bool) error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("self-test failed: %s init: %s", exe, fmt.Sprintf(format, a...))
	}
	var stdout, stderr bytes.Buffer
	var err error
	for try := 0; try < 10; try++ {
		stdout.Reset()
		stderr.Reset()
		ctx, cancel := context.WithTimeout(context.Background(), SelfTestTimeout)
		cmd := exec.CommandContext(ctx, exe, "init")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.WaitDelay = time.Second
		err = cmd.Run()
		timedOut := ctx.Err() != nil
		cancel()
		if timedOut {
			return fail("no answer within %s", SelfTestTimeout)
		}
		// A file just written can be briefly busy when another goroutine
		// forked while its write descriptor was open (golang/go#22315).
		if !errors.Is(err, syscall.ETXTBSY) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return fail("exit status %d (kubelet treats any non-zero exit as an error); output %s", ee.ExitCode(), quote(stdout.String()+stderr.String()))
	case err != nil:
		return fail("cannot run it: %v", err)
	case stderr.Len() > 0:
		return fail("wrote to stderr, which kubelet reads together with stdout: %s", quote(stderr.String()))
	}
	ans, err := decodeOne(stdout.Bytes())
	if err != nil {
		return fail("the answer is not one JSON object (%v): %s", err, quote(stdout.String()))
	}
	if ans.Status != "Success" {
		return fail("status %q, want \"Success\"; message %q", ans.Status, ans.Message)
	}
	for _, k := range Capabilities {
		raw, ok := ans.Capabilities[k]
		if !ok {
			return fail("capability %q is missing (kubelet would take it as true): %s", k, quote(stdout.String()))
		}
		var v bool
		if err := json.Unmarshal(raw, &v); err != nil {
			return fail("capability %q is %s, not a boolean", k, raw)
		}
		if k == "attach" && wantAttach != nil && v != *wantAttach {
			return fail("capability attach is %v but the config says %v: the driver did not read its config file", v, *wantAttach)
		}
	}
	return nil
}

type initAnswer struct {
	Status       string                     `json:"status"`
	Message      string                     `json:"message"`
	Capabilities map[string]json.RawMessage `json:"capabilities"`
}

func decodeOne(b []byte) (*initAnswer, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	a := &initAnswer{}
	if err := dec.Decode(a); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("more output after the object")
	}
	return a, nil
}

func quote(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return "(empty)"
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return fmt.Sprintf("%q", s)
}
