/*
 * Unit tests for snapshots and clones (blobstore/bs_snapshot.c and the parts
 * of bs_io.c, bs_recover.c that serve them) on malloc bdevs, with two
 * ust_threads polled by hand: snapshot then copy-on-write into the clone,
 * clones of a snapshot, chains of depth 5 read through, inflate and
 * decouple (data, exact cluster counts, parents), delete of a snapshot with
 * one clone (merge) and with two (-EBUSY), read-only snapshots, persistence
 * over clean and dirty loads, ENOSPC during inflate, writes racing a
 * snapshot from another thread, and every multi-blob operation cut at every
 * event of the crash simulator and resolved at load (docs/blobstore-format.md
 * 9.4). Every data check compares whole blobs against a model in memory.
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
#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"

#include "../../../bdev/malloc/bdev_malloc.h"
#include "../../../blobstore/format.h"
#include "blob_test.h"

#define BLOCK 512
#define BDEV_BYTES (16u << 20)
#define CLUSTER (64u << 10)
#define UPC (CLUSTER / BLOCK) /* io units per cluster */
#define NCL 8u                /* clusters of the usual test blob */

static struct ust_thread *g_t0, *g_t1;
static const char *g_dev = "M0"; /* the bdev the store lives on */

static int init_store(struct ust_blob_store **bs)
{
	struct ust_bs_opts o;

	ust_bs_opts_init(&o);
	o.cluster_size = CLUSTER;
	ust_bs_init(g_dev, &o, bt_bs_cb, bt_begin());
	bt_finish();
	*bs = bt_r.bs;
	return bt_r.rc;
}

static int load_store(const char *dev, struct ust_blob_store **bs)
{
	ust_bs_load(dev, NULL, bt_bs_cb, bt_begin());
	bt_finish();
	*bs = bt_r.bs;
	return bt_r.rc;
}

static int unload(struct ust_blob_store *bs)
{
	ust_bs_unload(bs, bt_op_cb, bt_begin());
	bt_finish();
	return bt_r.rc;
}

static int create(struct ust_blob_store *bs, uint64_t clusters, bool thin, ust_blob_id *id)
{
	struct ust_blob_opts o;

	ust_blob_opts_init(&o);
	o.num_clusters = clusters;
	o.thin_provision = thin;
	ust_bs_create_blob(bs, &o, bt_id_cb, bt_begin());
	bt_finish();
	*id = bt_r.id;
	return bt_r.rc;
}

static int open_blob(struct ust_blob_store *bs, ust_blob_id id, struct ust_blob **blob)
{
	ust_bs_open_blob(bs, id, bt_blob_cb, bt_begin());
	bt_finish();
	*blob = bt_r.blob;
	return bt_r.rc;
}

static int close_blob(struct ust_blob *blob)
{
	ust_blob_close(blob, bt_op_cb, bt_begin());
	bt_finish();
	return bt_r.rc;
}

static int delete_blob(struct ust_blob_store *bs, ust_blob_id id)
{
	ust_bs_delete_blob(bs, id, bt_op_cb, bt_begin());
	bt_finish();
	return bt_r.rc;
}

static int snapshot(struct ust_blob_store *bs, ust_blob_id id, ust_blob_id *sid)
{
	ust_bs_create_snapshot(bs, id, NULL, 0, bt_id_cb, bt_begin());
	bt_finish();
	*sid = bt_r.id;
	return bt_r.rc;
}

static int clone_of(struct ust_blob_store *bs, ust_blob_id id, ust_blob_id *cid)
{
	ust_bs_create_clone(bs, id, NULL, 0, bt_id_cb, bt_begin());
	bt_finish();
	*cid = bt_r.id;
	return bt_r.rc;
}

static int inflate(struct ust_blob_store *bs, ust_blob_id id)
{
	ust_bs_inflate_blob(bs, NULL, id, bt_op_cb, bt_begin());
	bt_finish();
	return bt_r.rc;
}

static int decouple(struct ust_blob_store *bs, ust_blob_id id)
{
	ust_bs_blob_decouple_parent(bs, NULL, id, bt_op_cb, bt_begin());
	bt_finish();
	return bt_r.rc;
}

static int bwrite(struct ust_blob *blob, struct ust_io_channel *ch, void *buf, uint64_t off,
		  uint64_t len)
{
	ust_blob_write(blob, ch, buf, off, len, bt_op_cb, bt_begin());
	bt_finish();
	return bt_r.rc;
}

static int bread(struct ust_blob *blob, struct ust_io_channel *ch, void *buf, uint64_t off,
		 uint64_t len)
{
	ust_blob_read(blob, ch, buf, off, len, bt_op_cb, bt_begin());
	bt_finish();
	return bt_r.rc;
}

static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
	size_t i;

	for (i = 0; i < len; i++) {
		buf[i] = (uint8_t)((i * 31u + seed * 7u + (i >> 9)) ^ seed);
	}
}

/* ---- a model of each blob's content ---------------------------------------------------- */

struct model {
	uint64_t clusters;
	uint8_t *data;
};

static struct model model_new(uint64_t clusters)
{
	struct model m = {.clusters = clusters, .data = calloc(clusters, CLUSTER)};

	assert_non_null(m.data);
	return m;
}

static struct model model_dup(const struct model *from)
{
	struct model m = model_new(from->clusters);

	memcpy(m.data, from->data, from->clusters * CLUSTER);
	return m;
}

static void model_free(struct model *m)
{
	free(m->data);
	m->data = NULL;
}

/* Write units [off, off + len) of the open blob with a pattern, and into the model. */
static void mwrite(struct ust_blob *blob, struct ust_io_channel *ch, struct model *m, uint64_t off,
		   uint64_t len, uint32_t seed)
{
	uint8_t *buf = malloc(len * BLOCK);

	fill(buf, len * BLOCK, seed);
	assert_int_equal(bwrite(blob, ch, buf, off, len), 0);
	memcpy(m->data + off * BLOCK, buf, len * BLOCK);
	free(buf);
}

static void check_open(struct ust_blob *blob, struct ust_io_channel *ch, const struct model *m)
{
	uint8_t *buf = malloc(CLUSTER);
	uint64_t c;

	assert_int_equal(ust_blob_get_num_clusters(blob), m->clusters);
	for (c = 0; c < m->clusters; c++) {
		assert_int_equal(bread(blob, ch, buf, c * UPC, UPC), 0);
		if (memcmp(buf, m->data + c * CLUSTER, CLUSTER) != 0) {
			print_error("blob 0x%" PRIx64 ": cluster %" PRIu64 " differs\n",
				    ust_blob_get_id(blob), c);
			fail();
		}
	}
	free(buf);
}

