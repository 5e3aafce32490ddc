// Package doctor checks that a node can run flexblock volumes: the tools
// the driver runs, the kernel modules, iscsid and the initiator name, the
// directories it writes, and the installed drivers themselves. Every check
// has a verdict and, when it fails, the fix. Checks needed only by one
// backend count only for that backend's verdict.
//
// Every path is looked up under Root ("/" on the node; /host when the
// host's root is mounted there, or a fake tree in tests).
package doctor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"golang.org/x/sys/unix"

	"github.com/flexblock/flexblock/driver/backends"
	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/filesystem"
	"github.com/flexblock/flexblock/driver/volume"
	"github.com/flexblock/flexblock/installer"
)

// Scopes: which verdict a check counts for.
const (
	ScopeAll   = "all"
	ScopeRBD   = "rbd"
	ScopeISCSI = "iscsi"
)

// Statuses.
const (
	OK   = "ok"
	Warn = "warn" // an optional check failed, or a note worth reading
	Fail = "FAIL" // a required check failed
)

// Check is one line of the report.
type Check struct {
	Name     string `json:"name"`
	Scope    string `json:"scope"`
	Required bool   `json:"required"`
	Status   string `json:"status"`
	Detail   string `json:"detail"`
	Fix      string `json:"fix,omitempty"`
}

// Verdict is a backend's summary.
type Verdict struct {
	Ready   bool     `json:"ready"`
	Missing []string `json:"missing,omitempty"`
}

// Report is the doctor's whole answer.
type Report struct {
	Root          string             `json:"root"`
	PluginDir     string             `json:"pluginDir"`
	PluginDirFrom string             `json:"pluginDirFrom"`
	Checks        []Check            `json:"checks"`
	Backends      map[string]Verdict `json:"backends"`
	OK            bool               `json:"ok"`
}

// Options select what to check.
type Options struct {
	Root      string   // "/" when empty
	PluginDir string   // node path; detected from the kubelet under Root, else the default
	Backends  []string // judged backends; default rbd and iscsi
	// Tools lists, per backend, the programs it runs (Backend.Tools).
	Tools    map[string][]string
	LogFile  string // node path; default: the installed config's, else the default
	StateDir string // node path; same
	Release  string // kernel release; default: <Root>/proc/sys/kernel/osrelease, else uname
}

// SearchDirs are where tools are looked for: the driver's own PATH.
var SearchDirs = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

type tool struct {
	name     string
	scope    string
	required bool
	why      string // for optional tools: what needs it
	fix      string
}

const fixUtilLinux = "install util-linux (Debian/Ubuntu: apt-get install util-linux mount; RHEL/Fedora: dnf install util-linux)"

// packageOf says which package ships each program a backend runs (the
// filesystem table names its own).
var packageOf = map[string]string{
	"rbd":        "the Ceph client (Debian/Ubuntu: apt-get install ceph-common; RHEL/Fedora: dnf install ceph-common)",
	"iscsiadm":   "the iSCSI initiator (Debian/Ubuntu: apt-get install open-iscsi; RHEL/Fedora: dnf install iscsi-initiator-utils)",
	"multipath":  "multipath-tools (Debian/Ubuntu: apt-get install multipath-tools; RHEL/Fedora: dnf install device-mapper-multipath)",
	"multipathd": "multipath-tools (Debian/Ubuntu: apt-get install multipath-tools; RHEL/Fedora: dnf install device-mapper-multipath)",
}

// optional says why a backend's program is needed only by some volumes.
var optional = map[string]string{
	"multipath":  "needed only for volumes with several portals (multipath)",
	"multipathd": "needed only for volumes with several portals (multipath)",
}

func fixFor(tool, pkg string) string {
	if d, ok := packageOf[tool]; ok {
		return "install " + d
	}
	if pkg != "" {
		return fmt.Sprintf("install %s (apt-get install %s / dnf install %s)", pkg, pkg, pkg)
	}
	return fixUtilLinux
}

