// Package volume is the node-side lifecycle every backend shares: global
// mount plus per-pod binds (attach:false), or waitforattach/mountdevice
// (attach:true); safe format; state records; locks. Backends only make a
// device appear (Acquire) and disappear (Release). It returns plain Go
// errors carrying errkind kinds; the protocol layer (driver/flexvol) alone
// turns them into kubelet's answers.
package volume

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/logging"
	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/state"
)

// Env is what a backend may use.
type Env struct {
	Config *config.Config
	Run    runner.Runner
	Mask   *logging.Masker
	Log    *slog.Logger
	// Layout names the node files flexblock keeps (keys, markers, locks).
	Layout state.Layout
}

// Backend is a kind of block storage (rbd, iscsi).
type Backend interface {
	// Name is the driver name after "flexblock/" ("rbd").
	Name() string
	// Keys lists the backend's own option names.
	Keys() []string
	// Tools lists every external program the backend itself runs (doctor
	// checks that each exists on the node).
	Tools() []string
	// Parse validates the options into a volume; nothing may run yet.
	Parse(c *options.Common, cfg *config.Config) (Spec, error)
	// Release undoes Acquire from a state record alone (no options, no
	// secrets). A device that is already gone is success.
	Release(ctx context.Context, env *Env, rec *state.Record) error
}

// Spec is one validated volume.
type Spec interface {
	// ID is a stable file-name-safe identity of the storage (not of the
	// pod volume name): two pods using one image share it.
	ID() string
	// LockKeys are extra locks held with the volume's own (for example
	// the iSCSI target, so two LUNs of one target never log in at once).
	LockKeys() []string
	// Acquire makes the device appear on this node and returns its path
	// and the data Release needs. nodeLocal means: no Secret was passed,
	// use the node-local credentials from config. On error it must undo
	// what it did itself.
	Acquire(ctx context.Context, env *Env, nodeLocal bool) (device string, data json.RawMessage, err error)
	// Authorize proves, with this call's own credentials (nodeLocal as for
	// Acquire), that the caller may use the storage rec describes, before
	// it is bound to a mount another pod made. It must be cheap and
	// read-only; a refusal carries errkind.Denied or errkind.Mismatch.
	Authorize(ctx context.Context, env *Env, rec *state.Record, nodeLocal bool) error
	// Identify checks, from the kernel (sysfs, major:minor, WWID), that
	// rec.Device is still this volume's device and not another's that got
	// the same name; a mismatch carries errkind.Mismatch.
	Identify(ctx context.Context, env *Env, rec *state.Record) error
	// Expand grows the underlying device to at least newSize bytes and
	// makes the kernel see the new size.
	Expand(ctx context.Context, env *Env, rec *state.Record, newSize int64) error
}

// Tools lists the programs the lifecycle's own collaborators run for every
// backend (probe, mount, unmount); the filesystem table lists the rest.
func Tools() []string { return []string{"blkid", "mount", "umount"} }
