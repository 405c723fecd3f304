/*
 * The "delay" bdev module: a virtual bdev that adds latency to its base,
 * for testing how consumers behave on slow devices, and its RPCs
 * bdev_delay_create, bdev_delay_delete and bdev_delay_update_latency.
 *
 * Each I/O is forwarded at once; its completion is held on the channel
 * until submit time + latency and released by the channel's timed poller,
 * so the reactor never sleeps. Reads and compares take the read latency;
 * writes, write_zeroes, unmap, flush and compare_and_write take the write
 * latency; resets are not delayed. About one I/O in a hundred (chosen by a
 * per-channel pseudo-random sequence) takes the p99 latency instead of the
 * average.
 *
 * Guarantees: no I/O completes earlier than its latency after it was
 * submitted (by the tick clock); a held completion keeps the base's status.
 * Latency changes apply to I/O submitted afterwards.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"

#include "bdev_delay.h"

/* How often a channel looks for due completions. */
#define DELAY_POLL_PERIOD_US 1

struct delay_config {
	char *name;
	char *base_name;
	uint64_t latency_us[UST_BDEV_DELAY_NUM_LATENCIES];
	struct ust_uuid uuid;
	TAILQ_ENTRY(delay_config) link;
};

struct delay_disk {
	struct ust_bdev bdev;
	struct ust_bdev_desc *base_desc;
	struct ust_thread *desc_thread;
	struct delay_config *config; /* NULL once deleted; holds the latencies */
	uint64_t latency_us[UST_BDEV_DELAY_NUM_LATENCIES]; /* atomic: read by I/O threads */
	TAILQ_ENTRY(delay_disk) link;
};

struct delay_io {
	TAILQ_ENTRY(delay_io) link;
	uint64_t due; /* ticks */
	int status;
};

struct delay_channel {
	struct ust_io_channel *base_ch;
	TAILQ_HEAD(, delay_io) held;
	struct ust_poller *poller;
	uint64_t rand_state;
};

static TAILQ_HEAD(, delay_config) g_delay_configs = TAILQ_HEAD_INITIALIZER(g_delay_configs);
static TAILQ_HEAD(, delay_disk) g_delay_disks = TAILQ_HEAD_INITIALIZER(g_delay_disks);
static struct ust_bdev_module g_delay_module;

/* ---- latency ------------------------------------------------------------ */

static uint64_t delay_us_to_ticks(uint64_t us)
{
	uint64_t hz = ust_get_ticks_hz();

	return (us / 1000000) * hz + (us % 1000000) * hz / 1000000;
}

/* xorshift64: cheap, per channel, good enough to pick 1 in 100. */
static uint64_t delay_rand(struct delay_channel *dch)
{
	uint64_t x = dch->rand_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	dch->rand_state = x;
	return x;
}

static bool delay_type_is_read(enum ust_bdev_io_type type)
{
	return type == UST_BDEV_IO_TYPE_READ || type == UST_BDEV_IO_TYPE_COMPARE;
}

static uint64_t delay_pick_latency_us(struct delay_disk *dd, struct delay_channel *dch,
				      enum ust_bdev_io_type type)
{
	bool p99 = delay_rand(dch) % 100 == 0;
	enum ust_bdev_delay_latency which;

	if (type == UST_BDEV_IO_TYPE_RESET)
		return 0;
	if (delay_type_is_read(type))
		which = p99 ? UST_BDEV_DELAY_P99_READ : UST_BDEV_DELAY_AVG_READ;
	else
		which = p99 ? UST_BDEV_DELAY_P99_WRITE : UST_BDEV_DELAY_AVG_WRITE;
	return __atomic_load_n(&dd->latency_us[which], __ATOMIC_RELAXED);
}

/* ---- I/O path ----------------------------------------------------------- */

static void delay_base_io_done(struct ust_bdev_io *base_io, int status, void *cb_arg)
{
	struct ust_bdev_io *io = cb_arg;
	struct delay_io *dio = ust_bdev_io_get_driver_ctx(io);
	struct delay_channel *dch = ust_io_channel_get_ctx(ust_bdev_io_get_io_channel(io));

	if (ust_get_ticks() >= dio->due) {
		ust_bdev_io_complete_errno(io, status);
		return;
	}
	dio->status = status;
	TAILQ_INSERT_TAIL(&dch->held, dio, link);
}

