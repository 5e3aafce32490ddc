#!/usr/bin/env bash
# test.sh: `make cluster-test`. On the test cluster (started here unless one
# is up; stopped at the end unless CLUSTER_KEEP=1 or it was up before),
# installs flexblock as the README tells an operator (kubectl apply -k
# examples/deploy, the image overridden to the local one), applies the
# examples with kubectl (only cluster-specific values patched: monitors,
# portals, keys, images), checks what a user would see, and after each
# scenario that the node holds no mapping, session, mount or state record.
# Ends with "N passed, N failed". CLUSTER_ONLY=regex runs some scenarios.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=scripts/cluster/config.sh
. "$here/config.sh"
# shellcheck source=scripts/cluster/lib.sh
. "$here/lib.sh"
# shellcheck source=scripts/cluster/scenarios.sh
. "$here/scenarios.sh"
. "$here/scenarios-provisioner.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/flexblock-cluster-test.XXXXXX")
started=
cleanup() {
	rm -rf "$WORK"
	if [ -n "$started" ] && [ "${CLUSTER_KEEP:-0}" != 1 ]; then "$here/down.sh"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run_start=$(date +%s)
if ! [ -e "$CLUSTER_DIR/pids" ]; then
	started=1
	"$here/up.sh" || { echo "0 passed, 1 failed"; exit 1; }
fi
# shellcheck disable=SC1091
. "$CLUSTER_DIR/node/images.env"

passed=0 failed=0 summary=()
# CLUSTER_SCENARIOS: the list to run (bench.sh runs "install perf uninstall").
for s in ${CLUSTER_SCENARIOS:-install rbd_inline rbd_pv_pvc shared_readonly iscsi_two_luns iscsi_chap kubelet_restart failures node_reboot uninstall}; do
	if [ -n "${CLUSTER_ONLY:-}" ] && ! [[ $s =~ $CLUSTER_ONLY ]]; then continue; fi
	echo
	echo "=== $s"
	t0=$(date +%s)
	# A subshell: a scenario's `exit` or failed check ends it alone.
	(set -e; "scenario_$s")
	rc=$?
	verdict=PASS
	[ "$rc" = 0 ] || verdict="FAIL (exit $rc)"
	echo "--- $verdict $s ($(($(date +%s) - t0))s)"
	if [ "$verdict" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
	summary+=("$(printf '%-20s %-16s %5ss' "$s" "$verdict" "$(($(date +%s) - t0))")")
	# What a failed scenario left must not fail the next: its pods and
	# volumes go (kubelet tears the mounts down).
	[ "$rc" = 0 ] || kubectl delete pod,pvc,pv --all -n default --timeout="${POD_TIMEOUT}s" >/dev/null
	# The install is what every later scenario needs.
	if [ "$s" = install ] && [ "$rc" != 0 ]; then break; fi
done
echo
echo "cluster-test summary ($(($(date +%s) - run_start))s, cluster start included):"
((${#summary[@]})) && printf '  %s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
