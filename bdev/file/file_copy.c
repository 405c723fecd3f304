/*
 * The copy engine of the file bdevs: one OS thread, not a reactor, that
 * stores large writes into the mapping of a tmpfs image (file_map.c) on a
 * CPU no reactor polls.
 *
 * Why. A 1 MiB write through the FUSE mount is copied twice on the
 * reactor: by the kernel into the receive buffer, then by us into the
 * image. With both copies on the reactor's core, bench/fs's seqwrite ran
 * at 0.74-0.76 of ext4 on a loop device, whose single copy runs in the
 * kernel's loop worker on whichever CPU is free. The engine does the same
 * with ours, as a DMA engine would take it off the CPUs altogether; the
 * reactor meanwhile reads the next request. On this project's 2-vCPU test
 * machine, bench/fs's seqwrite (1 MiB O_DIRECT writes at QD 4) went from
 * 6,157-6,807 to 8,257-8,442 MiB/s in its overwrite rounds, 0.88-0.91 of
 * ext4's figure in the same rounds.
 *
 * Only writes of FILE_COPY_MIN or more come here. The hand-off costs a
 * wake-up of the worker and a message back, and the worker reads data
 * the reactor's core has just written; it pays only when the reactor has
 * other requests to serve meanwhile. Throwaway fio runs on the mount,
 * engine against inline: 1 MiB writes at QD 4 7,100-8,300 against
 * 6,100-6,500 MiB/s, at QD 1 5,300-5,900 against 5,200-6,300 (no gain);
 * 512 KiB at QD 1 4,200-4,400 against a noisy 3,000-5,800, and 256 KiB
 * lost at QD 1 and 4 alike (the writer's own CPU work, four times the
 * requests per byte, competes with the worker there). Blobstore hands a
 * 1 MiB write on contiguous clusters down as one bdev I/O. Reads stay on
 * the reactor: their data is wanted there next, and the FUSE mount
 * answers reads from the mapping without copying anyway.
 *
 * The CPUs: every CPU outside the reactors' core mask. Where there is none
 * (every core polls), the engine does not start and every copy stays on
 * its reactor: a worker sharing a polling reactor's core only slows it.
 * Like the reactors, which the environment pins by the core mask, the
 * engine does not inherit the affinity the process was started with
 * (taskset); a cgroup's cpuset still bounds it, and where that leaves it
 * no CPU, pthread_create refuses and the copies stay inline.
 *
 * Lock-free for the submitter: jobs go through a many-producer ring. The
 * worker sleeps on a semaphore only once the ring is empty, and a producer
 * posts it only when the worker said it would sleep; a sequentially
 * consistent fence on each side between "publish mine" and "look at
 * theirs" means either the producer sees the flag or the worker sees the
 * job.
 *
 * Guarantees: a write taken by file_copy_submit() is copied exactly once
 * and completes through file_io_copied() on the ust_thread that submitted
 * it, with what the copy returned (a fault, the file truncated behind our
 * back, is -EIO as on the reactor). The engine stops, joined, when the
 * last mapped disk closes; the bdev layer has completed its I/O by then.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "ustor/cpuset.h"
#include "ustor/env.h"
#include "ustor/log.h"

#include "file_internal.h"

/* Smallest write handed over (see the top of the file); FUSE's largest WRITE is 1 MiB. */
#define FILE_COPY_MIN (1u << 20)
/* Jobs in flight; when full, a write is copied on the reactor. */
#define FILE_COPY_RING 1024

struct file_copy {
	pthread_mutex_t lock; /* start and stop */
	int refs;
	pthread_t worker;
	struct ust_ring *jobs;
	sem_t wake;
	atomic_bool running;  /* jobs are taken */
	atomic_bool sleeping; /* the worker found the ring empty and waits on wake */
	atomic_bool stop;
};

static struct file_copy g_copy = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void copy_done_msg(void *arg)
{
	struct file_io *fio = arg;

	file_io_copied(fio, fio->u.copy.result);
}

static void copy_run(struct file_io *fio)
{
	fio->u.copy.result = file_map_copy(fio);
	/* The target's ring may be full for a moment: the worker can wait. */
	while (ust_thread_send_msg(fio->u.copy.thread, copy_done_msg, fio) == -ENOMEM) {
		usleep(50);
	}
}

