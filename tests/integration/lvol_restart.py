#!/usr/bin/env python3
"""Logical volumes survive a ustord restart: an lvstore on an aio bdev (a
file) with a thick and a thin lvol, renamed and resized through rpc.py's
SPDK-style command lines; after SIGTERM and a restart from the saved config
(which holds the aio bdev and nothing lvol-related) the lvstore and the lvols
come back with their names, UUIDs and sizes. Also: RPC errors for a
duplicate name, an unknown lvstore and a thick lvol that does not fit.

Exit 0 on pass, 1 on failure, 77 to skip (reason on the last line).
The build directory comes from USTOR_BUILDDIR (default: build).
"""
import atexit
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
SOCK = "/tmp/ustor_it_lvol_%d.sock" % os.getpid()
TMPDIR = tempfile.mkdtemp(prefix="ustor_it_lvol_")
IMAGE = os.path.join(TMPDIR, "lvs.img")
START_TIMEOUT = 30
running = []


def cleanup():
    for proc in running:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if os.path.exists(SOCK):
        os.unlink(SOCK)
    shutil.rmtree(TMPDIR, ignore_errors=True)


atexit.register(cleanup)


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def run_rpc(args):
    return subprocess.run([sys.executable, RPC_PY, "-s", SOCK, "-t", "30"] + list(args),
                          capture_output=True, text=True, timeout=90)


def rpc(*args):
    out = run_rpc(args)
    if out.returncode != 0:
        fail("rpc.py %s: exit %d: %s" % (" ".join(args), out.returncode, out.stderr))
    try:
        return json.loads(out.stdout)
    except ValueError:
        return out.stdout.strip()


def rpc_fails(needle, *args):
    out = run_rpc(args)
    if out.returncode == 0:
        fail("rpc.py %s succeeded; expected an error" % " ".join(args))
    if needle not in out.stderr:
        fail("rpc.py %s: error lacks %r: %s" % (" ".join(args), needle, out.stderr))


def answers():
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(SOCK)
            s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"rpc_get_methods"}')
            return len(s.recv(65536)) > 0
    except OSError:
        return False


class Daemon:
    def __init__(self, *args):
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([USTORD, "--no-huge", "-r", SOCK] + list(args),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        running.append(self.proc)

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def wait_ready(self):
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            if self.proc.poll() is not None:
                fail("ustord exited with %d during start-up:\n%s"
                     % (self.proc.returncode, self.output()))
            if answers():
                return
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


def lvols_by_name():
    return {v["name"]: v for v in rpc("bdev_lvol_get_lvols", "-l", "pool")}


def bdev(name):
    found = rpc("bdev_get_bdevs", "-b", name)
    if len(found) != 1:
        fail("bdev %s: %r" % (name, found))
    return found[0]


def main():
    if not os.access(USTORD, os.X_OK):
        print("skip: %s is not built" % USTORD)
        return 77
    with open(IMAGE, "wb") as f:
        f.truncate(64 << 20)

    a = Daemon()
    a.wait_ready()
    rpc("bdev_aio_create", IMAGE, "Aio0", "512")
    rpc("bdev_wait_for_examine")
    lvs_uuid = rpc("bdev_lvol_create_lvstore", "Aio0", "store", "-c", "1048576")
    thick = rpc("bdev_lvol_create", "-l", "store", "thick", "8")
    thin = rpc("bdev_lvol_create", "-u", lvs_uuid, "thin", "100", "-t")
    rpc_fails("File exists", "bdev_lvol_create", "-l", "store", "thick", "1")
    rpc_fails("no lvstore nope", "bdev_lvol_create", "-l", "nope", "x", "1")
    rpc_fails("No space left", "bdev_lvol_create", "-l", "store", "huge", "1000")
    rpc("bdev_lvol_rename", "store/thin", "sparse")
    rpc("bdev_lvol_resize", thick, "12")
    rpc("bdev_lvol_rename_lvstore", "store", "pool")
    before = lvols_by_name()
    if sorted(before) != ["sparse", "thick"]:
        fail("lvols before restart: %r" % before)
    if bdev("pool/thick")["name"] != thick or bdev("pool/sparse")["name"] != thin:
        fail("aliases do not lead to the UUID-named bdevs")
    if bdev(thick)["num_blocks"] != 12 * 2048:
        fail("thick lvol not resized: %r" % bdev(thick))
    stores = rpc("bdev_lvol_get_lvstores")
    if len(stores) != 1 or stores[0]["uuid"] != lvs_uuid or stores[0]["base_bdev"] != "Aio0":
        fail("bdev_lvol_get_lvstores: %r" % stores)
    config = rpc("save_config")
    text = json.dumps(config)
    if "bdev_lvol" in text or "bdev_aio_create" not in text:
        fail("save_config should hold the aio bdev and no lvol call: %s" % text)
    path = os.path.join(TMPDIR, "config.json")
    with open(path, "w") as f:
        json.dump(config, f)
    a.stop()

    b = Daemon("-c", path)
    b.wait_ready()
    rpc("bdev_wait_for_examine")
    stores = rpc("bdev_lvol_get_lvstores", "-l", "pool")
    if len(stores) != 1 or stores[0]["uuid"] != lvs_uuid:
        fail("lvstore after restart: %r\n%s" % (stores, b.output()))
    after = lvols_by_name()
    for name in ("thick", "sparse"):
        if after.get(name, {}).get("uuid") != before[name]["uuid"]:
            fail("lvol %s after restart: %r, before %r" % (name, after.get(name), before[name]))
    if bdev("pool/thick")["num_blocks"] != 12 * 2048:
        fail("thick lvol size after restart: %r" % bdev("pool/thick"))
    if bdev("pool/sparse")["num_blocks"] != 100 * 2048 or not after["sparse"]["is_thin_provisioned"]:
        fail("thin lvol after restart: %r %r" % (bdev("pool/sparse"), after["sparse"]))
    rpc("bdev_lvol_delete", "pool/sparse")
    rpc("bdev_lvol_delete_lvstore", "-l", "pool")
    if rpc("bdev_lvol_get_lvstores") != []:
        fail("lvstore still listed after delete")
    b.stop()
    print("ok: lvstore and lvols (names, UUIDs, sizes) survive a ustord restart")
    return 0


if __name__ == "__main__":
    sys.exit(main())
