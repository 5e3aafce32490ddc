package doctor

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/installer"
	"github.com/flexblock/flexblock/test/testkit"
)

var bin string

func TestMain(m *testing.M) { testkit.Main(m, &bin) }

const release = "6.1.0-99-amd64"

func write(t *testing.T, p, s string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
}

// healthyRoot is a fake node with everything flexblock needs.
func healthyRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, p := range []string{"usr/bin/rbd", "usr/sbin/iscsiadm", "usr/sbin/blkid", "sbin/mke2fs", "usr/sbin/fsck",
		"usr/bin/mount", "usr/bin/umount", "usr/bin/nsenter", "usr/sbin/mkfs.xfs", "usr/sbin/xfs_growfs", "sbin/resize2fs",
		"sbin/mkfs.ext3", "usr/bin/btrfs", "usr/sbin/mkfs.btrfs", "usr/sbin/blockdev", "usr/sbin/multipath", "usr/sbin/multipathd"} {
		write(t, filepath.Join(root, p), "#!/bin/sh\n", 0o755)
	}
	// Symlinks are followed inside the root, absolute and relative.
	must(t, os.Symlink("/sbin/mke2fs", filepath.Join(root, "usr/sbin/mkfs.ext4")))
	must(t, os.MkdirAll(filepath.Join(root, "usr/local/bin"), 0o755))
	write(t, filepath.Join(root, "proc/sys/kernel/osrelease"), release+"\n", 0o444)
	for _, m := range []string{"rbd", "iscsi_tcp", "libceph"} {
		must(t, os.MkdirAll(filepath.Join(root, "sys/module", m), 0o755))
	}
	write(t, filepath.Join(root, "sys/bus/rbd/supported_features"), "0x3fd\n", 0o444)
	write(t, filepath.Join(root, "proc/1/comm"), "systemd\n", 0o444)
	write(t, filepath.Join(root, "proc/812/comm"), "iscsid\n", 0o444)
	write(t, filepath.Join(root, "etc/iscsi/initiatorname.iscsi"), "## DO NOT EDIT\nInitiatorName=iqn.1993-08.org.debian:01:abcdef\n", 0o644)
	must(t, os.MkdirAll(filepath.Join(root, "var/log/flexblock"), 0o700))
	must(t, os.MkdirAll(filepath.Join(root, "run"), 0o755))
	installDrivers(t, root, config.Config{LogFile: config.DefaultLogFile, StateDir: config.DefaultStateDir})
	return root
}

func installDrivers(t *testing.T, root string, cfg config.Config) {
	t.Helper()
	_, err := installer.Install(installer.Options{
		PluginDir: filepath.Join(root, installer.DefaultPluginDir),
		Source:    bin,
		Backends:  []string{"rbd", "iscsi"},
		Config:    cfg,
	})
	must(t, err)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func find(t *testing.T, r *Report, name string) Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", name, r.Checks)
	return Check{}
}

func table(r *Report) string {
	var b bytes.Buffer
	_ = r.WriteTable(&b)
	return b.String()
}

func TestAllPresentIsAllGreen(t *testing.T) {
	root := healthyRoot(t)
	r := Run(Options{Root: root})
	for _, c := range r.Checks {
		if c.Status != OK {
			t.Errorf("%s: %s %s (fix %s)", c.Name, c.Status, c.Detail, c.Fix)
		}
	}
	if !r.OK || !r.Backends["rbd"].Ready || !r.Backends["iscsi"].Ready {
		t.Errorf("verdicts: %+v", r.Backends)
	}
	if c := find(t, r, "tool mkfs.ext4"); c.Detail != "/usr/sbin/mkfs.ext4" {
		t.Errorf("symlinked tool: %+v", c)
	}
	if c := find(t, r, "driver flexblock/rbd"); !strings.Contains(c.Detail, "answers init") || strings.Contains(c.Detail, root) {
		t.Errorf("driver check shows %q (want the node path)", c.Detail)
	}
	out := table(r)
	if strings.Contains(out, "FAIL") || strings.Contains(out, "warn") || !strings.Contains(out, "rbd: READY") || !strings.Contains(out, "iscsi: READY") {
		t.Errorf("table:\n%s", out)
	}
	if r.PluginDir != installer.DefaultPluginDir {
		t.Errorf("plugin dir %s", r.PluginDir)
	}
}

