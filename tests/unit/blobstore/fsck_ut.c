/*
 * Unit tests for the blobstore fsck and its repair (blobstore/bs_fsck.c) on a
 * malloc bdev, with one ust_thread polled by hand: a clean store checks
 * clean; every kind of damage made by editing the image directly is found
 * with the right finding (a flipped bit in a root page and in a chain page,
 * a leaked cluster, a cluster marked free but referenced, a cluster owned by
 * two blobs, damaged bitmap checksums, a damaged backup and a lost primary
 * superblock); the repair frees exactly the leaked clusters and never a
 * referenced one, refuses when ownership is in doubt, rewrites the backup,
 * restores the primary; a dirty store is reported as such; a loaded store
 * is refused; snapshots and clones check clean and a lost parent is named;
 * dump decodes pages.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ustor/bdev.h"
#include "ustor/blob.h"
#include "ustor/blob_fsck.h"
#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"

#include "../../../bdev/malloc/bdev_malloc.h"
#include "../../../blobstore/format.h"
#include "blob_test.h"

#define BLOCK 512
#define BDEV_BYTES (8u << 20)
#define CLUSTER (64u << 10)
#define UPC (CLUSTER / BLOCK)

static struct ust_blob_store *init_store(void)
{
	struct ust_bs_opts o;

	ust_bs_opts_init(&o);
	o.cluster_size = CLUSTER;
	ust_bs_init("M0", &o, bt_bs_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	return bt_r.bs;
}

static int load_store(struct ust_blob_store **bs)
{
	ust_bs_load("M0", NULL, bt_bs_cb, bt_begin());
	bt_finish();
	*bs = bt_r.bs;
	return bt_r.rc;
}

static void unload(struct ust_blob_store *bs)
{
	ust_bs_unload(bs, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
}

static ust_blob_id create(struct ust_blob_store *bs, uint64_t clusters, bool thin)
{
	struct ust_blob_opts o;

	ust_blob_opts_init(&o);
	o.num_clusters = clusters;
	o.thin_provision = thin;
	ust_bs_create_blob(bs, &o, bt_id_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	return bt_r.id;
}

static struct ust_blob *open_blob(struct ust_blob_store *bs, ust_blob_id id)
{
	ust_bs_open_blob(bs, id, bt_blob_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	return bt_r.blob;
}

static void close_blob(struct ust_blob *blob)
{
	ust_blob_close(blob, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
}

static struct ust_bs_fsck_report *fsck(bool repair)
{
	struct ust_bs_fsck_opts o;

	ust_bs_fsck_opts_init(&o);
	o.repair = repair;
	ust_bs_fsck("M0", &o, bt_fsck_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	assert_non_null(bt_r.rep);
	return bt_r.rep;
}

/* Print the findings when a test is about to fail on them. */
static void show(const struct ust_bs_fsck_report *rep)
{
	if (rep->errors_unrepaired != 0 || rep->warnings != 0) {
		ust_bs_fsck_report_print(rep, stderr);
	}
}

static void expect_clean(void)
{
	struct ust_bs_fsck_report *rep = fsck(false);

	show(rep);
	assert_true(rep->store_found);
	assert_int_equal(rep->errors, 0);
	assert_int_equal(rep->warnings, 0);
	ust_bs_fsck_report_free(rep);
}

static const struct ust_bs_fsck_finding *find(const struct ust_bs_fsck_report *rep,
					      enum ust_bs_fsck_kind kind)
{
	size_t i;

	for (i = 0; i < rep->count; i++) {
		if (rep->findings[i].kind == kind) {
			return &rep->findings[i];
		}
	}
	return NULL;
}

/* ---- raw access to the image (only while no store is loaded) --------------------------- */

static void read_page(uint64_t page, uint8_t *buf)
{
	bt_raw_read("M0", page * UST_BS_PAGE_SIZE, buf, UST_BS_PAGE_SIZE);
}

static void write_page(uint64_t page, uint8_t *buf)
{
	bt_raw_write("M0", page * UST_BS_PAGE_SIZE, buf, UST_BS_PAGE_SIZE);
}

