package controller

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	lib "sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"

	"github.com/flexblock/flexblock/driver/logging"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/provisioner/internal/fakerbd"
	"github.com/flexblock/flexblock/provisioner/internal/image"
	"github.com/flexblock/flexblock/provisioner/internal/params"
	"github.com/flexblock/flexblock/provisioner/internal/secrets"
)

const adminKey = "AQBm2gNrjMYiAxAAMe4LIOgL/nsS1N3rqZsrug=="

type fixture struct {
	p      *Provisioner
	ceph   *fakerbd.Cluster
	log    *bytes.Buffer
	client *fake.Clientset
	state  string
	now    time.Time
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	f := &fixture{ceph: fakerbd.New(adminKey), log: &bytes.Buffer{}, state: t.TempDir(),
		now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	base := []runtime.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ceph-admin", Namespace: "flexblock"}, Type: params.Driver,
			Data: map[string][]byte{"key": []byte(adminKey + "\n")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ceph-secret", Namespace: "default"}, Type: params.Driver,
			Data: map[string][]byte{"key": []byte("AQBnodeKeyNodeKeyNodeKeyNodeKey000000==")}},
	}
	f.client = fake.NewClientset(append(base, objs...)...)
	log := slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mask := &logging.Masker{}
	f.p = &Provisioner{Tools: image.NewTools(f.ceph, mask, log, f.state), Secrets: &secrets.Reader{Client: f.client},
		Log: log, Now: func() time.Time { return f.now }}
	t.Cleanup(func() {
		for _, p := range f.ceph.Problems {
			t.Error(p)
		}
		if strings.Contains(f.log.String(), adminKey) {
			t.Errorf("the key is in the log:\n%s", f.log)
		}
		if ents, _ := os.ReadDir(filepath.Join(f.state, "keys")); len(ents) != 0 {
			t.Errorf("key files left: %v", ents)
		}
	})
	return f
}

func class(kv ...string) *storagev1.StorageClass {
	p := map[string]string{"monitors": "10.0.0.1:6789", "pool": "kube", "user": "kube",
		"provisionerSecretName": "ceph-admin", "provisionerSecretNamespace": "flexblock", "nodeSecretName": "ceph-secret",
		"nodeSecretNamespace": "default", "mountOptions": "noatime", "fsType": "xfs"}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	del := corev1.PersistentVolumeReclaimDelete
	return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "rbd"}, Provisioner: params.Provisioner,
		Parameters: p, ReclaimPolicy: &del}
}

func claim(size string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	if len(modes) == 0 {
		modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "default", UID: "1234"},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: modes,
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}}},
	}
}

const pvName = "pvc-1234"

func opts(sc *storagev1.StorageClass, pvc *corev1.PersistentVolumeClaim) lib.ProvisionOptions {
	return lib.ProvisionOptions{StorageClass: sc, PVName: pvName, PVC: pvc}
}

func TestProvisionMakesAStampedImageAndACompletePV(t *testing.T) {
	f := newFixture(t)
	pv, state, err := f.p.Provision(context.Background(), opts(class(), claim("1000Mi")))
	if err != nil || state != lib.ProvisioningFinished {
		t.Fatalf("Provision: %v %v", state, err)
	}
	img := f.ceph.Images["kube/flexblock-pvc-1234"]
	if img == nil || img.Size != 1000<<20 || img.Meta[image.StampKey] != pvName || !reflect.DeepEqual(img.Features, []string{"layering"}) {
		t.Fatalf("image: %+v (all: %v)", img, f.ceph.Images)
	}
	if len(f.ceph.Images) != 1 {
		t.Errorf("images left behind: %v", f.ceph.Images)
	}
	// Made under the temporary name, stamped, then renamed.
	want := []string{"info kube/flexblock-pvc-1234", "info kube/flexblock-pvc-1234.creating", "create kube/flexblock-pvc-1234.creating",
		"image-meta list kube/flexblock-pvc-1234.creating", "image-meta set kube/flexblock-pvc-1234.creating flexblock.io/provisioned-for pvc-1234",
		"rename kube/flexblock-pvc-1234.creating kube/flexblock-pvc-1234", "info kube/flexblock-pvc-1234", "image-meta list kube/flexblock-pvc-1234"}
	if got := f.ceph.Verbs(); !reflect.DeepEqual(got, want) {
		t.Errorf("rbd calls:\n got %q\nwant %q", got, want)
	}
	fv := pv.Spec.FlexVolume
	if fv == nil || fv.Driver != "flexblock/rbd" || fv.FSType != "xfs" || fv.SecretRef == nil || *fv.SecretRef != (corev1.SecretReference{Name: "ceph-secret", Namespace: "default"}) {
		t.Fatalf("flexVolume: %+v", fv)
	}
	wantOpts := map[string]string{"monitors": "10.0.0.1:6789", "pool": "kube", "image": "flexblock-pvc-1234", "user": "kube",
		"fsType": "xfs", "mountOptions": "noatime"}
	if !reflect.DeepEqual(fv.Options, wantOpts) {
		t.Errorf("options:\n got %v\nwant %v", fv.Options, wantOpts)
	}
	if len(pv.Spec.MountOptions) != 0 {
		t.Errorf("PV mountOptions set (kubelet refuses them for flex): %v", pv.Spec.MountOptions)
	}
	if q := pv.Spec.Capacity[corev1.ResourceStorage]; q.Value() != 1000<<20 || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete ||
		!reflect.DeepEqual(pv.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("spec: %+v", pv.Spec)
	}
	pv.Annotations[params.AnnProvisionedBy] = params.Provisioner // the library adds it
	if rec, ok := params.FromAnnotations(pv.Annotations); !ok || rec.Image != "flexblock-pvc-1234" || rec.Secret.Name != "ceph-admin" || rec.User != "admin" {
		t.Errorf("annotations: %v", pv.Annotations)
	}
	if err := params.CheckPV(fv.Options); err != nil {
		t.Errorf("the driver refuses the PV: %v", err)
	}
}

