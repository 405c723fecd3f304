/*
 * Unit tests for the file bdev modules (bdev/file: "aio" and "uring") on
 * real temporary files, every test once per backend: write/read round trips
 * (including more iovecs than one kernel submission takes), flush, unmap
 * punching a hole, write_zeroes, a misaligned caller buffer bounced by the
 * core under O_DIRECT, the buffered fallback where O_DIRECT is refused,
 * bad sizes and block sizes, a short read after the file shrank (must fail,
 * never succeed), rescan after growth with its RESIZE event, zero-copy
 * reads (ust_bdev_read_lend: a tmpfs file lends what is in it and never
 * its holes; disk and ramfs files do not lend), zero-copy writes
 * (ust_bdev_write_lend: backs a hole as a write does, -EAGAIN where tmpfs
 * is full or past the mapping), the RPCs and save_config output.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ustor/bdev.h"
#include "ustor/bdev_module.h"
#include "ustor/log.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"

#include "../../../bdev/file/bdev_file.h"
#include "ut_rpc.h"
#include "ut_threads.h"

#define MiB (1024 * 1024)

struct backend {
	const char *name;
	int (*create)(const struct ust_bdev_file_opts *opts, struct ust_bdev **bdev);
	int (*delete)(const char *name, void (*cb)(void *ctx, int rc), void *ctx);
	int (*rescan)(const char *name);
};

static struct backend g_aio = {"aio", ust_bdev_aio_create, ust_bdev_aio_delete,
			       ust_bdev_aio_rescan};
static struct backend g_uring = {"uring", ust_bdev_uring_create, ust_bdev_uring_delete,
				 ust_bdev_uring_rescan};

static char g_path[64];

/* ---- helpers ------------------------------------------------------------ */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Poll until *flag is set, then on until idle. Real kernel I/O needs real
 * time: a round that finds nothing to do only means the kernel has not
 * completed yet, so the wait is bounded by a clock, not by rounds.
 */
static bool poll_for(const int *flag)
{
	double end = now_s() + 10;

	do {
		ut_threads_poll();
	} while (!*flag && now_s() < end);
	return *flag != 0;
}

/* poll_for, failing the test if *flag is never set. */
static void poll_until(const int *flag)
{
	assert_true(poll_for(flag));
}

static void make_file(const char *path, off_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
}

struct io_result {
	int done;
	int status;
};

static void io_cb(struct ust_bdev_io *io, int status, void *arg)
{
	struct io_result *r = arg;

	r->status = status;
	r->done = 1;
}

static int g_events_resize, g_events_remove;

static void event_cb(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	if (type == UST_BDEV_EVENT_RESIZE)
		g_events_resize++;
	else
		g_events_remove++;
}

struct fixture {
	struct ust_bdev *bdev;
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;
};

static void fixture_open(const struct backend *be, const char *path, uint32_t bs,
			 struct fixture *f)
{
	struct ust_bdev_file_opts opts = {.name = "F0", .filename = path, .block_size = bs};

	assert_int_equal(be->create(&opts, &f->bdev), 0);
	assert_int_equal(ust_bdev_open_ext("F0", true, event_cb, NULL, &f->desc), 0);
	f->ch = ust_bdev_get_io_channel(f->desc);
	assert_non_null(f->ch);
}

static void delete_done(void *ctx, int rc)
{
	*(int *)ctx = rc == 0 ? 1 : rc;
}

static void fixture_close(const struct backend *be, struct fixture *f)
{
	int done = 0;

	ust_put_io_channel(f->ch);
	ust_bdev_close(f->desc);
	f->ch = NULL; /* released: scratch_teardown must not release them again */
	f->desc = NULL;
	ut_threads_poll();
	assert_int_equal(be->delete("F0", delete_done, &done), 0);
	poll_until(&done);
	assert_int_equal(done, 1);
	assert_null(ust_bdev_get_by_name("F0"));
}

/*
 * What a test that makes a file in a memory file system (or mounts one of
 * its own) makes, recorded as it is made: cmocka leaves a test at its first
 * failed assertion, and scratch_teardown then still closes F0, unlinks the
 * file, unmounts the mount point and removes it, so neither a mount nor a
 * file in memory outlives the test. Given to the test (with its backend)
 * as its state by SCRATCH().
 */
struct scratch {
	const struct backend *be;
	char mnt[96];       /* mount point made by the test, or "" */
	char path[160];     /* file made by the test, or "" */
	struct fixture f;   /* F0, while f.desc is set */
	uint8_t *w, *r, *z; /* the test's buffers */
};

static struct scratch g_scratch_aio = {.be = &g_aio}, g_scratch_uring = {.be = &g_uring};

static int scratch_setup(void **state)
{
	struct scratch *t = *state;
	const struct backend *be = t->be;

	memset(t, 0, sizeof(*t));
	t->be = be;
	return 0;
}

static int scratch_teardown(void **state)
{
	struct scratch *t = *state;
	int done = 0;

	if (t->f.ch != NULL)
		ust_put_io_channel(t->f.ch);
	if (t->f.desc != NULL)
		ust_bdev_close(t->f.desc);
	ut_threads_poll();
	if (ust_bdev_get_by_name("F0") != NULL && t->be->delete("F0", delete_done, &done) == 0)
		poll_for(&done);
	if (t->path[0] != '\0')
		unlink(t->path);
	if (t->mnt[0] != '\0') {
		umount2(t->mnt, MNT_DETACH); /* fails harmlessly when not (or no longer) mounted */
		rmdir(t->mnt);
	}
	free(t->w);
	free(t->r);
	free(t->z);
	return 0;
}

static int do_write(struct fixture *f, void *buf, uint64_t off, uint64_t n)
{
	struct io_result r = {0};

	assert_int_equal(ust_bdev_write_blocks(f->desc, f->ch, buf, off, n, io_cb, &r), 0);
	poll_until(&r.done);
	return r.status;
}

static int do_read(struct fixture *f, void *buf, uint64_t off, uint64_t n)
{
	struct io_result r = {0};

	assert_int_equal(ust_bdev_read_blocks(f->desc, f->ch, buf, off, n, io_cb, &r), 0);
	poll_until(&r.done);
	return r.status;
}

static void *aligned_buf(size_t len, uint8_t fill)
{
	void *p = NULL;

	assert_int_equal(posix_memalign(&p, 4096, len), 0);
	memset(p, fill, len);
	return p;
}

