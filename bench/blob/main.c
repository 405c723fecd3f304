/*
 * blob: the blobstore's headline benchmarks, on malloc bdevs, one core,
 * poll mode always (defaults: -m 0x1 --no-huge --poll-mode always).
 *
 *  1. seq:  sequential 1 MiB writes at queue depth 8 to a thick blob and the
 *           same writes to a raw malloc bdev of the same size (alternating
 *           rounds): MiB/s of both and the blob's overhead in percent.
 *  2. thin: 4 KiB writes at queue depth 32 to a new thin blob, one to each
 *           cluster in random order (every write allocates its cluster),
 *           then random 4 KiB overwrites of the fully allocated blob: IOPS.
 *  3. md:   create + open + sync + close of N blobs, a copy of the device
 *           (the dirty image), unload, clean load with N blobs, delete of
 *           the N blobs, unload, the dirty image written back, dirty load.
 *
 * A benchmark, not a test: it prints figures and exits 0 (1 when an
 * operation fails).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../bench_util.h"
#include "ustor/app.h"
#include "ustor/bdev.h"
#include "ustor/blob.h"
#include "ustor/env.h"
#include "ustor/thread.h"

#define MIB ((uint64_t)1024 * 1024)
#define BLOCK_SIZE 4096u
#define MAX_QD 256
#define MAX_MD_QD 64

enum bench_state {
	ST_START,
	/* 1: sequential writes, blob vs raw bdev */
	ST_SEQ_BEGIN,
	ST_SEQ_CREATE,
	ST_SEQ_OPEN,
	ST_SEQ_RAW,
	ST_SEQ_BLOB,
	ST_SEQ_ROUND_DONE,
	ST_SEQ_UNLOAD,
	ST_SEQ_END,
	/* 2: thin blob, allocating and overwriting 4 KiB random writes */
	ST_THIN_BEGIN,
	ST_THIN_CREATE,
	ST_THIN_OPEN,
	ST_THIN_ALLOC,
	ST_THIN_OVERWRITE,
	ST_THIN_CLOSE,
	ST_THIN_UNLOAD,
	ST_THIN_END,
	/* 3: metadata */
	ST_MD_BEGIN,
	ST_MD_CREATE,
	ST_MD_IMAGE,
	ST_MD_UNLOAD,
	ST_MD_CLEAN_LOAD,
	ST_MD_DELETE,
	ST_MD_UNLOAD2,
	ST_MD_RESTORE,
	ST_MD_DIRTY_LOAD,
	ST_MD_VERIFY_OPEN,
	ST_MD_VERIFY_CLOSE,
	ST_MD_UNLOAD3,
	ST_MD_END,
	ST_SUMMARY,
};

enum io_pattern { PAT_SEQ, PAT_PERM, PAT_RAND };

/* One run of writes (or reads) at a fixed queue depth: a pump, not a sequence. */
struct io_run {
	bool raw;                 /* bdev desc/ch, else blob/bs channel */
	bool read;
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;
	struct ust_blob *blob;
	uint8_t *image;           /* when set, each I/O uses image + offset */
	void *buf;
	enum io_pattern pattern;
	uint32_t qd;
	uint64_t io_units;        /* units (4096 B blocks) per I/O */
	uint64_t region_units;
	uint64_t units_per_cluster; /* PAT_PERM */
	uint32_t *perm;             /* PAT_PERM: cluster order */
	uint64_t count;           /* I/Os to issue (0: time bound) */
	uint64_t deadline;
	uint64_t issued, completed, inflight, next;
	uint64_t start, end;
	uint64_t rng;
	int rc;
	bool pumping, repump, finished;
};

struct md_item {
	struct bench *b;
	enum { MI_NEXT, MI_CREATED, MI_OPENED, MI_SYNCED, MI_CLOSED, MI_DELETED } state;
	bool deleting;
	uint64_t idx;
	struct ust_blob *blob;
	int rc;
};

struct bench {
	enum bench_state state;
	int rc;
	uint32_t unload_tries;
	/* options */
	bool do_seq, do_thin, do_md;
	uint64_t nblobs;
	uint32_t md_qd;
	uint32_t seq_qd;
	uint64_t seq_mib;        /* per round, per target */
	uint32_t rounds;
	uint64_t region_mib;
	uint32_t thin_qd;
	uint32_t thin_cluster_kib;
	uint64_t thin_clusters;
	double thin_seconds;
	uint64_t bdev_mib;
	/* state */
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	struct ust_io_channel *bs_ch;
	struct ust_bdev_desc *raw_desc;
	struct ust_io_channel *raw_ch;
	ust_blob_id id;
	uint32_t round;
	struct io_run io;
	void *buf;
	uint32_t *perm;
	uint8_t *image;
	ust_blob_id *ids;
	struct md_item items[MAX_MD_QD];
	uint64_t md_next, md_done;
	uint32_t md_active;
	int md_rc;
	uint64_t t0;
	double c0; /* thread CPU seconds at t0 */
	/* results */
	double raw_sec, blob_sec; /* summed over rounds */
	uint64_t raw_bytes, blob_bytes;
	double alloc_iops, over_iops;
	uint64_t alloc_ios, alloc_clusters_after;
	double create_sec, delete_sec, clean_load_sec, dirty_load_sec, image_sec, restore_sec;
	double create_cpu, delete_cpu, clean_load_cpu, dirty_load_cpu;
	uint32_t md_max_blobs;
	uint64_t md_page_bytes;
};

