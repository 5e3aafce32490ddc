package lock

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
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
