#!/bin/bash
# Helpers for e2e scenarios (run inside the guest). A scenario calls the
# driver exactly as kubelet does: argv[0] is the installed path, options are
# one JSON argument with kubelet's keys and base64 Secret values, and the
# answer must be one JSON object on stdout+stderr with exit status 0.
set -euo pipefail

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$E2E_ROOT/../.." && pwd)
FLEXBLOCK_BIN=${FLEXBLOCK_BIN:-$REPO_ROOT/bin/flexblock}
# shellcheck disable=SC1091
[ -f /run/flexblock-e2e/env ] && . /run/flexblock-e2e/env

SCENARIO=${SCENARIO:-adhoc}
WORK=/run/e2e/$SCENARIO
PLUGIN_DIR=$WORK/plugins
STATE_DIR=$WORK/state
# iscsi.recordsDir: markers of the open-iscsi records the driver made (on a
# node a persistent dir; per scenario here)
RECORDS_DIR=$WORK/iscsi-records
LOG_FILE=$WORK/flexblock.log
KUBELET_ROOT=$WORK/kubelet
mkdir -p "$PLUGIN_DIR" "$KUBELET_ROOT"

# dump_driver_log [N]: the driver's last N log lines, once per scenario.
dump_driver_log() {
	[ -z "${_E2E_LOG_DUMPED:-}" ] && [ -s "$LOG_FILE" ] || return 0
	_E2E_LOG_DUMPED=1
	echo "--- last driver log lines ($LOG_FILE):" >&2
	tail -n "${1:-15}" "$LOG_FILE" >&2
}

fail() {
	echo "FAIL: $*" >&2
	dump_driver_log 15
	exit 1
}

# A scenario that dies of `set -e` instead of fail() still says where, and
# still shows the driver log. Under `set +e` a failing command is expected.
_e2e_on_err() {
	[[ $- == *e* ]] || return 0
	echo "FAIL: status $1 at ${2##*/}:$3: $4" >&2
}
_e2e_on_exit() {
	local rc=$?
	[ "$rc" = 0 ] || dump_driver_log 15
}
trap '_e2e_on_err $? "${BASH_SOURCE[0]:-}" "$LINENO" "$BASH_COMMAND"' ERR
trap _e2e_on_exit EXIT
assert_eq() { [ "$1" = "$2" ] || fail "${3:-values differ}: got '$1', want '$2'"; }
assert_contains() { [[ "$1" == *"$2"* ]] || fail "${3:-missing text}: '$1' does not contain '$2'"; }
note() { echo "  # $*"; }

# install_driver BACKEND [CONFIG_JSON]: installs a copy of the binary as
# <plugin dir>/flexblock~B/B with flexblock.json next to it.
install_driver() {
	local b=$1 extra=${2:-"{}"} dir=$PLUGIN_DIR/flexblock~$1
	mkdir -p "$dir"
	cp "$FLEXBLOCK_BIN" "$dir/.$b.tmp" && mv "$dir/.$b.tmp" "$dir/$b"
	jq -n --arg log "$LOG_FILE" --arg state "$STATE_DIR" --arg root "$KUBELET_ROOT" --arg records "$RECORDS_DIR" --argjson extra "$extra" \
		'{logFile: $log, stateDir: $state, kubeletRoot: $root, iscsi: {recordsDir: $records}} * $extra' >"$dir/flexblock.json"
}

