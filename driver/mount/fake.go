package mount

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/sys/mountinfo"
)

// Fake is an in-memory mount table with the same answers as Tools, for
// fast tests of the lifecycle without root. Devices maps a device path to
// its major:minor, as the kernel would report it in mountinfo; a device
// not in the map gets a number of its own on first mount.
type Fake struct {
	mu      sync.Mutex
	table   []*mountinfo.Info
	next    int
	Devices map[string][2]int
	// Fail, when it returns an error for an operation ("mount", "bind",
	// "unmount") and a target, makes that operation fail (fault injection).
	Fail func(op, target string) error
	// Calls counts operations by name.
	Calls map[string]int
}

var _ Mounter = (*Fake)(nil)

func (f *Fake) count(op, target string) error {
	if f.Calls == nil {
		f.Calls = map[string]int{}
	}
	f.Calls[op]++
	if f.Fail != nil {
		return f.Fail(op, target)
	}
	return nil
}

func (f *Fake) devnum(dev string) (int, int) {
	if f.Devices == nil {
		f.Devices = map[string][2]int{}
	}
	n, ok := f.Devices[dev]
	if !ok {
		f.next++
		n = [2]int{250, f.next}
		f.Devices[dev] = n
	}
	return n[0], n[1]
}

// Mount implements Mounter.
func (f *Fake) Mount(_ context.Context, source, target, fsType string, options []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.count("mount", target); err != nil {
		return err
	}
	maj, min := f.devnum(source)
	opts := "rw"
	for _, o := range options {
		if o == "ro" {
			opts = "ro"
		}
	}
	f.table = append(f.table, &mountinfo.Info{ID: len(f.table) + 100, Major: maj, Minor: min, Root: "/", Mountpoint: filepath.Clean(target), FSType: fsType, Source: source, Options: opts})
	return nil
}

// resolve turns a pinned path (/proc/<pid>/fd/N[/name]) into the path of
// the directory the descriptor holds, as the kernel does for the tools.
func resolve(p string) string {
	parts := strings.SplitN(p, "/", 6) // "", proc, pid, fd, N, rest
	if len(parts) < 5 || parts[1] != "proc" || parts[3] != "fd" {
		return p
	}
	dir, err := os.Readlink(strings.Join(parts[:5], "/"))
	if err != nil {
		return p
	}
	if len(parts) == 6 {
		dir = filepath.Join(dir, parts[5])
	}
	return dir
}

// Bind implements Mounter: the bind shows source's filesystem and root.
func (f *Fake) Bind(_ context.Context, source, target string, ro bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	target = resolve(target)
	if err := f.count("bind", target); err != nil {
		return err
	}
	src := f.lookup(source)
	if src == nil {
		return fmt.Errorf("bind %s at %s: source is not a mount point", source, target)
	}
	b := *src
	b.ID, b.Mountpoint, b.Options = len(f.table)+100, filepath.Clean(target), "rw"
	if ro {
		b.Options = "ro"
	}
	f.table = append(f.table, &b)
	return nil
}

// ReadOnly implements Mounter.
func (f *Fake) ReadOnly(_ context.Context, target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.count("readonly", target); err != nil {
		return err
	}
	m := f.lookup(resolve(target))
	if m == nil {
		return fmt.Errorf("remount %s: not a mount point", target)
	}
	m.Options = "ro"
	return nil
}

// Unmount implements Mounter: the top mount at target goes.
func (f *Fake) Unmount(_ context.Context, target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	target = resolve(target)
	for i := len(f.table) - 1; i >= 0; i-- {
		if f.table[i].Mountpoint == target {
			if err := f.count("unmount", target); err != nil {
				return err
			}
			f.table = append(f.table[:i], f.table[i+1:]...)
			return nil
		}
	}
	return nil
}

func (f *Fake) lookup(path string) *mountinfo.Info {
	for i := len(f.table) - 1; i >= 0; i-- {
		if f.table[i].Mountpoint == path {
			return f.table[i]
		}
	}
	return nil
}

// Lookup implements Mounter.
func (f *Fake) Lookup(path string) (*mountinfo.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.lookup(resolve(path)); m != nil {
		c := *m
		return &c, nil
	}
	return nil, nil
}

// Users implements Mounter.
func (f *Fake) Users(m *mountinfo.Info) ([]*mountinfo.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*mountinfo.Info
	for _, i := range f.table {
		if i.Major == m.Major && i.Minor == m.Minor && i.Root == m.Root && i.Mountpoint != m.Mountpoint {
			c := *i
			out = append(out, &c)
		}
	}
	return out, nil
}

// All implements Mounter.
func (f *Fake) All() ([]*mountinfo.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*mountinfo.Info, 0, len(f.table))
	for _, i := range f.table {
		c := *i
		out = append(out, &c)
	}
	return out, nil
}

// Mounted implements Mounter.
func (f *Fake) Mounted(path string) (bool, error) {
	m, err := f.Lookup(path)
	return m != nil, err
}

// Same implements Mounter.
func (f *Fake) Same(a, b string) (bool, error) {
	ma, _ := f.Lookup(a)
	mb, _ := f.Lookup(b)
	return ma != nil && mb != nil && ma.Major == mb.Major && ma.Minor == mb.Minor && ma.Root == mb.Root, nil
}
