package volume

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/logging"
	"github.com/flexblock/flexblock/driver/mount"
	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/state"
)

// Formatter makes a device ready to mount (see driver/format).
type Formatter interface {
	// Prepare formats dev only if it is blank and read-write, checks it
	// otherwise, and reports whether it formatted.
	Prepare(ctx context.Context, dev, fsType string, readOnly bool, mkfsOpts []string) (formatted bool, err error)
}

// Records keeps one state record per volume in use (see driver/state).
type Records interface {
	Load(backend, id string) (*state.Record, error)
	Save(r *state.Record) error
	Delete(backend, id string) error
	List(backend string) ([]*state.Record, error)
	// Quarantine sets a record aside (kept for the operator, never used).
	Quarantine(r *state.Record, why error) error
}

// Locker serializes the calls that work on one volume (see driver/lock).
type Locker interface {
	Lock(ctx context.Context, keys []string, wait time.Duration) (unlock func(), err error)
}

// Lifecycle carries out kubelet's calls for one backend on this node. It is
// plain Go: every collaborator that touches the kernel or the disk is passed
// in, so the whole lifecycle runs in tests against fakes.
type Lifecycle struct {
	Backend Backend
	Env     *Env
	Mounter mount.Mounter
	Format  Formatter
	Records Records
	Locks   Locker
	// Now stamps records (time.Now when nil).
	Now func() time.Time
	// DeviceNumber returns a device node's major:minor, so a mount can be
	// matched with a device by the kernel's numbers, not by its name.
	DeviceNumber func(dev string) (major, minor int, err error)
	// Free refuses a device that any mount on the node other than global
	// already uses (same block device, LUN or filesystem); nil skips it.
	Free func(ctx context.Context, dev, global string) error
	// Observe hears each step of mount and unmount (crash-point tests
	// kill the process there); nil hears nothing.
	Observe func(Step)
}

// Step names a point of mount or unmount that a crash may interrupt.
type Step string

// The steps, in the order a mount and an unmount pass them.
const (
	StepAfterAcquire       Step = "after-acquire"
	StepAfterFormat        Step = "after-format"
	StepAfterGlobalMount   Step = "after-global-mount"
	StepAfterBind          Step = "after-bind"
	StepAfterUnbind        Step = "after-unbind"
	StepAfterGlobalUnmount Step = "after-global-unmount"
	StepBeforeRelease      Step = "before-release"
)

// Steps lists every step, for tests that visit each crash point.
func Steps() []Step {
	return []Step{StepAfterAcquire, StepAfterFormat, StepAfterGlobalMount, StepAfterBind,
		StepAfterUnbind, StepAfterGlobalUnmount, StepBeforeRelease}
}

func (l *Lifecycle) observe(s Step) {
	if l.Observe != nil {
		l.Observe(s)
	}
}

func (l *Lifecycle) now() time.Time {
	if l.Now != nil {
		return l.Now().UTC()
	}
	return time.Now().UTC()
}

// Capabilities are what init reports to kubelet.
type Capabilities struct {
	Attach, SELinuxRelabel, FSGroup, SupportsMetrics, RequiresFSResize bool
}

// Init reports the capabilities from config and does nothing else.
// SupportsMetrics makes kubelet statfs the pod's volume dir for the volume
// stats it reports (kubelet_volume_stats_*, the stats summary): statfs of a
// block filesystem is answered from the superblock in memory, no I/O, so a
// dead target cannot hang it.
func (l *Lifecycle) Init() Capabilities {
	c := l.Env.Config
	return Capabilities{Attach: c.Attach, SELinuxRelabel: *c.SELinuxRelabel, FSGroup: *c.FSGroup, SupportsMetrics: true, RequiresFSResize: true}
}

// Attach runs on the control plane: it validates and succeeds. The node
// does the real work in waitforattach, with node-local credentials.
func (l *Lifecycle) Attach(_ context.Context, o options.Options) error {
	_, _, err := l.parse(o)
	return err
}

// IsAttached is always true: attachment is done on the node.
func (l *Lifecycle) IsAttached(context.Context, options.Options) (bool, error) { return true, nil }

// Detach succeeds: unmountdevice on the node releases the device.
func (l *Lifecycle) Detach(context.Context) error { return nil }

