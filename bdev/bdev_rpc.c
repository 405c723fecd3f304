/*
 * The bdev layer's JSON-RPC methods (SPDK's published names and parameters,
 * so SPDK configs and scripts work): bdev_get_bdevs, bdev_get_iostat,
 * bdev_set_qos_limit, bdev_wait_for_examine, the deprecated get_bdevs, and
 * the bdev subsystem's save_config.
 *
 * Guarantees: every request is answered exactly once, with INVALID_PARAMS
 * naming the problem for bad input; a bdev removed while its statistics are
 * gathered is still answered for (a descriptor holds it until the answer).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/rpc.h"

#include "bdev_internal.h"

/* Referenced from bdev.c so a static link never drops these methods. */
const int ust_bdev_rpc_anchor = 1;

static const char *const g_qos_param_names[UST_BDEV_QOS_NUM_RATE_LIMIT_TYPES] = {
	"rw_ios_per_sec", "rw_mbytes_per_sec", "r_mbytes_per_sec", "w_mbytes_per_sec",
};

/* ---- bdev_get_bdevs ----------------------------------------------------- */

static void alias_append(const char *alias, void *ctx)
{
	json_array_append_new(ctx, json_string(alias));
}

static json_t *bdev_supported_types_json(struct ust_bdev *bdev)
{
	json_t *o = json_object();
	int t;

	for (t = UST_BDEV_IO_TYPE_READ; t < UST_BDEV_NUM_IO_TYPES; t++)
		json_object_set_new(o, ust_bdev_io_type_name((enum ust_bdev_io_type)t),
				    json_boolean(ust_bdev_io_type_supported(
					    bdev, (enum ust_bdev_io_type)t)));
	return o;
}

static json_t *bdev_rate_limits_json(struct ust_bdev *bdev)
{
	uint64_t limits[UST_BDEV_QOS_NUM_RATE_LIMIT_TYPES];
	json_t *o = json_object();
	int i;

	ust_bdev_get_qos_rate_limits(bdev, limits);
	for (i = 0; i < UST_BDEV_QOS_NUM_RATE_LIMIT_TYPES; i++)
		json_object_set_new(o, g_qos_param_names[i], json_integer((json_int_t)limits[i]));
	return o;
}

static json_t *bdev_info_json(struct ust_bdev *bdev)
{
	char uuid[UST_UUID_STRING_LEN];
	json_t *o, *aliases, *driver;

	ust_uuid_fmt(uuid, sizeof(uuid), &bdev->uuid);
	aliases = json_array();
	ust_bdev_foreach_alias(bdev, alias_append, aliases);
	driver = json_object();
	if (bdev->fn_table->dump_info_json != NULL)
		bdev->fn_table->dump_info_json(bdev->ctxt, driver);
	o = json_object();
	json_object_set_new(o, "name", json_string(ust_bdev_get_name(bdev)));
	json_object_set_new(o, "aliases", aliases);
	json_object_set_new(o, "product_name", json_string(ust_bdev_get_product_name(bdev)));
	json_object_set_new(o, "block_size", json_integer(bdev->blocklen));
	json_object_set_new(o, "num_blocks", json_integer((json_int_t)ust_bdev_get_num_blocks(bdev)));
	json_object_set_new(o, "uuid", json_string(uuid));
	json_object_set_new(o, "assigned_rate_limits", bdev_rate_limits_json(bdev));
	json_object_set_new(o, "claimed", json_boolean(ust_bdev_is_claimed(bdev)));
	json_object_set_new(o, "zoned", json_false());
	json_object_set_new(o, "supported_io_types", bdev_supported_types_json(bdev));
	json_object_set_new(o, "driver_specific", driver);
	json_object_set_new(o, "write_cache", json_boolean(bdev->write_cache));
	json_object_set_new(o, "module", json_string(bdev->module->name));
	json_object_set_new(o, "optimal_io_boundary", json_integer(bdev->optimal_io_boundary));
	json_object_set_new(o, "max_transfer_blocks", json_integer(bdev->max_transfer_blocks));
	json_object_set_new(o, "required_alignment",
			    json_integer((json_int_t)ust_bdev_get_buf_align(bdev)));
	json_object_set_new(o, "md_size", json_integer(bdev->md_len));
	json_object_set_new(o, "md_interleave", json_boolean(bdev->md_interleave));
	json_object_set_new(o, "dif_type", json_integer(bdev->dif_type));
	return o;
}

struct rpc_get_bdevs {
	char *name;
	uint64_t timeout;
};

static const struct ust_json_object_decoder g_get_bdevs_decoders[] = {
	{"name", offsetof(struct rpc_get_bdevs, name), ust_json_decode_string, true},
	{"timeout", offsetof(struct rpc_get_bdevs, timeout), ust_json_decode_uint64, true},
};

