# Sourced by the FUSE shell tests (not a test itself: not executable).
# fuse_require: skip (exit 77) unless ustor-mount is built in $BUILDDIR and
# this machine can mount FUSE file systems as root. Sets MOUNT.
# The caller defines skip() (exit 77 with the reason).

fuse_require() {
	MOUNT=$BUILDDIR/bin/ustor-mount
	[ -x "$MOUNT" ] || skip "ustor-mount is not built in $BUILDDIR"
	[ -e /dev/fuse ] || skip "no /dev/fuse on this machine"
	command -v fusermount3 >/dev/null || skip "fusermount3 is not installed (Debian package fuse3)"
	[ "$(id -u)" = 0 ] || skip "the FUSE tests mount file systems: run as root"
}
