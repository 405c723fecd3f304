/*
 * The "passthru" bdev module: a virtual bdev that forwards every I/O to the
 * bdev beneath it and hands back the result unchanged. It does nothing
 * useful on its own; it is the smallest complete virtual bdev and the
 * starting point for writing a new one, so it is commented for that reader.
 *
 * What a virtual bdev has to get right, and where this file does it:
 *  - Configuration outlives the base: bdev_passthru_create remembers
 *    "name over base" (g_configs) and builds the bdev when the base shows up
 *    (examine_config), so a JSON config may name bdevs in any order.
 *  - The base is opened and claimed, so nobody else writes under us.
 *  - Each thread gets a channel holding that thread's base channel: all I/O
 *    on a thread goes straight down without locks or messages.
 *  - The base going away (hot remove) takes the passthru bdev with it; a
 *    base that grows makes the passthru bdev grow.
 *  - Teardown runs in order: our channels are gone (io_device unregister),
 *    then the claim is released and the base descriptor closed on the
 *    thread that opened it, then the core is told destruct is done.
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

/* One remembered bdev_passthru_create call. */
struct pt_config {
	char *name;
	char *base_name;
	struct ust_uuid uuid;
	TAILQ_ENTRY(pt_config) link;
};

/* One live passthru bdev. */
struct passthru {
	struct ust_bdev bdev; /* what we registered; bdev.ctxt points back here */
	struct ust_bdev_desc *base_desc;
	struct ust_thread *desc_thread; /* base_desc must be closed here */
	struct pt_config *config;
	TAILQ_ENTRY(passthru) link;
};

/* Per-thread context of our io_device (the struct passthru). */
struct pt_channel {
	struct ust_io_channel *base_ch;
};

static TAILQ_HEAD(, pt_config) g_configs = TAILQ_HEAD_INITIALIZER(g_configs);
static TAILQ_HEAD(, passthru) g_passthrus = TAILQ_HEAD_INITIALIZER(g_passthrus);

static struct ust_bdev_module g_passthru_module;

/* ---- I/O path ----------------------------------------------------------- */

/* The base finished: complete our I/O with its status. */
static void pt_base_io_done(struct ust_bdev_io *base_io, int status, void *cb_arg)
{
	struct ust_bdev_io *io = cb_arg;

	ust_bdev_io_complete_errno(io, status);
}

/* Issue io's equivalent on the base; returns what the submit call returned. */
static int pt_forward(struct passthru *pt, struct ust_io_channel *base_ch, struct ust_bdev_io *io)
{
	struct ust_bdev_desc *d = pt->base_desc;
	uint64_t off = io->offset_blocks, n = io->num_blocks;

	switch (io->type) {
	case UST_BDEV_IO_TYPE_READ:
		return ust_bdev_readv_blocks(d, base_ch, io->iovs, io->iovcnt, off, n,
					     pt_base_io_done, io);
	case UST_BDEV_IO_TYPE_WRITE:
		return ust_bdev_writev_blocks(d, base_ch, io->iovs, io->iovcnt, off, n,
					      pt_base_io_done, io);
	case UST_BDEV_IO_TYPE_UNMAP:
		return ust_bdev_unmap_blocks(d, base_ch, off, n, pt_base_io_done, io);
	case UST_BDEV_IO_TYPE_FLUSH:
		return ust_bdev_flush_blocks(d, base_ch, off, n, pt_base_io_done, io);
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
		return ust_bdev_write_zeroes_blocks(d, base_ch, off, n, pt_base_io_done, io);
	case UST_BDEV_IO_TYPE_RESET:
		return ust_bdev_reset(d, base_ch, pt_base_io_done, io);
	case UST_BDEV_IO_TYPE_COMPARE:
		return ust_bdev_comparev_blocks(d, base_ch, io->iovs, io->iovcnt, off, n,
						pt_base_io_done, io);
	case UST_BDEV_IO_TYPE_COMPARE_AND_WRITE:
		return ust_bdev_comparev_and_writev_blocks(d, base_ch, io->iovs, io->iovcnt,
							   io->fused_iovs, io->fused_iovcnt, off,
							   n, pt_base_io_done, io);
	default:
		return -ENOTSUP;
	}
}

static void pt_submit_request(struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct passthru *pt = io->bdev->ctxt;
	struct pt_channel *pch = ust_io_channel_get_ctx(ch);
	int rc;

	rc = pt_forward(pt, pch->base_ch, io);
	if (rc == 0)
		return;
	/*
	 * The base had no free I/O object: NOMEM makes our core queue the I/O
	 * and submit it again later, so we need no wait queue of our own.
	 */
	if (rc == -ENOMEM)
		ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_NOMEM);
	else
		ust_bdev_io_complete_errno(io, rc);
}

static bool pt_io_type_supported(void *ctxt, enum ust_bdev_io_type type)
{
	struct passthru *pt = ctxt;

	return ust_bdev_io_type_supported(ust_bdev_desc_get_bdev(pt->base_desc), type);
}

