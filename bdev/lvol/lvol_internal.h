/*
 * Private state of the lvol module (bdev/lvol): the lvstore and lvol
 * structures, and the functions lvs.c, lvol.c and lvol_rpc.c share.
 */
#ifndef USTOR_BDEV_LVOL_INTERNAL_H
#define USTOR_BDEV_LVOL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "ustor/bdev.h"
#include "ustor/bdev_module.h"
#include "ustor/blob.h"
#include "ustor/lvol.h"
#include "ustor/thread.h"

/* Internal xattrs: the on-disk contract (README.md "On disk"). */
#define LVS_XATTR_NAME "lvs.name"
#define LVS_XATTR_UUID "lvs.uuid"
#define LVOL_XATTR_NAME "lvol.name"
#define LVOL_XATTR_UUID "lvol.uuid"
#define LVOL_XATTR_CLEAR "lvol.clear_method"
/*
 * On a blob made by a revert that may not have finished: the hex id of the
 * blob it replaces. While that blob exists, this one is the leftover and is
 * deleted at load; once it is gone, this one is the lvol.
 */
#define LVOL_XATTR_REVERT_OF "lvol.revert_of"

#define LVOL_ALIAS_MAX (UST_LVS_NAME_MAX + 1 + UST_LVOL_NAME_MAX + 1)

struct lvs_op;
struct lvol_op;

struct ust_lvol_store {
	char name[UST_LVS_NAME_MAX + 1];
	struct ust_uuid uuid;
	char *base_name;
	struct ust_blob_store *bs;
	struct ust_thread *thread;        /* the store's metadata thread */
	struct ust_bdev_desc *base_desc;  /* read-only, for the base's REMOVE event */
	ust_blob_id super_id;
	TAILQ_HEAD(, ust_lvol) lvols;
	struct lvs_op *op;                /* unload, destroy or rename in flight */
	uint32_t lvol_ops;                /* lvol operations in flight */
	bool io_device;                   /* registered as the lvol channels' io_device */
	bool live;                        /* loaded or created, and not closing: visible */
	bool close_pending;               /* shutdown or hot remove came during another op */
	bool fini_wait;                   /* shutdown waits for this store to finish closing */
	/*
	 * The store is held through the shared-store registry (bstype "ustor";
	 * other owners such as blobfs may hold it too): closing drops the hold
	 * (ust_bs_share_put) and destroying deletes only the lvstore's own blobs.
	 * false: a legacy "LVOLSTORE" store, loaded and unloaded exclusively.
	 */
	bool shared;
	TAILQ_ENTRY(ust_lvol_store) link;
};

struct ust_lvol {
	struct ust_bdev bdev; /* bdev.ctxt == this lvol */
	struct ust_lvol_store *lvs;
	struct ust_blob *blob;
	ust_blob_id id;
	char name[UST_LVOL_NAME_MAX + 1];
	char alias[LVOL_ALIAS_MAX];
	struct ust_uuid uuid;
	char uuid_str[UST_UUID_STRING_LEN];
	enum ust_lvol_clear_method clear_method;
	ust_blob_id revert_of; /* load only: LVOL_XATTR_REVERT_OF, 0 if absent */
	bool registered;  /* the bdev is registered and not yet destructed */
	bool deleting;    /* destruct must keep the blob open for the delete */
	struct lvol_op *op;
	TAILQ_ENTRY(ust_lvol) link;
};

/* Per-thread context of an lvstore's io_device: that thread's blobstore channel. */
struct lvs_channel {
	struct ust_io_channel *bs_ch;
};

extern struct ust_bdev_module g_lvol_module;

/* lvs.c */
bool lvs_name_valid(const char *name, size_t max);
/* An lvol left the store (blob closed): finishes its destruct, or holds it for the unload. */
void lvs_lvol_gone(struct ust_lvol_store *lvs, struct ust_lvol *lvol);
/* An lvol operation ended: a waiting unload may go on. */
void lvs_poke(struct ust_lvol_store *lvs);
/* Every lvol and lvstore check that the caller is on lvs's thread. */
bool lvs_on_thread(const struct ust_lvol_store *lvs);
/* True while unload/destroy runs: no new lvol operations. */
bool lvs_is_closing(const struct ust_lvol_store *lvs);
/* -EBUSY if the lvol bdev is open for writing or claimed (logs why). */
int lvol_check_not_open(struct ust_lvol *lvol);

/* lvol.c */
int lvol_get_ctx_size(void);
/* Fill names from the blob's xattrs; -ENOENT not an lvol, -EINVAL malformed. */
int lvol_from_blob(struct ust_lvol *lvol, struct ust_blob *blob);
/* Build and register the bdev of an lvol whose blob is open. */
int lvol_register(struct ust_lvol *lvol);
struct ust_lvol *lvol_alloc(struct ust_lvol_store *lvs);
void lvol_free(struct ust_lvol *lvol);
void lvol_build_alias(struct ust_lvol *lvol);
/* Replace the "lvs/name" alias after a rename: add new, drop old. */
int lvol_alias_change(struct ust_lvol *lvol, const char *new_alias);
struct ust_lvol *lvol_find(struct ust_lvol_store *lvs, const char *name);
/* The store's lvol whose blob is id; NULL if none. */
struct ust_lvol *lvol_find_id(struct ust_lvol_store *lvs, ust_blob_id id);
const char *lvol_clear_method_name(enum ust_lvol_clear_method m);
/* "base_snapshot" (a clone's parent's name) and "clones" (a snapshot's) into obj. */
void lvol_family_json(struct ust_lvol *lvol, json_t *obj);

#endif
