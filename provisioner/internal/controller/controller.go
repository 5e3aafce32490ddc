// Package controller is the provisioner proper: the Provision and Delete
// decisions the sig-storage provisioner library calls for claims of
// StorageClasses whose provisioner is flexblock.io/rbd. Every error it
// returns becomes an event on the claim (Provision) or the PV (Delete), so
// each one says what to fix, and none carries a key (Tools.Mask).
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	lib "sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"

	"github.com/flexblock/flexblock/provisioner/internal/image"
	"github.com/flexblock/flexblock/provisioner/internal/params"
	"github.com/flexblock/flexblock/provisioner/internal/secrets"
)

// creatingSuffix names the image while it is being made. It appears under
// its final name only once stamped (rbd rename is atomic), so a Provision
// killed between create and stamp never leaves an unstamped image under
// the final name, which a retry would have to refuse forever. The suffix
// is flexblock's own: an image of that name is one of its unfinished ones.
const creatingSuffix = ".creating"

// Provisioner implements the library's Provisioner.
type Provisioner struct {
	Tools   *image.Tools
	Secrets *secrets.Reader
	Log     *slog.Logger
	// TrashDelay, when positive, makes Delete move images to the RBD trash
	// with that protection time instead of removing them.
	TrashDelay time.Duration
	Now        func() time.Time
}

var (
	_ lib.Provisioner      = (*Provisioner)(nil)
	_ lib.BlockProvisioner = (*Provisioner)(nil)
)

// SupportsBlock says yes only so that the library lets a Block claim
// reach Provision, which refuses it with a message that says what to do
// (the library's own says only "does not support block").
func (p *Provisioner) SupportsBlock(context.Context) bool { return true }

// Provision makes (or finds, on a retry) the stamped image for the claim
// and returns its PV. Refusals come before anything runs and are final
// for this attempt; a failure once rbd may have acted is reported as in
// progress, so the library calls again (also after the claim is deleted)
// and the image is never orphaned by a failed call.
func (p *Provisioner) Provision(ctx context.Context, o lib.ProvisionOptions) (*corev1.PersistentVolume, lib.ProvisioningState, error) {
	pv, acted, err := p.provision(ctx, o)
	if err != nil {
		err = p.Tools.Mask(err)
		p.Log.Warn("provision failed", "claim", o.PVC.Namespace+"/"+o.PVC.Name, "pv", o.PVName, "error", err.Error())
		if acted {
			return nil, lib.ProvisioningInBackground, err
		}
		return nil, lib.ProvisioningFinished, err
	}
	return pv, lib.ProvisioningFinished, nil
}

func (p *Provisioner) provision(ctx context.Context, o lib.ProvisionOptions) (*corev1.PersistentVolume, bool, error) {
	sc, pvc := o.StorageClass, o.PVC
	class, err := params.Parse(sc.Parameters, pvc.Namespace)
	if err != nil {
		return nil, false, fmt.Errorf("StorageClass %s: %w", sc.Name, err)
	}
	if len(sc.MountOptions) > 0 {
		return nil, false, fmt.Errorf("StorageClass %s sets mountOptions (%s), which kubelet refuses for flexVolume PVs: move them into the parameter mountOptions (comma-separated)",
			sc.Name, strings.Join(sc.MountOptions, ","))
	}
	size, err := checkClaim(pvc)
	if err != nil {
		return nil, false, err
	}
	if known, err := p.Secrets.CheckNodeSecret(ctx, class.NodeSecret); err != nil {
		return nil, false, err
	} else if !known {
		p.Log.Info("node Secret not readable by the provisioner; its type is checked by kubelet at mount", "secret", class.NodeSecret.String())
	}
	key, err := p.Secrets.Key(ctx, class.ProvisionerSecret)
	if err != nil {
		return nil, false, err
	}
	name := class.Prefix + o.PVName
	if err := params.CheckPV(class.PVOptions(name)); err != nil {
		return nil, false, fmt.Errorf("StorageClass %s, PV %s: %w", sc.Name, o.PVName, err)
	}
	final, err := p.open(class, name, key)
	if err != nil {
		return nil, false, fmt.Errorf("StorageClass %s: %w", sc.Name, err)
	}
	creating, err := p.open(class, name+creatingSuffix, key)
	if err != nil {
		return nil, false, fmt.Errorf("StorageClass %s: %w", sc.Name, err)
	}
	if err := p.ensure(ctx, final, creating, class, o.PVName, size); err != nil {
		return nil, true, err
	}
	p.Log.Info("provisioned", "claim", pvc.Namespace+"/"+pvc.Name, "pv", o.PVName, "image", final.Spec(), "bytes", size)
	return p.volume(o, class, name, size), false, nil
}

