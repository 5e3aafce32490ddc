// Package bench holds flexblock's performance benchmarks (issue #8), its
// own module. `go run ./report` runs them on the current driver against
// baselines measured in the same run (the /bin/true floor, a bash+jq
// driver, the plain mkfs sequence) and writes BENCHMARKS.md. Everything
// needs root (loop devices, mount namespaces); the run moves itself into
// a private mount namespace.
//
//	go run ./report -vm                   # make bench: all, rewrites BENCHMARKS.md
//	go run ./report -quick -o /dev/null   # make bench-smoke: every benchmark, a few iterations: proves they run
//	go run ./report -only refcount -o -   # one benchmark, full size, to stdout
//
// Layout: internal/flexbench is the machinery (snapshots and builds,
// kubelet-like calls through internal/cmd/spawn, driver-log parsing, loop
// devices, no-op tools); the driver is built, installed and called through
// the root module's testkit; baseline/example-driver.sh is the bash+jq
// driver of the kubernetes/examples shape; vm/scenarios the in-VM scenario
// run by scripts/e2e's runner.
package bench
