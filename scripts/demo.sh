#!/usr/bin/env bash
# `make demo`: on a fresh Debian machine, installs what is needed, builds
# the driver, boots the real-kernel VM with Ceph and an iSCSI target, and
# shows an RBD and an iSCSI volume going through a pod-like lifecycle.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/deps.sh"
"$repo/scripts/vm/deps.sh"
export PATH="/usr/local/go/bin:$PATH"
make -C "$repo" --no-print-directory build
export FLEXBLOCK_BIN=$repo/bin/flexblock
echo "demo: booting the real-kernel VM (qemu TCG, about a minute to set up Ceph and the iSCSI target)"
exec "$repo/scripts/vm/run.sh" "$repo/scripts/demo-guest.sh"
