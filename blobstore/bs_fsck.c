/*
 * Blobstore fsck, its limited repair, and the metadata dump
 * (include/ustor/blob_fsck.h). This file holds the check's state machine,
 * its device, findings, the superblock and persisted-bitmap checks and the
 * public entry points; bs_fsck_walk.c reads and verifies the root slots and
 * their trees, bs_fsck_repair.c cross-checks all blobs and repairs,
 * bs_fsck_dump.c dumps the metadata (bs_fsck_internal.h).
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

#include "bs_fsck_internal.h"

/* ---- the device: a claimed descriptor and this thread's channel --------------------------- */

static struct ust_bdev_module g_fsck_module = {
	.name = "blobstore_fsck",
};

static void dev_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	(void)ctx;
	if (type == UST_BDEV_EVENT_REMOVE) {
		UST_WARNLOG("blobstore fsck: bdev %s is being removed\n", ust_bdev_get_name(bdev));
	}
}

void fsck_dev_close(struct fsck_dev *dev)
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

int fsck_dev_open(struct fsck_dev *dev, const char *name)
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
		fsck_dev_close(dev);
		return rc;
	}
	dev->claimed = true;
	dev->ch = ust_bdev_get_io_channel(dev->desc);
	if (dev->ch == NULL) {
		fsck_dev_close(dev);
		return -ENOMEM;
	}
	dev->blocklen = ust_bdev_get_block_size(dev->bdev);
	dev->size = ust_bdev_get_num_blocks(dev->bdev) * dev->blocklen;
	return 0;
}

void *fsck_page_alloc(uint64_t count)
{
	return ust_dma_zmalloc((size_t)count * UST_BS_PAGE_SIZE, UST_BS_PAGE_SIZE);
}

void fsck_page_free(void *buf)
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

