# One LUN named through two initiator names is one volume (issue 13.3): the
# second pod joins the first's mount after Authorize (same device, one
# session, no second filesystem mount); a pod naming another portal set is
# refused (13.2); the last unmount leaves nothing.
install_driver iscsi '{"iscsi":{"deviceTimeout":"30s"}}'
wipe_lun "$ISCSI_LUN_DIR/plain-lun3.img"
opts() { kopts targetPortal="$ISCSI_PORTAL" iqn="$ISCSI_PLAIN" lun=3 kubernetes.io/fsType=ext4 "$@"; }
a=$(pod_dir pod-ia iscsi data) b=$(pod_dir pod-ib iscsi data) c=$(pod_dir pod-ic iscsi data)
flexcall iscsi mount "$a" "$(opts)"
expect Success
flexcall iscsi mount "$b" "$(opts initiatorName=iqn.2026-12.io.flexblock:second)"
expect Success
assert_eq "$(source_of "$b")" "$(source_of "$a")" "one device for both pods"
assert_eq "$(iscsi_session_count)" 1 "sessions"
note "second initiator name joined in ${ELAPSED_MS}ms on $(source_of "$b")"
flexcall iscsi mount "$c" "$(opts targetPortal="$ISCSI_PORTAL2")"
expect Failure "through the portals"
note "other portal: $MESSAGE"
for p in "$a" "$b"; do
	flexcall iscsi unmount "$p"
	expect Success
done
assert_iscsi_clean "after the last unmount"
