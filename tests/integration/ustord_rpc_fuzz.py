#!/usr/bin/env python3
"""Every JSON-RPC method of ustord called with wrong parameters, at random.

Bad input over RPC must get a JSON-RPC answer, never a crash or a hang.
ustord starts with a few bdevs (malloc bdevs, an lvstore, an lvol and a
blobfs that ./mnt may mount) so that names reach past the lookup; then, for USTOR_RPC_FUZZ_CALLS calls
(default 1500), a method from rpc_get_methods is called with:
  - no params, or params that are not an object (array, string, number,
    null, a boolean);
  - an object of parameter names that ustord's methods use, with values of
    every JSON type: empty, long and odd strings, the existing names, zero,
    negative and huge integers, fractions, nested arrays and objects;
  - for the methods below with a valid parameter set, that set as it is
    (so that bdevs, lvols and a mount come and go), or with one value
    replaced, one member dropped or one unknown member added.
(A string holding U+0000, valid JSON that the server's C strings cannot
hold, is checked once: a parse error, -32700 with id null.) Each answer
must be a JSON-RPC 2.0 response to that id: a result, or an
error with an integer code and a message string. Every 100 calls the server
must still answer ustor_get_version and the base bdevs are created again
(whatever an earlier call deleted). At the end SIGTERM must stop it with
exit status 0; under ASan any report fails it.

Strings are names in a fresh working directory or not paths at all, so a
call that takes a file name or a mount point can reach no file outside it.

Seeded: the seed is printed; USTOR_RPC_FUZZ_SEED=N repeats a run.
Exit 0 on pass, 1 on failure, 77 to skip (reason on the last line).
"""
import atexit
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDDIR = os.path.abspath(os.environ.get("USTOR_BUILDDIR", os.path.join(ROOT, "build")))
USTORD = os.path.join(BUILDDIR, "bin", "ustord")
SOCK = "/tmp/ustor_it_rpcfuzz_%d.sock" % os.getpid()
CALLS = int(os.environ.get("USTOR_RPC_FUZZ_CALLS", "1500"))
SEED = int(os.environ.get("USTOR_RPC_FUZZ_SEED", str(random.SystemRandom().randrange(1 << 32))))
CALL_TIMEOUT = 30
START_TIMEOUT = 30

workdir = tempfile.mkdtemp(prefix="ustor_rpcfuzz_")
logfile = tempfile.TemporaryFile()
daemon = None
last_call = "(none yet)"


def output():
    logfile.seek(0)
    return logfile.read().decode(errors="replace")


def cleanup():
    if daemon is not None and daemon.poll() is None:
        daemon.kill()
        daemon.wait()
    if os.path.exists(SOCK):
        os.unlink(SOCK)
    # a mount point can only be a name in workdir: detach anything left there
    for name in os.listdir(workdir) if os.path.isdir(workdir) else []:
        path = os.path.join(workdir, name)
        if os.path.ismount(path):
            subprocess.run(["fusermount3", "-u", "-z", path], capture_output=True)
    shutil.rmtree(workdir, ignore_errors=True)


atexit.register(cleanup)


def fail(msg):
    print("FAIL (seed %d, USTOR_RPC_FUZZ_SEED=%d repeats): %s" % (SEED, SEED, msg))
    print("last call: %s" % last_call)
    if daemon is not None and daemon.poll() is None:
        daemon.kill()
        daemon.wait()
    print("---- ustord output (last 8000 bytes) ----\n" + output()[-8000:])
    sys.exit(1)


# ---- the connection --------------------------------------------------------------------------

class Conn:
    """One connection to the server, reconnected if the server closes it."""

    def __init__(self):
        self.s = None
        self.buf = ""
        self.dec = json.JSONDecoder()

    def _connect(self):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(CALL_TIMEOUT)
        self.s.connect(SOCK)
        self.buf = ""

    def close(self):
        if self.s is not None:
            self.s.close()
        self.s = None

    def _read_one(self):
        while True:
            text = self.buf.lstrip()
            if text:
                try:
                    obj, end = self.dec.raw_decode(text)
                    self.buf = text[end:]
                    return obj
                except ValueError:
                    pass
            try:
                chunk = self.s.recv(1 << 20)
            except socket.timeout:
                fail("no answer within %d s" % CALL_TIMEOUT)
            if not chunk:
                return None
            self.buf += chunk.decode(errors="replace")

    def call(self, payload):
        """Send one request (bytes); its answer, or None if the server closed the connection."""
        if self.s is None:
            self._connect()
        try:
            self.s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close()
            return None
        try:
            resp = self._read_one()
        except ConnectionResetError:
            resp = None
        if resp is None:
            self.close()
        return resp


