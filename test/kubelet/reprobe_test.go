package kubelet

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
)

// TestReprobeAfterReplace: the installer replaces the driver executable
// while kubelet runs. kubelet's prober sees the rename (inotify), re-runs
// init and loads the new plugin; every call kubelet makes meanwhile
// succeeds (no moment where the executable is missing, partial or busy);
// an install that changes nothing causes no reload; and a volume mounted by
// the old executable is unmounted by the new one.
func TestReprobeAfterReplace(t *testing.T) {
	scenario(t)
	c := config(t)
	k := newKubelet(t, installOptions{secrets: []*v1.Secret{newSecret("app", "creds", v1.SecretType(c.driverName()), c.secret)}})
	name, exe := c.driverName(), k.driverExe()

	// "v2": the same program with other bytes (an ELF file runs the same
	// with bytes appended), so the installer must replace it. Written
	// before kubelet's calls start: a file open for writing while this
	// process forks would make exec fail with ETXTBSY.
	v1bin := driverBinary(t)
	b, err := os.ReadFile(v1bin)
	if err != nil {
		t.Fatal(err)
	}
	v2bin := filepath.Join(k.base, "flexblock-v2")
	if err := os.WriteFile(v2bin, append(b, "\nflexblock conformance v2\n"...), 0o755); err != nil {
		t.Fatal(err)
	}

	// A volume in use across the replacements.
	vol := k.newVolume()
	pod := newPod("app", "long-running")
	dir := k.podDir(pod, "data")
	if _, err := k.setUp(k.inlineSpec("data", vol, "creds", false), pod, nil); err != nil {
		t.Fatalf("SetUp: %v", err)
	}
	content := writeData(t, dir, "across-upgrade.txt")

	// kubelet keeps working while the installer runs: each round looks
	// the plugin up (which re-probes on pending events, as kubelet's
	// volume manager does) and tears down a leftover, unmounted pod dir,
	// which execs the installed driver's unmount.
	var calls, failures atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		uid := uuid.NewUUID()
		probeDir := filepath.Join(k.root, "pods", string(uid), "volumes", "flexblock~"+c.backend, "busy")
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := os.MkdirAll(probeDir, 0o750); err != nil {
				firstErr.CompareAndSwap(nil, err)
				failures.Add(1)
				return
			}
			err := k.tearDown("busy", uid)
			calls.Add(1)
			if err != nil {
				failures.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Errorf("call %d: %w", calls.Load(), err))
			}
		}
	}()

	initsBefore := len(k.exec.of(exe, "init"))
	for i, src := range []string{v2bin, v1bin, v2bin} {
		before, err := k.mgr.FindPluginByName(name)
		if err != nil {
			t.Fatal(err)
		}
		startCalls := calls.Load()
		out := k.install(v1bin, src)
		if !strings.Contains(out, "replaced  "+exe) {
			t.Errorf("install %d did not replace %s:\n%s", i+1, exe, out)
		}
		reloaded := waitFor(10*time.Second, func() bool {
			p, err := k.mgr.FindPluginByName(name)
			return err == nil && p != before
		})
		if !reloaded {
			t.Errorf("install %d: kubelet did not reload %s within 10s", i+1, name)
		}
		got, _ := os.ReadFile(exe)
		want, _ := os.ReadFile(src)
		if !bytes.Equal(got, want) {
			t.Errorf("install %d: %s is not the new executable", i+1, exe)
		}
		t.Logf("install %d (%s): %d kubelet calls ran meanwhile", i+1, filepath.Base(src), calls.Load()-startCalls)
	}
	if inits := len(k.exec.of(exe, "init")); inits < initsBefore+3 {
		t.Errorf("init ran %d times during 3 replacements, want at least 3", inits-initsBefore)
	}

	// The same install again changes no file: no event, no reload.
	cur, _ := k.mgr.FindPluginByName(name)
	initsNow := len(k.exec.of(exe, "init"))
	if out := k.install(v1bin, v2bin); strings.Contains(out, "installer: replaced ") || strings.Contains(out, "installer: installed ") {
		t.Errorf("a repeated install rewrote files:\n%s", out)
	}
	time.Sleep(500 * time.Millisecond)
	if p, _ := k.mgr.FindPluginByName(name); p != cur {
		t.Errorf("kubelet reloaded the plugin after an install that changed nothing")
	}
	if n := len(k.exec.of(exe, "init")) - initsNow; n != 0 {
		t.Errorf("init ran %d times after an install that changed nothing", n)
	}

	// Let kubelet's calls run for a while longer, then stop them.
	waitFor(5*time.Second, func() bool { return calls.Load() >= 30 })
	close(stop)
	wg.Wait()
	t.Logf("%d kubelet calls to the driver during the replacements, %d failed", calls.Load(), failures.Load())
	if failures.Load() > 0 {
		t.Errorf("%d of kubelet's %d calls failed while the driver was replaced; first: %v", failures.Load(), calls.Load(), firstErr.Load())
	}
	if calls.Load() < 10 {
		t.Errorf("only %d kubelet calls overlapped the replacements", calls.Load())
	}

	// The new executable unmounts what the old one mounted.
	readData(t, dir, "across-upgrade.txt", content)
	if err := k.tearDown("data", pod.UID); err != nil {
		t.Errorf("TearDown by the new executable: %v", err)
	}
	k.checkGone(dir)
	k.checkReleased(vol, 1)
}
