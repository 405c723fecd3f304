/*
 * bfs_io: blobfs's own data-path cost, without FUSE.
 *
 * The fio jobs of bench/fs/run.sh driven through the blobfs file API
 * (include/ustor/blobfs.h) on one preallocated file, then the same jobs
 * straight on the bdev under it (after the unmount, at the same offsets):
 *
 *   seqwrite  1 MiB sequential writes, queue depth 4
 *   seqread   1 MiB sequential reads, queue depth 4
 *   randread  4 KiB random reads, queue depth 1 and 32
 *   randwrite 4 KiB random writes, queue depth 1 and 32
 *
 * each for a fixed time, on a malloc bdev and on a file bdev (bdev_uring_create)
 * whose image lives in /dev/shm, as bench/fs/run.sh's.
 * Like fio, the file is fallocated first, so no job allocates clusters.
 * For every job it prints MiB/s or IOPS and the bdev I/Os each operation
 * cost (the bdev's statistics before and after), so blobfs's overhead is
 * the difference between its line and the raw line below it.
 *
 * A benchmark, not a test: it prints figures and exits 0 (1 when an
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
#define BLOCK_SIZE 4096u
#define MAX_QD 64

struct job {
	const char *name;
	bool read;
	bool random;
	uint32_t bs;
	uint32_t qd;
};

static const struct job g_jobs[] = {
	{"seqwrite", false, false, 1024 * 1024, 4},
	{"seqread", true, false, 1024 * 1024, 4},
	{"randread-qd1", true, true, 4096, 1},
	{"randread-qd32", true, true, 4096, 32},
	{"randwrite-qd1", false, true, 4096, 1},
	{"randwrite-qd32", false, true, 4096, 32},
};
#define NJOBS (sizeof(g_jobs) / sizeof(g_jobs[0]))

enum step {
	S_FORMAT,
	S_CREATE,
	S_FALLOCATE,
	S_JOB_STAT0,
	S_JOB_RUN,
	S_JOB_STAT1,
	S_JOB_REPORT,
	S_RELEASE,
	S_UNMOUNT,
	S_RAW_OPEN,
	S_NEXT_TARGET,
	S_DONE,
};

struct bench;

struct slot {
	struct bench *b;
	void *buf;
	uint64_t off;
};

struct target {
	const char *bdev;  /* bdev name */
	const char *label; /* what the figures are printed under */
};

struct bench {
	/* options */
	uint64_t size_mib;
	double seconds;
	uint32_t cluster_kib;
	bool use_malloc, use_file;
	const char *image;
	const char *only; /* --jobs: comma-separated job names, NULL: all */

	struct target targets[2];
	int ntargets, cur_target;
	enum step step;
	int rc;
	bool raw; /* the jobs run on the bdev, not on blobfs */

	struct ust_blobfs *fs;
	struct ust_blobfs_file *fh;
	struct ust_blobfs_ctx ctx;
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;
	struct ust_bdev *bdev;

	/* the running job */
	size_t job;
	struct slot slots[MAX_QD];
	uint32_t inflight;
	uint64_t ops, seq_next, rng;
	struct timespec start, end;
	bool stopping;
	struct ust_bdev_io_stat st0, st1;
};

static struct bench g_bench = {
	.size_mib = 256,
	.seconds = 5,
	.use_malloc = true,
	.use_file = true,
	.image = "/dev/shm/ustor_bfs_io.img",
};

static void step(struct bench *b);

static double elapsed(const struct timespec *a, const struct timespec *z)
{
	return (double)(z->tv_sec - a->tv_sec) + (double)(z->tv_nsec - a->tv_nsec) / 1e9;
}

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: the offsets only need to be spread, not secret */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static void fail(struct bench *b, const char *what, int rc)
{
	fprintf(stderr, "bfs_io: %s on %s: %s\n", what, b->targets[b->cur_target].bdev,
		strerror(rc < 0 ? -rc : rc));
	if (b->rc == 0) {
		b->rc = rc;
	}
}

/* ---- one job: qd I/Os in flight until the time is up ----------------------------- */

static void job_issue(struct slot *s);

static void job_complete(struct slot *s, int rc)
{
	struct bench *b = s->b;
	struct timespec now;

	if (rc != 0 && b->rc == 0) {
		fail(b, g_jobs[b->job].name, rc);
	}
	b->ops++;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!b->stopping && (b->rc != 0 || elapsed(&b->start, &now) >= b->seconds)) {
		b->stopping = true;
	}
	if (!b->stopping) {
		job_issue(s);
		return;
	}
	if (--b->inflight == 0) {
		b->end = now;
		b->step = S_JOB_STAT1;
		step(b);
	}
}

static void fs_io_done(void *arg, int64_t result)
{
	struct slot *s = arg;
	const struct job *j = &g_jobs[s->b->job];

	job_complete(s, result < 0 ? (int)result : result != j->bs ? -EIO : 0);
}