conn = Conn()


def call(method, params=None, rid=1, omit_params=False):
    global last_call
    req = {"jsonrpc": "2.0", "id": rid, "method": method}
    if not omit_params:
        req["params"] = params
    payload = json.dumps(req, ensure_ascii=False).encode("utf-8", "surrogatepass")
    last_call = payload[:600].decode(errors="replace")
    resp = conn.call(payload)
    if daemon.poll() is not None:
        fail("ustord exited with status %d" % daemon.returncode)
    return resp


def check_response(resp, rid):
    if not isinstance(resp, dict):
        fail("not a JSON-RPC response: %r" % (resp,))
    if resp.get("jsonrpc") != "2.0" or resp.get("id") != rid:
        fail("wrong jsonrpc/id (sent id %r): %r" % (rid, resp))
    if ("result" in resp) == ("error" in resp):
        fail("a response has exactly one of result and error: %r" % resp)
    if "error" in resp:
        err = resp["error"]
        if not isinstance(err, dict) or not isinstance(err.get("code"), int) or \
                isinstance(err.get("code"), bool) or not isinstance(err.get("message"), str):
            fail("malformed error object: %r" % resp)


# ---- values ---------------------------------------------------------------------------------

NAMES = ["Malloc0", "Malloc1", "lvs0", "lvs0/lv0", "lv0", "Null0", "Nvme0", "Nvme0n1", "raid0",
         "M9", "PT0", "D0", "C0", "snap0", "lvs0/snap0", "EE_Malloc0", "Malloc0p0", "mnt"]
WORDS = ["", "x", "raid0", "raid1", "concat", "debug", "ERROR", "NOTICE", "read", "write",
         "all", "failure", "pending", "nomem", "pcie", "PCIe", "tcp", "TCP", "IPv4", "IPv6",
         "127.0.0.1", "4420", "0000:00:04.0", "nqn.2014-08.org.nvmexpress.discovery", "avg_read",
         "p99_write", "none", "unmap", "write_zeroes", "bdev", "blobfs", "fuse", "-1", "1e3", "null",
         "true", "a" * 256, "b" * 5000, "\u00e9\u2603\U0001f600", "%s%n%s",
         "/", "../x", "Malloc0 ", " Malloc0", "MALLOC0"]
INTS = [0, 1, 2, -1, 3, 512, 520, 4096, 8192, 2**31 - 1, 2**31, 2**32 + 512, 2**53,
        2**63 - 1, -2**63]
FLOATS = [0.5, -0.0, 1e308, -1e-300, 512.0]
KEYS = ("adrfam avg_read_latency avg_write_latency base_bdev base_bdev_name base_bdevs base_name "
        "bdev_name block_size category clear_method clone_name cluster_sz corrupt_offset "
        "corrupt_value ctrlr_loss_timeout_sec current delay_bdev_name dif_is_head_of_md dif_type "
        "error_type exist_ok fast_io_fail_timeout_sec file filename flag force format_if_empty "
        "hostnqn include_aliases io_type latency_type latency_us level lvol_name lvs_name "
        "lvs_uuid max_inodes md_interleave md_size mountpoint name new_name num num_blocks "
        "old_name optimal_io_boundary options p99_read_latency p99_write_latency "
        "physical_block_size r_mbytes_per_sec raid_bdev raid_level readonly reconnect_delay_sec "
        "rw_ios_per_sec rw_mbytes_per_sec size size_in_mib snapshot_name split_count "
        "split_size_mb strip_size_kb subnqn superblock thin_provision timeout traddr trsvcid "
        "trtype uuid w_mbytes_per_sec").split()

