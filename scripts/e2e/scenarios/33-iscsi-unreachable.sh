# iSCSI target unreachable: a portal that refuses connections, a portal
# that accepts and never answers (a hung target) and a portal whose packets
# are dropped (a firewall, a dead network path) each give a Failure within
# the configured iscsiadm timeout, leave no iscsiadm process running, and no
# session, record or marker.
install_driver iscsi '{"timeouts":{"iscsiadm":"8s"},"iscsi":{"deviceTimeout":"10s"}}'
pod=$(pod_dir down iscsi data)
# the driver's own duration of its last call, from its log
took() { jq -r 'select(.msg == "call done") | .ms | floor' "$LOG_FILE" | tail -1; }

flexcall iscsi mount "$pod" "$(kopts targetPortal=127.0.0.1:3999 iqn="$ISCSI_PLAIN" lun=1)"
expect Failure "could not connect to the portal 127.0.0.1:3999"
note "refused portal: Failure after $(took) ms"
[ "$(took)" -lt 9000 ] || fail "took $(took) ms, more than the 8 s iscsiadm bound"
assert_iscsi_clean

python3 -c '
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 3262))
s.listen(16)
held = []
while True:
    held.append(s.accept()[0])
' &
hole=$!
prev_exit=$(trap -p EXIT | sed "s/^trap -- '\(.*\)' EXIT$/\1/")
on_exit() {
	local rc=$?
	kill "$hole" 2>/dev/null || true
	tc qdisc del dev lo root 2>/dev/null || true
	if [ "$rc" = 0 ]; then eval "$prev_exit"; else (exit "$rc") || eval "$prev_exit"; fi
}
trap on_exit EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/3262) 2>/dev/null && break; sleep 0.1; done
flexcall iscsi mount "$pod" "$(kopts targetPortal=127.0.0.1:3262 iqn="$ISCSI_PLAIN" lun=1)"
expect Failure "timed out after 8s"
if pgrep -x iscsiadm >/dev/null; then fail "iscsiadm still running: $(pgrep -ax iscsiadm)"; fi
note "hung portal: Failure after $(took) ms (iscsiadm bound 8 s), no iscsiadm left running"
[ "$(took)" -lt 9000 ] || fail "took $(took) ms"
assert_iscsi_clean
is_mounted "$pod" && fail "mounted"

# Dropped packets: every packet to port 3263 goes to a netem band that loses
# them all (band 4: the default priomap never uses it, so other traffic,
# Ceph's included, is untouched).
modprobe -a sch_prio sch_netem cls_u32 2>/dev/null || true
tc qdisc add dev lo root handle 1: prio bands 4
tc qdisc add dev lo parent 1:4 handle 40: netem loss 100%
tc filter add dev lo parent 1:0 protocol ip prio 1 u32 match ip dport 3263 0xffff flowid 1:4
(exec 3<>/dev/tcp/127.0.0.1/3263) 2>/dev/null &
probe=$!
sleep 1
kill -0 "$probe" 2>/dev/null || fail "a connect to the dropping portal did not hang: packets are not dropped"
kill "$probe" 2>/dev/null || true
flexcall iscsi mount "$pod" "$(kopts targetPortal=127.0.0.1:3263 iqn="$ISCSI_PLAIN" lun=1)"
expect Failure "timed out after 8s"
if pgrep -x iscsiadm >/dev/null; then fail "iscsiadm still running: $(pgrep -ax iscsiadm)"; fi
note "dropping portal: Failure after $(took) ms (iscsiadm bound 8 s), no iscsiadm left running"
[ "$(took)" -lt 9000 ] || fail "took $(took) ms"
tc qdisc del dev lo root
assert_iscsi_clean
is_mounted "$pod" && fail "mounted"
true
