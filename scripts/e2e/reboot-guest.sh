#!/bin/bash
# Reboot test, one phase per boot (run by reboot.sh). The kubelet root, the
# loop volume's backing file, the iSCSI LUN's backing file and the
# initiator's node records (/etc/iscsi/nodes, persistent on a node) live on
# /dev/vda, which survives; /run (state records, locks), the loop mapping
# and the iSCSI session vanish with the reboot, as on a node.
#   phase 1: mount a loop volume and an iSCSI volume for pod 1, write data,
#            then the VM dies.
#   phase 2: kubelet's calls after the reboot: unmount of pod 1's dirs,
#            mount for pod 2: all succeed and the data is there; the last
#            unmount leaves no session, node record or mount.
set -euo pipefail
phase=$1
modprobe -a loop iscsi_tcp sd_mod
ip link set lo up
mkdir -p /persist /var/log/flexblock
[ "$phase" = 1 ] && mkfs.ext4 -q -F /dev/vda
mount /dev/vda /persist
export SCENARIO=reboot
# shellcheck disable=SC1091
source "$(dirname "$0")/lib.sh"
# shellcheck disable=SC2034 # both are read by lib.sh's functions
KUBELET_ROOT=/persist/kubelet
# shellcheck disable=SC2034
FLEXBLOCK_BIN=${FLEXBLOCK_TEST_BIN:-$REPO_ROOT/bin/flexblock-test}
# the markers of the iSCSI records the driver makes persist, as on a node
RECORDS_DIR=/persist/iscsi-records

# The iSCSI side: a target whose LUN file is on the persistent disk, and
# the initiator's node database kept there too.
iqn=iqn.2026-11.io.flexblock:reboot
mkdir -p /persist/iscsi-nodes /etc/iscsi/nodes /run/lock/iscsi
mount --bind /persist/iscsi-nodes /etc/iscsi/nodes
iscsid
tgtd
for _ in $(seq 100); do tgtadm --lld iscsi --op show --mode target >/dev/null 2>&1 && break; sleep 0.1; done
[ -f /persist/lun.img ] || truncate -s 320M /persist/lun.img
tgtadm --lld iscsi --op new --mode target --tid 1 -T "$iqn"
tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b /persist/lun.img
tgtadm --lld iscsi --op bind --mode target --tid 1 -I ALL
for _ in $(seq 100); do ss -ltnH "sport = :3260" | grep -q . && break; sleep 0.1; done

install_driver loop
install_driver iscsi '{"iscsi":{"deviceTimeout":"30s"}}'
[ -f /persist/disk.img ] || truncate -s 64M /persist/disk.img
dev=$(losetup -f --show /persist/disk.img)
lopts=$(kopts device="$dev")
iopts=$(kopts targetPortal=127.0.0.1:3260 iqn="$iqn" lun=1 kubernetes.io/fsType=ext4)
pod1=$(pod_dir pod-before-reboot loop data)
pod2=$(pod_dir pod-after-reboot loop data)
ipod1=$(pod_dir pod-before-reboot iscsi data)
ipod2=$(pod_dir pod-after-reboot iscsi data)
case $phase in
1)
	flexcall loop mount "$pod1" "$lopts"
	expect Success
	flexcall iscsi mount "$ipod1" "$iopts"
	expect Success
	echo "written before the reboot" >"$pod1/proof"
	echo "written to the LUN before the reboot" >"$ipod1/proof"
	sync
	note "data written; the node now loses power with both volumes mounted"
	;;
2)
	is_mounted "$pod1" && fail "pod dir still mounted after reboot?"
	flexcall loop unmount "$pod1"
	expect Success
	flexcall iscsi unmount "$ipod1"
	expect Success
	flexcall loop mount "$pod2" "$lopts"
	expect Success
	assert_eq "$(cat "$pod2/proof")" "written before the reboot" "loop data after reboot"
	flexcall iscsi mount "$ipod2" "$iopts"
	expect Success
	assert_eq "$(cat "$ipod2/proof")" "written to the LUN before the reboot" "iSCSI data after reboot"
	note "data is there after the reboot, on both volumes"
	flexcall loop unmount "$pod2"
	expect Success
	flexcall iscsi unmount "$ipod2"
	expect Success
	assert_eq "$(iscsi_session_count)" 0 "iSCSI sessions after the last unmount"
	# The node record made before the reboot (with any CHAP secret in it)
	# is gone too: its ownership marker survived in the records dir.
	if iscsiadm -m node >/dev/null 2>&1; then fail "node records left: $(iscsiadm -m node)"; fi
	[ -z "$(ls -A "$RECORDS_DIR" 2>/dev/null)" ] || fail "record markers left: $(ls "$RECORDS_DIR")"
	assert_eq "$(mount_count_under "$KUBELET_ROOT")" 0 "mounts under the kubelet root"
	losetup -d "$dev"
	umount /etc/iscsi/nodes
	# tgtd holds the LUN file open until the LUN is deleted
	tgtadm --lld iscsi --op delete --mode logicalunit --tid 1 --lun 1
	sync
	umount /persist || { fuser -vm /persist; losetup -a; grep persist /proc/self/mountinfo; exit 1; }
	;;
esac
