#!/usr/bin/env python3
"""fallocate(2) on a blobfs FUSE mount really reserves space.

On a small (64 MiB) image: posix_fallocate (mode 0) of a 24 MiB file makes
statvfs free space drop by at least 24 MiB and st_blocks cover it, the file
reads as zeros; FALLOC_FL_KEEP_SIZE of 8 MiB more drops it again without
changing the size. Then another file is written until the file system is
full (ENOSPC), and the whole reserved range of the first file can still be
written and read back (no ENOSPC: its clusters were allocated). Both survive
a remount; unlinking gives the space back.

Exit 0 on pass, 1 on failure, 77 to skip (reason on the last line).
"""
import atexit
import ctypes
import errno
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuse_lib as fl  # noqa: E402
from fuse_lib import check  # noqa: E402

atexit.register(fl.cleanup)
fl.require_fuse()

libc = ctypes.CDLL(None, use_errno=True)
FALLOC_FL_KEEP_SIZE = 1
MIB = 1 << 20


def free_bytes(mnt):
    sv = os.statvfs(mnt)
    return sv.f_bfree * sv.f_frsize


def fallocate(fd, mode, off, length):
    if libc.fallocate(fd, mode, ctypes.c_long(off), ctypes.c_long(length)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def pattern(i):
    return bytes([(i * 7 + 1) & 0xff]) * MIB


def main():
    work, img, mnt = fl.workdir("fuse_fallocate")
    m = fl.Mount(img, mnt, fmt=True, size="64M")
    res = os.path.join(mnt, "reserved")
    fd = os.open(res, os.O_CREAT | os.O_RDWR, 0o644)
    before = free_bytes(mnt)
    os.posix_fallocate(fd, 0, 24 * MIB)
    after = free_bytes(mnt)
    st = os.fstat(fd)
    print("free %d -> %d bytes, st_blocks %d" % (before, after, st.st_blocks))
    check(st.st_size == 24 * MIB, "fallocate mode 0: size %d" % st.st_size)
    check(before - after >= 24 * MIB, "fallocate mode 0: free space dropped by %d only"
          % (before - after))
    check(st.st_blocks * 512 >= 24 * MIB, "fallocate mode 0: st_blocks %d" % st.st_blocks)
    check(os.pread(fd, MIB, 5 * MIB) == bytes(MIB), "fallocated range reads zeros")
    before = free_bytes(mnt)
    fallocate(fd, FALLOC_FL_KEEP_SIZE, 24 * MIB, 8 * MIB)
    after = free_bytes(mnt)
    check(os.fstat(fd).st_size == 24 * MIB, "KEEP_SIZE changed the size")
    check(before - after >= 8 * MIB, "KEEP_SIZE: free space dropped by %d only" % (before - after))
    os.fsync(fd)

    # fill everything else
    filler = os.path.join(mnt, "filler")
    ffd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o644)
    written = 0
    try:
        while True:
            written += os.write(ffd, pattern(99))
    except OSError as e:
        check(e.errno == errno.ENOSPC, "filling: %s, expected ENOSPC" % e)
    os.close(ffd)
    print("filler took %d MiB until ENOSPC" % (written // MIB))
    check(written > 0, "nothing could be written besides the reservation")

    # the reserved 32 MiB take writes anyway
    for i in range(32):
        check(os.pwrite(fd, pattern(i), i * MIB) == MIB, "write %d into the reservation" % i)
    os.fsync(fd)
    os.close(fd)
    check(os.stat(res).st_size == 32 * MIB, "writes past KEEP_SIZE grew the file")
    m.umount()
    m = fl.Mount(img, mnt)
    with open(res, "rb") as f:
        for i in range(32):
            check(f.read(MIB) == pattern(i), "reserved file after remount, MiB %d" % i)
    before = free_bytes(mnt)
    os.unlink(res)
    os.unlink(filler)
    check(free_bytes(mnt) - before >= 32 * MIB + written, "unlink gave back %d bytes only"
          % (free_bytes(mnt) - before))
    m.umount()
    print("PASS")


if __name__ == "__main__":
    main()
