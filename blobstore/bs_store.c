/*
 * The store as a whole: format (init), load, clean unload, destroy, the
 * superblock and its backup, the in-memory allocation bitmaps and the list
 * of damaged blobs.
 *
 * Guarantees (docs/blobstore-format.md 5, 9.2): format writes in the
 * documented four flushed steps (with prealloc_md, the second writes zero
 * pages over the whole metadata region instead of write-zeroes over the
 * root slots, so that a thin device allocates it all at format); a load
 * writes the primary with clean = 0
 * and flushes it before any other write, so stale on-disk bitmaps are never
 * trusted after a crash; a clean load verifies the bitmap checksums and falls
 * back to a dirty load (bs_recover.c) on any doubt; unload writes bitmaps,
 * flushes, then sets clean = 1 and flushes. Superblock changes write the
 * backup first, flush, then the primary.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"
#include "ustor/log.h"

#include "blobstore_internal.h"

enum store_state {
	ST_FLUSH, /* flush, then go to op->next: every "write, flush" pair */
	ST_FMT_ZERO_SB,
	ST_FMT_ROOTS,
	ST_FMT_FILL, /* prealloc_md: zero pages over root slots and pool, a window at a time */
	ST_FMT_BACKUP,
	ST_FMT_PRIMARY,
	ST_READ_PRIMARY,
	ST_READ_BACKUP,
	ST_CHECK,
	ST_READ_BITMAPS,
	ST_MARK_DIRTY,
	ST_RECOVER,
	ST_RECOVERED,
	ST_REPAIR_BACKUP,
	ST_LOADED,
	ST_UNLOAD_BITMAPS,
	ST_UNLOAD_CLEAN,
	ST_DESTROY_ERASE,
	ST_CLOSE,
	ST_SUPER_BACKUP,
	ST_SUPER_PRIMARY,
	ST_SUPER_DONE,
};

struct store_op {
	enum store_state state;
	enum store_state next; /* after ST_FLUSH */
	bool dirty_load;
	bool counts_op; /* a superblock change: holds bs->ops and bs->sb_changing */
	bool closing;    /* an unload or destroy: the store goes whatever the bdev says */
	bool destroying; /* a destroy */
	struct ust_blob_store *bs;
	int rc;
	uint32_t pending;
	bool use_backup;   /* the primary was damaged: run on the backup */
	bool backup_stale; /* the backup needs rewriting from the primary */
	uint8_t *page;
	uint8_t *page2;
	uint64_t backup_offset;
	/* bs_super_commit(): the superblock to write instead of bs->sb. */
	bool use_next;
	struct ust_bs_super next_sb;
	char bstype[UST_BS_BSTYPE_MAX + 1];
	struct ust_bs_opts opts;
	/* ST_FMT_FILL: the pages still to write, and the zeroes they are written from */
	uint64_t fill_next;
	uint64_t fill_end;
	void *fill_buf;
	ust_bs_op_with_handle_cb hcb;
	ust_bs_op_cb cb;
	void *arg;
};

static void store_step(struct store_op *op);

/* prealloc_md: pages per zero write (1 MiB) and writes in flight at once */
#define FMT_FILL_PAGES 256
#define FMT_FILL_DEPTH 8

/* ---- allocation bitmaps ---------------------------------------------------------- */

uint32_t bs_cluster_alloc(struct ust_blob_store *bs)
{
	uint64_t c;

	if (bs->free_clusters == 0) {
		return 0;
	}
	c = bs_bit_find_clear(bs->cbm, bs->cluster_hint, bs->sb.total_clusters);
	if (c == bs->sb.total_clusters) {
		c = bs_bit_find_clear(bs->cbm, bs->sb.md_clusters, bs->sb.total_clusters);
	}
	if (c == bs->sb.total_clusters) {
		return 0;
	}
	bs_bit_set(bs->cbm, c);
	bs->free_clusters--;
	bs->cluster_hint = c + 1;
	return (uint32_t)c;
}

void bs_cluster_free(struct ust_blob_store *bs, uint32_t cluster)
{
	if (cluster < bs->sb.md_clusters || cluster >= bs->sb.total_clusters ||
	    !bs_bit_get(bs->cbm, cluster)) {
		UST_ERRLOG("blobstore: freeing cluster %u that is not allocated\n", cluster);
		return;
	}
	bs_bit_clear(bs->cbm, cluster);
	bs->free_clusters++;
	if (cluster < bs->cluster_hint) {
		bs->cluster_hint = cluster;
	}
}

void bs_cluster_claim(struct ust_blob_store *bs, uint32_t cluster)
{
	if (!bs_bit_get(bs->cbm, cluster)) {
		bs_bit_set(bs->cbm, cluster);
		bs->free_clusters--;
	}
}

uint32_t bs_page_alloc(struct ust_blob_store *bs)
{
	uint32_t n = bs->sb.md_pool.pages;
	uint64_t p;

	p = bs_bit_find_clear(bs->pbm, bs->page_hint, n);
	if (p == n) {
		p = bs_bit_find_clear(bs->pbm, 0, n);
	}
	if (p == n) {
		return 0;
	}
	bs_bit_set(bs->pbm, p);
	bs->page_hint = (uint32_t)p + 1;
	return bs->sb.md_pool.start + (uint32_t)p;
}

