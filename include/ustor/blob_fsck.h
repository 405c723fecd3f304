/*
 * Blobstore consistency check (fsck), its limited repair, and a decoder that
 * prints every metadata page of a store (dump).
 *
 * Both read the store's bdev directly, page by page, through the format
 * codec; they never load the store and never trust a loaded store's memory.
 * The bdev must not hold a loaded store: while they run they claim it
 * (module "blobstore_fsck"), so a loaded store makes them fail with -EPERM
 * and a load during a check fails the same way. Call them on any ust_thread;
 * the callback runs on that thread. The checks follow
 * docs/blobstore-format.md; section numbers in messages refer to it.
 *
 * What fsck verifies: both superblocks and their agreement; every root half
 * (checksum, structure, that it sits in the slot its blob id names); the
 * current version of every slot and its whole tree (chain and extent pages
 * against their hash references, 8.4 and 8.5); on a clean store the three
 * persisted bitmaps (checksums, and bit by bit against what the metadata
 * references); no cluster or metadata page referenced twice; parents that
 * are live read-only blobs; pending two-blob operations.
 *
 * What --repair changes, and nothing else: a damaged, stale or missing
 * backup superblock is rewritten from a valid primary; a missing or damaged
 * primary is rewritten from a valid backup (marked not clean, so the next
 * load rebuilds the bitmaps); on a clean store whose every blob was read
 * completely, the bitmaps are rewritten from the metadata (freeing leaked
 * clusters, pages and slots, marking referenced ones that were free) with
 * new checksums. It never deletes or modifies a blob, and it refuses the
 * bitmap rewrite when any blob is damaged, unsupported or shares clusters.
 */
#ifndef USTOR_BLOB_FSCK_H
#define USTOR_BLOB_FSCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ustor/blob.h"

