/*
 * I/O the core turns into several: splitting at the optimal I/O boundary
 * and the maximum transfer size, write_zeroes emulated with writes of a
 * shared zero buffer, compare emulated with a read, and compare_and_write
 * emulated under an LBA range lock.
 *
 * A parent I/O generates child I/Os from the same pool on the same channel;
 * children pass the gate and dispatch like any I/O (so a child may bounce,
 * or be emulated in turn) and report back through bdev_child_done(). At
 * most BDEV_SPLIT_MAX_OUTSTANDING children of one parent are in flight.
 *
 * Guarantees: children cover the parent's range exactly, in order, each
 * within the bdev's limits; a child's iovecs are a block-aligned slice of
 * the parent's; the parent completes once, after its last child, with the
 * first error any child reported; when the pool runs dry the parent waits
 * on the thread's io_wait queue instead of failing. Two compare_and_writes
 * of overlapping ranges never interleave, whichever channels they use.
 */
#include <errno.h>
#include <string.h>

#include "ustor/log.h"

#include "bdev_internal.h"

static bool type_has_data(enum ust_bdev_io_type type)
{
	return type == UST_BDEV_IO_TYPE_READ || type == UST_BDEV_IO_TYPE_WRITE ||
	       type == UST_BDEV_IO_TYPE_COMPARE;
}

bool bdev_io_should_split(const struct ust_bdev_io *io)
{
	const struct ust_bdev *bdev = io->bdev;

	return bdev_split_child_blocks(bdev, io->type, io->offset_blocks, io->num_blocks) <
	       io->num_blocks;
}

uint64_t bdev_split_child_blocks(const struct ust_bdev *bdev, enum ust_bdev_io_type type,
				 uint64_t offset, uint64_t remaining)
{
	uint64_t n = remaining;
	uint64_t b = bdev->optimal_io_boundary;

	if (type_has_data(type) || type == UST_BDEV_IO_TYPE_COMPARE_AND_WRITE) {
		if (bdev->split_on_optimal_io_boundary && b != 0 && n > b - offset % b)
			n = b - offset % b;
		if (bdev->max_transfer_blocks != 0 && n > bdev->max_transfer_blocks)
			n = bdev->max_transfer_blocks;
	} else if (type == UST_BDEV_IO_TYPE_UNMAP || type == UST_BDEV_IO_TYPE_WRITE_ZEROES) {
		if (bdev->max_unmap_blocks != 0 && n > bdev->max_unmap_blocks)
			n = bdev->max_unmap_blocks;
	}
	return n;
}

/* ---- children ----------------------------------------------------------- */

static struct ust_bdev_io *child_alloc(struct ust_bdev_io *parent, enum ust_bdev_io_type type,
				       uint64_t offset, uint64_t num)
{
	struct bdev_channel *ch = parent->internal.submit_ch;
	struct ust_bdev_io *child = bdev_io_get(ch->mgmt);

	if (child == NULL)
		return NULL;
	bdev_io_init(child, ch, type, bdev_child_done, parent);
	child->internal.flags = BDEV_IO_F_CHILD | BDEV_IO_F_QOS_PASSED | BDEV_IO_F_PREP;
	child->internal.parent = parent;
	child->internal.submit_tsc = parent->internal.submit_tsc;
	child->offset_blocks = offset;
	child->num_blocks = num;
	child->iovs = NULL;
	child->iovcnt = 0;
	return child;
}

/* Resumes the parent from its io_wait entry once an I/O object is free. */
static void parent_wait(struct ust_bdev_io *parent, ust_bdev_io_wait_cb resume)
{
	struct bdev_mgmt_channel *mgmt = parent->internal.submit_ch->mgmt;

	parent->internal.wait.bdev = parent->bdev;
	parent->internal.wait.cb_fn = resume;
	parent->internal.wait.cb_arg = parent;
	TAILQ_INSERT_TAIL(&mgmt->io_wait_queue, &parent->internal.wait, link);
}

static void parent_complete(struct ust_bdev_io *parent, int status)
{
	parent->internal.state = BDEV_IO_STATE_NONE;
	parent->internal.status = status;
	bdev_io_complete_final(parent);
}

/* Moves the cursor (idx, off) forward by bytes through iovs. */
static void iov_advance(const struct iovec *iovs, int iovcnt, uint32_t *idx, size_t *off,
			size_t bytes)
{
	while (bytes > 0 && (int)*idx < iovcnt) {
		size_t avail = iovs[*idx].iov_len - *off;

		if (bytes < avail) {
			*off += bytes;
			return;
		}
		bytes -= avail;
		(*idx)++;
		*off = 0;
	}
}

