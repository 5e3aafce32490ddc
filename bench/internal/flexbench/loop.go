package flexbench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// Sizes.
const (
	MiB int64 = 1 << 20
	GiB int64 = 1 << 30
	TiB int64 = 1 << 40
)

// SizeName prints 1 GiB, 100 GiB, 1 TiB.
func SizeName(b int64) string {
	switch {
	case b >= TiB && b%TiB == 0:
		return fmt.Sprintf("%d TiB", b/TiB)
	case b >= GiB && b%GiB == 0:
		return fmt.Sprintf("%d GiB", b/GiB)
	}
	return fmt.Sprintf("%d MiB", b/MiB)
}

// loop is a loop device over a sparse file.
type loop struct {
	Dev  string
	File string
	Size int64
}

// newLoop creates a sparse file of size bytes and attaches a loop device.
func newLoop(file string, size int64) (*loop, error) {
	if err := sparse(file, size); err != nil {
		return nil, err
	}
	out, err := exec.Command("losetup", "-f", "--show", file).CombinedOutput()
	if err != nil {
		os.Remove(file)
		return nil, fmt.Errorf("losetup %s: %v: %s", file, err, out)
	}
	return &loop{Dev: strings.TrimSpace(string(out)), File: file, Size: size}, nil
}

// sparse (re)creates file as size bytes of holes.
func sparse(file string, size int64) error {
	_ = os.Remove(file)
	f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Truncate(size)
}

// blank makes the device blank again: the backing file is punched back to
// holes and the loop device's page cache dropped.
func (l *loop) blank() error {
	f, err := os.OpenFile(l.File, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, l.Size)
	f.Close()
	if err != nil {
		return err
	}
	d, err := os.OpenFile(l.Dev, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.IoctlSetInt(int(d.Fd()), unix.BLKFLSBUF, 0)
}

// allocated is how many bytes of the backing file are allocated.
func (l *loop) allocated() int64 {
	var st unix.Stat_t
	if unix.Stat(l.File, &st) != nil {
		return 0
	}
	return st.Blocks * 512
}

// Close detaches the device and removes the file.
func (l *loop) Close() {
	_ = exec.Command("losetup", "-d", l.Dev).Run()
	_ = os.Remove(l.File)
}

// mount is one line of mountinfo, the fields the benchmarks check.
type mount struct {
	MajMin     string
	Root       string
	Mountpoint string
	Source     string
}

// mounts reads this process's mount table.
func mounts() ([]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 10 {
			continue
		}
		m := mount{MajMin: fl[2], Root: fl[3], Mountpoint: fl[4]}
		for i := 6; i+2 < len(fl); i++ {
			if fl[i] == "-" {
				m.Source = fl[i+2]
				break
			}
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// mountsUnder lists mount points under dir.
func mountsUnder(dir string) []mount {
	ms, _ := mounts()
	var out []mount
	for _, m := range ms {
		if strings.HasPrefix(m.Mountpoint, dir+"/") {
			out = append(out, m)
		}
	}
	return out
}

// devMajMin is "major:minor" of a block device.
func devMajMin(dev string) string {
	var st unix.Stat_t
	if unix.Stat(dev, &st) != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
}

// UnmountUnder lazily unmounts everything under dir (deepest first).
func UnmountUnder(dir string) {
	ms := mountsUnder(dir)
	for i := len(ms) - 1; i >= 0; i-- {
		_ = unix.Unmount(ms[i].Mountpoint, unix.MNT_DETACH)
	}
}