#ifdef __cplusplus
extern "C" {
#endif

enum ust_bs_fsck_severity {
	UST_BS_FSCK_INFO,    /* a fact (the store is dirty, a repair was made) */
	UST_BS_FSCK_WARNING, /* something the next load resolves by itself by design */
	UST_BS_FSCK_ERROR,   /* damage or an inconsistency: fsck fails */
};

enum ust_bs_fsck_kind {
	UST_BS_FSCK_NO_STORE,          /* neither superblock carries the magic */
	UST_BS_FSCK_SUPER_PRIMARY,     /* primary superblock missing or damaged */
	UST_BS_FSCK_SUPER_BACKUP,      /* backup superblock missing, damaged or stale */
	UST_BS_FSCK_SUPER_MISMATCH,    /* primary and backup disagree */
	UST_BS_FSCK_SUPER_GEOMETRY,    /* the superblock does not fit the bdev */
	UST_BS_FSCK_DIRTY,             /* not unloaded cleanly: bitmaps rebuilt at load */
	UST_BS_FSCK_BITMAP_CHECKSUM,   /* clean store whose bitmaps fail their checksums */
	UST_BS_FSCK_BITMAP_RANGE,      /* bits past the end, metadata clusters not set */
	UST_BS_FSCK_ROOT_DAMAGED,      /* a root half fails validation */
	UST_BS_FSCK_ROOT_MISPLACED,    /* a valid root in the wrong slot or half */
	UST_BS_FSCK_ROOT_UNCOMMITTED,  /* dirty store: a half the load discards */
	UST_BS_FSCK_TREE_INCOMPLETE,   /* a chain or extent page missing, damaged or stale */
	UST_BS_FSCK_BLOB_INVALID,      /* the tree breaks a whole-blob rule (8.4) */
	UST_BS_FSCK_SLOT_DAMAGED,      /* a slot without any usable version */
	UST_BS_FSCK_UNSUPPORTED,       /* a blob this reader cannot check (newer features) */
	UST_BS_FSCK_CLUSTER_SHARED,    /* a cluster referenced twice */
	UST_BS_FSCK_PAGE_SHARED,       /* a metadata page referenced twice */
	UST_BS_FSCK_CLUSTER_LEAKED,    /* marked used, referenced by nobody */
	UST_BS_FSCK_PAGE_LEAKED,
	UST_BS_FSCK_SLOT_LEAKED,       /* blob id marked used, slot free */
	UST_BS_FSCK_CLUSTER_UNMARKED,  /* referenced, marked free: would be handed out again */
	UST_BS_FSCK_PAGE_UNMARKED,
	UST_BS_FSCK_SLOT_UNMARKED,     /* live blob whose slot is marked free */
	UST_BS_FSCK_PARENT,            /* parent missing, not read-only, damaged or a cycle */
	UST_BS_FSCK_PENDING_OP,        /* an unfinished snapshot or merge (9.4) */
	UST_BS_FSCK_IO_ERROR,          /* a page could not be read */
	UST_BS_FSCK_REPAIR,            /* what the repair wrote */
	UST_BS_FSCK_KIND_COUNT
};

#define UST_BS_FSCK_NONE UINT64_MAX

struct ust_bs_fsck_finding {
	enum ust_bs_fsck_severity severity;
	enum ust_bs_fsck_kind kind;
	ust_blob_id blob_id; /* 0 when no blob is concerned or its id is unknown */
	uint32_t slot;       /* UINT32_MAX when none */
	uint64_t page;       /* 4 KiB page number on the bdev, UST_BS_FSCK_NONE when none */
	uint64_t cluster;    /* first cluster concerned, UST_BS_FSCK_NONE when none */
	uint64_t count;      /* clusters/pages/slots in the range starting at cluster/page/slot */
	bool repaired;       /* the repair fixed it */
	char msg[288];
};

struct ust_bs_fsck_report {
	struct ust_bs_fsck_finding *findings;
	size_t count;

	bool store_found; /* a superblock with the magic exists */
	bool clean;       /* the primary says clean = 1 */
	uint64_t store_id;
	char bstype[UST_BS_BSTYPE_MAX + 1];
	uint64_t cluster_size;
	uint64_t total_clusters;
	uint64_t md_clusters;
	uint32_t max_blobs;

	uint32_t live_blobs;
	uint32_t damaged_blobs;     /* slots with damage (live or not) */
	uint32_t unsupported_blobs;
	uint64_t referenced_clusters;
	uint64_t referenced_pages;
	uint64_t leaked_clusters;
	uint64_t leaked_pages;

	uint32_t errors;            /* findings of severity ERROR */
	uint32_t errors_unrepaired; /* ERROR findings the repair did not fix */
	uint32_t warnings;
	uint32_t repairs;           /* writes the repair made */
};

struct ust_bs_fsck_opts {
	bool repair;
};

void ust_bs_fsck_opts_init(struct ust_bs_fsck_opts *opts);

/*
 * rc is 0 when the check ran (then report is non-NULL and owned by the
 * caller: ust_bs_fsck_report_free), whatever it found; a negative errno when
 * it could not run: -ENODEV no such bdev, -EPERM the bdev is claimed (a
 * loaded store), -ENOMEM. I/O errors during the check are findings.
 */
typedef void (*ust_bs_fsck_cb)(void *arg, struct ust_bs_fsck_report *report, int rc);

void ust_bs_fsck(const char *bdev_name, const struct ust_bs_fsck_opts *opts, ust_bs_fsck_cb cb,
		 void *arg);
void ust_bs_fsck_report_free(struct ust_bs_fsck_report *report);
/* One line per finding, then the summary. */
void ust_bs_fsck_report_print(const struct ust_bs_fsck_report *report, FILE *out);
const char *ust_bs_fsck_kind_str(enum ust_bs_fsck_kind kind);
const char *ust_bs_fsck_severity_str(enum ust_bs_fsck_severity severity);
/* Findings of a kind (handy for tests and scripts). */
size_t ust_bs_fsck_count_kind(const struct ust_bs_fsck_report *report, enum ust_bs_fsck_kind kind);

/*
 * Print both superblocks, a summary of the three bitmaps, and every non-blank
 * page of the root-slot region and the metadata pool, decoded (type, slot,
 * half, blob, generation, every descriptor) or with its damage. Each page line
 * starts with "page N (offset 0x...)". cb(arg, 0) when done; -ENODEV, -EPERM,
 * -ENOMEM, -EIO, -ENODATA (no superblock to work from).
 */
void ust_bs_dump(const char *bdev_name, FILE *out, ust_bs_op_cb cb, void *arg);

#ifdef __cplusplus
}
#endif

#endif