struct get_bdevs_wait {
	struct ust_rpc_request *req;
	char *name;
	uint64_t deadline;
	struct ust_poller *poller;
};

static void get_bdevs_answer_one(struct ust_rpc_request *req, struct ust_bdev *bdev)
{
	json_t *arr = json_array();

	json_array_append_new(arr, bdev_info_json(bdev));
	ust_rpc_send_result(req, arr);
}

static int get_bdevs_wait_poll(void *arg)
{
	struct get_bdevs_wait *w = arg;
	struct ust_bdev *bdev = ust_bdev_get_by_name(w->name);

	if (bdev == NULL && ust_get_ticks() < w->deadline)
		return UST_POLLER_IDLE;
	if (bdev != NULL)
		get_bdevs_answer_one(w->req, bdev);
	else
		ust_rpc_send_error(w->req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "no bdev named '%s'", w->name);
	ust_poller_unregister(&w->poller);
	free(w->name);
	free(w);
	return UST_POLLER_BUSY;
}

static void rpc_bdev_get_bdevs(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_get_bdevs r = {0};
	struct get_bdevs_wait *w;
	struct ust_bdev *bdev;
	json_t *arr;

	if (!ust_rpc_decode_params(req, params, g_get_bdevs_decoders, 2, &r))
		return;
	if (r.name == NULL) {
		arr = json_array();
		for (bdev = ust_bdev_first(); bdev != NULL; bdev = ust_bdev_next(bdev))
			json_array_append_new(arr, bdev_info_json(bdev));
		ust_rpc_send_result(req, arr);
		return;
	}
	bdev = ust_bdev_get_by_name(r.name);
	if (bdev != NULL || r.timeout == 0) {
		if (bdev != NULL)
			get_bdevs_answer_one(req, bdev);
		else
			ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
					   "no bdev named '%s'", r.name);
		free(r.name);
		return;
	}
	/* Wait up to timeout ms for the bdev to appear (e.g. made by examine). */
	w = calloc(1, sizeof(*w));
	if (w != NULL) {
		w->req = req;
		w->name = r.name;
		w->deadline = ust_get_ticks() + r.timeout * ust_get_ticks_hz() / 1000;
		w->poller = ust_poller_register(get_bdevs_wait_poll, w, 1000, "bdev_get_bdevs");
		if (w->poller != NULL)
			return;
		free(w);
	}
	ust_rpc_send_errno(req, -ENOMEM);
	free(r.name);
}
UST_RPC_REGISTER("bdev_get_bdevs", rpc_bdev_get_bdevs, UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_get_bdevs", get_bdevs)

/* ---- bdev_get_iostat ---------------------------------------------------- */

struct get_iostat_ctx {
	struct ust_rpc_request *req;
	json_t *bdevs;
	struct ust_bdev_desc **descs;
	size_t count;
	size_t next;
	struct ust_bdev_io_stat stat;
};

static void iostat_hold_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	/* The descriptor is closed as soon as the answer is built. */
}

static json_t *iostat_json(struct ust_bdev *bdev, const struct ust_bdev_io_stat *s)
{
	json_t *o = json_object();

#define SET_U64(key, v) json_object_set_new(o, key, json_integer((json_int_t)(v)))
	json_object_set_new(o, "name", json_string(ust_bdev_get_name(bdev)));
	SET_U64("bytes_read", s->bytes_read);
	SET_U64("num_read_ops", s->num_read_ops);
	SET_U64("bytes_written", s->bytes_written);
	SET_U64("num_write_ops", s->num_write_ops);
	SET_U64("bytes_unmapped", s->bytes_unmapped);
	SET_U64("num_unmap_ops", s->num_unmap_ops);
	SET_U64("bytes_zeroed", s->bytes_zeroed);
	SET_U64("num_write_zeroes_ops", s->num_write_zeroes_ops);
	SET_U64("bytes_compared", s->bytes_compared);
	SET_U64("num_compare_ops", s->num_compare_ops);
	SET_U64("num_compare_and_write_ops", s->num_compare_and_write_ops);
	SET_U64("num_flush_ops", s->num_flush_ops);
	SET_U64("num_reset_ops", s->num_reset_ops);
	SET_U64("read_latency_ticks", s->read_latency_ticks);
	SET_U64("max_read_latency_ticks", s->max_read_latency_ticks);
	SET_U64("min_read_latency_ticks", s->num_read_ops ? s->min_read_latency_ticks : 0);
	SET_U64("write_latency_ticks", s->write_latency_ticks);
	SET_U64("max_write_latency_ticks", s->max_write_latency_ticks);
	SET_U64("min_write_latency_ticks", s->num_write_ops ? s->min_write_latency_ticks : 0);
	SET_U64("unmap_latency_ticks", s->unmap_latency_ticks);
	SET_U64("max_unmap_latency_ticks", s->max_unmap_latency_ticks);
	SET_U64("min_unmap_latency_ticks", s->num_unmap_ops ? s->min_unmap_latency_ticks : 0);
	SET_U64("num_io_errors", s->num_io_errors);
	SET_U64("num_miscompares", s->num_miscompares);
#undef SET_U64
	return o;
}

