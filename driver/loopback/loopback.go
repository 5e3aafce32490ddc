// Package loopback is a TEST-ONLY backend: it hands an existing loop device
// to the core, so the whole lifecycle (format, global mount, binds, locks,
// state) can be driven for real on a kernel without rbd or iscsi modules.
// It is linked only into binaries built with -tags flexblocktest (see
// testbackend.go at the repo root); production builds never contain it.
package loopback

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/internal/lazyre"
	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/state"
	"github.com/flexblock/flexblock/driver/volume"
)

// Backend is the loop test backend.
type Backend struct{}

// New returns the backend.
func New() *Backend { return &Backend{} }

// Name implements volume.Backend.
func (*Backend) Name() string { return "loop" }

// Tools implements volume.Backend: the loop backend runs nothing.
func (*Backend) Tools() []string { return nil }

// Keys implements volume.Backend.
func (*Backend) Keys() []string { return []string{"device"} }

// Loop devices, and device-mapper devices stacked on them (error and
// flakey targets for the data-safety tests).
var loopRE = lazyre.New(`^/dev/(loop[0-9]{1,4}|mapper/[A-Za-z0-9_-]{1,64})$`)

// Parse implements volume.Backend.
func (*Backend) Parse(c *options.Common, _ *config.Config) (volume.Spec, error) {
	dev := c.Raw["device"]
	if !loopRE.MatchString(dev) {
		return nil, options.Errorf("device", "give a loop device such as /dev/loop3", "is %q", dev)
	}
	return spec{dev: dev}, nil
}

// Release implements volume.Backend: it records the release in the state
// dir so tests can assert it happened exactly when the last user left.
func (*Backend) Release(_ context.Context, env *volume.Env, rec *state.Record) error {
	f, err := os.OpenFile(filepath.Join(env.Layout.Dir, "loop-releases.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, rec.ID)
	return err
}

type spec struct{ dev string }

func (s spec) ID() string         { return filepath.Base(s.dev) }
func (s spec) LockKeys() []string { return nil }

func (s spec) Acquire(context.Context, *volume.Env, bool) (string, json.RawMessage, error) {
	if _, err := os.Stat(s.dev); err != nil {
		return "", nil, fmt.Errorf("loop device: %w", err)
	}
	return s.dev, json.RawMessage(`{"device":"` + s.dev + `"}`), nil
}

func (s spec) Expand(context.Context, *volume.Env, *state.Record, int64) error { return nil }

// Authorize implements volume.Spec: a loop device needs no credentials.
func (s spec) Authorize(context.Context, *volume.Env, *state.Record, bool) error { return nil }

// Identify implements volume.Spec: the recorded device must still be the
// loop device the options name.
func (s spec) Identify(_ context.Context, _ *volume.Env, rec *state.Record) error {
	if rec.Device != s.dev {
		return errkind.Errorf(errkind.Mismatch, "recorded device %s is not %s", rec.Device, s.dev)
	}
	return nil
}
