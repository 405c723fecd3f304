/*
 * Unit tests for ust_blob_read_lend() (blobstore/bs_io.c), the zero-copy
 * read of a blob: the lent bytes, gathered from the iovec, equal what
 * ust_blob_read() returns and a model of the blob, over allocated clusters,
 * holes (zeros) and a clone's parent chain; clusters back to back on the
 * device come back as one entry, never joined across a hole; the memory is
 * the device's own (a later write shows through, a clone's unwritten
 * cluster is its parent's memory); -E2BIG for a short iovec, -EINVAL for
 * bad ranges and arguments, -ENOTSUP from a bdev that cannot lend (holes
 * still lend), -EIO through a parent that cannot be opened.
 * ust_blob_write_fill(), the zero-copy write: what the fill stores is what
 * ust_blob_read() returns afterwards, across clusters; a hole, a cluster
 * still the parent's, a frozen blob are -EAGAIN and call nothing; the
 * fill's error is returned; a snapshot is -EPERM; a bdev that cannot lend
 * -ENOTSUP; -E2BIG past UST_BLOB_FILL_IOV pieces. Malloc bdev (a passthru
 * over one for -ENOTSUP), one ust_thread polled by hand.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <cmocka.h>

#include "ustor/bdev.h"
#include "ustor/blob.h"
#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/thread.h"

#include "../../../bdev/passthru/bdev_passthru.h"
#include "../../../blobstore/blobstore_internal.h"
#include "../../../blobstore/format.h"
#include "blob_test.h"

#define DEV "M0"
#define BLOCK 4096u
#define BDEV_BYTES (16u << 20)
#define CLUSTER (64u << 10)
#define UPC (CLUSTER / BLOCK)
#define NCL 8u
#define MAXIOV 64

static void fill(uint8_t *buf, uint64_t len, uint64_t seed)
{
	uint64_t i;

	for (i = 0; i < len; i++) {
		buf[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 12));
	}
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
	uint8_t *model; /* NCL clusters: what the blob holds */
	uint8_t *buf;   /* DMA buffer of NCL clusters */
};

static void open_store(struct fixture *f, const char *dev)
{
	assert_int_equal(bt_init(dev, CLUSTER, 64, &f->bs), 0);
	assert_int_equal(ust_bs_get_io_unit_size(f->bs), BLOCK);
	f->ch = ust_bs_alloc_io_channel(f->bs);
	assert_non_null(f->ch);
	assert_int_equal(bt_create(f->bs, NCL, true, &f->id), 0);
	assert_int_equal(bt_open(f->bs, f->id, &f->blob), 0);
	f->model = calloc(1, NCL * CLUSTER);
	f->buf = ust_dma_malloc(NCL * CLUSTER, BLOCK);
	assert_non_null(f->model);
	assert_non_null(f->buf);
}

static void close_store(struct fixture *f)
{
	assert_int_equal(bt_close(f->blob), 0);
	ust_bs_free_io_channel(f->ch);
	bt_poll();
	assert_int_equal(bt_unload(f->bs), 0);
	free(f->model);
	ust_dma_free(f->buf);
}

/* Write units [off, off + len) of blob with pattern seed, in model too. */
static void mwrite(struct fixture *f, struct ust_blob *blob, uint8_t *model, uint64_t off,
		   uint64_t len, uint64_t seed)
{
	fill(f->buf, len * BLOCK, seed);
	assert_int_equal(bt_write(blob, f->ch, f->buf, off, len), 0);
	memcpy(model + off * BLOCK, f->buf, len * BLOCK);
}

/* Copy the n entries of iov to out; their total length. */
static uint64_t gather(const struct iovec *iov, int n, uint8_t *out)
{
	uint64_t t = 0;
	int i;

	for (i = 0; i < n; i++) {
		assert_non_null(iov[i].iov_base);
		assert_true(iov[i].iov_len > 0);
		memcpy(out + t, iov[i].iov_base, iov[i].iov_len);
		t += iov[i].iov_len;
	}
	return t;
}

