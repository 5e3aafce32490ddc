// Package iscsi is the iSCSI backend: it logs in to a target's portals
// (sendtargets discovery, optional discovery and session CHAP, node.startup
// manual), finds the LUN's block device through sysfs (the multipath dm
// device when there are several portals), and on release deletes the LUN's
// devices and logs out only when no other volume of the target is still in
// use on the node.
package iscsi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/flexblock/flexblock/driver/blockdev"
	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/internal/wait"
	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/state"
	"github.com/flexblock/flexblock/driver/volume"
)

// Backend is the iSCSI backend.
type Backend struct {
	// SysRoot and DevRoot are /sys and /dev (tests point them at fake trees).
	SysRoot string
	DevRoot string
	// Write writes a sysfs attribute (scan, delete, rescan).
	Write func(path string, data []byte) error
	// Sleep and Now drive the device waits (tests make them instant).
	Sleep func(ctx context.Context, d time.Duration) error
	Now   func() time.Time
	// Resolve looks up a portal given as a DNS name.
	Resolve func(ctx context.Context, host string) ([]string, error)
	// DevNumber is the major:minor of a block device node (stat).
	DevNumber func(path string) (blockdev.Dev, error)
}

// New returns the backend on the real sysfs, /dev, clock and resolver.
func New() *Backend {
	return &Backend{
		SysRoot:   "/sys",
		DevRoot:   "/dev",
		Write:     writeSysfs,
		Sleep:     wait.Sleep,
		Now:       time.Now,
		Resolve:   net.DefaultResolver.LookupHost,
		DevNumber: blockdev.Number,
	}
}

// pollInterval bounds how late a device that appeared is noticed.
const pollInterval = 100 * time.Millisecond

// Name implements volume.Backend.
func (*Backend) Name() string { return "iscsi" }

// Keys implements volume.Backend.
func (*Backend) Keys() []string { return append([]string(nil), keys...) }

// Parse implements volume.Backend.
func (b *Backend) Parse(c *options.Common, cfg *config.Config) (volume.Spec, error) {
	v, err := parse(c, cfg)
	if err != nil {
		return nil, err
	}
	v.b = b
	return v, nil
}

// attachment is what Release needs, saved in the state record: no options,
// no secrets. The devices are looked up again in sysfs at release time
// (names are reused after a logout); the recorded ones are informational.
type attachment struct {
	IQN     string   `json:"iqn"`
	LUN     int      `json:"lun"`
	Iface   string   `json:"iface"`
	Portals []string `json:"portals"`
	Devices []string `json:"devices,omitempty"`
	DM      string   `json:"dm,omitempty"`
	DMName  string   `json:"dmName,omitempty"`
	// WWID is the LUN's, read when it was attached (Identify compares).
	WWID string `json:"wwid,omitempty"`
	// Grant is what the session was made with (Authorize compares); nil
	// in records of older versions.
	Grant *grant `json:"grant,omitempty"`
}

func attachmentOf(rec *state.Record) (attachment, bool) {
	var a attachment
	if len(rec.Data) == 0 || json.Unmarshal(rec.Data, &a) != nil || a.IQN == "" {
		return a, false
	}
	return a, true
}

// Release deletes the LUN's devices (the multipath map first), then logs
// out of each portal no other volume of the target still uses, and deletes
// the node records and the dedicated iface flexblock created. Sessions that
// are already gone are success.
func (b *Backend) Release(ctx context.Context, env *volume.Env, rec *state.Record) error {
	a, ok := attachmentOf(rec)
	if !ok {
		return nil
	}
	return b.release(ctx, env, rec.ID, a, a.Portals)
}

