#!/bin/bash
# The dynamic provisioner's cluster scenario (sourced by test.sh after
# scenarios.sh, whose helpers it uses): examples/provisioner applied as an
# operator does, with only what is cluster-specific patched, then what a
# user of the flexblock-rbd StorageClass does and sees, checked against
# Ceph itself (rbd on the node).
# shellcheck disable=SC2154 # WORK, repo, PROVISIONER_IMAGE: test.sh; APISERVER_PORT, HOST_FROM_NODE: config.sh

PROV_NS=flexblock-provisioner
PROV_LEASE=flexblock.io-rbd
STAMP_KEY=flexblock.io/provisioned-for

# provisioner_overlay: examples/provisioner with the local image (never
# pulled) and this cluster's values. Ceph's monitor and OSD listen on the
# node's 127.0.0.1 and no Service reaches the API server (no kube-proxy), so
# the provisioner runs in the node's network (hostNetwork, which the
# namespace's restricted Pod Security level forbids: privileged here) and
# dials the API server where the node does; the two replicas share that
# network, so the metrics port is a free one each (and no probe names it).
provisioner_overlay() {
	local d rel key
	key=$(node_env CEPH_ADMIN_KEY)
	[ -n "$key" ] || fail "no CEPH_ADMIN_KEY on the node"
	d=$(overlay provisioner)
	rel=$(realpath --relative-to="$d" "$repo/examples/provisioner")
	cat >"$d/kustomization.yaml" <<-EOF
		apiVersion: kustomize.config.k8s.io/v1beta1
		kind: Kustomization
		resources: [$rel]
		images:
		- name: registry.example.com/storage/flexblock-provisioner
		  newName: ${PROVISIONER_IMAGE%:*}
		  newTag: ${PROVISIONER_IMAGE##*:}
		patches:
		- target: {kind: Deployment, name: flexblock-provisioner}
		  patch: |-
		    - {op: add, path: /spec/template/spec/containers/0/imagePullPolicy, value: Never}
		    - {op: add, path: /spec/template/spec/hostNetwork, value: true}
		    - {op: add, path: /spec/template/spec/containers/0/env/-, value: {name: KUBERNETES_SERVICE_HOST, value: "$HOST_FROM_NODE"}}
		    - {op: add, path: /spec/template/spec/containers/0/env/-, value: {name: KUBERNETES_SERVICE_PORT, value: "$APISERVER_PORT"}}
		    - {op: replace, path: /spec/template/spec/containers/0/args/1, value: "--metrics-address=127.0.0.1:0"}
		    - {op: remove, path: /spec/template/spec/containers/0/ports}
		    - {op: remove, path: /spec/template/spec/containers/0/livenessProbe}
		- patch: |-
		    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "$PROV_NS",
		     "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}}
		- patch: |-
		    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ceph-admin", "namespace": "$PROV_NS"},
		     "stringData": {"key": "$key"}}
		- patch: |-
		    {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "flexblock-rbd"},
		     "parameters": {"monitors": "127.0.0.1:6789", "provisionerUser": "admin"}}
	EOF
	echo "$d"
}

# pool_images: the images in pool kube, sorted, one a line.
pool_images() { node_sh "rbd ls kube | sort"; }
image_exists() { node_sh "rbd info kube/$1 >/dev/null 2>&1"; }
image_gone() { ! image_exists "$1"; }
image_bytes() { node_sh "rbd info kube/$1 --format json" | jq .size; }
image_stamp() { node_sh "rbd image-meta get kube/$1 $STAMP_KEY"; }

pvc_phase() { kubectl get pvc "$1" -o jsonpath='{.status.phase}' 2>/dev/null; }
pvc_bound() { [ "$(pvc_phase "$1")" = Bound ]; }
pvc_gone() { ! kubectl get pvc "$1" >/dev/null 2>&1; }
pv_gone() { ! kubectl get pv "$1" >/dev/null 2>&1; }
pv_of() { kubectl get pvc "$1" -o jsonpath='{.spec.volumeName}'; }

wait_bound() {
	wait_until "$POD_TIMEOUT" "claim $1 Bound" pvc_bound "$1" || {
		kubectl describe pvc "$1" | tail -15
		fail "claim $1 not Bound within ${POD_TIMEOUT}s"
	}
}

