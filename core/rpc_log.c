/*
 * Built-in RPC methods: the log controls (log_set_level, log_get_level,
 * log_set_print_level, log_get_print_level, log_set_flag, log_clear_flag,
 * log_get_flags) and rpc_get_methods.
 *
 * Names, parameters and results follow SPDK's published JSON-RPC reference,
 * so SPDK users' scripts work unchanged; SPDK's older names are kept as
 * deprecated aliases. All of these work both at start-up and at run time.
 */
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"
#include "ustor/rpc.h"

#include "rpc_internal.h"

#define ANY_STATE (UST_RPC_STARTUP | UST_RPC_RUNTIME)

/* Referenced by rpc.c so that linking the dispatcher links these methods. */
const int ust_rpc_builtin_methods_anchor = 1;

/* ---- levels ------------------------------------------------------------- */

struct level_params {
	char *level;
};

static const struct ust_json_object_decoder g_level_decoders[] = {
	{"level", offsetof(struct level_params, level), ust_json_decode_string, false},
};

/* Decodes {"level": NAME}; answers the request and returns false on error. */
static bool decode_level(struct ust_rpc_request *req, const json_t *params,
			 enum ust_log_level *level)
{
	struct level_params p = {0};
	bool ok;

	if (!ust_rpc_decode_params(req, params, g_level_decoders, 1, &p)) {
		free(p.level);
		return false;
	}
	ok = ust_log_level_from_str(p.level, level) == 0;
	if (!ok) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "invalid log level '%s' (expected ERROR, WARNING, NOTICE, "
				   "INFO, DEBUG or DISABLED)",
				   p.level);
	}
	free(p.level);
	return ok;
}

/* The empty table: methods without parameters still refuse unknown ones. */
static bool decode_no_params(struct ust_rpc_request *req, const json_t *params)
{
	return ust_rpc_decode_params(req, params, NULL, 0, NULL);
}

static void rpc_log_set_level(struct ust_rpc_request *req, const json_t *params)
{
	enum ust_log_level level;

	if (decode_level(req, params, &level)) {
		ust_log_set_level(level);
		ust_rpc_send_bool(req, true);
	}
}
UST_RPC_REGISTER("log_set_level", rpc_log_set_level, ANY_STATE)
UST_RPC_REGISTER_ALIAS_DEPRECATED("log_set_level", set_log_level)

static void rpc_log_get_level(struct ust_rpc_request *req, const json_t *params)
{
	if (decode_no_params(req, params)) {
		ust_rpc_send_result(req, json_string(ust_log_level_to_str(ust_log_get_level())));
	}
}
UST_RPC_REGISTER("log_get_level", rpc_log_get_level, ANY_STATE)
UST_RPC_REGISTER_ALIAS_DEPRECATED("log_get_level", get_log_level)

static void rpc_log_set_print_level(struct ust_rpc_request *req, const json_t *params)
{
	enum ust_log_level level;

	if (decode_level(req, params, &level)) {
		ust_log_set_print_level(level);
		ust_rpc_send_bool(req, true);
	}
}
UST_RPC_REGISTER("log_set_print_level", rpc_log_set_print_level, ANY_STATE)
UST_RPC_REGISTER_ALIAS_DEPRECATED("log_set_print_level", set_log_print_level)

static void rpc_log_get_print_level(struct ust_rpc_request *req, const json_t *params)
{
	if (decode_no_params(req, params)) {
		ust_rpc_send_result(req,
				    json_string(ust_log_level_to_str(ust_log_get_print_level())));
	}
}
UST_RPC_REGISTER("log_get_print_level", rpc_log_get_print_level, ANY_STATE)
UST_RPC_REGISTER_ALIAS_DEPRECATED("log_get_print_level", get_log_print_level)

/* ---- flags -------------------------------------------------------------- */

struct flag_params {
	char *flag;
};

static const struct ust_json_object_decoder g_flag_decoders[] = {
	{"flag", offsetof(struct flag_params, flag), ust_json_decode_string, false},
};

static void change_flag(struct ust_rpc_request *req, const json_t *params, bool enable)
{
	struct flag_params p = {0};
	int rc;

	if (!ust_rpc_decode_params(req, params, g_flag_decoders, 1, &p)) {
		free(p.flag);
		return;
	}
	rc = enable ? ust_log_set_flag(p.flag) : ust_log_clear_flag(p.flag);
	if (rc != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "unknown log flag '%s' (log_get_flags lists them)", p.flag);
	} else {
		ust_rpc_send_bool(req, true);
	}
	free(p.flag);
}

static void rpc_log_set_flag(struct ust_rpc_request *req, const json_t *params)
{
	change_flag(req, params, true);
}
UST_RPC_REGISTER("log_set_flag", rpc_log_set_flag, ANY_STATE)
UST_RPC_REGISTER_ALIAS_DEPRECATED("log_set_flag", set_log_flag)

static void rpc_log_clear_flag(struct ust_rpc_request *req, const json_t *params)
{
	change_flag(req, params, false);
}
UST_RPC_REGISTER("log_clear_flag", rpc_log_clear_flag, ANY_STATE)
UST_RPC_REGISTER_ALIAS_DEPRECATED("log_clear_flag", clear_log_flag)

static void rpc_log_get_flags(struct ust_rpc_request *req, const json_t *params)
{
	json_t *flags;

	if (!decode_no_params(req, params)) {
		return;
	}
	flags = json_object();
	for (struct ust_log_flag *f = ust_log_get_next_flag(NULL); f != NULL && flags != NULL;
	     f = ust_log_get_next_flag(f)) {
		if (json_object_set_new(flags, f->name, json_boolean(f->enabled)) != 0) {
			json_decref(flags);
			flags = NULL;
		}
	}
	ust_rpc_send_result(req, flags);
}
UST_RPC_REGISTER("log_get_flags", rpc_log_get_flags, ANY_STATE)
UST_RPC_REGISTER_ALIAS_DEPRECATED("log_get_flags", get_log_flags)

/* ---- rpc_get_methods ---------------------------------------------------- */

struct get_methods_params {
	bool current;
	bool include_aliases;
};

static const struct ust_json_object_decoder g_get_methods_decoders[] = {
	{"current", offsetof(struct get_methods_params, current), ust_json_decode_bool, true},
	{"include_aliases", offsetof(struct get_methods_params, include_aliases),
	 ust_json_decode_bool, true},
};

struct get_methods_ctx {
	struct get_methods_params p;
	json_t *names;
};

static void add_method_name(void *ctx, const struct ust_rpc_method_info *info)
{
	struct get_methods_ctx *g = ctx;

	if (g->names == NULL || (info->alias_of != NULL && !g->p.include_aliases) ||
	    (g->p.current && !info->valid_now)) {
		return;
	}
	if (json_array_append_new(g->names, json_string(info->name)) != 0) {
		json_decref(g->names);
		g->names = NULL;
	}
}

static void rpc_rpc_get_methods(struct ust_rpc_request *req, const json_t *params)
{
	struct get_methods_ctx g = {0};

	if (!ust_rpc_decode_params(req, params, g_get_methods_decoders, 2, &g.p)) {
		return;
	}
	g.names = json_array();
	/* The registry is sorted, so the list is too. */
	ust_rpc_foreach_method(add_method_name, &g);
	ust_rpc_send_result(req, g.names);
}
UST_RPC_REGISTER("rpc_get_methods", rpc_rpc_get_methods, ANY_STATE)
UST_RPC_REGISTER_ALIAS_DEPRECATED("rpc_get_methods", get_rpc_methods)
