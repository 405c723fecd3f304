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
	struct ust_vbdev_config vc; /* first: the helpers' part */
	uint64_t latency_us[UST_BDEV_DELAY_NUM_LATENCIES];
};

struct delay_disk {
	struct ust_vbdev vb; /* first: bdev.ctxt is this struct */
	uint64_t latency_us[UST_BDEV_DELAY_NUM_LATENCIES]; /* atomic: read by I/O threads */
};

struct delay_io {
	TAILQ_ENTRY(delay_io) link;
	uint64_t due; /* ticks */
	int status;
};

struct delay_channel {
	struct ust_vbdev_channel vch; /* first: holds the base channel */
	TAILQ_HEAD(, delay_io) held;
	struct ust_poller *poller;
	uint64_t rand_state;
};

static struct ust_vbdev_class g_delay_class;

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

static void delay_submit_request(struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct delay_disk *dd = io->bdev->ctxt;
	struct delay_channel *dch = ust_io_channel_get_ctx(ch);
	struct delay_io *dio = ust_bdev_io_get_driver_ctx(io);
	int rc;

	dio->due = ust_get_ticks() + delay_us_to_ticks(delay_pick_latency_us(dd, dch, io->type));
	dio->status = 0;
	rc = ust_vbdev_forward(&dd->vb, dch->vch.base_ch, io, delay_base_io_done);
	if (rc != 0)
		ust_vbdev_io_submit_failed(io, rc);
}

/* ---- channels ----------------------------------------------------------- */

static int delay_channel_create(struct ust_vbdev *vb, void *ctx_buf)
{
	struct delay_channel *dch = ctx_buf;

	TAILQ_INIT(&dch->held);
	/* Any non-zero seed works; mixing in the address varies it per channel. */
	dch->rand_state = ((uint64_t)(uintptr_t)dch * 0x9e3779b97f4a7c15ull) | 1;
	dch->poller = ust_poller_register(delay_release_due, dch, DELAY_POLL_PERIOD_US,
					  "delay_release");
	return dch->poller != NULL ? 0 : -ENOMEM;
}

static void delay_channel_destroy(struct ust_vbdev *vb, void *ctx_buf)
{
	struct delay_channel *dch = ctx_buf;
	struct delay_io *dio;

	/* Nothing should be held (the core drains first); never strand an I/O. */
	while ((dio = TAILQ_FIRST(&dch->held)) != NULL) {
		TAILQ_REMOVE(&dch->held, dio, link);
		ust_bdev_io_complete_errno(ust_bdev_io_from_ctx(dio), dio->status);
	}
	ust_poller_unregister(&dch->poller);
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
	json_t *o = json_pack("{s:s, s:s}", "name", dd->vb.bdev.name, "base_bdev_name",
			      ust_bdev_get_name(ust_vbdev_get_base(&dd->vb)));

	delay_latencies_json(dd->latency_us, o);
	json_object_set_new(driver_specific, "delay", o);
	return 0;
}

static void delay_write_config_json(struct ust_bdev *bdev, json_t *calls)
{
	struct delay_disk *dd = bdev->ctxt;
	char uuid[UST_UUID_STRING_LEN];
	json_t *params;

	if (dd->vb.config == NULL)
		return;
	params = json_pack("{s:s, s:s}", "base_bdev_name", dd->vb.config->base_name, "name",
			   dd->vb.bdev.name);
	delay_latencies_json(dd->latency_us, params);
	if (ust_uuid_fmt(uuid, sizeof(uuid), ust_bdev_get_uuid(bdev)) == 0)
		json_object_set_new(params, "uuid", json_string(uuid));
	json_array_append_new(calls, json_pack("{s:s, s:o}", "method", "bdev_delay_create",
					       "params", params));
}

static const struct ust_bdev_fn_table g_delay_fn_table = {
	.destruct = ust_vbdev_destruct,
	.submit_request = delay_submit_request,
	.io_type_supported = ust_vbdev_io_type_supported,
	.get_io_channel = ust_vbdev_get_io_channel,
	.dump_info_json = delay_dump_info_json,
	.write_config_json = delay_write_config_json,
};

/* ---- construction ------------------------------------------------------- */

static struct delay_disk *delay_disk_find(const char *name)
{
	return (struct delay_disk *)ust_vbdev_find(&g_delay_class, name);
}

/* The vbdev starts with its configuration's latencies. */
static int delay_init(struct ust_vbdev *vb, struct ust_bdev *base)
{
	struct delay_disk *dd = (struct delay_disk *)vb;
	struct delay_config *c = (struct delay_config *)vb->config;

	memcpy(dd->latency_us, c->latency_us, sizeof(dd->latency_us));
	return 0;
}

static bool delay_latencies_valid(const uint64_t *lat)
{
	return lat[UST_BDEV_DELAY_AVG_READ] <= lat[UST_BDEV_DELAY_P99_READ] &&
	       lat[UST_BDEV_DELAY_AVG_WRITE] <= lat[UST_BDEV_DELAY_P99_WRITE];
}

int ust_bdev_delay_create(const struct ust_bdev_delay_opts *opts)
{
	struct delay_config c = {0};

	if (opts == NULL || opts->base_bdev_name == NULL || opts->name == NULL ||
	    opts->name[0] == '\0' || strcmp(opts->name, opts->base_bdev_name) == 0)
		return -EINVAL;
	if (!delay_latencies_valid(opts->latency_us)) {
		UST_ERRLOG("delay bdev %s: an average latency is above its p99 latency\n",
			   opts->name);
		return -EINVAL;
	}
	c.vc.name = opts->name;
	c.vc.base_name = opts->base_bdev_name;
	c.vc.uuid = opts->uuid;
	memcpy(c.latency_us, opts->latency_us, sizeof(c.latency_us));
	return ust_vbdev_create(&g_delay_class, &c.vc);
}

int ust_bdev_delay_delete(const char *name, void (*cb)(void *ctx, int rc), void *ctx)
{
	return ust_vbdev_delete(&g_delay_class, name, cb, ctx);
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
	if (dd->vb.config != NULL)
		((struct delay_config *)dd->vb.config)->latency_us[type] = latency_us;
	return 0;
}

/* ---- module ------------------------------------------------------------- */

static void delay_examine_config(struct ust_bdev *bdev)
{
	ust_vbdev_examine_config(&g_delay_class, bdev);
}

static int delay_get_ctx_size(void)
{
	return (int)sizeof(struct delay_io);
}

static void delay_module_fini(void)
{
	ust_vbdev_class_fini(&g_delay_class);
}

static struct ust_bdev_module g_delay_module = {
	.name = "delay",
	.module_fini = delay_module_fini,
	.examine_config = delay_examine_config,
	.get_ctx_size = delay_get_ctx_size,
};
UST_BDEV_MODULE_REGISTER(delay, &g_delay_module)

static struct ust_vbdev_class g_delay_class = {
	.module = &g_delay_module,
	.fn_table = &g_delay_fn_table,
	.product_name = "delay",
	.vbdev_size = sizeof(struct delay_disk),
	.config_size = sizeof(struct delay_config),
	.channel_size = sizeof(struct delay_channel),
	.init = delay_init,
	.channel_create = delay_channel_create,
	.channel_destroy = delay_channel_destroy,
};

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
