#!/bin/sh
# run.sh: run ustord in the foreground with a config, on the default socket
# (/var/tmp/ustor.sock). `make run` calls it as: scripts/run.sh BUILDDIR CONFIG
#
# Without reserved hugepages it passes --no-huge itself, so it works on any
# machine (IOVA = VA; no PCI devices). Extra arguments go to ustord.
# Ctrl-C (SIGINT) or SIGTERM shuts ustord down cleanly.
set -e
if [ $# -lt 2 ]; then
	echo "usage: $0 BUILDDIR CONFIG [USTORD-OPTION]..." >&2
	exit 2
fi
builddir=$1
config=$2
shift 2
bin=$builddir/bin/ustord
if [ ! -x "$bin" ]; then
	echo "$0: $bin not found; build it first (make BUILDDIR=$builddir)" >&2
	exit 1
fi
if [ ! -r "$config" ]; then
	echo "$0: cannot read config $config" >&2
	exit 1
fi
# The default config (etc/ustor.json) serves a file system from an image
# under ./var mounted at ./mnt: make both, and the sparse image on first run.
mkdir -p var mnt
[ -e var/ustor.img ] || truncate -s "${USTOR_IMAGE_SIZE:-8G}" var/ustor.img
huge=$(awk '/^HugePages_Total:/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)
extra=""
if [ "${huge:-0}" -eq 0 ]; then
	echo "$0: no hugepages reserved; running with --no-huge (scripts/setup.sh reserves some)" >&2
	extra="--no-huge"
fi
echo "$0: ustord -c $config (JSON-RPC on /var/tmp/ustor.sock; Ctrl-C stops it)" >&2
# exec: signals from the terminal or a supervisor reach ustord directly.
exec "$bin" -c "$config" $extra "$@"
