#!/usr/bin/env bash
# bench/nvme/run.sh: ustor's userspace NVMe driver beside the kernel's nvme
# driver with io_uring, on the same emulated NVMe controller in a VM-lab
# guest (tests/vm). Both do 4 KiB random reads at queue depth 32 on one core
# for $SECONDS_ s (default 10):
#   - ustor: `ustor-nvme perf -w randread -q 32 -o 4096 -c 0x1` (device on
#     uio_pci_generic), which reports its CPU time and TSC cycles per I/O;
#   - kernel: fio, ioengine=io_uring, direct=1, iodepth=32, one job, on
#     /dev/nvme0n1 after `setup.sh reset`; CPU per I/O = (usr + sys) / I/Os.
# Under TCG absolute figures mean little (every guest instruction is
# emulated and the emulated device shares the host's cores); the ratio of
# CPU per I/O is the point. A polling driver burns its core whether or not
# I/O is due, so ustor's "total" is its whole core per I/O and "busy" the
# cycles spent in polls that reaped completions (reaping plus resubmitting).
#
#   USTOR_BUILDDIR=build bench/nvme/run.sh [SECONDS]
# Never fails a test run: prints the figures and exits 0 (1 if it could not
# measure, 77 if QEMU cannot run here).
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
SECONDS_=${1:-10}
QD=32
BS=4096

if [ "${2:-}" = --guest ]; then
	BIN=$USTOR_BUILDDIR/bin
	BDF=0000:00:10.0
	out=$USTOR_VM_CTL
	HUGEMEM=128 "$repo/scripts/setup.sh" >/dev/null 2>&1 || { echo "setup.sh failed"; exit 1; }
	timeout $((SECONDS_ + 120)) "$BIN/ustor-nvme" perf -r "trtype:PCIe traddr:$BDF" -w randread \
		-q $QD -o $BS -t "$SECONDS_" -c 0x1 >"$out/ustor.txt" 2>&1 ||
		{ cat "$out/ustor.txt"; echo "ustor-nvme perf failed"; exit 1; }
	cat "$out/ustor.txt"
	"$repo/scripts/setup.sh" reset >/dev/null 2>&1 || { echo "setup.sh reset failed"; exit 1; }
	dev=
	for ((i = 0; i < 100; i++)); do
		for c in /sys/bus/pci/devices/$BDF/nvme/nvme*; do
			[ -b "/dev/${c##*/}n1" ] && dev=/dev/${c##*/}n1
		done
		[ -n "$dev" ] && break
		sleep 0.2
	done
	[ -n "$dev" ] || { echo "no kernel block device after reset"; exit 1; }
	fio --name=randread --filename="$dev" --ioengine=io_uring --direct=1 --rw=randread \
		--bs=$BS --iodepth=$QD --numjobs=1 --time_based --runtime="$SECONDS_" \
		--norandommap --randrepeat=0 --output-format=json >"$out/fio.json" 2>"$out/fio.err" ||
		{ cat "$out/fio.err"; echo "fio failed"; exit 1; }
	echo "fio done on $dev"
	exit 0
fi

. "$repo/tests/vm/lib.sh"
vm_setup
builddir=${USTOR_BUILDDIR:-$repo/build}
export USTOR_BUILDDIR=$builddir
[ -x "$builddir/bin/ustor-nvme" ] || { echo "$builddir/bin/ustor-nvme is not built"; exit 1; }
command -v fio >/dev/null || { echo "fio is not installed (scripts/pkgdep.sh)"; exit 1; }
vm_add_nvme --size 1G --serial ustorbench
# One vCPU: both drivers get the same single core to spend.
VM_CPUS=1
VM_TIMEOUT=$((4 * SECONDS_ + 240))
vm_run bash "$here/run.sh" "$SECONDS_" --guest || { echo "the guest failed (exit $VM_RC)"; exit 1; }

u=$VM_CTL/ustor.txt
f=$VM_CTL/fio.json
read -r u_iops < <(awk '$1 == "Total" { print $2 }' "$u")
# CPU: C s (usr+sys) in W s, X us/IO; cycles/IO T total, B busy (TSC M MHz)
read -r u_cpu u_wall u_usio u_tot u_busy mhz < <(sed -n \
	's/^CPU: \([0-9.]*\) s (usr+sys) in \([0-9.]*\) s, \([0-9.]*\) us\/IO; cycles\/IO \([0-9]*\) total, \([0-9]*\) busy (TSC \([0-9]*\) MHz)$/\1 \2 \3 \4 \5 \6/p' "$u")
[ -n "${u_iops:-}" ] && [ -n "${mhz:-}" ] || { cat "$u"; echo "cannot parse ustor-nvme perf's output"; exit 1; }
read -r f_iops f_ios f_cpu f_usio < <(jq -r '.jobs[0] as $j |
	(($j.usr_cpu + $j.sys_cpu) / 100 * $j.job_runtime / 1000) as $cpu |
	"\($j.read.iops) \($j.read.total_ios) \($cpu) \($cpu * 1e6 / $j.read.total_ios)"' "$f")
awk -v ui="$u_iops" -v uc="$u_cpu" -v uu="$u_usio" -v ut="$u_tot" -v ub="$u_busy" -v mhz="$mhz" \
	-v fi="$f_iops" -v fc="$f_cpu" -v fu="$f_usio" -v s="$SECONDS_" 'BEGIN {
	fcyc = fu * mhz
	printf "4 KiB randread, QD %d, %s s, 1 vCPU (TCG), TSC %d MHz\n", '"$QD"', s, mhz
	printf "%-24s %12s %12s %14s %14s\n", "", "IOPS", "CPU s", "CPU us/IO", "cycles/IO"
	printf "%-24s %12.0f %12.2f %14.2f %14.0f\n", "ustor (polled, total)", ui, uc, uu, ut
	printf "%-24s %12s %12s %14.2f %14.0f\n", "ustor (busy polls only)", "", "", ub / mhz, ub
	printf "%-24s %12.0f %12.2f %14.2f %14.0f\n", "kernel io_uring (fio)", fi, fc, fu, fcyc
	printf "CPU per I/O, kernel / ustor: %.2f (whole polling core), %.2f (busy polls)\n",
		fu / uu, fcyc / ub
}'
exit 0
