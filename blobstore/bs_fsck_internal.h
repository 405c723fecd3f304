/*
 * Internal to the blobstore fsck (bs_fsck*.c): the state of one check, the
 * device it reads through, and the functions its files share. Not part of
 * any public API; include/ustor/blob_fsck.h is.
 *
 *   bs_fsck.c         the check's machine, device, findings, superblocks, the
 *                     persisted bitmaps' own checks, per-slot records, the API
 *   bs_fsck_walk.c    root slots: each candidate's tree read and verified, the
 *                     whole-blob rules, damaged slots' soft claims
 *   bs_fsck_repair.c  cross checks over all blobs (pending operations,
 *                     ownership, parents, bitmaps against the metadata) and
 *                     the repair
 *   bs_fsck_dump.c    the metadata dump (ust_bs_dump)
 */
#ifndef USTOR_BS_FSCK_INTERNAL_H
#define USTOR_BS_FSCK_INTERNAL_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ustor/bdev.h"
#include "ustor/blob_fsck.h"

#include "format.h"

#define CHUNK_SLOTS 128u  /* root slots read at once (1 MiB) */
#define CHUNK_PAGES 256u  /* pool pages read at once by dump */
#define NO_SLOT UINT32_MAX

/* ---- bit arrays (little-endian bit order, as on disk) ------------------------------------ */

static inline bool bit_get(const uint8_t *bm, uint64_t i)
{
	return (bm[i / 8] >> (i % 8)) & 1;
}

static inline void bit_set(uint8_t *bm, uint64_t i)
{
	bm[i / 8] |= (uint8_t)(1u << (i % 8));
}

