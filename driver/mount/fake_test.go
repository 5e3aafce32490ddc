package mount

import (
	"context"
	"errors"
	"testing"
)

// The fake answers as the real table does for the questions the lifecycle
// asks: binds share the source's filesystem, the top of a stack wins, an
// unmount of what is not mounted is fine, faults are injectable.
func TestFakeMountTable(t *testing.T) {
	ctx := context.Background()
	f := &Fake{Devices: map[string][2]int{"/dev/a": {8, 0}}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.Mount(ctx, "/dev/a", "/g", "ext4", []string{"ro"}))
	must(f.Bind(ctx, "/g", "/p1", false))
	must(f.Bind(ctx, "/g", "/p2", true))
	if err := f.Bind(ctx, "/nothing", "/p3", false); err == nil {
		t.Fatal("bind of a non-mount")
	}
	if same, _ := f.Same("/g", "/p1"); !same {
		t.Fatal("bind not the same filesystem")
	}
	g, _ := f.Lookup("/g")
	if g == nil || g.Major != 8 || g.Options != "ro" {
		t.Fatalf("lookup %+v", g)
	}
	users, _ := f.Users(g)
	if len(users) != 2 {
		t.Fatalf("users %v", users)
	}
	must(f.Mount(ctx, "/dev/b", "/g", "xfs", nil))
	if top, _ := f.Lookup("/g"); top.Source != "/dev/b" {
		t.Fatal("stacked mount: not the top")
	}
	must(f.Unmount(ctx, "/g"))
	if m, _ := f.Mounted("/g"); !m {
		t.Fatal("unmount took both stacked mounts")
	}
	must(f.Unmount(ctx, "/not-mounted"))
	f.Fail = func(op, target string) error {
		if op == "unmount" && target == "/p1" {
			return errors.New("busy")
		}
		return nil
	}
	if err := f.Unmount(ctx, "/p1"); err == nil {
		t.Fatal("fault not injected")
	}
	all, _ := f.All()
	if len(all) != 3 || f.Calls["bind"] != 3 {
		t.Fatalf("table %d, binds %d", len(all), f.Calls["bind"])
	}
}
