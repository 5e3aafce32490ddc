# A `mount` that never returns: the call answers Failure within the
# configured timeout, the tool's process group is gone, the volume's lock is
# free (the retry is not "busy"), and once mount works again the retry
# converges.
FLEXBLOCK_BIN=${FLEXBLOCK_TEST_BIN:-$REPO_ROOT/bin/flexblock-test}
install_driver loop '{"timeouts":{"mount":"3s"}}'
f=$(mktemp /var/tmp/e2e-disk.XXXXXX); truncate -s 64M "$f"; dev=$(losetup -f --show "$f")
pod=$(pod_dir hung-1 loop v)
opts=$(kopts device="$dev")

# The runner puts /usr/local/sbin first on its PATH: shadow mount there
# (the guest's root is a throwaway overlay).
cat >/usr/local/sbin/mount <<'HANG'
#!/bin/sh
sleep 3600 &
echo $! >/run/e2e/hung-mount.pid
wait
HANG
chmod +x /usr/local/sbin/mount

start=$(date +%s)
flexcall loop mount "$pod" "$opts"
took=$((ELAPSED_MS / 1000)) # the driver's own time, not the harness's jq calls
expect Failure "timed out"
note "answered Failure after ${took}s (bound 3s)"
[ "$took" -le 12 ] || fail "took ${took}s" # bound + the probes and mkfs before it, under TCG
pid=$(cat /run/e2e/hung-mount.pid)
if kill -0 "$pid" 2>/dev/null; then fail "the hung mount's child $pid survived"; fi
note "hung mount's process group is gone"

start=$(date +%s)
flexcall loop mount "$pod" "$opts"
expect Failure "timed out"
[ $(($(date +%s) - start)) -le 8 ] || fail "retry waited on a stale lock"
assert_contains "$MESSAGE" "mount" "retry message"

rm /usr/local/sbin/mount
flexcall loop mount "$pod" "$opts"
expect Success
is_mounted "$pod" || fail "pod dir not mounted after the retry"
flexcall loop unmount "$pod"
expect Success
losetup -d "$dev"
