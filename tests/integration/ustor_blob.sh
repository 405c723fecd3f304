#!/bin/bash
# ustor_blob.sh: the ustor-blob command-line tool on a blobstore in an image
# file (bdev_aio_create): init; create thick and thin blobs (the id is the
# last line); write a file and read it back identically (cmp), thin and
# thick, with --length; list shows sizes, flags and xattrs; xattr get/set;
# resize; snapshot and clone; delete; dump decodes the store; fsck exits 0 on
# the clean store; then a metadata page of one blob is corrupted in the image
# file with dd at the offset dump prints, and fsck exits 1 naming that blob.
# Also: bad arguments exit 2, a missing blob exits 1.
#
# Exit 0 when all pass, 1 on any failure. Needs no hugepages (--no-huge).
set -u
cd "$(dirname "$0")/../.."
BUILDDIR=${USTOR_BUILDDIR:-build}
TOOL=$BUILDDIR/bin/ustor-blob
[ -x "$TOOL" ] || { echo "SKIP: $TOOL not built"; exit 77; }

tmp=$(mktemp -d /tmp/ustor_blob.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

failures=0
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

img=$tmp/store.img
truncate -s 64M "$img"
cfg=$tmp/cfg.json
cat >"$cfg" <<EOF
{"subsystems":[{"subsystem":"bdev","config":[{"method":"bdev_aio_create","params":{"name":"Aio0","filename":"$img","block_size":512}}]}]}
EOF

# blob CMD ARGS... : run the tool; stdout in $tmp/out, stderr in $tmp/err, status in $rc.
rc=0
blob() {
	timeout 120 "$TOOL" --no-huge -c "$cfg" -b Aio0 "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
}

# ok NAME CMD ARGS... : the command must exit 0.
ok() {
	local name=$1; shift
	blob "$@"
	if [ $rc -ne 0 ]; then
		fail "$name: exit $rc"
		grep -v '^EAL' "$tmp/out" "$tmp/err" | tail -15
		return 1
	fi
	return 0
}

ok init init --cluster-size 64K || { echo "cannot continue"; exit 1; }
grep -q "cluster size 65536" "$tmp/out" || fail "init: no cluster size in: $(cat "$tmp/out")"

ok create-thick create --size 3 && thick=$(tail -n 1 "$tmp/out")
ok create-thin create --size 1M --thin && thin=$(tail -n 1 "$tmp/out")
[[ ${thick:-} =~ ^0x[0-9a-f]+$ ]] || fail "create: last line is not an id: '${thick:-}'"
[[ ${thin:-} =~ ^0x[0-9a-f]+$ ]] || fail "create --thin: last line is not an id: '${thin:-}'"
[ "${thick:-}" != "${thin:-}" ] || fail "create: two blobs got the same id"

# Data round trips: a file that ends in the middle of an io unit and needs
# more clusters than the thick blob has (so write grows it).
head -c 300001 /dev/urandom >"$tmp/data"
ok write-thick write "$thick" "$tmp/data"
ok read-thick read "$thick" "$tmp/back" --length 300001
cmp -s "$tmp/data" "$tmp/back" || fail "read-thick: data differs"
ok read-thick-all read "$thick" "$tmp/whole"
[ "$(stat -c %s "$tmp/whole")" -eq $((5 * 65536)) ] || fail "read: whole blob is $(stat -c %s "$tmp/whole") bytes, expected 327680 (grown to 5 clusters)"
cmp -s -n 300001 "$tmp/data" "$tmp/whole" || fail "read: whole blob does not start with the data"
[ "$(tail -c +300002 "$tmp/whole" | tr -d '\0' | wc -c)" -eq 0 ] || fail "read: bytes after the data are not zero"
ok write-thin write "$thin" "$tmp/data"
ok read-thin read "$thin" "$tmp/back2" --length 300001
cmp -s "$tmp/data" "$tmp/back2" || fail "read-thin: data differs"

ok xattr-set xattr "$thick" color blue
ok xattr-get xattr "$thick" color
[ "$(cat "$tmp/out")" = blue ] || fail "xattr get printed '$(cat "$tmp/out")'"

ok list list
grep -q "blob $thick: 5 clusters (327680 bytes), 5 allocated, thin no" "$tmp/out" || fail "list: thick blob line wrong: $(cat "$tmp/out")"
grep -q "blob $thin: 16 clusters (1048576 bytes), 5 allocated, thin yes" "$tmp/out" || fail "list: thin blob line wrong: $(cat "$tmp/out")"
grep -q "xattr color=blue" "$tmp/out" || fail "list: xattr missing"

ok resize resize "$thin" 2M
ok list2 list
grep -q "blob $thin: 32 clusters" "$tmp/out" || fail "resize: list shows $(grep "$thin" "$tmp/out")"

ok snapshot snapshot "$thick" && snap=$(tail -n 1 "$tmp/out")
[[ ${snap:-} =~ ^0x[0-9a-f]+$ ]] || fail "snapshot: last line is not an id: '${snap:-}'"
ok clone clone "${snap:-0x1}" && clone=$(tail -n 1 "$tmp/out")
[[ ${clone:-} =~ ^0x[0-9a-f]+$ ]] || fail "clone: last line is not an id: '${clone:-}'"
ok read-clone read "${clone:-0x1}" "$tmp/back3" --length 300001
cmp -s "$tmp/data" "$tmp/back3" || fail "read-clone: the clone does not show the snapshot's data"
ok list3 list
grep -q "blob ${clone:-none}: .*parent ${snap:-none}" "$tmp/out" || fail "list: clone's parent not shown"

ok delete delete "${clone:-0x1}"
ok list4 list
grep -q "blob ${clone:-none}:" "$tmp/out" && fail "delete: the clone is still listed"

ok dump dump
grep -q "^superblock primary: page 0" "$tmp/out" || fail "dump: no primary superblock"
grep -q "^superblock backup" "$tmp/out" || fail "dump: no backup superblock"
grep -q "^bitmaps (current: checksums match)" "$tmp/out" || fail "dump: bitmaps summary"
grep -q "XATTR \"color\"" "$tmp/out" || fail "dump: the xattr descriptor is not decoded"

ok fsck-clean fsck
grep -q "0 errors" "$tmp/out" || fail "fsck on a clean store: $(cat "$tmp/out")"

# Errors: bad arguments exit 2; a blob that does not exist exits 1.
blob resize "$thin"
[ $rc -eq 2 ] || fail "resize without a size exited $rc, expected 2"
blob frobnicate
[ $rc -eq 2 ] || fail "unknown command exited $rc, expected 2"
blob read 0x100000077 "$tmp/none"
[ $rc -eq 1 ] || fail "reading a missing blob exited $rc, expected 1"
grep -q "cannot open blob 0x100000077" "$tmp/err" || fail "missing blob: message: $(cat "$tmp/err")"

# Corrupt the thick blob's newest root page where dump says it is.
ok dump2 dump
# "page N (offset 0x...) root slot S half H: root blob ID slot S half H generation G ..."
off=$(awk -v id="$thick" '$0 ~ ("root blob " id " ") {
	for (i = 1; i <= NF; i++) if ($i == "generation") g = $(i + 1) + 0
	o = $4; sub(/\)$/, "", o)
	if (g > best) { best = g; off = o }
} END { print off }' "$tmp/out")
if ! [[ $off =~ ^0x[0-9a-f]+$ ]]; then
	fail "dump: no root page for $thick (got '$off')"
else
	# Overwrite one byte inside the payload (offset 100 of the page).
	printf '\x5a' | dd of="$img" bs=1 seek=$((off + 100)) conv=notrunc status=none
	blob fsck
	[ $rc -eq 1 ] || fail "fsck on a damaged store exited $rc, expected 1"
	grep -q "ERROR: .*blob $thick" "$tmp/out" || fail "fsck does not name blob $thick: $(cat "$tmp/out")"
	grep -q "checksum mismatch" "$tmp/out" || fail "fsck does not say checksum: $(cat "$tmp/out")"
	# The repair does not change blobs: still damaged afterwards.
	blob fsck --repair
	[ $rc -eq 1 ] || fail "fsck --repair on a damaged blob exited $rc, expected 1"
fi

# No store at all: fsck exits 2.
truncate -s 0 "$img"
truncate -s 64M "$img"
blob fsck
[ $rc -eq 2 ] || fail "fsck without a store exited $rc, expected 2"

if [ $failures -ne 0 ]; then
	echo "ustor_blob.sh: $failures failure(s)"
	exit 1
fi
echo "ustor_blob.sh: all passed"
exit 0