static struct bench g_bench = {
	.do_seq = true,
	.do_thin = true,
	.do_md = true,
	.nblobs = 100000,
	.md_qd = 1,
	.seq_qd = 8,
	.seq_mib = 2048,
	.rounds = 4,
	.region_mib = 256,
	.thin_qd = 32,
	.thin_cluster_kib = 16,
	.thin_clusters = 16384,
	.thin_seconds = 5.0,
};

static void bench_step(struct bench *b);

static double ticks_to_sec(uint64_t t)
{
	return (double)t / (double)ust_get_ticks_hz();
}

/*
 * CPU seconds of the process (one reactor: the bench's work). On a shared
 * machine wall time also counts other processes' turns; the metadata phase
 * is CPU-bound on a malloc bdev, so its CPU time is the figure that
 * compares across runs.
 */
static double cpu_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void md_mark(struct bench *b)
{
	b->t0 = ust_get_ticks();
	b->c0 = cpu_sec();
}

/* Wall seconds since md_mark(); *cpu gets the CPU seconds. */
static double md_elapsed(const struct bench *b, double *cpu)
{
	*cpu = cpu_sec() - b->c0;
	return ticks_to_sec(ust_get_ticks() - b->t0);
}

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64* */
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* ---- callbacks that re-enter bench_step ------------------------------------ */

static void op_done(void *arg, int rc)
{
	struct bench *b = arg;

	b->rc = rc;
	bench_step(b);
}

static void examine_done(void *arg)
{
	op_done(arg, 0);
}

static void bs_done(void *arg, struct ust_blob_store *bs, int rc)
{
	struct bench *b = arg;

	if (rc == 0) {
		b->bs = bs;
	}
	op_done(b, rc);
}

static void id_done(void *arg, ust_blob_id id, int rc)
{
	((struct bench *)arg)->id = id;
	op_done(arg, rc);
}

static void blob_done(void *arg, struct ust_blob *blob, int rc)
{
	((struct bench *)arg)->blob = blob;
	op_done(arg, rc);
}

/* A freed channel is released by a message: an unload right after it may see -EBUSY. */
static void unload_retry(void *arg);

static void unload_done(void *arg, int rc)
{
	struct bench *b = arg;

	if (rc == -EBUSY && b->unload_tries++ < 1000) {
		ust_thread_send_msg(ust_get_thread(), unload_retry, b);
		return;
	}
	b->unload_tries = 0;
	if (rc == 0) {
		b->bs = NULL;
	}
	op_done(b, rc);
}

static void unload_retry(void *arg)
{
	struct bench *b = arg;

	ust_bs_unload(b->bs, unload_done, b);
}

/* ---- the I/O pump ------------------------------------------------------------ */

static bool io_more(struct io_run *r)
{
	if (r->rc != 0) {
		return false;
	}
	if (r->count != 0) {
		return r->issued < r->count;
	}
	return ust_get_ticks() < r->deadline;
}

static uint64_t io_offset(struct io_run *r)
{
	uint64_t off;

	switch (r->pattern) {
	case PAT_SEQ:
		off = (r->next * r->io_units) % r->region_units;
		break;
	case PAT_PERM:
		off = (uint64_t)r->perm[r->next] * r->units_per_cluster +
		      rng_next(&r->rng) % r->units_per_cluster;
		break;
	default:
		off = rng_next(&r->rng) % (r->region_units / r->io_units) * r->io_units;
		break;
	}
	r->next++;
	return off;
}

static void io_pump(struct bench *b);

static void io_complete(struct bench *b, int rc)
{
	struct io_run *r = &b->io;

	r->inflight--;
	r->completed++;
	if (rc != 0 && r->rc == 0) {
		r->rc = rc;
	}
	io_pump(b);
}

static void raw_io_done(struct ust_bdev_io *bio, int status, void *arg)
{
	(void)bio;
	io_complete(arg, status);
}

static void blob_io_done(void *arg, int rc)
{
	io_complete(arg, rc);
}

static int io_submit(struct bench *b)
{
	struct io_run *r = &b->io;
	uint64_t off = io_offset(r);
	void *buf = r->image ? r->image + off * BLOCK_SIZE : r->buf;
	int rc = 0;

	r->issued++;
	r->inflight++;
	if (r->raw && r->read) {
		rc = ust_bdev_read_blocks(r->desc, r->ch, buf, off, r->io_units, raw_io_done, b);
	} else if (r->raw) {
		rc = ust_bdev_write_blocks(r->desc, r->ch, buf, off, r->io_units, raw_io_done, b);
	} else {
		ust_blob_write(r->blob, r->ch, buf, off, r->io_units, blob_io_done, b);
	}
	if (rc != 0) {
		r->inflight--;
		r->rc = rc;
	}
	return rc;
}

