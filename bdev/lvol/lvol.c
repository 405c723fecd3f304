/*
 * Logical volumes: one blob each, exposed as a bdev named by the lvol's
 * UUID with the alias "LVS_NAME/LVOL_NAME"; and the lvol operations
 * (create, resize, rename, delete) as one step machine.
 *
 * Guarantees:
 *  - An lvol's name, UUID and clear method live in its blob's internal
 *    xattrs; an operation reports success only once the change is durable
 *    (the blobstore's create/sync callback said so).
 *  - An operation that fails leaves the lvol as it was, in memory and on
 *    disk, except where the log says otherwise (a delete whose clearing
 *    failed still deletes).
 *  - I/O goes straight to the blob on the submitting thread's blobstore
 *    channel; flush becomes ust_blob_sync_md() on the store's metadata
 *    thread (blob.h has no data-path flush), so it is a message round trip
 *    when submitted elsewhere.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"

#include "lvol_internal.h"

/* ---- names ---------------------------------------------------------------------- */

void lvol_build_alias(struct ust_lvol *lvol)
{
	snprintf(lvol->alias, sizeof(lvol->alias), "%s/%s", lvol->lvs->name, lvol->name);
}

struct ust_lvol *lvol_find(struct ust_lvol_store *lvs, const char *name)
{
	struct ust_lvol *lvol;

	TAILQ_FOREACH(lvol, &lvs->lvols, link) {
		if (strcmp(lvol->name, name) == 0)
			return lvol;
	}
	return NULL;
}

struct ust_lvol *lvol_find_id(struct ust_lvol_store *lvs, ust_blob_id id)
{
	struct ust_lvol *lvol;

	TAILQ_FOREACH(lvol, &lvs->lvols, link) {
		if (lvol->id == id && lvol->blob != NULL)
			return lvol;
	}
	return NULL;
}

struct ust_lvol *lvol_alloc(struct ust_lvol_store *lvs)
{
	struct ust_lvol *lvol = calloc(1, sizeof(*lvol));

	if (lvol != NULL)
		lvol->lvs = lvs;
	return lvol;
}

void lvol_free(struct ust_lvol *lvol)
{
	free(lvol);
}

/* A string xattr into buf (NUL-terminated); -EINVAL if empty, too long or holding a NUL. */
static int get_str_xattr(struct ust_blob *blob, const char *key, char *buf, size_t size)
{
	const void *value;
	size_t len;
	int rc;

	rc = ust_blob_get_internal_xattr(blob, key, &value, &len);
	if (rc != 0)
		return rc;
	if (len == 0 || len >= size || memchr(value, '\0', len) != NULL)
		return -EINVAL;
	memcpy(buf, value, len);
	buf[len] = '\0';
	return 0;
}

int lvol_from_blob(struct ust_lvol *lvol, struct ust_blob *blob)
{
	char uuid[UST_UUID_STRING_LEN], clear[16], hex[24];
	int rc;

	rc = get_str_xattr(blob, LVOL_XATTR_NAME, lvol->name, sizeof(lvol->name));
	if (rc != 0)
		return rc == -ENOENT ? -ENOENT : -EINVAL;
	if (!lvs_name_valid(lvol->name, UST_LVOL_NAME_MAX))
		return -EINVAL;
	if (get_str_xattr(blob, LVOL_XATTR_UUID, uuid, sizeof(uuid)) != 0 ||
	    ust_uuid_parse(&lvol->uuid, uuid) != 0)
		return -EINVAL;
	ust_uuid_fmt(lvol->uuid_str, sizeof(lvol->uuid_str), &lvol->uuid);
	lvol->clear_method = UST_LVOL_CLEAR_UNMAP;
	rc = get_str_xattr(blob, LVOL_XATTR_CLEAR, clear, sizeof(clear));
	if (rc == 0)
		rc = ust_lvol_clear_method_parse(clear, &lvol->clear_method);
	if (rc != 0 && rc != -ENOENT)
		return -EINVAL;
	lvol->revert_of = 0;
	rc = get_str_xattr(blob, LVOL_XATTR_REVERT_OF, hex, sizeof(hex));
	if (rc == 0) {
		char *end;

		lvol->revert_of = strtoull(hex, &end, 16);
		if (*end != '\0' || lvol->revert_of == 0)
			return -EINVAL;
	} else if (rc != -ENOENT) {
		return -EINVAL;
	}
	lvol->blob = blob;
	lvol->id = ust_blob_get_id(blob);
	lvol_build_alias(lvol);
	return 0;
}

/* ---- I/O path ------------------------------------------------------------------- */

/* Per-I/O state, used by flush only. */
struct lvol_io {
	struct ust_thread *thread; /* where the I/O must complete */
	struct ust_poller *retry;  /* re-sending the completion to thread */
	int status;
};

int lvol_get_ctx_size(void)
{
	return (int)sizeof(struct lvol_io);
}

static void lvol_io_done(void *arg, int rc)
{
	struct ust_bdev_io *io = arg;

	/* The blobstore ran out of request memory: let the core retry later. */
	if (rc == -ENOMEM)
		ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_NOMEM);
	else
		ust_bdev_io_complete_errno(io, rc);
}

static void lvol_flush_complete(void *arg)
{
	struct ust_bdev_io *io = arg;
	struct lvol_io *lio = ust_bdev_io_get_driver_ctx(io);

	ust_bdev_io_complete_errno(io, lio->status);
}

static int lvol_flush_resend(void *arg)
{
	struct ust_bdev_io *io = arg;
	struct lvol_io *lio = ust_bdev_io_get_driver_ctx(io);

	if (ust_thread_send_msg(lio->thread, lvol_flush_complete, io) != 0)
		return UST_POLLER_IDLE;
	ust_poller_unregister(&lio->retry);
	return UST_POLLER_BUSY;
}

static void lvol_flush_synced(void *arg, int rc)
{
	struct ust_bdev_io *io = arg;
	struct lvol_io *lio = ust_bdev_io_get_driver_ctx(io);

	lio->status = rc;
	if (lio->thread == ust_get_thread()) {
		lvol_flush_complete(io);
		return;
	}
	if (ust_thread_send_msg(lio->thread, lvol_flush_complete, io) == 0)
		return;
	/* The submitter's ring is full: the completion must still reach it. */
	lio->retry = ust_poller_register(lvol_flush_resend, io, 100, "lvol_flush");
	if (lio->retry == NULL)
		UST_ERRLOG("lvol: cannot return a flush completion to its thread\n");
}

static void lvol_flush_on_md_thread(void *arg)
{
	struct ust_bdev_io *io = arg;
	struct ust_lvol *lvol = io->bdev->ctxt;

	ust_blob_sync_md(lvol->blob, lvol_flush_synced, io);
}

