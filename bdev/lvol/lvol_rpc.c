/*
 * JSON-RPC methods of the lvol module, with SPDK's method and parameter
 * names (and its old method names as deprecated aliases), so SPDK users'
 * scripts work unchanged.
 *
 * Guarantees: every method answers exactly once; bad parameters are
 * INVALID_PARAMS naming what is wrong; every other failure is reported with
 * the errno's text and what was being done. Lvol operations are answered
 * when the change is durable.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"
#include "ustor/rpc.h"

#include "lvol_internal.h"

#define MIB (1024ull * 1024ull)

/* ---- text forms (the RPCs' and the "lvol.clear_method" xattr's) ---------------------- */

const char *lvol_clear_method_name(enum ust_lvol_clear_method m)
{
	switch (m) {
	case UST_LVOL_CLEAR_NONE:
		return "none";
	case UST_LVOL_CLEAR_WRITE_ZEROES:
		return "write_zeroes";
	case UST_LVOL_CLEAR_DEFAULT:
	case UST_LVOL_CLEAR_UNMAP:
		break;
	}
	return "unmap";
}

int ust_lvol_clear_method_parse(const char *text, enum ust_lvol_clear_method *method)
{
	if (text == NULL || method == NULL)
		return -EINVAL;
	if (strcmp(text, "none") == 0)
		*method = UST_LVOL_CLEAR_NONE;
	else if (strcmp(text, "unmap") == 0)
		*method = UST_LVOL_CLEAR_UNMAP;
	else if (strcmp(text, "write_zeroes") == 0)
		*method = UST_LVOL_CLEAR_WRITE_ZEROES;
	else
		return -EINVAL;
	return 0;
}


static void rpc_send_rc(struct ust_rpc_request *req, int rc, const char *what)
{
	int code = UST_JSONRPC_ERROR_INTERNAL_ERROR;

	if (rc == -EINVAL || rc == -ENODEV || rc == -EEXIST)
		code = UST_JSONRPC_ERROR_INVALID_PARAMS;
	else if (rc == -EBUSY)
		code = UST_JSONRPC_ERROR_INVALID_STATE;
	ust_rpc_send_error(req, code, "%s: %s", what, strerror(-rc));
}

/*
 * The lvstore named by uuid or lvs_name (exactly one). NULL after answering
 * the request with the error.
 */
static struct ust_lvol_store *rpc_find_lvs(struct ust_rpc_request *req, const char *uuid,
					   const char *name)
{
	struct ust_lvol_store *lvs;
	struct ust_uuid u;

	if ((uuid == NULL) == (name == NULL)) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "give exactly one of uuid and lvs_name");
		return NULL;
	}
	if (uuid != NULL) {
		if (ust_uuid_parse(&u, uuid) != 0) {
			ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
					   "invalid uuid '%s'", uuid);
			return NULL;
		}
		lvs = ust_lvs_get_by_uuid(&u);
	} else {
		lvs = ust_lvs_get_by_name(name);
	}
	if (lvs == NULL)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "no lvstore %s",
				   uuid != NULL ? uuid : name);
	return lvs;
}

static bool rpc_clear_method(struct ust_rpc_request *req, const char *text,
			     enum ust_lvol_clear_method *m)
{
	*m = UST_LVOL_CLEAR_DEFAULT;
	if (text == NULL)
		return true;
	if (ust_lvol_clear_method_parse(text, m) == 0)
		return true;
	ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
			   "clear_method must be none, unmap or write_zeroes, not '%s'", text);
	return false;
}

/* size_in_mib (MiB) or the older size (bytes): exactly one, positive. */
static bool rpc_size(struct ust_rpc_request *req, uint64_t size_in_mib, uint64_t size,
		     uint64_t *bytes)
{
	if ((size_in_mib != 0) == (size != 0)) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "give a positive size_in_mib (or size in bytes), not both");
		return false;
	}
	if (size_in_mib > UINT64_MAX / MIB) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "size_in_mib %llu is too large", (unsigned long long)size_in_mib);
		return false;
	}
	*bytes = size != 0 ? size : size_in_mib * MIB;
	return true;
}

