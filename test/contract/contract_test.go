// Contract tests: the real binary, exec'd as kubelet execs it, must answer
// every call and every bad input with exactly one JSON object on stdout,
// nothing on stderr and exit status 0, and must run nothing for bad input.
package contract

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flexblock/flexblock/test/testkit"
)

var bin string

func TestMain(m *testing.M) { testkit.Main(m, &bin, "flexblocktest") }

func TestInitReportsAllCapabilitiesFromConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  map[string]any
		want map[string]bool
	}{
		{nil, map[string]bool{"attach": false, "selinuxRelabel": true, "supportsMetrics": true, "fsGroup": true, "requiresFSResize": true}},
		{map[string]any{"attach": true, "fsGroup": false, "selinuxRelabel": false}, map[string]bool{"attach": true, "selinuxRelabel": false, "supportsMetrics": true, "fsGroup": false, "requiresFSResize": true}},
	} {
		for _, backend := range []string{"rbd", "iscsi"} {
			p := testkit.Install(t, bin, backend, tc.cfg)
			a := p.Call(t, "init")
			if a.Status != "Success" {
				t.Fatalf("%s init: %+v", backend, a)
			}
			if len(a.Capabilities) != 5 {
				t.Errorf("%s init sent %d capabilities, want all 5: %v", backend, len(a.Capabilities), a.Capabilities)
			}
			for k, v := range tc.want {
				if got, ok := a.Capabilities[k]; !ok || got != v {
					t.Errorf("%s capability %s = %v (present %v), want %v", backend, k, got, ok, v)
				}
			}
			// init writes nothing: no log, no state dir.
			for _, path := range []string{p.Log, p.State} {
				if _, err := os.Stat(path); err == nil {
					t.Errorf("init created %s", path)
				}
			}
		}
	}
}

func TestBadConfigIsAFailureNamingFileAndField(t *testing.T) {
	p := testkit.Install(t, bin, "rbd", map[string]any{"timeouts": map[string]any{"rbd": "forever"}})
	a := p.Call(t, "init")
	if a.Status != "Failure" || !strings.Contains(a.Message, "flexblock.json") || !strings.Contains(a.Message, "forever") {
		t.Fatalf("bad config: %+v", a)
	}
}

func TestEveryCallAnswersOneObject(t *testing.T) {
	p := testkit.Install(t, bin, "loop", nil)
	pod := p.PodDir("uid-1", "vol")
	dmp := filepath.Join(p.Kubelet, "plugins/kubernetes.io/flexvolume/flexblock/loop/mounts/vol")
	opts := `{"device":"/dev/loop999"}`
	cases := []struct {
		args   []string
		status string
		msg    string
	}{
		{[]string{"getvolumename", opts}, "Not supported", ""},
		{[]string{"expandvolume", opts, dmp, "2", "1"}, "Not supported", ""},
		{[]string{"frobnicate"}, "Not supported", "frobnicate"},
		{[]string{}, "Failure", "usage"},
		{[]string{"isattached", opts, "node1"}, "Success", ""},
		{[]string{"detach", "vol", "node1"}, "Success", ""},
		{[]string{"attach", opts, "node1"}, "Success", ""},
		{[]string{"unmount", pod}, "Success", ""},
		{[]string{"unmountdevice", dmp}, "Success", ""},
		{[]string{"mount", pod}, "Failure", "usage: mount <podVolumeDir> <json>"},
		{[]string{"mount", pod, opts, "extra"}, "Failure", "takes 2 argument(s), got 3"},
		{[]string{"attach", opts}, "Failure", "usage: attach <json> <nodeName>"},
		{[]string{"waitforattach", opts}, "Failure", "usage: waitforattach <devicePath> <json>"},
		{[]string{"mountdevice", dmp, "/dev/x"}, "Failure", "usage: mountdevice"},
		{[]string{"unmountdevice"}, "Failure", "usage: unmountdevice"},
		{[]string{"expandfs", opts, "/dev/x", pod, "10", "x"}, "Failure", "byte counts"},
		{[]string{"mount", pod, "{not json"}, "Failure", "not a JSON object"},
		{[]string{"mount", pod, `{"device":1}`}, "Failure", `"device" must be a string`},
		{[]string{"mount", pod, `{"device":"/dev/loop1"} {}`}, "Failure", "trailing"},
		{[]string{"mount", "/etc", opts}, "Failure", "pod volume dir"},
		{[]string{"mount", pod + "/../../x", opts}, "Failure", "clean"},
		{[]string{"mount", pod, `{"device":"a;rm -rf /"}`}, "Failure", `option "device"`},
		{[]string{"mount", pod, `{"device":"/dev/loop1","fsType":"ntfs"}`}, "Failure", "fsType"},
		{[]string{"mount", pod, `{"device":"/dev/loop1","mountOptions":"ro,bind"}`}, "Failure", "mountOptions"},
		{[]string{"mount", pod, `{"device":"/dev/loop1","kubernetes.io/secret/key":"%%%"}`}, "Failure", "base64"},
		{[]string{"mount", pod, `{"device":"/dev/loop1","imgae":"x"}`}, "Failure", "not a known option"},
	}
	for _, tc := range cases {
		a := p.Call(t, tc.args...)
		if a.Status != tc.status || !strings.Contains(a.Message, tc.msg) {
			t.Errorf("%q: got %s %q, want %s containing %q", tc.args, a.Status, a.Message, tc.status, tc.msg)
		}
	}
	assertNothingRan(t, p)
	if _, err := os.Stat(pod); err == nil {
		t.Errorf("bad input created the pod dir")
	}
}

// assertNothingRan checks the driver log has no exec line: bad input must
// be refused before any external program runs.
func assertNothingRan(t *testing.T, p *testkit.Plugin) {
	t.Helper()
	b, _ := os.ReadFile(p.Log)
	if strings.Contains(string(b), `"msg":"exec"`) {
		t.Errorf("an external command ran for bad input:\n%s", b)
	}
}

func TestKubeletRootIsEnforced(t *testing.T) {
	p := testkit.Install(t, bin, "loop", nil)
	other := filepath.Join(t.TempDir(), "pods/u/volumes/flexblock~loop/v")
	a := p.Call(t, "mount", other, `{"device":"/dev/loop1"}`)
	if a.Status != "Failure" || !strings.Contains(a.Message, "outside the kubelet root") {
		t.Fatalf("got %+v", a)
	}
}

func TestSecretsNeverReachLogOrAnswer(t *testing.T) {
	p := testkit.Install(t, bin, "loop", nil)
	secret := "c3VwZXItc2VjcmV0LWNlcGh4LWtleQ=="                                  // base64 as kubelet sends it
	opts := `{"device":"bad device","kubernetes.io/secret/key":"` + secret + `"}` // fails validation
	a := p.Call(t, "mount", p.PodDir("u", "v"), opts)
	if a.Status != "Failure" {
		t.Fatalf("got %+v", a)
	}
	b, _ := os.ReadFile(p.Log)
	for _, s := range []string{secret, "super-secret-cephx-key"} {
		if strings.Contains(string(b), s) || strings.Contains(a.Stdout, s) {
			t.Errorf("secret %q leaked", s)
		}
	}
}

func TestProductionBinaryHasNoTestBackend(t *testing.T) {
	prod, err := testkit.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := testkit.Install(t, prod, "loop", nil)
	a := p.Run("init")
	// Not a driver personality: the CLI answers (usage on stderr or an error).
	if a.Status == "Success" {
		t.Fatalf("production binary accepted the loop test backend: %+v", a)
	}
}
