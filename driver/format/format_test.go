package format

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/filesystem"
	"github.com/flexblock/flexblock/driver/runner"
)

const dev = "/dev/vdx"

func formatter(s *runner.Script, readable bool) *Formatter {
	return &Formatter{Run: s, ReadCheck: func(string) error {
		if readable {
			return nil
		}
		return errors.New("input/output error")
	}, Sleep: noSleep}
}

func noSleep(context.Context, time.Duration) error { return nil }

func TestPrepare(t *testing.T) {
	blkid := "blkid -p -s TYPE -s PTTYPE -o export " + dev
	cases := []struct {
		name      string
		script    func(*runner.Script)
		fs        string
		ro        bool
		readable  bool
		mkfs      []string
		wantCalls []string
		wantErr   string
		formatted bool
	}{
		{name: "blank ext4 gets lazy mkfs", fs: "ext4", readable: true,
			script:    func(s *runner.Script) { s.On("blkid", "", 2) },
			wantCalls: []string{blkid, "mkfs.ext4 -F -m0 -G 256 -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 " + dev}, formatted: true},
		{name: "blank xfs with extra options", fs: "xfs", readable: true, mkfs: []string{"-L", "data"},
			script:    func(s *runner.Script) { s.On("blkid", "", 2) },
			wantCalls: []string{blkid, "mkfs.xfs -f -K -L data " + dev}, formatted: true},
		{name: "blank btrfs", fs: "btrfs", readable: true,
			script:    func(s *runner.Script) { s.On("blkid", "", 2) },
			wantCalls: []string{blkid, "mkfs.btrfs -f -K " + dev}, formatted: true},
		{name: "blank but unreadable", fs: "ext4", readable: false,
			script:    func(s *runner.Script) { s.On("blkid", "", 2) },
			wantCalls: []string{blkid, blkid, blkid}, wantErr: "cannot be read"},
		{name: "blank read-only", fs: "ext4", ro: true, readable: true,
			script:    func(s *runner.Script) { s.On("blkid", "", 2) },
			wantCalls: []string{blkid}, wantErr: "never formats a read-only volume"},
		{name: "existing ext4 rw gets fsck", fs: "ext4", readable: true,
			script:    func(s *runner.Script) { s.On("blkid", "TYPE=ext4\n", 0) },
			wantCalls: []string{blkid, "fsck -a " + dev}},
		{name: "existing ext4 fsck fixed errors", fs: "ext4", readable: true,
			script:    func(s *runner.Script) { s.On("blkid", "TYPE=ext4\n", 0).On("fsck", "", 1) },
			wantCalls: []string{blkid, "fsck -a " + dev}},
		{name: "existing ext4 fsck uncorrected", fs: "ext4", readable: true,
			script:    func(s *runner.Script) { s.On("blkid", "TYPE=ext4\n", 0).On("fsck", "", 4) },
			wantCalls: []string{blkid, "fsck -a " + dev}, wantErr: "could not fix"},
		{name: "existing ext4 read-only: no fsck", fs: "ext4", ro: true, readable: true,
			script:    func(s *runner.Script) { s.On("blkid", "TYPE=ext4\n", 0) },
			wantCalls: []string{blkid}},
		{name: "existing xfs: no fsck", fs: "xfs", readable: true,
			script:    func(s *runner.Script) { s.On("blkid", "TYPE=xfs\n", 0) },
			wantCalls: []string{blkid}},
		{name: "other filesystem", fs: "ext4", readable: true,
			script:    func(s *runner.Script) { s.On("blkid", "TYPE=xfs\n", 0) },
			wantCalls: []string{blkid}, wantErr: "holds xfs but the volume asks for fsType ext4"},
		{name: "partition table", fs: "ext4", readable: true,
			script:    func(s *runner.Script) { s.On("blkid", "PTTYPE=gpt\n", 0) },
			wantCalls: []string{blkid}, wantErr: "gpt partition table"},
		{name: "LUKS", fs: "ext4", readable: true,
			script:    func(s *runner.Script) { s.On("blkid", "TYPE=crypto_LUKS\n", 0) },
			wantCalls: []string{blkid}, wantErr: "holds a crypto_LUKS signature, which is not a filesystem flexblock mounts"},
		{name: "unnamed signature", fs: "ext4", readable: true,
			script:    func(s *runner.Script) { s.On("blkid", "\n", 0) },
			wantCalls: []string{blkid}, wantErr: "cannot name"},
		{name: "ambivalent", fs: "ext4", readable: true,
			script:    func(s *runner.Script) { s.On("blkid", "", 8) },
			wantCalls: []string{blkid}, wantErr: "ambivalent"},
		{name: "blkid error", fs: "ext4", readable: true,
			script:    func(s *runner.Script) { s.On("blkid", "", 4) },
			wantCalls: []string{blkid}, wantErr: "probe"},
		{name: "mkfs fails", fs: "ext4", readable: true,
			script:    func(s *runner.Script) { s.On("blkid", "", 2).On("mkfs", "", 1) },
			wantCalls: []string{blkid, "mkfs.ext4 -F -m0 -G 256 -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 " + dev}, wantErr: "format /dev/vdx as ext4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &runner.Script{Strict: true}
			s.On("mkfs", "", 0).On("fsck", "", 0)
			tc.script(s)
			formatted, err := formatter(s, tc.readable).Prepare(context.Background(), dev, tc.fs, tc.ro, tc.mkfs)
			if got := strings.Join(s.Lines(), "\n"); got != strings.Join(tc.wantCalls, "\n") {
				t.Errorf("calls:\n%s\nwant:\n%s", got, strings.Join(tc.wantCalls, "\n"))
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
			if formatted != tc.formatted {
				t.Errorf("formatted = %v", formatted)
			}
		})
	}
}

