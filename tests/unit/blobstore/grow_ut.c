/*
 * Growing a store with its bdev (ust_bs_grow, blobstore/bs_grow.c;
 * docs/blobstore-format.md 9.4 "grow"), and the crash atomicity of it,
 * checked with the crash simulator as crash_ut.c does.
 *
 * The device: a store formatted on 4 MiB is copied raw onto the first 4 MiB
 * of an 8 MiB malloc bdev, i.e. a bdev that grew while the store was
 * offline (a file bdev after truncate and rescan). The old space is filled
 * by one thick blob holding a pattern. Recorded on a crashsim bdev: load,
 * grow, create a thick blob that can only live in the new space, write it,
 * unload. Then every cut point (several seeds each) is loaded and must give
 * either the old size or the new one, never a mix: the old blob's data
 * intact; the size the new one exactly once the grow was acknowledged and
 * the old one before it began; free = total data clusters - what the blobs
 * hold; the new blob, once its create was acknowledged, holds its clusters
 * in the new space and, once its write was acknowledged, its data. A load
 * on the new size then takes a blob in the new space and reloads clean.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ustor/bdev.h"
#include "ustor/blob.h"
#include "ustor/crashsim.h"
#include "ustor/log.h"
#include "ustor/thread.h"

#include "blob_test.h"

#define BLOCK 512u
#define OLD_BYTES (4u << 20)
#define NEW_BYTES (8u << 20)
#define CLUSTER (32u << 10)
#define UPC (CLUSTER / BLOCK)

static struct {
	struct ust_crashsim *cs;
	uint64_t old_total, new_total; /* data clusters */
	uint64_t old_clusters;         /* the old blob's size, all of the old space */
	ust_blob_id old_id, new_id;
	uint64_t new_clusters;
	uint64_t grow_start, grow_ack, create_ack, write_ack, nev;
} g;

static uint64_t now(void)
{
	return ust_crashsim_num_events(g.cs);
}

static void pattern(uint8_t *buf, size_t len, uint32_t salt)
{
	size_t i;

	for (i = 0; i < len; i++) {
		buf[i] = (uint8_t)(i * 31u + salt + (i >> 9));
	}
}

static int grow_sync(struct ust_blob_store *bs)
{
	struct bt_done d = {0};

	ust_bs_grow(bs, bt_op_cb, &d);
	bt_poll();
	assert_true(d.done);
	return d.rc;
}

/* A blob of every free cluster, written with a pattern: the old space is full. */
static void fill_old_space(struct ust_blob_store *bs)
{
	struct ust_io_channel *ch = ust_bs_alloc_io_channel(bs);
	struct ust_blob *blob;
	uint8_t *buf;

	g.old_total = ust_bs_get_total_data_cluster_count(bs);
	g.old_clusters = ust_bs_get_free_cluster_count(bs);
	assert_int_equal(bt_create(bs, g.old_clusters, false, &g.old_id), 0);
	assert_int_equal(bt_open(bs, g.old_id, &blob), 0);
	buf = malloc(g.old_clusters * CLUSTER);
	pattern(buf, g.old_clusters * CLUSTER, 1);
	assert_int_equal(bt_write(blob, ch, buf, 0, g.old_clusters * UPC), 0);
	assert_int_equal(bt_close(blob), 0);
	free(buf);
	ust_bs_free_io_channel(ch);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), 0);
}

/* Format on a 4 MiB bdev, copy it onto the start of the 8 MiB one. */
static void make_grown_device(void)
{
	struct ust_blob_store *bs;
	uint8_t *img = malloc(OLD_BYTES);

	assert_int_equal(bt_malloc_create("Small", OLD_BYTES, BLOCK), 0);
	assert_int_equal(bt_init("Small", CLUSTER, 16, &bs), 0);
	fill_old_space(bs);
	assert_int_equal(bt_unload(bs), 0);
	bt_raw_read("Small", 0, img, OLD_BYTES);
	assert_int_equal(bt_malloc_delete("Small"), 0);
	assert_int_equal(bt_malloc_create("M0", NEW_BYTES, BLOCK), 0);
	bt_raw_write("M0", 0, img, OLD_BYTES);
	free(img);
}

