#!/usr/bin/env python3
"""100,000 files in one directory of a blobfs FUSE mount.

The directory is an extendible hash of 4 KiB blocks (docs/blobfs-format.md
4.2) that splits many times on the way to 100k entries. Checked:
- every create succeeds (names of 1..255 bytes) and the listing is exactly
  the set created, each name once;
- stat finds 2,000 sampled names and ENOENT for 2,000 absent ones;
- 2,000 renames inside the directory: the old names are gone, the new ones
  name the same inodes;
- after a remount the listing is still exactly the expected set;
- one pass of readdir that unlinks every entry it returns sees each file
  exactly once (stable offsets while the directory shrinks under it) and
  leaves the directory empty, so rmdir succeeds; the unmount is clean.

USTOR_BIGDIR_FILES overrides the count (default 100000).
Exit 0 on pass, 1 on failure, 77 to skip (reason on the last line).
"""
import atexit
import errno
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuse_lib as fl  # noqa: E402
from fuse_lib import check  # noqa: E402

atexit.register(fl.cleanup)
fl.require_fuse()

N = int(os.environ.get("USTOR_BIGDIR_FILES", "100000"))
SAMPLE = min(2000, N // 2)


def name_of(i):
    """Distinct names of 1..255 bytes: the number, padded by a varying tail."""
    base = "f%d" % i
    return base + "-" * (i * 37 % (256 - len(base)))


def listing(d):
    names = os.listdir(d)
    check(len(names) == len(set(names)), "readdir returned a name twice")
    return set(names)


def main():
    rng = random.Random(1)
    work, img, mnt = fl.workdir("fuse_bigdir")
    # One blob per file: the default store has one blob slot per 4 clusters
    # of 64 KiB, so the (sparse) image needs 256 KiB per file.
    size = "%dM" % ((N + 4096) // 4 + 64)
    m = fl.Mount(img, mnt, fmt=True, size=size)
    big = os.path.join(mnt, "big")
    os.mkdir(big)

    expect = {}
    for i in range(N):
        name = name_of(i)
        os.close(os.open(os.path.join(big, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        expect[name] = None
    print("created %d files" % N)
    check(listing(big) == set(expect), "the listing differs from the names created")
    check(os.stat(big).st_nlink == 2, "a directory of files has link count 2")

    for name in rng.sample(sorted(expect), SAMPLE):
        st = os.stat(os.path.join(big, name))
        check(st.st_size == 0 and st.st_nlink == 1, "%s: size %d nlink %d"
              % (name, st.st_size, st.st_nlink))
        expect[name] = st.st_ino
    for i in range(SAMPLE):
        try:
            os.stat(os.path.join(big, "absent%d" % i))
            check(False, "absent%d exists" % i)
        except OSError as e:
            check(e.errno == errno.ENOENT, "stat of an absent name: %s" % e)

    for name in rng.sample(sorted(expect), SAMPLE):
        ino = os.stat(os.path.join(big, name)).st_ino
        new = "renamed-" + name[:200]
        os.rename(os.path.join(big, name), os.path.join(big, new))
        del expect[name]
        expect[new] = ino
        check(not os.path.exists(os.path.join(big, name)), "%s still exists" % name)
        check(os.stat(os.path.join(big, new)).st_ino == ino, "%s names another inode" % new)
    print("stat and rename checked on %d names" % SAMPLE)

    m.umount()
    m = fl.Mount(img, mnt)
    check(listing(big) == set(expect), "after the remount the listing differs")
    for name, ino in expect.items():
        if ino is not None:
            check(os.stat(os.path.join(big, name)).st_ino == ino,
                  "%s names another inode after the remount" % name)

    seen = set()
    with os.scandir(big) as it:
        for e in it:
            check(e.name not in seen, "readdir returned %s twice while unlinking" % e.name)
            seen.add(e.name)
            check(e.is_file(follow_symlinks=False), "%s is not a regular file" % e.name)
            os.unlink(os.path.join(big, e.name))
    check(seen == set(expect), "readdir while unlinking saw %d of %d names"
          % (len(seen & set(expect)), len(expect)))
    check(os.listdir(big) == [], "the directory is not empty after unlinking everything")
    os.rmdir(big)
    m.umount()
    print("PASS: %d files in one directory" % N)


main()
