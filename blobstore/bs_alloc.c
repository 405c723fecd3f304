/*
 * ust_blob_allocate(): give a thin blob its own clusters for a range now,
 * so that later writes there need no allocation (and cannot fail with
 * -ENOSPC). This is what a file system's fallocate(2) needs.
 *
 * Each cluster is allocated exactly as a first write would allocate it
 * (format document 9.4, rule 5 of 9.1): a struct bs_alloc in the blob's
 * list marks the cluster as being filled (writes to it wait on it), its
 * content is written (zeros, or the parent's data for a clone, so what the
 * blob reads does not change), the device is flushed, and only then does a
 * metadata sync name the cluster in the map. Allocations go in batches of
 * BATCH clusters, each committed by one sync, so the list stays short.
 *
 * Guarantees: when cb reports 0 every cluster of the range is allocated
 * and that is durable. On -ENOSPC (checked before anything is done, and
 * again per cluster since writes allocate meanwhile) the clusters already
 * committed stay allocated and the rest do not: the store is consistent
 * either way, and a crash at any point leaves either a cluster named by
 * the map with its content durable, or a free cluster.
 */
#include <errno.h>
#include <stdlib.h>

#include "ustor/log.h"

#include "blobstore_internal.h"

#define BATCH 32

enum alloc_state {
	AL_SCAN,      /* pick the next batch of unallocated clusters */
	AL_FILLED,    /* one cluster's content written (or failed) */
	AL_COPY_READ, /* a clone's cluster: the parent's data read */
	AL_FLUSHED,   /* the batch's content is durable */
	AL_SYNCED,    /* the batch is named by the durable map */
};

struct alloc_op {
	struct ust_blob *blob;
	enum alloc_state state;
	uint64_t next; /* next blob cluster to look at */
	uint64_t end;  /* one past the last blob cluster of the range */
	struct bs_alloc *batch[BATCH];
	uint32_t nbatch;
	uint32_t filled; /* clusters of the batch whose fill has completed */
	uint64_t src;    /* the device cluster a clone's cluster is copied from */
	void *bounce;    /* one cluster, for copies */
	int rc;          /* the first error; the step's own result is step_rc */
	int step_rc;
	ust_blob_op_cb cb;
	void *arg;
};

static void alloc_step(struct alloc_op *op);

static void alloc_io_done(void *arg, int rc)
{
	struct alloc_op *op = arg;

	op->step_rc = rc;
	alloc_step(op);
}

static void alloc_finish(struct alloc_op *op)
{
	op->blob->bs->ops--;
	bs_dma_free(op->bounce);
	op->cb(op->arg, op->rc);
	free(op);
}

/* Clusters of [from, end) that neither the map nor a fill in flight has. */
static uint64_t count_unallocated(struct ust_blob *blob, uint64_t from, uint64_t end)
{
	const struct bs_map *m = bs_blob_map(blob);
	uint64_t i, n = 0;

	for (i = from; i < end && i < m->len; i++) {
		if (bs_map_get(m, i) == 0 && bs_alloc_find(blob, i) == NULL) {
			n++;
		}
	}
	return n;
}

/* Reserve up to BATCH clusters for the unallocated ones from op->next on. */
static void batch_reserve(struct alloc_op *op)
{
	struct ust_blob *blob = op->blob;
	struct ust_blob_store *bs = blob->bs;
	const struct bs_map *m = bs_blob_map(blob);
	struct bs_alloc *a;

	op->nbatch = 0;
	op->filled = 0;
	if (op->end > m->len) {
		op->end = m->len; /* shrunk meanwhile */
	}
	for (; op->next < op->end && op->nbatch < BATCH; op->next++) {
		if (bs_map_get(m, op->next) != 0 || bs_alloc_find(blob, op->next) != NULL) {
			continue;
		}
		a = calloc(1, sizeof(*a));
		if (a == NULL) {
			op->rc = -ENOMEM;
			return;
		}
		a->cluster = bs_cluster_alloc(bs);
		if (a->cluster == 0) {
			free(a);
			op->rc = -ENOSPC;
			return;
		}
		a->index = op->next;
		a->state = BS_ALLOC_FILLING;
		TAILQ_INIT(&a->waiters);
		TAILQ_INSERT_TAIL(&blob->allocs, a, link);
		op->batch[op->nbatch++] = a;
	}
}

/* Start the fill of batch[filled]: zeros, or the data a clone reads there. */
static void fill_next(struct alloc_op *op)
{
	struct ust_blob *blob = op->blob;
	struct ust_blob_store *bs = blob->bs;
	struct bs_alloc *a = op->batch[op->filled];
	bool broken = false;

	op->src = bs_chain_lookup(blob, a->index, &broken);
	if (broken) {
		/* the content would come from a damaged parent (format 9.5) */
		op->step_rc = -EIO;
		op->state = AL_FILLED;
		alloc_step(op);
		return;
	}
	if (op->src == 0) {
		op->state = AL_FILLED;
		bs_dev_zero_pages(bs, (uint64_t)a->cluster * (bs->cluster_size / UST_BS_PAGE_SIZE),
				  bs->cluster_size / UST_BS_PAGE_SIZE, alloc_io_done, op);
		return;
	}
	if (op->bounce == NULL) {
		op->bounce = bs_dma_page_alloc((uint32_t)(bs->cluster_size / UST_BS_PAGE_SIZE));
		if (op->bounce == NULL) {
			op->step_rc = -ENOMEM;
			op->state = AL_FILLED;
			alloc_step(op);
			return;
		}
	}
	op->state = AL_COPY_READ;
	bs_dev_read_bytes(bs, op->src * bs->cluster_size, bs->cluster_size, op->bounce,
			  alloc_io_done, op);
}

