package flexvol

import (
	"context"
	"strconv"
	"strings"

	"github.com/flexblock/flexblock/driver/options"
)

// Driver implements the calls. Options arrive decoded; the driver validates
// them further for its backend.
type Driver interface {
	Init() Result
	Attach(ctx context.Context, o options.Options, node string) Result
	IsAttached(ctx context.Context, o options.Options, node string) Result
	Detach(ctx context.Context, volume, node string) Result
	WaitForAttach(ctx context.Context, devicePath string, o options.Options) Result
	MountDevice(ctx context.Context, deviceMountPath, devicePath string, o options.Options) Result
	UnmountDevice(ctx context.Context, deviceMountPath string) Result
	Mount(ctx context.Context, podDir string, o options.Options) Result
	Unmount(ctx context.Context, podDir string) Result
	ExpandFS(ctx context.Context, o options.Options, devicePath, podDir string, newSize, oldSize int64) Result
}

// call describes one FlexVolume call: kubelet's exact argv after the name.
type call struct {
	usage string
	run   func(ctx context.Context, d Driver, a []string) Result
}

// calls is the table of every call kubelet makes (see flexvolume-protocol.md).
var calls = map[string]call{
	"init": {"init", func(_ context.Context, d Driver, _ []string) Result { return d.Init() }},
	"getvolumename": {"getvolumename <json>", func(context.Context, Driver, []string) Result {
		// kubelet throws the answer away and uses the PV or volume name.
		return NotSupported("getvolumename")
	}},
	"attach": {"attach <json> <nodeName>", withOpts(0, func(ctx context.Context, d Driver, o options.Options, a []string) Result {
		return d.Attach(ctx, o, a[1])
	})},
	"isattached": {"isattached <json> <nodeName>", withOpts(0, func(ctx context.Context, d Driver, o options.Options, a []string) Result {
		return d.IsAttached(ctx, o, a[1])
	})},
	"detach": {"detach <pvOrVolumeName> <nodeName>", func(ctx context.Context, d Driver, a []string) Result {
		return d.Detach(ctx, a[0], a[1])
	}},
	"waitforattach": {"waitforattach <devicePath> <json>", withOpts(1, func(ctx context.Context, d Driver, o options.Options, a []string) Result {
		return d.WaitForAttach(ctx, a[0], o)
	})},
	"mountdevice": {"mountdevice <deviceMountPath> <devicePath> <json>", withOpts(2, func(ctx context.Context, d Driver, o options.Options, a []string) Result {
		return d.MountDevice(ctx, a[0], a[1], o)
	})},
	"unmountdevice": {"unmountdevice <deviceMountPath>", func(ctx context.Context, d Driver, a []string) Result {
		return d.UnmountDevice(ctx, a[0])
	}},
	"mount": {"mount <podVolumeDir> <json>", withOpts(1, func(ctx context.Context, d Driver, o options.Options, a []string) Result {
		return d.Mount(ctx, a[0], o)
	})},
	"unmount": {"unmount <podVolumeDir>", func(ctx context.Context, d Driver, a []string) Result {
		return d.Unmount(ctx, a[0])
	}},
	"expandvolume": {"expandvolume <json> <deviceMountPath> <newBytes> <oldBytes>", func(context.Context, Driver, []string) Result {
		// Only a controller could call it, and kubelet's expander never does.
		return NotSupported("expandvolume")
	}},
	"expandfs": {"expandfs <json> <devicePath> <podVolumeDir> <newBytes> <oldBytes>", withOpts(0, expandFS)},
}

func expandFS(ctx context.Context, d Driver, o options.Options, a []string) Result {
	newSize, err1 := strconv.ParseInt(a[3], 10, 64)
	oldSize, err2 := strconv.ParseInt(a[4], 10, 64)
	if err1 != nil || err2 != nil || newSize <= 0 || oldSize < 0 {
		return Failuref("expandfs: newBytes and oldBytes must be byte counts, got %q and %q", trim(a[3]), trim(a[4]))
	}
	return d.ExpandFS(ctx, o, a[1], a[2], newSize, oldSize)
}

// withOpts decodes the JSON argument at index i before calling fn.
func withOpts(i int, fn func(context.Context, Driver, options.Options, []string) Result) func(context.Context, Driver, []string) Result {
	return func(ctx context.Context, d Driver, a []string) Result {
		o, err := options.Decode(a[i])
		if err != nil {
			return Failure(err)
		}
		return fn(ctx, d, o, a)
	}
}

// Dispatch runs the call named by args[0] with kubelet's arguments.
func Dispatch(ctx context.Context, d Driver, args []string) Result {
	if len(args) == 0 {
		return Failuref("no call given: usage: <driver> <call> [args...]; calls: %s", strings.Join(CallNames(), ", "))
	}
	c, ok := calls[args[0]]
	if !ok {
		return NotSupported(trim(args[0]))
	}
	want := len(strings.Fields(c.usage)) - 1
	if got := len(args) - 1; got != want {
		return Failuref("%s takes %d argument(s), got %d: usage: %s", args[0], want, got, c.usage)
	}
	return c.run(ctx, d, args[1:])
}

// CallNames lists the supported calls.
func CallNames() []string {
	return []string{"init", "getvolumename", "attach", "isattached", "detach", "waitforattach",
		"mountdevice", "unmountdevice", "mount", "unmount", "expandvolume", "expandfs"}
}

// trim keeps hostile arguments short and printable in messages.
func trim(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
}

// VolumeOf returns a short label of the volume a call is about, for logs.
func VolumeOf(args []string) string {
	if len(args) < 2 {
		return ""
	}
	switch args[0] {
	case "mount", "unmount", "unmountdevice", "detach", "waitforattach":
		return trim(args[1])
	case "mountdevice":
		return trim(args[1])
	}
	return ""
}