/*
 * Lend units [off, off + len) of blob and check the bytes against model
 * and against ust_blob_read(); the number of entries used.
 */
static int lend_check(struct fixture *f, struct ust_blob *blob, const uint8_t *model,
		      uint64_t off, uint64_t len, struct iovec *iov)
{
	uint8_t *got = malloc(len * BLOCK);
	int n = MAXIOV;

	assert_non_null(got);
	assert_int_equal(ust_blob_read_lend(blob, f->ch, off, len, iov, &n), 0);
	assert_true(n >= 1 && n <= MAXIOV);
	assert_int_equal(gather(iov, n, got), len * BLOCK);
	assert_memory_equal(got, model + off * BLOCK, len * BLOCK);
	memset(f->buf, 0xa5, len * BLOCK);
	assert_int_equal(bt_read(blob, f->ch, f->buf, off, len), 0);
	assert_memory_equal(got, f->buf, len * BLOCK);
	free(got);
	return n;
}

/* A snapshot of blob id: its id. */
static ust_blob_id snapshot_of(struct fixture *f, ust_blob_id id)
{
	ust_bs_create_snapshot(f->bs, id, NULL, 0, bt_id_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	return bt_r.id;
}

static bool all_zero(const void *p, uint64_t len)
{
	const uint8_t *b = p;
	uint64_t i;

	for (i = 0; i < len; i++) {
		if (b[i] != 0) {
			return false;
		}
	}
	return true;
}

/*
 * Clusters 0 and 1 of a thin blob lie back to back, 2 is a hole, 3 is the
 * device's next cluster after 1 but not the blob's, 5 is elsewhere, the
 * rest are holes. Lends of many ranges read what ust_blob_read reads;
 * 0-1 is one entry, holes are zeros, and nothing is joined across a hole.
 */
static void test_lend_thin(void **state)
{
	struct iovec iov[MAXIOV];
	struct fixture f;
	const struct bs_map *m;
	uint64_t off, len, seed = 1;
	uint8_t *first;
	int n;

	(void)state;
	open_store(&f, DEV);
	/* a blob never written lends zeros */
	lend_check(&f, f.blob, f.model, 0, NCL * UPC, iov);
	assert_true(all_zero(iov[0].iov_base, iov[0].iov_len));

	/* allocation order 5, 0, 1, 3 */
	mwrite(&f, f.blob, f.model, 5 * UPC + 2, 3, 10);
	mwrite(&f, f.blob, f.model, 3, 2 * UPC - 3, 11);
	mwrite(&f, f.blob, f.model, 3 * UPC + UPC - 1, 1, 12);
	m = bs_blob_map(f.blob);
	assert_int_equal(bs_map_get(m, 1), bs_map_get(m, 0) + 1);
	assert_int_equal(bs_map_get(m, 3), bs_map_get(m, 1) + 1);
	assert_int_equal(bs_map_get(m, 2), 0);
	assert_int_equal(bs_map_get(m, 4), 0);

	/* clusters 0-1: one entry, even from the middle of 0 to the middle of 1 */
	assert_int_equal(lend_check(&f, f.blob, f.model, 0, 2 * UPC, iov), 1);
	first = iov[0].iov_base;
	assert_int_equal(lend_check(&f, f.blob, f.model, 1, 2 * UPC - 2, iov), 1);
	assert_ptr_equal(iov[0].iov_base, first + BLOCK);
	/* 1, the hole 2, then 3 (next to 1 on the device): three entries */
	assert_int_equal(lend_check(&f, f.blob, f.model, UPC + 1, 3 * UPC - 2, iov), 3);
	assert_int_equal(iov[1].iov_len, CLUSTER);
	assert_true(all_zero(iov[1].iov_base, CLUSTER));
	/* the whole blob: 0-1 in the first entry, each hole zeros */
	n = lend_check(&f, f.blob, f.model, 0, NCL * UPC, iov);
	assert_true(n >= 6);
	assert_ptr_equal(iov[0].iov_base, first);
	assert_int_equal(iov[0].iov_len, 2 * CLUSTER);
	/* a single unit in each cluster, and units across every cluster boundary */
	for (off = 0; off < NCL * UPC; off += UPC) {
		assert_int_equal(lend_check(&f, f.blob, f.model, off + 7, 1, iov), 1);
		if (off > 0) {
			lend_check(&f, f.blob, f.model, off - 2, 4, iov);
		}
	}
	/* pseudo-random ranges */
	for (n = 0; n < 200; n++) {
		off = bt_rand(&seed) % (NCL * UPC);
		len = 1 + bt_rand(&seed) % (NCL * UPC - off);
		lend_check(&f, f.blob, f.model, off, len, iov);
	}

	/* The device's memory itself: a write completing later shows through. */
	lend_check(&f, f.blob, f.model, 0, 2 * UPC, iov);
	mwrite(&f, f.blob, f.model, UPC - 1, 2, 13);
	assert_memory_equal(iov[0].iov_base, f.model, 2 * CLUSTER);
	close_store(&f);
}

/* Too few entries: -E2BIG; bad ranges and arguments: -EINVAL. */
static void test_lend_errors(void **state)
{
	struct iovec iov[MAXIOV];
	struct fixture f;
	uint64_t size = NCL * UPC;
	int n;

	(void)state;
	open_store(&f, DEV);
	mwrite(&f, f.blob, f.model, 0, 2 * UPC, 20);
	mwrite(&f, f.blob, f.model, 3 * UPC, UPC, 21);

	/* 0-1 (one run), the hole 2, cluster 3: three entries needed */
	n = 3;
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, 0, 4 * UPC, iov, &n), 0);
	assert_int_equal(n, 3);
	n = 2;
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, 0, 4 * UPC, iov, &n), -E2BIG);
	n = 1;
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, 0, 4 * UPC, iov, &n), -E2BIG);
	n = 1;
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, 0, 2 * UPC, iov, &n), 0);
	assert_int_equal(n, 1);
	n = 1;
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, 2 * UPC, 2 * UPC, iov, &n), -E2BIG);

	/* ranges past the end */
	n = MAXIOV;
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, size - 1, 2, iov, &n), -EINVAL);
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, size, 1, iov, &n), -EINVAL);
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, 0, size + 1, iov, &n), -EINVAL);
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, 1, UINT64_MAX, iov, &n), -EINVAL);
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, UINT64_MAX, 2, iov, &n), -EINVAL);
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, 0, 0, iov, &n), -EINVAL);
	/* the last unit is fine */
	n = MAXIOV;
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, size - 1, 1, iov, &n), 0);
	assert_int_equal(n, 1);
	/* no room, no iovec, no count, no channel */
	n = 0;
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, 0, 1, iov, &n), -EINVAL);
	n = -1;
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, 0, 1, iov, &n), -EINVAL);
	n = MAXIOV;
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, 0, 1, NULL, &n), -EINVAL);
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, 0, 1, iov, NULL), -EINVAL);
	assert_int_equal(ust_blob_read_lend(f.blob, NULL, 0, 1, iov, &n), -EINVAL);

	/* a blob grown by a resize lends its new (unallocated) end as zeros */
	assert_int_equal(bt_resize(f.blob, NCL + 2), 0);
	n = MAXIOV;
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, size, 2 * UPC, iov, &n), 0);
	assert_int_equal(iov[0].iov_len + (n > 1 ? iov[1].iov_len : 0), 2 * CLUSTER);
	assert_true(all_zero(iov[0].iov_base, iov[0].iov_len));
	assert_true(n == 1 || all_zero(iov[1].iov_base, iov[1].iov_len));
	close_store(&f);
}

