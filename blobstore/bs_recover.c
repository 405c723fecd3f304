/*
 * Dirty load: rebuild the allocation bitmaps from the blob metadata, which is
 * the only truth (docs/blobstore-format.md 9.3).
 *
 * Guarantees: every root slot is read; each slot's current version is the
 * newest valid root whose tree is complete; a slot with no such version is
 * free when that is what an interrupted create leaves, and damaged otherwise;
 * the used-cluster, used-page and used-blobid bitmaps are exactly what the
 * live, damaged and unsupported blobs reference, so whatever an unfinished
 * operation allocated is free again; a cluster or page claimed twice makes
 * both claimants damaged; afterwards every half that is not current and not
 * a valid older version is zeroed and flushed, so that on later loads an
 * invalid half means damage (9.2). A blob whose current root carries a
 * PENDING_OP (a snapshot or a merge cut short, 9.4) claims nothing until
 * every slot has been read; then the document's fixed rule decides from the
 * other blob's current root, and the roots the rule calls for (the intent
 * dropped, or a tombstone) are written after the repair, each behind its own
 * flush. Also fills the store's snapshot tree (bs->rel); bs_scan_relations
 * does that alone on a clean load.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"

#include "blobstore_internal.h"

#define CHUNK_SLOTS 128u
/* Repair writes (zeroed halves, resolved roots) in flight at a time. */
#define REPAIR_WINDOW 16u

/*
 * After a load: does every live parent carry READ_ONLY, as the format
 * requires (8.1)? ro has a bit per slot whose current root is READ_ONLY.
 * Deletes rely on the rule to skip the scan for clones of a writable blob
 * (bs_blob.c); a store that breaks it gets the scan on every delete.
 */
static void check_parents(struct ust_blob_store *bs, const uint8_t *ro)
{
	uint32_t s, p;

	bs->parents_unchecked = false;
	for (s = 0; s < bs->sb.max_blobs; s++) {
		ust_blob_id parent = bs->rel[s].parent;

		if (bs->rel[s].id == 0 || parent == 0) {
			continue;
		}
		p = ust_bs_blobid_slot(parent);
		if (p < bs->sb.max_blobs && bs->rel[p].id == parent && !bs_bit_get(ro, p)) {
			UST_WARNLOG("blobstore: blob 0x%llx is the parent of 0x%llx but not read-only\n",
				    (unsigned long long)parent, (unsigned long long)bs->rel[s].id);
			bs->parents_unchecked = true;
			return;
		}
	}
}

static uint8_t *slot_bits_alloc(const struct ust_blob_store *bs)
{
	return calloc(((size_t)bs->sb.max_blobs + 7) / 8, 1);
}

enum rec_state {
	REC_READ_CHUNK,
	REC_SLOT,
	REC_TREE_DONE,
	REC_RESOLVE,
	REC_REPAIR,
	REC_DONE,
	REC_WRITE,
	REC_FINISH,
};

/* What the scan concluded about a slot: pending-op resolution reads it. */
enum rec_slot_state {
	RS_FREE,
	RS_LIVE,
	RS_PENDING,
	RS_DAMAGED,
};

struct rec_slot {
	uint8_t state;
	int8_t half;     /* the current version's half */
	ust_blob_id id;
	ust_blob_id parent;
	uint64_t maxgen; /* newest generation in either valid half */
};

struct rec_op {
	enum rec_state state;
	struct ust_blob_store *bs;
	uint8_t *buf;        /* CHUNK_SLOTS slots, two pages each */
	uint32_t base;       /* first slot in buf */
	uint32_t count;      /* slots in buf */
	uint32_t slot;       /* slot being resolved */
	int drc[2];
	struct ust_bs_root r[2];
	struct ust_bs_fmt_err err[2];
	int tried[2];        /* halves whose trees were found incomplete */
	int cand;            /* half whose tree is being read */
	int verdict;
	struct bs_tree tree;
	char msg[200];
	uint32_t *cluster_owner; /* slot + 1 per cluster; 0 = unclaimed */
	uint32_t *page_owner;    /* slot + 1 per pool page */
	uint64_t *zero;          /* root pages to zero in the repair, ascending */
	uint64_t nzero;
	uint64_t zero_cap;
	uint64_t *run_len;       /* the repair: zero[i] starts a run of run_len[i] pages */
	uint64_t nruns;
	bool zeroed;             /* the zeroing is issued (its flush next) */
	/* A window of repair writes: batch_issue(op, i) for i < batch_total. */
	void (*batch_issue)(struct rec_op *op, uint64_t i);
	uint64_t batch_next;
	uint64_t batch_total;
	uint32_t batch_inflight;
	bool batch_pumping;
	bool batch_repump;
	uint32_t live;
	uint32_t ndamaged;
	struct rec_slot *slots;   /* max_blobs */
	uint8_t *ro;              /* a bit per slot whose current root is READ_ONLY */
	struct ust_blob **pend;   /* blobs whose current root has a PENDING_OP */
	uint32_t npend;
	uint32_t pend_cap;
	struct ust_blob **writes; /* roots the resolution writes (9.3 step 6) */
	bool *tomb;               /* writes[i] is a tombstone */
	uint32_t nwrites;
	int rc;
	uint32_t pending;
	bs_done_fn done;
	void *arg;
};

