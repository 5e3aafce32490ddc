package blockdev

import (
	"github.com/flexblock/flexblock/driver/internal/lazyre"
	"os"
	"path/filepath"

	"github.com/moby/sys/mountinfo"

	"github.com/flexblock/flexblock/driver/errkind"
)

// maxNamespaces bounds how many other mount namespaces Free reads (one
// mountinfo each); a node with more is refused rather than half checked.
const maxNamespaces = 4096

var procMountInfo = lazyre.New(`^/proc/(self|[0-9]+)/mountinfo$`)

// foreignMounts returns the mounts of every mount namespace on the node
// other than the one Free reads (a container's, a service's private
// mounts): the kernel's claim on a device is node-wide, and a filesystem
// mounted there through another path of the same storage is corrupted by
// a second mount here just the same. Mounts of the device self itself are
// left out: a second mount of the same device shares the kernel's
// superblock (one filesystem, mounted twice), and a stale copy of a mount
// in a private namespace must not lock a volume out forever. Processes
// that end while they are read are skipped. With a mount table file that
// is not a process's (tests), there are no other namespaces.
func (k Kernel) foreignMounts(self Dev) ([]*mountinfo.Info, error) {
	proc, own := k.procOf()
	if proc == "" {
		return nil, nil
	}
	ownNS, err := os.Readlink(own)
	if err != nil {
		return nil, nil
	}
	pids, err := filepath.Glob(filepath.Join(proc, "[0-9]*"))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{ownNS: true}
	var out []*mountinfo.Info
	for _, p := range pids {
		ns, err := os.Readlink(p + "/ns/mnt")
		if err != nil || seen[ns] {
			continue
		}
		seen[ns] = true
		if len(seen) > maxNamespaces {
			return nil, errkind.Errorf(errkind.Timeout, "more than %d mount namespaces on the node to check for other mounts of the device: refusing rather than checking some", maxNamespaces)
		}
		for _, m := range k.mountsOf(p+"/mountinfo", self) {
			// Its path means nothing in this namespace: say where it is
			// (and it can never be taken for the volume's own mount).
			m.Mountpoint += " (in the mount namespace of process " + filepath.Base(p) + ")"
			out = append(out, m)
		}
	}
	return out, nil
}

// procOf is the proc root and the mount namespace link of the table Free
// reads ("" when that table is a plain file).
func (k Kernel) procOf() (proc, ownNS string) {
	switch m := procMountInfo.FindStringSubmatch(k.MountInfo); {
	case k.MountInfo == "":
		return "/proc", "/proc/self/ns/mnt"
	case m != nil:
		return "/proc", "/proc/" + m[1] + "/ns/mnt"
	}
	return "", ""
}

// mountsOf reads one process's mount table, without the mounts of self.
func (k Kernel) mountsOf(file string, self Dev) []*mountinfo.Info {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	ms, err := mountinfo.GetMountsFromReader(f, nil)
	if err != nil {
		return nil
	}
	var out []*mountinfo.Info
	for _, m := range ms {
		if k.devOf(m) != self {
			out = append(out, m)
		}
	}
	return out
}
