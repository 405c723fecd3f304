/*
 * Blob lifecycle: create, open (shared, refcounted), close, delete and
 * iteration. The calls on an open blob's metadata (resize, sync, getters,
 * xattrs) are in bs_attr.c.
 *
 * Guarantees: every call here runs on the metadata thread (-EXDEV
 * otherwise); an open reads both root halves and the chosen version's whole
 * tree and refuses a damaged blob with -EUCLEAN, recording it (format 9.2,
 * 9.5); create picks a free slot, learns the slot's generation and
 * incarnation from what is on disk, writes the first root into the half not
 * holding the slot's newest version and reports the id only after the commit
 * flush (9.4); delete refuses an open blob (-EBUSY), writes a tombstone and
 * releases clusters, pages and the slot only after its flush. Opening a
 * clone opens its parent chain (a damaged parent: the clone opens and reads
 * through it fail); deleting a snapshot with one clone merges it
 * (bs_snapshot.c), with several is refused (-EBUSY).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"

#include "blobstore_internal.h"

/* ---- reading a slot --------------------------------------------------------------- */

enum open_purpose {
	OPEN_USER,
	OPEN_DELETE,
	OPEN_ITER,
};

enum open_state {
	OPEN_READ_HALVES,
	OPEN_CHOOSE,
	OPEN_TREE_READ,
	OPEN_PARENT, /* a clone: its parent is being opened */
};

struct open_op {
	enum open_state state;
	enum open_purpose purpose;
	struct ust_blob_store *bs;
	ust_blob_id id; /* 0: whatever incarnation is current (iteration) */
	uint32_t slot;
	uint8_t *halves;
	int drc[2];
	struct ust_bs_root r[2];
	struct ust_bs_fmt_err err[2];
	struct bs_tree tree;
	int half;
	int verdict;
	char msg[512];
	struct ust_blob *blob;
	ust_blob_op_with_handle_cb cb;
	void *arg;
};

static void open_step(struct open_op *op);
static void delete_opened(void *arg, struct ust_blob *blob, int rc);

void bs_noop_cb(void *arg, int rc)
{
	(void)arg;
	if (rc != 0) {
		UST_ERRLOG("blobstore: an operation called without a callback failed: %s\n",
			   strerror(-rc));
	}
}

int bs_md_call_check(struct ust_blob_store *bs, ust_bs_op_cb *cb, void *arg)
{
	int rc = 0;

	if (*cb == NULL) {
		*cb = bs_noop_cb;
	}
	if (bs == NULL) {
		rc = -EINVAL;
	} else if (!bs_on_md_thread(bs)) {
		rc = -EXDEV;
	}
	if (rc != 0) {
		(*cb)(arg, rc);
	}
	return rc;
}

int bs_md_thread_check(struct ust_blob_store *bs)
{
	if (!bs_on_md_thread(bs)) {
		UST_ERRLOG("blobstore: metadata call from a thread other than the store's\n");
		return -EXDEV;
	}
	return 0;
}

/* ---- open blobs and free slots ------------------------------------------------------------ */

/*
 * Open blobs are listed on bs->blobs and indexed by slot in bs->open_index,
 * so that finding the open blob of a slot costs the same with 20 000 blobs
 * open (a file system's inode cache) as with one. See blobstore_internal.h
 * for why an entry is checked against bs->rel before it is trusted.
 */
static struct ust_blob *find_listed(struct ust_blob_store *bs, uint32_t slot)
{
	struct ust_blob *b;

	TAILQ_FOREACH(b, &bs->blobs, link) {
		if (b->slot == slot) {
			return b;
		}
	}
	return NULL;
}

static struct ust_blob *find_open(struct ust_blob_store *bs, uint32_t slot)
{
	struct bs_open_entry *e;
	struct ust_blob *b;

	if (bs->open_index == NULL) {
		return find_listed(bs, slot);
	}
	e = &bs->open_index[slot];
	if (e->blob == NULL) {
		return NULL;
	}
	if (bs->rel[slot].id == e->id) {
		return e->blob;
	}
	/* The slot changed hands behind the index (or its relation is not
	 * recorded yet): the list decides, and a stale entry goes. */
	b = find_listed(bs, slot);
	if (b != e->blob) {
		e->blob = NULL;
		e->id = 0;
	}
	return b;
}

struct ust_blob *bs_blob_find_open(struct ust_blob_store *bs, uint32_t slot)
{
	return find_open(bs, slot);
}

static void blob_list(struct ust_blob *blob)
{
	struct ust_blob_store *bs = blob->bs;

	TAILQ_INSERT_TAIL(&bs->blobs, blob, link);
	if (bs->open_index == NULL) {
		/* Without memory for the index, lookups walk the list. */
		bs->open_index = calloc(bs->sb.max_blobs, sizeof(*bs->open_index));
	}
	if (bs->open_index != NULL) {
		bs->open_index[blob->slot].blob = blob;
		bs->open_index[blob->slot].id = blob->id;
	}
}

void bs_blob_unlist(struct ust_blob *blob)
{
	struct ust_blob_store *bs = blob->bs;

	TAILQ_REMOVE(&bs->blobs, blob, link);
	if (bs->open_index != NULL && bs->open_index[blob->slot].blob == blob) {
		bs->open_index[blob->slot].blob = NULL;
		bs->open_index[blob->slot].id = 0;
	}
}

