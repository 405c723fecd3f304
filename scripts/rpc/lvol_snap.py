"""Logical volume snapshots and clones: SPDK's bdev_lvol_snapshot, _clone,
_inflate and _decouple_parent command lines, and ustor's own bdev_lvol_revert.
"""

from rpc import cmd
from rpc.bdev import command


def _snapshot(client, args):
    return client.call("bdev_lvol_snapshot", {"lvol_name": args.lvol_name,
                                              "snapshot_name": args.snapshot_name})


def _clone(client, args):
    return client.call("bdev_lvol_clone", {"snapshot_name": args.snapshot_name,
                                           "clone_name": args.clone_name})


def _by_name(method):
    return lambda client, args: client.call(method, {"name": args.name})


def _revert(client, args):
    return client.call("bdev_lvol_revert", {"name": args.name,
                                            "snapshot_name": args.snapshot_name})


def _args_snapshot(p):
    p.add_argument("lvol_name", help="lvol bdev name, UUID or LVS_NAME/LVOL_NAME")
    p.add_argument("snapshot_name", help="name of the new snapshot lvol")


def _args_clone(p):
    p.add_argument("snapshot_name", help="snapshot bdev name, UUID or LVS_NAME/LVOL_NAME")
    p.add_argument("clone_name", help="name of the new clone lvol")


def _args_name(p):
    p.add_argument("name", help="lvol bdev name, UUID or LVS_NAME/LVOL_NAME")


def register(sub):
    # The old names (SPDK before 20.01) keep their command lines; they send the
    # current method after a note on stderr.
    command(sub, "bdev_lvol_snapshot",
            "Snapshot a logical volume; prints the snapshot's bdev name", _snapshot,
            _args_snapshot, deprecated=("snapshot_lvol_bdev",))
    command(sub, "bdev_lvol_clone",
            "Clone a snapshot as a thin lvol; prints the clone's bdev name", _clone,
            _args_clone, deprecated=("clone_lvol_bdev",))
    command(sub, "bdev_lvol_inflate",
            "Give an lvol its own copy of everything it reads from its snapshots",
            _by_name("bdev_lvol_inflate"), _args_name, deprecated=("inflate_lvol_bdev",))
    command(sub, "bdev_lvol_decouple_parent",
            "Copy what an lvol reads from its snapshot; its snapshot's parent becomes its own",
            _by_name("bdev_lvol_decouple_parent"), _args_name,
            deprecated=("decouple_parent_lvol_bdev",))
    p = cmd.add(sub, "bdev_lvol_revert",
                "Revert an lvol to a snapshot, keeping its name and UUID (ustor only)",
                _revert)
    p.add_argument("name", help="lvol bdev name, UUID or LVS_NAME/LVOL_NAME")
    p.add_argument("snapshot_name", help="snapshot bdev name, UUID or LVS_NAME/LVOL_NAME")
