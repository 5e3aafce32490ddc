package rbd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flexblock/flexblock/driver/blockdev"
	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/internal/lazyre"
	"github.com/flexblock/flexblock/driver/internal/wait"
	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/volume"
)

// Backend is the RBD backend. Its fields are the outside world, so tests
// can replace them.
type Backend struct {
	// SysBus is /sys/bus/rbd: supported_features lives there.
	SysBus string
	// SysBlock is /sys/block: a mapped device's size and ro flag.
	SysBlock string
	// DevNumber is the major:minor of a block device node (stat).
	DevNumber func(path string) (blockdev.Dev, error)
	// Sleep waits (fencing retries, the resize wait).
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock the fencing bound is measured with.
	Now func() time.Time
	// Backoff is the fencing schedule: the wait before check n+1 (n from 0).
	// Each wait is cut to what is left of the bound (config timeout
	// "fencing", 35 s by default: a dead client's watch lingers ~30 s).
	Backoff func(n int) time.Duration
}

// New returns the backend with the real sysfs and clock.
func New() *Backend {
	return &Backend{SysBus: "/sys/bus/rbd", SysBlock: "/sys/block", DevNumber: blockdev.Number,
		Sleep: wait.Sleep, Now: time.Now, Backoff: DefaultBackoff}
}

// DefaultBackoff is 1 s growing by 1.4 each time (as Kubernetes' in-tree
// RBD plugin did): 1, 1.4, 2, 2.7, 3.8 ... s, at most 8 s so a watch that
// expires is noticed soon even under a long bound.
func DefaultBackoff(n int) time.Duration {
	return min(time.Duration(float64(time.Second)*math.Pow(1.4, float64(min(n, 20)))), 8*time.Second)
}

// Name implements volume.Backend.
func (*Backend) Name() string { return "rbd" }

// Keys implements volume.Backend.
func (*Backend) Keys() []string { return append([]string(nil), keys...) }

// Parse implements volume.Backend. It validates only: nothing runs.
func (b *Backend) Parse(c *options.Common, cfg *config.Config) (volume.Spec, error) {
	v, err := parse(c, cfg)
	if err != nil {
		return nil, err
	}
	v.b = b
	return v, nil
}

// mapping is what Release needs, saved in the state record: no
// credentials, `rbd unmap` needs none. ImageID (empty in records of older
// versions) is the image's cluster-unique id, compared with the kernel's.
type mapping struct {
	Pool      string `json:"pool"`
	Namespace string `json:"namespace,omitempty"`
	Image     string `json:"image"`
	Snapshot  string `json:"snapshot,omitempty"`
	Device    string `json:"device"`
	ImageID   string `json:"imageId,omitempty"`
}

func (m mapping) spec() string { return spec(m.Pool, m.Namespace, m.Image, m.Snapshot) }

var deviceRE = lazyre.New(`^/dev/rbd[0-9]+$`)

// Acquire maps the image (creating it first when asked), after checking
// the kernel supports its features and, for read-write, that no other
// client watches it. An existing mapping of the same image (same image id,
// so of this cluster) is reused: the credentials are proven by the rbd
// info that comes first. If the map itself fails, a mapping it may have
// left is removed.
func (v *Volume) Acquire(ctx context.Context, env *volume.Env, nodeLocal bool) (string, json.RawMessage, error) {
	auth, done, err := v.auth(env, nodeLocal)
	if err != nil {
		return "", nil, errkind.Mark(errkind.Denied, err)
	}
	defer done()
	info, err := v.ensureImage(ctx, env, auth)
	if err != nil {
		return "", nil, err
	}
	if dev, err := v.mapped(env, info.ID); err != nil || dev != "" {
		return dev, v.data(dev, info.ID), err
	}
	if err := v.checkFeatures(v.imageOnly(), info.Features); err != nil {
		return "", nil, err
	}
	if v.Fencing {
		if err := v.fence(ctx, env, auth); err != nil {
			return "", nil, err
		}
	}
	dev, err := v.mapImage(ctx, env, auth, info.ID)
	if err != nil {
		return "", nil, errors.Join(err, v.undoMap(ctx, env, info.ID))
	}
	env.Log.Info("mapped", "image", v.ImageSpec(), "device", dev, "readOnly", v.ReadOnly)
	return dev, v.data(dev, info.ID), nil
}