void bs_open_index_free(struct ust_blob_store *bs)
{
	free(bs->open_index);
	bs->open_index = NULL;
}

uint32_t bs_slot_take(struct ust_blob_store *bs)
{
	uint32_t n = bs->sb.max_blobs;
	uint64_t s;

	s = bs_bit_find_clear(bs->bbm, bs->slot_hint < n ? bs->slot_hint : 0, n);
	if (s == n && bs->slot_hint != 0) {
		s = bs_bit_find_clear(bs->bbm, 0, n);
	}
	if (s == n) {
		return n;
	}
	bs_bit_set(bs->bbm, s);
	bs->slot_hint = (uint32_t)s + 1;
	return (uint32_t)s;
}

void bs_slot_release(struct ust_blob_store *bs, uint32_t slot)
{
	bs_bit_clear(bs->bbm, slot);
	if (slot < bs->slot_hint) {
		bs->slot_hint = slot;
	}
}

static void parent_closed(void *arg, int rc)
{
	(void)arg;
	if (rc != 0) {
		UST_ERRLOG("blobstore: closing a clone's parent failed: %s\n", strerror(-rc));
	}
}

void bs_blob_put_parent(struct ust_blob *blob)
{
	struct ust_blob *parent = blob->parent;

	if (parent == NULL) {
		return;
	}
	__atomic_store_n(&blob->parent, NULL, __ATOMIC_RELEASE);
	parent->child_refs--;
	ust_blob_close(parent, parent_closed, NULL);
}

static bool id_wellformed(const struct ust_blob_store *bs, ust_blob_id id)
{
	return ust_bs_blobid_incarnation(id) != 0 && ust_bs_blobid_slot(id) < bs->sb.max_blobs;
}

static void open_finish(struct open_op *op, int rc)
{
	struct ust_blob_store *bs = op->bs;
	struct ust_blob *blob = op->blob, *other;

	bs_tree_free(&op->tree);
	bs_dma_free(op->halves);
	if (rc == 0) {
		/* Another open of the same blob may have finished first. */
		other = find_open(bs, op->slot);
		if (other != NULL && !other->deleting) {
			bs_blob_put_parent(blob);
			bs_blob_free(blob);
			blob = other;
			blob->refs++;
		} else if (other != NULL) {
			bs_blob_put_parent(blob);
			bs_blob_free(blob);
			blob = NULL;
			rc = -ENOENT;
		} else {
			blob->refs = 1;
			blob->deleting = op->purpose == OPEN_DELETE;
			blob_list(blob);
		}
	} else if (blob != NULL) {
		bs_blob_put_parent(blob);
		bs_blob_free(blob);
		blob = NULL;
	}
	bs->ops--;
	op->cb(op->arg, blob, rc);
	free(op);
}

static void damaged(struct open_op *op, ust_blob_id id, int error)
{
	bs_report_damage(op->bs, op->slot, id, error, "%s", op->msg);
	open_finish(op, error == -ENOTSUP ? -ENOTSUP : -EUCLEAN);
}

static void open_io_done(void *arg, int rc)
{
	struct open_op *op = arg;

	if (rc != 0) {
		snprintf(op->msg, sizeof(op->msg), "root slot unreadable: %s", strerror(-rc));
		bs_report_damage(op->bs, op->slot, op->id, -EIO, "%s", op->msg);
		open_finish(op, -EIO);
		return;
	}
	open_step(op);
}

static void open_tree_done(void *arg, int verdict)
{
	struct open_op *op = arg;

	op->verdict = verdict;
	open_step(op);
}

/* A clone keeps its parent open: I/O reads through it (format 8.1 THIN). */
static void open_parent_done(void *arg, struct ust_blob *parent, int rc)
{
	struct open_op *op = arg;

	if (rc == 0) {
		op->blob->parent = parent;
		parent->child_refs++;
	} else {
		/* 9.5: the clone opens; reads that reach the parent fail with -EIO. */
		UST_ERRLOG("blob 0x%llx: its parent 0x%llx cannot be opened (%s); reads through it fail\n",
			   (unsigned long long)op->blob->id, (unsigned long long)op->blob->parent_id,
			   strerror(-rc));
		op->blob->parent_broken = true;
	}
	open_step(op);
}

static void decode_halves(struct ust_blob_store *bs, const uint8_t *pages, int drc[2],
			  struct ust_bs_root r[2], struct ust_bs_fmt_err err[2])
{
	int h;

	for (h = 0; h < 2; h++) {
		drc[h] = ust_bs_fmt_root_decode(pages + (size_t)h * UST_BS_PAGE_SIZE, &bs->geom, &r[h],
						&err[h]);
	}
}

