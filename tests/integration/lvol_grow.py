#!/usr/bin/env python3
"""Growing an lvstore with its base bdev, in a store it shares with a mounted
file system: an lvstore and a blobfs mount in one store on a 64 MiB file
(aio bdev); the file is extended with truncate to 128 MiB and
bdev_aio_rescan picks the new size up, whose RESIZE event grows the store
(bdev_lvol_grow_lvstore then has nothing left to do); a thick lvol and a
file that only fit in the new space are created and written; after a
restart the lvstore has its new size, both lvols are there and the file
reads back unchanged.

Exit 0 on pass, 1 on failure, 77 to skip (reason on the last line).
"""
import atexit
import hashlib
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuse_lib as fl  # noqa: E402
import ustord_lib as ul  # noqa: E402
from fuse_lib import check, fail  # noqa: E402

USTORD = os.path.join(fl.BIN, "ustord")
MIB = 1 << 20

fl.require_fuse()
if not os.path.exists(USTORD):
    fl.skip("ustord is not built in " + fl.BUILDDIR)

WORK, IMG, MNT = fl.workdir("lvol_grow", image="base.img")
SOCK = os.path.join(WORK, "ustor.sock")
atexit.register(ul.cleanup)


def start():
    return ul.Daemon([USTORD, "--no-huge", "-r", SOCK], MNT, lambda: os.path.exists(SOCK), 60)


def rpc(*args):
    return ul.rpc(SOCK, *args, daemon=d)


def lvs0():
    return rpc("bdev_lvol_get_lvstores", "-l", "lvs0")[0]


def mount(*extra):
    rpc("blobfs_mount", *extra, "aio0", MNT)
    check(fl.is_mounted(MNT), "blobfs_mount answered but nothing is mounted")


def write_file(path, nbytes, seed):
    h = hashlib.sha256()
    block = hashlib.sha256(seed).digest() * (MIB // 32)
    with open(path, "wb") as f:
        for i in range(nbytes // MIB):
            chunk = bytes([i & 0xff]) + block[1:]
            f.write(chunk)
            h.update(chunk)
        f.flush()
        os.fsync(f.fileno())
    return h.hexdigest()


def file_hash(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(MIB)
            if not b:
                return h.hexdigest()
            h.update(b)


with open(IMG, "wb") as f:
    f.truncate(64 * MIB)

d = start()
rpc("bdev_aio_create", IMG, "aio0", "4096")
rpc("bdev_lvol_create_lvstore", "aio0", "lvs0")
mount("--format-if-empty")  # adds the file system to the lvstore's store
before = lvs0()
check(before["cluster_size"] == MIB, "cluster size %d" % before["cluster_size"])
small = rpc("bdev_lvol_create", "-l", "lvs0", "small", "8")

# The base grows; the rescan's RESIZE event grows the store.
with open(IMG, "r+b") as f:
    f.truncate(128 * MIB)
rpc("bdev_aio_rescan", "aio0")
deadline = time.time() + 60
while lvs0()["total_data_clusters"] <= before["total_data_clusters"]:
    if time.time() > deadline:
        fail("the lvstore did not grow after the rescan:\n" + d.output())
    time.sleep(0.2)
after = lvs0()
check(after["total_data_clusters"] == before["total_data_clusters"] + 64,
      "grew from %d to %d clusters, not by 64" % (before["total_data_clusters"],
                                                   after["total_data_clusters"]))
check(after["free_clusters"] == before["free_clusters"] - 8 + 64,
      "free %d -> %d" % (before["free_clusters"], after["free_clusters"]))
rpc("bdev_lvol_grow_lvstore", "-l", "lvs0")  # true prints nothing; an error fails rpc()
check(lvs0()["total_data_clusters"] == after["total_data_clusters"], "a second grow changed it")

# Space that exists only since the grow: a thick lvol and a file beside it.
big_mib = before["free_clusters"] - 8 + 16
big = rpc("bdev_lvol_create", "-l", "lvs0", "big", str(big_mib))
digest = write_file(os.path.join(MNT, "data.bin"), 24 * MIB, b"grown")
st = os.statvfs(MNT)
check(st.f_blocks * st.f_frsize >= 100 * MIB, "statfs shows %d bytes" % (st.f_blocks * st.f_frsize))
grown = lvs0()
d.stop(signal.SIGTERM)

# Restart: the same bdev, examined again, then mounted.
d = start()
rpc("bdev_aio_create", IMG, "aio0", "4096")
mount()
again = lvs0()
check(again["total_data_clusters"] == grown["total_data_clusters"] and
      again["free_clusters"] == grown["free_clusters"],
      "after the restart: %s, before: %s" % (again, grown))
names = {b["name"]: b for b in rpc("bdev_get_bdevs")}
check(small in names and big in names, "lvols missing after the restart")
check(names[big]["num_blocks"] * names[big]["block_size"] == big_mib * MIB,
      "big has %d blocks" % names[big]["num_blocks"])
check(file_hash(os.path.join(MNT, "data.bin")) == digest, "data.bin differs after the restart")
d.stop(signal.SIGTERM)
print("ok: an lvstore sharing its store with blobfs grows with its base; lvol and file survive a restart")
