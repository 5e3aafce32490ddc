package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/logging"
	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/state"
)

// Mount (attach:false) mounts the device once per node at the global mount
// and bind-mounts that into the pod's dir.
func (l *Lifecycle) Mount(ctx context.Context, podDir string, o options.Options) error {
	if l.Env.Config.Attach {
		// kubelet bind-mounts mountdevice's dir itself
		return errkind.Errorf(errkind.Unsupported, "mount is not supported in attach mode")
	}
	root, err := PodDir(podDir, l.Backend.Name(), l.Env.Config.KubeletRoot)
	if err != nil {
		return err
	}
	return l.withVolume(ctx, o, func(c *options.Common, spec Spec) error {
		return l.mountPod(ctx, c, spec, root, podDir)
	})
}

func (l *Lifecycle) mountPod(ctx context.Context, c *options.Common, spec Spec, root, podDir string) error {
	global := GlobalMount(root, l.Backend.Name(), spec.ID())
	rec, err := l.record(spec.ID())
	if err != nil {
		return err
	}
	if rec != nil && rec.GlobalMount != "" && rec.GlobalMount != global {
		return errkind.Errorf(errkind.Mismatch, "volume %s is mounted on this node at %s, outside the kubelet root of pod dir %s: refusing a second mount of the same storage", spec.ID(), rec.GlobalMount, podDir)
	}
	gMounted, err := l.Mounter.Mounted(global)
	if err != nil {
		return err
	}
	if done, err := l.alreadyBound(global, gMounted, podDir); done || err != nil {
		return err
	}
	if !gMounted {
		return l.mountFirst(ctx, c, spec, global, podDir)
	}
	if rec, err = l.joinable(ctx, c, spec, rec, global); err != nil {
		return err
	}
	return l.bindPod(ctx, rec, global, podDir, c.ReadOnly)
}

// mountFirst sets up the global mount and binds the first pod; a failed
// bind undoes the setup, so nothing is left for a pod that never ran.
func (l *Lifecycle) mountFirst(ctx context.Context, c *options.Common, spec Spec, global, podDir string) error {
	rec, err := l.setupGlobal(ctx, c, spec, global)
	if err != nil {
		return err
	}
	if err := l.bindPod(ctx, rec, global, podDir, c.ReadOnly); err != nil {
		return errors.Join(err, l.cleanup(ctx, func(ctx context.Context) error { return l.releaseIfUnused(ctx, rec) }))
	}
	return nil
}

// joinable checks that a pod may join the global mount another pod made:
// the mount is flexblock's and still this volume's, the pod's read-write
// wish fits, and its own credentials open the storage (a pod never reads
// another's data through a mount it could not have made itself).
func (l *Lifecycle) joinable(ctx context.Context, c *options.Common, spec Spec, rec *state.Record, global string) (*state.Record, error) {
	if rec == nil {
		var err error
		if rec, err = l.adopt(ctx, spec, global); err != nil {
			return nil, err
		}
	}
	if rec.ReadOnly && !c.ReadOnly {
		return nil, errkind.Errorf(errkind.Busy, "volume %s is mounted read-only on this node by another pod; a read-write mount must wait until those pods are gone", spec.ID())
	}
	if err := spec.Authorize(ctx, l.Env, rec, len(c.Secrets) == 0); err != nil {
		return nil, err
	}
	return rec, nil
}

// adopt rebuilds the record of a global mount whose record was lost (set
// aside as corrupt, or deleted by hand) from the mount table, after the
// backend confirms from the kernel that the device is this volume's.
func (l *Lifecycle) adopt(ctx context.Context, spec Spec, global string) (*state.Record, error) {
	m, err := l.Mounter.Lookup(global)
	if err != nil || m == nil {
		return nil, errors.Join(err, foreignMount(global))
	}
	rec := &state.Record{Backend: l.Backend.Name(), ID: spec.ID(), Mode: state.ModePod, Device: m.Source,
		FSType: m.FSType, ReadOnly: hasOption(m.Options, "ro"), GlobalMount: global, Locks: spec.LockKeys()}
	if err := l.checkPaths(rec); err != nil {
		return nil, errors.Join(err, foreignMount(global))
	}
	if err := spec.Identify(ctx, l.Env, rec); err != nil {
		return nil, errors.Join(err, foreignMount(global))
	}
	if rec.Pods, err = l.podUsers(m, global); err != nil {
		return nil, err
	}
	l.Env.Log.Warn(logging.EventRecordRebuilt, "id", rec.ID, "device", rec.Device, "pods", len(rec.Pods))
	return rec, l.save(rec)
}

