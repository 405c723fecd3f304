#!/bin/bash
# The examples under examples/ are programs users copy: each must build and
# run to a successful end.
set -u
build=${USTOR_BUILDDIR:-build}
out=$("$build/examples/hello_blob" 2>&1)
rc=$?
echo "$out"
if [ $rc -ne 0 ]; then
	echo "hello_blob exited $rc"
	exit 1
fi
if ! grep -q 'read back "Hello, blob!"' <<<"$out"; then
	echo "hello_blob did not report the round trip"
	exit 1
fi
echo "hello_blob: ok"
