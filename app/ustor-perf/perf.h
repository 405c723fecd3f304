/*
 * Private to ustor-perf: the run configuration, the per-core job, the
 * latency histogram and the verify pattern, shared by the program's files.
 */
#ifndef USTOR_PERF_H
#define USTOR_PERF_H

#include <stdbool.h>
#include <stdint.h>

#include "ustor/bdev.h"
#include "ustor/thread.h"

enum perf_workload {
	PERF_RANDREAD,
	PERF_RANDWRITE,
	PERF_READ,
	PERF_WRITE,
	PERF_RW,     /* sequential, -M percent reads */
	PERF_RANDRW, /* random, -M percent reads */
	PERF_VERIFY,
};

struct perf_config {
	const char *bdev_name;
	uint32_t queue_depth;
	uint64_t io_size;       /* bytes */
	enum perf_workload workload;
	const char *workload_name;
	uint32_t read_percent;  /* rw / randrw */
	double seconds;
	const char *json_path;
	uint64_t seed;          /* 0: derived from the clock */
};

/* ---- latency histogram (histogram.c) ------------------------------------ */

/*
 * Log-linear: values below 2^HIST_SUB_BITS each get a bucket; above, every
 * power of two is cut into 2^HIST_SUB_BITS equal buckets, so any value is
 * recorded within 1/32 (about 3%) of itself. Fixed size, no allocation.
 */
#define HIST_SUB_BITS 5
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB_COUNT)

struct perf_hist {
	uint64_t count;
	uint64_t sum;
	uint64_t min;
	uint64_t max;
	uint64_t buckets[HIST_BUCKETS];
};

void perf_hist_init(struct perf_hist *h);
void perf_hist_merge(struct perf_hist *dst, const struct perf_hist *src);
/* Value at or below which fraction q (0..1] of the samples lie (bucket midpoint). */
uint64_t perf_hist_quantile(const struct perf_hist *h, double q);
/* Smallest and largest value a bucket holds. */
uint64_t perf_hist_bucket_low(uint32_t idx);
uint64_t perf_hist_bucket_high(uint32_t idx);

static inline uint32_t perf_hist_bucket_index(uint64_t value)
{
	uint32_t shift;

	if (value < HIST_SUB_COUNT)
		return (uint32_t)value;
	shift = (uint32_t)(63 - __builtin_clzll(value)) - HIST_SUB_BITS;
	return (shift + 1) * HIST_SUB_COUNT + (uint32_t)((value >> shift) - HIST_SUB_COUNT);
}

/* Per I/O: a bucket increment and four scalar updates, no allocation. */
static inline void perf_hist_add(struct perf_hist *h, uint64_t value)
{
	h->buckets[perf_hist_bucket_index(value)]++;
	h->count++;
	h->sum += value;
	if (value < h->min)
		h->min = value;
	if (value > h->max)
		h->max = value;
}

/* ---- verify pattern (verify.c) ------------------------------------------ */

/* The header at the start of every block written by -w verify. */
struct perf_block_hdr {
	uint64_t magic;
	uint64_t lba;
	uint64_t seq;
	uint64_t checksum; /* XXH64 of the whole block with this field zero */
};

#define PERF_BLOCK_MAGIC 0x7573746f72766679ULL /* "ustorvfy" */

/* Fill nblocks blocks starting at lba with the pattern of seq. */
void perf_pattern_fill(void *buf, uint32_t block_size, uint64_t lba, uint64_t nblocks,
		       uint64_t seq);
/*
 * Check nblocks blocks read from lba. Returns 0, or -EILSEQ after writing a
 * description of the first bad block (address, expected, found) into msg.
 * scratch must hold one block.
 */
int perf_pattern_check(const void *buf, uint32_t block_size, uint64_t lba, uint64_t nblocks,
		       uint64_t seq, void *scratch, char *msg, size_t msglen);

/* A run of blocks written as one I/O in the write pass. */
struct perf_extent {
	uint64_t offset;
	uint32_t blocks;
	bool failed; /* the write failed: contents unknown, not read back */
};

/*
 * Cut [start, start + len) into extents of random length 1..max_blocks, in
 * shuffled order. *count receives the number; NULL when out of memory.
 */
struct perf_extent *perf_extents_make(uint64_t start, uint64_t len, uint32_t max_blocks,
				      uint64_t *rng, uint64_t *count);
void perf_extents_shuffle(struct perf_extent *ext, uint64_t count, uint64_t *rng);

/* ---- random numbers ----------------------------------------------------- */

/* splitmix64: good enough statistically, a handful of instructions. */
static inline uint64_t perf_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, n) without a division (Lemire's multiply-shift). */
static inline uint64_t perf_rand_below(uint64_t *state, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)perf_rand(state) * n) >> 64);
}

/* ---- jobs (job.c) ------------------------------------------------------- */

struct perf_result {
	uint32_t core;
	uint64_t ios;
	uint64_t bytes;
	uint64_t errors;        /* completions with an error status, failed submits */
	uint64_t miscompares;   /* verify: bad blocks found */
	uint64_t verified_blocks;
	uint64_t passes;        /* verify: write+read-back passes started */
	uint64_t elapsed_ticks; /* first submit to last completion */
	uint64_t busy_ticks;    /* the job thread's busy time during the run */
	uint64_t cpu_ns;        /* CPU time the OS gave the job's thread during the run */
	struct perf_hist hist;  /* latency in ticks */
	char first_error[512];  /* the first error or miscompare, for the report */
};

struct perf_job;

/* Called on the app thread when a job has finished and released the bdev. */
typedef void (*perf_job_done_fn)(struct perf_job *job, void *ctx);

/*
 * Create a job thread on core that runs the workload on its share
 * (job_index of job_count) of the bdev. NULL on failure (message printed).
 */
struct perf_job *perf_job_start(const struct perf_config *cfg, uint32_t core,
				uint32_t job_index, uint32_t job_count, uint64_t seed,
				perf_job_done_fn done, void *ctx);
const struct perf_result *perf_job_result(const struct perf_job *job);
void perf_job_free(struct perf_job *job);

#endif