func TestMissingToolFailsItsBackendWithTheFix(t *testing.T) {
	root := healthyRoot(t)
	must(t, os.Remove(filepath.Join(root, "usr/bin/rbd")))
	r := Run(Options{Root: root})
	c := find(t, r, "tool rbd")
	if c.Status != Fail || !strings.Contains(c.Fix, "apt-get install ceph-common") || !strings.Contains(c.Detail, "not found") {
		t.Errorf("tool rbd: %+v", c)
	}
	if r.OK || r.Backends["rbd"].Ready || !r.Backends["iscsi"].Ready {
		t.Errorf("verdicts: %+v", r.Backends)
	}
	if out := table(r); !strings.Contains(out, "rbd: NOT READY, fix: tool rbd") || !strings.Contains(out, "ceph-common") {
		t.Errorf("table:\n%s", out)
	}
	if !Run(Options{Root: root, Backends: []string{"iscsi"}}).OK {
		t.Error("an iSCSI-only node needs no rbd tool")
	}

	// A common tool fails both backends.
	must(t, os.Remove(filepath.Join(root, "usr/sbin/blkid")))
	r = Run(Options{Root: root})
	if r.Backends["iscsi"].Ready || find(t, r, "tool blkid").Fix == "" {
		t.Errorf("blkid missing: %+v", r.Backends)
	}

	// Not executable counts as missing; a dangling symlink too.
	root2 := healthyRoot(t)
	must(t, os.Chmod(filepath.Join(root2, "usr/sbin/iscsiadm"), 0o644))
	must(t, os.Remove(filepath.Join(root2, "sbin/mke2fs")))
	r = Run(Options{Root: root2})
	if find(t, r, "tool iscsiadm").Status != Fail || find(t, r, "tool mkfs.ext4").Status != Fail {
		t.Errorf("non-executable / dangling: %+v", r.Checks)
	}
}

func TestOptionalToolIsAWarning(t *testing.T) {
	root := healthyRoot(t)
	must(t, os.Remove(filepath.Join(root, "usr/sbin/mkfs.xfs")))
	must(t, os.Remove(filepath.Join(root, "usr/bin/nsenter")))
	r := Run(Options{Root: root})
	if c := find(t, r, "tool mkfs.xfs"); c.Status != Warn || c.Required || !strings.Contains(c.Detail, "fsType xfs") || !strings.Contains(c.Fix, "xfsprogs") {
		t.Errorf("mkfs.xfs: %+v", c)
	}
	if !r.OK {
		t.Errorf("optional tools made the node not ready: %+v", r.Backends)
	}
	// nsenter is required once the installed config asks for it.
	installDrivers(t, root, config.Config{Nsenter: true})
	r = Run(Options{Root: root})
	if c := find(t, r, "tool nsenter"); c.Status != Fail || !c.Required || r.OK {
		t.Errorf("nsenter with nsenter:true: %+v", c)
	}
}

