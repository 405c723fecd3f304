/*
 * bfs_meta: blobfs's own cost per namespace change, without FUSE.
 *
 *   build/bench/bfs_meta [-n FILES] [-q INFLIGHT] [--mib MIB] [--dir DIR]
 *
 * Drives the blobfs API (include/ustor/blobfs.h) directly on one reactor:
 * create (+ release), stat (lookup) and unlink of N empty files in one
 * fresh directory, first with one call in flight (the FUSE benchmark's
 * single-threaded loop, bench/fs/fs_meta.c), then with K in flight (what
 * parallel creators, or FUSE's parallel requests, can offer). Each run
 * happens on two bdevs of the same size: a malloc bdev (Malloc0, no I/O
 * cost at all: blobfs's and the blobstore's CPU and round trips) and a
 * file bdev on DIR (default /dev/shm; io_uring on tmpfs, the image of
 * bench/fs/run.sh). Each bdev gets a fresh file system (ust_blobfs_format).
 *
 * Per phase it prints ops/s, the process's CPU microseconds per operation
 * (what compares across runs on a loaded machine) and the bdev I/O the
 * phase caused, per operation: writes, write-zeroes, flushes, KiB written
 * and reads (the bdev's own counters, ust_bdev_get_iostat()).
 *
 * A benchmark, not a test: prints its table and exits 0 (1 when an
 * operation fails).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../bench_util.h"
#include "ustor/app.h"
#include "ustor/bdev.h"
#include "ustor/blobfs.h"
#include "ustor/env.h"
#include "ustor/thread.h"

#define MIB ((uint64_t)1024 * 1024)
#define MAX_INFLIGHT 256
#define NAME_LEN 32

enum phase { PH_CREATE, PH_STAT, PH_UNLINK, PH_COUNT };

static const char *const g_phase_name[PH_COUNT] = {"create", "stat", "unlink"};

enum bench_state {
	ST_NEXT_BDEV,
	ST_FORMATTED,
	ST_NEXT_RUN,
	ST_MKDIR_DONE,
	ST_PHASE_BEGIN,
	ST_PHASE_STATS0,
	ST_PHASE_RUNNING,
	ST_PHASE_STATS1,
	ST_RMDIR_DONE,
	ST_UNMOUNTED,
	ST_END,
};

struct slot {
	struct bench *b;
	uint64_t idx;
	char name[NAME_LEN];
	struct ust_blobfs_file *fh;
};

struct bench {
	enum bench_state state;
	int rc;
	/* options */
	uint64_t nfiles;
	uint32_t inflight;
	uint64_t mib;
	const char *dir;
	/* state */
	const char *bdev_names[2];
	int bdev_cur;
	struct ust_blobfs *fs;
	struct ust_blobfs_ctx ctx;
	int run;           /* 0: one in flight, 1: b->inflight */
	uint32_t qd;
	char dirname[NAME_LEN];
	ust_blobfs_ino dir_ino;
	enum phase ph;
	uint64_t next, done;
	uint32_t active;
	struct slot slots[MAX_INFLIGHT];
	struct ust_bdev_io_stat st0, st1;
	uint64_t t0;
	double c0; /* process CPU seconds at t0 */
};

static struct bench g_bench = {
	.nfiles = 10000,
	.inflight = 16,
	.mib = 1024,
	.dir = "/dev/shm",
	.bdev_names = {"Malloc0", "File0"},
};

static char g_image[4096];

static void bench_step(struct bench *b);

static void fail(struct bench *b, const char *what, int rc)
{
	fprintf(stderr, "bfs_meta: %s: %s\n", what, strerror(-rc));
	if (b->rc == 0) {
		b->rc = rc;
	}
}

/* ---- one operation of the running phase, per slot ------------------------------------------ */

static void slot_issue(struct slot *s);

static void slot_done(struct slot *s, int rc)
{
	struct bench *b = s->b;

	if (rc != 0) {
		fail(b, g_phase_name[b->ph], rc);
	}
	b->done++;
	if (b->rc == 0 && b->next < b->nfiles) {
		slot_issue(s);
		return;
	}
	if (--b->active == 0) {
		bench_step(b);
	}
}

static void released(void *arg, int rc)
{
	slot_done(arg, rc);
}

