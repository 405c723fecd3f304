/*
 * Blobstore on-disk format: packed little-endian structures, constants and
 * the page-level codec (encode, decode, checksum, validation).
 *
 * The specification is docs/blobstore-format.md; every name here is the name
 * used there. This header is private to the blobstore and shared with the
 * fsck tool. It knows nothing of bdevs, threads or I/O: it turns 4 KiB pages
 * into host structs and back, and says precisely what is wrong with a page.
 *
 * Conventions:
 *  - struct ust_bs_disk_* are the on-disk layouts. Their integer fields are
 *    little-endian and must never be read or written outside format.c.
 *  - struct ust_bs_* (without "disk") are host-order views.
 *  - Every decoder validates the whole page before it fills anything in, and
 *    returns a negative errno plus a struct ust_bs_fmt_err saying which kind
 *    of damage it found and where.
 */
#ifndef USTOR_BLOBSTORE_FORMAT_H
#define USTOR_BLOBSTORE_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- fixed sizes ---------------------------------------------------------- */

#define UST_BS_PAGE_SIZE 4096u
#define UST_BS_PAGE_HDR_SIZE 64u
#define UST_BS_PAYLOAD_MAX (UST_BS_PAGE_SIZE - UST_BS_PAGE_HDR_SIZE) /* 4032 */
/* One bitmap page describes this many objects (clusters, pages or slots). */
#define UST_BS_BITS_PER_PAGE (UST_BS_PAGE_SIZE * 8u)

/* "USTB" as bytes 55 53 54 42 at offset 0 of every metadata page. */
#define UST_BS_MAGIC 0x42545355u
/* The format's major version. A reader refuses pages with a higher one. */
#define UST_BS_VERSION 1u

/*
 * Checksum: XXH3-64 (XXH3_64bits_withSeed) over all 4096 bytes of the page,
 * with the 8 bytes at UST_BS_CSUM_OFFSET taken as zero. The seed is the ASCII
 * bytes "ustorbs1" read as a little-endian u64. Neither the algorithm, the
 * seed, nor the first 16 bytes of the header may change in any version.
 */
#define UST_BS_CSUM_SEED 0x317362726f747375ull
#define UST_BS_CSUM_OFFSET 8u

/* ---- geometry limits ------------------------------------------------------- */

#define UST_BS_CLUSTER_SIZE_MIN 4096u
#define UST_BS_CLUSTER_SIZE_MAX (1u << 30)
#define UST_BS_CLUSTER_SIZE_DEFAULT (1u << 20)
#define UST_BS_IO_UNIT_MIN 512u
#define UST_BS_IO_UNIT_MAX 4096u
/* Cluster numbers are u32 on disk; 0 is always metadata, so it means "none". */
#define UST_BS_MAX_CLUSTERS 0xffffffffull
#define UST_BS_MAX_BLOBS_LIMIT (1u << 24)
#define UST_BS_DEFAULT_MAX_BLOBS_MIN 64u
#define UST_BS_DEFAULT_MAX_BLOBS_MAX (1u << 20)
#define UST_BS_DEFAULT_POOL_MIN 64u
/* A blob's metadata is one root page plus at most this many chain pages. */
#define UST_BS_MAX_CHAIN_PAGES 64u
/* Cluster entries (u32) held by one extent page. */
#define UST_BS_EXTENTS_PER_PAGE (UST_BS_PAYLOAD_MAX / 4u) /* 1008 */
#define UST_BS_MAX_BLOB_CLUSTERS 0xffffffffull
#define UST_BS_XATTR_NAME_MAX 255u
#define UST_BS_XATTR_VALUE_MAX 65536u
#define UST_BS_BSTYPE_LEN 16u

/* ---- page types and header ----------------------------------------------- */

