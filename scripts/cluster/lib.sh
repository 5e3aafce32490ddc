#!/bin/bash
# Host-side helpers of the cluster scripts (sourced after config.sh).

K8S_BIN=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bin/k8s

# kubectl ARGS...: the admin's kubectl against the test cluster, bounded.
kubectl() {
	timeout 400 "$K8S_BIN/kubectl" --kubeconfig "$CLUSTER_DIR/admin.kubeconfig" "$@"
}

# wait_until SECONDS WHAT CMD...: polls CMD every second until it succeeds;
# after SECONDS says what it waited for and fails.
wait_until() {
	local bound=$1 what=$2 deadline
	shift 2
	deadline=$(($(date +%s) + bound))
	until "$@" >/dev/null 2>&1; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo "cluster: timed out after ${bound}s waiting for $what" >&2
			return 1
		fi
		sleep 1
	done
}

# start_bg NAME CMD...: starts a daemon in its own session, logging to
# logs/NAME.log, and records its pid for down.sh.
start_bg() {
	local name=$1
	shift
	setsid "$@" >"$CLUSTER_DIR/logs/$name.log" 2>&1 </dev/null &
	echo "$name $!" >>"$CLUSTER_DIR/pids"
}

# kubeconfig FILE USER TOKEN SERVER: a kubeconfig with a static token.
kubeconfig() {
	local ca
	ca=$(base64 -w0 "$CLUSTER_DIR/pki/apiserver.crt")
	cat >"$1" <<-EOF
		apiVersion: v1
		kind: Config
		clusters:
		- name: flexblock
		  cluster: {server: "$4", certificate-authority-data: "$ca"}
		users:
		- name: $2
		  user: {token: "$3"}
		contexts:
		- name: flexblock
		  context: {cluster: flexblock, user: $2}
		current-context: flexblock
	EOF
	chmod 0600 "$1"
}

# make_pki: the API server's self-signed serving cert (for 127.0.0.1, as the
# host dials it, and 10.0.2.2, as the node does), the service-account key
# pair, one static token per client, and their kubeconfigs.
make_pki() {
	local p=$CLUSTER_DIR/pki u t local=https://127.0.0.1:$APISERVER_PORT
	mkdir -p "$p"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=flexblock-test-apiserver \
		-addext "subjectAltName=IP:127.0.0.1,IP:$HOST_FROM_NODE,IP:${SERVICE_CIDR%.*/*}.1,DNS:kubernetes,DNS:kubernetes.default.svc" \
		-keyout "$p/apiserver.key" -out "$p/apiserver.crt" 2>/dev/null
	openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
	openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
	: >"$p/tokens.csv"
	chmod 0600 "$p/tokens.csv" "$p"/*.key
	# name user groups
	while read -r name u groups; do
		t=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
		echo "$t,$u,$u,\"$groups\"" >>"$p/tokens.csv"
		case $name in
		kubelet) kubeconfig "$CLUSTER_DIR/node/kubelet.kubeconfig" "$u" "$t" "https://$HOST_FROM_NODE:$APISERVER_PORT" ;;
		*) kubeconfig "$CLUSTER_DIR/$name.kubeconfig" "$u" "$t" "$local" ;;
		esac
	done <<-EOF
		admin admin system:masters
		controller-manager system:kube-controller-manager system:authenticated
		scheduler system:kube-scheduler system:authenticated
		kubelet system:node:$NODE_NAME system:nodes
	EOF
}

# start_node [keep-disk]: boots the node VM in the background: run.sh with
# the node script, the share, a fresh scratch disk (or the last one: a
# reboot) and the kubelet port forwarded.
start_node() {
	local repo
	repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	if [ "${1:-}" != keep-disk ]; then
		rm -f "$CLUSTER_DIR/node.disk"
		truncate -s "$NODE_DISK_SIZE" "$CLUSTER_DIR/node.disk"
	fi
	cp "$(dirname "${BASH_SOURCE[0]}")/config.sh" "$CLUSTER_DIR/node/config.sh"
	# restrict=off: the node must dial the API server at 10.0.2.2 (the host's
	# loopback, inside qemu); it has no default route, so nothing else.
	VM_NIC="user,model=virtio-net-pci,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:$KUBELET_PORT-$NODE_IP:$KUBELET_PORT" \
		VM_SHARE=$CLUSTER_DIR/node VM_DISK=$CLUSTER_DIR/node.disk VM_MEMORY=$NODE_MEMORY \
		VM_TIMEOUT=$NODE_LIFETIME FLEXBLOCK_K8S=$K8S_BIN FLEXBLOCK_BIN=$repo/bin/flexblock \
		start_bg node "$repo/scripts/vm/run.sh" "$(dirname "${BASH_SOURCE[0]}")/node.sh"
}

node_ready() {
	[ "$(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

# reboot_node: the node loses power (its qemu killed, no shutdown) and boots
# again with the same scratch disk; returns once the VM is gone and the new
# one is starting (the caller waits for what it needs).
reboot_node() {
	local pid qemu
	pid=$(awk '$1 == "node" {p = $2} END {print p}' "$CLUSTER_DIR/pids")
	# By its name (the "timeout" before it also has qemu in its argv).
	qemu=$(pgrep -s "$pid" -x qemu-system-x86 | head -1)
	[ -n "$qemu" ] || { echo "cluster: no node VM to reboot" >&2; return 1; }
	kill -KILL "$qemu"
	wait_until 60 "the node VM's run.sh to end" sh -c "! pgrep -s $pid >/dev/null" || return 1
	start_node keep-disk
}
