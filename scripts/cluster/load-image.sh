#!/usr/bin/env bash
# load-image.sh: puts the images `make image` just built (the installer's
# and the provisioner's) into the running test cluster's node (for a change
# of the driver or the provisioner without a cluster restart): copies them
# to the node's share, imports them into containerd there and points the
# cluster's images.env at them. The next `make cluster-test` (CLUSTER_KEEP=1
# keeps the cluster up) installs them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=scripts/cluster/config.sh
. "$here/config.sh"
# shellcheck source=scripts/cluster/lib.sh
. "$here/lib.sh"
[ -e "$CLUSTER_DIR/pids" ] || { echo "cluster: none is up" >&2; exit 1; }
cp "$repo/bin/flexblock-image.tar" "$repo/bin/provisioner-image.tar" "$repo/bin/images.env" "$CLUSTER_DIR/node/"
# shellcheck disable=SC1091
. "$CLUSTER_DIR/node/images.env"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=scripts/cluster/scenarios.sh
. "$here/scenarios.sh"
for i in flexblock provisioner; do
	node_sh "ctr -n k8s.io images import /run/flexblock-share/$i-image.tar >/dev/null"
done
echo "cluster: $FLEXBLOCK_IMAGE, $PROVISIONER_IMAGE loaded on the node"
