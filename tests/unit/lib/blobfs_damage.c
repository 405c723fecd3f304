/*
 * Damaging a blobfs image for the corruption tests (tests/unit/blobfs/
 * blobfs_corrupt_ut.c): the blobstore of a copy loaded on its own, its
 * blobs' internal xattrs and directory blocks read and rewritten, and
 * directory blocks decoded, re-encoded and resealed with a correct
 * checksum, as docs/blobfs-format.md 4.2 lays them out, so that damage
 * passes the checksum and reaches blobfs's decoders. Every call fails the
 * test if the store refuses it. Threads from ut_threads.h.
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
#include <xxhash.h>

#include "ustor/blob.h"
#include "ustor/blobfs.h"
#include "blobfs_damage.h"
#include "ut_threads.h"

/* ---- the store ------------------------------------------------------------------------------ */

struct st_res {
	bool done;
	int rc;
	struct ust_blob_store *bs;
	struct ust_blob *blob;
};

static struct st_res g_st;
struct ust_blob_store *bfd_bs;
struct ust_io_channel *bfd_ch;

static struct st_res *st_begin(void)
{
	memset(&g_st, 0, sizeof(g_st));
	return &g_st;
}

static void st_finish(void)
{
	ut_threads_poll();
	assert_true(g_st.done);
}

static void st_bs_cb(void *arg, struct ust_blob_store *bs, int rc)
{
	struct st_res *r = arg;

	r->done = true;
	r->rc = rc;
	r->bs = bs;
}

static void st_blob_cb(void *arg, struct ust_blob *blob, int rc)
{
	struct st_res *r = arg;

	r->done = true;
	r->rc = rc;
	r->blob = blob;
}

static void st_op_cb(void *arg, int rc)
{
	struct st_res *r = arg;

	r->done = true;
	r->rc = rc;
}

void bfd_store_open(const char *bdev)
{
	struct ust_bs_opts o;

	ust_bs_opts_init(&o);
	snprintf(o.bstype, sizeof(o.bstype), "%s", UST_BLOBFS_BSTYPE);
	ust_bs_share_load(bdev, &o, st_bs_cb, st_begin());
	st_finish();
	assert_int_equal(g_st.rc, 0);
	bfd_bs = g_st.bs;
	bfd_ch = ust_bs_alloc_io_channel(bfd_bs);
	assert_non_null(bfd_ch);
}

void bfd_store_drop(void)
{
	if (bfd_bs == NULL) {
		return;
	}
	ust_bs_free_io_channel(bfd_ch);
	ut_threads_poll();
	ust_bs_share_put(bfd_bs, st_op_cb, st_begin());
	ut_threads_poll();
	bfd_bs = NULL;
}

void bfd_store_close(void)
{
	ust_bs_free_io_channel(bfd_ch);
	ut_threads_poll();
	ust_bs_share_put(bfd_bs, st_op_cb, st_begin());
	st_finish();
	assert_int_equal(g_st.rc, 0);
	bfd_bs = NULL;
}

struct ust_blob *bfd_blob_open(uint64_t id)
{
	ust_bs_open_blob(bfd_bs, id, st_blob_cb, st_begin());
	st_finish();
	assert_int_equal(g_st.rc, 0);
	return g_st.blob;
}

void bfd_blob_commit(struct ust_blob *b)
{
	ust_blob_sync_md(b, st_op_cb, st_begin());
	st_finish();
	assert_int_equal(g_st.rc, 0);
	ust_blob_close(b, st_op_cb, st_begin());
	st_finish();
	assert_int_equal(g_st.rc, 0);
}

/* A copy of internal xattr name of b into buf (room: cap); its length, or -1 when absent. */
int bfd_xa_get(struct ust_blob *b, const char *name, uint8_t *buf, size_t cap)
{
	const void *v;
	size_t len;

	if (ust_blob_get_internal_xattr(b, name, &v, &len) != 0) {
		return -1;
	}
	assert_true(len <= cap);
	memcpy(buf, v, len);
	return (int)len;
}

