/*
 * The framework's JSON-RPC methods: version, reactors and thread statistics,
 * the subsystem list, and the running configuration (save_config,
 * framework_get_config).
 *
 * Guarantees: every method answers exactly once, with INVALID_PARAMS for
 * unexpected or malformed parameters. Per-thread statistics are read on each
 * thread itself (ust_for_each_thread), never from another core. save_config
 * with "file" replaces the file atomically (temp file + rename), so a crash
 * never leaves a half-written config.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ust_build_config.h"
#include "ustor/app.h"
#include "ustor/cpuset.h"
#include "ustor/env.h"
#include "ustor/json.h"
#include "ustor/log.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"

#include "app_internal.h"

#define ANY_STATE (UST_RPC_STARTUP | UST_RPC_RUNTIME)

/* Methods without parameters accept none, an empty object or an empty array. */
static bool rpc_check_no_params(struct ust_rpc_request *req, const json_t *params)
{
	if (params == NULL || json_is_null(params) ||
	    (json_is_object(params) && json_object_size(params) == 0) ||
	    (json_is_array(params) && json_array_size(params) == 0)) {
		return true;
	}
	ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "%s takes no parameters",
			   ust_rpc_request_get_method(req));
	return false;
}

static void rpc_send_json_or_enomem(struct ust_rpc_request *req, json_t *result)
{
	if (result == NULL) {
		ust_rpc_send_errno(req, -ENOMEM);
		return;
	}
	ust_rpc_send_result(req, result);
}

/* ---- ustor_get_version -------------------------------------------------- */

static json_t *version_json(void)
{
	unsigned int major = 0, minor = 0, patch = 0;
	char version[64], suffix[32] = "";
	int n = 0;

	/* UST_VERSION_STRING comes from the VERSION file: "MAJOR.MINOR.PATCH[SUFFIX]". */
	if (sscanf(UST_VERSION_STRING, "%u.%u.%u%n", &major, &minor, &patch, &n) == 3) {
		snprintf(suffix, sizeof(suffix), "%s", UST_VERSION_STRING + n);
	}
	snprintf(version, sizeof(version), "ustor v%s", UST_VERSION_STRING);
	return json_pack("{s:s, s:{s:i, s:i, s:i, s:s}}", "version", version, "fields", "major",
			 (int)major, "minor", (int)minor, "patch", (int)patch, "suffix", suffix);
}

static void rpc_ustor_get_version(struct ust_rpc_request *req, const json_t *params)
{
	if (rpc_check_no_params(req, params)) {
		rpc_send_json_or_enomem(req, version_json());
	}
}
UST_RPC_REGISTER("ustor_get_version", rpc_ustor_get_version, ANY_STATE)
UST_RPC_REGISTER_ALIAS_DEPRECATED("ustor_get_version", spdk_get_version)

/* ---- framework_get_reactors --------------------------------------------- */

static void rpc_framework_get_reactors(struct ust_rpc_request *req, const json_t *params)
{
	if (rpc_check_no_params(req, params)) {
		rpc_send_json_or_enomem(req, ust_reactors_info_json());
	}
}
UST_RPC_REGISTER("framework_get_reactors", rpc_framework_get_reactors, ANY_STATE)

/* ---- thread_get_stats --------------------------------------------------- */

struct thread_stats_walk {
	struct ust_rpc_request *req;
	json_t *threads;
	int rc;
};

static json_t *thread_stats_json(struct ust_thread *t)
{
	struct ust_thread_stats stats = {0};
	struct ust_thread_poller_counts counts = {0};
	char mask[80];

	ust_thread_get_stats(t, &stats);
	ust_thread_get_poller_counts(t, &counts);
	return json_pack("{s:s, s:I, s:s, s:I, s:I, s:i, s:i, s:i}", "name",
			 ust_thread_get_name(t), "id", (json_int_t)ust_thread_get_id(t), "cpumask",
			 ust_cpuset_fmt(ust_thread_get_cpumask(t), mask, sizeof(mask)), "busy",
			 (json_int_t)stats.busy_tsc, "idle", (json_int_t)stats.idle_tsc,
			 "active_pollers_count", (int)counts.active, "timed_pollers_count",
			 (int)counts.timed, "paused_pollers_count", (int)counts.paused);
}

/* Runs on each thread in turn, so the array is never touched concurrently. */
static void thread_stats_collect(void *arg)
{
	struct thread_stats_walk *w = arg;
	json_t *entry;

	if (w->rc != 0) {
		return;
	}
	entry = thread_stats_json(ust_get_thread());
	if (entry == NULL || json_array_append_new(w->threads, entry) != 0) {
		w->rc = -ENOMEM;
	}
}

