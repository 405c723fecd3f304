#!/bin/bash
# ustor-mount's command line: bad arguments (exit 2), a missing image without
# --format (exit 1), daemon mode (`ustor-mount ... && ls MNT` works at once),
# SIGTERM to the daemon (mount gone, data kept), the -c CONFIG --bdev NAME
# form, -f with SIGINT (exit 0), and --max-inodes: statvfs reports the count,
# creates fail with ENOSPC exactly when the slots are used up (two hold the
# file system itself), an unlink frees one, and a remount keeps the count;
# --prealloc-md: the sparse image holds the metadata region after format;
# -o ro: every change fails with EROFS, and the files stay as they were.
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
for bad in 0 abc -1 1.5 16777217 99999999999 ""; do
	"$MOUNT" --format --max-inodes "$bad" --image "$IMG" "$MNT" >/dev/null 2>"$WORK"/err
	rc=$?
	[ $rc -eq 2 ] || fail "--max-inodes '$bad': exit $rc, expected 2"
	grep -q -- "bad --max-inodes '$bad'" "$WORK"/err || fail "--max-inodes '$bad': $(cat "$WORK"/err)"
done
"$MOUNT" --max-inodes 200 --image "$IMG" "$MNT" >/dev/null 2>"$WORK"/err
[ $? -eq 2 ] || fail "--max-inodes without --format: expected exit 2"
grep -q "need --format" "$WORK"/err || fail "--max-inodes without --format: $(cat "$WORK"/err)"
"$MOUNT" --prealloc-md --image "$IMG" "$MNT" >/dev/null 2>"$WORK"/err
[ $? -eq 2 ] || fail "--prealloc-md without --format: expected exit 2"
grep -q "need --format" "$WORK"/err || fail "--prealloc-md without --format: $(cat "$WORK"/err)"
[ -e "$IMG" ] && fail "image created by a refused command line"

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

echo "-- --max-inodes"
rm -f "$IMG"
"$MOUNT" --no-huge --format --max-inodes 1 --image "$IMG" --size 64M "$MNT" >"$WORK"/log 2>&1
[ $? -eq 1 ] || fail "--max-inodes 1 (no room for the root): expected exit 1"
grep -q "No space left on device" "$WORK"/log || fail "--max-inodes 1: $(cat "$WORK"/log)"
mountpoint -q "$MNT" && fail "mounted with --max-inodes 1"
rm -f "$IMG"
"$MOUNT" --no-huge --format --max-inodes 200 --image "$IMG" --size 64M "$MNT" ||
	fail "mount with --max-inodes 200"
