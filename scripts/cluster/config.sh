#!/bin/bash
# The test cluster's settings, in one place, sourced by the host scripts
# (up, down, test) and, through the share, by the node. The Kubernetes
# version is pinned in k8s/go.mod only.
# shellcheck disable=SC2034 # used by the scripts that source it

# Where the running cluster keeps its state: certificates, tokens,
# kubeconfigs, etcd's data, logs, pids. Shared read-write with the node VM.
CLUSTER_DIR=${FLEXBLOCK_CLUSTER_DIR:-/run/flexblock-cluster}
# Host ports, all on 127.0.0.1 (etcd and the API server's are uncommon ones,
# so a cluster of someone else's on the defaults is not disturbed).
ETCD_PORT=${FLEXBLOCK_ETCD_PORT:-12379}
ETCD_PEER_PORT=${FLEXBLOCK_ETCD_PEER_PORT:-12380}
APISERVER_PORT=${FLEXBLOCK_APISERVER_PORT:-16443}
# The kubelet's port is the same in the node and on the host (qemu forwards
# 127.0.0.1:PORT to it): the API server dials the port the node reports.
KUBELET_PORT=${FLEXBLOCK_KUBELET_PORT:-10250}
# qemu user networking: the node is 10.0.2.15 and sees the host's loopback
# as 10.0.2.2. Nothing else is routed (the node has no default route).
NODE_IP=10.0.2.15
HOST_FROM_NODE=10.0.2.2
# The node's name is the address the API server reaches its kubelet at
# (Hostname address type): 127.0.0.1, forwarded into the VM. kubelet refuses
# a loopback --node-ip, not a node name.
NODE_NAME=127.0.0.1
SERVICE_CIDR=10.96.0.0/24
POD_CIDR=10.88.0.0/24
# The node VM: memory for Ceph's memstore OSD (1 GiB), kubelet and
# containerd (~0.5 GiB) and the tmpfs overlay; a scratch disk for
# containerd's snapshots and kubelet's root.
NODE_MEMORY=${FLEXBLOCK_NODE_MEMORY:-4096}
NODE_DISK_SIZE=4G
# The node's own iSCSI target (LUN 1 on the scratch disk: survives a reboot).
PERSISTENT_IQN=iqn.2026-12.io.flexblock:node-disk
# Bounds, in seconds.
CONTROL_PLANE_TIMEOUT=60
NODE_READY_TIMEOUT=${FLEXBLOCK_NODE_READY_TIMEOUT:-600}
# The longest the node VM may live (a forgotten cluster still goes away).
NODE_LIFETIME=${FLEXBLOCK_NODE_LIFETIME:-14400}
