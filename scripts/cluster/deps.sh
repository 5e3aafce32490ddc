#!/usr/bin/env bash
# Installs what the test cluster needs besides the VM's own packages: etcd
# (control plane, on the host), containerd, runc and the CNI plugins (the
# node, in the guest), buildah (builds the images, no daemon). Their daemons
# are never started by the install: the cluster scripts start them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../vm/deps.sh" etcd-server containerd runc containernetworking-plugins buildah