static void lvol_flush(struct ust_lvol *lvol, struct ust_bdev_io *io)
{
	struct lvol_io *lio = ust_bdev_io_get_driver_ctx(io);

	lio->thread = ust_get_thread();
	lio->retry = NULL;
	if (lvs_on_thread(lvol->lvs)) {
		lvol_flush_on_md_thread(io);
		return;
	}
	if (ust_thread_send_msg(lvol->lvs->thread, lvol_flush_on_md_thread, io) != 0)
		ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_NOMEM);
}

static void lvol_submit_request(struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct ust_lvol *lvol = io->bdev->ctxt;
	struct lvs_channel *lch = ust_io_channel_get_ctx(ch);
	struct ust_blob *blob = lvol->blob;

	/* The bdev's blocks are the store's io units (lvol_register). */
	switch (io->type) {
	case UST_BDEV_IO_TYPE_READ:
		ust_blob_readv(blob, lch->bs_ch, io->iovs, io->iovcnt, io->offset_blocks,
			       io->num_blocks, lvol_io_done, io);
		break;
	case UST_BDEV_IO_TYPE_WRITE:
		ust_blob_writev(blob, lch->bs_ch, io->iovs, io->iovcnt, io->offset_blocks,
				io->num_blocks, lvol_io_done, io);
		break;
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
		ust_blob_write_zeroes(blob, lch->bs_ch, io->offset_blocks, io->num_blocks,
				      lvol_io_done, io);
		break;
	case UST_BDEV_IO_TYPE_UNMAP:
		ust_blob_unmap(blob, lch->bs_ch, io->offset_blocks, io->num_blocks, lvol_io_done,
			       io);
		break;
	case UST_BDEV_IO_TYPE_FLUSH:
		lvol_flush(lvol, io);
		break;
	case UST_BDEV_IO_TYPE_RESET:
		/*
		 * Nothing is queued in this module and blob I/O cannot be
		 * aborted; the core drains what is in flight before the reset
		 * completes.
		 */
		ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_SUCCESS);
		break;
	default:
		ust_bdev_io_complete_errno(io, -ENOTSUP);
		break;
	}
}

static bool lvol_io_type_supported(void *ctxt, enum ust_bdev_io_type type)
{
	struct ust_lvol *lvol = ctxt;

	switch (type) {
	case UST_BDEV_IO_TYPE_READ:
	case UST_BDEV_IO_TYPE_FLUSH:
	case UST_BDEV_IO_TYPE_RESET:
		return true;
	case UST_BDEV_IO_TYPE_WRITE:
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
	case UST_BDEV_IO_TYPE_UNMAP:
		return !ust_blob_is_read_only(lvol->blob);
	default:
		return false;
	}
}

static struct ust_io_channel *lvol_get_io_channel(void *ctxt)
{
	struct ust_lvol *lvol = ctxt;

	return ust_get_io_channel(lvol->lvs);
}

/* ---- bdev lifecycle ----------------------------------------------------------------- */

static void lvol_destruct_closed(void *arg, int rc)
{
	struct ust_lvol *lvol = arg;
	struct ust_lvol_store *lvs = lvol->lvs;

	if (rc != 0)
		UST_ERRLOG("lvol %s: closing its blob failed: %s\n", lvol->alias, strerror(-rc));
	lvol->blob = NULL;
	TAILQ_REMOVE(&lvs->lvols, lvol, link);
	lvs_lvol_gone(lvs, lvol);
}

static int lvol_destruct(void *ctxt)
{
	struct ust_lvol *lvol = ctxt;

	lvol->registered = false;
	if (lvol->deleting)
		return 0; /* the delete operation goes on with the blob still open */
	ust_blob_close(lvol->blob, lvol_destruct_closed, lvol);
	return 1; /* finished by lvs_lvol_gone() */
}

void lvol_family_json(struct ust_lvol *lvol, json_t *obj)
{
	struct ust_blob_store *bs = lvol->lvs->bs;
	struct ust_lvol *parent = ust_lvol_get_parent(lvol), *c;
	ust_blob_id *ids;
	size_t n = 0, i;
	json_t *list;

	if (parent != NULL)
		json_object_set_new(obj, "base_snapshot", json_string(parent->name));
	if (!ust_lvol_is_snapshot(lvol))
		return;
	list = json_array();
	if (ust_bs_get_clones(bs, lvol->id, NULL, &n) == -ENOMEM && n > 0) {
		ids = calloc(n, sizeof(*ids));
		if (ids != NULL && ust_bs_get_clones(bs, lvol->id, ids, &n) == 0) {
			for (i = 0; i < n; i++) {
				c = lvol_find_id(lvol->lvs, ids[i]);
				if (c != NULL)
					json_array_append_new(list, json_string(c->name));
			}
		}
		free(ids);
	}
	json_object_set_new(obj, "clones", list);
}

static int lvol_dump_info_json(void *ctxt, json_t *driver_specific)
{
	struct ust_lvol *lvol = ctxt;
	char lvs_uuid[UST_UUID_STRING_LEN];
	json_t *obj;

	ust_uuid_fmt(lvs_uuid, sizeof(lvs_uuid), &lvol->lvs->uuid);
	obj = json_pack("{s:s, s:s, s:b, s:I, s:b, s:b, s:b}", "lvol_store_uuid", lvs_uuid,
			"base_bdev", lvol->lvs->base_name, "thin_provision",
			ust_blob_is_thin(lvol->blob), "num_allocated_clusters",
			(json_int_t)ust_blob_get_num_allocated_clusters(lvol->blob), "snapshot",
			ust_lvol_is_snapshot(lvol), "clone", ust_lvol_is_clone(lvol),
			"esnap_clone", 0);
	lvol_family_json(lvol, obj);
	json_object_set_new(driver_specific, "lvol", obj);
	return 0;
}

static void lvol_write_config_json(struct ust_bdev *bdev, json_t *calls)
{
	/* Lvols live on disk and come back at examine: nothing to replay. */
	(void)bdev;
	(void)calls;
}

static const struct ust_bdev_fn_table g_lvol_fn_table = {
	.destruct = lvol_destruct,
	.submit_request = lvol_submit_request,
	.io_type_supported = lvol_io_type_supported,
	.get_io_channel = lvol_get_io_channel,
	.dump_info_json = lvol_dump_info_json,
	.write_config_json = lvol_write_config_json,
};

