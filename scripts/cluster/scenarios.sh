#!/bin/bash
# The cluster scenarios (sourced by test.sh, after lib.sh): each is a
# function run in a `set -e` subshell; fail() ends it with a reason.
# shellcheck disable=SC2154 # WORK, repo, FLEXBLOCK_IMAGE, SHELL_IMAGE: test.sh

PLUGIN_DIR=/usr/libexec/kubernetes/kubelet-plugins/volume/exec
POD_TIMEOUT=${CLUSTER_POD_TIMEOUT:-300}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
say() { echo "  # $*"; }

# node_sh SCRIPT: runs SCRIPT with bash on the node itself (its mount, UTS,
# IPC and network namespaces), through kubectl exec into a privileged
# hostPID pod: the operator's way in, and a check that exec works.
node_sh() {
	ensure_node_shell
	kubectl -n kube-system exec node-shell -- nsenter -t 1 -m -u -i -n -- \
		/usr/bin/env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/bash -c "$1"
}

ensure_node_shell() {
	[ -z "${_NODE_SHELL:-}" ] || return 0
	kubectl apply -f - >/dev/null <<-EOF
		apiVersion: v1
		kind: Pod
		metadata: {name: node-shell, namespace: kube-system}
		spec:
		  hostPID: true
		  hostNetwork: true
		  tolerations: [{operator: Exists}]
		  terminationGracePeriodSeconds: 1
		  containers:
		  - name: sh
		    image: $SHELL_IMAGE
		    imagePullPolicy: Never
		    command: ["sleep", "2147483647"]
		    securityContext: {privileged: true}
	EOF
	kubectl -n kube-system wait --for=condition=Ready pod/node-shell --timeout="${POD_TIMEOUT}s" >/dev/null ||
		fail "the node-shell pod did not become Ready"
	_NODE_SHELL=1
}

# node_env NAME: a value the e2e guest setup wrote (Ceph keys, iSCSI IQNs).
node_env() { node_sh ". /run/flexblock-e2e/env; printf %s \"\$$1\""; }

