/*
 * Writing a blob's metadata: serialising the in-memory blob into a root page
 * and chain pages, and the sync that commits it as a new generation.
 *
 * Guarantees (docs/blobstore-format.md 9.1): chain pages go to pool pages
 * that are free in memory, never to a page the durable version uses; the root
 * goes to the half that does not hold the durable version; one flush after
 * every write has completed commits; pages and clusters the old version used
 * are released only after that flush; one sync per blob is in flight, and
 * requests arriving meanwhile are served together by the next one.
 *
 * A PENDING_OP the blob carries goes first in the root (8.3); a tombstone
 * has no descriptors at all (8.1).
 *
 * The cluster map goes into run lists (EXTENT_RLE) or extent pages
 * (EXTENT_TABLE, flag EXTENT_PAGES; format 8.2, 8.3). Extent pages are used
 * by thin blobs of more than one extent page (1008 clusters) and by any blob
 * whose run lists do not fit. Their table lists every extent page of the
 * blob (a hole page as reference 0), so each page's reference has a fixed
 * place. A sync whose only changes since the durable version are map entries
 * (thin allocations, unmaps) patches: it writes the changed extent pages to
 * free pool pages, copies the durable chain pages holding their references
 * and the durable root, patches the references in place and reseals them,
 * and writes only those (9.1): O(changed pages) work and I/O whatever the
 * blob's size. Any other change re-serialises the blob, reusing every extent
 * page whose entries did not change. Conversion either way is an ordinary
 * new version: the old pages are released only after its commit.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"

#include "blobstore_internal.h"

#define DESC_HDR 8u
/* Room for xattrs the limits check leaves for the map and page slack. */
#define MD_CAPACITY_BYTES                                                                  \
	((uint64_t)UST_BS_ROOT_DESC_MAX + (uint64_t)UST_BS_MAX_CHAIN_PAGES * UST_BS_PAYLOAD_MAX - \
	 (16u + 16u * UST_BS_MAX_CHAIN_PAGES) - (UST_BS_MAX_CHAIN_PAGES + 1u) * 300u)

enum sync_state {
	SYNC_BUILD,
	SYNC_WRITE,
	SYNC_FLUSH,
	SYNC_COMMIT,
};

/* A committing allocation, for overlaying on the published map. */
struct ext_alloc {
	uint64_t index;
	uint32_t cluster;
};

struct bs_sync {
	enum sync_state state;
	struct ust_blob *blob;
	bool tombstone;
	bool flush_only; /* nothing changed: just make the data durable */
	int rc;
	uint32_t pending;
	uint64_t gen;
	int half;
	uint64_t seq; /* blob->change_seq this version captures */
	uint8_t *root;
	uint8_t *chain[UST_BS_MAX_CHAIN_PAGES];
	uint32_t chain_used[UST_BS_MAX_CHAIN_PAGES];
	uint32_t chain_page[UST_BS_MAX_CHAIN_PAGES];
	uint32_t nchain;
	uint32_t *freed; /* clusters this version stops using */
	uint64_t nfreed;
	struct bs_waiter_list waiters;

	/* Extent pages (format 8.2): set when this version uses them. */
	bool ext_mode;
	bool patch;                   /* references patched into the durable pages */
	const struct bs_map *map;     /* the map array this version describes */
	uint64_t len;                 /* its length */
	uint64_t next;                /* extent pages this version lists */
	struct ust_bs_page_ref *refs; /* full build: all next references */
	struct ext_alloc *acl;        /* committing allocations, by index */
	uint64_t nacl;
	uint64_t *taken;              /* dirty marks taken from the blob, sorted */
	uint64_t ntaken;
	bool taken_all;
	uint64_t map_changes;         /* bs_ext.map_changes this version includes */
	/* Extent pages written: number, image, new reference. */
	uint64_t *wk;
	uint8_t **wbuf;
	struct ust_bs_page_ref *wref;
	uint64_t nw, wcap;
	/* Pool pages the durable version uses and this one does not. */
	uint32_t *drop;
	uint64_t ndrop, dropcap;
	/* Full build: the blob's page bookkeeping after the commit, prepared
	 * beforehand so that adopting a durable version cannot fail. */
	uint32_t *md;
	uint32_t nmd;
	uint32_t *md_pos;
	uint8_t *ref_pg;
	uint16_t *ref_off;
	uint32_t chain_ref_off;
};

static void sync_step(struct bs_sync *s);
static void sync_start(struct ust_blob *blob);

/* ---- blob objects ---------------------------------------------------------------- */

void bs_xattr_free(struct bs_xattr *x)
{
	if (x == NULL) {
		return;
	}
	free(x->name);
	free(x->value);
	free(x);
}

struct ust_blob *bs_blob_alloc(struct ust_blob_store *bs, ust_blob_id id)
{
	struct ust_blob *blob = calloc(1, sizeof(*blob));

	if (blob == NULL) {
		return NULL;
	}
	blob->bs = bs;
	blob->id = id;
	blob->slot = ust_bs_blobid_slot(id);
	blob->cur_half = -1;
	TAILQ_INIT(&blob->xattrs);
	TAILQ_INIT(&blob->raw);
	TAILQ_INIT(&blob->queued);
	TAILQ_INIT(&blob->allocs);
	TAILQ_INIT(&blob->frozen_pieces);
	return blob;
}

void bs_blob_free(struct ust_blob *blob)
{
	struct bs_xattr *x;
	struct bs_raw_desc *r;

	while ((x = TAILQ_FIRST(&blob->xattrs)) != NULL) {
		TAILQ_REMOVE(&blob->xattrs, x, link);
		bs_xattr_free(x);
	}
	while ((r = TAILQ_FIRST(&blob->raw)) != NULL) {
		TAILQ_REMOVE(&blob->raw, r, link);
		free(r->body);
		free(r);
	}
	if (blob->map != NULL) {
		bs_defer_free(blob->bs, blob->map);
	}
	bs_ext_free(blob->ext);
	free(blob->md_pages);
	free(blob->freed);
	free(blob);
}

