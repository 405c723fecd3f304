/*
 * Loading an lvstore at examine (bdev/lvol): the LVS_LOAD_* steps.
 *
 * Examine opens the base as a store of the shared type (a hold on it when
 * blobfs has it loaded), then of the legacy type. The marker blob (the
 * super blob, else found by walking the blobs) gives the store's name and
 * UUID; every blob carrying "lvol.name" becomes an lvol, every other blob
 * is another owner's and is left alone.
 *
 * Guarantees:
 *  - A base that holds no lvstore (no store, another type, a shared store
 *    without a marker) is released untouched and without an error.
 *  - The store goes live only complete: a failed walk, a malformed or
 *    clashing marker closes every blob opened so far and releases the
 *    store, so nothing of it stays visible.
 *  - A revert that did not commit is undone before the store goes live:
 *    the leftover blob is deleted, the lvol keeps its old blob (README
 *    "Revert").
 *  - An lvol blob that cannot be used (malformed, a name twice, cannot be
 *    opened, its bdev name clashes) is logged and left on disk untouched;
 *    the rest of the store still loads.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ustor/log.h"

#include "lvs_op.h"

static void lvs_blob_closed_quietly(void *arg, int rc)
{
	(void)arg;
	if (rc != 0)
		UST_ERRLOG("lvstore: closing an lvol blob failed: %s\n", strerror(-rc));
}

static void lvs_op_load_close_done(void *arg, int rc)
{
	struct lvs_op *op = arg;

	if (rc != 0)
		UST_ERRLOG("lvstore on %s: closing a blob failed: %s\n", op->lvs->base_name,
			   strerror(-rc));
	if (--op->pending == 0)
		lvs_op_step(op);
}

static void lvs_op_stale_deleted(void *arg, int rc)
{
	struct lvs_op *op = arg;

	if (rc != 0)
		UST_ERRLOG("lvstore %s: deleting blob 0x%llx left by an unfinished revert failed: %s\n",
			   op->lvs->name, (unsigned long long)op->id, strerror(-rc));
	lvs_op_step(op);
}

/* A string from the super blob into buf; -EINVAL if missing or malformed. */
static int super_str(struct ust_blob *blob, const char *key, char *buf, size_t size)
{
	const void *value;
	size_t len;

	if (ust_blob_get_internal_xattr(blob, key, &value, &len) != 0)
		return -EINVAL;
	if (len == 0 || len >= size || memchr(value, '\0', len) != NULL)
		return -EINVAL;
	memcpy(buf, value, len);
	buf[len] = '\0';
	return 0;
}

/*
 * The blob is the lvstore's marker: take name and UUID from it. -ENOENT not
 * a marker (another owner's blob), -EINVAL malformed, -EEXIST the name or
 * UUID is loaded already.
 */
static int lvs_take_marker(struct ust_lvol_store *lvs, struct ust_blob *blob)
{
	char uuid[UST_UUID_STRING_LEN];
	const void *value;
	size_t len;

	if (ust_blob_get_internal_xattr(blob, LVS_XATTR_NAME, &value, &len) != 0)
		return -ENOENT;
	if (super_str(blob, LVS_XATTR_NAME, lvs->name, sizeof(lvs->name)) != 0 ||
	    !lvs_name_valid(lvs->name, UST_LVS_NAME_MAX) ||
	    super_str(blob, LVS_XATTR_UUID, uuid, sizeof(uuid)) != 0 ||
	    ust_uuid_parse(&lvs->uuid, uuid) != 0) {
		UST_ERRLOG("lvstore on %s: its name or UUID is missing or malformed\n",
			   lvs->base_name);
		return -EINVAL;
	}
	if (lvs_find_name(lvs->name, lvs) != NULL) {
		UST_ERRLOG("lvstore %s on %s: an lvstore of that name is loaded already; not loading this one\n",
			   lvs->name, lvs->base_name);
		return -EEXIST;
	}
	if (lvs_find_uuid(&lvs->uuid, lvs) != NULL) {
		UST_ERRLOG("lvstore %s on %s: an lvstore with UUID %s is loaded already; not loading this one\n",
			   lvs->name, lvs->base_name, uuid);
		return -EEXIST;
	}
	lvs->super_id = ust_blob_get_id(blob);
	return 0;
}

