#!/usr/bin/env python3
"""scripts/rpc.py against a running ustord: the bdev subcommands.

Every method the server registers has a subcommand; every kind of bdev is
created and deleted through its SPDK-style command line (the old names such
as construct_malloc_bdev too); bdev_get_bdevs reports what was asked for;
iostat counts the I/O of a raid1 rebuild and of a crashsim snapshot; QoS
limits show up and are saved; errors (a missing parameter, a duplicate
name, an unknown bdev) exit 1 with the server's message on stderr; -v shows
the raw request and response; save_config replayed by a second ustord -c
brings back the same bdevs; SIGTERM ends both daemons with exit 0.

Exit 0 on pass, 1 on failure, 77 to skip (reason on the last line).
The build directory comes from USTOR_BUILDDIR (default: build).
"""
import importlib.util
import json
import os
import shutil
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
START_TIMEOUT = 30
MIB = 1024 * 1024

# Fields of bdev_get_bdevs (paths into one bdev's object) that may differ
# between the daemon that saved a config and the one that replayed it. The
# uuid, QoS limits and driver settings are all saved, so only this remains:
# save_config always writes a file bdev's block_size, so after the replay the
# block size counts as given by the user.
VOLATILE_FIELDS = (
    ("driver_specific", "aio", "block_size_override"),
    ("driver_specific", "uring", "block_size_override"),
)


class Failure(Exception):
    pass


def fail(msg):
    raise Failure(msg)


def note(msg):
    print("ok: " + msg)
    sys.stdout.flush()


class Daemon:
    """One ustord; stop() checks a clean SIGTERM exit, kill() is the fallback."""

    def __init__(self, tmpdir, tag, *extra):
        self.sock = "/tmp/ustor_rpcpy_%d_%s.sock" % (os.getpid(), tag)
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.log_path = os.path.join(tmpdir, "ustord_%s.log" % tag)
        self.log = open(self.log_path, "wb")
        argv = [USTORD, "--no-huge", "-m", "0x1", "-r", self.sock] + list(extra)
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")[-6000:]

    def _answers(self):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(self.sock)
                s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"rpc_get_methods"}')
                return b"result" in s.recv(65536)
        except OSError:
            return False

    def wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                fail("ustord exited with %d during start-up:\n%s"
                     % (self.proc.returncode, self.output()))
            if self._answers():
                return self
            time.sleep(0.05)
        fail("ustord did not answer within %d s:\n%s" % (START_TIMEOUT, self.output()))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            fail("ustord did not exit within 30 s of SIGTERM:\n%s" % self.output())
        if rc != 0:
            fail("ustord exit %d after SIGTERM:\n%s" % (rc, self.output()))
        if os.path.exists(self.sock):
            fail("socket %s left behind after SIGTERM" % self.sock)

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()
        if os.path.exists(self.sock):
            os.unlink(self.sock)


# ---- running rpc.py ----------------------------------------------------------


def run(d, *args, verbose=False):
    argv = [sys.executable, RPC_PY, "-s", d.sock, "-t", "30"]
    if verbose:
        argv.append("-v")
    return subprocess.run(argv + [str(a) for a in args], capture_output=True, text=True,
                          timeout=90)


def ok(d, *args):
    """rpc.py must succeed; returns stdout without the final newline."""
    out = run(d, *args)
    if out.returncode != 0:
        fail("rpc.py %s: exit %d\nstdout: %s\nstderr: %s\nustord:\n%s"
             % (" ".join(map(str, args)), out.returncode, out.stdout, out.stderr, d.output()))
    return out.stdout.rstrip("\n")


def ok_json(d, *args):
    text = ok(d, *args)
    try:
        return json.loads(text)
    except ValueError:
        fail("rpc.py %s printed no JSON: %r" % (" ".join(map(str, args)), text))


def ok_empty(d, *args):
    """A method answering true: rpc.py prints nothing."""
    text = ok(d, *args)
    if text != "":
        fail("rpc.py %s should print nothing, printed %r" % (" ".join(map(str, args)), text))


def err(d, *args, rc=1, expect=()):
    """rpc.py must fail with exit rc and a message containing every expect string."""
    out = run(d, *args)
    if out.returncode != rc:
        fail("rpc.py %s: expected exit %d, got %d\nstdout: %s\nstderr: %s"
             % (" ".join(map(str, args)), rc, out.returncode, out.stdout, out.stderr))
    if out.stdout.strip() != "":
        fail("rpc.py %s failed but printed on stdout: %r" % (" ".join(map(str, args)),
                                                              out.stdout))
    for e in expect:
        if e not in out.stderr:
            fail("rpc.py %s: stderr should mention %r: %r" % (" ".join(map(str, args)), e,
                                                               out.stderr))
    return out.stderr


def bdevs(d):
    return {b["name"]: b for b in ok_json(d, "bdev_get_bdevs")}