/* Returns 0 when submitted (done will run), or the submit error (done will not). */
int fsck_dev_submit(struct fsck_dev *dev, enum dev_op op, uint64_t offset, uint64_t len, void *buf,
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

static void fsck_step(struct fsck_op *op);

static struct ust_bs_fsck_finding g_nomem_finding;

struct ust_bs_fsck_finding *fsck_finding(struct fsck_op *op, enum ust_bs_fsck_severity sev,
					   enum ust_bs_fsck_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

struct ust_bs_fsck_finding *fsck_finding(struct fsck_op *op, enum ust_bs_fsck_severity sev,
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

void fsck_set_unsafe(struct fsck_op *op, const char *fmt, ...)
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

void fsck_mark_repaired(struct fsck_op *op, enum ust_bs_fsck_kind kind)
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

void fsck_io_begin(struct fsck_op *op)
{
	op->pending = 1;
	op->io_rc = 0;
}

/* Submit one I/O; a refused submit is recorded in *rc_out / io_rc like a failed one. */
void fsck_io_add(struct fsck_op *op, enum dev_op kind, uint64_t offset, uint64_t len, void *buf,
		   int *rc_out)
{
	int rc;

	op->pending++;
	rc = fsck_dev_submit(&op->dev, kind, offset, len, buf, rc_out, fsck_io_done, op);
	if (rc != 0) {
		op->pending--;
		if (op->io_rc == 0) {
			op->io_rc = rc;
		}
	}
}

/* Drop the issuing count: 1 when the machine must wait (completions run it). */
int fsck_io_end(struct fsck_op *op)
{
	if (--op->pending == 0) {
		return 0;
	}
	return 1;
}

/* ---- superblocks ------------------------------------------------------------------------------ */

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
		f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_BACKUP,
			    "backup superblock at offset 0x%" PRIx64 " unreadable: %s",
			    op->backup_offset, strerror(-op->b_io));
		f->page = op->backup_offset / UST_BS_PAGE_SIZE;
		op->fix_backup = true;
		return;
	}
	if (op->b_rc != 0) {
		f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_BACKUP,
			    "backup superblock at offset 0x%" PRIx64 ": %s",
			    op->backup_offset, op->b_err.msg);
		f->page = op->backup_offset / UST_BS_PAGE_SIZE;
		op->fix_backup = true;
		return;
	}
	if (op->backup.hdr.seq != UST_BS_SUPER_BACKUP || op->backup.clean) {
		f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_BACKUP,
			    "backup superblock at offset 0x%" PRIx64 " has seq %u and clean %d "
			    "(a backup has seq 1 and clean 0)", op->backup_offset,
			    op->backup.hdr.seq, op->backup.clean);
		f->page = op->backup_offset / UST_BS_PAGE_SIZE;
		op->fix_backup = true;
		return;
	}
	if (op->backup.hdr.store_id != op->primary.hdr.store_id) {
		f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_BACKUP,
			    "backup superblock belongs to store 0x%016" PRIx64 ", primary to 0x%016"
			    PRIx64, op->backup.hdr.store_id, op->primary.hdr.store_id);
		f->page = op->backup_offset / UST_BS_PAGE_SIZE;
		op->fix_backup = true;
		return;
	}
	if (op->backup.hdr.generation < op->primary.hdr.generation) {
		f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_BACKUP,
			    "backup superblock is stale: generation %" PRIu64 ", primary %" PRIu64,
			    op->backup.hdr.generation, op->primary.hdr.generation);
		f->page = op->backup_offset / UST_BS_PAGE_SIZE;
		op->fix_backup = true;
		return;
	}
	super_field_diff(&op->primary, &op->backup, diff, sizeof(diff));
	if (op->backup.hdr.generation > op->primary.hdr.generation) {
		/* Backup written, primary not: an interrupted superblock change (9.4). */
		f = fsck_finding(op, UST_BS_FSCK_WARNING, UST_BS_FSCK_SUPER_MISMATCH,
			    "backup superblock is newer (generation %" PRIu64 ") than the primary (%"
			    PRIu64 ")%s%s: an interrupted superblock change that was never "
			    "acknowledged; the primary stays authoritative", op->backup.hdr.generation,
			    op->primary.hdr.generation, diff[0] ? "; they differ in " : "", diff);
		f->page = op->backup_offset / UST_BS_PAGE_SIZE;
		op->fix_backup = true;
		return;
	}
	if (diff[0] != '\0') {
		f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_MISMATCH,
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
		fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_GEOMETRY,
			"io unit %u is not a multiple of the bdev's block size %u",
			sb->io_unit_size, op->dev.blocklen);
		return false;
	}
	if (op->dev.size < sb->bdev_size) {
		fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_GEOMETRY,
			"the store was formatted for %" PRIu64 " bytes; the bdev has only %" PRIu64,
			sb->bdev_size, op->dev.size);
		return false;
	}
	if (sb->incompat & ~UST_BS_FEAT_INCOMPAT_SUPPORTED) {
		fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_GEOMETRY,
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
			f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_PRIMARY,
				    "primary superblock unreadable: %s", strerror(-op->p_io));
		} else if (!rep->store_found) {
			f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_NO_STORE,
				    "no blobstore: the primary superblock is %s and no backup was "
				    "found at offset 0x%" PRIx64, op->p_rc == -ENODATA ? "blank" :
				    "not a ustor page", op->backup_offset);
			f->page = 0;
			return false;
		} else {
			f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_PRIMARY,
				    "primary superblock: %s", op->p_err.msg);
		}
		f->page = 0;
		if (op->b_io == 0 && op->b_rc == 0 && op->backup.hdr.seq == UST_BS_SUPER_BACKUP) {
			op->sb = op->backup;
			op->sb.clean = false;
			op->have_sb = true;
			op->fix_primary = true;
			fsck_finding(op, UST_BS_FSCK_INFO, UST_BS_FSCK_SUPER_BACKUP,
				"checking from the backup superblock at offset 0x%" PRIx64
				" (generation %" PRIu64 ")", op->backup_offset, op->backup.hdr.generation);
		} else {
			f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_SUPER_BACKUP,
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
		fsck_finding(op, UST_BS_FSCK_INFO, UST_BS_FSCK_DIRTY,
			"the store was not unloaded cleanly: the persisted bitmaps are stale and are "
			"not checked; the next load rebuilds them from the metadata (9.3)");
	}
	return true;
}

