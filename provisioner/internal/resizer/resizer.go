// Package resizer grows the images of flexblock.io/rbd claims whose size
// was raised. kube-controller-manager has no expander for flexVolume PVs
// (it would need the driver installed on the control plane), so for the
// PVs this provisioner made it plays the external resizer's part, in the
// three steps that make kubelet call the driver's expandfs on the node:
//
//  1. rbd resize the image to the new size (MiB),
//  2. patch the PV's spec.capacity.storage,
//  3. patch the claim's status: allocatedResources.storage = new size and
//     allocatedResourceStatuses.storage = NodeResizePending.
//
// kubelet then grows the filesystem (expandfs) and sets the claim's
// status.capacity, which ends the resize.
//
// kube-controller-manager's expand controller may do steps 2 and 3 itself
// for a flexVolume PV (it does on Kubernetes 1.34: PV capacity, the
// pre-resize-capacity annotation, NodeResizePending) without growing the
// image. So a claim marked NodeResizePending is not taken as proof that
// the image was grown: until the claim's capacity reaches its request, the
// image's real size decides (once per claim and size).
package resizer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/flexblock/flexblock/provisioner/internal/image"
	"github.com/flexblock/flexblock/provisioner/internal/params"
	"github.com/flexblock/flexblock/provisioner/internal/secrets"
)

// Resizer watches claims and grows the images of this provisioner's PVs.
type Resizer struct {
	Client  kubernetes.Interface
	Tools   *image.Tools
	Secrets *secrets.Reader
	Log     *slog.Logger
	Events  record.EventRecorder

	pvcs    corelisters.PersistentVolumeClaimLister
	pvs     corelisters.PersistentVolumeLister
	classes storagelisters.StorageClassLister
	synced  []cache.InformerSynced
	queue   workqueue.TypedRateLimitingInterface[string]

	// grown remembers, per claim UID, the size its image was seen to
	// have (or was grown to), so kubelet's status updates during its turn
	// do not run rbd again.
	mu    sync.Mutex
	grown map[types.UID]int64
}

// Watch registers the resizer's informers with factory (start the factory
// after this) and returns r ready to Run.
func (r *Resizer) Watch(factory informers.SharedInformerFactory) (*Resizer, error) {
	pvcInf := factory.Core().V1().PersistentVolumeClaims()
	pvInf := factory.Core().V1().PersistentVolumes()
	scInf := factory.Storage().V1().StorageClasses()
	r.pvcs, r.pvs, r.classes = pvcInf.Lister(), pvInf.Lister(), scInf.Lister()
	r.synced = []cache.InformerSynced{pvcInf.Informer().HasSynced, pvInf.Informer().HasSynced, scInf.Informer().HasSynced}
	r.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](5*time.Second, 5*time.Minute),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "flexblock-resize"})
	enqueue := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			r.queue.Add(key)
		}
	}
	_, err := pvcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("resizer: watch claims: %w", err)
	}
	return r, nil
}

// Run works the queue until ctx ends.
func (r *Resizer) Run(ctx context.Context) {
	defer r.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), r.synced...) {
		return
	}
	r.Log.Info("resizer started")
	go func() {
		<-ctx.Done()
		r.queue.ShutDown()
	}()
	for r.next(ctx) {
	}
}

func (r *Resizer) next(ctx context.Context) bool {
	key, quit := r.queue.Get()
	if quit {
		return false
	}
	defer r.queue.Done(key)
	if err := r.sync(ctx, key); err != nil {
		r.queue.AddRateLimited(key)
		return true
	}
	r.queue.Forget(key)
	return true
}

func (r *Resizer) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pvc, err := r.pvcs.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if pvc.Spec.VolumeName == "" {
		return nil
	}
	pv, err := r.pvs.Get(pvc.Spec.VolumeName)
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	var sc *storagev1.StorageClass
	if pvc.Spec.StorageClassName != nil && *pvc.Spec.StorageClassName != "" {
		if sc, err = r.classes.Get(*pvc.Spec.StorageClassName); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	_, err = r.Resize(ctx, pvc, pv, sc)
	return err
}

