package runner

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flexblock/flexblock/driver/logging"
)

func newExec(buf *bytes.Buffer, mask *logging.Masker) *Exec {
	return &Exec{Log: logging.New(buf), Mask: mask, Timeout: func(string) time.Duration { return 5 * time.Second }, Dir: workDir}
}

// workDir is the tools' working directory in these tests (TestMain).
var workDir string

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		helperDriver()
		return
	}
	dir, err := os.MkdirTemp("", "runner-test")
	if err != nil {
		panic(err)
	}
	workDir = dir + "/work"
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestCapturesOutputAndExitCode(t *testing.T) {
	var log bytes.Buffer
	e := newExec(&log, &logging.Masker{})
	res, err := e.Run(context.Background(), Cmd{Name: "sh", Args: []string{"-c", "echo out; echo err >&2; exit 3"}})
	if string(res.Stdout) != "out\n" || string(res.Stderr) != "err\n" || res.ExitCode != 3 {
		t.Fatalf("got %+v", res)
	}
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || ee.Stderr != "err" {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(log.String(), `"exit":3`) || !strings.Contains(log.String(), `"tool":"sh"`) {
		t.Fatalf("log lacks exit code: %s", log.String())
	}
}

func TestStdinIsPassed(t *testing.T) {
	e := newExec(&bytes.Buffer{}, &logging.Masker{})
	res, err := e.Run(context.Background(), Cmd{Name: "cat", Stdin: []byte("abc")})
	if err != nil || string(res.Stdout) != "abc" {
		t.Fatalf("%q %v", res.Stdout, err)
	}
}

// The timeout kills the whole process group: a background grandchild that
// would otherwise outlive the tool must be gone too.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := t.TempDir() + "/pid"
	e := newExec(&bytes.Buffer{}, &logging.Masker{})
	start := time.Now()
	_, err := e.Run(context.Background(), Cmd{Name: "sh", Args: []string{"-c", "sleep 300 & echo $! > " + pidFile + "; wait"}, Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %s", d)
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid == 0 {
		t.Fatal("no grandchild pid")
	}
	deadline := time.Now().Add(2 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if zombie(pid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still alive", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}

func TestCancelledContextStops(t *testing.T) {
	e := newExec(&bytes.Buffer{}, &logging.Masker{})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := e.Run(ctx, Cmd{Name: "sleep", Args: []string{"30"}})
	if err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("err = %v", err)
	}
}

func TestSecretsMaskedInLogAndErrors(t *testing.T) {
	var log bytes.Buffer
	mask := &logging.Masker{}
	mask.Add("hunter2-secret")
	e := newExec(&log, mask)
	_, err := e.Run(context.Background(), Cmd{Name: "sh", Args: []string{"-c", "echo hunter2-secret >&2; exit 1", "--password", "hunter2-secret"}})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error leaks secret: %v", err)
	}
	if strings.Contains(log.String(), "hunter2") || !strings.Contains(log.String(), "***") {
		t.Fatalf("log leaks secret: %s", log.String())
	}
}

func TestMissingToolIsAnError(t *testing.T) {
	e := newExec(&bytes.Buffer{}, &logging.Masker{})
	_, err := e.Run(context.Background(), Cmd{Name: "no-such-tool-flexblock"})
	if err == nil || ExitCode(err) != -1 {
		t.Fatalf("err = %v", err)
	}
}

func TestNsenterWrapsCommand(t *testing.T) {
	e := &Exec{Nsenter: true, Mask: &logging.Masker{}, Dir: "/run/flexblock/work"}
	cmd := e.command(context.Background(), Cmd{Name: "rbd", Args: []string{"map", "x"}})
	// --wd: entering a mount namespace moves the working directory to its
	// root; nsenter opens the dir before and returns to it after.
	want := []string{"nsenter", "--mount=/proc/1/ns/mnt", "--wd=/run/flexblock/work", "--", "rbd", "map", "x"}
	if strings.Join(cmd.Args, " ") != strings.Join(want, " ") {
		t.Fatalf("argv = %q", cmd.Args)
	}
	if cmd.Dir != "/run/flexblock/work" || cmd.Env[0] != "PATH="+safePath {
		t.Fatalf("dir %q env %q", cmd.Dir, cmd.Env)
	}
}

func TestOutputIsBounded(t *testing.T) {
	e := newExec(&bytes.Buffer{}, &logging.Masker{})
	res, err := e.Run(context.Background(), Cmd{Name: "head", Args: []string{"-c", strconv.Itoa(maxOutput + 1000), "/dev/zero"}})
	if err != nil || len(res.Stdout) != maxOutput {
		t.Fatalf("len %d err %v", len(res.Stdout), err)
	}
}