static void fill_pattern(uint8_t *p, size_t len, uint32_t seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

/* ---- tests -------------------------------------------------------------- */

/* Write, read back and flush through a bdev on the file at path. */
static void check_roundtrip_and_flush(const struct backend *be, const char *path)
{
	struct fixture f;
	uint8_t *w = aligned_buf(64 * 1024, 0), *r = aligned_buf(64 * 1024, 0);
	struct iovec iov[20];
	struct io_result res = {0};
	int i;

	make_file(path, MiB);
	fixture_open(be, path, 0, &f);
	assert_int_equal(ust_bdev_get_block_size(f.bdev), 512);
	assert_int_equal(ust_bdev_get_num_blocks(f.bdev), MiB / 512);
	assert_string_equal(ust_bdev_get_module_name(f.bdev), be->name);

	fill_pattern(w, 64 * 1024, 1);
	assert_int_equal(do_write(&f, w, 10, 128), 0);
	assert_int_equal(do_read(&f, r, 10, 128), 0);
	assert_memory_equal(w, r, 64 * 1024);

	/* 20 iovecs: more than one kernel submission carries. */
	fill_pattern(w, 20 * 512, 2);
	for (i = 0; i < 20; i++) {
		iov[i].iov_base = w + i * 512;
		iov[i].iov_len = 512;
	}
	assert_int_equal(ust_bdev_writev_blocks(f.desc, f.ch, iov, 20, 300, 20, io_cb, &res), 0);
	poll_until(&res.done);
	assert_int_equal(res.status, 0);
	memset(r, 0, 20 * 512);
	assert_int_equal(do_read(&f, r, 300, 20), 0);
	assert_memory_equal(w, r, 20 * 512);

	/* What the bdev wrote is in the file. */
	{
		int fd = open(path, O_RDONLY);
		uint8_t chk[512];

		assert_true(fd >= 0);
		assert_int_equal(pread(fd, chk, 512, 305 * 512), 512);
		assert_memory_equal(chk, w + 5 * 512, 512);
		close(fd);
	}

	memset(&res, 0, sizeof(res));
	assert_int_equal(ust_bdev_flush_blocks(f.desc, f.ch, 0, ust_bdev_get_num_blocks(f.bdev),
					       io_cb, &res), 0);
	poll_until(&res.done);
	assert_int_equal(res.status, 0);

	memset(&res, 0, sizeof(res));
	assert_int_equal(ust_bdev_reset(f.desc, f.ch, io_cb, &res), 0);
	poll_until(&res.done);
	assert_int_equal(res.status, 0);

	fixture_close(be, &f);
	free(w);
	free(r);
	unlink(path);
}

static void test_roundtrip_and_flush(void **state)
{
	check_roundtrip_and_flush(*state, g_path);
}

static uint64_t file_blocks(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_blocks;
}

static void test_unmap_and_write_zeroes(void **state)
{
	const struct backend *be = *state;
	struct fixture f;
	size_t len = 256 * 1024;
	uint8_t *w = aligned_buf(len, 0), *r = aligned_buf(len, 0xee), *zero = aligned_buf(len, 0);
	struct io_result res = {0};
	uint64_t before, after;

	make_file(g_path, 4 * MiB);
	fixture_open(be, g_path, 4096, &f);
	fill_pattern(w, len, 3);
	assert_int_equal(do_write(&f, w, 0, len / 4096), 0);
	assert_int_equal(do_write(&f, w, 256, len / 4096), 0);
	assert_int_equal(ust_bdev_flush_blocks(f.desc, f.ch, 0, 1, io_cb, &res), 0);
	poll_until(&res.done);
	before = file_blocks(g_path);
	assert_true(before >= 2 * len / 512);

	/* Unmap punches a hole: the file holds fewer blocks and reads zeroes. */
	memset(&res, 0, sizeof(res));
	assert_int_equal(ust_bdev_unmap_blocks(f.desc, f.ch, 0, len / 4096, io_cb, &res), 0);
	poll_until(&res.done);
	assert_int_equal(res.status, 0);
	after = file_blocks(g_path);
	assert_true(after + len / 512 <= before);
	assert_int_equal(do_read(&f, r, 0, len / 4096), 0);
	assert_memory_equal(r, zero, len);

	/* write_zeroes over data reads back zeroes; neighbours keep their data. */
	memset(&res, 0, sizeof(res));
	assert_int_equal(ust_bdev_write_zeroes_blocks(f.desc, f.ch, 260, 8, io_cb, &res), 0);
	poll_until(&res.done);
	assert_int_equal(res.status, 0);
	memset(r, 0xee, len);
	assert_int_equal(do_read(&f, r, 256, len / 4096), 0);
	assert_memory_equal(r, w, 4 * 4096);
	assert_memory_equal(r + 4 * 4096, zero, 8 * 4096);
	assert_memory_equal(r + 12 * 4096, w + 12 * 4096, len - 12 * 4096);

	fixture_close(be, &f);
	free(w);
	free(r);
	free(zero);
	unlink(g_path);
}

static void test_misaligned_buffer(void **state)
{
	const struct backend *be = *state;
	struct fixture f;
	uint8_t *wraw = malloc(8192 + 3), *rraw = malloc(8192 + 3);
	uint8_t *w = wraw + 3, *r = rraw + 3;
	uint8_t chk[8192];
	int fd;

	make_file(g_path, MiB);
	fixture_open(be, g_path, 0, &f);
	/* ext4 in /tmp takes O_DIRECT: the core must bounce our odd buffers. */
	assert_int_equal(ust_bdev_get_buf_align(f.bdev), 512);
	fill_pattern(w, 8192, 4);
	assert_int_equal(do_write(&f, w, 7, 16), 0);
	memset(r, 0, 8192);
	assert_int_equal(do_read(&f, r, 7, 16), 0);
	assert_memory_equal(w, r, 8192);
	fd = open(g_path, O_RDONLY);
	assert_int_equal(pread(fd, chk, 8192, 7 * 512), 8192);
	close(fd);
	assert_memory_equal(chk, w, 8192);
	fixture_close(be, &f);
	free(wraw);
	free(rraw);
	unlink(g_path);
}

/* Log lines of one level naming one file and containing given words, counted. */
static struct {
	enum ust_log_level level;
	const char *file;
	const char *words;
	int hits;
} g_capture;

static void capture_sink(enum ust_log_level level, const char *msg)
{
	if (level == g_capture.level && strstr(msg, g_capture.file) != NULL &&
	    strstr(msg, g_capture.words) != NULL)
		g_capture.hits++;
}

/* Open a bdev on path and return how many captured lines the open logged. */
static int open_counting_log(const struct backend *be, const char *path, enum ust_log_level level,
			     const char *words, struct fixture *f)
{
	g_capture.level = level;
	g_capture.file = path;
	g_capture.words = words;
	g_capture.hits = 0;
	ust_log_set_sink(capture_sink);
	fixture_open(be, path, 0, f);
	ust_log_set_sink(NULL);
	return g_capture.hits;
}

static bool odirect_refused(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_DIRECT, 0600);

	if (fd >= 0) {
		close(fd);
		unlink(path);
		return false;
	}
	unlink(path);
	return errno == EINVAL;
}

