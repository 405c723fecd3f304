/*
 * Lvol stores: the "lvol" bdev module and the lvstore operations' machinery.
 *
 * This file holds the list of lvstores, the module (examine, shutdown),
 * the public ust_lvs_* calls, and the one step machine every lvstore
 * operation runs in (lvs_op.h): starting an op, its completions,
 * finishing it, and the rename and grow steps. The longer sequences have
 * their own files: lvs_create.c (create), lvs_load.c (load at examine),
 * lvs_close.c (unload, destroy).
 *
 * An lvstore lives in a blobstore of type UST_LVS_BSTYPE ("ustor", shared
 * with blobfs through the blobstore's shared-store registry) or of the
 * legacy type UST_LVS_BSTYPE_LEGACY (exclusive). Its marker blob holds the
 * store's name and UUID in internal xattrs: the store's super blob when the
 * lvstore came first, else found by walking the blobs. Every blob carrying
 * the internal xattr "lvol.name" is an lvol, every other blob belongs to
 * someone else (blobfs) and is left alone.
 *
 * Guarantees:
 *  - Every bdev that appears is examined: if it holds an lvstore, the store
 *    is loaded and each of its lvols registered; a bdev that holds no
 *    lvstore is released untouched and without noise.
 *  - Lvstore names and UUIDs are unique on the system: a second store with a
 *    name or UUID already loaded is left unloaded, with an error.
 *  - One operation at a time per store: a user call while another runs
 *    gets -EBUSY; a forced unload (shutdown, hot remove) waits for it.
 *  - Unload waits for every lvol operation, unregisters every lvol bdev,
 *    releases all channels and only then unloads the blobstore; at shutdown
 *    the lvol bdevs' destructs complete only after every store unloaded, so
 *    the core does not remove a base bdev under a store still writing to it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"

#include "lvs_op.h"

static TAILQ_HEAD(, ust_lvol_store) g_lvstores = TAILQ_HEAD_INITIALIZER(g_lvstores);
static bool g_fini_started;
/*
 * At shutdown (async_fini_start): the stores fini_start found that have not
 * yet finished closing, plus one while fini_start itself runs. The core
 * unregisters no bdev until this reaches 0 and we say so, so every store
 * writes its clean state while its base is still there.
 */
static uint32_t g_fini_waiting;

static void lvs_start_close(struct ust_lvol_store *lvs, bool destroy, bool force,
			    ust_lvs_op_cb cb, void *arg);
static void lvs_examine_finished(void);

/* ---- small helpers ---------------------------------------------------------------- */

bool lvs_name_valid(const char *name, size_t max)
{
	size_t len;

	if (name == NULL)
		return false;
	len = strnlen(name, max + 1);
	return len > 0 && len <= max && strchr(name, '/') == NULL;
}

bool lvs_on_thread(const struct ust_lvol_store *lvs)
{
	return ust_get_thread() == lvs->thread;
}

bool lvs_is_closing(const struct ust_lvol_store *lvs)
{
	return lvs->op != NULL && (lvs->op->kind == LVS_OP_UNLOAD || lvs->op->kind == LVS_OP_DESTROY);
}

int lvol_check_not_open(struct ust_lvol *lvol)
{
	/*
	 * Someone writing through the bdev or stacked on it (a claim may hold
	 * no descriptor) must not have it pulled away; read-only openers get
	 * the REMOVE event instead.
	 */
	if (ust_bdev_is_open(&lvol->bdev, true) || ust_bdev_is_claimed(&lvol->bdev)) {
		UST_ERRLOG("lvol %s (%s) is open for writing or claimed; close it first\n",
			   lvol->alias, lvol->uuid_str);
		return -EBUSY;
	}
	return 0;
}

struct ust_lvol_store *lvs_find_name(const char *name, const struct ust_lvol_store *skip)
{
	struct ust_lvol_store *lvs;

	TAILQ_FOREACH(lvs, &g_lvstores, link) {
		if (lvs != skip && strcmp(lvs->name, name) == 0)
			return lvs;
	}
	return NULL;
}

struct ust_lvol_store *lvs_find_uuid(const struct ust_uuid *uuid, const struct ust_lvol_store *skip)
{
	struct ust_lvol_store *lvs;

