// Package examples checks every YAML file under examples/: each document
// decodes strictly (unknown or duplicate fields fail) into the real
// Kubernetes API type of its kind, and the files agree with each other and
// with the installer (Secret types are the driver names, every secretRef
// and claim exists, the DaemonSet's hostPaths are the installer's defaults,
// its FLEXBLOCK_* variables are flags the binary knows, the kustomizations
// list existing files and set the image the workloads use).
//
// It is its own Go module so the Kubernetes API packages never reach the
// driver binary's dependency graph.
package examples

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/iscsi"
	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/rbd"
	"github.com/flexblock/flexblock/driver/volume"
	"github.com/flexblock/flexblock/installer"
	"github.com/flexblock/flexblock/test/testkit"
)

const examplesDir = "../../examples"

// kustomization is the part of kustomize's Kustomization the examples use;
// decoding it strictly rejects anything else.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images,omitempty"`
}

type doc struct {
	file string // relative to examples/
	obj  any
}

func (d doc) String() string { return d.file }

// objects decodes every document of every YAML file under examples/.
func objects(t *testing.T) []doc {
	t.Helper()
	var out []doc
	err := filepath.WalkDir(examplesDir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() && e.Name() == "provisioner" {
			return filepath.SkipDir // the provisioner's own module checks these (provisioner/examples_test.go)
		}
		if err != nil || e.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			return err
		}
		rel, _ := filepath.Rel(examplesDir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(b, []byte("#")) {
			t.Errorf("%s: must start with a comment saying what the operator changes", rel)
		}
		for i, part := range splitDocs(b) {
			obj, err := decode(part)
			if err != nil {
				t.Errorf("%s document %d: %v", rel, i+1, err)
				continue
			}
			out = append(out, doc{rel, obj})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no YAML found under examples/")
	}
	return out
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

func splitDocs(b []byte) [][]byte {
	var out [][]byte
	for _, part := range docSep.Split(string(b), -1) {
		empty := true
		for _, line := range strings.Split(part, "\n") {
			if s := strings.TrimSpace(line); s != "" && !strings.HasPrefix(s, "#") {
				empty = false
			}
		}
		if !empty {
			out = append(out, []byte(part))
		}
	}
	return out
}

func decode(b []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(b, &tm); err != nil {
		return nil, err
	}
	var obj any
	switch tm.APIVersion + "/" + tm.Kind {
	case "v1/Namespace":
		obj = &corev1.Namespace{}
	case "v1/ServiceAccount":
		obj = &corev1.ServiceAccount{}
	case "v1/Secret":
		obj = &corev1.Secret{}
	case "v1/Pod":
		obj = &corev1.Pod{}
	case "v1/PersistentVolume":
		obj = &corev1.PersistentVolume{}
	case "v1/PersistentVolumeClaim":
		obj = &corev1.PersistentVolumeClaim{}
	case "apps/v1/DaemonSet":
		obj = &appsv1.DaemonSet{}
	case "kustomize.config.k8s.io/v1beta1/Kustomization":
		obj = &kustomization{}
	default:
		return nil, fmt.Errorf("unexpected apiVersion/kind %q/%q", tm.APIVersion, tm.Kind)
	}
	// As the API server does: YAML to JSON (duplicate keys fail), then a
	// case-sensitive decode that reports unknown and duplicate fields
	// (encoding/json, under yaml.UnmarshalStrict, would take "fstype" for
	// "fsType").
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return nil, fmt.Errorf("strict decode as %s: %w", tm.Kind, err)
	}
	strictErrs, err := kjson.UnmarshalStrict(j, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err == nil && len(strictErrs) > 0 {
		err = errors.Join(strictErrs...)
	}
	if err != nil {
		return nil, fmt.Errorf("strict decode as %s: %w", tm.Kind, err)
	}
	if m, ok := meta(obj); ok && m.Name == "" {
		return nil, fmt.Errorf("%s without metadata.name", tm.Kind)
	}
	return obj, nil
}

func meta(obj any) (*metav1.ObjectMeta, bool) {
	if o, ok := obj.(metav1.ObjectMetaAccessor); ok {
		return o.GetObjectMeta().(*metav1.ObjectMeta), true
	}
	return nil, false
}

func all[T any](docs []doc) (out []T, files []string) {
	for _, d := range docs {
		if o, ok := d.obj.(T); ok {
			out = append(out, o)
			files = append(files, d.file)
		}
	}
	return out, files
}

var drivers = map[string]bool{installer.DriverName("rbd"): true, installer.DriverName("iscsi"): true}

// Documented options (README) and Secret keys per driver.
var (
	commonOptions = []string{"fsType", "readOnly", "mountOptions", "mkfsOptions"}
	driverOptions = map[string][]string{
		"flexblock/rbd":   {"monitors", "pool", "radosNamespace", "image", "snapshot", "user", "keyring", "size", "imageFeatures", "dataPool", "mapOptions", "fencing"},
		"flexblock/iscsi": {"targetPortal", "portals", "iqn", "lun", "iscsiInterface", "initiatorName", "chapAuthDiscovery", "chapAuthSession"},
	}
	secretKeys = map[string][]string{
		"flexblock/rbd": {"key"},
		"flexblock/iscsi": {
			"discovery.sendtargets.auth.username", "discovery.sendtargets.auth.password",
			"discovery.sendtargets.auth.username_in", "discovery.sendtargets.auth.password_in",
			"node.session.auth.username", "node.session.auth.password",
			"node.session.auth.username_in", "node.session.auth.password_in",
		},
	}
	backends = map[string]func() volume.Backend{
		"flexblock/rbd":   func() volume.Backend { return rbd.New() },
		"flexblock/iscsi": func() volume.Backend { return iscsi.New() },
	}
)

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestEveryYAMLDecodesStrictly(t *testing.T) {
	docs := objects(t)
	kinds := map[string]int{}
	for _, d := range docs {
		kinds[fmt.Sprintf("%T", d.obj)]++
	}
	// The examples the README promises.
	for _, k := range []string{"*v1.Namespace", "*v1.ServiceAccount", "*v1.DaemonSet", "*v1.Secret", "*v1.Pod",
		"*v1.PersistentVolume", "*v1.PersistentVolumeClaim", "*examples.kustomization"} {
		if kinds[k] == 0 {
			t.Errorf("no %s under examples/ (have %v)", k, kinds)
		}
	}
}

func TestStrictDecodeRejectsTypos(t *testing.T) {
	// The guard itself: a misspelt field must fail.
	bad := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers:\n  - name: a\n    image: b\n    volumeMount: []\n"
	if _, err := decode([]byte(bad)); err == nil {
		t.Fatal("a misspelt field decoded without error")
	}
	lower := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  volumes:\n  - name: v\n    flexVolume:\n      driver: flexblock/rbd\n      fstype: xfs\n"
	if _, err := decode([]byte(lower)); err == nil {
		t.Fatal("a field with the wrong case decoded without error")
	}
	dup := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\ntype: a\ntype: b\n"
	if _, err := decode([]byte(dup)); err == nil {
		t.Fatal("a duplicate field decoded without error")
	}
}

type secretID struct{ ns, name string }

func TestSecretsAndVolumesAgree(t *testing.T) {
	docs := objects(t)
	secrets := map[secretID]*corev1.Secret{}
	ss, sfiles := all[*corev1.Secret](docs)
	for i, s := range ss {
		if !drivers[string(s.Type)] {
			t.Errorf("%s: Secret %s has type %q; kubelet passes only a Secret whose type is the driver name (%v)", sfiles[i], s.Name, s.Type, keys(drivers))
		}
		if s.Namespace == "" {
			t.Errorf("%s: Secret %s has no namespace", sfiles[i], s.Name)
		}
		for k := range merged(s) {
			if !contains(secretKeys[string(s.Type)], k) {
				t.Errorf("%s: Secret %s key %q is not one %s reads (%v)", sfiles[i], s.Name, k, s.Type, secretKeys[string(s.Type)])
			}
		}
		if s.Type == "flexblock/rbd" && merged(s)["key"] == "" {
			t.Errorf("%s: RBD Secret %s has no key", sfiles[i], s.Name)
		}
		secrets[secretID{s.Namespace, s.Name}] = s
	}
	used := map[secretID]bool{}
	checkFlex := func(where, ns, driver string, ref *secretID, opts map[string]string, readOnly bool) {
		if !drivers[driver] {
			t.Errorf("%s: driver %q is not one of %v", where, driver, keys(drivers))
			return
		}
		for k, v := range opts {
			if !contains(commonOptions, k) && !contains(driverOptions[driver], k) {
				t.Errorf("%s: option %q is not a %s option", where, k, driver)
			}
			if strings.TrimSpace(v) == "" {
				t.Errorf("%s: option %q is empty", where, k)
			}
		}
		if ref != nil {
			s, ok := secrets[*ref]
			switch {
			case !ok:
				t.Errorf("%s: secretRef %s/%s: no such Secret in examples/", where, ref.ns, ref.name)
			case string(s.Type) != driver:
				t.Errorf("%s: secretRef %s/%s has type %q, want %q", where, ref.ns, ref.name, s.Type, driver)
			}
			used[*ref] = true
		}
		checkWithDriver(t, where, driver, opts, ref, secrets, readOnly)
	}

	pvs, pvFiles := all[*corev1.PersistentVolume](docs)
	pvcs, pvcFiles := all[*corev1.PersistentVolumeClaim](docs)
	pvcByID := map[secretID]*corev1.PersistentVolumeClaim{}
	for _, c := range pvcs {
		pvcByID[secretID{c.Namespace, c.Name}] = c
	}
	pvByName := map[string]*corev1.PersistentVolume{}
	for i, pv := range pvs {
		pvByName[pv.Name] = pv
		f := pv.Spec.FlexVolume
		if f == nil {
			t.Errorf("%s: PV %s is not a flexVolume", pvFiles[i], pv.Name)
			continue
		}
		var ref *secretID
		if f.SecretRef != nil {
			ns := f.SecretRef.Namespace
			if ns == "" && pv.Spec.ClaimRef != nil {
				ns = pv.Spec.ClaimRef.Namespace
			}
			ref = &secretID{ns, f.SecretRef.Name}
		}
		checkFlex(pvFiles[i]+" PV "+pv.Name, "", f.Driver, ref, f.Options, f.ReadOnly)
		if cr := pv.Spec.ClaimRef; cr != nil {
			if _, ok := pvcByID[secretID{cr.Namespace, cr.Name}]; !ok {
				t.Errorf("%s: PV %s claimRef %s/%s: no such claim", pvFiles[i], pv.Name, cr.Namespace, cr.Name)
			}
		}
		if size, ok := f.Options["size"]; ok {
			if q := pv.Spec.Capacity[corev1.ResourceStorage]; q.String() != size {
				t.Errorf("%s: PV %s capacity %s differs from the size option %s", pvFiles[i], pv.Name, q.String(), size)
			}
		}
	}
	for i, c := range pvcs {
		if c.Spec.VolumeName != "" {
			if _, ok := pvByName[c.Spec.VolumeName]; !ok {
				t.Errorf("%s: claim %s volumeName %s: no such PV", pvcFiles[i], c.Name, c.Spec.VolumeName)
			}
		}
	}

	pods, podFiles := all[*corev1.Pod](docs)
	for i, p := range pods {
		where := podFiles[i] + " Pod " + p.Name
		vols := map[string]corev1.Volume{}
		for _, v := range p.Spec.Volumes {
			vols[v.Name] = v
			switch {
			case v.FlexVolume != nil:
				var ref *secretID
				if v.FlexVolume.SecretRef != nil {
					ref = &secretID{p.Namespace, v.FlexVolume.SecretRef.Name} // inline: the pod's namespace
				}
				checkFlex(where+" volume "+v.Name, p.Namespace, v.FlexVolume.Driver, ref, v.FlexVolume.Options, v.FlexVolume.ReadOnly)
			case v.PersistentVolumeClaim != nil:
				if _, ok := pvcByID[secretID{p.Namespace, v.PersistentVolumeClaim.ClaimName}]; !ok {
					t.Errorf("%s: claim %s: no such claim in namespace %s", where, v.PersistentVolumeClaim.ClaimName, p.Namespace)
				}
			}
		}
		for _, c := range p.Spec.Containers {
			for _, m := range c.VolumeMounts {
				v, ok := vols[m.Name]
				if !ok {
					t.Errorf("%s: container %s mounts unknown volume %s", where, c.Name, m.Name)
					continue
				}
				if v.FlexVolume != nil && v.FlexVolume.ReadOnly && !m.ReadOnly {
					t.Errorf("%s: read-only volume %s is mounted read-write in container %s", where, m.Name, c.Name)
				}
			}
		}
	}
	for id := range secrets {
		if !used[id] {
			t.Errorf("Secret %s/%s is used by no example", id.ns, id.name)
		}
	}
}

func merged(s *corev1.Secret) map[string]string {
	m := map[string]string{}
	for k, v := range s.Data {
		m[k] = string(v)
	}
	for k, v := range s.StringData {
		m[k] = v
	}
	return m
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkWithDriver feeds the volume to the driver's own option parser, as
// kubelet would send it to mount. The backends list their option names
// (Keys); until one does, its check is reported as skipped.
func checkWithDriver(t *testing.T, where, driver string, opts map[string]string, ref *secretID, secrets map[secretID]*corev1.Secret, readOnly bool) {
	t.Helper()
	b := backends[driver]()
	if len(b.Keys()) == 0 {
		t.Logf("%s: %s lists no option names yet; driver-side validation skipped", where, driver)
		return
	}
	o := options.Options{options.KeyVolumeName: "example", options.KeyReadWrite: "rw"}
	if readOnly {
		o[options.KeyReadWrite] = "ro"
	}
	if ref != nil {
		if s, ok := secrets[*ref]; ok {
			for k, v := range merged(s) {
				o["kubernetes.io/secret/"+k] = base64.StdEncoding.EncodeToString([]byte(v))
			}
		}
	}
	for k, v := range opts {
		o[k] = v
	}
	cfg, _ := config.Load(filepath.Join(os.TempDir(), "flexblock-examples-no-config", config.FileName))
	c, err := options.ParseCommon(o, cfg.DefaultFSType, b.Keys())
	if err != nil {
		t.Errorf("%s: the driver rejects the options: %v", where, err)
		return
	}
	if _, err := b.Parse(c, cfg); err != nil {
		t.Errorf("%s: the %s driver rejects the volume: %v", where, driver, err)
	}
}

var bin string

func TestMain(m *testing.M) { testkit.Main(m, &bin) }

func help(t *testing.T, command string) string {
	t.Helper()
	out, err := exec.Command(bin, command, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", command, err, out)
	}
	return string(out)
}

func TestDaemonSetsMatchTheInstaller(t *testing.T) {
	docs := objects(t)
	namespaces := map[string]bool{}
	nss, _ := all[*corev1.Namespace](docs)
	for _, n := range nss {
		namespaces[n.Name] = true
	}
	sas := map[secretID]bool{}
	saList, _ := all[*corev1.ServiceAccount](docs)
	for _, s := range saList {
		sas[secretID{s.Namespace, s.Name}] = true
		if s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken {
			t.Errorf("ServiceAccount %s mounts its token; the installer needs none", s.Name)
		}
	}
	wantHost := map[string]string{
		"plugin-dir": installer.DefaultPluginDir,
		"log-dir":    filepath.Dir(config.DefaultLogFile),
		"state-dir":  config.DefaultStateDir,
	}
	dss, files := all[*appsv1.DaemonSet](docs)
	if len(dss) == 0 {
		t.Fatal("no DaemonSet")
	}
	for i, ds := range dss {
		where := files[i] + " DaemonSet " + ds.Name
		spec := ds.Spec.Template.Spec
		if !namespaces[ds.Namespace] {
			t.Errorf("%s: namespace %q is not created by any example", where, ds.Namespace)
		}
		if !sas[secretID{ds.Namespace, spec.ServiceAccountName}] {
			t.Errorf("%s: ServiceAccount %q not in the examples", where, spec.ServiceAccountName)
		}
		if sel := ds.Spec.Selector; sel == nil || !subset(sel.MatchLabels, ds.Spec.Template.Labels) {
			t.Errorf("%s: selector does not match the pod template's labels", where)
		}
		if !spec.HostPID {
			t.Errorf("%s: hostPID is needed to find the kubelet's plugin dir", where)
		}
		tolerant := false
		for _, tol := range spec.Tolerations {
			if tol.Operator == corev1.TolerationOpExists && tol.Key == "" && tol.Effect == "" {
				tolerant = true
			}
		}
		if !tolerant {
			t.Errorf("%s: needs a toleration {operator: Exists} to run on every node", where)
		}
		hostPaths := map[string]string{} // volume name -> host path
		for _, v := range spec.Volumes {
			if v.HostPath != nil {
				hostPaths[v.Name] = v.HostPath.Path
				if want, ok := wantHost[v.Name]; ok && v.HostPath.Path != want {
					t.Errorf("%s: hostPath %s is %s, but the installer's default is %s", where, v.Name, v.HostPath.Path, want)
				}
			}
		}
		if hostPaths["plugin-dir"] == "" || hostPaths["state-dir"] == "" {
			t.Errorf("%s: needs the plugin-dir and state-dir hostPaths", where)
		}
		if len(spec.Containers) != 1 {
			t.Fatalf("%s: want one container", where)
		}
		c := spec.Containers[0]
		sc := c.SecurityContext
		if sc == nil || (sc.Privileged != nil && *sc.Privileged) {
			t.Errorf("%s: must not be privileged", where)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: needs cpu/memory requests and a memory limit", where)
		}
		// Config paths are node paths: each hostPath is mounted at its own path.
		for _, m := range c.VolumeMounts {
			if hp, ok := hostPaths[m.Name]; ok && m.MountPath != hp {
				t.Errorf("%s: hostPath %s is mounted at %s; mount it at the same path, %s", where, m.Name, m.MountPath, hp)
			}
		}
		// The installer's command and variables exist in the binary.
		command := "install"
		if len(c.Command) > 0 {
			if c.Command[0] != "/flexblock" || len(c.Command) < 2 {
				t.Errorf("%s: command %v", where, c.Command)
				continue
			}
			command = c.Command[1]
			h := help(t, command)
			for _, a := range c.Command[2:] {
				if strings.HasPrefix(a, "--") && !strings.Contains(h, strings.SplitN(a, "=", 2)[0]+" ") {
					t.Errorf("%s: flexblock %s has no flag %s", where, command, a)
				}
			}
		}
		h := help(t, command)
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
			if strings.HasPrefix(e.Name, "FLEXBLOCK_") && !strings.Contains(h, "$"+e.Name) {
				t.Errorf("%s: flexblock %s reads no variable %s", where, command, e.Name)
			}
		}
		if v, ok := env["FLEXBLOCK_LOG_FILE"]; ok && filepath.Dir(v) != hostPaths["log-dir"] {
			t.Errorf("%s: FLEXBLOCK_LOG_FILE %s is not in the log-dir hostPath %s", where, v, hostPaths["log-dir"])
		}
		if v, ok := env["FLEXBLOCK_STATE_DIR"]; ok && v != hostPaths["state-dir"] {
			t.Errorf("%s: FLEXBLOCK_STATE_DIR %s is not the state-dir hostPath %s", where, v, hostPaths["state-dir"])
		}
		if v, ok := env["FLEXBLOCK_PLUGIN_DIR"]; ok && v != hostPaths["plugin-dir"] {
			t.Errorf("%s: FLEXBLOCK_PLUGIN_DIR %s is not the plugin-dir hostPath %s", where, v, hostPaths["plugin-dir"])
		}
		if v, ok := env["FLEXBLOCK_TIMEOUTS"]; ok {
			if _, err := installer.ParseTimeouts(strings.Split(v, ",")); err != nil {
				t.Errorf("%s: FLEXBLOCK_TIMEOUTS: %v", where, err)
			}
		}
		if command == "install" && hostPaths["log-dir"] == "" {
			t.Errorf("%s: the installer follows the driver log: mount the log-dir hostPath", where)
		}
	}
}

func subset(a, b map[string]string) bool {
	if len(a) == 0 {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestKustomizationsListExistingFiles(t *testing.T) {
	docs := objects(t)
	ks, files := all[*kustomization](docs)
	for i, k := range ks {
		dir := filepath.Join(examplesDir, filepath.Dir(files[i]))
		if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" || len(k.Resources) == 0 {
			t.Errorf("%s: %+v", files[i], k)
		}
		images := map[string]bool{}
		for _, r := range k.Resources {
			if _, err := os.Stat(filepath.Join(dir, r)); err != nil {
				t.Errorf("%s: resource %s: %v", files[i], r, err)
				continue
			}
			for _, d := range docs {
				if filepath.Join(filepath.Dir(files[i]), r) != d.file {
					continue
				}
				if m, ok := meta(d.obj); ok && k.Namespace != "" && m.Namespace != "" && m.Namespace != k.Namespace {
					t.Errorf("%s: %s is in namespace %s, the kustomization sets %s", files[i], r, m.Namespace, k.Namespace)
				}
				if ds, ok := d.obj.(*appsv1.DaemonSet); ok {
					for _, c := range ds.Spec.Template.Spec.Containers {
						images[c.Image] = true
					}
				}
			}
		}
		for _, im := range k.Images {
			if !images[im.Name] {
				t.Errorf("%s: images entry %q matches no container image", files[i], im.Name)
			}
			if im.NewName == "" || im.NewTag == "" {
				t.Errorf("%s: images entry %q needs newName and newTag", files[i], im.Name)
			}
		}
	}
	if len(ks) == 0 {
		t.Fatal("no kustomization.yaml under examples/")
	}
	if _, err := os.Stat(filepath.Join(examplesDir, "deploy", "kustomization.yaml")); err != nil {
		t.Errorf("examples/deploy/kustomization.yaml: %v", err)
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(examplesDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(s, -1)
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, have FROM %v", froms)
	}
	final := froms[len(froms)-1][1]
	if final != "scratch" && !strings.HasPrefix(final, "gcr.io/distroless/static") {
		t.Errorf("final stage %s: want scratch or distroless/static (the node tools stay on the host)", final)
	}
	for _, want := range []string{"CGO_ENABLED=0", `ENTRYPOINT ["/flexblock", "install"]`, "COPY --from=build /out/flexblock /flexblock"} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	// The build image's Go is at least the module's.
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(gomod))
	if goVer == nil || !strings.Contains(s, "FROM golang:"+goVer[1]) {
		t.Errorf("Dockerfile's golang image does not match go.mod's go %v", goVer)
	}
}