int bs_blob_defer_cluster_free(struct ust_blob *blob, uint32_t cluster)
{
	uint32_t *grown;

	if (blob->nfreed == blob->freed_cap) {
		uint64_t cap = blob->freed_cap ? blob->freed_cap * 2 : 16;

		grown = realloc(blob->freed, cap * sizeof(*grown));
		if (grown == NULL) {
			return -ENOMEM;
		}
		blob->freed = grown;
		blob->freed_cap = cap;
	}
	blob->freed[blob->nfreed++] = cluster;
	return 0;
}

int bs_blob_map_resize(struct ust_blob *blob, uint64_t new_len)
{
	struct bs_map *old = blob->map, *m;
	uint64_t keep = old != NULL && old->len < new_len ? old->len : new_len;
	uint64_t i;

	m = calloc(1, sizeof(*m) + new_len * sizeof(uint32_t));
	if (m == NULL) {
		return -ENOMEM;
	}
	m->len = new_len;
	for (i = 0; old != NULL && i < keep; i++) {
		m->c[i] = bs_map_get(old, i);
	}
	__atomic_store_n(&blob->map, m, __ATOMIC_RELEASE);
	/* The entries both arrays hold are the same: the dirty marks still
	 * apply. The next build sees the length change itself. */
	if (blob->ext != NULL && blob->ext->map_seen == old) {
		blob->ext->map_seen = m;
	}
	/* I/O threads may still hold old: free it after they have all run. */
	bs_defer_free(blob->bs, old);
	return 0;
}

static uint64_t ext_pages_for(uint64_t len)
{
	return (len + UST_BS_EXTENTS_PER_PAGE - 1) / UST_BS_EXTENTS_PER_PAGE;
}

/* ---- serialisation ------------------------------------------------------------------ */

/* Fills pages in descriptor order: the root first, then chain pages 1, 2, ... */
struct packer {
	struct bs_sync *s;
	struct ust_bs_page_builder b;
	uint32_t page;      /* 0: root; k: chain page k */
	uint32_t reserve;   /* root bytes kept for the CHAIN descriptor */
	uint32_t max_chain; /* chain pages this attempt may use */
	uint32_t root_used;
};

static uint32_t pack_room(const struct packer *p)
{
	uint32_t cap = UST_BS_PAYLOAD_MAX - (p->page == 0 ? p->reserve : 0);
	uint32_t left = cap > p->b.used ? cap - p->b.used : 0;

	/* Body bytes: after the descriptor header, rounded down to the padding. */
	return left >= DESC_HDR ? (left - DESC_HDR) & ~7u : 0;
}

static int pack_next_page(struct packer *p)
{
	struct bs_sync *s = p->s;
	struct ust_bs_page_hdr h = {0};

	if (p->page == 0) {
		p->root_used = p->b.used;
	} else {
		s->chain_used[p->page - 1] = p->b.used;
	}
	if (p->page >= p->max_chain) {
		return -ENOSPC;
	}
	if (s->chain[p->page] == NULL) {
		s->chain[p->page] = bs_md_page_get(s->blob->bs);
		if (s->chain[p->page] == NULL) {
			return -ENOMEM;
		}
	}
	h.store_id = s->blob->bs->sb.hdr.store_id;
	h.blob_id = s->blob->id;
	h.generation = s->gen;
	h.seq = p->page + 1;
	ust_bs_fmt_chain_begin(&p->b, s->chain[p->page], &h);
	p->page++;
	return 0;
}

