/*
 * The "uring" bdev module: file bdevs served through io_uring (liburing),
 * and its RPCs bdev_uring_create, bdev_uring_delete and bdev_uring_rescan.
 *
 * Each thread that does I/O to any uring bdev owns one ring. Submissions
 * only queue SQEs; the thread's poller hands them to the kernel in one
 * io_uring_submit() per iteration (a batch) and reaps completions without
 * waiting. Every operation is asynchronous in the kernel: readv/writev,
 * fsync with IORING_FSYNC_DATASYNC, and fallocate for unmap (punch hole)
 * and write_zeroes (zero range, or punch hole where the filesystem has no
 * zero range); kernels without IORING_OP_FALLOCATE use the offload worker.
 * The ring signals an eventfd on every completion, which the poller names as
 * its interrupt fd, so an adaptive reactor can sleep with I/O in flight and
 * still wake at the completion.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ustor/log.h"
#include "ustor/rpc.h"

#include "file_internal.h"

#define URING_REAP_BATCH 64

struct uring_group {
	struct io_uring ring;
	struct ust_poller *poller;
	uint32_t outstanding; /* SQEs queued or in the kernel */
	uint32_t unsubmitted; /* SQEs not yet handed to the kernel */
	bool has_fallocate;
	/*
	 * The kernel signals efd for every CQE, so a sleeping reactor wakes on
	 * completions instead of every 500 us (ust_poller_set_interrupt_fd).
	 * efd_quiet: drained and the CQ seen empty since the last CQE reaped,
	 * so idle polls skip the read(2).
	 */
	int efd;
	bool efd_quiet;
	bool efd_armed; /* the poller's interrupt fd is set */
};

static struct ust_bdev_module g_uring_module;

static int uring_submit(void *group_ctx, struct file_io *fio);
static int uring_probe(void);

static const struct file_backend g_uring_backend = {
	.name = "uring",
	.module = &g_uring_module,
	.group_device = (void *)&g_uring_backend,
	.submit = uring_submit,
	.probe = uring_probe,
};

/*
 * A write_zeroes is first tried as ZERO_RANGE; filesystems without it get
 * a hole punched instead, which reads back as zeroes as well. The retry is
 * marked in the file_io's done field (unused by non-transfer ops).
 */
#define URING_WZ_PUNCH_RETRY 1

static void uring_reap_one(struct uring_group *group, struct io_uring_cqe *cqe)
{
	struct file_io *fio = io_uring_cqe_get_data(cqe);
	int res = cqe->res;

	group->outstanding--;
	if (fio->op == FILE_OP_WRITE_ZEROES && (res == -EOPNOTSUPP || res == -EINVAL) &&
	    fio->done != URING_WZ_PUNCH_RETRY) {
		fio->done = URING_WZ_PUNCH_RETRY;
		res = uring_submit(group, fio);
		if (res == 0)
			return;
	}
	file_io_done(fio, res);
}

static unsigned int uring_reap(struct uring_group *group)
{
	struct io_uring_cqe *cqes[URING_REAP_BATCH];
	unsigned int n, i;

	n = io_uring_peek_batch_cqe(&group->ring, cqes, URING_REAP_BATCH);
	for (i = 0; i < n; i++) {
		struct io_uring_cqe cqe = *cqes[i];

		/* Give the slot back before completing: the callback may submit. */
		io_uring_cqe_seen(&group->ring, cqes[i]);
		uring_reap_one(group, &cqe);
	}
	if (n > 0)
		group->efd_quiet = false;
	return n;
}

/*
 * Nothing was reaped: drain the eventfd, then look once more, so a CQE
 * posted after the look signals the fd again and wakes a sleeping reactor.
 */