static void created(void *arg, const struct ust_blobfs_entry *e, struct ust_blobfs_file *fh, int rc)
{
	struct slot *s = arg;

	if (rc != 0) {
		slot_done(s, rc);
		return;
	}
	/* as the kernel would, eventually: the entry's lookup is not kept */
	ust_blobfs_forget(s->b->fs, e->ino, 1);
	ust_blobfs_release(s->b->fs, fh, released, s);
}

static void looked_up(void *arg, const struct ust_blobfs_entry *e, int rc)
{
	struct slot *s = arg;

	if (rc == 0) {
		ust_blobfs_forget(s->b->fs, e->ino, 1);
	}
	slot_done(s, rc);
}

static void unlinked(void *arg, int rc)
{
	slot_done(arg, rc);
}

static void slot_issue(struct slot *s)
{
	struct bench *b = s->b;

	s->idx = b->next++;
	snprintf(s->name, sizeof(s->name), "f%08" PRIu64, s->idx);
	switch (b->ph) {
	case PH_CREATE:
		ust_blobfs_create(b->fs, &b->ctx, b->dir_ino, s->name, 0644,
				  O_CREAT | O_EXCL | O_WRONLY, created, s);
		break;
	case PH_STAT:
		ust_blobfs_lookup(b->fs, &b->ctx, b->dir_ino, s->name, looked_up, s);
		break;
	default:
		ust_blobfs_unlink(b->fs, &b->ctx, b->dir_ino, s->name, unlinked, s);
		break;
	}
}

/* ---- the sequence ------------------------------------------------------------------------- */

static void fs_cb(void *arg, struct ust_blobfs *fs, int rc)
{
	struct bench *b = arg;

	b->fs = fs;
	if (rc != 0) {
		fail(b, "format", rc);
	}
	bench_step(b);
}

static void op_cb(void *arg, int rc)
{
	struct bench *b = arg;

	if (rc != 0) {
		fail(b, "mkdir/rmdir/unmount", rc);
	}
	bench_step(b);
}

static void entry_cb(void *arg, const struct ust_blobfs_entry *e, int rc)
{
	struct bench *b = arg;

	if (rc != 0) {
		fail(b, "mkdir", rc);
	} else {
		b->dir_ino = e->ino;
	}
	bench_step(b);
}

static void iostat_cb(struct ust_bdev *bdev, struct ust_bdev_io_stat *stat, void *ctx, int rc)
{
	struct bench *b = ctx;

	(void)bdev;
	(void)stat;
	if (rc != 0) {
		fail(b, "bdev iostat", rc);
	}
	bench_step(b);
}

static int get_iostat(struct bench *b, struct ust_bdev_io_stat *st)
{
	struct ust_bdev *bdev = ust_bdev_get_by_name(b->bdev_names[b->bdev_cur]);

	if (bdev == NULL) {
		return -ENODEV;
	}
	ust_bdev_io_stat_init(st);
	ust_bdev_get_iostat(bdev, st, iostat_cb, b);
	return 0;
}

static double per_op(uint64_t a, uint64_t b0, uint64_t n)
{
	return n == 0 ? 0.0 : (double)(a - b0) / (double)n;
}

/*
 * CPU seconds of the process. The reactor polls, so on an idle machine this
 * is the wall time; on a loaded one it is the time the phase really ran,
 * which compares across runs better than ops/s (for Malloc0, where no
 * device latency is waited for, it is the whole cost).
 */
static double cpu_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_phase(struct bench *b, double sec, double cpu)
{
	const struct ust_bdev_io_stat *s0 = &b->st0, *s1 = &b->st1;
	uint64_t n = b->done;

	printf("%-8s %-7s %4u %8" PRIu64 " %9.0f %8.1f %7.2f %7.2f %7.2f %8.1f %6.2f\n",
	       b->bdev_names[b->bdev_cur], g_phase_name[b->ph], b->qd, n,
	       sec > 0 ? (double)n / sec : 0.0, n > 0 ? cpu * 1e6 / (double)n : 0.0,
	       per_op(s1->num_write_ops, s0->num_write_ops, n),
	       per_op(s1->num_write_zeroes_ops, s0->num_write_zeroes_ops, n),
	       per_op(s1->num_flush_ops, s0->num_flush_ops, n),
	       per_op(s1->bytes_written, s0->bytes_written, n) / 1024.0,
	       per_op(s1->num_read_ops, s0->num_read_ops, n));
	fflush(stdout);
}

