/*
 * Unit tests for the blobstore (blobstore/) on malloc bdevs, with two
 * ust_threads polled by hand: store init/load/unload and its errors, blob
 * lifecycle, data round trips across clusters, thin allocation raced from
 * two threads, resize, xattrs (large and internal), persistence over a clean
 * unload, dirty-load recovery from a saved image, ENOSPC, and corrupted
 * images (damaged superblock, root and chain pages).
 */
#include <errno.h>
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

static struct ust_thread *g_t0, *g_t1;

static int init_store(const char *bstype, struct ust_blob_store **bs)
{
	struct ust_bs_opts o;

	ust_bs_opts_init(&o);
	o.cluster_size = CLUSTER;
	if (bstype != NULL) {
		snprintf(o.bstype, sizeof(o.bstype), "%s", bstype);
	}
	ust_bs_init("M0", &o, bt_bs_cb, bt_begin());
	bt_finish();
	*bs = bt_r.bs;
	return bt_r.rc;
}

static int load_store(const char *bstype, struct ust_blob_store **bs)
{
	struct ust_bs_opts o;

	ust_bs_opts_init(&o);
	if (bstype != NULL) {
		snprintf(o.bstype, sizeof(o.bstype), "%s", bstype);
	}
	ust_bs_load("M0", &o, bt_bs_cb, bt_begin());
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

static int create_open(struct ust_blob_store *bs, uint64_t clusters, struct ust_blob **blob)
{
	struct ust_blob_opts o;
	struct ust_blob_xattr x = {.name = "k", .value = "v", .value_len = 1};

	ust_blob_opts_init(&o);
	o.num_clusters = clusters;
	o.xattrs = &x;
	o.xattr_count = 1;
	ust_bs_create_open_blob(bs, &o, bt_blob_cb, bt_begin());
	bt_finish();
	*blob = bt_r.blob;
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

static void iostat_done(struct ust_bdev *bdev, struct ust_bdev_io_stat *stat, void *ctx, int rc)
{
	*(int *)ctx = rc == 0 ? 1 : rc;
}

/* Reads M0 has served so far, over every channel. */
static uint64_t m0_reads(void)
{
	struct ust_bdev_io_stat st;
	int done = 0;

	ust_bdev_get_iostat(ust_bdev_get_by_name("M0"), &st, iostat_done, &done);
	ut_threads_poll();
	assert_int_equal(done, 1);
	return st.num_read_ops;
}

static int delete_handle(struct ust_blob *blob)
{
	ust_blob_delete(blob, bt_op_cb, bt_begin());
	bt_finish();
	return bt_r.rc;
}

static int sync_md(struct ust_blob *blob)
{
	ust_blob_sync_md(blob, bt_op_cb, bt_begin());
	bt_finish();
	return bt_r.rc;
}

static int resize(struct ust_blob *blob, uint64_t n)
{
	ust_blob_resize(blob, n, bt_op_cb, bt_begin());
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

/* ---- raw access to the bdev image (only while no store holds it) ------------------------ */

static void flip_bit(uint64_t byte_offset, uint8_t mask)
{
	uint8_t *page = malloc(BLOCK);
	uint64_t base = byte_offset / BLOCK * BLOCK;

	bt_raw_read("M0", base, page, BLOCK);
	page[byte_offset - base] ^= mask;
	bt_raw_write("M0", base, page, BLOCK);
	free(page);
}

static struct ust_bs_super read_super(void)
{
	uint8_t *page = malloc(UST_BS_PAGE_SIZE);
	struct ust_bs_fmt_err err;
	struct ust_bs_super sb;

	bt_raw_read("M0", 0, page, UST_BS_PAGE_SIZE);
	assert_int_equal(ust_bs_fmt_super_decode(page, &sb, &err), 0);
	free(page);
	return sb;
}

static uint64_t root_page_of(const struct ust_bs_super *sb, ust_blob_id id, int half)
{
	return sb->root_slots.start + 2ull * ust_bs_blobid_slot(id) + (uint64_t)half;
}

/* Which half of id's slot holds the newest valid root. */
static int newest_half(const struct ust_bs_super *sb, ust_blob_id id)
{
	uint8_t *page = malloc(UST_BS_PAGE_SIZE);
	struct ust_bs_fmt_geom geom;
	struct ust_bs_fmt_err err;
	struct ust_bs_root r;
	uint64_t gen[2] = {0, 0};
	int h;

	ust_bs_fmt_geom_from_super(sb, &geom);
	for (h = 0; h < 2; h++) {
		bt_raw_read("M0", root_page_of(sb, id, h) * UST_BS_PAGE_SIZE, page, UST_BS_PAGE_SIZE);
		if (ust_bs_fmt_root_decode(page, &geom, &r, &err) == 0) {
			gen[h] = r.hdr.generation;
		}
	}
	free(page);
	return gen[1] > gen[0] ? 1 : 0;
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
	return bt_malloc_create("M0", BDEV_BYTES, BLOCK);
}

static int drop_bdev(void **state)
{
	(void)state;
	return bt_malloc_delete("M0");
}

/* ---- store ------------------------------------------------------------------------------ */

static void test_store_lifecycle(void **state)
{
	struct ust_blob_store *bs, *bs2;
	struct ust_blob *blob;
	ust_blob_id id;
	uint64_t total;

	(void)state;
	assert_int_equal(init_store("TESTTYPE", &bs), 0);
	assert_int_equal(ust_bs_get_cluster_size(bs), CLUSTER);
	assert_int_equal(ust_bs_get_io_unit_size(bs), BLOCK);
	total = ust_bs_get_total_data_cluster_count(bs);
	assert_true(total > 200);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total);
	assert_string_equal(ust_bs_get_bstype(bs), "TESTTYPE");
	assert_int_equal(ust_bs_get_super(bs), 0);
	assert_int_equal(ust_bs_get_free_blob_count(bs), ust_bs_get_max_blobs(bs));

	/* The bdev is claimed: a second store cannot take it. */
	assert_int_equal(init_store(NULL, &bs2), -EPERM);
	assert_null(bs2);

	assert_int_equal(create(bs, 2, false, &id), 0);
	assert_int_equal(ust_bs_get_free_blob_count(bs), ust_bs_get_max_blobs(bs) - 1);
	ust_bs_set_super(bs, id, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	ust_bs_set_super(bs, 5, bt_op_cb, bt_begin()); /* incarnation 0: not a blob id */
	bt_finish();
	assert_int_equal(bt_r.rc, -EINVAL);

	/* Unload refuses while a blob is open. */
	assert_int_equal(open_blob(bs, id, &blob), 0);
	assert_int_equal(unload(bs), -EBUSY);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(unload(bs), 0);

	assert_int_equal(load_store("OTHER", &bs), -EILSEQ);
	assert_int_equal(load_store("TESTTYPE", &bs), 0);
	assert_int_equal(ust_bs_get_super(bs), id);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total - 2);
	assert_int_equal(ust_bs_get_free_blob_count(bs), ust_bs_get_max_blobs(bs) - 1);
	assert_int_equal(unload(bs), 0);

	/* Destroy erases the store: nothing loads afterwards. */
	assert_int_equal(load_store(NULL, &bs), 0);
	ust_bs_destroy(bs, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	assert_int_equal(load_store(NULL, &bs), -ENODATA);

	/* Bad options and missing bdevs. */
	ust_bs_init("nope", NULL, bt_bs_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, -ENODEV);
	/* A bdev smaller than a superblock page holds no store: said without I/O. */
	assert_int_equal(bt_malloc_create("Tiny", 1024, 512), 0);
	ust_bs_load("Tiny", NULL, bt_bs_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, -ENODATA);
	assert_int_equal(bt_malloc_delete("Tiny"), 0);
	{
		struct ust_bs_opts o;

		ust_bs_opts_init(&o);
		o.cluster_size = 3000;
		ust_bs_init("M0", &o, bt_bs_cb, bt_begin());
		bt_finish();
		assert_int_equal(bt_r.rc, -EINVAL);
	}
}

/* ---- blobs ------------------------------------------------------------------------------- */

static void test_blob_lifecycle(void **state)
{
	struct ust_blob_store *bs;
	struct ust_blob *a, *b;
	ust_blob_id id, id2;
	uint64_t total, reads, create_reads;

	(void)state;
	assert_int_equal(init_store(NULL, &bs), 0);
	total = ust_bs_get_free_cluster_count(bs);
	assert_int_equal(create(bs, 4, false, &id), 0);
	assert_int_not_equal(id, 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total - 4);

	assert_int_equal(open_blob(bs, id, &a), 0);
	assert_int_equal(open_blob(bs, id, &b), 0);
	assert_ptr_equal(a, b);
	assert_int_equal(ust_blob_get_id(a), id);
	assert_int_equal(ust_blob_get_num_clusters(a), 4);
	assert_int_equal(ust_blob_get_num_io_units(a), 4 * UPC);
	assert_int_equal(ust_blob_get_num_allocated_clusters(a), 4);
	assert_false(ust_blob_is_thin(a));

	assert_int_equal(delete_blob(bs, id), -EBUSY);
	assert_int_equal(close_blob(a), 0);
	assert_int_equal(delete_blob(bs, id), -EBUSY);
	assert_int_equal(close_blob(b), 0);
	assert_int_equal(delete_blob(bs, id), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total);
	assert_int_equal(open_blob(bs, id, &a), -ENOENT);
	assert_int_equal(delete_blob(bs, id), -ENOENT);
	assert_int_equal(open_blob(bs, 0, &a), -ENOENT);

	/* The slot is reused with a new incarnation: the old id stays dead. */
	assert_int_equal(create(bs, 1, true, &id2), 0);
	assert_int_equal(ust_bs_blobid_slot(id2), ust_bs_blobid_slot(id));
	assert_int_not_equal(id2, id);
	assert_int_equal(open_blob(bs, id, &a), -ENOENT);
	assert_int_equal(open_blob(bs, id2, &a), 0);
	assert_true(ust_blob_is_thin(a));
	assert_int_equal(ust_blob_get_num_allocated_clusters(a), 0);
	assert_int_equal(close_blob(a), 0);

	/*
	 * Created open: no read beyond the create's own (the slot's
	 * incarnation), where an open after a create reads the root again; the
	 * blob works and reads back the same once reopened from the device.
	 */
	reads = m0_reads();
	assert_int_equal(create(bs, 2, false, &id), 0);
	create_reads = m0_reads() - reads;
	assert_int_equal(open_blob(bs, id, &a), 0);
	assert_int_equal(m0_reads(), reads + create_reads + 1);
	assert_int_equal(close_blob(a), 0);
	assert_int_equal(delete_blob(bs, id), 0);
	reads = m0_reads();
	assert_int_equal(create_open(bs, 2, &a), 0);
	assert_int_equal(m0_reads(), reads + create_reads);
	id = ust_blob_get_id(a);
	assert_int_equal(ust_blob_get_num_clusters(a), 2);
	assert_int_equal(ust_blob_get_num_allocated_clusters(a), 2);
	assert_int_equal(resize(a, 3), 0);
	assert_int_equal(sync_md(a), 0);
	assert_int_equal(close_blob(a), 0);
	assert_int_equal(open_blob(bs, id, &a), 0);
	assert_int_equal(ust_blob_get_num_clusters(a), 3);
	{
		const void *v;
		size_t len;

		assert_int_equal(ust_blob_get_xattr(a, "k", &v, &len), 0);
		assert_int_equal(len, 1);
		assert_memory_equal(v, "v", 1);
	}
	assert_int_equal(close_blob(a), 0);
	assert_int_equal(delete_blob(bs, id), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total);

	/*
	 * Through the handle: refused while another reference holds it; a
	 * clean blob, and one with a change not yet synced, are deleted, their
	 * clusters freed, their ids dead, also after a reload.
	 */
	assert_int_equal(create(bs, 3, false, &id), 0);
	assert_int_equal(open_blob(bs, id, &a), 0);
	assert_int_equal(open_blob(bs, id, &b), 0);
	assert_int_equal(delete_handle(a), -EBUSY);
	assert_int_equal(close_blob(b), 0);
	reads = m0_reads();
	assert_int_equal(delete_handle(a), 0);
	assert_int_equal(m0_reads(), reads); /* clean: deleted from memory */
	assert_int_equal(open_blob(bs, id, &a), -ENOENT);
	assert_int_equal(delete_blob(bs, id), -ENOENT);
	assert_int_equal(create(bs, 2, false, &id), 0);
	assert_int_equal(open_blob(bs, id, &a), 0);
	assert_int_equal(resize(a, 5), 0); /* not synced */
	reads = m0_reads();
	assert_int_equal(delete_handle(a), 0);
	assert_int_equal(m0_reads(), reads + 1); /* closed, then deleted by id */
	assert_int_equal(open_blob(bs, id, &a), -ENOENT);
	assert_int_equal(open_blob(bs, id2, &a), 0);
	assert_int_equal(delete_handle(a), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total);
	assert_int_equal(unload(bs), 0);
	assert_int_equal(load_store(NULL, &bs), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total);
	assert_int_equal(open_blob(bs, id, &a), -ENOENT);
	assert_int_equal(open_blob(bs, id2, &a), -ENOENT);
	assert_int_equal(unload(bs), 0);
}

static void test_iterate(void **state)
{
	struct ust_blob_store *bs;
	ust_blob_id ids[5];
	struct ust_blob *blob;
	int i, seen = 0;

	(void)state;
	assert_int_equal(init_store(NULL, &bs), 0);
	for (i = 0; i < 5; i++) {
		assert_int_equal(create(bs, (uint64_t)i, true, &ids[i]), 0);
	}
	assert_int_equal(delete_blob(bs, ids[2]), 0);
	ust_bs_iter_first(bs, bt_blob_cb, bt_begin());
	bt_finish();
	while (bt_r.rc == 0) {
		blob = bt_r.blob;
		assert_int_not_equal(ust_blob_get_id(blob), ids[2]);
		seen++;
		ust_bs_iter_next(bs, blob, bt_blob_cb, bt_begin());
		bt_finish();
	}
	assert_int_equal(bt_r.rc, -ENOENT);
	assert_null(bt_r.blob);
	assert_int_equal(seen, 4);
	assert_int_equal(unload(bs), 0);
}

static void test_resize(void **state)
{
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	ust_blob_id id, tid;
	uint64_t total;

	(void)state;
	assert_int_equal(init_store(NULL, &bs), 0);
	total = ust_bs_get_free_cluster_count(bs);
	assert_int_equal(create(bs, 2, false, &id), 0);
	assert_int_equal(open_blob(bs, id, &blob), 0);
	assert_int_equal(resize(blob, 10), 0);
	assert_int_equal(ust_blob_get_num_clusters(blob), 10);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total - 10);
	assert_int_equal(resize(blob, total + 1), -ENOSPC);
	assert_int_equal(ust_blob_get_num_clusters(blob), 10);
	assert_int_equal(resize(blob, 3), 0);
	/* Shrinking frees only once the change is durable (9.1 rule 4). */
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total - 10);
	assert_int_equal(sync_md(blob), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total - 3);
	assert_int_equal(close_blob(blob), 0);

	/* A thin blob may be far larger than the store. */
	assert_int_equal(create(bs, 0, true, &tid), 0);
	assert_int_equal(open_blob(bs, tid, &blob), 0);
	assert_int_equal(resize(blob, 100000), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total - 3);
	/*
	 * But not larger than its metadata can map: refused at once, nothing
	 * changed (it used to size a map of 2^31 entries first, 8 GiB, and
	 * fail only at the sync). Shrinking is always allowed.
	 */
	assert_int_equal(resize(blob, UST_BS_THIN_MAX_CLUSTERS + 1), -EFBIG);
	assert_int_equal(resize(blob, 0x7fffffffull), -EFBIG);
	assert_int_equal(ust_blob_get_num_clusters(blob), 100000);
	{
		ust_blob_id big;

		assert_int_equal(create(bs, UST_BS_THIN_MAX_CLUSTERS + 1, true, &big), -EFBIG);
		assert_int_equal(create(bs, 0xffffffffull, true, &big), -EFBIG);
	}
	assert_int_equal(close_blob(blob), 0); /* close syncs */

	assert_int_equal(unload(bs), 0);
	assert_int_equal(load_store(NULL, &bs), 0);
	assert_int_equal(open_blob(bs, id, &blob), 0);
	assert_int_equal(ust_blob_get_num_clusters(blob), 3);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(open_blob(bs, tid, &blob), 0);
	assert_int_equal(ust_blob_get_num_clusters(blob), 100000);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total - 3);
	assert_int_equal(unload(bs), 0);
}