/* A directory whose filesystem refuses O_DIRECT, or NULL; mnt: a ramfs mounted for it, or "". */
static const char *no_odirect_dir(char *mnt, size_t len)
{
	char probe[128];

	snprintf(probe, sizeof(probe), "/dev/shm/ustor_file_ut_probe_%d", getpid());
	if (odirect_refused(probe))
		return "/dev/shm";
	/* Newer kernels give tmpfs O_DIRECT; ramfs still refuses it. */
	snprintf(mnt, len, "/tmp/ustor_file_ut_ramfs_%d", getpid());
	if (mkdir(mnt, 0700) != 0)
		return NULL;
	if (mount("none", mnt, "ramfs", 0, NULL) != 0) {
		rmdir(mnt);
		mnt[0] = '\0';
		return NULL;
	}
	snprintf(probe, sizeof(probe), "%s/probe", mnt);
	if (odirect_refused(probe))
		return mnt;
	umount(mnt);
	rmdir(mnt);
	mnt[0] = '\0';
	return NULL;
}

static void test_odirect_fallback(void **state)
{
	struct scratch *t = *state;
	const struct backend *be = t->be;
	const char *dir = no_odirect_dir(t->mnt, sizeof(t->mnt));
	char *path = t->path;
	struct fixture *f = &t->f;
	uint8_t *wraw, *r;

	if (dir == NULL) {
		fprintf(stderr, "no filesystem refusing O_DIRECT is available (tmpfs takes it and "
				"ramfs cannot be mounted): fallback not testable here\n");
		skip();
	}
	snprintf(path, sizeof(t->path), "%s/ustor_file_ut_%d", dir, getpid());
	make_file(path, MiB);
	assert_int_equal(open_counting_log(be, path, UST_LOG_WARN, "O_DIRECT", f), 1);
	assert_int_equal(ust_bdev_get_buf_align(f->bdev), 1);

	wraw = t->w = malloc(4096 + 1);
	r = t->r = malloc(4096);
	fill_pattern(wraw + 1, 4096, 5);
	assert_int_equal(do_write(f, wraw + 1, 3, 8), 0);
	assert_int_equal(do_read(f, r, 3, 8), 0);
	assert_memory_equal(wraw + 1, r, 4096);
	fixture_close(be, f);
}

static void test_bad_geometry(void **state)
{
	const struct backend *be = *state;
	struct ust_bdev_file_opts opts = {.name = "F0", .filename = g_path};
	struct ust_bdev *bdev;

	make_file(g_path, 1000); /* not a multiple of 512 */
	assert_int_equal(be->create(&opts, &bdev), -EINVAL);
	assert_null(ust_bdev_get_by_name("F0"));
	make_file(g_path, 6144); /* a multiple of 512 and 1024, not of 4096 */
	opts.block_size = 4096;
	assert_int_equal(be->create(&opts, &bdev), -EINVAL);
	opts.block_size = 1000; /* not a power of two */
	assert_int_equal(be->create(&opts, &bdev), -EINVAL);
	opts.block_size = 256; /* below 512 */
	assert_int_equal(be->create(&opts, &bdev), -EINVAL);
	make_file(g_path, 0);
	opts.block_size = 0;
	assert_int_equal(be->create(&opts, &bdev), -EINVAL);
	opts.filename = "/nonexistent/ustor/file";
	assert_int_equal(be->create(&opts, &bdev), -ENOENT);
	opts.filename = "/tmp";
	assert_int_equal(be->create(&opts, &bdev), -EISDIR);
	opts.filename = g_path;
	opts.name = NULL;
	assert_int_equal(be->create(&opts, &bdev), -EINVAL);
	assert_int_equal(be->delete("nope", NULL, NULL), -ENODEV);
	assert_int_equal(be->rescan("nope"), -ENODEV);
	unlink(g_path);
}

/* A read across the end of a file that shrank behind the bdev's back fails. */
static void check_short_read_fails(const struct backend *be, const char *path)
{
	struct fixture f;
	uint8_t *r = aligned_buf(8192, 0);

	make_file(path, MiB);
	fixture_open(be, path, 0, &f);
	/* The file shrinks behind the bdev's back: a read across the new end is short. */
	assert_int_equal(truncate(path, MiB - 2048), 0);
	assert_int_equal(do_read(&f, r, MiB / 512 - 8, 8), -EIO);
	assert_int_equal(do_read(&f, r, MiB / 512 - 2, 2), -EIO);
	assert_int_equal(do_read(&f, r, 0, 8), 0);
	fixture_close(be, &f);
	free(r);
	unlink(path);
}

static void test_short_read_fails(void **state)
{
	check_short_read_fails(*state, g_path);
}

/*
 * An idle thread's interrupt fds must not stay readable once its I/O has
 * completed: an adaptive reactor sleeps in ppoll on them, and one left
 * signalled turns the sleep into a busy loop of system calls.
 */
