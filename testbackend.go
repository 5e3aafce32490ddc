//go:build flexblocktest

package main

// Test builds only: the loop backend lets the lifecycle run on loop devices.

import (
	"os"
	"syscall"

	"github.com/flexblock/flexblock/driver/app"
	"github.com/flexblock/flexblock/driver/loopback"
	"github.com/flexblock/flexblock/driver/volume"
)

func init() {
	app.Register("loop", func() volume.Backend { return loopback.New() })
	// FLEXBLOCK_TEST_CRASH_AT=<step> kills the driver with SIGKILL at that
	// step of mount or unmount (crash-matrix tests).
	if at := os.Getenv("FLEXBLOCK_TEST_CRASH_AT"); at != "" {
		volume.Hook = func(step string) {
			if step == at {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
	}
}
