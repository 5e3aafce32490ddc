package kubelet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/kubernetes/pkg/volume"
	"k8s.io/kubernetes/pkg/volume/flexvolume"
	volumetesting "k8s.io/kubernetes/pkg/volume/testing"
	"k8s.io/mount-utils"
	"k8s.io/utils/exec"
)

const nodeName = types.NodeName("conformance-node")

// kubelet is one node: a plugin dir with the driver installed by the
// installer, a kubelet root, and kubelet's volume plugin manager fed by
// the real FlexVolume prober. controller() adds a second plugin manager
// on the same plugin dir, as kube-controller-manager has.
type kubelet struct {
	t    *testing.T
	cfg  *suiteConfig
	opts installOptions

	base      string // everything of this node lives below
	pluginDir string // kubelet's --volume-plugin-dir
	root      string // kubelet's --root-dir
	stateDir  string
	logFile   string

	client *fake.Clientset
	exec   *recorder // kubelet's exec: the real one, recorded
	prober *recProber
	mgr    *volume.VolumePluginMgr

	ctrlExec *recorder
	ctrl     *volume.VolumePluginMgr

	loops []string
	// wantProbeErrors: the scenario breaks the driver on purpose.
	wantProbeErrors bool
	// noWrap: keep the driver intact even with envWrapStderr.
	noWrap bool
}

// installOptions are the installer's capability flags.
type installOptions struct {
	attach         bool
	noFSGroup      bool
	noSELinux      bool
	secrets        []*v1.Secret
	noStderrWrap   bool
	expectBreakage bool
}

// newKubelet installs the driver into a fresh plugin dir and starts
// kubelet's plugin manager on it (which probes it: init).
func newKubelet(t *testing.T, o installOptions) *kubelet {
	t.Helper()
	c := config(t)
	base, err := os.MkdirTemp("", "fbconf-")
	if err != nil {
		t.Fatal(err)
	}
	k := &kubelet{
		t: t, cfg: c, opts: o, base: base,
		pluginDir:       filepath.Join(base, "volume-plugins"),
		root:            filepath.Join(base, "kubelet"),
		stateDir:        filepath.Join(base, "state"),
		logFile:         filepath.Join(base, "log", "flexblock.log"),
		wantProbeErrors: o.expectBreakage,
		noWrap:          o.noStderrWrap,
	}
	t.Cleanup(k.cleanup)
	for _, d := range []string{k.root, k.stateDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	objs := []runtime.Object{}
	for _, s := range o.secrets {
		objs = append(objs, s)
	}
	k.client = fake.NewClientset(objs...)

	k.install(driverBinary(t), driverBinary(t))
	if c.wrapStderr && !k.noWrap {
		k.breakDriver()
	}

	// kubelet: VolumePluginMgr.InitPlugins with the FlexVolume prober, as
	// kubelet's NewInitializedVolumePluginMgr does; the host's mounter is
	// the real one (the driver mounts for real, and kubelet's own bind in
	// attach mode must be real too).
	k.exec = newRecorder()
	k.prober = &recProber{inner: flexvolume.GetDynamicPluginProber(k.pluginDir, k.exec)}
	host := &hostWithRealMounter{
		FakeVolumeHost: volumetesting.NewFakeVolumeHostWithCSINodeName(t, k.root, k.client, nil, string(nodeName), nil, nil),
		mounter:        mount.New(""),
	}
	k.mgr = &volume.VolumePluginMgr{}
	if err := k.mgr.InitPlugins(nil, k.prober, host); err != nil {
		t.Fatalf("kubelet's InitPlugins: %v", err)
	}
	return k
}

// hostWithRealMounter is kubelet's volume host as far as FlexVolume uses it
// (root dir, pod and plugin dirs, kube client) with the real mounter.
type hostWithRealMounter struct {
	volumetesting.FakeVolumeHost
	mounter mount.Interface
}

func (h *hostWithRealMounter) GetMounter() mount.Interface { return h.mounter }

// controller returns kube-controller-manager's plugin manager: its own
// prober on the same plugin dir (attach, isattached, detach run there).
func (k *kubelet) controller() *volume.VolumePluginMgr {
	if k.ctrl == nil {
		k.ctrlExec = newRecorder()
		p := &recProber{inner: flexvolume.GetDynamicPluginProber(k.pluginDir, k.ctrlExec)}
		host := volumetesting.NewFakeVolumeHostWithCSINodeName(k.t, filepath.Join(k.base, "controller"), k.client, nil, "", nil, nil)
		k.ctrl = &volume.VolumePluginMgr{}
		if err := k.ctrl.InitPlugins(nil, p, host); err != nil {
			k.t.Fatalf("controller's InitPlugins: %v", err)
		}
	}
	return k.ctrl
}

// driverExe is the installed executable kubelet runs.
func (k *kubelet) driverExe() string {
	return filepath.Join(k.pluginDir, "flexblock~"+k.cfg.backend, k.cfg.backend)
}

// install puts source into the plugin dir the way a node gets it:
// flexblock install --once (atomic, self-tested), run by the executable
// installer.
func (k *kubelet) install(installer, source string) string {
	k.t.Helper()
	args := []string{"install", "--once",
		"--plugin-dir", k.pluginDir,
		"--source", source,
		"--kubelet-root", k.root,
		"--state-dir", k.stateDir,
		"--log-file", k.logFile,
		"--attach=" + strconv.FormatBool(k.opts.attach),
		"--fs-group=" + strconv.FormatBool(!k.opts.noFSGroup),
		"--selinux-relabel=" + strconv.FormatBool(!k.opts.noSELinux),
	}
	args = append(args, k.cfg.installArgs...)
	cmd := osexec.Command(installer, args...)
	cmd.Env = withoutFlexblockEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		k.t.Fatalf("flexblock %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// withoutFlexblockEnv keeps the installer's FLEXBLOCK_* flag variables of
// the caller's environment out of the install.
func withoutFlexblockEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "FLEXBLOCK_") {
			env = append(env, e)
		}
	}
	return env
}