static void *copy_worker(void *arg)
{
	void *job;

	(void)arg;
	for (;;) {
		if (ust_ring_dequeue(g_copy.jobs, &job, 1) == 1) {
			copy_run(job);
			continue;
		}
		if (atomic_load(&g_copy.stop)) {
			break;
		}
		atomic_store(&g_copy.sleeping, true);
		atomic_thread_fence(memory_order_seq_cst);
		if (ust_ring_count(g_copy.jobs) > 0 || atomic_load(&g_copy.stop)) {
			atomic_store(&g_copy.sleeping, false);
			continue;
		}
		while (sem_wait(&g_copy.wake) != 0 && errno == EINTR) {
		}
	}
	return NULL;
}

/* Every configured CPU but the reactors' cores; false when that leaves none. */
static bool copy_cpus(cpu_set_t *set)
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
	return CPU_COUNT(set) > 0;
}

static void copy_log_cpus(const cpu_set_t *set)
{
	struct ust_cpuset cs;
	char buf[80];
	uint32_t i;

	ust_cpuset_zero(&cs);
	for (i = 0; i < UST_CPUSET_SIZE && i < CPU_SETSIZE; i++) {
		ust_cpuset_set(&cs, i, CPU_ISSET(i, set));
	}
	UST_NOTICELOG("file bdev copy engine on CPUs %s: writes of %u KiB or more into tmpfs "
		      "images are stored there\n", ust_cpuset_fmt(&cs, buf, sizeof(buf)),
		      FILE_COPY_MIN >> 10);
}

/* The worker, with every signal but the synchronous ones blocked (a fault in a copy is its own). */
static int copy_spawn(const cpu_set_t *cpus)
{
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
		rc = pthread_create(&g_copy.worker, &attr, copy_worker, NULL);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	pthread_attr_destroy(&attr);
	if (rc == 0) {
		pthread_setname_np(g_copy.worker, "ust_file_copy");
	}
	return -rc;
}

static int copy_start_locked(void)
{
	cpu_set_t cpus;
	int rc;

	if (!copy_cpus(&cpus)) {
		UST_NOTICELOG("file bdevs: no CPU outside the reactors' core mask; writes into "
			      "tmpfs images are copied on the reactors\n");
		return -ENODEV;
	}
	g_copy.jobs = ust_ring_create(UST_RING_MP_SC, FILE_COPY_RING, -1);
	if (g_copy.jobs == NULL) {
		return -ENOMEM;
	}
	if (sem_init(&g_copy.wake, 0, 0) != 0) {
		rc = -errno;
		ust_ring_free(g_copy.jobs);
		return rc;
	}
	atomic_store(&g_copy.stop, false);
	atomic_store(&g_copy.sleeping, false);
	rc = copy_spawn(&cpus);
	if (rc != 0) {
		UST_NOTICELOG("file bdevs: cannot start the copy engine (%s); writes into tmpfs "
			      "images are copied on the reactors\n", strerror(-rc));
		sem_destroy(&g_copy.wake);
		ust_ring_free(g_copy.jobs);
		return rc;
	}
	copy_log_cpus(&cpus);
	atomic_store(&g_copy.running, true);
	return 0;
}

int file_copy_start(void)
{
	int rc = 0;

	pthread_mutex_lock(&g_copy.lock);
	if (g_copy.refs == 0) {
		rc = copy_start_locked();
	}
	if (rc == 0) {
		g_copy.refs++;
	}
	pthread_mutex_unlock(&g_copy.lock);
	return rc;
}

void file_copy_stop(void)
{
	pthread_mutex_lock(&g_copy.lock);
	if (g_copy.refs > 0 && --g_copy.refs == 0) {
		atomic_store(&g_copy.running, false);
		atomic_store(&g_copy.stop, true);
		sem_post(&g_copy.wake);
		pthread_join(g_copy.worker, NULL);
		sem_destroy(&g_copy.wake);
		ust_ring_free(g_copy.jobs);
		g_copy.jobs = NULL;
	}
	pthread_mutex_unlock(&g_copy.lock);
}

bool file_copy_submit(struct file_io *fio)
{
	void *job = fio;

	if (!atomic_load_explicit(&g_copy.running, memory_order_acquire)) {
		return false;
	}
	if (file_io_slice_len(fio) < FILE_COPY_MIN) {
		return false;
	}
	fio->u.copy.thread = ust_get_thread();
	if (ust_ring_enqueue(g_copy.jobs, &job, 1) != 1) {
		return false;
	}
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_exchange(&g_copy.sleeping, false)) {
		sem_post(&g_copy.wake);
	}
	return true;
}
