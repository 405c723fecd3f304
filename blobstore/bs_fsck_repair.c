/*
 * Blobstore fsck: the checks over all blobs once every slot was read, and
 * the repair. Pending multi-blob operations are resolved as a load would
 * (9.4); clusters and pool pages must have one owner; parents must exist;
 * on a clean store the persisted bitmaps are compared bit by bit with what
 * the metadata references (6), reported as runs.
 *
 * Guarantees of the repair (only with opts.repair): it rewrites the
 * superblocks and the three bitmaps, never a root, chain or extent page;
 * the bitmaps only when the store is clean, every slot was read completely
 * and nothing is shared, so a referenced cluster is never freed; it flushes
 * after each step and stops at the first failed write or flush.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"

#include "bs_fsck_internal.h"

/* ---- cross checks over all blobs ------------------------------------------------------------------- */

static struct fsck_blob *blob_by_id(struct fsck_op *op, uint64_t id)
{
	struct fsck_blob *b = fsck_blob_at_slot(op, ust_bs_blobid_slot(id));

	return b != NULL && b->id == id ? b : NULL;
}

static void resolve_pending(struct fsck_op *op)
{
	struct ust_bs_fsck_finding *f;
	struct fsck_blob *b, *other;
	size_t i;

	for (i = 0; i < op->nblobs; i++) {
		b = &op->blobs[i];
		if (b->state != BLOB_LIVE || !b->has_pending) {
			continue;
		}
		other = blob_by_id(op, b->pending.other_blob_id);
		if (b->pending.op == UST_BS_OP_SNAPSHOT_OF) {
			if (other != NULL && other->state == BLOB_LIVE && other->parent_id == b->id) {
				f = fsck_finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_PENDING_OP,
					    "snapshot 0x%" PRIx64 " of blob 0x%" PRIx64 " happened; its "
					    "last step (dropping the intent) is pending and the load "
					    "finishes it", b->id, other->id);
			} else if (other != NULL && other->state != BLOB_LIVE) {
				f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_PENDING_OP,
					    "snapshot 0x%" PRIx64 " of blob 0x%" PRIx64 " is pending and "
					    "cannot be resolved: that blob is damaged", b->id, other->id);
			} else {
				b->dropped = true;
				f = fsck_finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_PENDING_OP,
					    "snapshot 0x%" PRIx64 " of blob 0x%" PRIx64 " never "
					    "completed; the load deletes the snapshot and the blob keeps "
					    "its clusters", b->id, b->pending.other_blob_id);
			}
		} else {
			if (other != NULL && other->state == BLOB_LIVE) {
				other->dropped = true;
			}
			f = fsck_finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_PENDING_OP,
				    "blob 0x%" PRIx64 " took over snapshot 0x%" PRIx64 "; the load "
				    "finishes the merge (deletes the snapshot, drops the intent)", b->id,
				    b->pending.other_blob_id);
		}
		f->blob_id = b->id;
		f->slot = b->slot;
		if (op->sb.clean) {
			/* Clean shutdown finishes every pending operation first (9.2). */
			f->severity = UST_BS_FSCK_ERROR;
			fsck_set_unsafe(op, "a pending operation on a clean store");
		}
	}
}

static void claim_all(struct fsck_op *op)
{
	struct ust_bs_fsck_finding *f;
	struct fsck_blob *b, *o;
	uint32_t me, owner, rel;
	uint64_t k;
	size_t i;

	for (i = 0; i < op->nblobs; i++) {
		b = &op->blobs[i];
		if (b->state != BLOB_LIVE || b->dropped) {
			continue;
		}
		me = b->slot + 1;
		for (k = 0; k < b->nmap; k++) {
			uint32_t c = b->map[k].cluster;

			owner = op->cluster_owner[c];
			if (owner == 0) {
				op->cluster_owner[c] = me;
				continue;
			}
			if (owner == me) {
				f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_CLUSTER_SHARED,
					    "blob 0x%" PRIx64 ": cluster %u is mapped twice in the blob "
					    "(again at blob cluster %" PRIu64 ")", b->id, c,
					    b->map[k].index);
			} else {
				o = fsck_blob_at_slot(op, owner - 1);
				f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_CLUSTER_SHARED,
					    "cluster %u is owned by blob 0x%" PRIx64 " and by blob 0x%"
					    PRIx64 " (its cluster %" PRIu64 ")", c, o != NULL ? o->id : 0,
					    b->id, b->map[k].index);
			}
			f->blob_id = b->id;
			f->slot = b->slot;
			f->cluster = c;
			f->count = 1;
			fsck_set_unsafe(op, "cluster %u is referenced twice", c);
		}
		for (k = 0; k < b->npages; k++) {
			rel = b->pages[k] - op->sb.md_pool.start;
			owner = op->page_owner[rel];
			if (owner == 0) {
				op->page_owner[rel] = me;
				continue;
			}
			o = fsck_blob_at_slot(op, owner - 1);
			f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_PAGE_SHARED,
				    "metadata page %u is referenced by blob 0x%" PRIx64 " and by blob 0x%"
				    PRIx64, b->pages[k], o != NULL ? o->id : 0, b->id);
			f->blob_id = b->id;
			f->slot = b->slot;
			f->page = b->pages[k];
			f->count = 1;
			fsck_set_unsafe(op, "metadata page %u is referenced twice", b->pages[k]);
		}
	}
}

