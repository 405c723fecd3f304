/*
 * Blobstore fsck, its limited repair, and the metadata dump
 * (include/ustor/blob_fsck.h).
 *
 * fsck reads the bdev itself, through a claimed descriptor of its own, and
 * judges every page with the format codec (format.c): it never loads the
 * store and shares no state with a loaded one. It applies the rules of
 * docs/blobstore-format.md independently of the loader: the superblocks
 * (5, 5.1), the root slots and their current versions (7, 8.5, 9.2, 9.3),
 * each current tree and the whole-blob rules (8.4), pending operations
 * (9.4), single ownership of clusters and pages, parents, and, on a clean
 * store, the persisted bitmaps bit by bit (6).
 *
 * Guarantees:
 *  - Without repair, nothing is written to the bdev.
 *  - Every finding names what it concerns (blob id, slot, page, cluster)
 *    and says why, with the codec's message for damaged pages.
 *  - The repair only: rewrites the backup superblock from a valid primary;
 *    rewrites a missing or damaged primary from a valid backup with
 *    clean = 0; and, on a clean store where every slot was read completely
 *    and no cluster or page is shared, rewrites the three bitmaps as exactly
 *    what the metadata references (plus the metadata clusters) and then the
 *    primary with their checksums, flushing after each step. It never writes
 *    a root, chain or extent page, so no blob is ever changed or deleted, and
 *    a cluster any blob references is never freed.
 *  - Memory is bounded by the live metadata (per-slot records exist only for
 *    slots that are not free) plus one owner entry per cluster and pool page.
 *  - The step machines loop instead of recursing, so a store with 2^24 slots
 *    does not grow the stack.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/bdev.h"
#include "ustor/bdev_module.h"
#include "ustor/blob_fsck.h"
#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/thread.h"

#include "format.h"

#define CHUNK_SLOTS 128u  /* root slots read at once (1 MiB) */
#define CHUNK_PAGES 256u  /* pool pages read at once by dump */
#define NO_SLOT UINT32_MAX

/* ---- bit arrays (little-endian bit order, as on disk) ------------------------------------ */

static bool bit_get(const uint8_t *bm, uint64_t i)
{
	return (bm[i / 8] >> (i % 8)) & 1;
}

static void bit_set(uint8_t *bm, uint64_t i)
{
	bm[i / 8] |= (uint8_t)(1u << (i % 8));
}

static uint64_t rd64le(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static uint32_t rd32le(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint16_t rd16le(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

/* ---- the device: a claimed descriptor and this thread's channel --------------------------- */

static struct ust_bdev_module g_fsck_module = {
	.name = "blobstore_fsck",
};

struct fsck_dev {
	struct ust_bdev_desc *desc;
	struct ust_bdev *bdev;
	struct ust_io_channel *ch;
	uint32_t blocklen;
	uint64_t size;
	bool claimed;
};

static void dev_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	(void)ctx;
	if (type == UST_BDEV_EVENT_REMOVE) {
		UST_WARNLOG("blobstore fsck: bdev %s is being removed\n", ust_bdev_get_name(bdev));
	}
}

static void dev_close(struct fsck_dev *dev)
{
	if (dev->ch != NULL) {
		ust_put_io_channel(dev->ch);
		dev->ch = NULL;
	}
	if (dev->claimed) {
		ust_bdev_module_release_bdev(dev->bdev);
		dev->claimed = false;
	}
	if (dev->desc != NULL) {
		ust_bdev_close(dev->desc);
		dev->desc = NULL;
	}
}

static int dev_open(struct fsck_dev *dev, const char *name)
{
	struct ust_bdev_module *owner;
	int rc;

	rc = ust_bdev_open_ext(name, false, dev_event, NULL, &dev->desc);
	if (rc != 0) {
		UST_ERRLOG("blobstore fsck: cannot open bdev %s: %s\n", name, strerror(-rc));
		return rc;
	}
	dev->bdev = ust_bdev_desc_get_bdev(dev->desc);
	owner = ust_bdev_get_claim_module(dev->bdev);
	rc = ust_bdev_module_claim_bdev(dev->bdev, dev->desc, &g_fsck_module);
	if (rc != 0) {
		UST_ERRLOG("blobstore fsck: bdev %s is in use%s%s%s (a loaded blobstore must be "
			   "unloaded first)\n", name, owner != NULL ? " (claimed by module " : "",
			   owner != NULL ? owner->name : "", owner != NULL ? ")" : "");
		dev_close(dev);
		return rc;
	}
	dev->claimed = true;
	dev->ch = ust_bdev_get_io_channel(dev->desc);
	if (dev->ch == NULL) {
		dev_close(dev);
		return -ENOMEM;
	}
	dev->blocklen = ust_bdev_get_block_size(dev->bdev);
	dev->size = ust_bdev_get_num_blocks(dev->bdev) * dev->blocklen;
	return 0;
}

static void *page_alloc(uint64_t count)
{
	return ust_dma_zmalloc((size_t)count * UST_BS_PAGE_SIZE, UST_BS_PAGE_SIZE);
}

static void page_free(void *buf)
{
	if (buf != NULL) {
		ust_dma_free(buf);
	}
}

/*
 * One I/O of a step machine. The machine counts outstanding I/O in *pending
 * and holds one count itself while it issues (so an inline completion cannot
 * run the machine early); done() drops a count and runs the machine at zero.
 */
struct dev_req {
	int *rc_out; /* where the status goes (may be NULL) */
	void (*done)(void *arg, int rc);
	void *arg;
};

static void dev_req_complete(struct ust_bdev_io *io, int status, void *ctx)
{
	struct dev_req req = *(struct dev_req *)ctx;

	(void)io;
	free(ctx);
	if (req.rc_out != NULL) {
		*req.rc_out = status;
	}
	req.done(req.arg, status);
}

enum dev_op {
	DEV_READ,
	DEV_WRITE,
	DEV_FLUSH,
};

/* Returns 0 when submitted (done will run), or the submit error (done will not). */
static int dev_submit(struct fsck_dev *dev, enum dev_op op, uint64_t offset, uint64_t len, void *buf,
		      int *rc_out, void (*done)(void *arg, int rc), void *arg)
{
	struct dev_req *req = calloc(1, sizeof(*req));
	int rc;

	if (req == NULL) {
		return -ENOMEM;
	}
	req->rc_out = rc_out;
	req->done = done;
	req->arg = arg;
	switch (op) {
	case DEV_READ:
		rc = ust_bdev_read(dev->desc, dev->ch, buf, offset, len, dev_req_complete, req);
		break;
	case DEV_WRITE:
		rc = ust_bdev_write(dev->desc, dev->ch, buf, offset, len, dev_req_complete, req);
		break;
	default:
		rc = ust_bdev_flush_blocks(dev->desc, dev->ch, 0, ust_bdev_get_num_blocks(dev->bdev),
					   dev_req_complete, req);
		break;
	}
	if (rc != 0) {
		free(req);
		if (rc_out != NULL) {
			*rc_out = rc;
		}
	}
	return rc;
}

/* ---- names ------------------------------------------------------------------------------- */

static const char *const g_kind_str[UST_BS_FSCK_KIND_COUNT] = {
	[UST_BS_FSCK_NO_STORE] = "no-store",
	[UST_BS_FSCK_SUPER_PRIMARY] = "super-primary",
	[UST_BS_FSCK_SUPER_BACKUP] = "super-backup",
	[UST_BS_FSCK_SUPER_MISMATCH] = "super-mismatch",
	[UST_BS_FSCK_SUPER_GEOMETRY] = "super-geometry",
	[UST_BS_FSCK_DIRTY] = "dirty",
	[UST_BS_FSCK_BITMAP_CHECKSUM] = "bitmap-checksum",
	[UST_BS_FSCK_BITMAP_RANGE] = "bitmap-range",
	[UST_BS_FSCK_ROOT_DAMAGED] = "root-damaged",
	[UST_BS_FSCK_ROOT_MISPLACED] = "root-misplaced",
	[UST_BS_FSCK_ROOT_UNCOMMITTED] = "root-uncommitted",
	[UST_BS_FSCK_TREE_INCOMPLETE] = "tree-incomplete",
	[UST_BS_FSCK_BLOB_INVALID] = "blob-invalid",
	[UST_BS_FSCK_SLOT_DAMAGED] = "slot-damaged",
	[UST_BS_FSCK_UNSUPPORTED] = "unsupported",
	[UST_BS_FSCK_CLUSTER_SHARED] = "cluster-shared",
	[UST_BS_FSCK_PAGE_SHARED] = "page-shared",
	[UST_BS_FSCK_CLUSTER_LEAKED] = "cluster-leaked",
	[UST_BS_FSCK_PAGE_LEAKED] = "page-leaked",
	[UST_BS_FSCK_SLOT_LEAKED] = "slot-leaked",
	[UST_BS_FSCK_CLUSTER_UNMARKED] = "cluster-unmarked",
	[UST_BS_FSCK_PAGE_UNMARKED] = "page-unmarked",
	[UST_BS_FSCK_SLOT_UNMARKED] = "slot-unmarked",
	[UST_BS_FSCK_PARENT] = "parent",
	[UST_BS_FSCK_PENDING_OP] = "pending-op",
	[UST_BS_FSCK_IO_ERROR] = "io-error",
	[UST_BS_FSCK_REPAIR] = "repair",
};

const char *ust_bs_fsck_kind_str(enum ust_bs_fsck_kind kind)
{
	if ((unsigned)kind >= UST_BS_FSCK_KIND_COUNT) {
		return "unknown";
	}
	return g_kind_str[kind];
}

const char *ust_bs_fsck_severity_str(enum ust_bs_fsck_severity severity)
{
	switch (severity) {
	case UST_BS_FSCK_INFO:
		return "info";
	case UST_BS_FSCK_WARNING:
		return "warning";
	case UST_BS_FSCK_ERROR:
		return "ERROR";
	}
	return "unknown";
}

void ust_bs_fsck_opts_init(struct ust_bs_fsck_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
}

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

static void fsck_step(struct fsck_op *op);

static struct ust_bs_fsck_finding g_nomem_finding;

static struct ust_bs_fsck_finding *finding(struct fsck_op *op, enum ust_bs_fsck_severity sev,
					   enum ust_bs_fsck_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static struct ust_bs_fsck_finding *finding(struct fsck_op *op, enum ust_bs_fsck_severity sev,
					   enum ust_bs_fsck_kind kind, const char *fmt, ...)
{
	struct ust_bs_fsck_report *rep = op->rep;
	struct ust_bs_fsck_finding *f, *grown;
	va_list ap;

	if ((rep->count & (rep->count + 1)) == 0) {
		/* count + 1 is a power of two: grow to twice that. */
		grown = realloc(rep->findings, (rep->count + 1) * 2 * sizeof(*grown));
		if (grown == NULL) {
			op->rc = -ENOMEM;
			return &g_nomem_finding;
		}
		rep->findings = grown;
	}
	f = &rep->findings[rep->count++];
	memset(f, 0, sizeof(*f));
	f->severity = sev;
	f->kind = kind;
	f->slot = NO_SLOT;
	f->page = UST_BS_FSCK_NONE;
	f->cluster = UST_BS_FSCK_NONE;
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
	va_end(ap);
	return f;
}

static void set_unsafe(struct fsck_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_unsafe(struct fsck_op *op, const char *fmt, ...)
{
	va_list ap;

	if (op->unsafe) {
		return;
	}
	op->unsafe = true;
	va_start(ap, fmt);
	vsnprintf(op->unsafe_why, sizeof(op->unsafe_why), fmt, ap);
	va_end(ap);
}

static void mark_repaired(struct fsck_op *op, enum ust_bs_fsck_kind kind)
{
	size_t i;

	for (i = 0; i < op->rep->count; i++) {
		if (op->rep->findings[i].kind == kind) {
			op->rep->findings[i].repaired = true;
		}
	}
}

/* I/O completion of the check: one count fewer; the machine runs at zero. */
static void fsck_io_done(void *arg, int rc)
{
	struct fsck_op *op = arg;

	if (rc != 0 && op->io_rc == 0) {
		op->io_rc = rc;
	}
	if (--op->pending == 0) {
		fsck_step(op);
	}
}

static void io_begin(struct fsck_op *op)
{
	op->pending = 1;
	op->io_rc = 0;
}

/* Submit one I/O; a refused submit is recorded in *rc_out / io_rc like a failed one. */
static void io_add(struct fsck_op *op, enum dev_op kind, uint64_t offset, uint64_t len, void *buf,
		   int *rc_out)
{
	int rc;

	op->pending++;
	rc = dev_submit(&op->dev, kind, offset, len, buf, rc_out, fsck_io_done, op);
	if (rc != 0) {
		op->pending--;
		if (op->io_rc == 0) {
			op->io_rc = rc;
		}
	}
}

/* Drop the issuing count: 1 when the machine must wait (completions run it). */
static int io_end(struct fsck_op *op)
{
	if (--op->pending == 0) {
		return 0;
	}
	return 1;
}

/* ---- superblocks ------------------------------------------------------------------------------ */

static uint64_t raw_blob_id(const uint8_t *page)
{
	/* From a page that failed validation: unverified, only to name it. */
	if (rd32le(page) != UST_BS_MAGIC) {
		return 0;
	}
	return rd64le(page + offsetof(struct ust_bs_disk_page_hdr, blob_id));
}

static void super_field_diff(const struct ust_bs_super *a, const struct ust_bs_super *b, char *out,
			     size_t len)
{
	const char *what = NULL;

	if (strcmp(a->bstype, b->bstype) != 0) {
		what = "bstype";
	} else if (a->incompat != b->incompat || a->ro_compat != b->ro_compat ||
		   a->compat != b->compat) {
		what = "feature flags";
	} else if (a->io_unit_size != b->io_unit_size || a->cluster_size != b->cluster_size ||
		   a->page_size != b->page_size) {
		what = "unit sizes";
	} else if (a->max_blobs != b->max_blobs || a->bdev_size != b->bdev_size ||
		   a->total_clusters != b->total_clusters || a->md_clusters != b->md_clusters) {
		what = "geometry";
	} else if (memcmp(&a->cluster_bitmap, &b->cluster_bitmap, sizeof(a->cluster_bitmap)) != 0 ||
		   memcmp(&a->page_bitmap, &b->page_bitmap, sizeof(a->page_bitmap)) != 0 ||
		   memcmp(&a->blobid_bitmap, &b->blobid_bitmap, sizeof(a->blobid_bitmap)) != 0 ||
		   memcmp(&a->root_slots, &b->root_slots, sizeof(a->root_slots)) != 0 ||
		   memcmp(&a->md_pool, &b->md_pool, sizeof(a->md_pool)) != 0) {
		what = "regions";
	} else if (a->super_blob_id != b->super_blob_id) {
		what = "super blob id";
	}
	snprintf(out, len, "%s", what != NULL ? what : "");
}

static void check_backup(struct fsck_op *op)
{
	struct ust_bs_fsck_finding *f;
	char diff[32];

	if (op->b_io != 0) {
		f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_BACKUP,
			    "backup superblock at offset 0x%" PRIx64 " unreadable: %s",
			    op->backup_offset, strerror(-op->b_io));
		f->page = op->backup_offset / UST_BS_PAGE_SIZE;
		op->fix_backup = true;
		return;
	}
	if (op->b_rc != 0) {
		f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_BACKUP,
			    "backup superblock at offset 0x%" PRIx64 ": %s",
			    op->backup_offset, op->b_err.msg);
		f->page = op->backup_offset / UST_BS_PAGE_SIZE;
		op->fix_backup = true;
		return;
	}
	if (op->backup.hdr.seq != UST_BS_SUPER_BACKUP || op->backup.clean) {
		f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_BACKUP,
			    "backup superblock at offset 0x%" PRIx64 " has seq %u and clean %d "
			    "(a backup has seq 1 and clean 0)", op->backup_offset,
			    op->backup.hdr.seq, op->backup.clean);
		f->page = op->backup_offset / UST_BS_PAGE_SIZE;
		op->fix_backup = true;
		return;
	}
	if (op->backup.hdr.store_id != op->primary.hdr.store_id) {
		f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_BACKUP,
			    "backup superblock belongs to store 0x%016" PRIx64 ", primary to 0x%016"
			    PRIx64, op->backup.hdr.store_id, op->primary.hdr.store_id);
		f->page = op->backup_offset / UST_BS_PAGE_SIZE;
		op->fix_backup = true;
		return;
	}
	if (op->backup.hdr.generation < op->primary.hdr.generation) {
		f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_BACKUP,
			    "backup superblock is stale: generation %" PRIu64 ", primary %" PRIu64,
			    op->backup.hdr.generation, op->primary.hdr.generation);
		f->page = op->backup_offset / UST_BS_PAGE_SIZE;
		op->fix_backup = true;
		return;
	}
	super_field_diff(&op->primary, &op->backup, diff, sizeof(diff));
	if (op->backup.hdr.generation > op->primary.hdr.generation) {
		/* Backup written, primary not: an interrupted superblock change (9.4). */
		f = finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_SUPER_MISMATCH,
			    "backup superblock is newer (generation %" PRIu64 ") than the primary (%"
			    PRIu64 ")%s%s: an interrupted superblock change that was never "
			    "acknowledged; the primary stays authoritative", op->backup.hdr.generation,
			    op->primary.hdr.generation, diff[0] ? "; they differ in " : "", diff);
		f->page = op->backup_offset / UST_BS_PAGE_SIZE;
		op->fix_backup = true;
		return;
	}
	if (diff[0] != '\0') {
		f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_MISMATCH,
			    "primary and backup superblocks have the same generation %" PRIu64
			    " but differ in %s", op->primary.hdr.generation, diff);
		f->page = op->backup_offset / UST_BS_PAGE_SIZE;
		op->fix_backup = true;
	}
}