func TestProvisionRoundsUpToMiB(t *testing.T) {
	f := newFixture(t)
	pv, _, err := f.p.Provision(context.Background(), opts(class(), claim("1G"))) // 10^9 bytes
	if err != nil {
		t.Fatal(err)
	}
	want := int64(954 << 20) // 953.67 MiB rounded up
	if q := pv.Spec.Capacity[corev1.ResourceStorage]; q.Value() != want || f.ceph.Images["kube/flexblock-pvc-1234"].Size != want {
		t.Errorf("capacity %v, image %d, want %d", pv.Spec.Capacity, f.ceph.Images["kube/flexblock-pvc-1234"].Size, want)
	}
}

// A retried Provision (the first one's answer was lost) reuses the image
// it made; an image flexblock did not stamp for this PV is never adopted.
func TestProvisionIsIdempotentAndAdoptsNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, _, err := f.p.Provision(ctx, opts(class(), claim("1Gi"))); err != nil {
		t.Fatal(err)
	}
	n := len(f.ceph.Calls)
	if _, state, err := f.p.Provision(ctx, opts(class(), claim("1Gi"))); err != nil || state != lib.ProvisioningFinished {
		t.Fatalf("retry: %v %v", state, err)
	}
	for _, v := range f.ceph.Verbs()[n:] {
		if !strings.HasPrefix(v, "info ") && !strings.HasPrefix(v, "image-meta list ") {
			t.Errorf("the retry changed something: %s", v)
		}
	}

	for _, tc := range []struct {
		name  string
		meta  map[string]string
		size  int64
		wants string
	}{
		{"unstamped", map[string]string{}, 1 << 30, "flexblock did not make it"},
		{"another PV's", map[string]string{image.StampKey: "pvc-other"}, 1 << 30, "was made for PV pvc-other"},
		{"wrong size", map[string]string{image.StampKey: pvName}, 2 << 30, "has 2147483648 bytes, the claim asks for 1073741824"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.ceph.Images["kube/flexblock-pvc-1234"] = &fakerbd.Image{Size: tc.size, Meta: tc.meta}
			_, _, err := f.p.Provision(ctx, opts(class(), claim("1Gi")))
			if err == nil || !strings.Contains(err.Error(), tc.wants) {
				t.Fatalf("got %v, want %q", err, tc.wants)
			}
			if len(f.ceph.Images) != 1 || !reflect.DeepEqual(f.ceph.Images["kube/flexblock-pvc-1234"].Meta, tc.meta) {
				t.Errorf("the foreign image was touched: %v", f.ceph.Images)
			}
			for _, v := range f.ceph.Verbs() {
				if strings.HasPrefix(v, "create") || strings.HasPrefix(v, "image-meta set") || strings.HasPrefix(v, "rename") {
					t.Errorf("ran %s", v)
				}
			}
		})
	}
}

// A Provision killed after create, before the stamp: the retry finishes
// the job on the temporary image instead of refusing forever.
func TestProvisionFinishesAnInterruptedCreate(t *testing.T) {
	f := newFixture(t)
	f.ceph.Fail["image-meta set"] = &runner.ExitError{Cmd: "rbd image-meta set", Code: 110, Stderr: "rbd: timed out"}
	_, state, err := f.p.Provision(context.Background(), opts(class(), claim("1Gi")))
	if err == nil || state != lib.ProvisioningInBackground {
		t.Fatalf("first call: %v %v (a failure after rbd acted must keep the claim in progress)", state, err)
	}
	if f.ceph.Images["kube/flexblock-pvc-1234.creating"] == nil || f.ceph.Images["kube/flexblock-pvc-1234"] != nil {
		t.Fatalf("after the failed stamp: %v", f.ceph.Images)
	}
	if _, state, err := f.p.Provision(context.Background(), opts(class(), claim("1Gi"))); err != nil || state != lib.ProvisioningFinished {
		t.Fatalf("retry: %v %v", state, err)
	}
	if img := f.ceph.Images["kube/flexblock-pvc-1234"]; img == nil || img.Meta[image.StampKey] != pvName || len(f.ceph.Images) != 1 {
		t.Errorf("after the retry: %v", f.ceph.Images)
	}
}