func TestModules(t *testing.T) {
	root := healthyRoot(t)
	must(t, os.RemoveAll(filepath.Join(root, "sys/module/iscsi_tcp")))
	r := Run(Options{Root: root})
	c := find(t, r, "module iscsi_tcp")
	if c.Status != Fail || !strings.Contains(c.Detail, release) || !strings.Contains(c.Fix, "modprobe iscsi_tcp") {
		t.Errorf("missing module: %+v", c)
	}
	if r.Backends["iscsi"].Ready || !r.Backends["rbd"].Ready {
		t.Errorf("verdicts: %+v", r.Backends)
	}

	// Loadable: listed in modules.dep (compressed module).
	write(t, filepath.Join(root, "lib/modules", release, "modules.dep"),
		"kernel/drivers/scsi/libiscsi.ko.xz: kernel/drivers/scsi/scsi_transport_iscsi.ko.xz\n"+
			"kernel/drivers/scsi/iscsi_tcp.ko.zst: kernel/drivers/scsi/libiscsi_tcp.ko.zst kernel/drivers/scsi/libiscsi.ko.zst\n", 0o644)
	if c := find(t, Run(Options{Root: root}), "module iscsi_tcp"); c.Status != OK || !strings.Contains(c.Detail, "loadable") {
		t.Errorf("loadable: %+v", c)
	}

	// rbd not loaded: built in (usr/lib/modules); the features file is then only a warning.
	must(t, os.RemoveAll(filepath.Join(root, "sys/module/rbd")))
	must(t, os.RemoveAll(filepath.Join(root, "sys/bus/rbd")))
	r = Run(Options{Root: root})
	if c := find(t, r, "module rbd"); c.Status != Fail {
		t.Errorf("rbd missing: %+v", c)
	}
	write(t, filepath.Join(root, "usr/lib/modules", release, "modules.builtin"), "kernel/drivers/block/rbd.ko\n", 0o644)
	r = Run(Options{Root: root})
	if c := find(t, r, "module rbd"); c.Status != OK || !strings.Contains(c.Detail, "built into") {
		t.Errorf("builtin: %+v", c)
	}
	if c := find(t, r, "rbd supported_features"); c.Status != Warn || c.Required || !strings.Contains(c.Fix, "modprobe rbd") {
		t.Errorf("features without module: %+v", c)
	}
	if !r.Backends["rbd"].Ready {
		t.Errorf("rbd: %+v", r.Backends["rbd"])
	}
	// Module loaded but no features file: required.
	must(t, os.MkdirAll(filepath.Join(root, "sys/module/rbd"), 0o755))
	if c := find(t, Run(Options{Root: root}), "rbd supported_features"); c.Status != Fail || !c.Required {
		t.Errorf("features with module: %+v", c)
	}
}

func TestISCSIDaemonAndInitiatorName(t *testing.T) {
	root := healthyRoot(t)
	must(t, os.RemoveAll(filepath.Join(root, "proc/812")))
	must(t, os.WriteFile(filepath.Join(root, "etc/iscsi/initiatorname.iscsi"), []byte("GenerateName=yes\n#InitiatorName=iqn.x\n"), 0o644))
	r := Run(Options{Root: root})
	if c := find(t, r, "iscsid"); c.Status != Fail || !strings.Contains(c.Fix, "systemctl enable --now iscsid") {
		t.Errorf("iscsid: %+v", c)
	}
	if c := find(t, r, "initiator name"); c.Status != Fail || !strings.Contains(c.Fix, "iscsi-iname") {
		t.Errorf("initiator: %+v", c)
	}
	if r.Backends["iscsi"].Ready || !r.Backends["rbd"].Ready {
		t.Errorf("verdicts: %+v", r.Backends)
	}
	write(t, filepath.Join(root, "etc/systemd/system/sockets.target.wants/iscsid.socket"), "[Socket]\n", 0o644)
	must(t, os.Remove(filepath.Join(root, "etc/iscsi/initiatorname.iscsi")))
	r = Run(Options{Root: root})
	if c := find(t, r, "iscsid"); c.Status != OK || !strings.Contains(c.Detail, "socket-activated") {
		t.Errorf("socket activation: %+v", c)
	}
	if c := find(t, r, "initiator name"); c.Status != Fail || strings.Contains(c.Detail, root) {
		t.Errorf("missing file: %+v", c)
	}
}

