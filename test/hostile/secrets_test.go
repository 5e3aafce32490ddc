package hostile

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/flexblock/flexblock/driver/app"
	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/flexvol"
	"github.com/flexblock/flexblock/driver/logging"
	"github.com/flexblock/flexblock/driver/runner"
)

// The volume option keyring names a node file for rbd to read: a tenant
// must not reach the node's secrets with it. Refused, with no tool run,
// whether the node allows no keyring dir or one (then only a regular file
// directly inside it, reached without a symlink).
func TestKeyringOptionCannotReachNodeFiles(t *testing.T) {
	allowed := filepath.Join(t.TempDir(), "ceph")
	if err := os.Mkdir(allowed, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, link := range []string{"/etc/shadow", "/root", "/proc/self/environ"} {
		if err := os.Symlink(link, filepath.Join(allowed, filepath.Base(link)+".keyring")); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(allowed, "fifo.keyring"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(allowed, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	nodeFiles := []string{"/etc/shadow", "/etc/passwd", "/root/.ssh/id_rsa", "/proc/self/environ", "/proc/1/environ",
		"/dev/sda", "/dev/zero", "/var/lib/kubelet/pods/other/volumes/kubernetes.io~secret/token/token",
		"/etc/ceph/ceph.client.admin.keyring", "/run/flexblock/keys/key-1-1-00"}
	for _, dirs := range [][]string{nil, {allowed}} {
		paths := nodeFiles
		if dirs != nil {
			paths = append(paths, filepath.Join(allowed, "shadow.keyring"), filepath.Join(allowed, "root.keyring"),
				filepath.Join(allowed, "environ.keyring"), filepath.Join(allowed, "fifo.keyring"), filepath.Join(allowed, "sub"),
				filepath.Join(allowed, "missing.keyring"), filepath.Join(allowed, "sub/x.keyring"))
		}
		for _, p := range paths {
			res, script := mountWithKeyring(t, dirs, p)
			if res.Status != flexvol.StatusFailure || !strings.Contains(res.Message, `"keyring"`) {
				t.Errorf("keyringDirs %v, keyring %s: got %s %q", dirs, p, res.Status, short(res.Message))
			}
			if len(script.Calls) != 0 {
				t.Errorf("keyring %s: tools ran: %q", p, script.Lines())
			}
		}
	}
}

func mountWithKeyring(t *testing.T, dirs []string, keyring string) (flexvol.Result, *runner.Script) {
	t.Helper()
	root := t.TempDir()
	cfg, err := config.Load(filepath.Join(t.TempDir(), "none.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.StateDir, cfg.KubeletRoot, cfg.RBD.KeyringDirs = t.TempDir(), root, dirs
	pod := filepath.Join(root, "pods/uid-1/volumes/flexblock~rbd/vol")
	if err := os.MkdirAll(pod, 0o750); err != nil {
		t.Fatal(err)
	}
	opts := map[string]string{"monitors": "10.0.0.1:6789", "pool": "kube", "image": "img", "user": "kube", "keyring": keyring}
	b, _ := json.Marshal(opts)
	script := &runner.Script{Strict: true}
	d := app.NewLifecycle(backends["rbd"], cfg, script, &logging.Masker{}, logging.New(nil))
	return flexvol.Handle(context.Background(), d, []string{"mount", pod, string(b)}, nil), script
}
