package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flexblock/flexblock/driver/errkind"
)

// DupCloexec duplicates fd with close-on-exec set atomically
// (F_DUPFD_CLOEXEC), for a descriptor no tool may inherit, such as the
// copy of kubelet's pipe that carries the answer.
func DupCloexec(fd int) (int, error) {
	return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
}

// closeOnExecFrom3 marks every fd from 3 up close-on-exec, in one call
// where the kernel has close_range (5.11), else fd by fd from /proc.
func closeOnExecFrom3() {
	if unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC) != nil {
		closeOnExecFromProc()
	}
}

func closeOnExecFromProc() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd) // the fd of the listing itself is gone: harmless
		}
	}
}

// PrivateDir makes sure path is a directory nobody but us can change:
// created 0700 when missing (its parents too), and refused (errkind.Unsafe)
// when it is a symlink, not a directory, owned by another user or writable
// by others. Tools run there, and key files are written there.
func PrivateDir(path string) error {
	if path == "" || !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return errkind.Errorf(errkind.Unsafe, "%q is not an absolute, clean path (a driver bug: it comes from the state layout)", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	// Mkdir never follows a symlink at path: it fails with EEXIST.
	if err := os.Mkdir(path, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s: %w", path, err)
	}
	st, err := os.Lstat(path)
	if err != nil {
		return err
	}
	uid := int(st.Sys().(*syscall.Stat_t).Uid)
	var problem string
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		problem = "is a symbolic link"
	case !st.IsDir():
		problem = "is not a directory"
	case uid != os.Geteuid():
		problem = fmt.Sprintf("is owned by uid %d, not by the driver's uid %d", uid, os.Geteuid())
	case st.Mode().Perm()&0o022 != 0:
		problem = fmt.Sprintf("is writable by others (mode %o)", st.Mode().Perm())
	default:
		return nil
	}
	return errkind.Errorf(errkind.Unsafe, "%s %s: remove it (flexblock recreates it 0700) and find out who made it", path, problem)
}

// DetachedTimeout bounds cleanup that runs after the call was cancelled.
const DetachedTimeout = 15 * time.Second

// Detached is a context for cleanup (undo, lock release) after ctx was
// cancelled by a signal or the call deadline: it keeps ctx's values but not
// its cancellation, and has its own bound d (DetachedTimeout when 0), so
// the cleanup runs, yet briefly.
func Detached(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		d = DetachedTimeout
	}
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}
