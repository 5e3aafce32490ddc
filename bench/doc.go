// Package bench holds flexblock's performance benchmarks (issue #8) as Go
// benchmarks; `go run ./bench/report` runs the same measurements on the
// current driver against baselines measured in the same run (the
// /bin/true floor, a bash+jq driver, the plain mkfs sequence) and writes
// BENCHMARKS.md. Everything needs root (loop devices, mount namespaces);
// runs move themselves into a private mount namespace.
//
//	go run ./bench/report -vm                                   # make bench: all, rewrites BENCHMARKS.md
//	go test -short -run '^$' -bench . -benchtime 2x ./bench/...  # make bench-smoke: proves they run
//	go test -run '^$' -bench 'Refcount|Mountinfo' ./bench         # one benchmark, full size
//
// Layout: internal/flexbench is the machinery (builds, installs, kubelet-
// like calls through internal/cmd/spawn, driver-log parsing, loop devices,
// no-op tools); internal/fastmountinfo a mount-table parsing prototype
// measured against the driver's statx answers; baseline/example-driver.sh
// the bash+jq driver of the kubernetes/examples shape; vm/scenarios the
// in-VM scenario run by scripts/e2e's runner.
package bench
