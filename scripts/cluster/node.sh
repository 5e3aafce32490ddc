#!/bin/bash
# node.sh: the cluster's node, run inside the real-kernel VM by up.sh (after
# the e2e guest setup started Ceph and the iSCSI target): mounts the share,
# the cgroup2 hierarchy and the scratch disk, configures the network,
# starts containerd, imports the images, starts kubelet, and stays until
# the VM is powered off (down.sh). Its logs go to the share's logs/.
set -euo pipefail
SHARE=/run/flexblock-share
mkdir -p "$SHARE"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 share "$SHARE"
# shellcheck source=scripts/cluster/config.sh
. "$SHARE/config.sh"
# shellcheck disable=SC1091
. "$SHARE/images.env"
NODE=/run/flexblock-node # configs; logs in the share, for the host to read
mkdir -p "$NODE" "$SHARE/logs"
log() { echo "node: [$(cut -d' ' -f1 /proc/uptime)s] $*"; }

# The guest mounts no cgroup fs: kubelet and runc need v2 with the
# controllers they limit enabled for the children.
cgroups() {
	mount -t cgroup2 cgroup2 /sys/fs/cgroup
	echo "+cpuset +cpu +io +memory +pids" >/sys/fs/cgroup/cgroup.subtree_control
}

# The scratch disk: containerd's snapshots (overlayfs needs a real fs under
# it, and kubelet's eviction manager reads its stats) and kubelet's root.
# After a reboot (the same disk, already labelled) it is kept: with it the
# node keeps, as a real one does, kubelet's root, containerd's store, the
# initiator's node records (/etc/iscsi/nodes) and flexblock's iSCSI record
# markers (/var/lib/flexblock); /run starts empty.
scratch() {
	if [ "$(blkid -o value -s LABEL /dev/vda 2>/dev/null)" = flexblock-node ]; then
		log "scratch disk kept (a reboot)"
	else
		mkfs.ext4 -q -F -L flexblock-node /dev/vda
	fi
	mkdir -p /mnt/scratch /var/lib/containerd /var/lib/kubelet /etc/iscsi/nodes /var/lib/flexblock
	mount /dev/vda /mnt/scratch
	mkdir -p /mnt/scratch/containerd /mnt/scratch/kubelet /mnt/scratch/iscsi-nodes /mnt/scratch/flexblock
	mount --bind /mnt/scratch/containerd /var/lib/containerd
	mount --bind /mnt/scratch/kubelet /var/lib/kubelet
	mount --bind /mnt/scratch/iscsi-nodes /etc/iscsi/nodes
	mount --bind /mnt/scratch/flexblock /var/lib/flexblock
	# kubelet's volume mounts must reach the containers (HostToContainer).
	mount --make-rshared /
}

# A target whose LUN is a file on the scratch disk: its data survives the
# node's reboot (the e2e targets' LUNs live in the VM's tmpfs).
persistent_lun() {
	[ -f /mnt/scratch/persistent-lun.img ] || truncate -s 256M /mnt/scratch/persistent-lun.img
	tgtadm --lld iscsi --op new --mode target --tid 9 -T "$PERSISTENT_IQN"
	tgtadm --lld iscsi --op new --mode logicalunit --tid 9 --lun 1 -b /mnt/scratch/persistent-lun.img
	tgtadm --lld iscsi --op bind --mode target --tid 9 -I ALL
}

# The host is reached at 10.0.2.2; no default route, so nothing else is.
network() {
	local dev
	for dev in /sys/class/net/*; do
		dev=${dev##*/}
		[ "$dev" = lo ] || break
	done
	ip link set "$dev" up
	ip addr add "$NODE_IP/24" dev "$dev"
}

# multipathd, as on a node whose iSCSI volumes name several portals (the
# examples do): greedy, a map for every iSCSI path.
multipath_daemon() {
	mkdir -p /etc/multipath
	printf 'defaults {\n\tuser_friendly_names yes\n\tfind_multipaths greedy\n}\n' >/etc/multipath.conf
	multipathd
}

