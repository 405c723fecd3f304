/*
 * Unit tests for blobfs (blobfs/) on a malloc bdev, threads polled by hand:
 * format and mount, every namespace operation with its POSIX errors, hard
 * links and link counts, rename (replace, NOREPLACE, EXCHANGE, across
 * directories, into its own subdirectory, over a non-empty directory),
 * readdir offsets that stay stable while entries come and go, byte-granular
 * and sparse I/O, truncate, fallocate, timestamps and set-user-ID rules,
 * xattrs, unlink of an open file, remount, and crash images: a copy of the
 * device taken while files were open, and replay of an interrupted change.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <dirent.h>

#include <cmocka.h>

#include "ustor/bdev.h"
#include "ustor/crashsim.h"
#include "ustor/blob.h"
#include "ustor/blobfs.h"
#include "ustor/env.h"
#include "ustor/thread.h"
#include "blobfs_test.h"
#include "ut_threads.h"

#include "../../../bdev/malloc/bdev_malloc.h"

#define BLOCK 512
#define BDEV_BYTES (32u << 20)
#define ROOT UST_BLOBFS_ROOT_INO

static struct ust_blobfs *g_fs;
static const struct ust_blobfs_ctx g_ctx = {.uid = 0, .gid = 0};

/* ---- synchronous wrappers ---------------------------------------------------------------- */

static struct bft_res g_r;

static struct bft_res *begin(void)
{
	memset(&g_r, 0, sizeof(g_r));
	return &g_r;
}

static void finish(void)
{
	ut_threads_poll();
	assert_true(g_r.done);
}

static int do_format(void)
{
	struct ust_blobfs_opts o;

	ust_blobfs_opts_init(&o);
	o.cluster_size = 64u << 10;
	ust_blobfs_format("M0", &o, NULL, bft_fs_cb, begin());
	finish();
	g_fs = g_r.fs;
	return g_r.rc;
}

static int do_mount(const char *bdev)
{
	ust_blobfs_mount(bdev, NULL, bft_fs_cb, begin());
	finish();
	g_fs = g_r.fs;
	return g_r.rc;
}

static int do_unmount(void)
{
	ust_blobfs_unmount(g_fs, bft_op_cb, begin());
	finish();
	if (g_r.rc == 0) {
		g_fs = NULL;
	}
	return g_r.rc;
}

static int lookup(uint64_t parent, const char *name, uint64_t *ino)
{
	ust_blobfs_lookup(g_fs, &g_ctx, parent, name, bft_entry_cb, begin());
	finish();
	if (ino != NULL) {
		*ino = g_r.e.ino;
	}
	return g_r.rc;
}

static int getattr(uint64_t ino, struct ust_blobfs_attr *a)
{
	ust_blobfs_getattr(g_fs, &g_ctx, ino, bft_attr_cb, begin());
	finish();
	if (a != NULL) {
		*a = g_r.a;
	}
	return g_r.rc;
}

static int mkdir_(uint64_t parent, const char *name, uint64_t *ino)
{
	ust_blobfs_mkdir(g_fs, &g_ctx, parent, name, 0755, bft_entry_cb, begin());
	finish();
	if (ino != NULL) {
		*ino = g_r.e.ino;
	}
	return g_r.rc;
}

static int mknod_(uint64_t parent, const char *name, uint32_t mode, uint64_t rdev, uint64_t *ino)
{
	ust_blobfs_mknod(g_fs, &g_ctx, parent, name, mode, rdev, bft_entry_cb, begin());
	finish();
	if (ino != NULL) {
		*ino = g_r.e.ino;
	}
	return g_r.rc;
}

static int create_ctx(const struct ust_blobfs_ctx *ctx, uint64_t parent, const char *name, int flags,
		      struct ust_blobfs_file **fh, uint64_t *ino)
{
	ust_blobfs_create(g_fs, ctx, parent, name, 0644, flags, bft_create_cb, begin());
	finish();
	if (fh != NULL) {
		*fh = g_r.fh;
	}
	if (ino != NULL) {
		*ino = g_r.e.ino;
	}
	return g_r.rc;
}

static int create(uint64_t parent, const char *name, struct ust_blobfs_file **fh, uint64_t *ino)
{
	return create_ctx(&g_ctx, parent, name, O_RDWR | O_CREAT | O_EXCL, fh, ino);
}

static int open_(uint64_t ino, int flags, struct ust_blobfs_file **fh)
{
	ust_blobfs_open(g_fs, &g_ctx, ino, flags, bft_open_cb, begin());
	finish();
	*fh = g_r.fh;
	return g_r.rc;
}

static int release(struct ust_blobfs_file *fh)
{
	ust_blobfs_release(g_fs, fh, bft_op_cb, begin());
	finish();
	return g_r.rc;
}

static int64_t pwrite_ctx(const struct ust_blobfs_ctx *ctx, struct ust_blobfs_file *fh,
			  const void *buf, size_t len, uint64_t off)
{
	ust_blobfs_write(g_fs, ctx, fh, buf, len, off, bft_size_cb, begin());
	finish();
	return g_r.n;
}

static int64_t pwrite_(struct ust_blobfs_file *fh, const void *buf, size_t len, uint64_t off)
{
	return pwrite_ctx(&g_ctx, fh, buf, len, off);
}

static int64_t pread_(struct ust_blobfs_file *fh, void *buf, size_t len, uint64_t off)
{
	ust_blobfs_read(g_fs, fh, buf, len, off, bft_size_cb, begin());
	finish();
	return g_r.n;
}

static int fsync_(struct ust_blobfs_file *fh)
{
	ust_blobfs_fsync(g_fs, fh, false, bft_op_cb, begin());
	finish();
	return g_r.rc;
}

static int unlink_(uint64_t parent, const char *name)
{
	ust_blobfs_unlink(g_fs, &g_ctx, parent, name, bft_op_cb, begin());
	finish();
	return g_r.rc;
}

static int rmdir_(uint64_t parent, const char *name)
{
	ust_blobfs_rmdir(g_fs, &g_ctx, parent, name, bft_op_cb, begin());
	finish();
	return g_r.rc;
}

static int rename_(uint64_t p, const char *n, uint64_t np, const char *nn, uint32_t flags)
{
	ust_blobfs_rename(g_fs, &g_ctx, p, n, np, nn, flags, bft_op_cb, begin());
	finish();
	return g_r.rc;
}

static int link_(uint64_t ino, uint64_t np, const char *nn)
{
	ust_blobfs_link(g_fs, &g_ctx, ino, np, nn, bft_entry_cb, begin());
	finish();
	return g_r.rc;
}

static int setattr_ctx(const struct ust_blobfs_ctx *ctx, uint64_t ino, struct ust_blobfs_attr *a,
		       uint32_t valid)
{
	ust_blobfs_setattr(g_fs, ctx, ino, a, valid, NULL, bft_attr_cb, begin());
	finish();
	*a = g_r.a;
	return g_r.rc;
}

static int truncate_(uint64_t ino, uint64_t size)
{
	struct ust_blobfs_attr a = {.size = size};

	return setattr_ctx(&g_ctx, ino, &a, UST_BLOBFS_SET_SIZE);
}

static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
	size_t i;

	for (i = 0; i < len; i++) {
		buf[i] = (uint8_t)((i * 31u + seed * 7u + (i >> 9)) ^ seed);
	}
}

