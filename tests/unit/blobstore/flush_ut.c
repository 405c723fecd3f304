/*
 * Unit tests for the blobstore's metadata flushes and the bdev's write
 * cache (blobstore/bs_dev.c bs_dev_flush): on a bdev without a volatile
 * write cache (a malloc bdev: memory) creating, resizing, syncing and
 * deleting blobs sends the device no flush at all, and the metadata is
 * still all there after a reload; on the same bdev saying it has a cache
 * every metadata commit is flushed. The caller's own ust_bs_flush()
 * reaches the device either way (blob_ut.c test_flush). One ust_thread
 * polled by hand.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "ustor/bdev.h"
#include "ustor/bdev_module.h"
#include "ustor/blob.h"
#include "ustor/thread.h"

#include "blob_test.h"

#define DEV "M0"
#define BLOCK 4096u

static int make_bdev(void **state)
{
	(void)state;
	return bt_malloc_create(DEV, 16u << 20, BLOCK);
}

static int drop_bdev(void **state)
{
	(void)state;
	bt_poll();
	return bt_malloc_delete(DEV);
}

static uint64_t flushes(void)
{
	struct ust_bdev_io_stat st;

	bt_iostat(DEV, &st);
	return st.num_flush_ops;
}

/* Create, grow, sync, delete: the metadata commits of a blob's life. Its ids. */
static void blob_life(struct ust_blob_store *bs, ust_blob_id *kept)
{
	struct ust_blob *blob;
	ust_blob_id gone;

	assert_int_equal(bt_create(bs, 2, false, kept), 0);
	assert_int_equal(bt_open(bs, *kept, &blob), 0);
	assert_int_equal(bt_resize(blob, 5), 0);
	assert_int_equal(bt_sync(blob), 0);
	assert_int_equal(bt_close(blob), 0);
	assert_int_equal(bt_create(bs, 1, false, &gone), 0);
	assert_int_equal(bt_delete(bs, gone), 0);
}

static void test_no_write_cache_no_flush(void **state)
{
	struct ust_blob_store *bs;
	ust_blob_id id;
	uint64_t before;

	(void)state;
	assert_false(ust_bdev_has_write_cache(ust_bdev_get_by_name(DEV)));
	before = flushes();
	assert_int_equal(bt_init(DEV, 64u << 10, 16, &bs), 0);
	blob_life(bs, &id);
	assert_int_equal(bt_unload(bs), 0);
	assert_int_equal(flushes(), before);
	bt_check_reloaded(DEV, id, 5);
}

static void test_write_cache_flushed(void **state)
{
	struct ust_bdev *bdev = ust_bdev_get_by_name(DEV);
	struct ust_blob_store *bs;
	ust_blob_id id;
	uint64_t before, after_init, after_life;

	(void)state;
	/* As a module whose device has a volatile cache says (write_cache is the module's). */
	bdev->write_cache = true;
	before = flushes();
	assert_int_equal(bt_init(DEV, 64u << 10, 16, &bs), 0);
	after_init = flushes();
	assert_true(after_init > before);
	blob_life(bs, &id);
	after_life = flushes();
	/* at least one per commit: two creates, a resize synced, a delete */
	assert_true(after_life >= after_init + 4);
	assert_int_equal(bt_unload(bs), 0);
	assert_true(flushes() > after_life);
	bt_check_reloaded(DEV, id, 5);
	bdev->write_cache = false;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_write_cache_no_flush, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_write_cache_flushed, make_bdev, drop_bdev),
	};

	return cmocka_run_group_tests(tests, bt_group_setup, bt_group_teardown);
}