static void open_step(struct open_op *op)
{
	struct ust_blob_store *bs = op->bs;
	const struct ust_bs_root *cur;
	int other, rc;

	switch (op->state) {
	case OPEN_READ_HALVES:
		op->state = OPEN_CHOOSE;
		bs_dev_read_pages(bs, bs_root_page(bs, op->slot, 0), 2, op->halves, open_io_done, op);
		break;
	case OPEN_CHOOSE:
		decode_halves(bs, op->halves, op->drc, op->r, op->err);
		op->half = bs_pick_half(op->drc, op->r, -1);
		if (op->half < 0) {
			snprintf(op->msg, sizeof(op->msg), "no valid root: half A %s (%s), half B %s (%s)",
				 ust_bs_fmt_damage_str(op->err[0].kind), op->err[0].msg,
				 ust_bs_fmt_damage_str(op->err[1].kind), op->err[1].msg);
			rc = op->drc[0] == -ENOTSUP || op->drc[1] == -ENOTSUP ? -ENOTSUP : -EUCLEAN;
			damaged(op, op->id, rc);
			return;
		}
		cur = &op->r[op->half];
		if (cur->flags & UST_BS_BLOB_TOMBSTONE ||
		    (op->id != 0 && cur->hdr.blob_id != op->id)) {
			open_finish(op, -ENOENT);
			return;
		}
		other = 1 - op->half;
		if (op->drc[other] != 0 && op->drc[other] != -ENODATA) {
			/* After a clean shutdown every non-blank half is valid (9.2). */
			snprintf(op->msg, sizeof(op->msg), "page %llu (root half %c): %s: %s",
				 (unsigned long long)bs_root_page(bs, op->slot, other), 'A' + other,
				 ust_bs_fmt_damage_str(op->err[other].kind), op->err[other].msg);
			damaged(op, cur->hdr.blob_id, -EUCLEAN);
			return;
		}
		op->state = OPEN_TREE_READ;
		op->tree.root = op->halves + (size_t)op->half * UST_BS_PAGE_SIZE;
		op->tree.hdr = *cur;
		bs_tree_read(bs, &op->tree, op->msg, sizeof(op->msg), open_tree_done, op);
		break;
	case OPEN_TREE_READ:
		cur = &op->r[op->half];
		if (op->verdict < 0) {
			open_finish(op, op->verdict);
			return;
		}
		if (op->verdict != BS_TREE_COMPLETE) {
			damaged(op, cur->hdr.blob_id, op->verdict == BS_TREE_IOERR ? -EIO : -EUCLEAN);
			return;
		}
		op->blob = bs_blob_alloc(bs, cur->hdr.blob_id);
		if (op->blob == NULL) {
			open_finish(op, -ENOMEM);
			return;
		}
		rc = bs_blob_from_tree(op->blob, &op->tree, op->msg, sizeof(op->msg));
		if (rc == -ENOMEM) {
			open_finish(op, rc);
			return;
		}
		if (rc != 0) {
			damaged(op, cur->hdr.blob_id, rc);
			return;
		}
		if (op->blob->ro_compat != 0) {
			/* v1 knows no per-blob ro_compat feature. */
			op->blob->md_read_only = true;
		}
		if (op->blob->has_pending) {
			/* An operation whose last step failed: the next load resolves
			 * it (9.4; the store is marked so that the load is dirty). */
			UST_ERRLOG("blob 0x%llx: pending operation %u with 0x%llx not finished\n",
				   (unsigned long long)op->blob->id, op->blob->pending.op,
				   (unsigned long long)op->blob->pending.other_blob_id);
			open_finish(op, -EBUSY);
			return;
		}
		if (op->blob->parent_id != 0 && op->purpose != OPEN_DELETE) {
			op->state = OPEN_PARENT;
			ust_bs_open_blob(bs, op->blob->parent_id, open_parent_done, op);
			return;
		}
		open_finish(op, 0);
		break;
	case OPEN_PARENT:
		open_finish(op, 0);
		break;
	}
}

static void open_slot(struct ust_blob_store *bs, uint32_t slot, ust_blob_id id,
		      enum open_purpose purpose, ust_blob_op_with_handle_cb cb, void *arg)
{
	struct open_op *op;
	struct ust_blob *blob;

	if (!bs_bit_get(bs->bbm, slot)) {
		cb(arg, NULL, -ENOENT);
		return;
	}
	blob = find_open(bs, slot);
	if (blob != NULL) {
		if (blob->deleting || (id != 0 && blob->id != id)) {
			cb(arg, NULL, -ENOENT);
			return;
		}
		if (purpose == OPEN_DELETE) {
			UST_ERRLOG("blob 0x%llx is open (%u references): close it before deleting it\n",
				   (unsigned long long)blob->id, blob->refs);
			cb(arg, NULL, -EBUSY);
			return;
		}
		blob->refs++;
		cb(arg, blob, 0);
		return;
	}
	if (bs_is_damaged(bs, slot) && purpose != OPEN_DELETE) {
		cb(arg, NULL, -EUCLEAN);
		return;
	}
	op = calloc(1, sizeof(*op));
	if (op == NULL || (op->halves = bs_dma_page_alloc(2)) == NULL) {
		free(op);
		cb(arg, NULL, -ENOMEM);
		return;
	}
	op->bs = bs;
	op->slot = slot;
	op->id = id;
	op->purpose = purpose;
	op->cb = cb;
	op->arg = arg;
	op->state = OPEN_READ_HALVES;
	bs->ops++;
	open_step(op);
}

void ust_bs_open_blob(struct ust_blob_store *bs, ust_blob_id id, ust_blob_op_with_handle_cb cb,
		      void *arg)
{
	int rc = bs_md_thread_check(bs);

	if (rc == 0 && !id_wellformed(bs, id)) {
		rc = -ENOENT;
	}
	if (rc != 0) {
		cb(arg, NULL, rc);
		return;
	}
	open_slot(bs, ust_bs_blobid_slot(id), id, OPEN_USER, cb, arg);
}

/* ---- close ------------------------------------------------------------------------- */

struct close_ctx {
	struct ust_blob *blob;
	ust_blob_op_cb cb;
	void *arg;
};

