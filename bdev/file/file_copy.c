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
 * The thread, its ring and its sleep are a ust_worker (core/worker.c): the
 * submitter takes no lock.
 *
 * Guarantees: a write taken by file_copy_submit() is copied exactly once
 * and completes through file_io_copied() on the ust_thread that submitted
 * it, with what the copy returned (a fault, the file truncated behind our
 * back, is -EIO as on the reactor). The engine stops, joined, when the
 * last mapped disk closes; the bdev layer has completed its I/O by then.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "ustor/log.h"
#include "ustor/worker.h"

#include "file_internal.h"

/* Smallest write handed over (see the top of the file); FUSE's largest WRITE is 1 MiB. */
#define FILE_COPY_MIN (1u << 20)
/* Jobs in flight; when full, a write is copied on the reactor. */
#define FILE_COPY_RING 1024

struct file_copy {
	pthread_mutex_t lock; /* start and stop */
	int refs;
	struct ust_worker *worker;
	atomic_bool running; /* jobs are taken */
};

static struct file_copy g_copy = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void copy_done_msg(void *arg)
{
	struct file_io *fio = arg;

	file_io_copied(fio, fio->u.copy.result);
}

static void copy_run(struct ust_worker_job *job)
{
	struct file_io *fio = (struct file_io *)((char *)job - offsetof(struct file_io, u.copy.job));

	fio->u.copy.result = file_map_copy(fio);
	ust_worker_send_msg(fio->u.copy.thread, copy_done_msg, fio);
}

static int copy_start_locked(void)
{
	char buf[80];
	int rc;

	rc = ust_worker_create("ust_file_copy", FILE_COPY_RING, &g_copy.worker);
	if (rc == -ENODEV) {
		UST_NOTICELOG("file bdevs: no worker CPU (none outside the reactors' core mask "
			      "and --worker-mask); writes into tmpfs images are copied on the "
			      "reactors\n");
		return rc;
	}
	if (rc != 0) {
		UST_NOTICELOG("file bdevs: cannot start the copy engine (%s); writes into tmpfs "
			      "images are copied on the reactors\n", strerror(-rc));
		return rc;
	}
	UST_NOTICELOG("file bdev copy engine on CPUs %s: writes of %u KiB or more into tmpfs "
		      "images are stored there\n",
		      ust_cpuset_fmt(ust_worker_get_cpumask(g_copy.worker), buf, sizeof(buf)),
		      FILE_COPY_MIN >> 10);
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
		ust_worker_destroy(g_copy.worker);
		g_copy.worker = NULL;
	}
	pthread_mutex_unlock(&g_copy.lock);
}

bool file_copy_submit(struct file_io *fio)
{
	if (!atomic_load_explicit(&g_copy.running, memory_order_acquire)) {
		return false;
	}
	if (file_io_slice_len(fio) < FILE_COPY_MIN) {
		return false;
	}
	fio->u.copy.thread = ust_get_thread();
	fio->u.copy.job.fn = copy_run;
	return ust_worker_submit(g_copy.worker, &fio->u.copy.job);
}
