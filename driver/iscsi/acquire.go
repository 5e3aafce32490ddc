package iscsi

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/lock"
	"github.com/flexblock/flexblock/driver/logging"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/state"
	"github.com/flexblock/flexblock/driver/volume"
)

// acquirer is one Acquire call: what it did, so that a failure undoes
// exactly that.
type acquirer struct {
	v    *Volume
	b    *Backend
	env  *volume.Env
	adm  adm
	own  owned
	disc *chap // discovery CHAP, nil when not used
	sess *chap // session CHAP, nil when not used
	// grant is what sessions this call logs in are made with.
	grant *grant

	portals  []string // resolved portals
	paths    []string // portals with a session (reused or logged in)
	loggedIn []string // portals this call logged in
}

// Acquire logs in to every portal that has no session yet, waits for the
// LUN's device (the multipath map with several portals) and returns it. A
// session that already exists is reused. On failure it undoes what it did.
func (v *Volume) Acquire(ctx context.Context, env *volume.Env, nodeLocal bool) (string, json.RawMessage, error) {
	disc, sess, err := v.credentials(env, nodeLocal)
	if err != nil {
		return "", nil, err
	}
	g, err := v.grantOf(env, disc, sess)
	if err != nil {
		return "", nil, err
	}
	a := &acquirer{v: v, b: v.b, env: env, adm: admOf(env), own: ownedIn(env), disc: disc, sess: sess, grant: g}
	dev, data, err := a.run(ctx)
	if err != nil {
		return "", nil, errors.Join(err, a.undo(context.WithoutCancel(ctx)))
	}
	return dev, data, nil
}

func (a *acquirer) run(ctx context.Context) (string, json.RawMessage, error) {
	v := a.v
	if v.InitiatorName != "" {
		if err := a.ensureIface(ctx); err != nil {
			return "", nil, err
		}
	} else if v.BaseIface != defaultIface {
		if _, err := a.adm.showIface(ctx, v.BaseIface); err != nil {
			return "", nil, fmt.Errorf("iscsiInterface %q does not exist on this node: create it (iscsiadm -m iface -I %s -o new) or leave iscsiInterface unset for the default iface: %w", v.BaseIface, v.BaseIface, err)
		}
	}
	var failures []error
	for _, p := range v.Portals {
		rp, err := a.b.resolve(ctx, p)
		if err != nil {
			failures = append(failures, err)
			continue
		}
		if contains(a.portals, rp) {
			continue
		}
		a.portals = append(a.portals, rp)
		if a.b.findSession(v.IQN, rp, v.Iface) != nil {
			if err := a.mayReuse(rp); err != nil {
				return "", nil, err
			}
			a.env.Log.Info("reusing iSCSI session", "iqn", v.IQN, "portal", rp, "iface", v.Iface)
			a.paths = append(a.paths, rp)
			continue
		}
		if err := a.login(ctx, rp); err != nil {
			failures = append(failures, errors.Join(err, a.dropPortal(context.WithoutCancel(ctx), rp)))
			continue
		}
		a.paths = append(a.paths, rp)
	}
	if len(a.paths) == 0 {
		return "", nil, errors.Join(failures...)
	}
	for _, f := range failures {
		a.env.Log.Warn("portal unusable, continuing with the others", "iqn", v.IQN, "error", f.Error())
	}
	waitStart := a.b.Now()
	dev, sds, dm, name, err := a.waitDevice(ctx)
	if err != nil {
		return "", nil, err
	}
	wwid, err := a.b.lunWWID(sds)
	if err != nil {
		return "", nil, err
	}
	data, _ := json.Marshal(attachment{IQN: v.IQN, LUN: v.LUN, Iface: v.Iface, Portals: a.portals, Devices: sds, DM: dm, DMName: name, WWID: wwid, Grant: a.grant})
	a.env.Log.Info(logging.EventLUNReady, "iqn", v.IQN, "lun", v.LUN, "device", dev, "paths", sds, "waitedMs", a.b.Now().Sub(waitStart).Milliseconds())
	return dev, data, nil
}

// undo releases the sessions this call logged in (the devices on them, the
// session, the node records and iface it created), as Release would.
func (a *acquirer) undo(ctx context.Context) error {
	at := attachment{IQN: a.v.IQN, LUN: a.v.LUN, Iface: a.v.Iface, Portals: a.portals}
	return a.b.release(ctx, a.env, a.v.ID(), at, a.loggedIn)
}

