package rbd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/logging"
	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/state"
	"github.com/flexblock/flexblock/driver/volume"
)

// authVolume is a parsed volume with a strict scripted runner: any tool
// call it was not told about fails the test's expectations.
func authVolume(t *testing.T) (*Volume, *volume.Env, *runner.Script) {
	t.Helper()
	cfg, err := config.Load(filepath.Join(t.TempDir(), "none"))
	if err != nil {
		t.Fatal(err)
	}
	script := &runner.Script{Strict: true}
	env := &volume.Env{Config: cfg, Run: script, Mask: &logging.Masker{}, Log: logging.New(&bytes.Buffer{}), Layout: state.Layout{Dir: t.TempDir()}}
	v := &Volume{Monitors: "m1:6789", Pool: "rbd", Image: "i", User: "kube", cfg: cfg, b: &Backend{}}
	return v, env, script
}

func credOf(args []string) string { return args[len(args)-1] }

// The Secret's key goes to a new 0600 file in a 0700 dir, named for the
// process that holds it, and is gone when the call is done.
func TestKeyFileIsPrivateAndNamedForItsOwner(t *testing.T) {
	v, env, _ := authVolume(t)
	v.Key = "AQBm2gNrjMYiAxAAMe4LIOgL/nsS1N3rqZsrug=="
	args, done, err := v.auth(env, false)
	if err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(credOf(args), "--keyfile=")
	if filepath.Dir(path) != env.Layout.Keys() || !strings.HasPrefix(filepath.Base(path), "key-"+strconv.Itoa(os.Getpid())+"-") {
		t.Fatalf("key file %s", path)
	}
	st, err := os.Lstat(path)
	if err != nil || st.Mode() != 0o600 {
		t.Fatalf("key file mode %v %v", st.Mode(), err)
	}
	if b, _ := os.ReadFile(path); string(b) != v.Key {
		t.Fatalf("content %q", b)
	}
	if dst, _ := os.Lstat(env.Layout.Keys()); dst.Mode().Perm() != 0o700 {
		t.Fatalf("key dir mode %v", dst.Mode())
	}
	// A sweep during the call leaves a live call's key alone.
	if err := SweepKeys(env.Layout); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("sweep removed a live key: %v", err)
	}
	done()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("key file left: %v", err)
	}
}

// A key dir that is a symlink (planted to send the key elsewhere) is
// refused, and nothing is written through it.
func TestKeyDirSymlinkRefused(t *testing.T) {
	v, env, _ := authVolume(t)
	v.Key = "AQBm2gNrjMYiAxAAMe4LIOgL/nsS1N3rqZsrug=="
	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, env.Layout.Keys()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.auth(env, false); err == nil || !errors.Is(err, errkind.Unsafe) {
		t.Fatalf("err = %v", err)
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Fatalf("written through the link: %v", ents)
	}
}

// deadPid is the pid of a process that has exited and been reaped.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if syscall.Kill(pid, 0) == nil {
		t.Skip("pid reused already")
	}
	return pid
}