/* Keep qd I/Os in flight; when the run is over and drained, go on with the sequence. */
static void io_pump(struct bench *b)
{
	struct io_run *r = &b->io;

	if (r->pumping) {
		r->repump = true;
		return;
	}
	r->pumping = true;
	do {
		r->repump = false;
		while (r->inflight < r->qd && io_more(r)) {
			if (io_submit(b) != 0) {
				break;
			}
		}
	} while (r->repump);
	r->pumping = false;
	if (r->inflight == 0 && !r->finished && !io_more(r)) {
		r->finished = true;
		r->end = ust_get_ticks();
		op_done(b, r->rc);
	}
}

static void io_start(struct bench *b)
{
	struct io_run *r = &b->io;

	r->issued = r->completed = r->inflight = r->next = 0;
	r->rc = 0;
	r->finished = r->pumping = r->repump = false;
	if (r->rng == 0) {
		r->rng = 0x9E3779B97F4A7C15ULL;
	}
	r->start = ust_get_ticks();
	if (r->count == 0) {
		r->deadline = r->start + (uint64_t)(b->thin_seconds * (double)ust_get_ticks_hz());
	}
	io_pump(b);
}

static double io_seconds(const struct io_run *r)
{
	return ticks_to_sec(r->end - r->start);
}

/* ---- metadata items: create+open+sync+close, or delete -------------------- */

static void md_item_step(struct md_item *it);

static void mi_done(void *arg, int rc)
{
	struct md_item *it = arg;

	it->rc = rc;
	md_item_step(it);
}

static void mi_id_done(void *arg, ust_blob_id id, int rc)
{
	struct md_item *it = arg;

	it->b->ids[it->idx] = id;
	mi_done(it, rc);
}

static void mi_blob_done(void *arg, struct ust_blob *blob, int rc)
{
	((struct md_item *)arg)->blob = blob;
	mi_done(arg, rc);
}

static void md_item_step(struct md_item *it)
{
	struct bench *b = it->b;

	if (it->rc != 0) {
		fprintf(stderr, "blob: %s of blob %" PRIu64 " failed in step %d: %s\n",
			it->deleting ? "delete" : "create", it->idx, (int)it->state,
			strerror(-it->rc));
		if (b->md_rc == 0) {
			b->md_rc = it->rc;
		}
		it->rc = 0;
		it->state = MI_NEXT;
	}
	switch (it->state) {
	case MI_NEXT:
	case MI_CLOSED:
	case MI_DELETED:
		if (it->state != MI_NEXT) {
			b->md_done++;
		}
		if (b->md_rc != 0 || b->md_next >= b->nblobs) {
			if (--b->md_active == 0) {
				b->rc = b->md_rc;
				bench_step(b);
			}
			return;
		}
		it->idx = b->md_next++;
		if (it->deleting) {
			it->state = MI_DELETED;
			ust_bs_delete_blob(b->bs, b->ids[it->idx], mi_done, it);
		} else {
			it->state = MI_CREATED;
			ust_bs_create_blob(b->bs, NULL, mi_id_done, it);
		}
		return;
	case MI_CREATED:
		it->state = MI_OPENED;
		ust_bs_open_blob(b->bs, b->ids[it->idx], mi_blob_done, it);
		return;
	case MI_OPENED:
		it->state = MI_SYNCED;
		ust_blob_sync_md(it->blob, mi_done, it);
		return;
	case MI_SYNCED:
		it->state = MI_CLOSED;
		ust_blob_close(it->blob, mi_done, it);
		return;
	}
}

static void md_start(struct bench *b, bool deleting)
{
	uint32_t i, n = b->md_qd;

	b->md_next = b->md_done = 0;
	b->md_rc = 0;
	b->md_active = n;
	md_mark(b);
	for (i = 0; i < n; i++) {
		b->items[i] = (struct md_item){.b = b, .state = MI_NEXT, .deleting = deleting};
	}
	for (i = 0; i < n; i++) {
		md_item_step(&b->items[i]);
	}
}

/* ---- the sequence -------------------------------------------------------------- */

static void bdev_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	(void)type;
	(void)bdev;
	(void)ctx;
}

static void bench_stop(struct bench *b, int rc)
{
	if (b->bs_ch != NULL) {
		ust_bs_free_io_channel(b->bs_ch);
		b->bs_ch = NULL;
	}
	if (b->raw_ch != NULL) {
		ust_put_io_channel(b->raw_ch);
		b->raw_ch = NULL;
	}
	if (b->raw_desc != NULL) {
		ust_bdev_close(b->raw_desc);
		b->raw_desc = NULL;
	}
	ust_dma_free(b->buf);
	ust_dma_free(b->image);
	b->buf = NULL;
	b->image = NULL;
	free(b->perm);
	free(b->ids);
	b->perm = NULL;
	b->ids = NULL;
	ust_app_stop(rc);
}

static int raw_open(struct bench *b, const char *name, bool write)
{
	int rc = ust_bdev_open_ext(name, write, bdev_event, b, &b->raw_desc);

	if (rc != 0) {
		return rc;
	}
	b->raw_ch = ust_bdev_get_io_channel(b->raw_desc);
	return b->raw_ch == NULL ? -ENOMEM : 0;
}

