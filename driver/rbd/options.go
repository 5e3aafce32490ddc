// Package rbd is the Ceph RBD backend: it maps an image with the kernel
// client (krbd), creating it on first use when asked, fenced against other
// writers, and unmaps it when the node no longer uses it.
package rbd

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/internal/lazyre"
	"github.com/flexblock/flexblock/driver/options"
)

var keys = []string{"monitors", "pool", "radosNamespace", "image", "snapshot", "user", "keyring",
	"size", "imageFeatures", "dataPool", "mapOptions", "fencing"}

// maxName bounds pool, namespace, image, snapshot and user names; maxID
// their join, which names state files (".ID.json.tmpNNN" must fit in 255).
const (
	maxName = 128
	maxID   = 200
)

// Volume is one validated RBD volume.
type Volume struct {
	Monitors   string // joined, validated host:port list
	Pool       string
	Namespace  string
	Image      string
	Snapshot   string
	User       string
	Keyring    string // node path, when no Secret is given
	Key        string // cephx key from the Secret
	Size       int64
	Features   []string
	DataPool   string
	MapOptions []string
	Fencing    bool
	ReadOnly   bool

	cfg *config.Config
	b   *Backend
}

// ImageSpec is the image spec rbd understands: pool[/namespace]/image[@snap].
func (v *Volume) ImageSpec() string {
	return spec(v.Pool, v.Namespace, v.Image, v.Snapshot)
}

func spec(pool, ns, image, snap string) string {
	s := pool + "/"
	if ns != "" {
		s += ns + "/"
	}
	s += image
	if snap != "" {
		s += "@" + snap
	}
	return s
}

// imageOnly is the spec without the snapshot: what info, status, create,
// resize and feature disable work on.
func (v *Volume) imageOnly() string { return spec(v.Pool, v.Namespace, v.Image, "") }

func parse(c *options.Common, cfg *config.Config) (*Volume, error) {
	o := c.Raw
	v := &Volume{Pool: "rbd", User: "admin", ReadOnly: c.ReadOnly, cfg: cfg}
	if cfg.RBD.User != "" {
		v.User = cfg.RBD.User
	}
	var err error
	if v.Monitors, err = monitors(o["monitors"], cfg.RBD.DefaultMonitors); err != nil {
		return nil, err
	}
	if err := names(o, v); err != nil {
		return nil, err
	}
	if err := credentials(c, v); err != nil {
		return nil, err
	}
	if err := creation(o, v); err != nil {
		return nil, err
	}
	if v.MapOptions, err = mapOptions(o["mapOptions"]); err != nil {
		return nil, err
	}
	fencing, err := options.OneOf("fencing", o["fencing"], "watchers", "watchers", "none")
	if err != nil {
		return nil, err
	}
	v.Fencing = fencing == "watchers" && !v.ReadOnly
	if v.Snapshot != "" && !v.ReadOnly {
		return nil, options.Errorf("snapshot", "set readOnly: \"true\" on the volume (a snapshot can only be mapped read-only)", "is set but the volume is read-write")
	}
	if id := v.ID(); len(id) > maxID {
		return nil, options.Errorf("image", fmt.Sprintf("use shorter pool, radosNamespace, image and snapshot names (together at most %d characters)", maxID-len(clusterID(""))-4), "makes a volume ID of %d characters", len(id))
	}
	if v.Snapshot != "" && v.Size != 0 {
		return nil, options.Errorf("size", "remove size: flexblock creates images, never snapshots", "is set together with snapshot")
	}
	return v, nil
}

func monitors(v, def string) (string, error) {
	if strings.TrimSpace(v) == "" {
		v = def
	}
	if strings.TrimSpace(v) == "" {
		return "", options.Errorf("monitors", "list the Ceph monitors, for example \"10.0.0.1:6789,10.0.0.2:6789\" (or set rbd.defaultMonitors in the driver config)", "is missing")
	}
	var out []string
	for _, m := range strings.Split(v, ",") {
		m = strings.TrimSpace(m)
		if strings.HasPrefix(m, "[") && strings.HasSuffix(m, "]") {
			m += ":6789" // HostPort wants a port after a bracketed IPv6 address
		}
		hp, err := options.HostPort("monitors", m, 6789)
		if err != nil {
			return "", err
		}
		out = append(out, hp)
	}
	return strings.Join(out, ","), nil
}

