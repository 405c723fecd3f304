#!/bin/bash
# The POSIX behaviour suite (fuse_posix.py) again, on a mount with the FUSE
# writeback cache (-o writeback_cache): the kernel then caches writes,
# handles O_APPEND and mtime itself, and reads pages of write-only files.
# Exit 0 pass, 1 fail, 77 skip (reason on the last line).
cd "$(dirname "$0")" || exit 1
USTOR_FUSE_EXTRA_OPTS=writeback_cache exec ./fuse_posix.py
