/*
 * One ustor-perf job: a ust_thread pinned to one core that opens the bdev,
 * takes its own I/O channel and keeps queue_depth I/Os in flight until a
 * timed poller ends the run, then drains, releases the bdev and reports to
 * the app thread.
 *
 * Guarantees: the I/O path allocates nothing and reads the clock once per
 * I/O (the completion time of one I/O is the submit time of the next);
 * every submitted I/O is waited for before the bdev is closed; every error
 * (failed submit, failed completion, removal of the bdev, verify mismatch)
 * is counted and the first one is kept word for word for the report. In
 * verify mode each job owns a disjoint region, writes all of it (random
 * order, random sizes up to the I/O size) and then reads all of it back and
 * checks every block, pass after pass with a new sequence number each time,
 * until the time is up.
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ustor/bdev.h"
#include "ustor/cpuset.h"
#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/thread.h"

#include "perf.h"

/* At most this many extents per verify pass: bounds the job's memory (16 B each). */
#define VERIFY_MAX_EXTENTS (1u << 20)
/* Print this many miscompares as they happen; the rest are only counted. */
#define VERIFY_MAX_PRINTED 10
#define BUF_ALIGN 4096

enum verify_phase {
	VERIFY_WRITE,
	VERIFY_READ,
};

struct perf_task {
	struct perf_job *job;
	void *buf;
	uint64_t submit_tsc;
	uint64_t offset;
	uint32_t blocks;
	bool is_read;
	struct perf_extent *ext; /* verify only */
	struct ust_bdev_io_wait_entry wait;
};

struct perf_job {
	struct perf_config cfg;
	uint32_t index;
	uint32_t count;
	struct ust_thread *thread;
	struct ust_thread *app_thread;
	perf_job_done_fn done;
	void *done_ctx;

	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;
	struct ust_bdev *bdev;
	uint32_t block_size;
	uint32_t io_blocks;
	uint64_t region_start;
	uint64_t region_blocks;
	uint64_t slots;    /* I/O-sized slots in the region */
	uint64_t seq_next; /* sequential workloads: next slot */
	uint64_t rng;

	struct perf_task *tasks;
	uint32_t outstanding; /* submitted or waiting for an I/O object */
	bool stopping;
	bool time_up;
	bool finished;
	struct ust_poller *timer;
	uint64_t start_tsc;
	uint64_t last_tsc;
	struct ust_thread_stats stats_start;
	uint64_t cpu_ns_start;

	/* verify */
	enum verify_phase phase;
	struct perf_extent *ext;
	uint64_t ext_count;
	uint64_t ext_next;
	uint64_t ext_written;
	uint64_t seq;
	uint64_t cycles;
	uint64_t end_tsc;
	uint64_t write_deadline;
	void *scratch;

	struct perf_result result;
};

static void job_finish(struct perf_job *job);
static void task_submit(struct perf_task *task, uint64_t now);

