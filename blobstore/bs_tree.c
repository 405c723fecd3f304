/*
 * Reading one version of a blob's metadata: the tree below a root page
 * (chain pages, then extent pages), every page checked against the hash
 * reference that names it, and the assembly of the in-memory blob from a
 * complete tree.
 *
 * Guarantees (docs/blobstore-format.md 8.4, 8.5): a tree is COMPLETE only if
 * every referenced page read without error, decoded cleanly and matches its
 * reference (type, blob, position, generation, checksum). Assembly checks the
 * whole-blob rules (run contiguity, extent page order and sizes, holes only
 * in thin blobs, xattr fragments contiguous and unique per namespace) and
 * never reads outside a validated page.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"

#include "blobstore_internal.h"

enum tree_state {
	TREE_READ_CHAIN,
	TREE_CHECK_CHAIN,
	TREE_CHECK_EXTENTS,
};

struct tree_op {
	enum tree_state state;
	struct ust_blob_store *bs;
	struct bs_tree *tree;
	char *msg;
	size_t msglen;
	int io_rc;
	uint32_t pending;
	bs_done_fn done;
	void *arg;
};

static void tree_step(struct tree_op *op);

static void tree_io_done(void *arg, int rc)
{
	struct tree_op *op = arg;

	if (rc != 0 && op->io_rc == 0) {
		op->io_rc = rc;
	}
	if (--op->pending == 0) {
		tree_step(op);
	}
}

static void tree_finish(struct tree_op *op, int verdict)
{
	bs_done_fn done = op->done;
	void *arg = op->arg;

	free(op);
	done(arg, verdict);
}

/* The pages whose descriptors make up the blob, in descriptor order. */
static uint32_t tree_desc_pages(const struct bs_tree *t, const uint8_t **pages)
{
	uint32_t i;

	pages[0] = t->root;
	for (i = 0; i < t->nchain; i++) {
		pages[i + 1] = t->chain[i];
	}
	return t->nchain + 1;
}

static int find_chain(struct bs_tree *t)
{
	struct ust_bs_desc d;
	uint32_t cursor = 0, i;
	int rc;

	while ((rc = ust_bs_fmt_desc_next(t->root, &cursor, &d)) == 1) {
		if (d.type != UST_BS_DESC_CHAIN) {
			continue;
		}
		t->nchain = ust_bs_fmt_desc_count(&d);
		for (i = 0; i < t->nchain; i++) {
			struct ust_bs_page_ref ref;

			ust_bs_fmt_desc_page_ref(&d, i, &ref);
			t->chain_page[i] = ref.page;
			t->chain[i] = bs_dma_page_alloc(1);
			if (t->chain[i] == NULL) {
				return -ENOMEM;
			}
		}
	}
	return rc < 0 ? rc : 0;
}

static int chain_ref(const struct bs_tree *t, uint32_t i, struct ust_bs_page_ref *ref)
{
	struct ust_bs_desc d;
	uint32_t cursor = 0;

	while (ust_bs_fmt_desc_next(t->root, &cursor, &d) == 1) {
		if (d.type == UST_BS_DESC_CHAIN) {
			ust_bs_fmt_desc_page_ref(&d, i, ref);
			return 0;
		}
	}
	return -EUCLEAN;
}

static int check_chain(struct tree_op *op)
{
	struct bs_tree *t = op->tree;
	struct ust_bs_fmt_err err;
	struct ust_bs_page_hdr h;
	struct ust_bs_page_ref ref;
	uint32_t i;
	int rc;

	for (i = 0; i < t->nchain; i++) {
		rc = ust_bs_fmt_chain_decode(t->chain[i], &op->bs->geom, &h, &err);
		if (rc == 0 && chain_ref(t, i, &ref) == 0) {
			rc = ust_bs_fmt_ref_check(&h, UST_BS_PAGE_CHAIN, t->hdr.hdr.blob_id, i + 1,
						  t->hdr.hdr.generation, ref.checksum, &err);
		}
		if (rc != 0) {
			snprintf(op->msg, op->msglen, "page %u (chain page %u): %s: %s", t->chain_page[i],
				 i + 1, ust_bs_fmt_damage_str(err.kind), err.msg);
			return rc;
		}
	}
	return 0;
}