static void raw_close(struct bench *b)
{
	ust_put_io_channel(b->raw_ch);
	ust_bdev_close(b->raw_desc);
	b->raw_ch = NULL;
	b->raw_desc = NULL;
}

static void io_setup(struct bench *b, bool raw, enum io_pattern pat, uint32_t qd,
		     uint64_t io_units, uint64_t region_units, uint64_t count)
{
	struct io_run *r = &b->io;

	memset(r, 0, sizeof(*r));
	r->raw = raw;
	r->desc = b->raw_desc;
	r->ch = raw ? b->raw_ch : b->bs_ch;
	r->blob = b->blob;
	r->buf = b->buf;
	r->pattern = pat;
	r->qd = qd;
	r->io_units = io_units;
	r->region_units = region_units;
	r->count = count;
	r->perm = b->perm;
}

static void print_seq_round(struct bench *b, const char *what, uint64_t bytes, double sec)
{
	printf("  round %u %-4s %8.0f MiB in %6.3f s  %9.1f MiB/s%s\n", b->round + 1, what,
	       (double)bytes / MIB, sec, (double)bytes / MIB / sec,
	       b->round == 0 && b->rounds > 1 ? "  (warm-up, not counted)" : "");
	fflush(stdout);
}

static void bench_step(struct bench *b)
{
	struct ust_bs_opts bo;
	struct ust_blob_opts blo;
	uint64_t i, n, units;
	double sec;

	if (b->rc != 0) {
		fprintf(stderr, "blob: step %d failed: %s\n", (int)b->state, strerror(-b->rc));
		bench_stop(b, 1);
		return;
	}
	for (;;) {
		switch (b->state) {
		case ST_START:
			b->buf = ust_dma_zmalloc(MIB, 4096);
			if (b->buf == NULL) {
				b->rc = -ENOMEM;
				break;
			}
			memset(b->buf, 0xa5, MIB);
			/* Examining modules (lvol) claim a new bdev while they look at it. */
			b->state = ST_SEQ_BEGIN;
			b->rc = ust_bdev_wait_for_examine(examine_done, b);
			if (b->rc != 0) {
				break;
			}
			return;

		/* ---- 1: sequential ---- */
		case ST_SEQ_BEGIN:
			if (!b->do_seq) {
				b->state = ST_SEQ_END;
				continue;
			}
			printf("== seq: 1 MiB sequential writes, QD %u, %" PRIu64 " MiB region, "
			       "%u rounds of %" PRIu64 " MiB each ==\n",
			       b->seq_qd, b->region_mib, b->rounds, b->seq_mib);
			b->rc = raw_open(b, "Raw0", true);
			if (b->rc != 0) {
				break;
			}
			ust_bs_opts_init(&bo);
			bo.cluster_size = MIB;
			bo.max_blobs = 64;
			b->state = ST_SEQ_CREATE;
			ust_bs_init("Malloc0", &bo, bs_done, b);
			return;
		case ST_SEQ_CREATE:
			ust_blob_opts_init(&blo);
			blo.num_clusters = b->region_mib;
			blo.thin_provision = false;
			b->state = ST_SEQ_OPEN;
			ust_bs_create_blob(b->bs, &blo, id_done, b);
			return;
		case ST_SEQ_OPEN:
			b->state = ST_SEQ_RAW;
			b->round = 0;
			ust_bs_open_blob(b->bs, b->id, blob_done, b);
			return;
		case ST_SEQ_RAW:
			if (b->bs_ch == NULL) {
				b->bs_ch = ust_bs_alloc_io_channel(b->bs);
				if (b->bs_ch == NULL) {
					b->rc = -ENOMEM;
					break;
				}
			}
			io_setup(b, true, PAT_SEQ, b->seq_qd, MIB / BLOCK_SIZE,
				 b->region_mib * MIB / BLOCK_SIZE, b->seq_mib);
			b->state = ST_SEQ_BLOB;
			io_start(b);
			return;
		case ST_SEQ_BLOB:
			sec = io_seconds(&b->io);
			if (b->round > 0 || b->rounds == 1) {
				b->raw_sec += sec;
				b->raw_bytes += b->io.completed * MIB;
			}
			print_seq_round(b, "raw", b->io.completed * MIB, sec);
			io_setup(b, false, PAT_SEQ, b->seq_qd, MIB / BLOCK_SIZE,
				 b->region_mib * MIB / BLOCK_SIZE, b->seq_mib);
			b->state = ST_SEQ_ROUND_DONE;
			io_start(b);
			return;
		case ST_SEQ_ROUND_DONE:
			sec = io_seconds(&b->io);
			if (b->round > 0 || b->rounds == 1) {
				b->blob_sec += sec;
				b->blob_bytes += b->io.completed * MIB;
			}
			print_seq_round(b, "blob", b->io.completed * MIB, sec);
			b->state = ++b->round < b->rounds ? ST_SEQ_RAW : ST_SEQ_UNLOAD;
			continue;
		case ST_SEQ_UNLOAD:
			raw_close(b);
			ust_bs_free_io_channel(b->bs_ch);
			b->bs_ch = NULL;
			b->state = ST_SEQ_END;
			ust_blob_close(b->blob, op_done, b);
			return;
		case ST_SEQ_END:
			if (b->do_seq) {
				b->state = ST_THIN_BEGIN;
				ust_bs_unload(b->bs, unload_done, b);
				return;
			}
			b->state = ST_THIN_BEGIN;
			continue;

		/* ---- 2: thin ---- */
		case ST_THIN_BEGIN:
			if (!b->do_thin) {
				b->state = ST_THIN_END;
				continue;
			}
			ust_bs_opts_init(&bo);
			bo.cluster_size = b->thin_cluster_kib * 1024u;
			bo.max_blobs = 64;
			bo.md_pages = 4096;
			b->state = ST_THIN_CREATE;
			ust_bs_init("Malloc0", &bo, bs_done, b);
			return;
		case ST_THIN_CREATE:
			n = ust_bs_get_free_cluster_count(b->bs);
			if (b->thin_clusters > n) {
				b->thin_clusters = n;
			}
			printf("== thin: 4 KiB random writes, QD %u, thin blob of %" PRIu64
			       " clusters of %u KiB ==\n",
			       b->thin_qd, b->thin_clusters, b->thin_cluster_kib);
			ust_blob_opts_init(&blo);
			blo.num_clusters = b->thin_clusters;
			blo.thin_provision = true;
			b->state = ST_THIN_OPEN;
			ust_bs_create_blob(b->bs, &blo, id_done, b);
			return;
		case ST_THIN_OPEN:
			b->state = ST_THIN_ALLOC;
			ust_bs_open_blob(b->bs, b->id, blob_done, b);
			return;
		case ST_THIN_ALLOC:
			b->bs_ch = ust_bs_alloc_io_channel(b->bs);
			b->perm = calloc(b->thin_clusters, sizeof(*b->perm));
			if (b->bs_ch == NULL || b->perm == NULL) {
				b->rc = -ENOMEM;
				break;
			}
			for (i = 0; i < b->thin_clusters; i++) {
				b->perm[i] = (uint32_t)i;
			}
			b->io.rng = 12345;
			for (i = b->thin_clusters; i > 1; i--) {
				uint64_t j = rng_next(&b->io.rng) % i;
				uint32_t t = b->perm[i - 1];

				b->perm[i - 1] = b->perm[j];
				b->perm[j] = t;
			}
			units = b->thin_cluster_kib * 1024u / BLOCK_SIZE;
			io_setup(b, false, PAT_PERM, b->thin_qd, 1, b->thin_clusters * units,
				 b->thin_clusters);
			b->io.units_per_cluster = units;
			b->state = ST_THIN_OVERWRITE;
			io_start(b);
			return;
		case ST_THIN_OVERWRITE:
			sec = io_seconds(&b->io);
			b->alloc_ios = b->io.completed;
			b->alloc_iops = (double)b->io.completed / sec;
			b->alloc_clusters_after = ust_blob_get_num_allocated_clusters(b->blob);
			printf("  allocating writes: %" PRIu64 " in %.3f s  %10.0f IOPS  "
			       "(allocated clusters now %" PRIu64 " of %" PRIu64 ")\n",
			       b->io.completed, sec, b->alloc_iops, b->alloc_clusters_after,
			       b->thin_clusters);
			fflush(stdout);
			io_setup(b, false, PAT_RAND, b->thin_qd, 1,
				 b->thin_clusters * (b->thin_cluster_kib * 1024u / BLOCK_SIZE), 0);
			b->state = ST_THIN_CLOSE;
			io_start(b);
			return;
		case ST_THIN_CLOSE:
			sec = io_seconds(&b->io);
			b->over_iops = (double)b->io.completed / sec;
			printf("  overwrites:        %" PRIu64 " in %.3f s  %10.0f IOPS\n",
			       b->io.completed, sec, b->over_iops);
			fflush(stdout);
			ust_bs_free_io_channel(b->bs_ch);
			b->bs_ch = NULL;
			b->state = ST_THIN_UNLOAD;
			ust_blob_close(b->blob, op_done, b);
			return;
		case ST_THIN_UNLOAD:
			b->state = ST_THIN_END;
			ust_bs_unload(b->bs, unload_done, b);
			return;
		case ST_THIN_END:
			b->state = ST_MD_BEGIN;
			continue;

		/* ---- 3: metadata ---- */
		case ST_MD_BEGIN:
			if (!b->do_md) {
				b->state = ST_SUMMARY;
				continue;
			}
			b->ids = calloc(b->nblobs, sizeof(*b->ids));
			if (b->ids == NULL) {
				b->rc = -ENOMEM;
				break;
			}
			ust_bs_opts_init(&bo);
			bo.cluster_size = MIB;
			bo.max_blobs = (uint32_t)b->nblobs;
			bo.md_pages = 1024;
			printf("== md: %" PRIu64 " blobs, %u in flight, store max_blobs %u md_pages "
			       "%u cluster 1 MiB ==\n",
			       b->nblobs, b->md_qd, bo.max_blobs, bo.md_pages);
			fflush(stdout);
			b->state = ST_MD_CREATE;
			md_mark(b);
			ust_bs_init("Malloc0", &bo, bs_done, b);
			return;
		case ST_MD_CREATE:
			printf("  init (format):      %.3f s\n", ticks_to_sec(ust_get_ticks() - b->t0));
			b->md_max_blobs = ust_bs_get_max_blobs(b->bs);
			b->state = ST_MD_IMAGE;
			md_start(b, false);
			return;
		case ST_MD_IMAGE:
			b->create_sec = md_elapsed(b, &b->create_cpu);
			printf("  create+open+sync+close: %" PRIu64 " in %.3f s (cpu %.3f s)  %10.0f blobs/s\n",
			       b->md_done, b->create_sec, b->create_cpu, (double)b->md_done / b->create_sec);
			fflush(stdout);
			/* The device as it is now: the store loaded (clean = 0) with N blobs. */
			b->rc = raw_open(b, "Malloc0", false);
			if (b->rc != 0) {
				break;
			}
			b->md_page_bytes = ust_bdev_get_num_blocks(ust_bdev_desc_get_bdev(b->raw_desc)) *
					   BLOCK_SIZE;
			b->image = ust_dma_malloc(b->md_page_bytes, 4096);
			if (b->image == NULL) {
				fprintf(stderr, "blob: no memory for a %" PRIu64 " MiB image "
					"(raise --mem-size)\n", b->md_page_bytes / MIB);
				b->rc = -ENOMEM;
				break;
			}
			io_setup(b, true, PAT_SEQ, 8, MIB / BLOCK_SIZE, b->md_page_bytes / BLOCK_SIZE,
				 b->md_page_bytes / MIB);
			b->io.read = true;
			b->io.image = b->image;
			b->state = ST_MD_UNLOAD;
			io_start(b);
			return;
		case ST_MD_UNLOAD:
			b->image_sec = io_seconds(&b->io);
			raw_close(b);
			b->state = ST_MD_CLEAN_LOAD;
			ust_bs_unload(b->bs, unload_done, b);
			return;
		case ST_MD_CLEAN_LOAD:
			b->state = ST_MD_DELETE;
			md_mark(b);
			ust_bs_load("Malloc0", NULL, bs_done, b);
			return;
		case ST_MD_DELETE:
			b->clean_load_sec = md_elapsed(b, &b->clean_load_cpu);
			printf("  clean load:         %.3f s (cpu %.3f s)\n", b->clean_load_sec,
			       b->clean_load_cpu);
			fflush(stdout);
			b->state = ST_MD_UNLOAD2;
			md_start(b, true);
			return;
		case ST_MD_UNLOAD2:
			b->delete_sec = md_elapsed(b, &b->delete_cpu);
			printf("  delete:             %" PRIu64 " in %.3f s (cpu %.3f s)  %10.0f blobs/s\n",
			       b->md_done, b->delete_sec, b->delete_cpu, (double)b->md_done / b->delete_sec);
			fflush(stdout);
			b->state = ST_MD_RESTORE;
			ust_bs_unload(b->bs, unload_done, b);
			return;
		case ST_MD_RESTORE:
			/* Put back the image taken while the store was loaded: a crash. */
			b->rc = raw_open(b, "Malloc0", true);
			if (b->rc != 0) {
				break;
			}
			io_setup(b, true, PAT_SEQ, 8, MIB / BLOCK_SIZE, b->md_page_bytes / BLOCK_SIZE,
				 b->md_page_bytes / MIB);
			b->io.image = b->image;
			b->state = ST_MD_DIRTY_LOAD;
			io_start(b);
			return;
		case ST_MD_DIRTY_LOAD:
			b->restore_sec = io_seconds(&b->io);
			raw_close(b);
			b->state = ST_MD_VERIFY_OPEN;
			md_mark(b);
			ust_bs_load("Malloc0", NULL, bs_done, b);
			return;
		case ST_MD_VERIFY_OPEN:
			b->dirty_load_sec = md_elapsed(b, &b->dirty_load_cpu);
			printf("  dirty load:         %.3f s (cpu %.3f s)\n", b->dirty_load_sec,
			       b->dirty_load_cpu);
			fflush(stdout);
			/* The last blob created must be back. */
			b->state = ST_MD_VERIFY_CLOSE;
			ust_bs_open_blob(b->bs, b->ids[b->nblobs - 1], blob_done, b);
			return;
		case ST_MD_VERIFY_CLOSE:
			b->state = ST_MD_UNLOAD3;
			ust_blob_close(b->blob, op_done, b);
			return;
		case ST_MD_UNLOAD3:
			b->state = ST_MD_END;
			ust_bs_unload(b->bs, unload_done, b);
			return;
		case ST_MD_END:
			b->state = ST_SUMMARY;
			continue;

		case ST_SUMMARY:
			printf("\n==================== summary ====================\n");
			if (b->do_seq) {
				double raw = (double)b->raw_bytes / MIB / b->raw_sec;
				double blob = (double)b->blob_bytes / MIB / b->blob_sec;

				printf("seq 1 MiB QD%-3u raw bdev          %10.1f MiB/s\n", b->seq_qd,
				       raw);
				printf("seq 1 MiB QD%-3u thick blob        %10.1f MiB/s\n", b->seq_qd,
				       blob);
				printf("seq blob overhead                 %10.2f %%\n",
				       (raw - blob) / raw * 100.0);
			}
			if (b->do_thin) {
				printf("thin 4 KiB QD%-3u allocating       %10.0f IOPS\n", b->thin_qd,
				       b->alloc_iops);
				printf("thin 4 KiB QD%-3u allocated        %10.0f IOPS\n", b->thin_qd,
				       b->over_iops);
			}
			if (b->do_md) {
				printf("md (N=%" PRIu64 ")                  wall       per cpu-second\n",
				       b->nblobs);
				printf("md create+open+sync+close %10.0f blobs/s %10.0f blobs/s\n",
				       (double)b->nblobs / b->create_sec, (double)b->nblobs / b->create_cpu);
				printf("md delete                 %10.0f blobs/s %10.0f blobs/s\n",
				       (double)b->nblobs / b->delete_sec, (double)b->nblobs / b->delete_cpu);
				printf("md clean load             %10.3f s       %10.3f s cpu\n",
				       b->clean_load_sec, b->clean_load_cpu);
				printf("md dirty load             %10.3f s       %10.3f s cpu\n",
				       b->dirty_load_sec, b->dirty_load_cpu);
			}
			fflush(stdout);
			bench_stop(b, 0);
			return;
		}
		/* a synchronous failure (b->rc set, then break) */
		fprintf(stderr, "blob: step %d failed: %s\n", (int)b->state, strerror(-b->rc));
		bench_stop(b, 1);
		return;
	}
}

