/*
 * JSON-RPC 2.0 method registry and dispatcher: request validation, batches,
 * notifications, state masks, deprecated aliases, the life cycle of one
 * request, local calls and ust_rpc_process_raw().
 *
 * Guarantees:
 *  - Registration works from constructors (before main): it only needs
 *    malloc and keeps a sorted list. The registry is not changed after
 *    start-up, so lookups take no lock.
 *  - Every request is answered at most once. A second answer given while the
 *    request is still alive (its handler has not returned, or the first answer
 *    is still travelling back to the origin thread) is logged and dropped. A
 *    request is freed once it has been answered and its handler has returned,
 *    so answering after that is a use-after-free in the caller.
 *  - Responses are assembled and delivered on the thread that received the
 *    request (the origin). A handler may answer from any OS thread that has an
 *    ust_thread: the result travels back by ust_thread_send_msg(), and every
 *    jansson reference count of the request is touched on the origin only.
 *  - Per JSON-RPC 2.0: notifications (no "id") never get a response, even an
 *    error, except for a request too malformed to know it is one (Invalid
 *    Request, answered with id null); a batch answers every non-notification
 *    member in one array, an empty batch gets a single Invalid Request error,
 *    and a batch of notifications gets nothing.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ustor/log.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"

#include "rpc_internal.h"

struct rpc_method {
	char *name;
	char *alias_of; /* deprecated alias: the method it now calls */
	ust_rpc_method_fn fn;
	uint32_t state_mask;
	bool warned;
	struct rpc_method *next;
};

/*
 * Collects the answers to one parsed value. A single request is a batch of
 * one that is not wrapped in an array. The extra "dispatching" reference
 * keeps the batch from completing while its members are still being started.
 */
struct rpc_batch {
	ust_rpc_done_fn done;
	void *ctx;
	bool is_array;
	size_t count;
	size_t outstanding;
	json_t **responses;
};

struct ust_rpc_request {
	const struct rpc_method *method;
	json_t *id; /* NULL: notification */
	json_t *params;
	struct ust_thread *origin;
	struct rpc_batch *batch;
	size_t index;
	int answered;    /* atomic: set by the first ust_rpc_send_* */
	bool in_handler; /* origin only */
	bool completed;  /* origin only */
	/* The answer in transit from another thread. */
	json_t *result;
	int error_code;
	char *error_message;
};

/*
 * The built-in methods (rpc_log.c) register from a constructor; a static
 * archive would drop that object from any program that does not name one of
 * its symbols, so the dispatcher names one.
 */
static const int *const g_builtin_anchor __attribute__((used)) = &ust_rpc_builtin_methods_anchor;

static struct rpc_method *g_methods;
static uint32_t g_rpc_state = UST_RPC_STARTUP;

/* ---- registry ----------------------------------------------------------- */

static struct rpc_method *find_method(const char *name)
{
	for (struct rpc_method *m = g_methods; m != NULL; m = m->next) {
		int cmp = strcmp(m->name, name);

		if (cmp == 0) {
			return m;
		}
		if (cmp > 0) {
			break;
		}
	}
	return NULL;
}

static void insert_method(struct rpc_method *m)
{
	struct rpc_method **pos;

	for (pos = &g_methods; *pos != NULL; pos = &(*pos)->next) {
		if (strcmp((*pos)->name, m->name) > 0) {
			break;
		}
	}
	m->next = *pos;
	*pos = m;
}

static struct rpc_method *new_method(const char *name)
{
	struct rpc_method *m;

	if (name == NULL || name[0] == '\0') {
		UST_ERRLOG("RPC method registered without a name\n");
		return NULL;
	}
	if (find_method(name) != NULL) {
		UST_ERRLOG("RPC method '%s' registered twice; keeping the first\n", name);
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL || (m->name = strdup(name)) == NULL) {
		UST_ERRLOG("out of memory registering RPC method '%s'\n", name);
		free(m);
		return NULL;
	}
	return m;
}

