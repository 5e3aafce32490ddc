package filesystem

// The allowed mkfs and mount options per filesystem. To allow one more,
// add it here with the narrowest value type that fits; never a value type
// that admits '/'.

func ptr(v value) *value { return &v }

// extFeatures are the mke2fs -O features a volume may set or clear
// (journal_dev is left out: it makes an external journal, not a filesystem).
var extFeatures = features("has_journal", "extent", "extents", "huge_file", "flex_bg", "metadata_csum", "metadata_csum_seed",
	"64bit", "dir_nlink", "extra_isize", "ext_attr", "resize_inode", "dir_index", "filetype", "sparse_super",
	"uninit_bg", "quota", "project", "encrypt", "casefold", "inline_data", "large_file", "large_dir", "mmp",
	"bigalloc", "fast_commit", "stable_inodes", "verity", "orphan_file", "ea_inode", "meta_bg")

func features(names ...string) map[string]value {
	m := make(map[string]value, len(names))
	for _, n := range names {
		m[n] = bare
	}
	return m
}

// extMkfs is mke2fs's list. Left out on purpose: -d (copies a host
// directory in), -z (undo file on the node), -l and -c (bad block files and
// scans), -M (a path), -U (UUID), -S (superblock-only rewrite), -t (the type
// is fsType), -n and -V (exit without formatting), -e panic, -E root_owner
// (ownership is the pod's fsGroup), -E offset, -J device=/location=, -E
// discard (a format writes metadata only: a discard zeroes the whole device,
// beyond what the blank check reads, and takes O(size) on thin storage).
var extMkfs = flagSet{
	{short: 'b', arg: ptr(enum("1024", "2048", "4096"))},
	{short: 'C', arg: ptr(size)},
	{short: 'e', arg: ptr(enum("continue", "remount-ro"))},
	{short: 'E', sub: map[string]value{
		"stride": num(1, 1<<30), "stripe_width": num(1, 1<<30), "stripe-width": num(1, 1<<30),
		"resize": num(1, 1<<62), "lazy_itable_init": optBit, "lazy_journal_init": optBit,
		"assume_storage_prezeroed": optBit, "packed_meta_blocks": optBit, "num_backup_sb": enum("0", "1", "2"),
		"nodiscard": bare, "quotatype": enum("usrquota", "grpquota", "prjquota", "usrquota:grpquota",
			"usrquota:grpquota:prjquota", "usrquota:prjquota", "grpquota:prjquota"),
		"encoding": enum("utf8"),
	}},
	{short: 'F'},
	{short: 'g', arg: ptr(num(256, 1<<20))},
	{short: 'G', arg: ptr(num(1, 1<<20))},
	{short: 'i', arg: ptr(num(1024, 1<<26))},
	{short: 'I', arg: ptr(enum("128", "256", "512", "1024"))},
	{short: 'j'},
	{short: 'J', sub: map[string]value{"size": num(1, 1<<20), "fast_commit_size": num(1, 1<<20)}},
	{short: 'L', arg: ptr(label(16))},
	{short: 'm', arg: ptr(num(0, 50))},
	{short: 'N', arg: ptr(num(1, 1<<32))},
	{short: 'O', feats: extFeatures},
	{short: 'q'},
	{short: 'r', arg: ptr(enum("0", "1"))},
	{short: 'T', arg: ptr(enum("default", "ext3", "ext4", "small", "floppy", "big", "huge", "news", "largefile", "largefile4", "hurd"))},
	{short: 'v'},
}

// xfsMkfs is mkfs.xfs's list. Left out: -d file=/name=, -l logdev=/
// internal=, -r (realtime device), -p (protofile copies host files in),
// -c (config file), -m uuid=, -N (dry run), -V.
var xfsMkfs = flagSet{
	{short: 'b', sub: map[string]value{"size": size}},
	{short: 'd', sub: map[string]value{"agcount": num(1, 1<<32), "agsize": size, "su": size, "sw": num(1, 1<<20),
		"sunit": num(0, 1<<30), "swidth": num(0, 1<<30), "noalign": optBit}},
	{short: 'f'},
	{short: 'i', sub: map[string]value{"size": size, "maxpct": num(0, 100), "align": bit, "attr": enum("1", "2"),
		"projid32bit": bit, "sparse": bit, "nrext64": bit}},
	{short: 'K'},
	{short: 'l', sub: map[string]value{"size": size, "su": size, "sunit": num(0, 1<<30), "version": enum("1", "2"), "lazy-count": bit}},
	{short: 'L', arg: ptr(label(12))},
	{short: 'm', sub: map[string]value{"crc": bit, "finobt": bit, "reflink": bit, "bigtime": bit, "rmapbt": bit, "inobtcount": bit}},
	{short: 'n', sub: map[string]value{"size": size, "version": enum("2", "ci"), "ftype": bit}},
	{short: 'q'},
	{short: 's', sub: map[string]value{"size": size}},
}

var btrfsProfile = enum("single", "dup")

