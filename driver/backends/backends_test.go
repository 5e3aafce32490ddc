package backends

import (
	"slices"
	"testing"
)

func TestListHasTheProductionBackends(t *testing.T) {
	all := List()
	names := Names(all)
	if len(names) < 2 || names[0] != "rbd" || names[1] != "iscsi" {
		t.Fatalf("backends %q", names)
	}
	if Find(all, "iscsi") == nil || Find(all, "nfs") != nil {
		t.Fatal("Find")
	}
	if testing.Testing() && slices.Contains(names, "loop") != (len(testOnly()) > 0) {
		t.Fatal("loop backend listed without the test build")
	}
}
