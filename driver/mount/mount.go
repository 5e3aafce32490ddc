// Package mount mounts and unmounts through the mount(8) tools (so every
// mount is bounded by the runner's timeout) and answers whether a path is a
// mount point, and of what, with statx (no mount-table read, whatever its
// size), falling back to mountinfo where statx cannot answer.
package mount

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/flexblock/flexblock/driver/runner"
)

// Mounter is the seam between the driver and the kernel's mount table.
type Mounter interface {
	// Mount mounts source (a device) at target.
	Mount(ctx context.Context, source, target, fsType string, options []string) error
	// Bind bind-mounts source at target, read-only when ro.
	Bind(ctx context.Context, source, target string, ro bool) error
	// ReadOnly remounts the bind at target read-only.
	ReadOnly(ctx context.Context, target string) error
	// Unmount unmounts target; a target that is not mounted is not an error.
	Unmount(ctx context.Context, target string) error
	// Lookup returns the mount at exactly path, or nil.
	Lookup(path string) (*mountinfo.Info, error)
	// Users returns the mounts of the same filesystem (device and root) as m,
	// m itself excluded.
	Users(m *mountinfo.Info) ([]*mountinfo.Info, error)
	// All returns the whole mount table (for checks that a device is not
	// already in use anywhere on the node).
	All() ([]*mountinfo.Info, error)
	// Mounted tells whether path is a mount point.
	Mounted(path string) (bool, error)
	// Same tells whether a and b are both mount points that show the same
	// directory of the same filesystem (b a bind of a, or a itself).
	Same(a, b string) (bool, error)
}

// Tools is the real Mounter.
type Tools struct {
	Run runner.Runner
	// MountInfo is the mountinfo file to read: the calling process's by
	// default, /proc/1/mountinfo when tools run in the host's namespace.
	MountInfo string
}

// Mount runs mount -t fsType [-o options] source target.
func (t *Tools) Mount(ctx context.Context, source, target, fsType string, options []string) error {
	args := []string{"-t", fsType}
	if len(options) > 0 {
		args = append(args, "-o", strings.Join(options, ","))
	}
	args = append(args, source, target)
	if _, err := t.Run.Run(ctx, runner.Cmd{Name: "mount", Args: args}); err != nil {
		return fmt.Errorf("mount %s at %s: %w", source, target, err)
	}
	return nil
}

// Bind runs mount -o bind[,ro] source target. mount(8) does the read-only
// remount itself, so the bind is never visible read-write.
func (t *Tools) Bind(ctx context.Context, source, target string, ro bool) error {
	opts := "bind"
	if ro {
		opts = "bind,ro"
	}
	// -c (no canonicalize): a pinned target (/proc/<pid>/fd/N) must reach
	// mount(2) as it is, not as the path string it resolves to now.
	if _, err := t.Run.Run(ctx, runner.Cmd{Name: "mount", Args: []string{"-c", "-o", opts, source, target}}); err != nil {
		return fmt.Errorf("bind %s at %s: %w", source, target, err)
	}
	return nil
}

// ReadOnly runs mount -c -o remount,bind,ro target: the bind's own flags
// only, the filesystem and its other mounts stay as they are.
func (t *Tools) ReadOnly(ctx context.Context, target string) error {
	if _, err := t.Run.Run(ctx, runner.Cmd{Name: "mount", Args: []string{"-c", "-o", "remount,bind,ro", target}}); err != nil {
		return fmt.Errorf("make the bind at %s read-only: %w", target, err)
	}
	return nil
}

// Unmount runs umount target if target is a mount point.
func (t *Tools) Unmount(ctx context.Context, target string) error {
	if ok, err := t.Mounted(target); err != nil || !ok {
		return err
	}
	if _, err := t.Run.Run(ctx, runner.Cmd{Name: "umount", Args: []string{"-c", target}}); err != nil {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// Lookup finds the mount at path (the last one, if stacked).
func (t *Tools) Lookup(path string) (*mountinfo.Info, error) {
	// Not SingleEntryFilter: it stops at the first of stacked mounts.
	ms, err := t.mounts(func(i *mountinfo.Info) (skip, stop bool) { return i.Mountpoint != path, false })
	if err != nil || len(ms) == 0 {
		return nil, err
	}
	return ms[len(ms)-1], nil
}

// Users lists the other mounts of m's filesystem subtree.
func (t *Tools) Users(m *mountinfo.Info) ([]*mountinfo.Info, error) {
	return t.mounts(func(i *mountinfo.Info) (skip, stop bool) {
		same := i.Major == m.Major && i.Minor == m.Minor && i.Root == m.Root
		return !same || i.Mountpoint == m.Mountpoint, false
	})
}

// All reads the whole mount table.
func (t *Tools) All() ([]*mountinfo.Info, error) { return t.mounts(nil) }

func (t *Tools) mounts(filter mountinfo.FilterFunc) ([]*mountinfo.Info, error) {
	if t.MountInfo == "" {
		return mountinfo.GetMounts(filter)
	}
	f, err := os.Open(t.MountInfo)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return mountinfo.GetMountsFromReader(f, filter)
}

// Mounted answers from statx (is path the root of a mount), without
// reading the mount table: on a node with thousands of mounts every read
// of mountinfo costs tens of milliseconds of kernel time. The table is read
// only when statx cannot answer: the tools run in another mount namespace
// (nsenter), or the kernel predates STATX_ATTR_MOUNT_ROOT (5.8).
func (t *Tools) Mounted(path string) (bool, error) {
	st, ok, err := t.statx(path)
	if err != nil || ok {
		return st != nil && mountRoot(st), err
	}
	m, err := t.Lookup(path)
	return m != nil, err
}

// Same compares the device, inode and mount-root flag of a and b (statx);
// it falls back to comparing their mount table entries like Lookup does.
func (t *Tools) Same(a, b string) (bool, error) {
	sa, okA, err := t.statx(a)
	if err != nil {
		return false, err
	}
	sb, okB, err := t.statx(b)
	if err != nil {
		return false, err
	}
	if okA && okB {
		return sa != nil && sb != nil && mountRoot(sa) && mountRoot(sb) &&
			sa.Dev_major == sb.Dev_major && sa.Dev_minor == sb.Dev_minor && sa.Ino == sb.Ino, nil
	}
	ma, err := t.Lookup(a)
	if err != nil || ma == nil {
		return false, err
	}
	mb, err := t.Lookup(b)
	if err != nil || mb == nil {
		return false, err
	}
	return ma.Major == mb.Major && ma.Minor == mb.Minor && ma.Root == mb.Root, nil
}

// statx returns path's statx (nil when path does not exist) and whether it
// can answer mount questions for the tools' mount namespace.
func (t *Tools) statx(path string) (*unix.Statx_t, bool, error) {
	if t.MountInfo != "" {
		return nil, false, nil
	}
	var st unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, unix.STATX_INO, &st)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, true, nil
	case errors.Is(err, unix.ENOSYS):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("statx %s: %w", path, err)
	}
	return &st, st.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
}

func mountRoot(st *unix.Statx_t) bool { return st.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0 }
