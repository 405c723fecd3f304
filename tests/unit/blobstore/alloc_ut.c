/*
 * Unit tests of ust_blob_allocate() (blobstore/bs_alloc.c) on a malloc bdev:
 * a range of a thin blob gets exactly the clusters it lacked (counted by the
 * blob and by the store's free count), data already there is kept and the
 * new clusters read zeros; later writes there allocate nothing; the
 * allocation survives an unload/load and fsck finds the store clean; a
 * range that does not fit fails with -ENOSPC and changes nothing; bad
 * ranges, read-only snapshots, thick blobs; a clone's allocated clusters
 * keep reading its parent's data; a write racing the allocation of the
 * same cluster lands and the cluster is allocated once. A crash (crash
 * simulator) at every event of an allocation with a racing write loads to
 * a store that fsck finds clean, with the old data intact, every new
 * cluster reading zeros or the racing write, and, once the allocation was
 * acknowledged, every cluster allocated.
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

#include "ustor/blob.h"
#include "ustor/blob_fsck.h"
#include "ustor/crashsim.h"
#include "ustor/env.h"
#include "ustor/log.h"

#include "blob_test.h"

#define BLOCK 512u
#define DEV_BYTES (16u << 20)
#define CLUSTER (64u << 10)
#define UPC (CLUSTER / BLOCK) /* io units per cluster */

static struct ust_blob_store *g_bs;
static struct ust_io_channel *g_ch;

static int allocate(struct ust_blob *blob, uint64_t off, uint64_t len)
{
	struct bt_done d = {0};

	ust_blob_allocate(blob, off, len, bt_op_cb, &d);
	bt_poll();
	assert_true(d.done);
	return d.rc;
}

static uint64_t free_clusters(void)
{
	return ust_bs_get_free_cluster_count(g_bs);
}

static void fill(uint8_t *buf, size_t len, uint8_t seed)
{
	size_t i;

	for (i = 0; i < len; i++) {
		buf[i] = (uint8_t)(seed + i * 7);
	}
}

static bool all_zero(const uint8_t *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (buf[i] != 0) {
			return false;
		}
	}
	return true;
}

static void fsck_done(void *arg, struct ust_bs_fsck_report *report, int rc)
{
	struct ust_bs_fsck_report **out = arg;

	assert_int_equal(rc, 0);
	*out = report;
}

static void store_reload(void)
{
	struct ust_bs_fsck_report *rep = NULL;
	struct ust_bs_fsck_opts o;

	ust_bs_free_io_channel(g_ch);
	bt_poll();
	assert_int_equal(bt_unload(g_bs), 0);
	ust_bs_fsck_opts_init(&o);
	ust_bs_fsck("M0", &o, fsck_done, &rep);
	bt_poll();
	assert_non_null(rep);
	assert_int_equal(rep->errors, 0);
	assert_int_equal(rep->leaked_clusters, 0);
	ust_bs_fsck_report_free(rep);
	assert_int_equal(bt_load("M0", &g_bs), 0);
	g_ch = ust_bs_alloc_io_channel(g_bs);
	assert_non_null(g_ch);
}

static void test_allocate_range(void **state)
{
	uint8_t *w = ust_dma_malloc(CLUSTER, 4096), *r = ust_dma_malloc(CLUSTER * 8, 4096);
	struct ust_blob *blob;
	ust_blob_id id;
	uint64_t before;

	(void)state;
	fill(w, CLUSTER, 3);
	assert_int_equal(bt_create(g_bs, 8, true, &id), 0);
	assert_int_equal(bt_open(g_bs, id, &blob), 0);
	assert_int_equal(bt_write(blob, g_ch, w, 2 * UPC, UPC), 0);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), 1);
	before = free_clusters();
	/* from the middle of cluster 1 to the middle of cluster 5: clusters 1..5 */
	assert_int_equal(allocate(blob, UPC + 10, 4 * UPC), 0);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), 5);
	assert_int_equal(before - free_clusters(), 4);
	/* again: nothing to do */
	assert_int_equal(allocate(blob, 0, 6 * UPC), 0);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), 6);
	assert_int_equal(before - free_clusters(), 5);
	assert_int_equal(bt_read(blob, g_ch, r, 0, 8 * UPC), 0);
	assert_true(all_zero(r, 2 * CLUSTER));
	assert_memory_equal(r + 2 * CLUSTER, w, CLUSTER);
	assert_true(all_zero(r + 3 * CLUSTER, 5 * CLUSTER));
	/* a write into an allocated cluster allocates nothing */
	assert_int_equal(bt_write(blob, g_ch, w, 4 * UPC + 3, 5), 0);
	assert_int_equal(before - free_clusters(), 5);
	assert_int_equal(bt_close(blob), 0);

	store_reload();
	assert_int_equal(bt_open(g_bs, id, &blob), 0);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), 6);
	assert_int_equal(before - free_clusters(), 5);
	assert_int_equal(bt_read(blob, g_ch, r, 2 * UPC, UPC), 0);
	assert_memory_equal(r, w, CLUSTER);
	assert_int_equal(bt_read(blob, g_ch, r, 4 * UPC + 3, 5), 0);
	assert_memory_equal(r, w, 5 * BLOCK);
	assert_int_equal(bt_close(blob), 0);
	assert_int_equal(bt_delete(g_bs, id), 0);
	ust_dma_free(w);
	ust_dma_free(r);
}

