package volume

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/flexblock/flexblock/driver/flexvol"
	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/state"
)

// WaitForAttach (attach:true) makes the device appear on this node with the
// node-local credentials (kubelet passes no Secret here) and returns it.
// kubelet calls it for every pod of the volume: it is idempotent.
func (d *Driver) WaitForAttach(ctx context.Context, _ string, o options.Options) flexvol.Result {
	var device string
	res := d.withVolume(ctx, o, func(c *options.Common, spec Spec) error {
		rec, err := d.acquireDevice(ctx, c, spec)
		if rec != nil {
			device = rec.Device
		}
		return err
	})
	res.Device = device
	return res
}

// acquireDevice returns the device-mode record, acquiring when needed.
func (d *Driver) acquireDevice(ctx context.Context, c *options.Common, spec Spec) (*state.Record, error) {
	rec := d.record(spec.ID())
	if rec != nil && rec.Device != "" && exists(rec.Device) {
		return rec, nil
	}
	if rec == nil {
		rec = &state.Record{Backend: d.Backend.Name(), ID: spec.ID(), Mode: state.ModeDevice}
	}
	rec.FSType, rec.ReadOnly, rec.Locks = c.FSType, c.ReadOnly, spec.LockKeys()
	if err := d.State.Save(rec); err != nil {
		return nil, err
	}
	dev, data, err := spec.Acquire(ctx, d.Env, len(c.Secrets) == 0)
	if err != nil {
		return nil, errors.Join(err, d.State.Delete(rec.Backend, rec.ID))
	}
	rec.Device, rec.Data = dev, data
	if err := d.State.Save(rec); err != nil {
		return nil, errors.Join(err, d.Backend.Release(ctx, d.Env, rec))
	}
	return rec, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// MountDevice formats (if blank) and mounts the device at kubelet's global
// dir, read-only when the volume is: kubelet's own bind does not add ro.
func (d *Driver) MountDevice(ctx context.Context, dmp, _ string, o options.Options) flexvol.Result {
	if _, err := DeviceMountPath(dmp, d.Backend.Name(), d.Env.Config.KubeletRoot); err != nil {
		return flexvol.Failure(err)
	}
	return d.withVolume(ctx, o, func(c *options.Common, spec Spec) error {
		return d.mountDevice(ctx, c, spec, dmp)
	})
}

func (d *Driver) mountDevice(ctx context.Context, c *options.Common, spec Spec, dmp string) error {
	rec, err := d.acquireDevice(ctx, c, spec)
	if err != nil {
		return err
	}
	if m, err := d.Mounter.Lookup(dmp); err != nil || m != nil {
		return err // already mounted: kubelet retried
	}
	rec.GlobalMount = dmp
	if err := d.State.Save(rec); err != nil {
		return err
	}
	return d.formatAndMount(ctx, c, rec.Device, dmp)
}

// UnmountDevice unmounts kubelet's global dir and releases the device,
// finding it from the state record and mountinfo alone.
func (d *Driver) UnmountDevice(ctx context.Context, dmp string) flexvol.Result {
	if _, err := DeviceMountPath(dmp, d.Backend.Name(), d.Env.Config.KubeletRoot); err != nil {
		return flexvol.Failure(err)
	}
	rec, err := d.recordAt(dmp)
	if err != nil {
		return flexvol.Failure(err)
	}
	if rec == nil {
		if err := d.Mounter.Unmount(ctx, dmp); err != nil {
			return flexvol.Failure(err)
		}
		return flexvol.Success()
	}
	unlock, err := d.lock(ctx, d.lockKeys(rec.ID, rec.Locks))
	if err != nil {
		return flexvol.Failure(err)
	}
	defer unlock()
	if rec = d.record(rec.ID); rec != nil {
		err = d.teardown(ctx, rec)
	}
	if err != nil {
		return flexvol.Failure(err)
	}
	return flexvol.Success()
}

// recordAt finds the device-mode record whose global mount is dmp.
func (d *Driver) recordAt(dmp string) (*state.Record, error) {
	recs, err := d.State.List(d.Backend.Name())
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.GlobalMount == dmp {
			return r, nil
		}
	}
	return nil, nil
}

// ExpandFS grows the device (backend) and then the filesystem on it.
func (d *Driver) ExpandFS(ctx context.Context, o options.Options, _, _ string, newSize, _ int64) flexvol.Result {
	return d.withVolume(ctx, o, func(_ *options.Common, spec Spec) error {
		rec := d.record(spec.ID())
		if rec == nil || rec.Device == "" || rec.GlobalMount == "" {
			return fmt.Errorf("volume %s is not mounted on this node: expandfs runs after mount", spec.ID())
		}
		if rec.ReadOnly {
			return fmt.Errorf("volume %s is mounted read-only: a read-only filesystem cannot be grown", spec.ID())
		}
		if err := spec.Expand(ctx, d.Env, rec, newSize); err != nil {
			return err
		}
		return d.growFS(ctx, rec)
	})
}

// growFS grows the mounted filesystem to the device's size; each tool is a
// no-op when it already has that size.
func (d *Driver) growFS(ctx context.Context, rec *state.Record) error {
	var c runner.Cmd
	switch rec.FSType {
	case "ext4", "ext3":
		c = runner.Cmd{Name: "resize2fs", Args: []string{rec.Device}}
	case "xfs":
		c = runner.Cmd{Name: "xfs_growfs", Args: []string{"-d", rec.GlobalMount}}
	case "btrfs":
		c = runner.Cmd{Name: "btrfs", Args: []string{"filesystem", "resize", "max", rec.GlobalMount}}
	default:
		return fmt.Errorf("cannot grow filesystem type %q", rec.FSType)
	}
	if _, err := d.Env.Run.Run(ctx, c); err != nil {
		return fmt.Errorf("grow filesystem of %s: %w", rec.ID, err)
	}
	return nil
}
