/*
 * Workers (include/ustor/worker.h): one OS thread each, on the CPUs outside
 * the reactors' core mask (and within --worker-mask, where given), fed
 * through a many-producer ring.
 *
 * Why not a reactor. A reactor polls its core without pause; work handed
 * to a thread on the same core only slows it. A worker exists where there
 * is a CPU no reactor owns, and it sleeps when idle, so it costs nothing
 * until there is work.
 *
 * Lock-free for the submitter: the worker sleeps on a semaphore only once
 * the ring is empty, and a submitter posts it only when the worker said it
 * would sleep. A sequentially consistent fence on each side between
 * "publish mine" and "look at theirs" means either the submitter sees the
 * flag or the worker sees the job, so no job waits for a wake-up that never
 * comes.
 *
 * Guarantees: every job taken runs exactly once, in the order taken;
 * ust_worker_destroy() runs what is queued before it joins. Signals other
 * than the synchronous ones are blocked on the worker, so a fault in a job
 * is the job's own and every other signal goes to the application.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ustor/env.h"
#include "ustor/worker.h"

struct ust_worker {
	pthread_t thread;
	struct ust_ring *jobs;
	sem_t wake;
	atomic_bool sleeping; /* the worker found the ring empty and waits on wake */
	atomic_bool stop;
	struct ust_cpuset cpus;
};

/* ust_worker_set_cpumask's bound; only read when a worker is created. */
static pthread_mutex_t g_mask_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ust_cpuset g_mask;
static bool g_mask_set;

void ust_worker_set_cpumask(const struct ust_cpuset *mask)
{
	pthread_mutex_lock(&g_mask_lock);
	g_mask_set = mask != NULL;
	if (mask != NULL) {
		g_mask = *mask;
	}
	pthread_mutex_unlock(&g_mask_lock);
}

static void *worker_main(void *arg)
{
	struct ust_worker *w = arg;
	void *job;

	for (;;) {
		if (ust_ring_dequeue(w->jobs, &job, 1) == 1) {
			((struct ust_worker_job *)job)->fn(job);
			continue;
		}
		if (atomic_load(&w->stop)) {
			break;
		}
		atomic_store(&w->sleeping, true);
		atomic_thread_fence(memory_order_seq_cst);
		if (ust_ring_count(w->jobs) > 0 || atomic_load(&w->stop)) {
			atomic_store(&w->sleeping, false);
			continue;
		}
		while (sem_wait(&w->wake) != 0 && errno == EINTR) {
		}
	}
	return NULL;
}

/*
 * Every configured CPU but the reactors' cores, within the bound if one is
 * set, into both forms; false when that leaves none.
 */
static bool worker_cpus(cpu_set_t *set, struct ust_cpuset *cs)
{
	long n = sysconf(_SC_NPROCESSORS_CONF);
	uint32_t core;
	long i;

	CPU_ZERO(set);
	for (i = 0; i < n && i < CPU_SETSIZE; i++) {
		CPU_SET((int)i, set);
	}
	for (core = ust_env_get_first_core(); core != UINT32_MAX; core = ust_env_get_next_core(core)) {
		if (core < CPU_SETSIZE) {
			CPU_CLR((int)core, set);
		}
	}
	pthread_mutex_lock(&g_mask_lock);
	for (i = 0; g_mask_set && i < CPU_SETSIZE; i++) {
		if (i >= UST_CPUSET_SIZE || !ust_cpuset_get(&g_mask, (uint32_t)i)) {
			CPU_CLR((int)i, set);
		}
	}
	pthread_mutex_unlock(&g_mask_lock);
	ust_cpuset_zero(cs);
	for (i = 0; i < UST_CPUSET_SIZE && i < CPU_SETSIZE; i++) {
		ust_cpuset_set(cs, (uint32_t)i, CPU_ISSET((int)i, set));
	}
	return CPU_COUNT(set) > 0;
}

static int worker_spawn(struct ust_worker *w, const cpu_set_t *cpus, const char *name)
{
	char tname[16];
	sigset_t all, old;
	pthread_attr_t attr;
	int rc;

	rc = pthread_attr_init(&attr);
	if (rc != 0) {
		return -rc;
	}
	rc = pthread_attr_setaffinity_np(&attr, sizeof(*cpus), cpus);
	if (rc == 0) {
		sigfillset(&all);
		sigdelset(&all, SIGBUS);
		sigdelset(&all, SIGSEGV);
		sigdelset(&all, SIGFPE);
		sigdelset(&all, SIGILL);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		rc = pthread_create(&w->thread, &attr, worker_main, w);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	pthread_attr_destroy(&attr);
	if (rc == 0) {
		snprintf(tname, sizeof(tname), "%s", name);
		pthread_setname_np(w->thread, tname);
	}
	return -rc;
}

int ust_worker_create(const char *name, uint32_t depth, struct ust_worker **out)
{
	struct ust_worker *w;
	cpu_set_t cpus;
	int rc;

	*out = NULL;
	if (name == NULL || depth == 0) {
		return -EINVAL;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		return -ENOMEM;
	}
	if (!worker_cpus(&cpus, &w->cpus)) {
		free(w);
		return -ENODEV;
	}
	w->jobs = ust_ring_create(UST_RING_MP_SC, depth, -1);
	if (w->jobs == NULL) {
		free(w);
		return -ENOMEM;
	}
	if (sem_init(&w->wake, 0, 0) != 0) {
		rc = -errno;
		ust_ring_free(w->jobs);
		free(w);
		return rc;
	}
	rc = worker_spawn(w, &cpus, name);
	if (rc != 0) {
		sem_destroy(&w->wake);
		ust_ring_free(w->jobs);
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

const struct ust_cpuset *ust_worker_get_cpumask(const struct ust_worker *w)
{
	return &w->cpus;
}

bool ust_worker_submit(struct ust_worker *w, struct ust_worker_job *job)
{
	void *p = job;

	if (ust_ring_enqueue(w->jobs, &p, 1) != 1) {
		return false;
	}
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_exchange(&w->sleeping, false)) {
		sem_post(&w->wake);
	}
	return true;
}

void ust_worker_send_msg(const struct ust_thread *thread, ust_msg_fn fn, void *ctx)
{
	while (ust_thread_send_msg(thread, fn, ctx) == -ENOMEM) {
		usleep(50);
	}
}

void ust_worker_destroy(struct ust_worker *w)
{
	if (w == NULL) {
		return;
	}
	atomic_store(&w->stop, true);
	atomic_thread_fence(memory_order_seq_cst);
	sem_post(&w->wake);
	pthread_join(w->thread, NULL);
	sem_destroy(&w->wake);
	ust_ring_free(w->jobs);
	free(w);
}
