/*
 * RPCs of the NVMe bdev module, with SPDK's method and parameter names:
 * bdev_nvme_set_options, bdev_nvme_attach_controller,
 * bdev_nvme_detach_controller, bdev_nvme_get_controllers,
 * bdev_nvme_reset_controller. The reconnect parameters
 * (ctrlr_loss_timeout_sec, reconnect_delay_sec, fast_io_fail_timeout_sec)
 * of an attach default to those set by bdev_nvme_set_options.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"
#include "ustor/rpc.h"

#include "bdev_nvme.h"

struct rpc_attach {
	char *name;
	char *trtype;
	char *traddr;
	char *adrfam;
	char *trsvcid;
	char *subnqn;
	char *hostnqn;
	struct bdev_nvme_reconnect_opts reconnect;
};

#define RECONNECT_DECODERS(type, prefix)                                                          \
	{"ctrlr_loss_timeout_sec", offsetof(type, prefix ctrlr_loss_timeout_sec),                \
	 ust_json_decode_int32, true},                                                          \
	{"reconnect_delay_sec", offsetof(type, prefix reconnect_delay_sec),                     \
	 ust_json_decode_uint32, true},                                                          \
	{"fast_io_fail_timeout_sec", offsetof(type, prefix fast_io_fail_timeout_sec),           \
	 ust_json_decode_uint32, true}

static const struct ust_json_object_decoder g_attach_decoders[] = {
	{"name", offsetof(struct rpc_attach, name), ust_json_decode_string, false},
	{"trtype", offsetof(struct rpc_attach, trtype), ust_json_decode_string, false},
	{"traddr", offsetof(struct rpc_attach, traddr), ust_json_decode_string, false},
	{"adrfam", offsetof(struct rpc_attach, adrfam), ust_json_decode_string, true},
	{"trsvcid", offsetof(struct rpc_attach, trsvcid), ust_json_decode_string, true},
	{"subnqn", offsetof(struct rpc_attach, subnqn), ust_json_decode_string, true},
	{"hostnqn", offsetof(struct rpc_attach, hostnqn), ust_json_decode_string, true},
	RECONNECT_DECODERS(struct rpc_attach, reconnect.),
};

static void free_attach(struct rpc_attach *r)
{
	free(r->name);
	free(r->trtype);
	free(r->traddr);
	free(r->adrfam);
	free(r->trsvcid);
	free(r->subnqn);
	free(r->hostnqn);
}

/* Build the transport ID text and parse it: one set of rules and messages. */
static int build_trid(const struct rpc_attach *r, struct ust_nvme_transport_id *trid, char *err,
		      size_t errlen)
{
	char buf[UST_NVME_TRID_STRING_LEN + 64];
	size_t off = 0;
	int n;

	if (strpbrk(r->traddr, " \t") != NULL || (r->trsvcid && strpbrk(r->trsvcid, " \t")) ||
	    (r->subnqn && strpbrk(r->subnqn, " \t")) || strpbrk(r->trtype, " \t") ||
	    (r->adrfam && strpbrk(r->adrfam, " \t"))) {
		snprintf(err, errlen, "transport ID fields may not contain spaces");
		return -EINVAL;
	}
	n = snprintf(buf, sizeof(buf), "trtype:%s traddr:%s", r->trtype, r->traddr);
	off = n > 0 ? (size_t)n : 0;
	if (r->adrfam != NULL && off < sizeof(buf))
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, " adrfam:%s", r->adrfam);
	if (r->trsvcid != NULL && off < sizeof(buf))
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, " trsvcid:%s", r->trsvcid);
	if (r->subnqn != NULL && off < sizeof(buf))
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, " subnqn:%s", r->subnqn);
	if (off >= sizeof(buf)) {
		snprintf(err, errlen, "transport ID is too long");
		return -EINVAL;
	}
	return ust_nvme_transport_id_parse(trid, buf, err, errlen);
}

static void attach_done(void *ctx, int rc, json_t *names)
{
	struct ust_rpc_request *req = ctx;

	if (rc != 0)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INTERNAL_ERROR,
				   "cannot attach the NVMe controller: %s", strerror(-rc));
	else
		ust_rpc_send_result(req, json_incref(names));
}

