package volume

import (
	"context"
	"errors"
	"fmt"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/state"
)

// WaitForAttach (attach:true) makes the device appear on this node with the
// node-local credentials (kubelet passes no Secret here) and returns it.
// kubelet calls it for every pod of the volume: it is idempotent.
func (l *Lifecycle) WaitForAttach(ctx context.Context, o options.Options) (string, error) {
	var device string
	err := l.withVolume(ctx, o, func(c *options.Common, spec Spec) error {
		rec, err := l.acquireDevice(ctx, c, spec)
		if rec != nil {
			device = rec.Device
		}
		return err
	})
	return device, err
}

// acquireDevice returns the device-mode record, acquiring when needed. A
// recorded device is reused only when the kernel says it is still this
// volume's: device names are reused by the kernel for other volumes.
func (l *Lifecycle) acquireDevice(ctx context.Context, c *options.Common, spec Spec) (*state.Record, error) {
	rec, err := l.record(spec.ID())
	if err != nil {
		return nil, err
	}
	if rec != nil && rec.Device != "" {
		err := spec.Identify(ctx, l.Env, rec)
		if err == nil {
			return rec, nil
		}
		if !errors.Is(err, errkind.Mismatch) && !errors.Is(err, errkind.NotFound) {
			return nil, err
		}
		// The name now belongs to another volume (or nothing): forget
		// it without releasing it, and acquire ours afresh.
		l.Env.Log.Warn("recorded device is no longer this volume's", "id", rec.ID, "device", rec.Device, "why", err.Error())
		rec.Device, rec.Data = "", nil
	}
	if rec == nil {
		rec = &state.Record{Backend: l.Backend.Name(), ID: spec.ID(), Mode: state.ModeDevice}
	}
	rec.FSType, rec.ReadOnly, rec.Locks = c.FSType, c.ReadOnly, spec.LockKeys()
	if err := l.save(rec); err != nil {
		return nil, err
	}
	dev, data, err := spec.Acquire(ctx, l.Env, len(c.Secrets) == 0)
	if err != nil {
		if rec.GlobalMount == "" {
			err = errors.Join(err, l.Records.Delete(rec.Backend, rec.ID))
		}
		return nil, err
	}
	rec.Device, rec.Data = dev, data
	if err := l.save(rec); err != nil {
		return nil, errors.Join(err, l.cleanup(ctx, func(ctx context.Context) error { return l.Backend.Release(ctx, l.Env, rec) }))
	}
	l.observe(StepAfterAcquire)
	return rec, nil
}

// MountDevice formats (if blank) and mounts the device at kubelet's global
// dir, read-only when the volume is: kubelet's own bind does not add ro.
func (l *Lifecycle) MountDevice(ctx context.Context, dmp string, o options.Options) error {
	if _, err := DeviceMountPath(dmp, l.Backend.Name(), l.Env.Config.KubeletRoot); err != nil {
		return err
	}
	return l.withVolume(ctx, o, func(c *options.Common, spec Spec) error {
		return l.mountDevice(ctx, c, spec, dmp)
	})
}

func (l *Lifecycle) mountDevice(ctx context.Context, c *options.Common, spec Spec, dmp string) error {
	rec, err := l.acquireDevice(ctx, c, spec)
	if err != nil {
		return err
	}
	if rec.GlobalMount != "" && rec.GlobalMount != dmp {
		return errkind.Errorf(errkind.Mismatch, "volume %s is already mounted on this node at %s: refusing a second mount of the same storage at %s", spec.ID(), rec.GlobalMount, dmp)
	}
	m, err := l.Mounter.Lookup(dmp)
	if err != nil {
		return err
	}
	if m != nil {
		// kubelet retried, or the dir holds another volume: only the
		// kernel's numbers tell which.
		return l.sameDevice(rec.Device, m.Major, m.Minor, dmp)
	}
	rec.GlobalMount = dmp
	if err := l.save(rec); err != nil {
		return err
	}
	if err := l.formatAndMount(ctx, c, rec.Device, dmp); err != nil {
		return err
	}
	l.observe(StepAfterGlobalMount)
	return nil
}

// sameDevice checks that the mount at path shows dev's filesystem.
func (l *Lifecycle) sameDevice(dev string, major, minor int, path string) error {
	maj, min, err := l.DeviceNumber(dev)
	if err != nil {
		return fmt.Errorf("device %s: %w", dev, err)
	}
	if maj != major || min != minor {
		return errkind.Errorf(errkind.Mismatch, "%s already holds another device (%d:%d, not %s %d:%d): flexblock will not mount over it or use it; unmount it by hand", path, major, minor, dev, maj, min)
	}
	return nil
}

// UnmountDevice unmounts kubelet's global dir and releases the device,
// finding it from the state record and the mount table alone. A dir that
// holds another device than the record's is left alone: tearing it down
// would take another volume's mount away.
func (l *Lifecycle) UnmountDevice(ctx context.Context, dmp string) error {
	if _, err := DeviceMountPath(dmp, l.Backend.Name(), l.Env.Config.KubeletRoot); err != nil {
		return err
	}
	rec, err := l.recordAt(dmp)
	if err != nil {
		return err
	}
	if rec == nil {
		// Every mount flexblock makes there is recorded first: a mount
		// without a record is someone else's, and stays.
		if m, err := l.Mounter.Lookup(dmp); err != nil || m != nil {
			return errors.Join(err, foreignMount(dmp))
		}
		return nil
	}
	unlock, err := l.lock(ctx, rec.ID, rec.Locks)
	if err != nil {
		return err
	}
	defer unlock()
	if rec, err = l.record(rec.ID); err != nil || rec == nil {
		return err
	}
	m, err := l.Mounter.Lookup(dmp)
	if err != nil {
		return err
	}
	if m != nil && rec.Device != "" {
		if err := l.sameDevice(rec.Device, m.Major, m.Minor, dmp); err != nil {
			return err
		}
	}
	return l.teardown(ctx, rec)
}

// recordAt finds the device-mode record whose global mount is dmp.
func (l *Lifecycle) recordAt(dmp string) (*state.Record, error) {
	recs, err := l.records()
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Mode == state.ModeDevice && r.GlobalMount == dmp {
			return r, nil
		}
	}
	return nil, nil
}

// ExpandFS grows the device (backend) and then the filesystem on it.
func (l *Lifecycle) ExpandFS(ctx context.Context, o options.Options, newSize int64) error {
	return l.withVolume(ctx, o, func(_ *options.Common, spec Spec) error {
		rec, err := l.record(spec.ID())
		if err != nil {
			return err
		}
		if rec == nil || rec.Device == "" || rec.GlobalMount == "" {
			return errkind.Errorf(errkind.NotFound, "volume %s is not mounted on this node: expandfs runs after mount", spec.ID())
		}
		if rec.ReadOnly {
			return errkind.Errorf(errkind.Invalid, "volume %s is mounted read-only: a read-only filesystem cannot be grown", spec.ID())
		}
		if err := spec.Identify(ctx, l.Env, rec); err != nil {
			return err
		}
		if err := spec.Expand(ctx, l.Env, rec, newSize); err != nil {
			return err
		}
		return l.growFS(ctx, rec)
	})
}