# assert_node_clean: the node holds no flexblock mapping, iSCSI session,
# volume mount or state record.
assert_node_clean() {
	local out
	out=$(node_sh '
		n=$(rbd device list --format json 2>/dev/null | jq length)
		[ "${n:-0}" = 0 ] || echo "rbd mappings: $(rbd device list)"
		s=$(find /sys/class/iscsi_session -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
		[ "$s" = 0 ] || echo "iSCSI sessions: $(iscsiadm -m session 2>&1)"
		m=$(awk '\''/flexblock~|\/flexvolume\// || / - [^ ]+ \/dev\/(rbd|sd|dm-|mapper)/'\'' /proc/1/mountinfo)
		[ -z "$m" ] || echo "mounts: $m"
		r=$(find /run/flexblock/volumes -type f 2>/dev/null)
		[ -z "$r" ] || echo "state records: $r"
		k=$(find /var/lib/flexblock/iscsi -type f 2>/dev/null)
		[ -z "$k" ] || echo "iSCSI record markers: $k"
		true')
	[ -z "$out" ] || fail "the node is not clean: $out"
	say "node clean: no mapping, session, mount or state record"
}

# overlay NAME: a fresh kustomization dir WORK/NAME (the caller writes its
# kustomization.yaml and copies the example files in).
overlay() {
	rm -rf "${WORK:?}/$1"
	mkdir -p "$WORK/$1"
	echo "$WORK/$1"
}

# deploy_overlay NAME EXAMPLE_DIR: examples/EXAMPLE_DIR with the local image,
# never pulled.
deploy_overlay() {
	local d rel
	d=$(overlay "$1")
	rel=$(realpath --relative-to="$d" "$repo/examples/$2")
	cat >"$d/kustomization.yaml" <<-EOF
		apiVersion: kustomize.config.k8s.io/v1beta1
		kind: Kustomization
		resources: [$rel]
		images:
		- name: registry.example.com/storage/flexblock
		  newName: ${FLEXBLOCK_IMAGE%:*}
		  newTag: ${FLEXBLOCK_IMAGE##*:}
		patches:
		- target: {kind: DaemonSet}
		  patch: |-
		    - op: replace
		      path: /spec/template/spec/containers/0/imagePullPolicy
		      value: Never
	EOF
	echo "$d"
}

# example_overlay NAME FILE...: copies of examples/FILEs with the test
# images; the caller appends its patches.
example_overlay() {
	local d f name=$1
	shift
	d=$(overlay "$name")
	for f in "$@"; do cp "$repo/examples/$f" "$d/"; done
	{
		echo "apiVersion: kustomize.config.k8s.io/v1beta1"
		echo "kind: Kustomization"
		echo "resources:"
		for f in "$@"; do echo "- ${f##*/}"; done
		echo "images:"
		for f in busybox postgres; do
			echo "- {name: $f, newName: ${SHELL_IMAGE%:*}, newTag: ${SHELL_IMAGE##*:}}"
		done
	} >"$d/kustomization.yaml"
	echo "$d"
}

wait_ready() {
	local ns=$1 pod=$2
	if ! kubectl -n "$ns" wait --for=condition=Ready "pod/$pod" --timeout="${POD_TIMEOUT}s" >/dev/null; then
		kubectl -n "$ns" describe pod "$pod" | tail -25
		fail "pod $ns/$pod not Ready within ${POD_TIMEOUT}s"
	fi
}

# delete_pod NS POD: deleted and gone (volumes torn down), bounded.
delete_pod() {
	kubectl -n "$1" delete pod "$2" --ignore-not-found --timeout="${POD_TIMEOUT}s" >/dev/null ||
		fail "pod $1/$2 not gone within ${POD_TIMEOUT}s"
}

# wait_event POD TEXT: an event of POD (namespace default) whose message
# contains TEXT, within POD_TIMEOUT; prints it.
wait_event() {
	local deadline=$(($(date +%s) + POD_TIMEOUT)) msgs
	while [ "$(date +%s)" -lt "$deadline" ]; do
		msgs=$(kubectl get events --field-selector "involvedObject.name=$1" -o jsonpath='{range .items[*]}{.message}{"\n"}{end}')
		if grep -F -- "$2" <<<"$msgs" | head -1 | grep .; then return 0; fi
		sleep 2
	done
	echo "$msgs"
	fail "no event of $1 says '$2' within ${POD_TIMEOUT}s"
}

# wait_log NS POD TEXT: POD's log says TEXT within POD_TIMEOUT.
wait_log() {
	local deadline=$(($(date +%s) + POD_TIMEOUT))
	until kubectl -n "$1" logs "$2" 2>/dev/null | grep -qF -- "$3"; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "the log of $1/$2 does not say '$3' within ${POD_TIMEOUT}s"
		sleep 2
	done
}

scenario_install() {
	local d pod logs
	d=$(deploy_overlay deploy deploy)
	echo "\$ kubectl apply -k examples/deploy   (image: $FLEXBLOCK_IMAGE, imagePullPolicy: Never)"
	kubectl apply -k "$d"
	kubectl -n flexblock rollout status ds/flexblock --timeout="${POD_TIMEOUT}s" || fail "the DaemonSet did not roll out"
	kubectl -n flexblock get pods -o wide
	pod=$(kubectl -n flexblock get pods -l app.kubernetes.io/component=installer -o jsonpath='{.items[0].metadata.name}')
	# Ready is Running (no probe): the install is done when it says so.
	wait_log flexblock "$pod" watching
	logs=$(kubectl -n flexblock logs "$pod")
	node_sh "ls -l $PLUGIN_DIR/flexblock~rbd/rbd $PLUGIN_DIR/flexblock~iscsi/iscsi" || fail "the drivers are not in kubelet's plugin dir"
	echo "\$ kubectl -n flexblock logs $pod"
	sed 's/^/    /' <<<"$logs" | head -20
	# The installer self-tests (init) each driver before it says "watching".
	grep -Eq "(installed|replaced|unchanged).*flexblock~rbd/rbd" <<<"$logs" || fail "the installer's log does not show the rbd driver installed"
	grep -q "watching $PLUGIN_DIR" <<<"$logs" || fail "the installer's log does not show it passed its self-test and watches"
	# The installed driver answers as a driver by its name: run a copy
	# named flexblock.
	echo "\$ flexblock doctor   (on the node, the installed binary)"
	node_sh "cp $PLUGIN_DIR/flexblock~rbd/rbd /tmp/flexblock && /tmp/flexblock doctor" | tee "$WORK/doctor" | sed 's/^/    /'
	grep -q READY "$WORK/doctor" || fail "doctor does not say READY"
}

scenario_rbd_inline() {
	local d key
	key=$(node_env CEPH_KUBE_KEY)
	echo "\$ rbd create kube/inline-demo --size 1G --image-feature layering   (on the node, as the example says)"
	node_sh "rbd rm kube/inline-demo >/dev/null 2>&1; rbd create kube/inline-demo --size 1G --image-feature layering"
	d=$(example_overlay rbd-inline rbd/secret.yaml rbd/pod-inline.yaml)
	cat >>"$d/kustomization.yaml" <<-EOF
		patches:
		- patch: |-
		    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ceph-secret", "namespace": "default"},
		     "stringData": {"key": "$key"}}
		- patch: |-
		    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rbd-inline", "namespace": "default"},
		     "spec": {"volumes": [{"name": "data", "flexVolume": {"driver": "flexblock/rbd", "options": {"monitors": "127.0.0.1:6789"}}}]}}
	EOF
	echo "\$ kubectl apply -k examples/rbd (secret.yaml, pod-inline.yaml; monitors and key patched)"
	kubectl apply -k "$d"
	wait_ready default rbd-inline
	kubectl get pod rbd-inline -o wide
	kubectl exec rbd-inline -- sh -c 'echo inline-data > /data/file && sync && cat /data/started /data/file' || fail "cannot write the volume"
	kubectl exec rbd-inline -- sh -c 'grep " /data " /proc/mounts' | grep -q ext4 || fail "/data is not the ext4 volume"
	delete_pod default rbd-inline
	assert_node_clean
	kubectl delete secret ceph-secret >/dev/null
	node_sh "rbd rm kube/inline-demo >/dev/null 2>&1"
}

scenario_rbd_pv_pvc() {
	local d key
	key=$(node_env CEPH_KUBE_KEY)
	d=$(example_overlay rbd-pv rbd/secret.yaml rbd/pv-pvc-pod.yaml)
	cat >>"$d/kustomization.yaml" <<-EOF
		patches:
		- patch: |-
		    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ceph-secret", "namespace": "default"},
		     "stringData": {"key": "$key"}}
		- patch: |-
		    {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "rbd-pg-data"},
		     "spec": {"flexVolume": {"driver": "flexblock/rbd", "options": {"monitors": "127.0.0.1:6789"}}}}
		- patch: |-
		    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pg", "namespace": "default"},
		     "spec": {"containers": [{"name": "postgres",
		       "command": ["sh", "-c", "date >> /var/lib/postgresql/data/started && exec sleep 2147483647"]}]}}
	EOF
	echo "\$ kubectl apply -k examples/rbd (secret.yaml, pv-pvc-pod.yaml; monitors, key, image patched)"
	kubectl apply -k "$d"
	wait_ready default pg
	kubectl get pods,pvc,pv
	kubectl exec pg -- sh -c 'echo pv-data > /var/lib/postgresql/data/file && sync' || fail "cannot write the volume"
	[ "$(kubectl exec pg -- stat -c %g /var/lib/postgresql/data)" = 999 ] || fail "fsGroup 999 not applied to the volume"
	say "fsGroup 999 applied"
	echo "\$ kubectl delete pod pg; kubectl apply -k ...   (the pod re-created)"
	delete_pod default pg
	assert_node_clean
	kubectl apply -k "$d" >/dev/null
	wait_ready default pg
	[ "$(kubectl exec pg -- cat /var/lib/postgresql/data/file)" = pv-data ] || fail "the data is not there after the pod was re-created"
	say "data read back: $(kubectl exec pg -- cat /var/lib/postgresql/data/file)"
	check_volume_stats pg /var/lib/postgresql/data pg-data
	expand_pvc pg /var/lib/postgresql/data
	echo "\$ kubectl delete pod pg; a pod with the claim readOnly: true"
	delete_pod default pg
	shell_pod pg-ro '[{"name": "data", "persistentVolumeClaim": {"claimName": "pg-data", "readOnly": true}}]'
	wait_ready default pg-ro
	[ "$(kubectl exec pg-ro -- cat /data/file)" = pv-data ] || fail "the read-only pod does not read the data"
	if kubectl exec pg-ro -- touch /data/x 2>/dev/null; then fail "a readOnly claim is writable"; fi
	kubectl exec pg-ro -- grep " /data " /proc/mounts | grep -q " ro," || fail "the readOnly claim is not mounted ro"
	say "readOnly claim: mounted ro in the container, data readable, not writable"
	delete_pod default pg-ro
	kubectl delete -k "$d" --ignore-not-found --timeout="${POD_TIMEOUT}s" >/dev/null
	assert_node_clean
	node_sh "rbd rm kube/pg-data >/dev/null 2>&1"
}

