// Package image is the provisioner's rbd vocabulary: one named function per
// admin verb (info, create, image-meta, rename, status, rm, trash mv,
// resize). Every verb runs through the node driver's own path
// (rbd.Volume.Admin): the bounded runner that kills the process group,
// the 0600 keyfile in a private dir removed after the call, the masking of
// the key in everything logged or returned.
package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/logging"
	"github.com/flexblock/flexblock/driver/rbd"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/state"
	"github.com/flexblock/flexblock/driver/volume"
)

// StampKey is the image-meta key that says which PV flexblock made an
// image for. An image without it is never adopted or deleted.
const StampKey = "flexblock.io/provisioned-for"

// MiB is the unit images are sized in.
const MiB = 1 << 20

// ErrNotFound is returned by Info for an image that does not exist.
var ErrNotFound = errors.New("image does not exist")

// Tools runs rbd for every image: one runner and one masker for the whole
// process, so a key seen once is masked in every later line too.
type Tools struct {
	env *volume.Env
}

// NewTools builds the rbd environment: run executes programs (a
// runner.Exec, or a fake in tests), stateDir holds the private key and
// work dirs, log receives one line per rbd call.
func NewTools(run runner.Runner, mask *logging.Masker, log *slog.Logger, stateDir string) *Tools {
	return &Tools{env: &volume.Env{Config: &config.Config{}, Run: run, Mask: mask, Log: log,
		Layout: state.Layout{Dir: stateDir}}}
}

// NewExec is the real runner for NewTools: rbd bounded by the driver's
// default timeouts, run in stateDir's private work dir, its lines masked.
func NewExec(mask *logging.Masker, log *slog.Logger, stateDir string) *runner.Exec {
	cfg := &config.Config{}
	return &runner.Exec{Timeout: cfg.Timeout, Log: log, Mask: mask, Dir: state.Layout{Dir: stateDir}.Work()}
}

// Mask hides every key the tools were given in err's text. Errors leave
// the provisioner as events and log lines: none may carry a key, whatever
// a tool printed.
func (t *Tools) Mask(err error) error {
	if err == nil {
		return nil
	}
	return &masked{text: t.env.Mask.Mask(err.Error()), err: err}
}

// masked keeps the wrapped error for errors.Is/As but shows masked text.
type masked struct {
	text string
	err  error
}

func (m *masked) Error() string { return m.text }
func (m *masked) Unwrap() error { return m.err }

// Image is one image reached as the provisioner user.
type Image struct {
	v *rbd.Volume
	t *Tools
}

// Open binds v (a validated connection, with its key) to the tools. The
// key is registered with the masker first.
func (t *Tools) Open(v *rbd.Volume) *Image {
	t.env.Mask.Add(v.Key)
	return &Image{v: v, t: t}
}

// Spec is pool[/namespace]/image.
func (i *Image) Spec() string { return i.v.ImageSpec() }

// Name is the image name alone.
func (i *Image) Name() string { return i.v.Image }

func (i *Image) run(ctx context.Context, quiet bool, args ...string) ([]byte, error) {
	res, err := i.v.Admin(ctx, i.t.env, quiet, args...)
	return res.Stdout, err
}

// Info is what `rbd info` tells the provisioner.
type Info struct {
	Size     int64    `json:"size"`
	Features []string `json:"features"`
}

// Info returns the image's size and features, or ErrNotFound.
func (i *Image) Info(ctx context.Context) (Info, error) {
	var info Info
	out, err := i.run(ctx, true, "info", i.Spec(), "--format", "json")
	if rbd.IsNotFound(err) {
		return info, ErrNotFound
	}
	if err != nil {
		return info, fmt.Errorf("rbd info %s: %w", i.Spec(), err)
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return info, fmt.Errorf("rbd info %s: unexpected output: %v", i.Spec(), err)
	}
	return info, nil
}

// Create makes the image (format 2, size rounded up to MiB). An image that
// already exists is not an error here: the caller checks whose it is.
func (i *Image) Create(ctx context.Context, bytes int64, features []string, dataPool string) error {
	args := []string{"create", i.Spec(), "--size", strconv.FormatInt(RoundMiB(bytes)/MiB, 10) + "M", "--image-format", "2"}
	for _, f := range features {
		args = append(args, "--image-feature", f)
	}
	if dataPool != "" {
		args = append(args, "--data-pool", dataPool)
	}
	if _, err := i.run(ctx, false, args...); err != nil && !rbd.IsExists(err) {
		return fmt.Errorf("rbd create %s: %w", i.Spec(), err)
	}
	return nil
}

