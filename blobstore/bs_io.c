/*
 * The blob data path: per-thread channels, requests split at cluster
 * boundaries (except where the blob's clusters lie back to back on the
 * device: a read or write over such a run is one bdev I/O), reads of holes
 * as zeros, and the allocation of a thin blob's cluster on its first write.
 *
 * Guarantees (docs/blobstore-format.md 9.1 rule 5, 9.4 "cluster allocation"):
 * a cluster is claimed on the metadata thread, so two writers racing for the
 * same unallocated cluster produce one allocation; the claimed cluster's full
 * content (zeros around the user's data) is written and flushed before the
 * metadata that maps it is committed, also when the write covers the whole
 * cluster (else the map could outlive the data in a volatile cache); the
 * map entry becomes visible to other threads, and any write is acknowledged,
 * only after that commit. Other writers to the cluster wait for the commit
 * and then write normally, so nothing they write can be overwritten by the
 * zero fill. A failed allocation leaves the store consistent.
 *
 * Clones (8.1): a hole reads the nearest ancestor's cluster, or zeros; the
 * first write to such a cluster fills the new cluster with the ancestor's
 * data merged with the write (copy-on-write), under the same rules; a
 * hole that must read zeros after write_zeroes or unmap gets a zeroed
 * cluster. A frozen blob's writes (snapshot, merge) wait on the metadata
 * thread and run after the unfreeze; the freeze completes only when no
 * write that passed it is still in flight.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"
#include "ustor/log.h"

#include "blobstore_internal.h"

enum req_op {
	REQ_READ,
	REQ_WRITE,
	REQ_WRITE_ZEROES,
	REQ_UNMAP,
};

struct bs_channel {
	struct ust_blob_store *bs;
	struct ust_io_channel *bdev_ch;
	uint32_t user_refs; /* ust_bs_alloc_io_channel() references (its thread only) */
};

struct bs_request {
	struct ust_blob *blob;
	struct bs_channel *ch;
	struct ust_thread *thread;
	enum req_op op;
	uint32_t pending;
	int rc;
	ust_blob_op_cb cb;
	void *arg;
};

enum piece_state {
	PIECE_SUBMIT,     /* on the caller's thread: use the map */
	PIECE_FROZEN,     /* on the metadata thread: a write that waits for an unfreeze */
	PIECE_CLAIM,      /* on the metadata thread: find or start an allocation */
	PIECE_COW_READ,   /* the parent's cluster is in the bounce buffer: merge, write */
	PIECE_FILLED,     /* fill writes done */
	PIECE_FLUSHED,    /* fill durable: the map may now be committed */
	PIECE_RELEASE,    /* on the metadata thread: unmap a whole thin cluster */
	PIECE_RELEASED,   /* the map without it is durable */
	PIECE_DONE,       /* back on the caller's thread with rc */
};

struct bs_io_piece {
	TAILQ_ENTRY(bs_io_piece) link;
	enum piece_state state;
	struct bs_request *req;
	uint64_t index;   /* blob cluster */
	uint64_t unit;    /* first io unit within the cluster */
	uint64_t units;
	uint32_t cluster; /* device cluster being filled */
	uint32_t src;     /* the parent chain's cluster a fill copies (0: zeros) */
	uint8_t *bounce;  /* a whole cluster, for a copy-on-write fill */
	bool counted;     /* in blob->wr_inflight (the freeze) */
	uint32_t pending;
	int rc;
	int iovcnt;
	struct iovec iov[];
};

static void piece_step(struct bs_io_piece *p);
static void piece_send(struct bs_io_piece *p, struct ust_thread *t);
static void piece_split(struct bs_io_piece *p);
static uint64_t run_clusters(const struct bs_map *m, uint64_t upc, uint64_t index, uint64_t max);

/* ---- channels ---------------------------------------------------------------------- */

size_t bs_channel_ctx_size(void)
{
	return sizeof(struct bs_channel);
}

int bs_channel_create(void *io_device, void *ctx_buf)
{
	struct ust_blob_store *bs = io_device;
	struct bs_channel *ch = ctx_buf;

	ch->bs = bs;
	ch->user_refs = 0;
	ch->bdev_ch = ust_bdev_get_io_channel(bs->desc);
	if (ch->bdev_ch == NULL) {
		return -ENOMEM;
	}
	__atomic_add_fetch(&bs->channels, 1, __ATOMIC_RELAXED);
	return 0;
}

void bs_channel_destroy(void *io_device, void *ctx_buf)
{
	struct ust_blob_store *bs = io_device;
	struct bs_channel *ch = ctx_buf;

	ust_put_io_channel(ch->bdev_ch);
	__atomic_sub_fetch(&bs->channels, 1, __ATOMIC_RELAXED);
}

struct ust_io_channel *ust_bs_alloc_io_channel(struct ust_blob_store *bs)
{
	struct ust_io_channel *ch = ust_get_io_channel(bs);
	struct bs_channel *c;

	if (ch == NULL) {
		return NULL;
	}
	c = ust_io_channel_get_ctx(ch);
	if (c->user_refs++ == 0) {
		__atomic_add_fetch(&bs->channels_held, 1, __ATOMIC_RELAXED);
	}
	return ch;
}

