/*
 * Unit tests for ust_bdev_read_lend() and ust_bdev_write_lend(), the
 * zero-copy read and write, on malloc bdevs with two ust_threads polled by
 * hand: the lent memory holds exactly what was written (any range, first
 * and last block included) and is the disk's own (a later write shows
 * through; bytes stored through a write lend are what a read returns);
 * each lend counts its bytes and one read (write) op in the statistics of
 * the channel it was made on, and nothing else does; bad ranges, a NULL
 * result and a foreign channel are -EINVAL; a write lend on a read-only
 * descriptor is -EBADF; a bdev that is not memory (null, a passthru even
 * over a malloc), a malloc with interleaved metadata and a channel under
 * QoS limits answer -ENOTSUP; a bdev being removed answers -ENODEV. File
 * bdevs on tmpfs are tested in file_ut.c, blob lends in blobstore/lend_ut.c.
 */
#include <errno.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ustor/bdev.h"
#include "ustor/bdev_module.h"
#include "ustor/thread.h"
#include "ut_threads.h"

#include "../../../bdev/malloc/bdev_malloc.h"
#include "../../../bdev/null/bdev_null.h"
#include "../../../bdev/passthru/bdev_passthru.h"

#define BS 512u
#define NBLOCKS 256u

/* ---- helpers ------------------------------------------------------------ */

static int g_removes;

static void event_cb(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	if (type == UST_BDEV_EVENT_REMOVE)
		g_removes++;
}

static void done_cb(void *ctx, int rc)
{
	*(int *)ctx = rc == 0 ? 1 : rc;
}

static void io_cb(struct ust_bdev_io *io, int status, void *arg)
{
	*(int *)arg = status == 0 ? 1 : status;
}

static void iostat_cb(struct ust_bdev *bdev, struct ust_bdev_io_stat *stat, void *ctx, int rc)
{
	done_cb(ctx, rc);
}

struct disk {
	struct ust_bdev *bdev;
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;
};

static void disk_open(const char *name, bool write, struct disk *d)
{
	d->bdev = ust_bdev_get_by_name(name);
	assert_non_null(d->bdev);
	assert_int_equal(ust_bdev_open_ext(name, write, event_cb, NULL, &d->desc), 0);
	d->ch = ust_bdev_get_io_channel(d->desc);
	assert_non_null(d->ch);
}

static void disk_close(struct disk *d)
{
	ust_put_io_channel(d->ch);
	ust_bdev_close(d->desc);
	ut_threads_poll();
}

/* A malloc bdev "name" of NBLOCKS blocks of BS bytes, opened. */
static void malloc_open(const char *name, struct disk *d)
{
	struct ust_malloc_opts mo = {.name = name, .num_blocks = NBLOCKS, .block_size = BS};

	assert_int_equal(ust_bdev_malloc_create(&mo, NULL), 0);
	disk_open(name, true, d);
}

