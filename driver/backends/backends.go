// Package backends is the one list of the storage backends a flexblock
// binary serves, built explicitly (no registry filled by init). A test
// build (-tags flexblocktest) adds the loop backend and a crash observer
// in testbuild.go; production builds never contain either.
package backends

import (
	"github.com/flexblock/flexblock/driver/iscsi"
	"github.com/flexblock/flexblock/driver/rbd"
	"github.com/flexblock/flexblock/driver/volume"
)

// List returns the backends of this binary, production ones first.
func List() []volume.Backend {
	return append([]volume.Backend{rbd.New(), iscsi.New()}, testOnly()...)
}

// Names lists the backends' names, in List's order.
func Names(all []volume.Backend) []string {
	n := make([]string, len(all))
	for i, b := range all {
		n[i] = b.Name()
	}
	return n
}

// Find returns the backend called name, or nil.
func Find(all []volume.Backend, name string) volume.Backend {
	for _, b := range all {
		if b.Name() == name {
			return b
		}
	}
	return nil
}

// Observer returns what hears the lifecycle's steps: nothing in a
// production build.
func Observer() func(volume.Step) { return observer() }