static void test_idle_interrupt_fds_quiet(void **state)
{
	const struct backend *be = *state;
	struct fixture f;
	uint8_t *buf = aligned_buf(4096, 7);
	struct pollfd pfds[8];
	int fds[8];
	size_t n, i;

	make_file(g_path, MiB);
	fixture_open(be, g_path, 0, &f);
	assert_int_equal(do_write(&f, buf, 0, 8), 0);
	assert_int_equal(do_read(&f, buf, 8, 8), 0);
	ut_threads_poll();
	ust_thread_poll(ut_thread(0), 0, 0);
	n = ust_thread_get_interrupt_fds(ut_thread(0), fds, 8);
	assert_true(n <= 8);
	for (i = 0; i < n; i++)
		pfds[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
	assert_int_equal(poll(pfds, (nfds_t)n, 0), 0);
	fixture_close(be, &f);
	free(buf);
	unlink(g_path);
}

/*
 * A file on tmpfs is read and written by syscall on the reactor instead of
 * through the backend's kernel queue: the same data must land and come
 * back, several iovecs per I/O included, and a short transfer still fails.
 */
static void test_memory_fs_inline(void **state)
{
	const struct backend *be = *state;
	char path[96];
	struct fixture f;

	snprintf(path, sizeof(path), "/dev/shm/ustor_file_ut_mem_%d", getpid());
	make_file(path, MiB);
	assert_int_equal(open_counting_log(be, path, UST_LOG_NOTICE, "copied inline", &f), 1);
	fixture_close(be, &f);

	check_roundtrip_and_flush(be, path);
	check_short_read_fails(be, path);
}

/* Read the file itself (not through the bdev). */
static void pread_file(const char *path, void *buf, size_t len, off_t off)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

/*
 * tmpfs files are copied through a mapping (file_map.c): data lands in the
 * file itself, holes stay holes, unmapped chunks are allocated again before
 * the next store, and a file truncated behind the bdev's back fails the I/O
 * with -EIO instead of killing the process with SIGBUS.
 */
static void test_tmpfs_mapping(void **state)
{
	struct scratch *t = *state;
	const struct backend *be = t->be;
	uint8_t *w = t->w = aligned_buf(MiB, 0), *r = t->r = aligned_buf(MiB, 0),
		*z = t->z = aligned_buf(MiB, 0);
	char *path = t->path;
	struct fixture *f = &t->f;
	struct io_result res = {0};
	uint64_t blocks;
	int fd;

	snprintf(path, sizeof(t->path), "/dev/shm/ustor_file_ut_map_%d", getpid());
	make_file(path, 4 * MiB);
	assert_int_equal(open_counting_log(be, path, UST_LOG_NOTICE, "through a mapping", f), 1);

	/* A write across a chunk boundary (64 KiB) and a 512-byte one: back from the file and the bdev. */
	fill_pattern(w, 8192, 1);
	assert_int_equal(do_write(f, w, (60 * 1024) / 512, 16), 0);
	fill_pattern(w + 8192, 512, 2);
	assert_int_equal(do_write(f, w + 8192, (128 * 1024 + 512) / 512, 1), 0);
	pread_file(path, r, 8192, 60 * 1024);
	assert_memory_equal(r, w, 8192);
	pread_file(path, r, 512, 128 * 1024 + 512);
	assert_memory_equal(r, w + 8192, 512);
	assert_int_equal(do_read(f, r, (60 * 1024) / 512, 16), 0);
	assert_memory_equal(r, w, 8192);
	/* Only the three chunks written are allocated. */
	blocks = file_blocks(path);
	assert_true(blocks * 512 <= 3 * 64 * 1024);

	/* A hole reads as zeros and stays a hole. */
	memset(r, 0xee, 65536);
	assert_int_equal(do_read(f, r, MiB / 512, 128), 0);
	assert_memory_equal(r, z, 65536);
	assert_int_equal(file_blocks(path), blocks);

	/* Another writer of the file is seen: one page cache. */
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	fill_pattern(w, 4096, 3);
	assert_int_equal(pwrite(fd, w, 4096, 64 * 1024), 4096);
	close(fd);
	assert_int_equal(do_read(f, r, (64 * 1024) / 512, 8), 0);
	assert_memory_equal(r, w, 4096);

	/* Unmap punches the chunk; the next write there allocates it again. */
	assert_int_equal(ust_bdev_unmap_blocks(f->desc, f->ch, 0, MiB / 512, io_cb, &res), 0);
	poll_until(&res.done);
	assert_int_equal(res.status, 0);
	assert_int_equal(file_blocks(path), 0);
	assert_int_equal(do_read(f, r, (60 * 1024) / 512, 16), 0);
	assert_memory_equal(r, z, 8192);
	fill_pattern(w, 8192, 4);
	assert_int_equal(do_write(f, w, (60 * 1024) / 512, 16), 0);
	pread_file(path, r, 8192, 60 * 1024);
	assert_memory_equal(r, w, 8192);

	/* Every chunk backed, then the file shrinks behind our back: -EIO, no SIGBUS. */
	fill_pattern(w, MiB, 5);
	for (int i = 0; i < 4; i++)
		assert_int_equal(do_write(f, w, (uint64_t)i * MiB / 512, MiB / 512), 0);
	assert_int_equal(truncate(path, MiB), 0);
	assert_int_equal(do_read(f, r, 2 * MiB / 512, 8), -EIO);
	assert_int_equal(do_write(f, w, 3 * MiB / 512, 8), -EIO);
	assert_int_equal(do_read(f, r, 0, 8), 0);
	assert_memory_equal(r, w, 4096);
	fixture_close(be, f);
}

/*
 * Large pieces of a write (32 KiB and more) are stored into the mapping
 * with streaming stores, the others with memcpy: a write mixing both, from
 * scattered buffers, lands exactly, and the bytes either side of it are
 * untouched.
 */
static void test_tmpfs_streaming_stores(void **state)
{
	struct scratch *t = *state;
	const struct backend *be = t->be;
	static const size_t lens[] = {32768, 1024, 66048, 32256, 131072};
	static const size_t src_off[] = {512, 65536, 98304, 196608, 262144 + 4096};
	const size_t total = 263168, before = 7 * 512, file_part = 512 * 1024;
	uint8_t *w = t->w = aligned_buf(MiB, 0), *r = t->r = aligned_buf(MiB, 0),
		*z = t->z = aligned_buf(MiB, 0);
	struct iovec iov[5];
	struct fixture *f = &t->f;
	struct io_result res = {0};
	size_t i, at;
	int fd;

	snprintf(t->path, sizeof(t->path), "/dev/shm/ustor_file_ut_stream_%d", getpid());
	make_file(t->path, 4 * MiB);
	fd = open(t->path, O_WRONLY);
	assert_true(fd >= 0);
	memset(z, 0xa5, file_part);
	assert_int_equal(pwrite(fd, z, file_part, 0), (ssize_t)file_part);
	close(fd);
	assert_int_equal(open_counting_log(be, t->path, UST_LOG_NOTICE, "through a mapping", f), 1);

	fill_pattern(w, MiB, 9);
	for (i = 0; i < 5; i++) {
		iov[i].iov_base = w + src_off[i];
		iov[i].iov_len = lens[i];
	}
	assert_int_equal(ust_bdev_writev_blocks(f->desc, f->ch, iov, 5, before / 512, total / 512,
						io_cb, &res), 0);
	poll_until(&res.done);
	assert_int_equal(res.status, 0);

	pread_file(t->path, r, file_part, 0);
	assert_memory_equal(r, z, before);
	for (i = 0, at = before; i < 5; i++) {
		assert_memory_equal(r + at, w + src_off[i], lens[i]);
		at += lens[i];
	}
	assert_memory_equal(r + at, z, file_part - at);
	memset(r, 0, total);
	assert_int_equal(do_read(f, r, before / 512, total / 512), 0);
	for (i = 0, at = 0; i < 5; i++) {
		assert_memory_equal(r + at, w + src_off[i], lens[i]);
		at += lens[i];
	}
	fixture_close(be, f);
}

/*
 * A CPU we may use besides CPU 0, the test's reactor: the copy engine must
 * start there. (Without one it may still start: it takes every CPU outside
 * the core mask, and only a cgroup's cpuset, not taskset, keeps it out.)
 */
static bool spare_cpu(void)
{
	cpu_set_t set;

	assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
	CPU_CLR(0, &set);
	return CPU_COUNT(&set) > 0;
}

/* The writes the copy engine stored for F0, from its driver_specific info. */
static json_int_t engine_writes(const struct backend *be, struct fixture *f)
{
	json_t *o = json_object();
	json_int_t n;

	assert_int_equal(f->bdev->fn_table->dump_info_json(f->bdev->ctxt, o), 0);
	assert_true(json_is_true(json_object_get(json_object_get(o, be->name), "mapped")));
	n = json_integer_value(json_object_get(json_object_get(o, be->name), "copy_engine_writes"));
	json_decref(o);
	return n;
}

/*
 * Writes of 1 MiB or more into a mapped tmpfs file go to the copy engine
 * (file_copy.c) where some CPU is not a reactor's (here everything but CPU
 * 0): several in flight at once all complete, on this thread, with their
 * data in place, and one into pages cut behind the bdev's back fails with
 * -EIO, the worker surviving the SIGBUS and serving the next.
 */
static void test_tmpfs_copy_engine(void **state)
{
	struct scratch *t = *state;
	const struct backend *be = t->be;
	uint8_t *w = t->w = aligned_buf(8 * MiB, 0), *r = t->r = aligned_buf(8 * MiB, 0);
	struct fixture *f = &t->f;
	struct io_result res[8];
	int i;

	snprintf(t->path, sizeof(t->path), "/dev/shm/ustor_file_ut_engine_%d", getpid());
	make_file(t->path, 8 * MiB);
	g_capture.level = UST_LOG_NOTICE;
	g_capture.file = "copy engine on CPUs 0x";
	g_capture.words = "1024 KiB";
	g_capture.hits = 0;
	ust_log_set_sink(capture_sink);
	fixture_open(be, t->path, 0, f);
	ust_log_set_sink(NULL);
	if (spare_cpu()) {
		assert_int_equal(g_capture.hits, 1);
	}

	/* Eight 1 MiB writes in flight together, then all of them awaited. */
	fill_pattern(w, 8 * MiB, 11);
	memset(res, 0, sizeof(res));
	for (i = 0; i < 8; i++) {
		assert_int_equal(ust_bdev_write_blocks(f->desc, f->ch, w + (size_t)i * MiB,
						       (uint64_t)i * 2048, 2048, io_cb, &res[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		poll_until(&res[i].done);
		assert_int_equal(res[i].status, 0);
	}
	pread_file(t->path, r, 8 * MiB, 0);
	assert_memory_equal(r, w, 8 * MiB);
	assert_int_equal(do_read(f, r, 0, 8 * MiB / 512), 0);
	assert_memory_equal(r, w, 8 * MiB);
	/* A write below 1 MiB stays here. */
	assert_int_equal(do_write(f, w, 0, 1020 * 1024 / 512), 0);
	assert_int_equal(engine_writes(be, f), g_capture.hits == 1 ? 8 : 0);

	/* Every chunk is backed; the file shrinks behind our back. */
	assert_int_equal(truncate(t->path, 2 * MiB), 0);
	assert_int_equal(do_write(f, w, 4 * MiB / 512, MiB / 512), -EIO);
	fill_pattern(w, MiB, 12);
	assert_int_equal(do_write(f, w, 0, MiB / 512), 0);
	pread_file(t->path, r, MiB, 0);
	assert_memory_equal(r, w, MiB);
	fixture_close(be, f);
}

/*
 * A store into a mapping of a full tmpfs would be a SIGBUS: the write must
 * fail with -ENOSPC instead, and what was written before must read back.
 */
static void test_tmpfs_mapping_enospc(void **state)
{
	struct scratch *t = *state;
	const struct backend *be = t->be;
	uint8_t *w = t->w = aligned_buf(64 * 1024, 0), *r = t->r = aligned_buf(64 * 1024, 0);
	char *mnt = t->mnt, *path = t->path;
	struct fixture *f = &t->f;
	uint64_t i, written = 0;
	int rc = 0;

	snprintf(mnt, sizeof(t->mnt), "/tmp/ustor_file_ut_small_%d", getpid());
	assert_int_equal(mkdir(mnt, 0700), 0);
	if (mount("none", mnt, "tmpfs", 0, "size=1m") != 0)
		skip(); /* needs root (CI runs as root) */
	snprintf(path, sizeof(t->path), "%s/img", mnt);
	make_file(path, 8 * MiB);
	fixture_open(be, path, 0, f);
	for (i = 0; i < 8 * MiB / (64 * 1024); i++) {
		fill_pattern(w, 64 * 1024, (uint32_t)i);
		rc = do_write(f, w, i * 128, 128);
		if (rc != 0)
			break;
		written++;
	}
	assert_int_equal(rc, -ENOSPC);
	assert_true(written > 0 && written <= 16); /* 1 MiB of tmpfs: 16 chunks at most */
	/* a write lend of space tmpfs cannot give is -EAGAIN (the write then says ENOSPC) */
	{
		void *p;

		assert_int_equal(ust_bdev_write_lend(f->desc, f->ch, 7 * MiB / 512, 128, &p), -EAGAIN);
		assert_int_equal(ust_bdev_write_lend(f->desc, f->ch, 0, 128, &p), 0);
	}
	for (i = 0; i < written; i++) {
		fill_pattern(w, 64 * 1024, (uint32_t)i);
		assert_int_equal(do_read(f, r, i * 128, 128), 0);
		assert_memory_equal(r, w, 64 * 1024);
	}
	fixture_close(be, f);
	unlink(path);
	assert_int_equal(umount(mnt), 0);
}

/* ---- zero-copy reads (ust_bdev_read_lend) ------------------------------- */

/* Lend the bytes [off, off + len) of F0 (512-byte blocks). */
static int lend(struct fixture *f, uint64_t off, uint64_t len, const void **p)
{
	return ust_bdev_read_lend(f->desc, f->ch, off / 512, len / 512, p);
}

/* Lend [off, off + len) and check it holds want. */
static const uint8_t *lend_check(struct fixture *f, const uint8_t *want, uint64_t off, uint64_t len)
{
	const void *p = NULL;

	assert_int_equal(lend(f, off, len, &p), 0);
	assert_non_null(p);
	assert_memory_equal(p, want, len);
	return p;
}

static void read_stats(struct fixture *f, uint64_t *ops, uint64_t *bytes)
{
	struct ust_bdev_io_stat st;

	ust_bdev_get_channel_iostat(f->ch, &st);
	*ops = st.num_read_ops;
	*bytes = st.bytes_read;
}

/*
 * A tmpfs file lends its mapping where every chunk (64 KiB) of the range is
 * in the file: what the bdev or another writer put there, the file's own
 * pages (a later store shows through). A range touching a hole is -EAGAIN,
 * counted nowhere, and stays a hole; so is a range a rescan added beyond
 * the mapping, written or not.
 */
static void test_tmpfs_lend(void **state)
{
	struct scratch *t = *state;
	const struct backend *be = t->be;
	uint8_t *w = t->w = aligned_buf(MiB, 0), *r = t->r = aligned_buf(MiB, 0),
		*z = t->z = aligned_buf(MiB, 0);
	char *path = t->path;
	struct fixture *f = &t->f;
	struct io_result res = {0};
	const uint8_t *lent;
	const void *p;
	uint64_t ops0, bytes0, ops1, bytes1, blocks;
	int fd;

	snprintf(path, sizeof(t->path), "/dev/shm/ustor_file_ut_lend_%d", getpid());
	make_file(path, 4 * MiB);
	assert_int_equal(open_counting_log(be, path, UST_LOG_NOTICE, "through a mapping", f), 1);
	assert_int_equal(ust_bdev_get_block_size(f->bdev), 512);

	/* Never written: a hole, not lent, not counted, and not allocated by asking. */
	read_stats(f, &ops0, &bytes0);
	assert_int_equal(lend(f, MiB, 64 * 1024, &p), -EAGAIN);
	assert_int_equal(lend(f, 0, 512, &p), -EAGAIN);
	assert_int_equal(lend(f, 0, 4 * MiB, &p), -EAGAIN);
	read_stats(f, &ops1, &bytes1);
	assert_int_equal(ops1, ops0);
	assert_int_equal(bytes1, bytes0);
	assert_int_equal(file_blocks(path), 0);
	/* a read of it neither allocates it nor makes it lendable */
	assert_int_equal(do_read(f, r, MiB / 512, 128), 0);
	assert_memory_equal(r, z, 64 * 1024);
	assert_int_equal(lend(f, MiB, 64 * 1024, &p), -EAGAIN);
	assert_int_equal(file_blocks(path), 0);

	/* Written across a chunk boundary: lent back, one read op of its bytes. */
	fill_pattern(w, 8192, 1);
	assert_int_equal(do_write(f, w, (60 * 1024) / 512, 16), 0);
	blocks = file_blocks(path);
	read_stats(f, &ops0, &bytes0);
	lent = lend_check(f, w, 60 * 1024, 8192);
	read_stats(f, &ops1, &bytes1);
	assert_int_equal(ops1 - ops0, 1);
	assert_int_equal(bytes1 - bytes0, 8192);
	lend_check(f, w + 4096, 64 * 1024, 512);
	/* the file's own pages: another writer's store shows through */
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	fill_pattern(w, 8192, 2);
	assert_int_equal(pwrite(fd, w, 8192, 60 * 1024), 8192);
	close(fd);
	assert_memory_equal(lent, w, 8192);

	/* From a backed chunk into a hole: not lent, and the hole stays. */
	assert_int_equal(lend(f, 120 * 1024, 16 * 1024, &p), -EAGAIN);
	assert_int_equal(file_blocks(path), blocks);
	fill_pattern(w, 16 * 1024, 3);
	assert_int_equal(do_write(f, w, (120 * 1024) / 512, 32), 0);
	lend_check(f, w, 120 * 1024, 16 * 1024);

	/* Another writer fills a hole chunk: lent once all of it is there. */
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	fill_pattern(w, 64 * 1024, 4);
	assert_int_equal(pwrite(fd, w, 4096, 2 * MiB), 4096);
	assert_int_equal(lend(f, 2 * MiB, 4096, &p), -EAGAIN); /* the rest of its chunk is a hole */
	assert_int_equal(pwrite(fd, w + 4096, 60 * 1024, 2 * MiB + 4096), 60 * 1024);
	close(fd);
	lend_check(f, w, 2 * MiB, 64 * 1024);

	/* Unmapped: a hole again. */
	assert_int_equal(ust_bdev_unmap_blocks(f->desc, f->ch, 0, 4 * MiB / 512, io_cb, &res), 0);
	poll_until(&res.done);
	assert_int_equal(res.status, 0);
	assert_int_equal(file_blocks(path), 0);
	assert_int_equal(lend(f, 60 * 1024, 8192, &p), -EAGAIN);
	assert_int_equal(lend(f, 2 * MiB, 64 * 1024, &p), -EAGAIN);
	assert_int_equal(file_blocks(path), 0);

	/* Grown by a rescan: the new space is not mapped, so never lent. */
	assert_int_equal(truncate(path, 6 * MiB), 0);
	assert_int_equal(be->rescan("F0"), 0);
	ut_threads_poll();
	assert_int_equal(ust_bdev_get_num_blocks(f->bdev), 6 * MiB / 512);
	fill_pattern(w, 128 * 1024, 5);
	assert_int_equal(do_write(f, w, (4 * MiB - 64 * 1024) / 512, 256), 0);
	lend_check(f, w, 4 * MiB - 64 * 1024, 64 * 1024);
	assert_int_equal(lend(f, 4 * MiB, 64 * 1024, &p), -EAGAIN);
	assert_int_equal(lend(f, 4 * MiB - 4096, 8192, &p), -EAGAIN);
	assert_int_equal(do_read(f, r, 4 * MiB / 512, 128), 0);
	assert_memory_equal(r, w + 64 * 1024, 64 * 1024);
	fixture_close(be, f);
}

/*
 * A file whose size is not a whole number of pages: its last, partial page
 * is a hole like any other until written. Neither a lend nor a read of the
 * last block may allocate it, and a lend of it is -EAGAIN.
 */
static void test_tmpfs_lend_partial_page(void **state)
{
	struct scratch *t = *state;
	const struct backend *be = t->be;
	uint8_t *w = t->w = aligned_buf(4096, 0), *r = t->r = aligned_buf(4096, 0xee),
		*z = t->z = aligned_buf(4096, 0);
	char *path = t->path;
	struct fixture *f = &t->f;
	uint64_t last = 64 * 1024 / 512; /* the only block of the second, one-sector chunk */
	const void *p;

	snprintf(path, sizeof(t->path), "/dev/shm/ustor_file_ut_tail_%d", getpid());
	make_file(path, 64 * 1024 + 512);
	assert_int_equal(open_counting_log(be, path, UST_LOG_NOTICE, "through a mapping", f), 1);
	assert_int_equal(ust_bdev_get_num_blocks(f->bdev), last + 1);

	assert_int_equal(lend(f, last * 512, 512, &p), -EAGAIN);
	assert_int_equal(file_blocks(path), 0);
	assert_int_equal(do_read(f, r, last, 1), 0);
	assert_memory_equal(r, z, 512);
	assert_int_equal(file_blocks(path), 0);

	fill_pattern(w, 512, 7);
	assert_int_equal(do_write(f, w, last, 1), 0);
	lend_check(f, w, last * 512, 512);
	fixture_close(be, f);
}

/*
 * A write lend of a tmpfs file backs its chunks, as a write does, and what
 * is stored there is the file's content: a read of the bdev and a pread of
 * the file both see it, and a read lend of the range is the same memory.
 * Beyond the mapping (grown by a rescan) it is -EAGAIN.
 */
static void test_tmpfs_write_lend(void **state)
{
	struct scratch *t = *state;
	const struct backend *be = t->be;
	uint8_t *w = t->w = aligned_buf(MiB, 0), *r = t->r = aligned_buf(MiB, 0);
	char *path = t->path;
	struct fixture *f = &t->f;
	struct ust_bdev_io_stat st0, st1;
	const void *rp;
	void *p = NULL;
	int fd;

	snprintf(path, sizeof(t->path), "/dev/shm/ustor_file_ut_wlend_%d", getpid());
	make_file(path, 4 * MiB);
	assert_int_equal(open_counting_log(be, path, UST_LOG_NOTICE, "through a mapping", f), 1);
	/* memory is the medium: no volatile cache to flush */
	assert_false(ust_bdev_has_write_cache(f->bdev));
	assert_int_equal(file_blocks(path), 0);
	ust_bdev_get_channel_iostat(f->ch, &st0);
	/* a hole across a chunk boundary: backed by the lend */
	assert_int_equal(ust_bdev_write_lend(f->desc, f->ch, (60 * 1024) / 512, 16, &p), 0);
	assert_true(file_blocks(path) > 0);
	fill_pattern(w, 8192, 9);
	memcpy(p, w, 8192);
	ust_bdev_get_channel_iostat(f->ch, &st1);
	assert_int_equal(st1.num_write_ops - st0.num_write_ops, 1);
	assert_int_equal(st1.bytes_written - st0.bytes_written, 8192);
	assert_int_equal(do_read(f, r, (60 * 1024) / 512, 16), 0);
	assert_memory_equal(r, w, 8192);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, r, 8192, 60 * 1024), 8192);
	close(fd);
	assert_memory_equal(r, w, 8192);
	assert_int_equal(lend(f, 60 * 1024, 8192, &rp), 0);
	assert_ptr_equal(rp, p);

	/* grown by a rescan: the new space is not mapped */
	assert_int_equal(truncate(path, 6 * MiB), 0);
	assert_int_equal(be->rescan("F0"), 0);
	ut_threads_poll();
	assert_int_equal(ust_bdev_write_lend(f->desc, f->ch, 4 * MiB / 512, 8, &p), -EAGAIN);
	assert_int_equal(ust_bdev_write_lend(f->desc, f->ch, (4 * MiB - 4096) / 512, 16, &p), -EAGAIN);
	fixture_close(be, f);
}

/* A file bdev on path (written first, so nothing is a hole) lends nothing, counted nowhere. */
static void check_no_lend(const struct backend *be, const char *path, struct fixture *f,
			  uint8_t *w, uint8_t *r)
{
	uint64_t ops0, bytes0, ops1, bytes1;
	const void *p;
	void *wp;

	make_file(path, MiB);
	fixture_open(be, path, 0, f);
	fill_pattern(w, 64 * 1024, 6);
	assert_int_equal(do_write(f, w, 0, 64 * 1024 / ust_bdev_get_block_size(f->bdev)), 0);
	read_stats(f, &ops0, &bytes0);
	assert_int_equal(ust_bdev_read_lend(f->desc, f->ch, 0, 1, &p), -ENOTSUP);
	assert_int_equal(ust_bdev_write_lend(f->desc, f->ch, 0, 1, &wp), -ENOTSUP);
	read_stats(f, &ops1, &bytes1);
	assert_int_equal(ops1, ops0);
	assert_int_equal(bytes1, bytes0);
	assert_int_equal(do_read(f, r, 0, 1), 0);
	assert_memory_equal(r, w, ust_bdev_get_block_size(f->bdev));
	fixture_close(be, f);
	unlink(path);
}

/* Only a mapped tmpfs file lends: not a file on a disk, nor one on ramfs (in memory, unmapped). */
static void test_unmapped_file_no_lend(void **state)
{
	struct scratch *t = *state;
	const struct backend *be = t->be;
	uint8_t *w = t->w = aligned_buf(64 * 1024, 0), *r = t->r = aligned_buf(64 * 1024, 0);
	struct statfs sfs;

	assert_int_equal(statfs("/var/tmp", &sfs), 0);
	if (sfs.f_type != TMPFS_MAGIC && sfs.f_type != RAMFS_MAGIC) {
		snprintf(t->path, sizeof(t->path), "/var/tmp/ustor_file_ut_disk_%d", getpid());
		check_no_lend(be, t->path, &t->f, w, r);
	} else {
		fprintf(stderr, "/var/tmp is in memory: the disk file case is not tested here\n");
	}
	snprintf(t->mnt, sizeof(t->mnt), "/tmp/ustor_file_ut_ramfs_lend_%d", getpid());
	assert_int_equal(mkdir(t->mnt, 0700), 0);
	if (mount("none", t->mnt, "ramfs", 0, NULL) != 0) {
		fprintf(stderr, "ramfs cannot be mounted (not root?): its case is not tested\n");
		return;
	}
	snprintf(t->path, sizeof(t->path), "%s/img", t->mnt);
	check_no_lend(be, t->path, &t->f, w, r);
}

static void test_rescan_resize(void **state)
{
	const struct backend *be = *state;
	struct fixture f;
	uint8_t *w = aligned_buf(4096, 0x5a), *r = aligned_buf(4096, 0);

	make_file(g_path, MiB);
	fixture_open(be, g_path, 0, &f);
	g_events_resize = 0;
	assert_int_equal(be->rescan("F0"), 0); /* unchanged: no event */
	ut_threads_poll();
	assert_int_equal(g_events_resize, 0);
	assert_int_equal(truncate(g_path, 2 * MiB), 0);
	assert_int_equal(be->rescan("F0"), 0);
	ut_threads_poll();
	assert_int_equal(g_events_resize, 1);
	assert_int_equal(ust_bdev_get_num_blocks(f.bdev), 2 * MiB / 512);
	/* The new space is usable. */
	assert_int_equal(do_write(&f, w, 2 * MiB / 512 - 8, 8), 0);
	assert_int_equal(do_read(&f, r, 2 * MiB / 512 - 8, 8), 0);
	assert_memory_equal(w, r, 4096);
	/* Shrinking while open is refused. */
	assert_int_equal(truncate(g_path, MiB), 0);
	assert_int_equal(be->rescan("F0"), -EBUSY);
	assert_int_equal(ust_bdev_get_num_blocks(f.bdev), 2 * MiB / 512);
	fixture_close(be, &f);
	free(w);
	free(r);
	unlink(g_path);
}

/* ---- RPCs --------------------------------------------------------------- */

static void test_rpcs_and_config(void **state)
{
	const struct backend *be = *state;
	char method[64];
	json_t *r, *calls, *params;
	struct ust_bdev *bdev;
	const char *uuid = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3";
	char uuid_out[UST_UUID_STRING_LEN];

	make_file(g_path, MiB);
	snprintf(method, sizeof(method), "bdev_%s_create", be->name);
	r = ut_rpc(method, json_pack("{s:s, s:s, s:i, s:s}", "name", "R0", "filename", g_path,
				  "block_size", 4096, "uuid", uuid));
	assert_string_equal(json_string_value(json_object_get(r, "result")), "R0");
	json_decref(r);
	bdev = ust_bdev_get_by_name("R0");
	assert_non_null(bdev);
	assert_int_equal(ust_bdev_get_block_size(bdev), 4096);
	ust_uuid_fmt(uuid_out, sizeof(uuid_out), ust_bdev_get_uuid(bdev));
	assert_string_equal(uuid_out, uuid);

	/* save_config gives back the call that made it. */
	calls = json_array();
	bdev->fn_table->write_config_json(bdev, calls);
	assert_int_equal(json_array_size(calls), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(calls, 0), "method")),
			    method);
	params = json_object_get(json_array_get(calls, 0), "params");
	assert_string_equal(json_string_value(json_object_get(params, "name")), "R0");
	assert_string_equal(json_string_value(json_object_get(params, "filename")), g_path);
	assert_int_equal(json_integer_value(json_object_get(params, "block_size")), 4096);
	assert_string_equal(json_string_value(json_object_get(params, "uuid")), uuid);
	json_decref(calls);

	/* Errors: duplicate name, bad size, missing and unknown keys. */
	r = ut_rpc(method, json_pack("{s:s, s:s}", "name", "R0", "filename", g_path));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INTERNAL_ERROR);
	json_decref(r);
	r = ut_rpc(method, json_pack("{s:s, s:s, s:i}", "name", "R1", "filename", g_path,
				  "block_size", 3000));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INVALID_PARAMS);
	json_decref(r);
	r = ut_rpc(method, json_pack("{s:s}", "name", "R1"));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INVALID_PARAMS);
	json_decref(r);
	r = ut_rpc(method, json_pack("{s:s, s:s, s:i}", "name", "R1", "filename", g_path, "bogus", 1));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INVALID_PARAMS);
	json_decref(r);

	/* Rescan after growth. */
	assert_int_equal(truncate(g_path, 2 * MiB), 0);
	snprintf(method, sizeof(method), "bdev_%s_rescan", be->name);
	r = ut_rpc(method, json_pack("{s:s}", "name", "R0"));
	assert_true(json_is_true(json_object_get(r, "result")));
	json_decref(r);
	assert_int_equal(ust_bdev_get_num_blocks(bdev), 2 * MiB / 4096);
	r = ut_rpc(method, json_pack("{s:s}", "name", "nope"));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INVALID_PARAMS);
	json_decref(r);

	/* Delete: only this module's bdevs. */
	snprintf(method, sizeof(method), "bdev_%s_delete", be->name);
	r = ut_rpc(method, json_pack("{s:s}", "name", "R0"));
	assert_true(json_is_true(json_object_get(r, "result")));
	json_decref(r);
	assert_null(ust_bdev_get_by_name("R0"));
	r = ut_rpc(method, json_pack("{s:s}", "name", "R0"));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INVALID_PARAMS);
	json_decref(r);
	unlink(g_path);
}