	TAILQ_FOREACH(lvs, &g_lvstores, link) {
		if (lvs != skip && ust_uuid_compare(&lvs->uuid, uuid) == 0)
			return lvs;
	}
	return NULL;
}

/* The lvstore on base_name that is loaded or being created, if any. */
static struct ust_lvol_store *lvs_find_base(const char *base_name)
{
	struct ust_lvol_store *lvs;

	TAILQ_FOREACH(lvs, &g_lvstores, link) {
		if (strcmp(lvs->base_name, base_name) == 0 && (lvs->live || lvs->op != NULL))
			return lvs;
	}
	return NULL;
}

void lvs_bs_opts_init(struct ust_bs_opts *opts, const char *bstype)
{
	ust_bs_opts_init(opts);
	snprintf(opts->bstype, sizeof(opts->bstype), "%s", bstype);
}

static void lvs_free(struct ust_lvol_store *lvs)
{
	free(lvs->base_name);
	free(lvs);
}

/* ---- channels and base events ----------------------------------------------------- */

static int lvs_channel_create(void *io_device, void *ctx_buf)
{
	struct ust_lvol_store *lvs = io_device;
	struct lvs_channel *lch = ctx_buf;

	lch->bs_ch = ust_bs_alloc_io_channel(lvs->bs);
	return lch->bs_ch != NULL ? 0 : -ENOMEM;
}

static void lvs_channel_destroy(void *io_device, void *ctx_buf)
{
	struct lvs_channel *lch = ctx_buf;

	(void)io_device;
	ust_bs_free_io_channel(lch->bs_ch);
}

static void lvs_resize_grown(void *arg, int rc)
{
	struct ust_lvol_store *lvs = arg;

	if (rc != 0)
		UST_ERRLOG("lvstore %s: growing with its base failed: %s (bdev_lvol_grow_lvstore retries)\n",
			   lvs->name, strerror(-rc));
}

void lvs_base_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	struct ust_lvol_store *lvs = ctx;

	if (type == UST_BDEV_EVENT_RESIZE) {
		/* Cheap when nothing changed; busy: the RPC can grow it later. */
		UST_NOTICELOG("lvstore %s: base bdev %s resized to %llu blocks; growing the store\n",
			      lvs->name, ust_bdev_get_name(bdev),
			      (unsigned long long)ust_bdev_get_num_blocks(bdev));
		ust_lvs_grow(lvs, lvs_resize_grown, lvs);
		return;
	}
	if (type != UST_BDEV_EVENT_REMOVE)
		return;
	UST_WARNLOG("lvstore %s: base bdev %s is being removed; unloading the store\n", lvs->name,
		    ust_bdev_get_name(bdev));
	if (!lvs_is_closing(lvs))
		lvs_start_close(lvs, false, true, NULL, NULL);
}

int lvs_go_live(struct ust_lvol_store *lvs)
{
	int rc;

	rc = ust_bdev_open_ext(lvs->base_name, false, lvs_base_event, lvs, &lvs->base_desc);
	if (rc != 0) {
		UST_ERRLOG("lvstore %s: cannot watch base bdev %s: %s\n", lvs->name, lvs->base_name,
			   strerror(-rc));
		return rc;
	}
	ust_io_device_register(lvs, lvs_channel_create, lvs_channel_destroy,
			       sizeof(struct lvs_channel), "lvol");
	lvs->io_device = true;
	lvs->live = true;
	return 0;
}

/* ---- the step machine ------------------------------------------------------------- */

void lvs_op_done(void *arg, int rc)
{
	struct lvs_op *op = arg;

	op->rc = rc;
	lvs_op_step(op);
}

void lvs_op_bs_done(void *arg, struct ust_blob_store *bs, int rc)
{
	struct lvs_op *op = arg;

	op->lvs->bs = bs;
	op->rc = rc;
	lvs_op_step(op);
}

void lvs_op_id_done(void *arg, ust_blob_id id, int rc)
{
	struct lvs_op *op = arg;

	op->id = id;
	op->rc = rc;
	lvs_op_step(op);
}

void lvs_op_blob_done(void *arg, struct ust_blob *blob, int rc)
{
	struct lvs_op *op = arg;

	op->blob = rc == 0 ? blob : NULL;
	op->rc = rc;
	lvs_op_step(op);
}

