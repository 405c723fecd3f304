/*
 * Blobstore fsck: the root slots (docs/blobstore-format.md 7, 8.4, 8.5, 9.2,
 * 9.3). Each slot's two root halves are decoded, the current version picked,
 * its tree (chain and extent pages) read and verified page by page, and the
 * whole blob assembled from it under the whole-blob rules (8.4); a slot
 * whose current version cannot be read completely is reported and keeps
 * everything its readable pages name (soft claims), so that nothing it may
 * own is ever called leaked.
 *
 * Guarantees: reads only; every finding names the slot, blob id and page
 * it concerns; a slot costs its own records only (bs_fsck_internal.h).
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

/* ---- soft claims: what a damaged slot may own, so that nothing of it is called leaked ---------- */

static void soft_cluster(struct fsck_op *op, uint64_t c)
{
	if (c < op->sb.total_clusters) {
		bit_set(op->soft_clusters, c);
	}
}

static void soft_page(struct fsck_op *op, uint32_t page)
{
	if (page >= op->sb.md_pool.start && page - op->sb.md_pool.start < op->sb.md_pool.pages) {
		bit_set(op->soft_pages, page - op->sb.md_pool.start);
	}
}

/* Everything a validated root or chain page references. */
static void soft_claim_desc_page(struct fsck_op *op, const uint8_t *page)
{
	struct ust_bs_desc d;
	uint32_t cursor = 0, i, k;

	while (ust_bs_fmt_desc_next(page, &cursor, &d) == 1) {
		for (i = 0; i < ust_bs_fmt_desc_count(&d); i++) {
			if (d.type == UST_BS_DESC_EXTENT_RLE) {
				struct ust_bs_extent_run run;

				ust_bs_fmt_desc_run(&d, i, &run);
				for (k = 0; run.cluster != 0 && k < run.count &&
					    (uint64_t)run.cluster + k < op->sb.total_clusters; k++) {
					soft_cluster(op, (uint64_t)run.cluster + k);
				}
			} else {
				struct ust_bs_page_ref ref;

				ust_bs_fmt_desc_page_ref(&d, i, &ref);
				if (ref.page != 0) {
					soft_page(op, ref.page);
				}
			}
		}
	}
}

/* A damaged slot keeps what its readable roots and the tree read so far reference. */
static void soft_claim_slot(struct fsck_op *op)
{
	struct fsck_tree *t = &op->tree;
	uint32_t clusters[UST_BS_EXTENTS_PER_PAGE];
	struct ust_bs_page_hdr h;
	uint32_t i, k, n;
	int half;

	op->owners_unknown = true;
	for (half = 0; half < 2; half++) {
		const uint8_t *page = op->roots + ((size_t)(op->slot - op->base) * 2 + (size_t)half) *
						  UST_BS_PAGE_SIZE;

		if (op->drc[half] == 0 && !(op->r[half].flags & UST_BS_BLOB_TOMBSTONE)) {
			soft_claim_desc_page(op, page);
		} else if (op->drc[half] != 0 && op->drc[half] != -ENODATA &&
			   rd32le(page) == UST_BS_MAGIC &&
			   rd16le(page + offsetof(struct ust_bs_disk_page_hdr, type)) == UST_BS_PAGE_ROOT) {
			/*
			 * A damaged root may still name what the blob owns. The walk is
			 * bounds-checked, and what it finds only keeps space from being
			 * called leaked, so unverified values can hide a leak, never
			 * free anything.
			 */
			soft_claim_desc_page(op, page);
		}
	}
	for (i = 0; t->chain != NULL && i < t->nchain; i++) {
		if (t->chain_rc[i] == 0 &&
		    ust_bs_fmt_chain_decode(t->chain + (size_t)i * UST_BS_PAGE_SIZE, &op->geom, &h,
					    NULL) == 0) {
			soft_claim_desc_page(op, t->chain + (size_t)i * UST_BS_PAGE_SIZE);
		}
	}
	for (i = 0; t->ext != NULL && i < t->nextent; i++) {
		if (t->ext_rc[i] == 0 &&
		    ust_bs_fmt_extent_decode(t->ext + (size_t)i * UST_BS_PAGE_SIZE, &op->geom, &h,
					     clusters, &n, NULL) == 0) {
			for (k = 0; k < n; k++) {
				if (clusters[k] != 0) {
					soft_cluster(op, clusters[k]);
				}
			}
		}
	}
}

