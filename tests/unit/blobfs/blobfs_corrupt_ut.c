/*
 * Unit tests for blobfs on a damaged image (blobfs/, docs/blobfs-format.md
 * section 9): a reference tree (nested directories, a directory split over
 * several blocks, files with data, symlinks, a hard link, a fifo, user
 * xattrs, an open unlinked file on the orphan list and a pending rename
 * intent) is copied raw, and then, many times with a fixed-seed PRNG, one
 * blobfs structure of a fresh copy is damaged through the blobstore: a
 * directory block mutated at random or in a chosen field and resealed with
 * a correct checksum, an inode's attributes, refs or link target, a user
 * xattr, the super blob, the intent and its pre-image records, the orphan
 * list, or any blobfs xattr mutated or truncated at random.
 *
 * Every damaged copy is mounted, walked whole (lookup, readdir, stat, read,
 * readlink, listxattr, getxattr), changed (create, write, mkdir, rename,
 * unlink, setxattr), unmounted and mounted again. Asserted: every call
 * completes (no hang), every failure is an errno of the documented set
 * (format doc section 9), a mount fails only with those, and what the
 * damage cannot reach reads back exactly as written: every file reached
 * reads its own reference content unless its own inode was damaged, and,
 * for damage to one inode or directory, every path that does not pass
 * through it resolves as before. A damaged size never makes blobfs
 * allocate: the free space is checked after each walk.
 *
 * A second test applies chosen damages one by one and asserts the exact
 * errno or mount result each one gets (the regression checks of the fixes
 * this test found).
 *
 * The seed is printed; BFT_CORRUPT_SEED and BFT_CORRUPT_ITERS override it
 * and the number of damaged copies, BFT_CORRUPT_VERBOSE=1 prints each
 * damage. Directory hash seeds are random per mkdir, so the same seed
 * damages the same structures but not always the same names.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "ustor/bdev.h"
#include "ustor/blob.h"
#include "ustor/blobfs.h"
#include "ustor/env.h"
#include "blobfs_damage.h"
#include "blobfs_test.h"
#include "ut_threads.h"

/* ---- PRNG ------------------------------------------------------------------------------------ */

static uint64_t g_rng;

static uint64_t rnd(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return g_rng;
}

static uint32_t rnd_below(uint32_t n)
{
	return n == 0 ? 0 : (uint32_t)(rnd() % n);
}

/* ---- the reference tree ------------------------------------------------------------------------ */

enum obj_kind { O_DIR, O_FILE, O_LINK, O_FIFO };

#define MAX_OBJS 96
#define BIG_N 40
#define MAX_PATH 600

struct obj {
	char path[MAX_PATH]; /* from the root, '/'-separated; "" is the root */
	enum obj_kind kind;
	uint64_t ino;
	uint64_t parent;
	uint32_t size;  /* files: bytes of pattern seed */
	uint32_t seed;
	char target[320]; /* symlinks */
	bool xattrs;      /* f_a, d1: user xattrs below */
};

static struct obj g_objs[MAX_OBJS];
static int g_nobj;
static uint64_t g_root_id;   /* the root's blob id (reported as inode 1) */
static uint64_t g_super_id;  /* the super blob's id */
static uint64_t g_free_ref;  /* free clusters of the undamaged copy, mounted */
static uint8_t *g_base;      /* the undamaged raw image */
static char g_desc[1024];     /* the damage of this iteration */
static int g_iter;

static const char XA2[] = "a value of one hundred bytes, give or take, to see that it comes back whole..........!";

static struct obj *obj_add(const char *path, enum obj_kind kind, uint64_t ino, uint64_t parent)
{
	struct obj *o;

	assert_true(g_nobj < MAX_OBJS);
	o = &g_objs[g_nobj++];
	memset(o, 0, sizeof(*o));
	snprintf(o->path, sizeof(o->path), "%s", path);
	o->kind = kind;
	o->ino = ino;
	o->parent = parent;
	return o;
}

static struct obj *obj_by_ino(uint64_t ino)
{
	int i;

	for (i = 0; i < g_nobj; i++) {
		if (g_objs[i].ino == ino) {
			return &g_objs[i];
		}
	}
	return NULL;
}

static uint64_t make_file(uint64_t dir, const char *name, const char *path, uint32_t size, uint32_t seed)
{
	struct ust_blobfs_file *fh;
	uint8_t *buf = malloc(size + 1);
	uint64_t ino;
	struct obj *o;

	assert_non_null(buf);
	assert_int_equal(bft_create(dir, name, &fh, &ino), 0);
	if (size > 0) {
		bft_fill(buf, size, seed);
		assert_int_equal(bft_pwrite(fh, buf, size, 0), size);
	}
	assert_int_equal(bft_fsync(fh), 0);
	assert_int_equal(bft_release(fh), 0);
	free(buf);
	o = obj_add(path, O_FILE, ino, dir);
	o->size = size;
	o->seed = seed;
	return ino;
}

static int set_xattr(uint64_t ino, const char *name, const void *v, size_t len)
{
	ust_blobfs_setxattr(bft_fs, &bft_ctx, ino, name, v, len, 0, bft_op_cb, bft_begin());
	bft_finish();
	return bft_r.rc;
}

static void big_name(char *buf, int k)
{
	memset(buf, 'x', 240);
	snprintf(buf, 16, "n%02d_", k);
	buf[4] = 'x';
	buf[240] = '\0';
}

