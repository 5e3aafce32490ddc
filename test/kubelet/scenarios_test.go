package kubelet

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/volume"
)

func int64p(v int64) *int64 { return &v }

// TestProbeAndInit: kubelet's prober loads the installed driver (init) and
// derives its capabilities from the answer: attach, selinuxRelabel,
// fsGroup, requiresFSResize, supportsMetrics, for the installer's
// defaults and for each flag turned the other way.
func TestProbeAndInit(t *testing.T) {
	scenario(t)
	c := config(t)
	k := newKubelet(t, installOptions{})
	name := c.driverName()
	if !contains(k.prober.loaded(), name) {
		t.Fatalf("kubelet's prober did not load %s from %s (loaded %v, errors %v)", name, k.pluginDir, k.prober.loaded(), k.prober.errors())
	}
	inits := k.exec.of(k.driverExe(), "init")
	if len(inits) != 1 {
		t.Fatalf("init ran %d times at the first probe, want 1", len(inits))
	}
	checkInitAnswer(t, inits[0], false)

	p, err := k.mgr.FindPluginByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(volume.AttachableVolumePlugin); ok {
		t.Errorf("kubelet made %s attachable with the installer's default attach=false", name)
	}
	if ne, ok := p.(volume.NodeExpandableVolumePlugin); !ok || !ne.RequiresFSResize() {
		t.Errorf("kubelet's plugin does not require FS resize: expandfs would never be called")
	}
	v := &testVolume{options: map[string]string{"device": "/dev/loop0"}, fsType: c.fsType}
	m, err := p.NewMounter(k.inlineSpec("data", v, "", false), newPod("app", "probe"))
	if err != nil {
		t.Fatal(err)
	}
	if a := m.GetAttributes(); !a.SELinuxRelabel || a.ReadOnly || !a.Managed {
		t.Errorf("mounter attributes %+v, want SELinuxRelabel, Managed, not ReadOnly", a)
	}
	if got := k.exec.sequence(k.driverExe()); len(got) != 1 {
		t.Errorf("driver calls %v, want only init: NewMounter and GetAttributes exec nothing", got)
	}

	t.Run("attach", func(t *testing.T) {
		k := newKubelet(t, installOptions{attach: true})
		p, err := k.mgr.FindPluginByName(name)
		if err != nil {
			t.Fatal(err)
		}
		checkInitAnswer(t, k.exec.of(k.driverExe(), "init")[0], true)
		if _, ok := p.(volume.AttachableVolumePlugin); !ok {
			t.Errorf("kubelet did not make %s attachable with attach=true", name)
		}
		if _, ok := p.(volume.DeviceMountableVolumePlugin); !ok {
			t.Errorf("kubelet's plugin is not device-mountable with attach=true")
		}
	})

	t.Run("no-fsgroup-no-selinux", func(t *testing.T) {
		k := newKubelet(t, installOptions{noFSGroup: true, noSELinux: true})
		vol := k.newVolume()
		pod := newPod("app", "nofsgroup")
		spec := k.inlineSpec("data", vol, "", false)
		m, err := k.setUp(spec, pod, int64p(3456))
		if err != nil {
			t.Fatalf("SetUp: %v", err)
		}
		dir := k.podDir(pod, "data")
		k.checkMounted(dir, vol, false)
		if m.GetAttributes().SELinuxRelabel {
			t.Errorf("kubelet would relabel although the driver says selinuxRelabel:false")
		}
		checkOwnership(t, dir, 3456, false)
		if err := k.tearDown("data", pod.UID); err != nil {
			t.Errorf("TearDown: %v", err)
		}
		k.checkGone(dir)
		k.checkReleased(vol, 1)
	})
}