int lvol_register(struct ust_lvol *lvol)
{
	struct ust_lvol_store *lvs = lvol->lvs;
	uint64_t blocks = ust_blob_get_num_io_units(lvol->blob);
	int rc;

	if (blocks == 0) {
		UST_ERRLOG("lvol %s has no blocks; not exposing it\n", lvol->alias);
		return -EINVAL;
	}
	if (ust_bdev_get_by_name(lvol->alias) != NULL || ust_bdev_get_by_name(lvol->uuid_str)) {
		UST_ERRLOG("lvol %s (%s): a bdev with that name exists already\n", lvol->alias,
			   lvol->uuid_str);
		return -EEXIST;
	}
	memset(&lvol->bdev, 0, sizeof(lvol->bdev));
	lvol->bdev.name = lvol->uuid_str;
	lvol->bdev.product_name = "Logical Volume";
	lvol->bdev.blocklen = (uint32_t)ust_bs_get_io_unit_size(lvs->bs);
	lvol->bdev.blockcnt = blocks;
	/* Writes into allocated clusters are durable only after a flush (blob.h). */
	lvol->bdev.write_cache = true;
	lvol->bdev.uuid = lvol->uuid;
	lvol->bdev.ctxt = lvol;
	lvol->bdev.module = &g_lvol_module;
	lvol->bdev.fn_table = &g_lvol_fn_table;
	rc = ust_bdev_register(&lvol->bdev);
	if (rc != 0) {
		UST_ERRLOG("lvol %s: cannot register its bdev: %s\n", lvol->alias, strerror(-rc));
		return rc;
	}
	lvol->registered = true;
	rc = ust_bdev_alias_add(&lvol->bdev, lvol->alias);
	if (rc != 0)
		UST_ERRLOG("lvol %s: registered as %s but the alias failed: %s\n", lvol->alias,
			   lvol->uuid_str, strerror(-rc));
	return 0;
}

int lvol_alias_change(struct ust_lvol *lvol, const char *new_alias)
{
	int rc;

	rc = ust_bdev_alias_add(&lvol->bdev, new_alias);
	if (rc != 0)
		return rc;
	rc = ust_bdev_alias_del(&lvol->bdev, lvol->alias);
	if (rc != 0 && rc != -ENOENT) {
		ust_bdev_alias_del(&lvol->bdev, new_alias);
		return rc;
	}
	snprintf(lvol->alias, sizeof(lvol->alias), "%s", new_alias);
	return 0;
}

/* ---- operations ------------------------------------------------------------------- */

enum lvol_op_state {
	/* create */
	LVOL_CREATE_BLOB,
	LVOL_CREATE_OPEN,
	LVOL_CREATE_REGISTER,
	LVOL_CREATE_UNDO_CLOSE,
	LVOL_CREATE_UNDO_DELETE,
	/* resize */
	LVOL_RESIZE_START,
	LVOL_RESIZE_BLOB,
	LVOL_RESIZE_SYNC,
	LVOL_RESIZE_NOTIFY,
	/* rename */
	LVOL_RENAME_SYNC,
	LVOL_RENAME_DONE,
	/* snapshot and clone: the new blob, then on as create from LVOL_CREATE_OPEN */
	LVOL_SNAPSHOT_BLOB,
	LVOL_CLONE_BLOB,
	/* inflate and decouple */
	LVOL_PARENT_START,
	LVOL_PARENT_DONE,
	/* revert (README "Revert") */
	LVOL_REVERT_CLONE,
	LVOL_REVERT_OPEN,
	LVOL_REVERT_UNREGISTER,
	LVOL_REVERT_SWAP,
	LVOL_REVERT_DELETE_OLD,
	LVOL_REVERT_CLEANUP,
	LVOL_REVERT_DONE,
	LVOL_REVERT_UNDO,
	LVOL_REVERT_UNDO_DELETE,
	/* delete */
	LVOL_DELETE_UNREGISTERED,
	LVOL_DELETE_CLEARED,
	LVOL_DELETE_CLOSED,
	LVOL_DELETE_DONE,
	LVOL_OP_FINISH,
};

struct lvol_op {
	enum lvol_op_state state;
	struct ust_lvol *lvol;
	/* Held busy as well: a snapshot's origin, a clone's or revert's snapshot. */
	struct ust_lvol *other;
	bool decouple;        /* LVOL_PARENT_*: decouple instead of inflate */
	struct ust_blob *old_blob;
	ust_blob_id old_id;
	char revert_of[24];
	int rc;     /* status of the call that just completed */
	int result; /* what the caller is told */
	ust_blob_id new_id;
	struct ust_blob *new_blob;
	uint64_t old_clusters;
	uint64_t new_clusters;
	bool thin;
	char new_name[UST_LVOL_NAME_MAX + 1];
	char new_alias[LVOL_ALIAS_MAX];
	struct ust_io_channel *ch;
	/* The blobstore reads these after the create call returns. */
	struct ust_blob_xattr xattrs[4];
	ust_lvol_op_cb cb;
	ust_lvol_op_with_handle_cb hcb;
	void *arg;
};

static void lvol_op_step(struct lvol_op *op);

static void lvol_op_done(void *arg, int rc)
{
	struct lvol_op *op = arg;

	op->rc = rc;
	lvol_op_step(op);
}

static void lvol_op_id_done(void *arg, ust_blob_id id, int rc)
{
	struct lvol_op *op = arg;

	op->new_id = id;
	op->rc = rc;
	lvol_op_step(op);
}

static void lvol_op_blob_done(void *arg, struct ust_blob *blob, int rc)
{
	struct lvol_op *op = arg;

	op->new_blob = blob;
	op->rc = rc;
	lvol_op_step(op);
}

/* Tell the caller and forget the operation; the lvol is freed here if it did not survive. */
static void lvol_op_finish(struct lvol_op *op, bool lvol_gone)
{
	struct ust_lvol *lvol = op->lvol;
	struct ust_lvol_store *lvs = lvol->lvs;

	lvol->op = NULL;
	if (op->other != NULL)
		op->other->op = NULL;
	lvs->lvol_ops--;
	if (lvol_gone) {
		TAILQ_REMOVE(&lvs->lvols, lvol, link);
		lvol_free(lvol);
		lvol = NULL;
	}
	if (op->hcb != NULL)
		op->hcb(op->arg, lvol, op->result);
	else if (op->cb != NULL)
		op->cb(op->arg, op->result);
	free(op);
	lvs_poke(lvs);
}

static uint64_t lvol_blocks_for(struct ust_lvol *lvol, uint64_t clusters)
{
	struct ust_blob_store *bs = lvol->lvs->bs;

	return clusters * (ust_bs_get_cluster_size(bs) / ust_bs_get_io_unit_size(bs));
}

