#!/usr/bin/env python3
"""ustor-mount on a damaged image file (docs/blobfs-format.md section 9).

An image made by ustor-mount holds a small tree; the test then damages it
with the daemon stopped, locating blobfs's directory blocks by scanning the
image for their magic ("BFSD" at a 4096-byte boundary) and the names they
hold, and resealing each damaged block with a correct XXH3 checksum (from
the system's libxxhash), as a buggy writer or a crafted image would:

  1. one entry of directory "bad" gets an unknown type: the mount serves
     the tree, every name of "bad" reads as EIO (stat, open, create there),
     "bad" lists no entries, everything else reads back exactly and takes
     changes; unmount is clean (exit 0) and a second mount says the same;
  2. the root's block gets random bytes: the mount serves, the root's
     names read as EIO, the daemon stays up and unmounts cleanly;
  3. the store's superblock is overwritten: ustor-mount refuses, exits
     non-zero (not by a signal) with a message, and mounts nothing.

The daemon's log must never show a sanitizer report or a crash.

Exit 0 on pass, 1 on failure, 77 to skip (reason on the last line).
"""
import atexit
import ctypes
import errno
import os
import random
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuse_lib as fl  # noqa: E402
from fuse_lib import check, fail  # noqa: E402

atexit.register(fl.cleanup)
fl.require_fuse()

BLOCK = 4096
HDR = struct.Struct("<IBBHIIQQ")  # struct bfs_disk_dblock (32 bytes)
DENT = struct.Struct("<QQBB")     # struct bfs_disk_dentry (18 bytes)
MAGIC = 0x44534642                # "BFSD"
CRASH_WORDS = ("AddressSanitizer", "runtime error:", "LeakSanitizer", "Segmentation fault",
               "Aborted", "core dumped")

try:
    _xxh = ctypes.CDLL("libxxhash.so.0")
except OSError:
    fl.skip("libxxhash.so.0 is not installed (Debian package libxxhash0)")
_xxh.XXH3_64bits.restype = ctypes.c_uint64
_xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def reseal(blk):
    """The block with its checksum field set as a writer would (4.2)."""
    blk = bytearray(blk)
    blk[24:32] = b"\0" * 8
    blk[24:32] = struct.pack("<Q", _xxh.XXH3_64bits(bytes(blk), BLOCK))
    return bytes(blk)


def entries(blk):
    """(offset, ino, type, name) of each entry of a directory block."""
    magic, _depth, _r, nents, _index, _r2, _dir, _csum = HDR.unpack_from(blk)
    out, off = [], HDR.size
    for _ in range(nents):
        if off + DENT.size > BLOCK:
            break
        _cookie, ino, typ, nlen = DENT.unpack_from(blk, off)
        out.append((off, ino, typ, blk[off + DENT.size:off + DENT.size + nlen]))
        off += DENT.size + nlen
    return out


def find_block(img, name):
    """(file offset, block) of the valid directory block holding entry name."""
    with open(img, "rb") as f:
        data = f.read()
    for off in range(0, len(data) - BLOCK + 1, BLOCK):
        if struct.unpack_from("<I", data, off)[0] != MAGIC:
            continue
        blk = data[off:off + BLOCK]
        if reseal(blk) != blk:
            continue  # a stale copy (an intent's pre-image is in metadata, not here)
        if any(e[3] == name for e in entries(blk)):
            return off, blk
    fail("no directory block of %s holds %r" % (img, name))
    return None


def put_block(img, off, blk):
    with open(img, "r+b") as f:
        f.seek(off)
        f.write(blk)
        f.flush()
        os.fsync(f.fileno())


def no_crash(log, what):
    for w in CRASH_WORDS:
        check(w not in log, "%s: the daemon's log shows %r:\n%s" % (what, w, log))


def expect_errno(e, fn, *args):
    try:
        fn(*args)
    except OSError as x:
        check(x.errno == e, "%s%r: errno %d (%s), expected %d"
              % (fn.__name__, args, x.errno, x.strerror, e))
        return
    fail("%s%r succeeded on a damaged directory" % (fn.__name__, args))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
        os.fsync(f.fileno())


