#!/usr/bin/env python3
"""Zero-copy writes through the FUSE mount (fuse_dev.c splice mode,
fuse_ops.c fop_write_from_pipe, ust_blobfs_write_fill).

Splicing needs a 2 MiB pipe: fs.pipe-max-size is raised to that for the
test (scripts/setup.sh does the same) and put back at the end. On an image
in tmpfs, once large WRITEs come the transport splices them and a rewrite
of allocated space - buffered or O_DIRECT - is stored straight from the
pipe into the image's mapping; everything else that arrives spliced (small
writes, unaligned writes, writes that extend the file, metadata requests)
must still be served exactly as before. Every step is checked against a
model of the file: read back through the page cache-free path (O_DIRECT),
after fsync, and after a remount. The mount's stats must say that the
rewrites were stored in place. On an image outside tmpfs the bdev cannot
lend: the same writes all go the usual way. When the image is truncated
behind the mount's back, a write in place into the lost part fails with
EIO and the daemon survives it. Then fio with verification runs 1 MiB
O_DIRECT random writes from two jobs at once.

Exit 0 pass, 1 fail, 77 skip.
"""
import atexit
import errno
import mmap
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuse_lib as fl  # noqa: E402
from fuse_read_lend import MIB, pattern, stats  # noqa: E402

FILE = 8 * MIB
PIPE_MAX = "/proc/sys/fs/pipe-max-size"
PIPE_WANT = 2 * MIB


def raise_pipe_max():
    """fs.pipe-max-size to PIPE_WANT for the test's mounts, put back at exit."""
    with open(PIPE_MAX) as f:
        old = int(f.read())
    if old >= PIPE_WANT:
        return
    try:
        with open(PIPE_MAX, "w") as f:
            f.write("%d\n" % PIPE_WANT)
    except OSError as e:
        fl.skip("cannot raise %s to %d: %s" % (PIPE_MAX, PIPE_WANT, e))

    def put_back():
        with open(PIPE_MAX, "w") as f:
            f.write("%d\n" % old)
    atexit.register(put_back)


def direct_write(path, model, off, data):
    """One O_DIRECT pwrite of data (page-aligned buffer) at off; the model follows."""
    buf = mmap.mmap(-1, len(data))
    buf.write(data)
    fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
    try:
        n = os.pwrite(fd, buf, off)
    finally:
        os.close(fd)
        buf.close()
    fl.check(n == len(data), "O_DIRECT write of %d at %d wrote %d" % (len(data), off, n))
    model[off:off + len(data)] = data


def buffered_write(path, model, off, data):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(data)
    model[off:off + len(data)] = data


def direct_read_all(path, size):
    buf = mmap.mmap(-1, size + MIB)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        n = os.preadv(fd, [buf], 0)
    finally:
        os.close(fd)
    data = bytes(buf[:n])
    buf.close()
    return data


def check_model(path, model, tag):
    got = direct_read_all(path, len(model))
    fl.check(len(got) == len(model), "%s: file is %d bytes, model %d" % (tag, len(got), len(model)))
    if got != bytes(model):
        at = next(i for i in range(len(model)) if got[i] != model[i])
        fl.fail("%s: file differs from the model at byte %d" % (tag, at))


