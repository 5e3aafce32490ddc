package installer

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/state"
	"github.com/flexblock/flexblock/test/testkit"
)

var bin string // the real flexblock binary, built once

func TestMain(m *testing.M) { testkit.Main(m, &bin) }

var backends = []string{"iscsi", "rbd"}

type env struct {
	plugin, state, log string
}

func newEnv(t *testing.T) env {
	base := t.TempDir()
	return env{
		plugin: filepath.Join(base, "plugins"),
		state:  filepath.Join(base, "run", "flexblock"),
		log:    filepath.Join(base, "log", "flexblock", "flexblock.log"),
	}
}

func (e env) options(src string) Options {
	return Options{
		PluginDir: e.plugin,
		Source:    src,
		Backends:  backends,
		Config:    config.Config{LogFile: e.log, StateDir: e.state},
	}
}

func mustInstall(t *testing.T, o Options) *Result {
	t.Helper()
	res, err := Install(o)
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	return res
}

type snap struct {
	ino   uint64
	mtime time.Time
	mode  os.FileMode
}

func stat(t *testing.T, p string) snap {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return snap{st.Sys().(*syscall.Stat_t).Ino, st.ModTime(), st.Mode()}
}

// noTemps fails when a dot-named file is left in a driver dir.
func noTemps(t *testing.T, pluginDir string) {
	t.Helper()
	for _, b := range backends {
		entries, err := os.ReadDir(DriverDir(pluginDir, b))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("temp file left behind: %s", e.Name())
			}
		}
	}
}

func TestInstallWritesExecutablesAndConfig(t *testing.T) {
	e := newEnv(t)
	o := e.options(bin)
	o.Config.Attach = true
	o.Config.Nsenter = true
	o.Config.RBD.Keyring = "/etc/ceph/keyring"
	o.Config.ISCSI.CredentialsFile = "/etc/flexblock/chap.json"
	var err error
	if o.Config.Timeouts, err = ParseTimeouts([]string{"rbd=2m", "mount = 45s"}); err != nil {
		t.Fatal(err)
	}
	res := mustInstall(t, o)
	if len(res.Files) != 4 || !res.Changed() {
		t.Fatalf("files: %+v", res.Files)
	}
	for _, f := range res.Files {
		if f.Action != Created {
			t.Errorf("%s: %s, want %s", f.Path, f.Action, Created)
		}
	}
	want, _ := os.ReadFile(bin)
	for _, b := range backends {
		exe := DriverPath(e.plugin, b)
		if got := stat(t, exe).mode; got != 0o755 {
			t.Errorf("%s mode %v, want 0755", exe, got)
		}
		if got, _ := os.ReadFile(exe); !bytes.Equal(got, want) {
			t.Errorf("%s differs from the source", exe)
		}
		cfgPath := filepath.Join(DriverDir(e.plugin, b), config.FileName)
		if got := stat(t, cfgPath).mode; got != 0o644 {
			t.Errorf("%s mode %v, want 0644", cfgPath, got)
		}
		if stat(t, DriverDir(e.plugin, b)).mode.Perm() != 0o755 {
			t.Errorf("driver dir mode %v", stat(t, DriverDir(e.plugin, b)).mode)
		}
		c, err := config.Load(cfgPath)
		if err != nil {
			t.Fatalf("config.Load: %v", err)
		}
		if !c.Attach || !c.Nsenter || c.LogFile != e.log || c.StateDir != e.state ||
			c.RBD.Keyring != "/etc/ceph/keyring" || c.ISCSI.CredentialsFile != "/etc/flexblock/chap.json" ||
			c.Timeout("rbd") != 2*time.Minute || c.Timeout("mount") != 45*time.Second {
			t.Errorf("config read back: %+v", c)
		}
	}
	noTemps(t, e.plugin)
	// init must not have created the log or the state dir.
	for _, p := range []string{e.log, e.state} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("self-test created %s", p)
		}
	}
}

func TestSecondIdenticalInstallWritesNothing(t *testing.T) {
	e := newEnv(t)
	res := mustInstall(t, e.options(bin))
	before := map[string]snap{}
	for _, f := range res.Files {
		before[f.Path] = stat(t, f.Path)
	}
	for _, b := range backends {
		before[DriverDir(e.plugin, b)] = stat(t, DriverDir(e.plugin, b))
	}
	time.Sleep(20 * time.Millisecond) // a write would show in mtime
	res2 := mustInstall(t, e.options(bin))
	if res2.Changed() {
		t.Errorf("second install changed files: %+v", res2.Files)
	}
	for p, s := range before {
		if got := stat(t, p); got != s {
			t.Errorf("%s changed: %+v -> %+v", p, s, got)
		}
	}
}

