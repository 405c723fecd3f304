/*
 * Lvol stores: the "lvol" bdev module, and creating, loading (at examine),
 * renaming, growing, unloading and destroying an lvstore, as one step
 * machine.
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
 *  - Unload waits for every lvol operation, unregisters every lvol bdev,
 *    releases all channels and only then unloads the blobstore; at shutdown
 *    the lvol bdevs' destructs complete only after every store unloaded, so
 *    the core does not remove a base bdev under a store still writing to it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"

#include "lvol_internal.h"

static TAILQ_HEAD(, ust_lvol_store) g_lvstores = TAILQ_HEAD_INITIALIZER(g_lvstores);
static bool g_fini_started;
/*
 * At shutdown (async_fini_start): the stores fini_start found that have not
 * yet finished closing, plus one while fini_start itself runs. The core
 * unregisters no bdev until this reaches 0 and we say so, so every store
 * writes its clean state while its base is still there.
 */
static uint32_t g_fini_waiting;

enum lvs_op_kind {
	LVS_OP_CREATE,
	LVS_OP_LOAD,
	LVS_OP_UNLOAD,
	LVS_OP_DESTROY,
	LVS_OP_RENAME,
	LVS_OP_GROW,
};

enum lvs_op_state {
	/* create */
	LVS_CREATE_PROBE,
	LVS_CREATE_PROBED,
	LVS_CREATE_CLEAR,
	LVS_CREATE_INIT,
	LVS_CREATE_SUPER,
	LVS_CREATE_SET_SUPER,
	LVS_CREATE_DONE,
	LVS_CREATE_UNDO,
	/* load (examine) */
	LVS_LOAD_SUPER,
	LVS_LOAD_LEGACY,
	LVS_LOAD_READ_SUPER,
	LVS_LOAD_SUPER_CLOSED,
	LVS_LOAD_ITER,
	LVS_LOAD_LVOL_OPENED,
	LVS_LOAD_STALE,
	LVS_LOAD_STALE_DELETE,
	LVS_LOAD_DONE,
	LVS_LOAD_ABORT_CLOSE,
	LVS_LOAD_ABORT_UNLOAD,
	/* unload and destroy */
	LVS_CLOSE_WAIT_LVOLS,
	LVS_CLOSE_CHANNELS,
	LVS_CLOSE_BARRIER,
	LVS_CLOSE_STORE,
	LVS_CLOSE_DELETE,
	LVS_CLOSE_DELETED,
	LVS_CLOSE_MARKER_DELETED,
	LVS_CLOSE_PUT,
	LVS_CLOSE_EMPTY_CHECKED,
	LVS_CLOSE_RELEASE,
	LVS_CLOSE_DONE,
	/* rename */
	LVS_RENAME_OPEN,
	LVS_RENAME_SYNC,
	LVS_RENAME_CLOSE,
	LVS_RENAME_DONE,
	/* grow */
	LVS_GROW_DONE,
	/* every kind */
	LVS_OP_FINISH,
};

struct lvs_op {
	enum lvs_op_kind kind;
	enum lvs_op_state state;
	struct ust_lvol_store *lvs;
	int rc;     /* status of the call that just completed */
	int result; /* what the caller is told */
	bool force; /* unload at shutdown or hot remove: open lvols do not stop it */
	bool joined; /* create: the lvstore went into a store that existed */
	bool marker_found; /* load: the blob with lvs.name was found */
	/* destroy in a shared store: the lvstore's blobs to delete (lvols, then the marker) */
	ust_blob_id *del_ids;
	size_t ndel, del_i;
	bool del_progress;
	struct ust_lvs_opts opts;
	/* create: clearing the base */
	struct ust_bdev_desc *clear_desc;
	struct ust_io_channel *clear_ch;
	/* load and rename */
	struct ust_blob *blob;
	struct ust_blob *iter_blob;  /* load: the blob the walk handed us */
	ust_blob_id id;
	struct ust_lvol *lvol;       /* the lvol being loaded */
	/* load: leftovers of unfinished reverts, deleted before the store goes live */
	TAILQ_HEAD(, ust_lvol) stale;
	uint32_t pending;            /* blob closes in flight (load abort) */
	char new_name[UST_LVS_NAME_MAX + 1];
	/* create: the blobstore reads these after ust_bs_create_blob() returns */
	struct ust_blob_xattr xattrs[2];
	char uuid_str[UST_UUID_STRING_LEN];
	ust_lvs_op_cb cb;
	ust_lvs_op_with_handle_cb hcb;
	void *arg;
};

static void lvs_op_step(struct lvs_op *op);
static void lvs_start_close(struct ust_lvol_store *lvs, bool destroy, bool force,
			    ust_lvs_op_cb cb, void *arg);

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

