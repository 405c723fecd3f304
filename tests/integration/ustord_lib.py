"""Shared helpers of the integration tests that run ustord with a blobfs mount
(lvol_grow.py, make_run.py); not a test itself: not executable.

A Daemon is one ustord process, started directly or through scripts/run.sh,
whose output is kept for failure messages; stop() signals it and checks that
it exits 0 and leaves nothing mounted. cleanup(), registered with atexit by
the tests, kills what still runs and unmounts lazily, so a failing test
leaves nothing behind. rpc() calls scripts/rpc.py and fails the test, with
the daemon's output, when the call fails.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import fuse_lib as fl
from fuse_lib import check, fail

RPC_PY = os.path.join(fl.ROOT, "scripts", "rpc.py")

_procs = []
_mounts = []


def cleanup():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    for mnt in _mounts:
        if fl.is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", "-z", mnt], capture_output=True)
    fl.cleanup()


class Daemon:
    """argv started with its output kept; waits until ready() or fails.

    on_early_exit(output), if given, runs first when the process exits during
    start-up (e.g. to skip when a module is missing)."""

    def __init__(self, argv, mnt, ready, timeout, cwd=None, on_early_exit=None):
        self.name = os.path.basename(argv[0])
        self.mnt = mnt
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)
        _procs.append(self.proc)
        if mnt not in _mounts:
            _mounts.append(mnt)
        deadline = time.time() + timeout
        while not ready():
            if self.proc.poll() is not None:
                out = self.output()
                if on_early_exit is not None:
                    on_early_exit(out)
                fail("%s exited %d during start-up:\n%s" % (self.name, self.proc.returncode, out))
            if time.time() > deadline:
                fail("%s not ready within %d s:\n%s" % (self.name, timeout, self.output()))
            time.sleep(0.1)

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self, sig):
        """sig (SIGTERM, SIGINT): a clean shutdown, exit 0, nothing left mounted."""
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=fl.UMOUNT_TIMEOUT)
        except subprocess.TimeoutExpired:
            fail("%s did not exit within %d s of signal %d:\n%s"
                 % (self.name, fl.UMOUNT_TIMEOUT, sig, self.output()))
        check(rc == 0, "exit %d after signal %d:\n%s" % (rc, sig, self.output()))
        check(not fl.is_mounted(self.mnt), "%s still mounted after exit" % self.mnt)


def rpc(sock, *args, daemon=None, timeout=120):
    """scripts/rpc.py on sock: its JSON answer, a string printed as is, or None."""
    r = subprocess.run([sys.executable, RPC_PY, "-s", sock] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    check(r.returncode == 0, "rpc.py %s: %s%s" % (" ".join(args), r.stderr,
                                                   "\n" + daemon.output() if daemon else ""))
    out = r.stdout.strip()
    try:
        return json.loads(out) if out else None
    except ValueError:
        return out