static void flip_bit(uint64_t byte_offset, uint8_t mask)
{
	uint8_t page[UST_BS_PAGE_SIZE];
	uint64_t base = byte_offset / UST_BS_PAGE_SIZE * UST_BS_PAGE_SIZE;

	bt_raw_read("M0", base, page, UST_BS_PAGE_SIZE);
	page[byte_offset - base] ^= mask;
	bt_raw_write("M0", base, page, UST_BS_PAGE_SIZE);
}

static struct ust_bs_super read_super(void)
{
	uint8_t page[UST_BS_PAGE_SIZE];
	struct ust_bs_fmt_err err;
	struct ust_bs_super sb;

	read_page(0, page);
	assert_int_equal(ust_bs_fmt_super_decode(page, &sb, &err), 0);
	return sb;
}

static void write_super(const struct ust_bs_super *sb)
{
	uint8_t page[UST_BS_PAGE_SIZE];

	ust_bs_fmt_super_encode(sb, page);
	write_page(0, page);
}

/* The newest valid root half of a blob: its page number, decoded into *r. */
static uint64_t newest_root(const struct ust_bs_super *sb, ust_blob_id id, struct ust_bs_root *r,
			    uint8_t *page_out)
{
	uint8_t page[UST_BS_PAGE_SIZE];
	struct ust_bs_fmt_geom geom;
	struct ust_bs_fmt_err err;
	struct ust_bs_root tmp;
	uint64_t best = 0, gen = 0, p;
	int h;

	ust_bs_fmt_geom_from_super(sb, &geom);
	for (h = 0; h < 2; h++) {
		p = sb->root_slots.start + 2ull * ust_bs_blobid_slot(id) + (uint64_t)h;
		read_page(p, page);
		if (ust_bs_fmt_root_decode(page, &geom, &tmp, &err) == 0 && tmp.hdr.generation > gen) {
			gen = tmp.hdr.generation;
			best = p;
			*r = tmp;
			if (page_out != NULL) {
				memcpy(page_out, page, UST_BS_PAGE_SIZE);
			}
		}
	}
	assert_true(gen > 0);
	return best;
}

/* The device clusters of a blob with one run list in its root. */
static uint32_t first_run(const uint8_t *root_page, uint32_t *count)
{
	struct ust_bs_desc d;
	struct ust_bs_extent_run run;
	uint32_t cursor = 0;

	while (ust_bs_fmt_desc_next(root_page, &cursor, &d) == 1) {
		if (d.type == UST_BS_DESC_EXTENT_RLE) {
			ust_bs_fmt_desc_run(&d, 0, &run);
			*count = run.count;
			return run.cluster;
		}
	}
	fail_msg("no run list");
	return 0;
}

static bool cluster_marked(const struct ust_bs_super *sb, uint64_t c)
{
	uint8_t page[UST_BS_PAGE_SIZE];

	read_page(sb->cluster_bitmap.start + c / UST_BS_BITS_PER_PAGE, page);
	c %= UST_BS_BITS_PER_PAGE;
	return (page[c / 8] >> (c % 8)) & 1;
}

/* Change one bit of the cluster bitmap and keep the superblock's checksum right. */
static void set_cluster_bit(uint64_t c, bool used)
{
	struct ust_bs_super sb = read_super();
	uint8_t *bm = malloc((size_t)sb.cluster_bitmap.pages * UST_BS_PAGE_SIZE);

	assert_true(sb.clean);
	bt_raw_read("M0", (uint64_t)sb.cluster_bitmap.start * UST_BS_PAGE_SIZE, bm,
	       (uint64_t)sb.cluster_bitmap.pages * UST_BS_PAGE_SIZE);
	if (used) {
		bm[c / 8] |= (uint8_t)(1u << (c % 8));
	} else {
		bm[c / 8] &= (uint8_t)~(1u << (c % 8));
	}
	bt_raw_write("M0", (uint64_t)sb.cluster_bitmap.start * UST_BS_PAGE_SIZE, bm,
	       (uint64_t)sb.cluster_bitmap.pages * UST_BS_PAGE_SIZE);
	sb.cluster_bitmap_csum =
		ust_bs_fmt_region_checksum(bm, (size_t)sb.cluster_bitmap.pages * UST_BS_PAGE_SIZE);
	write_super(&sb);
	free(bm);
}

