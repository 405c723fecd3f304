/*
 * Unit tests for concurrent file I/O in blobfs (blobfs/blobfs_io.c): many
 * writes in flight on one file at once, from the metadata thread and from
 * another thread. Disjoint writes that share io units (read-modify-write
 * of the same unit) and writes that extend the file all land with their
 * neighbours' bytes intact; overlapping unaligned writes run one at a time
 * (the range lock), so the file equals the writes applied in the order they
 * completed. A large unaligned write reads only its partial first and last
 * units and keeps their other bytes. Malloc bdev with 4 KiB blocks, threads polled by hand; every
 * check compares the whole file, read back, with a model.
 * Also the end of a file's life in memory: a deleted inode is freed once
 * its lookups are forgotten and its last handle released, not before (its
 * data stays readable through an open handle). And zero-copy reads
 * (ust_blobfs_read_lend): the lent bytes equal a read's, holes and the end
 * of file included, and the calls that cannot lend say so. And zero-copy
 * writes (ust_blobfs_write_fill): what the store puts there reads back,
 * extends the size within the allocated space, sets mtime and ctime and
 * survives fsync and a remount; what cannot be written in place (unaligned,
 * past the allocated space, a hole, O_APPEND, a set-id bit to drop, another
 * thread) is -EAGAIN or -ENOTSUP without calling the store.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "ustor/bdev.h"
#include "ustor/blobfs.h"
#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/thread.h"

#include "blob_test.h"
#include "blobfs_test.h"

#include "../../../blobfs/blobfs_internal.h"

#define DEV "M0"
#define BLOCK 4096u
#define BDEV_BYTES (32u << 20)
#define MAX_FILE (1u << 20)
#define NW 64

static struct ust_blobfs *g_fs;
static const struct ust_blobfs_ctx g_ctx = {.uid = 0, .gid = 0};

/* ---- synchronous calls ------------------------------------------------------------ */

static void wait_res(struct bft_res *r)
{
	bt_poll();
	assert_true(r->done);
}

static struct ust_blobfs_file *create_file(const char *name)
{
	struct bft_res r = {0};

	ust_blobfs_create(g_fs, &g_ctx, UST_BLOBFS_ROOT_INO, name, S_IFREG | 0644, O_RDWR | O_EXCL,
			  bft_create_cb, &r);
	wait_res(&r);
	assert_int_equal(r.rc, 0);
	return r.fh;
}

static void release_file(struct ust_blobfs_file *fh)
{
	struct bft_res r = {0};

	ust_blobfs_release(g_fs, fh, bft_op_cb, &r);
	wait_res(&r);
	assert_int_equal(r.rc, 0);
}

/* The whole file equals model[0, size) and reads stop there. */
static void check_file(struct ust_blobfs_file *fh, const uint8_t *model, uint64_t size)
{
	uint8_t *buf = calloc(1, MAX_FILE + BLOCK);
	struct bft_res r = {0};

	assert_non_null(buf);
	ust_blobfs_read(g_fs, fh, buf, MAX_FILE + BLOCK, 0, bft_size_cb, &r);
	wait_res(&r);
	assert_int_equal(r.n, (int64_t)size);
	assert_memory_equal(buf, model, size);
	free(buf);
}

static int make_fs(void **state)
{
	struct ust_blobfs_opts o;
	struct bft_res r = {0};

	(void)state;
	if (bt_malloc_create(DEV, BDEV_BYTES, BLOCK) != 0) {
		return -1;
	}
	ust_blobfs_opts_init(&o);
	o.cluster_size = 64u << 10;
	ust_blobfs_format(DEV, &o, NULL, bft_fs_cb, &r);
	bt_poll();
	g_fs = r.fs;
	return r.done && r.rc == 0 ? 0 : -1;
}

static int drop_fs(void **state)
{
	struct bft_res r = {0};

	(void)state;
	ust_blobfs_unmount(g_fs, bft_op_cb, &r);
	bt_poll();
	g_fs = NULL;
	if (!r.done || r.rc != 0) {
		return -1;
	}
	return bt_malloc_delete(DEV);
}

static int group_setup(void **state)
{
	(void)state;
	return bt_env_setup_threads(2);
}

/* ---- writes in flight together -------------------------------------------------------- */

