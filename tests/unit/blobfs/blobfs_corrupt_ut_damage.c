/*
 * blobfs_corrupt_ut, part two: the reference tree it damages copies of,
 * and the damages themselves, each made through the blobstore of a fresh
 * raw copy (tests/unit/lib/blobfs_damage.c) and resealed with correct
 * checksums, so that only blobfs's own checks can find it. The test and
 * what it asserts are described in blobfs_corrupt_ut.c.
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

#include "blobfs_corrupt_ut.h"

/* ---- PRNG ------------------------------------------------------------------------------------ */

uint64_t g_rng;

static uint64_t rnd(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return g_rng;
}

uint32_t rnd_below(uint32_t n)
{
	return n == 0 ? 0 : (uint32_t)(rnd() % n);
}

/* ---- the reference tree ------------------------------------------------------------------------ */

struct obj g_objs[MAX_OBJS];
int g_nobj;
uint64_t g_root_id;   /* the root's blob id (reported as inode 1) */
uint64_t g_super_id;  /* the super blob's id */
uint64_t g_free_ref;  /* free clusters of the undamaged copy, mounted */
uint8_t *g_base;      /* the undamaged raw image */
char g_desc[1024];     /* the damage of this iteration */
int g_iter;

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

struct obj *obj_by_ino(uint64_t ino)
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

int set_xattr(uint64_t ino, const char *name, const void *v, size_t len)
{
	ust_blobfs_setxattr(bft_fs, &bft_ctx, ino, name, v, len, 0, bft_op_cb, bft_begin());
	bft_finish();
	return bft_r.rc;
}

void big_name(char *buf, int k)
{
	memset(buf, 'x', 240);
	snprintf(buf, 16, "n%02d_", k);
	buf[4] = 'x';
	buf[240] = '\0';
}

/* The tree, on bft_fs; the last change (a rename) leaves its intent in the super blob. */
void build_reference(struct ust_blobfs_file **orphan)
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

uint64_t real_id(uint64_t ino)
{
	return ino == BFT_ROOT ? g_root_id : ino;
}

struct ust_blob *blob_open(uint64_t ino)
{
	return bfd_blob_open(real_id(ino));
}

/* ---- damages ------------------------------------------------------------------------------------- */

/* What one damage may reach: all (super blob, intents, orphans), or one inode or directory. */
bool g_global;
uint64_t g_damaged;

struct obj *pick_obj(int kind)
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
void damage_dblock(bool targeted, int what, struct obj *d)
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

void damage_inode(int what, struct obj *o)
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

void damage_refs(int what, struct obj *o)
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

void damage_intent(int what)
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

void damage_orphans(int what)
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
void fresh_copy(void)
{
	bft_raw_io("M1", true, g_base, BFT_BDEV_BYTES);
	g_global = false;
	g_damaged = 0;
	snprintf(g_desc, sizeof(g_desc), "none");
	bfd_store_open("M1");
}

/* The orphan list of the copy on M1 (its store held by bfd_store_open): how many, the first max in v. */
int read_orphans(uint64_t *v, size_t max)
{
	struct ust_blob *b = blob_open(g_super_id);
	int len = bfd_xa_get(b, BFS_XA_ORPHANS, (uint8_t *)v, max * sizeof(*v));

	bfd_blob_commit(b);
	return len < 0 ? 0 : len / (int)sizeof(*v);
}

/* The inode of the listed orphan (the reference's open unlinked file), damaged at random. */
void damage_orphan_inode(int what)
{
	struct obj o = {.kind = O_FILE};
	uint64_t listed[2];

	assert_int_equal(read_orphans(listed, 2), 1);
	o.ino = listed[0];
	snprintf(o.path, sizeof(o.path), "(the orphan)");
	damage_inode(what, &o);
}

/* A fresh copy of the reference image on M1, damaged once at random. */
void damage_copy(void)
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

