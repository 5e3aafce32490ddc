#!/usr/bin/env bash
# up.sh: starts the single-node test cluster and returns when the node is
# Ready. The control plane (etcd from Debian; kube-apiserver,
# kube-controller-manager, kube-scheduler from build-k8s.sh) runs on the
# host on 127.0.0.1; the node is the real-kernel VM (scripts/vm/run.sh, with
# Ceph and the iSCSI target of the e2e test bed) running containerd, runc and
# kubelet, reached through qemu user networking. Then use
#   scripts/cluster/kubectl.sh get nodes     (or KUBECONFIG=$CLUSTER_DIR/admin.kubeconfig)
# and stop it all with scripts/cluster/down.sh. Every wait is bounded; on a
# failure it stops what it started and says which log to read.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=scripts/cluster/config.sh
. "$here/config.sh"
# shellcheck source=scripts/cluster/lib.sh
. "$here/lib.sh"

if [ -e "$CLUSTER_DIR/pids" ]; then
	echo "cluster: one is already up ($CLUSTER_DIR): scripts/cluster/down.sh first" >&2
	exit 1
fi
start=$(date +%s)
"$repo/scripts/deps.sh" >/dev/null
"$here/deps.sh"
k8s=$("$here/build-k8s.sh")
ln -sfn "$k8s" "$repo/bin/k8s"
for f in flexblock images.env flexblock-image.tar pause-image.tar shell-image.tar provisioner-image.tar; do
	[ -e "$repo/bin/$f" ] || { echo "cluster: bin/$f missing: run make build image (or make cluster-up)" >&2; exit 1; }
done
mkdir -p "$CLUSTER_DIR"/{logs,node,etcd}
: >"$CLUSTER_DIR/pids"
trap 'echo "cluster: up FAILED; stopping what started" >&2; "$here/down.sh" >&2' ERR
cp "$repo/bin/images.env" "$CLUSTER_DIR/node/images.env"
for f in flexblock pause shell provisioner; do
	cp "$repo/bin/$f-image.tar" "$CLUSTER_DIR/node/$f-image.tar"
done
echo "cluster: Kubernetes $(basename "$k8s") ready after $(($(date +%s) - start))s; starting the control plane"

make_pki
start_bg etcd etcd --name flexblock --data-dir "$CLUSTER_DIR/etcd" \
	--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
	--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
	--initial-cluster "flexblock=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls ""
start_bg kube-apiserver "$k8s/kube-apiserver" \
	--etcd-servers "http://127.0.0.1:$ETCD_PORT" \
	--bind-address 127.0.0.1 --secure-port "$APISERVER_PORT" --advertise-address "$HOST_FROM_NODE" \
	--tls-cert-file "$CLUSTER_DIR/pki/apiserver.crt" --tls-private-key-file "$CLUSTER_DIR/pki/apiserver.key" \
	--token-auth-file "$CLUSTER_DIR/pki/tokens.csv" --authorization-mode Node,RBAC \
	--service-account-key-file "$CLUSTER_DIR/pki/sa.pub" --service-account-signing-key-file "$CLUSTER_DIR/pki/sa.key" \
	--service-account-issuer https://kubernetes.default.svc --service-cluster-ip-range "$SERVICE_CIDR" \
	--endpoint-reconciler-type none --allow-privileged \
	--kubelet-preferred-address-types Hostname,InternalIP --profiling=false
wait_until "$CONTROL_PLANE_TIMEOUT" "the API server (logs/kube-apiserver.log)" \
	kubectl get --raw /readyz
start_bg kube-controller-manager "$k8s/kube-controller-manager" \
	--kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" --leader-elect=false --secure-port 0 \
	--service-account-private-key-file "$CLUSTER_DIR/pki/sa.key" --root-ca-file "$CLUSTER_DIR/pki/apiserver.crt" \
	--use-service-account-credentials --profiling=false
start_bg kube-scheduler "$k8s/kube-scheduler" \
	--kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" --leader-elect=false --secure-port 0 --profiling=false
echo "cluster: control plane ready after $(($(date +%s) - start))s; booting the node VM"

start_node
wait_until "$NODE_READY_TIMEOUT" "node $NODE_NAME Ready (logs/node.log)" node_ready
trap - ERR
echo "cluster: node $NODE_NAME Ready after $(($(date +%s) - start))s"
echo "cluster: kubectl: $here/kubectl.sh (KUBECONFIG=$CLUSTER_DIR/admin.kubeconfig); stop: $here/down.sh"
