package iscsi

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/volume"
)

// iscsiadm exit codes (iscsiadm(8), EXIT STATUS).
const (
	errTrans        = 4
	errLogin        = 5
	errTransTimeout = 8
	errPDUTimeout   = 11
	errTransMissing = 12
	errSessExists   = 15
	errFatalLogin   = 19
	errNoIscsid     = 20
	errNoObjects    = 21
	errAuthFailed   = 24
)

// adm is iscsiadm, one method per operation flexblock uses. Lookups and
// teardown are quiet (their failure is an expected answer: "no such
// record", "not logged in"); the rest log a failure.
type adm struct{ run runner.Runner }

func admOf(env *volume.Env) adm { return adm{run: env.Run} }

// node names one node record: a target at a portal through an iface.
type node struct{ IQN, Portal, Iface string }

func (a adm) exec(ctx context.Context, quiet bool, args ...string) (runner.Result, error) {
	return a.run.Run(ctx, runner.Cmd{Name: "iscsiadm", Args: args, Quiet: quiet})
}

func (n node) args(more ...string) []string {
	return append([]string{"-m", "node", "-T", n.IQN, "-p", n.Portal, "-I", n.Iface}, more...)
}

// hasNode tells whether the node record exists (an error says why not).
func (a adm) hasNode(ctx context.Context, n node) error {
	_, err := a.exec(ctx, true, n.args()...)
	return err
}

func (a adm) newNode(ctx context.Context, n node) error {
	_, err := a.exec(ctx, false, n.args("-o", "new")...)
	return err
}

// updateNode sets settings (name, value pairs) in the node record.
func (a adm) updateNode(ctx context.Context, n node, settings ...string) error {
	_, err := a.exec(ctx, false, n.args(append([]string{"-o", "update"}, params(settings...)...)...)...)
	return err
}

func (a adm) login(ctx context.Context, n node) error {
	_, err := a.exec(ctx, false, n.args("--login")...)
	return err
}

func (a adm) logout(ctx context.Context, n node) error {
	_, err := a.exec(ctx, true, n.args("--logout")...)
	return err
}

func (a adm) deleteNode(ctx context.Context, n node) error {
	_, err := a.exec(ctx, true, n.args("-o", "delete")...)
	return err
}

// discovery names the sendtargets discovery record of a portal.
type discovery struct{ Portal, Iface string }

func (d discovery) args(more ...string) []string {
	return append([]string{"-m", "discoverydb", "-t", "sendtargets", "-p", d.Portal, "-I", d.Iface}, more...)
}

func (a adm) hasDiscovery(ctx context.Context, d discovery) error {
	_, err := a.exec(ctx, true, d.args()...)
	return err
}

func (a adm) newDiscovery(ctx context.Context, d discovery) error {
	_, err := a.exec(ctx, false, d.args("-o", "new")...)
	return err
}

func (a adm) updateDiscovery(ctx context.Context, d discovery, settings ...string) error {
	_, err := a.exec(ctx, false, d.args(append([]string{"-o", "update"}, params(settings...)...)...)...)
	return err
}

func (a adm) deleteDiscovery(ctx context.Context, d discovery) error {
	_, err := a.exec(ctx, true, d.args("-o", "delete")...)
	return err
}

// discover asks the portal which targets it offers, without touching the
// node database (-o nonpersistent: no records of other targets appear),
// and returns iscsiadm's "ip:port,tpgt iqn" lines.
func (a adm) discover(ctx context.Context, d discovery) (string, error) {
	res, err := a.exec(ctx, false, d.args("--discover", "-o", "nonpersistent")...)
	return string(res.Stdout), err
}

func ifaceArgs(iface string, more ...string) []string {
	return append([]string{"-m", "iface", "-I", iface}, more...)
}

// showIface returns the iface's settings ("key = value" lines); an error
// when it does not exist.
func (a adm) showIface(ctx context.Context, iface string) (string, error) {
	res, err := a.exec(ctx, true, ifaceArgs(iface)...)
	return string(res.Stdout), err
}

func (a adm) newIface(ctx context.Context, iface string) error {
	_, err := a.exec(ctx, false, ifaceArgs(iface, "-o", "new")...)
	return err
}

func (a adm) updateIface(ctx context.Context, iface string, settings ...string) error {
	_, err := a.exec(ctx, false, ifaceArgs(iface, append([]string{"-o", "update"}, params(settings...)...)...)...)
	return err
}

func (a adm) deleteIface(ctx context.Context, iface string) error {
	_, err := a.exec(ctx, true, ifaceArgs(iface, "-o", "delete")...)
	return err
}

// params turns name/value pairs into iscsiadm's repeated -n NAME -v VALUE
// (one process for several settings).
func params(kv ...string) []string {
	var out []string
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, "-n", kv[i], "-v", kv[i+1])
	}
	return out
}