func hasOption(opts, o string) bool { return slices.Contains(strings.Split(opts, ","), o) }

// podUsers lists the pod dirs under global's kubelet root that are binds
// of global (copies of the mount elsewhere, such as propagation into a
// containerized kubelet's view, are not pods).
func (l *Lifecycle) podUsers(m *mountinfo.Info, global string) ([]string, error) {
	all, err := l.Mounter.Users(m)
	if err != nil {
		return nil, err
	}
	var pods []string
	for _, u := range all {
		if root, err := podDirShape(u.Mountpoint, l.Backend.Name(), l.Env.Config.KubeletRoot); err == nil && GlobalMount(root, l.Backend.Name(), filepath.Base(global)) == global {
			pods = append(pods, u.Mountpoint)
		}
	}
	return pods, nil
}

// alreadyBound makes a repeated mount call a no-op.
func (l *Lifecycle) alreadyBound(global string, gMounted bool, podDir string) (bool, error) {
	mounted, err := l.Mounter.Mounted(podDir)
	if err != nil || !mounted {
		return false, err
	}
	if gMounted {
		same, err := l.Mounter.Same(global, podDir)
		if err != nil || same {
			return same, err
		}
	}
	return false, foreignMount(podDir)
}

// bindPod records podDir as a user of the volume before its bind, so a
// bind never goes uncounted, then binds it.
func (l *Lifecycle) bindPod(ctx context.Context, rec *state.Record, global, podDir string, ro bool) error {
	if !slices.Contains(rec.Pods, podDir) {
		rec.Pods = append(rec.Pods, podDir)
		if err := l.save(rec); err != nil {
			return err
		}
	}
	if err := mkdir(podDir); err != nil {
		return err
	}
	if err := l.bindAt(ctx, global, podDir, ro); err != nil {
		return err
	}
	l.observe(StepAfterBind)
	return nil
}

// bindAt binds global at the pinned podDir; a read-only bind is then
// remounted read-only through a fresh pin, which now holds the bind's own
// root (the first descriptor holds the directory under it).
func (l *Lifecycle) bindAt(ctx context.Context, global, podDir string, ro bool) error {
	target, unpin, err := l.pin(podDir, false)
	if err != nil {
		return err
	}
	err = l.Mounter.Bind(ctx, global, target, false)
	unpin()
	if err != nil || !ro {
		return err
	}
	target, unpin, err = l.pin(podDir, false)
	if err != nil {
		return err
	}
	defer unpin()
	return l.Mounter.ReadOnly(ctx, target)
}

func (l *Lifecycle) save(rec *state.Record) error {
	rec.Updated = l.now()
	return l.Records.Save(rec)
}

// setupGlobal acquires the device, formats it if blank and mounts it at
// the global mount. The state record is written before Acquire so that a
// crash at any later step leaves a trace that a retry or unmount cleans up.
func (l *Lifecycle) setupGlobal(ctx context.Context, c *options.Common, spec Spec, global string) (*state.Record, error) {
	rec, err := l.record(spec.ID())
	if err != nil {
		return nil, err
	}
	if rec == nil {
		rec = &state.Record{Backend: l.Backend.Name(), ID: spec.ID(), Mode: state.ModePod}
	}
	rec.FSType, rec.ReadOnly, rec.GlobalMount, rec.Locks = c.FSType, c.ReadOnly, global, spec.LockKeys()
	if err := l.save(rec); err != nil {
		return nil, err
	}
	dev, data, err := spec.Acquire(ctx, l.Env, len(c.Secrets) == 0)
	if err != nil {
		return nil, errors.Join(err, l.Records.Delete(rec.Backend, rec.ID))
	}
	rec.Device, rec.Data = dev, data
	undo := func(ctx context.Context) error { return l.teardown(ctx, rec) }
	if err := l.save(rec); err != nil {
		return nil, errors.Join(err, l.cleanup(ctx, undo))
	}
	l.observe(StepAfterAcquire)
	if err := l.formatAndMount(ctx, c, dev, global); err != nil {
		return nil, errors.Join(err, l.cleanup(ctx, undo))
	}
	l.observe(StepAfterGlobalMount)
	return rec, nil
}

