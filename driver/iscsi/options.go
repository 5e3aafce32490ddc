package iscsi

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/internal/lazyre"
	"github.com/flexblock/flexblock/driver/options"
)

// Option names of the backend.
const (
	optPortal        = "targetPortal"
	optPortals       = "portals"
	optIQN           = "iqn"
	optLUN           = "lun"
	optIface         = "iscsiInterface"
	optInitiator     = "initiatorName"
	optChapDiscovery = "chapAuthDiscovery"
	optChapSession   = "chapAuthSession"
)

var keys = []string{optPortal, optPortals, optIQN, optLUN, optIface, optInitiator, optChapDiscovery, optChapSession}

// CHAP key prefixes, as Kubernetes' iSCSI CHAP Secrets spell them.
const (
	discoveryAuth = "discovery.sendtargets.auth"
	sessionAuth   = "node.session.auth"
)

const (
	defaultPort  = 3260
	defaultIface = "default"
	maxLUN       = 16383
	maxPortals   = 8
	maxNameLen   = 223 // RFC 3720: iSCSI names are at most 223 bytes
	maxIfaceLen  = 64  // open-iscsi ISCSI_MAX_IFACE_LEN - 1
	maxSecretLen = 255 // open-iscsi AUTH_STR_MAX_LEN - 1
	maxIDLen     = 200
)

// RFC 3720 3.2.6: iqn.YYYY-MM.reversed.domain[:identifier], only lowercase
// letters, digits, '-', '.' and ':'; eui. with 16 hex digits; naa. with 16
// or 32 hex digits.
var (
	iqnRE = lazyre.New(`^iqn\.[0-9]{4}-(0[1-9]|1[0-2])\.[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[a-z0-9.:-]+)?$`)
	euiRE = lazyre.New(`^eui\.[0-9A-Fa-f]{16}$`)
	naaRE = lazyre.New(`^naa\.([0-9A-Fa-f]{16}|[0-9A-Fa-f]{32})$`)
	// Interface names: open-iscsi's own names of offload ifaces contain ':'
	// (be2iscsi.00:00:c9:...), so ':' is allowed besides Name's charset.
	ifaceRE = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)
	lunRE   = lazyre.New(`^[0-9]{1,5}$`)
)

// chap is one set of CHAP credentials (In: mutual CHAP, the target's).
type chap struct {
	User, Pass, UserIn, PassIn string
}

// Volume is one validated iSCSI LUN.
type Volume struct {
	// Portals are host:port, targetPortal first; DNS names are resolved
	// at Acquire time.
	Portals       []string
	IQN           string
	LUN           int
	BaseIface     string // iscsiInterface
	InitiatorName string
	// Iface is the iface used: BaseIface, or a dedicated flexblock-<hash>
	// one carrying InitiatorName.
	Iface         string
	ChapDiscovery bool
	ChapSession   bool
	ReadOnly      bool
	// Credentials from the Secret (nil: none given, use the node-local
	// credentials file).
	discoveryCreds *chap
	sessionCreds   *chap
	secretGiven    bool

	cfg *config.Config
	b   *Backend
}

func parse(c *options.Common, cfg *config.Config) (*Volume, error) {
	o := c.Raw
	v := &Volume{ReadOnly: c.ReadOnly, cfg: cfg, BaseIface: defaultIface}
	var err error
	if v.Portals, err = portals(o); err != nil {
		return nil, err
	}
	if v.IQN, err = iscsiName(optIQN, o[optIQN], true); err != nil {
		return nil, err
	}
	if v.LUN, err = lun(o[optLUN]); err != nil {
		return nil, err
	}
	if s, ok := o[optIface]; ok {
		if err := ifaceName(optIface, s); err != nil {
			return nil, err
		}
		v.BaseIface = s
	}
	if v.InitiatorName, err = iscsiName(optInitiator, o[optInitiator], false); err != nil {
		return nil, err
	}
	v.Iface = v.BaseIface
	if v.InitiatorName != "" {
		v.Iface = dedicatedIface(v.BaseIface, v.InitiatorName)
	}
	if v.ChapDiscovery, err = options.Bool(o, optChapDiscovery, false); err != nil {
		return nil, err
	}
	if v.ChapSession, err = options.Bool(o, optChapSession, false); err != nil {
		return nil, err
	}
	if err := v.secretCredentials(c.Secrets); err != nil {
		return nil, err
	}
	return v, nil
}

