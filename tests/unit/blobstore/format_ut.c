/*
 * Unit tests for blobstore/format.c, the on-disk format codec.
 *
 * They pin the format to docs/blobstore-format.md: byte offsets, the checksum
 * definition (algorithm, seed, covered bytes), the worked layout example, and
 * the documented error (errno class and damage kind) for every kind of damage:
 * any flipped bit, torn writes, bad magic, newer versions and features,
 * truncated or overlong descriptors, unknown descriptors with and without the
 * compat flag, out-of-range fields, and pages that are valid but not the one
 * referenced. Structural checks are reached by re-sealing a tampered page, so
 * they are tested behind a correct checksum, as a buggy or hostile writer
 * would produce them.
 */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "../../../blobstore/format.h"

#define GIB (1ull << 30)
#define MIB (1ull << 20)
#define STORE_ID 0x1122334455667788ull
#define BLOB_ID(inc, slot) ust_bs_blobid_make((inc), (slot))

static uint8_t g_page[UST_BS_PAGE_SIZE];

static uint32_t align8_test(uint32_t v)
{
	return (v + 7u) & ~7u;
}

static void put32(uint8_t *p, uint32_t off, uint32_t v)
{
	v = htole32(v);
	memcpy(p + off, &v, sizeof(v));
}

static void put64(uint8_t *p, uint32_t off, uint64_t v)
{
	v = htole64(v);
	memcpy(p + off, &v, sizeof(v));
}

static uint32_t get32(const uint8_t *p, uint32_t off)
{
	uint32_t v;

	memcpy(&v, p + off, sizeof(v));
	return le32toh(v);
}

static uint64_t get64(const uint8_t *p, uint32_t off)
{
	uint64_t v;

	memcpy(&v, p + off, sizeof(v));
	return le64toh(v);
}

/* Recompute the checksum after tampering, independently of format.c. */
static void reseal(uint8_t *p)
{
	uint8_t tmp[UST_BS_PAGE_SIZE];

	memcpy(tmp, p, sizeof(tmp));
	memset(tmp + 8, 0, 8);
	put64(p, 8, XXH3_64bits_withSeed(tmp, sizeof(tmp), 0x317362726f747375ull));
}

/* The 1 GiB / 1 MiB store of the document's worked example. */
static void make_super(struct ust_bs_super *sb)
{
	struct ust_bs_fmt_opts o = {.cluster_size = 1 << 20, .io_unit_size = 4096};

	assert_int_equal(ust_bs_fmt_layout(GIB, &o, sb), 0);
	sb->hdr.store_id = STORE_ID;
	strcpy(sb->bstype, "LVOLSTORE");
}

static void make_geom(struct ust_bs_fmt_geom *g)
{
	struct ust_bs_super sb;

	make_super(&sb);
	ust_bs_fmt_geom_from_super(&sb, g);
}

static struct ust_bs_root root_tmpl(uint32_t flags, uint64_t num_clusters)
{
	struct ust_bs_root r;

	memset(&r, 0, sizeof(r));
	r.hdr.store_id = STORE_ID;
	r.hdr.blob_id = BLOB_ID(1, 7);
	r.hdr.generation = 5;
	r.hdr.seq = 1;
	r.flags = flags;
	r.num_clusters = num_clusters;
	return r;
}

/* A thick blob with a run list and one xattr. */
static void build_simple_root(uint8_t *page)
{
	struct ust_bs_root r = root_tmpl(0, 10);
	struct ust_bs_page_builder b;
	struct ust_bs_extent_run runs[2] = {{.cluster = 100, .count = 6}, {.cluster = 200, .count = 4}};
	struct ust_bs_xattr_frag x = {
		.name = (const uint8_t *)"name", .name_len = 4, .value_len = 5, .frag_len = 5,
		.data = (const uint8_t *)"hello",
	};

	ust_bs_fmt_root_begin(&b, page, &r);
	assert_int_equal(ust_bs_fmt_add_rle(&b, 0, runs, 2), 0);
	assert_int_equal(ust_bs_fmt_add_xattr(&b, &x), 0);
	ust_bs_fmt_page_finish(&b);
}

static int root_decode(const uint8_t *page, struct ust_bs_fmt_err *err)
{
	struct ust_bs_fmt_geom g;
	struct ust_bs_root r;

	make_geom(&g);
	return ust_bs_fmt_root_decode(page, &g, &r, err);
}

#define ASSERT_DAMAGE(call, err, want_kind)                                            \
	do {                                                                           \
		int rc_ = (call);                                                      \
		assert_int_equal(rc_, ust_bs_fmt_damage_errno(want_kind));             \
		assert_int_equal((err).kind, (want_kind));                             \
		assert_true((err).msg[0] != '\0');                                     \
	} while (0)

/* ---- layout ------------------------------------------------------------------- */

static void test_layout_worked_example(void **state)
{
	struct ust_bs_super sb;

	make_super(&sb);
	/* Numbers from docs/blobstore-format.md, "Worked example". */
	assert_int_equal(sb.total_clusters, 1023);
	assert_int_equal(sb.max_blobs, 255);
	assert_int_equal(sb.md_clusters, 4);
	assert_int_equal(sb.cluster_bitmap.start, 1);
	assert_int_equal(sb.cluster_bitmap.pages, 1);
	assert_int_equal(sb.page_bitmap.start, 2);
	assert_int_equal(sb.page_bitmap.pages, 1);
	assert_int_equal(sb.blobid_bitmap.start, 3);
	assert_int_equal(sb.blobid_bitmap.pages, 1);
	assert_int_equal(sb.root_slots.start, 4);
	assert_int_equal(sb.root_slots.pages, 510);
	assert_int_equal(sb.md_pool.start, 514);
	assert_int_equal(sb.md_pool.pages, 510);
	assert_int_equal(ust_bs_fmt_backup_offset(GIB), GIB - 4096);
	assert_int_equal((uint64_t)sb.md_clusters * sb.cluster_size,
			 (uint64_t)(sb.md_pool.start + sb.md_pool.pages) * 4096);
}

static void test_layout_limits(void **state)
{
	struct ust_bs_super sb;
	struct ust_bs_fmt_opts o = {.cluster_size = 1 << 20, .io_unit_size = 512};
	uint8_t page[UST_BS_PAGE_SIZE];
	struct ust_bs_fmt_err err;
	struct ust_bs_super back;
	uint64_t sizes[] = {64 * MIB, 100 * MIB + 12345, 3 * GIB, 1ull << 40};
	uint32_t clusters[] = {4096, 65536, 1 << 20, 1 << 30};
	uint32_t i, j;

	/* Every layout the codec produces, it also accepts. */
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (j = 0; j < sizeof(clusters) / sizeof(clusters[0]); j++) {
			o.cluster_size = clusters[j];
			if (ust_bs_fmt_layout(sizes[i], &o, &sb) != 0) {
				continue;
			}
			sb.hdr.store_id = STORE_ID;
			ust_bs_fmt_super_encode(&sb, page);
			assert_int_equal(ust_bs_fmt_super_decode(page, &back, &err), 0);
			assert_true(sb.md_clusters < sb.total_clusters);
		}
	}
	o.cluster_size = 1 << 20;
	o.io_unit_size = 1024 * 8;
	assert_int_equal(ust_bs_fmt_layout(GIB, &o, &sb), -EINVAL);
	o.io_unit_size = 768;
	assert_int_equal(ust_bs_fmt_layout(GIB, &o, &sb), -EINVAL);
	o.io_unit_size = 4096;
	o.cluster_size = 3 << 20;
	assert_int_equal(ust_bs_fmt_layout(GIB, &o, &sb), -EINVAL);
	o.cluster_size = 2048;
	assert_int_equal(ust_bs_fmt_layout(GIB, &o, &sb), -EINVAL);
	o.cluster_size = 1 << 20;
	assert_int_equal(ust_bs_fmt_layout(2 * MIB, &o, &sb), -ENOSPC);
	assert_int_equal(ust_bs_fmt_layout(4 * MIB, &o, &sb), 0);
	assert_int_equal(sb.total_clusters - sb.md_clusters, 2);
	assert_int_equal(ust_bs_fmt_layout(4096, &o, &sb), -ENOSPC);
	o.max_blobs = UST_BS_MAX_BLOBS_LIMIT + 1;
	assert_int_equal(ust_bs_fmt_layout(1ull << 44, &o, &sb), -EINVAL);
	o.max_blobs = 0;
	o.cluster_size = 4096;
	assert_int_equal(ust_bs_fmt_layout(1ull << 45, &o, &sb), -EFBIG);
}

/* ---- checksum ------------------------------------------------------------------ */