# kopts KEY=VALUE...: the options JSON kubelet builds for mount. Keys
# "secret:NAME=VALUE" become kubernetes.io/secret/NAME with a base64 value;
# "ro" as a bare word sets kubernetes.io/readwrite=ro.
kopts() {
	local json='{"kubernetes.io/readwrite":"rw","kubernetes.io/pod.namespace":"default"}' kv k v
	for kv in "$@"; do
		if [ "$kv" = ro ]; then
			json=$(jq -c '. + {"kubernetes.io/readwrite":"ro"}' <<<"$json")
			continue
		fi
		k=${kv%%=*} v=${kv#*=}
		if [[ $k == secret:* ]]; then
			k="kubernetes.io/secret/${k#secret:}"
			v=$(printf '%s' "$v" | base64 -w0)
		fi
		json=$(jq -c --arg k "$k" --arg v "$v" '. + {($k): $v}' <<<"$json")
	done
	echo "$json"
}

# pod_dir UID BACKEND NAME: the path of a pod's volume dir (not created:
# flexcall mount creates it the way kubelet does; new_pod_dir creates it now).
pod_dir() { echo "$KUBELET_ROOT/pods/$1/volumes/flexblock~$2/$3"; }
new_pod_dir() {
	local d
	d=$(pod_dir "$@")
	kubelet_mkdir "$d"
	echo "$d"
}
# kubelet_mkdir DIR: kubelet's os.MkdirAll(dir, 0750) before a mount call.
kubelet_mkdir() { (umask 027 && mkdir -p "$1"); }
device_mount_path() { echo "$KUBELET_ROOT/plugins/kubernetes.io/flexvolume/flexblock/$1/mounts/$2"; }

# show_args masks Secret values so the transcript never prints them. (One
# jq per JSON argument: under TCG every process start costs.)
show_args() {
	local a out=()
	for a in "$@"; do
		if [[ $a == "{"* ]]; then
			a=$(jq -c 'with_entries(if (.key|startswith("kubernetes.io/secret/")) then .value="<base64 secret>" else . end)' 2>/dev/null <<<"$a" || printf '%s' "$a")
		fi
		out+=("$a")
	done
	printf '%s ' "${out[@]}"
}

# kubelet_pod_keys DIR JSON: JSON plus the keys kubelet adds to a pod's
# mount call (pod name, namespace, uid, service account, volume name), taken
# from DIR (<root>/pods/<uid>/volumes/<driver>/<name>); keys in JSON win.
kubelet_pod_keys() {
	local dir=$1 json=$2
	if [[ $dir =~ /pods/([^/]+)/volumes/[^/]+/([^/]+)/?$ ]] &&
		jq -c --arg uid "${BASH_REMATCH[1]}" --arg name "${BASH_REMATCH[2]}" '{
			"kubernetes.io/pod.name": $uid, "kubernetes.io/pod.namespace": "default",
			"kubernetes.io/pod.uid": $uid, "kubernetes.io/serviceAccount.name": "default",
			"kubernetes.io/pvOrVolumeName": $name} + .' 2>/dev/null <<<"$json"; then
		return
	fi
	printf '%s\n' "$json" # not a pod dir, or not a JSON object: as given
}