func TestChangedBinaryAndConfigAreReplaced(t *testing.T) {
	e := newEnv(t)
	mustInstall(t, e.options(bin))
	exe := DriverPath(e.plugin, "rbd")
	old := stat(t, exe)

	// A new build: same program, different bytes (trailing data is ignored
	// by the ELF loader).
	newBin := filepath.Join(t.TempDir(), "flexblock-v2")
	b, _ := os.ReadFile(bin)
	b = append(b, []byte("v2")...)
	if err := os.WriteFile(newBin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	o := e.options(newBin)
	o.Config.Attach = true
	res := mustInstall(t, o)
	for _, f := range res.Files {
		if f.Action != Replaced {
			t.Errorf("%s: %s, want %s", f.Path, f.Action, Replaced)
		}
	}
	if got, _ := os.ReadFile(exe); !bytes.Equal(got, b) {
		t.Error("binary not replaced")
	}
	if now := stat(t, exe); now.ino == old.ino {
		t.Error("binary rewritten in place; want a new inode (rename)")
	}
	if c, err := config.Load(filepath.Join(DriverDir(e.plugin, "rbd"), config.FileName)); err != nil || !c.Attach {
		t.Errorf("config not replaced: %+v %v", c, err)
	}
	noTemps(t, e.plugin)
}

func TestWrongModeIsRepaired(t *testing.T) {
	e := newEnv(t)
	mustInstall(t, e.options(bin))
	exe := DriverPath(e.plugin, "iscsi")
	if err := os.Chmod(exe, 0o644); err != nil {
		t.Fatal(err)
	}
	res := mustInstall(t, e.options(bin))
	if !res.Changed() || stat(t, exe).mode != 0o755 {
		t.Errorf("mode not repaired: %+v, %v", res.Files, stat(t, exe).mode)
	}
}

func TestStaleTempFilesAreRemoved(t *testing.T) {
	e := newEnv(t)
	mustInstall(t, e.options(bin))
	dir := DriverDir(e.plugin, "rbd")
	stale := filepath.Join(dir, ".rbd"+state.TempMarker+"123")
	fresh := filepath.Join(dir, ".rbd"+state.TempMarker+"456")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	mustInstall(t, e.options(bin))
	if _, err := os.Stat(stale); err == nil {
		t.Error("stale temp file kept")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("a recent temp file (maybe a concurrent installer's) was removed")
	}
}

func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fake")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

const okAnswer = `{"status":"Success","capabilities":{"attach":false,"selinuxRelabel":true,"supportsMetrics":false,"fsGroup":true,"requiresFSResize":true}}`

func TestSelfTestRejectsBrokenDrivers(t *testing.T) {
	old := SelfTestTimeout
	SelfTestTimeout = time.Second
	defer func() { SelfTestTimeout = old }()
	f := false
	for _, tc := range []struct {
		name, body, want string
	}{
		{"valid", "echo '" + okAnswer + "'", ""},
		{"garbage", "echo hello", "not one JSON object"},
		{"empty", "true", "not one JSON object"},
		{"two objects", "echo '" + okAnswer + okAnswer + "'", "not one JSON object"},
		{"stderr", "echo '" + okAnswer + "'; echo 'W1123 klog line' >&2", "wrote to stderr"},
		{"exit 1 with success", "echo '" + okAnswer + "'; exit 1", "exit status 1"},
		{"failure", `echo '{"status":"Failure","message":"config file x: bad"}'`, `status "Failure"`},
		{"not supported", `echo '{"status":"Not supported"}'`, `status "Not supported"`},
		{"missing capability", `echo '{"status":"Success","capabilities":{"attach":false}}'`, `capability "selinuxRelabel" is missing`},
		{"string capability", `echo '{"status":"Success","capabilities":{"attach":"false","selinuxRelabel":true,"supportsMetrics":false,"fsGroup":true,"requiresFSResize":true}}'`, "not a boolean"},
		{"attach mismatch", `echo '` + strings.Replace(okAnswer, `"attach":false`, `"attach":true`, 1) + `'`, "did not read its config"},
		{"hangs", "sleep 30", "no answer within"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := SelfTest(script(t, tc.body), &f)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			case err != nil && !strings.HasPrefix(err.Error(), "self-test failed: "):
				t.Fatalf("error does not say self-test failed: %v", err)
			}
		})
	}
	notExec := filepath.Join(t.TempDir(), "rbd")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SelfTest(notExec, nil); err == nil || !strings.Contains(err.Error(), "cannot run it") {
		t.Errorf("non-executable: %v", err)
	}
}