static void test_allocate_errors(void **state)
{
	struct ust_blob *blob, *thick;
	ust_blob_id id, tid, big, snap;
	struct bt_done d = {0};
	uint64_t before, nfree;

	(void)state;
	assert_int_equal(bt_create(g_bs, 4, true, &id), 0);
	assert_int_equal(bt_open(g_bs, id, &blob), 0);
	assert_int_equal(allocate(blob, 0, 4 * UPC + 1), -EINVAL);
	assert_int_equal(allocate(blob, UINT64_MAX, 2), -EINVAL);
	assert_int_equal(allocate(blob, 0, 0), 0);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), 0);
	/* a thick blob has everything already */
	assert_int_equal(bt_create(g_bs, 2, false, &tid), 0);
	assert_int_equal(bt_open(g_bs, tid, &thick), 0);
	before = free_clusters();
	assert_int_equal(allocate(thick, 0, 2 * UPC), 0);
	assert_int_equal(free_clusters(), before);
	assert_int_equal(bt_close(thick), 0);
	/* a range bigger than the free space: -ENOSPC, nothing taken */
	nfree = free_clusters();
	assert_int_equal(bt_close(blob), 0);
	assert_int_equal(bt_create(g_bs, nfree + 2, true, &big), 0);
	assert_int_equal(bt_open(g_bs, big, &blob), 0);
	before = free_clusters();
	assert_int_equal(allocate(blob, 0, (nfree + 2) * UPC), -ENOSPC);
	assert_int_equal(free_clusters(), before);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), 0);
	/* the part that fits still can be allocated, to the last cluster */
	assert_int_equal(allocate(blob, 0, before * UPC), 0);
	assert_int_equal(free_clusters(), 0);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), before);
	assert_int_equal(allocate(blob, before * UPC, 1), -ENOSPC);
	assert_int_equal(bt_close(blob), 0);
	assert_int_equal(bt_delete(g_bs, big), 0);
	assert_int_equal(free_clusters(), nfree);
	/* a snapshot is read-only */
	ust_bs_create_snapshot(g_bs, id, NULL, 0, bt_id_cb, &d);
	bt_poll();
	assert_true(d.done);
	assert_int_equal(d.rc, 0);
	snap = d.id;
	assert_int_equal(bt_open(g_bs, snap, &blob), 0);
	assert_int_equal(allocate(blob, 0, UPC), -EPERM);
	assert_int_equal(bt_close(blob), 0);
	assert_int_equal(bt_delete(g_bs, tid), 0);
	assert_int_equal(bt_delete(g_bs, id), 0);
	store_reload();
}

static void test_allocate_clone(void **state)
{
	uint8_t *w = ust_dma_malloc(CLUSTER, 4096), *r = ust_dma_malloc(CLUSTER, 4096);
	struct ust_blob *blob;
	struct bt_done d = {0};
	ust_blob_id id, snap;

	(void)state;
	fill(w, CLUSTER, 11);
	assert_int_equal(bt_create(g_bs, 3, true, &id), 0);
	assert_int_equal(bt_open(g_bs, id, &blob), 0);
	assert_int_equal(bt_write(blob, g_ch, w, UPC, UPC), 0);
	assert_int_equal(bt_close(blob), 0);
	ust_bs_create_snapshot(g_bs, id, NULL, 0, bt_id_cb, &d);
	bt_poll();
	assert_int_equal(d.rc, 0);
	snap = d.id;
	/* id is now a clone of snap, owning nothing */
	assert_int_equal(bt_open(g_bs, id, &blob), 0);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), 0);
	assert_int_equal(allocate(blob, 0, 3 * UPC), 0);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), 3);
	assert_int_equal(bt_read(blob, g_ch, r, UPC, UPC), 0);
	assert_memory_equal(r, w, CLUSTER);
	assert_int_equal(bt_read(blob, g_ch, r, 0, UPC), 0);
	assert_true(all_zero(r, CLUSTER));
	assert_int_equal(bt_close(blob), 0);
	store_reload();
	assert_int_equal(bt_open(g_bs, id, &blob), 0);
	assert_int_equal(bt_read(blob, g_ch, r, UPC, UPC), 0);
	assert_memory_equal(r, w, CLUSTER);
	assert_int_equal(bt_close(blob), 0);
	assert_int_equal(bt_delete(g_bs, id), 0);
	assert_int_equal(bt_delete(g_bs, snap), 0);
	ust_dma_free(w);
	ust_dma_free(r);
}

