#!/usr/bin/env python3
"""blobfs FUSE mounts in ustord, driven through scripts/rpc.py: blobfs_mount with
format_if_empty on a blank file bdev, blobfs_get_mounts, a non-forced
blobfs_umount refused while a file is open and accepted once it is closed,
blobfs_create (reformat), save_config replaying the mount after a restart
(data persists), an external fusermount3 -u noticed by the daemon, and
SIGTERM with a live mount: exit 0, mount gone, store unloaded cleanly (the
next mount finds the data). max_inodes: blobfs_create and blobfs_mount's
format_if_empty set statvfs's inode count (0 keeps the default), save_config
keeps it and a replay onto a blank bdev formats with it, and bad values
(negative, not an integer, above 2^24) are JSON-RPC errors that leave the
bdev alone. prealloc_md: the same three ways, the sparse image holds the
metadata region once formatted (and does not without it). A bdev deleted under a live mount ends the mount at once (open
files get ENOTCONN, the delete answers) and the same bytes mount again with
their fsynced data.

Exit 0 on pass, 1 on failure, 77 to skip (reason on the last line).
"""
import atexit
import errno
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

RPC_PY = os.path.join(fl.ROOT, "scripts", "rpc.py")
sys.path.insert(0, os.path.join(fl.ROOT, "scripts"))
from rpc.client import JSONRPCClient, JSONRPCError  # noqa: E402
USTORD = os.path.join(fl.BIN, "ustord")
daemons = []


def cleanup():
    for d in daemons:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
    for mnt in mounts_to_clean:
        if fl.is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", "-z", mnt], capture_output=True)
    fl.cleanup()


mounts_to_clean = []
atexit.register(cleanup)
fl.require_fuse()
if not os.path.exists(USTORD):
    fl.skip("ustord is not built in " + fl.BUILDDIR)


class Daemon:
    def __init__(self, sock, *args, cwd=None):
        self.sock = sock
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([USTORD, "--no-huge", "-r", sock] + list(args),
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd)
        daemons.append(self)
        deadline = time.time() + 60
        while not os.path.exists(sock):
            if self.proc.poll() is not None:
                fail("ustord exited %d:\n%s" % (self.proc.returncode, self.output()))
            if time.time() > deadline:
                fail("ustord did not start:\n" + self.output())
            time.sleep(0.05)

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def rpc(self, *args, ok=True):
        r = subprocess.run([sys.executable, RPC_PY, "-s", self.sock, "-t", "120"] + list(args),
                           capture_output=True, text=True)
        if ok and r.returncode != 0:
            fail("rpc.py %s: %s\n%s" % (" ".join(args), r.stderr, self.output()))
        if not ok:
            check(r.returncode != 0, "rpc.py %s should have failed" % " ".join(args))
            return r.stderr
        out = r.stdout.strip()
        if not out:
            return None
        try:
            return json.loads(out)
        except ValueError:
            return out  # rpc.py prints a plain string bare

    def rpc_error(self, method, params):
        """Call method with raw params (values rpc.py would refuse); return its error."""
        try:
            with JSONRPCClient(self.sock, 120) as client:
                result = client.call(method, params)
        except JSONRPCError as e:
            return e
        fail("%s %r succeeded: %r" % (method, params, result))

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            fail("ustord did not stop:\n" + self.output())
        check(rc == 0, "ustord exited %d:\n%s" % (rc, self.output()))
        daemons.remove(self)
        return self.output()


def blank_image(path, size=64 << 20):
    with open(path, "wb") as f:
        f.truncate(size)


def inodes(mnt):
    st = os.statvfs(mnt)
    return st.f_files, st.f_ffree


def replay_saved(d, sock, cfg, img, mnt, params, what):
    """save_config holds one blobfs_mount with exactly params; stop the
    daemon, blank img and start a daemon from the saved config, which must
    mount at mnt again. The new daemon."""
    config = d.rpc("save_config")
    calls = {s["subsystem"]: s["config"] for s in config["subsystems"]}["blobfs"]
    check(calls == [{"method": "blobfs_mount", "params": params}],
          "blobfs config with %s: %r" % (what, calls))
    with open(cfg, "w") as f:
        json.dump(config, f)
    d.stop()
    blank_image(img)
    d = Daemon(sock, "-c", cfg)
    check(fl.is_mounted(mnt), "not mounted from the saved config (%s)" % what)
    return d


