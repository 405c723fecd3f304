/*
 * Blobstore metadata dump (ust_bs_dump): both superblocks, the bitmaps'
 * counts, and every root page and pool page that is not blank, decoded
 * field by field with the format codec's verdict on each page.
 *
 * Guarantees: reads only, through its own claimed descriptor (so never on
 * a loaded store); a damaged page is printed with why it is damaged, and
 * the dump goes on.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"

#include "bs_fsck_internal.h"

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
	rc = fsck_dev_submit(&op->dev, DEV_READ, offset, len, buf, NULL, dump_io_done, op);
	if (rc != 0) {
		op->pending--;
		op->io_rc = op->io_rc ? op->io_rc : rc;
	}
}

/*
 * Read the next chunk (at most CHUNK_PAGES) of the total pages that start
 * at page start into op->buf. False once all of them have been read.
 */
static bool dump_read_chunk(struct dump_op *op, uint64_t start, uint64_t total)
{
	if (op->next >= total) {
		return false;
	}
	op->count = total - op->next;
	if (op->count > CHUNK_PAGES) {
		op->count = CHUNK_PAGES;
	}
	op->io_rc = 0;
	dump_read(op, (start + op->next) * UST_BS_PAGE_SIZE, op->count * UST_BS_PAGE_SIZE, op->buf);
	return true;
}

/* Whether the chunk just read failed; if so, say which pages once. */
static bool dump_chunk_unreadable(struct dump_op *op, const char *what, uint64_t start)
{
	if (op->io_rc == 0) {
		return false;
	}
	fprintf(op->out, "%s pages %" PRIu64 "..%" PRIu64 ": unreadable: %s\n", what,
		start + op->next, start + op->next + op->count - 1, strerror(-op->io_rc));
	return true;
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

/* The page numbers a CHAIN or EXTENT_TABLE descriptor lists, then the line's end. */
static void print_page_refs(FILE *out, const struct ust_bs_desc *d, uint32_t n)
{
	struct ust_bs_page_ref ref;
	uint32_t i;

	for (i = 0; i < n; i++) {
		ust_bs_fmt_desc_page_ref(d, i, &ref);
		fprintf(out, " %u", ref.page);
	}
	fprintf(out, "\n");
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
			print_page_refs(out, &d, n);
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
			print_page_refs(out, &d, n);
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

	fsck_dev_close(&op->dev);
	fsck_page_free(op->page0);
	fsck_page_free(op->page1);
	fsck_page_free(op->bm);
	fsck_page_free(op->buf);
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
			op->bm = fsck_page_alloc(bytes / UST_BS_PAGE_SIZE);
			op->buf = fsck_page_alloc(CHUNK_PAGES);
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
			if (!dump_read_chunk(op, s->root_slots.start, 2ull * s->max_blobs)) {
				op->state = DUMP_READ_POOL;
				op->next = 0;
				op->count = 0;
				continue;
			}
			op->state = DUMP_ROOTS;
			break;
		case DUMP_ROOTS:
			for (i = 0; i < op->count; i++) {
				uint64_t rel = op->next + i;
				const uint8_t *page = op->buf + i * UST_BS_PAGE_SIZE;

				if (dump_chunk_unreadable(op, "root", s->root_slots.start)) {
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
			if (!dump_read_chunk(op, s->md_pool.start, s->md_pool.pages)) {
				op->state = DUMP_DONE;
				continue;
			}
			op->state = DUMP_POOL;
			break;
		case DUMP_POOL:
			for (i = 0; i < op->count; i++) {
				const uint8_t *page = op->buf + i * UST_BS_PAGE_SIZE;

				if (dump_chunk_unreadable(op, "pool", s->md_pool.start)) {
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
	op->page0 = fsck_page_alloc(1);
	op->page1 = fsck_page_alloc(1);
	if (op->page0 == NULL || op->page1 == NULL) {
		op->rc = -ENOMEM;
		dump_finish(op);
		return;
	}
	rc = fsck_dev_open(&op->dev, bdev_name);
	if (rc != 0) {
		op->rc = rc;
		dump_finish(op);
		return;
	}
	op->state = DUMP_READ_SUPERS;
	dump_step(op);
}
