// The hostile input corpus: every case must give exactly one Failure answer
// with a message that names what is wrong, run no external command (the
// scripted runner records every command) and write nothing.
package hostile

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/flexblock/flexblock/driver/app"
	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/flexvol"
	"github.com/flexblock/flexblock/driver/iscsi"
	"github.com/flexblock/flexblock/driver/logging"
	"github.com/flexblock/flexblock/driver/loopback"
	"github.com/flexblock/flexblock/driver/rbd"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/volume"
)

// backends are wired explicitly, as main and the test build do.
var backends = map[string]volume.Backend{"loop": loopback.New(), "rbd": rbd.New(), "iscsi": iscsi.New()}

// valid is a complete, valid option set per backend; each case spoils one
// thing in it, so the Failure is caused by that thing alone.
var valid = map[string]map[string]string{
	"loop": {"device": "/dev/loop7"},
	"rbd": {"monitors": "10.0.0.1:6789", "pool": "kube", "image": "img", "user": "kube",
		"kubernetes.io/secret/key": "QVFCbTJnTnJqTVlpQXhBQU1lNExJT2dML25zUzFOM3JxWnNydWc9PQ=="},
	"iscsi": {"targetPortal": "10.0.0.1:3260", "portals": "10.0.0.2:3260", "iqn": "iqn.2026-11.io.example:storage", "lun": "1",
		"iscsiInterface": "default", "chapAuthSession": "true",
		"kubernetes.io/secret/node.session.auth.username": "dXNlcg==", "kubernetes.io/secret/node.session.auth.password": "c2VjcmV0c2VjcmV0"},
}

// secretKey is the option of each backend's Secret that the base64 garbage
// cases spoil.
var secretKey = map[string]string{
	"loop":  "kubernetes.io/secret/key",
	"rbd":   "kubernetes.io/secret/key",
	"iscsi": "kubernetes.io/secret/node.session.auth.password",
}

// legit lists hostile-looking values that are valid for a key (they are
// checked to be harmless elsewhere): "a,bind" is two host names.
var legit = map[string]bool{"monitors=a,bind": true, "portals=a,bind": true}

// hostileValues break every option: shell metacharacters, traversal,
// control characters, option injection, huge values.
var hostileValues = []string{
	"a;rm -rf /", "$(reboot)", "`id`", "a|b", "a&b", "a>b", "../../etc/passwd", "..", "/etc/../root",
	"-rf", "--help", "a\nb", "a\x00b", "a\tb", "a b", "\x1b[31m", "ä", strings.Repeat("x", 70000),
	"a,bind", "a'b", `a"b`, "a\\b", "*", "~root",
}

type kase struct {
	name string
	args []string
	want string // substring of the Failure message
}

