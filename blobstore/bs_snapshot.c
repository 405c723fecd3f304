/*
 * Snapshots and clones: create a snapshot, create a clone, inflate, decouple
 * from the parent, and delete a snapshot by merging it into its only clone
 * (docs/blobstore-format.md 8.1, 9.4).
 *
 * Guarantees:
 *  - Every operation that changes two roots follows 9.4 to the letter: the
 *    first root written carries the intent (PENDING_OP), each step is
 *    committed by its own flush before the next is written, and a crash at
 *    any instant is resolved at load by the document's fixed rule
 *    (bs_recover.c). The caller's callback runs only after the last step is
 *    durable.
 *  - A snapshot stops the blob's writes (they wait, nothing fails) and waits
 *    for those in flight, so the snapshot holds exactly what was written
 *    before it; reads go on throughout.
 *  - Data a clone reads never changes under it: a cluster moves from a
 *    parent to a child (merge, inflate, decouple) only as an allocation the
 *    child's next commit publishes (9.1 rule 5), the parent pointer I/O
 *    threads follow changes only after the commit that changes parent_id,
 *    and a replaced parent is released only after a pass over every channel.
 *  - One such operation per blob at a time (-EBUSY), and metadata calls that
 *    would change the blob meanwhile (resize, xattrs) get -EBUSY too.
 *  - A failure leaves every blob readable with the data it had; a failed
 *    commit whose outcome the disk alone knows marks the store so that the
 *    next load is dirty and decides it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"

#include "blobstore_internal.h"

/* Clusters copied (inflate, decouple) between two flushes. */
#define COPY_BATCH 16u

/* ---- the snapshot tree --------------------------------------------------------------- */

uint32_t bs_count_clones(const struct ust_blob_store *bs, ust_blob_id id, ust_blob_id *only)
{
	uint32_t s, n = 0;

	for (s = 0; s < bs->sb.max_blobs; s++) {
		if (bs->rel[s].id != 0 && bs->rel[s].parent == id) {
			if (only != NULL) {
				*only = bs->rel[s].id;
			}
			n++;
		}
	}
	return n;
}

int ust_bs_get_clones(struct ust_blob_store *bs, ust_blob_id id, ust_blob_id *ids, size_t *count)
{
	size_t cap, n = 0;
	uint32_t s;

	if (!bs_on_md_thread(bs)) {
		return -EXDEV;
	}
	if (count == NULL || (ids == NULL && *count != 0)) {
		return -EINVAL;
	}
	cap = *count;
	for (s = 0; s < bs->sb.max_blobs; s++) {
		if (bs->rel[s].id != 0 && bs->rel[s].parent == id) {
			if (n < cap) {
				ids[n] = bs->rel[s].id;
			}
			n++;
		}
	}
	*count = n;
	return n > cap ? -ENOMEM : 0;
}

/* ---- releasing a parent after the I/O threads have let go of it ------------------------- */

struct defer_release {
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	bool deleted; /* unlisted already: free it instead of closing a reference */
	bs_done_fn done;
	void *arg;
};

static void release_closed(void *arg, int rc)
{
	(void)arg;
	if (rc != 0) {
		UST_ERRLOG("blobstore: releasing a former parent failed: %s\n", strerror(-rc));
	}
}

static void release_now(struct ust_blob *blob, bool deleted)
{
	if (deleted) {
		bs_blob_put_parent(blob);
		bs_blob_free(blob);
	} else {
		ust_blob_close(blob, release_closed, NULL);
	}
}

static void release_visit(struct ust_io_channel_iter *i)
{
	ust_for_each_channel_continue(i, 0);
}

static void release_done(struct ust_io_channel_iter *i, int status)
{
	struct defer_release *d = ust_io_channel_iter_get_ctx(i);

	(void)status;
	release_now(d->blob, d->deleted);
	d->bs->ops--;
	if (d->done != NULL) {
		d->done(d->arg, 0);
	}
	free(d);
}

/*
 * An I/O thread may be walking the parent chain through blob right now (it
 * loaded the pointer before it was replaced): one pass over the channels'
 * threads is the grace period after which nobody holds it (as bs_defer_free).
 * done(arg, 0) runs after the release, so that the operation's caller, who
 * may unload the store next, finds nothing left in flight.
 */
static void release_later(struct ust_blob *blob, bool deleted, bs_done_fn done, void *arg)
{
	struct defer_release *d = calloc(1, sizeof(*d));

	if (d == NULL) {
		UST_ERRLOG("blobstore: no memory to defer releasing blob 0x%llx\n",
			   (unsigned long long)blob->id);
		release_now(blob, deleted);
		if (done != NULL) {
			done(arg, 0);
		}
		return;
	}
	d->bs = blob->bs;
	d->blob = blob;
	d->deleted = deleted;
	d->done = done;
	d->arg = arg;
	blob->bs->ops++;
	ust_for_each_channel(blob->bs, release_visit, d, release_done);
}