void lvs_op_close_blob(struct lvs_op *op, enum lvs_op_state next)
{
	struct ust_blob *blob = op->blob;

	op->state = next;
	op->blob = NULL; /* before the call: its callback may run inline */
	ust_blob_close(blob, lvs_op_done, op);
}

static void lvs_put_msg(void *arg)
{
	ust_bs_share_put(arg, NULL, NULL);
}

/*
 * A shared store another thread serves (a blobfs mount loaded it first):
 * lvols need it on this thread (README "Threading"), so give the hold back
 * on its thread. -EXDEV for the caller.
 */
int lvs_refuse_foreign_thread(struct ust_lvol_store *lvs, struct ust_blob_store *bs)
{
	UST_ERRLOG("lvstore on %s: its store is served by another thread (a blobfs mount loaded it first); "
		   "unmount it, create or load the lvstore, then mount again\n", lvs->base_name);
	if (ust_thread_send_msg(ust_bs_get_md_thread(bs), lvs_put_msg, bs) != 0)
		UST_ERRLOG("lvstore on %s: cannot release the store\n", lvs->base_name);
	return -EXDEV;
}

void lvs_store_release(struct ust_lvol_store *lvs, struct ust_blob_store *bs, ust_bs_op_cb cb,
		       void *arg)
{
	if (lvs->shared)
		ust_bs_share_put(bs, cb, arg);
	else
		ust_bs_unload(bs, cb, arg);
}

/* One store's part of shutdown is over; the last one lets the core go on. */
static void lvs_fini_put(void)
{
	if (--g_fini_waiting == 0)
		ust_bdev_module_fini_start_done(&g_lvol_module);
}

/* This store will do nothing more at shutdown (gone, or its close failed). */
static void lvs_fini_release(struct ust_lvol_store *lvs)
{
	if (!lvs->fini_wait)
		return;
	lvs->fini_wait = false;
	lvs_fini_put();
}

void lvs_op_finish(struct lvs_op *op, bool lvs_gone)
{
	struct ust_lvol_store *lvs = op->lvs;
	enum lvs_op_kind kind = op->kind;

	if (lvs->op == op)
		lvs->op = NULL;
	if (lvs_gone) {
		TAILQ_REMOVE(&g_lvstores, lvs, link);
		lvs_fini_release(lvs);
		lvs_free(lvs);
		lvs = NULL;
	}
	if (op->hcb != NULL)
		op->hcb(op->arg, lvs, op->result);
	else if (op->cb != NULL)
		op->cb(op->arg, op->result);
	free(op->del_ids);
	free(op);
	/* Shutdown or hot remove came while this ran: the store must still be unloaded. */
	if (lvs != NULL && lvs->op == NULL) {
		if ((g_fini_started || lvs->close_pending) && lvs->bs != NULL &&
		    kind != LVS_OP_UNLOAD && kind != LVS_OP_DESTROY)
			lvs_start_close(lvs, false, true, NULL, NULL);
		else
			lvs_fini_release(lvs);
	}
	/* Last: the next waiting examine may start here. */
	if (kind == LVS_OP_LOAD)
		lvs_examine_finished();
}

