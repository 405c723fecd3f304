/*
 * The raid I/O path: raid0 maps each I/O to the member that holds its strip
 * (the core has already split it at strip boundaries); raid1 sends writes,
 * unmaps, write_zeroes and flushes to every writable member and reads from
 * the least busy readable one, retrying a failed read on the others.
 *
 * Guarantees: each raid I/O completes exactly once, after every child I/O
 * it issued has completed. A raid1 write succeeds when at least one member
 * took it; a member that failed it is dropped from the array (it is stale
 * now). A raid1 read fails only when every readable member failed it. While
 * the rebuild copies a window, writes on any channel that overlap it wait,
 * and the rebuild waits for those already in flight, so the copy never
 * overwrites newer data.
 */
#include <errno.h>
#include <string.h>

#include "ustor/bdev.h"
#include "ustor/bdev_module.h"
#include "ustor/log.h"
#include "ustor/thread.h"

#include "raid_internal.h"

static inline struct raid_io *raid_io_of(struct ust_bdev_io *io)
{
	return (struct raid_io *)ust_bdev_io_get_driver_ctx(io);
}

static inline struct ust_bdev_io *bdev_io_of(struct raid_io *rio)
{
	return ust_bdev_io_from_ctx(rio);
}

bool raid_io_type_supported(void *ctxt, enum ust_bdev_io_type type)
{
	struct raid_bdev *raid = ctxt;
	uint32_t i;

	switch (type) {
	case UST_BDEV_IO_TYPE_READ:
	case UST_BDEV_IO_TYPE_WRITE:
		return true;
	case UST_BDEV_IO_TYPE_FLUSH:
	case UST_BDEV_IO_TYPE_UNMAP:
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
	case UST_BDEV_IO_TYPE_RESET:
		for (i = 0; i < raid->num_slots; i++) {
			if (raid->bases[i].bdev != NULL &&
			    !ust_bdev_io_type_supported(raid->bases[i].bdev, type)) {
				return false;
			}
		}
		return true;
	default:
		return false;
	}
}

/* ---- child bookkeeping -------------------------------------------------- */

/* A child on slot finished: account it, and let a waiting detach go on. */
static void raid_child_accounted(struct raid_channel *rch, uint32_t slot)
{
	if (--rch->outstanding[slot] == 0 && rch->detach_iter[slot] != NULL) {
		raid_channel_base_idle(rch, slot);
	}
}

static uint32_t raid_child_slot(struct raid_channel *rch, struct ust_bdev_io *child)
{
	return raid_slot_of(rch->raid, ust_bdev_io_get_bdev(child));
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b_start, uint64_t b_end)
{
	return a < b_end && b_start < a + alen;
}

static bool io_changes_data(enum ust_bdev_io_type type)
{
	return type == UST_BDEV_IO_TYPE_WRITE || type == UST_BDEV_IO_TYPE_UNMAP ||
	       type == UST_BDEV_IO_TYPE_WRITE_ZEROES;
}

static void raid_write_left(struct raid_io *rio)
{
	struct raid_channel *rch = rio->rch;
	struct ust_io_channel_iter *iter;

	if (!rio->in_flight_list) {
		return;
	}
	TAILQ_REMOVE(&rch->inflight_writes, rio, link);
	rio->in_flight_list = false;
	if (rio->overlaps_lock) {
		rio->overlaps_lock = false;
		if (--rch->lock_waiting == 0 && rch->lock_iter != NULL) {
			iter = rch->lock_iter;
			rch->lock_iter = NULL;
			ust_for_each_channel_continue(iter, 0);
		}
	}
}

static void raid_io_finish(struct raid_io *rio)
{
	struct ust_bdev_io *io = bdev_io_of(rio);

	raid_write_left(rio);
	ust_bdev_io_complete_errno(io, rio->status);
}

/* ---- fan-out to several members ----------------------------------------- */

/*
 * Submit the child for slot. Returns 0 (submitted), 1 (nothing to do on this
 * member), or a negative errno from the base.
 */
static int raid_submit_child(struct raid_io *rio, uint32_t slot);

static void raid_fanout_continue(void *arg);

static void raid_fanout_release(struct raid_io *rio)
{
	if (--rio->remaining == 0) {
		raid_io_finish(rio);
	}
}