void ust_rpc_register_method(const char *method, ust_rpc_method_fn fn, uint32_t state_mask)
{
	struct rpc_method *m;

	if (fn == NULL) {
		UST_ERRLOG("RPC method '%s' registered without a handler\n", method ? method : "");
		return;
	}
	m = new_method(method);
	if (m == NULL) {
		return;
	}
	m->fn = fn;
	m->state_mask = state_mask;
	insert_method(m);
}

/* The target may register later (constructor order is unspecified), so the
 * alias stores the name and resolves it per call. */
void ust_rpc_register_alias_deprecated(const char *method, const char *alias)
{
	struct rpc_method *m;

	if (method == NULL || method[0] == '\0') {
		UST_ERRLOG("deprecated RPC alias '%s' names no method\n", alias ? alias : "");
		return;
	}
	m = new_method(alias);
	if (m == NULL) {
		return;
	}
	m->alias_of = strdup(method);
	if (m->alias_of == NULL) {
		UST_ERRLOG("out of memory registering RPC alias '%s'\n", alias);
		free(m->name);
		free(m);
		return;
	}
	insert_method(m);
}

/* The method an alias stands for (or m itself); NULL if it does not exist. */
static const struct rpc_method *resolve_method(const struct rpc_method *m)
{
	if (m == NULL || m->alias_of == NULL) {
		return m;
	}
	m = find_method(m->alias_of);
	/* One level only: an alias of an alias is a registration mistake. */
	return (m != NULL && m->alias_of == NULL) ? m : NULL;
}

bool ust_rpc_method_exists(const char *method)
{
	return method != NULL && resolve_method(find_method(method)) != NULL;
}

void ust_rpc_set_state(uint32_t state)
{
	__atomic_store_n(&g_rpc_state, state, __ATOMIC_RELAXED);
}

uint32_t ust_rpc_get_state(void)
{
	return __atomic_load_n(&g_rpc_state, __ATOMIC_RELAXED);
}

void ust_rpc_foreach_method(void (*fn)(void *ctx, const struct ust_rpc_method_info *info),
			    void *ctx)
{
	uint32_t state = ust_rpc_get_state();

	for (struct rpc_method *m = g_methods; m != NULL; m = m->next) {
		const struct rpc_method *target = resolve_method(m);
		struct ust_rpc_method_info info = {
			.name = m->name,
			.alias_of = m->alias_of,
			.valid_now = target != NULL && (target->state_mask & state) != 0,
		};

		if (target != NULL) {
			fn(ctx, &info);
		}
	}
}

/* ---- responses ---------------------------------------------------------- */

/* json_string() refuses invalid UTF-8; a message must never vanish for that. */
static json_t *message_string(const char *msg)
{
	json_t *s = json_string(msg);
	char *copy;

	if (s != NULL || msg == NULL) {
		return s;
	}
	copy = strdup(msg);
	if (copy == NULL) {
		return NULL;
	}
	for (char *p = copy; *p != '\0'; p++) {
		if ((unsigned char)*p >= 0x80) {
			*p = '?';
		}
	}
	s = json_string(copy);
	free(copy);
	return s;
}

static json_t *envelope(const json_t *id)
{
	json_t *resp = json_object();

	if (resp == NULL) {
		return NULL;
	}
	if (json_object_set_new(resp, "jsonrpc", json_string("2.0")) != 0 ||
	    json_object_set_new(resp, "id", id ? json_incref((json_t *)id) : json_null()) != 0) {
		json_decref(resp);
		return NULL;
	}
	return resp;
}

json_t *ust_rpc_error_response(const json_t *id, int code, const char *message)
{
	json_t *resp = envelope(id);
	json_t *err = json_object();

	if (resp == NULL || err == NULL ||
	    json_object_set_new(err, "code", json_integer(code)) != 0 ||
	    json_object_set_new(err, "message", message_string(message ? message : "")) != 0 ||
	    json_object_set_new(resp, "error", err) != 0) {
		json_decref(resp);
		return NULL;
	}
	return resp;
}