def check_max_inodes(work, sock):
    """max_inodes through blobfs_create, blobfs_mount and save_config."""
    img, img2 = os.path.join(work, "img_inodes"), os.path.join(work, "img_inodes2")
    mnt, mnt2 = os.path.join(work, "mnt_inodes"), os.path.join(work, "mnt_inodes2")
    cfg = os.path.join(work, "saved_inodes.json")
    for m in (mnt, mnt2):
        os.mkdir(m)
        mounts_to_clean.append(m)
    blank_image(img)
    blank_image(img2)

    d = Daemon(sock)
    d.rpc("bdev_aio_create", img, "fs0", "4096")
    d.rpc("blobfs_create", "fs0", "--max-inodes", "300")
    d.rpc("blobfs_mount", "fs0", mnt)
    # the super blob and the root directory hold two slots
    check(inodes(mnt) == (300, 298), "blobfs_create max_inodes 300: %r" % (inodes(mnt),))
    d.rpc("blobfs_umount", mnt)

    # 0 is the blobstore's default: one slot per 4 of the image's 1023 clusters
    d.rpc("blobfs_create", "fs0")
    d.rpc("blobfs_mount", "fs0", mnt)
    check(inodes(mnt) == (255, 253), "blobfs_create default: %r" % (inodes(mnt),))
    with open(os.path.join(mnt, "kept"), "w") as f:
        f.write("kept")
    d.rpc("blobfs_umount", mnt)

    # bad values: a JSON-RPC error, and the bdev is not formatted
    for bad in (-1, "100", 1.5, True, (1 << 24) + 1, 1 << 32):
        for method, params in (("blobfs_create", {"bdev_name": "fs0"}),
                               ("blobfs_mount", {"bdev_name": "fs0", "mountpoint": mnt,
                                                 "format_if_empty": True})):
            params["max_inodes"] = bad
            e = d.rpc_error(method, params)
            check(e.code == -32602, "%s max_inodes %r: %s %s" % (method, bad, e.code, e.message))
            check("max_inodes" in e.message, "%s max_inodes %r: %s" % (method, bad, e.message))
            check(not fl.is_mounted(mnt), "%s max_inodes %r mounted" % (method, bad))
    d.rpc("blobfs_mount", "fs0", mnt)
    with open(os.path.join(mnt, "kept")) as f:
        check(f.read() == "kept", "a refused max_inodes reformatted the bdev")
    check(inodes(mnt)[0] == 255, "inodes after the refused calls: %r" % (inodes(mnt),))
    d.rpc("blobfs_umount", mnt)

    # format_if_empty formats with max_inodes, and save_config keeps it
    d.rpc("bdev_aio_create", img2, "fs1", "4096")
    d.rpc("blobfs_mount", "fs1", mnt2, "--format-if-empty", "--max-inodes", "500")
    check(inodes(mnt2) == (500, 498), "blobfs_mount max_inodes 500: %r" % (inodes(mnt2),))
    # the replay onto a blank bdev formats with the saved count
    d = replay_saved(d, sock, cfg, img2, mnt2, {
        "bdev_name": "fs1", "mountpoint": mnt2, "format_if_empty": True, "max_inodes": 500},
        "max_inodes")
    check(inodes(mnt2) == (500, 498), "replayed max_inodes: %r" % (inodes(mnt2),))
    d.stop()
    for p in (img, img2, cfg):
        os.unlink(p)
    for m in (mnt, mnt2):
        os.rmdir(m)


def allocated(path):
    return os.stat(path).st_blocks * 512


