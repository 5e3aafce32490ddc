package flexvol

import (
	"context"
	"strconv"
	"strings"

	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/volume"
)

// Lifecycle is what the calls do on the node: driver/volume's Lifecycle,
// or a fake in tests. It speaks plain Go; this package alone turns its
// values and errors into kubelet's answers.
type Lifecycle interface {
	Init() volume.Capabilities
	Attach(ctx context.Context, o options.Options) error
	IsAttached(ctx context.Context, o options.Options) (bool, error)
	Detach(ctx context.Context) error
	WaitForAttach(ctx context.Context, o options.Options) (device string, err error)
	MountDevice(ctx context.Context, deviceMountPath string, o options.Options) error
	UnmountDevice(ctx context.Context, deviceMountPath string) error
	Mount(ctx context.Context, podDir string, o options.Options) error
	Unmount(ctx context.Context, podDir string) error
	ExpandFS(ctx context.Context, o options.Options, newSize int64) error
}

var _ Lifecycle = (*volume.Lifecycle)(nil)

// call is one FlexVolume call as kubelet makes it: its name, its argv after
// the name (the usage shown in messages), and what it does.
type call struct {
	name string
	args []string
	run  func(ctx context.Context, l Lifecycle, a []string) Result
}

func (c call) usage() string { return strings.TrimSpace(c.name + " " + strings.Join(c.args, " ")) }

// calls is the table of every call kubelet makes (flexvolume-protocol.md).
var calls = []call{
	{"init", nil, func(_ context.Context, l Lifecycle, _ []string) Result { return capabilities(l.Init()) }},
	{"getvolumename", []string{"<json>"}, func(context.Context, Lifecycle, []string) Result {
		// kubelet throws the answer away and uses the PV or volume name.
		return NotSupported("getvolumename")
	}},
	{"attach", []string{"<json>", "<nodeName>"}, withOpts(0, func(ctx context.Context, l Lifecycle, o options.Options, _ []string) Result {
		return answer(l.Attach(ctx, o))
	})},
	{"isattached", []string{"<json>", "<nodeName>"}, withOpts(0, func(ctx context.Context, l Lifecycle, o options.Options, _ []string) Result {
		ok, err := l.IsAttached(ctx, o)
		if err != nil {
			return answer(err)
		}
		return Result{Status: StatusSuccess, Attached: &ok}
	})},
	{"detach", []string{"<pvOrVolumeName>", "<nodeName>"}, func(ctx context.Context, l Lifecycle, _ []string) Result {
		return answer(l.Detach(ctx))
	}},
	{"waitforattach", []string{"<devicePath>", "<json>"}, withOpts(1, func(ctx context.Context, l Lifecycle, o options.Options, _ []string) Result {
		dev, err := l.WaitForAttach(ctx, o)
		res := answer(err)
		res.Device = dev
		return res
	})},
	{"mountdevice", []string{"<deviceMountPath>", "<devicePath>", "<json>"}, withOpts(2, func(ctx context.Context, l Lifecycle, o options.Options, a []string) Result {
		return answer(l.MountDevice(ctx, a[0], o))
	})},
	{"unmountdevice", []string{"<deviceMountPath>"}, func(ctx context.Context, l Lifecycle, a []string) Result {
		return answer(l.UnmountDevice(ctx, a[0]))
	}},
	{"mount", []string{"<podVolumeDir>", "<json>"}, withOpts(1, func(ctx context.Context, l Lifecycle, o options.Options, a []string) Result {
		return answer(l.Mount(ctx, a[0], o))
	})},
	{"unmount", []string{"<podVolumeDir>"}, func(ctx context.Context, l Lifecycle, a []string) Result {
		return answer(l.Unmount(ctx, a[0]))
	}},
	{"expandvolume", []string{"<json>", "<deviceMountPath>", "<newBytes>", "<oldBytes>"}, func(context.Context, Lifecycle, []string) Result {
		// Only a controller could call it, and kubelet's expander never does.
		return NotSupported("expandvolume")
	}},
	{"expandfs", []string{"<json>", "<devicePath>", "<podVolumeDir>", "<newBytes>", "<oldBytes>"}, withOpts(0, expandFS)},
}

func capabilities(c volume.Capabilities) Result {
	return Result{Status: StatusSuccess, Capabilities: &Capabilities{
		Attach: c.Attach, SELinuxRelabel: c.SELinuxRelabel, SupportsMetrics: c.SupportsMetrics,
		FSGroup: c.FSGroup, RequiresFSResize: c.RequiresFSResize,
	}}
}

func expandFS(ctx context.Context, l Lifecycle, o options.Options, a []string) Result {
	newSize, err1 := strconv.ParseInt(a[3], 10, 64)
	oldSize, err2 := strconv.ParseInt(a[4], 10, 64)
	if err1 != nil || err2 != nil || newSize <= 0 || oldSize < 0 {
		return Failuref("expandfs: newBytes and oldBytes must be byte counts, got %q and %q", trim(a[3]), trim(a[4]))
	}
	return answer(l.ExpandFS(ctx, o, newSize))
}

// withOpts decodes the JSON argument at index i before calling fn.
func withOpts(i int, fn func(context.Context, Lifecycle, options.Options, []string) Result) func(context.Context, Lifecycle, []string) Result {
	return func(ctx context.Context, l Lifecycle, a []string) Result {
		o, err := options.Decode(a[i])
		if err != nil {
			return Failure(err)
		}
		return fn(ctx, l, o, a)
	}
}

func lookup(name string) (call, bool) {
	for _, c := range calls {
		if c.name == name {
			return c, true
		}
	}
	return call{}, false
}

// Dispatch runs the call named by args[0] with kubelet's arguments.
func Dispatch(ctx context.Context, l Lifecycle, args []string) Result {
	if len(args) == 0 {
		return Failuref("no call given: usage: <driver> <call> [args...]; calls: %s", strings.Join(CallNames(), ", "))
	}
	c, ok := lookup(args[0])
	if !ok {
		return NotSupported(trim(args[0]))
	}
	if got := len(args) - 1; got != len(c.args) {
		return Failuref("%s takes %d argument(s), got %d: usage: %s", c.name, len(c.args), got, c.usage())
	}
	return c.run(ctx, l, args[1:])
}

// CallNames lists the supported calls, in the table's order.
func CallNames() []string {
	names := make([]string, len(calls))
	for i, c := range calls {
		names[i] = c.name
	}
	return names
}

// trim keeps hostile arguments short and printable in messages.
func trim(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
}

// VolumeOf returns a short label of the volume a call is about, for logs:
// the first path argument of the calls that have one.
func VolumeOf(args []string) string {
	if len(args) < 2 {
		return ""
	}
	switch args[0] {
	case "mount", "unmount", "unmountdevice", "mountdevice", "detach", "waitforattach":
		return trim(args[1])
	}
	return ""
}