enum ust_bs_page_type {
	UST_BS_PAGE_SUPER = 1,  /* primary (seq 0) or backup (seq 1) superblock */
	UST_BS_PAGE_ROOT = 2,   /* one half of a blob's root slot */
	UST_BS_PAGE_CHAIN = 3,  /* more descriptors of a blob */
	UST_BS_PAGE_EXTENT = 4, /* cluster map of one extent page range */
};

#define UST_BS_SUPER_PRIMARY 0u
#define UST_BS_SUPER_BACKUP 1u

struct ust_bs_disk_page_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint64_t checksum;
	uint64_t store_id;
	uint64_t blob_id;
	uint64_t generation;
	uint32_t seq;
	uint32_t payload_len;
	uint32_t flags;
	uint32_t reserved0;
	uint64_t reserved1;
} __attribute__((packed));
_Static_assert(sizeof(struct ust_bs_disk_page_hdr) == UST_BS_PAGE_HDR_SIZE, "page header");
_Static_assert(offsetof(struct ust_bs_disk_page_hdr, checksum) == UST_BS_CSUM_OFFSET, "csum");

struct ust_bs_page_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint64_t checksum;
	uint64_t store_id;
	uint64_t blob_id;
	uint64_t generation;
	uint32_t seq;
	uint32_t payload_len;
};

/* ---- superblock ------------------------------------------------------------ */

/* Feature flags. v1 defines none; a reader compares with these masks. */
#define UST_BS_FEAT_INCOMPAT_SUPPORTED 0u
#define UST_BS_FEAT_RO_COMPAT_SUPPORTED 0u
#define UST_BS_FEAT_COMPAT_SUPPORTED 0u

struct ust_bs_disk_region {
	uint32_t start; /* first page (bdev offset / 4096) */
	uint32_t pages;
} __attribute__((packed));
_Static_assert(sizeof(struct ust_bs_disk_region) == 8, "region");

struct ust_bs_disk_super {
	uint8_t bstype[UST_BS_BSTYPE_LEN];
	uint32_t incompat;
	uint32_t ro_compat;
	uint32_t compat;
	uint32_t clean;
	uint32_t page_size;
	uint32_t io_unit_size;
	uint32_t cluster_size;
	uint32_t max_blobs;
	uint64_t bdev_size;
	uint64_t total_clusters;
	uint32_t md_clusters;
	uint32_t reserved0;
	struct ust_bs_disk_region cluster_bitmap;
	struct ust_bs_disk_region page_bitmap;
	struct ust_bs_disk_region blobid_bitmap;
	struct ust_bs_disk_region root_slots;
	struct ust_bs_disk_region md_pool;
	uint64_t super_blob_id;
	uint64_t cluster_bitmap_csum;
	uint64_t page_bitmap_csum;
	uint64_t blobid_bitmap_csum;
} __attribute__((packed));
_Static_assert(sizeof(struct ust_bs_disk_super) == 144, "superblock payload");

struct ust_bs_region {
	uint32_t start;
	uint32_t pages;
};

struct ust_bs_super {
	struct ust_bs_page_hdr hdr; /* generation = superblock generation */
	char bstype[UST_BS_BSTYPE_LEN + 1]; /* NUL-terminated copy */
	uint32_t incompat;
	uint32_t ro_compat;
	uint32_t compat;
	bool clean;
	uint32_t page_size;
	uint32_t io_unit_size;
	uint32_t cluster_size;
	uint32_t max_blobs;
	uint64_t bdev_size;
	uint64_t total_clusters;
	uint32_t md_clusters;
	struct ust_bs_region cluster_bitmap;
	struct ust_bs_region page_bitmap;
	struct ust_bs_region blobid_bitmap;
	struct ust_bs_region root_slots;
	struct ust_bs_region md_pool;
	uint64_t super_blob_id;
	uint64_t cluster_bitmap_csum;
	uint64_t page_bitmap_csum;
	uint64_t blobid_bitmap_csum;
};

/* ---- blob ids ------------------------------------------------------------- */

/* blob id = incarnation << 32 | slot; incarnation >= 1, so id 0 is "none". */
static inline uint32_t ust_bs_blobid_slot(uint64_t id)
{
	return (uint32_t)id;
}

