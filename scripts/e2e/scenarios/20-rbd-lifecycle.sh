# RBD through the driver against the real Ceph: the missing-image error; a
# blank image formatted on first mount, its data across pods; two pods
# sharing one mapping (also mounted at the same time); create on first use;
# a mapping left by a killed call reused; a snapshot in a rados namespace
# mapped read-only; the mapping gone after the last unmount each time.
install_driver rbd
opts() { kopts monitors="$CEPH_MON" pool=kube user=kube "secret:key=$CEPH_KUBE_KEY" "$@"; }
p1=$(pod_dir pod-1 rbd data) p2=$(pod_dir pod-2 rbd data) p3=$(pod_dir pod-3 rbd data)
mapped_images() { rbd device list --format json | jq -r '[.[] | "\(.pool)/\(.namespace)/\(.name)@\(.snap)"] | sort | join(" ")'; }

# The image does not exist and no size is given: a Failure that says how
# to create it; nothing created, nothing mapped.
flexcall rbd mount "$p1" "$(opts image=lc-absent)"
expect Failure "image kube/lc-absent does not exist"
assert_contains "$MESSAGE" "rbd create --size 10G kube/lc-absent" "missing-image message"
assert_contains "$MESSAGE" "set the option size" "missing-image message"
rbd info kube/lc-absent >/dev/null 2>&1 && fail "the missing image was created"
assert_eq "$(rbd_mapped_count)" 0 "mappings after refusal"

# A blank image made by the operator: the first mount formats it.
rbd create kube/lc-blank --size 128M
[ -z "$(blkid -p -o value -s TYPE "$(rbd map kube/lc-blank)" 2>/dev/null)" ] || fail "the image is not blank"
rbd unmap kube/lc-blank
flexcall rbd mount "$p1" "$(opts image=lc-blank kubernetes.io/fsType=ext4)"
expect Success
dev=$(source_of "$p1")
[[ $dev == /dev/rbd* ]] || fail "pod 1 is not on an rbd device: $dev"
assert_eq "$(blkid -p -s TYPE -o value "$dev")" ext4 "formatted on first mount"
echo precious >"$p1/file"
note "first mount formatted $dev in ${ELAPSED_MS}ms"

# A second pod on the node: same mapping, a second bind.
flexcall rbd mount "$p2" "$(opts image=lc-blank kubernetes.io/fsType=ext4)"
expect Success
assert_eq "$(rbd_mapped_count)" 1 "one mapping for two pods"
assert_eq "$(source_of "$p2")" "$dev" "second pod on the same device"
assert_eq "$(cat "$p2/file")" precious "second pod sees the data"
flexcall rbd unmount "$p1"
expect Success
assert_eq "$(cat "$p2/file")" precious "second pod still works after the first left"
echo more >>"$p2/file"
assert_eq "$(rbd_mapped_count)" 1 "mapping kept while a pod uses it"
flexcall rbd unmount "$p2"
expect Success
assert_eq "$(rbd_mapped_count)" 0 "mappings after the last unmount"
flexcall rbd unmount "$p2"
expect Success

# The pod is recreated: a new mount reads the data back (no reformat).
flexcall rbd mount "$p3" "$(opts image=lc-blank kubernetes.io/fsType=ext4)"
expect Success
assert_eq "$(cat "$p3/file")" "precious
more" "data after remount in a new pod"
flexcall rbd unmount "$p3"
expect Success
assert_eq "$(rbd_mapped_count)" 0 "mappings after the pod left"

