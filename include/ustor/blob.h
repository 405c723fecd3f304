/*
 * ustor blobstore: blobs of clusters with metadata and extended attributes,
 * kept crash-consistent on any bdev.
 *
 * A blobstore lives on one bdev, which it claims (module "blobstore"): nobody
 * else may write the bdev while the store is loaded. The on-disk format and
 * the crash guarantees are docs/blobstore-format.md; blobstore/README.md
 * describes the implementation.
 *
 * Threading:
 *  - The thread that calls ust_bs_init() or ust_bs_load() is the store's
 *    metadata thread. Every call that is not data I/O (store, blob lifecycle,
 *    resize, xattrs, sync, getters that change nothing are exempt) must be
 *    made on it; a call from another thread fails with -EXDEV.
 *  - Data I/O (read, write, write_zeroes, unmap, flush) may be issued from any
 *    thread on that thread's channel (ust_bs_alloc_io_channel()).
 *  - Every callback runs on the thread that made the call, possibly before
 *    the call returns: an error found at once, or a step that has nothing
 *    to wait for (ust_blob_sync_md() of an unchanged blob on a bdev without
 *    a volatile write cache). Touch nothing the callback may free after
 *    making the call.
 *
 * Durability: a metadata change (create, resize, xattrs, delete) is durable
 * once its callback reports success (ust_blob_sync_md() for in-memory
 * changes). A write is durable once acknowledged for clusters it allocated
 * (the allocation commits a flush); writes into clusters that were already
 * allocated follow the device: they are durable after the device flushes,
 * which ust_blob_sync_md() and ust_bs_unload() request.
 *
 * Errors are negative errno.
 */
#ifndef USTOR_BLOB_H
#define USTOR_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ust_blob_store;
struct ust_blob;
struct ust_io_channel;
struct ust_thread;

/* incarnation << 32 | root slot; 0 is never a blob. */
typedef uint64_t ust_blob_id;
#define UST_BLOBID_INVALID 0

#define UST_BS_BSTYPE_MAX 16

typedef void (*ust_bs_op_cb)(void *arg, int bserrno);
typedef void (*ust_bs_op_with_handle_cb)(void *arg, struct ust_blob_store *bs, int bserrno);
typedef void (*ust_blob_op_cb)(void *arg, int bserrno);
typedef void (*ust_blob_op_with_id_cb)(void *arg, ust_blob_id id, int bserrno);
typedef void (*ust_blob_op_with_handle_cb)(void *arg, struct ust_blob *blob, int bserrno);

/* ---- store ---------------------------------------------------------------- */

struct ust_bs_opts {
	uint32_t cluster_size; /* bytes, power of two 4 KiB..1 GiB; 0: 1 MiB */
	uint32_t max_blobs;    /* 0: total clusters / 4, clamped to [64, 2^20] */
	uint32_t md_pages;     /* metadata pool pages; 0: max_blobs (at least 64) */
	/*
	 * Owner's type name, NUL-terminated, at most 16 bytes. Init writes it;
	 * load refuses a store of another type with -EILSEQ (empty: any type).
	 */
	char bstype[UST_BS_BSTYPE_MAX + 1];
	/*
	 * Format only. Write zero pages over the whole metadata region (root
	 * slots and pool, about 3 x max_blobs pages) instead of write-zeroes
	 * over the root slots, as mkfs.ext4 without lazy_itable_init writes
	 * its inode tables: a thin or sparse device (a file bdev on a sparse
	 * image, a thin LUN) then holds every metadata page from the start,
	 * so a later metadata write neither meets a full backing store nor
	 * pays the first allocation of its page. Costs the region's size in
	 * writes at format and in space on such a device.
	 */
	bool prealloc_md;
};

void ust_bs_opts_init(struct ust_bs_opts *opts);

/*
 * Format the bdev as an empty store and load it. -ENODEV no such bdev,
 * -EPERM claimed by someone else, -EINVAL bad options, -ENOSPC bdev too
 * small, -EIO device errors.
 */
void ust_bs_init(const char *bdev_name, const struct ust_bs_opts *opts,
		 ust_bs_op_with_handle_cb cb, void *arg);

