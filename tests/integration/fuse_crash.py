#!/usr/bin/env python3
"""Crash test of a blobfs FUSE mount: ustor-mount is killed with SIGKILL in
the middle of a workload, several times, at random moments.

The workload (a child process) creates files and fsyncs them, renames files
within and across directories and over each other, unlinks, rewrites
files through open(O_TRUNC) and fsync, and writes without fsync; it
journals to tmpfs what it is about to do and what was acknowledged. After
each kill: the dead mount is cleared with fusermount3 -u -z; ustor-blob fsck
on the image must find no error (a store that was not unloaded is allowed
its recovery warnings); then the image is mounted again (blobfs replays its
intents and reclaims orphans), unmounted cleanly, and fsck must now find the
store fully clean; mounted once more, the tree must show:

  - every fsynced file with exactly its fsynced content (a file whose
    O_TRUNC rewrite was interrupted: present);
  - every rename all-or-nothing: the old name or the new one, never both or
    neither, with the file's content; an acknowledged rename shows the new
    name only;
  - every acknowledged unlink gone; an unacknowledged one either way.

Seeded: the seed is printed, USTOR_FUSE_CRASH_SEED=N reproduces the choice
of operations and kill moments (not the kernel's timing),
USTOR_FUSE_CRASH_ROUNDS=N sets the number of kills (default 5).

Exit 0 on pass, 1 on failure, 77 to skip (reason on the last line).
"""
import atexit
import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuse_lib as fl  # noqa: E402
from fuse_lib import check, fail  # noqa: E402

atexit.register(fl.cleanup)
fl.require_fuse()

ROUNDS = int(os.environ.get("USTOR_FUSE_CRASH_ROUNDS", "5"))
SEED = int(os.environ.get("USTOR_FUSE_CRASH_SEED", str(random.SystemRandom().randrange(1 << 32))))
BLOB_TOOL = os.path.join(fl.BIN, "ustor-blob")


def sha(b):
    return hashlib.sha1(b).hexdigest()


# ---- the workload (child process) ------------------------------------------------------------

