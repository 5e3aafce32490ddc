#!/usr/bin/env bash
# Self-test of the test bed itself (host side, three short VM boots without
# the Ceph/iSCSI setup): the runner reports failing, and hanging scenarios
# and exits non-zero; run.sh passes exit codes through; a VM that hangs is
# stopped at VM_TIMEOUT with a clear failure; no qemu survives any of it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
run=$here/../vm/run.sh
# The runs' dirs (and so their qemu command lines) live under our own
# TMPDIR: other VMs on the machine are not ours to judge.
TMPDIR=$(mktemp -d /tmp/flexblock-selftest.XXXXXX)
export TMPDIR
log=$TMPDIR/log
trap 'rm -rf "$TMPDIR"' EXIT
problems=0

# check WHAT CMD...: runs CMD, counts a failure.
check() {
	local what=$1
	shift
	if "$@"; then echo "selftest: ok   $what"; else echo "selftest: FAIL $what"; problems=$((problems + 1)); fi
}
# no_qemu_left: no qemu of our runs is alive (their run dirs are ours).
no_qemu_left() { ! pgrep -f "qemu-system-x86_64 .*-pidfile $TMPDIR/" >/dev/null; }
in_log() { grep -q -- "$1" "$log"; }

echo "selftest: 1/3 runner with broken scenarios"
rc=0
E2E_SCENARIOS=$here/selftest E2E_SCENARIO_TIMEOUT=15 VM_SETUP=0 VM_TIMEOUT=300 \
	"$run" "$here/run-all.sh" >"$log" 2>&1 || rc=$?
sed -n '/^=== /,$p' "$log"
check "no qemu left after it" no_qemu_left
check "run-all exits non-zero (got $rc)" test "$rc" != 0
check "summary line" grep -qx "2 passed, 3 failed" "$log"
check "exit reported" in_log "--- FAIL (exit 3) 02-exit"
check "assertion reported" in_log "--- FAIL (exit 1) 03-assert"
check "hang reported" in_log "--- FAIL (timed out after 15s) 04-hang"
check "run goes on after the hang, nothing left" in_log "--- PASS 05-after-hang"

echo "selftest: 2/3 exit code passed through"
rc=0
VM_SETUP=0 VM_TIMEOUT=300 "$run" "$here/selftest/guest/exit.sh" 7 >"$log" 2>&1 || rc=$?
check "guest exit 7 is run.sh's exit (got $rc)" test "$rc" = 7

echo "selftest: 3/3 VM that hangs"
rc=0
VM_SETUP=0 VM_TIMEOUT=45 "$run" "$here/selftest/guest/hang.sh" >"$log" 2>&1 || rc=$?
tail -n 3 "$log"
check "hung VM fails with 99 (got $rc)" test "$rc" = 99
check "timeout named" in_log "timed out after 45s"

check "no qemu of these runs left" no_qemu_left
echo
if [ "$problems" = 0 ]; then echo "selftest: all checks passed"; else echo "selftest: $problems checks FAILED"; fi
[ "$problems" = 0 ]
