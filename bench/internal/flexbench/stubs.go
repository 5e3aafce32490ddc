package flexbench

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// stubDir is where the no-op tools go: the first directory of the fixed
// PATH the driver's runner uses (driver/runner/exec.go), empty on stock
// distributions. A tmpfs is mounted over it only inside the benchmark's
// private mount namespace, so nothing outside sees the stubs.
const stubDir = "/usr/local/sbin"

// stubScripts are the no-op tools: blkid answers "ext4 found" (the path of
// every mount but a volume's first), fsck and mkfs succeed doing nothing.
var stubScripts = map[string]string{
	"blkid":     "#!/bin/sh\necho TYPE=ext4\necho ID_FS_TYPE=ext4\n",
	"fsck":      "#!/bin/sh\nexit 0\n",
	"mkfs.ext4": "#!/bin/sh\nexit 0\n",
	"mkfs":      "#!/bin/sh\nexit 0\n",
}

// installStubs mounts a tmpfs over StubDir holding the no-op scripts and
// the one-syscall mount/umount (stubBin). The returned func removes it.
// Call only inside a private mount namespace.
func installStubs(stubBin string) (func(), error) {
	if !inPrivateNS() {
		return nil, fmt.Errorf("refusing to cover %s outside a private mount namespace", stubDir)
	}
	if err := unix.Mount("flexbench-stubs", stubDir, "tmpfs", 0, "mode=0755"); err != nil {
		return nil, fmt.Errorf("tmpfs over %s: %w", stubDir, err)
	}
	undo := func() { _ = unix.Unmount(stubDir, unix.MNT_DETACH) }
	for name, body := range stubScripts {
		if err := os.WriteFile(filepath.Join(stubDir, name), []byte(body), 0o755); err != nil {
			undo()
			return nil, err
		}
	}
	for _, name := range []string{"mount", "umount"} {
		if err := copyFile(stubBin, filepath.Join(stubDir, name), 0o755); err != nil {
			undo()
			return nil, err
		}
	}
	return undo, nil
}
