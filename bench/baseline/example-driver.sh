#!/bin/bash
# Baseline for the benchmarks: a FlexVolume driver of the shape of the
# kubernetes/examples drivers (staging/volumes/flexvolume: bash, one jq per
# option, findmnt for "is it mounted", the tools run directly), for a block
# device option "device". It is what flexblock replaces; it is not used by
# flexblock and does no locking, no state, no refcounting, no safety checks.
#
#   init                     with flexblock.json next to the script: reads
#                            attach/fsGroup/selinuxRelabel from it with jq
#                            (the same work as flexblock's init); without it:
#                            the examples' fixed answer (echo only)
#   mount <dir> <json>       blkid; mkfs if blank; mkdir -p; mount
#   unmount <dir>            umount if mounted
#
# Install it as <plugin dir>/<vendor~name>/<name>, like any driver.

usage() {
	err '{"status": "Failure", "message": "usage: '"$0"' init | mount <dir> <json> | unmount <dir>"}'
	exit 1
}

err() { echo -ne "$*" 1>&2; }
log() { echo -ne "$*" >&1; }

ismounted() {
	local target
	target=$(findmnt -n "${MNTPATH}" 2>/dev/null | cut -d' ' -f1)
	if [ "${target}" == "${MNTPATH}" ]; then echo 1; else echo 0; fi
}

doinit() {
	local cfg
	cfg="$(dirname "$0")/flexblock.json"
	if [ -f "$cfg" ]; then
		jq -c '{status: "Success", capabilities: {attach: (.attach // false),
			selinuxRelabel: (if .selinuxRelabel == null then true else .selinuxRelabel end),
			fsGroup: (if .fsGroup == null then true else .fsGroup end),
			supportsMetrics: false, requiresFSResize: true}}' "$cfg"
		exit $?
	fi
	log '{"status": "Success", "capabilities": {"attach": false}}'
	exit 0
}

domount() {
	MNTPATH=$1
	local DEVICE FSTYPE RW VOLFSTYPE
	DEVICE=$(echo "$2" | jq -r '.device')
	FSTYPE=$(echo "$2" | jq -r '.["kubernetes.io/fsType"] // "ext4"')
	RW=$(echo "$2" | jq -r '.["kubernetes.io/readwrite"] // "rw"')

	if [ ! -b "${DEVICE}" ]; then
		err "{\"status\": \"Failure\", \"message\": \"${DEVICE} is not a block device\"}"
		exit 1
	fi
	if [ "$(ismounted)" -eq 1 ]; then
		log '{"status": "Success"}'
		exit 0
	fi
	VOLFSTYPE=$(blkid -o udev "${DEVICE}" 2>/dev/null | grep "ID_FS_TYPE" | cut -d"=" -f2)
	if [ "${VOLFSTYPE}" == "" ]; then
		if ! mkfs -t "${FSTYPE}" "${DEVICE}" >/dev/null 2>&1; then
			err "{\"status\": \"Failure\", \"message\": \"Failed to create fs ${FSTYPE} on device ${DEVICE}\"}"
			exit 1
		fi
	fi
	mkdir -p "${MNTPATH}" &>/dev/null
	if ! mount -t "${FSTYPE}" -o "${RW}" "${DEVICE}" "${MNTPATH}" &>/dev/null; then
		err "{\"status\": \"Failure\", \"message\": \"Failed to mount device ${DEVICE} at ${MNTPATH}\"}"
		exit 1
	fi
	log '{"status": "Success"}'
	exit 0
}

unmount() {
	MNTPATH=$1
	if [ "$(ismounted)" -eq 0 ]; then
		log '{"status": "Success"}'
		exit 0
	fi
	if ! umount "${MNTPATH}" &>/dev/null; then
		err "{\"status\": \"Failure\", \"message\": \"Failed to unmount volume at ${MNTPATH}\"}"
		exit 1
	fi
	log '{"status": "Success"}'
	exit 0
}

op=$1

if ! command -v jq >/dev/null 2>&1; then
	err '{"status": "Failure", "message": "jq not found: install the jq package"}'
	exit 1
fi

if [ "$op" = "init" ]; then
	doinit
fi

if [ $# -lt 2 ]; then
	usage
fi
shift

case "$op" in
mount) domount "$@" ;;
unmount) unmount "$@" ;;
*)
	log '{"status": "Not supported"}'
	exit 0
	;;
esac