void bs_page_free(struct ust_blob_store *bs, uint32_t page)
{
	uint32_t rel = page - bs->sb.md_pool.start;

	if (page < bs->sb.md_pool.start || rel >= bs->sb.md_pool.pages) {
		UST_ERRLOG("blobstore: freeing page %u outside the pool\n", page);
		return;
	}
	bs_bit_clear(bs->pbm, rel);
	if (rel < bs->page_hint) {
		bs->page_hint = rel;
	}
}

void bs_page_claim(struct ust_blob_store *bs, uint32_t page)
{
	bs_bit_set(bs->pbm, page - bs->sb.md_pool.start);
}

uint64_t bs_root_page(const struct ust_blob_store *bs, uint32_t slot, int half)
{
	return (uint64_t)bs->sb.root_slots.start + 2ull * slot + (uint64_t)half;
}

/* ---- damaged blobs --------------------------------------------------------------- */

void bs_report_damage(struct ust_blob_store *bs, uint32_t slot, ust_blob_id id, int error,
		      const char *fmt, ...)
{
	struct bs_damaged *d = NULL;
	struct bs_damaged *grown;
	va_list ap;
	size_t i;

	for (i = 0; i < bs->ndamaged; i++) {
		if (bs->damaged[i].d.slot == slot) {
			d = &bs->damaged[i];
		}
	}
	if (d == NULL) {
		grown = realloc(bs->damaged, (bs->ndamaged + 1) * sizeof(*grown));
		if (grown == NULL) {
			UST_ERRLOG("blobstore: out of memory recording damage of slot %u\n", slot);
			return;
		}
		bs->damaged = grown;
		d = &bs->damaged[bs->ndamaged++];
	}
	memset(d, 0, sizeof(*d));
	d->d.id = id;
	d->d.slot = slot;
	d->d.error = error;
	va_start(ap, fmt);
	vsnprintf(d->d.msg, sizeof(d->d.msg), fmt, ap);
	va_end(ap);
	if (id != 0) {
		UST_ERRLOG("blob 0x%llx (slot %u) is damaged: %s\n", (unsigned long long)id, slot,
			   d->d.msg);
	} else {
		UST_ERRLOG("blob slot %u is damaged: %s\n", slot, d->d.msg);
	}
}

bool bs_is_damaged(const struct ust_blob_store *bs, uint32_t slot)
{
	size_t i;

	for (i = 0; i < bs->ndamaged; i++) {
		if (bs->damaged[i].d.slot == slot) {
			return true;
		}
	}
	return false;
}

void bs_forget_damage(struct ust_blob_store *bs, uint32_t slot)
{
	size_t i;

	for (i = 0; i < bs->ndamaged; i++) {
		if (bs->damaged[i].d.slot == slot) {
			bs->damaged[i] = bs->damaged[--bs->ndamaged];
			return;
		}
	}
}

size_t ust_bs_get_damaged(const struct ust_blob_store *bs, struct ust_bs_damage *out, size_t max)
{
	size_t i;

	for (i = 0; i < bs->ndamaged && i < max; i++) {
		out[i] = bs->damaged[i].d;
	}
	return bs->ndamaged;
}

/* ---- store lifetime ------------------------------------------------------------------ */

void ust_bs_opts_init(struct ust_bs_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
}

static void bs_free(struct ust_blob_store *bs)
{
	free(bs->cbm);
	free(bs->pbm);
	free(bs->bbm);
	free(bs->rel);
	free(bs->damaged);
	free(bs);
}

static int bitmaps_alloc(struct ust_blob_store *bs)
{
	bs->cbm = calloc(bs->sb.cluster_bitmap.pages, UST_BS_PAGE_SIZE);
	bs->pbm = calloc(bs->sb.page_bitmap.pages, UST_BS_PAGE_SIZE);
	bs->bbm = calloc(bs->sb.blobid_bitmap.pages, UST_BS_PAGE_SIZE);
	bs->rel = calloc(bs->sb.max_blobs, sizeof(*bs->rel));
	return bs->cbm && bs->pbm && bs->bbm && bs->rel ? 0 : -ENOMEM;
}

/* The state a fresh store and a dirty load start from: only metadata used. */
static void bitmaps_reset(struct ust_blob_store *bs)
{
	uint32_t c;

	memset(bs->cbm, 0, (size_t)bs->sb.cluster_bitmap.pages * UST_BS_PAGE_SIZE);
	memset(bs->pbm, 0, (size_t)bs->sb.page_bitmap.pages * UST_BS_PAGE_SIZE);
	memset(bs->bbm, 0, (size_t)bs->sb.blobid_bitmap.pages * UST_BS_PAGE_SIZE);
	memset(bs->rel, 0, (size_t)bs->sb.max_blobs * sizeof(*bs->rel));
	for (c = 0; c < bs->sb.md_clusters; c++) {
		bs_bit_set(bs->cbm, c);
	}
}

static uint64_t count_free_clusters(const struct ust_blob_store *bs)
{
	uint64_t c, n = 0;

	for (c = 0; c < bs->sb.total_clusters; c++) {
		n += !bs_bit_get(bs->cbm, c);
	}
	return n;
}

static bool bits_past_end_clear(const uint8_t *bm, uint64_t count, uint32_t pages)
{
	uint64_t i, end = (uint64_t)pages * UST_BS_BITS_PER_PAGE;

	for (i = count; i < end && (i % 8) != 0; i++) {
		if (bs_bit_get(bm, i)) {
			return false;
		}
	}
	for (i = (i + 7) / 8; i < end / 8; i++) {
		if (bm[i] != 0) {
			return false;
		}
	}
	return true;
}

