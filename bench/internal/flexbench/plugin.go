package flexbench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Plugin is a driver installed as the installer does it:
// <Dir>/<vendor~name>/<name> with flexblock.json next to it.
type Plugin struct {
	Name    string
	Dir     string // plugin dir
	Exe     string
	State   string // state dir (a tmpfs, as /run is on a node)
	Log     string
	Kubelet string // kubelet root
}

// Install copies bin to root/plugins/<vendor>~<name>/<name> and writes its
// config (logFile, stateDir, kubeletRoot plus extra; extra nil: no config
// file at all, for the example baseline's fixed init answer). With stateOnTmpfs the
// state dir is a fresh tmpfs (call only inside a private mount namespace);
// the kubelet root and the log stay on root's (disk) filesystem, as on a node.
func Install(root, bin, vendor, name string, extra map[string]any, stateOnTmpfs bool) (*Plugin, error) {
	p := &Plugin{
		Name:    name,
		Dir:     filepath.Join(root, "plugins"),
		State:   filepath.Join(root, "state"),
		Log:     filepath.Join(root, "log", "flexblock.log"),
		Kubelet: filepath.Join(root, "kubelet"),
	}
	driverDir := filepath.Join(p.Dir, vendor+"~"+name)
	p.Exe = filepath.Join(driverDir, name)
	for _, d := range []string{driverDir, p.State, p.Kubelet} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if stateOnTmpfs {
		if err := unix.Mount("flexbench-state", p.State, "tmpfs", 0, "mode=0700"); err != nil {
			return nil, fmt.Errorf("tmpfs for state: %w", err)
		}
	}
	if err := copyFile(bin, p.Exe, 0o755); err != nil {
		return nil, err
	}
	if extra == nil {
		return p, nil
	}
	cfg := map[string]any{"logFile": p.Log, "stateDir": p.State, "kubeletRoot": p.Kubelet}
	for k, v := range extra {
		cfg[k] = v
	}
	b, _ := json.Marshal(cfg)
	return p, os.WriteFile(filepath.Join(driverDir, "flexblock.json"), b, 0o644)
}

// Config is Install's extra for a plain config (no extra keys).
var Config = map[string]any{}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// PodDir is the pod volume dir kubelet would pass (not created).
func (p *Plugin) PodDir(uid, vendor, vol string) string {
	return filepath.Join(p.Kubelet, "pods", uid, "volumes", vendor+"~"+p.Name, vol)
}

// MkPodDir creates a pod dir the way kubelet does before mount (0750).
func MkPodDir(dir string) error { return os.MkdirAll(dir, 0o750) }

// Answer is a driver's decoded answer.
type Answer struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Output  string `json:"-"`
}

// Decode parses a driver's output.
func Decode(out string) Answer {
	a := Answer{Output: out}
	if err := json.Unmarshal(bytes.TrimSpace([]byte(out)), &a); err != nil {
		a.Status, a.Message = "Unparsable", out
	}
	return a
}

// Call runs the driver once from this process (for the concurrency runs,
// where RSS is not measured) and returns the answer and the wall time.
func (p *Plugin) Call(env []string, args ...string) (Answer, time.Duration, error) {
	cmd := exec.Command(p.Exe, args...)
	cmd.Env = env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	a := Decode(string(out))
	if err != nil {
		return a, d, fmt.Errorf("%s %v: %v: %s", p.Exe, args[0], err, out)
	}
	if a.Status != "Success" {
		return a, d, fmt.Errorf("%s %s: %s: %s", p.Name, args[0], a.Status, a.Message)
	}
	return a, d, nil
}

// Options builds the options JSON kubelet passes to mount.
func Options(kv ...string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// LoopOptions are the mount options of a loop-backend volume.
func LoopOptions(dev, fsType string) string {
	return Options("device", dev, "kubernetes.io/fsType", fsType, "kubernetes.io/readwrite", "rw",
		"kubernetes.io/pod.namespace", "default", "kubernetes.io/pvOrVolumeName", "data")
}

// KubeletEnv is the environment a driver gets from kubelet (a plain PATH).
var KubeletEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