func cases(backend string, root string) []kase {
	pod := filepath.Join(root, "pods/uid-1/volumes/flexblock~"+backend+"/vol")
	dmp := filepath.Join(root, "plugins/kubernetes.io/flexvolume/flexblock/"+backend+"/mounts/vol")
	base := valid[backend]
	js := func(m map[string]string) string { b, _ := json.Marshal(m); return string(b) }
	with := func(k, v string) string {
		m := map[string]string{}
		for a, b := range base {
			m[a] = b
		}
		m[k] = v
		return js(m)
	}
	var out []kase
	keys := []string{"kubernetes.io/fsType", "kubernetes.io/readwrite", "kubernetes.io/mounterArgs.FsGroup", "kubernetes.io/fsGroup", "fsType", "readOnly", "mountOptions", "mkfsOptions"}
	keys = append(keys, sortedKeys(base)...)
	for _, k := range keys {
		for i, v := range hostileValues {
			if legit[k+"="+v] {
				continue // valid there
			}
			out = append(out, kase{fmt.Sprintf("%s=hostile%d", k, i), []string{"mount", pod, with(k, v)}, k})
		}
	}
	for i, v := range []string{"!!!", "YQ", "a b", "\x00"} {
		out = append(out, kase{fmt.Sprintf("secret-garbage-%d", i), []string{"mount", pod, with(secretKey[backend], v)}, secretKey[backend]})
	}
	out = append(out,
		kase{"mkfs -d", []string{"mount", pod, with("mkfsOptions", "-d x")}, "mkfsOptions"},
		kase{"mkfs device", []string{"mount", pod, with("mkfsOptions", "-L /dev/sda")}, "mkfsOptions"},
		kase{"mount bind", []string{"mount", pod, with("mountOptions", "bind")}, "mountOptions"},
		kase{"mount comma smuggle", []string{"mount", pod, with("mountOptions", "noatime,remount")}, "mountOptions"},
		kase{"unknown key", []string{"mount", pod, with("surprise", "x")}, "surprise"},
	)
	out = append(out, fsOptionCases(backend, pod, base)...)
	for i, j := range []string{"", "{", "[]", "null", "1", `"s"`, `{} {}`, `{"a":"b"}x`, "\x00", strings.Repeat("{", 10000)} {
		out = append(out, kase{fmt.Sprintf("malformed-json-%d", i), []string{"mount", pod, j}, "JSON"})
	}
	for i, j := range []string{`{"a":1}`, `{"a":true}`, `{"a":null}`, `{"a":[]}`, `{"a":{}}`, `{"a":1e999}`} {
		out = append(out, kase{fmt.Sprintf("wrong-type-%d", i), []string{"mount", pod, j}, `"a" must be a string`})
	}
	for i, p := range []string{"", "/", "relative", "/etc", pod + "/..", pod + "/../x", filepath.Join(root, "pods/../../etc/volumes/flexblock~"+backend+"/v"),
		filepath.Join(root, "pods/u/volumes/flexblock~"+backend+"/a;b"), filepath.Join(root, "pods/u/volumes/flexblock~other/v"),
		"/tmp/elsewhere/pods/u/volumes/flexblock~" + backend + "/v", pod + "\n", pod + "/"} {
		out = append(out, kase{fmt.Sprintf("bad-pod-dir-%d", i), []string{"mount", p, js(base)}, "pod volume dir"})
		out = append(out, kase{fmt.Sprintf("bad-unmount-dir-%d", i), []string{"unmount", p}, "pod volume dir"})
		out = append(out, kase{fmt.Sprintf("bad-device-mount-path-%d", i), []string{"unmountdevice", p}, "device mount path"})
	}
	for _, a := range [][]string{{"mount"}, {"mount", pod}, {"mount", pod, js(base), "x"}, {"unmount"}, {"unmount", pod, "x"},
		{"attach", js(base)}, {"detach"}, {"waitforattach", js(base)}, {"mountdevice", dmp, js(base)}, {"unmountdevice"},
		{"isattached"}, {"expandfs", js(base)}, {"init", "x"}, {"getvolumename"}} {
		out = append(out, kase{"argc-" + strings.Join(a, "-")[:min(20, len(strings.Join(a, "-")))], a, "usage"})
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestHostileCorpus(t *testing.T) {
	total := 0
	for backend := range valid {
		root := t.TempDir()
		state := t.TempDir()
		cfg, err := config.Load(filepath.Join(t.TempDir(), "none.json"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.StateDir, cfg.KubeletRoot = state, root
		script := &runner.Script{Strict: true}
		mask := &logging.Masker{}
		d := app.NewLifecycle(backends[backend], cfg, script, mask, logging.New(nil))
		for _, c := range cases(backend, root) {
			res := flexvol.Handle(context.Background(), d, c.args, nil)
			total++
			if res.Status != flexvol.StatusFailure || !strings.Contains(res.Message, c.want) {
				t.Errorf("%s/%s: got %s %q, want Failure naming %q", backend, c.name, res.Status, short(res.Message), c.want)
			}
		}
		if n := len(script.Calls); n != 0 {
			t.Errorf("%s: %d external commands ran for hostile input: %q", backend, n, script.Lines())
		}
		assertEmpty(t, root)
		assertEmpty(t, state)
	}
	if !t.Failed() {
		t.Logf("%d hostile inputs tried, all refused before anything ran", total)
	}
	if total < 200 {
		t.Fatalf("corpus has only %d cases", total)
	}
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("hostile input wrote into %s: %v", dir, names)
	}
}

func short(s string) string {
	if len(s) > 160 {
		return s[:160] + "..."
	}
	return s
}
