/*
 * The "passthru" bdev module: a virtual bdev that forwards every I/O to the
 * bdev beneath it and hands back the result unchanged. It does nothing
 * useful on its own; it is the smallest complete virtual bdev and the
 * starting point for writing a new one, so it is commented for that reader.
 *
 * What a virtual bdev has to get right, and who does it here:
 *  - Configuration outlives the base: bdev_passthru_create remembers
 *    "name over base" and the bdev is built when the base shows up, so a
 *    JSON config may name bdevs in any order. (ust_vbdev_create and
 *    ust_vbdev_examine_config, in bdev/bdev_vbdev.c.)
 *  - The base is opened and claimed, so nobody else writes under us. (The
 *    helper's build.)
 *  - Each thread gets a channel holding that thread's base channel: all I/O
 *    on a thread goes straight down without locks or messages. (The helper
 *    makes the channel; pt_submit_request uses its base_ch.)
 *  - The base going away (hot remove) takes the passthru bdev with it; a
 *    base that grows makes the passthru bdev grow. (The helper's base
 *    events; a module holding I/O would add a quiesce hook, see error.c.)
 *  - Teardown runs in order: our channels are gone, then the claim is
 *    released and the base descriptor closed on the thread that opened it,
 *    then the core is told destruct is done. (ust_vbdev_destruct.)
 * What is left to the module: its I/O path, what it reports, and how it is
 * recreated by save_config.
 *
 * Guarantees: every I/O type the base supports is supported and forwarded
 * with the same ranges and buffers; the completion status is the base's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"

#include "bdev_passthru.h"

/*
 * One live passthru bdev. It has nothing of its own beyond what every vbdev
 * has; a module with per-bdev state adds fields after vb.
 */
struct passthru {
	struct ust_vbdev vb; /* first: bdev.ctxt is this struct */
};

static struct ust_vbdev_class g_pt_class;

/* ---- I/O path ----------------------------------------------------------- */

/* The base finished: complete our I/O with its status. */
static void pt_base_io_done(struct ust_bdev_io *base_io, int status, void *cb_arg)
{
	struct ust_bdev_io *io = cb_arg;

	ust_bdev_io_complete_errno(io, status);
}

static void pt_submit_request(struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct passthru *pt = io->bdev->ctxt;
	struct ust_vbdev_channel *vch = ust_io_channel_get_ctx(ch);
	int rc;

	rc = ust_vbdev_forward(&pt->vb, vch->base_ch, io, pt_base_io_done);
	/*
	 * The base had no free I/O object: NOMEM makes our core queue the I/O
	 * and submit it again later, so we need no wait queue of our own.
	 */
	if (rc != 0)
		ust_vbdev_io_submit_failed(io, rc);
}

/* ---- information -------------------------------------------------------- */

static int pt_dump_info_json(void *ctxt, json_t *driver_specific)
{
	struct passthru *pt = ctxt;

	json_object_set_new(driver_specific, "passthru",
			    json_pack("{s:s, s:s}", "name", pt->vb.bdev.name, "base_bdev_name",
				      ust_bdev_get_name(ust_vbdev_get_base(&pt->vb))));
	return 0;
}

static void pt_write_config_json(struct ust_bdev *bdev, json_t *calls)
{
	struct passthru *pt = bdev->ctxt;
	char uuid[UST_UUID_STRING_LEN];
	json_t *params;

	if (pt->vb.config == NULL)
		return; /* being deleted: nothing to recreate */
	params = json_pack("{s:s, s:s}", "base_bdev_name", pt->vb.config->base_name, "name",
			   ust_bdev_get_name(bdev));
	if (ust_uuid_fmt(uuid, sizeof(uuid), ust_bdev_get_uuid(bdev)) == 0)
		json_object_set_new(params, "uuid", json_string(uuid));
	json_array_append_new(calls, json_pack("{s:s, s:o}", "method", "bdev_passthru_create",
					       "params", params));
}

static const struct ust_bdev_fn_table g_pt_fn_table = {
	.destruct = ust_vbdev_destruct,
	.submit_request = pt_submit_request,
	.io_type_supported = ust_vbdev_io_type_supported,
	.get_io_channel = ust_vbdev_get_io_channel,
	.dump_info_json = pt_dump_info_json,
	.write_config_json = pt_write_config_json,
};

/* ---- construction ------------------------------------------------------- */

