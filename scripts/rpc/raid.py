"""RAID subcommands: raid0 (striping) and raid1 (mirroring) bdevs.

Command lines follow SPDK's rpc.py: bdev_raid_create -n NAME -r LEVEL
-z STRIP_KB -b "BASE1 BASE2".
"""

from rpc import cmd
from rpc.bdev import by_name, command, given, non_negative, uuid_arg

_RAID_CATEGORIES = ("all", "online", "configuring", "offline")


def _bdev_raid_create(client, args):
    bases = []
    for item in args.base_bdevs:
        bases.extend(item.split())
    if not bases:
        raise cmd.CommandError("-b needs at least one base bdev name")
    params = given(name=args.name, raid_level=args.raid_level, base_bdevs=bases,
                   strip_size_kb=args.strip_size_kb, uuid=args.uuid)
    if args.superblock:
        params["superblock"] = True
    return client.call("bdev_raid_create", params)


def _args_raid_create(p):
    p.add_argument("-n", "--name", required=True, help="name of the raid bdev")
    p.add_argument("-r", "--raid-level", dest="raid_level", required=True,
                   help="raid0 (or 0): striping; raid1 (or 1): mirroring")
    p.add_argument("-z", "--strip-size-kb", dest="strip_size_kb", type=non_negative,
                   help="strip size in KiB, a power of two (required for raid0)")
    p.add_argument("-b", "--base-bdevs", dest="base_bdevs", required=True, action="append",
                   help='base bdevs, space-separated in one argument ("B1 B2"); '
                   "may be repeated")
    uuid_arg(p, "the raid bdev")
    p.add_argument("-s", "--superblock", action="store_true",
                   help="keep raid metadata on the base bdevs (not supported yet: "
                   "the server refuses it)")


def _bdev_raid_get_bdevs(client, args):
    return client.call("bdev_raid_get_bdevs", {"category": args.category})


def _args_raid_get_bdevs(p):
    p.add_argument("category", nargs="?", default="all", choices=_RAID_CATEGORIES,
                   help="which raid bdevs to list (default all)")


def _bdev_raid_add_base_bdev(client, args):
    return client.call("bdev_raid_add_base_bdev",
                       {"raid_bdev": args.raid_bdev, "base_bdev": args.base_bdev})


def _args_raid_add_base_bdev(p):
    p.add_argument("raid_bdev", help="raid1 bdev to add the member to")
    p.add_argument("base_bdev", help="bdev to add; it is rebuilt from the other members")


def register(sub):
    command(sub, "bdev_raid_create", "Create a raid0 or raid1 bdev over base bdevs",
            _bdev_raid_create, _args_raid_create)
    handler, arguments = by_name("bdev_raid_delete", "raid bdev name")
    command(sub, "bdev_raid_delete", "Delete a raid bdev (its base bdevs stay)",
            handler, arguments)
    command(sub, "bdev_raid_get_bdevs", "List raid bdevs with their state and members",
            _bdev_raid_get_bdevs, _args_raid_get_bdevs)
    handler, arguments = by_name("bdev_raid_remove_base_bdev", "member bdev name")
    command(sub, "bdev_raid_remove_base_bdev", "Take a member bdev out of its raid",
            handler, arguments)
    command(sub, "bdev_raid_add_base_bdev", "Add a member to a raid1 bdev and rebuild it",
            _bdev_raid_add_base_bdev, _args_raid_add_base_bdev)