// release tears down the LUN on the sessions of portals, then the sessions
// and records flexblock owns that no other volume (other than selfID) uses.
func (b *Backend) release(ctx context.Context, env *volume.Env, selfID string, a attachment, portals []string) error {
	var sds []string
	for _, p := range portals {
		if s := b.findSession(a.IQN, p, a.Iface); s != nil {
			if sd := lunDevice(s, a.LUN); sd != "" {
				sds = append(sds, sd)
			}
		}
	}
	if err := b.releaseDevices(ctx, env, sds); err != nil {
		return err
	}
	users, err := otherUsers(env, selfID, a.IQN, a.Iface)
	if err != nil {
		return err
	}
	own := ownedIn(env)
	var errs []error
	for _, p := range portals {
		if users.portals[p] {
			env.Log.Info("keeping iSCSI session: another volume of the target uses it", "iqn", a.IQN, "portal", p)
			continue
		}
		errs = append(errs, b.logout(ctx, env, own, a.IQN, p, a.Iface))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if !users.iface {
		return b.deleteIface(ctx, env, own, a.Iface)
	}
	return nil
}

// releaseDevices flushes and removes the multipath map over sds, then
// flushes and deletes each sd device.
func (b *Backend) releaseDevices(ctx context.Context, env *volume.Env, sds []string) error {
	if len(sds) == 0 {
		return nil
	}
	if dm, name := b.multipathHolder(sds); dm != "" {
		b.flush(ctx, env, filepath.Join(b.DevRoot, dm))
		m := name
		if m == "" {
			m = dm
		}
		if _, err := env.Run.Run(ctx, runner.Cmd{Name: "multipath", Args: []string{"-f", m}}); err != nil {
			return fmt.Errorf("remove multipath map %s (%s) of %s: %w; is it still in use?", m, dm, sds, err)
		}
	}
	for _, sd := range sds {
		b.flush(ctx, env, filepath.Join(b.DevRoot, sd))
		if err := b.deleteSD(sd); err != nil {
			return err
		}
	}
	return nil
}

// flush writes back buffered data; a failure (a dead path) is logged, not
// fatal: the filesystem is already unmounted.
func (b *Backend) flush(ctx context.Context, env *volume.Env, dev string) {
	if !exists(dev) {
		return
	}
	if _, err := env.Run.Run(ctx, runner.Cmd{Name: "blockdev", Args: []string{"--flushbufs", dev}}); err != nil {
		env.Log.Warn("flush failed", "device", dev, "error", err.Error())
	}
}

// logout ends the session at portal if flexblock logged it in, and deletes
// the node record if flexblock created it. "No matching sessions" and
// "no records" are success.
func (b *Backend) logout(ctx context.Context, env *volume.Env, own owned, iqn, portal, iface string) error {
	sm, nm := sessionMarker(iqn, portal, iface), nodeMarker(iqn, portal, iface)
	n := node{IQN: iqn, Portal: portal, Iface: iface}
	if own.has(sm) {
		err := admOf(env).logout(ctx, n)
		if err != nil && exitCode(err) != errNoObjects {
			return fmt.Errorf("logout of %s at %s: %w", iqn, portal, err)
		}
		env.Log.Info("logged out", "iqn", iqn, "portal", portal)
		if err := own.clear(sm); err != nil {
			return err
		}
	} else if b.findSession(iqn, portal, iface) != nil {
		env.Log.Info("keeping iSCSI session flexblock did not log in", "iqn", iqn, "portal", portal)
	}
	if !own.has(nm) {
		return nil
	}
	if b.findSession(iqn, portal, iface) != nil {
		return nil // someone else's session uses the record
	}
	err := admOf(env).deleteNode(ctx, n)
	if err != nil && exitCode(err) != errNoObjects {
		return fmt.Errorf("delete node record of %s at %s: %w", iqn, portal, err)
	}
	return own.clear(nm)
}

// deleteIface deletes the dedicated iface flexblock created, once no
// session uses it.
func (b *Backend) deleteIface(ctx context.Context, env *volume.Env, own owned, iface string) error {
	im := ifaceMarker(iface)
	if !own.has(im) {
		return nil
	}
	for _, s := range b.sessions() {
		if s.Iface == iface {
			return nil
		}
	}
	if err := admOf(env).deleteIface(ctx, iface); err != nil && exitCode(err) != errNoObjects {
		return fmt.Errorf("delete iface %s: %w", iface, err)
	}
	return own.clear(im)
}

type users struct {
	portals map[string]bool // portals of the same target and iface
	iface   bool            // any volume on the iface
}

// otherUsers looks at the other volumes' state records: which portals of
// the target they use, and whether any uses the iface.
func otherUsers(env *volume.Env, selfID, iqn, iface string) (users, error) {
	u := users{portals: map[string]bool{}}
	recs, err := state.Store{Dir: env.Layout.Dir}.List("iscsi")
	if err != nil {
		return u, err
	}
	for _, r := range recs {
		if r.ID == selfID {
			continue
		}
		o, ok := attachmentOf(r)
		if !ok || o.Iface != iface {
			continue
		}
		u.iface = true
		if o.IQN != iqn {
			continue
		}
		for _, p := range o.Portals {
			u.portals[p] = true
		}
	}
	return u, nil
}

// Tools implements volume.Backend: the programs this backend runs.
func (*Backend) Tools() []string { return []string{"iscsiadm", "blockdev", "multipath", "multipathd"} }
