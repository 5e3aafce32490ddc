// Command driveronly is a measured prototype: flexblock's driver
// personality alone (the rbd and iscsi backends and driver/app), without
// the operator CLI (urfave/cli) and the installer that the real binary also
// links. It answers exactly like <plugin dir>/flexblock~rbd/rbd. Benchmark
// 1a compares its init with the real binary's to show what the CLI and
// installer cost every driver call.
package main

import (
	"os"
	"path/filepath"

	"github.com/flexblock/flexblock/driver/app"
	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/iscsi"
	"github.com/flexblock/flexblock/driver/rbd"
	"github.com/flexblock/flexblock/driver/volume"
)

func init() {
	app.Register("rbd", func() volume.Backend { return rbd.New() })
	app.Register("iscsi", func() volume.Backend { return iscsi.New() })
}

func main() {
	exe, err := filepath.Abs(os.Args[0])
	if err != nil {
		exe = os.Args[0]
	}
	app.Run(app.Call{Backend: filepath.Base(exe), ConfigPath: config.ForExecutable(exe), Args: os.Args[1:], Isolate: true}, os.Stdout)
	os.Exit(0)
}