/* ---- fixtures --------------------------------------------------------------------------- */

static int make_bdev(void **state)
{
	(void)state;
	return bt_malloc_create("M0", BDEV_BYTES, BLOCK);
}

static int drop_bdev(void **state)
{
	(void)state;
	return bt_malloc_delete("M0");
}

/* ---- tests --------------------------------------------------------------------------------- */

/* A store with thick, thin, written and chained blobs is clean; a loaded one is refused. */
static void test_clean_store(void **state)
{
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	struct ust_bs_fsck_report *rep;
	ust_blob_id thick, thin, big;
	uint8_t *buf = ust_dma_zmalloc(BLOCK, BLOCK);
	char *value = malloc(12000);

	(void)state;
	/* No store at all. */
	rep = fsck(false);
	assert_false(rep->store_found);
	assert_non_null(find(rep, UST_BS_FSCK_NO_STORE));
	assert_true(rep->errors > 0);
	ust_bs_fsck_report_free(rep);

	bs = init_store();
	thick = create(bs, 2, false);
	thin = create(bs, 5, true);
	big = create(bs, 1, false);
	blob = open_blob(bs, thin);
	ch = ust_bs_alloc_io_channel(bs);
	memset(buf, 0x5a, BLOCK);
	ust_blob_write(blob, ch, buf, 3 * UPC, 1, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	ust_bs_free_io_channel(ch);
	close_blob(blob);
	blob = open_blob(bs, big);
	memset(value, 'x', 12000);
	assert_int_equal(ust_blob_set_xattr(blob, "big", value, 12000), 0);
	close_blob(blob);

	/* The store holds the bdev: fsck must not read under it. */
	ust_bs_fsck("M0", NULL, bt_fsck_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, -EPERM);
	assert_null(bt_r.rep);

	unload(bs);
	rep = fsck(false);
	show(rep);
	assert_true(rep->store_found);
	assert_true(rep->clean);
	assert_int_equal(rep->errors, 0);
	assert_int_equal(rep->warnings, 0);
	assert_int_equal(rep->live_blobs, 3);
	assert_int_equal(rep->referenced_clusters, 2 + 1 + 1);
	assert_true(rep->referenced_pages >= 3); /* the 12000-byte value needs chain pages */
	assert_int_equal(rep->leaked_clusters, 0);
	ust_bs_fsck_report_free(rep);

	/* The check wrote nothing and released the bdev: the store loads. */
	assert_int_equal(load_store(&bs), 0);
	assert_int_equal(ust_bs_get_damaged(bs, NULL, 0), 0);
	unload(bs);
	(void)thick;
	ust_dma_free(buf);
	free(value);
}

/* A flipped bit in a root page: a checksum error naming the blob and the page. */
static void test_root_checksum(void **state)
{
	struct ust_blob_store *bs;
	struct ust_bs_fsck_report *rep;
	const struct ust_bs_fsck_finding *f;
	struct ust_bs_super sb;
	struct ust_bs_root r;
	uint8_t before[UST_BS_PAGE_SIZE], after[UST_BS_PAGE_SIZE];
	ust_blob_id a, b;
	uint64_t page;

	(void)state;
	bs = init_store();
	a = create(bs, 2, false);
	b = create(bs, 3, false);
	unload(bs);
	sb = read_super();
	page = newest_root(&sb, b, &r, NULL);
	flip_bit(page * UST_BS_PAGE_SIZE + UST_BS_PAGE_HDR_SIZE + 3, 0x10);
	read_page(page, before);

	rep = fsck(true);
	f = find(rep, UST_BS_FSCK_ROOT_DAMAGED);
	assert_non_null(f);
	assert_int_equal(f->severity, UST_BS_FSCK_ERROR);
	assert_int_equal(f->blob_id, b);
	assert_int_equal(f->slot, ust_bs_blobid_slot(b));
	assert_int_equal(f->page, page);
	assert_non_null(strstr(f->msg, "checksum"));
	assert_false(f->repaired);
	assert_true(rep->errors_unrepaired > 0);
	assert_int_equal(rep->damaged_blobs, 1);
	assert_int_equal(rep->live_blobs, 1);
	/* Its clusters may be its: never called leaked. */
	assert_null(find(rep, UST_BS_FSCK_CLUSTER_LEAKED));
	ust_bs_fsck_report_free(rep);
	/* The repair never touches a blob's metadata. */
	read_page(page, after);
	assert_memory_equal(before, after, UST_BS_PAGE_SIZE);
	(void)a;
}

/* A chain page with a flipped bit: the tree is incomplete, named by its page. */
static void test_chain_damage(void **state)
{
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	struct ust_bs_fsck_report *rep;
	const struct ust_bs_fsck_finding *f;
	struct ust_bs_super sb;
	struct ust_bs_root r;
	struct ust_bs_desc d;
	struct ust_bs_page_ref ref = {0};
	uint8_t root[UST_BS_PAGE_SIZE];
	char *value = malloc(9000);
	uint32_t cursor = 0;
	ust_blob_id id;

	(void)state;
	bs = init_store();
	id = create(bs, 1, false);
	blob = open_blob(bs, id);
	memset(value, 'v', 9000);
	assert_int_equal(ust_blob_set_xattr(blob, "long", value, 9000), 0);
	close_blob(blob);
	unload(bs);
	sb = read_super();
	newest_root(&sb, id, &r, root);
	while (ust_bs_fmt_desc_next(root, &cursor, &d) == 1) {
		if (d.type == UST_BS_DESC_CHAIN) {
			ust_bs_fmt_desc_page_ref(&d, 0, &ref);
		}
	}
	assert_true(ref.page >= sb.md_pool.start);
	flip_bit((uint64_t)ref.page * UST_BS_PAGE_SIZE + 2000, 0x01);

	rep = fsck(false);
	f = find(rep, UST_BS_FSCK_TREE_INCOMPLETE);
	assert_non_null(f);
	assert_int_equal(f->blob_id, id);
	assert_int_equal(f->page, ref.page);
	assert_int_equal(rep->damaged_blobs, 1);
	/* The damaged blob's cluster and pages are not leaks. */
	assert_null(find(rep, UST_BS_FSCK_CLUSTER_LEAKED));
	assert_null(find(rep, UST_BS_FSCK_PAGE_LEAKED));
	ust_bs_fsck_report_free(rep);
	free(value);
}

/* A cluster marked used that nobody references: found, freed by repair, then clean. */
static void test_leak_repaired(void **state)
{
	struct ust_blob_store *bs;
	struct ust_bs_fsck_report *rep;
	const struct ust_bs_fsck_finding *f;
	struct ust_bs_super sb;
	struct ust_bs_root r;
	uint8_t root[UST_BS_PAGE_SIZE];
	uint32_t first, count, i;
	uint64_t total, leak;
	ust_blob_id a;

	(void)state;
	bs = init_store();
	a = create(bs, 3, false);
	total = ust_bs_get_total_data_cluster_count(bs);
	unload(bs);
	sb = read_super();
	newest_root(&sb, a, &r, root);
	first = first_run(root, &count);
	assert_int_equal(count, 3);
	leak = sb.total_clusters - 2; /* far from the blob */
	set_cluster_bit(leak, true);

	rep = fsck(false);
	f = find(rep, UST_BS_FSCK_CLUSTER_LEAKED);
	assert_non_null(f);
	assert_int_equal(f->cluster, leak);
	assert_int_equal(f->count, 1);
	assert_int_equal(rep->leaked_clusters, 1);
	assert_int_equal(rep->errors, 1);
	ust_bs_fsck_report_free(rep);

	rep = fsck(true);
	f = find(rep, UST_BS_FSCK_CLUSTER_LEAKED);
	assert_non_null(f);
	assert_true(f->repaired);
	assert_int_equal(rep->errors_unrepaired, 0);
	assert_true(rep->repairs >= 1);
	assert_non_null(find(rep, UST_BS_FSCK_REPAIR));
	ust_bs_fsck_report_free(rep);

	expect_clean();
	sb = read_super();
	assert_true(sb.clean);
	assert_false(cluster_marked(&sb, leak));
	for (i = 0; i < count; i++) {
		assert_true(cluster_marked(&sb, first + i)); /* referenced: kept */
	}
	/* The loader trusts the rewritten bitmaps and sees the space free. */
	assert_int_equal(load_store(&bs), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total - 3);
	unload(bs);
}

/* A referenced cluster marked free on a clean store: found, and the repair marks it. */
static void test_unmarked_cluster(void **state)
{
	struct ust_blob_store *bs;
	struct ust_bs_fsck_report *rep;
	const struct ust_bs_fsck_finding *f;
	struct ust_bs_super sb;
	struct ust_bs_root r;
	uint8_t root[UST_BS_PAGE_SIZE];
	uint32_t first, count;
	uint64_t total;
	ust_blob_id a;

	(void)state;
	bs = init_store();
	a = create(bs, 4, false);
	total = ust_bs_get_total_data_cluster_count(bs);
	unload(bs);
	sb = read_super();
	newest_root(&sb, a, &r, root);
	first = first_run(root, &count);
	set_cluster_bit(first + 1, false);

	rep = fsck(false);
	f = find(rep, UST_BS_FSCK_CLUSTER_UNMARKED);
	assert_non_null(f);
	assert_int_equal(f->severity, UST_BS_FSCK_ERROR);
	assert_int_equal(f->cluster, first + 1);
	assert_int_equal(f->count, 1);
	ust_bs_fsck_report_free(rep);

	rep = fsck(true);
	assert_int_equal(rep->errors_unrepaired, 0);
	ust_bs_fsck_report_free(rep);
	expect_clean();
	assert_true(cluster_marked(&sb, first + 1));
	assert_int_equal(load_store(&bs), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), total - 4);
	unload(bs);
}