// tools is every program the driver may run, from the one place each is
// known: the backends' own lists (Options.Tools), the lifecycle's
// (volume.Tools) and the filesystem table, whose default filesystem's
// tools are required and the others' needed only by volumes that ask.
func tools(o Options, nsenterNeeded bool, defaultFS string) []tool {
	var out []tool
	for _, b := range o.Backends {
		for _, t := range o.Tools[b] {
			why, opt := optional[t]
			out = append(out, tool{t, b, !opt, why, fixFor(t, "")})
		}
	}
	for _, t := range volume.Tools() {
		out = append(out, tool{t, ScopeAll, true, "", fixUtilLinux})
	}
	seen := map[string]int{}
	for _, fs := range filesystem.All() {
		for _, t := range fs.Tools() {
			i, ok := seen[t]
			if !ok {
				seen[t] = len(out)
				out = append(out, tool{t, ScopeAll, false, "needed only for volumes with fsType " + fs.Name, fixFor(t, fs.Package)})
				i = len(out) - 1
			} else {
				out[i].why += " or " + fs.Name
			}
			if fs.Name == defaultFS {
				out[i].required, out[i].why = true, ""
			}
		}
	}
	return append(out, tool{"nsenter", ScopeAll, nsenterNeeded, "needed only with nsenter: true (kubelet in a container)", fixUtilLinux})
}

// Run performs every check.
func Run(o Options) *Report {
	if o.Root == "" {
		o.Root = "/"
	}
	if len(o.Backends) == 0 {
		o.Backends = []string{"rbd", "iscsi"}
	}
	if o.Tools == nil {
		o.Tools = map[string][]string{}
		for _, b := range backends.List() {
			o.Tools[b.Name()] = b.Tools()
		}
	}
	r := &Report{Root: o.Root, Backends: map[string]Verdict{}}
	at := func(p string) string { return filepath.Join(o.Root, p) }

	// Where things are: the plugin dir, then the installed configs.
	r.PluginDir, r.PluginDirFrom = o.PluginDir, "--plugin-dir"
	if r.PluginDir == "" {
		det := installer.Detect(at("/proc"), o.Root)
		switch {
		case det.PluginDir != "":
			r.PluginDir, r.PluginDirFrom = det.PluginDir, det.From
		case det.KubeletPID != 0:
			r.PluginDir, r.PluginDirFrom = installer.DefaultPluginDir, fmt.Sprintf("default (kubelet pid %d sets none)", det.KubeletPID)
		default:
			r.PluginDir, r.PluginDirFrom = installer.DefaultPluginDir, "default (no kubelet process found)"
		}
		for _, w := range det.Warnings {
			r.add(Check{Name: "kubelet config", Scope: ScopeAll, Status: Warn, Detail: w, Fix: "pass --plugin-dir"})
		}
	}
	configs := map[string]*config.Config{}
	logFile, stateDir, nsenter, defaultFS := o.LogFile, o.StateDir, false, config.DefaultFSType
	for _, b := range o.Backends {
		p := filepath.Join(installer.DriverDir(at(r.PluginDir), b), config.FileName)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		c, err := config.Load(p)
		if err != nil {
			r.add(Check{Name: "config " + installer.DriverName(b), Scope: b, Required: true, Status: Fail, Detail: err.Error(),
				Fix: "re-run flexblock install (it rewrites the file from its flags)"})
			continue
		}
		configs[b] = c
		if logFile == "" {
			logFile = c.LogFile
		}
		if stateDir == "" {
			stateDir = c.StateDir
		}
		nsenter = nsenter || c.Nsenter
		if c.DefaultFSType != "" {
			defaultFS = c.DefaultFSType
		}
	}
	if logFile == "" {
		logFile = config.DefaultLogFile
	}
	if stateDir == "" {
		stateDir = config.DefaultStateDir
	}

	for _, t := range tools(o, nsenter, defaultFS) {
		r.add(checkTool(o.Root, t))
	}
	release := o.Release
	if release == "" {
		release = kernelRelease(o.Root)
	}
	r.add(checkModule(o.Root, release, "rbd", ScopeRBD,
		"install the kernel's extra modules (Debian: linux-image-"+release+"; Ubuntu: linux-modules-extra-"+release+
			") or use a kernel built with CONFIG_BLK_DEV_RBD; then modprobe rbd"))
	r.add(checkModule(o.Root, release, "iscsi_tcp", ScopeISCSI,
		"install the kernel's extra modules (Ubuntu: linux-modules-extra-"+release+
			") or use a kernel built with CONFIG_ISCSI_TCP; then modprobe iscsi_tcp"))
	r.add(checkRBDFeatures(o.Root))
	r.add(checkISCSID(o.Root))
	r.add(checkInitiatorName(o.Root))

	r.add(checkWritable(o.Root, "plugin dir", r.PluginDir,
		"flexblock install creates it",
		"make it a writable directory, or point --plugin-dir (and the DaemonSet's hostPath) at kubelet's --volume-plugin-dir"))
	r.add(checkWritable(o.Root, "log dir", filepath.Dir(logFile),
		"the driver creates it on its first call",
		"make "+filepath.Dir(logFile)+" a writable directory, or set --log-file at install"))
	r.add(checkWritable(o.Root, "state dir", stateDir,
		"the driver creates it on its first call",
		"make "+stateDir+" a writable directory (tmpfs /run is right), or set --state-dir at install"))
	recordsDir := config.DefaultRecordsDir
	if c := configs["iscsi"]; c != nil {
		recordsDir = c.ISCSI.RecordsDir
	}
	rc := checkWritable(o.Root, "iSCSI records dir", recordsDir,
		"the driver creates it at its first iSCSI login",
		"make "+recordsDir+" a writable directory on persistent storage (it must survive a reboot), or set iscsi.recordsDir in the iSCSI driver's config")
	rc.Scope = ScopeISCSI
	r.add(rc)

	for _, b := range o.Backends {
		r.add(checkDriver(at(r.PluginDir), r.PluginDir, b, configs[b]))
	}

	r.OK = true
	for _, b := range o.Backends {
		v := Verdict{Ready: true}
		for _, c := range r.Checks {
			if c.Required && c.Status != OK && (c.Scope == ScopeAll || c.Scope == b) {
				v.Ready = false
				v.Missing = append(v.Missing, c.Name)
			}
		}
		r.Backends[b] = v
		r.OK = r.OK && v.Ready
	}
	return r
}