static void test_checksum_definition(void **state)
{
	uint8_t tmp[UST_BS_PAGE_SIZE];
	uint64_t stored;
	uint32_t i;

	build_simple_root(g_page);
	stored = get64(g_page, 8);
	/* XXH3-64, seed "ustorbs1" little-endian, all 4096 bytes, bytes 8..15 as zero. */
	memcpy(tmp, g_page, sizeof(tmp));
	memset(tmp + 8, 0, 8);
	assert_true(stored == XXH3_64bits_withSeed(tmp, sizeof(tmp), 0x317362726f747375ull));
	assert_true(stored == ust_bs_fmt_page_checksum(g_page));
	assert_true(UST_BS_CSUM_SEED == 0x317362726f747375ull);
	assert_memory_equal(&(uint64_t){htole64(UST_BS_CSUM_SEED)}, "ustorbs1", 8);
	/* The stored value does not feed the checksum; every other byte does. */
	put64(g_page, 8, ~stored);
	assert_true(ust_bs_fmt_page_checksum(g_page) == stored);
	for (i = 0; i < UST_BS_PAGE_SIZE; i += 97) {
		if (i >= 8 && i < 16) {
			continue;
		}
		memcpy(tmp, g_page, sizeof(tmp));
		tmp[i] ^= 0x01;
		assert_true(ust_bs_fmt_page_checksum(tmp) != stored);
	}
	assert_true(ust_bs_fmt_region_checksum("abc", 3) ==
		    XXH3_64bits_withSeed("abc", 3, 0x317362726f747375ull));
}

/* ---- superblock ---------------------------------------------------------------- */

static void test_super_round_trip(void **state)
{
	struct ust_bs_super sb, back;
	struct ust_bs_fmt_err err;

	make_super(&sb);
	sb.hdr.generation = 42;
	sb.clean = true;
	sb.super_blob_id = BLOB_ID(3, 9);
	sb.cluster_bitmap_csum = 0x0102030405060708ull;
	sb.page_bitmap_csum = 0x1112131415161718ull;
	sb.blobid_bitmap_csum = 0x2122232425262728ull;
	sb.compat = 0x80000000u;
	sb.ro_compat = 0x40000000u;
	ust_bs_fmt_super_encode(&sb, g_page);

	/* Spot-check the documented byte layout. */
	assert_memory_equal(g_page, "USTB", 4);
	assert_int_equal(g_page[4], 1);
	assert_int_equal(g_page[6], UST_BS_PAGE_SUPER);
	assert_true(get64(g_page, 16) == STORE_ID);
	assert_true(get64(g_page, 32) == 42);
	assert_int_equal(get32(g_page, 44), 144);
	assert_memory_equal(g_page + 64, "LVOLSTORE\0\0\0\0\0\0\0", 16);
	assert_int_equal(get32(g_page, 64 + 28), 1);             /* clean */
	assert_int_equal(get32(g_page, 64 + 40), 1 << 20);       /* cluster_size */
	assert_true(get64(g_page, 64 + 48) == GIB);              /* bdev_size */
	assert_int_equal(get32(g_page, 64 + 96), 4);             /* root_slots.start */
	assert_int_equal(get32(g_page, 64 + 104), 514);          /* md_pool.start */
	assert_true(get64(g_page, 64 + 112) == BLOB_ID(3, 9));   /* super_blob_id */

	assert_int_equal(ust_bs_fmt_super_decode(g_page, &back, &err), 0);
	assert_int_equal(err.kind, UST_BS_FMT_OK);
	assert_string_equal(back.bstype, "LVOLSTORE");
	assert_true(back.clean);
	assert_true(back.hdr.store_id == STORE_ID);
	assert_true(back.hdr.checksum == get64(g_page, 8));
	assert_true(back.hdr.generation == 42);
	assert_true(back.super_blob_id == sb.super_blob_id);
	assert_true(back.cluster_bitmap_csum == sb.cluster_bitmap_csum);
	assert_true(back.page_bitmap_csum == sb.page_bitmap_csum);
	assert_true(back.blobid_bitmap_csum == sb.blobid_bitmap_csum);
	assert_int_equal(back.compat, sb.compat);
	assert_int_equal(back.ro_compat, sb.ro_compat);
	assert_true(back.total_clusters == sb.total_clusters);
	assert_memory_equal(&back.md_pool, &sb.md_pool, sizeof(sb.md_pool));
	assert_memory_equal(&back.root_slots, &sb.root_slots, sizeof(sb.root_slots));

	/* A backup copy never carries the clean flag, whatever the caller says. */
	sb.hdr.seq = UST_BS_SUPER_BACKUP;
	ust_bs_fmt_super_encode(&sb, g_page);
	assert_int_equal(ust_bs_fmt_super_decode(g_page, &back, &err), 0);
	assert_false(back.clean);
	assert_int_equal(back.hdr.seq, UST_BS_SUPER_BACKUP);
}

static void test_super_damage(void **state)
{
	struct ust_bs_super sb, back;
	struct ust_bs_fmt_err err;
	uint8_t good[UST_BS_PAGE_SIZE];
	static const struct {
		uint32_t off;
		uint32_t val;
		enum ust_bs_fmt_damage kind;
	} cases[] = {
		{64 + 16, 1, UST_BS_FMT_UNKNOWN_FEATURE}, /* incompat */
		{64 + 28, 2, UST_BS_FMT_BAD_FIELD},       /* clean */
		{64 + 32, 8192, UST_BS_FMT_BAD_FIELD},    /* page_size */
		{64 + 36, 1000, UST_BS_FMT_BAD_FIELD},    /* io_unit_size */
		{64 + 36, 8192, UST_BS_FMT_BAD_FIELD},
		{64 + 40, 3 << 20, UST_BS_FMT_BAD_FIELD}, /* cluster_size */
		{64 + 40, 1 << 21, UST_BS_FMT_BAD_FIELD}, /* consistent alone, not with the rest */
		{64 + 44, 0, UST_BS_FMT_BAD_FIELD},       /* max_blobs */
		{64 + 44, 256, UST_BS_FMT_BAD_FIELD},
		{64 + 56, 1024, UST_BS_FMT_BAD_FIELD},    /* total_clusters */
		{64 + 64, 5, UST_BS_FMT_BAD_FIELD},       /* md_clusters */
		{64 + 64, 1023, UST_BS_FMT_BAD_FIELD},
		{64 + 68, 0xdead, UST_BS_FMT_BAD_FIELD},  /* reserved0 */
		{64 + 72, 2, UST_BS_FMT_BAD_FIELD},       /* cluster_bitmap.start */
		{64 + 76, 0, UST_BS_FMT_BAD_FIELD},       /* cluster_bitmap.pages */
		{64 + 84, 2, UST_BS_FMT_BAD_FIELD},       /* page_bitmap.pages */
		{64 + 92, 0, UST_BS_FMT_BAD_FIELD},       /* blobid_bitmap.pages */
		{64 + 96, 5, UST_BS_FMT_BAD_FIELD},       /* root_slots.start */
		{64 + 100, 512, UST_BS_FMT_BAD_FIELD},    /* root_slots.pages */
		{64 + 104, 9, UST_BS_FMT_BAD_FIELD},      /* md_pool.start */
		{64 + 108, 511, UST_BS_FMT_BAD_FIELD},    /* md_pool.pages */
		{64 + 112, 300, UST_BS_FMT_BAD_FIELD},    /* super_blob_id: incarnation 0 */
		{64 + 0 + 12, 'x', UST_BS_FMT_BAD_FIELD}, /* bstype: text after the NUL */
		{4, 2, UST_BS_FMT_NEWER_VERSION},
		{4, 0, UST_BS_FMT_BAD_HEADER},
		{6, UST_BS_PAGE_ROOT, UST_BS_FMT_WRONG_TYPE},
		{6, 9, UST_BS_FMT_BAD_HEADER},
		{16, 0, UST_BS_FMT_BAD_HEADER},           /* store id 0 (low half; high half zeroed below) */
		{24, 1, UST_BS_FMT_BAD_HEADER},           /* blob id */
		{40, 2, UST_BS_FMT_BAD_HEADER},           /* copy number */
		{44, 150, UST_BS_FMT_BAD_HEADER},         /* payload_len */
		{48, 1, UST_BS_FMT_BAD_HEADER},           /* flags */
		{52, 1, UST_BS_FMT_BAD_HEADER},           /* reserved0 */
		{60, 1, UST_BS_FMT_BAD_HEADER},           /* reserved1 */
		{64 + 200, 1, UST_BS_FMT_NONZERO_TAIL},
		{4092, 1, UST_BS_FMT_NONZERO_TAIL},
	};
	uint32_t i;

	make_super(&sb);
	ust_bs_fmt_super_encode(&sb, good);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(g_page, good, sizeof(g_page));
		if (cases[i].off == 4 || cases[i].off == 6) {
			g_page[cases[i].off] = (uint8_t)cases[i].val;
		} else if (cases[i].off == 64 + 12) {
			g_page[cases[i].off] = (uint8_t)cases[i].val;
		} else {
			put32(g_page, cases[i].off, cases[i].val);
			if (cases[i].off == 16) {
				put32(g_page, 20, 0);
			}
		}
		reseal(g_page);
		ASSERT_DAMAGE(ust_bs_fmt_super_decode(g_page, &back, &err), err, cases[i].kind);
	}

	/* A backup that claims to be clean is malformed. */
	memcpy(g_page, good, sizeof(g_page));
	put32(g_page, 40, UST_BS_SUPER_BACKUP);
	put32(g_page, 64 + 28, 1);
	reseal(g_page);
	ASSERT_DAMAGE(ust_bs_fmt_super_decode(g_page, &back, &err), err, UST_BS_FMT_BAD_FIELD);

	/* Without re-sealing, any of the above is just a checksum mismatch. */
	memcpy(g_page, good, sizeof(g_page));
	put32(g_page, 64 + 40, 1 << 21);
	ASSERT_DAMAGE(ust_bs_fmt_super_decode(g_page, &back, &err), err, UST_BS_FMT_BAD_CHECKSUM);
	assert_int_equal(err.offset, 8);

	memcpy(g_page, good, sizeof(g_page));
	g_page[0] = 'X';
	ASSERT_DAMAGE(ust_bs_fmt_super_decode(g_page, &back, &err), err, UST_BS_FMT_BAD_MAGIC);
	assert_int_equal(ust_bs_fmt_damage_errno(UST_BS_FMT_BAD_MAGIC), -EUCLEAN);

	memset(g_page, 0, sizeof(g_page));
	ASSERT_DAMAGE(ust_bs_fmt_super_decode(g_page, &back, &err), err, UST_BS_FMT_BLANK);
	assert_int_equal(ust_bs_fmt_damage_errno(UST_BS_FMT_BLANK), -ENODATA);
}

