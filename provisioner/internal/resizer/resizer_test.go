package resizer

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/flexblock/flexblock/driver/logging"
	"github.com/flexblock/flexblock/provisioner/internal/fakerbd"
	"github.com/flexblock/flexblock/provisioner/internal/image"
	"github.com/flexblock/flexblock/provisioner/internal/params"
	"github.com/flexblock/flexblock/provisioner/internal/secrets"
)

const adminKey = "AQBm2gNrjMYiAxAAMe4LIOgL/nsS1N3rqZsrug=="

type fixture struct {
	r      *Resizer
	ceph   *fakerbd.Cluster
	client *fake.Clientset
	events *record.FakeRecorder
	log    *bytes.Buffer
	steps  []string // rbd verbs and API patches, in order
	pvc    *corev1.PersistentVolumeClaim
	pv     *corev1.PersistentVolume
	sc     *storagev1.StorageClass
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{ceph: fakerbd.New(adminKey), events: record.NewFakeRecorder(10), log: &bytes.Buffer{}}
	f.ceph.Images["kube/flexblock-pvc-1"] = &fakerbd.Image{Size: 1 << 30, Meta: map[string]string{image.StampKey: "pvc-1"}}
	f.ceph.OnCall = func(verb string) { f.steps = append(f.steps, "rbd "+verb) }
	ann := params.Record{Monitors: "10.0.0.1:6789", Pool: "kube", Image: "flexblock-pvc-1", User: "admin",
		Secret: params.SecretRef{Namespace: "flexblock", Name: "ceph-admin"}}.Annotations()
	ann[params.AnnProvisionedBy] = params.Provisioner
	gi := resource.MustParse("1Gi")
	f.pv = &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pvc-1", Annotations: ann},
		Spec: corev1.PersistentVolumeSpec{Capacity: corev1.ResourceList{corev1.ResourceStorage: gi},
			PersistentVolumeSource: corev1.PersistentVolumeSource{FlexVolume: &corev1.FlexPersistentVolumeSource{Driver: params.Driver}}}}
	scName := "rbd"
	f.pvc = &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "default"},
		Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pvc-1", StorageClassName: &scName,
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")}}},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, Capacity: corev1.ResourceList{corev1.ResourceStorage: gi}}}
	yes := true
	f.sc = &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "rbd"}, Provisioner: params.Provisioner, AllowVolumeExpansion: &yes}
	f.client = fake.NewClientset([]runtime.Object{f.pv, f.pvc, f.sc,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ceph-admin", Namespace: "flexblock"}, Data: map[string][]byte{"key": []byte(adminKey)}}}...)
	f.client.PrependReactor("patch", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.PatchAction)
		step := "patch " + p.GetResource().Resource
		if p.GetSubresource() != "" {
			step += "/" + p.GetSubresource()
		}
		f.steps = append(f.steps, step+" "+string(p.GetPatch()))
		return false, nil, nil
	})
	log := slog.New(slog.NewTextHandler(f.log, nil))
	f.r = &Resizer{Client: f.client, Tools: image.NewTools(f.ceph, &logging.Masker{}, log, t.TempDir()),
		Secrets: &secrets.Reader{Client: f.client}, Log: log, Events: f.events}
	t.Cleanup(func() {
		for _, p := range f.ceph.Problems {
			t.Error(p)
		}
		if strings.Contains(f.log.String(), adminKey) {
			t.Error("key in the log")
		}
	})
	return f
}

func (f *fixture) event() string {
	select {
	case e := <-f.events.Events:
		return e
	default:
		return ""
	}
}

// The three steps, in this order: the image, the PV, the claim's status.
func TestResizeStepsInOrder(t *testing.T) {
	f := newFixture(t)
	acted, err := f.r.Resize(context.Background(), f.pvc, f.pv, f.sc)
	if err != nil || !acted {
		t.Fatalf("Resize: %v %v", acted, err)
	}
	want := []string{
		"rbd info",
		"rbd resize",
		`patch persistentvolumes {"spec":{"capacity":{"storage":"2Gi"}}}`,
		`patch persistentvolumeclaims/status {"status":{"allocatedResourceStatuses":{"storage":"NodeResizePending"},"allocatedResources":{"storage":"2Gi"}}}`,
	}
	if !reflect.DeepEqual(f.steps, want) {
		t.Errorf("steps:\n got %q\nwant %q", f.steps, want)
	}
	if f.ceph.Images["kube/flexblock-pvc-1"].Size != 2<<30 {
		t.Errorf("image size %d", f.ceph.Images["kube/flexblock-pvc-1"].Size)
	}
	pvc, _ := f.client.CoreV1().PersistentVolumeClaims("default").Get(context.Background(), "data", metav1.GetOptions{})
	if q := pvc.Status.AllocatedResources[corev1.ResourceStorage]; q.String() != "2Gi" ||
		pvc.Status.AllocatedResourceStatuses[corev1.ResourceStorage] != corev1.PersistentVolumeClaimNodeResizePending {
		t.Errorf("claim status: %+v", pvc.Status)
	}
	pv, _ := f.client.CoreV1().PersistentVolumes().Get(context.Background(), "pvc-1", metav1.GetOptions{})
	if q := pv.Spec.Capacity[corev1.ResourceStorage]; q.String() != "2Gi" {
		t.Errorf("PV capacity %v", pv.Spec.Capacity)
	}
	if e := f.event(); !strings.HasPrefix(e, "Normal VolumeResizeSuccessful image grown to 2Gi") {
		t.Errorf("event %q", e)
	}

	// Once the claim says NodeResizePending for that size, it is kubelet's
	// turn: nothing more runs.
	f.steps = nil
	if acted, err := f.r.Resize(context.Background(), pvc, pv, f.sc); acted || err != nil || len(f.steps) != 0 {
		t.Errorf("second pass: %v %v %q", acted, err, f.steps)
	}
}