func TestDirsAndDrivers(t *testing.T) {
	root := healthyRoot(t)
	// The plugin dir from a kubelet flag, not installed there yet.
	write(t, filepath.Join(root, "proc/900/cmdline"), "/usr/bin/kubelet\x00--volume-plugin-dir=/home/kubernetes/flexvolume\x00", 0o444)
	must(t, os.MkdirAll(filepath.Join(root, "home/kubernetes/flexvolume"), 0o755))
	r := Run(Options{Root: root})
	if r.PluginDir != "/home/kubernetes/flexvolume" || !strings.Contains(r.PluginDirFrom, "pid 900") {
		t.Errorf("plugin dir: %s (%s)", r.PluginDir, r.PluginDirFrom)
	}
	if c := find(t, r, "driver flexblock/rbd"); c.Status != Fail || !strings.Contains(c.Detail, "/home/kubernetes/flexvolume/flexblock~rbd/rbd is not installed") {
		t.Errorf("not installed: %+v", c)
	}
	// The explicit plugin dir wins.
	r = Run(Options{Root: root, PluginDir: installer.DefaultPluginDir})
	if !r.OK {
		t.Errorf("explicit dir: %s", table(r))
	}

	// A broken driver; a state dir that is a file; a missing log dir whose parent is writable.
	write(t, installer.DriverPath(filepath.Join(root, installer.DefaultPluginDir), "iscsi"), "#!/bin/sh\necho garbage\n", 0o755)
	write(t, filepath.Join(root, "run/flexblock"), "not a dir", 0o644)
	must(t, os.RemoveAll(filepath.Join(root, "var/log/flexblock")))
	r = Run(Options{Root: root, PluginDir: installer.DefaultPluginDir})
	if c := find(t, r, "driver flexblock/iscsi"); c.Status != Fail || !strings.Contains(c.Detail, "self-test failed") {
		t.Errorf("broken driver: %+v", c)
	}
	if c := find(t, r, "state dir"); c.Status != Fail || !strings.Contains(c.Detail, "not a directory") {
		t.Errorf("state dir: %+v", c)
	}
	if c := find(t, r, "log dir"); c.Status != OK || !strings.Contains(c.Detail, "creates it") {
		t.Errorf("log dir: %+v", c)
	}
	if r.Backends["rbd"].Ready || r.Backends["iscsi"].Ready {
		t.Errorf("verdicts: %+v", r.Backends)
	}
	// A broken config is reported with the file and the field.
	write(t, filepath.Join(installer.DriverDir(filepath.Join(root, installer.DefaultPluginDir), "rbd"), config.FileName), `{"atach": true}`, 0o644)
	r = Run(Options{Root: root, PluginDir: installer.DefaultPluginDir})
	if c := find(t, r, "config flexblock/rbd"); c.Status != Fail || !strings.Contains(c.Detail, "atach") {
		t.Errorf("bad config: %+v", c)
	}
}

// The CLI: exit codes, table and JSON.
func TestCLI(t *testing.T) {
	run := func(args ...string) (string, int) {
		out, code, err := testkit.RunCLI(bin, nil, args...)
		must(t, err)
		return out, code
	}
	root := healthyRoot(t)
	if out, code := run("doctor", "--root", root); code != 0 || !strings.Contains(out, "rbd: READY") {
		t.Fatalf("healthy: exit %d\n%s", code, out)
	}
	must(t, os.Remove(filepath.Join(root, "usr/sbin/iscsiadm")))
	out, code := run("doctor", "--root", root)
	if code == 0 || !strings.Contains(out, "open-iscsi") || !strings.Contains(out, "iscsi: NOT READY") {
		t.Fatalf("missing iscsiadm: exit %d\n%s", code, out)
	}
	if _, code := run("doctor", "--root", root, "--backend", "rbd"); code != 0 {
		t.Errorf("--backend rbd: exit %d", code)
	}
	if _, code := run("doctor", "--root", root, "--backend", "nfs"); code == 0 {
		t.Error("unknown backend accepted")
	}
	out, code = run("doctor", "--root", root, "--json")
	var rep Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code == 0 || rep.OK || rep.Backends["iscsi"].Ready || !rep.Backends["rbd"].Ready {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
}