func (p *Provisioner) open(class *params.Class, name, key string) (*image.Image, error) {
	v, err := class.ParseAdmin(name, key)
	if err != nil {
		return nil, err
	}
	return p.Tools.Open(v), nil
}

// checkClaim refuses what a flexVolume RBD PV cannot be, and returns the
// size to make, rounded up to MiB.
func checkClaim(pvc *corev1.PersistentVolumeClaim) (int64, error) {
	where := "claim " + pvc.Namespace + "/" + pvc.Name
	for _, m := range pvc.Spec.AccessModes {
		switch m {
		case corev1.ReadWriteOnce, corev1.ReadOnlyMany:
		case corev1.ReadWriteMany:
			return 0, fmt.Errorf("%s asks for ReadWriteMany: an RBD image holds one ordinary filesystem, which only one node may mount read-write; use ReadWriteOnce (or ReadOnlyMany for data that is only read)", where)
		default:
			return 0, fmt.Errorf("%s asks for access mode %s: flexblock.io/rbd provisions ReadWriteOnce and ReadOnlyMany only", where, m)
		}
	}
	if len(pvc.Spec.AccessModes) == 0 {
		return 0, fmt.Errorf("%s has no accessModes: set ReadWriteOnce", where)
	}
	if pvc.Spec.VolumeMode != nil && *pvc.Spec.VolumeMode == corev1.PersistentVolumeBlock {
		return 0, fmt.Errorf("%s asks for volumeMode Block: flexVolume gives pods filesystems only; remove volumeMode (or set Filesystem)", where)
	}
	if pvc.Spec.Selector != nil {
		return 0, fmt.Errorf("%s has a selector: a dynamically provisioned volume cannot match one; remove spec.selector", where)
	}
	if ds := pvc.Spec.DataSourceRef; ds != nil || pvc.Spec.DataSource != nil {
		return 0, fmt.Errorf("%s has a dataSource: flexblock.io/rbd makes empty images only (no clones or snapshots); remove spec.dataSource", where)
	}
	q, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok || q.Sign() <= 0 {
		return 0, fmt.Errorf("%s requests no storage: set spec.resources.requests.storage, for example 10Gi", where)
	}
	return image.RoundMiB(q.Value()), nil
}

// ensure leaves the stamped image of size bytes under final's name:
// reused when a previous attempt made it, created (as creating, stamped,
// then renamed) when missing. An image under final's name that flexblock
// did not stamp for this PV is never adopted.
func (p *Provisioner) ensure(ctx context.Context, final, creating *image.Image, class *params.Class, pv string, size int64) error {
	info, err := final.Info(ctx)
	switch {
	case err == nil:
		return p.reuse(ctx, final, info, pv, size)
	case !errors.Is(err, image.ErrNotFound):
		return err
	}
	if _, err := creating.Info(ctx); errors.Is(err, image.ErrNotFound) {
		if err := creating.Create(ctx, size, class.Features, class.DataPool); err != nil {
			return err
		}
		p.Log.Info("created image", "image", creating.Spec(), "bytes", size, "features", class.Features)
	} else if err != nil {
		return err
	}
	stamp, err := creating.Stamp(ctx)
	if err != nil {
		return err
	}
	switch stamp {
	case pv:
	case "":
		if err := creating.SetStamp(ctx, pv); err != nil {
			return err
		}
	default:
		return fmt.Errorf("image %s is stamped %s=%s, not %s: two PVs map to one image name; remove the stale image after checking it holds nothing",
			creating.Spec(), image.StampKey, stamp, pv)
	}
	if err := creating.Rename(ctx, final); err != nil {
		return err
	}
	info, err = final.Info(ctx)
	if err != nil {
		return err
	}
	return p.reuse(ctx, final, info, pv, size)
}

