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
 * The writer always stores the cluster map as run lists (EXTENT_RLE); the
 * reader (bs_tree.c) accepts extent pages too, and rewriting such a blob
 * converts it (its extent pages are released after the commit).
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
	/* I/O threads may still hold old: free it after they have all run. */
	bs_defer_free(blob->bs, old);
	return 0;
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
		s->chain[p->page] = bs_dma_page_alloc(1);
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

static int pack_runs(struct packer *p, const struct ust_bs_extent_run *runs, uint64_t n)
{
	uint64_t i = 0, first = 0, k, j;
	int rc;

	while (i < n) {
		uint32_t room = pack_room(p);

		k = room >= 16 ? (room - 8) / 8 : 0;
		if (k > UST_BS_RLE_PER_CHAIN_PAGE) {
			k = UST_BS_RLE_PER_CHAIN_PAGE;
		}
		if (k > n - i) {
			k = n - i;
		}
		if (k == 0) {
			rc = pack_next_page(p);
			if (rc != 0) {
				return rc;
			}
			continue;
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
		uint32_t room = pack_room(p);
		uint32_t want = x->value_len - off;

		if (room < head + (want > 0 ? 1 : 0)) {
			rc = pack_next_page(p);
			if (rc != 0) {
				return rc;
			}
			continue;
		}
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

	while (pack_room(p) < r->len) {
		rc = pack_next_page(p);
		if (rc != 0) {
			return rc;
		}
	}
	return ust_bs_fmt_add_raw(&p->b, r->type, r->flags, r->body, r->len);
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
		rc = pack_runs(p, runs, nruns);
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
	uint8_t *packed = s->root, *root = bs_dma_page_alloc(1);
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
	bs_dma_free(packed);
	if (rc != 0) {
		return rc < 0 ? rc : -EUCLEAN;
	}
	ust_bs_fmt_page_finish(&b);
	return 0;
}

/* Serialise the blob into s->root and s->chain[], chain pages placed in the pool. */
static int build_pages(struct bs_sync *s)
{
	struct ust_bs_page_ref refs[UST_BS_MAX_CHAIN_PAGES];
	struct ust_bs_extent_run *runs = NULL;
	struct ust_bs_page_builder b;
	struct packer p;
	uint64_t nruns = 0;
	uint32_t n, i;
	int rc = 0;

	if (!s->tombstone) {
		rc = build_runs(s, &runs, &nruns);
		if (rc != 0) {
			return rc;
		}
	}
	for (n = 0; n <= UST_BS_MAX_CHAIN_PAGES; n++) {
		rc = pack_attempt(s, &p, runs, nruns, n);
		if (rc != -ENOSPC) {
			break;
		}
	}
	free(runs);
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
			release_chain_pages(s);
			return -ENOSPC;
		}
		b.page = s->chain[i];
		b.used = s->chain_used[i];
		refs[i].page = s->chain_page[i];
		refs[i].checksum = ust_bs_fmt_page_finish(&b);
	}
	b.page = s->root;
	b.used = p.root_used;
	ust_bs_fmt_page_finish(&b);
	if (s->nchain > 0) {
		rc = root_put_chain_first(s, refs);
		if (rc != 0) {
			release_chain_pages(s);
			return rc;
		}
	}
	return 0;
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

static void sync_free(struct bs_sync *s)
{
	uint32_t i;

	bs_dma_free(s->root);
	for (i = 0; i < UST_BS_MAX_CHAIN_PAGES; i++) {
		bs_dma_free(s->chain[i]);
	}
	free(s->freed);
	free(s);
}

/* The new version is durable: adopt it and release what the old one used. */
static void sync_commit(struct bs_sync *s)
{
	struct ust_blob *blob = s->blob;
	struct ust_blob_store *bs = blob->bs;
	uint32_t *pages;
	uint64_t i;

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
			s->pending++;
			bs_dev_write_pages(bs, s->chain_page[i], 1, s->chain[i], sync_io_done, s);
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
	s->root = bs_dma_page_alloc(1);
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