# Valid parameter sets, mutated one member at a time.
TEMPLATES = {
    "bdev_malloc_create": {"name": "M9", "num_blocks": 2048, "block_size": 512},
    "bdev_null_create": {"name": "Null0", "num_blocks": 1024, "block_size": 512},
    "bdev_lvol_create": {"lvs_name": "lvs0", "lvol_name": "lv1", "size_in_mib": 4,
                         "thin_provision": True},
    "bdev_lvol_create_lvstore": {"bdev_name": "Malloc0", "lvs_name": "lvs1",
                                 "cluster_sz": 1048576},
    "bdev_lvol_snapshot": {"lvol_name": "lvs0/lv0", "snapshot_name": "snap0"},
    "bdev_lvol_clone": {"snapshot_name": "lvs0/snap0", "clone_name": "clone0"},
    "bdev_lvol_resize": {"name": "lvs0/lv0", "size_in_mib": 8},
    "bdev_lvol_rename": {"old_name": "lvs0/lv0", "new_name": "lv2"},
    "bdev_lvol_delete": {"name": "lvs0/lv0"},
    "bdev_split_create": {"base_bdev": "Malloc0", "split_count": 2},
    "bdev_passthru_create": {"base_bdev_name": "Malloc0", "name": "PT0"},
    "bdev_delay_create": {"base_bdev_name": "Malloc0", "name": "D0", "avg_read_latency": 10,
                          "p99_read_latency": 20, "avg_write_latency": 10,
                          "p99_write_latency": 20},
    "bdev_delay_update_latency": {"delay_bdev_name": "D0", "latency_type": "avg_read",
                                  "latency_us": 5},
    "bdev_error_create": {"base_name": "Malloc0"},
    "bdev_error_inject_error": {"name": "EE_Malloc0", "io_type": "read", "error_type": "failure",
                                "num": 1},
    "bdev_raid_create": {"name": "raid0", "raid_level": "raid0", "base_bdevs": ["Malloc0"],
                         "strip_size_kb": 64},
    "bdev_set_qos_limit": {"name": "Malloc0", "rw_ios_per_sec": 10000},
    "bdev_crashsim_create": {"base_bdev_name": "Malloc0", "name": "C0"},
    "blobfs_create": {"bdev_name": "Malloc2"},
    "blobfs_mount": {"bdev_name": "Malloc2", "mountpoint": "mnt"},
    "blobfs_umount": {"mountpoint": "mnt"},
    "bdev_aio_create": {"name": "A0", "filename": "img", "block_size": 512},
    "log_set_level": {"level": "NOTICE"},
    "log_set_flag": {"flag": "bdev"},
    "bdev_get_bdevs": {"name": "Malloc0"},
    "bdev_get_iostat": {"name": "Malloc0"},
    "framework_get_config": {"name": "bdev"},
}