static void rec_step(struct rec_op *op);
static void rec_tree_read_done(void *arg, int verdict);

static void rec_io_done(void *arg, int rc)
{
	struct rec_op *op = arg;

	if (rc != 0 && op->rc == 0) {
		op->rc = rc;
	}
	if (--op->pending == 0) {
		rec_step(op);
	}
}

/*
 * Repairs go out REPAIR_WINDOW at a time, however many slots need one (a
 * crash during a storm of creates can leave thousands of torn halves), so
 * neither the bdev's request pool nor the message ring is flooded. When the
 * last one completed, the step machine goes on (op->rc holds any error).
 */
static void batch_pump(struct rec_op *op)
{
	if (op->batch_pumping) {
		/* A write that completed inline: the loop below goes on. */
		op->batch_repump = true;
		return;
	}
	op->batch_pumping = true;
	do {
		op->batch_repump = false;
		while (op->rc == 0 && op->batch_inflight < REPAIR_WINDOW &&
		       op->batch_next < op->batch_total) {
			op->batch_inflight++;
			op->batch_issue(op, op->batch_next++);
		}
	} while (op->batch_repump);
	op->batch_pumping = false;
	if (op->batch_inflight == 0) {
		op->batch_total = 0;
		rec_step(op);
	}
}

static void batch_io_done(void *arg, int rc)
{
	struct rec_op *op = arg;

	if (rc != 0 && op->rc == 0) {
		op->rc = rc;
	}
	op->batch_inflight--;
	batch_pump(op);
}

static void batch_start(struct rec_op *op, void (*issue)(struct rec_op *op, uint64_t i),
			uint64_t total)
{
	op->batch_issue = issue;
	op->batch_next = 0;
	op->batch_total = total;
	op->batch_inflight = 0;
	batch_pump(op);
}

static void issue_zero(struct rec_op *op, uint64_t i)
{
	bs_dev_zero_pages(op->bs, op->zero[i], op->run_len[i], batch_io_done, op);
}

static void issue_write(struct rec_op *op, uint64_t i)
{
	if (op->tomb[i]) {
		bs_blob_write_tombstone(op->writes[i], batch_io_done, op);
	} else {
		bs_blob_sync(op->writes[i], batch_io_done, op);
	}
}

/* Merge adjacent pages of op->zero (collected in slot order) into runs. */
static int zero_runs(struct rec_op *op)
{
	uint64_t i, n = 0;

	op->run_len = calloc(op->nzero, sizeof(*op->run_len));
	if (op->run_len == NULL) {
		return -ENOMEM;
	}
	for (i = 0; i < op->nzero; i++) {
		if (n > 0 && op->zero[n - 1] + op->run_len[n - 1] == op->zero[i]) {
			op->run_len[n - 1]++;
			continue;
		}
		op->zero[n] = op->zero[i];
		op->run_len[n] = 1;
		n++;
	}
	op->nruns = n;
	return 0;
}

static int want_zero(struct rec_op *op, uint64_t page)
{
	uint64_t *grown;

	if (op->nzero == op->zero_cap) {
		op->zero_cap = op->zero_cap ? op->zero_cap * 2 : 64;
		grown = realloc(op->zero, op->zero_cap * sizeof(*grown));
		if (grown == NULL) {
			return -ENOMEM;
		}
		op->zero = grown;
	}
	op->zero[op->nzero++] = page;
	return 0;
}

