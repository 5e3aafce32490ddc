package app

import (
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/volume"
)

// Command runs a driver call by hand: flexblock rbd mount DIR JSON. The
// config comes from --config (or FLEXBLOCK_CONFIG); without one, defaults.
func Command(b volume.Backend, observe func(volume.Step)) *cli.Command {
	return &cli.Command{
		Name:            b.Name(),
		Usage:           "run a FlexVolume call of the " + b.Name() + " driver by hand",
		ArgsUsage:       "<call> [args...]  (calls: init, mount, unmount, ...)",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			cfg := c.String("config")
			if cfg == "" {
				cfg = filepath.Join(os.TempDir(), "flexblock-no-config", config.FileName)
			}
			Answer(Call{Backend: b, ConfigPath: cfg, Args: c.Args().Slice(), Observe: observe}, os.Stdout)
			return nil
		},
	}
}
