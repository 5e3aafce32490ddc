package volume

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/flexblock/flexblock/driver/flexvol"
	"github.com/flexblock/flexblock/driver/mount"
	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/state"
)

// Mount (attach:false) mounts the device once per node at the global mount
// and bind-mounts that into the pod's dir.
func (d *Driver) Mount(ctx context.Context, podDir string, o options.Options) flexvol.Result {
	if d.Env.Config.Attach {
		return flexvol.NotSupported("mount") // kubelet bind-mounts mountdevice's dir itself
	}
	root, err := PodDir(podDir, d.Backend.Name(), d.Env.Config.KubeletRoot)
	if err != nil {
		return flexvol.Failure(err)
	}
	return d.withVolume(ctx, o, func(c *options.Common, spec Spec) error {
		global := GlobalMount(root, d.Backend.Name(), spec.ID())
		return d.mountPod(ctx, c, spec, global, podDir, spec.LockKeys())
	})
}

func (d *Driver) mountPod(ctx context.Context, c *options.Common, spec Spec, global, podDir string, locks []string) error {
	gMounted, err := d.Mounter.Mounted(global)
	if err != nil {
		return err
	}
	if done, err := d.alreadyBound(global, gMounted, podDir); done || err != nil {
		return err
	}
	created := false
	if !gMounted {
		if err := d.setupGlobal(ctx, c, spec, global, locks); err != nil {
			return err
		}
		created = true
	} else if err := d.compatible(spec.ID(), c.ReadOnly); err != nil {
		return err
	}
	// The pod is recorded before its bind, so a bind never goes uncounted.
	err = d.notePod(spec.ID(), podDir)
	if err == nil {
		err = d.bind(ctx, global, podDir, c.ReadOnly)
	}
	if err != nil {
		if created {
			err = errors.Join(err, d.releaseIfUnused(ctx, d.record(spec.ID())))
		}
		return err
	}
	Hook(StepAfterBind)
	return nil
}

// alreadyBound makes a repeated mount call a no-op.
func (d *Driver) alreadyBound(global string, gMounted bool, podDir string) (bool, error) {
	mounted, err := d.Mounter.Mounted(podDir)
	if err != nil || !mounted {
		return false, err
	}
	if gMounted {
		same, err := d.Mounter.Same(global, podDir)
		if err != nil || same {
			return same, err
		}
	}
	return false, foreignMount(podDir)
}

// notePod records podDir as a user of the volume before its bind, so the
// last unmount can count the users without reading the mount table.
func (d *Driver) notePod(id, podDir string) error {
	rec := d.record(id)
	if rec == nil || !rec.PodsRecorded || slices.Contains(rec.Pods, podDir) {
		return nil
	}
	rec.Pods = append(rec.Pods, podDir)
	return d.State.Save(rec)
}

// compatible refuses a read-write pod on a volume mounted read-only.
func (d *Driver) compatible(id string, ro bool) error {
	rec := d.record(id)
	if rec != nil && rec.ReadOnly && !ro {
		return fmt.Errorf("volume %s is mounted read-only on this node by another pod; a read-write mount must wait until those pods are gone", id)
	}
	return nil
}

func (d *Driver) record(id string) *state.Record {
	rec, _ := d.State.Load(d.Backend.Name(), id)
	return rec
}

func (d *Driver) bind(ctx context.Context, global, podDir string, ro bool) error {
	if err := mount.EmptyDir(podDir); err != nil {
		return err
	}
	return d.Mounter.Bind(ctx, global, podDir, ro)
}