static uint64_t free_clusters(void)
{
	ust_blobfs_statfs(g_fs, bft_statfs_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	return g_r.st.bfree;
}

/* readdir into a list of names (from offset), at most max entries */
struct dl {
	char names[64][32];
	uint64_t offs[64];
	uint64_t inos[64];
	int n;
	int max;
};

static int dl_fill(void *arg, const struct ust_blobfs_dirent *d)
{
	struct dl *l = arg;

	if (l->n >= l->max) {
		return 1;
	}
	snprintf(l->names[l->n], sizeof(l->names[0]), "%s", d->name);
	l->offs[l->n] = d->next_offset;
	l->inos[l->n] = d->ino;
	l->n++;
	return 0;
}

static int readdir_(struct ust_blobfs_file *dh, uint64_t off, int max, struct dl *l)
{
	memset(l, 0, sizeof(*l));
	l->max = max;
	ust_blobfs_readdir(g_fs, dh, off, false, dl_fill, l, bft_op_cb, begin());
	finish();
	return g_r.rc;
}

static bool dl_has(const struct dl *l, const char *name)
{
	int i;

	for (i = 0; i < l->n; i++) {
		if (strcmp(l->names[i], name) == 0) {
			return true;
		}
	}
	return false;
}

/* ---- fixtures ----------------------------------------------------------------------------- */

static int setup(void **state)
{
	(void)state;
	return ut_threads_setup(2) == 0 ? ut_bdev_start() : -1;
}

static int teardown(void **state)
{
	int rc;

	(void)state;
	rc = ut_bdev_stop();
	return ut_threads_teardown() == 0 ? rc : -1;
}

static int make_bdev_named(const char *name)
{
	struct ust_malloc_opts o = {.name = name, .num_blocks = BDEV_BYTES / BLOCK, .block_size = BLOCK};

	ust_set_thread(ut_thread(0));
	return ust_bdev_malloc_create(&o, NULL);
}

static int make_fs(void **state)
{
	(void)state;
	if (make_bdev_named("M0") != 0) {
		return -1;
	}
	return do_format();
}

static void deleted(void *ctx, int rc)
{
	*(int *)ctx = rc == 0 ? 1 : rc;
}

static void drop_named(const char *name)
{
	int done = 0;

	if (ust_bdev_malloc_delete(name, deleted, &done) == 0) {
		ut_threads_poll();
	}
}

static int drop_fs(void **state)
{
	(void)state;
	ust_set_thread(ut_thread(0));
	if (g_fs != NULL) {
		do_unmount();
	}
	drop_named("M0");
	drop_named("M1");
	return 0;
}

/* Copy M0's current contents to a new bdev M1: the device as a crash would leave it (malloc has no cache). */
static void raw_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	(void)type;
	(void)bdev;
	(void)ctx;
}

static void raw_cb(struct ust_bdev_io *io, int status, void *arg)
{
	(void)io;
	bft_op_cb(arg, status);
}

static void raw_io(const char *name, bool write, void *buf, uint64_t len)
{
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;

	assert_int_equal(ust_bdev_open_ext(name, write, raw_event, NULL, &desc), 0);
	ch = ust_bdev_get_io_channel(desc);
	assert_non_null(ch);
	if (write) {
		assert_int_equal(ust_bdev_write(desc, ch, buf, 0, len, raw_cb, begin()), 0);
	} else {
		assert_int_equal(ust_bdev_read(desc, ch, buf, 0, len, raw_cb, begin()), 0);
	}
	finish();
	assert_int_equal(g_r.rc, 0);
	ust_put_io_channel(ch);
	ut_threads_poll();
	ust_bdev_close(desc);
	ut_threads_poll();
}

