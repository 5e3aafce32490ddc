package rbd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/state"
)

// The ID names the cluster: the same pool/image behind other monitors is
// another volume (no join without an rbd call), while the order of the
// monitors, a repeated one or the default port spelled out is the same.
func TestIDNamesTheCluster(t *testing.T) {
	f := newFixture(t, "")
	id := func(mons string) string { return f.mustParse(t, "monitors", mons, "pool", "kube", "image", "img").ID() }
	same := id("10.0.0.1,10.0.0.2:3300")
	for _, m := range []string{"10.0.0.2:3300, 10.0.0.1:6789", "10.0.0.1,10.0.0.2:3300,10.0.0.1", "10.0.0.2:3300,10.0.0.1"} {
		if id(m) != same {
			t.Errorf("%s: %s != %s", m, id(m), same)
		}
	}
	for _, m := range []string{"10.0.0.9", "10.0.0.1", "10.0.0.1,10.0.0.2", "10.0.0.1,10.0.0.2:3300,10.0.0.3"} {
		if id(m) == same {
			t.Errorf("%s shares the ID %s", m, same)
		}
	}
	if !strings.HasSuffix(same, "~kube~~img~") || len(same) > maxID || strings.ContainsAny(same, "/ ") {
		t.Fatalf("ID %q", same)
	}
	if m, ok := parseID(same); !ok || m != (mapping{Pool: "kube", Image: "img"}) {
		t.Fatalf("parseID(%s) = %+v %v", same, m, ok)
	}
}

// Records written by the previous version (ID pool~ns~image~snap, data
// without the image id) are still released.
func TestReleasesRecordsOfThePreviousVersion(t *testing.T) {
	for _, rec := range []*state.Record{
		{ID: "kube~ns~img~"},
		{ID: "kube~ns~img~", Device: "/dev/rbd2"},
		{ID: "kube~ns~img~", Device: "/dev/rbd2", Data: json.RawMessage(`{"pool":"kube","namespace":"ns","image":"img","device":"/dev/rbd2"}`)},
	} {
		f := newFixture(t, "")
		f.threeMappings(t)
		f.script.On("rbd unmap", "", 0)
		if err := f.b.Release(context.Background(), f.env, rec); err != nil {
			t.Fatal(err)
		}
		assertLines(t, f.script.Lines(), []string{"rbd unmap /dev/rbd2"})
	}
}

