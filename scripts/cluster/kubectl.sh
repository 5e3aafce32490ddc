#!/usr/bin/env bash
# kubectl.sh ARGS...: kubectl (the pinned build) against the test cluster.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/cluster/config.sh
. "$here/config.sh"
exec "$here/../../bin/k8s/kubectl" --kubeconfig "$CLUSTER_DIR/admin.kubeconfig" "$@"
