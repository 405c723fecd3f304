#!/usr/bin/env bash
# nvme_pcie_test: ustor's userspace NVMe driver on QEMU's emulated NVMe
# controller, and data handed back and forth with the kernel's nvme driver.
#
# Guest 1 (no IOMMU), one controller at 00:10.0 with serial $SERIAL:
#   - scripts/setup.sh (HUGEMEM=128) binds it to uio_pci_generic
#   - `ustor-nvme identify` shows QEMU's model and our serial
#   - `ustor-perf -w verify` passes on Nvme0n1 attached from a JSON config
#     (bdev_nvme_attach_controller), with 16 KiB and with 4 MiB I/Os (the
#     controller has MDTS 0, so 4 MiB is the driver's limit: chained PRP
#     lists)
#   - 1 MiB of random data written by `ustor-nvme write` at LBA $LBA_U reads
#     back identically through the kernel (dd from /dev/nvmeXn1, O_DIRECT)
#     after `setup.sh reset`
#   - 1 MiB written by the kernel (dd, O_DIRECT) at LBA $LBA_K reads back
#     identically through `ustor-nvme read` after binding again
# The host then finds both patterns at their offsets in the backing file.
# Guest 2 (q35 + intel-iommu) on the same backing file:
#   - setup.sh binds the controller to vfio-pci, identify shows the serial,
#     `ustor-nvme read` returns the kernel's pattern through the IOMMU, and
#     `ustor-perf -w verify` passes (it overwrites the data, so it runs last).
# Exits 77 if QEMU cannot run here.
set -u
here=$(cd "$(dirname "$0")" && pwd)
SERIAL=ustorpcie0042
MODEL="QEMU NVMe Ctrl"
LBA_U=4096   # 512-byte blocks: 2 MiB into the namespace
LBA_K=8192   # 4 MiB
NBLK=2048    # 1 MiB
# ustor-perf's bdev layer wants ~50 MiB of pools besides the driver's memory.
HUGEMEM=128

fail() {
	echo "FAIL: $*"
	exit 1
}

