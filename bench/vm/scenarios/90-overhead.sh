# Benchmark 3 in the real-kernel VM (issue #8): the driver's own time in a
# real mount and unmount, on RBD (real Ceph) and iSCSI (real target), as
# call time minus the time spent inside the external tools, both from the
# driver's log. Run by `go -C bench run ./report -vm` through scripts/e2e's
# runner (E2E_SCENARIOS=bench/vm/scenarios), sourced after lib.sh. Each
# measured run prints one line "FLEX<KIND> {json}" that the report parses.
#
# Every measured process is started by the report's spawn helper
# (E2E_BENCH_SPAWN, bench/internal/cmd/spawn: os/exec, CombinedOutput, the
# same minimal environment), exactly as on the host, so a guest figure and
# its host counterpart are timed the same way.
#
#   FLEXBENCH  one driver call (E2E_BENCH_N mount+unmount cycles per
#              backend; the first cycle of each formats a blank volume)
#   FLEXFLOOR  one run of an exec floor program: /bin/true, Go's floor
#              (E2E_BENCH_GOHELLO), the driver's init; E2E_BENCH_FLOOR_N
#              each, interleaved, spread between the cycles: the guest side
#              of the TCG slowdown factor the report computes
#   FLEXPLAIN  the plain rbd map + blkid + mkfs.ext4 -F -m0 + mount on a
#              blank image of E2E_BENCH_FORMAT_SIZE (skipped when empty),
#              next to the driver's first mount of another blank image of
#              that size (a FLEXBENCH line tagged "format")
#   FLEXGROW   whether this kernel grows, while mounted, an ext4 made with
#              the driver's options plus a layout it does not use yet
#   FLEXNOTE   something skipped, and why
n=${E2E_BENCH_N:-10}
floor_n=${E2E_BENCH_FLOOR_N:-30}
format_size=${E2E_BENCH_FORMAT_SIZE:-}
[ -x "${E2E_BENCH_SPAWN:-}" ] || fail "E2E_BENCH_SPAWN (the spawn helper) is not set: run this through go -C bench run ./report -vm"

# The spawn helper reads one JSON request a line and answers one a line.
coproc SPAWN { exec "$E2E_BENCH_SPAWN"; }
kubelet_env='["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","LANG=C"]'

# spawn_req ARGV...: the request that runs ARGV (printed, for reuse). One
# argument a line (none holds a newline): jq 1.6 takes an argument after
# --args that starts with "-" for one of its own options.
spawn_req() { printf '%s\n' "$@" | jq -nRc --argjson env "$kubelet_env" '{argv: [inputs], env: $env, dir: "/"}'; }

# spawn_raw REQUEST: runs it; the answer (wall_ns, user_ns, sys_ns, exit,
# output) is left in $reply. Not in a subshell: the coprocess's pipes
# belong to this shell.
spawn_raw() {
	printf '%s\n' "$1" >&"${SPAWN[1]}"
	IFS= read -r reply <&"${SPAWN[0]}" || fail "the spawn helper died (request: $1)"
	[[ $reply != *'"start_failed":true'* ]] || fail "spawn: $reply (request: $1)"
}
spawn() { spawn_raw "$(spawn_req "$@")"; }
wall_ms() { jq '.wall_ns / 1e6' <<<"$reply"; }

