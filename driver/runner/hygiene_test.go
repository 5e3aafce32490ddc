package runner

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/logging"
)

const helperEnv = "FLEXBLOCK_RUNNER_HELPER_PIDFILE"

// helperDriver plays a driver that runs a long tool: the test SIGKILLs it.
func helperDriver() {
	e := &Exec{Mask: &logging.Masker{}, Dir: os.Getenv("FLEXBLOCK_RUNNER_HELPER_DIR"), Timeout: func(string) time.Duration { return time.Minute }}
	_, _ = e.Run(context.Background(), Cmd{Name: "sh", Args: []string{"-c", "echo $$ > " + os.Getenv(helperEnv) + "; exec sleep 120"}})
	os.Exit(0)
}

// A SIGKILLed driver cannot kill its tool's group: the tool must die by
// itself (PR_SET_PDEATHSIG), or a late `rbd map` leaks a mapping.
func TestToolDiesWithDriver(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	drv := exec.Command(os.Args[0], "-test.run=^$")
	drv.Env = append(os.Environ(), helperEnv+"="+pidFile, "FLEXBLOCK_RUNNER_HELPER_DIR="+filepath.Join(dir, "work"))
	if err := drv.Start(); err != nil {
		t.Fatal(err)
	}
	pid := waitPid(t, pidFile)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	_ = drv.Process.Kill()
	_ = drv.Wait()
	if !gone(pid, 3*time.Second) {
		t.Fatalf("tool %d outlived its SIGKILLed driver", pid)
	}
}

func waitPid(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(path)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the tool never started")
	return 0
}

func gone(pid int, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil || zombie(pid) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// fdsOfTool lists the descriptors a tool is started with.
func fdsOfTool(t *testing.T) []string {
	t.Helper()
	res, err := newExec(&bytes.Buffer{}, &logging.Masker{}).Run(context.Background(), Cmd{Name: "ls", Args: []string{"/proc/self/fd"}})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(res.Stdout))
}

// A descriptor made without close-on-exec anywhere in the driver (here a
// plain dup, as of kubelet's answer pipe) must not reach a tool: a tool's
// descendant that outlives the call would hold kubelet's pipe open.
func TestToolsGetOnlyStdio(t *testing.T) {
	fd, err := syscall.Dup(1)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	fds := fdsOfTool(t)
	// 0, 1, 2 and the one ls opened to read the directory.
	if len(fds) != 4 || fds[0] != "0" || fds[1] != "1" || fds[2] != "2" {
		t.Fatalf("tool got fds %v (leaked dup %d?)", fds, fd)
	}
}

func TestDupCloexec(t *testing.T) {
	fd, err := DupCloexec(1)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("flags %x err %v", flags, err)
	}
}

// Tools run in an empty directory of the driver's own: a relative path in
// an argument (mkfs.ext4 -d etc) names nothing of the node.
func TestToolsRunInEmptyWorkDir(t *testing.T) {
	e := newExec(&bytes.Buffer{}, &logging.Masker{})
	e.Dir = filepath.Join(t.TempDir(), "work")
	res, err := e.Run(context.Background(), Cmd{Name: "pwd"})
	if err != nil || strings.TrimSpace(string(res.Stdout)) != e.Dir {
		t.Fatalf("pwd %q err %v", res.Stdout, err)
	}
	if st, err := os.Lstat(e.Dir); err != nil || st.Mode().Perm() != 0o700 || !st.IsDir() {
		t.Fatalf("work dir %v %v", st, err)
	}
	if _, err := e.Run(context.Background(), Cmd{Name: "ls", Args: []string{"etc"}}); ExitCode(err) <= 0 {
		t.Fatalf("ls etc from the work dir: %v", err)
	}
}

func TestWorkDirMustBeOurs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a directory to another user")
	}
	base := t.TempDir()
	link := filepath.Join(base, "link")
	if err := os.Symlink("/", link); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(base, "foreign")
	if err := os.Mkdir(foreign, 0o700); err != nil || os.Chown(foreign, 65534, 65534) != nil {
		t.Fatal("setup")
	}
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil || os.Chmod(open, 0o777) != nil {
		t.Fatal("setup")
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{link, foreign, open, file, "", "relative/work"} {
		e := newExec(&bytes.Buffer{}, &logging.Masker{})
		e.Dir = dir
		_, err := e.Run(context.Background(), Cmd{Name: "true"})
		if err == nil || !errors.Is(err, errkind.Unsafe) || ExitCode(err) != -1 {
			t.Errorf("dir %q: err = %v", dir, err)
		}
	}
}

