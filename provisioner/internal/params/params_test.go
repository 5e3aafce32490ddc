package params

import (
	"reflect"
	"strings"
	"testing"
)

func good() map[string]string {
	return map[string]string{
		"monitors": "10.0.0.1:6789,10.0.0.2", "pool": "kube", "user": "kube",
		"provisionerSecretName": "ceph-admin", "provisionerSecretNamespace": "flexblock",
		"nodeSecretName": "ceph-secret", "nodeSecretNamespace": "default",
	}
}

func with(kv ...string) map[string]string {
	p := good()
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "<delete>" {
			delete(p, kv[i])
			continue
		}
		p[kv[i]] = kv[i+1]
	}
	return p
}

func TestParseGood(t *testing.T) {
	c, err := Parse(with("fsType", "xfs", "mountOptions", "noatime,discard", "mkfsOptions", "-L data",
		"mapOptions", "queue_depth=128", "imageFeatures", "layering,exclusive-lock", "radosNamespace", "team-a",
		"dataPool", "ec-data", "imageNamePrefix", "k8s-"), "apps")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Features, []string{"layering", "exclusive-lock"}) || c.DataPool != "ec-data" || c.ProvisionerUser != "admin" {
		t.Errorf("class: %+v", c)
	}
	got := c.PVOptions("k8s-pvc-1")
	want := map[string]string{"monitors": "10.0.0.1:6789,10.0.0.2", "pool": "kube", "radosNamespace": "team-a",
		"image": "k8s-pvc-1", "user": "kube", "fsType": "xfs", "mountOptions": "noatime,discard",
		"mkfsOptions": "-L data", "mapOptions": "queue_depth=128"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PV options:\n got %v\nwant %v", got, want)
	}
	if err := CheckPV(got); err != nil {
		t.Errorf("the driver refuses the PV's options: %v", err)
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse(with("pool", "<delete>", "user", "<delete>", "nodeSecretNamespace", "<delete>"), "apps")
	if err != nil {
		t.Fatal(err)
	}
	if c.Pool != "rbd" || c.User != "admin" || c.FSType != "ext4" || c.Prefix != DefaultPrefix ||
		!reflect.DeepEqual(c.Features, []string{"layering"}) || c.NodeSecret != (SecretRef{"apps", "ceph-secret"}) {
		t.Errorf("defaults: %+v", c)
	}
}

// Every refusal names the parameter and says what to fix; the texts come
// from the driver's own parsers where it has one.
func TestParseRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params map[string]string
		want   []string
	}{
		{"unknown parameter", with("adminId", "admin", "imageFormat", "2"),
			[]string{`unknown parameters "adminId", "imageFormat"`, "known parameters: dataPool, fsType"}},
		{"case variant is unknown too", with("FSType", "xfs"), []string{`unknown parameter "FSType"`}},
		{"bad feature", with("imageFeatures", "layering,stripping"),
			[]string{`parameter "imageFeatures" has unknown feature "stripping"`, "layering alone maps on every kernel"}},
		{"feature dependency", with("imageFeatures", "layering,object-map"),
			[]string{`"imageFeatures" has object-map, which needs exclusive-lock: add exclusive-lock`}},
		{"no monitors", with("monitors", "<delete>"), []string{`parameter "monitors" is missing`}},
		{"bad monitor", with("monitors", "10.0.0.1:99999"), []string{`parameter "monitors" has an invalid port`}},
		{"bad fsType", with("fsType", "ntfs"), []string{`parameter "fsType" is "ntfs"`, "use one of"}},
		{"mount option for another fs", with("fsType", "ext4", "mountOptions", "inode64"),
			[]string{`parameter "mountOptions" item "inode64"`}},
		{"unsafe mount option", with("mountOptions", "suid"), []string{`parameter "mountOptions"`}},
		{"mkfs flag refused", with("mkfsOptions", "-d /etc"), []string{`parameter "mkfsOptions"`}},
		{"map option refused", with("mapOptions", "secret=abc"), []string{`parameter "mapOptions" has "secret=..."`}},
		{"bad pool", with("pool", "../etc"), []string{`parameter "pool"`, "letters, digits"}},
		{"bad prefix", with("imageNamePrefix", "a/b"), []string{`parameter "imageNamePrefix"`}},
		{"no provisioner secret", with("provisionerSecretName", "<delete>"), []string{`parameter "provisionerSecretName" is missing`}},
		{"no provisioner secret namespace", with("provisionerSecretNamespace", "<delete>"), []string{`parameter "provisionerSecretNamespace" is missing`}},
		{"no node secret", with("nodeSecretName", "<delete>"), []string{`parameter "nodeSecretName" is missing`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.params, "apps")
			if err == nil {
				t.Fatalf("accepted %v", tc.params)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestRecordRoundTrip(t *testing.T) {
	c, err := Parse(with("radosNamespace", "ns1"), "apps")
	if err != nil {
		t.Fatal(err)
	}
	a := c.Record("flexblock-pvc-1").Annotations()
	if _, ok := FromAnnotations(a); ok {
		t.Error("a PV without the library's provisioned-by annotation is taken for ours")
	}
	a[AnnProvisionedBy] = Provisioner
	r, ok := FromAnnotations(a)
	if !ok || r != c.Record("flexblock-pvc-1") {
		t.Errorf("round trip: %+v %v", r, ok)
	}
	a[AnnProvisionedBy] = "kubernetes.io/rbd"
	if _, ok := FromAnnotations(a); ok {
		t.Error("another provisioner's PV is taken for ours")
	}
	a[AnnProvisionedBy] = Provisioner
	delete(a, AnnSecretName)
	if _, ok := FromAnnotations(a); ok {
		t.Error("an incomplete record is taken for ours")
	}
}