/*
 * Load a store, recovering it if it was not unloaded cleanly. opts may be
 * NULL. -EILSEQ another bstype, -ENODATA/-EUCLEAN no store (primary
 * superblock blank or not ours), -ENOTSUP newer format or unknown incompat
 * feature, -EINVAL the bdev's block size does not divide the io unit.
 * A damaged blob does not fail the load: see ust_bs_get_damaged().
 * The "no store here" outcomes (-ENODATA, -EUCLEAN for a blank or foreign
 * primary, -EILSEQ) log at info level only, so that an examine may try
 * every bdev; damage (a torn primary with no usable backup ...) logs errors.
 */
void ust_bs_load(const char *bdev_name, const struct ust_bs_opts *opts,
		 ust_bs_op_with_handle_cb cb, void *arg);

/*
 * Persist the allocation state, mark the store clean, flush and release the
 * bdev. -EBUSY (and nothing happens) while blobs are open, operations are
 * in flight or an I/O channel is held (allocated and not freed). A channel
 * freed just before does not count: its destroy, which the core defers to
 * a message on its thread, may still be queued; cb then runs only after
 * that message ran (so the thread must keep polling), and nothing of the
 * store is left when it does.
 */
void ust_bs_unload(struct ust_blob_store *bs, ust_bs_op_cb cb, void *arg);

/* Erase both superblocks and release the bdev: the store is gone. -EBUSY as unload. */
void ust_bs_destroy(struct ust_blob_store *bs, ust_bs_op_cb cb, void *arg);

/*
 * Shared stores (blobstore/bs_share.c): one loaded store per bdev, held by
 * several owners at once (lvols and a blobfs mount in one store). A store
 * claims its bdev, so owners that share one never call ust_bs_load() or
 * ust_bs_unload() themselves:
 *  - ust_bs_share_load() loads the store on the calling thread (which becomes
 *    its metadata thread), or takes a hold on the one already loaded (cb then
 *    runs at once; -EILSEQ if it was loaded with another bstype). A hold
 *    asked for while a load or unload runs waits for it. Errors as
 *    ust_bs_load(). cb runs on the calling thread.
 *  - ust_bs_share_init() formats the bdev (as ust_bs_init()) and holds the
 *    new store; -EBUSY if the bdev's store is loaded as shared.
 *  - ust_bs_share_put() drops a hold; the last one unloads the store (cb
 *    after the unload, with its result; on failure the hold is kept).
 *  - ust_bs_share_destroy() erases the store as ust_bs_destroy(), only for
 *    the last holder (-EBUSY while others hold it).
 * put and destroy are metadata-thread calls (-EXDEV); a holder on another
 * thread forwards its blobstore calls to ust_bs_get_md_thread().
 */
void ust_bs_share_load(const char *bdev_name, const struct ust_bs_opts *opts,
		       ust_bs_op_with_handle_cb cb, void *arg);
void ust_bs_share_init(const char *bdev_name, const struct ust_bs_opts *opts,
		       ust_bs_op_with_handle_cb cb, void *arg);
void ust_bs_share_put(struct ust_blob_store *bs, ust_bs_op_cb cb, void *arg);
void ust_bs_share_destroy(struct ust_blob_store *bs, ust_bs_op_cb cb, void *arg);
/* Holders of a shared store (0: not loaded as shared). Any thread. */
uint32_t ust_bs_share_holders(const struct ust_blob_store *bs);
/* The store's metadata thread (the thread that loaded or formatted it). */
struct ust_thread *ust_bs_get_md_thread(const struct ust_blob_store *bs);

/*
 * Grow the store into a bdev that has grown (blobstore/bs_grow.c, format
 * document 9.4 "grow"): the new clusters become free space once the new
 * superblock is durable (backup at the new end, flush, primary, flush). A
 * crash at any point leaves the old or the new size, never a mix. 0 and no
 * change when the bdev has not grown by a whole cluster; -EFBIG when the
 * new cluster count exceeds what the used-cluster bitmap region can hold
 * (cluster_bitmap pages x 32768, fixed at format); -EROFS read-only store;
 * -EBUSY another superblock change in flight; -EXDEV not the metadata thread.
 */