struct wr {
	struct ust_blobfs_file *fh;
	uint8_t *buf;
	uint64_t off;
	size_t len;
	int64_t n;
	bool done;
	uint32_t seq; /* completion order */
};

static uint32_t g_completed;

static void wr_done(void *arg, int64_t n)
{
	struct wr *w = arg;

	w->n = n;
	w->done = true;
	w->seq = __atomic_fetch_add(&g_completed, 1, __ATOMIC_SEQ_CST);
}

static void wr_submit(void *arg)
{
	struct wr *w = arg;

	ust_blobfs_write(g_fs, &g_ctx, w->fh, w->buf, w->len, w->off, wr_done, w);
}

static void wr_fill(struct wr *w, uint32_t tag)
{
	size_t i;

	w->buf = ust_dma_malloc(w->len, BLOCK);
	assert_non_null(w->buf);
	for (i = 0; i < w->len; i++) {
		w->buf[i] = (uint8_t)(tag * 37 + i * 11 + 1);
	}
}

/* Submit every write before any runs: odd ones from thread 1, even ones from thread 0. */
static void wr_all(struct wr *w, int n, bool both_threads)
{
	int i;

	g_completed = 0;
	for (i = 0; i < n; i++) {
		if (both_threads && (i & 1)) {
			assert_int_equal(ust_thread_send_msg(bt_thread(1), wr_submit, &w[i]), 0);
		} else {
			wr_submit(&w[i]);
		}
	}
	bt_poll();
	for (i = 0; i < n; i++) {
		assert_true(w[i].done);
		assert_int_equal(w[i].n, (int64_t)w[i].len);
	}
}

static void wr_free(struct wr *w, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		ust_dma_free(w[i].buf);
	}
}

/*
 * 64 disjoint writes at once, byte-adjacent and unaligned (most share an
 * io unit with a neighbour, so they read-modify-write it), some aligned,
 * the last ones past the end of the file (they grow it): every byte lands.
 */
static void test_disjoint_writes_all_land(void **state)
{
	struct ust_blobfs_file *fh = create_file("disjoint");
	uint8_t *model = calloc(1, MAX_FILE);
	struct wr w[NW];
	uint64_t off = 100, size = 0;
	int i;

	(void)state;
	memset(w, 0, sizeof(w));
	for (i = 0; i < NW; i++) {
		w[i].fh = fh;
		if (i % 8 == 7) {
			/* an aligned one: straight from the buffer */
			off = (off + BLOCK - 1) / BLOCK * BLOCK;
			w[i].len = 2 * BLOCK;
		} else {
			w[i].len = 700 + (size_t)i * 97;
		}
		if (i == NW - 4) {
			off += 200 * 1024; /* a gap: the rest extend the file */
		}
		w[i].off = off;
		off += w[i].len;
		wr_fill(&w[i], (uint32_t)i);
		memcpy(model + w[i].off, w[i].buf, w[i].len);
		size = w[i].off + w[i].len;
	}
	assert_true(size <= MAX_FILE);
	wr_all(w, NW, true);
	check_file(fh, model, size);
	release_file(fh);
	wr_free(w, NW);
	free(model);
}

/*
 * 64 overlapping writes at once, random unaligned offsets and lengths in
 * 48 KiB (and a few aligned): overlapping ones never run together, so the
 * file is the writes applied in completion order, with no byte lost.
 */
static void test_overlapping_writes_serialise(void **state)
{
	struct ust_blobfs_file *fh = create_file("overlap");
	uint8_t *model = calloc(1, MAX_FILE);
	struct wr w[NW];
	int order[NW];
	uint64_t rng = 0x1234567, size = 0;
	int i;

	(void)state;
	memset(w, 0, sizeof(w));
	for (i = 0; i < NW; i++) {
		w[i].fh = fh;
		if (i % 9 == 4) {
			w[i].off = bt_rand(&rng) % 12 * BLOCK;
			w[i].len = BLOCK;
		} else {
			w[i].off = bt_rand(&rng) % (40 * 1024);
			w[i].len = 1 + bt_rand(&rng) % (8 * 1024);
		}
		wr_fill(&w[i], (uint32_t)i + 100);
		if (w[i].off + w[i].len > size) {
			size = w[i].off + w[i].len;
		}
	}
	/* From the metadata thread only: callbacks then run in completion order. */
	wr_all(w, NW, false);
	for (i = 0; i < NW; i++) {
		order[w[i].seq] = i;
	}
	for (i = 0; i < NW; i++) {
		memcpy(model + w[order[i]].off, w[order[i]].buf, w[order[i]].len);
	}
	check_file(fh, model, size);
	release_file(fh);
	wr_free(w, NW);
	free(model);
}