def bdev(d, name):
    got = ok_json(d, "bdev_get_bdevs", "-b", name)
    if not isinstance(got, list) or len(got) != 1 or got[0].get("name") != name:
        fail("bdev_get_bdevs -b %s: expected one bdev named %s: %r" % (name, name, got))
    return got[0]


def expect_fields(b, **fields):
    for key, want in fields.items():
        if b.get(key) != want:
            fail("bdev %s: %s is %r, expected %r" % (b.get("name"), key, b.get(key), want))


def wait_for(what, predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    fail("timed out waiting for " + what)


# ---- the client covers the server ----------------------------------------------


def client_commands():
    """rpc.py's subcommands: {name: its argparse parser} (loaded from the file)."""
    spec = importlib.util.spec_from_file_location("ustor_rpc_cli", RPC_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    parser = module.build_parser()
    for action in parser._actions:
        if action.choices is not None and hasattr(action, "add_parser"):
            return dict(action.choices)
    fail("rpc.py's parser has no subcommands")


# Deprecated framework and log names: rpc.py reaches them with "call" only.
# Every other alias (the bdev layer's) has a subcommand with its old command line.
CALL_ONLY_ALIASES = {
    "get_rpc_methods", "spdk_get_version", "set_log_level", "get_log_level",
    "set_log_print_level", "get_log_print_level", "set_log_flag", "clear_log_flag",
    "get_log_flags",
}


def check_coverage(d, methods):
    """Returns a list of problems, reported at the end so the other checks still run."""
    problems = []
    commands = client_commands()
    with_aliases = set(ok_json(d, "rpc_get_methods", "--include-aliases"))
    aliases = with_aliases - set(methods)
    missing = sorted(m for m in methods if m not in commands)
    if missing:
        problems.append("methods without an rpc.py subcommand: %s" % ", ".join(missing))
    missing = sorted(a for a in aliases if a not in CALL_ONLY_ALIASES and a not in commands)
    if missing:
        problems.append("deprecated aliases without an rpc.py subcommand: %s"
                        % ", ".join(missing))
    for c in commands:
        if c.startswith("bdev_") and c not in methods and c not in with_aliases:
            note("rpc.py %s has no method in this build (module not compiled in?)" % c)
    for name, parser in sorted(commands.items()):
        if not parser.description:
            problems.append("rpc.py %s has no description for -h" % name)
        for action in parser._actions:
            if action.dest != "help" and not action.help:
                problems.append("rpc.py %s: argument %s has no help"
                                % (name, "/".join(action.option_strings) or action.dest))
    out = subprocess.run([sys.executable, RPC_PY, "bdev_malloc_create", "-h"],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0 or "usage: rpc.py bdev_malloc_create" not in out.stdout:
        fail("rpc.py bdev_malloc_create -h: exit %d: %s" % (out.returncode, out.stderr))
    if not problems:
        note("%d methods, %d bdev aliases: each has an rpc.py subcommand with help"
             % (len(methods), len(aliases - CALL_ONLY_ALIASES)))
    return problems


# ---- creating every kind of bdev ------------------------------------------------


def make_file(tmpdir, name, size):
    path = os.path.join(tmpdir, name)
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def create_ram(d):
    # The deprecated form prints the name, warns on stderr, calls the new method.
    out = run(d, "construct_malloc_bdev", 64, 512, "-b", "Malloc0")
    if out.returncode != 0 or out.stdout != "Malloc0\n":
        fail("construct_malloc_bdev 64 512 -b Malloc0: exit %d, stdout %r, stderr %r"
             % (out.returncode, out.stdout, out.stderr))
    if "deprecated" not in out.stderr or "bdev_malloc_create" not in out.stderr:
        fail("construct_malloc_bdev should note on stderr that it is deprecated: %r"
             % out.stderr)
    expect_fields(bdev(d, "Malloc0"), num_blocks=64 * MIB // 512, block_size=512,
                  claimed=False, product_name="Malloc disk", module="malloc")

    uuid = "5d6f1b2c-3a4e-4f5a-8b9c-0d1e2f3a4b5c"
    if ok(d, "bdev_malloc_create", "-b", "Malloc1", "-u", uuid, "-o", 16, "-p", 4096,
          16, 4096) != "Malloc1":
        fail("bdev_malloc_create -b Malloc1 should print Malloc1")
    expect_fields(bdev(d, "Malloc1"), num_blocks=16 * MIB // 4096, block_size=4096,
                  uuid=uuid, optimal_io_boundary=16)

    if ok(d, "bdev_malloc_create", "-b", "MallocMd", "-m", 16, "-t", 1, "-d",
          2, 512) != "MallocMd":
        fail("bdev_malloc_create -b MallocMd should print MallocMd")
    expect_fields(bdev(d, "MallocMd"), md_size=16, md_interleave=False, dif_type=1,
                  num_blocks=2 * MIB // 512)

    # No -b: the server picks MallocN and rpc.py prints it. 0.5 MiB is fine.
    auto = ok(d, "bdev_malloc_create", 0.5, 4096)
    if not auto.startswith("Malloc"):
        fail("bdev_malloc_create without -b printed %r" % auto)
    expect_fields(bdev(d, auto), num_blocks=128, block_size=4096)
    ok_empty(d, "bdev_malloc_delete", auto)

    out = run(d, "construct_null_bdev", "Null0", 64, 512)
    if out.returncode != 0 or out.stdout != "Null0\n" or "deprecated" not in out.stderr:
        fail("construct_null_bdev Null0 64 512: exit %d, stdout %r, stderr %r"
             % (out.returncode, out.stdout, out.stderr))
    expect_fields(bdev(d, "Null0"), num_blocks=64 * MIB // 512, block_size=512,
                  product_name="Null disk", module="null")

    # Interleaved metadata: 8 MiB of data in 520-byte blocks.
    if ok(d, "bdev_null_create", "Null1", 8, 520, "-m", 8, "-i", "-t", 1) != "Null1":
        fail("bdev_null_create Null1 should print Null1")
    expect_fields(bdev(d, "Null1"), num_blocks=8 * MIB // 512, block_size=520, md_size=8,
                  md_interleave=True, dif_type=1)
    note("malloc and null bdevs, old and new command lines")


def create_files(d, tmpdir, methods):
    aio_file = make_file(tmpdir, "aio.img", 8 * MIB)
    out = run(d, "construct_aio_bdev", aio_file, "Aio0", 4096)
    if out.returncode != 0 or out.stdout != "Aio0\n" or "deprecated" not in out.stderr:
        fail("construct_aio_bdev: exit %d, stdout %r, stderr %r"
             % (out.returncode, out.stdout, out.stderr))
    b = bdev(d, "Aio0")
    expect_fields(b, num_blocks=8 * MIB // 4096, block_size=4096, product_name="AIO disk",
                  module="aio")
    if b["driver_specific"].get("aio", {}).get("filename") != aio_file:
        fail("Aio0 driver_specific should name its file: %r" % b["driver_specific"])

    ro_file = make_file(tmpdir, "aio_ro.img", 4 * MIB)
    ok(d, "bdev_aio_create", ro_file, "AioRo", "-r")
    b = bdev(d, "AioRo")
    expect_fields(b, num_blocks=4 * MIB // 512, block_size=512)
    if b["driver_specific"].get("aio", {}).get("readonly") is not True:
        fail("bdev_aio_create -r: the bdev should be read-only: %r" % b["driver_specific"])

    # Rescan picks up a grown file.
    with open(aio_file, "r+b") as f:
        f.truncate(12 * MIB)
    ok_empty(d, "bdev_aio_rescan", "Aio0")
    expect_fields(bdev(d, "Aio0"), num_blocks=12 * MIB // 4096)
    names = ["Aio0", "AioRo"]

    if "bdev_uring_create" not in methods:
        note("io_uring module not built: uring bdev not tested")
        return names
    ur_file = make_file(tmpdir, "uring.img", 8 * MIB)
    out = run(d, "bdev_uring_create", ur_file, "Uring0", 512)
    if out.returncode != 0:
        if any(s in out.stderr for s in ("not implemented", "not permitted", "not supported")):
            note("io_uring unavailable here (%s): uring bdev not tested" % out.stderr.strip())
            return names
        fail("bdev_uring_create: exit %d: %s" % (out.returncode, out.stderr))
    if out.stdout != "Uring0\n":
        fail("bdev_uring_create should print Uring0: %r" % out.stdout)
    expect_fields(bdev(d, "Uring0"), num_blocks=8 * MIB // 512, block_size=512,
                  product_name="URING disk", module="uring")
    with open(ur_file, "r+b") as f:
        f.truncate(10 * MIB)
    ok_empty(d, "bdev_uring_rescan", "Uring0")
    expect_fields(bdev(d, "Uring0"), num_blocks=10 * MIB // 512)
    note("aio and uring bdevs on files, rescan, read-only")
    return names + ["Uring0"]


def create_virtual(d):
    # split: four parts of Null0 (64 MiB), then 3 parts of 2 MiB of SplitBase.
    if ok(d, "bdev_split_create", "Null0", 4) != "Null0p0 Null0p1 Null0p2 Null0p3":
        fail("bdev_split_create Null0 4 should print the four part names")
    for i in range(4):
        expect_fields(bdev(d, "Null0p%d" % i), num_blocks=16 * MIB // 512, block_size=512,
                      product_name="Split Disk", module="split")
    expect_fields(bdev(d, "Null0"), claimed=True)
    ok(d, "bdev_malloc_create", "-b", "SplitBase", 8, 512)
    if ok(d, "bdev_split_create", "SplitBase", 3, "-s", 2) != \
            "SplitBasep0 SplitBasep1 SplitBasep2":
        fail("bdev_split_create SplitBase 3 -s 2 should print three names")
    expect_fields(bdev(d, "SplitBasep2"), num_blocks=2 * MIB // 512)

    # passthru on Malloc1
    if ok(d, "bdev_passthru_create", "-b", "Malloc1", "-p", "PT0") != "PT0":
        fail("bdev_passthru_create should print PT0")
    expect_fields(bdev(d, "PT0"), num_blocks=16 * MIB // 4096, block_size=4096,
                  product_name="passthru", module="passthru", claimed=False)
    expect_fields(bdev(d, "Malloc1"), claimed=True)

    # error injection on its own malloc
    ok(d, "bdev_malloc_create", "-b", "ErrBase", 4, 512)
    if ok(d, "bdev_error_create", "ErrBase") != "EE_ErrBase":
        fail("bdev_error_create ErrBase should print EE_ErrBase")
    expect_fields(bdev(d, "EE_ErrBase"), num_blocks=4 * MIB // 512,
                  product_name="Error Injection Disk", module="error")
    ok_empty(d, "bdev_error_inject_error", "EE_ErrBase", "write", "failure", "-n", 3)
    ok_empty(d, "bdev_error_inject_error", "EE_ErrBase", "read", "corrupt_data", "-n", 1,
             "-o", 7, "-v", 0x5a)
    ok_empty(d, "bdev_error_inject_error", "EE_ErrBase", "clear", "failure")
    err(d, "bdev_error_inject_error", "EE_ErrBase", "bogus", "failure",
        expect=("unknown io_type 'bogus'",))
    err(d, "bdev_error_inject_error", "EE_ErrBase", "read", "bogus",
        expect=("unknown error_type 'bogus'",))

    # delay
    ok(d, "bdev_malloc_create", "-b", "DelayBase", 4, 512)
    if ok(d, "bdev_delay_create", "-b", "DelayBase", "-d", "Delay0", "-r", 100, "-t", 200,
          "-w", 300, "-n", 400) != "Delay0":
        fail("bdev_delay_create should print Delay0")
    expect_fields(bdev(d, "Delay0"), num_blocks=4 * MIB // 512, product_name="delay",
                  module="delay")
    ok_empty(d, "bdev_delay_update_latency", "Delay0", "avg_read", 150)
    err(d, "bdev_delay_update_latency", "Delay0", "avg_write", 500,
        expect=("above its p99",))
    err(d, "bdev_delay_update_latency", "Delay0", "sideways", 5, rc=2)
    note("split, passthru, error (with injections) and delay bdevs")


def create_raid(d, methods):
    if "bdev_raid_create" not in methods:
        note("raid module not built: raid bdevs not tested")
        return False
    for n in ("R0a", "R0b", "R1a", "R1b", "R1c"):
        ok(d, "bdev_malloc_create", "-b", n, 4, 512)
    ok_empty(d, "bdev_raid_create", "-n", "Raid0", "-r", "raid0", "-z", 64, "-b", "R0a R0b")
    expect_fields(bdev(d, "Raid0"), num_blocks=2 * 4 * MIB // 512, product_name="Raid Volume",
                  module="raid")
    expect_fields(bdev(d, "R0a"), claimed=True)
    ok_empty(d, "bdev_raid_create", "-n", "Raid1", "-r", "1", "-b", "R1a", "-b", "R1b")
    listed = {r["name"]: r for r in ok_json(d, "bdev_raid_get_bdevs")}
    if set(listed) != {"Raid0", "Raid1"}:
        fail("bdev_raid_get_bdevs: expected Raid0 and Raid1: %r" % sorted(listed))
    r0 = listed["Raid0"]
    if (r0.get("raid_level") != "raid0" or r0.get("strip_size_kb") != 64 or
            [b["name"] for b in r0["base_bdevs_list"]] != ["R0a", "R0b"]):
        fail("bdev_raid_get_bdevs Raid0: %r" % r0)
    if [r["name"] for r in ok_json(d, "bdev_raid_get_bdevs", "online")] != ["Raid0", "Raid1"]:
        fail("bdev_raid_get_bdevs online should list both")
    if ok_json(d, "bdev_raid_get_bdevs", "offline") != []:
        fail("bdev_raid_get_bdevs offline should be empty")

    # A new mirror member is rebuilt: reads on R1a, writes on R1c, visible in iostat.
    ok_empty(d, "bdev_raid_remove_base_bdev", "R1b")
    expect_fields(bdev(d, "R1b"), claimed=False)
    before = ok_json(d, "bdev_get_iostat", "-b", "R1c")["bdevs"][0]
    ok_empty(d, "bdev_raid_add_base_bdev", "Raid1", "R1c")

    def rebuilt():
        r1 = [r for r in ok_json(d, "bdev_raid_get_bdevs") if r["name"] == "Raid1"][0]
        return (r1["num_base_bdevs_operational"] == 2 and "process" not in r1)
    wait_for("Raid1 to rebuild onto R1c", rebuilt)
    after = ok_json(d, "bdev_get_iostat", "-b", "R1c")["bdevs"][0]
    if after["bytes_written"] - before["bytes_written"] < 4 * MIB:
        fail("rebuilding 4 MiB onto R1c should show in its iostat: %r then %r"
             % (before, after))
    err(d, "bdev_raid_add_base_bdev", "Raid0", "R1b", expect=("not raid1",))
    err(d, "bdev_raid_create", "-n", "RaidX", "-r", "raid5", "-b", "R1b",
        expect=("raid_level 'raid5'",))
    note("raid0 and raid1 bdevs, remove and add a member (rebuild counted in iostat)")
    return True


def create_crashsim(d, methods):
    if "bdev_crashsim_create" not in methods:
        note("crashsim module not built: crashsim bdev not tested")
        return False
    ok(d, "bdev_malloc_create", "-b", "CsBase", 2, 512)
    if ok(d, "bdev_crashsim_create", "-b", "CsBase", "-n", "Cs0") != "Cs0":
        fail("bdev_crashsim_create should print Cs0")
    expect_fields(bdev(d, "Cs0"), num_blocks=2 * MIB // 512, product_name="crashsim",
                  module="crashsim")
    before = ok_json(d, "bdev_get_iostat", "-b", "CsBase")["bdevs"][0]["bytes_read"]
    ok_empty(d, "bdev_crashsim_start_recording", "Cs0")
    # Starting reads the whole base into the snapshot.
    read = ok_json(d, "bdev_get_iostat", "-b", "CsBase")["bdevs"][0]["bytes_read"] - before
    if read < 2 * MIB:
        fail("crashsim start_recording should read all 2 MiB of its base, iostat shows %d"
             % read)
    stats = ok_json(d, "bdev_crashsim_stop_recording", "Cs0")
    if stats.get("num_events") != 0 or stats.get("num_ops") != 0:
        fail("crashsim with no I/O should log nothing: %r" % stats)
    note("crashsim bdev: start (snapshot read counted in iostat) and stop")
    return True


def check_nvme(d, methods):
    """No NVMe device here: the client's parameters and the error paths."""
    if "bdev_nvme_attach_controller" not in methods:
        note("nvme bdev module not built: nvme commands not tested")
        return
    if ok_json(d, "bdev_nvme_get_controllers") != []:
        fail("bdev_nvme_get_controllers should list no controller")
    err(d, "bdev_nvme_attach_controller", "-b", "Nvme0", "-t", "bogus", "-a", "10.0.0.1",
        "-f", "IPv4", "-s", 4420, "-n", "nqn.2016-06.io.ustor:cnode1", "-q",
        "nqn.2016-06.io.ustor:host1", expect=("error -32602", "bogus"))
    err(d, "bdev_nvme_attach_controller", "-b", "Nvme0", "-t", "PCIe", rc=2,
        expect=("-a/--traddr",))
    err(d, "bdev_nvme_detach_controller", "Nvme0",
        expect=("no NVMe controller named 'Nvme0'",))
    err(d, "bdev_nvme_reset_controller", "Nvme0",
        expect=("no NVMe controller named 'Nvme0'",))
    err(d, "bdev_nvme_get_controllers", "-n", "Nvme0",
        expect=("no NVMe controller named 'Nvme0'",))
    note("nvme commands: parameters accepted, errors for unknown controllers")


# ---- inspection ---------------------------------------------------------------


def check_get_bdevs(d):
    all_bdevs = ok_json(d, "bdev_get_bdevs")
    io_types = {"read", "write", "unmap", "flush", "reset", "write_zeroes"}
    for b in all_bdevs:
        for key, kind in (("name", str), ("num_blocks", int), ("block_size", int),
                          ("claimed", bool), ("product_name", str), ("uuid", str),
                          ("supported_io_types", dict), ("assigned_rate_limits", dict),
                          ("driver_specific", dict), ("aliases", list)):
            if not isinstance(b.get(key), kind):
                fail("bdev_get_bdevs: %s.%s should be a %s: %r"
                     % (b.get("name"), key, kind.__name__, b.get(key)))
        if not io_types <= set(b["supported_io_types"]):
            fail("%s: supported_io_types lacks %s" % (b["name"],
                                                       io_types - set(b["supported_io_types"])))
        if b["supported_io_types"]["read"] is not True:
            fail("%s: every bdev reads" % b["name"])
    # The deprecated name gives the same list.
    out = run(d, "get_bdevs")
    if out.returncode != 0 or json.loads(out.stdout) != all_bdevs:
        fail("get_bdevs should print what bdev_get_bdevs prints")
    if "deprecated" not in out.stderr:
        fail("get_bdevs should note that it is deprecated: %r" % out.stderr)
    if ok_json(d, "get_bdevs", "-b", "Null0") != [bdevs(d)["Null0"]]:
        fail("get_bdevs -b Null0")
    # -t waits for a bdev that is created meanwhile.
    argv = [sys.executable, RPC_PY, "-s", d.sock, "bdev_get_bdevs", "-b", "Late0",
            "-t", "10000"]
    later = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        ok(d, "bdev_malloc_create", "-b", "Late0", 1, 512)
        out, errs = later.communicate(timeout=30)
    finally:
        if later.poll() is None:
            later.kill()
            later.wait()
    if later.returncode != 0 or json.loads(out)[0]["name"] != "Late0":
        fail("bdev_get_bdevs -b Late0 -t 10000 should wait for Late0: %r %r" % (out, errs))
    ok_empty(d, "bdev_malloc_delete", "Late0")
    err(d, "bdev_get_bdevs", "-b", "Late0", "-t", 200, expect=("no bdev named 'Late0'",))
    note("bdev_get_bdevs fields, -b, -t, get_bdevs")


def check_iostat(d, names):
    st = ok_json(d, "bdev_get_iostat")
    if not isinstance(st.get("tick_rate"), int) or st["tick_rate"] <= 0:
        fail("bdev_get_iostat: tick_rate: %r" % st.get("tick_rate"))
    if not isinstance(st.get("ticks"), int):
        fail("bdev_get_iostat: ticks: %r" % st.get("ticks"))
    listed = [b["name"] for b in st["bdevs"]]
    if sorted(listed) != sorted(names):
        fail("bdev_get_iostat lists %r, bdevs are %r" % (sorted(listed), sorted(names)))
    counters = ("bytes_read", "num_read_ops", "bytes_written", "num_write_ops",
                "bytes_unmapped", "num_unmap_ops", "read_latency_ticks", "num_io_errors")
    for b in st["bdevs"]:
        for c in counters:
            if not isinstance(b.get(c), int) or b[c] < 0:
                fail("bdev_get_iostat %s: %s = %r" % (b["name"], c, b.get(c)))
    one = ok_json(d, "bdev_get_iostat", "-b", "Null0")
    if [b["name"] for b in one["bdevs"]] != ["Null0"]:
        fail("bdev_get_iostat -b Null0: %r" % one)
    err(d, "bdev_get_iostat", "-b", "Nope", expect=("no bdev named 'Nope'",))
    note("bdev_get_iostat for all and one")


def check_qos(d):
    ok_empty(d, "bdev_set_qos_limit", "Malloc0", "--rw_ios_per_sec", 20000,
             "--r_mbytes_per_sec", 100)
    ok_empty(d, "bdev_set_qos_limit", "Malloc0", "--w-mbytes-per-sec", 50)
    expect_fields(bdev(d, "Malloc0"), assigned_rate_limits={
        "rw_ios_per_sec": 20000, "rw_mbytes_per_sec": 0, "r_mbytes_per_sec": 100,
        "w_mbytes_per_sec": 50})
    ok_empty(d, "bdev_set_qos_limit", "Malloc0", "--r_mbytes_per_sec", 0)
    expect_fields(bdev(d, "Malloc0"), assigned_rate_limits={
        "rw_ios_per_sec": 20000, "rw_mbytes_per_sec": 0, "r_mbytes_per_sec": 0,
        "w_mbytes_per_sec": 50})
    err(d, "bdev_set_qos_limit", "Malloc0", expect=("at least one of",))
    err(d, "bdev_set_qos_limit", "Nope", "--rw_ios_per_sec", 1000,
        expect=("no bdev named 'Nope'",))
    note("bdev_set_qos_limit sets, keeps and removes limits")


def check_errors(d):
    # Missing command-line arguments: argparse's usage error, exit 2.
    err(d, "bdev_malloc_create", rc=2, expect=("usage:", "total_size"))
    err(d, "bdev_passthru_create", "-b", "Malloc0", rc=2, expect=("-p/--name",))
    err(d, "bdev_delay_create", "-b", "Malloc0", "-d", "D", rc=2,
        expect=("--avg-read-latency",))
    # A missing parameter at the server: exit 1, the server's message names it.
    err(d, "call", "bdev_malloc_create", '{"name": "X", "block_size": 512}',
        expect=("bdev_malloc_create failed", "num_blocks"))
    err(d, "call", "bdev_malloc_create", '{"num_blocks": 8, "block_size": 512, "bogus": 1}',
        expect=("bogus",))
    # Duplicates and unknown names.
    err(d, "bdev_malloc_create", "-b", "Malloc0", 8, 512,
        expect=("bdev_malloc_create failed", "error -32602", "'Malloc0' is already in use"))
    err(d, "construct_malloc_bdev", 8, 512, "-b", "Malloc0",
        expect=("deprecated", "'Malloc0' is already in use"))
    err(d, "bdev_null_create", "Null0", 8, 512, expect=("'Null0' is already in use",))
    err(d, "bdev_malloc_delete", "Nope", expect=("no malloc bdev named 'Nope'",))
    err(d, "bdev_null_delete", "Malloc0", expect=("no null bdev named 'Malloc0'",))
    err(d, "bdev_aio_create", "/nonexistent/file", "AioX",
        expect=("cannot create aio bdev AioX on /nonexistent/file",))
    err(d, "bdev_passthru_delete", "Nope", expect=("no passthru bdev named Nope",))
    err(d, "bdev_split_delete", "Malloc0", expect=("Malloc0 is not split",))
    # Bad sizes are refused before anything is sent.
    err(d, "bdev_malloc_create", 1, 3000, expect=("not a whole number of 3000-byte blocks",))
    err(d, "bdev_malloc_create", 1, 0, expect=("block size must be positive",))
    err(d, "bdev_null_create", "NullX", -1, 512, expect=("total size must be positive",))
    err(d, "bdev_malloc_create", 1, 256, expect=("error -32602", "multiple of 512"))
    # No bdev was left behind by any of these.
    for name in ("X", "AioX", "NullX"):
        if name in bdevs(d):
            fail("a failed create left bdev %s behind" % name)
    note("errors: usage (exit 2), server errors and local checks (exit 1, stderr)")


def check_verbose(d):
    out = run(d, "bdev_get_bdevs", "-b", "Malloc0", verbose=True)
    if out.returncode != 0:
        fail("rpc.py -v bdev_get_bdevs: exit %d: %s" % (out.returncode, out.stderr))
    text = out.stderr
    if not text.startswith("request:\n") or "\nresponse:\n" not in text:
        fail("rpc.py -v should print the request and the response on stderr: %r" % text)
    req_text, resp_text = text[len("request:\n"):].split("\nresponse:\n", 1)
    req, resp = json.loads(req_text), json.loads(resp_text)
    if req.get("jsonrpc") != "2.0" or req.get("method") != "bdev_get_bdevs" or \
            req.get("params") != {"name": "Malloc0"}:
        fail("rpc.py -v: request %r" % req)
    if resp.get("id") != req.get("id") or json.loads(out.stdout) != resp.get("result"):
        fail("rpc.py -v: the response should carry the printed result: %r" % resp)
    # The deprecated command sends the new method.
    out = run(d, "get_bdevs", "-b", "Malloc0", verbose=True)
    if '"method": "bdev_get_bdevs"' not in out.stderr:
        fail("get_bdevs should call bdev_get_bdevs: %r" % out.stderr)
    # Sizes become SPDK's num_blocks on the wire.
    out = run(d, "bdev_malloc_create", "-b", "Wire0", 3, 4096, verbose=True)
    req = json.loads(out.stderr[len("request:\n"):].split("\nresponse:\n", 1)[0])
    if req.get("params") != {"name": "Wire0", "num_blocks": 768, "block_size": 4096}:
        fail("bdev_malloc_create -b Wire0 3 4096 sent %r" % req.get("params"))
    ok_empty(d, "bdev_malloc_delete", "Wire0")
    note("-v prints the raw request and response")


# ---- deleting -------------------------------------------------------------------


def delete_all(d, file_bdevs, have_raid, have_crashsim):
    def gone(*names):
        now = bdevs(d)
        for n in names:
            if n in now:
                fail("%s still listed after its delete" % n)

    if have_crashsim:
        ok_empty(d, "bdev_crashsim_delete", "Cs0")
        gone("Cs0")
        expect_fields(bdev(d, "CsBase"), claimed=False)
        ok_empty(d, "bdev_malloc_delete", "CsBase")
    if have_raid:
        ok_empty(d, "bdev_raid_delete", "Raid0")
        ok_empty(d, "bdev_raid_delete", "Raid1")
        gone("Raid0", "Raid1")
        if ok_json(d, "bdev_raid_get_bdevs") != []:
            fail("bdev_raid_get_bdevs should be empty after the deletes")
        for n in ("R0a", "R0b", "R1a", "R1b", "R1c"):
            expect_fields(bdev(d, n), claimed=False)
            ok_empty(d, "bdev_malloc_delete", n)
    ok_empty(d, "bdev_delay_delete", "Delay0")
    gone("Delay0")
    expect_fields(bdev(d, "DelayBase"), claimed=False)
    ok_empty(d, "bdev_error_delete", "EE_ErrBase")
    gone("EE_ErrBase")
    ok_empty(d, "bdev_passthru_delete", "PT0")
    gone("PT0")
    expect_fields(bdev(d, "Malloc1"), claimed=False)
    ok_empty(d, "bdev_split_delete", "Null0")
    ok_empty(d, "bdev_split_delete", "SplitBase")
    gone("Null0p0", "Null0p3", "SplitBasep0")
    expect_fields(bdev(d, "Null0"), claimed=False)
    out = run(d, "delete_aio_bdev", "Aio0")
    if out.returncode != 0 or out.stdout != "" or "deprecated" not in out.stderr:
        fail("delete_aio_bdev Aio0: exit %d %r %r" % (out.returncode, out.stdout, out.stderr))
    ok_empty(d, "bdev_aio_delete", "AioRo")
    if "Uring0" in file_bdevs:
        ok_empty(d, "bdev_uring_delete", "Uring0")
        err(d, "bdev_uring_rescan", "Uring0", expect=("no uring bdev named Uring0",))
    err(d, "bdev_aio_rescan", "Aio0", expect=("no aio bdev named Aio0",))
    out = run(d, "delete_null_bdev", "Null0")
    if out.returncode != 0 or "deprecated" not in out.stderr:
        fail("delete_null_bdev Null0: exit %d %r" % (out.returncode, out.stderr))
    ok_empty(d, "bdev_null_delete", "Null1")
    out = run(d, "delete_malloc_bdev", "Malloc0")
    if out.returncode != 0 or "deprecated" not in out.stderr:
        fail("delete_malloc_bdev Malloc0: exit %d %r" % (out.returncode, out.stderr))
    for n in ("Malloc1", "MallocMd", "SplitBase", "ErrBase", "DelayBase"):
        ok_empty(d, "bdev_malloc_delete", n)
    left = sorted(bdevs(d))
    if left:
        fail("bdevs left after deleting everything: %r" % left)
    ok_empty(d, "bdev_wait_for_examine")
    note("every bdev deleted (old and new names); claims released")


# ---- save_config and replay ---------------------------------------------------


def comparable(listing):
    out = {}
    for b in listing:
        b = json.loads(json.dumps(b))  # a deep copy
        for path in VOLATILE_FIELDS:
            obj = b
            for key in path[:-1]:
                obj = obj.get(key) if isinstance(obj, dict) else None
            if isinstance(obj, dict):
                obj.pop(path[-1], None)
        out[b["name"]] = b
    return out


def check_replay(tmpdir, saved, expected):
    """Returns the differences (a list of problems); a daemon failure fails at once."""
    path = os.path.join(tmpdir, "saved.json")
    with open(path, "w") as f:
        json.dump(saved, f, indent=2)
    b = Daemon(tmpdir, "b", "-c", path)
    try:
        b.wait_ready()
        ok_empty(b, "bdev_wait_for_examine")
        got = comparable(ok_json(b, "bdev_get_bdevs"))
        if set(got) != set(expected):
            fail("after ustord -c: bdevs %r, expected %r" % (sorted(got), sorted(expected)))
        problems = []
        for name in sorted(expected):
            if got[name] != expected[name]:
                diff = sorted(k for k in set(got[name]) | set(expected[name])
                              if got[name].get(k) != expected[name].get(k))
                problems.append("bdev %s differs in %s:\n  now %r\n  was %r"
                                % (name, diff, {k: got[name].get(k) for k in diff},
                                   {k: expected[name].get(k) for k in diff}))
        again = ok_json(b, "save_config")
        if again != saved:
            problems.append("save_config after the replay differs from the saved config:"
                            "\n%s\n%s" % (json.dumps(again, sort_keys=True),
                                          json.dumps(saved, sort_keys=True)))
        b.stop()
    finally:
        b.kill()
    if problems:
        return ["after ustord -c on the saved config:\n" + "\n".join(problems)]
    note("ustord -c on the saved config: the same %d bdevs, the same saved config"
         % len(expected))
    return []


def main():
    if not os.access(USTORD, os.X_OK):
        print("%s not built (set USTOR_BUILDDIR or run make)" % USTORD)
        return 77
    tmpdir = tempfile.mkdtemp(prefix="ustor_rpcpy_")
    a = None
    try:
        a = Daemon(tmpdir, "a").wait_ready()
        methods = ok_json(a, "rpc_get_methods")
        problems = check_coverage(a, methods)
        create_ram(a)
        file_bdevs = create_files(a, tmpdir, methods)
        create_virtual(a)
        have_raid = create_raid(a, methods)
        have_crashsim = create_crashsim(a, methods)
        check_nvme(a, methods)
        check_get_bdevs(a)
        check_iostat(a, list(bdevs(a)))
        check_qos(a)
        check_errors(a)
        check_verbose(a)
        saved = ok_json(a, "save_config")
        expected = comparable(ok_json(a, "bdev_get_bdevs"))
        delete_all(a, file_bdevs, have_raid, have_crashsim)
        a.stop()
        note("SIGTERM: exit 0, socket removed")
        problems += check_replay(tmpdir, saved, expected)
        if problems:
            fail("\n".join(problems))
    except Failure as e:
        print("FAIL: %s" % e)
        return 1
    except Exception as e:  # a crash of the test itself must not leave ustord behind
        print("FAIL: unexpected %s: %s" % (type(e).__name__, e))
        return 1
    finally:
        if a is not None:
            a.kill()
        shutil.rmtree(tmpdir, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