func (v *Volume) data(dev, imageID string) json.RawMessage {
	if dev == "" {
		return nil
	}
	m := v.key()
	m.Device, m.ImageID = dev, imageID
	b, _ := json.Marshal(m)
	return b
}

func (v *Volume) key() mapping {
	return mapping{Pool: v.Pool, Namespace: v.Namespace, Image: v.Image, Snapshot: v.Snapshot}
}

// mapped finds, in sysfs, an existing mapping of exactly this pool/
// namespace/image/snapshot and image id (a retry, or a call that died
// after mapping); a same-named image of another cluster (another image id)
// is not it. A read-only mapping is not reused for a read-write volume.
func (v *Volume) mapped(env *volume.Env, imageID string) (string, error) {
	list, err := v.b.kernelMappings()
	if err != nil {
		return "", err
	}
	for _, k := range list {
		if !k.is(v.key()) {
			continue
		}
		if !sameImage(k.ImageID, imageID) {
			env.Log.Info("another cluster's image of the same name is mapped", "image", v.ImageSpec(), "device", k.device(), "imageId", k.ImageID)
			continue
		}
		if err := v.b.checkNode(k); err != nil {
			return "", err
		}
		if !v.ReadOnly && v.b.readOnlyDevice(k.device()) {
			return "", errkind.Errorf(errkind.Busy, "image %s is already mapped read-only on this node (%s): a read-write mount has to wait until the read-only users are gone", v.ImageSpec(), k.device())
		}
		env.Log.Info("reusing existing mapping", "image", v.ImageSpec(), "device", k.device())
		return k.device(), nil
	}
	return "", nil
}

// sameImage compares image ids; an unknown one (a record of an older
// version, a kernel without image_id) does not tell them apart.
func sameImage(a, b string) bool { return a == "" || b == "" || a == b }

func (b *Backend) readOnlyDevice(dev string) bool {
	raw, err := os.ReadFile(filepath.Join(b.SysBlock, filepath.Base(dev), "ro"))
	return err == nil && strings.TrimSpace(string(raw)) == "1"
}

type imageInfo struct {
	ID       string   `json:"id"`
	Size     int64    `json:"size"`
	Features []string `json:"features"`
}

// ensureImage returns the image's info, creating it first when it is
// missing and a size was given.
func (v *Volume) ensureImage(ctx context.Context, env *volume.Env, auth []string) (imageInfo, error) {
	info, err := v.info(ctx, env, auth)
	if err == nil || !isNotFound(err) {
		return info, err
	}
	if v.Size == 0 {
		if v.Snapshot != "" {
			return info, fmt.Errorf("image or snapshot %s does not exist: create the snapshot (rbd snap create %s) or fix the options image and snapshot: %w", v.ImageSpec(), v.ImageSpec(), err)
		}
		return info, errkind.Errorf(errkind.NotFound, "image %s does not exist: create it (rbd create --size 10G %s) or set the option size to have flexblock create it on first use", v.ImageSpec(), v.ImageSpec())
	}
	// Refuse before creating an image this kernel could not map.
	if err := v.checkFeatures(v.imageOnly(), v.Features); err != nil {
		return info, fmt.Errorf("not creating it: %w (choose imageFeatures this kernel supports, layering maps everywhere)", err)
	}
	args := []string{"create", v.imageOnly(), "--size", strconv.FormatInt(mib(v.Size), 10) + "M",
		"--image-format", "2", "--image-feature", strings.Join(v.Features, ",")}
	if v.DataPool != "" {
		args = append(args, "--data-pool", v.DataPool)
	}
	if _, err := v.rbd(ctx, env, auth, false, args...); err != nil {
		if !isExists(err) { // "exists": another node created it meanwhile, use that
			return info, fmt.Errorf("create image %s: %w", v.ImageSpec(), v.cephError(err, auth))
		}
	} else {
		env.Log.Info("created image", "image", v.ImageSpec(), "bytes", v.Size, "features", v.Features)
	}
	return v.info(ctx, env, auth)
}

// rbd runs one rbd command that talks to the cluster: args, then Ceph's
// client timeouts (so an unreachable monitor fails in seconds, not at the
// tool's bound), then the credentials (the key file last).
func (v *Volume) rbd(ctx context.Context, env *volume.Env, auth []string, quiet bool, args ...string) (runner.Result, error) {
	n := strconv.Itoa(int(v.connectTimeout().Seconds()))
	args = append(args, "--client_mount_timeout="+n, "--rados_mon_op_timeout="+n)
	return env.Run.Run(ctx, runner.Cmd{Name: "rbd", Args: append(args, auth...), Quiet: quiet})
}