/* Rename: the marker's xattr, then every lvol's alias. */
static void lvs_rename_step(struct lvs_op *op)
{
	struct ust_lvol_store *lvs = op->lvs;
	struct ust_lvol *lvol;
	int rc;

	switch (op->state) {
	case LVS_RENAME_OPEN:
		op->state = LVS_RENAME_SYNC;
		ust_bs_open_blob(lvs->bs, lvs->super_id, lvs_op_blob_done, op);
		return;
	case LVS_RENAME_SYNC:
		if (op->rc != 0) {
			op->result = op->rc;
			op->state = LVS_OP_FINISH;
			lvs_op_step(op);
			return;
		}
		op->result = ust_blob_set_internal_xattr(op->blob, LVS_XATTR_NAME, op->new_name,
							 strlen(op->new_name));
		op->state = LVS_RENAME_CLOSE;
		if (op->result != 0) {
			op->rc = 0;
			lvs_op_step(op);
			return;
		}
		ust_blob_sync_md(op->blob, lvs_op_done, op);
		return;
	case LVS_RENAME_CLOSE:
		if (op->result == 0 && op->rc != 0) {
			op->result = op->rc;
			ust_blob_set_internal_xattr(op->blob, LVS_XATTR_NAME, lvs->name,
						    strlen(lvs->name));
		}
		lvs_op_close_blob(op, LVS_RENAME_DONE);
		return;
	case LVS_RENAME_DONE:
		if (op->rc != 0)
			UST_ERRLOG("lvstore %s: closing its super blob failed: %s\n", lvs->name,
				   strerror(-op->rc));
		if (op->result == 0) {
			snprintf(lvs->name, sizeof(lvs->name), "%s", op->new_name);
			TAILQ_FOREACH(lvol, &lvs->lvols, link) {
				char alias[LVOL_ALIAS_MAX];

				snprintf(alias, sizeof(alias), "%s/%s", lvs->name, lvol->name);
				rc = lvol->registered ? lvol_alias_change(lvol, alias) : 0;
				if (rc != 0)
					UST_ERRLOG("lvol %s: alias not renamed to %s: %s\n",
						   lvol->alias, alias, strerror(-rc));
				lvol_build_alias(lvol);
			}
		}
		op->state = LVS_OP_FINISH;
		lvs_op_step(op);
		return;
	default:
		/* lvs_op_step hands a rename only LVS_RENAME_* states. */
		break;
	}
}

/* Grow: the blobstore has taken the base's new size (ust_bs_grow). */
static void lvs_grow_done(struct lvs_op *op)
{
	struct ust_lvol_store *lvs = op->lvs;

	op->result = op->rc;
	if (op->rc == 0)
		UST_NOTICELOG("lvstore %s: %llu data clusters, %llu free\n", lvs->name,
			      (unsigned long long)ust_bs_get_total_data_cluster_count(lvs->bs),
			      (unsigned long long)ust_bs_get_free_cluster_count(lvs->bs));
	op->state = LVS_OP_FINISH;
	lvs_op_step(op);
}

void lvs_op_step(struct lvs_op *op)
{
	if (op->state == LVS_OP_FINISH) {
		/* A store that never came up (create/load failure, not an lvstore). */
		lvs_op_finish(op, op->lvs->bs == NULL && op->kind != LVS_OP_RENAME);
		return;
	}
	switch (op->kind) {
	case LVS_OP_CREATE:
		lvs_create_step(op);
		return;
	case LVS_OP_LOAD:
		lvs_load_step(op);
		return;
	case LVS_OP_UNLOAD:
	case LVS_OP_DESTROY:
		lvs_close_step(op);
		return;
	case LVS_OP_RENAME:
		lvs_rename_step(op);
		return;
	case LVS_OP_GROW:
		lvs_grow_done(op);
		return;
	}
}

/* ---- hooks for lvol.c ------------------------------------------------------------- */

void lvs_lvol_gone(struct ust_lvol_store *lvs, struct ust_lvol *lvol)
{
	struct lvs_op *op = lvs->op;

	ust_bdev_destruct_done(&lvol->bdev, 0);
	lvol_free(lvol);
	if (op != NULL && op->state == LVS_CLOSE_WAIT_LVOLS)
		lvs_op_step(op);
}

void lvs_poke(struct ust_lvol_store *lvs)
{
	if (lvs->op != NULL && lvs->op->state == LVS_CLOSE_WAIT_LVOLS)
		lvs_op_step(lvs->op);
}

/* ---- public calls ----------------------------------------------------------------- */

void ust_lvs_opts_init(struct ust_lvs_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->clear_method = UST_LVOL_CLEAR_UNMAP;
}

static struct ust_lvol_store *lvs_new(const char *base_name)
{
	struct ust_lvol_store *lvs = calloc(1, sizeof(*lvs));

	if (lvs == NULL)
		return NULL;
	lvs->base_name = strdup(base_name);
	if (lvs->base_name == NULL) {
		free(lvs);
		return NULL;
	}
	lvs->thread = ust_get_thread();
	TAILQ_INIT(&lvs->lvols);
	return lvs;
}

static struct lvs_op *lvs_op_new(struct ust_lvol_store *lvs, enum lvs_op_kind kind,
				 enum lvs_op_state first)
{
	struct lvs_op *op = calloc(1, sizeof(*op));