static void run_workload(void)
{
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	struct bt_done d = {0};
	uint8_t *buf;

	bt_crash_start(g.cs);

	assert_int_equal(bt_load("CS0", &bs), 0);
	assert_int_equal(ust_bs_get_total_data_cluster_count(bs), g.old_total);
	/* The bitmap region has room (format 3): one page holds 32768 clusters. */
	assert_true(ust_bs_get_max_cluster_count(bs) >= NEW_BYTES / CLUSTER);

	g.grow_start = now();
	ust_bs_grow(bs, bt_op_cb, &d);
	bt_poll();
	assert_true(d.done);
	assert_int_equal(d.rc, 0);
	g.grow_ack = d.at_event;
	g.new_total = ust_bs_get_total_data_cluster_count(bs);
	/* The last cluster of the new size would hold the backup superblock. */
	assert_int_equal(g.new_total, g.old_total + (NEW_BYTES - OLD_BYTES) / CLUSTER);
	g.new_clusters = ust_bs_get_free_cluster_count(bs);
	assert_int_equal(g.new_clusters, g.new_total - g.old_total);
	/* Growing again without a bigger bdev changes nothing. */
	assert_int_equal(grow_sync(bs), 0);
	assert_int_equal(ust_bs_get_total_data_cluster_count(bs), g.new_total);

	/* A thick blob of every new cluster: it can only live in the new space. */
	memset(&d, 0, sizeof(d));
	ust_bs_create_blob(bs, &(struct ust_blob_opts){.num_clusters = g.new_clusters}, bt_id_cb,
			   &d);
	bt_poll();
	assert_int_equal(d.rc, 0);
	g.new_id = d.id;
	g.create_ack = d.at_event;
	assert_int_equal(ust_bs_get_free_cluster_count(bs), 0);

	ch = ust_bs_alloc_io_channel(bs);
	assert_int_equal(bt_open(bs, g.new_id, &blob), 0);
	buf = malloc(g.new_clusters * CLUSTER);
	pattern(buf, g.new_clusters * CLUSTER, 2);
	memset(&d, 0, sizeof(d));
	ust_blob_write(blob, ch, buf, 0, g.new_clusters * UPC, bt_op_cb, &d);
	bt_poll();
	assert_int_equal(d.rc, 0);
	memset(&d, 0, sizeof(d));
	ust_blob_sync_md(blob, bt_op_cb, &d); /* flushes: the write is durable */
	bt_poll();
	assert_int_equal(d.rc, 0);
	g.write_ack = d.at_event;
	free(buf);
	assert_int_equal(bt_close(blob), 0);
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(bt_unload(bs), 0);
	g.nev = now();
	ust_crashsim_stop(g.cs);
}

/* The blob's data equals its pattern. */
static void check_data(struct ust_blob_store *bs, ust_blob_id id, uint64_t clusters, uint32_t salt)
{
	struct ust_io_channel *ch = ust_bs_alloc_io_channel(bs);
	struct ust_blob *blob;
	uint8_t *want = malloc(clusters * CLUSTER), *got = malloc(clusters * CLUSTER);

	assert_int_equal(bt_open(bs, id, &blob), 0);
	assert_int_equal(ust_blob_get_num_clusters(blob), clusters);
	pattern(want, clusters * CLUSTER, salt);
	assert_int_equal(bt_read(blob, ch, got, 0, clusters * UPC), 0);
	assert_memory_equal(got, want, clusters * CLUSTER);
	assert_int_equal(bt_close(blob), 0);
	free(want);
	free(got);
	ust_bs_free_io_channel(ch);
	bt_poll();
}