static void stat_cb(struct ust_bdev *bdev, struct ust_bdev_io_stat *stat, void *ctx, int rc)
{
	(void)bdev;
	(void)stat;
	bft_op_cb(ctx, rc);
}

static uint64_t dev_bytes_read(void)
{
	struct ust_bdev_io_stat st;
	struct bft_res r = {0};

	ust_bdev_get_iostat(ust_bdev_get_by_name(DEV), &st, stat_cb, &r);
	wait_res(&r);
	assert_int_equal(r.rc, 0);
	return st.bytes_read;
}

/*
 * Unaligned writes over many units of existing data, one at a time: each
 * reads from the device only the partial units at its ends (none where an
 * end is aligned), and the bytes around it survive.
 */
static void test_unaligned_write_reads_ends_only(void **state)
{
	static const struct {
		uint64_t off;
		size_t len;
		uint64_t units_read;
	} cases[] = {
		{1000, 100000, 2},                /* both ends partial */
		{40 * BLOCK, 5 * BLOCK + 17, 1},  /* aligned start */
		{20 * BLOCK - 5, 3 * BLOCK + 5, 1}, /* aligned end */
		{150001, 3 * BLOCK, 2},            /* 4 units, both partial */
		{7, 10, 1},                        /* one unit */
	};
	struct ust_blobfs_file *fh = create_file("ends");
	uint64_t size = 256 * 1024, before;
	uint8_t *model = calloc(1, MAX_FILE);
	struct wr w;
	size_t i;

	(void)state;
	memset(&w, 0, sizeof(w));
	w.fh = fh;
	w.len = size;
	wr_fill(&w, 1);
	wr_all(&w, 1, false);
	memcpy(model, w.buf, size);
	ust_dma_free(w.buf);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&w, 0, sizeof(w));
		w.fh = fh;
		w.off = cases[i].off;
		w.len = cases[i].len;
		wr_fill(&w, 50 + (uint32_t)i);
		before = dev_bytes_read();
		wr_all(&w, 1, false);
		assert_int_equal(dev_bytes_read() - before, cases[i].units_read * BLOCK);
		memcpy(model + w.off, w.buf, w.len);
		ust_dma_free(w.buf);
		check_file(fh, model, size);
	}
	release_file(fh);
	free(model);
}

/* ---- deleted inodes leave memory --------------------------------------------------- */

static void unlink_file(const char *name)
{
	struct bft_res r = {0};

	ust_blobfs_unlink(g_fs, &g_ctx, UST_BLOBFS_ROOT_INO, name, bft_op_cb, &r);
	wait_res(&r);
	assert_int_equal(r.rc, 0);
}

/* FUSE's forget: no answer; polling to idle runs it. */
static void forget(uint64_t ino, uint64_t n)
{
	ust_blobfs_forget(g_fs, ino, n);
	bt_poll();
}