static int delay_release_due(void *arg)
{
	struct delay_channel *dch = arg;
	struct delay_io *dio, *tmp;
	uint64_t now;
	int busy = UST_POLLER_IDLE;

	if (TAILQ_EMPTY(&dch->held))
		return UST_POLLER_IDLE;
	now = ust_get_ticks();
	/* Latencies differ (avg, p99, updates), so the list is not in due order. */
	for (dio = TAILQ_FIRST(&dch->held); dio != NULL; dio = tmp) {
		tmp = TAILQ_NEXT(dio, link);
		if (dio->due > now)
			continue;
		TAILQ_REMOVE(&dch->held, dio, link);
		ust_bdev_io_complete_errno(ust_bdev_io_from_ctx(dio), dio->status);
		busy = UST_POLLER_BUSY;
	}
	return busy;
}

static int delay_forward(struct delay_disk *dd, struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct ust_bdev_desc *d = dd->base_desc;
	uint64_t off = io->offset_blocks, n = io->num_blocks;

	switch (io->type) {
	case UST_BDEV_IO_TYPE_READ:
		return ust_bdev_readv_blocks(d, ch, io->iovs, io->iovcnt, off, n,
					     delay_base_io_done, io);
	case UST_BDEV_IO_TYPE_WRITE:
		return ust_bdev_writev_blocks(d, ch, io->iovs, io->iovcnt, off, n,
					      delay_base_io_done, io);
	case UST_BDEV_IO_TYPE_UNMAP:
		return ust_bdev_unmap_blocks(d, ch, off, n, delay_base_io_done, io);
	case UST_BDEV_IO_TYPE_FLUSH:
		return ust_bdev_flush_blocks(d, ch, off, n, delay_base_io_done, io);
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
		return ust_bdev_write_zeroes_blocks(d, ch, off, n, delay_base_io_done, io);
	case UST_BDEV_IO_TYPE_RESET:
		return ust_bdev_reset(d, ch, delay_base_io_done, io);
	case UST_BDEV_IO_TYPE_COMPARE:
		return ust_bdev_comparev_blocks(d, ch, io->iovs, io->iovcnt, off, n,
						delay_base_io_done, io);
	case UST_BDEV_IO_TYPE_COMPARE_AND_WRITE:
		return ust_bdev_comparev_and_writev_blocks(d, ch, io->iovs, io->iovcnt,
							   io->fused_iovs, io->fused_iovcnt, off,
							   n, delay_base_io_done, io);
	default:
		return -ENOTSUP;
	}
}

static void delay_submit_request(struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct delay_disk *dd = io->bdev->ctxt;
	struct delay_channel *dch = ust_io_channel_get_ctx(ch);
	struct delay_io *dio = ust_bdev_io_get_driver_ctx(io);
	int rc;

	dio->due = ust_get_ticks() + delay_us_to_ticks(delay_pick_latency_us(dd, dch, io->type));
	dio->status = 0;
	rc = delay_forward(dd, dch->base_ch, io);
	if (rc == -ENOMEM)
		ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_NOMEM);
	else if (rc != 0)
		ust_bdev_io_complete_errno(io, rc);
}

static bool delay_io_type_supported(void *ctxt, enum ust_bdev_io_type type)
{
	struct delay_disk *dd = ctxt;

	return ust_bdev_io_type_supported(ust_bdev_desc_get_bdev(dd->base_desc), type);
}

/* ---- channels ----------------------------------------------------------- */

static int delay_channel_create(void *io_device, void *ctx_buf)
{
	struct delay_disk *dd = io_device;
	struct delay_channel *dch = ctx_buf;

	TAILQ_INIT(&dch->held);
	/* Any non-zero seed works; mixing in the address varies it per channel. */
	dch->rand_state = ((uint64_t)(uintptr_t)dch * 0x9e3779b97f4a7c15ull) | 1;
	dch->base_ch = ust_bdev_get_io_channel(dd->base_desc);
	if (dch->base_ch == NULL)
		return -ENOMEM;
	dch->poller = ust_poller_register(delay_release_due, dch, DELAY_POLL_PERIOD_US,
					  "delay_release");
	if (dch->poller == NULL) {
		ust_put_io_channel(dch->base_ch);
		return -ENOMEM;
	}
	return 0;
}

