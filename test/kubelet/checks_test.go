package kubelet

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// checkMounted asserts that dir is a mount of the volume's filesystem:
// kubelet's path, the right fsType, the volume's block device, ro or rw.
func (k *kubelet) checkMounted(dir string, v *testVolume, ro bool) mountEntry {
	k.t.Helper()
	m := mountAt(k.t, dir)
	if m == nil {
		k.t.Fatalf("%s is not a mount point after a successful call", dir)
	}
	if m.fstype != v.fsType {
		k.t.Errorf("%s: fstype %s, want %s", m, m.fstype, v.fsType)
	}
	if v.device != "" {
		maj, min := devNumbers(k.t, v.device)
		if m.major != maj || m.minor != min {
			k.t.Errorf("%s: device %d:%d, want %s (%d:%d)", m, m.major, m.minor, v.device, maj, min)
		}
	} else if m.major == 0 {
		k.t.Errorf("%s: not a block device's filesystem", m)
	}
	if m.readOnly() != ro {
		k.t.Errorf("%s: read-only %v, want %v", m, m.readOnly(), ro)
	}
	return *m
}

// checkGone asserts kubelet's pod dir is unmounted and removed.
func (k *kubelet) checkGone(dir string) {
	k.t.Helper()
	if m := mountAt(k.t, dir); m != nil {
		k.t.Errorf("%s still mounted: %s", dir, m)
	}
	if exists(dir) {
		k.t.Errorf("%s still exists after TearDown (kubelet removes it; a leftover file inside makes that fail)", dir)
	}
}

// checkReleased asserts the loop backend released the volume exactly n
// times in all.
func (k *kubelet) checkReleased(v *testVolume, n int) {
	k.t.Helper()
	if v.id == "" {
		return // not the loop backend: nothing to read
	}
	got := 0
	for _, id := range k.releases() {
		if id == v.id {
			got++
		}
	}
	if got != n {
		k.t.Errorf("loop-releases.log has %s %d times, want %d (all: %v)", v.id, got, n, k.releases())
	}
}

// writeData writes a file through the pod's dir and syncs it.
func writeData(t *testing.T, dir, name string) string {
	t.Helper()
	content := "written through " + dir + " " + randomHex(8) + "\n"
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatalf("write through the pod dir: %v", err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return content
}

func readData(t *testing.T, dir, name, want string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Errorf("read back through %s: %v", dir, err)
		return
	}
	if string(b) != want {
		t.Errorf("read back %q through %s, want %q", b, dir, want)
	}
}

// checkOwnership asserts what kubelet's fsGroup handling did to the
// volume's root: with capability fsGroup, group fsGroup and setgid.
func checkOwnership(t *testing.T, dir string, fsGroup int64, applied bool) {
	t.Helper()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	gid := int64(st.Sys().(*syscall.Stat_t).Gid)
	setgid := st.Mode()&os.ModeSetgid != 0
	if applied && (gid != fsGroup || !setgid) {
		t.Errorf("%s: gid %d setgid %v, want gid %d and setgid (kubelet applies fsGroup when the driver's capability fsGroup is true)", dir, gid, setgid, fsGroup)
	}
	// (Only the gid: on a volume shared between scenarios, rbd or iscsi in
	// the VM, an earlier pod's fsGroup may have set the setgid bit.)
	if !applied && gid == fsGroup {
		t.Errorf("%s: gid %d: kubelet applied fsGroup %d although the driver's capability fsGroup is false", dir, gid, fsGroup)
	}
}

// optionsOf decodes the options JSON of a recorded call (the last argument
// of mount, the second-to-last of attach and isattached, ...).
func optionsOf(t *testing.T, c driverCall) map[string]string {
	t.Helper()
	for i := len(c.argv) - 1; i >= 2; i-- {
		var o map[string]string
		if json.Unmarshal([]byte(c.argv[i]), &o) == nil {
			return o
		}
	}
	t.Fatalf("no options JSON in %s's argv", c.call())
	return nil
}

// checkSecretPassed asserts kubelet passed exactly the Secret's data as
// kubernetes.io/secret/<key> = base64(value).
func checkSecretPassed(t *testing.T, o map[string]string, data map[string][]byte) {
	t.Helper()
	n := 0
	for k := range o {
		if strings.HasPrefix(k, "kubernetes.io/secret/") {
			n++
		}
	}
	if n != len(data) {
		t.Errorf("kubelet passed %d secret keys, want %d", n, len(data))
	}
	for k, v := range data {
		if got, want := o["kubernetes.io/secret/"+k], base64.StdEncoding.EncodeToString(v); got != want {
			t.Errorf("option kubernetes.io/secret/%s = %q, want base64 of the Secret's value %q", k, got, want)
		}
	}
}

// checkLogClean asserts the driver's log holds none of the secret values,
// plain or base64.
func (k *kubelet) checkLogClean(data map[string][]byte) {
	k.t.Helper()
	b, err := os.ReadFile(k.logFile)
	if err != nil {
		k.t.Errorf("driver log: %v", err)
		return
	}
	for key, v := range data {
		for _, s := range []string{string(v), base64.StdEncoding.EncodeToString(v)} {
			if len(s) >= 6 && strings.Contains(string(b), s) {
				k.t.Errorf("the driver log %s contains the value of secret key %q", k.logFile, key)
			}
		}
	}
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}