/*
 * The core destroys the channel later, from a message to its thread; the
 * store stops counting it as held now, so an unload right after succeeds
 * (its teardown waits for the destroy).
 */
void ust_bs_free_io_channel(struct ust_io_channel *ch)
{
	struct bs_channel *c;

	if (ch == NULL) {
		return;
	}
	if (ust_io_channel_get_thread(ch) != ust_get_thread()) {
		UST_ERRLOG("blobstore: I/O channel freed from a thread other than its own\n");
		return;
	}
	c = ust_io_channel_get_ctx(ch);
	if (c->user_refs == 0) {
		UST_ERRLOG("blobstore: I/O channel freed more often than allocated\n");
		return;
	}
	if (--c->user_refs == 0) {
		__atomic_sub_fetch(&c->bs->channels_held, 1, __ATOMIC_RELAXED);
	}
	ust_put_io_channel(ch);
}

/* ---- requests and pieces -------------------------------------------------------------- */

static void req_piece_done(struct bs_request *req, int rc)
{
	if (rc != 0 && req->rc == 0) {
		req->rc = rc;
	}
	if (--req->pending == 0) {
		req->cb(req->arg, req->rc);
		free(req);
	}
}

/* ---- write freeze (snapshot and the other multi-blob operations) ------------------------ */

struct freeze_msg {
	struct ust_blob_store *bs;
	ust_blob_id id;
};

/* Metadata thread: the freezer waits for the last counted write. */
static void freeze_check(struct ust_blob *blob)
{
	bs_done_fn fn = blob->freeze_done;

	if (fn != NULL && __atomic_load_n(&blob->wr_inflight, __ATOMIC_SEQ_CST) == 0) {
		blob->freeze_done = NULL;
		fn(blob->freeze_arg, 0);
	}
}

static void freeze_check_msg(void *ctx)
{
	struct freeze_msg *m = ctx;
	struct ust_blob *blob = bs_blob_find_open(m->bs, ust_bs_blobid_slot(m->id));

	/* By id: the message may arrive after the blob was closed. */
	if (blob != NULL && blob->id == m->id) {
		freeze_check(blob);
	}
	free(m);
}

static void write_uncount(struct ust_blob *blob)
{
	struct freeze_msg *m;

	if (__atomic_sub_fetch(&blob->wr_inflight, 1, __ATOMIC_SEQ_CST) != 0 ||
	    __atomic_load_n(&blob->frozen, __ATOMIC_SEQ_CST) == 0) {
		return;
	}
	m = malloc(sizeof(*m));
	if (m == NULL) {
		UST_ERRLOG("blob 0x%llx: no memory to report a drained freeze\n",
			   (unsigned long long)blob->id);
		return;
	}
	m->bs = blob->bs;
	m->id = blob->id;
	if (bs_md_send(blob->bs, freeze_check_msg, m) != 0) {
		free(m);
	}
}

void bs_blob_freeze(struct ust_blob *blob, bs_done_fn done, void *arg)
{
	/* Set, then look at the count; writers count, then look at the flag
	 * (sequentially consistent): one of the two sides sees the other. */
	__atomic_add_fetch(&blob->frozen, 1, __ATOMIC_SEQ_CST);
	blob->freeze_done = done;
	blob->freeze_arg = arg;
	freeze_check(blob);
}

void bs_blob_unfreeze(struct ust_blob *blob)
{
	struct bs_io_piece *p;

	blob->freeze_done = NULL;
	if (__atomic_sub_fetch(&blob->frozen, 1, __ATOMIC_SEQ_CST) != 0) {
		return;
	}
	while ((p = TAILQ_FIRST(&blob->frozen_pieces)) != NULL) {
		TAILQ_REMOVE(&blob->frozen_pieces, p, link);
		p->state = PIECE_SUBMIT;
		piece_send(p, p->req->thread);
	}
}

static void piece_finish(struct bs_io_piece *p)
{
	struct bs_request *req = p->req;
	int rc = p->rc;

	if (p->counted) {
		write_uncount(req->blob);
	}
	bs_dma_free(p->bounce);
	free(p);
	req_piece_done(req, rc);
}

static void piece_run(void *ctx)
{
	piece_step(ctx);
}

/* Continue the piece on thread t (its state says what to do there). */
static void piece_send(struct bs_io_piece *p, struct ust_thread *t)
{
	if (ust_thread_send_msg(t, piece_run, p) != 0) {
		UST_ERRLOG("blobstore: cannot message a thread; failing the I/O\n");
		p->rc = -ENOMEM;
		p->state = PIECE_DONE;
		if (t != p->req->thread && ust_thread_send_msg(p->req->thread, piece_run, p) == 0) {
			return;
		}
		piece_finish(p);
	}
}

static void piece_back(struct bs_io_piece *p, int rc)
{
	p->rc = rc;
	p->state = PIECE_DONE;
	piece_send(p, p->req->thread);
}

static void piece_io_done(void *arg, int rc)
{
	struct bs_io_piece *p = arg;

	if (rc != 0 && p->rc == 0) {
		p->rc = rc;
	}
	if (--p->pending == 0) {
		piece_step(p);
	}
}

static void piece_bdev_done(struct ust_bdev_io *io, int status, void *arg)
{
	(void)io;
	piece_io_done(arg, status);
}

