#!/usr/bin/env python3
"""ustord's JSON-RPC server through scripts/rpc.py and raw sockets: the
framework methods (rpc_get_methods, ustor_get_version and its alias,
framework_get_reactors with two reactors, thread_get_stats, log levels,
framework_get_config), parameter errors, and robustness: garbage bytes,
truncated JSON, an oversized request and a stalled client must not stop the
server from answering others. Ends with SIGTERM: exit 0, socket removed.

Exit 0 on pass, 1 on failure, 77 to skip (reason on the last line).
The build directory comes from USTOR_BUILDDIR (default: build).
"""
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
RPC_PY = os.path.join(ROOT, "scripts", "rpc.py")
SOCK = "/tmp/ustor_it_rpc_%d.sock" % os.getpid()
START_TIMEOUT = 30

daemon = None
logfile = tempfile.TemporaryFile()


def output():
    logfile.seek(0)
    return logfile.read().decode(errors="replace")


def fail(msg):
    print("FAIL: " + msg)
    if daemon is not None and daemon.poll() is None:
        daemon.kill()
        daemon.wait()
        print("---- ustord output ----\n" + output())
    if os.path.exists(SOCK):
        os.unlink(SOCK)
    sys.exit(1)


def rpc(*args, expect_fail=False):
    """Run scripts/rpc.py; returns stdout (parsed as JSON when it is JSON)."""
    out = subprocess.run([sys.executable, RPC_PY, "-s", SOCK, "-t", "20"] + list(args),
                         capture_output=True, text=True, timeout=60)
    if expect_fail:
        if out.returncode == 0:
            fail("rpc.py %s succeeded; expected an error" % " ".join(args))
        return out.stderr
    if out.returncode != 0:
        fail("rpc.py %s: exit %d: %s" % (" ".join(args), out.returncode, out.stderr))
    try:
        return json.loads(out.stdout)
    except ValueError:
        return out.stdout.strip()


def read_responses(s, count):
    """Read count JSON values from s; fewer if the server closes the connection first."""
    buf = ""
    dec = json.JSONDecoder()
    values = []
    while len(values) < count:
        buf = buf.lstrip()
        if buf:
            try:
                obj, end = dec.raw_decode(buf)
                values.append(obj)
                buf = buf[end:]
                continue
            except ValueError:
                pass
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        buf += chunk.decode(errors="replace")
    return values


def read_response(s):
    """Read one JSON value from s; None if the server closed the connection first."""
    values = read_responses(s, 1)
    return values[0] if values else None


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(SOCK)
    return s


def raw_call(method, params=None, rid=1):
    req = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        req["params"] = params
    with connect() as s:
        s.sendall(json.dumps(req).encode())
        return read_response(s)


def assert_alive(after):
    resp = raw_call("ustor_get_version", rid=77)
    if resp is None or resp.get("id") != 77 or "result" not in resp:
        fail("server does not answer after %s: %r" % (after, resp))


def start():
    global daemon
    daemon = subprocess.Popen([USTORD, "--no-huge", "-m", "0x3", "-r", SOCK],
                              stdout=logfile, stderr=subprocess.STDOUT)
    deadline = time.time() + START_TIMEOUT
    while time.time() < deadline:
        if daemon.poll() is not None:
            fail("ustord exited with %d during start-up" % daemon.returncode)
        try:
            raw_call("rpc_get_methods")
            return
        except OSError:
            time.sleep(0.05)
    fail("ustord did not answer within %d s" % START_TIMEOUT)


def check_methods():
    methods = rpc("rpc_get_methods")
    for m in ("rpc_get_methods", "ustor_get_version", "framework_get_reactors",
              "thread_get_stats", "framework_get_subsystems", "framework_get_config",
              "save_config", "log_set_level", "log_get_level", "log_set_print_level"):
        if m not in methods:
            fail("rpc_get_methods lacks %s: %r" % (m, methods))
    if "spdk_get_version" in methods:
        fail("rpc_get_methods lists the alias spdk_get_version without --include-aliases")
    if "spdk_get_version" not in rpc("rpc_get_methods", "--include-aliases"):
        fail("rpc_get_methods --include-aliases lacks spdk_get_version")
    print("ok: rpc_get_methods (%d methods)" % len(methods))


def check_version():
    with open(os.path.join(ROOT, "VERSION")) as f:
        version = f.read().strip()
    v = rpc("ustor_get_version")
    if v.get("version") != "ustor v" + version:
        fail("ustor_get_version: %r (VERSION says %s)" % (v, version))
    major, minor, patch = (int(x) for x in version.split(".")[:3])
    if v["fields"] != {"major": major, "minor": minor, "patch": patch, "suffix": ""}:
        fail("ustor_get_version fields: %r" % v["fields"])
    if rpc("call", "spdk_get_version") != v:
        fail("spdk_get_version differs from ustor_get_version")
    err = rpc("call", "ustor_get_version", '{"verbose": true}', expect_fail=True)
    if "-32602" not in err:
        fail("ustor_get_version with parameters: expected error -32602, got %s" % err)
    print("ok: ustor_get_version, spdk_get_version, parameter check")


