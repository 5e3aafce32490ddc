#!/usr/bin/env bash
# Host side of `make e2e`: installs the VM's needs, runs every scenario in
# one real-kernel VM boot, then the two-boot reboot test. Ends with the line
# "N passed, N failed"; exits non-zero when any scenario fails, when none
# ran, or when a VM did not report.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
export FLEXBLOCK_BIN=${FLEXBLOCK_BIN:-$repo/bin/flexblock}
export FLEXBLOCK_TEST_BIN=${FLEXBLOCK_TEST_BIN:-$repo/bin/flexblock-test}
for b in "$FLEXBLOCK_BIN" "$FLEXBLOCK_TEST_BIN"; do
	[ -x "$b" ] || { echo "e2e: $b missing: run make build build-test" >&2; exit 1; }
done
"$repo/scripts/vm/deps.sh" || { echo "e2e: installing the VM packages failed (scripts/vm/deps.sh)" >&2; exit 1; }

# The VM's bound grows with the suite: each scenario has its own bound
# inside, this one only catches a guest that stops answering altogether.
n=0
for f in "${E2E_SCENARIOS:-$here/scenarios}"/*.sh; do
	name=$(basename "$f" .sh)
	[ -z "${E2E_ONLY:-}" ] || [[ $name =~ $E2E_ONLY ]] && n=$((n + 1))
done
export VM_TIMEOUT=${VM_TIMEOUT:-$((600 + n * 300))}
echo "e2e: $n scenarios in one VM boot (VM bound ${VM_TIMEOUT}s)"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$repo/scripts/vm/run.sh" "$here/run-all.sh" | tee "$log"
vm_status=${PIPESTATUS[0]}
read -r passed failed < <(sed -n 's/^ *\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$log" | tail -1)
if [ -z "${passed:-}" ]; then
	echo "e2e: the scenario VM gave no summary (status $vm_status)" >&2
	passed=0 failed=1
elif [ "$vm_status" != 0 ] && [ "$failed" = 0 ]; then
	failed=1 # the VM failed after the scenarios: count it
fi

if [ -z "${E2E_ONLY:-}" ] || [[ reboot =~ ${E2E_ONLY} ]]; then
	if "$here/reboot.sh"; then
		echo "--- PASS reboot (two boots, persistent kubelet root)"
		passed=$((passed + 1))
	else
		echo "--- FAIL reboot"
		failed=$((failed + 1))
	fi
fi
echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