/* Room for the tree's n extent page references (ust_bs_fmt_extent_refs). */
static int tree_size_extents(void *arg, uint32_t n)
{
	struct bs_tree *t = arg;

	t->extent_page = calloc(n, sizeof(uint32_t));
	t->extent_no = calloc(n, sizeof(uint32_t));
	t->extent = calloc(n, sizeof(uint8_t *));
	if (t->extent_page == NULL || t->extent_no == NULL || t->extent == NULL) {
		return -ENOMEM;
	}
	return 0;
}

/* Note extent page reference i and give it a buffer to be read into. */
static int tree_add_extent(void *arg, uint32_t i, const struct ust_bs_page_ref *ref,
			   uint64_t extent_no)
{
	struct bs_tree *t = arg;

	t->extent_page[i] = ref->page;
	t->extent_no[i] = (uint32_t)extent_no;
	t->extent[i] = bs_dma_page_alloc(1);
	return t->extent[i] != NULL ? 0 : -ENOMEM;
}

/* Collect every extent page reference and start reading them. */
static int read_extents(struct tree_op *op)
{
	struct bs_tree *t = op->tree;
	const uint8_t *pages[UST_BS_MAX_CHAIN_PAGES + 1];
	uint32_t np = tree_desc_pages(t, pages), i;
	int n;

	n = ust_bs_fmt_extent_refs(pages, np, tree_size_extents, tree_add_extent, t);
	if (n < 0) {
		return n;
	}
	t->nextent = (uint32_t)n;
	op->pending = 1;
	for (i = 0; i < t->nextent; i++) {
		op->pending++;
		bs_dev_read_pages(op->bs, t->extent_page[i], 1, t->extent[i], tree_io_done, op);
	}
	return 0;
}

/* The checksum the table reference for extent page i carries. */
static uint64_t extent_ref_csum(const struct bs_tree *t, uint32_t i)
{
	const uint8_t *pages[UST_BS_MAX_CHAIN_PAGES + 1];
	uint32_t np = tree_desc_pages(t, pages), p, j;
	struct ust_bs_desc d;
	uint32_t cursor;

	for (p = 0; p < np; p++) {
		cursor = 0;
		while (ust_bs_fmt_desc_next(pages[p], &cursor, &d) == 1) {
			uint64_t first;

			if (d.type != UST_BS_DESC_EXTENT_TABLE) {
				continue;
			}
			first = ust_bs_fmt_desc_first(&d);
			for (j = 0; j < ust_bs_fmt_desc_count(&d); j++) {
				struct ust_bs_page_ref ref;

				ust_bs_fmt_desc_page_ref(&d, j, &ref);
				if (ref.page == t->extent_page[i] && first + j == t->extent_no[i]) {
					return ref.checksum;
				}
			}
		}
	}
	return 0;
}

static int check_extents(struct tree_op *op)
{
	struct bs_tree *t = op->tree;
	uint32_t clusters[UST_BS_EXTENTS_PER_PAGE];
	struct ust_bs_fmt_err err;
	struct ust_bs_page_hdr h;
	uint32_t i, n;
	int rc;

	for (i = 0; i < t->nextent; i++) {
		rc = ust_bs_fmt_extent_decode(t->extent[i], &op->bs->geom, &h, clusters, &n, &err);
		if (rc == 0) {
			rc = ust_bs_fmt_ref_check(&h, UST_BS_PAGE_EXTENT, t->hdr.hdr.blob_id,
						  t->extent_no[i], t->hdr.hdr.generation,
						  extent_ref_csum(t, i), &err);
		}
		if (rc != 0) {
			snprintf(op->msg, op->msglen, "page %u (extent page %u): %s: %s",
				 t->extent_page[i], t->extent_no[i], ust_bs_fmt_damage_str(err.kind),
				 err.msg);
			return rc;
		}
	}
	return 0;
}