// storageLock is held, node-wide, from "is this storage free" to "it is
// mounted": two volumes with different ids whose devices reach one
// storage (one LUN through two paths) would otherwise both pass the check
// and both format or mount it. Taken after the volume's own locks, always.
const storageLock = "node-storage"

func (l *Lifecycle) formatAndMount(ctx context.Context, c *options.Common, dev, target string) error {
	unlock, err := l.Locks.Lock(ctx, []string{storageLock}, l.lockWait())
	if err != nil {
		return errkind.Mark(errkind.Busy, err)
	}
	defer unlock()
	if l.Free != nil {
		if err := l.Free(ctx, dev, target); err != nil {
			return err
		}
	}
	formatted, err := l.Format.Prepare(ctx, dev, c.FSType, c.ReadOnly, c.MkfsOptions)
	if err != nil {
		return err
	}
	l.Env.Log.Info(logging.EventDeviceReady, "device", dev, "fsType", c.FSType, "formatted", formatted)
	l.observe(StepAfterFormat)
	if err := mkdir(target); err != nil {
		return err
	}
	opts := append([]string{}, c.MountOptions...)
	if c.ReadOnly {
		opts = append(opts, "ro")
	}
	return l.Mounter.Mount(ctx, dev, target, c.FSType, opts)
}

// Unmount removes the pod's bind; the last one out unmounts the global
// mount and releases the device. It needs no options: the state records
// (which list the pod dirs bound to each global mount) and statx on those
// paths tell it everything.
func (l *Lifecycle) Unmount(ctx context.Context, podDir string) error {
	if l.Env.Config.Attach {
		return errkind.Errorf(errkind.Unsupported, "unmount is not supported in attach mode")
	}
	if _, err := PodDir(podDir, l.Backend.Name(), l.Env.Config.KubeletRoot); err != nil {
		return err
	}
	// Every question and the unmount itself go through the pinned parent:
	// a symlink swapped in after the checks cannot redirect them.
	target, unpin, err := l.pin(podDir, true)
	if errors.Is(err, fs.ErrNotExist) {
		return l.gone(ctx, podDir) // no parent dir: nothing is mounted there
	}
	if err != nil {
		return err
	}
	defer unpin()
	mounted, err := l.Mounter.Mounted(target)
	if err != nil {
		return err
	}
	if !mounted {
		return l.gone(ctx, podDir)
	}
	rec, err := l.owner(target)
	if err == nil && rec == nil {
		rec, err = l.orphan(podDir, target)
	}
	if err != nil {
		return err
	}
	if rec == nil {
		return l.Mounter.Unmount(ctx, target)
	}
	unlock, err := l.lock(ctx, rec.ID, rec.Locks)
	if err != nil {
		return err
	}
	defer unlock()
	if err := l.Mounter.Unmount(ctx, target); err != nil {
		return err
	}
	l.observe(StepAfterUnbind)
	if rec, err = l.record(rec.ID); err != nil {
		return err
	}
	return l.releaseIfUnused(ctx, rec)
}