static const uint8_t *half_page(const struct rec_op *op, int h)
{
	return op->buf + ((size_t)(op->slot - op->base) * 2 + (size_t)h) * UST_BS_PAGE_SIZE;
}

static void mark_damaged(struct rec_op *op, uint32_t slot, ust_blob_id id, int error,
			 const char *msg)
{
	struct ust_blob_store *bs = op->bs;

	if (!bs_is_damaged(bs, slot)) {
		op->ndamaged++;
	}
	bs_report_damage(bs, slot, id, error, "%s", msg);
	bs_bit_set(bs->bbm, slot);
	op->slots[slot].state = RS_DAMAGED;
	if (id != 0) {
		op->slots[slot].id = id;
	}
}

/* A damaged or unsupported blob keeps what its readable roots reference (9.5). */
static void claim_from_roots(struct rec_op *op)
{
	struct ust_blob_store *bs = op->bs;
	struct ust_bs_desc d;
	uint32_t cursor, i, k;
	int h;

	for (h = 0; h < 2; h++) {
		if (op->drc[h] != 0 || (op->r[h].flags & UST_BS_BLOB_TOMBSTONE)) {
			continue;
		}
		cursor = 0;
		while (ust_bs_fmt_desc_next(half_page(op, h), &cursor, &d) == 1) {
			for (i = 0; i < ust_bs_fmt_desc_count(&d); i++) {
				if (d.type == UST_BS_DESC_EXTENT_RLE) {
					struct ust_bs_extent_run run;

					ust_bs_fmt_desc_run(&d, i, &run);
					for (k = 0; run.cluster != 0 && k < run.count; k++) {
						bs_cluster_claim(bs, run.cluster + k);
					}
				} else {
					struct ust_bs_page_ref ref;

					ust_bs_fmt_desc_page_ref(&d, i, &ref);
					if (ref.page != 0) {
						bs_page_claim(bs, ref.page);
					}
				}
			}
		}
	}
}

/* Claim a live blob's clusters and pages; a double claim damages both owners. */
static void claim_blob(struct rec_op *op, const struct ust_blob *blob)
{
	struct ust_blob_store *bs = op->bs;
	uint32_t owner, me = op->slot + 1;
	uint64_t i;
	char msg[120];

	for (i = 0; i < blob->map->len; i++) {
		uint32_t c = blob->map->c[i];

		if (c == 0) {
			continue;
		}
		owner = op->cluster_owner[c];
		if (owner != 0) {
			snprintf(msg, sizeof(msg), "cluster %u is also claimed by slot %u", c, owner - 1);
			mark_damaged(op, op->slot, blob->id, -EUCLEAN, msg);
			snprintf(msg, sizeof(msg), "cluster %u is also claimed by slot %u", c, op->slot);
			mark_damaged(op, owner - 1, 0, -EUCLEAN, msg);
			continue;
		}
		op->cluster_owner[c] = me;
		bs_cluster_claim(bs, c);
	}
	for (i = 0; i < blob->md_npages; i++) {
		uint32_t rel = blob->md_pages[i] - bs->sb.md_pool.start;

		owner = op->page_owner[rel];
		if (owner != 0) {
			snprintf(msg, sizeof(msg), "page %u is also claimed by slot %u", blob->md_pages[i],
				 owner - 1);
			mark_damaged(op, op->slot, blob->id, -EUCLEAN, msg);
			snprintf(msg, sizeof(msg), "page %u is also claimed by slot %u", blob->md_pages[i],
				 op->slot);
			mark_damaged(op, owner - 1, 0, -EUCLEAN, msg);
			continue;
		}
		op->page_owner[rel] = me;
		bs_page_claim(bs, blob->md_pages[i]);
	}
}

static int defer_pending(struct rec_op *op, struct ust_blob *blob)
{
	struct ust_blob **grown;

	if (op->npend == op->pend_cap) {
		op->pend_cap = op->pend_cap ? op->pend_cap * 2 : 8;
		grown = realloc(op->pend, op->pend_cap * sizeof(*grown));
		if (grown == NULL) {
			return -ENOMEM;
		}
		op->pend = grown;
	}
	op->pend[op->npend++] = blob;
	return 0;
}