static void bench_step(struct bench *b)
{
	struct ust_blobfs_opts opts;
	uint32_t i;
	int rc;

	for (;;) {
		switch (b->state) {
		case ST_NEXT_BDEV:
			if (b->rc != 0 || b->bdev_cur >= 2) {
				b->state = ST_END;
				continue;
			}
			ust_blobfs_opts_init(&opts);
			/* room for both runs' files and their directories */
			opts.max_inodes = (uint32_t)(2 * b->nfiles + 64);
			b->state = ST_FORMATTED;
			ust_blobfs_format(b->bdev_names[b->bdev_cur], &opts, NULL, fs_cb, b);
			return;
		case ST_FORMATTED:
			if (b->rc != 0) {
				b->state = ST_END;
				continue;
			}
			b->run = 0;
			b->state = ST_NEXT_RUN;
			continue;
		case ST_NEXT_RUN:
			if (b->rc != 0 || b->run >= 2) {
				b->state = ST_UNMOUNTED;
				ust_blobfs_unmount(b->fs, op_cb, b);
				return;
			}
			b->qd = b->run == 0 ? 1 : b->inflight;
			snprintf(b->dirname, sizeof(b->dirname), "d%d", b->run);
			b->state = ST_MKDIR_DONE;
			ust_blobfs_mkdir(b->fs, &b->ctx, UST_BLOBFS_ROOT_INO, b->dirname, 0755,
					 entry_cb, b);
			return;
		case ST_MKDIR_DONE:
			if (b->rc != 0) {
				b->state = ST_NEXT_RUN;
				b->run = 2;
				continue;
			}
			b->ph = PH_CREATE;
			b->state = ST_PHASE_BEGIN;
			continue;
		case ST_PHASE_BEGIN:
			if (b->rc != 0 || b->ph >= PH_COUNT) {
				b->state = ST_RMDIR_DONE;
				ust_blobfs_forget(b->fs, b->dir_ino, 1);
				ust_blobfs_rmdir(b->fs, &b->ctx, UST_BLOBFS_ROOT_INO, b->dirname, op_cb, b);
				return;
			}
			b->state = ST_PHASE_STATS0;
			rc = get_iostat(b, &b->st0);
			if (rc != 0) {
				fail(b, "bdev iostat", rc);
				b->state = ST_END;
				continue;
			}
			return;
		case ST_PHASE_STATS0:
			b->state = ST_PHASE_RUNNING;
			b->next = b->done = 0;
			b->active = b->qd;
			b->t0 = ust_get_ticks();
			b->c0 = cpu_sec();
			for (i = 0; i < b->qd; i++) {
				b->slots[i].b = b;
				slot_issue(&b->slots[i]);
			}
			return;
		case ST_PHASE_RUNNING:
			b->state = ST_PHASE_STATS1;
			b->t0 = ust_get_ticks() - b->t0;
			b->c0 = cpu_sec() - b->c0;
			rc = get_iostat(b, &b->st1);
			if (rc != 0) {
				fail(b, "bdev iostat", rc);
				b->state = ST_END;
				continue;
			}
			return;
		case ST_PHASE_STATS1:
			print_phase(b, (double)b->t0 / (double)ust_get_ticks_hz(), b->c0);
			b->ph++;
			b->state = ST_PHASE_BEGIN;
			continue;
		case ST_RMDIR_DONE:
			b->run++;
			b->state = ST_NEXT_RUN;
			continue;
		case ST_UNMOUNTED:
			b->fs = NULL;
			b->bdev_cur++;
			b->state = ST_NEXT_BDEV;
			continue;
		case ST_END:
			ust_app_stop(b->rc == 0 ? 0 : 1);
			return;
		}
	}
}

static void bench_start(void *ctx)
{
	struct bench *b = ctx;

	printf("bdev     phase     qd    files     ops/s   cpu-us  writes wzeroes flushes   KiB-wr  reads  (per op)\n");
	fflush(stdout);
	bench_step(b);
}

/* ---- options and set-up ------------------------------------------------------------------- */

enum { OPT_MIB = 256, OPT_DIR };

