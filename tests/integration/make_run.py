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
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuse_lib as fl  # noqa: E402
from fuse_lib import check, fail  # noqa: E402

RUN_SH = os.path.join(fl.ROOT, "scripts", "run.sh")
RPC_PY = os.path.join(fl.ROOT, "scripts", "rpc.py")
CONFIG = os.path.join(fl.ROOT, "etc", "ustor.json")
GIB = 1 << 30

fl.require_fuse()
if not os.path.exists(os.path.join(fl.BIN, "ustord")):
    fl.skip("ustord is not built in " + fl.BUILDDIR)

WORK = fl.tmpdir("make_run")
SOCK = os.path.join(WORK, "ustor.sock")
MNT = os.path.join(WORK, "mnt")
IMG = os.path.join(WORK, "var", "ustor.img")
procs = []


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    if fl.is_mounted(MNT):
        subprocess.run(["fusermount3", "-u", "-z", MNT], capture_output=True)
    fl.cleanup()


atexit.register(cleanup)


class Run:
    """scripts/run.sh in WORK; it execs ustord, so signals reach the daemon."""

    def __init__(self):
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([RUN_SH, fl.BUILDDIR, CONFIG, "-r", SOCK, "--no-huge"],
                                     cwd=WORK, stdout=self.log, stderr=subprocess.STDOUT)
        procs.append(self.proc)
        deadline = time.time() + fl.MOUNT_TIMEOUT
        while not (os.path.exists(SOCK) and fl.is_mounted(MNT)):
            if self.proc.poll() is not None:
                out = self.output()
                if "bdev_uring_create" in out and "unknown" in out.lower():
                    fl.skip("ustord has no io_uring bdev module (etc/ustor.json uses it)")
                fail("run.sh exited %d during start-up:\n%s" % (self.proc.returncode, out))
            if time.time() > deadline:
                fail("no mount at %s within %d s:\n%s" % (MNT, fl.MOUNT_TIMEOUT, self.output()))
            time.sleep(0.1)

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def interrupt(self):
        """Ctrl-C: a clean shutdown, exit 0, nothing left mounted."""
        self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout=fl.UMOUNT_TIMEOUT)
        except subprocess.TimeoutExpired:
            fail("ustord did not exit within %d s of SIGINT:\n%s"
                 % (fl.UMOUNT_TIMEOUT, self.output()))
        check(rc == 0, "exit %d after SIGINT:\n%s" % (rc, self.output()))
        check(not fl.is_mounted(MNT), "%s still mounted after exit" % MNT)
        check(not os.path.exists(SOCK), "the RPC socket outlived the daemon")


def rpc(*args):
    r = subprocess.run([sys.executable, RPC_PY, "-s", SOCK] + list(args),
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "rpc.py %s: %s" % (" ".join(args), r.stderr))
    return json.loads(r.stdout) if r.stdout.strip() else None


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
d = Run()
st = os.stat(IMG)
check(st.st_size == 8 * GIB, "image is %d bytes, not 8 GiB" % st.st_size)
check(st.st_blocks * 512 < GIB, "image is not sparse (%d bytes used)" % (st.st_blocks * 512))
uuid = check_store()
data = b"shared store: files beside lvols\n" * 1000
with open(os.path.join(MNT, "hello.txt"), "wb") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
d.interrupt()

# ---- second run: the same config finds both, creates nothing new ----
d = Run()
check(check_store() == uuid, "lvs0/lvol0 changed its UUID across the restart")
with open(os.path.join(MNT, "hello.txt"), "rb") as f:
    check(f.read() == data, "hello.txt differs after the restart")
d.interrupt()
print("ok: make run makes the file system and lvs0/lvol0 in one store; both survive Ctrl-C and restart")
