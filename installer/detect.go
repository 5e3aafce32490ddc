package installer

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// DefaultKubeletRoot is kubelet's --root-dir when it is not given.
const DefaultKubeletRoot = "/var/lib/kubelet"

// Detection is what a running kubelet says about its plugin dir.
type Detection struct {
	KubeletPID int    // 0: no kubelet process found
	PluginDir  string // "": the kubelet uses the default (or it could not be told)
	From       string // where PluginDir came from, for messages
	// RootDir is the kubelet's --root-dir (its default when the flag is
	// not given): the one root the driver should accept in kubelet's paths.
	RootDir string
	// Warnings are things that may make PluginDir wrong (an unreadable
	// kubelet config file).
	Warnings []string
}

// Detect looks for a kubelet process under procRoot (the host's /proc when
// the container runs with hostPID) and reads its --volume-plugin-dir flag,
// else volumePluginDir from its --config-dir drop-ins or --config file.
// Config files are read through procRoot/<pid>/root (the kubelet's own view)
// and else under fsRoot ("/" on the host).
func Detect(procRoot, fsRoot string) Detection {
	d := Detection{}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return d
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	for _, pid := range pids {
		b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cmdline"))
		if err != nil {
			continue
		}
		args, ok := kubeletArgs(b)
		if !ok {
			continue
		}
		d.KubeletPID = pid
		flags := parseFlags(args, "volume-plugin-dir", "config", "config-dir", "root-dir")
		d.RootDir = filepath.Clean(flags["root-dir"])
		if flags["root-dir"] == "" {
			d.RootDir = DefaultKubeletRoot
		}
		if v := flags["volume-plugin-dir"]; v != "" {
			d.PluginDir, d.From = v, fmt.Sprintf("kubelet (pid %d) flag --volume-plugin-dir", pid)
			return d
		}
		read := func(p string) ([]byte, error) {
			b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "root", p))
			if err == nil {
				return b, nil
			}
			return os.ReadFile(filepath.Join(fsRoot, p))
		}
		// Drop-ins override the config file; flags override both.
		if dir := flags["config-dir"]; dir != "" {
			if v, from := fromDropIns(procRoot, fsRoot, pid, dir); v != "" {
				d.PluginDir, d.From = v, fmt.Sprintf("kubelet (pid %d) config drop-in %s", pid, from)
				return d
			}
		}
		if cfg := flags["config"]; cfg != "" {
			b, err := read(cfg)
			if err != nil {
				d.Warnings = append(d.Warnings, fmt.Sprintf("kubelet (pid %d) reads its config from %s, which is not readable here (%v): "+
					"if it sets volumePluginDir, pass --plugin-dir with that dir", pid, cfg, err))
			} else if v := volumePluginDirIn(b); v != "" {
				d.PluginDir, d.From = v, fmt.Sprintf("kubelet (pid %d) config file %s", pid, cfg)
			}
		}
		return d
	}
	return d
}

func fromDropIns(procRoot, fsRoot string, pid int, dir string) (string, string) {
	var found, from string
	for _, base := range []string{filepath.Join(procRoot, strconv.Itoa(pid), "root"), fsRoot} {
		files, _ := filepath.Glob(filepath.Join(base, dir, "*.conf"))
		if len(files) == 0 {
			continue
		}
		sort.Strings(files) // kubelet applies them in lexical order
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				if v := volumePluginDirIn(b); v != "" {
					found, from = v, filepath.Join(dir, filepath.Base(f))
				}
			}
		}
		return found, from
	}
	return "", ""
}

// kubeletArgs returns the arguments of a kubelet command line (NUL
// separated, as in /proc/<pid>/cmdline).
func kubeletArgs(cmdline []byte) ([]string, bool) {
	argv := strings.Split(string(bytes.TrimRight(cmdline, "\x00")), "\x00")
	if len(argv) == 1 && strings.Contains(argv[0], " ") {
		argv = strings.Fields(argv[0]) // a process that rewrote its argv
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, false
	}
	switch filepath.Base(argv[0]) {
	case "kubelet":
		return argv[1:], true
	case "hyperkube":
		if len(argv) > 1 && argv[1] == "kubelet" {
			return argv[2:], true
		}
	}
	return nil, false
}

// parseFlags picks the named long flags out of args (--name=value or
// --name value; the last one wins, as with kubelet's flag parser).
func parseFlags(args []string, names ...string) map[string]string {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name := strings.TrimLeft(a, "-")
		if k, v, ok := strings.Cut(name, "="); ok {
			if want[k] {
				out[k] = v
			}
			continue
		}
		if want[name] && i+1 < len(args) {
			out[name] = args[i+1]
			i++
		}
	}
	return out
}

var volumePluginDirRE = regexp.MustCompile(`(?m)(?:^|[{,])\s*["']?volumePluginDir["']?\s*:\s*["']?([^"'\s,}#]+)`)

// volumePluginDirIn finds volumePluginDir in a KubeletConfiguration (YAML
// or JSON) without a YAML parser (the binary stays lean).
func volumePluginDirIn(b []byte) string {
	m := volumePluginDirRE.FindAllSubmatch(b, -1)
	if len(m) == 0 {
		return ""
	}
	return string(m[len(m)-1][1])
}

// Resolved is the plugin dir an install or uninstall uses and why.
type Resolved struct {
	Dir         string
	From        string // "--plugin-dir", "kubelet (pid N) ...", "default"
	FromKubelet bool
	Warnings    []string
}

// ResolvePluginDir picks the plugin dir: the explicit one, else the running
// kubelet's, else the default. An explicit dir that differs from the
// kubelet's gives a warning.
func ResolvePluginDir(explicit, procRoot string) (Resolved, error) {
	det := Detect(procRoot, "/")
	r := Resolved{Warnings: det.Warnings}
	if explicit != "" {
		abs, err := filepath.Abs(explicit)
		if err != nil {
			return r, err
		}
		r.Dir, r.From = abs, "--plugin-dir"
		if det.PluginDir != "" && filepath.Clean(det.PluginDir) != abs {
			r.Warnings = append(r.Warnings, fmt.Sprintf("--plugin-dir is %s but %s says %s: kubelet will not see the drivers there", abs, det.From, det.PluginDir))
		}
		return r, nil
	}
	if det.PluginDir != "" {
		if !filepath.IsAbs(det.PluginDir) {
			return r, fmt.Errorf("%s is %q, not an absolute path: pass --plugin-dir", det.From, det.PluginDir)
		}
		r.Dir, r.From, r.FromKubelet = filepath.Clean(det.PluginDir), det.From, true
		return r, nil
	}
	r.Dir, r.From = DefaultPluginDir, "default"
	if det.KubeletPID != 0 {
		r.From = fmt.Sprintf("default (kubelet pid %d sets no --volume-plugin-dir)", det.KubeletPID)
		r.FromKubelet = true
	} else {
		r.From = "default (no kubelet process found under " + procRoot + ")"
	}
	return r, nil
}
