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

#include "bdev_null.h"

struct null_disk {
	struct ust_bdev bdev;
};

static int g_null_io_device;

static int null_channel_create(void *io_device, void *ctx)
{
	return 0;
}

static void null_channel_destroy(void *io_device, void *ctx)
{
}

static int null_module_init(void)
{
	ust_io_device_register(&g_null_io_device, null_channel_create, null_channel_destroy, 0,
			       "bdev_null");
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
	char uuid[UST_UUID_STRING_LEN];
	json_t *params;

	ust_uuid_fmt(uuid, sizeof(uuid), &bdev->uuid);
	params = json_pack("{s:s, s:I, s:i, s:s}", "name", ust_bdev_get_name(bdev), "num_blocks",
			   (json_int_t)bdev->blockcnt, "block_size", (int)bdev->blocklen, "uuid",
			   uuid);
	if (params == NULL)
		return;
	if (bdev->md_len != 0) {
		json_object_set_new(params, "md_size", json_integer(bdev->md_len));
		json_object_set_new(params, "md_interleave", json_boolean(bdev->md_interleave));
		json_object_set_new(params, "dif_type", json_integer(bdev->dif_type));
	}
	json_array_append_new(calls, json_pack("{s:s, s:o}", "method", "bdev_null_create",
					       "params", params));
}

static const struct ust_bdev_fn_table g_null_fn_table = {
	.destruct = null_destruct,
	.submit_request = null_submit,
	.io_type_supported = null_io_type_supported,
	.get_io_channel = null_get_io_channel,
	.write_config_json = null_write_config_json,
};

static int null_check_geometry(const struct ust_null_opts *opts)
{
	uint32_t data_size = opts->block_size;

	if (opts->name == NULL || opts->name[0] == '\0')
		return -EINVAL;
	if (opts->md_interleave) {
		if (opts->md_size >= opts->block_size)
			return -EINVAL;
		data_size -= opts->md_size;
	}
	if (data_size < 512 || data_size % 512 != 0) {
		UST_ERRLOG("null bdev %s: block size %u is not a multiple of 512\n", opts->name,
			   opts->block_size);
		return -EINVAL;
	}
	if (opts->num_blocks == 0 || opts->num_blocks > UINT64_MAX / opts->block_size)
		return -EINVAL;
	if ((unsigned)opts->dif_type > UST_DIF_TYPE3)
		return -EINVAL;
	return 0;
}

int ust_bdev_null_create(const struct ust_null_opts *opts, struct ust_bdev **bdevp)
{
	struct null_disk *disk;
	int rc;

	if (opts == NULL)
		return -EINVAL;
	rc = null_check_geometry(opts);
	if (rc != 0)
		return rc;
	disk = calloc(1, sizeof(*disk));
	if (disk == NULL)
		return -ENOMEM;
	disk->bdev.name = strdup(opts->name);
	if (disk->bdev.name == NULL) {
		free(disk);
		return -ENOMEM;
	}
	disk->bdev.ctxt = disk;
	disk->bdev.product_name = "Null disk";
	disk->bdev.blocklen = opts->block_size;
	disk->bdev.blockcnt = opts->num_blocks;
	disk->bdev.uuid = opts->uuid;
	disk->bdev.md_len = opts->md_size;
	disk->bdev.md_interleave = opts->md_interleave;
	disk->bdev.dif_type = opts->dif_type;
	disk->bdev.module = &g_null_module;
	disk->bdev.fn_table = &g_null_fn_table;
	rc = ust_bdev_register(&disk->bdev);
	if (rc != 0) {
		null_destruct(disk);
		return rc;
	}
	if (bdevp != NULL)
		*bdevp = &disk->bdev;
	return 0;
}

int ust_bdev_null_delete(const char *name, ust_bdev_unregister_cb cb, void *ctx)
{
	return ust_bdev_unregister_by_name(name, &g_null_module, cb, ctx);
}

/* ---- RPCs --------------------------------------------------------------- */

struct rpc_null_create {
	char *name;
	uint64_t num_blocks;
	uint32_t block_size;
	char *uuid;
	uint32_t md_size;
	bool md_interleave;
	uint32_t dif_type;
	bool dif_is_head_of_md;
	uint32_t physical_block_size;
};

static const struct ust_json_object_decoder g_null_create_decoders[] = {
	{"name", offsetof(struct rpc_null_create, name), ust_json_decode_string, false},
	{"num_blocks", offsetof(struct rpc_null_create, num_blocks), ust_json_decode_uint64, false},
	{"block_size", offsetof(struct rpc_null_create, block_size), ust_json_decode_uint32, false},
	{"uuid", offsetof(struct rpc_null_create, uuid), ust_json_decode_string, true},
	{"md_size", offsetof(struct rpc_null_create, md_size), ust_json_decode_uint32, true},
	{"md_interleave", offsetof(struct rpc_null_create, md_interleave), ust_json_decode_bool,
	 true},
	{"dif_type", offsetof(struct rpc_null_create, dif_type), ust_json_decode_uint32, true},
	{"dif_is_head_of_md", offsetof(struct rpc_null_create, dif_is_head_of_md),
	 ust_json_decode_bool, true},
	{"physical_block_size", offsetof(struct rpc_null_create, physical_block_size),
	 ust_json_decode_uint32, true},
};

static void rpc_bdev_null_create(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_null_create r = {0};
	struct ust_null_opts opts = {0};
	struct ust_bdev *bdev;
	int rc;

	if (!ust_rpc_decode_params(req, params, g_null_create_decoders,
				   sizeof(g_null_create_decoders) / sizeof(g_null_create_decoders[0]),
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
	opts.md_size = r.md_size;
	opts.md_interleave = r.md_interleave;
	opts.dif_type = (enum ust_dif_type)r.dif_type;
	rc = ust_bdev_null_create(&opts, &bdev);
	if (rc == -EEXIST) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "bdev name '%s' is already in use", r.name);
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
UST_RPC_REGISTER("bdev_null_create", rpc_bdev_null_create, UST_RPC_STARTUP | UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_null_create", construct_null_bdev)

struct rpc_null_delete {
	char *name;
};

static const struct ust_json_object_decoder g_null_delete_decoders[] = {
	{"name", offsetof(struct rpc_null_delete, name), ust_json_decode_string, false},
};

static void rpc_null_deleted(void *ctx, int rc)
{
	struct ust_rpc_request *req = ctx;

	if (rc != 0)
		ust_rpc_send_errno(req, rc);
	else
		ust_rpc_send_bool(req, true);
}

static void rpc_bdev_null_delete(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_null_delete r = {0};

	if (!ust_rpc_decode_params(req, params, g_null_delete_decoders, 1, &r))
		return;
	if (ust_bdev_null_delete(r.name, rpc_null_deleted, req) != 0)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "no null bdev named '%s'", r.name);
	free(r.name);
}
UST_RPC_REGISTER("bdev_null_delete", rpc_bdev_null_delete, UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_null_delete", delete_null_bdev)
