# shellcheck shell=bash
# ustor VM lab: boot Debian's kernel under QEMU with the host's root
# filesystem shared read-only over 9p, run one command in the guest and
# return its output and exit status. Sourced by tests/vm/*_test.sh and by
# tests/vm/vm-run; see tests/vm/README.md.
#
#   . tests/vm/lib.sh
#   vm_setup                      # exit 77 if QEMU cannot run; fetch kernel,
#                                 # build initramfs (both cached)
#   vm_add_nvme --size 64M --ns 2 # emulated NVMe controller (repeatable)
#   VM_IOMMU=1                    # q35 + intel-iommu, intel_iommu=on iommu=pt
#   VM_NET=1 VM_FWD=(4420)        # user net, 127.0.0.1:<free port> -> guest
#   vm_run CMD ARGS...            # output on stdout, returns the guest's status
#
# Per-VM settings (globals, reset by vm_reset):
#   VM_MEM (MiB, 1024) VM_CPUS (2) VM_TIMEOUT (s, 300) VM_IOMMU (0|1)
#   VM_NET (0|1) VM_FWD (guest TCP ports, default 4420 when VM_NET=1)
#   VM_SHARES (extra host dirs shared writable at the same path)
#   VM_ENV ("NAME=value" exported in the guest) VM_APPEND (kernel args)
#   VM_QEMU_ARGS (extra QEMU arguments)
# Results of the last VM: VM_RC, VM_OUTPUT (file), VM_CONSOLE (file),
#   VM_DMESG (file), VM_BOOT_SECS, VM_CMD_SECS, VM_FWD_PORTS (host ports).
# Environment: USTOR_VM_CACHE (kernel cache; /var/cache/ustor-vm as root),
#   USTOR_VM_QEMU (qemu binary), USTOR_VM_KPKG (kernel package to use),
#   USTOR_VM_KEEP=1 (keep the work dir), USTOR_VM_VERBOSE=1,
#   USTOR_VM_ACCEL=kvm|tcg (default: KVM where a probe shows it works).

VM_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_REPO=${USTOR_VM_REPO:-$(cd "$VM_LIB_DIR/../.." && pwd)}
VM_QEMU=${USTOR_VM_QEMU:-qemu-system-x86_64}
if [ -n "${USTOR_VM_CACHE:-}" ]; then
	VM_CACHE=$USTOR_VM_CACHE
elif [ "$(id -u)" -eq 0 ]; then
	VM_CACHE=/var/cache/ustor-vm
else
	VM_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/ustor-vm
fi

VM_WORKDIR=
VM_KVER=
VM_KERNEL=
VM_INITRD=
VM_MODDIR=
VM_PID=
VM_RUNDIR=
VM_SEQ=0
VM_NVME_SPECS=()
VM_NVME_IMGS=()
VM_ACCEL=${USTOR_VM_ACCEL:-}

vm_log() {
	printf 'vm: %s\n' "$*" >&2
}

vm_die() {
	printf 'vm: error: %s\n' "$*" >&2
	exit 1
}

# A test's skip: the reason is the last line of output (tests/run.sh shows it).
vm_skip() {
	printf '%s\n' "$*"
	exit 77
}

vm_reset() {
	VM_MEM=1024
	VM_CPUS=2
	VM_TIMEOUT=300
	VM_IOMMU=0
	VM_NET=0
	VM_FWD=()
	VM_FWD_PORTS=()
	VM_SHARES=()
	VM_ENV=()
	VM_APPEND=
	VM_QEMU_ARGS=()
	VM_NVME_SPECS=()
	VM_NVME_IMGS=()
}
vm_reset

vm_cleanup() {
	vm_kill
	if [ -n "$VM_WORKDIR" ] && [ -d "$VM_WORKDIR" ]; then
		if [ "${USTOR_VM_KEEP:-0}" = 1 ]; then
			vm_log "kept $VM_WORKDIR"
		else
			rm -rf "$VM_WORKDIR"
		fi
	fi
}

# Decimal seconds since the epoch, for timings.
vm_now() {
	date +%s.%N
}

vm_elapsed() { # START [END]
	awk -v a="$1" -v b="${2:-$(vm_now)}" 'BEGIN { printf "%.1f", b - a }'
}

# --- host checks --------------------------------------------------------