static void raw_io_done(struct ust_bdev_io *io, int status, void *arg)
{
	(void)io;
	job_complete(arg, status);
}

static uint64_t job_offset(struct bench *b, const struct job *j)
{
	uint64_t n = b->size_mib * MIB / j->bs, off;

	if (j->random) {
		return rng_next(&b->rng) % n * j->bs;
	}
	off = b->seq_next % n * j->bs;
	b->seq_next++;
	return off;
}

static void job_issue(struct slot *s)
{
	struct bench *b = s->b;
	const struct job *j = &g_jobs[b->job];
	int rc = 0;

	s->off = job_offset(b, j);
	if (!b->raw && j->read) {
		ust_blobfs_read(b->fs, b->fh, s->buf, j->bs, s->off, fs_io_done, s);
	} else if (!b->raw) {
		ust_blobfs_write(b->fs, &b->ctx, b->fh, s->buf, j->bs, s->off, fs_io_done, s);
	} else if (j->read) {
		rc = ust_bdev_read_blocks(b->desc, b->ch, s->buf, s->off / BLOCK_SIZE, j->bs / BLOCK_SIZE,
					  raw_io_done, s);
	} else {
		rc = ust_bdev_write_blocks(b->desc, b->ch, s->buf, s->off / BLOCK_SIZE, j->bs / BLOCK_SIZE,
					   raw_io_done, s);
	}
	if (rc != 0) {
		/* completes the slot now: the job stops at its first submit error */
		job_complete(s, rc);
	}
}

static void job_start(struct bench *b)
{
	const struct job *j = &g_jobs[b->job];
	uint32_t i;

	b->ops = 0;
	b->seq_next = 0;
	b->rng = 0x9E3779B97F4A7C15ULL;
	b->stopping = false;
	b->inflight = j->qd;
	clock_gettime(CLOCK_MONOTONIC, &b->start);
	for (i = 0; i < j->qd; i++) {
		job_issue(&b->slots[i]);
	}
}

static void job_report(struct bench *b)
{
	const struct job *j = &g_jobs[b->job];
	const struct ust_bdev_io_stat *a = &b->st0, *z = &b->st1;
	double sec = elapsed(&b->start, &b->end), ops = (double)b->ops;
	char rate[32];

	if (j->bs >= MIB) {
		snprintf(rate, sizeof(rate), "%9.0f MiB/s", ops * j->bs / MIB / sec);
	} else {
		snprintf(rate, sizeof(rate), "%9.0f IOPS ", ops / sec);
	}
	printf("  %-6s %-15s %s  %7.2f us/op  bdev/op: rd %5.2f wr %5.2f other %5.2f  "
	       "KiB/op %7.1f\n",
	       b->raw ? "raw" : "blobfs", j->name, rate, sec * 1e6 / ops * j->qd,
	       (double)(z->num_read_ops - a->num_read_ops) / ops,
	       (double)(z->num_write_ops - a->num_write_ops) / ops,
	       (double)(z->num_flush_ops - a->num_flush_ops + z->num_unmap_ops - a->num_unmap_ops +
			z->num_write_zeroes_ops - a->num_write_zeroes_ops) /
		       ops,
	       (double)(z->bytes_read - a->bytes_read + z->bytes_written - a->bytes_written) / 1024 /
		       ops);
	fflush(stdout);
}

/* ---- the sequence ----------------------------------------------------------------- */

static void op_done(void *arg, int rc)
{
	struct bench *b = arg;

	if (rc != 0) {
		fail(b, "step", rc);
	}
	step(b);
}

static void fs_done(void *arg, struct ust_blobfs *fs, int rc)
{
	struct bench *b = arg;

	b->fs = fs;
	op_done(b, rc);
}

static void create_done(void *arg, const struct ust_blobfs_entry *entry, struct ust_blobfs_file *fh,
			int rc)
{
	struct bench *b = arg;

	(void)entry;
	b->fh = fh;
	op_done(b, rc);
}

static void stat_done(struct ust_bdev *bdev, struct ust_bdev_io_stat *stat, void *ctx, int rc)
{
	(void)bdev;
	(void)stat;
	op_done(ctx, rc);
}

static void bdev_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	(void)type;
	(void)bdev;
	(void)ctx;
}

