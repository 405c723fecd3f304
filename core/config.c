/*
 * Config replay: a JSON config ({"subsystems":[{"subsystem":NAME,
 * "config":[{"method":..,"params":..}, ..]}, ..]}) is checked as a whole,
 * then its calls are made one at a time, in file order, through the local
 * JSON-RPC path, each waiting for the previous one's answer.
 *
 * Guarantees: a malformed layout (no "subsystems" array, an entry that is
 * not an object, a missing or non-string "method", "params" that is not an
 * object, an unknown key, a subsystem that is not registered) is rejected
 * with -EINVAL before any call runs. Replay stops at the first failing call
 * with -EINVAL and a message naming the subsystem, the entry index, the
 * method and the RPC error; no later call runs. Continuations go through the
 * calling ust_thread's message queue, so a config of any length never grows
 * the stack, whether the methods answer synchronously or later.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ustor/app.h"
#include "ustor/json.h"
#include "ustor/log.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"

struct config_replay {
	json_t *subsystems; /* the validated "subsystems" array (a reference) */
	size_t subsystem_idx;
	size_t call_idx;
	struct ust_thread *thread;
	ust_config_done_fn done;
	void *ctx;
};

/* ---- validation --------------------------------------------------------- */

static int only_keys(const json_t *obj, const char *a, const char *b, const char *where)
{
	const char *key;
	json_t *val;

	json_object_foreach((json_t *)obj, key, val) {
		if (strcmp(key, a) != 0 && strcmp(key, b) != 0) {
			UST_ERRLOG("config: %s: unknown key \"%s\"\n", where, key);
			return -EINVAL;
		}
	}
	return 0;
}

static int validate_call(const json_t *call, const char *subsystem, size_t idx)
{
	char where[160];
	const json_t *method, *params;

	snprintf(where, sizeof(where), "subsystem '%s' entry %zu", subsystem, idx);
	if (!json_is_object(call)) {
		UST_ERRLOG("config: %s: not an object\n", where);
		return -EINVAL;
	}
	method = json_object_get(call, "method");
	if (!json_is_string(method)) {
		UST_ERRLOG("config: %s: %s \"method\"\n", where,
			   method == NULL ? "missing" : "non-string");
		return -EINVAL;
	}
	params = json_object_get(call, "params");
	if (params != NULL && !json_is_object(params) && !json_is_null(params)) {
		UST_ERRLOG("config: %s (%s): \"params\" must be an object\n", where,
			   json_string_value(method));
		return -EINVAL;
	}
	return only_keys(call, "method", "params", where);
}

static int validate_subsystem(const json_t *entry, size_t idx)
{
	char where[64];
	const json_t *name, *calls;
	const char *sname;
	size_t i;
	int rc;

	snprintf(where, sizeof(where), "subsystems[%zu]", idx);
	if (!json_is_object(entry)) {
		UST_ERRLOG("config: %s: not an object\n", where);
		return -EINVAL;
	}
	name = json_object_get(entry, "subsystem");
	if (!json_is_string(name)) {
		UST_ERRLOG("config: %s: %s \"subsystem\" name\n", where,
			   name == NULL ? "missing" : "non-string");
		return -EINVAL;
	}
	sname = json_string_value(name);
	if (ust_subsystem_find(sname) == NULL) {
		UST_ERRLOG("config: %s: unknown subsystem '%s'\n", where, sname);
		return -EINVAL;
	}
	calls = json_object_get(entry, "config");
	if (calls != NULL && !json_is_array(calls) && !json_is_null(calls)) {
		UST_ERRLOG("config: subsystem '%s': \"config\" must be an array\n", sname);
		return -EINVAL;
	}
	rc = only_keys(entry, "subsystem", "config", where);
	for (i = 0; rc == 0 && json_is_array(calls) && i < json_array_size(calls); i++) {
		rc = validate_call(json_array_get(calls, i), sname, i);
	}
	return rc;
}