/* Is the superblock usable on this bdev (the loader's own conditions)? */
static bool check_geometry(struct fsck_op *op, const struct ust_bs_super *sb)
{
	if (sb->io_unit_size % op->dev.blocklen != 0) {
		finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_GEOMETRY,
			"io unit %u is not a multiple of the bdev's block size %u",
			sb->io_unit_size, op->dev.blocklen);
		return false;
	}
	if (op->dev.size < sb->bdev_size) {
		finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_GEOMETRY,
			"the store was formatted for %" PRIu64 " bytes; the bdev has only %" PRIu64,
			sb->bdev_size, op->dev.size);
		return false;
	}
	if (sb->incompat & ~UST_BS_FEAT_INCOMPAT_SUPPORTED) {
		finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_GEOMETRY,
			"unknown incompatible store features 0x%x: this fsck cannot check the store",
			sb->incompat & ~UST_BS_FEAT_INCOMPAT_SUPPORTED);
		return false;
	}
	return true;
}

/* Decide which superblock the check works from. Returns false when none. */
static bool check_supers(struct fsck_op *op)
{
	struct ust_bs_fsck_report *rep = op->rep;
	struct ust_bs_fsck_finding *f;
	bool p_magic = op->p_io == 0 && rd32le(op->page0) == UST_BS_MAGIC;
	bool b_magic = op->b_io == 0 && rd32le(op->page1) == UST_BS_MAGIC;

	if (op->p_io == 0 && op->p_rc == 0 && op->primary.hdr.seq != UST_BS_SUPER_PRIMARY) {
		op->p_rc = -EUCLEAN;
		snprintf(op->p_err.msg, sizeof(op->p_err.msg), "page 0 holds a superblock with seq %u",
			 op->primary.hdr.seq);
	}
	if (op->p_io == 0 && op->p_rc == 0) {
		op->sb = op->primary;
		op->have_sb = true;
		check_backup(op);
	} else {
		rep->store_found = p_magic || b_magic;
		if (op->p_io != 0) {
			f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_PRIMARY,
				    "primary superblock unreadable: %s", strerror(-op->p_io));
		} else if (!rep->store_found) {
			f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_NO_STORE,
				    "no blobstore: the primary superblock is %s and no backup was "
				    "found at offset 0x%" PRIx64, op->p_rc == -ENODATA ? "blank" :
				    "not a ustor page", op->backup_offset);
			f->page = 0;
			return false;
		} else {
			f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_PRIMARY,
				    "primary superblock: %s", op->p_err.msg);
		}
		f->page = 0;
		if (op->b_io == 0 && op->b_rc == 0 && op->backup.hdr.seq == UST_BS_SUPER_BACKUP) {
			op->sb = op->backup;
			op->sb.clean = false;
			op->have_sb = true;
			op->fix_primary = true;
			finding(op, UST_BS_FSCK_INFO, UST_BS_FSCK_SUPER_BACKUP,
				"checking from the backup superblock at offset 0x%" PRIx64
				" (generation %" PRIu64 ")", op->backup_offset, op->backup.hdr.generation);
		} else {
			f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_BACKUP,
				    "no usable backup superblock at offset 0x%" PRIx64 ": %s",
				    op->backup_offset, op->b_io != 0 ? strerror(-op->b_io) :
				    op->b_rc != 0 ? op->b_err.msg : "it is not a backup (seq 0)");
			f->page = op->backup_offset / UST_BS_PAGE_SIZE;
			return false;
		}
	}
	rep->store_found = true;
	rep->clean = op->sb.clean;
	rep->store_id = op->sb.hdr.store_id;
	memcpy(rep->bstype, op->sb.bstype, sizeof(rep->bstype) - 1);
	rep->cluster_size = op->sb.cluster_size;
	rep->total_clusters = op->sb.total_clusters;
	rep->md_clusters = op->sb.md_clusters;
	rep->max_blobs = op->sb.max_blobs;
	if (!check_geometry(op, &op->sb)) {
		/* Not this bdev's store as it stands: repair nothing. */
		op->have_sb = false;
		return false;
	}
	ust_bs_fmt_geom_from_super(&op->sb, &op->geom);
	if (!op->sb.clean) {
		finding(op, UST_BS_FSCK_INFO, UST_BS_FSCK_DIRTY,
			"the store was not unloaded cleanly: the persisted bitmaps are stale and are "
			"not checked; the next load rebuilds them from the metadata (9.3)");
	}
	return true;
}

/* ---- bitmaps ------------------------------------------------------------------------------------- */

static uint64_t bm_bytes(const struct ust_bs_region *r)
{
	return (uint64_t)r->pages * UST_BS_PAGE_SIZE;
}

static bool past_end_clear(const uint8_t *bm, uint64_t count, uint64_t bytes)
{
	uint64_t i;

	for (i = count; i < bytes * 8 && (i % 8) != 0; i++) {
		if (bit_get(bm, i)) {
			return false;
		}
	}
	for (i = (i + 7) / 8; i < bytes; i++) {
		if (bm[i] != 0) {
			return false;
		}
	}
	return true;
}

static void check_bitmaps(struct fsck_op *op)
{
	const struct ust_bs_super *sb = &op->sb;
	struct ust_bs_fsck_finding *f;
	uint64_t c, sum[3];
	const uint8_t *maps[3];
	const struct ust_bs_region *regs[3] = {&sb->cluster_bitmap, &sb->page_bitmap,
					       &sb->blobid_bitmap};
	const uint64_t want[3] = {sb->cluster_bitmap_csum, sb->page_bitmap_csum,
				  sb->blobid_bitmap_csum};
	const uint64_t counts[3] = {sb->total_clusters, sb->md_pool.pages, sb->max_blobs};
	static const char *const names[3] = {"used-cluster", "used-page", "used-blobid"};
	int i;

	if (op->bm_io != 0) {
		finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_IO_ERROR,
			"bitmaps unreadable: %s; the next load rebuilds them", strerror(-op->bm_io));
		return;
	}
	maps[0] = op->cbm;
	maps[1] = op->pbm;
	maps[2] = op->bbm;
	for (i = 0; i < 3; i++) {
		sum[i] = ust_bs_fmt_region_checksum(maps[i], bm_bytes(regs[i]));
		if (sum[i] != want[i]) {
			f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_BITMAP_CHECKSUM,
				    "%s bitmap (pages %u..%u): checksum 0x%016" PRIx64 ", superblock says "
				    "0x%016" PRIx64 "; the loader will not trust it and rebuilds",
				    names[i], regs[i]->start, regs[i]->start + regs[i]->pages - 1,
				    sum[i], want[i]);
			f->page = regs[i]->start;
			f->count = regs[i]->pages;
			continue;
		}
		if (!past_end_clear(maps[i], counts[i], bm_bytes(regs[i]))) {
			f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_BITMAP_RANGE,
				    "%s bitmap has bits set past its %" PRIu64 " entries", names[i],
				    counts[i]);
			f->page = regs[i]->start;
		}
	}
	for (c = 0; c < sb->md_clusters && sum[0] == want[0]; c++) {
		if (!bit_get(op->cbm, c)) {
			f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_BITMAP_RANGE,
				    "metadata cluster %" PRIu64 " is marked free", c);
			f->cluster = c;
			f->count = 1;
		}
	}
	/* Checksums right: the loader trusts them, so they must match the metadata. */
	op->bitmaps_ok = sum[0] == want[0] && sum[1] == want[1] && sum[2] == want[2];
}

/* ---- per-slot records -------------------------------------------------------------------------- */

static struct fsck_blob *blob_new(struct fsck_op *op, uint32_t slot, uint64_t id,
				  enum blob_state state)
{
	struct fsck_blob *b, *grown;

	if (op->nblobs == op->blobs_cap) {
		op->blobs_cap = op->blobs_cap ? op->blobs_cap * 2 : 64;
		grown = realloc(op->blobs, op->blobs_cap * sizeof(*grown));
		if (grown == NULL) {
			op->rc = -ENOMEM;
			return NULL;
		}
		op->blobs = grown;
	}
	b = &op->blobs[op->nblobs++];
	memset(b, 0, sizeof(*b));
	b->slot = slot;
	b->id = id;
	b->state = state;
	return b;
}

static void blob_clear(struct fsck_blob *b)
{
	free(b->map);
	free(b->pages);
	b->map = NULL;
	b->pages = NULL;
}

/* Records are appended in slot order: binary search. */
static struct fsck_blob *blob_at_slot(struct fsck_op *op, uint32_t slot)
{
	size_t lo = 0, hi = op->nblobs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (op->blobs[mid].slot == slot) {
			return &op->blobs[mid];
		}
		if (op->blobs[mid].slot < slot) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return NULL;
}

static int map_add(struct fsck_blob *b, uint64_t index, uint32_t cluster)
{
	struct map_entry *grown;

	if (b->nmap == b->map_cap) {
		b->map_cap = b->map_cap ? b->map_cap * 2 : 16;
		grown = realloc(b->map, b->map_cap * sizeof(*grown));
		if (grown == NULL) {
			return -ENOMEM;
		}
		b->map = grown;
	}
	b->map[b->nmap].index = index;
	b->map[b->nmap].cluster = cluster;
	b->nmap++;
	return 0;
}

/* ---- soft claims: what a damaged slot may own, so that nothing of it is called leaked ---------- */

static void soft_cluster(struct fsck_op *op, uint64_t c)
{
	if (c < op->sb.total_clusters) {
		bit_set(op->soft_clusters, c);
	}
}

static void soft_page(struct fsck_op *op, uint32_t page)
{
	if (page >= op->sb.md_pool.start && page - op->sb.md_pool.start < op->sb.md_pool.pages) {
		bit_set(op->soft_pages, page - op->sb.md_pool.start);
	}
}

/* Everything a validated root or chain page references. */
static void soft_claim_desc_page(struct fsck_op *op, const uint8_t *page)
{
	struct ust_bs_desc d;
	uint32_t cursor = 0, i, k;

	while (ust_bs_fmt_desc_next(page, &cursor, &d) == 1) {
		for (i = 0; i < ust_bs_fmt_desc_count(&d); i++) {
			if (d.type == UST_BS_DESC_EXTENT_RLE) {
				struct ust_bs_extent_run run;

				ust_bs_fmt_desc_run(&d, i, &run);
				for (k = 0; run.cluster != 0 && k < run.count &&
					    (uint64_t)run.cluster + k < op->sb.total_clusters; k++) {
					soft_cluster(op, (uint64_t)run.cluster + k);
				}
			} else {
				struct ust_bs_page_ref ref;

				ust_bs_fmt_desc_page_ref(&d, i, &ref);
				if (ref.page != 0) {
					soft_page(op, ref.page);
				}
			}
		}
	}
}

