package params

import "github.com/flexblock/flexblock/driver/rbd"

// Annotations on a PV that record what Delete and resize need, so neither
// depends on the StorageClass (which may have been edited or deleted).
const (
	AnnMonitors        = "flexblock.io/monitors"
	AnnPool            = "flexblock.io/pool"
	AnnNamespace       = "flexblock.io/rados-namespace"
	AnnImage           = "flexblock.io/image"
	AnnUser            = "flexblock.io/provisioner-user"
	AnnSecretName      = "flexblock.io/provisioner-secret-name"
	AnnSecretNamespace = "flexblock.io/provisioner-secret-namespace"
	// AnnProvisionedBy is set by the provisioner library on every PV it
	// stores: the StorageClass's provisioner name.
	AnnProvisionedBy = "pv.kubernetes.io/provisioned-by"
)

// Record is what a provisioned PV's annotations hold.
type Record struct {
	Monitors, Pool, Namespace, Image, User string
	Secret                                 SecretRef
}

// Record is what a PV of this class for image records.
func (c *Class) Record(image string) Record {
	return Record{Monitors: c.Monitors, Pool: c.Pool, Namespace: c.Namespace, Image: image,
		User: c.ProvisionerUser, Secret: c.ProvisionerSecret}
}

// Annotations renders r.
func (r Record) Annotations() map[string]string {
	a := map[string]string{AnnMonitors: r.Monitors, AnnPool: r.Pool, AnnImage: r.Image, AnnUser: r.User,
		AnnSecretName: r.Secret.Name, AnnSecretNamespace: r.Secret.Namespace}
	if r.Namespace != "" {
		a[AnnNamespace] = r.Namespace
	}
	return a
}

// FromAnnotations reads the record of a PV this provisioner made; ok is
// false for any other PV (another provisioner's, a hand-written one, or
// one whose record is incomplete), which must then be left alone.
func FromAnnotations(a map[string]string) (Record, bool) {
	if a[AnnProvisionedBy] != Provisioner {
		return Record{}, false
	}
	r := Record{Monitors: a[AnnMonitors], Pool: a[AnnPool], Namespace: a[AnnNamespace], Image: a[AnnImage],
		User: a[AnnUser], Secret: SecretRef{Namespace: a[AnnSecretNamespace], Name: a[AnnSecretName]}}
	if r.Monitors == "" || r.Pool == "" || r.Image == "" || r.User == "" || r.Secret.Name == "" || r.Secret.Namespace == "" {
		return Record{}, false
	}
	return r, true
}

// Admin is the provisioner's connection to the recorded image with key.
func (r Record) Admin(key string) (*rbd.Volume, error) {
	return Admin(r.Monitors, r.Pool, r.Namespace, r.Image, r.User, key)
}
