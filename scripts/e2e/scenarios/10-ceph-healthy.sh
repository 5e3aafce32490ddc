# Ceph is up and a test image maps with the restricted user through a
# keyfile; the mapping shows in `rbd device list` and goes away on unmap.
ceph osd stat | grep -q "1 up" || fail "osd not up: $(ceph osd stat)"
rbd create kube/e2e-probe --size 64M
keyfile=$(mktemp)
printf '%s' "$CEPH_KUBE_KEY" >"$keyfile"
dev=$(rbd map kube/e2e-probe --id kube --keyfile "$keyfile" -m "$CEPH_MON" --conf /dev/null)
rm -f "$keyfile"
note "mapped $dev"
[[ $dev == /dev/rbd* ]] || fail "rbd map printed '$dev'"
[ -b "$dev" ] || fail "$dev is not a block device"
assert_eq "$(rbd device list --format json | jq -r '.[0].name')" e2e-probe "rbd device list"
assert_eq "$(blockdev --getsize64 "$dev")" $((64 << 20)) "mapped size"
rbd unmap "$dev"
assert_eq "$(rbd_mapped_count)" 0 "mappings after unmap"
[ ! -e "/sys/block/${dev#/dev/}" ] || fail "$dev still in sysfs after unmap"
rbd rm kube/e2e-probe >/dev/null 2>&1
