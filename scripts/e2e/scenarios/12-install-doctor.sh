# The installer puts both drivers into a plugin dir atomically and self-tests
# them; doctor then finds this real-kernel node all green.
"$FLEXBLOCK_BIN" install --once --plugin-dir "$PLUGIN_DIR" --state-dir "$STATE_DIR" --log-file "$LOG_FILE" --kubelet-root "$KUBELET_ROOT"
for b in rbd iscsi; do
	[ -x "$PLUGIN_DIR/flexblock~$b/$b" ] || fail "$b driver not installed"
	flexcall "$b" init
	expect Success
done
set +e
"$FLEXBLOCK_BIN" doctor --plugin-dir "$PLUGIN_DIR" --state-dir "$STATE_DIR" --log-file "$LOG_FILE" >"$WORK/doctor.txt" 2>&1
rc=$?
set -e
sed 's/^/  /' "$WORK/doctor.txt"
assert_eq "$rc" 0 "doctor exit status"
"$FLEXBLOCK_BIN" uninstall --plugin-dir "$PLUGIN_DIR" --state-dir "$STATE_DIR"
[ -e "$PLUGIN_DIR/flexblock~rbd/rbd" ] && fail "uninstall left the rbd driver"
true