static void job_record_error(struct perf_job *job, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void job_record_error(struct perf_job *job, const char *fmt, ...)
{
	va_list ap;

	if (job->result.first_error[0] != '\0') {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(job->result.first_error, sizeof(job->result.first_error), fmt, ap);
	va_end(ap);
}

static bool workload_writes(enum perf_workload w)
{
	return w != PERF_RANDREAD && w != PERF_READ;
}

/* ---- choosing the next I/O ---------------------------------------------- */

static uint64_t next_random_offset(struct perf_job *job)
{
	return job->region_start + perf_rand_below(&job->rng, job->slots) * job->io_blocks;
}

static uint64_t next_sequential_offset(struct perf_job *job)
{
	uint64_t slot = job->seq_next;

	job->seq_next = slot + 1 == job->slots ? 0 : slot + 1;
	return job->region_start + slot * job->io_blocks;
}

static bool next_is_read(struct perf_job *job)
{
	switch (job->cfg.workload) {
	case PERF_RANDREAD:
	case PERF_READ:
		return true;
	case PERF_RW:
	case PERF_RANDRW:
		return perf_rand_below(&job->rng, 100) < job->cfg.read_percent;
	default:
		return false;
	}
}

static void plan_benchmark_io(struct perf_task *task)
{
	struct perf_job *job = task->job;
	enum perf_workload w = job->cfg.workload;

	task->is_read = next_is_read(job);
	task->blocks = job->io_blocks;
	if (w == PERF_RANDREAD || w == PERF_RANDWRITE || w == PERF_RANDRW) {
		task->offset = next_random_offset(job);
	} else {
		task->offset = next_sequential_offset(job);
	}
}

/* Verify: the next extent of the current pass, or false when the pass has none left. */
static bool plan_verify_io(struct perf_task *task, uint64_t now)
{
	struct perf_job *job = task->job;
	struct perf_extent *ext;

	if (job->phase == VERIFY_WRITE) {
		/* Each pass writes at least one extent, however little time is left. */
		if (job->ext_next == job->ext_count ||
		    (job->ext_next > 0 && now >= job->write_deadline)) {
			return false;
		}
		ext = &job->ext[job->ext_next++];
		perf_pattern_fill(task->buf, job->block_size, ext->offset, ext->blocks, job->seq);
		task->is_read = false;
	} else {
		do {
			if (job->ext_next == job->ext_written) {
				return false;
			}
			ext = &job->ext[job->ext_next++];
		} while (ext->failed);
		task->is_read = true;
	}
	task->ext = ext;
	task->offset = ext->offset;
	task->blocks = ext->blocks;
	return true;
}

/* ---- verify passes ------------------------------------------------------ */

static int verify_new_pass(struct perf_job *job, uint64_t now)
{
	uint64_t len = job->region_blocks;

	free(job->ext);
	/* Cap the pass so its extent list stays bounded on a huge bdev. */
	if (len / job->io_blocks > VERIFY_MAX_EXTENTS) {
		len = (uint64_t)VERIFY_MAX_EXTENTS * job->io_blocks;
	}
	job->ext = perf_extents_make(job->region_start, len, job->io_blocks, &job->rng,
				     &job->ext_count);
	if (job->ext == NULL) {
		job_record_error(job, "out of memory for the verify extent list");
		job->result.errors++;
		return -ENOMEM;
	}
	job->seq++;
	job->cycles++;
	job->phase = VERIFY_WRITE;
	job->ext_next = 0;
	job->ext_written = 0;
	/* Half of the remaining time for writing, so the read-back fits in the rest. */
	job->write_deadline = now < job->end_tsc ? now + (job->end_tsc - now) / 2 : now;
	return 0;
}

static void verify_start_read_pass(struct perf_job *job)
{
	job->ext_written = job->ext_next;
	perf_extents_shuffle(job->ext, job->ext_written, &job->rng);
	job->ext_next = 0;
	job->phase = VERIFY_READ;
}

static void job_kick(struct perf_job *job, uint64_t now)
{
	uint32_t i;

	for (i = 0; i < job->cfg.queue_depth && !job->stopping; i++) {
		task_submit(&job->tasks[i], now);
	}
}

/* Verify: the pass ran out of extents and nothing is in flight. */
static void verify_pass_drained(struct perf_job *job, uint64_t now)
{
	if (job->phase == VERIFY_WRITE && !job->stopping) {
		verify_start_read_pass(job);
		job_kick(job, now);
		return;
	}
	if (job->time_up || job->stopping || verify_new_pass(job, now) != 0) {
		return;
	}
	job_kick(job, now);
}

/* ---- submission and completion ------------------------------------------ */

/* Nothing in flight: start the next verify pass, or end the job. */
static void job_check_drained(struct perf_job *job, uint64_t now)
{
	if (job->outstanding != 0) {
		return;
	}
	if (job->cfg.workload == PERF_VERIFY) {
		verify_pass_drained(job, now);
	}
	if (job->outstanding == 0) {
		job_finish(job);
	}
}

static void task_retry(void *arg)
{
	struct perf_task *task = arg;
	struct perf_job *job = task->job;
	uint64_t now = ust_get_ticks();

	job->outstanding--;
	if (!job->stopping) {
		task_submit(task, now);
	}
	job_check_drained(job, now);
}

static void task_done(struct ust_bdev_io *io, int status, void *cb_arg);

static int task_issue_io(struct perf_task *task)
{
	struct perf_job *job = task->job;

	if (task->is_read) {
		return ust_bdev_read_blocks(job->desc, job->ch, task->buf, task->offset,
					    task->blocks, task_done, task);
	}
	return ust_bdev_write_blocks(job->desc, job->ch, task->buf, task->offset, task->blocks,
				     task_done, task);
}

/* Submit failed with -ENOMEM: wait for an I/O object, the task stays outstanding. */
static bool task_wait_for_io(struct perf_task *task)
{
	struct perf_job *job = task->job;

	task->wait.bdev = job->bdev;
	task->wait.cb_fn = task_retry;
	task->wait.cb_arg = task;
	return ust_bdev_queue_io_wait(job->bdev, job->ch, &task->wait) == 0;
}

static void task_submit(struct perf_task *task, uint64_t now)
{
	struct perf_job *job = task->job;
	int rc, tries;

	if (job->cfg.workload == PERF_VERIFY) {
		if (!plan_verify_io(task, now)) {
			return;
		}
		now = ust_get_ticks(); /* the pattern fill is not the bdev's latency */
	} else {
		plan_benchmark_io(task);
	}
	task->submit_tsc = now;
	job->outstanding++;
	/* -ENOMEM: wait for an I/O object; the wait queue refuses when one is free right now. */
	for (tries = 0; tries < 3; tries++) {
		rc = task_issue_io(task);
		if (rc == 0) {
			return;
		}
		if (rc != -ENOMEM) {
			break;
		}
		if (task_wait_for_io(task)) {
			return; /* task_retry resubmits */
		}
	}
	job->outstanding--;
	job->result.errors++;
	job_record_error(job, "bdev %s: submitting a %s of %u blocks at block %" PRIu64
			 " failed: %s", job->cfg.bdev_name, task->is_read ? "read" : "write",
			 task->blocks, task->offset, strerror(-rc));
	/* A bdev that refuses I/O will keep refusing: end the run rather than spin. */
	job->stopping = true;
}

static void task_check_read(struct perf_task *task)
{
	struct perf_job *job = task->job;
	char msg[400];

	if (perf_pattern_check(task->buf, job->block_size, task->offset, task->blocks, job->seq,
			       job->scratch, msg, sizeof(msg)) == 0) {
		job->result.verified_blocks += task->blocks;
		return;
	}
	job->result.miscompares++;
	if (job->result.miscompares <= VERIFY_MAX_PRINTED) {
		fprintf(stderr, "verify FAILED: bdev %s: %s\n", job->cfg.bdev_name, msg);
	}
	job_record_error(job, "verify FAILED: bdev %s: %s", job->cfg.bdev_name, msg);
}

static void task_record_failure(struct perf_task *task, int status)
{
	struct perf_job *job = task->job;

	job->result.errors++;
	if (task->ext != NULL && !task->is_read) {
		task->ext->failed = true;
	}
	job_record_error(job, "bdev %s: %s of %u blocks at block %" PRIu64 " failed: %s",
			 job->cfg.bdev_name, task->is_read ? "read" : "write", task->blocks,
			 task->offset, strerror(-status));
}

static void task_done(struct ust_bdev_io *io, int status, void *cb_arg)
{
	struct perf_task *task = cb_arg;
	struct perf_job *job = task->job;
	uint64_t now = ust_get_ticks();

	job->outstanding--;
	job->last_tsc = now;
	if (__builtin_expect(status == 0, 1)) {
		job->result.ios++;
		job->result.bytes += (uint64_t)task->blocks * job->block_size;
		perf_hist_add(&job->result.hist, now - task->submit_tsc);
		if (task->ext != NULL && task->is_read) {
			task_check_read(task);
		}
	} else {
		task_record_failure(task, status);
	}
	if (!job->stopping) {
		task_submit(task, now);
	}
	job_check_drained(job, now);
}

/* ---- life cycle --------------------------------------------------------- */

static int job_timer(void *arg)
{
	struct perf_job *job = arg;

	ust_poller_unregister(&job->timer);
	job->time_up = true;
	/* Verify finishes the pass in progress so that what was written gets checked. */
	if (job->cfg.workload != PERF_VERIFY) {
		job->stopping = true;
	}
	return UST_POLLER_BUSY;
}

static void job_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	struct perf_job *job = ctx;

	if (type != UST_BDEV_EVENT_REMOVE) {
		return;
	}
	if (job->finished) {
		return;
	}
	job->stopping = true;
	job->result.errors++;
	job_record_error(job, "bdev %s was removed during the run", job->cfg.bdev_name);
	if (job->outstanding == 0 && job->tasks != NULL) {
		job_finish(job);
	}
}

static void job_report(void *arg)
{
	struct perf_job *job = arg;

	job->done(job, job->done_ctx);
}

static void job_release(struct perf_job *job)
{
	uint32_t i;

	ust_poller_unregister(&job->timer);
	if (job->ch != NULL) {
		ust_put_io_channel(job->ch);
		job->ch = NULL;
	}
	if (job->desc != NULL) {
		ust_bdev_close(job->desc);
		job->desc = NULL;
	}
	if (job->tasks != NULL) {
		for (i = 0; i < job->cfg.queue_depth; i++) {
			ust_dma_free(job->tasks[i].buf);
		}
		free(job->tasks);
		job->tasks = NULL;
	}
	ust_dma_free(job->scratch);
	job->scratch = NULL;
	free(job->ext);
	job->ext = NULL;
}

/*
 * CPU time of the calling OS thread. Busy ticks count wall time, so on a
 * shared machine they include the time the thread was preempted; this does
 * not, and tells what one dedicated core would do.
 */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void job_finish(struct perf_job *job)
{
	struct ust_thread_stats stats;

	if (job->finished) {
		return;
	}
	job->finished = true;
	job->result.passes = job->cycles;
	if (ust_thread_get_stats(ust_get_thread(), &stats) == 0) {
		job->result.busy_ticks = stats.busy_tsc - job->stats_start.busy_tsc;
	}
	if (job->cpu_ns_start != 0)
		job->result.cpu_ns = thread_cpu_ns() - job->cpu_ns_start;
	if (job->last_tsc > job->start_tsc) {
		job->result.elapsed_ticks = job->last_tsc - job->start_tsc;
	}
	job_release(job);
	ust_thread_exit(ust_get_thread());
	if (ust_thread_send_msg(job->app_thread, job_report, job) != 0) {
		UST_ERRLOG("cannot report job %u to the app thread\n", job->index);
	}
}

static void job_fail_setup(struct perf_job *job, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void job_fail_setup(struct perf_job *job, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(job->result.first_error, sizeof(job->result.first_error), fmt, ap);
	va_end(ap);
	job->result.errors++;
	job_finish(job);
}

/* Where this job works: all of the bdev for random I/O, its own share otherwise. */
static int job_set_region(struct perf_job *job)
{
	uint64_t num_blocks = ust_bdev_get_num_blocks(job->bdev);
	uint64_t share;
	enum perf_workload w = job->cfg.workload;

	if (w == PERF_RANDREAD || w == PERF_RANDWRITE || w == PERF_RANDRW) {
		job->region_start = 0;
		job->region_blocks = num_blocks;
	} else {
		share = num_blocks / job->count;
		job->region_start = share * job->index;
		job->region_blocks = share;
	}
	job->slots = job->region_blocks / job->io_blocks;
	if (job->slots == 0) {
		return -ENOSPC;
	}
	if (w != PERF_VERIFY) {
		job->region_blocks = job->slots * job->io_blocks;
	}
	return 0;
}

static int job_alloc_tasks(struct perf_job *job)
{
	uint32_t i;

	job->tasks = calloc(job->cfg.queue_depth, sizeof(*job->tasks));
	if (job->tasks == NULL) {
		return -ENOMEM;
	}
	for (i = 0; i < job->cfg.queue_depth; i++) {
		job->tasks[i].job = job;
		job->tasks[i].buf = ust_dma_zmalloc(job->cfg.io_size, BUF_ALIGN);
		if (job->tasks[i].buf == NULL) {
			return -ENOMEM;
		}
	}
	if (job->cfg.workload == PERF_VERIFY) {
		job->scratch = ust_dma_malloc(job->block_size, 0);
		if (job->scratch == NULL) {
			return -ENOMEM;
		}
	}
	return 0;
}

static void job_run(void *arg)
{
	struct perf_job *job = arg;
	uint64_t now;
	int rc;

	rc = ust_bdev_open_ext(job->cfg.bdev_name, workload_writes(job->cfg.workload), job_event,
			       job, &job->desc);
	if (rc != 0) {
		job->desc = NULL;
		job_fail_setup(job, "cannot open bdev %s%s: %s", job->cfg.bdev_name,
			       workload_writes(job->cfg.workload) ? " for writing" : "",
			       strerror(-rc));
		return;
	}
	job->bdev = ust_bdev_desc_get_bdev(job->desc);
	job->block_size = ust_bdev_get_block_size(job->bdev);
	job->io_blocks = (uint32_t)(job->cfg.io_size / job->block_size);
	if (job_set_region(job) != 0) {
		job_fail_setup(job, "bdev %s (%" PRIu64 " blocks) has no room for an I/O of %u "
			       "blocks in each of %u jobs", job->cfg.bdev_name,
			       ust_bdev_get_num_blocks(job->bdev), job->io_blocks, job->count);
		return;
	}
	job->ch = ust_bdev_get_io_channel(job->desc);
	if (job->ch == NULL) {
		job_fail_setup(job, "cannot get an I/O channel of bdev %s", job->cfg.bdev_name);
		return;
	}
	rc = job_alloc_tasks(job);
	if (rc != 0) {
		job_fail_setup(job, "out of DMA memory for %u buffers of %" PRIu64 " bytes "
			       "(try --mem-size)", job->cfg.queue_depth, job->cfg.io_size);
		return;
	}
	job->timer = ust_poller_register(job_timer, job, (uint64_t)(job->cfg.seconds * 1e6),
					 "perf_timer");
	if (job->timer == NULL) {
		job_fail_setup(job, "cannot register the run timer");
		return;
	}
	ust_thread_get_stats(ust_get_thread(), &job->stats_start);
	job->cpu_ns_start = thread_cpu_ns();
	now = ust_get_ticks();
	job->start_tsc = now;
	job->last_tsc = now;
	job->end_tsc = now + (uint64_t)(job->cfg.seconds * (double)ust_get_ticks_hz());
	if (job->cfg.workload == PERF_VERIFY && verify_new_pass(job, now) != 0) {
		job->stopping = true;
	}
	job_kick(job, now);
	job_check_drained(job, now);
}

struct perf_job *perf_job_start(const struct perf_config *cfg, uint32_t core,
				uint32_t job_index, uint32_t job_count, uint64_t seed,
				perf_job_done_fn done, void *ctx)
{
	struct perf_job *job;
	struct ust_cpuset mask;
	char name[32];

	job = calloc(1, sizeof(*job));
	if (job == NULL) {
		fprintf(stderr, "ustor-perf: out of memory\n");
		return NULL;
	}
	job->cfg = *cfg;
	job->index = job_index;
	job->count = job_count;
	job->rng = seed;
	job->seq = seed << 16; /* this run's sequence numbers: unlike any earlier run's */
	job->done = done;
	job->done_ctx = ctx;
	job->app_thread = ust_get_thread();
	job->result.core = core;
	perf_hist_init(&job->result.hist);
	ust_cpuset_zero(&mask);
	ust_cpuset_set(&mask, core, true);
	snprintf(name, sizeof(name), "perf_core%u", core);
	job->thread = ust_thread_create(name, &mask);
	if (job->thread == NULL) {
		fprintf(stderr, "ustor-perf: cannot create a thread on core %u\n", core);
		free(job);
		return NULL;
	}
	if (ust_thread_send_msg(job->thread, job_run, job) != 0) {
		/* The thread stays idle; shutdown exits it with every other thread. */
		fprintf(stderr, "ustor-perf: cannot start the job on core %u\n", core);
		free(job);
		return NULL;
	}
	return job;
}

const struct perf_result *perf_job_result(const struct perf_job *job)
{
	return &job->result;
}

void perf_job_free(struct perf_job *job)
{
	free(job);
}
