package hostile

import (
	"encoding/json"
	"fmt"
	"strings"
)

// withOpts is base plus the given key, value pairs.
func withOpts(base map[string]string, kv ...string) string {
	m := map[string]string{}
	for a, b := range base {
		m[a] = b
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// refusedMkfs are mkfsOptions per fsType that read node files into the
// volume, write on the node, name a device, set an identity or make mkfs
// exit without formatting, in the spellings each tool's getopt reads
// (grouped, attached, separate, long with = or a space, sub-options): issue
// 13 point 1.
var refusedMkfs = map[string][]string{
	"ext4": {"-detc", "-d etc", "-d/etc", "-d /etc", "-qd etc", "-Fqdetc", "-q -d etc", "-z undo", "-zundo", "-qz undo",
		"-E root_owner=0:0", "-Eroot_owner=0:0", "-E stride=4,root_owner=0:0", "-E offset=1", "-J device=/dev/sda", "-Jdevice=sda",
		"-J size=4,device=sda", "-J location=1", "-l bad", "-lbad", "-c", "-cc", "-U clear", "-U 2f1c5a0e-8c2f-4b9e-a0a1-6f7a9a2b1c3d",
		"-M /mnt", "-e panic", "-epanic", "-O journal_dev", "-V", "-n", "-S", "-t xfs", "--", "-- sda", "sda", "-L a b",
		"--rootdir=/etc", "-L /dev/sda", "-L ../x", "-E stride=4,stride=8", "-L a -L b", "-m 5 -m 6"},
	"ext3": {"-d etc", "-qdetc", "-z x", "-J device=sda"},
	"xfs": {"-d file=x", "-dfile=x", "-d name=x", "-d agcount=4,name=x", "-l logdev=/dev/sda", "-llogdev=sda", "-l internal=0",
		"-p proto", "-pproto", "-r rtdev=sda", "-m uuid=x", "-N", "-fN", "-c options=x", "-d file=1,size=1g", "-L /dev/sda"},
	"btrfs": {"--rootdir=/etc", "--rootdir /etc", "--rootdir=etc", "--root=etc", "-r /etc", "-r etc", "-retc", "-qr etc",
		"-u x", "--subvol=x", "-U x", "--uuid=x", "-d raid1", "-d etc", "--data=/etc", "-O list-all", "--version", "-V",
		"--shrink", "-b 1g", "--label", "-L a --label b"},
}

// refusedMount are mountOptions per fsType that change what is mounted or
// where, lift the node's safety defaults, crash the node on an error, or
// defeat identity checks.
var refusedMount = map[string][]string{
	"ext4": {"errors=panic", "noatime,errors=panic", "journal_path=/x", "journal_path=x", "journal_dev=8", "logdev=/x",
		"device=/x", "defaults", "defaults,noatime", "rw", "suid", "dev", "exec", "bind", "rbind", "remount", "loop",
		"x-mount.mkdir", "context=system_u:object_r:x", "fscontext=x", "noatime,noatime", "nobarrier", "barrier=0",
		"NOATIME", "noatime=1", "commit=x", "data=bogus", "noatime,", "dax", "noload"},
	"xfs":   {"logdev=/dev/sda", "rtdev=sda", "nouuid", "norecovery", "errors=remount-ro", "defaults", "inode64,inode64"},
	"btrfs": {"subvol=x", "subvol=/", "subvolid=5", "device=/dev/sda", "degraded", "fatal_errors=panic", "compress=gzip", "rescue=all"},
}

// fsOptionCases are the classes of issue 13 points 1 and 10: mkfs and
// mount options outside each filesystem's allowlist, duplicate and
// case-variant option keys, and sizes that are not Kubernetes quantities.
func fsOptionCases(backend, pod string, base map[string]string) []kase {
	var out []kase
	for _, fs := range []string{"ext4", "ext3", "xfs", "btrfs"} {
		for _, v := range refusedMkfs[fs] {
			out = append(out, kase{fmt.Sprintf("mkfs %s %q", fs, v), []string{"mount", pod, withOpts(base, "fsType", fs, "mkfsOptions", v)}, "mkfsOptions"})
		}
		for _, v := range refusedMount[fs] {
			out = append(out, kase{fmt.Sprintf("mount %s %q", fs, v), []string{"mount", pod, withOpts(base, "fsType", fs, "mountOptions", v)}, "mountOptions"})
		}
	}
	// The same key twice: encoding/json would keep the last silently.
	obj := withOpts(base)
	for _, dup := range []struct{ pair, key string }{
		{`"fsType":"xfs","fsType":"ext4",`, "fsType"},
		{`"mountOptions":"noatime","mountOptions":"errors=panic",`, "mountOptions"},
		{`"kubernetes.io/fsType":"xfs","kubernetes.io/fsType":"ext4",`, "kubernetes.io/fsType"},
		{`"readOnly":"true","readOnly":"false",`, "readOnly"},
	} {
		out = append(out, kase{"duplicate key " + dup.key, []string{"mount", pod, "{" + dup.pair + strings.TrimPrefix(obj, "{")}, dup.key})
	}
	for _, k := range []string{"FsType", "FSTYPE", "MountOptions", "kubernetes.io/FSType", "kubernetes.io/ReadWrite"} {
		out = append(out, kase{"case variant " + k, []string{"mount", pod, withOpts(base, k, "xfs")}, k})
	}
	if backend == "rbd" {
		for _, v := range []string{"10g", "10GB", "10 G", "10gi", "-1Gi", "8Ei", "1e999", "0x10"} {
			out = append(out, kase{"size " + v, []string{"mount", pod, withOpts(base, "size", v)}, "size"})
		}
	}
	return out
}
