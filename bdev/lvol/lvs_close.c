/*
 * Unloading and destroying an lvstore (bdev/lvol): the LVS_CLOSE_* steps.
 *
 * In order: wait for every lvol operation, unregister every lvol bdev and
 * wait for their destructs, close the base's event descriptor, unregister
 * the channels' io_device and wait a round over every thread, then give
 * the store up. Unload releases it (drops the shared hold, or unloads an
 * exclusive store); destroy erases an exclusive store, and in a shared
 * store deletes only the lvstore's own blobs.
 *
 * Guarantees:
 *  - The blobstore is released only after no lvol bdev, lvol operation or
 *    channel of the store is left (each blobstore channel is put by a
 *    message to its own thread, hence the round over the threads).
 *  - Destroy in a shared store deletes the lvols first and the marker
 *    last: a crash leaves an lvstore with fewer lvols, never lvols without
 *    their lvstore. The store itself is erased only when nothing of
 *    another owner is in it and nobody else holds it.
 *  - A failed unload or destroy keeps the store loaded (without its lvols)
 *    and says so; it does not pretend the store is gone.
 */
#include <errno.h>
#include <string.h>

#include "ustor/log.h"

#include "lvs_op.h"

static void lvs_op_barrier_done(void *arg)
{
	lvs_op_done(arg, 0);
}

static void lvs_noop(void *arg)
{
	(void)arg;
}

static void lvs_channels_gone(void *io_device)
{
	struct ust_lvol_store *lvs = io_device;

	lvs_op_done(lvs->op, 0);
}

/* Destroy in a shared store: lvols not deleted yet. */
static int lvs_count_left(const struct lvs_op *op)
{
	size_t i;
	int left = 0;

	for (i = 0; i < op->ndel; i++)
		left += op->del_ids[i] != UST_BLOBID_INVALID;
	return left;
}

/*
 * Destroy in a shared store: delete the lvstore's own blobs only, the next
 * one not deleted yet. A snapshot with several clones answers -EBUSY until
 * its clones are gone, so passes repeat while one makes progress. The
 * marker goes last, so a crash leaves an lvstore with fewer lvols, never
 * lvols without their lvstore.
 */
static void lvs_delete_next(struct lvs_op *op)
{
	struct ust_lvol_store *lvs = op->lvs;
	int left;

	while (op->del_i < op->ndel && op->del_ids[op->del_i] == UST_BLOBID_INVALID)
		op->del_i++;
	if (op->del_i < op->ndel) {
		op->state = LVS_CLOSE_DELETED;
		ust_bs_delete_blob(lvs->bs, op->del_ids[op->del_i], lvs_op_done, op);
		return;
	}
	left = lvs_count_left(op);
	if (left != 0 && op->del_progress) {
		op->del_i = 0;
		op->del_progress = false;
		lvs_op_step(op);
		return;
	}
	if (left != 0) {
		UST_ERRLOG("lvstore %s: %d lvols could not be deleted; keeping the lvstore\n",
			   lvs->name, left);
		op->rc = -EBUSY;
		op->state = LVS_CLOSE_DONE;
		lvs_op_step(op);
		return;
	}
	op->state = LVS_CLOSE_MARKER_DELETED;
	ust_bs_delete_blob(lvs->bs, lvs->super_id, lvs_op_done, op);
}