/* The lvol's identity as the internal xattrs of a new blob: 3 of them. */
static size_t lvol_identity_xattrs(struct ust_lvol *lvol, struct ust_blob_xattr *xattrs)
{
	const char *clear = lvol_clear_method_name(lvol->clear_method);

	xattrs[0] = (struct ust_blob_xattr){LVOL_XATTR_NAME, lvol->name, strlen(lvol->name), true};
	xattrs[1] = (struct ust_blob_xattr){LVOL_XATTR_UUID, lvol->uuid_str,
					    strlen(lvol->uuid_str), true};
	xattrs[2] = (struct ust_blob_xattr){LVOL_XATTR_CLEAR, clear, strlen(clear), true};
	return 3;
}

static void lvol_op_step(struct lvol_op *op)
{
	struct ust_lvol *lvol = op->lvol;
	struct ust_lvol_store *lvs = lvol->lvs;
	struct ust_blob_opts opts;
	struct ust_blob_xattr *xattrs = op->xattrs;
	struct ust_blob *blob;
	size_t n;
	int rc;

	switch (op->state) {
	/* ---- create: blob with its xattrs, open it, expose it ---- */
	case LVOL_CREATE_BLOB:
		lvol_identity_xattrs(lvol, xattrs);
		ust_blob_opts_init(&opts);
		opts.num_clusters = op->new_clusters;
		opts.thin_provision = op->thin;
		opts.xattrs = xattrs;
		opts.xattr_count = 3;
		op->state = LVOL_CREATE_OPEN;
		ust_bs_create_blob(lvs->bs, &opts, lvol_op_id_done, op);
		return;
	case LVOL_CREATE_OPEN:
		if (op->rc != 0) {
			op->result = op->rc;
			lvol_op_finish(op, true);
			return;
		}
		lvol->id = op->new_id;
		op->state = LVOL_CREATE_REGISTER;
		ust_bs_open_blob(lvs->bs, lvol->id, lvol_op_blob_done, op);
		return;
	case LVOL_CREATE_REGISTER:
		if (op->rc != 0) {
			op->result = op->rc;
			op->state = LVOL_CREATE_UNDO_DELETE;
			op->rc = 0;
			lvol_op_step(op);
			return;
		}
		lvol->blob = op->new_blob;
		op->result = lvol_register(lvol);
		if (op->result == 0) {
			op->state = LVOL_OP_FINISH;
			lvol_op_step(op);
			return;
		}
		op->state = LVOL_CREATE_UNDO_CLOSE;
		ust_blob_close(lvol->blob, lvol_op_done, op);
		return;
	case LVOL_CREATE_UNDO_CLOSE:
		lvol->blob = NULL;
		op->state = LVOL_CREATE_UNDO_DELETE;
		lvol_op_step(op);
		return;
	case LVOL_CREATE_UNDO_DELETE:
		op->state = LVOL_OP_FINISH;
		ust_bs_delete_blob(lvs->bs, lvol->id, lvol_op_done, op);
		return;

	/* ---- snapshot / clone: a new read-only or thin blob, then as create ---- */
	case LVOL_SNAPSHOT_BLOB:
		n = lvol_identity_xattrs(lvol, xattrs);
		op->state = LVOL_CREATE_OPEN;
		ust_bs_create_snapshot(lvs->bs, op->other->id, xattrs, n, lvol_op_id_done, op);
		return;
	case LVOL_CLONE_BLOB:
		n = lvol_identity_xattrs(lvol, xattrs);
		op->state = LVOL_CREATE_OPEN;
		ust_bs_create_clone(lvs->bs, op->other->id, xattrs, n, lvol_op_id_done, op);
		return;

	/* ---- inflate / decouple: the blobstore copies, the bdev stays as it is ---- */
	case LVOL_PARENT_START:
		op->state = LVOL_PARENT_DONE;
		if (op->decouple)
			ust_bs_blob_decouple_parent(lvs->bs, NULL, lvol->id, lvol_op_done, op);
		else
			ust_bs_inflate_blob(lvs->bs, NULL, lvol->id, lvol_op_done, op);
		return;
	case LVOL_PARENT_DONE:
		op->result = op->rc;
		if (op->rc != 0)
			UST_ERRLOG("lvol %s: %s failed: %s\n", lvol->alias,
				   op->decouple ? "decoupling its parent" : "inflating", strerror(-op->rc));
		op->state = LVOL_OP_FINISH;
		lvol_op_step(op);
		return;

	/*
	 * ---- revert: a clone of the snapshot carrying the lvol's identity and
	 * "revert_of" the old blob; the bdev re-registered on it; then the old
	 * blob deleted, which is the commit point (a load before it deletes the
	 * clone, a load after it finds only the clone) ----
	 */
	case LVOL_REVERT_CLONE:
		n = lvol_identity_xattrs(lvol, xattrs);
		snprintf(op->revert_of, sizeof(op->revert_of), "%llx", (unsigned long long)lvol->id);
		xattrs[n++] = (struct ust_blob_xattr){LVOL_XATTR_REVERT_OF, op->revert_of,
						      strlen(op->revert_of), true};
		op->state = LVOL_REVERT_OPEN;
		ust_bs_create_clone(lvs->bs, op->other->id, xattrs, n, lvol_op_id_done, op);
		return;
	case LVOL_REVERT_OPEN:
		if (op->rc != 0) {
			op->result = op->rc;
			op->state = LVOL_OP_FINISH;
			lvol_op_step(op);
			return;
		}
		op->state = LVOL_REVERT_UNREGISTER;
		ust_bs_open_blob(lvs->bs, op->new_id, lvol_op_blob_done, op);
		return;
	case LVOL_REVERT_UNREGISTER:
		if (op->rc != 0) {
			op->result = op->rc;
			op->new_blob = NULL;
			op->state = LVOL_REVERT_UNDO_DELETE;
			op->rc = 0;
			lvol_op_step(op);
			return;
		}
		/* Opened for writing meanwhile? Then nothing happens. */
		rc = lvol_check_not_open(lvol);
		if (rc == 0) {
			lvol->deleting = true; /* destruct keeps the old blob open */
			op->state = LVOL_REVERT_SWAP;
			rc = ust_bdev_unregister_by_name(lvol->uuid_str, &g_lvol_module, lvol_op_done,
							 op);
			if (rc != 0) {
				lvol->deleting = false;
				rc = -EBUSY;
			}
		}
		if (rc != 0) {
			op->result = rc;
			op->state = LVOL_REVERT_UNDO;
			lvol_op_step(op);
		}
		return;
	case LVOL_REVERT_SWAP:
		/* No opener is left: the bdev is re-registered, same name and UUID, on the clone. */
		if (op->rc != 0)
			UST_ERRLOG("lvol %s: unregistering its bdev for the revert: %s\n", lvol->alias,
				   strerror(-op->rc));
		lvol->deleting = false;
		op->old_blob = lvol->blob;
		op->old_id = lvol->id;
		lvol->blob = op->new_blob;
		lvol->id = op->new_id;
		rc = lvol_register(lvol);
		if (rc != 0) {
			op->result = rc;
			lvol->blob = op->old_blob;
			lvol->id = op->old_id;
			op->old_blob = NULL;
			if (lvol_register(lvol) != 0)
				UST_ERRLOG("lvol %s: its bdev is gone until the next load\n",
					   lvol->alias);
			op->state = LVOL_REVERT_UNDO;
			lvol_op_step(op);
			return;
		}
		op->new_blob = NULL;
		op->state = LVOL_REVERT_DELETE_OLD;
		blob = op->old_blob;
		op->old_blob = NULL;
		ust_blob_close(blob, lvol_op_done, op);
		return;
	case LVOL_REVERT_DELETE_OLD:
		if (op->rc != 0)
			UST_ERRLOG("lvol %s: closing the replaced blob: %s\n", lvol->alias,
				   strerror(-op->rc));
		op->state = LVOL_REVERT_CLEANUP;
		ust_bs_delete_blob(lvs->bs, op->old_id, lvol_op_done, op);
		return;
	case LVOL_REVERT_CLEANUP:
		if (op->rc != 0) {
			UST_ERRLOG("lvol %s: deleting the replaced blob 0x%llx failed: %s; the next load undoes the revert\n",
				   lvol->alias, (unsigned long long)op->old_id, strerror(-op->rc));
			op->result = op->rc;
			op->state = LVOL_OP_FINISH;
			lvol_op_step(op);
			return;
		}
		/* Committed. The marker is harmless now (its target is gone); drop it anyway. */
		op->state = LVOL_REVERT_DONE;
		if (ust_blob_remove_internal_xattr(lvol->blob, LVOL_XATTR_REVERT_OF) != 0) {
			op->rc = 0;
			lvol_op_step(op);
			return;
		}
		ust_blob_sync_md(lvol->blob, lvol_op_done, op);
		return;
	case LVOL_REVERT_DONE:
		if (op->rc != 0)
			UST_NOTICELOG("lvol %s: reverted; dropping the revert marker failed: %s\n",
				      lvol->alias, strerror(-op->rc));
		op->result = 0;
		op->state = LVOL_OP_FINISH;
		lvol_op_step(op);
		return;
	case LVOL_REVERT_UNDO:
		op->state = LVOL_REVERT_UNDO_DELETE;
		blob = op->new_blob;
		op->new_blob = NULL;
		ust_blob_close(blob, lvol_op_done, op);
		return;
	case LVOL_REVERT_UNDO_DELETE:
		if (op->rc != 0)
			UST_ERRLOG("lvol %s: closing the unused revert clone: %s\n", lvol->alias,
				   strerror(-op->rc));
		op->state = LVOL_OP_FINISH;
		ust_bs_delete_blob(lvs->bs, op->new_id, lvol_op_done, op);
		return;

	/* ---- resize: shrink the bdev first (refused while open), grow it last ---- */
	case LVOL_RESIZE_START:
		if (op->new_clusters < op->old_clusters) {
			rc = ust_bdev_notify_blockcnt_change(&lvol->bdev,
							     lvol_blocks_for(lvol, op->new_clusters));
			if (rc != 0) {
				UST_ERRLOG("lvol %s: cannot shrink while its bdev is open\n",
					   lvol->alias);
				op->result = rc;
				op->state = LVOL_OP_FINISH;
				lvol_op_step(op);
				return;
			}
		}
		op->state = LVOL_RESIZE_BLOB;
		ust_blob_resize(lvol->blob, op->new_clusters, lvol_op_done, op);
		return;
	case LVOL_RESIZE_BLOB:
		if (op->rc != 0) {
			op->result = op->rc;
			op->rc = 0; /* the blob kept its size: nothing to undo */
			op->state = LVOL_RESIZE_NOTIFY;
			lvol_op_step(op);
			return;
		}
		op->state = LVOL_RESIZE_SYNC;
		ust_blob_sync_md(lvol->blob, lvol_op_done, op);
		return;
	case LVOL_RESIZE_SYNC:
		if (op->rc != 0) {
			/* Not durable: put the in-memory size back as well. */
			op->result = op->rc;
			op->new_clusters = op->old_clusters;
			op->state = LVOL_RESIZE_NOTIFY;
			ust_blob_resize(lvol->blob, op->old_clusters, lvol_op_done, op);
			return;
		}
		op->state = LVOL_RESIZE_NOTIFY;
		op->rc = 0;
		lvol_op_step(op);
		return;
	case LVOL_RESIZE_NOTIFY:
		if (op->rc != 0)
			UST_ERRLOG("lvol %s: undoing a failed resize failed too: %s\n", lvol->alias,
				   strerror(-op->rc));
		/* The bdev follows whatever size the blob has now. */
		rc = ust_bdev_notify_blockcnt_change(&lvol->bdev, ust_blob_get_num_io_units(lvol->blob));
		if (rc != 0)
			UST_ERRLOG("lvol %s: bdev size not updated: %s\n", lvol->alias, strerror(-rc));
		op->state = LVOL_OP_FINISH;
		lvol_op_step(op);
		return;

	/* ---- rename: xattr made durable, then the alias follows ---- */
	case LVOL_RENAME_SYNC:
		rc = ust_blob_set_internal_xattr(lvol->blob, LVOL_XATTR_NAME, op->new_name,
						 strlen(op->new_name));
		if (rc != 0) {
			op->result = rc;
			op->state = LVOL_OP_FINISH;
			lvol_op_step(op);
			return;
		}
		op->state = LVOL_RENAME_DONE;
		ust_blob_sync_md(lvol->blob, lvol_op_done, op);
		return;
	case LVOL_RENAME_DONE:
		if (op->rc != 0) {
			op->result = op->rc;
			ust_blob_set_internal_xattr(lvol->blob, LVOL_XATTR_NAME, lvol->name,
						    strlen(lvol->name));
		} else {
			rc = lvol_alias_change(lvol, op->new_alias);
			if (rc != 0)
				UST_ERRLOG("lvol %s renamed to %s but its alias was not: %s\n",
					   lvol->alias, op->new_alias, strerror(-rc));
			snprintf(lvol->name, sizeof(lvol->name), "%s", op->new_name);
			lvol_build_alias(lvol);
		}
		op->state = LVOL_OP_FINISH;
		lvol_op_step(op);
		return;

	/* ---- delete: bdev gone, clear the data, close, delete the blob ---- */
	case LVOL_DELETE_UNREGISTERED:
		if (op->rc != 0) {
			UST_ERRLOG("lvol %s: unregistering its bdev failed: %s\n", lvol->alias,
				   strerror(-op->rc));
		}
		op->state = LVOL_DELETE_CLEARED;
		op->rc = 0;
		/* A snapshot's data is its clone's too (the delete merges it): never cleared. */
		if (lvol->clear_method == UST_LVOL_CLEAR_NONE || ust_blob_is_read_only(lvol->blob) ||
		    ust_blob_get_num_io_units(lvol->blob) == 0) {
			lvol_op_step(op);
			return;
		}
		op->ch = ust_bs_alloc_io_channel(lvs->bs);
		if (op->ch == NULL) {
			op->rc = -ENOMEM;
			lvol_op_step(op);
			return;
		}
		if (lvol->clear_method == UST_LVOL_CLEAR_WRITE_ZEROES)
			ust_blob_write_zeroes(lvol->blob, op->ch, 0,
					      ust_blob_get_num_io_units(lvol->blob), lvol_op_done, op);
		else
			ust_blob_unmap(lvol->blob, op->ch, 0, ust_blob_get_num_io_units(lvol->blob),
				       lvol_op_done, op);
		return;
	case LVOL_DELETE_CLEARED:
		if (op->ch != NULL) {
			ust_bs_free_io_channel(op->ch);
			op->ch = NULL;
		}
		if (op->rc != 0)
			UST_ERRLOG("lvol %s: clearing its data (%s) failed: %s; deleting it anyway\n",
				   lvol->alias, lvol_clear_method_name(lvol->clear_method),
				   strerror(-op->rc));
		op->state = LVOL_DELETE_CLOSED;
		ust_blob_close(lvol->blob, lvol_op_done, op);
		return;
	case LVOL_DELETE_CLOSED:
		if (op->rc != 0)
			UST_ERRLOG("lvol %s: closing its blob failed: %s\n", lvol->alias,
				   strerror(-op->rc));
		lvol->blob = NULL;
		op->state = LVOL_DELETE_DONE;
		ust_bs_delete_blob(lvs->bs, lvol->id, lvol_op_done, op);
		return;
	case LVOL_DELETE_DONE:
		op->result = op->rc;
		if (op->rc != 0)
			UST_ERRLOG("lvol %s: deleting its blob failed: %s; it comes back at the next load\n",
				   lvol->alias, strerror(-op->rc));
		lvol_op_finish(op, true);
		return;

	case LVOL_OP_FINISH:
		lvol_op_finish(op, !lvol->registered && lvol->blob == NULL);
		return;
	}
}

