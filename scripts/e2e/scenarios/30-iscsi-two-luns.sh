# iSCSI through the driver: two LUNs of one target in one pod. LUN 1 is a
# read-only ext4 (made by the test, never formatted by the driver), LUN 2 a
# blank read-write xfs (formatted by the driver). One session serves both;
# unmounting LUN 1 keeps it (LUN 2 is in use), unmounting LUN 2 logs out and
# leaves no session, node record, sd device or driver marker; the data on
# LUN 2 survives into a new pod.
install_driver iscsi '{"iscsi":{"deviceTimeout":"30s"}}'

lun_img() { echo "$ISCSI_LUN_DIR/plain-lun$1.img"; }
# blank_lun N MIN: zeroes plain LUN N; when it is smaller than MIN bytes
# (xfs needs 300 MB), recreates it in tgtd with MIN (tgtd keeps the size it
# saw at creation, so the file alone cannot grow it).
blank_lun() {
	local f
	f=$(lun_img "$1")
	if [ "$(stat -c %s "$f")" -ge "$2" ]; then
		wipe_lun "$f"
		return
	fi
	truncate -s 0 "$f"
	tgtadm --lld iscsi --op delete --mode logicalunit --tid 1 --lun "$1"
	truncate -s "$2" "$f"
	tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun "$1" -b "$f"
}

blank_lun 1 $((64 << 20))
blank_lun 2 $((320 << 20))
mkdir -p "$WORK/seed"
echo "written by the test" >"$WORK/seed/hello"
mkfs.ext4 -q -F -L seeded -d "$WORK/seed" "$(lun_img 1)"
uuid1=$(blkid -p -s UUID -o value "$(lun_img 1)")

# breakdown: what the last driver call spent its time on, from its log
breakdown() {
	local pid
	pid=$(jq -r 'select(.msg == "call done") | .pid' "$LOG_FILE" | tail -1)
	note "$(jq -r --argjson p "$pid" 'select(.pid == $p) |
		if .msg == "exec" then "\(.tool) \(.argv[1:3] | join(" ")) \(.argv[-1]) \(.ms | floor)ms"
		elif .msg == "iSCSI LUN ready" then "device wait \(.waitedMs)ms"
		elif .msg == "call done" then "total \(.ms | floor)ms" else empty end' "$LOG_FILE" | paste -sd';' | sed 's/;/; /g')"
}
opts() { kopts targetPortal="$ISCSI_PORTAL" iqn="$ISCSI_PLAIN" "$@"; }
ro_pod=$(pod_dir pod-a iscsi ro-ext4) rw_pod=$(pod_dir pod-a iscsi rw-xfs)

flexcall iscsi mount "$ro_pod" "$(opts lun=1 kubernetes.io/fsType=ext4 ro)"
expect Success
breakdown
flexcall iscsi mount "$rw_pod" "$(opts lun=2 kubernetes.io/fsType=xfs)"
expect Success
breakdown
assert_eq "$(iscsi_session_count)" 1 "sessions for two LUNs of one target"
dev1=$(source_of "$ro_pod") dev2=$(source_of "$rw_pod")
[[ $dev1 == /dev/sd* && $dev2 == /dev/sd* && $dev1 != "$dev2" ]] || fail "devices: LUN 1 $dev1, LUN 2 $dev2"
note "LUN 1 -> $dev1, LUN 2 -> $dev2, one session"
assert_eq "$(cat "$ro_pod/hello")" "written by the test" "LUN 1 content"
findmnt -no OPTIONS --mountpoint "$ro_pod" | tr ',' '\n' | grep -qx ro || fail "LUN 1 is not mounted read-only"
if touch "$ro_pod/x" 2>/dev/null; then fail "LUN 1 is writable"; fi
assert_eq "$(blkid -p -s UUID -o value "$dev1")" "$uuid1" "LUN 1 filesystem UUID (never reformatted)"
assert_eq "$(blkid -p -s TYPE -o value "$dev2")" xfs "LUN 2 filesystem"
formatted() { jq -r --arg d "$1" 'select(.msg == "device ready" and .device == $d) | .formatted' "$LOG_FILE" | tr '\n' ' '; }
assert_eq "$(formatted "$dev1")" "false " "LUN 1 formatted by the driver"
assert_eq "$(formatted "$dev2")" "true " "LUN 2 formatted by the driver"
rec=$(iscsiadm -m node -T "$ISCSI_PLAIN" -p "$ISCSI_PORTAL" -I default)
grep -q "^node.startup = manual" <<<"$rec" || fail "node.startup is not manual"
grep -q "^node.session.scan = manual" <<<"$rec" || fail "node.session.scan is not manual"
n=$(ls -d /sys/class/iscsi_session/session*/device/target*/*:*:*:* | wc -l)
assert_eq "$n" 2 "LUNs scanned on the session (only the two in use)"
echo precious >"$rw_pod/data"
sync

flexcall iscsi unmount "$ro_pod"
expect Success
assert_eq "$(iscsi_session_count)" 1 "session kept while LUN 2 is in use"
[ -e "/sys/block/${dev1#/dev/}" ] && fail "LUN 1's device $dev1 was not deleted"
assert_eq "$(cat "$rw_pod/data")" precious "LUN 2 after LUN 1 left"

flexcall iscsi unmount "$rw_pod"
expect Success
breakdown
assert_iscsi_clean
note "after the last unmount: no session, no node record, no sd device"

new_pod=$(pod_dir pod-b iscsi rw-xfs)
flexcall iscsi mount "$new_pod" "$(opts lun=2 kubernetes.io/fsType=xfs)"
expect Success
assert_eq "$(cat "$new_pod/data")" precious "LUN 2 data in a new pod"
flexcall iscsi unmount "$new_pod"
expect Success
flexcall iscsi unmount "$new_pod"
expect Success
assert_iscsi_clean

# Both LUNs mounted at the same moment, then unmounted at the same moment
# (two driver processes, as kubelet runs them): the per-target lock orders
# the logins and the logout; one session serves both, none is left.
exe=$PLUGIN_DIR/flexblock~iscsi/iscsi
pa=$(pod_dir pod-c iscsi ro-ext4) pb=$(pod_dir pod-c iscsi rw-xfs)
"$exe" mount "$pa" "$(opts lun=1 kubernetes.io/fsType=ext4 ro)" >"$WORK/par-a" 2>&1 &
"$exe" mount "$pb" "$(opts lun=2 kubernetes.io/fsType=xfs)" >"$WORK/par-b" 2>&1 &
wait
note "parallel mounts: $(cat "$WORK/par-a") $(cat "$WORK/par-b")"
assert_eq "$(jq -r .status "$WORK/par-a")/$(jq -r .status "$WORK/par-b")" Success/Success "parallel mounts"
assert_eq "$(iscsi_session_count)" 1 "sessions after parallel mounts"
assert_eq "$(cat "$pb/data")" precious "LUN 2 data"
"$exe" unmount "$pa" >"$WORK/par-a" 2>&1 &
"$exe" unmount "$pb" >"$WORK/par-b" 2>&1 &
wait
assert_eq "$(jq -r .status "$WORK/par-a")/$(jq -r .status "$WORK/par-b")" Success/Success "parallel unmounts"
assert_iscsi_clean
assert_eq "$(blkid -p -s UUID -o value "$(lun_img 1)")" "$uuid1" "LUN 1 untouched at the end"