static bool job_selected(const struct bench *b, const char *name)
{
	const char *p = b->only;
	size_t n = strlen(name);

	if (p == NULL) {
		return true;
	}
	while ((p = strstr(p, name)) != NULL) {
		if ((p == b->only || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) {
			return true;
		}
		p += n;
	}
	return false;
}

static void step(struct bench *b)
{
	struct ust_blobfs_opts o;
	const char *bdev;
	int rc;

	for (;;) {
		bdev = b->targets[b->cur_target].bdev;
		if (b->rc != 0 && b->step != S_DONE) {
			/* close what is open (best effort) and stop */
			if (b->ch != NULL) {
				ust_put_io_channel(b->ch);
				b->ch = NULL;
			}
			if (b->desc != NULL) {
				ust_bdev_close(b->desc);
				b->desc = NULL;
			}
			b->step = S_DONE;
		}
		switch (b->step) {
		case S_FORMAT:
			printf("%s (%s), file of %" PRIu64 " MiB, %.0f s per job, cluster %u KiB\n",
			       b->targets[b->cur_target].label, bdev, b->size_mib, b->seconds,
			       b->cluster_kib != 0 ? b->cluster_kib : 64);
			fflush(stdout);
			b->raw = false;
			b->bdev = ust_bdev_get_by_name(bdev);
			ust_blobfs_opts_init(&o);
			o.cluster_size = b->cluster_kib * 1024;
			b->step = S_CREATE;
			ust_blobfs_format(bdev, &o, NULL, fs_done, b);
			return;
		case S_CREATE:
			b->step = S_FALLOCATE;
			ust_blobfs_create(b->fs, &b->ctx, UST_BLOBFS_ROOT_INO, "data", S_IFREG | 0644,
					  O_RDWR | O_EXCL, create_done, b);
			return;
		case S_FALLOCATE:
			b->job = 0;
			b->step = S_JOB_STAT0;
			ust_blobfs_fallocate(b->fs, &b->ctx, b->fh, 0, 0, b->size_mib * MIB, op_done, b);
			return;
		case S_JOB_STAT0:
			while (b->job < NJOBS && !job_selected(b, g_jobs[b->job].name)) {
				b->job++;
			}
			if (b->job == NJOBS) {
				b->step = b->raw ? S_NEXT_TARGET : S_RELEASE;
				continue;
			}
			b->step = S_JOB_RUN;
			ust_bdev_get_iostat(b->bdev, &b->st0, stat_done, b);
			return;
		case S_JOB_RUN:
			job_start(b);
			return;
		case S_JOB_STAT1:
			b->step = S_JOB_REPORT;
			ust_bdev_get_iostat(b->bdev, &b->st1, stat_done, b);
			return;
		case S_JOB_REPORT:
			job_report(b);
			b->job++;
			b->step = S_JOB_STAT0;
			continue;
		case S_RELEASE:
			b->step = S_UNMOUNT;
			ust_blobfs_release(b->fs, b->fh, op_done, b);
			return;
		case S_UNMOUNT:
			b->fh = NULL;
			b->step = S_RAW_OPEN;
			ust_blobfs_unmount(b->fs, op_done, b);
			return;
		case S_RAW_OPEN:
			b->fs = NULL;
			rc = ust_bdev_open_ext(bdev, true, bdev_event, b, &b->desc);
			if (rc == 0) {
				b->ch = ust_bdev_get_io_channel(b->desc);
				rc = b->ch == NULL ? -ENOMEM : 0;
			}
			if (rc != 0) {
				fail(b, "open", rc);
				continue;
			}
			b->raw = true;
			b->job = 0;
			b->step = S_JOB_STAT0;
			continue;
		case S_NEXT_TARGET:
			ust_put_io_channel(b->ch);
			b->ch = NULL;
			ust_bdev_close(b->desc);
			b->desc = NULL;
			b->step = ++b->cur_target < b->ntargets ? S_FORMAT : S_DONE;
			continue;
		case S_DONE:
			ust_app_stop(b->rc == 0 ? 0 : 1);
			return;
		}
	}
}

static void bench_start(void *ctx)
{
	struct bench *b = ctx;
	uint32_t i;

	for (i = 0; i < MAX_QD; i++) {
		b->slots[i].b = b;
		b->slots[i].buf = ust_dma_malloc(MIB, BLOCK_SIZE);
		if (b->slots[i].buf == NULL) {
			fail(b, "buffer", -ENOMEM);
			b->step = S_DONE;
			break;
		}
		memset(b->slots[i].buf, 0xa5 ^ (int)i, MIB);
	}
	step(b);
}

/* ---- options and the bdevs ------------------------------------------------------ */

enum { OPT_CLUSTER_KIB = 256, OPT_IMAGE, OPT_BDEV, OPT_JOBS };

static const struct option g_long[] = {
	{"size-mib", required_argument, NULL, 's'},
	{"time", required_argument, NULL, 't'},
	{"cluster-kib", required_argument, NULL, OPT_CLUSTER_KIB},
	{"image", required_argument, NULL, OPT_IMAGE},
	{"bdev", required_argument, NULL, OPT_BDEV},
	{"jobs", required_argument, NULL, OPT_JOBS},
	{NULL, 0, NULL, 0},
};

static int parse_opt(int ch, char *arg, void *ctx)
{
	struct bench *b = ctx;
	char *end;
	unsigned long long v;

	if (ch == OPT_IMAGE) {
		b->image = arg;
		return 0;
	}
	if (ch == OPT_JOBS) {
		b->only = arg;
		return 0;
	}
	if (ch == OPT_BDEV) {
		b->use_malloc = strcmp(arg, "malloc") == 0 || strcmp(arg, "both") == 0;
		b->use_file = strcmp(arg, "file") == 0 || strcmp(arg, "both") == 0;
		return b->use_malloc || b->use_file ? 0 : -EINVAL;
	}
	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0) {
		return -EINVAL;
	}
	switch (ch) {
	case 's':
		if (v > 64 * 1024) {
			return -EINVAL;
		}
		b->size_mib = v;
		return 0;
	case 't':
		if (v > 3600) {
			return -EINVAL;
		}
		b->seconds = (double)v;
		return 0;
	case OPT_CLUSTER_KIB:
		if (v < 4 || v > 65536 || (v & (v - 1)) != 0) {
			return -EINVAL;
		}
		b->cluster_kib = (uint32_t)v;
		return 0;
	default:
		return -EINVAL;
	}
}