/* The clusters of blob lent one at a time: bases[i] is where cluster i lies. */
static void cluster_bases(struct fixture *f, struct ust_blob *blob, const uint8_t **bases)
{
	struct iovec iov[MAXIOV];
	uint32_t i;
	int n;

	for (i = 0; i < NCL; i++) {
		n = 1;
		assert_int_equal(ust_blob_read_lend(blob, f->ch, i * UPC, UPC, iov, &n), 0);
		assert_int_equal(n, 1);
		assert_int_equal(iov[0].iov_len, CLUSTER);
		bases[i] = iov[0].iov_base;
	}
}

/*
 * A snapshot takes the blob's clusters; the blob (now a clone) lends them
 * from the snapshot until it writes its own. A clone of the snapshot lends
 * the snapshot's very memory for every cluster it has not written, and
 * zeros beyond the snapshot's end once grown.
 */
static void test_lend_clone(void **state)
{
	const uint8_t *snap_at[NCL], *blob_at[NCL], *clone_at[NCL];
	struct iovec iov[MAXIOV];
	struct fixture f;
	struct ust_blob *snap, *clone;
	ust_blob_id sid, cid;
	uint8_t *snap_model = malloc(NCL * CLUSTER), *clone_model = malloc(NCL * CLUSTER);
	uint32_t i;
	int n;

	(void)state;
	open_store(&f, DEV);
	for (i = 0; i < NCL; i++) {
		if (i != 6) {
			mwrite(&f, f.blob, f.model, (uint64_t)i * UPC, UPC, 30 + i);
		}
	}
	sid = snapshot_of(&f, f.id);
	assert_int_equal(bt_open(f.bs, sid, &snap), 0);
	memcpy(snap_model, f.model, NCL * CLUSTER);
	lend_check(&f, snap, snap_model, 0, NCL * UPC, iov);
	cluster_bases(&f, snap, snap_at);

	/* the blob writes clusters 1 and 2 (copy on write) and part of the hole 6 */
	mwrite(&f, f.blob, f.model, UPC + 3, 2 * UPC - 6, 40);
	mwrite(&f, f.blob, f.model, 6 * UPC + 1, 2, 41);
	lend_check(&f, f.blob, f.model, 0, NCL * UPC, iov);
	lend_check(&f, snap, snap_model, 0, NCL * UPC, iov);
	cluster_bases(&f, f.blob, blob_at);
	for (i = 0; i < NCL; i++) {
		if (i == 1 || i == 2 || i == 6) {
			assert_ptr_not_equal(blob_at[i], snap_at[i]);
		} else {
			assert_ptr_equal(blob_at[i], snap_at[i]);
		}
	}

	/* a clone of the snapshot: everything the snapshot's until written */
	ust_bs_create_clone(f.bs, sid, NULL, 0, bt_id_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	cid = bt_r.id;
	assert_int_equal(bt_open(f.bs, cid, &clone), 0);
	memcpy(clone_model, snap_model, NCL * CLUSTER);
	lend_check(&f, clone, clone_model, 0, NCL * UPC, iov);
	cluster_bases(&f, clone, clone_at);
	assert_memory_equal(clone_at, snap_at, sizeof(snap_at));
	mwrite(&f, clone, clone_model, 4 * UPC, 1, 50);
	lend_check(&f, clone, clone_model, 0, NCL * UPC, iov);
	lend_check(&f, snap, snap_model, 0, NCL * UPC, iov);
	cluster_bases(&f, clone, clone_at);
	for (i = 0; i < NCL; i++) {
		if (i == 4) {
			assert_ptr_not_equal(clone_at[i], snap_at[i]);
		} else {
			assert_ptr_equal(clone_at[i], snap_at[i]);
		}
	}
	/* the parent's hole at 6 lends zeros through the chain */
	n = 1;
	assert_int_equal(ust_blob_read_lend(clone, f.ch, 6 * UPC, UPC, iov, &n), 0);
	assert_true(all_zero(iov[0].iov_base, CLUSTER));
	/* grown past the snapshot's end: zeros there, not whatever lies beyond */
	assert_int_equal(bt_resize(clone, NCL + 1), 0);
	n = 1;
	assert_int_equal(ust_blob_read_lend(clone, f.ch, NCL * UPC, UPC, iov, &n), 0);
	assert_int_equal(iov[0].iov_len, CLUSTER);
	assert_true(all_zero(iov[0].iov_base, CLUSTER));

	assert_int_equal(bt_close(clone), 0);
	assert_int_equal(bt_close(snap), 0);
	close_store(&f);
	free(snap_model);
	free(clone_model);
}

/*
 * A clone whose parent cannot be opened (its root pages destroyed) lends
 * what it wrote itself, and -EIO for whatever it would read through the
 * parent.
 */
static void test_lend_broken_parent(void **state)
{
	struct iovec iov[MAXIOV];
	struct fixture f;
	struct ust_blob *clone;
	ust_blob_id sid;
	uint64_t pages[2];
	uint8_t *zero = calloc(1, UST_BS_PAGE_SIZE);
	int n, h;

	(void)state;
	open_store(&f, DEV);
	mwrite(&f, f.blob, f.model, 0, 2 * UPC, 60);
	sid = snapshot_of(&f, f.id);
	mwrite(&f, f.blob, f.model, 3 * UPC, UPC, 61);
	for (h = 0; h < 2; h++) {
		pages[h] = bs_root_page(f.bs, ust_bs_blobid_slot(sid), h);
	}
	assert_int_equal(bt_close(f.blob), 0);
	ust_bs_free_io_channel(f.ch);
	bt_poll();
	assert_int_equal(bt_unload(f.bs), 0);
	for (h = 0; h < 2; h++) {
		bt_raw_write(DEV, pages[h] * UST_BS_PAGE_SIZE, zero, UST_BS_PAGE_SIZE);
	}

	assert_int_equal(bt_load(DEV, &f.bs), 0);
	f.ch = ust_bs_alloc_io_channel(f.bs);
	assert_non_null(f.ch);
	assert_int_equal(bt_open(f.bs, f.id, &clone), 0);
	f.blob = clone;
	/* its own cluster 3 lends; cluster 0 (the parent's) and the hole 5 do not */
	assert_int_equal(lend_check(&f, clone, f.model, 3 * UPC, UPC, iov), 1);
	n = MAXIOV;
	assert_int_equal(ust_blob_read_lend(clone, f.ch, 0, UPC, iov, &n), -EIO);
	assert_int_equal(ust_blob_read_lend(clone, f.ch, 5 * UPC, 1, iov, &n), -EIO);
	assert_int_equal(ust_blob_read_lend(clone, f.ch, 3 * UPC, 2 * UPC, iov, &n), -EIO);
	close_store(&f);
	free(zero);
}

/*
 * Clusters larger than the shared zero buffer: a hole of a whole 1 MiB
 * cluster, and one within a range that starts and ends inside allocated
 * clusters, still lend as zeros and the data around them as written.
 */
static void test_lend_large_clusters(void **state)
{
	const uint32_t big = 1u << 20, upc = big / BLOCK;
	struct iovec iov[MAXIOV];
	struct fixture f = {0};
	uint8_t *model = calloc(1, 4 * big), *got = malloc(4 * big);
	uint64_t off, len, seed = 7;
	int n, k;

	(void)state;
	assert_int_equal(bt_init(DEV, big, 16, &f.bs), 0);
	f.ch = ust_bs_alloc_io_channel(f.bs);
	assert_non_null(f.ch);
	assert_int_equal(bt_create(f.bs, 4, true, &f.id), 0);
	assert_int_equal(bt_open(f.bs, f.id, &f.blob), 0);
	f.buf = ust_dma_malloc(big, BLOCK);
	mwrite(&f, f.blob, model, upc - 2, 4, 80);   /* clusters 0 and 1 */
	mwrite(&f, f.blob, model, 3 * upc, 5, 81);   /* cluster 3; 2 stays a hole */
	for (k = 0; k < 30; k++) {
		off = k == 0 ? 0 : bt_rand(&seed) % (4 * upc);
		len = k == 0 ? 4 * upc : 1 + bt_rand(&seed) % (4 * upc - off);
		n = MAXIOV;
		assert_int_equal(ust_blob_read_lend(f.blob, f.ch, off, len, iov, &n), 0);
		assert_int_equal(gather(iov, n, got), len * BLOCK);
		assert_memory_equal(got, model + off * BLOCK, len * BLOCK);
	}
	assert_int_equal(bt_close(f.blob), 0);
	ust_bs_free_io_channel(f.ch);
	bt_poll();
	assert_int_equal(bt_unload(f.bs), 0);
	ust_dma_free(f.buf);
	free(model);
	free(got);
}

/* On a bdev that cannot lend (a passthru): allocated clusters -ENOTSUP, holes still zeros. */
static void test_lend_bdev_cannot(void **state)
{
	struct iovec iov[MAXIOV];
	struct fixture f;
	int n;

	(void)state;
	assert_int_equal(ust_bdev_passthru_create(DEV, "P0", NULL), 0);
	bt_poll();
	open_store(&f, "P0");
	mwrite(&f, f.blob, f.model, UPC, UPC, 70);
	n = MAXIOV;
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, UPC, 1, iov, &n), -ENOTSUP);
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, 0, 2 * UPC, iov, &n), -ENOTSUP);
	n = MAXIOV;
	assert_int_equal(ust_blob_read_lend(f.blob, f.ch, 2 * UPC, UPC, iov, &n), 0);
	assert_int_equal(n, 1);
	assert_true(all_zero(iov[0].iov_base, CLUSTER));
	/* and the data is there for ust_blob_read */
	assert_int_equal(bt_read(f.blob, f.ch, f.buf, UPC, UPC), 0);
	assert_memory_equal(f.buf, f.model + CLUSTER, CLUSTER);
	close_store(&f);
	assert_int_equal(ust_bdev_passthru_delete("P0", bt_op_cb, bt_begin()), 0);
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
}