/* Zero the iovec of a piece that reads a hole. */
static void piece_zero_iov(struct bs_io_piece *p)
{
	int i;

	for (i = 0; i < p->iovcnt; i++) {
		memset(p->iov[i].iov_base, 0, p->iov[i].iov_len);
	}
}

static uint64_t dev_block(const struct ust_blob_store *bs, uint32_t cluster, uint64_t unit)
{
	return ((uint64_t)cluster * bs->cluster_size + unit * bs->io_unit) / bs->blocklen;
}

/* Submit the piece's bdev I/O on the caller's channel; 0 or a submit error. */
static int piece_submit_direct(struct bs_io_piece *p, uint32_t c)
{
	struct bs_request *req = p->req;
	struct ust_blob_store *bs = req->blob->bs;
	uint64_t lba = dev_block(bs, c, p->unit);
	uint64_t nblocks = p->units * bs->io_unit / bs->blocklen;

	p->pending = 1;
	switch (req->op) {
	case REQ_READ:
		return ust_bdev_readv_blocks(bs->desc, req->ch->bdev_ch, p->iov, p->iovcnt, lba,
					     nblocks, piece_bdev_done, p);
	case REQ_WRITE:
		return ust_bdev_writev_blocks(bs->desc, req->ch->bdev_ch, p->iov, p->iovcnt, lba,
					      nblocks, piece_bdev_done, p);
	default:
		return ust_bdev_write_zeroes_blocks(bs->desc, req->ch->bdev_ch, lba, nblocks,
						    piece_bdev_done, p);
	}
}

static struct ust_blob *blob_parent(const struct ust_blob *blob)
{
	return __atomic_load_n(&blob->parent, __ATOMIC_ACQUIRE);
}

uint32_t bs_chain_lookup(const struct ust_blob *blob, uint64_t index, bool *broken)
{
	const struct ust_blob *b = blob;
	const struct bs_map *m;
	uint32_t c;

	*broken = false;
	while (b != NULL) {
		m = bs_blob_map(b);
		/* Past an ancestor's end nothing further up shows through. */
		if (index >= m->len) {
			return 0;
		}
		c = bs_map_get(m, index);
		if (c != 0) {
			return c;
		}
		if (b->parent_broken) {
			*broken = true;
			return 0;
		}
		b = blob_parent(b);
	}
	return 0;
}

/*
 * Caller's thread, a write of any kind: count it for the freeze, or, when
 * the blob is frozen, park it on the metadata thread. False if parked.
 */
static bool piece_pass_freeze(struct bs_io_piece *p)
{
	struct ust_blob *blob = p->req->blob;

	if (p->req->op == REQ_READ || p->counted) {
		return true;
	}
	__atomic_add_fetch(&blob->wr_inflight, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&blob->frozen, __ATOMIC_SEQ_CST) != 0) {
		write_uncount(blob);
		p->state = PIECE_FROZEN;
		piece_send(p, blob->bs->md_thread);
		return false;
	}
	p->counted = true;
	return true;
}

/* Caller's thread: the piece looks at the published map. */
static void piece_submit(struct bs_io_piece *p)
{
	struct bs_request *req = p->req;
	struct ust_blob *blob = req->blob;
	struct ust_blob_store *bs = blob->bs;
	const struct bs_map *m;
	uint32_t c, src;
	bool whole = p->unit == 0 && p->units == bs->units_per_cluster;
	bool broken;
	int rc;

	if (!piece_pass_freeze(p)) {
		return;
	}
	m = bs_blob_map(blob);
	if (p->unit + p->units > bs->units_per_cluster &&
	    run_clusters(m, bs->units_per_cluster, p->index, p->unit + p->units) <
		    p->unit + p->units) {
		/* The run was broken since the split (released, snapshotted): cluster by cluster. */
		piece_split(p);
		return;
	}
	c = p->index < m->len ? bs_map_get(m, p->index) : 0;
	if (p->index >= m->len) {
		p->rc = -EINVAL;
		piece_finish(p);
		return;
	}
	if (c == 0) {
		/* A hole shows the parent chain's cluster, or zeros at its end. */
		src = bs_chain_lookup(blob, p->index, &broken);
		if (broken) {
			p->rc = -EIO;
			piece_finish(p);
			return;
		}
		switch (req->op) {
		case REQ_READ:
			if (src != 0) {
				p->state = PIECE_DONE;
				rc = piece_submit_direct(p, src);
				if (rc != 0) {
					p->rc = rc;
					piece_finish(p);
				}
				return;
			}
			piece_zero_iov(p);
			piece_finish(p);
			return;
		case REQ_WRITE_ZEROES:
		case REQ_UNMAP:
			if (src == 0) {
				piece_finish(p);
				return;
			}
			/* It must read zeros, not the parent's data: allocate. */
			p->state = PIECE_CLAIM;
			piece_send(p, bs->md_thread);
			return;
		case REQ_WRITE:
			p->state = PIECE_CLAIM;
			piece_send(p, bs->md_thread);
			return;
		}
	}
	if (req->op == REQ_UNMAP && whole && (blob->flags & UST_BS_BLOB_THIN) &&
	    blob_parent(blob) == NULL && !blob->parent_broken) {
		/* (With a parent, releasing would show the parent's data: zero instead.) */
		p->state = PIECE_RELEASE;
		piece_send(p, bs->md_thread);
		return;
	}
	p->state = PIECE_DONE;
	rc = piece_submit_direct(p, c);
	if (rc != 0) {
		p->rc = rc;
		piece_finish(p);
	}
}

