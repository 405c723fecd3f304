/*
 * Unit tests for the extent page writer (blobstore/bs_md.c, format 8.2, 9.1):
 * thin blobs of several extent pages allocated in random order with many
 * writes in flight, read back after clean and dirty loads; the metadata
 * I/O of one allocation, counted by the crash simulator, stays the same
 * (root, one extent page, at most one chain page) whatever the blob's size,
 * and a re-serialisation reuses unchanged extent pages; snapshot, clone,
 * inflate and resize of such blobs, with fsck clean after all of it.
 * Data checks compare every cluster against a model in memory.
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
#include "ustor/blob_fsck.h"
#include "ustor/crashsim.h"
#include "ustor/log.h"
#include "ustor/thread.h"

#include "blob_test.h"

#define BLOCK 512u
#define DEV_BYTES (48u << 20)
#define CLUSTER (8u << 10)
#define UPC (CLUSTER / BLOCK)
#define WUNITS 8u /* one 4 KiB write */
#define EPP 1008u /* clusters per extent page (format 8.2) */
#define INFLIGHT 24u

/* What a blob's cluster c should hold: 0 zeros, else the stamp of its write. */
struct model {
	uint64_t n;
	uint32_t *stamp;
};

static void model_init(struct model *m, uint64_t n)
{
	m->n = n;
	m->stamp = calloc(n ? n : 1, sizeof(uint32_t));
	assert_non_null(m->stamp);
}

static void model_resize(struct model *m, uint64_t n)
{
	uint64_t i;

	m->stamp = realloc(m->stamp, (n ? n : 1) * sizeof(uint32_t));
	assert_non_null(m->stamp);
	for (i = m->n; i < n; i++) {
		m->stamp[i] = 0;
	}
	m->n = n;
}

static void pattern(uint8_t *buf, uint32_t stamp, uint64_t cluster)
{
	uint32_t i;

	for (i = 0; i < WUNITS * BLOCK; i += 4) {
		uint32_t v = stamp * 2654435761u ^ (uint32_t)cluster ^ i;

		memcpy(buf + i, &v, 4);
	}
}

static struct bt_done g_wd[INFLIGHT];
static uint8_t *g_wbuf[INFLIGHT];

/* Write stamp into cluster order[i] (unit 2 of it) for every i, INFLIGHT at a time. */
static void write_clusters(struct ust_blob *blob, struct ust_io_channel *ch, struct model *m,
			   const uint64_t *order, uint64_t n, uint32_t stamp)
{
	uint64_t i = 0, k;

	while (i < n) {
		uint64_t batch = n - i < INFLIGHT ? n - i : INFLIGHT;

		for (k = 0; k < batch; k++) {
			uint64_t c = order[i + k];

			memset(&g_wd[k], 0, sizeof(g_wd[k]));
			pattern(g_wbuf[k], stamp, c);
			ust_blob_write(blob, ch, g_wbuf[k], c * UPC + 2, WUNITS, bt_op_cb, &g_wd[k]);
			m->stamp[c] = stamp;
		}
		bt_poll();
		for (k = 0; k < batch; k++) {
			assert_true(g_wd[k].done);
			assert_int_equal(g_wd[k].rc, 0);
		}
		i += batch;
	}
}

/* Every cluster of the blob against the model (fallback: a parent's model). */
static void check_blob(struct ust_blob *blob, struct ust_io_channel *ch, const struct model *m,
		       const struct model *parent)
{
	uint8_t *buf = malloc(CLUSTER), *want = malloc(CLUSTER);
	uint64_t c, allocated = 0;

	assert_int_equal(ust_blob_get_num_clusters(blob), m->n);
	for (c = 0; c < m->n; c++) {
		uint32_t s = m->stamp[c];

		if (s == 0 && parent != NULL && c < parent->n) {
			s = parent->stamp[c];
		}
		allocated += m->stamp[c] != 0;
		memset(want, 0, CLUSTER);
		if (s != 0) {
			pattern(want + 2 * BLOCK, s, c);
		}
		assert_int_equal(bt_read(blob, ch, buf, c * UPC, UPC), 0);
		if (memcmp(buf, want, CLUSTER) != 0) {
			print_error("cluster %" PRIu64 ": expected stamp %u\n", c, s);
			fail();
		}
	}
	if (parent == NULL) {
		assert_int_equal(ust_blob_get_num_allocated_clusters(blob), allocated);
	}
	free(buf);
	free(want);
}