/*
 * Fills the child's inline iovecs with up to want bytes from the parent's
 * cursor. If they run out first, the slice is cut back to whole blocks.
 * Returns the bytes the child covers (0: a single block spans more iovecs
 * than a child can hold).
 */
static size_t iov_slice(struct ust_bdev_io *parent, struct ust_bdev_io *child, size_t want)
{
	uint32_t idx = parent->internal.child_iov_idx;
	size_t off = parent->internal.child_iov_off;
	struct iovec *out = child->internal.inline_iovs;
	uint32_t blocklen = parent->bdev->blocklen;
	size_t got = 0, drop;
	int n = 0;

	while (got < want && (int)idx < parent->iovcnt && n < UST_BDEV_IO_NUM_INLINE_IOVS) {
		size_t avail = parent->iovs[idx].iov_len - off;
		size_t take;

		if (avail == 0) {
			idx++;
			off = 0;
			continue;
		}
		take = avail < want - got ? avail : want - got;
		out[n].iov_base = (uint8_t *)parent->iovs[idx].iov_base + off;
		out[n].iov_len = take;
		n++;
		got += take;
		off += take;
		if (off == parent->iovs[idx].iov_len) {
			idx++;
			off = 0;
		}
	}
	drop = got % blocklen;
	got -= drop;
	while (drop > 0 && n > 0) {
		size_t d = drop < out[n - 1].iov_len ? drop : out[n - 1].iov_len;

		out[n - 1].iov_len -= d;
		drop -= d;
		if (out[n - 1].iov_len == 0)
			n--;
	}
	child->iovs = out;
	child->iovcnt = n;
	iov_advance(parent->iovs, parent->iovcnt, &parent->internal.child_iov_idx,
		    &parent->internal.child_iov_off, got);
	return got;
}

/* Builds and submits the next child. 0, -ENOMEM (no I/O object) or -EINVAL. */
static int split_submit_one(struct ust_bdev_io *parent)
{
	struct ust_bdev *bdev = parent->bdev;
	uint64_t offset = parent->internal.child_offset;
	uint64_t n;
	enum ust_bdev_io_type type = parent->type;
	struct ust_bdev_io *child;

	if (parent->internal.state == BDEV_IO_STATE_ZEROES) {
		type = UST_BDEV_IO_TYPE_WRITE;
		n = BDEV_ZERO_BUF_SIZE / bdev->blocklen;
		if (n == 0)
			return -EINVAL;
		if (n > parent->internal.child_remaining)
			n = parent->internal.child_remaining;
	} else {
		n = bdev_split_child_blocks(bdev, type, offset, parent->internal.child_remaining);
	}
	child = child_alloc(parent, type, offset, n);
	if (child == NULL)
		return -ENOMEM;
	if (parent->internal.state == BDEV_IO_STATE_ZEROES) {
		child->internal.inline_iovs[0].iov_base = g_bdev_mgr.zero_buf;
		child->internal.inline_iovs[0].iov_len = n * bdev->blocklen;
		child->iovs = child->internal.inline_iovs;
		child->iovcnt = 1;
	} else if (type_has_data(type)) {
		size_t got = iov_slice(parent, child, n * bdev->blocklen);

		if (got == 0) {
			UST_ERRLOG("bdev %s: one block spans more than %d iovecs; cannot split\n",
				   ust_bdev_get_name(bdev), UST_BDEV_IO_NUM_INLINE_IOVS);
			bdev_io_put(child->internal.ch->mgmt, child);
			return -EINVAL;
		}
		n = got / bdev->blocklen;
		child->num_blocks = n;
	}
	parent->internal.child_offset += n;
	parent->internal.child_remaining -= n;
	parent->internal.child_outstanding++;
	bdev_io_submit(child);
	return 0;
}

static void split_continue(void *arg)
{
	struct ust_bdev_io *parent = arg;
	int rc;

	while (parent->internal.child_remaining > 0 && parent->internal.child_status == 0 &&
	       parent->internal.child_outstanding < BDEV_SPLIT_MAX_OUTSTANDING) {
		rc = split_submit_one(parent);
		if (rc == -ENOMEM) {
			/* A child in flight will call back; otherwise wait for a free object. */
			if (parent->internal.child_outstanding == 0)
				parent_wait(parent, split_continue);
			return;
		}
		if (rc != 0)
			parent->internal.child_status = rc;
	}
	if (parent->internal.child_outstanding == 0 &&
	    (parent->internal.child_remaining == 0 || parent->internal.child_status != 0))
		parent_complete(parent, parent->internal.child_status);
}

