package volume

import (
	"context"
	"fmt"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/filesystem"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/state"
)

// growFS grows the mounted filesystem to the device's size with the
// filesystem table's grow command (a no-op when it already has that size).
func (l *Lifecycle) growFS(ctx context.Context, rec *state.Record) error {
	fs := filesystem.Lookup(rec.FSType)
	if fs == nil {
		return errkind.Errorf(errkind.Invalid, "cannot grow filesystem type %q", rec.FSType)
	}
	name, args := fs.GrowCmd(rec.Device, rec.GlobalMount)
	if _, err := l.Env.Run.Run(ctx, runner.Cmd{Name: name, Args: args}); err != nil {
		return fmt.Errorf("grow filesystem of %s: %w", rec.ID, err)
	}
	return nil
}
