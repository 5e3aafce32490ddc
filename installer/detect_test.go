package installer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeProc builds a proc root with the given pid -> argv.
func fakeProc(t *testing.T, procs map[string][]string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "proc")
	for pid, argv := range procs {
		dir := filepath.Join(root, pid)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmdline := strings.Join(argv, "\x00") + "\x00"
		if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte(cmdline), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Entries that are not processes are ignored.
	_ = os.MkdirAll(filepath.Join(root, "sys"), 0o755)
	_ = os.WriteFile(filepath.Join(root, "cmdline"), []byte("BOOT_IMAGE=/vmlinuz"), 0o644)
	return root
}

func writeFile(t *testing.T, p, s string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDetectFromKubeletFlag(t *testing.T) {
	for _, tc := range []struct {
		name string
		argv []string
		want string
	}{
		{"equals", []string{"/usr/bin/kubelet", "--v=2", "--volume-plugin-dir=/home/kubernetes/flexvolume", "--node-ip=10.0.0.1"}, "/home/kubernetes/flexvolume"},
		{"separate value", []string{"kubelet", "--volume-plugin-dir", "/etc/kubernetes/volumeplugins"}, "/etc/kubernetes/volumeplugins"},
		{"last wins", []string{"kubelet", "--volume-plugin-dir=/a", "--volume-plugin-dir=/var/lib/kubelet/volumeplugins"}, "/var/lib/kubelet/volumeplugins"},
		{"hyperkube", []string{"/hyperkube", "kubelet", "--volume-plugin-dir=/var/lib/kubelet/volumeplugins"}, "/var/lib/kubelet/volumeplugins"},
		{"no flag", []string{"/usr/bin/kubelet", "--v=2"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := fakeProc(t, map[string][]string{
				"1":    {"/sbin/init"},
				"42":   {"/usr/bin/containerd"},
				"1234": tc.argv,
				"100":  {"/usr/bin/bash", "-c", "kubelet --volume-plugin-dir=/wrong"},
			})
			d := Detect(proc, "/")
			if d.KubeletPID != 1234 || d.PluginDir != tc.want {
				t.Fatalf("got %+v, want pid 1234 dir %q", d, tc.want)
			}
			if tc.want != "" && !strings.Contains(d.From, "--volume-plugin-dir") {
				t.Errorf("From: %q", d.From)
			}
		})
	}
}

func TestDetectFromKubeletConfigFile(t *testing.T) {
	fsRoot := t.TempDir()
	writeFile(t, filepath.Join(fsRoot, "etc/kubernetes/kubelet.conf"), `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# volumePluginDir: /commented/out
cgroupDriver: systemd
volumePluginDir: /etc/kubernetes/kubelet-plugins/volume/exec
`)
	proc := fakeProc(t, map[string][]string{"77": {"/usr/bin/kubelet", "--config=/etc/kubernetes/kubelet.conf"}})
	d := Detect(proc, fsRoot)
	if d.PluginDir != "/etc/kubernetes/kubelet-plugins/volume/exec" || !strings.Contains(d.From, "config file /etc/kubernetes/kubelet.conf") {
		t.Fatalf("got %+v", d)
	}

	// JSON config, quoted, and read through the kubelet's own root.
	proc2 := fakeProc(t, map[string][]string{"88": {"kubelet", "--config", "/var/lib/kubelet/config.json"}})
	writeFile(t, filepath.Join(proc2, "88/root/var/lib/kubelet/config.json"), `{"kind":"KubeletConfiguration","volumePluginDir": "/var/lib/kubelet/volumeplugins","port":10250}`)
	if d := Detect(proc2, t.TempDir()); d.PluginDir != "/var/lib/kubelet/volumeplugins" {
		t.Fatalf("json config: %+v", d)
	}

	// The flag wins over the config file.
	proc3 := fakeProc(t, map[string][]string{"99": {"kubelet", "--config=/etc/kubernetes/kubelet.conf", "--volume-plugin-dir=/flag/dir"}})
	if d := Detect(proc3, fsRoot); d.PluginDir != "/flag/dir" {
		t.Fatalf("flag over config: %+v", d)
	}

	// Drop-ins win over the config file; the last in lexical order wins.
	writeFile(t, filepath.Join(fsRoot, "etc/kubernetes/kubelet.conf.d/10-a.conf"), "volumePluginDir: /dropin/a\n")
	writeFile(t, filepath.Join(fsRoot, "etc/kubernetes/kubelet.conf.d/20-b.conf"), "volumePluginDir: '/dropin/b'\n")
	writeFile(t, filepath.Join(fsRoot, "etc/kubernetes/kubelet.conf.d/30-c.conf"), "maxPods: 200\n")
	proc4 := fakeProc(t, map[string][]string{"5": {"kubelet", "--config=/etc/kubernetes/kubelet.conf", "--config-dir=/etc/kubernetes/kubelet.conf.d"}})
	if d := Detect(proc4, fsRoot); d.PluginDir != "/dropin/b" {
		t.Fatalf("drop-ins: %+v", d)
	}

	// Config without the key: default; unreadable config: a warning.
	writeFile(t, filepath.Join(fsRoot, "plain.yaml"), "kind: KubeletConfiguration\n")
	proc5 := fakeProc(t, map[string][]string{"6": {"kubelet", "--config=/plain.yaml"}})
	if d := Detect(proc5, fsRoot); d.PluginDir != "" || d.KubeletPID != 6 || len(d.Warnings) != 0 {
		t.Fatalf("no key: %+v", d)
	}
	proc6 := fakeProc(t, map[string][]string{"7": {"kubelet", "--config=/missing.yaml"}})
	if d := Detect(proc6, fsRoot); d.PluginDir != "" || len(d.Warnings) != 1 || !strings.Contains(d.Warnings[0], "--plugin-dir") {
		t.Fatalf("unreadable config: %+v", d)
	}
}

func TestResolvePluginDir(t *testing.T) {
	none := fakeProc(t, map[string][]string{"1": {"/sbin/init"}})
	r, err := ResolvePluginDir("", none)
	if err != nil || r.Dir != DefaultPluginDir || r.FromKubelet {
		t.Fatalf("no kubelet: %+v %v", r, err)
	}
	if r, _ := ResolvePluginDir("", filepath.Join(t.TempDir(), "no-proc")); r.Dir != DefaultPluginDir {
		t.Fatalf("no proc root: %+v", r)
	}

	kube := fakeProc(t, map[string][]string{"10": {"kubelet", "--volume-plugin-dir=/home/kubernetes/flexvolume/"}})
	r, err = ResolvePluginDir("", kube)
	if err != nil || r.Dir != "/home/kubernetes/flexvolume" || !r.FromKubelet {
		t.Fatalf("kubelet flag: %+v %v", r, err)
	}
	r, err = ResolvePluginDir("/usr/libexec/kubernetes/kubelet-plugins/volume/exec", kube)
	if err != nil || r.Dir != DefaultPluginDir || r.FromKubelet || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "will not see") {
		t.Fatalf("explicit mismatch: %+v %v", r, err)
	}
	plain := fakeProc(t, map[string][]string{"11": {"kubelet"}})
	if r, _ := ResolvePluginDir("", plain); r.Dir != DefaultPluginDir || !r.FromKubelet {
		t.Fatalf("kubelet without flag: %+v", r)
	}
	rel := fakeProc(t, map[string][]string{"12": {"kubelet", "--volume-plugin-dir=plugins"}})
	if _, err := ResolvePluginDir("", rel); err == nil {
		t.Fatal("relative kubelet dir accepted")
	}
}

// The kubelet root is read from --root-dir (both spellings), else the
// default; the installer writes it as kubeletRoot, so the driver accepts
// no other root by default.
func TestDetectKubeletRoot(t *testing.T) {
	for argv, want := range map[string]string{
		"/usr/bin/kubelet --root-dir=/data/kubelet/": "/data/kubelet",
		"/usr/bin/kubelet --root-dir /srv/k":         "/srv/k",
		"/usr/bin/kubelet --v=2":                     DefaultKubeletRoot,
	} {
		d := Detect(fakeProc(t, map[string][]string{"42": strings.Fields(argv)}), t.TempDir())
		if d.KubeletPID != 42 || d.RootDir != want {
			t.Errorf("%s: %+v", argv, d)
		}
	}
	if d := Detect(fakeProc(t, map[string][]string{"7": {"/bin/sh"}}), t.TempDir()); d.RootDir != "" {
		t.Errorf("no kubelet: %+v", d)
	}
}
