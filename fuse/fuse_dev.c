/*
 * The /dev/fuse transport, served by the mount's own ust_thread.
 *
 * A poller on the mount's thread reads the session's /dev/fuse descriptor
 * (non-blocking) and hands each request to fuse_session_process_buf(), whose
 * handlers (fuse_ops.c) call blobfs right there: no thread hand-off between
 * the kernel and the file system. Replies are written by fuse_reply_*()
 * from the same thread (a write to /dev/fuse never waits).
 *
 * Knowing when to read, hot and cold. While requests keep coming (one was
 * served less than FDEV_HOT_US ago) the poller simply reads on every turn:
 * with nobody waiting on /dev/fuse, the kernel queues the application's
 * next request without waking anyone, and the reactor picks it up on its
 * next turn. Measured on this project's 2-core VM, that doubles the rate of
 * one-at-a-time requests (create, unlink, 4 KiB reads at QD 1) against
 * being woken for each one: every wake-up is an IPI and task work on the
 * reactor's core. Once idle for FDEV_HOT_US, a read(2) answering EAGAIN on
 * every turn would only burn system calls and the connection's queue lock,
 * so the poller goes cold: it arms a one-shot IORING_OP_POLL_ADD on
 * /dev/fuse in a small io_uring and looks only at the completion ring (in
 * memory) until the poll fires. The ring signals an eventfd, the poller's
 * interrupt fd (ust_poller_set_interrupt_fd), so an idle adaptive reactor
 * sleeps in ppoll until a request arrives. FDEV_HOT_US is below the
 * reactor's idle time before sleeping (core/reactor.c,
 * REACTOR_IDLE_BEFORE_SLEEP_US, 2 ms), so the poll is armed before the
 * reactor can sleep. Without io_uring (old kernel, disabled by sysctl) the
 * poller reads on every turn and /dev/fuse itself is the interrupt fd.
 *
 * Requests are read into large recycled buffers (fuse_buf.c) at an offset
 * chosen so that a WRITE's payload starts on a page boundary. A WRITE keeps
 * its buffer until it is answered (fmnt_rx_take), so blobfs writes straight
 * from what the kernel copied in; the poller then reads the next request
 * into a fresh buffer.
 *
 * Large WRITEs by splice. Read into our buffer, a WRITE's payload is
 * copied twice: by the kernel into the buffer, on the reactor, and by the
 * bdev from the buffer into the image (on a tmpfs image, a copy into its
 * mapping: on the reactor, or on the file bdev's copy engine from 1 MiB).
 * Spliced into a pipe, a buffered WRITE's payload is the page
 * cache's own pages, referenced and not copied (the kernel's
 * fuse_dev_splice_read; an O_DIRECT writer's pages are copied into new
 * pipe pages, as the kernel cannot hold them for the pipe's lifetime, so
 * those are read(2) instead: fdev_write_direct); the header is then read
 * out of the pipe, and fuse_ops.c has the payload read from the pipe
 * straight into the memory blobfs lends for it (ust_blobfs_write_fill), or
 * into the receive buffer where it cannot lend. A splice costs two more
 * system calls per request (the splice, the header's read), so the poller
 * splices only while large buffered WRITEs keep coming: a read(2) that
 * brings a WRITE of FMNT_RX_PIPE_MIN or more, not O_DIRECT, turns splicing
 * on; a spliced O_DIRECT one, or FDEV_SPLICE_MISSES spliced requests in a
 * row that are not large WRITEs, turn it off (a writer
 * that opens, writes and closes sends two other requests per WRITE; other
 * processes' requests come in between). The pipe is made large enough for
 * the largest request (FDEV_PIPE_SIZE: the kernel fails, with EIO, a
 * request whose pages do not fit); without that size (an unprivileged
 * daemon over /proc/sys/fs/pipe-max-size) or once blobfs cannot lend, the
 * poller only reads.
 *
 * Large READ answers off the reactor. The answer to a READ is written
 * from the memory blobfs lends (fuse_ops.c), and the write is the kernel's
 * copy of the data into the reader's pages, made by the thread that
 * writes: on the reactor it was most of the reactor's time in a
 * sequential read (a profile of bench/fs's seqread: 46 % the copy, 30 %
 * pinning and releasing the pages around it), while the CPU the reader
 * waits on stood at a fifth. Answers of FDEV_REPLY_MIN or more are
 * therefore written by a worker (core/worker.c) on the CPUs no reactor
 * polls, as the loop device's worker makes ext4's copy: the reactor reads
 * the next request meanwhile, and the two copy side by side. The worker
 * holds at most FDEV_REPLY_OUT answers; past that the reactor writes
 * inline, so both CPUs stay busy instead of one queueing for the other.
 * blobfs keeps the lent bytes for us until the answer is written
 * (ust_blobfs_lend_release). Without a CPU outside the core mask (or with
 * --worker-mask 0) there is no worker and every answer is inline.
 *
 * The calls that block - the kernel mount (mount(2) as root, fusermount3
 * otherwise), raising the bdi's readahead and the unmount - run on one
 * helper pthread per mount, never on a reactor. Signals are blocked there.
 *
 * Guarantees: after stop() or the end of the session (read answers ENODEV)
 * no request is read any more and "stopped" is reported once; after close()
 * the helper unmounts the kernel side (lazy detach, then closing /dev/fuse
 * aborts the connection, so nothing can hang on a request we will never
 * answer), destroys the session and posts "closed" as its very last access
 * to the mount.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ustor/log.h"

#include "fuse_internal.h"

/* A WRITE request's header: fuse_in_header + fuse_write_in (protocol 7.9+). */
#define FDEV_WRITE_HDR 80u
/* Where a request is read into its buffer: a WRITE's data lands page-aligned. */
#define FDEV_RX_OFF (4096u - FDEV_WRITE_HDR)
/* Requests read per poller call: bounded so other pollers and messages get their turn. */
#define FDEV_BATCH 16
/* Completions the readiness ring holds (one poll is armed at a time). */
#define FDEV_CQ_ENTRIES 4
/* Read on every turn for this long after the last request (see the top of the file). */
#define FDEV_HOT_US 500
/*
 * The splice pipe: a 1 MiB payload not page-aligned in the writer's memory
 * spans 257 pages, plus one for the header, and the size is a power of two.
 */