void ust_bs_grow(struct ust_blob_store *bs, ust_bs_op_cb cb, void *arg);
/* Clusters (metadata included) the store's used-cluster bitmap can describe. */
uint64_t ust_bs_get_max_cluster_count(const struct ust_blob_store *bs);

/* The owner's well-known blob (0: none). set is durable when cb reports 0. */
void ust_bs_set_super(struct ust_blob_store *bs, ust_blob_id id, ust_bs_op_cb cb, void *arg);
ust_blob_id ust_bs_get_super(const struct ust_blob_store *bs);

uint64_t ust_bs_get_cluster_size(const struct ust_blob_store *bs);
uint64_t ust_bs_get_io_unit_size(const struct ust_blob_store *bs);
uint64_t ust_bs_get_free_cluster_count(const struct ust_blob_store *bs);
/* Clusters that can hold data (the metadata clusters are not counted). */
uint64_t ust_bs_get_total_data_cluster_count(const struct ust_blob_store *bs);
const char *ust_bs_get_bstype(const struct ust_blob_store *bs);
uint32_t ust_bs_get_max_blobs(const struct ust_blob_store *bs);
/* Blob slots not in use (of max_blobs; every owner's blobs count). Metadata thread. */
uint32_t ust_bs_get_free_blob_count(const struct ust_blob_store *bs);

/* A blob found damaged at load or at open (docs/blobstore-format.md 9.5). */
struct ust_bs_damage {
	ust_blob_id id;   /* 0 when only the slot is known */
	uint32_t slot;
	int error;        /* -EUCLEAN, -EBADMSG, -EIO, -ENOTSUP ... */
	char msg[224];
};

/* Copies up to max reports into out; returns how many exist in total. */
size_t ust_bs_get_damaged(const struct ust_blob_store *bs, struct ust_bs_damage *out, size_t max);

/* ---- blobs ------------------------------------------------------------------ */

struct ust_blob_xattr {
	const char *name;  /* 1..255 bytes */
	const void *value;
	size_t value_len;  /* 0..65536 */
	bool internal;     /* owner-private namespace, hidden from the user calls */
};

struct ust_blob_opts {
	uint64_t num_clusters;
	bool thin_provision;
	const struct ust_blob_xattr *xattrs;
	size_t xattr_count;
};

void ust_blob_opts_init(struct ust_blob_opts *opts);

/*
 * opts NULL: an empty thick blob. The xattrs (array, names and values) are
 * copied before the call returns: the caller may reuse or free them at
 * once. -EINVAL/-E2BIG/-ENOSPC a bad xattr (as ust_blob_set_xattr(), before
 * anything is written), -ENOSPC no free slot or clusters, -EFBIG a thin
 * blob larger than its metadata can map (about 16.4 million clusters).
 */
void ust_bs_create_blob(struct ust_blob_store *bs, const struct ust_blob_opts *opts,
			ust_blob_op_with_id_cb cb, void *arg);
/*
 * As ust_bs_create_blob, and the new blob comes back open (one reference):
 * the blob just written, without the read of its root an open would make.
 */
void ust_bs_create_open_blob(struct ust_blob_store *bs, const struct ust_blob_opts *opts,
			     ust_blob_op_with_handle_cb cb, void *arg);

/*
 * Open (or take another reference to) a blob: opening an open blob returns
 * the same handle. -ENOENT no such blob, -EUCLEAN damaged, -ENOTSUP a
 * feature this reader lacks. Opening a clone opens its parents too.
 */
void ust_bs_open_blob(struct ust_blob_store *bs, ust_blob_id id, ust_blob_op_with_handle_cb cb,
		      void *arg);

/*
 * Drop a reference; the last one syncs pending metadata changes first.
 * cb may be NULL (as for ust_blob_sync_md(), ust_blob_resize(),
 * ust_bs_delete_blob(), ust_bs_set_super() and the flushes): the outcome is
 * then only logged when it is an error.
 */
void ust_blob_close(struct ust_blob *blob, ust_blob_op_cb cb, void *arg);

