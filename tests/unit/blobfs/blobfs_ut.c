/*
 * Unit tests for the blobfs namespace (blobfs/) on a malloc bdev, threads
 * polled by hand: format and mount, every namespace operation with its
 * POSIX errors, symlinks and special files, hard links and link counts,
 * unlink of an open file or directory, rename (replace, NOREPLACE,
 * EXCHANGE, across directories, into its own subdirectory, over a
 * non-empty directory), readdir offsets that stay stable while entries come
 * and go and across a remount, path calls, a call from another thread, and
 * a directory of many entries. File contents and attributes are in
 * blobfs_file_ut.c, crash images and replay in blobfs_crash_ut.c.
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

#include <cmocka.h>

#include "ustor/blobfs.h"
#include "ustor/thread.h"
#include "blobfs_test.h"
#include "ut_threads.h"

#include "../../../bdev/malloc/bdev_malloc.h"

/* ---- namespace operations ---------------------------------------------------------------------- */

static void test_format_mount(void **state)
{
	struct ust_blobfs_attr a;
	uint64_t d;

	(void)state;
	assert_int_equal(bft_getattr(BFT_ROOT, &a), 0);
	assert_true(S_ISDIR(a.mode));
	assert_int_equal(a.ino, BFT_ROOT);
	assert_int_equal(a.nlink, 2);
	assert_int_equal(bft_mkdir(BFT_ROOT, "d", &d), 0);
	assert_int_equal(bft_getattr(BFT_ROOT, &a), 0);
	assert_int_equal(a.nlink, 3);
	assert_int_equal(bft_unmount(), 0);
	assert_int_equal(bft_mount("M0"), 0);
	assert_int_equal(bft_lookup(BFT_ROOT, "d", &d), 0);
	assert_true(bft_r.e.attr.mode == (S_IFDIR | 0755));
	/* a store that is not blobfs */
	assert_int_equal(bft_unmount(), 0);
	assert_int_equal(bft_mount("nosuch"), -ENODEV);
	assert_int_equal(bft_mount("M0"), 0);
}

static void test_namespace_errors(void **state)
{
	struct ust_blobfs_file *fh;
	uint64_t d, f, x;
	char longname[300];

	(void)state;
	memset(longname, 'a', sizeof(longname));
	longname[256] = '\0';
	assert_int_equal(bft_mkdir(BFT_ROOT, "d", &d), 0);
	assert_int_equal(bft_mkdir(BFT_ROOT, "d", NULL), -EEXIST);
	assert_int_equal(bft_mkdir(BFT_ROOT, longname, NULL), -ENAMETOOLONG);
	longname[255] = '\0';
	assert_int_equal(bft_mkdir(BFT_ROOT, longname, &x), 0); /* 255 is fine */
	assert_int_equal(bft_lookup(BFT_ROOT, "nope", NULL), -ENOENT);
	assert_int_equal(bft_create(d, "f", &fh, &f), 0);
	assert_int_equal(bft_release(fh), 0);
	assert_int_equal(bft_create(d, "f", &fh, NULL), -EEXIST);
	assert_int_equal(bft_lookup(f, "x", NULL), -ENOTDIR);
	assert_int_equal(bft_mkdir(f, "x", NULL), -ENOTDIR);
	assert_int_equal(bft_rmdir(BFT_ROOT, "d"), -ENOTEMPTY);
	assert_int_equal(bft_rmdir(d, "f"), -ENOTDIR);
	assert_int_equal(bft_unlink(BFT_ROOT, "d"), -EISDIR);
	assert_int_equal(bft_unlink(BFT_ROOT, "nope"), -ENOENT);
	assert_int_equal(bft_link(d, BFT_ROOT, "dl"), -EPERM);
	assert_int_equal(bft_link(f, d, "f"), -EEXIST);
	assert_int_equal(bft_mknod(BFT_ROOT, "bad", S_IFDIR | 0644, 0, NULL), -EINVAL);
	assert_int_equal(bft_open(d, O_RDWR, &fh), -EISDIR);
	assert_int_equal(bft_unlink(d, "f"), 0);
	assert_int_equal(bft_rmdir(BFT_ROOT, "d"), 0);
	assert_int_equal(bft_lookup(BFT_ROOT, "d", NULL), -ENOENT);
	assert_int_equal(bft_mkdir(d, "z", NULL), -ENOENT); /* removed directory */
}

