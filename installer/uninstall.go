package installer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/state"
)

// UninstallOptions describe one uninstall.
type UninstallOptions struct {
	PluginDir string
	// StateDirs are searched for volume records besides the stateDir of
	// every installed driver's config.
	StateDirs []string
	// Force removes the drivers even though volumes are still in use.
	Force bool
	// MustExist: the plugin dir came from a running kubelet, so a missing
	// dir means this process does not see the host's (see Options).
	MustExist bool
}

// InUseError lists the volumes whose unmount still needs the driver.
type InUseError struct {
	Volumes []string // one line per volume
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("refusing to uninstall: %d volume(s) still in use on this node, and their unmount needs the driver:\n  %s\n"+
		"Delete or move the pods that use them (kubelet then unmounts them), or pass --force to remove the drivers anyway "+
		"(the volumes then stay mapped and mounted until you clean up by hand)",
		len(e.Volumes), strings.Join(e.Volumes, "\n  "))
}

// UninstallResult tells what was removed and what was in use.
type UninstallResult struct {
	Removed []string
	InUse   []string // non-empty only with Force
}

// Uninstall removes every flexblock~* driver dir from the plugin dir,
// executables first (so kubelet unloads the plugins before their configs
// go), unless state records say volumes are still in use.
func Uninstall(o UninstallOptions) (*UninstallResult, error) {
	if o.MustExist {
		if _, err := os.Stat(o.PluginDir); errors.Is(err, fs.ErrNotExist) {
			return nil, missingPluginDir(o.PluginDir)
		}
	}
	dirs, err := filepath.Glob(filepath.Join(o.PluginDir, Vendor+"~*"))
	if err != nil {
		return nil, err
	}
	res := &UninstallResult{}
	inUse, err := volumesInUse(stateDirs(dirs, o.StateDirs))
	if err != nil && !o.Force {
		return nil, fmt.Errorf("cannot tell whether volumes are in use (%v): fix it or pass --force", err)
	}
	if len(inUse) > 0 && !o.Force {
		return nil, &InUseError{Volumes: inUse}
	}
	res.InUse = inUse
	for _, d := range dirs {
		backend := strings.TrimPrefix(filepath.Base(d), Vendor+"~")
		exe := filepath.Join(d, backend)
		if err := os.Remove(exe); err == nil {
			res.Removed = append(res.Removed, exe)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("remove %s: %w", exe, err)
		}
	}
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			return res, fmt.Errorf("remove %s: %w", d, err)
		}
		res.Removed = append(res.Removed, d)
	}
	if len(dirs) > 0 {
		_ = state.SyncDir(o.PluginDir)
	}
	return res, nil
}

// stateDirs is the explicit list plus the stateDir of each installed
// driver's config, without duplicates.
func stateDirs(driverDirs, explicit []string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(d string) {
		d = filepath.Clean(d)
		if d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	for _, d := range explicit {
		add(d)
	}
	for _, d := range driverDirs {
		if c, err := config.Load(filepath.Join(d, config.FileName)); err == nil {
			add(c.StateDir)
		}
	}
	return out
}

func volumesInUse(dirs []string) ([]string, error) {
	var out []string
	var errs []error
	for _, dir := range dirs {
		recs, err := state.Store{Dir: dir, Inspect: true}.List("")
		if err != nil {
			errs = append(errs, fmt.Errorf("state dir %s: %w", dir, err))
			continue
		}
		// A record the driver set aside may describe a volume still in use.
		if set, _ := os.ReadDir(state.Layout{Dir: dir}.Quarantine()); len(set) > 0 {
			errs = append(errs, fmt.Errorf("state dir %s: %d record(s) set aside in %s: inspect them (the volumes they describe may still be mounted)", dir, len(set), state.Layout{Dir: dir}.Quarantine()))
		}
		for _, r := range recs {
			line := fmt.Sprintf("volume %s still mounted on this node (driver %s", r.ID, DriverName(r.Backend))
			if r.Device != "" {
				line += ", device " + r.Device
			}
			if r.GlobalMount != "" {
				line += ", mounted at " + r.GlobalMount
			}
			line += ", record " + filepath.Join(dir, "volumes", r.Backend, r.ID+".json") + ")"
			out = append(out, line)
		}
	}
	sort.Strings(out)
	return out, errors.Join(errs...)
}
