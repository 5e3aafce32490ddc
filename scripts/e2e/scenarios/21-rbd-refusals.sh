# What the RBD driver refuses, and how: an image with a feature the kernel
# cannot map (features it can map pass), a second writer while another
# client watches the image (read-only still works), a wrong key, monitors
# that never answer or refuse the connection: each a Failure within its
# bound (Ceph's client timeouts for the monitors), with nothing mapped and no process or key file left behind.
fence_bound=4 rbd_bound=20
install_driver rbd "{\"timeouts\":{\"fencing\":\"${fence_bound}s\",\"rbd\":\"${rbd_bound}s\"}}"
opts() { kopts monitors="$CEPH_MON" pool=kube user=kube "secret:key=$CEPH_KUBE_KEY" "$@"; }
pod=$(pod_dir pod-r rbd data)
nothing_left() {
	assert_eq "$(rbd_mapped_count)" 0 "$1: mappings"
	assert_eq "$(mount_count_under "$KUBELET_ROOT")" 0 "$1: mounts"
	! pgrep -f '^(/usr/bin/)?rbd ' >/dev/null || fail "$1: an rbd process survived: $(pgrep -a -f '^(/usr/bin/)?rbd ')"
	[ -z "$(find "$STATE_DIR/keys" -type f 2>/dev/null)" ] || fail "$1: key file left behind"
}
supported=$(cat /sys/bus/rbd/supported_features)
note "kernel $(uname -r), rbd supported_features $supported"

# Features: the kernel has no journaling; the refusal names the exact
# command. exclusive-lock,object-map,fast-diff map where the kernel has them.
rbd create kube/rf-journaled --size 64M --image-feature layering,exclusive-lock,journaling
flexcall rbd mount "$pod" "$(opts image=rf-journaled)"
expect Failure "has features this node's kernel cannot map: journaling; disable them with: rbd feature disable kube/rf-journaled journaling"
nothing_left "feature refusal"
rbd feature disable kube/rf-journaled journaling # the command from the message works
flexcall rbd mount "$pod" "$(opts image=rf-journaled)"
expect Success
flexcall rbd unmount "$pod"
expect Success
rbd create kube/rf-fancy --size 64M --image-feature layering,exclusive-lock,object-map,fast-diff
flexcall rbd mount "$pod" "$(opts image=rf-fancy)"
if (((supported & 0x1c) == 0x1c)); then
	expect Success
	note "exclusive-lock,object-map,fast-diff: supported by this kernel, mapped"
	flexcall rbd unmount "$pod"
	expect Success
else
	expect Failure "rbd feature disable kube/rf-fancy"
fi
# Create on first use with features the kernel lacks: refused before creating.
flexcall rbd mount "$pod" "$(opts image=rf-never size=64Mi imageFeatures=layering,exclusive-lock,journaling)"
expect Failure "not creating it"
rbd info kube/rf-never >/dev/null 2>&1 && fail "an unmappable image was created"
nothing_left "create refusal"