static void iostat_next(struct get_iostat_ctx *c);

static void iostat_one_done(struct ust_bdev *bdev, struct ust_bdev_io_stat *stat, void *ctx,
			    int rc)
{
	struct get_iostat_ctx *c = ctx;

	if (rc == 0)
		json_array_append_new(c->bdevs, iostat_json(bdev, stat));
	iostat_next(c);
}

static void iostat_finish(struct get_iostat_ctx *c)
{
	json_t *result = json_object();
	size_t i;

	for (i = 0; i < c->count; i++)
		ust_bdev_close(c->descs[i]);
	json_object_set_new(result, "tick_rate", json_integer((json_int_t)ust_get_ticks_hz()));
	json_object_set_new(result, "ticks", json_integer((json_int_t)ust_get_ticks()));
	json_object_set_new(result, "bdevs", c->bdevs);
	ust_rpc_send_result(c->req, result);
	free(c->descs);
	free(c);
}

static void iostat_next(struct get_iostat_ctx *c)
{
	struct ust_bdev *bdev;

	if (c->next == c->count) {
		iostat_finish(c);
		return;
	}
	bdev = ust_bdev_desc_get_bdev(c->descs[c->next++]);
	ust_bdev_get_iostat(bdev, &c->stat, iostat_one_done, c);
}

struct rpc_get_iostat {
	char *name;
};

static const struct ust_json_object_decoder g_get_iostat_decoders[] = {
	{"name", offsetof(struct rpc_get_iostat, name), ust_json_decode_string, true},
};

static int iostat_open_all(struct get_iostat_ctx *c)
{
	struct ust_bdev *bdev;
	size_t n = 0;

	for (bdev = ust_bdev_first(); bdev != NULL; bdev = ust_bdev_next(bdev))
		n++;
	c->descs = calloc(n ? n : 1, sizeof(*c->descs));
	if (c->descs == NULL)
		return -ENOMEM;
	for (bdev = ust_bdev_first(); bdev != NULL && c->count < n; bdev = ust_bdev_next(bdev)) {
		if (ust_bdev_open_ext(ust_bdev_get_name(bdev), false, iostat_hold_event, NULL,
				      &c->descs[c->count]) == 0)
			c->count++;
	}
	return 0;
}

static void rpc_bdev_get_iostat(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_get_iostat r = {0};
	struct get_iostat_ctx *c;
	int rc;

	if (!ust_rpc_decode_params(req, params, g_get_iostat_decoders, 1, &r))
		return;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		ust_rpc_send_errno(req, -ENOMEM);
		free(r.name);
		return;
	}
	c->req = req;
	c->bdevs = json_array();
	if (r.name != NULL) {
		c->descs = calloc(1, sizeof(*c->descs));
		rc = c->descs ? ust_bdev_open_ext(r.name, false, iostat_hold_event, NULL,
						  &c->descs[0])
			      : -ENOMEM;
		if (rc != 0) {
			if (rc == -ENODEV)
				ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
						   "no bdev named '%s'", r.name);
			else
				ust_rpc_send_errno(req, rc);
			json_decref(c->bdevs);
			free(c->descs);
			free(c);
			free(r.name);
			return;
		}
		c->count = 1;
		free(r.name);
	} else if (iostat_open_all(c) != 0) {
		ust_rpc_send_errno(req, -ENOMEM);
		json_decref(c->bdevs);
		free(c);
		return;
	}
	iostat_next(c);
}
UST_RPC_REGISTER("bdev_get_iostat", rpc_bdev_get_iostat, UST_RPC_RUNTIME)

/* ---- bdev_set_qos_limit ------------------------------------------------- */

struct rpc_set_qos {
	char *name;
	uint64_t limits[UST_BDEV_QOS_NUM_RATE_LIMIT_TYPES];
};

static const struct ust_json_object_decoder g_set_qos_decoders[] = {
	{"name", offsetof(struct rpc_set_qos, name), ust_json_decode_string, false},
	{"rw_ios_per_sec", offsetof(struct rpc_set_qos, limits[0]), ust_json_decode_uint64, true},
	{"rw_mbytes_per_sec", offsetof(struct rpc_set_qos, limits[1]), ust_json_decode_uint64,
	 true},
	{"r_mbytes_per_sec", offsetof(struct rpc_set_qos, limits[2]), ust_json_decode_uint64,
	 true},
	{"w_mbytes_per_sec", offsetof(struct rpc_set_qos, limits[3]), ust_json_decode_uint64,
	 true},
};

