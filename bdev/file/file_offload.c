/*
 * The offload worker of the file bdevs: one OS thread (not a reactor) that
 * runs the blocking calls a backend cannot issue asynchronously -
 * fdatasync() and fallocate() for libaio, and for io_uring kernels without
 * IORING_OP_FALLOCATE - so that no reactor ever blocks on them.
 *
 * Guarantees: every submitted job runs once, in submission order, and its
 * done callback runs on the ust_thread that submitted it. The queue lock is
 * taken only for flush/unmap/write_zeroes, never for reads and writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "ustor/log.h"

#include "file_internal.h"

struct file_offload {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	STAILQ_HEAD(, file_offload_job) jobs;
	pthread_t worker;
	bool running;
	bool stop;
	int refs;
};

static struct file_offload g_offload = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
	.jobs = STAILQ_HEAD_INITIALIZER(g_offload.jobs),
};

static int offload_fallocate(int fd, int mode, uint64_t offset, uint64_t len)
{
	if (fallocate(fd, mode, (off_t)offset, (off_t)len) == 0)
		return 0;
	return -errno;
}

/* Zero a range: ZERO_RANGE where the filesystem has it, else punch a hole. */
static int offload_write_zeroes(int fd, uint64_t offset, uint64_t len)
{
	int rc = offload_fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, len);

	if (rc == -EOPNOTSUPP || rc == -EINVAL)
		rc = offload_fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len);
	return rc;
}

static int offload_run(struct file_offload_job *job)
{
	switch (job->op) {
	case FILE_OP_FLUSH:
		return fdatasync(job->fd) == 0 ? 0 : -errno;
	case FILE_OP_UNMAP:
		return offload_fallocate(job->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					 job->offset, job->len);
	case FILE_OP_WRITE_ZEROES:
		return offload_write_zeroes(job->fd, job->offset, job->len);
	default:
		return -EINVAL;
	}
}

static void offload_job_done_msg(void *arg)
{
	struct file_offload_job *job = arg;

	job->done(job);
}

static void offload_deliver(struct file_offload_job *job)
{
	/* The target's ring may be full for a moment: the worker can wait. */
	while (ust_thread_send_msg(job->thread, offload_job_done_msg, job) == -ENOMEM)
		usleep(50);
}

static void *offload_worker(void *arg)
{
	struct file_offload_job *job;

	pthread_mutex_lock(&g_offload.lock);
	for (;;) {
		while (STAILQ_EMPTY(&g_offload.jobs) && !g_offload.stop)
			pthread_cond_wait(&g_offload.cond, &g_offload.lock);
		job = STAILQ_FIRST(&g_offload.jobs);
		if (job == NULL)
			break; /* stop requested and nothing left */
		STAILQ_REMOVE_HEAD(&g_offload.jobs, link);
		pthread_mutex_unlock(&g_offload.lock);
		job->result = offload_run(job);
		offload_deliver(job);
		pthread_mutex_lock(&g_offload.lock);
	}
	pthread_mutex_unlock(&g_offload.lock);
	return NULL;
}

int file_offload_start(void)
{
	int rc = 0;

	pthread_mutex_lock(&g_offload.lock);
	if (g_offload.refs++ == 0) {
		g_offload.stop = false;
		rc = -pthread_create(&g_offload.worker, NULL, offload_worker, NULL);
		if (rc != 0) {
			g_offload.refs--;
			UST_ERRLOG("cannot start the file offload worker: %s\n", strerror(-rc));
		} else {
			pthread_setname_np(g_offload.worker, "ust_file_off");
			g_offload.running = true;
		}
	}
	pthread_mutex_unlock(&g_offload.lock);
	return rc;
}

void file_offload_stop(void)
{
	bool join = false;

	pthread_mutex_lock(&g_offload.lock);
	if (g_offload.refs > 0 && --g_offload.refs == 0 && g_offload.running) {
		g_offload.stop = true;
		g_offload.running = false;
		pthread_cond_signal(&g_offload.cond);
		join = true;
	}
	pthread_mutex_unlock(&g_offload.lock);
	if (join)
		pthread_join(g_offload.worker, NULL);
}

void file_offload_submit(struct file_offload_job *job)
{
	pthread_mutex_lock(&g_offload.lock);
	if (!g_offload.running) {
		pthread_mutex_unlock(&g_offload.lock);
		job->result = -ENODEV;
		job->done(job);
		return;
	}
	STAILQ_INSERT_TAIL(&g_offload.jobs, job, link);
	pthread_cond_signal(&g_offload.cond);
	pthread_mutex_unlock(&g_offload.lock);
}

static void file_io_offload_done(struct file_offload_job *job)
{
	struct file_io *fio = (struct file_io *)((uint8_t *)job - offsetof(struct file_io, u.job));

	file_io_done(fio, job->result);
}

void file_io_offload(struct file_io *fio)
{
	struct file_offload_job *job = &fio->u.job;

	memset(job, 0, sizeof(*job));
	job->fd = fio->disk->fd;
	job->op = fio->op;
	job->offset = fio->offset;
	job->len = fio->len;
	job->thread = ust_get_thread();
	job->done = file_io_offload_done;
	file_offload_submit(job);
}