def workload(mnt, journal_path, rnd, seed):
    """Runs until the mount dies; every line is in the journal before the call returns."""
    rng = random.Random(seed)
    jfd = os.open(journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def note(*words):
        os.write(jfd, (" ".join(str(w) for w in words) + "\n").encode())

    synced = []  # names (relative) whose content is fsynced and not touched since
    sub = "r%d_dir" % rnd
    os.mkdir(os.path.join(mnt, sub))
    note("MKDIR", sub)
    i = 0
    while True:
        i += 1
        r = rng.random()
        if r < 0.45 or len(synced) < 3:
            name = "r%d_f%d" % (rnd, i)
            data = rng.randbytes(rng.choice([10, 4096, 70000, 300000]))
            fd = os.open(os.path.join(mnt, name), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            note("F", name, sha(data))
            synced.append(name)
        elif r < 0.70:
            a = synced.pop(rng.randrange(len(synced)))
            b = (sub + "/" if rng.random() < 0.5 and "/" not in a else "") + \
                os.path.basename(a) + ".r%d" % i
            note("R", a, b)
            os.rename(os.path.join(mnt, a), os.path.join(mnt, b))
            note("RD", a, b)
            synced.append(b)
        elif r < 0.80:
            a = synced.pop(rng.randrange(len(synced)))
            note("U", a)
            os.unlink(os.path.join(mnt, a))
            note("UD", a)
        elif r < 0.85:
            # open(O_TRUNC) of a fsynced file, new content, fsync
            a = synced.pop(rng.randrange(len(synced)))
            data = rng.randbytes(rng.choice([10, 5000, 100000]))
            note("T", a)
            fd = os.open(os.path.join(mnt, a), os.O_WRONLY | os.O_TRUNC)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            note("F", a, sha(data))
            synced.append(a)
        elif r < 0.92:
            # a rename over an existing fsynced file: the target is replaced whole
            a = synced.pop(rng.randrange(len(synced)))
            b = synced.pop(rng.randrange(len(synced)))
            note("RO", a, b)
            os.rename(os.path.join(mnt, a), os.path.join(mnt, b))
            note("RD", a, b)
            synced.append(b)
        else:
            # written, not fsynced: nothing is promised about it
            name = "r%d_n%d" % (rnd, i)
            with open(os.path.join(mnt, name), "wb") as f:
                f.write(rng.randbytes(rng.randrange(1, 200000)))


def run_workload(mnt, journal_path, rnd, seed):
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            workload(mnt, journal_path, rnd, seed)
        except OSError:
            code = 0  # the mount died under it: expected
        except BaseException as e:  # anything else is a test bug
            print("workload: %r" % (e,))
            code = 1
        finally:
            os._exit(code)
    return pid


# ---- what the journal promises ------------------------------------------------------------------

class Expect:
    """Per name: its content hash, or None for "may be there or not"."""

    def __init__(self):
        self.content = {}   # name -> sha: must exist with it
        self.pairs = []     # (a, b, sha): exactly one of them, with sha
        self.gone = set()   # must not exist
        self.maybe = set()  # either way (an unacknowledged unlink or rename target)
        self.exists = set()  # there, content unknown (an unacknowledged rewrite)

    def apply(self, journal_path):
        """Fold one round's journal into the expectation (the lines of an interrupted op last)."""
        with open(journal_path) as f:
            lines = [ln.split() for ln in f.read().splitlines()]
        pending = None
        for w in lines:
            kind = w[0]
            if kind == "F":
                self.content[w[1]] = w[2]
                self.gone.discard(w[1])
            elif kind in ("R", "RO"):
                pending = w
            elif kind == "RD":
                a, b = w[1], w[2]
                self.content[b] = self.content.pop(a)
                self.gone.add(a)
                self.gone.discard(b)
                pending = None
            elif kind in ("U", "T"):
                pending = w
            elif kind == "UD":
                self.content.pop(w[1], None)
                self.gone.add(w[1])
                pending = None
        if pending is None:
            return
        if pending[0] == "T":
            # rewritten in place, not yet fsynced: it exists, its content is not promised
            self.content.pop(pending[1])
            self.exists.add(pending[1])
        elif pending[0] == "U":
            self.maybe.add(pending[1])
            self.content.pop(pending[1], None)
        elif pending[0] == "R":
            a, b = pending[1], pending[2]
            self.pairs.append((a, b, self.content.pop(a)))
        else:  # RO: a over b; the old b or the new b, and a only if b is still the old one
            a, b = pending[1], pending[2]
            self.pairs.append(("RO", a, b, self.content.pop(a), self.content.pop(b)))

    def verify(self, mnt, rnd):
        def content_of(name):
            p = os.path.join(mnt, name)
            if not os.path.lexists(p):
                return None
            with open(p, "rb") as f:
                return sha(f.read())

        for name, h in sorted(self.content.items()):
            got = content_of(name)
            check(got is not None, "round %d: fsynced file %s is missing" % (rnd, name))
            check(got == h, "round %d: fsynced file %s has other content" % (rnd, name))
        for name in sorted(self.exists):
            check(os.path.lexists(os.path.join(mnt, name)),
                  "round %d: %s, being rewritten, is missing" % (rnd, name))
        for name in sorted(self.gone):
            check(not os.path.lexists(os.path.join(mnt, name)),
                  "round %d: %s was unlinked or renamed away, and is back" % (rnd, name))
        resolved = []
        for p in self.pairs:
            if p[0] == "RO":
                _, a, b, ha, hb = p
                ga, gb = content_of(a), content_of(b)
                # before: a=ha, b=hb; after: a gone, b=ha
                check((ga, gb) in ((ha, hb), (None, ha)),
                      "round %d: rename %s over %s is neither before nor after: %s, %s"
                      % (rnd, a, b, ga, gb))
                if ga is None:
                    self.gone.add(a)
                    resolved.append((b, ha))
                else:
                    resolved += [(a, ha), (b, hb)]
            else:
                a, b, h = p
                ga, gb = content_of(a), content_of(b)
                check((ga is None) != (gb is None),
                      "round %d: rename %s -> %s left %s" % (rnd, a, b,
                                                            "both" if ga else "neither"))
                check((ga or gb) == h, "round %d: renamed file %s/%s lost its content"
                      % (rnd, a, b))
                resolved.append((b, h) if ga is None else (a, h))
                self.gone.add(a if ga is None else b)
        self.pairs = []
        for name, h in resolved:
            self.content[name] = h
            self.gone.discard(name)
        for name in self.maybe:
            if os.path.lexists(os.path.join(mnt, name)):
                self.gone.discard(name)
            else:
                self.gone.add(name)
        self.maybe = set()


# ---- the store ------------------------------------------------------------------------------

def fsck(img, work, after_crash):
    """ustor-blob fsck on the image: no error ever; fully clean after a clean unmount."""
    cfg = os.path.join(work, "fsck.json")
    with open(cfg, "w") as f:
        f.write('{"subsystems":[{"subsystem":"bdev","config":[{"method":"bdev_aio_create",'
                '"params":{"name":"Img0","filename":"%s","block_size":4096}}]}]}' % img)
    r = subprocess.run([BLOB_TOOL, "--no-huge", "-c", cfg, "-b", "Img0", "fsck"],
                       capture_output=True, text=True, timeout=300)
    out = "\n".join(ln for ln in (r.stdout + r.stderr).splitlines() if not ln.startswith("EAL"))
    what = "after the crash" if after_crash else "after a clean unmount"
    check(r.returncode == 0, "fsck %s exited %d:\n%s" % (what, r.returncode, out))
    summary = [ln for ln in out.splitlines() if ln.startswith("summary:")]
    check(len(summary) == 1, "fsck %s printed no summary:\n%s" % (what, out))
    check(re.search(r"; 0 errors", summary[0]) is not None,
          "fsck %s reports errors:\n%s" % (what, out))
    if not after_crash:
        check(re.search(r"\), clean;", summary[0]) and re.search(r", 0 warnings", summary[0]),
              "fsck after a clean unmount is not clean:\n%s" % out)
    return summary[0]


def kill_mount(m):
    """SIGKILL the daemon, then clear the dead mount point."""
    m.proc.send_signal(signal.SIGKILL)
    m.proc.wait(60)
    fl._live.remove(m)
    r = subprocess.run(["fusermount3", "-u", "-z", m.mnt], capture_output=True, text=True)
    check(r.returncode == 0, "fusermount3 -u -z: %s" % r.stderr)
    deadline = time.time() + 30
    while fl.is_mounted(m.mnt):
        check(time.time() < deadline, "%s still mounted after fusermount3 -u -z" % m.mnt)
        time.sleep(0.05)


def main():
    if not os.path.exists(BLOB_TOOL):
        fl.skip("ustor-blob is not built in " + fl.BUILDDIR)
    print("seed %d, %d rounds (USTOR_FUSE_CRASH_SEED=%d reproduces the choices)"
          % (SEED, ROUNDS, SEED))
    sys.stdout.flush()
    rng = random.Random(SEED)
    work, img, mnt = fl.workdir("fuse_crash")
    expect = Expect()
    m = fl.Mount(img, mnt, fmt=True, size="512M")
    for rnd in range(ROUNDS):
        journal = os.path.join(work, "journal%d" % rnd)
        delay = rng.uniform(0.2, 2.0)
        pid = run_workload(mnt, journal, rnd, rng.randrange(1 << 32))
        time.sleep(delay)
        kill_mount(m)
        _, status = os.waitpid(pid, 0)
        check(os.waitstatus_to_exitcode(status) == 0, "round %d: the workload failed" % rnd)
        expect.apply(journal)
        with open(journal) as f:
            n = len(f.read().splitlines())
        print("round %d: killed after %.2f s, %d journaled steps" % (rnd, delay, n))
        sys.stdout.flush()
        print("  fsck after the crash: " + fsck(img, work, after_crash=True))
        m = fl.Mount(img, mnt)   # recovery: replay and orphans
        expect.verify(mnt, rnd)
        m.umount()
        fsck(img, work, after_crash=False)
        m = fl.Mount(img, mnt)
        expect.verify(mnt, rnd)
    m.umount()
    print("PASS (seed %d, %d rounds, %d files checked)" % (SEED, ROUNDS, len(expect.content)))


if __name__ == "__main__":
    main()