/* ---- root and chain pages ------------------------------------------------------- */

static void test_root_round_trip(void **state)
{
	struct ust_bs_root r = root_tmpl(UST_BS_BLOB_THIN | UST_BS_BLOB_EXTENT_PAGES, 5000);
	struct ust_bs_page_builder b;
	struct ust_bs_fmt_geom g;
	struct ust_bs_fmt_err err;
	struct ust_bs_root back;
	struct ust_bs_desc d;
	struct ust_bs_page_ref chain[3] = {{600, 0xaaaa}, {601, 0xbbbb}, {1023, 0xcccc}};
	struct ust_bs_page_ref table[2] = {{700, 0x1234}, {0, 0}};
	struct ust_bs_pending_op op = {UST_BS_OP_SNAPSHOT_OF, BLOB_ID(2, 3), 77}, op2;
	struct ust_bs_xattr_frag x = {
		.name = (const uint8_t *)"uuid", .name_len = 4, .xflags = UST_BS_XATTR_F_INTERNAL,
		.value_len = 100, .frag_offset = 40, .frag_len = 3, .data = (const uint8_t *)"xyz",
	}, x2;
	struct ust_bs_page_ref ref;
	const uint8_t raw[5] = {1, 2, 3, 4, 5};
	uint32_t cursor = 0, n = 0;
	uint64_t csum;

	make_geom(&g);
	r.parent_id = BLOB_ID(4, 1);
	r.ro_compat = 0x10;
	r.compat = 0x20;
	ust_bs_fmt_root_begin(&b, g_page, &r);
	assert_int_equal(ust_bs_fmt_add_chain(&b, chain, 3), 0);
	assert_int_equal(ust_bs_fmt_add_table(&b, 3, table, 2), 0);
	assert_int_equal(ust_bs_fmt_add_pending(&b, &op), 0);
	assert_int_equal(ust_bs_fmt_add_xattr(&b, &x), 0);
	assert_int_equal(ust_bs_fmt_add_raw(&b, 200, UST_BS_DESC_F_COMPAT, raw, sizeof(raw)), 0);
	csum = ust_bs_fmt_page_finish(&b);
	assert_true(csum == get64(g_page, 8));

	assert_int_equal(ust_bs_fmt_root_decode(g_page, &g, &back, &err), 0);
	assert_true(back.hdr.blob_id == r.hdr.blob_id);
	assert_true(back.hdr.generation == 5);
	assert_int_equal(back.hdr.seq, 1);
	assert_true(back.hdr.checksum == csum);
	assert_true(back.num_clusters == 5000);
	assert_true(back.parent_id == r.parent_id);
	assert_int_equal(back.flags, r.flags);
	assert_int_equal(back.ro_compat, 0x10);
	assert_int_equal(back.compat, 0x20);
	/* Fixed part at the documented offsets. */
	assert_true(get64(g_page, 64) == 5000);
	assert_true(get64(g_page, 72) == r.parent_id);
	assert_int_equal(get32(g_page, 80), r.flags);
	/* First descriptor header right after the fixed part. */
	assert_int_equal(get32(g_page, 96) & 0xffff, UST_BS_DESC_CHAIN);

	while (ust_bs_fmt_desc_next(g_page, &cursor, &d) == 1) {
		switch (n++) {
		case 0:
			assert_int_equal(d.type, UST_BS_DESC_CHAIN);
			assert_int_equal(ust_bs_fmt_desc_count(&d), 3);
			ust_bs_fmt_desc_page_ref(&d, 2, &ref);
			assert_int_equal(ref.page, 1023);
			assert_true(ref.checksum == 0xcccc);
			break;
		case 1:
			assert_int_equal(d.type, UST_BS_DESC_EXTENT_TABLE);
			assert_int_equal(ust_bs_fmt_desc_count(&d), 2);
			assert_true(ust_bs_fmt_desc_first(&d) == 3);
			ust_bs_fmt_desc_page_ref(&d, 0, &ref);
			assert_int_equal(ref.page, 700);
			assert_true(ref.checksum == 0x1234);
			break;
		case 2:
			assert_int_equal(d.type, UST_BS_DESC_PENDING_OP);
			ust_bs_fmt_desc_pending(&d, &op2);
			assert_int_equal(op2.op, op.op);
			assert_true(op2.other_blob_id == op.other_blob_id);
			assert_true(op2.other_generation == 77);
			break;
		case 3:
			assert_int_equal(d.type, UST_BS_DESC_XATTR);
			ust_bs_fmt_desc_xattr(&d, &x2);
			assert_int_equal(x2.name_len, 4);
			assert_memory_equal(x2.name, "uuid", 4);
			assert_int_equal(x2.xflags, UST_BS_XATTR_F_INTERNAL);
			assert_int_equal(x2.value_len, 100);
			assert_int_equal(x2.frag_offset, 40);
			assert_int_equal(x2.frag_len, 3);
			assert_memory_equal(x2.data, "xyz", 3);
			break;
		case 4:
			/* Unknown but compat: returned so a rewriter can carry it forward. */
			assert_int_equal(d.type, 200);
			assert_false(ust_bs_fmt_desc_known(d.type));
			assert_int_equal(d.flags, UST_BS_DESC_F_COMPAT);
			assert_int_equal(d.len, 5);
			assert_memory_equal(d.body, raw, 5);
			break;
		}
	}
	assert_int_equal(n, 5);
	assert_int_equal(ust_bs_fmt_desc_next(g_page, &cursor, &d), 0);
}

static void test_rle_and_tombstone_round_trip(void **state)
{
	struct ust_bs_root r = root_tmpl(0, 10), back;
	struct ust_bs_page_builder b;
	struct ust_bs_fmt_geom g;
	struct ust_bs_fmt_err err;
	struct ust_bs_desc d;
	struct ust_bs_extent_run run;
	uint32_t cursor = 0;

	make_geom(&g);
	build_simple_root(g_page);
	assert_int_equal(ust_bs_fmt_root_decode(g_page, &g, &back, &err), 0);
	assert_int_equal(ust_bs_fmt_desc_next(g_page, &cursor, &d), 1);
	assert_int_equal(d.type, UST_BS_DESC_EXTENT_RLE);
	assert_int_equal(ust_bs_fmt_desc_count(&d), 2);
	assert_true(ust_bs_fmt_desc_first(&d) == 0);
	ust_bs_fmt_desc_run(&d, 1, &run);
	assert_int_equal(run.cluster, 200);
	assert_int_equal(run.count, 4);

	r.flags = UST_BS_BLOB_TOMBSTONE;
	r.num_clusters = 0;
	ust_bs_fmt_root_begin(&b, g_page, &r);
	ust_bs_fmt_page_finish(&b);
	assert_int_equal(ust_bs_fmt_root_decode(g_page, &g, &back, &err), 0);
	assert_int_equal(back.flags, UST_BS_BLOB_TOMBSTONE);
	cursor = 0;
	assert_int_equal(ust_bs_fmt_desc_next(g_page, &cursor, &d), 0);
}

