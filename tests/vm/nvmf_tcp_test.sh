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
# Then the guest puts the subsystem back on the port and, from the host,
#   5. ustor-perf -w verify (queue depth 8) runs on the bdev of
#      bdev_nvme_attach_controller (ctrlr_loss_timeout_sec 60,
#      reconnect_delay_sec 1) while the guest takes the subsystem off the
#      port for 6 s and puts it back: the I/O in flight fails (errors seen),
#      new I/O is held, attempts are refused meanwhile, the controller
#      reconnects, I/O goes on for at least 8 s more and every block read
#      back is what was written (no miscompare).
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

# Guest: wait up to 150 s for the host to create $ctl/NAME; 1 when "finish"
# came first or the time ran out.
wait_ctl() { # NAME
	local i
	for ((i = 0; i < 1500; i++)); do
		[ -e "$ctl/$1" ] && return 0
		[ -e "$ctl/finish" ] && return 1
		sleep 0.1
	done
	return 1
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
	wait_ctl go-outage || exit 0
	rm "ports/1/subsystems/$NQN"
	echo "guest: subsystem removed from the port"
	touch "$ctl/outage-done"
	# Phase 5: back on the port; then off for 6 s and back, when asked.
	wait_ctl restore || exit 0
	ln -s "/sys/kernel/config/nvmet/subsystems/$NQN" "ports/1/subsystems/$NQN" || exit 1
	echo "guest: subsystem back on the port"
	touch "$ctl/restored"
	wait_ctl go-outage2 || exit 0
	rm "ports/1/subsystems/$NQN"
	echo "guest: subsystem removed from the port for 6 s"
	sleep 6
	ln -s "/sys/kernel/config/nvmet/subsystems/$NQN" "ports/1/subsystems/$NQN" || exit 1
	echo "guest: subsystem back on the port"
	touch "$ctl/restored2"
	wait_ctl finish
	exit 0
fi

. "$here/lib.sh"
vm_setup
builddir=${USTOR_BUILDDIR:-$here/../../build}
check=$builddir/bin/ustor-nvmf-check
[ -x "$check" ] || fail "$check is not built"
VM_NET=1
VM_FWD=(4420)
VM_TIMEOUT=360
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
		vm_host_fail "$name"
	fi
	echo "$out"
	CHECK_OUT=$out
}

run_check "discovery" --discover
run_check "identify + pattern, no digests" --mib 4
grep -qx "serial: $SERIAL" <<<"$CHECK_OUT" || vm_host_fail "serial is not $SERIAL"
if [ -s "$VM_CTL/model" ]; then
	grep -qx "model: $MODEL" <<<"$CHECK_OUT" || vm_host_fail "model is not $MODEL"
fi
grep -q "ioccsz" <<<"$CHECK_OUT" || vm_host_fail "no identify data"
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
[ -e "$VM_CTL/io-running" ] || { cat "$VM_RUNDIR/outage.log"; vm_host_fail "I/O never started"; }
touch "$VM_CTL/go-outage"
wait $cpid
rc=$?
cat "$VM_RUNDIR/outage.log"
[ $rc = 0 ] || vm_host_fail "outage handling (exit $rc)"
# The initiator can see the connections drop before the guest's touch of
# outage-done lands (9p, TCG): wait for it rather than race it.
vm_wait_file outage-done 30 || vm_host_fail "the guest did not remove the port"

echo "== bdev_nvme reconnect: the target goes away for 6 s under ustor-perf -w verify"
touch "$VM_CTL/restore"
vm_wait_file restored 30 || vm_host_fail "the guest did not restore the port"
perf=$builddir/bin/ustor-perf
conf=$VM_RUNDIR/reconnect.json
plog=$VM_RUNDIR/reconnect.log
presult=$VM_RUNDIR/reconnect-result.json
cat >"$conf" <<EOF
{"subsystems": [{"subsystem": "bdev", "config": [
  {"method": "bdev_nvme_set_options", "params": {"ctrlr_loss_timeout_sec": 60,
   "reconnect_delay_sec": 1}},
  {"method": "bdev_nvme_attach_controller", "params": {"name": "Nvme0", "trtype": "TCP",
   "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": "$port", "subnqn": "$NQN"}}]}]}
EOF
timeout 150 "$perf" --no-huge -c "$conf" -b Nvme0n1 -w verify -q 8 -o 16k -t 30 \
	--log-level notice -j "$presult" >"$plog" 2>&1 &
ppid=$!
for ((i = 0; i < 300; i++)); do
	grep -q "attached with" "$plog" && break
	kill -0 $ppid 2>/dev/null || break
	sleep 0.2
done
grep -q "attached with" "$plog" || { cat "$plog"; vm_host_fail "ustor-perf did not attach"; }
sleep 4
touch "$VM_CTL/go-outage2"
vm_wait_file restored2 60 || { cat "$plog"; vm_host_fail "the guest did not restore the port"; }
restored_at=$(date +%s)
wait $ppid
prc=$?
ended_at=$(date +%s)
cat "$plog"
echo "result: $(cat "$presult" 2>/dev/null)"
# Exit 1 is expected: the I/O in flight when the target went away failed.
[ $prc = 1 ] || vm_host_fail "ustor-perf exited $prc (expected 1: errors seen)"
grep -q "controller lost" "$plog" || vm_host_fail "the failure was not noticed"
grep -q "reconnect attempt 1 failed" "$plog" ||
	vm_host_fail "no refused reconnect attempt while the target was away"
grep -q "reconnected after" "$plog" || vm_host_fail "the controller did not reconnect"
! grep -q "was removed during the run" "$plog" || vm_host_fail "the bdev was removed"
python3 - "$presult" <<'PY' || vm_host_fail "reconnect: errors or miscompares"
import json, sys
r = json.load(open(sys.argv[1]))
errors, miscompares = r["errors"], r["miscompares"]
print(f"errors {errors}, miscompares {miscompares}")
sys.exit(0 if errors >= 1 and miscompares == 0 else 1)
PY
[ $((ended_at - restored_at)) -ge 8 ] ||
	vm_host_fail "the run ended too soon after the target came back"

touch "$VM_CTL/finish"
vm_wait
[ "$VM_RC" = 0 ] || fail "guest exited $VM_RC"
echo "PASS: nvmf_tcp_test (boot ${VM_BOOT_SECS:-?}s)"
