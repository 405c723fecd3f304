/*
 * The blob data path: per-thread channels, requests split at cluster
 * boundaries, reads of holes as zeros, and the allocation of a thin blob's
 * cluster on its first write.
 *
 * Guarantees (docs/blobstore-format.md 9.1 rule 5, 9.4 "cluster allocation"):
 * a cluster is claimed on the metadata thread, so two writers racing for the
 * same unallocated cluster produce one allocation; the claimed cluster's full
 * content (zeros around the user's data) is written and flushed before the
 * metadata that maps it is committed (the flush is skipped only when the
 * write covers the whole cluster, then the commit flush covers both); the
 * map entry becomes visible to other threads, and any write is acknowledged,
 * only after that commit. Other writers to the cluster wait for the commit
 * and then write normally, so nothing they write can be overwritten by the
 * zero fill. A failed allocation leaves the store consistent.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
	PIECE_CLAIM,      /* on the metadata thread: find or start an allocation */
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
	uint32_t pending;
	int rc;
	int iovcnt;
	struct iovec iov[];
};

static void piece_step(struct bs_io_piece *p);

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
	return ust_get_io_channel(bs);
}

void ust_bs_free_io_channel(struct ust_io_channel *ch)
{
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

static void piece_finish(struct bs_io_piece *p)
{
	struct bs_request *req = p->req;
	int rc = p->rc;

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

/* Caller's thread: the piece looks at the published map. */
static void piece_submit(struct bs_io_piece *p)
{
	struct bs_request *req = p->req;
	struct ust_blob *blob = req->blob;
	struct ust_blob_store *bs = blob->bs;
	const struct bs_map *m = bs_blob_map(blob);
	uint32_t c = p->index < m->len ? bs_map_get(m, p->index) : 0;
	bool whole = p->unit == 0 && p->units == bs->units_per_cluster;
	int rc;

	if (p->index >= m->len) {
		p->rc = -EINVAL;
		piece_finish(p);
		return;
	}
	if (c == 0) {
		switch (req->op) {
		case REQ_READ:
			piece_zero_iov(p);
			/* fall through */
		case REQ_WRITE_ZEROES:
		case REQ_UNMAP:
			piece_finish(p);
			return;
		case REQ_WRITE:
			p->state = PIECE_CLAIM;
			piece_send(p, bs->md_thread);
			return;
		}
	}
	if (req->op == REQ_UNMAP && whole && (blob->flags & UST_BS_BLOB_THIN)) {
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

static struct bs_alloc *alloc_find(struct ust_blob *blob, uint64_t index)
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

/* Write zeros around the user's data and the data itself into the new cluster. */
static void piece_fill(struct bs_io_piece *p)
{
	struct ust_blob_store *bs = p->req->blob->bs;
	uint64_t per_unit = bs->io_unit / bs->blocklen;
	uint64_t base = dev_block(bs, p->cluster, 0);
	uint64_t head = p->unit, tail_start = p->unit + p->units;
	int rc;

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
	rc = ust_bdev_writev_blocks(bs->desc, bs->md_ch, p->iov, p->iovcnt, base + head * per_unit,
				    p->units * per_unit, piece_bdev_done, p);
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
static void alloc_abandon(struct ust_blob *blob, struct bs_alloc *a, int rc)
{
	TAILQ_REMOVE(&blob->allocs, a, link);
	bs_cluster_free(blob->bs, a->cluster);
	/* Other writers try again: the failure was this write's. */
	waiters_resubmit(&a->waiters, 0);
	piece_back(a->owner, rc);
	free(a);
}

static void piece_claim(struct bs_io_piece *p)
{
	struct ust_blob *blob = p->req->blob;
	struct ust_blob_store *bs = blob->bs;
	const struct bs_map *m = blob->map;
	struct bs_alloc *a;

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
	a = alloc_find(blob, p->index);
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
	case PIECE_CLAIM:
		piece_claim(p);
		break;
	case PIECE_FILLED:
		a = alloc_find(blob, p->index);
		if (p->rc != 0) {
			alloc_abandon(blob, a, p->rc);
			return;
		}
		if (p->unit == 0 && p->units == bs->units_per_cluster) {
			/* A whole-cluster write: the commit flush covers it (9.1 rule 5). */
			p->state = PIECE_FLUSHED;
			piece_step(p);
			return;
		}
		p->state = PIECE_FLUSHED;
		p->pending = 1;
		bs_dev_flush(bs, piece_io_done, p);
		break;
	case PIECE_FLUSHED:
		a = alloc_find(blob, p->index);
		if (p->rc != 0) {
			alloc_abandon(blob, a, p->rc);
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

/* The part of iov covering bytes [off, off + len) into p->iov. */
static void iov_slice(struct bs_io_piece *p, const struct iovec *iov, int iovcnt, uint64_t off,
		      uint64_t len)
{
	int i;

	p->iovcnt = 0;
	for (i = 0; i < iovcnt && len > 0; i++) {
		uint64_t n;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		n = iov[i].iov_len - off;
		if (n > len) {
			n = len;
		}
		p->iov[p->iovcnt].iov_base = (uint8_t *)iov[i].iov_base + off;
		p->iov[p->iovcnt].iov_len = n;
		p->iovcnt++;
		len -= n;
		off = 0;
	}
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

static int req_check(struct ust_blob *blob, struct ust_io_channel *ch, enum req_op op,
		     const struct iovec *iov, int iovcnt, uint64_t offset, uint64_t length)
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

		p = calloc(1, sizeof(*p) + (size_t)(iovcnt > 0 ? iovcnt : 1) * sizeof(struct iovec));
		if (p == NULL) {
			req->rc = -ENOMEM;
			break;
		}
		p->req = req;
		p->index = pos / upc;
		p->unit = unit;
		p->units = n;
		p->state = PIECE_SUBMIT;
		if (iov != NULL) {
			iov_slice(p, iov, iovcnt, done * bs->io_unit, n * bs->io_unit);
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
