#!/bin/bash
# perf_verify.sh: ustor-perf -w verify (write a pattern, read it back, check
# every block) through every bdev kind that can hold data: malloc, aio and
# uring files, split, passthru, delay, error, raid0 and raid1 over malloc;
# randread on null (null cannot hold data); then the verifier's own failure
# path: corrupted reads through an error bdev must fail the run naming the
# block; and ustor-perf's clear errors for a missing bdev, bad arguments and a
# failing config.
#
# Exit 0 when all pass, 1 on any failure. Needs no hugepages (--no-huge).
set -u
cd "$(dirname "$0")/../.."
BUILDDIR=${USTOR_BUILDDIR:-build}
PERF=$BUILDDIR/bin/ustor-perf
[ -x "$PERF" ] || { echo "SKIP: $PERF not built"; exit 77; }

tmp=$(mktemp -d /tmp/perf_verify.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

failures=0
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

# cfg FILE ENTRY... : a bdev-subsystem config with the given {"method","params"} entries.
cfg() {
	local file=$1; shift
	local IFS=,
	echo "{\"subsystems\":[{\"subsystem\":\"bdev\",\"config\":[$*]}]}" >"$file"
}

MALLOC0='{"method":"bdev_malloc_create","params":{"name":"Malloc0","num_blocks":32768,"block_size":512}}'
MALLOC1='{"method":"bdev_malloc_create","params":{"name":"Malloc1","num_blocks":32768,"block_size":512}}'
MALLOC2='{"method":"bdev_malloc_create","params":{"name":"Malloc2","num_blocks":32768,"block_size":512}}'

# json_get FILE KEY.SUBKEY : a number from the -j output.
json_get() {
	python3 -c 'import json,sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[k]
print(v)' "$1" "$2"
}

# run_ok NAME CONFIG BDEV ARGS... : the run must succeed, do I/O and report no error.
run_ok() {
	local name=$1 config=$2 bdev=$3; shift 3
	local out=$tmp/$name.out res=$tmp/$name.json start=$SECONDS
	timeout 120 "$PERF" --no-huge -c "$config" -b "$bdev" -t 2 -j "$res" "$@" >"$out" 2>&1
	local rc=$?
	if [ $rc -ne 0 ]; then
		fail "$name: ustor-perf exited $rc"
		grep -v '^EAL' "$out" | tail -20
		return
	fi
	local ios errors
	ios=$(json_get "$res" total.ios)
	errors=$(json_get "$res" errors)
	if [ "$ios" -le 0 ] || [ "$errors" -ne 0 ]; then
		fail "$name: $ios I/Os, $errors errors"
		return
	fi
	if [[ " $* " == *" verify "* ]]; then
		local checked
		checked=$(json_get "$res" verified_blocks)
		if [ "$checked" -le 0 ]; then
			fail "$name: verify checked no block"
			return
		fi
		echo "ok    $name: $ios I/Os, $checked blocks verified ($((SECONDS - start)) s)"
	else
		echo "ok    $name: $ios I/Os, $(json_get "$res" total.iops) IOPS ($((SECONDS - start)) s)"
	fi
}

# A file bdev module whose kernel interface is unavailable here is skipped, not failed.
run_file_case() {
	local name=$1 method=$2
	local file=$tmp/$name.img out=$tmp/$name.probe
	truncate -s 64M "$file"
	cfg "$tmp/$name.cfg" "{\"method\":\"$method\",\"params\":{\"name\":\"File0\",\"filename\":\"$file\",\"block_size\":512}}"
	if ! timeout 60 "$PERF" --no-huge -c "$tmp/$name.cfg" -b File0 -t 0.2 -q 1 -w randread >"$out" 2>&1; then
		if grep -qiE 'not supported|not permitted|ENOSYS|Function not implemented|Operation not permitted' "$out"; then
			echo "skip  $name: $method is unavailable on this machine"
			return
		fi
	fi
	run_ok "$name" "$tmp/$name.cfg" File0 -w verify -q 32 -o 8192
}

# ---- verify through every data-holding bdev ------------------------------------

cfg "$tmp/malloc.cfg" "$MALLOC0"
run_ok malloc "$tmp/malloc.cfg" Malloc0 -w verify -q 32 -o 8192
cfg "$tmp/malloc4k.cfg" '{"method":"bdev_malloc_create","params":{"name":"Malloc0","num_blocks":8192,"block_size":4096}}'
if [ "$(nproc)" -ge 2 ]; then
	run_ok malloc_2cores "$tmp/malloc4k.cfg" Malloc0 -w verify -q 16 -o 16384 -m 0x3
else
	run_ok malloc_4k "$tmp/malloc4k.cfg" Malloc0 -w verify -q 16 -o 16384
fi

cfg "$tmp/null.cfg" '{"method":"bdev_null_create","params":{"name":"Null0","num_blocks":262144,"block_size":4096}}'
run_ok null_randread "$tmp/null.cfg" Null0 -w randread -q 64 -o 4096

run_file_case aio bdev_aio_create
run_file_case uring bdev_uring_create

cfg "$tmp/split.cfg" "$MALLOC0" '{"method":"bdev_split_create","params":{"base_bdev":"Malloc0","split_count":4}}'
run_ok split "$tmp/split.cfg" Malloc0p1 -w verify -q 16 -o 4096

cfg "$tmp/passthru.cfg" "$MALLOC0" '{"method":"bdev_passthru_create","params":{"base_bdev_name":"Malloc0","name":"PT0"}}'
run_ok passthru "$tmp/passthru.cfg" PT0 -w verify -q 32 -o 8192

cfg "$tmp/delay.cfg" "$MALLOC0" '{"method":"bdev_delay_create","params":{"base_bdev_name":"Malloc0","name":"Dly0","avg_read_latency":50,"p99_read_latency":100,"avg_write_latency":50,"p99_write_latency":100}}'
run_ok delay "$tmp/delay.cfg" Dly0 -w verify -q 32 -o 4096

cfg "$tmp/error.cfg" "$MALLOC0" '{"method":"bdev_error_create","params":{"base_name":"Malloc0"}}'
run_ok error_clean "$tmp/error.cfg" EE_Malloc0 -w verify -q 32 -o 4096

# raid0 with 8 KiB strips and 16 KiB I/O: every I/O spans members.
cfg "$tmp/raid0.cfg" "$MALLOC0" "$MALLOC1" "$MALLOC2" '{"method":"bdev_raid_create","params":{"name":"Raid0","raid_level":"raid0","strip_size_kb":8,"base_bdevs":["Malloc0","Malloc1","Malloc2"]}}'
run_ok raid0 "$tmp/raid0.cfg" Raid0 -w verify -q 32 -o 16384
cfg "$tmp/raid1.cfg" "$MALLOC0" "$MALLOC1" '{"method":"bdev_raid_create","params":{"name":"Raid1","raid_level":"1","base_bdevs":"Malloc0 Malloc1"}}'
run_ok raid1 "$tmp/raid1.cfg" Raid1 -w verify -q 32 -o 8192
run_ok raid1_randrw "$tmp/raid1.cfg" Raid1 -w randrw -M 70 -q 32 -o 4096

# ---- the verifier must be able to fail -------------------------------------------

# Error injection is a run-time RPC: start with -z, inject, then perform_tests.
# run_injected NAME CONFIG BDEV INJECTION ARGS... : sets $inj_rc; output in $tmp/NAME.out,
# the perform_tests answer in $tmp/NAME.rpc.
run_injected() {
	local name=$1 config=$2 bdev=$3 inject=$4; shift 4
	local sock=$tmp/$name.sock out=$tmp/$name.out
	timeout 120 "$PERF" --no-huge -c "$config" -b "$bdev" -t 2 -z -r "$sock" "$@" >"$out" 2>&1 &
	local perf_pid=$!
	pids+=("$perf_pid")
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
	if [ ! -S "$sock" ]; then
		fail "$name: ustor-perf -z did not open $sock"
	else
		python3 scripts/rpc.py -s "$sock" call bdev_error_inject_error "$inject" >/dev/null ||
			fail "$name: injecting the error failed"
		python3 scripts/rpc.py -s "$sock" call perform_tests '{}' >"$tmp/$name.rpc" 2>&1
	fi
	wait "$perf_pid"
	inj_rc=$?
}

run_injected corrupt "$tmp/error.cfg" EE_Malloc0 \
	'{"name":"EE_Malloc0","io_type":"read","error_type":"corrupt_data","num":3,"corrupt_offset":777,"corrupt_value":90}' \
	-q 16 -o 4096 -w verify
out=$tmp/corrupt.out
if [ $inj_rc -eq 0 ]; then
	fail "corrupt: verify through corrupted reads exited 0"
elif ! grep -qE 'verify FAILED: bdev EE_Malloc0: block [0-9]+ \(byte offset [0-9]+\): data mismatch at byte [0-9]+: expected 0x[0-9a-f]+, found 0x[0-9a-f]+' "$out"; then
	fail "corrupt: no message naming the bdev, block, expected and found"
	grep -v '^EAL' "$out" | tail -10
elif ! python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r["failed"] and r["miscompares"] == 3 else 1)' "$tmp/corrupt.rpc"; then
	fail "corrupt: perform_tests answer does not report 3 miscompares"
	cat "$tmp/corrupt.rpc"
