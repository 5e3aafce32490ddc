package hostile

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flexblock/flexblock/driver/app"
	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/flexvol"
	"github.com/flexblock/flexblock/driver/logging"
	"github.com/flexblock/flexblock/driver/runner"
)

// attackMkfs are spellings of refused mkfs options that the corpus in
// fsoptions_test.go does not try: tabs and Unicode spaces between words,
// Unicode dashes, e2p's other feature syntaxes (-/+ prefixes, "none",
// "clear", FEATURE_Cn names, upper case), abbreviated btrfs long options,
// values with '=' or ',' smuggled into single values, an option that
// takes a value left last so the device becomes its value.
var attackMkfs = map[string][]string{
	"ext4": {"-q\t-d\tetc", "-q\u00a0-d\u00a0etc", "\u2212d etc", "\uff0dd etc", "-E stride=4,,root_owner=0:0", "-E stride=4 -E root_owner=0:0",
		"-Eroot_owner", "-E root_owner", "-E stride=4,offset=0", "-E stride=4=5", "-O none", "-O clear", "-O FEATURE_C3",
		"-O HAS_JOURNAL", "-O -has_journal", "-O +journal_dev", "-O ^^has_journal", "-O journal_dev,^journal_dev", "-qFL",
		"-L", "-m", "-L x -q -L y", "-Lx -Ly", "-T ../x", "-e panic", "-eremount-ro,panic", "-b 4096,1024", "-I 256 -I 128",
		"-J size=4,size=8", "-E stride=04", "-E stride=+4", "-E stride=4 stride", "-o hurd", "-U time", "-U random",
		"-E root_owner=0:0 -q", "-D", "-K", "-R stride=4", "-s 1", "-t ext4", "-M/mnt", "-Fd x"},
	"xfs": {"-d su=64k -d sw=4", "-dname=x", "-d su=64k,name=x", "-d file", "-d noalign,file=1", "-l logdev=x", "-l internal",
		"-linternal=1", "-r size=1g", "-m uuid=x", "-i size=512,size=256", "-L a,b", "-L a=b", "-b size=4096 -b size=512",
		"-p x", "-c options=x", "-C", "-N", "-V", "-l", "-n version=ci,version=2", "-s size=4096,size=512"},
	"btrfs": {"--root=/etc", "--root etc", "--ro=etc", "--r etc", "--rootd=etc", "--labe=x", "--l x", "--label=x=y", "--label=a,b",
		"--label -r", "-L --rootdir=x", "--features=^quota,list-all", "-O list-all", "--subvol x", "-u x", "-m raid1", "-d raid0",
		"--metadata=raid1c3", "--data dup,single", "--byte-count=1g", "--shrink", "--uuid=x", "--device-uuid=x", "--inode-flags=x",
		"--compress=zstd", "--reflink=x", "--help", "--version", "-V", "--", "-qr etc", "-fr x", "--nodiscard=1", "--mixed=1"},
}

// attackMount are mount option spellings the corpus does not try: case
// and space variants of refused ones, mount(8)-only options, NUL and
// Unicode lookalikes, and an allowed name with a path or a second option
// in its value.
var attackMount = map[string][]string{
	"ext4": {"errors=Panic", "Errors=panic", "errors=panic ", "noatime,,nodev", ",noatime", "noatime,ro", "ro", "rw,ro",
		"comment=x", "x-systemd.automount", "x-mount.mkdir=0700", "nofail", "user", "users", "owner", "helper=x", "offset=0",
		"sizelimit=1", "nosuid\x00,dev", "noatime\u200b", "ｎｏａｔｉｍｅ", "commit=5,commit=6", "commit=-1", "commit=5x",
		"data=journal,data=ordered", "errors=remount-ro,errors=panic", "journal_path=x", "usrjquota=x", "jqfmt=vfsv0",
		"resuid=0", "resgid=0", "sb=8193", "abort", "test_dummy_encryption", "debug_want_extra_isize=1", "errors=remount-ro/x",
		"max_batch_time=1,max_batch_time=2", "barrier=0", "nouser_xattr", "noacl", "context=x", "defcontext=x", "rootcontext=x",
		"nodelalloc,delalloc,nodelalloc"},
	"xfs": {"logdev=x", "rtdev=x", "nouuid", "norecovery", "logbsize=8k", "allocsize=1g/x", "sunit=1,sunit=2", "ro"},
	"btrfs": {"subvol=x", "subvolid=5", "device=x", "degraded", "usebackuproot", "rescue=usebackuproot", "nologreplay",
		"clear_cache", "fatal_errors=bug", "check_int", "ref_verify", "compress=zstd:16", "compress=lzo:1", "max_inline=1/x", "ro"},
}