// kube-controller-manager's expand controller raises the PV's capacity
// and marks the claim NodeResizePending for a flexVolume PV without
// growing the image (seen on Kubernetes 1.34): the image is grown anyway,
// and nothing of what it did is patched again.
func TestResizeAfterControllerManagerMarkedTheClaim(t *testing.T) {
	f := newFixture(t)
	f.pv.Spec.Capacity[corev1.ResourceStorage] = resource.MustParse("2Gi")
	f.pvc.Status.AllocatedResources = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")}
	f.pvc.Status.AllocatedResourceStatuses = map[corev1.ResourceName]corev1.ClaimResourceStatus{
		corev1.ResourceStorage: corev1.PersistentVolumeClaimNodeResizePending}
	acted, err := f.r.Resize(context.Background(), f.pvc, f.pv, f.sc)
	if err != nil || !acted {
		t.Fatalf("Resize: %v %v", acted, err)
	}
	if want := []string{"rbd info", "rbd resize"}; !reflect.DeepEqual(f.steps, want) {
		t.Errorf("steps:\n got %q\nwant %q", f.steps, want)
	}
	if f.ceph.Images["kube/flexblock-pvc-1"].Size != 2<<30 {
		t.Errorf("image size %d", f.ceph.Images["kube/flexblock-pvc-1"].Size)
	}
	if e := f.event(); !strings.HasPrefix(e, "Normal VolumeResizeSuccessful image grown to 2Gi") {
		t.Errorf("event %q", e)
	}
	// kubelet's status updates meanwhile run nothing.
	f.steps = nil
	if acted, err := f.r.Resize(context.Background(), f.pvc, f.pv, f.sc); acted || err != nil || len(f.steps) != 0 {
		t.Errorf("second pass: %v %v %q", acted, err, f.steps)
	}
}

// A failure is an event on the claim and is retried; the retry does not
// grow the image twice.
func TestResizeFailureIsAnEventAndRetried(t *testing.T) {
	f := newFixture(t)
	f.client.PrependReactor("patch", "persistentvolumes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errTest
	})
	if _, err := f.r.Resize(context.Background(), f.pvc, f.pv, f.sc); err == nil {
		t.Fatal("no error")
	}
	if e := f.event(); !strings.HasPrefix(e, "Warning VolumeResizeFailed image kube/flexblock-pvc-1 grown to 2Gi, but patching PV pvc-1 capacity failed") {
		t.Errorf("event %q", e)
	}
	f.client.ReactionChain = f.client.ReactionChain[1:] // the API works again
	f.steps = nil
	if _, err := f.r.Resize(context.Background(), f.pvc, f.pv, f.sc); err != nil {
		t.Fatal(err)
	}
	for _, s := range f.steps {
		if s == "rbd resize" {
			t.Error("the image was resized again")
		}
	}
	if f.ceph.Images["kube/flexblock-pvc-1"].Size != 2<<30 {
		t.Errorf("size %d", f.ceph.Images["kube/flexblock-pvc-1"].Size)
	}
}

func TestResizeLeavesOtherClaimsAlone(t *testing.T) {
	f := newFixture(t)
	no := false
	noExpansion := f.sc.DeepCopy()
	noExpansion.AllowVolumeExpansion = &no
	if acted, _ := f.r.Resize(context.Background(), f.pvc, f.pv, noExpansion); acted || len(f.steps) != 0 {
		t.Errorf("resized without allowVolumeExpansion: %q", f.steps)
	}
	if e := f.event(); !strings.Contains(e, "set allowVolumeExpansion: true") {
		t.Errorf("event %q", e)
	}
	foreign := f.pv.DeepCopy()
	foreign.Annotations[params.AnnProvisionedBy] = "kubernetes.io/rbd"
	same := f.pvc.DeepCopy()
	same.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("1Gi")
	unbound := f.pvc.DeepCopy()
	unbound.Status.Phase = corev1.ClaimPending
	for _, c := range []struct {
		pvc *corev1.PersistentVolumeClaim
		pv  *corev1.PersistentVolume
	}{{f.pvc, foreign}, {same, f.pv}, {unbound, f.pv}} {
		if acted, err := f.r.Resize(context.Background(), c.pvc, c.pv, f.sc); acted || err != nil || len(f.steps) != 0 {
			t.Errorf("acted on %s/%s: %v %q", c.pvc.Name, c.pv.Name, err, f.steps)
		}
	}
}

var errTest = errors.New("injected API failure")