#define FDEV_PIPE_SIZE (2u << 20)
/* Spliced requests in a row that are not large WRITEs before the poller reads again. */
#define FDEV_SPLICE_MISSES 8
/*
 * READ answers taken by the worker (see the top of the file). Throwaway
 * fio runs of 1 MiB O_DIRECT reads at QD 4 on this project's 2-vCPU
 * machine: 5,000-8,100 MiB/s all inline, 7,900-10,000 with one answer at
 * the worker, 8,300-11,900 with two, 8,200-9,400 with three; the worker
 * alone taking every answer made 5,800-6,500 (one CPU copying, as inline,
 * plus the hand-offs).
 */
#define FDEV_REPLY_MIN (512u * 1024)
#define FDEV_REPLY_OUT 2
/* More pieces than blobfs lends a write in (UST_BLOB_FILL_IOV), and the receive buffer's one. */
#define FDEV_FILL_IOV 64

struct fdev {
	struct fmnt *m;
	int fd;                    /* the session's /dev/fuse, non-blocking */
	struct ust_poller *poller; /* mount thread */
	char *rx;                  /* the receive buffer; NULL once a request took it */

	/* Splice mode (mount thread): see the top of the file. */
	int pipe[2];          /* non-blocking; -1 when large WRITEs are only read */
	bool splice;          /* the next request is spliced */
	unsigned misses;      /* spliced requests in a row that were not large WRITEs */
	size_t pending;       /* the current WRITE's payload bytes still in the pipe */
	const char *pending_at; /* that request, as handed to libfuse */
	bool stopped;              /* mount thread: stopped was reported */
	bool ra_asked;             /* mount thread: the helper was asked to raise readahead */