static inline uint32_t ust_bs_blobid_incarnation(uint64_t id)
{
	return (uint32_t)(id >> 32);
}

static inline uint64_t ust_bs_blobid_make(uint32_t incarnation, uint32_t slot)
{
	return ((uint64_t)incarnation << 32) | slot;
}

/* ---- root page -------------------------------------------------------------- */

#define UST_BS_BLOB_THIN (1u << 0)         /* unallocated clusters read from parent or as zeros */
#define UST_BS_BLOB_READ_ONLY (1u << 1)    /* data and metadata immutable */
#define UST_BS_BLOB_SNAPSHOT (1u << 2)     /* a snapshot; implies READ_ONLY */
#define UST_BS_BLOB_EXTENT_PAGES (1u << 3) /* cluster map in extent pages, not runs */
#define UST_BS_BLOB_TOMBSTONE (1u << 4)    /* slot is free; root kept for generation/incarnation */
#define UST_BS_BLOB_FLAGS_KNOWN 0x1fu

struct ust_bs_disk_root {
	uint64_t num_clusters;
	uint64_t parent_id;
	uint32_t flags;
	uint32_t incompat;
	uint32_t ro_compat;
	uint32_t compat;
} __attribute__((packed));
_Static_assert(sizeof(struct ust_bs_disk_root) == 32, "root fixed part");

#define UST_BS_ROOT_DESC_MAX (UST_BS_PAYLOAD_MAX - sizeof(struct ust_bs_disk_root))

struct ust_bs_root {
	struct ust_bs_page_hdr hdr; /* blob_id, generation, seq = slot half */
	uint64_t num_clusters;
	uint64_t parent_id;
	uint32_t flags;
	uint32_t incompat;
	uint32_t ro_compat;
	uint32_t compat;
};

/* ---- descriptors ------------------------------------------------------------- */

enum ust_bs_desc_type {
	UST_BS_DESC_CHAIN = 1,        /* root only: the chain pages, in order */
	UST_BS_DESC_EXTENT_RLE = 2,   /* runs of clusters */
	UST_BS_DESC_EXTENT_TABLE = 3, /* references to extent pages */
	UST_BS_DESC_XATTR = 4,        /* one fragment of an extended attribute */
	UST_BS_DESC_PENDING_OP = 5,   /* root only: an unfinished two-blob operation */
};

/* A reader that does not know the type may skip it (and must keep it). */
#define UST_BS_DESC_F_COMPAT 0x01u
#define UST_BS_DESC_F_KNOWN 0x01u

#define UST_BS_XATTR_F_INTERNAL 0x0001u
#define UST_BS_XATTR_F_KNOWN 0x0001u

enum ust_bs_pending_op_type {
	UST_BS_OP_SNAPSHOT_OF = 1, /* this new snapshot takes the clusters of other_blob */
	UST_BS_OP_MERGED_FROM = 2, /* this clone absorbed snapshot other_blob, to be deleted */
};

struct ust_bs_disk_desc_hdr {
	uint16_t type;
	uint8_t flags;
	uint8_t reserved;
	uint32_t len; /* body bytes; the body is followed by zeros up to 8-byte alignment */
} __attribute__((packed));
_Static_assert(sizeof(struct ust_bs_disk_desc_hdr) == 8, "descriptor header");

/* A hash reference to a page: the page and the checksum it must carry. */
struct ust_bs_disk_page_ref {
	uint32_t page;
	uint32_t reserved;
	uint64_t checksum;
} __attribute__((packed));
_Static_assert(sizeof(struct ust_bs_disk_page_ref) == 16, "page ref");

struct ust_bs_disk_desc_chain {
	uint32_t count;
	uint32_t reserved;
	/* struct ust_bs_disk_page_ref refs[count]; */
} __attribute__((packed));
_Static_assert(sizeof(struct ust_bs_disk_desc_chain) == 8, "chain descriptor");