func portals(o options.Options) ([]string, error) {
	first, ok := o[optPortal]
	if !ok || first == "" {
		return nil, options.Errorf(optPortal, "set it to the target's portal, for example \"10.0.0.5\" or \"10.0.0.5:3260\"", "is missing")
	}
	p, err := options.HostPort(optPortal, first, defaultPort)
	if err != nil {
		return nil, err
	}
	out := []string{p}
	extra, ok := o[optPortals]
	if !ok || strings.TrimSpace(extra) == "" {
		return out, nil
	}
	for _, item := range strings.Split(extra, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, options.Errorf(optPortals, "separate portals with single commas, for example \"10.0.0.6:3260,10.0.0.7:3260\"", "has an empty item")
		}
		p, err := options.HostPort(optPortals, item, defaultPort)
		if err != nil {
			return nil, err
		}
		if !contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) > maxPortals {
		return nil, options.Errorf(optPortals, fmt.Sprintf("list at most %d portals in all", maxPortals), "lists %d portals", len(out))
	}
	return out, nil
}

// iscsiName validates an IQN, EUI or NAA name.
func iscsiName(field, v string, required bool) (string, error) {
	fix := "write an iSCSI name such as iqn.2001-04.com.example:storage.disk1 (lowercase), eui.02004567A425678D or naa.52004567BA64678D"
	if v == "" {
		if required {
			return "", options.Errorf(field, fix, "is missing")
		}
		return "", nil
	}
	if len(v) > maxNameLen {
		return "", options.Errorf(field, fix, "is %d bytes long, more than the %d an iSCSI name may have", len(v), maxNameLen)
	}
	if !iqnRE.MatchString(v) && !euiRE.MatchString(v) && !naaRE.MatchString(v) {
		return "", options.Errorf(field, fix, "is %q, not a valid iSCSI name", quote(v))
	}
	return v, nil
}

func lun(v string) (int, error) {
	fix := fmt.Sprintf("write the LUN number as digits, 0 to %d", maxLUN)
	if v == "" {
		return 0, options.Errorf(optLUN, fix, "is missing")
	}
	if !lunRE.MatchString(v) {
		return 0, options.Errorf(optLUN, fix, "is %q, not a LUN number", quote(v))
	}
	n, _ := strconv.Atoi(v)
	if n > maxLUN {
		return 0, options.Errorf(optLUN, fix, "is %d, more than %d", n, maxLUN)
	}
	return n, nil
}

func ifaceName(field, v string) error {
	fix := "name an iscsiadm iface (iscsiadm -m iface lists them): letters, digits, '.', '_', ':' and '-', starting with a letter or digit"
	if v == "" {
		return options.Errorf(field, fix, "is empty")
	}
	if len(v) > maxIfaceLen {
		return options.Errorf(field, fix, "is %d characters long, more than %d", len(v), maxIfaceLen)
	}
	if !ifaceRE.MatchString(v) {
		return options.Errorf(field, fix, "is %q, which has characters that are not allowed", quote(v))
	}
	return nil
}

// dedicatedIface is the iface flexblock creates for a custom initiator
// name, so the node's default initiator name stays untouched.
func dedicatedIface(base, initiator string) string {
	sum := sha256.Sum256([]byte(base + "\x00" + initiator))
	return "flexblock-" + hex.EncodeToString(sum[:6])
}

