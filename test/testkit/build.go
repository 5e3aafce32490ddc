package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// ProdTags are the production build tags, as make build sets them.
const ProdTags = "urfave_cli_no_docs"

// Root is the flexblock module's root, found from this source file (so it
// holds from any module that uses the kit through a replace directive).
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file))) // <root>/test/testkit/build.go
}

// GoBuild runs CGO_ENABLED=0 go build flags -o out pkg in dir, as make
// build does.
func GoBuild(dir, out, pkg string, flags ...string) error {
	args := append(append([]string{"build"}, flags...), "-o", out, pkg)
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

// Build compiles the driver with the production tags plus tags (the test
// build: "flexblocktest") into dir/flexblock and returns its path.
func Build(dir string, tags ...string) (string, error) {
	out := filepath.Join(dir, "flexblock")
	all := strings.Join(append([]string{ProdTags}, tags...), ",")
	return out, GoBuild(Root(), out, ".", "-tags", all)
}

// Main is a TestMain that builds the driver once (Build with tags) into
// *bin, runs the tests and removes the build; a failed build fails the run.
func Main(m *testing.M, bin *string, tags ...string) {
	dir, err := os.MkdirTemp("", "flexblock-test-build-")
	if err == nil {
		*bin, err = Build(dir, tags...)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// NeedRoot skips t, saying why, when the process is not root: the test
// makes loop devices and mounts. (A skip, not an early exit of the whole
// binary, so that "ok" never means "nothing ran".)
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loop devices and mounts")
	}
}
