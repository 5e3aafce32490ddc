package kubelet

import (
	"encoding/json"
	"errors"
	"os"
	osexec "os/exec"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/volume/flexvolume"
)

// strayLine is what breakDriver's wrapper writes to stderr: a log line in
// klog's format, the most likely way a driver breaks.
const strayLine = "W1123 06:00:00.000000    4242 flexblock.go:1] a stray log line on stderr"

// kubeletParseError is the error kubelet's driver-call parser
// (handleCmdResponse: json.Unmarshal of the combined output) reports for
// such a line.
const kubeletParseError = "invalid character 'W' looking for beginning of value"

// TestBrokenDriverFailsWithKubeletParseError keeps proven that this suite
// catches a driver that writes anything besides its one JSON answer:
// kubelet reads stdout and stderr together, so one stray line on stderr
// makes its own parser fail. (FLEXBLOCK_CONFORMANCE_WRAP_STDERR=1 breaks
// the driver this way in every scenario, to watch the whole suite fail.)
func TestBrokenDriverFailsWithKubeletParseError(t *testing.T) {
	scenario(t)
	c := config(t)
	k := newKubelet(t, installOptions{noStderrWrap: true, expectBreakage: true,
		secrets: []*v1.Secret{newSecret("app", "creds", v1.SecretType(c.driverName()), c.secret)}})
	name := c.driverName()
	vol := k.newVolume()
	spec := k.inlineSpec("data", vol, "creds", false)

	// The intact driver is loaded, and kubelet already knows getvolumename
	// is not supported (a previous pod's lookup), so the next pod's first
	// call is mount.
	p, err := k.mgr.FindPluginBySpec(spec)
	if err != nil {
		t.Fatalf("the intact driver did not load: %v", err)
	}
	if _, err := p.GetVolumeName(spec); err != nil {
		t.Fatal(err)
	}

	k.breakDriver()

	// 1. The running kubelet re-probes on the rename: init's answer no
	// longer parses, and the prober says so.
	if !waitFor(10*time.Second, func() bool {
		_, _ = k.mgr.FindPluginByName(name)
		return len(k.prober.errors()) > 0
	}) {
		t.Fatalf("kubelet's prober reported no error after the driver was broken")
	}
	perr := k.prober.errors()[0].Error()
	if !strings.Contains(perr, "error creating Flexvolume plugin from directory flexblock~"+c.backend) || !strings.Contains(perr, kubeletParseError) {
		t.Errorf("prober error %q, want kubelet's parse error %q for flexblock~%s", perr, kubeletParseError, c.backend)
	}
	t.Logf("kubelet's prober: %s", perr)

	// 2. A pod's mount through the plugin kubelet still has fails with the
	// same parse error, although the driver did mount: kubelet records a
	// failure and will never call unmount for it.
	pod := newPod("app", "broken")
	dir := k.podDir(pod, "data")
	_, err = k.setUp(spec, pod, nil)
	var syntax *json.SyntaxError
	if err == nil || !errors.As(err, &syntax) || err.Error() != kubeletParseError {
		t.Errorf("SetUp through the broken driver: %v, want kubelet's parse error %q", err, kubeletParseError)
	} else {
		t.Logf("kubelet's SetUp: %v", err)
	}
	if mountAt(t, dir) == nil {
		t.Errorf("the wrapped driver did not mount %s: the stray line, not the driver, should be the only fault", dir)
	}
	// Clean up as an operator would, with the intact driver.
	out, err := osexec.Command(k.intactDriver(), "unmount", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"status":"Success"`) {
		t.Errorf("intact driver unmount %s: %v %s", dir, err, out)
	}
	if err := os.Remove(dir); err != nil {
		t.Errorf("remove %s: %v", dir, err)
	}
	k.checkReleased(vol, 1)

	// 3. A kubelet starting now does not load the driver at all.
	fresh := &recProber{inner: flexvolume.GetDynamicPluginProber(k.pluginDir, newRecorder())}
	if err := fresh.Init(); err != nil {
		t.Fatal(err)
	}
	events, err := fresh.Probe()
	if err == nil || !strings.Contains(err.Error(), kubeletParseError) {
		t.Errorf("a fresh probe: %v, want kubelet's parse error", err)
	}
	for _, e := range events {
		if e.PluginName == name {
			t.Errorf("a fresh kubelet loaded the broken %s", name)
		}
	}
}