static uint64_t *shuffled(uint64_t n, uint64_t *rs)
{
	uint64_t *o = malloc(n * sizeof(*o)), i;

	for (i = 0; i < n; i++) {
		o[i] = i;
	}
	for (i = n; i > 1; i--) {
		uint64_t j = bt_rand(rs) % i, t = o[i - 1];

		o[i - 1] = o[j];
		o[j] = t;
	}
	return o;
}

static void fsck_done(void *arg, struct ust_bs_fsck_report *report, int rc)
{
	assert_int_equal(rc, 0);
	*(struct ust_bs_fsck_report **)arg = report;
}

static void check_fsck(const char *bdev)
{
	struct ust_bs_fsck_report *rep = NULL;
	struct ust_bs_fsck_opts o;

	ust_bs_fsck_opts_init(&o);
	ust_bs_fsck(bdev, &o, fsck_done, &rep);
	bt_poll();
	assert_non_null(rep);
	if (rep->errors != 0 || rep->leaked_clusters != 0 || rep->leaked_pages != 0) {
		ust_bs_fsck_report_print(rep, stderr);
		fail();
	}
	ust_bs_fsck_report_free(rep);
}

/* Clean unload of the store on M0 (its blobs closed, ch freed here), then fsck. */
static void unload_checked(struct ust_blob_store *bs, struct ust_io_channel *ch)
{
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(bt_unload(bs), 0);
	check_fsck("M0");
}

/* unload_checked, then load again with a new channel. */
static void reload_checked(struct ust_blob_store **bs, struct ust_io_channel **ch)
{
	unload_checked(*bs, *ch);
	assert_int_equal(bt_load("M0", bs), 0);
	*ch = ust_bs_alloc_io_channel(*bs);
	assert_non_null(*ch);
}

/* The device as it is now (the store loaded: what a crash would leave after the last flush). */
static uint8_t *snapshot_device(const char *bdev)
{
	uint8_t *img = malloc(DEV_BYTES);

	assert_non_null(img);
	bt_raw_read(bdev, 0, img, DEV_BYTES);
	return img;
}

/* ---- random allocation across extent pages, clean and dirty loads ------------------------ */

static void test_random_alloc_reload(void **state)
{
	const uint64_t nclu = 5 * EPP + 37; /* six extent pages, the last partial */
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	struct model m;
	uint64_t rs = 0x1234567887654321ull, *order, half;
	ust_blob_id id;
	uint8_t *img;

	(void)state;
	assert_int_equal(bt_init("M0", CLUSTER, 64, &bs), 0);
	assert_int_equal(bt_create(bs, nclu, true, &id), 0);
	assert_int_equal(bt_open(bs, id, &blob), 0);
	ch = ust_bs_alloc_io_channel(bs);
	model_init(&m, nclu);

	/* A third of the clusters, in random order, many allocations in flight. */
	order = shuffled(nclu, &rs);
	half = nclu / 3;
	write_clusters(blob, ch, &m, order, half, 1);
	check_blob(blob, ch, &m, NULL);
	/* Overwrites of allocated clusters and more allocations, mixed. */
	write_clusters(blob, ch, &m, order + half / 2, half, 2);
	assert_int_equal(ust_blob_set_xattr(blob, "name", "extent", 6), 0);
	assert_int_equal(bt_sync(blob), 0);
	check_blob(blob, ch, &m, NULL);

	/* Clean unload and load. */
	assert_int_equal(bt_close(blob), 0);
	reload_checked(&bs, &ch);
	assert_int_equal(bt_open(bs, id, &blob), 0);
	check_blob(blob, ch, &m, NULL);

	/* Allocate more after the load (its first sync reuses the loaded pages),
	 * then "crash": the image as it is, restored after the unload. */
	write_clusters(blob, ch, &m, order + nclu - nclu / 4, nclu / 4, 3);
	img = snapshot_device("M0");
	assert_int_equal(bt_close(blob), 0);
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(bt_unload(bs), 0);
	bt_raw_write("M0", 0, img, DEV_BYTES);
	free(img);
	assert_int_equal(bt_load("M0", &bs), 0);
	assert_int_equal(ust_bs_get_damaged(bs, NULL, 0), 0);
	ch = ust_bs_alloc_io_channel(bs);
	assert_int_equal(bt_open(bs, id, &blob), 0);
	check_blob(blob, ch, &m, NULL);
	{
		const void *v;
		size_t len;

		assert_int_equal(ust_blob_get_xattr(blob, "name", &v, &len), 0);
		assert_int_equal(len, 6);
	}
	assert_int_equal(bt_close(blob), 0);
	unload_checked(bs, ch);
	free(order);
	free(m.stamp);
}

/* ---- metadata I/O per allocation does not grow with the blob --------------------------- */

