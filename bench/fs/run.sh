#!/usr/bin/env bash
# bench/fs/run.sh: blobfs through FUSE (ustor-mount) beside the kernel's
# ext4, same fio jobs and the same metadata loop on both. See README.md.
#
#   bench/fs/run.sh [BUILDDIR]          (default build; needs root and fio)
#   RUNTIME=2 N=10000 SIZE=256M bench/fs/run.sh      (a short run)
#
# Environment:
#   RUNTIME  seconds per fio job and round (default 10)
#   SIZE     size of the fio data file (default 1G)
#   N        files of the metadata phases (default 100000)
#   REPEAT   rounds of every fio job and of the metadata phases, each round
#            on ustor then ext4 (the metadata in a fresh directory); the
#            table takes, per job or phase, the round whose ustor/ext4
#            ratio is the median (default 3)
#   IOENGINE fio engine (default libaio; io_uring works too)
#   PROFILE  1: perf record ustor-mount during its jobs, print the top symbols
#   MOUNT_ARGS extra ustor-mount arguments (e.g. "-o writeback_cache")
#   WORK_CPUS  CPUs (taskset list) for fio and the metadata loop on both
#            file systems; default every CPU but 0, where ustor-mount's
#            reactor polls ("all" or a machine with one CPU: no pinning)
#
# Everything lives in one directory under /dev/shm: ustor's image file (a
# file bdev on tmpfs) and ext4's image file behind a loop device, so neither
# side waits for a disk and the figures are the file systems' own costs.
# The mounts, the loop device, ustor-mount and the files are removed on any
# exit (trap), also when a step fails or the run is interrupted.
#
# A benchmark, not a test: prints the table and exits 0; 1 when a step
# itself fails (mount, mkfs, fio).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILDDIR=${1:-${USTOR_BUILDDIR:-build}}
RUNTIME=${RUNTIME:-10}
SIZE=${SIZE:-1G}
N=${N:-100000}
REPEAT=${REPEAT:-3}
IOENGINE=${IOENGINE:-libaio}
PROFILE=${PROFILE:-0}
MOUNT_ARGS=${MOUNT_ARGS:-}
NCPU=$(nproc)
if [ -z "${WORK_CPUS:-}" ]; then
	if [ "$NCPU" -gt 1 ]; then WORK_CPUS=1-$((NCPU - 1)); else WORK_CPUS=all; fi
fi
MOUNT_BIN=$BUILDDIR/bin/ustor-mount
META_BIN=$BUILDDIR/bench/fs

die() { echo "bench/fs: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (loop device, mount)"
if [ ! -x "$MOUNT_BIN" ] || [ ! -x "$META_BIN" ]; then
	die "build first: make BUILDDIR=$BUILDDIR apps benches"
fi
for t in fio losetup mkfs.ext4 fusermount3 python3 taskset; do
	command -v $t >/dev/null || die "$t is not installed"
done
size_bytes=$(numfmt --from=iec "$SIZE") || die "bad SIZE '$SIZE'"
case "$REPEAT" in '' | *[!0-9]* | 0) die "bad REPEAT '$REPEAT'" ;; esac
# The reactor's core is chosen here (-m 0x1, below) with WORK_CPUS kept off
# it; a core mask in MOUNT_ARGS would move the reactor onto the workload's.
for a in $MOUNT_ARGS; do
	case "$a" in -m | -m* | --cpumask | --cpumask=*)
		die "MOUNT_ARGS may not set the core mask ('$a'): the reactor is on CPU 0, WORK_CPUS apart" ;;
	esac
done
# The workload never shares a CPU with the reactor, which polls its core
# without pause: the scheduler would otherwise sometimes put fio or the
# metadata loop there, and every FUSE round trip would then wait for a
# context switch. Both file systems' workloads run on the same CPUs.
PIN=()
if [ "$WORK_CPUS" != all ]; then
	PIN=(taskset -c "$WORK_CPUS")
	"${PIN[@]}" true || die "bad WORK_CPUS '$WORK_CPUS'"
fi
# Both images are sparse files of the same size: room for the data file and
# its metadata, and for N inodes on ustor, whose blobstore formats one inode
# (blob) per 4 clusters of 64 KiB (ust_bs_opts.max_blobs default).
img_bytes=$((size_bytes * 2 + (1 << 30)))
meta_bytes=$(((N + 1024) * 4 * 65536))
[ "$meta_bytes" -gt "$img_bytes" ] && img_bytes=$meta_bytes

