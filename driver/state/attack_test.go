package state

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A record file that is not a regular file (a FIFO, a symlink to
// /dev/zero or to a node file) or that is huge must be set aside at once:
// before, a FIFO hung every call of the backend forever (SIGTERM did not end
// it) and a symlink to /dev/zero ran the driver out of memory.
func TestHostileRecordFilesAreSetAsideQuickly(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, file string)
	}{
		{"fifo", func(t *testing.T, file string) {
			if err := syscall.Mkfifo(file, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"symlink to /dev/zero", func(t *testing.T, file string) { symlink(t, "/dev/zero", file) }},
		{"symlink to a node file", func(t *testing.T, file string) { symlink(t, "/etc/hostname", file) }},
		{"symlink to a valid record elsewhere", func(t *testing.T, file string) {
			other := filepath.Join(t.TempDir(), "x.json")
			if err := os.WriteFile(other, []byte(`{"version":1,"backend":"loop","id":"x","mode":"pod"}`), 0o600); err != nil {
				t.Fatal(err)
			}
			symlink(t, other, file)
		}},
		{"huge", func(t *testing.T, file string) {
			f, err := os.Create(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(1 << 30); err != nil { // sparse: 1 GiB of zeros
				t.Fatal(err)
			}
		}},
		{"directory", func(t *testing.T, file string) {
			if err := os.Mkdir(file, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Store{Dir: t.TempDir()}
			var set []string
			s.Quarantined = func(file string, _ error) { set = append(set, file) }
			dir := filepath.Join(s.Dir, "volumes", "loop")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			tc.plant(t, filepath.Join(dir, "x.json"))
			done := make(chan error, 1)
			go func() {
				recs, err := s.List("loop")
				if err == nil && len(recs) != 0 {
					t.Errorf("List returned %d records from a planted file", len(recs))
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("List: %v (one bad file must not block the backend)", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("List blocked on a planted record file")
			}
			if len(set) != 1 {
				t.Fatalf("planted file not set aside: quarantined %v", set)
			}
			if _, err := os.Lstat(filepath.Join(dir, "x.json")); !os.IsNotExist(err) {
				t.Fatalf("planted file still in place: %v", err)
			}
		})
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