static void test_deleted_inodes_freed(void **state)
{
	struct ust_blobfs_file *fh;
	size_t base;
	uint64_t ino[20];
	uint8_t model[BLOCK], buf[BLOCK];
	char name[16];
	struct bft_res r = {0};
	int i;

	(void)state;
	base = g_fs->ninodes;
	/* create (one lookup each), close, unlink: cached until the lookup is forgotten */
	for (i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		fh = create_file(name);
		ino[i] = ust_blobfs_file_ino(fh);
		release_file(fh);
		unlink_file(name);
	}
	assert_int_equal(g_fs->ninodes, base + 20);
	for (i = 0; i < 20; i++) {
		forget(ino[i], 1);
	}
	assert_int_equal(g_fs->ninodes, base);

	/* unlinked while open: kept, data readable, until the handle goes too */
	fh = create_file("open");
	ino[0] = ust_blobfs_file_ino(fh);
	memset(model, 0x5c, sizeof(model));
	ust_blobfs_write(g_fs, &g_ctx, fh, model, sizeof(model), 0, bft_size_cb, &r);
	wait_res(&r);
	assert_int_equal(r.n, (int64_t)sizeof(model));
	unlink_file("open");
	forget(ino[0], 1);
	assert_int_equal(g_fs->ninodes, base + 1);
	memset(&r, 0, sizeof(r));
	ust_blobfs_read(g_fs, fh, buf, sizeof(buf), 0, bft_size_cb, &r);
	wait_res(&r);
	assert_int_equal(r.n, (int64_t)sizeof(buf));
	assert_memory_equal(buf, model, sizeof(buf));
	release_file(fh); /* deletes the blob, then frees the inode */
	assert_int_equal(g_fs->ninodes, base);

	/* a live file keeps its inode cached after its lookups are forgotten */
	fh = create_file("live");
	ino[0] = ust_blobfs_file_ino(fh);
	release_file(fh);
	forget(ino[0], 1);
	assert_int_equal(g_fs->ninodes, base + 1);
}

/* ---- zero-copy reads ---------------------------------------------------------------- */

#define LEND_IOV 32

struct lend_res {
	bool done;
	bool hold; /* keep the lend (the test releases it) instead of copying out and releasing */
	int iovcnt;
	int64_t n;
	struct ust_blobfs_lend *lend;
	struct iovec iov[LEND_IOV];
	uint8_t *out; /* the lent bytes, copied out in the callback */
};

/* The lent pieces, gathered into out; what they add up to is what the result says. */
static void lend_gather(const struct lend_res *r, uint8_t *out)
{
	size_t at = 0;
	int i;

	for (i = 0; i < r->iovcnt; i++) {
		memcpy(out + at, r->iov[i].iov_base, r->iov[i].iov_len);
		at += r->iov[i].iov_len;
	}
	assert_int_equal(at, r->n > 0 ? (size_t)r->n : 0);
}

static void lend_cb(void *arg, struct ust_blobfs_lend *lend, int iovcnt, int64_t n)
{
	struct lend_res *r = arg;

	r->done = true;
	r->iovcnt = iovcnt;
	r->n = n;
	r->lend = lend;
	/* a lend exactly when there are bytes */
	assert_true((lend != NULL) == (n > 0));
	if (r->out != NULL) {
		lend_gather(r, r->out);
	}
	if (!r->hold) {
		ust_blobfs_lend_release(g_fs, lend);
		r->lend = NULL;
	}
}

static int64_t lend(struct ust_blobfs_file *fh, uint64_t off, size_t size, int iovcnt, uint8_t *out)
{
	struct lend_res r = {.out = out};

	ust_blobfs_read_lend(g_fs, fh, size, off, r.iov, iovcnt, lend_cb, &r);
	bt_poll();
	assert_true(r.done);
	return r.n;
}

static void write_at(struct ust_blobfs_file *fh, const uint8_t *buf, size_t len, uint64_t off)
{
	struct bft_res r = {0};

	ust_blobfs_write(g_fs, &g_ctx, fh, buf, len, off, bft_size_cb, &r);
	wait_res(&r);
	assert_int_equal(r.n, (int64_t)len);
}

static void set_size(struct ust_blobfs_file *fh, uint64_t size)
{
	struct ust_blobfs_attr a = {.size = size};
	struct bft_res r = {0};

	ust_blobfs_setattr(g_fs, &g_ctx, ust_blobfs_file_ino(fh), &a, UST_BLOBFS_SET_SIZE, fh,
			   bft_attr_cb, &r);
	wait_res(&r);
	assert_int_equal(r.rc, 0);
}

/* Lent and read bytes of [off, off + size) both equal the model, to its end. */
static void check_lend(struct ust_blobfs_file *fh, const uint8_t *model, uint64_t fsize, uint64_t off,
		       size_t size)
{
	uint64_t want = off >= fsize ? 0 : (fsize - off < size ? fsize - off : size);
	uint8_t *out = calloc(1, size + 1);
	uint64_t before = dev_bytes_read();

	assert_non_null(out);
	assert_int_equal(lend(fh, off, size, LEND_IOV, out), (int64_t)want);
	assert_memory_equal(out, model + off, want);
	/* lent bytes of allocated clusters count as the device's reads */
	if (want > 0) {
		assert_true(dev_bytes_read() >= before);
	}
	free(out);
}