	/* Readiness (mount thread): see the top of the file. */
	struct io_uring ring;
	bool ring_ok;  /* the ring and efd exist; otherwise read every turn */
	bool armed;    /* a one-shot poll of /dev/fuse is in the kernel */
	bool ready;    /* /dev/fuse may hold requests: read until EAGAIN */
	bool quiet;    /* efd drained and no completion seen since */
	int efd;       /* signalled by the ring on each completion */
	uint64_t hot_until; /* ticks: read on every turn until then */
	uint64_t hot_ticks; /* FDEV_HOT_US in ticks, computed once */

	/* READ answers written off the mount's thread: see the top of the file. */
	struct ust_worker *replier; /* NULL: every answer inline */
	unsigned replies_out;       /* mount thread: taken, done not run yet */

	/* The helper pthread: mount, readahead, unmount. */
	sem_t wake;
	atomic_bool ra_wanted;
	atomic_bool close_wanted;
};

/*
 * The kernel caps readahead at the bdi's default (128 KiB) whatever INIT
 * said; raise the mount's bdi to FMNT_MAX_IO so sequential reads come in
 * 1 MiB requests. Done after INIT is answered (the kernel applies INIT's
 * max_readahead as a cap when it takes the answer). Found through
 * /proc/self/mountinfo, not stat(2): a stat of the mount point would be a
 * FUSE request. Best effort (needs root; skipped for mount points that need
 * escaping).
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

/* ---- replies (mount thread) ------------------------------------------------ */

/*
 * libfuse writes every reply through these (fuse_session_custom_io). Only
 * writev matters: requests are read by the poller below, never by libfuse.
 */
static ssize_t fdev_io_read(int fd, void *buf, size_t len, void *userdata)
{
	(void)userdata;
	return read(fd, buf, len);
}

/*
 * Only a reply from lent memory can fault (cb_read_lend): pages of the
 * image vanished, the file cut behind our back. The kernel has already
 * answered that READ with EIO; say why, once per mount, and count it.
 */
static void fdev_reply_faulted(struct fmnt *m)
{
	atomic_fetch_add_explicit(&m->errors, 1, memory_order_relaxed);
	if (!m->reply_fault_logged) {
		m->reply_fault_logged = true;
		UST_ERRLOG("%s: a read's data vanished from under the reply (the image truncated "
			   "behind our back?); such reads fail with EIO\n", m->mountpoint);
	}
}

static ssize_t fdev_io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct fmnt *m = userdata;
	ssize_t n;

	fmnt_patch_reply(m, iov, count);
	n = writev(fd, iov, count);
	if (n < 0 && errno == EFAULT) {
		fdev_reply_faulted(m);
		errno = EFAULT;
	}
	return n;
}

static const struct fuse_custom_io g_fdev_io = {
	.read = fdev_io_read,
	.writev = fdev_io_writev,
};

/* ---- READ answers off the mount's thread ------------------------------------ */

static void fdev_reply_done(void *ctx)
{
	struct fmnt_areply *r = ctx;
	struct fmnt *m = r->m;
	struct fdev *d = m->tctx;

	d->replies_out--;
	if (r->rc == -EFAULT) {
		fdev_reply_faulted(m);
	} else if (r->rc != 0 && r->rc != -ENOENT) {
		/* ENOENT: the reader was interrupted, and the kernel no longer waits */
		atomic_fetch_add_explicit(&m->errors, 1, memory_order_relaxed);
		UST_ERRLOG("%s: cannot answer a READ: %s\n", m->mountpoint, strerror(-r->rc));
	}
	r->done(r);
}

