# Logins to both targets work on the real initiator: the plain one (its LUNs
# show up as sd devices in sysfs, on either portal), and the CHAP one with its
# credentials; without them, or with a wrong password, the login fails and
# leaves no session. No node records are left behind.
login() { iscsiadm -m node -T "$1" -p "${2:-$ISCSI_PORTAL}" --login >/dev/null 2>&1; }
logout() { iscsiadm -m node -T "$1" -p "${2:-$ISCSI_PORTAL}" --logout >/dev/null 2>&1 || true; }
set_auth() { iscsiadm -m node -T "$ISCSI_CHAP" -p "$ISCSI_PORTAL" -o update -n "node.session.auth.$1" -v "$2"; }
# session_disks: the sd devices behind the current sessions, per sysfs.
session_disks() { find /sys/class/iscsi_session/session*/device/target*/*/block -mindepth 1 -maxdepth 1 2>/dev/null | sed 's#.*/##' | sort; }
# wait_disks N: the kernel's SCSI scan is asynchronous: poll up to 20 s.
wait_disks() {
	local _
	for _ in $(seq 100); do
		[ "$(session_disks | wc -l)" = "$1" ] && return 0
		sleep 0.2
	done
	fail "want $1 LUN disks behind the sessions, have: $(session_disks | tr '\n' ' ')"
}

for portal in "$ISCSI_PORTAL" "$ISCSI_PORTAL2"; do
	found=$(iscsiadm -m discovery -t sendtargets -p "$portal")
	assert_contains "$found" "$ISCSI_PLAIN" "discovery on $portal"
	assert_contains "$found" "$ISCSI_CHAP" "discovery on $portal"
done

login "$ISCSI_PLAIN" || fail "plain login"
assert_eq "$(iscsi_session_count)" 1 "sessions"
wait_disks 4
note "plain target on $ISCSI_PORTAL: LUN disks $(session_disks | tr '\n' ' ')"
disks=$(session_disks)
logout "$ISCSI_PLAIN"
assert_eq "$(iscsi_session_count)" 0 "sessions after logout"
for _ in $(seq 50); do
	left=$(for d in $disks; do [ ! -e "/sys/block/$d" ] || echo "$d"; done)
	[ -n "$left" ] || break
	sleep 0.2
done
[ -z "$left" ] || fail "still there after logout: $left"

# The second portal is the same target: a session there sees the same LUNs.
login "$ISCSI_PLAIN" "$ISCSI_PORTAL2" || fail "plain login on $ISCSI_PORTAL2"
wait_disks 4
note "plain target on $ISCSI_PORTAL2: LUN disks $(session_disks | tr '\n' ' ')"
logout "$ISCSI_PLAIN" "$ISCSI_PORTAL2"
assert_eq "$(iscsi_session_count)" 0 "sessions after logout"

if login "$ISCSI_CHAP"; then fail "CHAP target accepted a login without credentials"; fi
assert_eq "$(iscsi_session_count)" 0 "sessions after refused login"
set_auth authmethod CHAP
set_auth username "$ISCSI_CHAP_USER"
set_auth password wrong-password
if login "$ISCSI_CHAP"; then fail "CHAP target accepted a wrong password"; fi
assert_eq "$(iscsi_session_count)" 0 "sessions after wrong password"
set_auth password "$ISCSI_CHAP_PASS"
login "$ISCSI_CHAP" || fail "CHAP login with the right credentials"
assert_eq "$(iscsi_session_count)" 1 "sessions"
wait_disks 1
note "CHAP target: LUN disk $(session_disks)"
logout "$ISCSI_CHAP"
assert_eq "$(iscsi_session_count)" 0 "sessions after logout"

iscsiadm -m node -o delete >/dev/null 2>&1 || true
iscsiadm -m discoverydb -t sendtargets -p "$ISCSI_PORTAL" -o delete >/dev/null 2>&1 || true
iscsiadm -m discoverydb -t sendtargets -p "$ISCSI_PORTAL2" -o delete >/dev/null 2>&1 || true
[ -z "$(ls -A /etc/iscsi/nodes 2>/dev/null)" ] || fail "node records left: $(ls /etc/iscsi/nodes)"