scenario_iscsi_two_luns() {
	local d iqn
	iqn=$(node_env ISCSI_PLAIN)
	echo "\$ mkfs.ext4 -d ... LUN 1   (the read-only LUN must hold a filesystem; on the node, at the target)"
	node_sh "set -e; mkdir -p /tmp/ref; echo reference-data >/tmp/ref/README
		mkfs.ext4 -q -F -d /tmp/ref /var/lib/flexblock-e2e/plain-lun1.img
		s=\$(stat -c %s /var/lib/flexblock-e2e/plain-lun2.img); truncate -s 0 /var/lib/flexblock-e2e/plain-lun2.img
		truncate -s \$s /var/lib/flexblock-e2e/plain-lun2.img"
	d=$(example_overlay iscsi iscsi/secret-chap.yaml iscsi/pod.yaml)
	# The test target serves the LUNs without CHAP on two local portals.
	local opts="\"targetPortal\": \"127.0.0.1:3260\", \"portals\": \"127.0.0.2:3260\", \"iqn\": \"$iqn\", \"chapAuthDiscovery\": \"false\", \"chapAuthSession\": \"false\""
	cat >>"$d/kustomization.yaml" <<-EOF
		patches:
		- patch: |-
		    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "iscsi-two-luns", "namespace": "default"},
		     "spec": {"volumes": [
		       {"name": "reference", "flexVolume": {"driver": "flexblock/iscsi", "options": {$opts, "lun": "1"}}},
		       {"name": "scratch", "flexVolume": {"driver": "flexblock/iscsi", "options": {$opts, "lun": "2"}}}]}}
	EOF
	echo "\$ kubectl apply -k examples/iscsi (portals, iqn, luns patched; no CHAP on the test target)"
	kubectl apply -k "$d"
	wait_ready default iscsi-two-luns
	[ "$(kubectl exec iscsi-two-luns -- cat /reference/README)" = reference-data ] || fail "the read-only LUN's data is not there"
	if kubectl exec iscsi-two-luns -- touch /reference/x 2>/dev/null; then fail "the read-only LUN is writable"; fi
	say "/reference (ext4) is read-only and holds its data"
	kubectl exec iscsi-two-luns -- sh -c 'echo scratch > /scratch/file && grep " /scratch " /proc/mounts' | grep -q xfs ||
		fail "/scratch is not a writable xfs volume"
	say "/scratch (xfs, formatted on first use) is writable"
	delete_pod default iscsi-two-luns
	assert_node_clean
	kubectl delete -k "$d" --ignore-not-found >/dev/null
}

