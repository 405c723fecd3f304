/*
 * Workers: OS threads beside the reactors, on the CPUs no reactor polls,
 * for CPU work a reactor should not do inline - a large copy the reactor's
 * core would otherwise make while requests wait behind it.
 *
 * A worker takes jobs from any thread without a lock (a many-producer
 * ring) and runs each once, in the order taken, on its own thread. It
 * sleeps only when it has nothing to do. A job's owner hears of its end
 * however it likes; usually the job sends a message to the ust_thread that
 * submitted it (ust_thread_send_msg), where it completes.
 */
#ifndef USTOR_WORKER_H
#define USTOR_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "ustor/cpuset.h"
#include "ustor/thread.h"

struct ust_worker;

/* Embedded in the caller's own structure; fn gets it back on the worker. */
struct ust_worker_job {
	void (*fn)(struct ust_worker_job *job);
};

/*
 * Start a worker named name (at most 15 characters are kept, as the
 * thread's name) that holds up to depth jobs at once. Its CPUs are every
 * configured CPU outside the reactors' core mask; like the reactors it
 * ignores the affinity the process started with, but a cgroup's cpuset
 * still bounds it. 0, or -ENODEV (every CPU is a reactor's), -EINVAL,
 * -ENOMEM, or the negative errno pthread_create gave (EINVAL where a
 * cpuset leaves it no CPU).
 */
int ust_worker_create(const char *name, uint32_t depth, struct ust_worker **out);
/*
 * Bound the CPUs of workers created from now on (the programs' --worker-mask)
 * to mask's CPUs outside the reactors' core mask; an empty mask: no workers
 * at all (ust_worker_create says -ENODEV). NULL: every CPU outside the core
 * mask again. Workers already running keep theirs.
 */
void ust_worker_set_cpumask(const struct ust_cpuset *mask);
/* The CPUs the worker may run on. */
const struct ust_cpuset *ust_worker_get_cpumask(const struct ust_worker *w);
/*
 * Any thread: queue job, whose fn then runs on the worker exactly once.
 * False when the worker already holds depth jobs: run it some other way.
 */
bool ust_worker_submit(struct ust_worker *w, struct ust_worker_job *job);
/*
 * From a job: run fn(ctx) on thread, where the job's owner completes it.
 * A message is never dropped for a full ring (ust_thread_send_msg); where
 * memory for one is short the worker waits and tries again, as it has
 * nothing else to do. Gives up only if thread has exited.
 */
void ust_worker_send_msg(const struct ust_thread *thread, ust_msg_fn fn, void *ctx);
/* Run every job taken, then stop and join the thread. Nothing may submit meanwhile. */
void ust_worker_destroy(struct ust_worker *w);

#endif
