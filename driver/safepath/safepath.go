// Package safepath works on paths that someone else chose (kubelet's pod
// and plugin dirs) without ever following a symlink below a trusted root,
// so a planted or swapped-in symlink cannot send a mount, an unmount, a
// mkdir or a remove outside that root.
//
// The root itself is trusted: it is operator configuration (kubeletRoot,
// the state dir), and a symlinked kubelet root (/var/lib/kubelet ->
// /data/kubelet) is common in production, so the root's own components are
// followed once, when the root is opened. A path is accepted only when it
// is lexically the root or below it, spelled with the root exactly as
// configured (kubelet spells its paths with its --root-dir, so kubeletRoot
// must be that same string); everything below the root is walked beneath
// the root's descriptor with no symlink followed, whatever a tenant planted.
//
// Every walk is relative to descriptors (openat2 with RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, or openat with O_NOFOLLOW
// one component at a time where openat2 is missing), never to a path
// string that could be re-resolved between a check and its use.
package safepath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/flexblock/flexblock/driver/errkind"
)

// Check verifies that p is root or lies below it and that no component of
// p below root is a symlink, and that every component but the last is a
// directory. When part of p does not exist yet the error wraps
// fs.ErrNotExist (and is marked errkind.NotFound) and names the first
// missing component; callers about to create p treat that as fine.
func Check(root, p string) error {
	fd, err := resolve(root, p)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// MkdirAll creates p and its missing parents below root, one component at
// a time (mkdirat, then reopened with O_NOFOLLOW), so a symlink swapped in
// at any moment is refused rather than followed. New directories get mode
// (less the umask, as mkdir(2) does). An existing directory is fine.
func MkdirAll(root, p string, mode os.FileMode) error {
	r, err := open(root, p)
	if err != nil {
		return err
	}
	defer unix.Close(r.fd)
	fd, err := r.walk(r.names, &mode)
	if err != nil {
		return err
	}
	unix.Close(fd)
	return nil
}

// RemoveDir removes the empty directory p below root through its parent's
// descriptor (unlinkat with AT_REMOVEDIR never follows a symlink). A
// missing p (or parent) is fine; a non-empty directory or a mount point is
// an error marked errkind.Busy; a symlink at p is errkind.Unsafe.
func RemoveDir(root, p string) error {
	r, err := open(root, p)
	if err != nil {
		return err
	}
	defer unix.Close(r.fd)
	if len(r.names) == 0 {
		return errkind.Errorf(errkind.Invalid, "refusing to remove %s: it is the root itself", p)
	}
	parent, err := r.dir(r.names[:len(r.names)-1])
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	return removeIn(parent, p)
}

// Open opens the file p below root with flag (os.O_* values; O_NOFOLLOW
// and O_CLOEXEC are always added) and perm for a new file. Its parents must
// exist and be directories; a symlink anywhere, the last component
// included, is errkind.Unsafe. Add os.O_EXCL when the file must be new.
func Open(root, p string, flag int, perm os.FileMode) (*os.File, error) {
	r, err := open(root, p)
	if err != nil {
		return nil, err
	}
	defer unix.Close(r.fd)
	if len(r.names) == 0 {
		return nil, errkind.Errorf(errkind.Invalid, "%s is the root, not a file below it", p)
	}
	parent, err := r.dir(r.names[:len(r.names)-1])
	if err != nil {
		return nil, err
	}
	defer unix.Close(parent)
	base := r.names[len(r.names)-1]
	fd, err := unix.Openat(parent, base, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, r.fail(len(r.names), err)
	}
	return os.NewFile(uintptr(fd), p), nil
}

// resolve opens p (any type) beneath root as an O_PATH descriptor.
func resolve(root, p string) (int, error) {
	r, err := open(root, p)
	if err != nil {
		return -1, err
	}
	defer unix.Close(r.fd)
	if len(r.names) == 0 {
		return unix.Dup(r.fd)
	}
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := openat2(r.fd, strings.Join(r.names, "/"), &how)
	if err == nil {
		return fd, nil
	}
	// Without openat2 (ENOSYS), or to say which component failed and why,
	// walk one component at a time: the walk is the authority.
	return r.walk(r.names, nil)
}

// openat2 is unix.Openat2; tests replace it to exercise kernels without it.
var openat2 = unix.Openat2

// tree is p split below an opened root.
type tree struct {
	root, p string
	fd      int      // O_PATH descriptor of root
	names   []string // p's components below root
}

// open validates root and p and opens root (following its own symlinks:
// it is the operator's).
func open(root, p string) (*tree, error) {
	names, err := split(root, p)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", root, markErrno(err))
	}
	return &tree{root: root, p: p, fd: fd, names: names}, nil
}