containerd_config() {
	cat >"$NODE/containerd.toml" <<-EOF
		version = 2
		root = "/var/lib/containerd"
		state = "/run/containerd"
		[grpc]
		  address = "/run/containerd/containerd.sock"
		[plugins."io.containerd.grpc.v1.cri"]
		  sandbox_image = "$PAUSE_IMAGE"
		  [plugins."io.containerd.grpc.v1.cri".containerd]
		    snapshotter = "overlayfs"
		    default_runtime_name = "runc"
		    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
		      runtime_type = "io.containerd.runc.v2"
		      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
		        SystemdCgroup = false
		  [plugins."io.containerd.grpc.v1.cri".cni]
		    bin_dir = "/usr/lib/cni"
		    conf_dir = "$NODE/cni"
	EOF
	# Pods get an address on a node-only bridge: containerd reports the
	# network ready only with a CNI config.
	mkdir -p "$NODE/cni"
	cat >"$NODE/cni/10-flexblock.conflist" <<-EOF
		{"cniVersion": "1.0.0", "name": "flexblock-node", "plugins": [
		  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
		   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]]}},
		  {"type": "loopback"}]}
	EOF
}

kubelet_config() {
	cat >"$NODE/kubelet.yaml" <<-EOF
		apiVersion: kubelet.config.k8s.io/v1beta1
		kind: KubeletConfiguration
		port: $KUBELET_PORT
		readOnlyPort: 0
		# The API server is the only client (through qemu's forward of
		# 127.0.0.1:$KUBELET_PORT on the host): logs and exec.
		authentication:
		  anonymous: {enabled: true}
		  webhook: {enabled: false}
		authorization: {mode: AlwaysAllow}
		cgroupDriver: cgroupfs
		containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
		failSwapOn: false
		# A test VM: tiny disk and memory, nothing to evict for. (Local storage
		# capacity isolation stays on: without it kubelet gathers no filesystem
		# stats, and no volume stats either.)
		evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
		imageGCHighThresholdPercent: 100
		imageGCLowThresholdPercent: 99
		resolvConf: ""
		serializeImagePulls: false
		# The volume stats the tests read (stats summary): every 10 s, not 1 min.
		volumeStatsAggPeriod: 10s
	EOF
	# start-kubelet.sh: how kubelet runs here, also for a restart (the
	# cluster test stops kubelet and runs it again through this).
	cat >"$NODE/start-kubelet.sh" <<-EOF
		#!/bin/bash
		exec "$FLEXBLOCK_K8S/kubelet" --config "$NODE/kubelet.yaml" --kubeconfig "$SHARE/kubelet.kubeconfig" \\
			--hostname-override "$NODE_NAME" --node-ip "$NODE_IP" >>"$SHARE/logs/kubelet.log" 2>&1
	EOF
	chmod +x "$NODE/start-kubelet.sh"
}

main() {
	cgroups
	scratch
	persistent_lun
	network
	# The host's driver log shows through the overlay: start empty.
	rm -rf /var/log/flexblock && mkdir -p /var/log/flexblock
	multipath_daemon
	containerd_config
	kubelet_config
	containerd --config "$NODE/containerd.toml" >"$SHARE/logs/containerd.log" 2>&1 &
	local i
	for i in $(seq 60); do
		ctr version >/dev/null 2>&1 && break
		sleep 1
	done
	log "containerd up"
	for i in flexblock pause shell provisioner; do
		ctr -n k8s.io images import "$SHARE/$i-image.tar" >/dev/null
	done
	log "images imported: $(ctr -n k8s.io images ls -q | tr '\n' ' ')"
	"$NODE/start-kubelet.sh" &
	log "kubelet started"
	# The VM lives until down.sh powers it off (or run.sh's bound).
	wait
}

main
