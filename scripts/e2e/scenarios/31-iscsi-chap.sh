# iSCSI CHAP through the driver: a wrong Secret is a Failure that says what
# to fix and leaves no session or record; a missing key is named; the right
# Secret mounts. The password appears in no process's argv or environment
# except iscsiadm's own (unavoidable: iscsiadm takes it as -v), and never in
# the driver log or state.
install_driver iscsi '{"iscsi":{"deviceTimeout":"30s"}}'
img=$ISCSI_LUN_DIR/chap-lun1.img
wipe_lun "$img"
opts() { kopts targetPortal="$ISCSI_PORTAL" iqn="$ISCSI_CHAP" lun=1 chapAuthSession=true kubernetes.io/fsType=ext4 "$@"; }
pod=$(pod_dir chap-1 iscsi data)

flexcall iscsi mount "$pod" "$(opts "secret:node.session.auth.username=$ISCSI_CHAP_USER" "secret:node.session.auth.password=Wrong-Password-42")"
expect Failure "authorization failure"
assert_contains "$MESSAGE" "node.session.auth.password" "the message names the key to fix"
assert_contains "$MESSAGE" "exit status 24" "iscsiadm's reason is kept"
is_mounted "$pod" && fail "mounted with a wrong password"
assert_iscsi_clean

flexcall iscsi mount "$pod" "$(opts "secret:node.session.auth.username=$ISCSI_CHAP_USER")"
expect Failure '"kubernetes.io/secret/node.session.auth.password" is missing'

flexcall iscsi mount "$pod" "$(kopts targetPortal="$ISCSI_PORTAL" iqn="$ISCSI_CHAP" lun=1)"
expect Failure 'set chapAuthSession: "true"'
assert_iscsi_clean

sample_procs "$WORK/procs" &
sampler=$!
for i in 1 2; do
	flexcall iscsi mount "$pod" "$(opts "secret:node.session.auth.username=$ISCSI_CHAP_USER" "secret:node.session.auth.password=$ISCSI_CHAP_PASS")"
	expect Success
	echo "round $i" >>"$pod/log"
	assert_eq "$(iscsi_session_count)" 1 "sessions"
	flexcall iscsi unmount "$pod"
	expect Success
done
kill "$sampler"
wait "$sampler" 2>/dev/null || true
assert_iscsi_clean
samples=$(grep -c . "$WORK/procs")
seen=$(grep -cF -- "$ISCSI_CHAP_PASS" "$WORK/procs" || true)
others=$(grep -F -- "$ISCSI_CHAP_PASS" "$WORK/procs" | grep -v '^iscsiadm ' || true)
[ -z "$others" ] || fail "the CHAP password is in another process's argv or environment: $(sed 's/'"$ISCSI_CHAP_PASS"'/<password>/g' <<<"$others" | head -3)"
note "password in $seen of $samples argv/environ samples, all of them iscsiadm's own argv"
b64=$(printf '%s' "$ISCSI_CHAP_PASS" | base64 -w0)
grep -rqF -- "$ISCSI_CHAP_PASS" "$LOG_FILE" "$STATE_DIR" && fail "the password is in the driver log or state"
grep -rqF -- "$b64" "$LOG_FILE" "$STATE_DIR" && fail "the base64 password is in the driver log or state"
grep -q '\*\*\*' "$LOG_FILE" || fail "no masked value in the log: was iscsiadm's CHAP update logged at all?"
note "log and state free of the password (raw and base64); masked as *** in iscsiadm argv lines"
