/*
 * Blobstore internals shared by the files of blobstore/ (and by the fsck
 * tool later). Not a public header.
 *
 * Ownership of state (see README.md):
 *  - everything in struct ust_blob_store and struct ust_blob belongs to the
 *    metadata thread, except the published cluster map (blob->map,
 *    blob->map_len), which I/O threads read with atomic loads and only the
 *    metadata thread changes;
 *  - a replaced map array is freed only after every channel's thread has run
 *    (bs_defer_free), so an I/O thread never reads freed memory.
 */
#ifndef USTOR_BLOBSTORE_INTERNAL_H
#define USTOR_BLOBSTORE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "ustor/bdev.h"
#include "ustor/blob.h"
#include "ustor/thread.h"

#include "format.h"

typedef void (*bs_done_fn)(void *arg, int rc);

/* ---- in-memory blob metadata ------------------------------------------------- */

struct bs_xattr {
	TAILQ_ENTRY(bs_xattr) link;
	char *name;
	uint16_t name_len;
	bool internal;
	uint8_t *value;
	uint32_t value_len;
};
TAILQ_HEAD(bs_xattr_list, bs_xattr);

/* A descriptor of a newer writer with the COMPAT flag: carried forward verbatim. */
struct bs_raw_desc {
	TAILQ_ENTRY(bs_raw_desc) link;
	uint16_t type;
	uint8_t flags;
	uint32_t len;
	uint8_t *body;
};
TAILQ_HEAD(bs_raw_list, bs_raw_desc);

struct bs_waiter {
	TAILQ_ENTRY(bs_waiter) link;
	bs_done_fn fn;
	void *arg;
};
TAILQ_HEAD(bs_waiter_list, bs_waiter);

struct bs_io_piece;
TAILQ_HEAD(bs_piece_list, bs_io_piece);

/* A cluster being allocated to a thin blob (format document 9.4). */
enum bs_alloc_state {
	BS_ALLOC_FILLING,    /* content being written and flushed */
	BS_ALLOC_FILLED,     /* content durable; the map that names it is not */
	BS_ALLOC_COMMITTING, /* part of the metadata sync in flight */
};

struct bs_alloc {
	TAILQ_ENTRY(bs_alloc) link;
	uint64_t index;   /* blob cluster */
	uint32_t cluster; /* device cluster */
	enum bs_alloc_state state;
	struct bs_io_piece *owner;    /* the write that fills the cluster */
	struct bs_piece_list waiters; /* other writes to the same cluster */
};
TAILQ_HEAD(bs_alloc_list, bs_alloc);

struct bs_sync;

/*
 * What the writer keeps of a blob's durable extent pages (format 8.2, 9.1),
 * so that a sync after a thin allocation rewrites only the extent pages
 * whose entries changed, the chain page holding their table references and
 * the root, in O(1) work however large the blob is. Metadata thread only;
 * NULL until the blob first uses extent pages (bs_md.c).
 */
struct bs_ext {
	/* The durable version's extent table (n = 0: it uses run lists). */
	uint64_t n;                  /* extent pages it lists: ceil(len / 1008) */
	uint64_t len;                /* the map length it describes */
	struct ust_bs_page_ref *ref; /* n references; page 0: no page, all holes */
	uint32_t *md_pos;            /* index of ref[k].page in blob->md_pages */
	uint32_t md_cap;             /* entries blob->md_pages has room for */
	/*
	 * The durable root and chain pages as written, and where each table
	 * reference sits in them: present only when this writer built that
	 * version (patchable), which lets a map-only change patch references
	 * in place instead of re-serialising the blob.
	 */
	bool patchable;
	uint8_t *root;
	uint8_t *chain[UST_BS_MAX_CHAIN_PAGES];
	uint32_t chain_page[UST_BS_MAX_CHAIN_PAGES]; /* their pool pages */
	uint32_t nchain;
	uint32_t chain_ref_off; /* byte offset in root of the CHAIN descriptor's first reference */
	uint8_t *ref_pg;        /* page holding reference k: 0 root, i + 1 chain page i + 1 */
	uint16_t *ref_off;      /* its byte offset there */
	/* Extent pages whose in-memory entries may differ from the durable ones. */
	uint8_t *dirty;      /* bit k */
	uint64_t dirty_bits; /* capacity of dirty, in bits */
	uint64_t *dlist;     /* the set bits, unordered */
	uint64_t ndirty, dcap;
	bool all_dirty;              /* tracking was lost: rewrite every page */
	const struct bs_map *map_seen; /* the map array the marks refer to */
	/* change_seq increments that only changed map entries (bs_blob_map_changed). */
	uint64_t map_changes;
};