# 200 slots: the super blob and the root directory take two, so 198 files fit.
python3 - "$MNT" <<'PY' || fail "filling the inodes"
import errno, os, sys
mnt = sys.argv[1]
st = os.statvfs(mnt)
assert (st.f_files, st.f_ffree) == (200, 198), "statvfs files %d free %d" % (st.f_files, st.f_ffree)
def create(i):
    os.close(os.open(os.path.join(mnt, "f%d" % i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
n = 0
while True:
    try:
        create(n)
    except OSError as e:
        assert e.errno == errno.ENOSPC, "create %d: %s" % (n, e)
        break
    n += 1
    assert n <= 300, "more than 300 creates with 200 inodes"
assert n == 198, "%d files fit in 200 inodes, expected 198" % n
assert os.statvfs(mnt).f_ffree == 0, "inodes free when full: %d" % os.statvfs(mnt).f_ffree
try:
    os.mkdir(os.path.join(mnt, "dir"))
    raise AssertionError("mkdir succeeded with every inode used")
except OSError as e:
    assert e.errno == errno.ENOSPC, "mkdir when full: %s" % e
os.unlink(os.path.join(mnt, "f0"))
create(n)
try:
    create(n + 1)
    raise AssertionError("a second create after one unlink succeeded")
except OSError as e:
    assert e.errno == errno.ENOSPC, "create when full again: %s" % e
PY
fusermount3 -u "$MNT" || fail "fusermount3 -u"
wait_gone "the --max-inodes mount did not end"
"$MOUNT" --no-huge --image "$IMG" "$MNT" || fail "remount of the --max-inodes image"
python3 - "$MNT" <<'PY' || fail "inodes after the remount"
import os, sys
mnt = sys.argv[1]
st = os.statvfs(mnt)
assert (st.f_files, st.f_ffree) == (200, 0), "statvfs files %d free %d" % (st.f_files, st.f_ffree)
names = sorted(os.listdir(mnt))
assert names == sorted("f%d" % i for i in range(1, 199)), "files after the remount: %r" % names
PY
fusermount3 -u "$MNT" || fail "fusermount3 -u"
wait_gone "the remounted --max-inodes mount did not end"

# --prealloc-md: the sparse image holds the whole metadata region (two root
# pages and at least one pool page per inode) once formatted; without it
# the pool at least stays a hole. Files work and survive a remount.
echo "-- --prealloc-md"
region=$((3 * 1000 * 4096))
for pre in "" --prealloc-md; do
	rm -f "$IMG"
	"$MOUNT" --no-huge --format $pre --max-inodes 1000 --image "$IMG" --size 64M "$MNT" ||
		fail "mount with --format $pre"
	used=$(($(stat -c '%b * %B' "$IMG")))
	if [ -n "$pre" ]; then
		[ "$used" -ge "$region" ] || fail "--prealloc-md: image holds $used bytes, region $region"
	else
		[ "$used" -lt "$region" ] || fail "lazy format: image holds $used bytes, region $region"
	fi
	echo "kept $pre" >"$MNT"/f || fail "write after format $pre"
	fusermount3 -u "$MNT" || fail "fusermount3 -u"
	wait_gone "the mount formatted with '$pre' did not end"
	"$MOUNT" --no-huge --image "$IMG" "$MNT" || fail "remount of the image formatted with '$pre'"
	[ "$(cat "$MNT"/f)" = "kept $pre" ] || fail "file after the remount ($pre): $(cat "$MNT"/f)"
	fusermount3 -u "$MNT" || fail "fusermount3 -u"
	wait_gone "the remount of the image formatted with '$pre' did not end"
done

# -o ro: the kernel mount is read-only; every change fails with EROFS and
# the file system reads as it was. (The daemon still opens the image for
# writing: the store's load and unload write its clean mark.)
echo "-- -o ro"
"$MOUNT" --no-huge -o ro --image "$IMG" "$MNT" || fail "read-only mount"
grep -q " $MNT fuse.ustor ro," /proc/mounts || fail "not mounted ro: $(grep " $MNT " /proc/mounts)"
[ "$(cat "$MNT"/f)" = "kept --prealloc-md" ] || fail "-o ro: file reads $(cat "$MNT"/f)"
for change in "touch $MNT/new" "mkdir $MNT/d" "rm $MNT/f" "truncate -s 0 $MNT/f" \
	"mv $MNT/f $MNT/g" "chmod 600 $MNT/f" "ln -s f $MNT/l"; do
	out=$($change 2>&1) && fail "-o ro: '$change' succeeded"
	[[ $out == *"Read-only file system"* ]] || fail "-o ro: '$change': $out, expected EROFS"
done
echo more 2>/dev/null >>"$MNT"/f && fail "-o ro: an append succeeded"
[ "$(cat "$MNT"/f)" = "kept --prealloc-md" ] || fail "-o ro: file changed: $(cat "$MNT"/f)"
fusermount3 -u "$MNT" || fail "fusermount3 -u of the read-only mount"
wait_gone "the read-only mount did not end"
"$MOUNT" --no-huge --image "$IMG" "$MNT" || fail "read-write mount after ro"
[ "$(ls "$MNT")" = f ] || fail "after the ro mount the directory holds: $(ls "$MNT")"
fusermount3 -u "$MNT" || fail "fusermount3 -u"
wait_gone "the mount after the read-only one did not end"
echo PASS