/* ---- zero-copy writes ------------------------------------------------------------- */

struct filler {
	int calls;
	int rc;          /* what the fill returns */
	uint64_t seed;
	uint64_t stored; /* bytes the fill was given */
	int pieces;
};

static int fill_cb(void *arg, const struct iovec *iov, int iovcnt)
{
	struct filler *fl = arg;
	uint8_t *src;
	uint64_t total = 0;
	int i;

	fl->calls++;
	fl->pieces = iovcnt;
	for (i = 0; i < iovcnt; i++) {
		total += iov[i].iov_len;
	}
	src = malloc(total);
	assert_non_null(src);
	fill(src, total, fl->seed);
	total = 0;
	for (i = 0; i < iovcnt; i++) {
		memcpy(iov[i].iov_base, src + total, iov[i].iov_len);
		total += iov[i].iov_len;
	}
	fl->stored = total;
	free(src);
	return fl->rc;
}

/* Fill units [off, off + len) of blob with seed through ust_blob_write_fill: its result. */
static int write_fill(struct fixture *f, struct ust_blob *blob, uint8_t *model, uint64_t off,
		      uint64_t len, uint64_t seed, struct filler *fl)
{
	int rc;

	memset(fl, 0, sizeof(*fl));
	fl->seed = seed;
	rc = ust_blob_write_fill(blob, f->ch, off, len, fill_cb, fl);
	if (rc == 0 && model != NULL) {
		fill(model + off * BLOCK, len * BLOCK, seed);
	}
	return rc;
}

