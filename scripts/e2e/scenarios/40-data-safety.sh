# Data safety on the real kernel, through the driver (test build with the
# loop backend): a device holding another filesystem, a partition table, a
# LUKS header, or returning read errors (dm error and dm-flakey targets) is
# never formatted, whatever the options say, and stays unchanged.
FLEXBLOCK_BIN=${FLEXBLOCK_TEST_BIN:-$REPO_ROOT/bin/flexblock-test}
install_driver loop

new_loop() {
	local f
	f=$(mktemp /var/tmp/e2e-disk.XXXXXX)
	truncate -s 320M "$f"
	losetup -f --show "$f"
}
refused() { # refused DEVICE WHAT EXPECTED-TEXT [extra kopts]
	local dev=$1 what=$2 want=$3 before after pod
	shift 3
	before=$(md5sum <"$dev" 2>/dev/null | cut -d' ' -f1 || echo unreadable)
	pod=$(pod_dir "safety-$RANDOM" loop v)
	flexcall loop mount "$pod" "$(kopts device="$dev" kubernetes.io/fsType=ext4 "$@")"
	expect Failure "$want"
	after=$(md5sum <"$dev" 2>/dev/null | cut -d' ' -f1 || echo unreadable)
	assert_eq "$after" "$before" "$what: device content"
	is_mounted "$pod" && fail "$what: pod dir mounted"
	note "$what: refused, unchanged"
}

d=$(new_loop); mkfs.xfs -q -f "$d"
refused "$d" "xfs asked as ext4" "holds xfs but the volume asks for fsType ext4"

d=$(new_loop); printf 'label: gpt\n,,L\n' | sfdisk -q --no-reread --no-tell-kernel "$d" >/dev/null
refused "$d" "GPT partition table" "partition table"

d=$(new_loop); printf 'YES' | cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "$d" - >/dev/null
refused "$d" "LUKS header" "crypto_LUKS"

# Every read fails: blkid sees "nothing", the read check must refuse.
d=$(new_loop)
dmsetup create e2e-error --table "0 $(blockdev --getsz "$d") error"
refused /dev/mapper/e2e-error "dm error target" "cannot be read"

# Reads fail after the first sectors: a blank-looking start is not enough.
d=$(new_loop); sz=$(blockdev --getsz "$d")
dmsetup create e2e-flaky --table "0 2048 linear $d 0
2048 $((sz - 2048)) error"
refused /dev/mapper/e2e-flaky "device failing past its first MiB" "cannot be read"

dmsetup remove e2e-error
dmsetup remove e2e-flaky
losetup -D
