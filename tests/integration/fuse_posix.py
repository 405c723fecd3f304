#!/usr/bin/env python3
"""POSIX behaviour of a blobfs FUSE mount (ustor-mount), checked with os.* calls
and their errno: files, directories, errors, renames (incl. renameat2 flags),
unlinked-but-open files, symlinks, hard links, special files, attributes with
nanosecond times, truncate, sparse files, fallocate, statfs, user xattrs,
permissions for a non-root user (default_permissions), a 64 MiB file with a
checksum, a few thousand files in one directory, deep paths; then a remount
and everything must still be there. Big requests must really be big
(max_write 1 MiB, seen in blobfs_get_mounts).

Exit 0 on pass, 1 on failure, 77 to skip (reason on the last line).
"""
import atexit
import ctypes
import errno
import hashlib
import json
import mmap
import os
import socket
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuse_lib as fl  # noqa: E402
from fuse_lib import check, fail  # noqa: E402

atexit.register(fl.cleanup)
fl.require_fuse()

libc = ctypes.CDLL(None, use_errno=True)
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
AT_FDCWD = -100
USER = 4242
MANY = int(os.environ.get("USTOR_FUSE_MANY", "2000"))
BIG = 64 << 20


def renameat2(a, b, flags):
    rc = libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags)
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), a)