# Two pods starting at the same moment: both succeed, one mapping.
o=$(opts image=lc-blank kubernetes.io/fsType=ext4)
exe=$PLUGIN_DIR/flexblock~rbd/rbd
kubelet_mkdir "$p1" && kubelet_mkdir "$p2"
"$exe" mount "$p1" "$(kubelet_pod_keys "$p1" "$o")" >"$WORK/par1" 2>&1 &
par1=$!
"$exe" mount "$p2" "$(kubelet_pod_keys "$p2" "$o")" >"$WORK/par2" 2>&1 &
par2=$!
wait "$par1" "$par2"
for f in par1 par2; do assert_eq "$(jq -r .status "$WORK/$f")" Success "parallel mount ($f: $(cat "$WORK/$f"))"; done
assert_eq "$(rbd_mapped_count)" 1 "one mapping for two parallel mounts"
assert_eq "$(cat "$p2/file")" "precious
more" "data in a parallel mount"
flexcall rbd unmount "$p1"
expect Success
flexcall rbd unmount "$p2"
expect Success
assert_eq "$(rbd_mapped_count)" 0 "mappings after the parallel pods"

# Create on first use: size given, the image is made (layering only, so
# every kernel maps it) and formatted.
flexcall rbd mount "$p1" "$(opts image=lc-new size=320Mi kubernetes.io/fsType=xfs)"
expect Success
assert_eq "$(rbd info kube/lc-new --format json | jq -c '[.size, .features]')" "[$((320 << 20)),[\"layering\"]]" "created image"
assert_eq "$(blkid -p -s TYPE -o value "$(source_of "$p1")")" xfs "formatted xfs"
note "create on first use + mkfs.xfs + mount: ${ELAPSED_MS}ms"
echo new >"$p1/f"
flexcall rbd unmount "$p1"
expect Success
assert_eq "$(rbd_mapped_count)" 0 "mappings after the created volume"

# A mapping left behind (a call killed right after `rbd map`): the next
# mount reuses it instead of mapping again, and unmount removes it.
left=$(rbd map kube/lc-new)
flexcall rbd mount "$p1" "$(opts image=lc-new size=320Mi kubernetes.io/fsType=xfs)"
expect Success
assert_eq "$(rbd_mapped_count)" 1 "the left mapping was reused"
assert_eq "$(source_of "$p1")" "$left" "mounted from the left mapping"
assert_eq "$(cat "$p1/f")" new "data on the reused mapping"
flexcall rbd unmount "$p1"
expect Success
assert_eq "$(rbd_mapped_count)" 0 "the reused mapping was unmapped"

# A rados namespace, and a snapshot of an image there: mapped read-only
# (also while the image itself is mapped read-write by another pod).
rbd namespace create kube/team
flexcall rbd mount "$p1" "$(opts radosNamespace=team image=lc-ns size=64Mi)"
expect Success
echo "before the snapshot" >"$p1/f"
fsfreeze -f "$p1" # a clean journal: ext4 will not mount a dirty one read-only
rbd snap create kube/team/lc-ns@monday
fsfreeze -u "$p1"
echo "after the snapshot" >"$p1/f"
flexcall rbd mount "$p2" "$(opts radosNamespace=team image=lc-ns snapshot=monday)"
expect Failure "set readOnly"
flexcall rbd mount "$p2" "$(opts radosNamespace=team image=lc-ns snapshot=monday ro)"
expect Success
assert_eq "$(cat "$p2/f")" "before the snapshot" "snapshot content"
assert_eq "$(cat "$p1/f")" "after the snapshot" "image content"
assert_eq "$(mapped_images)" "kube/team/lc-ns@- kube/team/lc-ns@monday" "two mappings, by namespace and snapshot"
touch "$p2/x" 2>/dev/null && fail "the snapshot is writable"
assert_eq "$(cat "/sys/block/$(basename "$(source_of "$p2")")/ro")" 1 "snapshot device read-only"
flexcall rbd unmount "$p2"
expect Success
assert_eq "$(mapped_images)" "kube/team/lc-ns@-" "only the snapshot's mapping went"
flexcall rbd unmount "$p1"
expect Success
assert_eq "$(rbd_mapped_count)" 0 "mappings at the end"
[ -z "$(find "$STATE_DIR/keys" -type f 2>/dev/null)" ] || fail "key files left behind"

rbd snap purge kube/team/lc-ns >/dev/null 2>&1
for i in kube/lc-blank kube/lc-new kube/team/lc-ns; do rbd rm "$i" >/dev/null 2>&1; done
true
