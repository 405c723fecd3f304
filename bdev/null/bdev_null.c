/*
 * The null bdev module: every read, write, unmap, write_zeroes, flush and
 * reset succeeds without touching data, and its RPCs (bdev_null_create,
 * bdev_null_delete and the old names construct_null_bdev, delete_null_bdev).
 *
 * This is the bdev layer's overhead benchmark, so submit_request is a
 * single inline completion: no per-I/O state, no driver_ctx, no branch on
 * the I/O type (the core only sends the types io_type_supported accepts).
 * The core defers the consumer's callback until the submit call returned,
 * so a consumer resubmitting from its callback does not recurse.
 *
 * Guarantees: read buffers are left exactly as they were; written data is
 * dropped; metadata/DIF settings are stored and reported only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"
#include "ustor/rpc.h"

#include "../bdev_ramdisk.h"
#include "bdev_null.h"

struct null_disk {
	struct ust_bdev bdev;
};

static int g_null_io_device;

static int null_module_init(void)
{
	bdev_ramdisk_io_device_register(&g_null_io_device, "bdev_null");
	return 0;
}

static void null_module_fini(void)
{
	ust_io_device_unregister(&g_null_io_device, NULL);
}

static struct ust_bdev_module g_null_module = {
	.name = "null",
	.module_init = null_module_init,
	.module_fini = null_module_fini,
};

UST_BDEV_MODULE_REGISTER(null, &g_null_module)

static void null_submit(struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_SUCCESS);
}

static bool null_io_type_supported(void *ctxt, enum ust_bdev_io_type type)
{
	switch (type) {
	case UST_BDEV_IO_TYPE_READ:
	case UST_BDEV_IO_TYPE_WRITE:
	case UST_BDEV_IO_TYPE_UNMAP:
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
	case UST_BDEV_IO_TYPE_FLUSH:
	case UST_BDEV_IO_TYPE_RESET:
		return true;
	default:
		return false;
	}
}

static struct ust_io_channel *null_get_io_channel(void *ctxt)
{
	return ust_get_io_channel(&g_null_io_device);
}

static int null_destruct(void *ctxt)
{
	struct null_disk *disk = ctxt;

	free(disk->bdev.name);
	free(disk);
	return 0;
}

static void null_write_config_json(struct ust_bdev *bdev, json_t *calls)
{
	bdev_ramdisk_write_config_json(bdev, "bdev_null_create", calls);
}

static const struct ust_bdev_fn_table g_null_fn_table = {
	.destruct = null_destruct,
	.submit_request = null_submit,
	.io_type_supported = null_io_type_supported,
	.get_io_channel = null_get_io_channel,
	.write_config_json = null_write_config_json,
};

/* Nothing is stored, so any size the block count can express will do. */
static int null_create(const struct bdev_ramdisk_geometry *g, struct ust_bdev **bdevp)
{
	struct null_disk *disk;
	int rc;

	if (g->name == NULL || g->name[0] == '\0')
		return -EINVAL;
	rc = bdev_ramdisk_check_geometry("null", g, UINT64_MAX);
	if (rc != 0)
		return rc;
	disk = calloc(1, sizeof(*disk));
	if (disk == NULL)
		return -ENOMEM;
	disk->bdev.name = strdup(g->name);
	if (disk->bdev.name == NULL) {
		free(disk);
		return -ENOMEM;
	}
	disk->bdev.ctxt = disk;
	disk->bdev.product_name = "Null disk";
	bdev_ramdisk_fill(&disk->bdev, g);
	disk->bdev.module = &g_null_module;
	disk->bdev.fn_table = &g_null_fn_table;
	return bdev_ramdisk_register(&disk->bdev, bdevp);
}

int ust_bdev_null_create(const struct ust_null_opts *opts, struct ust_bdev **bdevp)
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
	};
	return null_create(&g, bdevp);
}

int ust_bdev_null_delete(const char *name, ust_bdev_unregister_cb cb, void *ctx)
{
	return ust_bdev_unregister_by_name(name, &g_null_module, cb, ctx);
}

/* ---- RPCs (bodies in bdev/bdev_ramdisk.c) ---------------------------------- */

static const struct bdev_ramdisk_rpc g_null_rpc = {
	.module = "null",
	.name_required = true,
	.has_optimal_io_boundary = false,
	.create = null_create,
	.delete = ust_bdev_null_delete,
};

static void rpc_bdev_null_create(struct ust_rpc_request *req, const json_t *params)
{
	bdev_ramdisk_rpc_create(&g_null_rpc, req, params);
}
UST_RPC_REGISTER("bdev_null_create", rpc_bdev_null_create, UST_RPC_STARTUP | UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_null_create", construct_null_bdev)

static void rpc_bdev_null_delete(struct ust_rpc_request *req, const json_t *params)
{
	bdev_ramdisk_rpc_delete(&g_null_rpc, req, params);
}
UST_RPC_REGISTER("bdev_null_delete", rpc_bdev_null_delete, UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_null_delete", delete_null_bdev)