// checkInitAnswer checks init's raw answer: exit 0, nothing but one JSON
// object, Success, all five capabilities present as booleans.
func checkInitAnswer(t *testing.T, c driverCall, attach bool) {
	t.Helper()
	if c.err != nil {
		t.Errorf("init: %v (output %q)", c.err, c.out)
	}
	var ans struct {
		Status       string                     `json:"status"`
		Capabilities map[string]json.RawMessage `json:"capabilities"`
	}
	dec := json.NewDecoder(bytes.NewReader(c.out))
	if err := dec.Decode(&ans); err != nil || dec.More() {
		t.Fatalf("init answered %q: not exactly one JSON object (%v)", c.out, err)
	}
	if ans.Status != "Success" {
		t.Errorf("init status %q", ans.Status)
	}
	want := map[string]bool{"attach": attach, "selinuxRelabel": true, "supportsMetrics": true, "fsGroup": true, "requiresFSResize": true}
	for key := range want {
		raw, ok := ans.Capabilities[key]
		if !ok {
			t.Errorf("init leaves out capability %q: kubelet defaults it to true", key)
			continue
		}
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Errorf("capability %q is %s, not a boolean", key, raw)
		}
		if key == "attach" && b != attach {
			t.Errorf("capability attach = %v, want %v (the installer's --attach)", b, attach)
		}
	}
}

// TestInlineVolumeWithSecret: an inline flexVolume with a secretRef, as
// kubelet mounts it: NewMounter -> SetUp (with fsGroup) -> TearDown ->
// TearDown again; the data survives for the next pod.
func TestInlineVolumeWithSecret(t *testing.T) {
	scenario(t)
	c := config(t)
	k := newKubelet(t, installOptions{secrets: []*v1.Secret{
		newSecret("app", "creds", v1.SecretType(c.driverName()), c.secret),
	}})
	vol := k.newVolume()
	spec := k.inlineSpec("data", vol, "creds", false)
	pod := newPod("app", "writer")
	dir := k.podDir(pod, "data")

	m, err := k.setUp(spec, pod, int64p(2345))
	if err != nil {
		t.Fatalf("SetUp: %v", err)
	}
	if m.GetPath() != dir {
		t.Errorf("mounter path %s, want %s", m.GetPath(), dir)
	}
	mounted := k.checkMounted(dir, vol, false)
	if vol.id != "" {
		global := k.root + "/plugins/flexblock/" + k.cfg.backend + "/mounts/" + vol.id
		g := k.checkMounted(global, vol, false)
		if g.major != mounted.major || g.minor != mounted.minor || g.root != mounted.root {
			t.Errorf("pod dir %s is not a bind of the node's mount %s", mounted, g)
		}
	}
	checkOwnership(t, dir, 2345, true)
	// supportsMetrics: kubelet's volume stats are statfs of the pod dir.
	if st, err := m.GetMetrics(); err != nil || st.Capacity == nil || st.Capacity.Value() <= 0 || st.Available.Value() > st.Capacity.Value() {
		t.Errorf("kubelet's volume stats of a mounted volume: %+v, %v", st, err)
	}
	mc := k.exec.of(k.driverExe(), "mount")
	if len(mc) != 1 {
		t.Fatalf("mount ran %d times, want 1", len(mc))
	}
	o := optionsOf(t, mc[0])
	checkSecretPassed(t, o, c.secret)
	for key, want := range map[string]string{
		"kubernetes.io/fsType":              vol.fsType,
		"kubernetes.io/readwrite":           "rw",
		"kubernetes.io/pvOrVolumeName":      "data",
		"kubernetes.io/pod.name":            "writer",
		"kubernetes.io/pod.namespace":       "app",
		"kubernetes.io/pod.uid":             string(pod.UID),
		"kubernetes.io/serviceAccount.name": "default",
		"kubernetes.io/mounterArgs.FsGroup": "2345",
	} {
		if o[key] != want {
			t.Errorf("kubelet's option %s = %q, want %q", key, o[key], want)
		}
	}
	content := writeData(t, dir, "inline.txt")

	if err := k.tearDown("data", pod.UID); err != nil {
		t.Fatalf("TearDown: %v", err)
	}
	k.checkGone(dir)
	k.checkReleased(vol, 1)

	// TearDown again (kubelet retries, or the pod is cleaned up twice):
	// the dir is gone, so kubelet succeeds without calling the driver.
	before := len(k.exec.of(k.driverExe()))
	if err := k.tearDown("data", pod.UID); err != nil {
		t.Errorf("second TearDown: %v", err)
	}
	if after := len(k.exec.of(k.driverExe())); after != before {
		t.Errorf("second TearDown called the driver %d times", after-before)
	}
	// TearDown with the dir left behind but not mounted (a kubelet that
	// restarted after the unmount): unmount must succeed and leave
	// nothing in the dir, or kubelet's os.Remove fails.
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := k.tearDown("data", pod.UID); err != nil {
		t.Errorf("TearDown of an unmounted dir: %v", err)
	}
	k.checkGone(dir)
	if n := len(k.exec.of(k.driverExe(), "unmount")); n != 2 {
		t.Errorf("unmount ran %d times, want 2", n)
	}
	k.checkReleased(vol, 1)

	// The next pod finds the data.
	pod2 := newPod("app", "reader")
	dir2 := k.podDir(pod2, "data")
	if _, err := k.setUp(spec, pod2, nil); err != nil {
		t.Fatalf("SetUp for the second pod: %v", err)
	}
	k.checkMounted(dir2, vol, false)
	readData(t, dir2, "inline.txt", content)
	if err := k.tearDown("data", pod2.UID); err != nil {
		t.Errorf("TearDown for the second pod: %v", err)
	}
	k.checkGone(dir2)
	k.checkReleased(vol, 2)
	if n := len(k.exec.of(k.driverExe(), "getvolumename")); n != 1 {
		t.Errorf("getvolumename ran %d times: its Not supported answer is remembered until the next probe, want 1", n)
	}
	k.checkLogClean(c.secret)
}

