package rbd

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/safepath"
	"github.com/flexblock/flexblock/driver/state"
	"github.com/flexblock/flexblock/driver/volume"
)

// staleKeyAge: a key file older than this belongs to no running call
// (callDeadline is at most 30 min, and a key is younger than its call).
const staleKeyAge = 31 * time.Minute

// auth returns the credential and connection arguments for rbd. A Secret's
// key is written to a 0600 file for --keyfile (never --key: argv is world
// readable); done removes it. --conf=/dev/null keeps a node's own
// ceph.conf (other monitors, other keyrings) out of the picture.
func (v *Volume) auth(env *volume.Env, nodeLocal bool) ([]string, func(), error) {
	user := v.User
	var cred string
	done := func() {}
	switch {
	case v.Key != "":
		f, err := writeKey(env.Layout.Keys(), v.Key)
		if err != nil {
			return nil, nil, err
		}
		cred, done = "--keyfile="+f, func() { _ = os.Remove(f) }
	case v.Keyring != "":
		if err := allowedKeyring(v.Keyring, v.cfg.RBD.KeyringDirs); err != nil {
			return nil, nil, err
		}
		cred = "--keyring=" + v.Keyring
	case v.cfg.RBD.Keyring != "":
		// The node keyring holds the key of the configured user.
		if v.cfg.RBD.User != "" {
			user = v.cfg.RBD.User
		}
		cred = "--keyring=" + v.cfg.RBD.Keyring
	default:
		how := "give a Secret with the cephx key under \"key\" (secretRef), set the option keyring, or set rbd.keyring in the driver config"
		if nodeLocal {
			how = "this call gets no Secret from kubelet (attach mode, expandfs): set rbd.keyring (and rbd.user) in the driver config (flexblock install --rbd-keyring)"
		}
		return nil, nil, fmt.Errorf("no Ceph credentials for %s: %s", v.ImageSpec(), how)
	}
	return []string{"--id", user, "-m", v.Monitors, "--conf=/dev/null", cred}, done, nil
}

// allowedKeyring checks the volume option keyring: a pod's author names
// a node file for rbd to read, so it must be a regular file directly
// inside a directory the operator allows (rbd.keyringDirs), reached
// without following any symlink (a link in an allowed dir could point at
// /etc/shadow). The operator's own rbd.keyring needs no such check.
func allowedKeyring(path string, dirs []string) error {
	if len(dirs) == 0 {
		return options.Errorf("keyring", "set rbd.keyringDirs in the driver config to the directories keyrings may be taken from, or give the key in a Secret (secretRef)", "names a node file, and this node allows none (rbd.keyringDirs is empty)")
	}
	if !slices.Contains(dirs, filepath.Dir(path)) {
		return options.Errorf("keyring", "put the keyring directly inside one of "+strings.Join(dirs, ", ")+" (rbd.keyringDirs), or give the key in a Secret", "%s is not directly inside an allowed directory", path)
	}
	f, err := safepath.Open("/", path, unix.O_PATH, 0)
	if err != nil {
		return options.Errorf("keyring", "give a regular file reached without any symlink", "%s: %v", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	switch {
	case err != nil:
		return options.Errorf("keyring", "give a readable keyring file", "%s: %v", path, err)
	case st.Mode()&fs.ModeSymlink != 0:
		return options.Errorf("keyring", "give the keyring file itself, not a symlink to it", "%s is a symlink", path)
	case !st.Mode().IsRegular():
		return options.Errorf("keyring", "give a regular keyring file", "%s is not a regular file", path)
	}
	return nil
}

// Key files are named key-<pid>-<start>-<random>: the process that holds
// one (its pid and its start time, so a reused pid is told apart), which
// lets every call sweep the keys of calls that were killed.
const keyPrefix = "key-"

// writeKey writes key to a new 0600 file in dir, a 0700 directory of ours
// (a symlink or a foreign dir is refused). O_EXCL|O_NOFOLLOW: the file is
// new, never something planted at its name.
func writeKey(dir, key string) (string, error) {
	if err := runner.PrivateDir(dir); err != nil {
		return "", fmt.Errorf("key dir: %w", err)
	}
	_ = sweepKeys(dir) // also here, for a caller that does not sweep per call
	start, err := startTime(os.Getpid())
	if err != nil {
		start = "0" // unknown: the sweep then trusts the pid alone
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	path := filepath.Join(dir, fmt.Sprintf("%s%d-%s-%x", keyPrefix, os.Getpid(), start, rnd))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return "", fmt.Errorf("key file: %w", err)
	}
	_, err = f.WriteString(key)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("key file: %w", err)
	}
	return path, nil
}

// SweepKeys removes the key files of calls that are gone (killed before
// their deferred removal): their process has exited, or its pid now
// belongs to a later process, or the file is older than any call. Call it
// once per driver call; a failed removal is returned for the log only.
func SweepKeys(layout state.Layout) error { return sweepKeys(layout.Keys()) }

func sweepKeys(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("sweep key files: %w", err)
	}
	var errs []error
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), keyPrefix) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil || !stale(e.Name(), fi.ModTime()) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stale tells whether the key file name, written at mod, has no live owner.
func stale(name string, mod time.Time) bool {
	if time.Since(mod) > staleKeyAge {
		return true
	}
	f := strings.Split(strings.TrimPrefix(name, keyPrefix), "-")
	if len(f) != 3 {
		return false // not ours to judge: only its age counts
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return false
	}
	if f[1] == "0" {
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	}
	start, err := startTime(pid)
	return err != nil || start != f[1]
}

// startTime is a process's start time (field 22 of /proc/PID/stat, in
// clock ticks since boot): with the pid, it names one process for good.
func startTime(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	// The command name (field 2) may hold spaces and ')': skip past it.
	rest := string(b[bytes.LastIndexByte(b, ')')+1:])
	f := strings.Fields(rest)
	if len(f) < 20 {
		return "", fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return f[19], nil // fields from 3 on: 22 is f[19]
}