// Keys of a SIGKILLed call are removed at the next call's sweep, whatever
// their age; a live process's keys stay; a reused pid is told apart by
// the process's start time.
func TestSweepRemovesKeysOfDeadCalls(t *testing.T) {
	layout := state.Layout{Dir: t.TempDir()}
	dir := layout.Keys()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	own, err := startTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{ // name: must survive
		"key-" + strconv.Itoa(deadPid(t)) + "-" + own + "-a1":  false,
		"key-" + strconv.Itoa(os.Getpid()) + "-" + own + "-b2": true,
		"key-" + strconv.Itoa(os.Getpid()) + "-1-c3":           false, // pid reused
		"key-legacyname":     true,  // unknown owner, recent
		"key-legacyname-old": false, // unknown owner, older than any call
		"unrelated":          true,
	}
	for name := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("k"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-staleKeyAge - time.Minute)
	if err := os.Chtimes(filepath.Join(dir, "key-legacyname-old"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := SweepKeys(layout); err != nil {
		t.Fatal(err)
	}
	for name, keep := range files {
		_, err := os.Lstat(filepath.Join(dir, name))
		if keep != (err == nil) {
			t.Errorf("%s: kept=%v, want %v", name, err == nil, keep)
		}
	}
	// No keys dir yet: nothing to do, no error.
	if err := SweepKeys(state.Layout{Dir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
}

// keyringDir makes an allowed keyring dir holding a real keyring file.
func keyringDir(t *testing.T, v *Volume) (dir, file string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "ceph")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, "ceph.client.kube.keyring")
	if err := os.WriteFile(file, []byte("[client.kube]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v.cfg.RBD.KeyringDirs = []string{dir}
	return dir, file
}

func assertKeyringRefused(t *testing.T, v *Volume, env *volume.Env, script *runner.Script, want string) {
	t.Helper()
	_, _, err := v.Acquire(context.Background(), env, false)
	var oe *options.Error
	if err == nil || !errors.As(err, &oe) || oe.Field != "keyring" || errkind.Of(err) != errkind.Invalid || !strings.Contains(err.Error(), want) {
		t.Fatalf("keyring %s: err = %v", v.Keyring, err)
	}
	if len(script.Calls) != 0 {
		t.Fatalf("keyring %s: tools ran: %v", v.Keyring, script.Lines())
	}
}

// Without rbd.keyringDirs the option keyring names no file at all: a pod's
// author must not pick a node file for rbd to read (/etc/shadow was).
func TestKeyringOptionNeedsAllowedDirs(t *testing.T) {
	v, env, script := authVolume(t)
	v.Keyring = "/etc/shadow"
	assertKeyringRefused(t, v, env, script, "rbd.keyringDirs")
}

func TestKeyringOptionOnlyDirectlyInsideAllowedDir(t *testing.T) {
	v, env, script := authVolume(t)
	dir, _ := keyringDir(t, v)
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil || os.WriteFile(filepath.Join(sub, "k"), nil, 0o600) != nil {
		t.Fatal("setup")
	}
	if err := os.Symlink("/etc/shadow", filepath.Join(dir, "shadow.keyring")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.keyring"), 0o600); err != nil {
		t.Fatal(err)
	}
	linkedDir := filepath.Join(t.TempDir(), "linked")
	if err := os.Symlink(dir, linkedDir); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/etc/shadow":                        "not directly inside",
		filepath.Join(sub, "k"):              "not directly inside",
		filepath.Join(dir, "shadow.keyring"): "symlink",
		filepath.Join(dir, "fifo.keyring"):   "not a regular file",
		filepath.Join(dir, "missing"):        "does not exist",
		filepath.Join(dir, "sub"):            "not a regular file",
	} {
		v.Keyring = path
		assertKeyringRefused(t, v, env, script, want)
	}
	// An allowed dir reached through a symlink is refused too.
	v.cfg.RBD.KeyringDirs = []string{linkedDir}
	v.Keyring = filepath.Join(linkedDir, "ceph.client.kube.keyring")
	assertKeyringRefused(t, v, env, script, "symlink")
}

func TestKeyringOptionInsideAllowedDirAccepted(t *testing.T) {
	v, env, _ := authVolume(t)
	_, file := keyringDir(t, v)
	v.Keyring = file
	args, done, err := v.auth(env, false)
	if err != nil {
		t.Fatal(err)
	}
	done()
	if credOf(args) != "--keyring="+file || strings.Join(args[:2], " ") != "--id kube" {
		t.Fatalf("args %q", args)
	}
}

// The operator's own rbd.keyring is configuration, not a pod's choice: it
// needs no keyringDirs.
func TestConfigKeyringNeedsNoAllowedDirs(t *testing.T) {
	v, env, _ := authVolume(t)
	v.cfg.RBD.Keyring = "/etc/ceph/node.keyring"
	args, _, err := v.auth(env, true)
	if err != nil || credOf(args) != "--keyring=/etc/ceph/node.keyring" {
		t.Fatalf("%q %v", args, err)
	}
}
