/*
 * Unit tests for blobfs after a crash (blobfs/) on malloc bdevs, threads
 * polled by hand: a copy of the device taken while files were open (an
 * unlinked file's space is reclaimed at the next mount, open(O_TRUNC) is
 * durable when it returns), and crashsim images cut at every write of a
 * recorded workload (renames, links, EXCHANGE, a directory splitting into
 * several blocks, batched creates and unlinks): every image mounts, and
 * each change in it is whole or absent (the intent's replay).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "ustor/bdev.h"
#include "ustor/crashsim.h"
#include "ustor/blobfs.h"
#include "ustor/env.h"
#include "blobfs_test.h"
#include "ut_threads.h"

/* ---- a copy of the device while files are open ------------------------------------------------- */

/* Copy M0's current contents to a new bdev M1: the device as a crash would leave it (malloc has no cache). */
static void snapshot_to_m1(void)
{
	void *img = ust_dma_malloc(BFT_BDEV_BYTES, 4096);

	assert_non_null(img);
	bft_raw_io("M0", false, img, BFT_BDEV_BYTES);
	assert_int_equal(bft_make_malloc("M1"), 0);
	bft_raw_io("M1", true, img, BFT_BDEV_BYTES);
	ust_dma_free(img);
}

static void test_orphan_after_crash(void **state)
{
	struct ust_blobfs *old;
	struct ust_blobfs_file *fh, *fh2, *vfh;
	uint64_t f, g, before, m1free;
	uint8_t buf[8192];

	(void)state;
	bft_fill(buf, sizeof(buf), 9);
	/* the root's first entry gives it its first data cluster, for good */
	assert_int_equal(bft_mknod(BFT_ROOT, "tmp", S_IFREG | 0644, 0, NULL), 0);
	assert_int_equal(bft_unlink(BFT_ROOT, "tmp"), 0);
	before = bft_free_clusters();
	assert_int_equal(bft_create(BFT_ROOT, "victim", &vfh, &f), 0);
	assert_int_equal(bft_pwrite(vfh, buf, sizeof(buf), 0), sizeof(buf));
	assert_int_equal(bft_create(BFT_ROOT, "keep", &fh2, &g), 0);
	assert_int_equal(bft_pwrite(fh2, buf, sizeof(buf), 70000), sizeof(buf));
	assert_int_equal(bft_fsync(fh2), 0);
	assert_int_equal(bft_unlink(BFT_ROOT, "victim"), 0);
	/* "crash" with both files open: the device as it is now, mounted elsewhere */
	snapshot_to_m1();
	old = bft_fs;
	assert_int_equal(bft_mount("M1"), 0);
	assert_int_equal(bft_lookup(BFT_ROOT, "victim", NULL), -ENOENT);
	assert_int_equal(bft_lookup(BFT_ROOT, "keep", &g), 0);
	assert_int_equal(bft_r.e.attr.size, 70000 + sizeof(buf));
	assert_int_equal(bft_open(g, O_RDONLY, &fh), 0);
	{
		uint8_t r[8192];

		assert_int_equal(bft_pread(fh, r, sizeof(r), 70000), sizeof(r));
		assert_memory_equal(r, buf, sizeof(r));
	}
	assert_int_equal(bft_release(fh), 0);
	/* the orphan's cluster was reclaimed: only "keep"'s one cluster is used */
	m1free = bft_free_clusters();
	assert_int_equal(before - m1free, 1);
	assert_int_equal(bft_unmount(), 0);
	bft_fs = old;
	assert_int_equal(bft_release(fh2), 0);
	assert_int_equal(bft_release(vfh), 0);
	(void)f;
}

/*
 * A write that drops set-user-ID (ust_blobfs_ctx.kill_suidgid) makes the
 * new mode durable before it answers, as a chmod is: a crash with the file
 * still open (no release, no fsync) cannot bring the bit back.
 */
