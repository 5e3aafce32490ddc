package format

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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
			wantCalls: []string{blkid}, wantErr: "holds crypto_LUKS"},
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

func TestReadEnds(t *testing.T) {
	if err := ReadEnds("/nonexistent-device"); err == nil {
		t.Fatal("missing device readable")
	}
	f := t.TempDir() + "/img"
	if err := writeSparse(f, 3<<20); err != nil {
		t.Fatal(err)
	}
	if err := ReadEnds(f); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir() + "/empty"
	if err := writeSparse(empty, 0); err != nil {
		t.Fatal(err)
	}
	if err := ReadEnds(empty); err == nil {
		t.Fatal("zero-size device passed the read check")
	}
}