/* Two blobs claim one cluster: both named; the repair refuses to touch the bitmaps. */
static void test_double_owner(void **state)
{
	struct ust_blob_store *bs;
	struct ust_bs_fsck_report *rep;
	const struct ust_bs_fsck_finding *f;
	struct ust_bs_page_builder pb;
	struct ust_bs_extent_run run;
	struct ust_bs_super sb;
	struct ust_bs_root ra, rb;
	uint8_t pa[UST_BS_PAGE_SIZE], pbuf[UST_BS_PAGE_SIZE], bm_before[UST_BS_PAGE_SIZE];
	uint8_t bm_after[UST_BS_PAGE_SIZE];
	uint32_t a_first, a_count, b_first, b_count;
	uint64_t b_page;
	ust_blob_id a, b;

	(void)state;
	bs = init_store();
	a = create(bs, 2, false);
	b = create(bs, 2, false);
	unload(bs);
	sb = read_super();
	newest_root(&sb, a, &ra, pa);
	b_page = newest_root(&sb, b, &rb, pbuf);
	a_first = first_run(pa, &a_count);
	b_first = first_run(pbuf, &b_count);
	/* Rewrite b's root (a valid page) so that its map names a's clusters. */
	run.cluster = a_first;
	run.count = 2;
	ust_bs_fmt_root_begin(&pb, pbuf, &rb);
	assert_int_equal(ust_bs_fmt_add_rle(&pb, 0, &run, 1), 0);
	ust_bs_fmt_page_finish(&pb);
	write_page(b_page, pbuf);
	read_page(sb.cluster_bitmap.start, bm_before);

	rep = fsck(true);
	f = find(rep, UST_BS_FSCK_CLUSTER_SHARED);
	assert_non_null(f);
	assert_int_equal(f->blob_id, b);
	assert_true(f->cluster == a_first || f->cluster == a_first + 1);
	assert_non_null(strstr(f->msg, "0x"));
	assert_int_equal(ust_bs_fsck_count_kind(rep, UST_BS_FSCK_CLUSTER_SHARED), 2);
	/* b's own clusters are now unreferenced, but with ownership in doubt nothing is freed. */
	f = find(rep, UST_BS_FSCK_CLUSTER_LEAKED);
	assert_non_null(f);
	assert_int_equal(f->cluster, b_first);
	assert_false(f->repaired);
	f = find(rep, UST_BS_FSCK_REPAIR);
	assert_non_null(f);
	assert_non_null(strstr(f->msg, "not rewritten"));
	assert_int_equal(rep->repairs, 0);
	assert_true(rep->errors_unrepaired >= 3);
	ust_bs_fsck_report_free(rep);
	read_page(sb.cluster_bitmap.start, bm_after);
	assert_memory_equal(bm_before, bm_after, UST_BS_PAGE_SIZE);
	(void)b_count;
}

