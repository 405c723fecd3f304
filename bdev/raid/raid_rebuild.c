/*
 * raid1 rebuild: copies the array's data from a readable member onto a new
 * member, window by window, on the app thread while I/O goes on.
 *
 * The new member takes every write from the moment it is added, so only
 * data written before that must be copied. For each window the rebuild
 * locks the range on every channel (writes overlapping it wait, those in
 * flight are waited for), reads it from the source, writes it to the
 * target, and unlocks; so a copy can never overwrite a newer write. When the
 * last window is copied the member becomes readable.
 *
 * Guarantees: one step function (rebuild_step) drives the whole sequence;
 * an abort (member removed, array deleted) takes effect at the next step
 * boundary and always unlocks a locked window first; a failed read or
 * write ends the rebuild with an error message and the target stays
 * write-only (a failed target is removed from the array).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/bdev.h"
#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/thread.h"

#include "raid_internal.h"

#define REBUILD_WINDOW_BYTES (1024 * 1024)

enum rebuild_state {
	REBUILD_LOCK,
	REBUILD_READ,
	REBUILD_WRITE,
	REBUILD_UNLOCK,
	REBUILD_NEXT,
	REBUILD_FINISH,
};

struct raid_rebuild {
	struct raid_bdev *raid;
	enum rebuild_state state;
	uint32_t target;
	uint32_t source;
	struct ust_io_channel *src_ch;
	struct ust_io_channel *dst_ch;
	void *buf;
	uint64_t window_blocks;
	uint64_t offset;
	uint64_t len;
	uint64_t done_blocks;
	int status;
	bool write_failed;
	bool aborting;
	void (*abort_cb)(void *ctx);
	void *abort_ctx;
	struct ust_bdev_io_wait_entry wait;
};

static void rebuild_step(struct raid_rebuild *rb);

uint64_t raid_rebuild_progress(const struct raid_bdev *raid)
{
	return raid->rebuild != NULL ? raid->rebuild->done_blocks : 0;
}

bool raid_rebuild_uses_slot(const struct raid_bdev *raid, uint32_t slot)
{
	return raid->rebuild != NULL &&
	       (raid->rebuild->target == slot || raid->rebuild->source == slot);
}

static void rebuild_walk_done(struct ust_io_channel_iter *i, int status)
{
	rebuild_step(ust_io_channel_iter_get_ctx(i));
}

static void rebuild_io_done(struct ust_bdev_io *io, int status, void *cb_arg)
{
	struct raid_rebuild *rb = cb_arg;

	if (status != 0 && rb->status == 0) {
		rb->status = status;
		rb->write_failed = rb->state == REBUILD_UNLOCK;
	}
	rebuild_step(rb);
}

static void rebuild_retry(void *arg)
{
	rebuild_step(arg);
}

/* Issue the window's read or write; false when it must be retried later (state kept). */
static bool rebuild_submit(struct raid_rebuild *rb, bool write)
{
	struct raid_bdev *raid = rb->raid;
	struct raid_base *base = &raid->bases[write ? rb->target : rb->source];
	struct ust_io_channel *ch = write ? rb->dst_ch : rb->src_ch;
	int rc;

	if (write) {
		rc = ust_bdev_write_blocks(base->desc, ch, rb->buf, rb->offset, rb->len,
					   rebuild_io_done, rb);
	} else {
		rc = ust_bdev_read_blocks(base->desc, ch, rb->buf, rb->offset, rb->len,
					  rebuild_io_done, rb);
	}
	if (rc == -ENOMEM) {
		rb->wait.bdev = base->bdev;
		rb->wait.cb_fn = rebuild_retry;
		rb->wait.cb_arg = rb;
		if (ust_bdev_queue_io_wait(base->bdev, ch, &rb->wait) == 0) {
			return false;
		}
		rc = write ? ust_bdev_write_blocks(base->desc, ch, rb->buf, rb->offset, rb->len,
						   rebuild_io_done, rb)
			   : ust_bdev_read_blocks(base->desc, ch, rb->buf, rb->offset, rb->len,
						  rebuild_io_done, rb);
	}
	if (rc != 0) {
		rb->status = rc;
		rb->write_failed = write;
		return false;
	}
	return true;
}

static void rebuild_release(struct raid_rebuild *rb)
{
	if (rb->src_ch != NULL) {
		ust_put_io_channel(rb->src_ch);
	}
	if (rb->dst_ch != NULL) {
		ust_put_io_channel(rb->dst_ch);
	}
	ust_dma_free(rb->buf);
	rb->raid->rebuild = NULL;
}