static void test_special_files(void **state)
{
	struct ust_blobfs_attr a;
	uint64_t s, p, c;
	char buf[64];

	(void)state;
	ust_blobfs_symlink(bft_fs, &bft_ctx, "../target/x", BFT_ROOT, "ln", bft_entry_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	s = bft_r.e.ino;
	assert_true(S_ISLNK(bft_r.e.attr.mode));
	assert_int_equal(bft_r.e.attr.size, 11);
	ust_blobfs_readlink(bft_fs, &bft_ctx, s, buf, sizeof(buf), bft_size_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.n, 11);
	assert_memory_equal(buf, "../target/x", 11);
	assert_int_equal(bft_mknod(BFT_ROOT, "fifo", S_IFIFO | 0600, 0, &p), 0);
	assert_int_equal(bft_mknod(BFT_ROOT, "chr", S_IFCHR | 0600, 0x0501, &c), 0);
	assert_int_equal(bft_unmount(), 0);
	assert_int_equal(bft_mount("M0"), 0);
	assert_int_equal(bft_lookup(BFT_ROOT, "chr", &c), 0);
	assert_true(S_ISCHR(bft_r.e.attr.mode));
	assert_int_equal(bft_r.e.attr.rdev, 0x0501);
	assert_int_equal(bft_lookup(BFT_ROOT, "fifo", &p), 0);
	assert_true(S_ISFIFO(bft_r.e.attr.mode));
	ust_blobfs_readlink(bft_fs, &bft_ctx, p, buf, sizeof(buf), bft_size_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.n, -EINVAL);
	assert_int_equal(bft_getattr(s, &a), 0);
	assert_true(S_ISLNK(a.mode));
}

static void test_hard_links_and_orphans(void **state)
{
	struct ust_blobfs_file *fh;
	struct ust_blobfs_attr a;
	uint64_t f, d, before;
	uint8_t buf[4096], r[4096];

	(void)state;
	bft_fill(buf, sizeof(buf), 3);
	assert_int_equal(bft_mkdir(BFT_ROOT, "d", &d), 0);
	/* d's first entry gives it its first data cluster (its block 0), for good */
	assert_int_equal(bft_mknod(d, "tmp", S_IFREG | 0644, 0, NULL), 0);
	assert_int_equal(bft_unlink(d, "tmp"), 0);
	before = bft_free_clusters();
	assert_int_equal(bft_create(BFT_ROOT, "a", &fh, &f), 0);
	assert_int_equal(bft_pwrite(fh, buf, sizeof(buf), 0), sizeof(buf));
	assert_int_equal(bft_link(f, d, "b"), 0);
	assert_int_equal(bft_r.e.attr.nlink, 2);
	assert_int_equal(bft_r.e.ino, f);
	assert_int_equal(bft_link(f, BFT_ROOT, "c"), 0);
	assert_int_equal(bft_getattr(f, &a), 0);
	assert_int_equal(a.nlink, 3);
	assert_int_equal(bft_unlink(BFT_ROOT, "a"), 0);
	assert_int_equal(bft_unlink(BFT_ROOT, "c"), 0);
	assert_int_equal(bft_getattr(f, &a), 0);
	assert_int_equal(a.nlink, 1);
	assert_int_equal(bft_lookup(d, "b", NULL), 0);
	/* unlink while open: the data stays until the last close */
	assert_int_equal(bft_unlink(d, "b"), 0);
	assert_int_equal(bft_getattr(f, &a), 0);
	assert_int_equal(a.nlink, 0);
	assert_int_equal(bft_pread(fh, r, sizeof(r), 0), sizeof(r));
	assert_memory_equal(r, buf, sizeof(r));
	assert_int_equal(bft_pwrite(fh, buf, 100, 5000), 100);
	assert_true(bft_free_clusters() < before);
	assert_int_equal(bft_link(f, BFT_ROOT, "again"), -ENOENT);
	/* a directory removed while open has no links either (as Linux: fstat shows 0) */
	{
		struct ust_blobfs_file *dh;
		uint64_t od;

		assert_int_equal(bft_mkdir(BFT_ROOT, "od", &od), 0);
		ust_blobfs_opendir(bft_fs, &bft_ctx, od, bft_open_cb, bft_begin());
		bft_finish();
		assert_int_equal(bft_r.rc, 0);
		dh = bft_r.fh;
		assert_int_equal(bft_getattr(od, &a), 0);
		assert_int_equal(a.nlink, 2);
		assert_int_equal(bft_rmdir(BFT_ROOT, "od"), 0);
		assert_int_equal(bft_getattr(od, &a), 0);
		assert_int_equal(a.nlink, 0);
		ust_blobfs_releasedir(bft_fs, dh, bft_op_cb, bft_begin());
		bft_finish();
		assert_int_equal(bft_r.rc, 0);
	}
	assert_int_equal(bft_unmount(), -EBUSY);
	assert_int_equal(bft_release(fh), 0);
	assert_int_equal(bft_free_clusters(), before);
	assert_int_equal(bft_unmount(), 0);
	assert_int_equal(bft_mount("M0"), 0);
	assert_int_equal(bft_lookup(BFT_ROOT, "a", NULL), -ENOENT);
	assert_int_equal(bft_free_clusters(), before);
}

static void test_rename(void **state)
{
	struct ust_blobfs_file *fh;
	struct ust_blobfs_attr a;
	uint64_t d1, d2, sub, f1, f2, x, y;

	(void)state;
	assert_int_equal(bft_mkdir(BFT_ROOT, "d1", &d1), 0);
	assert_int_equal(bft_mkdir(BFT_ROOT, "d2", &d2), 0);
	assert_int_equal(bft_mkdir(d1, "sub", &sub), 0);
	assert_int_equal(bft_create(d1, "f1", &fh, &f1), 0);
	assert_int_equal(bft_release(fh), 0);
	assert_int_equal(bft_create(d2, "f2", &fh, &f2), 0);
	assert_int_equal(bft_release(fh), 0);
	/* across directories */
	assert_int_equal(bft_rename(d1, "f1", d2, "g", 0), 0);
	assert_int_equal(bft_lookup(d1, "f1", NULL), -ENOENT);
	assert_int_equal(bft_lookup(d2, "g", &x), 0);
	assert_int_equal(x, f1);
	/* over an existing file: the victim goes */
	assert_int_equal(bft_rename(d2, "g", d2, "f2", 0), 0);
	assert_int_equal(bft_lookup(d2, "f2", &x), 0);
	assert_int_equal(x, f1);
	assert_int_equal(bft_getattr(f2, &a), 0);
	assert_int_equal(a.nlink, 0);
	/* NOREPLACE */
	assert_int_equal(bft_create(d1, "n", &fh, NULL), 0);
	assert_int_equal(bft_release(fh), 0);
	assert_int_equal(bft_rename(d1, "n", d2, "f2", UST_BLOBFS_RENAME_NOREPLACE), -EEXIST);
	assert_int_equal(bft_rename(d1, "n", d2, "n2", UST_BLOBFS_RENAME_NOREPLACE), 0);
	/* EXCHANGE: a file and a directory swap places */
	assert_int_equal(bft_rename(d2, "f2", d1, "sub", UST_BLOBFS_RENAME_EXCHANGE), 0);
	assert_int_equal(bft_lookup(d1, "sub", &x), 0);
	assert_int_equal(x, f1);
	assert_int_equal(bft_lookup(d2, "f2", &y), 0);
	assert_int_equal(y, sub);
	assert_int_equal(bft_getattr(d1, &a), 0);
	assert_int_equal(a.nlink, 2);
	assert_int_equal(bft_getattr(d2, &a), 0);
	assert_int_equal(a.nlink, 3);
	assert_int_equal(bft_lookup(sub, "..", &x), 0);
	assert_int_equal(x, d2);
	assert_int_equal(bft_rename(d2, "f2", d1, "none", UST_BLOBFS_RENAME_EXCHANGE), -ENOENT);
	/* into its own subdirectory */
	assert_int_equal(bft_rename(BFT_ROOT, "d2", sub, "x", 0), -EINVAL);
	assert_int_equal(bft_rename(BFT_ROOT, "d2", d2, "x", 0), -EINVAL);
	/* over a non-empty directory; dir over file and file over dir */
	assert_int_equal(bft_mkdir(BFT_ROOT, "e", NULL), 0);
	assert_int_equal(bft_rename(BFT_ROOT, "e", BFT_ROOT, "d2", 0), -ENOTEMPTY);
	assert_int_equal(bft_rename(BFT_ROOT, "e", d1, "sub", 0), -ENOTDIR);
	assert_int_equal(bft_rename(d1, "sub", BFT_ROOT, "e", 0), -EISDIR);
	/* over an empty directory */
	assert_int_equal(bft_mkdir(BFT_ROOT, "e2", &x), 0);
	assert_int_equal(bft_rename(BFT_ROOT, "e", BFT_ROOT, "e2", 0), 0);
	assert_int_equal(bft_getattr(x, &a), 0);
	assert_int_equal(a.nlink, 0);
	/* onto itself, and onto another link of the same inode: nothing happens */
	assert_int_equal(bft_rename(d1, "sub", d1, "sub", 0), 0);
	assert_int_equal(bft_link(f1, BFT_ROOT, "hl"), 0);
	assert_int_equal(bft_rename(d1, "sub", BFT_ROOT, "hl", 0), 0);
	assert_int_equal(bft_lookup(d1, "sub", NULL), 0);
	assert_int_equal(bft_rename(BFT_ROOT, "missing", BFT_ROOT, "x", 0), -ENOENT);
	assert_int_equal(bft_rename(BFT_ROOT, "hl", BFT_ROOT, "x", 3), -EINVAL);
	/* everything survives a remount */
	assert_int_equal(bft_unmount(), 0);
	assert_int_equal(bft_mount("M0"), 0);
	assert_int_equal(bft_lookup(BFT_ROOT, "d2", &d2), 0);
	assert_int_equal(bft_lookup(d2, "f2", &y), 0);
	assert_int_equal(y, sub);
	assert_int_equal(bft_lookup(d2, "n2", NULL), 0);
	assert_int_equal(bft_lookup(BFT_ROOT, "hl", &x), 0);
	assert_int_equal(bft_r.e.attr.nlink, 2);
	assert_int_equal(bft_lookup(BFT_ROOT, "e", NULL), -ENOENT);
	assert_int_equal(bft_lookup(BFT_ROOT, "e2", NULL), 0);
}

static void test_readdir_stable(void **state)
{
	struct ust_blobfs_file *dh, *fh;
	struct bft_dirlist l, seen;
	char name[16], gone_unseen[32] = "", gone_seen[32] = "";
	uint64_t off;
	int i, j;

	(void)state;
	for (i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "f%02d", i);
		assert_int_equal(bft_create(BFT_ROOT, name, &fh, NULL), 0);
		assert_int_equal(bft_release(fh), 0);
	}
	ust_blobfs_opendir(bft_fs, &bft_ctx, BFT_ROOT, bft_open_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	dh = bft_r.fh;
	memset(&seen, 0, sizeof(seen));
	/* read 5 at a time; between calls remove one not yet seen and one seen, add one */
	off = 0;
	for (j = 0; j < 20; j++) {
		assert_int_equal(bft_readdir(dh, off, 5, &l), 0);
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
				if (!bft_dirlist_has(&seen, name)) {
					snprintf(gone_unseen, sizeof(gone_unseen), "%s", name);
				}
			}
			assert_int_equal(bft_unlink(BFT_ROOT, gone_unseen), 0); /* not yet seen */
			assert_int_equal(bft_unlink(BFT_ROOT, gone_seen), 0);   /* already seen */
			assert_int_equal(bft_create(BFT_ROOT, "new", &fh, NULL), 0); /* seen or not, once at most */
			assert_int_equal(bft_release(fh), 0);
		}
	}
	/* every entry that existed throughout was returned exactly once (never twice: above) */
	for (i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "f%02d", i);
		if (strcmp(name, gone_unseen) != 0) {
			assert_true(bft_dirlist_has(&seen, name));
		}
	}
	assert_false(bft_dirlist_has(&seen, gone_unseen));
	assert_int_equal(seen.n, 2 + 19 + (bft_dirlist_has(&seen, "new") ? 1 : 0));
	/* offsets survive a remount */
	assert_int_equal(bft_readdir(dh, 0, 64, &l), 0);
	off = l.offs[9];
	assert_int_equal(bft_readdir(dh, off, 64, &seen), 0);
	ust_blobfs_releasedir(bft_fs, dh, bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_unmount(), 0);
	assert_int_equal(bft_mount("M0"), 0);
	ust_blobfs_opendir(bft_fs, &bft_ctx, BFT_ROOT, bft_open_cb, bft_begin());
	bft_finish();
	dh = bft_r.fh;
	assert_int_equal(bft_readdir(dh, off, 64, &l), 0);
	assert_int_equal(l.n, seen.n);
	for (i = 0; i < l.n; i++) {
		assert_string_equal(l.names[i], seen.names[i]);
	}
	ust_blobfs_releasedir(bft_fs, dh, bft_op_cb, bft_begin());
	bft_finish();
}

