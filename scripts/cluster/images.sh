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
#   OUTDIR/provisioner-image.tar
#                               localhost/flexblock-provisioner:VERSION,
#                               from examples/provisioner/Dockerfile: a
#                               rootfs assembled here from
#                               bin/flexblock-provisioner (make
#                               build-provisioner) and this machine's
#                               /usr/bin/rbd (ceph-common) with every
#                               library it links and Ceph's plugins
# and OUTDIR/images.env naming them (FLEXBLOCK_IMAGE, PAUSE_IMAGE,
# SHELL_IMAGE, PROVISIONER_IMAGE). Its buildah storage is a temporary dir,
# removed at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
[ $# = 2 ] || { echo "usage: $0 OUTDIR VERSION" >&2; exit 2; }
out=$(realpath -m "$1")
version=$2
[ -x "$repo/bin/flexblock" ] || { echo "images: $repo/bin/flexblock missing: run make build" >&2; exit 1; }
[ -x "$repo/bin/flexblock-provisioner" ] || { echo "images: $repo/bin/flexblock-provisioner missing: run make build-provisioner" >&2; exit 1; }
[ -x /usr/bin/rbd ] || { echo "images: /usr/bin/rbd missing: install ceph-common (scripts/vm/deps.sh)" >&2; exit 1; }
command -v buildah >/dev/null || { echo "images: buildah missing: run scripts/cluster/deps.sh" >&2; exit 1; }

FLEXBLOCK_IMAGE=localhost/flexblock:$version
PAUSE_IMAGE=localhost/pause:flexblock-test
SHELL_IMAGE=localhost/busybox:flexblock-test
PROVISIONER_IMAGE=localhost/flexblock-provisioner:$version

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

# The provisioner: its static binary and rbd with what rbd loads, at the
# paths ldd names (usr-merged: /lib is usr/lib, as on Debian).
pfs=$work/pctx/rootfs
mkdir -p "$pfs"/usr/{bin,sbin,lib/x86_64-linux-gnu,lib64} "$pfs/etc" "$pfs/tmp"
chmod 1777 "$pfs/tmp"
for d in bin sbin lib lib64; do ln -s "usr/$d" "$pfs/$d"; done
cp "$repo/bin/flexblock-provisioner" "$pfs/flexblock-provisioner"
cp /usr/bin/rbd "$pfs/usr/bin/rbd"
cp -a /usr/lib/x86_64-linux-gnu/ceph "$pfs/usr/lib/x86_64-linux-gnu/"
# ldd's "name => path (addr)" and the loader's "path (addr)": the libraries
# rbd links, and those Ceph's plugins link (loaded at run time).
libs() { ldd "$@" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $2 ~ /^\(/ {print $1}'; }
plugins=$(find /usr/lib/x86_64-linux-gnu/ceph -type f -name '*.so*')
# shellcheck disable=SC2086 # plugin paths have no spaces
for lib in $({ libs /usr/bin/rbd; libs $plugins; } | sort -u); do
	dest=$lib
	case $dest in /lib/* | /lib64/*) dest=/usr$dest ;; esac
	[ -e "$pfs$dest" ] && continue
	mkdir -p "$(dirname "$pfs$dest")"
	cp -L "$lib" "$pfs$dest"
done
printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' >"$pfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$pfs/etc/group"
# It runs before it is built: rbd (as root and as the Deployment's user)
# and the provisioner, inside that root alone.
if [ "$(id -u)" = 0 ]; then
	chroot "$pfs" /usr/bin/rbd --version >"$work/rbd-version" ||
		{ echo "images: rbd does not run in the provisioner's root ($pfs): a library is missing" >&2; exit 1; }
	chroot --userspec=65532:65532 "$pfs" /usr/bin/rbd --version >/dev/null ||
		{ echo "images: rbd does not run as 65532 in the provisioner's root" >&2; exit 1; }
	chroot --userspec=65532:65532 "$pfs" /flexblock-provisioner --version >/dev/null ||
		{ echo "images: flexblock-provisioner does not run in its root" >&2; exit 1; }
	echo "images: provisioner root: $(cat "$work/rbd-version"), $(du -sh "$pfs" | cut -f1)"
else
	echo "images: not root: rbd in the provisioner's root not run (chroot needs root)" >&2
fi
bh bud --quiet --layers=false -f "$repo/examples/provisioner/Dockerfile" -t "$PROVISIONER_IMAGE" "$work/pctx" >/dev/null

mkdir -p "$out"
rm -f "$out"/{flexblock,shell,pause,provisioner}-image.tar
bh push --quiet "$FLEXBLOCK_IMAGE" "docker-archive:$out/flexblock-image.tar:$FLEXBLOCK_IMAGE"
bh push --quiet "$SHELL_IMAGE" "docker-archive:$out/shell-image.tar:$SHELL_IMAGE"
bh push --quiet "$PAUSE_IMAGE" "docker-archive:$out/pause-image.tar:$PAUSE_IMAGE"
bh push --quiet "$PROVISIONER_IMAGE" "docker-archive:$out/provisioner-image.tar:$PROVISIONER_IMAGE"
{
	echo "FLEXBLOCK_IMAGE=$FLEXBLOCK_IMAGE"
	echo "PAUSE_IMAGE=$PAUSE_IMAGE"
	echo "SHELL_IMAGE=$SHELL_IMAGE"
	echo "PROVISIONER_IMAGE=$PROVISIONER_IMAGE"
} >"$out/images.env"
echo "images: $FLEXBLOCK_IMAGE, $SHELL_IMAGE, $PAUSE_IMAGE, $PROVISIONER_IMAGE in $out"
