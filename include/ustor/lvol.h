/*
 * ustor logical volumes: an lvstore is one blobstore on a bdev; each
 * logical volume (lvol) is one blob of that store, exposed as its own bdev
 * so the targets can export it.
 *
 * Naming follows SPDK: an lvol bdev is named by the lvol's UUID and carries
 * the alias "LVS_NAME/LVOL_NAME". Lvstore names are unique on the system,
 * lvol names within their lvstore; neither may be empty, longer than
 * UST_LVS_NAME_MAX / UST_LVOL_NAME_MAX bytes, or contain '/'.
 *
 * Persistence: everything lives on disk. An lvstore and its lvols reappear
 * when their base bdev is registered again (the "lvol" module examines every
 * new bdev); nothing goes into save_config.
 *
 * Threading: every call here is control path and must be made on the thread
 * that created or loaded the lvstore (in ustord: the app thread); -EXDEV
 * otherwise. Callbacks run on that thread. Lvol bdev I/O follows the bdev
 * rules (any thread, per-thread channels).
 *
 * Errors are negative errno.
 */
#ifndef USTOR_LVOL_H
#define USTOR_LVOL_H

#include <stdbool.h>
#include <stdint.h>

#include "ustor/bdev.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ust_lvol_store;
struct ust_lvol;
struct ust_blob_store;

#define UST_LVS_NAME_MAX 63
#define UST_LVOL_NAME_MAX 63
/*
 * The blobstore type of a new lvstore's store: the shared type, which the
 * file layer (blobfs) uses too, so both can keep their blobs in one store
 * (bdev/lvol/README.md "On disk"). Stores of the older, lvol-only type are
 * still found at examine and used as before (not shareable).
 */
#define UST_LVS_BSTYPE "ustor"
#define UST_LVS_BSTYPE_LEGACY "LVOLSTORE"

/* What is overwritten: the whole base bdev at lvstore creation, an lvol's data at its deletion. */
enum ust_lvol_clear_method {
	UST_LVOL_CLEAR_DEFAULT = 0, /* lvstore: unmap; lvol: unmap */
	UST_LVOL_CLEAR_NONE,
	UST_LVOL_CLEAR_UNMAP,
	UST_LVOL_CLEAR_WRITE_ZEROES,
};

/* "none", "unmap", "write_zeroes" -> method; -EINVAL otherwise. */
int ust_lvol_clear_method_parse(const char *text, enum ust_lvol_clear_method *method);

typedef void (*ust_lvs_op_cb)(void *arg, int rc);
typedef void (*ust_lvs_op_with_handle_cb)(void *arg, struct ust_lvol_store *lvs, int rc);
typedef void (*ust_lvol_op_cb)(void *arg, int rc);
typedef void (*ust_lvol_op_with_handle_cb)(void *arg, struct ust_lvol *lvol, int rc);

/* ---- lvstores ------------------------------------------------------------- */

struct ust_lvs_opts {
	uint32_t cluster_sz; /* bytes; 0: the blobstore's default (1 MiB) */
	enum ust_lvol_clear_method clear_method;
	/* Metadata pages per 100 clusters (SPDK's num_md_pages_per_cluster_ratio); 0: default. */
	uint32_t num_md_pages_per_cluster_ratio;
};

void ust_lvs_opts_init(struct ust_lvs_opts *opts);

/*
 * Create a new lvstore named lvs_name on bdev_name. If the bdev holds a
 * store of the shared type (a blobfs file system, loaded or not), the
 * lvstore is added to it: one marker blob, nothing else is touched, and
 * cluster_sz and clear_method do not apply. Otherwise the bdev is cleared
 * as opts->clear_method says and formatted. -EEXIST the name is taken or
 * the bdev has an lvstore, -EINVAL bad name or options (or the bdev is
 * itself an lvol: nesting is not supported), -ENODEV no such bdev, -EPERM
 * the bdev is claimed, -EXDEV its store is served by another thread (a
 * blobfs mount that loaded it first), -ENOSPC too small.
 */
void ust_lvs_create(const char *bdev_name, const char *lvs_name, const struct ust_lvs_opts *opts,
		    ust_lvs_op_with_handle_cb cb, void *arg);

/*
 * Unregister every lvol bdev of the store, then unload the store cleanly and
 * release the base bdev; the lvstore comes back when the base is examined
 * again. -EBUSY (nothing done) if an lvol is open for writing or claimed,
 * or another operation runs on the store.
 */
void ust_lvs_unload(struct ust_lvol_store *lvs, ust_lvs_op_cb cb, void *arg);

/*
 * As unload, but every lvol is deleted too. A store of its own is erased;
 * in a shared store only the lvstore's blobs (lvols and marker) are deleted
 * and the store stays for its other owners.
 */
void ust_lvs_destroy(struct ust_lvol_store *lvs, ust_lvs_op_cb cb, void *arg);

/*
 * Give the store the space its base bdev has grown by (ust_bs_grow()):
 * answers once the new size is durable. 0 when the base has not grown,
 * -EFBIG beyond what the store's format allows, -EBUSY another operation.
 */
void ust_lvs_grow(struct ust_lvol_store *lvs, ust_lvs_op_cb cb, void *arg);

/* -EEXIST another lvstore (or a bdev alias it would need) has the name. */
void ust_lvs_rename(struct ust_lvol_store *lvs, const char *new_name, ust_lvs_op_cb cb, void *arg);

struct ust_lvol_store *ust_lvs_get_by_name(const char *name);
struct ust_lvol_store *ust_lvs_get_by_uuid(const struct ust_uuid *uuid);
/* Creation/load order; NULL at the end. Stores being unloaded are skipped. */
struct ust_lvol_store *ust_lvs_first(void);
struct ust_lvol_store *ust_lvs_next(struct ust_lvol_store *lvs);

