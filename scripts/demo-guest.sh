#!/bin/bash
# The demo, inside the real-kernel VM: a pod-like lifecycle of an RBD and an
# iSCSI volume through the driver, every call shown with its JSON answer.
# shellcheck disable=SC2034 # read by lib.sh
SCENARIO=demo
# shellcheck disable=SC1091
source "$(dirname "$0")/e2e/lib.sh"

step() { echo; echo "## $*"; }

lifecycle() {
	local b=$1 opts=$2 what=$3 pod1 pod2
	pod1=$(pod_dir demo-pod-1 "$b" data)
	pod2=$(pod_dir demo-pod-2 "$b" data)
	step "$what: kubelet loads the driver"
	flexcall "$b" init
	expect Success
	step "$what: pod 1 starts: mount of a blank volume (flexblock formats it)"
	flexcall "$b" mount "$pod1" "$opts"
	expect Success
	echo "  mounted: $(findmnt -n -o SOURCE,FSTYPE,OPTIONS --target "$pod1" | head -1)"
	echo "hello from pod 1 at $(date -u +%H:%M:%S)" >"$pod1/greeting.txt"
	echo "  wrote greeting.txt: $(cat "$pod1/greeting.txt")"
	step "$what: pod 1 is deleted: unmount"
	flexcall "$b" unmount "$pod1"
	expect Success
	echo "  pod dir now mounted: $(is_mounted "$pod1" && echo yes || echo no)"
	step "$what: pod 2 starts on the same volume: mount again (no format: data is there)"
	flexcall "$b" mount "$pod2" "$opts"
	expect Success
	echo "  read back: $(cat "$pod2/greeting.txt")"
	step "$what: pod 2 is deleted: unmount"
	flexcall "$b" unmount "$pod2"
	expect Success
}

install_driver rbd
install_driver iscsi
echo "driver: $("$FLEXBLOCK_BIN" version)"

rbd_opts=$(kopts kubernetes.io/fsType=ext4 monitors="$CEPH_MON" pool=kube image=demo size=1Gi user=kube "secret:key=$CEPH_KUBE_KEY")
lifecycle rbd "$rbd_opts" "RBD (pool kube, image demo, created on first use)"
echo "  rbd mappings left on the node: $(rbd_mapped_count)"

iscsi_opts=$(kopts kubernetes.io/fsType=xfs targetPortal="$ISCSI_PORTAL" iqn="$ISCSI_PLAIN" lun=1)
lifecycle iscsi "$iscsi_opts" "iSCSI (target $ISCSI_PLAIN, LUN 1, xfs)"
echo "  iSCSI sessions left on the node: $(iscsi_session_count)"

step "driver log (JSON lines, secrets masked), last entries"
tail -n 6 "$LOG_FILE" | cut -c1-220
echo
echo "demo: all calls succeeded"