/* Common checks; on success lvol->op is set and counted. */
static struct lvol_op *lvol_op_new(struct ust_lvol *lvol, enum lvol_op_state first, int *rc)
{
	struct lvol_op *op;

	if (!lvs_on_thread(lvol->lvs)) {
		*rc = -EXDEV;
		return NULL;
	}
	if (lvol->op != NULL || lvs_is_closing(lvol->lvs) || lvol->lvs->op != NULL) {
		UST_ERRLOG("lvol %s: another operation is in progress\n", lvol->alias);
		*rc = -EBUSY;
		return NULL;
	}
	op = calloc(1, sizeof(*op));
	if (op == NULL) {
		*rc = -ENOMEM;
		return NULL;
	}
	op->state = first;
	op->lvol = lvol;
	lvol->op = op;
	lvol->lvs->lvol_ops++;
	*rc = 0;
	return op;
}

/*
 * lvol_op_new() for an operation on an existing lvol with a plain
 * completion: on failure cb gets the error at once and NULL is returned.
 */
static struct lvol_op *lvol_op_start(struct ust_lvol *lvol, enum lvol_op_state first,
				     ust_lvol_op_cb cb, void *arg)
{
	struct lvol_op *op;
	int rc;

	op = lvol_op_new(lvol, first, &rc);
	if (op == NULL) {
		cb(arg, rc);
		return NULL;
	}
	op->cb = cb;
	op->arg = arg;
	return op;
}