static inline uint64_t rd64le(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static inline uint32_t rd32le(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline uint16_t rd16le(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}
static inline uint64_t raw_blob_id(const uint8_t *page)
{
	/* From a page that failed validation: unverified, only to name it. */
	if (rd32le(page) != UST_BS_MAGIC) {
		return 0;
	}
	return rd64le(page + offsetof(struct ust_bs_disk_page_hdr, blob_id));
}

static inline uint64_t bm_bytes(const struct ust_bs_region *r)
{
	return (uint64_t)r->pages * UST_BS_PAGE_SIZE;
}

/* ---- the device: a claimed descriptor and this thread's channel --------------------------- */

struct fsck_dev {
	struct ust_bdev_desc *desc;
	struct ust_bdev *bdev;
	struct ust_io_channel *ch;
	uint32_t blocklen;
	uint64_t size;
	bool claimed;
};

enum dev_op {
	DEV_READ,
	DEV_WRITE,
	DEV_FLUSH,
};

int fsck_dev_open(struct fsck_dev *dev, const char *name);
void fsck_dev_close(struct fsck_dev *dev);
/* Returns 0 when submitted (done will run), or the submit error (done will not). */
int fsck_dev_submit(struct fsck_dev *dev, enum dev_op op, uint64_t offset, uint64_t len, void *buf,
		    int *rc_out, void (*done)(void *arg, int rc), void *arg);
/* count zeroed DMA pages; fsck_page_free(NULL) does nothing. */
void *fsck_page_alloc(uint64_t count);
void fsck_page_free(void *buf);

/* ---- the check's state --------------------------------------------------------------------- */

enum blob_state {
	BLOB_LIVE,
	BLOB_DAMAGED,
	BLOB_UNSUPPORTED,
};

struct map_entry {
	uint64_t index;   /* blob cluster */
	uint32_t cluster; /* device cluster */
};

/* A slot that is not free: what its current version says. */
struct fsck_blob {
	uint32_t slot;
	uint64_t id;
	enum blob_state state;
	bool dropped; /* a pending operation's resolution deletes it at load */
	uint32_t flags;
	uint64_t num_clusters;
	uint64_t parent_id;
	uint64_t gen;
	bool has_pending;
	struct ust_bs_pending_op pending;
	struct map_entry *map;
	uint64_t nmap;
	uint64_t map_cap;
	uint32_t *pages; /* chain and extent pages of the current version */
	uint32_t npages;
};

enum tree_verdict {
	TREE_COMPLETE,
	TREE_INCOMPLETE,
	TREE_IOERR,
	TREE_UNSUPPORTED, /* a page of a newer format below a valid root */
};

/* The tree of one candidate root half being read. */
struct fsck_tree {
	const uint8_t *root;
	struct ust_bs_root hdr;
	int half;
	uint32_t nchain;
	struct ust_bs_page_ref chain_ref[UST_BS_MAX_CHAIN_PAGES];
	uint8_t *chain;
	int chain_rc[UST_BS_MAX_CHAIN_PAGES];
	uint32_t nextent;
	struct ust_bs_page_ref *ext_ref;
	uint64_t *ext_no;
	int *ext_rc;
	uint8_t *ext;
	enum tree_verdict verdict;
	uint64_t bad_page;
	char msg[200];
};

enum fsck_state {
	FS_READ_PRIMARY,
	FS_READ_BACKUP,
	FS_CHECK_SUPERS,
	FS_CHECK_BITMAPS,
	FS_READ_ROOTS,
	FS_READ_ROOTS_SINGLY,
	FS_SLOT,
	FS_CANDIDATE,
	FS_TREE_CHAIN,
	FS_TREE_EXTENT,
	FS_CROSS,
	FS_REPAIR_SUPER,
	FS_REPAIR_BITMAPS,
	FS_REPAIR_PRIMARY,
	FS_FLUSH,
	FS_FLUSHED,
	FS_DONE,
};

enum repair_step {
	REPAIR_PRIMARY,       /* primary rewritten from the backup */
	REPAIR_BACKUP,        /* backup rewritten from the primary */
	REPAIR_BITMAPS,       /* bitmaps rewritten (not yet vouched for) */
	REPAIR_BITMAP_SUPER,  /* primary with the new bitmaps' checksums */
};

struct fsck_op {
	enum fsck_state state;
	enum fsck_state after_flush;
	struct fsck_dev dev;
	struct ust_bs_fsck_opts opts;
	struct ust_bs_fsck_report *rep;
	int rc;          /* fatal: the check cannot go on (ENOMEM) */
	int pending;
	int io_rc;       /* first I/O error of the current batch */

	/* superblocks */
	uint8_t *page0;
	uint8_t *page1;
	int p_rc, b_rc;  /* decode results */
	int p_io, b_io;  /* read results */
	struct ust_bs_fmt_err p_err, b_err;
	struct ust_bs_super primary, backup;
	uint64_t backup_offset;
	bool have_sb;
	struct ust_bs_super sb; /* the one the check works from */
	struct ust_bs_fmt_geom geom;
	bool fix_backup;
	bool fix_primary;

	/* bitmaps (clean stores) */
	uint8_t *bm;     /* the three regions back to back, as read */
	int bm_io;
	bool bitmaps_ok; /* clean, readable, checksums right: compared bit by bit */
	uint8_t *cbm, *pbm, *bbm;

	/* root slots */
	uint8_t *roots;
	int root_rc[CHUNK_SLOTS * 2];
	uint32_t base, count, slot;
	int drc[2];
	struct ust_bs_root r[2];
	struct ust_bs_fmt_err err[2];
	bool tried[2];
	bool slot_damage; /* an error was reported against the slot */
	struct fsck_tree tree;
	char slot_msg[240];

	/* what the slots hold */
	struct fsck_blob *blobs;
	size_t nblobs, blobs_cap;
	uint32_t *cluster_owner; /* slot + 1 */
	uint32_t *page_owner;    /* slot + 1, pool-relative */
	uint8_t *soft_clusters;  /* referenced by a damaged or unsupported slot, as far as known */
	uint8_t *soft_pages;
	bool unsafe;             /* bitmaps cannot be rebuilt from the metadata */
	bool owners_unknown;     /* a damaged slot may own space no readable page names */
	char unsafe_why[160];

	/* repair */
	uint8_t *newbm;
	enum repair_step writing;

	ust_bs_fsck_cb cb;
	void *arg;
};
/* ---- bs_fsck.c: findings, the batch I/O of the machine, per-slot records ------------------- */

struct ust_bs_fsck_finding *fsck_finding(struct fsck_op *op, enum ust_bs_fsck_severity sev,
					 enum ust_bs_fsck_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void fsck_set_unsafe(struct fsck_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fsck_mark_repaired(struct fsck_op *op, enum ust_bs_fsck_kind kind);
void fsck_io_begin(struct fsck_op *op);
void fsck_io_add(struct fsck_op *op, enum dev_op kind, uint64_t offset, uint64_t len, void *buf,
		 int *rc_out);
int fsck_io_end(struct fsck_op *op);
struct fsck_blob *fsck_blob_new(struct fsck_op *op, uint32_t slot, uint64_t id,
				enum blob_state state);
void fsck_blob_clear(struct fsck_blob *b);
struct fsck_blob *fsck_blob_at_slot(struct fsck_op *op, uint32_t slot);
int fsck_map_add(struct fsck_blob *b, uint64_t index, uint32_t cluster);

/* ---- bs_fsck_walk.c: the states FS_SLOT .. FS_TREE_EXTENT --------------------------------- */

void fsck_slot_begin(struct fsck_op *op);
int fsck_candidate(struct fsck_op *op);
void fsck_tree_check_chain(struct fsck_op *op);
int fsck_tree_read_extents(struct fsck_op *op);
void fsck_tree_check_extents(struct fsck_op *op);
void fsck_candidate_incomplete(struct fsck_op *op);
void fsck_candidate_complete(struct fsck_op *op);
void fsck_tree_free(struct fsck_tree *t);

/* ---- bs_fsck_repair.c: FS_CROSS and the repair states ------------------------------------- */

void fsck_cross_checks(struct fsck_op *op);
int fsck_repair_super(struct fsck_op *op);
int fsck_repair_bitmaps(struct fsck_op *op);
int fsck_repair_primary(struct fsck_op *op);
void fsck_repair_durable(struct fsck_op *op);
void fsck_repair_note(struct fsck_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