/* ---- allocation on the metadata thread ------------------------------------------------ */

struct bs_alloc *bs_alloc_find(struct ust_blob *blob, uint64_t index)
{
	struct bs_alloc *a;

	TAILQ_FOREACH(a, &blob->allocs, link) {
		if (a->index == index) {
			return a;
		}
	}
	return NULL;
}

static void alloc_sync_done(void *arg, int rc)
{
	/* bs_allocs_committed() settles every allocation a sync carried. */
	(void)arg;
	(void)rc;
}

/* Copy-on-write: the parent's cluster, with the piece's data (or zeros) over it. */
static void piece_cow_write(struct bs_io_piece *p)
{
	struct ust_blob_store *bs = p->req->blob->bs;
	uint8_t *at = p->bounce + p->unit * bs->io_unit;
	int i, rc;

	if (p->req->op == REQ_WRITE) {
		for (i = 0; i < p->iovcnt; i++) {
			memcpy(at, p->iov[i].iov_base, p->iov[i].iov_len);
			at += p->iov[i].iov_len;
		}
	} else {
		memset(at, 0, p->units * bs->io_unit);
	}
	p->state = PIECE_FILLED;
	p->pending = 1;
	rc = ust_bdev_write_blocks(bs->desc, bs->md_ch, p->bounce, dev_block(bs, p->cluster, 0),
				   bs->cluster_size / bs->blocklen, piece_bdev_done, p);
	if (rc != 0) {
		piece_io_done(p, rc);
	}
}

/* Write zeros around the user's data and the data itself into the new cluster. */
static void piece_fill(struct bs_io_piece *p)
{
	struct ust_blob_store *bs = p->req->blob->bs;
	uint64_t per_unit = bs->io_unit / bs->blocklen;
	uint64_t base = dev_block(bs, p->cluster, 0);
	uint64_t head = p->unit, tail_start = p->unit + p->units;
	bool whole = head == 0 && p->units == bs->units_per_cluster;
	int rc;

	if (p->src != 0 && !whole) {
		/* Rule 5 of 9.1: the parent's data, merged, written whole, then flushed. */
		p->bounce = bs_dma_page_alloc((uint32_t)(bs->cluster_size / UST_BS_PAGE_SIZE));
		p->state = PIECE_COW_READ;
		p->pending = 1;
		rc = p->bounce == NULL ? -ENOMEM
				       : ust_bdev_read_blocks(bs->desc, bs->md_ch, p->bounce,
							      dev_block(bs, p->src, 0),
							      bs->cluster_size / bs->blocklen,
							      piece_bdev_done, p);
		if (rc != 0) {
			piece_io_done(p, rc);
		}
		return;
	}
	p->state = PIECE_FILLED;
	p->pending = 1;
	if (head > 0) {
		p->pending++;
		rc = ust_bdev_write_zeroes_blocks(bs->desc, bs->md_ch, base, head * per_unit,
						  piece_bdev_done, p);
		if (rc != 0) {
			piece_io_done(p, rc);
		}
	}
	if (tail_start < bs->units_per_cluster) {
		p->pending++;
		rc = ust_bdev_write_zeroes_blocks(bs->desc, bs->md_ch, base + tail_start * per_unit,
						  (bs->units_per_cluster - tail_start) * per_unit,
						  piece_bdev_done, p);
		if (rc != 0) {
			piece_io_done(p, rc);
		}
	}
	p->pending++;
	if (p->req->op == REQ_WRITE) {
		rc = ust_bdev_writev_blocks(bs->desc, bs->md_ch, p->iov, p->iovcnt,
					    base + head * per_unit, p->units * per_unit, piece_bdev_done,
					    p);
	} else {
		rc = ust_bdev_write_zeroes_blocks(bs->desc, bs->md_ch, base + head * per_unit,
						  p->units * per_unit, piece_bdev_done, p);
	}
	if (rc != 0) {
		piece_io_done(p, rc);
	}
	piece_io_done(p, 0);
}

static void waiters_resubmit(struct bs_piece_list *list, int rc)
{
	struct bs_io_piece *w;

	while ((w = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, w, link);
		if (rc != 0) {
			piece_back(w, rc);
		} else {
			w->state = PIECE_SUBMIT;
			piece_send(w, w->req->thread);
		}
	}
}

/* The fill failed: no metadata names the cluster, so it is simply free again. */
void bs_alloc_abandon(struct ust_blob *blob, struct bs_alloc *a, int rc)
{
	TAILQ_REMOVE(&blob->allocs, a, link);
	bs_cluster_free(blob->bs, a->cluster);
	/* Other writers try again: the failure was this write's. */
	waiters_resubmit(&a->waiters, 0);
	if (a->owner != NULL) {
		piece_back(a->owner, rc);
	}
	free(a);
}