// split returns p's components below root, refusing anything that is not
// a clean absolute path lexically inside root.
func split(root, p string) ([]string, error) {
	if !filepath.IsAbs(root) || filepath.Clean(root) != root {
		return nil, errkind.Errorf(errkind.Invalid, "root %q must be a clean absolute path", root)
	}
	if !filepath.IsAbs(p) {
		return nil, errkind.Errorf(errkind.Invalid, "path %q must be absolute", p)
	}
	if slices.Contains(strings.Split(p, "/"), "..") {
		return nil, errkind.Errorf(errkind.Unsafe, "path %q contains '..': refusing it", p)
	}
	if filepath.Clean(p) != p {
		return nil, errkind.Errorf(errkind.Invalid, "path %q must be clean (no '//', '.' or trailing '/')", p)
	}
	if p == root {
		return nil, nil
	}
	prefix := strings.TrimSuffix(root, "/") + "/"
	if !strings.HasPrefix(p, prefix) {
		return nil, errkind.Errorf(errkind.Unsafe, "path %s is not under %s: refusing it", p, root)
	}
	return strings.Split(p[len(prefix):], "/"), nil
}

// dir opens the directory names (below root), all of which must exist.
func (r *tree) dir(names []string) (int, error) {
	fd, err := r.walk(names, nil)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		unix.Close(fd)
		return -1, errkind.Errorf(errkind.Invalid, "%s is not a directory", r.at(len(names)))
	}
	return fd, nil
}

// walk opens names one at a time from the root, each with O_PATH |
// O_NOFOLLOW (a symlink yields a descriptor of the link itself, which
// fstat shows): nothing is ever followed. With mode set, a missing
// component is created as a directory and every component must be one.
func (r *tree) walk(names []string, mode *os.FileMode) (int, error) {
	dir, err := unix.Dup(r.fd)
	if err != nil {
		return -1, err
	}
	for i, name := range names {
		fd, err := r.step(dir, name, mode)
		unix.Close(dir)
		if err != nil {
			return -1, r.fail(i+1, err)
		}
		dir = fd
		last := i == len(names)-1
		if err := r.kind(dir, i+1, last && mode == nil); err != nil {
			unix.Close(dir)
			return -1, err
		}
	}
	return dir, nil
}

// step opens name in dir without following it, creating it first when
// asked and missing (a concurrent creator is fine).
func (r *tree) step(dir int, name string, mode *os.FileMode) (int, error) {
	const flags = unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(dir, name, flags, 0)
	if mode == nil || !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	if err := unix.Mkdirat(dir, name, uint32(mode.Perm())); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, err
	}
	return unix.Openat(dir, name, flags, 0)
}

// kind refuses a symlink, and a non-directory unless anyType.
func (r *tree) kind(fd, n int, anyType bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", r.at(n), err)
	}
	switch t := st.Mode & unix.S_IFMT; {
	case t == unix.S_IFLNK:
		return r.symlink(n)
	case t != unix.S_IFDIR && !anyType:
		return errkind.Errorf(errkind.Invalid, "%s: %s is not a directory", r.p, r.at(n))
	}
	return nil
}

// fail explains a failed step at component n.
func (r *tree) fail(n int, err error) error {
	switch {
	case errors.Is(err, unix.ELOOP):
		return r.symlink(n)
	case errors.Is(err, unix.ENOENT):
		return errkind.Mark(errkind.NotFound, fmt.Errorf("%s: %s does not exist: %w", r.p, r.at(n), fs.ErrNotExist))
	case errors.Is(err, unix.ENOTDIR):
		return errkind.Errorf(errkind.Invalid, "%s: %s is not a directory", r.p, r.at(n))
	}
	return fmt.Errorf("%s: %s: %w", r.p, r.at(n), markErrno(err))
}

func (r *tree) symlink(n int) error {
	return errkind.Errorf(errkind.Unsafe, "%s: %s is a symlink: flexblock never follows a symlink below %s (a planted link could lead outside it); remove it", r.p, r.at(n), r.root)
}

// at is the path of the first n components below root.
func (r *tree) at(n int) string {
	return filepath.Join(append([]string{r.root}, r.names[:n]...)...)
}

// removeIn removes the directory named by p's last component from parent.
func removeIn(parent int, p string) error {
	base := filepath.Base(p)
	err := unix.Unlinkat(parent, base, unix.AT_REMOVEDIR)
	switch {
	case err == nil, errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.EEXIST):
		return errkind.Errorf(errkind.Busy, "remove %s: it still holds files (left in place)", p)
	case errors.Is(err, unix.EBUSY):
		return errkind.Errorf(errkind.Busy, "remove %s: it is still a mount point", p)
	case errors.Is(err, unix.ENOTDIR):
		var st unix.Stat_t
		if unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return errkind.Errorf(errkind.Unsafe, "remove %s: it is a symlink, not a directory: left in place", p)
		}
		return errkind.Errorf(errkind.Invalid, "remove %s: not a directory", p)
	}
	return fmt.Errorf("remove %s: %w", p, markErrno(err))
}

// markErrno adds the kind an errno implies for the caller.
func markErrno(err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return errkind.Mark(errkind.NotFound, err)
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENAMETOOLONG):
		return errkind.Mark(errkind.Invalid, err)
	}
	return err
}