	if (op == NULL)
		return NULL;
	op->kind = kind;
	op->state = first;
	op->lvs = lvs;
	TAILQ_INIT(&op->stale);
	lvs->op = op;
	return op;
}

void ust_lvs_create(const char *bdev_name, const char *lvs_name, const struct ust_lvs_opts *opts,
		    ust_lvs_op_with_handle_cb cb, void *arg)
{
	struct ust_lvol_store *lvs;
	struct ust_lvs_opts defaults;
	struct ust_bdev *base;
	struct lvs_op *op;

	if (cb == NULL)
		return;
	if (opts == NULL) {
		ust_lvs_opts_init(&defaults);
		opts = &defaults;
	}
	if (bdev_name == NULL || !lvs_name_valid(lvs_name, UST_LVS_NAME_MAX) ||
	    opts->clear_method > UST_LVOL_CLEAR_WRITE_ZEROES) {
		cb(arg, NULL, -EINVAL);
		return;
	}
	if (g_fini_started) {
		/* Shutdown waits only for the stores it found. */
		cb(arg, NULL, -ESHUTDOWN);
		return;
	}
	if (lvs_find_name(lvs_name, NULL) != NULL) {
		UST_ERRLOG("lvstore %s exists already\n", lvs_name);
		cb(arg, NULL, -EEXIST);
		return;
	}
	base = ust_bdev_get_by_name(bdev_name);
	if (base == NULL) {
		cb(arg, NULL, -ENODEV);
		return;
	}
	if (base->module == &g_lvol_module) {
		UST_ERRLOG("lvstore %s: %s is an lvol; lvstores on lvols are not supported\n",
			   lvs_name, bdev_name);
		cb(arg, NULL, -EINVAL);
		return;
	}
	if (lvs_find_base(ust_bdev_get_name(base)) != NULL) {
		UST_ERRLOG("lvstore %s: bdev %s has an lvstore already\n", lvs_name, bdev_name);
		cb(arg, NULL, -EEXIST);
		return;
	}
	/* Claimed by a blobstore: a loaded shared store may take the lvstore (the probe decides). */
	if (ust_bdev_is_claimed(base) &&
	    strcmp(ust_bdev_get_claim_module(base)->name, "blobstore") != 0) {
		UST_ERRLOG("lvstore %s: bdev %s is claimed by module %s\n", lvs_name, bdev_name,
			   ust_bdev_get_claim_module(base)->name);
		cb(arg, NULL, -EPERM);
		return;
	}
	lvs = lvs_new(ust_bdev_get_name(base));
	if (lvs == NULL) {
		cb(arg, NULL, -ENOMEM);
		return;
	}
	snprintf(lvs->name, sizeof(lvs->name), "%s", lvs_name);
	do {
		ust_uuid_generate(&lvs->uuid);
	} while (lvs_find_uuid(&lvs->uuid, NULL) != NULL);
	op = lvs_op_new(lvs, LVS_OP_CREATE, LVS_CREATE_PROBE);
	if (op == NULL) {
		lvs_free(lvs);
		cb(arg, NULL, -ENOMEM);
		return;
	}
	/* Listed (not live) from now on, so the name stays reserved. */
	TAILQ_INSERT_TAIL(&g_lvstores, lvs, link);
	op->opts = *opts;
	if (op->opts.clear_method == UST_LVOL_CLEAR_DEFAULT)
		op->opts.clear_method = UST_LVOL_CLEAR_UNMAP;
	op->hcb = cb;
	op->arg = arg;
	lvs_op_step(op);
}