// breakDriver replaces the installed driver by a shell wrapper that writes
// one line to stderr and then execs the intact driver (kept outside the
// plugin dir, with its config, so it still acts as flexblock/<backend>).
// The replacement is atomic (dot-named temp file, rename), as an install.
func (k *kubelet) breakDriver() {
	k.t.Helper()
	dir := filepath.Join(k.base, "intact", "flexblock~"+k.cfg.backend)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		k.t.Fatal(err)
	}
	intact := filepath.Join(dir, k.cfg.backend)
	copyFile(k.t, k.driverExe(), intact, 0o755)
	copyFile(k.t, filepath.Join(filepath.Dir(k.driverExe()), "flexblock.json"), filepath.Join(dir, "flexblock.json"), 0o644)
	script := fmt.Sprintf("#!/bin/sh\necho '%s' >&2\nexec %s \"$@\"\n", strayLine, intact)
	writeAtomic(k.t, k.driverExe(), []byte(script), 0o755)
}

// intactDriver is the real driver behind breakDriver's wrapper.
func (k *kubelet) intactDriver() string {
	return filepath.Join(k.base, "intact", "flexblock~"+k.cfg.backend, k.cfg.backend)
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, to, b, mode)
}

func writeAtomic(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".conformance-tmp")
	if err := os.WriteFile(tmp, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// cleanup checks for leaks (mounts left under the node's dirs, probe
// errors), then removes everything, unmounting first: a RemoveAll through
// a live mount would delete the volume's data.
func (k *kubelet) cleanup() {
	t := k.t
	if t.Failed() {
		if b, err := os.ReadFile(k.logFile); err == nil {
			t.Logf("driver log %s (last 4 KiB):\n%s", k.logFile, tail(b, 4096))
		}
	}
	if !k.wantProbeErrors && k.prober != nil {
		for _, e := range k.prober.errors() {
			t.Errorf("kubelet's prober reported: %v", e)
		}
	}
	left := mountsUnder(t, k.base)
	for _, m := range left {
		t.Errorf("mount left behind: %s (%s %s)", m.point, m.fstype, m.source)
	}
	sort.Slice(left, func(i, j int) bool { return len(left[i].point) > len(left[j].point) })
	for _, m := range left {
		if err := unix.Unmount(m.point, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", m.point, err)
		}
	}
	for _, l := range k.loops {
		if out, err := osexec.Command("losetup", "-d", l).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v %s", l, err, out)
		}
	}
	if still := mountsUnder(t, k.base); len(still) > 0 {
		t.Errorf("not removing %s: still mounted: %v", k.base, still)
		return
	}
	// kubelet's prober recreates its plugin dir when it sees it removed
	// (and its watcher cannot be stopped). A rename makes the watcher drop
	// the watch instead, so the removal goes unnoticed.
	if err := os.Rename(k.pluginDir, filepath.Join(k.base, ".removed-plugins")); err != nil {
		t.Errorf("rename the plugin dir: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := os.RemoveAll(k.base); err != nil {
		t.Errorf("remove %s: %v", k.base, err)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// ---- volumes ----

// testVolume is one volume of the backend under test.
type testVolume struct {
	options map[string]string
	device  string // the block device when known in advance (loop)
	id      string // the driver's volume id when known (loop: loopN)
	image   string // loop: the backing file
	fsType  string // the spec's fsType
}

// newVolume returns a volume: a fresh loop device for loop (64 MiB,
// blank), the configured volume for the other backends.
func (k *kubelet) newVolume() *testVolume { return k.newVolumeOf(64<<20, k.cfg.fsType) }

// newVolumeOf is newVolume with the loop device's size and the fsType.
func (k *kubelet) newVolumeOf(size int64, fsType string) *testVolume {
	k.t.Helper()
	if k.cfg.backend != "loop" {
		o := map[string]string{}
		for key, v := range k.cfg.options {
			o[key] = v
		}
		return &testVolume{options: o, fsType: k.cfg.fsType}
	}
	img := filepath.Join(k.base, fmt.Sprintf("loop-%d.img", len(k.loops)))
	f, err := os.Create(img)
	if err != nil {
		k.t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		k.t.Fatal(err)
	}
	f.Close()
	out, err := osexec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		k.t.Fatalf("losetup -f --show %s: %v %s", img, err, out)
	}
	dev := strings.TrimSpace(string(out))
	k.loops = append(k.loops, dev)
	return &testVolume{options: map[string]string{"device": dev}, device: dev, id: filepath.Base(dev), image: img, fsType: fsType}
}

// releases lists the loop backend's releases (volume ids), in order.
func (k *kubelet) releases() []string {
	b, err := os.ReadFile(filepath.Join(k.stateDir, "loop-releases.log"))
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

// newSecret is a Secret for the fake clientset.
func newSecret(ns, name string, typ v1.SecretType, data map[string][]byte) *v1.Secret {
	return &v1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: typ, Data: data}
}

// ---- specs and pods ----

func newPod(ns, name string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: uuid.NewUUID()},
		Spec:       v1.PodSpec{ServiceAccountName: "default"},
	}
}

