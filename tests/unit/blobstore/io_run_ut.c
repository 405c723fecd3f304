/*
 * Unit tests for runs of clusters in the blob data path (blobstore/bs_io.c):
 * a read or write over clusters that lie back to back on the device is one
 * bdev I/O at the right place; holes and clusters elsewhere break the run
 * (each part reads and writes what it should); and a write whose run is
 * broken between its split and its submission (a snapshot took the
 * clusters while the write waited for the freeze) falls back to one piece
 * per cluster and copies on write. Malloc bdev, one ust_thread polled by
 * hand; data is checked against a model of the blob and on the raw bdev.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ustor/bdev.h"
#include "ustor/blob.h"
#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/thread.h"

#include "../../../blobstore/blobstore_internal.h"
#include "blob_test.h"

#define DEV "M0"
#define BLOCK 4096u
#define BDEV_BYTES (16u << 20)
#define CLUSTER (64u << 10)
#define UPC (CLUSTER / BLOCK)
#define NCL 6u

static void fill(uint8_t *buf, uint64_t len, uint64_t seed)
{
	uint64_t i;

	for (i = 0; i < len; i++) {
		buf[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 12));
	}
}

static void stat_cb(struct ust_bdev *bdev, struct ust_bdev_io_stat *stat, void *ctx, int rc)
{
	(void)bdev;
	(void)stat;
	bt_op_cb(ctx, rc);
}

/* The bdev's write and read counts so far. */
static void dev_ops(uint64_t *writes, uint64_t *reads)
{
	struct ust_bdev_io_stat st;

	ust_bdev_get_iostat(ust_bdev_get_by_name(DEV), &st, stat_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	*writes = st.num_write_ops;
	*reads = st.num_read_ops;
}

static int make_bdev(void **state)
{
	(void)state;
	return bt_malloc_create(DEV, BDEV_BYTES, BLOCK);
}

static int drop_bdev(void **state)
{
	(void)state;
	bt_poll();
	return bt_malloc_delete(DEV);
}

struct fixture {
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	ust_blob_id id;
};

static void open_store(struct fixture *f, bool thin)
{
	assert_int_equal(bt_init(DEV, CLUSTER, 64, &f->bs), 0);
	assert_int_equal(ust_bs_get_io_unit_size(f->bs), BLOCK);
	f->ch = ust_bs_alloc_io_channel(f->bs);
	assert_non_null(f->ch);
	assert_int_equal(bt_create(f->bs, NCL, thin, &f->id), 0);
	assert_int_equal(bt_open(f->bs, f->id, &f->blob), 0);
}

static void close_store(struct fixture *f)
{
	assert_int_equal(bt_close(f->blob), 0);
	ust_bs_free_io_channel(f->ch);
	bt_poll();
	assert_int_equal(bt_unload(f->bs), 0);
}

static void check_blob(struct fixture *f, const uint8_t *model)
{
	uint8_t *buf = ust_dma_malloc(NCL * CLUSTER, BLOCK);

	assert_non_null(buf);
	assert_int_equal(bt_read(f->blob, f->ch, buf, 0, NCL * UPC), 0);
	assert_memory_equal(buf, model, NCL * CLUSTER);
	ust_dma_free(buf);
}

/* A thick blob's clusters follow each other: a write or read over four is one bdev I/O. */
static void test_run_is_one_io(void **state)
{
	const struct bs_map *m;
	struct fixture f;
	uint64_t w0, r0, w1, r1, i, off = UPC / 2, len = 3 * UPC;
	uint8_t *buf, *back, *raw;
	uint32_t c0;

	(void)state;
	open_store(&f, false);
	m = bs_blob_map(f.blob);
	c0 = bs_map_get(m, 0);
	for (i = 1; i < NCL; i++) {
		/* what the test relies on: a fresh store hands out clusters in order */
		assert_int_equal(bs_map_get(m, i), c0 + i);
	}
	buf = ust_dma_malloc(len * BLOCK, BLOCK);
	back = ust_dma_malloc(len * BLOCK, BLOCK);
	raw = malloc(len * BLOCK);
	fill(buf, len * BLOCK, 1);
	dev_ops(&w0, &r0);
	assert_int_equal(bt_write(f.blob, f.ch, buf, off, len), 0);
	assert_int_equal(bt_read(f.blob, f.ch, back, off, len), 0);
	dev_ops(&w1, &r1);
	assert_int_equal(w1 - w0, 1);
	assert_int_equal(r1 - r0, 1);
	assert_memory_equal(back, buf, len * BLOCK);
	/* and it is where the map says, on the device */
	close_store(&f);
	bt_raw_read(DEV, (uint64_t)c0 * CLUSTER + off * BLOCK, raw, len * BLOCK);
	assert_memory_equal(raw, buf, len * BLOCK);
	ust_dma_free(buf);
	ust_dma_free(back);
	free(raw);
}

/*
 * A thin blob with clusters 0, 1 (back to back), a hole at 2, then 3 and 5
 * far apart: one write and one read over the whole blob see every part as
 * it is, and the write fills the holes.
 */
static void test_run_broken_by_holes(void **state)
{
	struct fixture f;
	uint8_t *model, *buf;
	uint64_t w0, r0, w1, r1;

	(void)state;
	open_store(&f, true);
	model = calloc(1, NCL * CLUSTER);
	buf = ust_dma_malloc(NCL * CLUSTER, BLOCK);
	/* allocation order 5, 0, 1, 3: clusters 0 and 1 adjacent, 3 and 5 not */
	fill(buf, CLUSTER, 5);
	assert_int_equal(bt_write(f.blob, f.ch, buf, 5 * UPC, UPC), 0);
	memcpy(model + 5 * CLUSTER, buf, CLUSTER);
	fill(buf, 2 * CLUSTER - 3 * BLOCK, 0);
	assert_int_equal(bt_write(f.blob, f.ch, buf, 3, 2 * UPC - 3), 0);
	memcpy(model + 3 * BLOCK, buf, 2 * CLUSTER - 3 * BLOCK);
	fill(buf, BLOCK, 3);
	assert_int_equal(bt_write(f.blob, f.ch, buf, 3 * UPC + 1, 1), 0);
	memcpy(model + 3 * CLUSTER + BLOCK, buf, BLOCK);
	assert_int_equal(bs_map_get(bs_blob_map(f.blob), 1), bs_map_get(bs_blob_map(f.blob), 0) + 1);
	assert_int_equal(bs_map_get(bs_blob_map(f.blob), 2), 0);
	check_blob(&f, model);

	/* one read over all: 0-1 as one run, 3 and 5 each, holes as zeros */
	dev_ops(&w0, &r0);
	assert_int_equal(bt_read(f.blob, f.ch, buf, 0, NCL * UPC), 0);
	dev_ops(&w1, &r1);
	assert_memory_equal(buf, model, NCL * CLUSTER);
	assert_int_equal(r1 - r0, 3);

	/* one write over all, unaligned at both ends: the holes get clusters */
	fill(buf, NCL * CLUSTER - 2 * BLOCK, 9);
	assert_int_equal(bt_write(f.blob, f.ch, buf, 1, NCL * UPC - 2), 0);
	memcpy(model + BLOCK, buf, NCL * CLUSTER - 2 * BLOCK);
	check_blob(&f, model);
	close_store(&f);
	assert_int_equal(bt_load(DEV, &f.bs), 0);
	f.ch = ust_bs_alloc_io_channel(f.bs);
	assert_int_equal(bt_open(f.bs, f.id, &f.blob), 0);
	check_blob(&f, model);
	close_store(&f);
	free(model);
	ust_dma_free(buf);
}

struct snap_wait {
	bool done;
	int rc;
	ust_blob_id id;
};

static void snap_cb(void *arg, ust_blob_id id, int rc)
{
	struct snap_wait *s = arg;

	s->id = id;
	s->rc = rc;
	s->done = true;
}

/*
 * A write over a run submitted while a snapshot holds the blob frozen: the
 * snapshot takes the clusters, so when the write goes on its run is gone.
 * It must land whole in the blob (copied on write, cluster by cluster) and
 * not at all in the snapshot.
 */
static void test_run_broken_by_snapshot(void **state)
{
	struct fixture f;
	struct snap_wait sw = {0};
	struct bt_done wd = {0};
	struct ust_blob *snap;
	uint8_t *model, *before, *buf;
	uint64_t off = UPC / 2, len = 3 * UPC, polls;

	(void)state;
	open_store(&f, false);
	model = malloc(NCL * CLUSTER);
	before = malloc(NCL * CLUSTER);
	buf = ust_dma_malloc(NCL * CLUSTER, BLOCK);
	fill(buf, NCL * CLUSTER, 20);
	assert_int_equal(bt_write(f.blob, f.ch, buf, 0, NCL * UPC), 0);
	memcpy(model, buf, NCL * CLUSTER);
	memcpy(before, buf, NCL * CLUSTER);

	ust_bs_create_snapshot(f.bs, f.id, NULL, 0, snap_cb, &sw);
	for (polls = 0; polls < 100000 && !sw.done &&
			__atomic_load_n(&f.blob->frozen, __ATOMIC_SEQ_CST) == 0;
	     polls++) {
		ust_thread_poll(bt_thread(0), 1, 0);
	}
	assert_false(sw.done);
	assert_int_not_equal(__atomic_load_n(&f.blob->frozen, __ATOMIC_SEQ_CST), 0);
	fill(buf, len * BLOCK, 21);
	memcpy(model + off * BLOCK, buf, len * BLOCK);
	ust_blob_write(f.blob, f.ch, buf, off, len, bt_op_cb, &wd);
	bt_poll();
	assert_true(sw.done);
	assert_int_equal(sw.rc, 0);
	assert_true(wd.done);
	assert_int_equal(wd.rc, 0);
	check_blob(&f, model);
	assert_int_equal(bt_open(f.bs, sw.id, &snap), 0);
	{
		struct fixture s = f;

		s.blob = snap;
		check_blob(&s, before);
	}
	assert_int_equal(bt_close(snap), 0);
	close_store(&f);
	free(model);
	free(before);
	ust_dma_free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_run_is_one_io, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_run_broken_by_holes, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_run_broken_by_snapshot, make_bdev, drop_bdev),
	};

	ust_log_set_print_level(UST_LOG_WARN);
	return cmocka_run_group_tests(tests, bt_group_setup, bt_group_teardown);
}