/* ---- bitmaps ------------------------------------------------------------------------------------- */

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
		fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_IO_ERROR,
			"bitmaps unreadable: %s; the next load rebuilds them", strerror(-op->bm_io));
		return;
	}
	maps[0] = op->cbm;
	maps[1] = op->pbm;
	maps[2] = op->bbm;
	for (i = 0; i < 3; i++) {
		sum[i] = ust_bs_fmt_region_checksum(maps[i], bm_bytes(regs[i]));
		if (sum[i] != want[i]) {
			f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_BITMAP_CHECKSUM,
				    "%s bitmap (pages %u..%u): checksum 0x%016" PRIx64 ", superblock says "
				    "0x%016" PRIx64 "; the loader will not trust it and rebuilds",
				    names[i], regs[i]->start, regs[i]->start + regs[i]->pages - 1,
				    sum[i], want[i]);
			f->page = regs[i]->start;
			f->count = regs[i]->pages;
			continue;
		}
		if (!past_end_clear(maps[i], counts[i], bm_bytes(regs[i]))) {
			f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_BITMAP_RANGE,
				    "%s bitmap has bits set past its %" PRIu64 " entries", names[i],
				    counts[i]);
			f->page = regs[i]->start;
		}
	}
	for (c = 0; c < sb->md_clusters && sum[0] == want[0]; c++) {
		if (!bit_get(op->cbm, c)) {
			f = fsck_finding(op, UST_BS_FSCK_ERROR, UST_BS_FSCK_BITMAP_RANGE,
				    "metadata cluster %" PRIu64 " is marked free", c);
			f->cluster = c;
			f->count = 1;
		}
	}
	/* Checksums right: the loader trusts them, so they must match the metadata. */
	op->bitmaps_ok = sum[0] == want[0] && sum[1] == want[1] && sum[2] == want[2];
}

/* ---- per-slot records -------------------------------------------------------------------------- */