func (r *Report) add(c Check) {
	if c.Status == "" {
		c.Status = OK
	}
	if c.Status == Fail && !c.Required {
		c.Status = Warn
	}
	r.Checks = append(r.Checks, c)
}

func checkTool(root string, t tool) Check {
	c := Check{Name: "tool " + t.name, Scope: t.scope, Required: t.required}
	for _, d := range SearchDirs {
		p := filepath.Join(d, t.name)
		if executable(root, p) {
			c.Detail = p
			return c
		}
	}
	c.Status = Fail
	c.Detail = "not found in " + strings.Join(SearchDirs, ":")
	if !t.required && t.why != "" {
		c.Detail += " (" + t.why + ")"
	}
	c.Fix = t.fix
	return c
}

// executable tells whether p (a node path) is an executable file under
// root, following symlinks inside root.
func executable(root, p string) bool {
	for i := 0; i < 16; i++ {
		full := filepath.Join(root, p)
		st, err := os.Lstat(full)
		if err != nil {
			return false
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(full)
			if err != nil {
				return false
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(p), target)
			}
			p = target
			continue
		}
		return st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
	}
	return false
}

func kernelRelease(root string) string {
	if b, err := os.ReadFile(filepath.Join(root, "proc/sys/kernel/osrelease")); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s
		}
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		return unix.ByteSliceToString(u.Release[:])
	}
	return "unknown"
}

