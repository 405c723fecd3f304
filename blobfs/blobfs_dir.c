/*
 * blobfs directory blocks (docs/blobfs-format.md 4.2 and 5.2): a directory's
 * entries are an extendible hash of 4096-byte blocks in the data of its thin
 * blob, every block at the index its key suffix names. This file loads and
 * validates the blocks, keeps them cached (read once at the directory's first
 * use, written through by the namespace engine), finds, adds and removes
 * entries (splitting full buckets), walks entries in cookie order for
 * readdir, and makes and restores the pre-image records an intent carries.
 *
 * Guarantees: an add that could not fit is refused by bfs_dir_can_add()
 * before anything changes; a change touches only blocks inside the key range
 * of the bucket that held (or would hold) the name, so that bucket's
 * pre-image restores all it touched; cookies never change while their entry
 * exists; an invalid (torn) block is kept as such and never read as entries.
 * Runs on the metadata thread only; changes the cache, the caller writes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <dirent.h>

#include <xxhash.h>
/*
 * XXH3 through libxxhash's dispatcher: the same hashes, with the widest
 * vector unit the CPU has (AVX2 hashes a 4 KiB page 2.5 times as fast as
 * the baseline SSE2 build); every metadata write hashes several pages.
 */
#include <xxh_x86dispatch.h>

#include "ustor/env.h"
#include "ustor/log.h"

#include "blobfs_internal.h"

#define DENT_SIZE(len) (sizeof(struct bfs_disk_dentry) + (len))
#define LOAD_CHUNK 64u /* blocks read per I/O at load */

uint64_t bfs_dir_new_seed(void)
{
	uint64_t seed = 0;
	struct timespec ts;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = ((uint64_t)ts.tv_sec * 1000000007ull) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)&ts;
	}
	return seed;
}

static uint32_t dir_key(const struct bfs_inode *dp, const char *name, size_t len)
{
	return (uint32_t)(XXH3_64bits_withSeed(name, len, dp->dir_seed) & 0x7fffffffu);
}

static uint32_t rev31(uint32_t k)
{
	uint32_t r = 0;
	int i;

	for (i = 0; i < 31; i++) {
		r = (r << 1) | ((k >> i) & 1u);
	}
	return r;
}

static uint64_t cookie_base(uint32_t key)
{
	return (uint64_t)rev31(key) << 32;
}

static uint32_t low_mask(unsigned d)
{
	return d >= 32 ? 0xffffffffu : (1u << d) - 1u;
}

static void block_free(struct bfs_dblock *b)
{
	uint32_t i;

	if (b == NULL) {
		return;
	}
	for (i = 0; i < b->nents; i++) {
		free(b->ents[i]);
	}
	free(b->ents);
	free(b);
}

void bfs_dir_free(struct bfs_inode *dp)
{
	uint32_t i;

	for (i = 0; i < dp->nblocks; i++) {
		block_free(dp->blocks[i]);
	}
	free(dp->blocks);
	dp->blocks = NULL;
	dp->nblocks = 0;
	dp->max_depth = 0;
	dp->nents = 0;
	dp->nsubdirs = 0;
	if (dp->dload_buf != NULL) {
		ust_dma_free(dp->dload_buf);
		dp->dload_buf = NULL;
	}
}

/* Make blocks[] hold index n. */
static int ensure_slots(struct bfs_inode *dp, uint32_t n)
{
	uint32_t cap = dp->nblocks == 0 ? 1 : dp->nblocks;
	struct bfs_dblock **b;

	if (n < dp->nblocks) {
		return 0;
	}
	while (cap <= n) {
		cap *= 2;
	}
	b = realloc(dp->blocks, cap * sizeof(*b));
	if (b == NULL) {
		return -ENOMEM;
	}
	memset(b + dp->nblocks, 0, (cap - dp->nblocks) * sizeof(*b));
	dp->blocks = b;
	dp->nblocks = cap;
	return 0;
}

static bool any_block(const struct bfs_inode *dp)
{
	uint32_t i;

	for (i = 0; i < dp->nblocks; i++) {
		if (dp->blocks[i] != NULL) {
			return true;
		}
	}
	return false;
}

