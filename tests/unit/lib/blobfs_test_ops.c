/*
 * The synchronous blobfs calls and fixtures of tests/unit/lib/blobfs_test.h
 * for the tests on hand-polled threads (ut_threads.h): each call starts the
 * asynchronous operation with bft_r as its record, polls every thread until
 * idle, fails the test if the callback never ran, and returns its status.
 * The fixtures make a 32 MiB malloc bdev "M0" with a fresh blobfs on it per
 * test and drop it (and "M1", the crash copy) afterwards, whatever the test
 * left mounted.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ustor/bdev.h"
#include "ustor/thread.h"
#include "blob_test.h"
#include "blobfs_test.h"
#include "ut_threads.h"

#include "../../../bdev/malloc/bdev_malloc.h"

#define BLOCK 512

struct ust_blobfs *bft_fs;
const struct ust_blobfs_ctx bft_ctx = {.uid = 0, .gid = 0};

struct bft_res bft_r;

struct bft_res *bft_begin(void)
{
	memset(&bft_r, 0, sizeof(bft_r));
	return &bft_r;
}

void bft_finish(void)
{
	ut_threads_poll();
	assert_true(bft_r.done);
}

int bft_format(void)
{
	struct ust_blobfs_opts o;

	ust_blobfs_opts_init(&o);
	o.cluster_size = 64u << 10;
	ust_blobfs_format("M0", &o, NULL, bft_fs_cb, bft_begin());
	bft_finish();
	bft_fs = bft_r.fs;
	return bft_r.rc;
}

int bft_mount(const char *bdev)
{
	ust_blobfs_mount(bdev, NULL, bft_fs_cb, bft_begin());
	bft_finish();
	bft_fs = bft_r.fs;
	return bft_r.rc;
}

int bft_unmount(void)
{
	ust_blobfs_unmount(bft_fs, bft_op_cb, bft_begin());
	bft_finish();
	if (bft_r.rc == 0) {
		bft_fs = NULL;
	}
	return bft_r.rc;
}

int bft_lookup(uint64_t parent, const char *name, uint64_t *ino)
{
	ust_blobfs_lookup(bft_fs, &bft_ctx, parent, name, bft_entry_cb, bft_begin());
	bft_finish();
	if (ino != NULL) {
		*ino = bft_r.e.ino;
	}
	return bft_r.rc;
}

int bft_getattr(uint64_t ino, struct ust_blobfs_attr *a)
{
	ust_blobfs_getattr(bft_fs, &bft_ctx, ino, bft_attr_cb, bft_begin());
	bft_finish();
	if (a != NULL) {
		*a = bft_r.a;
	}
	return bft_r.rc;
}

int bft_mkdir(uint64_t parent, const char *name, uint64_t *ino)
{
	ust_blobfs_mkdir(bft_fs, &bft_ctx, parent, name, 0755, bft_entry_cb, bft_begin());
	bft_finish();
	if (ino != NULL) {
		*ino = bft_r.e.ino;
	}
	return bft_r.rc;
}

int bft_mknod(uint64_t parent, const char *name, uint32_t mode, uint64_t rdev, uint64_t *ino)
{
	ust_blobfs_mknod(bft_fs, &bft_ctx, parent, name, mode, rdev, bft_entry_cb, bft_begin());
	bft_finish();
	if (ino != NULL) {
		*ino = bft_r.e.ino;
	}
	return bft_r.rc;
}

int bft_create_ctx(const struct ust_blobfs_ctx *ctx, uint64_t parent, const char *name, int flags,
		   struct ust_blobfs_file **fh, uint64_t *ino)
{
	ust_blobfs_create(bft_fs, ctx, parent, name, 0644, flags, bft_create_cb, bft_begin());
	bft_finish();
	if (fh != NULL) {
		*fh = bft_r.fh;
	}
	if (ino != NULL) {
		*ino = bft_r.e.ino;
	}
	return bft_r.rc;
}

int bft_create(uint64_t parent, const char *name, struct ust_blobfs_file **fh, uint64_t *ino)
{
	return bft_create_ctx(&bft_ctx, parent, name, O_RDWR | O_CREAT | O_EXCL, fh, ino);
}

int bft_open(uint64_t ino, int flags, struct ust_blobfs_file **fh)
{
	ust_blobfs_open(bft_fs, &bft_ctx, ino, flags, bft_open_cb, bft_begin());
	bft_finish();
	*fh = bft_r.fh;
	return bft_r.rc;
}

int bft_release(struct ust_blobfs_file *fh)
{
	ust_blobfs_release(bft_fs, fh, bft_op_cb, bft_begin());
	bft_finish();
	return bft_r.rc;
}

int64_t bft_pwrite_ctx(const struct ust_blobfs_ctx *ctx, struct ust_blobfs_file *fh,
		       const void *buf, size_t len, uint64_t off)
{
	ust_blobfs_write(bft_fs, ctx, fh, buf, len, off, bft_size_cb, bft_begin());
	bft_finish();
	return bft_r.n;
}

int64_t bft_pwrite(struct ust_blobfs_file *fh, const void *buf, size_t len, uint64_t off)
{
	return bft_pwrite_ctx(&bft_ctx, fh, buf, len, off);
}

int64_t bft_pread(struct ust_blobfs_file *fh, void *buf, size_t len, uint64_t off)
{
	ust_blobfs_read(bft_fs, fh, buf, len, off, bft_size_cb, bft_begin());
	bft_finish();
	return bft_r.n;
}

int bft_fsync(struct ust_blobfs_file *fh)
{
	ust_blobfs_fsync(bft_fs, fh, false, bft_op_cb, bft_begin());
	bft_finish();
	return bft_r.rc;
}

int bft_unlink(uint64_t parent, const char *name)
{
	ust_blobfs_unlink(bft_fs, &bft_ctx, parent, name, bft_op_cb, bft_begin());
	bft_finish();
	return bft_r.rc;
}

int bft_rmdir(uint64_t parent, const char *name)
{
	ust_blobfs_rmdir(bft_fs, &bft_ctx, parent, name, bft_op_cb, bft_begin());
	bft_finish();
	return bft_r.rc;
}

int bft_rename(uint64_t p, const char *n, uint64_t np, const char *nn, uint32_t flags)
{
	ust_blobfs_rename(bft_fs, &bft_ctx, p, n, np, nn, flags, bft_op_cb, bft_begin());
	bft_finish();
	return bft_r.rc;
}

int bft_link(uint64_t ino, uint64_t np, const char *nn)
{
	ust_blobfs_link(bft_fs, &bft_ctx, ino, np, nn, bft_entry_cb, bft_begin());
	bft_finish();
	return bft_r.rc;
}

int bft_setattr_ctx(const struct ust_blobfs_ctx *ctx, uint64_t ino, struct ust_blobfs_attr *a,
		    uint32_t valid)
{
	ust_blobfs_setattr(bft_fs, ctx, ino, a, valid, NULL, bft_attr_cb, bft_begin());
	bft_finish();
	*a = bft_r.a;
	return bft_r.rc;
}

int bft_truncate(uint64_t ino, uint64_t size)
{
	struct ust_blobfs_attr a = {.size = size};

	return bft_setattr_ctx(&bft_ctx, ino, &a, UST_BLOBFS_SET_SIZE);
}

void bft_fill(uint8_t *buf, size_t len, uint32_t seed)
{
	size_t i;

	for (i = 0; i < len; i++) {
		buf[i] = (uint8_t)((i * 31u + seed * 7u + (i >> 9)) ^ seed);
	}
}

uint64_t bft_free_clusters(void)
{
	ust_blobfs_statfs(bft_fs, bft_statfs_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	return bft_r.st.bfree;
}

static int dirlist_fill(void *arg, const struct ust_blobfs_dirent *d)
{
	struct bft_dirlist *l = arg;

	if (l->n >= l->max) {
		return 1;
	}
	snprintf(l->names[l->n], sizeof(l->names[0]), "%s", d->name);
	l->offs[l->n] = d->next_offset;
	l->inos[l->n] = d->ino;
	l->n++;
	return 0;
}

int bft_readdir(struct ust_blobfs_file *dh, uint64_t off, int max, struct bft_dirlist *l)
{
	memset(l, 0, sizeof(*l));
	l->max = max;
	ust_blobfs_readdir(bft_fs, dh, off, false, dirlist_fill, l, bft_op_cb, bft_begin());
	bft_finish();
	return bft_r.rc;
}

bool bft_dirlist_has(const struct bft_dirlist *l, const char *name)
{
	int i;

	for (i = 0; i < l->n; i++) {
		if (strcmp(l->names[i], name) == 0) {
			return true;
		}
	}
	return false;
}

/* ---- fixtures ----------------------------------------------------------------------------- */