static void piece_claim(struct bs_io_piece *p)
{
	struct ust_blob *blob = p->req->blob;
	struct ust_blob_store *bs = blob->bs;
	const struct bs_map *m = blob->map;
	struct bs_alloc *a;
	bool broken;

	if (p->index >= m->len) {
		piece_back(p, -EINVAL);
		return;
	}
	if (bs_map_get(m, p->index) != 0) {
		/* Allocated while the message travelled: write normally. */
		p->state = PIECE_SUBMIT;
		piece_send(p, p->req->thread);
		return;
	}
	a = bs_alloc_find(blob, p->index);
	if (a != NULL) {
		TAILQ_INSERT_TAIL(&a->waiters, p, link);
		if (a->state == BS_ALLOC_FILLED) {
			bs_blob_sync(blob, alloc_sync_done, NULL);
		}
		return;
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		piece_back(p, -ENOMEM);
		return;
	}
	a->cluster = bs_cluster_alloc(bs);
	if (a->cluster == 0) {
		free(a);
		UST_ERRLOG("blob 0x%llx: no free cluster for a thin allocation\n",
			   (unsigned long long)blob->id);
		piece_back(p, -ENOSPC);
		return;
	}
	a->index = p->index;
	a->owner = p;
	a->state = BS_ALLOC_FILLING;
	TAILQ_INIT(&a->waiters);
	TAILQ_INSERT_TAIL(&blob->allocs, a, link);
	p->cluster = a->cluster;
	p->src = bs_chain_lookup(blob, p->index, &broken);
	if (broken && !(p->unit == 0 && p->units == bs->units_per_cluster)) {
		/* The rest of the cluster would come from a damaged parent (9.5). */
		bs_alloc_abandon(blob, a, -EIO);
		return;
	}
	piece_fill(p);
}

void bs_allocs_committed(struct ust_blob *blob, int rc)
{
	struct bs_alloc *a, *tmp;
	struct bs_map *m = blob->map;

	for (a = TAILQ_FIRST(&blob->allocs); a != NULL; a = tmp) {
		tmp = TAILQ_NEXT(a, link);
		if (a->state != BS_ALLOC_COMMITTING) {
			continue;
		}
		TAILQ_REMOVE(&blob->allocs, a, link);
		if (rc != 0) {
			/* The failed commit may still have reached the disk: the
			 * cluster stays reserved until the next recovery. */
			UST_ERRLOG("blob 0x%llx: cluster %u reserved until the next recovery\n",
				   (unsigned long long)blob->id, a->cluster);
			blob->bs->leaked = true;
		} else if (a->index < m->len) {
			__atomic_store_n(&m->c[a->index], a->cluster, __ATOMIC_RELEASE);
			blob->num_allocated++;
		} else if (bs_blob_defer_cluster_free(blob, a->cluster) != 0) {
			blob->bs->leaked = true;
		}
		waiters_resubmit(&a->waiters, rc);
		if (a->owner != NULL) {
			piece_back(a->owner, rc);
		}
		free(a);
	}
}

static void piece_release_done(void *arg, int rc)
{
	piece_back(arg, rc);
}

/* Unmap a whole cluster of a thin blob: gone from the map now, freed after commit. */
static void piece_release(struct bs_io_piece *p)
{
	struct ust_blob *blob = p->req->blob;
	struct bs_map *m = blob->map;
	uint32_t c;

	if (p->index >= m->len || (c = bs_map_get(m, p->index)) == 0) {
		piece_back(p, 0);
		return;
	}
	if (bs_blob_defer_cluster_free(blob, c) != 0) {
		piece_back(p, -ENOMEM);
		return;
	}
	__atomic_store_n(&m->c[p->index], 0, __ATOMIC_RELEASE);
	blob->num_allocated--;
	blob->change_seq++;
	bs_blob_map_changed(blob, p->index);
	p->state = PIECE_RELEASED;
	bs_blob_sync(blob, piece_release_done, p);
}

static void piece_step(struct bs_io_piece *p)
{
	struct ust_blob *blob = p->req->blob;
	struct ust_blob_store *bs = blob->bs;
	struct bs_alloc *a;

	switch (p->state) {
	case PIECE_SUBMIT:
		piece_submit(p);
		break;
	case PIECE_FROZEN:
		if (__atomic_load_n(&blob->frozen, __ATOMIC_SEQ_CST) != 0) {
			TAILQ_INSERT_TAIL(&blob->frozen_pieces, p, link);
		} else {
			p->state = PIECE_SUBMIT;
			piece_send(p, p->req->thread);
		}
		break;
	case PIECE_CLAIM:
		piece_claim(p);
		break;
	case PIECE_COW_READ:
		if (p->rc != 0) {
			bs_dma_free(p->bounce);
			p->bounce = NULL;
			bs_alloc_abandon(blob, bs_alloc_find(blob, p->index), p->rc);
			return;
		}
		piece_cow_write(p);
		break;
	case PIECE_FILLED:
		bs_dma_free(p->bounce);
		p->bounce = NULL;
		a = bs_alloc_find(blob, p->index);
		if (p->rc != 0) {
			bs_alloc_abandon(blob, a, p->rc);
			return;
		}
		/*
		 * Flush even when the user's write covers the whole cluster:
		 * without it a volatile cache may keep the map and lose the data,
		 * and the cluster would show what it held before, possibly a
		 * deleted blob's data (9.1 rule 5).
		 */
		p->state = PIECE_FLUSHED;
		p->pending = 1;
		bs_dev_flush(bs, piece_io_done, p);
		break;
	case PIECE_FLUSHED:
		a = bs_alloc_find(blob, p->index);
		if (p->rc != 0) {
			bs_alloc_abandon(blob, a, p->rc);
			return;
		}
		a->state = BS_ALLOC_FILLED;
		bs_blob_sync(blob, alloc_sync_done, NULL);
		break;
	case PIECE_RELEASE:
		piece_release(p);
		break;
	case PIECE_RELEASED:
		break;
	case PIECE_DONE:
		piece_finish(p);
		break;
	}
}