static void check_parents(struct fsck_op *op)
{
	struct ust_bs_fsck_finding *f;
	struct fsck_blob *b, *p;
	uint32_t steps;
	size_t i;

	for (i = 0; i < op->nblobs; i++) {
		b = &op->blobs[i];
		if (b->state != BLOB_LIVE || b->dropped || b->parent_id == 0) {
			continue;
		}
		p = blob_by_id(op, b->parent_id);
		f = NULL;
		if (p == NULL || p->dropped) {
			f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_PARENT,
				    "blob 0x%" PRIx64 ": its parent 0x%" PRIx64 " does not exist%s",
				    b->id, b->parent_id, p != NULL ? " after the pending operation "
				    "is resolved" : "");
		} else if (p->state != BLOB_LIVE) {
			f = fsck_finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_PARENT,
				    "blob 0x%" PRIx64 ": its parent 0x%" PRIx64 " is damaged; reads of "
				    "clusters it does not hold itself will fail", b->id, b->parent_id);
		} else if (!(p->flags & UST_BS_BLOB_READ_ONLY)) {
			f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_PARENT,
				    "blob 0x%" PRIx64 ": its parent 0x%" PRIx64 " is not read-only",
				    b->id, b->parent_id);
		} else {
			/* Walk up: a chain longer than the number of blobs is a cycle. */
			for (steps = 0; p != NULL && p->parent_id != 0 && steps <= op->nblobs; steps++) {
				if (p->parent_id == b->id) {
					break;
				}
				p = blob_by_id(op, p->parent_id);
			}
			if (p != NULL && p->parent_id != 0) {
				f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_PARENT,
					    "blob 0x%" PRIx64 ": its chain of parents is a cycle", b->id);
			}
		}
		if (f != NULL) {
			f->blob_id = b->id;
			f->slot = b->slot;
		}
	}
}

enum run_unit {
	RUN_CLUSTERS,
	RUN_PAGES,
	RUN_SLOTS,
};

struct run_spec {
	enum run_unit unit;
	uint64_t n;
	bool (*used)(struct fsck_op *op, uint64_t i);
	bool (*refd)(struct fsck_op *op, uint64_t i);
	bool (*soft)(struct fsck_op *op, uint64_t i);
	enum ust_bs_fsck_kind leak_kind;
	enum ust_bs_fsck_kind unmarked_kind;
	uint64_t *leaked;
};

static void run_finding(struct fsck_op *op, const struct run_spec *s, bool leak, uint64_t start,
			uint64_t end)
{
	static const char *const what[] = {"cluster", "metadata page", "blob slot"};
	struct ust_bs_fsck_finding *f;
	uint64_t base = s->unit == RUN_PAGES ? op->sb.md_pool.start : 0;
	char range[64];

	if (end - start == 1) {
		snprintf(range, sizeof(range), "%s %" PRIu64, what[s->unit], base + start);
	} else {
		snprintf(range, sizeof(range), "%ss %" PRIu64 "-%" PRIu64, what[s->unit], base + start,
			 base + end - 1);
	}
	if (leak && op->owners_unknown) {
		f = fsck_finding(op, UST_BS_FSCK_WARNING, s->leak_kind,
			    "%s marked used but referenced by no readable blob: leaked, unless a "
			    "damaged blob owns %s", range, end - start == 1 ? "it" : "them");
		*s->leaked += end - start;
	} else if (leak) {
		f = fsck_finding(op, UST_BS_FSCK_ERROR, s->leak_kind,
			    "%s marked used but referenced by no blob (leaked)", range);
		*s->leaked += end - start;
	} else {
		f = fsck_finding(op, UST_BS_FSCK_ERROR, s->unmarked_kind,
			    "%s referenced but marked free: the store would hand %s out again", range,
			    end - start == 1 ? "it" : "them");
	}
	f->count = end - start;
	if (s->unit == RUN_CLUSTERS) {
		f->cluster = start;
	} else if (s->unit == RUN_PAGES) {
		f->page = base + start;
	} else {
		f->slot = (uint32_t)start;
	}
}