def fsync(path):
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def rewrite_buffered(path, model, seed):
    """Every MiB again through one buffered descriptor: one 1 MiB WRITE each."""
    with open(path, "r+b", buffering=0) as f:
        for i in range(FILE // MIB):
            data = pattern(MIB, seed + i)
            f.seek(i * MIB)
            fl.check(f.write(data) == MIB, "short buffered write")
            model[i * MIB:(i + 1) * MIB] = data


def workload(work, img, mnt, tag):
    """The writes on a fresh mount; (bytes written, bytes written in place) of the two rewrites."""
    sock = os.path.join(work, tag + ".sock")
    m = fl.Mount(img, mnt, fmt=True, size="1G", extra=["-r", sock])
    path = os.path.join(mnt, "f")
    model = bytearray()
    open(path, "wb").close()

    # first pass: every 1 MiB write allocates (not in place)
    for i in range(FILE // MIB):
        direct_write(path, model, i * MIB, pattern(MIB, i))
    check_model(path, model, tag + " first pass")

    # the rewrites: allocated space, aligned, 1 MiB at a time (in place on tmpfs)
    s0 = stats(sock)
    for i in reversed(range(FILE // MIB)):
        direct_write(path, model, i * MIB, pattern(MIB, 50 + i))
    check_model(path, model, tag + " O_DIRECT rewrite")
    rewrite_buffered(path, model, 70)
    s1 = stats(sock)
    check_model(path, model, tag + " buffered rewrite")
    written = s1["bytes_written"] - s0["bytes_written"]
    lent = s1["bytes_written_lent"] - s0["bytes_written_lent"]

    # spliced requests of every other kind, between large writes
    direct_write(path, model, 2 * MIB, pattern(MIB, 90))
    direct_write(path, model, 4096, pattern(4096, 91))            # small write
    direct_write(path, model, 3 * MIB, pattern(MIB, 92))
    os.stat(path)
    os.listdir(mnt)                                                # metadata
    direct_write(path, model, 5 * MIB, pattern(MIB, 93))
    buffered_write(path, model, 4096 + 7, pattern(MIB + 100, 94))  # unaligned
    direct_write(path, model, 6 * MIB, pattern(MIB, 95))
    direct_write(path, model, FILE, pattern(2 * MIB, 96))          # extends the file
    direct_write(path, model, 1 * MIB, pattern(256 * 1024, 97))    # 256 KiB in place
    check_model(path, model, tag + " mixed")
    fsync(path)
    m.umount()

    m = fl.Mount(img, mnt, extra=["-r", sock])
    check_model(path, model, tag + " after remount")
    m.umount()
    return written, lent


def truncated_image(work):
    """The image cut short under a live mount: a write in place into the lost
    part fails with EIO (the kernel's copy into the vanished pages faults),
    the daemon survives it and answers the next request."""
    img = os.path.join(work, "cut.img")
    mnt = os.path.join(work, "cutmnt")
    os.mkdir(mnt)
    m = fl.Mount(img, mnt, fmt=True, size="1G")
    path = os.path.join(mnt, "g")
    model = bytearray()
    open(path, "wb").close()
    for i in range(8):
        direct_write(path, model, i * MIB, pattern(MIB, i))
    fsync(path)
    # The file's clusters lie past the metadata; 4 MiB keeps the store's start.
    os.truncate(img, 4 * MIB)
    failed = 0
    with open(path, "r+b", buffering=0) as f:
        for i in range(8):
            try:
                f.seek(i * MIB)
                f.write(pattern(MIB, 20 + i))
            except OSError as e:
                fl.check(e.errno == errno.EIO, "write after truncation: %s, expected EIO" % e)
                failed += 1
    fl.check(failed > 0, "every write into the truncated image succeeded")
    fl.check(m.proc.poll() is None, "ustor-mount died:\n" + m.output())
    fl.check(os.path.isdir(mnt) and "g" in os.listdir(mnt), "the mount stopped answering")
    fl.umount_after_fault(m)


def fio_verify(work, img, mnt):
    """Two jobs of 1 MiB O_DIRECT random writes at once (a file each, laid out
    first so the writes are rewrites), verified."""
    if shutil.which("fio") is None:
        print("(fio not installed: skipped)")
        return
    m = fl.Mount(img, mnt, fmt=True, size="1G", extra=["-r", os.path.join(work, "fio.sock")])
    out = os.path.join(work, "fio.out")
    common = ["--directory=" + mnt, "--size=32m", "--bs=1m", "--direct=1", "--ioengine=libaio",
              "--iodepth=4", "--numjobs=2", "--verify_state_save=0"]
    with open(out, "w") as o:
        r = subprocess.run(["fio", "--name=v", "--rw=write"] + common,
                           stdout=o, stderr=subprocess.STDOUT)
        fl.check(r.returncode == 0, "fio layout failed: %s" % open(out).read()[-2000:])
        s0 = stats(os.path.join(work, "fio.sock"))
        r = subprocess.run(["fio", "--name=v", "--rw=randwrite", "--verify=crc32c",
                            "--do_verify=1"] + common, stdout=o, stderr=subprocess.STDOUT)
    text = open(out).read()
    fl.check(r.returncode == 0 and text.count("err= 0") == 4, "fio verify failed: %s" % text[-3000:])
    lent = stats(os.path.join(work, "fio.sock"))["bytes_written_lent"] - s0["bytes_written_lent"]
    fl.check(lent >= 32 * MIB, "fio's rewrites: only %d bytes stored in place" % lent)
    m.umount()


def main():
    fl.require_fuse()
    raise_pipe_max()
    atexit.register(fl.cleanup)
    work, img, mnt = fl.workdir("fuse_write_lend")
    # Each rewrite's first WRITE may still be read(2): splicing starts after one.
    cases = [("tmpfs", work, lambda lent, written: 2 * FILE - 2 * MIB <= lent <= written),
             ("disk", fl.tmpdir_on("/var/tmp", "fuse_write_lend"), lambda lent, _: lent == 0)]
    for tag, where, expect in cases:
        print("-- image on %s: rewrites %s" % (tag, "in place" if tag == "tmpfs" else "copied"))
        if where is None:
            print("(no non-tmpfs directory to hold an image: skipped)")
            continue
        written, lent = workload(where, os.path.join(where, "img"), mnt, tag)
        fl.check(expect(lent, written), "%s image: %d of %d bytes rewritten were stored in place"
                 % (tag, lent, written))
        os.unlink(os.path.join(where, "img"))

    print("-- image truncated under the mount")
    truncated_image(work)

    print("-- fio: concurrent 1 MiB writes, verified")
    fio_verify(work, img, mnt)
    print("PASS")


if __name__ == "__main__":
    main()
