// Package filesystem is the one table of the filesystems flexblock formats,
// checks, grows and mounts: for each, the tools it runs with their default
// arguments, what fsck's exit codes mean, and which mkfs and mount options a
// volume may ask for. options, config, format, doctor and the grow step all
// read it, so adding a filesystem or an option is one edit here.
package filesystem

import "sort"

// FS describes one supported filesystem.
type FS struct {
	Name string
	// Mkfs is the formatting tool, MkfsDefaults what flexblock always passes
	// before the user's options (which can override them, getopt's last wins).
	Mkfs         string
	MkfsDefaults []string
	// Fsck checks and repairs before a read-write mount; nil when the
	// filesystem checks itself at mount time (xfs replays its log, btrfs
	// verifies checksums).
	Fsck *Fsck
	// GrowTool is the program GrowCmd runs, for doctor's tool list.
	GrowTool string
	grow     func(dev, mountpoint string) []string
	// Package names the distribution package that ships the tools.
	Package string
	mkfs    flagSet
	mount   mountSet
}

// Fsck is how a filesystem is checked: the tool, its arguments before the
// device, the highest exit status that still means "clean or fixed", and
// the package that ships the tool (not always the filesystem's own).
type Fsck struct {
	Tool    string
	Args    []string
	MaxOK   int
	Package string
}

// Clean reports whether an exit status means the filesystem may be mounted
// read-write: fsck's statuses are bit masks, 1 = errors corrected, 2 =
// corrected and a reboot advised (for a mounted root, not our case),
// 4 and up = errors left, operational or usage errors.
func (f *Fsck) Clean(code int) bool { return code >= 0 && code <= f.MaxOK }

// GrowCmd is the command that grows the mounted filesystem to the size of
// its device; each tool is a no-op when the filesystem already fills it.
// resize2fs works on the device, xfs_growfs and btrfs on the mount point.
func (fs *FS) GrowCmd(dev, mountpoint string) (name string, args []string) {
	return fs.GrowTool, fs.grow(dev, mountpoint)
}

// extFsck: fsck -a runs e2fsck -p, which fixes what is safe to fix alone.
// The fsck front end comes with util-linux; it runs fsck.ext4 of e2fsprogs.
var extFsck = &Fsck{Tool: "fsck", Args: []string{"-a"}, MaxOK: 3, Package: "util-linux"}

func resize2fs(dev, _ string) []string { return []string{dev} }
func xfsGrow(_, mnt string) []string   { return []string{"-d", mnt} }
func btrfsGrow(_, mnt string) []string { return []string{"filesystem", "resize", "max", mnt} }

// The mkfs defaults: lazy init and no discard make formatting O(1) in the
// device size (a 1 TiB thin image formats in well under a second). For
// ext4, -G 256 packs the metadata of 256 block groups together instead of
// 16, which cuts what a big format writes. (sparse_super2 would cut more,
// but the kernel cannot grow such a filesystem online: expandfs needs that.)
var table = []*FS{
	{Name: "ext4", Mkfs: "mkfs.ext4", MkfsDefaults: []string{"-F", "-m0", "-G", "256", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1"},
		Fsck: extFsck, GrowTool: "resize2fs", grow: resize2fs, Package: "e2fsprogs", mkfs: extMkfs, mount: extMount},
	{Name: "ext3", Mkfs: "mkfs.ext3", MkfsDefaults: []string{"-F", "-m0", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1"},
		Fsck: extFsck, GrowTool: "resize2fs", grow: resize2fs, Package: "e2fsprogs", mkfs: extMkfs, mount: extMount},
	{Name: "xfs", Mkfs: "mkfs.xfs", MkfsDefaults: []string{"-f", "-K"},
		GrowTool: "xfs_growfs", grow: xfsGrow, Package: "xfsprogs", mkfs: xfsMkfs, mount: xfsMount},
	{Name: "btrfs", Mkfs: "mkfs.btrfs", MkfsDefaults: []string{"-f", "-K"},
		GrowTool: "btrfs", grow: btrfsGrow, Package: "btrfs-progs", mkfs: btrfsMkfs, mount: btrfsMount},
}

// Lookup returns the filesystem called name, or nil if flexblock does not
// support it.
func Lookup(name string) *FS {
	for _, fs := range table {
		if fs.Name == name {
			return fs
		}
	}
	return nil
}

// Names lists the supported filesystems, in the table's order.
func Names() []string {
	out := make([]string, len(table))
	for i, fs := range table {
		out[i] = fs.Name
	}
	return out
}

// All returns the table, for callers that list every filesystem's tools.
func All() []*FS { return append([]*FS(nil), table...) }

// Tools lists every program the table can run, sorted and without repeats.
func (fs *FS) Tools() []string {
	seen := map[string]bool{fs.Mkfs: true, fs.GrowTool: true}
	if fs.Fsck != nil {
		seen[fs.Fsck.Tool] = true
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