// setupGlobal acquires the device, formats it if blank and mounts it at
// the global mount. The state record is written before Acquire so that a
// crash at any later step leaves a trace that a retry or unmount cleans up.
func (d *Driver) setupGlobal(ctx context.Context, c *options.Common, spec Spec, global string, locks []string) error {
	rec := d.record(spec.ID())
	if rec == nil {
		rec = &state.Record{Backend: d.Backend.Name(), ID: spec.ID(), Mode: state.ModePod, PodsRecorded: true}
	}
	rec.FSType, rec.ReadOnly, rec.GlobalMount, rec.Locks = c.FSType, c.ReadOnly, global, locks
	if err := d.State.Save(rec); err != nil {
		return err
	}
	dev, data, err := spec.Acquire(ctx, d.Env, len(c.Secrets) == 0)
	if err != nil {
		return errors.Join(err, d.State.Delete(rec.Backend, rec.ID))
	}
	rec.Device, rec.Data = dev, data
	if err := d.State.Save(rec); err != nil {
		return errors.Join(err, d.teardown(ctx, rec))
	}
	Hook(StepAfterAcquire)
	if err := d.formatAndMount(ctx, c, dev, global); err != nil {
		return errors.Join(err, d.teardown(ctx, rec))
	}
	Hook(StepAfterGlobalMount)
	return nil
}

func (d *Driver) formatAndMount(ctx context.Context, c *options.Common, dev, target string) error {
	formatted, err := d.Format.Prepare(ctx, dev, c.FSType, c.ReadOnly, c.MkfsOptions)
	if err != nil {
		return err
	}
	d.Env.Log.Info("device ready", "device", dev, "fsType", c.FSType, "formatted", formatted)
	Hook(StepAfterFormat)
	if err := mount.EmptyDir(target); err != nil {
		return err
	}
	opts := append([]string{}, c.MountOptions...)
	if c.ReadOnly {
		opts = append(opts, "ro")
	}
	return d.Mounter.Mount(ctx, dev, target, c.FSType, opts)
}

// Unmount removes the pod's bind; the last one out unmounts the global
// mount and releases the device. It needs no options: the state records
// (which list the pod dirs bound to each global mount) and statx on those
// paths tell it everything.
func (d *Driver) Unmount(ctx context.Context, podDir string) flexvol.Result {
	if d.Env.Config.Attach {
		return flexvol.NotSupported("unmount")
	}
	if _, err := PodDir(podDir, d.Backend.Name(), d.Env.Config.KubeletRoot); err != nil {
		return flexvol.Failure(err)
	}
	if err := d.unmountPod(ctx, podDir); err != nil {
		return flexvol.Failure(err)
	}
	return flexvol.Success()
}

func (d *Driver) unmountPod(ctx context.Context, podDir string) error {
	mounted, err := d.Mounter.Mounted(podDir)
	if err != nil {
		return err
	}
	if !mounted {
		// Already unmounted, maybe by a call that died before it could
		// release the device: finish that job now.
		return d.collect(ctx)
	}
	rec, err := d.owner(podDir)
	if err != nil {
		return err
	}
	if rec == nil {
		return d.Mounter.Unmount(ctx, podDir)
	}
	unlock, err := d.lock(ctx, d.lockKeys(rec.ID, rec.Locks))
	if err != nil {
		return err
	}
	defer unlock()
	if err := d.Mounter.Unmount(ctx, podDir); err != nil {
		return err
	}
	Hook(StepAfterUnbind)
	return d.releaseIfUnused(ctx, d.record(rec.ID))
}

// owner finds the state record of the global mount that podDir is a bind of.
func (d *Driver) owner(podDir string) (*state.Record, error) {
	recs, err := d.State.List(d.Backend.Name())
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Mode != state.ModePod || r.GlobalMount == "" {
			continue
		}
		same, err := d.Mounter.Same(r.GlobalMount, podDir)
		if err != nil {
			return nil, err
		}
		if same {
			return r, nil
		}
	}
	return nil, nil
}