/* The blob is live: it holds its slot and claims what it references. */
static void adopt(struct rec_op *op, const struct ust_blob *blob)
{
	struct rec_slot *rs = &op->slots[blob->slot];

	op->slot = blob->slot; /* claim_blob's owner */
	bs_bit_set(op->bs->bbm, blob->slot);
	op->live++;
	rs->state = RS_LIVE;
	op->bs->rel[blob->slot].id = blob->id;
	op->bs->rel[blob->slot].parent = blob->parent_id;
	claim_blob(op, blob);
}

/* The chosen version is complete: assemble it and take what it references. */
static void slot_live(struct rec_op *op)
{
	const struct ust_bs_root *r = &op->r[op->cand];
	struct ust_blob *blob = bs_blob_alloc(op->bs, r->hdr.blob_id);
	struct rec_slot *rs = &op->slots[op->slot];
	int rc, h;

	if (blob == NULL) {
		op->rc = -ENOMEM;
		return;
	}
	rc = bs_blob_from_tree(blob, &op->tree, op->msg, sizeof(op->msg));
	if (rc == -ENOMEM) {
		op->rc = rc;
	} else if (rc != 0) {
		mark_damaged(op, op->slot, r->hdr.blob_id, rc, op->msg);
		claim_from_roots(op);
	} else {
		/* A newer half that never committed is garbage: clear it (9.3 step 6). */
		if (op->drc[1 - op->cand] != 0 && op->drc[1 - op->cand] != -ENODATA) {
			op->rc = want_zero(op, bs_root_page(op->bs, op->slot, 1 - op->cand));
		} else if (op->drc[1 - op->cand] == 0 &&
			   op->r[1 - op->cand].hdr.generation > r->hdr.generation) {
			op->rc = want_zero(op, bs_root_page(op->bs, op->slot, 1 - op->cand));
		}
		rs->half = (int8_t)op->cand;
		rs->id = blob->id;
		if (blob->flags & UST_BS_BLOB_READ_ONLY) {
			bs_bit_set(op->ro, op->slot);
		}
		rs->parent = blob->parent_id;
		for (h = 0; h < 2; h++) {
			if (op->drc[h] == 0 && op->r[h].hdr.generation > rs->maxgen) {
				rs->maxgen = op->r[h].hdr.generation;
			}
		}
		if (blob->has_pending) {
			/* Decided once every slot is known (9.4); claims nothing yet,
			 * since it may share clusters with the other blob. */
			rs->state = RS_PENDING;
			rc = defer_pending(op, blob);
			if (rc == 0) {
				return;
			}
			op->rc = rc;
		} else {
			adopt(op, blob);
		}
	}
	bs_blob_free(blob);
}

/* No version of the slot is current. Free if an interrupted create explains it. */
static void slot_without_version(struct rec_op *op)
{
	bool blank0 = op->drc[0] == -ENODATA, blank1 = op->drc[1] == -ENODATA;
	int h;

	if (op->verdict == BS_TREE_IOERR || (!blank0 && !blank1)) {
		snprintf(op->msg + strlen(op->msg), sizeof(op->msg) - strlen(op->msg),
			 "%sno complete version: half A %s, half B %s", op->msg[0] ? "; " : "",
			 op->drc[0] == 0 ? "incomplete" : ust_bs_fmt_damage_str(op->err[0].kind),
			 op->drc[1] == 0 ? "incomplete" : ust_bs_fmt_damage_str(op->err[1].kind));
		mark_damaged(op, op->slot, op->drc[0] == 0 ? op->r[0].hdr.blob_id
				: op->drc[1] == 0 ? op->r[1].hdr.blob_id : 0,
			     op->verdict == BS_TREE_IOERR ? -EIO : -EUCLEAN, op->msg);
		claim_from_roots(op);
		return;
	}
	for (h = 0; h < 2 && op->rc == 0; h++) {
		if (op->drc[h] != -ENODATA) {
			op->rc = want_zero(op, bs_root_page(op->bs, op->slot, h));
		}
	}
}