/* One finding per run of entries where the bitmap and the metadata disagree. */
static void report_runs(struct fsck_op *op, const struct run_spec *s)
{
	uint64_t i, start = 0;
	int cur, prev = 0;

	for (i = 0; i <= s->n; i++) {
		cur = 0;
		if (i < s->n) {
			bool u = s->used(op, i), r = s->refd(op, i);

			if (u && !r && !s->soft(op, i)) {
				cur = 1;
			} else if (!u && r) {
				cur = 2;
			}
		}
		if (cur == prev) {
			continue;
		}
		if (prev != 0) {
			run_finding(op, s, prev == 1, start, i);
		}
		start = i;
		prev = cur;
	}
}

static bool cl_used(struct fsck_op *op, uint64_t i)
{
	return bit_get(op->cbm, i);
}

static bool cl_refd(struct fsck_op *op, uint64_t i)
{
	return i < op->sb.md_clusters || op->cluster_owner[i] != 0;
}

static bool cl_soft(struct fsck_op *op, uint64_t i)
{
	return bit_get(op->soft_clusters, i);
}

static bool pg_used(struct fsck_op *op, uint64_t i)
{
	return bit_get(op->pbm, i);
}

static bool pg_refd(struct fsck_op *op, uint64_t i)
{
	return op->page_owner[i] != 0;
}

static bool pg_soft(struct fsck_op *op, uint64_t i)
{
	return bit_get(op->soft_pages, i);
}

static bool sl_used(struct fsck_op *op, uint64_t i)
{
	return bit_get(op->bbm, i);
}

static bool sl_refd(struct fsck_op *op, uint64_t i)
{
	struct fsck_blob *b = fsck_blob_at_slot(op, (uint32_t)i);

	return b != NULL && b->state == BLOB_LIVE && !b->dropped;
}

static bool sl_soft(struct fsck_op *op, uint64_t i)
{
	struct fsck_blob *b = fsck_blob_at_slot(op, (uint32_t)i);

	/* Damaged slots stay marked (9.5); dropped ones are freed by the load. */
	return b != NULL && (b->state != BLOB_LIVE || b->dropped);
}

static void compare_bitmaps(struct fsck_op *op)
{
	uint64_t leaked_slots = 0;
	const struct run_spec specs[3] = {
		{RUN_CLUSTERS, op->sb.total_clusters, cl_used, cl_refd, cl_soft,
		 UST_BS_FSCK_CLUSTER_LEAKED, UST_BS_FSCK_CLUSTER_UNMARKED, &op->rep->leaked_clusters},
		{RUN_PAGES, op->sb.md_pool.pages, pg_used, pg_refd, pg_soft, UST_BS_FSCK_PAGE_LEAKED,
		 UST_BS_FSCK_PAGE_UNMARKED, &op->rep->leaked_pages},
		{RUN_SLOTS, op->sb.max_blobs, sl_used, sl_refd, sl_soft, UST_BS_FSCK_SLOT_LEAKED,
		 UST_BS_FSCK_SLOT_UNMARKED, &leaked_slots},
	};
	int i;

	for (i = 0; i < 3; i++) {
		report_runs(op, &specs[i]);
	}
}

void fsck_cross_checks(struct fsck_op *op)
{
	struct ust_bs_fsck_report *rep = op->rep;
	uint64_t i;
	size_t k;

	resolve_pending(op);
	claim_all(op);
	check_parents(op);
	for (k = 0; k < op->nblobs; k++) {
		if (op->blobs[k].state == BLOB_LIVE && !op->blobs[k].dropped) {
			rep->live_blobs++;
		} else if (op->blobs[k].state == BLOB_DAMAGED) {
			rep->damaged_blobs++;
		}
	}
	for (i = 0; i < op->sb.total_clusters; i++) {
		rep->referenced_clusters += op->cluster_owner[i] != 0;
	}
	for (i = 0; i < op->sb.md_pool.pages; i++) {
		rep->referenced_pages += op->page_owner[i] != 0;
	}
	if (op->sb.clean && op->bitmaps_ok) {
		compare_bitmaps(op);
	}
}