/* Writes (not flushes) the crash simulator saw from event from on. */
static uint64_t writes_since(struct ust_crashsim *cs, uint64_t from)
{
	struct ust_crashsim_event ev;
	uint64_t i, n = 0;

	for (i = from; i < ust_crashsim_num_events(cs); i++) {
		assert_int_equal(ust_crashsim_get_event(cs, i, &ev), 0);
		n += ev.kind == UST_CRASHSIM_EVENT_SUBMIT && ev.io_type == UST_BDEV_IO_TYPE_WRITE;
	}
	return n;
}

/* Writes one whole cluster (one data write, no fill) and returns the metadata writes. */
static uint64_t md_writes_of_alloc(struct ust_crashsim *cs, struct ust_blob *blob,
				   struct ust_io_channel *ch, uint64_t c)
{
	uint8_t *buf = calloc(1, CLUSTER);
	uint64_t from = ust_crashsim_num_events(cs), n;

	buf[0] = 1;
	assert_int_equal(bt_write(blob, ch, buf, c * UPC, UPC), 0);
	n = writes_since(cs, from);
	free(buf);
	assert_true(n >= 1);
	return n - 1;
}

static void test_md_io_per_alloc(void **state)
{
	/* 600 extent pages: the table fills the root and two chain pages. */
	const uint64_t big = 600ull * EPP, small = 2 * EPP;
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *b, *s;
	struct ust_crashsim *cs;
	ust_blob_id bid, sid;
	uint64_t rs = 77, i, from, n;

	(void)state;
	cs = bt_crash_create("M0", false);
	bt_crash_start(cs);
	assert_int_equal(bt_init("CS0", CLUSTER, 64, &bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	assert_int_equal(bt_create(bs, big, true, &bid), 0);
	assert_int_equal(bt_create(bs, small, true, &sid), 0);
	assert_int_equal(bt_open(bs, bid, &b), 0);
	assert_int_equal(bt_open(bs, sid, &s), 0);

	/* Populate many extent pages of the big blob first. */
	for (i = 0; i < 40; i++) {
		md_writes_of_alloc(cs, b, ch, (bt_rand(&rs) % 600) * EPP + i);
	}
	/* A reference in the root: root + extent page. */
	assert_int_equal(md_writes_of_alloc(cs, s, ch, 5), 2);
	assert_int_equal(md_writes_of_alloc(cs, b, ch, 7), 2);
	/* A reference in a chain page: + that chain page only. */
	assert_int_equal(md_writes_of_alloc(cs, b, ch, 599 * EPP + 3), 3);
	assert_int_equal(md_writes_of_alloc(cs, b, ch, 400 * EPP + 11), 3);
	/* A page that had no extent page yet: the same. */
	assert_int_equal(md_writes_of_alloc(cs, b, ch, 1 * EPP + 1), 2);

	/* An xattr change re-serialises the root and chain pages but reuses
	 * every extent page: no extent page is written. */
	assert_int_equal(ust_blob_set_xattr(b, "x", "1", 1), 0);
	from = ust_crashsim_num_events(cs);
	assert_int_equal(bt_sync(b), 0);
	n = writes_since(cs, from);
	assert_int_equal(n, 3);
	/* ... after which allocations patch again. */
	assert_int_equal(md_writes_of_alloc(cs, b, ch, 300 * EPP + 2), 3);

	assert_int_equal(bt_close(b), 0);
	assert_int_equal(bt_close(s), 0);
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(bt_unload(bs), 0);
	ust_crashsim_stop(cs);
	check_fsck("CS0");
	assert_int_equal(ust_crashsim_delete("CS0", NULL, NULL), 0);
	bt_poll();
}

/* ---- snapshot, clone, inflate, resize ---------------------------------------------------- */

static ust_blob_id snapshot_of(struct ust_blob_store *bs, ust_blob_id id)
{
	ust_bs_create_snapshot(bs, id, NULL, 0, bt_id_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	return bt_r.id;
}

static ust_blob_id clone_of(struct ust_blob_store *bs, ust_blob_id id)
{
	ust_bs_create_clone(bs, id, NULL, 0, bt_id_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	return bt_r.id;
}

static void inflate(struct ust_blob_store *bs, ust_blob_id id)
{
	ust_bs_inflate_blob(bs, NULL, id, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
}

static void test_snapshot_clone_inflate_resize(void **state)
{
	const uint64_t nclu = 3 * EPP + 100;
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob, *snap, *clone;
	struct model m, ms, mc;
	uint64_t rs = 99, *order, i;
	ust_blob_id id, sid, cid;

	(void)state;
	assert_int_equal(bt_init("M0", CLUSTER, 64, &bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	assert_int_equal(bt_create(bs, nclu, true, &id), 0);
	assert_int_equal(bt_open(bs, id, &blob), 0);
	model_init(&m, nclu);
	order = shuffled(nclu, &rs);
	write_clusters(blob, ch, &m, order, 600, 1);

	/* Snapshot: S takes the map (its own extent pages), the blob starts empty. */
	sid = snapshot_of(bs, id);
	model_init(&ms, nclu);
	memcpy(ms.stamp, m.stamp, nclu * sizeof(uint32_t));
	memset(m.stamp, 0, nclu * sizeof(uint32_t));
	assert_int_equal(bt_open(bs, sid, &snap), 0);
	check_blob(snap, ch, &ms, NULL);
	check_blob(blob, ch, &m, &ms);
	/* Copy-on-write into the blob across pages. */
	write_clusters(blob, ch, &m, order + 300, 500, 2);
	check_blob(blob, ch, &m, &ms);

	/* A clone of S, written, then inflated: it owns everything it reads. */
	cid = clone_of(bs, sid);
	assert_int_equal(bt_open(bs, cid, &clone), 0);
	model_init(&mc, nclu);
	write_clusters(clone, ch, &mc, order + 1000, 200, 3);
	check_blob(clone, ch, &mc, &ms);
	inflate(bs, cid);
	for (i = 0; i < nclu; i++) {
		if (mc.stamp[i] == 0) {
			mc.stamp[i] = ms.stamp[i];
		}
	}
	/* No parent any more: it owns exactly the clusters it or S had. */
	check_blob(clone, ch, &mc, NULL);

	/* Resize the blob across extent page boundaries: grow, write, shrink. */
	assert_int_equal(bt_resize(blob, nclu + 2 * EPP), 0);
	model_resize(&m, nclu + 2 * EPP);
	{
		uint64_t more[] = {nclu + 5, nclu + EPP + 7, nclu + 2 * EPP - 1, 3};

		write_clusters(blob, ch, &m, more, 4, 4);
	}
	assert_int_equal(bt_sync(blob), 0);
	check_blob(blob, ch, &m, &ms);
	assert_int_equal(bt_resize(blob, EPP + 3), 0);
	assert_int_equal(bt_sync(blob), 0);
	model_resize(&m, EPP + 3);
	check_blob(blob, ch, &m, &ms);
	/* Below one extent page: back to run lists. */
	assert_int_equal(bt_resize(blob, 900), 0);
	assert_int_equal(bt_sync(blob), 0);
	model_resize(&m, 900);
	check_blob(blob, ch, &m, &ms);

	assert_int_equal(bt_close(blob), 0);
	assert_int_equal(bt_close(snap), 0);
	assert_int_equal(bt_close(clone), 0);

	/* Everything reads the same after a clean load. */
	reload_checked(&bs, &ch);
	assert_int_equal(bt_open(bs, id, &blob), 0);
	assert_int_equal(bt_open(bs, sid, &snap), 0);
	assert_int_equal(bt_open(bs, cid, &clone), 0);
	check_blob(snap, ch, &ms, NULL);
	check_blob(blob, ch, &m, &ms);
	check_blob(clone, ch, &mc, NULL);
	/* Deleting the clone and the blob frees their extent pages. */
	assert_int_equal(bt_close(clone), 0);
	assert_int_equal(bt_close(blob), 0);
	assert_int_equal(bt_close(snap), 0);
	assert_int_equal(bt_delete(bs, cid), 0);
	assert_int_equal(bt_delete(bs, id), 0);
	unload_checked(bs, ch);
	free(order);
	free(m.stamp);
	free(ms.stamp);
	free(mc.stamp);
}

/* ---- harness ------------------------------------------------------------------------------- */

static int make_bdev(void **state)
{
	uint32_t i;

	(void)state;
	for (i = 0; i < INFLIGHT; i++) {
		g_wbuf[i] = malloc(WUNITS * BLOCK);
	}
	return bt_malloc_create("M0", DEV_BYTES, BLOCK);
}

static int drop_bdev(void **state)
{
	uint32_t i;

	(void)state;
	for (i = 0; i < INFLIGHT; i++) {
		free(g_wbuf[i]);
	}
	return bt_malloc_delete("M0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_random_alloc_reload, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_md_io_per_alloc, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_snapshot_clone_inflate_resize, make_bdev,
						drop_bdev),
	};

	return cmocka_run_group_tests(tests, bt_group_setup, bt_group_teardown);
}
