package app

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/loopback"
	"github.com/flexblock/flexblock/driver/volume"
)

func TestPersonality(t *testing.T) {
	all := []volume.Backend{loopback.New()}
	cases := map[string]bool{
		"/usr/libexec/kubernetes/kubelet-plugins/volume/exec/flexblock~loop/loop": true,
		"flexblock~loop/loop":      true,
		"/usr/local/bin/flexblock": false,
		"/x/flexblock~rbd/loop":    false,
		"/x/flexblock~nfs/nfs":     false,
		"/x/loop":                  false,
	}
	for argv0, want := range cases {
		b, ok := Personality(argv0, all)
		if ok != want || (ok && b.Name() != "loop") {
			t.Errorf("%s: %v %v", argv0, b, ok)
		}
	}
}

type answer struct {
	Status, Message string
	Capabilities    map[string]bool
}

func run(t *testing.T, cfg string, args ...string) (answer, string) {
	t.Helper()
	var out bytes.Buffer
	Answer(Call{Backend: loopback.New(), ConfigPath: cfg, Args: args}, &out)
	var a answer
	if strings.Count(out.String(), "\n") != 1 || json.Unmarshal(out.Bytes(), &a) != nil {
		t.Fatalf("not one JSON object: %q", out.String())
	}
	return a, out.String()
}

func writeConfig(t *testing.T, c map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	b, _ := json.Marshal(c)
	p := filepath.Join(dir, config.FileName)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// init answers the capabilities and writes nothing (no log, no state).
func TestInitWritesNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, map[string]any{"logFile": dir + "/log/f.log", "stateDir": dir + "/state", "fsGroup": false})
	a, _ := run(t, cfg, "init")
	if a.Status != "Success" || a.Capabilities["fsGroup"] || !a.Capabilities["requiresFSResize"] {
		t.Fatalf("%+v", a)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("init wrote %v", ents)
	}
}

// A broken config is a Failure naming the field; a secret in a failing
// call's message is masked; every call is logged with its outcome.
func TestAnswersAndLog(t *testing.T) {
	a, _ := run(t, writeConfig(t, map[string]any{"callDeadline": "1s"}), "init")
	if a.Status != "Failure" || !strings.Contains(a.Message, "callDeadline") {
		t.Fatalf("bad config: %+v", a)
	}
	dir := t.TempDir()
	cfg := writeConfig(t, map[string]any{"logFile": dir + "/f.log", "stateDir": dir + "/state", "kubeletRoot": dir + "/k"})
	pod := dir + "/k/pods/u/volumes/flexblock~loop/v"
	a, raw := run(t, cfg, "mount", pod, `{"device":"hunter2-pass","kubernetes.io/secret/key":"aHVudGVyMi1wYXNz"}`)
	if a.Status != "Failure" || !strings.Contains(a.Message, `"device"`) || strings.Contains(raw, "hunter2-pass") {
		t.Fatalf("secret in answer or wrong failure: %s", raw)
	}
	log, _ := os.ReadFile(dir + "/f.log")
	if !strings.Contains(string(log), `"msg":"call done"`) || strings.Contains(string(log), "hunter2-pass") {
		t.Fatalf("log: %s", log)
	}
	if a, _ := run(t, cfg, "bogus"); a.Status != "Not supported" {
		t.Fatalf("unknown call: %+v", a)
	}
}
