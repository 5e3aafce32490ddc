package filesystem

import (
	"reflect"
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	if got := Names(); !reflect.DeepEqual(got, []string{"ext4", "ext3", "xfs", "btrfs"}) {
		t.Errorf("Names() = %v", got)
	}
	if Lookup("vfat") != nil || Lookup("crypto_LUKS") != nil || Lookup("") != nil {
		t.Error("Lookup accepts an unsupported filesystem")
	}
	grow := map[string]string{
		"ext4":  "resize2fs /dev/x",
		"ext3":  "resize2fs /dev/x",
		"xfs":   "xfs_growfs -d /mnt/m",
		"btrfs": "btrfs filesystem resize max /mnt/m",
	}
	for name, want := range grow {
		n, a := Lookup(name).GrowCmd("/dev/x", "/mnt/m")
		if got := n + " " + strings.Join(a, " "); got != want {
			t.Errorf("%s grow = %q, want %q", name, got, want)
		}
	}
	ext := Lookup("ext4").Fsck
	for code, clean := range map[int]bool{-1: false, 0: true, 1: true, 2: true, 3: true, 4: false, 8: false, 12: false} {
		if ext.Clean(code) != clean {
			t.Errorf("ext4 fsck exit %d clean = %v", code, !clean)
		}
	}
	if Lookup("xfs").Fsck != nil || Lookup("btrfs").Fsck != nil {
		t.Error("xfs/btrfs check themselves at mount; no fsck expected")
	}
	if got := Lookup("btrfs").Tools(); !reflect.DeepEqual(got, []string{"btrfs", "mkfs.btrfs"}) {
		t.Errorf("btrfs tools = %v", got)
	}
}

func TestParseMkfs(t *testing.T) {
	good := map[string][]string{
		"ext4": {"", "-L data", "-Ldata", "-qF", "-qL data", "-m 5", "-m5 -i 8192 -I 256", "-E stride=4,stripe_width=8",
			"-E lazy_itable_init,nodiscard", "-O ^has_journal,metadata_csum", "-J size=64", "-j -T largefile", "-b 4096 -N 1000",
			"-e remount-ro", "-G 16", "-qFL x"},
		"ext3": {"-L data -m 1"},
		"xfs": {"-L data", "-i size=512", "-m crc=1,finobt=1", "-m reflink=1 -n size=8k", "-d su=64k,sw=4", "-d agcount=8",
			"-l size=64m,version=2", "-s size=4096", "-b size=4096", "-qf", "-K"},
		"btrfs": {"-L data", "--label data", "--label=data", "-n 16k", "--nodesize=16k", "-O no-holes,^quota",
			"--features free-space-tree", "-m dup -d single", "--metadata=dup", "--csum xxhash", "--checksum=sha256", "-qf", "-Ldata"},
	}
	for fs, list := range good {
		for _, v := range list {
			got, err := Lookup(fs).ParseMkfs(v)
			if err != nil || !reflect.DeepEqual(got, strings.Fields(v)) && v != "" {
				t.Errorf("%s ParseMkfs(%q) = %q, %v; want accepted", fs, v, got, err)
			}
		}
	}
	bad := map[string][]struct{ in, item string }{
		"ext4": {
			{"-detc", "-d"}, {"-d etc", "-d"}, {"-d/etc", "-d"}, {"-qd etc", "-d"}, {"-Fd etc", "-d"},
			{"-z undo", "-z"}, {"-zundo", "-z"}, {"-c", "-c"}, {"-l bad", "-l"}, {"-U 1234", "-U"},
			{"-E root_owner=0:0", "-E root_owner=0:0"}, {"-E offset=4096", "-E offset=4096"},
			{"-J device=/dev/sda", "-J device=/dev/sda"}, {"-J device=sda", "-J device=sda"},
			{"-L /dev/sda", "/dev/sda"}, {"-L", "-L"}, {"-L a/b", "a/b"}, {"-e panic", "-e panic"},
			{"-O journal_dev", "-O journal_dev"}, {"-O ^has_journal,has_journal", "has_journal"},
			{"-m 60", "-m 60"}, {"-m x", "-m x"}, {"-L a -L b", "-L"}, {"data", "data"}, {"--", "--"},
			{"-- /dev/sda", "--"}, {"--rootdir=/etc", "--rootdir"}, {"-V", "-V"}, {"-n", "-n"},
			{"-M /mnt", "-M"}, {"-S", "-S"}, {"-t xfs", "-t"}, {"-E stride=4,,x", "-E"}, {"-E stride=4,stride=8", "stride=8"},
			{"-E nodiscard=1", "nodiscard=1"}, {"-rf", "-r f"}, {"--help", "--help"}, {"-T /etc", "/etc"},
		},
		"xfs": {
			{"-d file=x", "-d file=x"}, {"-d name=x", "-d name=x"}, {"-dfile=x", "-d file=x"}, {"-l logdev=/dev/sda", "-l logdev=/dev/sda"},
			{"-l internal=0", "-l internal=0"}, {"-p proto", "-p"}, {"-r rtdev=x", "-r"}, {"-m uuid=1", "-m uuid=1"},
			{"-c options=x", "-c"}, {"-N", "-N"}, {"-fN", "-N"}, {"-L abcdefghijklm", "-L abcdefghijklm"}, {"-i size", "-i size"},
		},
		"btrfs": {
			{"-r /etc", "-r"}, {"-r etc", "-r"}, {"--rootdir=/etc", "--rootdir"}, {"--rootdir /etc", "--rootdir"},
			{"--root=etc", "--root"}, {"-u x", "-u"}, {"--subvol=x", "--subvol"}, {"-U x", "-U"}, {"--uuid=x", "--uuid"},
			{"-d raid1", "-d raid1"}, {"-d etc", "-d etc"}, {"--data=/etc", "/etc"}, {"-O list-all", "-O list-all"},
			{"--label", "--label"}, {"--force=1", "--force=1"}, {"--shrink", "--shrink"}, {"-V", "-V"}, {"--version", "--version"},
			{"-L a --label b", "-L"},
		},
	}
	for fs, list := range bad {
		for _, tc := range list {
			_, err := Lookup(fs).ParseMkfs(tc.in)
			oe, ok := err.(*OptionError)
			if !ok || !strings.Contains(oe.Item, tc.item) || oe.Allowed == "" || len(err.Error()) > 1500 {
				t.Errorf("%s ParseMkfs(%q) = %v; want an OptionError naming %q with what is allowed", fs, tc.in, err, tc.item)
			}
		}
	}
}

