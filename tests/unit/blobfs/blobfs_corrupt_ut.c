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

#include "blobfs_corrupt_ut.h"

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