static struct ust_lvol_store *lvs_find_name(const char *name, const struct ust_lvol_store *skip)
{
	struct ust_lvol_store *lvs;

	TAILQ_FOREACH(lvs, &g_lvstores, link) {
		if (lvs != skip && strcmp(lvs->name, name) == 0)
			return lvs;
	}
	return NULL;
}

static struct ust_lvol_store *lvs_find_uuid(const struct ust_uuid *uuid,
					    const struct ust_lvol_store *skip)
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

static void lvs_base_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
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

/* The store is complete: make it visible and give its lvols channels. */
static int lvs_go_live(struct ust_lvol_store *lvs)
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

static void lvs_op_done(void *arg, int rc)
{
	struct lvs_op *op = arg;

	op->rc = rc;
	lvs_op_step(op);
}

static void lvs_op_bs_done(void *arg, struct ust_blob_store *bs, int rc)
{
	struct lvs_op *op = arg;

	op->lvs->bs = bs;
	op->rc = rc;
	lvs_op_step(op);
}

static void lvs_op_id_done(void *arg, ust_blob_id id, int rc)
{
	struct lvs_op *op = arg;

	op->id = id;
	op->rc = rc;
	lvs_op_step(op);
}

static void lvs_op_blob_done(void *arg, struct ust_blob *blob, int rc)
{
	struct lvs_op *op = arg;

	op->blob = rc == 0 ? blob : NULL;
	op->rc = rc;
	lvs_op_step(op);
}

static void lvs_op_clear_done(struct ust_bdev_io *io, int status, void *arg)
{
	(void)io;
	lvs_op_done(arg, status);
}

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

static void lvs_put_msg(void *arg)
{
	ust_bs_share_put(arg, NULL, NULL);
}

/*
 * A shared store another thread serves (a blobfs mount loaded it first):
 * lvols need it on this thread (README "Threading"), so give the hold back
 * on its thread. -EXDEV for the caller.
 */
static int lvs_refuse_foreign_thread(struct ust_lvol_store *lvs, struct ust_blob_store *bs)
{
	UST_ERRLOG("lvstore on %s: its store is served by another thread (a blobfs mount loaded it first); "
		   "unmount it, create or load the lvstore, then mount again\n", lvs->base_name);
	if (ust_thread_send_msg(ust_bs_get_md_thread(bs), lvs_put_msg, bs) != 0)
		UST_ERRLOG("lvstore on %s: cannot release the store\n", lvs->base_name);
	return -EXDEV;
}