# Install Debian packages when missing and we are root (pkgdep.sh lists
# them; this is for running a VM test on a machine where it was not run).
vm_apt_install() {
	[ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
		>/dev/null 2>&1 && return 0
	apt-get update -q >/dev/null 2>&1 &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
			>/dev/null 2>&1
}

# Exits 77 (skip) when QEMU cannot run here at all; anything else that is
# missing is a failure.
vm_check_host() {
	if ! command -v "$VM_QEMU" >/dev/null 2>&1; then
		vm_apt_install qemu-system-x86 || true
		command -v "$VM_QEMU" >/dev/null 2>&1 ||
			vm_skip "cannot run QEMU: $VM_QEMU not found and not installable"
	fi
	"$VM_QEMU" -version >/dev/null 2>&1 ||
		vm_skip "cannot run QEMU: '$VM_QEMU -version' fails"
	"$VM_QEMU" -accel help 2>/dev/null | grep -qx 'tcg\|kvm' ||
		vm_skip "cannot run QEMU: neither TCG nor KVM is available"
	local p
	for p in cpio:cpio busybox:busybox-static gzip:gzip depmod:kmod; do
		if ! command -v "${p%%:*}" >/dev/null 2>&1; then
			vm_apt_install "${p#*:}" || vm_die "${p%%:*} missing (install ${p#*:})"
		fi
	done
	VM_BUSYBOX=$(command -v busybox)
	ldd "$VM_BUSYBOX" 2>&1 | grep -q 'not a dynamic executable' ||
		vm_die "$VM_BUSYBOX is not static (install busybox-static)"
}

# --- kernel -------------------------------------------------------------

# The versioned kernel package that linux-image-amd64 depends on.
vm_kernel_pkg() {
	if [ -n "${USTOR_VM_KPKG:-}" ]; then
		echo "$USTOR_VM_KPKG"
		return
	fi
	local p
	p=$(apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
	if [ -z "$p" ] && [ "$(id -u)" -eq 0 ]; then
		apt-get update -q >/dev/null 2>&1
		p=$(apt-cache depends linux-image-amd64 2>/dev/null |
			awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
	fi
	echo "$p"
}

# Download and unpack the kernel into $VM_CACHE/<pkg>/ (once), run depmod.
# Caller holds the cache lock.
vm_fetch_kernel() {
	local pkg=$1 dir=$VM_CACHE/$1
	[ -e "$dir/.complete" ] && return 0
	vm_log "fetching $pkg into $dir"
	local t0 dl
	t0=$(vm_now)
	rm -rf "$dir" "$dir.tmp"
	mkdir -p "$dir.tmp/deb" || return 1
	dl=$dir.tmp/deb
	# apt's sandbox user must be able to write the download dir.
	chmod 0777 "$dl"
	(cd "$dl" && apt-get download linux-image-amd64 "$pkg") >"$dir.tmp/apt.log" 2>&1 || {
		cat "$dir.tmp/apt.log" >&2
		vm_log "apt-get download $pkg failed"
		return 1
	}
	local deb
	deb=$(ls "$dl/${pkg}"_*.deb 2>/dev/null | head -n 1)
	[ -n "$deb" ] || { vm_log "no ${pkg}_*.deb downloaded"; return 1; }
	dpkg-deb -x "$deb" "$dir.tmp/root" || return 1
	local kver
	kver=$(ls "$dir.tmp/root/lib/modules" | head -n 1)
	[ -n "$kver" ] && [ -e "$dir.tmp/root/boot/vmlinuz-$kver" ] ||
		{ vm_log "$deb has no kernel/modules"; return 1; }
	depmod -b "$dir.tmp/root" "$kver" || return 1
	rm -rf "$dl"
	echo "$kver" >"$dir.tmp/kver"
	touch "$dir.tmp/.complete"
	mv "$dir.tmp" "$dir"
	vm_log "kernel $kver ready in $(vm_elapsed "$t0")s"
}

# Booting the bzImage under TCG spends ~6 s in the kernel's own XZ
# decompressor; a kernel built with CONFIG_PVH can instead be booted as the
# uncompressed ELF vmlinux through its PVH entry point. Extract it once into
# KDIR/vmlinux (the payload is the first compressed stream in the bzImage).
vm_extract_vmlinux() { # KDIR KVER
	local kdir=$1 kver=$2 img off
	img=$kdir/root/boot/vmlinuz-$kver
	[ -e "$kdir/vmlinux" ] && return 0
	grep -qx 'CONFIG_PVH=y' "$kdir/root/boot/config-$kver" 2>/dev/null || return 1
	local magic dec
	for magic in '\xfd7zXZ\x00:xz -dc --single-stream' '\x28\xb5\x2f\xfd:zstd -dcq' \
		'\x1f\x8b\x08:gzip -dcq'; do
		dec=${magic#*:}
		command -v "${dec%% *}" >/dev/null 2>&1 || continue
		off=$(LC_ALL=C grep -obUaP "${magic%%:*}" "$img" 2>/dev/null | head -n 1 | cut -d: -f1)
		[ -n "$off" ] || continue
		tail -c +"$((off + 1))" "$img" | $dec >"$kdir/vmlinux.tmp" 2>/dev/null
		if [ "$(head -c 4 "$kdir/vmlinux.tmp" | od -An -c | tr -d ' ')" = '177ELF' ]; then
			mv "$kdir/vmlinux.tmp" "$kdir/vmlinux"
			return 0
		fi
	done
	rm -f "$kdir/vmlinux.tmp"
	return 1
}

# Modules for the initramfs, in load order: the dependency closure of the
# named modules, from modules.dep, skipping built-ins.
vm_module_closure() { # MODDIR NAME...
	local moddir=$1
	shift
	awk -v want="$*" '
		BEGIN { n = split(want, w, " ") }
		{
			sub(":", "", $1)
			path = $1; name = path; sub(".*/", "", name); sub("\\.ko.*$", "", name)
			gsub("-", "_", name)
			bypath[name] = path
			deps[path] = ""
			for (i = 2; i <= NF; i++) deps[path] = deps[path] " " $i
		}
		function visit(p,   d, k, i) {
			if (p in seen) return
			seen[p] = 1
			k = split(deps[p], d, " ")
			for (i = k; i >= 1; i--) visit(d[i])
			print p
		}
		END {
			for (i = 1; i <= n; i++) {
				m = w[i]; gsub("-", "_", m)
				if (m in bypath) visit(bypath[m])
				else missing = missing " " w[i]
			}
			if (missing != "") print "MISSING" missing
		}' "$moddir/modules.dep"
}

# Build the initramfs for the kernel in $1 (cached by content hash).
vm_build_initrd() { # KDIR KVER
	local kdir=$1 kver=$2
	local moddir=$kdir/root/lib/modules/$kver
	local hash out
	hash=$(cat "$VM_LIB_DIR/guest/init" "$VM_LIB_DIR/guest/stage2" "$VM_BUSYBOX" \
		"$VM_LIB_DIR/lib.sh" | md5sum | cut -c1-12)
	out=$kdir/initrd-$hash.cpio.gz
	VM_INITRD=$out
	[ -e "$out" ] && return 0
	local mods
	mods=$(vm_module_closure "$moddir" virtio_pci 9pnet_virtio 9p overlay) || return 1
	case "$mods" in
	*MISSING*) vm_log "modules not in $kver: ${mods##*MISSING}" ;;
	esac
	local tmp
	tmp=$(mktemp -d "$kdir/initrd.XXXXXX") || return 1
	mkdir -p "$tmp/bin" "$tmp/modules" "$tmp/dev" "$tmp/proc" "$tmp/sys"
	cp "$VM_BUSYBOX" "$tmp/bin/busybox"
	cp "$VM_LIB_DIR/guest/init" "$tmp/init"
	cp "$VM_LIB_DIR/guest/stage2" "$tmp/stage2"
	chmod 0755 "$tmp/init" "$tmp/stage2" "$tmp/bin/busybox"
	local m
	: >"$tmp/modules.load"
	while read -r m; do
		case "$m" in MISSING*) continue ;; esac
		cp "$moddir/$m" "$tmp/modules/" || return 1
		basename "$m" >>"$tmp/modules.load"
	done <<<"$mods"
	(cd "$tmp" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
		gzip -1 >"$out.tmp" || { rm -rf "$tmp"; return 1; }
	mv "$out.tmp" "$out"
	rm -rf "$tmp"
	# Images built from other versions of the lab: drop them once they are a
	# day old (a concurrent run from another checkout may still boot one).
	find "$kdir" -maxdepth 1 -name 'initrd-*.cpio.gz' ! -name "initrd-$hash.cpio.gz" -mmin +1440 -delete
}

# Check the host, fetch the kernel and build the initramfs (both cached and
# shared between concurrent runs under a lock), create the work dir.
vm_setup() {
	vm_check_host
	mkdir -p "$VM_CACHE" || vm_die "cannot create $VM_CACHE"
	local pkg kdir lockfd
	pkg=$(vm_kernel_pkg)
	exec {lockfd}>"$VM_CACHE/.lock"
	flock "$lockfd" || vm_die "cannot lock $VM_CACHE/.lock"
	if [ -n "$pkg" ]; then
		if ! vm_fetch_kernel "$pkg"; then
			pkg=
		fi
	fi
	if [ -z "$pkg" ]; then
		# No apt metadata or no mirror: fall back to a kernel already cached.
		pkg=$(cd "$VM_CACHE" && ls -d linux-image-*/.complete 2>/dev/null |
			sed 's,/.complete,,' | sort -V | tail -n 1)
		[ -n "$pkg" ] || { exec {lockfd}>&-; vm_die "cannot get a kernel (apt-get download linux-image-amd64 failed and $VM_CACHE is empty)"; }
		vm_log "using cached $pkg"
	fi
	kdir=$VM_CACHE/$pkg
	VM_KVER=$(cat "$kdir/kver")
	VM_KERNEL=$kdir/root/boot/vmlinuz-$VM_KVER
	if [ "${USTOR_VM_PVH:-1}" = 1 ] && vm_extract_vmlinux "$kdir" "$VM_KVER"; then
		VM_KERNEL=$kdir/vmlinux
	fi
	VM_MODDIR=$kdir/root/lib/modules/$VM_KVER
	vm_build_initrd "$kdir" "$VM_KVER" || { exec {lockfd}>&-; vm_die "cannot build the initramfs"; }
	exec {lockfd}>&-
	if [ -z "$VM_WORKDIR" ]; then
		VM_WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/ustor-vm.XXXXXX") || vm_die "mktemp failed"
		trap vm_cleanup EXIT
		trap 'exit 130' INT TERM
	fi
}

# --- devices ------------------------------------------------------------

vm_size_bytes() { # 64M, 1G, 4096 ...
	local s=$1 n u
	n=${s%[KkMmGgTt]}
	u=${s#"$n"}
	[[ $n =~ ^[0-9]+$ ]] || return 1
	case "$u" in
	"") echo "$n" ;;
	[Kk]) echo $((n << 10)) ;;
	[Mm]) echo $((n << 20)) ;;
	[Gg]) echo $((n << 30)) ;;
	[Tt]) echo $((n << 40)) ;;
	esac
}

