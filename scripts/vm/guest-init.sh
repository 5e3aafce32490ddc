#!/bin/bash
# PID 1 of the guest after switch_root: basic mounts, then the command that
# run.sh left in the shared run dir, then a marker line with its exit code
# on the serial console, then power off. It never returns.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
# What udev would make: bash process substitution needs /dev/fd.
ln -sfn /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run -o mode=0755 2>/dev/null || true
# The per-run share from the host: the command to run, its env, results.
mkdir -p /run/flexblock-vm
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results /run/flexblock-vm
mount -t configfs configfs /sys/kernel/config 2>/dev/null || true
echo "vm: userspace up after $(cut -d' ' -f1 /proc/uptime)s"

poweroff_now() {
	sync
	echo o >/proc/sysrq-trigger
	sleep 30 2>/dev/null # its exec may already fail as the power goes
}

code=97
if [ -f /run/flexblock-vm/cmd ]; then
	set -a
	# shellcheck disable=SC1091
	[ -f /run/flexblock-vm/env ] && . /run/flexblock-vm/env
	set +a
	cd /
	bash /run/flexblock-vm/cmd </dev/null
	code=$?
else
	echo "vm: no command given"
fi
# Twice: in the run dir, which run.sh trusts first (no console output can
# fake it), and on the console for the log and as a fallback.
echo "$code" >/run/flexblock-vm/exit
printf '\nFLEXBLOCK-VM-EXIT=%s\n' "$code" # own line even after output without a newline
poweroff_now