// mayReuse refuses a session flexblock logged in with other CHAP
// credentials (or none) than this call's: a LUN is reached only with the
// credentials its volume names. A session flexblock did not make (an
// administrator's) is reused as it is: its credentials are not known.
func (a *acquirer) mayReuse(portal string) error {
	m, ok := a.own.get(sessionMarker(a.v.IQN, portal, a.v.Iface))
	if !ok || hmac.Equal([]byte(m.CHAP), []byte(a.grant.CHAP)) {
		return nil
	}
	return errkind.Errorf(errkind.Denied, "the iSCSI session to %s at %s was logged in with other CHAP credentials (or CHAP settings) than LUN %d names: fix the Secret and chapAuthDiscovery/chapAuthSession of this volume",
		a.v.IQN, portal, a.v.LUN)
}

// dropPortal undoes a failed login at one portal right away.
func (a *acquirer) dropPortal(ctx context.Context, portal string) error {
	at := attachment{IQN: a.v.IQN, LUN: a.v.LUN, Iface: a.v.Iface, Portals: a.portals}
	err := a.b.release(ctx, a.env, a.v.ID(), at, []string{portal})
	var rest []string
	for _, p := range a.loggedIn {
		if p != portal {
			rest = append(rest, p)
		}
	}
	a.loggedIn = rest
	return err
}