// gone answers for a pod dir that shows no mount: already unmounted, maybe
// by a call that died before it could release the device, so that job is
// finished now. Then the mount table, not the path, has the last word: a
// bind of the pod's volume still anywhere under the pod's own dir (its
// volume dir swapped away during the call) means the pod is not unmounted.
func (l *Lifecycle) gone(ctx context.Context, podDir string) error {
	if err := l.collect(ctx, podDir); err != nil {
		return err
	}
	recs, err := l.records()
	if err != nil {
		return err
	}
	for _, r := range recs {
		if !slices.Contains(r.Pods, podDir) || r.GlobalMount == "" {
			continue
		}
		g, err := l.Mounter.Lookup(r.GlobalMount)
		if err != nil || g == nil {
			return err
		}
		users, err := l.Mounter.Users(g)
		if err != nil {
			return err
		}
		for _, u := range users {
			if strings.HasPrefix(u.Mountpoint, podHome(podDir)) {
				return errkind.Errorf(errkind.Busy, "pod dir %s shows no mount but its pod still has a bind of volume %s at %s (moved or swapped during the call): nothing unmounted; kubelet's retry unmounts it", podDir, r.ID, u.Mountpoint)
			}
		}
	}
	return nil
}

// owner finds the state record of the global mount that podDir is a bind of.
func (l *Lifecycle) owner(podDir string) (*state.Record, error) {
	recs, err := l.records()
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Mode != state.ModePod || r.GlobalMount == "" {
			continue
		}
		same, err := l.Mounter.Same(r.GlobalMount, podDir)
		if err != nil {
			return nil, err
		}
		if same {
			return r, nil
		}
	}
	return nil, nil
}

// orphan finds the global mount podDir is a bind of when no record names
// it (the record was set aside as corrupt, or deleted) and rebuilds the
// record from the mount table, so the last pod out still tears the volume
// down instead of leaking its mount and device forever. Without the
// backend's data a release can only use the device (RBD unmaps it; an
// iSCSI session is left for the operator, and logged).
func (l *Lifecycle) orphan(podDir, target string) (*state.Record, error) {
	dir := filepath.Join(rootOf(podDir), "plugins", "flexblock", l.Backend.Name(), "mounts")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil // no global mount dir: nothing of ours to rebuild
	}
	for _, e := range ents {
		global := filepath.Join(dir, e.Name())
		if same, err := l.Mounter.Same(global, target); err != nil || !same {
			continue
		}
		m, err := l.Mounter.Lookup(global)
		if err != nil || m == nil {
			return nil, err
		}
		rec := &state.Record{Backend: l.Backend.Name(), ID: e.Name(), Mode: state.ModePod, Device: m.Source,
			FSType: m.FSType, ReadOnly: hasOption(m.Options, "ro"), GlobalMount: global}
		if rec.Pods, err = l.podUsers(m, global); err != nil {
			return nil, err
		}
		if err := l.checkPaths(rec); err != nil {
			return nil, nil // not a mount flexblock would have made
		}
		l.Env.Log.Warn(logging.EventRecordRebuilt, "id", rec.ID, "device", rec.Device, "pods", len(rec.Pods), "from", "unmount")
		return rec, l.save(rec)
	}
	return nil, nil
}

// releaseIfUnused tears the volume down when no pod bind of it remains.
// The caller holds the volume's lock.
func (l *Lifecycle) releaseIfUnused(ctx context.Context, rec *state.Record) error {
	if rec == nil {
		return nil
	}
	if rec.GlobalMount != "" {
		mounted, err := l.Mounter.Mounted(rec.GlobalMount)
		if err != nil {
			return err
		}
		if mounted {
			inUse, err := l.inUse(rec)
			if err != nil || inUse {
				return err
			}
		}
	}
	return l.teardown(ctx, rec)
}

// inUse tells whether a pod listed in rec still has a bind of its global
// mount (statx on each, no table read); the ones gone are forgotten. When
// none is left the list stays as it is: the teardown that follows deletes
// the record, and if it fails, the last pods still own the failure.
func (l *Lifecycle) inUse(rec *state.Record) (bool, error) {
	var left []string
	for _, p := range rec.Pods {
		same, err := l.Mounter.Same(rec.GlobalMount, p)
		if err != nil {
			return false, err
		}
		if same {
			left = append(left, p)
		}
	}
	if len(left) > 0 && len(left) != len(rec.Pods) {
		rec.Pods = left
		if err := l.save(rec); err != nil {
			return false, err
		}
	}
	if len(left) > 0 {
		return true, nil
	}
	return l.unrecordedBind(rec)
}

