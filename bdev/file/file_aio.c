/*
 * The "aio" bdev module: file bdevs served through Linux native AIO
 * (libaio), and its RPCs bdev_aio_create, bdev_aio_delete, bdev_aio_rescan
 * (with the deprecated names construct_aio_bdev and delete_aio_bdev).
 *
 * Each thread that does I/O to any aio bdev owns one io_context, reaped by
 * one poller with io_getevents(min 0), so the reactor never sleeps in the
 * kernel. Reads and writes are vectored iocbs; flush is IOCB_CMD_FDSYNC
 * where the kernel and filesystem accept it and otherwise, like unmap and
 * write_zeroes (which AIO cannot express), runs on the offload worker.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"
#include "ustor/rpc.h"

#include "file_internal.h"

#define AIO_REAP_BATCH 64

struct aio_group {
	io_context_t ctx;
	struct ust_poller *poller;
	uint32_t outstanding;
};

static struct ust_bdev_module g_aio_module;

static int aio_submit(void *group_ctx, struct file_io *fio);

/* The kernel gives this process aio contexts (see file_backend.probe). */
static int aio_probe(void)
{
	io_context_t ctx = 0;
	int rc = io_setup(1, &ctx);

	if (rc < 0)
		return rc;
	io_destroy(ctx);
	return 0;
}

static const struct file_backend g_aio_backend = {
	.name = "aio",
	.module = &g_aio_module,
	.group_device = (void *)&g_aio_backend,
	.submit = aio_submit,
	.probe = aio_probe,
	.readonly_option = true,
};

static int aio_group_poll(void *arg)
{
	struct aio_group *group = arg;
	struct io_event events[AIO_REAP_BATCH];
	struct timespec zero = {0, 0};
	int n, i;

	if (group->outstanding == 0)
		return UST_POLLER_IDLE;
	n = io_getevents(group->ctx, 0, AIO_REAP_BATCH, events, &zero);
	if (n <= 0) {
		if (n < 0 && n != -EINTR)
			UST_ERRLOG("io_getevents: %s\n", strerror(-n));
		return UST_POLLER_IDLE;
	}
	for (i = 0; i < n; i++) {
		struct file_io *fio = events[i].data;

		group->outstanding--;
		/* res carries a byte count or a negative errno in a long. */
		file_io_done(fio, (int64_t)(long)events[i].res);
	}
	return UST_POLLER_BUSY;
}

static int aio_group_create(void *io_device, void *ctx_buf)
{
	struct aio_group *group = ctx_buf;
	int rc;

	rc = io_setup(FILE_QUEUE_DEPTH, &group->ctx);
	if (rc < 0) {
		UST_ERRLOG("io_setup(%d): %s (see /proc/sys/fs/aio-max-nr)\n", FILE_QUEUE_DEPTH,
			   strerror(-rc));
		return rc;
	}
	group->poller = ust_poller_register(aio_group_poll, group, 0, "aio_group");
	if (group->poller == NULL) {
		io_destroy(group->ctx);
		return -ENOMEM;
	}
	return 0;
}

static void aio_group_destroy(void *io_device, void *ctx_buf)
{
	struct aio_group *group = ctx_buf;

	if (group->outstanding != 0)
		UST_ERRLOG("aio channel destroyed with %u I/O in flight\n", group->outstanding);
	ust_poller_unregister(&group->poller);
	io_destroy(group->ctx);
}

static void aio_prep(struct file_io *fio)
{
	struct iocb *iocb = &fio->u.iocb;
	int fd = fio->disk->fd;
	long long off = (long long)(fio->offset + fio->done);

	switch (fio->op) {
	case FILE_OP_READ:
		io_prep_preadv(iocb, fd, fio->slice, fio->slice_cnt, off);
		break;
	case FILE_OP_WRITE:
		io_prep_pwritev(iocb, fd, fio->slice, fio->slice_cnt, off);
		break;
	default:
		io_prep_fdsync(iocb, fd);
		break;
	}
	iocb->data = fio;
}

static int aio_submit(void *group_ctx, struct file_io *fio)
{
	struct aio_group *group = group_ctx;
	struct iocb *iocb = &fio->u.iocb;
	int rc;

	if (fio->op == FILE_OP_UNMAP || fio->op == FILE_OP_WRITE_ZEROES ||
	    (fio->op == FILE_OP_FLUSH && fio->disk->no_aio_fdsync)) {
		file_io_offload(fio);
		return 0;
	}
	if (group->outstanding >= FILE_QUEUE_DEPTH)
		return -EAGAIN;
	aio_prep(fio);
	rc = io_submit(group->ctx, 1, &iocb);
	if (rc == 1) {
		group->outstanding++;
		return 0;
	}
	if (fio->op == FILE_OP_FLUSH && rc == -EINVAL) {
		UST_NOTICELOG("%s: the kernel has no AIO fdsync for this file; flushing on the "
			      "offload worker\n", fio->disk->filename);
		fio->disk->no_aio_fdsync = true;
		file_io_offload(fio);
		return 0;
	}
	return rc < 0 ? rc : -EIO;
}

/* ---- module ------------------------------------------------------------- */

static int aio_module_init(void)
{
	int rc = file_module_common_init();

	if (rc != 0)
		return rc;
	ust_io_device_register(g_aio_backend.group_device, aio_group_create, aio_group_destroy,
			       sizeof(struct aio_group), "aio_group");
	return 0;
}

static void aio_module_fini(void)
{
	ust_io_device_unregister(g_aio_backend.group_device, NULL);
	file_module_common_fini();
}

static struct ust_bdev_module g_aio_module = {
	.name = "aio",
	.module_init = aio_module_init,
	.module_fini = aio_module_fini,
	.get_ctx_size = file_get_ctx_size,
};
UST_BDEV_MODULE_REGISTER(aio, &g_aio_module)

int ust_bdev_aio_create(const struct ust_bdev_file_opts *opts, struct ust_bdev **bdev)
{
	return file_disk_create(&g_aio_backend, opts, bdev);
}

int ust_bdev_aio_delete(const char *name, void (*cb)(void *ctx, int rc), void *ctx)
{
	return file_disk_delete(&g_aio_backend, name, cb, ctx);
}

int ust_bdev_aio_rescan(const char *name)
{
	return file_disk_rescan(&g_aio_backend, name);
}

/* ---- RPCs (bodies in file_rpc.c) ---------------------------------------- */

static void rpc_bdev_aio_create(struct ust_rpc_request *req, const json_t *params)
{
	file_rpc_create(&g_aio_backend, req, params);
}
UST_RPC_REGISTER("bdev_aio_create", rpc_bdev_aio_create, UST_RPC_STARTUP | UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_aio_create", construct_aio_bdev)

static void rpc_bdev_aio_delete(struct ust_rpc_request *req, const json_t *params)
{
	file_rpc_delete(&g_aio_backend, req, params);
}
UST_RPC_REGISTER("bdev_aio_delete", rpc_bdev_aio_delete, UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_aio_delete", delete_aio_bdev)

static void rpc_bdev_aio_rescan(struct ust_rpc_request *req, const json_t *params)
{
	file_rpc_rescan(&g_aio_backend, req, params);
}
UST_RPC_REGISTER("bdev_aio_rescan", rpc_bdev_aio_rescan, UST_RPC_RUNTIME)
