package mount

import (
	"os"
	"path/filepath"
	"testing"
)

// A table as /proc/1/mountinfo shows it in nsenter mode: /data has two
// stacked mounts (the later one hides the first) and /pod is a bind of
// the second.
const table = `22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
30 22 7:0 / /data rw,relatime - ext4 /dev/loop0 rw
31 30 7:1 / /data rw,relatime - xfs /dev/loop1 rw
32 22 7:1 / /pod rw,relatime - xfs /dev/loop1 rw
33 22 7:0 / /old rw,relatime - ext4 /dev/loop0 rw
`

func tools(t *testing.T) *Tools {
	f := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(f, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	return &Tools{MountInfo: f}
}

func TestLookupReturnsTheTopOfStackedMounts(t *testing.T) {
	m, err := tools(t).Lookup("/data")
	if err != nil || m == nil {
		t.Fatalf("Lookup: %v %v", m, err)
	}
	if m.Source != "/dev/loop1" {
		t.Errorf("Lookup(/data) = %s, want the top mount /dev/loop1", m.Source)
	}
}

// Where statx cannot answer for the tools' namespace, Mounted and Same
// come from the table.
func TestMountedAndSameFromTheTable(t *testing.T) {
	tl := tools(t)
	for path, want := range map[string]bool{"/data": true, "/pod": true, "/nowhere": false} {
		if got, err := tl.Mounted(path); err != nil || got != want {
			t.Errorf("Mounted(%s) = %v, %v; want %v", path, got, err, want)
		}
	}
	for _, c := range []struct {
		a, b string
		want bool
	}{{"/data", "/pod", true}, {"/old", "/pod", false}, {"/data", "/nowhere", false}} {
		if got, err := tl.Same(c.a, c.b); err != nil || got != c.want {
			t.Errorf("Same(%s, %s) = %v, %v; want %v", c.a, c.b, got, err, c.want)
		}
	}
}