// A tool writing megabytes to stderr gives a bounded error and log line.
func TestStderrIsBounded(t *testing.T) {
	var log bytes.Buffer
	e := newExec(&log, &logging.Masker{})
	_, err := e.Run(context.Background(), Cmd{Name: "sh", Args: []string{"-c", "head -c 4000000 /dev/zero | tr '\\0' x >&2; echo LAST >&2; exit 1"}})
	if err == nil || len(err.Error()) > logging.MaxAnswer || !strings.HasSuffix(err.Error(), "LAST") {
		t.Fatalf("error of %d bytes", len(err.Error()))
	}
	if log.Len() > logging.MaxAnswer+1024 || !strings.Contains(log.String(), "LAST") {
		t.Fatalf("log line of %d bytes", log.Len())
	}
}

// The secret straddles where output is cut, at every offset: neither the
// error nor the log may keep a fragment of it.
func TestSecretAcrossTheCutNeverLeaks(t *testing.T) {
	const secret = "S3cr3tS3cr3tKeyMaterial0123456789"
	mask := &logging.Masker{}
	mask.Add(secret)
	for _, total := range []int{2048, logging.MaxAnswer / 2, logging.MaxAnswer} {
		for off := -len(secret); off <= 0; off += 3 {
			var log bytes.Buffer
			e := newExec(&log, mask)
			// secret, then filler so that the cut falls |off| bytes into it.
			filler := total + off
			script := "printf %s " + secret + " >&2; head -c " + strconv.Itoa(filler) + " /dev/zero | tr '\\0' y >&2; head -c 9000 /dev/zero | tr '\\0' z >&2; printf %s " + secret + " >&2; head -c " + strconv.Itoa(filler) + " /dev/zero | tr '\\0' y >&2; exit 1"
			_, err := e.Run(context.Background(), Cmd{Name: "sh", Args: []string{"-c", script}})
			for _, text := range []string{err.Error(), log.String()} {
				for i := 0; i+6 <= len(secret); i++ {
					if frag := secret[i : i+6]; strings.Contains(text, frag) {
						t.Fatalf("total %d off %d: fragment %q leaked", total, off, frag)
					}
				}
			}
		}
	}
}

// Cleanup after SIGTERM runs with its own bounded context, not the
// cancelled one, and keeps the values of the call's.
func TestDetached(t *testing.T) {
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	cancel()
	ctx, stop := Detached(parent, 0)
	defer stop()
	dl, ok := ctx.Deadline()
	if ctx.Err() != nil || !ok || time.Until(dl) > DetachedTimeout || time.Until(dl) < DetachedTimeout-time.Second || ctx.Value(key{}) != "v" {
		t.Fatalf("err %v deadline %v value %v", ctx.Err(), dl, ctx.Value(key{}))
	}
	ctx2, stop2 := Detached(parent, 50*time.Millisecond)
	defer stop2()
	select {
	case <-ctx2.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Detached has no bound")
	}
}

// Kernels before 5.11 have no close_range: the /proc walk does the same.
func TestCloseOnExecFallback(t *testing.T) {
	fd, err := syscall.Dup(1)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	closeOnExecFromProc()
	if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("fd %d flags %x err %v", fd, flags, err)
	}
}

func TestStderrKeepsHeadAndTail(t *testing.T) {
	h := headTail{keep: 10}
	for _, s := range []string{"HEAD", "aaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbb", "xxxxTAIL"} {
		_, _ = h.Write([]byte(s))
	}
	got := string(h.Bytes())
	if got != "HEADaaaaaa\n...[35 bytes dropped]...\nbbxxxxTAIL" {
		t.Fatalf("got %q", got)
	}
	small := headTail{keep: 10}
	_, _ = small.Write([]byte("abc"))
	_, _ = small.Write([]byte("defghijklm"))
	if string(small.Bytes()) != "abcdefghijklm" {
		t.Fatalf("got %q", small.Bytes())
	}
}