func checkModule(root, release, name, scope, fix string) Check {
	c := Check{Name: "module " + name, Scope: scope, Required: true}
	if _, err := os.Stat(filepath.Join(root, "sys/module", name)); err == nil {
		c.Detail = "loaded"
		return c
	}
	for _, base := range []string{"lib/modules", "usr/lib/modules"} {
		dir := filepath.Join(root, base, release)
		if mentions(filepath.Join(dir, "modules.builtin"), name) {
			c.Detail = "built into the kernel"
			return c
		}
		if mentions(filepath.Join(dir, "modules.dep"), name) {
			c.Detail = "not loaded, loadable (" + filepath.Join("/", base, release, "modules.dep") + "); the first volume loads it"
			return c
		}
	}
	c.Status = Fail
	c.Detail = fmt.Sprintf("not loaded (no /sys/module/%s) and not in /lib/modules/%s/modules.dep or modules.builtin", name, release)
	c.Fix = fix
	return c
}

// mentions tells whether a modules.dep/modules.builtin file lists module
// name (as .../name.ko, possibly compressed).
func mentions(file, name string) bool {
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		path, _, _ := strings.Cut(sc.Text(), ":")
		base := filepath.Base(strings.TrimSpace(path))
		for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
			if m, ok := strings.CutSuffix(base, ext); ok && strings.ReplaceAll(m, "-", "_") == name {
				return true
			}
		}
	}
	return false
}

func checkRBDFeatures(root string) Check {
	c := Check{Name: "rbd supported_features", Scope: ScopeRBD}
	_, loadedErr := os.Stat(filepath.Join(root, "sys/module/rbd"))
	loaded := loadedErr == nil
	c.Required = loaded
	b, err := os.ReadFile(filepath.Join(root, "sys/bus/rbd/supported_features"))
	if err == nil && len(bytes.TrimSpace(b)) > 0 {
		c.Detail = "/sys/bus/rbd/supported_features = " + strings.TrimSpace(string(b))
		return c
	}
	c.Status = Fail
	if !loaded {
		c.Detail = "/sys/bus/rbd/supported_features appears once the rbd module is loaded"
		c.Fix = "modprobe rbd, then run doctor again (the first RBD volume loads it anyway)"
		return c
	}
	c.Detail = "rbd module loaded but /sys/bus/rbd/supported_features is not readable"
	if err != nil {
		c.Detail += " (" + err.Error() + ")"
	}
	c.Fix = "use a kernel of 4.11 or newer; image features cannot be checked before mapping otherwise"
	return c
}

func checkISCSID(root string) Check {
	c := Check{Name: "iscsid", Scope: ScopeISCSI, Required: true}
	if pid := findProcess(filepath.Join(root, "proc"), "iscsid"); pid != "" {
		c.Detail = "running (pid " + pid + ")"
		return c
	}
	for _, p := range []string{
		"etc/systemd/system/sockets.target.wants/iscsid.socket",
		"usr/lib/systemd/system/sockets.target.wants/iscsid.socket",
		"lib/systemd/system/sockets.target.wants/iscsid.socket",
	} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			c.Detail = "not running, socket-activated (/" + p + "): starts on the first iscsiadm call"
			return c
		}
	}
	c.Status = Fail
	c.Detail = "no iscsid process and no enabled iscsid.socket"
	c.Fix = "systemctl enable --now iscsid (package open-iscsi / iscsi-initiator-utils)"
	return c
}

func findProcess(procRoot, comm string) string {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return ""
	}
	var pids []string
	for _, e := range entries {
		if n := e.Name(); n != "" && strings.Trim(n, "0123456789") == "" {
			pids = append(pids, n)
		}
	}
	sort.Strings(pids)
	for _, p := range pids {
		if b, err := os.ReadFile(filepath.Join(procRoot, p, "comm")); err == nil && strings.TrimSpace(string(b)) == comm {
			return p
		}
	}
	return ""
}