static void lvs_start_close(struct ust_lvol_store *lvs, bool destroy, bool force,
			    ust_lvs_op_cb cb, void *arg)
{
	struct lvs_op *op;

	if (lvs->op != NULL) {
		/* Forced closes only: run once the current operation ends. */
		lvs->close_pending = true;
		return;
	}
	op = lvs_op_new(lvs, destroy ? LVS_OP_DESTROY : LVS_OP_UNLOAD, LVS_CLOSE_WAIT_LVOLS);
	if (op == NULL) {
		UST_ERRLOG("lvstore %s: out of memory starting to unload it\n", lvs->name);
		lvs_fini_release(lvs);
		if (cb != NULL)
			cb(arg, -ENOMEM);
		return;
	}
	if (destroy && lvs->shared) {
		/* The blobs to delete, known now: the lvols are freed as they go. */
		struct ust_lvol *lvol;
		size_t n = 0;

		TAILQ_FOREACH(lvol, &lvs->lvols, link)
			n++;
		op->del_ids = calloc(n + 1, sizeof(*op->del_ids));
		if (op->del_ids == NULL) {
			lvs->op = NULL;
			free(op);
			if (cb != NULL)
				cb(arg, -ENOMEM);
			return;
		}
		TAILQ_FOREACH(lvol, &lvs->lvols, link)
			op->del_ids[op->ndel++] = lvol->id;
	}
	op->force = force;
	op->cb = cb;
	op->arg = arg;
	lvs->live = false;
	lvs->close_pending = false;
	lvs_op_step(op);
}

static int lvs_check_idle(struct ust_lvol_store *lvs)
{
	if (!lvs_on_thread(lvs))
		return -EXDEV;
	if (lvs->op != NULL || lvs->lvol_ops != 0 || !lvs->live) {
		UST_ERRLOG("lvstore %s: another operation is in progress\n", lvs->name);
		return -EBUSY;
	}
	return 0;
}

static void lvs_user_close(struct ust_lvol_store *lvs, bool destroy, ust_lvs_op_cb cb, void *arg)
{
	struct ust_lvol *lvol;
	int rc;

	if (lvs == NULL || cb == NULL) {
		if (cb != NULL)
			cb(arg, -EINVAL);
		return;
	}
	rc = lvs_check_idle(lvs);
	TAILQ_FOREACH(lvol, &lvs->lvols, link) {
		if (rc == 0 && lvol->registered)
			rc = lvol_check_not_open(lvol);
	}
	if (rc != 0) {
		cb(arg, rc);
		return;
	}
	lvs_start_close(lvs, destroy, false, cb, arg);
}

void ust_lvs_unload(struct ust_lvol_store *lvs, ust_lvs_op_cb cb, void *arg)
{
	lvs_user_close(lvs, false, cb, arg);
}

void ust_lvs_destroy(struct ust_lvol_store *lvs, ust_lvs_op_cb cb, void *arg)
{
	lvs_user_close(lvs, true, cb, arg);
}

void ust_lvs_grow(struct ust_lvol_store *lvs, ust_lvs_op_cb cb, void *arg)
{
	struct lvs_op *op;
	int rc;

	if (lvs == NULL || cb == NULL) {
		if (cb != NULL)
			cb(arg, -EINVAL);
		return;
	}
	rc = lvs_check_idle(lvs);
	if (rc != 0) {
		cb(arg, rc);
		return;
	}
	op = lvs_op_new(lvs, LVS_OP_GROW, LVS_GROW_DONE);
	if (op == NULL) {
		cb(arg, -ENOMEM);
		return;
	}
	op->cb = cb;
	op->arg = arg;
	ust_bs_grow(lvs->bs, lvs_op_done, op);
}

void ust_lvs_rename(struct ust_lvol_store *lvs, const char *new_name, ust_lvs_op_cb cb, void *arg)
{
	struct ust_lvol *lvol;
	struct lvs_op *op;
	char alias[LVOL_ALIAS_MAX];
	int rc;

	if (lvs == NULL || cb == NULL || !lvs_name_valid(new_name, UST_LVS_NAME_MAX)) {
		if (cb != NULL)
			cb(arg, -EINVAL);
		return;
	}
	rc = lvs_check_idle(lvs);
	if (rc != 0) {
		cb(arg, rc);
		return;
	}
	if (strcmp(new_name, lvs->name) == 0) {
		cb(arg, 0);
		return;
	}
	if (lvs_find_name(new_name, lvs) != NULL) {
		UST_ERRLOG("cannot rename lvstore %s: %s exists already\n", lvs->name, new_name);
		cb(arg, -EEXIST);
		return;
	}
	TAILQ_FOREACH(lvol, &lvs->lvols, link) {
		snprintf(alias, sizeof(alias), "%s/%s", new_name, lvol->name);
		if (ust_bdev_get_by_name(alias) != NULL) {
			UST_ERRLOG("cannot rename lvstore %s: a bdev named %s exists\n", lvs->name,
				   alias);
			cb(arg, -EEXIST);
			return;
		}
	}
	op = lvs_op_new(lvs, LVS_OP_RENAME, LVS_RENAME_OPEN);
	if (op == NULL) {
		cb(arg, -ENOMEM);
		return;
	}
	snprintf(op->new_name, sizeof(op->new_name), "%s", new_name);
	op->cb = cb;
	op->arg = arg;
	lvs_op_step(op);
}