def make_image(img, mnt, rng):
    m = fl.Mount(img, mnt, fmt=True, size="256M")
    content = {}
    for d in ("good", "bad"):
        os.mkdir(os.path.join(mnt, d))
    for rel, size in (("good/keep", 70000), ("f_ok", 5000), ("bad/x1", 300), ("bad/x2", 4096)):
        content[rel] = rng.randbytes(size)
        write(os.path.join(mnt, rel), content[rel])
    os.symlink("good/keep", os.path.join(mnt, "ln"))
    no_crash(m.umount(), "making the image")
    return content


def check_intact(mnt, content, skip=()):
    for rel, data in content.items():
        if rel.split("/")[0] in skip:
            continue
        check(read(os.path.join(mnt, rel)) == data, "%s differs from what was written" % rel)


def damaged_dir_served(img, mnt, content):
    """Case 1: an entry of "bad" with an unknown type, resealed."""
    off, blk = find_block(img, b"x1")
    e = [x for x in entries(blk) if x[3] == b"x1"][0]
    blk = bytearray(blk)
    blk[e[0] + 16] = 99  # the entry's type
    put_block(img, off, reseal(bytes(blk)))
    for rnd in range(2):
        m = fl.Mount(img, mnt)
        bad = os.path.join(mnt, "bad")
        check(os.path.isdir(bad), "bad is no directory any more")
        check(os.listdir(bad) == [], "the damaged bucket lists %r" % os.listdir(bad))
        for name in ("x1", "x2"):
            expect_errno(errno.EIO, os.stat, os.path.join(bad, name))
            expect_errno(errno.EIO, read, os.path.join(bad, name))
        expect_errno(errno.EIO, write, os.path.join(bad, "new"), b"n")
        check_intact(mnt, content, skip=("bad",))
        check(os.readlink(os.path.join(mnt, "ln")) == "good/keep", "the symlink changed")
        # the undamaged part still takes changes, and keeps them
        write(os.path.join(mnt, "good", "new%d" % rnd), b"after damage %d" % rnd)
        content["good/new%d" % rnd] = b"after damage %d" % rnd
        no_crash(m.umount(), "serving a damaged directory")


def damaged_root_served(img, mnt, rng):
    """Case 2: the root's block full of random bytes, resealed."""
    off, blk = find_block(img, b"good")
    blk = blk[:HDR.size] + rng.randbytes(BLOCK - HDR.size)
    put_block(img, off, reseal(blk))
    m = fl.Mount(img, mnt)
    expect_errno(errno.EIO, os.stat, os.path.join(mnt, "good"))
    expect_errno(errno.EIO, os.stat, os.path.join(mnt, "f_ok"))
    check(os.path.isdir(mnt), "the mount point is gone")
    os.listdir(mnt)  # lists what it can: no error, no crash
    no_crash(m.umount(), "serving a damaged root")


def damaged_store_refused(img, mnt, rng):
    """Case 3: the superblock overwritten: a clear refusal."""
    with open(img, "r+b") as f:
        f.write(rng.randbytes(512))
    args = [os.path.join(fl.BIN, "ustor-mount"), "-f", "--no-huge", "--image", img, mnt]
    p = subprocess.run(args, capture_output=True, text=True, timeout=fl.MOUNT_TIMEOUT)
    log = p.stdout + p.stderr
    check(not fl.is_mounted(mnt), "a store with a damaged superblock was mounted")
    check(p.returncode > 0, "ustor-mount exited %d (a signal?) on a damaged store:\n%s"
          % (p.returncode, log))
    check("error" in log.lower() or "ERROR" in log, "the refusal says nothing:\n%s" % log)
    no_crash(log, "refusing a damaged store")


def main():
    seed = int(os.environ.get("USTOR_FUSE_BAD_IMAGE_SEED", str(int(time.time()))))
    print("seed %d (USTOR_FUSE_BAD_IMAGE_SEED)" % seed)
    rng = random.Random(seed)
    work, img, mnt = fl.workdir("badimg")
    content = make_image(img, mnt, rng)
    damaged_dir_served(img, mnt, content)
    damaged_root_served(img, mnt, rng)
    damaged_store_refused(img, mnt, rng)
    print("PASS")


main()