// resolve turns a portal with a DNS name into one with an IP: sysfs shows
// sessions by address.
func (b *Backend) resolve(ctx context.Context, portal string) (string, error) {
	host, port, err := net.SplitHostPort(portal)
	if err != nil {
		return "", err
	}
	if net.ParseIP(host) != nil {
		return portal, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addrs, err := b.Resolve(ctx, host)
	if err != nil || len(addrs) == 0 {
		return "", fmt.Errorf("portal %s: cannot resolve %s: %v; use an IP address or fix the node's DNS", portal, host, err)
	}
	return net.JoinHostPort(addrs[0], port), nil
}

// login discovers the target at portal, prepares the node record and logs
// in. The ownership markers are written before each object is made.
func (a *acquirer) login(ctx context.Context, portal string) error {
	v, env := a.v, a.env
	if err := a.discover(ctx, portal); err != nil {
		return err
	}
	a.loggedIn = append(a.loggedIn, portal) // from here on, undo cleans this portal
	n := node{IQN: v.IQN, Portal: portal, Iface: v.Iface}
	if err := a.adm.hasNode(ctx, n); err != nil {
		if err := a.own.set(nodeMarker(v.IQN, portal, v.Iface)); err != nil {
			return err
		}
		if err := a.adm.newNode(ctx, n); err != nil {
			return fmt.Errorf("create the node record of %s at %s: %w", v.IQN, portal, err)
		}
	}
	lt, retries := loginBounds(v.cfg.Timeout("iscsiadm"))
	settings := []string{"node.startup", "manual", "node.session.scan", "manual",
		"node.conn[0].timeo.login_timeout", itoa(lt), "node.session.initial_login_retry_max", itoa(retries)}
	if a.sess != nil {
		settings = append(settings, chapSettings(sessionAuth, a.sess)...)
	}
	if err := a.adm.updateNode(ctx, n, settings...); err != nil {
		return fmt.Errorf("update the node record of %s at %s: %w", v.IQN, portal, err)
	}
	sm := sessionMarker(v.IQN, portal, v.Iface)
	sm.CHAP = a.grant.CHAP
	if err := a.own.set(sm); err != nil {
		return err
	}
	start := time.Now()
	err := a.adm.login(ctx, n)
	if err != nil && exitCode(err) != errSessExists {
		return explainLogin(v, portal, err)
	}
	if a.b.findSession(v.IQN, portal, v.Iface) == nil {
		return fmt.Errorf("login to %s at %s succeeded but sysfs shows no such session", v.IQN, portal)
	}
	env.Log.Info("logged in", "iqn", v.IQN, "portal", portal, "iface", v.Iface, "ms", time.Since(start).Milliseconds())
	return nil
}

// discover runs sendtargets discovery without touching the node database
// (-o nonpersistent: records of other targets are never created), and
// checks the portal offers the target. Discovery CHAP needs a discovery
// record: one flexblock creates lives only for this call.
func (a *acquirer) discover(ctx context.Context, portal string) error {
	v, env := a.v, a.env
	d := discovery{Portal: portal, Iface: v.Iface}
	if a.disc != nil {
		l, err := lock.Acquire(ctx, env.Layout.Locks(), "iscsi-discovery-"+lockSafe(portal), v.cfg.Timeout("lock"))
		if err != nil {
			return err
		}
		defer l.Release()
		dm := discoveryMarker(portal)
		created := a.own.has(dm)
		if err := a.adm.hasDiscovery(ctx, d); err != nil {
			if err := a.own.set(dm); err != nil {
				return err
			}
			created = true
			if err := a.adm.newDiscovery(ctx, d); err != nil {
				return fmt.Errorf("create the discovery record of %s: %w", portal, errors.Join(err, a.dropDiscovery(ctx, d, dm)))
			}
		}
		if created {
			defer func() {
				if err := a.dropDiscovery(context.WithoutCancel(ctx), d, dm); err != nil {
					env.Log.Warn("could not delete the discovery record", "portal", portal, "error", err.Error())
				}
			}()
		}
		if err := a.adm.updateDiscovery(ctx, d, chapSettings(discoveryAuth, a.disc)...); err != nil {
			return fmt.Errorf("set discovery CHAP of %s: %w", portal, err)
		}
	}
	out, err := a.adm.discover(ctx, d)
	if err != nil {
		return explainDiscovery(v, portal, err)
	}
	if ok, names := offers(out, v.IQN); !ok {
		listed := "no targets"
		if len(names) > 0 {
			listed = strings.Join(names, ", ")
		}
		return fmt.Errorf("portal %s does not offer target %s to this initiator (it lists %s): check the iqn option, and the target's ACL for this node's initiator name%s", portal, v.IQN, listed, initiatorHint(v))
	}
	return nil
}

func (a *acquirer) dropDiscovery(ctx context.Context, d discovery, dm marker) error {
	err := a.adm.deleteDiscovery(ctx, d)
	if err != nil && exitCode(err) != errNoObjects && exitCode(err) != 6 {
		return err
	}
	return a.own.clear(dm)
}

// ensureIface creates the dedicated iface carrying initiatorName (copying
// the transport settings of a non-default base iface), so the node's
// default initiator name stays untouched.
func (a *acquirer) ensureIface(ctx context.Context) error {
	v := a.v
	if _, err := a.adm.showIface(ctx, v.Iface); err != nil {
		if err := a.own.set(ifaceMarker(v.Iface)); err != nil {
			return err
		}
		if err := a.adm.newIface(ctx, v.Iface); err != nil {
			return fmt.Errorf("create iface %s for initiatorName %s: %w", v.Iface, v.InitiatorName, err)
		}
		if v.BaseIface != defaultIface {
			out, err := a.adm.showIface(ctx, v.BaseIface)
			if err != nil {
				return fmt.Errorf("read iface %s (iscsiInterface): %w", v.BaseIface, err)
			}
			vals := ifaceValues(out)
			for _, k := range clonedIfaceSettings {
				if val, ok := vals[k]; ok {
					if err := a.adm.updateIface(ctx, v.Iface, k, val); err != nil {
						return fmt.Errorf("copy %s of iface %s: %w", k, v.BaseIface, err)
					}
				}
			}
		}
	}
	if err := a.adm.updateIface(ctx, v.Iface, "iface.initiatorname", v.InitiatorName); err != nil {
		return fmt.Errorf("set initiator name on iface %s: %w", v.Iface, err)
	}
	return nil
}

// waitDevice waits, with short polls up to iscsi.deviceTimeout, for the
// LUN's sd device on every session (rescanning only that LUN while it is
// missing), then, with several portals, for the multipath map holding
// them. It returns the device to use, the sd names and the map.
func (a *acquirer) waitDevice(ctx context.Context) (dev string, sds []string, dm, name string, err error) {
	v, b := a.v, a.b
	timeout := time.Duration(v.cfg.ISCSI.DeviceTimeout)
	deadline := b.Now().Add(timeout)
	lastScan := map[string]time.Time{}
	var missing []string
	for {
		sds, missing = nil, nil
		for _, p := range a.paths {
			s := b.findSession(v.IQN, p, v.Iface)
			if s == nil {
				missing = append(missing, p+" (session gone)")
				continue
			}
			sd := lunDevice(s, v.LUN)
			if sd == "" {
				sd = b.byPath(p, v.IQN, v.LUN)
			}
			if sd != "" && exists(filepath.Join(b.DevRoot, sd)) {
				sds = append(sds, sd)
				continue
			}
			missing = append(missing, p)
			if sd == "" && b.Now().Sub(lastScan[p]) >= 2*time.Second {
				lastScan[p] = b.Now()
				if err := b.scan(s, v.LUN); err != nil {
					a.env.Log.Warn("rescan failed", "error", err.Error())
				}
			}
		}
		expired := !b.Now().Before(deadline)
		if len(missing) == 0 || expired && len(sds) > 0 {
			break
		}
		if expired {
			return "", nil, "", "", a.noDevice(timeout)
		}
		if err := b.Sleep(ctx, pollInterval); err != nil {
			return "", nil, "", "", err
		}
	}
	if len(missing) > 0 {
		a.env.Log.Warn("LUN missing on some paths, continuing with the others", "missing", missing, "found", sds)
	}
	for {
		if dm, name = b.multipathHolder(sds); dm != "" {
			node := filepath.Join(b.DevRoot, dm)
			if name != "" && exists(filepath.Join(b.DevRoot, "mapper", name)) {
				node = filepath.Join(b.DevRoot, "mapper", name)
			}
			// multipathd builds a map from the first path and reloads it
			// as the others arrive; I/O on a map still being assembled
			// can fail, so wait for all paths (bounded by the deadline).
			complete := b.mapComplete(dm, sds)
			if exists(node) && (complete || !b.Now().Before(deadline)) {
				if !complete {
					a.env.Log.Warn("multipath map does not hold every path, using it anyway", "map", dm, "paths", sds)
				}
				return node, sds, dm, name, nil
			}
		}
		if len(v.Portals) == 1 && dm == "" {
			return filepath.Join(b.DevRoot, sds[0]), sds, "", "", nil
		}
		if !b.Now().Before(deadline) {
			return "", nil, "", "", fmt.Errorf("no multipath device holds %s (LUN %d of %s) after %s: with several portals flexblock uses the multipath map; start multipathd (multipath-tools) and check /etc/multipath.conf does not blacklist these paths (find_multipaths), or give a single portal", strings.Join(sds, ", "), v.LUN, v.IQN, timeout)
		}
		if err := b.Sleep(ctx, pollInterval); err != nil {
			return "", nil, "", "", err
		}
	}
}

func (a *acquirer) noDevice(timeout time.Duration) error {
	v := a.v
	for _, p := range a.paths {
		if s := a.b.findSession(v.IQN, p, v.Iface); s != nil && lunDir(s, v.LUN) != "" {
			return fmt.Errorf("LUN %d of %s is not a disk (it has no block device): check the lun option (a target's LUN 0 is often its controller)", v.LUN, v.IQN)
		}
	}
	return fmt.Errorf("LUN %d of %s did not appear within %s (iscsi.deviceTimeout) after login: check that the target exports LUN %d to this initiator%s", v.LUN, v.IQN, timeout, v.LUN, initiatorHint(v))
}

// credentials returns the CHAP credentials in use: from the Secret, or,
// without one, from the node-local credentials file (attach mode).
func (v *Volume) credentials(env *volume.Env, nodeLocal bool) (disc, sess *chap, err error) {
	if !v.ChapDiscovery && !v.ChapSession {
		return nil, nil, nil
	}
	if v.secretGiven {
		return v.discoveryCreds, v.sessionCreds, nil
	}
	path := v.cfg.ISCSI.CredentialsFile
	if path == "" {
		how := "give a Secret with the CHAP keys (secretRef, type flexblock/iscsi), or set iscsi.credentialsFile in the driver config"
		if nodeLocal && v.cfg.Attach {
			how = "attach mode gets no Secret on the node: set iscsi.credentialsFile in the driver config to a JSON file of the Secret's keys"
		}
		return nil, nil, fmt.Errorf("CHAP is enabled for %s but there are no credentials: %s", v.IQN, how)
	}
	m, err := readCredentials(path)
	if err != nil {
		return nil, nil, err
	}
	for _, k := range []string{"password", "password_in"} {
		env.Mask.Add(m[discoveryAuth+"."+k])
		env.Mask.Add(m[sessionAuth+"."+k])
	}
	field := func(k string) string { return path + ": " + k }
	fix := func(opt string) func(string) string {
		return func(k string) string {
			return fmt.Sprintf("add %q to the credentials file (%s is \"true\")", k, opt)
		}
	}
	if v.ChapDiscovery {
		if disc, err = chapFrom(m, discoveryAuth, field, fix(optChapDiscovery)); err != nil {
			return nil, nil, err
		}
	}
	if v.ChapSession {
		if sess, err = chapFrom(m, sessionAuth, field, fix(optChapSession)); err != nil {
			return nil, nil, err
		}
	}
	return disc, sess, nil
}

// readCredentials reads the node-local CHAP file: a JSON object of the
// Secret's keys, not readable by others.
func readCredentials(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("iscsi.credentialsFile: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("iscsi.credentialsFile: %w", err)
	}
	if st.Mode().Perm()&0o007 != 0 {
		return nil, fmt.Errorf("iscsi.credentialsFile %s is accessible to every user (mode %04o): chmod 600 it", path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("iscsi.credentialsFile: %w", err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("iscsi.credentialsFile %s is not a JSON object of strings (the Secret's keys, for example {\"node.session.auth.username\": \"...\", \"node.session.auth.password\": \"...\"})", path)
	}
	return m, nil
}

// lockSafe maps a portal to lock-key characters.
func lockSafe(s string) string {
	return strings.NewReplacer(":", "_", "[", "", "]", "").Replace(s)
}

// Expand makes the kernel see a grown LUN: a rescan of each path, then
// `multipathd resize map` for the multipath map. The LUN itself is grown
// on the target by its administrator; flexblock cannot.
func (v *Volume) Expand(ctx context.Context, env *volume.Env, rec *state.Record, newSize int64) error {
	b := v.b
	at, ok := attachmentOf(rec)
	if !ok {
		return fmt.Errorf("volume %s has no iSCSI state on this node: mount it first", v.ID())
	}
	var sds []string
	for _, p := range at.Portals {
		if s := b.findSession(at.IQN, p, at.Iface); s != nil {
			if sd := lunDevice(s, at.LUN); sd != "" {
				sds = append(sds, sd)
			}
		}
	}
	if len(sds) == 0 {
		return fmt.Errorf("LUN %d of %s has no device on this node: is it still logged in?", at.LUN, at.IQN)
	}
	for _, sd := range sds {
		if err := b.rescanSD(sd); err != nil {
			return err
		}
	}
	wait := min(time.Duration(v.cfg.ISCSI.DeviceTimeout), 10*time.Second)
	grown := func(devs ...string) bool {
		for _, d := range devs {
			if b.sizeBytes(d) < newSize {
				return false
			}
		}
		return true
	}
	if err := b.waitUntil(ctx, wait, func() bool { return grown(sds...) }); err != nil {
		return fmt.Errorf("LUN %d of %s is %d bytes after a rescan, less than the %d requested: grow the LUN on the target first (flexblock cannot resize an iSCSI LUN), then expand again", at.LUN, at.IQN, b.sizeBytes(sds[0]), newSize)
	}
	dm, name := b.multipathHolder(sds)
	if dm == "" {
		return nil
	}
	if _, err := env.Run.Run(ctx, runner.Cmd{Name: "multipathd", Args: []string{"resize", "map", orDefault(name, dm)}}); err != nil {
		return fmt.Errorf("resize multipath map %s: %w", orDefault(name, dm), err)
	}
	if err := b.waitUntil(ctx, wait, func() bool { return grown(dm) }); err != nil {
		return fmt.Errorf("multipath map %s is %d bytes after multipathd resize, less than the %d requested", orDefault(name, dm), b.sizeBytes(dm), newSize)
	}
	return nil
}

// waitUntil polls cond every pollInterval up to d.
func (b *Backend) waitUntil(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := b.Now().Add(d)
	for !cond() {
		if !b.Now().Before(deadline) {
			return errors.New("timed out")
		}
		if err := b.Sleep(ctx, pollInterval); err != nil {
			return err
		}
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