/* ---- splitting ---------------------------------------------------------------------- */

static struct bs_io_piece *piece_new(struct bs_request *req, int iovcnt)
{
	struct bs_io_piece *p;

	p = calloc(1, sizeof(*p) + (size_t)(iovcnt > 0 ? iovcnt : 1) * sizeof(struct iovec));
	if (p != NULL) {
		p->req = req;
		p->state = PIECE_SUBMIT;
	}
	return p;
}

/*
 * Units (from the start of cluster index, at most max) that lie on device
 * clusters following each other: one bdev I/O can cover them. 0 for a hole.
 */
static uint64_t run_clusters(const struct bs_map *m, uint64_t upc, uint64_t index, uint64_t max)
{
	uint64_t k, n;
	uint32_t c0;

	if (index >= m->len || (c0 = bs_map_get(m, index)) == 0) {
		return 0;
	}
	for (k = 1, n = upc; n < max && index + k < m->len; k++, n += upc) {
		if (bs_map_get(m, index + k) != c0 + k) {
			break;
		}
	}
	return n < max ? n : max;
}

/*
 * A piece over several clusters whose run no longer holds: it keeps its
 * first cluster, and each further cluster becomes a piece of its own.
 */
static void piece_split(struct bs_io_piece *p)
{
	struct bs_request *req = p->req;
	uint64_t upc = req->blob->bs->units_per_cluster, io_unit = req->blob->bs->io_unit;
	uint64_t done = upc - p->unit, left = p->units - done, n;
	struct bs_io_piece *np;
	uint64_t index = p->index + 1;

	while (left > 0) {
		n = left < upc ? left : upc;
		np = piece_new(req, p->iovcnt);
		if (np == NULL) {
			/* what was split off runs; the rest fails */
			p->rc = -ENOMEM;
			break;
		}
		np->index = index++;
		np->units = n;
		np->iovcnt = ust_iov_slice(np->iov, p->iov, p->iovcnt, done * io_unit, n * io_unit);
		req->pending++;
		piece_step(np);
		done += n;
		left -= n;
	}
	p->units = upc - p->unit;
	p->iovcnt = ust_iov_slice(p->iov, p->iov, p->iovcnt, 0, p->units * io_unit);
	if (p->rc != 0) {
		piece_finish(p);
		return;
	}
	piece_step(p);
}

static uint64_t iov_total(const struct iovec *iov, int iovcnt)
{
	uint64_t t = 0;
	int i;

	for (i = 0; i < iovcnt; i++) {
		t += iov[i].iov_len;
	}
	return t;
}

/* The channel is the blob's store's, and the units lie within the blob. */
static int req_check_range(struct ust_blob *blob, struct ust_io_channel *ch, uint64_t offset,
			   uint64_t length)
{
	const struct bs_map *m;
	uint64_t size;

	if (blob == NULL || ch == NULL || ust_io_channel_get_io_device(ch) != blob->bs) {
		return -EINVAL;
	}
	m = bs_blob_map(blob);
	size = m->len * blob->bs->units_per_cluster;
	if (length == 0 || offset > size || length > size - offset) {
		return -EINVAL;
	}
	return 0;
}

static int req_check(struct ust_blob *blob, struct ust_io_channel *ch, enum req_op op,
		     const struct iovec *iov, int iovcnt, uint64_t offset, uint64_t length)
{
	int rc = req_check_range(blob, ch, offset, length);

	if (rc != 0) {
		return rc;
	}
	if (op != REQ_READ && (blob->flags & UST_BS_BLOB_READ_ONLY || blob->md_read_only)) {
		return -EPERM;
	}
	if ((op == REQ_READ || op == REQ_WRITE) &&
	    (iovcnt <= 0 || iov == NULL || iov_total(iov, iovcnt) < length * blob->bs->io_unit)) {
		return -EINVAL;
	}
	return 0;
}

static void blob_io(struct ust_blob *blob, struct ust_io_channel *ch, enum req_op op,
		    struct iovec *iov, int iovcnt, uint64_t offset, uint64_t length,
		    ust_blob_op_cb cb, void *arg)
{
	struct bs_request *req;
	struct ust_blob_store *bs;
	uint64_t upc, done = 0;
	int rc;

	rc = req_check(blob, ch, op, iov, iovcnt, offset, length);
	if (rc != 0) {
		cb(arg, rc);
		return;
	}
	bs = blob->bs;
	upc = bs->units_per_cluster;
	req = calloc(1, sizeof(*req));
	if (req == NULL) {
		cb(arg, -ENOMEM);
		return;
	}
	req->blob = blob;
	req->ch = ust_io_channel_get_ctx(ch);
	req->thread = ust_get_thread();
	req->op = op;
	req->cb = cb;
	req->arg = arg;
	req->pending = 1; /* guard until every piece is out */
	while (done < length) {
		uint64_t pos = offset + done;
		uint64_t unit = pos % upc;
		uint64_t n = upc - unit < length - done ? upc - unit : length - done;
		struct bs_io_piece *p;

		if ((op == REQ_READ || op == REQ_WRITE) && n < length - done) {
			/* allocated clusters back to back on the device: one piece */
			uint64_t run = run_clusters(bs_blob_map(blob), upc, pos / upc, unit + length - done);

			if (run > unit + n) {
				n = run - unit;
			}
		}
		p = piece_new(req, iovcnt);
		if (p == NULL) {
			req->rc = -ENOMEM;
			break;
		}
		p->index = pos / upc;
		p->unit = unit;
		p->units = n;
		if (iov != NULL) {
			p->iovcnt = ust_iov_slice(p->iov, iov, iovcnt, done * bs->io_unit, n * bs->io_unit);
		}
		req->pending++;
		piece_step(p);
		done += n;
	}
	req_piece_done(req, 0);
}

