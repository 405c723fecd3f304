/*
 * Unit tests for core/rpc.c and core/rpc_log.c through ust_rpc_process_raw()
 * and ust_rpc_call_local(): valid calls, parse errors, truncated and huge
 * input, malformed requests, batches, notifications, unknown methods, state
 * masks, deprecated aliases, parameter errors, asynchronous answers from the
 * same and from another OS thread, double answers, and the log and
 * rpc_get_methods RPCs.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ustor/log.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"

UST_LOG_REGISTER_COMPONENT(rpc_ut_flag)

/* ---- test methods ------------------------------------------------------- */

struct add_params {
	int32_t a;
	int32_t b;
};

static const struct ust_json_object_decoder g_add_decoders[] = {
	{"a", offsetof(struct add_params, a), ust_json_decode_int32, false},
	{"b", offsetof(struct add_params, b), ust_json_decode_int32, false},
};

static int g_add_calls;

static void rpc_test_add(struct ust_rpc_request *req, const json_t *params)
{
	struct add_params p = {0};

	g_add_calls++;
	if (ust_rpc_decode_params(req, params, g_add_decoders, 2, &p)) {
		ust_rpc_send_result(req, json_integer((json_int_t)p.a + p.b));
	}
}
UST_RPC_REGISTER("test_add", rpc_test_add, UST_RPC_STARTUP | UST_RPC_RUNTIME)
UST_RPC_REGISTER_ALIAS_DEPRECATED("test_add", test_old_add)

static void rpc_test_runtime_only(struct ust_rpc_request *req, const json_t *params)
{
	ust_rpc_send_bool(req, true);
}
UST_RPC_REGISTER("test_runtime_only", rpc_test_runtime_only, UST_RPC_RUNTIME)

static void rpc_test_enodev(struct ust_rpc_request *req, const json_t *params)
{
	ust_rpc_send_errno(req, -ENODEV);
}
UST_RPC_REGISTER("test_enodev", rpc_test_enodev, UST_RPC_STARTUP | UST_RPC_RUNTIME)

static void rpc_test_einval(struct ust_rpc_request *req, const json_t *params)
{
	ust_rpc_send_errno(req, -EINVAL);
}
UST_RPC_REGISTER("test_einval", rpc_test_einval, UST_RPC_STARTUP | UST_RPC_RUNTIME)

static void rpc_test_double(struct ust_rpc_request *req, const json_t *params)
{
	ust_rpc_send_bool(req, true);
	ust_rpc_send_error(req, UST_JSONRPC_ERROR_INTERNAL_ERROR, "second answer");
	ust_rpc_send_result(req, json_string("third answer"));
}
UST_RPC_REGISTER("test_double", rpc_test_double, UST_RPC_STARTUP | UST_RPC_RUNTIME)

#define MAX_PENDING 8
static struct ust_rpc_request *g_pending[MAX_PENDING];
static int g_npending;

static void rpc_test_async(struct ust_rpc_request *req, const json_t *params)
{
	assert_true(g_npending < MAX_PENDING);
	assert_string_equal(ust_rpc_request_get_method(req), "test_async");
	g_pending[g_npending++] = req;
}
UST_RPC_REGISTER("test_async", rpc_test_async, UST_RPC_STARTUP | UST_RPC_RUNTIME)

static struct ust_rpc_request *take_pending(void)
{
	struct ust_rpc_request *req;

	assert_true(g_npending > 0);
	req = g_pending[0];
	memmove(g_pending, g_pending + 1, (size_t)(--g_npending) * sizeof(g_pending[0]));
	return req;
}

/* ---- capture ------------------------------------------------------------ */

#define MAX_RESPONSES 16
static char *g_responses[MAX_RESPONSES];
static int g_nresponses;
static pthread_t g_response_thread;

static void capture_response(void *ctx, const char *text, size_t len)
{
	assert_int_equal(strlen(text), len);
	assert_true(g_nresponses < MAX_RESPONSES);
	g_responses[g_nresponses++] = strdup(text);
	g_response_thread = pthread_self();
}

static char *g_log[64];
static int g_nlog;

static void capture_log(enum ust_log_level level, const char *msg)
{
	if (g_nlog < 64) {
		g_log[g_nlog++] = strdup(msg);
	}
}

static int count_log(const char *needle)
{
	int n = 0;

	for (int i = 0; i < g_nlog; i++) {
		n += strstr(g_log[i], needle) != NULL;
	}
	return n;
}

static struct ust_thread *g_thread;