// Meta returns the image's metadata (image-meta list).
func (i *Image) Meta(ctx context.Context) (map[string]string, error) {
	out, err := i.run(ctx, false, "image-meta", "list", i.Spec(), "--format", "json")
	if err != nil {
		return nil, fmt.Errorf("rbd image-meta list %s: %w", i.Spec(), err)
	}
	m := map[string]string{}
	// rbd prints nothing at all, even with --format json, for an image
	// without metadata (a freshly created one).
	if len(bytes.TrimSpace(out)) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("rbd image-meta list %s: unexpected output: %v", i.Spec(), err)
	}
	return m, nil
}

// Stamp returns who the image was made for ("" when it has no stamp).
func (i *Image) Stamp(ctx context.Context) (string, error) {
	m, err := i.Meta(ctx)
	return m[StampKey], err
}

// SetStamp records that flexblock made the image for pv.
func (i *Image) SetStamp(ctx context.Context, pv string) error {
	if _, err := i.run(ctx, false, "image-meta", "set", i.Spec(), StampKey, pv); err != nil {
		return fmt.Errorf("rbd image-meta set %s %s: %w", i.Spec(), StampKey, err)
	}
	return nil
}

// Rename gives the image a new name in the same pool and namespace.
func (i *Image) Rename(ctx context.Context, to *Image) error {
	if _, err := i.run(ctx, false, "rename", i.Spec(), to.Spec()); err != nil {
		return fmt.Errorf("rbd rename %s %s: %w", i.Spec(), to.Spec(), err)
	}
	return nil
}

// Watchers lists the clients that have the image open (a node that maps
// it, a running rbd).
func (i *Image) Watchers(ctx context.Context) ([]string, error) {
	out, err := i.run(ctx, false, "status", i.Spec(), "--format", "json")
	if err != nil {
		return nil, fmt.Errorf("rbd status %s: %w", i.Spec(), err)
	}
	var st struct {
		Watchers []struct {
			Address string `json:"address"`
		} `json:"watchers"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("rbd status %s: unexpected output: %v", i.Spec(), err)
	}
	var list []string
	for _, w := range st.Watchers {
		list = append(list, w.Address)
	}
	return list, nil
}

// Remove deletes the image for good (rbd rm). A missing image is success.
func (i *Image) Remove(ctx context.Context) error {
	if _, err := i.run(ctx, false, "rm", "--no-progress", i.Spec()); err != nil && !rbd.IsNotFound(err) {
		return fmt.Errorf("rbd rm %s: %w", i.Spec(), err)
	}
	return nil
}

// Trash moves the image to the RBD trash, where `rbd trash purge` (or the
// mgr's trash purge schedule) may remove it once expires has passed.
func (i *Image) Trash(ctx context.Context, expires time.Time) error {
	at := expires.UTC().Format("2006-01-02 15:04:05")
	if _, err := i.run(ctx, false, "trash", "mv", i.Spec(), "--expires-at", at); err != nil && !rbd.IsNotFound(err) {
		return fmt.Errorf("rbd trash mv %s: %w", i.Spec(), err)
	}
	return nil
}

// Resize grows the image to bytes (rounded up to MiB). It never shrinks:
// rbd refuses that without --allow-shrink, which is never passed.
func (i *Image) Resize(ctx context.Context, bytes int64) error {
	size := strconv.FormatInt(RoundMiB(bytes)/MiB, 10) + "M"
	if _, err := i.run(ctx, false, "resize", "--no-progress", i.Spec(), "--size", size); err != nil {
		return fmt.Errorf("rbd resize %s --size %s: %w", i.Spec(), size, err)
	}
	return nil
}

// RoundMiB rounds bytes up to a whole MiB (at least one).
func RoundMiB(bytes int64) int64 {
	if bytes <= MiB {
		return MiB
	}
	return (bytes + MiB - 1) / MiB * MiB
}