// reuse accepts an existing image only with this PV's stamp and the size
// asked for.
func (p *Provisioner) reuse(ctx context.Context, img *image.Image, info image.Info, pv string, size int64) error {
	stamp, err := img.Stamp(ctx)
	if err != nil {
		return err
	}
	switch {
	case stamp == "":
		return fmt.Errorf("image %s already exists and flexblock did not make it (no %s stamp): flexblock never adopts an image; rename or remove that image, or set another imageNamePrefix in the StorageClass",
			img.Spec(), image.StampKey)
	case stamp != pv:
		return fmt.Errorf("image %s was made for PV %s, not %s: flexblock never hands one image to two PVs; set another imageNamePrefix or remove the stale image after checking it holds nothing",
			img.Spec(), stamp, pv)
	case info.Size != size:
		return fmt.Errorf("image %s (made for PV %s) has %d bytes, the claim asks for %d: resize or remove the image, or ask for its size",
			img.Spec(), pv, info.Size, size)
	}
	return nil
}

// volume is the PV: a flexVolume of the driver, with every option a mount
// needs and annotations for Delete and resize.
func (p *Provisioner) volume(o lib.ProvisionOptions, class *params.Class, name string, size int64) *corev1.PersistentVolume {
	reclaim := corev1.PersistentVolumeReclaimDelete
	if o.StorageClass.ReclaimPolicy != nil {
		reclaim = *o.StorageClass.ReclaimPolicy
	}
	mode := corev1.PersistentVolumeFilesystem
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: o.PVName, Annotations: class.Record(name).Annotations()},
		Spec: corev1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: reclaim,
			AccessModes:                   o.PVC.Spec.AccessModes,
			VolumeMode:                    &mode,
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: *resource.NewQuantity(size, resource.BinarySI)},
			PersistentVolumeSource: corev1.PersistentVolumeSource{FlexVolume: &corev1.FlexPersistentVolumeSource{
				Driver:    params.Driver,
				FSType:    class.FSType,
				SecretRef: &corev1.SecretReference{Name: class.NodeSecret.Name, Namespace: class.NodeSecret.Namespace},
				Options:   class.PVOptions(name),
			}},
		},
	}
}

// Delete removes (or trashes) the image of a PV this provisioner made,
// unless another client still has it open. Other PVs are ignored.
func (p *Provisioner) Delete(ctx context.Context, pv *corev1.PersistentVolume) error {
	rec, ok := params.FromAnnotations(pv.Annotations)
	if !ok || pv.Spec.FlexVolume == nil || pv.Spec.FlexVolume.Driver != params.Driver {
		return &lib.IgnoredError{Reason: "PV " + pv.Name + " was not provisioned by " + params.Provisioner}
	}
	if err := p.delete(ctx, pv, rec); err != nil {
		err = p.Tools.Mask(err)
		p.Log.Warn("delete failed", "pv", pv.Name, "error", err.Error())
		return err
	}
	return nil
}

func (p *Provisioner) delete(ctx context.Context, pv *corev1.PersistentVolume, rec params.Record) error {
	key, err := p.Secrets.Key(ctx, rec.Secret)
	if err != nil {
		return err
	}
	v, err := rec.Admin(key)
	if err != nil {
		return fmt.Errorf("PV %s annotations: %w", pv.Name, err)
	}
	img := p.Tools.Open(v)
	if _, err := img.Info(ctx); errors.Is(err, image.ErrNotFound) {
		p.Log.Info("image already gone", "pv", pv.Name, "image", img.Spec())
		return nil
	} else if err != nil {
		return err
	}
	stamp, err := img.Stamp(ctx)
	if err != nil {
		return err
	}
	if stamp != pv.Name {
		return fmt.Errorf("not deleting image %s: its %s stamp is %q, not this PV %s, so flexblock did not make it for this PV; remove it by hand if it really is scratch, then delete the PV",
			img.Spec(), image.StampKey, stamp, pv.Name)
	}
	watchers, err := img.Watchers(ctx)
	if err != nil {
		return err
	}
	if len(watchers) > 0 {
		return fmt.Errorf("not deleting image %s: it is still open by %s (mapped on a node, or an rbd command running); stop the pod using it or unmap it there (rbd showmapped, rbd unmap) and the deletion is retried",
			img.Spec(), strings.Join(watchers, ", "))
	}
	if p.TrashDelay > 0 {
		expires := p.Now().Add(p.TrashDelay)
		if err := img.Trash(ctx, expires); err != nil {
			return err
		}
		p.Log.Info("moved image to the trash", "pv", pv.Name, "image", img.Spec(), "expires", expires.UTC().Format(time.RFC3339))
		return nil
	}
	if err := img.Remove(ctx); err != nil {
		return err
	}
	p.Log.Info("removed image", "pv", pv.Name, "image", img.Spec())
	return nil
}