/* ---- repair ------------------------------------------------------------------------------------------ */

static bool is_bitmap_kind(enum ust_bs_fsck_kind kind)
{
	switch (kind) {
	case UST_BS_FSCK_BITMAP_CHECKSUM:
	case UST_BS_FSCK_BITMAP_RANGE:
	case UST_BS_FSCK_CLUSTER_LEAKED:
	case UST_BS_FSCK_PAGE_LEAKED:
	case UST_BS_FSCK_SLOT_LEAKED:
	case UST_BS_FSCK_CLUSTER_UNMARKED:
	case UST_BS_FSCK_PAGE_UNMARKED:
	case UST_BS_FSCK_SLOT_UNMARKED:
		return true;
	default:
		return false;
	}
}

static bool bitmap_findings(const struct fsck_op *op)
{
	size_t i;

	for (i = 0; i < op->rep->count; i++) {
		if (is_bitmap_kind(op->rep->findings[i].kind)) {
			return true;
		}
	}
	return false;
}

/* The bitmaps as the metadata says they are (format 6), in their regions' layout. */
static int build_bitmaps(struct fsck_op *op)
{
	const struct ust_bs_super *sb = &op->sb;
	uint64_t cb = bm_bytes(&sb->cluster_bitmap), pb = bm_bytes(&sb->page_bitmap);
	uint64_t bb = bm_bytes(&sb->blobid_bitmap), i;
	uint8_t *c, *p, *s;
	size_t k;

	op->newbm = fsck_page_alloc((cb + pb + bb) / UST_BS_PAGE_SIZE);
	if (op->newbm == NULL) {
		return -ENOMEM;
	}
	c = op->newbm;
	p = c + cb;
	s = p + pb;
	for (i = 0; i < sb->total_clusters; i++) {
		if (i < sb->md_clusters || op->cluster_owner[i] != 0) {
			bit_set(c, i);
		}
	}
	for (i = 0; i < sb->md_pool.pages; i++) {
		if (op->page_owner[i] != 0) {
			bit_set(p, i);
		}
	}
	for (k = 0; k < op->nblobs; k++) {
		if (op->blobs[k].state == BLOB_LIVE && !op->blobs[k].dropped) {
			bit_set(s, op->blobs[k].slot);
		}
	}
	return 0;
}

static void write_super(struct fsck_op *op, const struct ust_bs_super *src, bool backup, bool clean,
			uint8_t *page)
{
	struct ust_bs_super sb = *src;

	sb.hdr.seq = backup ? UST_BS_SUPER_BACKUP : UST_BS_SUPER_PRIMARY;
	sb.clean = clean;
	if (!clean) {
		sb.cluster_bitmap_csum = 0;
		sb.page_bitmap_csum = 0;
		sb.blobid_bitmap_csum = 0;
	}
	ust_bs_fmt_super_encode(&sb, page);
	fsck_io_add(op, DEV_WRITE, backup ? ust_bs_fmt_backup_offset(sb.bdev_size) : 0, UST_BS_PAGE_SIZE,
	       page, NULL);
}

void fsck_repair_note(struct fsck_op *op, const char *fmt, ...)
{
	struct ust_bs_fsck_finding *f;
	va_list ap;

	f = fsck_finding(op, UST_BS_FSCK_INFO, UST_BS_FSCK_REPAIR, "%s", "");
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
	va_end(ap);
}

/* Writes were issued; FS_FLUSH makes them durable, FS_FLUSHED records them, then `next`. */
static int repair_wait(struct fsck_op *op, enum repair_step step, enum fsck_state next)
{
	op->writing = step;
	op->after_flush = next;
	op->state = FS_FLUSH;
	return fsck_io_end(op);
}