/* ---- channels ----------------------------------------------------------- */

static int pt_channel_create(void *io_device, void *ctx_buf)
{
	struct passthru *pt = io_device;
	struct pt_channel *pch = ctx_buf;

	/* Runs on the thread that wants a channel: take that thread's base channel. */
	pch->base_ch = ust_bdev_get_io_channel(pt->base_desc);
	return pch->base_ch != NULL ? 0 : -ENOMEM;
}

static void pt_channel_destroy(void *io_device, void *ctx_buf)
{
	struct pt_channel *pch = ctx_buf;

	ust_put_io_channel(pch->base_ch);
}

static struct ust_io_channel *pt_get_io_channel(void *ctxt)
{
	return ust_get_io_channel(ctxt);
}

/* ---- teardown ----------------------------------------------------------- */

static void pt_close_base_desc(void *arg)
{
	ust_bdev_close(arg);
}

/* Every channel of ours is gone: let go of the base and free. */
static void pt_device_gone(void *io_device)
{
	struct passthru *pt = io_device;

	ust_bdev_module_release_bdev(ust_bdev_desc_get_bdev(pt->base_desc));
	if (pt->desc_thread == ust_get_thread())
		ust_bdev_close(pt->base_desc);
	else
		ust_thread_send_msg(pt->desc_thread, pt_close_base_desc, pt->base_desc);
	ust_bdev_destruct_done(&pt->bdev, 0);
	free(pt->bdev.name);
	free(pt);
}

static int pt_destruct(void *ctxt)
{
	struct passthru *pt = ctxt;

	TAILQ_REMOVE(&g_passthrus, pt, link);
	ust_io_device_unregister(pt, pt_device_gone);
	return 1; /* finished later by pt_device_gone() */
}

/* Events of the base, on the thread that opened it. */
static void pt_base_event(enum ust_bdev_event_type type, struct ust_bdev *base, void *ctx)
{
	struct passthru *pt = ctx;

	switch (type) {
	case UST_BDEV_EVENT_REMOVE:
		ust_bdev_unregister(&pt->bdev, NULL, NULL);
		break;
	case UST_BDEV_EVENT_RESIZE:
		if (ust_bdev_notify_blockcnt_change(&pt->bdev, ust_bdev_get_num_blocks(base)) != 0)
			UST_ERRLOG("passthru %s: cannot follow the resize of %s\n", pt->bdev.name,
				   ust_bdev_get_name(base));
		break;
	}
}

/* ---- information -------------------------------------------------------- */

static int pt_dump_info_json(void *ctxt, json_t *driver_specific)
{
	struct passthru *pt = ctxt;

	json_object_set_new(driver_specific, "passthru",
			    json_pack("{s:s, s:s}", "name", pt->bdev.name, "base_bdev_name",
				      ust_bdev_get_name(ust_bdev_desc_get_bdev(pt->base_desc))));
	return 0;
}

static void pt_write_config_json(struct ust_bdev *bdev, json_t *calls)
{
	struct passthru *pt = bdev->ctxt;
	char uuid[UST_UUID_STRING_LEN];
	json_t *params;

	if (pt->config == NULL)
		return; /* being deleted: nothing to recreate */
	params = json_pack("{s:s, s:s}", "base_bdev_name", pt->config->base_name, "name",
			   ust_bdev_get_name(bdev));
	if (ust_uuid_fmt(uuid, sizeof(uuid), ust_bdev_get_uuid(bdev)) == 0)
		json_object_set_new(params, "uuid", json_string(uuid));
	json_array_append_new(calls, json_pack("{s:s, s:o}", "method", "bdev_passthru_create",
					       "params", params));
}

static const struct ust_bdev_fn_table g_pt_fn_table = {
	.destruct = pt_destruct,
	.submit_request = pt_submit_request,
	.io_type_supported = pt_io_type_supported,
	.get_io_channel = pt_get_io_channel,
	.dump_info_json = pt_dump_info_json,
	.write_config_json = pt_write_config_json,
};

/* ---- construction ------------------------------------------------------- */

static struct passthru *pt_find_by_config(const struct pt_config *config)
{
	struct passthru *pt;

	TAILQ_FOREACH(pt, &g_passthrus, link) {
		if (pt->config == config)
			return pt;
	}
	return NULL;
}