/* Bitmaps whose checksum does not match: reported; the repair rewrites them. */
static void test_bitmap_checksum(void **state)
{
	struct ust_blob_store *bs;
	struct ust_bs_fsck_report *rep;
	const struct ust_bs_fsck_finding *f;
	struct ust_bs_super sb;

	(void)state;
	bs = init_store();
	create(bs, 1, false);
	unload(bs);
	sb = read_super();
	flip_bit((uint64_t)sb.page_bitmap.start * UST_BS_PAGE_SIZE + 100, 0x04);
	rep = fsck(true);
	f = find(rep, UST_BS_FSCK_BITMAP_CHECKSUM);
	assert_non_null(f);
	assert_int_equal(f->page, sb.page_bitmap.start);
	assert_true(f->repaired);
	assert_int_equal(rep->errors_unrepaired, 0);
	ust_bs_fsck_report_free(rep);
	expect_clean();
}

/* A damaged backup superblock: found; the repair rewrites it from the primary. */
static void test_backup_repaired(void **state)
{
	struct ust_blob_store *bs;
	struct ust_bs_fsck_report *rep;
	const struct ust_bs_fsck_finding *f;
	struct ust_bs_super sb, backup;
	struct ust_bs_fmt_err err;
	uint8_t page[UST_BS_PAGE_SIZE];
	uint64_t off;

	(void)state;
	bs = init_store();
	create(bs, 2, true);
	unload(bs);
	sb = read_super();
	off = ust_bs_fmt_backup_offset(sb.bdev_size);
	flip_bit(off + 200, 0x80);

	rep = fsck(false);
	f = find(rep, UST_BS_FSCK_SUPER_BACKUP);
	assert_non_null(f);
	assert_int_equal(f->severity, UST_BS_FSCK_ERROR);
	assert_int_equal(f->page, off / UST_BS_PAGE_SIZE);
	ust_bs_fsck_report_free(rep);

	rep = fsck(true);
	assert_true(find(rep, UST_BS_FSCK_SUPER_BACKUP)->repaired);
	assert_int_equal(rep->errors_unrepaired, 0);
	assert_int_equal(rep->repairs, 1);
	ust_bs_fsck_report_free(rep);
	expect_clean();
	bt_raw_read("M0", off, page, UST_BS_PAGE_SIZE);
	assert_int_equal(ust_bs_fmt_super_decode(page, &backup, &err), 0);
	assert_int_equal(backup.hdr.seq, UST_BS_SUPER_BACKUP);
	assert_false(backup.clean);
	assert_int_equal(backup.hdr.generation, sb.hdr.generation);
	assert_int_equal(backup.hdr.store_id, sb.hdr.store_id);
	/* The primary is untouched and still clean. */
	assert_true(read_super().clean);
}