// names validates the name options. An optional one given as "" keeps its
// default (templates often render unset values as empty strings).
func names(o options.Options, v *Volume) error {
	for _, n := range []struct {
		key      string
		dst      *string
		required bool
	}{
		{"pool", &v.Pool, false}, {"radosNamespace", &v.Namespace, false}, {"image", &v.Image, true},
		{"snapshot", &v.Snapshot, false}, {"user", &v.User, false}, {"dataPool", &v.DataPool, false},
	} {
		val := o[n.key]
		if val == "" && !n.required {
			continue
		}
		if n.key == "user" {
			// "client.kube" is the entity; rbd --id wants "kube".
			val = strings.TrimPrefix(val, "client.")
		}
		if err := options.Name(n.key, val, maxName); err != nil {
			return err
		}
		*n.dst = val
	}
	return nil
}

var cephxKeyRE = lazyre.New(`^[A-Za-z0-9+/]{20,}={0,2}$`)

func credentials(c *options.Common, v *Volume) error {
	if key, ok := c.Secrets["key"]; ok {
		key = strings.TrimRight(key, "\n")
		if !cephxKeyRE.MatchString(key) {
			return options.Errorf("kubernetes.io/secret/key", "put the bare cephx key (as printed by `ceph auth print-key client.USER`) under the Secret's data key \"key\"", "is not a cephx key")
		}
		v.Key = key
	}
	kr := c.Raw["keyring"]
	if kr == "" {
		return nil
	}
	if v.Key != "" {
		return options.Errorf("keyring", "use either a Secret (secretRef) or a node keyring, not both", "is set together with a Secret")
	}
	if !filepath.IsAbs(kr) || filepath.Clean(kr) != kr || !pathRE.MatchString(kr) {
		return options.Errorf("keyring", "give an absolute, clean path on the node such as /etc/ceph/ceph.client.kube.keyring", "is %q", kr)
	}
	v.Keyring = kr
	return nil
}

var pathRE = lazyre.New(`^(/[A-Za-z0-9._-]+)+$`)

// featureBits are the RBD feature bits by the names rbd prints, compared
// with the kernel's /sys/bus/rbd/supported_features.
var featureBits = map[string]uint64{
	"layering": 1 << 0, "striping": 1 << 1, "exclusive-lock": 1 << 2, "object-map": 1 << 3,
	"fast-diff": 1 << 4, "deep-flatten": 1 << 5, "journaling": 1 << 6, "data-pool": 1 << 7,
	"operations": 1 << 8, "migrating": 1 << 9, "non-primary": 1 << 10,
}

// createFeatures are the features imageFeatures may ask for, each with the
// feature it needs (as rbd create enforces).
var createFeatures = map[string]string{
	"layering": "", "exclusive-lock": "", "object-map": "exclusive-lock",
	"fast-diff": "object-map", "deep-flatten": "", "journaling": "exclusive-lock",
}

func creation(o options.Options, v *Volume) error {
	if s := o["size"]; s != "" {
		n, err := options.ParseQuantity("size", s)
		if err != nil {
			return err
		}
		if n < 1<<20 {
			return options.Errorf("size", "use at least 1Mi", "is smaller than 1 MiB")
		}
		v.Size = n
	}
	v.Features = []string{"layering"}
	f := o["imageFeatures"]
	if strings.TrimSpace(f) == "" {
		return nil
	}
	fix := "use a comma-separated list of layering, exclusive-lock, object-map, fast-diff, deep-flatten, journaling (layering alone maps on every kernel)"
	v.Features = nil
	seen := map[string]bool{}
	for _, name := range strings.Split(f, ",") {
		name = strings.TrimSpace(name)
		if _, ok := createFeatures[name]; !ok {
			return options.Errorf("imageFeatures", fix, "has unknown feature %q", name)
		}
		if !seen[name] {
			seen[name] = true
			v.Features = append(v.Features, name)
		}
	}
	for _, name := range v.Features {
		if need := createFeatures[name]; need != "" && !seen[need] {
			return options.Errorf("imageFeatures", "add "+need, "has %s, which needs %s", name, need)
		}
	}
	return nil
}

