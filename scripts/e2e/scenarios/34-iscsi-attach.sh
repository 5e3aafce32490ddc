# iSCSI in attach mode: attach/isattached/detach need nothing on the node;
# waitforattach logs in with the CHAP credentials from the node-local file
# (kubelet passes no Secret there) and is idempotent; mountdevice formats and
# mounts; unmountdevice tears down and logs out; data survives a new cycle.
creds=$WORK/chap-credentials.json
( umask 077; jq -n --arg u "$ISCSI_CHAP_USER" --arg p "$ISCSI_CHAP_PASS" \
	'{"node.session.auth.username": $u, "node.session.auth.password": $p}' >"$creds" )
install_driver iscsi "{\"attach\":true,\"iscsi\":{\"credentialsFile\":\"$creds\",\"deviceTimeout\":\"30s\"}}"
img=$ISCSI_LUN_DIR/chap-lun1.img
wipe_lun "$img"
o=$(kopts targetPortal="$ISCSI_PORTAL" iqn="$ISCSI_CHAP" lun=1 chapAuthSession=true kubernetes.io/fsType=ext4 kubernetes.io/pvOrVolumeName=chapvol)
dmp=$(device_mount_path iscsi chapvol)
pod=$(pod_dir att-1 iscsi chapvol)

flexcall iscsi init
assert_eq "$(jq -r .capabilities.attach <<<"$ANSWER")" true "attach capability"
for round in 1 2; do
	flexcall iscsi attach "$o" node1
	expect Success
	flexcall iscsi isattached "$o" node1
	assert_eq "$(jq -r .attached <<<"$ANSWER")" true "isattached"
	assert_eq "$(iscsi_session_count)" 0 "attach itself logs in nowhere"
	flexcall iscsi waitforattach "" "$o"
	expect Success
	dev=$DEVICE
	[[ $dev == /dev/sd* ]] || fail "waitforattach device $dev"
	flexcall iscsi waitforattach "$dev" "$o"
	expect Success
	assert_eq "$DEVICE" "$dev" "waitforattach is idempotent"
	assert_eq "$(iscsi_session_count)" 1 "sessions"
	mkdir -p "$dmp"
	flexcall iscsi mountdevice "$dmp" "$dev" "$o"
	expect Success
	is_mounted "$dmp" || fail "device mount path not mounted"
	flexcall iscsi mount "$pod" "$o"
	expect "Not supported"
	mkdir -p "$pod"
	mount --bind "$dmp" "$pod" # what kubelet does
	echo "round $round" >>"$pod/log"
	assert_eq "$(wc -l <"$pod/log")" "$round" "data across attach cycles"
	umount "$pod"
	flexcall iscsi unmountdevice "$dmp"
	expect Success
	is_mounted "$dmp" && fail "still mounted"
	assert_iscsi_clean
	flexcall iscsi detach chapvol node1
	expect Success
done
grep -rqF -- "$ISCSI_CHAP_PASS" "$LOG_FILE" "$STATE_DIR" && fail "the password is in the driver log or state"
true