# --- guest side --------------------------------------------------------
if [ "${1:-}" = --guest ]; then
	S=$REPO/scripts/setup.sh
	BIN=$USTOR_BUILDDIR/bin
	BDF=0000:00:10.0
	TRID="trtype:PCIe traddr:$BDF"
	ctl=$USTOR_VM_CTL
	drv() {
		local l
		l=$(readlink "/sys/bus/pci/devices/$BDF/driver") || { echo -; return; }
		echo "${l##*/}"
	}
	ns1() { # the kernel's block device of namespace 1, waiting for it
		local i c
		for ((i = 0; i < 100; i++)); do
			for c in /sys/bus/pci/devices/$BDF/nvme/nvme*; do
				[ -e "$c/${c##*/}n1/dev" ] && [ -b "/dev/${c##*/}n1" ] && { echo "/dev/${c##*/}n1"; return 0; }
			done
			sleep 0.2
		done
		return 1
	}
	bind() { # EXPECTED_DRIVER
		local out
		out=$(HUGEMEM=$HUGEMEM "$S" 2>&1) || { echo "$out"; fail "setup.sh failed"; }
		[ "$(drv)" = "$1" ] || { echo "$out"; fail "$BDF is on $(drv), expected $1"; }
		echo "bound $BDF to $1"
	}
	reset() {
		local out
		out=$("$S" reset 2>&1) || { echo "$out"; fail "setup.sh reset failed"; }
		[ "$(drv)" = nvme ] || { echo "$out"; fail "$BDF is on $(drv) after reset"; }
		dev=$(ns1) || fail "no namespace block device after reset"
		echo "reset: $BDF back on nvme ($dev)"
	}
	identify() {
		local out
		out=$(timeout 120 "$BIN/ustor-nvme" identify -r "$TRID" 2>&1) ||
			{ echo "$out"; fail "ustor-nvme identify failed"; }
		grep -E '^(sn|mn|fr|mdts) ' <<<"$out"
		grep -qx "mn *: $MODEL" <<<"$out" || { echo "$out"; fail "model is not '$MODEL'"; }
		# MDTS 0 (no limit): the driver's own 4 MiB, which needs chained PRP lists
		grep -qx "mdts *: 0 (max transfer 4096 KiB)" <<<"$out" ||
			{ echo "$out"; fail "max transfer is not 4 MiB with MDTS 0"; }
		grep -qx "sn *: $SERIAL" <<<"$out" || { echo "$out"; fail "serial is not '$SERIAL'"; }
	}
	verify() {
		local out json=/tmp/nvme.json
		cat >"$json" <<JSON
{"subsystems":[{"subsystem":"bdev","config":[{"method":"bdev_nvme_attach_controller","params":{"name":"Nvme0","trtype":"PCIe","traddr":"$BDF"}}]}]}
JSON
		perf_verify "$json" 16 16k
		# 4 MiB per command (the driver's limit; MDTS 0): PRP lists chained over 2 pages
		perf_verify "$json" 2 4m
	}
	perf_verify() { # CONFIG QD IOSIZE
		local out rc
		out=$(timeout 120 "$BIN/ustor-perf" -c "$1" -b Nvme0n1 -w verify -q "$2" -o "$3" -t 2 2>&1)
		rc=$?
		grep -v blobstore <<<"$out" | tail -n 6
		[ $rc = 0 ] || fail "ustor-perf -w verify -o $3 exited $rc"
		grep -Eq '^verify: [1-9][0-9]* blocks read back .* 0 miscompares' <<<"$out" ||
			fail "ustor-perf -w verify -o $3 checked nothing"
	}
	uread() { # LBA OUT
		timeout 120 "$BIN/ustor-nvme" read -r "$TRID" --lba "$1" --count $NBLK "$2" ||
			fail "ustor-nvme read at LBA $1 failed"
	}

	case "$2" in
	noiommu)
		[ -z "$(ls -A /sys/kernel/iommu_groups)" ] || fail "this guest should have no IOMMU"
		dev=$(ns1) || fail "no namespace on $BDF"
		head -c $((NBLK * 512)) /dev/urandom >/tmp/user.bin
		head -c $((NBLK * 512)) /dev/urandom >/tmp/kern.bin
		bind uio_pci_generic
		identify
		verify
		timeout 120 "$BIN/ustor-nvme" write -r "$TRID" --lba $LBA_U /tmp/user.bin ||
			fail "ustor-nvme write failed"
		reset
		dd if="$dev" of=/tmp/user.back bs=512 skip=$LBA_U count=$NBLK iflag=direct status=none ||
			fail "dd from $dev"
		cmp /tmp/user.bin /tmp/user.back || fail "the kernel reads other data than ustor wrote"
		echo "kernel read back what ustor wrote at LBA $LBA_U"
		dd if=/tmp/kern.bin of="$dev" bs=512 seek=$LBA_K oflag=direct conv=fsync status=none ||
			fail "dd to $dev"
		bind uio_pci_generic
		uread $LBA_K /tmp/kern.back
		cmp /tmp/kern.bin /tmp/kern.back || fail "ustor reads other data than the kernel wrote"
		echo "ustor read back what the kernel wrote at LBA $LBA_K"
		cp /tmp/user.bin /tmp/kern.bin "$ctl/" || fail "cannot leave the patterns for the host"
		reset
		;;
	iommu)
		[ -n "$(ls -A /sys/kernel/iommu_groups)" ] || fail "no IOMMU groups with intel-iommu"
		dev=$(ns1) || fail "no namespace on $BDF"
		bind vfio-pci
		identify
		uread $LBA_K /tmp/kern.back
		cmp "$KERN" /tmp/kern.back || fail "read through vfio-pci returns other data"
		echo "ustor (vfio-pci) read back the kernel's data at LBA $LBA_K"
		verify
		reset
		;;
	*) fail "unknown guest part $2" ;;
	esac
	echo "guest part $2 ok"
	exit 0
fi

# --- host side ---------------------------------------------------------
. "$here/lib.sh"
vm_setup
t0=$SECONDS
builddir=${USTOR_BUILDDIR:-$VM_REPO/build}
export USTOR_BUILDDIR=$builddir
for b in ustor-nvme ustor-perf; do
	[ -x "$builddir/bin/$b" ] || fail "$builddir/bin/$b is not built"
done

vm_add_nvme --size 64M --serial "$SERIAL" --mdts 0
img=${VM_NVME_LAST[0]}
VM_ENV=("REPO=$VM_REPO")
VM_TIMEOUT=400
vm_run bash "$here/nvme_pcie_test.sh" --guest noiommu || fail "no-IOMMU guest failed (exit $VM_RC)"
echo "no-IOMMU guest: boot ${VM_BOOT_SECS}s, checks ${VM_CMD_SECS}s"
ctl1=$VM_CTL
cmp <(dd if="$img" bs=512 skip=$LBA_U count=$NBLK status=none) "$ctl1/user.bin" ||
	fail "the backing file does not hold ustor's pattern at LBA $LBA_U"
cmp <(dd if="$img" bs=512 skip=$LBA_K count=$NBLK status=none) "$ctl1/kern.bin" ||
	fail "the backing file does not hold the kernel's pattern at LBA $LBA_K"
echo "host: both patterns are in the backing file"

vm_reset
vm_add_nvme --img "$img" --serial "$SERIAL" --mdts 0
VM_IOMMU=1
VM_SHARES=("$ctl1")  # the first guest's control dir: kern.bin
VM_ENV=("REPO=$VM_REPO" "KERN=$ctl1/kern.bin")
VM_TIMEOUT=320
vm_run bash "$here/nvme_pcie_test.sh" --guest iommu || fail "IOMMU guest failed (exit $VM_RC)"
echo "IOMMU guest: boot ${VM_BOOT_SECS}s, checks ${VM_CMD_SECS}s"
echo "total $((SECONDS - t0))s"
echo PASS