static void tree_step(struct tree_op *op)
{
	struct bs_tree *t = op->tree;
	uint32_t i;
	int rc;

	if (op->io_rc != 0) {
		snprintf(op->msg, op->msglen, "metadata page unreadable: %s", strerror(-op->io_rc));
		tree_finish(op, BS_TREE_IOERR);
		return;
	}
	switch (op->state) {
	case TREE_READ_CHAIN:
		rc = find_chain(t);
		if (rc != 0) {
			tree_finish(op, rc);
			return;
		}
		op->state = TREE_CHECK_CHAIN;
		op->pending = 1;
		for (i = 0; i < t->nchain; i++) {
			op->pending++;
			bs_dev_read_pages(op->bs, t->chain_page[i], 1, t->chain[i], tree_io_done, op);
		}
		tree_io_done(op, 0);
		break;
	case TREE_CHECK_CHAIN:
		if (check_chain(op) != 0) {
			tree_finish(op, BS_TREE_INCOMPLETE);
			return;
		}
		op->state = TREE_CHECK_EXTENTS;
		rc = read_extents(op);
		if (rc != 0) {
			tree_finish(op, rc);
			return;
		}
		tree_io_done(op, 0);
		break;
	case TREE_CHECK_EXTENTS:
		tree_finish(op, check_extents(op) != 0 ? BS_TREE_INCOMPLETE : BS_TREE_COMPLETE);
		break;
	}
}

void bs_tree_read(struct ust_blob_store *bs, struct bs_tree *tree, char *msg, size_t msglen,
		  bs_done_fn done, void *arg)
{
	struct tree_op *op = calloc(1, sizeof(*op));

	if (op == NULL) {
		done(arg, -ENOMEM);
		return;
	}
	op->bs = bs;
	op->tree = tree;
	op->msg = msg;
	op->msglen = msglen;
	op->done = done;
	op->arg = arg;
	op->state = TREE_READ_CHAIN;
	tree_step(op);
}

void bs_tree_free(struct bs_tree *t)
{
	uint32_t i;

	for (i = 0; i < t->nchain; i++) {
		bs_dma_free(t->chain[i]);
		t->chain[i] = NULL;
	}
	for (i = 0; i < t->nextent; i++) {
		bs_dma_free(t->extent[i]);
	}
	free(t->extent);
	free(t->extent_page);
	free(t->extent_no);
	t->extent = NULL;
	t->extent_page = NULL;
	t->extent_no = NULL;
	t->nchain = 0;
	t->nextent = 0;
}

int bs_pick_half(const int rc[2], const struct ust_bs_root r[2], int exclude)
{
	int best = -1, h;

	for (h = 0; h < 2; h++) {
		if (h == exclude || rc[h] != 0) {
			continue;
		}
		if (best < 0 || r[h].hdr.generation > r[best].hdr.generation) {
			best = h;
		}
	}
	return best;
}

/* ---- assembly ------------------------------------------------------------------------ */

struct assembly {
	struct ust_blob *blob;
	const struct bs_tree *tree;
	uint64_t rle_pos;        /* next blob cluster a run list must start at */
	bool seen_rle;
	int64_t last_extent_no;  /* strictly increasing across tables */
	struct bs_xattr *open_x; /* value being assembled from fragments */
	uint32_t open_filled;
	char *msg;
	size_t msglen;
};

static int bad(struct assembly *a, const char *what)
{
	snprintf(a->msg, a->msglen, "%s", what);
	return -EUCLEAN;
}

static int map_set(struct assembly *a, uint64_t i, uint32_t cluster)
{
	struct bs_map *m = a->blob->map;

	if (i >= m->len) {
		return bad(a, "cluster map runs past the blob's size");
	}
	m->c[i] = cluster;
	return 0;
}

static int take_rle(struct assembly *a, const struct ust_bs_desc *d)
{
	uint64_t first = ust_bs_fmt_desc_first(d), pos;
	uint32_t i, k;
	int rc;

	if (first != a->rle_pos) {
		return bad(a, "run lists are not contiguous");
	}
	pos = first;
	for (i = 0; i < ust_bs_fmt_desc_count(d); i++) {
		struct ust_bs_extent_run run;

		ust_bs_fmt_desc_run(d, i, &run);
		if (run.count > a->blob->map->len - pos) {
			return bad(a, "run list ends past the blob's size");
		}
		for (k = 0; k < run.count; k++) {
			rc = map_set(a, pos + k, run.cluster == 0 ? 0 : run.cluster + k);
			if (rc != 0) {
				return rc;
			}
		}
		pos += run.count;
	}
	a->rle_pos = pos;
	a->seen_rle = true;
	return 0;
}

static const uint8_t *extent_page_of(const struct bs_tree *t, uint32_t page, uint64_t no)
{
	uint32_t i;

	for (i = 0; i < t->nextent; i++) {
		if (t->extent_page[i] == page && t->extent_no[i] == no) {
			return t->extent[i];
		}
	}
	return NULL;
}