/* A clean load trusts the bitmaps only if they are exactly what unload wrote. */
static bool bitmaps_verify(struct ust_blob_store *bs)
{
	const struct ust_bs_super *sb = &bs->sb;
	uint32_t c;

	if (ust_bs_fmt_region_checksum(bs->cbm, (size_t)sb->cluster_bitmap.pages * UST_BS_PAGE_SIZE) !=
		    sb->cluster_bitmap_csum ||
	    ust_bs_fmt_region_checksum(bs->pbm, (size_t)sb->page_bitmap.pages * UST_BS_PAGE_SIZE) !=
		    sb->page_bitmap_csum ||
	    ust_bs_fmt_region_checksum(bs->bbm, (size_t)sb->blobid_bitmap.pages * UST_BS_PAGE_SIZE) !=
		    sb->blobid_bitmap_csum) {
		UST_WARNLOG("blobstore: bitmap checksums do not match: recovering\n");
		return false;
	}
	if (!bits_past_end_clear(bs->cbm, sb->total_clusters, sb->cluster_bitmap.pages) ||
	    !bits_past_end_clear(bs->pbm, sb->md_pool.pages, sb->page_bitmap.pages) ||
	    !bits_past_end_clear(bs->bbm, sb->max_blobs, sb->blobid_bitmap.pages)) {
		UST_WARNLOG("blobstore: bitmap bits set past the end: recovering\n");
		return false;
	}
	for (c = 0; c < sb->md_clusters; c++) {
		if (!bs_bit_get(bs->cbm, c)) {
			UST_WARNLOG("blobstore: metadata cluster %u marked free: recovering\n", c);
			return false;
		}
	}
	return true;
}

static void store_io_done(void *arg, int rc)
{
	struct store_op *op = arg;

	if (rc != 0 && op->rc == 0) {
		op->rc = rc;
	}
	if (--op->pending == 0) {
		store_step(op);
	}
}

/* Issue I/O under a guard reference so inline completions cannot re-enter early. */
static void io_begin(struct store_op *op)
{
	op->pending = 1;
}

static void io_end(struct store_op *op)
{
	store_io_done(op, 0);
}

static void write_super(struct store_op *op, bool backup, bool clean)
{
	struct ust_blob_store *bs = op->bs;
	struct ust_bs_super sb = op->use_next ? op->next_sb : bs->sb;

	sb.hdr.seq = backup ? UST_BS_SUPER_BACKUP : UST_BS_SUPER_PRIMARY;
	sb.clean = clean;
	if (clean) {
		sb.cluster_bitmap_csum = ust_bs_fmt_region_checksum(
			bs->cbm, (size_t)sb.cluster_bitmap.pages * UST_BS_PAGE_SIZE);
		sb.page_bitmap_csum = ust_bs_fmt_region_checksum(
			bs->pbm, (size_t)sb.page_bitmap.pages * UST_BS_PAGE_SIZE);
		sb.blobid_bitmap_csum = ust_bs_fmt_region_checksum(
			bs->bbm, (size_t)sb.blobid_bitmap.pages * UST_BS_PAGE_SIZE);
	} else {
		sb.cluster_bitmap_csum = 0;
		sb.page_bitmap_csum = 0;
		sb.blobid_bitmap_csum = 0;
	}
	ust_bs_fmt_super_encode(&sb, op->page);
	op->pending++;
	bs_dev_write_bytes(bs, backup ? ust_bs_fmt_backup_offset(sb.bdev_size) : 0,
			   UST_BS_PAGE_SIZE, op->page, store_io_done, op);
}

static void write_bitmaps(struct store_op *op)
{
	struct ust_blob_store *bs = op->bs;
	const struct ust_bs_super *sb = &bs->sb;

	op->pending += 3;
	bs_dev_write_pages(bs, sb->cluster_bitmap.start, sb->cluster_bitmap.pages, bs->cbm,
			   store_io_done, op);
	bs_dev_write_pages(bs, sb->page_bitmap.start, sb->page_bitmap.pages, bs->pbm,
			   store_io_done, op);
	bs_dev_write_pages(bs, sb->blobid_bitmap.start, sb->blobid_bitmap.pages, bs->bbm,
			   store_io_done, op);
}

static void read_bitmaps(struct store_op *op)
{
	struct ust_blob_store *bs = op->bs;
	const struct ust_bs_super *sb = &bs->sb;

	op->pending += 3;
	bs_dev_read_pages(bs, sb->cluster_bitmap.start, sb->cluster_bitmap.pages, bs->cbm,
			  store_io_done, op);
	bs_dev_read_pages(bs, sb->page_bitmap.start, sb->page_bitmap.pages, bs->pbm,
			  store_io_done, op);
	bs_dev_read_pages(bs, sb->blobid_bitmap.start, sb->blobid_bitmap.pages, bs->bbm,
			  store_io_done, op);
}

static struct store_op *op_new(struct ust_blob_store *bs, enum store_state state)
{
	struct store_op *op = calloc(1, sizeof(*op));

	if (op == NULL) {
		return NULL;
	}
	op->bs = bs;
	op->state = state;
	op->page = bs_dma_page_alloc(1);
	op->page2 = bs_dma_page_alloc(1);
	if (op->page == NULL || op->page2 == NULL) {
		bs_dma_free(op->page);
		bs_dma_free(op->page2);
		free(op);
		return NULL;
	}
	return op;
}