/* On the worker: one writev, as libfuse would make it, then done on the mount's thread. */
static void fdev_reply_write(struct ust_worker_job *job)
{
	struct fmnt_areply *r = (struct fmnt_areply *)((char *)job - offsetof(struct fmnt_areply, job));
	struct fdev *d = r->m->tctx;
	struct fuse_out_header oh = {
		.len = (uint32_t)(sizeof(oh) + r->len),
		.error = 0,
		.unique = r->unique,
	};
	struct iovec iov[1 + FMNT_REPLY_IOV];
	ssize_t n;

	iov[0].iov_base = &oh;
	iov[0].iov_len = sizeof(oh);
	memcpy(&iov[1], r->iov, (size_t)r->iovcnt * sizeof(*iov));
	n = writev(d->fd, iov, r->iovcnt + 1);
	r->rc = n < 0 ? -errno : (size_t)n == oh.len ? 0 : -EIO;
	ust_worker_send_msg(r->m->thread, fdev_reply_done, r);
}

static bool fdev_reply_async(struct fmnt *m, struct fmnt_areply *r)
{
	struct fdev *d = m->tctx;

	if (d->replier == NULL || d->replies_out >= FDEV_REPLY_OUT || r->len < FDEV_REPLY_MIN ||
	    r->len > UINT32_MAX - sizeof(struct fuse_out_header) || r->iovcnt <= 0 ||
	    r->iovcnt > FMNT_REPLY_IOV) {
		return false;
	}
	r->m = m;
	r->job.fn = fdev_reply_write;
	if (!ust_worker_submit(d->replier, &r->job)) {
		return false;
	}
	d->replies_out++;
	atomic_fetch_add_explicit(&m->reads_replied_off, 1, memory_order_relaxed);
	return true;
}

static void fdev_replier_start(struct fdev *d)
{
	char buf[80];
	int rc;

	rc = ust_worker_create("ust_fuse_reply", FDEV_REPLY_OUT, &d->replier);
	if (rc == 0) {
		UST_NOTICELOG("%s: READ answers of %u KiB or more are written from CPUs %s\n",
			      d->m->mountpoint, FDEV_REPLY_MIN >> 10,
			      ust_cpuset_fmt(ust_worker_get_cpumask(d->replier), buf, sizeof(buf)));
	} else if (rc != -ENODEV) {
		UST_NOTICELOG("%s: no worker for READ answers (%s): all are written on the reactor\n",
			      d->m->mountpoint, strerror(-rc));
	}
}

/* ---- the poller (mount thread) ---------------------------------------------- */

static void fdev_report_stopped(struct fdev *d)
{
	ust_poller_unregister(&d->poller);
	if (!d->stopped) {
		d->stopped = true;
		fmnt_transport_stopped(d->m);
	}
}

void *fmnt_rx_take(struct fmnt *m, const void *p)
{
	struct fdev *d = m->tctx;
	char *rx = d->rx;

	if (rx == NULL || (const char *)p < rx || (const char *)p >= rx + FMNT_BUF_SIZE) {
		return NULL;
	}
	d->rx = NULL;
	return rx;
}

/* ---- splice mode (mount thread) -------------------------------------------- */

static void fdev_pipe_fini(struct fdev *d)
{
	if (d->pipe[0] >= 0) {
		close(d->pipe[0]);
		close(d->pipe[1]);
	}
	d->pipe[0] = d->pipe[1] = -1;
}

/* The pipe, at FDEV_PIPE_SIZE; none (d->pipe -1, splice never used) when it cannot be had. */
static void fdev_pipe_init(struct fdev *d)
{
	if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
		d->pipe[0] = d->pipe[1] = -1;
		return;
	}
	if (fcntl(d->pipe[1], F_SETPIPE_SZ, FDEV_PIPE_SIZE) < (int)FDEV_PIPE_SIZE) {
		UST_NOTICELOG("%s: no %u-byte pipe (%s): large writes are copied once more "
			      "(raise fs.pipe-max-size: scripts/setup.sh)\n",
			      d->m->mountpoint, FDEV_PIPE_SIZE, strerror(errno));
		fdev_pipe_fini(d);
	}
}

/*
 * Read exactly len bytes out of the pipe into iov (changed as it goes):
 * 0, -EFAULT, or -EIO if the pipe holds less. Everything is in the pipe
 * already, so this never waits.
 */
