package rbd

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/state"
	"github.com/flexblock/flexblock/driver/volume"
)

// Tools implements volume.Backend: the programs this backend runs.
func (*Backend) Tools() []string { return []string{"rbd"} }

// recorded is the mapping a record describes: its data, or, for a record
// saved before Acquire returned, the image its ID names.
func recorded(rec *state.Record) (mapping, bool) {
	var m mapping
	if len(rec.Data) > 0 && json.Unmarshal(rec.Data, &m) == nil && m.Image != "" {
		return m, true
	}
	m, ok := parseID(rec.ID)
	if ok && deviceRE.MatchString(rec.Device) {
		m.Device = rec.Device
	}
	return m, ok
}

// Authorize implements volume.Spec: one read-only `rbd info` with this
// call's own credentials must see the image that is mapped, with the same
// image id as the kernel's mapping (so the same image of the same
// cluster). It is the price of joining a mount another pod made: one rbd
// call, only then.
func (v *Volume) Authorize(ctx context.Context, env *volume.Env, rec *state.Record, nodeLocal bool) error {
	auth, done, err := v.auth(env, nodeLocal)
	if err != nil {
		return errkind.Errorf(errkind.Denied, "volume %s is mounted on this node, but this pod cannot prove it may use it: %w", v.ImageSpec(), err)
	}
	defer done()
	info, err := v.info(ctx, env, auth)
	if err != nil {
		if isNotFound(err) {
			return errkind.Errorf(errkind.Mismatch, "volume %s: the monitors %s have no such image, so they are not the cluster of the image mounted on this node: %w", v.ImageSpec(), v.Monitors, err)
		}
		if errkind.Of(err) == nil {
			err = errkind.Mark(errkind.Denied, err)
		}
		return fmt.Errorf("volume %s is mounted on this node, but this pod's credentials do not open it (fix the user and key in its Secret): %w", v.ImageSpec(), err)
	}
	want := ""
	if m, ok := recorded(rec); ok {
		want = m.ImageID
	}
	if k, ok := v.b.byDevice(rec.Device); ok && k.ImageID != "" {
		want = k.ImageID
	}
	if want != "" && info.ID != want {
		return errkind.Errorf(errkind.Mismatch, "volume %s: the monitors %s have image id %s, but the image mounted on this node has id %s: another cluster's image of the same name",
			v.ImageSpec(), v.Monitors, info.ID, want)
	}
	return nil
}

// Identify implements volume.Spec: rec.Device must be, in the kernel's own
// words (sysfs and the device node's major:minor), the mapping of this
// volume's pool, namespace, image and snapshot, and of its image id when
// the record has it.
func (v *Volume) Identify(_ context.Context, _ *volume.Env, rec *state.Record) error {
	want := ""
	if m, ok := recorded(rec); ok {
		want = m.ImageID
	}
	return v.b.identify(rec.Device, v.key(), want)
}

// identify checks that dev is the kernel's mapping of m (and of imageID
// when it is known).
func (b *Backend) identify(dev string, m mapping, imageID string) error {
	k, ok := b.byDevice(dev)
	if !ok {
		return errkind.Errorf(errkind.Mismatch, "%s is not a mapped rbd device (nothing in %s/devices): it is not %s any more", dev, b.SysBus, m.spec())
	}
	if !k.is(m) {
		return errkind.Errorf(errkind.Mismatch, "%s now maps %s, not %s: the kernel reused the device number; refusing to use it",
			dev, spec(k.Pool, k.Namespace, k.Image, k.Snapshot), m.spec())
	}
	if !sameImage(k.ImageID, imageID) {
		return errkind.Errorf(errkind.Mismatch, "%s maps image id %s, not %s (%s): another image of the same name; refusing to use it", dev, k.ImageID, imageID, m.spec())
	}
	return b.checkNode(k)
}