static json_t *result_response(const json_t *id, json_t *result)
{
	json_t *resp = envelope(id);

	if (resp == NULL || json_object_set_new(resp, "result", result) != 0) {
		json_decref(resp);
		return NULL;
	}
	return resp;
}

/* ---- batches ------------------------------------------------------------ */

static struct rpc_batch *batch_create(size_t count, bool is_array, ust_rpc_done_fn done,
				      void *ctx)
{
	struct rpc_batch *b = calloc(1, sizeof(*b));

	if (b == NULL) {
		return NULL;
	}
	b->responses = calloc(count ? count : 1, sizeof(json_t *));
	if (b->responses == NULL) {
		free(b);
		return NULL;
	}
	b->done = done;
	b->ctx = ctx;
	b->is_array = is_array;
	b->count = count;
	b->outstanding = count + 1;
	return b;
}

static void batch_finish(struct rpc_batch *b)
{
	json_t *out = NULL;

	if (!b->is_array) {
		out = b->responses[0];
	} else {
		for (size_t i = 0; i < b->count; i++) {
			if (b->responses[i] == NULL) {
				continue;
			}
			if (out == NULL) {
				out = json_array();
			}
			if (out == NULL || json_array_append_new(out, b->responses[i]) != 0) {
				UST_ERRLOG("out of memory assembling a batch response\n");
			}
		}
	}
	b->done(b->ctx, out);
	free(b->responses);
	free(b);
}

static void batch_put(struct rpc_batch *b)
{
	if (--b->outstanding == 0) {
		batch_finish(b);
	}
}

/* response may be NULL (notification); ownership passes to the batch. */
static void batch_complete(struct rpc_batch *b, size_t index, json_t *response)
{
	b->responses[index] = response;
	batch_put(b);
}

/* ---- request life cycle ------------------------------------------------- */

static void request_free(struct ust_rpc_request *req)
{
	json_decref(req->id);
	json_decref(req->params);
	json_decref(req->result);
	free(req->error_message);
	free(req);
}

/* On the origin thread: wrap the answer and hand it to the batch. */
static void request_complete(struct ust_rpc_request *req)
{
	json_t *resp = NULL;

	if (req->id != NULL) {
		if (req->error_message != NULL) {
			resp = ust_rpc_error_response(req->id, req->error_code, req->error_message);
		} else {
			resp = result_response(req->id, req->result);
			req->result = NULL;
		}
		if (resp == NULL) {
			UST_ERRLOG("out of memory answering '%s'\n", req->method->name);
			resp = ust_rpc_error_response(req->id, UST_JSONRPC_ERROR_INTERNAL_ERROR,
						      "out of memory");
		}
	}
	req->completed = true;
	batch_complete(req->batch, req->index, resp);
	req->batch = NULL;
	if (!req->in_handler) {
		request_free(req);
	}
}

static void request_complete_msg(void *ctx)
{
	request_complete(ctx);
}

/* Retry for about a second when the origin's ring is full: dropping the
 * answer would leave the client waiting forever. */
static void forward_to_origin(struct ust_rpc_request *req)
{
	for (int attempt = 0; attempt < 1000; attempt++) {
		int rc = ust_thread_send_msg(req->origin, request_complete_msg, req);

		if (rc == 0) {
			return;
		}
		if (rc != -ENOMEM) {
			UST_ERRLOG("cannot return the answer to '%s' to its thread: %s\n",
				   req->method->name, strerror(-rc));
			return;
		}
		usleep(1000);
	}
	UST_ERRLOG("answer to '%s' dropped: origin thread's queue stayed full\n",
		   req->method->name);
}