# wait_image_gone IMAGE PV SECONDS: the provisioner removed IMAGE and the
# PV object went with it.
wait_image_gone() {
	wait_until "$3" "image kube/$1 removed" image_gone "$1" || {
		kubectl get events --field-selector "involvedObject.name=$2" | tail -5
		fail "image kube/$1 (PV $2) not removed within $3s"
	}
	wait_until 120 "PV $2 gone" pv_gone "$2" || fail "PV $2 still there after its image was removed"
}

# leader_pod: the pod named in the lease (POD_NAME_uuid).
lease_holder() { kubectl -n "$PROV_NS" get lease "$PROV_LEASE" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }
leader_pod() {
	local h
	h=$(lease_holder)
	[ -n "$h" ] && echo "${h%_*}"
}
# leader_is_running_pod [NOT]: the lease names a Running replica (not NOT).
leader_is_running_pod() {
	local p
	p=$(leader_pod) || return 1
	[ -n "$p" ] && [ "$p" != "${1:-}" ] &&
		[ "$(kubectl -n "$PROV_NS" get pod "$p" -o jsonpath='{.status.phase}' 2>/dev/null)" = Running ]
}
log_says() { kubectl -n "$PROV_NS" logs "$1" 2>/dev/null | grep -qF -- "$2"; }
log_count() { kubectl -n "$PROV_NS" logs "$1" 2>/dev/null | grep -cF -- "$2" || true; }
log_count_above() { [ "$(log_count "$1" "$2")" -gt "$3" ]; }

# check_one_image_per_pv: the images the scenario added to pool kube are
# exactly those the flexblock PVs record, one each, each stamped with its
# PV's name; none left half-made (.creating).
check_one_image_per_pv() {
	local have want pv img
	have=$(pool_images | grep -vxF -f "$WORK/prov-baseline" || true)
	want=$(kubectl get pv -o json | jq -r '.items[] | select(.metadata.annotations["pv.kubernetes.io/provisioned-by"] == "flexblock.io/rbd")
		| .metadata.annotations["flexblock.io/image"]' | sort)
	[ "$have" = "$want" ] || fail "pool kube holds (new) [$(echo "$have" | tr '\n' ' ')], the flexblock PVs record [$(echo "$want" | tr '\n' ' ')]"
	[ "$(sort -u <<<"$want" | wc -l)" = "$(wc -l <<<"$want")" ] || fail "two PVs record the same image: $want"
	while read -r pv img; do
		[ -n "$pv" ] || continue
		[ "$(image_stamp "$img")" = "$pv" ] || fail "image kube/$img is not stamped $STAMP_KEY=$pv"
	done < <(kubectl get pv -o json | jq -r '.items[] | select(.metadata.annotations["pv.kubernetes.io/provisioned-by"] == "flexblock.io/rbd")
		| .metadata.name + " " + .metadata.annotations["flexblock.io/image"]')
	say "pool kube: one stamped image per PV, nothing else new: $(echo "$want" | tr '\n' ' ')"
}

# claim_json NAME SIZE [CLASS]: a claim of the flexblock-rbd class.
claim_json() {
	printf '{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "%s", "namespace": "default", "labels": {"test": "provisioner"}},
	  "spec": {"storageClassName": "%s", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "%s"}}}}\n' \
		"$1" "${3:-flexblock-rbd}" "$2"
}

# provisioner_cleanup: what a failed run left (a trap of the scenario's
# subshell): pods first (kubelet unmaps), then the claims (the provisioner,
# still running, removes their images), then the provisioner.
provisioner_cleanup() {
	[ "${1:-0}" != 0 ] || return 0
	echo "  # cleaning up after the failure (PROVISIONER_KEEP_ON_FAIL=1 keeps it)"
	[ "${PROVISIONER_KEEP_ON_FAIL:-0}" = 1 ] && return 0
	kubectl -n "$PROV_NS" logs -l app.kubernetes.io/name=flexblock-provisioner --tail=30 --prefix 2>/dev/null | tail -40
	kubectl delete statefulset rbd-web --ignore-not-found --timeout="${POD_TIMEOUT}s" >/dev/null 2>&1
	kubectl delete pod rbd-dynamic rbd-web-0 rbd-web-1 rbd-web-2 --ignore-not-found --timeout="${POD_TIMEOUT}s" >/dev/null 2>&1
	kubectl delete pvc -l test=provisioner --ignore-not-found --timeout="${POD_TIMEOUT}s" >/dev/null 2>&1
	kubectl delete pvc rbd-dynamic data-rbd-web-0 data-rbd-web-1 data-rbd-web-2 --ignore-not-found --timeout="${POD_TIMEOUT}s" >/dev/null 2>&1
	wait_until "$POD_TIMEOUT" "flexblock PVs gone" no_flexblock_pvs >/dev/null 2>&1
	kubectl delete storageclass flexblock-rbd-typo --ignore-not-found >/dev/null 2>&1
	kubectl delete -k "$WORK/provisioner" --ignore-not-found --timeout="${POD_TIMEOUT}s" >/dev/null 2>&1
	kubectl delete secret ceph-secret --ignore-not-found >/dev/null 2>&1
}
no_flexblock_pvs() {
	[ -z "$(kubectl get pv -o json | jq -r '.items[] | select(.metadata.annotations["pv.kubernetes.io/provisioned-by"] == "flexblock.io/rbd") | .metadata.name')" ]
}

