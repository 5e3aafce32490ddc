package iscsi

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The node's hash key replaced by a FIFO (a careless operator): the open
// (O_RDONLY without O_NONBLOCK) waited for a writer forever, so every
// iSCSI call that checks credentials hung. It must fail at once, saying
// to remove the file. (state.ReadSmallFile reads without blocking.)
func TestAttackHashKeyFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hash.key")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := hashKey(path); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a FIFO was taken for the hash key")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("hashKey blocked on a FIFO")
	}
}