static void blob_forget(struct ust_blob *blob)
{
	bs_blob_unlist(blob);
	bs_blob_put_parent(blob);
	bs_blob_free(blob);
}

static void close_synced(void *arg, int rc)
{
	struct close_ctx *c = arg;
	struct ust_blob *blob = c->blob;

	if (--blob->closing == 0 && blob->refs == 0 && blob->sync == NULL) {
		blob->bs->ops--;
		blob_forget(blob);
	} else {
		blob->bs->ops--;
	}
	c->cb(c->arg, rc);
	free(c);
}

static bool blob_needs_sync(const struct ust_blob *blob)
{
	return !blob->md_read_only &&
	       (blob->change_seq != blob->synced_seq || blob->nfreed != 0 ||
		!TAILQ_EMPTY(&blob->allocs) || blob->sync != NULL);
}

void ust_blob_close(struct ust_blob *blob, ust_blob_op_cb cb, void *arg)
{
	struct close_ctx *c;
	int rc = bs_md_thread_check(blob->bs);

	if (cb == NULL) {
		cb = bs_noop_cb;
	}
	if (rc == 0 && blob->refs == 0) {
		rc = -EINVAL;
	}
	if (rc != 0) {
		cb(arg, rc);
		return;
	}
	if (--blob->refs > 0) {
		cb(arg, 0);
		return;
	}
	if (!blob_needs_sync(blob) && blob->closing == 0) {
		blob_forget(blob);
		cb(arg, 0);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		blob->refs++;
		cb(arg, -ENOMEM);
		return;
	}
	c->blob = blob;
	c->cb = cb;
	c->arg = arg;
	blob->closing++;
	blob->bs->ops++;
	bs_blob_sync(blob, close_synced, c);
}

/* ---- create -------------------------------------------------------------------------- */

enum create_state {
	CREATE_READ,
	CREATE_BUILD,
	CREATE_SYNCED,
};

struct create_op {
	enum create_state state;
	struct ust_blob_store *bs;
	uint32_t slot;
	uint8_t *halves;
	struct ust_blob_opts opts; /* without the xattrs: see xattrs */
	struct ust_blob *xattrs;   /* the caller's xattrs, copied at the call */
	struct ust_blob *blob;
	int rc;
	ust_blob_op_with_id_cb cb;
	ust_blob_op_with_handle_cb hcb; /* ust_bs_create_open_blob: the blob comes back open */
	void *arg;
};

static void create_step(struct create_op *op);

void ust_blob_opts_init(struct ust_blob_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
}

static void create_finish(struct create_op *op)
{
	struct ust_blob_store *bs = op->bs;
	struct ust_blob *blob = op->blob, *handle = NULL;
	ust_blob_id id = 0;
	uint64_t i;

	if (blob != NULL) {
		if (op->rc == 0) {
			id = blob->id;
			bs->rel[op->slot].id = id;
			bs->rel[op->slot].parent = 0;
			if (op->hcb != NULL) {
				/* Just synced, so what an open would read back: keep it. */
				blob->refs = 1;
				blob_list(blob);
				handle = blob;
			}
		} else if (blob->map != NULL) {
			for (i = 0; i < blob->map->len; i++) {
				if (blob->map->c[i] != 0) {
					bs_cluster_free(bs, blob->map->c[i]);
				}
			}
		}
		if (handle == NULL) {
			bs_blob_free(blob);
		}
	}
	if (op->rc != 0) {
		bs_slot_release(bs, op->slot);
	}
	if (op->xattrs != NULL) {
		bs_blob_free(op->xattrs);
	}
	bs_dma_free(op->halves);
	bs->ops--;
	if (op->hcb != NULL) {
		op->hcb(op->arg, handle, op->rc);
	} else {
		op->cb(op->arg, id, op->rc);
	}
	free(op);
}

static void create_io_done(void *arg, int rc)
{
	struct create_op *op = arg;

	op->rc = rc;
	if (rc != 0) {
		create_finish(op);
		return;
	}
	create_step(op);
}

bool bs_xattr_name_ok(const char *name)
{
	size_t len = name != NULL ? strnlen(name, UST_BS_XATTR_NAME_MAX + 1) : 0;

	return len >= 1 && len <= UST_BS_XATTR_NAME_MAX;
}

/* A blob for a free slot: generation and incarnation follow what the slot holds. */
static int slot_identity(struct ust_blob_store *bs, uint32_t slot, const uint8_t *halves,
			 struct ust_blob **out)
{
	struct ust_bs_fmt_err err[2];
	struct ust_bs_root r[2];
	uint32_t incarnation = 1;
	struct ust_blob *blob;
	uint64_t maxgen = 0;
	int drc[2], newest, h;

	decode_halves(bs, halves, drc, r, err);
	newest = bs_pick_half(drc, r, -1);
	for (h = 0; h < 2; h++) {
		if (drc[h] == 0) {
			if (r[h].hdr.generation > maxgen) {
				maxgen = r[h].hdr.generation;
			}
			if (ust_bs_blobid_incarnation(r[h].hdr.blob_id) >= incarnation) {
				incarnation = ust_bs_blobid_incarnation(r[h].hdr.blob_id) + 1;
			}
		}
	}
	if (incarnation == 0) {
		UST_ERRLOG("blobstore: slot %u has used every incarnation\n", slot);
		return -ENOSPC;
	}
	blob = bs_blob_alloc(bs, ust_bs_blobid_make(incarnation, slot));
	if (blob == NULL) {
		return -ENOMEM;
	}
	/* Write into the half not holding the slot's newest root (A if none). */
	blob->cur_half = newest < 0 ? 1 : newest;
	blob->next_gen = maxgen + 1;
	*out = blob;
	return 0;
}