/* A damaged slot keeps what its readable roots and the tree read so far reference. */
static void soft_claim_slot(struct fsck_op *op)
{
	struct fsck_tree *t = &op->tree;
	uint32_t clusters[UST_BS_EXTENTS_PER_PAGE];
	struct ust_bs_page_hdr h;
	uint32_t i, k, n;
	int half;

	op->owners_unknown = true;
	for (half = 0; half < 2; half++) {
		const uint8_t *page = op->roots + ((size_t)(op->slot - op->base) * 2 + (size_t)half) *
						  UST_BS_PAGE_SIZE;

		if (op->drc[half] == 0 && !(op->r[half].flags & UST_BS_BLOB_TOMBSTONE)) {
			soft_claim_desc_page(op, page);
		} else if (op->drc[half] != 0 && op->drc[half] != -ENODATA &&
			   rd32le(page) == UST_BS_MAGIC &&
			   rd16le(page + offsetof(struct ust_bs_disk_page_hdr, type)) == UST_BS_PAGE_ROOT) {
			/*
			 * A damaged root may still name what the blob owns. The walk is
			 * bounds-checked, and what it finds only keeps space from being
			 * called leaked, so unverified values can hide a leak, never
			 * free anything.
			 */
			soft_claim_desc_page(op, page);
		}
	}
	for (i = 0; t->chain != NULL && i < t->nchain; i++) {
		if (t->chain_rc[i] == 0 &&
		    ust_bs_fmt_chain_decode(t->chain + (size_t)i * UST_BS_PAGE_SIZE, &op->geom, &h,
					    NULL) == 0) {
			soft_claim_desc_page(op, t->chain + (size_t)i * UST_BS_PAGE_SIZE);
		}
	}
	for (i = 0; t->ext != NULL && i < t->nextent; i++) {
		if (t->ext_rc[i] == 0 &&
		    ust_bs_fmt_extent_decode(t->ext + (size_t)i * UST_BS_PAGE_SIZE, &op->geom, &h,
					     clusters, &n, NULL) == 0) {
			for (k = 0; k < n; k++) {
				if (clusters[k] != 0) {
					soft_cluster(op, clusters[k]);
				}
			}
		}
	}
}

/* ---- reading one candidate's tree ------------------------------------------------------------- */

static void tree_free(struct fsck_tree *t)
{
	page_free(t->chain);
	page_free(t->ext);
	free(t->ext_ref);
	free(t->ext_no);
	free(t->ext_rc);
	memset(t, 0, sizeof(*t));
}

static const uint8_t *chain_page(const struct fsck_tree *t, uint32_t i)
{
	return t->chain + (size_t)i * UST_BS_PAGE_SIZE;
}

/* Root and chain pages in descriptor order. */
static uint32_t desc_pages(const struct fsck_tree *t, const uint8_t **pages)
{
	uint32_t i;

	pages[0] = t->root;
	for (i = 0; i < t->nchain; i++) {
		pages[i + 1] = chain_page(t, i);
	}
	return t->nchain + 1;
}

static void tree_bad(struct fsck_tree *t, enum tree_verdict v, uint64_t page, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void tree_bad(struct fsck_tree *t, enum tree_verdict v, uint64_t page, const char *fmt, ...)
{
	va_list ap;

	t->verdict = v;
	t->bad_page = page;
	va_start(ap, fmt);
	vsnprintf(t->msg, sizeof(t->msg), fmt, ap);
	va_end(ap);
}

/* Start reading the chain pages of op->tree (already pointing at its root). */
static int tree_read_chain(struct fsck_op *op)
{
	struct fsck_tree *t = &op->tree;
	struct ust_bs_desc d;
	uint32_t cursor = 0, i;

	while (ust_bs_fmt_desc_next(t->root, &cursor, &d) == 1) {
		if (d.type != UST_BS_DESC_CHAIN) {
			continue;
		}
		t->nchain = ust_bs_fmt_desc_count(&d);
		for (i = 0; i < t->nchain; i++) {
			ust_bs_fmt_desc_page_ref(&d, i, &t->chain_ref[i]);
		}
	}
	if (t->nchain > 0) {
		t->chain = page_alloc(t->nchain);
		if (t->chain == NULL) {
			return -ENOMEM;
		}
	}
	for (i = 0; i < t->nchain; i++) {
		io_add(op, DEV_READ, (uint64_t)t->chain_ref[i].page * UST_BS_PAGE_SIZE, UST_BS_PAGE_SIZE,
		       t->chain + (size_t)i * UST_BS_PAGE_SIZE, &t->chain_rc[i]);
	}
	return 0;
}

static void tree_check_chain(struct fsck_op *op)
{
	struct fsck_tree *t = &op->tree;
	struct ust_bs_fmt_err err;
	struct ust_bs_page_hdr h;
	uint32_t i;
	int rc;

	for (i = 0; i < t->nchain; i++) {
		if (t->chain_rc[i] != 0) {
			tree_bad(t, TREE_IOERR, t->chain_ref[i].page, "page %u (chain page %u) unreadable: %s",
				 t->chain_ref[i].page, i + 1, strerror(-t->chain_rc[i]));
			return;
		}
		rc = ust_bs_fmt_chain_decode(chain_page(t, i), &op->geom, &h, &err);
		if (rc == 0) {
			rc = ust_bs_fmt_ref_check(&h, UST_BS_PAGE_CHAIN, t->hdr.hdr.blob_id, i + 1,
						  t->hdr.hdr.generation, t->chain_ref[i].checksum, &err);
		}
		if (rc != 0) {
			tree_bad(t, rc == -ENOTSUP ? TREE_UNSUPPORTED : TREE_INCOMPLETE,
				 t->chain_ref[i].page, "page %u (chain page %u): %s",
				 t->chain_ref[i].page, i + 1, err.msg);
			return;
		}
	}
}

/* Collect the extent page references of the tree and start reading them. */
static int tree_read_extents(struct fsck_op *op)
{
	struct fsck_tree *t = &op->tree;
	const uint8_t *pages[UST_BS_MAX_CHAIN_PAGES + 1];
	uint32_t np = desc_pages(t, pages), p, i, pass, n = 0;
	struct ust_bs_desc d;
	uint32_t cursor;

	for (pass = 0; pass < 2; pass++) {
		n = 0;
		for (p = 0; p < np; p++) {
			cursor = 0;
			while (ust_bs_fmt_desc_next(pages[p], &cursor, &d) == 1) {
				if (d.type != UST_BS_DESC_EXTENT_TABLE) {
					continue;
				}
				for (i = 0; i < ust_bs_fmt_desc_count(&d); i++) {
					struct ust_bs_page_ref ref;

					ust_bs_fmt_desc_page_ref(&d, i, &ref);
					if (ref.page == 0) {
						continue;
					}
					if (pass == 1) {
						t->ext_ref[n] = ref;
						t->ext_no[n] = ust_bs_fmt_desc_first(&d) + i;
					}
					n++;
				}
			}
		}
		if (pass == 0) {
			if (n == 0) {
				break;
			}
			t->ext_ref = calloc(n, sizeof(*t->ext_ref));
			t->ext_no = calloc(n, sizeof(*t->ext_no));
			t->ext_rc = calloc(n, sizeof(*t->ext_rc));
			t->ext = page_alloc(n);
			if (t->ext_ref == NULL || t->ext_no == NULL || t->ext_rc == NULL || t->ext == NULL) {
				return -ENOMEM;
			}
		}
	}
	t->nextent = n;
	for (i = 0; i < n; i++) {
		io_add(op, DEV_READ, (uint64_t)t->ext_ref[i].page * UST_BS_PAGE_SIZE, UST_BS_PAGE_SIZE,
		       t->ext + (size_t)i * UST_BS_PAGE_SIZE, &t->ext_rc[i]);
	}
	return 0;
}

static void tree_check_extents(struct fsck_op *op)
{
	struct fsck_tree *t = &op->tree;
	uint32_t clusters[UST_BS_EXTENTS_PER_PAGE];
	struct ust_bs_fmt_err err;
	struct ust_bs_page_hdr h;
	uint32_t i, n;
	int rc;

	for (i = 0; i < t->nextent; i++) {
		if (t->ext_rc[i] != 0) {
			tree_bad(t, TREE_IOERR, t->ext_ref[i].page,
				 "page %u (extent page %" PRIu64 ") unreadable: %s", t->ext_ref[i].page,
				 t->ext_no[i], strerror(-t->ext_rc[i]));
			return;
		}
		rc = ust_bs_fmt_extent_decode(t->ext + (size_t)i * UST_BS_PAGE_SIZE, &op->geom, &h,
					      clusters, &n, &err);
		if (rc == 0) {
			rc = ust_bs_fmt_ref_check(&h, UST_BS_PAGE_EXTENT, t->hdr.hdr.blob_id,
						  (uint32_t)t->ext_no[i], t->hdr.hdr.generation,
						  t->ext_ref[i].checksum, &err);
		}
		if (rc != 0) {
			tree_bad(t, rc == -ENOTSUP ? TREE_UNSUPPORTED : TREE_INCOMPLETE,
				 t->ext_ref[i].page, "page %u (extent page %" PRIu64 "): %s",
				 t->ext_ref[i].page, t->ext_no[i], err.msg);
			return;
		}
	}
}

/* ---- assembling a complete tree: the whole-blob rules (8.4) ------------------------------------- */

struct xname {
	const uint8_t *name;
	uint16_t len;
	bool internal;
};

struct assembly {
	struct fsck_op *op;
	struct fsck_blob *b;
	const struct fsck_tree *t;
	uint64_t rle_pos;
	int64_t last_extent_no;
	bool open;        /* a value being assembled from fragments */
	struct xname cur;
	uint32_t cur_len, cur_filled;
	struct xname *names;
	size_t nnames;
	char *msg;
	size_t msglen;
};

static int asm_bad(struct assembly *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int asm_bad(struct assembly *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->msg, a->msglen, fmt, ap);
	va_end(ap);
	return -EUCLEAN;
}

static int asm_rle(struct assembly *a, const struct ust_bs_desc *d)
{
	uint64_t first = ust_bs_fmt_desc_first(d), pos = first;
	uint32_t i, k;

	if (a->b->flags & UST_BS_BLOB_EXTENT_PAGES) {
		return asm_bad(a, "run list in a blob that uses extent pages");
	}
	if (first != a->rle_pos) {
		return asm_bad(a, "run lists are not contiguous: one starts at blob cluster %" PRIu64
			       ", the previous ended at %" PRIu64, first, a->rle_pos);
	}
	for (i = 0; i < ust_bs_fmt_desc_count(d); i++) {
		struct ust_bs_extent_run run;

		ust_bs_fmt_desc_run(d, i, &run);
		if (pos > a->b->num_clusters || run.count > a->b->num_clusters - pos) {
			return asm_bad(a, "run list ends past the blob's %" PRIu64 " clusters",
				       a->b->num_clusters);
		}
		for (k = 0; run.cluster != 0 && k < run.count; k++) {
			if (map_add(a->b, pos + k, run.cluster + k) != 0) {
				return -ENOMEM;
			}
		}
		pos += run.count;
	}
	a->rle_pos = pos;
	return 0;
}

static const uint8_t *extent_of(const struct fsck_tree *t, uint32_t page, uint64_t no)
{
	uint32_t i;

	for (i = 0; i < t->nextent; i++) {
		if (t->ext_ref[i].page == page && t->ext_no[i] == no) {
			return t->ext + (size_t)i * UST_BS_PAGE_SIZE;
		}
	}
	return NULL;
}

static int asm_table(struct assembly *a, const struct ust_bs_desc *d)
{
	uint64_t first = ust_bs_fmt_desc_first(d), no, base, want;
	uint32_t clusters[UST_BS_EXTENTS_PER_PAGE];
	struct ust_bs_page_hdr h;
	const uint8_t *page;
	uint32_t i, k, n;

	if (!(a->b->flags & UST_BS_BLOB_EXTENT_PAGES)) {
		return asm_bad(a, "extent table in a blob that uses run lists");
	}
	if ((int64_t)first <= a->last_extent_no) {
		return asm_bad(a, "extent page numbers do not increase (%" PRIu64 " after %" PRId64 ")",
			       first, a->last_extent_no);
	}
	for (i = 0; i < ust_bs_fmt_desc_count(d); i++) {
		struct ust_bs_page_ref ref;

		ust_bs_fmt_desc_page_ref(d, i, &ref);
		no = first + i;
		a->last_extent_no = (int64_t)no;
		base = no * UST_BS_EXTENTS_PER_PAGE;
		if (base >= a->b->num_clusters) {
			return asm_bad(a, "extent page %" PRIu64 " lies past the blob's %" PRIu64
				       " clusters", no, a->b->num_clusters);
		}
		if (ref.page == 0) {
			continue;
		}
		page = extent_of(a->t, ref.page, no);
		if (page == NULL ||
		    ust_bs_fmt_extent_decode(page, &a->op->geom, &h, clusters, &n, NULL) != 0) {
			return asm_bad(a, "extent page %" PRIu64 " (page %u) missing from the tree", no,
				       ref.page);
		}
		want = a->b->num_clusters - base;
		if (want > UST_BS_EXTENTS_PER_PAGE) {
			want = UST_BS_EXTENTS_PER_PAGE;
		}
		if (n != want) {
			return asm_bad(a, "extent page %" PRIu64 " (page %u) maps %u clusters, should "
				       "map %" PRIu64, no, ref.page, n, want);
		}
		for (k = 0; k < n; k++) {
			if (clusters[k] != 0 && map_add(a->b, base + k, clusters[k]) != 0) {
				return -ENOMEM;
			}
		}
	}
	return 0;
}

static int asm_xattr(struct assembly *a, const struct ust_bs_desc *d)
{
	struct ust_bs_xattr_frag f;
	struct xname *grown;
	bool internal;
	size_t i;

	ust_bs_fmt_desc_xattr(d, &f);
	internal = (f.xflags & UST_BS_XATTR_F_INTERNAL) != 0;
	if (a->open) {
		if (a->cur.internal != internal || a->cur.len != f.name_len ||
		    memcmp(a->cur.name, f.name, f.name_len) != 0 || a->cur_len != f.value_len ||
		    f.frag_offset != a->cur_filled) {
			return asm_bad(a, "xattr \"%.*s\": value fragments are not contiguous",
				       (int)a->cur.len, (const char *)a->cur.name);
		}
	} else {
		if (f.frag_offset != 0) {
			return asm_bad(a, "xattr \"%.*s\": first fragment starts at offset %u",
				       (int)f.name_len, (const char *)f.name, f.frag_offset);
		}
		for (i = 0; i < a->nnames; i++) {
			if (a->names[i].internal == internal && a->names[i].len == f.name_len &&
			    memcmp(a->names[i].name, f.name, f.name_len) == 0) {
				return asm_bad(a, "xattr \"%.*s\" appears twice", (int)f.name_len,
					       (const char *)f.name);
			}
		}
		grown = realloc(a->names, (a->nnames + 1) * sizeof(*grown));
		if (grown == NULL) {
			return -ENOMEM;
		}
		a->names = grown;
		a->cur.name = f.name;
		a->cur.len = f.name_len;
		a->cur.internal = internal;
		a->names[a->nnames++] = a->cur;
		a->cur_len = f.value_len;
		a->cur_filled = 0;
		a->open = true;
	}
	a->cur_filled += f.frag_len;
	if (a->cur_filled == a->cur_len) {
		a->open = false;
	}
	return 0;
}

static int asm_desc(struct assembly *a, const struct ust_bs_desc *d)
{
	if (d->type == UST_BS_DESC_CHAIN) {
		return 0; /* structure, not content */
	}
	if (a->open && d->type != UST_BS_DESC_XATTR) {
		return asm_bad(a, "xattr \"%.*s\": value fragments are not consecutive",
			       (int)a->cur.len, (const char *)a->cur.name);
	}
	switch (d->type) {
	case UST_BS_DESC_EXTENT_RLE:
		return asm_rle(a, d);
	case UST_BS_DESC_EXTENT_TABLE:
		return asm_table(a, d);
	case UST_BS_DESC_XATTR:
		return asm_xattr(a, d);
	case UST_BS_DESC_PENDING_OP:
		a->b->has_pending = true;
		ust_bs_fmt_desc_pending(d, &a->b->pending);
		return 0;
	default:
		return 0; /* a compat descriptor of a newer writer */
	}
}

static int assemble(struct fsck_op *op, struct fsck_blob *b, char *msg, size_t msglen)
{
	const struct fsck_tree *t = &op->tree;
	const uint8_t *pages[UST_BS_MAX_CHAIN_PAGES + 1];
	struct assembly a = {.op = op, .b = b, .t = t, .last_extent_no = -1, .msg = msg,
			     .msglen = msglen};
	uint32_t np = desc_pages(t, pages), p, i, cursor;
	struct ust_bs_desc d;
	int rc = 0;

	b->flags = t->hdr.flags;
	b->num_clusters = t->hdr.num_clusters;
	b->parent_id = t->hdr.parent_id;
	b->gen = t->hdr.hdr.generation;
	for (p = 0; p < np && rc == 0; p++) {
		cursor = 0;
		while ((rc = ust_bs_fmt_desc_next(pages[p], &cursor, &d)) == 1) {
			rc = asm_desc(&a, &d);
			if (rc != 0) {
				break;
			}
		}
		if (rc < 0 && rc != -ENOMEM && msg[0] == '\0') {
			asm_bad(&a, "malformed descriptor area in %s", p == 0 ? "the root" : "a chain page");
		}
	}
	free(a.names);
	if (rc != 0) {
		return rc;
	}
	if (a.open) {
		return asm_bad(&a, "xattr \"%.*s\": value is missing fragments", (int)a.cur.len,
			       (const char *)a.cur.name);
	}
	if (!(b->flags & UST_BS_BLOB_THIN) && b->nmap != b->num_clusters) {
		return asm_bad(&a, "a thick blob with %" PRIu64 " of its %" PRIu64
			       " clusters unallocated", b->num_clusters - b->nmap, b->num_clusters);
	}
	b->npages = t->nchain + t->nextent;
	b->pages = calloc(b->npages ? b->npages : 1, sizeof(uint32_t));
	if (b->pages == NULL) {
		return -ENOMEM;
	}
	for (i = 0; i < t->nchain; i++) {
		b->pages[i] = t->chain_ref[i].page;
	}
	for (i = 0; i < t->nextent; i++) {
		b->pages[t->nchain + i] = t->ext_ref[i].page;
	}
	return 0;
}

/* ---- slots -------------------------------------------------------------------------------------- */

static const uint8_t *half_page(const struct fsck_op *op, int half)
{
	return op->roots + ((size_t)(op->slot - op->base) * 2 + (size_t)half) * UST_BS_PAGE_SIZE;
}

static uint64_t half_page_no(const struct fsck_op *op, int half)
{
	return (uint64_t)op->sb.root_slots.start + 2ull * op->slot + (uint64_t)half;
}

/* The id the slot is known by: a valid half's, else an unverified header's. */
static uint64_t slot_blob_id(const struct fsck_op *op)
{
	int h;

	for (h = 0; h < 2; h++) {
		if (op->drc[h] == 0) {
			return op->r[h].hdr.blob_id;
		}
	}
	for (h = 0; h < 2; h++) {
		uint64_t id = raw_blob_id(half_page(op, h));

		if (id != 0 && ust_bs_blobid_slot(id) == op->slot) {
			return id;
		}
	}
	return 0;
}

static struct ust_bs_fsck_finding *slot_finding(struct fsck_op *op, enum ust_bs_fsck_severity sev,
						enum ust_bs_fsck_kind kind, int half, const char *fmt,
						...) __attribute__((format(printf, 5, 6)));

static struct ust_bs_fsck_finding *slot_finding(struct fsck_op *op, enum ust_bs_fsck_severity sev,
						enum ust_bs_fsck_kind kind, int half, const char *fmt,
						...)
{
	struct ust_bs_fsck_finding *f;
	char text[240];
	uint64_t id = slot_blob_id(op);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (id != 0) {
		f = finding(op, sev, kind, "blob 0x%" PRIx64 " (slot %u): %s", id, op->slot, text);
	} else {
		f = finding(op, sev, kind, "slot %u: %s", op->slot, text);
	}
	f->blob_id = id;
	f->slot = op->slot;
	if (half >= 0) {
		f->page = half_page_no(op, half);
	}
	if (sev == UST_BS_FSCK_ERROR) {
		op->slot_damage = true;
	}
	return f;
}

static void decode_halves(struct fsck_op *op)
{
	uint32_t idx;
	int h;

	for (h = 0; h < 2; h++) {
		idx = (op->slot - op->base) * 2 + (uint32_t)h;
		op->tried[h] = false;
		if (op->root_rc[idx] != 0) {
			op->drc[h] = -EIO;
			op->err[h].kind = UST_BS_FMT_OK;
			snprintf(op->err[h].msg, sizeof(op->err[h].msg), "unreadable: %s",
				 strerror(-op->root_rc[idx]));
			continue;
		}
		op->drc[h] = ust_bs_fmt_root_decode(half_page(op, h), &op->geom, &op->r[h], &op->err[h]);
		if (op->drc[h] != 0) {
			continue;
		}
		/* The codec cannot know where the page sits; fsck can. */
		if (ust_bs_blobid_slot(op->r[h].hdr.blob_id) != op->slot || op->r[h].hdr.seq != (uint32_t)h) {
			op->drc[h] = -EUCLEAN;
			op->err[h].kind = UST_BS_FMT_MISMATCH;
			snprintf(op->err[h].msg, sizeof(op->err[h].msg),
				 "a valid root of blob 0x%" PRIx64 " half %c sits in slot %u half %c",
				 op->r[h].hdr.blob_id, 'A' + (int)op->r[h].hdr.seq, op->slot, 'A' + h);
		}
	}
}

static bool half_invalid(const struct fsck_op *op, int h)
{
	return op->drc[h] != 0 && op->drc[h] != -ENODATA;
}

/* An invalid half that is damage (not a torn uncommitted write): name it. */
static void report_bad_half(struct fsck_op *op, int h)
{
	if (op->drc[h] == -EIO) {
		slot_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_IO_ERROR, h, "root half %c %s",
			     'A' + h, op->err[h].msg);
	} else if (op->err[h].kind == UST_BS_FMT_MISMATCH) {
		slot_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_ROOT_MISPLACED, h, "root half %c: %s",
			     'A' + h, op->err[h].msg);
	} else {
		slot_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_ROOT_DAMAGED, h, "root half %c: %s",
			     'A' + h, op->err[h].msg);
	}
}

