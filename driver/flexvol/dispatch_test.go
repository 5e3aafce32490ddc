package flexvol

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/logging"
	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/volume"
)

// recorder is a Lifecycle that records which method got which arguments,
// and answers err (and dev for waitforattach).
type recorder struct {
	got []string
	err error
	dev string
}

func (r *recorder) rec(s ...string) error {
	r.got = append(r.got, strings.Join(s, "|"))
	return r.err
}
func (r *recorder) Init() volume.Capabilities {
	_ = r.rec("init")
	return volume.Capabilities{FSGroup: true, RequiresFSResize: true}
}
func (r *recorder) Attach(_ context.Context, o options.Options) error { return r.rec("attach", o["k"]) }
func (r *recorder) IsAttached(_ context.Context, o options.Options) (bool, error) {
	return true, r.rec("isattached", o["k"])
}
func (r *recorder) Detach(context.Context) error { return r.rec("detach") }
func (r *recorder) WaitForAttach(_ context.Context, o options.Options) (string, error) {
	return r.dev, r.rec("waitforattach", o["k"])
}
func (r *recorder) MountDevice(_ context.Context, p string, o options.Options) error {
	return r.rec("mountdevice", p, o["k"])
}
func (r *recorder) UnmountDevice(_ context.Context, p string) error {
	return r.rec("unmountdevice", p)
}
func (r *recorder) Mount(_ context.Context, p string, o options.Options) error {
	return r.rec("mount", p, o["k"])
}
func (r *recorder) Unmount(_ context.Context, p string) error { return r.rec("unmount", p) }
func (r *recorder) ExpandFS(_ context.Context, o options.Options, n int64) error {
	return r.rec("expandfs", o["k"], itoa(n))
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// Every call with kubelet's exact argv reaches the right method with the
// right arguments in the right order.
func TestDispatchArgv(t *testing.T) {
	j := `{"k":"v"}`
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"init"}, "init"},
		{[]string{"attach", j, "node1"}, "attach|v"},
		{[]string{"isattached", j, "node1"}, "isattached|v"},
		{[]string{"detach", "pv1", "node1"}, "detach"},
		{[]string{"waitforattach", "/dev/rbd0", j}, "waitforattach|v"},
		{[]string{"mountdevice", "/m", "/dev/rbd0", j}, "mountdevice|/m|v"},
		{[]string{"unmountdevice", "/m"}, "unmountdevice|/m"},
		{[]string{"mount", "/p", j}, "mount|/p|v"},
		{[]string{"unmount", "/p"}, "unmount|/p"},
		{[]string{"expandfs", j, "/dev/rbd0", "/p", "200", "100"}, "expandfs|v|200"},
	}
	for _, tc := range cases {
		r := &recorder{}
		res := Dispatch(context.Background(), r, tc.args)
		if res.Status != StatusSuccess || len(r.got) != 1 || r.got[0] != tc.want {
			t.Errorf("%q: %+v %q, want %q", tc.args, res, r.got, tc.want)
		}
	}
}

func TestDispatchRefusals(t *testing.T) {
	cases := []struct {
		args   []string
		status string
		msg    string
	}{
		{nil, StatusFailure, "no call given"},
		{[]string{"getvolumename", "{}"}, StatusNotSupported, "getvolumename"},
		{[]string{"expandvolume", "{}", "/m", "2", "1"}, StatusNotSupported, "expandvolume"},
		{[]string{"provision", "{}"}, StatusNotSupported, "provision"},
		{[]string{"init", "extra"}, StatusFailure, "init takes 0 argument(s), got 1: usage: init"},
		{[]string{"mount", "/p"}, StatusFailure, "usage: mount <podVolumeDir> <json>"},
		{[]string{"unmount"}, StatusFailure, "usage: unmount <podVolumeDir>"},
		{[]string{"detach", "pv1"}, StatusFailure, "usage: detach <pvOrVolumeName> <nodeName>"},
		{[]string{"mountdevice", "/m", "{}"}, StatusFailure, "usage: mountdevice <deviceMountPath> <devicePath> <json>"},
		{[]string{"expandfs", "{}", "/d", "/p", "1"}, StatusFailure, "usage: expandfs"},
		{[]string{"expandfs", "{}", "/d", "/p", "a", "1"}, StatusFailure, "byte counts"},
		{[]string{"mount", "/p", "{"}, StatusFailure, "not a JSON object"},
		{[]string{"attach", `{"k":5}`, "n"}, StatusFailure, `"k" must be a string`},
		{[]string{"\x1b[31mevil"}, StatusNotSupported, `\x1b[31mevil`},
	}
	for _, tc := range cases {
		r := &recorder{}
		res := Dispatch(context.Background(), r, tc.args)
		if res.Status != tc.status || !strings.Contains(res.Message, tc.msg) {
			t.Errorf("%q: %+v, want %s %q", tc.args, res, tc.status, tc.msg)
		}
		if len(r.got) != 0 {
			t.Errorf("%q reached the driver: %q", tc.args, r.got)
		}
	}
}

