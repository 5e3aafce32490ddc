package volume

import (
	"bytes"
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
	"github.com/flexblock/flexblock/driver/lock"
	"github.com/flexblock/flexblock/driver/logging"
	"github.com/flexblock/flexblock/driver/mount"
	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/state"
)

// fakeBackend hands out a device per option "device" and records what the
// lifecycle asked of it; each hook can be made to fail.
type fakeBackend struct {
	acquired, released, expanded []string
	authorized                   []bool // nodeLocal of each Authorize
	acquireErr, releaseErr       error
	authorizeErr, identifyErr    error
	expandErr                    error
	identified                   int
}

func (*fakeBackend) Name() string    { return "fake" }
func (*fakeBackend) Keys() []string  { return []string{"device", "extraLock"} }
func (*fakeBackend) Tools() []string { return nil }

func (b *fakeBackend) Parse(c *options.Common, _ *config.Config) (Spec, error) {
	dev := c.Raw["device"]
	if !strings.HasPrefix(dev, "/dev/") {
		return nil, options.Errorf("device", "give a /dev path", "is %q", dev)
	}
	return &fakeSpec{b: b, dev: dev, extra: c.Raw["extraLock"]}, nil
}

func (b *fakeBackend) Release(_ context.Context, _ *Env, rec *state.Record) error {
	if b.releaseErr != nil {
		return b.releaseErr
	}
	b.released = append(b.released, rec.Device)
	return nil
}

type fakeSpec struct {
	b          *fakeBackend
	dev, extra string
}

func (s *fakeSpec) ID() string { return filepath.Base(s.dev) }

func (s *fakeSpec) LockKeys() []string {
	if s.extra == "" {
		return nil
	}
	return []string{s.extra}
}

func (s *fakeSpec) Acquire(context.Context, *Env, bool) (string, json.RawMessage, error) {
	if s.b.acquireErr != nil {
		return "", nil, s.b.acquireErr
	}
	s.b.acquired = append(s.b.acquired, s.dev)
	return s.dev, json.RawMessage(`{"dev":"` + s.dev + `"}`), nil
}

func (s *fakeSpec) Authorize(_ context.Context, _ *Env, _ *state.Record, nodeLocal bool) error {
	s.b.authorized = append(s.b.authorized, nodeLocal)
	return s.b.authorizeErr
}

func (s *fakeSpec) Identify(_ context.Context, _ *Env, rec *state.Record) error {
	s.b.identified++
	if s.b.identifyErr != nil {
		return s.b.identifyErr
	}
	if rec.Device != s.dev {
		return errkind.Errorf(errkind.Mismatch, "%s is not %s", rec.Device, s.dev)
	}
	return nil
}

func (s *fakeSpec) Expand(_ context.Context, _ *Env, rec *state.Record, n int64) error {
	s.b.expanded = append(s.b.expanded, fmt.Sprintf("%s:%d", rec.Device, n))
	return s.b.expandErr
}

// fakeFormat answers Prepare; it formats "blank" devices once.
type fakeFormat struct {
	calls     []string
	err       error
	formatted map[string]bool
}

func (f *fakeFormat) Prepare(_ context.Context, dev, fsType string, ro bool, mkfs []string) (bool, error) {
	f.calls = append(f.calls, fmt.Sprintf("%s %s ro=%v %v", dev, fsType, ro, mkfs))
	if f.err != nil {
		return false, f.err
	}
	if f.formatted == nil {
		f.formatted = map[string]bool{}
	}
	did := !f.formatted[dev]
	f.formatted[dev] = true
	return did, nil
}

// node is one lifecycle wired to fakes, on a kubelet root in a temp dir.
type node struct {
	t       *testing.T
	l       *Lifecycle
	b       *fakeBackend
	mnt     *mount.Fake
	recs    *state.Memory
	locks   *lock.Memory
	fmt     *fakeFormat
	run     *runner.Script
	log     *bytes.Buffer
	root    string
	steps   []Step
	crashAt Step
}

// errCrash is what the observer panics with at the crash step: the
// process "dies" there, and nothing after it runs.
var errCrash = errors.New("crash")

