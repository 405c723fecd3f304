#!/usr/bin/env python3
"""Random-operation model test of a blobfs FUSE mount (ustor-mount).

Every operation is applied to the mount and to a reference directory on
tmpfs (/dev/shm), with the same arguments, and the outcomes must agree: the
value returned (bytes read, names listed, link targets, stat fields) or the
errno. The operations: create (O_EXCL, O_TRUNC), open (read-only, write-only,
O_APPEND, O_TRUNC), pwrite at random offsets (some far apart: sparse),
pread, truncate and ftruncate up and down, posix_fallocate, fsync, close,
rename (over existing files and directories, across directories, a directory
into itself), unlink and rmdir (also of open files), mkdir, link, symlink,
readlink, stat, listdir. Every CHECK_EVERY operations, at a remount in the
middle (all files closed first) and at the end the whole trees must be the
same: names, types, permission bits, sizes, link counts, file contents,
symlink targets, and which names are hard links of one another.

Seeded and reproducible: the seed is printed; USTOR_FUSE_MODEL_SEED=N runs
that seed again, USTOR_FUSE_MODEL_OPS=N sets the number of operations
(default 3000), USTOR_FUSE_EXTRA_OPTS=OPTS mounts with -o OPTS (e.g.
writeback_cache). A failure prints the seed, the step and the operation.

Exit 0 on pass, 1 on failure, 77 to skip (reason on the last line).
"""
import atexit
import errno
import hashlib
import os
import random
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuse_lib as fl  # noqa: E402
from fuse_lib import check, fail  # noqa: E402

atexit.register(fl.cleanup)
fl.require_fuse()

OPS = int(os.environ.get("USTOR_FUSE_MODEL_OPS", "3000"))
SEED = int(os.environ.get("USTOR_FUSE_MODEL_SEED", str(random.SystemRandom().randrange(1 << 32))))
CHECK_EVERY = 250
MAX_OPEN = 12
MAX_FILE = 3 << 20
DIRS = ["", "a", "b", "a/c"]
NAMES = ["f0", "f1", "f2", "f3", "d0", "d1"]
# Linux lets rename and rmdir answer either for a non-empty directory.
SAME_ERRNO = {errno.EEXIST: errno.ENOTEMPTY}


def outcome(fn, *args):
    """("ok", value) or ("err", errno) of fn(*args)."""
    try:
        return ("ok", fn(*args))
    except OSError as e:
        return ("err", SAME_ERRNO.get(e.errno, e.errno))