/*
 * The cluster map as I/O threads see it: one allocation holding its length,
 * so a reader can never pair one array with another's length. Entries are
 * read and written with atomics; the array is replaced, never resized.
 */
struct bs_map {
	uint64_t len;
	uint32_t c[];
};

static inline uint32_t bs_map_get(const struct bs_map *m, uint64_t i)
{
	return __atomic_load_n(&m->c[i], __ATOMIC_ACQUIRE);
}

static inline struct bs_map *bs_blob_map(const struct ust_blob *blob);

struct ust_blob {
	struct ust_blob_store *bs;
	TAILQ_ENTRY(ust_blob) link; /* bs->blobs, while open */
	ust_blob_id id;
	uint32_t slot;
	uint32_t refs;

	/* The durable version: what the current root half says. */
	uint64_t gen;      /* its generation */
	int cur_half;      /* 0 = A, 1 = B, -1 none yet (a create in progress) */
	uint64_t next_gen; /* next generation to write: above any ever written */
	uint32_t *md_pages; /* pool pages (chain and extent) of the durable version */
	uint32_t md_npages;

	/* The in-memory version. */
	uint64_t num_clusters;
	uint32_t flags;
	uint64_t parent_id;
	uint32_t ro_compat;
	uint32_t compat;
	/* Published. An allocation stores its entry in place; the array is
	 * swapped only to change its length (bs_blob_map_resize) or by the
	 * snapshot operations. */
	struct bs_map *map;
	struct bs_ext *ext; /* the writer's extent page state (bs_md.c) */
	uint64_t change_seq; /* bumped by every in-memory change */
	uint64_t synced_seq; /* change_seq the durable version includes */
	uint64_t num_allocated;
	struct bs_xattr_list xattrs;
	struct bs_raw_list raw;
	bool deleting;
	bool md_read_only; /* unknown ro_compat bits: never rewrite */

	/* Freed by in-memory changes; returned to the bitmap after the next commit. */
	uint32_t *freed;
	uint64_t nfreed;
	uint64_t freed_cap;

	/* Metadata sync serialisation (format document 9.1 rule 6). */
	struct bs_sync *sync;         /* in flight */
	struct bs_waiter_list queued; /* waiting for the next sync */
	bool sync_wanted;
	struct bs_alloc_list allocs;
	uint32_t closing;             /* close calls waiting for their sync */

	/*
	 * Snapshots and clones (format 8.1, 9.4; bs_snapshot.c). parent is the
	 * open handle of parent_id, holding one reference (counted in the
	 * parent's child_refs); I/O threads follow it with atomic loads, and a
	 * replaced parent is released only after a pass over the channels.
	 * parent_broken: the parent could not be opened (damaged): reads that
	 * fall through to it fail with -EIO (9.5).
	 */
	struct ust_blob *parent;
	bool parent_broken;
	uint32_t child_refs;
	/* A PENDING_OP descriptor this version carries (9.4): written in the root. */
	bool has_pending;
	struct ust_bs_pending_op pending;
	/* A multi-blob operation (snapshot, merge, inflate, decouple) holds it. */
	bool op_busy;
	/* Write freeze: writes arriving while frozen wait on the metadata thread
	 * (frozen_pieces); freeze_done runs once no counted write is in flight. */
	uint32_t frozen;      /* atomic */
	uint64_t wr_inflight; /* atomic: write pieces past the freeze check */
	struct bs_piece_list frozen_pieces;
	bs_done_fn freeze_done;
	void *freeze_arg;
};

