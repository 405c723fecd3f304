#!/usr/bin/env python3
"""Metadata rates of a blobfs FUSE mount: N empty files in one directory.

    sudo bench/fs/meta.py [-n 100000] [--step 10000] [--builddir build]
                          [--image FILE] [--keep]

Formats a fresh image (sparse file on /dev/shm unless --image), mounts it
with ustor-mount, then in one directory: creates N empty files (open
O_CREAT|O_EXCL + close), stats them all (lstat, after dropping the
kernel's dentry and inode caches so the stats reach blobfs), lists the
directory, and unlinks them all. Prints the rate of each phase for every
--step files, so a rate that falls as the directory (and the number of
inodes) grows shows up as falling numbers, and the totals. Measures, never
fails (exit 0 unless the mount itself fails). Needs root (mounts).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def drop_caches():
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("2\n")
    except OSError:
        pass


def phase(name, n, step, fn):
    """fn(i) for i in range(n): the rate per step and overall."""
    t0 = last = time.monotonic()
    rates = []
    for i in range(n):
        fn(i)
        if (i + 1) % step == 0 or i + 1 == n:
            now = time.monotonic()
            done = (i % step) + 1
            rates.append(done / (now - last))
            last = now
    total = time.monotonic() - t0
    print("%-8s %7d in %7.2f s = %8.0f /s; per %d: %s" % (
        name, n, total, n / total, step, " ".join("%.0f" % r for r in rates)))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=100000)
    ap.add_argument("--step", type=int, default=10000)
    ap.add_argument("--builddir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--image")
    ap.add_argument("--keep", action="store_true", help="leave the files and the image")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ustor_meta_", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    img = args.image or os.path.join(work, "img")
    mnt = os.path.join(work, "mnt")
    os.mkdir(mnt)
    log = open(os.path.join(work, "mount.log"), "w")
    proc = subprocess.Popen([os.path.join(args.builddir, "bin", "ustor-mount"), "-f", "--no-huge",
                             "--image", img, "--format", "--size", "8G", mnt],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while not is_mounted(mnt):
            if proc.poll() is not None or time.time() > deadline:
                print("mount failed, see %s" % log.name)
                return 1
            time.sleep(0.05)
        d = os.path.join(mnt, "d")
        os.mkdir(d)
        names = ["file%07d" % i for i in range(args.n)]
        print("%d empty files in one directory, ustor-mount on %s" % (args.n, img))
        phase("create", args.n, args.step,
              lambda i: os.close(os.open(os.path.join(d, names[i]),
                                         os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)))
        drop_caches()
        phase("stat", args.n, args.step, lambda i: os.lstat(os.path.join(d, names[i])))
        t0 = time.monotonic()
        count = len(os.listdir(d))
        print("readdir  %7d in %7.2f s" % (count, time.monotonic() - t0))
        if not args.keep:
            phase("unlink", args.n, args.step, lambda i: os.unlink(os.path.join(d, names[i])))
    finally:
        subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