# A user's mistakes end as pod events with flexblock's message, never a
# hang: the pod is deleted cleanly afterwards.
scenario_failures() {
	local d
	d=$(example_overlay failures rbd/secret.yaml rbd/pod-inline.yaml)
	cat >>"$d/kustomization.yaml" <<-EOF
		patches:
		- patch: |-
		    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rbd-inline", "namespace": "default"},
		     "spec": {"volumes": [{"name": "data", "flexVolume": {"driver": "flexblock/rbd",
		       "options": {"monitors": "127.0.0.1:6789", "imageFormat": "2"}}}]}}
	EOF
	echo "\$ kubectl apply -k ...   (pod-inline.yaml with an unknown option imageFormat)"
	kubectl apply -k "$d" >/dev/null
	wait_event rbd-inline imageFormat
	delete_pod default rbd-inline
	assert_node_clean
	kubectl delete -k "$d" --ignore-not-found >/dev/null

	# A Secret whose key is not the user's: Ceph refuses the map.
	node_sh "rbd rm kube/inline-demo >/dev/null 2>&1; rbd create kube/inline-demo --size 64M --image-feature layering"
	d=$(example_overlay wrong-key rbd/secret.yaml rbd/pod-inline.yaml)
	cat >>"$d/kustomization.yaml" <<-EOF
		patches:
		- patch: |-
		    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rbd-inline", "namespace": "default"},
		     "spec": {"volumes": [{"name": "data", "flexVolume": {"driver": "flexblock/rbd", "options": {"monitors": "127.0.0.1:6789"}}}]}}
	EOF
	echo "\$ kubectl apply -k ...   (pod-inline.yaml, secret.yaml with its placeholder key)"
	# The same pod name: the first case's events must not answer for it.
	kubectl delete events --field-selector involvedObject.name=rbd-inline >/dev/null
	kubectl apply -k "$d" >/dev/null
	wait_event rbd-inline "status: Failure"
	delete_pod default rbd-inline
	assert_node_clean
	kubectl delete -k "$d" --ignore-not-found >/dev/null
	node_sh "rbd rm kube/inline-demo >/dev/null 2>&1"

	# A Secret that does not exist: kubelet says so before any call.
	echo "\$ a pod whose volume names a Secret that does not exist"
	shell_pod no-secret "[$(rbd_volume data inline-demo | jq -c '.flexVolume.secretRef.name = "no-such-secret"')]"
	wait_event no-secret "no-such-secret"
	delete_pod default no-secret
	assert_node_clean

	# Image features the node's kernel cannot map: the event names them and
	# the command that fixes the image.
	ceph_secret
	node_sh "rbd rm kube/unmappable >/dev/null 2>&1; rbd create kube/unmappable --size 64M --image-feature layering,exclusive-lock,journaling"
	echo "\$ a pod on an image with the journaling feature (krbd cannot map it)"
	shell_pod unmappable "[$(rbd_volume data unmappable)]"
	wait_event unmappable "cannot map: journaling; disable them with: rbd feature disable"
	delete_pod default unmappable
	assert_node_clean
	kubectl delete secret ceph-secret >/dev/null
	node_sh "rbd rm kube/unmappable >/dev/null 2>&1"
}

scenario_uninstall() {
	local d pod
	echo "\$ kubectl -n flexblock delete ds flexblock; kubectl apply -k examples/uninstall"
	kubectl -n flexblock delete ds flexblock --timeout="${POD_TIMEOUT}s"
	d=$(deploy_overlay uninstall uninstall)
	kubectl apply -k "$d"
	kubectl -n flexblock rollout status ds/flexblock-uninstall --timeout="${POD_TIMEOUT}s" || fail "the uninstaller did not roll out"
	pod=$(kubectl -n flexblock get pods -l app.kubernetes.io/component=uninstaller -o jsonpath='{.items[0].metadata.name}')
	wait_log flexblock "$pod" uninstalled
	kubectl -n flexblock logs "$pod" | sed 's/^/    /'
	if node_sh "ls -d $PLUGIN_DIR/flexblock~* 2>/dev/null | grep ." 2>/dev/null; then fail "drivers left in the plugin dir"; fi
	say "no flexblock driver left in $PLUGIN_DIR"
	kubectl delete -k "$d" --timeout="${POD_TIMEOUT}s" >/dev/null
	kubectl delete -k "$(deploy_overlay deploy deploy)" --ignore-not-found --timeout="${POD_TIMEOUT}s" >/dev/null
}

# shell_pod NAME VOLUMES_JSON [MOUNT_JSON]: a pod of the shell image that
# sleeps, with VOLUMES_JSON as spec.volumes and each volume mounted at
# /<volume name> unless MOUNT_JSON gives the container's volumeMounts.
shell_pod() {
	local mounts=${3:-}
	[ -n "$mounts" ] || mounts=$(jq -c '[.[] | {name: .name, mountPath: ("/" + .name)}]' <<<"$2")
	kubectl apply -f - >/dev/null <<-EOF
		{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "$1", "namespace": "default"},
		 "spec": {"terminationGracePeriodSeconds": 1,
		  "containers": [{"name": "app", "image": "$SHELL_IMAGE", "imagePullPolicy": "Never",
		    "command": ["sleep", "2147483647"], "volumeMounts": $mounts}],
		  "volumes": $2}}
	EOF
}

