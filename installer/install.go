// Package installer puts the flexblock executable into kubelet's FlexVolume
// plugin directory as one driver per backend (<plugin dir>/flexblock~rbd/rbd,
// <plugin dir>/flexblock~iscsi/iscsi), writes each driver's config file next
// to it, checks the installed copy answers init, and removes it again.
//
// Every file is written so that kubelet's prober never sees a partial file:
// a dot-named temp file in the same directory (the prober ignores dot
// names), fsync, chmod, rename, fsync of the directory. A file whose content
// and mode already match is not touched, so a repeated install causes no
// inotify event and no plugin reload.
package installer

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/state"
)

// Defaults shared with the DaemonSet example and the doctor.
const (
	// DefaultPluginDir is kubelet's default --volume-plugin-dir.
	DefaultPluginDir = "/usr/libexec/kubernetes/kubelet-plugins/volume/exec"
	// DefaultProcRoot is where kubelet's process is looked for.
	DefaultProcRoot = "/proc"
	// Vendor is the vendor part of the driver names (flexblock/rbd).
	Vendor = "flexblock"

	execMode   fs.FileMode = 0o755
	configMode fs.FileMode = 0o644
	dirMode    fs.FileMode = 0o755
)

// DriverName is the name pods use: flexblock/<backend>.
func DriverName(backend string) string { return Vendor + "/" + backend }

// DriverDir is <plugin dir>/flexblock~<backend>.
func DriverDir(pluginDir, backend string) string {
	return filepath.Join(pluginDir, Vendor+"~"+backend)
}

// DriverPath is the driver executable kubelet runs for backend.
func DriverPath(pluginDir, backend string) string {
	return filepath.Join(DriverDir(pluginDir, backend), backend)
}

// Options describe one install.
type Options struct {
	PluginDir string // absolute; see ResolvePluginDir
	// MustExist refuses to create a missing plugin dir: set when the dir
	// came from a running kubelet, which creates it itself, so a missing
	// dir means this process does not see the host's (a container without
	// the hostPath).
	MustExist bool
	Source    string   // the executable to install
	Backends  []string // driver names, e.g. rbd, iscsi
	Config    config.Config
}

// Action tells what happened to one file.
type Action string

// Actions.
const (
	Unchanged Action = "unchanged"
	Created   Action = "installed"
	Replaced  Action = "replaced"
)

// FileResult is the outcome for one file.
type FileResult struct {
	Path   string
	Action Action
	id     fileID // as verified, for the running installer's cheap checks
}

// Result lists every file the install manages.
type Result struct {
	Files []FileResult
}

// Changed tells whether any file was written.
func (r *Result) Changed() bool {
	for _, f := range r.Files {
		if f.Action != Unchanged {
			return true
		}
	}
	return false
}

// Install copies the source executable and the config into every driver
// dir (only what differs), then self-tests each installed driver.
func Install(o Options) (*Result, error) {
	if len(o.Backends) == 0 {
		return nil, errors.New("no backends to install")
	}
	if !filepath.IsAbs(o.PluginDir) {
		return nil, fmt.Errorf("plugin dir %q must be an absolute path", o.PluginDir)
	}
	cfg, err := ConfigBytes(o.Config)
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(o.Source)
	if err != nil {
		return nil, fmt.Errorf("read the executable to install: %w", err)
	}
	if err := checkPluginDir(o.PluginDir, o.MustExist); err != nil {
		return nil, err
	}
	res := &Result{}
	for _, b := range o.Backends {
		dir := DriverDir(o.PluginDir, b)
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return res, fmt.Errorf("create driver dir: %w", err)
		}
		removeStaleTemps(dir)
		// The config first: the first init kubelet runs on the new
		// executable must already see the right capabilities.
		for _, f := range []struct {
			path string
			data []byte
			mode fs.FileMode
		}{
			{filepath.Join(dir, config.FileName), cfg, configMode},
			{DriverPath(o.PluginDir, b), bin, execMode},
		} {
			act, err := WriteIfChanged(f.path, f.data, f.mode)
			if err != nil {
				return res, err
			}
			res.Files = append(res.Files, FileResult{f.path, act, statID(f.path)})
		}
	}
	for _, b := range o.Backends {
		attach := o.Config.Attach
		if err := SelfTest(DriverPath(o.PluginDir, b), &attach); err != nil {
			return res, err
		}
	}
	return res, nil
}

func checkPluginDir(dir string, mustExist bool) error {
	st, err := os.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return fmt.Errorf("plugin dir %s is not a directory", dir)
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist) && mustExist:
		return missingPluginDir(dir)
	case errors.Is(err, fs.ErrNotExist):
		return os.MkdirAll(dir, dirMode)
	default:
		return fmt.Errorf("plugin dir: %w", err)
	}
}

func missingPluginDir(dir string) error {
	return fmt.Errorf("plugin dir %s (the running kubelet's) does not exist here: "+
		"kubelet creates it, so this process does not see the host's directory. "+
		"In a container, mount the host's %s (hostPath) at the same path", dir, dir)
}

// ConfigBytes renders c as the driver's config file and checks that the
// driver's own loader accepts it (so a bad flag fails before anything is
// written).
func ConfigBytes(c config.Config) ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	tmp, err := os.MkdirTemp("", "flexblock-config-check")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	p := filepath.Join(tmp, config.FileName)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return nil, err
	}
	if _, err := config.Load(p); err != nil {
		return nil, fmt.Errorf("invalid driver config: %s", strings.TrimPrefix(err.Error(), "config file "+p+": "))
	}
	return b, nil
}

// WriteIfChanged makes path hold data with exactly mode, atomically, and
// does nothing when it already does.
func WriteIfChanged(path string, data []byte, mode fs.FileMode) (Action, error) {
	st, err := os.Lstat(path)
	switch {
	case err == nil:
		if st.Mode().IsRegular() && st.Mode().Perm() == mode && st.Size() == int64(len(data)) {
			same, err := sameContent(path, data)
			if err != nil {
				return "", err
			}
			if same {
				return Unchanged, nil
			}
		}
		if err := state.WriteFileAtomic(path, data, mode); err != nil {
			return "", err
		}
		return Replaced, nil
	case errors.Is(err, fs.ErrNotExist):
		if err := state.WriteFileAtomic(path, data, mode); err != nil {
			return "", err
		}
		return Created, nil
	default:
		return "", err
	}
}

func sameContent(path string, data []byte) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, err
	}
	want := sha256.Sum256(data)
	return bytes.Equal(h.Sum(nil), want[:]), nil
}

// removeStaleTemps deletes temp files an interrupted install left behind.
// Recent ones may belong to a concurrent installer and are kept.
func removeStaleTemps(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, ".") || !strings.Contains(n, state.TempMarker) {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Minute {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

// ParseTimeouts reads TOOL=DURATION items (e.g. "rbd=2m") into the config's
// timeouts map; nil when there are none.
func ParseTimeouts(items []string) (map[string]config.Duration, error) {
	if len(items) == 0 {
		return nil, nil
	}
	out := map[string]config.Duration{}
	for _, it := range items {
		tool, dur, ok := strings.Cut(strings.TrimSpace(it), "=")
		tool = strings.TrimSpace(tool)
		if !ok || tool == "" {
			return nil, fmt.Errorf("--timeout %q: write TOOL=DURATION, for example rbd=2m", it)
		}
		d, err := time.ParseDuration(strings.TrimSpace(dur))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("--timeout %q: %q is not a positive duration such as 90s or 2m", it, dur)
		}
		out[tool] = config.Duration(d)
	}
	return out, nil
}
