/*
 * The RPC handlers both file backends share: bdev_<backend>_create,
 * bdev_<backend>_delete and bdev_<backend>_rescan differ only in the backend
 * they act on and in whether create takes "readonly" (aio does, uring does
 * not, as in SPDK). file_aio.c and file_uring.c register thin wrappers.
 *
 * Guarantees: bad parameters answer INVALID_PARAMS naming the problem
 * (unknown key, bad uuid, no such bdev); every other failure answers with
 * its errno. A delete answers once the bdev is gone.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/rpc.h"

#include "file_internal.h"

struct rpc_file_create {
	char *name;
	char *filename;
	uint32_t block_size;
	char *uuid;
	bool readonly;
};

/* "readonly" last: a backend without it decodes one entry less. */
static const struct ust_json_object_decoder g_rpc_file_create_decoders[] = {
	{"name", offsetof(struct rpc_file_create, name), ust_json_decode_string, false},
	{"filename", offsetof(struct rpc_file_create, filename), ust_json_decode_string, false},
	{"block_size", offsetof(struct rpc_file_create, block_size), ust_json_decode_uint32, true},
	{"uuid", offsetof(struct rpc_file_create, uuid), ust_json_decode_string, true},
	{"readonly", offsetof(struct rpc_file_create, readonly), ust_json_decode_bool, true},
};

void file_rpc_create(const struct file_backend *backend, struct ust_rpc_request *req,
		     const json_t *params)
{
	size_t ndecoders = sizeof(g_rpc_file_create_decoders) /
			   sizeof(g_rpc_file_create_decoders[0]);
	struct rpc_file_create p = {0};
	struct ust_bdev_file_opts opts = {0};
	struct ust_bdev *bdev;
	int rc;

	if (!backend->readonly_option)
		ndecoders--;
	if (!ust_rpc_decode_params(req, params, g_rpc_file_create_decoders, ndecoders, &p))
		goto out;
	if (p.uuid != NULL && ust_uuid_parse(&opts.uuid, p.uuid) != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "invalid uuid '%s'",
				   p.uuid);
		goto out;
	}
	opts.name = p.name;
	opts.filename = p.filename;
	opts.block_size = p.block_size;
	opts.readonly = p.readonly;
	rc = file_disk_create(backend, &opts, &bdev);
	if (rc != 0) {
		ust_rpc_send_error(req, rc == -EINVAL ? UST_JSONRPC_ERROR_INVALID_PARAMS :
							UST_JSONRPC_ERROR_INTERNAL_ERROR,
				   "cannot create %s bdev %s on %s: %s", backend->name, p.name,
				   p.filename, strerror(-rc));
		goto out;
	}
	ust_rpc_send_result(req, json_string(ust_bdev_get_name(bdev)));
out:
	free(p.name);
	free(p.filename);
	free(p.uuid);
}

struct rpc_file_name {
	char *name;
};

static const struct ust_json_object_decoder g_rpc_file_name_decoders[] = {
	{"name", offsetof(struct rpc_file_name, name), ust_json_decode_string, false},
};

static void rpc_file_delete_done(void *ctx, int rc)
{
	struct ust_rpc_request *req = ctx;

	if (rc != 0)
		ust_rpc_send_errno(req, rc);
	else
		ust_rpc_send_bool(req, true);
}

void file_rpc_delete(const struct file_backend *backend, struct ust_rpc_request *req,
		     const json_t *params)
{
	struct rpc_file_name p = {0};

	if (!ust_rpc_decode_params(req, params, g_rpc_file_name_decoders, 1, &p))
		return;
	if (file_disk_delete(backend, p.name, rpc_file_delete_done, req) != 0)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "no %s bdev named %s",
				   backend->name, p.name);
	free(p.name);
}

void file_rpc_rescan(const struct file_backend *backend, struct ust_rpc_request *req,
		     const json_t *params)
{
	struct rpc_file_name p = {0};
	int rc;

	if (!ust_rpc_decode_params(req, params, g_rpc_file_name_decoders, 1, &p))
		return;
	rc = file_disk_rescan(backend, p.name);
	if (rc == -ENODEV)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "no %s bdev named %s",
				   backend->name, p.name);
	else if (rc != 0)
		ust_rpc_send_errno(req, rc);
	else
		ust_rpc_send_bool(req, true);
	free(p.name);
}