static void delay_channel_destroy(void *io_device, void *ctx_buf)
{
	struct delay_channel *dch = ctx_buf;
	struct delay_io *dio;

	/* Nothing should be held (the core drains first); never strand an I/O. */
	while ((dio = TAILQ_FIRST(&dch->held)) != NULL) {
		TAILQ_REMOVE(&dch->held, dio, link);
		ust_bdev_io_complete_errno(ust_bdev_io_from_ctx(dio), dio->status);
	}
	ust_poller_unregister(&dch->poller);
	ust_put_io_channel(dch->base_ch);
}

static struct ust_io_channel *delay_get_io_channel(void *ctxt)
{
	return ust_get_io_channel(ctxt);
}

/* ---- teardown ----------------------------------------------------------- */

static void delay_close_desc_msg(void *arg)
{
	ust_bdev_close(arg);
}

static void delay_device_gone(void *io_device)
{
	struct delay_disk *dd = io_device;

	ust_bdev_module_release_bdev(ust_bdev_desc_get_bdev(dd->base_desc));
	if (dd->desc_thread == ust_get_thread())
		ust_bdev_close(dd->base_desc);
	else
		ust_thread_send_msg(dd->desc_thread, delay_close_desc_msg, dd->base_desc);
	ust_bdev_destruct_done(&dd->bdev, 0);
	free(dd->bdev.name);
	free(dd);
}

static int delay_destruct(void *ctxt)
{
	struct delay_disk *dd = ctxt;

	TAILQ_REMOVE(&g_delay_disks, dd, link);
	ust_io_device_unregister(dd, delay_device_gone);
	return 1;
}

static void delay_base_event(enum ust_bdev_event_type type, struct ust_bdev *base, void *ctx)
{
	struct delay_disk *dd = ctx;

	if (type == UST_BDEV_EVENT_REMOVE)
		ust_bdev_unregister(&dd->bdev, NULL, NULL);
	else if (ust_bdev_notify_blockcnt_change(&dd->bdev, ust_bdev_get_num_blocks(base)) != 0)
		UST_ERRLOG("%s: cannot follow the resize of its base\n", dd->bdev.name);
}

/* ---- information -------------------------------------------------------- */

static const char *const g_latency_names[UST_BDEV_DELAY_NUM_LATENCIES] = {
	[UST_BDEV_DELAY_AVG_READ] = "avg_read",
	[UST_BDEV_DELAY_P99_READ] = "p99_read",
	[UST_BDEV_DELAY_AVG_WRITE] = "avg_write",
	[UST_BDEV_DELAY_P99_WRITE] = "p99_write",
};

/* Appends the four latencies to obj under SPDK's parameter names. */
static void delay_latencies_json(const uint64_t *lat, json_t *obj)
{
	char key[32];
	int i;

	for (i = 0; i < UST_BDEV_DELAY_NUM_LATENCIES; i++) {
		snprintf(key, sizeof(key), "%s_latency", g_latency_names[i]);
		json_object_set_new(obj, key,
				    json_integer((json_int_t)__atomic_load_n(&lat[i],
									     __ATOMIC_RELAXED)));
	}
}

static int delay_dump_info_json(void *ctxt, json_t *driver_specific)
{
	struct delay_disk *dd = ctxt;
	json_t *o = json_pack("{s:s, s:s}", "name", dd->bdev.name, "base_bdev_name",
			      ust_bdev_get_name(ust_bdev_desc_get_bdev(dd->base_desc)));

	delay_latencies_json(dd->latency_us, o);
	json_object_set_new(driver_specific, "delay", o);
	return 0;
}

static void delay_write_config_json(struct ust_bdev *bdev, json_t *calls)
{
	struct delay_disk *dd = bdev->ctxt;
	char uuid[UST_UUID_STRING_LEN];
	json_t *params;

	if (dd->config == NULL)
		return;
	params = json_pack("{s:s, s:s}", "base_bdev_name", dd->config->base_name, "name",
			   dd->bdev.name);
	delay_latencies_json(dd->latency_us, params);
	if (ust_uuid_fmt(uuid, sizeof(uuid), ust_bdev_get_uuid(bdev)) == 0)
		json_object_set_new(params, "uuid", json_string(uuid));
	json_array_append_new(calls, json_pack("{s:s, s:o}", "method", "bdev_delay_create",
					       "params", params));
}

