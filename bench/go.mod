module github.com/flexblock/flexblock/bench

go 1.26.0

replace github.com/flexblock/flexblock => ../

require (
	github.com/flexblock/flexblock v0.0.0-00010101000000-000000000000
	golang.org/x/sys v0.49.0
)
