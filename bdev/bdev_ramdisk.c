/*
 * The parts the in-memory bdev modules (malloc and null) share: geometry
 * checks, save_config, the create/delete RPC bodies and an empty channel
 * device. The contract is in bdev_ramdisk.h.
 *
 * Guarantees: both modules accept and refuse exactly the same geometries
 * with the same messages, and save_config writes back every parameter that
 * differs from its default, so a replay recreates the same bdev (UUID
 * included).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"

#include "bdev_ramdisk.h"

int bdev_ramdisk_check_geometry(const char *module, const struct bdev_ramdisk_geometry *g,
				uint64_t max_bytes)
{
	uint32_t data_size = g->block_size;

	if (g->md_interleave) {
		if (g->md_size >= g->block_size)
			return -EINVAL;
		data_size -= g->md_size;
	}
	if (data_size < 512 || data_size % 512 != 0) {
		UST_ERRLOG("%s bdev: block size %u is not a multiple of 512\n", module,
			   g->block_size);
		return -EINVAL;
	}
	if (g->num_blocks == 0 || g->num_blocks > max_bytes / g->block_size) {
		UST_ERRLOG("%s bdev: %" PRIu64 " blocks of %u bytes is not a usable size\n",
			   module, g->num_blocks, g->block_size);
		return -EINVAL;
	}
	if ((unsigned)g->dif_type > UST_DIF_TYPE3)
		return -EINVAL;
	return 0;
}

void bdev_ramdisk_fill(struct ust_bdev *bdev, const struct bdev_ramdisk_geometry *g)
{
	bdev->blocklen = g->block_size;
	bdev->blockcnt = g->num_blocks;
	bdev->optimal_io_boundary = g->optimal_io_boundary;
	bdev->split_on_optimal_io_boundary = g->optimal_io_boundary != 0;
	bdev->uuid = g->uuid;
	bdev->md_len = g->md_size;
	bdev->md_interleave = g->md_interleave;
	bdev->dif_type = g->dif_type;
}

int bdev_ramdisk_register(struct ust_bdev *bdev, struct ust_bdev **bdevp)
{
	int rc;

	rc = ust_bdev_register(bdev);
	if (rc != 0) {
		bdev->fn_table->destruct(bdev->ctxt);
		return rc;
	}
	if (bdevp != NULL)
		*bdevp = bdev;
	return 0;
}

void bdev_ramdisk_write_config_json(struct ust_bdev *bdev, const char *method, json_t *calls)
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
	json_array_append_new(calls, json_pack("{s:s, s:o}", "method", method, "params", params));
}

/* ---- RPCs --------------------------------------------------------------- */

struct rpc_ramdisk_create {
	char *name;
	uint64_t num_blocks;
	uint32_t block_size;
	char *uuid;
	uint32_t md_size;
	bool md_interleave;
	uint32_t dif_type;
	bool dif_is_head_of_md;       /* accepted for SPDK compatibility, not used */
	uint32_t physical_block_size; /* accepted for SPDK compatibility, not used */
	uint32_t optimal_io_boundary;
};

/* optimal_io_boundary last: a module without it decodes one entry less. */
static const struct ust_json_object_decoder g_rpc_ramdisk_create_decoders[] = {
	{"name", offsetof(struct rpc_ramdisk_create, name), ust_json_decode_string, true},
	{"num_blocks", offsetof(struct rpc_ramdisk_create, num_blocks), ust_json_decode_uint64,
	 false},
	{"block_size", offsetof(struct rpc_ramdisk_create, block_size), ust_json_decode_uint32,
	 false},
	{"uuid", offsetof(struct rpc_ramdisk_create, uuid), ust_json_decode_string, true},
	{"md_size", offsetof(struct rpc_ramdisk_create, md_size), ust_json_decode_uint32, true},
	{"md_interleave", offsetof(struct rpc_ramdisk_create, md_interleave),
	 ust_json_decode_bool, true},
	{"dif_type", offsetof(struct rpc_ramdisk_create, dif_type), ust_json_decode_uint32, true},
	{"dif_is_head_of_md", offsetof(struct rpc_ramdisk_create, dif_is_head_of_md),
	 ust_json_decode_bool, true},
	{"physical_block_size", offsetof(struct rpc_ramdisk_create, physical_block_size),
	 ust_json_decode_uint32, true},
	{"optimal_io_boundary", offsetof(struct rpc_ramdisk_create, optimal_io_boundary),
	 ust_json_decode_uint32, true},
};