/* The bucket of key (an invalid block in its place counts), NULL if none. */
static struct bfs_dblock *dir_bucket(const struct bfs_inode *dp, uint32_t key)
{
	int d;

	for (d = dp->max_depth; d >= 0; d--) {
		uint32_t i = key & low_mask((unsigned)d);
		struct bfs_dblock *b = i < dp->nblocks ? dp->blocks[i] : NULL;

		if (b != NULL && (b->bad || b->depth == d)) {
			return b;
		}
	}
	return NULL;
}

/* Position of the first entry with cookie >= c. */
static uint32_t block_seek(const struct bfs_dblock *b, uint64_t c)
{
	uint32_t lo = 0, hi = b->nents, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (b->ents[mid]->cookie < c) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

static int block_insert(struct bfs_dblock *b, struct bfs_dirent *de)
{
	uint32_t pos;

	if (b->nents == b->cap) {
		uint32_t cap = b->cap == 0 ? 16 : b->cap * 2;
		struct bfs_dirent **e = realloc(b->ents, cap * sizeof(*e));

		if (e == NULL) {
			return -ENOMEM;
		}
		b->ents = e;
		b->cap = cap;
	}
	pos = block_seek(b, de->cookie);
	memmove(&b->ents[pos + 1], &b->ents[pos], (b->nents - pos) * sizeof(*b->ents));
	b->ents[pos] = de;
	b->nents++;
	b->bytes += (uint32_t)DENT_SIZE(de->len);
	return 0;
}

/*
 * A cookie's upper half is its key's bit reversal (4.2), so in cookie
 * order every entry of one key sits in one run: a binary search finds the
 * run, and only the run's entries (collisions) are compared by name.
 */
static struct bfs_dirent *block_find(const struct bfs_dblock *b, uint32_t key, const char *name,
				     size_t len, uint32_t *pos)
{
	uint64_t base = cookie_base(key);
	uint32_t i;

	for (i = block_seek(b, base); i < b->nents && (b->ents[i]->cookie >> 32) == (base >> 32); i++) {
		struct bfs_dirent *de = b->ents[i];

		if (de->key == key && de->len == len && memcmp(de->name, name, len) == 0) {
			if (pos != NULL) {
				*pos = i;
			}
			return de;
		}
	}
	return NULL;
}

struct bfs_dirent *bfs_dir_find(struct bfs_inode *dp, const char *name)
{
	size_t len = strlen(name);
	uint32_t key = dir_key(dp, name, len);
	struct bfs_dblock *b = dir_bucket(dp, key);

	if (b == NULL || b->bad) {
		return NULL;
	}
	return block_find(b, key, name, len, NULL);
}

int bfs_dir_miss(struct bfs_inode *dp, const char *name)
{
	struct bfs_dblock *b = dir_bucket(dp, dir_key(dp, name, strlen(name)));

	/* its bucket is invalid, or missing while others exist (a gap): unknown, not absent */
	if ((b != NULL && b->bad) || (b == NULL && any_block(dp))) {
		return -EIO;
	}
	return -ENOENT;
}

struct bfs_dirent *bfs_dir_next(struct bfs_inode *dp, uint64_t offset)
{
	uint64_t t = offset < 2 ? 3 : offset + 1;
	struct bfs_dblock *b;
	uint32_t rk, span, d, pos;
	uint64_t next;

	while (t < (1ull << 63)) {
		rk = (uint32_t)(t >> 32);
		b = dir_bucket(dp, rev31(rk));
		if (b == NULL) {
			return NULL;
		}
		if (!b->bad) {
			pos = block_seek(b, t);
			if (pos < b->nents) {
				return b->ents[pos];
			}
		}
		d = b->bad || b->depth > 31 ? dp->max_depth : b->depth;
		span = d >= 31 ? 1u : 1u << (31 - d);
		next = (uint64_t)(rk & ~(span - 1)) + span;
		t = next << 32;
	}
	return NULL;
}

/* Appends index i to w once. */
static int add_w(uint32_t *w, int *nw, uint32_t i)
{
	int k;

	for (k = 0; k < *nw; k++) {
		if (w[k] == i) {
			return 0;
		}
	}
	if (*nw >= BFS_DIR_MAX_WRITES) {
		return -EIO;
	}
	w[(*nw)++] = i;
	return 0;
}

int bfs_dir_can_add(struct bfs_inode *dp, const char *name)
{
	size_t len = strlen(name);
	uint32_t key = dir_key(dp, name, len), need = (uint32_t)DENT_SIZE(len), sum, i;
	struct bfs_dblock *b = dir_bucket(dp, key);
	unsigned d, s;

	if (b == NULL) {
		return any_block(dp) ? -EIO : 0;
	}
	if (b->bad) {
		return -EIO;
	}
	if (b->bytes + need <= BFS_DBLOCK_ROOM) {
		return 0;
	}
	/* the entries that would stay with the new one after s + 1 splits */
	for (s = 0; s < BFS_DIR_MAX_SPLITS; s++) {
		d = b->depth + s;
		if (d >= BFS_DIR_MAX_DEPTH) {
			return -ENOSPC;
		}
		sum = need;
		for (i = 0; i < b->nents; i++) {
			if ((b->ents[i]->key & low_mask(d + 1)) == (key & low_mask(d + 1))) {
				sum += (uint32_t)DENT_SIZE(b->ents[i]->len);
			}
		}
		if (sum <= BFS_DBLOCK_ROOM) {
			return 0;
		}
	}
	return -ENOSPC;
}

/* Split bucket b: entries with key bit depth set move to the new block. */
static int split(struct bfs_inode *dp, struct bfs_dblock *b, struct bfs_dblock **out)
{
	unsigned d = b->depth;
	uint32_t n = b->index + (1u << d), i, k = 0;
	struct bfs_dblock *nb;
	int rc;

	rc = ensure_slots(dp, n);
	if (rc != 0) {
		return rc;
	}
	if (dp->blocks[n] != NULL) {
		UST_ERRLOG("blobfs: directory 0x%" PRIx64 ": block %u is not free for a split\n", dp->ino, n);
		return -EIO;
	}
	nb = calloc(1, sizeof(*nb));
	if (nb == NULL) {
		return -ENOMEM;
	}
	nb->index = n;
	nb->depth = (uint8_t)(d + 1);
	for (i = 0; i < b->nents; i++) {
		struct bfs_dirent *de = b->ents[i];

		if ((de->key >> d) & 1u) {
			rc = block_insert(nb, de); /* in cookie order: appends */
			if (rc != 0) {
				/* undo: the moved ones are still in b */
				free(nb->ents);
				free(nb);
				return rc;
			}
		}
	}
	for (i = 0; i < b->nents; i++) {
		if (!((b->ents[i]->key >> d) & 1u)) {
			b->ents[k++] = b->ents[i];
		}
	}
	b->nents = k;
	b->bytes -= nb->bytes;
	b->depth = (uint8_t)(d + 1);
	dp->blocks[n] = nb;
	if (d + 1 > dp->max_depth) {
		dp->max_depth = (uint8_t)(d + 1);
	}
	*out = nb;
	return 0;
}

int bfs_dir_set(struct bfs_inode *dp, const char *name, uint64_t ino, uint8_t type, uint32_t *w,
		int *nw)
{
	size_t len = strlen(name);
	uint32_t key = dir_key(dp, name, len), need = (uint32_t)DENT_SIZE(len), c;
	struct bfs_dblock *b = dir_bucket(dp, key), *nb;
	struct bfs_dirent *de;
	int rc;

	if (b != NULL && b->bad) {
		return -EIO;
	}
	if (b != NULL && (de = block_find(b, key, name, len, NULL)) != NULL) {
		if (de->ino == ino && de->type == type) {
			return 0;
		}
		if (de->type == DT_DIR) {
			dp->nsubdirs--;
		}
		if (type == DT_DIR) {
			dp->nsubdirs++;
		}
		de->ino = ino;
		de->type = type;
		return add_w(w, nw, b->index);
	}
	rc = bfs_dir_can_add(dp, name);
	if (rc != 0) {
		return rc;
	}
	de = calloc(1, sizeof(*de) + len + 1);
	if (de == NULL) {
		return -ENOMEM;
	}
	if (b == NULL) {
		rc = ensure_slots(dp, 0);
		b = rc == 0 ? calloc(1, sizeof(*b)) : NULL;
		if (b == NULL) {
			free(de);
			return -ENOMEM;
		}
		dp->blocks[0] = b;
		dp->max_depth = 0;
	}
	while (b->bytes + need > BFS_DBLOCK_ROOM) {
		rc = split(dp, b, &nb);
		if (rc == 0) {
			rc = add_w(w, nw, b->index);
		}
		if (rc == 0) {
			rc = add_w(w, nw, nb->index);
		}
		if (rc != 0) {
			free(de);
			return rc;
		}
		if ((key >> (b->depth - 1)) & 1u) {
			b = nb;
		}
	}
	/* the smallest collision counter no entry of this key uses */
	for (c = 0;; c++) {
		uint64_t ck = cookie_base(key) | (3u + c);
		uint32_t pos = block_seek(b, ck);

		if (pos >= b->nents || b->ents[pos]->cookie != ck) {
			de->cookie = ck;
			break;
		}
	}
	de->ino = ino;
	de->key = key;
	de->type = type;
	de->len = (uint8_t)len;
	memcpy(de->name, name, len);
	rc = block_insert(b, de);
	if (rc == 0) {
		rc = add_w(w, nw, b->index);
	}
	if (rc != 0) {
		free(de);
		return rc;
	}
	dp->nents++;
	if (type == DT_DIR) {
		dp->nsubdirs++;
	}
	return 0;
}

int bfs_dir_remove(struct bfs_inode *dp, const char *name, uint32_t *w, int *nw)
{
	size_t len = strlen(name);
	uint32_t key = dir_key(dp, name, len), pos;
	struct bfs_dblock *b = dir_bucket(dp, key);
	struct bfs_dirent *de;

	if (b == NULL || b->bad || (de = block_find(b, key, name, len, &pos)) == NULL) {
		return -ENOENT;
	}
	memmove(&b->ents[pos], &b->ents[pos + 1], (b->nents - pos - 1) * sizeof(*b->ents));
	b->nents--;
	b->bytes -= (uint32_t)DENT_SIZE(de->len);
	dp->nents--;
	if (de->type == DT_DIR) {
		dp->nsubdirs--;
	}
	free(de);
	return add_w(w, nw, b->index);
}

/* ---- on-disk images ------------------------------------------------------------------------ */

static uint64_t block_csum(const uint8_t *blk)
{
	uint8_t copy[BFS_DBLOCK_SIZE];

	memcpy(copy, blk, sizeof(copy));
	memset(copy + offsetof(struct bfs_disk_dblock, checksum), 0, sizeof(uint64_t));
	return XXH3_64bits(copy, sizeof(copy));
}

void bfs_dir_encode(struct bfs_inode *dp, uint32_t index, uint8_t *out)
{
	struct bfs_dblock *b = index < dp->nblocks ? dp->blocks[index] : NULL;
	struct bfs_disk_dblock h = {0};
	struct bfs_disk_dentry e;
	size_t off = sizeof(h);
	uint32_t i;

	memset(out, 0, BFS_DBLOCK_SIZE);
	if (b == NULL) {
		return;
	}
	h.magic = BFS_DBLOCK_MAGIC;
	h.depth = b->depth;
	h.nents = (uint16_t)b->nents;
	h.index = b->index;
	h.dir_ino = dp->ino;
	for (i = 0; i < b->nents; i++) {
		struct bfs_dirent *de = b->ents[i];

		e.cookie = de->cookie;
		e.ino = de->ino;
		e.type = de->type;
		e.name_len = de->len;
		memcpy(out + off, &e, sizeof(e));
		memcpy(out + off + sizeof(e), de->name, de->len);
		off += sizeof(e) + de->len;
	}
	memcpy(out, &h, sizeof(h));
	/* the checksum field is still zero here: block_csum's copy is not needed */
	h.checksum = XXH3_64bits(out, BFS_DBLOCK_SIZE);
	memcpy(out, &h, sizeof(h));
}

/*
 * An entry as 4.2 allows it: a name of 1..255 bytes without '/' or NUL that
 * is not "." or "..", a known DT_* type, and an inode other than none, the
 * directory itself and the root (a damaged entry must not make the tree a
 * loop through its own directory or the root, nor list "." twice).
 */
static bool dentry_valid(const struct bfs_inode *dp, const struct bfs_dirent *de)
{
	if (memchr(de->name, '/', de->len) != NULL || memchr(de->name, 0, de->len) != NULL ||
	    strcmp(de->name, ".") == 0 || strcmp(de->name, "..") == 0) {
		return false;
	}
	switch (de->type) {
	case DT_REG:
	case DT_DIR:
	case DT_LNK:
	case DT_FIFO:
	case DT_SOCK:
	case DT_CHR:
	case DT_BLK:
		break;
	default:
		return false;
	}
	/* the root is no directory's entry (it has no ref, 4); it loads first, so it is known */
	return de->ino != 0 && de->ino != dp->ino && (dp->fs->root == NULL || de->ino != dp->fs->root->ino);
}

/*
 * Parse the image of block index: *out is the block, NULL for an absent
 * (all-zero) one. 0, or -EIO when the image is invalid (*out then NULL).
 */
static int block_parse(struct bfs_inode *dp, uint32_t index, const uint8_t *img, struct bfs_dblock **out)
{
	struct bfs_disk_dblock h;
	struct bfs_disk_dentry e;
	struct bfs_dblock *b;
	struct bfs_dirent *de;
	size_t off = sizeof(h);
	uint64_t last = 0;
	uint32_t i;

	*out = NULL;
	memcpy(&h, img, sizeof(h));
	if (h.magic == 0 && ust_mem_is_zero(img, BFS_DBLOCK_SIZE)) {
		return 0;
	}
	if (h.magic != BFS_DBLOCK_MAGIC || h.index != index || h.depth > BFS_DIR_MAX_DEPTH ||
	    index > low_mask(h.depth) || h.dir_ino != dp->ino || h.checksum != block_csum(img)) {
		return -EIO;
	}
	b = calloc(1, sizeof(*b));
	if (b == NULL) {
		return -ENOMEM;
	}
	b->index = index;
	b->depth = h.depth;
	for (i = 0; i < h.nents; i++) {
		if (off + sizeof(e) > BFS_DBLOCK_SIZE) {
			goto bad;
		}
		memcpy(&e, img + off, sizeof(e));
		off += sizeof(e);
		if (e.name_len == 0 || off + e.name_len > BFS_DBLOCK_SIZE || e.cookie <= last) {
			goto bad;
		}
		de = calloc(1, sizeof(*de) + e.name_len + 1u);
		if (de == NULL) {
			block_free(b);
			return -ENOMEM;
		}
		memcpy(de->name, img + off, e.name_len);
		off += e.name_len;
		de->len = e.name_len;
		de->cookie = e.cookie;
		de->ino = e.ino;
		de->type = e.type;
		de->key = dir_key(dp, de->name, de->len);
		if ((de->key & low_mask(b->depth)) != index || (e.cookie >> 32) != (cookie_base(de->key) >> 32) ||
		    !dentry_valid(dp, de) || block_find(b, de->key, de->name, de->len, NULL) != NULL ||
		    block_insert(b, de) != 0) {
			free(de);
			goto bad;
		}
		last = e.cookie;
	}
	*out = b;
	return 0;
bad:
	block_free(b);
	return -EIO;
}

/* Recount entries, subdirectories and the maximum depth. */
static void recount(struct bfs_inode *dp)
{
	uint32_t i, k;

	dp->nents = 0;
	dp->nsubdirs = 0;
	dp->max_depth = 0;
	for (i = 0; i < dp->nblocks; i++) {
		struct bfs_dblock *b = dp->blocks[i];

		if (b == NULL) {
			continue;
		}
		if (b->depth > dp->max_depth && b->depth <= BFS_DIR_MAX_DEPTH) {
			dp->max_depth = b->depth;
		}
		dp->nents += b->nents;
		for (k = 0; k < b->nents; k++) {
			if (b->ents[k]->type == DT_DIR) {
				dp->nsubdirs++;
			}
		}
	}
}

/* Put the parsed image of index into the cache (invalid: a bad block). */
static int place(struct bfs_inode *dp, uint32_t index, const uint8_t *img)
{
	struct bfs_dblock *b;
	struct bfs_disk_dblock h;
	int rc;

	rc = block_parse(dp, index, img, &b);
	if (rc == -ENOMEM) {
		return rc;
	}
	if (rc != 0) {
		UST_NOTICELOG("blobfs: directory 0x%" PRIx64 ": block %u is invalid (torn: the intent restores it)\n", dp->ino, index);
		b = calloc(1, sizeof(*b));
		if (b == NULL) {
			return -ENOMEM;
		}
		memcpy(&h, img, sizeof(h));
		b->index = index;
		b->bad = true;
		b->depth = h.depth <= BFS_DIR_MAX_DEPTH && index <= low_mask(h.depth) ? h.depth : 0xff;
	}
	block_free(dp->blocks[index]);
	dp->blocks[index] = b;
	return 0;
}

size_t bfs_dir_record(struct bfs_inode *dp, const char *name, uint8_t *buf)
{
	struct bfs_disk_intent_block r = {.dir = dp->ino};
	size_t len = strlen(name);
	struct bfs_dblock *b = dir_bucket(dp, dir_key(dp, name, len));

	if (b == NULL) {
		r.flags = BFS_IBLK_EMPTY;
		memcpy(buf, &r, sizeof(r));
		return sizeof(r);
	}
	r.index = b->index;
	r.depth = b->depth;
	memcpy(buf, &r, sizeof(r));
	bfs_dir_encode(dp, b->index, buf + sizeof(r));
	return sizeof(r) + BFS_DBLOCK_SIZE;
}

bool bfs_dir_record_covers(struct bfs_inode *dp, const char *name, const uint8_t *rec)
{
	struct bfs_disk_intent_block r;

	memcpy(&r, rec, sizeof(r));
	if (r.dir != dp->ino) {
		return false;
	}
	return (r.flags & BFS_IBLK_EMPTY) ||
	       (dir_key(dp, name, strlen(name)) & low_mask(r.depth)) == r.index;
}

/* Is index j inside record r's range (other than r's own block)? */
static bool in_range(const struct bfs_disk_intent_block *r, uint32_t j)
{
	if (r->flags & BFS_IBLK_EMPTY) {
		return true;
	}
	return (j & low_mask(r->depth)) == r->index;
}

/*
 * Every block of the range is valid and together they cover the range
 * exactly once (a lost write of a split's new block leaves a gap; an old
 * version of a split block overlaps). An EMPTY record's range may also be
 * wholly absent.
 */
bool bfs_dir_range_valid(struct bfs_inode *dp, const struct bfs_disk_intent_block *r)
{
	uint64_t total = 0, want;
	uint32_t j;

	for (j = 0; j < dp->nblocks; j++) {
		struct bfs_dblock *b = dp->blocks[j];

		if (b == NULL || !in_range(r, j)) {
			continue;
		}
		if (b->bad || b->depth > BFS_DIR_MAX_DEPTH) {
			return false;
		}
		total += 1ull << (BFS_DIR_MAX_DEPTH - b->depth);
	}
	if (r->flags & BFS_IBLK_EMPTY) {
		return total == 0 || total == 1ull << BFS_DIR_MAX_DEPTH;
	}
	want = r->depth <= BFS_DIR_MAX_DEPTH ? 1ull << (BFS_DIR_MAX_DEPTH - r->depth) : 0;
	return total == want;
}

int bfs_dir_restore(struct bfs_inode *dp, const struct bfs_disk_intent_block *r, const uint8_t *img,
		    uint32_t *w, int *nw)
{
	uint32_t j;
	int rc;

	if (!(r->flags & BFS_IBLK_EMPTY) &&
	    (r->depth > BFS_DIR_MAX_DEPTH || r->index > low_mask(r->depth))) {
		return -EIO;
	}
	for (j = 0; j < dp->nblocks; j++) {
		if (dp->blocks[j] == NULL || !in_range(r, j) ||
		    (!(r->flags & BFS_IBLK_EMPTY) && j == r->index)) {
			continue;
		}
		block_free(dp->blocks[j]);
		dp->blocks[j] = NULL;
		rc = add_w(w, nw, j);
		if (rc != 0) {
			return rc;
		}
	}
	if (!(r->flags & BFS_IBLK_EMPTY)) {
		struct bfs_dblock *b;

		rc = block_parse(dp, r->index, img, &b);
		if (rc != 0 || b == NULL || b->depth != r->depth) {
			block_free(b);
			UST_ERRLOG("blobfs: directory 0x%" PRIx64 ": intent image of block %u is invalid\n",
				   dp->ino, r->index);
			return rc != 0 ? rc : -EIO;
		}
		rc = ensure_slots(dp, r->index);
		if (rc != 0) {
			block_free(b);
			return rc;
		}
		block_free(dp->blocks[r->index]);
		dp->blocks[r->index] = b;
		rc = add_w(w, nw, r->index);
		if (rc != 0) {
			return rc;
		}
	}
	recount(dp);
	return 0;
}

/* ---- loading -------------------------------------------------------------------------------- */

static void load_step(struct bfs_inode *dp, int rc);

static void load_read_done(void *arg, int rc)
{
	load_step(arg, rc);
}

static void load_finish(struct bfs_inode *dp, int rc)
{
	if (dp->dload_buf != NULL) {
		ust_dma_free(dp->dload_buf);
		dp->dload_buf = NULL;
	}
	if (rc == 0) {
		recount(dp);
	}
	bfs_iget_dir_loaded(dp, rc);
}

/* Parse what the last read brought (blocks [dload_next - n, dload_next)), then read on. */
static void load_step(struct bfs_inode *dp, int rc)
{
	struct ust_blobfs *fs = dp->fs;
	uint64_t units = BFS_DBLOCK_SIZE / fs->io_unit, n, i, first;

	if (rc != 0) {
		load_finish(dp, rc);
		return;
	}
	if (dp->dload_next > 0) {
		first = (dp->dload_next - 1) / LOAD_CHUNK * LOAD_CHUNK;
		for (i = first; i < dp->dload_next; i++) {
			rc = place(dp, (uint32_t)i, dp->dload_buf + (i - first) * BFS_DBLOCK_SIZE);
			if (rc != 0) {
				load_finish(dp, rc);
				return;
			}
		}
	}
	if (dp->dload_next >= dp->dload_end) {
		load_finish(dp, 0);
		return;
	}
	n = dp->dload_end - dp->dload_next;
	if (n > LOAD_CHUNK) {
		n = LOAD_CHUNK;
	}
	first = dp->dload_next;
	dp->dload_next += n;
	ust_blob_read(dp->blob, fs->ch, dp->dload_buf, first * units, n * units, load_read_done, dp);
}

void bfs_dir_load(struct bfs_inode *dp)
{
	struct ust_blobfs *fs = dp->fs;
	uint64_t bytes = ust_blob_get_num_io_units(dp->blob) * fs->io_unit;
	uint64_t nblk = bytes / BFS_DBLOCK_SIZE;
	int rc;

	if (nblk > (1ull << BFS_DIR_MAX_DEPTH)) {
		nblk = 1ull << BFS_DIR_MAX_DEPTH;
	}
	dp->dload_next = 0;
	dp->dload_end = nblk;
	if (nblk == 0) {
		load_finish(dp, 0);
		return;
	}
	rc = ensure_slots(dp, (uint32_t)nblk - 1);
	if (rc == 0) {
		dp->dload_buf = ust_dma_malloc(LOAD_CHUNK * BFS_DBLOCK_SIZE, 4096);
		if (dp->dload_buf == NULL) {
			rc = -ENOMEM;
		}
	}
	if (rc != 0) {
		load_finish(dp, rc);
		return;
	}
	load_step(dp, 0);
}