// TestPersistentVolumeSecretInOtherNamespace: a PV whose secretRef names
// another namespace than the pod's; kubelet must read that one (a Secret
// of the same name in the pod's namespace is a decoy). Then the same PV
// through a read-only claim.
func TestPersistentVolumeSecretInOtherNamespace(t *testing.T) {
	scenario(t)
	c := config(t)
	decoy := map[string][]byte{}
	for key := range c.secret {
		decoy[key] = []byte("decoy-" + randomHex(6))
	}
	typ := v1.SecretType(c.driverName())
	k := newKubelet(t, installOptions{secrets: []*v1.Secret{
		newSecret("storage", "ceph-creds", typ, c.secret),
		newSecret("app", "ceph-creds", typ, decoy),
	}})
	vol := k.newVolume()
	const pvName = "pv-conformance-1"
	spec := k.pvSpec(pvName, vol, "ceph-creds", "storage", false)
	pod := newPod("app", "pv-writer")
	dir := k.podDir(pod, pvName)

	if _, err := k.setUp(spec, pod, int64p(2000)); err != nil {
		t.Fatalf("SetUp: %v", err)
	}
	k.checkMounted(dir, vol, false)
	o := optionsOf(t, k.exec.of(k.driverExe(), "mount")[0])
	checkSecretPassed(t, o, c.secret)
	if o["kubernetes.io/pvOrVolumeName"] != pvName || o["kubernetes.io/readwrite"] != "rw" {
		t.Errorf("kubelet's options %v: want pvOrVolumeName %s, readwrite rw", o, pvName)
	}
	checkOwnership(t, dir, 2000, true)
	content := writeData(t, dir, "pv.txt")
	if err := k.tearDown(pvName, pod.UID); err != nil {
		t.Fatalf("TearDown: %v", err)
	}
	k.checkGone(dir)
	k.checkReleased(vol, 1)

	// Read-only claim: the driver mounts read-only; writes fail.
	ro := k.pvSpec(pvName, vol, "ceph-creds", "storage", true)
	pod2 := newPod("app", "pv-reader")
	dir2 := k.podDir(pod2, pvName)
	m, err := k.setUp(ro, pod2, int64p(2000))
	if err != nil {
		t.Fatalf("SetUp read-only: %v", err)
	}
	k.checkMounted(dir2, vol, true)
	if a := m.GetAttributes(); !a.ReadOnly {
		t.Errorf("mounter attributes %+v, want ReadOnly", a)
	}
	o = optionsOf(t, k.exec.of(k.driverExe(), "mount")[1])
	if o["kubernetes.io/readwrite"] != "ro" {
		t.Errorf("kubernetes.io/readwrite = %q for a read-only claim", o["kubernetes.io/readwrite"])
	}
	readData(t, dir2, "pv.txt", content)
	if err := os.WriteFile(dir2+"/new.txt", []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("write to a read-only volume: %v, want EROFS", err)
	}
	if err := k.tearDown(pvName, pod2.UID); err != nil {
		t.Errorf("TearDown read-only: %v", err)
	}
	k.checkGone(dir2)
	k.checkReleased(vol, 2)
	k.checkLogClean(c.secret)
	k.checkLogClean(decoy)
}

