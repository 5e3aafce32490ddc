package flexbench

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flexblock/flexblock/test/testkit"
)

// install installs bin as vendor~name under root the way the installer
// does (testkit's layout), with its config. With stateOnTmpfs the state
// dir is a fresh tmpfs, as /run is on a node (call only inside a private
// mount namespace); the kubelet root and the log stay on disk.
func install(root, bin, vendor, name string, stateOnTmpfs bool) (*testkit.Plugin, error) {
	p := testkit.NewPlugin(root, vendor, name)
	if err := p.Install(bin); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(p.State, 0o755); err != nil {
		return nil, err
	}
	if stateOnTmpfs {
		if err := unix.Mount("flexbench-state", p.State, "tmpfs", 0, "mode=0700"); err != nil {
			return nil, fmt.Errorf("tmpfs for state: %w", err)
		}
	}
	return p, p.WriteConfig(nil)
}

// mkPodDir creates a pod dir the way kubelet does before mount (0750).
func mkPodDir(dir string) error { return os.MkdirAll(dir, 0o750) }

// succeeded is nil when a's Status is Success, else an error naming call.
func succeeded(a testkit.Answer, call string) error {
	if a.Status != "Success" {
		return fmt.Errorf("%s: %s: %s", call, a.Status, a.Message)
	}
	return nil
}

// callTimed runs the driver once from this process (for the concurrency
// runs, where RSS is not measured) with kubelet's environment.
func callTimed(p *testkit.Plugin, args ...string) (time.Duration, error) {
	a := p.Exec(testkit.KubeletEnv, args...)
	return a.Wall, succeeded(a, p.Name+" "+args[0])
}

// loopOptions are the mount options of a loop-backend volume.
func loopOptions(dev, fsType string) string {
	return testkit.Options("device", dev, "kubernetes.io/fsType", fsType, "kubernetes.io/readwrite", "rw",
		"kubernetes.io/pod.namespace", "default", "kubernetes.io/pvOrVolumeName", "data")
}