static bool claim_answer(struct ust_rpc_request *req)
{
	int expected = 0;

	if (req == NULL) {
		UST_ERRLOG("RPC answer without a request\n");
		return false;
	}
	if (!__atomic_compare_exchange_n(&req->answered, &expected, 1, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		UST_ERRLOG("RPC method '%s' answered one request twice; second answer dropped\n",
			   req->method->name);
		return false;
	}
	return true;
}

static void deliver(struct ust_rpc_request *req)
{
	struct ust_thread *cur = ust_get_thread();

	if (req->origin == NULL || cur == req->origin) {
		request_complete(req);
	} else {
		forward_to_origin(req);
	}
}

void ust_rpc_send_result(struct ust_rpc_request *req, json_t *result)
{
	if (!claim_answer(req)) {
		json_decref(result);
		return;
	}
	if (result == NULL) {
		req->error_code = UST_JSONRPC_ERROR_INTERNAL_ERROR;
		req->error_message = strdup("out of memory building the result");
	} else {
		req->result = result;
	}
	deliver(req);
}

void ust_rpc_send_bool(struct ust_rpc_request *req, bool value)
{
	ust_rpc_send_result(req, json_boolean(value));
}

static void send_error_message(struct ust_rpc_request *req, int code, char *message)
{
	if (!claim_answer(req)) {
		free(message);
		return;
	}
	req->error_code = code;
	req->error_message = message ? message : strdup("out of memory");
	deliver(req);
}

void ust_rpc_send_error(struct ust_rpc_request *req, int code, const char *fmt, ...)
{
	char *message = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&message, fmt, ap) < 0) {
		message = NULL;
	}
	va_end(ap);
	send_error_message(req, code, message);
}

void ust_rpc_send_errno(struct ust_rpc_request *req, int neg_errno)
{
	char buf[128];
	int err = neg_errno < 0 ? -neg_errno : neg_errno;
	int code = err == EINVAL ? UST_JSONRPC_ERROR_INVALID_PARAMS
				 : UST_JSONRPC_ERROR_INTERNAL_ERROR;

	send_error_message(req, code, strdup(strerror_r(err, buf, sizeof(buf))));
}

const char *ust_rpc_request_get_method(const struct ust_rpc_request *req)
{
	return req ? req->method->name : NULL;
}

bool ust_rpc_decode_params(struct ust_rpc_request *req, const json_t *params,
			   const struct ust_json_object_decoder *decoders, size_t count, void *out)
{
	char err[UST_JSON_ERRBUF_SIZE];

	if (ust_json_decode_object(params, decoders, count, out, err, sizeof(err)) != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "%s", err);
		return false;
	}
	return true;
}

/* ---- dispatch ----------------------------------------------------------- */

static bool id_is_valid(const json_t *id)
{
	return json_is_number(id) || json_is_string(id) || json_is_null(id);
}

/* Returns NULL if the object is a well-formed request, else why not (the
 * text may be written into buf). */
static const char *check_request_shape(const json_t *obj, char *buf, size_t len)
{
	const json_t *version, *method, *params;
	const char *key;
	json_t *val;

	if (!json_is_object(obj)) {
		return "request must be a JSON object";
	}
	version = json_object_get(obj, "jsonrpc");
	if (!json_is_string(version) || strcmp(json_string_value(version), "2.0") != 0) {
		return "member 'jsonrpc' must be \"2.0\"";
	}
	if (json_object_get(obj, "id") != NULL && !id_is_valid(json_object_get(obj, "id"))) {
		return "member 'id' must be a number, a string or null";
	}
	method = json_object_get(obj, "method");
	if (!json_is_string(method)) {
		return "member 'method' must be a string";
	}
	params = json_object_get(obj, "params");
	if (params != NULL && !json_is_object(params) && !json_is_array(params)) {
		return "member 'params' must be an object";
	}
	/* A misspelt member ("param") would otherwise be silently ignored. */
	json_object_foreach((json_t *)obj, key, val) {
		if (strcmp(key, "jsonrpc") != 0 && strcmp(key, "id") != 0 &&
		    strcmp(key, "method") != 0 && strcmp(key, "params") != 0) {
			snprintf(buf, len, "unknown member '%s' in request", key);
			return buf;
		}
	}
	return NULL;
}