/* Start chain pages until this one has need body bytes free. */
static int pack_make_room(struct packer *p, uint32_t need)
{
	int rc;

	while (pack_room(p) < need) {
		rc = pack_next_page(p);
		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

/*
 * How many of left items (item bytes each, after an 8-byte list header, at
 * most per_page in one descriptor) go into the current page once it holds
 * at least one.
 */
static int pack_fit(struct packer *p, uint32_t item, uint64_t per_page, uint64_t left,
		    uint64_t *k)
{
	int rc;

	rc = pack_make_room(p, 8u + item);
	if (rc != 0) {
		return rc;
	}
	*k = (pack_room(p) - 8u) / item;
	if (*k > per_page) {
		*k = per_page;
	}
	if (*k > left) {
		*k = left;
	}
	return 0;
}

static int pack_runs(struct packer *p, const struct ust_bs_extent_run *runs, uint64_t n)
{
	uint64_t i = 0, first = 0, k, j;
	int rc;

	while (i < n) {
		rc = pack_fit(p, 8u, UST_BS_RLE_PER_CHAIN_PAGE, n - i, &k);
		if (rc != 0) {
			return rc;
		}
		rc = ust_bs_fmt_add_rle(&p->b, first, runs + i, (uint32_t)k);
		if (rc != 0) {
			return rc;
		}
		for (j = 0; j < k; j++) {
			first += runs[i + j].count;
		}
		i += k;
	}
	return 0;
}

/* The whole extent table, every reference at a fixed place (format 8.3). */
static int pack_table(struct packer *p, const struct ust_bs_page_ref *refs, uint64_t n)
{
	uint64_t i = 0, k;
	int rc;

	while (i < n) {
		rc = pack_fit(p, 16u, UST_BS_TABLE_PER_CHAIN_PAGE, n - i, &k);
		if (rc != 0) {
			return rc;
		}
		rc = ust_bs_fmt_add_table(&p->b, i, refs + i, (uint32_t)k);
		if (rc != 0) {
			return rc;
		}
		i += k;
	}
	return 0;
}

static int pack_xattr(struct packer *p, const struct bs_xattr *x)
{
	struct ust_bs_xattr_frag f = {
		.name = (const uint8_t *)x->name,
		.name_len = x->name_len,
		.xflags = x->internal ? UST_BS_XATTR_F_INTERNAL : 0,
		.value_len = x->value_len,
	};
	uint32_t off = 0, head = 16u + x->name_len;
	int rc;

	do {
		uint32_t want = x->value_len - off, room;

		rc = pack_make_room(p, head + (want > 0 ? 1 : 0));
		if (rc != 0) {
			return rc;
		}
		room = pack_room(p);
		f.frag_offset = off;
		f.frag_len = want < room - head ? want : room - head;
		f.data = x->value + off;
		rc = ust_bs_fmt_add_xattr(&p->b, &f);
		if (rc != 0) {
			return rc;
		}
		off += f.frag_len;
	} while (off < x->value_len);
	return 0;
}

static int pack_raw(struct packer *p, const struct bs_raw_desc *r)
{
	int rc;

	rc = pack_make_room(p, r->len);
	if (rc != 0) {
		return rc;
	}
	return ust_bs_fmt_add_raw(&p->b, r->type, r->flags, r->body, r->len);
}

/* ---- extent pages: building a version -------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_acl(const void *a, const void *b)
{
	return cmp_u64(&((const struct ext_alloc *)a)->index, &((const struct ext_alloc *)b)->index);
}

/*
 * Take the blob's dirty marks and its committing allocations (whose pages
 * change too) into the sync. A failed sync gives the marks back.
 */
static int ext_take(struct bs_sync *s)
{
	struct ust_blob *blob = s->blob;
	struct bs_ext *e;
	struct bs_alloc *a;
	uint64_t i, n = 0;

	TAILQ_FOREACH(a, &blob->allocs, link) {
		if (a->state == BS_ALLOC_COMMITTING && a->index < s->len) {
			n++;
		}
	}
	if (n > 0) {
		s->acl = malloc(n * sizeof(*s->acl));
		if (s->acl == NULL) {
			return -ENOMEM;
		}
		TAILQ_FOREACH(a, &blob->allocs, link) {
			if (a->state == BS_ALLOC_COMMITTING && a->index < s->len) {
				s->acl[s->nacl].index = a->index;
				s->acl[s->nacl].cluster = a->cluster;
				s->nacl++;
				bs_ext_mark(blob, a->index / UST_BS_EXTENTS_PER_PAGE);
			}
		}
		if (s->nacl > 1) {
			qsort(s->acl, s->nacl, sizeof(*s->acl), cmp_acl);
		}
	}
	e = blob->ext;
	if (e == NULL) {
		s->taken_all = true;
		return 0;
	}
	s->taken = e->dlist;
	s->ntaken = e->ndirty;
	s->taken_all = e->all_dirty;
	s->map_changes = e->map_changes;
	for (i = 0; i < s->ntaken; i++) {
		bs_bit_clear(e->dirty, s->taken[i]);
	}
	e->dlist = NULL;
	e->ndirty = 0;
	e->dcap = 0;
	e->all_dirty = false;
	if (s->ntaken > 1) {
		qsort(s->taken, s->ntaken, sizeof(*s->taken), cmp_u64);
	}
	return 0;
}

static void ext_give_back(struct bs_sync *s)
{
	struct ust_blob *blob = s->blob;
	uint64_t i;

	for (i = 0; i < s->ntaken; i++) {
		bs_ext_mark(blob, s->taken[i]);
	}
	if (s->taken_all && bs_ext_get(blob) != NULL) {
		blob->ext->all_dirty = true;
	}
}

static bool ext_taken(const struct bs_sync *s, uint64_t k)
{
	uint64_t lo = 0, hi = s->ntaken;

	while (lo < hi) {
		uint64_t mid = (lo + hi) / 2;

		if (s->taken[mid] == k) {
			return true;
		}
		if (s->taken[mid] < k) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return false;
}

/* Entries of extent page k in this version; false when all are holes. */
static bool ext_entries(const struct bs_sync *s, uint64_t k, uint32_t *ent, uint32_t *count)
{
	uint64_t base = k * UST_BS_EXTENTS_PER_PAGE, lo = 0, hi = s->nacl;
	uint32_t n = (uint32_t)(s->len - base < UST_BS_EXTENTS_PER_PAGE ? s->len - base
								: UST_BS_EXTENTS_PER_PAGE);
	bool any = false;
	uint32_t i;

	for (i = 0; i < n; i++) {
		ent[i] = bs_map_get(s->map, base + i);
	}
	while (lo < hi) {
		uint64_t mid = (lo + hi) / 2;

		if (s->acl[mid].index < base) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	for (; lo < s->nacl && s->acl[lo].index < base + n; lo++) {
		ent[s->acl[lo].index - base] = s->acl[lo].cluster;
	}
	for (i = 0; i < n && !any; i++) {
		any = ent[i] != 0;
	}
	*count = n;
	return any;
}

static int drop_add(struct bs_sync *s, uint32_t page)
{
	if (s->ndrop == s->dropcap) {
		uint64_t cap = s->dropcap ? s->dropcap * 2 : 16;
		uint32_t *grown = realloc(s->drop, cap * sizeof(*grown));

		if (grown == NULL) {
			return -ENOMEM;
		}
		s->drop = grown;
		s->dropcap = cap;
	}
	s->drop[s->ndrop++] = page;
	return 0;
}

/* Write extent page k of this version to a free pool page: *ref names it. */
static int ext_write_page(struct bs_sync *s, uint64_t k, const uint32_t *ent, uint32_t count,
			  struct ust_bs_page_ref *ref)
{
	struct ust_blob *blob = s->blob;
	struct ust_bs_page_hdr h = {0};
	uint8_t *buf;
	uint32_t page;

	if (s->nw == s->wcap) {
		uint64_t cap = s->wcap ? s->wcap * 2 : 8;
		uint64_t *wk = realloc(s->wk, cap * sizeof(*wk));
		uint8_t **wbuf;
		struct ust_bs_page_ref *wref;

		if (wk == NULL) {
			return -ENOMEM;
		}
		s->wk = wk;
		wbuf = realloc(s->wbuf, cap * sizeof(*wbuf));
		if (wbuf == NULL) {
			return -ENOMEM;
		}
		s->wbuf = wbuf;
		wref = realloc(s->wref, cap * sizeof(*wref));
		if (wref == NULL) {
			return -ENOMEM;
		}
		s->wref = wref;
		s->wcap = cap;
	}
	buf = bs_dma_page_alloc(1);
	if (buf == NULL) {
		return -ENOMEM;
	}
	page = bs_page_alloc(blob->bs);
	if (page == 0) {
		bs_dma_free(buf);
		UST_ERRLOG("blob 0x%llx: the metadata page pool is full\n", (unsigned long long)blob->id);
		return -ENOSPC;
	}
	h.store_id = blob->bs->sb.hdr.store_id;
	h.blob_id = blob->id;
	h.generation = s->gen;
	h.seq = (uint32_t)k;
	ust_bs_fmt_extent_encode(buf, &h, ent, count);
	ref->page = page;
	ref->checksum = ust_bs_fmt_page_checksum(buf);
	s->wk[s->nw] = k;
	s->wbuf[s->nw] = buf;
	s->wref[s->nw] = *ref;
	s->nw++;
	return 0;
}

/*
 * Full build: the references of every extent page of this version. A page
 * the durable version has and whose entries did not change is referenced
 * again as it is (9.1 rule 1); changed ones are written anew, and pages left
 * with only holes are dropped.
 */
static int ext_build_refs(struct bs_sync *s)
{
	struct ust_blob *blob = s->blob;
	const struct bs_ext *e = blob->ext;
	uint32_t ent[UST_BS_EXTENTS_PER_PAGE], count;
	uint64_t k, from;
	bool reuse;
	int rc;

	s->next = ext_pages_for(s->len);
	s->refs = calloc(s->next ? s->next : 1, sizeof(*s->refs));
	if (s->refs == NULL || bs_ext_get(blob) == NULL) {
		return -ENOMEM;
	}
	reuse = e != NULL && e->n > 0 && e->md_pos != NULL && !s->taken_all && e->map_seen == s->map &&
		blob->cur_half >= 0;
	/* A length change alters the pages from the old or new end on. */
	from = !reuse ? 0 : e->len == s->len ? s->next
					     : (e->len < s->len ? e->len : s->len) / UST_BS_EXTENTS_PER_PAGE;
	for (k = 0; k < s->next; k++) {
		if (k < from && !ext_taken(s, k)) {
			s->refs[k] = e->ref[k];
			continue;
		}
		if (!ext_entries(s, k, ent, &count)) {
			continue;
		}
		rc = ext_write_page(s, k, ent, count, &s->refs[k]);
		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

/* Every durable pool page this version no longer references (full build). */
static int ext_build_drop(struct bs_sync *s)
{
	struct ust_blob *blob = s->blob;
	const struct bs_ext *e = blob->ext;
	uint8_t *keep = calloc(blob->md_npages ? blob->md_npages : 1, 1);
	uint64_t k;
	uint32_t i;
	int rc = 0;

	if (keep == NULL) {
		return -ENOMEM;
	}
	for (k = 0; e != NULL && e->md_pos != NULL && k < e->n && k < s->next; k++) {
		if (e->ref[k].page != 0 && s->refs[k].page == e->ref[k].page &&
		    e->md_pos[k] < blob->md_npages) {
			keep[e->md_pos[k]] = 1;
		}
	}
	for (i = 0; i < blob->md_npages && rc == 0; i++) {
		if (!keep[i]) {
			rc = drop_add(s, blob->md_pages[i]);
		}
	}
	free(keep);
	return rc;
}

/*
 * Full build: where each table reference and the chain references sit in
 * the finished pages, and the blob's page list after the commit (chain
 * pages first, then extent pages in order).
 */
static int ext_build_layout(struct bs_sync *s)
{
	const uint8_t *pages[UST_BS_MAX_CHAIN_PAGES + 1];
	struct ust_bs_desc d;
	uint32_t p, j, cursor, n = s->nchain;
	uint64_t k;

	s->md_pos = calloc(s->next ? s->next : 1, sizeof(*s->md_pos));
	s->ref_pg = calloc(s->next ? s->next : 1, sizeof(*s->ref_pg));
	s->ref_off = calloc(s->next ? s->next : 1, sizeof(*s->ref_off));
	s->md = calloc((size_t)s->nchain + s->next + 1, sizeof(*s->md));
	if (s->md_pos == NULL || s->ref_pg == NULL || s->ref_off == NULL || s->md == NULL) {
		return -ENOMEM;
	}
	memcpy(s->md, s->chain_page, s->nchain * sizeof(uint32_t));
	for (k = 0; k < s->next; k++) {
		if (s->refs[k].page != 0) {
			s->md_pos[k] = n;
			s->md[n++] = s->refs[k].page;
		}
	}
	s->nmd = n;
	pages[0] = s->root;
	for (p = 0; p < s->nchain; p++) {
		pages[p + 1] = s->chain[p];
	}
	for (p = 0; p <= s->nchain; p++) {
		cursor = 0;
		while (ust_bs_fmt_desc_next(pages[p], &cursor, &d) == 1) {
			uint32_t body = (uint32_t)(d.body - pages[p]);

			if (d.type == UST_BS_DESC_CHAIN) {
				s->chain_ref_off = body + 8u;
			}
			if (d.type != UST_BS_DESC_EXTENT_TABLE) {
				continue;
			}
			for (j = 0; j < ust_bs_fmt_desc_count(&d); j++) {
				k = ust_bs_fmt_desc_first(&d) + j;
				s->ref_pg[k] = (uint8_t)p;
				s->ref_off[k] = (uint16_t)(body + 8u + 16u * j);
			}
		}
	}
	return 0;
}

/*
 * Only map entries changed since the durable version, and this writer built
 * that version: patch it instead of re-serialising (see the file comment).
 */
static bool ext_can_patch(const struct bs_sync *s)
{
	const struct ust_blob *blob = s->blob;
	const struct bs_ext *e = blob->ext;

	return !s->tombstone && e != NULL && e->patchable && !s->taken_all && blob->cur_half >= 0 &&
	       e->map_seen == s->map && e->len == s->len &&
	       blob->change_seq - blob->synced_seq == s->map_changes;
}

/* A private copy of durable chain page i, placed on a free pool page. */
static uint8_t *ext_chain_copy(struct bs_sync *s, uint32_t i)
{
	const struct bs_ext *e = s->blob->ext;

	if (s->chain[i] != NULL && s->chain_page[i] != 0) {
		return s->chain[i];
	}
	if (s->chain[i] == NULL) {
		s->chain[i] = bs_md_page_get(s->blob->bs);
		if (s->chain[i] == NULL) {
			return NULL;
		}
	}
	s->chain_page[i] = bs_page_alloc(s->blob->bs);
	if (s->chain_page[i] == 0) {
		UST_ERRLOG("blob 0x%llx: the metadata page pool is full\n",
			   (unsigned long long)s->blob->id);
		return NULL;
	}
	memcpy(s->chain[i], e->chain[i], UST_BS_PAGE_SIZE);
	return s->chain[i];
}

static int ext_build_patch(struct bs_sync *s)
{
	struct ust_blob *blob = s->blob;
	struct bs_ext *e = blob->ext;
	uint32_t ent[UST_BS_EXTENTS_PER_PAGE], count, i, appends = 0;
	struct ust_bs_page_ref ref;
	uint64_t t, k;
	uint8_t *page;
	int rc;

	s->patch = true;
	s->ext_mode = true;
	s->next = e->n;
	s->nchain = e->nchain;
	memcpy(s->root, e->root, UST_BS_PAGE_SIZE);
	for (t = 0; t < s->ntaken; t++) {
		k = s->taken[t];
		if (k >= e->n) {
			continue;
		}
		/* A page that held clusters stays (maybe all holes) so that its
		 * place in blob->md_pages stays put; a full build drops it. */
		if (!ext_entries(s, k, ent, &count) && e->ref[k].page == 0) {
			continue;
		}
		rc = ext_write_page(s, k, ent, count, &ref);
		if (rc != 0) {
			return rc;
		}
		if (e->ref[k].page != 0) {
			rc = drop_add(s, e->ref[k].page);
			if (rc != 0) {
				return rc;
			}
		} else {
			appends++;
		}
		page = e->ref_pg[k] == 0 ? s->root : ext_chain_copy(s, e->ref_pg[k] - 1u);
		if (page == NULL) {
			return s->chain[e->ref_pg[k] - 1u] == NULL ? -ENOMEM : -ENOSPC;
		}
		ust_bs_fmt_put_ref(page, e->ref_off[k], &ref);
	}
	for (i = 0; i < s->nchain; i++) {
		if (s->chain_page[i] == 0) {
			continue;
		}
		rc = drop_add(s, e->chain_page[i]);
		if (rc != 0) {
			return rc;
		}
		ref.page = s->chain_page[i];
		ref.checksum = ust_bs_fmt_page_reseal(s->chain[i], s->gen, i + 1);
		ust_bs_fmt_put_ref(s->root, e->chain_ref_off + 16u * i, &ref);
	}
	ust_bs_fmt_page_reseal(s->root, s->gen, (uint32_t)s->half);
	/* Room for the new pages in blob->md_pages now: the commit cannot fail. */
	if (blob->md_npages + appends > e->md_cap) {
		uint32_t cap = (blob->md_npages + appends) * 2;
		uint32_t *grown = realloc(blob->md_pages, cap * sizeof(*grown));

		if (grown == NULL) {
			return -ENOMEM;
		}
		blob->md_pages = grown;
		e->md_cap = cap;
	}
	return 0;
}

/* The map this version writes: published entries plus committing allocations. */
static int build_runs(struct bs_sync *s, struct ust_bs_extent_run **out, uint64_t *nout)
{
	struct ust_blob *blob = s->blob;
	const struct bs_map *m = blob->map;
	struct ust_bs_extent_run *runs = NULL, *grown;
	uint64_t i, n = 0, cap = 0, end = m->len;
	struct bs_alloc *a;
	uint32_t *tmp;

	tmp = malloc((m->len ? m->len : 1) * sizeof(uint32_t));
	if (tmp == NULL) {
		return -ENOMEM;
	}
	for (i = 0; i < m->len; i++) {
		tmp[i] = bs_map_get(m, i);
	}
	TAILQ_FOREACH(a, &blob->allocs, link) {
		if (a->state == BS_ALLOC_COMMITTING && a->index < m->len) {
			tmp[a->index] = a->cluster;
		}
	}
	/* Trailing holes are implicit (format 8.4). */
	while (end > 0 && tmp[end - 1] == 0) {
		end--;
	}
	for (i = 0; i < end; i++) {
		bool extends = n > 0 &&
			       ((runs[n - 1].cluster == 0 && tmp[i] == 0) ||
				(runs[n - 1].cluster != 0 && tmp[i] == runs[n - 1].cluster + runs[n - 1].count)) &&
			       runs[n - 1].count < UINT32_MAX;

		if (extends) {
			runs[n - 1].count++;
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			grown = realloc(runs, cap * sizeof(*runs));
			if (grown == NULL) {
				free(runs);
				free(tmp);
				return -ENOMEM;
			}
			runs = grown;
		}
		runs[n].cluster = tmp[i];
		runs[n].count = 1;
		n++;
	}
	free(tmp);
	*out = runs;
	*nout = n;
	return 0;
}

static void root_begin(struct bs_sync *s, struct ust_bs_page_builder *b)
{
	struct ust_blob *blob = s->blob;
	struct ust_bs_root r = {0};

	r.hdr.store_id = blob->bs->sb.hdr.store_id;
	r.hdr.blob_id = blob->id;
	r.hdr.generation = s->gen;
	r.hdr.seq = (uint32_t)s->half;
	if (s->tombstone) {
		r.flags = UST_BS_BLOB_TOMBSTONE;
	} else {
		r.num_clusters = blob->num_clusters;
		r.parent_id = blob->parent_id;
		r.flags = blob->flags & ~UST_BS_BLOB_EXTENT_PAGES;
		if (s->ext_mode) {
			r.flags |= UST_BS_BLOB_EXTENT_PAGES;
		}
		r.ro_compat = blob->ro_compat;
		r.compat = blob->compat;
	}
	ust_bs_fmt_root_begin(b, s->root, &r);
}

/* One packing attempt with room for max_chain chain pages. */
static int pack_attempt(struct bs_sync *s, struct packer *p, const struct ust_bs_extent_run *runs,
			uint64_t nruns, uint32_t max_chain)
{
	struct ust_blob *blob = s->blob;
	struct bs_xattr *x;
	struct bs_raw_desc *r;
	int rc;

	memset(p, 0, sizeof(*p));
	p->s = s;
	p->max_chain = max_chain;
	p->reserve = max_chain ? DESC_HDR + 8u + 16u * max_chain : 0;
	root_begin(s, &p->b);
	rc = 0;
	if (!s->tombstone && blob->has_pending) {
		/* Root only (8.3); first, so it never separates xattr fragments. */
		rc = ust_bs_fmt_add_pending(&p->b, &blob->pending);
	}
	if (rc == 0) {
		rc = s->ext_mode ? pack_table(p, s->refs, s->next) : pack_runs(p, runs, nruns);
	}
	/* A tombstone has no descriptors at all (8.1): not the xattrs either. */
	TAILQ_FOREACH(x, &blob->xattrs, link) {
		if (rc == 0 && !s->tombstone) {
			rc = pack_xattr(p, x);
		}
	}
	TAILQ_FOREACH(r, &blob->raw, link) {
		if (rc == 0 && !s->tombstone) {
			rc = pack_raw(p, r);
		}
	}
	if (rc != 0) {
		return rc;
	}
	if (p->page == 0) {
		p->root_used = p->b.used;
	} else {
		s->chain_used[p->page - 1] = p->b.used;
	}
	s->nchain = p->page;
	return 0;
}

static void release_chain_pages(struct bs_sync *s)
{
	uint32_t i;

	for (i = 0; i < s->nchain; i++) {
		if (s->chain_page[i] != 0) {
			bs_page_free(s->blob->bs, s->chain_page[i]);
			s->chain_page[i] = 0;
		}
	}
}

/*
 * The CHAIN descriptor goes first in the root, so that the descriptors that
 * carry content (runs, xattr fragments) follow each other without anything
 * in between, in root and chain pages alike (format 8.4).
 */
static int root_put_chain_first(struct bs_sync *s, const struct ust_bs_page_ref *refs)
{
	uint8_t *packed = s->root, *root = bs_md_page_get(s->blob->bs);
	struct ust_bs_page_builder b;
	struct ust_bs_desc d;
	uint32_t cursor = 0;
	int rc;

	if (root == NULL) {
		return -ENOMEM;
	}
	s->root = root;
	root_begin(s, &b);
	rc = ust_bs_fmt_add_chain(&b, refs, s->nchain);
	while (rc == 0 && (rc = ust_bs_fmt_desc_next(packed, &cursor, &d)) == 1) {
		rc = ust_bs_fmt_add_raw(&b, d.type, d.flags, d.body, d.len);
	}
	bs_md_page_put(s->blob->bs, packed);
	if (rc != 0) {
		return rc < 0 ? rc : -EUCLEAN;
	}
	ust_bs_fmt_page_finish(&b);
	return 0;
}

/* Pack with the fewest chain pages that hold everything. */
static int pack_all(struct bs_sync *s, struct packer *p, const struct ust_bs_extent_run *runs,
		    uint64_t nruns)
{
	uint32_t n;
	int rc = -ENOSPC;

	for (n = 0; n <= UST_BS_MAX_CHAIN_PAGES && rc == -ENOSPC; n++) {
		rc = pack_attempt(s, p, runs, nruns, n);
	}
	return rc;
}

/*
 * Extent pages for thin blobs of more than one extent page (their maps
 * change on the write path) and for any blob whose run lists do not fit.
 */
static bool want_extent_pages(const struct bs_sync *s)
{
	return (s->blob->flags & UST_BS_BLOB_THIN) && s->len > UST_BS_EXTENTS_PER_PAGE;
}

/* Serialise the blob into s->root and s->chain[], chain pages placed in the pool. */
static int build_pages(struct bs_sync *s)
{
	struct ust_bs_page_ref refs[UST_BS_MAX_CHAIN_PAGES];
	struct ust_bs_extent_run *runs = NULL;
	struct ust_bs_page_builder b;
	struct packer p;
	uint64_t nruns = 0;
	uint32_t i;
	int rc = 0;

	if (!s->tombstone) {
		s->map = s->blob->map;
		s->len = s->map->len;
		rc = ext_take(s);
		if (rc != 0) {
			return rc;
		}
		if (ext_can_patch(s)) {
			return ext_build_patch(s);
		}
		s->ext_mode = want_extent_pages(s);
		if (!s->ext_mode) {
			rc = build_runs(s, &runs, &nruns);
			if (rc != 0) {
				return rc;
			}
		}
	}
	rc = s->ext_mode ? -ENOSPC : pack_all(s, &p, runs, nruns);
	free(runs);
	if (rc == -ENOSPC && !s->tombstone && !s->ext_mode) {
		s->ext_mode = true;
	}
	if (s->ext_mode) {
		rc = ext_build_refs(s);
		if (rc == 0) {
			rc = ext_build_drop(s);
		}
		if (rc == 0) {
			rc = pack_all(s, &p, NULL, 0);
		}
	}
	if (rc != 0) {
		if (rc == -ENOSPC) {
			UST_ERRLOG("blob 0x%llx: metadata does not fit in the root and %u chain pages\n",
				   (unsigned long long)s->blob->id, UST_BS_MAX_CHAIN_PAGES);
		}
		return rc;
	}
	for (i = 0; i < s->nchain; i++) {
		s->chain_page[i] = bs_page_alloc(s->blob->bs);
		if (s->chain_page[i] == 0) {
			UST_ERRLOG("blob 0x%llx: the metadata page pool is full\n",
				   (unsigned long long)s->blob->id);
			return -ENOSPC;
		}
		b.page = s->chain[i];
		b.used = s->chain_used[i];
		refs[i].page = s->chain_page[i];
		refs[i].checksum = ust_bs_fmt_page_finish(&b);
	}
	b.page = s->root;
	b.used = p.root_used;
	if (s->nchain > 0) {
		/* rebuilt around the chain's references and sealed there: no checksum yet */
		ust_bs_fmt_page_set_len(&b);
		rc = root_put_chain_first(s, refs);
		if (rc != 0) {
			return rc;
		}
	} else {
		ust_bs_fmt_page_finish(&b);
	}
	return s->ext_mode ? ext_build_layout(s) : 0;
}

uint64_t bs_blob_md_bytes(const struct ust_blob *blob)
{
	const struct bs_xattr *x;
	const struct bs_raw_desc *r;
	uint64_t bytes = 0;

	TAILQ_FOREACH(x, &blob->xattrs, link) {
		bytes += DESC_HDR + 16u + x->name_len + x->value_len + 8u;
	}
	TAILQ_FOREACH(r, &blob->raw, link) {
		bytes += DESC_HDR + r->len + 8u;
	}
	return bytes;
}

bool bs_blob_md_fits(const struct ust_blob *blob)
{
	return bs_blob_md_bytes(blob) <= MD_CAPACITY_BYTES;
}

/* ---- the sync step machine --------------------------------------------------------- */

static void sync_io_done(void *arg, int rc)
{
	struct bs_sync *s = arg;

	if (rc != 0 && s->rc == 0) {
		s->rc = rc;
	}
	if (--s->pending == 0) {
		sync_step(s);
	}
}

/*
 * The built pages the commit did not adopt, back to the store's cache while
 * the blob is known to be alive: sync_finish's waiters may close it.
 */
static void sync_put_pages(struct bs_sync *s)
{
	struct ust_blob_store *bs = s->blob->bs;
	uint32_t i;

	bs_md_page_put(bs, s->root);
	s->root = NULL;
	for (i = 0; i < UST_BS_MAX_CHAIN_PAGES; i++) {
		bs_md_page_put(bs, s->chain[i]);
		s->chain[i] = NULL;
	}
}

/* Everything but the root and chain pages, which sync_put_pages returned before. */
static void sync_free(struct bs_sync *s)
{
	uint64_t i;

	for (i = 0; i < s->nw; i++) {
		bs_dma_free(s->wbuf[i]);
	}
	free(s->wk);
	free(s->wbuf);
	free(s->wref);
	free(s->refs);
	free(s->acl);
	free(s->taken);
	free(s->drop);
	free(s->md);
	free(s->md_pos);
	free(s->ref_pg);
	free(s->ref_off);
	free(s->freed);
	free(s);
}

/* A full build in extent pages is durable: its bookkeeping becomes the blob's. */
static void ext_adopt_full(struct bs_sync *s)
{
	struct ust_blob *blob = s->blob;
	struct bs_ext *e = blob->ext;
	uint32_t i;

	free(blob->md_pages);
	blob->md_pages = s->md;
	blob->md_npages = s->nmd;
	s->md = NULL;
	bs_ext_table_drop(e);
	e->md_cap = s->nchain + (uint32_t)s->next + 1;
	e->n = s->next;
	e->len = s->len;
	e->ref = s->refs;
	e->md_pos = s->md_pos;
	e->ref_pg = s->ref_pg;
	e->ref_off = s->ref_off;
	s->refs = NULL;
	s->md_pos = NULL;
	s->ref_pg = NULL;
	s->ref_off = NULL;
	e->root = s->root;
	s->root = NULL;
	for (i = 0; i < s->nchain; i++) {
		e->chain[i] = s->chain[i];
		e->chain_page[i] = s->chain_page[i];
		s->chain[i] = NULL;
	}
	e->nchain = s->nchain;
	e->chain_ref_off = s->chain_ref_off;
	e->patchable = true;
}

/* A patched version is durable: swap in its pages. */
static void ext_adopt_patch(struct bs_sync *s)
{
	struct ust_blob *blob = s->blob;
	struct bs_ext *e = blob->ext;
	uint8_t *old;
	uint64_t i, k;

	for (i = 0; i < s->nw; i++) {
		k = s->wk[i];
		if (e->ref[k].page != 0) {
			blob->md_pages[e->md_pos[k]] = s->wref[i].page;
		} else {
			/* ext_build_patch made room. */
			e->md_pos[k] = blob->md_npages;
			blob->md_pages[blob->md_npages++] = s->wref[i].page;
		}
		e->ref[k] = s->wref[i];
	}
	for (i = 0; i < s->nchain; i++) {
		if (s->chain_page[i] == 0) {
			continue;
		}
		blob->md_pages[i] = s->chain_page[i];
		e->chain_page[i] = s->chain_page[i];
		old = e->chain[i];
		e->chain[i] = s->chain[i];
		s->chain[i] = old;
	}
	old = e->root;
	e->root = s->root;
	s->root = old;
}

/* The new version is durable: adopt it and release what the old one used. */
static void sync_commit(struct bs_sync *s)
{
	struct ust_blob *blob = s->blob;
	struct ust_blob_store *bs = blob->bs;
	uint32_t *pages;
	uint64_t i;

	if (s->ext_mode) {
		/* The pages the old version alone used (ext_build_drop/patch). */
		for (i = 0; i < s->ndrop; i++) {
			bs_page_free(bs, s->drop[i]);
		}
		if (s->patch) {
			ext_adopt_patch(s);
		} else {
			ext_adopt_full(s);
		}
		blob->ext->map_seen = s->map;
	} else {
		for (i = 0; i < blob->md_npages; i++) {
			bs_page_free(bs, blob->md_pages[i]);
		}
		pages = realloc(blob->md_pages, (s->nchain ? s->nchain : 1) * sizeof(uint32_t));
		if (pages != NULL) {
			blob->md_pages = pages;
			memcpy(pages, s->chain_page, s->nchain * sizeof(uint32_t));
			blob->md_npages = s->nchain;
		} else {
			/* Keep the pages marked used (leaked until the next dirty load). */
			UST_ERRLOG("blob 0x%llx: out of memory tracking metadata pages\n",
				   (unsigned long long)blob->id);
			blob->md_npages = 0;
		}
		if (blob->ext != NULL) {
			bs_ext_table_drop(blob->ext);
			blob->ext->map_seen = s->map;
		}
	}
	if (blob->ext != NULL) {
		blob->ext->map_changes -= s->map_changes;
	}
	for (i = 0; i < s->nfreed; i++) {
		bs_cluster_free(bs, s->freed[i]);
	}
	blob->gen = s->gen;
	blob->cur_half = s->half;
	blob->synced_seq = s->seq;
}

/* The sync failed: nothing is released, the in-memory changes stay pending. */
static void sync_abort(struct bs_sync *s)
{
	struct ust_blob *blob = s->blob;
	uint64_t i;

	release_chain_pages(s);
	for (i = 0; i < s->nw; i++) {
		bs_page_free(blob->bs, s->wref[i].page);
	}
	if (!s->tombstone) {
		ext_give_back(s);
	}
	for (i = 0; i < s->nfreed; i++) {
		if (bs_blob_defer_cluster_free(blob, s->freed[i]) != 0) {
			UST_ERRLOG("blob 0x%llx: cluster %u leaked until the next recovery\n",
				   (unsigned long long)blob->id, s->freed[i]);
		}
	}
}

static void sync_finish(struct bs_sync *s)
{
	struct ust_blob *blob = s->blob;
	struct bs_waiter *w;
	int rc = s->rc;

	if (s->flush_only) {
		/* nothing to adopt */
	} else if (rc == 0) {
		sync_commit(s);
	} else {
		UST_ERRLOG("blob 0x%llx: metadata sync failed: %s\n", (unsigned long long)blob->id,
			   strerror(-rc));
		sync_abort(s);
	}
	sync_put_pages(s);
	blob->sync = NULL;
	if (!s->tombstone) {
		bs_allocs_committed(blob, rc);
		/* Requests that queued meanwhile get the next generation. The
		 * blob stays alive while a sync is in flight, so start it before
		 * the waiters run (one of them may be a close that frees it). */
		sync_start(blob);
	}
	while ((w = TAILQ_FIRST(&s->waiters)) != NULL) {
		TAILQ_REMOVE(&s->waiters, w, link);
		w->fn(w->arg, rc);
		free(w);
	}
	sync_free(s);
}

static void sync_step(struct bs_sync *s)
{
	struct ust_blob *blob = s->blob;
	struct ust_blob_store *bs = blob->bs;
	uint64_t w;
	uint32_t i;
	int rc;

	if (s->rc != 0 && s->state != SYNC_COMMIT) {
		s->state = SYNC_COMMIT;
	}
	switch (s->state) {
	case SYNC_BUILD:
		if (s->flush_only) {
			s->state = SYNC_FLUSH;
			sync_step(s);
			return;
		}
		rc = build_pages(s);
		if (rc != 0) {
			s->rc = rc;
			s->state = SYNC_COMMIT;
			sync_step(s);
			return;
		}
		s->state = SYNC_WRITE;
		sync_step(s);
		break;
	case SYNC_WRITE:
		/* Root and chain pages together, in any order (9.1 rule 3). */
		s->state = SYNC_FLUSH;
		s->pending = 2;
		bs_dev_write_pages(bs, bs_root_page(bs, blob->slot, s->half), 1, s->root, sync_io_done, s);
		for (i = 0; i < s->nchain; i++) {
			/* A patched version rewrites only the chain pages it changed. */
			if (s->chain_page[i] != 0) {
				s->pending++;
				bs_dev_write_pages(bs, s->chain_page[i], 1, s->chain[i], sync_io_done, s);
			}
		}
		for (w = 0; w < s->nw; w++) {
			s->pending++;
			bs_dev_write_pages(bs, s->wref[w].page, 1, s->wbuf[w], sync_io_done, s);
		}
		sync_io_done(s, 0);
		break;
	case SYNC_FLUSH:
		/* Issued only after every write completed: the commit point. */
		s->state = SYNC_COMMIT;
		s->pending = 1;
		bs_dev_flush(bs, sync_io_done, s);
		break;
	case SYNC_COMMIT:
		sync_finish(s);
		break;
	}
}

static struct bs_sync *sync_new(struct ust_blob *blob, bool tombstone)
{
	struct bs_sync *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		return NULL;
	}
	s->root = bs_md_page_get(blob->bs);
	if (s->root == NULL) {
		free(s);
		return NULL;
	}
	s->blob = blob;
	s->tombstone = tombstone;
	s->state = SYNC_BUILD;
	s->gen = blob->next_gen++;
	s->half = blob->cur_half < 0 ? 0 : 1 - blob->cur_half;
	s->seq = blob->change_seq;
	TAILQ_INIT(&s->waiters);
	return s;
}

static void waiters_fail(struct bs_waiter_list *list, int rc)
{
	struct bs_waiter *w;

	while ((w = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, w, link);
		w->fn(w->arg, rc);
		free(w);
	}
}

static void sync_start(struct ust_blob *blob)
{
	struct bs_sync *s;
	struct bs_alloc *a;
	bool changed;

	if (blob->sync != NULL || TAILQ_EMPTY(&blob->queued)) {
		return;
	}
	s = sync_new(blob, false);
	if (s == NULL) {
		waiters_fail(&blob->queued, -ENOMEM);
		return;
	}
	TAILQ_CONCAT(&s->waiters, &blob->queued, link);
	/* Everything changed so far rides on this generation (9.1 rule 6). */
	changed = blob->cur_half < 0 || blob->change_seq != blob->synced_seq || blob->nfreed != 0;
	TAILQ_FOREACH(a, &blob->allocs, link) {
		if (a->state == BS_ALLOC_FILLED) {
			a->state = BS_ALLOC_COMMITTING;
			changed = true;
		}
	}
	if (!changed) {
		s->flush_only = true;
		blob->next_gen--;
	}
	s->freed = blob->freed;
	s->nfreed = blob->nfreed;
	blob->freed = NULL;
	blob->nfreed = 0;
	blob->freed_cap = 0;
	blob->sync = s;
	sync_step(s);
}

void bs_blob_sync(struct ust_blob *blob, bs_done_fn done, void *arg)
{
	struct bs_waiter *w = calloc(1, sizeof(*w));

	if (w == NULL) {
		done(arg, -ENOMEM);
		return;
	}
	if (blob->md_read_only) {
		free(w);
		done(arg, -EPERM);
		return;
	}
	w->fn = done;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&blob->queued, w, link);
	sync_start(blob);
}

void bs_blob_write_tombstone(struct ust_blob *blob, bs_done_fn done, void *arg)
{
	struct bs_waiter *w = calloc(1, sizeof(*w));
	struct bs_sync *s;

	if (w == NULL || blob->sync != NULL) {
		free(w);
		done(arg, w == NULL ? -ENOMEM : -EBUSY);
		return;
	}
	s = sync_new(blob, true);
	if (s == NULL) {
		free(w);
		done(arg, -ENOMEM);
		return;
	}
	w->fn = done;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&s->waiters, w, link);
	blob->sync = s;
	sync_step(s);
}