static int validate_config(const json_t *config)
{
	const json_t *subsystems;
	size_t i;
	int rc;

	if (!json_is_object(config)) {
		UST_ERRLOG("config: the top level must be an object\n");
		return -EINVAL;
	}
	subsystems = json_object_get(config, "subsystems");
	if (!json_is_array(subsystems)) {
		UST_ERRLOG("config: %s \"subsystems\" array\n",
			   subsystems == NULL ? "missing" : "non-array");
		return -EINVAL;
	}
	for (i = 0; i < json_array_size(subsystems); i++) {
		rc = validate_subsystem(json_array_get(subsystems, i), i);
		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

/* ---- replay ------------------------------------------------------------- */

static void replay_finish(struct config_replay *r, int rc)
{
	ust_config_done_fn done = r->done;
	void *ctx = r->ctx;

	json_decref(r->subsystems);
	free(r);
	done(rc, ctx);
}

static const json_t *replay_calls(const struct config_replay *r)
{
	return json_object_get(json_array_get(r->subsystems, r->subsystem_idx), "config");
}

static const char *replay_subsystem_name(const struct config_replay *r)
{
	return json_string_value(
		json_object_get(json_array_get(r->subsystems, r->subsystem_idx), "subsystem"));
}

/* The next call to make, skipping subsystems with nothing to replay; NULL at the end. */
static const json_t *replay_next_call(struct config_replay *r)
{
	const json_t *calls;

	while (r->subsystem_idx < json_array_size(r->subsystems)) {
		calls = replay_calls(r);
		if (json_is_array(calls) && r->call_idx < json_array_size(calls)) {
			return json_array_get(calls, r->call_idx);
		}
		r->subsystem_idx++;
		r->call_idx = 0;
	}
	return NULL;
}

static const char *response_error_message(const json_t *response)
{
	const json_t *error = json_object_get(response, "error");
	const char *msg = json_string_value(json_object_get(error, "message"));

	return msg != NULL ? msg : "(no message)";
}

static void replay_step(void *arg);

static void replay_report_failure(const struct config_replay *r, const char *why)
{
	const json_t *call = json_array_get(replay_calls(r), r->call_idx);

	UST_ERRLOG("config: subsystem '%s' entry %zu (%s) failed: %s\n",
		   replay_subsystem_name(r), r->call_idx,
		   json_string_value(json_object_get(call, "method")), why);
}

static void replay_call_done(void *arg, json_t *response)
{
	struct config_replay *r = arg;
	int rc;

	if (response == NULL || json_object_get(response, "error") != NULL) {
		replay_report_failure(r, response != NULL ? response_error_message(response)
							  : "no response");
		replay_finish(r, -EINVAL);
		return;
	}
	r->call_idx++;
	/* Continue from the queue, not from inside the handler's stack. */
	rc = ust_thread_send_msg(r->thread, replay_step, r);
	if (rc != 0) {
		UST_ERRLOG("config: cannot continue the replay: %s\n", strerror(-rc));
		replay_finish(r, rc);
	}
}

static void replay_step(void *arg)
{
	struct config_replay *r = arg;
	const json_t *call = replay_next_call(r);
	const json_t *params;
	char why[96];
	int rc;

	if (call == NULL) {
		replay_finish(r, 0);
		return;
	}
	params = json_object_get(call, "params");
	rc = ust_rpc_call_local(json_string_value(json_object_get(call, "method")),
				json_is_null(params) ? NULL : params, replay_call_done, r);
	if (rc != 0) {
		snprintf(why, sizeof(why), "cannot call it: %s", strerror(-rc));
		replay_report_failure(r, why);
		replay_finish(r, -EINVAL);
	}
}

void ust_config_load_json(const json_t *config, ust_config_done_fn done, void *ctx)
{
	struct config_replay *r;
	struct ust_thread *thread = ust_get_thread();
	int rc;

	if (thread == NULL) {
		UST_ERRLOG("config: must be replayed on a ust_thread\n");
		done(-EPERM, ctx);
		return;
	}
	rc = validate_config(config);
	if (rc != 0) {
		done(rc, ctx);
		return;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		done(-ENOMEM, ctx);
		return;
	}
	r->subsystems = json_incref(json_object_get(config, "subsystems"));
	r->thread = thread;
	r->done = done;
	r->ctx = ctx;
	replay_step(r);
}

void ust_config_load_file(const char *path, ust_config_done_fn done, void *ctx)
{
	char errbuf[UST_JSON_ERRBUF_SIZE];
	struct stat st;
	json_t *config;
	int rc;

	if (path == NULL) {
		done(-EINVAL, ctx);
		return;
	}
	if (stat(path, &st) != 0) {
		rc = -errno;
		UST_ERRLOG("config: cannot open %s: %s\n", path, strerror(-rc));
		done(rc, ctx);
		return;
	}
	errbuf[0] = '\0';
	config = ust_json_load_file(path, errbuf, sizeof(errbuf));
	if (config == NULL) {
		UST_ERRLOG("config: cannot parse %s: %s\n", path, errbuf);
		done(-EINVAL, ctx);
		return;
	}
	ust_config_load_json(config, done, ctx);
	json_decref(config);
}