static void freeze_done(void *arg, int rc)
{
	*(int *)arg = rc == 0 ? 1 : rc;
}

/*
 * Over the blob's own clusters the fill's bytes are the blob's: read back,
 * and lent back, from the first unit to the last, across clusters. A hole
 * anywhere in the range, and writes frozen, call nothing and change
 * nothing; the fill's own error comes back.
 */
static void test_write_fill(void **state)
{
	struct iovec iov[MAXIOV];
	struct filler fl;
	struct fixture f;
	int frozen = 0;

	(void)state;
	open_store(&f, DEV);
	mwrite(&f, f.blob, f.model, 0, 2 * UPC, 80);
	mwrite(&f, f.blob, f.model, 5 * UPC, UPC, 81);

	assert_int_equal(write_fill(&f, f.blob, f.model, UPC - 3, 6, 82, &fl), 0);
	assert_int_equal(fl.calls, 1);
	assert_int_equal(fl.stored, 6 * BLOCK);
	lend_check(&f, f.blob, f.model, 0, NCL * UPC, iov);
	assert_int_equal(write_fill(&f, f.blob, f.model, 0, 1, 83, &fl), 0);
	assert_int_equal(write_fill(&f, f.blob, f.model, 6 * UPC - 1, 1, 84, &fl), 0);
	lend_check(&f, f.blob, f.model, 0, NCL * UPC, iov);

	/* a hole: at the start, at the end, or in the middle of the range */
	assert_int_equal(write_fill(&f, f.blob, NULL, 2 * UPC, 1, 85, &fl), -EAGAIN);
	assert_int_equal(write_fill(&f, f.blob, NULL, 2 * UPC - 1, 2, 85, &fl), -EAGAIN);
	assert_int_equal(write_fill(&f, f.blob, NULL, UPC, 4 * UPC + 1, 85, &fl), -EAGAIN);
	assert_int_equal(fl.calls, 0);
	lend_check(&f, f.blob, f.model, 0, NCL * UPC, iov);

	/* the fill fails: its error (what it stored stays, as after a failed write) */
	memset(&fl, 0, sizeof(fl));
	fl.rc = -EIO;
	fl.seed = 86;
	assert_int_equal(ust_blob_write_fill(f.blob, f.ch, 5 * UPC, 2, fill_cb, &fl), -EIO);
	assert_int_equal(fl.calls, 1);
	fill(f.model + 5 * UPC * BLOCK, 2 * BLOCK, 86);
	lend_check(&f, f.blob, f.model, 0, NCL * UPC, iov);

	/* frozen (a snapshot being taken): refused, and not counted in flight */
	bs_blob_freeze(f.blob, freeze_done, &frozen);
	bt_poll();
	assert_int_equal(frozen, 1);
	assert_int_equal(write_fill(&f, f.blob, NULL, 0, 1, 87, &fl), -EAGAIN);
	assert_int_equal(fl.calls, 0);
	assert_int_equal(f.blob->wr_inflight, 0);
	bs_blob_unfreeze(f.blob);
	assert_int_equal(write_fill(&f, f.blob, f.model, 0, 1, 87, &fl), 0);
	assert_int_equal(f.blob->wr_inflight, 0);
	lend_check(&f, f.blob, f.model, 0, NCL * UPC, iov);

	/* bad arguments */
	assert_int_equal(ust_blob_write_fill(f.blob, f.ch, 0, 1, NULL, &fl), -EINVAL);
	assert_int_equal(ust_blob_write_fill(f.blob, f.ch, NCL * UPC, 1, fill_cb, &fl), -EINVAL);
	assert_int_equal(ust_blob_write_fill(f.blob, f.ch, 0, 0, fill_cb, &fl), -EINVAL);
	close_store(&f);
}