/* Issue children from rio->next on; a base out of I/O objects parks the loop. */
static void raid_fanout(struct raid_io *rio)
{
	struct raid_channel *rch = rio->rch;
	struct raid_bdev *raid = rch->raid;
	uint32_t slot;
	int rc;

	for (; rio->next < raid->num_slots; rio->next++) {
		slot = rio->next;
		if (!rch->writable[slot] || rch->base_ch[slot] == NULL) {
			continue;
		}
		rc = raid_submit_child(rio, slot);
		if (rc == 1) {
			continue;
		}
		if (rc == -ENOMEM) {
			rio->wait.bdev = raid->bases[slot].bdev;
			rio->wait.cb_fn = raid_fanout_continue;
			rio->wait.cb_arg = rio;
			if (ust_bdev_queue_io_wait(rio->wait.bdev, rch->base_ch[slot], &rio->wait) == 0) {
				return; /* the guard reference stays until we resume */
			}
			rio->next--; /* an object is free right now: retry this slot */
			continue;
		}
		if (rc != 0) {
			if (rio->status == 0) {
				rio->status = rc;
			}
			continue;
		}
		rch->outstanding[slot]++;
		rio->remaining++;
	}
	raid_fanout_release(rio);
}

static void raid_fanout_continue(void *arg)
{
	raid_fanout(arg);
}

static void raid_fanout_start(struct raid_io *rio)
{
	rio->next = 0;
	rio->remaining = 1; /* guard: held while children are being issued */
	rio->succeeded = 0;
	rio->status = 0;
	raid_fanout(rio);
}

/* ---- raid0 -------------------------------------------------------------- */

void raid0_map_block(const struct raid_bdev *raid, uint64_t block, uint32_t *member,
		     uint64_t *member_block)
{
	uint64_t strip = block >> raid->strip_shift;

	*member = (uint32_t)(strip % raid->num_slots);
	*member_block = ((strip / raid->num_slots) << raid->strip_shift) +
			(block & (raid->strip_blocks - 1));
}

/*
 * The part of [offset, offset + n) that lives on member m: on a member, the
 * strips of one contiguous array range are contiguous too.
 */
static bool raid0_member_range(const struct raid_bdev *raid, uint64_t offset, uint64_t n,
			       uint32_t m, uint64_t *start, uint64_t *len)
{
	uint64_t first = offset >> raid->strip_shift;
	uint64_t last = (offset + n - 1) >> raid->strip_shift;
	uint64_t N = raid->num_slots, sf, sl, end;
	uint64_t mask = raid->strip_blocks - 1;

	sf = first + (m + N - first % N) % N;
	if (sf > last) {
		return false;
	}
	sl = last - (last % N + N - m) % N;
	*start = ((sf / N) << raid->strip_shift) + (sf == first ? (offset & mask) : 0);
	end = ((sl / N) << raid->strip_shift) +
	      (sl == last ? ((offset + n - 1) & mask) + 1 : raid->strip_blocks);
	*len = end - *start;
	return true;
}

static void raid_child_done(struct ust_bdev_io *child, int status, void *cb_arg);

static int raid0_submit_child(struct raid_io *rio, uint32_t slot)
{
	struct ust_bdev_io *io = bdev_io_of(rio);
	struct raid_channel *rch = rio->rch;
	struct ust_bdev_desc *desc = rch->raid->bases[slot].desc;
	struct ust_io_channel *ch = rch->base_ch[slot];
	uint64_t start, len;

	if (io->type == UST_BDEV_IO_TYPE_FLUSH || io->type == UST_BDEV_IO_TYPE_RESET) {
		if (io->type == UST_BDEV_IO_TYPE_RESET) {
			return ust_bdev_reset(desc, ch, raid_child_done, rio);
		}
		/* A flush makes everything durable: the whole member is simplest and exact. */
		return ust_bdev_flush_blocks(desc, ch, 0, ust_bdev_get_num_blocks(rch->raid->bases[slot].bdev),
					     raid_child_done, rio);
	}
	if (!raid0_member_range(rch->raid, io->offset_blocks, io->num_blocks, slot, &start, &len)) {
		return 1;
	}
	if (io->type == UST_BDEV_IO_TYPE_UNMAP) {
		return ust_bdev_unmap_blocks(desc, ch, start, len, raid_child_done, rio);
	}
	return ust_bdev_write_zeroes_blocks(desc, ch, start, len, raid_child_done, rio);
}

static void raid0_rw_done(struct ust_bdev_io *child, int status, void *cb_arg)
{
	struct raid_io *rio = cb_arg;

	raid_child_accounted(rio->rch, rio->read_slot);
	ust_bdev_io_complete_errno(bdev_io_of(rio), status);
}

