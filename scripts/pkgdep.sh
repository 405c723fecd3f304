#!/bin/sh
# pkgdep.sh: install the Debian packages that ustor's build, tests and
# benchmarks need. Idempotent and non-interactive; run as root.
#
#   scripts/pkgdep.sh              install everything missing
#   scripts/pkgdep.sh --if-missing as above, but silent when nothing is missing
#   scripts/pkgdep.sh --check      exit 1 (listing them) if any are missing
#   scripts/pkgdep.sh --list       print the package list
set -e

# Build: compiler, pkg-config and the libraries ./configure looks for.
BUILD_PKGS="gcc make pkg-config libc6-dev libdpdk-dev libnuma-dev libjansson-dev \
libfuse3-dev libxxhash-dev libcmocka-dev liburing-dev libaio-dev libisal-dev \
libibverbs-dev librdmacm-dev"
# Run and test: the RPC client, FUSE tools, peers and the VM lab.
TEST_PKGS="python3 fuse3 util-linux procps iproute2 kmod pciutils xz-utils \
qemu-system-x86 busybox-static cpio fio nvme-cli e2fsprogs sqlite3 git"

PKGS="$BUILD_PKGS $TEST_PKGS"

missing_pkgs() {
	for p in $PKGS; do
		# dpkg-query prints "install ok installed" for an installed package.
		s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
		case "$s" in
		*"ok installed"*) ;;
		*) printf '%s ' "$p" ;;
		esac
	done
}

mode=install
case "$1" in
--if-missing) mode=if-missing ;;
--check) mode=check ;;
--list) echo "$PKGS"; exit 0 ;;
"") ;;
*) echo "usage: $0 [--if-missing|--check|--list]" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "pkgdep.sh: not a Debian system; install the equivalents of: $PKGS" >&2
	[ "$mode" = if-missing ] && exit 0
	exit 1
fi

missing=$(missing_pkgs)
if [ -z "$missing" ]; then
	[ "$mode" = install ] && echo "pkgdep.sh: all packages installed"
	exit 0
fi
if [ "$mode" = check ]; then
	echo "pkgdep.sh: missing: $missing" >&2
	exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "pkgdep.sh: missing packages: $missing" >&2
	echo "pkgdep.sh: run as root (or: sudo $0) to install them" >&2
	exit 1
fi

echo "pkgdep.sh: installing: $missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