work=$(mktemp -d /dev/shm/ustor_benchfs.XXXXXX) || die "mktemp failed"
loopdev=
mount_pid=
# shellcheck disable=SC2317  # runs from the trap
cleanup() {
	if mountpoint -q "$work/ext4" 2>/dev/null; then
		umount "$work/ext4" || umount -l "$work/ext4"
	fi
	[ -n "$loopdev" ] && losetup -d "$loopdev"
	if [ -n "$mount_pid" ] && kill -0 "$mount_pid" 2>/dev/null; then
		fusermount3 -u "$work/ustor" 2>/dev/null || fusermount3 -u -z "$work/ustor"
		for _ in $(seq 100); do kill -0 "$mount_pid" 2>/dev/null || break; sleep 0.1; done
		kill "$mount_pid" 2>/dev/null
		wait "$mount_pid" 2>/dev/null
	fi
	mountpoint -q "$work/ustor" 2>/dev/null && fusermount3 -u -z "$work/ustor"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir "$work/ustor" "$work/ext4" "$work/res"

# ---- the two file systems ----------------------------------------------------------

# ustor-mount in the foreground of a background job, so its pid is ours to
# profile and to wait for; the mount point appearing means it is serving.
# --prealloc-md writes the metadata region at format, as ext4's mkfs below
# writes its inode tables (lazy_itable_init=0): neither side's timed phases
# then allocate image pages for metadata.
start_ustor() {
	# shellcheck disable=SC2086
	"$MOUNT_BIN" -f -m 0x1 --no-huge --format --prealloc-md --size "$img_bytes" --image "$work/ustor.img" \
		-r "$work/rpc.sock" $MOUNT_ARGS "$work/ustor" >"$work/ustor-mount.log" 2>&1 &
	mount_pid=$!
	for _ in $(seq 600); do
		mountpoint -q "$work/ustor" && return 0
		kill -0 "$mount_pid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$work/ustor-mount.log" >&2
	die "ustor-mount did not mount"
}

# ext4 without lazy init, so no background zeroing runs during the jobs.
start_ext4() {
	truncate -s "$img_bytes" "$work/ext4.img" || die "cannot create the ext4 image"
	loopdev=$(losetup --find --show "$work/ext4.img") || die "losetup failed"
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$loopdev" ||
		die "mkfs.ext4 failed"
	mount -t ext4 "$loopdev" "$work/ext4" || die "mount ext4 failed"
}

# ---- the jobs --------------------------------------------------------------------------

# name : fio arguments. O_DIRECT on both sides: the page cache would
# otherwise answer the reads of both file systems alike, and buffered writes
# would measure the kernel's writeback instead of the file system.
JOBS=(
	"seqwrite:--rw=write --bs=1M --iodepth=4 --numjobs=1"
	"seqread:--rw=read --bs=1M --iodepth=4 --numjobs=1"
	"randread-qd1:--rw=randread --bs=4k --iodepth=1 --numjobs=2"
	"randread-qd32:--rw=randread --bs=4k --iodepth=32 --numjobs=2"
	"randwrite-qd1:--rw=randwrite --bs=4k --iodepth=1 --numjobs=2"
	"randwrite-qd32:--rw=randwrite --bs=4k --iodepth=32 --numjobs=2"
)

# profile_on TAG: start perf on ustor-mount (PROFILE=1 only).
perf_pid=
profile_on() {
	[ "$PROFILE" = 1 ] && [ "$2" = ustor ] || return 0
	perf record -q -g -e cpu-clock -p "$mount_pid" -o "$work/res/$1.perf" >/dev/null 2>&1 &
	perf_pid=$!
	sleep 0.5
}
profile_off() {
	[ -n "$perf_pid" ] || return 0
	kill -INT "$perf_pid" 2>/dev/null
	wait "$perf_pid" 2>/dev/null
	perf_pid=
}

# requests FS: the FUSE requests the ustor mount has taken so far (every
# kind, also those answered without blobfs); nothing for ext4.
requests() {
	[ "$1" = ustor ] || return 0
	python3 scripts/rpc.py -s "$work/rpc.sock" blobfs_get_mounts |
		python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["stats"]["requests"])' ||
		die "cannot read the mount's request count"
}

# quiesce FS: what the step left dirty written back now, so that no
# writeback of one file system runs during the other's next step.
quiesce() {
	sync -f "$work/$1" || die "sync of $1 failed"
}

