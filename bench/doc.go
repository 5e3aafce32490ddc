// Package bench holds flexblock's performance benchmarks (issue #8) as Go
// benchmarks; `go run ./report` (from this directory, its own module)
// runs the same measurements on the current driver against baselines
// measured in the same run (the /bin/true floor, a bash+jq driver, the
// plain mkfs sequence) and writes BENCHMARKS.md. Everything needs root
// (loop devices, mount namespaces); runs move themselves into a private
// mount namespace.
//
//	go run ./report -vm                                  # make bench: all, rewrites BENCHMARKS.md
//	go test -short -run '^$' -bench . -benchtime 2x ./... # make bench-smoke: proves they run
//	go test -run '^$' -bench Refcount .                  # one benchmark, full size
//
// Layout: internal/flexbench is the machinery (snapshots and builds,
// kubelet-like calls through internal/cmd/spawn, driver-log parsing, loop
// devices, no-op tools); the driver is built, installed and called through
// the root module's testkit; baseline/example-driver.sh is the bash+jq
// driver of the kubernetes/examples shape; vm/scenarios the in-VM scenario
// run by scripts/e2e's runner.
package bench