# rbd_volume NAME IMAGE [EXTRA_OPTIONS_JSON] [READONLY]: an inline
# flexblock/rbd volume of the test cluster's pool, with the Secret
# ceph-secret.
rbd_volume() {
	local extra=${3:-}
	[ -z "$extra" ] || extra=", $extra"
	printf '{"name": "%s", "flexVolume": {"driver": "flexblock/rbd", "readOnly": %s, "secretRef": {"name": "ceph-secret"},
	  "options": {"monitors": "127.0.0.1:6789", "pool": "kube", "image": "%s", "user": "kube"%s}}}' \
		"$1" "${4:-false}" "$2" "$extra"
}

ceph_secret() {
	kubectl create secret generic ceph-secret --type=flexblock/rbd --from-literal=key="$(node_env CEPH_KUBE_KEY)" \
		--dry-run=client -o yaml | kubectl apply -f - >/dev/null
}

# volume_stats PVC: "capacity used available" bytes of the claim's volume as
# kubelet reports them (kubelet_volume_stats_* on its /metrics, read through
# qemu's forward of its port; empty until kubelet has them).
volume_stats() {
	curl -sk --max-time 20 "https://127.0.0.1:$KUBELET_PORT/metrics" | awk -v pvc="persistentvolumeclaim=\"$1\"" '
		index($0, pvc) && /^kubelet_volume_stats_(capacity|used|available)_bytes/ {split($1, n, "{"); v[n[1]] = $2}
		END {if (length(v) == 3) printf "%.0f %.0f %.0f\n", v["kubelet_volume_stats_capacity_bytes"], v["kubelet_volume_stats_used_bytes"], v["kubelet_volume_stats_available_bytes"]}'
}
has_stats() { [ -n "$(volume_stats "$1")" ]; }

# check_volume_stats POD DIR PVC: kubelet reports the claim's capacity and
# usage (supportsMetrics: statfs of the pod's volume dir), as df in the pod.
check_volume_stats() {
	local cap used avail df
	wait_until 90 "kubelet's stats of claim $3" has_stats "$3" || fail "kubelet reports no volume stats for claim $3"
	read -r cap used avail <<<"$(volume_stats "$3")"
	df=$(kubectl exec "$1" -- df -k "$2" | awk 'NR == 2 {printf "%.0f\n", $2 * 1024}')
	[ "$cap" = "$df" ] || fail "kubelet's capacity of claim $3 is $cap bytes, df in the pod says $df"
	[ "$used" -gt 0 ] && [ "$avail" -gt 0 ] || fail "kubelet's stats of claim $3: used $used, available $avail"
	say "kubelet's volume stats of claim $3: capacity $cap, used $used, available $avail bytes (df agrees)"
}

# fs_size POD DIR: the filesystem's size in KiB as the container sees it.
fs_size() { kubectl exec "$1" -- df -k "$2" | awk 'NR == 2 {print $2}'; }
fs_bigger() { [ "$(fs_size "$1" "$2")" -gt "$3" ]; }
pvc_capacity_is() { [ "$(kubectl get pvc "$1" -o jsonpath='{.status.capacity.storage}')" = "$2" ]; }

# expand_pvc POD DIR: the claim of POD (pg-data) grown by 2 GiB as an operator
# does it for a flexVolume PV (kube-controller-manager has no flex expander):
# the image grown, the PV's capacity raised, the claim's status marked
# NodeResizePending; kubelet then calls the driver's expandfs and the
# running pod sees the bigger filesystem.
expand_pvc() {
	local before after want
	before=$(fs_size "$1" "$2")
	echo "\$ rbd resize kube/pg-data --size 12G; kubectl patch pv rbd-pg-data (capacity 12Gi); kubectl patch pvc pg-data --subresource status (NodeResizePending)"
	node_sh "rbd resize kube/pg-data --size 12G >/dev/null 2>&1"
	kubectl patch pv rbd-pg-data --type merge -p '{"spec": {"capacity": {"storage": "12Gi"}}}' >/dev/null
	kubectl patch pvc pg-data --subresource status --type merge \
		-p '{"status": {"allocatedResources": {"storage": "12Gi"}, "allocatedResourceStatuses": {"storage": "NodeResizePending"}}}' >/dev/null
	want=$((before + 2 * 1024 * 1024 * 9 / 10))
	wait_until 240 "the filesystem of $1 to grow" fs_bigger "$1" "$2" "$want" || {
		kubectl get events --field-selector involvedObject.name="$1" | tail -5
		fail "the filesystem in $1 did not grow ($(fs_size "$1" "$2") KiB, was $before KiB)"
	}
	after=$(fs_size "$1" "$2")
	wait_until 60 "the claim's capacity 12Gi" pvc_capacity_is pg-data 12Gi ||
		fail "the claim's status capacity is $(kubectl get pvc pg-data -o jsonpath='{.status.capacity.storage}'), want 12Gi"
	say "grown in the running pod: $before KiB -> $after KiB; the claim says 12Gi"
}