/* The new blob in memory. */
static int create_build(struct create_op *op)
{
	struct ust_blob_store *bs = op->bs;
	struct ust_blob *blob;
	uint64_t i;
	int rc;

	rc = slot_identity(bs, op->slot, op->halves, &op->blob);
	if (rc != 0) {
		return rc;
	}
	blob = op->blob;
	blob->num_clusters = op->opts.num_clusters;
	blob->flags = op->opts.thin_provision ? UST_BS_BLOB_THIN : 0;
	blob->change_seq = 1;
	blob->map = calloc(1, sizeof(struct bs_map) + blob->num_clusters * sizeof(uint32_t));
	if (blob->map == NULL) {
		return -ENOMEM;
	}
	blob->map->len = blob->num_clusters;
	if (!op->opts.thin_provision) {
		if (bs->free_clusters < blob->num_clusters) {
			UST_ERRLOG("blobstore: %llu clusters requested, %llu free\n",
				   (unsigned long long)blob->num_clusters,
				   (unsigned long long)bs->free_clusters);
			return -ENOSPC;
		}
		for (i = 0; i < blob->num_clusters; i++) {
			blob->map->c[i] = bs_cluster_alloc(bs);
		}
		blob->num_allocated = blob->num_clusters;
	}
	if (op->xattrs != NULL) {
		TAILQ_CONCAT(&blob->xattrs, &op->xattrs->xattrs, link);
	}
	return 0;
}

static void create_synced(void *arg, int rc)
{
	struct create_op *op = arg;

	op->rc = rc;
	create_step(op);
}

static void create_step(struct create_op *op)
{
	struct ust_blob_store *bs = op->bs;

	switch (op->state) {
	case CREATE_READ:
		/* the slot's halves: what generation and incarnation come next */
		op->state = CREATE_BUILD;
		if (bs_dev_read_pages_now(bs, bs_root_page(bs, op->slot, 0), 2, op->halves) == 0) {
			create_step(op);
			break;
		}
		bs_dev_read_pages(bs, bs_root_page(bs, op->slot, 0), 2, op->halves, create_io_done, op);
		break;
	case CREATE_BUILD:
		op->rc = create_build(op);
		if (op->rc != 0) {
			create_finish(op);
			return;
		}
		op->state = CREATE_SYNCED;
		bs_blob_sync(op->blob, create_synced, op);
		break;
	case CREATE_SYNCED:
		create_finish(op);
		break;
	}
}

/* The caller's xattrs, validated and copied into a holder blob's list. */
static int create_copy_xattrs(struct ust_blob_store *bs, const struct ust_blob_opts *opts,
			      struct ust_blob **out)
{
	struct ust_blob *holder = bs_blob_alloc(bs, 0);
	int rc;

	if (holder == NULL) {
		return -ENOMEM;
	}
	rc = bs_blob_set_xattrs(holder, opts->xattrs, opts->xattr_count);
	if (rc != 0) {
		bs_blob_free(holder);
		return rc;
	}
	*out = holder;
	return 0;
}

/* -EFBIG, said: a thin blob of n clusters could never be written (format.h). */
int bs_thin_too_large(const char *what, uint64_t n)
{
	UST_ERRLOG("%s: %llu clusters is more than a thin blob can map (at most %llu)\n", what,
		   (unsigned long long)n, (unsigned long long)UST_BS_THIN_MAX_CLUSTERS);
	return -EFBIG;
}

/* Report a create that ended before it started: by id or by handle. */
static void create_fail(ust_blob_op_with_id_cb cb, ust_blob_op_with_handle_cb hcb, void *arg, int rc)
{
	if (hcb != NULL) {
		hcb(arg, NULL, rc);
	} else {
		cb(arg, 0, rc);
	}
}

static void create_start(struct ust_blob_store *bs, const struct ust_blob_opts *opts,
			 ust_blob_op_with_id_cb cb, ust_blob_op_with_handle_cb hcb, void *arg)
{
	struct create_op *op;
	uint32_t slot;
	struct ust_blob *xattrs = NULL;
	int rc = bs_md_thread_check(bs);

	if (rc == 0 && opts != NULL && opts->num_clusters > UST_BS_MAX_BLOB_CLUSTERS) {
		rc = -EINVAL;
	}
	if (rc == 0 && opts != NULL && opts->thin_provision &&
	    opts->num_clusters > UST_BS_THIN_MAX_CLUSTERS) {
		rc = bs_thin_too_large("blobstore: create", opts->num_clusters);
	}
	if (rc == 0 && opts != NULL && opts->xattr_count != 0) {
		/* Copied now: the caller's array and strings may be gone before
		 * the create reaches the disk. Also validates them. */
		rc = opts->xattrs == NULL ? -EINVAL : create_copy_xattrs(bs, opts, &xattrs);
	}
	if (rc != 0) {
		create_fail(cb, hcb, arg, rc);
		return;
	}
	op = calloc(1, sizeof(*op));
	if (op == NULL || (op->halves = bs_dma_page_alloc(2)) == NULL) {
		free(op);
		if (xattrs != NULL) {
			bs_blob_free(xattrs);
		}
		create_fail(cb, hcb, arg, -ENOMEM);
		return;
	}
	/* Taken now so a concurrent create picks another slot. */
	slot = bs_slot_take(bs);
	if (slot == bs->sb.max_blobs) {
		UST_ERRLOG("blobstore: all %u blob slots are in use\n", bs->sb.max_blobs);
		if (xattrs != NULL) {
			bs_blob_free(xattrs);
		}
		bs_dma_free(op->halves);
		free(op);
		create_fail(cb, hcb, arg, -ENOSPC);
		return;
	}
	if (opts != NULL) {
		op->opts = *opts;
		op->opts.xattrs = NULL;
		op->opts.xattr_count = 0;
	}
	op->xattrs = xattrs;
	op->bs = bs;
	op->slot = slot;
	op->cb = cb;
	op->hcb = hcb;
	op->arg = arg;
	op->state = CREATE_READ;
	bs->ops++;
	create_step(op);
}

