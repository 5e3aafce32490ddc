package safepath

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/flexblock/flexblock/driver/errkind"
)

// resolvers runs f with openat2 as the kernel has it and as a kernel
// without openat2 (ENOSYS) would answer, so the fallback walk is held to
// the same behaviour.
func resolvers(t *testing.T, f func(t *testing.T)) {
	t.Run("openat2", f)
	t.Run("no-openat2", func(t *testing.T) {
		openat2 = func(int, string, *unix.OpenHow) (int, error) { return -1, unix.ENOSYS }
		t.Cleanup(func() { openat2 = unix.Openat2 })
		f(t)
	})
}

// fixture: root (a kubelet root), outside (what a tenant wants to reach).
func fixture(t *testing.T) (root, outside string) {
	base := t.TempDir()
	root, outside = filepath.Join(base, "kubelet"), filepath.Join(base, "outside")
	for _, d := range []string{root + "/pods/uid/volumes/flexblock~rbd", outside + "/pods/uid/volumes"} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	return root, outside
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.RemoveAll(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func wantKind(t *testing.T, err error, kind *errkind.Kind, names string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("want %v error, got %v", kind, err)
	}
	if names != "" && !strings.Contains(err.Error(), names+" ") {
		t.Fatalf("error does not name %s: %v", names, err)
	}
}

func empty(t *testing.T, dir string) {
	t.Helper()
	var found []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if p != dir && !strings.HasPrefix(p, dir+"/pods") {
			found = append(found, p)
		}
		return nil
	})
	if len(found) > 0 {
		t.Fatalf("created outside the root: %v", found)
	}
}

func TestPodDirSymlinkedOutside(t *testing.T) {
	resolvers(t, func(t *testing.T) {
		root, outside := fixture(t)
		pod := root + "/pods/uid"
		symlink(t, outside+"/pods/uid", pod)
		vol := pod + "/volumes/flexblock~rbd/pv1"
		wantKind(t, Check(root, vol), errkind.Unsafe, pod)
		wantKind(t, MkdirAll(root, vol, 0o750), errkind.Unsafe, pod)
		wantKind(t, RemoveDir(root, vol), errkind.Unsafe, pod)
		if _, err := os.Lstat(outside + "/pods/uid/volumes/flexblock~rbd"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("MkdirAll followed the pod dir symlink: %v", err)
		}
	})
}

func TestSymlinkedParentComponent(t *testing.T) {
	resolvers(t, func(t *testing.T) {
		root, outside := fixture(t)
		symlink(t, outside+"/pods", root+"/pods")
		vol := root + "/pods/uid/volumes"
		wantKind(t, Check(root, vol), errkind.Unsafe, root+"/pods")
		wantKind(t, RemoveDir(root, vol), errkind.Unsafe, root+"/pods")
		if _, err := os.Stat(outside + "/pods/uid/volumes"); err != nil {
			t.Fatalf("RemoveDir removed through a symlinked parent: %v", err)
		}
	})
}

func TestSymlinkAtFinalComponent(t *testing.T) {
	resolvers(t, func(t *testing.T) {
		root, outside := fixture(t)
		vol := root + "/pods/uid/volumes/flexblock~rbd/pv1"
		symlink(t, outside+"/pods/uid/volumes", vol)
		wantKind(t, Check(root, vol), errkind.Unsafe, vol)
		wantKind(t, MkdirAll(root, vol, 0o750), errkind.Unsafe, vol)
		wantKind(t, RemoveDir(root, vol), errkind.Unsafe, "")
		if fi, err := os.Lstat(vol); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Fatalf("RemoveDir touched the link: %v", err)
		}
		f, err := Open(root, vol, os.O_RDWR|os.O_CREATE, 0o600)
		if err == nil {
			f.Close()
		}
		wantKind(t, err, errkind.Unsafe, vol)
		symlink(t, outside+"/new-file", root+"/pods/uid/file")
		_, err = Open(root, root+"/pods/uid/file", os.O_RDWR|os.O_CREATE, 0o600)
		wantKind(t, err, errkind.Unsafe, root+"/pods/uid/file")
		if _, err := os.Lstat(outside + "/new-file"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open created the symlink's target: %v", err)
		}
	})
}

func TestLexicalTricks(t *testing.T) {
	root, _ := fixture(t)
	cases := []struct {
		p    string
		kind *errkind.Kind
	}{
		{root + "/pods/../../outside", errkind.Unsafe},
		{root + "/pods/uid/..", errkind.Unsafe},
		{root + "/..", errkind.Unsafe},
		{filepath.Dir(root) + "/outside/pods", errkind.Unsafe},
		{root + "x/pods", errkind.Unsafe}, // shares the prefix string only
		{"/etc", errkind.Unsafe},
		{"pods/uid", errkind.Invalid},
		{root + "/pods//uid", errkind.Invalid},
		{root + "/pods/./uid", errkind.Invalid},
		{root + "/pods/uid/", errkind.Invalid},
		{root + "/pods/a\x00b", errkind.Invalid},
	}
	for _, c := range cases {
		wantKind(t, Check(root, c.p), c.kind, "")
		wantKind(t, MkdirAll(root, c.p, 0o750), c.kind, "")
		wantKind(t, RemoveDir(root, c.p), c.kind, "")
	}
	wantKind(t, Check("relative", "relative/x"), errkind.Invalid, "")
	wantKind(t, Check(root+"/", root+"/pods"), errkind.Invalid, "")
}