static void lend_on_thread1(void *arg)
{
	struct lend_res *r = arg;

	ust_blobfs_read_lend(g_fs, (struct ust_blobfs_file *)r->out, 4096, 0, r->iov, LEND_IOV, lend_cb,
			     r);
}

static void test_read_lend(void **state)
{
	const uint64_t hole_at = 100000, data2 = 300000, size = 350123;
	uint8_t *model = calloc(1, MAX_FILE), *out = calloc(1, MAX_FILE);
	struct ust_blobfs_file *fh = create_file("lent");
	struct lend_res r = {0};
	uint64_t before;
	uint64_t i;

	(void)state;
	assert_non_null(model);
	assert_non_null(out);
	for (i = 0; i < size; i++) {
		model[i] = (uint8_t)(i * 131 + 7);
	}
	memset(model + hole_at, 0, data2 - hole_at);
	write_at(fh, model, hole_at, 0);
	write_at(fh, model + data2, size - data2, data2);
	check_file(fh, model, size);

	check_lend(fh, model, size, 0, 4096);
	check_lend(fh, model, size, 1, 5000);          /* unaligned both ends */
	check_lend(fh, model, size, 4095, 2);          /* across a unit boundary */
	check_lend(fh, model, size, 90000, 300000);    /* data, the hole, data */
	check_lend(fh, model, size, 120000, 64 << 10); /* inside the hole: zeros */
	check_lend(fh, model, size, 0, MAX_FILE);      /* the whole file, cut at its end */
	check_lend(fh, model, size, size - 5, 100);    /* across the end of file */
	check_lend(fh, model, size, size, 100);        /* at the end: 0 */
	check_lend(fh, model, size, size + 5000, 10);  /* past it: 0 */

	/* Lent holes cost the device nothing. */
	before = dev_bytes_read();
	assert_int_equal(lend(fh, 131072, 65536, LEND_IOV, out), 65536);
	assert_int_equal(dev_bytes_read(), before);

	/* Too few pieces for data + hole + data: -E2BIG, so the caller reads instead. */
	assert_int_equal(lend(fh, 90000, 300000, 1, out), -E2BIG);
	assert_int_equal(lend(fh, 0, 100, 0, out), -EINVAL);

	/* Only on the metadata thread (thread 0 here). */
	r.out = (uint8_t *)fh;
	assert_int_equal(ust_thread_send_msg(bt_thread(1), lend_on_thread1, &r), 0);
	bt_poll();
	assert_true(r.done);
	assert_int_equal(r.n, -ENOTSUP);

	/* After truncates, down into the first data and up again: zeros beyond the cut. */
	set_size(fh, 50001);
	memset(model + 50001, 0, MAX_FILE - 50001);
	check_lend(fh, model, 50001, 0, MAX_FILE);
	set_size(fh, 200000);
	check_lend(fh, model, 200000, 40000, 100000);
	check_file(fh, model, 200000);

	release_file(fh);
	free(model);
	free(out);
}

/* ---- zero-copy writes ------------------------------------------------------------ */

struct store_res {
	int calls;
	int rc;
	uint8_t seed;
	int64_t n; /* ust_blobfs_write_fill's result, from thread 1 */
	bool done;
	struct ust_blobfs_file *fh;
};

static void pattern(uint8_t *p, size_t len, uint8_t seed)
{
	size_t i;

	for (i = 0; i < len; i++) {
		p[i] = (uint8_t)(i * 13 + seed + (i >> 12));
	}
}