static int setup(void **state)
{
	if (ust_thread_lib_init(NULL) != 0) {
		return -1;
	}
	g_thread = ust_thread_create("rpc_ut", NULL);
	if (g_thread == NULL) {
		return -1;
	}
	ust_set_thread(g_thread);
	ust_log_set_sink(capture_log);
	ust_rpc_set_state(UST_RPC_STARTUP);
	return 0;
}

static int teardown(void **state)
{
	for (int i = 0; i < g_nresponses; i++) {
		free(g_responses[i]);
	}
	g_nresponses = 0;
	for (int i = 0; i < g_nlog; i++) {
		free(g_log[i]);
	}
	g_nlog = 0;
	ust_log_set_sink(NULL);
	if (g_npending != 0) {
		return -1;
	}
	ust_thread_exit(g_thread);
	for (int i = 0; i < 100 && !ust_thread_is_exited(g_thread); i++) {
		ust_thread_poll(g_thread, 0, 0);
	}
	if (!ust_thread_is_exited(g_thread)) {
		return -1;
	}
	ust_thread_destroy(g_thread);
	ust_set_thread(NULL);
	ust_thread_lib_fini();
	return 0;
}

/* Process text; expect exactly `expect` (0 or 1) responses. */
static json_t *call_text_n(const char *text, size_t len, int expect)
{
	int before = g_nresponses;
	json_error_t err;
	json_t *resp;

	ust_rpc_process_raw(text, len, capture_response, NULL);
	assert_int_equal(g_nresponses - before, expect);
	if (expect == 0) {
		return NULL;
	}
	resp = json_loads(g_responses[g_nresponses - 1], 0, &err);
	assert_non_null(resp);
	return resp;
}

/* For requests that must get no answer (notifications, pending async). */
static void call_silent(const char *text)
{
	call_text_n(text, strlen(text), 0);
}

static json_t *call_text(const char *text)
{
	return call_text_n(text, strlen(text), 1);
}

static void assert_error(const json_t *resp, int code, const char *msg_part)
{
	json_t *err = json_object_get(resp, "error");

	assert_non_null(err);
	assert_string_equal(json_string_value(json_object_get(resp, "jsonrpc")), "2.0");
	assert_null(json_object_get(resp, "result"));
	assert_int_equal(json_integer_value(json_object_get(err, "code")), code);
	if (msg_part != NULL &&
	    strstr(json_string_value(json_object_get(err, "message")), msg_part) == NULL) {
		fail_msg("message '%s' lacks '%s'", json_string_value(json_object_get(err, "message")),
			 msg_part);
	}
}

static void assert_id_null(const json_t *resp)
{
	assert_true(json_is_null(json_object_get(resp, "id")));
}

/* ---- tests -------------------------------------------------------------- */

static void test_valid_call(void **state)
{
	json_t *r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"test_add\","
			      "\"params\":{\"a\":2,\"b\":3},\"id\":1}");

	assert_int_equal(json_integer_value(json_object_get(r, "result")), 5);
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 1);
	assert_null(json_object_get(r, "error"));
	json_decref(r);

	r = call_text("{\"id\":\"abc\",\"params\":{\"a\":-2,\"b\":3},\"method\":\"test_add\","
		      "\"jsonrpc\":\"2.0\"}");
	assert_string_equal(json_string_value(json_object_get(r, "id")), "abc");
	assert_int_equal(json_integer_value(json_object_get(r, "result")), 1);
	json_decref(r);

	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"params\":{\"a\":1,\"b\":1},"
		      "\"id\":null}");
	assert_id_null(r);
	assert_int_equal(json_integer_value(json_object_get(r, "result")), 2);
	json_decref(r);
	/* Responses are compact, one line, no trailing newline. */
	assert_null(strchr(g_responses[0], '\n'));
}

static void test_parse_errors(void **state)
{
	static const char *const bad[] = {
		"{\"jsonrpc\":\"2.0\",\"method\"",            /* truncated */
		"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":1", /* truncated */
		"{\"jsonrpc\":\"2.0\",\"method\":\"x\",}",       /* trailing comma */
		"{\"jsonrpc\":\"2.0\",\"method\":\"x\"} {}",     /* two values */
		"garbage",
		"",
		"{\"a\":1,\"a\":2}", /* duplicate key */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *r = call_text(bad[i]);

		assert_error(r, UST_JSONRPC_ERROR_PARSE_ERROR, "line 1");
		assert_id_null(r);
		json_decref(r);
	}
	/* Bytes past len are not read. */
	{
		json_t *r = call_text_n("[1]]]]", 3, 1);

		assert_true(json_is_array(r));
		json_decref(r);
	}
}

