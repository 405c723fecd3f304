"""Shared helpers of the FUSE integration tests (not a test itself: not executable).

Mount runs `ustor-mount -f` in the background on a temporary image, waits
until the kernel mount is live, and unmounts with fusermount3 -u, checking
that the daemon then exits 0 (a clean blobstore unload). workdir() gives a
test its work directory, image path and mount point. Every test registers
cleanup() with atexit so that no mount, process or work directory is left
behind.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDDIR = os.environ.get("USTOR_BUILDDIR", os.path.join(ROOT, "build"))
BIN = os.path.join(BUILDDIR, "bin")
MOUNT_TIMEOUT = 60
UMOUNT_TIMEOUT = 60

_live = []
_dirs = []


def skip(reason):
    print("SKIP: " + reason)
    sys.exit(77)


def fail(msg):
    print("FAIL: " + msg)
    sys.stdout.flush()
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def require_fuse():
    if not os.path.exists(os.path.join(BIN, "ustor-mount")):
        skip("ustor-mount is not built in " + BUILDDIR)
    if not os.path.exists("/dev/fuse"):
        skip("no /dev/fuse on this machine")
    if shutil.which("fusermount3") is None:
        skip("fusermount3 is not installed (Debian package fuse3)")
    if os.geteuid() != 0:
        skip("the FUSE tests mount file systems and switch users: run as root")


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                return True
    return False


def tmpdir(tag):
    base = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"
    d = tempfile.mkdtemp(prefix="ustor_%s_" % tag, dir=base)
    _dirs.append(d)
    return d


def fs_type(path):
    """The type of the file system holding path (from /proc/self/mountinfo)."""
    path = os.path.realpath(path)
    best, kind = "", None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mp = fields[4]
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
                best, kind = mp, fields[fields.index("-") + 1]
    return kind


def tmpdir_on(base, tag):
    """A work directory under base (removed by cleanup()), or None when base
    is missing or in memory (tmpfs, ramfs): for tests that need a disk file."""
    if not os.path.isdir(base) or fs_type(base) in ("tmpfs", "ramfs"):
        return None
    d = tempfile.mkdtemp(prefix="ustor_%s_" % tag, dir=base)
    _dirs.append(d)
    return d


def workdir(tag, image="img"):
    """A test's work directory (tmpdir(tag), removed by cleanup()), the path
    of the image in it (not created) and its mount point "mnt" (created):
    (work, img, mnt)."""
    work = tmpdir(tag)
    mnt = os.path.join(work, "mnt")
    os.mkdir(mnt)
    return work, os.path.join(work, image), mnt


class Mount:
    """One `ustor-mount -f` process and its mount point."""

    def __init__(self, image, mnt, fmt=False, size="2G", options=None, extra=None):
        self.image = image
        self.mnt = mnt
        self.log = tempfile.TemporaryFile()
        args = [os.path.join(BIN, "ustor-mount"), "-f", "--no-huge", "--image", image]
        if fmt:
            args += ["--format", "--size", size]
        if options:
            args += ["-o", options]
        args += extra or []
        args.append(mnt)
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        _live.append(self)
        deadline = time.time() + MOUNT_TIMEOUT
        while not is_mounted(mnt):
            if self.proc.poll() is not None:
                fail("ustor-mount exited with %d before mounting:\n%s"
                     % (self.proc.returncode, self.output()))
            if time.time() > deadline:
                fail("%s not mounted after %d s:\n%s" % (mnt, MOUNT_TIMEOUT, self.output()))
            time.sleep(0.05)

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def umount(self):
        """fusermount3 -u, then the daemon must exit 0 (clean unload)."""
        r = subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True, text=True)
        check(r.returncode == 0, "fusermount3 -u %s failed: %s" % (self.mnt, r.stderr))
        try:
            rc = self.proc.wait(UMOUNT_TIMEOUT)
        except subprocess.TimeoutExpired:
            fail("ustor-mount did not exit %d s after the unmount:\n%s"
                 % (UMOUNT_TIMEOUT, self.output()))
        _live.remove(self)
        check(rc == 0, "ustor-mount exited %d after the unmount:\n%s" % (rc, self.output()))
        check(not is_mounted(self.mnt), "%s still mounted" % self.mnt)
        return self.output()


def umount_after_fault(m):
    """fusermount3 -u of a mount whose image was damaged under it: its final
    writes fail, so its exit code is not judged, but it must exit, and not
    by a signal."""
    os.system("fusermount3 -u %s" % m.mnt)
    try:
        m.proc.wait(UMOUNT_TIMEOUT)
    except subprocess.TimeoutExpired:
        fail("ustor-mount did not exit after the unmount:\n" + m.output())
    _live.remove(m)
    check(m.proc.returncode >= 0, "ustor-mount killed by signal %d:\n%s"
          % (-m.proc.returncode, m.output()))


def cleanup():
    """Never leave a mount or a daemon behind, whatever happened."""
    for m in list(_live):
        subprocess.run(["fusermount3", "-u", "-z", m.mnt], capture_output=True)
        try:
            m.proc.wait(20)
        except subprocess.TimeoutExpired:
            m.proc.kill()
            m.proc.wait()
    for d in _dirs:
        if not any(is_mounted(os.path.join(d, n)) for n in ("mnt",)):
            shutil.rmtree(d, ignore_errors=True)
