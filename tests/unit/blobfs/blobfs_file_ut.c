/*
 * Unit tests for blobfs file contents and attributes (blobfs/) on a malloc
 * bdev, threads polled by hand: byte-granular and sparse I/O, reads that
 * stop at EOF, truncate down and up, fallocate (KEEP_SIZE, PUNCH_HOLE),
 * O_TRUNC and O_APPEND, contents across a remount and across the loss of
 * the device; timestamps, chmod and chown with their set-user-ID and
 * set-group-ID rules, explicit times, xattrs, the sticky directory and
 * permission checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "ustor/blobfs.h"
#include "blobfs_test.h"
#include "ut_threads.h"

#include "../../../bdev/passthru/bdev_passthru.h"

/* ---- data -------------------------------------------------------------------------------------- */

static void test_io(void **state)
{
	struct ust_blobfs_file *fh;
	struct ust_blobfs_attr a;
	uint64_t f, before;
	size_t big = 300000;
	uint8_t *w = malloc(big), *r = malloc(big), *z = calloc(1, big);

	(void)state;
	bft_fill(w, big, 7);
	assert_int_equal(bft_create(BFT_ROOT, "f", &fh, &f), 0);
	/* unaligned writes, across io units and clusters */
	assert_int_equal(bft_pwrite(fh, w, 1000, 3), 1000);
	assert_int_equal(bft_pwrite(fh, w + 1000, big - 1003, 1003), big - 1003);
	assert_int_equal(bft_pread(fh, r, big, 3), big - 3);
	assert_memory_equal(r, w, big - 3);
	assert_int_equal(bft_pread(fh, r, 10, 0), 10);
	assert_memory_equal(r, z, 3);
	/* reads stop at EOF */
	assert_int_equal(bft_pread(fh, r, 100, big - 10), 10);
	assert_int_equal(bft_pread(fh, r, 100, big + 10), 0);
	/* overwrite in the middle, aligned */
	assert_int_equal(bft_pwrite(fh, z, 4096, 8192), 4096);
	assert_int_equal(bft_pread(fh, r, 3 * 4096, 4096), 3 * 4096);
	assert_memory_equal(r + 4096, z, 4096);
	assert_memory_equal(r, w + 4096 - 3, 4096);
	/* sparse: a write far away allocates only its cluster */
	before = bft_free_clusters();
	assert_int_equal(bft_pwrite(fh, w, 100, 5u << 20), 100);
	assert_int_equal(before - bft_free_clusters(), 1);
	assert_int_equal(bft_getattr(f, &a), 0);
	assert_int_equal(a.size, (5u << 20) + 100);
	assert_int_equal(bft_pread(fh, r, 4096, 4u << 20), 4096);
	assert_memory_equal(r, z, 4096);
	/* truncate down in the middle of an io unit, then up: the tail reads as zeros */
	assert_int_equal(bft_truncate(f, 5000), 0);
	assert_int_equal(bft_r.a.size, 5000);
	assert_int_equal(bft_truncate(f, 9000), 0);
	assert_int_equal(bft_pread(fh, r, 9000, 0), 9000);
	assert_memory_equal(r + 3, w, 4997);
	assert_memory_equal(r + 5000, z, 4000);
	/*
	 * fallocate: size grows (not with KEEP_SIZE), the range's clusters are
	 * allocated (64 KiB: the file has cluster 0, 200000 bytes need 4, 300000
	 * need 5); punch hole zeroes
	 */
	before = bft_free_clusters();
	ust_blobfs_fallocate(bft_fs, &bft_ctx, fh, 0, 0, 200000, bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	assert_int_equal(bft_getattr(f, &a), 0);
	assert_int_equal(a.size, 200000);
	assert_int_equal(before - bft_free_clusters(), 3);
	ust_blobfs_fallocate(bft_fs, &bft_ctx, fh, UST_BLOBFS_FALLOC_KEEP_SIZE, 0, 300000, bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	assert_int_equal(bft_getattr(f, &a), 0);
	assert_int_equal(a.size, 200000);
	assert_int_equal(before - bft_free_clusters(), 4);
	/* the allocated range still reads as zeros past the old data */
	assert_int_equal(bft_pread(fh, r, 4096, 150000), 4096);
	assert_memory_equal(r, z, 4096);
	ust_blobfs_fallocate(bft_fs, &bft_ctx, fh, UST_BLOBFS_FALLOC_PUNCH_HOLE, 0, 10, bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, -EOPNOTSUPP);
	ust_blobfs_fallocate(bft_fs, &bft_ctx, fh, UST_BLOBFS_FALLOC_PUNCH_HOLE | UST_BLOBFS_FALLOC_KEEP_SIZE,
			     10, 100, bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	assert_int_equal(bft_pread(fh, r, 200, 0), 200);
	assert_memory_equal(r + 3, w, 7);
	assert_memory_equal(r + 10, z, 100);
	assert_memory_equal(r + 110, w + 107, 90);
	assert_int_equal(bft_fsync(fh), 0);
	assert_int_equal(bft_release(fh), 0);
	/* remount: content and size persist */
	assert_int_equal(bft_unmount(), 0);
	assert_int_equal(bft_mount("M0"), 0);
	assert_int_equal(bft_lookup(BFT_ROOT, "f", &f), 0);
	assert_int_equal(bft_r.e.attr.size, 200000);
	assert_int_equal(bft_open(f, O_RDONLY, &fh), 0);
	assert_int_equal(bft_pread(fh, r, 5000, 0), 5000);
	assert_memory_equal(r + 110, w + 107, 4890);
	assert_int_equal(bft_pwrite(fh, w, 10, 0), -EBADF);
	assert_int_equal(bft_release(fh), 0);
	/* O_TRUNC and O_APPEND */
	assert_int_equal(bft_open(f, O_WRONLY | O_TRUNC | O_APPEND, &fh), 0);
	assert_int_equal(bft_getattr(f, &a), 0);
	assert_int_equal(a.size, 0);
	assert_int_equal(bft_pwrite(fh, w, 10, 0), 10);
	assert_int_equal(bft_pwrite(fh, w, 10, 0), 10);
	assert_int_equal(bft_getattr(f, &a), 0);
	assert_int_equal(a.size, 20);
	assert_int_equal(bft_release(fh), 0);
	free(w);
	free(r);
	free(z);
}

/* ---- attributes and permissions --------------------------------------------------------------- */

static void test_attrs_and_times(void **state)
{
	struct ust_blobfs_ctx user = {.uid = 1000, .gid = 1000};
	struct ust_blobfs_ctx other = {.uid = 2000, .gid = 2000};
	struct ust_blobfs_file *fh, *ffh;
	struct ust_blobfs_attr a, b;
	uint64_t f, d;
	char buf[64];

	(void)state;
	assert_int_equal(bft_create_ctx(&user, BFT_ROOT, "f", O_CREAT | O_RDWR, &ffh, &f), 0);
	fh = ffh;
	assert_int_equal(bft_getattr(f, &a), 0);
	assert_int_equal(a.uid, 1000);
	/* mtime and ctime move on write, in nanoseconds */
	assert_int_equal(bft_pwrite_ctx(&user, fh, "x", 1, 0), 1);
	assert_int_equal(bft_getattr(f, &b), 0);
	assert_true(b.mtime.tv_sec > a.mtime.tv_sec ||
		    (b.mtime.tv_sec == a.mtime.tv_sec && b.mtime.tv_nsec > a.mtime.tv_nsec));
	assert_true(b.ctime.tv_sec == b.mtime.tv_sec && b.ctime.tv_nsec == b.mtime.tv_nsec);
	/* chmod: owner yes, someone else EPERM */
	a.mode = 06755;
	assert_int_equal(bft_setattr_ctx(&other, f, &a, UST_BLOBFS_SET_MODE), -EPERM);
	a.mode = 06755;
	assert_int_equal(bft_setattr_ctx(&user, f, &a, UST_BLOBFS_SET_MODE), 0);
	assert_int_equal(a.mode, S_IFREG | 06755);
	/* a write by a non-owner clears set-user-ID and set-group-ID */
	assert_int_equal(bft_pwrite_ctx(&other, fh, "y", 1, 1), 1);
	assert_int_equal(bft_getattr(f, &a), 0);
	assert_int_equal(a.mode, S_IFREG | 0755);
	/* chown: only root changes the owner; it clears set-user-ID */
	a.mode = 04755;
	assert_int_equal(bft_setattr_ctx(&user, f, &a, UST_BLOBFS_SET_MODE), 0);
	a.uid = 3000;
	assert_int_equal(bft_setattr_ctx(&user, f, &a, UST_BLOBFS_SET_UID), -EPERM);
	a.uid = 3000;
	assert_int_equal(bft_setattr_ctx(&bft_ctx, f, &a, UST_BLOBFS_SET_UID), 0);
	assert_int_equal(a.uid, 3000);
	assert_int_equal(a.mode, S_IFREG | 0755);
	/* explicit times: owner or root only; ctime moves */
	b = a;
	a.atime.tv_sec = 1000;
	a.atime.tv_nsec = 123456789;
	a.mtime.tv_sec = 2000;
	a.mtime.tv_nsec = 987654321;
	assert_int_equal(bft_setattr_ctx(&other, f, &a, UST_BLOBFS_SET_ATIME | UST_BLOBFS_SET_MTIME), -EPERM);
	a.atime.tv_sec = 1000;
	a.atime.tv_nsec = 123456789;
	a.mtime.tv_sec = 2000;
	a.mtime.tv_nsec = 987654321;
	assert_int_equal(bft_setattr_ctx(&bft_ctx, f, &a, UST_BLOBFS_SET_ATIME | UST_BLOBFS_SET_MTIME), 0);
	assert_int_equal(a.mtime.tv_sec, 2000);
	assert_int_equal(a.mtime.tv_nsec, 987654321);
	assert_true(a.ctime.tv_sec >= b.ctime.tv_sec);
	/* truncate of a directory */
	assert_int_equal(bft_mkdir(BFT_ROOT, "d", &d), 0);
	assert_int_equal(bft_truncate(d, 0), -EISDIR);
	/* xattrs: user.* only */
	ust_blobfs_setxattr(bft_fs, &bft_ctx, f, "user.k", "v1", 2, 0, bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	ust_blobfs_setxattr(bft_fs, &bft_ctx, f, "user.k", "v2", 2, UST_BLOBFS_XATTR_CREATE, bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, -EEXIST);
	ust_blobfs_setxattr(bft_fs, &bft_ctx, f, "user.n", "v2", 2, UST_BLOBFS_XATTR_REPLACE, bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, -ENODATA);
	ust_blobfs_setxattr(bft_fs, &bft_ctx, f, "trusted.k", "v", 1, 0, bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, -ENOTSUP);
	ust_blobfs_getxattr(bft_fs, &bft_ctx, f, "user.k", buf, 1, bft_size_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.n, -ERANGE);
	ust_blobfs_getxattr(bft_fs, &bft_ctx, f, "user.k", buf, sizeof(buf), bft_size_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.n, 2);
	assert_memory_equal(buf, "v1", 2);
	ust_blobfs_listxattr(bft_fs, &bft_ctx, f, buf, sizeof(buf), bft_size_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.n, 7);
	assert_string_equal(buf, "user.k");
	ust_blobfs_removexattr(bft_fs, &bft_ctx, f, "user.k", bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	ust_blobfs_getxattr(bft_fs, &bft_ctx, f, "user.k", buf, sizeof(buf), bft_size_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.n, -ENODATA);
	/* sticky directory: only owners may remove */
	a.mode = 01777;
	assert_int_equal(bft_setattr_ctx(&bft_ctx, d, &a, UST_BLOBFS_SET_MODE), 0);
	assert_int_equal(bft_create_ctx(&user, d, "mine", O_CREAT | O_RDWR, &fh, NULL), 0);
	assert_int_equal(bft_release(fh), 0);
	ust_blobfs_unlink(bft_fs, &other, d, "mine", bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, -EPERM);
	ust_blobfs_unlink(bft_fs, &user, d, "mine", bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	/* permission checks when asked for */
	other.check_access = true;
	ust_blobfs_open(bft_fs, &other, f, O_WRONLY, bft_open_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, -EACCES);
	ust_blobfs_mkdir(bft_fs, &other, BFT_ROOT, "nope", 0755, bft_entry_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, -EACCES);
	assert_int_equal(bft_release(ffh), 0);
}

/* Set mode on f as root and check it took. */
static void set_mode(uint64_t f, uint32_t mode)
{
	struct ust_blobfs_attr a = {.mode = mode};

	assert_int_equal(bft_setattr_ctx(&bft_ctx, f, &a, UST_BLOBFS_SET_MODE), 0);
	assert_int_equal(a.mode, S_IFREG | mode);
}

static uint32_t mode_of(uint64_t f)
{
	struct ust_blobfs_attr a;

	assert_int_equal(bft_getattr(f, &a), 0);
	return a.mode & 07777;
}

/*
 * kill_suidgid (a caller without CAP_FSETID, FUSE's KILL_SUIDGID): its
 * write, truncate and open(O_TRUNC) drop set-user-ID, and set-group-ID
 * only with group execute; root's own changes keep them (durability:
 * blobfs_crash_ut test_kill_suidgid_durable).
 */
static void test_kill_suidgid(void **state)
{
	struct ust_blobfs_ctx owner = {.uid = 1000, .gid = 1000, .kill_suidgid = true};
	struct ust_blobfs_ctx root_kill = {.uid = 0, .gid = 0, .kill_suidgid = true};
	struct ust_blobfs_attr a;
	struct ust_blobfs_file *fh;
	uint64_t f;

	(void)state;
	assert_int_equal(bft_create_ctx(&owner, BFT_ROOT, "f", O_CREAT | O_RDWR, &fh, &f), 0);
	/* root without the flag keeps them; the owner's write without it too (blobfs's own rule) */
	set_mode(f, 06755);
	assert_int_equal(bft_pwrite(fh, "r", 1, 0), 1);
	owner.kill_suidgid = false;
	assert_int_equal(bft_pwrite_ctx(&owner, fh, "o", 1, 1), 1);
	assert_int_equal(mode_of(f), 06755);
	/* the flag: a write drops both with group execute */
	owner.kill_suidgid = true;
	assert_int_equal(bft_pwrite_ctx(&owner, fh, "k", 1, 2), 1);
	assert_int_equal(mode_of(f), 0755);
	/* without group execute set-group-ID stays, whoever asks (root with the flag too) */
	set_mode(f, 06745);
	assert_int_equal(bft_pwrite_ctx(&root_kill, fh, "k", 1, 3), 1);
	assert_int_equal(mode_of(f), 02745);
	/* truncate: only with the flag */
	set_mode(f, 06755);
	a.size = 2;
	assert_int_equal(bft_setattr_ctx(&bft_ctx, f, &a, UST_BLOBFS_SET_SIZE), 0);
	assert_int_equal(mode_of(f), 06755);
	a.size = 1;
	assert_int_equal(bft_setattr_ctx(&owner, f, &a, UST_BLOBFS_SET_SIZE), 0);
	assert_int_equal(mode_of(f), 0755);
	assert_int_equal(bft_release(fh), 0);
	/* open(O_TRUNC), of a file with data and of an empty one */
	for (int empty = 0; empty < 2; empty++) {
		set_mode(f, 06755);
		ust_blobfs_open(bft_fs, &bft_ctx, f, O_WRONLY | O_TRUNC, bft_open_cb, bft_begin());
		bft_finish();
		assert_int_equal(bft_r.rc, 0);
		assert_int_equal(bft_release(bft_r.fh), 0);
		assert_int_equal(mode_of(f), 06755);
		if (!empty) {
			assert_int_equal(bft_open(f, O_RDWR, &fh), 0);
			assert_int_equal(bft_pwrite(fh, "data", 4, 0), 4);
			assert_int_equal(bft_release(fh), 0);
		}
		ust_blobfs_open(bft_fs, &owner, f, O_WRONLY | O_TRUNC, bft_open_cb, bft_begin());
		bft_finish();
		assert_int_equal(bft_r.rc, 0);
		assert_int_equal(bft_release(bft_r.fh), 0);
		assert_int_equal(mode_of(f), 0755);
	}
}

/*
 * The device goes away under a mounted file system (its bdev removed): the
 * unmount lets go without its syncs (-ENODEV), which lets the removal
 * finish, and the next mount of the same bytes has every fsynced file.
 * The bytes are M0's, under a passthru "P0" that is deleted and created
 * again.
 */
static void test_device_gone(void **state)
{
	struct ust_blobfs_opts o;
	struct ust_blobfs_file *fh;
	uint8_t w[8192], r[8192];
	uint64_t f, g;
	int deleted = 0;

	(void)state;
	assert_int_equal(bft_unmount(), 0);
	assert_int_equal(ust_bdev_passthru_create("M0", "P0", NULL), 0);
	ust_blobfs_opts_init(&o);
	ust_blobfs_format("P0", &o, NULL, bft_fs_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	bft_fs = bft_r.fs;
	bft_fill(w, sizeof(w), 41);
	assert_int_equal(bft_create(BFT_ROOT, "f", &fh, &f), 0);
	assert_int_equal(bft_pwrite(fh, w, sizeof(w), 0), sizeof(w));
	assert_int_equal(bft_fsync(fh), 0);
	assert_int_equal(bft_release(fh), 0);
	/* written, never synced: its size may not survive */
	assert_int_equal(bft_create(BFT_ROOT, "g", &fh, &g), 0);
	assert_int_equal(bft_pwrite(fh, w, 100, 0), 100);
	assert_int_equal(bft_release(fh), 0);

	/* The removal waits for the file system to let go of P0. */
	assert_int_equal(ust_bdev_passthru_delete("P0", bft_done_cb, &deleted), 0);
	ut_threads_poll();
	assert_int_equal(deleted, 0);
	assert_int_equal(bft_unmount(), -ENODEV);
	bft_fs = NULL;
	ut_threads_poll();
	assert_int_equal(deleted, 1);

	assert_int_equal(ust_bdev_passthru_create("M0", "P0", NULL), 0);
	assert_int_equal(bft_mount("P0"), 0);
	assert_int_equal(bft_lookup(BFT_ROOT, "f", &f), 0);
	assert_int_equal(bft_open(f, O_RDONLY, &fh), 0);
	assert_int_equal(bft_pread(fh, r, sizeof(r), 0), sizeof(r));
	assert_memory_equal(r, w, sizeof(w));
	assert_int_equal(bft_release(fh), 0);
	assert_int_equal(bft_lookup(BFT_ROOT, "g", &g), 0);
	assert_int_equal(bft_unmount(), 0);
	deleted = 0;
	assert_int_equal(ust_bdev_passthru_delete("P0", bft_done_cb, &deleted), 0);
	ut_threads_poll();
	assert_int_equal(deleted, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_io, bft_make_fs, bft_drop_fs),
		cmocka_unit_test_setup_teardown(test_attrs_and_times, bft_make_fs, bft_drop_fs),
		cmocka_unit_test_setup_teardown(test_kill_suidgid, bft_make_fs, bft_drop_fs),
		cmocka_unit_test_setup_teardown(test_device_gone, bft_make_fs, bft_drop_fs),
	};

	return cmocka_run_group_tests(tests, bft_group_setup, bft_group_teardown);
}