/* ---- reading one candidate's tree ------------------------------------------------------------- */

void fsck_tree_free(struct fsck_tree *t)
{
	fsck_page_free(t->chain);
	fsck_page_free(t->ext);
	free(t->ext_ref);
	free(t->ext_no);
	free(t->ext_rc);
	memset(t, 0, sizeof(*t));
}

static const uint8_t *chain_page(const struct fsck_tree *t, uint32_t i)
{
	return t->chain + (size_t)i * UST_BS_PAGE_SIZE;
}

/* Root and chain pages in descriptor order. */
static uint32_t desc_pages(const struct fsck_tree *t, const uint8_t **pages)
{
	uint32_t i;

	pages[0] = t->root;
	for (i = 0; i < t->nchain; i++) {
		pages[i + 1] = chain_page(t, i);
	}
	return t->nchain + 1;
}

static void tree_bad(struct fsck_tree *t, enum tree_verdict v, uint64_t page, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void tree_bad(struct fsck_tree *t, enum tree_verdict v, uint64_t page, const char *fmt, ...)
{
	va_list ap;

	t->verdict = v;
	t->bad_page = page;
	va_start(ap, fmt);
	vsnprintf(t->msg, sizeof(t->msg), fmt, ap);
	va_end(ap);
}

/* Start reading the chain pages of op->tree (already pointing at its root). */
static int tree_read_chain(struct fsck_op *op)
{
	struct fsck_tree *t = &op->tree;
	struct ust_bs_desc d;
	uint32_t cursor = 0, i;

	while (ust_bs_fmt_desc_next(t->root, &cursor, &d) == 1) {
		if (d.type != UST_BS_DESC_CHAIN) {
			continue;
		}
		t->nchain = ust_bs_fmt_desc_count(&d);
		for (i = 0; i < t->nchain; i++) {
			ust_bs_fmt_desc_page_ref(&d, i, &t->chain_ref[i]);
		}
	}
	if (t->nchain > 0) {
		t->chain = fsck_page_alloc(t->nchain);
		if (t->chain == NULL) {
			return -ENOMEM;
		}
	}
	for (i = 0; i < t->nchain; i++) {
		fsck_io_add(op, DEV_READ, (uint64_t)t->chain_ref[i].page * UST_BS_PAGE_SIZE, UST_BS_PAGE_SIZE,
		       t->chain + (size_t)i * UST_BS_PAGE_SIZE, &t->chain_rc[i]);
	}
	return 0;
}

void fsck_tree_check_chain(struct fsck_op *op)
{
	struct fsck_tree *t = &op->tree;
	struct ust_bs_fmt_err err;
	struct ust_bs_page_hdr h;
	uint32_t i;
	int rc;

	for (i = 0; i < t->nchain; i++) {
		if (t->chain_rc[i] != 0) {
			tree_bad(t, TREE_IOERR, t->chain_ref[i].page, "page %u (chain page %u) unreadable: %s",
				 t->chain_ref[i].page, i + 1, strerror(-t->chain_rc[i]));
			return;
		}
		rc = ust_bs_fmt_chain_decode(chain_page(t, i), &op->geom, &h, &err);
		if (rc == 0) {
			rc = ust_bs_fmt_ref_check(&h, UST_BS_PAGE_CHAIN, t->hdr.hdr.blob_id, i + 1,
						  t->hdr.hdr.generation, t->chain_ref[i].checksum, &err);
		}
		if (rc != 0) {
			tree_bad(t, rc == -ENOTSUP ? TREE_UNSUPPORTED : TREE_INCOMPLETE,
				 t->chain_ref[i].page, "page %u (chain page %u): %s",
				 t->chain_ref[i].page, i + 1, err.msg);
			return;
		}
	}
}

/* Room for the tree's n extent page references (ust_bs_fmt_extent_refs). */
static int fsck_tree_size_extents(void *arg, uint32_t n)
{
	struct fsck_tree *t = arg;

	t->ext_ref = calloc(n, sizeof(*t->ext_ref));
	t->ext_no = calloc(n, sizeof(*t->ext_no));
	t->ext_rc = calloc(n, sizeof(*t->ext_rc));
	t->ext = fsck_page_alloc(n);
	if (t->ext_ref == NULL || t->ext_no == NULL || t->ext_rc == NULL || t->ext == NULL) {
		return -ENOMEM;
	}
	return 0;
}

static int fsck_tree_add_extent(void *arg, uint32_t i, const struct ust_bs_page_ref *ref,
				uint64_t extent_no)
{
	struct fsck_tree *t = arg;

	t->ext_ref[i] = *ref;
	t->ext_no[i] = extent_no;
	return 0;
}

/* Collect the extent page references of the tree and start reading them. */
int fsck_tree_read_extents(struct fsck_op *op)
{
	struct fsck_tree *t = &op->tree;
	const uint8_t *pages[UST_BS_MAX_CHAIN_PAGES + 1];
	uint32_t np = desc_pages(t, pages), i;
	int n;

	n = ust_bs_fmt_extent_refs(pages, np, fsck_tree_size_extents, fsck_tree_add_extent, t);
	if (n < 0) {
		return n;
	}
	t->nextent = (uint32_t)n;
	for (i = 0; i < t->nextent; i++) {
		fsck_io_add(op, DEV_READ, (uint64_t)t->ext_ref[i].page * UST_BS_PAGE_SIZE, UST_BS_PAGE_SIZE,
		       t->ext + (size_t)i * UST_BS_PAGE_SIZE, &t->ext_rc[i]);
	}
	return 0;
}

void fsck_tree_check_extents(struct fsck_op *op)
{
	struct fsck_tree *t = &op->tree;
	uint32_t clusters[UST_BS_EXTENTS_PER_PAGE];
	struct ust_bs_fmt_err err;
	struct ust_bs_page_hdr h;
	uint32_t i, n;
	int rc;

	for (i = 0; i < t->nextent; i++) {
		if (t->ext_rc[i] != 0) {
			tree_bad(t, TREE_IOERR, t->ext_ref[i].page,
				 "page %u (extent page %" PRIu64 ") unreadable: %s", t->ext_ref[i].page,
				 t->ext_no[i], strerror(-t->ext_rc[i]));
			return;
		}
		rc = ust_bs_fmt_extent_decode(t->ext + (size_t)i * UST_BS_PAGE_SIZE, &op->geom, &h,
					      clusters, &n, &err);
		if (rc == 0) {
			rc = ust_bs_fmt_ref_check(&h, UST_BS_PAGE_EXTENT, t->hdr.hdr.blob_id,
						  (uint32_t)t->ext_no[i], t->hdr.hdr.generation,
						  t->ext_ref[i].checksum, &err);
		}
		if (rc != 0) {
			tree_bad(t, rc == -ENOTSUP ? TREE_UNSUPPORTED : TREE_INCOMPLETE,
				 t->ext_ref[i].page, "page %u (extent page %" PRIu64 "): %s",
				 t->ext_ref[i].page, t->ext_no[i], err.msg);
			return;
		}
	}
}

/* ---- assembling a complete tree: the whole-blob rules (8.4) ------------------------------------- */

struct xname {
	const uint8_t *name;
	uint16_t len;
	bool internal;
};

struct assembly {
	struct fsck_op *op;
	struct fsck_blob *b;
	const struct fsck_tree *t;
	uint64_t rle_pos;
	int64_t last_extent_no;
	bool open;        /* a value being assembled from fragments */
	struct xname cur;
	uint32_t cur_len, cur_filled;
	struct xname *names;
	size_t nnames;
	char *msg;
	size_t msglen;
};

static int asm_bad(struct assembly *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int asm_bad(struct assembly *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->msg, a->msglen, fmt, ap);
	va_end(ap);
	return -EUCLEAN;
}

static int asm_rle(struct assembly *a, const struct ust_bs_desc *d)
{
	uint64_t first = ust_bs_fmt_desc_first(d), pos = first;
	uint32_t i, k;

	if (a->b->flags & UST_BS_BLOB_EXTENT_PAGES) {
		return asm_bad(a, "run list in a blob that uses extent pages");
	}
	if (first != a->rle_pos) {
		return asm_bad(a, "run lists are not contiguous: one starts at blob cluster %" PRIu64
			       ", the previous ended at %" PRIu64, first, a->rle_pos);
	}
	for (i = 0; i < ust_bs_fmt_desc_count(d); i++) {
		struct ust_bs_extent_run run;

		ust_bs_fmt_desc_run(d, i, &run);
		if (pos > a->b->num_clusters || run.count > a->b->num_clusters - pos) {
			return asm_bad(a, "run list ends past the blob's %" PRIu64 " clusters",
				       a->b->num_clusters);
		}
		for (k = 0; run.cluster != 0 && k < run.count; k++) {
			if (fsck_map_add(a->b, pos + k, run.cluster + k) != 0) {
				return -ENOMEM;
			}
		}
		pos += run.count;
	}
	a->rle_pos = pos;
	return 0;
}

static const uint8_t *extent_of(const struct fsck_tree *t, uint32_t page, uint64_t no)
{
	uint32_t i;

	for (i = 0; i < t->nextent; i++) {
		if (t->ext_ref[i].page == page && t->ext_no[i] == no) {
			return t->ext + (size_t)i * UST_BS_PAGE_SIZE;
		}
	}
	return NULL;
}

static int asm_table(struct assembly *a, const struct ust_bs_desc *d)
{
	uint64_t first = ust_bs_fmt_desc_first(d), no, base, want;
	uint32_t clusters[UST_BS_EXTENTS_PER_PAGE];
	struct ust_bs_page_hdr h;
	const uint8_t *page;
	uint32_t i, k, n;

	if (!(a->b->flags & UST_BS_BLOB_EXTENT_PAGES)) {
		return asm_bad(a, "extent table in a blob that uses run lists");
	}
	if ((int64_t)first <= a->last_extent_no) {
		return asm_bad(a, "extent page numbers do not increase (%" PRIu64 " after %" PRId64 ")",
			       first, a->last_extent_no);
	}
	for (i = 0; i < ust_bs_fmt_desc_count(d); i++) {
		struct ust_bs_page_ref ref;

		ust_bs_fmt_desc_page_ref(d, i, &ref);
		no = first + i;
		a->last_extent_no = (int64_t)no;
		base = no * UST_BS_EXTENTS_PER_PAGE;
		if (base >= a->b->num_clusters) {
			return asm_bad(a, "extent page %" PRIu64 " lies past the blob's %" PRIu64
				       " clusters", no, a->b->num_clusters);
		}
		if (ref.page == 0) {
			continue;
		}
		page = extent_of(a->t, ref.page, no);
		if (page == NULL ||
		    ust_bs_fmt_extent_decode(page, &a->op->geom, &h, clusters, &n, NULL) != 0) {
			return asm_bad(a, "extent page %" PRIu64 " (page %u) missing from the tree", no,
				       ref.page);
		}
		want = a->b->num_clusters - base;
		if (want > UST_BS_EXTENTS_PER_PAGE) {
			want = UST_BS_EXTENTS_PER_PAGE;
		}
		if (n != want) {
			return asm_bad(a, "extent page %" PRIu64 " (page %u) maps %u clusters, should "
				       "map %" PRIu64, no, ref.page, n, want);
		}
		for (k = 0; k < n; k++) {
			if (clusters[k] != 0 && fsck_map_add(a->b, base + k, clusters[k]) != 0) {
				return -ENOMEM;
			}
		}
	}
	return 0;
}

static int asm_xattr(struct assembly *a, const struct ust_bs_desc *d)
{
	struct ust_bs_xattr_frag f;
	struct xname *grown;
	bool internal;
	size_t i;

	ust_bs_fmt_desc_xattr(d, &f);
	internal = (f.xflags & UST_BS_XATTR_F_INTERNAL) != 0;
	if (a->open) {
		if (a->cur.internal != internal || a->cur.len != f.name_len ||
		    memcmp(a->cur.name, f.name, f.name_len) != 0 || a->cur_len != f.value_len ||
		    f.frag_offset != a->cur_filled) {
			return asm_bad(a, "xattr \"%.*s\": value fragments are not contiguous",
				       (int)a->cur.len, (const char *)a->cur.name);
		}
	} else {
		if (f.frag_offset != 0) {
			return asm_bad(a, "xattr \"%.*s\": first fragment starts at offset %u",
				       (int)f.name_len, (const char *)f.name, f.frag_offset);
		}
		for (i = 0; i < a->nnames; i++) {
			if (a->names[i].internal == internal && a->names[i].len == f.name_len &&
			    memcmp(a->names[i].name, f.name, f.name_len) == 0) {
				return asm_bad(a, "xattr \"%.*s\" appears twice", (int)f.name_len,
					       (const char *)f.name);
			}
		}
		grown = realloc(a->names, (a->nnames + 1) * sizeof(*grown));
		if (grown == NULL) {
			return -ENOMEM;
		}
		a->names = grown;
		a->cur.name = f.name;
		a->cur.len = f.name_len;
		a->cur.internal = internal;
		a->names[a->nnames++] = a->cur;
		a->cur_len = f.value_len;
		a->cur_filled = 0;
		a->open = true;
	}
	a->cur_filled += f.frag_len;
	if (a->cur_filled == a->cur_len) {
		a->open = false;
	}
	return 0;
}

static int asm_desc(struct assembly *a, const struct ust_bs_desc *d)
{
	if (d->type == UST_BS_DESC_CHAIN) {
		return 0; /* structure, not content */
	}
	if (a->open && d->type != UST_BS_DESC_XATTR) {
		return asm_bad(a, "xattr \"%.*s\": value fragments are not consecutive",
			       (int)a->cur.len, (const char *)a->cur.name);
	}
	switch (d->type) {
	case UST_BS_DESC_EXTENT_RLE:
		return asm_rle(a, d);
	case UST_BS_DESC_EXTENT_TABLE:
		return asm_table(a, d);
	case UST_BS_DESC_XATTR:
		return asm_xattr(a, d);
	case UST_BS_DESC_PENDING_OP:
		a->b->has_pending = true;
		ust_bs_fmt_desc_pending(d, &a->b->pending);
		return 0;
	default:
		return 0; /* a compat descriptor of a newer writer */
	}
}

static int assemble(struct fsck_op *op, struct fsck_blob *b, char *msg, size_t msglen)
{
	const struct fsck_tree *t = &op->tree;
	const uint8_t *pages[UST_BS_MAX_CHAIN_PAGES + 1];
	struct assembly a = {.op = op, .b = b, .t = t, .last_extent_no = -1, .msg = msg,
			     .msglen = msglen};
	uint32_t np = desc_pages(t, pages), p, i, cursor;
	struct ust_bs_desc d;
	int rc = 0;

	b->flags = t->hdr.flags;
	b->num_clusters = t->hdr.num_clusters;
	b->parent_id = t->hdr.parent_id;
	b->gen = t->hdr.hdr.generation;
	for (p = 0; p < np && rc == 0; p++) {
		cursor = 0;
		while ((rc = ust_bs_fmt_desc_next(pages[p], &cursor, &d)) == 1) {
			rc = asm_desc(&a, &d);
			if (rc != 0) {
				break;
			}
		}
		if (rc < 0 && rc != -ENOMEM && msg[0] == '\0') {
			asm_bad(&a, "malformed descriptor area in %s", p == 0 ? "the root" : "a chain page");
		}
	}
	free(a.names);
	if (rc != 0) {
		return rc;
	}
	if (a.open) {
		return asm_bad(&a, "xattr \"%.*s\": value is missing fragments", (int)a.cur.len,
			       (const char *)a.cur.name);
	}
	if (!(b->flags & UST_BS_BLOB_THIN) && b->nmap != b->num_clusters) {
		return asm_bad(&a, "a thick blob with %" PRIu64 " of its %" PRIu64
			       " clusters unallocated", b->num_clusters - b->nmap, b->num_clusters);
	}
	b->npages = t->nchain + t->nextent;
	b->pages = calloc(b->npages ? b->npages : 1, sizeof(uint32_t));
	if (b->pages == NULL) {
		return -ENOMEM;
	}
	for (i = 0; i < t->nchain; i++) {
		b->pages[i] = t->chain_ref[i].page;
	}
	for (i = 0; i < t->nextent; i++) {
		b->pages[t->nchain + i] = t->ext_ref[i].page;
	}
	return 0;
}

/* ---- slots -------------------------------------------------------------------------------------- */

static const uint8_t *half_page(const struct fsck_op *op, int half)
{
	return op->roots + ((size_t)(op->slot - op->base) * 2 + (size_t)half) * UST_BS_PAGE_SIZE;
}

static uint64_t half_page_no(const struct fsck_op *op, int half)
{
	return (uint64_t)op->sb.root_slots.start + 2ull * op->slot + (uint64_t)half;
}

/* The id the slot is known by: a valid half's, else an unverified header's. */
static uint64_t slot_blob_id(const struct fsck_op *op)
{
	int h;

	for (h = 0; h < 2; h++) {
		if (op->drc[h] == 0) {
			return op->r[h].hdr.blob_id;
		}
	}
	for (h = 0; h < 2; h++) {
		uint64_t id = raw_blob_id(half_page(op, h));

		if (id != 0 && ust_bs_blobid_slot(id) == op->slot) {
			return id;
		}
	}
	return 0;
}

static struct ust_bs_fsck_finding *slot_finding(struct fsck_op *op, enum ust_bs_fsck_severity sev,
						enum ust_bs_fsck_kind kind, int half, const char *fmt,
						...) __attribute__((format(printf, 5, 6)));

static struct ust_bs_fsck_finding *slot_finding(struct fsck_op *op, enum ust_bs_fsck_severity sev,
						enum ust_bs_fsck_kind kind, int half, const char *fmt,
						...)
{
	struct ust_bs_fsck_finding *f;
	char text[240];
	uint64_t id = slot_blob_id(op);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (id != 0) {
		f = fsck_finding(op, sev, kind, "blob 0x%" PRIx64 " (slot %u): %s", id, op->slot, text);
	} else {
		f = fsck_finding(op, sev, kind, "slot %u: %s", op->slot, text);
	}
	f->blob_id = id;
	f->slot = op->slot;
	if (half >= 0) {
		f->page = half_page_no(op, half);
	}
	if (sev == UST_BS_FSCK_ERROR) {
		op->slot_damage = true;
	}
	return f;
}

static void decode_halves(struct fsck_op *op)
{
	uint32_t idx;
	int h;

	for (h = 0; h < 2; h++) {
		idx = (op->slot - op->base) * 2 + (uint32_t)h;
		op->tried[h] = false;
		if (op->root_rc[idx] != 0) {
			op->drc[h] = -EIO;
			op->err[h].kind = UST_BS_FMT_OK;
			snprintf(op->err[h].msg, sizeof(op->err[h].msg), "unreadable: %s",
				 strerror(-op->root_rc[idx]));
			continue;
		}
		op->drc[h] = ust_bs_fmt_root_decode(half_page(op, h), &op->geom, &op->r[h], &op->err[h]);
		if (op->drc[h] != 0) {
			continue;
		}
		/* The codec cannot know where the page sits; fsck can. */
		if (ust_bs_blobid_slot(op->r[h].hdr.blob_id) != op->slot || op->r[h].hdr.seq != (uint32_t)h) {
			op->drc[h] = -EUCLEAN;
			op->err[h].kind = UST_BS_FMT_MISMATCH;
			snprintf(op->err[h].msg, sizeof(op->err[h].msg),
				 "a valid root of blob 0x%" PRIx64 " half %c sits in slot %u half %c",
				 op->r[h].hdr.blob_id, 'A' + (int)op->r[h].hdr.seq, op->slot, 'A' + h);
		}
	}
}

static bool half_invalid(const struct fsck_op *op, int h)
{
	return op->drc[h] != 0 && op->drc[h] != -ENODATA;
}

/* An invalid half that is damage (not a torn uncommitted write): name it. */
static void report_bad_half(struct fsck_op *op, int h)
{
	if (op->drc[h] == -EIO) {
		slot_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_IO_ERROR, h, "root half %c %s",
			     'A' + h, op->err[h].msg);
	} else if (op->err[h].kind == UST_BS_FMT_MISMATCH) {
		slot_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_ROOT_MISPLACED, h, "root half %c: %s",
			     'A' + h, op->err[h].msg);
	} else {
		slot_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_ROOT_DAMAGED, h, "root half %c: %s",
			     'A' + h, op->err[h].msg);
	}
}

