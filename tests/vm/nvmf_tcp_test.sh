#!/usr/bin/env bash
# nvmf_tcp_test: our NVMe/TCP initiator against the Linux kernel target.
#
# The guest loads nvmet and nvmet-tcp, configures through configfs a
# subsystem (allow_any_host) with one namespace backed by a file in its
# tmpfs and a TCP port on 0.0.0.0:4420, which the harness forwards to a free
# 127.0.0.1 port on the host. From the HOST, ustor-nvmf-check then:
#   1. reads the discovery log and finds the subsystem,
#   2. attaches, checks model and serial of the kernel target, writes a
#      pattern in sizes from 4 KiB (in-capsule) to the largest transfer
#      (R2T/H2CData) and reads it back, without digests,
#   3. the same with header and data digests, and with header digests only,
#   4. keeps I/O in flight while the guest removes the port from the
#      subsystem (the target drops the connections): every outstanding
#      request must fail within 60 s, and a reset must fail cleanly.
# Exits 77 if QEMU cannot run or the guest kernel has no nvmet-tcp.
set -u
here=$(cd "$(dirname "$0")" && pwd)
NQN=nqn.2024-01.io.ustor:nvmf-tcp-test
MODEL=ustor-nvmf-tcp-test
SERIAL=ustor0123456789

fail() {
	echo "FAIL: $*"
	exit 1
}

if [ "${1:-}" = --guest ]; then
	ctl=$USTOR_VM_CTL
	if ! modprobe nvmet || ! modprobe nvmet-tcp; then
		echo "the guest kernel cannot load nvmet/nvmet-tcp" >"$ctl/skip"
		exit 77
	fi
	mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config
	cd /sys/kernel/config/nvmet || exit 1
	mkdir "subsystems/$NQN" || exit 1
	echo 1 >"subsystems/$NQN/attr_allow_any_host"
	echo "$SERIAL" >"subsystems/$NQN/attr_serial"
	[ -e "subsystems/$NQN/attr_model" ] && echo "$MODEL" >"subsystems/$NQN/attr_model"
	truncate -s 64M /tmp/nvmf-ns.img
	ns=subsystems/$NQN/namespaces/1
	mkdir "$ns"
	echo /tmp/nvmf-ns.img >"$ns/device_path"
	# tmpfs has no O_DIRECT.
	echo 1 >"$ns/buffered_io"
	echo 1 >"$ns/enable" || exit 1
	mkdir ports/1
	echo tcp >ports/1/addr_trtype
	echo ipv4 >ports/1/addr_adrfam
	echo 0.0.0.0 >ports/1/addr_traddr
	echo 4420 >ports/1/addr_trsvcid
	ln -s "/sys/kernel/config/nvmet/subsystems/$NQN" "ports/1/subsystems/$NQN" || exit 1
	cat "subsystems/$NQN/attr_model" >"$ctl/model" 2>/dev/null
	touch "$ctl/ready"
	echo "guest: kernel target ready on port 4420"
	# Phase 4: take the subsystem off the port when the host says so.
	for ((i = 0; i < 1500; i++)); do
		[ -e "$ctl/go-outage" ] && break
		[ -e "$ctl/finish" ] && exit 0
		sleep 0.1
	done
	rm "ports/1/subsystems/$NQN"
	echo "guest: subsystem removed from the port"
	touch "$ctl/outage-done"
	for ((i = 0; i < 1500; i++)); do
		[ -e "$ctl/finish" ] && break
		sleep 0.1
	done
	exit 0
fi

. "$here/lib.sh"
vm_setup
builddir=${USTOR_BUILDDIR:-$here/../../build}
check=$builddir/bin/ustor-nvmf-check
[ -x "$check" ] || fail "$check is not built"
VM_NET=1
VM_FWD=(4420)
VM_TIMEOUT=240
vm_start bash "$here/nvmf_tcp_test.sh" --guest
if ! vm_wait_file ready 180; then
	vm_wait
	if [ -e "$VM_CTL/skip" ]; then
		echo "SKIP: $(cat "$VM_CTL/skip")"
		exit 77
	fi
	fail "the guest's target never got ready (exit $VM_RC)"
fi
port=${VM_FWD_PORTS[0]}
trid="trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:$port subnqn:$NQN"
echo "host: target at 127.0.0.1:$port"

run_check() { # NAME ARGS...
	local name=$1 out
	shift
	echo "== $name"
	if ! out=$(timeout 120 "$check" -r "$trid" "$@" 2>&1); then
		echo "$out"
		vm_kill
		fail "$name"
	fi
	echo "$out"
	CHECK_OUT=$out
}

run_check "discovery" --discover
run_check "identify + pattern, no digests" --mib 4
grep -qx "serial: $SERIAL" <<<"$CHECK_OUT" || { vm_kill; fail "serial is not $SERIAL"; }
if [ -s "$VM_CTL/model" ]; then
	grep -qx "model: $MODEL" <<<"$CHECK_OUT" || { vm_kill; fail "model is not $MODEL"; }
fi
grep -q "ioccsz" <<<"$CHECK_OUT" || { vm_kill; fail "no identify data"; }
run_check "pattern, header and data digests" --hdgst --ddgst --mib 4
run_check "pattern, header digests" --hdgst --mib 1
run_check "pattern, data digests" --ddgst --mib 1

echo "== target going away mid-I/O"
rm -f "$VM_CTL/io-running"
timeout 150 "$check" -r "$trid" --outage "$VM_CTL/io-running" >"$VM_RUNDIR/outage.log" 2>&1 &
cpid=$!
for ((i = 0; i < 300; i++)); do
	[ -e "$VM_CTL/io-running" ] && break
	kill -0 $cpid 2>/dev/null || break
	sleep 0.2
done
[ -e "$VM_CTL/io-running" ] || { cat "$VM_RUNDIR/outage.log"; vm_kill; fail "I/O never started"; }
touch "$VM_CTL/go-outage"
wait $cpid
rc=$?
cat "$VM_RUNDIR/outage.log"
[ $rc = 0 ] || { vm_kill; fail "outage handling (exit $rc)"; }
# The initiator can see the connections drop before the guest's touch of
# outage-done lands (9p, TCG): wait for it rather than race it.
vm_wait_file outage-done 30 || { vm_kill; fail "the guest did not remove the port"; }

touch "$VM_CTL/finish"
vm_wait
[ "$VM_RC" = 0 ] || fail "guest exited $VM_RC"
echo "PASS: nvmf_tcp_test (boot ${VM_BOOT_SECS:-?}s)"