// chapSettings are the iscsiadm settings (name, value pairs) of a CHAP
// credential set.
func chapSettings(prefix string, c *chap) []string {
	kv := []string{prefix + ".authmethod", "CHAP", prefix + ".username", c.User, prefix + ".password", c.Pass}
	if c.UserIn != "" {
		kv = append(kv, prefix+".username_in", c.UserIn, prefix+".password_in", c.PassIn)
	}
	return kv
}

// loginBounds picks the node record's login timeout and retry count so that
// iscsid gives up its initial login before the runner kills iscsiadm: a
// login iscsid kept retrying after iscsiadm died could succeed later and
// leave a session nobody owns.
func loginBounds(iscsiadmTimeout time.Duration) (loginTimeout, retries int) {
	t := int(iscsiadmTimeout / time.Second)
	loginTimeout = min(15, max(1, t/4))
	retries = max(1, t*6/10/loginTimeout)
	return loginTimeout, retries
}

func exitCode(err error) int { return runner.ExitCode(err) }

func timedOut(err error) bool { return errors.Is(err, runner.ErrTimeout) }

// explainLogin turns a failed login into a reason and a fix. err keeps
// iscsiadm's (masked) stderr.
func explainLogin(v *Volume, portal string, err error) error {
	what := fmt.Sprintf("login to %s at %s", v.IQN, portal)
	var hint string
	switch code := exitCode(err); {
	case code == errAuthFailed:
		hint = "the target rejected the CHAP credentials (authorization failure): check node.session.auth.username and node.session.auth.password (and username_in/password_in for mutual CHAP) in the Secret, or in the node's credentials file in attach mode, against the target's account, and that chapAuthSession is \"true\" only when the target asks for CHAP"
		if !v.ChapSession {
			hint = "the target requires CHAP authentication (authorization failure): set chapAuthSession: \"true\" and give node.session.auth.username and node.session.auth.password in the Secret"
		}
	case code == errFatalLogin || code == errLogin:
		hint = fmt.Sprintf("the target refused the login: check that it exports %s and that its ACL allows this node's initiator name%s", v.IQN, initiatorHint(v))
	case code == errTrans || code == errTransTimeout || code == errPDUTimeout || timedOut(err):
		hint = fmt.Sprintf("could not connect to the portal %s: check the address and port, and that the target is reachable from this node", portal)
	case code == errTransMissing:
		hint = "the iscsi_tcp kernel module is not loaded on this node: run modprobe iscsi_tcp"
	case code == errNoIscsid:
		hint = "iscsid is not running on this node: start it (systemctl enable --now iscsid)"
	default:
		hint = "see iscsiadm's message"
	}
	return fmt.Errorf("%s failed: %s: %w", what, hint, err)
}

func explainDiscovery(v *Volume, portal string, err error) error {
	what := fmt.Sprintf("discovery (sendtargets) at %s", portal)
	var hint string
	switch code := exitCode(err); {
	case code == errAuthFailed:
		hint = "the portal rejected the discovery CHAP credentials (authorization failure): check discovery.sendtargets.auth.username and discovery.sendtargets.auth.password in the Secret"
		if !v.ChapDiscovery {
			hint = "the portal requires discovery CHAP (authorization failure): set chapAuthDiscovery: \"true\" and give discovery.sendtargets.auth.username and discovery.sendtargets.auth.password in the Secret"
		}
	case code == errTrans || code == errTransTimeout || code == errPDUTimeout || timedOut(err):
		hint = fmt.Sprintf("could not connect to the portal %s: check targetPortal/portals (host:port) and that the target is reachable from this node", portal)
	case code == errNoObjects:
		hint = "the portal reports no targets to this initiator: check the target's ACL" + initiatorHint(v)
	case code == errNoIscsid:
		hint = "iscsid is not running on this node: start it (systemctl enable --now iscsid)"
	default:
		hint = "see iscsiadm's message"
	}
	return fmt.Errorf("%s failed: %s: %w", what, hint, err)
}

func initiatorHint(v *Volume) string {
	if v.InitiatorName != "" {
		return " (" + v.InitiatorName + ")"
	}
	return " (/etc/iscsi/initiatorname.iscsi)"
}

// offers tells whether sendtargets output ("ip:port,tpgt iqn" lines)
// lists iqn, and returns the targets it lists.
func offers(stdout, iqn string) (bool, []string) {
	var names []string
	for _, line := range strings.Split(stdout, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if f[len(f)-1] == iqn {
			return true, nil
		}
		if !contains(names, f[len(f)-1]) {
			names = append(names, f[len(f)-1])
		}
	}
	return false, names
}

// ifaceSettings copied from a non-default base iface into the dedicated one.
var clonedIfaceSettings = []string{"iface.transport_name", "iface.hwaddress", "iface.ipaddress", "iface.net_ifacename"}

// ifaceValues parses `iscsiadm -m iface -I NAME` ("key = value" lines).
func ifaceValues(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if v == "" || v == "<empty>" {
			continue
		}
		m[k] = v
	}
	return m
}

func itoa(n int) string { return strconv.Itoa(n) }
