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

Exit 0 pass, 1 fail, 77 skip.
"""
import atexit
import errno
import os
import sys

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

    print("-- image truncated under the mount")
    truncated_image(work)
    print("PASS")


if __name__ == "__main__":
    main()