/* The slot has a current version `current` (a blob or a tombstone): judge the other half. */
static void report_other_half(struct fsck_op *op, int current)
{
	int h = 1 - current;

	if (op->drc[h] == -ENODATA) {
		return;
	}
	if (half_invalid(op, h)) {
		if (op->sb.clean || op->drc[h] == -EIO || op->err[h].kind == UST_BS_FMT_MISMATCH) {
			/* After a clean shutdown every non-blank half is valid (9.2). */
			report_bad_half(op, h);
		} else {
			slot_finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_ROOT_UNCOMMITTED, h,
				     "root half %c (%s) is taken for an update that never committed; "
				     "the load clears it (9.3)", 'A' + h, op->err[h].msg);
		}
		return;
	}
	if (op->r[h].hdr.generation > op->r[current].hdr.generation) {
		/* Tried first and found incomplete (dirty stores only get here). */
		slot_finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_ROOT_UNCOMMITTED, h,
			     "%s: an update that never committed; the load uses half %c (generation %"
			     PRIu64 ") and clears this one (9.3)", op->slot_msg, 'A' + current,
			     op->r[current].hdr.generation);
	}
}

static void conclude_damaged(struct fsck_op *op, enum blob_state state)
{
	struct fsck_blob *b = blob_new(op, op->slot, slot_blob_id(op), state);

	if (b == NULL) {
		return;
	}
	soft_claim_slot(op);
	if (state == BLOB_UNSUPPORTED) {
		op->rep->unsupported_blobs++;
		set_unsafe(op, "blob 0x%" PRIx64 " uses features this fsck does not know", b->id);
	} else {
		set_unsafe(op, "blob 0x%" PRIx64 " (slot %u) is damaged", b->id, op->slot);
	}
}

/* No candidate left: free (an interrupted create) or damaged (9.3 step 3). */
static void conclude_without_version(struct fsck_op *op)
{
	bool blank0 = op->drc[0] == -ENODATA, blank1 = op->drc[1] == -ENODATA;
	bool io = op->drc[0] == -EIO || op->drc[1] == -EIO || op->tree.verdict == TREE_IOERR;
	int h;

	if (!op->sb.clean && !io && (blank0 || blank1)) {
		h = blank0 ? 1 : 0;
		slot_finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_ROOT_UNCOMMITTED, h,
			     "half %c (%s) is taken for a create that never committed: the load "
			     "frees the slot", 'A' + h, op->drc[h] == 0 ? op->slot_msg : op->err[h].msg);
		return;
	}
	for (h = 0; h < 2; h++) {
		if (half_invalid(op, h)) {
			report_bad_half(op, h);
		}
	}
	if (op->slot_msg[0] != '\0') {
		/* Valid halves whose trees are incomplete (dirty store). */
		slot_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_TREE_INCOMPLETE, -1,
			     "no complete version: %s", op->slot_msg);
	}
	conclude_damaged(op, BLOB_DAMAGED);
}

static int pick_candidate(const struct fsck_op *op)
{
	int best = -1, h;

	for (h = 0; h < 2; h++) {
		if (op->drc[h] != 0 || op->tried[h]) {
			continue;
		}
		if (best < 0 || op->r[h].hdr.generation > op->r[best].hdr.generation) {
			best = h;
		}
	}
	return best;
}

static void next_slot(struct fsck_op *op)
{
	tree_free(&op->tree);
	op->slot++;
	op->state = FS_SLOT;
}

/* FS_SLOT: decode both halves and decide what to read. */
static void slot_begin(struct fsck_op *op)
{
	int h;

	op->slot_damage = false;
	op->slot_msg[0] = '\0';
	decode_halves(op);
	if (op->drc[0] == -ENODATA && op->drc[1] == -ENODATA) {
		next_slot(op);
		return;
	}
	for (h = 0; h < 2; h++) {
		if (op->drc[h] == -ENOTSUP) {
			slot_finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_UNSUPPORTED, h,
				     "root half %c: %s: the blob is kept but cannot be checked",
				     'A' + h, op->err[h].msg);
			conclude_damaged(op, BLOB_UNSUPPORTED);
			next_slot(op);
			return;
		}
	}
	op->state = FS_CANDIDATE;
}

/* FS_CANDIDATE: take the next half to try; returns 1 when I/O was issued. */
static int candidate(struct fsck_op *op)
{
	int cand = pick_candidate(op);

	if (cand < 0) {
		conclude_without_version(op);
		next_slot(op);
		return 0;
	}
	if (op->r[cand].flags & UST_BS_BLOB_TOMBSTONE) {
		report_other_half(op, cand);
		if (op->slot_damage) {
			conclude_damaged(op, BLOB_DAMAGED);
		}
		next_slot(op);
		return 0;
	}
	tree_free(&op->tree);
	op->tried[cand] = true;
	op->tree.root = half_page(op, cand);
	op->tree.hdr = op->r[cand];
	op->tree.half = cand;
	io_begin(op);
	op->state = FS_TREE_CHAIN;
	if (tree_read_chain(op) != 0) {
		op->rc = -ENOMEM;
	}
	return io_end(op);
}