void ust_bs_create_blob(struct ust_blob_store *bs, const struct ust_blob_opts *opts,
			ust_blob_op_with_id_cb cb, void *arg)
{
	create_start(bs, opts, cb, NULL, arg);
}

void ust_bs_create_open_blob(struct ust_blob_store *bs, const struct ust_blob_opts *opts,
			     ust_blob_op_with_handle_cb cb, void *arg)
{
	create_start(bs, opts, NULL, cb, arg);
}

/* ---- new blobs for the snapshot operations ------------------------------------------------ */

struct new_op {
	struct ust_blob_store *bs;
	uint32_t slot;
	uint8_t *halves;
	void (*done)(void *arg, struct ust_blob *blob, int rc);
	void *arg;
};

static void new_read(void *arg, int rc)
{
	struct new_op *op = arg;
	struct ust_blob_store *bs = op->bs;
	struct ust_blob *blob = NULL;

	if (rc == 0) {
		rc = slot_identity(bs, op->slot, op->halves, &blob);
	}
	if (rc != 0) {
		bs_slot_release(bs, op->slot);
	}
	bs_dma_free(op->halves);
	bs->ops--;
	op->done(op->arg, blob, rc);
	free(op);
}

void bs_blob_new(struct ust_blob_store *bs,
		 void (*done)(void *arg, struct ust_blob *blob, int rc), void *arg)
{
	struct new_op *op;
	uint32_t slot;

	op = calloc(1, sizeof(*op));
	if (op == NULL || (op->halves = bs_dma_page_alloc(2)) == NULL) {
		free(op);
		done(arg, NULL, -ENOMEM);
		return;
	}
	/* Taken now so a concurrent create picks another slot. */
	slot = bs_slot_take(bs);
	if (slot == bs->sb.max_blobs) {
		UST_ERRLOG("blobstore: all %u blob slots are in use\n", bs->sb.max_blobs);
		bs_dma_free(op->halves);
		free(op);
		done(arg, NULL, -ENOSPC);
		return;
	}
	op->bs = bs;
	op->slot = slot;
	op->done = done;
	op->arg = arg;
	bs->ops++;
	bs_dev_read_pages(bs, bs_root_page(bs, op->slot, 0), 2, op->halves, new_read, op);
}

void bs_blob_new_abort(struct ust_blob *blob)
{
	bs_slot_release(blob->bs, blob->slot);
	bs_blob_put_parent(blob);
	bs_blob_free(blob);
}

void bs_blob_list_open(struct ust_blob *blob)
{
	blob->refs = 1;
	blob_list(blob);
}

/* ---- delete ----------------------------------------------------------------------------- */

struct delete_op {
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	uint32_t slot;
	bool was_damaged;
	bool clones_checked; /* at the call (the blob was open, or damaged) */
	uint8_t *pages; /* the two halves of a damaged blob's slot */
	ust_blob_op_cb cb;
	void *arg;
};

/* A delete of slot under way (it holds a store operation until delete_finish); NULL: no memory. */
static struct delete_op *delete_op_new(struct ust_blob_store *bs, uint32_t slot, bool clones_checked,
				       ust_blob_op_cb cb, void *arg)
{
	struct delete_op *d = calloc(1, sizeof(*d));

	if (d == NULL) {
		return NULL;
	}
	d->bs = bs;
	d->slot = slot;
	d->clones_checked = clones_checked;
	d->cb = cb;
	d->arg = arg;
	bs->ops++;
	return d;
}

static void delete_finish(struct delete_op *d, int rc)
{
	d->bs->ops--;
	d->cb(d->arg, rc);
	free(d);
}

static void delete_committed(void *arg, int rc)
{
	struct delete_op *d = arg;
	struct ust_blob *blob = d->blob;
	struct ust_blob_store *bs = d->bs;
	uint64_t i;

	if (rc == 0) {
		/* The tombstone is durable: release what the blob held (rule 4). */
		for (i = 0; i < blob->map->len && !d->was_damaged; i++) {
			if (blob->map->c[i] != 0) {
				bs_cluster_free(bs, blob->map->c[i]);
			}
		}
		for (i = 0; i < blob->nfreed; i++) {
			bs_cluster_free(bs, blob->freed[i]);
		}
		blob->nfreed = 0;
		bs_slot_release(bs, d->slot);
		memset(&bs->rel[d->slot], 0, sizeof(bs->rel[d->slot]));
		if (d->was_damaged) {
			bs_forget_damage(bs, d->slot);
			bs->leaked = true;
		}
	}
	if (d->was_damaged) {
		bs_blob_free(blob);
	} else {
		blob_forget(blob);
	}
	delete_finish(d, rc);
}

