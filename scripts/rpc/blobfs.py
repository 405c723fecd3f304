"""blobfs subcommands: format a bdev, mount it through FUSE, unmount, list mounts."""

import argparse

from rpc import cmd


MAX_INODES_HELP = ("files, directories and symlinks the file system can hold, at most 2^24; "
                   "12 KiB of metadata each (default: one per 4 clusters, 64 to 2^20)")
PREALLOC_MD_HELP = ("write the whole metadata region (12 KiB per inode) at format, so that a "
                    "sparse or thin device holds it from the start")


def _positive(text):
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an integer" % text) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("%r must be positive" % text)
    return value


def _create(client, args):
    params = {"bdev_name": args.bdev_name}
    if args.cluster_sz is not None:
        params["cluster_sz"] = args.cluster_sz
    if args.max_inodes is not None:
        params["max_inodes"] = args.max_inodes
    if args.prealloc_md:
        params["prealloc_md"] = True
    return client.call("blobfs_create", params)


def _mount(client, args):
    params = {"bdev_name": args.bdev_name, "mountpoint": args.mountpoint}
    if args.options is not None:
        params["options"] = args.options
    if args.format_if_empty:
        params["format_if_empty"] = True
    if args.cluster_sz is not None:
        params["cluster_sz"] = args.cluster_sz
    if args.max_inodes is not None:
        params["max_inodes"] = args.max_inodes
    if args.prealloc_md:
        params["prealloc_md"] = True
    return client.call("blobfs_mount", params)


def _umount(client, args):
    params = {"mountpoint": args.mountpoint}
    if args.force:
        params["force"] = True
    return client.call("blobfs_umount", params)


def register(sub):
    p = cmd.add(sub, "blobfs_create", "Format a bdev with an empty blobfs file system", _create)
    p.add_argument("bdev_name", help="bdev to format (everything on it is lost)")
    p.add_argument("-c", "--cluster-sz", type=_positive,
                   help="cluster size in bytes, a power of two (default 64 KiB)")
    p.add_argument("--max-inodes", type=_positive, help=MAX_INODES_HELP)
    p.add_argument("--prealloc-md", action="store_true", help=PREALLOC_MD_HELP)

    p = cmd.add(sub, "blobfs_mount", "Mount a bdev's blobfs at a directory through FUSE",
                _mount)
    p.add_argument("bdev_name", help="bdev holding the file system")
    p.add_argument("mountpoint", help="existing directory (absolute path)")
    p.add_argument("-o", "--options",
                   help="mount options, comma separated (allow_other, default_permissions, "
                        "ro, attr_timeout=S, entry_timeout=S, writeback_cache, ...)")
    p.add_argument("--format-if-empty", action="store_true",
                   help="format the bdev first if its first MiB is all zero")
    p.add_argument("-c", "--cluster-sz", type=_positive,
                   help="cluster size when --format-if-empty formats")
    p.add_argument("--max-inodes", type=_positive,
                   help="when --format-if-empty formats: " + MAX_INODES_HELP)
    p.add_argument("--prealloc-md", action="store_true",
                   help="when --format-if-empty formats: " + PREALLOC_MD_HELP)

    p = cmd.add(sub, "blobfs_umount", "Unmount a blobfs FUSE mount", _umount)
    p.add_argument("mountpoint", help="where it is mounted")
    p.add_argument("-f", "--force", action="store_true",
                   help="detach even while files are open (their users get ENOTCONN)")

    cmd.simple(sub, "blobfs_get_mounts", "List blobfs FUSE mounts with their statistics")