/* The batch from entry `from` on will not be committed: its clusters are free again. */
static void batch_abandon(struct alloc_op *op, uint32_t from)
{
	uint32_t i;

	for (i = from; i < op->nbatch; i++) {
		/* owner is NULL: only waiting writes are told, and they retry */
		bs_alloc_abandon(op->blob, op->batch[i], 0);
	}
	op->nbatch = from;
}

static void alloc_step(struct alloc_op *op)
{
	struct ust_blob *blob = op->blob;
	struct ust_blob_store *bs = blob->bs;
	uint32_t i;

	switch (op->state) {
	case AL_SCAN:
		if (op->rc == 0 && blob->op_busy) {
			op->rc = -EBUSY; /* a snapshot operation is moving the blob's clusters */
		}
		if (op->rc == 0) {
			batch_reserve(op);
		}
		if (op->nbatch == 0) {
			alloc_finish(op);
			return;
		}
		fill_next(op);
		return;
	case AL_COPY_READ:
		if (op->step_rc != 0) {
			op->state = AL_FILLED;
			alloc_step(op);
			return;
		}
		op->state = AL_FILLED;
		bs_dev_write_bytes(bs, (uint64_t)op->batch[op->filled]->cluster * bs->cluster_size,
				   bs->cluster_size, op->bounce, alloc_io_done, op);
		return;
	case AL_FILLED:
		if (op->step_rc == 0 && blob->op_busy) {
			op->step_rc = -EBUSY;
		}
		if (op->step_rc != 0) {
			/* keep what is filled, give back the rest */
			if (op->rc == 0) {
				op->rc = op->step_rc;
			}
			batch_abandon(op, op->filled);
		} else {
			op->filled++;
		}
		if (op->filled < op->nbatch) {
			fill_next(op);
			return;
		}
		if (op->nbatch == 0) {
			alloc_finish(op);
			return;
		}
		op->state = AL_FLUSHED;
		bs_dev_flush(bs, alloc_io_done, op);
		return;
	case AL_FLUSHED:
		if (op->step_rc != 0) {
			if (op->rc == 0) {
				op->rc = op->step_rc;
			}
			batch_abandon(op, 0);
			alloc_finish(op);
			return;
		}
		/*
		 * From here the sync machinery owns the allocations (any sync of
		 * the blob may commit and free them): forget the pointers.
		 */
		for (i = 0; i < op->nbatch; i++) {
			op->batch[i]->state = BS_ALLOC_FILLED;
			op->batch[i] = NULL;
		}
		op->nbatch = 0;
		op->state = AL_SYNCED;
		bs_blob_sync(blob, alloc_io_done, op);
		return;
	case AL_SYNCED:
		if (op->step_rc != 0 && op->rc == 0) {
			op->rc = op->step_rc;
		}
		if (op->rc != 0 || op->next >= op->end) {
			alloc_finish(op);
			return;
		}
		op->state = AL_SCAN;
		alloc_step(op);
		return;
	}
}

void ust_blob_allocate(struct ust_blob *blob, uint64_t offset, uint64_t length, ust_blob_op_cb cb,
		       void *arg)
{
	struct ust_blob_store *bs = blob->bs;
	struct alloc_op *op;
	uint64_t units = bs->units_per_cluster, first, end;

	if (cb == NULL) {
		cb = bs_noop_cb;
	}
	if (!bs_on_md_thread(bs)) {
		UST_ERRLOG("blobstore: metadata call from a thread other than the store's\n");
		cb(arg, -EXDEV);
		return;
	}
	if (ust_blob_is_read_only(blob)) {
		cb(arg, -EPERM);
		return;
	}
	if (offset + length < offset || offset + length > bs_blob_map(blob)->len * units) {
		cb(arg, -EINVAL);
		return;
	}
	if (length == 0) {
		cb(arg, 0);
		return;
	}
	if (blob->op_busy) {
		cb(arg, -EBUSY);
		return;
	}
	first = offset / units;
	end = (offset + length + units - 1) / units;
	/* All or nothing when nothing else allocates meanwhile. */
	if (count_unallocated(blob, first, end) > bs->free_clusters) {
		cb(arg, -ENOSPC);
		return;
	}
	op = calloc(1, sizeof(*op));
	if (op == NULL) {
		cb(arg, -ENOMEM);
		return;
	}
	op->blob = blob;
	op->next = first;
	op->end = end;
	op->cb = cb;
	op->arg = arg;
	op->state = AL_SCAN;
	bs->ops++;
	alloc_step(op);
}