# run_job FS JOB R: round R of one fio job on FS's data file (the first
# job lays it out), results in res/FS.NAME.R.json and, for ustor, the
# requests it took in res/FS.NAME.R.req.
run_job() {
	local fs=$1 name=${2%%:*} args=${2#*:} r=$3 r0
	r0=$(requests "$fs")
	profile_on "$name.$r" "$fs"
	# shellcheck disable=SC2086
	"${PIN[@]}" fio --name="$name" --filename="$work/$fs/fio.dat" --size="$SIZE" --ioengine="$IOENGINE" \
		--direct=1 --time_based --runtime="$RUNTIME" --group_reporting \
		--output-format=json --output="$work/res/$fs.$name.$r.json" $args >/dev/null ||
		{ profile_off; die "fio $name on $fs failed"; }
	profile_off
	[ "$fs" = ustor ] && echo $(($(requests "$fs") - r0)) >"$work/res/$fs.$name.$r.req"
	quiesce "$fs"
	python3 - "$work/res/$fs.$name.$r.json" "$fs" "$r" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
print("    round %s: %-5s %-16s %10.0f IOPS %8.1f MiB/s" % (sys.argv[3], sys.argv[2], j["jobname"],
      j["read"]["iops"] + j["write"]["iops"], (j["read"]["bw_bytes"] + j["write"]["bw_bytes"]) / 2**20))
PY
}

# meta_round FS DIR OUT: create, miss, stat, unlink of N files in the fresh
# directory DIR, a line per phase into OUT. For ustor the phases go one at
# a time (fs --step), and each line gets the requests that phase took.
meta_round() {
	local fs=$1 dir=$2 out=$3 r0 r1 line from to pid
	mkdir "$dir" || die "mkdir $dir failed"
	if [ "$fs" = ustor ]; then
		r0=$(requests "$fs")
		coproc META { "${PIN[@]}" "$META_BIN" --step "$dir" "$N"; }
		# bash drops META once the program exits: keep the ends and the pid
		# shellcheck disable=SC2153  # META_PID is set by coproc
		pid=$META_PID
		exec {from}<&"${META[0]}" {to}>&"${META[1]}"
		while IFS= read -r line <&"$from"; do
			r1=$(requests "$fs")
			echo "$line $((r1 - r0))"
			r0=$r1
			# it waits between phases, not after the last
			[ "${line%% *}" = unlink ] || echo >&"$to"
		done >"$out"
		exec {from}<&- {to}>&-
		wait "$pid" || { profile_off; die "metadata phases on $fs failed"; }
	else
		"${PIN[@]}" "$META_BIN" "$dir" "$N" >"$out" ||
			{ profile_off; die "metadata phases on $fs failed"; }
	fi
	rmdir "$dir"
}

echo "bench/fs: RUNTIME=${RUNTIME}s SIZE=$SIZE N=$N REPEAT=$REPEAT ioengine=$IOENGINE direct=1, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  reactor on CPU 0, workload on CPUs $WORK_CPUS of $NCPU"
# Every synchronous FUSE request wakes its caller on the other vCPU; where
# the guest's idle vCPUs do not poll, that wakeup is an exit to the host and
# half of a round trip (scripts/setup.sh config turns polling on).
halt_poll=/sys/module/haltpoll/parameters/guest_halt_poll_ns
if [ "$(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null)" = haltpoll ]; then
	echo "  guest halt polling: $(cat $halt_poll) ns$( [ "$(cat $halt_poll)" = 0 ] &&
		echo " (off: each FUSE round trip pays a vCPU wakeup from halt; scripts/setup.sh config sets it)")"
fi
# Both file systems are mounted for the whole run and take turns, job by
# job and round by round, so that both see the same periods of the machine
# (on a VM the round trip alone moved by a third between minutes: both
# sides must sample the same minutes for their ratio to mean anything).
# The idle one takes no CPU: ustor-mount's adaptive reactor sleeps once no
# request has come for a while, and ext4 has nothing to write back once
# quiesced.
start_ustor
start_ext4
echo "  ustor on $work/ustor, ext4 on $work/ext4 ($loopdev): each job and round on both in turn"
for job in "${JOBS[@]}"; do
	for r in $(seq "$REPEAT"); do
		run_job ustor "$job" "$r"
		run_job ext4 "$job" "$r"
	done
