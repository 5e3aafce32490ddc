package rbd

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flexblock/flexblock/driver/blockdev"
	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/logging"
	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/state"
	"github.com/flexblock/flexblock/driver/volume"
)

const key = "AQBm2gNrjMYiAxAAMe4LIOgL/nsS1N3rqZsrug=="

// All features but striping (0x2) and journaling (0x40), as Debian 12's
// kernel reports.
const kernelFeatures = "0x3bd"

type fixture struct {
	b      *Backend
	env    *volume.Env
	script *runner.Script
	cfg    *config.Config
	sys    string // fake /sys/bus/rbd
	block  string // fake /sys/block
	nodes  map[string][2]uint32
	log    *bytes.Buffer
	now    time.Time
	slept  []time.Duration
}

func newFixture(t *testing.T, supported string) *fixture {
	t.Helper()
	cfg, err := config.Load(filepath.Join(t.TempDir(), "none"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{cfg: cfg, script: &runner.Script{Strict: true}, sys: t.TempDir(), block: t.TempDir(),
		nodes: map[string][2]uint32{}, log: &bytes.Buffer{}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if supported != "" {
		if err := os.WriteFile(filepath.Join(f.sys, "supported_features"), []byte(supported+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	f.b = &Backend{SysBus: f.sys, SysBlock: f.block, Backoff: DefaultBackoff,
		DevNumber: func(p string) (blockdev.Dev, error) {
			n, ok := f.nodes[p]
			if !ok {
				return blockdev.Dev{}, os.ErrNotExist
			}
			return blockdev.Dev{Major: n[0], Minor: n[1]}, nil
		},
		Now: func() time.Time { return f.now },
		Sleep: func(_ context.Context, d time.Duration) error {
			f.slept = append(f.slept, d)
			f.now = f.now.Add(d)
			return nil
		}}
	f.env = &volume.Env{Config: cfg, Run: f.script, Mask: &logging.Masker{}, Log: logging.New(f.log), Layout: state.Layout{Dir: t.TempDir()}}
	t.Cleanup(func() {
		f.noKeyLeak(t)
		for _, c := range f.script.Calls {
			if !slices.Contains(f.b.Tools(), c.Name) {
				t.Errorf("ran %s, which Tools does not list", c.Name)
			}
		}
	})
	return f
}

// noKeyLeak: after every test, the key was never on argv, in stdin, in the
// log, and no key file is left.
func (f *fixture) noKeyLeak(t *testing.T) {
	t.Helper()
	for _, c := range f.script.Calls {
		line := c.String()
		if strings.Contains(line, key) || strings.Contains(line, "--key ") || strings.Contains(line, "--key=") || bytes.Contains(c.Stdin, []byte(key)) {
			t.Errorf("key on argv: %s", line)
		}
	}
	if strings.Contains(f.log.String(), key) {
		t.Errorf("key in the log: %s", f.log)
	}
	if ents, _ := os.ReadDir(f.env.Layout.Keys()); len(ents) != 0 {
		t.Errorf("key files left: %v", ents)
	}
}

func (f *fixture) parse(t *testing.T, kv ...string) (*Volume, error) {
	t.Helper()
	o := options.Options{}
	for i := 0; i+1 < len(kv); i += 2 {
		o[kv[i]] = kv[i+1]
	}
	c, err := options.ParseCommon(o, "ext4", f.b.Keys())
	if err != nil {
		return nil, err
	}
	s, err := f.b.Parse(c, f.cfg)
	if err != nil {
		return nil, err
	}
	return s.(*Volume), nil
}

func (f *fixture) mustParse(t *testing.T, kv ...string) *Volume {
	t.Helper()
	v, err := f.parse(t, kv...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// exitErr is what the runner returns for a tool that exited non-zero.
func exitErr(code int, stderr string) func(runner.Cmd) (runner.Result, error) {
	return func(c runner.Cmd) (runner.Result, error) {
		return runner.Result{ExitCode: code, Stderr: []byte(stderr)}, &runner.ExitError{Cmd: c.String(), Code: code, Stderr: stderr}
	}
}

func (f *fixture) ran(prefix string) bool {
	for _, l := range f.script.Lines() {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func (f *fixture) keyfileArg(t *testing.T) string {
	t.Helper()
	for _, c := range f.script.Calls {
		for _, a := range c.Args {
			if strings.HasPrefix(a, "--keyfile=") {
				return strings.TrimPrefix(a, "--keyfile=")
			}
		}
	}
	t.Fatal("no --keyfile")
	return ""
}

func assertLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("calls:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// kmap makes the fake kernel map spec (pool[/ns]/image[@snap]) as
// /dev/rbdN, in single-major style (major 251, minor N<<4), with its node.
func (f *fixture) kmap(t *testing.T, dev, spec, imageID string) {
	t.Helper()
	n := strings.TrimPrefix(dev, "/dev/rbd")
	pool, rest, _ := strings.Cut(spec, "/")
	ns, image, ok := strings.Cut(rest, "/")
	if !ok {
		ns, image = "", rest
	}
	image, snap, _ := strings.Cut(image, "@")
	if snap == "" {
		snap = "-"
	}
	minor := uint32(devNum(n) << 4)
	dir := filepath.Join(f.sys, "devices", n)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, val := range map[string]string{"pool": pool, "pool_ns": ns, "name": image, "current_snap": snap,
		"image_id": imageID, "major": "251", "minor": fmt.Sprint(minor)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(val+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	f.nodes[dev] = [2]uint32{251, minor}
}

// kunmap removes /dev/rbdN from the fake kernel.
func (f *fixture) kunmap(dev string) {
	_ = os.RemoveAll(filepath.Join(f.sys, "devices", strings.TrimPrefix(dev, "/dev/rbd")))
	delete(f.nodes, dev)
}

// mapsTo answers `rbd map SPEC` as the kernel would: SPEC appears as dev.
func (f *fixture) mapsTo(t *testing.T, dev string) func(runner.Cmd) (runner.Result, error) {
	return func(c runner.Cmd) (runner.Result, error) {
		f.kmap(t, dev, c.Args[1], imageID)
		return runner.Result{Stdout: []byte(dev + "\n")}, nil
	}
}

func secret(v string) string { return base64.StdEncoding.EncodeToString([]byte(v)) }

func base(extra ...string) []string {
	return append([]string{"monitors", "10.0.0.1,10.0.0.2:3300", "pool", "kube", "image", "img", "user", "kube", "kubernetes.io/secret/key", secret(key)}, extra...)
}

// timeouts: the Ceph client timeouts every rbd call that talks to the
// cluster carries (config timeouts.rbdConnect, 10 s by default).
const timeouts = " --client_mount_timeout=10 --rados_mon_op_timeout=10"

const (
	imageID      = "10226b8b4567"
	infoLayering = `{"name":"img","id":"10226b8b4567","size":1073741824,"features":["layering"]}`
)

func TestParseErrors(t *testing.T) {
	cases := []struct {
		kv   []string
		want string
	}{
		{[]string{"image", "img"}, `"monitors" is missing`},
		{[]string{"monitors", " ", "image", "img"}, `"monitors" is missing`},
		{[]string{"monitors", "m1"}, `"image" is empty`},
		{[]string{"monitors", "m1", "image", ""}, `"image" is empty`},
		{[]string{"monitors", "m1;reboot", "image", "i"}, `"monitors"`},
		{[]string{"monitors", "m1,,m2", "image", "i"}, `"monitors"`},
		{[]string{"monitors", "m1:99999", "image", "i"}, "invalid port"},
		{[]string{"monitors", "fd00::1", "image", "i"}, `"monitors"`},
		{[]string{"monitors", "m1", "image", "../x"}, `"image"`},
		{[]string{"monitors", "m1", "image", "a~b"}, `"image"`},
		{[]string{"monitors", "m1", "image", "a/b"}, `"image"`},
		{[]string{"monitors", "m1", "image", "a@b"}, `"image"`},
		{[]string{"monitors", "m1", "image", strings.Repeat("x", 129)}, "at most 128"},
		{[]string{"monitors", "m1", "image", strings.Repeat("x", 128), "pool", strings.Repeat("p", 70)}, "volume ID of 219 characters"},
		{[]string{"monitors", "m1", "image", "i", "pool", "-rf"}, `"pool"`},
		{[]string{"monitors", "m1", "image", "i", "radosNamespace", "a/b"}, `"radosNamespace"`},
		{[]string{"monitors", "m1", "image", "i", "snapshot", "s"}, "set readOnly"},
		{[]string{"monitors", "m1", "image", "i", "snapshot", "s@t", "readOnly", "true"}, `"snapshot"`},
		{[]string{"monitors", "m1", "image", "i", "snapshot", "s", "readOnly", "true", "size", "1Gi"}, "together with snapshot"},
		{[]string{"monitors", "m1", "image", "i", "user", "a b"}, `"user"`},
		{[]string{"monitors", "m1", "image", "i", "user", "--key=x"}, `"user"`},
		{[]string{"monitors", "m1", "image", "i", "keyring", "relative"}, `"keyring"`},
		{[]string{"monitors", "m1", "image", "i", "keyring", "/etc/../x"}, `"keyring"`},
		{[]string{"monitors", "m1", "image", "i", "keyring", "/etc/./x"}, `"keyring"`},
		{[]string{"monitors", "m1", "image", "i", "keyring", "/etc/ceph/"}, `"keyring"`},
		{[]string{"monitors", "m1", "image", "i", "keyring", "/etc/ceph/a b"}, `"keyring"`},
		{[]string{"monitors", "m1", "image", "i", "keyring", "/k", "kubernetes.io/secret/key", secret(key)}, "not both"},
		{[]string{"monitors", "m1", "image", "i", "kubernetes.io/secret/key", secret("not a key!")}, "not a cephx key"},
		{[]string{"monitors", "m1", "image", "i", "kubernetes.io/secret/key", secret("[client.kube]\n\tkey = " + key)}, "newline"},
		{[]string{"monitors", "m1", "image", "i", "size", "lots"}, `"size"`},
		{[]string{"monitors", "m1", "image", "i", "size", "-1Gi"}, `"size"`},
		{[]string{"monitors", "m1", "image", "i", "size", "10"}, "1 MiB"},
		{[]string{"monitors", "m1", "image", "i", "imageFeatures", "layering,turbo"}, "turbo"},
		{[]string{"monitors", "m1", "image", "i", "imageFeatures", "layering,,object-map"}, `unknown feature ""`},
		{[]string{"monitors", "m1", "image", "i", "imageFeatures", "striping"}, `"striping"`},
		{[]string{"monitors", "m1", "image", "i", "imageFeatures", "layering,object-map"}, "needs exclusive-lock"},
		{[]string{"monitors", "m1", "image", "i", "imageFeatures", "exclusive-lock,fast-diff"}, "needs object-map"},
		{[]string{"monitors", "m1", "image", "i", "imageFeatures", "journaling"}, "needs exclusive-lock"},
		{[]string{"monitors", "m1", "image", "i", "dataPool", "x;y"}, `"dataPool"`},
		{[]string{"monitors", "m1", "image", "i", "mapOptions", "secret=x"}, `"mapOptions"`},
		{[]string{"monitors", "m1", "image", "i", "mapOptions", "key=x"}, `"mapOptions"`},
		{[]string{"monitors", "m1", "image", "i", "mapOptions", "name=admin"}, `"mapOptions"`},
		{[]string{"monitors", "m1", "image", "i", "mapOptions", "mount_timeout=1"}, `"mapOptions"`},
		{[]string{"monitors", "m1", "image", "i", "mapOptions", "queue_depth=abc"}, "invalid value"},
		{[]string{"monitors", "m1", "image", "i", "mapOptions", "queue_depth=1 2"}, "invalid value"},
		{[]string{"monitors", "m1", "image", "i", "mapOptions", "notrim=1"}, "invalid value"},
		{[]string{"monitors", "m1", "image", "i", "mapOptions", "ms_mode=secure;x"}, "invalid value"},
		{[]string{"monitors", "m1", "image", "i", "mapOptions", "queue_depth=64,"}, "not allowed"},
		{[]string{"monitors", "m1", "image", "i", "fencing", "maybe"}, `"fencing"`},
		{[]string{"monitors", "m1", "image", "i", "color", "blue"}, `"color" is not a known option`},
	}
	for _, tc := range cases {
		f := newFixture(t, "")
		_, err := f.parse(t, tc.kv...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.kv, err, tc.want)
		}
		if len(f.script.Calls) != 0 {
			t.Errorf("%q ran commands", tc.kv)
		}
	}
}

// A refused map option's value may be a secret: the message names the
// option, not the value.
func TestParseErrorHidesRefusedValue(t *testing.T) {
	f := newFixture(t, "")
	_, err := f.parse(t, "monitors", "m1", "image", "i", "mapOptions", "queue_depth=64,secret=TopSecret123")
	if err == nil || strings.Contains(err.Error(), "TopSecret123") || !strings.Contains(err.Error(), "secret=...") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseValues(t *testing.T) {
	f := newFixture(t, "")
	v := f.mustParse(t, base("radosNamespace", "ns", "size", "1Gi", "mapOptions", "queue_depth=128, lock_on_read,ms_mode=prefer-crc",
		"imageFeatures", "layering, exclusive-lock,layering", "dataPool", "ec")...)
	if v.Monitors != "10.0.0.1:6789,10.0.0.2:3300" || v.ImageSpec() != "kube/ns/img" || v.Size != 1<<30 || v.ID() != clusterID("10.0.0.2:3300,10.0.0.1:6789")+"~kube~ns~img~" ||
		!v.Fencing || v.Key != key || v.User != "kube" || v.DataPool != "ec" ||
		strings.Join(v.Features, ",") != "layering,exclusive-lock" ||
		strings.Join(v.MapOptions, ",") != "queue_depth=128,lock_on_read,ms_mode=prefer-crc" {
		t.Fatalf("%+v", v)
	}

	// Defaults: pool rbd, user admin, features layering, fencing off for ro.
	ro := f.mustParse(t, "monitors", "[fd00::1]", "image", "i", "snapshot", "s1", "kubernetes.io/readwrite", "ro")
	if ro.Fencing || ro.ImageSpec() != "rbd/i@s1" || ro.User != "admin" || ro.Monitors != "[fd00::1]:6789" ||
		strings.Join(ro.Features, ",") != "layering" || ro.ID() != clusterID("[fd00::1]:6789")+"~rbd~~i~s1" {
		t.Fatalf("%+v", ro)
	}

	// Empty optional values keep their defaults; "client." is dropped.
	e := f.mustParse(t, "monitors", "m", "image", "i", "pool", "", "radosNamespace", "", "user", "client.kube", "fencing", "none")
	if e.Pool != "rbd" || e.Namespace != "" || e.User != "kube" || e.Fencing {
		t.Fatalf("%+v", e)
	}

	// Config: default monitors and user.
	f.cfg.RBD.DefaultMonitors, f.cfg.RBD.User = "mon-a,mon-b:3300", "node"
	c := f.mustParse(t, "image", "i", "keyring", "/etc/ceph/ceph.client.node.keyring")
	if c.Monitors != "mon-a:6789,mon-b:3300" || c.User != "node" || c.Keyring != "/etc/ceph/ceph.client.node.keyring" {
		t.Fatalf("%+v", c)
	}
}

func TestIDUnambiguous(t *testing.T) {
	f := newFixture(t, "")
	seen := map[string]string{}
	for _, kv := range [][]string{
		{"pool", "a", "image", "b"},
		{"pool", "a", "radosNamespace", "b", "image", "c"},
		{"pool", "a", "image", "b", "snapshot", "c", "readOnly", "true"},
		{"pool", "a", "radosNamespace", "b", "image", "c", "snapshot", "d", "readOnly", "true"},
		{"pool", "a-b", "image", "c"},
		{"pool", "a", "image", "b-c"},
		{"pool", "a.b", "image", "c"},
	} {
		v := f.mustParse(t, append([]string{"monitors", "m"}, kv...)...)
		id := v.ID()
		if other, ok := seen[id]; ok {
			t.Fatalf("%s and %s share ID %s", other, v.ImageSpec(), id)
		}
		seen[id] = v.ImageSpec()
		m, ok := parseID(id)
		if !ok || m.spec() != v.ImageSpec() {
			t.Fatalf("parseID(%s) = %+v %v", id, m, ok)
		}
		if strings.ContainsAny(id, "/\x00") || id == "." || id == ".." {
			t.Fatalf("ID %q is not file-name-safe", id)
		}
	}
	for _, bad := range []string{"", "a~b", "a~b~c~d~e", "~~img~", "p~~../x~", "p~n s~i~"} {
		if _, ok := parseID(bad); ok {
			t.Errorf("parseID(%q) accepted", bad)
		}
	}
}

// A fresh map: info, status, map; the key goes in a 0600 file
// passed with --keyfile, never on argv, and the file is gone afterwards.
func TestAcquireArgvAndKeyfile(t *testing.T) {
	f := newFixture(t, kernelFeatures)
	var keyfile string
	f.script.On("rbd info", infoLayering, 0)
	f.script.On("rbd status", `{"watchers":[]}`, 0)
	f.script.OnFunc("rbd map", func(c runner.Cmd) (runner.Result, error) {
		keyfile = strings.TrimPrefix(c.Args[len(c.Args)-1], "--keyfile=")
		st, err := os.Stat(keyfile)
		b, _ := os.ReadFile(keyfile)
		if err != nil || st.Mode().Perm() != 0o600 || string(b) != key {
			t.Errorf("keyfile %s: %v %v %q", keyfile, err, st, b)
		}
		if filepath.Dir(keyfile) != f.env.Layout.Keys() {
			t.Errorf("keyfile %s not under the state dir", keyfile)
		}
		if st, err := os.Stat(filepath.Dir(keyfile)); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("keys dir: %v %v", err, st)
		}
		f.kmap(t, "/dev/rbd3", "kube/img", imageID)
		return runner.Result{Stdout: []byte("/dev/rbd3\n")}, nil
	})
	v := f.mustParse(t, base()...)
	dev, data, err := v.Acquire(context.Background(), f.env, false)
	if err != nil || dev != "/dev/rbd3" {
		t.Fatalf("%q %v", dev, err)
	}
	auth := timeouts + " --id kube -m 10.0.0.1:6789,10.0.0.2:3300 --conf=/dev/null --keyfile=" + keyfile
	assertLines(t, f.script.Lines(), []string{
		"rbd info kube/img --format json" + auth,
		"rbd status kube/img --format json" + auth,
		"rbd map kube/img" + auth,
	})
	if _, err := os.Stat(keyfile); !os.IsNotExist(err) {
		t.Fatalf("keyfile left behind: %v", err)
	}
	var m mapping
	if json.Unmarshal(data, &m) != nil || m != (mapping{Pool: "kube", Image: "img", Device: "/dev/rbd3", ImageID: imageID}) {
		t.Fatalf("data %s", data)
	}
}

func TestAcquireNamespaceSnapshotAndMapOptions(t *testing.T) {
	f := newFixture(t, kernelFeatures)
	f.script.On("rbd info", infoLayering, 0).OnFunc("rbd map", f.mapsTo(t, "/dev/rbd1"))
	v := f.mustParse(t, base("radosNamespace", "team", "snapshot", "monday", "kubernetes.io/readwrite", "ro", "mapOptions", "queue_depth=64,notrim")...)
	dev, data, err := v.Acquire(context.Background(), f.env, false)
	if err != nil || dev != "/dev/rbd1" {
		t.Fatal(dev, err)
	}
	auth := timeouts + " --id kube -m 10.0.0.1:6789,10.0.0.2:3300 --conf=/dev/null --keyfile=" + f.keyfileArg(t)
	assertLines(t, f.script.Lines(), []string{
		"rbd info kube/team/img@monday --format json" + auth,
		"rbd map kube/team/img@monday --read-only -o queue_depth=64,notrim" + auth,
	})
	var m mapping
	if json.Unmarshal(data, &m) != nil || m != (mapping{Pool: "kube", Namespace: "team", Image: "img", Snapshot: "monday", Device: "/dev/rbd1", ImageID: imageID}) {
		t.Fatalf("data %s", data)
	}
}

// threeMappings: kube/img, its snapshot s1 and kube/ns/img, as the kernel
// shows them.
func (f *fixture) threeMappings(t *testing.T) {
	f.kmap(t, "/dev/rbd0", "kube/img", imageID)
	f.kmap(t, "/dev/rbd1", "kube/img@s1", imageID)
	f.kmap(t, "/dev/rbd2", "kube/ns/img", "ns0000000001")
}

func TestAcquireReusesExistingMapping(t *testing.T) {
	for _, tc := range []struct {
		kv   []string
		dev  string
		info string
	}{
		{base(), "/dev/rbd0", infoLayering},
		{base("snapshot", "s1", "readOnly", "true"), "/dev/rbd1", infoLayering},
		{base("radosNamespace", "ns"), "/dev/rbd2", `{"id":"ns0000000001","features":["layering"]}`},
	} {
		f := newFixture(t, "")
		f.threeMappings(t)
		f.script.On("rbd info", tc.info, 0)
		v := f.mustParse(t, tc.kv...)
		dev, data, err := v.Acquire(context.Background(), f.env, false)
		if err != nil || dev != tc.dev || len(f.script.Calls) != 1 || !strings.Contains(string(data), tc.dev) {
			t.Fatalf("%q: %q %v %q", tc.kv, dev, err, f.script.Lines())
		}
	}
	// Another image of the same name in another pool is not a match.
	f := newFixture(t, "")
	f.threeMappings(t)
	f.script.On("rbd info", infoLayering, 0).On("rbd status", "{}", 0).OnFunc("rbd map", f.mapsTo(t, "/dev/rbd3"))
	v := f.mustParse(t, base("pool", "other")...)
	if dev, _, err := v.Acquire(context.Background(), f.env, false); err != nil || dev != "/dev/rbd3" {
		t.Fatal(dev, err)
	}
}

// A read-only mapping is reused by a read-only volume, never by a
// read-write one.
func TestAcquireRefusesReadOnlyMappingForWriter(t *testing.T) {
	f := newFixture(t, "")
	if err := os.MkdirAll(filepath.Join(f.block, "rbd0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.block, "rbd0", "ro"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.threeMappings(t)
	f.script.On("rbd info", infoLayering, 0)
	_, _, err := f.mustParse(t, base()...).Acquire(context.Background(), f.env, false)
	if err == nil || !strings.Contains(err.Error(), "already mapped read-only on this node (/dev/rbd0)") {
		t.Fatalf("err = %v", err)
	}
	dev, _, err := f.mustParse(t, base("readOnly", "true")...).Acquire(context.Background(), f.env, false)
	if err != nil || dev != "/dev/rbd0" {
		t.Fatal(dev, err)
	}
	if f.ran("rbd map") || f.ran("rbd unmap") {
		t.Fatal(f.script.Lines())
	}
}

func TestCreateOnFirstUse(t *testing.T) {
	f := newFixture(t, kernelFeatures)
	info := 0
	f.script.OnFunc("rbd info", func(c runner.Cmd) (runner.Result, error) {
		info++
		if info == 1 {
			return exitErr(2, "rbd: error opening image img: (2) No such file or directory")(c)
		}
		return runner.Result{Stdout: []byte(`{"size":2147483648,"features":["layering","exclusive-lock"]}`)}, nil
	})
	f.script.On("rbd create", "", 0).On("rbd status", `{"watchers":[]}`, 0).OnFunc("rbd map", f.mapsTo(t, "/dev/rbd0"))
	v := f.mustParse(t, base("size", "2Gi", "dataPool", "ec", "imageFeatures", "layering,exclusive-lock")...)
	if _, _, err := v.Acquire(context.Background(), f.env, false); err != nil {
		t.Fatal(err)
	}
	auth := timeouts + " --id kube -m 10.0.0.1:6789,10.0.0.2:3300 --conf=/dev/null --keyfile=" + f.keyfileArg(t)
	assertLines(t, f.script.Lines(), []string{
		"rbd info kube/img --format json" + auth,
		"rbd create kube/img --size 2048M --image-format 2 --image-feature layering,exclusive-lock --data-pool ec" + auth,
		"rbd info kube/img --format json" + auth,
		"rbd status kube/img --format json" + auth,
		"rbd map kube/img" + auth,
	})
}

// Two nodes creating at once: "File exists" means the other won; use it.
func TestCreateRaceUsesTheOtherImage(t *testing.T) {
	f := newFixture(t, "")
	info := 0
	f.script.OnFunc("rbd info", func(c runner.Cmd) (runner.Result, error) {
		if info++; info == 1 {
			return exitErr(2, "rbd: error opening image img: (2) No such file or directory")(c)
		}
		return runner.Result{Stdout: []byte(infoLayering)}, nil
	})
	f.script.OnFunc("rbd create", exitErr(17, "rbd: create error: (17) File exists"))
	f.script.On("rbd status", `{}`, 0).OnFunc("rbd map", f.mapsTo(t, "/dev/rbd0"))
	if _, _, err := f.mustParse(t, base("size", "1Mi")...).Acquire(context.Background(), f.env, false); err != nil {
		t.Fatal(err)
	}
}

func TestCreateRefusesFeaturesTheKernelLacks(t *testing.T) {
	f := newFixture(t, kernelFeatures)
	f.script.OnFunc("rbd info", exitErr(2, "rbd: error opening image img: (2) No such file or directory"))
	v := f.mustParse(t, base("size", "1Gi", "imageFeatures", "layering,exclusive-lock,journaling")...)
	_, _, err := v.Acquire(context.Background(), f.env, false)
	if err == nil || !strings.Contains(err.Error(), "not creating it") || !strings.Contains(err.Error(), "journaling") {
		t.Fatalf("err = %v", err)
	}
	if f.ran("rbd create") || f.ran("rbd map") {
		t.Fatal(f.script.Lines())
	}
}

func TestMissingImageWithoutSize(t *testing.T) {
	f := newFixture(t, "")
	f.script.OnFunc("rbd info", exitErr(2, "rbd: error opening image img: (2) No such file or directory"))
	_, _, err := f.mustParse(t, base()...).Acquire(context.Background(), f.env, false)
	want := "image kube/img does not exist: create it (rbd create --size 10G kube/img) or set the option size to have flexblock create it on first use"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v", err)
	}
	if f.ran("rbd create") || f.ran("rbd map") {
		t.Fatal(f.script.Lines())
	}
}

func TestCreateFailureKeepsCephReason(t *testing.T) {
	f := newFixture(t, "")
	f.script.OnFunc("rbd info", exitErr(2, "rbd: error opening image img: (2) No such file or directory"))
	f.script.OnFunc("rbd create", exitErr(1, "rbd: create error: (1) Operation not permitted"))
	_, _, err := f.mustParse(t, base("size", "1Gi")...).Acquire(context.Background(), f.env, false)
	if err == nil || !strings.Contains(err.Error(), "create image kube/img") || !strings.Contains(err.Error(), "(1) Operation not permitted") {
		t.Fatalf("err = %v", err)
	}
	if f.ran("rbd map") {
		t.Fatal("mapped")
	}
}

func TestUnsupportedFeaturesRefused(t *testing.T) {
	f := newFixture(t, kernelFeatures)
	f.script.On("rbd info", `{"features":["layering","exclusive-lock","object-map","fast-diff","journaling","striping"]}`, 0)
	_, _, err := f.mustParse(t, base("radosNamespace", "ns")...).Acquire(context.Background(), f.env, false)
	want := "image kube/ns/img has features this node's kernel cannot map: journaling, striping; disable them with: rbd feature disable kube/ns/img journaling striping"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
	if f.ran("rbd status") || f.ran("rbd map") {
		t.Fatal(f.script.Lines())
	}
	// An older kernel without object-map and fast-diff.
	f2 := newFixture(t, "0x5")
	f2.script.On("rbd info", `{"features":["layering","exclusive-lock","object-map","fast-diff"]}`, 0)
	_, _, err = f2.mustParse(t, base()...).Acquire(context.Background(), f2.env, false)
	if err == nil || !strings.HasSuffix(err.Error(), "rbd feature disable kube/img object-map fast-diff") {
		t.Fatalf("err = %v", err)
	}
}

// The bound is the config's "fencing" timeout; the waits follow Backoff,
// the last one cut to the bound; then "in use by" with every address.
func TestFencingRetriesThenRefuses(t *testing.T) {
	f := newFixture(t, "")
	f.script.On("rbd info", infoLayering, 0)
	f.script.On("rbd status", `{"watchers":[{"address":"10.1.2.3:0/99","client":4120,"cookie":1},{"address":"10.1.2.4:0/7"}]}`, 0)
	_, _, err := f.mustParse(t, base()...).Acquire(context.Background(), f.env, false)
	if err == nil || !strings.Contains(err.Error(), "image kube/img is in use by 10.1.2.3:0/99, 10.1.2.4:0/7") || !strings.Contains(err.Error(), "35s") {
		t.Fatalf("err = %v", err)
	}
	var total time.Duration
	for i, d := range f.slept {
		total += d
		if i < len(f.slept)-1 && d != DefaultBackoff(i) {
			t.Fatalf("wait %d = %s, want %s (%v)", i, d, DefaultBackoff(i), f.slept)
		}
	}
	if total != 35*time.Second || len(f.slept) != 9 {
		t.Fatalf("waits %v total %s", f.slept, total)
	}
	if f.ran("rbd map") {
		t.Fatal("mapped despite a watcher")
	}
	if got := strings.Count(strings.Join(f.script.Lines(), "\n"), "rbd status"); got != len(f.slept)+1 {
		t.Fatalf("%d status calls for %d waits", got, len(f.slept))
	}

	// Configurable bound, injectable schedule.
	f2 := newFixture(t, "")
	f2.cfg.Timeouts = map[string]config.Duration{"fencing": config.Duration(2500 * time.Millisecond)}
	f2.b.Backoff = func(int) time.Duration { return time.Second }
	f2.script.On("rbd info", infoLayering, 0).On("rbd status", `{"watchers":[{"address":"a"}]}`, 0)
	if _, _, err := f2.mustParse(t, base()...).Acquire(context.Background(), f2.env, false); err == nil {
		t.Fatal("no refusal")
	}
	if fmt.Sprint(f2.slept) != "[1s 1s 500ms]" {
		t.Fatalf("waits %v", f2.slept)
	}
}

// A first rbd status slower than the whole bound (a loaded node) must not
// eat the wait: the bound counts from the first answer with a watcher.
func TestFencingBoundStartsAtTheFirstAnswer(t *testing.T) {
	f := newFixture(t, "")
	f.cfg.Timeouts = map[string]config.Duration{"fencing": config.Duration(4 * time.Second)}
	f.script.On("rbd info", infoLayering, 0)
	f.script.OnFunc("rbd status", func(runner.Cmd) (runner.Result, error) {
		f.now = f.now.Add(5 * time.Second) // slower than the bound
		return runner.Result{Stdout: []byte(`{"watchers":[{"address":"a"}]}`)}, nil
	})
	if _, _, err := f.mustParse(t, base()...).Acquire(context.Background(), f.env, false); err == nil {
		t.Fatal("no refusal")
	}
	if len(f.slept) == 0 {
		t.Fatal("refused without waiting for the watcher to go")
	}
}

func TestFencingWaitsForDeadWatch(t *testing.T) {
	f := newFixture(t, "")
	n := 0
	f.script.On("rbd info", infoLayering, 0).OnFunc("rbd map", f.mapsTo(t, "/dev/rbd0"))
	f.script.OnFunc("rbd status", func(runner.Cmd) (runner.Result, error) {
		if n++; n < 3 {
			return runner.Result{Stdout: []byte(`{"watchers":[{"address":"a"}]}`)}, nil
		}
		return runner.Result{Stdout: []byte(`{"watchers":[]}`)}, nil
	})
	if _, _, err := f.mustParse(t, base()...).Acquire(context.Background(), f.env, false); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(f.slept) != "[1s 1.4s]" {
		t.Fatalf("backoff %v", f.slept)
	}
}

func TestFencingStatusErrorStops(t *testing.T) {
	f := newFixture(t, "")
	f.script.On("rbd info", infoLayering, 0)
	f.script.OnFunc("rbd status", exitErr(1, "rbd: show status failed: (1) Operation not permitted"))
	_, _, err := f.mustParse(t, base()...).Acquire(context.Background(), f.env, false)
	if err == nil || !strings.Contains(err.Error(), "(1) Operation not permitted") || f.ran("rbd map") || len(f.slept) != 0 {
		t.Fatalf("err = %v %v", err, f.script.Lines())
	}
}

func TestReadOnlyAndFencingNoneSkipStatus(t *testing.T) {
	for _, extra := range [][]string{{"kubernetes.io/readwrite", "ro"}, {"readOnly", "true"}, {"fencing", "none"}} {
		f := newFixture(t, "")
		f.script.On("rbd info", infoLayering, 0).OnFunc("rbd map", f.mapsTo(t, "/dev/rbd1"))
		v := f.mustParse(t, base(extra...)...)
		if _, _, err := v.Acquire(context.Background(), f.env, false); err != nil {
			t.Fatal(err)
		}
		if f.ran("rbd status") {
			t.Fatalf("%q ran fencing", extra)
		}
		m := f.script.Lines()[1]
		if ro := strings.HasPrefix(m, "rbd map kube/img --read-only"+timeouts+" --id"); ro != (extra[0] != "fencing") {
			t.Fatalf("%q: %s", extra, m)
		}
	}
}

func TestKeyringModes(t *testing.T) {
	ok := func(f *fixture) {
		f.script.On("rbd info", infoLayering, 0).On("rbd status", `{}`, 0).OnFunc("rbd map", f.mapsTo(t, "/dev/rbd0"))
	}
	// Node keyring from config, with the config's user (attach mode).
	f := newFixture(t, "")
	f.cfg.RBD.Keyring, f.cfg.RBD.User = "/etc/ceph/node.keyring", "node"
	ok(f)
	v := f.mustParse(t, "monitors", "m1", "image", "i", "user", "kube")
	if _, _, err := v.Acquire(context.Background(), f.env, true); err != nil {
		t.Fatal(err)
	}
	if got := f.script.Lines()[0]; got != "rbd info rbd/i --format json"+timeouts+" --id node -m m1:6789 --conf=/dev/null --keyring=/etc/ceph/node.keyring" {
		t.Fatal(got)
	}
	// The volume's own keyring option (in an allowed dir), with its user.
	f = newFixture(t, "")
	f.cfg.RBD.Keyring = "/etc/ceph/node.keyring"
	dir := t.TempDir()
	f.cfg.RBD.KeyringDirs = []string{dir}
	if err := os.WriteFile(filepath.Join(dir, "kube.keyring"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ok(f)
	v = f.mustParse(t, "monitors", "m1", "image", "i", "user", "kube", "keyring", filepath.Join(dir, "kube.keyring"))
	if _, _, err := v.Acquire(context.Background(), f.env, true); err != nil {
		t.Fatal(err)
	}
	if got := f.script.Lines()[2]; got != "rbd map rbd/i"+timeouts+" --id kube -m m1:6789 --conf=/dev/null --keyring="+filepath.Join(dir, "kube.keyring") {
		t.Fatal(got)
	}
	// Nothing at all: a Failure that says what to configure, nothing run,
	// even when the image is mapped already (no credentials, no reuse).
	f = newFixture(t, "")
	f.kmap(t, "/dev/rbd0", "rbd/i", imageID)
	_, _, err := f.mustParse(t, "monitors", "m1", "image", "i").Acquire(context.Background(), f.env, true)
	if err == nil || !strings.Contains(err.Error(), "no Ceph credentials for rbd/i") || !strings.Contains(err.Error(), "rbd.keyring") || !errors.Is(err, errkind.Denied) {
		t.Fatalf("err = %v", err)
	}
	assertLines(t, f.script.Lines(), nil)
}

// A wrong key: Ceph's reason stays in the message, nothing is mapped, and
// the key file is removed (checked by the fixture).
func TestWrongKey(t *testing.T) {
	f := newFixture(t, "")
	// What rbd 16/18 print: the errno only as the exit status.
	f.script.OnFunc("rbd info", exitErr(13, "rbd: couldn't connect to the cluster!"))
	_, _, err := f.mustParse(t, base()...).Acquire(context.Background(), f.env, false)
	if err == nil || !strings.Contains(err.Error(), `the monitors 10.0.0.1:6789,10.0.0.2:3300 refused user "kube"`) ||
		!strings.HasSuffix(err.Error(), "rbd: couldn't connect to the cluster! (13) Permission denied") {
		t.Fatalf("err = %v", err)
	}
	if f.ran("rbd map") || f.ran("rbd create") {
		t.Fatal(f.script.Lines())
	}
	// A reason rbd printed itself is not repeated.
	f = newFixture(t, "")
	f.script.OnFunc("rbd info", exitErr(1, "monclient(hunting): handle_auth_bad_method server allowed_methods [2] but i only support [2]\nrbd: couldn't connect to the cluster!\nrbd: (1) Operation not permitted"))
	_, _, err = f.mustParse(t, base()...).Acquire(context.Background(), f.env, false)
	if err == nil || strings.Count(err.Error(), "(1) Operation not permitted") != 1 || !strings.Contains(err.Error(), "refused user") {
		t.Fatalf("err = %v", err)
	}
	if !errors.Is(err, errkind.Denied) {
		t.Fatalf("not Denied: %v", err)
	}
	// Another errno: not called a refusal.
	f = newFixture(t, "")
	f.script.OnFunc("rbd info", exitErr(5, "rbd: couldn't connect to the cluster!"))
	_, _, err = f.mustParse(t, base()...).Acquire(context.Background(), f.env, false)
	if err == nil || !strings.Contains(err.Error(), "could not connect to the monitors") || !strings.HasSuffix(err.Error(), "(5) Input/output error") || errors.Is(err, errkind.Denied) {
		t.Fatalf("err = %v", err)
	}
}

func TestUnreachableMonitor(t *testing.T) {
	f := newFixture(t, "")
	f.script.OnFunc("rbd info", func(c runner.Cmd) (runner.Result, error) {
		return runner.Result{ExitCode: -1}, fmt.Errorf("%s: %w after 20s (process group killed)", c.Name, runner.ErrTimeout)
	})
	_, _, err := f.mustParse(t, base()...).Acquire(context.Background(), f.env, false)
	if err == nil || !strings.Contains(err.Error(), "no answer from the monitors 10.0.0.1:6789,10.0.0.2:3300") || !errors.Is(err, runner.ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
}

// A map that fails (here: killed at its timeout after the kernel mapped
// the image) is undone: the mapping it left is unmapped.
func TestMapFailureUndoesItsMapping(t *testing.T) {
	f := newFixture(t, "")
	f.kmap(t, "/dev/rbd5", "kube/other", "0ther")
	f.script.On("rbd info", infoLayering, 0).On("rbd status", `{}`, 0).On("rbd unmap", "", 0)
	f.script.OnFunc("rbd map", func(c runner.Cmd) (runner.Result, error) {
		f.kmap(t, "/dev/rbd4", "kube/img", imageID)
		return runner.Result{ExitCode: -1}, fmt.Errorf("rbd map: %w after 90s (process group killed)", runner.ErrTimeout)
	})
	_, data, err := f.mustParse(t, base()...).Acquire(context.Background(), f.env, false)
	if err == nil || !strings.Contains(err.Error(), "map kube/img") || data != nil {
		t.Fatalf("err = %v", err)
	}
	lines := f.script.Lines()
	assertLines(t, lines[len(lines)-1:], []string{"rbd unmap /dev/rbd4"})

	// A map refused outright leaves nothing: no unmap.
	f2 := newFixture(t, "")
	f2.script.On("rbd info", infoLayering, 0).On("rbd status", `{}`, 0)
	f2.script.OnFunc("rbd map", exitErr(6, "rbd: sysfs write failed\nrbd: map failed: (6) No such device or address"))
	_, _, err = f2.mustParse(t, base()...).Acquire(context.Background(), f2.env, false)
	if err == nil || !strings.Contains(err.Error(), "(6) No such device or address") || f2.ran("rbd unmap") {
		t.Fatalf("err = %v %q", err, f2.script.Lines())
	}
}

func TestMapOutputNotADevice(t *testing.T) {
	f := newFixture(t, "")
	f.script.On("rbd info", infoLayering, 0).On("rbd status", `{}`, 0).On("rbd map", "/dev/sda\n", 0)
	if _, _, err := f.mustParse(t, base()...).Acquire(context.Background(), f.env, false); err == nil || !strings.Contains(err.Error(), "not a device") {
		t.Fatalf("err = %v", err)
	}
}

func TestStaleKeyFilesRemoved(t *testing.T) {
	f := newFixture(t, "")
	dir := f.env.Layout.Keys()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	old, fresh := filepath.Join(dir, "key-old"), filepath.Join(dir, "key-fresh")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-time.Hour)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	f.script.On("rbd info", infoLayering, 0).On("rbd status", `{}`, 0).OnFunc("rbd map", f.mapsTo(t, "/dev/rbd0"))
	if _, _, err := f.mustParse(t, base()...).Acquire(context.Background(), f.env, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatal("stale key file kept")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatal("a live call's key file was removed")
	}
	_ = os.Remove(fresh)
}

func TestRelease(t *testing.T) {
	rec := &state.Record{ID: "kube~~img~", Device: "/dev/rbd2", Data: json.RawMessage(`{"pool":"kube","image":"img","device":"/dev/rbd2"}`)}
	f := newFixture(t, "")
	f.kmap(t, "/dev/rbd2", "kube/img", imageID)
	f.script.On("rbd unmap", "", 0)
	if err := f.b.Release(context.Background(), f.env, rec); err != nil {
		t.Fatal(err)
	}
	assertLines(t, f.script.Lines(), []string{"rbd unmap /dev/rbd2"})

	// Gone already, or the number now maps another image: nothing to do.
	for _, other := range []string{"", "kube/other", "kube/ns/img", "kube/img@s", "rbd/img"} {
		f := newFixture(t, "")
		if other != "" {
			f.kmap(t, "/dev/rbd2", other, imageID)
		}
		if err := f.b.Release(context.Background(), f.env, rec); err != nil || len(f.script.Calls) != 0 {
			t.Fatalf("%s: %v %q", other, err, f.script.Lines())
		}
	}

	// Force only when config allows it.
	f = newFixture(t, "")
	f.cfg.RBD.AllowForceUnmap = true
	f.kmap(t, "/dev/rbd2", "kube/img", imageID)
	f.script.On("rbd unmap", "", 0)
	if err := f.b.Release(context.Background(), f.env, rec); err != nil {
		t.Fatal(err)
	}
	if got := f.script.Lines()[0]; got != "rbd unmap /dev/rbd2 -o force" {
		t.Fatal(got)
	}

	// "not mapped" is success.
	f = newFixture(t, "")
	f.kmap(t, "/dev/rbd2", "kube/img", imageID)
	f.script.OnFunc("rbd unmap", exitErr(22, "rbd: /dev/rbd2: not a mapped image or snapshot"))
	if err := f.b.Release(context.Background(), f.env, rec); err != nil {
		t.Fatal(err)
	}

	// Busy: an error that keeps the kernel's reason and says what to do.
	f = newFixture(t, "")
	f.kmap(t, "/dev/rbd2", "kube/img", imageID)
	f.script.OnFunc("rbd unmap", exitErr(16, "rbd: sysfs write failed\nrbd: unmap failed: (16) Device or resource busy"))
	err := f.b.Release(context.Background(), f.env, rec)
	if err == nil || !strings.Contains(err.Error(), "(16) Device or resource busy") || !strings.Contains(err.Error(), "allowForceUnmap") {
		t.Fatalf("err = %v", err)
	}

	// Unmap failed, but the device is gone by the time we look: success.
	f = newFixture(t, "")
	f.kmap(t, "/dev/rbd2", "kube/img", imageID)
	f.script.OnFunc("rbd unmap", func(c runner.Cmd) (runner.Result, error) {
		f.kunmap("/dev/rbd2")
		return exitErr(2, "rbd: unmap failed: (2) No such file or directory")(c)
	})
	if err := f.b.Release(context.Background(), f.env, rec); err != nil {
		t.Fatal(err)
	}
}

// A record saved before Acquire, by a driver that died inside it, has no
// data: the mapping is found by the image its ID names.
func TestReleaseFromIDAlone(t *testing.T) {
	f := newFixture(t, "")
	f.threeMappings(t)
	f.script.On("rbd unmap", "", 0)
	v := f.mustParse(t, base("snapshot", "s1", "readOnly", "true")...)
	if err := f.b.Release(context.Background(), f.env, &state.Record{ID: v.ID()}); err != nil {
		t.Fatal(err)
	}
	assertLines(t, f.script.Lines(), []string{"rbd unmap /dev/rbd1"})

	f = newFixture(t, "")
	f.threeMappings(t)
	if err := f.b.Release(context.Background(), f.env, &state.Record{ID: f.mustParse(t, base()...).ID(), Data: json.RawMessage(`garbage`), Device: "/dev/rbd9"}); err != nil || f.ran("rbd unmap") {
		t.Fatalf("%v %q", err, f.script.Lines())
	}
	f = newFixture(t, "")
	if err := f.b.Release(context.Background(), f.env, &state.Record{ID: "not-an-rbd-id"}); err != nil || len(f.script.Calls) != 0 {
		t.Fatalf("%v %q", err, f.script.Lines())
	}
}

func (f *fixture) setKernelSize(t *testing.T, dev string, bytes int64) {
	t.Helper()
	dir := filepath.Join(f.block, filepath.Base(dev))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "size"), []byte(fmt.Sprintf("%d\n", bytes/512)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestExpand(t *testing.T) {
	rec := &state.Record{ID: "kube~~img~", Device: "/dev/rbd0"}
	// Node keyring: info, resize (rounded up to MiB), then the kernel sees it.
	f := newFixture(t, "")
	f.cfg.RBD.Keyring, f.cfg.RBD.User = "/etc/ceph/node.keyring", "node"
	f.setKernelSize(t, "/dev/rbd0", 1<<30)
	f.script.On("rbd info", infoLayering, 0)
	f.script.OnFunc("rbd resize", func(runner.Cmd) (runner.Result, error) {
		f.setKernelSize(t, "/dev/rbd0", 2<<30)
		return runner.Result{}, nil
	})
	v := f.mustParse(t, "monitors", "m1", "pool", "kube", "image", "img")
	if err := v.Expand(context.Background(), f.env, rec, 2<<30-1000); err != nil {
		t.Fatal(err)
	}
	auth := timeouts + " --id node -m m1:6789 --conf=/dev/null --keyring=/etc/ceph/node.keyring"
	assertLines(t, f.script.Lines(), []string{
		"rbd info kube/img --format json" + auth,
		"rbd resize kube/img --size 2048M" + auth,
	})

	// The device already has the size: nothing runs, no credentials needed.
	f = newFixture(t, "")
	f.setKernelSize(t, "/dev/rbd0", 2<<30)
	if err := f.mustParse(t, "monitors", "m1", "pool", "kube", "image", "img").Expand(context.Background(), f.env, rec, 2<<30); err != nil || len(f.script.Calls) != 0 {
		t.Fatalf("%v %q", err, f.script.Lines())
	}

	// The image is already big (grown by the operator), the kernel lags:
	// no resize, wait for the kernel.
	f = newFixture(t, "")
	f.cfg.RBD.Keyring = "/etc/ceph/node.keyring"
	f.setKernelSize(t, "/dev/rbd0", 1<<30)
	f.script.OnFunc("rbd info", func(runner.Cmd) (runner.Result, error) {
		f.setKernelSize(t, "/dev/rbd0", 2<<30)
		return runner.Result{Stdout: []byte(`{"size":2147483648}`)}, nil
	})
	if err := f.mustParse(t, "monitors", "m1", "pool", "kube", "image", "img").Expand(context.Background(), f.env, rec, 2<<30); err != nil || f.ran("rbd resize") {
		t.Fatalf("%v %q", err, f.script.Lines())
	}

	// No node-local credentials: say how to fix it, run nothing.
	f = newFixture(t, "")
	f.setKernelSize(t, "/dev/rbd0", 1<<30)
	err := f.mustParse(t, "monitors", "m1", "pool", "kube", "image", "img").Expand(context.Background(), f.env, rec, 2<<30)
	if err == nil || !strings.Contains(err.Error(), "rbd.keyring") || !strings.Contains(err.Error(), "rbd resize --size 2048M kube/img") || len(f.script.Calls) != 0 {
		t.Fatalf("%v %q", err, f.script.Lines())
	}

	// The kernel never sees the new size: a bounded wait, then an error.
	f = newFixture(t, "")
	f.cfg.RBD.Keyring = "/etc/ceph/node.keyring"
	f.setKernelSize(t, "/dev/rbd0", 1<<30)
	f.script.On("rbd info", infoLayering, 0).On("rbd resize", "", 0)
	err = f.mustParse(t, "monitors", "m1", "pool", "kube", "image", "img").Expand(context.Background(), f.env, rec, 2<<30)
	if err == nil || !strings.Contains(err.Error(), "still shows 1073741824 bytes") {
		t.Fatalf("err = %v", err)
	}

	// A failed resize keeps Ceph's reason.
	f = newFixture(t, "")
	f.cfg.RBD.Keyring = "/etc/ceph/node.keyring"
	f.setKernelSize(t, "/dev/rbd0", 1<<30)
	f.script.On("rbd info", infoLayering, 0).OnFunc("rbd resize", exitErr(1, "rbd: resize error: (1) Operation not permitted"))
	err = f.mustParse(t, "monitors", "m1", "pool", "kube", "image", "img").Expand(context.Background(), f.env, rec, 2<<30)
	if err == nil || !strings.Contains(err.Error(), "(1) Operation not permitted") {
		t.Fatalf("err = %v", err)
	}
}

func TestBackendBasics(t *testing.T) {
	b := New()
	if b.Name() != "rbd" || b.SysBus != "/sys/bus/rbd" || b.SysBlock != "/sys/block" {
		t.Fatal(b)
	}
	k := b.Keys()
	k[0] = "changed"
	if b.Keys()[0] != "monitors" {
		t.Fatal("Keys shares its slice")
	}
	if DefaultBackoff(0) != time.Second || DefaultBackoff(1) != 1400*time.Millisecond || DefaultBackoff(7) != 8*time.Second || DefaultBackoff(1000) != 8*time.Second {
		t.Fatal(DefaultBackoff(0), DefaultBackoff(1), DefaultBackoff(7), DefaultBackoff(1000))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := New().Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// `kubectl create secret --from-file` adds a newline: the key file holds
// the bare key.
func TestSecretWithTrailingNewline(t *testing.T) {
	f := newFixture(t, "")
	var content string
	f.script.On("rbd info", infoLayering, 0).On("rbd status", `{}`, 0)
	f.script.OnFunc("rbd map", func(c runner.Cmd) (runner.Result, error) {
		b, _ := os.ReadFile(strings.TrimPrefix(c.Args[len(c.Args)-1], "--keyfile="))
		content = string(b)
		f.kmap(t, "/dev/rbd0", "rbd/i", imageID)
		return runner.Result{Stdout: []byte("/dev/rbd0\n")}, nil
	})
	v := f.mustParse(t, "monitors", "m", "image", "i", "kubernetes.io/secret/key", secret(key+"\n"))
	if _, _, err := v.Acquire(context.Background(), f.env, false); err != nil || content != key {
		t.Fatalf("%v %q", err, content)
	}
}

// The key file cannot be written: an error before any rbd command that
// needs it.
func TestKeyFileUnwritable(t *testing.T) {
	f := newFixture(t, "")
	if err := os.WriteFile(f.env.Layout.Keys(), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := f.mustParse(t, base()...).Acquire(context.Background(), f.env, false)
	if err == nil || !strings.Contains(err.Error(), "key dir") {
		t.Fatalf("err = %v", err)
	}
	assertLines(t, f.script.Lines(), nil)
	_ = os.Remove(f.env.Layout.Keys())
}