# Two pods share one read-only volume; a read-write pod on it meanwhile is
# refused with an event that says why, and runs once the readers are gone.
scenario_shared_readonly() {
	ceph_secret
	node_sh "rbd rm kube/shared >/dev/null 2>&1; rbd create kube/shared --size 256M --image-feature layering"
	echo "\$ a writer pod formats the blank image and writes; then two read-only pods share it"
	shell_pod writer "[$(rbd_volume data shared)]"
	wait_ready default writer
	kubectl exec writer -- sh -c 'echo shared-data > /data/file && sync'
	delete_pod default writer
	for p in reader-1 reader-2; do shell_pod "$p" "[$(rbd_volume data shared "" true)]"; done
	wait_ready default reader-1
	wait_ready default reader-2
	for p in reader-1 reader-2; do
		[ "$(kubectl exec "$p" -- cat /data/file)" = shared-data ] || fail "$p does not read the data"
		if kubectl exec "$p" -- touch /data/x 2>/dev/null; then fail "$p can write a read-only volume"; fi
	done
	[ "$(node_sh "grep -c ' /var/lib/kubelet/plugins/flexblock/rbd/mounts/' /proc/1/mounts")" = 1 ] ||
		fail "the two readers do not share one node mount"
	say "reader-1 and reader-2 read the data through one read-only node mount; neither can write"
	echo "\$ a read-write pod on the same image while the readers run"
	shell_pod writer "[$(rbd_volume data shared)]"
	wait_event writer "read-only on this node"
	kubectl describe pod writer | grep -F "read-only on this node" | head -1 | grep -q . || fail "kubectl describe does not show the refusal"
	[ "$(kubectl get pod writer -o jsonpath='{.status.phase}')" = Pending ] || fail "the writer is not held back"
	say "kubectl describe pod writer shows flexblock's refusal"
	delete_pod default reader-1
	delete_pod default reader-2
	wait_ready default writer
	say "the writer runs once the readers are gone"
	delete_pod default writer
	assert_node_clean
	kubectl delete secret ceph-secret >/dev/null
	node_sh "rbd rm kube/shared >/dev/null 2>&1"
}

# CHAP: a wrong password is an event naming the key to fix; the right one
# mounts; deleting the pod logs the node out (assert_node_clean).
scenario_iscsi_chap() {
	local iqn user pass d
	iqn=$(node_env ISCSI_CHAP)
	user=$(node_env ISCSI_CHAP_USER)
	pass=$(node_env ISCSI_CHAP_PASS)
	node_sh "f=/var/lib/flexblock-e2e/chap-lun1.img; s=\$(stat -c %s \$f); truncate -s 0 \$f; truncate -s \$s \$f"
	for attempt in wrong right; do
		local p=$pass
		[ $attempt = right ] || p=Wrong-Password-42
		d=$(example_overlay "chap-$attempt" iscsi/secret-chap.yaml)
		# The test target has session CHAP only: the discovery and mutual
		# keys of the example go.
		cat >>"$d/kustomization.yaml" <<-EOF
			patches:
			- target: {kind: Secret, name: chap-secret}
			  patch: |-
			    - {op: remove, path: /stringData/discovery.sendtargets.auth.username}
			    - {op: remove, path: /stringData/discovery.sendtargets.auth.password}
			    - {op: remove, path: /stringData/node.session.auth.username_in}
			    - {op: remove, path: /stringData/node.session.auth.password_in}
			    - {op: replace, path: /stringData/node.session.auth.username, value: "$user"}
			    - {op: replace, path: /stringData/node.session.auth.password, value: "$p"}
		EOF
		echo "\$ kubectl apply -k examples/iscsi (secret-chap.yaml, the $attempt password)"
		kubectl apply -k "$d" >/dev/null
		shell_pod chap "[{\"name\": \"data\", \"flexVolume\": {\"driver\": \"flexblock/iscsi\", \"fsType\": \"ext4\",
			\"secretRef\": {\"name\": \"chap-secret\"}, \"options\": {\"targetPortal\": \"127.0.0.1:3260\",
			\"iqn\": \"$iqn\", \"lun\": \"1\", \"chapAuthSession\": \"true\"}}}]"
		if [ $attempt = wrong ]; then
			wait_event chap "node.session.auth.password"
			delete_pod default chap
			kubectl delete events --field-selector involvedObject.name=chap >/dev/null
			assert_node_clean
			continue
		fi
		wait_ready default chap
		kubectl exec chap -- sh -c 'echo chap-data > /data/file && cat /data/file' | grep -q chap-data || fail "cannot write the CHAP volume"
		say "the CHAP LUN mounts with the right Secret and is writable"
		delete_pod default chap
		assert_node_clean
		kubectl delete -k "$d" >/dev/null
	done
	if node_sh "grep -rl -- '$pass' /var/log/flexblock /run/flexblock 2>/dev/null | grep ."; then fail "the CHAP password is in the driver's log or state"; fi
}