// Refusals come before any rbd call, are final, and say what to fix.
func TestProvisionRefusals(t *testing.T) {
	block := corev1.PersistentVolumeBlock
	for _, tc := range []struct {
		name  string
		sc    *storagev1.StorageClass
		pvc   *corev1.PersistentVolumeClaim
		wants []string
	}{
		{"unknown parameter", class("adminSecretName", "x"), claim("1Gi"), []string{`StorageClass rbd: unknown parameter "adminSecretName"`, "known parameters:"}},
		{"bad feature", class("imageFeatures", "layering,journalling"), claim("1Gi"), []string{`"imageFeatures" has unknown feature "journalling"`, "use a comma-separated list of layering"}},
		{"RWX", class(), claim("1Gi", corev1.ReadWriteMany), []string{"asks for ReadWriteMany", "use ReadWriteOnce"}},
		{"RWOP", class(), claim("1Gi", corev1.ReadWriteOncePod), []string{"ReadWriteOncePod"}},
		{"Block", class(), func() *corev1.PersistentVolumeClaim { c := claim("1Gi"); c.Spec.VolumeMode = &block; return c }(), []string{"volumeMode Block", "remove volumeMode"}},
		{"no size", class(), func() *corev1.PersistentVolumeClaim { c := claim("1Gi"); c.Spec.Resources.Requests = nil; return c }(), []string{"requests no storage"}},
		{"dataSource", class(), func() *corev1.PersistentVolumeClaim {
			c := claim("1Gi")
			c.Spec.DataSource = &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: "x"}
			return c
		}(), []string{"dataSource"}},
		{"StorageClass mountOptions", func() *storagev1.StorageClass { c := class(); c.MountOptions = []string{"noatime"}; return c }(), claim("1Gi"),
			[]string{"sets mountOptions (noatime)", "the parameter mountOptions"}},
		{"no admin Secret", class("provisionerSecretName", "missing"), claim("1Gi"), []string{"provisioner Secret flexblock/missing does not exist"}},
		{"node Secret of the wrong type", class("nodeSecretName", "opaque"), claim("1Gi"), []string{`node Secret default/opaque has type "Opaque"`, "--type=flexblock/rbd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "opaque", Namespace: "default"}, Type: corev1.SecretTypeOpaque})
			pv, state, err := f.p.Provision(context.Background(), opts(tc.sc, tc.pvc))
			if err == nil || pv != nil {
				t.Fatalf("accepted: %v", pv)
			}
			if state != lib.ProvisioningFinished {
				t.Errorf("state %v, want Finished (nothing ran)", state)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
			if len(f.ceph.Calls) != 0 {
				t.Errorf("rbd ran: %v", f.ceph.Verbs())
			}
		})
	}
}

func provisioned(name string, ann map[string]string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
			FlexVolume: &corev1.FlexPersistentVolumeSource{Driver: params.Driver}}}}
}

