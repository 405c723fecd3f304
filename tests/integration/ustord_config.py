#!/usr/bin/env python3
"""ustord configs: save_config (printed and written to a file) replayed with
ustord -c gives back the same state and the same saved config; the default
etc/ustor.json starts (also through scripts/run.sh); bad configs (a failing
call, an unknown subsystem, a malformed layout, invalid JSON, a missing
file) make ustord exit non-zero with a message naming the problem, without
leaving a socket behind.

Exit 0 on pass, 1 on failure, 77 to skip (reason on the last line).
The build directory comes from USTOR_BUILDDIR (default: build).
"""
import atexit
import json
import os
import shutil
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuse_lib as fl  # noqa: E402
import ustord_lib as ul  # noqa: E402
from fuse_lib import fail  # noqa: E402

USTORD = os.path.join(fl.BIN, "ustord")
TMPDIR = tempfile.mkdtemp(prefix="ustor_it_config_")
SOCK = os.path.join(TMPDIR, "ustor.sock")
START_TIMEOUT = 30
STOP_TIMEOUT = 20
atexit.register(shutil.rmtree, TMPDIR, True)
atexit.register(ul.cleanup)  # runs first: nothing uses TMPDIR when it goes


def rpc(*args):
    return ul.rpc(SOCK, *args)


def rpc_fails(*args):
    return ul.rpc_error(SOCK, *args)


def daemon(argv, cwd=None, mnt=None):
    """ustord (or run.sh) on SOCK, once it answers RPCs; stop() checks the socket is gone."""
    return ul.Daemon(argv, mnt, lambda: ul.answers(SOCK), START_TIMEOUT, cwd=cwd, sock=SOCK)


def ustord(*args):
    return daemon([USTORD, "--no-huge", "-r", SOCK] + list(args))


def stop(d):
    d.stop(signal.SIGTERM, STOP_TIMEOUT)


def write_json(name, obj):
    path = os.path.join(TMPDIR, name)
    with open(path, "w") as f:
        if isinstance(obj, str):
            f.write(obj)
        else:
            json.dump(obj, f)
    return path


def pick_flag():
    flags = rpc("log_get_flags")
    return sorted(flags)[0] if flags else None


def check_save_and_replay():
    a = ustord()
    rpc("log_set_print_level", "INFO")
    rpc("log_set_level", "WARNING")
    flag = pick_flag()
    if flag is not None:
        rpc("log_set_flag", flag)
    saved = rpc("save_config")
    if not isinstance(saved, dict) or not isinstance(saved.get("subsystems"), list):
        fail("save_config did not print a config: %r" % saved)
    for entry in saved["subsystems"]:
        if not isinstance(entry.get("config"), list):
            fail("save_config: every subsystem needs a config array: %r" % entry)
    path = os.path.join(TMPDIR, "saved.json")
    written = rpc("call", "save_config", json.dumps({"file": path}))
    with open(path) as f:
        on_disk = json.load(f)
    if on_disk != saved or written != saved:
        fail("save_config with \"file\" wrote/returned something else:\n%r\n%r\n%r"
             % (on_disk, written, saved))
    bad_dir = rpc_fails("call", "save_config", json.dumps({"file": "/nonexistent/dir/x.json"}))
    if "/nonexistent/dir/x.json" not in bad_dir:
        fail("save_config to a bad path: error should name it: %s" % bad_dir)
    stop(a)

    b = ustord("-c", path)
    if rpc("log_get_print_level") != "INFO" or rpc("log_get_level") != "WARNING":
        fail("replayed config did not restore the log levels")
    if flag is not None and rpc("log_get_flags").get(flag) is not True:
        fail("replayed config did not restore log flag %s" % flag)
    again = rpc("save_config")
    stop(b)
    if again != saved:
        fail("save_config after replay differs:\n%r\n%r" % (again, saved))
    print("ok: save_config (stdout and file) replayed with -c gives the same config%s"
          % (" (flag %s)" % flag if flag else ""))