static const struct option g_long[] = {
	{"files", required_argument, NULL, 'n'},
	{"inflight", required_argument, NULL, 'q'},
	{"mib", required_argument, NULL, OPT_MIB},
	{"dir", required_argument, NULL, OPT_DIR},
	{NULL, 0, NULL, 0},
};

static int parse_opt(int ch, char *arg, void *ctx)
{
	struct bench *b = ctx;
	uint64_t v = 0;
	int rc;

	switch (ch) {
	case 'n':
		return bench_parse_u64("bfs_meta", arg, 1, 1u << 20, &b->nfiles);
	case 'q':
		rc = bench_parse_u64("bfs_meta", arg, 1, MAX_INFLIGHT, &v);
		b->inflight = (uint32_t)v;
		return rc;
	case OPT_MIB:
		return bench_parse_u64("bfs_meta", arg, 64, 1u << 20, &b->mib);
	case OPT_DIR:
		b->dir = arg;
		return 0;
	default:
		return -EINVAL;
	}
}

static void usage(void)
{
	printf("Usage: bfs_meta [OPTION]...\n"
	       "blobfs create/stat/unlink of N empty files in one directory, through the API.\n"
	       " -n, --files N      files per run (default 10000)\n"
	       " -q, --inflight K   calls in flight in the second run (default 16)\n"
	       "     --mib MIB      size of each bdev (default 1024)\n"
	       "     --dir DIR      where the file bdev's image lives (default /dev/shm)\n\n");
}

static int write_config(struct bench *b, char *path)
{
	char cfg[8192];
	int len;

	len = snprintf(cfg, sizeof(cfg),
		       "{\"subsystems\":[{\"subsystem\":\"bdev\",\"config\":["
		       "{\"method\":\"bdev_malloc_create\",\"params\":{\"name\":\"Malloc0\","
		       "\"num_blocks\":%" PRIu64 ",\"block_size\":4096}},"
		       "{\"method\":\"bdev_uring_create\",\"params\":{\"name\":\"File0\","
		       "\"filename\":\"%s\",\"block_size\":4096}}]}]}\n",
		       b->mib * MIB / 4096, g_image);
	if (len < 0 || (size_t)len >= sizeof(cfg)) {
		return -ENAMETOOLONG;
	}
	return bench_write_config(path, cfg, len);
}

/* A sparse image of the bdev's size, removed when the benchmark ends. */
static int make_image(struct bench *b)
{
	int fd, n;

	n = snprintf(g_image, sizeof(g_image), "%s/bfs_meta.XXXXXX", b->dir);
	if (n < 0 || (size_t)n >= sizeof(g_image) || strchr(b->dir, '"') != NULL) {
		return -ENAMETOOLONG;
	}
	fd = mkstemp(g_image);
	if (fd < 0) {
		return -errno;
	}
	if (ftruncate(fd, (off_t)(b->mib * MIB)) != 0) {
		n = -errno;
		close(fd);
		unlink(g_image);
		return n;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct bench *b = &g_bench;
	struct ust_app_opts opts;
	char path[] = "/tmp/bench_bfs_meta_XXXXXX";
	int rc;

	bench_app_opts_init(&opts, "bfs_meta", "0x1");
	rc = ust_app_parse_args(argc, argv, &opts, "n:q:", g_long, parse_opt, usage, b);
	if (rc != 0) {
		return rc == 1 ? 0 : 2;
	}
	if (opts.mem_size_mb == 0) {
		opts.mem_size_mb = (int)(b->mib + 512);
	}
	rc = make_image(b);
	if (rc != 0) {
		fprintf(stderr, "bfs_meta: cannot create the image in %s: %s\n", b->dir, strerror(-rc));
		return 1;
	}
	rc = write_config(b, path);
	if (rc != 0) {
		fprintf(stderr, "bfs_meta: cannot write the config: %s\n", strerror(-rc));
		unlink(g_image);
		return 1;
	}
	printf("bfs_meta: %" PRIu64 " files, Malloc0 and File0 (%s) of %" PRIu64 " MiB, core mask %s\n",
	       b->nfiles, g_image, b->mib, opts.core_mask);
	fflush(stdout);
	opts.config_file = path;
	rc = ust_app_start(&opts, bench_start, b);
	unlink(path);
	unlink(g_image);
	return rc == 0 ? 0 : 1;
}