/* Start on the next candidate half of op->slot, or conclude the slot. */
static void slot_next_candidate(struct rec_op *op)
{
	int exclude = op->tried[0] ? 0 : (op->tried[1] ? 1 : -1);
	int h;

	op->cand = op->tried[0] && op->tried[1] ? -1 : bs_pick_half(op->drc, op->r, exclude);
	if (op->cand < 0) {
		slot_without_version(op);
		op->slot++;
		op->state = REC_SLOT;
		rec_step(op);
		return;
	}
	if (op->r[op->cand].flags & UST_BS_BLOB_TOMBSTONE) {
		/* Free; an invalid other half is a torn later create: clear it. */
		h = 1 - op->cand;
		if (op->drc[h] != 0 && op->drc[h] != -ENODATA) {
			op->rc = want_zero(op, bs_root_page(op->bs, op->slot, h));
		} else if (op->drc[h] == 0 && op->r[h].hdr.generation > op->r[op->cand].hdr.generation) {
			op->rc = want_zero(op, bs_root_page(op->bs, op->slot, h));
		}
		op->slot++;
		op->state = REC_SLOT;
		rec_step(op);
		return;
	}
	op->tried[op->cand] = 1;
	memset(&op->tree, 0, sizeof(op->tree));
	op->tree.root = (uint8_t *)half_page(op, op->cand);
	op->tree.hdr = op->r[op->cand];
	op->state = REC_TREE_DONE;
	bs_tree_read(op->bs, &op->tree, op->msg, sizeof(op->msg), rec_tree_read_done, op);
}

/* ---- pending operations (9.4) -------------------------------------------------------- */

static void want_write(struct rec_op *op, struct ust_blob *blob, bool tombstone)
{
	op->writes[op->nwrites] = blob;
	op->tomb[op->nwrites] = tombstone;
	op->nwrites++;
}

/* A tombstone over slot s, whose current version is rs (its pages are not claimed). */
static int tombstone_slot(struct rec_op *op, struct ust_blob *blob, const struct rec_slot *rs)
{
	/* Nothing of it may be released at the commit: it claimed nothing. */
	blob->md_npages = 0;
	blob->nfreed = 0;
	blob->cur_half = rs->half;
	blob->next_gen = rs->maxgen + 1;
	want_write(op, blob, true);
	return 0;
}

/* The merge committed: S is gone, and what C does not hold of it is free. */
static int release_merged(struct rec_op *op, uint32_t s)
{
	struct ust_blob_store *bs = op->bs;
	struct rec_slot *rs = &op->slots[s];
	struct ust_blob *t;
	uint64_t c;
	uint32_t p;

	for (c = 0; c < bs->sb.total_clusters; c++) {
		if (op->cluster_owner[c] == s + 1) {
			op->cluster_owner[c] = 0;
			bs_cluster_free(bs, (uint32_t)c);
		}
	}
	for (p = 0; p < bs->sb.md_pool.pages; p++) {
		if (op->page_owner[p] == s + 1) {
			op->page_owner[p] = 0;
			bs_page_free(bs, bs->sb.md_pool.start + p);
		}
	}
	bs_bit_clear(bs->bbm, s);
	memset(&bs->rel[s], 0, sizeof(bs->rel[s]));
	op->live--;
	rs->state = RS_FREE;
	t = bs_blob_alloc(bs, rs->id);
	if (t == NULL) {
		return -ENOMEM;
	}
	return tombstone_slot(op, t, rs);
}

/*
 * The fixed rule of 9.4, decided from the other blob's current root:
 * SNAPSHOT_OF B happened iff B's parent is S; MERGED_FROM S always happened
 * (the intent is in C's committed root), and S, if still live, is deleted.
 */
static int resolve_one(struct rec_op *op, struct ust_blob *b)
{
	ust_blob_id other = b->pending.other_blob_id;
	struct rec_slot *o = &op->slots[ust_bs_blobid_slot(other)];
	char msg[160];

	if (b->pending.op == UST_BS_OP_SNAPSHOT_OF) {
		if (o->state == RS_LIVE && o->id == other && o->parent == b->id) {
			UST_NOTICELOG("blobstore: snapshot 0x%llx of 0x%llx completed at load\n",
				      (unsigned long long)b->id, (unsigned long long)other);
			adopt(op, b);
			if (bs_is_damaged(op->bs, b->slot)) {
				bs_blob_free(b);
				return 0;
			}
			b->has_pending = false;
			b->change_seq++;
			want_write(op, b, false);
			return 0;
		}
		if (o->state == RS_DAMAGED && (o->id == other || o->id == 0)) {
			/* Undecidable: keep everything for fsck (9.4). */
			snprintf(msg, sizeof(msg), "pending snapshot of damaged blob 0x%llx",
				 (unsigned long long)other);
			op->slot = b->slot;
			mark_damaged(op, b->slot, b->id, -EUCLEAN, msg);
			for (uint64_t i = 0; i < b->map->len; i++) {
				if (b->map->c[i] != 0) {
					bs_cluster_claim(op->bs, b->map->c[i]);
				}
			}
			for (uint32_t i = 0; i < b->md_npages; i++) {
				bs_page_claim(op->bs, b->md_pages[i]);
			}
			bs_blob_free(b);
			return 0;
		}
		UST_NOTICELOG("blobstore: snapshot 0x%llx of 0x%llx never happened; removing it\n",
			      (unsigned long long)b->id, (unsigned long long)other);
		op->slots[b->slot].state = RS_FREE;
		return tombstone_slot(op, b, &op->slots[b->slot]);
	}
	/* MERGED_FROM */
	if (o->state == RS_LIVE && o->id == other) {
		int rc = release_merged(op, ust_bs_blobid_slot(other));

		if (rc != 0) {
			bs_blob_free(b);
			return rc;
		}
	}
	UST_NOTICELOG("blobstore: merge of 0x%llx into 0x%llx completed at load\n",
		      (unsigned long long)other, (unsigned long long)b->id);
	adopt(op, b);
	if (bs_is_damaged(op->bs, b->slot)) {
		bs_blob_free(b);
		return 0;
	}
	b->has_pending = false;
	b->change_seq++;
	want_write(op, b, false);
	return 0;
}