static void op_free(struct store_op *op)
{
	bs_dma_free(op->fill_buf);
	bs_dma_free(op->page);
	bs_dma_free(op->page2);
	free(op);
}

/* Release the bdev and free the store, now: no channel may exist. */
static void store_release(struct ust_blob_store *bs)
{
	if (bs->io_device) {
		ust_io_device_unregister(bs, NULL);
		bs->io_device = false;
	}
	bs_dev_close(bs);
	bs_free(bs);
}

/* The caller's callback, once the operation (and any teardown) is over. */
static void op_done(struct store_op *op)
{
	if (op->hcb != NULL) {
		/* init / load */
		op->hcb(op->arg, op->rc == 0 ? op->bs : NULL, op->rc);
	} else {
		op->cb(op->arg, op->rc);
	}
	op_free(op);
}

static void store_teardown_done(void *io_device)
{
	struct ust_blob_store *bs = io_device;
	struct store_op *op = bs->teardown_op;

	/* Every channel is destroyed: their bdev channels are released. */
	bs_dev_close(bs);
	bs_free(bs);
	op->bs = NULL;
	op_done(op);
}

/*
 * Unregister the store's channels, then release the bdev, free the store
 * and complete op. A channel the caller freed may still have its destroy
 * queued on its thread (ust_bs_free_io_channel()): the core calls
 * store_teardown_done only after the last one ran.
 */
static void store_teardown(struct store_op *op)
{
	struct ust_blob_store *bs = op->bs;

	if (!bs->io_device) {
		store_release(bs);
		op->bs = NULL;
		op_done(op);
		return;
	}
	bs->io_device = false;
	bs->teardown_op = op;
	ust_io_device_unregister(bs, store_teardown_done);
}

static void op_finish(struct store_op *op)
{
	if (op->hcb != NULL && op->rc != 0) {
		/* A failed init or load leaves nothing behind. */
		store_teardown(op);
		return;
	}
	op_done(op);
}

/* Check what the superblock asks of this reader and this bdev. */
static int super_accept(struct store_op *op)
{
	struct ust_blob_store *bs = op->bs;
	const struct ust_bs_super *sb = &bs->sb;
	uint64_t bdev_size = ust_bdev_get_num_blocks(bs->bdev) * bs->blocklen;
	const char *name = ust_bdev_get_name(bs->bdev);

	if (op->bstype[0] != '\0' && strcmp(op->bstype, sb->bstype) != 0) {
		/* Not the caller's store (an examine tries every bdev): not an error. */
		UST_INFOLOG("blobstore on %s has type \"%s\", expected \"%s\"\n", name, sb->bstype,
			    op->bstype);
		return -EILSEQ;
	}
	if (sb->incompat & ~UST_BS_FEAT_INCOMPAT_SUPPORTED) {
		UST_ERRLOG("blobstore on %s uses unknown incompatible features 0x%x\n", name,
			   sb->incompat & ~UST_BS_FEAT_INCOMPAT_SUPPORTED);
		return -ENOTSUP;
	}
	if (sb->ro_compat & ~UST_BS_FEAT_RO_COMPAT_SUPPORTED) {
		UST_ERRLOG("blobstore on %s uses unknown read-only-compatible features 0x%x; "
			   "read-only loading is not supported yet\n", name,
			   sb->ro_compat & ~UST_BS_FEAT_RO_COMPAT_SUPPORTED);
		return -ENOTSUP;
	}
	if (sb->io_unit_size % bs->blocklen != 0) {
		UST_ERRLOG("blobstore on %s has io unit %u; the bdev's block size %u does not divide it\n",
			   name, sb->io_unit_size, bs->blocklen);
		return -EINVAL;
	}
	if (bdev_size < sb->bdev_size) {
		UST_ERRLOG("blobstore on %s was formatted for %llu bytes; the bdev has only %llu\n",
			   name, (unsigned long long)sb->bdev_size, (unsigned long long)bdev_size);
		return -EINVAL;
	}
	return 0;
}

static void store_geometry(struct ust_blob_store *bs)
{
	ust_bs_fmt_geom_from_super(&bs->sb, &bs->geom);
	bs->cluster_size = bs->sb.cluster_size;
	bs->io_unit = bs->sb.io_unit_size;
	bs->units_per_cluster = bs->cluster_size / bs->io_unit;
	bs->cluster_hint = bs->sb.md_clusters;
}

static void recover_done(void *arg, int rc)
{
	struct store_op *op = arg;

	op->rc = rc;
	store_step(op);
}

/* Clean load: the snapshot tree is read from the live roots. */
static void scan_done(void *arg, int rc)
{
	struct store_op *op = arg;
	struct ust_blob_store *bs = op->bs;

	if (rc == -EAGAIN) {
		/* A pending operation after a "clean" shutdown: trust nothing (9.3). */
		UST_WARNLOG("blobstore on %s: a pending operation survived a clean shutdown; recovering\n",
			    ust_bdev_get_name(bs->bdev));
		op->dirty_load = true;
		bitmaps_reset(bs);
		bs->free_clusters = count_free_clusters(bs);
		bs_recover(bs, recover_done, op);
		return;
	}
	op->rc = rc;
	store_step(op);
}