static void test_huge_request(void **state)
{
	size_t len = 32u * 1024 * 1024 + 1;
	char *buf = malloc(len);
	json_t *r;

	const char *req = "{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"id\":1}";

	memset(buf, ' ', len);
	memcpy(buf, req, strlen(req));
	r = call_text_n(buf, len, 1);
	assert_error(r, UST_JSONRPC_ERROR_INVALID_REQUEST, "exceeds the limit");
	json_decref(r);
	/* Just under the limit is accepted. */
	r = call_text_n(buf, len - 1, 1);
	assert_error(r, UST_JSONRPC_ERROR_INVALID_PARAMS, "missing key 'a'");
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 1);
	json_decref(r);
	free(buf);
}

static void test_invalid_requests(void **state)
{
	static const struct {
		const char *text;
		const char *msg;
		int id; /* -1: id null */
	} cases[] = {
		{"5", "must be a JSON object", -1},
		{"\"test_add\"", "must be a JSON object", -1},
		{"{\"method\":\"test_add\",\"id\":1}", "'jsonrpc'", 1},
		{"{\"jsonrpc\":\"1.0\",\"method\":\"test_add\",\"id\":1}", "'jsonrpc'", 1},
		{"{\"jsonrpc\":2.0,\"method\":\"test_add\",\"id\":1}", "'jsonrpc'", 1},
		{"{\"jsonrpc\":\"2.0\",\"id\":1}", "'method'", 1},
		{"{\"jsonrpc\":\"2.0\",\"method\":5,\"id\":2}", "'method'", 2},
		{"{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"id\":{}}", "'id'", -1},
		{"{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"id\":[1]}", "'id'", -1},
		{"{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"id\":true}", "'id'", -1},
		{"{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"params\":\"x\",\"id\":3}", "'params'",
		 3},
		{"{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"param\":{},\"id\":4}",
		 "unknown member 'param'", 4},
		/* No id: still answered, as it cannot be known to be a notification. */
		{"{\"jsonrpc\":\"2.0\",\"method\":1,\"params\":\"bar\"}", "'method'", -1},
	};

	g_add_calls = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *r = call_text(cases[i].text);

		assert_error(r, UST_JSONRPC_ERROR_INVALID_REQUEST, cases[i].msg);
		if (cases[i].id < 0) {
			assert_id_null(r);
		} else {
			assert_int_equal(json_integer_value(json_object_get(r, "id")), cases[i].id);
		}
		json_decref(r);
	}
	assert_int_equal(g_add_calls, 0);
}

static void test_params_errors(void **state)
{
	json_t *r;

	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"params\":[1,2],\"id\":7}");
	assert_error(r, UST_JSONRPC_ERROR_INVALID_PARAMS, "must be an object");
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 7);
	json_decref(r);

	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"params\":{\"a\":\"x\",\"b\":1},"
		      "\"id\":8}");
	assert_error(r, UST_JSONRPC_ERROR_INVALID_PARAMS, NULL);
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "error"),
								"message")),
			    "key 'a': expected signed 32-bit integer");
	json_decref(r);

	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"params\":{\"a\":1,\"b\":2,"
		      "\"c\":3},\"id\":9}");
	assert_error(r, UST_JSONRPC_ERROR_INVALID_PARAMS, "unknown key 'c'");
	json_decref(r);

	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"id\":9}");
	assert_error(r, UST_JSONRPC_ERROR_INVALID_PARAMS, "missing key 'a'");
	json_decref(r);

	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"test_enodev\",\"id\":10}");
	assert_error(r, UST_JSONRPC_ERROR_INTERNAL_ERROR, "No such device");
	json_decref(r);
	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"test_einval\",\"id\":11}");
	assert_error(r, UST_JSONRPC_ERROR_INVALID_PARAMS, "Invalid argument");
	json_decref(r);
}

static void test_unknown_method(void **state)
{
	json_t *r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"id\":1}");

	assert_error(r, UST_JSONRPC_ERROR_METHOD_NOT_FOUND, "Method not found: 'nope'");
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 1);
	json_decref(r);
	assert_false(ust_rpc_method_exists("nope"));
	assert_true(ust_rpc_method_exists("test_add"));
	assert_true(ust_rpc_method_exists("test_old_add"));
	assert_false(ust_rpc_method_exists(NULL));
}

