#!/bin/bash
# `make install` must give a user everything to build a program against
# ustor: the libraries, the headers and a working pkg-config file. Install
# into a scratch DESTDIR, build examples/hello_blob.c against that with
# pkg-config alone, and run it.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${USTOR_BUILDDIR:-$repo/build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

make -s -C "$repo" BUILDDIR="$build" install DESTDIR="$tmp" >"$tmp/install.log" 2>&1 || {
	cat "$tmp/install.log"
	echo "make install failed"
	exit 1
}
prefix=$(sed -n 's/^CONFIG_PREFIX := //p' "$build/config.mk")
root=$tmp$prefix
for f in bin/ustord bin/ustor-rpc lib/libustor.a lib/libustor_env.a include/ustor/blob.h \
	lib/pkgconfig/ustor.pc share/ustor/python/rpc/client.py; do
	[ -e "$root/$f" ] || { echo "missing after install: $f"; exit 1; }
done

san=""
grep -q '^CONFIG_ASAN := y' "$build/config.mk" && san="-fsanitize=address,undefined"
export PKG_CONFIG_PATH=$root/lib/pkgconfig
flags=$(pkg-config --define-variable=prefix="$root" --cflags --libs ustor)
# shellcheck disable=SC2086
cc -std=gnu11 -D_GNU_SOURCE $san -o "$tmp/hello_blob" "$repo/examples/hello_blob.c" $flags
"$tmp/hello_blob" | grep -q 'read back "Hello, blob!"' || { echo "installed hello_blob failed"; exit 1; }
# The installed RPC client finds its package.
"$root/bin/ustor-rpc" --help >/dev/null
echo "install: ok"