const char *ust_lvs_get_name(const struct ust_lvol_store *lvs);
const struct ust_uuid *ust_lvs_get_uuid(const struct ust_lvol_store *lvs);
const char *ust_lvs_get_base_bdev_name(const struct ust_lvol_store *lvs);
/*
 * The store itself, for other owners of blobs in it (blobfs): blobs without
 * the internal xattr "lvol.name" are not lvols and are left alone.
 */
struct ust_blob_store *ust_lvs_get_bs(const struct ust_lvol_store *lvs);

/* ---- lvols ------------------------------------------------------------------ */

/*
 * Create an lvol of at least size_bytes (rounded up to whole clusters) and
 * register its bdev. -EEXIST the name is taken in this lvstore, -EINVAL bad
 * name or zero size, -ENOSPC a thick lvol does not fit.
 */
void ust_lvol_create(struct ust_lvol_store *lvs, const char *name, uint64_t size_bytes,
		     bool thin_provision, enum ust_lvol_clear_method clear_method,
		     ust_lvol_op_with_handle_cb cb, void *arg);

/*
 * Grow or shrink to size_bytes (rounded up to whole clusters); data below
 * the new size is kept. Shrinking is refused with -EBUSY while the lvol bdev
 * is open; growing a thick lvol may fail with -ENOSPC (no change).
 */
void ust_lvol_resize(struct ust_lvol *lvol, uint64_t size_bytes, ust_lvol_op_cb cb, void *arg);

/* New lvol name in the same lvstore. -EEXIST taken. */
void ust_lvol_rename(struct ust_lvol *lvol, const char *new_name, ust_lvol_op_cb cb, void *arg);

/*
 * Unregister the lvol bdev, clear its data as chosen at creation, and
 * delete the blob. -EBUSY (nothing done) if the bdev is open for writing or
 * claimed; read-only openers are sent UST_BDEV_EVENT_REMOVE. A snapshot is
 * not cleared: with one clone it is merged into the clone; with several,
 * -EBUSY (nothing done).
 */
void ust_lvol_delete(struct ust_lvol *lvol, ust_lvol_op_cb cb, void *arg);

/* ---- snapshots and clones ----------------------------------------------------------- */

/*
 * Snapshot lvol as a new read-only lvol named snapshot_name (its own bdev,
 * UUID and alias): it takes the lvol's current data, and the lvol becomes a
 * thin clone of it (writes wait while the snapshot is taken). -EEXIST the
 * name is taken, -EINVAL lvol is a snapshot itself, -EBUSY lvol busy.
 */
void ust_lvol_create_snapshot(struct ust_lvol *lvol, const char *snapshot_name,
			      ust_lvol_op_with_handle_cb cb, void *arg);
/* A new thin lvol reading snapshot's data. -EINVAL snapshot is writable. */
void ust_lvol_create_clone(struct ust_lvol *snapshot, const char *clone_name,
			   ust_lvol_op_with_handle_cb cb, void *arg);
/* Copy every cluster read through the parent chain, then drop the parent. -ENOSPC. */
void ust_lvol_inflate(struct ust_lvol *lvol, ust_lvol_op_cb cb, void *arg);
/* Copy what is read from the immediate parent; its parent becomes ours. -EINVAL no parent. */
void ust_lvol_decouple_parent(struct ust_lvol *lvol, ust_lvol_op_cb cb, void *arg);
/*
 * Revert lvol to snapshot (any snapshot of the store): lvol's data is
 * replaced by a fresh clone of the snapshot, which keeps lvol's name, UUID
 * and bdev name (the bdev is unregistered and registered again, so
 * read-only openers get REMOVE; its size becomes the snapshot's). -EBUSY
 * open for writing or claimed; -EINVAL lvol is a snapshot or snapshot is
 * not. Crash-safe: a load finds either the old or the new lvol.
 */
void ust_lvol_revert(struct ust_lvol *lvol, struct ust_lvol *snapshot, ust_lvol_op_cb cb,
		     void *arg);
bool ust_lvol_is_snapshot(const struct ust_lvol *lvol);
bool ust_lvol_is_clone(const struct ust_lvol *lvol);
/* A clone's snapshot (its parent lvol); NULL if none. */
struct ust_lvol *ust_lvol_get_parent(const struct ust_lvol *lvol);

/* By bdev name, UUID or "LVS_NAME/LVOL_NAME" alias; NULL if not an lvol. */
struct ust_lvol *ust_lvol_get_by_bdev_name(const char *name);
/* The store's lvols in load/creation order; NULL at the end. */
struct ust_lvol *ust_lvol_first(struct ust_lvol_store *lvs);
struct ust_lvol *ust_lvol_next(struct ust_lvol *lvol);

const char *ust_lvol_get_name(const struct ust_lvol *lvol);
const struct ust_uuid *ust_lvol_get_uuid(const struct ust_lvol *lvol);
struct ust_lvol_store *ust_lvol_get_lvs(const struct ust_lvol *lvol);
/* NULL while the lvol is being created or deleted. */
struct ust_bdev *ust_lvol_get_bdev(struct ust_lvol *lvol);
bool ust_lvol_is_thin(const struct ust_lvol *lvol);
uint64_t ust_lvol_get_num_clusters(const struct ust_lvol *lvol);
uint64_t ust_lvol_get_num_allocated_clusters(const struct ust_lvol *lvol);

#ifdef __cplusplus
}
#endif

#endif