static int fdev_pipe_readv(struct fdev *d, struct iovec *iov, int iovcnt, size_t len)
{
	ssize_t r;

	while (len > 0) {
		r = readv(d->pipe[0], iov, iovcnt);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			return r < 0 && errno == EFAULT ? -EFAULT : -EIO;
		}
		len -= (size_t)r;
		while (iovcnt > 0 && (size_t)r >= iov->iov_len) {
			r -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

static int fdev_pipe_read(struct fdev *d, void *p, size_t len)
{
	struct iovec iov = {.iov_base = p, .iov_len = len};

	return fdev_pipe_readv(d, &iov, 1, len);
}

/*
 * Whatever a handler left of a payload (not taken, or taken in part before
 * a fault): read out and dropped until the pipe is empty again.
 */
static void fdev_pipe_drain(struct fdev *d)
{
	char scrap[16384];
	ssize_t r;

	do {
		r = read(d->pipe[0], scrap, sizeof(scrap));
	} while (r > 0 || (r < 0 && errno == EINTR));
	d->pending = 0;
}

/*
 * Whether WRITE request p comes from a file opened O_DIRECT (fuse_write_in's
 * flags are the file's open flags, protocol 7.9+). The kernel cannot lend
 * such a writer's pages to a pipe and copies them into new ones, so a splice
 * saves no copy and adds a page allocation per 4 KiB; read(2) into the
 * huge-page receive buffer (fuse_buf.c) costs less.
 */
static bool fdev_write_direct(const char *p)
{
	const struct fuse_write_in *wi = (const void *)(p + sizeof(struct fuse_in_header));

	return (wi->flags & O_DIRECT) != 0;
}

/*
 * The next request, spliced: as read(2) would return it, except that a
 * large WRITE's payload stays in the pipe (d->pending). -1 with errno as
 * read(2)'s; EIO when the pipe does not give back what went in.
 */
static ssize_t fdev_splice_in(struct fdev *d, char *p, size_t len)
{
	const struct fuse_in_header *ih = (const void *)p;
	ssize_t n = splice(d->fd, NULL, d->pipe[1], NULL, len, SPLICE_F_NONBLOCK);
	size_t head;

	if (n <= 0) {
		return n;
	}
	head = (size_t)n < FDEV_WRITE_HDR ? (size_t)n : FDEV_WRITE_HDR;
	if (fdev_pipe_read(d, p, head) != 0) {
		errno = EIO;
		return -1;
	}
	if (head == FDEV_WRITE_HDR && ih->opcode == FUSE_WRITE &&
	    (size_t)n - head >= FMNT_RX_PIPE_MIN) {
		d->pending = (size_t)n - head;
		d->pending_at = p;
		d->misses = 0;
		if (fdev_write_direct(p)) {
			d->splice = false; /* its payload was copied into the pipe: read the next */
		}
		return n;
	}
	if (++d->misses >= FDEV_SPLICE_MISSES) {
		d->splice = false;
	}
	if (fdev_pipe_read(d, p + head, (size_t)n - head) != 0) {
		errno = EIO;
		return -1;
	}
	return n;
}

/* A request read(2) in full: splice the next ones if this was a large WRITE from the page cache. */
static void fdev_splice_decide(struct fdev *d, const char *p, size_t n)
{
	const struct fuse_in_header *ih = (const void *)p;

	if (d->pipe[0] >= 0 && !d->m->no_write_lend && n >= FDEV_WRITE_HDR + FMNT_RX_PIPE_MIN &&
	    ih->opcode == FUSE_WRITE && !fdev_write_direct(p)) {
		d->splice = true;
		d->misses = 0;
	}
}

size_t fmnt_rx_pending(struct fmnt *m, const void *p)
{
	struct fdev *d = m->tctx;

	return d->pending > 0 && (const char *)p == d->pending_at + FDEV_WRITE_HDR ? d->pending : 0;
}

int fmnt_rx_fill(struct fmnt *m, const struct iovec *iov, int iovcnt)
{
	struct fdev *d = m->tctx;
	struct iovec v[FDEV_FILL_IOV];
	size_t total = 0;
	int i, rc;

	if (iovcnt <= 0 || iovcnt > FDEV_FILL_IOV) {
		return -EINVAL;
	}
	for (i = 0; i < iovcnt; i++) {
		v[i] = iov[i];
		total += iov[i].iov_len;
	}
	if (d->pending == 0 || total != d->pending) {
		return -EINVAL;
	}
	rc = fdev_pipe_readv(d, v, iovcnt, total);
	if (rc == 0) {
		d->pending = 0;
	}
	return rc;
}

/* ---- the poller (continued) ------------------------------------------------- */

/*
 * Read one request and process it. 1: a request was served; 0: none is
 * queued; -1: the session is over (or the transport cannot go on).
 */
static int fdev_serve_one(struct fdev *d)
{
	struct fmnt *m = d->m;
	struct fuse_buf buf;
	char *p;
	ssize_t n;

	if (d->rx == NULL) {
		d->rx = fbuf_get(m, FMNT_BUF_SIZE);
		if (d->rx == NULL) {
			return 0; /* memory is short: the request waits in the kernel */
		}
	}
	p = d->rx + FDEV_RX_OFF;
	if (d->splice && !m->no_write_lend) {
		n = fdev_splice_in(d, p, FMNT_BUF_SIZE - FDEV_RX_OFF);
	} else {
		n = read(d->fd, p, FMNT_BUF_SIZE - FDEV_RX_OFF);
		if (n > 0) {
			fdev_splice_decide(d, p, (size_t)n);
		}
	}
	if (n < 0) {
		switch (errno) {
		case EAGAIN:
			d->ready = false;
			return 0;
		case EINTR:
		case ENOENT: /* the request was interrupted before we read it */
			return 1;
		case ENODEV: /* unmounted */
			return -1;
		default:
			UST_ERRLOG("%s: reading /dev/fuse: %s\n", m->mountpoint, strerror(errno));
			return -1;
		}
	}
	if (n == 0) {
		return -1;
	}
	d->hot_until = ust_get_ticks() + d->hot_ticks;
	memset(&buf, 0, sizeof(buf));
	buf.mem = p;
	buf.size = (size_t)n;
	fmnt_note_request(m, buf.mem, buf.size);
	/* A payload still in the pipe is taken by the handler (fmnt_rx_fill) or dropped below. */
	fuse_session_process_buf(m->se, &buf);
	if (d->pending > 0) {
		fdev_pipe_drain(d);
	}
	return 1;
}

/* Take the completion of the readiness ring: the one-shot poll fired (or failed). */
static void fdev_reap(struct fdev *d)
{
	struct io_uring_cqe *cqes[FDEV_CQ_ENTRIES];
	unsigned int n;

	n = io_uring_peek_batch_cqe(&d->ring, cqes, FDEV_CQ_ENTRIES);
	io_uring_cq_advance(&d->ring, n);
	if (n > 0) {
		d->armed = false;
		d->ready = true;
		d->quiet = false;
	}
}

static void fdev_arm(struct fdev *d)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&d->ring);

	/* NULL: the poll prepared on an earlier turn was not taken; submit it again. */
	if (sqe != NULL) {
		io_uring_prep_poll_add(sqe, d->fd, POLLIN);
	}
	if (io_uring_submit(&d->ring) == 1) {
		d->armed = true;
	}
	/* Requests queued before the poll was armed post nothing; unarmed, read every turn. */
	d->ready = true;
}

