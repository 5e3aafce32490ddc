package volume

import (
	"context"
	"fmt"

	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/state"
)

// growFS grows the mounted filesystem to the device's size; each tool is a
// no-op when it already has that size.
func (l *Lifecycle) growFS(ctx context.Context, rec *state.Record) error {
	var c runner.Cmd
	switch rec.FSType {
	case "ext4", "ext3":
		c = runner.Cmd{Name: "resize2fs", Args: []string{rec.Device}}
	case "xfs":
		c = runner.Cmd{Name: "xfs_growfs", Args: []string{"-d", rec.GlobalMount}}
	case "btrfs":
		c = runner.Cmd{Name: "btrfs", Args: []string{"filesystem", "resize", "max", rec.GlobalMount}}
	default:
		return fmt.Errorf("cannot grow filesystem type %q", rec.FSType)
	}
	if _, err := l.Env.Run.Run(ctx, c); err != nil {
		return fmt.Errorf("grow filesystem of %s: %w", rec.ID, err)
	}
	return nil
}