# kubelet restarted while a pod's volume is mounted: the pod keeps running
# with its data, kubelet's remount after its restart adds no mount, and the
# pod's deletion still leaves the node clean.
scenario_kubelet_restart() {
	local before after
	ceph_secret
	node_sh "rbd rm kube/restart >/dev/null 2>&1; true"
	shell_pod restart "[$(rbd_volume data restart '"size": "128Mi", "imageFeatures": "layering"')]"
	wait_ready default restart
	kubectl exec restart -- sh -c 'echo before-restart > /data/file && sync'
	before=$(node_sh "grep -c flexblock /proc/1/mounts")
	echo "\$ kill kubelet on the node, start it again"
	node_sh "setsid bash -c 'pkill -x kubelet; while pgrep -x kubelet >/dev/null; do sleep 0.2; done; exec /run/flexblock-node/start-kubelet.sh' >/dev/null 2>&1 </dev/null &"
	sleep 5
	wait_until 120 "kubelet back (node Ready, exec works)" kubectl exec restart -- true || fail "kubelet did not come back"
	# kubelet reconstructs the volume and sets it up again (an idempotent mount).
	sleep 15
	[ "$(kubectl exec restart -- cat /data/file)" = before-restart ] || fail "the data is not there after kubelet's restart"
	kubectl exec restart -- sh -c 'echo after-restart >> /data/file' || fail "the volume is not writable after kubelet's restart"
	after=$(node_sh "grep -c flexblock /proc/1/mounts")
	[ "$before" = "$after" ] || fail "flexblock mounts before kubelet's restart: $before, after: $after"
	say "after kubelet's restart: pod Running, data there, writable, $after flexblock mounts as before"
	delete_pod default restart
	assert_node_clean
	kubectl delete secret ceph-secret >/dev/null
	node_sh "rbd rm kube/restart >/dev/null 2>&1"
}

# --- Benchmarks (make cluster-bench; not part of make cluster-test) ---

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# log_offset: the driver log's size on the node; tool_ms OFFSET: the sum of
# the tool times (the "exec" events' ms) the driver logged after OFFSET.
DRIVER_LOG=/var/log/flexblock/flexblock.log
log_offset() { node_sh "stat -c %s $DRIVER_LOG 2>/dev/null || echo 0"; }
tool_ms() {
	node_sh "f=$DRIVER_LOG; o=$1; [ \"\$(stat -c %s \$f)\" -ge \"\$o\" ] || o=0
		tail -c +\$((o + 1)) \$f | jq -R 'fromjson? | select(.msg == \"exec\") | .ms' | jq -s 'add // 0 | floor'"
}

# ready_ms NAME VOLUMES_JSON: milliseconds from kubectl apply to Ready.
ready_ms() {
	local t0
	t0=$(now_ms)
	shell_pod "$1" "$2"
	kubectl wait --for=condition=Ready "pod/$1" --timeout="${POD_TIMEOUT}s" >/dev/null || fail "pod $1 not Ready"
	echo $(($(now_ms) - t0))
}

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }

# batch KIND N: N pods at once (one kubectl apply), KIND emptydir or rbd (a
# new 64 MiB image each, created and formatted on first use); prints
# "ready_ms delete_ms": apply to the last Ready, delete to the last gone.
batch() {
	local kind=$1 n=$2 i vol t0 ready
	{
		echo '{"apiVersion": "v1", "kind": "List", "items": ['
		for i in $(seq "$n"); do
			vol='{"name": "data", "emptyDir": {}}'
			[ "$kind" = emptydir ] || vol=$(rbd_volume data "batch-$i" '"size": "64Mi", "imageFeatures": "layering"')
			[ "$i" = 1 ] || echo ,
			cat <<-EOF
				{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "$kind-$i", "namespace": "default", "labels": {"batch": "$kind"}},
				 "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "app", "image": "$SHELL_IMAGE",
				   "imagePullPolicy": "Never", "command": ["sleep", "2147483647"], "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
				   "volumes": [$vol]}}
			EOF
		done
		echo ']}'
	} >"$WORK/batch-$kind.json"
	t0=$(now_ms)
	kubectl apply -f "$WORK/batch-$kind.json" >/dev/null
	# Polled (kubectl's own wait is cut at the wrapper's 400 s): 20 first
	# mounts at once take many minutes on the TCG node.
	wait_until 1800 "$n $kind pods Ready" batch_ready "$kind" "$n" || fail "$n $kind pods not all Ready within 1800 s"
	ready=$(($(now_ms) - t0))
	t0=$(now_ms)
	kubectl delete pod -l "batch=$kind" --wait=false >/dev/null
	wait_until 1800 "$n $kind pods gone" batch_gone "$kind" || fail "$n $kind pods not all gone within 1800 s"
	echo "$ready $(($(now_ms) - t0))"
}

# batch_ready KIND N: N pods of the batch are Ready; batch_gone KIND: none left.
batch_ready() {
	[ "$(kubectl get pod -l "batch=$1" -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True)" = "$2" ]
}
batch_gone() { [ -z "$(kubectl get pod -l "batch=$1" -o name)" ]; }