struct fsck_blob *fsck_blob_new(struct fsck_op *op, uint32_t slot, uint64_t id,
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

void fsck_blob_clear(struct fsck_blob *b)
{
	free(b->map);
	free(b->pages);
	b->map = NULL;
	b->pages = NULL;
}

/* Records are appended in slot order: binary search. */
struct fsck_blob *fsck_blob_at_slot(struct fsck_op *op, uint32_t slot)
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

int fsck_map_add(struct fsck_blob *b, uint64_t index, uint32_t cluster)
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

	fsck_dev_close(&op->dev);
	fsck_tree_free(&op->tree);
	for (i = 0; i < op->nblobs; i++) {
		fsck_blob_clear(&op->blobs[i]);
	}
	free(op->blobs);
	free(op->cluster_owner);
	free(op->page_owner);
	free(op->soft_clusters);
	free(op->soft_pages);
	fsck_page_free(op->page0);
	fsck_page_free(op->page1);
	fsck_page_free(op->bm);
	fsck_page_free(op->roots);
	fsck_page_free(op->newbm);
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

	op->roots = fsck_page_alloc(CHUNK_SLOTS * 2);
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
		op->bm = fsck_page_alloc(bytes / UST_BS_PAGE_SIZE);
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
		fsck_io_begin(op);
		fsck_io_add(op, DEV_READ, 0, UST_BS_PAGE_SIZE, op->page0, &op->p_io);
		op->state = FS_READ_BACKUP;
		return fsck_io_end(op);
	case FS_READ_BACKUP:
		op->p_rc = op->p_io == 0 ? ust_bs_fmt_super_decode(op->page0, &op->primary, &op->p_err)
					 : op->p_io;
		/* The backup sits at the end of the bdev as formatted (5.1). */
		op->backup_offset = ust_bs_fmt_backup_offset(
			op->p_io == 0 && op->p_rc == 0 && op->primary.bdev_size <= op->dev.size ?
			op->primary.bdev_size : op->dev.size);
		fsck_io_begin(op);
		fsck_io_add(op, DEV_READ, op->backup_offset, UST_BS_PAGE_SIZE, op->page1, &op->b_io);
		op->state = FS_CHECK_SUPERS;
		return fsck_io_end(op);
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
			fsck_io_begin(op);
			fsck_io_add(op, DEV_READ, (uint64_t)sb->cluster_bitmap.start * UST_BS_PAGE_SIZE,
			       bm_bytes(&sb->cluster_bitmap) + bm_bytes(&sb->page_bitmap) +
			       bm_bytes(&sb->blobid_bitmap), op->bm, &op->bm_io);
			op->state = FS_CHECK_BITMAPS;
			return fsck_io_end(op);
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
		fsck_io_begin(op);
		fsck_io_add(op, DEV_READ, ((uint64_t)sb->root_slots.start + 2ull * op->base) * UST_BS_PAGE_SIZE,
		       (uint64_t)op->count * 2 * UST_BS_PAGE_SIZE, op->roots, NULL);
		op->state = FS_READ_ROOTS_SINGLY;
		return fsck_io_end(op);
	case FS_READ_ROOTS_SINGLY:
		op->state = FS_SLOT;
		if (op->io_rc == 0) {
			return 0;
		}
		/* The chunk failed: page by page, so one bad page costs only its slot. */
		fsck_io_begin(op);
		for (i = 0; i < op->count * 2; i++) {
			fsck_io_add(op, DEV_READ, ((uint64_t)sb->root_slots.start + 2ull * op->base + i) *
			       UST_BS_PAGE_SIZE, UST_BS_PAGE_SIZE,
			       op->roots + (size_t)i * UST_BS_PAGE_SIZE, &op->root_rc[i]);
		}
		return fsck_io_end(op);
	case FS_SLOT:
		if (op->slot >= op->base + op->count) {
			op->state = FS_READ_ROOTS;
			return 0;
		}
		fsck_slot_begin(op);
		return 0;
	case FS_CANDIDATE:
		return fsck_candidate(op);
	case FS_TREE_CHAIN:
		fsck_tree_check_chain(op);
		if (op->tree.verdict != TREE_COMPLETE) {
			fsck_candidate_incomplete(op);
			return 0;
		}
		fsck_io_begin(op);
		op->state = FS_TREE_EXTENT;
		if (fsck_tree_read_extents(op) != 0) {
			op->rc = -ENOMEM;
		}
		return fsck_io_end(op);
	case FS_TREE_EXTENT:
		fsck_tree_check_extents(op);
		if (op->tree.verdict != TREE_COMPLETE) {
			fsck_candidate_incomplete(op);
			return 0;
		}
		fsck_candidate_complete(op);
		return 0;
	case FS_CROSS:
		fsck_cross_checks(op);
		op->state = FS_REPAIR_SUPER;
		return 0;
	case FS_REPAIR_SUPER:
		return fsck_repair_super(op);
	case FS_REPAIR_BITMAPS:
		return fsck_repair_bitmaps(op);
	case FS_REPAIR_PRIMARY:
		return fsck_repair_primary(op);
	case FS_FLUSH:
	case FS_FLUSHED:
		if (op->io_rc != 0) {
			/* Stop: each step is safe on its own, the next one relies on it. */
			fsck_repair_note(op, "a repair %s failed: %s; nothing after it was written",
				    op->state == FS_FLUSH ? "write" : "flush", strerror(-op->io_rc));
			op->state = FS_DONE;
			return 0;
		}
		if (op->state == FS_FLUSHED) {
			fsck_repair_durable(op);
			op->state = op->after_flush;
			return 0;
		}
		fsck_io_begin(op);
		fsck_io_add(op, DEV_FLUSH, 0, 0, NULL, NULL);
		op->state = FS_FLUSHED;
		return fsck_io_end(op);
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
	op->page0 = fsck_page_alloc(1);
	op->page1 = fsck_page_alloc(1);
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
	rc = fsck_dev_open(&op->dev, bdev_name);
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