struct ust_bs_disk_extent_run {
	uint32_t cluster; /* 0: a hole (unallocated) */
	uint32_t count;
} __attribute__((packed));
_Static_assert(sizeof(struct ust_bs_disk_extent_run) == 8, "extent run");

struct ust_bs_disk_desc_extent_rle {
	uint64_t first_cluster; /* blob cluster index of the first run */
	/* struct ust_bs_disk_extent_run runs[]; */
} __attribute__((packed));
_Static_assert(sizeof(struct ust_bs_disk_desc_extent_rle) == 8, "rle descriptor");

struct ust_bs_disk_desc_extent_table {
	uint64_t first_page; /* extent page number of refs[0] */
	/* struct ust_bs_disk_page_ref refs[]; page 0 = no extent page (all holes) */
} __attribute__((packed));
_Static_assert(sizeof(struct ust_bs_disk_desc_extent_table) == 8, "table descriptor");

struct ust_bs_disk_desc_xattr {
	uint16_t name_len;
	uint16_t xflags;
	uint32_t value_len;   /* whole value */
	uint32_t frag_offset; /* where this fragment sits in the value */
	uint32_t frag_len;
	/* uint8_t name[name_len]; uint8_t data[frag_len]; */
} __attribute__((packed));
_Static_assert(sizeof(struct ust_bs_disk_desc_xattr) == 16, "xattr descriptor");

struct ust_bs_disk_desc_pending_op {
	uint32_t op;
	uint32_t reserved;
	uint64_t other_blob_id;
	uint64_t other_generation;
} __attribute__((packed));
_Static_assert(sizeof(struct ust_bs_disk_desc_pending_op) == 24, "pending op descriptor");

/* Most entries a single descriptor can carry in a chain page. */
#define UST_BS_RLE_PER_CHAIN_PAGE \
	((UST_BS_PAYLOAD_MAX - 8u - 8u) / sizeof(struct ust_bs_disk_extent_run)) /* 502 */
#define UST_BS_TABLE_PER_CHAIN_PAGE \
	((UST_BS_PAYLOAD_MAX - 8u - 8u) / sizeof(struct ust_bs_disk_page_ref)) /* 251 */

/*
 * Above this a thin blob's map cannot be written: its extent page
 * references (zero ones included) fill at most the root and
 * UST_BS_MAX_CHAIN_PAGES chain pages, 251 to a page (the root holds fewer),
 * 1008 clusters each - about 16.4 million clusters. Create and resize
 * refuse more at once (-EFBIG) instead of sizing an in-memory map that the
 * next sync could only fail to write; just below the bound that sync can
 * still find the references do not fit (-ENOSPC).
 */
#define UST_BS_THIN_MAX_CLUSTERS \
	((uint64_t)(UST_BS_MAX_CHAIN_PAGES + 1u) * UST_BS_TABLE_PER_CHAIN_PAGE * UST_BS_EXTENTS_PER_PAGE)

/* Host views of descriptors. Pointers point into the page they came from. */
struct ust_bs_desc {
	uint16_t type;
	uint8_t flags;
	uint32_t len;
	uint32_t offset; /* of the descriptor header within the page */
	const uint8_t *body;
};

struct ust_bs_page_ref {
	uint32_t page;
	uint64_t checksum;
};

struct ust_bs_extent_run {
	uint32_t cluster;
	uint32_t count;
};

struct ust_bs_xattr_frag {
	const uint8_t *name;
	uint16_t name_len;
	uint16_t xflags;
	uint32_t value_len;
	uint32_t frag_offset;
	uint32_t frag_len;
	const uint8_t *data;
};

struct ust_bs_pending_op {
	uint32_t op;
	uint64_t other_blob_id;
	uint64_t other_generation;
};

/* ---- errors ------------------------------------------------------------------ */

