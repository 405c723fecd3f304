#!/usr/bin/env python3
"""Zero-copy reads through the FUSE mount (fuse_ops.c cb_read_lend).

On an image in tmpfs, READ is answered straight from the image's mapping
(ust_blobfs_read_lend): the bytes read back equal what was written - data,
a hole in the file, an unaligned end - and the mount's stats say every byte
read was lent. On an image outside tmpfs the bdev cannot lend: the same
reads come from the usual path and nothing is counted as lent. And when the
image is truncated behind the mount's back, a read of the lost part fails
with EIO (the kernel's copy from the vanished pages faults), the daemon
survives it, answers the next request and unmounts.

Large READ answers (512 KiB or more) are written by a worker off the
reactor while blobfs holds the lent bytes: O_DIRECT reads of 1 MiB racing
O_DIRECT rewrites and truncates of the same blocks each return one whole
generation of their block, or zeros past a cut, never a mix; where the
test may use a CPU besides the reactor's (CPU 0), the worker answered
some of them (reads_replied_off); with --worker-mask 0 none did, and the
bytes are the same.

Exit 0 pass, 1 fail, 77 skip.
"""
import atexit
import errno
import mmap
import os
import random
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuse_lib as fl  # noqa: E402
from fuse_posix import rpc  # noqa: E402

MIB = 1 << 20