static int resolve_pending(struct rec_op *op)
{
	uint32_t i;
	int rc = 0;

	if (op->npend == 0) {
		return 0;
	}
	/* At most one tombstone of another slot per pending blob, plus itself. */
	op->writes = calloc(2u * op->npend, sizeof(*op->writes));
	op->tomb = calloc(2u * op->npend, sizeof(*op->tomb));
	if (op->writes == NULL || op->tomb == NULL) {
		rc = -ENOMEM;
	}
	for (i = 0; i < op->npend; i++) {
		struct ust_blob *b = op->pend[i];

		op->pend[i] = NULL;
		if (rc != 0) {
			bs_blob_free(b);
			continue;
		}
		rc = resolve_one(op, b);
	}
	op->npend = 0;
	return rc;
}

static void rec_tree_read_done(void *arg, int verdict)
{
	struct rec_op *op = arg;

	op->verdict = verdict;
	rec_step(op);
}

static void rec_finish(struct rec_op *op)
{
	bs_done_fn done = op->done;
	void *arg = op->arg;
	int rc = op->rc;
	uint32_t i;

	if (rc == 0) {
		check_parents(op->bs, op->ro);
		UST_NOTICELOG("blobstore on %s recovered: %u live blobs, %u damaged, %llu free clusters\n",
			      ust_bdev_get_name(op->bs->bdev), op->live, op->ndamaged,
			      (unsigned long long)op->bs->free_clusters);
	}
	for (i = 0; i < op->npend; i++) {
		bs_blob_free(op->pend[i]);
	}
	for (i = 0; i < op->nwrites; i++) {
		bs_blob_free(op->writes[i]);
	}
	bs_dma_free(op->buf);
	free(op->cluster_owner);
	free(op->page_owner);
	free(op->zero);
	free(op->run_len);
	free(op->slots);
	free(op->ro);
	free(op->pend);
	free(op->writes);
	free(op->tomb);
	free(op);
	done(arg, rc);
}