func TestInstallFailsLoudlyForBrokenBinary(t *testing.T) {
	e := newEnv(t)
	src := script(t, "echo garbage; echo oops >&2")
	_, err := Install(e.options(src))
	if err == nil || !strings.Contains(err.Error(), "self-test failed") || !strings.Contains(err.Error(), "flexblock~") {
		t.Fatalf("want a self-test failure naming the driver, got %v", err)
	}
}

func TestInstallRejectsBadConfigBeforeWriting(t *testing.T) {
	e := newEnv(t)
	o := e.options(bin)
	o.Config.LogFile = "relative/log"
	if _, err := Install(o); err == nil || !strings.Contains(err.Error(), "logFile") {
		t.Fatalf("want an error naming logFile, got %v", err)
	}
	if _, err := os.Stat(e.plugin); err == nil {
		t.Error("plugin dir created despite the bad config")
	}
	if _, err := ParseTimeouts([]string{"rbd"}); err == nil {
		t.Error("timeout without = accepted")
	}
	if _, err := ParseTimeouts([]string{"rbd=-1s"}); err == nil {
		t.Error("negative timeout accepted")
	}
}

func TestInstallMustExistRefusesMissingPluginDir(t *testing.T) {
	e := newEnv(t)
	o := e.options(bin)
	o.MustExist = true
	if _, err := Install(o); err == nil || !strings.Contains(err.Error(), "hostPath") {
		t.Fatalf("want a hostPath hint, got %v", err)
	}
	if _, err := os.Stat(e.plugin); err == nil {
		t.Error("missing plugin dir created although kubelet's must already exist")
	}
}

func TestUninstallRefusesWhileVolumesInUse(t *testing.T) {
	e := newEnv(t)
	mustInstall(t, e.options(bin))
	store := state.Store{Dir: e.state}
	rec := &state.Record{Backend: "rbd", ID: "rbd-pool-image1", Mode: state.ModePod, Device: "/dev/rbd0", GlobalMount: "/var/lib/kubelet/plugins/flexblock/rbd/mounts/rbd-pool-image1"}
	if err := store.Save(rec); err != nil {
		t.Fatal(err)
	}
	// The state dir comes from the installed config: no StateDirs given.
	_, err := Uninstall(UninstallOptions{PluginDir: e.plugin})
	var inUse *InUseError
	if !errors.As(err, &inUse) {
		t.Fatalf("want InUseError, got %v", err)
	}
	if !strings.Contains(err.Error(), "volume rbd-pool-image1 still mounted on this node") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("message: %v", err)
	}
	for _, b := range backends {
		if _, err := os.Stat(DriverPath(e.plugin, b)); err != nil {
			t.Errorf("refused uninstall removed %s", DriverPath(e.plugin, b))
		}
	}

	res, err := Uninstall(UninstallOptions{PluginDir: e.plugin, Force: true})
	if err != nil {
		t.Fatalf("--force: %v", err)
	}
	if len(res.InUse) != 1 {
		t.Errorf("InUse: %v", res.InUse)
	}
	// Executables go first, then the dirs.
	if len(res.Removed) != 4 || filepath.Base(res.Removed[0]) != "iscsi" || filepath.Base(res.Removed[1]) != "rbd" {
		t.Errorf("removed: %v", res.Removed)
	}
	for _, b := range backends {
		if _, err := os.Stat(DriverDir(e.plugin, b)); err == nil {
			t.Errorf("%s still there", DriverDir(e.plugin, b))
		}
	}
	if _, err := os.Stat(e.plugin); err != nil {
		t.Error("the plugin dir itself was removed")
	}
}