struct ust_lvol_store *ust_lvs_get_by_name(const char *name)
{
	struct ust_lvol_store *lvs;

	if (name == NULL)
		return NULL;
	lvs = lvs_find_name(name, NULL);
	return lvs != NULL && lvs->live ? lvs : NULL;
}

struct ust_lvol_store *ust_lvs_get_by_uuid(const struct ust_uuid *uuid)
{
	struct ust_lvol_store *lvs;

	if (uuid == NULL)
		return NULL;
	lvs = lvs_find_uuid(uuid, NULL);
	return lvs != NULL && lvs->live ? lvs : NULL;
}

static struct ust_lvol_store *lvs_live_from(struct ust_lvol_store *lvs)
{
	while (lvs != NULL && !lvs->live)
		lvs = TAILQ_NEXT(lvs, link);
	return lvs;
}

struct ust_lvol_store *ust_lvs_first(void)
{
	return lvs_live_from(TAILQ_FIRST(&g_lvstores));
}

struct ust_lvol_store *ust_lvs_next(struct ust_lvol_store *lvs)
{
	return lvs_live_from(TAILQ_NEXT(lvs, link));
}

const char *ust_lvs_get_name(const struct ust_lvol_store *lvs)
{
	return lvs->name;
}

const struct ust_uuid *ust_lvs_get_uuid(const struct ust_lvol_store *lvs)
{
	return &lvs->uuid;
}

const char *ust_lvs_get_base_bdev_name(const struct ust_lvol_store *lvs)
{
	return lvs->base_name;
}

struct ust_blob_store *ust_lvs_get_bs(const struct ust_lvol_store *lvs)
{
	return lvs->bs;
}

/* ---- the module --------------------------------------------------------------------- */

/*
 * Examine loads run at most LVS_EXAMINE_MAX at a time; the bdevs beyond
 * wait in g_examine_queue, by name. Every load holds an open descriptor, a
 * channel and page buffers until its superblock read answers, and a split
 * into 16,384 parts started all 16,384 at once: DPDK's allocator, searching
 * past thousands of live page-aligned buffers, then took time linear in
 * their number for each one (79% of an 8 s registration in rte_zmalloc).
 * By name, not pointer: a waiting bdev may be unregistered before its turn,
 * which then examines whatever bdev has the name (nothing, or a newer bdev
 * that needs examining as much). At shutdown the waiting ones end unloaded
 * as the loads in flight finish (lvs_examine_skips).
 */
#define LVS_EXAMINE_MAX 64

struct lvs_examine_wait {
	TAILQ_ENTRY(lvs_examine_wait) link;
	char name[];
};

static TAILQ_HEAD(, lvs_examine_wait) g_examine_queue = TAILQ_HEAD_INITIALIZER(g_examine_queue);
static uint32_t g_examine_running; /* loads started by examine and not finished */
static bool g_examine_pumping;     /* lvs_examine_pump is on the stack */

/* Not ours to examine: our own lvols (nesting is refused at create), claimed bdevs, shutdown. */
static bool lvs_examine_skips(struct ust_bdev *bdev)
{
	return bdev->module == &g_lvol_module || ust_bdev_is_claimed(bdev) || g_fini_started;
}