/* The slot has a current version `current` (a blob or a tombstone): judge the other half. */
static void report_other_half(struct fsck_op *op, int current)
{
	int h = 1 - current;

	if (op->drc[h] == -ENODATA) {
		return;
	}
	if (half_invalid(op, h)) {
		if (op->sb.clean || op->drc[h] == -EIO || op->err[h].kind == UST_BS_FMT_MISMATCH) {
			/* After a clean shutdown every non-blank half is valid (9.2). */
			report_bad_half(op, h);
		} else {
			slot_finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_ROOT_UNCOMMITTED, h,
				     "root half %c (%s) is taken for an update that never committed; "
				     "the load clears it (9.3)", 'A' + h, op->err[h].msg);
		}
		return;
	}
	if (op->r[h].hdr.generation > op->r[current].hdr.generation) {
		/* Tried first and found incomplete (dirty stores only get here). */
		slot_finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_ROOT_UNCOMMITTED, h,
			     "%s: an update that never committed; the load uses half %c (generation %"
			     PRIu64 ") and clears this one (9.3)", op->slot_msg, 'A' + current,
			     op->r[current].hdr.generation);
	}
}

static void conclude_damaged(struct fsck_op *op, enum blob_state state)
{
	struct fsck_blob *b = fsck_blob_new(op, op->slot, slot_blob_id(op), state);

	if (b == NULL) {
		return;
	}
	soft_claim_slot(op);
	if (state == BLOB_UNSUPPORTED) {
		op->rep->unsupported_blobs++;
		fsck_set_unsafe(op, "blob 0x%" PRIx64 " uses features this fsck does not know", b->id);
	} else {
		fsck_set_unsafe(op, "blob 0x%" PRIx64 " (slot %u) is damaged", b->id, op->slot);
	}
}

