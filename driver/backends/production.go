//go:build !flexblocktest

package backends

import "github.com/flexblock/flexblock/driver/volume"

func testOnly() []volume.Backend { return nil }

func observer() func(volume.Step) { return nil }