// unrecordedBind reads the mount table once, when the recorded pods are
// all gone, before the volume is torn down: a bind the paths no longer
// show (a pod dir moved away keeps its bind) still uses the filesystem,
// and releasing the device under it would lose its writes. Only binds
// under the kubelet's pods dir count: copies of the global mount that
// propagation makes elsewhere (a containerized kubelet's view) are not
// users.
func (l *Lifecycle) unrecordedBind(rec *state.Record) (bool, error) {
	g, err := l.Mounter.Lookup(rec.GlobalMount)
	if err != nil || g == nil {
		return false, err
	}
	users, err := l.Mounter.Users(g)
	if err != nil {
		return false, err
	}
	pods := rootOf(rec.GlobalMount) + "/pods/"
	for _, u := range users {
		if strings.HasPrefix(u.Mountpoint, pods) {
			l.Env.Log.Warn(logging.EventUnrecordedBind, "id", rec.ID, "mountpoint", u.Mountpoint)
			return true, errkind.Errorf(errkind.Busy, "volume %s still has a bind at %s that no pod of it recorded (a pod dir moved or replaced?): flexblock keeps the volume mounted and its device attached; unmount that bind by hand, then kubelet's retry releases the volume", rec.ID, u.Mountpoint)
		}
	}
	return false, nil
}

// teardown unmounts the global mount, releases the device and forgets it.
// Each step is idempotent, so a retry after a crash anywhere completes it.
func (l *Lifecycle) teardown(ctx context.Context, rec *state.Record) error {
	if rec.GlobalMount != "" {
		if err := l.Mounter.Unmount(ctx, rec.GlobalMount); err != nil {
			return err
		}
		l.observe(StepAfterGlobalUnmount)
	}
	if rec.Device != "" || len(rec.Data) > 0 {
		l.observe(StepBeforeRelease)
		if err := l.Backend.Release(ctx, l.Env, rec); err != nil {
			return fmt.Errorf("release %s: %w", rec.ID, err)
		}
	}
	if err := l.Records.Delete(rec.Backend, rec.ID); err != nil {
		return err
	}
	if rec.Mode == state.ModePod && rec.GlobalMount != "" {
		return rmdir(rec.GlobalMount)
	}
	return nil
}

// collect releases pod-mode volumes that no pod uses any more: what a
// driver killed between unbind and release left behind. Volumes whose
// lock is held are being worked on and are skipped. Only the volume that
// listed podDir is this call's business: the failure of another volume's
// cleanup is logged, never answered to this pod.
func (l *Lifecycle) collect(ctx context.Context, podDir string) error {
	recs, err := l.records()
	if err != nil {
		return err
	}
	var mine []error
	for _, r := range recs {
		if r.Mode != state.ModePod {
			continue
		}
		err := l.collectOne(ctx, r)
		switch {
		case err == nil:
		case slices.Contains(r.Pods, podDir):
			mine = append(mine, err)
		default:
			l.Env.Log.Warn(logging.EventCollectFailed, "id", r.ID, "error", err.Error())
		}
	}
	return errors.Join(mine...)
}

// collectLockWait is short: a held lock means a call is working on it.
const collectLockWait = 50 * time.Millisecond

func (l *Lifecycle) collectOne(ctx context.Context, r *state.Record) error {
	unlock, err := l.lockWithin(ctx, r.ID, r.Locks, collectLockWait)
	if err != nil {
		return nil // busy: its owner finishes the job
	}
	defer unlock()
	r, err = l.record(r.ID) // re-read under the lock
	if err != nil || r == nil {
		return err
	}
	l.Env.Log.Info(logging.EventCollecting, "id", r.ID)
	return l.releaseIfUnused(ctx, r)
}