static void split_begin(struct ust_bdev_io *parent, enum bdev_io_state state)
{
	parent->internal.state = state;
	parent->internal.child_offset = parent->offset_blocks;
	parent->internal.child_remaining = parent->num_blocks;
	parent->internal.child_iov_idx = 0;
	parent->internal.child_iov_off = 0;
	parent->internal.child_outstanding = 0;
	parent->internal.child_status = 0;
	split_continue(parent);
}

void bdev_split_start(struct ust_bdev_io *io)
{
	split_begin(io, BDEV_IO_STATE_SPLIT);
}

void bdev_zeroes_start(struct ust_bdev_io *io)
{
	split_begin(io, BDEV_IO_STATE_ZEROES);
}

static void split_child_done(struct ust_bdev_io *parent, int status)
{
	parent->internal.child_outstanding--;
	if (status != 0 && parent->internal.child_status == 0)
		parent->internal.child_status = status;
	split_continue(parent);
}

/* ---- compare emulation -------------------------------------------------- */

static bool iovs_equal_buf(const struct iovec *iovs, int iovcnt, const uint8_t *buf, size_t len)
{
	int i;

	for (i = 0; i < iovcnt && len > 0; i++) {
		size_t n = iovs[i].iov_len < len ? iovs[i].iov_len : len;

		if (memcmp(iovs[i].iov_base, buf, n) != 0)
			return false;
		buf += n;
		len -= n;
	}
	return true;
}

static void compare_issue_read(void *arg)
{
	struct ust_bdev_io *parent = arg;
	struct bdev_channel *ch = parent->internal.submit_ch;
	size_t len = parent->num_blocks * parent->bdev->blocklen;
	struct ust_bdev_io *child;

	child = child_alloc(parent, UST_BDEV_IO_TYPE_READ, parent->offset_blocks,
			    parent->num_blocks);
	if (child == NULL) {
		parent_wait(parent, compare_issue_read);
		return;
	}
	if (parent->internal.buf == NULL) {
		parent->internal.buf = bdev_buf_get(ch->mgmt, len, parent->bdev->priv->buf_align,
						    &parent->internal.buf_len);
		if (parent->internal.buf == NULL) {
			bdev_io_put(ch->mgmt, child);
			parent_complete(parent, -ENOMEM);
			return;
		}
	}
	child->internal.inline_iovs[0].iov_base = parent->internal.buf;
	child->internal.inline_iovs[0].iov_len = len;
	child->iovs = child->internal.inline_iovs;
	child->iovcnt = 1;
	parent->internal.state = BDEV_IO_STATE_COMPARE_READ;
	bdev_io_submit(child);
}

void bdev_compare_start(struct ust_bdev_io *io)
{
	io->internal.buf = NULL;
	compare_issue_read(io);
}

static void compare_read_done(struct ust_bdev_io *parent, int status)
{
	struct bdev_channel *ch = parent->internal.submit_ch;
	size_t len = parent->num_blocks * parent->bdev->blocklen;

	if (status == 0 && !iovs_equal_buf(parent->iovs, parent->iovcnt, parent->internal.buf, len))
		status = -EILSEQ;
	bdev_buf_put(ch->mgmt, parent->internal.buf, parent->internal.buf_len);
	parent->internal.buf = NULL;
	parent_complete(parent, status);
}

/* ---- compare_and_write emulation ---------------------------------------- */

static bool ranges_overlap(const struct ust_bdev_io *a, const struct ust_bdev_io *b)
{
	return a->offset_blocks < b->offset_blocks + b->num_blocks &&
	       b->offset_blocks < a->offset_blocks + a->num_blocks;
}

static bool overlaps_any(const struct ust_bdev_io *io, const struct bdev_io_list *list,
			 const struct ust_bdev_io *stop)
{
	const struct ust_bdev_io *o;

	STAILQ_FOREACH(o, list, internal.lock_link) {
		if (o == stop)
			break;
		if (ranges_overlap(io, o))
			return true;
	}
	return false;
}

static void caw_issue_compare(void *arg);

static void caw_granted_msg(void *arg)
{
	caw_issue_compare(arg);
}