func TestParseMount(t *testing.T) {
	good := map[string][]string{
		"ext4":  {"", "noatime", "noatime,discard", "errors=remount-ro,data=ordered,commit=30", "nodiscard", "nosuid,nodev,noexec", " noatime , lazytime"},
		"xfs":   {"inode64,noquota,logbufs=8,logbsize=256k,allocsize=64m,largeio,discard", "prjquota"},
		"btrfs": {"compress=zstd:3", "compress", "compress-force=lzo,ssd,space_cache=v2,autodefrag,commit=60,discard=async"},
	}
	for fs, list := range good {
		for _, v := range list {
			if _, err := Lookup(fs).ParseMount(v); err != nil {
				t.Errorf("%s ParseMount(%q) = %v; want accepted", fs, v, err)
			}
		}
	}
	bad := map[string][]struct{ in, item string }{
		"ext4": {{"errors=panic", "errors=panic"}, {"journal_path=/x", "journal_path=/x"}, {"journal_dev=8", "journal_dev=8"},
			{"defaults", "defaults"}, {"rw", "rw"}, {"suid", "suid"}, {"dev", "dev"}, {"exec", "exec"}, {"bind", "bind"},
			{"remount", "remount"}, {"loop", "loop"}, {"x-mount.mkdir", "x-mount.mkdir"}, {"context=system_u:object_r:x", "context="},
			{"noatime,noatime", "noatime"}, {"noatime,,nodev", ","}, {"commit=x", "commit=x"}, {"nobarrier", "nobarrier"},
			{"logdev=/x", "logdev=/x"}, {"device=/x", "device=/x"}, {"NOATIME", "NOATIME"}, {"noatime=1", "noatime=1"}, {"errors", "errors"}},
		"xfs":   {{"logdev=/dev/sda", "logdev"}, {"rtdev=x", "rtdev"}, {"nouuid", "nouuid"}, {"norecovery", "norecovery"}, {"errors=remount-ro", "errors"}},
		"btrfs": {{"subvol=x", "subvol"}, {"subvolid=5", "subvolid"}, {"device=/dev/sda", "device"}, {"compress=gzip", "compress=gzip"}, {"fatal_errors=panic", "fatal_errors"}, {"degraded", "degraded"}},
	}
	for fs, list := range bad {
		for _, tc := range list {
			_, err := Lookup(fs).ParseMount(tc.in)
			oe, ok := err.(*OptionError)
			if !ok || !strings.Contains(oe.Item, tc.item) || !strings.Contains(oe.Allowed, "noatime") {
				t.Errorf("%s ParseMount(%q) = %v; want an OptionError naming %q", fs, tc.in, err, tc.item)
			}
		}
	}
}
