package flexbench

import (
	"fmt"
	"github.com/flexblock/flexblock/test/testkit"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// LayoutVariant is one mkfs command line that Layouts measures: the
// driver's own format, or the same with an option it does not use (yet).
type LayoutVariant struct {
	FS   string
	Name string   // how the report names it
	Argv []string // DEV stands for the device
}

// LayoutRow is one variant at one size on one kind of storage.
type LayoutRow struct {
	Storage string
	Size    int64
	Variant LayoutVariant
	Mkfs    []float64   // ms, the mkfs process (spawned as the driver's runner would)
	Mount   []float64   // ms, `mount -t FS DEV DIR` of the new filesystem (the kernel's mount)
	Alloc   []float64   // bytes allocated in the sparse file afterwards
	Ext4    *ext4Layout // ext4 only: what dumpe2fs reports of the first format
	// LogBytes is the xfs log's size, from mkfs.xfs's own report of the
	// geometry (0 when it printed none).
	LogBytes int64
}

// ext4Layout is an ext4 filesystem's group descriptors, as dumpe2fs lists
// them: what grows with the size in a lazily initialised format.
type ext4Layout struct {
	Groups      int64  // block groups
	TableBlocks int64  // blocks of one copy of the descriptor table
	DescBlocks  int64  // blocks of descriptors in all copies (primary and backups)
	ReservedGDT int64  // reserved GDT blocks (room for online growth), all copies
	Features    string // dumpe2fs "Filesystem features"
}

// Copies is how many copies of the descriptor table the layout keeps.
func (l *ext4Layout) Copies() float64 {
	if l.TableBlocks == 0 {
		return 0
	}
	return float64(l.DescBlocks) / float64(l.TableBlocks)
}

// LayoutOpts configures Layouts.
type LayoutOpts struct {
	Storage  string // what ImageDir is on, for the rows
	ImageDir string // must support sparse files
	Sizes    []int64
	Variants []LayoutVariant
	Reps     int
	Progress func(string)
}

// Layouts measures mkfs alone (and the kernel's mount of its result) for
// each variant at each size, on a loop device over a sparse file blanked
// before each run as in benchmark 2, variants interleaved. It answers "what
// would a different layout save", next to benchmark 2's whole first mounts.
// Needs a private mount namespace.
func Layouts(e *Env, root string, o LayoutOpts) ([]*LayoutRow, error) {
	c, err := startCaller(e.SpawnBin)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	dir := filepath.Join(root, "layout-mnt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var rows []*LayoutRow
	for _, size := range o.Sizes {
		loop, err := newLoop(filepath.Join(o.ImageDir, fmt.Sprintf("layout-%d.img", size>>30)), size)
		if err != nil {
			return nil, err
		}
		var these []*LayoutRow
		for _, v := range o.Variants {
			these = append(these, &LayoutRow{Storage: o.Storage, Size: size, Variant: v})
		}
		for i := 0; i < o.Reps; i++ {
			for _, row := range these {
				if o.Progress != nil {
					o.Progress(fmt.Sprintf("layout %s %s (%s) on %s #%d", row.Variant.FS, SizeName(size), row.Variant.Name, o.Storage, i+1))
				}
				if err := row.run(c, loop, dir, i == 0); err != nil {
					loop.Close()
					return nil, err
				}
			}
		}
		loop.Close()
		rows = append(rows, these...)
	}
	return rows, nil
}

func (row *LayoutRow) run(c *caller, loop *loop, dir string, describe bool) error {
	if err := settle(loop); err != nil {
		return err
	}
	var argv []string
	for _, a := range row.Variant.Argv {
		if a == "DEV" {
			a = loop.Dev
		}
		argv = append(argv, a)
	}
	x, err := c.runTool(testkit.KubeletEnv, argv...)
	if err != nil {
		return err
	}
	if x.Exit != 0 {
		return fmt.Errorf("%s: exit %d: %s", strings.Join(argv, " "), x.Exit, x.Output)
	}
	row.Mkfs = append(row.Mkfs, ms(x.Wall))
	if m := xfsLog.FindStringSubmatch(x.Output); m != nil {
		bs, _ := strconv.ParseInt(m[1], 10, 64)
		n, _ := strconv.ParseInt(m[2], 10, 64)
		row.LogBytes = bs * n
	}
	x, err = c.runTool(testkit.KubeletEnv, "mount", "-t", row.Variant.FS, loop.Dev, dir)
	if err != nil {
		return err
	}
	if x.Exit != 0 {
		return fmt.Errorf("mount %s (%s): exit %d: %s", loop.Dev, row.Variant.Name, x.Exit, x.Output)
	}
	row.Mount = append(row.Mount, ms(x.Wall))
	if err := unix.Unmount(dir, 0); err != nil {
		return err
	}
	row.Alloc = append(row.Alloc, float64(loop.allocated()))
	if describe && row.Variant.FS == "ext4" {
		l, err := describeExt4(loop.Dev)
		if err != nil {
			return err
		}
		row.Ext4 = l
	}
	return nil
}

var (
	xfsLog     = regexp.MustCompile(`log\s+=internal[^\n]*?bsize=([0-9]+)\s+blocks=([0-9]+)`)
	descAt     = regexp.MustCompile(`Group descriptors? at ([0-9]+)(?:-([0-9]+))?`)
	reservedAt = regexp.MustCompile(`Reserved GDT blocks at ([0-9]+)-([0-9]+)`)
)

// describeExt4 reads the descriptor layout of the ext4 filesystem on dev
// with dumpe2fs.
func describeExt4(dev string) (*ext4Layout, error) {
	out, err := exec.Command("dumpe2fs", dev).Output()
	if err != nil {
		return nil, fmt.Errorf("dumpe2fs %s: %v", dev, err)
	}
	l := &ext4Layout{}
	var blocks, perGroup, blockSize, descSize int64
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && !strings.HasPrefix(k, " ") {
			v = strings.TrimSpace(v)
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "Block count":
				blocks = n
			case "Blocks per group":
				perGroup = n
			case "Block size":
				blockSize = n
			case "Group descriptor size":
				descSize = n
			case "Filesystem features":
				l.Features = v
			}
			continue
		}
		if m := descAt.FindStringSubmatch(line); m != nil {
			l.DescBlocks += span(m[1], m[2])
		}
		if m := reservedAt.FindStringSubmatch(line); m != nil {
			l.ReservedGDT += span(m[1], m[2])
		}
	}
	if descSize == 0 {
		descSize = 32 // dumpe2fs omits it without 64bit
	}
	if perGroup == 0 || blockSize == 0 {
		return nil, fmt.Errorf("dumpe2fs %s: no block count or group size in its output", dev)
	}
	l.Groups = (blocks + perGroup - 1) / perGroup
	l.TableBlocks = (l.Groups*descSize + blockSize - 1) / blockSize
	return l, nil
}

// span is the number of blocks in "a-b" (or 1 for a single block).
func span(a, b string) int64 {
	if b == "" {
		return 1
	}
	x, _ := strconv.ParseInt(a, 10, 64)
	y, _ := strconv.ParseInt(b, 10, 64)
	return y - x + 1
}