static void test_kill_suidgid_durable(void **state)
{
	struct ust_blobfs_ctx user = {.uid = 1000, .gid = 1000, .kill_suidgid = true};
	struct ust_blobfs_attr a = {.mode = 06755};
	struct ust_blobfs *old;
	struct ust_blobfs_file *fh;
	uint64_t f;

	(void)state;
	assert_int_equal(bft_create(BFT_ROOT, "setid", &fh, &f), 0);
	assert_int_equal(bft_setattr_ctx(&bft_ctx, f, &a, UST_BLOBFS_SET_MODE), 0);
	assert_int_equal(bft_pwrite_ctx(&user, fh, "x", 1, 0), 1);
	snapshot_to_m1();
	old = bft_fs;
	assert_int_equal(bft_mount("M1"), 0);
	assert_int_equal(bft_getattr(f, &a), 0);
	assert_int_equal(a.mode, S_IFREG | 0755);
	assert_int_equal(bft_unmount(), 0);
	bft_fs = old;
	assert_int_equal(bft_release(fh), 0);
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
	bft_fill(buf, sizeof(buf), 5);
	assert_int_equal(bft_create(BFT_ROOT, "u", &fh2, &g), 0);
	assert_int_equal(bft_pwrite(fh2, buf, 100, 0), 100);
	assert_int_equal(bft_fsync(fh2), 0);
	assert_int_equal(bft_release(fh2), 0);
	assert_int_equal(bft_create(BFT_ROOT, "t", &fh, &f), 0);
	before = bft_free_clusters();
	assert_int_equal(bft_pwrite(fh, buf, sizeof(buf), 3 << 20), sizeof(buf));
	assert_int_equal(bft_fsync(fh), 0);
	assert_int_equal(bft_release(fh), 0);
	assert_true(bft_free_clusters() < before);
	assert_int_equal(bft_open(f, O_WRONLY | O_TRUNC, &fh), 0);
	assert_int_equal(bft_free_clusters(), before);
	assert_int_equal(bft_open(g, O_RDONLY | O_TRUNC, &fh2), 0);
	before++; /* u's cluster */
	assert_int_equal(bft_free_clusters(), before);
	/* "crash" with both open */
	snapshot_to_m1();
	old = bft_fs;
	assert_int_equal(bft_mount("M1"), 0);
	assert_int_equal(bft_lookup(BFT_ROOT, "t", &f), 0);
	assert_int_equal(bft_r.e.attr.size, 0);
	assert_int_equal(bft_lookup(BFT_ROOT, "u", &g), 0);
	assert_int_equal(bft_r.e.attr.size, 0);
	assert_int_equal(bft_free_clusters(), before);
	{
		struct ust_blobfs_file *rf;

		assert_int_equal(bft_open(f, O_RDONLY, &rf), 0);
		assert_int_equal(bft_pread(rf, r, sizeof(r), 0), 0);
		assert_int_equal(bft_release(rf), 0);
	}
	assert_int_equal(bft_unmount(), 0);
	bft_fs = old;
	assert_int_equal(bft_release(fh), 0);
	assert_int_equal(bft_release(fh2), 0);
	/* a directory cannot be opened with O_TRUNC, even read-only */
	{
		uint64_t d;

		assert_int_equal(bft_mkdir(BFT_ROOT, "d", &d), 0);
		assert_int_equal(bft_open(d, O_RDONLY | O_TRUNC, &fh), -EISDIR);
	}
}

/* ---- crash consistency ------------------------------------------------------------------------ */

/*
 * A file system on crashsim CS0 (over a new malloc M1), recording from
 * now on. *live: the test's own file system, *rec: the recorded one
 * (bft_fs until crash_fs_end()).
 */
static struct ust_crashsim *crash_fs_start(struct ust_blobfs **live, struct ust_blobfs **rec)
{
	struct ust_crashsim *cs;
	struct ust_blobfs_opts o;
	int done = 0;

