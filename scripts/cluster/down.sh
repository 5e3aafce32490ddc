#!/usr/bin/env bash
# down.sh: stops the test cluster up.sh started: the node VM (powered off:
# its disk and overlay are thrown away), then the control plane, each by the
# pid up.sh recorded, TERM then KILL after 10 s; then removes the cluster's
# dir. Leaves no process behind; fine to run when nothing is up.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/cluster/config.sh
. "$here/config.sh"
[ -e "$CLUSTER_DIR/pids" ] || { echo "cluster: nothing is up"; rm -rf "$CLUSTER_DIR"; exit 0; }

# stop NAME PID: the daemon's whole session (start_bg made it a leader).
stop() {
	local name=$1 pid=$2 _
	kill -TERM -- "-$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do
		kill -0 -- "-$pid" 2>/dev/null || return 0
		sleep 0.2
	done
	echo "cluster: $name (pid $pid) ignored TERM for 10s: killing it"
	kill -KILL -- "-$pid" 2>/dev/null
}

# Newest first: the node before the API server it reports to.
tac "$CLUSTER_DIR/pids" | while read -r name pid; do
	stop "$name" "$pid"
done
left=$(while read -r _ pid; do pgrep -s "$pid"; done <"$CLUSTER_DIR/pids")
if [ -n "$left" ]; then
	echo "cluster: processes left after down: $left" >&2
	exit 1
fi
rm -rf "$CLUSTER_DIR"
echo "cluster: down"