static const struct ust_bdev_fn_table g_delay_fn_table = {
	.destruct = delay_destruct,
	.submit_request = delay_submit_request,
	.io_type_supported = delay_io_type_supported,
	.get_io_channel = delay_get_io_channel,
	.dump_info_json = delay_dump_info_json,
	.write_config_json = delay_write_config_json,
};

/* ---- construction ------------------------------------------------------- */

static struct delay_disk *delay_disk_find(const char *name)
{
	struct delay_disk *dd;

	TAILQ_FOREACH(dd, &g_delay_disks, link) {
		if (strcmp(dd->bdev.name, name) == 0)
			return dd;
	}
	return NULL;
}

static int delay_build(struct delay_config *c, struct ust_bdev *base)
{
	struct delay_disk *dd;
	int rc;

	dd = calloc(1, sizeof(*dd));
	if (dd == NULL)
		return -ENOMEM;
	dd->config = c;
	memcpy(dd->latency_us, c->latency_us, sizeof(dd->latency_us));
	dd->desc_thread = ust_get_thread();
	rc = ust_bdev_open_ext(ust_bdev_get_name(base), false, delay_base_event, dd, &dd->base_desc);
	if (rc != 0)
		goto err_free;
	rc = ust_bdev_module_claim_bdev(base, dd->base_desc, &g_delay_module);
	if (rc != 0)
		goto err_close;
	dd->bdev.name = strdup(c->name);
	if (dd->bdev.name == NULL) {
		rc = -ENOMEM;
		goto err_release;
	}
	dd->bdev.product_name = "delay";
	dd->bdev.blocklen = ust_bdev_get_block_size(base);
	dd->bdev.blockcnt = ust_bdev_get_num_blocks(base);
	dd->bdev.write_cache = ust_bdev_has_write_cache(base);
	dd->bdev.md_len = ust_bdev_get_md_size(base);
	dd->bdev.md_interleave = ust_bdev_is_md_interleaved(base);
	dd->bdev.dif_type = ust_bdev_get_dif_type(base);
	dd->bdev.uuid = c->uuid;
	dd->bdev.ctxt = dd;
	dd->bdev.module = &g_delay_module;
	dd->bdev.fn_table = &g_delay_fn_table;
	ust_io_device_register(dd, delay_channel_create, delay_channel_destroy,
			       sizeof(struct delay_channel), c->name);
	TAILQ_INSERT_TAIL(&g_delay_disks, dd, link);
	rc = ust_bdev_register(&dd->bdev);
	if (rc == 0)
		return 0;
	TAILQ_REMOVE(&g_delay_disks, dd, link);
	ust_io_device_unregister(dd, NULL);
	free(dd->bdev.name);
err_release:
	ust_bdev_module_release_bdev(base);
err_close:
	ust_bdev_close(dd->base_desc);
err_free:
	free(dd);
	UST_ERRLOG("delay bdev %s on %s: %s\n", c->name, c->base_name, strerror(-rc));
	return rc;
}

static struct delay_config *delay_config_find(const char *name)
{
	struct delay_config *c;

	TAILQ_FOREACH(c, &g_delay_configs, link) {
		if (strcmp(c->name, name) == 0)
			return c;
	}
	return NULL;
}

static void delay_config_free(struct delay_config *c)
{
	TAILQ_REMOVE(&g_delay_configs, c, link);
	free(c->name);
	free(c->base_name);
	free(c);
}

static bool delay_latencies_valid(const uint64_t *lat)
{
	return lat[UST_BDEV_DELAY_AVG_READ] <= lat[UST_BDEV_DELAY_P99_READ] &&
	       lat[UST_BDEV_DELAY_AVG_WRITE] <= lat[UST_BDEV_DELAY_P99_WRITE];
}

int ust_bdev_delay_create(const struct ust_bdev_delay_opts *opts)
{
	struct delay_config *c;
	struct ust_bdev *base;
	int rc;

	if (opts == NULL || opts->base_bdev_name == NULL || opts->name == NULL ||
	    opts->name[0] == '\0' || strcmp(opts->name, opts->base_bdev_name) == 0)
		return -EINVAL;
	if (!delay_latencies_valid(opts->latency_us)) {
		UST_ERRLOG("delay bdev %s: an average latency is above its p99 latency\n",
			   opts->name);
		return -EINVAL;
	}
	if (delay_config_find(opts->name) != NULL || ust_bdev_get_by_name(opts->name) != NULL)
		return -EEXIST;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->name = strdup(opts->name);
	c->base_name = strdup(opts->base_bdev_name);
	memcpy(c->latency_us, opts->latency_us, sizeof(c->latency_us));
	c->uuid = opts->uuid;
	TAILQ_INSERT_TAIL(&g_delay_configs, c, link);
	if (c->name == NULL || c->base_name == NULL) {
		delay_config_free(c);
		return -ENOMEM;
	}
	base = ust_bdev_get_by_name(opts->base_bdev_name);
	if (base == NULL)
		return 0;
	rc = delay_build(c, base);
	if (rc != 0)
		delay_config_free(c);
	return rc;
}

