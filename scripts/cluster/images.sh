#!/usr/bin/env bash
# images.sh OUTDIR VERSION: builds, with buildah (no daemon, no network), the
# images the cluster runs and writes each as a docker archive that
# `docker load`, `podman load` and `ctr -n k8s.io images import` take:
#   OUTDIR/flexblock-image.tar  localhost/flexblock:VERSION, from
#                               examples/Dockerfile (BINARY=prebuilt:
#                               bin/flexblock, which `make build` made)
#   OUTDIR/pause-image.tar      localhost/pause:flexblock-test (the pod
#                               sandbox) and
#   OUTDIR/shell-image.tar      localhost/busybox:flexblock-test (the test
#                               pods' shell), both from Debian's
#                               busybox-static
# and OUTDIR/images.env naming them (FLEXBLOCK_IMAGE, PAUSE_IMAGE,
# SHELL_IMAGE). Its buildah storage is a temporary dir, removed at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
[ $# = 2 ] || { echo "usage: $0 OUTDIR VERSION" >&2; exit 2; }
out=$(realpath -m "$1")
version=$2
[ -x "$repo/bin/flexblock" ] || { echo "images: $repo/bin/flexblock missing: run make build" >&2; exit 1; }
command -v buildah >/dev/null || { echo "images: buildah missing: run scripts/cluster/deps.sh" >&2; exit 1; }

FLEXBLOCK_IMAGE=localhost/flexblock:$version
PAUSE_IMAGE=localhost/pause:flexblock-test
SHELL_IMAGE=localhost/busybox:flexblock-test

work=$(mktemp -d "${TMPDIR:-/tmp}/flexblock-images.XXXXXX")
trap 'rm -rf "$work"' EXIT
# vfs: works in any container or VM, needs no overlay or fuse.
bh() { buildah --storage-driver vfs --root "$work/root" --runroot "$work/run" "$@"; }

# The installer, from the Dockerfile users build it with.
bh bud --quiet --layers=false -f "$repo/examples/Dockerfile" --build-arg BINARY=prebuilt \
	--build-arg VERSION="$version" -t "$FLEXBLOCK_IMAGE" "$repo" >/dev/null

# The test images: busybox-static and its applet links.
mkdir -p "$work/ctx/rootfs/bin"
cp /bin/busybox "$work/ctx/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do
	[ "$a" = busybox ] || ln -s busybox "$work/ctx/rootfs/bin/$a"
done
bh bud --quiet --layers=false -f "$here/images/busybox.Containerfile" -t "$SHELL_IMAGE" "$work/ctx" >/dev/null
bh bud --quiet --layers=false -f "$here/images/pause.Containerfile" -t "$PAUSE_IMAGE" "$work/ctx" >/dev/null

mkdir -p "$out"
rm -f "$out"/{flexblock,shell,pause}-image.tar
bh push --quiet "$FLEXBLOCK_IMAGE" "docker-archive:$out/flexblock-image.tar:$FLEXBLOCK_IMAGE"
bh push --quiet "$SHELL_IMAGE" "docker-archive:$out/shell-image.tar:$SHELL_IMAGE"
bh push --quiet "$PAUSE_IMAGE" "docker-archive:$out/pause-image.tar:$PAUSE_IMAGE"
{
	echo "FLEXBLOCK_IMAGE=$FLEXBLOCK_IMAGE"
	echo "PAUSE_IMAGE=$PAUSE_IMAGE"
	echo "SHELL_IMAGE=$SHELL_IMAGE"
} >"$out/images.env"
echo "images: $FLEXBLOCK_IMAGE, $SHELL_IMAGE, $PAUSE_IMAGE in $out"