done
rm -f "$work/ustor/fio.dat" "$work/ext4/fio.dat"
quiesce ustor
quiesce ext4
for r in $(seq "$REPEAT"); do
	for fs in ustor ext4; do
		profile_on "meta.$r" "$fs"
		meta_round "$fs" "$work/$fs/meta$r" "$work/res/$fs.meta.$r.txt"
		profile_off
		quiesce "$fs"
		sed "s/^/    round $r: $fs /" "$work/res/$fs.meta.$r.txt"
	done
done

# ---- the table -------------------------------------------------------------------------

python3 - "$work/res" "$REPEAT" "${JOBS[@]%%:*}" <<'EOF'
import json, os, sys

res, rounds, jobs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
GOALS = {"seqwrite": 0.8, "seqread": 0.8, "create": 0.5, "stat": 0.5, "unlink": 0.5}

def fio(fs, job, r):
    """(rate, unit, req/op) of round r of a job; req/op only for ustor."""
    j = json.load(open(os.path.join(res, "%s.%s.%d.json" % (fs, job, r))))["jobs"][0]
    ios = j["read"]["total_ios"] + j["write"]["total_ios"]
    req = None
    if fs == "ustor":
        with open(os.path.join(res, "ustor.%s.%d.req" % (job, r))) as f:
            req = int(f.read()) / ios if ios > 0 else 0.0
    if job.startswith("seq"):
        return (j["read"]["bw_bytes"] + j["write"]["bw_bytes"]) / 2**20, "MiB/s", req
    return j["read"]["iops"] + j["write"]["iops"], "IOPS", req

def meta(fs, r):
    """{phase: (rate, unit, req/op)} of metadata round r; req/op only for ustor."""
    out = {}
    for line in open(os.path.join(res, "%s.meta.%d.txt" % (fs, r))):
        phase, n, _secs, rate = line.split()[:4]
        req = line.split()[4:]
        out[phase] = (float(rate), "ops/s", int(req[0]) / int(n) if req else None)
    return out

def median_round(pairs):
    """The (ustor, ext4) pair of the round whose ratio is the median (the lower middle)."""
    pairs = sorted(pairs, key=lambda p: p[0][0] / p[1][0] if p[1][0] > 0 else 0.0)
    return pairs[(len(pairs) - 1) // 2]

rows = []
for job in jobs:
    rows.append((job,) + median_round([(fio("ustor", job, r), fio("ext4", job, r))
                                       for r in range(1, rounds + 1)]))
mu = [meta("ustor", r) for r in range(1, rounds + 1)]
me = [meta("ext4", r) for r in range(1, rounds + 1)]
for p in ("create", "miss", "stat", "unlink"):
    rows.append((p,) + median_round([(mu[i][p], me[i][p]) for i in range(rounds)]))
# req/op: FUSE requests ustor-mount took per I/O or per call (a fio job's
# count includes laying out its file); each synchronous one is a round trip.
print("\n%-16s %12s %12s %-6s %7s %7s  %s" % ("job", "ustor", "ext4", "unit", "ratio", "req/op",
                                            "goal"))
row = {}
for name, u, e in rows:
    ratio = u[0] / e[0] if e[0] > 0 else 0.0
    goal = GOALS.get(name)
    verdict = "-" if goal is None else ">=%.2f %s" % (goal, "met" if ratio >= goal else "MISSED")
    print("%-16s %12.0f %12.0f %-6s %7.2f %7.2f  %s" % (name, u[0], e[0], u[1], ratio, u[2], verdict))
    row[name] = (u[0], e[0])
# A create is two round trips (LOOKUP, CREATE), each at least a miss's cost.
print("\nustor: one FUSE round trip (miss) %.1f us; create %.1f us = %.1f round trips;"
      " ext4 create %.1f us (all from each phase's median round)"
      % (1e6 / row["miss"][0], 1e6 / row["create"][0], row["miss"][0] / row["create"][0],
         1e6 / row["create"][1]))
EOF

if [ "$PROFILE" = 1 ]; then
	for f in "$work"/res/*.perf; do
		echo
		echo "== ustor-mount profile during $(basename "$f" .perf) (cpu-clock, self time) =="
		perf report -i "$f" --stdio --no-children --percent-limit 2 --sort comm,dso,symbol \
			-g none 2>/dev/null | grep -v '^#' | grep -v '^$' |
			sed 's/[[:space:]]*-[[:space:]]*-[[:space:]]*$//' | head -20
	done
fi
exit 0
