// Package lock serializes driver processes that work on the same volume (or
// the same iSCSI target) with flock(2) on a file per key. The kernel drops a
// flock when its holder dies, so a killed driver never leaves a stale lock.
package lock

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/internal/lazyre"
	"github.com/flexblock/flexblock/driver/internal/wait"
	"github.com/flexblock/flexblock/driver/safepath"
)

// pollInterval bounds how late a waiter notices a released lock.
const pollInterval = 5 * time.Millisecond

// Lock is a held lock.
type Lock struct {
	f   *os.File
	key string
}

// ErrTimeout is returned when the lock was not free within the bound.
var ErrTimeout = errors.New("lock wait timed out")

// Acquire takes the exclusive lock for key under dir, waiting up to timeout.
// Lock files are never removed: removing one would let two processes hold
// "the same" lock on different inodes.
func Acquire(ctx context.Context, dir, key string, timeout time.Duration) (*Lock, error) {
	f, err := openFile(dir, key)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return &Lock{f: f, key: key}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", key, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, errkind.Errorf(errkind.Busy, "volume %s is busy with another driver call: %w after %s", key, ErrTimeout, timeout)
		}
		if err := wait.Sleep(ctx, pollInterval); err != nil {
			f.Close()
			return nil, waitEnded(key, err)
		}
	}
}

// waitEnded explains a wait the call's context ended: its deadline is a
// Timeout (the call's bound, not the lock's), a cancel stays as it is.
func waitEnded(key string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return errkind.Errorf(errkind.Timeout, "volume %s: the call's deadline passed while waiting for another driver call's lock: %w", key, err)
	}
	return fmt.Errorf("volume %s: waiting for the lock: %w", key, err)
}

// openFile opens (creating) key's lock file in dir. dir's parent is the
// operator's state dir and trusted; dir itself and the lock file are
// reached without following a symlink (safepath), so a link planted there
// never makes root create or open its target. New dirs are 0700.
func openFile(dir, key string) (*os.File, error) {
	parent, name := filepath.Dir(dir), filepath.Join(dir, fileName(key))
	f, err := safepath.Open(parent, name, os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err := makeDir(parent, dir); err != nil {
			return nil, err
		}
		f, err = safepath.Open(parent, name, os.O_RDWR|os.O_CREATE, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", key, err)
	}
	// A planted FIFO or device node is not a lock (and not ours to touch).
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, errkind.Errorf(errkind.Unsafe, "lock %s: %s is not a regular file: remove it", key, f.Name())
	}
	return f, nil
}

// makeDir creates the lock dir (0700) and its parent.
func makeDir(parent, dir string) error {
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("lock dir: %w", err)
	}
	if err := safepath.MkdirAll(parent, dir, 0o700); err != nil {
		return fmt.Errorf("lock dir: %w", err)
	}
	return nil
}

// Release drops the lock.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
		l.f.Close()
		l.f = nil
	}
}

var plain = lazyre.New(`^[A-Za-z0-9._-]{1,100}$`)

// fileName maps any key to a safe file name; readable keys stay readable.
func fileName(key string) string {
	if plain.MatchString(key) && key[0] != '.' {
		return key + ".lock"
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:12]) + ".lock"
}
