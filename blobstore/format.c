/*
 * Blobstore on-disk format codec: the one place where metadata pages are
 * converted between their little-endian on-disk form and host structs.
 *
 * Guarantees:
 *  - Decoders validate the whole page before returning anything: magic,
 *    checksum, version, header, every fixed field, and the bounds, length and
 *    contents of every descriptor. A page from disk is never trusted piecemeal.
 *  - Every rejection names its kind of damage and the byte offset where it was
 *    found (struct ust_bs_fmt_err), and returns the errno class documented in
 *    format.h and docs/blobstore-format.md.
 *  - Nothing here reads outside the 4096-byte page, whatever the page holds.
 *  - Encoders write every byte of the page (unused bytes zero), so the same
 *    host struct always yields the same page and the same checksum.
 *  - No I/O, no allocation, no global state: the blobstore and the fsck tool
 *    share this file.
 */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <xxhash.h>
/*
 * XXH3 through libxxhash's dispatcher: the same hashes, with the widest
 * vector unit the CPU has (AVX2 hashes a 4 KiB page 2.5 times as fast as
 * the baseline SSE2 build); every metadata write hashes several pages.
 */
#include <xxh_x86dispatch.h>

#include "ustor/env.h"

#include "format.h"

_Static_assert(UST_BS_PAYLOAD_MAX % 8 == 0, "payload keeps descriptors 8-byte aligned");
_Static_assert(sizeof(struct ust_bs_disk_root) % 8 == 0, "root fixed part keeps alignment");
_Static_assert(UST_BS_EXTENTS_PER_PAGE == 1008, "documented extent page capacity");
_Static_assert(UST_BS_RLE_PER_CHAIN_PAGE == 502, "documented runs per chain page");
_Static_assert(UST_BS_TABLE_PER_CHAIN_PAGE == 251, "documented table refs per chain page");

#define DESC_HDR_SIZE ((uint32_t)sizeof(struct ust_bs_disk_desc_hdr))
#define ROOT_FIXED_SIZE ((uint32_t)sizeof(struct ust_bs_disk_root))
#define SUPER_PAYLOAD_SIZE ((uint32_t)sizeof(struct ust_bs_disk_super))

/* ---- errors ------------------------------------------------------------------- */

static const struct {
	const char *str;
	int err;
} g_damage[UST_BS_FMT_DAMAGE_COUNT] = {
	[UST_BS_FMT_OK] = {"no damage", 0},
	[UST_BS_FMT_BLANK] = {"blank page (never written)", -ENODATA},
	[UST_BS_FMT_BAD_MAGIC] = {"bad magic", -EUCLEAN},
	[UST_BS_FMT_BAD_CHECKSUM] = {"checksum mismatch", -EBADMSG},
	[UST_BS_FMT_NEWER_VERSION] = {"newer format version", -ENOTSUP},
	[UST_BS_FMT_BAD_HEADER] = {"malformed page header", -EUCLEAN},
	[UST_BS_FMT_NONZERO_TAIL] = {"non-zero bytes after payload", -EUCLEAN},
	[UST_BS_FMT_BAD_FIELD] = {"field out of range", -EUCLEAN},
	[UST_BS_FMT_UNKNOWN_FEATURE] = {"unknown incompatible feature", -ENOTSUP},
	[UST_BS_FMT_DESC_TRUNCATED] = {"descriptor runs past payload", -EUCLEAN},
	[UST_BS_FMT_DESC_BAD_LENGTH] = {"descriptor length invalid for its type", -EUCLEAN},
	[UST_BS_FMT_DESC_BAD_FIELD] = {"descriptor field out of range", -EUCLEAN},
	[UST_BS_FMT_DESC_MISPLACED] = {"descriptor not allowed here", -EUCLEAN},
	[UST_BS_FMT_DESC_UNKNOWN] = {"unknown incompatible descriptor", -ENOTSUP},
	[UST_BS_FMT_WRONG_TYPE] = {"wrong page type", -ESTALE},
	[UST_BS_FMT_FOREIGN_STORE] = {"page of another blobstore", -ESTALE},
	[UST_BS_FMT_MISMATCH] = {"page is not the one referenced", -ESTALE},
};

const char *ust_bs_fmt_damage_str(enum ust_bs_fmt_damage kind)
{
	if ((unsigned)kind >= UST_BS_FMT_DAMAGE_COUNT) {
		return "unknown damage";
	}
	return g_damage[kind].str;
}

int ust_bs_fmt_damage_errno(enum ust_bs_fmt_damage kind)
{
	if ((unsigned)kind >= UST_BS_FMT_DAMAGE_COUNT) {
		return -EINVAL;
	}
	return g_damage[kind].err;
}

