#!/usr/bin/env bash
# run.sh SCRIPT [ARGS...]: boots the real-kernel VM (qemu TCG), runs SCRIPT
# inside it after the common guest setup (unless VM_SETUP=0), streams the
# guest's console to stdout, and exits with the script's exit code.
# The VM is always powered off within VM_TIMEOUT seconds (default 1500) and
# no qemu process survives this script, whatever happens.
#
# SCRIPT runs at the same absolute path in the guest (the guest's root is the
# host's, read-only, with a tmpfs overlay). Environment: only variables named
# FLEXBLOCK_*, E2E_*, DEMO_*, GUEST_* reach the guest. Knobs: VM_TIMEOUT,
# VM_MEMORY (MiB), VM_CPUS, VM_SETUP=0 (skip guest-setup.sh), VM_DISK (raw
# image attached as /dev/vda), FLEXBLOCK_VM_CACHE (kernel + initramfs cache),
# VM_NIC (a qemu -nic value, e.g. user networking with hostfwd; default none),
# VM_SHARE (a host dir shared read-write as 9p tag "share", for a guest that
# talks to the host while it runs).
# Exit codes: the script's own; 98 guest setup failed; 99 no exit code came
# back (no boot, timeout, crash); 2 usage.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CACHE=${FLEXBLOCK_VM_CACHE:-/var/cache/flexblock-vm}
VM_TIMEOUT=${VM_TIMEOUT:-1500}
VM_MEMORY=${VM_MEMORY:-3072} # MiB: memstore OSD (1 GiB) + tmpfs overlay + LUN files

[ $# -ge 1 ] || { echo "usage: $0 SCRIPT [ARGS...]" >&2; exit 2; }
script=$(realpath "$1")
shift

"$here/build.sh"

rundir=$(mktemp -d "${TMPDIR:-/tmp}/flexblock-vm.XXXXXX")
pidfile="$rundir/qemu.pid"
# shellcheck disable=SC2317 # called from the traps
cleanup() {
	# qemu by its pidfile; and timeout, which passes the TERM on to a qemu
	# that has not written its pidfile yet.
	if [ -s "$pidfile" ]; then
		kill -9 "$(cat "$pidfile")" 2>/dev/null || true
	fi
	if [ -s "$rundir/timeout.pid" ]; then
		kill -TERM "$(cat "$rundir/timeout.pid")" 2>/dev/null || true
	fi
	rm -rf "$rundir"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# The command the guest runs: setup, then the script with its arguments.
{
	echo "set -o pipefail"
	if [ "${VM_SETUP:-1}" = 1 ]; then
		echo "source $(printf '%q' "$here/guest-setup.sh") || exit 98"
	fi
	printf 'bash'
	printf ' %q' "$script" "$@"
	echo
} >"$rundir/cmd"
# Variables the scenarios may need, passed explicitly (the guest does not
# inherit this environment); %q keeps any value intact through the shell.
for v in $(compgen -e | grep -E '^(FLEXBLOCK_|E2E_|DEMO_|GUEST_)'); do
	printf '%s=%q\n' "$v" "${!v}"
done >"$rundir/env"

# VM_DISK: a raw image attached as /dev/vda, which survives between boots.
disk=()
[ -z "${VM_DISK:-}" ] || disk=(-drive "file=$VM_DISK,if=virtio,format=raw")

# VM_SHARE: a read-write host dir the guest mounts itself (mount_tag share).
share=()
[ -z "${VM_SHARE:-}" ] || share=(-virtfs "local,path=$VM_SHARE,mount_tag=share,security_model=none,multidevs=remap")

start=$(date +%s)
# In the background, so a TERM to this script runs the trap (and kills qemu)
# at once instead of after qemu exits.
(
	rc=0 # not $? after wait: set -e would end this subshell first
	timeout -k 10 "$VM_TIMEOUT" qemu-system-x86_64 \
		-accel tcg -cpu max -m "$VM_MEMORY" -smp "${VM_CPUS:-2}" -nographic -no-reboot \
		-pidfile "$pidfile" \
		-kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.img" \
		-append "console=ttyS0 quiet loglevel=3 panic=-1 flexblock.cache=$CACHE flexblock.init=$here/guest-init.sh" \
		-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
		-virtfs "local,path=$rundir,mount_tag=results,security_model=none,multidevs=remap" \
		"${disk[@]}" "${share[@]}" -nic "${VM_NIC:-none}" </dev/null 2>&1 &
	echo "$!" >"$rundir/timeout.pid"
	wait "$!" || rc=$?
	echo "$rc" 2>/dev/null >"$rundir/qemu.status" # the dir is gone if the trap ran
) | sed -u 's/\r//g; s/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g' | tee "$rundir/console.log" &
wait $! || true
qemu_status=$(cat "$rundir/qemu.status" 2>/dev/null || echo killed)
wall=$(($(date +%s) - start))
echo "vm: wall time ${wall}s"

# The exit code: from the file guest-init wrote into the run dir (console
# output cannot fake it), else from the marker line on the console.
code=$(grep -xE '[0-9]+' "$rundir/exit" 2>/dev/null || true)
[ -n "$code" ] || code=$(sed -n 's/^FLEXBLOCK-VM-EXIT=\([0-9]*\)$/\1/p' "$rundir/console.log" | tail -1)
if [ -z "$code" ]; then
	if ! grep -q 'vm: userspace up' "$rundir/console.log"; then
		echo "vm: FAILED: the VM did not boot to userspace (qemu status $qemu_status); console above" >&2
	elif [ "$wall" -ge "$VM_TIMEOUT" ]; then
		echo "vm: FAILED: timed out after ${VM_TIMEOUT}s (VM_TIMEOUT); the VM was killed" >&2
	elif [ "$qemu_status" = 137 ] || [ "$qemu_status" = 143 ] || [ "$qemu_status" = killed ]; then
		echo "vm: FAILED: qemu was killed from outside after ${wall}s (status $qemu_status)" >&2
	else
		echo "vm: FAILED: the VM stopped (qemu status $qemu_status) without reporting an exit code" >&2
	fi
	exit 99
fi
echo "vm: guest exit code $code"
exit "$code"