static json_t *lvs_json(struct ust_lvol_store *lvs)
{
	struct ust_blob_store *bs = ust_lvs_get_bs(lvs);
	char uuid[UST_UUID_STRING_LEN];

	ust_uuid_fmt(uuid, sizeof(uuid), ust_lvs_get_uuid(lvs));
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "uuid", uuid, "name",
			 ust_lvs_get_name(lvs), "base_bdev", ust_lvs_get_base_bdev_name(lvs),
			 "total_data_clusters",
			 (json_int_t)ust_bs_get_total_data_cluster_count(bs), "free_clusters",
			 (json_int_t)ust_bs_get_free_cluster_count(bs), "block_size",
			 (json_int_t)ust_bs_get_io_unit_size(bs), "cluster_size",
			 (json_int_t)ust_bs_get_cluster_size(bs));
}

static json_t *lvol_json(struct ust_lvol *lvol)
{
	struct ust_lvol_store *lvs = ust_lvol_get_lvs(lvol);
	char uuid[UST_UUID_STRING_LEN], lvs_uuid[UST_UUID_STRING_LEN];
	char alias[LVOL_ALIAS_MAX];

	ust_uuid_fmt(uuid, sizeof(uuid), ust_lvol_get_uuid(lvol));
	ust_uuid_fmt(lvs_uuid, sizeof(lvs_uuid), ust_lvs_get_uuid(lvs));
	json_t *obj;

	snprintf(alias, sizeof(alias), "%s/%s", ust_lvs_get_name(lvs), ust_lvol_get_name(lvol));
	obj = json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:b, s:b, s:I, s:I, s:{s:s, s:s}}",
			"alias", alias, "uuid", uuid, "name", ust_lvol_get_name(lvol),
			"is_thin_provisioned", ust_lvol_is_thin(lvol), "is_snapshot",
			ust_lvol_is_snapshot(lvol), "is_clone", ust_lvol_is_clone(lvol),
			"is_esnap_clone", 0, "is_degraded", 0, "num_clusters",
			(json_int_t)ust_lvol_get_num_clusters(lvol), "num_allocated_clusters",
			(json_int_t)ust_lvol_get_num_allocated_clusters(lvol), "lvs", "name",
			ust_lvs_get_name(lvs), "uuid", lvs_uuid);
	lvol_family_json(lvol, obj);
	return obj;
}

/* An asynchronous call answered with true, or with an error saying what failed. */
struct rpc_op {
	struct ust_rpc_request *req;
	char what[256];
};