static void usage(void)
{
	printf("Usage: bfs_io [OPTION]...\n"
	       "blobfs file I/O through the API (no FUSE), then the same jobs on the raw bdev.\n"
	       " -s, --size-mib MIB     file size (default 256)\n"
	       " -t, --time SECONDS     per job (default 5)\n"
	       "     --cluster-kib K    blobfs cluster size (default: blobfs's, 64)\n"
	       "     --bdev KIND        malloc, file or both (default both)\n"
	       "     --jobs LIST        comma-separated subset of seqwrite, seqread,\n"
	       "                        randread-qd1, randread-qd32, randwrite-qd1, randwrite-qd32\n"
	       "     --image PATH       the file bdev's image (default /dev/shm/ustor_bfs_io.img,\n"
	       "                        created and removed)\n\n");
}

/* The bdevs' JSON config; the image file is made here at its full size. */
static int write_config(struct bench *b, uint64_t bdev_mib, char *path)
{
	char cfg[2048], mal[256] = "", file[1024] = "";
	int fd, len;

	if (b->use_malloc) {
		snprintf(mal, sizeof(mal),
			 "{\"method\":\"bdev_malloc_create\",\"params\":{\"name\":\"Malloc0\","
			 "\"num_blocks\":%" PRIu64 ",\"block_size\":%u}}",
			 bdev_mib * MIB / BLOCK_SIZE, BLOCK_SIZE);
		b->targets[b->ntargets++] = (struct target){"Malloc0", "malloc bdev"};
	}
	if (b->use_file) {
		fd = open(b->image, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || ftruncate(fd, (off_t)(bdev_mib * MIB)) != 0) {
			if (fd >= 0) {
				close(fd);
			}
			return -errno;
		}
		close(fd);
		snprintf(file, sizeof(file),
			 "%s{\"method\":\"bdev_uring_create\",\"params\":{\"name\":\"File0\","
			 "\"filename\":\"%s\",\"block_size\":%u}}",
			 b->use_malloc ? "," : "", b->image, BLOCK_SIZE);
		b->targets[b->ntargets++] = (struct target){"File0", "file bdev"};
	}
	len = snprintf(cfg, sizeof(cfg),
		       "{\"subsystems\":[{\"subsystem\":\"bdev\",\"config\":[%s%s]}]}\n", mal, file);
	return bench_write_config(path, cfg, len);
}

int main(int argc, char **argv)
{
	struct bench *b = &g_bench;
	struct ust_app_opts opts;
	char path[] = "/tmp/bench_bfs_io_XXXXXX";
	uint64_t bdev_mib;
	int rc;

	bench_app_opts_init(&opts, "bfs_io", "0x1");
	rc = ust_app_parse_args(argc, argv, &opts, "s:t:", g_long, parse_opt, usage, b);
	if (rc != 0) {
		return rc == 1 ? 0 : 2;
	}
	/* the file plus the store's metadata and the file system's own blobs */
	bdev_mib = b->size_mib + b->size_mib / 8 + 64;
	if (opts.mem_size_mb == 0) {
		opts.mem_size_mb = (int)((b->use_malloc ? bdev_mib : 0) + MAX_QD + 512);
	}
	rc = write_config(b, bdev_mib, path);
	if (rc != 0) {
		fprintf(stderr, "bfs_io: cannot write the config or the image: %s\n", strerror(-rc));
		return 1;
	}
	opts.config_file = path;
	rc = ust_app_start(&opts, bench_start, b);
	unlink(path);
	if (b->use_file) {
		unlink(b->image);
	}
	return rc == 0 ? 0 : 1;
}