static void lvs_examine_load(struct ust_bdev *bdev)
{
	struct ust_lvol_store *lvs;
	struct ust_bs_opts opts;
	struct lvs_op *op;

	lvs = lvs_new(ust_bdev_get_name(bdev));
	op = lvs != NULL ? lvs_op_new(lvs, LVS_OP_LOAD, LVS_LOAD_SUPER) : NULL;
	if (op == NULL) {
		UST_ERRLOG("lvol: out of memory examining %s\n", ust_bdev_get_name(bdev));
		if (lvs != NULL)
			lvs_free(lvs);
		ust_bdev_module_examine_done(&g_lvol_module);
		return;
	}
	TAILQ_INSERT_TAIL(&g_lvstores, lvs, link);
	g_examine_running++;
	/* The shared type first (a hold on it if blobfs has it loaded), then legacy. */
	lvs_bs_opts_init(&opts, UST_LVS_BSTYPE);
	lvs->shared = true;
	ust_bs_share_load(lvs->base_name, &opts, lvs_op_bs_done, op);
}

/*
 * Start waiting examines while there is room. A load that finishes inline
 * (a bdev too small for a store) calls back in here: the flag keeps that
 * from recursing, the loop below takes the next one instead.
 */
static void lvs_examine_pump(void)
{
	struct lvs_examine_wait *w;
	struct ust_bdev *bdev;

	if (g_examine_pumping)
		return;
	g_examine_pumping = true;
	while (g_examine_running < LVS_EXAMINE_MAX &&
	       (w = TAILQ_FIRST(&g_examine_queue)) != NULL) {
		TAILQ_REMOVE(&g_examine_queue, w, link);
		bdev = ust_bdev_get_by_name(w->name);
		/* An alias of another bdev with the waiting name is not it. */
		if (bdev != NULL && strcmp(ust_bdev_get_name(bdev), w->name) != 0)
			bdev = NULL;
		free(w);
		if (bdev == NULL || lvs_examine_skips(bdev))
			ust_bdev_module_examine_done(&g_lvol_module);
		else
			lvs_examine_load(bdev);
	}
	g_examine_pumping = false;
}

/* A load started by examine finished (lvs_op_finish). */
static void lvs_examine_finished(void)
{
	g_examine_running--;
	ust_bdev_module_examine_done(&g_lvol_module);
	lvs_examine_pump();
}

static void lvs_examine_disk(struct ust_bdev *bdev)
{
	const char *name = ust_bdev_get_name(bdev);
	struct lvs_examine_wait *w;

	if (lvs_examine_skips(bdev)) {
		ust_bdev_module_examine_done(&g_lvol_module);
		return;
	}
	if (g_examine_running < LVS_EXAMINE_MAX && TAILQ_EMPTY(&g_examine_queue)) {
		lvs_examine_load(bdev);
		return;
	}
	w = malloc(sizeof(*w) + strlen(name) + 1);
	if (w == NULL) {
		lvs_examine_load(bdev); /* over the limit rather than not examined */
		return;
	}
	strcpy(w->name, name);
	TAILQ_INSERT_TAIL(&g_examine_queue, w, link);
}

/*
 * Unload every store before the core unregisters the bdevs beneath them.
 * Each listed store is waited for: an idle one closes now, one busy with
 * another operation (or still loading) closes when that ends, one already
 * closing finishes its close. fini_start_done follows the last of them,
 * at once when there is none.
 */
static void lvs_fini_start(void)
{
	struct ust_lvol_store *lvs, *next;

	g_fini_started = true;
	g_fini_waiting = 1;
	TAILQ_FOREACH(lvs, &g_lvstores, link) {
		lvs->fini_wait = true;
		g_fini_waiting++;
	}
	for (lvs = TAILQ_FIRST(&g_lvstores); lvs != NULL; lvs = next) {
		next = TAILQ_NEXT(lvs, link);
		if (lvs->bs != NULL && !lvs_is_closing(lvs))
			lvs_start_close(lvs, false, true, NULL, NULL);
		else if (lvs->op == NULL)
			lvs_fini_release(lvs); /* nothing loaded, nothing running: nothing to wait for */
	}
	lvs_fini_put();
}

static int lvs_module_init(void)
{
	g_fini_started = false;
	return 0;
}

struct ust_bdev_module g_lvol_module = {
	.name = "lvol",
	.module_init = lvs_module_init,
	.fini_start = lvs_fini_start,
	.async_fini_start = true,
	.examine_disk = lvs_examine_disk,
	.get_ctx_size = lvol_get_ctx_size,
};
UST_BDEV_MODULE_REGISTER(lvol, &g_lvol_module)

