#!/bin/bash
# ustor-mount's command line: bad arguments (exit 2), a missing image without
# --format (exit 1), daemon mode (`ustor-mount ... && ls MNT` works at once),
# SIGTERM to the daemon (mount gone, data kept), the -c CONFIG --bdev NAME
# form, and -f with SIGINT (exit 0).
# Exit 0 pass, 1 fail, 77 skip (reason on the last line).
set -u
cd "$(dirname "$0")/../.."
BUILDDIR=${USTOR_BUILDDIR:-$PWD/build}

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

. tests/integration/fuse_lib.sh
fuse_require

BASE=/dev/shm
[ -d $BASE ] || BASE=/tmp
WORK=$(mktemp -d $BASE/ustor_fuse_cli_XXXXXX)
MNT=$WORK/mnt
IMG=$WORK/img
mkdir -p "$MNT"
cleanup() {
	mountpoint -q "$MNT" && fusermount3 -u -z "$MNT"
	rm -rf "$WORK"
}
trap cleanup EXIT

daemon_pid() {
	pgrep -f -- "ustor-mount.*--image $IMG" | head -n 1
}

wait_gone() {
	for _ in $(seq 300); do
		mountpoint -q "$MNT" || { [ -z "$(daemon_pid)" ] && return 0; }
		sleep 0.1
	done
	fail "$1"
}

"$MOUNT" >/dev/null 2>&1; [ $? -eq 2 ] || fail "no arguments: expected exit 2"
"$MOUNT" --image "$IMG" --bdev x "$MNT" >/dev/null 2>&1; [ $? -eq 2 ] || fail "--image and --bdev: expected 2"
"$MOUNT" --image "$IMG" "$WORK/nodir" >/dev/null 2>&1; [ $? -eq 2 ] || fail "missing mountpoint: expected 2"
"$MOUNT" --image "$IMG" "$MNT" >/dev/null 2>&1; [ $? -eq 1 ] || fail "missing image: expected 1"
[ -e "$IMG" ] && fail "image created without --format"

echo "-- daemon"
"$MOUNT" --no-huge --format --image "$IMG" --size 1G "$MNT" && ls "$MNT" >/dev/null ||
	fail "daemon mount && ls"
mountpoint -q "$MNT" || fail "not mounted when the parent returned"
[ "$(stat -c %s "$IMG")" = $((1 << 30)) ] || fail "image size"
echo persistent >"$MNT"/file || fail "write"
pid=$(daemon_pid)
[ -n "$pid" ] || fail "no daemon process"
kill -TERM "$pid"
wait_gone "daemon did not unmount and exit on SIGTERM"

echo "-- -c CONFIG --bdev"
cat >"$WORK"/cfg.json <<JSON
{"subsystems":[{"subsystem":"bdev","config":[
 {"method":"bdev_aio_create","params":{"name":"img0","filename":"$IMG","block_size":4096}}]}]}
JSON
"$MOUNT" --no-huge -f -c "$WORK"/cfg.json --bdev img0 "$MNT" >"$WORK"/log 2>&1 &
fpid=$!
for _ in $(seq 300); do mountpoint -q "$MNT" && break; sleep 0.1; done
mountpoint -q "$MNT" || fail "-c/--bdev mount: $(cat "$WORK"/log)"
[ "$(cat "$MNT"/file)" = persistent ] || fail "data after SIGTERM and remount"
kill -INT $fpid
wait $fpid
rc=$?
[ $rc -eq 0 ] || fail "SIGINT: exit $rc: $(cat "$WORK"/log)"
mountpoint -q "$MNT" && fail "still mounted after SIGINT"
"$MOUNT" --no-huge -f -c "$WORK"/cfg.json --bdev nosuch "$MNT" >"$WORK"/log 2>&1
[ $? -eq 1 ] || fail "unknown bdev: expected exit 1"
grep -q "nosuch" "$WORK"/log || fail "unknown bdev not named: $(cat "$WORK"/log)"
echo PASS