func checkInitiatorName(root string) Check {
	const p = "/etc/iscsi/initiatorname.iscsi"
	c := Check{Name: "initiator name", Scope: ScopeISCSI, Required: true}
	fix := "echo \"InitiatorName=$(iscsi-iname)\" > " + p + " && systemctl restart iscsid"
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		c.Status, c.Fix = Fail, fix
		c.Detail = p + " is not readable: " + cause(err)
		return c
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "InitiatorName="); ok && strings.TrimSpace(v) != "" {
			c.Detail = strings.TrimSpace(v)
			return c
		}
	}
	c.Status, c.Fix = Fail, fix
	c.Detail = p + " has no InitiatorName= line"
	return c
}

// checkWritable checks a node dir (under root) is writable, or that its
// nearest existing parent is, so the dir can be created.
func checkWritable(root, name, dir, whenMissing, fix string) Check {
	c := Check{Name: name, Scope: ScopeAll, Required: true}
	full := filepath.Join(root, dir)
	st, err := os.Stat(full)
	switch {
	case err == nil && !st.IsDir():
		c.Status, c.Detail, c.Fix = Fail, dir+" is not a directory", fix
		return c
	case err == nil:
		if err := unix.Access(full, unix.W_OK|unix.X_OK); err != nil {
			c.Status, c.Detail, c.Fix = Fail, dir+" is not writable: "+err.Error(), fix
			return c
		}
		c.Detail = dir + " writable"
		return c
	case !errors.Is(err, fs.ErrNotExist):
		c.Status, c.Detail, c.Fix = Fail, dir+": "+cause(err), fix
		return c
	}
	parent := dir
	for {
		parent = filepath.Dir(parent)
		if st, err := os.Stat(filepath.Join(root, parent)); err == nil {
			if !st.IsDir() || unix.Access(filepath.Join(root, parent), unix.W_OK|unix.X_OK) != nil {
				c.Status, c.Detail, c.Fix = Fail, dir+" is missing and "+parent+" is not writable", fix
				return c
			}
			c.Detail = dir + " is missing; " + whenMissing
			return c
		}
		if parent == "/" || parent == "." {
			c.Status, c.Detail, c.Fix = Fail, dir+" is missing", fix
			return c
		}
	}
}

func checkDriver(pluginDir, nodePluginDir, backend string, cfg *config.Config) Check {
	c := Check{Name: "driver " + installer.DriverName(backend), Scope: backend, Required: true}
	exe := installer.DriverPath(pluginDir, backend)
	node := installer.DriverPath(nodePluginDir, backend)
	if _, err := os.Stat(exe); err != nil {
		c.Status = Fail
		c.Detail = node + " is not installed"
		c.Fix = "kubectl apply -k examples/deploy (or run flexblock install on the node)"
		return c
	}
	var attach *bool
	if cfg != nil {
		attach = &cfg.Attach
	}
	if err := installer.SelfTest(exe, attach); err != nil {
		c.Status = Fail
		c.Detail = err.Error()
		c.Fix = "re-run flexblock install; check the driver log"
		return c
	}
	c.Detail = node + " answers init"
	return c
}

// WriteTable prints the report for people: one line per check with its
// verdict and, for a failed check, the fix; then one verdict per backend.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "flexblock doctor: root %s, plugin dir %s (%s)\n\n", r.Root, r.PluginDir, r.PluginDirFrom)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tCHECK\tNEEDED FOR\tRESULT\tFIX")
	for _, c := range r.Checks {
		need := c.Scope
		if !c.Required {
			need += " (optional)"
		}
		fix := c.Fix
		if c.Status == OK || fix == "" {
			fix = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Status, c.Name, need, oneLine(c.Detail), oneLine(fix))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	names := make([]string, 0, len(r.Backends))
	for b := range r.Backends {
		names = append(names, b)
	}
	sort.Strings(names)
	for _, b := range names {
		v := r.Backends[b]
		if v.Ready {
			fmt.Fprintf(w, "%s: READY (driver %s)\n", b, installer.DriverName(b))
		} else {
			fmt.Fprintf(w, "%s: NOT READY, fix: %s\n", b, strings.Join(v.Missing, ", "))
		}
	}
	return nil
}

// WriteJSON prints the report for machines.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// cause drops the (root-prefixed) path from a file error.
func cause(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