static void rec_step(struct rec_op *op)
{
	struct ust_blob_store *bs = op->bs;
	int h;

	if (op->rc != 0 && op->state != REC_DONE && op->state != REC_FINISH) {
		UST_ERRLOG("blobstore on %s: recovery failed: %s\n", ust_bdev_get_name(bs->bdev),
			   strerror(-op->rc));
		rec_finish(op);
		return;
	}
	switch (op->state) {
	case REC_READ_CHUNK:
		if (op->base + op->count >= bs->sb.max_blobs) {
			op->state = REC_RESOLVE;
			rec_step(op);
			return;
		}
		op->base += op->count;
		op->count = bs->sb.max_blobs - op->base;
		if (op->count > CHUNK_SLOTS) {
			op->count = CHUNK_SLOTS;
		}
		op->slot = op->base;
		op->state = REC_SLOT;
		op->pending = 1;
		bs_dev_read_pages(bs, bs_root_page(bs, op->base, 0), op->count * 2, op->buf, rec_io_done,
				  op);
		break;
	case REC_SLOT:
		if (op->slot >= op->base + op->count) {
			op->state = REC_READ_CHUNK;
			rec_step(op);
			return;
		}
		for (h = 0; h < 2; h++) {
			op->drc[h] = ust_bs_fmt_root_decode(half_page(op, h), &bs->geom, &op->r[h],
							    &op->err[h]);
			op->tried[h] = 0;
		}
		op->msg[0] = '\0';
		op->verdict = BS_TREE_COMPLETE;
		if (op->drc[0] == -ENODATA && op->drc[1] == -ENODATA) {
			op->slot++;
			rec_step(op);
			return;
		}
		if (op->drc[0] == -ENOTSUP || op->drc[1] == -ENOTSUP) {
			h = op->drc[0] == -ENOTSUP ? 0 : 1;
			snprintf(op->msg, sizeof(op->msg), "root half %c: %s: %s", 'A' + h,
				 ust_bs_fmt_damage_str(op->err[h].kind), op->err[h].msg);
			mark_damaged(op, op->slot, 0, -ENOTSUP, op->msg);
			claim_from_roots(op);
			op->slot++;
			rec_step(op);
			return;
		}
		slot_next_candidate(op);
		break;
	case REC_TREE_DONE:
		if (op->verdict < 0) {
			op->rc = op->verdict;
			bs_tree_free(&op->tree);
			rec_step(op);
			return;
		}
		if (op->verdict == BS_TREE_COMPLETE) {
			slot_live(op);
			bs_tree_free(&op->tree);
			op->slot++;
			op->state = REC_SLOT;
			rec_step(op);
			return;
		}
		bs_tree_free(&op->tree);
		if (op->verdict == BS_TREE_IOERR) {
			op->tried[0] = op->tried[1] = 1;
		}
		UST_WARNLOG("blobstore: slot %u, half %c: %s\n", op->slot, 'A' + op->cand, op->msg);
		slot_next_candidate(op);
		break;
	case REC_RESOLVE:
		/* Every slot is known: decide the pending operations, then claim. */
		op->state = REC_REPAIR;
		op->rc = resolve_pending(op);
		rec_step(op);
		break;
	case REC_REPAIR:
		op->state = REC_DONE;
		op->rc = op->nzero > 0 ? zero_runs(op) : 0;
		if (op->rc != 0) {
			rec_step(op);
			return;
		}
		op->zeroed = op->nruns > 0;
		batch_start(op, issue_zero, op->nruns);
		break;
	case REC_DONE:
		if (op->zeroed) {
			/* The zeroed halves must be durable before anything relies on them. */
			op->zeroed = false;
			op->pending = 1;
			bs_dev_flush(bs, rec_io_done, op);
			return;
		}
		if (op->rc != 0) {
			rec_finish(op);
			return;
		}
		op->state = REC_WRITE;
		rec_step(op);
		break;
	case REC_WRITE:
		/* After the zeroing is durable (a tombstone may go to a zeroed half):
		 * each root behind its own commit flush (9.1). */
		op->state = REC_FINISH;
		batch_start(op, issue_write, op->nwrites);
		break;
	case REC_FINISH:
		rec_finish(op);
		break;
	}
}

void bs_recover(struct ust_blob_store *bs, bs_done_fn done, void *arg)
{
	struct rec_op *op = calloc(1, sizeof(*op));

	if (op == NULL) {
		done(arg, -ENOMEM);
		return;
	}
	op->bs = bs;
	op->done = done;
	op->arg = arg;
	op->buf = bs_dma_page_alloc(CHUNK_SLOTS * 2);
	op->cluster_owner = calloc(bs->sb.total_clusters, sizeof(uint32_t));
	op->page_owner = calloc(bs->sb.md_pool.pages, sizeof(uint32_t));
	op->slots = calloc(bs->sb.max_blobs, sizeof(*op->slots));
	op->ro = slot_bits_alloc(bs);
	if (op->buf == NULL || op->cluster_owner == NULL || op->page_owner == NULL ||
	    op->slots == NULL || op->ro == NULL) {
		op->rc = -ENOMEM;
		rec_finish(op);
		return;
	}
	op->state = REC_READ_CHUNK;
	rec_step(op);
}

/* ---- clean load: the snapshot tree -------------------------------------------------- */

enum scan_state {
	SCAN_READ,
	SCAN_DECODE,
};