// inlineSpec is a pod's inline flexVolume with a secretRef.
func (k *kubelet) inlineSpec(volName string, v *testVolume, secretName string, readOnly bool) *volume.Spec {
	src := &v1.FlexVolumeSource{Driver: k.cfg.driverName(), FSType: v.fsType, ReadOnly: readOnly, Options: v.options}
	if secretName != "" {
		src.SecretRef = &v1.LocalObjectReference{Name: secretName}
	}
	return volume.NewSpecFromVolume(&v1.Volume{Name: volName, VolumeSource: v1.VolumeSource{FlexVolume: src}})
}

// pvSpec is a PersistentVolume (FlexPersistentVolumeSource) as a pod sees
// it through a claim; readOnly is the claim's readOnly.
func (k *kubelet) pvSpec(pvName string, v *testVolume, secretName, secretNS string, readOnly bool) *volume.Spec {
	src := &v1.FlexPersistentVolumeSource{Driver: k.cfg.driverName(), FSType: v.fsType, Options: v.options}
	if secretName != "" {
		src.SecretRef = &v1.SecretReference{Name: secretName, Namespace: secretNS}
	}
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pvName},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeSource: v1.PersistentVolumeSource{FlexVolume: src},
			AccessModes:            []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
		},
	}
	return volume.NewSpecFromPersistentVolume(pv, readOnly)
}

