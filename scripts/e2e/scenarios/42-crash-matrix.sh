# The crash matrix on the real kernel with RBD: the test build of the driver
# kills itself (SIGKILL) at each step of mount and unmount; kubelet's replay
# of the same call must converge with no leaked mapping, mount or state
# record, and the data written before the crash intact.
FLEXBLOCK_BIN=${FLEXBLOCK_TEST_BIN:-$REPO_ROOT/bin/flexblock-test}
install_driver rbd
o=$(kopts monitors="$CEPH_MON" pool=kube user=kube image=crash size=64Mi "secret:key=$CEPH_KUBE_KEY")
pod=$(pod_dir crash-pod rbd data)
flexcall rbd mount "$pod" "$o" >/dev/null
echo "written before any crash" >"$pod/proof"
flexcall rbd unmount "$pod" >/dev/null

killed_at() { # killed_at STEP CALL ARGS...: the call must die at STEP
	local step=$1 out rc
	shift
	set +e
	out=$(FLEXBLOCK_TEST_CRASH_AT=$step "$PLUGIN_DIR/flexblock~rbd/rbd" "$@" 2>&1)
	rc=$?
	set -e
	[ "$rc" = 137 ] && [ -z "$out" ] || fail "driver was not killed at $step (status $rc, output '$out')"
}
clean() {
	assert_eq "$(rbd_mapped_count)" 0 "$1: rbd mappings"
	assert_eq "$(mount_count_under "$KUBELET_ROOT")" 0 "$1: mounts"
	assert_eq "$(find "$STATE_DIR/volumes" -name '*.json' 2>/dev/null | wc -l)" 0 "$1: state records"
}
rows=()
for step in after-acquire after-format after-global-mount after-bind; do
	killed_at "$step" mount "$pod" "$o"
	flexcall rbd mount "$pod" "$o" >/dev/null
	expect Success
	assert_eq "$(cat "$pod/proof")" "written before any crash" "data after replayed mount ($step)"
	flexcall rbd unmount "$pod" >/dev/null
	expect Success
	clean "mount/$step"
	rows+=("mount    $step")
	# The pod is deleted instead of retried: unmount must release all.
	killed_at "$step" mount "$pod" "$o"
	flexcall rbd unmount "$pod" >/dev/null
	expect Success
	clean "mount/$step then unmount"
	rows+=("mount    $step, then pod deleted")
done
for step in after-unbind after-global-unmount before-release; do
	flexcall rbd mount "$pod" "$o" >/dev/null
	killed_at "$step" unmount "$pod"
	flexcall rbd unmount "$pod" >/dev/null
	expect Success
	clean "unmount/$step"
	rows+=("unmount  $step")
done
flexcall rbd mount "$pod" "$o" >/dev/null
assert_eq "$(cat "$pod/proof")" "written before any crash" "data at the end"
flexcall rbd unmount "$pod" >/dev/null
echo "  crash point                                   after replay"
for r in "${rows[@]}"; do printf '  %-45s converged: nothing leaked, data intact\n' "$r"; done
