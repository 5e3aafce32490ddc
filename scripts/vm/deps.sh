#!/usr/bin/env bash
# deps.sh [PACKAGE...]: installs what the real-kernel VM and its guest need
# on the host, and the PACKAGEs given (the guest runs the host's own
# binaries: qemu boots it, Ceph, tgtd, open-iscsi and multipath run inside
# it). Idempotent; one dpkg-query and silent when all is
# there.
set -euo pipefail
pkgs=(qemu-system-x86 busybox-static kmod cpio gzip xz-utils zstd
	ceph-mon ceph-osd ceph-common tgt open-iscsi multipath-tools
	xfsprogs btrfs-progs e2fsprogs util-linux mount fdisk iproute2 jq udev procps psmisc bc coreutils
	cryptsetup-bin dmsetup)
# Arguments: more packages whose daemons the test bed starts itself (the
# cluster's: scripts/cluster/deps.sh), installed the same way.
pkgs+=("$@")

# dpkg-query fails for packages it has never heard of: that is "missing".
installed=$({ dpkg-query -W -f='${Package} ${Status}\n' "${pkgs[@]}" 2>/dev/null || true; } | awk '/ ok installed$/ {print $1}')
missing=()
for p in "${pkgs[@]}"; do
	grep -qx "$p" <<<"$installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0

echo "vm-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The daemons run in the guest only: refuse their start on the host for
# the install, unless the machine already has its own policy.
ours=
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	ours=1
fi
trap '[ -z "$ours" ] || rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
