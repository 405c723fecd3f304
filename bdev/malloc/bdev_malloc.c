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

static int malloc_channel_create(void *io_device, void *ctx)
{
	return 0;
}

static void malloc_channel_destroy(void *io_device, void *ctx)
{
}

static int malloc_module_init(void)
{
	ust_io_device_register(&g_malloc_io_device, malloc_channel_create, malloc_channel_destroy,
			       0, "bdev_malloc");
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
	char uuid[UST_UUID_STRING_LEN];
	json_t *params;

	ust_uuid_fmt(uuid, sizeof(uuid), &bdev->uuid);
	params = json_pack("{s:s, s:I, s:i, s:s}", "name", ust_bdev_get_name(bdev), "num_blocks",
			   (json_int_t)bdev->blockcnt, "block_size", (int)bdev->blocklen, "uuid",
			   uuid);
	if (params == NULL)
		return;
	if (bdev->optimal_io_boundary != 0)
		json_object_set_new(params, "optimal_io_boundary",
				    json_integer(bdev->optimal_io_boundary));
	if (bdev->md_len != 0) {
		json_object_set_new(params, "md_size", json_integer(bdev->md_len));
		json_object_set_new(params, "md_interleave", json_boolean(bdev->md_interleave));
		json_object_set_new(params, "dif_type", json_integer(bdev->dif_type));
	}
	json_array_append_new(calls, json_pack("{s:s, s:o}", "method", "bdev_malloc_create",
					       "params", params));
}

static const struct ust_bdev_fn_table g_malloc_fn_table = {
	.destruct = malloc_destruct,
	.submit_request = malloc_submit,
	.io_type_supported = malloc_io_type_supported,
	.get_io_channel = malloc_get_io_channel,
	.write_config_json = malloc_write_config_json,
};

/* ---- create / delete ---------------------------------------------------- */

static int malloc_check_geometry(const struct ust_malloc_opts *opts)
{
	uint32_t data_size = opts->block_size;

	if (opts->md_interleave) {
		if (opts->md_size >= opts->block_size)
			return -EINVAL;
		data_size -= opts->md_size;
	}
	if (data_size < 512 || data_size % 512 != 0) {
		UST_ERRLOG("malloc bdev: block size %u is not a multiple of 512\n", opts->block_size);
		return -EINVAL;
	}
	if (opts->num_blocks == 0 || opts->num_blocks > SIZE_MAX / opts->block_size) {
		UST_ERRLOG("malloc bdev: %" PRIu64 " blocks of %u bytes is not a usable size\n",
			   opts->num_blocks, opts->block_size);
		return -EINVAL;
	}
	if ((unsigned)opts->dif_type > UST_DIF_TYPE3)
		return -EINVAL;
	return 0;
}

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

int ust_bdev_malloc_create(const struct ust_malloc_opts *opts, struct ust_bdev **bdevp)
{
	struct malloc_disk *disk;
	int rc;

	if (opts == NULL)
		return -EINVAL;
	rc = malloc_check_geometry(opts);
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
	disk->bdev.blocklen = opts->block_size;
	disk->bdev.blockcnt = opts->num_blocks;
	disk->bdev.write_cache = false;
	disk->bdev.optimal_io_boundary = opts->optimal_io_boundary;
	disk->bdev.split_on_optimal_io_boundary = opts->optimal_io_boundary != 0;
	disk->bdev.uuid = opts->uuid;
	disk->bdev.md_len = opts->md_size;
	disk->bdev.md_interleave = opts->md_interleave;
	disk->bdev.dif_type = opts->dif_type;
	disk->bdev.module = &g_malloc_module;
	disk->bdev.fn_table = &g_malloc_fn_table;

	pthread_mutex_lock(&g_malloc_mutex);
	TAILQ_INSERT_TAIL(&g_malloc_disks, disk, link);
	pthread_mutex_unlock(&g_malloc_mutex);
	rc = ust_bdev_register(&disk->bdev);
	if (rc != 0) {
		malloc_destruct(disk);
		return rc;
	}
	if (bdevp != NULL)
		*bdevp = &disk->bdev;
	return 0;
}

int ust_bdev_malloc_delete(const char *name, ust_bdev_unregister_cb cb, void *ctx)
{
	return ust_bdev_unregister_by_name(name, &g_malloc_module, cb, ctx);
}

/* ---- RPCs --------------------------------------------------------------- */