static void check_blob(struct ust_blob_store *bs, struct ust_io_channel *ch, ust_blob_id id,
		       const struct model *m)
{
	struct ust_blob *blob;

	assert_int_equal(open_blob(bs, id, &blob), 0);
	check_open(blob, ch, m);
	assert_int_equal(close_blob(blob), 0);
}

struct blob_info {
	ust_blob_id parent;
	uint64_t allocated;
	bool snapshot;
	bool read_only;
};

static struct blob_info info(struct ust_blob_store *bs, ust_blob_id id)
{
	struct blob_info i;
	struct ust_blob *blob;

	assert_int_equal(open_blob(bs, id, &blob), 0);
	i.parent = ust_blob_get_parent_id(blob);
	i.allocated = ust_blob_get_num_allocated_clusters(blob);
	i.snapshot = ust_blob_is_snapshot(blob);
	i.read_only = ust_blob_is_read_only(blob);
	assert_true(ust_blob_is_clone(blob) == (i.parent != 0));
	assert_int_equal(close_blob(blob), 0);
	return i;
}

static size_t clones(struct ust_blob_store *bs, ust_blob_id id, ust_blob_id *ids, size_t cap)
{
	size_t n = cap;

	assert_int_equal(ust_bs_get_clones(bs, id, ids, &n), 0);
	return n;
}

static bool has_clone(struct ust_blob_store *bs, ust_blob_id id, ust_blob_id clone)
{
	ust_blob_id ids[16];
	size_t n = clones(bs, id, ids, 16), i;

	for (i = 0; i < n; i++) {
		if (ids[i] == clone) {
			return true;
		}
	}
	return false;
}

/* ---- raw access to the bdev image (only while no store holds it) ------------------------ */

static bool super_clean(void)
{
	uint8_t *page = malloc(UST_BS_PAGE_SIZE);
	struct ust_bs_fmt_err err;
	struct ust_bs_super sb;

	bt_raw_read(g_dev, 0, page, UST_BS_PAGE_SIZE);
	assert_int_equal(ust_bs_fmt_super_decode(page, &sb, &err), 0);
	free(page);
	return sb.clean;
}

/*
 * A dirty reload: what the device holds now (everything acknowledged is
 * durable) is put back after a clean unload, so the next load recovers.
 */
static void dirty_reload(struct ust_blob_store **bs, struct ust_io_channel **ch)
{
	uint8_t *image = malloc(BDEV_BYTES);

	ust_bs_free_io_channel(*ch);
	bt_poll();
	bt_raw_read(g_dev, 0, image, BDEV_BYTES);
	assert_int_equal(unload(*bs), 0);
	bt_raw_write(g_dev, 0, image, BDEV_BYTES);
	free(image);
	assert_false(super_clean());
	assert_int_equal(load_store(g_dev, bs), 0);
	assert_int_equal(ust_bs_get_damaged(*bs, NULL, 0), 0);
	*ch = ust_bs_alloc_io_channel(*bs);
}

static void clean_reload(struct ust_blob_store **bs, struct ust_io_channel **ch)
{
	ust_bs_free_io_channel(*ch);
	bt_poll();
	assert_int_equal(unload(*bs), 0);
	assert_true(super_clean());
	assert_int_equal(load_store(g_dev, bs), 0);
	assert_int_equal(ust_bs_get_damaged(*bs, NULL, 0), 0);
	*ch = ust_bs_alloc_io_channel(*bs);
}

/* ---- fixtures --------------------------------------------------------------------------- */

static int setup(void **state)
{
	(void)state;
	if (bt_env_setup_threads(2) != 0) {
		return -1;
	}
	g_t0 = bt_thread(0);
	g_t1 = bt_thread(1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return bt_env_teardown();
}

static int make_bdev(void **state)
{
	(void)state;
	g_dev = "M0";
	return bt_malloc_create("M0", BDEV_BYTES, BLOCK);
}

static int drop_bdev(void **state)
{
	(void)state;
	return bt_malloc_delete("M0");
}

/* ---- snapshot and copy-on-write ------------------------------------------------------------ */

/* A thin blob of NCL clusters with data in clusters 0..5 (1 and 4 partly). */
static ust_blob_id make_source(struct ust_blob_store *bs, struct ust_io_channel *ch,
			       struct model *m)
{
	struct ust_blob *blob;
	ust_blob_id id;

	*m = model_new(NCL);
	assert_int_equal(create(bs, NCL, true, &id), 0);
	assert_int_equal(open_blob(bs, id, &blob), 0);
	mwrite(blob, ch, m, 0, UPC, 1);
	mwrite(blob, ch, m, UPC + 5, 17, 2);
	mwrite(blob, ch, m, 2 * UPC, 2 * UPC, 3);
	mwrite(blob, ch, m, 4 * UPC + UPC / 2, UPC / 2, 4);
	mwrite(blob, ch, m, 5 * UPC, UPC, 5);
	assert_int_equal(ust_blob_set_xattr(blob, "name", "source", 6), 0);
	assert_int_equal(close_blob(blob), 0);
	return id;
}

static void test_snapshot_cow(void **state)
{
	struct ust_blob_xattr sx = {.name = "snapname", .value = "s1", .value_len = 2};
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob, *snap;
	struct model mb, ms;
	struct blob_info bi, si;
	ust_blob_id b, s, s2, ids[4];
	uint64_t free_before;
	const void *v;
	size_t len;
	int pass;

	(void)state;
	assert_int_equal(init_store(&bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	b = make_source(bs, ch, &mb);
	free_before = ust_bs_get_free_cluster_count(bs);
	assert_int_equal(info(bs, b).allocated, 6);

	ust_bs_create_snapshot(bs, b, &sx, 1, bt_id_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	s = bt_r.id;
	assert_true(s != 0 && s != b);
	/* The snapshot took the clusters: none was allocated or freed. */
	assert_int_equal(ust_bs_get_free_cluster_count(bs), free_before);
	bi = info(bs, b);
	si = info(bs, s);
	assert_int_equal(bi.parent, s);
	assert_int_equal(bi.allocated, 0);
	assert_false(bi.snapshot);
	assert_false(bi.read_only);
	assert_int_equal(si.parent, 0);
	assert_int_equal(si.allocated, 6);
	assert_true(si.snapshot);
	assert_true(si.read_only);
	assert_int_equal(clones(bs, s, ids, 4), 1);
	assert_int_equal(ids[0], b);
	assert_int_equal(clones(bs, b, ids, 4), 0);
	ms = model_dup(&mb);
	check_blob(bs, ch, b, &mb);
	check_blob(bs, ch, s, &ms);

	/* Copy-on-write: a partial write keeps the rest of the snapshot's cluster,
	 * a whole-cluster write and a write into a hole of the whole chain. */
	assert_int_equal(open_blob(bs, b, &blob), 0);
	mwrite(blob, ch, &mb, 2 * UPC + 7, 3, 10);
	mwrite(blob, ch, &mb, 5 * UPC, UPC, 11);
	mwrite(blob, ch, &mb, 7 * UPC + 100, 9, 12);
	mwrite(blob, ch, &mb, 4 * UPC + 3, 2, 13);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), 4);
	check_open(blob, ch, &mb);
	assert_int_equal(ust_blob_get_xattr(blob, "name", &v, &len), 0);
	assert_int_equal(len, 6);
	assert_int_equal(ust_blob_get_xattr(blob, "snapname", &v, &len), -ENOENT);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), free_before - 4);
	check_blob(bs, ch, s, &ms);

	/* The snapshot is read-only. */
	assert_int_equal(open_blob(bs, s, &snap), 0);
	{
		uint8_t buf[BLOCK] = {0};

		assert_int_equal(bwrite(snap, ch, buf, 0, 1), -EPERM);
		ust_blob_write_zeroes(snap, ch, 0, 1, bt_op_cb, bt_begin());
		bt_finish();
		assert_int_equal(bt_r.rc, -EPERM);
	}
	ust_blob_resize(snap, NCL + 1, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, -EPERM);
	assert_int_equal(ust_blob_set_xattr(snap, "x", "y", 1), -EPERM);
	assert_int_equal(ust_blob_remove_xattr(snap, "snapname"), -EPERM);
	assert_int_equal(ust_blob_get_xattr(snap, "snapname", &v, &len), 0);
	assert_memory_equal(v, "s1", 2);
	/* Open by the user: it cannot be deleted (merged) now. */
	assert_int_equal(delete_blob(bs, s), -EBUSY);
	assert_int_equal(close_blob(snap), 0);
	/* A snapshot of a snapshot is refused; a snapshot of the clone is not. */
	assert_int_equal(snapshot(bs, s, &s2), -EINVAL);
	assert_int_equal(snapshot(bs, 0x12345, &s2), -ENOENT);

	for (pass = 0; pass < 2; pass++) {
		if (pass == 0) {
			clean_reload(&bs, &ch);
		} else {
			dirty_reload(&bs, &ch);
		}
		assert_int_equal(ust_bs_get_free_cluster_count(bs), free_before - 4);
		assert_int_equal(info(bs, b).parent, s);
		assert_int_equal(info(bs, b).allocated, 4);
		assert_true(info(bs, s).snapshot);
		assert_int_equal(clones(bs, s, ids, 4), 1);
		check_blob(bs, ch, b, &mb);
		check_blob(bs, ch, s, &ms);
	}
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(unload(bs), 0);
	model_free(&mb);
	model_free(&ms);
}