void bdev_caw_start(struct ust_bdev_io *io)
{
	struct ust_bdev_priv *priv = io->bdev->priv;
	bool wait;

	io->internal.state = BDEV_IO_STATE_CAW_LOCK;
	pthread_mutex_lock(&priv->range_mutex);
	/* Behind any overlapping waiter too, so a waiter is never starved. */
	wait = overlaps_any(io, &priv->locked_ranges, NULL) ||
	       overlaps_any(io, &priv->lock_waiters, NULL);
	if (wait)
		STAILQ_INSERT_TAIL(&priv->lock_waiters, io, internal.lock_link);
	else
		STAILQ_INSERT_TAIL(&priv->locked_ranges, io, internal.lock_link);
	pthread_mutex_unlock(&priv->range_mutex);
	if (!wait)
		caw_issue_compare(io);
}

static void caw_unlock(struct ust_bdev_io *io)
{
	struct ust_bdev_priv *priv = io->bdev->priv;
	struct bdev_io_list granted;
	struct ust_bdev_io *w, *next;

	STAILQ_INIT(&granted);
	pthread_mutex_lock(&priv->range_mutex);
	STAILQ_REMOVE(&priv->locked_ranges, io, ust_bdev_io, internal.lock_link);
	for (w = STAILQ_FIRST(&priv->lock_waiters); w != NULL; w = next) {
		next = STAILQ_NEXT(w, internal.lock_link);
		if (overlaps_any(w, &priv->locked_ranges, NULL) ||
		    overlaps_any(w, &priv->lock_waiters, w))
			continue;
		STAILQ_REMOVE(&priv->lock_waiters, w, ust_bdev_io, internal.lock_link);
		STAILQ_INSERT_TAIL(&priv->locked_ranges, w, internal.lock_link);
		STAILQ_INSERT_TAIL(&granted, w, internal.link);
	}
	pthread_mutex_unlock(&priv->range_mutex);
	while ((w = STAILQ_FIRST(&granted)) != NULL) {
		STAILQ_REMOVE_HEAD(&granted, internal.link);
		bdev_send_msg(w->internal.submit_ch->thread, caw_granted_msg, w);
	}
}

static void caw_issue_compare(void *arg)
{
	struct ust_bdev_io *parent = arg;
	struct ust_bdev_io *child;

	child = child_alloc(parent, UST_BDEV_IO_TYPE_COMPARE, parent->offset_blocks,
			    parent->num_blocks);
	if (child == NULL) {
		parent_wait(parent, caw_issue_compare);
		return;
	}
	child->iovs = parent->iovs;
	child->iovcnt = parent->iovcnt;
	parent->internal.state = BDEV_IO_STATE_CAW_COMPARE;
	bdev_io_submit(child);
}

static void caw_issue_write(void *arg)
{
	struct ust_bdev_io *parent = arg;
	struct ust_bdev_io *child;

	child = child_alloc(parent, UST_BDEV_IO_TYPE_WRITE, parent->offset_blocks,
			    parent->num_blocks);
	if (child == NULL) {
		parent_wait(parent, caw_issue_write);
		return;
	}
	child->iovs = parent->fused_iovs;
	child->iovcnt = parent->fused_iovcnt;
	parent->internal.state = BDEV_IO_STATE_CAW_WRITE;
	bdev_io_submit(child);
}

static void caw_child_done(struct ust_bdev_io *parent, int status)
{
	if (parent->internal.state == BDEV_IO_STATE_CAW_COMPARE && status == 0) {
		caw_issue_write(parent);
		return;
	}
	caw_unlock(parent);
	parent_complete(parent, status);
}

/* ---- child completion --------------------------------------------------- */

void bdev_child_done(struct ust_bdev_io *child, int status, void *cb_arg)
{
	struct ust_bdev_io *parent = cb_arg;

	switch (parent->internal.state) {
	case BDEV_IO_STATE_SPLIT:
	case BDEV_IO_STATE_ZEROES:
		split_child_done(parent, status);
		break;
	case BDEV_IO_STATE_COMPARE_READ:
		compare_read_done(parent, status);
		break;
	case BDEV_IO_STATE_CAW_COMPARE:
	case BDEV_IO_STATE_CAW_WRITE:
		caw_child_done(parent, status);
		break;
	default:
		UST_ERRLOG("bdev: child I/O completed for a parent in state %d\n",
			   parent->internal.state);
		break;
	}
}