static int take_table(struct assembly *a, const struct ust_bs_desc *d)
{
	uint64_t first = ust_bs_fmt_desc_first(d), no, base, want;
	uint32_t clusters[UST_BS_EXTENTS_PER_PAGE];
	struct ust_bs_fmt_err err;
	struct ust_bs_page_hdr h;
	uint32_t i, k, n;
	int rc;

	if ((int64_t)first <= a->last_extent_no) {
		return bad(a, "extent page numbers do not increase");
	}
	for (i = 0; i < ust_bs_fmt_desc_count(d); i++) {
		struct ust_bs_page_ref ref;
		const uint8_t *page;

		ust_bs_fmt_desc_page_ref(d, i, &ref);
		no = first + i;
		a->last_extent_no = (int64_t)no;
		base = no * UST_BS_EXTENTS_PER_PAGE;
		if (base >= a->blob->map->len) {
			return bad(a, "extent page past the blob's size");
		}
		/* The writer reuses unchanged extent pages by these references. */
		bs_ext_set_ref(a->blob, no, &ref);
		if (ref.page == 0) {
			continue;
		}
		page = extent_page_of(a->tree, ref.page, no);
		if (page == NULL ||
		    ust_bs_fmt_extent_decode(page, &a->blob->bs->geom, &h, clusters, &n, &err) != 0) {
			return bad(a, "extent page missing from the tree");
		}
		want = a->blob->map->len - base;
		if (want > UST_BS_EXTENTS_PER_PAGE) {
			want = UST_BS_EXTENTS_PER_PAGE;
		}
		if (n != want) {
			return bad(a, "extent page covers the wrong number of clusters");
		}
		for (k = 0; k < n; k++) {
			rc = map_set(a, base + k, clusters[k]);
			if (rc != 0) {
				return rc;
			}
		}
	}
	return 0;
}

static struct bs_xattr *xattr_find(struct ust_blob *blob, const uint8_t *name, uint16_t len,
				   bool internal)
{
	struct bs_xattr *x;

	TAILQ_FOREACH(x, &blob->xattrs, link) {
		if (x->internal == internal && x->name_len == len && memcmp(x->name, name, len) == 0) {
			return x;
		}
	}
	return NULL;
}

static int take_xattr(struct assembly *a, const struct ust_bs_desc *d)
{
	struct ust_bs_xattr_frag f;
	bool internal;
	struct bs_xattr *x;

	ust_bs_fmt_desc_xattr(d, &f);
	internal = (f.xflags & UST_BS_XATTR_F_INTERNAL) != 0;
	if (a->open_x != NULL) {
		x = a->open_x;
		if (x->internal != internal || x->name_len != f.name_len ||
		    memcmp(x->name, f.name, f.name_len) != 0 || x->value_len != f.value_len ||
		    f.frag_offset != a->open_filled) {
			return bad(a, "xattr value fragments are not contiguous");
		}
	} else {
		if (f.frag_offset != 0) {
			return bad(a, "xattr fragment does not start at offset 0");
		}
		if (xattr_find(a->blob, f.name, f.name_len, internal) != NULL) {
			return bad(a, "xattr name appears twice");
		}
		x = calloc(1, sizeof(*x));
		if (x == NULL) {
			return -ENOMEM;
		}
		x->name = calloc(1, (size_t)f.name_len + 1);
		x->value = malloc(f.value_len ? f.value_len : 1);
		if (x->name == NULL || x->value == NULL) {
			bs_xattr_free(x);
			return -ENOMEM;
		}
		memcpy(x->name, f.name, f.name_len);
		x->name_len = f.name_len;
		x->internal = internal;
		x->value_len = f.value_len;
		TAILQ_INSERT_TAIL(&a->blob->xattrs, x, link);
		a->open_x = x;
		a->open_filled = 0;
	}
	if (f.frag_len != 0) {
		memcpy(x->value + f.frag_offset, f.data, f.frag_len);
	}
	a->open_filled += f.frag_len;
	if (a->open_filled == x->value_len) {
		a->open_x = NULL;
	}
	return 0;
}

static int take_raw(struct assembly *a, const struct ust_bs_desc *d)
{
	struct bs_raw_desc *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		return -ENOMEM;
	}
	r->body = malloc(d->len ? d->len : 1);
	if (r->body == NULL) {
		free(r);
		return -ENOMEM;
	}
	memcpy(r->body, d->body, d->len);
	r->type = d->type;
	r->flags = d->flags;
	r->len = d->len;
	TAILQ_INSERT_TAIL(&a->blob->raw, r, link);
	return 0;
}