// Resize runs the three steps when the claim asks for more than it has.
// It reports whether it acted. Failures are events on the claim.
func (r *Resizer) Resize(ctx context.Context, pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume, sc *storagev1.StorageClass) (bool, error) {
	size, ok := Wanted(pvc, pv)
	if !ok {
		return false, nil
	}
	if sc == nil || sc.AllowVolumeExpansion == nil || !*sc.AllowVolumeExpansion {
		r.Events.Eventf(pvc, corev1.EventTypeWarning, "VolumeResizeFailed",
			"claim asks for %s but its StorageClass does not allow expansion: set allowVolumeExpansion: true on the StorageClass", quantity(size))
		return false, nil
	}
	if r.seen(pvc.UID) >= size {
		return false, nil
	}
	acted, err := r.resize(ctx, pvc, pv, size)
	if err != nil {
		err = r.Tools.Mask(err)
		r.Log.Warn("resize failed", "claim", pvc.Namespace+"/"+pvc.Name, "pv", pv.Name, "error", err.Error())
		r.Events.Eventf(pvc, corev1.EventTypeWarning, "VolumeResizeFailed", "%v", err)
		return true, err
	}
	r.remember(pvc.UID, size)
	if !acted {
		return false, nil
	}
	r.Log.Info("resized", "claim", pvc.Namespace+"/"+pvc.Name, "pv", pv.Name, "bytes", size)
	r.Events.Eventf(pvc, corev1.EventTypeNormal, "VolumeResizeSuccessful",
		"image grown to %s; kubelet grows the filesystem on the node that mounts the claim (driver call expandfs)", quantity(size))
	return true, nil
}

func (r *Resizer) seen(uid types.UID) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.grown[uid]
}

func (r *Resizer) remember(uid types.UID, size int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.grown == nil {
		r.grown = map[types.UID]int64{}
	}
	r.grown[uid] = size
}

// Wanted is the size (rounded up to MiB) a bound claim of one of our PVs
// asks for beyond its capacity; ok is false when there is nothing to do.
// A claim already marked NodeResizePending still counts: whoever marked
// it (kube-controller-manager does) may not have grown the image.
func Wanted(pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume) (int64, bool) {
	if _, ours := params.FromAnnotations(pv.Annotations); !ours || pv.Spec.FlexVolume == nil {
		return 0, false
	}
	if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName != pv.Name {
		return 0, false
	}
	req, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok {
		return 0, false
	}
	capacity := pvc.Status.Capacity[corev1.ResourceStorage]
	if req.Cmp(capacity) <= 0 {
		return 0, false
	}
	return image.RoundMiB(req.Value()), true
}

// nodesTurn: the claim's status already hands size to kubelet.
func nodesTurn(pvc *corev1.PersistentVolumeClaim, size int64) bool {
	alloc, ok := pvc.Status.AllocatedResources[corev1.ResourceStorage]
	if !ok || alloc.Value() < size {
		return false
	}
	status := pvc.Status.AllocatedResourceStatuses[corev1.ResourceStorage]
	return status == corev1.PersistentVolumeClaimNodeResizePending || status == corev1.PersistentVolumeClaimNodeResizeInProgress
}

// resize runs the steps still to do; acted tells whether any ran.
func (r *Resizer) resize(ctx context.Context, pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume, size int64) (acted bool, err error) {
	rec, _ := params.FromAnnotations(pv.Annotations)
	key, err := r.Secrets.Key(ctx, rec.Secret)
	if err != nil {
		return false, err
	}
	v, err := rec.Admin(key)
	if err != nil {
		return false, fmt.Errorf("PV %s annotations: %w", pv.Name, err)
	}
	img := r.Tools.Open(v)
	// 1. the image (skipped when a previous attempt already grew it).
	info, err := img.Info(ctx)
	if errors.Is(err, image.ErrNotFound) {
		return false, fmt.Errorf("image %s of PV %s does not exist: the volume's data is gone; restore the image or delete the claim", img.Spec(), pv.Name)
	} else if err != nil {
		return false, err
	}
	if info.Size < size {
		if err := img.Resize(ctx, size); err != nil {
			return false, err
		}
		acted = true
	}
	q := quantity(size)
	// 2. the PV's capacity.
	if c := pv.Spec.Capacity[corev1.ResourceStorage]; c.Value() < size {
		patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"capacity": map[string]string{"storage": q}}})
		if _, err := r.Client.CoreV1().PersistentVolumes().Patch(ctx, pv.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return acted, fmt.Errorf("image %s grown to %s, but patching PV %s capacity failed (retried): %w", img.Spec(), q, pv.Name, err)
		}
		acted = true
	}
	// 3. the claim's status: kubelet's cue to call expandfs (unless it
	// already says so).
	if nodesTurn(pvc, size) {
		return acted, nil
	}
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{
		"allocatedResources":        map[string]string{"storage": q},
		"allocatedResourceStatuses": map[string]string{"storage": string(corev1.PersistentVolumeClaimNodeResizePending)},
	}})
	if _, err := r.Client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Patch(ctx, pvc.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		return acted, fmt.Errorf("image %s and PV %s grown to %s, but patching the claim's status failed (retried): %w", img.Spec(), pv.Name, q, err)
	}
	return true, nil
}

func quantity(bytes int64) string {
	return resource.NewQuantity(bytes, resource.BinarySI).String()
}