int ust_bdev_delay_delete(const char *name, void (*cb)(void *ctx, int rc), void *ctx)
{
	struct delay_config *c;
	struct delay_disk *dd;

	if (name == NULL)
		return -EINVAL;
	c = delay_config_find(name);
	if (c == NULL)
		return -ENODEV;
	dd = delay_disk_find(name);
	delay_config_free(c);
	if (dd == NULL) {
		if (cb != NULL)
			cb(ctx, 0);
		return 0;
	}
	dd->config = NULL;
	ust_bdev_unregister(&dd->bdev, cb, ctx);
	return 0;
}

int ust_bdev_delay_update_latency(const char *name, enum ust_bdev_delay_latency type,
				  uint64_t latency_us)
{
	struct delay_disk *dd;
	uint64_t lat[UST_BDEV_DELAY_NUM_LATENCIES];
	int i;

	if (name == NULL || (unsigned int)type >= UST_BDEV_DELAY_NUM_LATENCIES)
		return -EINVAL;
	dd = delay_disk_find(name);
	if (dd == NULL)
		return -ENODEV;
	for (i = 0; i < UST_BDEV_DELAY_NUM_LATENCIES; i++)
		lat[i] = __atomic_load_n(&dd->latency_us[i], __ATOMIC_RELAXED);
	lat[type] = latency_us;
	if (!delay_latencies_valid(lat))
		return -EINVAL;
	__atomic_store_n(&dd->latency_us[type], latency_us, __ATOMIC_RELAXED);
	if (dd->config != NULL)
		dd->config->latency_us[type] = latency_us;
	return 0;
}

/* ---- module ------------------------------------------------------------- */

static void delay_examine_config(struct ust_bdev *bdev)
{
	struct delay_config *c;
	const char *name = ust_bdev_get_name(bdev);

	TAILQ_FOREACH(c, &g_delay_configs, link) {
		if (strcmp(c->base_name, name) == 0 && delay_disk_find(c->name) == NULL)
			delay_build(c, bdev);
	}
	ust_bdev_module_examine_done(&g_delay_module);
}

static int delay_get_ctx_size(void)
{
	return (int)sizeof(struct delay_io);
}

static void delay_module_fini(void)
{
	struct delay_config *c;

	while ((c = TAILQ_FIRST(&g_delay_configs)) != NULL)
		delay_config_free(c);
}

static struct ust_bdev_module g_delay_module = {
	.name = "delay",
	.module_fini = delay_module_fini,
	.examine_config = delay_examine_config,
	.get_ctx_size = delay_get_ctx_size,
};
UST_BDEV_MODULE_REGISTER(delay, &g_delay_module)

/* ---- RPCs --------------------------------------------------------------- */

struct rpc_delay_create {
	char *base_bdev_name;
	char *name;
	uint64_t lat[UST_BDEV_DELAY_NUM_LATENCIES];
	char *uuid;
};

static const struct ust_json_object_decoder g_rpc_delay_create_decoders[] = {
	{"base_bdev_name", offsetof(struct rpc_delay_create, base_bdev_name),
	 ust_json_decode_string, false},
	{"name", offsetof(struct rpc_delay_create, name), ust_json_decode_string, false},
	{"avg_read_latency", offsetof(struct rpc_delay_create, lat[UST_BDEV_DELAY_AVG_READ]),
	 ust_json_decode_uint64, false},
	{"p99_read_latency", offsetof(struct rpc_delay_create, lat[UST_BDEV_DELAY_P99_READ]),
	 ust_json_decode_uint64, false},
	{"avg_write_latency", offsetof(struct rpc_delay_create, lat[UST_BDEV_DELAY_AVG_WRITE]),
	 ust_json_decode_uint64, false},
	{"p99_write_latency", offsetof(struct rpc_delay_create, lat[UST_BDEV_DELAY_P99_WRITE]),
	 ust_json_decode_uint64, false},
	{"uuid", offsetof(struct rpc_delay_create, uuid), ust_json_decode_string, true},
};

