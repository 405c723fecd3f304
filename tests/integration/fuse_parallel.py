#!/usr/bin/env python3
"""Many requests in flight at once on a blobfs FUSE mount, with content checks.

The mount's thread reads /dev/fuse itself and runs each request inline; a
WRITE of 64 KiB or more keeps the buffer it was read into until it is
answered, smaller ones are copied out. This drives both kinds at once from
several processes and threads, so that answers come back out of order and
receive buffers are handed over while other requests are read:

 1. 4 processes x 3 threads each write their own slices of one shared file
    (pwrite, O_DIRECT and buffered, sizes from 4 KiB to 1 MiB + 4 KiB
    unaligned) and of private files, then read everything back; each byte
    must be what its writer wrote.
 2. The same processes create, stat, rename and unlink files in one shared
    directory; the final listing must be exactly the survivors.
 3. Durability at close (FLUSH is answered ENOSYS, so close sends nothing):
    a file written then fsync'd then closed, and a file written then only
    closed, are both intact after an unmount and a remount, and a file
    closed by one process reads back complete from another at once.

Exit 0 on pass, 1 on failure, 77 to skip (reason on the last line).
"""
import atexit
import hashlib
import mmap
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuse_lib as fl  # noqa: E402
from fuse_lib import check  # noqa: E402

atexit.register(fl.cleanup)
fl.require_fuse()

KIB = 1 << 10
MIB = 1 << 20
PROCS = 4
THREADS = 3
# (offset within a thread's slice, size, O_DIRECT?)
PIECES = [(0, 4 * KIB, True), (4 * KIB, 60 * KIB, False), (64 * KIB, 64 * KIB, True),
          (128 * KIB, MIB, True), (128 * KIB + MIB, MIB + 4 * KIB + 17, False),
          (3 * MIB, 256 * KIB, True)]
SLICE = 4 * MIB


