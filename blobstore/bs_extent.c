/*
 * What the metadata writer remembers of a blob's extent pages between syncs
 * (struct bs_ext, docs/blobstore-format.md 9.1.1): the durable version's
 * extent references and where they sit in blob->md_pages (recorded by the
 * loader, bs_tree.c, or adopted from a committed sync, bs_md.c), and which
 * extent pages changed in memory since.
 *
 * Guarantees: a change that cannot be recorded (no memory) degrades to
 * rewriting every extent page at the next sync, never to a lost change;
 * marking a page costs O(1) amortised, whatever the size of the blob.
 * Metadata thread only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blobstore_internal.h"

/* Forget the durable page images: the next sync re-serialises. */
static void ext_layout_drop(struct bs_ext *e)
{
	uint32_t i;

	bs_dma_free(e->root);
	e->root = NULL;
	for (i = 0; i < UST_BS_MAX_CHAIN_PAGES; i++) {
		bs_dma_free(e->chain[i]);
		e->chain[i] = NULL;
		e->chain_page[i] = 0;
	}
	free(e->ref_pg);
	free(e->ref_off);
	e->ref_pg = NULL;
	e->ref_off = NULL;
	e->nchain = 0;
	e->patchable = false;
}

/* The durable version uses run lists: nothing of extent pages to keep. */
void bs_ext_table_drop(struct bs_ext *e)
{
	ext_layout_drop(e);
	free(e->ref);
	free(e->md_pos);
	e->ref = NULL;
	e->md_pos = NULL;
	e->n = 0;
	e->len = 0;
}

void bs_ext_free(struct bs_ext *e)
{
	if (e == NULL) {
		return;
	}
	bs_ext_table_drop(e);
	free(e->dirty);
	free(e->dlist);
	free(e);
}

struct bs_ext *bs_ext_get(struct ust_blob *blob)
{
	if (blob->ext == NULL) {
		blob->ext = calloc(1, sizeof(*blob->ext));
		if (blob->ext != NULL) {
			blob->ext->map_seen = blob->map;
		}
	}
	return blob->ext;
}

/*
 * Extent page k's entries may differ from the durable version. Failing to
 * record it (no memory) degrades to rewriting every page, never to losing
 * the change; with no state at all the next build rewrites everything too.
 */
void bs_ext_mark(struct ust_blob *blob, uint64_t k)
{
	struct bs_ext *e = bs_ext_get(blob);

	if (e == NULL || e->all_dirty) {
		return;
	}
	if (k >= e->dirty_bits) {
		uint64_t bits = e->dirty_bits ? e->dirty_bits * 2 : 64;
		uint8_t *grown;

		if (bits <= k) {
			bits = (k + 64) & ~(uint64_t)63;
		}
		grown = realloc(e->dirty, bits / 8);
		if (grown == NULL) {
			e->all_dirty = true;
			return;
		}
		memset(grown + e->dirty_bits / 8, 0, (bits - e->dirty_bits) / 8);
		e->dirty = grown;
		e->dirty_bits = bits;
	}
	if (bs_bit_get(e->dirty, k)) {
		return;
	}
	if (e->ndirty == e->dcap) {
		uint64_t cap = e->dcap ? e->dcap * 2 : 16;
		uint64_t *grown = realloc(e->dlist, cap * sizeof(*grown));

		if (grown == NULL) {
			e->all_dirty = true;
			return;
		}
		e->dlist = grown;
		e->dcap = cap;
	}
	bs_bit_set(e->dirty, k);
	e->dlist[e->ndirty++] = k;
}

void bs_blob_map_changed(struct ust_blob *blob, uint64_t index)
{
	bs_ext_mark(blob, index / UST_BS_EXTENTS_PER_PAGE);
	if (blob->ext != NULL) {
		blob->ext->map_changes++;
	}
}

int bs_ext_load_begin(struct ust_blob *blob, uint64_t n)
{
	struct bs_ext *e = bs_ext_get(blob);

	if (e == NULL) {
		return -ENOMEM;
	}
	bs_ext_table_drop(e);
	e->ref = calloc(n ? n : 1, sizeof(*e->ref));
	e->md_pos = calloc(n ? n : 1, sizeof(*e->md_pos));
	if (e->ref == NULL || e->md_pos == NULL) {
		bs_ext_table_drop(e);
		return -ENOMEM;
	}
	e->n = n;
	e->len = blob->map->len;
	e->map_seen = blob->map;
	return 0;
}

void bs_ext_set_ref(struct ust_blob *blob, uint64_t k, const struct ust_bs_page_ref *ref)
{
	if (blob->ext != NULL && k < blob->ext->n) {
		blob->ext->ref[k] = *ref;
	}
}

void bs_ext_set_md_pos(struct ust_blob *blob, uint64_t k, uint32_t pos)
{
	if (blob->ext != NULL && k < blob->ext->n) {
		blob->ext->md_pos[k] = pos;
		blob->ext->md_cap = blob->md_npages;
	}
}