/*
 * -EBUSY if the blob is open, -ENOENT if it does not exist. A snapshot with
 * one clone is merged into the clone (which takes the snapshot's clusters it
 * does not override, and its parent); one with several clones: -EBUSY.
 */
void ust_bs_delete_blob(struct ust_blob_store *bs, ust_blob_id id, ust_blob_op_cb cb, void *arg);

/*
 * Delete the blob through the caller's handle, its only reference: as
 * ust_blob_close and then ust_bs_delete_blob. -EBUSY (another reference or
 * a close holds it): refused, the handle stays open. After any other
 * result the handle is gone; on an error the blob may still exist
 * (ust_bs_delete_blob by id tries again). A blob whose metadata is all on
 * the device, and which cannot be a parent, is deleted from memory: no
 * metadata sync, no read of its root.
 */
void ust_blob_delete(struct ust_blob *blob, ust_blob_op_cb cb, void *arg);

/*
 * Change the size. A thick blob allocates its new clusters now (-ENOSPC and
 * no change if too few are free); shrinking frees clusters once the change
 * is durable. The change is in memory until ust_blob_sync_md(). -EFBIG (no
 * change): a thin blob grown past what its metadata can map (as create).
 */
void ust_blob_resize(struct ust_blob *blob, uint64_t num_clusters, ust_blob_op_cb cb, void *arg);

/* Make every metadata change of the blob durable (and flush its data). */
void ust_blob_sync_md(struct ust_blob *blob, ust_blob_op_cb cb, void *arg);

/*
 * Allocate every cluster of a thin blob that io units [offset, offset +
 * length) touch and that has none: each reads as before (zeros, or a
 * clone's parent data), and later writes there allocate nothing. Durable
 * when cb reports 0. -ENOSPC: checked first (nothing done when the range
 * cannot fit); when writes took the clusters meanwhile, the clusters
 * committed so far stay allocated. -EINVAL past the end, -EPERM a
 * read-only blob, -EBUSY a snapshot operation holds the blob, -EIO. A
 * thick blob: 0, nothing to do. Metadata thread; keep the blob open until
 * cb runs.
 */
void ust_blob_allocate(struct ust_blob *blob, uint64_t offset, uint64_t length, ust_blob_op_cb cb,
		       void *arg);

/*
 * Walk every live, openable blob in slot order. Each step opens the next
 * blob and hands it to cb; ust_bs_iter_next() closes the blob it is given.
 * The end is cb(arg, NULL, -ENOENT). Damaged blobs are skipped.
 */
void ust_bs_iter_first(struct ust_blob_store *bs, ust_blob_op_with_handle_cb cb, void *arg);
void ust_bs_iter_next(struct ust_blob_store *bs, struct ust_blob *blob,
		      ust_blob_op_with_handle_cb cb, void *arg);

ust_blob_id ust_blob_get_id(const struct ust_blob *blob);
uint64_t ust_blob_get_num_clusters(const struct ust_blob *blob);
uint64_t ust_blob_get_num_io_units(const struct ust_blob *blob);
uint64_t ust_blob_get_num_allocated_clusters(const struct ust_blob *blob);
bool ust_blob_is_thin(const struct ust_blob *blob);
bool ust_blob_is_read_only(const struct ust_blob *blob);

/* ---- snapshots and clones ------------------------------------------------------------ */

/*
 * Snapshot blob_id: a new read-only blob S takes the blob's clusters and the
 * blob keeps its id, size and xattrs and becomes a thin clone of S (its
 * unwritten clusters read S's data; its first write to a cluster copies it).
 * Writes to the blob wait while the snapshot is taken. xattrs (may be NULL)
 * go to S. cb gets S's id once the whole operation is durable. -ENOENT no
 * such blob, -EINVAL the blob is read-only (a snapshot), -EBUSY another
 * snapshot/clone operation holds the blob, -ENOSPC no free slot, -EIO.
 */
void ust_bs_create_snapshot(struct ust_blob_store *bs, ust_blob_id blob_id,
			    const struct ust_blob_xattr *xattrs, size_t xattr_count,
			    ust_blob_op_with_id_cb cb, void *arg);
/*
 * A new thin blob whose parent is snapshot_id (a snapshot or another
 * read-only blob), of the same size. -EINVAL the parent is writable.
 */
