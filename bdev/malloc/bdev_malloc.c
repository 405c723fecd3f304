/*
 * The malloc bdev module: RAM disks in DMA memory, and their RPCs
 * (bdev_malloc_create, bdev_malloc_delete and the old names
 * construct_malloc_bdev, delete_malloc_bdev).
 *
 * Every I/O is a memcpy/memset/memcmp done inside submit_request and
 * completed inline. The bdev core defers the consumer's callback to the
 * channel's deferred-completion poller, so a consumer that resubmits from
 * its callback never recurses and the stack stays flat; that costs one
 * list append per I/O and one poller pass per batch, which measured cheaper
 * than a thread message per completion and needs no per-module poller.
 *
 * Guarantees: a new disk reads as zeroes; unmap and write_zeroes zero the
 * range; compare reports UST_BDEV_IO_STATUS_MISCOMPARE (-EILSEQ) on a
 * difference; flush and reset succeed (there is nothing to flush or reset).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/rpc.h"

#include "../bdev_ramdisk.h"
#include "bdev_malloc.h"

struct malloc_disk {
	struct ust_bdev bdev;
	uint8_t *data;
	TAILQ_ENTRY(malloc_disk) link;
};

static TAILQ_HEAD(, malloc_disk) g_malloc_disks = TAILQ_HEAD_INITIALIZER(g_malloc_disks);
static pthread_mutex_t g_malloc_mutex = PTHREAD_MUTEX_INITIALIZER;

static int malloc_module_init(void);
static void malloc_module_fini(void);

static struct ust_bdev_module g_malloc_module = {
	.name = "malloc",
	.module_init = malloc_module_init,
	.module_fini = malloc_module_fini,
};

UST_BDEV_MODULE_REGISTER(malloc, &g_malloc_module)

/* The module's io_device: malloc channels hold nothing, but the core wants one. */
static int g_malloc_io_device;

static int malloc_module_init(void)
{
	bdev_ramdisk_io_device_register(&g_malloc_io_device, "bdev_malloc");
	return 0;
}

static void malloc_module_fini(void)
{
	ust_io_device_unregister(&g_malloc_io_device, NULL);
}

/* ---- I/O ---------------------------------------------------------------- */

static void malloc_copy(struct malloc_disk *disk, struct ust_bdev_io *io, bool to_disk)
{
	uint8_t *p = disk->data + io->offset_blocks * disk->bdev.blocklen;
	size_t left = io->num_blocks * disk->bdev.blocklen;
	int i;

	for (i = 0; i < io->iovcnt && left > 0; i++) {
		size_t n = io->iovs[i].iov_len < left ? io->iovs[i].iov_len : left;

		if (to_disk)
			memcpy(p, io->iovs[i].iov_base, n);
		else
			memcpy(io->iovs[i].iov_base, p, n);
		p += n;
		left -= n;
	}
}

static bool malloc_equal(struct malloc_disk *disk, struct ust_bdev_io *io)
{
	const uint8_t *p = disk->data + io->offset_blocks * disk->bdev.blocklen;
	size_t left = io->num_blocks * disk->bdev.blocklen;
	int i;

	for (i = 0; i < io->iovcnt && left > 0; i++) {
		size_t n = io->iovs[i].iov_len < left ? io->iovs[i].iov_len : left;

		if (memcmp(p, io->iovs[i].iov_base, n) != 0)
			return false;
		p += n;
		left -= n;
	}
	return true;
}

static void malloc_submit(struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct malloc_disk *disk = io->bdev->ctxt;
	uint32_t bs = disk->bdev.blocklen;

	switch (io->type) {
	case UST_BDEV_IO_TYPE_READ:
		malloc_copy(disk, io, false);
		break;
	case UST_BDEV_IO_TYPE_WRITE:
		malloc_copy(disk, io, true);
		break;
	case UST_BDEV_IO_TYPE_UNMAP:
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
		memset(disk->data + io->offset_blocks * bs, 0, io->num_blocks * bs);
		break;
	case UST_BDEV_IO_TYPE_FLUSH:
	case UST_BDEV_IO_TYPE_RESET:
		break;
	case UST_BDEV_IO_TYPE_COMPARE:
		if (!malloc_equal(disk, io)) {
			ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_MISCOMPARE);
			return;
		}
		break;
	default:
		ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_FAILED);
		return;
	}
	ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_SUCCESS);
}

static bool malloc_io_type_supported(void *ctxt, enum ust_bdev_io_type type)
{
	switch (type) {
	case UST_BDEV_IO_TYPE_READ:
	case UST_BDEV_IO_TYPE_WRITE:
	case UST_BDEV_IO_TYPE_UNMAP:
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
	case UST_BDEV_IO_TYPE_FLUSH:
	case UST_BDEV_IO_TYPE_RESET:
	case UST_BDEV_IO_TYPE_COMPARE:
		return true;
	default:
		return false;
	}
}

static struct ust_io_channel *malloc_get_io_channel(void *ctxt)
{
	return ust_get_io_channel(&g_malloc_io_device);
}

static int malloc_destruct(void *ctxt)
{
	struct malloc_disk *disk = ctxt;

	pthread_mutex_lock(&g_malloc_mutex);
	TAILQ_REMOVE(&g_malloc_disks, disk, link);
	pthread_mutex_unlock(&g_malloc_mutex);
	ust_dma_free(disk->data);
	free(disk->bdev.name);
	free(disk);
	return 0;
}