static void test_notifications(void **state)
{
	g_add_calls = 0;
	call_silent("{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"params\":{\"a\":1,\"b\":1}}");
	assert_int_equal(g_add_calls, 1);
	/* Errors in notifications are not answered either. */
	call_silent("{\"jsonrpc\":\"2.0\",\"method\":\"nope\"}");
	call_silent("{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"params\":{\"a\":\"x\"}}");
	call_silent("{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"params\":[]}");
	assert_int_equal(g_add_calls, 2);
}

static void test_batches(void **state)
{
	json_t *r, *e;

	r = call_text("[]");
	assert_true(json_is_object(r));
	assert_error(r, UST_JSONRPC_ERROR_INVALID_REQUEST, "empty batch");
	assert_id_null(r);
	json_decref(r);

	r = call_text("[1,2,3]");
	assert_true(json_is_array(r));
	assert_int_equal(json_array_size(r), 3);
	for (size_t i = 0; i < 3; i++) {
		assert_error(json_array_get(r, i), UST_JSONRPC_ERROR_INVALID_REQUEST, NULL);
		assert_id_null(json_array_get(r, i));
	}
	json_decref(r);

	r = call_text("[{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"params\":{\"a\":1,\"b\":2},"
		      "\"id\":\"1\"},"
		      "{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"params\":{\"a\":7,\"b\":7}},"
		      "{\"foo\":\"boo\"},"
		      "{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"id\":\"5\"},"
		      "{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"params\":{\"a\":40,\"b\":2},"
		      "\"id\":\"9\"}]");
	assert_int_equal(json_array_size(r), 4);
	e = json_array_get(r, 0);
	assert_string_equal(json_string_value(json_object_get(e, "id")), "1");
	assert_int_equal(json_integer_value(json_object_get(e, "result")), 3);
	assert_error(json_array_get(r, 1), UST_JSONRPC_ERROR_INVALID_REQUEST, NULL);
	e = json_array_get(r, 2);
	assert_error(e, UST_JSONRPC_ERROR_METHOD_NOT_FOUND, NULL);
	assert_string_equal(json_string_value(json_object_get(e, "id")), "5");
	e = json_array_get(r, 3);
	assert_int_equal(json_integer_value(json_object_get(e, "result")), 42);
	json_decref(r);

	/* All notifications: no response at all. */
	g_add_calls = 0;
	call_silent("[{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"params\":{\"a\":1,\"b\":1}},"
		    "{\"jsonrpc\":\"2.0\",\"method\":\"nope\"}]");
	assert_int_equal(g_add_calls, 1);
}

static void test_state_mask(void **state)
{
	json_t *r;

	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"test_runtime_only\",\"id\":1}");
	assert_error(r, UST_JSONRPC_ERROR_INVALID_STATE,
		     "Method 'test_runtime_only' may only be called at run time");
	json_decref(r);

	ust_rpc_set_state(UST_RPC_RUNTIME);
	assert_int_equal(ust_rpc_get_state(), UST_RPC_RUNTIME);
	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"test_runtime_only\",\"id\":1}");
	assert_true(json_is_true(json_object_get(r, "result")));
	json_decref(r);
	ust_rpc_set_state(UST_RPC_STARTUP);
}

static void test_deprecated_alias(void **state)
{
	json_t *r;

	for (int i = 0; i < 3; i++) {
		r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"test_old_add\","
			      "\"params\":{\"a\":1,\"b\":2},\"id\":1}");
		assert_int_equal(json_integer_value(json_object_get(r, "result")), 3);
		json_decref(r);
	}
	/* One warning per alias, naming the new method. */
	assert_int_equal(count_log("'test_old_add' is deprecated; use 'test_add' instead"), 1);
}

static void test_double_answer(void **state)
{
	json_t *r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"test_double\",\"id\":1}");

	assert_true(json_is_true(json_object_get(r, "result")));
	json_decref(r);
	assert_int_equal(count_log("answered one request twice"), 2);
}