/* Make new the blob's parent (taking a reference); done once the old one is released. */
static void switch_parent(struct ust_blob *blob, struct ust_blob *new_parent, bool broken,
			  bs_done_fn done, void *arg)
{
	struct ust_blob *old = blob->parent;

	if (new_parent != NULL) {
		new_parent->refs++;
		new_parent->child_refs++;
	}
	blob->parent_broken = broken;
	__atomic_store_n(&blob->parent, new_parent, __ATOMIC_RELEASE);
	if (old != NULL) {
		old->child_refs--;
		release_later(old, false, done, arg);
	} else {
		done(arg, 0);
	}
}

/* A private holder for the caller's xattrs, validated at the call. */
static int xattrs_hold(struct ust_blob_store *bs, const struct ust_blob_xattr *x, size_t n,
		       struct ust_blob **holder)
{
	int rc;

	*holder = bs_blob_alloc(bs, 0);
	if (*holder == NULL) {
		return -ENOMEM;
	}
	rc = bs_blob_set_xattrs(*holder, x, n);
	if (rc != 0) {
		bs_blob_free(*holder);
		*holder = NULL;
	}
	return rc;
}

static void xattrs_give(struct ust_blob *holder, struct ust_blob *to)
{
	TAILQ_CONCAT(&to->xattrs, &holder->xattrs, link);
	to->change_seq++;
}

static struct bs_map *map_copy(const struct bs_map *from, uint64_t len)
{
	struct bs_map *m = calloc(1, sizeof(*m) + len * sizeof(uint32_t));
	uint64_t i;

	if (m == NULL) {
		return NULL;
	}
	m->len = len;
	for (i = 0; from != NULL && i < len && i < from->len; i++) {
		m->c[i] = bs_map_get(from, i);
	}
	return m;
}

static void ignore_close(void *arg, int rc)
{
	(void)arg;
	(void)rc;
}

/* ---- snapshot (9.4 "Snapshot") ----------------------------------------------------------- */

enum snap_state {
	SNAP_CHECK,    /* B is open */
	SNAP_SYNC_B,   /* B's writes are drained: make B's version durable */
	SNAP_NEW,      /* B is durable at generation b: reserve S's slot */
	SNAP_STEP1,    /* S is reserved: write S with the intent */
	SNAP_STEP2,    /* step 1 committed: B becomes S's clone */
	SNAP_STEP3,    /* step 2 committed: drop S's intent */
	SNAP_DONE,
};

struct snap_op {
	enum snap_state state;
	struct ust_blob_store *bs;
	ust_blob_id id;
	struct ust_blob *b;
	struct ust_blob *s;
	struct ust_blob *xattrs;
	bool busy; /* this operation set b->op_busy */
	bool frozen;
	/* B as it was, to restore if step 2 fails. */
	struct bs_map *old_map;
	uint32_t old_flags;
	uint64_t old_allocated;
	int rc;
	ust_blob_op_with_id_cb cb;
	void *arg;
};

static void snap_step(struct snap_op *op);

static void snap_finish(struct snap_op *op)
{
	struct ust_blob_store *bs = op->bs;
	ust_blob_id sid = op->rc == 0 ? op->s->id : 0;

	if (op->b != NULL) {
		if (op->frozen) {
			bs_blob_unfreeze(op->b);
		}
		if (op->busy) {
			op->b->op_busy = false;
		}
		ust_blob_close(op->b, ignore_close, NULL);
	}
	if (op->xattrs != NULL) {
		bs_blob_free(op->xattrs);
	}
	bs->ops--;
	op->cb(op->arg, sid, op->rc);
	free(op);
}

static void snap_done(void *arg, int rc)
{
	struct snap_op *op = arg;

	op->rc = rc;
	snap_step(op);
}

static void snap_opened(void *arg, struct ust_blob *blob, int rc)
{
	struct snap_op *op = arg;

	op->b = blob;
	op->rc = rc;
	snap_step(op);
}

static void snap_new_done(void *arg, struct ust_blob *blob, int rc)
{
	struct snap_op *op = arg;

	op->s = blob;
	op->rc = rc;
	snap_step(op);
}

/* S in memory: B's size, parent and clusters, read-only, with the intent. */
static int snap_build(struct snap_op *op)
{
	struct ust_blob *b = op->b, *s = op->s;

	s->map = map_copy(b->map, b->map->len);
	if (s->map == NULL) {
		return -ENOMEM;
	}
	s->num_clusters = b->num_clusters;
	s->flags = UST_BS_BLOB_SNAPSHOT | UST_BS_BLOB_READ_ONLY | (b->flags & UST_BS_BLOB_THIN);
	s->parent_id = b->parent_id;
	s->num_allocated = b->num_allocated;
	s->has_pending = true;
	s->pending.op = UST_BS_OP_SNAPSHOT_OF;
	s->pending.other_blob_id = b->id;
	s->pending.other_generation = b->gen;
	s->change_seq = 1;
	xattrs_give(op->xattrs, s);
	return 0;
}