static void malloc_write_config_json(struct ust_bdev *bdev, json_t *calls)
{
	bdev_ramdisk_write_config_json(bdev, "bdev_malloc_create", calls);
}

/* The disk is memory: every range can be lent. */
static int malloc_lend(void *ctxt, uint64_t offset, uint64_t len, bool write, void **data)
{
	struct malloc_disk *disk = ctxt;

	(void)len;
	(void)write;
	*data = disk->data + offset;
	return 0;
}

static const struct ust_bdev_fn_table g_malloc_fn_table = {
	.destruct = malloc_destruct,
	.submit_request = malloc_submit,
	.io_type_supported = malloc_io_type_supported,
	.get_io_channel = malloc_get_io_channel,
	.write_config_json = malloc_write_config_json,
	.lend = malloc_lend,
};

/* ---- create / delete ---------------------------------------------------- */

static char *malloc_pick_name(void)
{
	char name[32];
	int i;

	for (i = 0; i < 1000000; i++) {
		snprintf(name, sizeof(name), "Malloc%d", i);
		if (ust_bdev_get_by_name(name) == NULL)
			return strdup(name);
	}
	return NULL;
}

/*
 * Touch every page now. Without hugepages, DMA memory is anonymous memory
 * that the kernel maps on first access, and the allocator knows it is zero
 * so it does not write it: every first access from the I/O path would take a
 * page fault (measured: over half the CPU of a random read run on a 1 GiB
 * disk). One store per page at create moves that cost out of the I/O path.
 */
static void malloc_fault_in(void *data, uint64_t len)
{
	volatile uint8_t *p = data;

	for (uint64_t off = 0; off < len; off += 4096)
		p[off] = 0;
}

static int malloc_create(const struct bdev_ramdisk_geometry *opts, struct ust_bdev **bdevp)
{
	struct malloc_disk *disk;
	int rc;

	rc = bdev_ramdisk_check_geometry("malloc", opts, SIZE_MAX);
	if (rc != 0)
		return rc;
	disk = calloc(1, sizeof(*disk));
	if (disk == NULL)
		return -ENOMEM;
	disk->bdev.name = opts->name ? strdup(opts->name) : malloc_pick_name();
	disk->data = ust_dma_zmalloc(opts->num_blocks * opts->block_size, 4096);
	if (disk->bdev.name == NULL || disk->data == NULL) {
		UST_ERRLOG("malloc bdev: cannot allocate %" PRIu64 " bytes\n",
			   opts->num_blocks * opts->block_size);
		ust_dma_free(disk->data);
		free(disk->bdev.name);
		free(disk);
		return -ENOMEM;
	}
	malloc_fault_in(disk->data, opts->num_blocks * opts->block_size);
	disk->bdev.ctxt = disk;
	disk->bdev.product_name = "Malloc disk";
	bdev_ramdisk_fill(&disk->bdev, opts);
	disk->bdev.module = &g_malloc_module;
	disk->bdev.fn_table = &g_malloc_fn_table;

	pthread_mutex_lock(&g_malloc_mutex);
	TAILQ_INSERT_TAIL(&g_malloc_disks, disk, link);
	pthread_mutex_unlock(&g_malloc_mutex);
	return bdev_ramdisk_register(&disk->bdev, bdevp);
}

int ust_bdev_malloc_create(const struct ust_malloc_opts *opts, struct ust_bdev **bdevp)
{
	struct bdev_ramdisk_geometry g;

	if (opts == NULL)
		return -EINVAL;
	g = (struct bdev_ramdisk_geometry){
		.name = opts->name,
		.num_blocks = opts->num_blocks,
		.block_size = opts->block_size,
		.uuid = opts->uuid,
		.md_size = opts->md_size,
		.md_interleave = opts->md_interleave,
		.dif_type = opts->dif_type,
		.optimal_io_boundary = opts->optimal_io_boundary,
	};
	return malloc_create(&g, bdevp);
}

int ust_bdev_malloc_delete(const char *name, ust_bdev_unregister_cb cb, void *ctx)
{
	return ust_bdev_unregister_by_name(name, &g_malloc_module, cb, ctx);
}

/* ---- RPCs (bodies in bdev/bdev_ramdisk.c) ---------------------------------- */

static const struct bdev_ramdisk_rpc g_malloc_rpc = {
	.module = "malloc",
	.name_required = false,
	.has_optimal_io_boundary = true,
	.create = malloc_create,
	.delete = ust_bdev_malloc_delete,
};

static void rpc_bdev_malloc_create(struct ust_rpc_request *req, const json_t *params)
{
	bdev_ramdisk_rpc_create(&g_malloc_rpc, req, params);
}
UST_RPC_REGISTER("bdev_malloc_create", rpc_bdev_malloc_create, UST_RPC_STARTUP | UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_malloc_create", construct_malloc_bdev)

static void rpc_bdev_malloc_delete(struct ust_rpc_request *req, const json_t *params)
{
	bdev_ramdisk_rpc_delete(&g_malloc_rpc, req, params);
}
UST_RPC_REGISTER("bdev_malloc_delete", rpc_bdev_malloc_delete, UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_malloc_delete", delete_malloc_bdev)