void ust_blob_readv(struct ust_blob *blob, struct ust_io_channel *ch, struct iovec *iov,
		    int iovcnt, uint64_t offset, uint64_t length, ust_blob_op_cb cb, void *arg)
{
	blob_io(blob, ch, REQ_READ, iov, iovcnt, offset, length, cb, arg);
}

void ust_blob_writev(struct ust_blob *blob, struct ust_io_channel *ch, struct iovec *iov,
		     int iovcnt, uint64_t offset, uint64_t length, ust_blob_op_cb cb, void *arg)
{
	blob_io(blob, ch, REQ_WRITE, iov, iovcnt, offset, length, cb, arg);
}

/* ---- zero-copy reads ----------------------------------------------------------------------- */

/* What holes are lent from: never written. */
static uint8_t g_lend_zeros[64 * 1024];

/* Append [p, p + len) to iov, joined to the last entry where it continues it. */
static int lend_add(struct iovec *iov, int max, int *n, const void *p, uint64_t len)
{
	struct iovec *last = *n > 0 ? &iov[*n - 1] : NULL;

	if (last != NULL && (const uint8_t *)last->iov_base + last->iov_len == p) {
		last->iov_len += len;
		return 0;
	}
	if (*n == max) {
		return -E2BIG;
	}
	iov[*n].iov_base = (void *)p;
	iov[*n].iov_len = len;
	(*n)++;
	return 0;
}

static int lend_zeros(struct iovec *iov, int max, int *n, uint64_t len)
{
	uint64_t k;
	int rc = 0;

	for (; len > 0 && rc == 0; len -= k) {
		k = len < sizeof(g_lend_zeros) ? len : sizeof(g_lend_zeros);
		rc = lend_add(iov, max, n, g_lend_zeros, k);
	}
	return rc;
}

/* A cluster at a time, as a read's pieces see the published map (holes through the parent chain). */
int ust_blob_read_lend(struct ust_blob *blob, struct ust_io_channel *ch, uint64_t offset,
		       uint64_t length, struct iovec *iov, int *iovcnt)
{
	struct ust_blob_store *bs;
	struct bs_channel *bch;
	uint64_t pos, end, upc, n;
	const void *p;
	uint32_t c;
	bool broken;
	int used = 0, rc;

	if (iov == NULL || iovcnt == NULL || *iovcnt <= 0) {
		return -EINVAL;
	}
	rc = req_check_range(blob, ch, offset, length);
	if (rc != 0) {
		return rc;
	}
	bs = blob->bs;
	bch = ust_io_channel_get_ctx(ch);
	upc = bs->units_per_cluster;
	end = offset + length;
	for (pos = offset; pos < end; pos += n) {
		n = upc - pos % upc < end - pos ? upc - pos % upc : end - pos;
		c = bs_chain_lookup(blob, pos / upc, &broken);
		if (broken) {
			return -EIO;
		}
		if (c == 0) {
			rc = lend_zeros(iov, *iovcnt, &used, n * bs->io_unit);
		} else {
			rc = ust_bdev_read_lend(bs->desc, bch->bdev_ch, dev_block(bs, c, pos % upc),
						n * bs->io_unit / bs->blocklen, &p);
			if (rc == 0) {
				rc = lend_add(iov, *iovcnt, &used, p, n * bs->io_unit);
			}
		}
		if (rc != 0) {
			return rc;
		}
	}
	*iovcnt = used;
	return 0;
}

/*
 * The lent pieces of a write: every cluster the blob's own, all looked at
 * before any is lent (so a hole costs no bdev call and no statistics).
 */
