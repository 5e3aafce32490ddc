// Command flexblock is a FlexVolume driver for Ceph RBD and iSCSI block
// volumes. Installed as <plugin dir>/flexblock~rbd/rbd (or flexblock~iscsi/
// iscsi) it answers kubelet's calls; run as flexblock it is the operator's
// CLI (install, doctor, version, and driver calls by hand).
//
// The path of a kubelet call: main -> driver/app (one call: config, log,
// wiring) -> driver/flexvol (the protocol: argv in, one JSON answer out) ->
// driver/volume (the lifecycle) -> the backend (driver/rbd, driver/iscsi)
// -> driver/runner, driver/format, driver/mount.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/flexblock/flexblock/driver/app"
	"github.com/flexblock/flexblock/driver/backends"
	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/installer/command"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	all := backends.List()
	if b, ok := app.Personality(os.Args[0], all); ok {
		// A kubelet call: no CLI framework, one JSON answer, exit 0 always
		// (a non-zero exit makes kubelet log our argv, secrets included).
		app.Answer(app.Call{Backend: b, ConfigPath: config.ForExecutable(absolute(os.Args[0])), Args: os.Args[1:], Isolate: true, Observe: backends.Observer()}, os.Stdout)
		os.Exit(0)
	}
	cmd := &cli.App{
		Name:    "flexblock",
		Usage:   "FlexVolume driver for Ceph RBD and iSCSI block volumes",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "driver config file for calls run by hand", EnvVars: []string{"FLEXBLOCK_CONFIG"}},
		},
		Commands: []*cli.Command{{Name: "version", Usage: "print the version", Action: func(*cli.Context) error {
			fmt.Println("flexblock", version)
			return nil
		}}},
	}
	for _, b := range all {
		cmd.Commands = append(cmd.Commands, app.Command(b, backends.Observer()))
	}
	cmd.Commands = append(cmd.Commands, command.Commands(all)...)
	if err := cmd.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "flexblock:", err)
		os.Exit(1)
	}
}

func absolute(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