/* The candidate's tree is not complete: say why, then try the older half or give up. */
static void candidate_incomplete(struct fsck_op *op)
{
	struct fsck_tree *t = &op->tree;
	struct ust_bs_fsck_finding *f;
	size_t len = strlen(op->slot_msg);

	if (t->verdict == TREE_UNSUPPORTED) {
		f = slot_finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_UNSUPPORTED, -1,
				 "root half %c: %s: the blob is kept but cannot be checked",
				 'A' + t->half, t->msg);
		f->page = t->bad_page;
		conclude_damaged(op, BLOB_UNSUPPORTED);
		next_slot(op);
		return;
	}
	if (t->verdict == TREE_IOERR || op->sb.clean) {
		/* A clean store must have a complete newest version (9.2): no rollback. */
		f = slot_finding(op, UST_BS_FSCK_ERROR,
				 t->verdict == TREE_IOERR ? UST_BS_FSCK_IO_ERROR :
				 UST_BS_FSCK_TREE_INCOMPLETE, -1, "root half %c (generation %" PRIu64
				 "): %s", 'A' + t->half, t->hdr.hdr.generation, t->msg);
		f->page = t->bad_page;
		if (half_invalid(op, 1 - t->half)) {
			report_bad_half(op, 1 - t->half);
		}
		conclude_damaged(op, BLOB_DAMAGED);
		next_slot(op);
		return;
	}
	snprintf(op->slot_msg + len, sizeof(op->slot_msg) - len, "%shalf %c (generation %" PRIu64
		 ") has an incomplete tree: %s", len ? "; " : "", 'A' + t->half,
		 t->hdr.hdr.generation, t->msg);
	op->state = FS_CANDIDATE;
}

/* The candidate's tree is complete: assemble it and record the blob. */
static void candidate_complete(struct fsck_op *op)
{
	struct fsck_tree *t = &op->tree;
	struct fsck_blob *b;
	char msg[200] = "";
	uint64_t i;
	int rc;

	b = blob_new(op, op->slot, t->hdr.hdr.blob_id, BLOB_LIVE);
	if (b == NULL) {
		return;
	}
	rc = assemble(op, b, msg, sizeof(msg));
	if (rc == -ENOMEM) {
		op->rc = rc;
		return;
	}
	if (rc != 0) {
		blob_clear(b);
		op->nblobs--;
		slot_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_BLOB_INVALID, t->half,
			     "generation %" PRIu64 ": %s", t->hdr.hdr.generation, msg);
		conclude_damaged(op, BLOB_DAMAGED);
		next_slot(op);
		return;
	}
	report_other_half(op, t->half);
	if (op->slot_damage) {
		/* Clean store with a damaged half: the blob is isolated at load (9.5). */
		b = &op->blobs[op->nblobs - 1];
		b->state = BLOB_DAMAGED;
		soft_claim_slot(op);
		for (i = 0; i < b->nmap; i++) {
			soft_cluster(op, b->map[i].cluster);
		}
		for (i = 0; i < b->npages; i++) {
			soft_page(op, b->pages[i]);
		}
		blob_clear(b);
		b->nmap = 0;
		b->npages = 0;
		set_unsafe(op, "blob 0x%" PRIx64 " (slot %u) is damaged", b->id, b->slot);
	}
	next_slot(op);
}

/* ---- cross checks over all blobs ------------------------------------------------------------------- */

static struct fsck_blob *blob_by_id(struct fsck_op *op, uint64_t id)
{
	struct fsck_blob *b = blob_at_slot(op, ust_bs_blobid_slot(id));

	return b != NULL && b->id == id ? b : NULL;
}

static void resolve_pending(struct fsck_op *op)
{
	struct ust_bs_fsck_finding *f;
	struct fsck_blob *b, *other;
	size_t i;

	for (i = 0; i < op->nblobs; i++) {
		b = &op->blobs[i];
		if (b->state != BLOB_LIVE || !b->has_pending) {
			continue;
		}
		other = blob_by_id(op, b->pending.other_blob_id);
		if (b->pending.op == UST_BS_OP_SNAPSHOT_OF) {
			if (other != NULL && other->state == BLOB_LIVE && other->parent_id == b->id) {
				f = finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_PENDING_OP,
					    "snapshot 0x%" PRIx64 " of blob 0x%" PRIx64 " happened; its "
					    "last step (dropping the intent) is pending and the load "
					    "finishes it", b->id, other->id);
			} else if (other != NULL && other->state != BLOB_LIVE) {
				f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_PENDING_OP,
					    "snapshot 0x%" PRIx64 " of blob 0x%" PRIx64 " is pending and "
					    "cannot be resolved: that blob is damaged", b->id, other->id);
			} else {
				b->dropped = true;
				f = finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_PENDING_OP,
					    "snapshot 0x%" PRIx64 " of blob 0x%" PRIx64 " never "
					    "completed; the load deletes the snapshot and the blob keeps "
					    "its clusters", b->id, b->pending.other_blob_id);
			}
		} else {
			if (other != NULL && other->state == BLOB_LIVE) {
				other->dropped = true;
			}
			f = finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_PENDING_OP,
				    "blob 0x%" PRIx64 " took over snapshot 0x%" PRIx64 "; the load "
				    "finishes the merge (deletes the snapshot, drops the intent)", b->id,
				    b->pending.other_blob_id);
		}
		f->blob_id = b->id;
		f->slot = b->slot;
		if (op->sb.clean) {
			/* Clean shutdown finishes every pending operation first (9.2). */
			f->severity = UST_BS_FSCK_ERROR;
			set_unsafe(op, "a pending operation on a clean store");
		}
	}
}

static void claim_all(struct fsck_op *op)
{
	struct ust_bs_fsck_finding *f;
	struct fsck_blob *b, *o;
	uint32_t me, owner, rel;
	uint64_t k;
	size_t i;

	for (i = 0; i < op->nblobs; i++) {
		b = &op->blobs[i];
		if (b->state != BLOB_LIVE || b->dropped) {
			continue;
		}
		me = b->slot + 1;
		for (k = 0; k < b->nmap; k++) {
			uint32_t c = b->map[k].cluster;

			owner = op->cluster_owner[c];
			if (owner == 0) {
				op->cluster_owner[c] = me;
				continue;
			}
			if (owner == me) {
				f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_CLUSTER_SHARED,
					    "blob 0x%" PRIx64 ": cluster %u is mapped twice in the blob "
					    "(again at blob cluster %" PRIu64 ")", b->id, c,
					    b->map[k].index);
			} else {
				o = blob_at_slot(op, owner - 1);
				f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_CLUSTER_SHARED,
					    "cluster %u is owned by blob 0x%" PRIx64 " and by blob 0x%"
					    PRIx64 " (its cluster %" PRIu64 ")", c, o != NULL ? o->id : 0,
					    b->id, b->map[k].index);
			}
			f->blob_id = b->id;
			f->slot = b->slot;
			f->cluster = c;
			f->count = 1;
			set_unsafe(op, "cluster %u is referenced twice", c);
		}
		for (k = 0; k < b->npages; k++) {
			rel = b->pages[k] - op->sb.md_pool.start;
			owner = op->page_owner[rel];
			if (owner == 0) {
				op->page_owner[rel] = me;
				continue;
			}
			o = blob_at_slot(op, owner - 1);
			f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_PAGE_SHARED,
				    "metadata page %u is referenced by blob 0x%" PRIx64 " and by blob 0x%"
				    PRIx64, b->pages[k], o != NULL ? o->id : 0, b->id);
			f->blob_id = b->id;
			f->slot = b->slot;
			f->page = b->pages[k];
			f->count = 1;
			set_unsafe(op, "metadata page %u is referenced twice", b->pages[k]);
		}
	}
}

static void check_parents(struct fsck_op *op)
{
	struct ust_bs_fsck_finding *f;
	struct fsck_blob *b, *p;
	uint32_t steps;
	size_t i;

	for (i = 0; i < op->nblobs; i++) {
		b = &op->blobs[i];
		if (b->state != BLOB_LIVE || b->dropped || b->parent_id == 0) {
			continue;
		}
		p = blob_by_id(op, b->parent_id);
		f = NULL;
		if (p == NULL || p->dropped) {
			f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_PARENT,
				    "blob 0x%" PRIx64 ": its parent 0x%" PRIx64 " does not exist%s",
				    b->id, b->parent_id, p != NULL ? " after the pending operation "
				    "is resolved" : "");
		} else if (p->state != BLOB_LIVE) {
			f = finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_PARENT,
				    "blob 0x%" PRIx64 ": its parent 0x%" PRIx64 " is damaged; reads of "
				    "clusters it does not hold itself will fail", b->id, b->parent_id);
		} else if (!(p->flags & UST_BS_BLOB_READ_ONLY)) {
			f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_PARENT,
				    "blob 0x%" PRIx64 ": its parent 0x%" PRIx64 " is not read-only",
				    b->id, b->parent_id);
		} else {
			/* Walk up: a chain longer than the number of blobs is a cycle. */
			for (steps = 0; p != NULL && p->parent_id != 0 && steps <= op->nblobs; steps++) {
				if (p->parent_id == b->id) {
					break;
				}
				p = blob_by_id(op, p->parent_id);
			}
			if (p != NULL && p->parent_id != 0) {
				f = finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_PARENT,
					    "blob 0x%" PRIx64 ": its chain of parents is a cycle", b->id);
			}
		}
		if (f != NULL) {
			f->blob_id = b->id;
			f->slot = b->slot;
		}
	}
}

enum run_unit {
	RUN_CLUSTERS,
	RUN_PAGES,
	RUN_SLOTS,
};

struct run_spec {
	enum run_unit unit;
	uint64_t n;
	bool (*used)(struct fsck_op *op, uint64_t i);
	bool (*refd)(struct fsck_op *op, uint64_t i);
	bool (*soft)(struct fsck_op *op, uint64_t i);
	enum ust_bs_fsck_kind leak_kind;
	enum ust_bs_fsck_kind unmarked_kind;
	uint64_t *leaked;
};

static void run_finding(struct fsck_op *op, const struct run_spec *s, bool leak, uint64_t start,
			uint64_t end)
{
	static const char *const what[] = {"cluster", "metadata page", "blob slot"};
	struct ust_bs_fsck_finding *f;
	uint64_t base = s->unit == RUN_PAGES ? op->sb.md_pool.start : 0;
	char range[64];

	if (end - start == 1) {
		snprintf(range, sizeof(range), "%s %" PRIu64, what[s->unit], base + start);
	} else {
		snprintf(range, sizeof(range), "%ss %" PRIu64 "-%" PRIu64, what[s->unit], base + start,
			 base + end - 1);
	}
	if (leak && op->owners_unknown) {
		f = finding(op, UST_BS_FSCK_WARNING, s->leak_kind,
			    "%s marked used but referenced by no readable blob: leaked, unless a "
			    "damaged blob owns %s", range, end - start == 1 ? "it" : "them");
		*s->leaked += end - start;
	} else if (leak) {
		f = finding(op, UST_BS_FSCK_ERROR, s->leak_kind,
			    "%s marked used but referenced by no blob (leaked)", range);
		*s->leaked += end - start;
	} else {
		f = finding(op, UST_BS_FSCK_ERROR, s->unmarked_kind,
			    "%s referenced but marked free: the store would hand %s out again", range,
			    end - start == 1 ? "it" : "them");
	}
	f->count = end - start;
	if (s->unit == RUN_CLUSTERS) {
		f->cluster = start;
	} else if (s->unit == RUN_PAGES) {
		f->page = base + start;
	} else {
		f->slot = (uint32_t)start;
	}
}

/* One finding per run of entries where the bitmap and the metadata disagree. */
static void report_runs(struct fsck_op *op, const struct run_spec *s)
{
	uint64_t i, start = 0;
	int cur, prev = 0;

	for (i = 0; i <= s->n; i++) {
		cur = 0;
		if (i < s->n) {
			bool u = s->used(op, i), r = s->refd(op, i);

			if (u && !r && !s->soft(op, i)) {
				cur = 1;
			} else if (!u && r) {
				cur = 2;
			}
		}
		if (cur == prev) {
			continue;
		}
		if (prev != 0) {
			run_finding(op, s, prev == 1, start, i);
		}
		start = i;
		prev = cur;
	}
}

static bool cl_used(struct fsck_op *op, uint64_t i)
{
	return bit_get(op->cbm, i);
}

static bool cl_refd(struct fsck_op *op, uint64_t i)
{
	return i < op->sb.md_clusters || op->cluster_owner[i] != 0;
}

static bool cl_soft(struct fsck_op *op, uint64_t i)
{
	return bit_get(op->soft_clusters, i);
}

static bool pg_used(struct fsck_op *op, uint64_t i)
{
	return bit_get(op->pbm, i);
}

static bool pg_refd(struct fsck_op *op, uint64_t i)
{
	return op->page_owner[i] != 0;
}

static bool pg_soft(struct fsck_op *op, uint64_t i)
{
	return bit_get(op->soft_pages, i);
}

static bool sl_used(struct fsck_op *op, uint64_t i)
{
	return bit_get(op->bbm, i);
}

static bool sl_refd(struct fsck_op *op, uint64_t i)
{
	struct fsck_blob *b = blob_at_slot(op, (uint32_t)i);

	return b != NULL && b->state == BLOB_LIVE && !b->dropped;
}

static bool sl_soft(struct fsck_op *op, uint64_t i)
{
	struct fsck_blob *b = blob_at_slot(op, (uint32_t)i);

	/* Damaged slots stay marked (9.5); dropped ones are freed by the load. */
	return b != NULL && (b->state != BLOB_LIVE || b->dropped);
}