# scenario_perf: pod create -> Ready with an emptyDir, a new blank RBD image
# and a blank iSCSI LUN (interleaved rounds, medians), the tool times the
# driver logged for those mounts, then 20 pods with 20 volumes at once.
# Key=value lines to PERF_OUT (scripts/cluster/bench.sh renders them).
scenario_perf() {
	local out=${PERF_OUT:-$WORK/perf} n=${PERF_ROUNDS:-3} i off iqn
	iqn=$(node_env ISCSI_PLAIN)
	ceph_secret
	: >"$out"
	for i in $(seq "$n"); do
		echo "emptydir_ms=$(ready_ms perf-e '[{"name": "data", "emptyDir": {}}]')" >>"$out"
		delete_pod default perf-e
		node_sh "rbd rm kube/perf-$i >/dev/null 2>&1; true"
		off=$(log_offset)
		echo "rbd_ms=$(ready_ms perf-r "[$(rbd_volume data "perf-$i" '"size": "1Gi", "imageFeatures": "layering"')]")" >>"$out"
		echo "rbd_tool_ms=$(tool_ms "$off")" >>"$out"
		delete_pod default perf-r
		node_sh "rbd rm kube/perf-$i >/dev/null 2>&1; f=/var/lib/flexblock-e2e/plain-lun2.img; s=\$(stat -c %s \$f); truncate -s 0 \$f; truncate -s \$s \$f"
		off=$(log_offset)
		echo "iscsi_ms=$(ready_ms perf-s "[{\"name\": \"data\", \"flexVolume\": {\"driver\": \"flexblock/iscsi\", \"fsType\": \"xfs\",
			\"options\": {\"targetPortal\": \"127.0.0.1:3260\", \"iqn\": \"$iqn\", \"lun\": \"2\"}}}]")" >>"$out"
		echo "iscsi_tool_ms=$(tool_ms "$off")" >>"$out"
		delete_pod default perf-s
		say "round $i: $(tail -5 "$out" | tr '\n' ' ')"
	done
	assert_node_clean
	local b
	b=$(batch emptydir 20)
	echo "batch_emptydir_ready_ms=${b% *}" >>"$out"
	echo "batch_emptydir_delete_ms=${b#* }" >>"$out"
	b=$(batch rbd 20)
	echo "batch_rbd_ready_ms=${b% *}" >>"$out"
	echo "batch_rbd_delete_ms=${b#* }" >>"$out"
	say "20 at once: $(tail -4 "$out" | tr "\n" " ")"
	assert_node_clean
	node_sh "for i in \$(seq 20); do rbd rm kube/batch-\$i >/dev/null 2>&1; done; true"
	kubectl delete secret ceph-secret >/dev/null
}

# started_after POD EPOCH: POD's container runs and started after EPOCH.
started_after() {
	local s
	s=$(kubectl get pod "$1" -o jsonpath='{.status.containerStatuses[0].state.running.startedAt}')
	[ -n "$s" ] && [ "$(date -d "$s" +%s)" -gt "$2" ]
}

# The node loses power while a pod's iSCSI volume is mounted (its LUN is on
# the node's disk) and boots again: kubelet, the driver (reinstalled by the
# DaemonSet's pod) and the pod come back, the data is there, nothing is
# mounted twice, and deleting the pod leaves the node clean.
scenario_node_reboot() {
	local t0 mounts
	node_sh "f=/mnt/scratch/persistent-lun.img; s=\$(stat -c %s \$f); truncate -s 0 \$f; truncate -s \$s \$f"
	kubectl apply -f - >/dev/null <<-EOF
		{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reboot", "namespace": "default"},
		 "spec": {"terminationGracePeriodSeconds": 1,
		  "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
		                  {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}],
		  "containers": [{"name": "app", "image": "$SHELL_IMAGE", "imagePullPolicy": "Never",
		    "command": ["sleep", "2147483647"], "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
		  "volumes": [{"name": "data", "flexVolume": {"driver": "flexblock/iscsi", "fsType": "ext4",
		    "options": {"targetPortal": "127.0.0.1:3260", "iqn": "$PERSISTENT_IQN", "lun": "1"}}}]}}
	EOF
	wait_ready default reboot
	kubectl exec reboot -- sh -c 'echo before-reboot > /data/file && sync'
	echo "\$ the node VM loses power and boots again with the same disk"
	t0=$(date +%s)
	reboot_node
	wait_until "$NODE_READY_TIMEOUT" "the pod's container running again after the reboot" started_after reboot "$t0" ||
		{ kubectl describe pod reboot | tail -15; fail "the pod did not come back after the reboot"; }
	wait_ready default reboot
	say "node and pod back $(($(date +%s) - t0))s after the power loss"
	[ "$(kubectl exec reboot -- cat /data/file)" = before-reboot ] || fail "the data is not there after the reboot"
	kubectl exec reboot -- sh -c 'echo after-reboot >> /data/file' || fail "the volume is not writable after the reboot"
	wait_until 120 "the node shell after the reboot" node_sh true || fail "no node shell after the reboot"
	mounts=$(node_sh "grep -c ' /var/lib/kubelet/pods/.*flexblock~iscsi' /proc/1/mounts")
	[ "$mounts" = 1 ] || fail "the pod's volume is mounted $mounts times after the reboot"
	say "after the reboot: data there, writable, one mount"
	delete_pod default reboot
	assert_node_clean
}