def rand_value(rng, depth=0):
    r = rng.random()
    if r < 0.25:
        return rng.choice(NAMES)
    if r < 0.45:
        return rng.choice(WORDS)
    if r < 0.70:
        return rng.choice(INTS)
    if r < 0.75:
        return rng.choice(FLOATS)
    if r < 0.83:
        return rng.choice([None, True, False])
    if r < 0.92 or depth >= 2:
        return [rand_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return rand_object(rng, depth + 1)


def rand_object(rng, depth=0):
    return {rng.choice(KEYS): rand_value(rng, depth) for _ in range(rng.randrange(5))}


def rand_params(rng, method):
    """(params, omit): what to send with method."""
    r = rng.random()
    if r < 0.08:
        return None, True
    if r < 0.18:
        return rng.choice([[], ["Malloc0"], "Malloc0", 7, None, True, [{"name": "Malloc0"}]]), False
    if method in TEMPLATES and r < 0.65:
        p = json.loads(json.dumps(TEMPLATES[method]))
        what = rng.randrange(4)
        if what == 3:
            pass  # as it is: state changes that the other calls then meet
        elif what == 0:
            p[rng.choice(list(p))] = rand_value(rng)
        elif what == 1:
            del p[rng.choice(list(p))]
        else:
            p[rng.choice(KEYS + ["zzz_unknown"])] = rand_value(rng)
        return p, False
    return rand_object(rng), False


# ---- the run --------------------------------------------------------------------------------

def start():
    global daemon
    # a real mount point, so that blobfs_mount can succeed now and then
    os.mkdir(os.path.join(workdir, "mnt"))
    daemon = subprocess.Popen([USTORD, "--no-huge", "-r", SOCK], cwd=workdir,
                              stdout=logfile, stderr=subprocess.STDOUT)
    deadline = time.time() + START_TIMEOUT
    while time.time() < deadline:
        if daemon.poll() is not None:
            fail("ustord exited with %d during start-up" % daemon.returncode)
        if os.path.exists(SOCK):
            try:
                resp = call("rpc_get_methods", rid=1, omit_params=True)
                if resp is not None and "result" in resp:
                    return resp["result"]
            except OSError:
                pass
        conn.close()
        time.sleep(0.05)
    fail("ustord did not answer within %d s" % START_TIMEOUT)


def base_objects():
    """The objects the names refer to; errors (they exist already, Malloc1 is claimed) are fine."""
    for method, params in (
            ("bdev_malloc_create", {"name": "Malloc0", "num_blocks": 131072, "block_size": 512}),
            ("bdev_malloc_create", {"name": "Malloc1", "num_blocks": 8192, "block_size": 4096}),
            ("bdev_lvol_create_lvstore", {"bdev_name": "Malloc1", "lvs_name": "lvs0",
                                          "cluster_sz": 1048576}),
            ("bdev_lvol_create", {"lvs_name": "lvs0", "lvol_name": "lv0", "size_in_mib": 4}),
            ("bdev_malloc_create", {"name": "Malloc2", "num_blocks": 16384, "block_size": 4096}),
            ("blobfs_create", {"bdev_name": "Malloc2"})):
        check_response(call(method, params, rid=2), 2)


def alive(after):
    resp = call("ustor_get_version", rid=3, omit_params=True)
    if resp is None or "result" not in resp:
        fail("the server does not answer ustor_get_version after %s: %r" % (after, resp))


def nul_string():
    """A string with U+0000, valid JSON that C strings cannot hold: a parse error, id null."""
    resp = call("bdev_get_bdevs", {"name": "x\u0000y"}, rid=4)
    if resp is None or resp.get("id") is not None or \
            resp.get("error", {}).get("code") != -32700:
        fail("a string with U+0000: expected a parse error (-32700) with id null: %r" % (resp,))
    conn.close()
    alive("a string with U+0000")


def main():
    methods = start()
    nul_string()
    print("seed %d, %d calls over %d methods (USTOR_RPC_FUZZ_SEED=%d repeats)"
          % (SEED, CALLS, len(methods), SEED, ))
    rng = random.Random(SEED)
    base_objects()
    errors = results = 0
    succeeded = set()
    for i in range(CALLS):
        method = rng.choice(methods)
        params, omit = rand_params(rng, method)
        rid = rng.choice([i + 10, "id-%d" % i])
        resp = call(method, params, rid=rid, omit_params=omit)
        if resp is None:
            fail("the server closed the connection without an answer")
        check_response(resp, rid)
        if "error" in resp:
            errors += 1
        else:
            results += 1
            succeeded.add(method)
        if i % 100 == 99:
            alive("%d calls" % (i + 1))
            base_objects()
    alive("the last call")
    conn.close()
    daemon.send_signal(signal.SIGTERM)
    try:
        rc = daemon.wait(timeout=60)
    except subprocess.TimeoutExpired:
        fail("ustord did not exit within 60 s of SIGTERM")
    if rc != 0:
        fail("ustord exited with status %d after SIGTERM" % rc)
    if "ERROR: AddressSanitizer" in output() or "ERROR: LeakSanitizer" in output() or \
            "runtime error:" in output():
        fail("sanitizer report in the output")
    print("methods that succeeded at least once (%d): %s" % (len(succeeded), " ".join(sorted(succeeded))))
    print("PASS (seed %d: %d calls, %d errors, %d results)" % (SEED, CALLS, errors, results))


if __name__ == "__main__":
    if not os.access(USTORD, os.X_OK):
        print("SKIP: %s not built" % USTORD)
        sys.exit(77)
    main()