def check_prealloc_md(work, sock):
    """prealloc_md through blobfs_create, blobfs_mount and save_config: the
    sparse image holds the whole metadata region (two root pages and at
    least one pool page per inode) once formatted, and a bad value is a
    JSON-RPC error that formats nothing."""
    img, mnt = os.path.join(work, "img_pre"), os.path.join(work, "mnt_pre")
    cfg = os.path.join(work, "saved_pre.json")
    region = 3 * 1000 * 4096
    os.mkdir(mnt)
    mounts_to_clean.append(mnt)
    blank_image(img)

    d = Daemon(sock)
    d.rpc("bdev_aio_create", img, "fs0", "4096")
    for bad in ("yes", 1, None):
        e = d.rpc_error("blobfs_create", {"bdev_name": "fs0", "prealloc_md": bad})
        check(e.code == -32602, "blobfs_create prealloc_md %r: %s %s" % (bad, e.code, e.message))
    check(allocated(img) == 0, "a refused prealloc_md wrote %d bytes" % allocated(img))
    d.rpc("blobfs_create", "fs0", "--max-inodes", "1000")
    check(allocated(img) < region, "lazy blobfs_create: %d bytes, region %d" %
          (allocated(img), region))
    blank_image(img)
    d.rpc("blobfs_create", "fs0", "--max-inodes", "1000", "--prealloc-md")
    check(allocated(img) >= region, "blobfs_create prealloc_md: %d bytes, region %d" %
          (allocated(img), region))
    d.rpc("blobfs_mount", "fs0", mnt)
    check(inodes(mnt) == (1000, 998), "prealloc_md store: %r" % (inodes(mnt),))
    d.rpc("blobfs_umount", mnt)

    # format_if_empty with prealloc_md, kept by save_config and replayed
    blank_image(img)
    d.rpc("blobfs_mount", "fs0", mnt, "--format-if-empty", "--max-inodes", "1000",
          "--prealloc-md")
    check(allocated(img) >= region, "blobfs_mount prealloc_md: %d bytes, region %d" %
          (allocated(img), region))
    d = replay_saved(d, sock, cfg, img, mnt, {
        "bdev_name": "fs0", "mountpoint": mnt, "format_if_empty": True, "max_inodes": 1000,
        "prealloc_md": True}, "prealloc_md")
    check(allocated(img) >= region, "replayed prealloc_md: %d bytes, region %d" %
          (allocated(img), region))
    d.stop()
    for p in (img, cfg):
        os.unlink(p)
    os.rmdir(mnt)


