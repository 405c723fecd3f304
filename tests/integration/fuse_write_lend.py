#!/usr/bin/env python3
"""Zero-copy writes through the FUSE mount (fuse_dev.c splice mode,
fuse_ops.c fop_write_from_pipe, ust_blobfs_write_fill).

Splicing needs a 2 MiB pipe: fs.pipe-max-size is raised to that for the
test (scripts/setup.sh does the same) and put back at the end. On an image
in tmpfs, once large buffered WRITEs come the transport splices them and a
rewrite of allocated space is stored straight from the pipe into the
image's mapping. O_DIRECT WRITEs never turn splicing on (the kernel would
copy their pages into the pipe): a rewrite by O_DIRECT writes alone is read
into the receive buffer, and one that comes spliced is stored from the pipe
and turns splicing off. Everything else that arrives spliced (small writes,
unaligned writes, writes that extend the file, metadata requests) must
still be served exactly as before. Every step is checked against a model
of the file: read back through the page cache-free path (O_DIRECT), after
fsync, and after a remount; the mount's stats say which writes were stored
from the pipe. The O_DIRECT rewrite's 1 MiB writes are stored by the
file bdev's copy engine on a tmpfs image (bdev_get_bdevs counts them),
where the machine has a CPU besides the mount's reactor. On an image
outside tmpfs the bdev cannot lend: the same writes all go the usual way. When the image is truncated behind the
mount's back, a write in place into the lost part fails with EIO and the
daemon survives it. Then fio runs 1 MiB buffered random writes from two
jobs at once, and a second fio run reads them back with O_DIRECT and
verifies them.

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
from fuse_posix import rpc  # noqa: E402
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


def engine_writes(sock):
    """Writes the file bdev's copy engine stored, or None if the image is not mapped."""
    for b in rpc(sock, "bdev_get_bdevs"):
        for backend in ("uring", "aio"):
            d = b.get("driver_specific", {}).get(backend)
            if d is not None and d.get("mapped"):
                return d["copy_engine_writes"]
    return None