static void bench_start(void *ctx)
{
	bench_step(ctx);
}

/* ---- options ------------------------------------------------------------------ */

enum {
	OPT_MD_QD = 1000,
	OPT_THIN_CLUSTER_KIB,
	OPT_THIN_CLUSTERS,
	OPT_ROUNDS,
	OPT_REGION,
	OPT_BDEV_MIB,
};

static const struct option g_long[] = {
	{"blobs", required_argument, NULL, 'n'},
	{"phases", required_argument, NULL, 'p'},
	{"seq-mib", required_argument, NULL, 's'},
	{"time", required_argument, NULL, 't'},
	{"qd", required_argument, NULL, 'q'},
	{"thin-qd", required_argument, NULL, 'Q'},
	{"md-qd", required_argument, NULL, OPT_MD_QD},
	{"thin-cluster-kib", required_argument, NULL, OPT_THIN_CLUSTER_KIB},
	{"thin-clusters", required_argument, NULL, OPT_THIN_CLUSTERS},
	{"rounds", required_argument, NULL, OPT_ROUNDS},
	{"region-mib", required_argument, NULL, OPT_REGION},
	{"bdev-mib", required_argument, NULL, OPT_BDEV_MIB},
	{NULL, 0, NULL, 0},
};

static int parse_phases(struct bench *b, const char *arg)
{
	char copy[64], *tok, *save = NULL;

	if (strlen(arg) >= sizeof(copy)) {
		return -EINVAL;
	}
	strcpy(copy, arg);
	b->do_seq = b->do_thin = b->do_md = false;
	for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		if (strcmp(tok, "seq") == 0) {
			b->do_seq = true;
		} else if (strcmp(tok, "thin") == 0) {
			b->do_thin = true;
		} else if (strcmp(tok, "md") == 0) {
			b->do_md = true;
		} else {
			fprintf(stderr, "unknown phase '%s' (seq, thin, md)\n", tok);
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_opt(int ch, char *arg, void *ctx)
{
	struct bench *b = ctx;
	uint64_t v = 0;
	int rc;
	char *end;

	switch (ch) {
	case 'p':
		return parse_phases(b, arg);
	case 't':
		b->thin_seconds = strtod(arg, &end);
		if (*end != '\0' || b->thin_seconds <= 0 || b->thin_seconds > 3600) {
			fprintf(stderr, "invalid -t '%s'\n", arg);
			return -EINVAL;
		}
		return 0;
	default:
		break;
	}
	switch (ch) {
	case 'n':
		rc = bench_parse_u64("blob", arg, 1, 1u << 24, &b->nblobs);
		break;
	case 's':
		rc = bench_parse_u64("blob", arg, 1, 1ULL << 30, &b->seq_mib);
		break;
	case 'q':
		rc = bench_parse_u64("blob", arg, 1, MAX_QD, &v);
		b->seq_qd = (uint32_t)v;
		break;
	case 'Q':
		rc = bench_parse_u64("blob", arg, 1, MAX_QD, &v);
		b->thin_qd = (uint32_t)v;
		break;
	case OPT_MD_QD:
		rc = bench_parse_u64("blob", arg, 1, MAX_MD_QD, &v);
		b->md_qd = (uint32_t)v;
		break;
	case OPT_THIN_CLUSTER_KIB:
		rc = bench_parse_u64("blob", arg, 4, 1024, &v);
		if (rc == 0 && (v & (v - 1)) != 0) {
			fprintf(stderr, "--thin-cluster-kib must be a power of two\n");
			rc = -EINVAL;
		}
		b->thin_cluster_kib = (uint32_t)v;
		break;
	case OPT_THIN_CLUSTERS:
		rc = bench_parse_u64("blob", arg, 1, 1u << 24, &b->thin_clusters);
		break;
	case OPT_ROUNDS:
		rc = bench_parse_u64("blob", arg, 1, 100, &v);
		b->rounds = (uint32_t)v;
		break;
	case OPT_REGION:
		rc = bench_parse_u64("blob", arg, 1, 1u << 20, &b->region_mib);
		break;
	case OPT_BDEV_MIB:
		rc = bench_parse_u64("blob", arg, 64, 1u << 20, &b->bdev_mib);
		break;
	default:
		rc = -EINVAL;
		break;
	}
	return rc;
}

static void usage(void)
{
	printf("Usage: blob [OPTION]...\n"
	       "Blobstore benchmarks on malloc bdevs, one core, poll mode always.\n"
	       " -p, --phases LIST       any of seq,thin,md (default all three)\n"
	       " seq:  1 MiB sequential writes, thick blob vs raw bdev\n"
	       " -q, --qd N              queue depth (default 8)\n"
	       " -s, --seq-mib MIB       MiB written per round to each (default 2048)\n"
	       "     --rounds N          alternating raw/blob rounds, the first a\n"
	       "                         warm-up when there are several (default 4)\n"
	       "     --region-mib MIB    size of the blob and raw region (default 256)\n"
	       " thin: 4 KiB random writes to a new thin blob, then overwrites\n"
	       " -Q, --thin-qd N         queue depth (default 32)\n"
	       "     --thin-cluster-kib K cluster size of that store (default 16)\n"
	       "     --thin-clusters N   blob size in clusters (default 16384)\n"
	       " -t, --time SECONDS      duration of the overwrite run (default 5)\n"
	       " md:   create+open+sync+close, clean load, delete, dirty load\n"
	       " -n, --blobs N           number of blobs (default 100000)\n"
	       "     --md-qd N           metadata operations in flight (default 1)\n"
	       "     --bdev-mib MIB      size of Malloc0 (default: enough for all phases)\n\n");
}

static int write_config(struct bench *b, char *path)
{
	char cfg[1024], raw[256] = "";
	int len;

	if (b->do_seq) {
		snprintf(raw, sizeof(raw),
			 ",{\"method\":\"bdev_malloc_create\",\"params\":{\"name\":\"Raw0\","
			 "\"num_blocks\":%" PRIu64 ",\"block_size\":%u}}",
			 b->region_mib * MIB / BLOCK_SIZE, BLOCK_SIZE);
	}
	len = snprintf(cfg, sizeof(cfg),
		       "{\"subsystems\":[{\"subsystem\":\"bdev\",\"config\":["
		       "{\"method\":\"bdev_malloc_create\",\"params\":{\"name\":\"Malloc0\","
		       "\"num_blocks\":%" PRIu64 ",\"block_size\":%u}}%s]}]}\n",
		       b->bdev_mib * MIB / BLOCK_SIZE, BLOCK_SIZE, raw);
	return bench_write_config(path, cfg, len);
}

int main(int argc, char **argv)
{
	struct bench *b = &g_bench;
	struct ust_app_opts opts;
	char path[] = "/tmp/bench_blob_XXXXXX";
	uint64_t need, md_mib;
	int rc;

	bench_app_opts_init(&opts, "blob", "0x1");
	rc = ust_app_parse_args(argc, argv, &opts, "n:p:s:t:q:Q:", g_long, parse_opt, usage, b);
	if (rc != 0) {
		return rc == 1 ? 0 : 2;
	}
	/* Malloc0: the seq region plus room for metadata; md: 2 root pages per blob. */
	need = b->region_mib + 64;
	md_mib = (b->nblobs * 2 * 4096 + MIB - 1) / MIB + 64;
	if (b->do_md && md_mib > need) {
		need = md_mib;
	}
	if (b->do_thin && need < 320) {
		need = 320;
	}
	/* The thin blob fully allocated, plus the metadata clusters' room. */
	if (b->do_thin && b->thin_clusters * b->thin_cluster_kib / 1024 + 64 > need) {
		need = b->thin_clusters * b->thin_cluster_kib / 1024 + 64;
	}
	if (b->bdev_mib == 0) {
		b->bdev_mib = need;
	}
	if (opts.mem_size_mb == 0) {
		/* Malloc0, Raw0, the dirty image of Malloc0, and slack. */
		opts.mem_size_mb = (int)(b->bdev_mib * (b->do_md ? 2 : 1) +
					 (b->do_seq ? b->region_mib : 0) + 512);
	}
	rc = write_config(b, path);
	if (rc != 0) {
		fprintf(stderr, "blob: cannot write the config: %s\n", strerror(-rc));
		return 1;
	}
	printf("blob: Malloc0 %" PRIu64 " MiB (4 KiB blocks), mem-size %d MB, core mask %s\n",
	       b->bdev_mib, opts.mem_size_mb, opts.core_mask);
	fflush(stdout);
	opts.config_file = path;
	rc = ust_app_start(&opts, bench_start, b);
	unlink(path);
	return rc == 0 ? 0 : 1;
}