static void complete_with_error(struct rpc_batch *b, size_t index, const json_t *id, int code,
				const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* An error found before a handler ran; dropped for notifications. */
static void complete_with_error(struct rpc_batch *b, size_t index, const json_t *id, int code,
				const char *fmt, ...)
{
	char *message = NULL;
	json_t *resp;
	va_list ap;

	if (id == NULL) {
		batch_complete(b, index, NULL);
		return;
	}
	va_start(ap, fmt);
	if (vasprintf(&message, fmt, ap) < 0) {
		message = NULL;
	}
	va_end(ap);
	resp = ust_rpc_error_response(id, code, message ? message : "out of memory");
	free(message);
	batch_complete(b, index, resp);
}

static const char *state_name(uint32_t mask)
{
	if ((mask & UST_RPC_STARTUP) && (mask & UST_RPC_RUNTIME)) {
		return "start-up or run time";
	}
	if (mask & UST_RPC_STARTUP) {
		return "start-up";
	}
	if (mask & UST_RPC_RUNTIME) {
		return "run time";
	}
	return "no state";
}

static const struct rpc_method *lookup_for_call(const char *name)
{
	struct rpc_method *m = find_method(name);

	if (m != NULL && m->alias_of != NULL &&
	    !__atomic_exchange_n(&m->warned, true, __ATOMIC_RELAXED)) {
		UST_WARNLOG("RPC method '%s' is deprecated; use '%s' instead\n", m->name,
			    m->alias_of);
	}
	return resolve_method(m);
}

static void run_handler(struct rpc_batch *b, size_t index, const struct rpc_method *m,
			const json_t *id, const json_t *params)
{
	struct ust_rpc_request *req = calloc(1, sizeof(*req));

	if (req == NULL) {
		complete_with_error(b, index, id, UST_JSONRPC_ERROR_INTERNAL_ERROR,
				    "out of memory");
		return;
	}
	req->method = m;
	req->id = id ? json_incref((json_t *)id) : NULL;
	req->params = params ? json_incref((json_t *)params) : NULL;
	req->origin = ust_get_thread();
	req->batch = b;
	req->index = index;
	req->in_handler = true;
	m->fn(req, params);
	req->in_handler = false;
	/* Answered inside the handler: free now. Otherwise request_complete()
	 * frees it when the answer arrives. */
	if (req->completed) {
		request_free(req);
	}
}

static void dispatch_one(struct rpc_batch *b, size_t index, const json_t *obj)
{
	const json_t *raw_id = json_object_get(obj, "id");
	char why[UST_JSON_ERRBUF_SIZE];
	const char *problem = check_request_shape(obj, why, sizeof(why));
	const struct rpc_method *m;
	const json_t *params;
	const char *name;
	uint32_t state;

	if (problem != NULL) {
		/* Always answered: we cannot tell whether it was a notification. */
		json_t *resp = ust_rpc_error_response(id_is_valid(raw_id) ? raw_id : NULL,
						      UST_JSONRPC_ERROR_INVALID_REQUEST, problem);

		batch_complete(b, index, resp);
		return;
	}
	name = json_string_value(json_object_get(obj, "method"));
	m = lookup_for_call(name);
	if (m == NULL) {
		complete_with_error(b, index, raw_id, UST_JSONRPC_ERROR_METHOD_NOT_FOUND,
				    "Method not found: '%s'", name);
		return;
	}
	state = ust_rpc_get_state();
	if ((m->state_mask & state) == 0) {
		complete_with_error(b, index, raw_id, UST_JSONRPC_ERROR_INVALID_STATE,
				    "Method '%s' may only be called at %s (now: %s)", name,
				    state_name(m->state_mask), state_name(state));
		return;
	}
	params = json_object_get(obj, "params");
	if (json_is_array(params)) {
		complete_with_error(b, index, raw_id, UST_JSONRPC_ERROR_INVALID_PARAMS,
				    "params must be an object (named parameters), not an array");
		return;
	}
	run_handler(b, index, m, raw_id, params);
}

void ust_rpc_handle_value(const json_t *value, ust_rpc_done_fn done, void *ctx)
{
	bool is_array = json_is_array(value);
	size_t count = is_array ? json_array_size(value) : 1;
	struct rpc_batch *b;

	if (is_array && count == 0) {
		done(ctx, ust_rpc_error_response(NULL, UST_JSONRPC_ERROR_INVALID_REQUEST,
						 "empty batch"));
		return;
	}
	b = batch_create(count, is_array, done, ctx);
	if (b == NULL) {
		done(ctx, ust_rpc_error_response(NULL, UST_JSONRPC_ERROR_INTERNAL_ERROR,
						 "out of memory"));
		return;
	}
	for (size_t i = 0; i < count; i++) {
		dispatch_one(b, i, is_array ? json_array_get(value, i) : value);
	}
	batch_put(b);
}

/* ---- local calls and raw buffers ---------------------------------------- */

struct local_call {
	ust_rpc_local_cb cb;
	void *ctx;
};

static void local_call_done(void *ctx, json_t *response)
{
	struct local_call *call = ctx;

	call->cb(call->ctx, response);
	json_decref(response);
	free(call);
}

int ust_rpc_call_local(const char *method, const json_t *params, ust_rpc_local_cb cb, void *ctx)
{
	static long long next_id = 1;
	struct local_call *call;
	json_t *req;

	if (method == NULL || cb == NULL || (params != NULL && !json_is_object(params))) {
		return -EINVAL;
	}
	call = calloc(1, sizeof(*call));
	req = json_pack("{s:s, s:I, s:s}", "jsonrpc", "2.0", "id",
			(json_int_t)__atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED), "method",
			method);
	if (call == NULL || req == NULL ||
	    (params != NULL && json_object_set(req, "params", (json_t *)params) != 0)) {
		free(call);
		json_decref(req);
		return -ENOMEM;
	}
	call->cb = cb;
	call->ctx = ctx;
	ust_rpc_handle_value(req, local_call_done, call);
	json_decref(req);
	return 0;
}