// connectTimeout bounds the wait for the monitors (config timeout
// "rbdConnect"), at least a second and never past the rbd tool's own bound.
func (v *Volume) connectTimeout() time.Duration {
	return max(time.Second, min(v.cfg.Timeout("rbdConnect"), v.cfg.Timeout("rbd")))
}

func (v *Volume) info(ctx context.Context, env *volume.Env, auth []string) (imageInfo, error) {
	var info imageInfo
	res, err := v.rbd(ctx, env, auth, true, "info", v.ImageSpec(), "--format", "json")
	if err != nil {
		return info, fmt.Errorf("image %s: %w", v.ImageSpec(), v.cephError(err, auth))
	}
	if err := json.Unmarshal(res.Stdout, &info); err != nil {
		return info, fmt.Errorf("rbd info %s: unexpected output: %v", v.ImageSpec(), err)
	}
	return info, nil
}

// cephError explains a failed rbd call and marks its kind: no answer from
// the monitors (the client timeouts or the tool's bound ran out) is a
// Timeout naming them; monitors that refused the user or its key, and a
// user without caps on the pool, are Denied.
func (v *Volume) cephError(err error, auth []string) error {
	user := authUser(auth, v.User)
	code := runner.ExitCode(err)
	switch {
	case errors.Is(err, runner.ErrTimeout) || code == int(syscall.ETIMEDOUT):
		return errkind.Errorf(errkind.Timeout, "no answer from the monitors %s within %s: check that they are reachable from this node (timeouts.rbdConnect in the driver config bounds the wait): %w%s",
			v.Monitors, v.connectTimeout(), err, errnoText(err))
	case strings.Contains(err.Error(), "couldn't connect to the cluster"):
		hint := fmt.Sprintf("could not connect to the monitors %s as user %q: check the monitors, the user and its key", v.Monitors, user)
		if code == int(syscall.EACCES) || code == int(syscall.EPERM) {
			// rbd exits with the errno: the monitors refused the user or its key.
			hint = fmt.Sprintf("the monitors %s refused user %q: its key is wrong or the user does not exist (compare with `ceph auth get client.%s`)", v.Monitors, user, user)
			return errkind.Errorf(errkind.Denied, "%s: %w%s", hint, err, errnoText(err))
		}
		return fmt.Errorf("%s: %w%s", hint, err, errnoText(err))
	case code == int(syscall.EACCES) || code == int(syscall.EPERM):
		return errkind.Errorf(errkind.Denied, "user %q may not use pool %s: give it rbd caps on the pool (ceph auth caps client.%s mon 'profile rbd' osd 'profile rbd pool=%s'): %w%s",
			user, v.Pool, user, v.Pool, err, errnoText(err))
	}
	return err
}

// errnoText adds Ceph's "(N) Reason" for rbd's exit status (its errno)
// when rbd's own message does not say it.
func errnoText(err error) string {
	var ee *runner.ExitError
	if !errors.As(err, &ee) || ee.Code <= 0 || ee.Code > 255 || strings.Contains(ee.Stderr, fmt.Sprintf("(%d) ", ee.Code)) {
		return ""
	}
	msg := syscall.Errno(ee.Code).Error()
	return fmt.Sprintf(" (%d) %s", ee.Code, strings.ToUpper(msg[:1])+msg[1:])
}

// authUser is the --id in auth.
func authUser(auth []string, def string) string {
	for i := 0; i+1 < len(auth); i++ {
		if auth[i] == "--id" {
			return auth[i+1]
		}
	}
	return def
}

func isNotFound(err error) bool {
	var ee *runner.ExitError
	return errors.As(err, &ee) && strings.Contains(ee.Stderr, "(2) No such file or directory") &&
		!strings.Contains(ee.Stderr, "error opening pool")
}

func isExists(err error) bool {
	var ee *runner.ExitError
	return errors.As(err, &ee) && strings.Contains(ee.Stderr, "File exists")
}