/*
 * Is there anything to read? Hot: always try. Cold: only once the armed
 * poll fired; the eventfd is drained once per idle stretch (then the ring
 * is looked at once more, so a completion posted after the look signals it
 * again and wakes a sleeping reactor).
 */
static bool fdev_check_ready(struct fdev *d)
{
	uint64_t count;

	if (!d->ring_ok) {
		return true;
	}
	fdev_reap(d);
	if (d->ready || ust_get_ticks() < d->hot_until) {
		return true;
	}
	if (!d->quiet) {
		if (read(d->efd, &count, sizeof(count)) < 0 && errno != EAGAIN) {
			UST_ERRLOG("%s: fuse eventfd read: %s\n", d->m->mountpoint, strerror(errno));
		}
		d->quiet = true;
		fdev_reap(d);
	}
	if (!d->ready && !d->armed) {
		fdev_arm(d);
	}
	return d->ready;
}

static int fdev_poll(void *ctx)
{
	struct fdev *d = ctx;
	struct fmnt *m = d->m;
	int i, rc = 0;

	if (!fdev_check_ready(d)) {
		return UST_POLLER_IDLE;
	}
	for (i = 0; i < FDEV_BATCH; i++) {
		rc = fdev_serve_one(d);
		if (rc <= 0) {
			break;
		}
	}
	if (!d->ra_asked && atomic_load(&m->init_done)) {
		d->ra_asked = true;
		atomic_store(&d->ra_wanted, true);
		sem_post(&d->wake);
	}
	if (rc < 0 || fuse_session_exited(m->se)) {
		fdev_report_stopped(d);
		return UST_POLLER_BUSY;
	}
	return i > 0 ? UST_POLLER_BUSY : UST_POLLER_IDLE;
}