// A read that fails once (a path still coming up) is retried with a fresh
// probe; the device is formatted only after a clean probe and read.
func TestPrepareRetriesTransientReadError(t *testing.T) {
	s := &runner.Script{Strict: true}
	s.On("blkid", "", 2).On("mkfs", "", 0)
	reads := 0
	f := &Formatter{Run: s, Sleep: noSleep, ReadCheck: func(string) error {
		if reads++; reads == 1 {
			return errors.New("input/output error")
		}
		return nil
	}}
	formatted, err := f.Prepare(context.Background(), dev, "ext4", false, nil)
	if err != nil || !formatted {
		t.Fatalf("formatted=%v err=%v", formatted, err)
	}
	blkid := "blkid -p -s TYPE -s PTTYPE -o export " + dev
	want := []string{blkid, blkid, "mkfs.ext4 -F -m0 -G 256 -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 " + dev}
	if got := strings.Join(s.Lines(), "\n"); got != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

// A signature found on the re-probe wins: nothing is formatted.
func TestPrepareReprobeFindsSignature(t *testing.T) {
	s := &runner.Script{Strict: true}
	s.On("blkid", "", 2)
	f := &Formatter{Run: s, Sleep: noSleep, ReadCheck: func(string) error {
		s.On("blkid", "TYPE=xfs\n", 0) // the device now reads: it holds xfs
		return errors.New("input/output error")
	}}
	formatted, err := f.Prepare(context.Background(), dev, "ext4", false, nil)
	if formatted || err == nil || !strings.Contains(err.Error(), "holds xfs") {
		t.Fatalf("formatted=%v err=%v", formatted, err)
	}
}

// A hint to change fsType names only a filesystem flexblock supports;
// every refusal carries its kind.
func TestRefusalHintsAndKinds(t *testing.T) {
	cases := []struct {
		blkid, want string
		kind        *errkind.Kind
		suggest     bool
	}{
		{"TYPE=xfs\n", "holds xfs but the volume asks for fsType ext4: set fsType to xfs", errkind.Mismatch, true},
		{"TYPE=btrfs\n", "set fsType to btrfs", errkind.Mismatch, true},
		{"TYPE=crypto_LUKS\n", "holds a crypto_LUKS signature, which is not a filesystem flexblock mounts", errkind.Mismatch, false},
		{"TYPE=swap\n", "holds a swap signature, which is not a filesystem flexblock mounts", errkind.Mismatch, false},
		{"TYPE=LVM2_member\n", "holds a LVM2_member signature", errkind.Mismatch, false},
		{"TYPE=vfat\n", "holds a vfat signature", errkind.Mismatch, false},
		{"TYPE=zfs_member\n", "holds a zfs_member signature", errkind.Mismatch, false},
		{"PTTYPE=gpt\n", "gpt partition table", errkind.Mismatch, false},
		{"\n", "cannot name", errkind.NotBlank, false},
	}
	for _, tc := range cases {
		s := &runner.Script{Strict: true}
		s.On("blkid", tc.blkid, 0)
		_, err := formatter(s, true).Prepare(context.Background(), dev, "ext4", false, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.kind) {
			t.Errorf("blkid %q: err = %v, want %q of kind %v", tc.blkid, err, tc.want, tc.kind)
			continue
		}
		if got := strings.Contains(err.Error(), "set fsType"); got != tc.suggest {
			t.Errorf("blkid %q: suggests fsType = %v: %v", tc.blkid, got, err)
		}
	}
	s := &runner.Script{Strict: true}
	s.On("blkid", "", 8)
	if _, err := formatter(s, true).Prepare(context.Background(), dev, "ext4", false, nil); !errors.Is(err, errkind.NotBlank) {
		t.Errorf("ambivalent probe: %v, want NotBlank", err)
	}
	s = &runner.Script{Strict: true}
	s.On("blkid", "", 2)
	if _, err := formatter(s, true).Prepare(context.Background(), dev, "ext4", true, nil); !errors.Is(err, errkind.Mismatch) {
		t.Errorf("blank read-only device: %v, want Mismatch (a read-only volume needs a filesystem)", err)
	}
	s = &runner.Script{Strict: true}
	s.On("blkid", "", 2)
	if _, err := formatter(s, false).Prepare(context.Background(), dev, "ext4", false, nil); !errors.Is(err, errkind.NotBlank) {
		t.Errorf("unreadable blank device: %v, want NotBlank", err)
	}
}

// Data where blkid finds no signature is never formatted, and not retried:
// the refusal says how to inspect and wipe.
func TestPrepareRefusesNonZero(t *testing.T) {
	s := &runner.Script{Strict: true}
	s.On("blkid", "", 2)
	f := &Formatter{Run: s, Sleep: noSleep, ReadCheck: func(string) error { return &NonZeroError{Offset: 134218752} }}
	formatted, err := f.Prepare(context.Background(), dev, "ext4", false, nil)
	want := "device /dev/vdx is not blank (non-zero data at offset 134218752) and holds no filesystem blkid recognises: flexblock will not format it; inspect it (blkid -p, file -s, hexdump), and if it really is scratch, wipe it (wipefs -a / blkdiscard) first"
	if formatted || err == nil || err.Error() != want || !errors.Is(err, errkind.NotBlank) {
		t.Fatalf("formatted=%v err=%v", formatted, err)
	}
	if got := strings.Join(s.Lines(), "\n"); got != "blkid -p -s TYPE -s PTTYPE -o export "+dev {
		t.Errorf("calls: %s", got)
	}
}

// CheckZeros finds one non-zero byte at each place a filesystem keeps a
// copy of what lets it be recovered, on a big sparse image.
func TestCheckZeros(t *testing.T) {
	const size = 300 << 30
	img := t.TempDir() + "/img"
	if err := writeSparse(img, size); err != nil {
		t.Fatal(err)
	}
	if err := CheckZeros(img); err != nil {
		t.Fatalf("blank sparse image refused: %v", err)
	}
	for _, off := range []int64{
		0, 1080, 1<<20 - 1, // start, ext superblock magic, end of the first MiB
		size - 1, size - 1<<20, // the last MiB
		64<<10 + 64,       // btrfs primary magic
		64<<20 + 64,       // btrfs first mirror
		256<<30 + 64,      // btrfs second mirror
		128<<20 + 56,      // ext4 (4 KiB blocks) backup superblock magic of group 1
		3*128<<20 + 56,    // group 3
		2187*128<<20 + 56, // group 3^7
		8<<20 + 1024 + 56, // ext (1 KiB blocks) group 1
		25*32<<20 + 56,    // ext (2 KiB blocks) group 25
		7<<30 + 100,       // the first block of a GiB
		size / 4,          // an xfs AG start (4 AGs)
		3 * (size / 32),   // an xfs AG start (32 AGs)
	} {
		writeAt(t, img, off, 0x53)
		var nz *NonZeroError
		err := CheckZeros(img)
		if !errors.As(err, &nz) || nz.Offset > off || off-nz.Offset >= 1<<20 {
			t.Errorf("byte at %d: CheckZeros = %v", off, err)
		}
		writeAt(t, img, off, 0)
	}
	// tmpfs refuses O_DIRECT: the check falls back to cached reads.
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		shm, err := os.CreateTemp("/dev/shm", "zeros-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(shm.Name())
		_ = shm.Truncate(3<<20 + 512)
		_, _ = shm.WriteAt([]byte{1}, 3<<20+511)
		shm.Close()
		var nz *NonZeroError
		if err := CheckZeros(shm.Name()); !errors.As(err, &nz) || nz.Offset != 3<<20+511 {
			t.Errorf("tmpfs image: CheckZeros = %v, want non-zero at %d", err, 3<<20+511)
		}
	}
	if err := CheckZeros("/nonexistent-device"); err == nil {
		t.Fatal("missing device readable")
	}
	empty := t.TempDir() + "/empty"
	if err := writeSparse(empty, 0); err != nil {
		t.Fatal(err)
	}
	if err := CheckZeros(empty); err == nil {
		t.Fatal("zero-size device passed the read check")
	}
}

// A filesystem whose primary signature was damaged (blkid then finds
// nothing) is refused, and an ext4 stays recoverable from its backup
// superblock. Plain image files: blkid, mkfs and e2fsck read them as they
// read a loop device, and the read path is the same os.File.
func TestDamagedFilesystemRefused(t *testing.T) {
	cases := []struct {
		fs      string
		damage  func(t *testing.T, img string)
		recover []string // a command that must bring the filesystem back
	}{
		{"ext4", func(t *testing.T, img string) { writeAt(t, img, 1024+56, 0); writeAt(t, img, 1024+57, 0) }, // s_magic 0xEF53
			[]string{"e2fsck", "-fy", "-b", "32768", "-B", "4096"}},
		{"ext4", func(t *testing.T, img string) { zeroRange(t, img, 0, 1<<20) }, []string{"e2fsck", "-fy", "-b", "32768", "-B", "4096"}},
		{"xfs", func(t *testing.T, img string) { zeroRange(t, img, 0, 1<<20) }, nil},
		{"btrfs", func(t *testing.T, img string) { zeroRange(t, img, 0, 1<<20) }, nil},
	}
	for _, tc := range cases {
		fs := filesystem.Lookup(tc.fs)
		for _, tool := range []string{fs.Mkfs, "blkid"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s not installed: this test formats real images", tool)
			}
		}
		img := t.TempDir() + "/img"
		if err := writeSparse(img, 1<<30); err != nil {
			t.Fatal(err)
		}
		run := &runner.Exec{Dir: t.TempDir(), Timeout: func(string) time.Duration { return time.Minute }}
		f := &Formatter{Run: run}
		if formatted, err := f.Prepare(context.Background(), img, tc.fs, false, nil); err != nil || !formatted {
			t.Fatalf("%s: blank image: formatted=%v err=%v", tc.fs, formatted, err)
		}
		tc.damage(t, img)
		formatted, err := f.Prepare(context.Background(), img, tc.fs, false, nil)
		if formatted || !errors.Is(err, errkind.NotBlank) || !strings.Contains(err.Error(), "is not blank") {
			t.Fatalf("damaged %s: formatted=%v err=%v", tc.fs, formatted, err)
		}
		if tc.recover == nil {
			continue
		}
		if out, err := exec.Command(tc.recover[0], append(tc.recover[1:], img)...).CombinedOutput(); fsckFailed(err) {
			t.Fatalf("%s: %v\n%s", tc.recover, err, out)
		}
		if out, err := exec.Command("blkid", "-p", "-s", "TYPE", "-o", "value", img).Output(); err != nil || strings.TrimSpace(string(out)) != tc.fs {
			t.Fatalf("after recovery blkid says %q, %v", out, err)
		}
	}
}
