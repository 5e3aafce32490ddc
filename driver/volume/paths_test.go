package volume

import (
	"strings"
	"testing"
)

func TestPodDir(t *testing.T) {
	ok := map[string]string{
		"/var/lib/kubelet/pods/1b2c-3d/volumes/flexblock~rbd/data":                      "/var/lib/kubelet",
		"/var/snap/microk8s/common/var/lib/kubelet/pods/u/volumes/flexblock~rbd/pv-1.x": "/var/snap/microk8s/common/var/lib/kubelet",
	}
	for p, root := range ok {
		got, err := PodDir(p, "rbd", "")
		if err != nil || got != root {
			t.Errorf("PodDir(%q) = %q, %v", p, got, err)
		}
	}
	bad := map[string]string{
		"/var/lib/kubelet/pods/u/volumes/flexblock~iscsi/data":       "not of the form",
		"/var/lib/kubelet/pods/u/volumes/flexblock~rbd/../../../etc": "clean",
		"/var/lib/kubelet/pods/../volumes/flexblock~rbd/x":           "clean",
		"relative/pods/u/volumes/flexblock~rbd/x":                    "not of the form",
		"/etc": "not of the form",
		"/var/lib/kubelet/pods/u/volumes/flexblock~rbd/a;rm -rf": "not of the form",
		"/var/lib/kubelet/pods/u/volumes/flexblock~rbd/x/":       "clean",
		"/var/lib/kubelet/pods/u/volumes/flexblock~rbd/.x":       "not of the form",
		"/var/lib/kubelet/pods/u/volumes/flexblock~rbd/x\n":      "not of the form",
	}
	for p, want := range bad {
		if _, err := PodDir(p, "rbd", ""); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("PodDir(%q) = %v, want %q", p, err, want)
		}
	}
	if _, err := PodDir("/tmp/k/pods/u/volumes/flexblock~rbd/x", "rbd", "/var/lib/kubelet"); err == nil || !strings.Contains(err.Error(), "outside the kubelet root") {
		t.Errorf("root not enforced: %v", err)
	}
}

func TestDeviceMountPath(t *testing.T) {
	root, err := DeviceMountPath("/var/lib/kubelet/plugins/kubernetes.io/flexvolume/flexblock/iscsi/mounts/pv-1", "iscsi", "")
	if err != nil || root != "/var/lib/kubelet" {
		t.Fatalf("%q %v", root, err)
	}
	for _, p := range []string{
		"/var/lib/kubelet/plugins/kubernetes.io/flexvolume/flexblock/rbd/mounts/pv-1",
		"/var/lib/kubelet/plugins/kubernetes.io/flexvolume/flexblock/iscsi/mounts/..",
		"/var/lib/kubelet/plugins/kubernetes.io/flexvolume/other/iscsi/mounts/pv",
	} {
		if _, err := DeviceMountPath(p, "iscsi", ""); err == nil {
			t.Errorf("accepted %q", p)
		}
	}
}