# vm_add_nvme [--size SIZE] [--ns N] [--serial S] [--img PATH] [--lbads 9|12]
#             [--mdts N]
# Adds one emulated NVMe controller with N namespaces (default 1), each backed
# by a raw file (created sparse with SIZE, default 64M, unless it exists).
# --mdts sets the controller's MDTS (QEMU's default 7, 512 KiB; 0 no limit).
# With --img, namespace k>1 uses PATH.k. Controller i (from 0) sits at guest
# PCI address 0000:00:1i.0 (00:10.0, 00:11.0, ...).
# Appends the backing files to VM_NVME_IMGS; VM_NVME_LAST holds this
# controller's files.
vm_add_nvme() {
	[ -n "$VM_WORKDIR" ] || vm_die "vm_add_nvme before vm_setup"
	local size=64M ns=1 serial='' img='' lbads=9 mdts=''
	while [ $# -gt 0 ]; do
		case "$1" in
		--mdts) mdts=$2; shift 2 ;;
		--size) size=$2; shift 2 ;;
		--ns) ns=$2; shift 2 ;;
		--serial) serial=$2; shift 2 ;;
		--img) img=$2; shift 2 ;;
		--lbads) lbads=$2; shift 2 ;;
		*) vm_die "vm_add_nvme: unknown option $1" ;;
		esac
	done
	local i=${#VM_NVME_SPECS[@]}
	[ "$i" -lt 16 ] || vm_die "at most 16 NVMe controllers"
	[[ $ns =~ ^[0-9]+$ ]] && [ "$ns" -ge 1 ] && [ "$ns" -le 32 ] || vm_die "bad --ns $ns"
	case "$lbads" in 9 | 12) ;; *) vm_die "bad --lbads $lbads (9 or 12)" ;; esac
	[ -z "$mdts" ] || { [[ $mdts =~ ^[0-9]+$ ]] && [ "$mdts" -le 12 ]; } || vm_die "bad --mdts $mdts"
	local bytes
	bytes=$(vm_size_bytes "$size") || vm_die "bad --size $size"
	serial=${serial:-ustor$i}
	[ -n "$img" ] || img=$VM_WORKDIR/nvme$i.img
	local k f files=()
	for ((k = 1; k <= ns; k++)); do
		f=$img
		[ "$k" -gt 1 ] && f=$img.$k
		case "$f" in *,* | *' '*) vm_die "image path must not contain ',' or spaces: $f" ;; esac
		[ -e "$f" ] || truncate -s "$bytes" "$f" || vm_die "cannot create $f"
		files+=("$f")
	done
	VM_NVME_SPECS+=("$serial|$lbads|$mdts|${files[*]}")
	VM_NVME_IMGS+=("${files[@]}")
	VM_NVME_LAST=("${files[@]}")
}

