#!/usr/bin/env bash
# setup_test: scripts/setup.sh in guests, where binding devices is safe.
#
# Guest 1 (no IOMMU): two emulated NVMe controllers (00:10.0, 00:11.0) and a
# virtio-blk disk (00:12.0).
#   - status lists the three with their kernel drivers and device names
#   - PCI_BLOCKED keeps 00:10.0 on nvme; 00:11.0 carries a mounted ext4 and
#     is refused; the virtio-blk disk goes to uio_pci_generic; hugepages
#     are reserved, hugetlbfs mounted and fs.pipe-max-size raised
#   - PCI_ALLOWED limits binding to one function
#   - a plain run binds the rest; a second run changes nothing
#   - DRIVER_OVERRIDE=vfio-pci fails clearly without an IOMMU
#   - reset returns all to nvme / virtio-pci, the block devices reappear
#     and read; reset twice is harmless; CLEAR_HUGE=yes frees hugepages
# Guest 2 (q35 + intel-iommu): the default driver is vfio-pci,
#   /dev/vfio/<group> appears, status shows it, reset returns it to nvme.
set -u
here=$(cd "$(dirname "$0")" && pwd)

fail() {
	echo "FAIL: $*"
	exit 1
}

# --- guest side --------------------------------------------------------
if [ "${1:-}" = --guest ]; then
	S=$REPO/scripts/setup.sh
	A=0000:00:10.0 B=0000:00:11.0 V=0000:00:12.0
	drv() { # BDF: its driver or -
		local l
		l=$(readlink "/sys/bus/pci/devices/$1/driver") || { echo -; return; }
		echo "${l##*/}"
	}
	expect_drv() { # BDF DRIVER WHEN
		[ "$(drv "$1")" = "$2" ] || fail "$3: $1 is on $(drv "$1"), expected $2"
	}
	snap() { # run setup.sh status once; expect_row checks that output
		st=$("$S" status) || fail "setup.sh status failed"
	}
	expect_row() { # BDF DRIVER KDEV-REGEX
		local r
		r=$(awk -v b="$1" '$1 == b' <<<"$st")
		[ -n "$r" ] || fail "status has no row for $1"
		set -- "$1" "$2" "$3" $r
		[ "$8" = "$2" ] || fail "status shows driver '$8' for $1, expected $2: $r"
		[[ $9 =~ ^$3$ ]] || fail "status shows device '$9' for $1, expected $3: $r"
	}
	ns1() { # BDF: name of namespace 1's block device, waiting for it
		local i c
		for ((i = 0; i < 100; i++)); do
			for c in /sys/bus/pci/devices/$1/nvme/nvme*; do
				[ -e "$c/${c##*/}n1/dev" ] && [ -b "/dev/${c##*/}n1" ] && { echo "${c##*/}n1"; return 0; }
			done
			sleep 0.2
		done
		return 1
	}
	vda() { # wait for the virtio-blk disk
		local i b
		for ((i = 0; i < 100; i++)); do
			for b in /sys/bus/pci/devices/$V/virtio*/block/*; do
				[ -b "/dev/${b##*/}" ] && { echo "${b##*/}"; return 0; }
			done
			sleep 0.2
		done
		return 1
	}
	huge_total() {
		awk '/^HugePages_Total:/ { print $2 }' /proc/meminfo
	}
	run() { # NAME ENV... -- ARGS: run setup.sh, keep its output in $out
		local name=$1
		shift
		local envs=()
		while [ "$1" != -- ]; do envs+=("$1"); shift; done
		shift
		echo "== $name: ${envs[*]} setup.sh $*"
		out=$(env "${envs[@]}" "$S" "$@" 2>&1)
		rc=$?
		echo "$out" | sed 's/^/   /'
	}

	case "$2" in
	noiommu)
		[ -z "$(ls -A /sys/kernel/iommu_groups)" ] || fail "this guest should have no IOMMU"
		a=$(ns1 $A) || fail "no namespace on $A"
		b=$(ns1 $B) || fail "no namespace on $B"
		v=$(vda) || fail "no virtio-blk disk on $V"
		snap
		echo "$st"
		expect_row $A nvme "${a%n1}"
		expect_row $B nvme "${b%n1}"
		expect_row $V virtio-pci "$v"
		grep -q '^0000:00:0[1-3]\.0' <<<"$st" && fail "status lists a 9p function"

		# A mounted filesystem on B; A blocked.
		mkfs.ext4 -q -F "/dev/$b" || fail "mkfs.ext4 /dev/$b"
		mkdir -p /tmp/mnt && mount "/dev/$b" /tmp/mnt || fail "mount /dev/$b"
		run blocked+mounted HUGEMEM=64 "PCI_BLOCKED=$A" --
		[ $rc = 0 ] || fail "setup.sh exit $rc"
		grep -q "^$A (nvme): skipped, in PCI_BLOCKED" <<<"$out" || fail "no PCI_BLOCKED message for $A"
		grep -q "^$B (nvme): in use.*$b mounted on /tmp/mnt" <<<"$out" || fail "no in-use message for $B"
		expect_drv $A nvme "PCI_BLOCKED"
		expect_drv $B nvme "mounted filesystem"
		expect_drv $V uio_pci_generic "virtio-blk"
		[ "$(huge_total)" = 32 ] || fail "HugePages_Total is $(huge_total), expected 32 (64 MiB)"
		awk '$2 == "/dev/hugepages" && $3 == "hugetlbfs" { f = 1 } END { exit !f }' /proc/mounts ||
			fail "hugetlbfs not mounted on /dev/hugepages"
		mountpoint -q /tmp/mnt || fail "/tmp/mnt got unmounted"
		umount /tmp/mnt || fail "umount"
		[ "$(cat /proc/sys/fs/pipe-max-size)" -ge 2097152 ] ||
			fail "fs.pipe-max-size not raised: $(cat /proc/sys/fs/pipe-max-size)"

		run allowed HUGEMEM=64 "PCI_ALLOWED=$B" --
		[ $rc = 0 ] || fail "setup.sh exit $rc"
		grep -q "^$A (nvme): skipped, not in PCI_ALLOWED" <<<"$out" || fail "no PCI_ALLOWED message"
		expect_drv $A nvme "PCI_ALLOWED=$B"
		expect_drv $B uio_pci_generic "PCI_ALLOWED=$B"

		run all HUGEMEM=64 --
		[ $rc = 0 ] || fail "setup.sh exit $rc"
		for d in $A $B $V; do expect_drv $d uio_pci_generic "plain run"; done
		[ -z "$(ls /sys/class/nvme 2>/dev/null)" ] || fail "kernel nvme controllers remain: $(ls /sys/class/nvme)"
		[ ! -e "/dev/$a" ] || fail "/dev/$a still exists"
		snap
		for d in $A $B $V; do expect_row $d uio_pci_generic 'uio[0-9]+'; done
		[ "$(ls -d /dev/uio* | wc -l)" = 3 ] || fail "expected 3 /dev/uio*: $(ls /dev/uio*)"

		run again HUGEMEM=64 --
		[ $rc = 0 ] || fail "second run: exit $rc"
		[ "$(grep -c 'already bound to uio_pci_generic' <<<"$out")" = 3 ] || fail "second run was not a no-op"
		[ "$(huge_total)" = 32 ] || fail "second run changed hugepages"

		run vfio-without-iommu HUGEMEM=64 DRIVER_OVERRIDE=vfio-pci --
		[ $rc != 0 ] || fail "vfio-pci without an IOMMU succeeded"
		grep -q 'needs an IOMMU' <<<"$out" || fail "no clear error for vfio-pci without an IOMMU"

		run bad-bdf PCI_BLOCKED=zz:1 --
		[ $rc != 0 ] || fail "a malformed PCI_BLOCKED was accepted"

		run reset -- reset
		[ $rc = 0 ] || fail "reset exit $rc"
		expect_drv $A nvme reset
		expect_drv $B nvme reset
		expect_drv $V virtio-pci reset
		a=$(ns1 $A) || fail "no namespace on $A after reset"
		ns1 $B >/dev/null || fail "no namespace on $B after reset"
		vda >/dev/null || fail "no virtio-blk disk after reset"
		dd if="/dev/$a" of=/dev/null bs=4096 count=16 iflag=direct status=none || fail "cannot read /dev/$a after reset"
		blkid "/dev/$(ns1 $B)" | grep -q ext4 || fail "ext4 on $B not visible after reset"
		snap
		expect_row $A nvme 'nvme[0-9]+'
		[ "$(cat /sys/bus/pci/devices/$A/driver_override)" = "(null)" ] || fail "driver_override not cleared"
		[ "$(huge_total)" = 32 ] || fail "reset without CLEAR_HUGE released hugepages"

		run reset-again -- reset
		[ $rc = 0 ] || fail "second reset exit $rc"
		[ "$(grep -c 'nothing to do' <<<"$out")" = 3 ] || fail "second reset was not a no-op"

		run clear-huge CLEAR_HUGE=yes -- reset
		[ $rc = 0 ] || fail "CLEAR_HUGE reset exit $rc"
		[ "$(huge_total)" = 0 ] || fail "hugepages not released: $(huge_total)"
		;;
	iommu)
		[ -n "$(ls -A /sys/kernel/iommu_groups)" ] || fail "no IOMMU groups with intel-iommu"
		a=$(ns1 $A) || fail "no namespace on $A"
		grp=$(basename "$(readlink /sys/bus/pci/devices/$A/iommu_group)")
		run vfio HUGEMEM=32 --
		[ $rc = 0 ] || fail "setup.sh exit $rc"
		expect_drv $A vfio-pci "IOMMU guest"
		[ -c "/dev/vfio/$grp" ] || fail "/dev/vfio/$grp missing: $(ls /dev/vfio)"
		[ -c /dev/vfio/vfio ] || fail "/dev/vfio/vfio missing"
		snap
		expect_row $A vfio-pci "vfio/$grp"
		run vfio-again HUGEMEM=32 --
		[ $rc = 0 ] && grep -q "^$A (nvme): already bound to vfio-pci" <<<"$out" || fail "second run not a no-op"
		run reset CLEAR_HUGE=yes -- reset
		[ $rc = 0 ] || fail "reset exit $rc"
		expect_drv $A nvme reset
		[ ! -e "/dev/vfio/$grp" ] || fail "/dev/vfio/$grp still exists after reset"
		ns1 $A >/dev/null || fail "no namespace on $A after reset"
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

vm_add_nvme --size 32M
vm_add_nvme --size 32M
truncate -s 16M "$VM_WORKDIR/vblk.img"
VM_QEMU_ARGS=(-drive "file=$VM_WORKDIR/vblk.img,if=none,id=vblk0,format=raw"
	-device virtio-blk-pci,drive=vblk0,addr=0x12)
VM_ENV=("REPO=$VM_REPO")
VM_TIMEOUT=240
vm_run bash "$here/setup_test.sh" --guest noiommu || fail "no-IOMMU guest failed (exit $VM_RC)"
echo "no-IOMMU guest: boot ${VM_BOOT_SECS}s, checks ${VM_CMD_SECS}s"

vm_reset
vm_add_nvme --size 32M
VM_IOMMU=1
VM_ENV=("REPO=$VM_REPO")
VM_TIMEOUT=180
vm_run bash "$here/setup_test.sh" --guest iommu || fail "IOMMU guest failed (exit $VM_RC)"
echo "IOMMU guest: boot ${VM_BOOT_SECS}s, checks ${VM_CMD_SECS}s"
echo "total $((SECONDS - t0))s"
echo PASS