else
	echo "ok    corrupt: failed as it must: $(grep -m1 'verify FAILED' "$out")"
fi

# Read errors are counted and fail the run too.
run_injected ioerr "$tmp/error.cfg" EE_Malloc0 \
	'{"name":"EE_Malloc0","io_type":"read","error_type":"failure","num":5}' \
	-q 16 -o 4096 -w randread
if [ $inj_rc -eq 0 ]; then
	fail "ioerr: a run with failed reads exited 0"
elif ! grep -qE 'core 0: 5 I/O errors.*read of 8 blocks at block [0-9]+ failed' "$tmp/ioerr.out"; then
	fail "ioerr: no message counting the 5 errors and naming the failed read"
	grep -v '^EAL' "$tmp/ioerr.out" | tail -10
else
	echo "ok    ioerr: $(grep -m1 'I/O errors' "$tmp/ioerr.out")"
fi

# ---- clear errors ------------------------------------------------------------------

expect_fail() {
	local name=$1 want_rc=$2 pattern=$3; shift 3
	local out=$tmp/$name.out
	timeout 60 "$PERF" "$@" >"$out" 2>&1
	local rc=$?
	if [ $rc -ne "$want_rc" ]; then
		fail "$name: exit $rc, expected $want_rc"
		grep -v '^EAL' "$out" | tail -5
	elif ! grep -q -- "$pattern" "$out"; then
		fail "$name: no message matching '$pattern'"
		grep -v '^EAL' "$out" | tail -5
	else
		echo "ok    $name: $(grep -m1 -- "$pattern" "$out")"
	fi
}

expect_fail missing_bdev 1 "bdev 'Nope' not found" --no-huge -c "$tmp/malloc.cfg" -b Nope -t 1
expect_fail bad_workload 2 "invalid -w 'scribble'" --no-huge -c "$tmp/malloc.cfg" -b Malloc0 -w scribble
expect_fail bad_depth 2 "invalid -q '0'" --no-huge -c "$tmp/malloc.cfg" -b Malloc0 -q 0
expect_fail bad_size 1 "not a multiple of the block size" --no-huge -c "$tmp/malloc4k.cfg" -b Malloc0 -o 1000 -t 1
expect_fail no_bdev_arg 2 "-b BDEV is required" --no-huge -c "$tmp/malloc.cfg"
cfg "$tmp/badcfg.cfg" '{"method":"bdev_malloc_create","params":{"name":"M","num_blocks":0,"block_size":512}}'
expect_fail bad_config 1 "start-up failed" --no-huge -c "$tmp/badcfg.cfg" -b M -t 1

if [ $failures -ne 0 ]; then
	echo "$failures failure(s)"
	exit 1
fi
echo "all passed"
