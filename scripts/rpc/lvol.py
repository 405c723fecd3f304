"""Logical volume subcommands: lvstores and lvol bdevs.

Command lines follow SPDK's rpc.py (sizes in MiB, -u UUID / -l LVS_NAME to
pick a store), so SPDK scripts run unchanged; the JSON parameters are SPDK's. SPDK's old
names (construct_lvol_store, get_lvol_stores, destroy_lvol_store,
rename_lvol_store, construct_lvol_bdev, rename_lvol_bdev, resize_lvol_bdev,
destroy_lvol_bdev) take the same command lines, call the current method and
note on stderr that they are deprecated. Snapshots and clones are in
lvol_snap.py.
"""

import argparse

from rpc import cmd
from rpc.bdev import command

_CLEAR_METHODS = ("none", "unmap", "write_zeroes")


def _params(**kwargs):
    """The parameters that were given: a key whose value is None is left out."""
    return {k: v for k, v in kwargs.items() if v is not None}


def _positive(text):
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an integer" % text) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("%r must be positive" % text)
    return value


def _store_args(p, uuid_key="uuid"):
    p.add_argument("-u", "--uuid", dest=uuid_key, help="lvstore UUID")
    p.add_argument("-l", "--lvs-name", dest="lvs_name", help="lvstore name")


def _one_store(args, uuid_key="uuid", required=True):
    uuid = getattr(args, uuid_key)
    if uuid is not None and args.lvs_name is not None:
        raise cmd.CommandError("give -u or -l, not both")
    if required and uuid is None and args.lvs_name is None:
        raise cmd.CommandError("give the lvstore with -u UUID or -l LVS_NAME")
    return {k: v for k, v in ((uuid_key, uuid), ("lvs_name", args.lvs_name)) if v is not None}


def _create_lvstore(client, args):
    return client.call("bdev_lvol_create_lvstore", _params(
        bdev_name=args.bdev_name, lvs_name=args.lvs_name, cluster_sz=args.cluster_sz,
        clear_method=args.clear_method,
        num_md_pages_per_cluster_ratio=args.md_pages_per_cluster_ratio,
        exist_ok=args.exist_ok or None))


def _get_lvstores(client, args):
    return client.call("bdev_lvol_get_lvstores", _one_store(args, required=False) or None)


def _delete_lvstore(client, args):
    return client.call("bdev_lvol_delete_lvstore", _one_store(args))


def _grow_lvstore(client, args):
    return client.call("bdev_lvol_grow_lvstore", _one_store(args))


def _rename(method):
    return lambda client, args: client.call(method, {"old_name": args.old_name,
                                                     "new_name": args.new_name})


def _create(client, args):
    params = _one_store(args)
    params.update(_params(lvol_name=args.lvol_name, size_in_mib=args.size_in_mib,
                          clear_method=args.clear_method))
    if args.thin_provision:
        params["thin_provision"] = True
    if args.exist_ok:
        params["exist_ok"] = True
    return client.call("bdev_lvol_create", params)


def _get_lvols(client, args):
    return client.call("bdev_lvol_get_lvols",
                       _one_store(args, uuid_key="lvs_uuid", required=False) or None)


def _resize(client, args):
    return client.call("bdev_lvol_resize", {"name": args.name, "size_in_mib": args.size_in_mib})


def _delete(client, args):
    return client.call("bdev_lvol_delete", {"name": args.name})


def _args_create_lvstore(p):
    p.add_argument("bdev_name", help="base bdev")
    p.add_argument("lvs_name", help="name of the new lvstore")
    p.add_argument("-c", "--cluster-sz", type=_positive,
                   help="cluster size in bytes, a power of two (default 1 MiB)")
    p.add_argument("--clear-method", choices=_CLEAR_METHODS,
                   help="how the base bdev is cleared first (default unmap)")
    p.add_argument("-m", "--md-pages-per-cluster-ratio", type=_positive,
                   help="metadata pages per 100 clusters")
    p.add_argument("--exist-ok", action="store_true",
                   help="an lvstore of that name on that bdev is the answer (ustor's own)")


def _args_rename(what_old, what_new):
    def arguments(p):
        p.add_argument("old_name", help=what_old)
        p.add_argument("new_name", help=what_new)
    return arguments


def _args_create(p):
    p.add_argument("lvol_name", help="name of the lvol inside its lvstore")
    p.add_argument("size_in_mib", type=_positive, help="size in MiB (rounded up to clusters)")
    p.add_argument("-t", "--thin-provision", action="store_true",
                   help="allocate clusters on first write")
    _store_args(p)
    p.add_argument("-c", "--clear-method", choices=_CLEAR_METHODS,
                   help="how the data is cleared when the lvol is deleted (default unmap)")
    p.add_argument("--exist-ok", action="store_true",
                   help="an lvol of that name in the lvstore is the answer (ustor's own)")


def _args_resize(p):
    p.add_argument("name", help="lvol bdev name, UUID or LVS_NAME/LVOL_NAME")
    p.add_argument("size_in_mib", type=_positive, help="new size in MiB")


def _args_lvol_name(p):
    p.add_argument("name", help="lvol bdev name, UUID or LVS_NAME/LVOL_NAME")


def register(sub):
    # The old names (SPDK before 20.01) keep their command lines, which are the
    # same as the current ones; they send the current method after a note on
    # stderr.
    command(sub, "bdev_lvol_create_lvstore",
            "Format a bdev as a logical volume store; prints its UUID", _create_lvstore,
            _args_create_lvstore, deprecated=("construct_lvol_store",))
    command(sub, "bdev_lvol_get_lvstores", "List lvstores (all, or the one given)",
            _get_lvstores, _store_args, deprecated=("get_lvol_stores",))
    command(sub, "bdev_lvol_delete_lvstore", "Erase an lvstore and every lvol in it",
            _delete_lvstore, _store_args, deprecated=("destroy_lvol_store",))
    command(sub, "bdev_lvol_grow_lvstore",
            "Grow an lvstore into the space its base bdev has grown by", _grow_lvstore,
            _store_args)
    command(sub, "bdev_lvol_rename_lvstore", "Rename an lvstore",
            _rename("bdev_lvol_rename_lvstore"),
            _args_rename("current lvstore name", "new lvstore name"),
            deprecated=("rename_lvol_store",))
    command(sub, "bdev_lvol_create",
            "Create a logical volume; prints its bdev name (its UUID)", _create, _args_create,
            deprecated=("construct_lvol_bdev",))
    command(sub, "bdev_lvol_get_lvols", "List lvols (all, or one lvstore's)", _get_lvols,
            lambda p: _store_args(p, uuid_key="lvs_uuid"))
    command(sub, "bdev_lvol_resize", "Grow or shrink a logical volume", _resize, _args_resize,
            deprecated=("resize_lvol_bdev",))
    command(sub, "bdev_lvol_rename", "Rename a logical volume within its lvstore",
            _rename("bdev_lvol_rename"),
            _args_rename("lvol bdev name, UUID or LVS_NAME/LVOL_NAME",
                         "new lvol name (without the lvstore)"),
            deprecated=("rename_lvol_bdev",))
    command(sub, "bdev_lvol_delete", "Delete a logical volume", _delete, _args_lvol_name,
            deprecated=("destroy_lvol_bdev",))