/* Unmap and write_zeroes on a clone read zeros afterwards, not the parent's data. */
static void test_clone_zeroes(void **state)
{
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	struct model mb, ms;
	ust_blob_id b, s;

	(void)state;
	assert_int_equal(init_store(&bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	b = make_source(bs, ch, &mb);
	assert_int_equal(snapshot(bs, b, &s), 0);
	ms = model_dup(&mb);
	assert_int_equal(open_blob(bs, b, &blob), 0);
	/* Whole cluster 0 unmapped, part of 2 zeroed, all of 3 zeroed. */
	ust_blob_unmap(blob, ch, 0, UPC, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	memset(mb.data, 0, CLUSTER);
	ust_blob_write_zeroes(blob, ch, 2 * UPC + 10, 20, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	memset(mb.data + (2 * UPC + 10) * BLOCK, 0, 20 * BLOCK);
	ust_blob_write_zeroes(blob, ch, 3 * UPC, UPC, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	memset(mb.data + 3 * CLUSTER, 0, CLUSTER);
	/* Unmapping a hole of the whole chain changes nothing. */
	ust_blob_unmap(blob, ch, 6 * UPC, UPC, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	check_open(blob, ch, &mb);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), 3);
	/* An allocated cluster of a clone, unmapped whole, reads zeros too. */
	ust_blob_unmap(blob, ch, 2 * UPC, UPC, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	memset(mb.data + 2 * CLUSTER, 0, CLUSTER);
	check_open(blob, ch, &mb);
	assert_int_equal(close_blob(blob), 0);
	check_blob(bs, ch, s, &ms);
	dirty_reload(&bs, &ch);
	check_blob(bs, ch, b, &mb);
	check_blob(bs, ch, s, &ms);
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(unload(bs), 0);
	model_free(&mb);
	model_free(&ms);
}

/* Writes from another thread while the snapshot is taken: each lands whole on one side. */
struct tw {
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	struct ust_io_channel *ch;
	uint8_t *buf;
	uint64_t off;
	int rc;
	bool done;
};

static void tw_done(void *arg, int rc)
{
	struct tw *w = arg;

	w->rc = rc;
	w->done = true;
}

static void tw_submit(void *arg)
{
	struct tw *w = arg;

	if (w->ch == NULL) {
		w->ch = ust_bs_alloc_io_channel(w->bs);
	}
	ust_blob_write(w->blob, w->ch, w->buf, w->off, 8, tw_done, w);
}

static void tw_put(void *arg)
{
	struct tw *w = arg;

	ust_bs_free_io_channel(w->ch);
}

static void test_snapshot_concurrent_writes(void **state)
{
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	struct model mb, ms;
	struct tw w[4];
	ust_blob_id b, s;
	int i;

	(void)state;
	assert_int_equal(init_store(&bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	b = make_source(bs, ch, &mb);
	ms = model_dup(&mb);
	assert_int_equal(open_blob(bs, b, &blob), 0);
	memset(w, 0, sizeof(w));
	for (i = 0; i < 4; i++) {
		w[i].bs = bs;
		w[i].blob = blob;
		w[i].buf = malloc(8 * BLOCK);
		fill(w[i].buf, 8 * BLOCK, 40 + (uint32_t)i);
		w[i].off = (uint64_t)i * UPC + 3; /* clusters 0..3: allocated before */
		memcpy(mb.data + w[i].off * BLOCK, w[i].buf, 8 * BLOCK);
	}
	/* Two writes go out before the snapshot starts, two right after. */
	assert_int_equal(ust_thread_send_msg(g_t1, tw_submit, &w[0]), 0);
	assert_int_equal(ust_thread_send_msg(g_t1, tw_submit, &w[1]), 0);
	ust_bs_create_snapshot(bs, b, NULL, 0, bt_id_cb, bt_begin());
	assert_int_equal(ust_thread_send_msg(g_t1, tw_submit, &w[2]), 0);
	assert_int_equal(ust_thread_send_msg(g_t1, tw_submit, &w[3]), 0);
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	s = bt_r.id;
	bt_poll();
	for (i = 0; i < 4; i++) {
		assert_true(w[i].done);
		assert_int_equal(w[i].rc, 0);
	}
	/* The blob has every write; the snapshot each write either wholly or not at all. */
	check_open(blob, ch, &mb);
	{
		uint8_t *buf = malloc(8 * BLOCK);
		struct ust_blob *snap;

		assert_int_equal(open_blob(bs, s, &snap), 0);
		for (i = 0; i < 4; i++) {
			assert_int_equal(bread(snap, ch, buf, w[i].off, 8), 0);
			assert_true(memcmp(buf, w[i].buf, 8 * BLOCK) == 0 ||
				    memcmp(buf, ms.data + w[i].off * BLOCK, 8 * BLOCK) == 0);
			memcpy(ms.data + w[i].off * BLOCK, buf, 8 * BLOCK);
		}
		check_open(snap, ch, &ms);
		assert_int_equal(close_blob(snap), 0);
		free(buf);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(ust_thread_send_msg(g_t1, tw_put, &w[i]), 0);
	}
	bt_poll();
	assert_int_equal(close_blob(blob), 0);
	dirty_reload(&bs, &ch);
	check_blob(bs, ch, b, &mb);
	check_blob(bs, ch, s, &ms);
	for (i = 0; i < 4; i++) {
		free(w[i].buf);
	}
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(unload(bs), 0);
	model_free(&mb);
	model_free(&ms);
}

/* ---- clones -------------------------------------------------------------------------------- */

static void test_clones(void **state)
{
	struct ust_blob_xattr cx = {.name = "c", .value = "1", .value_len = 1, .internal = true};
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	struct model mb, ms, m1, m2;
	ust_blob_id b, s, c1, c2, x, ids[4];
	uint64_t free0, free1;
	const void *v;
	size_t len, n;

	(void)state;
	assert_int_equal(init_store(&bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	b = make_source(bs, ch, &mb);
	assert_int_equal(snapshot(bs, b, &s), 0);
	ms = model_dup(&mb);
	/* Only read-only blobs are cloned. */
	assert_int_equal(clone_of(bs, b, &x), -EINVAL);
	free0 = ust_bs_get_free_cluster_count(bs);
	ust_bs_create_clone(bs, s, &cx, 1, bt_id_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	c1 = bt_r.id;
	assert_int_equal(clone_of(bs, s, &c2), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), free0);
	assert_int_equal(info(bs, c1).parent, s);
	assert_int_equal(info(bs, c1).allocated, 0);
	assert_true(ust_bs_get_clones(bs, s, ids, &(size_t){2}) == -ENOMEM);
	n = 0;
	assert_int_equal(ust_bs_get_clones(bs, s, NULL, &n), -ENOMEM);
	assert_int_equal(n, 3);
	assert_int_equal(clones(bs, s, ids, 4), 3);
	assert_true(has_clone(bs, s, b) && has_clone(bs, s, c1) && has_clone(bs, s, c2));

	m1 = model_dup(&ms);
	m2 = model_dup(&ms);
	assert_int_equal(open_blob(bs, c1, &blob), 0);
	assert_int_equal(ust_blob_get_internal_xattr(blob, "c", &v, &len), 0);
	mwrite(blob, ch, &m1, 1 * UPC, 4, 21);
	mwrite(blob, ch, &m1, 6 * UPC, UPC, 22);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(open_blob(bs, c2, &blob), 0);
	mwrite(blob, ch, &m2, 1 * UPC + 1, 4, 23);
	assert_int_equal(close_blob(blob), 0);
	check_blob(bs, ch, c1, &m1);
	check_blob(bs, ch, c2, &m2);
	check_blob(bs, ch, s, &ms);
	check_blob(bs, ch, b, &mb);

	/* Three clones, then two: no merge possible. */
	assert_int_equal(delete_blob(bs, s), -EBUSY);
	assert_int_equal(delete_blob(bs, c2), 0);
	assert_int_equal(delete_blob(bs, s), -EBUSY);
	check_blob(bs, ch, s, &ms);
	dirty_reload(&bs, &ch);
	assert_int_equal(clones(bs, s, ids, 4), 2);
	assert_int_equal(open_blob(bs, c2, &blob), -ENOENT);
	check_blob(bs, ch, c1, &m1);
	assert_int_equal(delete_blob(bs, c1), 0);
	free1 = ust_bs_get_free_cluster_count(bs);

	/* One clone left: deleting the snapshot merges it into b. S held 6
	 * clusters; b wrote none of them: b takes them all, nothing is freed. */
	assert_int_equal(info(bs, b).allocated, 0);
	assert_int_equal(delete_blob(bs, s), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), free1);
	assert_int_equal(open_blob(bs, s, &blob), -ENOENT);
	assert_int_equal(info(bs, b).parent, 0);
	assert_int_equal(info(bs, b).allocated, 6);
	check_blob(bs, ch, b, &mb);
	clean_reload(&bs, &ch);
	check_blob(bs, ch, b, &mb);
	assert_int_equal(info(bs, b).allocated, 6);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), free1);
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(unload(bs), 0);
	model_free(&mb);
	model_free(&ms);
	model_free(&m1);
	model_free(&m2);
}

/* ---- chains -------------------------------------------------------------------------------- */

#define DEPTH 5

static void test_chain(void **state)
{
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	struct model mb, ms[DEPTH];
	ust_blob_id b, s[DEPTH], ids[4];
	uint64_t free0;
	int k, pass;

	(void)state;
	assert_int_equal(init_store(&bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	mb = model_new(NCL);
	assert_int_equal(create(bs, NCL, true, &b), 0);
	/* Level k writes cluster k (whole) and part of cluster 7, then snapshots. */
	for (k = 0; k < DEPTH; k++) {
		assert_int_equal(open_blob(bs, b, &blob), 0);
		mwrite(blob, ch, &mb, (uint64_t)k * UPC, UPC, 100 + (uint32_t)k);
		mwrite(blob, ch, &mb, 7 * UPC + (uint64_t)k * 8, 8, 200 + (uint32_t)k);
		assert_int_equal(close_blob(blob), 0);
		assert_int_equal(snapshot(bs, b, &s[k]), 0);
		ms[k] = model_dup(&mb);
	}
	free0 = ust_bs_get_free_cluster_count(bs);
	/* s0 <- s1 <- ... <- s4 <- b: every level reads through all below it. */
	for (pass = 0; pass < 3; pass++) {
		assert_int_equal(info(bs, b).parent, s[DEPTH - 1]);
		assert_int_equal(info(bs, s[0]).parent, 0);
		for (k = 1; k < DEPTH; k++) {
			assert_int_equal(info(bs, s[k]).parent, s[k - 1]);
			assert_int_equal(info(bs, s[k]).allocated, 2);
			assert_int_equal(clones(bs, s[k - 1], ids, 4), 1);
			assert_int_equal(ids[0], s[k]);
		}
		for (k = 0; k < DEPTH; k++) {
			check_blob(bs, ch, s[k], &ms[k]);
		}
		check_blob(bs, ch, b, &mb);
		assert_int_equal(ust_bs_get_free_cluster_count(bs), free0);
		if (pass == 0) {
			clean_reload(&bs, &ch);
		} else if (pass == 1) {
			dirty_reload(&bs, &ch);
		}
	}
	/* Delete s2 (one clone, s3: a snapshot itself): s3 takes what it reads of s2. */
	assert_int_equal(delete_blob(bs, s[2]), 0);
	assert_int_equal(info(bs, s[3]).parent, s[1]);
	/* s2 held clusters 2 and 7; s3 had its own 7, so it takes 2 and 7 is freed. */
	assert_int_equal(info(bs, s[3]).allocated, 3);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), free0 + 1);
	check_blob(bs, ch, s[3], &ms[3]);
	check_blob(bs, ch, s[4], &ms[4]);
	check_blob(bs, ch, b, &mb);
	dirty_reload(&bs, &ch);
	check_blob(bs, ch, s[3], &ms[3]);
	check_blob(bs, ch, b, &mb);
	/* Delete the bottom of the chain (s0, clone s1). */
	assert_int_equal(delete_blob(bs, s[0]), 0);
	assert_int_equal(info(bs, s[1]).parent, 0);
	check_blob(bs, ch, s[1], &ms[1]);
	check_blob(bs, ch, b, &mb);
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(unload(bs), 0);
	model_free(&mb);
	for (k = 0; k < DEPTH; k++) {
		model_free(&ms[k]);
	}
}

/* ---- inflate and decouple ------------------------------------------------------------------- */

static void test_inflate_decouple(void **state)
{
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	struct model mb, m1, m2;
	ust_blob_id b, s1, s2, plain;
	uint64_t free0;

	(void)state;
	assert_int_equal(init_store(&bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	mb = model_new(NCL);
	assert_int_equal(create(bs, NCL, true, &b), 0);
	assert_int_equal(open_blob(bs, b, &blob), 0);
	mwrite(blob, ch, &mb, 0, 3 * UPC, 1); /* clusters 0,1,2 */
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(snapshot(bs, b, &s1), 0); /* s1: 0,1,2 */
	m1 = model_dup(&mb);
	assert_int_equal(open_blob(bs, b, &blob), 0);
	mwrite(blob, ch, &mb, 2 * UPC + 9, 5, 2); /* 2 (copy-on-write) */
	mwrite(blob, ch, &mb, 3 * UPC, UPC, 3);   /* 3 */
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(snapshot(bs, b, &s2), 0); /* s2: 2,3 */
	m2 = model_dup(&mb);
	assert_int_equal(open_blob(bs, b, &blob), 0);
	mwrite(blob, ch, &mb, 3 * UPC + 1, 1, 4); /* 3 */
	mwrite(blob, ch, &mb, 5 * UPC, 1, 5);     /* 5 */
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(info(bs, b).allocated, 2);

	/* Neither works on a read-only blob; decouple needs a parent. */
	assert_int_equal(inflate(bs, s2), -EPERM);
	assert_int_equal(decouple(bs, s2), -EPERM);
	assert_int_equal(create(bs, 2, true, &plain), 0);
	assert_int_equal(decouple(bs, plain), -EINVAL);
	assert_int_equal(inflate(bs, plain), 0);
	assert_int_equal(info(bs, plain).allocated, 0);

	/* Decouple b from s2: it copies s2's cluster 2 (3 is its own). */
	free0 = ust_bs_get_free_cluster_count(bs);
	assert_int_equal(decouple(bs, b), 0);
	assert_int_equal(info(bs, b).parent, s1);
	assert_int_equal(info(bs, b).allocated, 3);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), free0 - 1);
	assert_false(has_clone(bs, s2, b));
	assert_true(has_clone(bs, s1, b) && has_clone(bs, s1, s2));
	check_blob(bs, ch, b, &mb);
	check_blob(bs, ch, s2, &m2);
	check_blob(bs, ch, s1, &m1);
	dirty_reload(&bs, &ch);
	assert_int_equal(info(bs, b).parent, s1);
	check_blob(bs, ch, b, &mb);

	/* Inflate b: it copies s1's clusters 0 and 1; 4, 6, 7 stay holes (zeros). */
	assert_int_equal(inflate(bs, b), 0);
	assert_int_equal(info(bs, b).parent, 0);
	assert_int_equal(info(bs, b).allocated, 5);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), free0 - 3);
	assert_true(has_clone(bs, s1, s2) && !has_clone(bs, s1, b));
	check_blob(bs, ch, b, &mb);
	check_blob(bs, ch, s1, &m1);
	clean_reload(&bs, &ch);
	assert_int_equal(info(bs, b).parent, 0);
	assert_int_equal(info(bs, b).allocated, 5);
	check_blob(bs, ch, b, &mb);
	/* Inflate through a chain in one go: a clone of s2 reads s2 and s1. */
	{
		ust_blob_id c;

		assert_int_equal(clone_of(bs, s2, &c), 0);
		assert_int_equal(inflate(bs, c), 0);
		assert_int_equal(info(bs, c).parent, 0);
		assert_int_equal(info(bs, c).allocated, 4);
		check_blob(bs, ch, c, &m2);
		assert_int_equal(delete_blob(bs, c), 0);
	}
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(unload(bs), 0);
	model_free(&mb);
	model_free(&m1);
	model_free(&m2);
}

static void test_inflate_enospc(void **state)
{
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	struct model mb;
	ust_blob_id b, s, filler;
	uint64_t free0, i;
	uint8_t *buf = malloc(CLUSTER);

	(void)state;
	assert_int_equal(init_store(&bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	mb = model_new(64);
	assert_int_equal(create(bs, 64, true, &b), 0);
	assert_int_equal(open_blob(bs, b, &blob), 0);
	for (i = 0; i < 64; i += 2) {
		mwrite(blob, ch, &mb, i * UPC, UPC, (uint32_t)i + 1);
	}
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(snapshot(bs, b, &s), 0);
	/* Leave room for 20 of the 32 copies. */
	assert_int_equal(create(bs, ust_bs_get_free_cluster_count(bs) - 20, false, &filler), 0);
	free0 = ust_bs_get_free_cluster_count(bs);
	assert_int_equal(free0, 20);
	assert_int_equal(inflate(bs, b), -ENOSPC);
	assert_int_equal(decouple(bs, b), -ENOSPC);
	/* Both blobs as they were. */
	assert_int_equal(ust_bs_get_free_cluster_count(bs), free0);
	assert_int_equal(info(bs, b).parent, s);
	assert_int_equal(info(bs, b).allocated, 0);
	assert_int_equal(info(bs, s).allocated, 32);
	check_blob(bs, ch, b, &mb);
	check_blob(bs, ch, s, &mb);
	/* A copy-on-write still works in the space left. */
	assert_int_equal(open_blob(bs, b, &blob), 0);
	mwrite(blob, ch, &mb, 2 * UPC + 3, 1, 99);
	assert_int_equal(close_blob(blob), 0);
	dirty_reload(&bs, &ch);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), free0 - 1);
	check_blob(bs, ch, b, &mb);
	assert_int_equal(delete_blob(bs, filler), 0);
	assert_int_equal(inflate(bs, b), 0);
	assert_int_equal(info(bs, b).allocated, 32);
	assert_int_equal(info(bs, b).parent, 0);
	check_blob(bs, ch, b, &mb);
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(unload(bs), 0);
	model_free(&mb);
	free(buf);
}

/* ---- delete with merge ----------------------------------------------------------------------- */

static void test_delete_merge(void **state)
{
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	struct model mb, ms;
	ust_blob_id b, s, c2;
	uint64_t free0;
	int pass;

	(void)state;
	assert_int_equal(init_store(&bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	b = make_source(bs, ch, &mb); /* clusters 0..5 */
	{
		/* With an xattr: its tombstone must still carry no descriptor (8.1). */
		struct ust_blob_xattr x = {.name = "snap", .value = "v", .value_len = 1};

		ust_bs_create_snapshot(bs, b, &x, 1, bt_id_cb, bt_begin());
		bt_finish();
		assert_int_equal(bt_r.rc, 0);
		s = bt_r.id;
	}
	ms = model_dup(&mb);
	assert_int_equal(open_blob(bs, b, &blob), 0);
	mwrite(blob, ch, &mb, 1 * UPC, 2, 31);    /* overrides s's 1 */
	mwrite(blob, ch, &mb, 4 * UPC, UPC, 32);  /* overrides s's 4 */
	mwrite(blob, ch, &mb, 7 * UPC + 5, 1, 33); /* its own 7 */
	/* Open clone: the merge works under it, and it keeps reading. */
	free0 = ust_bs_get_free_cluster_count(bs);
	assert_int_equal(delete_blob(bs, s), 0);
	/* s's 1 and 4 were overridden: freed; 0, 2, 3, 5 went to b. */
	assert_int_equal(ust_bs_get_free_cluster_count(bs), free0 + 2);
	assert_int_equal(ust_blob_get_parent_id(blob), 0);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), 7);
	check_open(blob, ch, &mb);
	mwrite(blob, ch, &mb, 0, 1, 34);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(open_blob(bs, s, &blob), -ENOENT);
	assert_int_equal(delete_blob(bs, s), -ENOENT);
	for (pass = 0; pass < 2; pass++) {
		if (pass == 0) {
			dirty_reload(&bs, &ch);
		} else {
			clean_reload(&bs, &ch);
		}
		assert_int_equal(ust_bs_get_free_cluster_count(bs), free0 + 2);
		assert_int_equal(info(bs, b).parent, 0);
		assert_int_equal(info(bs, b).allocated, 7);
		assert_int_equal(open_blob(bs, s, &blob), -ENOENT);
		check_blob(bs, ch, b, &mb);
	}
	/* A snapshot without clones is deleted like any blob. */
	assert_int_equal(snapshot(bs, b, &s), 0);
	assert_int_equal(clone_of(bs, s, &c2), 0);
	assert_int_equal(delete_blob(bs, c2), 0);
	assert_int_equal(inflate(bs, b), 0);
	assert_int_equal(clones(bs, s, NULL, 0), 0);
	assert_int_equal(delete_blob(bs, s), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), free0 + 2);
	check_blob(bs, ch, b, &mb);
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(unload(bs), 0);
	model_free(&mb);
	model_free(&ms);
}

/* ---- interrupted operations (crash simulator) -------------------------------------------------- */

struct crash_env {
	struct ust_crashsim *cs;
	struct ust_crashsim_image *img;
	uint64_t ack; /* event count when the operation was acknowledged */
	uint64_t loads;
	/* Outcomes seen over all cuts: a test asserts it saw each kind. */
	uint64_t before; /* the operation had not happened */
	uint64_t after;  /* it had */
	uint64_t partial; /* inflate/decouple: some copies committed, parent unchanged */
};

static struct crash_env g_c;

/* M0 with a crashsim CS0 on top; the store goes on CS0. */
static void crash_setup(struct ust_blob_store **bs)
{
	memset(&g_c, 0, sizeof(g_c));
	g_c.cs = bt_crash_create("M0", false);
	g_dev = "CS0";
	assert_int_equal(init_store(bs), 0);
}

static void crash_record(void)
{
	bt_poll();
	bt_crash_start(g_c.cs);
}

static void ack_id_cb(void *arg, ust_blob_id id, int rc)
{
	g_c.ack = ust_crashsim_num_events(g_c.cs);
	bt_id_cb(arg, id, rc);
}

static void ack_op_cb(void *arg, int rc)
{
	g_c.ack = ust_crashsim_num_events(g_c.cs);
	bt_op_cb(arg, rc);
}

/*
 * For every cut of the log and four ways of losing the pending writes,
 * load the crash image (dirty), check, unload, load again (clean), check.
 */
static void crash_cuts(void (*check)(struct ust_blob_store *bs, struct ust_io_channel *ch,
				     bool acked, void *ctx),
		       void *ctx)
{
	static const enum ust_crashsim_survival modes[4] = {
		UST_CRASHSIM_SURVIVE_NONE, UST_CRASHSIM_SURVIVE_ALL, UST_CRASHSIM_SURVIVE_AUTO,
		UST_CRASHSIM_SURVIVE_AUTO};
	uint64_t nev = ust_crashsim_num_events(g_c.cs), cut;
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	int m, round;

	assert_true(g_c.ack > 0 && g_c.ack <= nev);
	ust_crashsim_stop(g_c.cs);
	assert_int_equal(ust_crashsim_image_create(g_c.cs, "Img0", &g_c.img), 0);
	g_dev = "Img0";
	for (cut = 0; cut <= nev; cut++) {
		for (m = 0; m < 4; m++) {
			struct ust_crashsim_crash_opts o = {.cut = cut, .seed = cut * 31 + (uint64_t)m + 1,
							    .survival = modes[m]};

			assert_int_equal(ust_crashsim_image_build(g_c.img, &o, NULL), 0);
			for (round = 0; round < 2; round++) {
				assert_int_equal(load_store("Img0", &bs), 0);
				if (ust_bs_get_damaged(bs, NULL, 0) != 0) {
					struct ust_bs_damage d;

					ust_bs_get_damaged(bs, &d, 1);
					print_error("cut %" PRIu64 " mode %d: damage: %s\n", cut, m, d.msg);
					fail();
				}
				ch = ust_bs_alloc_io_channel(bs);
				check(bs, ch, cut >= g_c.ack, ctx);
				ust_bs_free_io_channel(ch);
				bt_poll();
				assert_int_equal(unload(bs), 0);
				if (round == 0) {
					assert_true(super_clean());
				}
				g_c.loads++;
			}
		}
	}
	print_message("%" PRIu64 " events (acknowledged at %" PRIu64 "), %" PRIu64
		      " loads: %" PRIu64 " before, %" PRIu64 " after, %" PRIu64 " partial\n",
		      nev, g_c.ack, g_c.loads, g_c.before, g_c.after, g_c.partial);
	/* Both sides of the operation's commit point were reached. */
	assert_true(g_c.before > 0 && g_c.after > 0);
	ust_crashsim_image_free(g_c.img, NULL, NULL);
	bt_poll();
	g_dev = "M0";
}

static void crash_teardown(struct ust_blob_store *bs)
{
	g_dev = "CS0";
	assert_int_equal(unload(bs), 0);
	assert_int_equal(ust_crashsim_delete("CS0", NULL, NULL), 0);
	bt_poll();
	g_dev = "M0";
}

static uint64_t count_blobs(struct ust_blob_store *bs)
{
	struct ust_blob *blob;
	uint64_t n = 0;

	ust_bs_iter_first(bs, bt_blob_cb, bt_begin());
	bt_finish();
	while (bt_r.rc == 0) {
		n++;
		blob = bt_r.blob;
		ust_bs_iter_next(bs, blob, bt_blob_cb, bt_begin());
		bt_finish();
	}
	assert_int_equal(bt_r.rc, -ENOENT);
	return n;
}

struct snap_crash {
	ust_blob_id b, s;
	struct model m;     /* b's (and the snapshot's) content */
	uint64_t free0;     /* free clusters before the operation */
	uint64_t allocated; /* b's clusters before the operation */
	uint64_t blobs;     /* live blobs before the operation */
	/* After the snapshot, one copy-on-write into b (acknowledged at wack). */
	uint64_t wack;
	uint64_t woff;
	uint8_t wbuf[4 * BLOCK];
};

static void snap_check(struct ust_blob_store *bs, struct ust_io_channel *ch, bool acked, void *ctx)
{
	struct snap_crash *c = ctx;
	struct blob_info bi = info(bs, c->b);
	struct ust_blob *blob;
	uint8_t buf[4 * BLOCK];
	struct model m = model_dup(&c->m);
	bool written;

	if (bi.parent == 0) {
		/* It did not happen: b as it was, nothing else. */
		g_c.before++;
		assert_false(acked);
		assert_int_equal(bi.allocated, c->allocated);
		assert_int_equal(count_blobs(bs), c->blobs);
		assert_int_equal(ust_bs_get_free_cluster_count(bs), c->free0);
		assert_int_equal(open_blob(bs, c->s, &blob), -ENOENT);
	} else {
		/* It happened: s has b's clusters and b reads through it. */
		g_c.after++;
		assert_int_equal(bi.parent, c->s);
		assert_true(info(bs, c->s).snapshot);
		assert_int_equal(info(bs, c->s).allocated, c->allocated);
		assert_int_equal(count_blobs(bs), c->blobs + 1);
		assert_true(bi.allocated <= 1);
		assert_int_equal(ust_bs_get_free_cluster_count(bs), c->free0 - bi.allocated);
		assert_true(has_clone(bs, c->s, c->b));
		check_blob(bs, ch, c->s, &c->m);
	}
	/* b reads its data; the later write shows wholly or not at all. */
	assert_int_equal(open_blob(bs, c->b, &blob), 0);
	assert_int_equal(bread(blob, ch, buf, c->woff, 4), 0);
	written = memcmp(buf, c->wbuf, sizeof(buf)) == 0;
	if (!written) {
		assert_memory_equal(buf, c->m.data + c->woff * BLOCK, sizeof(buf));
	}
	assert_true(written == (bi.allocated == 1));
	if (written) {
		memcpy(m.data + c->woff * BLOCK, c->wbuf, sizeof(buf));
	}
	check_open(blob, ch, &m);
	assert_int_equal(close_blob(blob), 0);
	model_free(&m);
}

static void test_crash_snapshot(void **state)
{
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	struct snap_crash c;
	ust_blob_id other;

	(void)state;
	memset(&c, 0, sizeof(c));
	crash_setup(&bs);
	ch = ust_bs_alloc_io_channel(bs);
	assert_int_equal(create(bs, 2, false, &other), 0);
	c.b = make_source(bs, ch, &c.m);
	c.allocated = 6;
	c.free0 = ust_bs_get_free_cluster_count(bs);
	c.blobs = 2;
	ust_bs_free_io_channel(ch);
	crash_record();
	ch = ust_bs_alloc_io_channel(bs);
	ust_bs_create_snapshot(bs, c.b, NULL, 0, ack_id_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	c.s = bt_r.id;
	/* A copy-on-write into the middle of the snapshot's cluster 3. */
	c.woff = 3 * UPC + 20;
	fill(c.wbuf, sizeof(c.wbuf), 77);
	assert_int_equal(open_blob(bs, c.b, &blob), 0);
	assert_int_equal(bwrite(blob, ch, c.wbuf, c.woff, 4), 0);
	assert_int_equal(close_blob(blob), 0);
	ust_bs_free_io_channel(ch);
	bt_poll();
	crash_cuts(snap_check, &c);
	crash_teardown(bs);
	model_free(&c.m);
}

struct merge_crash {
	ust_blob_id b, s;
	struct model mb; /* b's content (the same before and after) */
	struct model ms;
	uint64_t free0;
	uint64_t allocated;
	uint64_t overridden; /* s's clusters b overrides: freed by the merge */
	uint64_t taken;      /* s's clusters b takes */
};

static void merge_check(struct ust_blob_store *bs, struct ust_io_channel *ch, bool acked, void *ctx)
{
	struct merge_crash *c = ctx;
	struct blob_info bi = info(bs, c->b);
	struct ust_blob *blob;

	if (bi.parent == c->s) {
		g_c.before++;
		assert_false(acked);
		assert_int_equal(bi.allocated, c->allocated);
		assert_int_equal(ust_bs_get_free_cluster_count(bs), c->free0);
		check_blob(bs, ch, c->s, &c->ms);
	} else {
		g_c.after++;
		assert_int_equal(bi.parent, 0);
		assert_int_equal(bi.allocated, c->allocated + c->taken);
		assert_int_equal(ust_bs_get_free_cluster_count(bs), c->free0 + c->overridden);
		assert_int_equal(open_blob(bs, c->s, &blob), -ENOENT);
	}
	check_blob(bs, ch, c->b, &c->mb);
}

static void test_crash_merge(void **state)
{
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	struct merge_crash c;

	(void)state;
	memset(&c, 0, sizeof(c));
	crash_setup(&bs);
	ch = ust_bs_alloc_io_channel(bs);
	c.b = make_source(bs, ch, &c.mb);
	assert_int_equal(snapshot(bs, c.b, &c.s), 0);
	c.ms = model_dup(&c.mb);
	assert_int_equal(open_blob(bs, c.b, &blob), 0);
	mwrite(blob, ch, &c.mb, 0, 3, 51);       /* overrides 0 */
	mwrite(blob, ch, &c.mb, 6 * UPC, 3, 52); /* its own 6 */
	assert_int_equal(close_blob(blob), 0);
	c.allocated = 2;
	c.overridden = 1;
	c.taken = 5;
	c.free0 = ust_bs_get_free_cluster_count(bs);
	ust_bs_free_io_channel(ch);
	crash_record();
	ust_bs_delete_blob(bs, c.s, ack_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	bt_poll();
	crash_cuts(merge_check, &c);
	crash_teardown(bs);
	model_free(&c.mb);
	model_free(&c.ms);
}

struct copy_crash {
	ust_blob_id b, s, s0;
	bool decouple;
	struct model mb;
	uint64_t free0;
	uint64_t allocated;
	uint64_t copies;
};

static void copy_check(struct ust_blob_store *bs, struct ust_io_channel *ch, bool acked, void *ctx)
{
	struct copy_crash *c = ctx;
	struct blob_info bi = info(bs, c->b);

	/* Copies commit in batches before the parent changes: any number of
	 * them may be durable, and the free count says exactly how many. */
	assert_true(bi.allocated >= c->allocated && bi.allocated <= c->allocated + c->copies);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), c->free0 - (bi.allocated - c->allocated));
	if (bi.parent == c->s) {
		g_c.before++;
		g_c.partial += bi.allocated > c->allocated;
		assert_false(acked);
	} else {
		g_c.after++;
		assert_int_equal(bi.parent, c->decouple ? c->s0 : 0);
		assert_int_equal(bi.allocated, c->allocated + c->copies);
	}
	check_blob(bs, ch, c->b, &c->mb);
}

static void crash_copy(bool decouple)
{
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	struct copy_crash c;
	uint64_t i;

	memset(&c, 0, sizeof(c));
	c.decouple = decouple;
	crash_setup(&bs);
	ch = ust_bs_alloc_io_channel(bs);
	c.mb = model_new(40);
	assert_int_equal(create(bs, 40, true, &c.b), 0);
	assert_int_equal(open_blob(bs, c.b, &blob), 0);
	mwrite(blob, ch, &c.mb, 39 * UPC, UPC, 60); /* s0: 39 */
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(snapshot(bs, c.b, &c.s0), 0);
	assert_int_equal(open_blob(bs, c.b, &blob), 0);
	for (i = 0; i < 36; i++) {
		/* s: 0..35, more than two batches of copies */
		mwrite(blob, ch, &c.mb, i * UPC + i % 3, 2, 61 + (uint32_t)i);
	}
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(snapshot(bs, c.b, &c.s), 0);
	assert_int_equal(open_blob(bs, c.b, &blob), 0);
	mwrite(blob, ch, &c.mb, 1 * UPC, 1, 99); /* b: 1 */
	assert_int_equal(close_blob(blob), 0);
	c.allocated = 1;
	c.copies = decouple ? 35 : 36;
	c.free0 = ust_bs_get_free_cluster_count(bs);
	ust_bs_free_io_channel(ch);
	crash_record();
	if (decouple) {
		ust_bs_blob_decouple_parent(bs, NULL, c.b, ack_op_cb, bt_begin());
	} else {
		ust_bs_inflate_blob(bs, NULL, c.b, ack_op_cb, bt_begin());
	}
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	bt_poll();
	crash_cuts(copy_check, &c);
	assert_true(g_c.partial > 0);
	crash_teardown(bs);
	model_free(&c.mb);
}

static void test_crash_inflate(void **state)
{
	(void)state;
	crash_copy(false);
}

static void test_crash_decouple(void **state)
{
	(void)state;
	crash_copy(true);
}

struct clone_crash {
	ust_blob_id s, c;
	struct model ms;
	uint64_t blobs;
};

static void clone_check(struct ust_blob_store *bs, struct ust_io_channel *ch, bool acked, void *ctx)
{
	struct clone_crash *c = ctx;
	struct ust_blob *blob;
	uint64_t n = count_blobs(bs);

	if (n == c->blobs) {
		g_c.before++;
		assert_false(acked);
		assert_int_equal(open_blob(bs, c->c, &blob), -ENOENT);
	} else {
		g_c.after++;
		assert_int_equal(n, c->blobs + 1);
		assert_int_equal(info(bs, c->c).parent, c->s);
		check_blob(bs, ch, c->c, &c->ms);
	}
	check_blob(bs, ch, c->s, &c->ms);
}

static void test_crash_clone(void **state)
{
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct clone_crash c;
	ust_blob_id b;

	(void)state;
	memset(&c, 0, sizeof(c));
	crash_setup(&bs);
	ch = ust_bs_alloc_io_channel(bs);
	b = make_source(bs, ch, &c.ms);
	assert_int_equal(snapshot(bs, b, &c.s), 0);
	c.blobs = 2;
	ust_bs_free_io_channel(ch);
	crash_record();
	ust_bs_create_clone(bs, c.s, NULL, 0, ack_id_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	c.c = bt_r.id;
	bt_poll();
	crash_cuts(clone_check, &c);
	crash_teardown(bs);
	model_free(&c.ms);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_snapshot_cow, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_clone_zeroes, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_snapshot_concurrent_writes, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_clones, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_chain, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_inflate_decouple, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_inflate_enospc, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_delete_merge, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_crash_snapshot, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_crash_merge, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_crash_inflate, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_crash_decouple, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_crash_clone, make_bdev, drop_bdev),
	};

	ust_log_set_print_level(UST_LOG_WARN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
