package rbd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/flexblock/flexblock/driver/volume"
)

// staleKeyAge: a key file older than this was left by a driver that was
// killed before its deferred removal; no call lives that long.
const staleKeyAge = 30 * time.Minute

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

// writeKey writes key to a new 0600 file in dir.
func writeKey(dir, key string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("key dir: %w", err)
	}
	removeStaleKeys(dir)
	f, err := os.CreateTemp(dir, "key-*") // created 0600
	if err != nil {
		return "", fmt.Errorf("key file: %w", err)
	}
	err = f.Chmod(0o600) // whatever the umask did
	if err == nil {
		_, err = f.WriteString(key)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("key file: %w", err)
	}
	return f.Name(), nil
}

func removeStaleKeys(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "key-") {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleKeyAge {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