/* Step 2 in memory: B reads through S, owns nothing, and names S its parent. */
static int snap_repoint_b(struct snap_op *op)
{
	struct ust_blob *b = op->b, *s = op->s;
	struct bs_map *empty = map_copy(NULL, b->map->len);

	if (empty == NULL) {
		return -ENOMEM;
	}
	/* S takes over B's reference on B's parent. */
	s->parent = b->parent;
	s->parent_broken = b->parent_broken;
	bs_blob_list_open(s);
	s->child_refs = 1;
	op->old_map = b->map;
	op->old_flags = b->flags;
	op->old_allocated = b->num_allocated;
	/* The parent first, then the map: a reader that sees the empty map
	 * finds S behind it (release/acquire). Both show the same data. */
	b->parent_broken = false;
	__atomic_store_n(&b->parent, s, __ATOMIC_RELEASE);
	__atomic_store_n(&b->map, empty, __ATOMIC_RELEASE);
	b->parent_id = s->id;
	b->flags |= UST_BS_BLOB_THIN;
	b->num_allocated = 0;
	b->change_seq++;
	op->bs->rel[s->slot].id = s->id;
	op->bs->rel[s->slot].parent = s->parent_id;
	return 0;
}

static void snap_released(void *arg, int rc)
{
	struct snap_op *op = arg;

	(void)rc;
	snap_finish(op);
}

/* Step 2 failed: B is again what it was; S's root may be durable, with its intent. */
static void snap_restore_b(struct snap_op *op)
{
	struct ust_blob *b = op->b, *s = op->s;
	struct bs_map *empty = b->map;

	__atomic_store_n(&b->map, op->old_map, __ATOMIC_RELEASE);
	bs_defer_free(op->bs, empty);
	b->parent_broken = s->parent_broken;
	__atomic_store_n(&b->parent, s->parent, __ATOMIC_RELEASE);
	b->parent_id = s->parent_id;
	b->flags = op->old_flags;
	b->num_allocated = op->old_allocated;
	b->change_seq++;
	/* B's next commit (parent not S) makes the next load remove S (9.4);
	 * until then S keeps its slot, and the load must be dirty. */
	s->parent = NULL;
	bs_blob_unlist(s);
	memset(&op->bs->rel[s->slot], 0, sizeof(op->bs->rel[s->slot]));
	op->bs->leaked = true;
	op->s = NULL;
	op->state = SNAP_DONE;
	release_later(s, true, snap_released, op);
}

static void snap_step(struct snap_op *op)
{
	struct ust_blob_store *bs = op->bs;
	struct ust_blob *b = op->b;
	int rc;

	switch (op->state) {
	case SNAP_CHECK:
		if (op->rc != 0) {
			op->b = NULL;
			snap_finish(op);
			return;
		}
		if (b->flags & UST_BS_BLOB_READ_ONLY) {
			UST_ERRLOG("blob 0x%llx is read-only: snapshot it by cloning it instead\n",
				   (unsigned long long)b->id);
			op->rc = -EINVAL;
		} else if (b->md_read_only) {
			op->rc = -EPERM;
		} else if (b->op_busy || b->has_pending) {
			op->rc = -EBUSY;
		}
		if (op->rc != 0) {
			snap_finish(op);
			return;
		}
		b->op_busy = true;
		op->busy = true;
		op->frozen = true;
		op->state = SNAP_SYNC_B;
		bs_blob_freeze(b, snap_done, op);
		break;
	case SNAP_SYNC_B:
		/* Everything B had so far is committed at one generation b. */
		op->state = SNAP_NEW;
		bs_blob_sync(b, snap_done, op);
		break;
	case SNAP_NEW:
		if (op->rc != 0) {
			snap_finish(op);
			return;
		}
		op->state = SNAP_STEP1;
		bs_blob_new(bs, snap_new_done, op);
		break;
	case SNAP_STEP1:
		if (op->rc != 0) {
			snap_finish(op);
			return;
		}
		op->rc = snap_build(op);
		if (op->rc != 0) {
			bs_blob_new_abort(op->s);
			snap_finish(op);
			return;
		}
		op->state = SNAP_STEP2;
		bs_blob_sync(op->s, snap_done, op);
		break;
	case SNAP_STEP2:
		if (op->rc != 0) {
			/* S's root may have reached the disk: B never names it, so the
			 * next load removes it; make that load a dirty one. */
			bs->leaked = true;
			bs_blob_new_abort(op->s);
			snap_finish(op);
			return;
		}
		rc = snap_repoint_b(op);
		if (rc != 0) {
			op->rc = rc;
			bs->leaked = true;
			bs_blob_new_abort(op->s);
			snap_finish(op);
			return;
		}
		op->state = SNAP_STEP3;
		bs_blob_sync(b, snap_done, op);
		break;
	case SNAP_STEP3:
		if (op->rc != 0) {
			snap_restore_b(op);
			return;
		}
		bs_defer_free(bs, op->old_map);
		op->old_map = NULL;
		bs->rel[b->slot].parent = op->s->id;
		/* Acknowledgeable from here; B's writes resume. B's next parent
		 * change (op_busy) waits for step 3. */
		bs_blob_unfreeze(b);
		op->frozen = false;
		op->s->has_pending = false;
		op->s->change_seq++;
		op->state = SNAP_DONE;
		bs_blob_sync(op->s, snap_done, op);
		break;
	case SNAP_DONE:
		if (op->rc != 0 && op->s != NULL) {
			/* The snapshot is durable (step 2); the intent stays on disk
			 * and the next (dirty) load drops it. */
			UST_ERRLOG("snapshot 0x%llx: dropping its intent failed: %s\n",
				   (unsigned long long)op->s->id, strerror(-op->rc));
			bs->leaked = true;
			op->rc = 0;
		}
		snap_finish(op);
		break;
	}
}

