# iSCSI multipath through the driver: a target reached through two portals
# (127.0.0.1 and 127.0.0.2) is mounted through multipathd's dm map over both
# paths; with the second portal down at mount time the mount still works on
# one path; every unmount removes the map, the paths and the sessions.

# multipathd: a node using several portals runs it; this guest does not by
# default. greedy: a map for every path, a single one included.
mp_started=0 portals_changed=0
cleanup() {
	if [ "$portals_changed" = 1 ]; then
		tgtadm --lld iscsi --op delete --mode portal --param portal=127.0.0.1:3260 || true
		tgtadm --lld iscsi --op new --mode portal --param portal=0.0.0.0:3260 || true
	fi
	if [ "$mp_started" = 1 ]; then
		multipathd shutdown >/dev/null 2>&1 || true
		rm -f /etc/multipath.conf
	fi
}
# run cleanup, then lib.sh's own EXIT trap with the scenario's status
prev_exit=$(trap -p EXIT | sed "s/^trap -- '\(.*\)' EXIT$/\1/")
on_exit() {
	local rc=$?
	cleanup
	if [ "$rc" = 0 ]; then eval "$prev_exit"; else (exit "$rc") || eval "$prev_exit"; fi
}
trap on_exit EXIT
if ! multipathd show daemon >/dev/null 2>&1; then
	mkdir -p /etc/multipath
	printf 'defaults {\n\tuser_friendly_names yes\n\tfind_multipaths greedy\n}\n' >/etc/multipath.conf
	multipathd
	mp_started=1
	for _ in $(seq 100); do multipathd show daemon 2>/dev/null | grep -q '^pid' && break; sleep 0.2; done
fi
note "multipathd: $(multipathd show daemon 2>&1)"

install_driver iscsi '{"iscsi":{"deviceTimeout":"60s"}}'
img=$ISCSI_LUN_DIR/plain-lun3.img
wipe_lun "$img"
opts() { kopts targetPortal="$ISCSI_PORTAL" portals="$ISCSI_PORTAL2" iqn="$ISCSI_PLAIN" lun=3 kubernetes.io/fsType=ext4; }
map_of() { basename "$(readlink -f "$(source_of "$1")")"; }

pod=$(pod_dir mp-1 iscsi data)
flexcall iscsi mount "$pod" "$(opts)"
expect Success
dm=$(map_of "$pod")
[[ $dm == dm-* ]] || fail "mounted $(source_of "$pod"), not a dm device"
assert_eq "$(cut -c1-6 "/sys/block/$dm/dm/uuid")" "mpath-" "a multipath map"
assert_eq "$(ls "/sys/block/$dm/slaves" | wc -l)" 2 "paths under $dm"
assert_eq "$(iscsi_session_count)" 2 "sessions (one per portal)"
note "mounted $(source_of "$pod") = $dm over $(ls "/sys/block/$dm/slaves" | tr '\n' ' ')"
echo "both paths" >"$pod/f"
sync
flexcall iscsi unmount "$pod"
expect Success
assert_iscsi_clean

# Portal 2 down at mount time: tgtd listens only on 127.0.0.1 now.
tgtadm --lld iscsi --op delete --mode portal --param portal=0.0.0.0:3260
tgtadm --lld iscsi --op new --mode portal --param portal=127.0.0.1:3260
portals_changed=1
if iscsiadm -m discoverydb -t st -p "$ISCSI_PORTAL2" --discover -o nonpersistent >/dev/null 2>&1; then fail "portal 2 still answers"; fi
pod=$(pod_dir mp-2 iscsi data)
flexcall iscsi mount "$pod" "$(opts)"
expect Success
dm=$(map_of "$pod")
[[ $dm == dm-* ]] || fail "mounted $(source_of "$pod"), not a dm device"
assert_eq "$(ls "/sys/block/$dm/slaves" | wc -l)" 1 "paths under $dm with portal 2 down"
assert_eq "$(cat "$pod/f")" "both paths" "data through one path"
grep -q "portal unusable, continuing with the others" "$LOG_FILE" || fail "the down portal was not logged"
flexcall iscsi unmount "$pod"
expect Success
assert_iscsi_clean