/* Primary decoded with this rc: decide whether to run on it or on the backup. */
static void primary_verdict(struct store_op *op, int rc, const struct ust_bs_fmt_err *err)
{
	const char *name = ust_bdev_get_name(op->bs->bdev);

	if (rc == 0) {
		op->backup_offset = ust_bs_fmt_backup_offset(op->bs->sb.bdev_size);
		return;
	}
	if (err->kind == UST_BS_FMT_BAD_CHECKSUM || rc == -EUCLEAN) {
		if (err->kind != UST_BS_FMT_BAD_MAGIC) {
			UST_WARNLOG("blobstore on %s: primary superblock damaged (%s: %s); trying the backup\n",
				    name, ust_bs_fmt_damage_str(err->kind), err->msg);
			op->use_backup = true;
			return;
		}
	}
	op->rc = rc;
}

/* The writes a state issues are followed by a flush, then by state after. */
static void then_flush(struct store_op *op, enum store_state after)
{
	op->state = ST_FLUSH;
	op->next = after;
}

/*
 * prealloc_md: the next window of zero-page writes over the metadata
 * region, each step waiting for the one before (store_io_done); after the
 * last, the bitmaps as ST_FMT_ROOTS writes them, then its flush. Plain
 * writes, not write-zeroes: a file bdev turns those into hole punches, and
 * the point is that the device backs every metadata page now. The region
 * is about 3 x max_blobs pages, so windows of FMT_FILL_DEPTH writes keep
 * the bdev's queue bounded however large the store.
 */
static void fill_md(struct store_op *op)
{
	uint64_t n;
	int i;

	io_begin(op);
	if (op->fill_next == op->fill_end) {
		then_flush(op, ST_FMT_BACKUP);
		write_bitmaps(op);
	}
	for (i = 0; i < FMT_FILL_DEPTH && op->fill_next < op->fill_end; i++) {
		n = op->fill_end - op->fill_next;
		if (n > FMT_FILL_PAGES) {
			n = FMT_FILL_PAGES;
		}
		op->pending++;
		bs_dev_write_pages(op->bs, op->fill_next, (uint32_t)n, op->fill_buf, store_io_done, op);
		op->fill_next += n;
	}
	io_end(op);
}