static uint64_t clusters_for(struct ust_lvol_store *lvs, uint64_t size_bytes)
{
	uint64_t cs = ust_bs_get_cluster_size(lvs->bs);

	return size_bytes / cs + (size_bytes % cs != 0);
}

void ust_lvol_create(struct ust_lvol_store *lvs, const char *name, uint64_t size_bytes,
		     bool thin_provision, enum ust_lvol_clear_method clear_method,
		     ust_lvol_op_with_handle_cb cb, void *arg)
{
	struct ust_lvol *lvol;
	struct lvol_op *op;
	char alias[LVOL_ALIAS_MAX];
	int rc;

	if (lvs == NULL || cb == NULL || !lvs_name_valid(name, UST_LVOL_NAME_MAX) ||
	    size_bytes == 0 || clear_method > UST_LVOL_CLEAR_WRITE_ZEROES) {
		if (cb != NULL)
			cb(arg, NULL, -EINVAL);
		return;
	}
	if (!lvs_on_thread(lvs)) {
		cb(arg, NULL, -EXDEV);
		return;
	}
	if (lvs_is_closing(lvs) || lvs->op != NULL) {
		cb(arg, NULL, -EBUSY);
		return;
	}
	snprintf(alias, sizeof(alias), "%s/%s", lvs->name, name);
	if (lvol_find(lvs, name) != NULL || ust_bdev_get_by_name(alias) != NULL) {
		UST_ERRLOG("lvol %s exists already\n", alias);
		cb(arg, NULL, -EEXIST);
		return;
	}
	lvol = lvol_alloc(lvs);
	if (lvol == NULL) {
		cb(arg, NULL, -ENOMEM);
		return;
	}
	snprintf(lvol->name, sizeof(lvol->name), "%s", name);
	lvol_build_alias(lvol);
	do {
		ust_uuid_generate(&lvol->uuid);
		ust_uuid_fmt(lvol->uuid_str, sizeof(lvol->uuid_str), &lvol->uuid);
	} while (ust_bdev_get_by_name(lvol->uuid_str) != NULL);
	lvol->clear_method = clear_method == UST_LVOL_CLEAR_DEFAULT ? UST_LVOL_CLEAR_UNMAP :
								       clear_method;
	/* Listed now, so a concurrent create of the same name sees it. */
	TAILQ_INSERT_TAIL(&lvs->lvols, lvol, link);
	op = lvol_op_new(lvol, LVOL_CREATE_BLOB, &rc);
	if (op == NULL) {
		TAILQ_REMOVE(&lvs->lvols, lvol, link);
		lvol_free(lvol);
		cb(arg, NULL, rc);
		return;
	}
	op->new_clusters = clusters_for(lvs, size_bytes);
	op->thin = thin_provision;
	op->hcb = cb;
	op->arg = arg;
	lvol_op_step(op);
}