static struct rpc_op *rpc_op_new(struct ust_rpc_request *req, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static struct rpc_op *rpc_op_new(struct ust_rpc_request *req, const char *fmt, ...)
{
	struct rpc_op *op = calloc(1, sizeof(*op));
	va_list ap;

	if (op == NULL) {
		ust_rpc_send_errno(req, -ENOMEM);
		return NULL;
	}
	op->req = req;
	va_start(ap, fmt);
	vsnprintf(op->what, sizeof(op->what), fmt, ap);
	va_end(ap);
	return op;
}

static void rpc_bool_done(void *arg, int rc)
{
	struct rpc_op *op = arg;

	if (rc == -EBUSY)
		ust_rpc_send_error(op->req, UST_JSONRPC_ERROR_INVALID_STATE,
				   "%s: it is open for writing, claimed, or busy with another operation",
				   op->what);
	else if (rc != 0)
		rpc_send_rc(op->req, rc, op->what);
	else
		ust_rpc_send_bool(op->req, true);
	free(op);
}

/* ---- bdev_lvol_create_lvstore ----------------------------------------------------- */

struct rpc_create_lvs {
	char *bdev_name;
	char *lvs_name;
	uint32_t cluster_sz;
	char *clear_method;
	uint32_t num_md_pages_per_cluster_ratio;
	bool exist_ok;
};

static const struct ust_json_object_decoder g_create_lvs_decoders[] = {
	{"bdev_name", offsetof(struct rpc_create_lvs, bdev_name), ust_json_decode_string, false},
	{"lvs_name", offsetof(struct rpc_create_lvs, lvs_name), ust_json_decode_string, false},
	{"cluster_sz", offsetof(struct rpc_create_lvs, cluster_sz), ust_json_decode_uint32, true},
	{"clear_method", offsetof(struct rpc_create_lvs, clear_method), ust_json_decode_string,
	 true},
	{"num_md_pages_per_cluster_ratio",
	 offsetof(struct rpc_create_lvs, num_md_pages_per_cluster_ratio), ust_json_decode_uint32,
	 true},
	/* ustor's own: an lvstore of that name on that bdev is the answer, not -EEXIST */
	{"exist_ok", offsetof(struct rpc_create_lvs, exist_ok), ust_json_decode_bool, true},
};

/* What the create needs once every examine (which may load the store) is over. */
struct rpc_create_lvs_ctx {
	struct ust_rpc_request *req;
	char *bdev_name;
	char *lvs_name;
	bool exist_ok;
	struct ust_lvs_opts opts;
};

static void rpc_create_lvs_done(void *arg, struct ust_lvol_store *lvs, int rc)
{
	struct ust_rpc_request *req = arg;
	char uuid[UST_UUID_STRING_LEN];

	if (rc != 0) {
		rpc_send_rc(req, rc, "cannot create the lvstore");
		return;
	}
	ust_uuid_fmt(uuid, sizeof(uuid), ust_lvs_get_uuid(lvs));
	ust_rpc_send_result(req, json_string(uuid));
}

static void rpc_create_lvs_examined(void *arg)
{
	struct rpc_create_lvs_ctx *c = arg;
	struct ust_lvol_store *lvs = ust_lvs_get_by_name(c->lvs_name);
	struct ust_bdev *base = ust_bdev_get_by_name(c->bdev_name);

	if (c->exist_ok && lvs != NULL && base != NULL &&
	    strcmp(ust_lvs_get_base_bdev_name(lvs), ust_bdev_get_name(base)) == 0)
		rpc_create_lvs_done(c->req, lvs, 0);
	else
		ust_lvs_create(c->bdev_name, c->lvs_name, &c->opts, rpc_create_lvs_done, c->req);
	free(c->bdev_name);
	free(c->lvs_name);
	free(c);
}

static void rpc_bdev_lvol_create_lvstore(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_create_lvs p = {0};
	struct rpc_create_lvs_ctx *c;
	struct ust_lvs_opts opts;
	int rc;

	if (!ust_rpc_decode_params(req, params, g_create_lvs_decoders, 6, &p))
		goto out;
	ust_lvs_opts_init(&opts);
	if (!rpc_clear_method(req, p.clear_method, &opts.clear_method))
		goto out;
	if (!lvs_name_valid(p.lvs_name, UST_LVS_NAME_MAX)) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "lvs_name must be 1 to %d bytes without '/'", UST_LVS_NAME_MAX);
		goto out;
	}
	if (ust_bdev_get_by_name(p.bdev_name) == NULL) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "no bdev named %s",
				   p.bdev_name);
		goto out;
	}
	opts.cluster_sz = p.cluster_sz;
	opts.num_md_pages_per_cluster_ratio = p.num_md_pages_per_cluster_ratio;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		ust_rpc_send_errno(req, -ENOMEM);
		goto out;
	}
	*c = (struct rpc_create_lvs_ctx){req, p.bdev_name, p.lvs_name, p.exist_ok, opts};
	p.bdev_name = p.lvs_name = NULL;
	/* An examine in flight may be loading a store on the bdev: decide after it. */
	rc = ust_bdev_wait_for_examine(rpc_create_lvs_examined, c);
	if (rc != 0) {
		ust_rpc_send_errno(req, rc);
		free(c->bdev_name);
		free(c->lvs_name);
		free(c);
	}