static void store_step(struct store_op *op)
{
	struct ust_blob_store *bs = op->bs;
	struct ust_bs_fmt_err err;
	struct ust_bs_super sb;
	int rc;

	if (op->rc == -ENODEV && op->closing) {
		/*
		 * The bdev is being removed (hot remove, its base deleted) and
		 * takes no more I/O, so the clean state cannot be written. Let go
		 * as a crash would: the next load of these bytes recovers the
		 * store (format doc 9.3). Staying loaded would keep the bdev's
		 * descriptor and claim, and its removal would never finish.
		 */
		UST_WARNLOG("blobstore on %s: the bdev is going away; %s\n", ust_bdev_get_name(bs->bdev),
			    op->destroying ? "released without erasing it (its bytes still hold the store)"
					   : "released without writing its clean state (the next load recovers it)");
		op->rc = 0;
		store_teardown(op);
		return;
	}
	if (op->rc != 0) {
		UST_ERRLOG("blobstore on %s: operation failed in state %d: %s\n",
			   ust_bdev_get_name(bs->bdev), op->state, strerror(-op->rc));
		if (op->counts_op) {
			/* Only superblock changes count: one ends here. */
			bs->ops--;
			bs->sb_changing--;
		}
		op_finish(op);
		return;
	}

	switch (op->state) {
	case ST_FLUSH:
		op->state = op->next;
		io_begin(op);
		op->pending++;
		bs_dev_flush(bs, store_io_done, op);
		io_end(op);
		break;

	/* ---- format (9.2): four steps, each flushed before the next ---- */
	case ST_FMT_ZERO_SB:
		then_flush(op, ST_FMT_ROOTS);
		io_begin(op);
		op->pending++;
		bs_dev_zero_pages(bs, 0, 1, store_io_done, op);
		io_end(op);
		break;
	case ST_FMT_ROOTS:
		if (op->opts.prealloc_md) {
			op->fill_next = bs->sb.root_slots.start;
			op->fill_end = (uint64_t)bs->sb.md_pool.start + bs->sb.md_pool.pages;
			op->fill_buf = bs_dma_page_alloc(FMT_FILL_PAGES);
			if (op->fill_buf == NULL) {
				op->rc = -ENOMEM;
				op_finish(op);
				return;
			}
			op->state = ST_FMT_FILL;
			fill_md(op);
			break;
		}
		then_flush(op, ST_FMT_BACKUP);
		io_begin(op);
		op->pending++;
		bs_dev_zero_pages(bs, bs->sb.root_slots.start, bs->sb.root_slots.pages, store_io_done, op);
		write_bitmaps(op);
		io_end(op);
		break;
	case ST_FMT_FILL:
		fill_md(op);
		break;
	case ST_FMT_BACKUP:
		then_flush(op, ST_FMT_PRIMARY);
		io_begin(op);
		write_super(op, true, false);
		io_end(op);
		break;
	case ST_FMT_PRIMARY:
		/* The store exists once this flush completes. */
		then_flush(op, ST_MARK_DIRTY);
		io_begin(op);
		write_super(op, false, true);
		io_end(op);
		break;

	/* ---- load (5.1, 9.2) ---- */
	case ST_READ_PRIMARY:
		op->state = ST_READ_BACKUP;
		io_begin(op);
		op->pending++;
		bs_dev_read_bytes(bs, 0, UST_BS_PAGE_SIZE, op->page, store_io_done, op);
		io_end(op);
		break;
	case ST_READ_BACKUP:
		rc = ust_bs_fmt_super_decode(op->page, &bs->sb, &err);
		if (rc != 0) {
			memset(&bs->sb, 0, sizeof(bs->sb));
		}
		primary_verdict(op, rc, &err);
		if (op->rc != 0) {
			if (op->rc == -ENODATA ||
			    (op->rc == -EUCLEAN && err.kind == UST_BS_FMT_BAD_MAGIC)) {
				/* Blank or someone else's: the ordinary "no store here"
				 * of an examine that tries every bdev. */
				UST_INFOLOG("blobstore: no store on %s: primary superblock: %s\n",
					    ust_bdev_get_name(bs->bdev),
					    ust_bs_fmt_damage_str(err.kind));
			} else {
				UST_ERRLOG("blobstore: no usable store on %s: primary superblock: %s (%s)\n",
					   ust_bdev_get_name(bs->bdev), ust_bs_fmt_damage_str(err.kind),
					   err.msg);
			}
			op_finish(op);
			return;
		}
		if (op->use_backup) {
			op->backup_offset =
				ust_bs_fmt_backup_offset(ust_bdev_get_num_blocks(bs->bdev) * bs->blocklen);
		}
		op->state = ST_CHECK;
		io_begin(op);
		op->pending++;
		bs_dev_read_bytes(bs, op->backup_offset, UST_BS_PAGE_SIZE, op->page2, store_io_done, op);
		io_end(op);
		break;
	case ST_CHECK:
		rc = ust_bs_fmt_super_decode(op->page2, &sb, &err);
		if (op->use_backup) {
			if (rc != 0 || sb.hdr.seq != UST_BS_SUPER_BACKUP) {
				UST_ERRLOG("blobstore on %s: primary superblock damaged and no usable backup (%s)\n",
					   ust_bdev_get_name(bs->bdev), rc != 0 ? err.msg : "not a backup");
				op->rc = -EUCLEAN;
				op_finish(op);
				return;
			}
			UST_WARNLOG("blobstore on %s: loading from the backup superblock\n",
				    ust_bdev_get_name(bs->bdev));
			bs->sb = sb;
			bs->sb.clean = false;
		} else if (rc != 0 || sb.hdr.store_id != bs->sb.hdr.store_id ||
			   sb.hdr.generation < bs->sb.hdr.generation) {
			UST_WARNLOG("blobstore on %s: backup superblock stale or damaged; rewriting it\n",
				    ust_bdev_get_name(bs->bdev));
			op->backup_stale = true;
		}
		op->rc = super_accept(op);
		if (op->rc == 0) {
			/*
			 * Claim only now that the bdev holds a store of the
			 * caller's type: an examine that probes every new bdev
			 * must not hold other modules off bdevs that are not
			 * its store (a vbdev created right after its base).
			 */
			op->rc = bs_dev_claim(bs);
		}
		if (op->rc == 0) {
			store_geometry(bs);
			op->rc = bitmaps_alloc(bs);
		}
		if (op->rc != 0) {
			op_finish(op);
			return;
		}
		op->state = ST_READ_BITMAPS;
		if (bs->sb.clean) {
			io_begin(op);
			read_bitmaps(op);
			io_end(op);
			break;
		}
		store_step(op);
		break;
	case ST_READ_BITMAPS:
		if (bs->sb.clean && bitmaps_verify(bs)) {
			bs->free_clusters = count_free_clusters(bs);
		} else {
			UST_NOTICELOG("blobstore on %s was not unloaded cleanly: recovering\n",
				      ust_bdev_get_name(bs->bdev));
			op->dirty_load = true;
			bitmaps_reset(bs);
			bs->free_clusters = count_free_clusters(bs);
		}
		op->state = ST_MARK_DIRTY;
		store_step(op);
		break;
	case ST_MARK_DIRTY:
		/* Before any other write: from here until unload the on-disk
		 * bitmaps are stale (9.2). From the backup, this also restores
		 * the primary (5.1). */
		then_flush(op, ST_RECOVER);
		io_begin(op);
		write_super(op, false, false);
		io_end(op);
		break;
	case ST_RECOVER:
		op->state = ST_RECOVERED;
		if (op->dirty_load) {
			bs_recover(bs, recover_done, op);
			break;
		}
		bs_scan_relations(bs, scan_done, op);
		break;
	case ST_RECOVERED:
		op->state = ST_REPAIR_BACKUP;
		if (op->backup_stale) {
			then_flush(op, ST_LOADED);
			io_begin(op);
			write_super(op, true, false);
			io_end(op);
			break;
		}
		op->state = ST_LOADED;
		store_step(op);
		break;
	case ST_REPAIR_BACKUP:
	case ST_LOADED:
		op_finish(op);
		break;

	/* ---- clean unload (9.2) ---- */
	case ST_UNLOAD_BITMAPS:
		then_flush(op, ST_UNLOAD_CLEAN);
		io_begin(op);
		write_bitmaps(op);
		io_end(op);
		break;
	case ST_UNLOAD_CLEAN:
		then_flush(op, ST_CLOSE);
		io_begin(op);
		if (bs->leaked) {
			UST_NOTICELOG("blobstore on %s: reserved space no metadata names; the next load recovers it\n",
				      ust_bdev_get_name(bs->bdev));
		}
		write_super(op, false, !bs->leaked);
		io_end(op);
		break;
	case ST_DESTROY_ERASE:
		then_flush(op, ST_CLOSE);
		io_begin(op);
		op->pending += 2;
		bs_dev_zero_pages(bs, 0, 1, store_io_done, op);
		bs_dev_zero_pages(bs, ust_bs_fmt_backup_offset(bs->sb.bdev_size) / UST_BS_PAGE_SIZE, 1,
				  store_io_done, op);
		io_end(op);
		break;
	case ST_CLOSE:
		store_teardown(op);
		break;

	/* ---- superblock change (9.4): backup, flush, primary, flush ---- */
	case ST_SUPER_BACKUP:
		then_flush(op, ST_SUPER_PRIMARY);
		io_begin(op);
		write_super(op, true, false);
		io_end(op);
		break;
	case ST_SUPER_PRIMARY:
		then_flush(op, ST_SUPER_DONE);
		io_begin(op);
		write_super(op, false, false);
		io_end(op);
		break;
	case ST_SUPER_DONE:
		bs->ops--;
		op->counts_op = false;
		bs->sb_changing--;
		op_finish(op);
		break;
	}
}

