package volume

import (
	"go/build"
	"slices"
	"testing"
)

// The call path is main -> app -> flexvol -> volume -> backends' tools:
// the lifecycle never reaches up (protocol, wiring) or sideways into a
// backend, so it stays testable with fakes and the README's map stays true.
func TestLifecycleImportsNothingAboveIt(t *testing.T) {
	const mod = "github.com/flexblock/flexblock/"
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, up := range []string{"driver/flexvol", "driver/app", "driver/backends", "driver/rbd", "driver/iscsi", "driver/loopback", "installer"} {
		if slices.Contains(p.Imports, mod+up) {
			t.Errorf("driver/volume imports %s", up)
		}
	}
	fv, err := build.ImportDir("../flexvol", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(fv.Imports, mod+"driver/volume") || slices.Contains(fv.Imports, mod+"driver/app") {
		t.Errorf("flexvol imports %v: it should depend on the lifecycle and nothing above it", fv.Imports)
	}
}