/*
 * After a snapshot the blob owns nothing until it writes: -EAGAIN over the
 * snapshot's clusters (the snapshot's bytes stay), a fill once the blob
 * wrote its own copy; the snapshot itself is read-only (-EPERM).
 */
static void test_write_fill_snapshot(void **state)
{
	struct iovec iov[MAXIOV];
	struct ust_blob *snap;
	struct filler fl;
	struct fixture f;
	uint8_t *snap_model = malloc(NCL * CLUSTER);

	(void)state;
	open_store(&f, DEV);
	mwrite(&f, f.blob, f.model, 0, 3 * UPC, 90);
	assert_int_equal(bt_open(f.bs, snapshot_of(&f, f.id), &snap), 0);
	memcpy(snap_model, f.model, NCL * CLUSTER);

	assert_int_equal(write_fill(&f, f.blob, NULL, 0, UPC, 91, &fl), -EAGAIN);
	assert_int_equal(fl.calls, 0);
	assert_int_equal(write_fill(&f, snap, NULL, 0, 1, 92, &fl), -EPERM);
	mwrite(&f, f.blob, f.model, UPC, 1, 93); /* copy on write: cluster 1 is the blob's */
	assert_int_equal(write_fill(&f, f.blob, f.model, UPC + 2, UPC - 2, 94, &fl), 0);
	assert_int_equal(write_fill(&f, f.blob, NULL, UPC, UPC + 1, 95, &fl), -EAGAIN);
	lend_check(&f, f.blob, f.model, 0, NCL * UPC, iov);
	lend_check(&f, snap, snap_model, 0, NCL * UPC, iov);
	assert_int_equal(bt_close(snap), 0);
	close_store(&f);
	free(snap_model);
}