static void lvs_load_register_all(struct ust_lvol_store *lvs)
{
	struct ust_lvol *lvol, *next;

	for (lvol = TAILQ_FIRST(&lvs->lvols); lvol != NULL; lvol = next) {
		next = TAILQ_NEXT(lvol, link);
		if (lvol_register(lvol) == 0)
			continue;
		/* Left on disk untouched; it shows up again once the clash is gone. */
		TAILQ_REMOVE(&lvs->lvols, lvol, link);
		ust_blob_close(lvol->blob, lvs_blob_closed_quietly, NULL);
		lvol_free(lvol);
	}
}

static void lvs_report_damage(struct ust_lvol_store *lvs)
{
	struct ust_bs_damage d[8];
	size_t n, i;

	n = ust_bs_get_damaged(lvs->bs, d, 8);
	for (i = 0; i < n && i < 8; i++)
		UST_ERRLOG("lvstore %s: blob 0x%llx (slot %u) is damaged and not loaded: %s\n",
			   lvs->name, (unsigned long long)d[i].id, d[i].slot, d[i].msg);
	if (n > 8)
		UST_ERRLOG("lvstore %s: %zu more damaged blobs\n", lvs->name, n - 8);
}

/*
 * The walk handed us a blob that is not the marker: keep it as an lvol
 * (opening a reference of our own), set a revert leftover aside, or leave
 * another owner's or an unusable blob be; then walk on.
 */
static void lvs_load_lvol_blob(struct lvs_op *op)
{
	struct ust_lvol_store *lvs = op->lvs;
	struct ust_lvol *lvol, *other;
	int rc;

	lvol = lvol_alloc(lvs);
	if (lvol == NULL) {
		op->result = -ENOMEM;
		op->state = LVS_LOAD_ABORT_CLOSE;
		ust_blob_close(op->iter_blob, lvs_op_done, op);
		return;
	}
	rc = lvol_from_blob(lvol, op->blob);
	other = rc == 0 ? lvol_find(lvs, lvol->name) : NULL;
	if (other != NULL && lvol->revert_of == other->id) {
		/* A revert that did not commit: its new blob goes (README "Revert"). */
		UST_NOTICELOG("lvstore %s: lvol %s: undoing an unfinished revert (blob 0x%llx)\n",
			      lvs->name, lvol->name,
			      (unsigned long long)ust_blob_get_id(op->blob));
		lvol->blob = NULL;
		TAILQ_INSERT_TAIL(&op->stale, lvol, link);
		ust_bs_iter_next(lvs->bs, op->iter_blob, lvs_op_blob_done, op);
		return;
	}
	if (other != NULL && other->revert_of == lvol->id) {
		UST_NOTICELOG("lvstore %s: lvol %s: undoing an unfinished revert (blob 0x%llx)\n",
			      lvs->name, lvol->name, (unsigned long long)other->id);
		TAILQ_REMOVE(&lvs->lvols, other, link);
		TAILQ_INSERT_TAIL(&op->stale, other, link);
		other = NULL;
	}
	if (other != NULL) {
		UST_ERRLOG("lvstore %s: two lvols named %s; blob 0x%llx not loaded\n", lvs->name,
			   lvol->name, (unsigned long long)ust_blob_get_id(op->blob));
		rc = -EEXIST;
	} else if (rc == -EINVAL) {
		UST_ERRLOG("lvstore %s: blob 0x%llx has malformed lvol attributes; not loaded\n",
			   lvs->name, (unsigned long long)ust_blob_get_id(op->blob));
	}
	if (rc != 0) {
		/* Not an lvol (blobfs, the super blob) or unusable: leave it be. */
		lvol_free(lvol);
		ust_bs_iter_next(lvs->bs, op->iter_blob, lvs_op_blob_done, op);
		return;
	}
	/* A reference of our own: the walk closes the one it hands out. */
	op->lvol = lvol;
	op->state = LVS_LOAD_LVOL_OPENED;
	ust_bs_open_blob(lvs->bs, lvol->id, lvs_op_blob_done, op);
}