/*
 * Only a READ_ONLY blob can be a parent: a clone is made of a read-only blob
 * and a snapshot is born read-only (format 8.1, 9.4), and no operation makes
 * a blob writable again. So deleting a writable blob needs no scan of the
 * snapshot tree, which costs max_blobs steps. A load that found the rule
 * broken on disk (parents_unchecked) makes every delete scan.
 */
static bool may_have_clones(const struct ust_blob_store *bs, const struct ust_blob *blob)
{
	return bs->parents_unchecked || blob == NULL || (blob->flags & UST_BS_BLOB_READ_ONLY) != 0;
}

/*
 * A blob with clones is not simply deleted (9.4): with one, the clone takes
 * its data over (bs_delete_merge completes the call); with several the call
 * fails with -EBUSY. Returns true when it completed the call that way.
 */
static bool delete_by_clones(struct ust_blob_store *bs, ust_blob_id id, ust_blob_op_cb cb,
			     void *arg)
{
	uint32_t clones = bs_count_clones(bs, id, NULL);

	if (clones > 1) {
		UST_ERRLOG("blob 0x%llx has %u clones: cannot delete it\n", (unsigned long long)id,
			   clones);
		cb(arg, -EBUSY);
		return true;
	}
	if (clones == 1 && !bs_is_damaged(bs, ust_bs_blobid_slot(id))) {
		bs_delete_merge(bs, id, cb, arg);
		return true;
	}
	return false;
}

static void delete_opened(void *arg, struct ust_blob *blob, int rc)
{
	struct delete_op *d = arg;
	struct ust_blob_store *bs = d->bs;
	ust_blob_op_cb cb = d->cb;
	void *cb_arg = d->arg;
	ust_blob_id id;

	if (rc != 0) {
		delete_finish(d, rc);
		return;
	}
	id = blob->id;
	if (!d->clones_checked && may_have_clones(bs, blob) &&
	    bs_count_clones(bs, id, NULL) != 0) {
		/* A snapshot with clones, known only now that its root is read:
		 * drop this unchanged handle and decide as at the call. */
		ust_blob_close(blob, NULL, NULL);
		bs->ops--;
		free(d);
		delete_by_clones(bs, id, cb, cb_arg);
		return;
	}
	d->blob = blob;
	bs_blob_write_tombstone(blob, delete_committed, d);
}

/* A damaged blob: tombstone over the half that is not its newest valid one. */
static void delete_damaged_read(void *arg, int rc)
{
	struct delete_op *d = arg;
	struct ust_blob_store *bs = d->bs;
	struct ust_bs_fmt_err err[2];
	struct ust_bs_root r[2];
	uint8_t *pages = d->pages;
	uint64_t maxgen = 0;
	ust_blob_id id = 0;
	int drc[2], newest, h;

	d->pages = NULL;
	if (rc != 0) {
		bs_dma_free(pages);
		delete_finish(d, rc);
		return;
	}
	decode_halves(bs, pages, drc, r, err);
	newest = bs_pick_half(drc, r, -1);
	for (h = 0; h < 2; h++) {
		if (drc[h] == 0 && r[h].hdr.generation > maxgen) {
			maxgen = r[h].hdr.generation;
			id = r[h].hdr.blob_id;
		}
	}
	bs_dma_free(pages);
	d->blob = bs_blob_alloc(bs, id != 0 ? id : ust_bs_blobid_make(1, d->slot));
	if (d->blob == NULL || (d->blob->map = calloc(1, sizeof(struct bs_map))) == NULL) {
		if (d->blob != NULL) {
			bs_blob_free(d->blob);
		}
		delete_finish(d, -ENOMEM);
		return;
	}
	d->blob->cur_half = newest < 0 ? 1 : newest;
	d->blob->next_gen = maxgen + 1;
	bs_blob_write_tombstone(d->blob, delete_committed, d);
}

void ust_bs_delete_blob(struct ust_blob_store *bs, ust_blob_id id, ust_blob_op_cb cb, void *arg)
{
	struct delete_op *d;
	uint32_t slot = ust_bs_blobid_slot(id);
	struct ust_blob *open;
	bool check_now;
	uint8_t *pages;
	int rc = bs_md_thread_check(bs);

	if (cb == NULL) {
		cb = bs_noop_cb;
	}
	if (rc == 0 && (!id_wellformed(bs, id) || !bs_bit_get(bs->bbm, slot))) {
		rc = -ENOENT;
	}
	if (rc != 0) {
		cb(arg, rc);
		return;
	}
	/* The clones are counted now when the blob's flags are known (it is
	 * open) or never will be (damaged); otherwise once its root is read. */
	open = find_open(bs, slot);
	check_now = bs_is_damaged(bs, slot) || (open != NULL && may_have_clones(bs, open));
	if (check_now && delete_by_clones(bs, id, cb, arg)) {
		return;
	}
	d = delete_op_new(bs, slot, check_now, cb, arg);
	if (d == NULL) {
		cb(arg, -ENOMEM);
		return;
	}
	if (bs_is_damaged(bs, slot) && open == NULL) {
		pages = bs_dma_page_alloc(2);
		if (pages == NULL) {
			delete_finish(d, -ENOMEM);
			return;
		}
		d->was_damaged = true;
		d->pages = pages;
		bs_dev_read_pages(bs, bs_root_page(bs, slot, 0), 2, pages, delete_damaged_read, d);
		return;
	}
	open_slot(bs, slot, id, OPEN_DELETE, delete_opened, d);
}