# A free TCP port on 127.0.0.1 (QEMU binds it; vm_start retries on a race).
vm_free_port() {
	local used=" " port l _i
	# Local ports in use (field 2 of /proc/net/tcp*, "ADDR:PORT" in hex).
	while read -r _i l _; do
		[[ $l == *:* ]] && used+="$((16#${l##*:})) "
	done < <(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null)
	for _i in $(seq 200); do
		port=$((20000 + RANDOM % 40000))
		[[ $used == *" $port "* ]] || { echo "$port"; return 0; }
	done
	return 1
}

# --- running ------------------------------------------------------------

# KVM where it works, else TCG; decided once (VM_ACCEL). A host may offer
# a writable /dev/kvm on which QEMU cannot set up a vCPU (nested
# virtualisation refusing an MSR QEMU writes at reset: "failed to set MSR
# 0x10a"), and QEMU then aborts before the guest starts. A paused machine
# that answers the monitor has passed that point.
vm_pick_accel() {
	[ -n "$VM_ACCEL" ] && return 0
	VM_ACCEL=tcg
	[ -w /dev/kvm ] && "$VM_QEMU" -accel help 2>/dev/null | grep -qx kvm || return 0
	if printf 'info status\nquit\n' |
		timeout 60 "$VM_QEMU" -nodefaults -no-user-config -display none -serial none \
			-machine q35 -m 64 -cpu host -accel kvm -S -monitor stdio 2>/dev/null |
		grep -aq 'VM status'; then
		VM_ACCEL=kvm
	else
		vm_log "KVM is offered but QEMU cannot start a guest with it here: using TCG"
	fi
}