void ust_bs_create_clone(struct ust_blob_store *bs, ust_blob_id snapshot_id,
			 const struct ust_blob_xattr *xattrs, size_t xattr_count,
			 ust_blob_op_with_id_cb cb, void *arg);
/*
 * Give the blob its own copy of every cluster it reads through its parent
 * chain, then drop the parent. Durable when cb reports 0. -ENOSPC (the
 * blob's data and parent unchanged) when the copies do not fit, -EPERM a
 * read-only blob, -EBUSY another operation holds it or its parent. A blob
 * without a parent: 0, nothing to do. ch may be NULL: the copies run on the
 * metadata thread's channel.
 */
void ust_bs_inflate_blob(struct ust_blob_store *bs, struct ust_io_channel *ch, ust_blob_id id,
			 ust_blob_op_cb cb, void *arg);
/*
 * Copy only the clusters the blob reads from its immediate parent, then
 * make the parent's parent its parent. -EINVAL the blob has no parent.
 */
void ust_bs_blob_decouple_parent(struct ust_blob_store *bs, struct ust_io_channel *ch,
				 ust_blob_id id, ust_blob_op_cb cb, void *arg);

/* The parent's id (a clone's snapshot), 0 if none. */
ust_blob_id ust_blob_get_parent_id(const struct ust_blob *blob);
bool ust_blob_is_snapshot(const struct ust_blob *blob);
bool ust_blob_is_clone(const struct ust_blob *blob);
/*
 * The blobs whose parent is id. *count holds the capacity of ids on entry
 * and the number of clones on return; -ENOMEM if ids was too small (ids may
 * be NULL with *count 0 to ask for the number). Metadata thread (-EXDEV).
 */
int ust_bs_get_clones(struct ust_blob_store *bs, ust_blob_id id, ust_blob_id *ids, size_t *count);

/* ---- extended attributes (in memory until ust_blob_sync_md) -------------------- */

/*
 * -EINVAL bad name, -E2BIG value over 65536 bytes, -ENOSPC the blob's
 * metadata would not fit its 65 pages, -EPERM read-only blob.
 */
int ust_blob_set_xattr(struct ust_blob *blob, const char *name, const void *value, size_t len);
/* *value stays valid until the xattr is changed or the blob closed. -ENOENT. */
int ust_blob_get_xattr(struct ust_blob *blob, const char *name, const void **value, size_t *len);
int ust_blob_remove_xattr(struct ust_blob *blob, const char *name);
/* Calls fn (may be NULL) for every user xattr name; returns how many. */
size_t ust_blob_list_xattrs(struct ust_blob *blob, void (*fn)(void *ctx, const char *name),
			    void *ctx);

/* The owner-private namespace (lvol names, blobfs state): same rules. */
int ust_blob_set_internal_xattr(struct ust_blob *blob, const char *name, const void *value,
				size_t len);
int ust_blob_get_internal_xattr(struct ust_blob *blob, const char *name, const void **value,
				size_t *len);
int ust_blob_remove_internal_xattr(struct ust_blob *blob, const char *name);
/* Calls fn (may be NULL) for every internal xattr name; returns how many. */
size_t ust_blob_list_internal_xattrs(struct ust_blob *blob,
				     void (*fn)(void *ctx, const char *name), void *ctx);

/* ---- data ------------------------------------------------------------------------ */

/*
 * The calling thread's channel for blob I/O on this store (refcounted).
 * Free each one on its own thread once its I/O has completed; an unload may
 * follow at once (see ust_bs_unload()).
 */
struct ust_io_channel *ust_bs_alloc_io_channel(struct ust_blob_store *bs);
void ust_bs_free_io_channel(struct ust_io_channel *ch);

/*
 * offset and length in io units (ust_bs_get_io_unit_size()). -EINVAL past
 * the end of the blob, -EPERM writing a read-only blob, -ENOSPC a thin
 * blob's cluster could not be allocated, -EIO device errors.
 */
void ust_blob_read(struct ust_blob *blob, struct ust_io_channel *ch, void *payload,
		   uint64_t offset, uint64_t length, ust_blob_op_cb cb, void *arg);
