#!/bin/bash
# Common guest setup, sourced before every guest command: hostname, loopback
# with a second portal address, udevd, kernel modules, iscsid, and, started
# in parallel, a single-node Ceph cluster (mon + memstore OSD) and an iSCSI
# target (tgtd). It waits on readiness, never on fixed sleeps, and writes
# what scenarios need to $E2E_ENV.
export E2E_DIR=/run/flexblock-e2e
export E2E_ENV=$E2E_DIR/env
mkdir -p "$E2E_DIR"
setup_start=$(cut -d' ' -f1 /proc/uptime)

log() { echo "setup: [$(cut -d' ' -f1 /proc/uptime)s] $*"; }

# wait_for CMD...: poll every 0.2 s until CMD succeeds, up to WAIT_MAX s.
wait_for() {
	local deadline=$(($(date +%s) + ${WAIT_MAX:-120}))
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$deadline" ] || { log "timed out waiting for: $*"; return 1; }
		sleep 0.2
	done
}

base_system() {
	hostname flexblock-e2e
	echo flexblock-e2e >/etc/hostname
	ip link set lo up
	ip addr add 127.0.0.2/8 dev lo 2>/dev/null || true
	mkdir -p /run/lock/iscsi /run/udev /var/lock /etc/ceph /var/log/flexblock
	modprobe -a rbd iscsi_tcp dm_multipath dm_mod loop
	/lib/systemd/systemd-udevd --daemon
	udevadm trigger --action=add >/dev/null 2>&1
	iscsid
}

# start_ceph: a mon and one memstore OSD on 127.0.0.1. Every key (admin,
# osd.0, the restricted client.kube) is generated locally and imported by
# `ceph-mon --mkfs`, which saves several slow `ceph` CLI round trips; the
# mon-only steps (pools, applications) overlap with the OSD's start.
start_ceph() {
	local fsid uuid kr=/tmp/ceph.mon.keyring osd=/var/lib/ceph/osd/ceph-0
	fsid=$(cat /proc/sys/kernel/random/uuid)
	uuid=$(cat /proc/sys/kernel/random/uuid)
	write_ceph_conf "$fsid"
	mkdir -p /var/log/ceph /var/lib/ceph/mon/ceph-flexblock-e2e "$osd"
	ceph-authtool --create-keyring "$kr" --gen-key -n mon. --cap mon 'allow *' >/dev/null
	ceph-authtool --create-keyring /etc/ceph/ceph.client.admin.keyring --gen-key -n client.admin \
		--cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
	ceph-authtool --create-keyring "$osd/keyring" --gen-key -n osd.0 \
		--cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
	ceph-authtool --create-keyring /tmp/ceph.client.kube.keyring --gen-key -n client.kube \
		--cap mon 'profile rbd' --cap osd 'profile rbd pool=kube, profile rbd pool=rbd' >/dev/null
	local k
	for k in /etc/ceph/ceph.client.admin.keyring "$osd/keyring" /tmp/ceph.client.kube.keyring; do
		ceph-authtool "$kr" --import-keyring "$k" >/dev/null
	done
	# The node keyring as `ceph auth get-or-create -o` writes it: the key only.
	printf '[client.kube]\n\tkey = %s\n' "$(ceph-authtool -p -n client.kube /tmp/ceph.client.kube.keyring)" \
		>/etc/ceph/ceph.client.kube.keyring
	chmod 0600 /etc/ceph/ceph.client.kube.keyring
	monmaptool --create --add flexblock-e2e 127.0.0.1:6789 --fsid "$fsid" /tmp/monmap >/dev/null
	ceph-mon --mkfs -i flexblock-e2e --monmap /tmp/monmap --keyring "$kr"
	ceph-mon -i flexblock-e2e
	wait_for ceph --connect-timeout 5 mon stat || return 1
	log "ceph mon up"
	ceph osd new "$uuid" 0 >/dev/null || return 1
	create_pools &
	local pools=$!
	ceph-osd -i 0 --mkfs --osd-uuid "$uuid" >/dev/null 2>&1 || return 1
	ceph-osd -i 0 || return 1
	wait "$pools" || return 1
	log "ceph pools created"
	WAIT_MAX=240 wait_for sh -c 'ceph osd stat | grep -q "1 up"' || return 1
	log "ceph osd up"
	rbd pool init kube &
	local init=$!
	rbd pool init rbd || return 1
	wait "$init" || return 1
	{
		echo "CEPH_MON=127.0.0.1:6789"
		echo "CEPH_ADMIN_KEY=$(ceph-authtool -p -n client.admin /etc/ceph/ceph.client.admin.keyring)"
		echo "CEPH_KUBE_KEY=$(ceph-authtool -p -n client.kube /tmp/ceph.client.kube.keyring)"
		echo "CEPH_KUBE_KEYRING=/etc/ceph/ceph.client.kube.keyring"
		echo "CEPH_POOL=kube"
	} >"$E2E_DIR/ceph.env"
	log "ceph ready"
}