void ust_bs_create_snapshot(struct ust_blob_store *bs, ust_blob_id blob_id,
			    const struct ust_blob_xattr *xattrs, size_t xattr_count,
			    ust_blob_op_with_id_cb cb, void *arg)
{
	struct snap_op *op;
	int rc;

	if (!bs_on_md_thread(bs)) {
		cb(arg, 0, -EXDEV);
		return;
	}
	op = calloc(1, sizeof(*op));
	if (op == NULL) {
		cb(arg, 0, -ENOMEM);
		return;
	}
	rc = xattrs_hold(bs, xattrs, xattrs != NULL ? xattr_count : 0, &op->xattrs);
	if (rc != 0) {
		free(op);
		cb(arg, 0, rc);
		return;
	}
	op->bs = bs;
	op->id = blob_id;
	op->cb = cb;
	op->arg = arg;
	op->state = SNAP_CHECK;
	bs->ops++;
	ust_bs_open_blob(bs, blob_id, snap_opened, op);
}

/* ---- clone (9.4 "Clone") ------------------------------------------------------------------ */

enum clone_state {
	CLONE_CHECK, /* P is open */
	CLONE_WRITE, /* C's slot is reserved: one root, atomic as a create */
	CLONE_DONE,
};

struct clone_op {
	enum clone_state state;
	struct ust_blob_store *bs;
	struct ust_blob *p;
	struct ust_blob *c;
	struct ust_blob *xattrs;
	int rc;
	ust_blob_op_with_id_cb cb;
	void *arg;
};

static void clone_step(struct clone_op *op);

static void clone_finish(struct clone_op *op)
{
	ust_blob_id id = 0;

	if (op->c != NULL) {
		if (op->rc == 0) {
			id = op->c->id;
			op->bs->rel[op->c->slot].id = id;
			op->bs->rel[op->c->slot].parent = op->c->parent_id;
			bs_blob_free(op->c);
		} else {
			bs_blob_new_abort(op->c);
		}
	}
	if (op->p != NULL) {
		ust_blob_close(op->p, ignore_close, NULL);
	}
	if (op->xattrs != NULL) {
		bs_blob_free(op->xattrs);
	}
	op->bs->ops--;
	op->cb(op->arg, id, op->rc);
	free(op);
}

static void clone_opened(void *arg, struct ust_blob *blob, int rc)
{
	struct clone_op *op = arg;

	op->p = blob;
	op->rc = rc;
	clone_step(op);
}

static void clone_new_done(void *arg, struct ust_blob *blob, int rc)
{
	struct clone_op *op = arg;

	op->c = blob;
	op->rc = rc;
	clone_step(op);
}

static void clone_done(void *arg, int rc)
{
	struct clone_op *op = arg;

	op->rc = rc;
	clone_step(op);
}

static void clone_step(struct clone_op *op)
{
	struct ust_blob *p = op->p, *c;

	if (op->rc != 0) {
		clone_finish(op);
		return;
	}
	switch (op->state) {
	case CLONE_CHECK:
		if (!(p->flags & UST_BS_BLOB_READ_ONLY)) {
			/* A writable parent would change under its clones. */
			UST_ERRLOG("blob 0x%llx is writable: only snapshots and read-only blobs are cloned\n",
				   (unsigned long long)p->id);
			op->rc = -EINVAL;
		} else if (p->has_pending || p->op_busy) {
			op->rc = -EBUSY;
		}
		if (op->rc != 0) {
			clone_finish(op);
			return;
		}
		op->state = CLONE_WRITE;
		bs_blob_new(op->bs, clone_new_done, op);
		break;
	case CLONE_WRITE:
		c = op->c;
		c->num_clusters = p->map->len;
		c->flags = UST_BS_BLOB_THIN;
		c->parent_id = p->id;
		c->change_seq = 1;
		c->map = map_copy(NULL, c->num_clusters);
		if (c->map == NULL) {
			op->rc = -ENOMEM;
			clone_finish(op);
			return;
		}
		xattrs_give(op->xattrs, c);
		op->state = CLONE_DONE;
		bs_blob_sync(c, clone_done, op);
		break;
	case CLONE_DONE:
		clone_finish(op);
		break;
	}
}

void ust_bs_create_clone(struct ust_blob_store *bs, ust_blob_id snapshot_id,
			 const struct ust_blob_xattr *xattrs, size_t xattr_count,
			 ust_blob_op_with_id_cb cb, void *arg)
{
	struct clone_op *op;
	int rc;

	if (!bs_on_md_thread(bs)) {
		cb(arg, 0, -EXDEV);
		return;
	}
	op = calloc(1, sizeof(*op));
	if (op == NULL) {
		cb(arg, 0, -ENOMEM);
		return;
	}
	rc = xattrs_hold(bs, xattrs, xattrs != NULL ? xattr_count : 0, &op->xattrs);
	if (rc != 0) {
		free(op);
		cb(arg, 0, rc);
		return;
	}
	op->bs = bs;
	op->cb = cb;
	op->arg = arg;
	op->state = CLONE_CHECK;
	bs->ops++;
	ust_bs_open_blob(bs, snapshot_id, clone_opened, op);
}