// podDir is kubelet's pod volume dir for a volume of the driver.
func (k *kubelet) podDir(pod *v1.Pod, volName string) string {
	return filepath.Join(k.root, "pods", string(pod.UID), "volumes", "flexblock~"+k.cfg.backend, volName)
}

// ---- kubelet's operations, in kubelet's order ----

// setUp mounts a volume for a pod as kubelet's volume manager does with
// attach:false: find the plugin by spec (which re-probes on events), the
// unique volume name (getvolumename), NewMounter, SetUp with the pod's
// fsGroup.
func (k *kubelet) setUp(spec *volume.Spec, pod *v1.Pod, fsGroup *int64) (volume.Mounter, error) {
	k.t.Helper()
	p, err := k.mgr.FindPluginBySpec(spec)
	if err != nil {
		return nil, fmt.Errorf("FindPluginBySpec: %w%s", err, k.proberSays())
	}
	if name, err := p.GetVolumeName(spec); err != nil {
		return nil, fmt.Errorf("GetVolumeName: %w", err)
	} else if name != spec.Name() {
		k.t.Errorf("GetVolumeName = %q, want the volume's name %q", name, spec.Name())
	}
	m, err := p.NewMounter(spec, pod)
	if err != nil {
		return nil, fmt.Errorf("NewMounter: %w", err)
	}
	return m, m.SetUp(volume.MounterArgs{FsGroup: fsGroup})
}

// tearDown unmounts a pod's volume as kubelet does: by plugin name (the
// spec may be gone), NewUnmounter, TearDown.
func (k *kubelet) tearDown(volName string, podUID types.UID) error {
	p, err := k.mgr.FindPluginByName(k.cfg.driverName())
	if err != nil {
		return fmt.Errorf("FindPluginByName: %w%s", err, k.proberSays())
	}
	u, err := p.NewUnmounter(volName, podUID)
	if err != nil {
		return fmt.Errorf("NewUnmounter: %w", err)
	}
	return u.TearDown()
}

// proberSays is the last error of kubelet's prober, which kubelet only
// logs, for an error message.
func (k *kubelet) proberSays() string {
	if errs := k.prober.errors(); len(errs) > 0 {
		return fmt.Sprintf(" (kubelet's prober: %v)", errs[len(errs)-1])
	}
	return ""
}

// ---- recording the real exec ----

// recorder is the real exec (k8s.io/utils/exec) that also records each
// driver call kubelet's code makes: argv, combined output, error.
type recorder struct {
	exec.Interface
	mu    sync.Mutex
	calls []driverCall
}

type driverCall struct {
	argv []string
	out  []byte
	err  error
	when time.Time
}

// call is the FlexVolume call name (argv[1]).
func (c driverCall) call() string {
	if len(c.argv) < 2 {
		return ""
	}
	return c.argv[1]
}

func newRecorder() *recorder { return &recorder{Interface: exec.New()} }

func (r *recorder) Command(cmd string, args ...string) exec.Cmd {
	return &recordedCmd{Cmd: r.Interface.Command(cmd, args...), r: r, argv: append([]string{cmd}, args...)}
}

