//go:build flexblocktest

package backends

// Test builds only: the loop backend lets the lifecycle run on loop
// devices, and FLEXBLOCK_TEST_CRASH_AT=<step> kills the driver with SIGKILL
// at that step of mount or unmount (crash-matrix tests).

import (
	"os"
	"syscall"

	"github.com/flexblock/flexblock/driver/loopback"
	"github.com/flexblock/flexblock/driver/volume"
)

func testOnly() []volume.Backend { return []volume.Backend{loopback.New()} }

func observer() func(volume.Step) {
	at := os.Getenv("FLEXBLOCK_TEST_CRASH_AT")
	if at == "" {
		return nil
	}
	return func(s volume.Step) {
		if string(s) == at {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
}
