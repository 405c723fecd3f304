/*
 * Damaged store images (docs/blobstore-format.md 4, 5.1, 9.2, 9.3, 9.5): a
 * reference store with thick and thin blobs, data, small and chained xattrs
 * and a blob with an older version in its other root half is unloaded, and
 * its metadata pages are damaged one at a time on the malloc bdev: bit
 * flips, torn writes (a page cut at a sector boundary), zeroed pages and
 * garbage, in the superblocks, the three bitmaps, root halves (current and
 * older) and chain pages, loaded both clean and dirty.
 *
 * Asserted: load never crashes; it either fails with a clear errno (no
 * superblock to trust) or succeeds; a damaged primary superblock is replaced
 * by the backup (and rewritten), a damaged backup is rewritten from the
 * primary; a damaged bitmap only costs a dirty load; one damaged blob never
 * takes the store down: it fails to open with -EUCLEAN (or, on a dirty load,
 * rolls back to its older complete version or is taken for an unfinished
 * create, as 9.6 allows) and ust_bs_get_damaged() names its slot, while
 * every other blob opens, reads its data and takes writes, and the store
 * unloads and loads again.
 *
 * Fuzzing: metadata pages with random changes and a recomputed checksum go
 * through the page decoders and descriptor walkers directly (thousands of
 * cases), and through a full load, iteration and unload (USTOR_CORRUPT_FUZZ
 * cases, default 150): the code must reject or isolate, never crash or read
 * out of bounds (run it under ASan).
 */
#include <errno.h>
#include <inttypes.h>
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
#include "ustor/log.h"
#include "ustor/thread.h"

#include "../../../blobstore/format.h"
#include "blob_test.h"

#define BLOCK 512u
#define DEV_BYTES (8u << 20)
#define CLUSTER (32u << 10)
#define UPC (CLUSTER / BLOCK)
#define PG UST_BS_PAGE_SIZE
#define NBLOB 6
#define BIGX 12000u

/* The reference store. */
struct ref_blob {
	const char *name;
	bool thin;
	uint64_t nclu;
	uint32_t written; /* bit c: cluster c holds the pattern */
	ust_blob_id id;
};

static struct ref_blob g_rb[NBLOB] = {
	{"P", false, 3, 0x7, 0}, {"Q", true, 6, 0x25, 0}, {"X", false, 1, 0x1, 0},
	{"Y", true, 4, 0x2, 0},  {"Z", false, 2, 0x3, 0}, {"W", false, 1, 0x1, 0},
};

static uint8_t *g_img;      /* the clean reference image */
static struct ust_bs_super g_sb;
static struct ust_bs_fmt_geom g_geom;
static uint64_t g_free;     /* free clusters of the reference store */
static uint32_t g_chain[8]; /* X's chain pages */
static uint32_t g_nchain;
static int g_cur_half[NBLOB];
static uint64_t g_rs = 0x243f6a8885a308d3ull;

static void pattern(uint8_t *buf, uint32_t b, uint64_t c, uint32_t salt)
{
	uint64_t i;

	for (i = 0; i < CLUSTER; i++) {
		buf[i] = (uint8_t)(i * 13u + c * 71u + b * 29u + salt + (i >> 9));
	}
}

static void bigx(uint8_t *v)
{
	uint32_t i;

	for (i = 0; i < BIGX; i++) {
		v[i] = (uint8_t)(i ^ (i >> 7) ^ 0x5a);
	}
}

static uint64_t page_off(uint64_t page)
{
	return page * PG;
}

static uint64_t root_page(uint32_t b, int half)
{
	return g_sb.root_slots.start + 2ull * ust_bs_blobid_slot(g_rb[b].id) + (uint64_t)half;
}

/* ---- the reference store ------------------------------------------------------------ */