type panicky struct{ recorder }

func (panicky) Init() volume.Capabilities { panic("boom") }

func TestHandleRecoversPanics(t *testing.T) {
	var logged string
	res := Handle(context.Background(), &panicky{}, []string{"init"}, func(v any, _ []byte) { logged = v.(string) })
	if res.Status != StatusFailure || !strings.Contains(res.Message, "internal error") || logged != "boom" {
		t.Fatalf("%+v %q", res, logged)
	}
}

func TestWriteOneObjectAllCapabilities(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, Result{Status: StatusSuccess, Capabilities: &Capabilities{}}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"attach":false`, `"selinuxRelabel":false`, `"supportsMetrics":false`, `"fsGroup":false`, `"requiresFSResize":false`} {
		if !strings.Contains(b.String(), k) {
			t.Errorf("answer %s lacks %s", b.String(), k)
		}
	}
	if strings.Count(b.String(), "\n") != 1 || !strings.HasSuffix(b.String(), "}\n") {
		t.Errorf("not one line: %q", b.String())
	}
}

// The lifecycle's plain values and error kinds become kubelet's answers
// here and nowhere else.
func TestAnswersFromLifecycleValues(t *testing.T) {
	long := errors.New(strings.Repeat("x", 1<<20))
	cases := []struct {
		args   []string
		err    error
		dev    string
		status string
		check  func(Result) bool
	}{
		{[]string{"init"}, nil, "", StatusSuccess, func(r Result) bool {
			return r.Capabilities != nil && r.Capabilities.FSGroup && r.Capabilities.RequiresFSResize && !r.Capabilities.Attach
		}},
		{[]string{"mount", "/p", "{}"}, errkind.Errorf(errkind.Unsupported, "mount is not supported in attach mode"), "", StatusNotSupported, func(r Result) bool {
			return r.Message == "mount is not supported in attach mode"
		}},
		{[]string{"mount", "/p", "{}"}, errkind.Errorf(errkind.Busy, "volume v is busy"), "", StatusFailure, func(r Result) bool {
			return r.Message == "volume v is busy"
		}},
		{[]string{"unmount", "/p"}, long, "", StatusFailure, func(r Result) bool {
			r = r.Bounded(func(s string) string { return s })
			return len(r.Message) <= logging.MaxAnswer+64 && strings.HasPrefix(r.Message, "xxx")
		}},
		{[]string{"waitforattach", "/dev/x", "{}"}, nil, "/dev/rbd3", StatusSuccess, func(r Result) bool { return r.Device == "/dev/rbd3" }},
		{[]string{"isattached", "{}", "n"}, nil, "", StatusSuccess, func(r Result) bool { return r.Attached != nil && *r.Attached }},
	}
	for _, tc := range cases {
		res := Dispatch(context.Background(), &recorder{err: tc.err, dev: tc.dev}, tc.args)
		if res.Status != tc.status || !tc.check(res) {
			t.Errorf("%q with %v: %+v", tc.args, tc.err, res)
		}
	}
}

func TestCallNamesComeFromTheTable(t *testing.T) {
	names := CallNames()
	if len(names) != len(calls) || names[0] != "init" {
		t.Fatalf("%q", names)
	}
	for _, n := range names {
		if _, ok := lookup(n); !ok {
			t.Errorf("%s not in the table", n)
		}
	}
}

// The answer is masked before it is cut: a secret straddling the cut
// leaves no fragment behind.
func TestBoundedMasksBeforeCutting(t *testing.T) {
	secret := strings.Repeat("S3cr3t", 40)
	for off := logging.MaxAnswer/2 - len(secret); off < logging.MaxAnswer/2+len(secret); off += 7 {
		msg := strings.Repeat("a", off) + secret + strings.Repeat("b", 3*logging.MaxAnswer)
		r := Failure(errors.New(msg)).Bounded(func(s string) string { return strings.ReplaceAll(s, secret, "***") })
		if strings.Contains(r.Message, "S3cr3t") || strings.Contains(r.Message, "3cr3") {
			t.Fatalf("offset %d: fragment of the secret in %q", off, r.Message)
		}
	}
}