def pattern(n, seed):
    return bytes((i * 131 + seed) & 0xFF for i in range(256)) * (n // 256) + bytes(n % 256)


def drop_caches():
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("1\n")


def write_sparse(path):
    """3 MiB of data, a 2 MiB hole, then 1 MiB + 777 bytes: the model bytes."""
    head, tail = pattern(3 * MIB, 1), pattern(MIB + 777, 2)
    with open(path, "wb") as f:
        f.write(head)
        f.seek(5 * MIB)
        f.write(tail)
        f.flush()
        os.fsync(f.fileno())
    return head + bytes(2 * MIB) + tail


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def stats(sock):
    mounts = rpc(sock, "blobfs_get_mounts")
    fl.check(len(mounts) == 1, "blobfs_get_mounts: %r" % mounts)
    return mounts[0]["stats"]


def read_back(work, img, mnt, tag):
    """Write, drop the page cache, read back through READ; the stats before and after."""
    sock = os.path.join(work, tag + ".sock")
    m = fl.Mount(img, mnt, fmt=True, size="1G", extra=["-r", sock])
    model = write_sparse(os.path.join(mnt, "f"))
    drop_caches()
    before = stats(sock)
    got = read_all(os.path.join(mnt, "f"))
    after = stats(sock)
    fl.check(got == model, "%s: the file read back differs from what was written" % tag)
    m.umount()
    read = after["bytes_read"] - before["bytes_read"]
    lent = after["bytes_read_lent"] - before["bytes_read_lent"]
    fl.check(read >= len(model), "%s: %d bytes read through FUSE, file has %d" % (tag, read, len(model)))
    return read, lent


def block(gen, i):
    """Block i of generation gen: the pair repeated, so any mix of two is seen."""
    return struct.pack("<II", gen, i) * (MIB // 8)


def racing_reads(work, img, mnt):
    """1 MiB O_DIRECT reads while other threads rewrite and truncate the same blocks."""
    sock = os.path.join(work, "race.sock")
    m = fl.Mount(img, mnt, fmt=True, size="1G", extra=["-r", sock])
    path = os.path.join(mnt, "r")
    nblocks, stop, errors, reads = 4, threading.Event(), [], [0]

    def pwrite_direct(fd, data, off):
        buf = mmap.mmap(-1, len(data))
        buf.write(data)
        try:
            return os.pwrite(fd, buf, off)
        finally:
            buf.close()

    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    for i in range(nblocks):
        fl.check(pwrite_direct(fd, block(1, i), i * MIB) == MIB, "short layout write")

    def writer():
        gen = 2
        try:
            while not stop.is_set():
                for i in range(nblocks):
                    pwrite_direct(fd, block(gen, i), i * MIB)
                if gen % 5 == 0:  # cut into the last block, then lay it out again
                    os.ftruncate(fd, (nblocks - 1) * MIB + MIB // 2)
                    pwrite_direct(fd, block(gen, nblocks - 1), (nblocks - 1) * MIB)
                gen += 1
        except OSError as e:
            errors.append("writer: %s" % e)

    def reader(seed):
        rnd = random.Random(seed)
        buf = mmap.mmap(-1, MIB)
        rfd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        try:
            while not stop.is_set():
                i = rnd.randrange(nblocks)
                n = os.preadv(rfd, [buf], i * MIB)
                got = buf[:n]
                gen = struct.unpack_from("<I", got, 0)[0] if n >= 8 else 0
                want = block(gen, i)[:n]
                # past a truncate: the block's first half of one generation, zeros after it
                if got != want and not (got[:MIB // 2] == want[:MIB // 2] and
                                        got[MIB // 2:] == bytes(n - MIB // 2)):
                    errors.append("block %d: %d bytes, not one generation (first %r)"
                                  % (i, n, got[:16]))
                    return
                reads[0] += 1
        except OSError as e:
            errors.append("reader: %s" % e)
        finally:
            os.close(rfd)
            buf.close()

    s0 = stats(sock)
    threads = [threading.Thread(target=writer)] + \
        [threading.Thread(target=reader, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join()
    os.close(fd)
    s1 = stats(sock)
    fl.check(not errors, "racing reads: %s" % "; ".join(errors[:3]))
    fl.check(reads[0] > 50, "only %d racing reads completed" % reads[0])
    off = s1["reads_replied_off"] - s0["reads_replied_off"]
    print("   %d reads, %d answered off the reactor" % (reads[0], off))
    # The reactor is on CPU 0; with another CPU usable the worker answers some.
    # (Without one it may still run: only a cgroup's cpuset keeps it out.)
    if os.sched_getaffinity(0) - {0}:
        fl.check(off > 0, "no READ answered off the reactor")
    fl.check(m.proc.poll() is None, "ustor-mount died:\n" + m.output())
    m.umount()


def no_workers(work, img, mnt):
    """--worker-mask 0: no worker, every answer written on the reactor, the bytes the same."""
    sock = os.path.join(work, "nowk.sock")
    m = fl.Mount(img, mnt, fmt=True, size="1G", extra=["-r", sock, "--worker-mask", "0"])
    path = os.path.join(mnt, "w")
    data = b"".join(block(1, i) for i in range(4))
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    s0 = stats(sock)
    buf = mmap.mmap(-1, MIB)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        for i in range(4):
            n = os.preadv(fd, [buf], i * MIB)
            fl.check(n == MIB and buf[:n] == block(1, i), "--worker-mask 0: block %d differs" % i)
    finally:
        os.close(fd)
        buf.close()
    s1 = stats(sock)
    fl.check(s1["reads_replied_off"] == s0["reads_replied_off"],
             "--worker-mask 0: %d answers written off the reactor"
             % (s1["reads_replied_off"] - s0["reads_replied_off"]))
    fl.check("no worker CPU" in m.output(), "--worker-mask 0 not reported:\n" + m.output())
    m.umount()


def truncated_image(work):
    """The image cut short under a live mount: EIO for the lost bytes, no crash, no hang."""
    img = os.path.join(work, "cut.img")
    mnt = os.path.join(work, "cutmnt")
    os.mkdir(mnt)
    m = fl.Mount(img, mnt, fmt=True, size="1G")
    data = pattern(8 * MIB, 3)
    with open(os.path.join(mnt, "g"), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    drop_caches()
    # The file's clusters lie past the metadata; 4 MiB keeps the store's start.
    os.truncate(img, 4 * MIB)
    try:
        read_all(os.path.join(mnt, "g"))
        fl.fail("reading a file whose image was truncated succeeded")
    except OSError as e:
        fl.check(e.errno == errno.EIO, "read after truncation: %s, expected EIO" % e)
    fl.check(m.proc.poll() is None, "ustor-mount died:\n" + m.output())
    fl.check("vanished from under the reply" in m.output(),
             "no error logged for the faulted read:\n" + m.output())
    fl.check(os.path.isdir(mnt) and "g" in os.listdir(mnt), "the mount stopped answering")
    fl.umount_after_fault(m)


def main():
    fl.require_fuse()
    atexit.register(fl.cleanup)
    work, img, mnt = fl.workdir("fuse_read_lend")
    print("-- image in tmpfs: reads are lent")
    read, lent = read_back(work, img, mnt, "tmpfs")
    # All but the last cluster's: its zero fill punched the image there (a
    # tmpfs hole), and a read of a hole takes the usual path.
    fl.check(read - 64 * 1024 <= lent <= read,
             "tmpfs image: %d of %d bytes read were lent" % (lent, read))
    os.unlink(img)

    print("-- image outside tmpfs: reads are copied")
    disk = fl.tmpdir_on("/var/tmp", "fuse_read_lend")
    if disk is None:
        print("(no non-tmpfs directory to hold an image: skipped)")
    else:
        read, lent = read_back(disk, os.path.join(disk, "img"), mnt, "disk")
        fl.check(lent == 0, "disk image: %d bytes counted as lent" % lent)

    print("-- large reads answered off the reactor, racing rewrites and truncates")
    racing_reads(work, img, mnt)
    os.unlink(img)

    print("-- --worker-mask 0: every answer on the reactor")
    no_workers(work, img, mnt)
    os.unlink(img)

    print("-- image truncated under the mount")
    truncated_image(work)
    print("PASS")


if __name__ == "__main__":
    main()
