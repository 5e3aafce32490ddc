package installer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func eventually(t *testing.T, out any, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			if o, ok := out.(fmt.Stringer); ok {
				t.Logf("output so far:\n%s", o)
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func appendLine(t *testing.T, p, line string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
}

func TestServeRepairsInstallAndFollowsLog(t *testing.T) {
	e := newEnv(t)
	if err := os.MkdirAll(filepath.Dir(e.log), 0o700); err != nil {
		t.Fatal(err)
	}
	appendLine(t, e.log, `{"msg":"old line before the installer started"}`)
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, e.options(bin), e.log, out, 50*time.Millisecond) }()

	exe := DriverPath(e.plugin, "rbd")
	cfg := filepath.Join(DriverDir(e.plugin, "iscsi"), "flexblock.json")
	eventually(t, out, "first install", func() bool { return strings.Contains(out.String(), "watching") })

	// A removed executable comes back.
	if err := os.Remove(exe); err != nil {
		t.Fatal(err)
	}
	eventually(t, out, "executable restored", func() bool { st, err := os.Stat(exe); return err == nil && st.Mode().Perm() == 0o755 })
	// A hand-edited config is put back.
	want, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, []byte(`{"attach": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, out, "config restored", func() bool { b, _ := os.ReadFile(cfg); return bytes.Equal(b, want) })
	// A whole driver dir removed comes back. (The running installer may
	// write into it while it is being removed: retry the removal.)
	var rmErr error
	for i := 0; i < 100; i++ {
		if rmErr = os.RemoveAll(DriverDir(e.plugin, "iscsi")); rmErr == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if rmErr != nil {
		t.Fatal(rmErr)
	}
	eventually(t, out, "driver dir restored", func() bool { _, err := os.Stat(DriverPath(e.plugin, "iscsi")); return err == nil })

	// Driver log lines appear on out, across a rotation.
	appendLine(t, e.log, `{"msg":"call one"}`)
	eventually(t, out, "log line", func() bool { return strings.Contains(out.String(), "call one") })
	appendLine(t, e.log, `{"msg":"last before rotation"}`)
	if err := os.Rename(e.log, e.log+".1"); err != nil {
		t.Fatal(err)
	}
	appendLine(t, e.log, `{"msg":"first after rotation"}`)
	eventually(t, out, "rotated log", func() bool {
		s := out.String()
		return strings.Contains(s, "last before rotation") && strings.Contains(s, "first after rotation")
	})

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if strings.Contains(s, "old line") {
		t.Error("lines from before the start were replayed")
	}
	if !strings.Contains(s, "restored") || !strings.Contains(s, "drivers stay installed") {
		t.Errorf("output:\n%s", s)
	}
	if _, err := os.Stat(exe); err != nil {
		t.Error("stopping removed the drivers")
	}
}

func TestServeFailsWhenFirstInstallFails(t *testing.T) {
	e := newEnv(t)
	err := Serve(context.Background(), e.options(script(t, "echo garbage")), "", &syncBuffer{}, time.Second)
	if err == nil || !strings.Contains(err.Error(), "self-test failed") {
		t.Fatalf("got %v", err)
	}
}

func TestFollowWaitsForFileAndHandlesTruncation(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d.log")
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan struct{})
	go func() { Follow(ctx, p, out, 10*time.Millisecond); close(done) }()
	time.Sleep(30 * time.Millisecond)
	appendLine(t, p, "created later: read from its start")
	eventually(t, out, "new file", func() bool { return strings.Contains(out.String(), "created later") })
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	appendLine(t, p, "after truncation")
	eventually(t, out, "after truncation", func() bool { return strings.Contains(out.String(), "after truncation") })
	// Rotation with the new file appearing later.
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	appendLine(t, p+".1", "written to the old file after the rename")
	time.Sleep(30 * time.Millisecond)
	appendLine(t, p, "new file")
	eventually(t, out, "rotation", func() bool {
		s := out.String()
		return strings.Contains(s, "written to the old file") && strings.Contains(s, "new file")
	})
	cancel()
	<-done
	if n := strings.Count(out.String(), "created later"); n != 1 {
		t.Errorf("line repeated %d times:\n%s", n, out.String())
	}
}
