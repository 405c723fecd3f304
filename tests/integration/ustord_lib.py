"""Shared helpers of the integration tests that run ustord (lvol_grow.py,
make_run.py, lvol_restart.py, ustord_config.py); not a test itself: not
executable.

A Daemon is one ustord process, started directly or through scripts/run.sh,
whose output is kept for failure messages; stop() signals it and checks that
it exits 0, leaves nothing mounted (when it serves a mount) and removes its
RPC socket (when told which). A daemon expected to fail at start-up is
started without a ready check and waited for with wait_exit(). cleanup(),
registered with atexit by the tests, kills what still runs and unmounts
lazily, so a failing test leaves nothing behind. rpc() calls scripts/rpc.py
and fails the test, with the daemon's output, when the call fails;
rpc_error() is the other way round and returns the error. answers() says
whether ustord serves RPCs on a socket yet.
"""
import json
import os
import socket
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


def answers(sock):
    """True once a JSON-RPC server on sock answers rpc_get_methods."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(sock)
            s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"rpc_get_methods"}')
            return len(s.recv(65536)) > 0
    except OSError:
        return False


class Daemon:
    """argv started with its output kept; waits until ready() or fails.

    mnt: the mount point it serves, or None. ready None: do not wait (for a
    start that must fail; see wait_exit). sock: its RPC socket, which stop()
    then checks is gone. on_early_exit(output), if given, runs first when the
    process exits during start-up (e.g. to skip when a module is missing)."""

    def __init__(self, argv, mnt, ready, timeout, cwd=None, on_early_exit=None, sock=None):
        self.name = os.path.basename(argv[0])
        self.mnt = mnt
        self.sock = sock
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)
        _procs.append(self.proc)
        if mnt is not None and mnt not in _mounts:
            _mounts.append(mnt)
        if ready is None:
            return
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

    def stop(self, sig, timeout=fl.UMOUNT_TIMEOUT):
        """sig (SIGTERM, SIGINT): a clean shutdown within timeout s, exit 0,
        nothing left mounted, the socket (if known) removed."""
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            fail("%s did not exit within %d s of signal %d:\n%s"
                 % (self.name, timeout, sig, self.output()))
        check(rc == 0, "exit %d after signal %d:\n%s" % (rc, sig, self.output()))
        if self.mnt is not None:
            check(not fl.is_mounted(self.mnt), "%s still mounted after exit" % self.mnt)
        if self.sock is not None:
            check(not os.path.exists(self.sock), "socket %s left behind after exit" % self.sock)

    def wait_exit(self, timeout, what):
        """The exit code of a process that must end by itself within timeout s
        (what: the case, for the failure message)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            fail("%s: %s still running after %d s:\n%s" % (what, self.name, timeout, self.output()))


def _rpc_py(sock, args, timeout):
    return subprocess.run([sys.executable, RPC_PY, "-s", sock] + list(args),
                          capture_output=True, text=True, timeout=timeout)


def rpc(sock, *args, daemon=None, timeout=120):
    """scripts/rpc.py on sock: its JSON answer, a string printed as is, or None."""
    r = _rpc_py(sock, args, timeout)
    check(r.returncode == 0, "rpc.py %s: %s%s" % (" ".join(args), r.stderr,
                                                   "\n" + daemon.output() if daemon else ""))
    out = r.stdout.strip()
    try:
        return json.loads(out) if out else None
    except ValueError:
        return out


def rpc_error(sock, *args, timeout=120):
    """scripts/rpc.py on sock for a call that must fail: its error output."""
    r = _rpc_py(sock, args, timeout)
    check(r.returncode != 0, "rpc.py %s succeeded; expected an error" % " ".join(args))
    return r.stderr
