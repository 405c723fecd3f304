#!/usr/bin/env python3
"""`make run`, non-interactively: scripts/run.sh BUILDDIR etc/ustor.json (what
`make run` runs; here with its own socket and --no-huge) in a scratch
directory. The first start makes ./var/ustor.img (sparse, 8 GiB), a file bdev
on it, and one blobstore holding both the file system mounted at ./mnt and
the lvstore lvs0 with the 1 GiB thin lvol lvs0/lvol0. Checked: the mount, the
lvol in bdev_get_bdevs, the lvstore's base, a file written through the
mount; SIGINT (Ctrl-C) exits 0 and unmounts; the second start finds the same
lvol (same UUID, no second one) and the file, from the same config.

Exit 0 on pass, 1 on failure, 77 to skip (reason on the last line).
"""
import atexit
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuse_lib as fl  # noqa: E402
import ustord_lib as ul  # noqa: E402
from fuse_lib import check  # noqa: E402

RUN_SH = os.path.join(fl.ROOT, "scripts", "run.sh")
CONFIG = os.path.join(fl.ROOT, "etc", "ustor.json")
GIB = 1 << 30

fl.require_fuse()
if not os.path.exists(os.path.join(fl.BIN, "ustord")):
    fl.skip("ustord is not built in " + fl.BUILDDIR)

WORK = fl.tmpdir("make_run")
SOCK = os.path.join(WORK, "ustor.sock")
MNT = os.path.join(WORK, "mnt")
IMG = os.path.join(WORK, "var", "ustor.img")
atexit.register(ul.cleanup)


def skip_without_uring(output):
    if "bdev_uring_create" in output and "unknown" in output.lower():
        fl.skip("ustord has no io_uring bdev module (etc/ustor.json uses it)")


def start():
    """scripts/run.sh in WORK; it execs ustord, so signals reach the daemon."""
    return ul.Daemon([RUN_SH, fl.BUILDDIR, CONFIG, "-r", SOCK, "--no-huge"], MNT,
                     lambda: os.path.exists(SOCK) and fl.is_mounted(MNT), fl.MOUNT_TIMEOUT,
                     cwd=WORK, on_early_exit=skip_without_uring)


def interrupt(d):
    """Ctrl-C: a clean shutdown, exit 0, nothing left mounted, no socket."""
    d.stop(signal.SIGINT)
    check(not os.path.exists(SOCK), "the RPC socket outlived the daemon")


def rpc(*args):
    return ul.rpc(SOCK, *args, daemon=d, timeout=60)


def check_store():
    """The lvol and the file system in one store on ustor0; the lvol's bdev name."""
    lvols = [b for b in rpc("bdev_get_bdevs") if "lvs0/lvol0" in b.get("aliases", [])]
    check(len(lvols) == 1, "bdev_get_bdevs shows %d lvs0/lvol0" % len(lvols))
    lvol = lvols[0]
    check(lvol["num_blocks"] * lvol["block_size"] == GIB,
          "lvol0 has %d blocks of %d" % (lvol["num_blocks"], lvol["block_size"]))
    stores = rpc("bdev_lvol_get_lvstores")
    check(len(stores) == 1 and stores[0]["name"] == "lvs0" and
          stores[0]["base_bdev"] == "ustor0", "lvstores: %s" % stores)
    listed = rpc("bdev_lvol_get_lvols", "-l", "lvs0")
    check(len(listed) == 1 and listed[0]["is_thin_provisioned"],
          "lvs0 holds %s" % [v["name"] for v in listed])
    mounts = rpc("blobfs_get_mounts")
    check(len(mounts) == 1 and mounts[0]["bdev_name"] == "ustor0" and
          mounts[0]["mountpoint"] == MNT, "mounts: %s" % mounts)
    return lvol["name"]


# ---- first run: everything is made ----
d = start()
st = os.stat(IMG)
check(st.st_size == 8 * GIB, "image is %d bytes, not 8 GiB" % st.st_size)
check(st.st_blocks * 512 < GIB, "image is not sparse (%d bytes used)" % (st.st_blocks * 512))
uuid = check_store()
# The config's 64 KiB clusters leave room for about 32,000 files (with the
# lvstore's default 1 MiB clusters there were 2,047 blob slots in all).
sv = os.statvfs(MNT)
check(sv.f_files >= 32000 and sv.f_ffree >= 32000 - 8,
      "./mnt holds %d inodes (%d free), expected about 32,000" % (sv.f_files, sv.f_ffree))
data = b"shared store: files beside lvols\n" * 1000
with open(os.path.join(MNT, "hello.txt"), "wb") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
interrupt(d)

# ---- second run: the same config finds both, creates nothing new ----
d = start()
check(check_store() == uuid, "lvs0/lvol0 changed its UUID across the restart")
with open(os.path.join(MNT, "hello.txt"), "rb") as f:
    check(f.read() == data, "hello.txt differs after the restart")
interrupt(d)
print("ok: make run makes the file system and lvs0/lvol0 in one store; both survive Ctrl-C and restart")