/* ---- public calls ----------------------------------------------------------------- */

static struct ust_blob_store *store_new(const char *bdev_name, bool claim, int *rc)
{
	struct ust_blob_store *bs = calloc(1, sizeof(*bs));

	if (bs == NULL) {
		*rc = -ENOMEM;
		return NULL;
	}
	TAILQ_INIT(&bs->blobs);
	*rc = bs_dev_open(bs, bdev_name, claim);
	if (*rc != 0) {
		free(bs);
		return NULL;
	}
	ust_io_device_register(bs, bs_channel_create, bs_channel_destroy,
			       (uint32_t)bs_channel_ctx_size(), "blobstore");
	bs->io_device = true;
	return bs;
}

static uint64_t random_store_id(void)
{
	struct ust_uuid u;
	uint64_t id = 0;

	while (id == 0) {
		ust_uuid_generate(&u);
		memcpy(&id, u.u, sizeof(id));
	}
	return id;
}

static int fmt_prepare(struct ust_blob_store *bs, const struct ust_bs_opts *opts)
{
	struct ust_bs_fmt_opts f = {0};
	size_t len = strnlen(opts->bstype, sizeof(opts->bstype));
	int rc;

	if (len > UST_BS_BSTYPE_MAX) {
		UST_ERRLOG("blobstore: bstype longer than %d bytes\n", UST_BS_BSTYPE_MAX);
		return -EINVAL;
	}
	f.cluster_size = opts->cluster_size;
	f.io_unit_size = bs->blocklen;
	f.max_blobs = opts->max_blobs;
	f.pool_pages = opts->md_pages;
	rc = ust_bs_fmt_layout(ust_bdev_get_num_blocks(bs->bdev) * bs->blocklen, &f, &bs->sb);
	if (rc != 0) {
		UST_ERRLOG("blobstore: cannot lay out a store on %s (cluster size %u, max blobs %u): %s\n",
			   ust_bdev_get_name(bs->bdev), opts->cluster_size, opts->max_blobs,
			   strerror(-rc));
		return rc;
	}
	bs->sb.hdr.store_id = random_store_id();
	memcpy(bs->sb.bstype, opts->bstype, len);
	bs->sb.bstype[len] = '\0';
	store_geometry(bs);
	rc = bitmaps_alloc(bs);
	if (rc != 0) {
		return rc;
	}
	bitmaps_reset(bs);
	bs->free_clusters = count_free_clusters(bs);
	return 0;
}

static void start_open(const char *bdev_name, const struct ust_bs_opts *opts, bool format,
		       ust_bs_op_with_handle_cb cb, void *arg)
{
	struct ust_bs_opts defaults;
	struct ust_blob_store *bs;
	struct store_op *op;
	int rc;

	if (opts == NULL) {
		ust_bs_opts_init(&defaults);
		opts = &defaults;
	}
	if (bdev_name == NULL || cb == NULL || memchr(opts->bstype, 0, sizeof(opts->bstype)) == NULL) {
		if (cb != NULL) {
			cb(arg, NULL, -EINVAL);
		}
		return;
	}
	/* A format claims at once; a load once the superblock says it is ours. */
	bs = store_new(bdev_name, format, &rc);
	if (bs == NULL) {
		cb(arg, NULL, rc);
		return;
	}
	if (!format && ust_bdev_get_num_blocks(bs->bdev) * ust_bdev_get_block_size(bs->bdev) <
			       UST_BS_PAGE_SIZE) {
		/* Too small for a superblock: no store, as quietly as a foreign one (examine). */
		store_release(bs);
		cb(arg, NULL, -ENODATA);
		return;
	}
	op = op_new(bs, format ? ST_FMT_ZERO_SB : ST_READ_PRIMARY);
	if (op == NULL) {
		store_release(bs);
		cb(arg, NULL, -ENOMEM);
		return;
	}
	op->hcb = cb;
	op->arg = arg;
	op->opts = *opts;
	memcpy(op->bstype, opts->bstype, sizeof(op->bstype));
	if (format) {
		op->rc = fmt_prepare(bs, opts);
		if (op->rc != 0) {
			op_finish(op);
			return;
		}
	}
	store_step(op);
}

