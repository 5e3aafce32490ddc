# kubelet's own FlexVolume code (k8s.io/kubernetes pkg/volume/flexvolume,
# built on the host as bin/kubelet-conformance.test) drives the production
# driver against the real Ceph and the real iSCSI target.
bin=$REPO_ROOT/bin/kubelet-conformance.test
[ -x "$bin" ] || fail "$bin missing: run make conformance-bin"
rbd create kube/conformance --size 320M
mkfs.ext4 -q "$(rbd map kube/conformance)" && rbd unmap kube/conformance
cd "$REPO_ROOT/test/kubelet"
run_suite() {
	local out rc
	out=$("$bin" -test.count=1 2>&1)
	rc=$?
	echo "$out" | sed 's/^/  /'
	[ "$rc" = 0 ] || fail "kubelet conformance ($FLEXBLOCK_CONFORMANCE_BACKEND) failed"
	assert_contains "$out" " 0 failed" "summary"
}
set +e
FLEXBLOCK_CONFORMANCE_DRIVER=$FLEXBLOCK_BIN FLEXBLOCK_CONFORMANCE_BACKEND=rbd \
	FLEXBLOCK_CONFORMANCE_OPTIONS="{\"monitors\":\"$CEPH_MON\",\"pool\":\"kube\",\"image\":\"conformance\",\"user\":\"kube\"}" \
	FLEXBLOCK_CONFORMANCE_SECRET="{\"key\":\"$CEPH_KUBE_KEY\"}" \
	FLEXBLOCK_CONFORMANCE_INSTALL_ARGS="--rbd-keyring /etc/ceph/ceph.client.kube.keyring --rbd-user kube" \
	run_suite
if [ -n "${E2E_CONFORMANCE_ISCSI-1}" ]; then # empty: rbd only
	mkfs.ext4 -q -F "$ISCSI_LUN_DIR/plain-lun4.img"
	FLEXBLOCK_CONFORMANCE_DRIVER=$FLEXBLOCK_BIN FLEXBLOCK_CONFORMANCE_BACKEND=iscsi \
		FLEXBLOCK_CONFORMANCE_OPTIONS="{\"targetPortal\":\"$ISCSI_PORTAL\",\"iqn\":\"$ISCSI_PLAIN\",\"lun\":\"4\"}" \
		run_suite
fi
set -e