/* ---- inflate and decouple (9.4 "Metadata update of one blob") ------------------------------- */

enum copy_state {
	COPY_CHECK,     /* the blob is open */
	COPY_NEXT,      /* find the next cluster to copy, or move on */
	COPY_READ,      /* the source cluster is in buf */
	COPY_WRITTEN,   /* buf is in the new cluster */
	COPY_FLUSHED,   /* the batch's data is durable: let a commit name it */
	COPY_SYNCED,    /* the batch is committed */
	COPY_FROZEN,    /* writes drained: last pass, then the parent changes */
	COPY_COMMITTED, /* the new parent is durable */
	COPY_RELEASED,  /* the old parent is let go of */
};

struct copy_op {
	enum copy_state state;
	struct ust_blob_store *bs;
	bool decouple;
	struct ust_blob *blob;
	uint64_t next;
	struct bs_alloc *cur;
	struct bs_alloc *batch[COPY_BATCH];
	uint32_t nbatch;
	uint8_t *buf;
	bool busy;
	bool frozen;
	int rc;    /* the operation's outcome (sticky) */
	int io_rc; /* the last step's own result */
	ust_blob_id old_parent_id;
	ust_blob_op_cb cb;
	void *arg;
};

static void copy_step(struct copy_op *op);

/* What cluster index must be copied from; 0: nothing (or *broken). */
static uint32_t copy_source(struct copy_op *op, uint64_t i, bool *broken)
{
	struct ust_blob *p = op->blob->parent;
	const struct bs_map *m;

	*broken = false;
	if (!op->decouple) {
		return bs_chain_lookup(op->blob, i, broken);
	}
	/* Decouple: only what the immediate parent itself holds. */
	if (p == NULL) {
		*broken = op->blob->parent_broken;
		return 0;
	}
	m = p->map;
	return i < m->len ? m->c[i] : 0;
}

static bool copy_needed(struct copy_op *op, uint64_t i, uint32_t *src, bool *broken)
{
	*src = 0;
	*broken = false;
	if (bs_map_get(op->blob->map, i) != 0 || bs_alloc_find(op->blob, i) != NULL) {
		return false;
	}
	*src = copy_source(op, i, broken);
	return *src != 0 || *broken;
}

static void copy_finish(struct copy_op *op)
{
	struct ust_blob *blob = op->blob;

	if (blob != NULL) {
		if (op->frozen) {
			bs_blob_unfreeze(blob);
		}
		if (op->busy) {
			blob->op_busy = false;
		}
		ust_blob_close(blob, ignore_close, NULL);
	}
	bs_dma_free(op->buf);
	op->bs->ops--;
	op->cb(op->arg, op->rc);
	free(op);
}

static void copy_opened(void *arg, struct ust_blob *blob, int rc)
{
	struct copy_op *op = arg;

	op->blob = blob;
	op->rc = rc;
	copy_step(op);
}

static void copy_done(void *arg, int rc)
{
	struct copy_op *op = arg;

	op->io_rc = rc;
	if (rc != 0 && op->rc == 0) {
		op->rc = rc;
	}
	copy_step(op);
}

static void copy_abandon_batch(struct copy_op *op)
{
	uint32_t i;

	for (i = 0; i < op->nbatch; i++) {
		bs_alloc_abandon(op->blob, op->batch[i], 0);
	}
	op->nbatch = 0;
}

static int copy_check(struct copy_op *op)
{
	struct ust_blob *blob = op->blob;
	uint64_t i, need = 0;
	uint32_t src;
	bool broken;

	if ((blob->flags & UST_BS_BLOB_READ_ONLY) || blob->md_read_only) {
		return -EPERM;
	}
	if (blob->op_busy || blob->has_pending ||
	    (blob->parent != NULL && (blob->parent->op_busy || blob->parent->has_pending))) {
		return -EBUSY;
	}
	if (blob->parent_id == 0) {
		return op->decouple ? -EINVAL : 1;
	}
	for (i = 0; i < blob->map->len; i++) {
		if (copy_needed(op, i, &src, &broken)) {
			if (broken) {
				return -EIO;
			}
			need++;
		}
	}
	if (need > blob->bs->free_clusters) {
		UST_ERRLOG("blob 0x%llx: %s needs %llu clusters, %llu free\n",
			   (unsigned long long)blob->id, op->decouple ? "decouple" : "inflate",
			   (unsigned long long)need, (unsigned long long)blob->bs->free_clusters);
		return -ENOSPC;
	}
	return 0;
}

