#!/bin/bash
# fuse_model.py on a mount with the kernel's writeback cache
# (-o writeback_cache): the kernel then caches writes, does O_APPEND and
# the size of cached writes itself, and the random operations must still
# agree with tmpfs. 1500 operations (the plain run does 3000).
# Exit 0 pass, 1 fail, 77 skip (reason on the last line).
cd "$(dirname "$0")" || exit 1
USTOR_FUSE_EXTRA_OPTS=writeback_cache USTOR_FUSE_MODEL_OPS=${USTOR_FUSE_MODEL_OPS:-1500} \
	exec ./fuse_model.py