/*
 * What is wrong with a page. The errno a function returns is the class (what
 * the caller should do); the kind says exactly what was found.
 *   -ENODATA  never written (all zero)
 *   -EBADMSG  checksum mismatch: torn or lost write, or media damage
 *   -EUCLEAN  not a well-formed page of this format
 *   -ESTALE   a good page, but not the one expected (other store, blob, type...)
 *   -ENOTSUP  written by a newer format than this reader understands
 */
enum ust_bs_fmt_damage {
	UST_BS_FMT_OK = 0,
	UST_BS_FMT_BLANK,           /* -ENODATA */
	UST_BS_FMT_BAD_MAGIC,       /* -EUCLEAN */
	UST_BS_FMT_BAD_CHECKSUM,    /* -EBADMSG */
	UST_BS_FMT_NEWER_VERSION,   /* -ENOTSUP */
	UST_BS_FMT_BAD_HEADER,      /* -EUCLEAN: version 0, unknown type, lengths, reserved */
	UST_BS_FMT_NONZERO_TAIL,    /* -EUCLEAN: bytes after the payload not zero */
	UST_BS_FMT_BAD_FIELD,       /* -EUCLEAN: a fixed field out of range or inconsistent */
	UST_BS_FMT_UNKNOWN_FEATURE, /* -ENOTSUP: an incompat feature bit we do not know */
	UST_BS_FMT_DESC_TRUNCATED,  /* -EUCLEAN: descriptor header or body past the payload */
	UST_BS_FMT_DESC_BAD_LENGTH, /* -EUCLEAN: length does not fit the type's layout */
	UST_BS_FMT_DESC_BAD_FIELD,  /* -EUCLEAN: a descriptor value out of range */
	UST_BS_FMT_DESC_MISPLACED,  /* -EUCLEAN: not allowed in this page, or repeated */
	UST_BS_FMT_DESC_UNKNOWN,    /* -ENOTSUP: unknown type without the COMPAT flag */
	UST_BS_FMT_WRONG_TYPE,      /* -ESTALE: valid page of another type */
	UST_BS_FMT_FOREIGN_STORE,   /* -ESTALE: valid page of another blobstore */
	UST_BS_FMT_MISMATCH,        /* -ESTALE: blob id, seq, generation or checksum differs from the reference */
	UST_BS_FMT_DAMAGE_COUNT
};

struct ust_bs_fmt_err {
	enum ust_bs_fmt_damage kind;
	uint32_t offset; /* byte offset in the page of the offending field */
	char msg[160];
};

/* Short fixed description of a kind ("checksum mismatch", ...). */
const char *ust_bs_fmt_damage_str(enum ust_bs_fmt_damage kind);
/* The negative errno documented for a kind (0 for UST_BS_FMT_OK). */
int ust_bs_fmt_damage_errno(enum ust_bs_fmt_damage kind);

/* ---- checksums --------------------------------------------------------------- */

/* The checksum a page must carry (its checksum field taken as zero). */
uint64_t ust_bs_fmt_page_checksum(const void *page);
/* XXH3-64 with UST_BS_CSUM_SEED over a whole region (used for bitmaps). */
uint64_t ust_bs_fmt_region_checksum(const void *buf, size_t len);

/* ---- geometry ------------------------------------------------------------------ */

struct ust_bs_fmt_opts {
	uint32_t cluster_size; /* 0: UST_BS_CLUSTER_SIZE_DEFAULT */
	uint32_t io_unit_size; /* the bdev's block size; required */
	uint32_t max_blobs;    /* 0: default (see the document) */
	uint32_t pool_pages;   /* 0: default; the pool also absorbs the last md cluster's slack */
};

/*
 * Lay out a new store on a bdev of bdev_size bytes: fills every geometry field
 * of *sb and leaves store_id, bstype, generation and checksums to the caller.
 * -EINVAL for bad options, -ENOSPC when the bdev is too small for the
 * metadata plus one data cluster, -EFBIG when it has more than 2^32-1 clusters.
 */