/* A wiped primary: checked from the backup; the repair restores it, not clean. */
static void test_primary_restored(void **state)
{
	struct ust_blob_store *bs;
	struct ust_bs_fsck_report *rep;
	uint8_t zero[UST_BS_PAGE_SIZE] = {0};
	ust_blob_id a;

	(void)state;
	bs = init_store();
	a = create(bs, 2, false);
	unload(bs);
	write_page(0, zero);
	assert_int_not_equal(load_store(&bs), 0);

	rep = fsck(true);
	show(rep);
	assert_true(rep->store_found);
	assert_non_null(find(rep, UST_BS_FSCK_SUPER_PRIMARY));
	assert_true(find(rep, UST_BS_FSCK_SUPER_PRIMARY)->repaired);
	assert_int_equal(rep->live_blobs, 1);
	assert_int_equal(rep->errors_unrepaired, 0);
	ust_bs_fsck_report_free(rep);
	assert_false(read_super().clean);
	assert_int_equal(load_store(&bs), 0);
	close_blob(open_blob(bs, a));
	unload(bs);
	expect_clean();
}

/* A store that was not unloaded: reported dirty, its bitmaps not judged. */
static void test_dirty_store(void **state)
{
	struct ust_blob_store *bs;
	struct ust_bs_fsck_report *rep;
	const struct ust_bs_fsck_finding *f;
	uint8_t *image = malloc(BDEV_BYTES);

	(void)state;
	bs = init_store();
	create(bs, 2, false);
	create(bs, 3, true);
	/* "Crash": keep the image of the loaded store, unload, put it back. */
	bt_raw_read("M0", 0, image, BDEV_BYTES);
	unload(bs);
	bt_raw_write("M0", 0, image, BDEV_BYTES);
	assert_false(read_super().clean);

	rep = fsck(true);
	show(rep);
	assert_false(rep->clean);
	f = find(rep, UST_BS_FSCK_DIRTY);
	assert_non_null(f);
	assert_int_equal(f->severity, UST_BS_FSCK_INFO);
	assert_int_equal(rep->errors, 0);
	assert_int_equal(rep->live_blobs, 2);
	assert_int_equal(rep->repairs, 0);
	ust_bs_fsck_report_free(rep);
	assert_false(read_super().clean); /* the repair leaves a dirty store to the loader */
	free(image);
}