static void build_reference(void)
{
	struct ust_blob_store *bs;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	struct ust_bs_fmt_err err;
	struct ust_bs_root r[2];
	uint8_t *buf = malloc(CLUSTER), *v = malloc(BIGX);
	uint32_t b, i, cursor;
	uint64_t c;
	int h, rc[2];

	assert_int_equal(bt_init("M0", CLUSTER, 32, &bs), 0);
	ch = ust_bs_alloc_io_channel(bs);
	for (b = 0; b < NBLOB; b++) {
		assert_int_equal(bt_create(bs, g_rb[b].nclu, g_rb[b].thin, &g_rb[b].id), 0);
		assert_int_equal(bt_open(bs, g_rb[b].id, &blob), 0);
		assert_int_equal(ust_blob_set_xattr(blob, "n", g_rb[b].name, 1), 0);
		for (c = 0; c < g_rb[b].nclu; c++) {
			if (g_rb[b].written & (1u << c)) {
				pattern(buf, b, c, 0);
				assert_int_equal(bt_write(blob, ch, buf, c * UPC, UPC), 0);
			}
		}
		if (b == 2) {
			bigx(v);
			assert_int_equal(ust_blob_set_xattr(blob, "big", v, BIGX), 0);
		}
		if (b == 4) {
			/* Several generations: both halves hold a valid version. */
			assert_int_equal(bt_sync(blob), 0);
			assert_int_equal(ust_blob_set_xattr(blob, "v", "1", 1), 0);
			assert_int_equal(bt_sync(blob), 0);
			assert_int_equal(ust_blob_set_xattr(blob, "v", "2", 1), 0);
		}
		assert_int_equal(bt_sync(blob), 0);
		assert_int_equal(bt_close(blob), 0);
	}
	g_free = ust_bs_get_free_cluster_count(bs);
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(bt_unload(bs), 0);

	g_img = malloc(DEV_BYTES);
	bt_raw_read("M0", 0, g_img, DEV_BYTES);
	assert_int_equal(ust_bs_fmt_super_decode(g_img, &g_sb, &err), 0);
	assert_true(g_sb.clean);
	ust_bs_fmt_geom_from_super(&g_sb, &g_geom);
	for (b = 0; b < NBLOB; b++) {
		for (h = 0; h < 2; h++) {
			rc[h] = ust_bs_fmt_root_decode(g_img + page_off(root_page(b, h)), &g_geom, &r[h],
						       &err);
		}
		g_cur_half[b] = rc[1] == 0 && (rc[0] != 0 || r[1].hdr.generation > r[0].hdr.generation);
		if (b == 4) {
			assert_int_equal(rc[0], 0);
			assert_int_equal(rc[1], 0);
		}
	}
	/* X's chain pages, from its current root. */
	{
		struct ust_bs_desc d;
		struct ust_bs_page_ref ref;
		const uint8_t *root = g_img + page_off(root_page(2, g_cur_half[2]));

		cursor = 0;
		g_nchain = 0;
		while (ust_bs_fmt_desc_next(root, &cursor, &d) == 1) {
			if (d.type != UST_BS_DESC_CHAIN) {
				continue;
			}
			for (i = 0; i < ust_bs_fmt_desc_count(&d) && g_nchain < 8; i++) {
				ust_bs_fmt_desc_page_ref(&d, i, &ref);
				g_chain[g_nchain++] = ref.page;
			}
		}
		assert_true(g_nchain >= 2);
	}
	free(buf);
	free(v);
}

/* Put an image on the device; dirty: with clean = 0 in the primary. */
static void restore(const uint8_t *img, bool dirty)
{
	struct ust_bs_super sb;
	struct ust_bs_fmt_err err;
	uint8_t *page;

	bt_raw_write("M0", 0, img, DEV_BYTES);
	if (!dirty) {
		return;
	}
	page = malloc(PG);
	memcpy(page, img, PG);
	if (ust_bs_fmt_super_decode(page, &sb, &err) == 0) {
		sb.clean = false;
		ust_bs_fmt_super_encode(&sb, page);
		bt_raw_write("M0", 0, page, PG);
	}
	free(page);
}

/* ---- damage ------------------------------------------------------------------------ */

enum damage {
	DMG_FLIP,    /* one bit somewhere in the page */
	DMG_TORN,    /* the page keeps its first sectors, the rest is old (zeros) */
	DMG_SECTOR,  /* one sector of the page replaced by garbage */
	DMG_ZERO,    /* the whole page gone */
	DMG_COUNT
};

static const char *const g_dmg_name[DMG_COUNT] = {"bit flip", "torn", "garbage sector", "zeroed"};

