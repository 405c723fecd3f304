/*
 * Growing a store into a bdev that has grown (docs/blobstore-format.md 3,
 * 5.1, 9.4 "grow").
 *
 * The layout leaves room for it: the used-cluster bitmap region holds
 * cluster_bitmap.pages x 32768 bits, fixed at format, and only the first
 * total_clusters are in use; the data clusters are the last region, so more
 * of them need no other region to move. A grow is therefore a superblock
 * change only: new bdev_size and total_clusters, generation + 1.
 *
 * Guarantees (crash atomicity): the new backup superblock is written at the
 * new end of the bdev and flushed before the primary; the primary is then
 * written and flushed; only after that are the new clusters given to the
 * allocator and the geometry the validators use (bs->geom) replaced. A
 * crash before the primary is durable leaves the old primary, which names
 * the old backup (still intact at the old end) and the old size; after it,
 * the new ones. The on-disk bitmaps need no write: the store is open, so
 * the primary says clean = 0 and they are rebuilt or rewritten whole at
 * unload (6, 9.2); the bits past the old end are already 0 in memory.
 * Superblock changes are serialised (bs->sb_changing): a grow and a
 * ust_bs_set_super() never overlap.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"

#include "blobstore_internal.h"

struct grow_op {
	struct ust_blob_store *bs;
	struct ust_bs_super next;
	ust_bs_op_cb cb;
	void *arg;
};

uint64_t ust_bs_get_max_cluster_count(const struct ust_blob_store *bs)
{
	uint64_t n = (uint64_t)bs->sb.cluster_bitmap.pages * UST_BS_BITS_PER_PAGE;

	return n < UST_BS_MAX_CLUSTERS ? n : UST_BS_MAX_CLUSTERS;
}

/* The new superblock is durable: hand the new clusters out. */
static void grow_adopt(struct ust_blob_store *bs, const struct ust_bs_super *next)
{
	uint64_t added = next->total_clusters - bs->sb.total_clusters;

	bs->sb.bdev_size = next->bdev_size;
	bs->sb.total_clusters = next->total_clusters;
	bs->sb.hdr.generation = next->hdr.generation;
	ust_bs_fmt_geom_from_super(&bs->sb, &bs->geom);
	bs->free_clusters += added;
}

static void grow_done(void *arg, int rc)
{
	struct grow_op *g = arg;
	struct ust_blob_store *bs = g->bs;
	const char *name = ust_bdev_get_name(bs->bdev);

	if (rc == 0) {
		UST_NOTICELOG("blobstore on %s grew from %llu to %llu clusters\n", name,
			      (unsigned long long)bs->sb.total_clusters,
			      (unsigned long long)g->next.total_clusters);
		grow_adopt(bs, &g->next);
	} else {
		/*
		 * The primary may or may not carry the new size; either is a
		 * valid store. Later superblock changes must still go above the
		 * generation that may be on disk.
		 */
		UST_ERRLOG("blobstore on %s: grow failed: %s; the store keeps %llu clusters\n", name,
			   strerror(-rc), (unsigned long long)bs->sb.total_clusters);
		bs->sb.hdr.generation = g->next.hdr.generation;
	}
	g->cb(g->arg, rc);
	free(g);
}

/* The superblock for the bdev's current size; 1 when there is nothing to do. */
static int grow_plan(struct ust_blob_store *bs, struct ust_bs_super *next)
{
	const char *name = ust_bdev_get_name(bs->bdev);
	uint64_t size = ust_bdev_get_num_blocks(bs->bdev) * bs->blocklen;
	uint64_t total;
	struct ust_bs_fmt_err err;
	uint8_t *page;
	int rc;

	if (size < bs->sb.bdev_size) {
		UST_ERRLOG("blobstore on %s: the bdev shrank to %llu bytes below the store's %llu\n",
			   name, (unsigned long long)size, (unsigned long long)bs->sb.bdev_size);
		return -EINVAL;
	}
	total = ust_bs_fmt_backup_offset(size) / bs->sb.cluster_size;
	if (total <= bs->sb.total_clusters) {
		return 1; /* not grown by a whole cluster: the backup stays where it is */
	}
	if (total > ust_bs_get_max_cluster_count(bs)) {
		UST_ERRLOG("blobstore on %s: %llu clusters exceed the %llu its cluster bitmap can hold "
			   "(fixed at format)\n", name, (unsigned long long)total,
			   (unsigned long long)ust_bs_get_max_cluster_count(bs));
		return -EFBIG;
	}
	*next = bs->sb;
	next->bdev_size = size;
	next->total_clusters = total;
	next->hdr.generation = bs->sb.hdr.generation + 1;
	next->clean = false;
	/* The codec checks every layout rule (format 3): refuse what a load would. */
	page = bs_dma_page_alloc(1);
	if (page == NULL) {
		return -ENOMEM;
	}
	ust_bs_fmt_super_encode(next, page);
	{
		struct ust_bs_super check;

		rc = ust_bs_fmt_super_decode(page, &check, &err);
	}
	bs_dma_free(page);
	if (rc != 0) {
		UST_ERRLOG("blobstore on %s: the grown superblock would be invalid: %s\n", name,
			   err.msg);
		return -EINVAL;
	}
	return 0;
}

void ust_bs_grow(struct ust_blob_store *bs, ust_bs_op_cb cb, void *arg)
{
	struct grow_op *g;
	int rc;

	if (bs_md_call_check(bs, &cb, arg) != 0) {
		return;
	}
	if (bs->read_only) {
		cb(arg, -EROFS);
		return;
	}
	if (bs->sb_changing != 0) {
		cb(arg, -EBUSY);
		return;
	}
	g = calloc(1, sizeof(*g));
	if (g == NULL) {
		cb(arg, -ENOMEM);
		return;
	}
	rc = grow_plan(bs, &g->next);
	if (rc != 0) {
		free(g);
		cb(arg, rc > 0 ? 0 : rc);
		return;
	}
	g->bs = bs;
	g->cb = cb;
	g->arg = arg;
	bs->sb_changing++;
	bs_super_commit(bs, &g->next, grow_done, g);
}