static int write_lend_range(struct ust_blob *blob, struct bs_channel *bch, uint64_t offset,
			    uint64_t length, struct iovec *iov, int *used)
{
	struct ust_blob_store *bs = blob->bs;
	const struct bs_map *m = bs_blob_map(blob);
	uint64_t pos, end = offset + length, upc = bs->units_per_cluster, n;
	uint32_t c;
	void *p;
	int rc;

	for (pos = offset - offset % upc; pos < end; pos += upc) {
		if (bs_map_get(m, pos / upc) == 0) {
			return -EAGAIN;
		}
	}
	for (pos = offset; pos < end; pos += n) {
		n = upc - pos % upc < end - pos ? upc - pos % upc : end - pos;
		c = bs_map_get(m, pos / upc);
		rc = ust_bdev_write_lend(bs->desc, bch->bdev_ch, dev_block(bs, c, pos % upc),
					 n * bs->io_unit / bs->blocklen, &p);
		if (rc == 0) {
			rc = lend_add(iov, UST_BLOB_FILL_IOV, used, p, n * bs->io_unit);
		}
		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

/*
 * Counted as a write in flight while the pieces are lent and filled, so a
 * freeze (snapshot) either sees it and waits, or is seen and refuses it:
 * the snapshot never takes a cluster that is still being filled.
 */
int ust_blob_write_fill(struct ust_blob *blob, struct ust_io_channel *ch, uint64_t offset,
			uint64_t length, ust_blob_fill_fn fill, void *arg)
{
	struct iovec iov[UST_BLOB_FILL_IOV];
	int used = 0, rc;

	if (fill == NULL) {
		return -EINVAL;
	}
	rc = req_check_range(blob, ch, offset, length);
	if (rc != 0) {
		return rc;
	}
	if (blob->flags & UST_BS_BLOB_READ_ONLY || blob->md_read_only) {
		return -EPERM;
	}
	__atomic_add_fetch(&blob->wr_inflight, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&blob->frozen, __ATOMIC_SEQ_CST) != 0) {
		rc = -EAGAIN;
	} else {
		rc = write_lend_range(blob, ust_io_channel_get_ctx(ch), offset, length, iov, &used);
		if (rc == 0) {
			rc = fill(arg, iov, used);
		}
	}
	write_uncount(blob);
	return rc;
}

void ust_blob_read(struct ust_blob *blob, struct ust_io_channel *ch, void *payload,
		   uint64_t offset, uint64_t length, ust_blob_op_cb cb, void *arg)
{
	struct iovec iov = {.iov_base = payload,
			    .iov_len = blob != NULL ? length * blob->bs->io_unit : 0};

	/* Pieces copy their slice of the iovec, so a stack iovec is fine. */
	blob_io(blob, ch, REQ_READ, &iov, 1, offset, length, cb, arg);
}

void ust_blob_write(struct ust_blob *blob, struct ust_io_channel *ch, void *payload,
		    uint64_t offset, uint64_t length, ust_blob_op_cb cb, void *arg)
{
	struct iovec iov = {.iov_base = payload,
			    .iov_len = blob != NULL ? length * blob->bs->io_unit : 0};

	blob_io(blob, ch, REQ_WRITE, &iov, 1, offset, length, cb, arg);
}

void ust_blob_write_zeroes(struct ust_blob *blob, struct ust_io_channel *ch, uint64_t offset,
			   uint64_t length, ust_blob_op_cb cb, void *arg)
{
	blob_io(blob, ch, REQ_WRITE_ZEROES, NULL, 0, offset, length, cb, arg);
}

void ust_blob_unmap(struct ust_blob *blob, struct ust_io_channel *ch, uint64_t offset,
		    uint64_t length, ust_blob_op_cb cb, void *arg)
{
	blob_io(blob, ch, REQ_UNMAP, NULL, 0, offset, length, cb, arg);
}

/* ---- flush ---------------------------------------------------------------------------- */

struct bs_flush {
	ust_blob_op_cb cb;
	void *arg;
	int rc;
};

static void flush_deliver(void *ctx)
{
	struct bs_flush *f = ctx;

	f->cb(f->arg, f->rc);
	free(f);
}

static void flush_complete(struct ust_bdev_io *bio, int status, void *ctx)
{
	struct bs_flush *f = ctx;

	(void)bio;
	f->rc = status;
	flush_deliver(f);
}

/*
 * A device flush on the caller's own channel: no message to the metadata
 * thread. It covers every write acknowledged before the call (writes into
 * new clusters are durable at their acknowledgement anyway).
 */
void ust_bs_flush(struct ust_blob_store *bs, struct ust_io_channel *ch, ust_bs_op_cb cb, void *arg)
{
	struct bs_channel *c;
	struct bs_flush *f;
	int rc;

	if (cb == NULL) {
		cb = bs_noop_cb;
	}
	if (bs == NULL || ch == NULL || ust_io_channel_get_io_device(ch) != bs ||
	    ust_io_channel_get_thread(ch) != ust_get_thread()) {
		cb(arg, -EINVAL);
		return;
	}
	c = ust_io_channel_get_ctx(ch);
	f = calloc(1, sizeof(*f));
	if (f == NULL) {
		cb(arg, -ENOMEM);
		return;
	}
	f->cb = cb;
	f->arg = arg;
	rc = ust_bdev_flush_blocks(bs->desc, c->bdev_ch, 0, ust_bdev_get_num_blocks(bs->bdev),
				   flush_complete, f);
	if (rc != 0) {
		/* Refused at submit: still complete after the call returns. */
		f->rc = rc;
		if (ust_thread_send_msg(ust_get_thread(), flush_deliver, f) != 0) {
			flush_deliver(f);
		}
	}
}

void ust_blob_flush(struct ust_blob *blob, struct ust_io_channel *ch, ust_blob_op_cb cb, void *arg)
{
	if (blob == NULL) {
		if (cb != NULL) {
			cb(arg, -EINVAL);
		}
		return;
	}
	ust_bs_flush(blob->bs, ch, cb, arg);
}