/* FS_FLUSHED: what the writes now durable repaired. */
void fsck_repair_durable(struct fsck_op *op)
{
	size_t i;

	op->rep->repairs++;
	switch (op->writing) {
	case REPAIR_PRIMARY:
		fsck_mark_repaired(op, UST_BS_FSCK_SUPER_PRIMARY);
		fsck_repair_note(op, "rewrote the primary superblock from the backup (generation %" PRIu64
			    ", not clean: the next load rebuilds the bitmaps)", op->sb.hdr.generation);
		break;
	case REPAIR_BACKUP:
		fsck_mark_repaired(op, UST_BS_FSCK_SUPER_BACKUP);
		fsck_mark_repaired(op, UST_BS_FSCK_SUPER_MISMATCH);
		fsck_repair_note(op, "rewrote the backup superblock at offset 0x%" PRIx64 " from the primary "
			    "(generation %" PRIu64 ")", ust_bs_fmt_backup_offset(op->sb.bdev_size),
			    op->sb.hdr.generation);
		break;
	case REPAIR_BITMAPS:
		op->rep->repairs--; /* counted with the primary that vouches for them */
		break;
	case REPAIR_BITMAP_SUPER:
		for (i = 0; i < op->rep->count; i++) {
			if (is_bitmap_kind(op->rep->findings[i].kind)) {
				op->rep->findings[i].repaired = true;
			}
		}
		fsck_repair_note(op, "rewrote the three bitmaps from the metadata (%" PRIu64 " leaked "
			    "clusters and %" PRIu64 " leaked pages freed; every referenced cluster, "
			    "page and slot kept) and the primary superblock with their checksums",
			    op->rep->leaked_clusters, op->rep->leaked_pages);
		break;
	}
}

/* FS_REPAIR_SUPER: superblocks first. Returns 1 when I/O was issued. */
int fsck_repair_super(struct fsck_op *op)
{
	op->state = FS_REPAIR_BITMAPS;
	if (!op->opts.repair || !op->have_sb) {
		return 0;
	}
	if (op->fix_primary) {
		/* From the backup: not clean, so the next load rebuilds the bitmaps. */
		op->fix_primary = false;
		fsck_io_begin(op);
		write_super(op, &op->sb, false, false, op->page0);
		return repair_wait(op, REPAIR_PRIMARY, FS_REPAIR_SUPER);
	}
	if (op->fix_backup) {
		op->fix_backup = false;
		fsck_io_begin(op);
		write_super(op, &op->sb, true, false, op->page1);
		return repair_wait(op, REPAIR_BACKUP, FS_REPAIR_BITMAPS);
	}
	return 0;
}

/* FS_REPAIR_BITMAPS: write the bitmaps rebuilt from the metadata. */
int fsck_repair_bitmaps(struct fsck_op *op)
{
	const struct ust_bs_super *sb = &op->sb;
	uint64_t cb = bm_bytes(&sb->cluster_bitmap), pb = bm_bytes(&sb->page_bitmap);
	uint64_t bb = bm_bytes(&sb->blobid_bitmap);

	op->state = FS_DONE;
	if (!op->opts.repair || !op->have_sb || !sb->clean || !bitmap_findings(op)) {
		return 0;
	}
	if (op->unsafe) {
		fsck_repair_note(op, "bitmaps not rewritten: %s; leaked space can only be freed when every "
			    "blob was read completely and nothing is shared", op->unsafe_why);
		return 0;
	}
	if (build_bitmaps(op) != 0) {
		op->rc = -ENOMEM;
		return 0;
	}
	fsck_io_begin(op);
	fsck_io_add(op, DEV_WRITE, (uint64_t)sb->cluster_bitmap.start * UST_BS_PAGE_SIZE, cb, op->newbm,
	       NULL);
	fsck_io_add(op, DEV_WRITE, (uint64_t)sb->page_bitmap.start * UST_BS_PAGE_SIZE, pb, op->newbm + cb,
	       NULL);
	fsck_io_add(op, DEV_WRITE, (uint64_t)sb->blobid_bitmap.start * UST_BS_PAGE_SIZE, bb,
	       op->newbm + cb + pb, NULL);
	return repair_wait(op, REPAIR_BITMAPS, FS_REPAIR_PRIMARY);
}

/*
 * FS_REPAIR_PRIMARY: the bitmaps are durable; make the primary vouch for
 * them (clean = 1 and their checksums; the generation stays, 5). A crash
 * before this leaves checksums that do not match: a dirty load, still safe.
 */
int fsck_repair_primary(struct fsck_op *op)
{
	struct ust_bs_super sb = op->sb;
	uint64_t cb = bm_bytes(&sb.cluster_bitmap), pb = bm_bytes(&sb.page_bitmap);
	uint64_t bb = bm_bytes(&sb.blobid_bitmap);

	sb.cluster_bitmap_csum = ust_bs_fmt_region_checksum(op->newbm, cb);
	sb.page_bitmap_csum = ust_bs_fmt_region_checksum(op->newbm + cb, pb);
	sb.blobid_bitmap_csum = ust_bs_fmt_region_checksum(op->newbm + cb + pb, bb);
	fsck_io_begin(op);
	write_super(op, &sb, false, true, op->page0);
	return repair_wait(op, REPAIR_BITMAP_SUPER, FS_DONE);
}