static void damage_page(uint8_t *img, uint64_t page, enum damage k)
{
	uint8_t *p = img + page_off(page);
	uint64_t i, s;

	switch (k) {
	case DMG_FLIP:
		i = 16 + bt_rand(&g_rs) % (PG - 16); /* past magic and checksum */
		p[i] ^= (uint8_t)(1u << (bt_rand(&g_rs) % 8));
		break;
	case DMG_TORN:
		/* Cut at a sector boundary before the last non-zero byte. */
		for (i = PG; i > 0 && p[i - 1] == 0; i--) {
		}
		if (i <= 512) {
			memset(p, 0, 512); /* only the first sector mattered: it is lost */
			break;
		}
		s = 1 + bt_rand(&g_rs) % ((i - 1) / 512);
		memset(p + s * 512, 0, PG - s * 512);
		break;
	case DMG_SECTOR:
		s = bt_rand(&g_rs) % 8;
		for (i = 0; i < 512; i++) {
			p[s * 512 + i] = (uint8_t)bt_rand(&g_rs);
		}
		if (s == 0) {
			memcpy(p, img, 4); /* keep the magic: damaged, not foreign */
		}
		break;
	default:
		memset(p, 0, PG);
		break;
	}
}

/* ---- checks -------------------------------------------------------------------------- */

static void check_blob(struct ust_blob_store *bs, struct ust_io_channel *ch, uint32_t b,
		       bool write)
{
	struct ust_blob *blob;
	uint8_t *buf = malloc(CLUSTER), *want = malloc(CLUSTER);
	const void *v;
	size_t len;
	uint64_t c;

	assert_int_equal(bt_open(bs, g_rb[b].id, &blob), 0);
	assert_int_equal(ust_blob_get_num_clusters(blob), g_rb[b].nclu);
	assert_int_equal(ust_blob_get_xattr(blob, "n", &v, &len), 0);
	assert_int_equal(len, 1);
	assert_memory_equal(v, g_rb[b].name, 1);
	for (c = 0; c < g_rb[b].nclu; c++) {
		if (g_rb[b].written & (1u << c)) {
			assert_int_equal(bt_read(blob, ch, buf, c * UPC, UPC), 0);
			pattern(want, b, c, 0);
			assert_memory_equal(buf, want, CLUSTER);
		} else if (g_rb[b].thin) {
			assert_int_equal(bt_read(blob, ch, buf, c * UPC, UPC), 0);
			memset(want, 0, CLUSTER);
			assert_memory_equal(buf, want, CLUSTER);
		}
	}
	if (b == 2) {
		assert_int_equal(ust_blob_get_xattr(blob, "big", &v, &len), 0);
		assert_int_equal(len, BIGX);
		bigx(want);
		assert_memory_equal(v, want, BIGX);
	}
	if (write) {
		/* It takes writes, and a thin blob new allocations. */
		pattern(want, b, 0, 77);
		assert_int_equal(bt_write(blob, ch, want, 0, 4), 0);
		assert_int_equal(bt_read(blob, ch, buf, 0, 4), 0);
		assert_memory_equal(buf, want, 4 * BLOCK);
		pattern(want, b, 0, 0);
		if (g_rb[b].written & 1) {
			assert_int_equal(bt_write(blob, ch, want, 0, 4), 0);
		}
	}
	assert_int_equal(bt_close(blob), 0);
	free(buf);
	free(want);
}

static bool damage_names(struct ust_blob_store *bs, uint32_t slot)
{
	struct ust_bs_damage d[8];
	size_t n = ust_bs_get_damaged(bs, d, 8), i;

	for (i = 0; i < n && i < 8; i++) {
		if (d[i].slot == slot && d[i].msg[0] != '\0') {
			return true;
		}
	}
	return false;
}

/*
 * The loaded store: every blob but `hurt` is whole and usable; `hurt` opens
 * (whole if whole_ok: a clean load never rolls back, and a dirty load keeps
 * the current version when only the other half was hit; else perhaps an
 * older version), or is reported damaged, or (only if gone_ok) no longer
 * exists. Then unload and load once more.
 */