static int store_cb(void *arg, const struct iovec *iov, int iovcnt)
{
	struct store_res *s = arg;
	size_t total = 0, at = 0;
	uint8_t *src;
	int i;

	s->calls++;
	for (i = 0; i < iovcnt; i++) {
		total += iov[i].iov_len;
	}
	src = malloc(total);
	assert_non_null(src);
	pattern(src, total, s->seed);
	for (i = 0; i < iovcnt; i++) {
		memcpy(iov[i].iov_base, src + at, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	free(src);
	return s->rc;
}

static int64_t write_fill(const struct ust_blobfs_ctx *ctx, struct ust_blobfs_file *fh,
			  uint8_t *model, uint64_t off, size_t len, uint8_t seed, struct store_res *s)
{
	int64_t n;

	memset(s, 0, sizeof(*s));
	s->seed = seed;
	n = ust_blobfs_write_fill(g_fs, ctx, fh, len, off, store_cb, s);
	if (n > 0 && model != NULL) {
		pattern(model + off, len, seed);
	}
	return n;
}

static struct ust_blobfs_attr get_attr(struct ust_blobfs_file *fh)
{
	struct bft_res r = {0};

	ust_blobfs_getattr(g_fs, &g_ctx, ust_blobfs_file_ino(fh), bft_attr_cb, &r);
	wait_res(&r);
	assert_int_equal(r.rc, 0);
	return r.a;
}

static struct ust_blobfs_file *open_file(ust_blobfs_ino ino, int flags)
{
	struct bft_res r = {0};

	ust_blobfs_open(g_fs, &g_ctx, ino, flags, bft_open_cb, &r);
	wait_res(&r);
	assert_int_equal(r.rc, 0);
	return r.fh;
}

static void fill_on_thread1(void *arg)
{
	struct store_res *s = arg;

	s->n = ust_blobfs_write_fill(g_fs, &g_ctx, s->fh, 4096, 0, store_cb, s);
	s->done = true;
}

static bool ts_before(struct timespec a, struct timespec b)
{
	return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

static void test_write_fill(void **state)
{
	const struct ust_blobfs_ctx other = {.uid = 1000, .gid = 1000, .check_access = true};
	uint8_t *model = calloc(1, MAX_FILE);
	struct ust_blobfs_file *fh = create_file("wf"), *ap;
	struct ust_blobfs_attr a0, a1, sa = {.mode = S_IFREG | 04755};
	struct ust_blobfs_opts o;
	struct store_res s;
	struct bft_res r = {0};
	ust_blobfs_ino ino = ust_blobfs_file_ino(fh);

	(void)state;
	assert_non_null(model);
	pattern(model, 256 << 10, 1);
	write_at(fh, model, 256 << 10, 0);
	a0 = get_attr(fh);

	/* in place across clusters: the store's bytes, new mtime and ctime */
	assert_int_equal(write_fill(&g_ctx, fh, model, 60 << 10, 128 << 10, 2, &s), 128 << 10);
	assert_int_equal(s.calls, 1);
	check_file(fh, model, 256 << 10);
	a1 = get_attr(fh);
	assert_true(ts_before(a0.mtime, a1.mtime));
	assert_true(ts_before(a0.ctime, a1.ctime));

	/* cut to 200 KiB: its last cluster stays, and a fill up to its end extends the file */
	set_size(fh, 200 << 10);
	memset(model + (200 << 10), 0, MAX_FILE - (200 << 10));
	assert_int_equal(write_fill(&g_ctx, fh, model, 192 << 10, 64 << 10, 3, &s), 64 << 10);
	assert_int_equal(get_attr(fh).size, 256 << 10);
	check_file(fh, model, 256 << 10);

	/* not in place: the store is never called */
	assert_int_equal(write_fill(&g_ctx, fh, NULL, 100, 4096, 4, &s), -EAGAIN);
	assert_int_equal(write_fill(&g_ctx, fh, NULL, 4096, 4000, 4, &s), -EAGAIN);
	assert_int_equal(write_fill(&g_ctx, fh, NULL, 256 << 10, 4096, 4, &s), -EAGAIN);
	assert_int_equal(write_fill(&g_ctx, fh, NULL, 192 << 10, 128 << 10, 4, &s), -EAGAIN);
	set_size(fh, 512 << 10); /* thin: the new clusters are holes */
	assert_int_equal(write_fill(&g_ctx, fh, NULL, 300 << 10, 4096, 4, &s), -EAGAIN);
	assert_int_equal(s.calls, 0);
	ap = open_file(ino, O_WRONLY | O_APPEND);
	assert_int_equal(write_fill(&g_ctx, ap, NULL, 0, 4096, 4, &s), -EAGAIN);
	release_file(ap);
	ap = open_file(ino, O_RDONLY);
	assert_int_equal(write_fill(&g_ctx, ap, NULL, 0, 4096, 4, &s), -EBADF);
	release_file(ap);
	assert_int_equal(s.calls, 0);
	check_file(fh, model, 512 << 10);

	/* set-user-ID: a writer who is not the owner must drop it, which takes a sync */
	ust_blobfs_setattr(g_fs, &g_ctx, ino, &sa, UST_BLOBFS_SET_MODE, fh, bft_attr_cb, &r);
	wait_res(&r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(write_fill(&other, fh, NULL, 0, 4096, 5, &s), -EAGAIN);
	assert_int_equal(s.calls, 0);
	assert_int_equal(get_attr(fh).mode, S_IFREG | 04755);
	assert_int_equal(write_fill(&g_ctx, fh, model, 0, 4096, 5, &s), 4096);

	/* the store fails: its error, and the size stays */
	memset(&s, 0, sizeof(s));
	s.rc = -EIO;
	assert_int_equal(ust_blobfs_write_fill(g_fs, &g_ctx, fh, 4096, 508 << 10, store_cb, &s), -EAGAIN);
	assert_int_equal(ust_blobfs_write_fill(g_fs, &g_ctx, fh, 4096, 8192, store_cb, &s), -EIO);
	assert_int_equal(s.calls, 1);
	pattern(model + 8192, 4096, 0);
	check_file(fh, model, 512 << 10);

	/* only on the metadata thread */
	memset(&s, 0, sizeof(s));
	s.fh = fh;
	assert_int_equal(ust_thread_send_msg(bt_thread(1), fill_on_thread1, &s), 0);
	bt_poll();
	assert_true(s.done);
	assert_int_equal(s.n, -ENOTSUP);
	assert_int_equal(s.calls, 0);

	/* durable by fsync, as a write: the bytes and the size after a remount */
	set_size(fh, 256 << 10);
	memset(model + (256 << 10), 0, MAX_FILE - (256 << 10));
	set_size(fh, 200 << 10);
	memset(model + (200 << 10), 0, MAX_FILE - (200 << 10));
	assert_int_equal(write_fill(&g_ctx, fh, model, 192 << 10, 64 << 10, 6, &s), 64 << 10);
	memset(&r, 0, sizeof(r));
	ust_blobfs_fsync(g_fs, fh, false, bft_op_cb, &r);
	wait_res(&r);
	assert_int_equal(r.rc, 0);
	release_file(fh);
	memset(&r, 0, sizeof(r));
	ust_blobfs_unmount(g_fs, bft_op_cb, &r);
	wait_res(&r);
	assert_int_equal(r.rc, 0);
	ust_blobfs_opts_init(&o);
	memset(&r, 0, sizeof(r));
	ust_blobfs_mount(DEV, &o, bft_fs_cb, &r);
	wait_res(&r);
	assert_int_equal(r.rc, 0);
	g_fs = r.fs;
	fh = open_file(ino, O_RDWR);
	assert_int_equal(get_attr(fh).size, 256 << 10);
	check_file(fh, model, 256 << 10);
	release_file(fh);
	free(model);
}

/* ---- lends held ------------------------------------------------------------------ */

/* A lend kept, as the FUSE mount keeps one while another thread writes the answer. */
static void lend_hold(struct lend_res *r, struct ust_blobfs_file *fh, uint64_t off, size_t size)
{
	memset(r, 0, sizeof(*r));
	r->hold = true;
	ust_blobfs_read_lend(g_fs, fh, size, off, r->iov, LEND_IOV, lend_cb, r);
	bt_poll();
}

/* The held bytes, read where they are lent now, equal want[0, r->n). */
static void check_held(const struct lend_res *r, const uint8_t *want)
{
	uint8_t *now = malloc((size_t)r->n);

	assert_non_null(now);
	lend_gather(r, now);
	assert_memory_equal(now, want, (size_t)r->n);
	free(now);
}

/*
 * While a lend is held, what would change or free its bytes waits: an
 * overlapping write (and write_fill says -EAGAIN), a truncate, the release
 * that reclaims an unlinked file. Reads, other lends and writes elsewhere
 * go on; a lend asked for after a waiting write waits behind it, so lends
 * cannot starve writes. On release everything waiting runs, in order.
 */
static void test_read_lend_holds(void **state)
{
	const size_t len = 64 << 10;
	uint8_t *a = malloc(len), *b = malloc(len), *out = malloc(len);
	struct ust_blobfs_file *fh = create_file("held");
	struct bft_res w = {0}, far = {0}, tr = {0}, rd = {0}, rel = {0};
	struct ust_blobfs_attr sz = {.size = 0};
	struct lend_res h1, h2, h3;
	struct store_res st;
	uint64_t base, ino = ust_blobfs_file_ino(fh);

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(out);
	pattern(a, len, 1);
	pattern(b, len, 2);
	write_at(fh, a, len, 0);
	write_at(fh, a, len, 2 * len); /* a second region, apart */

	lend_hold(&h1, fh, 0, len);
	assert_true(h1.done);
	assert_int_equal(h1.n, (int64_t)len);
	assert_non_null(h1.lend);

	/* another lend of the range is not held up, and shows the same bytes */
	lend_hold(&h2, fh, 0, len);
	assert_true(h2.done);
	check_held(&h2, a);
	ust_blobfs_lend_release(g_fs, h2.lend);

	/* a write over part of it waits; one in place is refused */
	ust_blobfs_write(g_fs, &g_ctx, fh, b + 4096, 4096, 4096, bft_size_cb, &w);
	bt_poll();
	assert_false(w.done);
	assert_int_equal(write_fill(&g_ctx, fh, NULL, 0, 4096, 3, &st), -EAGAIN);
	assert_int_equal(st.calls, 0);

	/* a write elsewhere and a plain read of the held range go through */
	ust_blobfs_write(g_fs, &g_ctx, fh, b, 4096, 2 * len, bft_size_cb, &far);
	ust_blobfs_read(g_fs, fh, out, len, 0, bft_size_cb, &rd);
	bt_poll();
	assert_true(far.done);
	assert_int_equal(far.n, 4096);
	assert_true(rd.done);
	assert_int_equal(rd.n, (int64_t)len);
	assert_memory_equal(out, a, len);

	/* a lend asked for now queues behind the waiting write */
	lend_hold(&h3, fh, 4096, 4096);
	assert_false(h3.done);

	/* so does a truncate */
	ust_blobfs_setattr(g_fs, &g_ctx, ust_blobfs_file_ino(fh), &sz, UST_BLOBFS_SET_SIZE, fh,
			   bft_attr_cb, &tr);
	bt_poll();
	assert_false(tr.done);

	/* the held bytes are still the file's first ones */
	check_held(&h1, a);

	/* released: the write runs, then the lend (seeing it), which holds off the truncate */
	ust_blobfs_lend_release(g_fs, h1.lend);
	bt_poll();
	assert_true(w.done);
	assert_int_equal(w.n, 4096);
	assert_true(h3.done);
	assert_int_equal(h3.n, 4096);
	check_held(&h3, b + 4096);
	assert_false(tr.done);
	ust_blobfs_lend_release(g_fs, h3.lend);
	bt_poll();
	assert_true(tr.done);
	assert_int_equal(tr.rc, 0);
	assert_int_equal(get_attr(fh).size, 0);

	/* the last release of an unlinked file frees its data only once no lend holds it */
	write_at(fh, a, len, 0);
	base = g_fs->ninodes;
	lend_hold(&h1, fh, 0, len);
	assert_true(h1.done);
	unlink_file("held");
	ust_blobfs_release(g_fs, fh, bft_op_cb, &rel);
	bt_poll();
	assert_false(rel.done);
	check_held(&h1, a);
	assert_int_equal(g_fs->ninodes, base);
	ust_blobfs_lend_release(g_fs, h1.lend);
	bt_poll();
	assert_true(rel.done);
	assert_int_equal(rel.rc, 0);
	forget(ino, 1); /* the create's lookup */
	assert_int_equal(g_fs->ninodes, base - 1);

	free(a);
	free(b);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_disjoint_writes_all_land, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_overlapping_writes_serialise, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_unaligned_write_reads_ends_only, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_deleted_inodes_freed, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_read_lend, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_read_lend_holds, make_fs, drop_fs),
		cmocka_unit_test_setup_teardown(test_write_fill, make_fs, drop_fs),
	};

	ust_log_set_print_level(UST_LOG_WARN);
	return cmocka_run_group_tests(tests, group_setup, bt_group_teardown);
}