func ourAnnotations(image string) map[string]string {
	a := params.Record{Monitors: "10.0.0.1:6789", Pool: "kube", Image: image, User: "admin",
		Secret: params.SecretRef{Namespace: "flexblock", Name: "ceph-admin"}}.Annotations()
	a[params.AnnProvisionedBy] = params.Provisioner
	return a
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	t.Run("removes the stamped image", func(t *testing.T) {
		f := newFixture(t)
		f.ceph.Images["kube/flexblock-pvc-1"] = &fakerbd.Image{Size: 1 << 30, Meta: map[string]string{image.StampKey: "pvc-1"}}
		if err := f.p.Delete(ctx, provisioned("pvc-1", ourAnnotations("flexblock-pvc-1"))); err != nil {
			t.Fatal(err)
		}
		if len(f.ceph.Images) != 0 || !contains(f.ceph.Verbs(), "rm kube/flexblock-pvc-1") {
			t.Errorf("images %v, calls %v", f.ceph.Images, f.ceph.Verbs())
		}
	})
	t.Run("trash with a delay", func(t *testing.T) {
		f := newFixture(t)
		f.p.TrashDelay = 48 * time.Hour
		f.ceph.Images["kube/flexblock-pvc-1"] = &fakerbd.Image{Size: 1 << 30, Meta: map[string]string{image.StampKey: "pvc-1"}}
		if err := f.p.Delete(ctx, provisioned("pvc-1", ourAnnotations("flexblock-pvc-1"))); err != nil {
			t.Fatal(err)
		}
		last := f.ceph.Calls[len(f.ceph.Calls)-1]
		if !strings.HasPrefix(last.String(), "rbd trash mv kube/flexblock-pvc-1 --expires-at 2026-03-03 12:00:00 ") {
			t.Errorf("last call %s", last)
		}
	})
	t.Run("refused while watched", func(t *testing.T) {
		f := newFixture(t)
		f.ceph.Images["kube/flexblock-pvc-1"] = &fakerbd.Image{Size: 1 << 30, Meta: map[string]string{image.StampKey: "pvc-1"},
			Watchers: []string{"10.0.0.7:0/123456"}}
		err := f.p.Delete(ctx, provisioned("pvc-1", ourAnnotations("flexblock-pvc-1")))
		if err == nil || !strings.Contains(err.Error(), "still open by 10.0.0.7:0/123456") || !strings.Contains(err.Error(), "rbd unmap") {
			t.Fatalf("got %v", err)
		}
		if f.ceph.Images["kube/flexblock-pvc-1"] == nil {
			t.Error("a watched image was removed")
		}
		for _, v := range f.ceph.Verbs() {
			if strings.HasPrefix(v, "rm") || strings.HasPrefix(v, "trash") {
				t.Errorf("ran %s", v)
			}
		}
	})
	t.Run("refused for an image stamped for another PV", func(t *testing.T) {
		f := newFixture(t)
		f.ceph.Images["kube/flexblock-pvc-1"] = &fakerbd.Image{Size: 1 << 30, Meta: map[string]string{image.StampKey: "pvc-2"}}
		err := f.p.Delete(ctx, provisioned("pvc-1", ourAnnotations("flexblock-pvc-1")))
		if err == nil || !strings.Contains(err.Error(), `stamp is "pvc-2", not this PV pvc-1`) || f.ceph.Images["kube/flexblock-pvc-1"] == nil {
			t.Fatalf("got %v, images %v", err, f.ceph.Images)
		}
	})
	t.Run("an image already gone is success", func(t *testing.T) {
		f := newFixture(t)
		if err := f.p.Delete(ctx, provisioned("pvc-1", ourAnnotations("flexblock-pvc-1"))); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("foreign PVs are ignored", func(t *testing.T) {
		other := ourAnnotations("x")
		other[params.AnnProvisionedBy] = "kubernetes.io/rbd"
		hand := provisioned("pv-hand", nil)
		notFlex := provisioned("pvc-9", ourAnnotations("flexblock-pvc-9"))
		notFlex.Spec.FlexVolume = nil
		for _, pv := range []*corev1.PersistentVolume{hand, provisioned("pvc-8", other), notFlex} {
			f := newFixture(t)
			f.ceph.Images["kube/x"] = &fakerbd.Image{Size: 1 << 30, Meta: map[string]string{}}
			err := f.p.Delete(ctx, pv)
			var ign *lib.IgnoredError
			if !errors.As(err, &ign) {
				t.Errorf("%s: got %v, want IgnoredError", pv.Name, err)
			}
			if len(f.ceph.Calls) != 0 {
				t.Errorf("%s: rbd ran: %v", pv.Name, f.ceph.Verbs())
			}
		}
	})
}

// Whatever rbd prints, the key never reaches an error (an event) or a log
// line; it goes to rbd only in the 0600 keyfile (fakerbd checks), which is
// gone afterwards (the fixture checks).
func TestSecretsNeverInErrorsOrLogs(t *testing.T) {
	f := newFixture(t)
	f.ceph.Fail["create"] = &runner.ExitError{Cmd: "rbd create", Code: 1, Stderr: "rbd: bad key " + adminKey}
	_, _, err := f.p.Provision(context.Background(), opts(class(), claim("1Gi")))
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), adminKey) || !strings.Contains(err.Error(), "bad key ***") {
		t.Errorf("error: %v", err)
	}
	// A malformed key: refused without being shown.
	bad := "not a key, but a secret all the same"
	f2 := newFixture(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "flexblock"}, Data: map[string][]byte{"key": []byte(bad)}})
	_, _, err = f2.p.Provision(context.Background(), opts(class("provisionerSecretName", "bad"), claim("1Gi")))
	if err == nil || strings.Contains(err.Error(), bad) || strings.Contains(f2.log.String(), bad) || !strings.Contains(err.Error(), "is not a cephx key") {
		t.Errorf("malformed key: %v\n%s", err, f2.log)
	}
	if len(f.ceph.Calls) == 0 || len(f2.ceph.Calls) != 0 {
		t.Errorf("calls: %d, %d", len(f.ceph.Calls), len(f2.ceph.Calls))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