/* ---- data ---------------------------------------------------------------------------------- */

static void test_data_roundtrip(void **state)
{
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	struct iovec iov[3];
	uint64_t off = UPC - 7, len = UPC + 20; /* crosses two cluster boundaries */
	size_t bytes = len * BLOCK;
	uint8_t *w = malloc(bytes), *r = malloc(bytes), *z = calloc(1, UPC * BLOCK);
	ust_blob_id id;

	(void)state;
	assert_int_equal(init_store(NULL, &bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	assert_non_null(ch);
	assert_int_equal(create(bs, 3, false, &id), 0);
	assert_int_equal(open_blob(bs, id, &blob), 0);
	fill(w, bytes, 1);
	iov[0].iov_base = w;
	iov[0].iov_len = 1000;
	iov[1].iov_base = w + 1000;
	iov[1].iov_len = 3000;
	iov[2].iov_base = w + 4000;
	iov[2].iov_len = bytes - 4000;
	ust_blob_writev(blob, ch, iov, 3, off, len, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	memset(r, 0, bytes);
	assert_int_equal(bread(blob, ch, r, off, len), 0);
	assert_memory_equal(w, r, bytes);

	/* Out of range and bad arguments. */
	assert_int_equal(bread(blob, ch, r, 3 * UPC - 1, 2), -EINVAL);
	assert_int_equal(bread(blob, ch, r, 0, 0), -EINVAL);
	iov[0].iov_len = 10;
	ust_blob_readv(blob, ch, iov, 1, 0, 1, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, -EINVAL);

	/* write_zeroes and unmap of a thick blob read back as zeros. */
	ust_blob_write_zeroes(blob, ch, off, 7, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	assert_int_equal(bread(blob, ch, r, off, 7), 0);
	assert_memory_equal(r, z, 7 * BLOCK);
	ust_blob_unmap(blob, ch, UPC, UPC, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	assert_int_equal(bread(blob, ch, r, UPC, UPC), 0);
	assert_memory_equal(r, z, UPC * BLOCK);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), 3);

	assert_int_equal(close_blob(blob), 0);
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(unload(bs), 0);

	/* Data survives unload and load. */
	assert_int_equal(load_store(NULL, &bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	assert_int_equal(open_blob(bs, id, &blob), 0);
	assert_int_equal(bread(blob, ch, r, off, 7), 0);
	assert_memory_equal(r, z, 7 * BLOCK);
	assert_int_equal(bread(blob, ch, r, 2 * UPC, 13), 0);
	assert_memory_equal(r, w + (2 * UPC - off) * BLOCK, 13 * BLOCK);
	assert_int_equal(close_blob(blob), 0);
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(unload(bs), 0);
	free(w);
	free(r);
	free(z);
}

struct racer {
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	struct ust_io_channel *ch;
	uint8_t *buf;
	uint64_t off;
	uint64_t len;
	int rc;
	bool done;
};

static void racer_done(void *arg, int rc)
{
	struct racer *r = arg;

	r->rc = rc;
	r->done = true;
}

static void racer_start(void *arg)
{
	struct racer *r = arg;

	ust_blob_write(r->blob, r->ch, r->buf, r->off, r->len, racer_done, r);
}

static void get_channel(void *arg)
{
	struct racer *r = arg;

	r->ch = ust_bs_alloc_io_channel(r->bs);
}

static void put_channel(void *arg)
{
	struct racer *r = arg;

	ust_bs_free_io_channel(r->ch);
}

static void test_thin_race(void **state)
{
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	struct racer a = {0}, b = {0};
	struct ust_io_channel *ch;
	uint8_t *r = malloc(UPC * BLOCK), *expect = calloc(1, UPC * BLOCK);
	uint64_t total;
	ust_blob_id id;

	(void)state;
	assert_int_equal(init_store(NULL, &bs), 0);
	total = ust_bs_get_free_cluster_count(bs);
	assert_int_equal(create(bs, 4, true, &id), 0);
	assert_int_equal(open_blob(bs, id, &blob), 0);
	a.blob = b.blob = blob;
	a.bs = b.bs = bs;
	a.buf = malloc(8 * BLOCK);
	b.buf = malloc(8 * BLOCK);
	fill(a.buf, 8 * BLOCK, 11);
	fill(b.buf, 8 * BLOCK, 22);
	a.off = UPC + 3;
	b.off = UPC + 40;
	a.len = b.len = 8;
	/* Each writer on its own thread, both into blob cluster 1, unallocated. */
	assert_int_equal(ust_thread_send_msg(g_t0, get_channel, &a), 0);
	assert_int_equal(ust_thread_send_msg(g_t1, get_channel, &b), 0);
	bt_poll();
	assert_int_equal(ust_thread_send_msg(g_t0, racer_start, &a), 0);
	assert_int_equal(ust_thread_send_msg(g_t1, racer_start, &b), 0);
	bt_poll();
	assert_true(a.done && b.done);
	assert_int_equal(a.rc, 0);
	assert_int_equal(b.rc, 0);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), 1);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total - 1);

	memcpy(expect + 3 * BLOCK, a.buf, 8 * BLOCK);
	memcpy(expect + 40 * BLOCK, b.buf, 8 * BLOCK);
	ch = ust_bs_alloc_io_channel(bs);
	assert_int_equal(bread(blob, ch, r, UPC, UPC), 0);
	assert_memory_equal(r, expect, UPC * BLOCK);
	/* Holes read as zeros. */
	memset(expect, 0, UPC * BLOCK);
	assert_int_equal(bread(blob, ch, r, 0, UPC), 0);
	assert_memory_equal(r, expect, UPC * BLOCK);

	/* Unmapping the whole cluster of a thin blob releases it. */
	ust_blob_unmap(blob, ch, UPC, UPC, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total);
	assert_int_equal(bread(blob, ch, r, UPC, UPC), 0);
	assert_memory_equal(r, expect, UPC * BLOCK);

	/* The allocation was durable: it survives a clean reload. */
	assert_int_equal(bwrite(blob, ch, a.buf, 2 * UPC, 8), 0);
	assert_int_equal(close_blob(blob), 0);
	ust_bs_free_io_channel(ch);
	assert_int_equal(ust_thread_send_msg(g_t0, put_channel, &a), 0);
	assert_int_equal(ust_thread_send_msg(g_t1, put_channel, &b), 0);
	bt_poll();
	assert_int_equal(unload(bs), 0);
	assert_int_equal(load_store(NULL, &bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	assert_int_equal(open_blob(bs, id, &blob), 0);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), 1);
	assert_int_equal(bread(blob, ch, r, 2 * UPC, 8), 0);
	assert_memory_equal(r, a.buf, 8 * BLOCK);
	assert_int_equal(close_blob(blob), 0);
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(unload(bs), 0);
	free(a.buf);
	free(b.buf);
	free(r);
	free(expect);
}

static void test_enospc(void **state)
{
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	uint8_t buf[BLOCK] = {1};
	ust_blob_id big, thin, id;
	uint64_t total;

	(void)state;
	assert_int_equal(init_store(NULL, &bs), 0);
	total = ust_bs_get_free_cluster_count(bs);
	assert_int_equal(create(bs, total + 1, false, &id), -ENOSPC);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total);
	assert_int_equal(create(bs, 2, true, &thin), 0);
	assert_int_equal(create(bs, total, false, &big), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	assert_int_equal(open_blob(bs, thin, &blob), 0);
	assert_int_equal(bwrite(blob, ch, buf, 0, 1), -ENOSPC);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), 0);
	assert_int_equal(close_blob(blob), 0);
	/* Space comes back with a delete and the thin write then succeeds. */
	assert_int_equal(delete_blob(bs, big), 0);
	assert_int_equal(open_blob(bs, thin, &blob), 0);
	assert_int_equal(bwrite(blob, ch, buf, 0, 1), 0);
	assert_int_equal(close_blob(blob), 0);
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(unload(bs), 0);
	assert_int_equal(load_store(NULL, &bs), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total - 1);
	assert_int_equal(unload(bs), 0);
}