static void raid0_submit_rw(struct raid_channel *rch, struct ust_bdev_io *io, struct raid_io *rio)
{
	struct raid_bdev *raid = rch->raid;
	uint64_t member_block;
	uint32_t member;
	int rc;

	if ((io->offset_blocks >> raid->strip_shift) !=
	    ((io->offset_blocks + io->num_blocks - 1) >> raid->strip_shift)) {
		UST_ERRLOG("raid %s: I/O crosses a strip boundary\n", raid->name);
		ust_bdev_io_complete_errno(io, -EIO);
		return;
	}
	raid0_map_block(raid, io->offset_blocks, &member, &member_block);
	if (rch->base_ch[member] == NULL) {
		ust_bdev_io_complete_errno(io, -ENODEV);
		return;
	}
	rio->read_slot = member;
	if (io->type == UST_BDEV_IO_TYPE_READ) {
		rc = ust_bdev_readv_blocks(raid->bases[member].desc, rch->base_ch[member], io->iovs,
					   io->iovcnt, member_block, io->num_blocks, raid0_rw_done,
					   rio);
	} else {
		rc = ust_bdev_writev_blocks(raid->bases[member].desc, rch->base_ch[member], io->iovs,
					    io->iovcnt, member_block, io->num_blocks, raid0_rw_done,
					    rio);
	}
	if (rc == 0) {
		rch->outstanding[member]++;
	} else if (rc == -ENOMEM) {
		ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_NOMEM);
	} else {
		ust_bdev_io_complete_errno(io, rc);
	}
}

/* ---- raid1 -------------------------------------------------------------- */

static int raid1_submit_child(struct raid_io *rio, uint32_t slot)
{
	struct ust_bdev_io *io = bdev_io_of(rio);
	struct raid_channel *rch = rio->rch;
	struct ust_bdev_desc *desc = rch->raid->bases[slot].desc;
	struct ust_io_channel *ch = rch->base_ch[slot];

	switch (io->type) {
	case UST_BDEV_IO_TYPE_WRITE:
		return ust_bdev_writev_blocks(desc, ch, io->iovs, io->iovcnt, io->offset_blocks,
					      io->num_blocks, raid_child_done, rio);
	case UST_BDEV_IO_TYPE_UNMAP:
		return ust_bdev_unmap_blocks(desc, ch, io->offset_blocks, io->num_blocks,
					     raid_child_done, rio);
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
		return ust_bdev_write_zeroes_blocks(desc, ch, io->offset_blocks, io->num_blocks,
						    raid_child_done, rio);
	case UST_BDEV_IO_TYPE_FLUSH:
		return ust_bdev_flush_blocks(desc, ch, io->offset_blocks, io->num_blocks,
					     raid_child_done, rio);
	case UST_BDEV_IO_TYPE_RESET:
		return ust_bdev_reset(desc, ch, raid_child_done, rio);
	default:
		return -ENOTSUP;
	}
}

static int raid_submit_child(struct raid_io *rio, uint32_t slot)
{
	if (rio->rch->raid->level == UST_RAID0) {
		return raid0_submit_child(rio, slot);
	}
	return raid1_submit_child(rio, slot);
}

static void raid_child_done(struct ust_bdev_io *child, int status, void *cb_arg)
{
	struct raid_io *rio = cb_arg;
	struct raid_channel *rch = rio->rch;
	struct ust_bdev_io *io = bdev_io_of(rio);
	uint32_t slot = raid_child_slot(rch, child);

	if (status == 0) {
		rio->succeeded++;
	} else if (rch->raid->level == UST_RAID1 && io_changes_data(io->type) &&
		   slot != UINT32_MAX) {
		/* This member missed a write: it is stale, stop using it here and everywhere. */
		if (rch->readable[slot] || rch->writable[slot]) {
			rch->readable[slot] = false;
			rch->writable[slot] = false;
			raid_base_failed(rch->raid, slot);
		}
	} else if (rio->status == 0) {
		rio->status = status;
	}
	if (slot != UINT32_MAX) {
		raid_child_accounted(rch, slot);
	}
	if (--rio->remaining != 0) {
		return;
	}
	if (rch->raid->level == UST_RAID1 && io_changes_data(io->type)) {
		rio->status = rio->succeeded > 0 ? 0 : (status != 0 ? status : -EIO);
	}
	raid_io_finish(rio);
}

/* The least busy readable member not tried yet; ties rotate. UINT32_MAX if none. */
static uint32_t raid1_pick_reader(struct raid_channel *rch, uint32_t tried)
{
	uint32_t n = rch->raid->num_slots, i, slot, best = UINT32_MAX;

	for (i = 0; i < n; i++) {
		slot = (rch->rr + i) % n;
		if (!rch->readable[slot] || (tried & (1u << slot)) != 0) {
			continue;
		}
		if (best == UINT32_MAX || rch->outstanding[slot] < rch->outstanding[best]) {
			best = slot;
		}
	}
	rch->rr++;
	return best;
}

static void raid1_read_done(struct ust_bdev_io *child, int status, void *cb_arg);