static void check_store_ex(struct ust_blob_store *bs, int hurt, bool gone_ok, bool whole_ok,
			   const char *what)
{
	struct ust_io_channel *ch = ust_bs_alloc_io_channel(bs);
	struct ust_blob *blob;
	uint32_t b;
	int rc;

	for (b = 0; b < NBLOB; b++) {
		if ((int)b != hurt) {
			check_blob(bs, ch, b, true);
		}
	}
	if (hurt >= 0) {
		rc = bt_open(bs, g_rb[hurt].id, &blob);
		if (rc == 0) {
			assert_int_equal(bt_close(blob), 0);
			assert_false(damage_names(bs, ust_bs_blobid_slot(g_rb[hurt].id)));
			if (whole_ok) {
				if (getenv("USTOR_CORRUPT_VERBOSE") != NULL) {
					print_message("%s: opens, must be whole\n", what);
				}
				check_blob(bs, ch, (uint32_t)hurt, false);
			}
		} else if (rc == -ENOENT && gone_ok) {
			/* 9.6: a dirty load takes a lone invalid root for an unfinished create. */
		} else {
			if (rc != -EUCLEAN && rc != -EIO && rc != -ENOTSUP) {
				print_error("%s: blob %s opens with %d\n", what, g_rb[hurt].name, rc);
				fail();
			}
			if (!damage_names(bs, ust_bs_blobid_slot(g_rb[hurt].id))) {
				print_error("%s: blob %s is not reported damaged\n", what,
					    g_rb[hurt].name);
				fail();
			}
		}
	}
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(bt_unload(bs), 0);
	assert_int_equal(bt_load("M0", &bs), 0);
	for (b = 0; b < NBLOB; b++) {
		if ((int)b != hurt) {
			assert_int_equal(bt_open(bs, g_rb[b].id, &blob), 0);
			assert_int_equal(bt_close(blob), 0);
		}
	}
	assert_int_equal(bt_unload(bs), 0);
}