/* ---- xattrs --------------------------------------------------------------------------------- */

static void count_name(void *ctx, const char *name)
{
	(void)name;
	(*(int *)ctx)++;
}

static void test_xattrs(void **state)
{
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	struct ust_blob_xattr init[2] = {
		{.name = "owner", .value = "alice", .value_len = 5},
		{.name = "lvname", .value = "vol0", .value_len = 4, .internal = true},
	};
	struct ust_blob_opts o;
	uint8_t *big = malloc(UST_BS_XATTR_VALUE_MAX + 1);
	char longname[300];
	const void *v;
	size_t len;
	ust_blob_id id;
	int n = 0;

	(void)state;
	assert_int_equal(init_store(NULL, &bs), 0);
	ust_blob_opts_init(&o);
	o.num_clusters = 1;
	o.xattrs = init;
	o.xattr_count = 2;
	ust_bs_create_blob(bs, &o, bt_id_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	id = bt_r.id;
	assert_int_equal(open_blob(bs, id, &blob), 0);
	assert_int_equal(ust_blob_get_xattr(blob, "owner", &v, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(v, "alice", 5);
	/* Internal xattrs are invisible through the user calls. */
	assert_int_equal(ust_blob_get_xattr(blob, "lvname", &v, &len), -ENOENT);
	assert_int_equal(ust_blob_get_internal_xattr(blob, "lvname", &v, &len), 0);
	assert_memory_equal(v, "vol0", 4);
	assert_int_equal(ust_blob_list_xattrs(blob, count_name, &n), 1);
	assert_int_equal(n, 1);

	fill(big, UST_BS_XATTR_VALUE_MAX + 1, 5);
	assert_int_equal(ust_blob_set_xattr(blob, "big", big, UST_BS_XATTR_VALUE_MAX), 0);
	assert_int_equal(ust_blob_set_xattr(blob, "big2", big, UST_BS_XATTR_VALUE_MAX + 1), -E2BIG);
	assert_int_equal(ust_blob_set_xattr(blob, "empty", NULL, 0), 0);
	assert_int_equal(ust_blob_set_xattr(blob, "", "x", 1), -EINVAL);
	memset(longname, 'n', 256);
	longname[256] = '\0';
	assert_int_equal(ust_blob_set_xattr(blob, longname, "x", 1), -EINVAL);
	longname[255] = '\0';
	assert_int_equal(ust_blob_set_xattr(blob, longname, "x", 1), 0);
	assert_int_equal(ust_blob_set_xattr(blob, "owner", "bob", 3), 0);
	assert_int_equal(ust_blob_remove_xattr(blob, "nothing"), -ENOENT);
	assert_int_equal(ust_blob_set_xattr(blob, "gone", "1", 1), 0);
	assert_int_equal(ust_blob_remove_xattr(blob, "gone"), 0);
	/* Three maximal values fit; the fourth would overflow 65 pages. */
	assert_int_equal(ust_blob_set_xattr(blob, "big3", big, UST_BS_XATTR_VALUE_MAX), 0);
	assert_int_equal(ust_blob_set_xattr(blob, "big4", big, UST_BS_XATTR_VALUE_MAX), 0);
	assert_int_equal(ust_blob_set_internal_xattr(blob, "big5", big, UST_BS_XATTR_VALUE_MAX),
			 -ENOSPC);
	assert_int_equal(ust_blob_get_internal_xattr(blob, "big5", &v, &len), -ENOENT);
	assert_int_equal(sync_md(blob), 0);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(unload(bs), 0);

	assert_int_equal(load_store(NULL, &bs), 0);
	assert_int_equal(open_blob(bs, id, &blob), 0);
	assert_int_equal(ust_blob_get_xattr(blob, "big", &v, &len), 0);
	assert_int_equal(len, UST_BS_XATTR_VALUE_MAX);
	assert_memory_equal(v, big, len);
	assert_int_equal(ust_blob_get_xattr(blob, "big4", &v, &len), 0);
	assert_memory_equal(v, big, UST_BS_XATTR_VALUE_MAX);
	assert_int_equal(ust_blob_get_xattr(blob, "owner", &v, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(v, "bob", 3);
	assert_int_equal(ust_blob_get_xattr(blob, "empty", &v, &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(ust_blob_get_xattr(blob, longname, &v, &len), 0);
	assert_int_equal(ust_blob_get_xattr(blob, "gone", &v, &len), -ENOENT);
	assert_int_equal(ust_blob_get_internal_xattr(blob, "lvname", &v, &len), 0);
	/* The large values made a chain; dropping them frees the pages again. */
	assert_int_equal(ust_blob_remove_xattr(blob, "big"), 0);
	assert_int_equal(ust_blob_remove_xattr(blob, "big3"), 0);
	assert_int_equal(ust_blob_remove_xattr(blob, "big4"), 0);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(unload(bs), 0);
	assert_int_equal(load_store(NULL, &bs), 0);
	assert_int_equal(open_blob(bs, id, &blob), 0);
	assert_int_equal(ust_blob_get_xattr(blob, "big", &v, &len), -ENOENT);
	n = 0;
	assert_int_equal(ust_blob_list_xattrs(blob, count_name, &n), 3);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(unload(bs), 0);
	free(big);
}

/* ---- recovery and damage ----------------------------------------------------------------- */

static void test_dirty_load(void **state)
{
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	uint8_t *image = malloc(BDEV_BYTES);
	uint8_t *w = malloc(4 * BLOCK), *r = malloc(4 * BLOCK);
	ust_blob_id thick, thin, gone, unsynced;
	uint64_t free_after;
	const void *v;
	size_t len;

	(void)state;
	assert_int_equal(init_store(NULL, &bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	assert_int_equal(create(bs, 3, false, &thick), 0);
	assert_int_equal(create(bs, 8, true, &thin), 0);
	assert_int_equal(create(bs, 5, false, &gone), 0);
	assert_int_equal(delete_blob(bs, gone), 0);
	fill(w, 4 * BLOCK, 9);
	assert_int_equal(open_blob(bs, thin, &blob), 0);
	assert_int_equal(bwrite(blob, ch, w, 5 * UPC + 1, 4), 0);
	assert_int_equal(ust_blob_set_xattr(blob, "k", "v1", 2), 0);
	assert_int_equal(sync_md(blob), 0);
	/* Changed in memory but never synced: must not appear after the crash. */
	assert_int_equal(ust_blob_set_xattr(blob, "k", "v2", 2), 0);
	assert_int_equal(resize(blob, 20), 0);
	free_after = ust_bs_get_free_cluster_count(bs);
	assert_int_equal(create(bs, 1, false, &unsynced), 0);

	/* "Crash": keep the device image as it is now, unload, put it back. */
	ust_bs_free_io_channel(ch);
	bt_poll();
	bt_raw_read("M0", 0, image, BDEV_BYTES);
	/* The blob was changed but not synced; closing would sync it: delete
	 * the store's view by unloading after closing, then restore the image. */
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(unload(bs), 0);
	bt_raw_write("M0", 0, image, BDEV_BYTES);
	assert_false(read_super().clean);

	assert_int_equal(load_store(NULL, &bs), 0);
	ust_bs_get_damaged(bs, NULL, 0);
	assert_int_equal(ust_bs_get_damaged(bs, NULL, 0), 0);
	/* unsynced was created (its create committed) and is whole. */
	assert_int_equal(ust_bs_get_free_cluster_count(bs), free_after - 1);
	ch = ust_bs_alloc_io_channel(bs);
	assert_int_equal(open_blob(bs, thin, &blob), 0);
	assert_int_equal(ust_blob_get_num_clusters(blob), 8);
	assert_int_equal(ust_blob_get_xattr(blob, "k", &v, &len), 0);
	assert_memory_equal(v, "v1", 2);
	assert_int_equal(ust_blob_get_num_allocated_clusters(blob), 1);
	assert_int_equal(bread(blob, ch, r, 5 * UPC + 1, 4), 0);
	assert_memory_equal(r, w, 4 * BLOCK);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(open_blob(bs, gone, &blob), -ENOENT);
	assert_int_equal(open_blob(bs, thick, &blob), 0);
	assert_int_equal(ust_blob_get_num_clusters(blob), 3);
	assert_int_equal(close_blob(blob), 0);
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(unload(bs), 0);
	assert_true(read_super().clean);
	assert_int_equal(load_store(NULL, &bs), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), free_after - 1);
	assert_int_equal(unload(bs), 0);
	free(image);
	free(w);
	free(r);
}

static void test_damaged_root_isolated(void **state)
{
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	struct ust_bs_damage dmg[4];
	struct ust_bs_super sb;
	ust_blob_id a, b;
	uint64_t free_before;

	(void)state;
	assert_int_equal(init_store(NULL, &bs), 0);
	assert_int_equal(create(bs, 2, false, &a), 0);
	assert_int_equal(create(bs, 3, false, &b), 0);
	assert_int_equal(unload(bs), 0);
	sb = read_super();
	/* One bit of blob a's root. */
	flip_bit(root_page_of(&sb, a, newest_half(&sb, a)) * UST_BS_PAGE_SIZE + 100, 0x10);

	assert_int_equal(load_store(NULL, &bs), 0);
	free_before = ust_bs_get_free_cluster_count(bs);
	assert_int_equal(open_blob(bs, a, &blob), -EUCLEAN);
	assert_int_equal(ust_bs_get_damaged(bs, dmg, 4), 1);
	assert_int_equal(dmg[0].slot, ust_bs_blobid_slot(a));
	assert_non_null(strstr(dmg[0].msg, "checksum"));
	assert_int_equal(open_blob(bs, b, &blob), 0);
	assert_int_equal(close_blob(blob), 0);
	/* Deleting the damaged blob frees its slot; its clusters come back at
	 * the next load, which recovers. */
	assert_int_equal(delete_blob(bs, a), 0);
	assert_int_equal(ust_bs_get_damaged(bs, NULL, 0), 0);
	assert_int_equal(unload(bs), 0);
	assert_false(read_super().clean);
	assert_int_equal(load_store(NULL, &bs), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), free_before + 2);
	assert_int_equal(open_blob(bs, a, &blob), -ENOENT);
	assert_int_equal(unload(bs), 0);
}

static void test_damaged_chain_dirty(void **state)
{
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	uint8_t *big = malloc(20000);
	uint8_t *page = malloc(UST_BS_PAGE_SIZE);
	struct ust_bs_fmt_geom geom;
	struct ust_bs_fmt_err err;
	struct ust_bs_super sb;
	struct ust_bs_root root;
	struct ust_bs_desc d;
	struct ust_bs_page_ref ref = {0};
	uint32_t cursor = 0;
	ust_blob_id a, b;
	const void *v;
	size_t len;
	int h;

	(void)state;
	assert_int_equal(init_store(NULL, &bs), 0);
	assert_int_equal(create(bs, 1, false, &a), 0);
	assert_int_equal(create(bs, 1, false, &b), 0);
	assert_int_equal(open_blob(bs, a, &blob), 0);
	fill(big, 20000, 3);
	assert_int_equal(ust_blob_set_xattr(blob, "big", big, 20000), 0);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(unload(bs), 0);

	/* Find a chain page of blob a and damage it, and force a dirty load. */
	sb = read_super();
	ust_bs_fmt_geom_from_super(&sb, &geom);
	h = newest_half(&sb, a);
	bt_raw_read("M0", root_page_of(&sb, a, h) * UST_BS_PAGE_SIZE, page, UST_BS_PAGE_SIZE);
	assert_int_equal(ust_bs_fmt_root_decode(page, &geom, &root, &err), 0);
	while (ust_bs_fmt_desc_next(page, &cursor, &d) == 1) {
		if (d.type == UST_BS_DESC_CHAIN) {
			ust_bs_fmt_desc_page_ref(&d, 0, &ref);
		}
	}
	assert_int_not_equal(ref.page, 0);
	flip_bit((uint64_t)ref.page * UST_BS_PAGE_SIZE + 2000, 0x01);

	/* Clean load: the incomplete tree is damage (9.2), isolated. */
	assert_int_equal(load_store(NULL, &bs), 0);
	assert_int_equal(open_blob(bs, a, &blob), -EUCLEAN);
	assert_int_equal(ust_bs_get_damaged(bs, NULL, 0), 1);
	assert_int_equal(open_blob(bs, b, &blob), 0);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(unload(bs), 0);

	/* Dirty load: the damaged newer version is indistinguishable from an
	 * uncommitted update, so a rolls back to its older complete version
	 * (9.6), never to a mix of the two. */
	flip_bit(28 + 64, 0x01); /* clean flag of the primary: its checksum now fails */
	assert_int_equal(load_store(NULL, &bs), 0);
	assert_int_equal(ust_bs_get_damaged(bs, NULL, 0), 0);
	assert_int_equal(open_blob(bs, a, &blob), 0);
	assert_int_equal(ust_blob_get_num_clusters(blob), 1);
	assert_int_equal(ust_blob_get_xattr(blob, "big", &v, &len), -ENOENT);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(unload(bs), 0);
	/* Recovery cleared the bad half: the next clean load agrees. */
	assert_int_equal(load_store(NULL, &bs), 0);
	assert_int_equal(open_blob(bs, a, &blob), 0);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(unload(bs), 0);
	free(big);
	free(page);
}

static void test_superblock_damage(void **state)
{
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	uint8_t *zero = calloc(1, UST_BS_PAGE_SIZE);
	ust_blob_id id;

	(void)state;
	assert_int_equal(init_store(NULL, &bs), 0);
	assert_int_equal(create(bs, 2, false, &id), 0);
	assert_int_equal(unload(bs), 0);

	/* A torn primary: the backup carries the load, and the primary is rewritten. */
	flip_bit(64 + 40, 0x04);
	assert_int_equal(load_store(NULL, &bs), 0);
	assert_int_equal(open_blob(bs, id, &blob), 0);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(unload(bs), 0);
	assert_true(read_super().clean);

	/* A damaged backup is repaired from a good primary. */
	flip_bit(ust_bs_fmt_backup_offset(BDEV_BYTES) + 70, 0x80);
	assert_int_equal(load_store(NULL, &bs), 0);
	assert_int_equal(unload(bs), 0);
	flip_bit(64 + 40, 0x04);
	assert_int_equal(load_store(NULL, &bs), 0);
	assert_int_equal(unload(bs), 0);

	/* A blank primary is not acted on: someone may own the disk now. */
	bt_raw_write("M0", 0, zero, UST_BS_PAGE_SIZE);
	assert_int_equal(load_store(NULL, &bs), -ENODATA);
	assert_null(bs);
	free(zero);
}

/* ---- API requests from the store's users (lvol, blobfs) ----------------------------------- */

/* Creates a blob whose xattrs live in this frame, then overwrites the frame. */
static void create_with_stack_xattrs(struct ust_blob_store *bs)
{
	char name0[16], name1[16], val0[16], val1[16];
	struct ust_blob_xattr x[2];
	struct ust_blob_opts o;

	snprintf(name0, sizeof(name0), "name");
	snprintf(val0, sizeof(val0), "lvol-A");
	snprintf(name1, sizeof(name1), "uuid");
	snprintf(val1, sizeof(val1), "1234");
	x[0] = (struct ust_blob_xattr){.name = name0, .value = val0, .value_len = 6,
				       .internal = true};
	x[1] = (struct ust_blob_xattr){.name = name1, .value = val1, .value_len = 4};
	ust_blob_opts_init(&o);
	o.num_clusters = 1;
	o.xattrs = x;
	o.xattr_count = 2;
	ust_bs_create_blob(bs, &o, bt_id_cb, bt_begin());
	/* The create is still reading its slot: clobber everything it was given. */
	assert_false(bt_r.done);
	memset(name0, 'Z', sizeof(name0) - 1);
	memset(val0, 'Z', sizeof(val0));
	memset(name1, 'Y', sizeof(name1) - 1);
	memset(val1, 'Y', sizeof(val1));
	memset(x, 0xa5, sizeof(x));
	memset(&o, 0xa5, sizeof(o));
}

static void test_create_xattrs_copied(void **state)
{
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	struct ust_blob_xattr bad = {.name = "", .value = "x", .value_len = 1};
	struct ust_blob_opts o;
	const void *v;
	size_t len;
	ust_blob_id id;

	(void)state;
	assert_int_equal(init_store(NULL, &bs), 0);
	create_with_stack_xattrs(bs);
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	id = bt_r.id;
	assert_int_equal(open_blob(bs, id, &blob), 0);
	assert_int_equal(ust_blob_get_internal_xattr(blob, "name", &v, &len), 0);
	assert_int_equal(len, 6);
	assert_memory_equal(v, "lvol-A", 6);
	assert_int_equal(ust_blob_get_xattr(blob, "uuid", &v, &len), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(v, "1234", 4);
	assert_int_equal(close_blob(blob), 0);

	/* A bad xattr is refused before a slot is taken. */
	ust_blob_opts_init(&o);
	o.xattrs = &bad;
	o.xattr_count = 1;
	ust_bs_create_blob(bs, &o, bt_id_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, -EINVAL);
	o.xattrs = NULL;
	ust_bs_create_blob(bs, &o, bt_id_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, -EINVAL);
	assert_int_equal(unload(bs), 0);

	/* And the copies reached the disk. */
	assert_int_equal(load_store(NULL, &bs), 0);
	assert_int_equal(open_blob(bs, id, &blob), 0);
	assert_int_equal(ust_blob_get_internal_xattr(blob, "name", &v, &len), 0);
	assert_memory_equal(v, "lvol-A", 6);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(unload(bs), 0);
}

static void test_null_callbacks(void **state)
{
	struct ust_blob_store *bs;
	struct ust_blob *blob, *again;
	const void *v;
	size_t len;
	ust_blob_id id, id2;

	(void)state;
	assert_int_equal(init_store(NULL, &bs), 0);
	assert_int_equal(create(bs, 1, false, &id), 0);
	assert_int_equal(create(bs, 1, false, &id2), 0);
	assert_int_equal(open_blob(bs, id, &blob), 0);
	assert_int_equal(ust_blob_set_xattr(blob, "k", "v", 1), 0);
	ust_blob_resize(blob, 3, NULL, NULL);
	ust_blob_sync_md(blob, NULL, NULL);
	bt_poll();
	assert_int_equal(open_blob(bs, id, &again), 0);
	assert_ptr_equal(again, blob);
	ust_blob_close(again, NULL, NULL); /* not the last reference */
	ust_blob_set_xattr(blob, "k", "w", 1);
	ust_blob_close(blob, NULL, NULL);  /* the last: syncs first */
	bt_poll();
	ust_bs_delete_blob(bs, id2, NULL, NULL);
	ust_bs_set_super(bs, id, NULL, NULL);
	bt_poll();
	/* Everything happened: the blob is closed, so unload works. */
	assert_int_equal(delete_blob(bs, id2), -ENOENT);
	assert_int_equal(unload(bs), 0);
	assert_int_equal(load_store(NULL, &bs), 0);
	assert_int_equal(ust_bs_get_super(bs), id);
	assert_int_equal(open_blob(bs, id, &blob), 0);
	assert_int_equal(ust_blob_get_num_clusters(blob), 3);
	assert_int_equal(ust_blob_get_xattr(blob, "k", &v, &len), 0);
	assert_memory_equal(v, "w", 1);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(open_blob(bs, id2, &blob), -ENOENT);
	assert_int_equal(unload(bs), 0);
}

static int g_errors;

static void count_errors(enum ust_log_level level, const char *msg)
{
	(void)msg;
	if (level == UST_LOG_ERROR) {
		g_errors++;
	}
}

static void test_load_not_a_store_quiet(void **state)
{
	struct ust_blob_store *bs;
	uint8_t *page = calloc(1, UST_BS_PAGE_SIZE);

	(void)state;
	ust_log_set_sink(count_errors);
	g_errors = 0;
	/* A blank bdev. */
	assert_int_equal(load_store(NULL, &bs), -ENODATA);
	/* Another store type. */
	assert_int_equal(init_store("lvs", &bs), 0);
	assert_int_equal(unload(bs), 0);
	assert_int_equal(load_store("blobfs", &bs), -EILSEQ);
	assert_int_equal(g_errors, 0);
	/* Something else's data (a foreign primary). */
	memset(page, 0x5a, UST_BS_PAGE_SIZE);
	bt_raw_write("M0", 0, page, UST_BS_PAGE_SIZE);
	assert_int_equal(load_store(NULL, &bs), -EUCLEAN);
	assert_null(bs);
	assert_int_equal(g_errors, 0);

	/* Real damage still logs errors: our primary torn, the backup gone too. */
	assert_int_equal(init_store(NULL, &bs), 0);
	assert_int_equal(unload(bs), 0);
	flip_bit(64 + 40, 0x04);
	memset(page, 0, UST_BS_PAGE_SIZE);
	bt_raw_write("M0", ust_bs_fmt_backup_offset(BDEV_BYTES), page, UST_BS_PAGE_SIZE);
	assert_int_equal(load_store(NULL, &bs), -EUCLEAN);
	assert_true(g_errors > 0);
	ust_log_set_sink(NULL);
	free(page);
}

struct chan_user {
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	struct ust_io_channel *ch;
	uint8_t *buf;
	bool done;
	int rc;
};

static void chan_io_done(void *arg, int rc)
{
	struct chan_user *u = arg;

	u->done = true;
	u->rc = rc;
	/* Freed from inside the I/O completion, as lvol does. */
	ust_bs_free_io_channel(u->ch);
	u->ch = NULL;
}

static void chan_user_start(void *arg)
{
	struct chan_user *u = arg;

	u->ch = ust_bs_alloc_io_channel(u->bs);
	assert_non_null(u->ch);
	ust_blob_write(u->blob, u->ch, u->buf, 0, 4, chan_io_done, u);
}

static void test_unload_after_free_channel(void **state)
{
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	struct ust_io_channel *ch;
	struct chan_user u = {0};
	uint8_t buf[4 * BLOCK], r[4 * BLOCK];
	ust_blob_id id;

	(void)state;
	fill(buf, sizeof(buf), 3);
	assert_int_equal(init_store(NULL, &bs), 0);
	assert_int_equal(create(bs, 2, false, &id), 0);
	assert_int_equal(open_blob(bs, id, &blob), 0);

	/* A held channel still refuses the unload. */
	ch = ust_bs_alloc_io_channel(bs);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(unload(bs), -EBUSY);
	assert_int_equal(open_blob(bs, id, &blob), 0);
	assert_int_equal(bwrite(blob, ch, buf, 8, 4), 0);
	assert_int_equal(close_blob(blob), 0);
	/* Freed and unloaded at once, without polling in between. */
	ust_bs_free_io_channel(ch);
	ust_bs_unload(bs, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);

	/* The same with I/O and the free on another thread. */
	assert_int_equal(load_store(NULL, &bs), 0);
	assert_int_equal(open_blob(bs, id, &blob), 0);
	u.bs = bs;
	u.blob = blob;
	u.buf = buf;
	assert_int_equal(ust_thread_send_msg(g_t1, chan_user_start, &u), 0);
	bt_poll();
	assert_true(u.done);
	assert_int_equal(u.rc, 0);
	assert_int_equal(close_blob(blob), 0);
	ust_bs_unload(bs, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);

	assert_int_equal(load_store(NULL, &bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	assert_int_equal(open_blob(bs, id, &blob), 0);
	assert_int_equal(bread(blob, ch, r, 0, 4), 0);
	assert_memory_equal(r, buf, sizeof(buf));
	assert_int_equal(bread(blob, ch, r, 8, 4), 0);
	assert_memory_equal(r, buf, sizeof(buf));
	assert_int_equal(close_blob(blob), 0);
	/* Allocated twice on one thread: one free leaves it held. */
	assert_ptr_equal(ust_bs_alloc_io_channel(bs), ch);
	ust_bs_free_io_channel(ch);
	assert_int_equal(unload(bs), -EBUSY);
	ust_bs_free_io_channel(ch);
	assert_int_equal(unload(bs), 0);
}

static void test_list_internal_xattrs(void **state)
{
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	ust_blob_id id;
	int n = 0;

	(void)state;
	assert_int_equal(init_store(NULL, &bs), 0);
	assert_int_equal(create(bs, 1, false, &id), 0);
	assert_int_equal(open_blob(bs, id, &blob), 0);
	assert_int_equal(ust_blob_list_internal_xattrs(blob, count_name, &n), 0);
	assert_int_equal(ust_blob_set_internal_xattr(blob, "a", "1", 1), 0);
	assert_int_equal(ust_blob_set_internal_xattr(blob, "b", "2", 1), 0);
	assert_int_equal(ust_blob_set_xattr(blob, "user", "3", 1), 0);
	assert_int_equal(ust_blob_list_internal_xattrs(blob, count_name, &n), 2);
	assert_int_equal(n, 2);
	assert_int_equal(ust_blob_list_internal_xattrs(blob, NULL, NULL), 2);
	assert_int_equal(ust_blob_list_xattrs(blob, NULL, NULL), 1);
	assert_int_equal(ust_blob_remove_internal_xattr(blob, "a"), 0);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(unload(bs), 0);
	assert_int_equal(load_store(NULL, &bs), 0);
	assert_int_equal(open_blob(bs, id, &blob), 0);
	n = 0;
	assert_int_equal(ust_blob_list_internal_xattrs(blob, count_name, &n), 1);
	assert_int_equal(n, 1);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(unload(bs), 0);
}

struct flusher {
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	struct ust_io_channel *ch;
	struct ust_thread *cb_thread;
	bool done;
	int rc;
};

static void flusher_done(void *arg, int rc)
{
	struct flusher *f = arg;

	f->done = true;
	f->rc = rc;
	f->cb_thread = ust_get_thread();
	ust_bs_free_io_channel(f->ch);
}

static void flusher_start(void *arg)
{
	struct flusher *f = arg;

	f->ch = ust_bs_alloc_io_channel(f->bs);
	ust_blob_flush(f->blob, f->ch, flusher_done, f);
}

static void stat_done(struct ust_bdev *bdev, struct ust_bdev_io_stat *stat, void *ctx, int rc)
{
	(void)bdev;
	(void)stat;
	bt_op_cb(ctx, rc);
}

static uint64_t flush_count(void)
{
	struct ust_bdev_io_stat st;

	ust_bdev_get_iostat(ust_bdev_get_by_name("M0"), &st, stat_done, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	return st.num_flush_ops;
}

static void test_flush(void **state)
{
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	struct ust_io_channel *ch;
	struct flusher f = {0};
	uint64_t before;
	ust_blob_id id;

	(void)state;
	assert_int_equal(init_store(NULL, &bs), 0);
	assert_int_equal(create(bs, 1, false, &id), 0);
	assert_int_equal(open_blob(bs, id, &blob), 0);

	/* From another thread's channel: one device flush, completed there. */
	before = flush_count();
	f.bs = bs;
	f.blob = blob;
	assert_int_equal(ust_thread_send_msg(g_t1, flusher_start, &f), 0);
	bt_poll();
	assert_true(f.done);
	assert_int_equal(f.rc, 0);
	assert_ptr_equal(f.cb_thread, g_t1);
	assert_int_equal(flush_count(), before + 1);

	/* The store variant, and a NULL callback. */
	ch = ust_bs_alloc_io_channel(bs);
	ust_bs_flush(bs, ch, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	ust_blob_flush(blob, ch, NULL, NULL);
	bt_poll();
	assert_int_equal(flush_count(), before + 3);
	/* Another thread's channel is refused. */
	ust_set_thread(g_t1);
	ust_blob_flush(blob, ch, bt_op_cb, bt_begin());
	ust_set_thread(g_t0);
	assert_true(bt_r.done);
	assert_int_equal(bt_r.rc, -EINVAL);
	ust_bs_flush(bs, NULL, bt_op_cb, bt_begin());
	assert_int_equal(bt_r.rc, -EINVAL);
	assert_int_equal(flush_count(), before + 3);
	ust_bs_free_io_channel(ch);
	assert_int_equal(close_blob(blob), 0);
	assert_int_equal(unload(bs), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_lifecycle, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_blob_lifecycle, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_iterate, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_resize, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_data_roundtrip, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_thin_race, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_enospc, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_xattrs, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_dirty_load, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_damaged_root_isolated, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_damaged_chain_dirty, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_superblock_damage, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_create_xattrs_copied, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_null_callbacks, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_load_not_a_store_quiet, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_unload_after_free_channel, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_list_internal_xattrs, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_flush, make_bdev, drop_bdev),
	};

	ust_log_set_print_level(UST_LOG_WARN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
