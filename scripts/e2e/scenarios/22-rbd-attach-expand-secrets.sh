# Attach mode with the node-local keyring (kubelet passes no Secret to
# waitforattach); expandfs growing ext4 and xfs with the node keyring and
# no Secret, the new size visible with df; the cephx key never in any
# process's argv or environment while mapping, nor in the log or state.
keyring=/etc/ceph/ceph.client.kube.keyring
rbd create kube/at-vol --size 320M

# Attach mode without a node keyring: attach/isattached/detach still answer
# (they run on the control plane, without credentials); waitforattach
# says what to configure.
install_driver rbd '{"attach":true}'
o=$(kopts monitors="$CEPH_MON" pool=kube image=at-vol kubernetes.io/fsType=xfs)
flexcall rbd init
assert_eq "$(jq -cS .capabilities <<<"$ANSWER")" '{"attach":true,"fsGroup":true,"requiresFSResize":true,"selinuxRelabel":true,"supportsMetrics":true}' "capabilities"
flexcall rbd attach "$o" node1
expect Success
flexcall rbd waitforattach "" "$o"
expect Failure "rbd.keyring"
assert_eq "$(rbd_mapped_count)" 0 "nothing mapped without credentials"

install_driver rbd "{\"attach\":true,\"rbd\":{\"keyring\":\"$keyring\",\"user\":\"kube\"}}"
flexcall rbd attach "$o" node1
expect Success
assert_eq "$DEVICE" "" "attach maps nothing on the control plane"
flexcall rbd isattached "$o" node1
assert_eq "$(jq -r .attached <<<"$ANSWER")" true "isattached"
flexcall rbd waitforattach "" "$o"
expect Success
dev=$DEVICE
[[ $dev == /dev/rbd* ]] || fail "waitforattach device $dev"
note "waitforattach mapped $dev in ${ELAPSED_MS}ms"
flexcall rbd waitforattach "$dev" "$o" # kubelet calls it again for every pod
expect Success
assert_eq "$DEVICE" "$dev" "waitforattach is idempotent"
assert_eq "$(rbd_mapped_count)" 1 "one mapping"
dmp=$(device_mount_path rbd at-vol)
kubelet_mkdir "$dmp"
flexcall rbd mountdevice "$dmp" "$dev" "$o"
expect Success
is_mounted "$dmp" || fail "device mount path not mounted"
assert_eq "$(blkid -p -s TYPE -o value "$dev")" xfs "formatted by mountdevice"
pa=$(pod_dir pa rbd at-vol) pb=$(pod_dir pb rbd at-vol)
for p in "$pa" "$pb"; do
	flexcall rbd mount "$p" "$o"
	expect "Not supported"
	mount --bind "$dmp" "$p" # what kubelet does after Not supported
done
echo data >"$pa/f"
assert_eq "$(cat "$pb/f")" data "second pod sees the first's data"
for p in "$pa" "$pb"; do
	flexcall rbd unmount "$p"
	expect "Not supported"
	umount "$p" # kubelet's own unmount
done
flexcall rbd unmountdevice "$dmp"
expect Success
is_mounted "$dmp" && fail "still mounted"
assert_eq "$(rbd_mapped_count)" 0 "unmapped after unmountdevice"
flexcall rbd unmountdevice "$dmp" # a retry after success
expect Success
flexcall rbd detach at-vol node1
expect Success
# The pod comes back: the data is there.
flexcall rbd waitforattach "" "$o"
expect Success
flexcall rbd mountdevice "$dmp" "$DEVICE" "$o"
expect Success
assert_eq "$(cat "$dmp/f")" data "data after detach and attach"
flexcall rbd unmountdevice "$dmp"
expect Success
assert_eq "$(rbd_mapped_count)" 0 "unmapped at the end of attach mode"