def expect_start_failure(config_path, needles, what):
    d = ul.Daemon([USTORD, "--no-huge", "-r", SOCK, "-c", config_path], None, None, START_TIMEOUT)
    rc = d.wait_exit(START_TIMEOUT, what)
    out = d.output()
    if rc == 0:
        fail("%s: ustord exited 0:\n%s" % (what, out))
    for needle in needles:
        if needle not in out:
            fail("%s: output lacks %r:\n%s" % (what, needle, out))
    if os.path.exists(SOCK):
        fail("%s: socket left behind" % what)
    print("ok: %s: exit %d, message names it" % (what, rc))


def check_bad_configs():
    failing_call = {"subsystems": [{"subsystem": "log", "config": [
        {"method": "log_set_print_level", "params": {"level": "NOTICE"}},
        {"method": "log_set_print_level", "params": {"level": "LOUD"}},
        {"method": "log_set_level", "params": {"level": "INFO"}}]}]}
    expect_start_failure(write_json("failing_call.json", failing_call),
                         ["subsystem 'log' entry 1 (log_set_print_level) failed", "LOUD"],
                         "a failing call")
    unknown = {"subsystems": [{"subsystem": "log", "config": []},
                              {"subsystem": "no_such_subsystem", "config": []}]}
    expect_start_failure(write_json("unknown.json", unknown),
                         ["unknown subsystem 'no_such_subsystem'"], "an unknown subsystem")
    no_method = {"subsystems": [{"subsystem": "log", "config": [{"params": {}}]}]}
    expect_start_failure(write_json("no_method.json", no_method),
                         ["subsystem 'log' entry 0: missing \"method\""], "a call without method")
    expect_start_failure(write_json("no_subsystems.json", {"config": []}),
                         ["missing \"subsystems\" array"], "a config without subsystems")
    bad_json = write_json("bad.json", '{"subsystems": [\n  {"subsystem": "log",,}\n]}')
    expect_start_failure(bad_json, ["cannot parse", bad_json], "invalid JSON")
    missing = os.path.join(TMPDIR, "missing.json")
    expect_start_failure(missing, [missing], "a missing config file")


def check_default_config():
    """etc/ustor.json is make run's demo: an image file under ./var mounted at
    ./mnt. scripts/run.sh creates the image and the directories; run both
    ways in a scratch directory so the repo is left alone."""
    work = tempfile.mkdtemp(dir=TMPDIR)
    # scripts/run.sh as `make run` uses it, on our socket instead of the default one.
    r = daemon([os.path.join(fl.ROOT, "scripts", "run.sh"), fl.BUILDDIR,
                os.path.join(fl.ROOT, "etc", "ustor.json"), "--no-huge", "-r", SOCK], cwd=work,
               mnt=os.path.join(work, "mnt"))
    if rpc("log_get_print_level") != "NOTICE":
        fail("etc/ustor.json should leave the print level at NOTICE")
    mounts = rpc("blobfs_get_mounts")
    if len(mounts) != 1 or mounts[0]["mountpoint"] != os.path.join(work, "mnt"):
        fail("etc/ustor.json should mount ./mnt: %r" % (mounts,))
    with open(os.path.join(work, "mnt", "hello"), "w") as f:
        f.write("make run")
    stop(r)  # also: ./mnt is no longer mounted
    # Directly, on the image run.sh made: the file is still there.
    d = daemon([USTORD, "--no-huge", "-r", SOCK, "-c",
                os.path.join(fl.ROOT, "etc", "ustor.json")], cwd=work, mnt=os.path.join(work, "mnt"))
    with open(os.path.join(work, "mnt", "hello")) as f:
        if f.read() != "make run":
            fail("the file written under make run's mount did not survive a restart")
    stop(d)
    os.unlink(os.path.join(work, "var", "ustor.img"))
    print("ok: etc/ustor.json starts, directly and through scripts/run.sh")


def main():
    if not os.access(USTORD, os.X_OK):
        print("%s not built (set USTOR_BUILDDIR or run make)" % USTORD)
        sys.exit(77)
    try:
        check_save_and_replay()
        check_bad_configs()
        check_default_config()
    except Exception as e:  # a crash of the test itself must still clean up
        fail("unexpected %s: %s" % (type(e).__name__, e))
    print("PASS")


if __name__ == "__main__":
    main()