static void malloc_close(const char *name, struct disk *d)
{
	int done = 0;

	disk_close(d);
	assert_int_equal(ust_bdev_malloc_delete(name, done_cb, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
}

static void fill(uint8_t *p, size_t len, uint32_t seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

static void write_sync(struct disk *d, void *buf, uint64_t off, uint64_t n)
{
	int done = 0;

	assert_int_equal(ust_bdev_write_blocks(d->desc, d->ch, buf, off, n, io_cb, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
}

/* Lend [off, off + n) and check it holds what model has there. */
static const uint8_t *lend_check(struct disk *d, const uint8_t *model, uint64_t off, uint64_t n)
{
	const void *p = NULL;

	assert_int_equal(ust_bdev_read_lend(d->desc, d->ch, off, n, &p), 0);
	assert_non_null(p);
	assert_memory_equal(p, model + off * BS, n * BS);
	return p;
}

static struct ust_bdev_io_stat totals(struct ust_bdev *bdev)
{
	struct ust_bdev_io_stat st;
	int got = 0;

	ust_bdev_get_iostat(bdev, &st, iostat_cb, &got);
	ut_threads_poll();
	assert_int_equal(got, 1);
	return st;
}

/* ---- tests -------------------------------------------------------------- */

/*
 * What a write put there comes back lent, in any range; the memory is the
 * disk's own, so consecutive ranges are consecutive memory and a write that
 * completes later shows through the pointer already lent.
 */
static void test_malloc_lend_data(void **state)
{
	struct disk d;
	uint8_t *model = malloc(NBLOCKS * BS), *w = malloc(8 * BS);
	const uint8_t *all, *p;
	uint64_t off;

	malloc_open("M0", &d);
	/* a new disk lends zeros */
	memset(model, 0, NBLOCKS * BS);
	lend_check(&d, model, 0, NBLOCKS);

	fill(model, NBLOCKS * BS, 1);
	write_sync(&d, model, 0, NBLOCKS);
	all = lend_check(&d, model, 0, NBLOCKS);
	lend_check(&d, model, 0, 1);
	lend_check(&d, model, NBLOCKS - 1, 1);
	for (off = 3; off + 37 <= NBLOCKS; off += 41) {
		p = lend_check(&d, model, off, 37);
		assert_ptr_equal(p, all + off * BS);
	}

	fill(w, 8 * BS, 2);
	write_sync(&d, w, 100, 8);
	memcpy(model + 100 * BS, w, 8 * BS);
	assert_memory_equal(all, model, NBLOCKS * BS);
	lend_check(&d, model, 96, 16);
	malloc_close("M0", &d);
	free(model);
	free(w);
}

/*
 * Each lend is one read op of exactly its bytes, without a latency, on the
 * channel it was made on; failed lends count nothing.
 */
static void test_lend_stats(void **state)
{
	struct disk d;
	struct ust_bdev_io_stat before, after, ch1_st;
	struct ust_io_channel *ch1;
	const void *p;

	malloc_open("M0", &d);
	ust_bdev_get_channel_iostat(d.ch, &before);
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, 0, 1, &p), 0);
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, 10, 7, &p), 0);
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, 0, NBLOCKS, &p), 0);
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, NBLOCKS, 1, &p), -EINVAL);
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, 0, 0, &p), -EINVAL);
	ust_bdev_get_channel_iostat(d.ch, &after);
	assert_int_equal(after.num_read_ops - before.num_read_ops, 3);
	assert_int_equal(after.bytes_read - before.bytes_read, (1 + 7 + NBLOCKS) * BS);
	assert_int_equal(after.read_latency_ticks, before.read_latency_ticks);
	assert_int_equal(after.num_write_ops, before.num_write_ops);
	assert_int_equal(after.bytes_written, before.bytes_written);
	assert_int_equal(after.num_io_errors, before.num_io_errors);

	/* Thread 1's channel counts its own lends, thread 0's does not see them. */
	ust_set_thread(ut_thread(1));
	ch1 = ust_bdev_get_io_channel(d.desc);
	assert_non_null(ch1);
	assert_int_equal(ust_bdev_read_lend(d.desc, ch1, 5, 4, &p), 0);
	ust_bdev_get_channel_iostat(ch1, &ch1_st);
	assert_int_equal(ch1_st.num_read_ops, 1);
	assert_int_equal(ch1_st.bytes_read, 4 * BS);
	ust_set_thread(ut_thread(0));
	ust_bdev_get_channel_iostat(d.ch, &before);
	assert_memory_equal(&before, &after, sizeof(before));
	/* and the bdev's totals have both */
	after = totals(d.bdev);
	assert_int_equal(after.num_read_ops, 4);
	assert_int_equal(after.bytes_read, (1 + 7 + NBLOCKS + 4) * BS);
	ust_set_thread(ut_thread(1));
	ust_put_io_channel(ch1);
	ust_set_thread(ut_thread(0));
	malloc_close("M0", &d);
}