def main():
    work = fl.tmpdir("fuse_rpc")
    img = os.path.join(work, "img")
    mnt = os.path.join(work, "mnt")
    sock = os.path.join(work, "rpc.sock")
    cfg = os.path.join(work, "saved.json")
    os.mkdir(mnt)
    mounts_to_clean.append(mnt)
    with open(img, "wb") as f:
        f.truncate(1 << 30)

    d = Daemon(sock)
    d.rpc("bdev_aio_create", img, "fs0", "4096")
    d.rpc("blobfs_mount", "fs0", mnt, "--format-if-empty", "-o", "default_permissions")
    check(fl.is_mounted(mnt), "blobfs_mount did not mount")
    with open(os.path.join(mnt, "hello"), "w") as f:
        f.write("world")
    mounts = d.rpc("blobfs_get_mounts")
    check(len(mounts) == 1 and mounts[0]["mountpoint"] == mnt and mounts[0]["live"]
          and mounts[0]["bdev_name"] == "fs0", "blobfs_get_mounts: %r" % mounts)
    check(mounts[0]["stats"]["requests"] > 0, "requests counted")
    err = d.rpc("blobfs_mount", "fs0", mnt, ok=False)
    check("already mounted" in err, "second mount: " + err)

    # busy: refused and still serving; then accepted
    fd = os.open(os.path.join(mnt, "hello"), os.O_RDONLY)
    err = d.rpc("blobfs_umount", mnt, ok=False)
    check("busy" in err, "umount of a busy mount: " + err)
    check(os.pread(fd, 10, 0) == b"world", "still serving after the refused umount")
    os.close(fd)
    d.rpc("blobfs_umount", mnt)
    check(not fl.is_mounted(mnt), "blobfs_umount left the mount")
    check(d.rpc("blobfs_get_mounts") == [], "mount list after umount")

    # mount again: data is there (the blank check must not reformat)
    d.rpc("blobfs_mount", "fs0", mnt, "--format-if-empty")
    with open(os.path.join(mnt, "hello")) as f:
        check(f.read() == "world", "data after umount/mount")
    d.rpc("blobfs_umount", mnt)

    # blobfs_create reformats
    d.rpc("blobfs_create", "fs0")
    d.rpc("blobfs_mount", "fs0", mnt, "-o", "default_permissions,attr_timeout=5")
    check(os.listdir(mnt) == [], "reformatted file system is empty: %r" % os.listdir(mnt))
    os.mkdir(os.path.join(mnt, "dir"))
    with open(os.path.join(mnt, "dir", "kept"), "wb") as f:
        f.write(b"k" * 100000)

    # save_config carries the mount, without anything that would reformat
    config = d.rpc("save_config")
    with open(cfg, "w") as f:
        json.dump(config, f)
    subs = {s["subsystem"]: s["config"] for s in config["subsystems"]}
    check("blobfs" in subs, "no blobfs subsystem in save_config")
    calls = subs["blobfs"]
    check(calls == [{"method": "blobfs_mount", "params": {
        "bdev_name": "fs0", "mountpoint": mnt, "options": "default_permissions,attr_timeout=5"}}],
        "blobfs config: %r" % calls)
    order = [s["subsystem"] for s in config["subsystems"]]
    check(order.index("bdev") < order.index("blobfs"), "blobfs after bdev: %r" % order)

    # SIGTERM with a live mount: clean exit, mount gone
    out = d.stop()
    check(not fl.is_mounted(mnt), "mount left after SIGTERM")
    check("did not unmount cleanly" not in out, "unclean unmount:\n" + out)

    # restart from the saved config: mounted again, data there
    d = Daemon(sock, "-c", cfg)
    check(fl.is_mounted(mnt), "not mounted from the saved config")
    with open(os.path.join(mnt, "dir", "kept"), "rb") as f:
        check(f.read() == b"k" * 100000, "data after restart")

    # external unmount: the daemon notices and keeps running
    r = subprocess.run(["fusermount3", "-u", mnt], capture_output=True, text=True)
    check(r.returncode == 0, "fusermount3 -u: " + r.stderr)
    deadline = time.time() + 30
    while d.rpc("blobfs_get_mounts") != []:
        check(time.time() < deadline, "daemon did not notice the external unmount")
        time.sleep(0.1)
    check(d.proc.poll() is None, "ustord died after the external unmount")
    d.rpc("blobfs_mount", "fs0", mnt)
    with open(os.path.join(mnt, "dir", "kept"), "rb") as f:
        check(f.read() == b"k" * 100000, "data after the external unmount")

    # the bdev deleted under the live mount with a file open: the delete
    # answers, the mount ends (the open file gets ENOTCONN), the daemon
    # serves on, and the same bytes mount again with the fsynced data
    with open(os.path.join(mnt, "synced"), "wb") as f:
        f.write(b"s" * 5000)
        f.flush()
        os.fsync(f.fileno())
    fd = os.open(os.path.join(mnt, "synced"), os.O_RDONLY)
    d.rpc("bdev_aio_delete", "fs0")
    check(d.rpc("blobfs_get_mounts") == [], "mount listed after its bdev went")
    check(not fl.is_mounted(mnt), "kernel mount left after its bdev went")
    try:
        os.pread(fd, 10, 0)
        fail("a file open on the mount of a deleted bdev still reads")
    except OSError as e:
        check(e.errno == errno.ENOTCONN, "read after the bdev went: %r" % e)
    os.close(fd)
    out = d.output()
    check("bdev fs0 is being removed; unmounting" in out, "no word of the removal:\n" + out)
    d.rpc("bdev_aio_create", img, "fs0", "4096")
    d.rpc("blobfs_mount", "fs0", mnt)
    with open(os.path.join(mnt, "synced"), "rb") as f:
        check(f.read() == b"s" * 5000, "fsynced data after the bdev came back")
    with open(os.path.join(mnt, "dir", "kept"), "rb") as f:
        check(f.read() == b"k" * 100000, "data after the bdev came back")
    d.stop(signal.SIGINT)
    check(not fl.is_mounted(mnt), "mount left after SIGINT")

    # etc/ustor.json (make run's file system): relative paths, formatted on first use
    os.mkdir(os.path.join(work, "var"))
    run_img = os.path.join(work, "var", "ustor.img")
    with open(run_img, "wb") as f:
        f.truncate(8 << 30)
    for start in (1, 2):
        d = Daemon(sock, "-c", os.path.join(fl.ROOT, "etc", "ustor.json"), cwd=work)
        check(fl.is_mounted(mnt), "etc/ustor.json did not mount ./mnt")
        if start == 1:
            with open(os.path.join(mnt, "first"), "w") as f:
                f.write("run")
        else:
            with open(os.path.join(mnt, "first")) as f:
                check(f.read() == "run", "second start reformatted the image")
        check(d.rpc("blobfs_get_mounts")[0]["mountpoint"] == mnt, "absolute mountpoint")
        d.stop()
    os.unlink(run_img)
    os.rmdir(os.path.join(work, "var"))

    check_max_inodes(work, sock)
    check_prealloc_md(work, sock)
    for p in (img, cfg):
        os.unlink(p)
    os.rmdir(mnt)
    os.rmdir(work)
    print("PASS")


if __name__ == "__main__":
    main()