static void compare_bitmaps(struct fsck_op *op)
{
	uint64_t leaked_slots = 0;
	const struct run_spec specs[3] = {
		{RUN_CLUSTERS, op->sb.total_clusters, cl_used, cl_refd, cl_soft,
		 UST_BS_FSCK_CLUSTER_LEAKED, UST_BS_FSCK_CLUSTER_UNMARKED, &op->rep->leaked_clusters},
		{RUN_PAGES, op->sb.md_pool.pages, pg_used, pg_refd, pg_soft, UST_BS_FSCK_PAGE_LEAKED,
		 UST_BS_FSCK_PAGE_UNMARKED, &op->rep->leaked_pages},
		{RUN_SLOTS, op->sb.max_blobs, sl_used, sl_refd, sl_soft, UST_BS_FSCK_SLOT_LEAKED,
		 UST_BS_FSCK_SLOT_UNMARKED, &leaked_slots},
	};
	int i;

	for (i = 0; i < 3; i++) {
		report_runs(op, &specs[i]);
	}
}

static void cross_checks(struct fsck_op *op)
{
	struct ust_bs_fsck_report *rep = op->rep;
	uint64_t i;
	size_t k;

	resolve_pending(op);
	claim_all(op);
	check_parents(op);
	for (k = 0; k < op->nblobs; k++) {
		if (op->blobs[k].state == BLOB_LIVE && !op->blobs[k].dropped) {
			rep->live_blobs++;
		} else if (op->blobs[k].state == BLOB_DAMAGED) {
			rep->damaged_blobs++;
		}
	}
	for (i = 0; i < op->sb.total_clusters; i++) {
		rep->referenced_clusters += op->cluster_owner[i] != 0;
	}
	for (i = 0; i < op->sb.md_pool.pages; i++) {
		rep->referenced_pages += op->page_owner[i] != 0;
	}
	if (op->sb.clean && op->bitmaps_ok) {
		compare_bitmaps(op);
	}
}

/* ---- repair ------------------------------------------------------------------------------------------ */

static bool is_bitmap_kind(enum ust_bs_fsck_kind kind)
{
	switch (kind) {
	case UST_BS_FSCK_BITMAP_CHECKSUM:
	case UST_BS_FSCK_BITMAP_RANGE:
	case UST_BS_FSCK_CLUSTER_LEAKED:
	case UST_BS_FSCK_PAGE_LEAKED:
	case UST_BS_FSCK_SLOT_LEAKED:
	case UST_BS_FSCK_CLUSTER_UNMARKED:
	case UST_BS_FSCK_PAGE_UNMARKED:
	case UST_BS_FSCK_SLOT_UNMARKED:
		return true;
	default:
		return false;
	}
}

static bool bitmap_findings(const struct fsck_op *op)
{
	size_t i;

	for (i = 0; i < op->rep->count; i++) {
		if (is_bitmap_kind(op->rep->findings[i].kind)) {
			return true;
		}
	}
	return false;
}

/* The bitmaps as the metadata says they are (format 6), in their regions' layout. */
static int build_bitmaps(struct fsck_op *op)
{
	const struct ust_bs_super *sb = &op->sb;
	uint64_t cb = bm_bytes(&sb->cluster_bitmap), pb = bm_bytes(&sb->page_bitmap);
	uint64_t bb = bm_bytes(&sb->blobid_bitmap), i;
	uint8_t *c, *p, *s;
	size_t k;

	op->newbm = page_alloc((cb + pb + bb) / UST_BS_PAGE_SIZE);
	if (op->newbm == NULL) {
		return -ENOMEM;
	}
	c = op->newbm;
	p = c + cb;
	s = p + pb;
	for (i = 0; i < sb->total_clusters; i++) {
		if (i < sb->md_clusters || op->cluster_owner[i] != 0) {
			bit_set(c, i);
		}
	}
	for (i = 0; i < sb->md_pool.pages; i++) {
		if (op->page_owner[i] != 0) {
			bit_set(p, i);
		}
	}
	for (k = 0; k < op->nblobs; k++) {
		if (op->blobs[k].state == BLOB_LIVE && !op->blobs[k].dropped) {
			bit_set(s, op->blobs[k].slot);
		}
	}
	return 0;
}

static void write_super(struct fsck_op *op, const struct ust_bs_super *src, bool backup, bool clean,
			uint8_t *page)
{
	struct ust_bs_super sb = *src;

	sb.hdr.seq = backup ? UST_BS_SUPER_BACKUP : UST_BS_SUPER_PRIMARY;
	sb.clean = clean;
	if (!clean) {
		sb.cluster_bitmap_csum = 0;
		sb.page_bitmap_csum = 0;
		sb.blobid_bitmap_csum = 0;
	}
	ust_bs_fmt_super_encode(&sb, page);
	io_add(op, DEV_WRITE, backup ? ust_bs_fmt_backup_offset(sb.bdev_size) : 0, UST_BS_PAGE_SIZE,
	       page, NULL);
}