static void test_aio_readonly_and_aliases(void **state)
{
	json_t *r;
	struct ust_bdev *bdev;
	json_t *calls;

	make_file(g_path, MiB);
	r = ut_rpc("construct_aio_bdev", json_pack("{s:s, s:s, s:b}", "name", "RO", "filename",
						g_path, "readonly", 1));
	assert_string_equal(json_string_value(json_object_get(r, "result")), "RO");
	json_decref(r);
	bdev = ust_bdev_get_by_name("RO");
	assert_non_null(bdev);
	assert_true(ust_bdev_io_type_supported(bdev, UST_BDEV_IO_TYPE_READ));
	assert_false(ust_bdev_io_type_supported(bdev, UST_BDEV_IO_TYPE_WRITE));
	assert_false(ust_bdev_io_type_supported(bdev, UST_BDEV_IO_TYPE_UNMAP));
	calls = json_array();
	bdev->fn_table->write_config_json(bdev, calls);
	assert_true(json_is_true(json_object_get(
		json_object_get(json_array_get(calls, 0), "params"), "readonly")));
	json_decref(calls);
	/* A uring delete does not remove an aio bdev. */
	r = ut_rpc("bdev_uring_delete", json_pack("{s:s}", "name", "RO"));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INVALID_PARAMS);
	json_decref(r);
	r = ut_rpc("delete_aio_bdev", json_pack("{s:s}", "name", "RO"));
	assert_true(json_is_true(json_object_get(r, "result")));
	json_decref(r);
	assert_null(ust_bdev_get_by_name("RO"));
	unlink(g_path);
}