/* No candidate left: free (an interrupted create) or damaged (9.3 step 3). */
static void conclude_without_version(struct fsck_op *op)
{
	bool blank0 = op->drc[0] == -ENODATA, blank1 = op->drc[1] == -ENODATA;
	bool io = op->drc[0] == -EIO || op->drc[1] == -EIO || op->tree.verdict == TREE_IOERR;
	int h;

	if (!op->sb.clean && !io && (blank0 || blank1)) {
		h = blank0 ? 1 : 0;
		slot_finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_ROOT_UNCOMMITTED, h,
			     "half %c (%s) is taken for a create that never committed: the load "
			     "frees the slot", 'A' + h, op->drc[h] == 0 ? op->slot_msg : op->err[h].msg);
		return;
	}
	for (h = 0; h < 2; h++) {
		if (half_invalid(op, h)) {
			report_bad_half(op, h);
		}
	}
	if (op->slot_msg[0] != '\0') {
		/* Valid halves whose trees are incomplete (dirty store). */
		slot_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_TREE_INCOMPLETE, -1,
			     "no complete version: %s", op->slot_msg);
	}
	conclude_damaged(op, BLOB_DAMAGED);
}

static int pick_candidate(const struct fsck_op *op)
{
	int best = -1, h;

	for (h = 0; h < 2; h++) {
		if (op->drc[h] != 0 || op->tried[h]) {
			continue;
		}
		if (best < 0 || op->r[h].hdr.generation > op->r[best].hdr.generation) {
			best = h;
		}
	}
	return best;
}