static inline struct bs_map *bs_blob_map(const struct ust_blob *blob)
{
	return __atomic_load_n(&blob->map, __ATOMIC_ACQUIRE);
}

/* ---- the store --------------------------------------------------------------- */

struct bs_damaged {
	struct ust_bs_damage d;
};

/*
 * What the store knows of a live slot without opening it: the blob's id and
 * its parent. The snapshot tree is derived from it (parents never list their
 * children, format 8.1); filled at load (clean: from the roots, dirty: by
 * recovery) and kept current by every operation that changes a parent.
 */
struct bs_slot_rel {
	ust_blob_id id;
	ust_blob_id parent;
};

/*
 * Deferred frees (bs_defer_free): pointers queued for the next pass over the
 * channels' threads, and those the pass in flight releases. At most one pass
 * is in flight; the queue waits for it, so a storm of frees costs one walk
 * (and its few messages) at a time, never one per pointer.
 */
struct bs_defer_list {
	void **ptr;
	size_t n;
	size_t cap;
};

struct bs_defer {
	struct bs_defer_list queued;  /* for the next walk */
	struct bs_defer_list walking; /* released when the walk in flight ends */
	bool in_flight;
	uint64_t walks;               /* walks started (tests, statistics) */
};

/* One slot of bs->open_index: the open blob and the id it had when listed. */
struct bs_open_entry {
	struct ust_blob *blob;
	ust_blob_id id;
};

#define BS_PAGE_CACHE_MAX 16

struct ust_blob_store {
	struct ust_bdev_desc *desc;
	struct ust_bdev *bdev;
	struct ust_io_channel *md_ch; /* the bdev channel of the metadata thread */
	struct ust_thread *md_thread;
	/* freed single metadata pages, reused on the metadata thread (bs_md_page_get) */
	void *page_cache[BS_PAGE_CACHE_MAX];
	uint32_t npage_cache;
	uint32_t blocklen;
	bool claimed;
	bool io_device;

	struct ust_bs_super sb;
	struct ust_bs_fmt_geom geom;
	uint64_t cluster_size;
	uint32_t io_unit;
	uint64_t units_per_cluster;

	/* Allocation bitmaps, laid out exactly as their on-disk regions. */
	uint8_t *cbm;
	uint8_t *pbm;
	uint8_t *bbm;
	uint64_t free_clusters;
	uint64_t cluster_hint;
	uint32_t page_hint;

	TAILQ_HEAD(, ust_blob) blobs; /* open blobs */
	struct bs_damaged *damaged;
	size_t ndamaged;
	uint32_t ops;       /* metadata operations in flight */
	uint32_t channels;  /* I/O channels alive (atomic: created on any thread) */
	/* Channels a caller holds (ust_bs_alloc_io_channel() not yet matched by
	 * ust_bs_free_io_channel(); atomic). Unload refuses while any is held;
	 * a freed channel whose destroy is still queued on its thread is not
	 * counted: the unload's teardown waits for it instead. */
	uint32_t channels_held;
	void *teardown_op; /* bs_store.c: the operation a teardown completes */
	bool read_only;
	/* A superblock change (set_super, grow) is being written: one at a
	 * time, so no write of an older copy lands after a newer one (9.4). */
	uint32_t sb_changing;
	/* Something stays reserved that no metadata names (a failed commit, a
	 * deleted damaged blob): unload leaves clean = 0 so that the next load
	 * recovers it (format 9.3). */
	bool leaked;
	struct bs_slot_rel *rel; /* max_blobs entries */

