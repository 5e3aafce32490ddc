// Command flexblock is a FlexVolume driver for Ceph RBD and iSCSI block
// volumes. Installed as <plugin dir>/flexblock~rbd/rbd (or flexblock~iscsi/
// iscsi) it answers kubelet's calls; run as flexblock it is the operator's
// CLI (install, doctor, version, and driver calls by hand).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/flexblock/flexblock/driver/app"
	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/iscsi"
	"github.com/flexblock/flexblock/driver/rbd"
	"github.com/flexblock/flexblock/driver/volume"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func init() {
	app.Register("rbd", func() volume.Backend { return rbd.New() })
	app.Register("iscsi", func() volume.Backend { return iscsi.New() })
}

func main() {
	if backend, ok := personality(os.Args[0]); ok {
		// A kubelet call: no CLI framework, one JSON answer, exit 0 always
		// (a non-zero exit makes kubelet log our argv, secrets included).
		app.Run(app.Call{Backend: backend, ConfigPath: config.ForExecutable(absolute(os.Args[0])), Args: os.Args[1:], Isolate: true}, os.Stdout)
		os.Exit(0)
	}
	if err := newCLI().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "flexblock:", err)
		os.Exit(1)
	}
}

// personality tells whether we were exec'd as an installed driver:
// <plugin dir>/flexblock~NAME/NAME.
func personality(argv0 string) (string, bool) {
	name := filepath.Base(argv0)
	dir := filepath.Base(filepath.Dir(argv0))
	if dir == "flexblock~"+name && app.IsBackend(name) {
		return name, true
	}
	return "", false
}

func absolute(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func newCLI() *cli.App {
	a := &cli.App{
		Name:    "flexblock",
		Usage:   "FlexVolume driver for Ceph RBD and iSCSI block volumes",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "driver config file for calls run by hand", EnvVars: []string{"FLEXBLOCK_CONFIG"}},
		},
		Commands: []*cli.Command{
			{Name: "version", Usage: "print the version", Action: func(*cli.Context) error {
				fmt.Println("flexblock", version)
				return nil
			}},
		},
	}
	for _, b := range app.Backends() {
		a.Commands = append(a.Commands, driverCommand(b))
	}
	a.Commands = append(a.Commands, extraCommands...)
	return a
}

// extraCommands are added by other files (install, doctor).
var extraCommands []*cli.Command

// driverCommand runs a driver call by hand: flexblock rbd mount DIR JSON.
func driverCommand(backend string) *cli.Command {
	return &cli.Command{
		Name:            backend,
		Usage:           "run a FlexVolume call of the " + backend + " driver by hand",
		ArgsUsage:       "<call> [args...]  (calls: init, mount, unmount, ...)",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			cfg := c.String("config")
			if cfg == "" {
				cfg = filepath.Join(os.TempDir(), "flexblock-no-config", config.FileName)
			}
			app.Run(app.Call{Backend: backend, ConfigPath: cfg, Args: c.Args().Slice()}, os.Stdout)
			return nil
		},
	}
}