// Identify believes the kernel only: sysfs pool, pool_ns, name and
// current_snap, the image id, and the node's major:minor.
func TestIdentify(t *testing.T) {
	v := func(f *fixture) *Volume { return f.mustParse(t, base("radosNamespace", "ns")...) }
	rec := func(data string) *state.Record {
		return &state.Record{ID: "x", Device: "/dev/rbd2", Data: json.RawMessage(data)}
	}
	good := `{"pool":"kube","namespace":"ns","image":"img","device":"/dev/rbd2","imageId":"ns0000000001"}`
	f := newFixture(t, "")
	f.threeMappings(t)
	if err := v(f).Identify(context.Background(), f.env, rec(good)); err != nil {
		t.Fatal(err)
	}
	if err := v(f).Identify(context.Background(), f.env, rec(`{"pool":"kube","namespace":"ns","image":"img","device":"/dev/rbd2"}`)); err != nil {
		t.Fatal("a record without image id:", err)
	}
	for name, tc := range map[string]struct {
		kernel, id, data string
	}{
		"other image":       {"kube/ns/other", "ns0000000001", good},
		"other pool":        {"rbd/ns/img", "ns0000000001", good},
		"no namespace":      {"kube/img", "ns0000000001", good},
		"a snapshot":        {"kube/ns/img@s", "ns0000000001", good},
		"other image id":    {"kube/ns/img", "feedfeedfeed", good},
		"nothing mapped":    {"", "", good},
		"stale node number": {"kube/ns/img", "ns0000000001", good},
	} {
		f := newFixture(t, "")
		if tc.kernel != "" {
			f.kmap(t, "/dev/rbd2", tc.kernel, tc.id)
		}
		if name == "stale node number" {
			f.nodes["/dev/rbd2"] = [2]uint32{8, 0}
		}
		err := v(f).Identify(context.Background(), f.env, rec(tc.data))
		if !errors.Is(err, errkind.Mismatch) || !strings.Contains(err.Error(), "/dev/rbd2") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Acquire finds mappings in sysfs (rbd device list is never asked), reuses
// only one of the same image id, and refuses a device node that is not
// the kernel's device.
func TestAcquireTrustsTheKernel(t *testing.T) {
	// kube/img of another cluster (another image id) is mapped: not ours,
	// not reused, and not unmapped when our map fails.
	f := newFixture(t, "")
	f.kmap(t, "/dev/rbd0", "kube/img", "0therc1uster")
	f.script.On("rbd info", infoLayering, 0).On("rbd status", "{}", 0).OnFunc("rbd map", f.mapsTo(t, "/dev/rbd1"))
	if dev, _, err := f.mustParse(t, base()...).Acquire(context.Background(), f.env, false); err != nil || dev != "/dev/rbd1" {
		t.Fatalf("%s %v %q", dev, err, f.script.Lines())
	}
	f = newFixture(t, "")
	f.kmap(t, "/dev/rbd0", "kube/img", "0therc1uster")
	f.script.On("rbd info", infoLayering, 0).On("rbd status", "{}", 0)
	f.script.OnFunc("rbd map", func(c runner.Cmd) (runner.Result, error) {
		f.kmap(t, "/dev/rbd1", "kube/img", imageID)
		return runner.Result{ExitCode: -1}, fmt.Errorf("rbd map: %w after 90s", runner.ErrTimeout)
	}).On("rbd unmap", "", 0)
	if _, _, err := f.mustParse(t, base()...).Acquire(context.Background(), f.env, false); err == nil || f.ran("rbd unmap /dev/rbd0") || !f.ran("rbd unmap /dev/rbd1") {
		t.Fatalf("%v %q", err, f.script.Lines())
	}
	// Release of our record leaves the other cluster's mapping alone.
	f = newFixture(t, "")
	f.kmap(t, "/dev/rbd0", "kube/img", "0therc1uster")
	f.kmap(t, "/dev/rbd1", "kube/img", imageID)
	f.script.On("rbd unmap", "", 0)
	rec := &state.Record{ID: "x", Device: "/dev/rbd0", Data: json.RawMessage(`{"pool":"kube","image":"img","device":"/dev/rbd0","imageId":"` + imageID + `"}`)}
	if err := f.b.Release(context.Background(), f.env, rec); err != nil || len(f.script.Calls) != 0 {
		t.Fatalf("%v %q", err, f.script.Lines())
	}

	f = newFixture(t, "")
	f.kmap(t, "/dev/rbd0", "kube/img", imageID)
	f.nodes["/dev/rbd0"] = [2]uint32{7, 3} // a loop device planted as /dev/rbd0
	f.script.On("rbd info", infoLayering, 0)
	if _, _, err := f.mustParse(t, base()...).Acquire(context.Background(), f.env, false); !errors.Is(err, errkind.Mismatch) {
		t.Fatalf("err = %v", err)
	}

	// rbd map printed a device the kernel says is another image.
	f = newFixture(t, "")
	f.script.On("rbd info", infoLayering, 0).On("rbd status", "{}", 0).On("rbd unmap", "", 0)
	f.script.OnFunc("rbd map", func(c runner.Cmd) (runner.Result, error) {
		f.kmap(t, "/dev/rbd1", "kube/other", "0ther")
		return runner.Result{Stdout: []byte("/dev/rbd1\n")}, nil
	})
	if _, _, err := f.mustParse(t, base()...).Acquire(context.Background(), f.env, false); !errors.Is(err, errkind.Mismatch) || f.ran("rbd unmap /dev/rbd1") {
		t.Fatalf("err = %v %q", err, f.script.Lines())
	}
}

// Authorize: one read-only rbd info with the joining pod's own
// credentials, compared with the kernel's image id.
func TestAuthorize(t *testing.T) {
	rec := &state.Record{ID: "x", Device: "/dev/rbd0", Data: json.RawMessage(`{"pool":"kube","image":"img","device":"/dev/rbd0","imageId":"` + imageID + `"}`)}
	f := newFixture(t, "")
	f.kmap(t, "/dev/rbd0", "kube/img", imageID)
	f.script.On("rbd info", infoLayering, 0)
	if err := f.mustParse(t, base()...).Authorize(context.Background(), f.env, rec, false); err != nil {
		t.Fatal(err)
	}
	auth := timeouts + " --id kube -m 10.0.0.1:6789,10.0.0.2:3300 --conf=/dev/null --keyfile=" + f.keyfileArg(t)
	assertLines(t, f.script.Lines(), []string{"rbd info kube/img --format json" + auth})

	for name, tc := range map[string]struct {
		kv   []string
		info func(runner.Cmd) (runner.Result, error)
		kind *errkind.Kind
		want string
	}{
		"wrong key":      {base(), exitErr(13, "rbd: couldn't connect to the cluster!"), errkind.Denied, `refused user "kube"`},
		"unknown user":   {base("user", "nobody"), exitErr(1, "rbd: couldn't connect to the cluster!"), errkind.Denied, `refused user "nobody"`},
		"no caps":        {base(), exitErr(1, "rbd: error opening pool 'kube': (1) Operation not permitted"), errkind.Denied, "may not use pool kube"},
		"no credentials": {[]string{"monitors", "10.0.0.1,10.0.0.2:3300", "pool", "kube", "image", "img"}, nil, errkind.Denied, "no Ceph credentials"},
		"other cluster":  {base(), exitErr(2, "rbd: error opening image img: (2) No such file or directory"), errkind.Mismatch, "not the cluster"},
		"other image id": {base(), okInfo(`{"id":"0ther1d","features":["layering"]}`), errkind.Mismatch, "another cluster's image"},
		"monitors gone":  {base(), exitErr(110, "monclient(hunting): authenticate timed out after 10\nrbd: couldn't connect to the cluster!"), errkind.Timeout, "no answer from the monitors 10.0.0.1:6789,10.0.0.2:3300 within 10s"},
	} {
		f := newFixture(t, "")
		f.kmap(t, "/dev/rbd0", "kube/img", imageID)
		if tc.info != nil {
			f.script.OnFunc("rbd info", tc.info)
		}
		err := f.mustParse(t, tc.kv...).Authorize(context.Background(), f.env, rec, false)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "kube/img") {
			t.Errorf("%s: %v", name, err)
		}
		if len(f.script.Calls) > 1 {
			t.Errorf("%s: more than one call: %q", name, f.script.Lines())
		}
	}
}

func okInfo(out string) func(runner.Cmd) (runner.Result, error) {
	return func(runner.Cmd) (runner.Result, error) { return runner.Result{Stdout: []byte(out)}, nil }
}

// Every call that talks to the cluster carries Ceph's client timeouts, from
// the config; a monitor that does not answer is a Timeout naming them.
func TestConnectTimeout(t *testing.T) {
	f := newFixture(t, "")
	f.cfg.Timeouts = map[string]config.Duration{"rbdConnect": config.Duration(3 * time.Second)}
	f.script.OnFunc("rbd info", exitErr(110, "monclient(hunting): authenticate timed out after 3\nrbd: couldn't connect to the cluster!"))
	_, _, err := f.mustParse(t, base()...).Acquire(context.Background(), f.env, false)
	if !errors.Is(err, errkind.Timeout) || !strings.Contains(err.Error(), "no answer from the monitors 10.0.0.1:6789,10.0.0.2:3300 within 3s") {
		t.Fatalf("err = %v", err)
	}
	if c := f.script.Calls[0]; !slices.Contains(c.Args, "--client_mount_timeout=3") || !slices.Contains(c.Args, "--rados_mon_op_timeout=3") {
		t.Fatalf("no client timeouts: %s", c)
	}
	// The tool's own bound ran out: a Timeout too.
	f = newFixture(t, "")
	f.script.OnFunc("rbd info", func(c runner.Cmd) (runner.Result, error) {
		return runner.Result{ExitCode: -1}, fmt.Errorf("rbd: %w after 90s", runner.ErrTimeout)
	})
	if _, _, err := f.mustParse(t, base()...).Acquire(context.Background(), f.env, false); !errors.Is(err, errkind.Timeout) || !errors.Is(err, runner.ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
}

// size is a Kubernetes quantity: 10G is 10^9 bytes, 10Gi 2^30.
func TestSizeIsAKubernetesQuantity(t *testing.T) {
	for size, want := range map[string]int64{"10G": 10_000_000_000, "10Gi": 10 << 30, "1e9": 1_000_000_000, "1.5Gi": 3 << 29} {
		f := newFixture(t, "")
		if v := f.mustParse(t, base("size", size)...); v.Size != want {
			t.Errorf("%s: %d, want %d", size, v.Size, want)
		}
	}
	if _, err := newFixture(t, "").parse(t, base("size", "10g")...); !errors.Is(err, errkind.Invalid) {
		t.Fatalf("10g: %v", err)
	}
}

// Every tool the tests of this package saw run is in Tools (checked after
// each test by the fixture), and Tools lists no tool nothing runs.
func TestTools(t *testing.T) {
	if got := New().Tools(); !slices.Equal(got, []string{"rbd"}) {
		t.Fatal(got)
	}
	if filepath.Base(New().SysBus) != "rbd" {
		t.Fatal(New().SysBus)
	}
}