/* Abort: close every blob the load opened; the last close steps op on. */
static void lvs_load_close_all(struct lvs_op *op)
{
	struct ust_lvol_store *lvs = op->lvs;
	struct ust_lvol *lvol, *next;

	op->pending = 1;
	while ((lvol = TAILQ_FIRST(&op->stale)) != NULL) {
		TAILQ_REMOVE(&op->stale, lvol, link);
		if (lvol->blob != NULL) {
			op->pending++;
			ust_blob_close(lvol->blob, lvs_op_load_close_done, op);
		}
		lvol_free(lvol);
	}
	for (lvol = TAILQ_FIRST(&lvs->lvols); lvol != NULL; lvol = next) {
		next = TAILQ_NEXT(lvol, link);
		TAILQ_REMOVE(&lvs->lvols, lvol, link);
		op->pending++;
		ust_blob_close(lvol->blob, lvs_op_load_close_done, op);
		lvol_free(lvol);
	}
	op->state = LVS_LOAD_ABORT_UNLOAD;
	lvs_op_load_close_done(op, 0);
}

void lvs_load_step(struct lvs_op *op)
{
	struct ust_lvol_store *lvs = op->lvs;
	struct ust_bs_opts bs_opts;
	struct ust_lvol *lvol;
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	ust_blob_id id;
	int rc;

	switch (op->state) {
	case LVS_LOAD_SUPER:
		if (op->rc == -EILSEQ && lvs->shared) {
			/* Not the shared type: perhaps a legacy lvol-only store. */
			lvs->shared = false;
			lvs->bs = NULL;
			op->state = LVS_LOAD_LEGACY;
			lvs_op_step(op);
			return;
		}
		if (op->rc == -EILSEQ || op->rc == -ENODATA || op->rc == -EUCLEAN) {
			/* Not an lvstore: the normal case for most bdevs. */
			lvs->bs = NULL;
			op->state = LVS_OP_FINISH;
			lvs_op_step(op);
			return;
		}
		if (op->rc != 0) {
			UST_ERRLOG("lvstore on %s cannot be loaded: %s\n", lvs->base_name,
				   strerror(-op->rc));
			lvs->bs = NULL;
			op->state = LVS_OP_FINISH;
			lvs_op_step(op);
			return;
		}
		lvs->thread = ust_get_thread();
		if (lvs->shared && ust_bs_get_md_thread(lvs->bs) != lvs->thread) {
			lvs_refuse_foreign_thread(lvs, lvs->bs);
			lvs->bs = NULL;
			op->state = LVS_OP_FINISH;
			lvs_op_step(op);
			return;
		}
		id = ust_bs_get_super(lvs->bs);
		if (id == UST_BLOBID_INVALID && lvs->shared) {
			/* The marker, if any, is found by the walk. */
			op->state = LVS_LOAD_ITER;
			ust_bs_iter_first(lvs->bs, lvs_op_blob_done, op);
			return;
		}
		if (id == UST_BLOBID_INVALID) {
			UST_ERRLOG("lvstore on %s has no super blob; not loading it\n", lvs->base_name);
			op->state = LVS_LOAD_ABORT_CLOSE;
			lvs_op_step(op);
			return;
		}
		op->state = LVS_LOAD_READ_SUPER;
		ust_bs_open_blob(lvs->bs, id, lvs_op_blob_done, op);
		return;
	case LVS_LOAD_LEGACY:
		lvs_bs_opts_init(&bs_opts, UST_LVS_BSTYPE_LEGACY);
		op->state = LVS_LOAD_SUPER;
		ust_bs_load(lvs->base_name, &bs_opts, lvs_op_bs_done, op);
		return;
	case LVS_LOAD_READ_SUPER:
		if (op->rc != 0 && lvs->shared) {
			/* The super blob is another owner's (and may be gone): walk. */
			op->state = LVS_LOAD_ITER;
			ust_bs_iter_first(lvs->bs, lvs_op_blob_done, op);
			return;
		}
		if (op->rc != 0) {
			UST_ERRLOG("lvstore on %s: cannot open its super blob: %s\n", lvs->base_name,
				   strerror(-op->rc));
			op->state = LVS_LOAD_ABORT_CLOSE;
			lvs_op_step(op);
			return;
		}
		op->result = lvs_take_marker(lvs, op->blob);
		op->marker_found = op->result == 0;
		if (op->result == -ENOENT && lvs->shared)
			op->result = 0; /* another owner's super blob: the walk finds ours */
		else if (op->result == -ENOENT)
			UST_ERRLOG("lvstore on %s: its super blob has no name\n", lvs->base_name);
		lvs_op_close_blob(op, LVS_LOAD_SUPER_CLOSED);
		return;
	case LVS_LOAD_SUPER_CLOSED:
		if (op->result == 0 && op->rc != 0)
			op->result = op->rc;
		if (op->result != 0) {
			op->state = LVS_LOAD_ABORT_CLOSE;
			lvs_op_step(op);
			return;
		}
		op->state = LVS_LOAD_ITER;
		ust_bs_iter_first(lvs->bs, lvs_op_blob_done, op);
		return;
	case LVS_LOAD_ITER:
		/* op->blob: the next blob of the walk (open), or the end. */
		if (op->rc == -ENOENT && !op->marker_found) {
			/* A shared store without an lvstore (a file system only). */
			UST_INFOLOG("no lvstore in the store on %s\n", lvs->base_name);
			op->result = -ENODATA;
			op->state = LVS_LOAD_ABORT_CLOSE;
			lvs_op_step(op);
			return;
		}
		if (op->rc == -ENOENT) {
			op->state = LVS_LOAD_STALE;
			lvs_op_step(op);
			return;
		}
		if (op->rc != 0) {
			UST_ERRLOG("lvstore %s: walking its blobs failed: %s\n", lvs->name,
				   strerror(-op->rc));
			op->result = op->rc;
			op->state = LVS_LOAD_ABORT_CLOSE;
			lvs_op_step(op);
			return;
		}
		op->iter_blob = op->blob;
		if (!op->marker_found) {
			rc = lvs_take_marker(lvs, op->blob);
			if (rc == 0) {
				op->marker_found = true;
				ust_bs_iter_next(lvs->bs, op->iter_blob, lvs_op_blob_done, op);
				return;
			}
			if (rc != -ENOENT) {
				op->result = rc;
				op->state = LVS_LOAD_ABORT_CLOSE;
				ust_blob_close(op->iter_blob, lvs_op_done, op);
				return;
			}
		}
		lvs_load_lvol_blob(op);
		return;
	case LVS_LOAD_LVOL_OPENED:
		lvol = op->lvol;
		op->lvol = NULL;
		if (op->rc != 0) {
			UST_ERRLOG("lvstore %s: cannot open lvol %s: %s\n", lvs->name, lvol->name,
				   strerror(-op->rc));
			lvol_free(lvol);
			op->rc = 0;
		} else {
			TAILQ_INSERT_TAIL(&lvs->lvols, lvol, link);
		}
		op->state = LVS_LOAD_ITER;
		ust_bs_iter_next(lvs->bs, op->iter_blob, lvs_op_blob_done, op);
		return;
	case LVS_LOAD_STALE:
		/* The walk is over: delete each leftover (closing our reference first). */
		lvol = TAILQ_FIRST(&op->stale);
		if (lvol == NULL) {
			op->state = LVS_LOAD_DONE;
			lvs_op_step(op);
			return;
		}
		op->state = LVS_LOAD_STALE_DELETE;
		op->rc = 0;
		if (lvol->blob == NULL) {
			lvs_op_step(op);
			return;
		}
		blob = lvol->blob;
		lvol->blob = NULL;
		ust_blob_close(blob, lvs_op_done, op);
		return;
	case LVS_LOAD_STALE_DELETE:
		lvol = TAILQ_FIRST(&op->stale);
		TAILQ_REMOVE(&op->stale, lvol, link);
		op->id = lvol->id;
		lvol_free(lvol);
		op->state = LVS_LOAD_STALE;
		ust_bs_delete_blob(lvs->bs, op->id, lvs_op_stale_deleted, op);
		return;
	case LVS_LOAD_DONE:
		rc = lvs_go_live(lvs);
		if (rc != 0) {
			op->result = rc;
			op->state = LVS_LOAD_ABORT_CLOSE;
			lvs_op_step(op);
			return;
		}
		lvs_report_damage(lvs);
		lvs_load_register_all(lvs);
		UST_NOTICELOG("lvstore %s loaded from %s\n", lvs->name, lvs->base_name);
		op->state = LVS_OP_FINISH;
		lvs_op_step(op);
		return;
	case LVS_LOAD_ABORT_CLOSE:
		lvs_load_close_all(op);
		return;
	case LVS_LOAD_ABORT_UNLOAD:
		bs = lvs->bs;
		lvs->bs = NULL; /* before the call: its callback may run inline */
		op->state = LVS_OP_FINISH;
		lvs_store_release(lvs, bs, lvs_op_done, op);
		return;

	default:
		/* lvs_op_step hands a load only LVS_LOAD_* states. */
		break;
	}
}