def data(tag, size):
    """Deterministic bytes that differ between tags and positions."""
    seed = hashlib.sha256(tag.encode()).digest()
    reps = size // len(seed) + 1
    base = (seed * reps)[:size]
    return bytes((b + i // 4096) & 0xff for i, b in enumerate(base[:8192])) + base[8192:]


def aligned(buf):
    m = mmap.mmap(-1, (len(buf) + 4095) // 4096 * 4096)
    m.write(buf)
    return m


def pwrite_all(path, off, buf, direct):
    flags = os.O_WRONLY | (os.O_DIRECT if direct else 0)
    fd = os.open(path, flags)
    try:
        if direct:
            m = aligned(buf)
            n = os.pwritev(fd, [m], off)
            m.close()
        else:
            n = os.pwrite(fd, buf, off)
        if n != len(buf):
            raise OSError("short write %d of %d at %d" % (n, len(buf), off))
    finally:
        os.close(fd)


def pread_all(path, off, size, direct):
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECT if direct else 0))
    try:
        if direct:
            m = mmap.mmap(-1, (size + 4095) // 4096 * 4096)
            n = os.preadv(fd, [m], off)
            out = m[:min(n, size)]
            m.close()
            return out
        return os.pread(fd, size, off)
    finally:
        os.close(fd)


def thread_io(mnt, p, t, errors):
    shared = os.path.join(mnt, "shared")
    private = os.path.join(mnt, "p%d_t%d" % (p, t))
    try:
        fd = os.open(private, os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(fd)
        base = (p * THREADS + t) * SLICE
        for off, size, direct in PIECES:
            tag = "%d.%d.%d" % (p, t, off)
            pwrite_all(shared, base + off, data(tag, size), direct and size % 4096 == 0)
            pwrite_all(private, off, data(tag + "p", size), direct and size % 4096 == 0)
        for off, size, direct in PIECES:
            tag = "%d.%d.%d" % (p, t, off)
            d = direct and size % 4096 == 0
            got = pread_all(shared, base + off, size, d)
            if got != data(tag, size):
                errors.append("shared p%d t%d: %d bytes at %d differ" % (p, t, size, base + off))
            got = pread_all(private, off, size, d)
            if got != data(tag + "p", size):
                errors.append("private p%d t%d: %d bytes at %d differ" % (p, t, size, off))
    except OSError as e:
        errors.append("p%d t%d: %s" % (p, t, e))


def proc_io(mnt, p):
    errors = []
    ths = [threading.Thread(target=thread_io, args=(mnt, p, t, errors)) for t in range(THREADS)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return errors


def proc_meta(mnt, p):
    errors = []
    d = os.path.join(mnt, "meta")
    try:
        for i in range(200):
            name = os.path.join(d, "f%d_%d" % (p, i))
            fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.write(fd, b"%d %d\n" % (p, i))
            os.close(fd)
            st = os.stat(name)
            if st.st_size != len(b"%d %d\n" % (p, i)):
                errors.append("%s: size %d" % (name, st.st_size))
            if i % 3 == 0:
                os.unlink(name)
            elif i % 3 == 1:
                os.rename(name, name + ".r")
    except OSError as e:
        errors.append("meta p%d: %s" % (p, e))
    return errors


def in_children(fn, mnt):
    """Run fn(mnt, p) in PROCS forked processes at once; their error lists."""
    pids = []
    for p in range(PROCS):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            errs = fn(mnt, p)
            os.write(w, "\n".join(errs).encode())
            os._exit(0)
        os.close(w)
        pids.append((pid, r))
    errors = []
    for pid, r in pids:
        out = b""
        while True:
            b = os.read(r, 65536)
            if not b:
                break
            out += b
        os.close(r)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            errors.append("child %d exited with status %d" % (pid, status))
        if out:
            errors += out.decode().split("\n")
    return errors


def expect_meta():
    want = set()
    for p in range(PROCS):
        for i in range(200):
            if i % 3 == 1:
                want.add("f%d_%d.r" % (p, i))
            elif i % 3 == 2:
                want.add("f%d_%d" % (p, i))
    return want


def check_close_durability(mnt):
    synced = os.path.join(mnt, "synced")
    closed = os.path.join(mnt, "closed")
    a = data("synced", 3 * MIB + 123)
    b = data("closed", 2 * MIB + 45)
    fd = os.open(synced, os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, a)
    os.fsync(fd)
    os.close(fd)
    fd = os.open(closed, os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b)
    os.close(fd)
    # Another process sees the closed file complete at once.
    pid = os.fork()
    if pid == 0:
        with open(closed, "rb") as f:
            os._exit(0 if f.read() == b else 1)
    _, status = os.waitpid(pid, 0)
    check(status == 0, "another process read 'closed' differently right after close")
    return a, b


def main():
    work, img, mnt = fl.workdir("fuse_parallel")
    m = fl.Mount(img, mnt, fmt=True, size="1G")
    fd = os.open(os.path.join(mnt, "shared"), os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    os.mkdir(os.path.join(mnt, "meta"))

    errors = in_children(proc_io, mnt)
    check(not errors, "parallel I/O:\n" + "\n".join(errors[:20]))
    st = os.stat(os.path.join(mnt, "shared"))
    last = (PROCS * THREADS - 1) * SLICE + PIECES[-1][0] + PIECES[-1][1]
    check(st.st_size == last, "shared file size %d, expected %d" % (st.st_size, last))
    print("parallel I/O: %d processes x %d threads, %d pieces each: ok"
          % (PROCS, THREADS, len(PIECES)))

    errors = in_children(proc_meta, mnt)
    check(not errors, "parallel metadata:\n" + "\n".join(errors[:20]))
    got = set(os.listdir(os.path.join(mnt, "meta")))
    want = expect_meta()
    check(got == want, "meta listing: %d names, expected %d (missing %s, extra %s)"
          % (len(got), len(want), sorted(want - got)[:5], sorted(got - want)[:5]))
    print("parallel metadata: %d names left: ok" % len(got))

    a, b = check_close_durability(mnt)
    m.umount()

    m = fl.Mount(img, mnt)
    with open(os.path.join(mnt, "synced"), "rb") as f:
        check(f.read() == a, "'synced' differs after the remount")
    with open(os.path.join(mnt, "closed"), "rb") as f:
        check(f.read() == b, "'closed' differs after the remount")
    for p in range(PROCS):
        for t in range(THREADS):
            base = (p * THREADS + t) * SLICE
            for off, size, _ in PIECES:
                got = pread_all(os.path.join(mnt, "shared"), base + off, size, False)
                check(got == data("%d.%d.%d" % (p, t, off), size),
                      "shared p%d t%d: %d bytes at %d differ after the remount"
                      % (p, t, size, base + off))
    check(set(os.listdir(os.path.join(mnt, "meta"))) == expect_meta(),
          "meta listing differs after the remount")
    print("close, fsync and remount: ok")
    m.umount()
    print("PASS")


if __name__ == "__main__":
    main()