class Model:
    def __init__(self, mnt, ref, rng):
        self.roots = (mnt, ref)
        self.rng = rng
        self.fds = []  # [(fd on the mount, fd on the reference, flags, path when opened)]
        self.step = 0
        self.op = ""
        self.tally = {}  # op name -> [succeeded, failed]

    # ---- helpers ------------------------------------------------------------------------

    def both(self, fn):
        """fn(root) on the mount and on the reference; the outcomes must agree."""
        return self.agree(outcome(fn, self.roots[0]), outcome(fn, self.roots[1]))

    def both_fd(self, fn, pair):
        return self.agree(outcome(fn, pair[0]), outcome(fn, pair[1]))

    def agree(self, got, want):
        if got != want:
            self.fail("mount gave %s, reference %s" % (show(got), show(want)))
        t = self.tally.setdefault(self.op.split("(")[0], [0, 0])
        t[0 if want[0] == "ok" else 1] += 1
        return want

    def fail(self, msg):
        fail("seed %d, step %d, %s: %s" % (SEED, self.step, self.op, msg))

    def path(self):
        """A random path: existing names most of the time, sometimes a deeper miss."""
        r = self.rng
        p = os.path.join(r.choice(DIRS), r.choice(NAMES))
        if r.random() < 0.05:
            p = os.path.join(p, r.choice(NAMES))  # through a file: ENOTDIR, or ENOENT
        return p

    def data(self, n):
        return self.rng.randbytes(n)

    def size(self):
        r = self.rng.random()
        if r < 0.3:
            return self.rng.randrange(0, 5000)
        if r < 0.8:
            return self.rng.randrange(0, 300000)
        return self.rng.randrange(0, MAX_FILE)

    # ---- operations -----------------------------------------------------------------------

    def op_open(self):
        p = self.path()
        r = self.rng
        flags = r.choice([os.O_RDONLY, os.O_WRONLY, os.O_RDWR, os.O_RDWR, os.O_WRONLY | os.O_APPEND])
        if r.random() < 0.5:
            flags |= os.O_CREAT
            if r.random() < 0.3:
                flags |= os.O_EXCL
        if r.random() < 0.15:
            flags |= os.O_TRUNC
        self.op = "open(%s, %#o)" % (p, flags)
        res = []

        def do(root):
            fd = os.open(os.path.join(root, p), flags, 0o644)
            res.append(fd)
            return "fd"
        kind, _ = self.both(do)
        if kind == "ok":
            self.fds.append((res[0], res[1], flags, p))
            while len(self.fds) > MAX_OPEN:
                self.close_one(0)

    def close_one(self, i):
        m, f, _, p = self.fds.pop(i)
        self.op = "close(%s)" % p
        self.both_fd(os.close, (m, f))

    def pick_fd(self):
        if not self.fds:
            return None
        return self.rng.choice(self.fds)

    def op_close(self):
        if self.fds:
            self.close_one(self.rng.randrange(len(self.fds)))

    def op_write(self):
        fdp = self.pick_fd()
        if fdp is None:
            return
        off = self.size()
        n = self.rng.choice([1, 100, 4096, 5000, 65536, 200000])
        n = min(n, MAX_FILE - off) if off < MAX_FILE else 1
        buf = self.data(n)
        self.op = "pwrite(%s, %d bytes at %d)" % (fdp[3], n, off)
        self.both_fd(lambda fd: os.pwrite(fd, buf, off), fdp)

    def op_read(self):
        fdp = self.pick_fd()
        if fdp is None:
            return
        off = self.size()
        n = self.rng.choice([1, 4096, 10000, 300000])
        self.op = "pread(%s, %d at %d)" % (fdp[3], n, off)
        self.both_fd(lambda fd: hashlib.sha1(os.pread(fd, n, off)).hexdigest(), fdp)

    def op_ftruncate(self):
        fdp = self.pick_fd()
        if fdp is None:
            return
        n = self.size()
        self.op = "ftruncate(%s, %d)" % (fdp[3], n)
        self.both_fd(lambda fd: os.ftruncate(fd, n), fdp)

    def op_fallocate(self):
        fdp = self.pick_fd()
        if fdp is None:
            return
        off, n = self.size(), self.rng.randrange(1, 200000)
        self.op = "posix_fallocate(%s, %d, %d)" % (fdp[3], off, n)
        self.both_fd(lambda fd: os.posix_fallocate(fd, off, n), fdp)

    def op_fsync(self):
        fdp = self.pick_fd()
        if fdp is None:
            return
        self.op = "fsync(%s)" % fdp[3]
        self.both_fd(os.fsync, fdp)

    def op_fstat(self):
        fdp = self.pick_fd()
        if fdp is None:
            return
        self.op = "fstat(%s)" % fdp[3]
        self.both_fd(lambda fd: stat_fields(os.fstat(fd)), fdp)

    def op_truncate(self):
        p, n = self.path(), self.size()
        self.op = "truncate(%s, %d)" % (p, n)
        self.both(lambda root: os.truncate(os.path.join(root, p), n))

    def op_rename(self):
        a, b = self.path(), self.path()
        if self.rng.random() < 0.1:
            b = os.path.join(a, self.rng.choice(NAMES))  # into itself: EINVAL (or ENOTDIR)
        self.op = "rename(%s, %s)" % (a, b)
        self.both(lambda root: os.rename(os.path.join(root, a), os.path.join(root, b)))

    def op_unlink(self):
        p = self.path()
        self.op = "unlink(%s)" % p
        self.both(lambda root: os.unlink(os.path.join(root, p)))

    def op_rmdir(self):
        p = self.path()
        self.op = "rmdir(%s)" % p
        self.both(lambda root: os.rmdir(os.path.join(root, p)))

    def op_mkdir(self):
        p = self.path()
        self.op = "mkdir(%s)" % p
        self.both(lambda root: os.mkdir(os.path.join(root, p), 0o755))

    def op_link(self):
        a, b = self.path(), self.path()
        self.op = "link(%s, %s)" % (a, b)
        self.both(lambda root: os.link(os.path.join(root, a), os.path.join(root, b)))

    def op_symlink(self):
        target = self.rng.choice(NAMES + ["../" + n for n in NAMES] + ["nowhere"])
        p = self.path()
        self.op = "symlink(%s -> %s)" % (p, target)
        self.both(lambda root: os.symlink(target, os.path.join(root, p)))

    def op_readlink(self):
        p = self.path()
        self.op = "readlink(%s)" % p
        self.both(lambda root: os.readlink(os.path.join(root, p)))

    def op_stat(self):
        p = self.path()
        self.op = "lstat(%s)" % p
        self.both(lambda root: stat_fields(os.lstat(os.path.join(root, p))))

    def op_listdir(self):
        d = self.rng.choice(DIRS)
        self.op = "listdir(%s)" % d
        self.both(lambda root: sorted(os.listdir(os.path.join(root, d))))

    def op_read_path(self):
        """open + read through the path (follows symlinks) + close."""
        p = self.path()
        self.op = "read(%s)" % p

        def do(root):
            with open(os.path.join(root, p), "rb") as f:
                return hashlib.sha1(f.read()).hexdigest()
        self.both(do)

    def run(self, n):
        table = [
            (self.op_open, 14), (self.op_close, 6), (self.op_write, 16), (self.op_read, 8),
            (self.op_ftruncate, 3), (self.op_truncate, 3), (self.op_fallocate, 2),
            (self.op_fsync, 2), (self.op_fstat, 3), (self.op_rename, 8), (self.op_unlink, 5),
            (self.op_rmdir, 2), (self.op_mkdir, 4), (self.op_link, 4), (self.op_symlink, 3),
            (self.op_readlink, 2), (self.op_stat, 5), (self.op_listdir, 3), (self.op_read_path, 3),
        ]
        ops = [t[0] for t in table]
        weights = [t[1] for t in table]
        for _ in range(n):
            self.step += 1
            self.rng.choices(ops, weights)[0]()
            if self.step % CHECK_EVERY == 0:
                self.compare_trees()

    def close_all(self):
        while self.fds:
            self.close_one(0)

    def compare_trees(self):
        self.op = "tree comparison"
        got, want = tree(self.roots[0]), tree(self.roots[1])
        if got != want:
            self.fail(tree_diff(got, want))


