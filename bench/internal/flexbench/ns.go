package flexbench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

const nsEnv = "FLEXBENCH_PRIVATE_MOUNT_NS"

// Nice is the scheduling priority EnterPrivateMountNS gives the run (and so
// every driver, tool and baseline it starts): on a shared machine it keeps
// other jobs from widening the figures. 0 leaves the priority alone.
var Nice = -20

// Priority is the nice value the process runs at.
func Priority() int {
	p, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return 0
	}
	return 20 - p // the raw syscall returns 20 - nice
}

// inPrivateNS tells whether EnterPrivateMountNS already re-executed us.
func inPrivateNS() bool { return os.Getenv(nsEnv) == "1" }

// EnterPrivateMountNS re-executes the running program (same arguments) in
// a new mount namespace with private propagation (unshare -m), unless it
// already runs in one. Everything the benchmarks mount stays there, and
// the kernel takes it all down when the last process of the run exits, even
// after a crash; loop devices are global and are detached by the runs.
// It returns only on error.
func EnterPrivateMountNS() error {
	if inPrivateNS() {
		return nil
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (mount namespaces, loop devices)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return fmt.Errorf("unshare(1) not found: %w", err)
	}
	runtime.LockOSThread() // setpriority is per thread; exec keeps this one's
	if Nice != 0 {
		if err := unix.Setpriority(unix.PRIO_PROCESS, 0, Nice); err != nil {
			return fmt.Errorf("setpriority %d: %w", Nice, err)
		}
	}
	args := append([]string{"unshare", "-m", "--propagation", "private", "--", self}, os.Args[1:]...)
	return syscall.Exec(unshare, args, append(os.Environ(), nsEnv+"=1"))
}