static void rpc_qos_done(void *ctx, int rc)
{
	struct ust_rpc_request *req = ctx;

	if (rc != 0)
		ust_rpc_send_errno(req, rc);
	else
		ust_rpc_send_bool(req, true);
}

static void rpc_bdev_set_qos_limit(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_set_qos r = {0};
	struct ust_bdev *bdev;
	bool any = false;
	int i;

	for (i = 0; i < UST_BDEV_QOS_NUM_RATE_LIMIT_TYPES; i++)
		r.limits[i] = UINT64_MAX;
	if (!ust_rpc_decode_params(req, params, g_set_qos_decoders, 5, &r))
		return;
	for (i = 0; i < UST_BDEV_QOS_NUM_RATE_LIMIT_TYPES; i++) {
		if (r.limits[i] == UINT64_MAX)
			continue;
		any = true;
		/* Megabytes beyond this overflow bytes-per-second arithmetic. */
		if (i != UST_BDEV_QOS_RW_IOPS_RATE_LIMIT && r.limits[i] > (UINT64_MAX >> 21)) {
			ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
					   "%s is too large", g_qos_param_names[i]);
			free(r.name);
			return;
		}
	}
	if (!any) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "at least one of rw_ios_per_sec, rw_mbytes_per_sec, "
				   "r_mbytes_per_sec, w_mbytes_per_sec is required");
		free(r.name);
		return;
	}
	bdev = ust_bdev_get_by_name(r.name);
	if (bdev == NULL) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "no bdev named '%s'",
				   r.name);
		free(r.name);
		return;
	}
	free(r.name);
	ust_bdev_set_qos_rate_limits(bdev, r.limits, rpc_qos_done, req);
}
UST_RPC_REGISTER("bdev_set_qos_limit", rpc_bdev_set_qos_limit, UST_RPC_STARTUP | UST_RPC_RUNTIME)

/* ---- bdev_wait_for_examine ---------------------------------------------- */

static void rpc_examine_done(void *ctx)
{
	ust_rpc_send_bool(ctx, true);
}

static void rpc_bdev_wait_for_examine(struct ust_rpc_request *req, const json_t *params)
{
	int rc;

	if (!ust_rpc_decode_params(req, params, NULL, 0, NULL))
		return;
	rc = ust_bdev_wait_for_examine(rpc_examine_done, req);
	if (rc != 0)
		ust_rpc_send_errno(req, rc);
}
UST_RPC_REGISTER("bdev_wait_for_examine", rpc_bdev_wait_for_examine,
		 UST_RPC_STARTUP | UST_RPC_RUNTIME)

/* ---- save_config -------------------------------------------------------- */

static void config_append_qos(struct ust_bdev *bdev, json_t *calls)
{
	uint64_t limits[UST_BDEV_QOS_NUM_RATE_LIMIT_TYPES];
	json_t *params = NULL;
	int i;

	ust_bdev_get_qos_rate_limits(bdev, limits);
	for (i = 0; i < UST_BDEV_QOS_NUM_RATE_LIMIT_TYPES; i++) {
		if (limits[i] == 0)
			continue;
		if (params == NULL)
			params = json_pack("{s:s}", "name", ust_bdev_get_name(bdev));
		json_object_set_new(params, g_qos_param_names[i],
				    json_integer((json_int_t)limits[i]));
	}
	if (params != NULL)
		json_array_append_new(calls, json_pack("{s:s, s:o}", "method",
						       "bdev_set_qos_limit", "params", params));
}

/*
 * Modules' own settings, then every bdev in registration order (bases
 * before the vbdevs on them), then QoS limits, then a wait for examine so a
 * replay finishes only once every vbdev is back.
 */
void bdev_write_config_json(json_t *calls)
{
	struct ust_bdev_module *m;
	struct ust_bdev *bdev;

	TAILQ_FOREACH(m, &g_bdev_mgr.modules, internal.link) {
		if (m->config_json != NULL)
			m->config_json(calls);
	}
	for (bdev = ust_bdev_first(); bdev != NULL; bdev = ust_bdev_next(bdev)) {
		if (bdev->fn_table->write_config_json != NULL)
			bdev->fn_table->write_config_json(bdev, calls);
	}
	for (bdev = ust_bdev_first(); bdev != NULL; bdev = ust_bdev_next(bdev))
		config_append_qos(bdev, calls);
	json_array_append_new(calls, json_pack("{s:s}", "method", "bdev_wait_for_examine"));
}