func (r *recorder) CommandContext(ctx context.Context, cmd string, args ...string) exec.Cmd {
	return &recordedCmd{Cmd: r.Interface.CommandContext(ctx, cmd, args...), r: r, argv: append([]string{cmd}, args...)}
}

type recordedCmd struct {
	exec.Cmd
	r    *recorder
	argv []string
}

// CombinedOutput is what kubelet's DriverCall.Run uses.
func (c *recordedCmd) CombinedOutput() ([]byte, error) {
	out, err := c.Cmd.CombinedOutput()
	c.r.mu.Lock()
	c.r.calls = append(c.r.calls, driverCall{argv: c.argv, out: out, err: err, when: time.Now()})
	c.r.mu.Unlock()
	return out, err
}

// of returns the calls of one executable, optionally only the named ones.
func (r *recorder) of(exe string, names ...string) []driverCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []driverCall
	for _, c := range r.calls {
		if c.argv[0] != exe {
			continue
		}
		if len(names) == 0 || contains(names, c.call()) {
			out = append(out, c)
		}
	}
	return out
}

// sequence is the call names of exe, in order.
func (r *recorder) sequence(exe string) []string {
	var s []string
	for _, c := range r.of(exe) {
		s = append(s, c.call())
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// recProber is kubelet's FlexVolume prober; it keeps the errors that the
// plugin manager would only log.
type recProber struct {
	inner volume.DynamicPluginProber
	mu    sync.Mutex
	errs  []error
	added []string
}

func (p *recProber) Init() error { return p.inner.Init() }

func (p *recProber) Probe() ([]volume.ProbeEvent, error) {
	ev, err := p.inner.Probe()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.errs = append(p.errs, err)
	}
	for _, e := range ev {
		if e.Op == volume.ProbeAddOrUpdate {
			p.added = append(p.added, e.PluginName)
		}
	}
	return ev, err
}

func (p *recProber) errors() []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]error(nil), p.errs...)
}

func (p *recProber) loaded() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.added...)
}

// ---- the mount table ----

type mountEntry struct {
	major, minor uint32
	root         string
	point        string
	opts         string // per-mount options (ro/rw, ...)
	fstype       string
	source       string
}

func (m mountEntry) String() string {
	return fmt.Sprintf("%s on %s (%d:%d %s %s)", m.source, m.point, m.major, m.minor, m.fstype, m.opts)
}

func (m mountEntry) readOnly() bool { return contains(strings.Split(m.opts, ","), "ro") }

// mounts parses /proc/self/mountinfo.
func mounts(t *testing.T) []mountEntry {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []mountEntry
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(f) {
			continue
		}
		var maj, min uint32
		fmt.Sscanf(f[2], "%d:%d", &maj, &min)
		out = append(out, mountEntry{major: maj, minor: min, root: unescape(f[3]), point: unescape(f[4]), opts: f[5], fstype: f[sep+1], source: unescape(f[sep+2])})
	}
	return out
}

// unescape undoes mountinfo's octal escapes (\040 for a space, ...).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountAt is the top mount at exactly path, or nil.
func mountAt(t *testing.T, path string) *mountEntry {
	t.Helper()
	var top *mountEntry
	for _, m := range mounts(t) {
		if m.point == path {
			m := m
			top = &m
		}
	}
	return top
}

// mountsUnder lists the mounts at or below dir.
func mountsUnder(t *testing.T, dir string) []mountEntry {
	t.Helper()
	var out []mountEntry
	for _, m := range mounts(t) {
		if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
			out = append(out, m)
		}
	}
	return out
}

// devNumbers is a block device's major:minor.
func devNumbers(t *testing.T, dev string) (uint32, uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		t.Fatalf("stat %s: %v", dev, err)
	}
	return unix.Major(st.Rdev), unix.Minor(st.Rdev)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
