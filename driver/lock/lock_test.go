package lock

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flexblock/flexblock/driver/errkind"
)

func TestExclusiveAndBounded(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(context.Background(), dir, "rbd-vol-a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(context.Background(), dir, "rbd-vol-a", 50*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("second holder: %v", err)
	}
	other, err := Acquire(context.Background(), dir, "rbd-vol-b", 50*time.Millisecond)
	if err != nil {
		t.Fatalf("other volume blocked: %v", err)
	}
	other.Release()
	time.AfterFunc(50*time.Millisecond, l.Release)
	l2, err := Acquire(context.Background(), dir, "rbd-vol-a", time.Second)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.Release()
}

// A holder that dies (kill -9) never leaves the lock held.
func TestDeadHolderReleases(t *testing.T) {
	dir := t.TempDir()
	// exec keeps one process holding the lock fd, so killing it frees the lock.
	cmd := exec.Command("sh", "-c", "exec 9>"+dir+"/"+fileName("k")+" && flock 9 && exec sleep 30")
	if err := cmd.Start(); err != nil {
		t.Skip("flock(1) not available")
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		l, err := Acquire(context.Background(), dir, "k", 10*time.Millisecond)
		if err != nil {
			break // held by the child
		}
		l.Release()
		if time.Now().After(deadline) {
			t.Fatal("child never took the lock")
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	l, err := Acquire(context.Background(), dir, "k", time.Second)
	if err != nil {
		t.Fatalf("lock of dead holder: %v", err)
	}
	l.Release()
}

func TestFileNames(t *testing.T) {
	if fileName("rbd-vol-kube~ns~img~") == "rbd-vol-kube~ns~img~.lock" {
		t.Error("unsafe chars kept")
	}
	if fileName("iscsi-a.b") != "iscsi-a.b.lock" {
		t.Error("plain key changed")
	}
	for _, k := range []string{"../../etc/passwd", ".hidden", "a/b"} {
		if n := fileName(k); strings.ContainsAny(n, "/") || strings.HasPrefix(n, ".") {
			t.Errorf("fileName(%q) = %q", k, n)
		}
	}
}

// A symlink planted at a lock file's path must not make root create (or
// open) its target.
func TestPlantedSymlinkAtLockFile(t *testing.T) {
	dir, x := filepath.Join(t.TempDir(), "locks"), t.TempDir()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(x, "target")
	if err := os.Symlink(target, filepath.Join(dir, fileName("k"))); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(context.Background(), dir, "k", 50*time.Millisecond)
	if err == nil {
		l.Release()
	}
	if !errors.Is(err, errkind.Unsafe) {
		t.Fatalf("planted symlink: want errkind.Unsafe, got %v", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the symlink's target was created: %v", err)
	}
}

// A lock dir that is a symlink is refused; nothing is created through it.
func TestLockDirSymlinkRefused(t *testing.T) {
	base, x := t.TempDir(), t.TempDir()
	dir := filepath.Join(base, "locks")
	if err := os.Symlink(x, dir); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(context.Background(), dir, "k", 50*time.Millisecond)
	if err == nil {
		l.Release()
	}
	if !errors.Is(err, errkind.Unsafe) {
		t.Fatalf("symlinked lock dir: want errkind.Unsafe, got %v", err)
	}
	if ents, _ := os.ReadDir(x); len(ents) != 0 {
		t.Fatalf("created through the symlinked dir: %v", ents)
	}
}

// A planted non-regular file (a FIFO here) is not used as a lock.
func TestNonRegularLockFileRefused(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(dir, fileName("k")), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(context.Background(), dir, "k", 50*time.Millisecond)
	if err == nil {
		l.Release()
	}
	if !errors.Is(err, errkind.Unsafe) {
		t.Fatalf("FIFO lock file: want errkind.Unsafe, got %v", err)
	}
}

// The lock dir is made 0700; the lock fd is close-on-exec, so no tool
// inherits (and holds) the lock.
func TestNewDirModeAndCloexec(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "locks")
	l, err := Acquire(context.Background(), dir, "k", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if fi, err := os.Lstat(dir); err != nil || fi.Mode().Perm() != 0o700 || !fi.IsDir() {
		t.Fatalf("lock dir: %v %v", fi.Mode(), err)
	}
	flags, err := unix.FcntlInt(l.f.Fd(), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("lock fd not close-on-exec: %#x %v", flags, err)
	}
}

// A lock wait that runs out is errkind.Busy and still lock.ErrTimeout.
func TestTimeoutIsBusy(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(context.Background(), dir, "k", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	_, err = Acquire(context.Background(), dir, "k", 20*time.Millisecond)
	if !errors.Is(err, errkind.Busy) || !errors.Is(err, ErrTimeout) || errkind.Of(err) != errkind.Busy {
		t.Fatalf("timeout: %v (kind %v)", err, errkind.Of(err))
	}
}

// The call's own deadline ending the wait is errkind.Timeout and names
// the lock it waited for.
func TestCallDeadlineWhileWaiting(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(context.Background(), dir, "k", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = Acquire(ctx, dir, "k", time.Minute)
	if !errors.Is(err, errkind.Timeout) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "k") {
		t.Fatalf("deadline while waiting: %v (kind %v)", err, errkind.Of(err))
	}
}
