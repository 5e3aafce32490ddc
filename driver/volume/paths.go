package volume

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/internal/lazyre"
	"github.com/flexblock/flexblock/driver/safepath"
)

// Path shapes kubelet uses (flexvolume-protocol.md). Every component is a
// plain name, so a matching path can never escape the kubelet root.
var (
	podDirRE = lazyre.New(`^(/[A-Za-z0-9._/-]*[A-Za-z0-9_-])/pods/([A-Za-z0-9-]{1,64})/volumes/flexblock~([a-z]+)/([A-Za-z0-9][A-Za-z0-9._-]{0,252})$`)
	globalRE = lazyre.New(`^(/[A-Za-z0-9._/-]*[A-Za-z0-9_-])/plugins/flexblock/([a-z]+)/mounts/([A-Za-z0-9][A-Za-z0-9._~:-]{0,252})$`)
	devRE    = lazyre.New(`^/dev/[A-Za-z0-9][A-Za-z0-9._/:-]{0,200}$`)
	devDirRE = lazyre.New(`^(/[A-Za-z0-9._/-]*[A-Za-z0-9_-])/plugins/kubernetes.io/flexvolume/flexblock/([a-z]+)/mounts/([A-Za-z0-9][A-Za-z0-9._:-]{0,252})$`)
)

// PodDir validates a pod volume dir and returns the kubelet root. No
// component below the root may be a symlink (a missing tail is fine: the
// dir is about to be made).
func PodDir(p, backend, wantRoot string) (string, error) {
	return walkable(podDirShape(p, backend, wantRoot))(p)
}

// podDirShape checks only the shape of a pod volume dir (for paths read
// from a record: what is on disk now is the caller's question, and a
// symlink planted there must not get the record set aside).
func podDirShape(p, backend, wantRoot string) (string, error) {
	const shape = "<kubelet root>/pods/<pod uid>/volumes/flexblock~%s/<volume name>"
	return matchRoot(podDirRE, p, backend, wantRoot, 3, "pod volume dir", fmt.Sprintf(shape, backend))
}

// DeviceMountPath validates kubelet's global mount dir (attach mode), as
// PodDir does.
func DeviceMountPath(p, backend, wantRoot string) (string, error) {
	return walkable(deviceMountPathShape(p, backend, wantRoot))(p)
}

func deviceMountPathShape(p, backend, wantRoot string) (string, error) {
	const shape = "<kubelet root>/plugins/kubernetes.io/flexvolume/flexblock/%s/mounts/<volume name>"
	return matchRoot(devDirRE, p, backend, wantRoot, 2, "device mount path", fmt.Sprintf(shape, backend))
}

// walkable checks, once the shape is right, that p can be reached from
// its root without following a symlink.
func walkable(root string, err error) func(p string) (string, error) {
	return func(p string) (string, error) {
		if err != nil {
			return "", err
		}
		if err := safepath.Check(root, p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return root, nil
	}
}

// podHome is the pod's own dir of a pod volume dir, with a trailing slash:
// <root>/pods/<uid>/.
func podHome(podDir string) string {
	if m := podDirRE.FindStringSubmatch(podDir); m != nil {
		return m[1] + "/pods/" + m[2] + "/"
	}
	return podDir + "/"
}

// rootOf returns the kubelet root of any path flexblock works in (pod dir,
// its own global mount, kubelet's device mount path).
func rootOf(p string) string {
	for _, re := range []*lazyre.Regexp{podDirRE, globalRE, devDirRE} {
		if m := re.FindStringSubmatch(p); m != nil {
			return m[1]
		}
	}
	return ""
}

// mkdir makes dir (0750, as kubelet makes them) below its kubelet root
// without following a symlink.
func mkdir(dir string) error {
	if err := safepath.MkdirAll(rootOf(dir), dir, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}

// rmdir removes the empty dir below its kubelet root, never through a
// symlink; a missing dir is fine.
func rmdir(dir string) error {
	if err := safepath.RemoveDir(rootOf(dir), dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

func matchRoot(re *lazyre.Regexp, p, backend, wantRoot string, backendGroup int, what, shape string) (string, error) {
	if len(p) > 4096 || filepath.Clean(p) != p || strings.Contains(p, "/../") || strings.Contains(p, "/./") {
		return "", errkind.Errorf(errkind.Invalid, "%s %q is not a clean absolute path of the form %s", what, short(p), shape)
	}
	m := re.FindStringSubmatch(p)
	if m == nil || m[backendGroup] != backend {
		return "", errkind.Errorf(errkind.Invalid, "%s %q is not of the form %s", what, short(p), shape)
	}
	root := m[1]
	for _, part := range strings.Split(root, "/") {
		if part == ".." || part == "." {
			return "", errkind.Errorf(errkind.Invalid, "%s %q: kubelet root must be a clean path", what, short(p))
		}
	}
	if wantRoot != "" && root != wantRoot {
		return "", errkind.Errorf(errkind.Invalid, "%s %q is outside the kubelet root %s (config kubeletRoot); fix kubeletRoot in the driver config if kubelet uses another --root-dir", what, short(p), wantRoot)
	}
	return root, nil
}

// ownGlobalMount checks that p is exactly the global mount flexblock
// makes for backend and id, under wantRoot when one is configured.
func ownGlobalMount(p, backend, id, wantRoot string) error {
	m := globalRE.FindStringSubmatch(p)
	if m == nil || filepath.Clean(p) != p || strings.Contains(p, "/../") || m[2] != backend || m[3] != id ||
		(wantRoot != "" && m[1] != wantRoot) {
		return errkind.Errorf(errkind.Unsafe, "global mount %q is not flexblock's mount dir for %s volume %s", short(p), backend, id)
	}
	return nil
}

// GlobalMount is where flexblock mounts a device once per node.
func GlobalMount(root, backend, id string) string {
	return filepath.Join(root, "plugins", "flexblock", backend, "mounts", id)
}

func short(s string) string {
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// pin opens dir beneath its kubelet root without following a symlink and
// returns a path naming exactly that directory for the mount tools
// (/proc/<pid>/fd/N, which the kernel resolves to the open directory, not
// to whatever the path string names by then), so a symlink swapped in
// after the checks cannot redirect a bind. With parent, the path is the
// pinned parent plus the last name: for an unmount, whose last component
// is a mount point and so cannot be renamed or replaced. In nsenter mode
// the tools run in another mount namespace, where our descriptors mean
// nothing: the checked path itself is used.
func (l *Lifecycle) pin(dir string, parent bool) (string, func(), error) {
	if l.Env.Config.Nsenter {
		return dir, func() {}, nil
	}
	open, base := dir, ""
	if parent {
		open, base = filepath.Dir(dir), "/"+filepath.Base(dir)
	}
	f, err := safepath.Open(rootOf(dir), open, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return "", nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		f.Close()
		return "", nil, errkind.Errorf(errkind.Unsafe, "%s is not a directory (a symlink?): refusing to mount or unmount through it", open)
	}
	return fmt.Sprintf("/proc/%d/fd/%d%s", os.Getpid(), f.Fd(), base), func() { f.Close() }, nil
}
