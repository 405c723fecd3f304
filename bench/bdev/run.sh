#!/bin/bash
# bench/bdev/run.sh: the bdev layer's headline benchmark with ustor-perf.
#
#   bench/bdev/run.sh [BUILDDIR]     (default build; SECONDS_PER_RUN=10)
#
# RUNS=N repeats every case N times (default 1) and prints the best and the
# median run (by IOPS): on a shared machine one run says little. CASES=
# "null malloc" (default both) picks the bdevs; PROFILE=0 skips the profile.
#
# One core, 4 KiB random reads, 10 s per case:
#   null bdev   queue depth 128   (the cost of the bdev layer itself)
#   null bdev   queue depth 1     (latency of one I/O through the stack)
#   malloc 1 GiB queue depth 128  (plus a 4 KiB memcpy per I/O)
# each with --no-huge and, when hugepages can be reserved (root), with
# hugepages. Prints IOPS, cycles (TSC ticks) of the job thread per I/O and
# ns of core time per I/O for each (both wall-clock based), the CPU time
# the OS gave the job thread per I/O and the IOPS that makes per CPU-second
# (what a dedicated core would do: on a shared machine the wall-clock
# figures mostly measure the other load), then a CPU profile (perf record
# -e cpu-clock -g) of the null/QD128 case with its top entries.
#
# A benchmark, not a test: it prints figures and exits 0 (1 only when a run
# itself fails). Hugepages it reserved, and a hugetlbfs it mounted, are
# released again on exit.
set -u
cd "$(dirname "$0")/../.."
BUILDDIR=${1:-${USTOR_BUILDDIR:-build}}
PERF=$BUILDDIR/bin/ustor-perf
SECS=${SECONDS_PER_RUN:-10}
RUNS=${RUNS:-1}
CASES=${CASES:-null malloc}
PROFILE=${PROFILE:-1}
[ -x "$PERF" ] || { echo "$PERF not built (make BUILDDIR=$BUILDDIR apps)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/bench_bdev.XXXXXX)
old_nr_huge=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
mounted_huge=n
restore() {
	if [ "$mounted_huge" = y ]; then
		umount /dev/hugepages 2>/dev/null
	fi
	if [ "$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)" != "$old_nr_huge" ]; then
		echo "$old_nr_huge" >/proc/sys/vm/nr_hugepages 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap restore EXIT

cat >"$tmp/null.json" <<'EOF'
{"subsystems":[{"subsystem":"bdev","config":[{"method":"bdev_null_create","params":{"name":"Null0","num_blocks":262144,"block_size":4096}}]}]}
EOF
cat >"$tmp/malloc.json" <<'EOF'
{"subsystems":[{"subsystem":"bdev","config":[{"method":"bdev_malloc_create","params":{"name":"Malloc0","num_blocks":262144,"block_size":4096}}]}]}
EOF

printf '%-40s %10s %9s %9s %9s %11s %9s %9s\n' "case" "IOPS" "cyc/IO" "ns/IO" "cpu ns/IO" "IOPS/cpu-s" \
	"avg us" "p99 us"
status=0

# one LABEL CONFIG BDEV QD ENVARGS...: RUNS runs, then the best and the median.
one() {
	local label=$1 config=$2 bdev=$3 qd=$4; shift 4
	local r
	rm -f "$tmp"/res.*.json
	for r in $(seq 1 "$RUNS"); do
		if ! "$PERF" "$@" -m 0x1 -c "$config" -b "$bdev" -q "$qd" -o 4096 -w randread \
			-t "$SECS" -j "$tmp/res.$r.json" >"$tmp/out.txt" 2>&1; then
			echo "$label: ustor-perf failed:" >&2
			grep -v '^EAL' "$tmp/out.txt" | tail -5 >&2
			status=1
			return
		fi
	done
	python3 - "$label" "$tmp"/res.*.json <<'EOF'
import json, sys
label, files = sys.argv[1], sys.argv[2:]
runs = sorted((json.load(open(f))["total"] for f in files), key=lambda t: t["iops"])
def row(name, t):
    print("%-40s %10.0f %9.1f %9.1f %9.1f %11.0f %9.2f %9.2f" % (name, t["iops"],
          t["cycles_per_io"], t["ns_per_io"], t["cpu_ns_per_io"], t["iops_per_cpu_second"],
          t["lat_avg_us"], t["lat_p99_us"]))
if len(runs) == 1:
    row(label, runs[0])
else:
    row(label + " best", runs[-1])
    row(label + " median", runs[len(runs) // 2])
EOF
}

cases() {
	local mode=$1; shift
	case " $CASES " in *" null "*)
		one "null   QD128 ($mode)" "$tmp/null.json" Null0 128 "$@"
		one "null   QD1   ($mode)" "$tmp/null.json" Null0 1 "$@" ;;
	esac
	case " $CASES " in *" malloc "*)
		one "malloc QD128 1 GiB ($mode)" "$tmp/malloc.json" Malloc0 128 "$@" ;;
	esac
}

cases no-huge --no-huge --mem-size 1400

# Hugepages: 2 GiB of 2 MiB pages covers the 1 GiB malloc disk and the pools.
want=1024
if [ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/nr_hugepages ]; then
	if ! mount | grep -q hugetlbfs; then
		mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages && mounted_huge=y
	fi
	[ "$old_nr_huge" -lt $want ] && echo $want >/proc/sys/vm/nr_hugepages
fi
if [ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -ge 700 ] && mount | grep -q hugetlbfs; then
	cases hugepages --mem-size 1400
else
	echo "(no hugepages could be reserved: hugepage cases skipped)"
fi

# Where the time goes: a profile of the null QD128 case.
if [ "$PROFILE" != 0 ] && command -v perf >/dev/null 2>&1; then
	echo
	echo "== perf profile: null bdev, 4 KiB randread, QD128, one core (cpu-clock) =="
	if perf record -q -e cpu-clock -g -o "$tmp/perf.data" -- "$PERF" --no-huge -m 0x1 \
		-c "$tmp/null.json" -b Null0 -q 128 -o 4096 -w randread -t 5 >/dev/null 2>&1; then
		perf report -i "$tmp/perf.data" --stdio --no-children --percent-limit 1.5 \
			--sort symbol -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -25
	else
		echo "(perf record failed here: $(perf record -q -e cpu-clock -o /dev/null true 2>&1 | head -1))"
	fi
fi
exit $status