def workload(work, img, mnt, tag):
    """The writes on a fresh mount. Returns the bytes stored from the pipe by
    the O_DIRECT rewrite, by the buffered rewrite (and what it wrote), and by
    a buffered write, an O_DIRECT one and another O_DIRECT one in a row."""
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
    lent = "bytes_written_lent"
    s0 = stats(sock)
    e0 = engine_writes(sock)
    for i in reversed(range(FILE // MIB)):
        direct_write(path, model, i * MIB, pattern(MIB, 50 + i))
    check_model(path, model, tag + " O_DIRECT rewrite")
    s1 = stats(sock)
    e1 = engine_writes(sock)
    rewrite_buffered(path, model, 70)
    s2 = stats(sock)
    check_model(path, model, tag + " buffered rewrite")
    out = {"direct": s1[lent] - s0[lent], "buffered": s2[lent] - s1[lent],
           "buffered_written": s2["bytes_written"] - s1["bytes_written"],
           "engine": None if e0 is None else e1 - e0}

    # splicing on by a buffered WRITE (itself read), off after the O_DIRECT one it brings
    buffered_write(path, model, 2 * MIB, pattern(MIB, 90))
    direct_write(path, model, 3 * MIB, pattern(MIB, 92))
    direct_write(path, model, 7 * MIB, pattern(MIB, 98))
    out["switch"] = stats(sock)[lent] - s2[lent]
    # spliced requests of every other kind, between large buffered writes
    buffered_write(path, model, 4 * MIB, pattern(MIB, 99))
    direct_write(path, model, 4096, pattern(4096, 91))            # small write
    os.stat(path)
    os.listdir(mnt)                                                # metadata
    buffered_write(path, model, 5 * MIB, pattern(MIB, 93))
    buffered_write(path, model, 4096 + 7, pattern(MIB + 100, 94))  # unaligned
    direct_write(path, model, 6 * MIB, pattern(MIB, 95))
    buffered_write(path, model, 6 * MIB, pattern(MIB, 89))
    buffered_write(path, model, FILE, pattern(2 * MIB, 96))        # extends the file
    direct_write(path, model, 1 * MIB, pattern(256 * 1024, 97))    # 256 KiB in place
    check_model(path, model, tag + " mixed")
    fsync(path)
    m.umount()

    m = fl.Mount(img, mnt, extra=["-r", sock])
    check_model(path, model, tag + " after remount")
    m.umount()
    return out


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
    """Two jobs of 1 MiB buffered random writes at once (a file each, laid out
    first so the writes are rewrites, spliced and stored in place), read back
    with O_DIRECT and verified by a second run."""
    if shutil.which("fio") is None:
        print("(fio not installed: skipped)")
        return
    m = fl.Mount(img, mnt, fmt=True, size="1G", extra=["-r", os.path.join(work, "fio.sock")])
    out = os.path.join(work, "fio.out")
    common = ["--directory=" + mnt, "--size=32m", "--bs=1m", "--ioengine=libaio",
              "--iodepth=4", "--numjobs=2", "--verify_state_save=0"]
    write = ["--name=v", "--rw=randwrite", "--verify=crc32c"] + common
    with open(out, "w") as o:
        r = subprocess.run(["fio", "--name=v", "--rw=write", "--direct=1"] + common,
                           stdout=o, stderr=subprocess.STDOUT)
        fl.check(r.returncode == 0, "fio layout failed: %s" % open(out).read()[-2000:])
        s0 = stats(os.path.join(work, "fio.sock"))
        r = subprocess.run(["fio", "--direct=0", "--do_verify=0", "--end_fsync=1"] + write,
                           stdout=o, stderr=subprocess.STDOUT)
        fl.check(r.returncode == 0, "fio writes failed: %s" % open(out).read()[-2000:])
        # the same jobs' blocks again (same seeds), read with O_DIRECT: what the mount stored
        r = subprocess.run(["fio", "--direct=1", "--verify_only", "--do_verify=1"] + write,
                           stdout=o, stderr=subprocess.STDOUT)
    text = open(out).read()
    fl.check(r.returncode == 0 and text.count("err= 0") == 6, "fio verify failed: %s" % text[-3000:])
    lent = stats(os.path.join(work, "fio.sock"))["bytes_written_lent"] - s0["bytes_written_lent"]
    fl.check(lent >= 32 * MIB, "fio's rewrites: only %d bytes stored in place" % lent)
    m.umount()


def main():
    fl.require_fuse()
    raise_pipe_max()
    atexit.register(fl.cleanup)
    work, img, mnt = fl.workdir("fuse_write_lend")
    # The buffered rewrite's first WRITE is read(2): splicing starts after it.
    # The switch: the buffered WRITE read, the O_DIRECT one spliced, the next read.
    cases = [("tmpfs", work, {"direct": lambda n, _: n == 0,
                              "buffered": lambda n, w: FILE - MIB <= n <= w,
                              "switch": lambda n, _: n == MIB}),
             ("disk", fl.tmpdir_on("/var/tmp", "fuse_write_lend"),
              {k: (lambda n, _: n == 0) for k in ("direct", "buffered", "switch")})]
    for tag, where, expect in cases:
        print("-- image on %s: rewrites %s" % (tag, "in place" if tag == "tmpfs" else "copied"))
        if where is None:
            print("(no non-tmpfs directory to hold an image: skipped)")
            continue
        out = workload(where, os.path.join(where, "img"), mnt, tag)
        for k, ok in expect.items():
            fl.check(ok(out[k], out["buffered_written"]),
                     "%s image, %s writes: %d bytes stored from the pipe (%d buffered written)"
                     % (tag, k, out[k], out["buffered_written"]))
        # The mount's reactor is on CPU 0: another CPU we may use runs the copy engine.
        # (Without one the engine may still run: only a cgroup's cpuset keeps it out.)
        if tag != "tmpfs":
            engine = [None]
        elif os.sched_getaffinity(0) - {0}:
            engine = [FILE // MIB]
        else:
            engine = [0, FILE // MIB]
        fl.check(out["engine"] in engine, "%s image: the copy engine stored %r of the O_DIRECT "
                 "rewrite's %d writes (expected %r)" % (tag, out["engine"], FILE // MIB, engine))
        os.unlink(os.path.join(where, "img"))

    print("-- image truncated under the mount")
    truncated_image(work)

    print("-- fio: concurrent 1 MiB writes, verified")
    fio_verify(work, img, mnt)
    print("PASS")


if __name__ == "__main__":
    main()
