// Package drivertest builds the flexblock binary and calls it exactly as
// kubelet does: argv[0] is <plugin dir>/flexblock~NAME/NAME, stdout and
// stderr are read together, and the answer must be one JSON object.
package drivertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Answer is the driver's decoded answer plus how the process behaved.
type Answer struct {
	Status       string          `json:"status"`
	Message      string          `json:"message"`
	Device       string          `json:"device"`
	Attached     *bool           `json:"attached"`
	Capabilities map[string]bool `json:"capabilities"`
	Stdout       string          `json:"-"`
	Stderr       string          `json:"-"`
	Exit         int             `json:"-"`
}

// Build compiles the driver (with the test backend when tags say so) into
// dir and returns its path.
func Build(dir string, tags ...string) (string, error) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	out := filepath.Join(dir, "flexblock")
	// The production tags, as make build sets them.
	args := []string{"build", "-o", out, "-tags", strings.Join(append([]string{"urfave_cli_no_docs"}, tags...), ",")}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, b)
	}
	return out, nil
}

// Plugin is a driver installed in a temp plugin dir.
type Plugin struct {
	Dir     string // plugin dir
	Exe     string // <Dir>/flexblock~NAME/NAME
	State   string
	Log     string
	Kubelet string // fake kubelet root
}

// Install copies bin as driver name with a config (extra fields merged).
func Install(t testing.TB, bin, name string, extra map[string]any) *Plugin {
	t.Helper()
	base := t.TempDir()
	p := &Plugin{
		Dir:     filepath.Join(base, "plugins"),
		State:   filepath.Join(base, "state"),
		Log:     filepath.Join(base, "log", "flexblock.log"),
		Kubelet: filepath.Join(base, "kubelet"),
	}
	driverDir := filepath.Join(p.Dir, "flexblock~"+name)
	p.Exe = filepath.Join(driverDir, name)
	must(t, os.MkdirAll(driverDir, 0o755))
	b, err := os.ReadFile(bin)
	must(t, err)
	must(t, os.WriteFile(p.Exe, b, 0o755))
	cfg := map[string]any{"logFile": p.Log, "stateDir": p.State, "kubeletRoot": p.Kubelet}
	for k, v := range extra {
		cfg[k] = v
	}
	cb, _ := json.Marshal(cfg)
	must(t, os.WriteFile(filepath.Join(driverDir, "flexblock.json"), cb, 0o644))
	return p
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

// Run runs the driver and decodes what it can, checking nothing.
func (p *Plugin) Run(args ...string) Answer { return p.RunEnv(nil, args...) }

// RunEnv is Run with extra environment variables ("K=V").
func (p *Plugin) RunEnv(env []string, args ...string) Answer {
	cmd := exec.Command(p.Exe, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	a := Answer{Stdout: stdout.String(), Stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		a.Exit = ee.ExitCode()
	} else if err != nil {
		a.Exit = -1
	}
	_ = json.Unmarshal(stdout.Bytes(), &a)
	return a
}

// OneObject checks s is exactly one JSON object (and a newline).
func OneObject(s string) error {
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("stdout is not a JSON object: %v: %q", err, s)
	}
	if dec.More() {
		return fmt.Errorf("stdout has more than one JSON value: %q", s)
	}
	var rest bytes.Buffer
	_, _ = rest.ReadFrom(dec.Buffered())
	if bytes.TrimSpace(rest.Bytes()) != nil && len(bytes.TrimSpace(rest.Bytes())) > 0 {
		return fmt.Errorf("stdout has trailing bytes %q", rest.String())
	}
	if _, ok := v["status"].(string); !ok {
		return fmt.Errorf("answer has no status: %q", s)
	}
	return nil
}

// PodDir returns (and does not create) a pod volume dir under the kubelet root.
func (p *Plugin) PodDir(uid, backend, vol string) string {
	return filepath.Join(p.Kubelet, "pods", uid, "volumes", "flexblock~"+backend, vol)
}

// Options builds the options JSON kubelet sends to mount.
func Options(kv ...string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