/* Parse and check the params into g; false when req has been answered. */
static bool rpc_ramdisk_parse(const struct bdev_ramdisk_rpc *kind, struct ust_rpc_request *req,
			      const json_t *params, struct rpc_ramdisk_create *r,
			      struct bdev_ramdisk_geometry *g)
{
	size_t n = sizeof(g_rpc_ramdisk_create_decoders) / sizeof(g_rpc_ramdisk_create_decoders[0]);

	if (!kind->has_optimal_io_boundary)
		n--;
	if (!ust_rpc_decode_params(req, params, g_rpc_ramdisk_create_decoders, n, r))
		return false;
	if (kind->name_required && r->name == NULL) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "missing required parameter 'name'");
		return false;
	}
	if (r->uuid != NULL && ust_uuid_parse(&g->uuid, r->uuid) != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "invalid uuid '%s'",
				   r->uuid);
		return false;
	}
	if (r->dif_type > UST_DIF_TYPE3) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "dif_type must be 0 to 3");
		return false;
	}
	g->name = r->name;
	g->num_blocks = r->num_blocks;
	g->block_size = r->block_size;
	g->optimal_io_boundary = r->optimal_io_boundary;
	g->md_size = r->md_size;
	g->md_interleave = r->md_interleave;
	g->dif_type = (enum ust_dif_type)r->dif_type;
	return true;
}

void bdev_ramdisk_rpc_create(const struct bdev_ramdisk_rpc *kind, struct ust_rpc_request *req,
			     const json_t *params)
{
	struct rpc_ramdisk_create r = {0};
	struct bdev_ramdisk_geometry g = {0};
	struct ust_bdev *bdev;
	int rc;

	if (!rpc_ramdisk_parse(kind, req, params, &r, &g))
		goto out;
	rc = kind->create(&g, &bdev);
	if (rc == -EEXIST)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "bdev name '%s' is already in use", r.name ? r.name : "");
	else if (rc == -EINVAL)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "invalid geometry: block_size must be a multiple of 512 and "
				   "num_blocks non-zero");
	else if (rc != 0)
		ust_rpc_send_errno(req, rc);
	else
		ust_rpc_send_result(req, json_string(ust_bdev_get_name(bdev)));
out:
	free(r.name);
	free(r.uuid);
}

struct rpc_ramdisk_delete {
	char *name;
};

static const struct ust_json_object_decoder g_rpc_ramdisk_delete_decoders[] = {
	{"name", offsetof(struct rpc_ramdisk_delete, name), ust_json_decode_string, false},
};

static void rpc_ramdisk_deleted(void *ctx, int rc)
{
	struct ust_rpc_request *req = ctx;

	if (rc != 0)
		ust_rpc_send_errno(req, rc);
	else
		ust_rpc_send_bool(req, true);
}

void bdev_ramdisk_rpc_delete(const struct bdev_ramdisk_rpc *kind, struct ust_rpc_request *req,
			     const json_t *params)
{
	struct rpc_ramdisk_delete r = {0};

	if (!ust_rpc_decode_params(req, params, g_rpc_ramdisk_delete_decoders, 1, &r))
		return;
	if (kind->delete(r.name, rpc_ramdisk_deleted, req) != 0)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "no %s bdev named '%s'",
				   kind->module, r.name);
	free(r.name);
}

/* ---- channels ----------------------------------------------------------- */

static int ramdisk_channel_create(void *io_device, void *ctx)
{
	return 0;
}

static void ramdisk_channel_destroy(void *io_device, void *ctx)
{
}

void bdev_ramdisk_io_device_register(void *io_device, const char *name)
{
	ust_io_device_register(io_device, ramdisk_channel_create, ramdisk_channel_destroy, 0, name);
}