struct raw_call {
	ust_rpc_raw_cb cb;
	void *ctx;
};

static void raw_emit(ust_rpc_raw_cb cb, void *ctx, json_t *response)
{
	char *text;

	if (response == NULL) {
		return;
	}
	text = json_dumps(response, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(response);
	if (text == NULL) {
		UST_ERRLOG("out of memory encoding an RPC response\n");
		return;
	}
	cb(ctx, text, strlen(text));
	free(text);
}

static void raw_call_done(void *ctx, json_t *response)
{
	struct raw_call *call = ctx;

	raw_emit(call->cb, call->ctx, response);
	free(call);
}

void ust_rpc_process_raw(const char *buf, size_t len, ust_rpc_raw_cb cb, void *ctx)
{
	char err[UST_JSON_ERRBUF_SIZE];
	struct raw_call *call;
	json_t *value;

	if (cb == NULL) {
		return;
	}
	if (len > UST_RPC_MAX_REQUEST_SIZE) {
		snprintf(err, sizeof(err), "request of %zu bytes exceeds the limit of %u bytes", len,
			 UST_RPC_MAX_REQUEST_SIZE);
		raw_emit(cb, ctx, ust_rpc_error_response(NULL, UST_JSONRPC_ERROR_INVALID_REQUEST, err));
		return;
	}
	value = ust_json_parse(buf, len, err, sizeof(err));
	if (value == NULL) {
		raw_emit(cb, ctx, ust_rpc_error_response(NULL, UST_JSONRPC_ERROR_PARSE_ERROR, err));
		return;
	}
	call = calloc(1, sizeof(*call));
	if (call == NULL) {
		json_decref(value);
		raw_emit(cb, ctx, ust_rpc_error_response(NULL, UST_JSONRPC_ERROR_INTERNAL_ERROR,
							  "out of memory"));
		return;
	}
	call->cb = cb;
	call->ctx = ctx;
	ust_rpc_handle_value(value, raw_call_done, call);
	json_decref(value);
}