struct scan_op {
	enum scan_state state;
	struct ust_blob_store *bs;
	uint8_t *buf;
	uint8_t *ro; /* a bit per slot whose current root is READ_ONLY */
	uint32_t base;
	uint32_t count;
	int rc;
	bs_done_fn done;
	void *arg;
};

static void scan_step(struct scan_op *op);

static void scan_io_done(void *arg, int rc)
{
	struct scan_op *op = arg;

	op->rc = rc;
	scan_step(op);
}

static bool root_has_pending(const uint8_t *page)
{
	struct ust_bs_desc d;
	uint32_t cursor = 0;

	while (ust_bs_fmt_desc_next(page, &cursor, &d) == 1) {
		if (d.type == UST_BS_DESC_PENDING_OP) {
			return true;
		}
	}
	return false;
}

/* Record each live slot's id and parent from its newest valid root half. */
static int scan_decode(struct scan_op *op)
{
	struct ust_blob_store *bs = op->bs;
	struct ust_bs_fmt_err err[2];
	struct ust_bs_root r[2];
	const uint8_t *page;
	uint32_t s;
	int drc[2], h, cur;

	for (s = op->base; s < op->base + op->count; s++) {
		if (!bs_bit_get(bs->bbm, s)) {
			continue;
		}
		for (h = 0; h < 2; h++) {
			page = op->buf + ((size_t)(s - op->base) * 2 + (size_t)h) * UST_BS_PAGE_SIZE;
			drc[h] = ust_bs_fmt_root_decode(page, &bs->geom, &r[h], &err[h]);
		}
		cur = bs_pick_half(drc, r, -1);
		if (cur < 0 || (r[cur].flags & UST_BS_BLOB_TOMBSTONE)) {
			/* Damage: the open reports it (9.2). */
			continue;
		}
		page = op->buf + ((size_t)(s - op->base) * 2 + (size_t)cur) * UST_BS_PAGE_SIZE;
		if (root_has_pending(page)) {
			return -EAGAIN;
		}
		bs->rel[s].id = r[cur].hdr.blob_id;
		bs->rel[s].parent = r[cur].parent_id;
		if (r[cur].flags & UST_BS_BLOB_READ_ONLY) {
			bs_bit_set(op->ro, s);
		}
	}
	return 0;
}

static void scan_finish(struct scan_op *op, int rc)
{
	bs_done_fn done = op->done;
	void *arg = op->arg;

	if (rc == 0) {
		check_parents(op->bs, op->ro);
	}
	bs_dma_free(op->buf);
	free(op->ro);
	free(op);
	done(arg, rc);
}

static void scan_step(struct scan_op *op)
{
	struct ust_blob_store *bs = op->bs;
	uint32_t s;
	int rc;

	if (op->rc != 0) {
		scan_finish(op, op->rc);
		return;
	}
	switch (op->state) {
	case SCAN_READ:
		/* The next chunk that holds a live slot; dead chunks are not read. */
		for (;;) {
			op->base += op->count;
			if (op->base >= bs->sb.max_blobs) {
				scan_finish(op, 0);
				return;
			}
			op->count = bs->sb.max_blobs - op->base;
			if (op->count > CHUNK_SLOTS) {
				op->count = CHUNK_SLOTS;
			}
			s = op->base;
			while (s < op->base + op->count && !bs_bit_get(bs->bbm, s)) {
				s++;
			}
			if (s < op->base + op->count) {
				break;
			}
		}
		op->state = SCAN_DECODE;
		bs_dev_read_pages(bs, bs_root_page(bs, op->base, 0), op->count * 2, op->buf,
				  scan_io_done, op);
		break;
	case SCAN_DECODE:
		rc = scan_decode(op);
		if (rc != 0) {
			scan_finish(op, rc);
			return;
		}
		op->state = SCAN_READ;
		scan_step(op);
		break;
	}
}

void bs_scan_relations(struct ust_blob_store *bs, bs_done_fn done, void *arg)
{
	struct scan_op *op = calloc(1, sizeof(*op));

	if (op == NULL || (op->buf = bs_dma_page_alloc(CHUNK_SLOTS * 2)) == NULL ||
	    (op->ro = slot_bits_alloc(bs)) == NULL) {
		if (op != NULL) {
			bs_dma_free(op->buf);
		}
		free(op);
		done(arg, -ENOMEM);
		return;
	}
	op->bs = bs;
	op->state = SCAN_READ;
	op->done = done;
	op->arg = arg;
	scan_step(op);
}