void ust_lvol_resize(struct ust_lvol *lvol, uint64_t size_bytes, ust_lvol_op_cb cb, void *arg)
{
	struct lvol_op *op;

	if (lvol == NULL || cb == NULL || size_bytes == 0) {
		if (cb != NULL)
			cb(arg, -EINVAL);
		return;
	}
	if (!lvol->registered) {
		cb(arg, -EBUSY);
		return;
	}
	op = lvol_op_start(lvol, LVOL_RESIZE_START, cb, arg);
	if (op == NULL)
		return;
	op->old_clusters = ust_blob_get_num_clusters(lvol->blob);
	op->new_clusters = clusters_for(lvol->lvs, size_bytes);
	if (op->new_clusters == op->old_clusters)
		op->state = LVOL_OP_FINISH;
	lvol_op_step(op);
}

void ust_lvol_rename(struct ust_lvol *lvol, const char *new_name, ust_lvol_op_cb cb, void *arg)
{
	struct lvol_op *op;
	char alias[LVOL_ALIAS_MAX];

	if (lvol == NULL || cb == NULL || !lvs_name_valid(new_name, UST_LVOL_NAME_MAX)) {
		if (cb != NULL)
			cb(arg, -EINVAL);
		return;
	}
	if (!lvol->registered) {
		cb(arg, -EBUSY);
		return;
	}
	if (strcmp(new_name, lvol->name) == 0) {
		cb(arg, 0);
		return;
	}
	snprintf(alias, sizeof(alias), "%s/%s", lvol->lvs->name, new_name);
	if (lvol_find(lvol->lvs, new_name) != NULL || ust_bdev_get_by_name(alias) != NULL) {
		UST_ERRLOG("cannot rename lvol %s: %s exists already\n", lvol->alias, alias);
		cb(arg, -EEXIST);
		return;
	}
	op = lvol_op_start(lvol, LVOL_RENAME_SYNC, cb, arg);
	if (op == NULL)
		return;
	snprintf(op->new_name, sizeof(op->new_name), "%s", new_name);
	snprintf(op->new_alias, sizeof(op->new_alias), "%s", alias);
	lvol_op_step(op);
}

/*
 * A snapshot with one clone is merged into it by the blobstore's delete, so
 * that clone must be idle; with several clones it cannot go (-EBUSY). Checked
 * before the bdev is unregistered, so a refusal changes nothing.
 */
static int lvol_check_deletable(struct ust_lvol *lvol)
{
	ust_blob_id clone_id;
	struct ust_lvol *clone;
	size_t n = 1;
	int rc;

	if (!ust_blob_is_read_only(lvol->blob))
		return 0;
	rc = ust_bs_get_clones(lvol->lvs->bs, lvol->id, &clone_id, &n);
	if (rc == -ENOMEM) {
		UST_ERRLOG("lvol %s is a snapshot with %zu clones; delete or inflate all but one first\n",
			   lvol->alias, n);
		return -EBUSY;
	}
	if (rc != 0)
		return rc;
	clone = n == 1 ? lvol_find_id(lvol->lvs, clone_id) : NULL;
	if (clone != NULL && clone->op != NULL) {
		UST_ERRLOG("lvol %s: its clone %s is busy with another operation\n", lvol->alias,
			   clone->alias);
		return -EBUSY;
	}
	return 0;
}

void ust_lvol_delete(struct ust_lvol *lvol, ust_lvol_op_cb cb, void *arg)
{
	struct lvol_op *op;
	int rc;

	if (lvol == NULL || cb == NULL) {
		if (cb != NULL)
			cb(arg, -EINVAL);
		return;
	}
	if (!lvol->registered) {
		cb(arg, -EBUSY);
		return;
	}
	op = lvol_op_start(lvol, LVOL_DELETE_UNREGISTERED, cb, arg);
	if (op == NULL)
		return;
	rc = lvol_check_not_open(lvol);
	if (rc == 0)
		rc = lvol_check_deletable(lvol);
	if (rc == 0) {
		lvol->deleting = true;
		rc = ust_bdev_unregister_by_name(lvol->uuid_str, &g_lvol_module, lvol_op_done, op);
		if (rc != 0) {
			lvol->deleting = false;
			UST_ERRLOG("lvol %s is being removed already\n", lvol->alias);
			rc = -EBUSY;
		}
	}
	if (rc != 0) {
		op->result = rc;
		op->state = LVOL_OP_FINISH;
		lvol_op_step(op);
	}
}

/* ---- snapshots, clones, inflate, decouple, revert ------------------------------------- */

/* Name checks and a new lvol (listed, not yet registered) for a snapshot or clone. */
static struct ust_lvol *lvol_new_named(struct ust_lvol_store *lvs, const char *name,
				       enum ust_lvol_clear_method clear_method, int *rc)
{
	struct ust_lvol *lvol;
	char alias[LVOL_ALIAS_MAX];

	snprintf(alias, sizeof(alias), "%s/%s", lvs->name, name);
	if (lvol_find(lvs, name) != NULL || ust_bdev_get_by_name(alias) != NULL) {
		UST_ERRLOG("lvol %s exists already\n", alias);
		*rc = -EEXIST;
		return NULL;
	}
	lvol = lvol_alloc(lvs);
	if (lvol == NULL) {
		*rc = -ENOMEM;
		return NULL;
	}
	snprintf(lvol->name, sizeof(lvol->name), "%s", name);
	lvol_build_alias(lvol);
	do {
		ust_uuid_generate(&lvol->uuid);
		ust_uuid_fmt(lvol->uuid_str, sizeof(lvol->uuid_str), &lvol->uuid);
	} while (ust_bdev_get_by_name(lvol->uuid_str) != NULL);
	lvol->clear_method = clear_method;
	TAILQ_INSERT_TAIL(&lvs->lvols, lvol, link);
	*rc = 0;
	return lvol;
}

/* Hold other busy for op as well; -EBUSY if it has an operation of its own. */
static int lvol_op_hold(struct lvol_op *op, struct ust_lvol *other)
{
	if (other->op != NULL || !other->registered) {
		UST_ERRLOG("lvol %s: another operation is in progress\n", other->alias);
		return -EBUSY;
	}
	op->other = other;
	other->op = op;
	return 0;
}

