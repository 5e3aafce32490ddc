#!/bin/bash
# Reboot test, one phase per boot (run by reboot.sh). The kubelet root and
# the volume's backing file live on /dev/vda, which survives; /run (state
# records, locks) and the loop mapping vanish with the reboot, as on a node.
#   phase 1: mount a volume for pod 1, write data, then the VM dies.
#   phase 2: kubelet's calls after the reboot: unmount of pod 1's dir, mount
#            for pod 2: both succeed and the data is there.
set -euo pipefail
phase=$1
modprobe loop
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
install_driver loop
[ -f /persist/disk.img ] || truncate -s 64M /persist/disk.img
dev=$(losetup -f --show /persist/disk.img)
opts=$(kopts device="$dev")
pod1=$(pod_dir pod-before-reboot loop data)
pod2=$(pod_dir pod-after-reboot loop data)
case $phase in
1)
	flexcall loop mount "$pod1" "$opts"
	expect Success
	echo "written before the reboot" >"$pod1/proof"
	sync
	note "data written; the node now loses power with the volume mounted"
	;;
2)
	is_mounted "$pod1" && fail "pod dir still mounted after reboot?"
	flexcall loop unmount "$pod1"
	expect Success
	flexcall loop mount "$pod2" "$opts"
	expect Success
	assert_eq "$(cat "$pod2/proof")" "written before the reboot" "data after reboot"
	note "data is there after the reboot"
	flexcall loop unmount "$pod2"
	expect Success
	losetup -d "$dev"
	umount /persist
	;;
esac