int bft_group_setup(void **state)
{
	(void)state;
	return ut_threads_setup(2) == 0 ? ut_bdev_start() : -1;
}

int bft_group_teardown(void **state)
{
	int rc;

	(void)state;
	rc = ut_bdev_stop();
	return ut_threads_teardown() == 0 ? rc : -1;
}

int bft_make_malloc(const char *name)
{
	struct ust_malloc_opts o = {.name = name, .num_blocks = BFT_BDEV_BYTES / BLOCK, .block_size = BLOCK};

	ust_set_thread(ut_thread(0));
	return ust_bdev_malloc_create(&o, NULL);
}

int bft_make_fs(void **state)
{
	(void)state;
	if (bft_make_malloc("M0") != 0) {
		return -1;
	}
	return bft_format();
}

void bft_done_cb(void *ctx, int rc)
{
	*(int *)ctx = rc == 0 ? 1 : rc;
}

static void drop_malloc(const char *name)
{
	int done = 0;

	if (ust_bdev_malloc_delete(name, bft_done_cb, &done) == 0) {
		ut_threads_poll();
	}
}

int bft_drop_fs(void **state)
{
	(void)state;
	ust_set_thread(ut_thread(0));
	if (bft_fs != NULL) {
		bft_unmount();
	}
	drop_malloc("M0");
	drop_malloc("M1");
	return 0;
}

static int count_fill(void *arg, const struct ust_blobfs_dirent *d)
{
	(void)d;
	(*(uint64_t *)arg)++;
	return 0;
}

uint64_t bft_count_entries(uint64_t dir)
{
	struct ust_blobfs_file *dh;
	uint64_t n = 0;

	ust_blobfs_opendir(bft_fs, &bft_ctx, dir, bft_open_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	dh = bft_r.fh;
	ust_blobfs_readdir(bft_fs, dh, 0, false, count_fill, &n, bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	ust_blobfs_releasedir(bft_fs, dh, bft_op_cb, bft_begin());
	bft_finish();
	return n;
}

/* ---- the raw device ---- */

void bft_raw_io(const char *name, bool write, void *buf, uint64_t len)
{
	if (write)
		bt_raw_write(name, 0, buf, len);
	else
		bt_raw_read(name, 0, buf, len);
}