static void thread_stats_done(void *arg)
{
	struct thread_stats_walk *w = arg;
	json_t *result = NULL;

	if (w->rc == 0) {
		result = json_pack("{s:I, s:O}", "tick_rate", (json_int_t)ust_get_ticks_hz(),
				   "threads", w->threads);
	}
	rpc_send_json_or_enomem(w->req, result);
	json_decref(w->threads);
	free(w);
}

static void rpc_thread_get_stats(struct ust_rpc_request *req, const json_t *params)
{
	struct thread_stats_walk *w;

	if (!rpc_check_no_params(req, params)) {
		return;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL || (w->threads = json_array()) == NULL) {
		free(w);
		ust_rpc_send_errno(req, -ENOMEM);
		return;
	}
	w->req = req;
	ust_for_each_thread(thread_stats_collect, w, thread_stats_done);
}
UST_RPC_REGISTER("thread_get_stats", rpc_thread_get_stats, ANY_STATE)

/* ---- subsystems and configuration --------------------------------------- */

static void rpc_framework_get_subsystems(struct ust_rpc_request *req, const json_t *params)
{
	if (rpc_check_no_params(req, params)) {
		rpc_send_json_or_enomem(req, ust_subsystem_list_json());
	}
}
UST_RPC_REGISTER("framework_get_subsystems", rpc_framework_get_subsystems, ANY_STATE)

struct get_config_params {
	char *name;
};

static const struct ust_json_object_decoder g_get_config_decoders[] = {
	{"name", offsetof(struct get_config_params, name), ust_json_decode_string, false},
};

static void rpc_framework_get_config(struct ust_rpc_request *req, const json_t *params)
{
	struct get_config_params p = {0};
	json_t *calls;

	if (!ust_rpc_decode_params(req, params, g_get_config_decoders, 1, &p)) {
		free(p.name);
		return;
	}
	if (ust_subsystem_find(p.name) == NULL) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "subsystem '%s' not found", p.name);
		free(p.name);
		return;
	}
	calls = ust_subsystem_config_json(p.name);
	free(p.name);
	rpc_send_json_or_enomem(req, calls);
}
UST_RPC_REGISTER("framework_get_config", rpc_framework_get_config, ANY_STATE)

struct save_config_params {
	char *file;
};

static const struct ust_json_object_decoder g_save_config_decoders[] = {
	{"file", offsetof(struct save_config_params, file), ust_json_decode_string, true},
};

static void rpc_save_config(struct ust_rpc_request *req, const json_t *params)
{
	struct save_config_params p = {0};
	json_t *config;
	int rc;

	if (!ust_rpc_decode_params(req, params, g_save_config_decoders, 1, &p)) {
		free(p.file);
		return;
	}
	config = ust_app_config_json();
	if (config == NULL) {
		free(p.file);
		ust_rpc_send_errno(req, -ENOMEM);
		return;
	}
	if (p.file != NULL) {
		rc = ust_json_write_file(p.file, config);
		if (rc != 0) {
			ust_rpc_send_error(req, UST_JSONRPC_ERROR_INTERNAL_ERROR,
					   "cannot write %s: %s", p.file, strerror(-rc));
			free(p.file);
			json_decref(config);
			return;
		}
	}
	free(p.file);
	ust_rpc_send_result(req, config);
}
UST_RPC_REGISTER("save_config", rpc_save_config, UST_RPC_RUNTIME)

/* ---- the "log" subsystem ------------------------------------------------ */

/*
 * The framework's own subsystem: the log levels and enabled debug flags, so
 * that save_config followed by "ustord -c" comes back with the same logging.
 */
static void log_write_config_json(json_t *calls)
{
	struct ust_log_flag *f;

	json_array_append_new(calls, json_pack("{s:s, s:{s:s}}", "method", "log_set_print_level",
					       "params", "level",
					       ust_log_level_to_str(ust_log_get_print_level())));
	json_array_append_new(calls, json_pack("{s:s, s:{s:s}}", "method", "log_set_level",
					       "params", "level",
					       ust_log_level_to_str(ust_log_get_level())));
	for (f = ust_log_get_next_flag(NULL); f != NULL; f = ust_log_get_next_flag(f)) {
		if (f->enabled) {
			json_array_append_new(calls, json_pack("{s:s, s:{s:s}}", "method",
							       "log_set_flag", "params", "flag",
							       f->name));
		}
	}
}

static struct ust_subsystem g_log_subsystem = {
	.name = "log",
	.write_config_json = log_write_config_json,
};
UST_SUBSYSTEM_REGISTER(g_log_subsystem)
