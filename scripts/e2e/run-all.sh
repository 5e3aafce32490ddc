#!/bin/bash
# Runs every scenario in scripts/e2e/scenarios (filter: E2E_ONLY=regex) in
# this one guest boot. Each runs in its own bash under a time bound, then
# the runner checks nothing leaked (mount under its kubelet root, rbd
# mapping, iSCSI session) and cleans up so the next starts clean. Ends with
# a summary table and the line "N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# E2E_SCENARIOS: another directory of scenarios (the runner's own checks use
# it); E2E_SCENARIO_TIMEOUT: the bound of each scenario in seconds.
scenarios=${E2E_SCENARIOS:-$here/scenarios}
bound=${E2E_SCENARIO_TIMEOUT:-600}
run_start=$(date +%s)
passed=0 failed=0
summary=()

leaks() {
	local work=/run/e2e/$1 l=()
	[ "$(awk -v p="$work/" 'index($5, p) == 1' /proc/self/mountinfo | wc -l)" = 0 ] || l+=("mounts")
	[ "$(rbd device list --format json 2>/dev/null | jq length)" = 0 ] || l+=("rbd mappings")
	ls -d /sys/class/iscsi_session/session* >/dev/null 2>&1 && l+=("iscsi sessions")
	echo "${l[*]}"
}

# force_clean: whatever a scenario left, so the next one starts clean. Each
# step is bounded: a dead device must not hang the whole run.
force_clean() {
	local work=/run/e2e/$1 m d
	awk -v p="$work/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do timeout 20 umount -l "$m"; done
	for d in $(rbd device list --format json 2>/dev/null | jq -r '.[].device'); do timeout 30 rbd unmap -o force "$d" >/dev/null 2>&1; done
	timeout 30 iscsiadm -m node --logoutall=all >/dev/null 2>&1
	timeout 20 multipath -F >/dev/null 2>&1 || true
}

# reap PID SECONDS: waits for a killed process, but not forever: one stuck
# in the kernel (D state) ignores SIGKILL, and the run must go on.
reap() {
	local pid=$1 until=$(($(date +%s) + $2))
	while kill -0 "$pid" 2>/dev/null; do
		[ "$(date +%s)" -lt "$until" ] || return 1
		sleep 0.2
	done
	wait "$pid" 2>/dev/null
	return 0
}

# run_scenario NAME FILE: runs the scenario in its own session (process
# group), streams its output, and when it ends or overruns its bound kills
# the whole group, so a background helper it left cannot hold the run up.
run_scenario() {
	local name=$1 f=$2 out pid tailpid deadline rc
	out=$(mktemp)
	# shellcheck disable=SC2016 # $1 and $2 expand in the scenario's bash
	SCENARIO=$name setsid bash -c 'source "$1"; source "$2"' _ "$here/lib.sh" "$f" >"$out" 2>&1 </dev/null &
	pid=$!
	tail -n +1 -f --pid="$pid" "$out" | sed -u 's/^/    /' &
	tailpid=$!
	deadline=$(($(date +%s) + bound))
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo "    !!! over its ${bound}s bound; its processes were:"
			ps -eo pgid=,pid=,stat=,wchan:24=,args= | awk -v g="$pid" '$1 == g' | cut -c1-200 | sed 's/^/    !!! /'
			kill -TERM -- "-$pid" 2>/dev/null
			reap "$pid" 3 || kill -KILL -- "-$pid" 2>/dev/null
			reap "$pid" 10 || echo "    !!! pid $pid is stuck in the kernel; going on without it"
			# tail --pid would follow a stuck scenario forever: stop it
			# ($tailpid is the sed after it; both are this shell's children).
			pkill -P $$ -x tail 2>/dev/null
			wait "$tailpid" 2>/dev/null
			rm -f "$out"
			return 124
		fi
		sleep 0.5
	done
	wait "$pid"
	rc=$?
	kill -KILL -- "-$pid" 2>/dev/null # stragglers of a finished scenario
	wait "$tailpid" 2>/dev/null
	rm -f "$out"
	return "$rc"
}

for f in "$scenarios"/*.sh; do
	name=$(basename "$f" .sh)
	if [ -n "${E2E_ONLY:-}" ] && ! [[ $name =~ $E2E_ONLY ]]; then continue; fi
	echo
	echo "=== $name"
	start=$(date +%s.%N)
	run_scenario "$name" "$f"
	rc=$?
	secs=$(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)")
	verdict=PASS
	if [ "$rc" = 124 ]; then
		verdict="FAIL (timed out after ${bound}s)"
	elif [ "$rc" != 0 ]; then
		verdict="FAIL (exit $rc)"
	else
		leaked=$(leaks "$name")
		[ -z "$leaked" ] || verdict="FAIL (leaked: $leaked)"
	fi
	force_clean "$name"
	echo "--- $verdict $name (${secs}s)"
	if [ "$verdict" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
	summary+=("$(printf '%-40s %-34s %7ss' "$name" "$verdict" "$secs")")
done

echo
echo "e2e summary ($(($(date +%s) - run_start))s):"
((${#summary[@]})) && printf '  %s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
