// Package params turns a StorageClass's parameters into a validated Class
// and a Class into the flexVolume options of a PV. It does no I/O.
//
// Every value a PV will carry is checked by the node driver's own parsers
// (driver/options, driver/rbd), fed exactly the options map the PV gets, so
// a StorageClass can never produce a PV the driver refuses at mount time.
package params

import (
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/rbd"
)

// Names the rest of the provisioner shares.
const (
	// Provisioner is the StorageClass provisioner name.
	Provisioner = "flexblock.io/rbd"
	// Driver is the flexVolume driver the PVs name; a node Secret must
	// have it as its type or kubelet does not pass it.
	Driver = "flexblock/rbd"
	// DefaultPrefix starts every image name unless imageNamePrefix says
	// otherwise.
	DefaultPrefix = "flexblock-"
	// SecretKey is the Secret data key holding a cephx key.
	SecretKey = "key"
)

// Parameter names, as a StorageClass spells them.
const (
	pMonitors        = "monitors"
	pPool            = "pool"
	pNamespace       = "radosNamespace"
	pDataPool        = "dataPool"
	pFeatures        = "imageFeatures"
	pPrefix          = "imageNamePrefix"
	pFSType          = "fsType"
	pMkfs            = "mkfsOptions"
	pMap             = "mapOptions"
	pMount           = "mountOptions"
	pUser            = "user"
	pProvUser        = "provisionerUser"
	pProvSecret      = "provisionerSecretName"
	pProvSecretNS    = "provisionerSecretNamespace"
	pNodeSecret      = "nodeSecretName"
	pNodeSecretNS    = "nodeSecretNamespace"
	defaultPool      = "rbd"
	defaultUser      = "admin"
	defaultFSType    = "ext4"
	maxSecretNameLen = 253
)

// known is the allowlist; anything else is refused by name.
var known = []string{pMonitors, pPool, pNamespace, pDataPool, pFeatures, pPrefix, pFSType, pMkfs, pMap,
	pMount, pUser, pProvUser, pProvSecret, pProvSecretNS, pNodeSecret, pNodeSecretNS}

// SecretRef names a Secret.
type SecretRef struct {
	Namespace, Name string
}

func (r SecretRef) String() string { return r.Namespace + "/" + r.Name }

// Class is a validated StorageClass. The string fields hold the values
// as given (validated), so the PV shows the operator's own spelling.
type Class struct {
	Monitors  string
	Pool      string
	Namespace string // RADOS namespace
	DataPool  string
	Features  []string
	Prefix    string
	FSType    string
	Mkfs      string
	Map       string
	Mount     string
	// User is the cephx user the nodes map with (PV option user);
	// ProvisionerUser the one that creates and deletes images.
	User            string
	ProvisionerUser string
	// ProvisionerSecret holds the admin key; NodeSecret goes into the
	// PV's secretRef.
	ProvisionerSecret SecretRef
	NodeSecret        SecretRef
}

// Error is a refused StorageClass parameter: the message names it and
// says what to fix.
type Error struct {
	Param, Problem, Fix string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("parameter %q %s", e.Param, e.Problem)
	if e.Fix != "" {
		msg += ": " + e.Fix
	}
	return msg
}

func refuse(param, fix, format string, a ...any) error {
	return &Error{Param: param, Problem: fmt.Sprintf(format, a...), Fix: fix}
}