static void raid1_read_submit(struct raid_io *rio)
{
	struct ust_bdev_io *io = bdev_io_of(rio);
	struct raid_channel *rch = rio->rch;
	uint32_t slot;
	int rc;

	for (;;) {
		slot = raid1_pick_reader(rch, rio->tried);
		if (slot == UINT32_MAX) {
			ust_bdev_io_complete_errno(io, rio->status != 0 ? rio->status : -EIO);
			return;
		}
		rio->read_slot = slot;
		rc = ust_bdev_readv_blocks(rch->raid->bases[slot].desc, rch->base_ch[slot], io->iovs,
					   io->iovcnt, io->offset_blocks, io->num_blocks,
					   raid1_read_done, rio);
		if (rc == 0) {
			rch->outstanding[slot]++;
			return;
		}
		if (rc == -ENOMEM) {
			ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_NOMEM);
			return;
		}
		rio->tried |= 1u << slot;
		rio->status = rc;
	}
}

static void raid1_read_done(struct ust_bdev_io *child, int status, void *cb_arg)
{
	struct raid_io *rio = cb_arg;
	struct raid_channel *rch = rio->rch;

	raid_child_accounted(rch, rio->read_slot);
	if (status == 0) {
		ust_bdev_io_complete_errno(bdev_io_of(rio), 0);
		return;
	}
	/* The degraded read path: another mirror may still have the data. */
	rio->tried |= 1u << rio->read_slot;
	rio->status = status;
	raid1_read_submit(rio);
}

/* Writes wait while they overlap the window the rebuild is copying. */
static void raid_write_start(struct raid_io *rio)
{
	struct ust_bdev_io *io = bdev_io_of(rio);
	struct raid_channel *rch = rio->rch;

	if (rch->lock_active &&
	    ranges_overlap(io->offset_blocks, io->num_blocks, rch->lock_start, rch->lock_end)) {
		TAILQ_INSERT_TAIL(&rch->queued_writes, rio, link);
		return;
	}
	TAILQ_INSERT_TAIL(&rch->inflight_writes, rio, link);
	rio->in_flight_list = true;
	raid_fanout_start(rio);
}

void raid_submit_request(struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct raid_channel *rch = ust_io_channel_get_ctx(ch);
	struct raid_io *rio = raid_io_of(io);

	rio->rch = rch;
	rio->tried = 0;
	rio->status = 0;
	rio->in_flight_list = false;
	rio->overlaps_lock = false;
	if (rch->raid->level == UST_RAID0) {
		if (io->type == UST_BDEV_IO_TYPE_READ || io->type == UST_BDEV_IO_TYPE_WRITE) {
			raid0_submit_rw(rch, io, rio);
		} else {
			raid_fanout_start(rio);
		}
		return;
	}
	if (io->type == UST_BDEV_IO_TYPE_READ) {
		raid1_read_submit(rio);
	} else if (io_changes_data(io->type)) {
		raid_write_start(rio);
	} else {
		raid_fanout_start(rio);
	}
}

/* ---- the rebuild lock, one channel at a time ------------------------------ */

void raid_channel_lock(struct ust_io_channel_iter *i)
{
	struct raid_bdev *raid = ust_io_channel_iter_get_io_device(i);
	struct raid_channel *rch = ust_io_channel_get_ctx(ust_io_channel_iter_get_channel(i));
	struct ust_bdev_io *io;
	struct raid_io *rio;

	rch->lock_active = true;
	rch->lock_start = raid->lock_start;
	rch->lock_end = raid->lock_end;
	rch->lock_waiting = 0;
	TAILQ_FOREACH(rio, &rch->inflight_writes, link) {
		io = bdev_io_of(rio);
		if (ranges_overlap(io->offset_blocks, io->num_blocks, rch->lock_start,
				   rch->lock_end)) {
			rio->overlaps_lock = true;
			rch->lock_waiting++;
		}
	}
	if (rch->lock_waiting == 0) {
		ust_for_each_channel_continue(i, 0);
		return;
	}
	rch->lock_iter = i; /* raid_write_left continues */
}

void raid_channel_unlock(struct ust_io_channel_iter *i)
{
	struct raid_channel *rch = ust_io_channel_get_ctx(ust_io_channel_iter_get_channel(i));
	struct raid_io_list held;
	struct raid_io *rio;

	rch->lock_active = false;
	TAILQ_INIT(&held);
	TAILQ_CONCAT(&held, &rch->queued_writes, link);
	while ((rio = TAILQ_FIRST(&held)) != NULL) {
		TAILQ_REMOVE(&held, rio, link);
		raid_write_start(rio);
	}
	ust_for_each_channel_continue(i, 0);
}