/* The readiness ring; false (and nothing to undo) when io_uring is not available. */
static bool fdev_ring_init(struct fdev *d)
{
	struct io_uring_params p;
	int rc;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = FDEV_CQ_ENTRIES;
	rc = io_uring_queue_init_params(1, &d->ring, &p);
	if (rc != 0) {
		UST_NOTICELOG("%s: io_uring: %s; /dev/fuse is read on every poll\n",
			      d->m->mountpoint, strerror(-rc));
		return false;
	}
	d->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	rc = d->efd < 0 ? -errno : io_uring_register_eventfd(&d->ring, d->efd);
	if (rc != 0) {
		UST_NOTICELOG("%s: io_uring eventfd: %s; /dev/fuse is read on every poll\n",
			      d->m->mountpoint, strerror(-rc));
		if (d->efd >= 0) {
			close(d->efd);
			d->efd = -1;
		}
		io_uring_queue_exit(&d->ring);
		return false;
	}
	return true;
}

/* Cancels the poll too: it holds a reference to /dev/fuse, whose close aborts the connection. */
static void fdev_ring_fini(struct fdev *d)
{
	if (!d->ring_ok) {
		return;
	}
	io_uring_queue_exit(&d->ring);
	close(d->efd);
	d->efd = -1;
	d->ring_ok = false;
}

/* The helper made the kernel mount: start serving. */
static void fdev_mounted(void *ctx)
{
	struct fmnt *m = ctx;
	struct fdev *d = m->tctx;
	int rc;

	/* Same descriptor, our writev: see fdev_io_writev. */
	rc = fuse_session_custom_io(m->se, &g_fdev_io, d->fd);
	if (rc != 0) {
		UST_ERRLOG("%s: cannot route libfuse's replies: %s\n", m->mountpoint, strerror(-rc));
		d->stopped = true;
		fmnt_transport_mounted(m, rc);
		return;
	}
	d->poller = ust_poller_register(fdev_poll, d, 0, "fuse_dev");
	if (d->poller == NULL) {
		UST_ERRLOG("%s: cannot register the /dev/fuse poller\n", m->mountpoint);
		d->stopped = true;
		fmnt_transport_mounted(m, -ENOMEM);
		return;
	}
	/* Here: the ring's completions are this thread's (task work of its submitter). */
	d->ring_ok = fdev_ring_init(d);
	fdev_pipe_init(d);
	fdev_replier_start(d);
	d->ready = true;
	d->hot_ticks = ust_get_ticks_hz() * FDEV_HOT_US / 1000000;
	rc = ust_poller_set_interrupt_fd(d->poller, d->ring_ok ? d->efd : d->fd);
	if (rc != 0) {
		/* The reactor then wakes now and then to poll: slower, still correct. */
		UST_WARNLOG("%s: /dev/fuse cannot wake the reactor: %s\n", m->mountpoint,
			    strerror(-rc));
	}
	fmnt_transport_mounted(m, 0);
}