// btrfsMkfs is mkfs.btrfs's list. Left out: -r/--rootdir and -u/--subvol
// (copy a host directory in), -U/--uuid, -b/--byte-count, --shrink, -V,
// and data/metadata profiles that need more than one device.
var btrfsMkfs = flagSet{
	{short: 'L', long: "label", arg: ptr(label(255))},
	{short: 'n', long: "nodesize", arg: ptr(size)},
	{short: 's', long: "sectorsize", arg: ptr(size)},
	{short: 'O', long: "features", feats: features("mixed-bg", "extref", "raid56", "skinny-metadata", "no-holes",
		"quota", "free-space-tree", "block-group-tree", "squota")},
	{short: 'R', long: "runtime-features", feats: features("quota", "free-space-tree")},
	{short: 'm', long: "metadata", arg: ptr(btrfsProfile)},
	{short: 'd', long: "data", arg: ptr(btrfsProfile)},
	{short: 'M', long: "mixed"},
	{long: "csum", arg: ptr(enum("crc32c", "xxhash", "sha256", "blake2"))},
	{long: "checksum", arg: ptr(enum("crc32c", "xxhash", "sha256", "blake2"))},
	{short: 'f', long: "force"},
	{short: 'K', long: "nodiscard"},
	{short: 'q', long: "quiet"},
	{short: 'v', long: "verbose"},
}

// commonMount are the generic VFS options every filesystem takes: how
// access times are kept, and the restrictions flexblock already applies or
// a pod may add. Their opposites (suid, dev, exec, rw) are not listed.
var commonMount = map[string]value{
	"noatime": bare, "nodiratime": bare, "relatime": bare, "strictatime": bare, "lazytime": bare, "nolazytime": bare,
	"nosuid": bare, "nodev": bare, "noexec": bare, "sync": bare, "async": bare, "dirsync": bare,
	"iversion": bare, "noiversion": bare,
}

// extMount: ext3 volumes are mounted by the ext4 driver, so both share it.
// Left out: errors=panic, journal_path=, journal_dev=, nobarrier and
// barrier=0 (lose the pod's data on power loss), noload, dax.
var extMount = mountSet(merge(commonMount, map[string]value{
	"discard": bare, "nodiscard": bare, "errors": enum("remount-ro", "continue"),
	"data": enum("ordered", "writeback", "journal"), "commit": num(0, 300), "barrier": orBare(enum("1")),
	"journal_checksum": bare, "nojournal_checksum": bare, "auto_da_alloc": bare, "noauto_da_alloc": bare,
	"delalloc": bare, "nodelalloc": bare, "dioread_nolock": bare, "dioread_lock": bare,
	"max_batch_time": num(0, 1<<20), "min_batch_time": num(0, 1<<20), "stripe": num(0, 1<<30),
	"inode_readahead_blks": num(0, 1<<30), "init_itable": orBare(num(0, 1000)), "noinit_itable": bare,
	"block_validity": bare, "noblock_validity": bare, "user_xattr": bare, "acl": bare,
	"usrquota": bare, "grpquota": bare, "prjquota": bare, "quota": bare, "noquota": bare,
	"journal_ioprio": num(0, 7), "nombcache": bare, "i_version": bare,
}))

// xfsMount. Left out: logdev=, rtdev=, nouuid (mounts a duplicate, which
// identity checks rely on refusing), norecovery, wsync-less tricks.
var xfsMount = mountSet(merge(commonMount, map[string]value{
	"discard": bare, "nodiscard": bare, "inode64": bare, "inode32": bare, "largeio": bare, "nolargeio": bare,
	"logbufs": num(2, 8), "logbsize": enum("16k", "32k", "64k", "128k", "256k"), "allocsize": size,
	"noquota": bare, "usrquota": bare, "grpquota": bare, "prjquota": bare, "uquota": bare, "gquota": bare,
	"pquota": bare, "uqnoenforce": bare, "gqnoenforce": bare, "pqnoenforce": bare,
	"swalloc": bare, "noalign": bare, "sunit": num(0, 1<<30), "swidth": num(0, 1<<30), "filestreams": bare,
	"wsync": bare, "grpid": bare, "nogrpid": bare, "ikeep": bare, "noikeep": bare,
}))

var btrfsCompress = orBare(enum("zlib", "lzo", "zstd", "no",
	"zlib:1", "zlib:2", "zlib:3", "zlib:4", "zlib:5", "zlib:6", "zlib:7", "zlib:8", "zlib:9",
	"zstd:1", "zstd:2", "zstd:3", "zstd:4", "zstd:5", "zstd:6", "zstd:7", "zstd:8", "zstd:9", "zstd:10",
	"zstd:11", "zstd:12", "zstd:13", "zstd:14", "zstd:15"))

// btrfsMount. Left out: subvol=/subvolid= (name paths inside the volume;
// flexblock mounts the whole filesystem), device= (adds another device),
// degraded, rescue=, fatal_errors=, nobarrier, clear_cache.
var btrfsMount = mountSet(merge(commonMount, map[string]value{
	"compress": btrfsCompress, "compress-force": btrfsCompress, "ssd": bare, "nossd": bare, "ssd_spread": bare,
	"nossd_spread": bare, "space_cache": enum("v2"), "autodefrag": bare, "noautodefrag": bare,
	"commit": num(1, 300), "discard": orBare(enum("sync", "async")), "nodiscard": bare,
	"datacow": bare, "nodatacow": bare, "datasum": bare, "nodatasum": bare, "flushoncommit": bare,
	"noflushoncommit": bare, "max_inline": size, "thread_pool": num(1, 1024), "acl": bare, "noacl": bare,
	"treelog": bare, "notreelog": bare, "barrier": bare,
}))
