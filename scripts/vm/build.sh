#!/usr/bin/env bash
# Builds and caches (outside the repo) what the real-kernel VM boots:
# Debian's kernel with its modules, and a tiny busybox initramfs that mounts
# the host's root read-only over 9p with a tmpfs overlay on top.
# Prints nothing but progress; rebuilds only what is missing.
set -euo pipefail

CACHE=${FLEXBLOCK_VM_CACHE:-/var/cache/flexblock-vm}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$CACHE"
# Several runs may start at once (a demo next to make e2e): build only once.
exec 9>"$CACHE/.lock"
flock 9

# kernel_package prints the versioned package linux-image-amd64 depends on.
kernel_package() {
	apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | grep -v unsigned | head -1
}

fetch_kernel() {
	[ -f "$CACHE/kernel/ready" ] && return 0
	local pkg
	pkg=$(kernel_package)
	if [ -z "$pkg" ]; then
		apt-get update -qq
		pkg=$(kernel_package)
	fi
	[ -n "$pkg" ] || { echo "build: cannot find the kernel package linux-image-amd64 depends on" >&2; exit 1; }
	echo "build: fetching $pkg"
	rm -rf "$CACHE/kernel" "$CACHE/dl"
	mkdir -p "$CACHE/dl" "$CACHE/kernel"
	chown _apt "$CACHE/dl" 2>/dev/null || true
	(cd "$CACHE/dl" && apt-get download -q "$pkg" >/dev/null)
	dpkg -x "$CACHE"/dl/*.deb "$CACHE/kernel"
	local ver
	ver=$(basename "$(ls -d "$CACHE"/kernel/lib/modules/*)")
	depmod -b "$CACHE/kernel" "$ver"
	cp "$CACHE/kernel/boot/vmlinuz-$ver" "$CACHE/vmlinuz"
	echo "$ver" >"$CACHE/kernel/version"
	rm -rf "$CACHE/dl"
	touch "$CACHE/kernel/ready"
}

# deps_of prints a module and its dependencies in load order (deps first).
deps_of() {
	local moddir=$1 mod=$2 line path
	line=$(grep -E "(^|/)${mod}\.ko(\.xz|\.zst)?:" "$moddir/modules.dep" || true)
	[ -n "$line" ] || return 0 # built in
	for d in ${line#*:}; do
		deps_of "$moddir" "$(basename "${d%%.ko*}")"
	done
	path=${line%%:*}
	echo "$path"
}

build_initramfs() {
	local ver moddir stage
	ver=$(cat "$CACHE/kernel/version")
	[ -f "$CACHE/initrd.img" ] && [ "$CACHE/initrd.img" -nt "$here/initramfs-init" ] && return 0
	echo "build: initramfs for $ver"
	moddir="$CACHE/kernel/lib/modules/$ver"
	stage=$(mktemp -d)
	mkdir -p "$stage"/{bin,dev,proc,sys,mnt,modules}
	cp /bin/busybox "$stage/bin/busybox"
	for m in virtio_pci virtio_blk 9pnet 9pnet_virtio 9p overlay; do
		deps_of "$moddir" "$m"
	done | awk '!seen[$0]++' >"$stage/modules/order"
	while read -r path; do
		cp "$moddir/$path" "$stage/modules/"
	done <"$stage/modules/order"
	sed -i 's#.*/##' "$stage/modules/order"
	# busybox insmod cannot read compressed modules: decompress them.
	for f in "$stage"/modules/*.ko.xz; do [ -e "$f" ] && xz -d "$f"; done
	for f in "$stage"/modules/*.ko.zst; do [ -e "$f" ] && zstd -q -d --rm "$f"; done
	sed -i 's/\.ko\.\(xz\|zst\)$/.ko/' "$stage/modules/order"
	echo "$ver" >"$stage/modules/version"
	cp "$here/initramfs-init" "$stage/init"
	chmod 0755 "$stage/init"
	(cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1 >"$CACHE/initrd.img.tmp")
	mv "$CACHE/initrd.img.tmp" "$CACHE/initrd.img"
	rm -rf "$stage"
}

fetch_kernel
build_initramfs