static void next_slot(struct fsck_op *op)
{
	fsck_tree_free(&op->tree);
	op->slot++;
	op->state = FS_SLOT;
}

/* FS_SLOT: decode both halves and decide what to read. */
void fsck_slot_begin(struct fsck_op *op)
{
	int h;

	op->slot_damage = false;
	op->slot_msg[0] = '\0';
	decode_halves(op);
	if (op->drc[0] == -ENODATA && op->drc[1] == -ENODATA) {
		next_slot(op);
		return;
	}
	for (h = 0; h < 2; h++) {
		if (op->drc[h] == -ENOTSUP) {
			slot_finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_UNSUPPORTED, h,
				     "root half %c: %s: the blob is kept but cannot be checked",
				     'A' + h, op->err[h].msg);
			conclude_damaged(op, BLOB_UNSUPPORTED);
			next_slot(op);
			return;
		}
	}
	op->state = FS_CANDIDATE;
}

/* FS_CANDIDATE: take the next half to try; returns 1 when I/O was issued. */
int fsck_candidate(struct fsck_op *op)
{
	int cand = pick_candidate(op);

	if (cand < 0) {
		conclude_without_version(op);
		next_slot(op);
		return 0;
	}
	if (op->r[cand].flags & UST_BS_BLOB_TOMBSTONE) {
		report_other_half(op, cand);
		if (op->slot_damage) {
			conclude_damaged(op, BLOB_DAMAGED);
		}
		next_slot(op);
		return 0;
	}
	fsck_tree_free(&op->tree);
	op->tried[cand] = true;
	op->tree.root = half_page(op, cand);
	op->tree.hdr = op->r[cand];
	op->tree.half = cand;
	fsck_io_begin(op);
	op->state = FS_TREE_CHAIN;
	if (tree_read_chain(op) != 0) {
		op->rc = -ENOMEM;
	}
	return fsck_io_end(op);
}

