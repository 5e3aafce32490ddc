// Package secrets reads the cephx keys the provisioner needs from the API
// server, and checks the node Secret a PV will name. A key never appears
// in an error: only the Secret's namespace/name and what is wrong.
package secrets

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/flexblock/flexblock/provisioner/internal/params"
)

// Reader reads Secrets through the API.
type Reader struct {
	Client kubernetes.Interface
}

// Key returns the cephx key stored under "key" in the Secret ref.
func (r *Reader) Key(ctx context.Context, ref params.SecretRef) (string, error) {
	s, err := r.Client.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "", fmt.Errorf("provisioner Secret %s does not exist: create it with the admin key (kubectl -n %s create secret generic %s --type=%s --from-literal=key=\"$(ceph auth get-key client.USER)\")",
			ref, ref.Namespace, ref.Name, params.Driver)
	case apierrors.IsForbidden(err):
		return "", fmt.Errorf("provisioner Secret %s: the provisioner may not read it: give its ServiceAccount get on secrets in namespace %s (a Role and RoleBinding there)", ref, ref.Namespace)
	case err != nil:
		return "", fmt.Errorf("provisioner Secret %s: %w", ref, err)
	}
	key := strings.TrimRight(string(s.Data[params.SecretKey]), "\n")
	if key == "" {
		return "", fmt.Errorf("provisioner Secret %s has no data key %q: put the cephx key there (ceph auth get-key client.USER)", ref, params.SecretKey)
	}
	return key, nil
}

// CheckNodeSecret refuses a node Secret kubelet would not pass to the
// driver (its type must be the driver name). known is false when the
// provisioner may not read it (least privilege: no get on Secrets outside
// its admin Secret's namespace); the check is then left to the node.
func (r *Reader) CheckNodeSecret(ctx context.Context, ref params.SecretRef) (known bool, err error) {
	s, err := r.Client.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsForbidden(err):
		return false, nil
	case apierrors.IsNotFound(err):
		return true, fmt.Errorf("node Secret %s (StorageClass parameters nodeSecretName/nodeSecretNamespace) does not exist: create it with the nodes' cephx key and type %s", ref, params.Driver)
	case err != nil:
		return false, fmt.Errorf("node Secret %s: %w", ref, err)
	}
	if s.Type != corev1.SecretType(params.Driver) {
		return true, fmt.Errorf("node Secret %s has type %q: kubelet passes only a Secret of type %s to the driver; recreate it with --type=%s", ref, s.Type, params.Driver, params.Driver)
	}
	return true, nil
}