// parse validates kubelet's options into a Spec and registers the secrets
// with the masker before anything can log them.
func (l *Lifecycle) parse(o options.Options) (*options.Common, Spec, error) {
	for k, v := range o {
		if strings.HasPrefix(k, options.SecretPrefix) {
			l.Env.Mask.Add(v)
		}
	}
	c, err := options.ParseCommon(o, l.Env.Config.DefaultFSType, l.Backend.Keys())
	if err != nil {
		return nil, nil, err
	}
	for _, s := range c.Secrets {
		l.Env.Mask.Add(s)
	}
	spec, err := l.Backend.Parse(c, l.Env.Config)
	if err != nil {
		return nil, nil, err
	}
	return c, spec, nil
}

// withVolume parses the options, takes the volume's locks and runs fn: the
// shape of every call that works on one volume.
func (l *Lifecycle) withVolume(ctx context.Context, o options.Options, fn func(*options.Common, Spec) error) error {
	c, spec, err := l.parse(o)
	if err != nil {
		return err
	}
	unlock, err := l.lock(ctx, spec.ID(), spec.LockKeys())
	if err != nil {
		return err
	}
	defer unlock()
	return fn(c, spec)
}

// lockWait bounds how long a call waits for a volume another call holds.
func (l *Lifecycle) lockWait() time.Duration { return l.Env.Config.Timeout("lock") }

// lock takes the volume's own lock plus the backend's extra ones.
func (l *Lifecycle) lock(ctx context.Context, id string, extra []string) (func(), error) {
	return l.lockWithin(ctx, id, extra, l.lockWait())
}

func (l *Lifecycle) lockWithin(ctx context.Context, id string, extra []string, wait time.Duration) (func(), error) {
	keys := append([]string{l.Backend.Name() + "-vol-" + id}, extra...)
	unlock, err := l.Locks.Lock(ctx, keys, wait)
	if err != nil {
		return nil, errkind.Mark(errkind.Busy, err)
	}
	return unlock, nil
}

// record loads the volume's record and checks that every path in it is
// one flexblock owns; a record that fails is set aside (and nil returned),
// so a hand-edited or corrupt file can never make the driver unmount or
// delete something else.
func (l *Lifecycle) record(id string) (*state.Record, error) {
	rec, err := l.Records.Load(l.Backend.Name(), id)
	if err != nil || rec == nil {
		return nil, err
	}
	return l.trusted(rec)
}

// records lists the backend's records that pass the same checks.
func (l *Lifecycle) records() ([]*state.Record, error) {
	recs, err := l.Records.List(l.Backend.Name())
	if err != nil {
		return nil, err
	}
	var out []*state.Record
	for _, r := range recs {
		r, err := l.trusted(r)
		if err != nil {
			return nil, err
		}
		if r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

func (l *Lifecycle) trusted(rec *state.Record) (*state.Record, error) {
	err := l.checkPaths(rec)
	if err == nil {
		return rec, nil
	}
	l.Env.Log.Warn(logging.EventRecordSetAside, "id", rec.ID, "why", err.Error())
	return nil, l.Records.Quarantine(rec, err)
}

// checkPaths refuses a record whose paths are not the shapes flexblock
// makes: its global mount under the kubelet root's flexblock dir (for the
// record's own backend and id), its pods kubelet pod volume dirs of this
// backend, its device a /dev path.
func (l *Lifecycle) checkPaths(rec *state.Record) error {
	name, root := l.Backend.Name(), l.Env.Config.KubeletRoot
	if rec.Backend != name {
		return fmt.Errorf("record of backend %q", rec.Backend)
	}
	if rec.GlobalMount != "" {
		var err error
		switch rec.Mode {
		case state.ModePod:
			err = ownGlobalMount(rec.GlobalMount, name, rec.ID, root)
		default:
			_, err = deviceMountPathShape(rec.GlobalMount, name, root)
		}
		if err != nil {
			return err
		}
	}
	for _, p := range rec.Pods {
		if _, err := podDirShape(p, name, root); err != nil {
			return err
		}
	}
	if rec.Device != "" && !devRE.MatchString(rec.Device) {
		return fmt.Errorf("device %q is not a /dev path", rec.Device)
	}
	return nil
}

// cleanupBound bounds an undo that runs after the call's own context
// ended (SIGTERM from kubelet, or the call deadline).
const cleanupBound = 15 * time.Second

// cleanup runs an undo with a context of its own: after a signal or the
// deadline the call's context is done, and the undo must still run.
func (l *Lifecycle) cleanup(ctx context.Context, undo func(context.Context) error) error {
	c, cancel := runner.Detached(ctx, cleanupBound)
	defer cancel()
	return undo(c)
}

func foreignMount(path string) error {
	return errkind.Errorf(errkind.Mismatch, "%s is mounted with something flexblock did not mount there; unmount it by hand first", path)
}