/* Snapshot (origin given) or clone (snapshot given) named name. */
static void lvol_derive(struct ust_lvol *from, const char *name, bool snapshot,
			ust_lvol_op_with_handle_cb cb, void *arg)
{
	struct ust_lvol_store *lvs;
	struct ust_lvol *lvol;
	struct lvol_op *op;
	int rc;

	if (from == NULL || cb == NULL || !lvs_name_valid(name, UST_LVOL_NAME_MAX)) {
		if (cb != NULL)
			cb(arg, NULL, -EINVAL);
		return;
	}
	lvs = from->lvs;
	if (!lvs_on_thread(lvs)) {
		cb(arg, NULL, -EXDEV);
		return;
	}
	if (lvs_is_closing(lvs) || lvs->op != NULL || !from->registered || from->op != NULL) {
		cb(arg, NULL, -EBUSY);
		return;
	}
	/* Snapshots are of writable lvols; clones of read-only ones (snapshots). */
	if (ust_blob_is_read_only(from->blob) == snapshot) {
		UST_ERRLOG("lvol %s: %s\n", from->alias,
			   snapshot ? "is a snapshot already; clone it instead" :
				      "is not a snapshot; only snapshots can be cloned");
		cb(arg, NULL, -EINVAL);
		return;
	}
	lvol = lvol_new_named(lvs, name, from->clear_method, &rc);
	if (lvol == NULL) {
		cb(arg, NULL, rc);
		return;
	}
	op = lvol_op_new(lvol, snapshot ? LVOL_SNAPSHOT_BLOB : LVOL_CLONE_BLOB, &rc);
	if (op == NULL) {
		TAILQ_REMOVE(&lvs->lvols, lvol, link);
		lvol_free(lvol);
		cb(arg, NULL, rc);
		return;
	}
	op->hcb = cb;
	op->arg = arg;
	rc = lvol_op_hold(op, from);
	if (rc != 0) {
		op->result = rc;
		op->state = LVOL_OP_FINISH; /* frees the unregistered lvol */
	}
	lvol_op_step(op);
}

void ust_lvol_create_snapshot(struct ust_lvol *lvol, const char *snapshot_name,
			      ust_lvol_op_with_handle_cb cb, void *arg)
{
	lvol_derive(lvol, snapshot_name, true, cb, arg);
}

void ust_lvol_create_clone(struct ust_lvol *snapshot, const char *clone_name,
			   ust_lvol_op_with_handle_cb cb, void *arg)
{
	lvol_derive(snapshot, clone_name, false, cb, arg);
}

static void lvol_parent_op(struct ust_lvol *lvol, bool decouple, ust_lvol_op_cb cb, void *arg)
{
	struct lvol_op *op;

	if (lvol == NULL || cb == NULL) {
		if (cb != NULL)
			cb(arg, -EINVAL);
		return;
	}
	if (!lvol->registered) {
		cb(arg, -EBUSY);
		return;
	}
	op = lvol_op_start(lvol, LVOL_PARENT_START, cb, arg);
	if (op == NULL)
		return;
	op->decouple = decouple;
	lvol_op_step(op);
}

void ust_lvol_inflate(struct ust_lvol *lvol, ust_lvol_op_cb cb, void *arg)
{
	lvol_parent_op(lvol, false, cb, arg);
}

void ust_lvol_decouple_parent(struct ust_lvol *lvol, ust_lvol_op_cb cb, void *arg)
{
	lvol_parent_op(lvol, true, cb, arg);
}

void ust_lvol_revert(struct ust_lvol *lvol, struct ust_lvol *snapshot, ust_lvol_op_cb cb,
		     void *arg)
{
	struct lvol_op *op;
	int rc;

	if (lvol == NULL || snapshot == NULL || cb == NULL || lvol == snapshot ||
	    lvol->lvs != snapshot->lvs) {
		if (cb != NULL)
			cb(arg, -EINVAL);
		return;
	}
	if (!lvol->registered) {
		cb(arg, -EBUSY);
		return;
	}
	if (ust_blob_is_read_only(lvol->blob) || !ust_blob_is_read_only(snapshot->blob)) {
		UST_ERRLOG("cannot revert %s to %s: %s\n", lvol->alias, snapshot->alias,
			   ust_blob_is_read_only(lvol->blob) ? "it is a snapshot itself" :
							      "that is not a snapshot");
		cb(arg, -EINVAL);
		return;
	}
	op = lvol_op_start(lvol, LVOL_REVERT_CLONE, cb, arg);
	if (op == NULL)
		return;
	rc = lvol_op_hold(op, snapshot);
	if (rc == 0)
		rc = lvol_check_not_open(lvol);
	if (rc != 0) {
		op->result = rc;
		op->state = LVOL_OP_FINISH;
	}
	lvol_op_step(op);
}

/* ---- lookup ------------------------------------------------------------------------- */

struct ust_lvol *ust_lvol_get_by_bdev_name(const char *name)
{
	struct ust_bdev *bdev;

	if (name == NULL)
		return NULL;
	bdev = ust_bdev_get_by_name(name);
	if (bdev == NULL || bdev->module != &g_lvol_module)
		return NULL;
	return bdev->ctxt;
}

struct ust_lvol *ust_lvol_first(struct ust_lvol_store *lvs)
{
	return lvs != NULL ? TAILQ_FIRST(&lvs->lvols) : NULL;
}

struct ust_lvol *ust_lvol_next(struct ust_lvol *lvol)
{
	return TAILQ_NEXT(lvol, link);
}

const char *ust_lvol_get_name(const struct ust_lvol *lvol)
{
	return lvol->name;
}

const struct ust_uuid *ust_lvol_get_uuid(const struct ust_lvol *lvol)
{
	return &lvol->uuid;
}

struct ust_lvol_store *ust_lvol_get_lvs(const struct ust_lvol *lvol)
{
	return lvol->lvs;
}

struct ust_bdev *ust_lvol_get_bdev(struct ust_lvol *lvol)
{
	return lvol->registered && !lvol->deleting ? &lvol->bdev : NULL;
}

bool ust_lvol_is_thin(const struct ust_lvol *lvol)
{
	return lvol->blob != NULL && ust_blob_is_thin(lvol->blob);
}

bool ust_lvol_is_snapshot(const struct ust_lvol *lvol)
{
	return lvol->blob != NULL && ust_blob_is_snapshot(lvol->blob);
}

bool ust_lvol_is_clone(const struct ust_lvol *lvol)
{
	return lvol->blob != NULL && ust_blob_is_clone(lvol->blob);
}

struct ust_lvol *ust_lvol_get_parent(const struct ust_lvol *lvol)
{
	ust_blob_id id = lvol->blob != NULL ? ust_blob_get_parent_id(lvol->blob) : 0;

	return id != 0 ? lvol_find_id(lvol->lvs, id) : NULL;
}

uint64_t ust_lvol_get_num_clusters(const struct ust_lvol *lvol)
{
	return lvol->blob != NULL ? ust_blob_get_num_clusters(lvol->blob) : 0;
}

uint64_t ust_lvol_get_num_allocated_clusters(const struct ust_lvol *lvol)
{
	return lvol->blob != NULL ? ust_blob_get_num_allocated_clusters(lvol->blob) : 0;
}