// Parse validates a StorageClass's parameters. pvcNamespace is the default
// namespace of the node Secret (kubelet looks a PV's secretRef up where it
// says, so it is always written out).
func Parse(p map[string]string, pvcNamespace string) (*Class, error) {
	if err := checkKnown(p); err != nil {
		return nil, err
	}
	c := &Class{
		Monitors: p[pMonitors], Pool: or(p[pPool], defaultPool), Namespace: p[pNamespace], DataPool: p[pDataPool],
		Prefix: DefaultPrefix, FSType: or(p[pFSType], defaultFSType), Mkfs: p[pMkfs], Map: p[pMap], Mount: p[pMount],
		User: or(p[pUser], defaultUser), ProvisionerUser: or(p[pProvUser], defaultUser),
	}
	if v, ok := p[pPrefix]; ok {
		// An empty prefix is allowed: the image is then named as the PV.
		if v != "" {
			if err := options.Name(pPrefix, v, 64); err != nil {
				return nil, fromOption(err)
			}
		}
		c.Prefix = v
	}
	if c.Monitors == "" {
		return nil, refuse(pMonitors, "list the Ceph monitors, for example \"10.0.0.1:6789,10.0.0.2:6789\"", "is missing")
	}
	var err error
	if c.ProvisionerSecret, err = secretRef(p, pProvSecret, pProvSecretNS, "", true); err != nil {
		return nil, err
	}
	if c.NodeSecret, err = secretRef(p, pNodeSecret, pNodeSecretNS, pvcNamespace, true); err != nil {
		return nil, err
	}
	// The admin side: monitors, pool, namespace, features and data pool
	// as the driver's create-on-first-use parses them.
	admin, err := parseVolume(map[string]string{"monitors": c.Monitors, "pool": c.Pool, "radosNamespace": c.Namespace,
		"image": c.Prefix + "probe", "user": c.ProvisionerUser, "dataPool": c.DataPool, "imageFeatures": p[pFeatures]}, "")
	if err != nil {
		return nil, err
	}
	c.Features = admin.Features
	// The node side: exactly the options a PV of this class carries.
	if err := CheckPV(c.PVOptions(c.Prefix + "probe")); err != nil {
		return nil, err
	}
	return c, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func checkKnown(p map[string]string) error {
	var unknown []string
	for k := range p {
		if !contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	all := append([]string(nil), known...)
	sort.Strings(all)
	word := "parameter"
	if len(unknown) > 1 {
		word = "parameters"
	}
	return fmt.Errorf("unknown %s %s: remove or correct them (known parameters: %s)",
		word, quoteAll(unknown), strings.Join(all, ", "))
}

func quoteAll(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func secretRef(p map[string]string, nameKey, nsKey, defNS string, required bool) (SecretRef, error) {
	r := SecretRef{Name: p[nameKey], Namespace: or(p[nsKey], defNS)}
	if r.Name == "" {
		if required {
			return r, refuse(nameKey, "name the Secret (with the cephx key under \"key\") and set "+nsKey, "is missing")
		}
		return r, nil
	}
	if r.Namespace == "" {
		return r, refuse(nsKey, "name the namespace of the Secret "+r.Name, "is missing")
	}
	for _, f := range []struct{ key, val string }{{nameKey, r.Name}, {nsKey, r.Namespace}} {
		if err := options.Name(f.key, f.val, maxSecretNameLen); err != nil {
			return r, fromOption(err)
		}
	}
	return r, nil
}

// PVOptions is the flexVolume options map of a PV of this class for the
// image named image: everything a mount needs, in the driver's own option
// names, so the PV never depends on the StorageClass again.
func (c *Class) PVOptions(image string) map[string]string {
	o := map[string]string{
		"monitors": c.Monitors, "pool": c.Pool, "image": image, "user": c.User, "fsType": c.FSType,
	}
	for k, v := range map[string]string{"radosNamespace": c.Namespace, "mkfsOptions": c.Mkfs, "mountOptions": c.Mount, "mapOptions": c.Map} {
		if v != "" {
			o[k] = v
		}
	}
	return o
}

// CheckPV runs a PV's options through the node driver's parser, as
// kubelet's mount call would hand them over (minus the Secret, which only
// the node reads).
func CheckPV(o map[string]string) error {
	b := rbd.New()
	opts := options.Options{options.KeyReadWrite: "rw"}
	for k, v := range o {
		opts[k] = v
	}
	com, err := options.ParseCommon(opts, defaultFSType, b.Keys())
	if err != nil {
		return fromOption(err)
	}
	if _, err := b.Parse(com, &config.Config{}); err != nil {
		return fromOption(err)
	}
	return nil
}

// ParseAdmin is the provisioner's own connection to image (the full image
// name): the driver's RBD volume with the provisioner user and, when key is
// set, its key (validated as the driver validates a Secret's key). Its
// Features and DataPool are what the image is created with.
func (c *Class) ParseAdmin(image, key string) (*rbd.Volume, error) {
	return parseVolume(map[string]string{"monitors": c.Monitors, "pool": c.Pool, "radosNamespace": c.Namespace,
		"image": image, "user": c.ProvisionerUser, "dataPool": c.DataPool, "imageFeatures": strings.Join(c.Features, ",")}, key)
}

// Admin is the provisioner's connection to one image of a PV made earlier,
// from what the PV's annotations recorded.
func Admin(monitors, pool, namespace, image, user, key string) (*rbd.Volume, error) {
	return parseVolume(map[string]string{"monitors": monitors, "pool": pool, "radosNamespace": namespace,
		"image": image, "user": user}, key)
}

func parseVolume(o map[string]string, key string) (*rbd.Volume, error) {
	b := rbd.New()
	opts := options.Options{}
	for k, v := range o {
		if v != "" {
			opts[k] = v
		}
	}
	if key != "" {
		opts[options.SecretPrefix+SecretKey] = base64.StdEncoding.EncodeToString([]byte(key))
	}
	com, err := options.ParseCommon(opts, defaultFSType, b.Keys())
	if err != nil {
		return nil, fromOption(err)
	}
	spec, err := b.Parse(com, &config.Config{})
	if err != nil {
		return nil, fromOption(err)
	}
	return spec.(*rbd.Volume), nil
}

// fromOption restates the driver's refusal of an option as a refusal of
// the StorageClass parameter that produced it.
func fromOption(err error) error {
	var oe *options.Error
	if !errors.As(err, &oe) {
		return err
	}
	param := oe.Field
	switch param {
	case "image":
		param = pPrefix
	case options.SecretPrefix + SecretKey:
		param = pProvSecret
	case options.KeyFSType, "defaultFSType (config)":
		param = pFSType
	}
	return &Error{Param: param, Problem: oe.Problem, Fix: oe.Fix}
}