out:
	free(p.bdev_name);
	free(p.lvs_name);
	free(p.clear_method);
}
UST_RPC_REGISTER("bdev_lvol_create_lvstore", rpc_bdev_lvol_create_lvstore,
		 UST_RPC_STARTUP | UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_lvol_create_lvstore", construct_lvol_store)

/* ---- lvstore selection: get / delete / grow ---------------------------------------------- */

struct rpc_lvs_select {
	char *uuid;
	char *lvs_name;
};

static const struct ust_json_object_decoder g_lvs_select_decoders[] = {
	{"uuid", offsetof(struct rpc_lvs_select, uuid), ust_json_decode_string, true},
	{"lvs_name", offsetof(struct rpc_lvs_select, lvs_name), ust_json_decode_string, true},
};

static void rpc_bdev_lvol_get_lvstores(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_lvs_select p = {0};
	struct ust_lvol_store *lvs;
	json_t *list;

	if (!ust_rpc_decode_params(req, params, g_lvs_select_decoders, 2, &p))
		goto out;
	list = json_array();
	if (p.uuid != NULL || p.lvs_name != NULL) {
		lvs = rpc_find_lvs(req, p.uuid, p.lvs_name);
		if (lvs == NULL) {
			json_decref(list);
			goto out;
		}
		json_array_append_new(list, lvs_json(lvs));
	} else {
		for (lvs = ust_lvs_first(); lvs != NULL; lvs = ust_lvs_next(lvs))
			json_array_append_new(list, lvs_json(lvs));
	}
	ust_rpc_send_result(req, list);
out:
	free(p.uuid);
	free(p.lvs_name);
}
UST_RPC_REGISTER("bdev_lvol_get_lvstores", rpc_bdev_lvol_get_lvstores, UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_lvol_get_lvstores", get_lvol_stores)

/*
 * The lvstore RPCs of the form {uuid | lvs_name} -> one call on the store,
 * answered true once it is durable: one decode, lookup and reply for all.
 */
struct rpc_lvs_method {
	const char *verb;
	void (*call)(struct ust_lvol_store *lvs, ust_lvs_op_cb cb, void *arg);
};

static void rpc_lvs_selected(struct ust_rpc_request *req, const json_t *params,
			     const struct rpc_lvs_method *m)
{
	struct rpc_lvs_select p = {0};
	struct ust_lvol_store *lvs;
	struct rpc_op *op;

	if (!ust_rpc_decode_params(req, params, g_lvs_select_decoders, 2, &p))
		goto out;
	lvs = rpc_find_lvs(req, p.uuid, p.lvs_name);
	op = lvs != NULL ? rpc_op_new(req, "cannot %s lvstore %s", m->verb, ust_lvs_get_name(lvs)) :
			   NULL;
	if (op != NULL)
		m->call(lvs, rpc_bool_done, op);
out:
	free(p.uuid);
	free(p.lvs_name);
}

static const struct rpc_lvs_method g_lvs_delete = {"delete", ust_lvs_destroy};
static const struct rpc_lvs_method g_lvs_grow = {"grow", ust_lvs_grow};

static void rpc_bdev_lvol_delete_lvstore(struct ust_rpc_request *req, const json_t *params)
{
	rpc_lvs_selected(req, params, &g_lvs_delete);
}
UST_RPC_REGISTER("bdev_lvol_delete_lvstore", rpc_bdev_lvol_delete_lvstore, UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_lvol_delete_lvstore", destroy_lvol_store)

/* The store takes the space its base bdev has grown by (after bdev_aio_rescan ...). */
static void rpc_bdev_lvol_grow_lvstore(struct ust_rpc_request *req, const json_t *params)
{
	rpc_lvs_selected(req, params, &g_lvs_grow);
}
UST_RPC_REGISTER("bdev_lvol_grow_lvstore", rpc_bdev_lvol_grow_lvstore, UST_RPC_RUNTIME)

/* ---- old_name / new_name: rename an lvstore or an lvol -------------------------------- */

struct rpc_rename {
	char *old_name;
	char *new_name;
};

static const struct ust_json_object_decoder g_rename_decoders[] = {
	{"old_name", offsetof(struct rpc_rename, old_name), ust_json_decode_string, false},
	{"new_name", offsetof(struct rpc_rename, new_name), ust_json_decode_string, false},
};

static void rpc_bdev_lvol_rename_lvstore(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_rename p = {0};
	struct ust_lvol_store *lvs;
	struct rpc_op *op;

	if (!ust_rpc_decode_params(req, params, g_rename_decoders, 2, &p))
		goto out;
	lvs = ust_lvs_get_by_name(p.old_name);
	if (lvs == NULL) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "no lvstore %s",
				   p.old_name);
		goto out;
	}
	op = rpc_op_new(req, "cannot rename lvstore %s to %s", p.old_name, p.new_name);
	if (op != NULL)
		ust_lvs_rename(lvs, p.new_name, rpc_bool_done, op);
out:
	free(p.old_name);
	free(p.new_name);
}
UST_RPC_REGISTER("bdev_lvol_rename_lvstore", rpc_bdev_lvol_rename_lvstore, UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_lvol_rename_lvstore", rename_lvol_store)

static struct ust_lvol *rpc_find_lvol(struct ust_rpc_request *req, const char *name)
{
	struct ust_lvol *lvol = ust_lvol_get_by_bdev_name(name);

	if (lvol == NULL)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "no lvol bdev %s", name);
	return lvol;
}

static void rpc_bdev_lvol_rename(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_rename p = {0};
	struct ust_lvol *lvol;
	struct rpc_op *op;

	if (!ust_rpc_decode_params(req, params, g_rename_decoders, 2, &p))
		goto out;
	lvol = rpc_find_lvol(req, p.old_name);
	op = lvol != NULL ? rpc_op_new(req, "cannot rename lvol %s to %s", p.old_name, p.new_name) :
			    NULL;
	if (op != NULL)
		ust_lvol_rename(lvol, p.new_name, rpc_bool_done, op);
out:
	free(p.old_name);
	free(p.new_name);
}
UST_RPC_REGISTER("bdev_lvol_rename", rpc_bdev_lvol_rename, UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_lvol_rename", rename_lvol_bdev)

/* ---- bdev_lvol_create ------------------------------------------------------------- */

struct rpc_create_lvol {
	char *uuid;
	char *lvs_name;
	char *lvol_name;
	uint64_t size_in_mib;
	uint64_t size;
	bool thin_provision;
	char *clear_method;
	bool exist_ok;
};

static const struct ust_json_object_decoder g_create_lvol_decoders[] = {
	{"uuid", offsetof(struct rpc_create_lvol, uuid), ust_json_decode_string, true},
	{"lvs_name", offsetof(struct rpc_create_lvol, lvs_name), ust_json_decode_string, true},
	{"lvol_name", offsetof(struct rpc_create_lvol, lvol_name), ust_json_decode_string, false},
	{"size_in_mib", offsetof(struct rpc_create_lvol, size_in_mib), ust_json_decode_uint64,
	 true},
	{"size", offsetof(struct rpc_create_lvol, size), ust_json_decode_uint64, true},
	{"thin_provision", offsetof(struct rpc_create_lvol, thin_provision), ust_json_decode_bool,
	 true},
	{"clear_method", offsetof(struct rpc_create_lvol, clear_method), ust_json_decode_string,
	 true},
	/* ustor's own: an lvol of that name in the store is the answer (as it is) */
	{"exist_ok", offsetof(struct rpc_create_lvol, exist_ok), ust_json_decode_bool, true},
};

static void rpc_create_lvol_done(void *arg, struct ust_lvol *lvol, int rc)
{
	struct ust_rpc_request *req = arg;

	if (rc != 0) {
		rpc_send_rc(req, rc, "cannot create the lvol");
		return;
	}
	ust_rpc_send_result(req, json_string(ust_bdev_get_name(ust_lvol_get_bdev(lvol))));
}

static void rpc_bdev_lvol_create(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_create_lvol p = {0};
	enum ust_lvol_clear_method clear;
	struct ust_lvol_store *lvs;
	struct ust_lvol *lvol;
	uint64_t bytes;

	if (!ust_rpc_decode_params(req, params, g_create_lvol_decoders, 8, &p))
		goto out;
	if (!rpc_size(req, p.size_in_mib, p.size, &bytes) ||
	    !rpc_clear_method(req, p.clear_method, &clear))
		goto out;
	if (!lvs_name_valid(p.lvol_name, UST_LVOL_NAME_MAX)) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "lvol_name must be 1 to %d bytes without '/'", UST_LVOL_NAME_MAX);
		goto out;
	}
	lvs = rpc_find_lvs(req, p.uuid, p.lvs_name);
	lvol = lvs != NULL && p.exist_ok ? lvol_find(lvs, p.lvol_name) : NULL;
	if (lvol != NULL && ust_lvol_get_bdev(lvol) != NULL)
		rpc_create_lvol_done(req, lvol, 0);
	else if (lvs != NULL)
		ust_lvol_create(lvs, p.lvol_name, bytes, p.thin_provision, clear,
				rpc_create_lvol_done, req);
out:
	free(p.uuid);
	free(p.lvs_name);
	free(p.lvol_name);
	free(p.clear_method);
}
UST_RPC_REGISTER("bdev_lvol_create", rpc_bdev_lvol_create, UST_RPC_STARTUP | UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_lvol_create", construct_lvol_bdev)

/* ---- bdev_lvol_get_lvols ------------------------------------------------------------ */

struct rpc_get_lvols {
	char *lvs_uuid;
	char *lvs_name;
};

static const struct ust_json_object_decoder g_get_lvols_decoders[] = {
	{"lvs_uuid", offsetof(struct rpc_get_lvols, lvs_uuid), ust_json_decode_string, true},
	{"lvs_name", offsetof(struct rpc_get_lvols, lvs_name), ust_json_decode_string, true},
};

static void lvols_append(json_t *list, struct ust_lvol_store *lvs)
{
	struct ust_lvol *lvol;

	for (lvol = ust_lvol_first(lvs); lvol != NULL; lvol = ust_lvol_next(lvol)) {
		/* Only lvols that exist as bdevs (not half-created or half-deleted). */
		if (ust_lvol_get_bdev(lvol) != NULL)
			json_array_append_new(list, lvol_json(lvol));
	}
}

static void rpc_bdev_lvol_get_lvols(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_get_lvols p = {0};
	struct ust_lvol_store *lvs;
	json_t *list;

	if (!ust_rpc_decode_params(req, params, g_get_lvols_decoders, 2, &p))
		goto out;
	if (p.lvs_uuid != NULL || p.lvs_name != NULL) {
		lvs = rpc_find_lvs(req, p.lvs_uuid, p.lvs_name);
		if (lvs == NULL)
			goto out;
		list = json_array();
		lvols_append(list, lvs);
	} else {
		list = json_array();
		for (lvs = ust_lvs_first(); lvs != NULL; lvs = ust_lvs_next(lvs))
			lvols_append(list, lvs);
	}
	ust_rpc_send_result(req, list);
out:
	free(p.lvs_uuid);
	free(p.lvs_name);
}
UST_RPC_REGISTER("bdev_lvol_get_lvols", rpc_bdev_lvol_get_lvols, UST_RPC_RUNTIME)

/* ---- bdev_lvol_resize / bdev_lvol_delete ------------------------------------------------ */

struct rpc_resize {
	char *name;
	uint64_t size_in_mib;
	uint64_t size;
};

static const struct ust_json_object_decoder g_resize_decoders[] = {
	{"name", offsetof(struct rpc_resize, name), ust_json_decode_string, false},
	{"size_in_mib", offsetof(struct rpc_resize, size_in_mib), ust_json_decode_uint64, true},
	{"size", offsetof(struct rpc_resize, size), ust_json_decode_uint64, true},
};

static void rpc_bdev_lvol_resize(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_resize p = {0};
	struct ust_lvol *lvol;
	struct rpc_op *op;
	uint64_t bytes;

	if (!ust_rpc_decode_params(req, params, g_resize_decoders, 3, &p))
		goto out;
	if (!rpc_size(req, p.size_in_mib, p.size, &bytes))
		goto out;
	lvol = rpc_find_lvol(req, p.name);
	op = lvol != NULL ? rpc_op_new(req, "cannot resize lvol %s to %llu bytes", p.name,
				       (unsigned long long)bytes) :
			    NULL;
	if (op != NULL)
		ust_lvol_resize(lvol, bytes, rpc_bool_done, op);
out:
	free(p.name);
}
UST_RPC_REGISTER("bdev_lvol_resize", rpc_bdev_lvol_resize, UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_lvol_resize", resize_lvol_bdev)

struct rpc_delete {
	char *name;
};

static const struct ust_json_object_decoder g_delete_decoders[] = {
	{"name", offsetof(struct rpc_delete, name), ust_json_decode_string, false},
};

/*
 * The lvol RPCs of the form {name} -> one call on that lvol, answered true
 * once it is durable: one decode, lookup and reply for all of them.
 */
struct rpc_lvol_method {
	const char *verb;
	const char *tail; /* after the lvol's name in the error text */
	void (*call)(struct ust_lvol *lvol, ust_lvol_op_cb cb, void *arg);
};

static void rpc_lvol_named(struct ust_rpc_request *req, const json_t *params,
			   const struct rpc_lvol_method *m)
{
	struct rpc_delete p = {0};
	struct ust_lvol *lvol;
	struct rpc_op *op;

	if (!ust_rpc_decode_params(req, params, g_delete_decoders, 1, &p))
		goto out;
	lvol = rpc_find_lvol(req, p.name);
	op = lvol != NULL ? rpc_op_new(req, "cannot %s lvol %s%s", m->verb, p.name, m->tail) : NULL;
	if (op != NULL)
		m->call(lvol, rpc_bool_done, op);
out:
	free(p.name);
}

static const struct rpc_lvol_method g_lvol_delete = {"delete", "", ust_lvol_delete};
static const struct rpc_lvol_method g_lvol_inflate = {"inflate", "", ust_lvol_inflate};
static const struct rpc_lvol_method g_lvol_decouple = {"decouple", " from its parent",
							ust_lvol_decouple_parent};

static void rpc_bdev_lvol_delete(struct ust_rpc_request *req, const json_t *params)
{
	rpc_lvol_named(req, params, &g_lvol_delete);
}
UST_RPC_REGISTER("bdev_lvol_delete", rpc_bdev_lvol_delete, UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_lvol_delete", destroy_lvol_bdev)

/* ---- snapshots and clones --------------------------------------------------------------- */

struct rpc_snapshot {
	char *lvol_name;
	char *snapshot_name;
};

static const struct ust_json_object_decoder g_snapshot_decoders[] = {
	{"lvol_name", offsetof(struct rpc_snapshot, lvol_name), ust_json_decode_string, false},
	{"snapshot_name", offsetof(struct rpc_snapshot, snapshot_name), ust_json_decode_string,
	 false},
};

/* A new lvol (snapshot or clone): its bdev name, or the error. */
static void rpc_new_lvol_done(void *arg, struct ust_lvol *lvol, int rc)
{
	struct rpc_op *op = arg;

	if (rc == -EBUSY)
		ust_rpc_send_error(op->req, UST_JSONRPC_ERROR_INVALID_STATE,
				   "%s: busy with another operation", op->what);
	else if (rc != 0)
		rpc_send_rc(op->req, rc, op->what);
	else
		ust_rpc_send_result(op->req,
				    json_string(ust_bdev_get_name(ust_lvol_get_bdev(lvol))));
	free(op);
}

static bool rpc_lvol_name_ok(struct ust_rpc_request *req, const char *key, const char *name)
{
	if (lvs_name_valid(name, UST_LVOL_NAME_MAX))
		return true;
	ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
			   "%s must be 1 to %d bytes without '/'", key, UST_LVOL_NAME_MAX);
	return false;
}

static void rpc_bdev_lvol_snapshot(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_snapshot p = {0};
	struct ust_lvol *lvol;
	struct rpc_op *op;

	if (!ust_rpc_decode_params(req, params, g_snapshot_decoders, 2, &p))
		goto out;
	if (!rpc_lvol_name_ok(req, "snapshot_name", p.snapshot_name))
		goto out;
	lvol = rpc_find_lvol(req, p.lvol_name);
	op = lvol != NULL ? rpc_op_new(req, "cannot snapshot lvol %s as %s", p.lvol_name,
				       p.snapshot_name) :
			    NULL;
	if (op != NULL)
		ust_lvol_create_snapshot(lvol, p.snapshot_name, rpc_new_lvol_done, op);
out:
	free(p.lvol_name);
	free(p.snapshot_name);
}
UST_RPC_REGISTER("bdev_lvol_snapshot", rpc_bdev_lvol_snapshot, UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_lvol_snapshot", snapshot_lvol_bdev)

struct rpc_clone {
	char *snapshot_name;
	char *clone_name;
};

static const struct ust_json_object_decoder g_clone_decoders[] = {
	{"snapshot_name", offsetof(struct rpc_clone, snapshot_name), ust_json_decode_string, false},
	{"clone_name", offsetof(struct rpc_clone, clone_name), ust_json_decode_string, false},
};

static void rpc_bdev_lvol_clone(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_clone p = {0};
	struct ust_lvol *snap;
	struct rpc_op *op;

	if (!ust_rpc_decode_params(req, params, g_clone_decoders, 2, &p))
		goto out;
	if (!rpc_lvol_name_ok(req, "clone_name", p.clone_name))
		goto out;
	snap = rpc_find_lvol(req, p.snapshot_name);
	op = snap != NULL ? rpc_op_new(req, "cannot clone %s as %s", p.snapshot_name,
				       p.clone_name) :
			    NULL;
	if (op != NULL)
		ust_lvol_create_clone(snap, p.clone_name, rpc_new_lvol_done, op);
out:
	free(p.snapshot_name);
	free(p.clone_name);
}
UST_RPC_REGISTER("bdev_lvol_clone", rpc_bdev_lvol_clone, UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_lvol_clone", clone_lvol_bdev)

static void rpc_bdev_lvol_inflate(struct ust_rpc_request *req, const json_t *params)
{
	rpc_lvol_named(req, params, &g_lvol_inflate);
}
UST_RPC_REGISTER("bdev_lvol_inflate", rpc_bdev_lvol_inflate, UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_lvol_inflate", inflate_lvol_bdev)

static void rpc_bdev_lvol_decouple_parent(struct ust_rpc_request *req, const json_t *params)
{
	rpc_lvol_named(req, params, &g_lvol_decouple);
}
UST_RPC_REGISTER("bdev_lvol_decouple_parent", rpc_bdev_lvol_decouple_parent, UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("bdev_lvol_decouple_parent", decouple_parent_lvol_bdev)

/* ustor's own method (SPDK has no revert): {name, snapshot_name}. */
struct rpc_revert {
	char *name;
	char *snapshot_name;
};

static const struct ust_json_object_decoder g_revert_decoders[] = {
	{"name", offsetof(struct rpc_revert, name), ust_json_decode_string, false},
	{"snapshot_name", offsetof(struct rpc_revert, snapshot_name), ust_json_decode_string,
	 false},
};

static void rpc_bdev_lvol_revert(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_revert p = {0};
	struct ust_lvol *lvol, *snap = NULL;
	struct rpc_op *op;

	if (!ust_rpc_decode_params(req, params, g_revert_decoders, 2, &p))
		goto out;
	lvol = rpc_find_lvol(req, p.name);
	if (lvol != NULL)
		snap = rpc_find_lvol(req, p.snapshot_name);
	op = snap != NULL ? rpc_op_new(req, "cannot revert lvol %s to %s", p.name,
				       p.snapshot_name) :
			    NULL;
	if (op != NULL)
		ust_lvol_revert(lvol, snap, rpc_bool_done, op);
out:
	free(p.name);
	free(p.snapshot_name);
}
UST_RPC_REGISTER("bdev_lvol_revert", rpc_bdev_lvol_revert, UST_RPC_RUNTIME)