# measure BACKEND CALL ARGS...: one call as kubelet makes it, timed by the
# spawn helper (wall, including the process start), then split from the
# driver log. $tag, when set, marks the line.
measure() {
	local b=$1 exe=$PLUGIN_DIR/flexblock~$1/$1 out pid
	shift
	[ "$1" != mount ] || kubelet_mkdir "$2"
	spawn "$exe" "$@"
	out=$(jq -r .output <<<"$reply")
	[ "$(jq -r .status <<<"$out")" = Success ] || fail "$b $1: $out"
	pid=$(jq -r 'select(.msg == "call done") | .pid' "$LOG_FILE" | tail -1)
	jq -c -s --arg b "$b" --arg call "$1" --arg tag "${tag:-}" --argjson wall "$(wall_ms)" --argjson pid "$pid" '
		[.[] | select(.pid == $pid)] as $l
		| {backend: $b, call: $call, wall_ms: $wall,
		   call_ms: ([$l[] | select(.msg == "call done") | .ms] | last),
		   tool_ms: ([$l[] | select(.msg == "exec") | .ms] | add // 0),
		   wait_ms: ([$l[] | select(.msg == "iSCSI LUN ready") | .waitedMs] | add // 0),
		   tools: [$l[] | select(.msg == "exec") | "\(.tool) \(.ms)"],
		   formatted: ([$l[] | select(.msg == "device ready") | .formatted] | any)}
		| if $tag != "" then . + {tag: $tag} else . end' "$LOG_FILE" |
		sed 's/^/FLEXBENCH /'
}

install_driver rbd
install_driver iscsi '{"iscsi":{"deviceTimeout":"30s"}}'
rbd_opts() { kopts monitors="$CEPH_MON" pool=kube user=kube "secret:key=$CEPH_KUBE_KEY" image="${1:-bench}" ${2:+size=$2} kubernetes.io/fsType=ext4; }
lun=$ISCSI_LUN_DIR/plain-lun3.img
tgtadm --lld iscsi --op delete --mode logicalunit --tid 1 --lun 3 2>/dev/null || true
rm -f "$lun"
truncate -s 1G "$lun"
tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 3 -b "$lun"
iscsi_opts() { kopts targetPortal="$ISCSI_PORTAL" iqn="$ISCSI_PLAIN" lun=3 kubernetes.io/fsType=ext4; }

# The exec floors, as benchmark 1a runs them on the host: the same
# programs with the same argument, through the same helper. Go's floor is
# the host-built binary (the guest sees the host's files), copied next to
# the driver so that both run from the guest's tmpfs.
floor_names=(true) floor_reqs=("$(spawn_req /bin/true init)")
if [ -n "${E2E_BENCH_GOHELLO:-}" ] && cp "$E2E_BENCH_GOHELLO" "$WORK/gohello" 2>/dev/null; then
	spawn "$WORK/gohello" init
	if [ "$(jq -r '.output | fromjson? | .status' <<<"$reply")" = Success ]; then
		floor_names+=(gohello) floor_reqs+=("$(spawn_req "$WORK/gohello" init)")
	else
		echo "FLEXNOTE Go's floor did not run in the VM: $(jq -c . <<<"$reply")"
	fi
else
	echo "FLEXNOTE Go's floor (E2E_BENCH_GOHELLO=${E2E_BENCH_GOHELLO:-}) is not readable in the VM"
fi
floor_names+=(init) floor_reqs+=("$(spawn_req "$PLUGIN_DIR/flexblock~rbd/rbd" init)")
floor_replies=$WORK/floor.jsonl
: >"$floor_replies"
# floor_rounds K [warm]: K runs of each program, one of each in turn.
floor_rounds() {
	local r i
	for ((r = 0; r < $1; r++)); do
		for i in "${!floor_reqs[@]}"; do
			spawn_raw "${floor_reqs[i]}"
			[ "${2:-}" = warm ] || printf '%s\t%s\n' "${floor_names[i]}" "$reply" >>"$floor_replies"
		done
	done
}
floor_rounds 3 warm

for i in $(seq 1 "$n"); do
	floor_rounds $((floor_n * i / n - floor_n * (i - 1) / n))
	pod=$(pod_dir "bench-rbd-$i" rbd data)
	measure rbd mount "$pod" "$(rbd_opts bench 1Gi)"
	measure rbd unmount "$pod"
	pod=$(pod_dir "bench-iscsi-$i" iscsi data)
	measure iscsi mount "$pod" "$(iscsi_opts)"
	measure iscsi unmount "$pod"
done
while IFS=$'\t' read -r name json; do
	jq -c --arg p "$name" '{prog: $p, wall_ms: (.wall_ns / 1e6), cpu_ms: ((.user_ns + .sys_ns) / 1e6), exit}' <<<"$json"
done <"$floor_replies" | sed 's/^/FLEXFLOOR /'

# The driver's mkfs.ext4 command, as its log has it (the device last).
mapfile -t driver_mkfs < <(jq -c 'select(.msg == "exec" and .tool == "mkfs.ext4") | .argv' "$LOG_FILE" | tail -1 | jq -r '.[]')

# Format comparison on thin storage: the driver's first mount of a blank
# image against the plain sequence of kubelet's in-tree RBD plugin (map,
# then mount-utils' blkid, mkfs.ext4 -F -m0, mount) on another blank image
# of the same size, both created beforehand with the driver's default
# feature (layering). One of each: the sizes that show the difference are
# slow under TCG. The images are not removed (an rbd rm walks every object;
# the VM's memstore goes with the VM).
if [ -n "$format_size" ]; then
	rbd create kube/bench-fmt-ours --size "$format_size" --image-feature layering
	rbd create kube/bench-fmt-plain --size "$format_size" --image-feature layering
	size_mib=$(rbd info kube/bench-fmt-plain --format json | jq '.size / 1048576 | floor')
	pod=$(pod_dir bench-fmt rbd data)
	tag=format measure rbd mount "$pod" "$(rbd_opts bench-fmt-ours)"
	tag=format measure rbd unmount "$pod"
	plain_dir=$WORK/plain-mnt
	mkdir -p "$plain_dir"
	spawn rbd map kube/bench-fmt-plain
	[ "$(jq .exit <<<"$reply")" = 0 ] || fail "plain: rbd map: $reply"
	dev=$(jq -r .output <<<"$reply" | grep -o '/dev/rbd[0-9]*' | tail -1)
	t_map=$(wall_ms)
	spawn blkid -p -s TYPE -s PTTYPE -o export "$dev"
	[ "$(jq .exit <<<"$reply")" = 2 ] || fail "plain: blkid on the blank image: $reply"
	t_blkid=$(wall_ms)
	spawn mkfs.ext4 -F -m0 "$dev"
	[ "$(jq .exit <<<"$reply")" = 0 ] || fail "plain: mkfs.ext4: $reply"
	t_mkfs=$(wall_ms)
	spawn mount -t ext4 -o defaults "$dev" "$plain_dir"
	[ "$(jq .exit <<<"$reply")" = 0 ] || fail "plain: mount: $reply"
	t_mount=$(wall_ms)
	umount "$plain_dir"
	rbd unmap "$dev"
	jq -nc --argjson s "$size_mib" --argjson a "$t_map" --argjson b "$t_blkid" --argjson c "$t_mkfs" --argjson d "$t_mount" \
		'{size_mib: $s, map_ms: $a, blkid_ms: $b, mkfs_ms: $c, mount_ms: $d}' | sed 's/^/FLEXPLAIN /'
fi

# Online growth of ext4 with -O meta_bg,^resize_inode (three copies of each
# descriptor block, no reserved GDT blocks): the driver's mkfs options plus
# these, mounted, the image grown, then resize2fs on the mounted
# filesystem as the driver's expandfs runs it.
grow_check() {
	local layout=$1 dir=$WORK/grow-mnt dev before after rc out features
	shift
	if [ "${#driver_mkfs[@]}" -lt 2 ]; then
		echo "FLEXNOTE online growth ($layout): no mkfs.ext4 command in the driver's log"
		return
	fi
	mkdir -p "$dir"
	rbd create kube/bench-grow --size 1G --image-feature layering
	dev=$(rbd map kube/bench-grow)
	"${driver_mkfs[@]:0:${#driver_mkfs[@]}-1}" "$@" "$dev" >/dev/null 2>&1 || {
		echo "FLEXNOTE online growth ($layout): mkfs.ext4 refused the options"
		rbd unmap "$dev"
		return
	}
	features=$(dumpe2fs -h "$dev" 2>/dev/null | sed -n 's/^Filesystem features: *//p')
	mount -t ext4 "$dev" "$dir"
	before=$(df -B1 --output=size "$dir" | tail -1)
	rbd resize --size 2G kube/bench-grow >/dev/null 2>&1
	# krbd learns the new size from the image's header; wait for it.
	for _ in $(seq 1 150); do
		[ "$(blockdev --getsize64 "$dev")" -lt $((2 << 30)) ] || break
		sleep 0.2
	done
	rc=0
	out=$(resize2fs "$dev" 2>&1) || rc=$?
	after=$(df -B1 --output=size "$dir" | tail -1)
	umount "$dir"
	rbd unmap "$dev"
	jq -nc --arg l "$layout" --arg f "$features" --argjson b "$before" --argjson a "$after" --argjson rc "$rc" --arg o "$out" \
		'{layout: $l, features: $f, before: $b, after: $a, exit: $rc, output: ($o | .[-400:])}' | sed 's/^/FLEXGROW /'
}
grow_check "-O meta_bg,^resize_inode" -O meta_bg,^resize_inode

assert_eq "$(rbd_mapped_count)" 0 "rbd mappings left"
assert_eq "$(iscsi_session_count)" 0 "iSCSI sessions left"
rbd rm kube/bench >/dev/null 2>&1 || true