/* Give the store up: drop the shared hold, or unload an exclusive store. */
static void lvs_store_release(struct ust_lvol_store *lvs, struct ust_blob_store *bs,
			      ust_bs_op_cb cb, void *arg)
{
	if (lvs->shared)
		ust_bs_share_put(bs, cb, arg);
	else
		ust_bs_unload(bs, cb, arg);
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

/* Destroy in a shared store: lvols not deleted yet. */
static int lvs_count_left(const struct lvs_op *op)
{
	size_t i;
	int left = 0;

	for (i = 0; i < op->ndel; i++)
		left += op->del_ids[i] != UST_BLOBID_INVALID;
	return left;
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

/* Operation over: tell the caller, free what is gone, let shutdown continue. */
static void lvs_op_finish(struct lvs_op *op, bool lvs_gone)
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
	if (kind == LVS_OP_LOAD)
		ust_bdev_module_examine_done(&g_lvol_module);
	/* Shutdown or hot remove came while this ran: the store must still be unloaded. */
	if (lvs == NULL || lvs->op != NULL)
		return;
	if ((g_fini_started || lvs->close_pending) && lvs->bs != NULL &&
	    kind != LVS_OP_UNLOAD && kind != LVS_OP_DESTROY)
		lvs_start_close(lvs, false, true, NULL, NULL);
	else
		lvs_fini_release(lvs);
}

static void lvs_op_step(struct lvs_op *op)
{
	struct ust_lvol_store *lvs = op->lvs;
	struct ust_bs_opts bs_opts;
	struct ust_blob_opts blob_opts;
	struct ust_blob_xattr *xattrs = op->xattrs;
	struct ust_lvol *lvol, *next, *other;
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	ust_blob_id id;
	int rc;

	switch (op->state) {
	/* ---- create: join the shared store, or clear the base and format ---- */
	case LVS_CREATE_PROBE:
		ust_bs_opts_init(&bs_opts);
		snprintf(bs_opts.bstype, sizeof(bs_opts.bstype), "%s", UST_LVS_BSTYPE);
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
		ust_bs_opts_init(&bs_opts);
		bs_opts.cluster_size = op->opts.cluster_sz;
		snprintf(bs_opts.bstype, sizeof(bs_opts.bstype), "%s", UST_LVS_BSTYPE);
		if (op->opts.num_md_pages_per_cluster_ratio != 0) {
			uint64_t cs = op->opts.cluster_sz ? op->opts.cluster_sz : (1u << 20);
			struct ust_bdev *base = ust_bdev_get_by_name(lvs->base_name);
			uint64_t clusters = base ? ust_bdev_get_num_blocks(base) *
							   ust_bdev_get_block_size(base) / cs : 0;
			uint64_t pages = clusters * op->opts.num_md_pages_per_cluster_ratio / 100;

			bs_opts.md_pages = pages > UINT32_MAX ? UINT32_MAX : (uint32_t)pages;
		}
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

	/* ---- load: super blob, then every lvol blob ---- */
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
		ust_bs_opts_init(&bs_opts);
		snprintf(bs_opts.bstype, sizeof(bs_opts.bstype), "%s", UST_LVS_BSTYPE_LEGACY);
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
		op->state = LVS_LOAD_SUPER_CLOSED;
		blob = op->blob;
		op->blob = NULL; /* before the call: its callback may run inline */
		ust_blob_close(blob, lvs_op_done, op);
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
		return;
	case LVS_LOAD_ABORT_UNLOAD:
		bs = lvs->bs;
		lvs->bs = NULL; /* before the call: its callback may run inline */
		op->state = LVS_OP_FINISH;
		lvs_store_release(lvs, bs, lvs_op_done, op);
		return;

	/* ---- unload / destroy: lvols, channels, then the store ---- */
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
		/*
		 * Destroy in a shared store: delete the lvstore's own blobs only.
		 * A snapshot with several clones answers -EBUSY until its clones
		 * are gone, so passes repeat while one makes progress. The marker
		 * goes last, so a crash leaves an lvstore with fewer lvols, never
		 * lvols without their lvstore.
		 */
		while (op->del_i < op->ndel && op->del_ids[op->del_i] == UST_BLOBID_INVALID)
			op->del_i++;
		if (op->del_i < op->ndel) {
			op->state = LVS_CLOSE_DELETED;
			ust_bs_delete_blob(lvs->bs, op->del_ids[op->del_i], lvs_op_done, op);
			return;
		}
		rc = lvs_count_left(op);
		if (rc != 0 && op->del_progress) {
			op->del_i = 0;
			op->del_progress = false;
			lvs_op_step(op);
			return;
		}
		if (rc != 0) {
			UST_ERRLOG("lvstore %s: %d lvols could not be deleted; keeping the lvstore\n",
				   lvs->name, rc);
			op->rc = -EBUSY;
			op->state = LVS_CLOSE_DONE;
			lvs_op_step(op);
			return;
		}
		op->state = LVS_CLOSE_MARKER_DELETED;
		ust_bs_delete_blob(lvs->bs, lvs->super_id, lvs_op_done, op);
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
			op->state = LVS_CLOSE_RELEASE;
			blob = op->blob;
			op->blob = NULL;
			ust_blob_close(blob, lvs_op_done, op);
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

	/* ---- rename: the super blob's xattr, then every alias ---- */
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
		op->state = LVS_RENAME_DONE;
		blob = op->blob;
		op->blob = NULL; /* before the call: its callback may run inline */
		ust_blob_close(blob, lvs_op_done, op);
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

	/* ---- grow: the blobstore takes the base's new size ---- */
	case LVS_GROW_DONE:
		op->result = op->rc;
		if (op->rc == 0)
			UST_NOTICELOG("lvstore %s: %llu data clusters, %llu free\n", lvs->name,
				      (unsigned long long)ust_bs_get_total_data_cluster_count(lvs->bs),
				      (unsigned long long)ust_bs_get_free_cluster_count(lvs->bs));
		op->state = LVS_OP_FINISH;
		lvs_op_step(op);
		return;

	case LVS_OP_FINISH:
		/* A store that never came up (create/load failure, not an lvstore). */
		lvs_op_finish(op, lvs->bs == NULL && op->kind != LVS_OP_RENAME);
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

static void lvs_examine_disk(struct ust_bdev *bdev)
{
	struct ust_lvol_store *lvs;
	struct ust_bs_opts opts;
	struct lvs_op *op;

	/* Our own lvols are never stores (nesting is refused at create). */
	if (bdev->module == &g_lvol_module || ust_bdev_is_claimed(bdev) || g_fini_started) {
		ust_bdev_module_examine_done(&g_lvol_module);
		return;
	}
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
	/* The shared type first (a hold on it if blobfs has it loaded), then legacy. */
	ust_bs_opts_init(&opts);
	snprintf(opts.bstype, sizeof(opts.bstype), "%s", UST_LVS_BSTYPE);
	lvs->shared = true;
	ust_bs_share_load(lvs->base_name, &opts, lvs_op_bs_done, op);
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