def expect_errno(err, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except OSError as e:
        check(e.errno == err, "%s%r: expected %s, got %s" % (fn.__name__, args,
                                                             errno.errorcode[err],
                                                             errno.errorcode.get(e.errno)))
        return
    fail("%s%r: expected %s, it succeeded" % (fn.__name__, args, errno.errorcode[err]))


def write_file(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def as_user(fn):
    """Run fn() in a forked child with uid/gid USER; return its exit status (0 = passed)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setresgid(USER, USER, USER)
            os.setresuid(USER, USER, USER)
            fn()
            code = 0
        except BaseException as e:  # report anything, exit non-zero
            print("as_user: %r" % (e,))
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def basic(m):
    p = os.path.join(m, "f1")
    write_file(p, b"hello ")
    write_file(p, b"world", "ab")
    check(read_file(p) == b"hello world", "append")
    fd = os.open(p, os.O_RDWR)
    os.pwrite(fd, b"HELLO", 0)
    check(os.pread(fd, 100, 0) == b"HELLO world", "pwrite/pread")
    check(os.pread(fd, 100, 11) == b"", "read at EOF")
    os.close(fd)
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"!")
    os.close(fd)
    check(read_file(p) == b"HELLO world!", "O_APPEND writes at the end")
    fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    check(os.stat(p).st_size == 0, "O_TRUNC")
    expect_errno(errno.EEXIST, os.open, p, os.O_CREAT | os.O_EXCL | os.O_WRONLY)


def dirs_and_errors(m):
    d = os.path.join(m, "d1")
    os.mkdir(d, 0o755)
    check(stat.S_ISDIR(os.stat(d).st_mode), "mkdir makes a directory")
    expect_errno(errno.EEXIST, os.mkdir, d)
    write_file(os.path.join(d, "x"), b"x")
    expect_errno(errno.ENOTEMPTY, os.rmdir, d)
    expect_errno(errno.ENOENT, os.stat, os.path.join(m, "nope"))
    expect_errno(errno.ENOENT, os.open, os.path.join(m, "nope", "x"), os.O_RDONLY)
    expect_errno(errno.ENOTDIR, os.open, os.path.join(d, "x", "y"), os.O_RDONLY)
    expect_errno(errno.ENOTDIR, os.mkdir, os.path.join(d, "x", "y"))
    expect_errno(errno.EISDIR, os.open, d, os.O_WRONLY)
    expect_errno(errno.ENOTDIR, os.rmdir, os.path.join(d, "x"))
    expect_errno(errno.EISDIR, os.unlink, d)
    expect_errno(errno.ENAMETOOLONG, os.open, os.path.join(m, "n" * 256),
                 os.O_CREAT | os.O_WRONLY)
    write_file(os.path.join(m, "n" * 255), b"255")
    check(read_file(os.path.join(m, "n" * 255)) == b"255", "255-byte name")
    os.unlink(os.path.join(d, "x"))
    os.rmdir(d)
    expect_errno(errno.ENOENT, os.stat, d)
    # nlink of a directory: 2 + subdirectories
    os.mkdir(d)
    os.mkdir(os.path.join(d, "a"))
    os.mkdir(os.path.join(d, "b"))
    check(os.stat(d).st_nlink == 4, "directory nlink %d" % os.stat(d).st_nlink)
    check(sorted(os.listdir(d)) == ["a", "b"], "listdir")


def renames(m):
    r = os.path.join(m, "ren")
    os.mkdir(r)
    os.mkdir(os.path.join(r, "other"))
    a, b = os.path.join(r, "a"), os.path.join(r, "b")
    write_file(a, b"A")
    write_file(b, b"B")
    os.rename(a, b)
    check(read_file(b) == b"A" and not os.path.exists(a), "rename over a file")
    c = os.path.join(r, "other", "c")
    os.rename(b, c)
    check(read_file(c) == b"A" and not os.path.exists(b), "rename across directories")
    write_file(a, b"A2")
    expect_errno(errno.EEXIST, renameat2, a, c, RENAME_NOREPLACE)
    check(read_file(c) == b"A", "NOREPLACE left the target alone")
    renameat2(a, b, RENAME_NOREPLACE)
    check(read_file(b) == b"A2", "NOREPLACE to a free name")
    renameat2(b, c, RENAME_EXCHANGE)
    check(read_file(b) == b"A" and read_file(c) == b"A2", "RENAME_EXCHANGE of files")
    os.mkdir(os.path.join(r, "dir"))
    renameat2(os.path.join(r, "dir"), b, RENAME_EXCHANGE)
    check(stat.S_ISDIR(os.stat(b).st_mode) and read_file(os.path.join(r, "dir")) == b"A",
          "RENAME_EXCHANGE of a file and a directory")
    expect_errno(errno.ENOENT, renameat2, os.path.join(r, "none"), c, RENAME_EXCHANGE)
    os.mkdir(os.path.join(r, "full"))
    write_file(os.path.join(r, "full", "f"), b"")
    expect_errno(errno.ENOTEMPTY, os.rename, b, os.path.join(r, "full"))
    expect_errno(errno.EINVAL, os.rename, r, os.path.join(r, "other", "inside"))
    expect_errno(errno.ENOTDIR, os.rename, b, c)
    expect_errno(errno.EISDIR, os.rename, c, b)


def unlink_open(m):
    p = os.path.join(m, "open_unlinked")
    write_file(p, b"still here")
    fd = os.open(p, os.O_RDWR)
    os.unlink(p)
    expect_errno(errno.ENOENT, os.stat, p)
    check(os.pread(fd, 100, 0) == b"still here", "read after unlink")
    os.pwrite(fd, b"STILL", 0)
    check(os.pread(fd, 100, 0) == b"STILL here", "write after unlink")
    check(os.fstat(fd).st_nlink == 0, "nlink 0 after unlink")
    os.close(fd)


def links(m):
    t = os.path.join(m, "target")
    write_file(t, b"T")
    s = os.path.join(m, "sym")
    os.symlink("target", s)
    check(os.readlink(s) == "target", "readlink")
    check(stat.S_ISLNK(os.lstat(s).st_mode), "lstat of a symlink")
    check(read_file(s) == b"T", "open through a symlink")
    os.symlink("/" + "x" * 1000, os.path.join(m, "longsym"))
    check(os.readlink(os.path.join(m, "longsym")) == "/" + "x" * 1000, "long symlink")
    expect_errno(errno.EEXIST, os.symlink, "x", s)
    h = os.path.join(m, "hard")
    os.link(t, h)
    check(os.stat(t).st_nlink == 2 and os.stat(h).st_ino == os.stat(t).st_ino, "hard link")
    os.unlink(t)
    check(os.stat(h).st_nlink == 1 and read_file(h) == b"T", "hard link after unlink")
    expect_errno(errno.ENOENT, os.stat, s)  # dangling now
    os.mkdir(os.path.join(m, "ldir"))
    expect_errno(errno.EPERM, os.link, os.path.join(m, "ldir"), os.path.join(m, "ldir2"))


def special(m):
    f = os.path.join(m, "fifo")
    os.mkfifo(f, 0o640)
    st = os.stat(f)
    check(stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640 & ~current_umask(),
          "mkfifo mode %o" % st.st_mode)
    c = os.path.join(m, "chr")
    os.mknod(c, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    st = os.stat(c)
    check(stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3), "char device node")
    b = os.path.join(m, "blk")
    os.mknod(b, stat.S_IFBLK | 0o600, os.makedev(8, 1))
    st = os.stat(b)
    check(stat.S_ISBLK(st.st_mode) and st.st_rdev == os.makedev(8, 1), "block device node")
    s = os.path.join(m, "sock")
    sk = socket.socket(socket.AF_UNIX)
    sk.bind(s)
    sk.close()
    check(stat.S_ISSOCK(os.stat(s).st_mode), "socket node")


def current_umask():
    u = os.umask(0)
    os.umask(u)
    return u


def attrs(m):
    p = os.path.join(m, "attrs")
    write_file(p, b"abc")
    os.chmod(p, 0o4751)
    check(stat.S_IMODE(os.stat(p).st_mode) == 0o4751, "chmod")
    os.chown(p, 1234, 5678)
    st = os.stat(p)
    check(st.st_uid == 1234 and st.st_gid == 5678, "chown")
    check(stat.S_IMODE(st.st_mode) & stat.S_ISUID == 0, "chown clears setuid")
    os.utime(p, ns=(1_000_000_123, 2_000_000_456))
    st = os.stat(p)
    check(st.st_atime_ns == 1_000_000_123 and st.st_mtime_ns == 2_000_000_456,
          "utimensat with nanoseconds: %d %d" % (st.st_atime_ns, st.st_mtime_ns))
    # UTIME_OMIT for atime, UTIME_NOW for mtime
    ts = (ctypes.c_long * 4)(0, (1 << 30) - 2, 0, (1 << 30) - 1)
    check(libc.utimensat(AT_FDCWD, p.encode(), ts, 0) == 0, "utimensat OMIT/NOW")
    st2 = os.stat(p)
    check(st2.st_atime_ns == 1_000_000_123, "UTIME_OMIT kept atime")
    check(st2.st_mtime_ns > 2_000_000_456, "UTIME_NOW set mtime")
    before = os.stat(p).st_ctime_ns
    os.chmod(p, 0o644)
    check(os.stat(p).st_ctime_ns >= before, "ctime moves on chmod")
    mt = os.stat(p).st_mtime_ns
    write_file(p, b"more", "ab")
    check(os.stat(p).st_mtime_ns >= mt, "mtime moves on write")


def truncate_sparse_fallocate(m):
    p = os.path.join(m, "trunc")
    write_file(p, b"x" * 10000)
    os.truncate(p, 100)
    check(os.stat(p).st_size == 100, "truncate down")
    os.truncate(p, 20000)
    data = read_file(p)
    check(len(data) == 20000 and data[:100] == b"x" * 100 and data[100:] == bytes(19900),
          "truncate up reads zeros")
    s = os.path.join(m, "sparse")
    fd = os.open(s, os.O_CREAT | os.O_RDWR, 0o644)
    os.pwrite(fd, b"end", 1 << 30)
    st = os.fstat(fd)
    check(st.st_size == (1 << 30) + 3, "sparse size")
    check(st.st_blocks * 512 < (4 << 20), "sparse file allocates little: %d blocks" % st.st_blocks)
    check(os.pread(fd, 4096, 1 << 29) == bytes(4096), "hole reads zeros")
    os.close(fd)
    a = os.path.join(m, "falloc")
    fd = os.open(a, os.O_CREAT | os.O_RDWR, 0o644)
    os.posix_fallocate(fd, 0, 4 << 20)
    st = os.fstat(fd)
    # blobfs resizes the (thin) blob: the size is there, clusters come with the writes
    check(st.st_size == 4 << 20, "fallocate: size %d" % st.st_size)
    check(os.pread(fd, 4096, 1 << 20) == bytes(4096), "fallocated range reads zeros")
    expect_errno(errno.ENOSPC, os.posix_fallocate, fd, 0, 1 << 40)
    # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE
    os.pwrite(fd, b"y" * (1 << 20), 0)
    rc = libc.fallocate(fd, 3, ctypes.c_long(0), ctypes.c_long(1 << 20))
    check(rc == 0, "punch hole: errno %d" % ctypes.get_errno())
    check(os.pread(fd, 1 << 20, 0) == bytes(1 << 20), "punched range reads zeros")
    check(os.fstat(fd).st_size == 4 << 20, "punch keeps the size")
    os.close(fd)


def statfs(m):
    sv = os.statvfs(m)
    check(sv.f_bsize > 0 and sv.f_blocks > 0 and sv.f_bfree <= sv.f_blocks, "statvfs %r" % (sv,))
    check(sv.f_namemax == 255, "f_namemax %d" % sv.f_namemax)
    check(sv.f_files > 0 and sv.f_ffree <= sv.f_files, "statvfs inodes")
    # Free inodes are the store's free blob slots: exact, both ways.
    p = os.path.join(m, "statfs_probe")
    write_file(p, b"")
    check(os.statvfs(m).f_ffree == sv.f_ffree - 1, "a create takes one inode")
    os.unlink(p)
    check(os.statvfs(m).f_ffree == sv.f_ffree, "an unlink gives it back")


def xattrs(m):
    p = os.path.join(m, "xa")
    write_file(p, b"")
    os.setxattr(p, "user.one", b"1")
    os.setxattr(p, "user.two", b"\x00binary\xff" * 100)
    check(os.getxattr(p, "user.one") == b"1", "getxattr")
    check(os.getxattr(p, "user.two") == b"\x00binary\xff" * 100, "binary xattr")
    check(sorted(os.listxattr(p)) == ["user.one", "user.two"], "listxattr %r" % os.listxattr(p))
    expect_errno(errno.EEXIST, os.setxattr, p, "user.one", b"x", os.XATTR_CREATE)
    expect_errno(errno.ENODATA, os.setxattr, p, "user.three", b"x", os.XATTR_REPLACE)
    os.setxattr(p, "user.one", b"11", os.XATTR_REPLACE)
    check(os.getxattr(p, "user.one") == b"11", "XATTR_REPLACE")
    os.removexattr(p, "user.one")
    expect_errno(errno.ENODATA, os.getxattr, p, "user.one")
    expect_errno(errno.ENODATA, os.removexattr, p, "user.one")
    expect_errno(errno.EOPNOTSUPP, os.setxattr, p, "trusted.x", b"x")
    d = os.path.join(m, "xadir")
    os.mkdir(d)
    os.setxattr(d, "user.d", b"dir")
    check(os.getxattr(d, "user.d") == b"dir", "xattr on a directory")
    os.setxattr(p, "user.keep", b"persist")


def permissions(m):
    """default_permissions: the kernel checks with the caller's uid/gid."""
    priv = os.path.join(m, "private")
    os.mkdir(priv, 0o700)
    write_file(os.path.join(priv, "secret"), b"s")
    sec = os.path.join(m, "secret_file")
    write_file(sec, b"s")
    os.chmod(sec, 0o600)
    pub = os.path.join(m, "public")
    os.mkdir(pub)
    os.chmod(pub, 0o777)
    ro = os.path.join(m, "ro_dir")
    os.mkdir(ro, 0o755)
    shared = os.path.join(m, "shared")
    write_file(shared, b"shared data")
    os.chmod(shared, 0o666)

    def child():
        # write permission is enough to truncate another's file (with the
        # writeback cache the kernel sends that truncate's "now" as an explicit mtime)
        os.truncate(shared, 6)
        with open(shared, "rb") as f:
            if f.read() != b"shared":
                raise AssertionError("truncate by a writer")
        os.close(os.open(shared, os.O_WRONLY | os.O_TRUNC))
        if os.stat(shared).st_size != 0:
            raise AssertionError("open(O_TRUNC) by a writer")
        for fn, args in ((os.listdir, (priv,)), (os.stat, (os.path.join(priv, "secret"),)),
                         (os.open, (sec, os.O_RDONLY)),
                         (os.open, (os.path.join(ro, "new"), os.O_CREAT | os.O_WRONLY)),
                         (os.mkdir, (os.path.join(ro, "sub"),)),
                         (os.chmod, (sec, 0o777))):
            try:
                fn(*args)
            except PermissionError:
                continue
            except OSError as e:
                if fn is os.chmod and e.errno == errno.EPERM:
                    continue
                raise
            raise AssertionError("%s%r was allowed" % (fn.__name__, args))
        mine = os.path.join(pub, "mine")
        with open(mine, "wb") as f:
            f.write(b"m")
        st = os.stat(mine)
        if st.st_uid != USER or st.st_gid != USER:
            raise AssertionError("new file owned by %d:%d" % (st.st_uid, st.st_gid))
        os.chmod(mine, 0o600)

    check(as_user(child) == 0, "permission checks for uid %d" % USER)
    st = os.stat(os.path.join(pub, "mine"))
    check(st.st_uid == USER and stat.S_IMODE(st.st_mode) == 0o600, "the user's file")


def mode_of(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def kill_suid(m, sock):
    """Set-user-ID and set-group-ID are dropped as Linux drops them, by blobfs
    (FUSE_HANDLE_KILLPRIV_V2), and a write is one request."""
    def fresh(name, mode, owner=0, data=b"data"):
        p = os.path.join(m, name)
        write_file(p, data)
        os.chown(p, owner, owner)  # a chown drops the bits: set them after
        os.chmod(p, mode)
        check(mode_of(p) == mode, "%s: mode %o" % (name, mode_of(p)))
        return p

    # root (CAP_FSETID) keeps them through write, truncate and open(O_TRUNC)
    p = fresh("suid_root", 0o6777)
    write_file(p, b"root", "ab")
    os.truncate(p, 2)
    os.close(os.open(p, os.O_WRONLY | os.O_TRUNC))
    check(mode_of(p) == 0o6777, "root kept the set-id bits: %o" % mode_of(p))

    def write(p):
        with open(p, "ab") as f:
            f.write(b"user")

    def trunc(p):
        os.truncate(p, 1)

    def otrunc(p):
        os.close(os.open(p, os.O_WRONLY | os.O_TRUNC))

    # name: (mode, owner, initial data, what the user does, mode after)
    cases = {
        "suid_write": (0o6777, 0, b"data", write, 0o0777),
        # without group execute set-group-ID is not a privilege and stays
        "suid_write_nogx": (0o6767, 0, b"data", write, 0o2767),
        "suid_owner_write": (0o6755, USER, b"data", write, 0o0755),
        "suid_truncate": (0o6777, 0, b"data", trunc, 0o0777),
        "suid_otrunc": (0o6777, 0, b"data", otrunc, 0o0777),
        "suid_otrunc_empty": (0o6777, 0, b"", otrunc, 0o0777),
    }
    paths = {n: fresh(n, c[0], c[1], c[2]) for n, c in cases.items()}

    def child():
        for n, c in cases.items():
            c[3](paths[n])

    check(as_user(child) == 0, "the user's changes to set-id files")
    for n, c in cases.items():
        check(mode_of(paths[n]) == c[4], "%s: mode %o, expected %o" % (n, mode_of(paths[n]), c[4]))
    check(os.path.getsize(paths["suid_write"]) == 8, "the user's write landed")

    # one request per write: before FUSE_HANDLE_KILLPRIV_V2 the kernel asked
    # for security.capability (GETXATTR) before each one
    p = os.path.join(m, "direct_writes")
    buf = mmap.mmap(-1, 4096)
    buf.write(b"z" * 4096)
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    os.pwrite(fd, buf, 0)
    before = rpc(sock, "blobfs_get_mounts")[0]["stats"]
    for i in range(100):
        os.pwrite(fd, buf, 4096 * i)
    after = rpc(sock, "blobfs_get_mounts")[0]["stats"]
    os.close(fd)
    n = after["requests"] - before["requests"]
    check(n <= 110, "100 writes took %d requests" % n)
    by_op = {k: v - before["requests_by_op"].get(k, 0) for k, v in after["requests_by_op"].items()}
    check(by_op.get("WRITE") == 100 and by_op.get("GETXATTR", 0) == 0,
          "requests by kind during 100 writes: %r" % by_op)
    return cases


def big_file(m):
    p = os.path.join(m, "big")
    h = hashlib.sha256()
    chunk = bytearray(os.urandom(1 << 20))
    with open(p, "wb") as f:
        for i in range(BIG >> 20):
            chunk[0:8] = i.to_bytes(8, "little")
            h.update(chunk)
            f.write(chunk)
    check(os.stat(p).st_size == BIG, "big file size")
    return h.hexdigest()


def file_sha(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def many_files(m):
    d = os.path.join(m, "many")
    os.mkdir(d)
    for i in range(MANY):
        write_file(os.path.join(d, "file_%05d" % i), b"%d" % i)
    names = os.listdir(d)
    check(len(names) == MANY and len(set(names)) == MANY, "listdir of %d files: %d" % (MANY, len(names)))
    for i in range(0, MANY, 97):
        check(read_file(os.path.join(d, "file_%05d" % i)) == b"%d" % i, "content of file %d" % i)
    # readdir while removing: nothing repeats
    seen = set()
    with os.scandir(d) as it:
        for n, e in enumerate(it):
            check(e.name not in seen, "readdir repeated %s" % e.name)
            seen.add(e.name)
            if n % 3 == 0:
                os.unlink(e.path)
    check(len(os.listdir(d)) == MANY - (MANY + 2) // 3, "after removing a third: %d"
          % len(os.listdir(d)))


def deep(m):
    p = m
    for i in range(60):
        p = os.path.join(p, "d%02d" % i)
        os.mkdir(p)
    write_file(os.path.join(p, "leaf"), b"deep")
    return os.path.relpath(os.path.join(p, "leaf"), m)


def verify_persisted(m, big_sha, deep_leaf):
    check(file_sha(os.path.join(m, "big")) == big_sha, "big file checksum after remount")
    check(read_file(os.path.join(m, deep_leaf)) == b"deep", "deep path after remount")
    check(read_file(os.path.join(m, "f1")) == b"", "f1")
    check(os.readlink(os.path.join(m, "sym")) == "target", "symlink after remount")
    check(os.stat(os.path.join(m, "hard")).st_nlink == 1, "hard link after remount")
    st = os.stat(os.path.join(m, "attrs"))
    check(stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == 1234, "attrs after remount")
    st = os.stat(os.path.join(m, "chr"))
    check(stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3), "device after remount")
    check(os.getxattr(os.path.join(m, "xa"), "user.keep") == b"persist", "xattr after remount")
    check(len(os.listdir(os.path.join(m, "many"))) == MANY - (MANY + 2) // 3,
          "many files after remount")
    check(not os.path.exists(os.path.join(m, "open_unlinked")), "unlinked file stays gone")
    data = read_file(os.path.join(m, "trunc"))
    check(len(data) == 20000 and data[:100] == b"x" * 100, "truncated file after remount")


def main():
    work, img, mnt = fl.workdir("fuse_posix")
    os.chmod(work, 0o755)  # the unprivileged user must reach the mount point
    sock = os.path.join(work, "rpc.sock")
    opts = "allow_other,default_permissions"
    if os.environ.get("USTOR_FUSE_EXTRA_OPTS"):
        opts += "," + os.environ["USTOR_FUSE_EXTRA_OPTS"]
    print("mount options: " + opts)
    m = fl.Mount(img, mnt, fmt=True, size="4G", options=opts, extra=["-r", sock])
    steps = [basic, dirs_and_errors, renames, unlink_open, links, special, attrs,
             truncate_sparse_fallocate, statfs, xattrs, permissions]
    for s in steps:
        print("-- " + s.__name__)
        sys.stdout.flush()
        s(mnt)
    print("-- kill_suid")
    sys.stdout.flush()
    suid_cases = kill_suid(mnt, sock)
    print("-- big_file")
    big_sha = big_file(mnt)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("1\n")  # the read below must come from the file system
    check(file_sha(os.path.join(mnt, "big")) == big_sha, "big file checksum")
    print("-- many_files (%d)" % MANY)
    many_files(mnt)
    print("-- deep")
    deep_leaf = deep(mnt)
    # requests were really up to 1 MiB
    mounts = rpc(sock, "blobfs_get_mounts")
    check(len(mounts) == 1, "blobfs_get_mounts: %r" % mounts)
    st = mounts[0]["stats"]
    print("stats: %r" % st)
    check(st["max_write"] == 1 << 20, "largest write %d, expected 1 MiB" % st["max_write"])
    check(st["max_read"] == 1 << 20, "largest read %d, expected 1 MiB" % st["max_read"])
    check(st["in_flight"] == 0 or st["in_flight"] == 1, "in flight %d" % st["in_flight"])
    print("-- remount")
    m.umount()
    m = fl.Mount(img, mnt, options=opts)
    verify_persisted(mnt, big_sha, deep_leaf)
    for n, c in suid_cases.items():
        p = os.path.join(mnt, n)
        check(mode_of(p) == c[4], "%s after remount: mode %o" % (n, mode_of(p)))
    m.umount()
    os.unlink(img)
    os.rmdir(mnt)
    os.unlink(sock) if os.path.exists(sock) else None
    os.rmdir(work)
    print("PASS")


def rpc(sock, method, params=None):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    req = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        req["params"] = params
    s.sendall(json.dumps(req).encode())
    buf = b""
    dec = json.JSONDecoder()
    while True:
        d = s.recv(65536)
        if not d:
            break
        buf += d
        try:
            obj, _ = dec.raw_decode(buf.decode())
            break
        except ValueError:
            continue
    s.close()
    if "error" in obj:
        fail("%s: %r" % (method, obj["error"]))
    return obj["result"]


if __name__ == "__main__":
    main()
