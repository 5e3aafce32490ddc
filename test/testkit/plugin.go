package testkit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Plugin is a driver installed in a scratch plugin dir, with the state,
// log and kubelet root its config points at.
type Plugin struct {
	Vendor, Name string
	Dir          string // plugin dir
	Exe          string // <Dir>/<Vendor>~<Name>/<Name>, kubelet's argv[0]
	State        string
	Log          string
	Kubelet      string // kubelet root
}

// NewPlugin names the paths of driver vendor~name under root; nothing is
// created.
func NewPlugin(root, vendor, name string) *Plugin {
	p := &Plugin{
		Vendor: vendor, Name: name,
		Dir:     filepath.Join(root, "plugins"),
		State:   filepath.Join(root, "state"),
		Log:     filepath.Join(root, "log", "flexblock.log"),
		Kubelet: filepath.Join(root, "kubelet"),
	}
	p.Exe = filepath.Join(p.driverDir(), name)
	return p
}

func (p *Plugin) driverDir() string { return filepath.Join(p.Dir, p.Vendor+"~"+p.Name) }

// Install copies bin to p.Exe (written then renamed, as the installer
// does) and creates the driver's and the kubelet root's dirs.
func (p *Plugin) Install(bin string) error {
	for _, d := range []string{p.driverDir(), p.Kubelet} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	tmp := p.Exe + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, p.Exe)
}

// WriteConfig writes flexblock.json next to the driver: logFile, stateDir
// and kubeletRoot pointing at p's paths, extra merged over them.
func (p *Plugin) WriteConfig(extra map[string]any) error {
	cfg := map[string]any{"logFile": p.Log, "stateDir": p.State, "kubeletRoot": p.Kubelet}
	for k, v := range extra {
		cfg[k] = v
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(p.driverDir(), "flexblock.json"), b, 0o644)
}

// Install installs bin as driver flexblock~name in a test's temp dir, with
// a config (extra merged).
func Install(t testing.TB, bin, name string, extra map[string]any) *Plugin {
	t.Helper()
	p := NewPlugin(t.TempDir(), "flexblock", name)
	if err := p.Install(bin); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteConfig(extra); err != nil {
		t.Fatal(err)
	}
	return p
}

// PodDir is the pod volume dir kubelet passes to mount (not created).
func (p *Plugin) PodDir(uid, vol string) string {
	return filepath.Join(p.Kubelet, "pods", uid, "volumes", p.Vendor+"~"+p.Name, vol)
}

// Options is the options JSON kubelet passes to mount, from key, value
// pairs.
func Options(kv ...string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}
