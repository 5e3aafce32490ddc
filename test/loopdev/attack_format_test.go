package loopdev

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// Damaged or foreign content the blank check must refuse, byte for byte
// unchanged: signatures wiped the ways a careless wipe or a failing disk
// leaves them (ext4 magic only, the first MiB, first and last MiB, xfs and
// btrfs primary superblocks), a LUKS header.
func TestAttackDamagedDevicesAreNeverFormatted(t *testing.T) {
	zero := func(t *testing.T, file string, off, n int64) { writeAt(t, file, off, make([]byte, n)) }
	const mib = 1 << 20
	cases := []struct {
		name    string
		prepare func(t *testing.T, dev, file string)
		fsType  string
	}{
		{"ext4-magic", func(t *testing.T, dev, file string) { run(t, "mkfs.ext4", "-q", "-F", dev); zero(t, file, 1024+56, 2) }, "ext4"},
		{"ext4-first-mib", func(t *testing.T, dev, file string) { run(t, "mkfs.ext4", "-q", "-F", dev); zero(t, file, 0, mib) }, "ext4"},
		{"ext4-both-ends", func(t *testing.T, dev, file string) {
			run(t, "mkfs.ext4", "-q", "-F", dev)
			zero(t, file, 0, mib)
			zero(t, file, 319*mib, mib)
		}, "ext4"},
		{"ext4-as-xfs", func(t *testing.T, dev, file string) { run(t, "mkfs.ext4", "-q", "-F", dev); zero(t, file, 0, mib) }, "xfs"},
		{"xfs-first-mib", func(t *testing.T, dev, file string) { run(t, "mkfs.xfs", "-q", "-f", dev); zero(t, file, 0, mib) }, "xfs"},
		{"btrfs-first-mib", func(t *testing.T, dev, file string) { run(t, "mkfs.btrfs", "-q", "-f", dev); zero(t, file, 0, mib) }, "btrfs"},
		{"luks", func(t *testing.T, dev, file string) {
			cmd := exec.Command("cryptsetup", "luksFormat", "-q", "--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", dev, "-")
			cmd.Stdin = strings.NewReader("pw")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Skipf("cryptsetup: %v %s", err, out)
			}
		}, "ext4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPlugin(t)
			dev, file := loopDev(t, 320)
			tc.prepare(t, dev, file)
			before := digest(t, file)
			a := p.Call(t, "mount", p.PodDir("pod-a", "v"), opts(dev, "fsType", tc.fsType))
			if a.Status != "Failure" {
				t.Fatalf("want Failure, got %+v", a)
			}
			if strings.Contains(a.Message, "set fsType to crypto_LUKS") {
				t.Errorf("hint names a non-filesystem: %q", a.Message)
			}
			if digest(t, file) != before {
				t.Fatal("device changed")
			}
			if ms := mountsUnder(t, p.Kubelet); len(ms) != 0 {
				t.Fatalf("left mounts: %v", ms)
			}
		})
	}
}