vm_qemu_args() { # fills the array VM_ARGV
	local ctl=$VM_RUNDIR/ctl
	local accel=tcg cpu=max machine=q35
	vm_pick_accel
	if [ "$VM_ACCEL" = kvm ]; then
		accel=kvm
		cpu=host
	fi
	local append="console=ttyS0 panic=-1 ustor.ctl=ctl rdinit=/init"
	# The full kernel log is in ctl/dmesg after a normal run; keep the
	# console (slow under TCG) for warnings unless asked for everything.
	[ "${USTOR_VM_VERBOSE:-0}" = 1 ] || append+=" quiet loglevel=4"
	append+=" i8042.noaux i8042.nokbd i8042.nopnp tsc=reliable"
	# Under TCG on a loaded host the kernel's check that the timer interrupt
	# arrives through the (interrupt-remapped) IO-APIC can time out and panic
	# ("timer doesn't work through Interrupt-remapped IO-APIC"); the timer
	# works, the check is just too impatient for an emulated CPU.
	append+=" no_timer_check"
	VM_ARGV=("$VM_QEMU" -nodefaults -no-user-config -display none -vga none
		-no-reboot -m "$VM_MEM" -smp "$VM_CPUS" -cpu "$cpu" -accel "$accel"
		-kernel "$VM_KERNEL" -initrd "$VM_INITRD"
		-serial "file:$VM_RUNDIR/console.log" -monitor none
		-pidfile "$VM_RUNDIR/qemu.pid")
	if [ "$VM_IOMMU" = 1 ]; then
		machine=q35,kernel-irqchip=split
		append+=" intel_iommu=on iommu=pt"
		VM_ARGV+=(-machine "$machine" -device intel-iommu,intremap=on)
	else
		VM_ARGV+=(-machine "$machine")
	fi
	VM_ARGV+=(-fsdev "local,id=fsroot,path=/,security_model=none,readonly=on,multidevs=remap"
		-device virtio-9p-pci,fsdev=fsroot,mount_tag=hostroot
		-fsdev "local,id=fsctl,path=$ctl,security_model=none,multidevs=remap"
		-device virtio-9p-pci,fsdev=fsctl,mount_tag=ctl)
	local i=0 s
	for s in "${VM_SHARE_PATHS[@]}"; do
		VM_ARGV+=(-fsdev "local,id=fs$i,path=$s,security_model=none,multidevs=remap"
			-device "virtio-9p-pci,fsdev=fs$i,mount_tag=s$i")
		i=$((i + 1))
	done
	if [ "$VM_NET" = 1 ]; then
		local fwd="" p
		for p in "${!VM_FWD_PORTS[@]}"; do
			fwd+=",hostfwd=tcp:127.0.0.1:${VM_FWD_PORTS[$p]}-:${VM_FWD[$p]}"
		done
		VM_ARGV+=(-netdev "user,id=net0,restrict=on$fwd" -device virtio-net-pci,netdev=net0)
	else
		VM_ARGV+=(-nic none)
	fi
	local spec serial lbads mdts files c=0 f nsid
	for spec in "${VM_NVME_SPECS[@]}"; do
		IFS='|' read -r serial lbads mdts files <<<"$spec"
		VM_ARGV+=(-device "nvme,id=nvme$c,serial=$serial,addr=$(printf '0x%x' $((0x10 + c)))${mdts:+,mdts=$mdts}")
		nsid=1
		for f in $files; do
			VM_ARGV+=(-drive "file=$f,if=none,id=nvme${c}n$nsid,format=raw,cache=writeback"
				-device "nvme-ns,drive=nvme${c}n$nsid,bus=nvme$c,nsid=$nsid,logical_block_size=$((1 << lbads)),physical_block_size=$((1 << lbads))")
			nsid=$((nsid + 1))
		done
		c=$((c + 1))
	done
	[ -n "$VM_APPEND" ] && append+=" $VM_APPEND"
	VM_ARGV+=(-append "$append" "${VM_QEMU_ARGS[@]}")
}