static void fdev_mount_failed(void *ctx)
{
	struct fmnt *m = ctx;
	struct fdev *d = m->tctx;

	d->stopped = true;
	fmnt_transport_mounted(m, -EIO);
}

static void fdev_closed(void *ctx)
{
	fmnt_transport_closed(ctx);
}

/* ---- the helper pthread ------------------------------------------------------ */

static void fdev_wait(struct fdev *d)
{
	while (sem_wait(&d->wake) != 0) {
	}
}

static void *fdev_helper(void *arg)
{
	struct fdev *d = arg;
	struct fmnt *m = d->m;
	sigset_t all;
	int flags;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);

	if (fuse_session_mount(m->se, m->mountpoint) != 0) {
		UST_ERRLOG("cannot mount FUSE at %s\n", m->mountpoint);
		fmnt_post(m, fdev_mount_failed);
	} else {
		d->fd = fuse_session_fd(m->se);
		flags = fcntl(d->fd, F_GETFL);
		if (flags < 0 || fcntl(d->fd, F_SETFL, flags | O_NONBLOCK) != 0) {
			/* Cannot happen for /dev/fuse; serving it blocking would stall the reactor. */
			UST_ERRLOG("%s: cannot make /dev/fuse non-blocking\n", m->mountpoint);
			fmnt_post(m, fdev_mount_failed);
		} else {
			fmnt_post(m, fdev_mounted);
		}
	}
	for (;;) {
		fdev_wait(d);
		if (atomic_exchange(&d->ra_wanted, false)) {
			fdev_raise_readahead(m);
		}
		if (atomic_load(&d->close_wanted)) {
			break;
		}
	}
	/* Every request read is answered, and the poller is gone. */
	fuse_session_unmount(m->se);
	fuse_session_destroy(m->se);
	m->se = NULL;
	sem_destroy(&d->wake);
	free(d);
	fmnt_post(m, fdev_closed);
	return NULL;
}

/* ---- the transport interface (mount thread) ---------------------------------- */

static int fdev_start(struct fmnt *m)
{
	struct fdev *d = calloc(1, sizeof(*d));
	pthread_attr_t attr;
	pthread_t tid;
	int rc;

	if (d == NULL) {
		return -ENOMEM;
	}
	d->m = m;
	d->fd = -1;
	d->efd = -1;
	d->pipe[0] = d->pipe[1] = -1;
	if (sem_init(&d->wake, 0, 0) != 0) {
		rc = -errno;
		free(d);
		return rc;
	}
	m->tctx = d;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&tid, &attr, fdev_helper, d);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		m->tctx = NULL;
		sem_destroy(&d->wake);
		free(d);
		return -rc;
	}
	return 0;
}

static void fdev_stop(struct fmnt *m)
{
	struct fdev *d = m->tctx;

	if (d != NULL && !d->stopped) {
		fdev_report_stopped(d);
	}
}

static void fdev_close(struct fmnt *m)
{
	struct fdev *d = m->tctx;

	ust_poller_unregister(&d->poller);
	/* Every request is answered: the worker holds nothing. */
	ust_worker_destroy(d->replier);
	d->replier = NULL;
	fdev_ring_fini(d);
	fdev_pipe_fini(d);
	fbuf_put(m, d->rx, FMNT_BUF_SIZE);
	d->rx = NULL;
	atomic_store(&d->close_wanted, true);
	sem_post(&d->wake);
}

const struct fmnt_transport_ops g_fmnt_dev_transport = {
	.name = "dev",
	.start = fdev_start,
	.stop = fdev_stop,
	.close = fdev_close,
	.reply_async = fdev_reply_async,
};
