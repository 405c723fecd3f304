#!/usr/bin/env python3
"""ustord life cycle: --help and bad options, start-up, idle CPU use (an idle
daemon must sleep, not spin), clean shutdown on SIGTERM and on SIGINT (exit 0,
socket removed), the same with two reactors, and a daemon that refuses a
socket another live daemon owns.

Exit 0 on pass, 1 on failure, 77 to skip (reason on the last line).
The build directory comes from USTOR_BUILDDIR (default: build).
"""
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDDIR = os.environ.get("USTOR_BUILDDIR", os.path.join(ROOT, "build"))
USTORD = os.path.join(BUILDDIR, "bin", "ustord")
START_TIMEOUT = 30
STOP_TIMEOUT = 20
running = []


def cleanup():
    """Never leave a daemon or a socket behind, whatever happened."""
    for d in running:
        d.kill()


atexit.register(cleanup)


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def sock_path(tag):
    return "/tmp/ustor_it_lifecycle_%s_%d.sock" % (tag, os.getpid())


class Daemon:
    """One ustord process with its output captured in a temporary file."""

    def __init__(self, sock, *args):
        self.sock = sock
        self.logfile = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([USTORD, "--no-huge", "-r", sock] + list(args),
                                     stdout=self.logfile, stderr=subprocess.STDOUT)
        running.append(self)

    def output(self):
        self.logfile.seek(0)
        return self.logfile.read().decode(errors="replace")

    def wait_ready(self):
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            if self.proc.poll() is not None:
                fail("ustord exited with %d during start-up:\n%s"
                     % (self.proc.returncode, self.output()))
            try:
                call(self.sock, "rpc_get_methods")
                return
            except OSError:
                time.sleep(0.05)
        self.kill()
        fail("ustord did not answer on %s within %d s:\n%s"
             % (self.sock, START_TIMEOUT, self.output()))

    def stop(self, sig):
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            fail("ustord did not exit within %d s of signal %d:\n%s"
                 % (STOP_TIMEOUT, sig, self.output()))
        return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if os.path.exists(self.sock):
            os.unlink(self.sock)


def call(sock, method, params=None):
    """One JSON-RPC call on a fresh connection; returns the response object."""
    req = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        req["params"] = params
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(sock)
        s.sendall(json.dumps(req).encode())
        buf = b""
        dec = json.JSONDecoder()
        while True:
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("connection closed before a full response")
            buf += chunk
            try:
                obj, _ = dec.raw_decode(buf.decode())
                return obj
            except ValueError:
                continue


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields 14 and 15 (utime, stime) are the 12th and 13th after the ")".
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check_help_and_bad_options():
    out = subprocess.run([USTORD, "--help"], capture_output=True, text=True, timeout=10)
    if out.returncode != 0 or "--no-huge" not in out.stdout or "-m" not in out.stdout:
        fail("ustord --help: exit %d, output:\n%s" % (out.returncode, out.stdout))
    for args, needle in ((["--poll-mode", "sometimes"], "sometimes"),
                         (["--mem-size", "lots"], "lots"),
                         (["-m", "zz"], "zz"),
                         (["--log-level", "loud"], "loud"),
                         (["--no-such-option"], "no-such-option"),
                         (["stray"], "stray")):
        out = subprocess.run([USTORD] + args, capture_output=True, text=True, timeout=10)
        if out.returncode == 0 or needle not in out.stderr:
            fail("ustord %s: expected a failure naming '%s', got exit %d:\n%s"
                 % (" ".join(args), needle, out.returncode, out.stderr))
    print("ok: --help and bad options")


def check_idle_cpu(mask):
    d = Daemon(sock_path("idle" + mask), "-m", mask)
    d.wait_ready()
    time.sleep(0.5)  # let start-up work and the adaptive idle stretch pass
    t0, c0 = time.time(), cpu_seconds(d.proc.pid)
    time.sleep(2.0)
    t1, c1 = time.time(), cpu_seconds(d.proc.pid)
    share = (c1 - c0) / (t1 - t0)
    rc = d.stop(signal.SIGTERM)
    if share >= 0.10:
        fail("idle ustord -m %s used %.1f%% of a core (limit 10%%)" % (mask, share * 100))
    if rc != 0:
        fail("ustord -m %s: exit %d after SIGTERM:\n%s" % (mask, rc, d.output()))
    print("ok: idle ustord -m %s used %.2f%% of a core" % (mask, share * 100))


def check_signal(sig, mask):
    sock = sock_path("sig%d" % sig)
    d = Daemon(sock, "-m", mask)
    d.wait_ready()
    if not os.path.exists(sock):
        fail("socket %s missing while ustord runs" % sock)
    reactors = call(sock, "framework_get_reactors")["result"]["reactors"]
    rc = d.stop(sig)
    if rc != 0:
        fail("ustord exit code %d after signal %d (expected 0):\n%s" % (rc, sig, d.output()))
    if os.path.exists(sock):
        d.kill()
        fail("socket %s left behind after signal %d" % (sock, sig))
    if "shutting down" not in d.output():
        fail("no shutdown message after signal %d:\n%s" % (sig, d.output()))
    print("ok: signal %d with -m %s (%d reactors): exit 0, socket removed"
          % (sig, mask, len(reactors)))


def check_socket_in_use():
    sock = sock_path("inuse")
    first = Daemon(sock)
    first.wait_ready()
    second = subprocess.run([USTORD, "--no-huge", "-r", sock], capture_output=True, text=True,
                            timeout=START_TIMEOUT)
    if second.returncode == 0:
        first.kill()
        fail("a second ustord on %s exited 0" % sock)
    if sock not in second.stderr:
        first.kill()
        fail("the second ustord's error does not name the socket:\n%s" % second.stderr)
    if not os.path.exists(sock) or call(sock, "ustor_get_version").get("result") is None:
        first.kill()
        fail("the first ustord lost its socket to the second")
    rc = first.stop(signal.SIGTERM)
    if rc != 0:
        fail("first ustord exit %d:\n%s" % (rc, first.output()))
    print("ok: a second ustord on a live socket fails (exit %d) and leaves it alone"
          % second.returncode)


def main():
    if not os.access(USTORD, os.X_OK):
        print("%s not built (set USTOR_BUILDDIR or run make)" % USTORD)
        sys.exit(77)
    check_help_and_bad_options()
    check_signal(signal.SIGTERM, "0x1")
    check_signal(signal.SIGINT, "0x1")
    check_signal(signal.SIGINT, "0x3")
    check_idle_cpu("0x1")
    check_idle_cpu("0x3")
    check_socket_in_use()
    print("PASS")


if __name__ == "__main__":
    main()