/* A write to a cluster being allocated waits for it and lands in it. */
static void test_allocate_racing_write(void **state)
{
	uint8_t *w = ust_dma_malloc(CLUSTER, 4096), *r = ust_dma_malloc(CLUSTER, 4096);
	struct bt_done a = {0}, b = {0}, c = {0};
	struct ust_blob *blob;
	ust_blob_id id;
	uint64_t before;

	(void)state;
	fill(w, CLUSTER, 29);
	assert_int_equal(bt_create(g_bs, 4, true, &id), 0);
	assert_int_equal(bt_open(g_bs, id, &blob), 0);
	before = free_clusters();
	ust_blob_write(blob, g_ch, w, 2 * UPC + 1, 2, bt_op_cb, &b);
	ust_blob_allocate(blob, 0, 4 * UPC, bt_op_cb, &a);
	ust_blob_write(blob, g_ch, w + 2 * BLOCK, UPC + 7, 3, bt_op_cb, &c);
	bt_poll();
	assert_true(a.done && b.done && c.done);
	assert_int_equal(a.rc, 0);
	assert_int_equal(b.rc, 0);
	assert_int_equal(c.rc, 0);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), 4);
	assert_int_equal(before - free_clusters(), 4);
	assert_int_equal(bt_read(blob, g_ch, r, 2 * UPC, UPC), 0);
	assert_true(all_zero(r, BLOCK));
	assert_memory_equal(r + BLOCK, w, 2 * BLOCK);
	assert_true(all_zero(r + 3 * BLOCK, CLUSTER - 3 * BLOCK));
	assert_int_equal(bt_read(blob, g_ch, r, UPC, UPC), 0);
	assert_memory_equal(r + 7 * BLOCK, w + 2 * BLOCK, 3 * BLOCK);
	assert_true(all_zero(r, 7 * BLOCK));
	assert_int_equal(bt_close(blob), 0);
	store_reload();
	assert_int_equal(bt_delete(g_bs, id), 0);
	ust_dma_free(w);
	ust_dma_free(r);
}

/* ---- crashes during an allocation ---------------------------------------------------- */

#define CNCL 6u

static struct ust_crashsim *g_cs;
static uint64_t g_alloc_ack; /* events logged when the allocation was acknowledged */

static void alloc_acked(void *arg, int rc)
{
	g_alloc_ack = ust_crashsim_num_events(g_cs);
	bt_op_cb(arg, rc);
}