int ust_bdev_passthru_create(const char *base_name, const char *name,
			     const struct ust_uuid *uuid)
{
	struct ust_vbdev_config c = {.name = name, .base_name = base_name};

	if (uuid != NULL)
		c.uuid = *uuid;
	return ust_vbdev_create(&g_pt_class, &c);
}

int ust_bdev_passthru_delete(const char *name, void (*cb)(void *ctx, int rc), void *ctx)
{
	return ust_vbdev_delete(&g_pt_class, name, cb, ctx);
}

/* ---- module ------------------------------------------------------------- */

/* A bdev appeared: build every passthru configured on it. */
static void pt_examine_config(struct ust_bdev *bdev)
{
	ust_vbdev_examine_config(&g_pt_class, bdev);
}

static int pt_get_ctx_size(void)
{
	return 0; /* no per-I/O state: the base I/O's cb_arg is our I/O */
}

static void pt_module_fini(void)
{
	ust_vbdev_class_fini(&g_pt_class);
}

static struct ust_bdev_module g_passthru_module = {
	.name = "passthru",
	.module_fini = pt_module_fini,
	.examine_config = pt_examine_config,
	.get_ctx_size = pt_get_ctx_size,
};
UST_BDEV_MODULE_REGISTER(passthru, &g_passthru_module)

/* No hooks: a passthru holds no I/O, needs no per-bdev or per-channel state. */
static struct ust_vbdev_class g_pt_class = {
	.module = &g_passthru_module,
	.fn_table = &g_pt_fn_table,
	.product_name = "passthru",
	.vbdev_size = sizeof(struct passthru),
	.config_size = sizeof(struct ust_vbdev_config),
	.channel_size = sizeof(struct ust_vbdev_channel),
};

/* ---- RPCs --------------------------------------------------------------- */

struct rpc_pt_create {
	char *base_bdev_name;
	char *name;
	char *uuid;
};

static const struct ust_json_object_decoder g_rpc_pt_create_decoders[] = {
	{"base_bdev_name", offsetof(struct rpc_pt_create, base_bdev_name), ust_json_decode_string,
	 false},
	{"name", offsetof(struct rpc_pt_create, name), ust_json_decode_string, false},
	{"uuid", offsetof(struct rpc_pt_create, uuid), ust_json_decode_string, true},
};

static void rpc_bdev_passthru_create(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_pt_create p = {0};
	struct ust_uuid uuid = {0};
	int rc;

	if (!ust_rpc_decode_params(req, params, g_rpc_pt_create_decoders, 3, &p))
		goto out;
	if (p.uuid != NULL && ust_uuid_parse(&uuid, p.uuid) != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "invalid uuid '%s'",
				   p.uuid);
		goto out;
	}
	rc = ust_bdev_passthru_create(p.base_bdev_name, p.name, &uuid);
	if (rc != 0) {
		ust_rpc_send_error(req, rc == -EINVAL ? UST_JSONRPC_ERROR_INVALID_PARAMS :
							UST_JSONRPC_ERROR_INTERNAL_ERROR,
				   "cannot create passthru %s on %s: %s", p.name, p.base_bdev_name,
				   strerror(-rc));
		goto out;
	}
	ust_rpc_send_result(req, json_string(p.name));
out:
	free(p.base_bdev_name);
	free(p.name);
	free(p.uuid);
}
UST_RPC_REGISTER("bdev_passthru_create", rpc_bdev_passthru_create,
		 UST_RPC_STARTUP | UST_RPC_RUNTIME)

struct rpc_pt_delete {
	char *name;
};

static const struct ust_json_object_decoder g_rpc_pt_delete_decoders[] = {
	{"name", offsetof(struct rpc_pt_delete, name), ust_json_decode_string, false},
};

static void rpc_pt_delete_done(void *ctx, int rc)
{
	if (rc != 0)
		ust_rpc_send_errno(ctx, rc);
	else
		ust_rpc_send_bool(ctx, true);
}

static void rpc_bdev_passthru_delete(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_pt_delete p = {0};

	if (!ust_rpc_decode_params(req, params, g_rpc_pt_delete_decoders, 1, &p))
		return;
	if (ust_bdev_passthru_delete(p.name, rpc_pt_delete_done, req) != 0)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "no passthru bdev named %s", p.name);
	free(p.name);
}
UST_RPC_REGISTER("bdev_passthru_delete", rpc_bdev_passthru_delete, UST_RPC_RUNTIME)
