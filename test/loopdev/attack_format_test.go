package loopdev

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// A volume's mkfsOptions "-E ..." (any spelling) used to replace the
// driver's default "-E nodiscard,lazy_itable_init=1,...": mke2fs then
// discarded the whole device, zeroing whatever lay outside the regions the
// blank check reads. A format writes metadata only; bytes it does not
// need stay where they were.
func TestAttackMkfsExtendedOptionKeepsNodiscard(t *testing.T) {
	const off = 100<<20 + 12345 // not a probed region, not ext4 metadata
	mark := []byte("PRECIOUS-DATA")
	for i, mkfs := range []string{"-E stride=4", "-qEstride=4"} {
		t.Run(fmt.Sprint("spelling", i), func(t *testing.T) {
			p := newPlugin(t)
			dev, file := loopDev(t, 320)
			writeAt(t, file, off, mark)
			pod := p.PodDir("pod-a", "data")
			if a := p.Call(t, "mount", pod, opts(dev, "mkfsOptions", mkfs)); a.Status != "Success" {
				t.Fatalf("mount: %+v", a)
			}
			p.Call(t, "unmount", pod)
			if got := readAt(t, file, off, len(mark)); !bytes.Equal(got, mark) {
				t.Fatalf("mkfsOptions %q: bytes outside the filesystem's metadata were discarded: %q", mkfs, got)
			}
		})
	}
}

func writeAt(t *testing.T, file string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func readAt(t *testing.T, file string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(filepath.Clean(file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}