static void rpc_bdev_nvme_attach_controller(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_attach r = {0};
	struct bdev_nvme_attach_opts opts;
	char err[256];
	int rc;

	/* Parameters left out keep bdev_nvme_set_options' values. */
	bdev_nvme_get_options(&r.reconnect);
	if (!ust_rpc_decode_params(req, params, g_attach_decoders,
				   sizeof(g_attach_decoders) / sizeof(g_attach_decoders[0]), &r))
		goto out;
	if (bdev_nvme_check_reconnect_opts(&r.reconnect, err, sizeof(err)) != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "%s", err);
		goto out;
	}
	memset(&opts, 0, sizeof(opts));
	opts.reconnect = &r.reconnect;
	if (build_trid(&r, &opts.trid, err, sizeof(err)) != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "%s", err);
		goto out;
	}
	if (opts.trid.traddr[0] == '\0') {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "traddr is required");
		goto out;
	}
	opts.name = r.name;
	opts.hostnqn = r.hostnqn;
	rc = bdev_nvme_attach_controller(&opts, attach_done, req);
	if (rc == -EEXIST)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "an NVMe controller named '%s' already exists", r.name);
	else if (rc == -EBUSY)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "controller %s is already attached", opts.trid.traddr);
	else if (rc == -ENOTSUP)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "transport '%s' is not available", r.trtype);
	else if (rc != 0)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INTERNAL_ERROR,
				   "cannot attach the NVMe controller: %s", strerror(-rc));
out:
	free_attach(&r);
}
UST_RPC_REGISTER("bdev_nvme_attach_controller", rpc_bdev_nvme_attach_controller,
		 UST_RPC_STARTUP | UST_RPC_RUNTIME)

static const struct ust_json_object_decoder g_set_options_decoders[] = {
	RECONNECT_DECODERS(struct bdev_nvme_reconnect_opts, ),
};

/* Only the reconnect parameters of SPDK's bdev_nvme_set_options are known here. */
static void rpc_bdev_nvme_set_options(struct ust_rpc_request *req, const json_t *params)
{
	struct bdev_nvme_reconnect_opts o;
	char err[256];

	bdev_nvme_get_options(&o);
	if (params != NULL &&
	    !ust_rpc_decode_params(req, params, g_set_options_decoders,
				   sizeof(g_set_options_decoders) / sizeof(g_set_options_decoders[0]),
				   &o))
		return;
	if (bdev_nvme_check_reconnect_opts(&o, err, sizeof(err)) != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "%s", err);
		return;
	}
	bdev_nvme_set_options(&o);
	ust_rpc_send_bool(req, true);
}
UST_RPC_REGISTER("bdev_nvme_set_options", rpc_bdev_nvme_set_options,
		 UST_RPC_STARTUP | UST_RPC_RUNTIME)

struct rpc_name {
	char *name;
};

static const struct ust_json_object_decoder g_name_decoders[] = {
	{"name", offsetof(struct rpc_name, name), ust_json_decode_string, false},
};

static const struct ust_json_object_decoder g_opt_name_decoders[] = {
	{"name", offsetof(struct rpc_name, name), ust_json_decode_string, true},
};

static void done_bool(void *ctx, int rc)
{
	struct ust_rpc_request *req = ctx;

	if (rc != 0)
		ust_rpc_send_errno(req, rc);
	else
		ust_rpc_send_bool(req, true);
}

static void name_error(struct ust_rpc_request *req, int rc, const char *name)
{
	if (rc == -ENODEV)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "no NVMe controller named '%s'", name);
	else if (rc == -EBUSY)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_STATE,
				   "NVMe controller '%s' is being attached or deleted", name);
	else
		ust_rpc_send_errno(req, rc);
}

static void rpc_bdev_nvme_detach_controller(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_name r = {0};
	int rc;

	if (!ust_rpc_decode_params(req, params, g_name_decoders, 1, &r))
		return;
	rc = bdev_nvme_detach_controller(r.name, done_bool, req);
	if (rc != 0)
		name_error(req, rc, r.name);
	free(r.name);
}
UST_RPC_REGISTER("bdev_nvme_detach_controller", rpc_bdev_nvme_detach_controller,
		 UST_RPC_RUNTIME)

static void rpc_bdev_nvme_reset_controller(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_name r = {0};
	int rc;

	if (!ust_rpc_decode_params(req, params, g_name_decoders, 1, &r))
		return;
	rc = bdev_nvme_reset_controller(r.name, done_bool, req);
	if (rc != 0)
		name_error(req, rc, r.name);
	free(r.name);
}
UST_RPC_REGISTER("bdev_nvme_reset_controller", rpc_bdev_nvme_reset_controller, UST_RPC_RUNTIME)

static void rpc_bdev_nvme_get_controllers(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_name r = {0};
	json_t *arr;
	int rc;

	if (!ust_rpc_decode_params(req, params, g_opt_name_decoders, 1, &r))
		return;
	arr = json_array();
	rc = bdev_nvme_get_controllers(r.name, arr);
	if (rc != 0) {
		json_decref(arr);
		name_error(req, rc, r.name);
	} else {
		ust_rpc_send_result(req, arr);
	}
	free(r.name);
}
UST_RPC_REGISTER("bdev_nvme_get_controllers", rpc_bdev_nvme_get_controllers, UST_RPC_RUNTIME)