// releaseIfUnused tears the volume down when no pod bind of it remains.
// The caller holds the volume's lock.
func (d *Driver) releaseIfUnused(ctx context.Context, rec *state.Record) error {
	if rec == nil {
		return nil
	}
	if rec.GlobalMount != "" {
		mounted, err := d.Mounter.Mounted(rec.GlobalMount)
		if err != nil {
			return err
		}
		if mounted {
			inUse, err := d.inUse(rec)
			if err != nil || inUse {
				return err
			}
		}
	}
	return d.teardown(ctx, rec)
}

// inUse tells whether a pod still has a bind of rec's global mount. For a
// record that lists its pods, each listed pod dir is checked (statx, no
// table read) and the ones gone are forgotten; an older record is answered
// from the mount table.
func (d *Driver) inUse(rec *state.Record) (bool, error) {
	if !rec.PodsRecorded {
		g, err := d.Mounter.Lookup(rec.GlobalMount)
		if err != nil || g == nil {
			return false, err
		}
		users, err := d.podUsers(g, rec.GlobalMount)
		return len(users) > 0, err
	}
	var left []string
	for _, p := range rec.Pods {
		same, err := d.Mounter.Same(rec.GlobalMount, p)
		if err != nil {
			return false, err
		}
		if same {
			left = append(left, p)
		}
	}
	if len(left) != len(rec.Pods) {
		rec.Pods = left
		if err := d.State.Save(rec); err != nil {
			return false, err
		}
	}
	return len(left) > 0, nil
}

// podUsers are the binds of g under the kubelet root's pods dir. Copies of
// the mount elsewhere (propagation into a containerized kubelet's view) are
// not pods.
func (d *Driver) podUsers(g *mountinfo.Info, global string) ([]*mountinfo.Info, error) {
	all, err := d.Mounter.Users(g)
	if err != nil {
		return nil, err
	}
	prefix := strings.SplitN(global, "/plugins/", 2)[0] + "/pods/"
	var out []*mountinfo.Info
	for _, m := range all {
		if strings.HasPrefix(m.Mountpoint, prefix) {
			out = append(out, m)
		}
	}
	return out, nil
}

// teardown unmounts the global mount, releases the device and forgets it.
// Each step is idempotent, so a retry after a crash anywhere completes it.
func (d *Driver) teardown(ctx context.Context, rec *state.Record) error {
	if rec.GlobalMount != "" {
		if err := d.Mounter.Unmount(ctx, rec.GlobalMount); err != nil {
			return err
		}
		Hook(StepAfterGlobalUnmount)
	}
	if rec.Device != "" || len(rec.Data) > 0 {
		Hook(StepBeforeRelease)
		if err := d.Backend.Release(ctx, d.Env, rec); err != nil {
			return fmt.Errorf("release %s: %w", rec.ID, err)
		}
	}
	if err := d.State.Delete(rec.Backend, rec.ID); err != nil {
		return err
	}
	if rec.Mode == state.ModePod && rec.GlobalMount != "" {
		return mount.RemoveDir(rec.GlobalMount)
	}
	return nil
}

// collect releases pod-mode volumes that no pod uses any more: what a
// driver killed between unbind and release left behind. Volumes whose
// lock is held are being worked on and are skipped.
func (d *Driver) collect(ctx context.Context) error {
	recs, err := d.State.List(d.Backend.Name())
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range recs {
		if r.Mode != state.ModePod {
			continue
		}
		errs = append(errs, d.collectOne(ctx, r))
	}
	return errors.Join(errs...)
}

// collectLockWait is short: a held lock means a call is working on it.
const collectLockWait = 50 * time.Millisecond

func (d *Driver) collectOne(ctx context.Context, r *state.Record) error {
	unlock, err := d.lockWithin(ctx, d.lockKeys(r.ID, r.Locks), collectLockWait)
	if err != nil || unlock == nil {
		return nil // busy: its owner finishes the job
	}
	defer unlock()
	r = d.record(r.ID) // re-read under the lock
	if r == nil {
		return nil
	}
	d.Env.Log.Info("collecting unused volume", "id", r.ID)
	return d.releaseIfUnused(ctx, r)
}