static void snapshot_to_m1(void)
{
	void *img = ust_dma_malloc(BDEV_BYTES, 4096);

	assert_non_null(img);
	raw_io("M0", false, img, BDEV_BYTES);
	assert_int_equal(make_bdev_named("M1"), 0);
	raw_io("M1", true, img, BDEV_BYTES);
	ust_dma_free(img);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_format_mount(void **state)
{
	struct ust_blobfs_attr a;
	uint64_t d;

	(void)state;
	assert_int_equal(getattr(ROOT, &a), 0);
	assert_true(S_ISDIR(a.mode));
	assert_int_equal(a.ino, ROOT);
	assert_int_equal(a.nlink, 2);
	assert_int_equal(mkdir_(ROOT, "d", &d), 0);
	assert_int_equal(getattr(ROOT, &a), 0);
	assert_int_equal(a.nlink, 3);
	assert_int_equal(do_unmount(), 0);
	assert_int_equal(do_mount("M0"), 0);
	assert_int_equal(lookup(ROOT, "d", &d), 0);
	assert_true(g_r.e.attr.mode == (S_IFDIR | 0755));
	/* a store that is not blobfs */
	assert_int_equal(do_unmount(), 0);
	assert_int_equal(do_mount("nosuch"), -ENODEV);
	assert_int_equal(do_mount("M0"), 0);
}

static void test_namespace_errors(void **state)
{
	struct ust_blobfs_file *fh;
	uint64_t d, f, x;
	char longname[300];

	(void)state;
	memset(longname, 'a', sizeof(longname));
	longname[256] = '\0';
	assert_int_equal(mkdir_(ROOT, "d", &d), 0);
	assert_int_equal(mkdir_(ROOT, "d", NULL), -EEXIST);
	assert_int_equal(mkdir_(ROOT, longname, NULL), -ENAMETOOLONG);
	longname[255] = '\0';
	assert_int_equal(mkdir_(ROOT, longname, &x), 0); /* 255 is fine */
	assert_int_equal(lookup(ROOT, "nope", NULL), -ENOENT);
	assert_int_equal(create(d, "f", &fh, &f), 0);
	assert_int_equal(release(fh), 0);
	assert_int_equal(create(d, "f", &fh, NULL), -EEXIST);
	assert_int_equal(lookup(f, "x", NULL), -ENOTDIR);
	assert_int_equal(mkdir_(f, "x", NULL), -ENOTDIR);
	assert_int_equal(rmdir_(ROOT, "d"), -ENOTEMPTY);
	assert_int_equal(rmdir_(d, "f"), -ENOTDIR);
	assert_int_equal(unlink_(ROOT, "d"), -EISDIR);
	assert_int_equal(unlink_(ROOT, "nope"), -ENOENT);
	assert_int_equal(link_(d, ROOT, "dl"), -EPERM);
	assert_int_equal(link_(f, d, "f"), -EEXIST);
	assert_int_equal(mknod_(ROOT, "bad", S_IFDIR | 0644, 0, NULL), -EINVAL);
	assert_int_equal(open_(d, O_RDWR, &fh), -EISDIR);
	assert_int_equal(unlink_(d, "f"), 0);
	assert_int_equal(rmdir_(ROOT, "d"), 0);
	assert_int_equal(lookup(ROOT, "d", NULL), -ENOENT);
	assert_int_equal(mkdir_(d, "z", NULL), -ENOENT); /* removed directory */
}

static void test_special_files(void **state)
{
	struct ust_blobfs_attr a;
	uint64_t s, p, c;
	char buf[64];

	(void)state;
	ust_blobfs_symlink(g_fs, &g_ctx, "../target/x", ROOT, "ln", bft_entry_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	s = g_r.e.ino;
	assert_true(S_ISLNK(g_r.e.attr.mode));
	assert_int_equal(g_r.e.attr.size, 11);
	ust_blobfs_readlink(g_fs, &g_ctx, s, buf, sizeof(buf), bft_size_cb, begin());
	finish();
	assert_int_equal(g_r.n, 11);
	assert_memory_equal(buf, "../target/x", 11);
	assert_int_equal(mknod_(ROOT, "fifo", S_IFIFO | 0600, 0, &p), 0);
	assert_int_equal(mknod_(ROOT, "chr", S_IFCHR | 0600, 0x0501, &c), 0);
	assert_int_equal(do_unmount(), 0);
	assert_int_equal(do_mount("M0"), 0);
	assert_int_equal(lookup(ROOT, "chr", &c), 0);
	assert_true(S_ISCHR(g_r.e.attr.mode));
	assert_int_equal(g_r.e.attr.rdev, 0x0501);
	assert_int_equal(lookup(ROOT, "fifo", &p), 0);
	assert_true(S_ISFIFO(g_r.e.attr.mode));
	ust_blobfs_readlink(g_fs, &g_ctx, p, buf, sizeof(buf), bft_size_cb, begin());
	finish();
	assert_int_equal(g_r.n, -EINVAL);
	assert_int_equal(getattr(s, &a), 0);
	assert_true(S_ISLNK(a.mode));
}

static void test_io(void **state)
{
	struct ust_blobfs_file *fh;
	struct ust_blobfs_attr a;
	uint64_t f, before;
	size_t big = 300000;
	uint8_t *w = malloc(big), *r = malloc(big), *z = calloc(1, big);

	(void)state;
	fill(w, big, 7);
	assert_int_equal(create(ROOT, "f", &fh, &f), 0);
	/* unaligned writes, across io units and clusters */
	assert_int_equal(pwrite_(fh, w, 1000, 3), 1000);
	assert_int_equal(pwrite_(fh, w + 1000, big - 1003, 1003), big - 1003);
	assert_int_equal(pread_(fh, r, big, 3), big - 3);
	assert_memory_equal(r, w, big - 3);
	assert_int_equal(pread_(fh, r, 10, 0), 10);
	assert_memory_equal(r, z, 3);
	/* reads stop at EOF */
	assert_int_equal(pread_(fh, r, 100, big - 10), 10);
	assert_int_equal(pread_(fh, r, 100, big + 10), 0);
	/* overwrite in the middle, aligned */
	assert_int_equal(pwrite_(fh, z, 4096, 8192), 4096);
	assert_int_equal(pread_(fh, r, 3 * 4096, 4096), 3 * 4096);
	assert_memory_equal(r + 4096, z, 4096);
	assert_memory_equal(r, w + 4096 - 3, 4096);
	/* sparse: a write far away allocates only its cluster */
	before = free_clusters();
	assert_int_equal(pwrite_(fh, w, 100, 5u << 20), 100);
	assert_int_equal(before - free_clusters(), 1);
	assert_int_equal(getattr(f, &a), 0);
	assert_int_equal(a.size, (5u << 20) + 100);
	assert_int_equal(pread_(fh, r, 4096, 4u << 20), 4096);
	assert_memory_equal(r, z, 4096);
	/* truncate down in the middle of an io unit, then up: the tail reads as zeros */
	assert_int_equal(truncate_(f, 5000), 0);
	assert_int_equal(g_r.a.size, 5000);
	assert_int_equal(truncate_(f, 9000), 0);
	assert_int_equal(pread_(fh, r, 9000, 0), 9000);
	assert_memory_equal(r + 3, w, 4997);
	assert_memory_equal(r + 5000, z, 4000);
	/*
	 * fallocate: size grows (not with KEEP_SIZE), the range's clusters are
	 * allocated (64 KiB: the file has cluster 0, 200000 bytes need 4, 300000
	 * need 5); punch hole zeroes
	 */
	before = free_clusters();
	ust_blobfs_fallocate(g_fs, &g_ctx, fh, 0, 0, 200000, bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	assert_int_equal(getattr(f, &a), 0);
	assert_int_equal(a.size, 200000);
	assert_int_equal(before - free_clusters(), 3);
	ust_blobfs_fallocate(g_fs, &g_ctx, fh, UST_BLOBFS_FALLOC_KEEP_SIZE, 0, 300000, bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	assert_int_equal(getattr(f, &a), 0);
	assert_int_equal(a.size, 200000);
	assert_int_equal(before - free_clusters(), 4);
	/* the allocated range still reads as zeros past the old data */
	assert_int_equal(pread_(fh, r, 4096, 150000), 4096);
	assert_memory_equal(r, z, 4096);
	ust_blobfs_fallocate(g_fs, &g_ctx, fh, UST_BLOBFS_FALLOC_PUNCH_HOLE, 0, 10, bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, -EOPNOTSUPP);
	ust_blobfs_fallocate(g_fs, &g_ctx, fh, UST_BLOBFS_FALLOC_PUNCH_HOLE | UST_BLOBFS_FALLOC_KEEP_SIZE,
			     10, 100, bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	assert_int_equal(pread_(fh, r, 200, 0), 200);
	assert_memory_equal(r + 3, w, 7);
	assert_memory_equal(r + 10, z, 100);
	assert_memory_equal(r + 110, w + 107, 90);
	assert_int_equal(fsync_(fh), 0);
	assert_int_equal(release(fh), 0);
	/* remount: content and size persist */
	assert_int_equal(do_unmount(), 0);
	assert_int_equal(do_mount("M0"), 0);
	assert_int_equal(lookup(ROOT, "f", &f), 0);
	assert_int_equal(g_r.e.attr.size, 200000);
	assert_int_equal(open_(f, O_RDONLY, &fh), 0);
	assert_int_equal(pread_(fh, r, 5000, 0), 5000);
	assert_memory_equal(r + 110, w + 107, 4890);
	assert_int_equal(pwrite_(fh, w, 10, 0), -EBADF);
	assert_int_equal(release(fh), 0);
	/* O_TRUNC and O_APPEND */
	assert_int_equal(open_(f, O_WRONLY | O_TRUNC | O_APPEND, &fh), 0);
	assert_int_equal(getattr(f, &a), 0);
	assert_int_equal(a.size, 0);
	assert_int_equal(pwrite_(fh, w, 10, 0), 10);
	assert_int_equal(pwrite_(fh, w, 10, 0), 10);
	assert_int_equal(getattr(f, &a), 0);
	assert_int_equal(a.size, 20);
	assert_int_equal(release(fh), 0);
	free(w);
	free(r);
	free(z);
}

/*
 * open(O_TRUNC) is durable when the open returns: a crash with the file
 * still open shows it empty (not the old size over released clusters), and
 * the released clusters are free. O_RDONLY | O_TRUNC truncates too (as Linux).
 */
static void test_open_trunc_durable(void **state)
{
	struct ust_blobfs *old;
	struct ust_blobfs_file *fh, *fh2;
	uint64_t f, g, before;
	uint8_t buf[8192], r[16];

	(void)state;
	fill(buf, sizeof(buf), 5);
	assert_int_equal(create(ROOT, "u", &fh2, &g), 0);
	assert_int_equal(pwrite_(fh2, buf, 100, 0), 100);
	assert_int_equal(fsync_(fh2), 0);
	assert_int_equal(release(fh2), 0);
	assert_int_equal(create(ROOT, "t", &fh, &f), 0);
	before = free_clusters();
	assert_int_equal(pwrite_(fh, buf, sizeof(buf), 3 << 20), sizeof(buf));
	assert_int_equal(fsync_(fh), 0);
	assert_int_equal(release(fh), 0);
	assert_true(free_clusters() < before);
	assert_int_equal(open_(f, O_WRONLY | O_TRUNC, &fh), 0);
	assert_int_equal(free_clusters(), before);
	assert_int_equal(open_(g, O_RDONLY | O_TRUNC, &fh2), 0);
	before++; /* u's cluster */
	assert_int_equal(free_clusters(), before);
	/* "crash" with both open */
	snapshot_to_m1();
	old = g_fs;
	assert_int_equal(do_mount("M1"), 0);
	assert_int_equal(lookup(ROOT, "t", &f), 0);
	assert_int_equal(g_r.e.attr.size, 0);
	assert_int_equal(lookup(ROOT, "u", &g), 0);
	assert_int_equal(g_r.e.attr.size, 0);
	assert_int_equal(free_clusters(), before);
	{
		struct ust_blobfs_file *rf;

		assert_int_equal(open_(f, O_RDONLY, &rf), 0);
		assert_int_equal(pread_(rf, r, sizeof(r), 0), 0);
		assert_int_equal(release(rf), 0);
	}
	assert_int_equal(do_unmount(), 0);
	g_fs = old;
	assert_int_equal(release(fh), 0);
	assert_int_equal(release(fh2), 0);
	/* a directory cannot be opened with O_TRUNC, even read-only */
	{
		uint64_t d;

		assert_int_equal(mkdir_(ROOT, "d", &d), 0);
		assert_int_equal(open_(d, O_RDONLY | O_TRUNC, &fh), -EISDIR);
	}
}

static void test_hard_links_and_orphans(void **state)
{
	struct ust_blobfs_file *fh;
	struct ust_blobfs_attr a;
	uint64_t f, d, before;
	uint8_t buf[4096], r[4096];

	(void)state;
	fill(buf, sizeof(buf), 3);
	assert_int_equal(mkdir_(ROOT, "d", &d), 0);
	/* d's first entry gives it its first data cluster (its block 0), for good */
	assert_int_equal(mknod_(d, "tmp", S_IFREG | 0644, 0, NULL), 0);
	assert_int_equal(unlink_(d, "tmp"), 0);
	before = free_clusters();
	assert_int_equal(create(ROOT, "a", &fh, &f), 0);
	assert_int_equal(pwrite_(fh, buf, sizeof(buf), 0), sizeof(buf));
	assert_int_equal(link_(f, d, "b"), 0);
	assert_int_equal(g_r.e.attr.nlink, 2);
	assert_int_equal(g_r.e.ino, f);
	assert_int_equal(link_(f, ROOT, "c"), 0);
	assert_int_equal(getattr(f, &a), 0);
	assert_int_equal(a.nlink, 3);
	assert_int_equal(unlink_(ROOT, "a"), 0);
	assert_int_equal(unlink_(ROOT, "c"), 0);
	assert_int_equal(getattr(f, &a), 0);
	assert_int_equal(a.nlink, 1);
	assert_int_equal(lookup(d, "b", NULL), 0);
	/* unlink while open: the data stays until the last close */
	assert_int_equal(unlink_(d, "b"), 0);
	assert_int_equal(getattr(f, &a), 0);
	assert_int_equal(a.nlink, 0);
	assert_int_equal(pread_(fh, r, sizeof(r), 0), sizeof(r));
	assert_memory_equal(r, buf, sizeof(r));
	assert_int_equal(pwrite_(fh, buf, 100, 5000), 100);
	assert_true(free_clusters() < before);
	assert_int_equal(link_(f, ROOT, "again"), -ENOENT);
	/* a directory removed while open has no links either (as Linux: fstat shows 0) */
	{
		struct ust_blobfs_file *dh;
		uint64_t od;

		assert_int_equal(mkdir_(ROOT, "od", &od), 0);
		ust_blobfs_opendir(g_fs, &g_ctx, od, bft_open_cb, begin());
		finish();
		assert_int_equal(g_r.rc, 0);
		dh = g_r.fh;
		assert_int_equal(getattr(od, &a), 0);
		assert_int_equal(a.nlink, 2);
		assert_int_equal(rmdir_(ROOT, "od"), 0);
		assert_int_equal(getattr(od, &a), 0);
		assert_int_equal(a.nlink, 0);
		ust_blobfs_releasedir(g_fs, dh, bft_op_cb, begin());
		finish();
		assert_int_equal(g_r.rc, 0);
	}
	assert_int_equal(do_unmount(), -EBUSY);
	assert_int_equal(release(fh), 0);
	assert_int_equal(free_clusters(), before);
	assert_int_equal(do_unmount(), 0);
	assert_int_equal(do_mount("M0"), 0);
	assert_int_equal(lookup(ROOT, "a", NULL), -ENOENT);
	assert_int_equal(free_clusters(), before);
}

static void test_orphan_after_crash(void **state)
{
	struct ust_blobfs *old;
	struct ust_blobfs_file *fh, *fh2, *vfh;
	uint64_t f, g, before, m1free;
	uint8_t buf[8192];

	(void)state;
	fill(buf, sizeof(buf), 9);
	/* the root's first entry gives it its first data cluster, for good */
	assert_int_equal(mknod_(ROOT, "tmp", S_IFREG | 0644, 0, NULL), 0);
	assert_int_equal(unlink_(ROOT, "tmp"), 0);
	before = free_clusters();
	assert_int_equal(create(ROOT, "victim", &vfh, &f), 0);
	assert_int_equal(pwrite_(vfh, buf, sizeof(buf), 0), sizeof(buf));
	assert_int_equal(create(ROOT, "keep", &fh2, &g), 0);
	assert_int_equal(pwrite_(fh2, buf, sizeof(buf), 70000), sizeof(buf));
	assert_int_equal(fsync_(fh2), 0);
	assert_int_equal(unlink_(ROOT, "victim"), 0);
	/* "crash" with both files open: the device as it is now, mounted elsewhere */
	snapshot_to_m1();
	old = g_fs;
	assert_int_equal(do_mount("M1"), 0);
	assert_int_equal(lookup(ROOT, "victim", NULL), -ENOENT);
	assert_int_equal(lookup(ROOT, "keep", &g), 0);
	assert_int_equal(g_r.e.attr.size, 70000 + sizeof(buf));
	assert_int_equal(open_(g, O_RDONLY, &fh), 0);
	{
		uint8_t r[8192];

		assert_int_equal(pread_(fh, r, sizeof(r), 70000), sizeof(r));
		assert_memory_equal(r, buf, sizeof(r));
	}
	assert_int_equal(release(fh), 0);
	/* the orphan's cluster was reclaimed: only "keep"'s one cluster is used */
	m1free = free_clusters();
	assert_int_equal(before - m1free, 1);
	assert_int_equal(do_unmount(), 0);
	g_fs = old;
	assert_int_equal(release(fh2), 0);
	assert_int_equal(release(vfh), 0);
	(void)f;
}

static void test_rename(void **state)
{
	struct ust_blobfs_file *fh;
	struct ust_blobfs_attr a;
	uint64_t d1, d2, sub, f1, f2, x, y;

	(void)state;
	assert_int_equal(mkdir_(ROOT, "d1", &d1), 0);
	assert_int_equal(mkdir_(ROOT, "d2", &d2), 0);
	assert_int_equal(mkdir_(d1, "sub", &sub), 0);
	assert_int_equal(create(d1, "f1", &fh, &f1), 0);
	assert_int_equal(release(fh), 0);
	assert_int_equal(create(d2, "f2", &fh, &f2), 0);
	assert_int_equal(release(fh), 0);
	/* across directories */
	assert_int_equal(rename_(d1, "f1", d2, "g", 0), 0);
	assert_int_equal(lookup(d1, "f1", NULL), -ENOENT);
	assert_int_equal(lookup(d2, "g", &x), 0);
	assert_int_equal(x, f1);
	/* over an existing file: the victim goes */
	assert_int_equal(rename_(d2, "g", d2, "f2", 0), 0);
	assert_int_equal(lookup(d2, "f2", &x), 0);
	assert_int_equal(x, f1);
	assert_int_equal(getattr(f2, &a), 0);
	assert_int_equal(a.nlink, 0);
	/* NOREPLACE */
	assert_int_equal(create(d1, "n", &fh, NULL), 0);
	assert_int_equal(release(fh), 0);
	assert_int_equal(rename_(d1, "n", d2, "f2", UST_BLOBFS_RENAME_NOREPLACE), -EEXIST);
	assert_int_equal(rename_(d1, "n", d2, "n2", UST_BLOBFS_RENAME_NOREPLACE), 0);
	/* EXCHANGE: a file and a directory swap places */
	assert_int_equal(rename_(d2, "f2", d1, "sub", UST_BLOBFS_RENAME_EXCHANGE), 0);
	assert_int_equal(lookup(d1, "sub", &x), 0);
	assert_int_equal(x, f1);
	assert_int_equal(lookup(d2, "f2", &y), 0);
	assert_int_equal(y, sub);
	assert_int_equal(getattr(d1, &a), 0);
	assert_int_equal(a.nlink, 2);
	assert_int_equal(getattr(d2, &a), 0);
	assert_int_equal(a.nlink, 3);
	assert_int_equal(lookup(sub, "..", &x), 0);
	assert_int_equal(x, d2);
	assert_int_equal(rename_(d2, "f2", d1, "none", UST_BLOBFS_RENAME_EXCHANGE), -ENOENT);
	/* into its own subdirectory */
	assert_int_equal(rename_(ROOT, "d2", sub, "x", 0), -EINVAL);
	assert_int_equal(rename_(ROOT, "d2", d2, "x", 0), -EINVAL);
	/* over a non-empty directory; dir over file and file over dir */
	assert_int_equal(mkdir_(ROOT, "e", NULL), 0);
	assert_int_equal(rename_(ROOT, "e", ROOT, "d2", 0), -ENOTEMPTY);
	assert_int_equal(rename_(ROOT, "e", d1, "sub", 0), -ENOTDIR);
	assert_int_equal(rename_(d1, "sub", ROOT, "e", 0), -EISDIR);
	/* over an empty directory */
	assert_int_equal(mkdir_(ROOT, "e2", &x), 0);
	assert_int_equal(rename_(ROOT, "e", ROOT, "e2", 0), 0);
	assert_int_equal(getattr(x, &a), 0);
	assert_int_equal(a.nlink, 0);
	/* onto itself, and onto another link of the same inode: nothing happens */
	assert_int_equal(rename_(d1, "sub", d1, "sub", 0), 0);
	assert_int_equal(link_(f1, ROOT, "hl"), 0);
	assert_int_equal(rename_(d1, "sub", ROOT, "hl", 0), 0);
	assert_int_equal(lookup(d1, "sub", NULL), 0);
	assert_int_equal(rename_(ROOT, "missing", ROOT, "x", 0), -ENOENT);
	assert_int_equal(rename_(ROOT, "hl", ROOT, "x", 3), -EINVAL);
	/* everything survives a remount */
	assert_int_equal(do_unmount(), 0);
	assert_int_equal(do_mount("M0"), 0);
	assert_int_equal(lookup(ROOT, "d2", &d2), 0);
	assert_int_equal(lookup(d2, "f2", &y), 0);
	assert_int_equal(y, sub);
	assert_int_equal(lookup(d2, "n2", NULL), 0);
	assert_int_equal(lookup(ROOT, "hl", &x), 0);
	assert_int_equal(g_r.e.attr.nlink, 2);
	assert_int_equal(lookup(ROOT, "e", NULL), -ENOENT);
	assert_int_equal(lookup(ROOT, "e2", NULL), 0);
}

static void test_readdir_stable(void **state)
{
	struct ust_blobfs_file *dh, *fh;
	struct dl l, seen;
	char name[16], gone_unseen[32] = "", gone_seen[32] = "";
	uint64_t off;
	int i, j;

	(void)state;
	for (i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "f%02d", i);
		assert_int_equal(create(ROOT, name, &fh, NULL), 0);
		assert_int_equal(release(fh), 0);
	}
	ust_blobfs_opendir(g_fs, &g_ctx, ROOT, bft_open_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	dh = g_r.fh;
	memset(&seen, 0, sizeof(seen));
	/* read 5 at a time; between calls remove one not yet seen and one seen, add one */
	off = 0;
	for (j = 0; j < 20; j++) {
		assert_int_equal(readdir_(dh, off, 5, &l), 0);
		if (l.n == 0) {
			break;
		}
		for (i = 0; i < l.n; i++) {
			int k;

			for (k = 0; k < seen.n; k++) {
				assert_string_not_equal(seen.names[k], l.names[i]); /* never twice */
			}
			snprintf(seen.names[seen.n++], sizeof(seen.names[0]), "%s", l.names[i]);
		}
		off = l.offs[l.n - 1];
		if (j == 0) {
			/* (entries come in hash order: pick the victims by what was returned) */
			assert_string_equal(l.names[0], ".");
			assert_string_equal(l.names[1], "..");
			assert_int_equal(l.n, 5);
			snprintf(gone_seen, sizeof(gone_seen), "%s", l.names[2]);
			for (i = 0; i < 20 && gone_unseen[0] == '\0'; i++) {
				snprintf(name, sizeof(name), "f%02d", i);
				if (!dl_has(&seen, name)) {
					snprintf(gone_unseen, sizeof(gone_unseen), "%s", name);
				}
			}
			assert_int_equal(unlink_(ROOT, gone_unseen), 0); /* not yet seen */
			assert_int_equal(unlink_(ROOT, gone_seen), 0);   /* already seen */
			assert_int_equal(create(ROOT, "new", &fh, NULL), 0); /* seen or not, once at most */
			assert_int_equal(release(fh), 0);
		}
	}
	/* every entry that existed throughout was returned exactly once (never twice: above) */
	for (i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "f%02d", i);
		if (strcmp(name, gone_unseen) != 0) {
			assert_true(dl_has(&seen, name));
		}
	}
	assert_false(dl_has(&seen, gone_unseen));
	assert_int_equal(seen.n, 2 + 19 + (dl_has(&seen, "new") ? 1 : 0));
	/* offsets survive a remount */
	assert_int_equal(readdir_(dh, 0, 64, &l), 0);
	off = l.offs[9];
	assert_int_equal(readdir_(dh, off, 64, &seen), 0);
	ust_blobfs_releasedir(g_fs, dh, bft_op_cb, begin());
	finish();
	assert_int_equal(do_unmount(), 0);
	assert_int_equal(do_mount("M0"), 0);
	ust_blobfs_opendir(g_fs, &g_ctx, ROOT, bft_open_cb, begin());
	finish();
	dh = g_r.fh;
	assert_int_equal(readdir_(dh, off, 64, &l), 0);
	assert_int_equal(l.n, seen.n);
	for (i = 0; i < l.n; i++) {
		assert_string_equal(l.names[i], seen.names[i]);
	}
	ust_blobfs_releasedir(g_fs, dh, bft_op_cb, begin());
	finish();
}

static void test_attrs_and_times(void **state)
{
	struct ust_blobfs_ctx user = {.uid = 1000, .gid = 1000};
	struct ust_blobfs_ctx other = {.uid = 2000, .gid = 2000};
	struct ust_blobfs_file *fh, *ffh;
	struct ust_blobfs_attr a, b;
	uint64_t f, d;
	char buf[64];

	(void)state;
	assert_int_equal(create_ctx(&user, ROOT, "f", O_CREAT | O_RDWR, &ffh, &f), 0);
	fh = ffh;
	assert_int_equal(getattr(f, &a), 0);
	assert_int_equal(a.uid, 1000);
	/* mtime and ctime move on write, in nanoseconds */
	assert_int_equal(pwrite_ctx(&user, fh, "x", 1, 0), 1);
	assert_int_equal(getattr(f, &b), 0);
	assert_true(b.mtime.tv_sec > a.mtime.tv_sec ||
		    (b.mtime.tv_sec == a.mtime.tv_sec && b.mtime.tv_nsec > a.mtime.tv_nsec));
	assert_true(b.ctime.tv_sec == b.mtime.tv_sec && b.ctime.tv_nsec == b.mtime.tv_nsec);
	/* chmod: owner yes, someone else EPERM */
	a.mode = 06755;
	assert_int_equal(setattr_ctx(&other, f, &a, UST_BLOBFS_SET_MODE), -EPERM);
	a.mode = 06755;
	assert_int_equal(setattr_ctx(&user, f, &a, UST_BLOBFS_SET_MODE), 0);
	assert_int_equal(a.mode, S_IFREG | 06755);
	/* a write by a non-owner clears set-user-ID and set-group-ID */
	assert_int_equal(pwrite_ctx(&other, fh, "y", 1, 1), 1);
	assert_int_equal(getattr(f, &a), 0);
	assert_int_equal(a.mode, S_IFREG | 0755);
	/* chown: only root changes the owner; it clears set-user-ID */
	a.mode = 04755;
	assert_int_equal(setattr_ctx(&user, f, &a, UST_BLOBFS_SET_MODE), 0);
	a.uid = 3000;
	assert_int_equal(setattr_ctx(&user, f, &a, UST_BLOBFS_SET_UID), -EPERM);
	a.uid = 3000;
	assert_int_equal(setattr_ctx(&g_ctx, f, &a, UST_BLOBFS_SET_UID), 0);
	assert_int_equal(a.uid, 3000);
	assert_int_equal(a.mode, S_IFREG | 0755);
	/* explicit times: owner or root only; ctime moves */
	b = a;
	a.atime.tv_sec = 1000;
	a.atime.tv_nsec = 123456789;
	a.mtime.tv_sec = 2000;
	a.mtime.tv_nsec = 987654321;
	assert_int_equal(setattr_ctx(&other, f, &a, UST_BLOBFS_SET_ATIME | UST_BLOBFS_SET_MTIME), -EPERM);
	a.atime.tv_sec = 1000;
	a.atime.tv_nsec = 123456789;
	a.mtime.tv_sec = 2000;
	a.mtime.tv_nsec = 987654321;
	assert_int_equal(setattr_ctx(&g_ctx, f, &a, UST_BLOBFS_SET_ATIME | UST_BLOBFS_SET_MTIME), 0);
	assert_int_equal(a.mtime.tv_sec, 2000);
	assert_int_equal(a.mtime.tv_nsec, 987654321);
	assert_true(a.ctime.tv_sec >= b.ctime.tv_sec);
	/* truncate of a directory */
	assert_int_equal(mkdir_(ROOT, "d", &d), 0);
	assert_int_equal(truncate_(d, 0), -EISDIR);
	/* xattrs: user.* only */
	ust_blobfs_setxattr(g_fs, &g_ctx, f, "user.k", "v1", 2, 0, bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	ust_blobfs_setxattr(g_fs, &g_ctx, f, "user.k", "v2", 2, UST_BLOBFS_XATTR_CREATE, bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, -EEXIST);
	ust_blobfs_setxattr(g_fs, &g_ctx, f, "user.n", "v2", 2, UST_BLOBFS_XATTR_REPLACE, bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, -ENODATA);
	ust_blobfs_setxattr(g_fs, &g_ctx, f, "trusted.k", "v", 1, 0, bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, -ENOTSUP);
	ust_blobfs_getxattr(g_fs, &g_ctx, f, "user.k", buf, 1, bft_size_cb, begin());
	finish();
	assert_int_equal(g_r.n, -ERANGE);
	ust_blobfs_getxattr(g_fs, &g_ctx, f, "user.k", buf, sizeof(buf), bft_size_cb, begin());
	finish();
	assert_int_equal(g_r.n, 2);
	assert_memory_equal(buf, "v1", 2);
	ust_blobfs_listxattr(g_fs, &g_ctx, f, buf, sizeof(buf), bft_size_cb, begin());
	finish();
	assert_int_equal(g_r.n, 7);
	assert_string_equal(buf, "user.k");
	ust_blobfs_removexattr(g_fs, &g_ctx, f, "user.k", bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	ust_blobfs_getxattr(g_fs, &g_ctx, f, "user.k", buf, sizeof(buf), bft_size_cb, begin());
	finish();
	assert_int_equal(g_r.n, -ENODATA);
	/* sticky directory: only owners may remove */
	a.mode = 01777;
	assert_int_equal(setattr_ctx(&g_ctx, d, &a, UST_BLOBFS_SET_MODE), 0);
	assert_int_equal(create_ctx(&user, d, "mine", O_CREAT | O_RDWR, &fh, NULL), 0);
	assert_int_equal(release(fh), 0);
	ust_blobfs_unlink(g_fs, &other, d, "mine", bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, -EPERM);
	ust_blobfs_unlink(g_fs, &user, d, "mine", bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	/* permission checks when asked for */
	other.check_access = true;
	ust_blobfs_open(g_fs, &other, f, O_WRONLY, bft_open_cb, begin());
	finish();
	assert_int_equal(g_r.rc, -EACCES);
	ust_blobfs_mkdir(g_fs, &other, ROOT, "nope", 0755, bft_entry_cb, begin());
	finish();
	assert_int_equal(g_r.rc, -EACCES);
	assert_int_equal(release(ffh), 0);
}

static void test_paths(void **state)
{
	struct ust_blobfs_file *fh;
	char longpath[5000];
	uint8_t r[16];

	(void)state;
	ust_blobfs_path_mkdir(g_fs, &g_ctx, "/a", 0755, bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	ust_blobfs_path_mkdir(g_fs, &g_ctx, "/a/b", 0755, bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	ust_blobfs_path_open(g_fs, &g_ctx, "/a/b/f", O_CREAT | O_RDWR, 0644, bft_open_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	fh = g_r.fh;
	assert_int_equal(pwrite_(fh, "hello", 5, 0), 5);
	assert_int_equal(fsync_(fh), 0);
	assert_int_equal(release(fh), 0);
	ust_blobfs_symlink(g_fs, &g_ctx, "/a/b", ROOT, "l", bft_entry_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	ust_blobfs_path_open(g_fs, &g_ctx, "/l/f", O_RDONLY, 0, bft_open_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	fh = g_r.fh;
	assert_int_equal(pread_(fh, r, sizeof(r), 0), 5);
	assert_memory_equal(r, "hello", 5);
	assert_int_equal(release(fh), 0);
	ust_blobfs_path_stat(g_fs, &g_ctx, "/l", bft_attr_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	assert_true(S_ISDIR(g_r.a.mode));
	ust_blobfs_path_open(g_fs, &g_ctx, "/l", O_RDONLY | O_NOFOLLOW, 0, bft_open_cb, begin());
	finish();
	assert_int_equal(g_r.rc, -ELOOP);
	ust_blobfs_symlink(g_fs, &g_ctx, "/loop", ROOT, "loop", bft_entry_cb, begin());
	finish();
	ust_blobfs_path_stat(g_fs, &g_ctx, "/loop/x", bft_attr_cb, begin());
	finish();
	assert_int_equal(g_r.rc, -ELOOP);
	ust_blobfs_path_open(g_fs, &g_ctx, "/a/b/f", O_CREAT | O_EXCL | O_RDWR, 0644, bft_open_cb, begin());
	finish();
	assert_int_equal(g_r.rc, -EEXIST);
	ust_blobfs_path_stat(g_fs, &g_ctx, "/a/x/f", bft_attr_cb, begin());
	finish();
	assert_int_equal(g_r.rc, -ENOENT);
	ust_blobfs_path_stat(g_fs, &g_ctx, "/a/b/f/x", bft_attr_cb, begin());
	finish();
	assert_int_equal(g_r.rc, -ENOTDIR);
	memset(longpath, 'a', sizeof(longpath));
	longpath[0] = '/';
	longpath[4999] = '\0';
	ust_blobfs_path_stat(g_fs, &g_ctx, longpath, bft_attr_cb, begin());
	finish();
	assert_int_equal(g_r.rc, -ENAMETOOLONG);
	ust_blobfs_path_rename(g_fs, &g_ctx, "/a/b/f", "/a/g", 0, bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	ust_blobfs_path_unlink(g_fs, &g_ctx, "/a/g", bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	ust_blobfs_path_rmdir(g_fs, &g_ctx, "/a", bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, -ENOTEMPTY);
	ust_blobfs_path_rmdir(g_fs, &g_ctx, "/a/b", bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
}

/* A call from another thread is forwarded and answered on that thread. */
static struct ust_thread *g_cb_thread;

static void thread_cb(void *arg, const struct ust_blobfs_entry *e, int rc)
{
	(void)e;
	g_cb_thread = ust_get_thread();
	bft_entry_cb(arg, e, rc);
}

static void call_from_t1(void *arg)
{
	ust_blobfs_mkdir(g_fs, &g_ctx, ROOT, "fromt1", 0700, thread_cb, arg);
}

static void test_threads(void **state)
{
	(void)state;
	begin();
	ust_thread_send_msg(ut_thread(1), call_from_t1, &g_r);
	finish();
	assert_int_equal(g_r.rc, 0);
	assert_ptr_equal(g_cb_thread, ut_thread(1));
	assert_int_equal(lookup(ROOT, "fromt1", NULL), 0);
}

/* ---- a big directory (docs/blobfs-format.md 4.2) ------------------------------------------------ */

static int count_fill(void *arg, const struct ust_blobfs_dirent *d)
{
	(void)d;
	(*(uint64_t *)arg)++;
	return 0;
}

static uint64_t count_entries(uint64_t dir)
{
	struct ust_blobfs_file *dh;
	uint64_t n = 0;

	ust_blobfs_opendir(g_fs, &g_ctx, dir, bft_open_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	dh = g_r.fh;
	ust_blobfs_readdir(g_fs, dh, 0, false, count_fill, &n, bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	ust_blobfs_releasedir(g_fs, dh, bft_op_cb, begin());
	finish();
	return n;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Create, stat and unlink many files in one directory through the C API and
 * print the rates (never asserted: the machine decides). 5 000 files by
 * default; BLOBFS_UT_BIGDIR_FILES=N runs N (the product's case is 100 000;
 * the malloc bdev takes 12 KiB per inode slot: two root pages and a pool
 * page).
 */
static void test_big_directory(void **state)
{
	const char *env = getenv("BLOBFS_UT_BIGDIR_FILES");
	uint64_t n = env != NULL ? strtoull(env, NULL, 0) : 5000, i, d, ino, slots;
	struct ust_malloc_opts mo = {.name = "BIG", .block_size = 4096};
	struct ust_blobfs_opts o;
	struct ust_blobfs *saved = g_fs;
	struct ust_blobfs_attr a;
	char name[64];
	double t0, t1, t2, t3;
	int done = 0;

	(void)state;
	if (n < 100) {
		n = 100;
	}
	slots = n + 64;
	/* per inode slot: two root pages and one pool page; plus the directory and slack */
	mo.num_blocks = slots * 3 + n / 32 + 8192;
	assert_int_equal(ust_bdev_malloc_create(&mo, NULL), 0);
	ust_blobfs_opts_init(&o);
	o.max_inodes = (uint32_t)slots;
	ust_blobfs_format("BIG", &o, NULL, bft_fs_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	g_fs = g_r.fs;
	assert_int_equal(mkdir_(ROOT, "big", &d), 0);
	t0 = now_s();
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "file-%08" PRIu64 ".dat", i);
		assert_int_equal(mknod_(d, name, S_IFREG | 0644, 0, NULL), 0);
	}
	t1 = now_s();
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "file-%08" PRIu64 ".dat", i);
		assert_int_equal(lookup(d, name, &ino), 0);
		assert_true(S_ISREG(g_r.e.attr.mode));
		assert_int_equal(g_r.e.attr.nlink, 1);
	}
	t2 = now_s();
	assert_int_equal(count_entries(d), n + 2);
	assert_int_equal(mknod_(d, "file-00000007.dat", S_IFREG | 0644, 0, NULL), -EEXIST);
	/* the blocks come back from the disk */
	assert_int_equal(do_unmount(), 0);
	assert_int_equal(do_mount("BIG"), 0);
	assert_int_equal(lookup(ROOT, "big", &d), 0);
	assert_int_equal(count_entries(d), n + 2);
	for (i = 0; i < n; i += 97) {
		snprintf(name, sizeof(name), "file-%08" PRIu64 ".dat", i);
		assert_int_equal(lookup(d, name, NULL), 0);
	}
	t3 = now_s();
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "file-%08" PRIu64 ".dat", i);
		assert_int_equal(unlink_(d, name), 0);
	}
	print_message("big directory, %" PRIu64 " files: create %.0f/s, stat %.0f/s, unlink %.0f/s\n", n,
		      (double)n / (t1 - t0), (double)n / (t2 - t1), (double)n / (now_s() - t3));
	assert_int_equal(count_entries(d), 2);
	assert_int_equal(getattr(d, &a), 0);
	assert_int_equal(a.nlink, 2);
	assert_int_equal(rmdir_(ROOT, "big"), 0);
	assert_int_equal(do_unmount(), 0);
	g_fs = saved;
	ust_bdev_malloc_delete("BIG", deleted, &done);
	ut_threads_poll();
	assert_int_equal(done, 1);
}

/* ---- crash consistency ------------------------------------------------------------------------ */

static void cs_done(void *ctx, int rc)
{
	*(int *)ctx = rc == 0 ? 1 : rc;
}

/*
 * A file system on crashsim CS0 (over a new malloc M1), recording from
 * now on. *live: the test's own file system, *rec: the recorded one
 * (g_fs until crash_fs_end()).
 */
static struct ust_crashsim *crash_fs_start(struct ust_blobfs **live, struct ust_blobfs **rec)
{
	struct ust_crashsim *cs;
	struct ust_blobfs_opts o;
	int done = 0;

	assert_int_equal(make_bdev_named("M1"), 0);
	assert_int_equal(ust_crashsim_create("M1", "CS0"), 0);
	cs = ust_crashsim_get("CS0");
	assert_non_null(cs);
	*live = g_fs;
	ust_blobfs_opts_init(&o);
	ust_blobfs_format("CS0", &o, NULL, bft_fs_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	g_fs = g_r.fs;
	*rec = g_fs;
	assert_int_equal(ust_crashsim_start(cs, cs_done, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
	return cs;
}

static void crash_fs_end(struct ust_crashsim_image *img, struct ust_blobfs *rec, struct ust_blobfs *live)
{
	int done = 0;

	ust_crashsim_image_free(img, NULL, NULL);
	ut_threads_poll();
	g_fs = rec;
	assert_int_equal(do_unmount(), 0);
	assert_int_equal(ust_crashsim_delete("CS0", cs_done, &done), 0);
	ut_threads_poll();
	g_fs = live;
}

#define PAT 6000

/* Every name resolves, link counts match the entries, every file holds one whole fsynced pattern. */
static void check_tree(uint64_t dir, uint32_t *links, uint32_t *nls, uint64_t *inos, int *ninos,
		       const uint8_t pats[][PAT], int npats)
{
	struct ust_blobfs_file *dh, *fh;
	struct dl l;
	struct ust_blobfs_attr a;
	uint8_t buf[PAT + 10];
	int i, j, k;

	ust_blobfs_opendir(g_fs, &g_ctx, dir, bft_open_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	dh = g_r.fh;
	assert_int_equal(readdir_(dh, 0, 64, &l), 0);
	ust_blobfs_releasedir(g_fs, dh, bft_op_cb, begin());
	finish();
	for (i = 2; i < l.n; i++) {
		uint64_t ino;

		if (dir == ROOT && strcmp(l.names[i], "big") == 0) {
			continue; /* long names: check_big() */
		}
		assert_int_equal(lookup(dir, l.names[i], &ino), 0);
		a = g_r.e.attr;
		if (S_ISDIR(a.mode)) {
			check_tree(ino, links, nls, inos, ninos, pats, npats);
			continue;
		}
		for (k = 0; k < *ninos && inos[k] != ino; k++) {
		}
		if (k == *ninos) {
			inos[(*ninos)++] = ino;
			links[k] = 0;
			nls[k] = a.nlink;
			assert_int_equal(open_(ino, O_RDONLY, &fh), 0);
			if (a.size == 0) {
				/* created, not yet written and fsynced: only under its first name */
				assert_true(strcmp(l.names[i], "a") == 0 || strcmp(l.names[i], "c") == 0 ||
					    strcmp(l.names[i], "e") == 0 || strcmp(l.names[i], "v1") == 0 ||
					    strcmp(l.names[i], "v2") == 0);
			} else {
				assert_int_equal(pread_(fh, buf, sizeof(buf), 0), PAT);
				for (j = 0; j < npats && memcmp(buf, pats[j], PAT) != 0; j++) {
				}
				assert_true(j < npats);
			}
			assert_int_equal(release(fh), 0);
		}
		links[k]++;
	}
}

#define BIG_N 40
#define BIG_UNLINKED 4

static void big_name(char *buf, int k)
{
	memset(buf, 'x', 240);
	snprintf(buf, 16, "n%02d_", k);
	buf[4] = 'x';
	buf[240] = '\0';
}

/*
 * The directory that grows past several blocks: BIG_N creates, then unlinks
 * of the first BIG_UNLINKED. Each change is atomic and they ran in order, so
 * the names present are 0..m-1, or k..BIG_N-1 with k <= BIG_UNLINKED.
 */
static void check_big(void)
{
	bool has[BIG_N];
	char name[256];
	uint64_t big;
	int k, first = -1, last = -1, count = 0;

	if (lookup(ROOT, "big", &big) != 0) {
		return;
	}
	for (k = 0; k < BIG_N; k++) {
		big_name(name, k);
		has[k] = lookup(big, name, NULL) == 0;
		if (has[k]) {
			assert_int_equal(g_r.e.attr.nlink, 1);
			count++;
			last = k;
			if (first < 0) {
				first = k;
			}
		}
	}
	assert_int_equal(count_entries(big), 2 + (uint64_t)count);
	if (count > 0) {
		assert_int_equal(last - first + 1, count); /* no holes */
		assert_true(first == 0 || (last == BIG_N - 1 && first <= BIG_UNLINKED));
	}
}

static void test_crash_consistency(void **state)
{
	static uint8_t pats[3][PAT];
	struct ust_crashsim *cs;
	struct ust_crashsim_image *img;
	struct ust_blobfs_file *fh;
	struct ust_blobfs *live;
	uint64_t d, a, nev, cut, ino, inos[16];
	uint32_t links[16], nls[16];
	struct ust_blobfs *rec;
	int i, k, ninos, mounted = 0;

	(void)state;
	for (i = 0; i < 3; i++) {
		fill(pats[i], PAT, (uint32_t)i + 40);
	}
	cs = crash_fs_start(&live, &rec);
	/* the workload: every file is written whole and fsynced before it is renamed */
	assert_int_equal(create(ROOT, "a", &fh, &a), 0);
	assert_int_equal(pwrite_(fh, pats[0], PAT, 0), PAT);
	assert_int_equal(fsync_(fh), 0);
	assert_int_equal(release(fh), 0);
	assert_int_equal(mkdir_(ROOT, "d", &d), 0);
	assert_int_equal(rename_(ROOT, "a", d, "b", 0), 0);
	assert_int_equal(create(ROOT, "c", &fh, NULL), 0);
	assert_int_equal(pwrite_(fh, pats[1], PAT, 0), PAT);
	assert_int_equal(fsync_(fh), 0);
	assert_int_equal(release(fh), 0);
	assert_int_equal(link_(a, ROOT, "hl"), 0);
	assert_int_equal(rename_(ROOT, "c", d, "b", 0), 0); /* replaces; a lives on as hl */
	assert_int_equal(create(d, "e", &fh, NULL), 0);
	assert_int_equal(pwrite_(fh, pats[2], PAT, 0), PAT);
	assert_int_equal(fsync_(fh), 0);
	assert_int_equal(release(fh), 0);
	assert_int_equal(rename_(d, "e", ROOT, "hl", UST_BLOBFS_RENAME_EXCHANGE), 0);
	assert_int_equal(unlink_(d, "e"), 0);
	/*
	 * a rename whose victim is deleted and an rmdir: blob deletes issued
	 * beside the directory writes of the same change
	 */
	assert_int_equal(mknod_(d, "v1", S_IFREG | 0644, 0, NULL), 0);
	assert_int_equal(mknod_(d, "v2", S_IFREG | 0644, 0, NULL), 0);
	assert_int_equal(rename_(d, "v1", d, "v2", 0), 0);
	assert_int_equal(mkdir_(d, "gone", NULL), 0);
	assert_int_equal(rmdir_(d, "gone"), 0);
	/* a directory that splits into several blocks (15 such entries fit one) */
	{
		char name[256];
		uint64_t big;

		assert_int_equal(mkdir_(ROOT, "big", &big), 0);
		for (k = 0; k < BIG_N; k++) {
			big_name(name, k);
			assert_int_equal(mknod_(big, name, S_IFREG | 0644, 0, NULL), 0);
		}
		for (k = 0; k < BIG_UNLINKED; k++) {
			big_name(name, k);
			assert_int_equal(unlink_(big, name), 0);
		}
	}
	ust_crashsim_stop(cs);
	nev = ust_crashsim_num_events(cs);
	assert_true(nev > 20);
	assert_int_equal(ust_crashsim_image_create(cs, "IMG", &img), 0);
	for (cut = 0; cut <= nev; cut++) {
		uint64_t seed;

		for (seed = 0; seed < 3; seed++) {
			struct ust_crashsim_crash_opts co = {.cut = cut, .seed = seed * 7919 + cut};

			assert_int_equal(ust_crashsim_image_build(img, &co, NULL), 0);
			ust_blobfs_mount("IMG", NULL, bft_fs_cb, begin());
			finish();
			if (g_r.rc != 0) {
				print_error("cut %lu seed %lu: mount %d\n", (unsigned long)cut,
					    (unsigned long)seed, g_r.rc);
			}
			assert_int_equal(g_r.rc, 0);
			mounted++;
			g_fs = g_r.fs;
			ninos = 0;
			check_tree(ROOT, links, nls, inos, &ninos, pats, 3);
			for (k = 0; k < ninos; k++) {
				assert_int_equal(links[k], nls[k]);
			}
			check_big();
			/* after the last fsync the final state of the file contents is known */
			if (lookup(ROOT, "hl", &ino) == 0) {
				assert_int_equal(g_r.e.attr.size, PAT);
			}
			assert_int_equal(do_unmount(), 0);
		}
	}
	assert_true(mounted > 60);
	crash_fs_end(img, rec, live);
}

/* ---- batched namespace changes ------------------------------------------------------------------ */

#define BATCH_N 6
#define BATCH_FILL 100

static uint64_t count_flushes(struct ust_crashsim *cs, uint64_t from, uint64_t to)
{
	struct ust_crashsim_event ev;
	uint64_t i, n = 0;

	for (i = from; i < to; i++) {
		assert_int_equal(ust_crashsim_get_event(cs, i, &ev), 0);
		n += ev.kind == UST_CRASHSIM_EVENT_SUBMIT && ev.io_type == UST_BDEV_IO_TYPE_FLUSH;
	}
	return n;
}

/* The batch's names, in queue order (pick_batch_names). */
static char g_batch_names[BATCH_N][16];

struct cookie_find {
	const char *name;
	uint64_t cookie;
	bool found;
};

static int cookie_fill(void *arg, const struct ust_blobfs_dirent *d)
{
	struct cookie_find *cf = arg;

	if (strcmp(d->name, cf->name) == 0) {
		cf->cookie = d->next_offset; /* an entry's readdir offset is its cookie */
		cf->found = true;
	}
	return 0;
}

/*
 * Bit 0 of name's key in directory p (its seed is random): name is created,
 * its cookie read (rev31(key) << 32 | ..., docs/blobfs-format.md 4.2, so
 * key bit 0 is cookie bit 62), and name unlinked again.
 */
static unsigned probe_key_bit0(uint64_t p, const char *name)
{
	struct cookie_find cf = {.name = name};
	struct ust_blobfs_file *dh;

	assert_int_equal(mknod_(p, name, S_IFREG | 0644, 0, NULL), 0);
	ust_blobfs_opendir(g_fs, &g_ctx, p, bft_open_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	dh = g_r.fh;
	ust_blobfs_readdir(g_fs, dh, 0, false, cookie_fill, &cf, bft_op_cb, begin());
	finish();
	assert_int_equal(g_r.rc, 0);
	ust_blobfs_releasedir(g_fs, dh, bft_op_cb, begin());
	finish();
	assert_true(cf.found);
	assert_int_equal(unlink_(p, name), 0);
	return (unsigned)(cf.cookie >> 62) & 1;
}

/*
 * Names whose keys alternate in bit 0, so that batches form whatever p's
 * seed: p spans several blocks, so every bucket has depth 1 or more and two
 * names that differ in key bit 0 never share one. A change that cannot join
 * a batch leads the next one, which the change queued behind it (the other
 * bit) joins: no two changes in a row run alone, so the BATCH_N changes
 * take at most BATCH_N / 2 + 1 batches.
 */
static void pick_batch_names(uint64_t p)
{
	char pool[2][BATCH_N / 2][16];
	unsigned have[2] = {0, 0}, bit;
	char name[16];
	int k;

	for (k = 0; have[0] < BATCH_N / 2 || have[1] < BATCH_N / 2; k++) {
		assert_true(k < 1000); /* each probe is a coin flip */
		snprintf(name, sizeof(name), "b%d", k);
		bit = probe_key_bit0(p, name);
		if (have[bit] < BATCH_N / 2) {
			memcpy(pool[bit][have[bit]++], name, sizeof(name));
		}
	}
	for (k = 0; k < BATCH_N; k++) {
		memcpy(g_batch_names[k], pool[k % 2][k / 2], sizeof(g_batch_names[k]));
	}
}

/* BATCH_N creates (unlink: false) or unlinks in dir p, all in flight at once. */
static void batch_run(uint64_t p, bool unlink)
{
	struct bft_res r[BATCH_N];
	int k, left;

	memset(r, 0, sizeof(r));
	for (k = 0; k < BATCH_N; k++) {
		if (unlink) {
			ust_blobfs_unlink(g_fs, &g_ctx, p, g_batch_names[k], bft_op_cb, &r[k]);
		} else {
			ust_blobfs_mknod(g_fs, &g_ctx, p, g_batch_names[k], S_IFREG | 0644, 0, bft_entry_cb,
					 &r[k]);
		}
	}
	ut_threads_poll();
	for (k = 0, left = 0; k < BATCH_N; k++) {
		assert_true(r[k].done);
		assert_int_equal(r[k].rc, 0);
		left += !r[k].done;
	}
	assert_int_equal(left, 0);
}

/*
 * Changes queued together share one intent batch (docs/blobfs-format.md
 * 5.3): fewer flushes than one change at a time, and after a crash at any
 * point each of them is whole or absent, and every acknowledged one is there.
 */
static void test_crash_batch(void **state)
{
	struct ust_crashsim *cs;
	struct ust_crashsim_image *img;
	struct ust_blobfs *live, *rec;
	uint64_t p, ino, e0, e1, e2, nev, cut, seed, present;
	int k;

	(void)state;
	cs = crash_fs_start(&live, &rec);
	assert_int_equal(mkdir_(ROOT, "p", &p), 0);
	/*
	 * Only changes in distinct buckets share a batch: BATCH_FILL names of
	 * 240 bytes (15 fit a block) spread p over several buckets, and
	 * pick_batch_names chooses names that never fall in one bucket twice in
	 * a row.
	 */
	for (k = 0; k < BATCH_FILL; k++) {
		char big[256];

		memset(big, 'y', 240);
		big[snprintf(big, 8, "f%04d", k)] = 'y';
		big[240] = '\0';
		assert_int_equal(mknod_(p, big, S_IFREG | 0644, 0, NULL), 0);
	}
	pick_batch_names(p);
	e0 = ust_crashsim_num_events(cs);
	batch_run(p, false);
	e1 = ust_crashsim_num_events(cs);
	batch_run(p, true);
	e2 = ust_crashsim_num_events(cs);
	/* one at a time: 3 flushes per create (intent, blob, directory), 3 per unlink */
	assert_true(count_flushes(cs, e0, e1) < 3 * BATCH_N);
	assert_true(count_flushes(cs, e1, e2) < 3 * BATCH_N);
	ust_crashsim_stop(cs);
	nev = ust_crashsim_num_events(cs);
	assert_int_equal(ust_crashsim_image_create(cs, "IMG", &img), 0);
	for (cut = e0; cut <= nev; cut++) {
		for (seed = 0; seed < 3; seed++) {
			struct ust_crashsim_crash_opts co = {.cut = cut, .seed = seed * 7919 + cut};

			assert_int_equal(ust_crashsim_image_build(img, &co, NULL), 0);
			ust_blobfs_mount("IMG", NULL, bft_fs_cb, begin());
			finish();
			assert_int_equal(g_r.rc, 0);
			g_fs = g_r.fs;
			assert_int_equal(lookup(ROOT, "p", &p), 0);
			present = 0;
			for (k = 0; k < BATCH_N; k++) {
				if (lookup(p, g_batch_names[k], &ino) == 0) {
					/* whole: the entry names a live inode with its one ref */
					assert_int_equal(g_r.e.attr.nlink, 1);
					assert_true(S_ISREG(g_r.e.attr.mode));
					present++;
				}
			}
			assert_int_equal(count_entries(p), 2 + BATCH_FILL + present);
			if (cut == e1) {
				assert_int_equal(present, BATCH_N); /* every create was acknowledged */
			}
			if (cut >= e2) {
				assert_int_equal(present, 0); /* every unlink was acknowledged */
			}
			assert_int_equal(do_unmount(), 0);
		}
	}
	crash_fs_end(img, rec, live);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_format_mount, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_namespace_errors, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_special_files, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_io, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_hard_links_and_orphans, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_orphan_after_crash, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_open_trunc_durable, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_rename, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_readdir_stable, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_attrs_and_times, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_paths, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_threads, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_big_directory, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_crash_consistency, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_crash_batch, make_fs, drop_fs),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