struct rpc_malloc_create {
	char *name;
	uint64_t num_blocks;
	uint32_t block_size;
	char *uuid;
	uint32_t optimal_io_boundary;
	uint32_t md_size;
	bool md_interleave;
	uint32_t dif_type;
	bool dif_is_head_of_md;
	uint32_t physical_block_size;
};

static const struct ust_json_object_decoder g_malloc_create_decoders[] = {
	{"name", offsetof(struct rpc_malloc_create, name), ust_json_decode_string, true},
	{"num_blocks", offsetof(struct rpc_malloc_create, num_blocks), ust_json_decode_uint64, false},
	{"block_size", offsetof(struct rpc_malloc_create, block_size), ust_json_decode_uint32, false},
	{"uuid", offsetof(struct rpc_malloc_create, uuid), ust_json_decode_string, true},
	{"optimal_io_boundary", offsetof(struct rpc_malloc_create, optimal_io_boundary),
	 ust_json_decode_uint32, true},
	{"md_size", offsetof(struct rpc_malloc_create, md_size), ust_json_decode_uint32, true},
	{"md_interleave", offsetof(struct rpc_malloc_create, md_interleave), ust_json_decode_bool,
	 true},
	{"dif_type", offsetof(struct rpc_malloc_create, dif_type), ust_json_decode_uint32, true},
	{"dif_is_head_of_md", offsetof(struct rpc_malloc_create, dif_is_head_of_md),
	 ust_json_decode_bool, true},
	{"physical_block_size", offsetof(struct rpc_malloc_create, physical_block_size),
	 ust_json_decode_uint32, true},
};

static void rpc_bdev_malloc_create(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_malloc_create r = {0};
	struct ust_malloc_opts opts = {0};
	struct ust_bdev *bdev;
	int rc;

	if (!ust_rpc_decode_params(req, params, g_malloc_create_decoders,
				   sizeof(g_malloc_create_decoders) /
					   sizeof(g_malloc_create_decoders[0]),
				   &r))
		goto out;
	if (r.uuid != NULL && ust_uuid_parse(&opts.uuid, r.uuid) != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "invalid uuid '%s'",
				   r.uuid);
		goto out;
	}
	if (r.dif_type > UST_DIF_TYPE3) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "dif_type must be 0 to 3");
		goto out;
	}
	opts.name = r.name;
	opts.num_blocks = r.num_blocks;
	opts.block_size = r.block_size;
	opts.optimal_io_boundary = r.optimal_io_boundary;
	opts.md_size = r.md_size;
	opts.md_interleave = r.md_interleave;
	opts.dif_type = (enum ust_dif_type)r.dif_type;
	rc = ust_bdev_malloc_create(&opts, &bdev);
	if (rc == -EEXIST) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "bdev name '%s' is already in use", r.name ? r.name : "");
		goto out;
	}
	if (rc == -EINVAL) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "invalid geometry: block_size must be a multiple of 512 and "
				   "num_blocks non-zero");
		goto out;
	}
	if (rc != 0) {
		ust_rpc_send_errno(req, rc);
		goto out;
	}
	ust_rpc_send_result(req, json_string(ust_bdev_get_name(bdev)));
out:
	free(r.name);
	free(r.uuid);
}
UST_RPC_REGISTER("bdev_malloc_create", rpc_bdev_malloc_create, UST_RPC_STARTUP | UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_malloc_create", construct_malloc_bdev)

struct rpc_bdev_delete {
	char *name;
};

static const struct ust_json_object_decoder g_bdev_delete_decoders[] = {
	{"name", offsetof(struct rpc_bdev_delete, name), ust_json_decode_string, false},
};

static void rpc_malloc_deleted(void *ctx, int rc)
{
	struct ust_rpc_request *req = ctx;

	if (rc != 0)
		ust_rpc_send_errno(req, rc);
	else
		ust_rpc_send_bool(req, true);
}

static void rpc_bdev_malloc_delete(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_bdev_delete r = {0};
	int rc;

	if (!ust_rpc_decode_params(req, params, g_bdev_delete_decoders, 1, &r))
		return;
	rc = ust_bdev_malloc_delete(r.name, rpc_malloc_deleted, req);
	if (rc != 0)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "no malloc bdev named '%s'", r.name);
	free(r.name);
}
UST_RPC_REGISTER("bdev_malloc_delete", rpc_bdev_malloc_delete, UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_malloc_delete", delete_malloc_bdev)