static void rebuild_finish(struct raid_rebuild *rb)
{
	struct raid_bdev *raid = rb->raid;
	uint32_t target = rb->target;

	rebuild_release(rb);
	if (rb->aborting) {
		UST_NOTICELOG("raid %s: rebuild of %s stopped at block %" PRIu64 "\n", raid->name,
			      raid->bases[target].name, rb->offset);
		if (rb->abort_cb != NULL) {
			rb->abort_cb(rb->abort_ctx);
		}
	} else if (rb->status != 0) {
		UST_ERRLOG("raid %s: rebuild of %s failed at block %" PRIu64 ": %s %s\n", raid->name,
			   raid->bases[target].name, rb->offset,
			   rb->write_failed ? "writing the new member:" : "reading the source:",
			   strerror(-rb->status));
		if (rb->write_failed) {
			raid_base_failed(raid, target);
		}
	} else {
		raid_member_rebuilt(raid, target);
	}
	free(rb);
}

static void rebuild_step(struct raid_rebuild *rb)
{
	struct raid_bdev *raid = rb->raid;

	for (;;) {
		switch (rb->state) {
		case REBUILD_LOCK:
			if (rb->aborting || rb->offset >= raid->bdev.blockcnt) {
				rb->state = REBUILD_FINISH;
				break;
			}
			rb->len = raid->bdev.blockcnt - rb->offset;
			if (rb->len > rb->window_blocks) {
				rb->len = rb->window_blocks;
			}
			raid->lock_start = rb->offset;
			raid->lock_end = rb->offset + rb->len;
			raid->lock_active = true;
			rb->state = REBUILD_READ;
			ust_for_each_channel(raid, raid_channel_lock, rb, rebuild_walk_done);
			return;
		case REBUILD_READ:
			if (rb->aborting) {
				rb->state = REBUILD_UNLOCK;
				break;
			}
			if (!rebuild_submit(rb, false)) {
				if (rb->status != 0) {
					rb->state = REBUILD_UNLOCK;
					break;
				}
				return; /* waiting for an I/O object */
			}
			rb->state = REBUILD_WRITE;
			return;
		case REBUILD_WRITE:
			if (rb->aborting || rb->status != 0) {
				rb->state = REBUILD_UNLOCK;
				break;
			}
			if (!rebuild_submit(rb, true)) {
				if (rb->status != 0) {
					rb->state = REBUILD_UNLOCK;
					break;
				}
				return;
			}
			rb->state = REBUILD_UNLOCK;
			return;
		case REBUILD_UNLOCK:
			raid->lock_active = false;
			rb->state = REBUILD_NEXT;
			ust_for_each_channel(raid, raid_channel_unlock, rb, rebuild_walk_done);
			return;
		case REBUILD_NEXT:
			if (rb->aborting || rb->status != 0) {
				rb->state = REBUILD_FINISH;
				break;
			}
			rb->offset += rb->len;
			rb->done_blocks = rb->offset;
			rb->state = REBUILD_LOCK;
			break;
		case REBUILD_FINISH:
			rebuild_finish(rb);
			return;
		}
	}
}

static uint32_t rebuild_pick_source(const struct raid_bdev *raid, uint32_t target)
{
	uint32_t i;

	for (i = 0; i < raid->num_slots; i++) {
		if (i != target && raid->bases[i].state == RAID_BASE_ONLINE) {
			return i;
		}
	}
	return UINT32_MAX;
}

int raid_rebuild_start(struct raid_bdev *raid, uint32_t target_slot)
{
	struct raid_rebuild *rb;
	uint32_t source = rebuild_pick_source(raid, target_slot);

	if (raid->rebuild != NULL) {
		return -EBUSY;
	}
	if (source == UINT32_MAX) {
		UST_ERRLOG("raid %s: no readable member to rebuild %s from\n", raid->name,
			   raid->bases[target_slot].name);
		return -ENODEV;
	}
	rb = calloc(1, sizeof(*rb));
	if (rb == NULL) {
		return -ENOMEM;
	}
	rb->raid = raid;
	rb->target = target_slot;
	rb->source = source;
	rb->window_blocks = REBUILD_WINDOW_BYTES / raid->bdev.blocklen;
	if (rb->window_blocks == 0) {
		rb->window_blocks = 1;
	}
	rb->buf = ust_dma_malloc(rb->window_blocks * raid->bdev.blocklen, 4096);
	rb->src_ch = ust_bdev_get_io_channel(raid->bases[source].desc);
	rb->dst_ch = ust_bdev_get_io_channel(raid->bases[target_slot].desc);
	raid->rebuild = rb;
	if (rb->buf == NULL || rb->src_ch == NULL || rb->dst_ch == NULL) {
		rebuild_release(rb);
		free(rb);
		return -ENOMEM;
	}
	UST_NOTICELOG("raid %s: rebuilding %s from %s\n", raid->name,
		      raid->bases[target_slot].name, raid->bases[source].name);
	rb->state = REBUILD_LOCK;
	rebuild_step(rb);
	return 0;
}

void raid_rebuild_abort(struct raid_bdev *raid, void (*done)(void *ctx), void *ctx)
{
	struct raid_rebuild *rb = raid->rebuild;

	if (rb == NULL) {
		done(ctx);
		return;
	}
	/* One abort at a time is all the callers need: destruct or one detach. */
	rb->aborting = true;
	rb->abort_cb = done;
	rb->abort_ctx = ctx;
}