/* Start copying the next cluster that needs it; false when there is none. */
static bool copy_start_next(struct copy_op *op)
{
	struct ust_blob *blob = op->blob;
	struct ust_blob_store *bs = blob->bs;
	struct bs_alloc *a;
	uint32_t src = 0;
	bool broken = false;

	while (op->next < blob->map->len && !copy_needed(op, op->next, &src, &broken)) {
		op->next++;
	}
	if (op->next >= blob->map->len) {
		return false;
	}
	if (broken) {
		op->rc = -EIO;
		return false;
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		op->rc = -ENOMEM;
		return false;
	}
	a->cluster = bs_cluster_alloc(bs);
	if (a->cluster == 0) {
		free(a);
		op->rc = -ENOSPC;
		return false;
	}
	/* An allocation like a first write's: writers of the cluster wait on it. */
	a->index = op->next++;
	a->state = BS_ALLOC_FILLING;
	TAILQ_INIT(&a->waiters);
	TAILQ_INSERT_TAIL(&blob->allocs, a, link);
	op->cur = a;
	op->state = COPY_READ;
	bs_dev_read_bytes(bs, (uint64_t)src * bs->cluster_size, bs->cluster_size, op->buf, copy_done,
			  op);
	return true;
}

/* Commit the new parent: none (inflate) or the parent's parent (decouple). */
static void copy_commit(struct copy_op *op)
{
	struct ust_blob *blob = op->blob, *p = blob->parent;

	op->old_parent_id = blob->parent_id;
	blob->parent_id = op->decouple && p != NULL ? p->parent_id : 0;
	if (!op->decouple) {
		/* Inflated: clusters nothing ever wrote stay holes and read zeros. */
		blob->flags |= UST_BS_BLOB_THIN;
	}
	blob->change_seq++;
	op->state = COPY_COMMITTED;
	bs_blob_sync(blob, copy_done, op);
}

static void copy_step(struct copy_op *op)
{
	struct ust_blob_store *bs = op->bs;
	struct ust_blob *blob = op->blob;
	struct ust_blob *p;
	uint32_t i;
	int rc;

	switch (op->state) {
	case COPY_CHECK:
		if (op->rc != 0) {
			op->blob = NULL;
			copy_finish(op);
			return;
		}
		rc = copy_check(op);
		if (rc != 0) {
			op->rc = rc > 0 ? 0 : rc;
			copy_finish(op);
			return;
		}
		op->buf = bs_dma_page_alloc((uint32_t)(bs->cluster_size / UST_BS_PAGE_SIZE));
		if (op->buf == NULL) {
			op->rc = -ENOMEM;
			copy_finish(op);
			return;
		}
		blob->op_busy = true;
		op->busy = true;
		op->state = COPY_NEXT;
		copy_step(op);
		break;
	case COPY_NEXT:
		if (op->rc == 0 && op->nbatch < COPY_BATCH && copy_start_next(op)) {
			return;
		}
		if (op->nbatch > 0) {
			/* Rule 5: the copies are durable before a map names them. */
			op->state = COPY_FLUSHED;
			bs_dev_flush(bs, copy_done, op);
			return;
		}
		if (op->rc != 0) {
			copy_finish(op);
			return;
		}
		if (!op->frozen) {
			/* Writers that allocate on their own may still be filling:
			 * drain them, then look once more before the parent goes. */
			op->frozen = true;
			op->state = COPY_FROZEN;
			bs_blob_freeze(blob, copy_done, op);
			return;
		}
		copy_commit(op);
		break;
	case COPY_READ:
		if (op->io_rc != 0) {
			bs_alloc_abandon(blob, op->cur, 0);
			op->state = COPY_NEXT;
			copy_step(op);
			return;
		}
		op->state = COPY_WRITTEN;
		bs_dev_write_bytes(bs, (uint64_t)op->cur->cluster * bs->cluster_size, bs->cluster_size,
				   op->buf, copy_done, op);
		break;
	case COPY_WRITTEN:
		if (op->io_rc != 0) {
			bs_alloc_abandon(blob, op->cur, 0);
		} else {
			op->batch[op->nbatch++] = op->cur;
		}
		op->cur = NULL;
		op->state = COPY_NEXT;
		copy_step(op);
		break;
	case COPY_FLUSHED:
		if (op->io_rc != 0) {
			copy_abandon_batch(op);
			copy_finish(op);
			return;
		}
		for (i = 0; i < op->nbatch; i++) {
			op->batch[i]->state = BS_ALLOC_FILLED;
		}
		op->nbatch = 0;
		op->state = COPY_SYNCED;
		bs_blob_sync(blob, copy_done, op);
		break;
	case COPY_SYNCED:
		op->state = COPY_NEXT;
		copy_step(op);
		break;
	case COPY_FROZEN:
		op->next = 0;
		op->state = COPY_NEXT;
		copy_step(op);
		break;
	case COPY_COMMITTED:
		if (op->io_rc != 0) {
			/* The disk may hold either version: the next load decides. */
			blob->parent_id = op->old_parent_id;
			blob->change_seq++;
			bs->leaked = true;
			copy_finish(op);
			return;
		}
		p = blob->parent;
		bs->rel[blob->slot].parent = blob->parent_id;
		op->state = COPY_RELEASED;
		if (op->decouple && p != NULL) {
			switch_parent(blob, p->parent, p->parent_broken, copy_done, op);
		} else {
			switch_parent(blob, NULL, false, copy_done, op);
		}
		break;
	case COPY_RELEASED:
		copy_finish(op);
		break;
	}
}

