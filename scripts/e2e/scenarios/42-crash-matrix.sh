# The crash matrix on the real kernel, for RBD and for iSCSI: the test build
# of the driver kills itself (SIGKILL) at each step of mount and unmount;
# kubelet's replay of the same call must converge with no leaked mapping,
# session, node record, sd device, mount, lock or state record, and the data
# written before the crash intact.
FLEXBLOCK_BIN=${FLEXBLOCK_TEST_BIN:-$REPO_ROOT/bin/flexblock-test}
install_driver rbd
install_driver iscsi '{"iscsi":{"deviceTimeout":"30s"}}'

killed_at() { # killed_at BACKEND STEP CALL ARGS...: the call must die at STEP
	local be=$1 step=$2 out rc
	shift 2
	set +e
	out=$(FLEXBLOCK_TEST_CRASH_AT=$step "$PLUGIN_DIR/flexblock~$be/$be" "$@" 2>&1)
	rc=$?
	set -e
	[ "$rc" = 137 ] && [ -z "$out" ] || fail "$be driver was not killed at $step (status $rc, output '$out')"
}
# locks_free: every lock file can be taken at once (a killed driver's flock
# died with it).
locks_free() {
	local f
	for f in "$STATE_DIR"/locks/*; do
		[ -e "$f" ] || continue
		flock -n "$f" true || fail "$1: lock $(basename "$f") still held"
	done
}
clean_rbd() {
	assert_eq "$(rbd_mapped_count)" 0 "$1: rbd mappings"
}
clean_iscsi() { assert_iscsi_clean "$1"; }
clean() { # clean BACKEND WHAT
	"clean_$1" "$2"
	assert_eq "$(mount_count_under "$KUBELET_ROOT")" 0 "$2: mounts"
	assert_eq "$(find "$STATE_DIR/volumes" -name '*.json' 2>/dev/null | wc -l)" 0 "$2: state records"
	locks_free "$2"
}

rows=()
# matrix BACKEND OPTIONS: every crash point of mount and unmount.
matrix() {
	local be=$1 o=$2 pod step
	pod=$(pod_dir "crash-$be" "$be" data)
	flexcall "$be" mount "$pod" "$o" >/dev/null
	expect Success
	echo "written before any crash" >"$pod/proof"
	flexcall "$be" unmount "$pod" >/dev/null
	expect Success
	for step in after-acquire after-format after-global-mount after-bind; do
		killed_at "$be" "$step" mount "$pod" "$o"
		flexcall "$be" mount "$pod" "$o" >/dev/null
		expect Success
		assert_eq "$(cat "$pod/proof")" "written before any crash" "$be: data after replayed mount ($step)"
		flexcall "$be" unmount "$pod" >/dev/null
		expect Success
		clean "$be" "$be mount/$step"
		rows+=("$be|mount $step|replayed")
		# The pod is deleted instead of retried: unmount must release all.
		killed_at "$be" "$step" mount "$pod" "$o"
		flexcall "$be" unmount "$pod" >/dev/null
		expect Success
		clean "$be" "$be mount/$step then unmount"
		rows+=("$be|mount $step|pod deleted")
	done
	for step in after-unbind after-global-unmount before-release; do
		flexcall "$be" mount "$pod" "$o" >/dev/null
		expect Success
		killed_at "$be" "$step" unmount "$pod"
		flexcall "$be" unmount "$pod" >/dev/null
		expect Success
		clean "$be" "$be unmount/$step"
		rows+=("$be|unmount $step|replayed")
	done
	flexcall "$be" mount "$pod" "$o" >/dev/null
	expect Success
	assert_eq "$(cat "$pod/proof")" "written before any crash" "$be: data at the end"
	flexcall "$be" unmount "$pod" >/dev/null
	expect Success
	clean "$be" "$be end"
}

matrix rbd "$(kopts monitors="$CEPH_MON" pool=kube user=kube image=crash size=64Mi "secret:key=$CEPH_KUBE_KEY")"

# LUN 4 of the plain target, zeroed keeping its size (tgtd keeps the size
# it saw when the LUN was created): the first mount formats it.
img=$ISCSI_LUN_DIR/plain-lun4.img
wipe_lun "$img"
matrix iscsi "$(kopts targetPortal="$ISCSI_PORTAL" iqn="$ISCSI_PLAIN" lun=4 kubernetes.io/fsType=ext4)"

printf '  %-8s %-28s %-12s %s\n' backend "crash point" "next call" "outcome"
for r in "${rows[@]}"; do
	IFS='|' read -r be point next <<<"$r"
	printf '  %-8s %-28s %-12s converged: nothing leaked, data intact\n' "$be" "$point" "$next"
done