// checkFeatures refuses features this kernel cannot map, before `rbd map`
// fails with an obscure "(6) No such device or address".
func (v *Volume) checkFeatures(image string, features []string) error {
	b, err := os.ReadFile(filepath.Join(v.b.SysBus, "supported_features"))
	if err != nil {
		return nil // rbd module not loaded yet: rbd map loads it and checks
	}
	supported, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(string(b)), "0x"), 16, 64)
	if err != nil {
		return nil
	}
	var bad []string
	for _, f := range features {
		if bit, ok := featureBits[f]; ok && supported&bit == 0 {
			bad = append(bad, f)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("image %s has features this node's kernel cannot map: %s; disable them with: rbd feature disable %s %s",
		image, strings.Join(bad, ", "), image, strings.Join(bad, " "))
}

type status struct {
	Watchers []struct {
		Address string `json:"address"`
	} `json:"watchers"`
}

// fence waits, with a bounded backoff, until no other client watches the
// image: a node that died keeps its watch for about 30 s. The bound counts
// from the first answer that shows a watcher, so a slow first rbd status
// (a loaded node) never eats the wait itself.
func (v *Volume) fence(ctx context.Context, env *volume.Env, auth []string) error {
	bound := v.cfg.Timeout("fencing")
	var deadline time.Time
	for n := 0; ; n++ {
		watchers, err := v.watchers(ctx, env, auth)
		if err != nil || len(watchers) == 0 {
			return err
		}
		if n == 0 {
			deadline = v.b.Now().Add(bound)
		}
		left := deadline.Sub(v.b.Now())
		if left <= 0 {
			return fmt.Errorf("image %s is in use by %s: another client has it open (mapped read-write on another node?); flexblock refuses a second writer after waiting %s (unmap it there, mount read-only, or set fencing: \"none\" if the filesystem is cluster-aware)",
				v.ImageSpec(), strings.Join(watchers, ", "), bound)
		}
		env.Log.Info("image has watchers, waiting", "image", v.ImageSpec(), "watchers", watchers, "left", left.String())
		if err := v.b.Sleep(ctx, min(v.b.Backoff(n), left)); err != nil {
			return err
		}
	}
}

func (v *Volume) watchers(ctx context.Context, env *volume.Env, auth []string) ([]string, error) {
	res, err := v.rbd(ctx, env, auth, false, "status", v.imageOnly(), "--format", "json")
	if err != nil {
		return nil, fmt.Errorf("image %s status: %w", v.ImageSpec(), v.cephError(err, auth))
	}
	var st status
	if err := json.Unmarshal(res.Stdout, &st); err != nil {
		return nil, fmt.Errorf("rbd status %s: unexpected output: %v", v.ImageSpec(), err)
	}
	var out []string
	for _, w := range st.Watchers {
		out = append(out, w.Address)
	}
	return out, nil
}

// mapImage maps the image and checks, in sysfs, that the device rbd
// printed is that image.
func (v *Volume) mapImage(ctx context.Context, env *volume.Env, auth []string, imageID string) (string, error) {
	args := []string{"map", v.ImageSpec()}
	if v.ReadOnly {
		args = append(args, "--read-only")
	}
	if len(v.MapOptions) > 0 {
		args = append(args, "-o", strings.Join(v.MapOptions, ","))
	}
	res, err := v.rbd(ctx, env, auth, false, args...)
	if err != nil {
		return "", fmt.Errorf("map %s: %w", v.ImageSpec(), v.cephError(err, auth))
	}
	dev := strings.TrimSpace(string(res.Stdout))
	if !deviceRE.MatchString(dev) {
		return "", fmt.Errorf("map %s: rbd printed %q, not a device", v.ImageSpec(), dev)
	}
	if err := v.b.identify(dev, v.key(), imageID); err != nil {
		return "", fmt.Errorf("map %s: %w", v.ImageSpec(), err)
	}
	return dev, nil
}

// undoMap removes a mapping a failed (for example killed at its timeout)
// `rbd map` may have made: there was none before it (mapped said so), and
// the volume lock keeps other calls of this driver away.
func (v *Volume) undoMap(ctx context.Context, env *volume.Env, imageID string) error {
	ctx = context.WithoutCancel(ctx) // the runner still bounds each call
	list, err := v.b.kernelMappings()
	if err != nil {
		return err
	}
	var errs []error
	for _, k := range list {
		if k.is(v.key()) && sameImage(k.ImageID, imageID) {
			env.Log.Warn("removing the mapping of a failed map", "image", v.ImageSpec(), "device", k.device())
			errs = append(errs, v.b.unmap(ctx, env, k.device()))
		}
	}
	return errors.Join(errs...)
}