	/*
	 * Added for stores with many blobs (all metadata-thread state):
	 *  - defer: bs_defer_free's batches (bs_dev.c);
	 *  - open_index: the open blob of each slot, so that a lookup does not
	 *    walk bs->blobs (bs_blob.c; allocated on first use, max_blobs
	 *    entries). An entry is trusted only while bs->rel[slot].id still
	 *    equals the id it recorded: code that unlists a blob without
	 *    bs_blob_unlist() clears that rel entry, so a stale entry is never
	 *    dereferenced (bs_blob_find_open falls back to the list then);
	 *  - slot_hint: where the next free-slot search starts; every slot
	 *    below it was in use when it was set (a slot freed below it
	 *    elsewhere is still found: the search wraps);
	 *  - parents_unchecked: the load saw a parent that is not READ_ONLY
	 *    (the format requires it, fsck reports it): a delete then always
	 *    scans the snapshot tree for clones instead of trusting the rule.
	 */
	struct bs_defer defer;
	struct bs_open_entry *open_index;
	uint32_t slot_hint;
	bool parents_unchecked;
};

/* ---- bit arrays ------------------------------------------------------------------ */

static inline bool bs_bit_get(const uint8_t *bm, uint64_t i)
{
	return (bm[i / 8] >> (i % 8)) & 1;
}

static inline void bs_bit_set(uint8_t *bm, uint64_t i)
{
	bm[i / 8] |= (uint8_t)(1u << (i % 8));
}

static inline void bs_bit_clear(uint8_t *bm, uint64_t i)
{
	bm[i / 8] &= (uint8_t)~(1u << (i % 8));
}

/* First clear bit in [from, end), or end. */
uint64_t bs_bit_find_clear(const uint8_t *bm, uint64_t from, uint64_t end);

/* ---- bs_dev.c: the device adapter ------------------------------------------------ */

/* Open the bdev; claim it now, or later with bs_dev_claim() (a load claims
 * only once the superblock shows a store of its type). */
int bs_dev_open(struct ust_blob_store *bs, const char *bdev_name, bool claim);
int bs_dev_claim(struct ust_blob_store *bs);
void bs_dev_close(struct ust_blob_store *bs);
/* Metadata-thread I/O in 4 KiB pages; done(arg, rc) runs once. */
void bs_dev_read_pages(struct ust_blob_store *bs, uint64_t page, uint32_t count, void *buf,
		       bs_done_fn done, void *arg);
/*
 * The same read made at once where the bdev can lend the pages (memory):
 * 0 with buf filled, else -ENOTSUP / -EAGAIN / -ENODEV and nothing done
 * (read them with bs_dev_read_pages).
 */
int bs_dev_read_pages_now(struct ust_blob_store *bs, uint64_t page, uint32_t count, void *buf);
void bs_dev_write_pages(struct ust_blob_store *bs, uint64_t page, uint32_t count, const void *buf,
			bs_done_fn done, void *arg);
void bs_dev_zero_pages(struct ust_blob_store *bs, uint64_t page, uint64_t count, bs_done_fn done,
		       void *arg);
void bs_dev_flush(struct ust_blob_store *bs, bs_done_fn done, void *arg);
/* Byte-addressed variants (for the backup superblock and cluster data). */
void bs_dev_read_bytes(struct ust_blob_store *bs, uint64_t offset, uint64_t len, void *buf,
		       bs_done_fn done, void *arg);
void bs_dev_write_bytes(struct ust_blob_store *bs, uint64_t offset, uint64_t len, const void *buf,
			bs_done_fn done, void *arg);
void *bs_dma_page_alloc(uint32_t count);
void bs_dma_free(void *buf);
/*
 * One zeroed DMA page, and its return, for the metadata a blob sync builds:
 * on the metadata thread a freed page is kept for the next sync (a sync
 * takes and frees several, and the DMA allocator's take and free cost more
 * than clearing a page); elsewhere these are bs_dma_page_alloc(1) and
 * bs_dma_free(). bs_dev_close() frees what is kept.
 */