	assert_int_equal(bft_make_malloc("M1"), 0);
	assert_int_equal(ust_crashsim_create("M1", "CS0"), 0);
	cs = ust_crashsim_get("CS0");
	assert_non_null(cs);
	*live = bft_fs;
	ust_blobfs_opts_init(&o);
	ust_blobfs_format("CS0", &o, NULL, bft_fs_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	bft_fs = bft_r.fs;
	*rec = bft_fs;
	assert_int_equal(ust_crashsim_start(cs, bft_done_cb, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
	return cs;
}

static void crash_fs_end(struct ust_crashsim_image *img, struct ust_blobfs *rec, struct ust_blobfs *live)
{
	int done = 0;

	ust_crashsim_image_free(img, NULL, NULL);
	ut_threads_poll();
	bft_fs = rec;
	assert_int_equal(bft_unmount(), 0);
	assert_int_equal(ust_crashsim_delete("CS0", bft_done_cb, &done), 0);
	ut_threads_poll();
	bft_fs = live;
}

#define PAT 6000

/* Every name resolves, link counts match the entries, every file holds one whole fsynced pattern. */
static void check_tree(uint64_t dir, uint32_t *links, uint32_t *nls, uint64_t *inos, int *ninos,
		       const uint8_t pats[][PAT], int npats)
{
	struct ust_blobfs_file *dh, *fh;
	struct bft_dirlist l;
	struct ust_blobfs_attr a;
	uint8_t buf[PAT + 10];
	int i, j, k;

	ust_blobfs_opendir(bft_fs, &bft_ctx, dir, bft_open_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	dh = bft_r.fh;
	assert_int_equal(bft_readdir(dh, 0, 64, &l), 0);
	ust_blobfs_releasedir(bft_fs, dh, bft_op_cb, bft_begin());
	bft_finish();
	for (i = 2; i < l.n; i++) {
		uint64_t ino;

		if (dir == BFT_ROOT && strcmp(l.names[i], "big") == 0) {
			continue; /* long names: check_big() */
		}
		assert_int_equal(bft_lookup(dir, l.names[i], &ino), 0);
		a = bft_r.e.attr;
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
			assert_int_equal(bft_open(ino, O_RDONLY, &fh), 0);
			if (a.size == 0) {
				/* created, not yet written and fsynced: only under its first name */
				assert_true(strcmp(l.names[i], "a") == 0 || strcmp(l.names[i], "c") == 0 ||
					    strcmp(l.names[i], "e") == 0 || strcmp(l.names[i], "v1") == 0 ||
					    strcmp(l.names[i], "v2") == 0);
			} else {
				assert_int_equal(bft_pread(fh, buf, sizeof(buf), 0), PAT);
				for (j = 0; j < npats && memcmp(buf, pats[j], PAT) != 0; j++) {
				}
				assert_true(j < npats);
			}
			assert_int_equal(bft_release(fh), 0);
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

	if (bft_lookup(BFT_ROOT, "big", &big) != 0) {
		return;
	}
	for (k = 0; k < BIG_N; k++) {
		big_name(name, k);
		has[k] = bft_lookup(big, name, NULL) == 0;
		if (has[k]) {
			assert_int_equal(bft_r.e.attr.nlink, 1);
			count++;
			last = k;
			if (first < 0) {
				first = k;
			}
		}
	}
	assert_int_equal(bft_count_entries(big), 2 + (uint64_t)count);
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
		bft_fill(pats[i], PAT, (uint32_t)i + 40);
	}
	cs = crash_fs_start(&live, &rec);
	/* the workload: every file is written whole and fsynced before it is renamed */
	assert_int_equal(bft_create(BFT_ROOT, "a", &fh, &a), 0);
	assert_int_equal(bft_pwrite(fh, pats[0], PAT, 0), PAT);
	assert_int_equal(bft_fsync(fh), 0);
	assert_int_equal(bft_release(fh), 0);
	assert_int_equal(bft_mkdir(BFT_ROOT, "d", &d), 0);
	assert_int_equal(bft_rename(BFT_ROOT, "a", d, "b", 0), 0);
	assert_int_equal(bft_create(BFT_ROOT, "c", &fh, NULL), 0);
	assert_int_equal(bft_pwrite(fh, pats[1], PAT, 0), PAT);
	assert_int_equal(bft_fsync(fh), 0);
	assert_int_equal(bft_release(fh), 0);
	assert_int_equal(bft_link(a, BFT_ROOT, "hl"), 0);
	assert_int_equal(bft_rename(BFT_ROOT, "c", d, "b", 0), 0); /* replaces; a lives on as hl */
	assert_int_equal(bft_create(d, "e", &fh, NULL), 0);
	assert_int_equal(bft_pwrite(fh, pats[2], PAT, 0), PAT);
	assert_int_equal(bft_fsync(fh), 0);
	assert_int_equal(bft_release(fh), 0);
	assert_int_equal(bft_rename(d, "e", BFT_ROOT, "hl", UST_BLOBFS_RENAME_EXCHANGE), 0);
	assert_int_equal(bft_unlink(d, "e"), 0);
	/*
	 * a rename whose victim is deleted and an rmdir: blob deletes issued
	 * beside the directory writes of the same change
	 */
	assert_int_equal(bft_mknod(d, "v1", S_IFREG | 0644, 0, NULL), 0);
	assert_int_equal(bft_mknod(d, "v2", S_IFREG | 0644, 0, NULL), 0);
	assert_int_equal(bft_rename(d, "v1", d, "v2", 0), 0);
	assert_int_equal(bft_mkdir(d, "gone", NULL), 0);
	assert_int_equal(bft_rmdir(d, "gone"), 0);
	/* a directory that splits into several blocks (15 such entries fit one) */
	{
		char name[256];
		uint64_t big;

		assert_int_equal(bft_mkdir(BFT_ROOT, "big", &big), 0);
		for (k = 0; k < BIG_N; k++) {
			big_name(name, k);
			assert_int_equal(bft_mknod(big, name, S_IFREG | 0644, 0, NULL), 0);
		}
		for (k = 0; k < BIG_UNLINKED; k++) {
			big_name(name, k);
			assert_int_equal(bft_unlink(big, name), 0);
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
			ust_blobfs_mount("IMG", NULL, bft_fs_cb, bft_begin());
			bft_finish();
			if (bft_r.rc != 0) {
				print_error("cut %lu seed %lu: mount %d\n", (unsigned long)cut,
					    (unsigned long)seed, bft_r.rc);
			}
			assert_int_equal(bft_r.rc, 0);
			mounted++;
			bft_fs = bft_r.fs;
			ninos = 0;
			check_tree(BFT_ROOT, links, nls, inos, &ninos, pats, 3);
			for (k = 0; k < ninos; k++) {
				assert_int_equal(links[k], nls[k]);
			}
			check_big();
			/* after the last fsync the final state of the file contents is known */
			if (bft_lookup(BFT_ROOT, "hl", &ino) == 0) {
				assert_int_equal(bft_r.e.attr.size, PAT);
			}
			assert_int_equal(bft_unmount(), 0);
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

	assert_int_equal(bft_mknod(p, name, S_IFREG | 0644, 0, NULL), 0);
	ust_blobfs_opendir(bft_fs, &bft_ctx, p, bft_open_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	dh = bft_r.fh;
	ust_blobfs_readdir(bft_fs, dh, 0, false, cookie_fill, &cf, bft_op_cb, bft_begin());
	bft_finish();
	assert_int_equal(bft_r.rc, 0);
	ust_blobfs_releasedir(bft_fs, dh, bft_op_cb, bft_begin());
	bft_finish();
	assert_true(cf.found);
	assert_int_equal(bft_unlink(p, name), 0);
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
			ust_blobfs_unlink(bft_fs, &bft_ctx, p, g_batch_names[k], bft_op_cb, &r[k]);
		} else {
			ust_blobfs_mknod(bft_fs, &bft_ctx, p, g_batch_names[k], S_IFREG | 0644, 0, bft_entry_cb,
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
	assert_int_equal(bft_mkdir(BFT_ROOT, "p", &p), 0);
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
		assert_int_equal(bft_mknod(p, big, S_IFREG | 0644, 0, NULL), 0);
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
			ust_blobfs_mount("IMG", NULL, bft_fs_cb, bft_begin());
			bft_finish();
			assert_int_equal(bft_r.rc, 0);
			bft_fs = bft_r.fs;
			assert_int_equal(bft_lookup(BFT_ROOT, "p", &p), 0);
			present = 0;
			for (k = 0; k < BATCH_N; k++) {
				if (bft_lookup(p, g_batch_names[k], &ino) == 0) {
					/* whole: the entry names a live inode with its one ref */
					assert_int_equal(bft_r.e.attr.nlink, 1);
					assert_true(S_ISREG(bft_r.e.attr.mode));
					present++;
				}
			}
			assert_int_equal(bft_count_entries(p), 2 + BATCH_FILL + present);
			if (cut == e1) {
				assert_int_equal(present, BATCH_N); /* every create was acknowledged */
			}
			if (cut >= e2) {
				assert_int_equal(present, 0); /* every unlink was acknowledged */
			}
			assert_int_equal(bft_unmount(), 0);
		}
	}
	crash_fs_end(img, rec, live);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_orphan_after_crash, bft_make_fs, bft_drop_fs),
		cmocka_unit_test_setup_teardown(test_open_trunc_durable, bft_make_fs, bft_drop_fs),
		cmocka_unit_test_setup_teardown(test_kill_suidgid_durable, bft_make_fs, bft_drop_fs),
		cmocka_unit_test_setup_teardown(test_crash_consistency, bft_make_fs, bft_drop_fs),
		cmocka_unit_test_setup_teardown(test_crash_batch, bft_make_fs, bft_drop_fs),
	};

	return cmocka_run_group_tests(tests, bft_group_setup, bft_group_teardown);
}