// TestAttachableFlow: attach mode on. The controller (its own plugin
// manager) attaches and detaches; kubelet waits for the device, mounts it
// once at its global dir, bind-mounts it into each pod (the driver answers
// Not supported to mount), and unmounts the device after the last pod.
func TestAttachableFlow(t *testing.T) {
	scenario(t)
	c := config(t)
	k := newKubelet(t, installOptions{attach: true, secrets: []*v1.Secret{
		newSecret("storage", "ceph-creds", v1.SecretType(c.driverName()), c.secret),
	}})
	vol := k.newVolume()
	const pvName = "pv-attach-1"
	spec := k.pvSpec(pvName, vol, "ceph-creds", "storage", false)

	// kube-controller-manager: the attach/detach controller.
	ctrl := k.controller()
	cp, err := ctrl.FindAttachablePluginBySpec(spec)
	if err != nil || cp == nil {
		t.Fatalf("controller: FindAttachablePluginBySpec: %v %v", cp, err)
	}
	volName, err := cp.GetVolumeName(spec)
	if err != nil || volName != pvName {
		t.Fatalf("controller: GetVolumeName = %q, %v; want %s", volName, err, pvName)
	}
	ca, err := cp.NewAttacher()
	if err != nil {
		t.Fatal(err)
	}
	devicePath, err := ca.Attach(spec, nodeName)
	if err != nil {
		t.Fatalf("controller: Attach: %v", err)
	}
	att, err := ca.VolumesAreAttached([]*volume.Spec{spec}, nodeName)
	if err != nil || !att[spec] {
		t.Errorf("controller: VolumesAreAttached = %v, %v; want attached", att, err)
	}

	// kubelet, first pod: WaitForAttach, MountDevice, SetUp.
	kp, err := k.mgr.FindAttachablePluginBySpec(spec)
	if err != nil || kp == nil {
		t.Fatalf("kubelet: FindAttachablePluginBySpec: %v %v", kp, err)
	}
	dmPlugin, err := k.mgr.FindDeviceMountablePluginBySpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	ka, err := kp.NewAttacher()
	if err != nil {
		t.Fatal(err)
	}
	podA, podB := newPod("app", "attach-a"), newPod("app", "attach-b")
	dev, err := ka.WaitForAttach(spec, devicePath, podA, 2*time.Minute)
	if err != nil {
		t.Fatalf("kubelet: WaitForAttach: %v", err)
	}
	if vol.device != "" && dev != vol.device {
		t.Errorf("WaitForAttach = %q, want %s", dev, vol.device)
	}
	dm, err := dmPlugin.NewDeviceMounter()
	if err != nil {
		t.Fatal(err)
	}
	dmp, err := dm.GetDeviceMountPath(spec)
	if err != nil {
		t.Fatal(err)
	}
	if want := k.root + "/plugins/kubernetes.io/flexvolume/" + c.driverName() + "/mounts/" + pvName; dmp != want {
		t.Errorf("device mount path %s, want %s", dmp, want)
	}
	if err := dm.MountDevice(spec, dev, dmp, volume.DeviceMounterArgs{FsGroup: int64p(4000)}); err != nil {
		t.Fatalf("kubelet: MountDevice: %v", err)
	}
	global := k.checkMounted(dmp, vol, false)
	mA, err := k.setUp(spec, podA, int64p(4000))
	if err != nil {
		t.Fatalf("kubelet: SetUp: %v", err)
	}
	dirA := mA.GetPath()
	a := k.checkMounted(dirA, vol, false)
	if a.major != global.major || a.minor != global.minor {
		t.Errorf("pod dir %s is not the device mount %s", a, global)
	}
	checkOwnership(t, dirA, 4000, true)
	content := writeData(t, dirA, "attach.txt")

	// Second pod on the same node: WaitForAttach again, MountDevice is
	// skipped (already mounted), SetUp binds again.
	if dev2, err := ka.WaitForAttach(spec, devicePath, podB, 2*time.Minute); err != nil || dev2 != dev {
		t.Errorf("second WaitForAttach = %q, %v; want %s", dev2, err, dev)
	}
	if err := dm.MountDevice(spec, dev, dmp, volume.DeviceMounterArgs{}); err != nil {
		t.Errorf("second MountDevice: %v", err)
	}
	mB, err := k.setUp(spec, podB, nil)
	if err != nil {
		t.Fatalf("kubelet: SetUp of the second pod: %v", err)
	}
	dirB := mB.GetPath()
	k.checkMounted(dirB, vol, false)
	readData(t, dirB, "attach.txt", content)

	// Teardown: pods, then the device once unreferenced, then detach.
	if err := k.tearDown(pvName, podA.UID); err != nil {
		t.Errorf("TearDown A: %v", err)
	}
	k.checkGone(dirA)
	refs, err := kp.GetDeviceMountRefs(dmp)
	if err != nil || len(refs) != 1 || refs[0] != dirB {
		t.Errorf("device mount refs %v, %v; want [%s]", refs, err, dirB)
	}
	k.checkReleased(vol, 0)
	if err := k.tearDown(pvName, podB.UID); err != nil {
		t.Errorf("TearDown B: %v", err)
	}
	k.checkGone(dirB)
	if refs, err := kp.GetDeviceMountRefs(dmp); err != nil || len(refs) != 0 {
		t.Errorf("device mount refs after both pods: %v, %v", refs, err)
	}
	dumPlugin, err := k.mgr.FindDeviceMountablePluginByName(c.driverName())
	if err != nil {
		t.Fatal(err)
	}
	du, err := dumPlugin.NewDeviceUnmounter()
	if err != nil {
		t.Fatal(err)
	}
	if err := du.UnmountDevice(dmp); err != nil {
		t.Fatalf("kubelet: UnmountDevice: %v", err)
	}
	k.checkGone(dmp)
	k.checkReleased(vol, 1)
	cd, err := cp.NewDetacher()
	if err != nil {
		t.Fatal(err)
	}
	if err := cd.Detach(volName, nodeName); err != nil {
		t.Errorf("controller: Detach: %v", err)
	}

	// Who called what: kubelet never attaches or detaches, and never
	// sees a secret; the controller never mounts.
	ks := k.exec.sequence(k.driverExe())
	for _, call := range []string{"attach", "detach", "isattached"} {
		if count(ks, call) != 0 {
			t.Errorf("kubelet called %s: %v", call, ks)
		}
	}
	for call, n := range map[string]int{"init": 1, "waitforattach": 2, "mountdevice": 1, "mount": 1, "unmount": 1, "unmountdevice": 1} {
		if count(ks, call) != n {
			t.Errorf("kubelet called %s %d times, want %d: %v", call, count(ks, call), n, ks)
		}
	}
	for _, dc := range k.exec.of(k.driverExe(), "waitforattach", "mountdevice") {
		for key := range optionsOf(t, dc) {
			if strings.HasPrefix(key, "kubernetes.io/secret/") {
				t.Errorf("kubelet passed %s to %s", key, dc.call())
			}
		}
	}
	cs := k.ctrlExec.sequence(k.driverExe())
	for call, n := range map[string]int{"attach": 1, "isattached": 1, "detach": 1, "mount": 0, "mountdevice": 0, "waitforattach": 0} {
		if count(cs, call) != n {
			t.Errorf("controller called %s %d times, want %d: %v", call, count(cs, call), n, cs)
		}
	}
	k.checkLogClean(c.secret)
}

// TestWrongSecretType: a Secret whose type is not the driver's name is
// refused by kubelet before the driver runs, with a clear error, and
// nothing is left behind.
func TestWrongSecretType(t *testing.T) {
	scenario(t)
	c := config(t)
	for _, typ := range []v1.SecretType{v1.SecretTypeOpaque, "kubernetes.io/rbd"} {
		t.Run(strings.ReplaceAll(string(typ), "/", "-"), func(t *testing.T) {
			k := newKubelet(t, installOptions{secrets: []*v1.Secret{
				newSecret("app", "creds", typ, c.secret),
			}})
			vol := k.newVolume()
			pod := newPod("app", "wrong-secret")
			_, err := k.setUp(k.inlineSpec("data", vol, "creds", false), pod, nil)
			want := "couldn't get secret app/creds err: cannot get secret of type " + c.driverName()
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("SetUp with a Secret of type %s: %v, want an error containing %q", typ, err, want)
			}
			t.Logf("kubelet refused: %v", err)
			if n := len(k.exec.of(k.driverExe(), "mount")); n != 0 {
				t.Errorf("the driver's mount ran %d times", n)
			}
			k.checkGone(k.podDir(pod, "data"))
		})
	}
}
