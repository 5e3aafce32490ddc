package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/flexblock/flexblock/provisioner/internal/params"
)

const examples = "../examples/provisioner"

// The examples decode strictly into the API types, the StorageClass is one
// the provisioner accepts, the Secrets it names exist in examples/, and
// the RBAC grants what the provisioner calls.
func TestExamples(t *testing.T) {
	objs := map[string]any{} // kind/namespace/name
	files, _ := filepath.Glob(filepath.Join(examples, "*.yaml"))
	files = append(files, "../examples/rbd/secret.yaml")
	var kust struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Namespace  string   `json:"namespace"`
		Resources  []string `json:"resources"`
		Images     []struct {
			Name    string `json:"name"`
			NewName string `json:"newName"`
			NewTag  string `json:"newTag"`
		} `json:"images"`
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "#") {
			t.Errorf("%s: must start with a comment saying what the operator changes", f)
		}
		for _, part := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(part), &tm); err != nil || tm.Kind == "" {
				continue
			}
			var obj any
			switch tm.Kind {
			case "Kustomization":
				obj = &kust
			case "Namespace":
				obj = &corev1.Namespace{}
			case "ServiceAccount":
				obj = &corev1.ServiceAccount{}
			case "Secret":
				obj = &corev1.Secret{}
			case "PersistentVolumeClaim":
				obj = &corev1.PersistentVolumeClaim{}
			case "Pod":
				obj = &corev1.Pod{}
			case "Deployment":
				obj = &appsv1.Deployment{}
			case "StatefulSet":
				obj = &appsv1.StatefulSet{}
			case "StorageClass":
				obj = &storagev1.StorageClass{}
			case "ClusterRole":
				obj = &rbacv1.ClusterRole{}
			case "Role":
				obj = &rbacv1.Role{}
			case "ClusterRoleBinding":
				obj = &rbacv1.ClusterRoleBinding{}
			case "RoleBinding":
				obj = &rbacv1.RoleBinding{}
			default:
				t.Errorf("%s: unexpected kind %s", f, tm.Kind)
				continue
			}
			j, err := yaml.YAMLToJSONStrict([]byte(part))
			if err == nil {
				var errs []error
				errs, err = kjson.UnmarshalStrict(j, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
				if err == nil && len(errs) > 0 {
					err = errs[0]
				}
			}
			if err != nil {
				t.Errorf("%s: %s: %v", f, tm.Kind, err)
				continue
			}
			if m, ok := obj.(metav1.Object); ok {
				objs[tm.Kind+"/"+m.GetNamespace()+"/"+m.GetName()] = obj
			}
		}
	}
	for _, r := range kust.Resources {
		if _, err := os.Stat(filepath.Join(examples, r)); err != nil {
			t.Errorf("kustomization resource %s: %v", r, err)
		}
	}
	if len(kust.Images) != 1 || kust.Images[0].NewName != "registry.example.com/storage/flexblock-provisioner" {
		t.Errorf("kustomization images: %+v", kust.Images)
	}

	sc, _ := objs["StorageClass//flexblock-rbd"].(*storagev1.StorageClass)
	if sc == nil || sc.Provisioner != params.Provisioner || len(sc.MountOptions) != 0 {
		t.Fatalf("StorageClass: %+v", sc)
	}
	class, err := params.Parse(sc.Parameters, "default")
	if err != nil {
		t.Fatalf("the provisioner refuses the example StorageClass: %v", err)
	}
	for _, ref := range []params.SecretRef{class.ProvisionerSecret, class.NodeSecret} {
		s, _ := objs["Secret/"+ref.Namespace+"/"+ref.Name].(*corev1.Secret)
		if s == nil || string(s.Type) != params.Driver || s.StringData["key"] == "" {
			t.Errorf("Secret %s: %+v", ref, s)
		}
	}

	d, _ := objs["Deployment/flexblock-provisioner/flexblock-provisioner"].(*appsv1.Deployment)
	if d == nil || d.Spec.Replicas == nil || *d.Spec.Replicas != 2 || d.Spec.Template.Spec.Containers[0].Image != kust.Images[0].Name {
		t.Fatal("Deployment: want 2 replicas of the kustomization's image")
	}

	cr, _ := objs["ClusterRole//flexblock-provisioner"].(*rbacv1.ClusterRole)
	role, _ := objs["Role/"+class.ProvisionerSecret.Namespace+"/flexblock-provisioner"].(*rbacv1.Role)
	if cr == nil || role == nil {
		t.Fatal("ClusterRole or Role missing")
	}
	for _, need := range []struct {
		rules             []rbacv1.PolicyRule
		group, res, verbs string
	}{
		{cr.Rules, "", "persistentvolumes", "get list watch create delete patch update"},
		{cr.Rules, "", "persistentvolumeclaims", "get list watch update patch"},
		{cr.Rules, "", "persistentvolumeclaims/status", "patch"},
		{cr.Rules, "storage.k8s.io", "storageclasses", "get list watch"},
		{cr.Rules, "", "events", "create patch"},
		{role.Rules, "", "secrets", "get"},
		{role.Rules, "coordination.k8s.io", "leases", "get create update"},
	} {
		for _, v := range strings.Fields(need.verbs) {
			if !grants(need.rules, need.group, need.res, v) {
				t.Errorf("RBAC: no %s on %s", v, need.res)
			}
		}
	}
	for _, r := range cr.Rules {
		if slices.Contains(r.Resources, "secrets") {
			t.Error("the ClusterRole grants Secrets: only the Role in the admin Secret's namespace may")
		}
	}
}

func grants(rules []rbacv1.PolicyRule, group, res, verb string) bool {
	for _, r := range rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, res) && slices.Contains(r.Verbs, verb) {
			return true
		}
	}
	return false
}