scenario_provisioner() {
	local d claims sts pv img pods p leader old t0 before want port n i statuses
	trap 'provisioner_cleanup $?' EXIT
	pool_images >"$WORK/prov-baseline"
	say "pool kube before: $(wc -l <"$WORK/prov-baseline") images"
	ceph_secret

	# --- The provisioner, as the README tells an operator to install it.
	d=$(provisioner_overlay)
	echo "\$ kubectl apply -k examples/provisioner   (image $PROVISIONER_IMAGE, imagePullPolicy Never; monitors, admin key, hostNetwork patched)"
	kubectl apply -k "$d"
	kubectl -n "$PROV_NS" rollout status deploy/flexblock-provisioner --timeout="${POD_TIMEOUT}s" || fail "the provisioner did not roll out"
	kubectl -n "$PROV_NS" wait --for=condition=Ready pod -l app.kubernetes.io/name=flexblock-provisioner --timeout="${POD_TIMEOUT}s" >/dev/null ||
		fail "the provisioner's pods are not Ready"
	kubectl -n "$PROV_NS" get pods -o wide
	pods=$(kubectl -n "$PROV_NS" get pods -l app.kubernetes.io/name=flexblock-provisioner -o jsonpath='{.items[*].metadata.name}')
	[ "$(wc -w <<<"$pods")" = 2 ] || fail "want 2 provisioner pods, have: $pods"
	wait_until 120 "a replica holding lease $PROV_LEASE" leader_is_running_pod || fail "no replica holds the lease"
	leader=$(leader_pod)
	wait_until 60 "the leader's log to say it leads" log_says "$leader" "leading" || fail "the leader $leader does not log that it leads"
	for p in $pods; do
		[ "$p" = "$leader" ] && continue
		wait_until 60 "$p to wait for the leader" log_says "$p" "another replica leads" || fail "$p does not log that it waits"
	done
	say "2 replicas Ready; $leader holds lease $PROV_NS/$PROV_LEASE, the other waits"
	echo "\$ kubectl -n $PROV_NS logs $leader"
	kubectl -n "$PROV_NS" logs "$leader" | head -8 | sed 's/^/    /'

	# --- The StorageClass.
	[ "$(kubectl get storageclass flexblock-rbd -o jsonpath='{.provisioner} {.allowVolumeExpansion} {.reclaimPolicy}')" = "flexblock.io/rbd true Delete" ] ||
		fail "StorageClass flexblock-rbd: $(kubectl get storageclass flexblock-rbd -o jsonpath='{.provisioner} {.allowVolumeExpansion} {.reclaimPolicy}')"
	say "StorageClass flexblock-rbd: provisioner flexblock.io/rbd, allowVolumeExpansion true, reclaimPolicy Delete"

	# --- A claim and a pod (claim.yaml).
	claims=$(example_overlay prov-claim provisioner/claim.yaml)
	echo "\$ kubectl apply -f examples/provisioner/claim.yaml   (claim rbd-dynamic 1Gi + pod)"
	kubectl apply -k "$claims"
	wait_bound rbd-dynamic
	pv=$(pv_of rbd-dynamic)
	img=flexblock-$pv
	kubectl get pvc rbd-dynamic
	kubectl get pv "$pv" -o json >"$WORK/prov-pv.json"
	jq -e --arg img "$img" '
		.spec.flexVolume.driver == "flexblock/rbd" and .spec.flexVolume.fsType == "ext4" and
		.spec.flexVolume.secretRef == {"name": "ceph-secret", "namespace": "default"} and
		.spec.flexVolume.options == {"monitors": "127.0.0.1:6789", "pool": "kube", "image": $img, "user": "kube",
		                             "fsType": "ext4", "mountOptions": "noatime"} and
		(.spec.mountOptions // [] | length) == 0 and
		.spec.capacity.storage == "1Gi" and .spec.accessModes == ["ReadWriteOnce"] and .spec.volumeMode == "Filesystem" and
		.spec.persistentVolumeReclaimPolicy == "Delete" and .spec.storageClassName == "flexblock-rbd" and
		.metadata.annotations["pv.kubernetes.io/provisioned-by"] == "flexblock.io/rbd" and
		.metadata.annotations["flexblock.io/image"] == $img and .metadata.annotations["flexblock.io/pool"] == "kube" and
		.metadata.annotations["flexblock.io/monitors"] == "127.0.0.1:6789" and
		.metadata.annotations["flexblock.io/provisioner-user"] == "admin" and
		.metadata.annotations["flexblock.io/provisioner-secret-name"] == "ceph-admin" and
		.metadata.annotations["flexblock.io/provisioner-secret-namespace"] == "flexblock-provisioner" and
		(.metadata.finalizers | index("external-provisioner.volume.kubernetes.io/finalizer") != null)' "$WORK/prov-pv.json" >/dev/null || {
		jq '{metadata: {annotations: .metadata.annotations, finalizers: .metadata.finalizers}, spec: .spec}' "$WORK/prov-pv.json"
		fail "PV $pv is not the flexVolume PV the class describes"
	}
	say "PV $pv: flexVolume flexblock/rbd, options $(jq -c .spec.flexVolume.options "$WORK/prov-pv.json"), secretRef default/ceph-secret, Delete, annotations for Delete, finalizer"
	[ "$(image_stamp "$img")" = "$pv" ] || fail "image kube/$img: $STAMP_KEY is '$(image_stamp "$img")', want $pv"
	[ "$(image_bytes "$img")" = $((1 << 30)) ] || fail "image kube/$img has $(image_bytes "$img") bytes, want 1 GiB"
	say "rbd image-meta get kube/$img $STAMP_KEY: $pv; 1 GiB"
	wait_event rbd-dynamic "Successfully provisioned volume $pv" >/dev/null

	wait_ready default rbd-dynamic
	kubectl exec rbd-dynamic -- sh -c 'echo dynamic-data > /data/file && sync' || fail "cannot write the volume"
	kubectl exec rbd-dynamic -- grep " /data " /proc/mounts >"$WORK/prov-mount"
	grep -q " ext4 rw," "$WORK/prov-mount" && grep -q noatime "$WORK/prov-mount" || fail "/data is not ext4 mounted rw,noatime: $(cat "$WORK/prov-mount")"
	say "pod rbd-dynamic writes; /data: $(cut -d' ' -f3,4 "$WORK/prov-mount")"
	echo "\$ kubectl delete pod rbd-dynamic; kubectl apply -f claim.yaml   (the pod re-created)"
	delete_pod default rbd-dynamic
	assert_node_clean
	kubectl apply -k "$claims" >/dev/null
	wait_ready default rbd-dynamic
	[ "$(kubectl exec rbd-dynamic -- cat /data/file)" = dynamic-data ] || fail "the data is not there after the pod was re-created"
	[ "$(kubectl exec rbd-dynamic -- wc -l /data/started | awk '{print $1}')" = 2 ] || fail "/data/started does not hold both starts"
	say "data read back after the re-create; /data/started has both starts"

	# --- Expansion: the claim's request raised in the running pod.
	before=$(fs_size rbd-dynamic /data)
	echo "\$ kubectl patch pvc rbd-dynamic -p '{\"spec\": {\"resources\": {\"requests\": {\"storage\": \"2Gi\"}}}}'"
	t0=$(date +%s)
	kubectl patch pvc rbd-dynamic --type merge -p '{"spec": {"resources": {"requests": {"storage": "2Gi"}}}}' >/dev/null
	wait_event rbd-dynamic "image grown to 2Gi" | sed 's/^/    event: /'
	want=$((before + 1024 * 1024 * 9 / 10))
	wait_until 300 "the filesystem of rbd-dynamic to grow" fs_bigger rbd-dynamic /data "$want" || {
		kubectl get events --field-selector involvedObject.name=rbd-dynamic | tail -5
		fail "the filesystem in rbd-dynamic did not grow ($(fs_size rbd-dynamic /data) KiB, was $before KiB)"
	}
	wait_until 120 "the claim's capacity 2Gi" pvc_capacity_is rbd-dynamic 2Gi ||
		fail "the claim's status capacity is $(kubectl get pvc rbd-dynamic -o jsonpath='{.status.capacity.storage}'), want 2Gi"
	[ "$(image_bytes "$img")" = $((2 << 30)) ] || fail "image kube/$img has $(image_bytes "$img") bytes after the resize, want 2 GiB"
	[ "$(kubectl get pv "$pv" -o jsonpath='{.spec.capacity.storage}')" = 2Gi ] || fail "PV $pv capacity not 2Gi"
	[ "$(kubectl exec rbd-dynamic -- cat /data/file)" = dynamic-data ] || fail "the data is gone after the resize"
	say "grown in the running pod in $(($(date +%s) - t0))s: df $before KiB -> $(fs_size rbd-dynamic /data) KiB; image, PV and claim 2Gi"

	# --- Metrics of the library, from the leader (its port is a free one: its log says).
	port=$(kubectl -n "$PROV_NS" logs "$leader" | grep -o 'serving metrics.*address="[^"]*"' | grep -o '[0-9]*"$' | tr -d '"')
	[ -n "$port" ] || fail "the leader's log does not say where it serves metrics"
	kubectl -n kube-system exec node-shell -- wget -qO- "http://127.0.0.1:$port/metrics" >"$WORK/prov-metrics" || fail "no /metrics on port $port"
	grep -q '^controller_persistentvolumeclaim_provision_total{class="flexblock-rbd"[^}]*} [1-9]' "$WORK/prov-metrics" ||
		fail "/metrics has no provision count: $(grep provision "$WORK/prov-metrics" | head -5)"
	say "/metrics: $(grep '^controller_persistentvolumeclaim_provision_total' "$WORK/prov-metrics")"

	# --- The claim deleted while its pod runs: the image stays mapped.
	echo "\$ kubectl delete pvc rbd-dynamic   (its pod still runs)"
	kubectl delete pvc rbd-dynamic --wait=false
	sleep 5
	[ -n "$(kubectl get pvc rbd-dynamic -o jsonpath='{.metadata.deletionTimestamp}')" ] || fail "the claim is not being deleted"
	image_exists "$img" || fail "image kube/$img removed while its pod runs"
	say "claim Terminating: kubernetes.io/pvc-protection holds it while rbd-dynamic uses it; image there"
	echo "\$ kubectl patch pvc rbd-dynamic: finalizers removed (a forced deletion: the PV is released while its image is mapped)"
	kubectl patch pvc rbd-dynamic --type json -p '[{"op": "remove", "path": "/metadata/finalizers"}]' >/dev/null
	wait_until 60 "claim rbd-dynamic gone" pvc_gone rbd-dynamic || fail "the claim is still there"
	wait_event "$pv" "still open by" | sed 's/^/    event: /'
	image_exists "$img" || fail "image kube/$img removed while mapped"
	[ "$(kubectl exec rbd-dynamic -- cat /data/file)" = dynamic-data ] || fail "the running pod lost its data"
	say "PV $pv Released, its image mapped: not removed, the event on the PV says why; the pod still reads its data"
	delete_pod default rbd-dynamic
	assert_node_clean
	t0=$(date +%s)
	wait_image_gone "$img" "$pv" 1020
	say "pod gone: image kube/$img and PV $pv removed $(($(date +%s) - t0))s later"
	kubectl delete -k "$claims" --ignore-not-found >/dev/null

	# --- A StorageClass with an unknown parameter.
	echo "\$ a StorageClass with the parameter imageFormat (not flexblock's), and a claim of it"
	kubectl get storageclass flexblock-rbd -o json |
		jq '{apiVersion, kind, metadata: {name: "flexblock-rbd-typo"}, provisioner, reclaimPolicy, parameters: (.parameters + {imageFormat: "2"})}' |
		kubectl apply -f - >/dev/null
	claim_json typo-claim 64Mi flexblock-rbd-typo | kubectl apply -f - >/dev/null
	wait_event typo-claim 'unknown parameter "imageFormat"' | sed 's/^/    event: /'
	[ "$(pvc_phase typo-claim)" = Pending ] || fail "the claim of the bad class is $(pvc_phase typo-claim)"
	kubectl delete pvc typo-claim --timeout="${POD_TIMEOUT}s" >/dev/null
	kubectl delete storageclass flexblock-rbd-typo >/dev/null
	check_one_image_per_pv

	# --- The StatefulSet: 3 replicas, a claim and an image each.
	sts=$(example_overlay prov-sts provisioner/statefulset.yaml)
	echo "\$ kubectl apply -f examples/provisioner/statefulset.yaml   (3 replicas, volumeClaimTemplates)"
	t0=$(date +%s)
	kubectl apply -k "$sts"
	for n in 0 1 2; do
		wait_bound "data-rbd-web-$n"
		wait_ready default "rbd-web-$n"
	done
	kubectl rollout status statefulset/rbd-web --timeout="${POD_TIMEOUT}s" >/dev/null || fail "the StatefulSet is not Ready"
	kubectl get statefulset,pods,pvc -l app=rbd-web
	kubectl get pvc
	for n in 0 1 2; do
		[ "$(kubectl exec "rbd-web-$n" -- cat /data/hosts)" = "rbd-web-$n" ] || fail "rbd-web-$n does not see its own volume"
	done
	[ "$(for n in 0 1 2; do pv_of "data-rbd-web-$n"; echo; done | sort -u | grep -c .)" = 3 ] || fail "the replicas do not have 3 PVs"
	check_one_image_per_pv
	say "3 replicas Ready in $(($(date +%s) - t0))s, each on its own claim, PV and image"
	echo "\$ kubectl delete statefulset rbd-web; kubectl delete pvc data-rbd-web-{0,1,2}"
	kubectl delete -k "$sts" --timeout="${POD_TIMEOUT}s" >/dev/null
	for n in 0 1 2; do delete_pod default "rbd-web-$n"; done
	assert_node_clean
	for n in 0 1 2; do
		pv=$(pv_of "data-rbd-web-$n")
		kubectl delete pvc "data-rbd-web-$n" --wait=false >/dev/null
		wait_image_gone "flexblock-$pv" "$pv" "$POD_TIMEOUT"
	done
	say "the replicas' claims deleted: their images and PVs are gone"

	# --- Leader failover while claims are being provisioned.
	old=$(leader_pod)
	echo "\$ 3 claims at once, then kubectl -n $PROV_NS delete pod $old (the leader) while it provisions them"
	n=$(log_count "$old" "created image")
	for i in 1 2 3; do claim_json "failover-$i" 64Mi; done | jq -s '{apiVersion: "v1", kind: "List", items: .}' | kubectl apply -f - >/dev/null
	wait_until 120 "the leader to start creating an image" log_count_above "$old" "created image" "$n" ||
		say "the leader logged no created image within 120s; deleting it anyway"
	statuses=$(for n in 1 2 3; do printf '%s=%s ' "failover-$n" "$(pvc_phase "failover-$n")"; done)
	kubectl -n "$PROV_NS" delete pod "$old" --wait=false >/dev/null
	say "leader $old deleted while the claims were: $statuses"
	t0=$(date +%s)
	wait_until 180 "another replica to take the lease" leader_is_running_pod "$old" || fail "no other replica took the lease (holder: $(lease_holder))"
	leader=$(leader_pod)
	say "$leader leads $(($(date +%s) - t0))s after the old leader's deletion"
	for n in 1 2 3; do wait_bound "failover-$n"; done
	kubectl get pvc -l test=provisioner
	check_one_image_per_pv
	if pool_images | grep -qF .creating; then fail "a half-made image is left: $(pool_images | grep -F .creating)"; fi
	kubectl -n "$PROV_NS" rollout status deploy/flexblock-provisioner --timeout="${POD_TIMEOUT}s" >/dev/null || fail "the Deployment did not replace the deleted replica"
	say "after the failover: 3 claims Bound, exactly one image each, none half-made; the Deployment has 2 replicas again"
	for n in 1 2 3; do
		pv=$(pv_of "failover-$n")
		kubectl delete pvc "failover-$n" --wait=false >/dev/null
		wait_image_gone "flexblock-$pv" "$pv" "$POD_TIMEOUT"
	done

	# --- Everything goes.
	echo "\$ kubectl delete -k examples/provisioner"
	kubectl delete -k "$d" --timeout="${POD_TIMEOUT}s" >/dev/null || fail "the provisioner's objects did not go"
	kubectl delete secret ceph-secret >/dev/null
	assert_node_clean
	[ "$(pool_images)" = "$(cat "$WORK/prov-baseline")" ] || fail "pool kube holds other images than before: $(pool_images | tr '\n' ' ')"
	say "pool kube holds what it held before ($(wc -l <"$WORK/prov-baseline") images)"
	trap - EXIT
}