static void copy_start(struct ust_blob_store *bs, ust_blob_id id, bool decouple,
		       ust_blob_op_cb cb, void *arg)
{
	struct copy_op *op;

	if (!bs_on_md_thread(bs)) {
		cb(arg, -EXDEV);
		return;
	}
	op = calloc(1, sizeof(*op));
	if (op == NULL) {
		cb(arg, -ENOMEM);
		return;
	}
	op->bs = bs;
	op->decouple = decouple;
	op->cb = cb;
	op->arg = arg;
	op->state = COPY_CHECK;
	bs->ops++;
	ust_bs_open_blob(bs, id, copy_opened, op);
}

void ust_bs_inflate_blob(struct ust_blob_store *bs, struct ust_io_channel *ch, ust_blob_id id,
			 ust_blob_op_cb cb, void *arg)
{
	/* The copies are metadata-thread work on its own channel. */
	(void)ch;
	copy_start(bs, id, false, cb, arg);
}

void ust_bs_blob_decouple_parent(struct ust_blob_store *bs, struct ust_io_channel *ch,
				 ust_blob_id id, ust_blob_op_cb cb, void *arg)
{
	(void)ch;
	copy_start(bs, id, true, cb, arg);
}

/* ---- delete a snapshot with one clone (9.4 "Delete a snapshot S ...") -------------------------- */

enum merge_state {
	MERGE_CHECK,  /* C (and through it S) is open */
	MERGE_STEP1,  /* C's writes are drained: C takes S's clusters, with the intent */
	MERGE_STEP2,  /* step 1 committed: S's tombstone */
	MERGE_STEP3,  /* step 2 committed: drop C's intent */
	MERGE_DONE,
	MERGE_RELEASED, /* S is being let go of (merge_released finishes) */
};

struct merge_op {
	enum merge_state state;
	struct ust_blob_store *bs;
	ust_blob_id sid;
	struct ust_blob *c;
	struct ust_blob *s;
	uint8_t *taken; /* per cluster of S: C took it */
	bool busy;      /* this operation set the op_busy flags */
	bool frozen;
	int rc;
	ust_blob_op_cb cb;
	void *arg;
};

static void merge_step(struct merge_op *op);

static void merge_finish(struct merge_op *op)
{
	if (op->c != NULL) {
		if (op->frozen) {
			bs_blob_unfreeze(op->c);
		}
		if (op->busy) {
			op->c->op_busy = false;
		}
		ust_blob_close(op->c, ignore_close, NULL);
	}
	free(op->taken);
	op->bs->ops--;
	op->cb(op->arg, op->rc);
	free(op);
}

static void merge_opened(void *arg, struct ust_blob *blob, int rc)
{
	struct merge_op *op = arg;

	op->c = blob;
	op->rc = rc;
	merge_step(op);
}

static void merge_done(void *arg, int rc)
{
	struct merge_op *op = arg;

	op->rc = rc;
	merge_step(op);
}

static void merge_released(void *arg, int rc)
{
	struct merge_op *op = arg;

	(void)rc;
	merge_finish(op);
}

static int merge_check(struct merge_op *op)
{
	struct ust_blob *c = op->c, *s = c->parent;

	if (s == NULL || s->id != op->sid) {
		UST_ERRLOG("blob 0x%llx: its snapshot 0x%llx is not available for a merge\n",
			   (unsigned long long)c->id, (unsigned long long)op->sid);
		return c->parent_broken ? -EIO : -EBUSY;
	}
	if (s->refs != s->child_refs) {
		UST_ERRLOG("blob 0x%llx is open: close it before deleting it\n",
			   (unsigned long long)s->id);
		return -EBUSY;
	}
	if (s->deleting) {
		return -ENOENT;
	}
	if (c->md_read_only) {
		return -EPERM;
	}
	if (s->op_busy || s->has_pending || c->op_busy || c->has_pending) {
		return -EBUSY;
	}
	return 0;
}

/* Step 1 in memory: every hole of C that S fills becomes C's, with the intent. */
static int merge_build(struct merge_op *op)
{
	struct ust_blob *c = op->c, *s = op->s;
	uint64_t i, n = c->map->len < s->map->len ? c->map->len : s->map->len;
	struct bs_alloc *a;

	op->taken = calloc(s->map->len / 8 + 1, 1);
	if (op->taken == NULL) {
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		if (bs_map_get(c->map, i) != 0 || s->map->c[i] == 0 || bs_alloc_find(c, i) != NULL) {
			continue;
		}
		/* Published by the commit like a filled first write (its data is
		 * durable: it is S's); writers of that cluster wait for it. */
		a = calloc(1, sizeof(*a));
		if (a == NULL) {
			return -ENOMEM;
		}
		a->index = i;
		a->cluster = s->map->c[i];
		a->state = BS_ALLOC_FILLED;
		TAILQ_INIT(&a->waiters);
		TAILQ_INSERT_TAIL(&c->allocs, a, link);
		bs_bit_set(op->taken, i);
	}
	c->parent_id = s->parent_id;
	c->has_pending = true;
	c->pending.op = UST_BS_OP_MERGED_FROM;
	c->pending.other_blob_id = s->id;
	c->pending.other_generation = s->gen;
	c->change_seq++;
	return 0;
}

