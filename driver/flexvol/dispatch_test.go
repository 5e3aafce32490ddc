package flexvol

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/flexblock/flexblock/driver/options"
)

// recorder is a Driver that records which method got which arguments.
type recorder struct{ got []string }

func (r *recorder) rec(s ...string) Result {
	r.got = append(r.got, strings.Join(s, "|"))
	return Success()
}
func (r *recorder) Init() Result { return r.rec("init") }
func (r *recorder) Attach(_ context.Context, o options.Options, n string) Result {
	return r.rec("attach", o["k"], n)
}
func (r *recorder) IsAttached(_ context.Context, o options.Options, n string) Result {
	return r.rec("isattached", o["k"], n)
}
func (r *recorder) Detach(_ context.Context, v, n string) Result { return r.rec("detach", v, n) }
func (r *recorder) WaitForAttach(_ context.Context, d string, o options.Options) Result {
	return r.rec("waitforattach", d, o["k"])
}
func (r *recorder) MountDevice(_ context.Context, p, d string, o options.Options) Result {
	return r.rec("mountdevice", p, d, o["k"])
}
func (r *recorder) UnmountDevice(_ context.Context, p string) Result {
	return r.rec("unmountdevice", p)
}
func (r *recorder) Mount(_ context.Context, p string, o options.Options) Result {
	return r.rec("mount", p, o["k"])
}
func (r *recorder) Unmount(_ context.Context, p string) Result { return r.rec("unmount", p) }
func (r *recorder) ExpandFS(_ context.Context, o options.Options, d, p string, n, old int64) Result {
	return r.rec("expandfs", o["k"], d, p, itoa(n), itoa(old))
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
		{[]string{"attach", j, "node1"}, "attach|v|node1"},
		{[]string{"isattached", j, "node1"}, "isattached|v|node1"},
		{[]string{"detach", "pv1", "node1"}, "detach|pv1|node1"},
		{[]string{"waitforattach", "/dev/rbd0", j}, "waitforattach|/dev/rbd0|v"},
		{[]string{"mountdevice", "/m", "/dev/rbd0", j}, "mountdevice|/m|/dev/rbd0|v"},
		{[]string{"unmountdevice", "/m"}, "unmountdevice|/m"},
		{[]string{"mount", "/p", j}, "mount|/p|v"},
		{[]string{"unmount", "/p"}, "unmount|/p"},
		{[]string{"expandfs", j, "/dev/rbd0", "/p", "200", "100"}, "expandfs|v|/dev/rbd0|/p|200|100"},
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

func (panicky) Init() Result { panic("boom") }

func TestRunRecoversPanics(t *testing.T) {
	var logged string
	res := Run(context.Background(), &panicky{}, []string{"init"}, func(v any, _ []byte) { logged = v.(string) })
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