static void read_sync(struct disk *d, void *buf, uint64_t off, uint64_t n)
{
	int done = 0;

	assert_int_equal(ust_bdev_read_blocks(d->desc, d->ch, buf, off, n, io_cb, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
}

/*
 * Bytes stored through a write lend are the disk's: a read returns them,
 * a read lend of the range points at the same memory, and the neighbours
 * keep theirs. Each write lend is one write op of its bytes; a read-only
 * descriptor gets -EBADF and counts nothing.
 */
static void test_write_lend(void **state)
{
	struct ust_bdev_io_stat before, after;
	uint8_t *model = malloc(NBLOCKS * BS), *got = malloc(NBLOCKS * BS);
	struct disk d, ro;
	const void *rp;
	void *p = NULL;

	malloc_open("M0", &d);
	fill(model, NBLOCKS * BS, 3);
	write_sync(&d, model, 0, NBLOCKS);
	ust_bdev_get_channel_iostat(d.ch, &before);
	assert_int_equal(ust_bdev_write_lend(d.desc, d.ch, 20, 9, &p), 0);
	assert_non_null(p);
	fill(model + 20 * BS, 9 * BS, 4);
	memcpy(p, model + 20 * BS, 9 * BS);
	assert_int_equal(ust_bdev_write_lend(d.desc, d.ch, NBLOCKS - 1, 1, &p), 0);
	fill(model + (NBLOCKS - 1) * BS, BS, 5);
	memcpy(p, model + (NBLOCKS - 1) * BS, BS);
	ust_bdev_get_channel_iostat(d.ch, &after);
	assert_int_equal(after.num_write_ops - before.num_write_ops, 2);
	assert_int_equal(after.bytes_written - before.bytes_written, 10 * BS);
	assert_int_equal(after.num_read_ops, before.num_read_ops);
	read_sync(&d, got, 0, NBLOCKS);
	assert_memory_equal(got, model, NBLOCKS * BS);
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, 20, 9, &rp), 0);
	assert_int_equal(ust_bdev_write_lend(d.desc, d.ch, 20, 9, &p), 0);
	assert_ptr_equal(rp, p);

	assert_int_equal(ust_bdev_write_lend(d.desc, d.ch, NBLOCKS, 1, &p), -EINVAL);
	assert_int_equal(ust_bdev_write_lend(d.desc, d.ch, 0, 0, &p), -EINVAL);
	assert_int_equal(ust_bdev_write_lend(d.desc, d.ch, 0, 1, NULL), -EINVAL);
	disk_open("M0", false, &ro);
	ust_bdev_get_channel_iostat(ro.ch, &before);
	assert_int_equal(ust_bdev_write_lend(ro.desc, ro.ch, 0, 1, &p), -EBADF);
	assert_int_equal(ust_bdev_read_lend(ro.desc, ro.ch, 0, 1, &rp), 0);
	ust_bdev_get_channel_iostat(ro.ch, &after);
	assert_int_equal(after.num_write_ops, before.num_write_ops);
	assert_int_equal(after.bytes_written, before.bytes_written);
	disk_close(&ro);
	malloc_close("M0", &d);
	free(model);
	free(got);
}

/* Ranges outside the disk, zero blocks, no result pointer, another bdev's channel: -EINVAL. */
static void test_lend_bad_arguments(void **state)
{
	struct disk d, o;
	const void *p;

	malloc_open("M0", &d);
	malloc_open("M1", &o);
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, NBLOCKS, 1, &p), -EINVAL);
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, NBLOCKS - 1, 2, &p), -EINVAL);
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, 0, NBLOCKS + 1, &p), -EINVAL);
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, 1, 0, &p), -EINVAL);
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, 0, 0, &p), -EINVAL);
	/* offset + num wraps around */
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, 2, UINT64_MAX, &p), -EINVAL);
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, UINT64_MAX, 2, &p), -EINVAL);
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, 0, 1, NULL), -EINVAL);
	assert_int_equal(ust_bdev_read_lend(d.desc, o.ch, 0, 1, &p), -EINVAL);
	/* the edges themselves are fine */
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, NBLOCKS - 1, 1, &p), 0);
	assert_int_equal(ust_bdev_read_lend(o.desc, o.ch, 0, NBLOCKS, &p), 0);
	malloc_close("M1", &o);
	malloc_close("M0", &d);
}

/* Expect -ENOTSUP from a lend of name's first block, and no read counted. */
static void expect_no_lend(const char *name)
{
	struct disk d;
	struct ust_bdev_io_stat st;
	const void *p;

	void *wp;

	disk_open(name, true, &d);
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, 0, 1, &p), -ENOTSUP);
	assert_int_equal(ust_bdev_write_lend(d.desc, d.ch, 0, 1, &wp), -ENOTSUP);
	ust_bdev_get_channel_iostat(d.ch, &st);
	assert_int_equal(st.num_read_ops, 0);
	assert_int_equal(st.bytes_read, 0);
	assert_int_equal(st.num_write_ops, 0);
	disk_close(&d);
}