static int fail(struct ust_bs_fmt_err *err, enum ust_bs_fmt_damage kind, uint32_t offset,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail(struct ust_bs_fmt_err *err, enum ust_bs_fmt_damage kind, uint32_t offset,
		const char *fmt, ...)
{
	if (err != NULL) {
		va_list ap;
		int n;

		err->kind = kind;
		err->offset = offset;
		n = snprintf(err->msg, sizeof(err->msg), "%s at byte %u: ",
			     ust_bs_fmt_damage_str(kind), offset);
		if (n > 0 && (size_t)n < sizeof(err->msg)) {
			va_start(ap, fmt);
			vsnprintf(err->msg + n, sizeof(err->msg) - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return g_damage[kind].err;
}

static void err_clear(struct ust_bs_fmt_err *err)
{
	if (err != NULL) {
		err->kind = UST_BS_FMT_OK;
		err->offset = 0;
		err->msg[0] = '\0';
	}
}

/* ---- small helpers -------------------------------------------------------------- */

static bool is_pow2(uint64_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

static uint64_t div_round_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

static uint32_t align8(uint32_t v)
{
	return (v + 7u) & ~7u;
}

/* A well-formed blob id: slot inside the store, incarnation at least 1. */
static bool blobid_ok(uint64_t id, uint32_t max_blobs)
{
	return ust_bs_blobid_incarnation(id) != 0 && ust_bs_blobid_slot(id) < max_blobs;
}

/* ---- checksums ------------------------------------------------------------------ */

uint64_t ust_bs_fmt_page_checksum(const void *page)
{
	uint8_t copy[UST_BS_PAGE_SIZE];

	/* The stored checksum cannot cover itself; it is hashed as zero. */
	memcpy(copy, page, sizeof(copy));
	memset(copy + UST_BS_CSUM_OFFSET, 0, sizeof(uint64_t));
	return ust_bs_fmt_region_checksum(copy, sizeof(copy));
}

uint64_t ust_bs_fmt_region_checksum(const void *buf, size_t len)
{
	return XXH3_64bits_withSeed(buf, len, UST_BS_CSUM_SEED);
}

/* ---- page header ------------------------------------------------------------------ */

static void hdr_encode(uint8_t *page, const struct ust_bs_page_hdr *h, uint16_t type,
		       uint32_t payload_len)
{
	struct ust_bs_disk_page_hdr d;

	memset(&d, 0, sizeof(d));
	d.magic = htole32(UST_BS_MAGIC);
	d.version = htole16(UST_BS_VERSION);
	d.type = htole16(type);
	d.store_id = htole64(h->store_id);
	d.blob_id = htole64(h->blob_id);
	d.generation = htole64(h->generation);
	d.seq = htole32(h->seq);
	d.payload_len = htole32(payload_len);
	memcpy(page, &d, sizeof(d));
}

/*
 * Zeroing the field first lets the page be hashed where it lies, without
 * ust_bs_fmt_page_checksum's copy: every metadata write seals pages.
 */
static void page_seal(uint8_t *page, uint64_t *csum_out)
{
	uint64_t csum, le;

	memset(page + UST_BS_CSUM_OFFSET, 0, sizeof(uint64_t));
	csum = ust_bs_fmt_region_checksum(page, UST_BS_PAGE_SIZE);
	le = htole64(csum);

	memcpy(page + UST_BS_CSUM_OFFSET, &le, sizeof(le));
	if (csum_out != NULL) {
		*csum_out = csum;
	}
}

/*
 * The checks every page gets, in an order that makes each verdict meaningful:
 * blank before magic (zeroed slots are normal), magic before checksum (so
 * "not ours" differs from "ours but damaged"), checksum before any other
 * field (a flipped bit anywhere is reported as a checksum error, never as a
 * strange value), version before layout (a newer page may be laid out
 * differently beyond the fixed first 16 bytes).
 */
static int hdr_check(const uint8_t *page, uint16_t expect_type, const struct ust_bs_fmt_geom *geom,
		     struct ust_bs_page_hdr *h, struct ust_bs_fmt_err *err)
{
	struct ust_bs_disk_page_hdr d;
	uint64_t want;
	uint32_t tail;

	if (ust_mem_is_zero(page, UST_BS_PAGE_SIZE)) {
		return fail(err, UST_BS_FMT_BLANK, 0, "page is all zero");
	}
	memcpy(&d, page, sizeof(d));
	h->magic = le32toh(d.magic);
	h->version = le16toh(d.version);
	h->type = le16toh(d.type);
	h->checksum = le64toh(d.checksum);
	h->store_id = le64toh(d.store_id);
	h->blob_id = le64toh(d.blob_id);
	h->generation = le64toh(d.generation);
	h->seq = le32toh(d.seq);
	h->payload_len = le32toh(d.payload_len);

	if (h->magic != UST_BS_MAGIC) {
		return fail(err, UST_BS_FMT_BAD_MAGIC, 0, "magic 0x%08x, expected 0x%08x",
			    h->magic, UST_BS_MAGIC);
	}
	want = ust_bs_fmt_page_checksum(page);
	if (h->checksum != want) {
		return fail(err, UST_BS_FMT_BAD_CHECKSUM, UST_BS_CSUM_OFFSET,
			    "stored 0x%016llx, computed 0x%016llx",
			    (unsigned long long)h->checksum, (unsigned long long)want);
	}
	if (h->version > UST_BS_VERSION) {
		return fail(err, UST_BS_FMT_NEWER_VERSION, offsetof(struct ust_bs_disk_page_hdr, version),
			    "page version %u, this reader supports %u", h->version, UST_BS_VERSION);
	}
	if (h->version == 0) {
		return fail(err, UST_BS_FMT_BAD_HEADER, offsetof(struct ust_bs_disk_page_hdr, version),
			    "page version 0");
	}
	if (h->type < UST_BS_PAGE_SUPER || h->type > UST_BS_PAGE_EXTENT) {
		return fail(err, UST_BS_FMT_BAD_HEADER, offsetof(struct ust_bs_disk_page_hdr, type),
			    "unknown page type %u", h->type);
	}
	if (h->type != expect_type) {
		return fail(err, UST_BS_FMT_WRONG_TYPE, offsetof(struct ust_bs_disk_page_hdr, type),
			    "page type %u, expected %u", h->type, expect_type);
	}
	if (h->store_id == 0) {
		return fail(err, UST_BS_FMT_BAD_HEADER, offsetof(struct ust_bs_disk_page_hdr, store_id),
			    "store id 0");
	}
	if (geom != NULL && h->store_id != geom->store_id) {
		return fail(err, UST_BS_FMT_FOREIGN_STORE, offsetof(struct ust_bs_disk_page_hdr, store_id),
			    "store id 0x%016llx, this store is 0x%016llx",
			    (unsigned long long)h->store_id, (unsigned long long)geom->store_id);
	}
	if (d.flags != 0 || d.reserved0 != 0 || d.reserved1 != 0) {
		return fail(err, UST_BS_FMT_BAD_HEADER, offsetof(struct ust_bs_disk_page_hdr, flags),
			    "reserved header fields not zero");
	}
	if (h->generation == 0) {
		return fail(err, UST_BS_FMT_BAD_HEADER, offsetof(struct ust_bs_disk_page_hdr, generation),
			    "generation 0");
	}
	if (h->payload_len > UST_BS_PAYLOAD_MAX) {
		return fail(err, UST_BS_FMT_BAD_HEADER, offsetof(struct ust_bs_disk_page_hdr, payload_len),
			    "payload length %u exceeds %u", h->payload_len, UST_BS_PAYLOAD_MAX);
	}
	tail = UST_BS_PAGE_HDR_SIZE + h->payload_len;
	if (!ust_mem_is_zero(page + tail, UST_BS_PAGE_SIZE - tail)) {
		uint32_t off = tail;

		while (page[off] == 0) {
			off++;
		}
		return fail(err, UST_BS_FMT_NONZERO_TAIL, off, "payload ends at byte %u", tail);
	}
	return 0;
}

/* ---- geometry -------------------------------------------------------------------- */

uint64_t ust_bs_fmt_backup_offset(uint64_t bdev_size)
{
	uint64_t aligned = bdev_size & ~(uint64_t)(UST_BS_PAGE_SIZE - 1);

	return aligned >= UST_BS_PAGE_SIZE ? aligned - UST_BS_PAGE_SIZE : 0;
}

static uint32_t bitmap_pages(uint64_t bits)
{
	uint64_t p = div_round_up(bits, UST_BS_BITS_PER_PAGE);

	return p == 0 ? 1 : (uint32_t)p;
}

int ust_bs_fmt_layout(uint64_t bdev_size, const struct ust_bs_fmt_opts *opts,
		      struct ust_bs_super *sb)
{
	uint32_t cluster_size = opts->cluster_size ? opts->cluster_size : UST_BS_CLUSTER_SIZE_DEFAULT;
	uint32_t io_unit = opts->io_unit_size;
	uint64_t total_clusters, max_blobs, pool_min, pages_per_cluster;
	uint64_t cbm, pbm, bbm, fixed, md_clusters, md_pages, pool;

	if (!is_pow2(cluster_size) || cluster_size < UST_BS_CLUSTER_SIZE_MIN ||
	    cluster_size > UST_BS_CLUSTER_SIZE_MAX) {
		return -EINVAL;
	}
	if (!is_pow2(io_unit) || io_unit < UST_BS_IO_UNIT_MIN || io_unit > UST_BS_IO_UNIT_MAX) {
		return -EINVAL;
	}
	if (bdev_size < 2ull * UST_BS_PAGE_SIZE) {
		return -ENOSPC;
	}
	total_clusters = ust_bs_fmt_backup_offset(bdev_size) / cluster_size;
	if (total_clusters > UST_BS_MAX_CLUSTERS) {
		return -EFBIG;
	}
	pages_per_cluster = cluster_size / UST_BS_PAGE_SIZE;

	max_blobs = opts->max_blobs;
	if (max_blobs == 0) {
		max_blobs = total_clusters / 4;
		if (max_blobs < UST_BS_DEFAULT_MAX_BLOBS_MIN) {
			max_blobs = UST_BS_DEFAULT_MAX_BLOBS_MIN;
		}
		if (max_blobs > UST_BS_DEFAULT_MAX_BLOBS_MAX) {
			max_blobs = UST_BS_DEFAULT_MAX_BLOBS_MAX;
		}
	}
	if (max_blobs > UST_BS_MAX_BLOBS_LIMIT) {
		return -EINVAL;
	}
	pool_min = opts->pool_pages ? opts->pool_pages : max_blobs;
	if (pool_min < UST_BS_DEFAULT_POOL_MIN && opts->pool_pages == 0) {
		pool_min = UST_BS_DEFAULT_POOL_MIN;
	}

	cbm = bitmap_pages(total_clusters);
	bbm = bitmap_pages(max_blobs);
	pbm = bitmap_pages(pool_min);
	md_clusters = div_round_up(1 + cbm + pbm + bbm + 2 * max_blobs + pool_min, pages_per_cluster);
	/*
	 * The pool takes every page up to the end of the last metadata cluster;
	 * a bigger pool may need a bigger page bitmap, which may in turn push the
	 * pool below its minimum. Each pass only grows, so this settles quickly.
	 */
	for (;;) {
		md_pages = md_clusters * pages_per_cluster;
		fixed = 1 + cbm + pbm + bbm + 2 * max_blobs;
		if (md_pages < fixed + pool_min) {
			md_clusters++;
			continue;
		}
		pool = md_pages - fixed;
		if (bitmap_pages(pool) > pbm) {
			pbm = bitmap_pages(pool);
			continue;
		}
		break;
	}
	if (md_clusters >= total_clusters || md_pages > UINT32_MAX) {
		return -ENOSPC;
	}

	memset(sb, 0, sizeof(*sb));
	sb->hdr.magic = UST_BS_MAGIC;
	sb->hdr.version = UST_BS_VERSION;
	sb->hdr.type = UST_BS_PAGE_SUPER;
	sb->hdr.generation = 1;
	sb->page_size = UST_BS_PAGE_SIZE;
	sb->io_unit_size = io_unit;
	sb->cluster_size = cluster_size;
	sb->max_blobs = (uint32_t)max_blobs;
	sb->bdev_size = bdev_size;
	sb->total_clusters = total_clusters;
	sb->md_clusters = (uint32_t)md_clusters;
	sb->cluster_bitmap.start = 1;
	sb->cluster_bitmap.pages = (uint32_t)cbm;
	sb->page_bitmap.start = sb->cluster_bitmap.start + (uint32_t)cbm;
	sb->page_bitmap.pages = (uint32_t)pbm;
	sb->blobid_bitmap.start = sb->page_bitmap.start + (uint32_t)pbm;
	sb->blobid_bitmap.pages = (uint32_t)bbm;
	sb->root_slots.start = sb->blobid_bitmap.start + (uint32_t)bbm;
	sb->root_slots.pages = (uint32_t)(2 * max_blobs);
	sb->md_pool.start = sb->root_slots.start + sb->root_slots.pages;
	sb->md_pool.pages = (uint32_t)pool;
	return 0;
}

void ust_bs_fmt_geom_from_super(const struct ust_bs_super *sb, struct ust_bs_fmt_geom *geom)
{
	geom->store_id = sb->hdr.store_id;
	geom->total_clusters = sb->total_clusters;
	geom->md_clusters = sb->md_clusters;
	geom->max_blobs = sb->max_blobs;
	geom->pool_start = sb->md_pool.start;
	geom->pool_pages = sb->md_pool.pages;
}

/* ---- superblock --------------------------------------------------------------------- */

static void region_put(struct ust_bs_disk_region *d, const struct ust_bs_region *r)
{
	d->start = htole32(r->start);
	d->pages = htole32(r->pages);
}

static void region_get(struct ust_bs_region *r, const struct ust_bs_disk_region *d)
{
	r->start = le32toh(d->start);
	r->pages = le32toh(d->pages);
}

void ust_bs_fmt_super_encode(const struct ust_bs_super *sb, void *page)
{
	struct ust_bs_disk_super d;
	uint8_t *p = page;

	memset(p, 0, UST_BS_PAGE_SIZE);
	hdr_encode(p, &sb->hdr, UST_BS_PAGE_SUPER, SUPER_PAYLOAD_SIZE);

	memset(&d, 0, sizeof(d));
	memcpy(d.bstype, sb->bstype, strnlen(sb->bstype, UST_BS_BSTYPE_LEN));
	d.incompat = htole32(sb->incompat);
	d.ro_compat = htole32(sb->ro_compat);
	d.compat = htole32(sb->compat);
	/* A backup never claims the bitmaps are current: only the primary may. */
	d.clean = htole32(sb->clean && sb->hdr.seq == UST_BS_SUPER_PRIMARY ? 1 : 0);
	d.page_size = htole32(sb->page_size);
	d.io_unit_size = htole32(sb->io_unit_size);
	d.cluster_size = htole32(sb->cluster_size);
	d.max_blobs = htole32(sb->max_blobs);
	d.bdev_size = htole64(sb->bdev_size);
	d.total_clusters = htole64(sb->total_clusters);
	d.md_clusters = htole32(sb->md_clusters);
	region_put(&d.cluster_bitmap, &sb->cluster_bitmap);
	region_put(&d.page_bitmap, &sb->page_bitmap);
	region_put(&d.blobid_bitmap, &sb->blobid_bitmap);
	region_put(&d.root_slots, &sb->root_slots);
	region_put(&d.md_pool, &sb->md_pool);
	d.super_blob_id = htole64(sb->super_blob_id);
	d.cluster_bitmap_csum = htole64(sb->cluster_bitmap_csum);
	d.page_bitmap_csum = htole64(sb->page_bitmap_csum);
	d.blobid_bitmap_csum = htole64(sb->blobid_bitmap_csum);
	memcpy(p + UST_BS_PAGE_HDR_SIZE, &d, sizeof(d));
	page_seal(p, NULL);
}

#define SB_OFF(field) ((uint32_t)(UST_BS_PAGE_HDR_SIZE + offsetof(struct ust_bs_disk_super, field)))

static int super_geometry_check(const struct ust_bs_super *sb, struct ust_bs_fmt_err *err)
{
	uint64_t expect_clusters, end, md_bytes;
	const struct ust_bs_region *order[5] = {
		&sb->cluster_bitmap, &sb->page_bitmap, &sb->blobid_bitmap, &sb->root_slots, &sb->md_pool,
	};
	static const uint32_t order_off[5] = {
		SB_OFF(cluster_bitmap), SB_OFF(page_bitmap), SB_OFF(blobid_bitmap),
		SB_OFF(root_slots), SB_OFF(md_pool),
	};
	uint32_t i;

	if (sb->page_size != UST_BS_PAGE_SIZE) {
		return fail(err, UST_BS_FMT_BAD_FIELD, SB_OFF(page_size), "page size %u, must be %u",
			    sb->page_size, UST_BS_PAGE_SIZE);
	}
	if (!is_pow2(sb->io_unit_size) || sb->io_unit_size < UST_BS_IO_UNIT_MIN ||
	    sb->io_unit_size > UST_BS_IO_UNIT_MAX) {
		return fail(err, UST_BS_FMT_BAD_FIELD, SB_OFF(io_unit_size), "io unit %u",
			    sb->io_unit_size);
	}
	if (!is_pow2(sb->cluster_size) || sb->cluster_size < UST_BS_CLUSTER_SIZE_MIN ||
	    sb->cluster_size > UST_BS_CLUSTER_SIZE_MAX) {
		return fail(err, UST_BS_FMT_BAD_FIELD, SB_OFF(cluster_size), "cluster size %u",
			    sb->cluster_size);
	}
	if (sb->bdev_size < 2ull * UST_BS_PAGE_SIZE) {
		return fail(err, UST_BS_FMT_BAD_FIELD, SB_OFF(bdev_size), "bdev size %llu",
			    (unsigned long long)sb->bdev_size);
	}
	expect_clusters = ust_bs_fmt_backup_offset(sb->bdev_size) / sb->cluster_size;
	if (sb->total_clusters != expect_clusters || sb->total_clusters > UST_BS_MAX_CLUSTERS) {
		return fail(err, UST_BS_FMT_BAD_FIELD, SB_OFF(total_clusters),
			    "total clusters %llu, bdev size implies %llu",
			    (unsigned long long)sb->total_clusters, (unsigned long long)expect_clusters);
	}
	if (sb->max_blobs == 0 || sb->max_blobs > UST_BS_MAX_BLOBS_LIMIT) {
		return fail(err, UST_BS_FMT_BAD_FIELD, SB_OFF(max_blobs), "max blobs %u", sb->max_blobs);
	}
	/* Regions follow the superblock back to back, in this order, with no gaps. */
	end = 1;
	for (i = 0; i < 5; i++) {
		if (order[i]->start != end || order[i]->pages == 0) {
			return fail(err, UST_BS_FMT_BAD_FIELD, order_off[i],
				    "region %u at page %u (%u pages), expected to start at page %llu",
				    i, order[i]->start, order[i]->pages, (unsigned long long)end);
		}
		end += order[i]->pages;
	}
	if ((uint64_t)sb->cluster_bitmap.pages * UST_BS_BITS_PER_PAGE < sb->total_clusters) {
		return fail(err, UST_BS_FMT_BAD_FIELD, SB_OFF(cluster_bitmap),
			    "cluster bitmap too small");
	}
	if ((uint64_t)sb->page_bitmap.pages * UST_BS_BITS_PER_PAGE < sb->md_pool.pages) {
		return fail(err, UST_BS_FMT_BAD_FIELD, SB_OFF(page_bitmap), "page bitmap too small");
	}
	if ((uint64_t)sb->blobid_bitmap.pages * UST_BS_BITS_PER_PAGE < sb->max_blobs) {
		return fail(err, UST_BS_FMT_BAD_FIELD, SB_OFF(blobid_bitmap), "blob id bitmap too small");
	}
	if (sb->root_slots.pages != 2ull * sb->max_blobs) {
		return fail(err, UST_BS_FMT_BAD_FIELD, SB_OFF(root_slots),
			    "root slots %u pages, max blobs %u needs %llu", sb->root_slots.pages,
			    sb->max_blobs, 2ull * sb->max_blobs);
	}
	md_bytes = (uint64_t)sb->md_clusters * sb->cluster_size;
	if (sb->md_clusters == 0 || end * UST_BS_PAGE_SIZE != md_bytes ||
	    sb->md_clusters >= sb->total_clusters) {
		return fail(err, UST_BS_FMT_BAD_FIELD, SB_OFF(md_clusters),
			    "metadata clusters %u do not end where the pool ends (page %llu)",
			    sb->md_clusters, (unsigned long long)end);
	}
	if (sb->super_blob_id != 0 && !blobid_ok(sb->super_blob_id, sb->max_blobs)) {
		return fail(err, UST_BS_FMT_BAD_FIELD, SB_OFF(super_blob_id), "super blob id 0x%llx",
			    (unsigned long long)sb->super_blob_id);
	}
	return 0;
}

int ust_bs_fmt_super_decode(const void *page, struct ust_bs_super *sb, struct ust_bs_fmt_err *err)
{
	const uint8_t *p = page;
	struct ust_bs_disk_super d;
	struct ust_bs_super s;
	uint32_t clean, n;
	int rc;

	err_clear(err);
	memset(&s, 0, sizeof(s));
	rc = hdr_check(p, UST_BS_PAGE_SUPER, NULL, &s.hdr, err);
	if (rc != 0) {
		return rc;
	}
	if (s.hdr.payload_len != SUPER_PAYLOAD_SIZE) {
		return fail(err, UST_BS_FMT_BAD_HEADER, offsetof(struct ust_bs_disk_page_hdr, payload_len),
			    "superblock payload %u bytes, expected %u", s.hdr.payload_len,
			    SUPER_PAYLOAD_SIZE);
	}
	if (s.hdr.blob_id != 0) {
		return fail(err, UST_BS_FMT_BAD_HEADER, offsetof(struct ust_bs_disk_page_hdr, blob_id),
			    "superblock carries blob id 0x%llx", (unsigned long long)s.hdr.blob_id);
	}
	if (s.hdr.seq != UST_BS_SUPER_PRIMARY && s.hdr.seq != UST_BS_SUPER_BACKUP) {
		return fail(err, UST_BS_FMT_BAD_HEADER, offsetof(struct ust_bs_disk_page_hdr, seq),
			    "superblock copy %u", s.hdr.seq);
	}

	memcpy(&d, p + UST_BS_PAGE_HDR_SIZE, sizeof(d));
	s.incompat = le32toh(d.incompat);
	s.ro_compat = le32toh(d.ro_compat);
	s.compat = le32toh(d.compat);
	if (s.incompat & ~UST_BS_FEAT_INCOMPAT_SUPPORTED) {
		return fail(err, UST_BS_FMT_UNKNOWN_FEATURE, SB_OFF(incompat),
			    "incompat features 0x%x not supported",
			    s.incompat & ~UST_BS_FEAT_INCOMPAT_SUPPORTED);
	}
	/* The type name must be text: NUL-padded, nothing after the first NUL. */
	n = (uint32_t)strnlen((const char *)d.bstype, UST_BS_BSTYPE_LEN);
	if (!ust_mem_is_zero(d.bstype + n, UST_BS_BSTYPE_LEN - n)) {
		return fail(err, UST_BS_FMT_BAD_FIELD, SB_OFF(bstype), "bstype not NUL-padded");
	}
	memcpy(s.bstype, d.bstype, n);
	s.bstype[n] = '\0';
	clean = le32toh(d.clean);
	if (clean > 1 || (clean == 1 && s.hdr.seq == UST_BS_SUPER_BACKUP)) {
		return fail(err, UST_BS_FMT_BAD_FIELD, SB_OFF(clean), "clean flag %u in %s copy",
			    clean, s.hdr.seq == UST_BS_SUPER_BACKUP ? "backup" : "primary");
	}
	s.clean = clean == 1;
	if (d.reserved0 != 0) {
		return fail(err, UST_BS_FMT_BAD_FIELD, SB_OFF(reserved0), "reserved field not zero");
	}
	s.page_size = le32toh(d.page_size);
	s.io_unit_size = le32toh(d.io_unit_size);
	s.cluster_size = le32toh(d.cluster_size);
	s.max_blobs = le32toh(d.max_blobs);
	s.bdev_size = le64toh(d.bdev_size);
	s.total_clusters = le64toh(d.total_clusters);
	s.md_clusters = le32toh(d.md_clusters);
	region_get(&s.cluster_bitmap, &d.cluster_bitmap);
	region_get(&s.page_bitmap, &d.page_bitmap);
	region_get(&s.blobid_bitmap, &d.blobid_bitmap);
	region_get(&s.root_slots, &d.root_slots);
	region_get(&s.md_pool, &d.md_pool);
	s.super_blob_id = le64toh(d.super_blob_id);
	s.cluster_bitmap_csum = le64toh(d.cluster_bitmap_csum);
	s.page_bitmap_csum = le64toh(d.page_bitmap_csum);
	s.blobid_bitmap_csum = le64toh(d.blobid_bitmap_csum);
	rc = super_geometry_check(&s, err);
	if (rc != 0) {
		return rc;
	}
	*sb = s;
	return 0;
}

/* ---- descriptors: encoding ------------------------------------------------------------ */

static int desc_put(struct ust_bs_page_builder *b, uint16_t type, uint8_t flags,
		    const void *head, uint32_t head_len, const void *tail, uint32_t tail_len)
{
	struct ust_bs_disk_desc_hdr h;
	uint32_t len = head_len + tail_len;
	uint8_t *at;

	if (len > ust_bs_fmt_room(b) || DESC_HDR_SIZE + align8(len) > UST_BS_PAYLOAD_MAX - b->used) {
		return -ENOSPC;
	}
	h.type = htole16(type);
	h.flags = flags;
	h.reserved = 0;
	h.len = htole32(len);
	at = b->page + UST_BS_PAGE_HDR_SIZE + b->used;
	memcpy(at, &h, sizeof(h));
	if (head_len != 0) {
		memcpy(at + DESC_HDR_SIZE, head, head_len);
	}
	if (tail_len != 0) {
		memcpy(at + DESC_HDR_SIZE + head_len, tail, tail_len);
	}
	/* Padding bytes are already zero: begin() cleared the page. */
	b->used += DESC_HDR_SIZE + align8(len);
	return 0;
}

uint32_t ust_bs_fmt_room(const struct ust_bs_page_builder *b)
{
	uint32_t left = UST_BS_PAYLOAD_MAX - b->used;

	return left >= DESC_HDR_SIZE ? left - DESC_HDR_SIZE : 0;
}

void ust_bs_fmt_root_begin(struct ust_bs_page_builder *b, void *page, const struct ust_bs_root *root)
{
	struct ust_bs_disk_root d;

	b->page = page;
	memset(b->page, 0, UST_BS_PAGE_SIZE);
	hdr_encode(b->page, &root->hdr, UST_BS_PAGE_ROOT, 0);
	d.num_clusters = htole64(root->num_clusters);
	d.parent_id = htole64(root->parent_id);
	d.flags = htole32(root->flags);
	d.incompat = htole32(root->incompat);
	d.ro_compat = htole32(root->ro_compat);
	d.compat = htole32(root->compat);
	memcpy(b->page + UST_BS_PAGE_HDR_SIZE, &d, sizeof(d));
	b->used = ROOT_FIXED_SIZE;
}

void ust_bs_fmt_chain_begin(struct ust_bs_page_builder *b, void *page, const struct ust_bs_page_hdr *hdr)
{
	b->page = page;
	memset(b->page, 0, UST_BS_PAGE_SIZE);
	hdr_encode(b->page, hdr, UST_BS_PAGE_CHAIN, 0);
	b->used = 0;
}

static int refs_put(struct ust_bs_page_builder *b, uint16_t type, const void *head,
		    const struct ust_bs_page_ref *refs, uint32_t count)
{
	struct ust_bs_disk_page_ref d[UST_BS_TABLE_PER_CHAIN_PAGE];
	uint32_t i;

	if (count == 0) {
		return -EINVAL;
	}
	if (count > UST_BS_TABLE_PER_CHAIN_PAGE) {
		return -ENOSPC;
	}
	for (i = 0; i < count; i++) {
		d[i].page = htole32(refs[i].page);
		d[i].reserved = 0;
		d[i].checksum = htole64(refs[i].checksum);
	}
	return desc_put(b, type, 0, head, 8, d, count * (uint32_t)sizeof(d[0]));
}

int ust_bs_fmt_add_chain(struct ust_bs_page_builder *b, const struct ust_bs_page_ref *refs, uint32_t count)
{
	struct ust_bs_disk_desc_chain c;

	if (count > UST_BS_MAX_CHAIN_PAGES) {
		return -EINVAL;
	}
	c.count = htole32(count);
	c.reserved = 0;
	return refs_put(b, UST_BS_DESC_CHAIN, &c, refs, count);
}

int ust_bs_fmt_add_table(struct ust_bs_page_builder *b, uint64_t first_page,
			 const struct ust_bs_page_ref *refs, uint32_t count)
{
	struct ust_bs_disk_desc_extent_table t;

	t.first_page = htole64(first_page);
	return refs_put(b, UST_BS_DESC_EXTENT_TABLE, &t, refs, count);
}

int ust_bs_fmt_add_rle(struct ust_bs_page_builder *b, uint64_t first_cluster,
		       const struct ust_bs_extent_run *runs, uint32_t count)
{
	struct ust_bs_disk_desc_extent_rle r;
	struct ust_bs_disk_extent_run d[UST_BS_RLE_PER_CHAIN_PAGE];
	uint32_t i;

	if (count == 0) {
		return -EINVAL;
	}
	if (count > UST_BS_RLE_PER_CHAIN_PAGE) {
		return -ENOSPC;
	}
	for (i = 0; i < count; i++) {
		if (runs[i].count == 0) {
			return -EINVAL;
		}
		d[i].cluster = htole32(runs[i].cluster);
		d[i].count = htole32(runs[i].count);
	}
	r.first_cluster = htole64(first_cluster);
	return desc_put(b, UST_BS_DESC_EXTENT_RLE, 0, &r, sizeof(r), d, count * (uint32_t)sizeof(d[0]));
}

int ust_bs_fmt_add_xattr(struct ust_bs_page_builder *b, const struct ust_bs_xattr_frag *x)
{
	struct ust_bs_disk_desc_xattr h;
	uint8_t body[UST_BS_PAYLOAD_MAX];
	uint32_t len;

	if (x->name_len == 0 || x->name_len > UST_BS_XATTR_NAME_MAX ||
	    memchr(x->name, 0, x->name_len) != NULL || (x->xflags & ~UST_BS_XATTR_F_KNOWN) ||
	    x->value_len > UST_BS_XATTR_VALUE_MAX || x->frag_offset > x->value_len ||
	    x->frag_len > x->value_len - x->frag_offset) {
		return -EINVAL;
	}
	len = (uint32_t)x->name_len + x->frag_len;
	if (len > sizeof(body)) {
		return -ENOSPC;
	}
	h.name_len = htole16(x->name_len);
	h.xflags = htole16(x->xflags);
	h.value_len = htole32(x->value_len);
	h.frag_offset = htole32(x->frag_offset);
	h.frag_len = htole32(x->frag_len);
	memcpy(body, x->name, x->name_len);
	if (x->frag_len != 0) {
		memcpy(body + x->name_len, x->data, x->frag_len);
	}
	return desc_put(b, UST_BS_DESC_XATTR, 0, &h, sizeof(h), body, len);
}

int ust_bs_fmt_add_pending(struct ust_bs_page_builder *b, const struct ust_bs_pending_op *op)
{
	struct ust_bs_disk_desc_pending_op d;

	if (op->op != UST_BS_OP_SNAPSHOT_OF && op->op != UST_BS_OP_MERGED_FROM) {
		return -EINVAL;
	}
	d.op = htole32(op->op);
	d.reserved = 0;
	d.other_blob_id = htole64(op->other_blob_id);
	d.other_generation = htole64(op->other_generation);
	return desc_put(b, UST_BS_DESC_PENDING_OP, 0, &d, sizeof(d), NULL, 0);
}

int ust_bs_fmt_add_raw(struct ust_bs_page_builder *b, uint16_t type, uint8_t flags,
		       const void *body, uint32_t len)
{
	return desc_put(b, type, flags, body, len, NULL, 0);
}

void ust_bs_fmt_page_set_len(struct ust_bs_page_builder *b)
{
	uint32_t le = htole32(b->used);

	memcpy(b->page + offsetof(struct ust_bs_disk_page_hdr, payload_len), &le, sizeof(le));
}

uint64_t ust_bs_fmt_page_finish(struct ust_bs_page_builder *b)
{
	uint64_t csum;

	ust_bs_fmt_page_set_len(b);
	page_seal(b->page, &csum);
	return csum;
}

void ust_bs_fmt_put_ref(void *page, uint32_t off, const struct ust_bs_page_ref *ref)
{
	struct ust_bs_disk_page_ref d = {
		.page = htole32(ref->page),
		.reserved = 0,
		.checksum = htole64(ref->checksum),
	};

	memcpy((uint8_t *)page + off, &d, sizeof(d));
}

uint64_t ust_bs_fmt_page_reseal(void *page, uint64_t generation, uint32_t seq)
{
	uint8_t *p = page;
	uint64_t gen_le = htole64(generation), csum;
	uint32_t seq_le = htole32(seq);

	memcpy(p + offsetof(struct ust_bs_disk_page_hdr, generation), &gen_le, sizeof(gen_le));
	memcpy(p + offsetof(struct ust_bs_disk_page_hdr, seq), &seq_le, sizeof(seq_le));
	page_seal(p, &csum);
	return csum;
}

/* ---- descriptors: reading ------------------------------------------------------------- */

static uint16_t rd16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static uint32_t desc_area_start(uint16_t page_type)
{
	return UST_BS_PAGE_HDR_SIZE + (page_type == UST_BS_PAGE_ROOT ? ROOT_FIXED_SIZE : 0);
}

/*
 * Split the descriptor at *cursor off the page without trusting any length:
 * the header must fit, the body must fit, and the padding must be zero.
 * This is the only place a descriptor's length field is believed.
 */
static int desc_take(const uint8_t *page, uint32_t end, uint32_t *cursor, struct ust_bs_desc *d,
		     struct ust_bs_fmt_err *err)
{
	uint32_t at = *cursor;
	uint32_t left = end - at;
	struct ust_bs_disk_desc_hdr h;

	if (left < DESC_HDR_SIZE) {
		return fail(err, UST_BS_FMT_DESC_TRUNCATED, at,
			    "%u bytes left, a descriptor header needs %u", left, DESC_HDR_SIZE);
	}
	memcpy(&h, page + at, sizeof(h));
	d->type = le16toh(h.type);
	d->flags = h.flags;
	d->len = le32toh(h.len);
	d->offset = at;
	d->body = page + at + DESC_HDR_SIZE;
	if (d->len > left - DESC_HDR_SIZE || align8(d->len) > left - DESC_HDR_SIZE) {
		return fail(err, UST_BS_FMT_DESC_TRUNCATED, at + 4,
			    "descriptor type %u length %u, only %u bytes left", d->type, d->len,
			    left - DESC_HDR_SIZE);
	}
	if (h.reserved != 0 || (d->flags & ~UST_BS_DESC_F_KNOWN)) {
		return fail(err, UST_BS_FMT_DESC_BAD_FIELD, at + 2,
			    "descriptor type %u: reserved flag bits 0x%02x", d->type,
			    d->flags & ~UST_BS_DESC_F_KNOWN);
	}
	if (!ust_mem_is_zero(d->body + d->len, align8(d->len) - d->len)) {
		return fail(err, UST_BS_FMT_DESC_BAD_FIELD, at + DESC_HDR_SIZE + d->len,
			    "descriptor type %u: padding not zero", d->type);
	}
	*cursor = at + DESC_HDR_SIZE + align8(d->len);
	return 0;
}

int ust_bs_fmt_desc_next(const void *page, uint32_t *cursor, struct ust_bs_desc *d)
{
	const uint8_t *p = page;
	uint32_t payload_len = rd32(p + offsetof(struct ust_bs_disk_page_hdr, payload_len));
	uint16_t type = rd16(p + offsetof(struct ust_bs_disk_page_hdr, type));
	uint32_t start = desc_area_start(type);
	uint32_t end;

	if (payload_len > UST_BS_PAYLOAD_MAX) {
		return -EUCLEAN;
	}
	end = UST_BS_PAGE_HDR_SIZE + payload_len;
	if (*cursor == 0) {
		*cursor = start;
	}
	if (*cursor < start || *cursor > end) {
		return -EUCLEAN;
	}
	if (*cursor == end) {
		return 0;
	}
	return desc_take(p, end, cursor, d, NULL) == 0 ? 1 : -EUCLEAN;
}

bool ust_bs_fmt_desc_known(uint16_t type)
{
	return type >= UST_BS_DESC_CHAIN && type <= UST_BS_DESC_PENDING_OP;
}

uint32_t ust_bs_fmt_desc_count(const struct ust_bs_desc *d)
{
	switch (d->type) {
	case UST_BS_DESC_CHAIN:
	case UST_BS_DESC_EXTENT_TABLE:
		return d->len < 8 ? 0 : (d->len - 8) / (uint32_t)sizeof(struct ust_bs_disk_page_ref);
	case UST_BS_DESC_EXTENT_RLE:
		return d->len < 8 ? 0 : (d->len - 8) / (uint32_t)sizeof(struct ust_bs_disk_extent_run);
	default:
		return 0;
	}
}

uint64_t ust_bs_fmt_desc_first(const struct ust_bs_desc *d)
{
	return d->len < 8 ? 0 : rd64(d->body);
}

void ust_bs_fmt_desc_page_ref(const struct ust_bs_desc *d, uint32_t i, struct ust_bs_page_ref *ref)
{
	const uint8_t *e = d->body + 8 + (size_t)i * sizeof(struct ust_bs_disk_page_ref);

	ref->page = rd32(e + offsetof(struct ust_bs_disk_page_ref, page));
	ref->checksum = rd64(e + offsetof(struct ust_bs_disk_page_ref, checksum));
}

void ust_bs_fmt_desc_run(const struct ust_bs_desc *d, uint32_t i, struct ust_bs_extent_run *run)
{
	const uint8_t *e = d->body + 8 + (size_t)i * sizeof(struct ust_bs_disk_extent_run);

	run->cluster = rd32(e + offsetof(struct ust_bs_disk_extent_run, cluster));
	run->count = rd32(e + offsetof(struct ust_bs_disk_extent_run, count));
}

void ust_bs_fmt_desc_xattr(const struct ust_bs_desc *d, struct ust_bs_xattr_frag *x)
{
	struct ust_bs_disk_desc_xattr h;

	memcpy(&h, d->body, sizeof(h));
	x->name_len = le16toh(h.name_len);
	x->xflags = le16toh(h.xflags);
	x->value_len = le32toh(h.value_len);
	x->frag_offset = le32toh(h.frag_offset);
	x->frag_len = le32toh(h.frag_len);
	x->name = d->body + sizeof(h);
	x->data = x->name + x->name_len;
}

void ust_bs_fmt_desc_pending(const struct ust_bs_desc *d, struct ust_bs_pending_op *op)
{
	struct ust_bs_disk_desc_pending_op h;

	memcpy(&h, d->body, sizeof(h));
	op->op = le32toh(h.op);
	op->other_blob_id = le64toh(h.other_blob_id);
	op->other_generation = le64toh(h.other_generation);
}

/* One pass of ust_bs_fmt_extent_refs(): add is NULL to count only. */
static int extent_refs_pass(const uint8_t *const *pages, uint32_t npages,
			    ust_bs_fmt_extent_ref_fn add, void *arg)
{
	struct ust_bs_page_ref ref;
	struct ust_bs_desc d;
	uint32_t p, i, cursor;
	int n = 0, rc;

	for (p = 0; p < npages; p++) {
		cursor = 0;
		while (ust_bs_fmt_desc_next(pages[p], &cursor, &d) == 1) {
			if (d.type != UST_BS_DESC_EXTENT_TABLE) {
				continue;
			}
			for (i = 0; i < ust_bs_fmt_desc_count(&d); i++) {
				ust_bs_fmt_desc_page_ref(&d, i, &ref);
				if (ref.page == 0) {
					continue;
				}
				if (add != NULL) {
					rc = add(arg, (uint32_t)n, &ref,
						 ust_bs_fmt_desc_first(&d) + i);
					if (rc != 0) {
						return rc;
					}
				}
				n++;
			}
		}
	}
	return n;
}

int ust_bs_fmt_extent_refs(const uint8_t *const *pages, uint32_t npages,
			   int (*size)(void *arg, uint32_t n), ust_bs_fmt_extent_ref_fn add,
			   void *arg)
{
	int n = extent_refs_pass(pages, npages, NULL, NULL), rc;

	if (n == 0) {
		return 0;
	}
	rc = size(arg, (uint32_t)n);
	if (rc != 0) {
		return rc;
	}
	rc = extent_refs_pass(pages, npages, add, arg);
	return rc < 0 ? rc : n;
}

/* ---- descriptors: validation ------------------------------------------------------------ */

/* What the descriptor checks need to know about the page they sit in. */
struct desc_ctx {
	const struct ust_bs_fmt_geom *geom;
	uint16_t page_type;
	const struct ust_bs_root *root; /* NULL for chain pages */
	bool seen_chain;
	bool seen_pending;
};

static bool pool_page_ok(const struct ust_bs_fmt_geom *g, uint32_t page)
{
	return page >= g->pool_start && page - g->pool_start < g->pool_pages;
}

static bool data_cluster_ok(const struct ust_bs_fmt_geom *g, uint64_t cluster, uint64_t count)
{
	return cluster >= g->md_clusters && cluster < g->total_clusters &&
	       count <= g->total_clusters - cluster;
}

static int check_refs(const struct desc_ctx *c, const struct ust_bs_desc *d, bool allow_absent,
		      struct ust_bs_fmt_err *err)
{
	uint32_t n = ust_bs_fmt_desc_count(d);
	uint32_t i;

	for (i = 0; i < n; i++) {
		uint32_t off = d->offset + DESC_HDR_SIZE + 8 + i * (uint32_t)sizeof(struct ust_bs_disk_page_ref);
		struct ust_bs_page_ref ref;

		ust_bs_fmt_desc_page_ref(d, i, &ref);
		if (rd32(d->body + 8 + (size_t)i * sizeof(struct ust_bs_disk_page_ref) + 4) != 0) {
			return fail(err, UST_BS_FMT_DESC_BAD_FIELD, off + 4, "reference %u: reserved not zero", i);
		}
		if (ref.page == 0 && allow_absent) {
			if (ref.checksum != 0) {
				return fail(err, UST_BS_FMT_DESC_BAD_FIELD, off + 8,
					    "reference %u: absent page with a checksum", i);
			}
			continue;
		}
		if (!pool_page_ok(c->geom, ref.page)) {
			return fail(err, UST_BS_FMT_DESC_BAD_FIELD, off,
				    "reference %u: page %u outside the metadata pool [%u, %u)", i, ref.page,
				    c->geom->pool_start, c->geom->pool_start + c->geom->pool_pages);
		}
	}
	return 0;
}

static int check_chain(struct desc_ctx *c, const struct ust_bs_desc *d, struct ust_bs_fmt_err *err)
{
	uint32_t count, i, j;
	int rc;

	if (c->page_type != UST_BS_PAGE_ROOT || c->seen_chain) {
		return fail(err, UST_BS_FMT_DESC_MISPLACED, d->offset,
			    c->seen_chain ? "second chain descriptor" : "chain descriptor outside the root");
	}
	c->seen_chain = true;
	if (d->len < 8 || (d->len - 8) % sizeof(struct ust_bs_disk_page_ref) != 0) {
		return fail(err, UST_BS_FMT_DESC_BAD_LENGTH, d->offset + 4, "chain length %u", d->len);
	}
	count = rd32(d->body);
	if (count == 0 || count > UST_BS_MAX_CHAIN_PAGES || count != ust_bs_fmt_desc_count(d)) {
		return fail(err, UST_BS_FMT_DESC_BAD_LENGTH, d->offset + DESC_HDR_SIZE,
			    "chain count %u, length %u holds %u (max %u)", count, d->len,
			    ust_bs_fmt_desc_count(d), UST_BS_MAX_CHAIN_PAGES);
	}
	if (rd32(d->body + 4) != 0) {
		return fail(err, UST_BS_FMT_DESC_BAD_FIELD, d->offset + DESC_HDR_SIZE + 4,
			    "chain reserved not zero");
	}
	rc = check_refs(c, d, false, err);
	if (rc != 0) {
		return rc;
	}
	/* One page listed twice would let a single write satisfy two links. */
	for (i = 0; i < count; i++) {
		struct ust_bs_page_ref a, b;

		ust_bs_fmt_desc_page_ref(d, i, &a);
		for (j = i + 1; j < count; j++) {
			ust_bs_fmt_desc_page_ref(d, j, &b);
			if (a.page == b.page) {
				return fail(err, UST_BS_FMT_DESC_BAD_FIELD, d->offset,
					    "chain lists page %u twice", a.page);
			}
		}
	}
	return 0;
}

static int check_rle(struct desc_ctx *c, const struct ust_bs_desc *d, struct ust_bs_fmt_err *err)
{
	uint64_t first, pos, limit;
	uint32_t n, i;

	if (c->root != NULL && (c->root->flags & UST_BS_BLOB_EXTENT_PAGES)) {
		return fail(err, UST_BS_FMT_DESC_MISPLACED, d->offset,
			    "run list in a blob that uses extent pages");
	}
	if (d->len < 16 || (d->len - 8) % sizeof(struct ust_bs_disk_extent_run) != 0) {
		return fail(err, UST_BS_FMT_DESC_BAD_LENGTH, d->offset + 4, "run list length %u", d->len);
	}
	first = rd64(d->body);
	limit = c->root != NULL ? c->root->num_clusters : UST_BS_MAX_BLOB_CLUSTERS;
	n = ust_bs_fmt_desc_count(d);
	pos = first;
	if (pos > limit) {
		return fail(err, UST_BS_FMT_DESC_BAD_FIELD, d->offset + DESC_HDR_SIZE,
			    "runs start at blob cluster %llu, blob has %llu",
			    (unsigned long long)first, (unsigned long long)limit);
	}
	for (i = 0; i < n; i++) {
		uint32_t off = d->offset + DESC_HDR_SIZE + 8 + i * 8u;
		struct ust_bs_extent_run run;

		ust_bs_fmt_desc_run(d, i, &run);
		if (run.count == 0) {
			return fail(err, UST_BS_FMT_DESC_BAD_FIELD, off + 4, "run %u is empty", i);
		}
		if (run.cluster != 0 && !data_cluster_ok(c->geom, run.cluster, run.count)) {
			return fail(err, UST_BS_FMT_DESC_BAD_FIELD, off,
				    "run %u: clusters [%u, +%u) outside data clusters [%u, %llu)", i,
				    run.cluster, run.count, c->geom->md_clusters,
				    (unsigned long long)c->geom->total_clusters);
		}
		if (run.count > limit - pos) {
			return fail(err, UST_BS_FMT_DESC_BAD_FIELD, off + 4,
				    "run %u ends past blob cluster %llu", i, (unsigned long long)limit);
		}
		pos += run.count;
	}
	return 0;
}

static int check_table(struct desc_ctx *c, const struct ust_bs_desc *d, struct ust_bs_fmt_err *err)
{
	uint64_t first, limit;
	uint32_t n;

	if (c->root != NULL && !(c->root->flags & UST_BS_BLOB_EXTENT_PAGES)) {
		return fail(err, UST_BS_FMT_DESC_MISPLACED, d->offset,
			    "extent table in a blob that uses run lists");
	}
	if (d->len < 8 + sizeof(struct ust_bs_disk_page_ref) ||
	    (d->len - 8) % sizeof(struct ust_bs_disk_page_ref) != 0) {
		return fail(err, UST_BS_FMT_DESC_BAD_LENGTH, d->offset + 4, "extent table length %u", d->len);
	}
	first = rd64(d->body);
	n = ust_bs_fmt_desc_count(d);
	limit = div_round_up(c->root != NULL ? c->root->num_clusters : UST_BS_MAX_BLOB_CLUSTERS,
			     UST_BS_EXTENTS_PER_PAGE);
	if (first > limit || n > limit - first) {
		return fail(err, UST_BS_FMT_DESC_BAD_FIELD, d->offset + DESC_HDR_SIZE,
			    "extent pages [%llu, +%u) past the blob's %llu",
			    (unsigned long long)first, n, (unsigned long long)limit);
	}
	return check_refs(c, d, true, err);
}

static int check_xattr(struct desc_ctx *c, const struct ust_bs_desc *d, struct ust_bs_fmt_err *err)
{
	struct ust_bs_xattr_frag x;
	uint32_t base = d->offset + DESC_HDR_SIZE;

	if (d->len < sizeof(struct ust_bs_disk_desc_xattr)) {
		return fail(err, UST_BS_FMT_DESC_BAD_LENGTH, d->offset + 4, "xattr length %u", d->len);
	}
	ust_bs_fmt_desc_xattr(d, &x);
	if (d->len != sizeof(struct ust_bs_disk_desc_xattr) + (uint64_t)x.name_len + x.frag_len) {
		return fail(err, UST_BS_FMT_DESC_BAD_LENGTH, d->offset + 4,
			    "xattr length %u, name %u + fragment %u need %llu", d->len, x.name_len,
			    x.frag_len,
			    (unsigned long long)(sizeof(struct ust_bs_disk_desc_xattr) + x.name_len + x.frag_len));
	}
	if (x.name_len == 0 || x.name_len > UST_BS_XATTR_NAME_MAX) {
		return fail(err, UST_BS_FMT_DESC_BAD_FIELD, base, "xattr name length %u", x.name_len);
	}
	if (memchr(x.name, 0, x.name_len) != NULL) {
		return fail(err, UST_BS_FMT_DESC_BAD_FIELD, base + 16, "xattr name contains NUL");
	}
	if (x.xflags & ~UST_BS_XATTR_F_KNOWN) {
		return fail(err, UST_BS_FMT_DESC_BAD_FIELD, base + 2, "xattr flags 0x%x", x.xflags);
	}
	if (x.value_len > UST_BS_XATTR_VALUE_MAX) {
		return fail(err, UST_BS_FMT_DESC_BAD_FIELD, base + 4, "xattr value length %u > %u",
			    x.value_len, UST_BS_XATTR_VALUE_MAX);
	}
	if (x.frag_offset > x.value_len || x.frag_len > x.value_len - x.frag_offset ||
	    (x.frag_len == 0 && x.value_len != 0)) {
		return fail(err, UST_BS_FMT_DESC_BAD_FIELD, base + 8,
			    "xattr fragment [%u, +%u) of a %u-byte value", x.frag_offset, x.frag_len,
			    x.value_len);
	}
	(void)c;
	return 0;
}

static int check_pending(struct desc_ctx *c, const struct ust_bs_desc *d, struct ust_bs_fmt_err *err)
{
	struct ust_bs_pending_op op;
	uint32_t base = d->offset + DESC_HDR_SIZE;

	if (c->page_type != UST_BS_PAGE_ROOT || c->seen_pending) {
		return fail(err, UST_BS_FMT_DESC_MISPLACED, d->offset,
			    c->seen_pending ? "second pending operation" : "pending operation outside the root");
	}
	c->seen_pending = true;
	if (d->len != sizeof(struct ust_bs_disk_desc_pending_op)) {
		return fail(err, UST_BS_FMT_DESC_BAD_LENGTH, d->offset + 4, "pending op length %u", d->len);
	}
	ust_bs_fmt_desc_pending(d, &op);
	if (op.op != UST_BS_OP_SNAPSHOT_OF && op.op != UST_BS_OP_MERGED_FROM) {
		return fail(err, UST_BS_FMT_DESC_BAD_FIELD, base, "pending op %u", op.op);
	}
	if (rd32(d->body + 4) != 0) {
		return fail(err, UST_BS_FMT_DESC_BAD_FIELD, base + 4, "pending op reserved not zero");
	}
	if (!blobid_ok(op.other_blob_id, c->geom->max_blobs) ||
	    op.other_blob_id == c->root->hdr.blob_id) {
		return fail(err, UST_BS_FMT_DESC_BAD_FIELD, base + 8, "pending op names blob 0x%llx",
			    (unsigned long long)op.other_blob_id);
	}
	if (op.other_generation == 0) {
		return fail(err, UST_BS_FMT_DESC_BAD_FIELD, base + 16, "pending op generation 0");
	}
	return 0;
}

static int check_descs(const uint8_t *page, struct desc_ctx *c, uint32_t payload_len,
		       struct ust_bs_fmt_err *err)
{
	uint32_t end = UST_BS_PAGE_HDR_SIZE + payload_len;
	uint32_t cursor = desc_area_start(c->page_type);
	struct ust_bs_desc d;
	int rc;

	while (cursor < end) {
		rc = desc_take(page, end, &cursor, &d, err);
		if (rc != 0) {
			return rc;
		}
		switch (d.type) {
		case UST_BS_DESC_CHAIN:
			rc = check_chain(c, &d, err);
			break;
		case UST_BS_DESC_EXTENT_RLE:
			rc = check_rle(c, &d, err);
			break;
		case UST_BS_DESC_EXTENT_TABLE:
			rc = check_table(c, &d, err);
			break;
		case UST_BS_DESC_XATTR:
			rc = check_xattr(c, &d, err);
			break;
		case UST_BS_DESC_PENDING_OP:
			rc = check_pending(c, &d, err);
			break;
		case 0:
			rc = fail(err, UST_BS_FMT_DESC_BAD_FIELD, d.offset, "descriptor type 0");
			break;
		default:
			/* A newer writer's descriptor: skippable only if it says so. */
			if (!(d.flags & UST_BS_DESC_F_COMPAT)) {
				rc = fail(err, UST_BS_FMT_DESC_UNKNOWN, d.offset,
					  "descriptor type %u without the compat flag", d.type);
			}
			break;
		}
		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

/* ---- root, chain and extent pages ------------------------------------------------------- */

#define ROOT_OFF(field) ((uint32_t)(UST_BS_PAGE_HDR_SIZE + offsetof(struct ust_bs_disk_root, field)))

static int blob_hdr_check(const struct ust_bs_page_hdr *h, const struct ust_bs_fmt_geom *geom,
			  struct ust_bs_fmt_err *err)
{
	if (!blobid_ok(h->blob_id, geom->max_blobs)) {
		return fail(err, UST_BS_FMT_BAD_HEADER, offsetof(struct ust_bs_disk_page_hdr, blob_id),
			    "blob id 0x%llx (max blobs %u)", (unsigned long long)h->blob_id,
			    geom->max_blobs);
	}
	return 0;
}

static int root_fields_check(const struct ust_bs_root *r, const struct ust_bs_fmt_geom *geom,
			     struct ust_bs_fmt_err *err)
{
	if (r->hdr.seq > 1) {
		return fail(err, UST_BS_FMT_BAD_HEADER, offsetof(struct ust_bs_disk_page_hdr, seq),
			    "root slot half %u", r->hdr.seq);
	}
	if (r->hdr.payload_len < ROOT_FIXED_SIZE) {
		return fail(err, UST_BS_FMT_BAD_HEADER, offsetof(struct ust_bs_disk_page_hdr, payload_len),
			    "root payload %u bytes, fixed part needs %u", r->hdr.payload_len,
			    ROOT_FIXED_SIZE);
	}
	if (r->incompat != 0) {
		/* v1 defines no per-blob incompat features. */
		return fail(err, UST_BS_FMT_UNKNOWN_FEATURE, ROOT_OFF(incompat),
			    "blob incompat features 0x%x", r->incompat);
	}
	if (r->flags & ~UST_BS_BLOB_FLAGS_KNOWN) {
		return fail(err, UST_BS_FMT_BAD_FIELD, ROOT_OFF(flags), "unknown blob flags 0x%x",
			    r->flags & ~UST_BS_BLOB_FLAGS_KNOWN);
	}
	if (r->flags & UST_BS_BLOB_TOMBSTONE) {
		if (r->flags != UST_BS_BLOB_TOMBSTONE || r->num_clusters != 0 || r->parent_id != 0 ||
		    r->ro_compat != 0 || r->compat != 0 || r->hdr.payload_len != ROOT_FIXED_SIZE) {
			return fail(err, UST_BS_FMT_BAD_FIELD, ROOT_OFF(flags),
				    "tombstone with contents");
		}
		return 0;
	}
	if ((r->flags & UST_BS_BLOB_SNAPSHOT) && !(r->flags & UST_BS_BLOB_READ_ONLY)) {
		return fail(err, UST_BS_FMT_BAD_FIELD, ROOT_OFF(flags), "snapshot not read-only");
	}
	if (r->num_clusters > UST_BS_MAX_BLOB_CLUSTERS) {
		return fail(err, UST_BS_FMT_BAD_FIELD, ROOT_OFF(num_clusters), "%llu clusters",
			    (unsigned long long)r->num_clusters);
	}
	/*
	 * A thick blob has every cluster allocated (8.4: only a THIN blob has
	 * holes), so it is no larger than the store's data clusters. More is
	 * damage, and believing it would size an in-memory map of up to 16 GiB
	 * at open before the holes were found.
	 */
	if (!(r->flags & UST_BS_BLOB_THIN) &&
	    r->num_clusters > geom->total_clusters - geom->md_clusters) {
		return fail(err, UST_BS_FMT_BAD_FIELD, ROOT_OFF(num_clusters),
			    "thick blob of %llu clusters, the store has %llu data clusters",
			    (unsigned long long)r->num_clusters,
			    (unsigned long long)(geom->total_clusters - geom->md_clusters));
	}
	/*
	 * A map in extent pages has a reference per 1008 clusters, which no
	 * writer can fit past UST_BS_THIN_MAX_CLUSTERS: more is damage, and
	 * believing it would size an in-memory map of up to 16 GiB at open.
	 */
	if ((r->flags & UST_BS_BLOB_EXTENT_PAGES) && r->num_clusters > UST_BS_THIN_MAX_CLUSTERS) {
		return fail(err, UST_BS_FMT_BAD_FIELD, ROOT_OFF(num_clusters),
			    "%llu clusters in extent pages, at most %llu can be mapped",
			    (unsigned long long)r->num_clusters,
			    (unsigned long long)UST_BS_THIN_MAX_CLUSTERS);
	}
	if (r->parent_id != 0) {
		if (!blobid_ok(r->parent_id, geom->max_blobs) || r->parent_id == r->hdr.blob_id) {
			return fail(err, UST_BS_FMT_BAD_FIELD, ROOT_OFF(parent_id), "parent 0x%llx",
				    (unsigned long long)r->parent_id);
		}
		if (!(r->flags & UST_BS_BLOB_THIN)) {
			return fail(err, UST_BS_FMT_BAD_FIELD, ROOT_OFF(flags),
				    "blob with a parent is not thin");
		}
	}
	return 0;
}

int ust_bs_fmt_root_decode(const void *page, const struct ust_bs_fmt_geom *geom,
			   struct ust_bs_root *root, struct ust_bs_fmt_err *err)
{
	const uint8_t *p = page;
	struct ust_bs_disk_root d;
	struct desc_ctx c;
	struct ust_bs_root r;
	int rc;

	err_clear(err);
	memset(&r, 0, sizeof(r));
	rc = hdr_check(p, UST_BS_PAGE_ROOT, geom, &r.hdr, err);
	if (rc != 0) {
		return rc;
	}
	rc = blob_hdr_check(&r.hdr, geom, err);
	if (rc != 0) {
		return rc;
	}
	memcpy(&d, p + UST_BS_PAGE_HDR_SIZE, sizeof(d));
	r.num_clusters = le64toh(d.num_clusters);
	r.parent_id = le64toh(d.parent_id);
	r.flags = le32toh(d.flags);
	r.incompat = le32toh(d.incompat);
	r.ro_compat = le32toh(d.ro_compat);
	r.compat = le32toh(d.compat);
	rc = root_fields_check(&r, geom, err);
	if (rc != 0) {
		return rc;
	}
	memset(&c, 0, sizeof(c));
	c.geom = geom;
	c.page_type = UST_BS_PAGE_ROOT;
	c.root = &r;
	rc = check_descs(p, &c, r.hdr.payload_len, err);
	if (rc != 0) {
		return rc;
	}
	*root = r;
	return 0;
}

int ust_bs_fmt_chain_decode(const void *page, const struct ust_bs_fmt_geom *geom,
			    struct ust_bs_page_hdr *hdr, struct ust_bs_fmt_err *err)
{
	const uint8_t *p = page;
	struct ust_bs_page_hdr h;
	struct desc_ctx c;
	int rc;

	err_clear(err);
	rc = hdr_check(p, UST_BS_PAGE_CHAIN, geom, &h, err);
	if (rc != 0) {
		return rc;
	}
	rc = blob_hdr_check(&h, geom, err);
	if (rc != 0) {
		return rc;
	}
	if (h.seq == 0 || h.seq > UST_BS_MAX_CHAIN_PAGES) {
		return fail(err, UST_BS_FMT_BAD_HEADER, offsetof(struct ust_bs_disk_page_hdr, seq),
			    "chain position %u (1..%u)", h.seq, UST_BS_MAX_CHAIN_PAGES);
	}
	memset(&c, 0, sizeof(c));
	c.geom = geom;
	c.page_type = UST_BS_PAGE_CHAIN;
	rc = check_descs(p, &c, h.payload_len, err);
	if (rc != 0) {
		return rc;
	}
	*hdr = h;
	return 0;
}

int ust_bs_fmt_extent_encode(void *page, const struct ust_bs_page_hdr *hdr,
			     const uint32_t *clusters, uint32_t count)
{
	uint8_t *p = page;
	uint32_t i;

	if (count == 0 || count > UST_BS_EXTENTS_PER_PAGE) {
		return -EINVAL;
	}
	memset(p, 0, UST_BS_PAGE_SIZE);
	hdr_encode(p, hdr, UST_BS_PAGE_EXTENT, count * 4u);
	for (i = 0; i < count; i++) {
		uint32_t le = htole32(clusters[i]);

		memcpy(p + UST_BS_PAGE_HDR_SIZE + i * 4u, &le, sizeof(le));
	}
	page_seal(p, NULL);
	return 0;
}

int ust_bs_fmt_extent_decode(const void *page, const struct ust_bs_fmt_geom *geom,
			     struct ust_bs_page_hdr *hdr, uint32_t *clusters, uint32_t *count,
			     struct ust_bs_fmt_err *err)
{
	const uint8_t *p = page;
	struct ust_bs_page_hdr h;
	uint32_t i, n;
	int rc;

	err_clear(err);
	rc = hdr_check(p, UST_BS_PAGE_EXTENT, geom, &h, err);
	if (rc != 0) {
		return rc;
	}
	rc = blob_hdr_check(&h, geom, err);
	if (rc != 0) {
		return rc;
	}
	if (h.payload_len == 0 || h.payload_len % 4 != 0) {
		return fail(err, UST_BS_FMT_BAD_HEADER, offsetof(struct ust_bs_disk_page_hdr, payload_len),
			    "extent page payload %u bytes", h.payload_len);
	}
	n = h.payload_len / 4;
	if ((uint64_t)h.seq * UST_BS_EXTENTS_PER_PAGE >= UST_BS_MAX_BLOB_CLUSTERS) {
		return fail(err, UST_BS_FMT_BAD_HEADER, offsetof(struct ust_bs_disk_page_hdr, seq),
			    "extent page number %u", h.seq);
	}
	for (i = 0; i < n; i++) {
		uint32_t c = rd32(p + UST_BS_PAGE_HDR_SIZE + i * 4u);

		if (c != 0 && !data_cluster_ok(geom, c, 1)) {
			return fail(err, UST_BS_FMT_BAD_FIELD, UST_BS_PAGE_HDR_SIZE + i * 4u,
				    "entry %u: cluster %u outside data clusters [%u, %llu)", i, c,
				    geom->md_clusters, (unsigned long long)geom->total_clusters);
		}
		clusters[i] = c;
	}
	*hdr = h;
	*count = n;
	return 0;
}

int ust_bs_fmt_ref_check(const struct ust_bs_page_hdr *hdr, uint16_t type, uint64_t blob_id,
			 uint32_t seq, uint64_t max_generation, uint64_t ref_checksum,
			 struct ust_bs_fmt_err *err)
{
	err_clear(err);
	if (hdr->type != type) {
		return fail(err, UST_BS_FMT_WRONG_TYPE, offsetof(struct ust_bs_disk_page_hdr, type),
			    "page type %u, reference expects %u", hdr->type, type);
	}
	if (hdr->checksum != ref_checksum) {
		return fail(err, UST_BS_FMT_MISMATCH, UST_BS_CSUM_OFFSET,
			    "checksum 0x%016llx, reference says 0x%016llx",
			    (unsigned long long)hdr->checksum, (unsigned long long)ref_checksum);
	}
	if (hdr->blob_id != blob_id) {
		return fail(err, UST_BS_FMT_MISMATCH, offsetof(struct ust_bs_disk_page_hdr, blob_id),
			    "blob 0x%llx, reference from blob 0x%llx",
			    (unsigned long long)hdr->blob_id, (unsigned long long)blob_id);
	}
	if (hdr->seq != seq) {
		return fail(err, UST_BS_FMT_MISMATCH, offsetof(struct ust_bs_disk_page_hdr, seq),
			    "position %u, reference expects %u", hdr->seq, seq);
	}
	if (hdr->generation > max_generation) {
		return fail(err, UST_BS_FMT_MISMATCH, offsetof(struct ust_bs_disk_page_hdr, generation),
			    "generation %llu newer than the root's %llu",
			    (unsigned long long)hdr->generation, (unsigned long long)max_generation);
	}
	return 0;
}