/* The candidate's tree is not complete: say why, then try the older half or give up. */
void fsck_candidate_incomplete(struct fsck_op *op)
{
	struct fsck_tree *t = &op->tree;
	struct ust_bs_fsck_finding *f;
	size_t len = strlen(op->slot_msg);

	if (t->verdict == TREE_UNSUPPORTED) {
		f = slot_finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_UNSUPPORTED, -1,
				 "root half %c: %s: the blob is kept but cannot be checked",
				 'A' + t->half, t->msg);
		f->page = t->bad_page;
		conclude_damaged(op, BLOB_UNSUPPORTED);
		next_slot(op);
		return;
	}
	if (t->verdict == TREE_IOERR || op->sb.clean) {
		/* A clean store must have a complete newest version (9.2): no rollback. */
		f = slot_finding(op, UST_BS_FSCK_ERROR,
				 t->verdict == TREE_IOERR ? UST_BS_FSCK_IO_ERROR :
				 UST_BS_FSCK_TREE_INCOMPLETE, -1, "root half %c (generation %" PRIu64
				 "): %s", 'A' + t->half, t->hdr.hdr.generation, t->msg);
		f->page = t->bad_page;
		if (half_invalid(op, 1 - t->half)) {
			report_bad_half(op, 1 - t->half);
		}
		conclude_damaged(op, BLOB_DAMAGED);
		next_slot(op);
		return;
	}
	snprintf(op->slot_msg + len, sizeof(op->slot_msg) - len, "%shalf %c (generation %" PRIu64
		 ") has an incomplete tree: %s", len ? "; " : "", 'A' + t->half,
		 t->hdr.hdr.generation, t->msg);
	op->state = FS_CANDIDATE;
}

