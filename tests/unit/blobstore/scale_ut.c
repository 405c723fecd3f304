/*
 * Unit tests for a blobstore holding thousands of blobs: creates, opens
 * (all held open at once), reuse of freed slots, deletes and a dirty load
 * of a store with thousands of live blobs; and storms of deferred frees
 * (bs_defer_free) far larger than a thread's message ring, which must cost
 * one walk over the channels at a time, free nothing before every channel's
 * thread has run, and leave nothing behind at unload (ASan checks leaks).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ustor/blob.h"
#include "ustor/thread.h"

#include "../../../blobstore/blobstore_internal.h"
#include "blob_test.h"

#define BDEV "S0"
#define BLOCK 4096u
#define BDEV_BYTES (96ull << 20)
#define CLUSTER (1u << 20)
#define MAX_BLOBS 4096u
#define NBLOBS 2500u
/* Well past a thread's message ring (8192 slots): one message per free would overflow it. */
#define STORM 50000u

#define TORN 1000u /* slots whose unused half is garbage at the dirty load */

static struct ust_thread *g_t1;

static void noop_msg(void *arg)
{
	(void)arg;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] != 0) {
			return false;
		}
	}
	return true;
}

/* Create n blobs, every create in flight at once; their ids in ids. */
static void create_many(struct ust_blob_store *bs, ust_blob_id *ids, uint32_t n)
{
	struct bt_done *d = calloc(n, sizeof(*d));
	uint32_t i;

	assert_non_null(d);
	for (i = 0; i < n; i++) {
		ust_bs_create_blob(bs, NULL, bt_id_cb, &d[i]);
	}
	bt_poll();
	for (i = 0; i < n; i++) {
		assert_true(d[i].done);
		assert_int_equal(d[i].rc, 0);
		ids[i] = d[i].id;
	}
	free(d);
}

/* Open every blob at once (two handles each: the second shares the first). */
static void open_all_twice(struct ust_blob_store *bs, const ust_blob_id *ids, uint32_t n,
			   struct ust_blob **blobs)
{
	struct bt_done *d = calloc(2 * (size_t)n, sizeof(*d));
	uint32_t i;

	assert_non_null(d);
	for (i = 0; i < n; i++) {
		ust_bs_open_blob(bs, ids[i], bt_blob_cb, &d[i]);
	}
	bt_poll();
	for (i = 0; i < n; i++) {
		ust_bs_open_blob(bs, ids[i], bt_blob_cb, &d[n + i]);
	}
	bt_poll();
	for (i = 0; i < n; i++) {
		assert_true(d[i].done && d[n + i].done);
		assert_int_equal(d[i].rc, 0);
		assert_int_equal(d[n + i].rc, 0);
		assert_ptr_equal(d[i].blob, d[n + i].blob);
		assert_int_equal(ust_blob_get_id(d[i].blob), ids[i]);
		blobs[i] = d[i].blob;
	}
	free(d);
}

static void delete_all(struct ust_blob_store *bs, const ust_blob_id *ids, uint32_t n)
{
	struct bt_done *d = calloc(n, sizeof(*d));
	uint32_t i;

	assert_non_null(d);
	for (i = 0; i < n; i++) {
		ust_bs_delete_blob(bs, ids[i], bt_op_cb, &d[i]);
	}
	bt_poll();
	for (i = 0; i < n; i++) {
		assert_true(d[i].done);
		assert_int_equal(d[i].rc, 0);
	}
	free(d);
}

