#!/bin/bash
# Real programs on a blobfs FUSE mount (ustor-mount): cp -a of this repo's
# include/ and core/ compared with diff -r; tar c | tar x round trip; git
# init/add/commit/fsck; sqlite3 building a database and PRAGMA
# integrity_check; a short fio verify run when fio is installed; then a
# remount and the copies are checked again.
#
# Exit 0 pass, 1 fail, 77 skip (reason on the last line).
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILDDIR=${USTOR_BUILDDIR:-$ROOT/build}

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; [ -f "$LOG" ] && tail -n 30 "$LOG"; exit 1; }

. tests/integration/fuse_lib.sh
fuse_require

BASE=/dev/shm
[ -d $BASE ] || BASE=/tmp
WORK=$(mktemp -d $BASE/ustor_fuse_tools_XXXXXX)
MNT=$WORK/mnt
IMG=$WORK/img
LOG=$WORK/mount.log
PID=
mkdir -p "$MNT"

cleanup() {
	if mountpoint -q "$MNT"; then
		fusermount3 -u -z "$MNT" 2>/dev/null
	fi
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		sleep 2
		kill -9 "$PID" 2>/dev/null
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

start_mount() {
	"$MOUNT" -f --no-huge --image "$IMG" "$@" "$MNT" >>"$LOG" 2>&1 &
	PID=$!
	for _ in $(seq 600); do
		mountpoint -q "$MNT" && return 0
		kill -0 "$PID" 2>/dev/null || fail "ustor-mount exited before mounting"
		sleep 0.1
	done
	fail "not mounted after 60 s"
}

stop_mount() {
	fusermount3 -u "$MNT" || fail "fusermount3 -u"
	local rc
	wait "$PID"
	rc=$?
	PID=
	[ $rc -eq 0 ] || fail "ustor-mount exited $rc after the unmount"
}

echo "-- mount"
start_mount --format --size 4G

echo "-- cp -a / diff -r"
cp -a include core "$MNT"/ || fail "cp -a"
diff -r include "$MNT"/include || fail "diff include"
diff -r core "$MNT"/core || fail "diff core"
[ "$(stat -c %Y include/ustor/app.h)" = "$(stat -c %Y "$MNT"/include/ustor/app.h)" ] ||
	fail "cp -a kept no mtime"

echo "-- tar"
mkdir "$MNT"/untar
tar -C "$ROOT" -cf "$MNT"/src.tar include core || fail "tar c"
tar -C "$MNT"/untar -xf "$MNT"/src.tar || fail "tar x"
diff -r include "$MNT"/untar/include || fail "diff after tar"
tar -C "$MNT" -cf - core | tar -C "$WORK" -xf - || fail "tar out of the mount"
diff -r core "$WORK"/core || fail "diff of the tree taken back out"

echo "-- git"
(
	set -e
	cd "$MNT"
	mkdir repo
	cd repo
	git init -q .
	git config user.email t@example.com
	git config user.name tester
	cp -a "$ROOT"/include .
	git add -A
	git commit -q -m one
	echo change >>include/ustor/app.h
	git commit -q -am two
	git mv include inc
	git commit -q -m three
	git fsck --strict >/dev/null 2>&1
	[ "$(git log --oneline | wc -l)" = 3 ]
	git status --porcelain | wc -l | grep -qx 0
) || fail "git in the mount"

echo "-- sqlite3"
if command -v sqlite3 >/dev/null; then
	sqlite3 "$MNT"/db.sqlite <<'SQL' >"$WORK"/sql.out 2>&1 || fail "sqlite3: $(cat "$WORK"/sql.out)"
PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 20000)
INSERT INTO t(v) SELECT hex(randomblob(64)) FROM c;
CREATE INDEX tv ON t(v);
DELETE FROM t WHERE id % 3 = 0;
VACUUM;
SQL
	[ "$(sqlite3 "$MNT"/db.sqlite 'PRAGMA integrity_check;')" = ok ] || fail "integrity_check"
	[ "$(sqlite3 "$MNT"/db.sqlite 'SELECT count(*) FROM t;')" = 13334 ] || fail "row count"
else
	echo "(sqlite3 not installed: skipped)"
fi

echo "-- fio"
if command -v fio >/dev/null; then
	fio --name=verify --directory="$MNT" --size=32m --bs=4k --rw=randwrite --ioengine=psync \
	    --numjobs=2 --verify=crc32c --do_verify=1 --verify_state_save=0 --runtime=5 --time_based=0 \
	    >"$WORK"/fio.out 2>&1 || fail "fio: $(tail -n 20 "$WORK"/fio.out)"
	fio --name=seq --directory="$MNT" --size=64m --bs=1m --rw=write --ioengine=libaio \
	    --iodepth=8 --direct=1 --verify=md5 --do_verify=1 --verify_state_save=0 \
	    >>"$WORK"/fio.out 2>&1 || fail "fio direct: $(tail -n 20 "$WORK"/fio.out)"
	grep -q "err= 0" "$WORK"/fio.out || fail "fio reported errors"
else
	echo "(fio not installed: skipped)"
fi

echo "-- remount"
stop_mount
start_mount
diff -r include "$MNT"/include || fail "diff include after remount"
diff -r core "$MNT"/untar/core || fail "diff untar after remount"
(cd "$MNT"/repo && git fsck --strict >/dev/null 2>&1 && [ "$(git log --oneline | wc -l)" = 3 ]) ||
	fail "git repo after remount"
if command -v sqlite3 >/dev/null; then
	[ "$(sqlite3 "$MNT"/db.sqlite 'PRAGMA integrity_check;')" = ok ] ||
		fail "integrity_check after remount"
fi
rm -rf "$MNT"/core "$MNT"/untar "$MNT"/repo || fail "rm -rf"
[ -z "$(ls -A "$MNT"/include/ustor | grep -v '\.h$')" ] || fail "listing"
stop_mount
echo PASS
