# Benchmark 3 in the real-kernel VM (issue #8): the driver's own time in a
# real mount and unmount, on RBD (real Ceph) and iSCSI (real target), as
# call time minus the time spent inside the external tools, both from the
# driver's log. Run by `go run ./bench/report -vm` through scripts/e2e's
# runner (E2E_SCENARIOS=bench/vm/scenarios), sourced after lib.sh. Each call
# prints one line "FLEXBENCH {json}" that the report parses; the first
# cycle of each backend formats a blank volume, the rest find the
# filesystem. E2E_BENCH_N cycles per backend (default 10).
n=${E2E_BENCH_N:-10}

# measure BACKEND CALL ARGS...: one call as kubelet makes it, timed from
# here (wall, including the process start), then split from the driver log.
measure() {
	local b=$1 exe=$PLUGIN_DIR/flexblock~$1/$1 start end out pid
	shift
	[ "$1" != mount ] || kubelet_mkdir "$2"
	start=$(date +%s%N)
	out=$("$exe" "$@" 2>&1)
	end=$(date +%s%N)
	[ "$(jq -r .status <<<"$out")" = Success ] || fail "$b $1: $out"
	pid=$(jq -r 'select(.msg == "call done") | .pid' "$LOG_FILE" | tail -1)
	jq -c -s --arg b "$b" --arg call "$1" --argjson wall "$(((end - start) / 1000))" --argjson pid "$pid" '
		[.[] | select(.pid == $pid)] as $l
		| {backend: $b, call: $call, wall_ms: ($wall / 1000),
		   call_ms: ([$l[] | select(.msg == "call done") | .ms] | last),
		   tool_ms: ([$l[] | select(.msg == "exec") | .ms] | add // 0),
		   wait_ms: ([$l[] | select(.msg == "iSCSI LUN ready") | .waitedMs] | add // 0),
		   tools: [$l[] | select(.msg == "exec") | "\(.tool) \(.ms)"],
		   formatted: ([$l[] | select(.msg == "device ready") | .formatted] | any)}' "$LOG_FILE" |
		sed 's/^/FLEXBENCH /'
}

install_driver rbd
install_driver iscsi '{"iscsi":{"deviceTimeout":"30s"}}'
rbd_opts() { kopts monitors="$CEPH_MON" pool=kube user=kube "secret:key=$CEPH_KUBE_KEY" image=bench size=1Gi kubernetes.io/fsType=ext4; }
lun=$ISCSI_LUN_DIR/plain-lun3.img
tgtadm --lld iscsi --op delete --mode logicalunit --tid 1 --lun 3 2>/dev/null || true
rm -f "$lun"
truncate -s 1G "$lun"
tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 3 -b "$lun"
iscsi_opts() { kopts targetPortal="$ISCSI_PORTAL" iqn="$ISCSI_PLAIN" lun=3 kubernetes.io/fsType=ext4; }

for i in $(seq 1 "$n"); do
	pod=$(pod_dir "bench-rbd-$i" rbd data)
	measure rbd mount "$pod" "$(rbd_opts)"
	measure rbd unmount "$pod"
	pod=$(pod_dir "bench-iscsi-$i" iscsi data)
	measure iscsi mount "$pod" "$(iscsi_opts)"
	measure iscsi unmount "$pod"
done
assert_eq "$(rbd_mapped_count)" 0 "rbd mappings left"
assert_eq "$(iscsi_session_count)" 0 "iSCSI sessions left"
rbd rm kube/bench >/dev/null 2>&1 || true