/* ---- setup -------------------------------------------------------------- */

static int setup(void **state)
{
	snprintf(g_path, sizeof(g_path), "/tmp/ustor_file_ut_%d", getpid());
	return ut_threads_setup(1) == 0 ? ut_bdev_start() : -1;
}

static int teardown(void **state)
{
	int rc = ut_bdev_stop();

	unlink(g_path);
	return ut_threads_teardown() == 0 ? rc : -1;
}

#define BOTH(fn)                                                                        \
	cmocka_unit_test_prestate(fn, &g_aio), cmocka_unit_test_prestate(fn, &g_uring)
/* BOTH for a test with a struct scratch as its state. */
#define SCRATCH(fn)                                                                     \
	cmocka_unit_test_prestate_setup_teardown(fn, scratch_setup, scratch_teardown,   \
						 &g_scratch_aio),                         \
	cmocka_unit_test_prestate_setup_teardown(fn, scratch_setup, scratch_teardown,   \
						 &g_scratch_uring)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_roundtrip_and_flush),
		BOTH(test_unmap_and_write_zeroes),
		BOTH(test_misaligned_buffer),
		SCRATCH(test_odirect_fallback),
		BOTH(test_bad_geometry),
		BOTH(test_short_read_fails),
		BOTH(test_memory_fs_inline),
		SCRATCH(test_tmpfs_mapping),
		SCRATCH(test_tmpfs_streaming_stores),
		SCRATCH(test_tmpfs_copy_engine),
		SCRATCH(test_tmpfs_mapping_enospc),
		SCRATCH(test_tmpfs_lend),
		SCRATCH(test_tmpfs_lend_partial_page),
		SCRATCH(test_tmpfs_write_lend),
		SCRATCH(test_unmapped_file_no_lend),
		BOTH(test_idle_interrupt_fds_quiet),
		BOTH(test_rescan_resize),
		BOTH(test_rpcs_and_config),
		cmocka_unit_test(test_aio_readonly_and_aliases),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
