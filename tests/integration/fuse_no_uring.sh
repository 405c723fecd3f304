#!/bin/bash
# ustor-mount where the kernel refuses io_uring (sysctl kernel.io_uring_disabled,
# a container's seccomp profile): the uring bdev must refuse creation so
# ustor-mount falls back to the aio bdev, and the /dev/fuse transport must
# read on every poll with /dev/fuse itself as the reactor's interrupt fd.
# The refusal is injected into this one process only: an LD_PRELOAD shim
# makes liburing's ring set-up fail with ENOSYS, as the disabled sysctl
# would with EPERM. Checked: both fallbacks are taken (log), files, a copied
# tree, renames and unlinks behave and persist across an unmount and a
# normal remount, and an idle mount in this mode sleeps instead of spinning.
# Exit 0 pass, 1 fail, 77 skip (reason on the last line).
set -u
cd "$(dirname "$0")/../.."
SRC=$PWD
BUILDDIR=${USTOR_BUILDDIR:-$PWD/build}

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

. tests/integration/fuse_lib.sh
fuse_require
CC=${CC:-cc}
command -v "$CC" >/dev/null || skip "no C compiler for the shim"

BASE=/dev/shm
[ -d $BASE ] || BASE=/tmp
WORK=$(mktemp -d $BASE/ustor_fuse_nouring_XXXXXX)
MNT=$WORK/mnt
IMG=$WORK/img
mkdir -p "$MNT" "$WORK/ref"
pid=
cleanup() {
	mountpoint -q "$MNT" && fusermount3 -u -z "$MNT"
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/nouring.c" <<'EOF'
#include <errno.h>
struct io_uring;
struct io_uring_params;
int io_uring_queue_init_params(unsigned int entries, struct io_uring *ring,
			       struct io_uring_params *p)
{
	(void)entries; (void)ring; (void)p;
	return -ENOSYS;
}
int io_uring_queue_init(unsigned int entries, struct io_uring *ring, unsigned int flags)
{
	(void)entries; (void)ring; (void)flags;
	return -ENOSYS;
}
EOF
"$CC" -shared -fPIC -o "$WORK/nouring.so" "$WORK/nouring.c" || fail "cannot build the shim"

# mount_fs [PRELOAD]: ustor-mount -f in the background, $pid, wait for the mount.
# (Under ASan the shim comes before the runtime; it allocates nothing, so
# the order check is off.)
mount_fs() {
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
		LD_PRELOAD=${1:-} "$MOUNT" --no-huge -f ${2:-} --image "$IMG" --size 1G "$MNT" \
		>>"$WORK/log" 2>&1 &
	pid=$!
	for _ in $(seq 300); do mountpoint -q "$MNT" && return 0; sleep 0.1; done
	fail "no mount: $(cat "$WORK/log")"
}

umount_fs() {
	fusermount3 -u "$MNT" || fail "fusermount3 -u"
	wait "$pid"
	rc=$?
	pid=
	[ $rc -eq 0 ] || fail "ustor-mount exit $rc: $(tail -5 "$WORK/log")"
}

echo "-- without io_uring"
mount_fs "$WORK/nouring.so" --format
grep -q "the kernel refuses uring queues" "$WORK/log" || fail "uring bdev not refused: $(cat "$WORK/log")"
grep -q "/dev/fuse is read on every poll" "$WORK/log" || fail "transport fallback not taken: $(cat "$WORK/log")"

for i in $(seq 1 40); do
	head -c $((i * 7919)) /dev/urandom >"$WORK/ref/f$i" || fail "reference file"
	cp "$WORK/ref/f$i" "$MNT/f$i" || fail "write f$i"
done
mkdir -p "$MNT/tree" && cp -a "$SRC/tests/unit" "$MNT/tree/" || fail "cp -a"
diff -r "$SRC/tests/unit" "$MNT/tree/unit" || fail "diff -r after cp -a"
mkdir "$MNT/d" && mv "$MNT/f1" "$MNT/d/g1" && mv "$WORK/ref/f1" "$WORK/ref/g1" || fail "rename"
rm "$MNT/f2" "$WORK/ref/f2" || fail "unlink"
cmp "$MNT/d/g1" "$WORK/ref/g1" || fail "renamed file content"
for i in $(seq 3 40); do cmp "$MNT/f$i" "$WORK/ref/f$i" || fail "f$i content"; done

# Idle: a reactor that spun would burn ~300 ticks (USER_HZ 100) in 3 s.
sleep 1
t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
sleep 3
t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
[ $((t1 - t0)) -lt 150 ] || fail "idle mount used $((t1 - t0)) ticks in 3 s: the reactor does not sleep"
umount_fs

echo "-- remount with io_uring"
: >"$WORK/log"
mount_fs
cmp "$MNT/d/g1" "$WORK/ref/g1" || fail "renamed file after remount"
[ -e "$MNT/f2" ] && fail "unlinked file is back"
for i in $(seq 3 40); do cmp "$MNT/f$i" "$WORK/ref/f$i" || fail "f$i after remount"; done
diff -r "$SRC/tests/unit" "$MNT/tree/unit" || fail "diff -r after remount"
umount_fs
echo PASS
