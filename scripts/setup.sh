#!/usr/bin/env bash
# setup.sh: prepare a machine for ustor's userspace drivers: reserve
# hugepages and hand NVMe and virtio storage PCI functions to vfio-pci or
# uio_pci_generic, and give them back. Run as root; safe to run twice.
#
#   scripts/setup.sh [config]   reserve hugepages, mount hugetlbfs, raise
#                               fs.pipe-max-size, bind devices
#   scripts/setup.sh status     hugepages per node and the device table
#   scripts/setup.sh reset      give devices back to their kernel drivers
#   scripts/setup.sh help
#
# See usage() below for the environment variables.
set -u

prog=${0##*/}
SYSPCI=/sys/bus/pci
USERSPACE_DRIVERS="vfio-pci uio_pci_generic"

usage() {
	cat <<EOF
usage: $prog [config|status|reset|help]

  config (default)  reserve HUGEMEM MiB of hugepages, mount hugetlbfs on
                    /dev/hugepages if no hugetlbfs is mounted, raise
                    fs.pipe-max-size to 2 MiB (a FUSE mount then takes large
                    writes by splice, one copy less), turn on guest halt
                    polling in a VM guest whose cpuidle driver is haltpoll
                    (see HALT_POLL_NS), and bind every
                    NVMe function (class 0108) and virtio-blk/virtio-scsi
                    function (vendor 1af4) to vfio-pci, or to uio_pci_generic
                    when the machine has no IOMMU (/sys/kernel/iommu_groups is
                    empty). Devices with a mounted filesystem, active swap or
                    holders (dm, md) on them are skipped with a message.
  status            hugepages per NUMA node (page size, total, free), the
                    guest halt polling limit, and a
                    table of NVMe and virtio storage functions: BDF, NUMA
                    node, vendor:device, driver, kernel device name.
  reset             give the devices back to their kernel drivers (clear
                    driver_override, unbind, reprobe); with CLEAR_HUGE=yes
                    also release the hugepages.
  help              this text.

environment:
  HUGEMEM=MiB            hugepage memory to reserve (default 2048), split
                         evenly over the NUMA nodes (or HUGENODE's nodes)
  HUGEPGSZ=kB            hugepage size (default: the kernel's default size)
  HUGENODE="0 1"         reserve only on these NUMA nodes
  DRIVER_OVERRIDE=vfio-pci|uio_pci_generic
                         driver to bind to (default: by IOMMU presence)
  PCI_ALLOWED="BDF ..."  only touch these functions (e.g. 0000:00:10.0)
  PCI_BLOCKED="BDF ..."  never touch these functions
  TARGET_USER=user       owner of /dev/vfio/<group> (default: \$SUDO_USER
                         or root); that user also needs a memlock limit
                         large enough for the DMA memory it maps
  CLEAR_HUGE=yes         reset: also release the reserved hugepages
  HALT_POLL_NS=ns        guest halt polling limit to set where it is lower
                         (default 200000, the kernel's own default; some
                         hosts boot their guests with 0); "keep": leave it
EOF
}

err() {
	echo "$prog: error: $*" >&2
}

die() {
	err "$*"
	exit 1
}

need_root() {
	[ "$(id -u)" -eq 0 ] || die "'$1' must be run as root"
}

# Normalise a BDF to the 0000:bb:dd.f form the kernel uses.
norm_bdf() {
	local b=${1,,}
	[[ $b =~ ^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] && b=0000:$b
	[[ $b =~ ^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] || return 1
	echo "$b"
}

ALLOWED=()
BLOCKED=()
parse_lists() {
	local b n
	for b in ${PCI_ALLOWED:-}; do
		n=$(norm_bdf "$b") || die "PCI_ALLOWED: '$b' is not a PCI address (domain:bus:dev.fn)"
		ALLOWED+=("$n")
		[ -e "$SYSPCI/devices/$n" ] || echo "$prog: warning: PCI_ALLOWED: no device $n" >&2
	done
	for b in ${PCI_BLOCKED:-}; do
		n=$(norm_bdf "$b") || die "PCI_BLOCKED: '$b' is not a PCI address (domain:bus:dev.fn)"
		BLOCKED+=("$n")
	done
}

in_list() { # BDF LIST...
	local x=$1 y
	shift
	for y in "$@"; do [ "$x" = "$y" ] && return 0; done
	return 1
}

# "allowed" / "blocked" / "not-allowed" for a BDF under PCI_ALLOWED/BLOCKED.
filter_state() {
	if in_list "$1" "${BLOCKED[@]}"; then
		echo blocked
	elif [ ${#ALLOWED[@]} -gt 0 ] && ! in_list "$1" "${ALLOWED[@]}"; then
		echo not-allowed
	else
		echo allowed
	fi
}

# Under emulation every exec costs tens of milliseconds, so the helpers
# below read sysfs with shell builtins rather than cat/readlink/awk.
rd() { # FILE: its first line, or nothing
	local l=
	IFS= read -r l <"$1" 2>/dev/null
	printf '%s' "$l"
}

rdv() { # VAR FILE: set VAR to FILE's first line (empty if unreadable)
	IFS= read -r "$1" <"$2" 2>/dev/null || printf -v "$1" '%s' ""
}

# Storage functions we manage, one "BDF KIND" a line: NVMe by class code
# (0x0108xx), virtio-blk and virtio-scsi by vendor 0x1af4 and device id
# (transitional 0x1001/0x1004, modern 0x1042/0x1048). Other virtio
# functions (net, 9p, console, ...) are never touched.
list_devices() {
	local d bdf class vendor device
	for d in "$SYSPCI"/devices/*; do
		[ -e "$d/class" ] || continue
		bdf=${d##*/}
		rdv class "$d/class"
		rdv vendor "$d/vendor"
		rdv device "$d/device"
		case "$class" in
		0x0108*) echo "$bdf nvme"; continue ;;
		esac
		if [ "$vendor" = 0x1af4 ]; then
			case "$device" in
			0x1001 | 0x1042) echo "$bdf virtio-blk" ;;
			0x1004 | 0x1048) echo "$bdf virtio-scsi" ;;
			esac
		fi
	done
}

driver_of() {
	local d
	for d in "$SYSPCI"/drivers/*/"$1"; do
		[ -e "$d" ] && { d=${d%/*}; echo "${d##*/}"; return; }
	done
	echo -
}

# Block devices (disks, partitions, multipath heads) that belong to a
# function: everything under its sysfs node, plus, for NVMe with native
# multipath, the namespace heads of the subsystems its controllers are in.
block_devs_of() {
	local bdf=$1 dev=$SYSPCI/devices/$1 p c s h
	if [ -n "$(ls -A /sys/class/block 2>/dev/null)" ]; then
		realpath /sys/class/block/* | while read -r p; do
			[[ $p == */"$bdf"/* ]] && echo "${p##*/}"
		done
	fi
	for c in "$dev"/nvme/nvme*; do
		[ -e "$c" ] || continue
		for s in /sys/class/nvme-subsystem/*; do
			[ -e "$s/${c##*/}" ] || continue
			for h in "$s"/nvme*n*; do
				[ -e "$h/dev" ] || continue
				echo "${h##*/}"
				for p in "$h"/"${h##*/}"p*; do
					[ -e "$p/dev" ] && echo "${p##*/}"
				done
			done
		done
	done
}