# expandfs: kubelet passes no Secret; the node keyring grows the image.
install_driver rbd "{\"rbd\":{\"keyring\":\"$keyring\"}}"
for fs in ext4 xfs; do
	pod=$(pod_dir grow-$fs rbd data)
	o=$(kopts monitors="$CEPH_MON" pool=kube user=kube image=at-grow-$fs size=320Mi kubernetes.io/fsType=$fs)
	flexcall rbd mount "$pod" "$(kopts monitors="$CEPH_MON" pool=kube user=kube image=at-grow-$fs size=320Mi kubernetes.io/fsType=$fs "secret:key=$CEPH_KUBE_KEY")"
	expect Success
	echo keep >"$pod/f"
	before=$(df -B1 --output=size "$pod" | tail -1)
	flexcall rbd expandfs "$o" "$(source_of "$pod")" "$pod" $((640 << 20)) $((320 << 20))
	expect Success
	took=$ELAPSED_MS
	after=$(df -B1 --output=size "$pod" | tail -1)
	note "$fs: df size $before -> $after bytes (expandfs ${took}ms)"
	assert_eq "$(rbd info kube/at-grow-$fs --format json | jq .size)" $((640 << 20)) "image size"
	[ "$after" -gt $((before + (250 << 20))) ] || fail "$fs did not grow"
	assert_eq "$(cat "$pod/f")" keep "data after the resize"
	flexcall rbd expandfs "$o" "$(source_of "$pod")" "$pod" $((640 << 20)) $((320 << 20)) # a retry
	expect Success
	assert_eq "$(df -B1 --output=size "$pod" | tail -1)" "$after" "a repeated expandfs changes nothing"
	flexcall rbd unmount "$pod"
	expect Success
done
assert_eq "$(rbd_mapped_count)" 0 "mappings after expandfs"

# Secrets: sample every process's argv and environment during mapping.
install_driver rbd
sample_procs "$WORK/procs" &
sampler=$!
pod=$(pod_dir sec rbd data)
for i in 1 2 3; do
	flexcall rbd mount "$pod" "$(kopts monitors="$CEPH_MON" pool=kube user=kube image=at-sec size=64Mi "secret:key=$CEPH_KUBE_KEY")"
	expect Success
	flexcall rbd unmount "$pod"
	expect Success
done
# And a failing call, whose message and log lines quote the argv.
flexcall rbd mount "$pod" "$(kopts monitors="$CEPH_MON" pool=kube user=kube image=at-absent "secret:key=$CEPH_KUBE_KEY")"
expect Failure "does not exist"
kill -0 "$sampler" || fail "the process sampler died early"
kill "$sampler"
wait "$sampler" 2>/dev/null || true
samples=$(wc -l <"$WORK/procs")
grep -q "^rbd map" "$WORK/procs" || fail "the sampler never caught an rbd map in $samples samples: the check proves nothing"
note "rbd map caught $(grep -c "^rbd map" "$WORK/procs") times, with $(grep "^rbd map" "$WORK/procs" | head -1 | grep -o -- '--keyfile=[^ ]*')"
grep -qF "$CEPH_KUBE_KEY" "$WORK/procs" && fail "the cephx key appeared in a process's argv or environment"
grep -q -- "--key[= ]" "$WORK/procs" && fail "--key on some argv"
grep -rqF "$CEPH_KUBE_KEY" "$LOG_FILE" "$STATE_DIR" && fail "the cephx key is in the log or state"
grep -rqF "$(printf %s "$CEPH_KUBE_KEY" | base64 -w0)" "$LOG_FILE" "$STATE_DIR" && fail "the base64 key is in the log or state"
note "key absent from $samples argv/environ samples, the log and the state dir"
[ -z "$(find "$STATE_DIR/keys" -type f 2>/dev/null)" ] || fail "key files left behind"

for i in at-vol at-grow-ext4 at-grow-xfs at-sec; do rbd rm "kube/$i" >/dev/null 2>&1; done
true