// secretCredentials takes the CHAP keys from the Secret, when one was
// given. Without a Secret, Acquire reads the node-local credentials file.
func (v *Volume) secretCredentials(secrets map[string]string) error {
	if len(secrets) == 0 {
		return nil
	}
	v.secretGiven = true
	field := func(k string) string { return options.SecretPrefix + k }
	var err error
	if v.ChapDiscovery {
		if v.discoveryCreds, err = chapFrom(secrets, discoveryAuth, field, secretFix(optChapDiscovery)); err != nil {
			return err
		}
	}
	if v.ChapSession {
		if v.sessionCreds, err = chapFrom(secrets, sessionAuth, field, secretFix(optChapSession)); err != nil {
			return err
		}
	}
	return nil
}

func secretFix(opt string) func(k string) string {
	return func(k string) string {
		return fmt.Sprintf("add %q to the Secret named in secretRef (%s is \"true\"), or set %s to \"false\"", k, opt, opt)
	}
}

// chapFrom reads prefix.username/password (required) and username_in/
// password_in (mutual CHAP, both or neither) from src.
func chapFrom(src map[string]string, prefix string, field, fix func(k string) string) (*chap, error) {
	c := &chap{}
	for _, k := range []struct {
		name     string
		dst      *string
		required bool
	}{
		{"username", &c.User, true}, {"password", &c.Pass, true},
		{"username_in", &c.UserIn, false}, {"password_in", &c.PassIn, false},
	} {
		key := prefix + "." + k.name
		val, ok := src[key]
		if !ok || val == "" {
			if k.required {
				return nil, options.Errorf(field(key), fix(key), "is missing")
			}
			continue
		}
		if err := chapValue(field(key), val); err != nil {
			return nil, err
		}
		*k.dst = val
	}
	if (c.UserIn == "") != (c.PassIn == "") {
		missing := prefix + ".username_in"
		if c.PassIn == "" {
			missing = prefix + ".password_in"
		}
		return nil, options.Errorf(field(missing), "mutual CHAP needs both username_in and password_in: add "+missing+" or remove the other one", "is missing")
	}
	return c, nil
}

// chapValue checks a CHAP name or secret: it goes into an iscsiadm record
// file line, so no control characters and no edge spaces. The value itself
// is never put in the message.
func chapValue(field, v string) error {
	if len(v) > maxSecretLen {
		return options.Errorf(field, fmt.Sprintf("use at most %d bytes", maxSecretLen), "is %d bytes long", len(v))
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return options.Errorf(field, "remove control characters (newlines, tabs) from the value", "holds a control character")
		}
	}
	if strings.TrimSpace(v) != v {
		return options.Errorf(field, "remove the spaces at the start or end of the value", "starts or ends with a space")
	}
	return nil
}

// ID is the LUN's identity: target name and LUN, not the iface or the
// initiator name it is reached through. Two ifaces to one LUN are one
// storage: a second mount of it through another iface would be a second
// read-write mount of one filesystem, so the second pod joins the first's
// (after Authorize). An iSCSI name is globally unique and '~' never
// appears in one, so the join is unambiguous; very long IDs keep a
// readable prefix and a hash of the whole.
func (v *Volume) ID() string {
	id := v.IQN + "~lun" + strconv.Itoa(v.LUN)
	if len(id) > maxIDLen {
		sum := sha256.Sum256([]byte(id))
		id = id[:maxIDLen-26] + "~h" + hex.EncodeToString(sum[:12])
	}
	return id
}

// LockKeys serialize every volume of one target (logins and logouts of two
// LUNs must not race), and every volume of one dedicated iface (it is
// created and deleted by the driver).
func (v *Volume) LockKeys() []string {
	k := []string{targetLockKey(v.IQN)}
	if v.InitiatorName != "" {
		k = append(k, "iscsi-iface-"+v.Iface)
	}
	return k
}

func targetLockKey(iqn string) string {
	return "iscsi-target-" + strings.ReplaceAll(iqn, ":", "_")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// quote makes a hostile value safe to show in a message.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
}
