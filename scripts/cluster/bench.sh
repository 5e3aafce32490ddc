#!/usr/bin/env bash
# bench.sh OUT: the cluster benchmarks (scenario_perf in scenarios.sh) on the
# test cluster: pod create -> Ready with an emptyDir, a new RBD image and a
# blank iSCSI LUN, the driver's logged tool times, 20 pods at once. Writes
# key=value lines (milliseconds) to OUT; bench/report renders them into
# BENCHMARKS.md (make cluster-bench). Starts and stops the cluster unless
# one is up.
set -euo pipefail
[ $# = 1 ] || { echo "usage: $0 OUT" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
out=$(realpath -m "$1")
: >"$out"
PERF_OUT=$out CLUSTER_SCENARIOS="install perf uninstall" "$here/test.sh"