# Kernel device names for the status table (nvme0, vda, ...).
kernel_names_of() {
	local bdf=$1 dev=$SYSPCI/devices/$1 names=() c b
	for c in "$dev"/nvme/nvme*; do
		[ -e "$c" ] && names+=("${c##*/}")
	done
	if [ ${#names[@]} -eq 0 ]; then
		for b in "$dev"/virtio*/block/* "$dev"/virtio*/host*/target*/*/block/*; do
			[ -e "$b" ] && names+=("${b##*/}")
		done
	fi
	if [ ${#names[@]} -eq 0 ]; then
		# On a userspace driver: its device node instead.
		for c in "$dev"/uio/uio*; do
			[ -e "$c" ] && names+=("${c##*/}")
		done
		if [ "$(driver_of "$bdf")" = vfio-pci ] && c=$(vfio_group_of "$bdf"); then
			names+=("vfio/$c")
		fi
	fi
	if [ ${#names[@]} -eq 0 ]; then
		echo -
	else
		local IFS=,
		echo "${names[*]}"
	fi
}

# Why a function must not be taken from its kernel driver (empty: free).
in_use_reason() {
	local bdf=$1 b majmin reasons=() sw h holders f1 f2 f3 f4 f5 rest swaps=()
	# Device numbers of the active swap areas.
	if [ -r /proc/swaps ]; then
		while read -r sw rest; do
			[ -b "$sw" ] && swaps+=("$(stat -L -c '%t:%T' "$sw" 2>/dev/null)")
		done </proc/swaps
	fi
	while read -r b; do
		[ -n "$b" ] || continue
		rdv majmin "/sys/class/block/$b/dev"
		[ -n "$majmin" ] || continue
		# mountinfo field 3 is the device number of the mounted filesystem.
		while read -r f1 f2 f3 f4 f5 rest; do
			[ "$f3" = "$majmin" ] && { reasons+=("$b mounted on $f5"); break; }
		done </proc/self/mountinfo
		for sw in "${swaps[@]}"; do
			[ "$sw" = "$(printf '%x:%x' "${majmin%%:*}" "${majmin##*:}")" ] &&
				reasons+=("$b is active swap")
		done
		holders=
		for h in "/sys/class/block/$b/holders"/*; do
			[ -e "$h" ] && holders="$holders ${h##*/}"
		done
		[ -n "$holders" ] && reasons+=("$b is held by${holders}")
	done < <(block_devs_of "$bdf" | sort -u)
	local IFS=';'
	echo "${reasons[*]}"
}

have_iommu() {
	[ -n "$(ls -A /sys/kernel/iommu_groups 2>/dev/null)" ]
}

# --- hugepages -----------------------------------------------------------

default_hugepgsz() {
	awk '/^Hugepagesize:/ { print $2 }' /proc/meminfo
}

huge_nodes() {
	local n
	if [ -n "${HUGENODE:-}" ]; then
		for n in $HUGENODE; do
			[[ $n =~ ^[0-9]+$ ]] || die "HUGENODE: '$n' is not a node number"
			[ -d "/sys/devices/system/node/node$n" ] || die "HUGENODE: no NUMA node $n"
			echo "$n"
		done
		return
	fi
	for n in /sys/devices/system/node/node[0-9]*; do
		[ -d "$n/hugepages" ] && echo "${n##*node}"
	done
}

reserve_hugepages() {
	local mb=${HUGEMEM:-2048} kb=${HUGEPGSZ:-$(default_hugepgsz)}
	[[ $mb =~ ^[0-9]+$ ]] || die "HUGEMEM='$mb' is not a number of MiB"
	[[ $kb =~ ^[0-9]+$ ]] && [ "$kb" -gt 0 ] || die "cannot tell the hugepage size (HUGEPGSZ='$kb')"
	local pages=$(((mb * 1024 + kb - 1) / kb))
	local nodes=() n
	mapfile -t nodes < <(huge_nodes)
	local got=0
	if [ ${#nodes[@]} -gt 0 ]; then
		local per=$(((pages + ${#nodes[@]} - 1) / ${#nodes[@]})) f left=$pages want
		for n in "${nodes[@]}"; do
			f=/sys/devices/system/node/node$n/hugepages/hugepages-${kb}kB/nr_hugepages
			[ -e "$f" ] || die "no ${kb} kB hugepages on node $n ($f missing)"
			want=$per
			[ "$want" -gt "$left" ] && want=$left
			left=$((left - want))
			echo "$want" >"$f" 2>/dev/null || die "cannot write $f"
			got=$((got + $(rd "$f")))
			echo "hugepages: node $n: $(rd "$f") x ${kb} kB (asked $want)"
		done
	else
		f=/sys/kernel/mm/hugepages/hugepages-${kb}kB/nr_hugepages
		[ "$kb" = "$(default_hugepgsz)" ] && f=/proc/sys/vm/nr_hugepages
		[ -e "$f" ] || die "no ${kb} kB hugepages on this kernel"
		echo "$pages" >"$f" 2>/dev/null || die "cannot write $f"
		got=$(rd "$f")
		echo "hugepages: $got x ${kb} kB (asked $pages)"
	fi
	[ "$got" -ge "$pages" ] ||
		die "only $got of $pages hugepages of ${kb} kB could be reserved (memory fragmented or too small; try a smaller HUGEMEM)"
	mount_hugetlbfs "$kb"
}

mount_hugetlbfs() {
	local kb=$1
	if awk '$3 == "hugetlbfs" { found = 1 } END { exit !found }' /proc/mounts; then
		return 0
	fi
	mkdir -p /dev/hugepages || die "cannot create /dev/hugepages"
	local opt=
	[ "$kb" != "$(default_hugepgsz)" ] && opt="-o pagesize=${kb}K"
	# shellcheck disable=SC2086
	mount -t hugetlbfs $opt nodev /dev/hugepages || die "cannot mount hugetlbfs on /dev/hugepages"
	echo "hugetlbfs mounted on /dev/hugepages"
}

release_hugepages() {
	local f left=0
	for f in /sys/devices/system/node/node*/hugepages/hugepages-*/nr_hugepages \
		/sys/kernel/mm/hugepages/hugepages-*/nr_hugepages; do
		[ -e "$f" ] || continue
		echo 0 >"$f" 2>/dev/null || die "cannot write $f"
	done
	for f in /sys/kernel/mm/hugepages/hugepages-*/nr_hugepages; do
		[ -e "$f" ] && left=$((left + $(rd "$f")))
	done
	if [ "$left" -gt 0 ]; then
		die "$left hugepages are still in use (files left in a hugetlbfs mount?)"
	fi
	echo "hugepages released"
}

# --- binding -------------------------------------------------------------

LOADED=()
load_driver() {
	in_list "$1" "${LOADED[@]}" && return 0
	if [ ! -d "$SYSPCI/drivers/$1" ]; then
		modprobe "$1" 2>/dev/null || die "cannot load driver module $1 (modprobe $1 failed)"
		[ -d "$SYSPCI/drivers/$1" ] || die "driver $1 did not register with the PCI bus"
	fi
	LOADED+=("$1")
}

# Point the function at DRIVER (or at none, for "") and let the PCI core
# probe it again.
rebind() { # BDF DRIVER
	local bdf=$1 drv=$2 dev=$SYSPCI/devices/$1
	echo "$drv" >"$dev/driver_override" 2>/dev/null || { err "$bdf: cannot write driver_override"; return 1; }
	if [ -e "$dev/driver" ]; then
		echo "$bdf" >"$dev/driver/unbind" 2>/dev/null || { err "$bdf: cannot unbind from $(driver_of "$bdf")"; return 1; }
	fi
	# drivers_probe fails (ENODEV... ) when no driver matches: not an error
	# for reset, where the kernel driver may be absent; checked by callers.
	echo "$bdf" >"$SYSPCI/drivers_probe" 2>/dev/null
	return 0
}

vfio_group_of() {
	local g
	for g in /sys/kernel/iommu_groups/*/devices/"$1"; do
		[ -e "$g" ] && { g=${g%/devices/*}; echo "${g##*/}"; return 0; }
	done
	return 1
}

# A FUSE mount splices large WRITEs into a 2 MiB pipe (fuse/fuse_dev.c);
# without CAP_SYS_RESOURCE a pipe cannot be larger than fs.pipe-max-size.
raise_pipe_max() {
	local want=2097152 cur
	cur=$(cat /proc/sys/fs/pipe-max-size 2>/dev/null) || return 0
	[ "$cur" -ge "$want" ] && return 0
	if echo "$want" >/proc/sys/fs/pipe-max-size 2>/dev/null; then
		echo "fs.pipe-max-size raised from $cur to $want"
	else
		echo "fs.pipe-max-size stays $cur (cannot write it): FUSE mounts copy large writes once more"
	fi
}

# In a VM guest with the haltpoll cpuidle driver, an idle vCPU polls up to
# guest_halt_poll_ns before it halts (Documentation/virt/guest-halt-polling.rst).
# At 0 every wakeup of a halted vCPU is an exit to the host: a FUSE request
# wakes the client that waits for it on the other vCPU, and that wakeup
# was half of a round trip on a guest booted with 0 (bench/fs: 19 us,
# 9.5 us at 200000).
HALT_POLL_PARAM=/sys/module/haltpoll/parameters/guest_halt_poll_ns
HALT_POLL_NS=${HALT_POLL_NS:-200000}
haltpoll_guest() {
	[ "$(rd /sys/devices/system/cpu/cpuidle/current_driver)" = haltpoll ]
}
raise_halt_poll() {
	local want=$HALT_POLL_NS cur
	[ "$want" = keep ] && return 0
	haltpoll_guest || return 0
	cur=$(rd "$HALT_POLL_PARAM")
	[ -n "$cur" ] || return 0
	[ "$cur" -ge "$want" ] && return 0
	if echo "$want" >"$HALT_POLL_PARAM" 2>/dev/null; then
		echo "guest halt polling raised from $cur to $want ns"
	else
		echo "guest halt polling stays $cur ns (cannot write $HALT_POLL_PARAM)"
	fi
}

config() {
	need_root config
	parse_lists
	case "$HALT_POLL_NS" in
	keep) ;;
	'' | *[!0-9]*) die "HALT_POLL_NS='$HALT_POLL_NS': give nanoseconds or 'keep'" ;;
	esac
	local drv=${DRIVER_OVERRIDE:-}
	if [ -z "$drv" ]; then
		if have_iommu; then drv=vfio-pci; else drv=uio_pci_generic; fi
	fi
	case "$drv" in
	vfio-pci | uio_pci_generic) ;;
	*) die "DRIVER_OVERRIDE='$drv': use vfio-pci or uio_pci_generic" ;;
	esac
	if [ "$drv" = vfio-pci ] && ! have_iommu; then
		die "vfio-pci needs an IOMMU and this machine has none (no /sys/kernel/iommu_groups entries); enable it (intel_iommu=on / amd_iommu=on) or use DRIVER_OVERRIDE=uio_pci_generic"
	fi

	reserve_hugepages
	raise_pipe_max
	raise_halt_poll

	local bdf kind cur why failed=0 n=0 grp owner
	owner=${TARGET_USER:-${SUDO_USER:-root}}
	while read -r bdf kind; do
		n=$((n + 1))
		case "$(filter_state "$bdf")" in
		blocked) echo "$bdf ($kind): skipped, in PCI_BLOCKED"; continue ;;
		not-allowed) echo "$bdf ($kind): skipped, not in PCI_ALLOWED"; continue ;;
		esac
		cur=$(driver_of "$bdf")
		if [ "$cur" = "$drv" ]; then
			echo "$bdf ($kind): already bound to $drv"
		else
			why=$(in_use_reason "$bdf")
			if [ -n "$why" ]; then
				echo "$bdf ($kind): in use, not binding: $why"
				continue
			fi
			load_driver "$drv"
			if [ "$drv" = vfio-pci ] && ! vfio_group_of "$bdf" >/dev/null; then
				err "$bdf ($kind): no IOMMU group, cannot use vfio-pci"
				failed=1
				continue
			fi
			rebind "$bdf" "$drv" || { failed=1; continue; }
			cur=$(driver_of "$bdf")
			if [ "$cur" != "$drv" ]; then
				err "$bdf ($kind): binding to $drv failed (now: $cur; see dmesg)"
				failed=1
				continue
			fi
			echo "$bdf ($kind): bound to $drv"
		fi
		if [ "$drv" = vfio-pci ]; then
			grp=$(vfio_group_of "$bdf")
			local i=0
			while [ ! -e "/dev/vfio/$grp" ] && [ $i -lt 50 ]; do
				sleep 0.1
				i=$((i + 1))
			done
			[ -e "/dev/vfio/$grp" ] || { err "$bdf: /dev/vfio/$grp did not appear"; failed=1; continue; }
			chown "$owner" "/dev/vfio/$grp" && chmod 0660 "/dev/vfio/$grp" ||
				{ err "$bdf: cannot give /dev/vfio/$grp to $owner"; failed=1; }
			# Every device of the group must be on vfio-pci or unbound.
			local o od
			for o in "$SYSPCI/devices/$bdf/iommu_group/devices"/*; do
				od=$(driver_of "${o##*/}")
				[ "${o##*/}" = "$bdf" ] || [ "$od" = - ] || [ "$od" = vfio-pci ] || [ "$od" = pcieport ] ||
					echo "$prog: warning: $bdf: IOMMU group $grp also holds ${o##*/} (driver $od); vfio will refuse the group" >&2
			done
		fi
	done < <(list_devices)
	[ $n -eq 0 ] && echo "no NVMe or virtio storage functions found"
	return $failed
}

reset() {
	need_root reset
	parse_lists
	local bdf kind cur ov failed=0 n=0 i
	while read -r bdf kind; do
		case "$(filter_state "$bdf")" in
		blocked | not-allowed) continue ;;
		esac
		n=$((n + 1))
		cur=$(driver_of "$bdf")
		ov=$(rd "$SYSPCI/devices/$bdf/driver_override")
		[ "$ov" = "(null)" ] && ov=
		if [ -z "$ov" ] && ! in_list "$cur" $USERSPACE_DRIVERS; then
			echo "$bdf ($kind): on ${cur/#-/no driver}, nothing to do"
			continue
		fi
		# Load the kernel driver that matches the function, then reprobe.
		modprobe -q -b "$(rd "$SYSPCI/devices/$bdf/modalias")" 2>/dev/null
		rebind "$bdf" "" || { failed=1; continue; }
		i=0
		while [ "$(driver_of "$bdf")" = - ] && [ $i -lt 20 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		cur=$(driver_of "$bdf")
		if [ "$cur" = - ] || in_list "$cur" $USERSPACE_DRIVERS; then
			err "$bdf ($kind): no kernel driver took it back (now: ${cur/#-/none})"
			failed=1
			continue
		fi
		echo "$bdf ($kind): returned to $cur"
	done < <(list_devices)
	[ $n -eq 0 ] && echo "no NVMe or virtio storage functions to reset"
	if [ "${CLEAR_HUGE:-no}" = yes ]; then
		release_hugepages || failed=1
	fi
	return $failed
}

status() {
	local d n s sz
	echo "Hugepages"
	printf '%-6s %-10s %8s %8s\n' node size total free
	local any=0
	for n in /sys/devices/system/node/node[0-9]*; do
		for s in "$n"/hugepages/hugepages-*; do
			[ -d "$s" ] || continue
			any=1
			sz=${s##*hugepages-}
			printf '%-6s %-10s %8s %8s\n' "${n##*node}" "$sz" "$(rd "$s/nr_hugepages")" "$(rd "$s/free_hugepages")"
		done
	done
	if [ $any = 0 ]; then
		for s in /sys/kernel/mm/hugepages/hugepages-*; do
			[ -d "$s" ] || continue
			sz=${s##*hugepages-}
			printf '%-6s %-10s %8s %8s\n' - "$sz" "$(rd "$s/nr_hugepages")" "$(rd "$s/free_hugepages")"
		done
	fi
	echo
	if haltpoll_guest; then
		echo "Guest halt polling: $(rd "$HALT_POLL_PARAM") ns"
		echo
	fi
	echo "Devices"
	printf '%-14s %-5s %-10s %-12s %-16s %s\n' BDF numa vendor:dev type driver kernel-dev
	local bdf kind node v dv
	while read -r bdf kind; do
		d=$SYSPCI/devices/$bdf
		node=$(rd "$d/numa_node")
		[ -z "$node" ] || [ "$node" = -1 ] && node=-
		v=$(rd "$d/vendor")
		dv=$(rd "$d/device")
		printf '%-14s %-5s %-10s %-12s %-16s %s\n' "$bdf" "$node" "${v#0x}:${dv#0x}" "$kind" \
			"$(driver_of "$bdf")" "$(kernel_names_of "$bdf")"
	done < <(list_devices)
	echo
	if have_iommu; then echo "IOMMU: on"; else echo "IOMMU: off (no IOMMU groups)"; fi
}

case "${1:-config}" in
config) config ;;
status) status ;;
reset) reset ;;
help | -h | --help) usage ;;
*)
	usage >&2
	die "unknown action '$1'"
	;;
esac