static void repair_note(struct fsck_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void repair_note(struct fsck_op *op, const char *fmt, ...)
{
	struct ust_bs_fsck_finding *f;
	va_list ap;

	f = finding(op, UST_BS_FSCK_INFO, UST_BS_FSCK_REPAIR, "%s", "");
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
	va_end(ap);
}

/* Writes were issued; FS_FLUSH makes them durable, FS_FLUSHED records them, then `next`. */
static int repair_wait(struct fsck_op *op, enum repair_step step, enum fsck_state next)
{
	op->writing = step;
	op->after_flush = next;
	op->state = FS_FLUSH;
	return io_end(op);
}

/* FS_FLUSHED: what the writes now durable repaired. */
static void repair_durable(struct fsck_op *op)
{
	size_t i;

	op->rep->repairs++;
	switch (op->writing) {
	case REPAIR_PRIMARY:
		mark_repaired(op, UST_BS_FSCK_SUPER_PRIMARY);
		repair_note(op, "rewrote the primary superblock from the backup (generation %" PRIu64
			    ", not clean: the next load rebuilds the bitmaps)", op->sb.hdr.generation);
		break;
	case REPAIR_BACKUP:
		mark_repaired(op, UST_BS_FSCK_SUPER_BACKUP);
		mark_repaired(op, UST_BS_FSCK_SUPER_MISMATCH);
		repair_note(op, "rewrote the backup superblock at offset 0x%" PRIx64 " from the primary "
			    "(generation %" PRIu64 ")", ust_bs_fmt_backup_offset(op->sb.bdev_size),
			    op->sb.hdr.generation);
		break;
	case REPAIR_BITMAPS:
		op->rep->repairs--; /* counted with the primary that vouches for them */
		break;
	case REPAIR_BITMAP_SUPER:
		for (i = 0; i < op->rep->count; i++) {
			if (is_bitmap_kind(op->rep->findings[i].kind)) {
				op->rep->findings[i].repaired = true;
			}
		}
		repair_note(op, "rewrote the three bitmaps from the metadata (%" PRIu64 " leaked "
			    "clusters and %" PRIu64 " leaked pages freed; every referenced cluster, "
			    "page and slot kept) and the primary superblock with their checksums",
			    op->rep->leaked_clusters, op->rep->leaked_pages);
		break;
	}
}

/* FS_REPAIR_SUPER: superblocks first. Returns 1 when I/O was issued. */
static int repair_super(struct fsck_op *op)
{
	op->state = FS_REPAIR_BITMAPS;
	if (!op->opts.repair || !op->have_sb) {
		return 0;
	}
	if (op->fix_primary) {
		/* From the backup: not clean, so the next load rebuilds the bitmaps. */
		op->fix_primary = false;
		io_begin(op);
		write_super(op, &op->sb, false, false, op->page0);
		return repair_wait(op, REPAIR_PRIMARY, FS_REPAIR_SUPER);
	}
	if (op->fix_backup) {
		op->fix_backup = false;
		io_begin(op);
		write_super(op, &op->sb, true, false, op->page1);
		return repair_wait(op, REPAIR_BACKUP, FS_REPAIR_BITMAPS);
	}
	return 0;
}

/* FS_REPAIR_BITMAPS: write the bitmaps rebuilt from the metadata. */
static int repair_bitmaps(struct fsck_op *op)
{
	const struct ust_bs_super *sb = &op->sb;
	uint64_t cb = bm_bytes(&sb->cluster_bitmap), pb = bm_bytes(&sb->page_bitmap);
	uint64_t bb = bm_bytes(&sb->blobid_bitmap);

	op->state = FS_DONE;
	if (!op->opts.repair || !op->have_sb || !sb->clean || !bitmap_findings(op)) {
		return 0;
	}
	if (op->unsafe) {
		repair_note(op, "bitmaps not rewritten: %s; leaked space can only be freed when every "
			    "blob was read completely and nothing is shared", op->unsafe_why);
		return 0;
	}
	if (build_bitmaps(op) != 0) {
		op->rc = -ENOMEM;
		return 0;
	}
	io_begin(op);
	io_add(op, DEV_WRITE, (uint64_t)sb->cluster_bitmap.start * UST_BS_PAGE_SIZE, cb, op->newbm,
	       NULL);
	io_add(op, DEV_WRITE, (uint64_t)sb->page_bitmap.start * UST_BS_PAGE_SIZE, pb, op->newbm + cb,
	       NULL);
	io_add(op, DEV_WRITE, (uint64_t)sb->blobid_bitmap.start * UST_BS_PAGE_SIZE, bb,
	       op->newbm + cb + pb, NULL);
	return repair_wait(op, REPAIR_BITMAPS, FS_REPAIR_PRIMARY);
}

/*
 * FS_REPAIR_PRIMARY: the bitmaps are durable; make the primary vouch for
 * them (clean = 1 and their checksums; the generation stays, 5). A crash
 * before this leaves checksums that do not match: a dirty load, still safe.
 */
static int repair_primary(struct fsck_op *op)
{
	struct ust_bs_super sb = op->sb;
	uint64_t cb = bm_bytes(&sb.cluster_bitmap), pb = bm_bytes(&sb.page_bitmap);
	uint64_t bb = bm_bytes(&sb.blobid_bitmap);

	sb.cluster_bitmap_csum = ust_bs_fmt_region_checksum(op->newbm, cb);
	sb.page_bitmap_csum = ust_bs_fmt_region_checksum(op->newbm + cb, pb);
	sb.blobid_bitmap_csum = ust_bs_fmt_region_checksum(op->newbm + cb + pb, bb);
	io_begin(op);
	write_super(op, &sb, false, true, op->page0);
	return repair_wait(op, REPAIR_BITMAP_SUPER, FS_DONE);
}

/* ---- the machine --------------------------------------------------------------------------------------- */

static void summarize(struct ust_bs_fsck_report *rep)
{
	size_t i;

	rep->errors = rep->errors_unrepaired = rep->warnings = 0;
	for (i = 0; i < rep->count; i++) {
		if (rep->findings[i].severity == UST_BS_FSCK_ERROR) {
			rep->errors++;
			rep->errors_unrepaired += !rep->findings[i].repaired;
		} else if (rep->findings[i].severity == UST_BS_FSCK_WARNING) {
			rep->warnings++;
		}
	}
}

static void fsck_finish(struct fsck_op *op)
{
	struct ust_bs_fsck_report *rep = op->rep;
	ust_bs_fsck_cb cb = op->cb;
	void *arg = op->arg;
	int rc = op->rc;
	size_t i;

	dev_close(&op->dev);
	tree_free(&op->tree);
	for (i = 0; i < op->nblobs; i++) {
		blob_clear(&op->blobs[i]);
	}
	free(op->blobs);
	free(op->cluster_owner);
	free(op->page_owner);
	free(op->soft_clusters);
	free(op->soft_pages);
	page_free(op->page0);
	page_free(op->page1);
	page_free(op->bm);
	page_free(op->roots);
	page_free(op->newbm);
	free(op);
	if (rc != 0) {
		ust_bs_fsck_report_free(rep);
		rep = NULL;
	} else {
		summarize(rep);
	}
	cb(arg, rep, rc);
}

static int setup_scan(struct fsck_op *op)
{
	const struct ust_bs_super *sb = &op->sb;
	uint64_t bytes;

	op->roots = page_alloc(CHUNK_SLOTS * 2);
	op->cluster_owner = calloc(sb->total_clusters, sizeof(uint32_t));
	op->page_owner = calloc(sb->md_pool.pages, sizeof(uint32_t));
	op->soft_clusters = calloc((sb->total_clusters + 7) / 8, 1);
	op->soft_pages = calloc((sb->md_pool.pages + 7) / 8, 1);
	if (op->roots == NULL || op->cluster_owner == NULL || op->page_owner == NULL ||
	    op->soft_clusters == NULL || op->soft_pages == NULL) {
		return -ENOMEM;
	}
	if (sb->clean) {
		bytes = bm_bytes(&sb->cluster_bitmap) + bm_bytes(&sb->page_bitmap) +
			bm_bytes(&sb->blobid_bitmap);
		op->bm = page_alloc(bytes / UST_BS_PAGE_SIZE);
		if (op->bm == NULL) {
			return -ENOMEM;
		}
		op->cbm = op->bm;
		op->pbm = op->cbm + bm_bytes(&sb->cluster_bitmap);
		op->bbm = op->pbm + bm_bytes(&sb->page_bitmap);
	}
	return 0;
}

/* One pass of the machine: returns 1 when it must wait for I/O, 0 to run the next state. */
static int fsck_run_state(struct fsck_op *op)
{
	const struct ust_bs_super *sb = &op->sb;
	uint32_t i;

	switch (op->state) {
	case FS_READ_PRIMARY:
		io_begin(op);
		io_add(op, DEV_READ, 0, UST_BS_PAGE_SIZE, op->page0, &op->p_io);
		op->state = FS_READ_BACKUP;
		return io_end(op);
	case FS_READ_BACKUP:
		op->p_rc = op->p_io == 0 ? ust_bs_fmt_super_decode(op->page0, &op->primary, &op->p_err)
					 : op->p_io;
		/* The backup sits at the end of the bdev as formatted (5.1). */
		op->backup_offset = ust_bs_fmt_backup_offset(
			op->p_io == 0 && op->p_rc == 0 && op->primary.bdev_size <= op->dev.size ?
			op->primary.bdev_size : op->dev.size);
		io_begin(op);
		io_add(op, DEV_READ, op->backup_offset, UST_BS_PAGE_SIZE, op->page1, &op->b_io);
		op->state = FS_CHECK_SUPERS;
		return io_end(op);
	case FS_CHECK_SUPERS:
		op->b_rc = op->b_io == 0 ? ust_bs_fmt_super_decode(op->page1, &op->backup, &op->b_err)
					 : op->b_io;
		if (!check_supers(op)) {
			op->state = FS_REPAIR_SUPER;
			return 0;
		}
		if (setup_scan(op) != 0) {
			op->rc = -ENOMEM;
			return 0;
		}
		op->state = FS_READ_ROOTS;
		op->base = 0;
		op->count = 0;
		if (sb->clean) {
			io_begin(op);
			io_add(op, DEV_READ, (uint64_t)sb->cluster_bitmap.start * UST_BS_PAGE_SIZE,
			       bm_bytes(&sb->cluster_bitmap) + bm_bytes(&sb->page_bitmap) +
			       bm_bytes(&sb->blobid_bitmap), op->bm, &op->bm_io);
			op->state = FS_CHECK_BITMAPS;
			return io_end(op);
		}
		return 0;
	case FS_CHECK_BITMAPS:
		check_bitmaps(op);
		op->state = FS_READ_ROOTS;
		return 0;
	case FS_READ_ROOTS:
		op->base += op->count;
		if (op->base >= sb->max_blobs) {
			op->state = FS_CROSS;
			return 0;
		}
		op->count = sb->max_blobs - op->base;
		if (op->count > CHUNK_SLOTS) {
			op->count = CHUNK_SLOTS;
		}
		op->slot = op->base;
		memset(op->root_rc, 0, sizeof(op->root_rc));
		io_begin(op);
		io_add(op, DEV_READ, ((uint64_t)sb->root_slots.start + 2ull * op->base) * UST_BS_PAGE_SIZE,
		       (uint64_t)op->count * 2 * UST_BS_PAGE_SIZE, op->roots, NULL);
		op->state = FS_READ_ROOTS_SINGLY;
		return io_end(op);
	case FS_READ_ROOTS_SINGLY:
		op->state = FS_SLOT;
		if (op->io_rc == 0) {
			return 0;
		}
		/* The chunk failed: page by page, so one bad page costs only its slot. */
		io_begin(op);
		for (i = 0; i < op->count * 2; i++) {
			io_add(op, DEV_READ, ((uint64_t)sb->root_slots.start + 2ull * op->base + i) *
			       UST_BS_PAGE_SIZE, UST_BS_PAGE_SIZE,
			       op->roots + (size_t)i * UST_BS_PAGE_SIZE, &op->root_rc[i]);
		}
		return io_end(op);
	case FS_SLOT:
		if (op->slot >= op->base + op->count) {
			op->state = FS_READ_ROOTS;
			return 0;
		}
		slot_begin(op);
		return 0;
	case FS_CANDIDATE:
		return candidate(op);
	case FS_TREE_CHAIN:
		tree_check_chain(op);
		if (op->tree.verdict != TREE_COMPLETE) {
			candidate_incomplete(op);
			return 0;
		}
		io_begin(op);
		op->state = FS_TREE_EXTENT;
		if (tree_read_extents(op) != 0) {
			op->rc = -ENOMEM;
		}
		return io_end(op);
	case FS_TREE_EXTENT:
		tree_check_extents(op);
		if (op->tree.verdict != TREE_COMPLETE) {
			candidate_incomplete(op);
			return 0;
		}
		candidate_complete(op);
		return 0;
	case FS_CROSS:
		cross_checks(op);
		op->state = FS_REPAIR_SUPER;
		return 0;
	case FS_REPAIR_SUPER:
		return repair_super(op);
	case FS_REPAIR_BITMAPS:
		return repair_bitmaps(op);
	case FS_REPAIR_PRIMARY:
		return repair_primary(op);
	case FS_FLUSH:
	case FS_FLUSHED:
		if (op->io_rc != 0) {
			/* Stop: each step is safe on its own, the next one relies on it. */
			repair_note(op, "a repair %s failed: %s; nothing after it was written",
				    op->state == FS_FLUSH ? "write" : "flush", strerror(-op->io_rc));
			op->state = FS_DONE;
			return 0;
		}
		if (op->state == FS_FLUSHED) {
			repair_durable(op);
			op->state = op->after_flush;
			return 0;
		}
		io_begin(op);
		io_add(op, DEV_FLUSH, 0, 0, NULL, NULL);
		op->state = FS_FLUSHED;
		return io_end(op);
	case FS_DONE:
		break;
	}
	return 0;
}

static void fsck_step(struct fsck_op *op)
{
	for (;;) {
		if (op->rc != 0 || op->state == FS_DONE) {
			fsck_finish(op);
			return;
		}
		if (fsck_run_state(op) != 0) {
			return;
		}
	}
}

void ust_bs_fsck(const char *bdev_name, const struct ust_bs_fsck_opts *opts, ust_bs_fsck_cb cb,
		 void *arg)
{
	struct fsck_op *op;
	int rc;

	if (bdev_name == NULL || cb == NULL) {
		if (cb != NULL) {
			cb(arg, NULL, -EINVAL);
		}
		return;
	}
	op = calloc(1, sizeof(*op));
	if (op == NULL) {
		cb(arg, NULL, -ENOMEM);
		return;
	}
	op->rep = calloc(1, sizeof(*op->rep));
	op->page0 = page_alloc(1);
	op->page1 = page_alloc(1);
	op->cb = cb;
	op->arg = arg;
	if (opts != NULL) {
		op->opts = *opts;
	}
	if (op->rep == NULL || op->page0 == NULL || op->page1 == NULL) {
		op->rc = -ENOMEM;
		fsck_finish(op);
		return;
	}
	rc = dev_open(&op->dev, bdev_name);
	if (rc != 0) {
		op->rc = rc;
		fsck_finish(op);
		return;
	}
	op->state = FS_READ_PRIMARY;
	fsck_step(op);
}

void ust_bs_fsck_report_free(struct ust_bs_fsck_report *report)
{
	if (report == NULL) {
		return;
	}
	free(report->findings);
	free(report);
}

size_t ust_bs_fsck_count_kind(const struct ust_bs_fsck_report *report, enum ust_bs_fsck_kind kind)
{
	size_t i, n = 0;

	for (i = 0; report != NULL && i < report->count; i++) {
		n += report->findings[i].kind == kind;
	}
	return n;
}

void ust_bs_fsck_report_print(const struct ust_bs_fsck_report *rep, FILE *out)
{
	const struct ust_bs_fsck_finding *f;
	size_t i;

	for (i = 0; i < rep->count; i++) {
		f = &rep->findings[i];
		fprintf(out, "%s: %s: %s", ust_bs_fsck_severity_str(f->severity),
			ust_bs_fsck_kind_str(f->kind), f->msg);
		if (f->page != UST_BS_FSCK_NONE && f->kind != UST_BS_FSCK_PAGE_LEAKED &&
		    f->kind != UST_BS_FSCK_PAGE_UNMARKED) {
			fprintf(out, " [page %" PRIu64 ", offset 0x%" PRIx64 "]", f->page,
				f->page * UST_BS_PAGE_SIZE);
		}
		fprintf(out, "%s\n", f->repaired ? " (repaired)" : "");
	}
	if (!rep->store_found) {
		fprintf(out, "summary: no blobstore found\n");
		return;
	}
	fprintf(out, "summary: store 0x%016" PRIx64 " (bstype \"%s\"), %s; %u live blobs, %u damaged, "
		"%u unsupported; %" PRIu64 " of %" PRIu64 " data clusters and %" PRIu64
		" metadata pages referenced; %u errors (%u left unrepaired), %u warnings, %u repairs\n",
		rep->store_id, rep->bstype, rep->clean ? "clean" : "not clean", rep->live_blobs,
		rep->damaged_blobs, rep->unsupported_blobs, rep->referenced_clusters,
		rep->total_clusters > rep->md_clusters ? rep->total_clusters - rep->md_clusters : 0,
		rep->referenced_pages, rep->errors, rep->errors_unrepaired, rep->warnings,
		rep->repairs);
}

/* ---- dump -------------------------------------------------------------------------------------------------- */

enum dump_state {
	DUMP_READ_SUPERS,
	DUMP_SUPERS,
	DUMP_BITMAPS,
	DUMP_READ_ROOTS,
	DUMP_ROOTS,
	DUMP_READ_POOL,
	DUMP_POOL,
	DUMP_DONE,
};

struct dump_op {
	enum dump_state state;
	struct fsck_dev dev;
	FILE *out;
	int rc;
	int pending;
	int io_rc;
	uint8_t *page0, *page1, *bm, *buf;
	uint64_t backup_offset;
	struct ust_bs_super sb;
	struct ust_bs_fmt_geom geom;
	uint64_t next;  /* next slot (roots) or pool page */
	uint64_t count; /* in the buffer */
	ust_bs_op_cb cb;
	void *arg;
};

static void dump_step(struct dump_op *op);

static void dump_io_done(void *arg, int rc)
{
	struct dump_op *op = arg;

	if (rc != 0 && op->io_rc == 0) {
		op->io_rc = rc;
	}
	if (--op->pending == 0) {
		dump_step(op);
	}
}

static void dump_read(struct dump_op *op, uint64_t offset, uint64_t len, void *buf)
{
	int rc;

	op->pending++;
	rc = dev_submit(&op->dev, DEV_READ, offset, len, buf, NULL, dump_io_done, op);
	if (rc != 0) {
		op->pending--;
		op->io_rc = op->io_rc ? op->io_rc : rc;
	}
}

static void print_super(FILE *out, const char *which, uint64_t offset, const uint8_t *page)
{
	struct ust_bs_fmt_err err;
	struct ust_bs_super sb;
	int rc = ust_bs_fmt_super_decode(page, &sb, &err);

	fprintf(out, "superblock %s: page %" PRIu64 " (offset 0x%" PRIx64 "): ", which,
		offset / UST_BS_PAGE_SIZE, offset);
	if (rc != 0) {
		fprintf(out, "%s\n", rc == -ENODATA ? "blank" : err.msg);
		return;
	}
	fprintf(out, "store 0x%016" PRIx64 " generation %" PRIu64 " seq %u clean %d bstype \"%s\"\n",
		sb.hdr.store_id, sb.hdr.generation, sb.hdr.seq, sb.clean, sb.bstype);
	fprintf(out, "  page size %u, io unit %u, cluster size %u, max blobs %u, bdev size %" PRIu64
		", clusters %" PRIu64 " (%u metadata)\n", sb.page_size, sb.io_unit_size,
		sb.cluster_size, sb.max_blobs, sb.bdev_size, sb.total_clusters, sb.md_clusters);
	fprintf(out, "  features incompat 0x%x ro_compat 0x%x compat 0x%x; super blob 0x%" PRIx64 "\n",
		sb.incompat, sb.ro_compat, sb.compat, sb.super_blob_id);
	fprintf(out, "  regions (first page + pages): cluster bitmap %u+%u, page bitmap %u+%u, blobid "
		"bitmap %u+%u, root slots %u+%u, metadata pool %u+%u\n", sb.cluster_bitmap.start,
		sb.cluster_bitmap.pages, sb.page_bitmap.start, sb.page_bitmap.pages,
		sb.blobid_bitmap.start, sb.blobid_bitmap.pages, sb.root_slots.start,
		sb.root_slots.pages, sb.md_pool.start, sb.md_pool.pages);
	fprintf(out, "  bitmap checksums 0x%016" PRIx64 " 0x%016" PRIx64 " 0x%016" PRIx64 "\n",
		sb.cluster_bitmap_csum, sb.page_bitmap_csum, sb.blobid_bitmap_csum);
}

static uint64_t count_bits(const uint8_t *bm, uint64_t n)
{
	uint64_t i, c = 0;

	for (i = 0; i < n; i++) {
		c += bit_get(bm, i);
	}
	return c;
}

static void print_bitmaps(struct dump_op *op)
{
	const struct ust_bs_super *sb = &op->sb;
	uint64_t cb = bm_bytes(&sb->cluster_bitmap), pb = bm_bytes(&sb->page_bitmap);
	uint64_t bb = bm_bytes(&sb->blobid_bitmap);
	const uint8_t *c = op->bm, *p = c + cb, *s = p + pb;
	bool ok;

	if (op->io_rc != 0) {
		fprintf(op->out, "bitmaps: unreadable: %s\n", strerror(-op->io_rc));
		return;
	}
	ok = ust_bs_fmt_region_checksum(c, cb) == sb->cluster_bitmap_csum &&
	     ust_bs_fmt_region_checksum(p, pb) == sb->page_bitmap_csum &&
	     ust_bs_fmt_region_checksum(s, bb) == sb->blobid_bitmap_csum;
	fprintf(op->out, "bitmaps (%s): used clusters %" PRIu64 " of %" PRIu64 " (%u metadata), used "
		"pool pages %" PRIu64 " of %u, used blob slots %" PRIu64 " of %u\n",
		!sb->clean ? "stale: the store is not clean" :
		ok ? "current: checksums match" : "checksums do NOT match",
		count_bits(c, sb->total_clusters), sb->total_clusters, sb->md_clusters,
		count_bits(p, sb->md_pool.pages), sb->md_pool.pages, count_bits(s, sb->max_blobs),
		sb->max_blobs);
}

static void print_value(FILE *out, const uint8_t *v, uint32_t len)
{
	uint32_t i, shown = len > 64 ? 64 : len;
	bool text = true;

	for (i = 0; i < shown; i++) {
		if (v[i] < 0x20 || v[i] > 0x7e) {
			text = false;
		}
	}
	if (text) {
		fprintf(out, "\"%.*s\"", (int)shown, (const char *)v);
	} else {
		fprintf(out, "0x");
		for (i = 0; i < shown; i++) {
			fprintf(out, "%02x", v[i]);
		}
	}
	if (shown < len) {
		fprintf(out, "...");
	}
}

static void print_descs(FILE *out, const uint8_t *page)
{
	struct ust_bs_desc d;
	uint32_t cursor = 0, i, n;

	while (ust_bs_fmt_desc_next(page, &cursor, &d) == 1) {
		n = ust_bs_fmt_desc_count(&d);
		switch (d.type) {
		case UST_BS_DESC_CHAIN:
			fprintf(out, "  CHAIN %u pages:", n);
			for (i = 0; i < n; i++) {
				struct ust_bs_page_ref ref;

				ust_bs_fmt_desc_page_ref(&d, i, &ref);
				fprintf(out, " %u", ref.page);
			}
			fprintf(out, "\n");
			break;
		case UST_BS_DESC_EXTENT_RLE:
			fprintf(out, "  EXTENT_RLE from blob cluster %" PRIu64 ", %u runs:",
				ust_bs_fmt_desc_first(&d), n);
			for (i = 0; i < n; i++) {
				struct ust_bs_extent_run run;

				ust_bs_fmt_desc_run(&d, i, &run);
				if (run.cluster == 0) {
					fprintf(out, " hole x%u", run.count);
				} else {
					fprintf(out, " %u x%u", run.cluster, run.count);
				}
			}
			fprintf(out, "\n");
			break;
		case UST_BS_DESC_EXTENT_TABLE:
			fprintf(out, "  EXTENT_TABLE from extent page %" PRIu64 ", %u refs:",
				ust_bs_fmt_desc_first(&d), n);
			for (i = 0; i < n; i++) {
				struct ust_bs_page_ref ref;

				ust_bs_fmt_desc_page_ref(&d, i, &ref);
				fprintf(out, " %u", ref.page);
			}
			fprintf(out, "\n");
			break;
		case UST_BS_DESC_XATTR: {
			struct ust_bs_xattr_frag x;

			ust_bs_fmt_desc_xattr(&d, &x);
			fprintf(out, "  XATTR%s \"%.*s\" value %u bytes, fragment [%u, +%u): ",
				(x.xflags & UST_BS_XATTR_F_INTERNAL) ? " (internal)" : "",
				(int)x.name_len, (const char *)x.name, x.value_len, x.frag_offset,
				x.frag_len);
			print_value(out, x.data, x.frag_len);
			fprintf(out, "\n");
			break;
		}
		case UST_BS_DESC_PENDING_OP: {
			struct ust_bs_pending_op p;

			ust_bs_fmt_desc_pending(&d, &p);
			fprintf(out, "  PENDING_OP %s blob 0x%" PRIx64 " generation %" PRIu64 "\n",
				p.op == UST_BS_OP_SNAPSHOT_OF ? "SNAPSHOT_OF" : "MERGED_FROM",
				p.other_blob_id, p.other_generation);
			break;
		}
		default:
			fprintf(out, "  descriptor type %u flags 0x%x, %u bytes (not known here)\n",
				d.type, d.flags, d.len);
			break;
		}
	}
}

static void print_flags(FILE *out, uint32_t flags)
{
	static const char *const names[] = {"thin", "read_only", "snapshot", "extent_pages",
					    "tombstone"};
	bool any = false;
	unsigned i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (flags & (1u << i)) {
			fprintf(out, "%s%s", any ? "," : "", names[i]);
			any = true;
		}
	}
	if (!any) {
		fprintf(out, "none");
	}
}