static void rpc_bdev_delay_create(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_delay_create p = {0};
	struct ust_bdev_delay_opts opts = {0};
	int rc;

	if (!ust_rpc_decode_params(req, params, g_rpc_delay_create_decoders, 7, &p))
		goto out;
	if (p.uuid != NULL && ust_uuid_parse(&opts.uuid, p.uuid) != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "invalid uuid '%s'",
				   p.uuid);
		goto out;
	}
	opts.base_bdev_name = p.base_bdev_name;
	opts.name = p.name;
	memcpy(opts.latency_us, p.lat, sizeof(opts.latency_us));
	rc = ust_bdev_delay_create(&opts);
	if (rc != 0) {
		ust_rpc_send_error(req, rc == -EINVAL ? UST_JSONRPC_ERROR_INVALID_PARAMS :
							UST_JSONRPC_ERROR_INTERNAL_ERROR,
				   "cannot create delay bdev %s on %s: %s%s", p.name,
				   p.base_bdev_name, strerror(-rc),
				   rc == -EINVAL ? " (is an average above its p99?)" : "");
		goto out;
	}
	ust_rpc_send_result(req, json_string(p.name));
out:
	free(p.base_bdev_name);
	free(p.name);
	free(p.uuid);
}
UST_RPC_REGISTER("bdev_delay_create", rpc_bdev_delay_create, UST_RPC_STARTUP | UST_RPC_RUNTIME)

struct rpc_delay_delete {
	char *name;
};

static const struct ust_json_object_decoder g_rpc_delay_delete_decoders[] = {
	{"name", offsetof(struct rpc_delay_delete, name), ust_json_decode_string, false},
};

static void rpc_delay_delete_done(void *ctx, int rc)
{
	if (rc != 0)
		ust_rpc_send_errno(ctx, rc);
	else
		ust_rpc_send_bool(ctx, true);
}

static void rpc_bdev_delay_delete(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_delay_delete p = {0};

	if (!ust_rpc_decode_params(req, params, g_rpc_delay_delete_decoders, 1, &p))
		return;
	if (ust_bdev_delay_delete(p.name, rpc_delay_delete_done, req) != 0)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "no delay bdev named %s",
				   p.name);
	free(p.name);
}
UST_RPC_REGISTER("bdev_delay_delete", rpc_bdev_delay_delete, UST_RPC_RUNTIME)

struct rpc_delay_update {
	char *delay_bdev_name;
	char *latency_type;
	uint64_t latency_us;
};

static const struct ust_json_object_decoder g_rpc_delay_update_decoders[] = {
	{"delay_bdev_name", offsetof(struct rpc_delay_update, delay_bdev_name),
	 ust_json_decode_string, false},
	{"latency_type", offsetof(struct rpc_delay_update, latency_type), ust_json_decode_string,
	 false},
	{"latency_us", offsetof(struct rpc_delay_update, latency_us), ust_json_decode_uint64,
	 false},
};

static void rpc_bdev_delay_update_latency(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_delay_update p = {0};
	int i, rc;

	if (!ust_rpc_decode_params(req, params, g_rpc_delay_update_decoders, 3, &p))
		goto out;
	for (i = 0; i < UST_BDEV_DELAY_NUM_LATENCIES; i++) {
		if (strcmp(p.latency_type, g_latency_names[i]) == 0)
			break;
	}
	if (i == UST_BDEV_DELAY_NUM_LATENCIES) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "unknown latency_type '%s' (avg_read, p99_read, avg_write, "
				   "p99_write)", p.latency_type);
		goto out;
	}
	rc = ust_bdev_delay_update_latency(p.delay_bdev_name, i, p.latency_us);
	if (rc == -ENODEV)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "no delay bdev named %s",
				   p.delay_bdev_name);
	else if (rc == -EINVAL)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "%s %" PRIu64 " us would put an average above its p99",
				   p.latency_type, p.latency_us);
	else
		ust_rpc_send_bool(req, true);
out:
	free(p.delay_bdev_name);
	free(p.latency_type);
}
UST_RPC_REGISTER("bdev_delay_update_latency", rpc_bdev_delay_update_latency, UST_RPC_RUNTIME)