// TestAttackOptionSpellings: each refused before anything runs, naming
// the field.
func TestAttackOptionSpellings(t *testing.T) {
	root := t.TempDir()
	cfg, err := config.Load(filepath.Join(t.TempDir(), "none.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.StateDir, cfg.KubeletRoot = t.TempDir(), root
	script := &runner.Script{Strict: true}
	d := app.NewLifecycle(backends["loop"], cfg, script, &logging.Masker{}, logging.New(nil))
	pod := filepath.Join(root, "pods/uid-1/volumes/flexblock~loop/vol")
	try := func(name, field string, kv ...string) {
		res := flexvol.Handle(context.Background(), d, []string{"mount", pod, withOpts(valid["loop"], kv...)}, nil)
		if res.Status != flexvol.StatusFailure || !strings.Contains(res.Message, field) {
			t.Errorf("%s: got %s %q, want Failure naming %s", name, res.Status, short(res.Message), field)
		}
	}
	n := 0
	for fs, list := range attackMkfs {
		for _, v := range list {
			try(fmt.Sprintf("mkfs %s %q", fs, v), "mkfsOptions", "fsType", fs, "mkfsOptions", v)
			n++
		}
	}
	for fs, list := range attackMount {
		for _, v := range list {
			try(fmt.Sprintf("mount %s %q", fs, v), "mountOptions", "fsType", fs, "mountOptions", v)
			n++
		}
	}
	if len(script.Calls) != 0 {
		t.Errorf("tools ran for refused options: %q", script.Lines())
	}
	assertEmpty(t, root)
	t.Logf("%d option spellings refused", n)
}

// TestAttackJSONKeySpellings: one key given twice through JSON escapes
// (the decoder sees "fsType" twice), keys that are not ASCII or carry
// invalid UTF-8, and a BOM before the object.
func TestAttackJSONKeySpellings(t *testing.T) {
	root := t.TempDir()
	cfg, err := config.Load(filepath.Join(t.TempDir(), "none.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.StateDir, cfg.KubeletRoot = t.TempDir(), root
	script := &runner.Script{Strict: true}
	d := app.NewLifecycle(backends["loop"], cfg, script, &logging.Masker{}, logging.New(nil))
	pod := filepath.Join(root, "pods/uid-1/volumes/flexblock~loop/vol")
	for _, j := range []string{
		`{"device":"/dev/loop7","fsType":"ext4","fs\u0054ype":"xfs"}`,
		`{"device":"/dev/loop7","mountOptions":"noatime","\u006dountOptions":"errors=panic"}`,
		`{"device":"/dev/loop7","kubernetes.io/fsType":"ext4","kubernetes.io\/fsType":"xfs"}`,
		`{"device":"/dev/loop7","device":"/dev/loop8"}`,
		`{"device":"/dev/loop7","f\u0073Type":"xfs","fsType":"ext4"}`,
		`{"device":"/dev/loop7","fsType\u0000":"xfs"}`,
		`{"device":"/dev/loop7","fsТype":"xfs"}`, // Cyrillic Т
		"{\"device\":\"/dev/loop7\",\"fsType\xff\":\"xfs\"}",
		"\ufeff{\"device\":\"/dev/loop7\"}",
		`{"device":"/dev/loop7","fsType":"ext4\u0000"}`,
		`{"device":"/dev/loop7","fsType":"EXT4"}`,
		`{"device":"/dev/loop7","fsType":" ext4"}`,
		`{"device":"/dev/loop7","readOnly":"true","readOnly":"false"}`,
		`{"device":"/dev/loop7","kubernetes.io/readwrite":"RW"}`,
	} {
		res := flexvol.Handle(context.Background(), d, []string{"mount", pod, j}, nil)
		if res.Status != flexvol.StatusFailure {
			t.Errorf("%q: got %s %q, want Failure", j, res.Status, short(res.Message))
		}
	}
	if len(script.Calls) != 0 {
		t.Errorf("tools ran: %q", script.Lines())
	}
}
