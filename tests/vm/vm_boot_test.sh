#!/usr/bin/env bash
# vm_boot_test: the VM lab itself. Boots a guest with two emulated NVMe
# controllers (one namespace of 64 MiB with 512 B blocks; two namespaces of
# 16 MiB with 4 KiB blocks) and checks, in the guest, that PCI shows them,
# the kernel's nvme driver exposes the namespaces with the backing files'
# sizes and block sizes, and that data written with dd (O_DIRECT) reads back;
# then, on the host after the guest exited, that the same bytes are in the
# backing files at the same offsets (the data path) and that the namespaces
# map to the right files. Also checks the guest's view of the host: the repo
# writable at the same path, / read-only underneath an in-memory overlay.
set -u
here=$(cd "$(dirname "$0")" && pwd)

fail() {
	echo "FAIL: $*"
	exit 1
}

# --- guest side --------------------------------------------------------
if [ "${1:-}" = --guest ]; then
	ctl=$USTOR_VM_CTL
	# NVMe function at BDF -> its controller's namespace block device N.
	ns_dev() { # BDF NSID
		local c h i
		for ((i = 0; i < 100; i++)); do
			for c in /sys/bus/pci/devices/$1/nvme/nvme*; do
				[ -e "$c" ] || continue
				# A namespace of a single controller is a disk under it; with
				# native multipath (shared namespaces) the disk is the head
				# in the controller's subsystem.
				if [ -e "$c/${c##*/}n$2/dev" ]; then
					echo "${c##*/}n$2"
					return 0
				fi
				for h in /sys/class/nvme-subsystem/*/nvme*n"$2"; do
					[ -e "${h%/*}/${c##*/}" ] && [ -e "$h/dev" ] && { echo "${h##*/}"; return 0; }
				done
			done
			sleep 0.2
		done
		return 1
	}

	lspci -nn -s 00:10.0 | grep -q 'Non-Volatile memory controller \[0108\].*\[1b36:0010\]' ||
		fail "lspci does not show the NVMe controller at 00:10.0: $(lspci -nn -s 00:10.0)"
	lspci -nn -s 00:11.0 | grep -q '\[0108\]' || fail "no NVMe controller at 00:11.0"
	[ "$(cat /sys/bus/pci/devices/0000:00:10.0/class)" = 0x010802 ] || fail "wrong class code"

	a=$(ns_dev 0000:00:10.0 1) || fail "no namespace 1 on 00:10.0 (nvme driver: $(ls /sys/bus/pci/drivers/nvme 2>&1))"
	b1=$(ns_dev 0000:00:11.0 1) || fail "no namespace 1 on 00:11.0"
	b2=$(ns_dev 0000:00:11.0 2) || fail "no namespace 2 on 00:11.0"
	echo "namespaces: 00:10.0/1=$a 00:11.0/1=$b1 00:11.0/2=$b2"
	[ -b "/dev/$a" ] && [ -b "/dev/$b1" ] && [ -b "/dev/$b2" ] || fail "block device nodes missing"
	[ "$a" = nvme0n1 ] || fail "first controller's namespace is $a, expected nvme0n1"

	sz=$(($(cat /sys/block/$a/size) * 512))
	[ "$sz" = "$SIZE_A" ] || fail "$a is $sz bytes, backing file is $SIZE_A"
	sz=$(($(cat /sys/block/$b2/size) * 512))
	[ "$sz" = "$SIZE_B" ] || fail "$b2 is $sz bytes, backing file is $SIZE_B"
	[ "$(cat /sys/block/$a/queue/logical_block_size)" = 512 ] || fail "$a block size"
	[ "$(cat /sys/block/$b1/queue/logical_block_size)" = 4096 ] || fail "$b1 block size"
	[ "$(blockdev --getsize64 /dev/$b1)" = "$SIZE_B" ] || fail "blockdev size of $b1"

	# 1 MiB of random data at 1 MiB, and the last 4 KiB of the namespace.
	head -c 1048576 /dev/urandom >"$ctl/pattern" || fail "cannot write the pattern"
	head -c 4096 /dev/urandom >"$ctl/tail" || fail "cannot write the tail pattern"
	dd if="$ctl/pattern" of=/dev/$a bs=1M seek=1 count=1 oflag=direct conv=fsync status=none ||
		fail "dd to /dev/$a failed"
	dd if="$ctl/tail" of=/dev/$a bs=4096 seek=$((SIZE_A / 4096 - 1)) count=1 oflag=direct conv=fsync status=none ||
		fail "dd to the end of /dev/$a failed"
	dd if=/dev/$a bs=1M skip=1 count=1 iflag=direct status=none | cmp - "$ctl/pattern" ||
		fail "read-back from /dev/$a differs"
	# Marks on each namespace of the second controller.
	printf 'ustor-ns1-mark' | dd of=/dev/$b1 bs=4096 conv=sync,fsync oflag=direct status=none || fail "dd $b1"
	printf 'ustor-ns2-mark' | dd of=/dev/$b2 bs=4096 conv=sync,fsync oflag=direct status=none || fail "dd $b2"
	# Writing past the end must fail.
	if dd if=/dev/zero of=/dev/$a bs=4096 seek=$((SIZE_A / 4096)) count=1 oflag=direct status=none 2>/dev/null; then
		fail "a write past the end of /dev/$a succeeded"
	fi

	# The host as the guest sees it.
	touch "$REPO/.vm-write-probe.$$" || fail "repo $REPO not writable in the guest"
	rm -f "$REPO/.vm-write-probe.$$"
	touch /etc/.vm-probe 2>/dev/null || fail "/ is not writable (overlay missing)"
	grep -q ' / overlay ' /proc/mounts || fail "root is not an overlay"
	[ "$(stat -f -c %T /tmp)" = tmpfs ] || fail "/tmp is not a tmpfs"
	[ -d "/lib/modules/$(uname -r)/kernel" ] || fail "no module tree for $(uname -r)"
	modprobe -n -v nvme >/dev/null || fail "modprobe cannot see the guest kernel's modules"
	echo "guest ok: kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo) MiB"
	exit 0
