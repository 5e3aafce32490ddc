// Package buildtest builds the real flexblock binary for the installer's
// and doctor's tests.
package buildtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Build compiles the production binary (CGO_ENABLED=0, no test tags) into
// dir/flexblock and returns its path.
func Build(dir string) (string, error) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	out := filepath.Join(dir, "flexblock")
	cmd := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-o", out, ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, b)
	}
	return out, nil
}