func newNode(t *testing.T, attach bool) *node {
	t.Helper()
	cfg, err := config.Load(filepath.Join(t.TempDir(), "none.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Attach = attach
	n := &node{t: t, b: &fakeBackend{}, mnt: &mount.Fake{}, recs: &state.Memory{}, locks: &lock.Memory{},
		fmt: &fakeFormat{}, run: &runner.Script{Strict: true}, log: &bytes.Buffer{}, root: t.TempDir()}
	cfg.KubeletRoot = n.root
	n.l = &Lifecycle{
		Backend: n.b,
		Env:     &Env{Config: cfg, Run: n.run, Mask: &logging.Masker{}, Log: logging.New(n.log), Layout: state.Layout{Dir: t.TempDir()}},
		Mounter: n.mnt, Format: n.fmt, Records: n.recs, Locks: n.locks,
		Now: func() time.Time { return time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC) },
		DeviceNumber: func(dev string) (int, int, error) {
			d, ok := n.mnt.Devices[dev]
			if !ok {
				return 0, 0, errkind.Errorf(errkind.NotFound, "%s: no such device", dev)
			}
			return d[0], d[1], nil
		},
		Observe: func(s Step) {
			n.steps = append(n.steps, s)
			if s == n.crashAt {
				n.crashAt = ""
				panic(errCrash)
			}
		},
	}
	return n
}

func (n *node) pod(uid string) string {
	return filepath.Join(n.root, "pods", uid, "volumes", "flexblock~fake", "vol")
}

func (n *node) global(dev string) string { return GlobalMount(n.root, "fake", filepath.Base(dev)) }

func (n *node) dmp(name string) string {
	return filepath.Join(n.root, "plugins/kubernetes.io/flexvolume/flexblock/fake/mounts", name)
}

func opts(dev string, kv ...string) options.Options {
	o := options.Options{"device": dev}
	for i := 0; i+1 < len(kv); i += 2 {
		o[kv[i]] = kv[i+1]
	}
	return o
}

var ctx = context.Background()

// call runs fn as one driver process: a crash (observer panic) ends it.
func (n *node) call(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			if v != errCrash {
				panic(v)
			}
			err = errCrash
		}
	}()
	return fn()
}

func (n *node) mount(dev, uid string, kv ...string) error {
	return n.call(func() error { return n.l.Mount(ctx, n.pod(uid), opts(dev, kv...)) })
}

func (n *node) unmount(uid string) error {
	return n.call(func() error { return n.l.Unmount(ctx, n.pod(uid)) })
}

func (n *node) mounted(p string) bool {
	ok, _ := n.mnt.Mounted(p)
	return ok
}

func (n *node) record(dev string) *state.Record {
	r, err := n.recs.Load("fake", filepath.Base(dev))
	if err != nil {
		n.t.Fatal(err)
	}
	return r
}

// clean asserts the node holds nothing: no mount, record or held lock,
// and every device acquired was released exactly once.
func (n *node) clean() {
	n.t.Helper()
	all, _ := n.mnt.All()
	if len(all) != 0 {
		n.t.Errorf("mounts left: %v", all)
	}
	if n.recs.Len() != 0 {
		recs, _ := n.recs.List("")
		n.t.Errorf("records left: %+v", recs)
	}
	if s := n.locks.String(); s != "map[]" {
		n.t.Errorf("locks held: %s", s)
	}
	acq, rel := slices.Clone(n.b.acquired), slices.Clone(n.b.released)
	slices.Sort(acq)
	slices.Sort(rel)
	if !slices.Equal(slices.Compact(acq), rel) {
		n.t.Errorf("acquired %v, released %v", n.b.acquired, n.b.released)
	}
}

func is(t *testing.T, err error, kind *errkind.Kind, text string) {
	t.Helper()
	if !errors.Is(err, kind) || !strings.Contains(fmt.Sprint(err), text) {
		t.Fatalf("got %v (kind %v), want kind %v containing %q", err, errkind.Of(err), kind, text)
	}
}
