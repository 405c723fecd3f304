/*
 * Creating an lvstore (bdev/lvol): the LVS_CREATE_* steps.
 *
 * A base that already holds a store of the shared type (blobfs's) gets the
 * lvstore's marker blob added and is never formatted; any other base is
 * cleared as opts.clear_method says (skipped, with a notice, when the base
 * cannot do it) and formatted as a new shared store holding the marker.
 *
 * Guarantees:
 *  - A base that is claimed by something else or cannot be read is left
 *    untouched, with an error.
 *  - A failed create leaves the base as it found it where it can: in a
 *    store that existed only the marker is deleted again (the store and its
 *    other blobs are not ours); a store this create formatted is erased.
 *  - The marker is the store's super blob only when no other owner set
 *    one; otherwise load finds it by walking the blobs.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ustor/log.h"

#include "lvs_op.h"

static void lvs_op_clear_done(struct ust_bdev_io *io, int status, void *arg)
{
	(void)io;
	lvs_op_done(arg, status);
}

/* Start clearing the base before formatting; false if there is nothing to do. */
static bool lvs_start_clear(struct lvs_op *op)
{
	struct ust_lvol_store *lvs = op->lvs;
	enum ust_bdev_io_type type = UST_BDEV_IO_TYPE_UNMAP;
	struct ust_bdev *bdev;
	int rc;

	if (op->opts.clear_method == UST_LVOL_CLEAR_NONE)
		return false;
	if (op->opts.clear_method == UST_LVOL_CLEAR_WRITE_ZEROES)
		type = UST_BDEV_IO_TYPE_WRITE_ZEROES;
	rc = ust_bdev_open_ext(lvs->base_name, true, lvs_base_event, lvs, &op->clear_desc);
	if (rc != 0) {
		op->rc = rc;
		return false;
	}
	bdev = ust_bdev_desc_get_bdev(op->clear_desc);
	if (!ust_bdev_io_type_supported(bdev, type)) {
		UST_NOTICELOG("lvstore %s: %s cannot %s; not clearing it\n", lvs->name,
			      lvs->base_name, ust_bdev_io_type_name(type));
		ust_bdev_close(op->clear_desc);
		op->clear_desc = NULL;
		return false;
	}
	op->clear_ch = ust_bdev_get_io_channel(op->clear_desc);
	if (op->clear_ch == NULL) {
		op->rc = -ENOMEM;
		return false;
	}
	if (type == UST_BDEV_IO_TYPE_UNMAP)
		rc = ust_bdev_unmap_blocks(op->clear_desc, op->clear_ch, 0,
					   ust_bdev_get_num_blocks(bdev), lvs_op_clear_done, op);
	else
		rc = ust_bdev_write_zeroes_blocks(op->clear_desc, op->clear_ch, 0,
						  ust_bdev_get_num_blocks(bdev), lvs_op_clear_done,
						  op);
	if (rc != 0) {
		op->rc = rc;
		return false;
	}
	return true;
}

static void lvs_clear_release(struct lvs_op *op)
{
	if (op->clear_ch != NULL) {
		ust_put_io_channel(op->clear_ch);
		op->clear_ch = NULL;
	}
	if (op->clear_desc != NULL) {
		ust_bdev_close(op->clear_desc);
		op->clear_desc = NULL;
	}
}

/* The new store's geometry: the create options, md pages as a share of the base's clusters. */
static void lvs_format_opts(const struct lvs_op *op, struct ust_bs_opts *bs_opts)
{
	lvs_bs_opts_init(bs_opts, UST_LVS_BSTYPE);
	bs_opts->cluster_size = op->opts.cluster_sz;
	if (op->opts.num_md_pages_per_cluster_ratio != 0) {
		uint64_t cs = op->opts.cluster_sz ? op->opts.cluster_sz : (1u << 20);
		struct ust_bdev *base = ust_bdev_get_by_name(op->lvs->base_name);
		uint64_t clusters = base ? ust_bdev_get_num_blocks(base) *
						   ust_bdev_get_block_size(base) / cs : 0;
		uint64_t pages = clusters * op->opts.num_md_pages_per_cluster_ratio / 100;

		bs_opts->md_pages = pages > UINT32_MAX ? UINT32_MAX : (uint32_t)pages;
	}
}