static void test_chain_and_extent_round_trip(void **state)
{
	struct ust_bs_page_hdr h = {.store_id = STORE_ID, .blob_id = BLOB_ID(1, 7), .generation = 4, .seq = 2};
	struct ust_bs_page_hdr back;
	struct ust_bs_page_builder b;
	struct ust_bs_fmt_geom g;
	struct ust_bs_fmt_err err;
	struct ust_bs_page_ref refs[UST_BS_TABLE_PER_CHAIN_PAGE];
	uint32_t clusters[UST_BS_EXTENTS_PER_PAGE], out[UST_BS_EXTENTS_PER_PAGE], n, i;
	uint64_t csum;

	make_geom(&g);
	for (i = 0; i < UST_BS_TABLE_PER_CHAIN_PAGE; i++) {
		refs[i].page = 514 + i;
		refs[i].checksum = i * 0x9e3779b97f4a7c15ull;
	}
	ust_bs_fmt_chain_begin(&b, g_page, &h);
	/* A chain page holds exactly the documented number of table references. */
	assert_int_equal(ust_bs_fmt_add_table(&b, 0, refs, UST_BS_TABLE_PER_CHAIN_PAGE), 0);
	assert_int_equal(ust_bs_fmt_room(&b), 0);
	csum = ust_bs_fmt_page_finish(&b);
	assert_int_equal(get32(g_page, 44), UST_BS_PAYLOAD_MAX);
	assert_int_equal(ust_bs_fmt_chain_decode(g_page, &g, &back, &err), 0);
	assert_int_equal(back.seq, 2);
	assert_int_equal(ust_bs_fmt_ref_check(&back, UST_BS_PAGE_CHAIN, h.blob_id, 2, 5, csum, &err), 0);

	for (i = 0; i < UST_BS_EXTENTS_PER_PAGE; i++) {
		clusters[i] = (i % 3 == 0) ? 0 : 4 + i;
	}
	h.seq = 9;
	assert_int_equal(ust_bs_fmt_extent_encode(g_page, &h, clusters, UST_BS_EXTENTS_PER_PAGE), 0);
	assert_int_equal(get32(g_page, 64 + 4), 5); /* entry 1, little-endian at 64 + 4 */
	assert_int_equal(ust_bs_fmt_extent_decode(g_page, &g, &back, out, &n, &err), 0);
	assert_int_equal(n, UST_BS_EXTENTS_PER_PAGE);
	assert_memory_equal(out, clusters, sizeof(clusters));
	assert_int_equal(back.seq, 9);
	assert_int_equal(back.type, UST_BS_PAGE_EXTENT);

	/* A short last extent page. */
	assert_int_equal(ust_bs_fmt_extent_encode(g_page, &h, clusters, 3), 0);
	assert_int_equal(ust_bs_fmt_extent_decode(g_page, &g, &back, out, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(ust_bs_fmt_extent_encode(g_page, &h, clusters, 0), -EINVAL);
	assert_int_equal(ust_bs_fmt_extent_encode(g_page, &h, clusters, UST_BS_EXTENTS_PER_PAGE + 1), -EINVAL);
}

static void test_builder_limits(void **state)
{
	struct ust_bs_root r = root_tmpl(UST_BS_BLOB_THIN | UST_BS_BLOB_EXTENT_PAGES, 1);
	struct ust_bs_page_builder b;
	struct ust_bs_page_ref refs[UST_BS_MAX_CHAIN_PAGES + 1];
	struct ust_bs_extent_run runs[2] = {{100, 1}, {101, 0}};
	struct ust_bs_pending_op op = {9, BLOB_ID(1, 1), 1};
	uint8_t big[UST_BS_PAYLOAD_MAX];
	struct ust_bs_xattr_frag x = {
		.name = (const uint8_t *)"a\0b", .name_len = 3, .value_len = 1, .frag_len = 1,
		.data = (const uint8_t *)"v",
	};
	uint32_t used;

	memset(refs, 0, sizeof(refs));
	memset(big, 0x5a, sizeof(big));
	ust_bs_fmt_root_begin(&b, g_page, &r);
	assert_int_equal(ust_bs_fmt_add_chain(&b, refs, UST_BS_MAX_CHAIN_PAGES + 1), -EINVAL);
	assert_int_equal(ust_bs_fmt_add_chain(&b, refs, 0), -EINVAL);
	assert_int_equal(ust_bs_fmt_add_rle(&b, 0, runs, 2), -EINVAL);
	assert_int_equal(ust_bs_fmt_add_pending(&b, &op), -EINVAL);
	assert_int_equal(ust_bs_fmt_add_xattr(&b, &x), -EINVAL);
	x.name_len = 1;
	x.frag_offset = 1;
	assert_int_equal(ust_bs_fmt_add_xattr(&b, &x), -EINVAL);
	assert_int_equal(ust_bs_fmt_room(&b), UST_BS_ROOT_DESC_MAX - 8);
	used = b.used;
	/* Too big: refused and nothing written. */
	assert_int_equal(ust_bs_fmt_add_raw(&b, 300, UST_BS_DESC_F_COMPAT, big,
					    (uint32_t)UST_BS_ROOT_DESC_MAX), -ENOSPC);
	assert_int_equal(b.used, used);
	assert_int_equal(ust_bs_fmt_add_raw(&b, 300, UST_BS_DESC_F_COMPAT, big, ust_bs_fmt_room(&b)), 0);
	assert_int_equal(ust_bs_fmt_room(&b), 0);
	assert_int_equal(b.used, UST_BS_PAYLOAD_MAX);
	assert_int_equal(ust_bs_fmt_add_raw(&b, 300, UST_BS_DESC_F_COMPAT, big, 0), -ENOSPC);
	ust_bs_fmt_page_finish(&b);
	assert_int_equal(root_decode(g_page, NULL), 0);
}

/* ---- damage --------------------------------------------------------------------- */

/* Any single flipped bit anywhere in any kind of page is caught. */
static void test_every_bit_flip(void **state)
{
	struct ust_bs_fmt_geom g;
	struct ust_bs_fmt_err err;
	struct ust_bs_super sb;
	struct ust_bs_page_hdr h = {.store_id = STORE_ID, .blob_id = BLOB_ID(1, 7), .generation = 4, .seq = 0};
	uint32_t clusters[4] = {4, 0, 5, 6}, out[UST_BS_EXTENTS_PER_PAGE], n;
	struct ust_bs_root r;
	struct ust_bs_page_hdr hb;
	uint8_t pages[3][UST_BS_PAGE_SIZE];
	uint32_t kind, bit;
	int rc;

	make_geom(&g);
	make_super(&sb);
	ust_bs_fmt_super_encode(&sb, pages[0]);
	build_simple_root(pages[1]);
	assert_int_equal(ust_bs_fmt_extent_encode(pages[2], &h, clusters, 4), 0);
	for (kind = 0; kind < 3; kind++) {
		for (bit = 0; bit < UST_BS_PAGE_SIZE * 8; bit++) {
			memcpy(g_page, pages[kind], sizeof(g_page));
			g_page[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			if (kind == 0) {
				rc = ust_bs_fmt_super_decode(g_page, &sb, &err);
			} else if (kind == 1) {
				rc = ust_bs_fmt_root_decode(g_page, &g, &r, &err);
			} else {
				rc = ust_bs_fmt_extent_decode(g_page, &g, &hb, out, &n, &err);
			}
			if (bit < 32) {
				assert_int_equal(rc, -EUCLEAN);
				assert_int_equal(err.kind, UST_BS_FMT_BAD_MAGIC);
			} else {
				assert_int_equal(rc, -EBADMSG);
				assert_int_equal(err.kind, UST_BS_FMT_BAD_CHECKSUM);
			}
		}
	}
}

/* A write torn at any io-unit boundary, over old contents or over zeros. */
static void test_torn_writes(void **state)
{
	uint8_t old_page[UST_BS_PAGE_SIZE], new_page[UST_BS_PAGE_SIZE];
	struct ust_bs_root r = root_tmpl(0, 10);
	struct ust_bs_page_builder b;
	struct ust_bs_fmt_err err;
	uint32_t cut, unit;
	uint8_t fill[UST_BS_PAYLOAD_MAX];
	int rc;

	/* Both pages full, so that every sector of one differs from the other. */
	memset(fill, 0x11, sizeof(fill));
	ust_bs_fmt_root_begin(&b, old_page, &r);
	assert_int_equal(ust_bs_fmt_add_raw(&b, 99, UST_BS_DESC_F_COMPAT, fill, ust_bs_fmt_room(&b)), 0);
	ust_bs_fmt_page_finish(&b);
	r.hdr.generation = 6;
	memset(fill, 0x22, sizeof(fill));
	ust_bs_fmt_root_begin(&b, new_page, &r);
	assert_int_equal(ust_bs_fmt_add_raw(&b, 99, UST_BS_DESC_F_COMPAT, fill, ust_bs_fmt_room(&b)), 0);
	ust_bs_fmt_page_finish(&b);
	assert_int_equal(root_decode(old_page, NULL), 0);
	assert_int_equal(root_decode(new_page, NULL), 0);
	for (unit = 512; unit <= 4096; unit *= 8) {
		for (cut = unit; cut < UST_BS_PAGE_SIZE; cut += unit) {
			/* new prefix, old suffix */
			memcpy(g_page, new_page, cut);
			memcpy(g_page + cut, old_page + cut, UST_BS_PAGE_SIZE - cut);
			rc = root_decode(g_page, &err);
			assert_int_equal(rc, -EBADMSG);
			/* old prefix, new suffix */
			memcpy(g_page, old_page, cut);
			memcpy(g_page + cut, new_page + cut, UST_BS_PAGE_SIZE - cut);
			rc = root_decode(g_page, &err);
			assert_int_equal(rc, -EBADMSG);
			/* over a zeroed slot: zero prefix means no magic */
			memset(g_page, 0, cut);
			memcpy(g_page + cut, new_page + cut, UST_BS_PAGE_SIZE - cut);
			ASSERT_DAMAGE(root_decode(g_page, &err), err, UST_BS_FMT_BAD_MAGIC);
			memcpy(g_page, new_page, cut);
			memset(g_page + cut, 0, UST_BS_PAGE_SIZE - cut);
			rc = root_decode(g_page, &err);
			assert_int_equal(rc, -EBADMSG);
		}
	}
}

/* Offset of the first descriptor of a root page. */
#define D0 (64u + 32u)

static void test_descriptor_lengths(void **state)
{
	struct ust_bs_fmt_err err;
	uint8_t good[UST_BS_PAGE_SIZE];
	uint32_t payload, d1;

	build_simple_root(good);
	payload = get32(good, 44);
	d1 = D0 + 8 + align8_test(get32(good, D0 + 4));

	/* Length running past the payload, by one byte and by a lot. */
	memcpy(g_page, good, sizeof(g_page));
	put32(g_page, D0 + 4, 64 + payload - (D0 + 8) + 1);
	reseal(g_page);
	ASSERT_DAMAGE(root_decode(g_page, &err), err, UST_BS_FMT_DESC_TRUNCATED);
	assert_int_equal(err.offset, D0 + 4);

	memcpy(g_page, good, sizeof(g_page));
	put32(g_page, d1 + 4, 0xfffffff9u); /* align8 of this wraps to 0 */
	reseal(g_page);
	ASSERT_DAMAGE(root_decode(g_page, &err), err, UST_BS_FMT_DESC_TRUNCATED);

	memcpy(g_page, good, sizeof(g_page));
	put32(g_page, d1 + 4, 4000); /* would still be inside the page, not the payload */
	reseal(g_page);
	ASSERT_DAMAGE(root_decode(g_page, &err), err, UST_BS_FMT_DESC_TRUNCATED);

	/* Payload ending in the middle of a descriptor header. */
	memcpy(g_page, good, sizeof(g_page));
	g_page[64 + payload] = UST_BS_DESC_XATTR;
	put32(g_page, 44, payload + 4);
	reseal(g_page);
	ASSERT_DAMAGE(root_decode(g_page, &err), err, UST_BS_FMT_DESC_TRUNCATED);
	assert_int_equal(err.offset, 64 + payload);

	/* Payload length cut below the last descriptor's end. */
	memcpy(g_page, good, sizeof(g_page));
	put32(g_page, 44, payload - 8);
	memset(g_page + 64 + payload - 8, 0, 8);
	reseal(g_page);
	ASSERT_DAMAGE(root_decode(g_page, &err), err, UST_BS_FMT_DESC_TRUNCATED);

	/* Payload past the page end. */
	memcpy(g_page, good, sizeof(g_page));
	put32(g_page, 44, UST_BS_PAYLOAD_MAX + 8);
	reseal(g_page);
	ASSERT_DAMAGE(root_decode(g_page, &err), err, UST_BS_FMT_BAD_HEADER);

	/* Lengths that fit the payload but not the type: half a run. */
	{
		struct ust_bs_root r = root_tmpl(0, 10);
		struct ust_bs_page_builder b;
		uint8_t body[12] = {0, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0};

		ust_bs_fmt_root_begin(&b, g_page, &r);
		assert_int_equal(ust_bs_fmt_add_raw(&b, UST_BS_DESC_EXTENT_RLE, 0, body, sizeof(body)), 0);
		ust_bs_fmt_page_finish(&b);
		ASSERT_DAMAGE(root_decode(g_page, &err), err, UST_BS_FMT_DESC_BAD_LENGTH);
		assert_int_equal(err.offset, D0 + 4);
	}

	/* xattr whose length disagrees with name + fragment. */
	memcpy(g_page, good, sizeof(g_page));
	put32(g_page, d1 + 8 + 12, 4); /* frag_len 5 -> 4 */
	put32(g_page, d1 + 8 + 4, 4);  /* keep value_len consistent */
	reseal(g_page);
	ASSERT_DAMAGE(root_decode(g_page, &err), err, UST_BS_FMT_DESC_BAD_LENGTH);

	/* Padding after a body must be zero. */
	memcpy(g_page, good, sizeof(g_page));
	g_page[d1 + 8 + 16 + 4 + 5] = 1; /* after "name" "hello" */
	reseal(g_page);
	ASSERT_DAMAGE(root_decode(g_page, &err), err, UST_BS_FMT_DESC_BAD_FIELD);

	/* The walker refuses a malformed page too, without reading past it. */
	{
		uint32_t cursor = 0;
		struct ust_bs_desc d;

		memcpy(g_page, good, sizeof(g_page));
		put32(g_page, d1 + 4, 0xfffffff9u);
		assert_int_equal(ust_bs_fmt_desc_next(g_page, &cursor, &d), 1);
		assert_int_equal(ust_bs_fmt_desc_next(g_page, &cursor, &d), -EUCLEAN);
		cursor = 5000;
		assert_int_equal(ust_bs_fmt_desc_next(g_page, &cursor, &d), -EUCLEAN);
	}
}

static void test_unknown_descriptors(void **state)
{
	struct ust_bs_root r = root_tmpl(0, 10);
	struct ust_bs_page_builder b;
	struct ust_bs_fmt_err err;
	const uint8_t body[3] = {7, 8, 9};

	/* COMPAT: skipped, page accepted. */
	ust_bs_fmt_root_begin(&b, g_page, &r);
	assert_int_equal(ust_bs_fmt_add_raw(&b, 77, UST_BS_DESC_F_COMPAT, body, 3), 0);
	ust_bs_fmt_page_finish(&b);
	assert_int_equal(root_decode(g_page, &err), 0);

	/* Not COMPAT: this reader must not use the blob. */
	ust_bs_fmt_root_begin(&b, g_page, &r);
	assert_int_equal(ust_bs_fmt_add_raw(&b, 77, 0, body, 3), 0);
	ust_bs_fmt_page_finish(&b);
	ASSERT_DAMAGE(root_decode(g_page, &err), err, UST_BS_FMT_DESC_UNKNOWN);
	assert_int_equal(err.offset, D0);
	assert_int_equal(ust_bs_fmt_damage_errno(UST_BS_FMT_DESC_UNKNOWN), -ENOTSUP);

	/* Reserved descriptor flag bits and type 0 are damage, not the future. */
	ust_bs_fmt_root_begin(&b, g_page, &r);
	assert_int_equal(ust_bs_fmt_add_raw(&b, 77, 0x80 | UST_BS_DESC_F_COMPAT, body, 3), 0);
	ust_bs_fmt_page_finish(&b);
	ASSERT_DAMAGE(root_decode(g_page, &err), err, UST_BS_FMT_DESC_BAD_FIELD);
	ust_bs_fmt_root_begin(&b, g_page, &r);
	assert_int_equal(ust_bs_fmt_add_raw(&b, 0, UST_BS_DESC_F_COMPAT, body, 3), 0);
	ust_bs_fmt_page_finish(&b);
	ASSERT_DAMAGE(root_decode(g_page, &err), err, UST_BS_FMT_DESC_BAD_FIELD);
}

static void test_versions_and_features(void **state)
{
	struct ust_bs_fmt_err err;
	uint8_t good[UST_BS_PAGE_SIZE];

	build_simple_root(good);
	memcpy(g_page, good, sizeof(g_page));
	g_page[4] = 2;
	reseal(g_page);
	ASSERT_DAMAGE(root_decode(g_page, &err), err, UST_BS_FMT_NEWER_VERSION);
	assert_int_equal(ust_bs_fmt_damage_errno(UST_BS_FMT_NEWER_VERSION), -ENOTSUP);

	/* Per-blob incompat feature: the blob cannot be used; ro_compat/compat can. */
	memcpy(g_page, good, sizeof(g_page));
	put32(g_page, 64 + 20, 1);
	reseal(g_page);
	ASSERT_DAMAGE(root_decode(g_page, &err), err, UST_BS_FMT_UNKNOWN_FEATURE);
	memcpy(g_page, good, sizeof(g_page));
	put32(g_page, 64 + 24, 1);
	put32(g_page, 64 + 28, 1);
	reseal(g_page);
	assert_int_equal(root_decode(g_page, &err), 0);
}

static void test_identity_damage(void **state)
{
	struct ust_bs_fmt_geom g;
	struct ust_bs_fmt_err err;
	struct ust_bs_root r;
	struct ust_bs_page_hdr h;
	uint8_t good[UST_BS_PAGE_SIZE];

	make_geom(&g);
	build_simple_root(good);

	g.store_id = STORE_ID + 1;
	ASSERT_DAMAGE(ust_bs_fmt_root_decode(good, &g, &r, &err), err, UST_BS_FMT_FOREIGN_STORE);
	assert_int_equal(ust_bs_fmt_damage_errno(UST_BS_FMT_FOREIGN_STORE), -ESTALE);
	make_geom(&g);
	ASSERT_DAMAGE(ust_bs_fmt_chain_decode(good, &g, &h, &err), err, UST_BS_FMT_WRONG_TYPE);

	assert_int_equal(ust_bs_fmt_root_decode(good, &g, &r, &err), 0);
	ASSERT_DAMAGE(ust_bs_fmt_ref_check(&r.hdr, UST_BS_PAGE_CHAIN, r.hdr.blob_id, 1, 5, r.hdr.checksum, &err),
		      err, UST_BS_FMT_WRONG_TYPE);
	ASSERT_DAMAGE(ust_bs_fmt_ref_check(&r.hdr, UST_BS_PAGE_ROOT, r.hdr.blob_id, 1, 5, r.hdr.checksum + 1, &err),
		      err, UST_BS_FMT_MISMATCH);
	ASSERT_DAMAGE(ust_bs_fmt_ref_check(&r.hdr, UST_BS_PAGE_ROOT, BLOB_ID(2, 7), 1, 5, r.hdr.checksum, &err),
		      err, UST_BS_FMT_MISMATCH);
	ASSERT_DAMAGE(ust_bs_fmt_ref_check(&r.hdr, UST_BS_PAGE_ROOT, r.hdr.blob_id, 0, 5, r.hdr.checksum, &err),
		      err, UST_BS_FMT_MISMATCH);
	ASSERT_DAMAGE(ust_bs_fmt_ref_check(&r.hdr, UST_BS_PAGE_ROOT, r.hdr.blob_id, 1, 4, r.hdr.checksum, &err),
		      err, UST_BS_FMT_MISMATCH);
	assert_int_equal(ust_bs_fmt_ref_check(&r.hdr, UST_BS_PAGE_ROOT, r.hdr.blob_id, 1, 9, r.hdr.checksum, &err), 0);

	/* Blob ids outside the store or with incarnation 0. */
	memcpy(g_page, good, sizeof(g_page));
	put64(g_page, 24, BLOB_ID(1, 255));
	reseal(g_page);
	ASSERT_DAMAGE(ust_bs_fmt_root_decode(g_page, &g, &r, &err), err, UST_BS_FMT_BAD_HEADER);
	put64(g_page, 24, BLOB_ID(0, 7));
	reseal(g_page);
	ASSERT_DAMAGE(ust_bs_fmt_root_decode(g_page, &g, &r, &err), err, UST_BS_FMT_BAD_HEADER);
	/* generation 0, slot half 2 */
	memcpy(g_page, good, sizeof(g_page));
	put64(g_page, 32, 0);
	reseal(g_page);
	ASSERT_DAMAGE(ust_bs_fmt_root_decode(g_page, &g, &r, &err), err, UST_BS_FMT_BAD_HEADER);
	memcpy(g_page, good, sizeof(g_page));
	put32(g_page, 40, 2);
	reseal(g_page);
	ASSERT_DAMAGE(ust_bs_fmt_root_decode(g_page, &g, &r, &err), err, UST_BS_FMT_BAD_HEADER);
}

/* Build a root with one descriptor and expect the given verdict. */
static void expect_root(struct ust_bs_root r, int (*add)(struct ust_bs_page_builder *),
			enum ust_bs_fmt_damage kind)
{
	struct ust_bs_page_builder b;
	struct ust_bs_fmt_err err;

	ust_bs_fmt_root_begin(&b, g_page, &r);
	if (add != NULL) {
		assert_int_equal(add(&b), 0);
	}
	ust_bs_fmt_page_finish(&b);
	if (kind == UST_BS_FMT_OK) {
		assert_int_equal(root_decode(g_page, &err), 0);
	} else {
		ASSERT_DAMAGE(root_decode(g_page, &err), err, kind);
	}
}

static int add_rle_meta_cluster(struct ust_bs_page_builder *b)
{
	struct ust_bs_extent_run run = {3, 1}; /* cluster 3 is metadata */
	return ust_bs_fmt_add_rle(b, 0, &run, 1);
}

static int add_rle_past_store(struct ust_bs_page_builder *b)
{
	struct ust_bs_extent_run run = {1020, 4}; /* 1020..1023, but 1023 holds the backup */
	return ust_bs_fmt_add_rle(b, 0, &run, 1);
}

static int add_rle_past_blob(struct ust_bs_page_builder *b)
{
	struct ust_bs_extent_run run = {0, 11}; /* hole of 11 in a 10-cluster blob */
	return ust_bs_fmt_add_rle(b, 0, &run, 1);
}

static int add_rle_hole_ok(struct ust_bs_page_builder *b)
{
	struct ust_bs_extent_run runs[2] = {{0, 4}, {1018, 5}};
	return ust_bs_fmt_add_rle(b, 1, runs, 2);
}

static int add_table_outside_pool(struct ust_bs_page_builder *b)
{
	struct ust_bs_page_ref ref = {513, 1}; /* the last root slot page */
	return ust_bs_fmt_add_table(b, 0, &ref, 1);
}

static int add_table_absent_with_csum(struct ust_bs_page_builder *b)
{
	struct ust_bs_page_ref ref = {0, 1};
	return ust_bs_fmt_add_table(b, 0, &ref, 1);
}

static int add_table_past_blob(struct ust_bs_page_builder *b)
{
	struct ust_bs_page_ref ref = {600, 1};
	return ust_bs_fmt_add_table(b, 1, &ref, 1); /* a 10-cluster blob has one extent page */
}

static int add_table_ok(struct ust_bs_page_builder *b)
{
	struct ust_bs_page_ref refs[2] = {{600, 1}, {0, 0}};
	return ust_bs_fmt_add_table(b, 0, refs, 1) ?: ust_bs_fmt_add_table(b, 0, refs + 1, 1);
}

static int add_chain_twice(struct ust_bs_page_builder *b)
{
	struct ust_bs_page_ref ref = {600, 1};
	return ust_bs_fmt_add_chain(b, &ref, 1) ?: ust_bs_fmt_add_chain(b, &ref, 1);
}

static int add_chain_dup_page(struct ust_bs_page_builder *b)
{
	struct ust_bs_page_ref refs[2] = {{600, 1}, {600, 2}};
	return ust_bs_fmt_add_chain(b, refs, 2);
}

static int add_chain_bad_count(struct ust_bs_page_builder *b)
{
	struct {
		uint32_t count, reserved;
		uint32_t page, r2;
		uint64_t csum;
	} __attribute__((packed)) body = {htole32(2), 0, htole32(600), 0, htole64(1)};
	return ust_bs_fmt_add_raw(b, UST_BS_DESC_CHAIN, 0, &body, sizeof(body));
}

static int add_pending_twice(struct ust_bs_page_builder *b)
{
	struct ust_bs_pending_op op = {UST_BS_OP_MERGED_FROM, BLOB_ID(1, 3), 2};
	return ust_bs_fmt_add_pending(b, &op) ?: ust_bs_fmt_add_pending(b, &op);
}

static int add_pending_self(struct ust_bs_page_builder *b)
{
	struct ust_bs_pending_op op = {UST_BS_OP_MERGED_FROM, BLOB_ID(1, 7), 2};
	return ust_bs_fmt_add_pending(b, &op);
}

static int add_pending_short(struct ust_bs_page_builder *b)
{
	uint8_t body[16] = {1};
	return ust_bs_fmt_add_raw(b, UST_BS_DESC_PENDING_OP, 0, body, sizeof(body));
}

static int add_xattr_nul_name(struct ust_bs_page_builder *b)
{
	struct {
		uint16_t name_len, xflags;
		uint32_t value_len, frag_offset, frag_len;
		uint8_t name[2];
	} __attribute__((packed)) body = {htole16(2), 0, 0, 0, 0, {'a', 0}};
	return ust_bs_fmt_add_raw(b, UST_BS_DESC_XATTR, 0, &body, sizeof(body));
}

static int add_xattr_frag_past_value(struct ust_bs_page_builder *b)
{
	struct {
		uint16_t name_len, xflags;
		uint32_t value_len, frag_offset, frag_len;
		uint8_t name[1];
		uint8_t data[2];
	} __attribute__((packed)) body = {htole16(1), 0, htole32(3), htole32(2), htole32(2), {'a'}, {1, 2}};
	return ust_bs_fmt_add_raw(b, UST_BS_DESC_XATTR, 0, &body, sizeof(body));
}

static int add_xattr_too_big(struct ust_bs_page_builder *b)
{
	struct {
		uint16_t name_len, xflags;
		uint32_t value_len, frag_offset, frag_len;
		uint8_t name[1];
		uint8_t data[1];
	} __attribute__((packed)) body = {htole16(1), 0, htole32(UST_BS_XATTR_VALUE_MAX + 1), 0, htole32(1), {'a'}, {1}};
	return ust_bs_fmt_add_raw(b, UST_BS_DESC_XATTR, 0, &body, sizeof(body));
}

static int add_xattr_big_fragmented_ok(struct ust_bs_page_builder *b)
{
	static uint8_t data[3000];
	struct ust_bs_xattr_frag x = {
		.name = (const uint8_t *)"big", .name_len = 3, .value_len = UST_BS_XATTR_VALUE_MAX,
		.frag_offset = UST_BS_XATTR_VALUE_MAX - sizeof(data), .frag_len = sizeof(data), .data = data,
	};
	return ust_bs_fmt_add_xattr(b, &x);
}

static void test_descriptor_fields(void **state)
{
	struct ust_bs_root thick = root_tmpl(0, 10);
	struct ust_bs_root thin = root_tmpl(UST_BS_BLOB_THIN | UST_BS_BLOB_EXTENT_PAGES, 10);

	expect_root(thick, add_rle_hole_ok, UST_BS_FMT_OK);
	expect_root(thick, add_rle_meta_cluster, UST_BS_FMT_DESC_BAD_FIELD);
	expect_root(thick, add_rle_past_store, UST_BS_FMT_DESC_BAD_FIELD);
	expect_root(thick, add_rle_past_blob, UST_BS_FMT_DESC_BAD_FIELD);
	expect_root(thick, add_table_ok, UST_BS_FMT_DESC_MISPLACED);
	expect_root(thin, add_table_ok, UST_BS_FMT_OK);
	expect_root(thin, add_rle_hole_ok, UST_BS_FMT_DESC_MISPLACED);
	expect_root(thin, add_table_outside_pool, UST_BS_FMT_DESC_BAD_FIELD);
	expect_root(thin, add_table_absent_with_csum, UST_BS_FMT_DESC_BAD_FIELD);
	expect_root(thin, add_table_past_blob, UST_BS_FMT_DESC_BAD_FIELD);
	expect_root(thin, add_chain_twice, UST_BS_FMT_DESC_MISPLACED);
	expect_root(thin, add_chain_dup_page, UST_BS_FMT_DESC_BAD_FIELD);
	expect_root(thin, add_chain_bad_count, UST_BS_FMT_DESC_BAD_LENGTH);
	expect_root(thin, add_pending_twice, UST_BS_FMT_DESC_MISPLACED);
	expect_root(thin, add_pending_self, UST_BS_FMT_DESC_BAD_FIELD);
	expect_root(thin, add_pending_short, UST_BS_FMT_DESC_BAD_LENGTH);
	expect_root(thin, add_xattr_nul_name, UST_BS_FMT_DESC_BAD_FIELD);
	expect_root(thin, add_xattr_frag_past_value, UST_BS_FMT_DESC_BAD_FIELD);
	expect_root(thin, add_xattr_too_big, UST_BS_FMT_DESC_BAD_FIELD);
	expect_root(thin, add_xattr_big_fragmented_ok, UST_BS_FMT_OK);
}

static void test_root_fields(void **state)
{
	struct ust_bs_fmt_geom g;
	struct ust_bs_root r;

	r = root_tmpl(1u << 9, 10);
	expect_root(r, NULL, UST_BS_FMT_BAD_FIELD);
	r = root_tmpl(UST_BS_BLOB_SNAPSHOT, 10);
	expect_root(r, NULL, UST_BS_FMT_BAD_FIELD);
	r = root_tmpl(UST_BS_BLOB_SNAPSHOT | UST_BS_BLOB_READ_ONLY, 10);
	expect_root(r, NULL, UST_BS_FMT_OK);
	r = root_tmpl(0, 10);
	r.parent_id = BLOB_ID(1, 2);
	expect_root(r, NULL, UST_BS_FMT_BAD_FIELD); /* a clone must be thin */
	r.flags = UST_BS_BLOB_THIN;
	expect_root(r, NULL, UST_BS_FMT_OK);
	r.parent_id = r.hdr.blob_id;
	expect_root(r, NULL, UST_BS_FMT_BAD_FIELD);
	r = root_tmpl(UST_BS_BLOB_TOMBSTONE, 1);
	expect_root(r, NULL, UST_BS_FMT_BAD_FIELD);
	r = root_tmpl(UST_BS_BLOB_TOMBSTONE | UST_BS_BLOB_THIN, 0);
	expect_root(r, NULL, UST_BS_FMT_BAD_FIELD);
	r = root_tmpl(UST_BS_BLOB_TOMBSTONE, 0);
	expect_root(r, add_rle_hole_ok, UST_BS_FMT_BAD_FIELD);
	r = root_tmpl(0, UST_BS_MAX_BLOB_CLUSTERS + 1);
	expect_root(r, NULL, UST_BS_FMT_BAD_FIELD);
	/* a thick blob has no holes (8.4): never larger than the data clusters */
	make_geom(&g);
	r = root_tmpl(0, g.total_clusters - g.md_clusters);
	expect_root(r, NULL, UST_BS_FMT_OK);
	r.num_clusters++;
	expect_root(r, NULL, UST_BS_FMT_BAD_FIELD);
	r.flags = UST_BS_BLOB_THIN; /* thin provisioning may promise more */
	expect_root(r, NULL, UST_BS_FMT_OK);
	/* extent pages past what their references can map (8.3): damage */
	r = root_tmpl(UST_BS_BLOB_THIN | UST_BS_BLOB_EXTENT_PAGES, UST_BS_THIN_MAX_CLUSTERS);
	expect_root(r, NULL, UST_BS_FMT_OK);
	r.num_clusters++;
	expect_root(r, NULL, UST_BS_FMT_BAD_FIELD);
	r = root_tmpl(UST_BS_BLOB_THIN | UST_BS_BLOB_EXTENT_PAGES, UST_BS_MAX_BLOB_CLUSTERS);
	expect_root(r, NULL, UST_BS_FMT_BAD_FIELD);
}

static void test_chain_page_rules(void **state)
{
	struct ust_bs_page_hdr h = {.store_id = STORE_ID, .blob_id = BLOB_ID(1, 7), .generation = 4, .seq = 1};
	struct ust_bs_page_builder b;
	struct ust_bs_fmt_geom g;
	struct ust_bs_fmt_err err;
	struct ust_bs_page_hdr back;
	struct ust_bs_page_ref ref = {600, 1};
	struct ust_bs_pending_op op = {UST_BS_OP_MERGED_FROM, BLOB_ID(1, 3), 2};

	make_geom(&g);
	ust_bs_fmt_chain_begin(&b, g_page, &h);
	assert_int_equal(ust_bs_fmt_add_chain(&b, &ref, 1), 0);
	ust_bs_fmt_page_finish(&b);
	ASSERT_DAMAGE(ust_bs_fmt_chain_decode(g_page, &g, &back, &err), err, UST_BS_FMT_DESC_MISPLACED);

	ust_bs_fmt_chain_begin(&b, g_page, &h);
	assert_int_equal(ust_bs_fmt_add_pending(&b, &op), 0);
	ust_bs_fmt_page_finish(&b);
	ASSERT_DAMAGE(ust_bs_fmt_chain_decode(g_page, &g, &back, &err), err, UST_BS_FMT_DESC_MISPLACED);

	h.seq = 0;
	ust_bs_fmt_chain_begin(&b, g_page, &h);
	ust_bs_fmt_page_finish(&b);
	ASSERT_DAMAGE(ust_bs_fmt_chain_decode(g_page, &g, &back, &err), err, UST_BS_FMT_BAD_HEADER);
	h.seq = UST_BS_MAX_CHAIN_PAGES + 1;
	ust_bs_fmt_chain_begin(&b, g_page, &h);
	ust_bs_fmt_page_finish(&b);
	ASSERT_DAMAGE(ust_bs_fmt_chain_decode(g_page, &g, &back, &err), err, UST_BS_FMT_BAD_HEADER);
}

static void test_extent_page_damage(void **state)
{
	struct ust_bs_page_hdr h = {.store_id = STORE_ID, .blob_id = BLOB_ID(1, 7), .generation = 4, .seq = 0};
	struct ust_bs_fmt_geom g;
	struct ust_bs_fmt_err err;
	struct ust_bs_page_hdr back;
	uint32_t good[2] = {4, 1022}, out[UST_BS_EXTENTS_PER_PAGE], n;
	uint32_t bad_meta[1] = {3}, bad_end[1] = {1023};

	make_geom(&g);
	assert_int_equal(ust_bs_fmt_extent_encode(g_page, &h, good, 2), 0);
	assert_int_equal(ust_bs_fmt_extent_decode(g_page, &g, &back, out, &n, &err), 0);
	assert_int_equal(ust_bs_fmt_extent_encode(g_page, &h, bad_meta, 1), 0);
	ASSERT_DAMAGE(ust_bs_fmt_extent_decode(g_page, &g, &back, out, &n, &err), err, UST_BS_FMT_BAD_FIELD);
	assert_int_equal(err.offset, 64);
	assert_int_equal(ust_bs_fmt_extent_encode(g_page, &h, bad_end, 1), 0);
	ASSERT_DAMAGE(ust_bs_fmt_extent_decode(g_page, &g, &back, out, &n, &err), err, UST_BS_FMT_BAD_FIELD);
	/* Payload not a whole number of entries. */
	assert_int_equal(ust_bs_fmt_extent_encode(g_page, &h, good, 2), 0);
	put32(g_page, 44, 6);
	memset(g_page + 64 + 6, 0, 2);
	reseal(g_page);
	ASSERT_DAMAGE(ust_bs_fmt_extent_decode(g_page, &g, &back, out, &n, &err), err, UST_BS_FMT_BAD_HEADER);
}

/*
 * Random damage behind a valid checksum (a buggy or hostile writer): every
 * decoder returns 0 or a documented error whose errno matches its kind, and a
 * page it accepts can be walked with the accessors without leaving the page
 * (run under ASan in CI to make "without leaving" a checked property).
 */
static void test_random_resealed_pages(void **state)
{
	struct ust_bs_fmt_geom g;
	struct ust_bs_fmt_err err;
	struct ust_bs_super sb;
	struct ust_bs_root r = root_tmpl(UST_BS_BLOB_THIN | UST_BS_BLOB_EXTENT_PAGES, 3000);
	struct ust_bs_page_hdr h = {.store_id = STORE_ID, .blob_id = BLOB_ID(1, 7), .generation = 4, .seq = 1};
	struct ust_bs_page_builder b;
	struct ust_bs_page_ref refs[3] = {{600, 1}, {601, 2}, {0, 0}};
	struct ust_bs_pending_op op = {UST_BS_OP_SNAPSHOT_OF, BLOB_ID(2, 3), 77};
	uint32_t clusters[8] = {4, 5, 0, 7, 8, 9, 10, 0}, out[UST_BS_EXTENTS_PER_PAGE], n;
	uint8_t pages[5][UST_BS_PAGE_SIZE];
	uint32_t seed = 12345, iter, k, i;

	make_geom(&g);
	make_super(&sb);
	ust_bs_fmt_super_encode(&sb, pages[0]);
	ust_bs_fmt_root_begin(&b, pages[1], &r);
	assert_int_equal(ust_bs_fmt_add_chain(&b, refs, 2), 0);
	assert_int_equal(ust_bs_fmt_add_table(&b, 0, refs, 3), 0);
	assert_int_equal(ust_bs_fmt_add_pending(&b, &op), 0);
	ust_bs_fmt_page_finish(&b);
	build_simple_root(pages[2]);
	ust_bs_fmt_chain_begin(&b, pages[3], &h);
	assert_int_equal(add_xattr_big_fragmented_ok(&b), 0);
	assert_int_equal(ust_bs_fmt_add_table(&b, 1, refs, 3), 0);
	ust_bs_fmt_page_finish(&b);
	assert_int_equal(ust_bs_fmt_extent_encode(pages[4], &h, clusters, 8), 0);

	for (iter = 0; iter < 40000; iter++) {
		uint32_t which = iter % 5, flips;
		struct ust_bs_page_hdr hb;
		struct ust_bs_root rb;
		struct ust_bs_super sbb;
		int rc;

		memcpy(g_page, pages[which], sizeof(g_page));
		seed = seed * 1103515245u + 12345u;
		flips = 1 + (seed >> 16) % 4;
		for (k = 0; k < flips; k++) {
			uint32_t off;

			seed = seed * 1103515245u + 12345u;
			/* Mostly the header and the first descriptors, where the lengths are. */
			off = (seed >> 8) % ((seed & 1) ? 256 : UST_BS_PAGE_SIZE);
			seed = seed * 1103515245u + 12345u;
			g_page[off] = (uint8_t)(seed >> 16);
		}
		reseal(g_page);
		switch (which) {
		case 0:
			rc = ust_bs_fmt_super_decode(g_page, &sbb, &err);
			break;
		case 1:
		case 2:
			rc = ust_bs_fmt_root_decode(g_page, &g, &rb, &err);
			break;
		case 3:
			rc = ust_bs_fmt_chain_decode(g_page, &g, &hb, &err);
			break;
		default:
			rc = ust_bs_fmt_extent_decode(g_page, &g, &hb, out, &n, &err);
			break;
		}
		assert_int_equal(rc, ust_bs_fmt_damage_errno(err.kind));
		if (rc == 0 && (which == 1 || which == 2 || which == 3)) {
			uint32_t cursor = 0;
			struct ust_bs_desc d;
			struct ust_bs_page_ref ref;
			struct ust_bs_extent_run run;
			struct ust_bs_xattr_frag x;
			uint64_t sum = 0;

			while ((rc = ust_bs_fmt_desc_next(g_page, &cursor, &d)) == 1) {
				for (i = 0; i < ust_bs_fmt_desc_count(&d); i++) {
					if (d.type == UST_BS_DESC_EXTENT_RLE) {
						ust_bs_fmt_desc_run(&d, i, &run);
						sum += run.count;
					} else {
						ust_bs_fmt_desc_page_ref(&d, i, &ref);
						sum += ref.page;
					}
				}
				if (d.type == UST_BS_DESC_XATTR) {
					ust_bs_fmt_desc_xattr(&d, &x);
					for (i = 0; i < x.frag_len; i++) {
						sum += x.data[i];
					}
				}
			}
			assert_int_equal(rc, 0);
			(void)sum;
		}
	}
}

static void test_damage_strings(void **state)
{
	uint32_t k;

	for (k = 0; k < UST_BS_FMT_DAMAGE_COUNT; k++) {
		assert_non_null(ust_bs_fmt_damage_str(k));
		if (k != UST_BS_FMT_OK) {
			assert_true(ust_bs_fmt_damage_errno(k) < 0);
		}
	}
	assert_string_equal(ust_bs_fmt_damage_str(UST_BS_FMT_DAMAGE_COUNT), "unknown damage");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout_worked_example),
		cmocka_unit_test(test_layout_limits),
		cmocka_unit_test(test_checksum_definition),
		cmocka_unit_test(test_super_round_trip),
		cmocka_unit_test(test_super_damage),
		cmocka_unit_test(test_root_round_trip),
		cmocka_unit_test(test_rle_and_tombstone_round_trip),
		cmocka_unit_test(test_chain_and_extent_round_trip),
		cmocka_unit_test(test_builder_limits),
		cmocka_unit_test(test_every_bit_flip),
		cmocka_unit_test(test_torn_writes),
		cmocka_unit_test(test_descriptor_lengths),
		cmocka_unit_test(test_unknown_descriptors),
		cmocka_unit_test(test_versions_and_features),
		cmocka_unit_test(test_identity_damage),
		cmocka_unit_test(test_descriptor_fields),
		cmocka_unit_test(test_root_fields),
		cmocka_unit_test(test_chain_page_rules),
		cmocka_unit_test(test_extent_page_damage),
		cmocka_unit_test(test_random_resealed_pages),
		cmocka_unit_test(test_damage_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