static int take_desc(struct assembly *a, const struct ust_bs_desc *d)
{
	if (d->type == UST_BS_DESC_CHAIN) {
		/* Structure, not content: it does not break a run of fragments. */
		return 0;
	}
	if (a->open_x != NULL && d->type != UST_BS_DESC_XATTR) {
		return bad(a, "xattr value fragments are not consecutive");
	}
	switch (d->type) {
	case UST_BS_DESC_EXTENT_RLE:
		return take_rle(a, d);
	case UST_BS_DESC_EXTENT_TABLE:
		return take_table(a, d);
	case UST_BS_DESC_XATTR:
		return take_xattr(a, d);
	case UST_BS_DESC_PENDING_OP:
		/* The decoder allows one, in the root only (8.3); recovery resolves it (9.4). */
		ust_bs_fmt_desc_pending(d, &a->blob->pending);
		a->blob->has_pending = true;
		return 0;
	default:
		return take_raw(a, d);
	}
}

static int record_md_pages(struct ust_blob *blob, const struct bs_tree *t)
{
	uint32_t i, n = t->nchain + t->nextent;

	blob->md_pages = calloc(n ? n : 1, sizeof(uint32_t));
	if (blob->md_pages == NULL) {
		return -ENOMEM;
	}
	for (i = 0; i < t->nchain; i++) {
		blob->md_pages[i] = t->chain_page[i];
	}
	blob->md_npages = n;
	for (i = 0; i < t->nextent; i++) {
		blob->md_pages[t->nchain + i] = t->extent_page[i];
		bs_ext_set_md_pos(blob, t->extent_no[i], t->nchain + i);
	}
	return 0;
}

int bs_blob_from_tree(struct ust_blob *blob, const struct bs_tree *t, char *msg, size_t msglen)
{
	const uint8_t *pages[UST_BS_MAX_CHAIN_PAGES + 1];
	uint32_t np = tree_desc_pages(t, pages), p, cursor;
	struct assembly a = {.blob = blob, .tree = t, .last_extent_no = -1, .msg = msg,
			     .msglen = msglen};
	struct ust_bs_desc d;
	uint64_t i;
	int rc;

	blob->num_clusters = t->hdr.num_clusters;
	/* How the map is stored is the writer's choice at each sync (bs_md.c). */
	blob->flags = t->hdr.flags & ~UST_BS_BLOB_EXTENT_PAGES;
	blob->parent_id = t->hdr.parent_id;
	blob->ro_compat = t->hdr.ro_compat;
	blob->compat = t->hdr.compat;
	blob->gen = t->hdr.hdr.generation;
	blob->next_gen = blob->gen + 1;
	blob->cur_half = (int)t->hdr.hdr.seq;
	blob->map = calloc(1, sizeof(struct bs_map) + blob->num_clusters * sizeof(uint32_t));
	if (blob->map == NULL) {
		snprintf(msg, msglen, "no memory for a map of %llu clusters",
			 (unsigned long long)blob->num_clusters);
		return -ENOMEM;
	}
	blob->map->len = blob->num_clusters;
	if (t->hdr.flags & UST_BS_BLOB_EXTENT_PAGES) {
		rc = bs_ext_load_begin(blob, (blob->num_clusters + UST_BS_EXTENTS_PER_PAGE - 1) /
						     UST_BS_EXTENTS_PER_PAGE);
		if (rc != 0) {
			snprintf(msg, msglen, "no memory for the extent table");
			return rc;
		}
	}
	for (p = 0; p < np; p++) {
		cursor = 0;
		while ((rc = ust_bs_fmt_desc_next(pages[p], &cursor, &d)) == 1) {
			rc = take_desc(&a, &d);
			if (rc != 0) {
				return rc;
			}
		}
		if (rc < 0) {
			return bad(&a, "malformed descriptor area");
		}
	}
	if (a.open_x != NULL) {
		return bad(&a, "xattr value is missing fragments");
	}
	blob->num_allocated = 0;
	for (i = 0; i < blob->map->len; i++) {
		if (blob->map->c[i] != 0) {
			blob->num_allocated++;
		} else if (!(blob->flags & UST_BS_BLOB_THIN)) {
			return bad(&a, "a thick blob has unallocated clusters");
		}
	}
	return record_md_pages(blob, t);
}