static void test_paths(void **state)
{
	struct ust_blobfs_file *fh;
	char longpath[5000];
	uint8_t r[16];

	(void)state;
	ust_blobfs_path_mkdir(bft_fs, &bft_ctx, "/a", 0755, bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	ust_blobfs_path_mkdir(bft_fs, &bft_ctx, "/a/b", 0755, bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	ust_blobfs_path_open(bft_fs, &bft_ctx, "/a/b/f", O_CREAT | O_RDWR, 0644, bft_open_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	fh = bft_r.fh;
	assert_int_equal(bft_pwrite(fh, "hello", 5, 0), 5);
	assert_int_equal(bft_fsync(fh), 0);
	assert_int_equal(bft_release(fh), 0);
	ust_blobfs_symlink(bft_fs, &bft_ctx, "/a/b", BFT_ROOT, "l", bft_entry_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	ust_blobfs_path_open(bft_fs, &bft_ctx, "/l/f", O_RDONLY, 0, bft_open_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	fh = bft_r.fh;
	assert_int_equal(bft_pread(fh, r, sizeof(r), 0), 5);
	assert_memory_equal(r, "hello", 5);
	assert_int_equal(bft_release(fh), 0);
	ust_blobfs_path_stat(bft_fs, &bft_ctx, "/l", bft_attr_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	assert_true(S_ISDIR(bft_r.a.mode));
	ust_blobfs_path_open(bft_fs, &bft_ctx, "/l", O_RDONLY | O_NOFOLLOW, 0, bft_open_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, -ELOOP);
	ust_blobfs_symlink(bft_fs, &bft_ctx, "/loop", BFT_ROOT, "loop", bft_entry_cb, bft_begin());
	bft_finish();
	ust_blobfs_path_stat(bft_fs, &bft_ctx, "/loop/x", bft_attr_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, -ELOOP);
	ust_blobfs_path_open(bft_fs, &bft_ctx, "/a/b/f", O_CREAT | O_EXCL | O_RDWR, 0644, bft_open_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, -EEXIST);
	ust_blobfs_path_stat(bft_fs, &bft_ctx, "/a/x/f", bft_attr_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, -ENOENT);
	ust_blobfs_path_stat(bft_fs, &bft_ctx, "/a/b/f/x", bft_attr_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, -ENOTDIR);
	memset(longpath, 'a', sizeof(longpath));
	longpath[0] = '/';
	longpath[4999] = '\0';
	ust_blobfs_path_stat(bft_fs, &bft_ctx, longpath, bft_attr_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, -ENAMETOOLONG);
	ust_blobfs_path_rename(bft_fs, &bft_ctx, "/a/b/f", "/a/g", 0, bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	ust_blobfs_path_unlink(bft_fs, &bft_ctx, "/a/g", bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	ust_blobfs_path_rmdir(bft_fs, &bft_ctx, "/a", bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, -ENOTEMPTY);
	ust_blobfs_path_rmdir(bft_fs, &bft_ctx, "/a/b", bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
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
	ust_blobfs_mkdir(bft_fs, &bft_ctx, BFT_ROOT, "fromt1", 0700, thread_cb, arg);
}

static void test_threads(void **state)
{
	(void)state;
	bft_begin();
	ust_thread_send_msg(ut_thread(1), call_from_t1, &bft_r);
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	assert_ptr_equal(g_cb_thread, ut_thread(1));
	assert_int_equal(bft_lookup(BFT_ROOT, "fromt1", NULL), 0);
}

/* ---- a big directory (docs/blobfs-format.md 4.2) ------------------------------------------------ */

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
	struct ust_blobfs *saved = bft_fs;
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
	ust_blobfs_format("BIG", &o, NULL, bft_fs_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	bft_fs = bft_r.fs;
	assert_int_equal(bft_mkdir(BFT_ROOT, "big", &d), 0);
	t0 = now_s();
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "file-%08" PRIu64 ".dat", i);
		assert_int_equal(bft_mknod(d, name, S_IFREG | 0644, 0, NULL), 0);
	}
	t1 = now_s();
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "file-%08" PRIu64 ".dat", i);
		assert_int_equal(bft_lookup(d, name, &ino), 0);
		assert_true(S_ISREG(bft_r.e.attr.mode));
		assert_int_equal(bft_r.e.attr.nlink, 1);
	}
	t2 = now_s();
	assert_int_equal(bft_count_entries(d), n + 2);
	assert_int_equal(bft_mknod(d, "file-00000007.dat", S_IFREG | 0644, 0, NULL), -EEXIST);
	/* the blocks come back from the disk */
	assert_int_equal(bft_unmount(), 0);
	assert_int_equal(bft_mount("BIG"), 0);
	assert_int_equal(bft_lookup(BFT_ROOT, "big", &d), 0);
	assert_int_equal(bft_count_entries(d), n + 2);
	for (i = 0; i < n; i += 97) {
		snprintf(name, sizeof(name), "file-%08" PRIu64 ".dat", i);
		assert_int_equal(bft_lookup(d, name, NULL), 0);
	}
	t3 = now_s();
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "file-%08" PRIu64 ".dat", i);
		assert_int_equal(bft_unlink(d, name), 0);
	}
	print_message("big directory, %" PRIu64 " files: create %.0f/s, stat %.0f/s, unlink %.0f/s\n", n,
		      (double)n / (t1 - t0), (double)n / (t2 - t1), (double)n / (now_s() - t3));
	assert_int_equal(bft_count_entries(d), 2);
	assert_int_equal(bft_getattr(d, &a), 0);
	assert_int_equal(a.nlink, 2);
	assert_int_equal(bft_rmdir(BFT_ROOT, "big"), 0);
	assert_int_equal(bft_unmount(), 0);
	bft_fs = saved;
	ust_bdev_malloc_delete("BIG", bft_done_cb, &done);
	ut_threads_poll();
	assert_int_equal(done, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_format_mount, bft_make_fs, bft_drop_fs),
		cmocka_unit_test_setup_teardown(test_namespace_errors, bft_make_fs, bft_drop_fs),
		cmocka_unit_test_setup_teardown(test_special_files, bft_make_fs, bft_drop_fs),
		cmocka_unit_test_setup_teardown(test_hard_links_and_orphans, bft_make_fs, bft_drop_fs),
		cmocka_unit_test_setup_teardown(test_rename, bft_make_fs, bft_drop_fs),
		cmocka_unit_test_setup_teardown(test_readdir_stable, bft_make_fs, bft_drop_fs),
		cmocka_unit_test_setup_teardown(test_paths, bft_make_fs, bft_drop_fs),
		cmocka_unit_test_setup_teardown(test_threads, bft_make_fs, bft_drop_fs),
		cmocka_unit_test_setup_teardown(test_big_directory, bft_make_fs, bft_drop_fs),
	};

	return cmocka_run_group_tests(tests, bft_group_setup, bft_group_teardown);
}