fi

# --- host side ---------------------------------------------------------
. "$here/lib.sh"
vm_setup
vm_add_nvme --size 64M
imga=${VM_NVME_LAST[0]}
vm_add_nvme --size 16M --ns 2 --lbads 12
imgb1=${VM_NVME_LAST[0]}
imgb2=${VM_NVME_LAST[1]}
VM_ENV=("SIZE_A=$(stat -c %s "$imga")" "SIZE_B=$(stat -c %s "$imgb2")" "REPO=$VM_REPO")
VM_TIMEOUT=180

vm_run bash "$here/vm_boot_test.sh" --guest
rc=$?
[ "$rc" = 0 ] || fail "guest part failed (exit $rc)"

# The data path: what the guest wrote is in the backing files.
dd if="$imga" bs=1M skip=1 count=1 status=none | cmp - "$VM_CTL/pattern" ||
	fail "backing file $imga does not hold the pattern at 1 MiB"
size=$(stat -c %s "$imga")
tail -c 4096 "$imga" | cmp - "$VM_CTL/tail" || fail "backing file $imga does not hold the tail pattern"
[ "$(head -c 14 "$imgb1")" = ustor-ns1-mark ] || fail "namespace 1 of controller 2 is not $imgb1"
[ "$(head -c 14 "$imgb2")" = ustor-ns2-mark ] || fail "namespace 2 of controller 2 is not $imgb2"
[ "$(stat -c %s "$imga")" = "$size" ] || fail "backing file changed size"
# Untouched regions stay zero.
[ "$(dd if="$imga" bs=1M count=1 status=none | tr -d '\0' | wc -c)" = 0 ] ||
	fail "the first MiB of $imga is not zero"

echo "boot time under $( [ -w /dev/kvm ] && echo KVM || echo TCG): ${VM_BOOT_SECS}s, guest checks ${VM_CMD_SECS}s"
echo PASS