# Fencing: another client keeps the image open (and so watched).
rbd create kube/rf-shared --size 64M
mkfs.ext4 -q "$(rbd map kube/rf-shared)" && rbd unmap kube/rf-shared
/usr/bin/python3 -c 'import rados, rbd, time
c = rados.Rados(conffile="/etc/ceph/ceph.conf"); c.connect()
img = rbd.Image(c.open_ioctx("kube"), "rf-shared")
time.sleep(3600)' &
watcher=$!
for _ in $(seq 100); do [ "$(rbd status kube/rf-shared --format json | jq '.watchers|length')" -ge 1 ] && break; sleep 0.2; done
flexcall rbd mount "$pod" "$(opts image=rf-shared)"
expect Failure "image kube/rf-shared is in use by 127.0.0.1:"
# The bound plus one rbd info and one last rbd status (each ~1-3 s under TCG).
[ "$ELAPSED_MS" -ge $((fence_bound * 1000)) ] || fail "refused after ${ELAPSED_MS}ms: it did not wait ${fence_bound}s"
[ "$ELAPSED_MS" -le $((fence_bound * 1000 + 15000)) ] || fail "refused after ${ELAPSED_MS}ms, bound ${fence_bound}s"
note "read-write refused after ${ELAPSED_MS}ms (fencing bound ${fence_bound}s)"
nothing_left "fencing"
grep -q '"msg":"image has watchers, waiting"' "$LOG_FILE" || fail "no retries logged"
note "fencing checks: $(grep -c '"msg":"image has watchers, waiting"' "$LOG_FILE") waits logged"
flexcall rbd mount "$pod" "$(opts image=rf-shared ro)"
expect Success
is_mounted "$pod" || fail "read-only mount missing"
assert_eq "$(cat "/sys/block/$(basename "$(source_of "$pod")")/ro")" 1 "mapped read-only"
flexcall rbd unmount "$pod"
expect Success
# The other client dies (SIGKILL: its watch lingers until the OSD times it
# out, ~30 s): with a bound above that, the mount waits it out and succeeds.
kill -KILL "$watcher"
wait "$watcher" 2>/dev/null || true
install_driver rbd "{\"timeouts\":{\"fencing\":\"60s\",\"rbd\":\"${rbd_bound}s\"}}"
waits_before=$(grep -c '"msg":"image has watchers, waiting"' "$LOG_FILE")
flexcall rbd mount "$pod" "$(opts image=rf-shared)"
expect Success
note "dead client's watch: waited it out, mounted read-write after ${ELAPSED_MS}ms ($(($(grep -c '"msg":"image has watchers, waiting"' "$LOG_FILE") - waits_before)) waits)"
flexcall rbd unmount "$pod"
expect Success
nothing_left "after fencing"

# A wrong key: Ceph's reason in the message, nothing mapped.
flexcall rbd mount "$pod" "$(kopts monitors="$CEPH_MON" pool=kube user=kube image=rf-shared "secret:key=AQBm2gNrjMYiAxAAMe4LIOgL/nsS1N3rqZsrug==")"
expect Failure "refused user \"kube\""
assert_contains "$MESSAGE" "Permission denied" "Ceph's reason"
note "wrong key: $MESSAGE"
nothing_left "wrong key"
# A user that does not exist.
flexcall rbd mount "$pod" "$(kopts monitors="$CEPH_MON" pool=kube user=nobody image=rf-shared "secret:key=$CEPH_KUBE_KEY")"
expect Failure "user \"nobody\""
note "unknown user: $MESSAGE"
nothing_left "unknown user"

# A monitor that accepts connections and never answers, and one that
# refuses them: a Failure within Ceph's client timeouts (rbdConnect), far
# below the rbd bound, naming the monitors; no rbd process left.
connect_bound=5
install_driver rbd "{\"timeouts\":{\"rbd\":\"${rbd_bound}s\",\"rbdConnect\":\"${connect_bound}s\"}}"
/usr/bin/python3 -c 'import socket,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 6790)); s.listen(16)
conns=[]
while True: conns.append(s.accept())' &
silent=$!
sleep 0.5
for mon in 127.0.0.1:6790 127.0.0.1:1; do
	flexcall rbd mount "$pod" "$(kopts monitors=$mon pool=kube user=kube image=rf-shared "secret:key=$CEPH_KUBE_KEY")"
	expect Failure "no answer from the monitors $mon within ${connect_bound}s"
	[ "$ELAPSED_MS" -le $(((connect_bound + 8) * 1000)) ] || fail "took ${ELAPSED_MS}ms, connect bound ${connect_bound}s"
	note "monitor $mon: Failure after ${ELAPSED_MS}ms (connect bound ${connect_bound}s, rbd bound ${rbd_bound}s)"
	nothing_left "monitor $mon"
done
kill "$silent"
wait "$silent" 2>/dev/null || true

for i in rf-journaled rf-fancy rf-shared; do rbd rm "kube/$i" >/dev/null 2>&1; done
true