# flexcall BACKEND CALL ARGS...: one driver call as kubelet makes it. Sets
# STATUS, MESSAGE, DEVICE, ANSWER (the raw answer) and ELAPSED_MS (the
# driver's run time alone: time bounds should check this, not the wall time
# around flexcall, which includes this harness). Fails unless the exit
# status is 0, stderr is empty and stdout is exactly one JSON object with a
# status. For `mount DIR JSON`, as kubelet: DIR is created 0750 first
# (prepareForMount; KUBELET_MKDIR=0 skips it, to call on a missing dir), and
# the pod keys are added to JSON (KUBELET_POD_KEYS=0 sends JSON as given).
flexcall() {
	local b=$1 exe=$PLUGIN_DIR/flexblock~$1/$1 out err rc start shown assign
	shift
	shown=$(show_args "$@")
	if [ "$1" = mount ] && [ $# -ge 3 ]; then
		if [ "${KUBELET_MKDIR:-1}" = 1 ] && ! [ -e "$2" ]; then
			kubelet_mkdir "$2"
		fi
		if [ "${KUBELET_POD_KEYS:-1}" = 1 ]; then
			set -- "${@:1:$#-1}" "$(kubelet_pod_keys "$2" "${!#}")"
			shown+="(+ kubelet's pod keys)"
		fi
	fi
	echo "\$ flexblock~$b/$b $shown"
	start=$(date +%s%N)
	set +e
	out=$("$exe" "$@" 2>"$WORK/stderr")
	rc=$?
	set -e
	ELAPSED_MS=$((($(date +%s%N) - start) / 1000000))
	err=$(cat "$WORK/stderr")
	# shellcheck disable=SC2034 # for the scenarios
	ANSWER=$out
	echo "  => $out  (${ELAPSED_MS}ms)"
	[ "$rc" = 0 ] || fail "exit status $rc (kubelet would log our argv)"
	[ -z "$err" ] || fail "stderr is not empty: $err"
	# One jq validates the answer and quotes its fields for the shell (no
	# process substitution: it needs /dev/fd, which a bare /dev lacks).
	assign=$(jq -sr 'if length == 1 and (.[0] | type == "object" and (.status | type == "string"))
		then .[0] | "STATUS=\(.status | @sh) MESSAGE=\(.message // "" | tostring | @sh) DEVICE=\(.device // "" | tostring | @sh)"
		else empty end' 2>/dev/null <<<"$out") || true
	[ -n "$assign" ] || fail "stdout is not exactly one JSON object with a status: $out"
	eval "$assign"
}

expect() {
	[ "$STATUS" = "$1" ] || fail "want $1, got $STATUS: $MESSAGE"
	[ -z "${2:-}" ] || assert_contains "$MESSAGE" "$2" "message"
}

is_mounted() { awk -v p="$1" '$5 == p {found=1} END {exit !found}' /proc/self/mountinfo; }
mount_count_under() { awk -v p="$1/" 'index($5, p) == 1 {n++} END {print n+0}' /proc/self/mountinfo; }
source_of() { awk -v p="$1" '$5 == p {for (i=7;i<=NF;i++) if ($i=="-") {print $(i+2); exit}}' /proc/self/mountinfo; }

rbd_mapped_count() { rbd device list --format json 2>/dev/null | jq length; }
iscsi_session_count() { find /sys/class/iscsi_session -mindepth 1 -maxdepth 1 -name 'session*' 2>/dev/null | wc -l; }
sd_devices() { for d in /sys/block/sd*; do [ -e "$d" ] && printf '%s ' "${d##*/}"; done; true; }
# assert_iscsi_clean [WHAT]: nothing of iSCSI is left on the node: no
# session, node record, sd device, multipath map or driver marker.
assert_iscsi_clean() {
	local w=${1:+$1: }
	assert_eq "$(iscsi_session_count)" 0 "${w}iSCSI sessions left"
	if iscsiadm -m node >/dev/null 2>&1; then fail "${w}node records left: $(iscsiadm -m node)"; fi
	[ -z "$(sd_devices)" ] || fail "${w}sd devices left: $(sd_devices)"
	[ -z "$(dmsetup ls --target multipath 2>/dev/null | grep -v 'No devices found')" ] || fail "${w}multipath maps left: $(dmsetup ls --target multipath)"
	[ -z "$(ls -A "$STATE_DIR/iscsi" 2>/dev/null)" ] || fail "${w}driver markers left: $(ls "$STATE_DIR/iscsi")"
	[ -z "$(ls -A "$RECORDS_DIR" 2>/dev/null)" ] || fail "${w}record markers left: $(ls "$RECORDS_DIR")"
}
# wipe_lun FILE: zeroes a LUN's backing file, keeping its size (tgtd keeps
# the size it saw when the LUN was created).
wipe_lun() { local s; s=$(stat -c %s "$1"); truncate -s 0 "$1"; truncate -s "$s" "$1"; }

# sample_cmdlines SECONDS FILE: samples every process's cmdline and environ
# until killed; used to prove secrets never reach argv or env.
sample_procs() {
	local out=$1 p args envs
	set +e # processes vanish between the glob and the read
	: >"$out"
	while :; do
		for p in /proc/[0-9]*; do
			# Builtins only: a fork per process would make a sweep too slow
			# to catch short-lived tools.
			{
				mapfile -d '' -t args <"$p/cmdline"
				mapfile -d '' -t envs <"$p/environ"
				echo "${args[*]}"
				echo "${envs[*]}"
			} 2>/dev/null >>"$out"
		done
		sleep 0.02
	done
}