/* Build the passthru bdev of config on base (which exists). */
static int pt_build(struct pt_config *config, struct ust_bdev *base)
{
	struct passthru *pt;
	int rc;

	pt = calloc(1, sizeof(*pt));
	if (pt == NULL)
		return -ENOMEM;
	pt->config = config;
	pt->desc_thread = ust_get_thread();
	rc = ust_bdev_open_ext(ust_bdev_get_name(base), false, pt_base_event, pt, &pt->base_desc);
	if (rc != 0)
		goto err_free;
	rc = ust_bdev_module_claim_bdev(base, pt->base_desc, &g_passthru_module);
	if (rc != 0)
		goto err_close;

	/* Same geometry as the base; alignment is the base core's business. */
	pt->bdev.name = strdup(config->name);
	if (pt->bdev.name == NULL) {
		rc = -ENOMEM;
		goto err_release;
	}
	pt->bdev.product_name = "passthru";
	pt->bdev.blocklen = ust_bdev_get_block_size(base);
	pt->bdev.blockcnt = ust_bdev_get_num_blocks(base);
	pt->bdev.write_cache = ust_bdev_has_write_cache(base);
	pt->bdev.md_len = ust_bdev_get_md_size(base);
	pt->bdev.md_interleave = ust_bdev_is_md_interleaved(base);
	pt->bdev.dif_type = ust_bdev_get_dif_type(base);
	pt->bdev.uuid = config->uuid;
	pt->bdev.ctxt = pt;
	pt->bdev.module = &g_passthru_module;
	pt->bdev.fn_table = &g_pt_fn_table;

	ust_io_device_register(pt, pt_channel_create, pt_channel_destroy,
			       sizeof(struct pt_channel), config->name);
	TAILQ_INSERT_TAIL(&g_passthrus, pt, link);
	rc = ust_bdev_register(&pt->bdev);
	if (rc == 0)
		return 0;
	TAILQ_REMOVE(&g_passthrus, pt, link);
	ust_io_device_unregister(pt, NULL);
	free(pt->bdev.name);
err_release:
	ust_bdev_module_release_bdev(base);
err_close:
	ust_bdev_close(pt->base_desc);
err_free:
	free(pt);
	UST_ERRLOG("passthru %s on %s: %s\n", config->name, config->base_name, strerror(-rc));
	return rc;
}

static struct pt_config *pt_config_find(const char *name)
{
	struct pt_config *c;

	TAILQ_FOREACH(c, &g_configs, link) {
		if (strcmp(c->name, name) == 0)
			return c;
	}
	return NULL;
}

static void pt_config_free(struct pt_config *c)
{
	TAILQ_REMOVE(&g_configs, c, link);
	free(c->name);
	free(c->base_name);
	free(c);
}

int ust_bdev_passthru_create(const char *base_name, const char *name,
			     const struct ust_uuid *uuid)
{
	struct pt_config *c;
	struct ust_bdev *base;
	int rc;

	if (base_name == NULL || name == NULL || name[0] == '\0' || strcmp(base_name, name) == 0)
		return -EINVAL;
	if (pt_config_find(name) != NULL || ust_bdev_get_by_name(name) != NULL)
		return -EEXIST;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->name = strdup(name);
	c->base_name = strdup(base_name);
	if (uuid != NULL)
		c->uuid = *uuid;
	TAILQ_INSERT_TAIL(&g_configs, c, link);
	if (c->name == NULL || c->base_name == NULL) {
		pt_config_free(c);
		return -ENOMEM;
	}
	base = ust_bdev_get_by_name(base_name);
	if (base == NULL)
		return 0; /* built by examine_config when the base arrives */
	rc = pt_build(c, base);
	if (rc != 0)
		pt_config_free(c);
	return rc;
}

int ust_bdev_passthru_delete(const char *name, void (*cb)(void *ctx, int rc), void *ctx)
{
	struct pt_config *c;
	struct passthru *pt;

	if (name == NULL)
		return -EINVAL;
	c = pt_config_find(name);
	if (c == NULL)
		return -ENODEV;
	pt = pt_find_by_config(c);
	if (pt != NULL)
		pt->config = NULL;
	pt_config_free(c);
	if (pt == NULL) {
		if (cb != NULL)
			cb(ctx, 0);
		return 0;
	}
	ust_bdev_unregister(&pt->bdev, cb, ctx);
	return 0;
}

/* ---- module ------------------------------------------------------------- */

/* A bdev appeared: build every passthru configured on it. */
static void pt_examine_config(struct ust_bdev *bdev)
{
	struct pt_config *c;
	const char *name = ust_bdev_get_name(bdev);

	TAILQ_FOREACH(c, &g_configs, link) {
		if (strcmp(c->base_name, name) == 0 && pt_find_by_config(c) == NULL)
			pt_build(c, bdev);
	}
	ust_bdev_module_examine_done(&g_passthru_module);
}

static int pt_get_ctx_size(void)
{
	return 0; /* no per-I/O state: the base I/O's cb_arg is our I/O */
}

static void pt_module_fini(void)
{
	struct pt_config *c;

	while ((c = TAILQ_FIRST(&g_configs)) != NULL)
		pt_config_free(c);
}

static struct ust_bdev_module g_passthru_module = {
	.name = "passthru",
	.module_fini = pt_module_fini,
	.examine_config = pt_examine_config,
	.get_ctx_size = pt_get_ctx_size,
};
UST_BDEV_MODULE_REGISTER(passthru, &g_passthru_module)

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