void lvs_close_step(struct lvs_op *op)
{
	struct ust_lvol_store *lvs = op->lvs;
	struct ust_lvol *lvol;

	switch (op->state) {
	case LVS_CLOSE_WAIT_LVOLS:
		if (lvs->lvol_ops != 0)
			return; /* lvol_op_finish() pokes us */
		TAILQ_FOREACH(lvol, &lvs->lvols, link) {
			if (lvol->registered)
				ust_bdev_unregister_by_name(lvol->uuid_str, &g_lvol_module, NULL, NULL);
		}
		if (!TAILQ_EMPTY(&lvs->lvols))
			return; /* lvs_lvol_gone() pokes us */
		op->state = LVS_CLOSE_CHANNELS;
		lvs_op_step(op);
		return;
	case LVS_CLOSE_CHANNELS:
		if (lvs->base_desc != NULL) {
			ust_bdev_close(lvs->base_desc);
			lvs->base_desc = NULL;
		}
		op->state = LVS_CLOSE_BARRIER;
		lvs->io_device = false;
		ust_io_device_unregister(lvs, lvs_channels_gone);
		return;
	case LVS_CLOSE_BARRIER:
		/*
		 * Our channels are gone, but each put its blobstore channel by a
		 * message to its own thread; one round over every thread runs
		 * after those messages.
		 */
		op->state = LVS_CLOSE_STORE;
		ust_for_each_thread(lvs_noop, op, lvs_op_barrier_done);
		return;
	case LVS_CLOSE_STORE:
		op->state = LVS_CLOSE_DONE;
		if (op->kind == LVS_OP_DESTROY && lvs->shared) {
			op->state = LVS_CLOSE_DELETE;
			op->del_i = 0;
			op->del_progress = false;
			lvs_op_step(op);
		} else if (op->kind == LVS_OP_DESTROY) {
			ust_bs_destroy(lvs->bs, lvs_op_done, op);
		} else {
			lvs_store_release(lvs, lvs->bs, lvs_op_done, op);
		}
		return;
	case LVS_CLOSE_DELETE:
		lvs_delete_next(op);
		return;
	case LVS_CLOSE_DELETED:
		if (op->rc == 0 || op->rc == -ENOENT) {
			op->del_ids[op->del_i] = UST_BLOBID_INVALID;
			op->del_progress = true;
		} else if (op->rc != -EBUSY) {
			UST_ERRLOG("lvstore %s: deleting blob 0x%llx failed: %s\n", lvs->name,
				   (unsigned long long)op->del_ids[op->del_i], strerror(-op->rc));
		}
		op->del_i++;
		op->state = LVS_CLOSE_DELETE;
		lvs_op_step(op);
		return;
	case LVS_CLOSE_MARKER_DELETED:
		if (op->rc != 0) {
			op->state = LVS_CLOSE_DONE;
			lvs_op_step(op);
			return;
		}
		op->state = LVS_CLOSE_PUT;
		if (ust_bs_get_super(lvs->bs) == lvs->super_id) {
			/* The store's super blob id must not name the deleted marker. */
			ust_bs_set_super(lvs->bs, UST_BLOBID_INVALID, lvs_op_done, op);
			return;
		}
		lvs_op_step(op);
		return;
	case LVS_CLOSE_PUT:
		if (op->rc != 0)
			UST_ERRLOG("lvstore %s: clearing the store's super blob id failed: %s\n",
				   lvs->name, strerror(-op->rc));
		/* Is anything of another owner left in the store? */
		op->state = LVS_CLOSE_EMPTY_CHECKED;
		ust_bs_iter_first(lvs->bs, lvs_op_blob_done, op);
		return;
	case LVS_CLOSE_EMPTY_CHECKED:
		op->state = LVS_CLOSE_DONE;
		if (op->rc == -ENOENT && ust_bs_share_holders(lvs->bs) == 1) {
			/* Nothing but ours was in it, and nobody else holds it: erase it. */
			ust_bs_share_destroy(lvs->bs, lvs_op_done, op);
			return;
		}
		if (op->rc == 0) {
			/* Another owner's blob: the store stays. */
			lvs_op_close_blob(op, LVS_CLOSE_RELEASE);
			return;
		}
		/* fall through */
	case LVS_CLOSE_RELEASE:
		op->state = LVS_CLOSE_DONE;
		ust_bs_share_put(lvs->bs, lvs_op_done, op);
		return;
	case LVS_CLOSE_DONE:
		op->result = op->rc;
		if (op->rc != 0) {
			UST_ERRLOG("lvstore %s: %s failed: %s; the store stays loaded without its lvols\n",
				   lvs->name, op->kind == LVS_OP_DESTROY ? "destroy" : "unload",
				   strerror(-op->rc));
			if (lvs_go_live(lvs) != 0)
				UST_ERRLOG("lvstore %s: cannot serve lvols any more\n", lvs->name);
			lvs_op_finish(op, false);
			return;
		}
		UST_NOTICELOG("lvstore %s %s\n", lvs->name,
			      op->kind == LVS_OP_DESTROY ? "destroyed" : "unloaded");
		lvs->bs = NULL;
		lvs_op_finish(op, true);
		return;
	default:
		/* lvs_op_step hands an unload or destroy only LVS_CLOSE_* states. */
		break;
	}
}