# create_pools: mon-only, so it runs while the OSD starts. Few PGs: one OSD,
# and peering is slow under TCG.
create_pools() {
	local p pids=()
	for p in kube rbd; do
		{ ceph osd pool create "$p" 8 8 && ceph osd pool application enable "$p" rbd; } >/dev/null 2>&1 &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || return 1; done
}

write_ceph_conf() {
	cat >/etc/ceph/ceph.conf <<-CONF
		[global]
		fsid = $1
		mon host = 127.0.0.1:6789
		mon initial members = flexblock-e2e
		ms bind msgr2 = false
		auth cluster required = cephx
		auth service required = cephx
		auth client required = cephx
		osd objectstore = memstore
		memstore device bytes = 1073741824
		osd pool default size = 1
		osd pool default min size = 1
		osd crush chooseleaf type = 0
		mon allow pool size one = true
		mon warn on pool no redundancy = false
		mon allow pool delete = true
		osd max object name len = 256
		osd max object namespace len = 64
		log file = /var/log/ceph/\$name.log
	CONF
}

# iSCSI target: two targets on every local address (127.0.0.1 and
# 127.0.0.2 are two portals of the same targets, for multipath).
ISCSI_PLAIN=iqn.2026-11.io.flexblock:plain
ISCSI_CHAP=iqn.2026-11.io.flexblock:chap
ISCSI_CHAP_USER=flexblock-user
ISCSI_CHAP_PASS=Chap-Secret-0123

start_tgt() {
	local t lun
	mkdir -p /var/lib/flexblock-e2e
	tgtd
	# tgtd listens on every address, so 127.0.0.2 is a second portal.
	wait_for tgtadm --lld iscsi --op show --mode target || return 1
	wait_for sh -c 'ss -ltnH "sport = :3260" | grep -q .' || return 1
	tgtadm --lld iscsi --op new --mode target --tid 1 -T "$ISCSI_PLAIN"
	tgtadm --lld iscsi --op new --mode target --tid 2 -T "$ISCSI_CHAP"
	for lun in 1 2 3 4; do
		truncate -s 320M "/var/lib/flexblock-e2e/plain-lun$lun.img"
		tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun "$lun" -b "/var/lib/flexblock-e2e/plain-lun$lun.img"
	done
	truncate -s 128M /var/lib/flexblock-e2e/chap-lun1.img
	tgtadm --lld iscsi --op new --mode logicalunit --tid 2 --lun 1 -b /var/lib/flexblock-e2e/chap-lun1.img
	tgtadm --lld iscsi --op new --mode account --user "$ISCSI_CHAP_USER" --password "$ISCSI_CHAP_PASS"
	tgtadm --lld iscsi --op bind --mode account --tid 2 --user "$ISCSI_CHAP_USER"
	for t in 1 2; do
		tgtadm --lld iscsi --op bind --mode target --tid "$t" -I ALL
	done
	{
		echo "ISCSI_PORTAL=127.0.0.1:3260"
		echo "ISCSI_PORTAL2=127.0.0.2:3260"
		echo "ISCSI_PLAIN=$ISCSI_PLAIN"
		echo "ISCSI_CHAP=$ISCSI_CHAP"
		echo "ISCSI_CHAP_USER=$ISCSI_CHAP_USER"
		echo "ISCSI_CHAP_PASS=$ISCSI_CHAP_PASS"
		echo "ISCSI_LUN_DIR=/var/lib/flexblock-e2e"
	} >"$E2E_DIR/iscsi.env"
	log "iscsi target ready"
}

setup_main() {
	base_system
	log "base system ready"
	# Subshells with -e: any failed step fails that half of the setup.
	(set -e; start_ceph) >"$E2E_DIR/ceph-setup.log" 2>&1 &
	local ceph_pid=$!
	(set -e; start_tgt) >"$E2E_DIR/tgt-setup.log" 2>&1 &
	local tgt_pid=$!
	# /dev/disk/by-* links: scenarios look devices up there.
	udevadm settle -t 60 2>/dev/null || log "udev queue not empty after 60 s; going on"
	local ok=0
	wait "$tgt_pid" || { log "iSCSI target setup FAILED:"; cat "$E2E_DIR/tgt-setup.log"; ok=1; }
	wait "$ceph_pid" || { log "Ceph setup FAILED:"; cat "$E2E_DIR/ceph-setup.log"; tail -20 /var/log/ceph/*.log; ok=1; }
	# The timings of both halves, in time order.
	grep -h '^setup:' "$E2E_DIR/ceph-setup.log" "$E2E_DIR/tgt-setup.log" | sort -t'[' -k2 -n || true
	cat "$E2E_DIR"/*.env >"$E2E_ENV" 2>/dev/null
	log "setup done in $(echo "$(cut -d' ' -f1 /proc/uptime) - $setup_start" | bc 2>/dev/null || echo '?')s"
	return $ok
}

setup_main