# Write the control share: vm.conf, mounts and cmd.sh.
vm_write_ctl() {
	local ctl=$VM_RUNDIR/ctl
	mkdir -p "$ctl"
	# Writable shares at the same path as on the host: the repo, the build
	# dir when it lies outside the repo, and VM_SHARES. Nested ones are
	# dropped (the outer share already shows them).
	local cand=("$VM_REPO") s t keep
	[ -n "${USTOR_BUILDDIR:-}" ] && [ -d "$USTOR_BUILDDIR" ] && cand+=("$(cd "$USTOR_BUILDDIR" && pwd)")
	for s in "${VM_SHARES[@]}"; do
		[ -d "$s" ] || vm_die "share $s is not a directory"
		cand+=("$(cd "$s" && pwd)")
	done
	VM_SHARE_PATHS=()
	for s in "${cand[@]}"; do
		case "$s" in *' '* | *,*) vm_die "cannot share a path with spaces or commas: $s" ;; esac
		keep=1
		for t in "${cand[@]}"; do
			[ "$s" != "$t" ] && [[ $s == "$t"/* ]] && keep=0
		done
		for t in "${VM_SHARE_PATHS[@]}"; do [ "$s" = "$t" ] && keep=0; done
		[ $keep = 1 ] && VM_SHARE_PATHS+=("$s")
	done
	{
		echo "VM_KVER=$VM_KVER"
		echo "VM_NET=$VM_NET"
		echo "VM_MODDIR=$VM_MODDIR"
	} >"$ctl/vm.conf"
	# Mounts sorted by depth so parents come first.
	local i=0 lines=()
	for s in "${VM_SHARE_PATHS[@]}"; do
		lines+=("9p s$i $s")
		i=$((i + 1))
	done
	lines+=("bind /.ustor-vm/ctl $ctl" "robind /.ustor-vm/modules /lib/modules/$VM_KVER")
	local l
	for l in "${lines[@]}"; do
		t=${l##* }
		s=${t//[^\/]/}
		printf '%d %s\n' "${#s}" "$l"
	done | sort -n -s -k1,1 | cut -d' ' -f2- >"$ctl/mounts"
	# The command, run by the guest's bash from $PWD (when visible there).
	{
		echo '#!/bin/bash'
		printf 'export USTOR_VM=1 USTOR_VM_CTL=%q\n' "$ctl"
		[ -n "${USTOR_BUILDDIR:-}" ] && printf 'export USTOR_BUILDDIR=%q\n' "$USTOR_BUILDDIR"
		for s in "${VM_ENV[@]}"; do
			[[ $s == *=* ]] || vm_die "VM_ENV entry '$s' is not NAME=value"
			printf 'export %s=%q\n' "${s%%=*}" "${s#*=}"
		done
		printf 'cd %q 2>/dev/null || cd /\n' "$PWD"
		printf '%q ' "$@"
		echo
	} >"$ctl/cmd.sh"
}

# Start the VM in the background running CMD ARGS...; sets VM_PID,
# VM_RUNDIR, VM_CTL, VM_FWD_PORTS.
vm_start() {
	[ $# -gt 0 ] || vm_die "vm_start: no command"
	[ -n "$VM_WORKDIR" ] || vm_die "vm_start before vm_setup"
	[ -z "$VM_PID" ] || vm_die "a VM is already running (pid $VM_PID)"
	VM_SEQ=$((VM_SEQ + 1))
	VM_RUNDIR=$VM_WORKDIR/run$VM_SEQ
	VM_CTL=$VM_RUNDIR/ctl
	VM_OUTPUT=$VM_CTL/output
	VM_CONSOLE=$VM_RUNDIR/console.log
	VM_DMESG=$VM_CTL/dmesg
	VM_RC=
	VM_BOOT_SECS=
	VM_CMD_SECS=
	mkdir -p "$VM_RUNDIR"
	vm_write_ctl "$@"
	if [ "$VM_NET" = 1 ] && [ ${#VM_FWD[@]} -eq 0 ]; then
		VM_FWD=(4420)
	fi
	local attempt
	for attempt in 1 2 3 4 5; do
		VM_FWD_PORTS=()
		local p
		for p in "${VM_FWD[@]}"; do
			VM_FWD_PORTS+=("$(vm_free_port)") || vm_die "no free TCP port"
		done
		vm_qemu_args
		[ "${USTOR_VM_VERBOSE:-0}" = 1 ] && vm_log "$(printf '%q ' "${VM_ARGV[@]}")"
		VM_T0=$(vm_now)
		"${VM_ARGV[@]}" </dev/null >"$VM_RUNDIR/qemu.log" 2>&1 &
		VM_PID=$!
		# A host-forwarding port taken since we chose it: QEMU exits at once.
		if [ "$VM_NET" = 1 ]; then
			sleep 0.5
			if ! kill -0 "$VM_PID" 2>/dev/null &&
				grep -q 'host forwarding' "$VM_RUNDIR/qemu.log"; then
				wait "$VM_PID" 2>/dev/null
				VM_PID=
				continue
			fi
		fi
		break
	done
	[ -n "$VM_PID" ] || vm_die "could not start QEMU: $(cat "$VM_RUNDIR/qemu.log")"
	local fw=""
	[ ${#VM_FWD_PORTS[@]} -gt 0 ] && fw=", 127.0.0.1:${VM_FWD_PORTS[*]} -> guest ${VM_FWD[*]}"
	vm_log "started (pid $VM_PID, ${#VM_NVME_SPECS[@]} nvme, iommu=$VM_IOMMU, net=$VM_NET$fw)"
}

# Wait until the guest wrote ctl/NAME (a test's own readiness marker) or the
# VM stopped. Returns 0 if the file appeared.
vm_wait_file() { # NAME [TIMEOUT]
	local f=$VM_CTL/$1 deadline=$((SECONDS + ${2:-$VM_TIMEOUT}))
	while [ $SECONDS -lt $deadline ]; do
		[ -e "$f" ] && return 0
		[ -n "$VM_PID" ] && kill -0 "$VM_PID" 2>/dev/null || { [ -e "$f" ]; return; }
		sleep 0.2
	done
	return 1
}

vm_kill() {
	[ -n "$VM_PID" ] || return 0
	if kill -0 "$VM_PID" 2>/dev/null; then
		kill "$VM_PID" 2>/dev/null
		local n=0
		while kill -0 "$VM_PID" 2>/dev/null && [ $n -lt 50 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		kill -9 "$VM_PID" 2>/dev/null
	fi
	wait "$VM_PID" 2>/dev/null
	VM_PID=
}

vm_print_console() {
	{
		echo "----- guest console ($VM_CONSOLE, last 80 lines) -----"
		tail -n 80 "$VM_CONSOLE" 2>/dev/null
		if [ -s "$VM_RUNDIR/qemu.log" ]; then
			echo "----- qemu -----"
			cat "$VM_RUNDIR/qemu.log"
		fi
		if [ -s "$VM_DMESG" ]; then
			echo "----- guest dmesg (last 40 lines) -----"
			tail -n 40 "$VM_DMESG"
		fi
		if [ -s "$VM_CTL/error" ]; then
			echo "----- guest boot error -----"
			cat "$VM_CTL/error"
		fi
		echo "-----"
	} >&2
}

# A host-side check failed with the guest still running: stop it, show what
# the guest and QEMU said (QEMU's own log tells a crash of QEMU from one of
# ours), and fail the test with the message.
vm_host_fail() {
	vm_kill
	vm_print_console
	echo "FAIL: $*"
	exit 1
}

# Wait for the VM started by vm_start to finish (at most VM_TIMEOUT seconds
# from its start, then QEMU is killed). Streams the guest command's output
# to stdout. Sets VM_RC and returns it: the command's exit status, 124 on
# timeout, 125 if the guest died without reporting one. Prints the guest's
# console on failure.
vm_wait() {
	_vm_wait 3>&1
}

_vm_wait() {
	[ -n "$VM_PID" ] || vm_die "vm_wait: no VM running"
	local deadline booted=0 pos=0 timed_out=0
	deadline=$((${VM_T0%.*} + VM_TIMEOUT))
	while kill -0 "$VM_PID" 2>/dev/null; do
		if [ $booted = 0 ] && [ -e "$VM_CTL/booted" ]; then
			booted=1
			VM_BOOT_SECS=$(vm_elapsed "$VM_T0")
			VM_T1=$(vm_now)
		fi
		pos=$(vm_stream_output "$pos")
		if [ "${EPOCHSECONDS:-$(date +%s)}" -ge "$deadline" ]; then
			timed_out=1
			break
		fi
		sleep 0.2
	done
	vm_kill
	pos=$(vm_stream_output "$pos")
	local total
	total=$(vm_elapsed "$VM_T0")
	if [ $booted = 0 ] && [ -e "$VM_CTL/booted" ]; then
		VM_BOOT_SECS=$(vm_elapsed "$VM_T0")
		VM_T1=$(vm_now)
	fi
	[ -n "${VM_T1:-}" ] && [ -n "$VM_BOOT_SECS" ] && VM_CMD_SECS=$(vm_elapsed "$VM_T1")
	if [ $timed_out = 1 ]; then
		vm_log "timeout: killed the VM after ${VM_TIMEOUT}s"
		VM_RC=124
	elif [ -e "$VM_CTL/rc" ]; then
		VM_RC=$(cat "$VM_CTL/rc")
	else
		vm_log "the guest stopped without reporting an exit status"
		VM_RC=125
	fi
	local kboot=""
	[ -s "$VM_CTL/booted" ] && kboot=" (guest uptime at command start $(cut -d' ' -f1 "$VM_CTL/booted")s)"
	vm_log "boot ${VM_BOOT_SECS:-?}s$kboot, command ${VM_CMD_SECS:-?}s, total ${total}s, exit status $VM_RC"
	[ "$VM_RC" = 0 ] || vm_print_console
	VM_T1=
	return "$VM_RC"
}

# Copy what was appended to the guest's output since byte offset $1 to fd 3
# (the caller's stdout; this runs inside $(...)) and echo the new offset.
vm_stream_output() {
	local pos=$1 size
	size=$(stat -c %s "$VM_OUTPUT" 2>/dev/null || echo 0)
	if [ "$size" -gt "$pos" ]; then
		tail -c +"$((pos + 1))" "$VM_OUTPUT" | head -c "$((size - pos))" >&3
		pos=$size
	fi
	echo "$pos"
}

# Boot a VM, run CMD ARGS... in it, wait. Returns the command's status.
vm_run() {
	vm_start "$@" || return 125
	vm_wait
}