void *bs_md_page_get(struct ust_blob_store *bs);
void bs_md_page_put(struct ust_blob_store *bs, void *page);
/* Run fn(arg) on the metadata thread (directly if already there). */
int bs_md_send(struct ust_blob_store *bs, ust_msg_fn fn, void *arg);
/*
 * Free ptr (malloc'd) once every thread holding a channel of the store has
 * run. Batched: one walk in flight frees everything queued before it
 * started; a teardown frees what is left once the channels are gone.
 */
void bs_defer_free(struct ust_blob_store *bs, void *ptr);
/* Pointers waiting for a walk, and those the walk in flight will free. */
void bs_defer_counts(const struct ust_blob_store *bs, size_t *queued, size_t *walking);
bool bs_on_md_thread(const struct ust_blob_store *bs);

/* ---- bs_store.c: allocation state ------------------------------------------------ */

/* Lowest free data cluster, marked used; 0 when none is free. */
uint32_t bs_cluster_alloc(struct ust_blob_store *bs);
void bs_cluster_free(struct ust_blob_store *bs, uint32_t cluster);
/* A free pool page, marked used; 0 when none is free. */
uint32_t bs_page_alloc(struct ust_blob_store *bs);
void bs_page_free(struct ust_blob_store *bs, uint32_t page);
void bs_page_claim(struct ust_blob_store *bs, uint32_t page);
void bs_cluster_claim(struct ust_blob_store *bs, uint32_t cluster);
void bs_report_damage(struct ust_blob_store *bs, uint32_t slot, ust_blob_id id, int error,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
bool bs_is_damaged(const struct ust_blob_store *bs, uint32_t slot);
void bs_forget_damage(struct ust_blob_store *bs, uint32_t slot);
uint64_t bs_root_page(const struct ust_blob_store *bs, uint32_t slot, int half);
/*
 * Write next as the store's superblock (format 9.4): the backup at next's
 * backup offset, flush, the primary (clean = 0), flush; done(arg, rc).
 * bs->sb is left alone: the caller adopts next once done reports 0. The
 * caller has set bs->sb_changing (cleared here before done runs).
 */
void bs_super_commit(struct ust_blob_store *bs, const struct ust_bs_super *next, bs_done_fn done,
		     void *arg);

/* ---- bs_tree.c: reading a blob's metadata tree -------------------------------------- */

/* The pages of one version of a blob, as read and validated. */
struct bs_tree {
	uint8_t *root; /* the root page (not owned) */
	struct ust_bs_root hdr;
	uint32_t nchain;
	uint32_t chain_page[UST_BS_MAX_CHAIN_PAGES];
	uint8_t *chain[UST_BS_MAX_CHAIN_PAGES];
	uint32_t nextent;
	uint32_t *extent_page;  /* pool page of each extent page read */
	uint32_t *extent_no;    /* its extent page number */
	uint8_t **extent;       /* its contents */
};

enum bs_tree_verdict {
	BS_TREE_COMPLETE,
	BS_TREE_INCOMPLETE, /* a referenced page is missing, torn or stale */
	BS_TREE_IOERR,      /* a referenced page could not be read */
};

/*
 * Read and validate the whole tree of a decoded root page. done(arg, verdict
 * as enum bs_tree_verdict, or -ENOMEM). On INCOMPLETE/IOERR, msg says which
 * page and why.
 */
void bs_tree_read(struct ust_blob_store *bs, struct bs_tree *tree, char *msg, size_t msglen,
		  bs_done_fn done, void *arg);
void bs_tree_free(struct bs_tree *tree);

/*
 * Build the in-memory blob from a complete tree, checking the rules over a
 * whole blob (format 8.4). Returns -EUCLEAN with msg on a violation,
 * -ENOMEM.
 */
int bs_blob_from_tree(struct ust_blob *blob, const struct bs_tree *tree, char *msg, size_t msglen);

/* Pick the current half from two decoded halves (rc of each decode). */
int bs_pick_half(const int rc[2], const struct ust_bs_root r[2], int exclude);

/* ---- bs_md.c: the metadata sync ---------------------------------------------------- */

struct ust_blob *bs_blob_alloc(struct ust_blob_store *bs, ust_blob_id id);
void bs_blob_free(struct ust_blob *blob);
/*
 * Write the in-memory version as a new generation (format 9.1) and call
 * done once it is durable. Calls queue: one sync per blob at a time; calls
 * made while one is in flight are served by the next, together.
 */
void bs_blob_sync(struct ust_blob *blob, bs_done_fn done, void *arg);
/* Write a tombstone for the blob (delete): done after the commit flush. */
void bs_blob_write_tombstone(struct ust_blob *blob, bs_done_fn done, void *arg);
/* Bytes of descriptors the in-memory version needs (for limits). */
uint64_t bs_blob_md_bytes(const struct ust_blob *blob);
bool bs_blob_md_fits(const struct ust_blob *blob);
/* Record a cluster that the next commit releases. -ENOMEM. */
int bs_blob_defer_cluster_free(struct ust_blob *blob, uint32_t cluster);
/* Replace the published map with one of new_len entries (grow or shrink). */
int bs_blob_map_resize(struct ust_blob *blob, uint64_t new_len);
void bs_xattr_free(struct bs_xattr *x);

/* ---- bs_extent.c: the writer's extent page state ------------------------------------- */

/* The blob's state, created on first use; NULL without memory. */
struct bs_ext *bs_ext_get(struct ust_blob *blob);
/* Extent page k's in-memory entries may differ from the durable ones. */
void bs_ext_mark(struct ust_blob *blob, uint64_t k);
/* The durable version uses run lists: drop its extent references and images. */
void bs_ext_table_drop(struct bs_ext *e);
void bs_ext_free(struct bs_ext *e);
/*
 * Map entry index was changed in place (an unmap) and change_seq bumped for
 * it: the next sync may rewrite just its extent page. Any other change
 * (bumping change_seq alone) makes the next sync re-serialise the blob.
 */
void bs_blob_map_changed(struct ust_blob *blob, uint64_t index);
/*
 * Loading (bs_tree.c): the durable version lists n extent pages; its table
 * references are then recorded with bs_ext_set_ref. -ENOMEM.
 */
int bs_ext_load_begin(struct ust_blob *blob, uint64_t n);
void bs_ext_set_ref(struct ust_blob *blob, uint64_t k, const struct ust_bs_page_ref *ref);
/* Once blob->md_pages is recorded: extent page k sits at md_pages[pos]. */
void bs_ext_set_md_pos(struct ust_blob *blob, uint64_t k, uint32_t pos);

/* ---- bs_recover.c: dirty load ----------------------------------------------------- */

/* Rebuild the bitmaps from the root slots (format 9.3). bs->sb is loaded. */
void bs_recover(struct ust_blob_store *bs, bs_done_fn done, void *arg);
/*
 * Clean load: read the root halves of the live slots and fill bs->rel.
 * -EAGAIN when a current root carries a PENDING_OP (a clean shutdown never
 * leaves one): the caller then recovers as after a dirty shutdown.
 */
void bs_scan_relations(struct ust_blob_store *bs, bs_done_fn done, void *arg);

/* ---- bs_blob.c: shared with the snapshot operations --------------------------------- */

struct ust_blob *bs_blob_find_open(struct ust_blob_store *bs, uint32_t slot);
/* Take a listed blob off bs->blobs (and off the open index). */
void bs_blob_unlist(struct ust_blob *blob);
/* Free the open index (store teardown). */
void bs_open_index_free(struct ust_blob_store *bs);
/* A free slot, marked used; max_blobs when none is free. */
uint32_t bs_slot_take(struct ust_blob_store *bs);
/* Give a slot back (its bit cleared); the next search starts no later. */
void bs_slot_release(struct ust_blob_store *bs, uint32_t slot);
/*
 * Reserve a free slot and read it, so that the new blob gets the slot's next
 * generation and incarnation (format 7): done(arg, blob, rc) with a blob
 * holding only its id, half and generation (no map), not yet listed as open.
 * bs_blob_new_abort() gives the slot back.
 */
void bs_blob_new(struct ust_blob_store *bs,
		 void (*done)(void *arg, struct ust_blob *blob, int rc), void *arg);
void bs_blob_new_abort(struct ust_blob *blob);
/* List a blob built in memory as open, with one reference. */
void bs_blob_list_open(struct ust_blob *blob);
int bs_blob_set_xattrs(struct ust_blob *blob, const struct ust_blob_xattr *x, size_t n);
/* Drop the reference a blob holds on its parent (now). */
void bs_blob_put_parent(struct ust_blob *blob);
/* A callback that does nothing: what a NULL optional callback becomes. */
void bs_noop_cb(void *arg, int rc);
/*
 * The entry check of a store-wide call answered through a callback: a NULL
 * *cb becomes bs_noop_cb; no store is -EINVAL, a thread other than the
 * metadata thread -EXDEV. A non-zero result has already been given to *cb.
 */
int bs_md_call_check(struct ust_blob_store *bs, ust_bs_op_cb *cb, void *arg);
/* 0 on the metadata thread, else -EXDEV (logged): the entry check of a blob call. */
int bs_md_thread_check(struct ust_blob_store *bs);
/* An xattr name: 1..UST_BS_XATTR_NAME_MAX bytes. */
bool bs_xattr_name_ok(const char *name);
/* Logs that a thin blob of n clusters is too large (what: the call); -EFBIG. */
int bs_thin_too_large(const char *what, uint64_t n);

/* ---- bs_snapshot.c ------------------------------------------------------------------ */

/* Clones of id known to the store; *only gets one of them. */
uint32_t bs_count_clones(const struct ust_blob_store *bs, ust_blob_id id, ust_blob_id *only);
/* Delete snapshot id, which has exactly one clone, by merging it into the clone. */
void bs_delete_merge(struct ust_blob_store *bs, ust_blob_id id, ust_blob_op_cb cb, void *arg);

/* ---- bs_io.c: data path ------------------------------------------------------------ */

int bs_channel_create(void *io_device, void *ctx_buf);
void bs_channel_destroy(void *io_device, void *ctx_buf);
size_t bs_channel_ctx_size(void);
/* Metadata thread: allocations of this blob that a sync may include. */
void bs_allocs_committed(struct ust_blob *blob, int rc);
struct bs_alloc *bs_alloc_find(struct ust_blob *blob, uint64_t index);
/* Drop an allocation whose fill failed: the cluster is free, its waiters retry. */
void bs_alloc_abandon(struct ust_blob *blob, struct bs_alloc *a, int rc);
/*
 * The device cluster blob cluster index reads: the blob's own, else the
 * nearest ancestor's (format 8.1 THIN); 0 reads zeros. *broken is set when
 * the walk reaches a parent that could not be opened. Any thread.
 */
uint32_t bs_chain_lookup(const struct ust_blob *blob, uint64_t index, bool *broken);
/*
 * Stop new writes (write, write_zeroes, unmap) to the blob and call done
 * once none is in flight; writes arriving meanwhile wait and run after
 * bs_blob_unfreeze(). Metadata thread; one freeze at a time per blob.
 */
void bs_blob_freeze(struct ust_blob *blob, bs_done_fn done, void *arg);
void bs_blob_unfreeze(struct ust_blob *blob);

#endif