static unsigned int uring_quiesce(struct uring_group *group)
{
	uint64_t count;

	if (group->efd < 0 || group->efd_quiet)
		return 0;
	if (read(group->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		UST_ERRLOG("uring eventfd read: %s\n", strerror(errno));
	group->efd_quiet = true;
	return uring_reap(group);
}

/*
 * SQEs the kernel refused to take (EAGAIN/EBUSY) produce no event: while
 * any wait, the poller gives up its interrupt fd and is polled regularly.
 */
static void uring_update_interrupt(struct uring_group *group)
{
	bool want = group->efd >= 0 && group->unsubmitted == 0;

	if (want != group->efd_armed &&
	    ust_poller_set_interrupt_fd(group->poller, want ? group->efd : -1) == 0)
		group->efd_armed = want;
}

static int uring_group_poll(void *arg)
{
	struct uring_group *group = arg;
	unsigned int n = 0;
	int busy = UST_POLLER_IDLE;

	if (group->unsubmitted > 0) {
		int rc = io_uring_submit(&group->ring);

		if (rc >= 0) {
			group->unsubmitted -= (uint32_t)rc < group->unsubmitted ? (uint32_t)rc :
										 group->unsubmitted;
			busy = UST_POLLER_BUSY;
		} else if (rc != -EAGAIN && rc != -EBUSY && rc != -EINTR) {
			UST_ERRLOG("io_uring_submit: %s\n", strerror(-rc));
		}
	}
	if (group->outstanding > 0)
		n = uring_reap(group);
	/*
	 * Also with nothing outstanding: the last completion signalled the
	 * eventfd, and an undrained eventfd stays readable, so a sleeping
	 * reactor would return from ppoll at once, forever.
	 */
	if (n == 0 && busy == UST_POLLER_IDLE)
		n = uring_quiesce(group);
	uring_update_interrupt(group);
	return n > 0 ? UST_POLLER_BUSY : busy;
}

static bool uring_probe_fallocate(struct io_uring *ring)
{
	struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
	bool ok;

	if (probe == NULL)
		return false;
	ok = io_uring_opcode_supported(probe, IORING_OP_FALLOCATE);
	io_uring_free_probe(probe);
	return ok;
}

/* Without the eventfd the poller is simply polled every 500 us when asleep. */
static void uring_group_open_eventfd(struct uring_group *group)
{
	int rc;

	group->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (group->efd < 0) {
		UST_NOTICELOG("uring: eventfd: %s; completions are polled\n", strerror(errno));
		return;
	}
	rc = io_uring_register_eventfd(&group->ring, group->efd);
	if (rc < 0) {
		UST_NOTICELOG("uring: register eventfd: %s; completions are polled\n",
			      strerror(-rc));
		close(group->efd);
		group->efd = -1;
		return;
	}
	uring_update_interrupt(group);
}

static int uring_group_create(void *io_device, void *ctx_buf)
{
	struct uring_group *group = ctx_buf;
	int rc;

	group->efd = -1;
	rc = io_uring_queue_init(FILE_QUEUE_DEPTH, &group->ring, 0);
	if (rc < 0) {
		UST_ERRLOG("io_uring_queue_init(%d): %s\n", FILE_QUEUE_DEPTH, strerror(-rc));
		return rc;
	}
	group->has_fallocate = uring_probe_fallocate(&group->ring);
	group->poller = ust_poller_register(uring_group_poll, group, 0, "uring_group");
	if (group->poller == NULL) {
		io_uring_queue_exit(&group->ring);
		return -ENOMEM;
	}
	uring_group_open_eventfd(group);
	return 0;
}

static void uring_group_destroy(void *io_device, void *ctx_buf)
{
	struct uring_group *group = ctx_buf;

	if (group->outstanding != 0)
		UST_ERRLOG("uring channel destroyed with %u I/O in flight\n", group->outstanding);
	ust_poller_unregister(&group->poller);
	io_uring_queue_exit(&group->ring);
	if (group->efd >= 0)
		close(group->efd);
}

static void uring_prep(struct io_uring_sqe *sqe, struct file_io *fio)
{
	int fd = fio->disk->fd;

	switch (fio->op) {
	case FILE_OP_READ:
		io_uring_prep_readv(sqe, fd, fio->slice, (unsigned int)fio->slice_cnt,
				    fio->offset + fio->done);
		break;
	case FILE_OP_WRITE:
		io_uring_prep_writev(sqe, fd, fio->slice, (unsigned int)fio->slice_cnt,
				     fio->offset + fio->done);
		break;
	case FILE_OP_FLUSH:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	case FILE_OP_UNMAP:
		io_uring_prep_fallocate(sqe, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					fio->offset, fio->len);
		break;
	case FILE_OP_WRITE_ZEROES:
		io_uring_prep_fallocate(sqe, fd,
					(fio->done == URING_WZ_PUNCH_RETRY ? FALLOC_FL_PUNCH_HOLE :
									     FALLOC_FL_ZERO_RANGE) |
						FALLOC_FL_KEEP_SIZE,
					fio->offset, fio->len);
		break;
	}
	io_uring_sqe_set_data(sqe, fio);
}

static int uring_submit(void *group_ctx, struct file_io *fio)
{
	struct uring_group *group = group_ctx;
	struct io_uring_sqe *sqe;

	if ((fio->op == FILE_OP_UNMAP || fio->op == FILE_OP_WRITE_ZEROES) &&
	    !group->has_fallocate) {
		file_io_offload(fio);
		return 0;
	}
	if (group->outstanding >= FILE_QUEUE_DEPTH)
		return -EAGAIN;
	sqe = io_uring_get_sqe(&group->ring);
	if (sqe == NULL) {
		/* The SQ ring is full of unsubmitted entries: hand them over now. */
		int rc = io_uring_submit(&group->ring);

		if (rc > 0)
			group->unsubmitted -= (uint32_t)rc < group->unsubmitted ?
						      (uint32_t)rc : group->unsubmitted;
		sqe = io_uring_get_sqe(&group->ring);
		if (sqe == NULL)
			return -EAGAIN;
	}
	uring_prep(sqe, fio);
	group->outstanding++;
	group->unsubmitted++;
	return 0;
}

/* The kernel gives this process rings (see file_backend.probe). */
static int uring_probe(void)
{
	struct io_uring ring;
	int rc = io_uring_queue_init(1, &ring, 0);

	if (rc < 0)
		return rc;
	io_uring_queue_exit(&ring);
	return 0;
}

/* ---- module ------------------------------------------------------------- */

static int uring_module_init(void)
{
	int rc = file_module_common_init();

	if (rc != 0)
		return rc;
	ust_io_device_register(g_uring_backend.group_device, uring_group_create,
			       uring_group_destroy, sizeof(struct uring_group), "uring_group");
	return 0;
}

static void uring_module_fini(void)
{
	ust_io_device_unregister(g_uring_backend.group_device, NULL);
	file_module_common_fini();
}

static struct ust_bdev_module g_uring_module = {
	.name = "uring",
	.module_init = uring_module_init,
	.module_fini = uring_module_fini,
	.get_ctx_size = file_get_ctx_size,
};
UST_BDEV_MODULE_REGISTER(uring, &g_uring_module)

int ust_bdev_uring_create(const struct ust_bdev_file_opts *opts, struct ust_bdev **bdev)
{
	if (opts != NULL && opts->readonly)
		return -EINVAL; /* not offered by bdev_uring_create */
	return file_disk_create(&g_uring_backend, opts, bdev);
}

int ust_bdev_uring_delete(const char *name, void (*cb)(void *ctx, int rc), void *ctx)
{
	return file_disk_delete(&g_uring_backend, name, cb, ctx);
}

int ust_bdev_uring_rescan(const char *name)
{
	return file_disk_rescan(&g_uring_backend, name);
}

/* ---- RPCs (bodies in file_rpc.c) ---------------------------------------- */

static void rpc_bdev_uring_create(struct ust_rpc_request *req, const json_t *params)
{
	file_rpc_create(&g_uring_backend, req, params);
}
UST_RPC_REGISTER("bdev_uring_create", rpc_bdev_uring_create, UST_RPC_STARTUP | UST_RPC_RUNTIME)

static void rpc_bdev_uring_delete(struct ust_rpc_request *req, const json_t *params)
{
	file_rpc_delete(&g_uring_backend, req, params);
}
UST_RPC_REGISTER("bdev_uring_delete", rpc_bdev_uring_delete, UST_RPC_RUNTIME)

static void rpc_bdev_uring_rescan(struct ust_rpc_request *req, const json_t *params)
{
	file_rpc_rescan(&g_uring_backend, req, params);
}
UST_RPC_REGISTER("bdev_uring_rescan", rpc_bdev_uring_rescan, UST_RPC_RUNTIME)