/* Bdevs with no memory of their own to lend, and metadata in the blocks. */
static void test_lend_not_supported(void **state)
{
	struct ust_null_opts no = {.name = "N0", .num_blocks = NBLOCKS, .block_size = BS};
	struct ust_malloc_opts mo = {.name = "MD0", .num_blocks = NBLOCKS, .block_size = BS + 8,
				     .md_size = 8, .md_interleave = true};
	struct ust_malloc_opts mo_plain = {.num_blocks = NBLOCKS, .block_size = BS};
	struct disk m;
	const void *p;
	int done = 0;

	assert_int_equal(ust_bdev_null_create(&no, NULL), 0);
	expect_no_lend("N0");
	assert_int_equal(ust_bdev_null_delete("N0", done_cb, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);

	/* A passthru cannot lend even when its base (claimed by it: opened read-only here) can. */
	mo_plain.name = "M0";
	assert_int_equal(ust_bdev_malloc_create(&mo_plain, NULL), 0);
	assert_int_equal(ust_bdev_passthru_create("M0", "P0", NULL), 0);
	ut_threads_poll();
	expect_no_lend("P0");
	disk_open("M0", false, &m);
	assert_int_equal(ust_bdev_read_lend(m.desc, m.ch, 0, 1, &p), 0);
	done = 0;
	assert_int_equal(ust_bdev_passthru_delete("P0", done_cb, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
	malloc_close("M0", &m);

	/* Interleaved metadata: the memory holds more than the data. */
	assert_int_equal(ust_bdev_malloc_create(&mo, NULL), 0);
	expect_no_lend("MD0");
	done = 0;
	assert_int_equal(ust_bdev_malloc_delete("MD0", done_cb, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
}

/* QoS limits hold on the I/O path only: a limited channel does not lend, until they are lifted. */
static void test_lend_qos(void **state)
{
	uint64_t limits[UST_BDEV_QOS_NUM_RATE_LIMIT_TYPES] = {1000, 0, 0, 0};
	struct ust_bdev_io_stat st;
	struct ust_io_channel *ch1;
	struct disk d;
	const void *p;
	void *wp;
	int set = 0;

	malloc_open("M0", &d);
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, 0, 1, &p), 0);
	ust_bdev_set_qos_rate_limits(d.bdev, limits, done_cb, &set);
	ut_threads_poll();
	assert_int_equal(set, 1);
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, 0, 1, &p), -ENOTSUP);
	assert_int_equal(ust_bdev_write_lend(d.desc, d.ch, 0, 1, &wp), -ENOTSUP);
	ust_bdev_get_channel_iostat(d.ch, &st);
	assert_int_equal(st.num_read_ops, 1);
	assert_int_equal(st.num_write_ops, 0);
	/* a channel made while the limits apply is limited too */
	ust_set_thread(ut_thread(1));
	ch1 = ust_bdev_get_io_channel(d.desc);
	assert_non_null(ch1);
	assert_int_equal(ust_bdev_read_lend(d.desc, ch1, 0, 1, &p), -ENOTSUP);
	ust_put_io_channel(ch1);
	ust_set_thread(ut_thread(0));
	ut_threads_poll();

	limits[UST_BDEV_QOS_RW_IOPS_RATE_LIMIT] = 0;
	set = 0;
	ust_bdev_set_qos_rate_limits(d.bdev, limits, done_cb, &set);
	ut_threads_poll();
	assert_int_equal(set, 1);
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, 0, 1, &p), 0);
	malloc_close("M0", &d);
}

/* Once the bdev is being removed, an open descriptor's channel lends no more. */
static void test_lend_after_remove(void **state)
{
	struct disk d;
	const void *p;
	void *wp;
	int done = 0;

	malloc_open("M0", &d);
	g_removes = 0;
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, 0, 1, &p), 0);
	assert_int_equal(ust_bdev_malloc_delete("M0", done_cb, &done), 0);
	ut_threads_poll();
	assert_int_equal(g_removes, 1);
	assert_int_equal(done, 0); /* held by the open descriptor */
	assert_int_equal(ust_bdev_read_lend(d.desc, d.ch, 0, 1, &p), -ENODEV);
	assert_int_equal(ust_bdev_write_lend(d.desc, d.ch, 0, 1, &wp), -ENODEV);
	disk_close(&d);
	assert_int_equal(done, 1);
}

/* ---- setup -------------------------------------------------------------- */

static int setup(void **state)
{
	return ut_threads_setup(2) == 0 ? ut_bdev_start() : -1;
}

static int teardown(void **state)
{
	int rc = ut_bdev_stop();

	return ut_threads_teardown() == 0 ? rc : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_malloc_lend_data),
		cmocka_unit_test(test_lend_stats),
		cmocka_unit_test(test_write_lend),
		cmocka_unit_test(test_lend_bad_arguments),
		cmocka_unit_test(test_lend_not_supported),
		cmocka_unit_test(test_lend_qos),
		cmocka_unit_test(test_lend_after_remove),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
