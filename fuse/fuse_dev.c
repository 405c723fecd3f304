/*
 * The /dev/fuse transport: one reader pthread per mount, never a reactor.
 *
 * The reader makes the kernel mount (fuse_session_mount: mount(2) as root,
 * fusermount3 otherwise - both block), then waits in poll(2) on the
 * session's /dev/fuse descriptor (non-blocking) and an eventfd, reads each
 * request with fuse_session_receive_buf() and hands it to
 * fuse_session_process_buf(), whose handlers (fuse_ops.c) copy it and
 * forward it to the mount's ust_thread. Replies are written by
 * fuse_reply_*() from the mount's thread.
 *
 * Guarantees: the reader never runs a file system operation itself; after
 * stop() it dispatches nothing more and posts "stopped"; after close() it
 * unmounts the kernel side (lazy detach, then closing /dev/fuse aborts the
 * connection, so nothing can hang on a request we will never answer),
 * destroys the session and posts "closed" as its very last access to the
 * mount. Signals are blocked in the reader so that blocking calls there are
 * not interrupted; the application's handlers run on the reactors.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ustor/log.h"

#include "fuse_internal.h"

struct fdev {
	struct fmnt *m;
	pthread_t tid;
	int efd;             /* stop(): wakes the reader's poll */
	atomic_bool stop;
	sem_t close_sem;     /* close(): lets the reader unmount and finish */
};

static void fdev_post_mounted_ok(void *ctx)
{
	fmnt_transport_mounted(ctx, 0);
}

static void fdev_post_mounted_fail(void *ctx)
{
	fmnt_transport_mounted(ctx, -EIO);
}

static void fdev_post_stopped(void *ctx)
{
	fmnt_transport_stopped(ctx);
}

static void fdev_post_closed(void *ctx)
{
	fmnt_transport_closed(ctx);
}

/*
 * The kernel caps readahead at the bdi's default (128 KiB) whatever INIT
 * said; raise the mount's bdi to FMNT_MAX_IO so sequential reads come in
 * 1 MiB requests. Found through /proc/self/mountinfo, not stat(2): a stat
 * of the mount point would wait for a getattr only this thread can read.
 * Best effort (needs root; skipped for mount points that need escaping).
 */
static void fdev_raise_readahead(struct fmnt *m)
{
	char line[4096], path[128], devno[32], mp[4096];
	unsigned int maj, min;
	bool found = false;
	FILE *f;
	int n;

	if (strpbrk(m->mountpoint, " \t\n\\") != NULL) {
		return;
	}
	f = fopen("/proc/self/mountinfo", "re");
	if (f == NULL) {
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		/* id parent maj:min root mountpoint ... */
		if (sscanf(line, "%*d %*d %u:%u %*s %4095s", &maj, &min, mp) == 3 &&
		    strcmp(mp, m->mountpoint) == 0) {
			found = true; /* the last one is ours */
			snprintf(devno, sizeof(devno), "%u:%u", maj, min);
		}
	}
	fclose(f);
	if (!found) {
		return;
	}
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", devno);
	f = fopen(path, "we");
	if (f == NULL) {
		return;
	}
	n = fprintf(f, "%u\n", FMNT_MAX_IO / 1024);
	if (fclose(f) != 0 || n < 0) {
		UST_INFOLOG("%s: cannot raise readahead in %s\n", m->mountpoint, path);
	}
}

/* Read and process requests until stop() or the end of the session. */
static void fdev_loop(struct fdev *d)
{
	struct fmnt *m = d->m;
	struct fuse_session *se = m->se;
	struct fuse_buf buf;
	struct pollfd pfd[2];
	uint64_t v;
	int fd = fuse_session_fd(se);
	bool ra_done = false;
	int flags, rc;

	memset(&buf, 0, sizeof(buf));
	flags = fcntl(fd, F_GETFL);
	if (flags >= 0) {
		fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	}
	while (!atomic_load(&d->stop) && !fuse_session_exited(se)) {
		pfd[0].fd = fd;
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		pfd[1].fd = d->efd;
		pfd[1].events = POLLIN;
		pfd[1].revents = 0;
		rc = poll(pfd, 2, -1);
		if (rc < 0) {
			if (errno == EINTR) {
				continue;
			}
			UST_ERRLOG("%s: poll on /dev/fuse: %s\n", m->mountpoint, strerror(errno));
			break;
		}
		if (pfd[1].revents != 0) {
			if (read(d->efd, &v, sizeof(v)) < 0) {
				/* the flag decides, not the counter */
			}
			continue;
		}
		if ((pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0 &&
		    (pfd[0].revents & POLLIN) == 0) {
			break; /* the kernel ended the connection */
		}
		rc = fuse_session_receive_buf(se, &buf);
		if (rc == -EINTR || rc == -EAGAIN) {
			continue;
		}
		if (rc <= 0) {
			if (rc < 0 && rc != -ENODEV) {
				UST_ERRLOG("%s: reading /dev/fuse: %s\n", m->mountpoint,
					   strerror(-rc));
			}
			break; /* 0 or -ENODEV: unmounted */
		}
		fuse_session_process_buf(se, &buf);
		if (!ra_done && atomic_load(&m->init_done)) {
			/* INIT is answered (inside process_buf): the kernel has set its limits */
			ra_done = true;
			fdev_raise_readahead(m);
		}
	}
	free(buf.mem);
}

static void *fdev_main(void *arg)
{
	struct fdev *d = arg;
	struct fmnt *m = d->m;
	sigset_t all;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);

	rc = fuse_session_mount(m->se, m->mountpoint);
	if (rc != 0) {
		UST_ERRLOG("cannot mount FUSE at %s\n", m->mountpoint);
		fmnt_post(m, fdev_post_mounted_fail);
	} else {
		fmnt_post(m, fdev_post_mounted_ok);
		fdev_loop(d);
		fmnt_post(m, fdev_post_stopped);
	}
	/* Every dispatched request is answered once close() lets us go on. */
	while (sem_wait(&d->close_sem) != 0) {
	}
	fuse_session_unmount(m->se);
	fuse_session_destroy(m->se);
	m->se = NULL;
	m->tctx = NULL;
	close(d->efd);
	sem_destroy(&d->close_sem);
	free(d);
	fmnt_post(m, fdev_post_closed);
	return NULL;
}

static int fdev_start(struct fmnt *m)
{
	struct fdev *d = calloc(1, sizeof(*d));
	pthread_attr_t attr;
	int rc;

	if (d == NULL) {
		return -ENOMEM;
	}
	d->m = m;
	d->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->efd < 0) {
		rc = -errno;
		free(d);
		return rc;
	}
	if (sem_init(&d->close_sem, 0, 0) != 0) {
		rc = -errno;
		close(d->efd);
		free(d);
		return rc;
	}
	m->tctx = d;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&d->tid, &attr, fdev_main, d);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		m->tctx = NULL;
		sem_destroy(&d->close_sem);
		close(d->efd);
		free(d);
		return -rc;
	}
	return 0;
}

static void fdev_stop(struct fmnt *m)
{
	struct fdev *d = m->tctx;
	uint64_t one = 1;

	if (d == NULL) {
		return;
	}
	atomic_store(&d->stop, true);
	if (write(d->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is already non-zero, the reader wakes anyway */
	}
}

static void fdev_close(struct fmnt *m)
{
	struct fdev *d = m->tctx;

	sem_post(&d->close_sem);
}

const struct fmnt_transport_ops g_fmnt_dev_transport = {
	.name = "dev",
	.start = fdev_start,
	.stop = fdev_stop,
	.close = fdev_close,
};