/* The tree, on bft_fs; the last change (a rename) leaves its intent in the super blob. */
static void build_reference(struct ust_blobfs_file **orphan)
{
	uint64_t d1, d2, big, fb, ino;
	char name[320], path[MAX_PATH];
	int k;

	g_nobj = 0;
	obj_add("", O_DIR, BFT_ROOT, BFT_ROOT);
	assert_int_equal(bft_mkdir(BFT_ROOT, "d1", &d1), 0);
	obj_add("d1", O_DIR, d1, BFT_ROOT)->xattrs = true;
	assert_int_equal(set_xattr(d1, "user.dir", "dv", 2), 0);
	assert_int_equal(bft_mkdir(d1, "d2", &d2), 0);
	obj_add("d1/d2", O_DIR, d2, d1);
	make_file(d2, "deep", "d1/d2/deep", 3000, 1);
	ino = make_file(BFT_ROOT, "f_a", "f_a", 10000, 2);
	g_objs[g_nobj - 1].xattrs = true;
	assert_int_equal(set_xattr(ino, "user.k1", "v1", 2), 0);
	assert_int_equal(set_xattr(ino, "user.k2", XA2, sizeof(XA2)), 0);
	fb = make_file(BFT_ROOT, "f_b", "f_b", 70000, 3);
	assert_int_equal(bft_link(fb, d1, "hl"), 0);
	{
		struct obj *hl = obj_add("d1/hl", O_FILE, fb, d1);

		hl->size = hl[-1].size;
		hl->seed = hl[-1].seed;
	}
	ust_blobfs_symlink(bft_fs, &bft_ctx, "d1/d2/deep", BFT_ROOT, "ln", bft_entry_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	snprintf(obj_add("ln", O_LINK, bft_r.e.ino, BFT_ROOT)->target, 320, "d1/d2/deep");
	memset(name, 'y', 300);
	name[300] = '\0';
	ust_blobfs_symlink(bft_fs, &bft_ctx, name, d1, "ln_long", bft_entry_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	snprintf(obj_add("d1/ln_long", O_LINK, bft_r.e.ino, d1)->target, 320, "%s", name);
	assert_int_equal(bft_mknod(BFT_ROOT, "fifo", S_IFIFO | 0644, 0, &ino), 0);
	obj_add("fifo", O_FIFO, ino, BFT_ROOT);
	assert_int_equal(bft_mkdir(BFT_ROOT, "empty", &ino), 0);
	obj_add("empty", O_DIR, ino, BFT_ROOT);
	/* 40 names of 240 bytes: 15 fit a block, so big splits into several */
	assert_int_equal(bft_mkdir(BFT_ROOT, "big", &big), 0);
	obj_add("big", O_DIR, big, BFT_ROOT);
	for (k = 0; k < BIG_N; k++) {
		big_name(name, k);
		snprintf(path, sizeof(path), "big/%s", name);
		make_file(big, name, path, k % 5 == 0 ? 500 + (uint32_t)k : 0, 100 + (uint32_t)k);
	}
	/* open and unlinked: on the orphan list once the next intent's sync writes it */
	{
		uint8_t buf[8192];
		uint64_t o;

		bft_fill(buf, sizeof(buf), 7);
		assert_int_equal(bft_create(BFT_ROOT, "orph", orphan, &o), 0);
		assert_int_equal(bft_pwrite(*orphan, buf, sizeof(buf), 0), sizeof(buf));
		assert_int_equal(bft_fsync(*orphan), 0);
		assert_int_equal(bft_unlink(BFT_ROOT, "orph"), 0);
	}
	ino = make_file(BFT_ROOT, "f_c", "d1/f_c2", 2000, 4);
	g_objs[g_nobj - 1].parent = d1;
	assert_int_equal(bft_rename(BFT_ROOT, "f_c", d1, "f_c2", 0), 0);
	(void)ino;
}

/* ---- the damaged copy's blobstore (tests/unit/lib/blobfs_damage.c) ----------------------------- */

static uint64_t real_id(uint64_t ino)
{
	return ino == BFT_ROOT ? g_root_id : ino;
}

static struct ust_blob *blob_open(uint64_t ino)
{
	return bfd_blob_open(real_id(ino));
}

/* ---- damages ------------------------------------------------------------------------------------- */

/* What one damage may reach: all (super blob, intents, orphans), or one inode or directory. */
static bool g_global;
static uint64_t g_damaged;

static struct obj *pick_obj(int kind)
{
	int i, n = 0, pick;

	for (i = 0; i < g_nobj; i++) {
		n += kind < 0 || (int)g_objs[i].kind == kind;
	}
	pick = (int)rnd_below((uint32_t)n);
	for (i = 0; i < g_nobj; i++) {
		if (kind < 0 || (int)g_objs[i].kind == kind) {
			if (pick-- == 0) {
				return &g_objs[i];
			}
		}
	}
	fail();
	return NULL;
}

static void mutate(uint8_t *p, size_t len, size_t hot)
{
	int i, n = 1 + (int)rnd_below(8);

	for (i = 0; i < n && len > 0; i++) {
		size_t at = rnd_below(2) && hot > 0 ? rnd_below((uint32_t)(hot < len ? hot : len))
						    : rnd_below((uint32_t)len);

		if (rnd_below(2)) {
			p[at] ^= (uint8_t)(1u << rnd_below(8));
		} else {
			p[at] = (uint8_t)rnd();
		}
	}
}

static uint64_t dir_seed_of(struct ust_blob *b)
{
	struct bfs_disk_inode d;

	assert_int_equal(bfd_xa_get(b, BFS_XA_INODE, (uint8_t *)&d, sizeof(d)), sizeof(d));
	return d.dir_seed;
}

/* A present block of directory b, read into img; its index, or -1 when it has none. */
static int pick_block(struct ust_blob *b, uint8_t *img)
{
	uint32_t n = bfd_blocks(b), i, start;

	if (n == 0) {
		return -1;
	}
	start = rnd_below(n);
	for (i = 0; i < n; i++) {
		uint32_t j = (start + i) % n;

		bfd_block_io(b, false, img, j);
		if (!ust_mem_is_zero(img, BFS_DBLOCK_SIZE)) {
			return (int)j;
		}
	}
	return -1;
}

static void rename_ent(struct bfd_ent *e, uint64_t seed, const char *name, size_t len)
{
	memcpy(e->name, name, len);
	e->len = (uint8_t)len;
	e->cookie = bfd_name_cookie(seed, name, len);
}

/* Damages: what < 0 picks the kind of damage at random, o NULL the object. */
static void damage_dblock(bool targeted, int what, struct obj *d)
{
	struct ust_blob *b;
	uint8_t *img = ust_dma_malloc(BFS_DBLOCK_SIZE, 4096);
	struct bfd_blk *k = calloc(1, sizeof(*k));
	uint64_t seed;
	int idx;
	struct bfd_ent *e;

	assert_non_null(img);
	assert_non_null(k);
	d = d != NULL ? d : pick_obj(O_DIR);
	b = blob_open(d->ino);
	seed = dir_seed_of(b);
	g_damaged = d->ino;
	idx = pick_block(b, img);
	if (idx < 0) {
		snprintf(g_desc, sizeof(g_desc), "dir '%s': no block", d->path);
		goto out;
	}
	if (!targeted) {
		mutate(img, BFS_DBLOCK_SIZE, 96);
		bfd_reseal(img);
		snprintf(g_desc, sizeof(g_desc), "dir '%s' block %d: random bytes, resealed", d->path, idx);
		goto write;
	}
	bfd_blk_decode(img, k);
	e = &k->e[rnd_below((uint32_t)k->n)];
	what = what >= 0 ? what : (int)rnd_below(22);
	snprintf(g_desc, sizeof(g_desc), "dir '%s' block %d: targeted %d", d->path, idx, what);
	switch (what) {
	case 0: e->ino = g_root_id; break;              /* an entry naming the root: a cycle */
	case 1: e->ino = real_id(d->ino); break;        /* naming its own directory */
	case 2: e->ino = real_id(d->parent); break;     /* naming its parent */
	case 3: e->ino = g_super_id; break;             /* naming a blob that is no inode */
	case 4: e->ino = (0x7fffull << 32) | 1234; break; /* naming no blob at all */
	case 5: e->ino = 0; break;
	case 6: e->type = (uint8_t)(e->type == DT_DIR ? DT_REG : DT_DIR); break;
	case 7: e->type = 99; break;
	case 8: rename_ent(e, seed, ".", 1); break;
	case 9: rename_ent(e, seed, "..", 2); break;
	case 10: rename_ent(e, seed, "a/b", 3); break;
	case 11: rename_ent(e, seed, "a\0b", 3); break;
	case 12: /* two entries with one name */
		if (k->n > 1) {
			rename_ent(&k->e[0], seed, k->e[1].name, k->e[1].len);
			k->e[0].cookie++;
		}
		break;
	case 13: k->h.dir_ino = real_id(d->parent); break;
	case 14: k->h.depth = (uint8_t)(25 + rnd_below(231)); break;
	case 15: k->h.index++; break;
	case 16: k->h.depth = (uint8_t)(k->h.depth + 1); break;
	case 17: k->h.depth = k->h.depth > 0 ? (uint8_t)(k->h.depth - 1) : 0; break;
	case 18: /* nents beyond what the block holds */
		bfd_blk_encode(k, img, true);
		{
			uint16_t n = (uint16_t)(k->n + 1 + rnd_below(0xffff - (uint32_t)k->n));

			memcpy(img + offsetof(struct bfs_disk_dblock, nents), &n, 2);
			bfd_reseal(img);
		}
		goto write;
	case 19: /* name_len 0 */
		bfd_blk_encode(k, img, true);
		img[sizeof(struct bfs_disk_dblock) + 17] = 0;
		bfd_reseal(img);
		goto write;
	case 20: /* an entry naming a file of another directory, as its own */
		e->ino = real_id(pick_obj(O_FILE)->ino);
		e->type = DT_REG;
		break;
	default: /* no entries left (its names are lost) */
		k->n = 0;
		k->h.nents = 0;
		break;
	}
	if (what != 21) {
		k->h.nents = (uint16_t)k->n;
	}
	bfd_blk_encode(k, img, true);
write:
	bfd_block_io(b, true, img, (uint32_t)idx);
out:
	bfd_blob_commit(b);
	ust_dma_free(img);
	free(k);
}

static void damage_inode(int what, struct obj *o)
{
	struct ust_blob *b = blob_open((o = o != NULL ? o : pick_obj(-1))->ino);
	uint8_t v[512];
	struct bfs_disk_inode *d = (struct bfs_disk_inode *)v;
	int len = bfd_xa_get(b, BFS_XA_INODE, v, sizeof(v));
	static const uint32_t types[] = {0, S_IFMT, S_IFDIR, S_IFREG, S_IFLNK, S_IFSOCK, 0xd000};

	assert_int_equal(len, sizeof(*d));
	what = what >= 0 ? what : (int)rnd_below(16);
	g_damaged = o->ino;
	snprintf(g_desc, sizeof(g_desc), "inode '%s': %d", o->path, what);
	switch (what) {
	case 0: len = (int)rnd_below(sizeof(*d)); break;
	case 1:
		len = (int)(sizeof(*d) + 1 + rnd_below(200));
		mutate(v + sizeof(*d), (size_t)len - sizeof(*d), 0);
		break;
	case 2: d->magic ^= 1u << rnd_below(32); break;
	case 3: d->version = (uint16_t)(rnd_below(2) ? BFS_VERSION + 1 + rnd_below(100) : rnd_below(BFS_VERSION)); break;
	case 4: d->mode = (d->mode & 07777) | types[rnd_below(7)]; break;
	case 5: d->size = UINT64_MAX - rnd_below(2); break;
	case 6: d->size = (1ull << 62) + rnd_below(4096); break;
	case 7: d->size = (uint64_t)INT64_MAX; break;
	case 8: d->size += 1 + rnd_below(100000); break;
	case 9: d->mtime.nsec = 1000000000u + (uint32_t)rnd_below(3000000000u); break;
	case 10: d->atime.sec = INT64_MIN; d->ctime.sec = INT64_MAX; break;
	case 11: d->dir_seed ^= 1ull << rnd_below(64); break;
	case 12: d->flags = (uint32_t)rnd(); d->reserved = 0xffff; break;
	case 13: d->mode = (uint32_t)rnd(); break;
	case 14: mutate(v, sizeof(*d), 0); break;
	default:
		assert_int_equal(ust_blob_remove_internal_xattr(b, BFS_XA_INODE), 0);
		len = -1;
		break;
	}
	if (len >= 0) {
		bfd_xa_set(b, BFS_XA_INODE, v, (size_t)len);
	}
	bfd_blob_commit(b);
}

static void damage_refs(int what, struct obj *o)
{
	struct ust_blob *b;
	uint8_t v[4096];
	int len;
	uint16_t nl;
	uint64_t p;

	o = o != NULL ? o : pick_obj(-1);
	if (o->ino == BFT_ROOT) {
		o = &g_objs[1];
	}
	what = what >= 0 ? what : (int)rnd_below(10);
	b = blob_open(o->ino);
	len = bfd_xa_get(b, BFS_XA_REFS, v, sizeof(v));
	assert_true(len >= 11);
	g_damaged = o->ino;
	snprintf(g_desc, sizeof(g_desc), "refs of '%s': %d", o->path, what);
	switch (what) {
	case 0: assert_int_equal(ust_blob_remove_internal_xattr(b, BFS_XA_REFS), 0); len = -1; break;
	case 1: nl = 0; memcpy(v + 8, &nl, 2); break;
	case 2: nl = (uint16_t)(256 + rnd_below(60000)); memcpy(v + 8, &nl, 2); break;
	case 3: len = (int)rnd_below((uint32_t)len); break;
	case 4: p = real_id(o->ino); memcpy(v, &p, 8); break; /* its own parent: a cycle */
	case 5: p = (0x7fffull << 32) | 99; memcpy(v, &p, 8); break;
	case 6: memcpy(v + len, v, (size_t)len); len *= 2; break;
	case 7: /* one more ref, to a name no directory has */
		p = g_root_id;
		memcpy(v + len, &p, 8);
		nl = 7;
		memcpy(v + len + 8, &nl, 2);
		memcpy(v + len + 10, "phantom", 7);
		len += 17;
		break;
	case 8: v[10] = '/'; break;
	default: len = 0; break;
	}
	if (len >= 0) {
		bfd_xa_set(b, BFS_XA_REFS, v, (size_t)len);
	}
	bfd_blob_commit(b);
}

static void damage_link(int what)
{
	struct obj *o = pick_obj(O_LINK);
	struct ust_blob *b = blob_open(o->ino);
	static uint8_t v[5000];

	what = what >= 0 ? what : (int)rnd_below(4);
	g_damaged = o->ino;
	snprintf(g_desc, sizeof(g_desc), "link target of '%s': %d", o->path, what);
	memset(v, 'z', sizeof(v));
	v[1] = '\0';
	switch (what) {
	case 0: bfd_xa_set(b, BFS_XA_LINK, v, 0); break;
	case 1: bfd_xa_set(b, BFS_XA_LINK, v + 2, sizeof(v) - 2); break;
	case 2: bfd_xa_set(b, BFS_XA_LINK, v, 3); break;
	default: assert_int_equal(ust_blob_remove_internal_xattr(b, BFS_XA_LINK), 0); break;
	}
	bfd_blob_commit(b);
}

static void damage_user_xattr(int what)
{
	struct obj *o = pick_obj(-1);
	struct ust_blob *b = blob_open(o->ino);
	static uint8_t v[65536];
	char name[400];

	what = what >= 0 ? what : (int)rnd_below(4);
	g_damaged = o->ino;
	snprintf(g_desc, sizeof(g_desc), "user xattr of '%s': %d", o->path, what);
	memset(v, 'u', sizeof(v));
	switch (what) {
	case 0: assert_int_equal(ust_blob_set_xattr(b, "trusted.evil", v, 10), 0); break;
	case 1: assert_int_equal(ust_blob_set_xattr(b, "user.huge", v, sizeof(v)), 0); break;
	case 2: (void)ust_blob_set_xattr(b, "user.", v, 3); break;
	default:
		memset(name, 'n', sizeof(name));
		memcpy(name, "user.", 5);
		name[sizeof(name) - 1] = '\0';
		(void)ust_blob_set_xattr(b, name, v, 3);
		break;
	}
	bfd_blob_commit(b);
}

static void damage_super(int what)
{
	struct ust_blob *b = blob_open(g_super_id);
	uint8_t v[256];
	struct bfs_disk_super *s = (struct bfs_disk_super *)v;
	int len = bfd_xa_get(b, BFS_XA_SUPER, v, sizeof(v));

	what = what >= 0 ? what : (int)rnd_below(12);
	assert_int_equal(len, sizeof(*s));
	g_global = true;
	snprintf(g_desc, sizeof(g_desc), "super: %d", what);
	switch (what) {
	case 0: len = (int)rnd_below(sizeof(*s)); break;
	case 1: s->magic ^= 1u << rnd_below(32); break;
	case 2: s->version = (uint16_t)(BFS_SUPER_VERSION + 1 + rnd_below(1000)); break;
	case 3: s->version = (uint16_t)rnd_below(2); break;
	case 4: s->root_ino = real_id(pick_obj(O_DIR)->ino); break;
	case 5: s->root_ino = real_id(pick_obj(O_FILE)->ino); break;
	case 6: s->root_ino = g_super_id; break;
	case 7: s->root_ino = rnd_below(2) ? 0 : (0x7fffull << 32) | 5; break;
	case 8: s->next_seq = rnd_below(3); break;
	case 9: s->next_seq = UINT64_MAX - rnd_below(2); break;
	case 10: s->reserved = 7; s->reserved2 = rnd(); break;
	default: mutate(v, sizeof(*s), 0); break;
	}
	bfd_xa_set(b, BFS_XA_SUPER, v, (size_t)len);
	bfd_blob_commit(b);
}

static void damage_intent(int what)
{
	struct ust_blob *b = blob_open(g_super_id);
	static uint8_t v[BFS_INTENT_MAX_BYTES + 64];
	struct bfs_disk_intent *in = (struct bfs_disk_intent *)v;
	struct bfs_disk_intent_block r;
	int len = bfd_xa_get(b, BFS_XA_INTENT, v, sizeof(v));
	size_t head;
	uint8_t *rec;

	assert_true(len > (int)sizeof(*in));
	assert_int_equal(in->op, BFS_OP_RENAME);
	head = sizeof(*in) + in->name1_len + in->name2_len;
	rec = v + head;
	memcpy(&r, rec, sizeof(r));
	what = what >= 0 ? what : (int)rnd_below(24);
	g_global = true;
	snprintf(g_desc, sizeof(g_desc), "intent: %d", what);
	switch (what) {
	case 0: in->op = (uint16_t)(rnd_below(2) ? 0 : 6 + rnd_below(60000)); break;
	case 1: in->op = (uint16_t)(1 + rnd_below(5)); break;
	case 2: in->name1_len = 0; break;
	case 3: in->name2_len = (uint16_t)(in->name2_len + 1); break;
	case 4: in->name1_len = 256; break;
	case 5: in->nblocks = (uint8_t)(3 + rnd_below(200)); break;
	case 6: in->nblocks = (uint8_t)rnd_below(in->nblocks); break;
	case 7: r.index = 5 + (uint32_t)rnd_below(1000000); memcpy(rec, &r, sizeof(r)); break;
	case 8: r.depth = (uint8_t)(25 + rnd_below(200)); memcpy(rec, &r, sizeof(r)); break;
	case 9: r.flags = (uint8_t)(2 + rnd_below(250)); memcpy(rec, &r, sizeof(r)); break;
	case 10: r.dir = real_id(pick_obj(O_FILE)->ino); memcpy(rec, &r, sizeof(r)); break;
	case 11: r.dir = rnd_below(2) ? g_super_id : g_root_id; memcpy(rec, &r, sizeof(r)); break;
	case 12: /* the pre-image mutated and resealed */
		if (!(r.flags & BFS_IBLK_EMPTY)) {
			mutate(rec + sizeof(r), BFS_DBLOCK_SIZE, 96);
			bfd_reseal(rec + sizeof(r));
		}
		break;
	case 13: /* both records the same range (overlap) */
		if (in->nblocks == 2) {
			memcpy(rec + sizeof(r) + BFS_DBLOCK_SIZE, rec, sizeof(r) + BFS_DBLOCK_SIZE);
		}
		break;
	case 14: in->seq = rnd_below(2) ? 0 : UINT64_MAX; break;
	case 15: in->seq = 1 + rnd_below(30); in->op = BFS_OP_CREATE; break;
	case 16: in->dir1 = real_id(pick_obj(O_FILE)->ino); break;
	case 17: in->ino1 = rnd_below(2) ? g_root_id : real_id(pick_obj(O_DIR)->ino); break;
	case 18: in->dir2 = rnd_below(2) ? g_super_id : (0x7fffull << 32) | 77; break;
	case 19: v[sizeof(*in)] = '/'; break;
	case 20: len = (int)rnd_below((uint32_t)len); break;
	case 21: /* the image says another directory's */
		if (!(r.flags & BFS_IBLK_EMPTY)) {
			uint64_t other = real_id(pick_obj(O_DIR)->ino);

			memcpy(rec + sizeof(r) + offsetof(struct bfs_disk_dblock, dir_ino), &other, 8);
			bfd_reseal(rec + sizeof(r));
		}
		break;
	case 22: /* a batch member that repeats it, and one after a gap */
		bfd_xa_set(b, "blobfs.intent.1", v, (size_t)len);
		bfd_xa_set(b, "blobfs.intent.7", v, (size_t)len);
		break;
	default: mutate(v, (size_t)len, sizeof(*in)); break;
	}
	bfd_xa_set(b, BFS_XA_INTENT, v, (size_t)len);
	bfd_blob_commit(b);
}

static void damage_orphans(int what)
{
	struct ust_blob *b = blob_open(g_super_id);
	static uint64_t v[8192];
	int n = 1, i;

	what = what >= 0 ? what : (int)rnd_below(9);
	/* no entry of a damaged list may cost a file that has its names: every path is checked */
	g_global = false;
	snprintf(g_desc, sizeof(g_desc), "orphans: %d", what);
	switch (what) {
	case 0: v[0] = g_super_id; break;
	case 1: v[0] = g_root_id; break;
	case 2: v[0] = real_id(pick_obj(O_DIR)->ino); break;
	case 3: v[0] = real_id(pick_obj(O_FILE)->ino); break;  /* a file that has its links */
	case 4: v[0] = (0x7fffull << 32) | 3; v[1] = 0; n = 2; break;
	case 5: v[0] = real_id(pick_obj(O_LINK)->ino); break;
	case 6: /* a long list, every entry the same linked file */
		n = 8000;
		for (i = 0; i < n; i++) {
			v[i] = real_id(g_objs[4].ino);
		}
		break;
	default: n = 0; break;
	}
	bfd_xa_set(b, BFS_XA_ORPHANS, v, what == 7 ? 7 : what == 8 ? 12 : (size_t)n * 8);
	bfd_blob_commit(b);
}

/* Any blobfs xattr of any blob, mutated, truncated or extended. */
static void damage_random_xattr(void)
{
	static const char *const names[] = {BFS_XA_INODE, BFS_XA_REFS, BFS_XA_LINK, BFS_XA_SUPER,
					    BFS_XA_INTENT, BFS_XA_ORPHANS};
	static uint8_t v[BFS_INTENT_MAX_BYTES + 512];
	struct obj *o = pick_obj(-1);
	uint64_t id = rnd_below(4) == 0 ? g_super_id : real_id(o->ino);
	const char *name = names[id == g_super_id ? 3 + rnd_below(3) : rnd_below(3)];
	struct ust_blob *b = blob_open(id);
	int len = bfd_xa_get(b, name, v, sizeof(v) - 512), what = (int)rnd_below(3);

	g_global = id == g_super_id;
	g_damaged = id == g_root_id ? BFT_ROOT : id;
	snprintf(g_desc, sizeof(g_desc), "xattr %s of 0x%" PRIx64 ": %d (len %d)", name, id, what, len);
	if (len < 0) {
		len = 0;
	}
	if (what == 0) {
		mutate(v, (size_t)len, 64);
	} else if (what == 1) {
		len = (int)rnd_below((uint32_t)len + 1);
	} else {
		uint32_t extra = 1 + rnd_below(300);

		mutate(v + len, extra, 0);
		len += (int)extra;
	}
	bfd_xa_set(b, name, v, (size_t)len);
	bfd_blob_commit(b);
}

/* A fresh copy of the reference image on M1, its blobstore loaded for damaging. */
static void fresh_copy(void)
{
	bft_raw_io("M1", true, g_base, BFT_BDEV_BYTES);
	g_global = false;
	g_damaged = 0;
	snprintf(g_desc, sizeof(g_desc), "none");
	bfd_store_open("M1");
}

/* The orphan list of the copy on M1 (its store held by bfd_store_open): how many, the first max in v. */
static int read_orphans(uint64_t *v, size_t max)
{
	struct ust_blob *b = blob_open(g_super_id);
	int len = bfd_xa_get(b, BFS_XA_ORPHANS, (uint8_t *)v, max * sizeof(*v));

	bfd_blob_commit(b);
	return len < 0 ? 0 : len / (int)sizeof(*v);
}

/* The inode of the listed orphan (the reference's open unlinked file), damaged at random. */
static void damage_orphan_inode(int what)
{
	struct obj o = {.kind = O_FILE};
	uint64_t listed[2];

	assert_int_equal(read_orphans(listed, 2), 1);
	o.ino = listed[0];
	snprintf(o.path, sizeof(o.path), "(the orphan)");
	damage_inode(what, &o);
}

/* A fresh copy of the reference image on M1, damaged once at random. */
static void damage_copy(void)
{
	uint32_t c = rnd_below(100);

	fresh_copy();
	if (c < 25) {
		damage_dblock(false, -1, NULL);
	} else if (c < 40) {
		damage_dblock(true, -1, NULL);
	} else if (c < 55) {
		damage_inode(-1, NULL);
	} else if (c < 63) {
		damage_refs(-1, NULL);
	} else if (c < 67) {
		damage_link(-1);
	} else if (c < 70) {
		damage_user_xattr(-1);
	} else if (c < 77) {
		damage_super(-1);
	} else if (c < 89) {
		damage_intent(-1);
	} else if (c < 92) {
		damage_orphans(-1);
	} else if (c < 94) {
		damage_orphan_inode(-1);
	} else {
		damage_random_xattr();
	}
	bfd_store_close();
}

/* ---- what a damaged image may answer (docs/blobfs-format.md 9) ---------------------------------- */

static const int MOUNT_ERRS[] = {EIO, ENOTSUP, ENODATA, 0};
static const int READ_ERRS[] = {EIO, 0};
static const int CHANGE_ERRS[] = {EIO, ENOENT, ENOSPC, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, EINVAL, EPERM, 0};

static void expect(int64_t rc, const int *errs, const char *what)
{
	int i;

	if (rc >= 0) {
		return;
	}
	for (i = 0; errs[i] != 0; i++) {
		if (rc == -errs[i]) {
			return;
		}
	}
	print_error("iteration %d, damage \"%s\": %s returned %" PRId64 "\n", g_iter, g_desc, what, rc);
	fail();
}

static void same(bool ok, const char *what, const char *path)
{
	if (!ok) {
		print_error("iteration %d, damage \"%s\": %s of '%s' differs from the reference\n", g_iter,
			    g_desc, what, path);
		fail();
	}
}

/* ---- reading it all ------------------------------------------------------------------------------ */

struct names {
	int n;
	bool overflow;
	char name[512][256];
	uint64_t ino[512];
};

static int names_fill(void *arg, const struct ust_blobfs_dirent *d)
{
	struct names *l = arg;

	if (l->n == 512) {
		l->overflow = true;
		return 1;
	}
	snprintf(l->name[l->n], 256, "%s", d->name);
	l->ino[l->n++] = d->ino;
	return 0;
}

static int read_dir(uint64_t dir, struct names *l, bool plus)
{
	struct ust_blobfs_file *dh;
	int rc;

	memset(l, 0, offsetof(struct names, name));
	ust_blobfs_opendir(bft_fs, &bft_ctx, dir, bft_open_cb, bft_begin());
	bft_finish();
	expect(bft_r.rc, READ_ERRS, "opendir");
	if (bft_r.rc != 0) {
		return bft_r.rc;
	}
	dh = bft_r.fh;
	ust_blobfs_readdir(bft_fs, dh, 0, plus, names_fill, l, bft_op_cb, bft_begin());
	bft_finish();
	rc = bft_r.rc;
	expect(rc, READ_ERRS, "readdir");
	/* a damaged directory holds no more than its blocks can: a longer walk is a loop */
	assert_false(l->overflow);
	ust_blobfs_releasedir(bft_fs, dh, bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	return rc;
}

static bool pattern_ok(const uint8_t *buf, uint32_t size, uint32_t seed)
{
	uint8_t *want = malloc(size + 1);
	bool ok;

	assert_non_null(want);
	bft_fill(want, size, seed);
	ok = memcmp(buf, want, size) == 0;
	free(want);
	return ok;
}

#define READ_CAP (128u << 10)

/* Read a regular file; 0 and the bytes read (at most READ_CAP) in *buf, or its error. */
static int read_file(uint64_t ino, uint64_t size, uint8_t *buf, int64_t *got)
{
	struct ust_blobfs_file *fh;
	int64_t n;

	ust_blobfs_open(bft_fs, &bft_ctx, ino, O_RDONLY, bft_open_cb, bft_begin());
	bft_finish();
	expect(bft_r.rc, READ_ERRS, "open");
	if (bft_r.rc != 0) {
		return bft_r.rc;
	}
	fh = bft_r.fh;
	n = bft_pread(fh, buf, READ_CAP, 0);
	expect(n, READ_ERRS, "read");
	*got = n;
	if (size > READ_CAP && n >= 0) {
		/* an absurd size: the far end reads (zeros or an error), nothing is allocated */
		int64_t m = bft_pread(fh, buf + READ_CAP, 4096, size - 4096);

		expect(m, READ_ERRS, "read at the end");
	}
	assert_int_equal(bft_release(fh), 0);
	return n < 0 ? (int)n : 0;
}

static uint8_t g_buf[READ_CAP + 4096];

/* Reference inodes the test itself changed since the copy was made. */
static uint64_t g_changed[8];
static int g_nchanged;

/* The reference object of an inode neither damaged nor changed, NULL if none. */
static struct obj *intact_obj(uint64_t ino)
{
	int k;

	if (ino == g_damaged) {
		return NULL;
	}
	for (k = 0; k < g_nchanged; k++) {
		if (g_changed[k] == ino) {
			return NULL;
		}
	}
	return obj_by_ino(ino);
}

/* The reference content of an undamaged inode, wherever the walk met it. */
static void check_content(uint64_t ino, const struct ust_blobfs_attr *a, const char *path)
{
	struct obj *o = intact_obj(ino);
	int64_t got = 0;
	int rc;

	if (S_ISREG(a->mode)) {
		rc = read_file(ino, a->size, g_buf, &got);
		if (o == NULL || o->kind != O_FILE) {
			return;
		}
		same(rc == 0 && a->size == o->size && got == o->size && pattern_ok(g_buf, o->size, o->seed),
		     "data", path);
	} else if (S_ISLNK(a->mode)) {
		char t[5000];
		int64_t n;

		ust_blobfs_readlink(bft_fs, &bft_ctx, ino, t, sizeof(t), bft_size_cb, bft_begin());
		bft_finish();
		n = bft_r.rc < 0 ? bft_r.rc : bft_r.n;
		expect(n, READ_ERRS, "readlink");
		if (o == NULL || o->kind != O_LINK) {
			return;
		}
		same(n == (int64_t)strlen(o->target) && memcmp(t, o->target, (size_t)n) == 0, "link", path);
	} else if (o != NULL) {
		same((o->kind == O_DIR && S_ISDIR(a->mode)) || (o->kind == O_FIFO && S_ISFIFO(a->mode)), "type", path);
	}
}

static void check_xattrs(uint64_t ino, const char *path)
{
	static char list[70000];
	static uint8_t val[65536];
	struct obj *o = intact_obj(ino);
	int64_t n, m;
	size_t off;
	bool k1 = false, k2 = false;

	ust_blobfs_listxattr(bft_fs, &bft_ctx, ino, list, sizeof(list), bft_size_cb, bft_begin());
	bft_finish();
	n = bft_r.rc < 0 ? bft_r.rc : bft_r.n;
	expect(n, READ_ERRS, "listxattr");
	for (off = 0; n > 0 && off < (size_t)n; off += strlen(list + off) + 1) {
		ust_blobfs_getxattr(bft_fs, &bft_ctx, ino, list + off, val, sizeof(val), bft_size_cb, bft_begin());
		bft_finish();
		m = bft_r.rc < 0 ? bft_r.rc : bft_r.n;
		expect(m, READ_ERRS, "getxattr");
		if (strcmp(list + off, "user.k1") == 0) {
			k1 = m == 2 && memcmp(val, "v1", 2) == 0;
		}
		if (strcmp(list + off, "user.k2") == 0) {
			k2 = m == sizeof(XA2) && memcmp(val, XA2, sizeof(XA2)) == 0;
		}
	}
	if (o != NULL && o->xattrs && o->kind == O_FILE) {
		same(n > 0 && k1 && k2, "xattrs", path);
	}
}

struct walk {
	uint64_t seen[256];
	int nseen;
};

static bool walk_seen(struct walk *w, uint64_t ino)
{
	int i;

	for (i = 0; i < w->nseen; i++) {
		if (w->seen[i] == ino) {
			return true;
		}
	}
	assert_true(w->nseen < 256);
	w->seen[w->nseen++] = ino;
	return false;
}

/* Every name below dir: looked up, stat'ed, read; directories once each (a damaged tree may loop). */
static void walk_dir(struct walk *w, uint64_t dir, const char *path, int depth)
{
	struct names *l = malloc(sizeof(*l));
	char sub[MAX_PATH + 260];
	int i;

	assert_non_null(l);
	assert_true(depth < 64);
	if (read_dir(dir, l, rnd_below(2)) == 0) {
		for (i = 0; i < l->n; i++) {
			struct ust_blobfs_attr a;
			uint64_t ino;
			int rc;

			if (strcmp(l->name[i], ".") == 0 || strcmp(l->name[i], "..") == 0) {
				continue;
			}
			snprintf(sub, sizeof(sub), "%s/%s", path, l->name[i]);
			rc = bft_lookup(dir, l->name[i], &ino);
			expect(rc, READ_ERRS, "lookup");
			if (rc != 0) {
				continue;
			}
			a = bft_r.e.attr;
			rc = bft_getattr(ino, NULL);
			expect(rc, READ_ERRS, "getattr");
			check_xattrs(ino, sub);
			if (S_ISDIR(a.mode)) {
				if (!walk_seen(w, ino)) {
					walk_dir(w, ino, sub, depth + 1);
				}
				continue;
			}
			check_content(ino, &a, sub);
		}
	}
	/* the parent: a damaged ref may name anything */
	expect(bft_lookup(dir, "..", NULL), READ_ERRS, "lookup ..");
	free(l);
}

/* Is an inode on the way to o (o included) the damaged one? */
static bool path_damaged(const struct obj *o)
{
	char part[MAX_PATH], *save, *tok;
	uint64_t dir = BFT_ROOT;
	char built[MAX_PATH] = "";

	if (g_global || g_damaged == BFT_ROOT) {
		return true;
	}
	memcpy(part, o->path, sizeof(part));
	for (tok = strtok_r(part, "/", &save); tok != NULL; tok = strtok_r(NULL, "/", &save)) {
		int i;

		if (dir == g_damaged) {
			return true;
		}
		snprintf(built + strlen(built), sizeof(built) - strlen(built), "%s%s", built[0] ? "/" : "", tok);
		for (i = 0; i < g_nobj && strcmp(g_objs[i].path, built) != 0; i++) {
		}
		assert_true(i < g_nobj);
		dir = g_objs[i].ino;
	}
	return dir == g_damaged;
}

/* Resolve o's path by lookups: its inode, or an error. */
static int resolve(const struct obj *o, uint64_t *ino, struct ust_blobfs_attr *a)
{
	char part[MAX_PATH], *save, *tok;
	uint64_t dir = BFT_ROOT;
	int rc;

	memcpy(part, o->path, sizeof(part));
	if (bft_getattr(BFT_ROOT, a) != 0) {
		return bft_r.rc;
	}
	for (tok = strtok_r(part, "/", &save); tok != NULL; tok = strtok_r(NULL, "/", &save)) {
		rc = bft_lookup(dir, tok, &dir);
		if (rc != 0) {
			return rc;
		}
		*a = bft_r.e.attr;
	}
	*ino = dir;
	return 0;
}

/* Every reference object the damage cannot reach is where it was, with its content. */
static void check_unreached(void)
{
	int i;

	for (i = 0; i < g_nobj; i++) {
		struct obj *o = &g_objs[i];
		struct ust_blobfs_attr a;
		uint64_t ino = 0;

		if (path_damaged(o) || intact_obj(o->ino) == NULL) {
			continue;
		}
		same(resolve(o, &ino, &a) == 0 && ino == o->ino, "path", o->path);
		check_content(ino, &a, o->path);
		if (o->xattrs) {
			check_xattrs(ino, o->path);
		}
	}
}

/* ---- changing it -------------------------------------------------------------------------------- */

/* A reference object's inode and parent as the damaged tree resolves them; false if it does not. */
static bool resolve_parent(const struct obj *o, uint64_t *parent, const char **name)
{
	struct obj *p = obj_by_ino(o->parent);
	struct ust_blobfs_attr a;
	uint64_t ino = BFT_ROOT;

	if (p == NULL || (p->path[0] != '\0' && resolve(p, &ino, &a) != 0)) {
		return false;
	}
	*parent = ino;
	*name = strrchr(o->path, '/') != NULL ? strrchr(o->path, '/') + 1 : o->path;
	return true;
}

struct changes {
	uint64_t moved_dir; /* zz_moved's directory (0: the rename failed) */
	bool created;
};

static void make_changes(struct changes *c)
{
	struct ust_blobfs_file *fh;
	struct obj *d = pick_obj(O_DIR), *f;
	struct ust_blobfs_attr a;
	uint8_t buf[5000], back[5000];
	uint64_t dino = BFT_ROOT, parent, ino;
	const char *name;
	int rc;

	memset(c, 0, sizeof(*c));
	bft_fill(buf, sizeof(buf), 77);
	rc = bft_create(BFT_ROOT, "zz_new", &fh, &ino);
	expect(rc, CHANGE_ERRS, "create");
	if (rc == 0) {
		int64_t n = bft_pwrite(fh, buf, sizeof(buf), 0);

		expect(n, CHANGE_ERRS, "write");
		if (n == sizeof(buf)) {
			assert_int_equal(bft_pread(fh, back, sizeof(back), 0), sizeof(back));
			assert_memory_equal(back, buf, sizeof(buf));
			expect(bft_fsync(fh), CHANGE_ERRS, "fsync");
			c->created = true;
		}
		assert_int_equal(bft_release(fh), 0);
	}
	if (d->path[0] != '\0') {
		if (resolve(d, &dino, &a) != 0 || !S_ISDIR(a.mode)) {
			dino = 0;
		}
	}
	if (dino != 0) {
		expect(bft_mkdir(dino, "zz_dir", NULL), CHANGE_ERRS, "mkdir");
		if (c->created) {
			rc = bft_rename(BFT_ROOT, "zz_new", dino, "zz_moved", 0);
			expect(rc, CHANGE_ERRS, "rename");
			c->moved_dir = rc == 0 ? dino : 0;
		}
	}
	if (!c->created && c->moved_dir == 0) {
		c->created = false;
	}
	/* an unlink and an append on reference files: they leave the reference */
	f = pick_obj(rnd_below(2) ? O_FILE : -1);
	if (f->path[0] != '\0' && resolve_parent(f, &parent, &name)) {
		g_changed[g_nchanged++] = f->ino;
		if (bft_lookup(parent, name, &ino) == 0) {
			g_changed[g_nchanged++] = ino;
		}
		if (f->kind == O_DIR) {
			expect(bft_rmdir(parent, name), CHANGE_ERRS, "rmdir");
		} else {
			expect(bft_unlink(parent, name), CHANGE_ERRS, "unlink");
		}
	}
	/* by the numbers lookups give, as FUSE calls them */
	f = pick_obj(O_FILE);
	g_changed[g_nchanged++] = f->ino;
	if (resolve(f, &ino, &a) == 0) {
		g_changed[g_nchanged++] = ino; /* a damaged entry may name another file */
		rc = bft_open(ino, O_WRONLY, &fh);
		expect(rc, CHANGE_ERRS, "open for write");
		if (rc == 0) {
			expect(bft_pwrite(fh, buf, 100, f->size), CHANGE_ERRS, "append");
			assert_int_equal(bft_release(fh), 0);
		}
	}
	f = pick_obj(-1);
	g_changed[g_nchanged++] = f->ino;
	if (resolve(f, &ino, &a) == 0) {
		g_changed[g_nchanged++] = ino;
		expect(set_xattr(ino, "user.new", "n", 1), CHANGE_ERRS, "setxattr");
	}
}

static void check_changes(const struct changes *c)
{
	uint8_t buf[5000], back[5000];
	struct ust_blobfs_file *fh;
	uint64_t ino;

	if (c->moved_dir == 0 || g_global) {
		return;
	}
	/* what was written and fsynced before the unmount is there */
	bft_fill(buf, sizeof(buf), 77);
	assert_int_equal(bft_lookup(c->moved_dir, "zz_moved", &ino), 0);
	assert_int_equal(bft_open(ino, O_RDONLY, &fh), 0);
	assert_int_equal(bft_pread(fh, back, sizeof(back), 0), sizeof(back));
	assert_memory_equal(back, buf, sizeof(buf));
	assert_int_equal(bft_release(fh), 0);
}

/* ---- one damaged copy ---------------------------------------------------------------------------- */

static int mount_m1(void)
{
	ust_blobfs_mount("M1", NULL, bft_fs_cb, bft_begin());
	bft_finish();
	expect(bft_r.rc, MOUNT_ERRS, "mount");
	if (bft_r.rc == 0) {
		bft_fs = bft_r.fs;
	}
	return bft_r.rc;
}

static int g_mounted, g_refused;
static bool g_verbose; /* BFT_CORRUPT_VERBOSE: print each damage before it is mounted */

static void run_damaged(void)
{
	struct changes c;
	struct walk w = {0};
	uint64_t free_now;

	g_nchanged = 0;
	damage_copy();
	if (g_verbose) {
		print_message("iteration %d: %s\n", g_iter, g_desc);
	}
	if (mount_m1() != 0) {
		g_refused++;
		return;
	}
	g_mounted++;
	walk_seen(&w, BFT_ROOT);
	walk_dir(&w, BFT_ROOT, "", 0);
	check_unreached();
	/* reading a damaged tree allocates nothing (replay may write blocks it already has) */
	free_now = bft_free_clusters();
	if (free_now + 2 < g_free_ref) {
		print_error("iteration %d, damage \"%s\": %" PRIu64 " clusters free, %" PRIu64 " before\n",
			    g_iter, g_desc, free_now, g_free_ref);
		fail();
	}
	make_changes(&c);
	assert_int_equal(bft_unmount(), 0);
	/* a damaged image that mounted once mounts again, and the change made stays */
	assert_int_equal(mount_m1(), 0);
	check_unreached();
	check_changes(&c);
	memset(&w, 0, sizeof(w));
	walk_seen(&w, BFT_ROOT);
	walk_dir(&w, BFT_ROOT, "", 0);
	assert_int_equal(bft_unmount(), 0);
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? strtoull(v, NULL, 0) : def;
}

/* The reference tree on M0, its raw copy in g_base, and the ids the damages need. */
static struct ust_blobfs *g_live;           /* the reference file system on M0 */
static struct ust_blobfs_file *g_orphan;    /* its open unlinked file */

static struct ust_blobfs_file *setup_reference(void)
{
	struct ust_blobfs_file *orphan;
	struct ust_blob *b;
	struct bfs_disk_super s;
	struct ust_blobfs *live = bft_fs;
	struct walk w = {0};

	g_live = live;
	build_reference(&orphan);
	g_orphan = orphan;
	g_base = ust_dma_malloc(BFT_BDEV_BYTES, 4096);
	assert_non_null(g_base);
	bft_raw_io("M0", false, g_base, BFT_BDEV_BYTES);
	assert_int_equal(bft_make_malloc("M1"), 0);
	bft_raw_io("M1", true, g_base, BFT_BDEV_BYTES);
	bfd_store_open("M1");
	g_super_id = ust_bs_get_super(bfd_bs);
	b = blob_open(g_super_id);
	assert_int_equal(bfd_xa_get(b, BFS_XA_SUPER, (uint8_t *)&s, sizeof(s)), sizeof(s));
	g_root_id = s.root_ino;
	/* the copy has what the damages work on: a pending intent and an orphan */
	assert_true(bfd_xa_get(b, BFS_XA_INTENT, g_buf, sizeof(g_buf)) > 0);
	assert_int_equal(bfd_xa_get(b, BFS_XA_ORPHANS, g_buf, sizeof(g_buf)), 8);
	bfd_blob_commit(b);
	bfd_store_close();
	/* undamaged, the copy reads back exactly: the checks below can tell */
	bft_fs = live;
	snprintf(g_desc, sizeof(g_desc), "none");
	assert_int_equal(mount_m1(), 0);
	walk_seen(&w, BFT_ROOT);
	walk_dir(&w, BFT_ROOT, "", 0);
	check_unreached();
	g_free_ref = bft_free_clusters();
	assert_int_equal(bft_unmount(), 0);
	bft_fs = live;
	return orphan;
}

static void test_damaged_images(void **state)
{
	struct ust_blobfs *live = bft_fs;
	struct ust_blobfs_file *orphan;
	uint64_t seed = env_u64("BFT_CORRUPT_SEED", 0x5eed2026), iters = env_u64("BFT_CORRUPT_ITERS", 160);

	(void)state;
	g_verbose = env_u64("BFT_CORRUPT_VERBOSE", 0) != 0;
	print_message("blobfs_corrupt: seed 0x%" PRIx64 ", %" PRIu64 " damaged copies "
		      "(BFT_CORRUPT_SEED, BFT_CORRUPT_ITERS)\n", seed, iters);
	g_rng = seed != 0 ? seed : 1;
	g_mounted = g_refused = 0;
	orphan = setup_reference();
	for (g_iter = 0; g_iter < (int)iters; g_iter++) {
		run_damaged();
		bft_fs = live;
	}
	print_message("blobfs_corrupt: %d copies mounted, %d refused\n", g_mounted, g_refused);
	/* both outcomes happen: the checks above ran on served trees too */
	assert_true(g_mounted > 0 && g_refused > 0);
	g_orphan = NULL;
	assert_int_equal(bft_release(orphan), 0);
	ust_dma_free(g_base);
	g_base = NULL;
}

/* ---- chosen damages: the errno each one gets ----------------------------------------------------- */

static struct obj *obj_at(const char *path)
{
	int i;

	for (i = 0; i < g_nobj; i++) {
		if (strcmp(g_objs[i].path, path) == 0) {
			return &g_objs[i];
		}
	}
	fail();
	return NULL;
}

/* The super blob of the copy being damaged: field root_ino (or seq, op...) set by f. */
static void set_super_root(uint64_t root)
{
	struct ust_blob *b = blob_open(g_super_id);
	struct bfs_disk_super sb;

	assert_int_equal(bfd_xa_get(b, BFS_XA_SUPER, (uint8_t *)&sb, sizeof(sb)), sizeof(sb));
	sb.root_ino = root;
	bfd_xa_set(b, BFS_XA_SUPER, &sb, sizeof(sb));
	bfd_blob_commit(b);
	g_global = true;
}

/* The damaged copy mounts with rc (0: serves, and every path it cannot reach is intact). */
static void expect_mount(int rc)
{
	bfd_store_close();
	ust_blobfs_mount("M1", NULL, bft_fs_cb, bft_begin());
	bft_finish();
	if (bft_r.rc != rc) {
		print_error("damage \"%s\": mount %d, expected %d\n", g_desc, bft_r.rc, rc);
	}
	assert_int_equal(bft_r.rc, rc);
	if (rc == 0) {
		bft_fs = bft_r.fs;
		check_unreached();
	}
}

static void remount_intact(struct ust_blobfs *live)
{
	assert_int_equal(bft_unmount(), 0);
	assert_int_equal(mount_m1(), 0);
	check_unreached();
	assert_int_equal(bft_unmount(), 0);
	bft_fs = live;
}

static void test_chosen_damages(void **state)
{
	struct ust_blobfs *live = bft_fs;
	struct ust_blobfs_file *orphan, *fh;
	struct names *l = malloc(sizeof(*l));
	struct ust_blobfs_attr a;
	uint64_t ino;
	int what;

	(void)state;
	assert_non_null(l);
	g_rng = 0x5eed;
	orphan = setup_reference();

	/* orphans naming the super blob, or 8000 times a linked file: served, nothing lost */
	fresh_copy();
	damage_orphans(0);
	expect_mount(0);
	remount_intact(live);
	fresh_copy();
	damage_orphans(6);
	expect_mount(0);
	remount_intact(live);
	/*
	 * The orphan's own inode unreadable: the tree is served all the same,
	 * and the orphan stays listed (with its space) through two mounts.
	 */
	fresh_copy();
	{
		uint64_t listed[2], orph;

		assert_int_equal(read_orphans(listed, 2), 1);
		orph = listed[0];
		damage_orphan_inode(2);
		expect_mount(0);
		remount_intact(live);
		bfd_store_open("M1");
		assert_int_equal(read_orphans(listed, 2), 1);
		assert_int_equal(listed[0], orph);
		bfd_store_close();
	}

	/* a file of big without its inode: big still lists all, the name reads EIO */
	fresh_copy();
	{
		char path[MAX_PATH] = "big/";

		big_name(path + 4, 7);
		damage_inode(15, obj_at(path));
	}
	expect_mount(0);
	assert_int_equal(read_dir(obj_at("big")->ino, l, true), 0);
	assert_int_equal(l->n, 2 + BIG_N);
	{
		char name[256];

		big_name(name, 7);
		assert_int_equal(bft_lookup(obj_at("big")->ino, name, NULL), -EIO);
	}
	assert_int_equal(bft_unmount(), 0);
	bft_fs = live;

	/* entries naming no blob, a blob that is no inode, "." and the directory itself */
	for (what = 3; what <= 8; what += (what == 5 ? 3 : 1)) {
		fresh_copy();
		damage_dblock(true, what, obj_at("d1/d2"));
		expect_mount(0);
		assert_int_equal(bft_lookup(obj_at("d1/d2")->ino, "deep", NULL), what == 8 ? -EIO : -EIO);
		assert_int_equal(bft_unmount(), 0);
		bft_fs = live;
	}
	fresh_copy();
	damage_dblock(true, 1, obj_at("d1/d2")); /* the entry names its own directory */
	expect_mount(0);
	assert_int_equal(bft_lookup(obj_at("d1/d2")->ino, "deep", NULL), -EIO);
	assert_int_equal(bft_unmount(), 0);
	bft_fs = live;

	/* a short blobfs.inode is damage, not a stale number: EIO by name and by number */
	fresh_copy();
	damage_inode(0, obj_at("f_a"));
	expect_mount(0);
	assert_int_equal(bft_lookup(BFT_ROOT, "f_a", NULL), -EIO);
	assert_int_equal(bft_open(obj_at("f_a")->ino, O_RDONLY, &fh), -EIO);
	assert_int_equal(bft_unlink(BFT_ROOT, "f_a"), -EIO);
	assert_int_equal(bft_unmount(), 0);
	bft_fs = live;

	/* "deep" is no blobfs inode at all: its unlink is EIO; d1's ref names no blob: ".." is EIO */
	fresh_copy();
	damage_inode(15, obj_at("d1/d2/deep"));
	expect_mount(0);
	assert_int_equal(bft_unlink(obj_at("d1/d2")->ino, "deep"), -EIO);
	assert_int_equal(bft_unmount(), 0);
	bft_fs = live;
	fresh_copy();
	damage_refs(5, obj_at("d1"));
	expect_mount(0);
	assert_int_equal(bft_lookup(obj_at("d1")->ino, "..", NULL), -EIO);
	assert_int_equal(bft_unmount(), 0);
	bft_fs = live;

	/*
	 * f_b (two names) without refs: reading it and closing it keeps it,
	 * unlinking one name is EIO (its other name would lose its data)
	 */
	fresh_copy();
	damage_refs(0, obj_at("f_b"));
	expect_mount(0);
	assert_int_equal(bft_lookup(BFT_ROOT, "f_b", &ino), 0);
	check_content(ino, &bft_r.e.attr, "f_b");
	assert_int_equal(bft_unlink(BFT_ROOT, "f_b"), -EIO);
	assert_int_equal(bft_unlink(obj_at("d1")->ino, "hl"), -EIO);
	g_damaged = 0; /* its data is undamaged: check_unreached reads it again */
	remount_intact(live);

	/* the renamed file of the pending intent is no blobfs inode: its replay fails, EIO */
	fresh_copy();
	damage_inode(15, obj_at("d1/f_c2"));
	expect_mount(-EIO);

	/* a super blob whose root is a subdirectory, or no blob: no mount */
	fresh_copy();
	set_super_root(real_id(obj_at("d1")->ino));
	expect_mount(-EIO);
	fresh_copy();
	set_super_root((0x7fffull << 32) | 5);
	expect_mount(-EIO);
	fresh_copy();
	set_super_root(g_super_id);
	expect_mount(-EIO);

	/* intents no change makes: an unknown op, an old seq, the root moved, a foreign record */
	for (what = 0; what <= 18; what++) {
		if (what == 1 || what == 3 || what == 6 || what == 11 || what == 12 || what == 13 ||
		    what == 17) {
			continue; /* damages that can still describe a possible change */
		}
		fresh_copy();
		damage_intent(what);
		expect_mount(-EIO);
	}
	{
		/* the rename intent moving the root instead of the file */
		struct ust_blob *b;
		static uint8_t v[BFS_INTENT_MAX_BYTES];
		int len;

		fresh_copy();
		b = blob_open(g_super_id);
		len = bfd_xa_get(b, BFS_XA_INTENT, v, sizeof(v));
		((struct bfs_disk_intent *)v)->ino1 = g_root_id;
		bfd_xa_set(b, BFS_XA_INTENT, v, (size_t)len);
		bfd_blob_commit(b);
		g_global = true;
		expect_mount(-EIO);
		/* moving a directory that was never at the intent's name: two names for it */
		fresh_copy();
		b = blob_open(g_super_id);
		len = bfd_xa_get(b, BFS_XA_INTENT, v, sizeof(v));
		((struct bfs_disk_intent *)v)->ino1 = real_id(obj_at("big")->ino);
		bfd_xa_set(b, BFS_XA_INTENT, v, (size_t)len);
		bfd_blob_commit(b);
		g_global = true;
		expect_mount(-EIO);
	}

	/*
	 * A size past the blob (2^62): the inode reads as EIO; reading,
	 * writing and truncating it allocate nothing, other files are intact.
	 */
	fresh_copy();
	damage_inode(6, obj_at("f_a"));
	expect_mount(0);
	assert_int_equal(bft_lookup(BFT_ROOT, "f_a", NULL), -EIO);
	assert_int_equal(bft_open(obj_at("f_a")->ino, O_RDWR | O_APPEND, &fh), -EIO);
	assert_int_equal(bft_truncate(obj_at("f_a")->ino, 1), -EIO);
	assert_int_equal(bft_getattr(obj_at("f_a")->ino, &a), -EIO);
	assert_int_equal(bft_free_clusters(), g_free_ref);
	/* a directory block damaged: a create there fails, allocating nothing */
	remount_intact(live);
	fresh_copy();
	/* (d1 would not do: the pending intent's pre-image restores it) */
	damage_dblock(true, 13, obj_at("d1/d2")); /* dir_ino of another directory */
	expect_mount(0);
	assert_int_equal(bft_create(obj_at("d1/d2")->ino, "new", &fh, &ino), -EIO);
	assert_int_equal(bft_lookup(obj_at("d1/d2")->ino, "deep", NULL), -EIO);
	assert_int_equal(bft_unlink(obj_at("d1/d2")->ino, "deep"), -EIO);
	assert_int_equal(bft_free_clusters(), g_free_ref);
	remount_intact(live);

	g_orphan = NULL;
	assert_int_equal(bft_release(orphan), 0);
	ust_dma_free(g_base);
	g_base = NULL;
	free(l);
}

/*
 * Tear-down after a failed assertion too: the damaging store hold and a
 * mounted copy go before the fixture drops the bdevs, so that the next
 * test can start.
 */
static int corrupt_teardown(void **state)
{
	struct ust_blobfs *live = g_live;

	bfd_store_drop();
	if (bft_fs != NULL && bft_fs != live) {
		bft_unmount();
	}
	bft_fs = live;
	g_live = NULL;
	if (g_orphan != NULL && bft_fs != NULL) {
		ust_blobfs_release(bft_fs, g_orphan, bft_op_cb, bft_begin());
		ut_threads_poll();
	}
	g_orphan = NULL;
	if (g_base != NULL) {
		ust_dma_free(g_base);
		g_base = NULL;
	}
	return bft_drop_fs(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_chosen_damages, bft_make_fs, corrupt_teardown),
		cmocka_unit_test_setup_teardown(test_damaged_images, bft_make_fs, corrupt_teardown),
	};

	return cmocka_run_group_tests(tests, bft_group_setup, bft_group_teardown);
}