void ust_bs_init(const char *bdev_name, const struct ust_bs_opts *opts, ust_bs_op_with_handle_cb cb,
		 void *arg)
{
	start_open(bdev_name, opts, true, cb, arg);
}

void ust_bs_load(const char *bdev_name, const struct ust_bs_opts *opts, ust_bs_op_with_handle_cb cb,
		 void *arg)
{
	start_open(bdev_name, opts, false, cb, arg);
}

static int store_busy(struct ust_blob_store *bs)
{
	if (!bs_on_md_thread(bs)) {
		return -EXDEV;
	}
	if (!TAILQ_EMPTY(&bs->blobs)) {
		UST_ERRLOG("blobstore on %s: cannot unload with blobs open\n",
			   ust_bdev_get_name(bs->bdev));
		return -EBUSY;
	}
	if (bs->ops != 0 || __atomic_load_n(&bs->channels_held, __ATOMIC_RELAXED) != 0) {
		UST_ERRLOG("blobstore on %s: cannot unload with %u operations in flight and %u I/O channels held\n",
			   ust_bdev_get_name(bs->bdev), bs->ops,
			   __atomic_load_n(&bs->channels_held, __ATOMIC_RELAXED));
		return -EBUSY;
	}
	return 0;
}

static void start_close(struct ust_blob_store *bs, enum store_state first, ust_bs_op_cb cb, void *arg)
{
	struct store_op *op;
	int rc;

	rc = store_busy(bs);
	if (rc != 0) {
		cb(arg, rc);
		return;
	}
	op = op_new(bs, first);
	if (op == NULL) {
		cb(arg, -ENOMEM);
		return;
	}
	op->cb = cb;
	op->arg = arg;
	op->closing = true;
	op->destroying = first == ST_DESTROY_ERASE;
	store_step(op);
}

void ust_bs_unload(struct ust_blob_store *bs, ust_bs_op_cb cb, void *arg)
{
	start_close(bs, ST_UNLOAD_BITMAPS, cb, arg);
}

void ust_bs_destroy(struct ust_blob_store *bs, ust_bs_op_cb cb, void *arg)
{
	start_close(bs, ST_DESTROY_ERASE, cb, arg);
}

void ust_bs_set_super(struct ust_blob_store *bs, ust_blob_id id, ust_bs_op_cb cb, void *arg)
{
	struct store_op *op;

	if (cb == NULL) {
		cb = bs_noop_cb;
	}
	if (!bs_on_md_thread(bs)) {
		cb(arg, -EXDEV);
		return;
	}
	if (id != 0 && (ust_bs_blobid_incarnation(id) == 0 ||
			ust_bs_blobid_slot(id) >= bs->sb.max_blobs)) {
		cb(arg, -EINVAL);
		return;
	}
	if (bs->sb_changing != 0) {
		UST_ERRLOG("blobstore on %s: another superblock change (grow) is in flight\n",
			   ust_bdev_get_name(bs->bdev));
		cb(arg, -EBUSY);
		return;
	}
	op = op_new(bs, ST_SUPER_BACKUP);
	if (op == NULL) {
		cb(arg, -ENOMEM);
		return;
	}
	op->cb = cb;
	op->arg = arg;
	bs->ops++;
	bs->sb_changing++;
	op->counts_op = true;
	bs->sb.super_blob_id = id;
	bs->sb.hdr.generation++;
	store_step(op);
}

void bs_super_commit(struct ust_blob_store *bs, const struct ust_bs_super *next, bs_done_fn done,
		     void *arg)
{
	struct store_op *op = op_new(bs, ST_SUPER_BACKUP);

	if (op == NULL) {
		bs->sb_changing--;
		done(arg, -ENOMEM);
		return;
	}
	op->cb = done;
	op->arg = arg;
	op->use_next = true;
	op->next_sb = *next;
	bs->ops++;
	op->counts_op = true;
	store_step(op);
}

ust_blob_id ust_bs_get_super(const struct ust_blob_store *bs)
{
	return bs->sb.super_blob_id;
}

uint64_t ust_bs_get_cluster_size(const struct ust_blob_store *bs)
{
	return bs->cluster_size;
}

uint64_t ust_bs_get_io_unit_size(const struct ust_blob_store *bs)
{
	return bs->io_unit;
}

uint64_t ust_bs_get_free_cluster_count(const struct ust_blob_store *bs)
{
	return bs->free_clusters;
}

uint64_t ust_bs_get_total_data_cluster_count(const struct ust_blob_store *bs)
{
	return bs->sb.total_clusters - bs->sb.md_clusters;
}

const char *ust_bs_get_bstype(const struct ust_blob_store *bs)
{
	return bs->sb.bstype;
}

uint32_t ust_bs_get_max_blobs(const struct ust_blob_store *bs)
{
	return bs->sb.max_blobs;
}

uint32_t ust_bs_get_free_blob_count(const struct ust_blob_store *bs)
{
	uint32_t n = bs->sb.max_blobs, used = 0, i;

	for (i = 0; i < n / 8; i++) {
		used += (uint32_t)__builtin_popcount(bs->bbm[i]);
	}
	for (i = n / 8 * 8; i < n; i++) {
		used += bs_bit_get(bs->bbm, i);
	}
	return n - used;
}