static void test_async_same_thread(void **state)
{
	json_t *r;

	call_silent("{\"jsonrpc\":\"2.0\",\"method\":\"test_async\",\"id\":1}");
	assert_int_equal(g_npending, 1);
	ust_rpc_send_result(take_pending(), json_string("later"));
	assert_int_equal(g_nresponses, 1);
	r = json_loads(g_responses[0], 0, NULL);
	assert_string_equal(json_string_value(json_object_get(r, "result")), "later");
	json_decref(r);

	/* A batch answers once every member has. */
	call_silent("[{\"jsonrpc\":\"2.0\",\"method\":\"test_async\",\"id\":1},"
		    "{\"jsonrpc\":\"2.0\",\"method\":\"test_add\",\"params\":{\"a\":1,\"b\":1},\"id\":2},"
		    "{\"jsonrpc\":\"2.0\",\"method\":\"test_async\",\"id\":3}]");
	assert_int_equal(g_npending, 2);
	ust_rpc_send_error(take_pending(), -32001, "custom %d", 7);
	assert_int_equal(g_nresponses, 1);
	ust_rpc_send_bool(take_pending(), false);
	assert_int_equal(g_nresponses, 2);
	r = json_loads(g_responses[1], 0, NULL);
	assert_int_equal(json_array_size(r), 3);
	assert_error(json_array_get(r, 0), -32001, "custom 7");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(r, 1), "result")), 2);
	assert_true(json_is_false(json_object_get(json_array_get(r, 2), "result")));
	json_decref(r);
}

static void *answer_from_other_thread(void *arg)
{
	json_t *result = json_pack("{s:s}", "from", "worker");

	ust_rpc_send_result(arg, result);
	return NULL;
}

static void test_async_other_thread(void **state)
{
	pthread_t worker;
	json_t *r;

	call_silent("{\"jsonrpc\":\"2.0\",\"method\":\"test_async\",\"id\":42}");
	assert_int_equal(pthread_create(&worker, NULL, answer_from_other_thread, take_pending()),
			 0);
	pthread_join(worker, NULL);
	/* The answer waits in the origin thread's queue until it is polled. */
	assert_int_equal(g_nresponses, 0);
	for (int i = 0; i < 10 && g_nresponses == 0; i++) {
		ust_thread_poll(g_thread, 0, 0);
	}
	assert_int_equal(g_nresponses, 1);
	assert_true(pthread_equal(g_response_thread, pthread_self()));
	r = json_loads(g_responses[0], 0, NULL);
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 42);
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "result"),
								"from")),
			    "worker");
	json_decref(r);
}

static json_t *g_local_response;

static void local_cb(void *ctx, json_t *response)
{
	assert_ptr_equal(ctx, &g_local_response);
	g_local_response = json_incref(response);
}

static void test_call_local(void **state)
{
	json_t *params = json_pack("{s:i, s:i}", "a", 20, "b", 22);

	assert_int_equal(ust_rpc_call_local("test_add", params, local_cb, &g_local_response), 0);
	assert_non_null(g_local_response);
	assert_string_equal(json_string_value(json_object_get(g_local_response, "jsonrpc")), "2.0");
	assert_true(json_is_integer(json_object_get(g_local_response, "id")));
	assert_int_equal(json_integer_value(json_object_get(g_local_response, "result")), 42);
	json_decref(g_local_response);
	g_local_response = NULL;

	assert_int_equal(ust_rpc_call_local("nope", NULL, local_cb, &g_local_response), 0);
	assert_error(g_local_response, UST_JSONRPC_ERROR_METHOD_NOT_FOUND, "nope");
	json_decref(g_local_response);
	g_local_response = NULL;

	assert_int_equal(ust_rpc_call_local(NULL, NULL, local_cb, NULL), -EINVAL);
	assert_int_equal(ust_rpc_call_local("test_add", NULL, NULL, NULL), -EINVAL);
	json_decref(params);
	params = json_array();
	assert_int_equal(ust_rpc_call_local("test_add", params, local_cb, NULL), -EINVAL);
	json_decref(params);
	assert_null(g_local_response);
}