func TestUninstallWithoutVolumes(t *testing.T) {
	e := newEnv(t)
	mustInstall(t, e.options(bin))
	other := filepath.Join(e.plugin, "other~driver")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Uninstall(UninstallOptions{PluginDir: e.plugin, StateDirs: []string{e.state, filepath.Join(t.TempDir(), "missing")}}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(e.plugin)
	if len(entries) != 1 || entries[0].Name() != "other~driver" {
		t.Errorf("plugin dir after uninstall: %v (other drivers must stay)", entries)
	}
	// Idempotent.
	if _, err := Uninstall(UninstallOptions{PluginDir: e.plugin}); err != nil {
		t.Errorf("second uninstall: %v", err)
	}
}

func TestUninstallRefusesUnreadableState(t *testing.T) {
	e := newEnv(t)
	mustInstall(t, e.options(bin))
	p := filepath.Join(e.state, "volumes", "rbd", "x.json")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("{corrupt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Uninstall(UninstallOptions{PluginDir: e.plugin}); err == nil || !strings.Contains(err.Error(), "cannot tell") {
		t.Fatalf("corrupt record: %v", err)
	}
}

// The CLI end to end: flags and env reach the config; exit codes.
func TestCLI(t *testing.T) {
	e := newEnv(t)
	run := func(env []string, args ...string) (string, int) {
		out, code, err := testkit.RunCLI(bin, env, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out, code
	}
	out, code := run([]string{"FLEXBLOCK_ATTACH=true", "FLEXBLOCK_TIMEOUTS=rbd=2m,iscsiadm=30s"},
		"install", "--once", "--plugin-dir", e.plugin, "--log-file", e.log, "--state-dir", e.state,
		"--rbd-keyring", "/etc/ceph/ceph.client.k8s.keyring", "--rbd-user", "k8s", "--rbd-monitors", "10.0.0.1,10.0.0.2",
		"--iscsi-credentials-file", "/etc/flexblock/chap.json", "--iscsi-records-dir", "/var/lib/k8s-flexblock/iscsi",
		"--kubelet-root", "/var/lib/kubelet", "--nsenter", "--call-deadline", "2m", "--rbd-keyring-dir", "/etc/ceph/flexblock",
		"--fs-group=false")
	if code != 0 || !strings.Contains(out, "answer init") {
		t.Fatalf("install exit %d:\n%s", code, out)
	}
	c, err := config.Load(filepath.Join(DriverDir(e.plugin, "rbd"), config.FileName))
	if err != nil {
		t.Fatal(err)
	}
	f := false
	want := config.Config{
		Attach: true, FSGroup: &f, LogFile: e.log, StateDir: e.state, KubeletRoot: "/var/lib/kubelet", Nsenter: true, Deadline: config.Duration(2 * time.Minute),
		Timeouts: map[string]config.Duration{"rbd": config.Duration(2 * time.Minute), "iscsiadm": config.Duration(30 * time.Second)},
		RBD:      config.RBD{DefaultMonitors: "10.0.0.1,10.0.0.2", Keyring: "/etc/ceph/ceph.client.k8s.keyring", User: "k8s", KeyringDirs: []string{"/etc/ceph/flexblock"}},
		ISCSI:    config.ISCSI{CredentialsFile: "/etc/flexblock/chap.json", DeviceTimeout: c.ISCSI.DeviceTimeout, RecordsDir: "/var/lib/k8s-flexblock/iscsi"},
	}
	c.SELinuxRelabel, c.LogMaxBytes, c.DefaultFSType = nil, 0, ""
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("config\n got %+v\nwant %+v", *c, want)
	}

	if out, code := run(nil, "install", "--once", "--plugin-dir", e.plugin, "--timeout", "rbd"); code == 0 || !strings.Contains(out, "TOOL=DURATION") {
		t.Errorf("bad --timeout: exit %d\n%s", code, out)
	}
	if err := (state.Store{Dir: e.state}).Save(&state.Record{Backend: "iscsi", ID: "iqn-lun-0", Mode: state.ModeDevice}); err != nil {
		t.Fatal(err)
	}
	if out, code := run(nil, "uninstall", "--plugin-dir", e.plugin, "--state-dir", e.state); code == 0 || !strings.Contains(out, "volume iqn-lun-0 still mounted on this node") {
		t.Errorf("uninstall with a volume: exit %d\n%s", code, out)
	}
	if out, code := run(nil, "uninstall", "--plugin-dir", e.plugin, "--state-dir", e.state, "--force"); code != 0 || !strings.Contains(out, "uninstalled") {
		t.Errorf("uninstall --force: exit %d\n%s", code, out)
	}
}

func TestUninstallMustExist(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "not-mounted")
	if _, err := Uninstall(UninstallOptions{PluginDir: missing, MustExist: true}); err == nil || !strings.Contains(err.Error(), "hostPath") {
		t.Fatalf("want a hostPath hint, got %v", err)
	}
	if _, err := Uninstall(UninstallOptions{PluginDir: missing}); err != nil {
		t.Fatalf("nothing installed, nothing to do: %v", err)
	}
}