/* ust_blob_delete of a blob that needs the general path: close, then delete by id. */
struct delete_handle {
	struct ust_blob_store *bs;
	ust_blob_id id;
	ust_blob_op_cb cb;
	void *arg;
};

static void delete_handle_closed(void *arg, int rc)
{
	struct delete_handle *h = arg;

	/* A failed final sync does not matter: the delete supersedes it. */
	(void)rc;
	ust_bs_delete_blob(h->bs, h->id, h->cb, h->arg);
	free(h);
}

void ust_blob_delete(struct ust_blob *blob, ust_blob_op_cb cb, void *arg)
{
	struct ust_blob_store *bs = blob->bs;
	struct delete_handle *h;
	struct delete_op *d;
	int rc = bs_md_thread_check(bs);

	if (cb == NULL) {
		cb = bs_noop_cb;
	}
	if (rc == 0 && (blob->refs != 1 || blob->closing != 0 || blob->deleting)) {
		rc = -EBUSY;
	}
	if (rc != 0) {
		cb(arg, rc);
		return;
	}
	/*
	 * In memory the blob is what an open for deletion would read back only
	 * when nothing of it waits to be written; a possible parent needs the
	 * clone rules of ust_bs_delete_blob.
	 */
	d = NULL;
	if (!blob_needs_sync(blob) && !may_have_clones(bs, blob) && !bs_is_damaged(bs, blob->slot)) {
		d = delete_op_new(bs, blob->slot, true, cb, arg);
	}
	if (d == NULL) {
		h = calloc(1, sizeof(*h));
		if (h == NULL) {
			/* The handle goes whatever happens (see blob.h). */
			ust_blob_close(blob, NULL, NULL);
			cb(arg, -ENOMEM);
			return;
		}
		h->bs = bs;
		h->id = blob->id;
		h->cb = cb;
		h->arg = arg;
		ust_blob_close(blob, delete_handle_closed, h);
		return;
	}
	blob->deleting = true;
	delete_opened(d, blob, 0);
}

/* ---- iteration ---------------------------------------------------------------------- */

struct iter_op {
	struct ust_blob_store *bs;
	uint32_t slot;
	ust_blob_op_with_handle_cb cb;
	void *arg;
};

static void iter_from(struct iter_op *it);

static void iter_opened(void *arg, struct ust_blob *blob, int rc)
{
	struct iter_op *it = arg;

	if (rc == 0) {
		it->bs->ops--;
		it->cb(it->arg, blob, 0);
		free(it);
		return;
	}
	/* Damaged, unsupported or deleted meanwhile: skip it. */
	it->slot++;
	iter_from(it);
}

static void iter_from(struct iter_op *it)
{
	struct ust_blob_store *bs = it->bs;
	uint32_t s;

	for (s = it->slot; s < bs->sb.max_blobs; s++) {
		if (bs_bit_get(bs->bbm, s) && !bs_is_damaged(bs, s)) {
			break;
		}
	}
	if (s >= bs->sb.max_blobs) {
		bs->ops--;
		it->cb(it->arg, NULL, -ENOENT);
		free(it);
		return;
	}
	it->slot = s;
	open_slot(bs, s, 0, OPEN_ITER, iter_opened, it);
}

static void iter_start(struct ust_blob_store *bs, uint32_t slot, ust_blob_op_with_handle_cb cb,
		       void *arg)
{
	struct iter_op *it = calloc(1, sizeof(*it));

	if (it == NULL) {
		cb(arg, NULL, -ENOMEM);
		return;
	}
	it->bs = bs;
	it->slot = slot;
	it->cb = cb;
	it->arg = arg;
	bs->ops++;
	iter_from(it);
}

void ust_bs_iter_first(struct ust_blob_store *bs, ust_blob_op_with_handle_cb cb, void *arg)
{
	int rc = bs_md_thread_check(bs);

	if (rc != 0) {
		cb(arg, NULL, rc);
		return;
	}
	iter_start(bs, 0, cb, arg);
}

struct iter_next_ctx {
	struct ust_blob_store *bs;
	uint32_t slot;
	ust_blob_op_with_handle_cb cb;
	void *arg;
};

static void iter_closed(void *arg, int rc)
{
	struct iter_next_ctx *c = arg;

	(void)rc;
	iter_start(c->bs, c->slot, c->cb, c->arg);
	free(c);
}

void ust_bs_iter_next(struct ust_blob_store *bs, struct ust_blob *blob,
		      ust_blob_op_with_handle_cb cb, void *arg)
{
	struct iter_next_ctx *c;
	int rc = bs_md_thread_check(bs);

	if (rc == 0 && (blob == NULL || blob->bs != bs)) {
		rc = -EINVAL;
	}
	if (rc != 0) {
		cb(arg, NULL, rc);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		cb(arg, NULL, -ENOMEM);
		return;
	}
	c->bs = bs;
	c->slot = blob->slot + 1;
	c->cb = cb;
	c->arg = arg;
	ust_blob_close(blob, iter_closed, c);
}