// mapOptionRules are the krbd map options flexblock accepts: name -> value
// pattern, nil for a flag without a value. Anything else (secret=, key=,
// name=, mount_timeout ...) is refused: credentials and identity come from
// flexblock only.
var mapOptionRules = map[string]*lazyre.Regexp{
	"queue_depth":         lazyre.New(`^[0-9]{1,5}$`),
	"alloc_size":          lazyre.New(`^[0-9]{1,10}$`),
	"lock_timeout":        lazyre.New(`^[0-9]{1,6}$`),
	"osd_request_timeout": lazyre.New(`^[0-9]{1,6}$`),
	"read_from_replica":   lazyre.New(`^(no|balance|localize)$`),
	"compression_hint":    lazyre.New(`^(none|compressible|incompressible)$`),
	"ms_mode":             lazyre.New(`^(legacy|crc|secure|prefer-crc|prefer-secure)$`),
	"lock_on_read":        nil, "exclusive": nil, "notrim": nil, "noshare": nil, "nocrc": nil, "crc": nil,
	"noudev": nil,
}

func mapOptions(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var allowed []string
	for k := range mapOptionRules {
		allowed = append(allowed, k)
	}
	sort.Strings(allowed)
	fix := "use krbd options from: " + strings.Join(allowed, ", ") + " (comma-separated, name=value)"
	var out []string
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		name, val, hasVal := strings.Cut(item, "=")
		rule, known := mapOptionRules[name]
		switch {
		case !known:
			return nil, options.Errorf("mapOptions", fix, "has %q, which is not allowed", maskValue(item))
		case rule == nil && hasVal, rule != nil && !rule.MatchString(val):
			return nil, options.Errorf("mapOptions", fix, "has an invalid value in %q", item)
		}
		out = append(out, item)
	}
	return out, nil
}

// maskValue keeps a refused option's value out of the message: it may be
// a secret someone tried to pass (secret=...).
func maskValue(item string) string {
	if name, _, ok := strings.Cut(item, "="); ok {
		return name + "=..."
	}
	return item
}

// ID names the cluster (a hash of its monitors set: order, duplicates and
// the default port do not matter) and the pool, namespace, image and
// snapshot: the same image name in another cluster is another volume. "~"
// cannot appear in a validated name, so the join is unambiguous and
// parseID inverts it.
func (v *Volume) ID() string {
	return fmt.Sprintf("%s~%s~%s~%s~%s", clusterID(v.Monitors), v.Pool, v.Namespace, v.Image, v.Snapshot)
}

// clusterID is "c" and 16 hex digits of the sha256 of the sorted,
// deduplicated, lower-cased monitor list.
func clusterID(monitors string) string {
	set := map[string]bool{}
	for _, m := range strings.Split(monitors, ",") {
		set[strings.ToLower(strings.TrimSpace(m))] = true
	}
	list := make([]string, 0, len(set))
	for m := range set {
		list = append(list, m)
	}
	sort.Strings(list)
	sum := sha256.Sum256([]byte(strings.Join(list, ",")))
	return "c" + hex.EncodeToString(sum[:8])
}

var clusterIDRE = lazyre.New(`^c[0-9a-f]{16}$`)

// parseID inverts ID (for a state record without backend data), and reads
// the IDs of the previous version too (pool~ns~image~snap, no cluster).
func parseID(id string) (mapping, bool) {
	p := strings.Split(id, "~")
	if len(p) == 5 && clusterIDRE.MatchString(p[0]) {
		p = p[1:]
	}
	if len(p) != 4 || options.Name("pool", p[0], maxName) != nil || options.Name("image", p[2], maxName) != nil {
		return mapping{}, false
	}
	for _, s := range []string{p[1], p[3]} {
		if s != "" && options.Name("name", s, maxName) != nil {
			return mapping{}, false
		}
	}
	return mapping{Pool: p[0], Namespace: p[1], Image: p[2], Snapshot: p[3]}, true
}

// LockKeys: the volume's own lock is enough for RBD.
func (v *Volume) LockKeys() []string { return nil }
