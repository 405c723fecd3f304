/*
 * The lvstore operation (bdev/lvol): one struct lvs_op per create, load,
 * unload, destroy, rename or grow, driven by lvs_op_step() and re-entered
 * from every completion. Private to the lvs*.c files.
 *
 * lvs.c owns the machinery (starting an op, the completion callbacks,
 * finishing) and the rename and grow steps; each longer sequence has its
 * own file and step function:
 *   lvs_create.c  LVS_CREATE_*  join a shared store or clear and format the base
 *   lvs_load.c    LVS_LOAD_*    examine: the marker, then every lvol blob
 *   lvs_close.c   LVS_CLOSE_*   unload and destroy
 * lvs_op_step() hands an op to the step function of its kind; every kind
 * ends in LVS_OP_FINISH or calls lvs_op_finish() itself.
 */
#ifndef USTOR_BDEV_LVOL_LVS_OP_H
#define USTOR_BDEV_LVOL_LVS_OP_H

#include "lvol_internal.h"

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

/* lvs.c: the machinery */
void lvs_op_step(struct lvs_op *op);
/* Completion callbacks that store the result in op and step it. */
void lvs_op_done(void *arg, int rc);
void lvs_op_bs_done(void *arg, struct ust_blob_store *bs, int rc);
void lvs_op_id_done(void *arg, ust_blob_id id, int rc);
void lvs_op_blob_done(void *arg, struct ust_blob *blob, int rc);
/* Close op->blob (the op's reference goes), then step on in state next. */
void lvs_op_close_blob(struct lvs_op *op, enum lvs_op_state next);
/* Operation over: tell the caller, free what is gone, let shutdown continue. */
void lvs_op_finish(struct lvs_op *op, bool lvs_gone);

/* lvs.c: what the steps share */
void lvs_bs_opts_init(struct ust_bs_opts *opts, const char *bstype);
struct ust_lvol_store *lvs_find_name(const char *name, const struct ust_lvol_store *skip);
struct ust_lvol_store *lvs_find_uuid(const struct ust_uuid *uuid, const struct ust_lvol_store *skip);
/* The base bdev's events: grow on RESIZE, unload on REMOVE. */
void lvs_base_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx);
/* The store is complete: make it visible and give its lvols channels. */
int lvs_go_live(struct ust_lvol_store *lvs);
/* A shared store served by another thread: give the hold back there; -EXDEV. */
int lvs_refuse_foreign_thread(struct ust_lvol_store *lvs, struct ust_blob_store *bs);
/* Give the store up: drop the shared hold, or unload an exclusive store. */
void lvs_store_release(struct ust_lvol_store *lvs, struct ust_blob_store *bs, ust_bs_op_cb cb,
		       void *arg);

/* The step of each longer sequence (op->state is one of its states). */
void lvs_create_step(struct lvs_op *op);
void lvs_load_step(struct lvs_op *op);
void lvs_close_step(struct lvs_op *op);

#endif