def check_reactors():
    r = rpc("framework_get_reactors")
    if r.get("tick_rate", 0) <= 0:
        fail("framework_get_reactors: bad tick_rate: %r" % r)
    lcores = sorted(x["lcore"] for x in r["reactors"])
    if lcores != [0, 1]:
        fail("framework_get_reactors with -m 0x3: lcores %r, expected [0, 1]" % lcores)
    names = [t["name"] for x in r["reactors"] for t in x["lw_threads"]]
    if names.count("app_thread") != 1:
        fail("app_thread should appear once: %r" % r)
    main = [x for x in r["reactors"] if x["lcore"] == 0][0]
    app = [t for t in main["lw_threads"] if t["name"] == "app_thread"]
    if not app or app[0]["cpumask"] != "0x1":
        fail("app_thread is not on the main core's reactor with cpumask 0x1: %r" % r)
    for x in r["reactors"]:
        if x["busy"] < 0 or x["idle"] <= 0 or x["in_interrupt"] is not True:
            fail("reactor counters look wrong: %r" % x)
    print("ok: framework_get_reactors: 2 reactors, app_thread on lcore 0")


def check_thread_stats():
    s = rpc("thread_get_stats")
    if s.get("tick_rate", 0) <= 0 or not s.get("threads"):
        fail("thread_get_stats: %r" % s)
    app = [t for t in s["threads"] if t["name"] == "app_thread"]
    if len(app) != 1:
        fail("thread_get_stats: no app_thread: %r" % s)
    t = app[0]
    for key in ("id", "cpumask", "busy", "idle", "active_pollers_count", "timed_pollers_count",
                "paused_pollers_count"):
        if key not in t:
            fail("thread_get_stats lacks %s: %r" % (key, t))
    if t["busy"] <= 0 or t["timed_pollers_count"] < 1:
        fail("app_thread should have been busy and own the RPC poller: %r" % t)
    print("ok: thread_get_stats")


def check_log_and_config():
    rpc("log_set_level", "INFO")
    if rpc("log_get_level") != "INFO":
        fail("log_get_level after log_set_level INFO: %r" % rpc("log_get_level"))
    rpc("log_set_level", "NOTICE")
    subs = rpc("framework_get_subsystems")
    if {"subsystem": "log", "depends_on": []} not in subs:
        fail("framework_get_subsystems lacks log: %r" % subs)
    calls = rpc("framework_get_config", "log")
    if not any(c["method"] == "log_set_print_level" for c in calls):
        fail("framework_get_config log: %r" % calls)
    err = rpc("framework_get_config", "no_such_subsystem", expect_fail=True)
    if "not found" not in err:
        fail("framework_get_config of an unknown subsystem: %s" % err)
    err = rpc("call", "no_such_method", expect_fail=True)
    if "-32601" not in err:
        fail("an unknown method should give -32601: %s" % err)
    print("ok: log levels, framework_get_subsystems, framework_get_config")


def check_garbage():
    with connect() as s:
        s.sendall(b"\x00\xff\xfe garbage }}} \x01\x02\n")
        resp = read_response(s)
    if resp is not None and resp.get("error", {}).get("code") != -32700:
        fail("garbage: expected a parse error or a closed connection, got %r" % resp)
    assert_alive("garbage bytes")

    with connect() as s:
        s.sendall(b'{"jsonrpc":"2.0","id":5,"method":"ustor_get_ver')
        s.shutdown(socket.SHUT_WR)
        resp = read_response(s)
    if resp is not None and "error" not in resp:
        fail("truncated JSON: expected an error or a closed connection, got %r" % resp)
    assert_alive("truncated JSON")

    # A client that stalls in the middle of a request must not block others.
    stalled = connect()
    stalled.sendall(b'{"jsonrpc":"2.0","id":6,"method":')
    assert_alive("a stalled partial request")
    stalled.close()

    # Two requests in one write are both answered, in order.
    with connect() as s:
        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"log_get_level"}'
                  b'{"jsonrpc":"2.0","id":2,"method":"log_get_print_level"}')
        answers = read_responses(s, 2)
        if [a.get("id") for a in answers] != [1, 2]:
            fail("pipelined requests: %r" % answers)

    # Larger than the server's 32 MB limit: an error or a closed connection.
    huge = b'{"jsonrpc":"2.0","id":9,"method":"ustor_get_version","params":{"x":"' + \
        b"a" * (40 * 1024 * 1024) + b'"}}'
    resp = None
    with connect() as s:
        try:
            s.sendall(huge)
            resp = read_response(s)
        except (BrokenPipeError, ConnectionResetError):
            resp = None
    if resp is not None and "error" not in resp:
        fail("a 40 MB request should be refused, got %r" % str(resp)[:200])
    assert_alive("a 40 MB request")
    print("ok: garbage, truncated, stalled, pipelined and oversized requests")


def check_sigterm():
    daemon.send_signal(signal.SIGTERM)
    try:
        rc = daemon.wait(20)
    except subprocess.TimeoutExpired:
        fail("ustord did not exit within 20 s of SIGTERM")
    if rc != 0:
        fail("ustord exit %d after SIGTERM" % rc)
    if os.path.exists(SOCK):
        fail("socket %s left behind" % SOCK)
    print("ok: SIGTERM: exit 0, socket removed")


def main():
    if not os.access(USTORD, os.X_OK):
        print("%s not built (set USTOR_BUILDDIR or run make)" % USTORD)
        sys.exit(77)
    start()
    try:
        check_methods()
        check_version()
        check_reactors()
        check_thread_stats()
        check_log_and_config()
        check_garbage()
        check_sigterm()
    except Exception as e:  # a crash of the test itself must not leave ustord behind
        fail("unexpected %s: %s" % (type(e).__name__, e))
    print("PASS")


if __name__ == "__main__":
    main()
