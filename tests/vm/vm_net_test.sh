#!/usr/bin/env bash
# vm_net_test: the VM lab's network option. A guest with user-mode
# networking listens on TCP 4420; the host reaches it through the forwarded
# port the harness picked, which must be bound to 127.0.0.1 only. A message
# goes each way; the guest has no other network than its one virtio NIC.
set -u
here=$(cd "$(dirname "$0")" && pwd)

fail() {
	echo "FAIL: $*"
	exit 1
}

if [ "${1:-}" = --guest ]; then
	[ "$(cat /sys/class/net/eth0/operstate 2>/dev/null)" != down ] || fail "eth0 is down"
	ip -4 addr show dev eth0 | grep -q 'inet 10\.0\.2\.15/24' || fail "eth0 has no 10.0.2.15/24"
	ifs=$(ls /sys/class/net | tr '\n' ' ')
	[ "$ifs" = "eth0 lo " ] || fail "unexpected interfaces: $ifs"
	exec python3 - "$USTOR_VM_CTL" <<'EOF'
import socket, sys, os
ctl = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 4420))
s.listen(1)
s.settimeout(120)
open(os.path.join(ctl, "ready"), "w").close()
c, _ = s.accept()
c.settimeout(30)
data = b""
while not data.endswith(b"\n"):
    chunk = c.recv(100)
    if not chunk:
        break
    data += chunk
c.sendall(b"pong:" + data)
c.close()
with open(os.path.join(ctl, "got"), "wb") as f:
    f.write(data)
print("guest got", data)
EOF
fi

. "$here/lib.sh"
vm_setup
VM_NET=1
VM_FWD=(4420)
VM_TIMEOUT=180
vm_start bash "$here/vm_net_test.sh" --guest
port=${VM_FWD_PORTS[0]}
[[ $port =~ ^[0-9]+$ ]] || fail "no forwarded port"
vm_wait_file ready 150 || { vm_wait; fail "the guest never listened (exit $VM_RC)"; }

# QEMU's listening socket: 127.0.0.1:port, and not on any other address.
hexport=$(printf '%04X' "$port")
listen=$(awk -v p=":$hexport" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { print $2 }' \
	/proc/net/tcp /proc/net/tcp6)
[ "$listen" = "0100007F:$hexport" ] || vm_host_fail "forwarded port $port listens on: ${listen:-nothing}"

msg="ping-$RANDOM-$$"
reply=$(exec 5<>"/dev/tcp/127.0.0.1/$port" && printf '%s\n' "$msg" >&5 && timeout 30 cat <&5) ||
	vm_host_fail "cannot talk to the guest through 127.0.0.1:$port"
vm_wait || fail "guest failed (exit $VM_RC)"
[ "$reply" = "pong:$msg" ] || fail "reply '$reply', expected 'pong:$msg'"
[ "$(cat "$VM_CTL/got")" = "$msg" ] || fail "guest received '$(cat "$VM_CTL/got")'"
echo "127.0.0.1:$port -> guest 4420 ok; boot ${VM_BOOT_SECS}s"
echo PASS