/* More pieces than UST_BLOB_FILL_IOV (every other cluster), and a bdev that cannot lend. */
static void test_write_fill_limits(void **state)
{
	struct filler fl;
	struct fixture f;
	ust_blob_id id, oid;
	struct ust_blob *big, *other;
	uint32_t i, n = UST_BLOB_FILL_IOV + 1;

	(void)state;
	open_store(&f, DEV);
	assert_int_equal(bt_create(f.bs, n, true, &id), 0);
	assert_int_equal(bt_open(f.bs, id, &big), 0);
	assert_int_equal(bt_create(f.bs, n, true, &oid), 0);
	assert_int_equal(bt_open(f.bs, oid, &other), 0);
	/* clusters allocated in turn with another blob's: none is back to back with the last */
	for (i = 0; i < n; i++) {
		fill(f.buf, BLOCK, i);
		assert_int_equal(bt_write(big, f.ch, f.buf, (uint64_t)i * UPC, 1), 0);
		assert_int_equal(bt_write(other, f.ch, f.buf, (uint64_t)i * UPC, 1), 0);
	}
	assert_int_equal(write_fill(&f, big, NULL, 0, (uint64_t)n * UPC, 96, &fl), -E2BIG);
	assert_int_equal(fl.calls, 0);
	assert_int_equal(write_fill(&f, big, NULL, 0, (uint64_t)(n - 1) * UPC, 97, &fl), 0);
	assert_int_equal(fl.pieces, UST_BLOB_FILL_IOV);
	assert_int_equal(bt_close(big), 0);
	assert_int_equal(bt_close(other), 0);
	close_store(&f);

	assert_int_equal(ust_bdev_passthru_create(DEV, "P0", NULL), 0);
	bt_poll();
	open_store(&f, "P0");
	mwrite(&f, f.blob, f.model, 0, UPC, 98);
	assert_int_equal(write_fill(&f, f.blob, NULL, 0, 1, 99, &fl), -ENOTSUP);
	assert_int_equal(fl.calls, 0);
	close_store(&f);
	assert_int_equal(ust_bdev_passthru_delete("P0", bt_op_cb, bt_begin()), 0);
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lend_thin, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_lend_errors, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_lend_clone, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_lend_broken_parent, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_lend_large_clusters, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_lend_bdev_cannot, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_write_fill, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_write_fill_snapshot, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_write_fill_limits, make_bdev, drop_bdev),
	};

	ust_log_set_print_level(UST_LOG_WARN);
	return cmocka_run_group_tests(tests, bt_group_setup, bt_group_teardown);
}