/* Nothing was committed: C and S are as they were. */
static void merge_undo(struct merge_op *op)
{
	struct ust_blob *c = op->c;
	struct bs_alloc *a, *tmp;

	for (a = TAILQ_FIRST(&c->allocs); a != NULL; a = tmp) {
		tmp = TAILQ_NEXT(a, link);
		if (a->owner == NULL && a->state == BS_ALLOC_FILLED && op->taken != NULL &&
		    bs_bit_get(op->taken, a->index) && a->cluster == op->s->map->c[a->index]) {
			TAILQ_REMOVE(&c->allocs, a, link);
			free(a);
		}
	}
	c->parent_id = op->s->id;
	c->has_pending = false;
	c->change_seq++;
	op->s->deleting = false;
	op->s->op_busy = false;
}

static void merge_step(struct merge_op *op)
{
	struct ust_blob_store *bs = op->bs;
	struct ust_blob *c = op->c, *s = op->s;
	uint64_t i;
	int rc;

	switch (op->state) {
	case MERGE_CHECK:
		if (op->rc != 0) {
			op->c = NULL;
			merge_finish(op);
			return;
		}
		op->rc = merge_check(op);
		if (op->rc != 0) {
			merge_finish(op);
			return;
		}
		op->s = c->parent;
		op->s->deleting = true; /* new opens of S: -ENOENT */
		op->s->op_busy = true;
		c->op_busy = true;
		op->busy = true;
		op->state = MERGE_STEP1;
		if (!(c->flags & UST_BS_BLOB_READ_ONLY)) {
			op->frozen = true;
			bs_blob_freeze(c, merge_done, op);
			return;
		}
		merge_step(op);
		break;
	case MERGE_STEP1:
		rc = merge_build(op);
		if (rc != 0) {
			merge_undo(op);
			op->rc = rc;
			merge_finish(op);
			return;
		}
		op->state = MERGE_STEP2;
		bs_blob_sync(c, merge_done, op);
		break;
	case MERGE_STEP2:
		if (op->rc != 0) {
			/* bs_allocs_committed dropped the allocations (S still owns
			 * the clusters); the disk may hold either version of C. */
			merge_undo(op);
			bs->leaked = true;
			merge_finish(op);
			return;
		}
		/* The merge happened (9.4): C reads on past S. */
		bs->rel[c->slot].parent = c->parent_id;
		s->child_refs--;
		if (s->parent != NULL) {
			s->parent->refs++;
			s->parent->child_refs++;
		}
		c->parent_broken = s->parent_broken;
		__atomic_store_n(&c->parent, s->parent, __ATOMIC_RELEASE);
		op->state = MERGE_STEP3;
		bs_blob_write_tombstone(s, merge_done, op);
		break;
	case MERGE_STEP3:
		if (op->rc != 0) {
			/* C keeps its intent, so the next load writes the tombstone. */
			UST_ERRLOG("snapshot 0x%llx: tombstone failed after the merge: %s\n",
				   (unsigned long long)s->id, strerror(-op->rc));
			bs->leaked = true;
			bs_blob_unlist(s);
			memset(&bs->rel[s->slot], 0, sizeof(bs->rel[s->slot]));
			op->s = NULL;
			op->state = MERGE_RELEASED;
			release_later(s, true, merge_released, op);
			return;
		}
		bs_bit_clear(bs->bbm, s->slot);
		memset(&bs->rel[s->slot], 0, sizeof(bs->rel[s->slot]));
		bs_blob_unlist(s);
		if (op->frozen) {
			bs_blob_unfreeze(c);
			op->frozen = false;
		}
		c->has_pending = false;
		c->change_seq++;
		op->state = MERGE_DONE;
		bs_blob_sync(c, merge_done, op);
		break;
	case MERGE_DONE:
		if (op->rc != 0) {
			/* Done on disk except the intent: the next load drops it. */
			UST_ERRLOG("blob 0x%llx: dropping the merge intent failed: %s\n",
				   (unsigned long long)c->id, strerror(-op->rc));
			bs->leaked = true;
			op->rc = 0;
		}
		/* S's tombstone is durable: what C did not take is free (rule 4). */
		for (i = 0; i < s->map->len; i++) {
			if (s->map->c[i] != 0 && !bs_bit_get(op->taken, i)) {
				bs_cluster_free(bs, s->map->c[i]);
			}
		}
		op->s = NULL;
		op->state = MERGE_RELEASED;
		release_later(s, true, merge_released, op);
		break;
	case MERGE_RELEASED:
		break;
	}
}

void bs_delete_merge(struct ust_blob_store *bs, ust_blob_id id, ust_blob_op_cb cb, void *arg)
{
	struct merge_op *op = calloc(1, sizeof(*op));
	ust_blob_id clone = 0;

	if (op == NULL) {
		cb(arg, -ENOMEM);
		return;
	}
	bs_count_clones(bs, id, &clone);
	op->bs = bs;
	op->sid = id;
	op->cb = cb;
	op->arg = arg;
	op->state = MERGE_CHECK;
	bs->ops++;
	ust_bs_open_blob(bs, clone, merge_opened, op);
}
