package format

import (
	"errors"
	"os"
	"os/exec"
	"testing"
)

func writeSparse(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Truncate(size)
}

func writeAt(t *testing.T, path string, off int64, b byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{b}, off); err != nil {
		t.Fatal(err)
	}
}

// fsckFailed: e2fsck exits 1 when it fixed errors, 2 when it fixed them and
// advises a reboot (a mounted root); 4 and up means errors left.
func fsckFailed(err error) bool {
	var ee *exec.ExitError
	return err != nil && !(errors.As(err, &ee) && ee.ExitCode() < 4)
}

func zeroRange(t *testing.T, path string, off, n int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, n), off); err != nil {
		t.Fatal(err)
	}
}