static void check_store(struct ust_blob_store *bs, int hurt, bool gone_ok, const char *what)
{
	check_store_ex(bs, hurt, gone_ok, true, what);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_superblock(void **state)
{
	uint8_t *img = malloc(DEV_BYTES), page[PG];
	uint64_t backup = ust_bs_fmt_backup_offset(DEV_BYTES);
	struct ust_blob_store *bs;
	struct ust_bs_super sb;
	struct ust_bs_fmt_err err;
	int k, i, rc;

	(void)state;
	for (k = 0; k < DMG_COUNT; k++) {
		for (i = 0; i < 4; i++) {
			/* The primary damaged behind a good magic: the backup loads the
			 * store (dirty) and the primary is rewritten. */
			memcpy(img, g_img, DEV_BYTES);
			damage_page(img, 0, (enum damage)k);
			restore(img, false);
			rc = bt_load("M0", &bs);
			if (k == DMG_ZERO || memcmp(img, g_img, 4) != 0) {
				/* Blank or not ours: reported, not overridden (5.1). */
				assert_true(rc == -ENODATA || rc == -EUCLEAN);
			} else {
				assert_int_equal(rc, 0);
				assert_int_equal(ust_bs_get_free_cluster_count(bs), g_free);
				check_store(bs, -1, false, g_dmg_name[k]);
				bt_raw_read("M0", 0, page, PG);
				assert_int_equal(ust_bs_fmt_super_decode(page, &sb, &err), 0);
				assert_true(sb.clean);
			}

			/* The backup damaged: the primary loads, the backup is rewritten. */
			memcpy(img, g_img, DEV_BYTES);
			damage_page(img, backup / PG, (enum damage)k);
			restore(img, k == DMG_FLIP);
			assert_int_equal(bt_load("M0", &bs), 0);
			check_store(bs, -1, false, g_dmg_name[k]);
			bt_raw_read("M0", backup, page, PG);
			assert_int_equal(ust_bs_fmt_super_decode(page, &sb, &err), 0);
			assert_int_equal(sb.hdr.seq, UST_BS_SUPER_BACKUP);

			/* Both damaged: no store to trust, a clear error. */
			memcpy(img, g_img, DEV_BYTES);
			damage_page(img, 0, DMG_FLIP);
			damage_page(img, backup / PG, (enum damage)k);
			restore(img, false);
			rc = bt_load("M0", &bs);
			assert_true(rc == -EUCLEAN || rc == -EBADMSG || rc == -ENODATA);
		}
	}
	free(img);
}

static void test_bitmaps(void **state)
{
	uint8_t *img = malloc(DEV_BYTES);
	struct ust_bs_region reg[3] = {g_sb.cluster_bitmap, g_sb.page_bitmap, g_sb.blobid_bitmap};
	struct ust_blob_store *bs;
	int r, k;

	(void)state;
	for (r = 0; r < 3; r++) {
		for (k = 0; k < DMG_COUNT; k++) {
			memcpy(img, g_img, DEV_BYTES);
			damage_page(img, reg[r].start + bt_rand(&g_rs) % reg[r].pages, (enum damage)k);
			restore(img, false);
			/* The bitmap checksums fail: a dirty load rebuilds them. */
			assert_int_equal(bt_load("M0", &bs), 0);
			assert_int_equal(ust_bs_get_free_cluster_count(bs), g_free);
			assert_int_equal(ust_bs_get_damaged(bs, NULL, 0), 0);
			check_store(bs, -1, false, "bitmap");
		}
	}
	free(img);
}

/* One root half of one blob damaged, loaded clean and dirty. */
static void test_root_pages(void **state)
{
	uint8_t *img = malloc(DEV_BYTES);
	struct ust_blob_store *bs;
	uint32_t b;
	uint64_t i;
	int k, h, dirty;
	bool current, other_blank, blanked;
	char what[80];

	(void)state;
	for (b = 0; b < NBLOB; b++) {
		for (h = 0; h < 2; h++) {
			uint64_t page = root_page(b, h);

			current = h == g_cur_half[b];
			other_blank = true;
			for (k = 0; k < (int)PG && other_blank; k++) {
				other_blank = g_img[page_off(root_page(b, 1 - h)) + (uint64_t)k] == 0;
			}
			for (k = 0; k < DMG_COUNT; k++) {
				for (dirty = 0; dirty < 2; dirty++) {
					memcpy(img, g_img, DEV_BYTES);
					damage_page(img, page, (enum damage)k);
					if (memcmp(img + page_off(page), g_img + page_off(page), PG) == 0) {
						continue; /* a blank half zeroed: nothing happened */
					}
					snprintf(what, sizeof(what), "blob %s half %c (%s) %s, %s load",
						 g_rb[b].name, 'A' + h, current ? "current" : "other",
						 g_dmg_name[k], dirty ? "dirty" : "clean");
					restore(img, dirty != 0);
					assert_int_equal(bt_load("M0", &bs), 0);
					/*
					 * Clean: damage is damage (9.2). Dirty: the other half
					 * may take over (9.6); with nothing there the blob may
					 * look like an unfinished create.
					 */
					/*
					 * A current half that ends up all zero (zeroed, or torn
					 * back to blank) cannot be told from a half never
					 * written: then even a clean load uses the older half.
					 */
					blanked = true;
					for (i = 0; i < PG && blanked; i++) {
						blanked = img[page_off(page) + i] == 0;
					}
					check_store_ex(bs, (int)b, dirty && current && other_blank,
						       !current || (!dirty && !blanked), what);
				}
			}
		}
	}
	free(img);
}

static void test_chain_pages(void **state)
{
	uint8_t *img = malloc(DEV_BYTES);
	struct ust_blob_store *bs;
	uint32_t i;
	int k, dirty;

	(void)state;
	for (i = 0; i < g_nchain; i++) {
		for (k = 0; k < DMG_COUNT; k++) {
			for (dirty = 0; dirty < 2; dirty++) {
				memcpy(img, g_img, DEV_BYTES);
				damage_page(img, g_chain[i], (enum damage)k);
				restore(img, dirty != 0);
				assert_int_equal(bt_load("M0", &bs), 0);
				check_store_ex(bs, 2, false, dirty == 0, "chain page");
			}
		}
	}
	free(img);
}

/* ---- fuzzing ------------------------------------------------------------------------------ */

static void reseal(uint8_t *page)
{
	uint64_t c = ust_bs_fmt_page_checksum(page);
	int i;

	for (i = 0; i < 8; i++) {
		page[UST_BS_CSUM_OFFSET + i] = (uint8_t)(c >> (8 * i));
	}
}

/* Small changes a decoder must survive: bytes, u32/u64 fields, lengths. */
static void mutate(uint8_t *page)
{
	uint32_t n = 1 + (uint32_t)(bt_rand(&g_rs) % 6), i, off;
	uint64_t v;

	for (i = 0; i < n; i++) {
		off = (uint32_t)(bt_rand(&g_rs) % (PG - 8));
		if (bt_rand(&g_rs) % 3 == 0) {
			off = (uint32_t)(bt_rand(&g_rs) % 512); /* where headers and descriptors are */
		}
		v = bt_rand(&g_rs);
		switch (v % 6) {
		case 0:
			page[off] ^= (uint8_t)(1u << ((v >> 8) % 8));
			break;
		case 1:
			page[off] = (uint8_t)(v >> 16);
			break;
		case 2: /* a plausible small number */
			page[off & ~3u] = (uint8_t)((v >> 16) % 70);
			page[(off & ~3u) + 1] = 0;
			page[(off & ~3u) + 2] = 0;
			page[(off & ~3u) + 3] = 0;
			break;
		case 3: /* a huge one */
			memset(page + (off & ~3u), 0xff, 4);
			break;
		case 4:
			page[off] = 0;
			break;
		default: /* grow or shrink a length by a little */
			page[off & ~3u] = (uint8_t)(page[off & ~3u] + (uint8_t)((v >> 16) % 17) - 8);
			break;
		}
	}
	reseal(page);
}

/*
 * Walk the descriptors of a page. The accessors trust a validated page, so
 * they run only on pages a decoder accepted; ust_bs_fmt_desc_next() itself
 * must stay inside any page.
 */
static void walk(const uint8_t *page, bool validated)
{
	struct ust_bs_desc d;
	struct ust_bs_page_ref ref;
	struct ust_bs_extent_run run;
	struct ust_bs_xattr_frag x;
	struct ust_bs_pending_op op;
	uint32_t cursor = 0, i, n;
	volatile uint64_t sink = 0;
	int rc;

	while ((rc = ust_bs_fmt_desc_next(page, &cursor, &d)) == 1) {
		assert_true(d.body >= page && d.body + d.len <= page + PG);
		for (i = 0; i < d.len; i++) {
			sink += d.body[i];
		}
		if (!validated) {
			continue;
		}
		n = ust_bs_fmt_desc_count(&d);
		sink += ust_bs_fmt_desc_first(&d);
		for (i = 0; i < n; i++) {
			if (d.type == UST_BS_DESC_EXTENT_RLE) {
				ust_bs_fmt_desc_run(&d, i, &run);
				sink += run.cluster + run.count;
			} else {
				ust_bs_fmt_desc_page_ref(&d, i, &ref);
				sink += ref.page + ref.checksum;
			}
		}
		if (d.type == UST_BS_DESC_XATTR) {
			ust_bs_fmt_desc_xattr(&d, &x);
			for (i = 0; i < x.name_len; i++) {
				sink += x.name[i];
			}
			for (i = 0; i < x.frag_len; i++) {
				sink += x.data[i];
			}
		}
		if (d.type == UST_BS_DESC_PENDING_OP) {
			ust_bs_fmt_desc_pending(&d, &op);
			sink += op.other_blob_id;
		}
	}
	assert_true(rc == 0 || rc == -EUCLEAN);
	(void)sink;
}

static void test_fuzz_decoders(void **state)
{
	uint64_t pages[16], iters = 4000, it;
	uint32_t npages = 0, i, count, clusters[UST_BS_EXTENTS_PER_PAGE];
	uint8_t page[PG];
	struct ust_bs_super sb;
	struct ust_bs_root root;
	struct ust_bs_page_hdr hdr;
	struct ust_bs_fmt_err err;
	uint32_t accepted = 0;
	int rc;

	(void)state;
	pages[npages++] = 0;
	for (i = 0; i < NBLOB; i++) {
		pages[npages++] = root_page(i, g_cur_half[i]);
	}
	for (i = 0; i < g_nchain && npages < 16; i++) {
		pages[npages++] = g_chain[i];
	}
	for (it = 0; it < iters; it++) {
		memcpy(page, g_img + page_off(pages[it % npages]), PG);
		mutate(page);
		memset(&err, 0, sizeof(err));
		rc = ust_bs_fmt_super_decode(page, &sb, &err);
		assert_true(rc <= 0);
		accepted += rc == 0;
		assert_true(strlen(err.msg) < sizeof(err.msg));
		rc = ust_bs_fmt_root_decode(page, &g_geom, &root, &err);
		walk(page, rc == 0);
		accepted += rc == 0;
		rc = ust_bs_fmt_chain_decode(page, &g_geom, &hdr, &err);
		walk(page, rc == 0);
		accepted += rc == 0;
		/* The same bytes read as an extent page. */
		page[6] = UST_BS_PAGE_EXTENT;
		page[7] = 0;
		reseal(page);
		rc = ust_bs_fmt_extent_decode(page, &g_geom, &hdr, clusters, &count, &err);
		if (rc == 0) {
			assert_true(count >= 1 && count <= UST_BS_EXTENTS_PER_PAGE);
			for (i = 0; i < count; i++) {
				assert_true(clusters[i] == 0 || (clusters[i] >= g_sb.md_clusters &&
								 clusters[i] < g_sb.total_clusters));
			}
		}
		walk(page, false);
	}
	print_message("fuzz: %" PRIu64 " mutated pages, %u accepted by a decoder\n", iters, accepted);
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);

	return s != NULL && *s != '\0' ? strtoull(s, NULL, 0) : def;
}