static void test_log_rpcs(void **state)
{
	json_t *r;

	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"log_set_print_level\","
		      "\"params\":{\"level\":\"DEBUG\"},\"id\":1}");
	assert_true(json_is_true(json_object_get(r, "result")));
	json_decref(r);
	assert_int_equal(ust_log_get_print_level(), UST_LOG_DEBUG);
	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"log_get_print_level\",\"id\":2}");
	assert_string_equal(json_string_value(json_object_get(r, "result")), "DEBUG");
	json_decref(r);
	ust_log_set_print_level(UST_LOG_NOTICE);

	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"log_set_level\","
		      "\"params\":{\"level\":\"warning\"},\"id\":1}");
	assert_true(json_is_true(json_object_get(r, "result")));
	json_decref(r);
	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"log_get_level\",\"id\":2}");
	assert_string_equal(json_string_value(json_object_get(r, "result")), "WARNING");
	json_decref(r);
	ust_log_set_level(UST_LOG_NOTICE);

	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"log_set_level\","
		      "\"params\":{\"level\":\"LOUD\"},\"id\":3}");
	assert_error(r, UST_JSONRPC_ERROR_INVALID_PARAMS, "invalid log level 'LOUD'");
	json_decref(r);
	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"log_set_level\",\"id\":3}");
	assert_error(r, UST_JSONRPC_ERROR_INVALID_PARAMS, "missing key 'level'");
	json_decref(r);
	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"log_get_level\",\"params\":{\"x\":1},"
		      "\"id\":3}");
	assert_error(r, UST_JSONRPC_ERROR_INVALID_PARAMS, "unknown key 'x'");
	json_decref(r);

	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"log_set_flag\","
		      "\"params\":{\"flag\":\"rpc_ut_flag\"},\"id\":4}");
	assert_true(json_is_true(json_object_get(r, "result")));
	json_decref(r);
	assert_true(ust_log_get_flag("rpc_ut_flag"));
	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"log_get_flags\",\"id\":5}");
	assert_true(json_is_true(json_object_get(json_object_get(r, "result"), "rpc_ut_flag")));
	json_decref(r);
	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"log_clear_flag\","
		      "\"params\":{\"flag\":\"rpc_ut_flag\"},\"id\":6}");
	assert_true(json_is_true(json_object_get(r, "result")));
	json_decref(r);
	assert_false(ust_log_get_flag("rpc_ut_flag"));
	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"log_set_flag\","
		      "\"params\":{\"flag\":\"no_such_flag\"},\"id\":7}");
	assert_error(r, UST_JSONRPC_ERROR_INVALID_PARAMS, "unknown log flag 'no_such_flag'");
	json_decref(r);
}

static bool array_has(const json_t *arr, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v) {
		if (strcmp(json_string_value(v), s) == 0) {
			return true;
		}
	}
	return false;
}

static void test_rpc_get_methods(void **state)
{
	json_t *r, *list;
	size_t i;

	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"rpc_get_methods\",\"id\":1}");
	list = json_object_get(r, "result");
	assert_true(json_array_size(list) > 10);
	for (i = 1; i < json_array_size(list); i++) {
		assert_true(strcmp(json_string_value(json_array_get(list, i - 1)),
				   json_string_value(json_array_get(list, i))) < 0);
	}
	assert_true(array_has(list, "test_add"));
	assert_true(array_has(list, "test_runtime_only"));
	assert_true(array_has(list, "log_set_flag"));
	assert_false(array_has(list, "test_old_add"));
	json_decref(r);

	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"rpc_get_methods\","
		      "\"params\":{\"current\":true,\"include_aliases\":true},\"id\":1}");
	list = json_object_get(r, "result");
	assert_false(array_has(list, "test_runtime_only"));
	assert_true(array_has(list, "test_old_add"));
	assert_true(array_has(list, "test_add"));
	json_decref(r);

	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"rpc_get_methods\","
		      "\"params\":{\"current\":1},\"id\":1}");
	assert_error(r, UST_JSONRPC_ERROR_INVALID_PARAMS, "key 'current': expected boolean");
	json_decref(r);
}

static void test_registration_errors(void **state)
{
	json_t *r;

	/* Duplicates keep the first handler; bad registrations are refused. */
	ust_rpc_register_method("test_add", rpc_test_enodev, UST_RPC_RUNTIME);
	ust_rpc_register_method("test_null_fn", NULL, UST_RPC_RUNTIME);
	ust_rpc_register_method(NULL, rpc_test_enodev, UST_RPC_RUNTIME);
	ust_rpc_register_alias_deprecated("nowhere", "test_dangling_alias");
	assert_false(ust_rpc_method_exists("test_null_fn"));
	assert_false(ust_rpc_method_exists("test_dangling_alias"));
	assert_int_equal(count_log("registered twice"), 1);

	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"test_add\","
		      "\"params\":{\"a\":1,\"b\":2},\"id\":1}");
	assert_int_equal(json_integer_value(json_object_get(r, "result")), 3);
	json_decref(r);
	r = call_text("{\"jsonrpc\":\"2.0\",\"method\":\"test_dangling_alias\",\"id\":1}");
	assert_error(r, UST_JSONRPC_ERROR_METHOD_NOT_FOUND, NULL);
	json_decref(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_valid_call, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_params_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_method, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notifications, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_mask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deprecated_alias, setup, teardown),
		cmocka_unit_test_setup_teardown(test_double_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_same_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_other_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_local, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_rpcs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rpc_get_methods, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registration_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