/* Snapshots and clones check clean; a clone whose snapshot vanished is named. */
static void test_parents(void **state)
{
	struct ust_blob_store *bs;
	struct ust_bs_fsck_report *rep;
	const struct ust_bs_fsck_finding *f;
	struct ust_bs_super sb;
	uint8_t zero[UST_BS_PAGE_SIZE] = {0};
	ust_blob_id a, snap, clone;
	int h;

	(void)state;
	bs = init_store();
	a = create(bs, 3, false);
	ust_bs_create_snapshot(bs, a, NULL, 0, bt_id_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	snap = bt_r.id;
	ust_bs_create_clone(bs, snap, NULL, 0, bt_id_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	clone = bt_r.id;
	unload(bs);
	rep = fsck(false);
	show(rep);
	assert_int_equal(rep->errors, 0);
	assert_int_equal(rep->live_blobs, 3);
	assert_int_equal(rep->referenced_clusters, 3); /* the snapshot holds them; a and clone are thin */
	ust_bs_fsck_report_free(rep);

	/* Wipe the snapshot's slot: both children lose their parent, its clusters leak. */
	sb = read_super();
	for (h = 0; h < 2; h++) {
		write_page(sb.root_slots.start + 2ull * ust_bs_blobid_slot(snap) + (uint64_t)h, zero);
	}
	rep = fsck(false);
	assert_int_equal(ust_bs_fsck_count_kind(rep, UST_BS_FSCK_PARENT), 2);
	f = find(rep, UST_BS_FSCK_PARENT);
	assert_true(f->blob_id == a || f->blob_id == clone);
	assert_int_equal(f->severity, UST_BS_FSCK_ERROR);
	f = find(rep, UST_BS_FSCK_CLUSTER_LEAKED);
	assert_non_null(f);
	assert_int_equal(f->count, 3);
	assert_non_null(find(rep, UST_BS_FSCK_SLOT_LEAKED));
	ust_bs_fsck_report_free(rep);
}

/* dump decodes the superblocks and the blob's root page. */
static void test_dump(void **state)
{
	struct ust_blob_store *bs;
	char *text = NULL;
	size_t len = 0;
	char want[64];
	FILE *out;
	ust_blob_id a;

	(void)state;
	bs = init_store();
	a = create(bs, 2, false);
	unload(bs);
	out = open_memstream(&text, &len);
	assert_non_null(out);
	ust_bs_dump("M0", out, bt_op_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	fclose(out);
	assert_non_null(strstr(text, "superblock primary: page 0"));
	assert_non_null(strstr(text, "superblock backup"));
	snprintf(want, sizeof(want), "root blob 0x%llx slot 0 half", (unsigned long long)a);
	assert_non_null(strstr(text, want));
	assert_non_null(strstr(text, "EXTENT_RLE"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_clean_store, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_root_checksum, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_chain_damage, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_leak_repaired, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_unmarked_cluster, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_double_owner, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_bitmap_checksum, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_backup_repaired, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_primary_restored, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_dirty_store, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_parents, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_dump, make_bdev, drop_bdev),
	};

	ust_log_set_print_level(UST_LOG_ERROR);
	return cmocka_run_group_tests(tests, bt_group_setup, bt_group_teardown);
}