void lvs_create_step(struct lvs_op *op)
{
	struct ust_lvol_store *lvs = op->lvs;
	struct ust_bs_opts bs_opts;
	struct ust_blob_opts blob_opts;
	struct ust_blob_xattr *xattrs = op->xattrs;
	struct ust_blob_store *bs;
	ust_blob_id id;

	switch (op->state) {
	case LVS_CREATE_PROBE:
		lvs_bs_opts_init(&bs_opts, UST_LVS_BSTYPE);
		op->state = LVS_CREATE_PROBED;
		ust_bs_share_load(lvs->base_name, &bs_opts, lvs_op_bs_done, op);
		return;
	case LVS_CREATE_PROBED:
		if (op->rc == 0) {
			/* A store of the shared type (blobfs's): add the marker, never format. */
			lvs->shared = true;
			if (ust_bs_get_md_thread(lvs->bs) != ust_get_thread()) {
				op->result = lvs_refuse_foreign_thread(lvs, lvs->bs);
				lvs->bs = NULL;
				op->state = LVS_OP_FINISH;
				lvs_op_step(op);
				return;
			}
			UST_NOTICELOG("lvstore %s: adding it to the store on %s (its other blobs stay)\n",
				      lvs->name, lvs->base_name);
			op->joined = true;
			op->state = LVS_CREATE_SUPER;
			lvs_op_step(op);
			return;
		}
		lvs->bs = NULL;
		if (op->rc != -ENODATA && op->rc != -EUCLEAN && op->rc != -EILSEQ) {
			/* Claimed (another store is loaded on it) or unreadable. */
			UST_ERRLOG("lvstore %s: cannot use %s: %s\n", lvs->name, lvs->base_name,
				   strerror(-op->rc));
			op->result = op->rc;
			op->state = LVS_OP_FINISH;
			lvs_op_step(op);
			return;
		}
		op->state = LVS_CREATE_CLEAR;
		/* fall through */
	case LVS_CREATE_CLEAR:
		op->state = LVS_CREATE_INIT;
		op->rc = 0;
		if (lvs_start_clear(op))
			return;
		lvs_op_step(op);
		return;
	case LVS_CREATE_INIT:
		lvs_clear_release(op);
		if (op->rc != 0) {
			UST_ERRLOG("lvstore %s: clearing %s failed: %s\n", lvs->name, lvs->base_name,
				   strerror(-op->rc));
			op->result = op->rc;
			op->state = LVS_OP_FINISH;
			lvs_op_step(op);
			return;
		}
		lvs_format_opts(op, &bs_opts);
		op->state = LVS_CREATE_SUPER;
		lvs->shared = true;
		ust_bs_share_init(lvs->base_name, &bs_opts, lvs_op_bs_done, op);
		return;
	case LVS_CREATE_SUPER:
		if (op->rc != 0) {
			UST_ERRLOG("lvstore %s: cannot format %s: %s\n", lvs->name, lvs->base_name,
				   strerror(-op->rc));
			lvs->bs = NULL;
			op->result = op->rc;
			op->state = LVS_OP_FINISH;
			lvs_op_step(op);
			return;
		}
		ust_uuid_fmt(op->uuid_str, sizeof(op->uuid_str), &lvs->uuid);
		xattrs[0] = (struct ust_blob_xattr){LVS_XATTR_NAME, lvs->name, strlen(lvs->name), true};
		xattrs[1] = (struct ust_blob_xattr){LVS_XATTR_UUID, op->uuid_str,
						    strlen(op->uuid_str), true};
		ust_blob_opts_init(&blob_opts);
		blob_opts.xattrs = xattrs;
		blob_opts.xattr_count = 2;
		op->state = LVS_CREATE_SET_SUPER;
		ust_bs_create_blob(lvs->bs, &blob_opts, lvs_op_id_done, op);
		return;
	case LVS_CREATE_SET_SUPER:
		if (op->rc != 0) {
			op->result = op->rc;
			op->state = LVS_CREATE_UNDO;
			lvs_op_step(op);
			return;
		}
		lvs->super_id = op->id;
		op->state = LVS_CREATE_DONE;
		if (ust_bs_get_super(lvs->bs) != UST_BLOBID_INVALID) {
			/* Another owner's super blob: ours is found by the walk at load. */
			lvs_op_step(op);
			return;
		}
		ust_bs_set_super(lvs->bs, op->id, lvs_op_done, op);
		return;
	case LVS_CREATE_DONE:
		if (op->rc == 0)
			op->rc = lvs_go_live(lvs);
		if (op->rc != 0) {
			op->result = op->rc;
			op->state = LVS_CREATE_UNDO;
			lvs_op_step(op);
			return;
		}
		op->result = 0;
		op->state = LVS_OP_FINISH;
		lvs_op_step(op);
		return;
	case LVS_CREATE_UNDO:
		bs = lvs->bs;
		if (op->joined && op->id != UST_BLOBID_INVALID) {
			/* Take the marker out again; the store is not ours to erase. */
			UST_ERRLOG("lvstore %s: creation failed: %s; removing its marker blob\n",
				   lvs->name, strerror(-op->result));
			id = op->id;
			op->id = UST_BLOBID_INVALID;
			ust_bs_delete_blob(bs, id, lvs_op_done, op);
			return;
		}
		lvs->bs = NULL; /* before the call: its callback may run inline */
		op->state = LVS_OP_FINISH;
		if (op->joined) {
			ust_bs_share_put(bs, lvs_op_done, op);
			return;
		}
		UST_ERRLOG("lvstore %s: creation failed: %s; erasing the new store\n", lvs->name,
			   strerror(-op->result));
		ust_bs_share_destroy(bs, lvs_op_done, op);
		return;

	default:
		/* lvs_op_step hands a create only LVS_CREATE_* states. */
		break;
	}
}