/* Load the crash image, check the blob, unload, fsck. */
static void check_crash_image(ust_blob_id id, const uint8_t *old, const uint8_t *racing,
			      uint64_t cut)
{
	uint8_t *r = ust_dma_malloc(CLUSTER * CNCL, 4096);
	struct ust_bs_fsck_report *rep = NULL;
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_bs_fsck_opts o;
	struct ust_blob *blob;
	uint64_t u;

	assert_int_equal(bt_load("Img1", &bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	assert_non_null(ch);
	assert_int_equal(bt_open(bs, id, &blob), 0);
	if (cut >= g_alloc_ack) {
		assert_int_equal(ust_blob_get_num_allocated_clusters(blob), CNCL);
	}
	assert_true(ust_blob_get_num_allocated_clusters(blob) >= 1);
	assert_int_equal(bt_read(blob, ch, r, 0, CNCL * UPC), 0);
	assert_memory_equal(r + CLUSTER, old, CLUSTER);
	for (u = 0; u < CNCL * UPC; u++) {
		const uint8_t *at = r + u * BLOCK;

		if (u / UPC == 1) {
			continue;
		}
		if (u >= 3 * UPC + 5 && u < 3 * UPC + 9 && memcmp(at, racing + (u - 3 * UPC - 5) * BLOCK,
								    BLOCK) == 0) {
			continue;
		}
		if (!all_zero(at, BLOCK)) {
			print_error("cut %" PRIu64 ": unit %" PRIu64 " holds neither zeros nor its data\n",
				    cut, u);
			fail();
		}
	}
	assert_int_equal(bt_close(blob), 0);
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(bt_unload(bs), 0);
	ust_bs_fsck_opts_init(&o);
	ust_bs_fsck("Img1", &o, fsck_done, &rep);
	bt_poll();
	assert_non_null(rep);
	if (rep->errors != 0 || rep->leaked_clusters != 0) {
		print_error("cut %" PRIu64 ": fsck found %u errors, %" PRIu64 " leaked clusters\n", cut,
			    rep->errors, rep->leaked_clusters);
		fail();
	}
	ust_bs_fsck_report_free(rep);
	ust_dma_free(r);
}

static void test_allocate_crash(void **state)
{
	uint8_t *old = ust_dma_malloc(CLUSTER, 4096), *racing = ust_dma_malloc(4 * BLOCK, 4096);
	struct ust_crashsim_crash_opts opts = {0};
	struct ust_crashsim_image *img;
	struct bt_done a = {0}, w = {0};
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	uint64_t nev, cut, seed;
	ust_blob_id id;

	(void)state;
	fill(old, CLUSTER, 41);
	fill(racing, 4 * BLOCK, 43);
	assert_int_equal(bt_malloc_create("C1", DEV_BYTES, BLOCK), 0);
	{
		/* stale data everywhere: a cluster named before its fill is durable shows it */
		uint8_t *junk = malloc(DEV_BYTES);

		assert_non_null(junk);
		memset(junk, 0xa5, DEV_BYTES);
		bt_raw_write("C1", 0, junk, DEV_BYTES);
		free(junk);
	}
	assert_int_equal(ust_crashsim_create("C1", "CS1"), 0);
	g_cs = ust_crashsim_get("CS1");
	assert_non_null(g_cs);
	assert_int_equal(bt_init("CS1", CLUSTER, 16, &bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	assert_int_equal(bt_create(bs, CNCL, true, &id), 0);
	assert_int_equal(bt_open(bs, id, &blob), 0);
	assert_int_equal(bt_write(blob, ch, old, UPC, UPC), 0);
	assert_int_equal(bt_sync(blob), 0);

	bt_crash_start(g_cs);
	ust_blob_allocate(blob, 0, CNCL * UPC, alloc_acked, &a);
	ust_blob_write(blob, ch, racing, 3 * UPC + 5, 4, bt_op_cb, &w);
	bt_poll();
	assert_int_equal(a.rc, 0);
	assert_int_equal(w.rc, 0);
	ust_crashsim_stop(g_cs);
	nev = ust_crashsim_num_events(g_cs);
	assert_int_equal(bt_close(blob), 0);
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(bt_unload(bs), 0);

	assert_int_equal(ust_crashsim_image_create(g_cs, "Img1", &img), 0);
	for (cut = 0; cut <= nev; cut++) {
		for (seed = 1; seed <= 3; seed++) {
			opts.cut = cut;
			opts.seed = seed * 7919 + cut;
			assert_int_equal(ust_crashsim_image_build(img, &opts, NULL), 0);
			check_crash_image(id, old, racing, cut);
		}
	}
	print_message("allocate crash: %" PRIu64 " events, acknowledged at %" PRIu64
		      ", every cut x 3 seeds\n", nev, g_alloc_ack);
	ust_crashsim_image_free(img, NULL, NULL);
	bt_poll();
	assert_int_equal(ust_crashsim_delete("CS1", NULL, NULL), 0);
	bt_poll();
	assert_int_equal(bt_malloc_delete("C1"), 0);
	g_cs = NULL;
	ust_dma_free(old);
	ust_dma_free(racing);
}

static int setup(void **state)
{
	(void)state;
	if (bt_env_setup() != 0 || bt_malloc_create("M0", DEV_BYTES, BLOCK) != 0) {
		return -1;
	}
	if (bt_init("M0", CLUSTER, 64, &g_bs) != 0) {
		return -1;
	}
	g_ch = ust_bs_alloc_io_channel(g_bs);
	return g_ch != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	ust_bs_free_io_channel(g_ch);
	bt_poll();
	if (bt_unload(g_bs) != 0 || bt_malloc_delete("M0") != 0) {
		return -1;
	}
	return bt_env_teardown();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allocate_range),
		cmocka_unit_test(test_allocate_errors),
		cmocka_unit_test(test_allocate_clone),
		cmocka_unit_test(test_allocate_racing_write),
		cmocka_unit_test(test_allocate_crash),
	};

	ust_log_set_print_level(UST_LOG_DISABLED);
	return cmocka_run_group_tests(tests, setup, teardown);
}