def show(o):
    kind, v = o
    if kind == "err":
        return "errno %s" % errno.errorcode.get(v, v)
    return repr(v)


def stat_fields(st):
    """What must agree: type, permission bits, link count, size (not for directories)."""
    size = None if stat.S_ISDIR(st.st_mode) else st.st_size
    return (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_nlink, size)


def tree(root):
    """{relative path: fields} plus the hard-link groups (names sharing an inode)."""
    entries = {}
    by_ino = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            fields = stat_fields(st)
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    fields += (hashlib.sha1(f.read()).hexdigest(),)
            elif stat.S_ISLNK(st.st_mode):
                fields += (os.readlink(full),)
            entries[rel] = fields
            if not stat.S_ISDIR(st.st_mode):
                by_ino.setdefault(st.st_ino, set()).add(rel)
    groups = sorted(sorted(g) for g in by_ino.values() if len(g) > 1)
    return {"entries": entries, "links": groups}


def tree_diff(got, want):
    ge, we = got["entries"], want["entries"]
    lines = []
    for k in sorted(set(ge) | set(we)):
        if ge.get(k) != we.get(k):
            lines.append("  %s: mount %r, reference %r" % (k, ge.get(k), we.get(k)))
    if got["links"] != want["links"]:
        lines.append("  hard links: mount %r, reference %r" % (got["links"], want["links"]))
    return "trees differ:\n" + "\n".join(lines[:40])


def main():
    print("seed %d, %d operations (USTOR_FUSE_MODEL_SEED=%d reproduces)" % (SEED, OPS, SEED))
    sys.stdout.flush()
    work, img, mnt = fl.workdir("fuse_model")
    ref = os.path.join(work, "ref")
    os.mkdir(ref)
    os.umask(0o022)
    opts = os.environ.get("USTOR_FUSE_EXTRA_OPTS") or None
    if opts:
        print("mount options: " + opts)
    m = fl.Mount(img, mnt, fmt=True, size="2G", options=opts)
    for d in DIRS[1:]:
        os.mkdir(os.path.join(mnt, d))
        os.mkdir(os.path.join(ref, d))
    model = Model(mnt, ref, random.Random(SEED))
    model.run(OPS // 2)
    print("-- remount after %d operations" % model.step)
    sys.stdout.flush()
    model.close_all()
    model.compare_trees()
    m.umount()
    m = fl.Mount(img, mnt, options=opts)
    model.compare_trees()
    model.run(OPS - OPS // 2)
    model.close_all()
    model.compare_trees()
    m.umount()
    m = fl.Mount(img, mnt, options=opts)
    model.compare_trees()
    m.umount()
    print("succeeded/failed (same errno) per operation: " +
          ", ".join("%s %d/%d" % (k, v[0], v[1]) for k, v in sorted(model.tally.items())))
    print("PASS (seed %d, %d operations)" % (SEED, model.step))


if __name__ == "__main__":
    main()