/* One metadata page of the root region or the pool, decoded by its header type. */
static void print_md_page(struct dump_op *op, uint64_t pageno, const uint8_t *page, const char *where)
{
	uint32_t clusters[UST_BS_EXTENTS_PER_PAGE];
	struct ust_bs_fmt_err err;
	struct ust_bs_page_hdr h;
	struct ust_bs_root r;
	uint16_t type = rd16le(page + offsetof(struct ust_bs_disk_page_hdr, type));
	uint32_t i, n;
	int rc;

	fprintf(op->out, "page %" PRIu64 " (offset 0x%" PRIx64 ") %s: ", pageno,
		pageno * UST_BS_PAGE_SIZE, where);
	if (rd32le(page) != UST_BS_MAGIC) {
		fprintf(op->out, "not a metadata page (magic 0x%08x)\n", rd32le(page));
		return;
	}
	if (type == UST_BS_PAGE_ROOT) {
		rc = ust_bs_fmt_root_decode(page, &op->geom, &r, &err);
		if (rc != 0) {
			fprintf(op->out, "root page of blob 0x%" PRIx64 " (unverified): DAMAGED: %s\n",
				raw_blob_id(page), err.msg);
			return;
		}
		fprintf(op->out, "root blob 0x%" PRIx64 " slot %u half %c generation %" PRIu64
			" payload %u: clusters %" PRIu64 ", flags ", r.hdr.blob_id,
			ust_bs_blobid_slot(r.hdr.blob_id), 'A' + (int)r.hdr.seq, r.hdr.generation,
			r.hdr.payload_len, r.num_clusters);
		print_flags(op->out, r.flags);
		fprintf(op->out, ", parent 0x%" PRIx64 ", features 0x%x/0x%x/0x%x, checksum 0x%016"
			PRIx64 "\n", r.parent_id, r.incompat, r.ro_compat, r.compat, r.hdr.checksum);
		print_descs(op->out, page);
	} else if (type == UST_BS_PAGE_CHAIN) {
		rc = ust_bs_fmt_chain_decode(page, &op->geom, &h, &err);
		if (rc != 0) {
			fprintf(op->out, "chain page of blob 0x%" PRIx64 " (unverified): DAMAGED: %s\n",
				raw_blob_id(page), err.msg);
			return;
		}
		fprintf(op->out, "chain page %u of blob 0x%" PRIx64 " generation %" PRIu64 " payload %u"
			", checksum 0x%016" PRIx64 "\n", h.seq, h.blob_id, h.generation, h.payload_len,
			h.checksum);
		print_descs(op->out, page);
	} else if (type == UST_BS_PAGE_EXTENT) {
		rc = ust_bs_fmt_extent_decode(page, &op->geom, &h, clusters, &n, &err);
		if (rc != 0) {
			fprintf(op->out, "extent page of blob 0x%" PRIx64 " (unverified): DAMAGED: %s\n",
				raw_blob_id(page), err.msg);
			return;
		}
		fprintf(op->out, "extent page %u of blob 0x%" PRIx64 " generation %" PRIu64 ", %u "
			"entries, checksum 0x%016" PRIx64 "\n ", h.seq, h.blob_id, h.generation, n,
			h.checksum);
		for (i = 0; i < n; i++) {
			uint32_t start = i;

			while (i + 1 < n && (clusters[i] == 0 ? clusters[i + 1] == 0 :
					     clusters[i + 1] == clusters[i] + 1)) {
				i++;
			}
			if (clusters[start] == 0) {
				fprintf(op->out, " hole x%u", i - start + 1);
			} else {
				fprintf(op->out, " %u x%u", clusters[start], i - start + 1);
			}
		}
		fprintf(op->out, "\n");
	} else {
		fprintf(op->out, "page type %u: DAMAGED or misplaced (header says blob 0x%" PRIx64 ")\n",
			type, raw_blob_id(page));
	}
}

static void dump_finish(struct dump_op *op)
{
	ust_bs_op_cb cb = op->cb;
	void *arg = op->arg;
	int rc = op->rc;

	dev_close(&op->dev);
	page_free(op->page0);
	page_free(op->page1);
	page_free(op->bm);
	page_free(op->buf);
	free(op);
	cb(arg, rc);
}

static bool page_blank(const uint8_t *page)
{
	size_t i;

	for (i = 0; i < UST_BS_PAGE_SIZE; i++) {
		if (page[i] != 0) {
			return false;
		}
	}
	return true;
}

static void dump_step(struct dump_op *op)
{
	struct ust_bs_fmt_err err;
	struct ust_bs_super sb;
	const struct ust_bs_super *s = &op->sb;
	uint64_t i, bytes;
	char where[48];

	for (;;) {
		if (op->rc != 0 || op->state == DUMP_DONE) {
			dump_finish(op);
			return;
		}
		op->pending = 1;
		switch (op->state) {
		case DUMP_READ_SUPERS:
			op->io_rc = 0;
			dump_read(op, 0, UST_BS_PAGE_SIZE, op->page0);
			op->state = DUMP_SUPERS;
			break;
		case DUMP_SUPERS:
			if (op->io_rc != 0) {
				fprintf(op->out, "primary superblock unreadable: %s\n", strerror(-op->io_rc));
				op->rc = -EIO;
				break;
			}
			if (ust_bs_fmt_super_decode(op->page0, &sb, &err) == 0) {
				op->sb = sb;
				op->backup_offset = ust_bs_fmt_backup_offset(sb.bdev_size);
			} else {
				op->backup_offset = ust_bs_fmt_backup_offset(op->dev.size);
			}
			print_super(op->out, "primary", 0, op->page0);
			op->io_rc = 0;
			dump_read(op, op->backup_offset, UST_BS_PAGE_SIZE, op->page1);
			op->state = DUMP_BITMAPS;
			break;
		case DUMP_BITMAPS:
			if (op->io_rc != 0) {
				fprintf(op->out, "superblock backup: offset 0x%" PRIx64 ": unreadable: %s\n",
					op->backup_offset, strerror(-op->io_rc));
			} else {
				print_super(op->out, "backup", op->backup_offset, op->page1);
			}
			if (op->sb.hdr.magic == 0) {
				if (op->io_rc == 0 && ust_bs_fmt_super_decode(op->page1, &sb, &err) == 0) {
					op->sb = sb;
					fprintf(op->out, "(the primary is not usable: decoding with the "
						"backup)\n");
				} else {
					fprintf(op->out, "no usable superblock: nothing more to decode\n");
					op->rc = -ENODATA;
					break;
				}
			}
			ust_bs_fmt_geom_from_super(&op->sb, &op->geom);
			bytes = bm_bytes(&s->cluster_bitmap) + bm_bytes(&s->page_bitmap) +
				bm_bytes(&s->blobid_bitmap);
			op->bm = page_alloc(bytes / UST_BS_PAGE_SIZE);
			op->buf = page_alloc(CHUNK_PAGES);
			if (op->bm == NULL || op->buf == NULL) {
				op->rc = -ENOMEM;
				break;
			}
			op->io_rc = 0;
			dump_read(op, (uint64_t)s->cluster_bitmap.start * UST_BS_PAGE_SIZE, bytes, op->bm);
			op->state = DUMP_READ_ROOTS;
			op->next = 0;
			op->count = 0;
			break;
		case DUMP_READ_ROOTS:
			if (op->next == 0) {
				print_bitmaps(op);
			}
			if (op->next >= 2ull * s->max_blobs) {
				op->state = DUMP_READ_POOL;
				op->next = 0;
				op->count = 0;
				continue;
			}
			op->count = 2ull * s->max_blobs - op->next;
			if (op->count > CHUNK_PAGES) {
				op->count = CHUNK_PAGES;
			}
			op->io_rc = 0;
			dump_read(op, (s->root_slots.start + op->next) * UST_BS_PAGE_SIZE,
				  op->count * UST_BS_PAGE_SIZE, op->buf);
			op->state = DUMP_ROOTS;
			break;
		case DUMP_ROOTS:
			for (i = 0; i < op->count; i++) {
				uint64_t rel = op->next + i;
				const uint8_t *page = op->buf + i * UST_BS_PAGE_SIZE;

				if (op->io_rc != 0) {
					fprintf(op->out, "root pages %" PRIu64 "..%" PRIu64 ": unreadable: %s\n",
						s->root_slots.start + op->next,
						s->root_slots.start + op->next + op->count - 1,
						strerror(-op->io_rc));
					break;
				}
				if (page_blank(page)) {
					continue;
				}
				snprintf(where, sizeof(where), "root slot %" PRIu64 " half %c", rel / 2,
					 'A' + (int)(rel % 2));
				print_md_page(op, s->root_slots.start + rel, page, where);
			}
			op->next += op->count;
			op->state = DUMP_READ_ROOTS;
			continue;
		case DUMP_READ_POOL:
			if (op->next >= s->md_pool.pages) {
				op->state = DUMP_DONE;
				continue;
			}
			op->count = s->md_pool.pages - op->next;
			if (op->count > CHUNK_PAGES) {
				op->count = CHUNK_PAGES;
			}
			op->io_rc = 0;
			dump_read(op, (s->md_pool.start + op->next) * UST_BS_PAGE_SIZE,
				  op->count * UST_BS_PAGE_SIZE, op->buf);
			op->state = DUMP_POOL;
			break;
		case DUMP_POOL:
			for (i = 0; i < op->count; i++) {
				const uint8_t *page = op->buf + i * UST_BS_PAGE_SIZE;

				if (op->io_rc != 0) {
					fprintf(op->out, "pool pages %" PRIu64 "..%" PRIu64 ": unreadable: %s\n",
						s->md_pool.start + op->next,
						s->md_pool.start + op->next + op->count - 1,
						strerror(-op->io_rc));
					break;
				}
				if (page_blank(page)) {
					continue;
				}
				snprintf(where, sizeof(where), "pool page %" PRIu64, op->next + i);
				print_md_page(op, s->md_pool.start + op->next + i, page, where);
			}
			op->next += op->count;
			op->state = DUMP_READ_POOL;
			continue;
		case DUMP_DONE:
			continue;
		}
		if (--op->pending != 0) {
			return;
		}
	}
}

void ust_bs_dump(const char *bdev_name, FILE *out, ust_bs_op_cb cb, void *arg)
{
	struct dump_op *op;
	int rc;

	if (bdev_name == NULL || out == NULL || cb == NULL) {
		if (cb != NULL) {
			cb(arg, -EINVAL);
		}
		return;
	}
	op = calloc(1, sizeof(*op));
	if (op == NULL) {
		cb(arg, -ENOMEM);
		return;
	}
	op->out = out;
	op->cb = cb;
	op->arg = arg;
	op->page0 = page_alloc(1);
	op->page1 = page_alloc(1);
	if (op->page0 == NULL || op->page1 == NULL) {
		op->rc = -ENOMEM;
		dump_finish(op);
		return;
	}
	rc = dev_open(&op->dev, bdev_name);
	if (rc != 0) {
		op->rc = rc;
		dump_finish(op);
		return;
	}
	op->state = DUMP_READ_SUPERS;
	dump_step(op);
}