static void test_many_blobs(void **state)
{
	ust_blob_id *ids = calloc(NBLOBS, sizeof(*ids));
	struct ust_blob **blobs = calloc(NBLOBS, sizeof(*blobs));
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	ust_blob_id again;
	uint32_t i;

	(void)state;
	assert_non_null(ids);
	assert_non_null(blobs);
	assert_int_equal(bt_init(BDEV, CLUSTER, MAX_BLOBS, &bs), 0);
	create_many(bs, ids, NBLOBS);
	for (i = 0; i < NBLOBS; i++) {
		/* A fresh store hands out slots from the lowest up. */
		assert_int_equal(ust_bs_blobid_slot(ids[i]), i);
	}

	/* Every blob open at once: lookups go through the open index. */
	open_all_twice(bs, ids, NBLOBS, blobs);
	assert_int_equal(bt_delete(bs, ids[7]), -EBUSY);
	for (i = 0; i < NBLOBS; i++) {
		assert_int_equal(bt_close(blobs[i]), 0);
		assert_int_equal(bt_close(blobs[i]), 0);
	}

	/* A slot freed below the search hint is the next one used. */
	assert_int_equal(bt_delete(bs, ids[10]), 0);
	assert_int_equal(bt_open(bs, ids[10], &blob), -ENOENT);
	assert_int_equal(bt_create(bs, 0, true, &again), 0);
	assert_int_equal(ust_bs_blobid_slot(again), 10);
	assert_int_not_equal(again, ids[10]);
	ids[10] = again;

	/* The store survives a clean reload with all of them. */
	assert_int_equal(bt_unload(bs), 0);
	assert_int_equal(bt_load(BDEV, &bs), 0);
	assert_int_equal(bt_open(bs, ids[NBLOBS - 1], &blob), 0);
	assert_int_equal(bt_close(blob), 0);

	delete_all(bs, ids, NBLOBS);
	for (i = 0; i < NBLOBS; i += 97) {
		assert_int_equal(bt_open(bs, ids[i], &blob), -ENOENT);
	}
	assert_int_equal(bt_unload(bs), 0);
	assert_int_equal(bt_load(BDEV, &bs), 0);
	{
		struct bt_done d = {0};

		ust_bs_iter_first(bs, bt_blob_cb, &d);
		bt_poll();
		assert_true(d.done);
		assert_int_equal(d.rc, -ENOENT);
	}
	assert_int_equal(bt_unload(bs), 0);
	free(blobs);
	free(ids);
}

/*
 * A dirty load of a store with thousands of live blobs finds every one, and
 * clears the TORN halves left garbage (torn later writes) in a bounded
 * window of writes.
 */
static void test_dirty_load_many(void **state)
{
	ust_blob_id *ids = calloc(NBLOBS, sizeof(*ids));
	uint8_t *image = malloc(BDEV_BYTES);
	uint64_t torn[TORN];
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	uint64_t roots;
	uint32_t i;
	int h;

	(void)state;
	assert_non_null(ids);
	assert_non_null(image);
	assert_int_equal(bt_init(BDEV, CLUSTER, MAX_BLOBS, &bs), 0);
	roots = bs->sb.root_slots.start;
	create_many(bs, ids, NBLOBS);
	/* The crash: the device as it is while the store is loaded (clean = 0). */
	bt_raw_read(BDEV, 0, image, BDEV_BYTES);
	delete_all(bs, ids, NBLOBS / 2);
	assert_int_equal(bt_unload(bs), 0);
	for (i = 0; i < TORN; i++) {
		for (h = 0; h < 2; h++) {
			uint8_t *page = image + (roots + 2ull * i + (uint64_t)h) * UST_BS_PAGE_SIZE;

			if (all_zero(page, UST_BS_PAGE_SIZE)) {
				memset(page, 0xa5, UST_BS_PAGE_SIZE);
				torn[i] = roots + 2ull * i + (uint64_t)h;
				break;
			}
		}
		assert_true(h < 2);
	}
	bt_raw_write(BDEV, 0, image, BDEV_BYTES);

	assert_int_equal(bt_load(BDEV, &bs), 0);
	assert_int_equal(ust_bs_get_damaged(bs, NULL, 0), 0);
	/* Recovery built and dropped a blob per slot: its deferred frees left
	 * the message ring usable. */
	assert_int_equal(ust_thread_send_msg(ust_get_thread(), noop_msg, NULL), 0);
	for (i = 0; i < NBLOBS; i++) {
		assert_int_equal(bt_open(bs, ids[i], &blob), 0);
		assert_int_equal(bt_close(blob), 0);
	}
	assert_int_equal(bt_unload(bs), 0);
	for (i = 0; i < TORN; i++) {
		bt_raw_read(BDEV, torn[i] * UST_BS_PAGE_SIZE, image, UST_BS_PAGE_SIZE);
		assert_true(all_zero(image, UST_BS_PAGE_SIZE));
	}
	assert_int_equal(bt_load(BDEV, &bs), 0);
	delete_all(bs, ids, NBLOBS);
	assert_int_equal(bt_unload(bs), 0);
	free(image);
	free(ids);
}