static void check_cut(struct ust_crashsim_image *img, uint64_t cut, uint64_t seed)
{
	struct ust_crashsim_crash_opts opts = {.cut = cut, .seed = seed};
	struct ust_crashsim_outcome out;
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	uint64_t total, held;
	int rc;

	assert_int_equal(ust_crashsim_image_build(img, &opts, &out), 0);
	assert_int_equal(bt_load("Img0", &bs), 0);
	assert_int_equal(ust_bs_get_damaged(bs, NULL, 0), 0);
	total = ust_bs_get_total_data_cluster_count(bs);
	if (total != g.old_total && total != g.new_total) {
		fail_msg("cut %" PRIu64 " seed %" PRIu64 ": %" PRIu64 " data clusters, neither %" PRIu64
			 " nor %" PRIu64, cut, seed, total, g.old_total, g.new_total);
	}
	if (cut >= g.grow_ack) {
		assert_int_equal(total, g.new_total);
	}
	if (cut <= g.grow_start) {
		assert_int_equal(total, g.old_total);
	}
	check_data(bs, g.old_id, g.old_clusters, 1);
	held = g.old_clusters;
	memset(&blob, 0, sizeof(blob));
	{
		struct bt_done d = {0};

		ust_bs_open_blob(bs, g.new_id, bt_blob_cb, &d);
		bt_poll();
		assert_true(d.done);
		rc = d.rc;
		blob = d.blob;
	}
	if (cut >= g.create_ack) {
		assert_int_equal(rc, 0);
	}
	if (rc == 0) {
		/* It exists only on the new size: its clusters are in the new space. */
		assert_int_equal(total, g.new_total);
		held += ust_blob_get_num_allocated_clusters(blob);
		assert_int_equal(bt_close(blob), 0);
		if (cut >= g.write_ack) {
			check_data(bs, g.new_id, g.new_clusters, 2);
		}
	} else {
		assert_int_equal(rc, -ENOENT);
	}
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total - held);
	assert_int_equal(bt_unload(bs), 0);
}

static void test_grow_crash(void **state)
{
	struct ust_crashsim_image *img;
	uint64_t cut, seed, loads = 0;

	(void)state;
	memset(&g, 0, sizeof(g));
	make_grown_device();
	g.cs = bt_crash_create("M0", true);
	run_workload();
	assert_true(g.grow_ack > g.grow_start && g.create_ack > g.grow_ack);

	assert_int_equal(ust_crashsim_image_create(g.cs, "Img0", &img), 0);
	for (cut = 0; cut <= g.nev; cut++) {
		for (seed = 0; seed < 4; seed++) {
			check_cut(img, cut, seed * 104729 + cut);
			loads++;
		}
	}
	print_message("grow: %" PRIu64 " events, %" PRIu64 " crash loads\n", g.nev, loads);

	/* The image with every write: the grown store takes no more, reloads clean. */
	{
		struct ust_crashsim_crash_opts opts = {.cut = g.nev, .seed = 1};
		struct ust_crashsim_outcome out;
		struct ust_blob_store *bs;

		assert_int_equal(ust_crashsim_image_build(img, &opts, &out), 0);
		assert_int_equal(bt_load("Img0", &bs), 0);
		assert_int_equal(ust_bs_get_total_data_cluster_count(bs), g.new_total);
		assert_int_equal(ust_bs_get_free_cluster_count(bs), 0);
		assert_int_equal(grow_sync(bs), 0);
		assert_int_equal(bt_unload(bs), 0);
	}
	bt_crash_destroy(img, "M0");
	g.cs = NULL;
}

/* Calls that cannot grow answer with the errno blob.h names. */
static void test_grow_errors(void **state)
{
	struct ust_blob_store *bs;
	struct bt_done d = {0};

	(void)state;
	ust_bs_grow(NULL, bt_op_cb, &d);
	assert_true(d.done);
	assert_int_equal(d.rc, -EINVAL);

	assert_int_equal(bt_malloc_create("M1", OLD_BYTES, BLOCK), 0);
	assert_int_equal(bt_init("M1", CLUSTER, 16, &bs), 0);
	/* Not grown: nothing to do. */
	assert_int_equal(grow_sync(bs), 0);
	assert_int_equal(ust_bs_get_max_cluster_count(bs), 32768);
	/* A superblock change in flight: one at a time. */
	memset(&d, 0, sizeof(d));
	ust_bs_set_super(bs, 0, bt_op_cb, &d);
	assert_int_equal(grow_sync(bs), -EBUSY);
	bt_poll();
	assert_int_equal(d.rc, 0);
	assert_int_equal(bt_unload(bs), 0);
	assert_int_equal(bt_malloc_delete("M1"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grow_errors),
		cmocka_unit_test(test_grow_crash),
	};

	ust_log_set_print_level(UST_LOG_DISABLED);
	return cmocka_run_group_tests(tests, bt_group_setup, bt_group_teardown);
}