void bfd_xa_set(struct ust_blob *b, const char *name, const void *v, size_t len)
{
	assert_int_equal(ust_blob_set_internal_xattr(b, name, v, len), 0);
}

void bfd_block_io(struct ust_blob *b, bool write, uint8_t *blk, uint32_t index)
{
	uint64_t units = BFS_DBLOCK_SIZE / ust_bs_get_io_unit_size(bfd_bs);

	if (write) {
		ust_blob_write(b, bfd_ch, blk, index * units, units, st_op_cb, st_begin());
	} else {
		ust_blob_read(b, bfd_ch, blk, index * units, units, st_op_cb, st_begin());
	}
	st_finish();
	assert_int_equal(g_st.rc, 0);
}

uint32_t bfd_blocks(struct ust_blob *b)
{
	return (uint32_t)(ust_blob_get_num_io_units(b) * ust_bs_get_io_unit_size(bfd_bs) / BFS_DBLOCK_SIZE);
}

/* ---- directory blocks, as the format document lays them out (4.2) ----------------------------- */

static uint32_t rev31(uint32_t k)
{
	uint32_t r = 0;
	int i;

	for (i = 0; i < 31; i++) {
		r = (r << 1) | ((k >> i) & 1u);
	}
	return r;
}

uint64_t bfd_name_cookie(uint64_t seed, const char *name, size_t len)
{
	uint32_t key = (uint32_t)(XXH3_64bits_withSeed(name, len, seed) & 0x7fffffffu);

	return (uint64_t)rev31(key) << 32 | 3u;
}

void bfd_reseal(uint8_t *img)
{
	uint64_t c;

	memset(img + offsetof(struct bfs_disk_dblock, checksum), 0, 8);
	c = XXH3_64bits(img, BFS_DBLOCK_SIZE);
	memcpy(img + offsetof(struct bfs_disk_dblock, checksum), &c, 8);
}

void bfd_blk_decode(const uint8_t *img, struct bfd_blk *b)
{
	size_t off = sizeof(b->h);
	int i;

	memcpy(&b->h, img, sizeof(b->h));
	b->n = b->h.nents;
	assert_true(b->n <= 160);
	for (i = 0; i < b->n; i++) {
		struct bfs_disk_dentry d;

		memcpy(&d, img + off, sizeof(d));
		off += sizeof(d);
		b->e[i].cookie = d.cookie;
		b->e[i].ino = d.ino;
		b->e[i].type = d.type;
		b->e[i].len = d.name_len;
		memcpy(b->e[i].name, img + off, d.name_len);
		off += d.name_len;
	}
}

static int ent_cmp(const void *a, const void *b)
{
	const struct bfd_ent *x = a, *y = b;

	return x->cookie < y->cookie ? -1 : x->cookie > y->cookie;
}

/* Entries in cookie order (as a writer would keep them), header as it is, sealed. */
void bfd_blk_encode(struct bfd_blk *b, uint8_t *img, bool sort)
{
	size_t off = sizeof(b->h);
	int i;

	if (sort) {
		qsort(b->e, (size_t)b->n, sizeof(b->e[0]), ent_cmp);
	}
	memset(img, 0, BFS_DBLOCK_SIZE);
	for (i = 0; i < b->n; i++) {
		struct bfs_disk_dentry d = {.cookie = b->e[i].cookie, .ino = b->e[i].ino,
					    .type = b->e[i].type, .name_len = b->e[i].len};

		if (off + sizeof(d) + d.name_len > BFS_DBLOCK_SIZE) {
			break;
		}
		memcpy(img + off, &d, sizeof(d));
		memcpy(img + off + sizeof(d), b->e[i].name, d.name_len);
		off += sizeof(d) + d.name_len;
	}
	memcpy(img, &b->h, sizeof(b->h));
	bfd_reseal(img);
}