static void poll_t1(void)
{
	int i;

	for (i = 0; i < 1000000 && ust_thread_poll(g_t1, 0, 0) != 0; i++) {
	}
	bt_poll();
}

static struct ust_io_channel *channel_on_t1(struct ust_blob_store *bs)
{
	struct ust_io_channel *ch;

	ust_set_thread(g_t1);
	ch = ust_bs_alloc_io_channel(bs);
	bt_poll(); /* back on t0 */
	assert_non_null(ch);
	return ch;
}

static void free_channel_on_t1(struct ust_io_channel *ch)
{
	ust_set_thread(g_t1);
	ust_bs_free_io_channel(ch);
	poll_t1();
}

static void storm(struct ust_blob_store *bs, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		void *p = malloc(64);

		assert_non_null(p);
		memset(p, 0x5a, 64);
		bs_defer_free(bs, p);
	}
}

/*
 * STORM frees with no polling in between: one walk in flight, the rest
 * queued; the rings still take messages; nothing is freed until the thread
 * holding a channel has run; then everything is.
 */
static void test_defer_free_storm(void **state)
{
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	uint64_t walks;
	size_t queued, walking;
	int i;

	(void)state;
	assert_int_equal(bt_init(BDEV, CLUSTER, 64, &bs), 0);
	ch = channel_on_t1(bs);
	poll_t1();
	walks = bs->defer.walks;

	storm(bs, STORM);
	bs_defer_counts(bs, &queued, &walking);
	assert_int_equal(walking, 1);
	assert_int_equal(queued, STORM - 1);
	assert_int_equal(bs->defer.walks, walks + 1);
	assert_int_equal(ust_thread_send_msg(g_t1, noop_msg, NULL), 0);
	assert_int_equal(ust_thread_send_msg(ust_get_thread(), noop_msg, NULL), 0);

	/* The walk waits on t1 (it holds a channel): nothing may be freed. */
	for (i = 0; i < 10; i++) {
		bt_poll();
	}
	bs_defer_counts(bs, &queued, &walking);
	assert_int_equal(walking, 1);
	assert_int_equal(queued, STORM - 1);

	/* t1 runs: the first batch is released and the queue goes in one more walk. */
	poll_t1();
	poll_t1();
	bs_defer_counts(bs, &queued, &walking);
	assert_int_equal(queued, 0);
	assert_int_equal(walking, 0);
	assert_int_equal(bs->defer.walks, walks + 2);

	free_channel_on_t1(ch);
	assert_int_equal(bt_unload(bs), 0);
}

/* Unload right after a storm: the teardown frees what is queued (ASan: no leak). */
static void test_defer_free_storm_then_unload(void **state)
{
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct bt_done d = {0};
	int i;

	(void)state;
	assert_int_equal(bt_init(BDEV, CLUSTER, 64, &bs), 0);
	ch = channel_on_t1(bs);
	storm(bs, STORM);
	ust_set_thread(g_t1);
	ust_bs_free_io_channel(ch);
	ust_set_thread(NULL);
	bt_poll();
	ust_bs_unload(bs, bt_op_cb, &d);
	for (i = 0; i < 100 && !d.done; i++) {
		poll_t1();
	}
	assert_true(d.done);
	assert_int_equal(d.rc, 0);
}

static int make_bdev(void **state)
{
	(void)state;
	return bt_malloc_create(BDEV, BDEV_BYTES, BLOCK);
}

static int drop_bdev(void **state)
{
	(void)state;
	return bt_malloc_delete(BDEV);
}

static int setup(void **state)
{
	(void)state;
	if (bt_env_setup() != 0) {
		return -1;
	}
	g_t1 = ust_thread_create("t1", NULL);
	bt_poll();
	return g_t1 != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	int i;

	(void)state;
	ust_set_thread(g_t1);
	ust_thread_exit(g_t1);
	for (i = 0; i < 1000 && !ust_thread_is_exited(g_t1); i++) {
		ust_thread_poll(g_t1, 0, 0);
	}
	ust_thread_destroy(g_t1);
	bt_poll();
	return bt_env_teardown();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_many_blobs, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_dirty_load_many, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_defer_free_storm, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_defer_free_storm_then_unload, make_bdev,
						drop_bdev),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