int ust_bs_fmt_layout(uint64_t bdev_size, const struct ust_bs_fmt_opts *opts,
		      struct ust_bs_super *sb);

/* Byte offset of the backup superblock for a store of bdev_size bytes. */
uint64_t ust_bs_fmt_backup_offset(uint64_t bdev_size);

/* What page-level validation of non-superblock pages needs to know. */
struct ust_bs_fmt_geom {
	uint64_t store_id;
	uint64_t total_clusters;
	uint32_t md_clusters;
	uint32_t max_blobs;
	uint32_t pool_start;
	uint32_t pool_pages;
};

void ust_bs_fmt_geom_from_super(const struct ust_bs_super *sb, struct ust_bs_fmt_geom *geom);

/* ---- superblock codec ------------------------------------------------------------- */

/* Writes the whole page (zeroing unused bytes) and its checksum. */
void ust_bs_fmt_super_encode(const struct ust_bs_super *sb, void *page);
/* Validates every field (see the document) and fills *sb. */
int ust_bs_fmt_super_decode(const void *page, struct ust_bs_super *sb, struct ust_bs_fmt_err *err);

/* ---- root and chain pages ------------------------------------------------------------ */

/*
 * Builder for root and chain pages: begin, add descriptors, finish. Adding
 * returns -ENOSPC when the descriptor does not fit (the page is unchanged) and
 * -EINVAL for values the format cannot hold.
 */
struct ust_bs_page_builder {
	uint8_t *page;
	uint32_t used; /* payload bytes written so far */
};

void ust_bs_fmt_root_begin(struct ust_bs_page_builder *b, void *page, const struct ust_bs_root *root);
void ust_bs_fmt_chain_begin(struct ust_bs_page_builder *b, void *page, const struct ust_bs_page_hdr *hdr);
/* Body bytes still available for one more descriptor (0 if none fits). */
uint32_t ust_bs_fmt_room(const struct ust_bs_page_builder *b);
int ust_bs_fmt_add_chain(struct ust_bs_page_builder *b, const struct ust_bs_page_ref *refs, uint32_t count);
int ust_bs_fmt_add_rle(struct ust_bs_page_builder *b, uint64_t first_cluster,
		       const struct ust_bs_extent_run *runs, uint32_t count);
int ust_bs_fmt_add_table(struct ust_bs_page_builder *b, uint64_t first_page,
			 const struct ust_bs_page_ref *refs, uint32_t count);
int ust_bs_fmt_add_xattr(struct ust_bs_page_builder *b, const struct ust_bs_xattr_frag *x);
int ust_bs_fmt_add_pending(struct ust_bs_page_builder *b, const struct ust_bs_pending_op *op);
/* Any descriptor verbatim: to carry an unknown COMPAT descriptor forward. */
int ust_bs_fmt_add_raw(struct ust_bs_page_builder *b, uint16_t type, uint8_t flags,
		       const void *body, uint32_t len);
/* Seals the page: payload length and checksum. Returns the checksum. */
uint64_t ust_bs_fmt_page_finish(struct ust_bs_page_builder *b);
/* The payload length only: a page read back (ust_bs_fmt_desc_next) before it is rebuilt. */
void ust_bs_fmt_page_set_len(struct ust_bs_page_builder *b);

/*
 * Incremental rewrites of a sealed root or chain page (format 9.1: a new
 * version that changes only some references): overwrite the 16-byte page
 * reference at byte offset off of the page, then reseal it under a new
 * generation and seq (root: slot half; chain: position). reseal returns the
 * new checksum. The caller takes off from a descriptor this writer built.
 */
void ust_bs_fmt_put_ref(void *page, uint32_t off, const struct ust_bs_page_ref *ref);
uint64_t ust_bs_fmt_page_reseal(void *page, uint64_t generation, uint32_t seq);

/* Validate a root page completely (header, fixed part, every descriptor). */
int ust_bs_fmt_root_decode(const void *page, const struct ust_bs_fmt_geom *geom,
			   struct ust_bs_root *root, struct ust_bs_fmt_err *err);