/* The candidate's tree is complete: assemble it and record the blob. */
void fsck_candidate_complete(struct fsck_op *op)
{
	struct fsck_tree *t = &op->tree;
	struct fsck_blob *b;
	char msg[200] = "";
	uint64_t i;
	int rc;

	b = fsck_blob_new(op, op->slot, t->hdr.hdr.blob_id, BLOB_LIVE);
	if (b == NULL) {
		return;
	}
	rc = assemble(op, b, msg, sizeof(msg));
	if (rc == -ENOMEM) {
		op->rc = rc;
		return;
	}
	if (rc != 0) {
		fsck_blob_clear(b);
		op->nblobs--;
		slot_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_BLOB_INVALID, t->half,
			     "generation %" PRIu64 ": %s", t->hdr.hdr.generation, msg);
		conclude_damaged(op, BLOB_DAMAGED);
		next_slot(op);
		return;
	}
	report_other_half(op, t->half);
	if (op->slot_damage) {
		/* Clean store with a damaged half: the blob is isolated at load (9.5). */
		b = &op->blobs[op->nblobs - 1];
		b->state = BLOB_DAMAGED;
		soft_claim_slot(op);
		for (i = 0; i < b->nmap; i++) {
			soft_cluster(op, b->map[i].cluster);
		}
		for (i = 0; i < b->npages; i++) {
			soft_page(op, b->pages[i]);
		}
		fsck_blob_clear(b);
		b->nmap = 0;
		b->npages = 0;
		fsck_set_unsafe(op, "blob 0x%" PRIx64 " (slot %u) is damaged", b->id, b->slot);
	}
	next_slot(op);
}