static void test_fuzz_load(void **state)
{
	uint8_t *img = malloc(DEV_BYTES);
	uint64_t n = env_u64("USTOR_CORRUPT_FUZZ", 150), it, page, target;
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	struct ust_io_channel *ch;
	struct bt_done d;
	uint8_t buf[BLOCK];
	uint32_t loaded = 0, damaged = 0, k;
	int rc;

	(void)state;
	for (it = 0; it < n; it++) {
		memcpy(img, g_img, DEV_BYTES);
		for (k = 0; k < 1 + it % 3; k++) {
			target = bt_rand(&g_rs) % (6 + g_nchain);
			if (target == 0) {
				page = 0;
			} else if (target < 6) {
				uint32_t b = (uint32_t)(bt_rand(&g_rs) % NBLOB);

				page = root_page(b, (int)(bt_rand(&g_rs) % 2));
			} else {
				page = g_chain[target - 6];
			}
			mutate(img + page_off(page));
		}
		restore(img, it % 2 == 1);
		rc = bt_load("M0", &bs);
		if (rc != 0) {
			assert_true(rc == -EUCLEAN || rc == -EBADMSG || rc == -ENODATA ||
				    rc == -ENOTSUP || rc == -EINVAL || rc == -EILSEQ);
			continue;
		}
		loaded++;
		/* Whatever loaded can be walked, read and unloaded. */
		ch = ust_bs_alloc_io_channel(bs);
		memset(&d, 0, sizeof(d));
		ust_bs_iter_first(bs, bt_blob_cb, &d);
		bt_poll();
		while (d.done && d.rc == 0) {
			blob = d.blob;
			if (ust_blob_get_num_io_units(blob) > 0) {
				rc = bt_read(blob, ch, buf, 0, 1);
				assert_true(rc == 0 || rc == -EIO);
			}
			memset(&d, 0, sizeof(d));
			ust_bs_iter_next(bs, blob, bt_blob_cb, &d);
			bt_poll();
		}
		assert_true(d.done);
		assert_int_equal(d.rc, -ENOENT);
		damaged += ust_bs_get_damaged(bs, NULL, 0) != 0;
		ust_bs_free_io_channel(ch);
		bt_poll();
		assert_int_equal(bt_unload(bs), 0);
		assert_int_equal(bt_load("M0", &bs), 0);
		assert_int_equal(bt_unload(bs), 0);
	}
	print_message("fuzzed loads: %" PRIu64 " images, %u loaded, %u with damage reported\n", n,
		      loaded, damaged);
	free(img);
}

/* ---- fixtures ------------------------------------------------------------------------------ */

static int setup(void **state)
{
	(void)state;
	if (bt_env_setup() != 0 || bt_malloc_create("M0", DEV_BYTES, BLOCK) != 0) {
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(g_img);
	if (bt_malloc_delete("M0") != 0) {
		return -1;
	}
	return bt_env_teardown();
}

static void test_reference(void **state)
{
	struct ust_blob_store *bs;

	(void)state;
	build_reference();
	/* The undamaged image passes every check the damaged ones get. */
	restore(g_img, false);
	assert_int_equal(bt_load("M0", &bs), 0);
	check_store(bs, -1, false, "reference");
	restore(g_img, true);
	assert_int_equal(bt_load("M0", &bs), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), g_free);
	check_store(bs, -1, false, "reference, dirty");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference),
		cmocka_unit_test(test_superblock),
		cmocka_unit_test(test_bitmaps),
		cmocka_unit_test(test_root_pages),
		cmocka_unit_test(test_chain_pages),
		cmocka_unit_test(test_fuzz_decoders),
		cmocka_unit_test(test_fuzz_load),
	};

	ust_log_set_print_level(UST_LOG_DISABLED);
	return cmocka_run_group_tests(tests, setup, teardown);
}