/* Validate a chain page completely. */
int ust_bs_fmt_chain_decode(const void *page, const struct ust_bs_fmt_geom *geom,
			    struct ust_bs_page_hdr *hdr, struct ust_bs_fmt_err *err);

/*
 * Walk the descriptors of a root or chain page that its decoder accepted.
 * *cursor starts at 0. Returns 1 with *d filled, 0 at the end, -EUCLEAN if
 * the page is malformed (it re-checks bounds; it never reads past the page).
 */
int ust_bs_fmt_desc_next(const void *page, uint32_t *cursor, struct ust_bs_desc *d);
bool ust_bs_fmt_desc_known(uint16_t type);
/* Entries in a CHAIN, EXTENT_RLE or EXTENT_TABLE descriptor (0 for others). */
uint32_t ust_bs_fmt_desc_count(const struct ust_bs_desc *d);
/* first_cluster of EXTENT_RLE, first_page of EXTENT_TABLE. */
uint64_t ust_bs_fmt_desc_first(const struct ust_bs_desc *d);
void ust_bs_fmt_desc_page_ref(const struct ust_bs_desc *d, uint32_t i, struct ust_bs_page_ref *ref);
void ust_bs_fmt_desc_run(const struct ust_bs_desc *d, uint32_t i, struct ust_bs_extent_run *run);
void ust_bs_fmt_desc_xattr(const struct ust_bs_desc *d, struct ust_bs_xattr_frag *x);
void ust_bs_fmt_desc_pending(const struct ust_bs_desc *d, struct ust_bs_pending_op *op);

/* The i-th extent page reference of a tree (0-based), naming extent page extent_no. */
typedef int (*ust_bs_fmt_extent_ref_fn)(void *arg, uint32_t i, const struct ust_bs_page_ref *ref,
					uint64_t extent_no);
/*
 * The extent page references of a blob's tree: every allocated (non-zero)
 * entry of the EXTENT_TABLE descriptors of pages (the root page, then its
 * chain pages, each accepted by its decoder), in descriptor order. A first
 * pass counts them and, when there are any, calls size(arg, n) so the
 * caller can make room; a second calls add for each. Returns n, or the
 * first negative errno size or add returned (they return 0 on success).
 */
int ust_bs_fmt_extent_refs(const uint8_t *const *pages, uint32_t npages,
			   int (*size)(void *arg, uint32_t n), ust_bs_fmt_extent_ref_fn add,
			   void *arg);

/* ---- extent pages --------------------------------------------------------------- */

/* count entries (1..UST_BS_EXTENTS_PER_PAGE); hdr->seq is the extent page number. */
int ust_bs_fmt_extent_encode(void *page, const struct ust_bs_page_hdr *hdr,
			     const uint32_t *clusters, uint32_t count);
/* clusters must hold UST_BS_EXTENTS_PER_PAGE entries; *count gets the number used. */
int ust_bs_fmt_extent_decode(const void *page, const struct ust_bs_fmt_geom *geom,
			     struct ust_bs_page_hdr *hdr, uint32_t *clusters, uint32_t *count,
			     struct ust_bs_fmt_err *err);

/* ---- references ---------------------------------------------------------------- */

/*
 * After a referenced page decoded cleanly: is it the page the reference meant?
 * Checks type, blob id, seq, that its generation is not newer than the
 * referring root's, and that its checksum equals the one in the reference.
 * -ESTALE with UST_BS_FMT_WRONG_TYPE or UST_BS_FMT_MISMATCH otherwise.
 */
int ust_bs_fmt_ref_check(const struct ust_bs_page_hdr *hdr, uint16_t type, uint64_t blob_id,
			 uint32_t seq, uint64_t max_generation, uint64_t ref_checksum,
			 struct ust_bs_fmt_err *err);

#endif /* USTOR_BLOBSTORE_FORMAT_H */