void ust_blob_write(struct ust_blob *blob, struct ust_io_channel *ch, void *payload,
		    uint64_t offset, uint64_t length, ust_blob_op_cb cb, void *arg);
void ust_blob_readv(struct ust_blob *blob, struct ust_io_channel *ch, struct iovec *iov,
		    int iovcnt, uint64_t offset, uint64_t length, ust_blob_op_cb cb, void *arg);
void ust_blob_writev(struct ust_blob *blob, struct ust_io_channel *ch, struct iovec *iov,
		     int iovcnt, uint64_t offset, uint64_t length, ust_blob_op_cb cb, void *arg);
/*
 * Zero-copy read of io units [offset, offset + length): fills iov (at most
 * *iovcnt entries; *iovcnt becomes the number used) with the memory that
 * holds them - the bdev's own (ust_bdev_read_lend()), or shared zeros for
 * a hole - for a caller that copies them out before its thread next polls
 * (see ust_bdev_read_lend() for how long the content holds). Synchronous,
 * any thread with a channel. -ENOTSUP / -EAGAIN from the bdev (use
 * ust_blob_read()), -E2BIG iov too short, -EINVAL past the end of the
 * blob, -EIO a clone whose parent cannot be read.
 */
int ust_blob_read_lend(struct ust_blob *blob, struct ust_io_channel *ch, uint64_t offset,
		       uint64_t length, struct iovec *iov, int *iovcnt);
/* Stores the new bytes into iov[0, iovcnt) before returning: 0 or a negative errno. */
typedef int (*ust_blob_fill_fn)(void *arg, const struct iovec *iov, int iovcnt);
/*
 * Zero-copy write of io units [offset, offset + length): fill(arg, iov,
 * iovcnt) is called once, synchronously, with the memory that holds those
 * units - the bdev's own (ust_bdev_write_lend()) - and stores the new
 * bytes there, for a caller whose bytes are not in memory yet (a FUSE
 * write's payload in a pipe). Its return is returned; a fill that fails
 * may have stored part of the range, as a failed write may have.
 * Only over clusters the blob owns: a hole, a cluster still shown from the
 * parent, or writes frozen (a snapshot being taken) is -EAGAIN, as is the
 * bdev's -EAGAIN; -ENOTSUP the bdev cannot lend. Those call nothing: use
 * ust_blob_write(). -E2BIG more than UST_BLOB_FILL_IOV pieces; -EINVAL,
 * -EPERM as a write. Synchronous, any thread with a channel.
 */
#define UST_BLOB_FILL_IOV 32
int ust_blob_write_fill(struct ust_blob *blob, struct ust_io_channel *ch, uint64_t offset,
			uint64_t length, ust_blob_fill_fn fill, void *arg);
/* Reads as zeros afterwards; unallocated clusters of a thin blob stay unallocated. */
void ust_blob_write_zeroes(struct ust_blob *blob, struct ust_io_channel *ch, uint64_t offset,
			   uint64_t length, ust_blob_op_cb cb, void *arg);
/*
 * Reads as zeros afterwards. Whole clusters of a thin blob are released
 * (durably, before cb); partial clusters and thick blobs are zeroed.
 */
void ust_blob_unmap(struct ust_blob *blob, struct ust_io_channel *ch, uint64_t offset,
		    uint64_t length, ust_blob_op_cb cb, void *arg);

/*
 * Flush the store's device on the calling thread's channel ch (data path:
 * any thread, no message to the metadata thread): every write acknowledged
 * before the call is durable when cb reports 0. Metadata changes still
 * need ust_blob_sync_md() (the flush does not write them). A bdev flush
 * covers the whole device, so ust_blob_flush(blob, ...) is the same as
 * ust_bs_flush() of its store. cb may be NULL. -EINVAL ch is not this
 * thread's channel of the store, -EIO.
 */
void ust_bs_flush(struct ust_blob_store *bs, struct ust_io_channel *ch, ust_bs_op_cb cb, void *arg);
void ust_blob_flush(struct ust_blob *blob, struct ust_io_channel *ch, ust_blob_op_cb cb, void *arg);

#ifdef __cplusplus
}
#endif

#endif
