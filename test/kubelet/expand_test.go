package kubelet

import (
	"os"
	osexec "os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/kubernetes/pkg/volume"
)

// TestExpandFS: the driver says requiresFSResize, so kubelet grows a
// mounted PV's filesystem after the volume grew (expandfs), as its
// operation generator does for a pod's volume: the plugin found by spec,
// the pod's dir as DeviceMountPath, no device path (not attachable).
func TestExpandFS(t *testing.T) {
	scenario(t)
	c := config(t)
	if c.backend != "loop" {
		t.Skip("grows the volume for good: loop backend only")
	}
	k := newKubelet(t, installOptions{})
	// Growing a mounted ext4 needs CAP_SYS_RESOURCE, which a container
	// may lack; xfs_growfs needs only CAP_SYS_ADMIN (and xfs at least
	// 300 MiB: the loop file is sparse).
	fsType, size := "ext4", int64(64<<20)
	if !hasCapability(unix.CAP_SYS_RESOURCE) {
		fsType, size = "xfs", 320<<20
		t.Logf("no CAP_SYS_RESOURCE here (online ext4 resize fails with EPERM): growing xfs instead")
	}
	vol := k.newVolumeOf(size, fsType)
	const pvName = "pv-grow"
	spec := k.pvSpec(pvName, vol, "", "", false)
	pod := newPod("app", "grower")
	m, err := k.setUp(spec, pod, nil)
	if err != nil {
		t.Fatalf("SetUp: %v", err)
	}
	dir := m.GetPath()
	k.checkMounted(dir, vol, false)
	content := writeData(t, dir, "before-resize.txt")
	before := fsBytes(t, dir)

	// The volume grows (for loop: the backing file and the device).
	if err := os.Truncate(vol.image, 2*size); err != nil {
		t.Fatal(err)
	}
	if out, err := osexec.Command("losetup", "-c", vol.device).CombinedOutput(); err != nil {
		t.Fatalf("losetup -c %s: %v %s", vol.device, err, out)
	}

	ep, err := k.mgr.FindNodeExpandablePluginBySpec(spec)
	if err != nil || ep == nil {
		t.Fatalf("FindNodeExpandablePluginBySpec: %v %v", ep, err)
	}
	if !ep.RequiresFSResize() {
		t.Fatalf("kubelet would not call expandfs: RequiresFSResize is false")
	}
	ok, err := ep.NodeExpand(volume.NodeResizeOptions{
		VolumeSpec:      spec,
		DeviceMountPath: dir,
		NewSize:         *resource.NewQuantity(2*size, resource.BinarySI),
		OldSize:         *resource.NewQuantity(size, resource.BinarySI),
	})
	if err != nil || !ok {
		t.Fatalf("NodeExpand: %v, %v", ok, err)
	}
	after := fsBytes(t, dir)
	if after < before+size*3/4 {
		t.Errorf("filesystem %d bytes after expandfs, was %d: not grown to about %d", after, before, 2*size)
	}
	t.Logf("filesystem grew from %d to %d bytes", before, after)
	ec := k.exec.of(k.driverExe(), "expandfs")
	if len(ec) != 1 {
		t.Fatalf("expandfs ran %d times, want 1", len(ec))
	}
	newSize, oldSize := strconv.FormatInt(2*size, 10), strconv.FormatInt(size, 10)
	if a := ec[0].argv; len(a) != 7 || a[3] != "" || a[4] != dir || a[5] != newSize || a[6] != oldSize {
		t.Errorf("expandfs argv %q: want <json> \"\" %s %s %s", a[1:], dir, newSize, oldSize)
	}
	readData(t, dir, "before-resize.txt", content)
	if err := k.tearDown(pvName, pod.UID); err != nil {
		t.Errorf("TearDown: %v", err)
	}
	k.checkGone(dir)
	k.checkReleased(vol, 1)
}

// hasCapability tells whether this process has capability c in effect.
func hasCapability(c int) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<uint(c)) != 0
		}
	}
	return false
}

// fsBytes is the size of the filesystem mounted at dir.
func fsBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * st.Bsize
}
