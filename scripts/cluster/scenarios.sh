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
	grep -Eq "(installed|unchanged|up to date).*flexblock~rbd/rbd" <<<"$logs" || fail "the installer's log does not show the rbd driver installed"
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
	kubectl delete -k "$d" --timeout="${POD_TIMEOUT}s" >/dev/null
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