// The root is the operator's: its own symlinks are followed (a symlinked
// /var/lib/kubelet is common); paths must be spelled with the root as
// configured, and below it nothing is followed.
func TestRootWithSymlink(t *testing.T) {
	resolvers(t, func(t *testing.T) {
		real, outside := fixture(t)
		link := filepath.Join(filepath.Dir(real), "var-lib-kubelet")
		symlink(t, real, link)
		if err := MkdirAll(link, link+"/pods/uid/volumes/flexblock~rbd/pv1", 0o750); err != nil {
			t.Fatalf("symlinked root refused: %v", err)
		}
		if _, err := os.Stat(real + "/pods/uid/volumes/flexblock~rbd/pv1"); err != nil {
			t.Fatal(err)
		}
		wantKind(t, Check(link, real+"/pods/uid"), errkind.Unsafe, "")
		symlink(t, outside+"/pods/uid", real+"/pods/uid")
		wantKind(t, Check(link, link+"/pods/uid/volumes"), errkind.Unsafe, link+"/pods/uid")
		if err := Check("/", "/"+strings.TrimPrefix(real, "/")); err != nil {
			t.Fatalf("root / refused a plain path: %v", err)
		}
	})
}

func TestMissingTailIsReported(t *testing.T) {
	resolvers(t, func(t *testing.T) {
		root, _ := fixture(t)
		err := Check(root, root+"/pods/uid2/volumes/x")
		if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, errkind.NotFound) {
			t.Fatalf("missing tail: %v", err)
		}
		if !strings.Contains(err.Error(), root+"/pods/uid2 does not exist") {
			t.Fatalf("first missing component not named: %v", err)
		}
		if err := Check(root, root+"/pods/uid/volumes"); err != nil {
			t.Fatalf("existing path: %v", err)
		}
		if err := os.WriteFile(root+"/pods/file", nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := Check(root, root+"/pods/file"); err != nil {
			t.Fatalf("a regular file at the end is fine: %v", err)
		}
		wantKind(t, Check(root, root+"/pods/file/x"), errkind.Invalid, root+"/pods/file")
	})
}

func TestMkdirAllAndRemoveDir(t *testing.T) {
	resolvers(t, func(t *testing.T) {
		root, _ := fixture(t)
		p := root + "/pods/uid2/volumes/flexblock~rbd/pv1"
		for i := 0; i < 2; i++ { // idempotent
			if err := MkdirAll(root, p, 0o750); err != nil {
				t.Fatal(err)
			}
		}
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
			t.Fatalf("not created: %v", err)
		}
		if err := os.WriteFile(p+"/data", nil, 0o600); err != nil {
			t.Fatal(err)
		}
		wantKind(t, RemoveDir(root, p), errkind.Busy, "")
		os.Remove(p + "/data")
		if err := RemoveDir(root, p); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("not removed: %v", err)
		}
		if err := RemoveDir(root, p); err != nil {
			t.Fatalf("missing dir: %v", err)
		}
		if err := RemoveDir(root, root+"/nope/x"); err != nil {
			t.Fatalf("missing parent: %v", err)
		}
		wantKind(t, RemoveDir(root, root), errkind.Invalid, "")
		if err := os.WriteFile(root+"/f", nil, 0o600); err != nil {
			t.Fatal(err)
		}
		wantKind(t, MkdirAll(root, root+"/f/x", 0o750), errkind.Invalid, root+"/f")
	})
}

func TestOpen(t *testing.T) {
	root, _ := fixture(t)
	p := root + "/pods/uid/rec.json"
	f, err := Open(root, p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Open(root, p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("O_EXCL on an existing file: %v", err)
	}
	f, err = Open(root, p, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Open(root, root+"/nope/rec", os.O_RDONLY, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing parent: %v", err)
	}
}

// A component flipping between a directory and a symlink to outside the
// root (renameat2 RENAME_EXCHANGE, atomic) while MkdirAll runs: whatever
// the interleaving, nothing is ever created outside.
func TestMkdirAllRaceNeverEscapes(t *testing.T) {
	resolvers(t, func(t *testing.T) {
		root, outside := fixture(t)
		a, alt := root+"/pods/a", root+"/pods/alt"
		if err := os.Mkdir(a, 0o750); err != nil {
			t.Fatal(err)
		}
		symlink(t, outside, alt)
		var stop atomic.Bool
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, alt, unix.RENAME_EXCHANGE); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		refused, made := 0, 0
		for i := 0; i < 2000; i++ {
			err := MkdirAll(root, a+"/b/c", 0o750)
			switch {
			case err == nil:
				made++
			case errors.Is(err, errkind.Unsafe), errors.Is(err, fs.ErrNotExist), errors.Is(err, errkind.Invalid):
				refused++
			default:
				t.Fatalf("unexpected: %v", err)
			}
		}
		stop.Store(true)
		wg.Wait()
		empty(t, outside)
		t.Logf("%d made, %d refused", made, refused)
		if refused == 0 {
			t.Log("the flip never hit a walk (still valid)")
		}
	})
}

// BenchmarkCheck measures one Check of a kubelet-depth path.
func BenchmarkCheck(b *testing.B) {
	root := b.TempDir()
	p := root + "/pods/0f1e2d3c-uid/volumes/flexblock~rbd/pv-0001"
	if err := os.MkdirAll(p, 0o750); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"openat2", "walk"} {
		b.Run(mode, func(b *testing.B) {
			if mode == "walk" {
				openat2 = func(int, string, *unix.OpenHow) (int, error) { return -1, unix.ENOSYS }
				defer func() { openat2 = unix.Openat2 }()
			}
			for b.Loop() {
				if err := Check(root, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
