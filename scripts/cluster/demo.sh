#!/usr/bin/env bash
# demo.sh: `make demo`, the user's flow on a real cluster: the test cluster
# comes up (control plane on the host, the node in the real-kernel VM with
# Ceph and an iSCSI target), flexblock is installed with
# `kubectl apply -k examples/deploy`, the seed examples are applied (an
# inline RBD volume, a PV + PVC whose pod is deleted and re-created and reads
# its data back, a pod with two iSCSI LUNs), `kubectl get pods,pvc` shows
# them, flexblock is uninstalled as the README says, and it all goes away.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CLUSTER_ONLY='^(install|rbd_inline|rbd_pv_pvc|iscsi_two_luns|uninstall)$'
exec "$here/test.sh"
