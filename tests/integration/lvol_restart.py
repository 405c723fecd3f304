#!/usr/bin/env python3
"""Logical volumes survive a ustord restart: an lvstore on an aio bdev (a
file) with a thick and a thin lvol, renamed and resized through rpc.py's
SPDK-style command lines; after SIGTERM and a restart from the saved config
(which holds the aio bdev and nothing lvol-related) the lvstore and the lvols
come back with their names, UUIDs and sizes. Also: RPC errors for a
duplicate name, an unknown lvstore and a thick lvol that does not fit.

Exit 0 on pass, 1 on failure, 77 to skip (reason on the last line).
The build directory comes from USTOR_BUILDDIR (default: build).
"""
import atexit
import json
import os
import shutil
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuse_lib as fl  # noqa: E402
import ustord_lib as ul  # noqa: E402
from fuse_lib import check, fail  # noqa: E402

USTORD = os.path.join(fl.BIN, "ustord")
# In /tmp, not fl.tmpdir()'s /dev/shm: on tmpfs the aio bdev would copy inline
# instead of doing asynchronous file I/O.
TMPDIR = tempfile.mkdtemp(prefix="ustor_it_lvol_")
SOCK = os.path.join(TMPDIR, "ustor.sock")
IMAGE = os.path.join(TMPDIR, "lvs.img")
START_TIMEOUT = 30
STOP_TIMEOUT = 30
atexit.register(shutil.rmtree, TMPDIR, True)
atexit.register(ul.cleanup)  # runs first: nothing uses TMPDIR when it goes
d = None  # the running daemon, for rpc failure messages


def start(*args):
    return ul.Daemon([USTORD, "--no-huge", "-r", SOCK] + list(args), None,
                     lambda: ul.answers(SOCK), START_TIMEOUT)


def rpc(*args):
    return ul.rpc(SOCK, *args, daemon=d)


def rpc_fails(needle, *args):
    err = ul.rpc_error(SOCK, *args)
    check(needle in err, "rpc.py %s: error lacks %r: %s" % (" ".join(args), needle, err))


def lvols_by_name():
    return {v["name"]: v for v in rpc("bdev_lvol_get_lvols", "-l", "pool")}


def bdev(name):
    found = rpc("bdev_get_bdevs", "-b", name)
    if len(found) != 1:
        fail("bdev %s: %r" % (name, found))
    return found[0]


def main():
    global d
    if not os.access(USTORD, os.X_OK):
        fl.skip("%s is not built" % USTORD)
    with open(IMAGE, "wb") as f:
        f.truncate(64 << 20)

    d = start()
    rpc("bdev_aio_create", IMAGE, "Aio0", "512")
    rpc("bdev_wait_for_examine")
    lvs_uuid = rpc("bdev_lvol_create_lvstore", "Aio0", "store", "-c", "1048576")
    thick = rpc("bdev_lvol_create", "-l", "store", "thick", "8")
    thin = rpc("bdev_lvol_create", "-u", lvs_uuid, "thin", "100", "-t")
    rpc_fails("File exists", "bdev_lvol_create", "-l", "store", "thick", "1")
    rpc_fails("no lvstore nope", "bdev_lvol_create", "-l", "nope", "x", "1")
    rpc_fails("No space left", "bdev_lvol_create", "-l", "store", "huge", "1000")
    rpc("bdev_lvol_rename", "store/thin", "sparse")
    rpc("bdev_lvol_resize", thick, "12")
    rpc("bdev_lvol_rename_lvstore", "store", "pool")
    before = lvols_by_name()
    if sorted(before) != ["sparse", "thick"]:
        fail("lvols before restart: %r" % before)
    if bdev("pool/thick")["name"] != thick or bdev("pool/sparse")["name"] != thin:
        fail("aliases do not lead to the UUID-named bdevs")
    if bdev(thick)["num_blocks"] != 12 * 2048:
        fail("thick lvol not resized: %r" % bdev(thick))
    stores = rpc("bdev_lvol_get_lvstores")
    if len(stores) != 1 or stores[0]["uuid"] != lvs_uuid or stores[0]["base_bdev"] != "Aio0":
        fail("bdev_lvol_get_lvstores: %r" % stores)
    config = rpc("save_config")
    text = json.dumps(config)
    if "bdev_lvol" in text or "bdev_aio_create" not in text:
        fail("save_config should hold the aio bdev and no lvol call: %s" % text)
    path = os.path.join(TMPDIR, "config.json")
    with open(path, "w") as f:
        json.dump(config, f)
    d.stop(signal.SIGTERM, STOP_TIMEOUT)

    d = start("-c", path)
    rpc("bdev_wait_for_examine")
    stores = rpc("bdev_lvol_get_lvstores", "-l", "pool")
    if len(stores) != 1 or stores[0]["uuid"] != lvs_uuid:
        fail("lvstore after restart: %r\n%s" % (stores, d.output()))
    after = lvols_by_name()
    for name in ("thick", "sparse"):
        if after.get(name, {}).get("uuid") != before[name]["uuid"]:
            fail("lvol %s after restart: %r, before %r" % (name, after.get(name), before[name]))
    if bdev("pool/thick")["num_blocks"] != 12 * 2048:
        fail("thick lvol size after restart: %r" % bdev("pool/thick"))
    if bdev("pool/sparse")["num_blocks"] != 100 * 2048 or not after["sparse"]["is_thin_provisioned"]:
        fail("thin lvol after restart: %r %r" % (bdev("pool/sparse"), after["sparse"]))
    rpc("bdev_lvol_delete", "pool/sparse")
    rpc("bdev_lvol_delete_lvstore", "-l", "pool")
    if rpc("bdev_lvol_get_lvstores") != []:
        fail("lvstore still listed after delete")
    d.stop(signal.SIGTERM, STOP_TIMEOUT)
    print("ok: lvstore and lvols (names, UUIDs, sizes) survive a ustord restart")
    return 0


if __name__ == "__main__":
    sys.exit(main())
