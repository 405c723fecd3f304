/*
 * Unit tests of config replay (core/config.c): calls run in file order, one
 * at a time (also when methods answer asynchronously); the first failure
 * stops the replay with -EINVAL and a message naming subsystem, entry index,
 * method and the RPC error, and no later call runs; every layout error is
 * rejected before anything runs; files that are missing or malformed give
 * clear errors. The thread is polled by hand (ust_thread_lib_init(NULL)).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ustor/app.h"
#include "ustor/log.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"

#include "../../../core/app_internal.h"

#define MAX_CALLS 8192

static struct ust_thread *g_thread;
static int g_calls[MAX_CALLS];
static int g_call_count;
static char g_last_error[512];
static int g_done_rc;
static int g_done_count;
static struct ust_subsystem g_alpha = {.name = "alpha"};
static struct ust_subsystem g_beta = {.name = "beta"};

static void log_sink(enum ust_log_level level, const char *msg)
{
	if (level == UST_LOG_ERROR) {
		snprintf(g_last_error, sizeof(g_last_error), "%s", msg);
	}
}

static int param_n(const json_t *params)
{
	return (int)json_integer_value(json_object_get(params, "n"));
}

static void record_call(const json_t *params)
{
	if (g_call_count < MAX_CALLS) {
		g_calls[g_call_count++] = param_n(params);
	}
}

static void rpc_test_ok(struct ust_rpc_request *req, const json_t *params)
{
	record_call(params);
	ust_rpc_send_bool(req, true);
}

static void rpc_test_fail(struct ust_rpc_request *req, const json_t *params)
{
	record_call(params);
	ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "boom %d", param_n(params));
}

static void answer_later(void *arg)
{
	ust_rpc_send_bool(arg, true);
}

static void rpc_test_async(struct ust_rpc_request *req, const json_t *params)
{
	record_call(params);
	assert_int_equal(ust_thread_send_msg(ust_get_thread(), answer_later, req), 0);
}

static void rpc_test_runtime_only(struct ust_rpc_request *req, const json_t *params)
{
	record_call(params);
	ust_rpc_send_bool(req, true);
}

static void config_done(int rc, void *ctx)
{
	g_done_rc = rc;
	g_done_count++;
}

static int group_setup(void **state)
{
	ust_subsystem_registry_reset();
	ust_subsystem_register(&g_alpha);
	ust_subsystem_register(&g_beta);
	ust_rpc_register_method("test_ok", rpc_test_ok, UST_RPC_STARTUP | UST_RPC_RUNTIME);
	ust_rpc_register_method("test_fail", rpc_test_fail, UST_RPC_STARTUP | UST_RPC_RUNTIME);
	ust_rpc_register_method("test_async", rpc_test_async, UST_RPC_STARTUP | UST_RPC_RUNTIME);
	ust_rpc_register_method("test_runtime_only", rpc_test_runtime_only, UST_RPC_RUNTIME);
	ust_rpc_set_state(UST_RPC_STARTUP);
	if (ust_thread_lib_init(NULL) != 0) {
		return -1;
	}
	g_thread = ust_thread_create("config_ut", NULL);
	if (g_thread == NULL) {
		return -1;
	}
	ust_set_thread(g_thread);
	ust_log_set_sink(log_sink);
	return 0;
}

static int group_teardown(void **state)
{
	ust_log_set_sink(NULL);
	ust_set_thread(g_thread);
	ust_thread_exit(g_thread);
	while (!ust_thread_is_exited(g_thread)) {
		ust_thread_poll(g_thread, 0, 0);
	}
	ust_thread_destroy(g_thread);
	ust_set_thread(NULL);
	ust_thread_lib_fini();
	ust_subsystem_registry_reset();
	return 0;
}

static int setup(void **state)
{
	g_call_count = 0;
	g_last_error[0] = '\0';
	g_done_rc = 1;
	g_done_count = 0;
	ust_set_thread(g_thread);
	return 0;
}

/* Replays text and polls the thread until done; returns the result code. */
static int replay_text(const char *text)
{
	json_error_t err;
	json_t *config = json_loads(text, 0, &err);
	int i;

	assert_non_null(config);
	ust_config_load_json(config, config_done, NULL);
	json_decref(config);
	for (i = 0; i < 100000 && g_done_count == 0; i++) {
		ust_thread_poll(g_thread, 0, 0);
	}
	assert_int_equal(g_done_count, 1);
	/* Nothing may be left queued or run afterwards. */
	for (i = 0; i < 10; i++) {
		ust_thread_poll(g_thread, 0, 0);
	}
	assert_int_equal(g_done_count, 1);
	return g_done_rc;
}

static void assert_calls(const int *expected, int count)
{
	int i;

	assert_int_equal(g_call_count, count);
	for (i = 0; i < count; i++) {
		assert_int_equal(g_calls[i], expected[i]);
	}
}

static void test_replays_in_order(void **state)
{
	static const int expected[] = {1, 2, 3, 4};

	assert_int_equal(replay_text("{\"subsystems\":["
				     "{\"subsystem\":\"alpha\",\"config\":["
				     "{\"method\":\"test_ok\",\"params\":{\"n\":1}},"
				     "{\"method\":\"test_async\",\"params\":{\"n\":2}}]},"
				     "{\"subsystem\":\"beta\",\"config\":null},"
				     "{\"subsystem\":\"beta\",\"config\":[]},"
				     "{\"subsystem\":\"beta\",\"config\":["
				     "{\"method\":\"test_async\",\"params\":{\"n\":3}},"
				     "{\"method\":\"test_ok\",\"params\":{\"n\":4}}]}]}"),
			 0);
	assert_calls(expected, 4);
}

static void test_stops_at_first_failure(void **state)
{
	static const int expected[] = {1, 2, 3};

	assert_int_equal(replay_text("{\"subsystems\":["
				     "{\"subsystem\":\"alpha\",\"config\":["
				     "{\"method\":\"test_ok\",\"params\":{\"n\":1}}]},"
				     "{\"subsystem\":\"beta\",\"config\":["
				     "{\"method\":\"test_async\",\"params\":{\"n\":2}},"
				     "{\"method\":\"test_fail\",\"params\":{\"n\":3}},"
				     "{\"method\":\"test_ok\",\"params\":{\"n\":4}}]},"
				     "{\"subsystem\":\"alpha\",\"config\":["
				     "{\"method\":\"test_ok\",\"params\":{\"n\":5}}]}]}"),
			 -EINVAL);
	assert_calls(expected, 3);
	assert_non_null(strstr(g_last_error, "subsystem 'beta' entry 1 (test_fail) failed: boom 3"));
}

static void test_unknown_method_fails(void **state)
{
	static const int expected[] = {1};

	assert_int_equal(replay_text("{\"subsystems\":[{\"subsystem\":\"alpha\",\"config\":["
				     "{\"method\":\"test_ok\",\"params\":{\"n\":1}},"
				     "{\"method\":\"no_such_method\"},"
				     "{\"method\":\"test_ok\",\"params\":{\"n\":2}}]}]}"),
			 -EINVAL);
	assert_calls(expected, 1);
	assert_non_null(strstr(g_last_error, "subsystem 'alpha' entry 1 (no_such_method) failed"));
}

static void test_runtime_only_method_refused_at_startup(void **state)
{
	assert_int_equal(replay_text("{\"subsystems\":[{\"subsystem\":\"alpha\",\"config\":["
				     "{\"method\":\"test_runtime_only\",\"params\":{\"n\":1}}]}]}"),
			 -EINVAL);
	assert_int_equal(g_call_count, 0);
	assert_non_null(strstr(g_last_error, "entry 0 (test_runtime_only) failed"));
}

struct layout_case {
	const char *text;
	const char *message;
};

static void test_layout_errors_run_nothing(void **state)
{
	static const struct layout_case cases[] = {
		{"[]", "top level must be an object"},
		{"{}", "missing \"subsystems\" array"},
		{"{\"subsystems\":{}}", "non-array \"subsystems\""},
		{"{\"subsystems\":[1]}", "subsystems[0]: not an object"},
		{"{\"subsystems\":[{\"config\":[]}]}", "subsystems[0]: missing \"subsystem\""},
		{"{\"subsystems\":[{\"subsystem\":7}]}", "non-string \"subsystem\""},
		{"{\"subsystems\":[{\"subsystem\":\"alpha\",\"config\":[]},"
		 "{\"subsystem\":\"gamma\",\"config\":[]}]}",
		 "subsystems[1]: unknown subsystem 'gamma'"},
		{"{\"subsystems\":[{\"subsystem\":\"alpha\",\"config\":{}}]}",
		 "\"config\" must be an array"},
		{"{\"subsystems\":[{\"subsystem\":\"alpha\",\"config\":[],\"x\":1}]}",
		 "unknown key \"x\""},
		{"{\"subsystems\":[{\"subsystem\":\"alpha\",\"config\":["
		 "{\"method\":\"test_ok\",\"params\":{\"n\":1}},\"oops\"]}]}",
		 "subsystem 'alpha' entry 1: not an object"},
		{"{\"subsystems\":[{\"subsystem\":\"alpha\",\"config\":["
		 "{\"method\":\"test_ok\",\"params\":{\"n\":1}},{\"params\":{}}]}]}",
		 "subsystem 'alpha' entry 1: missing \"method\""},
		{"{\"subsystems\":[{\"subsystem\":\"beta\",\"config\":[{\"method\":3}]}]}",
		 "subsystem 'beta' entry 0: non-string \"method\""},
		{"{\"subsystems\":[{\"subsystem\":\"beta\",\"config\":["
		 "{\"method\":\"test_ok\",\"params\":[1]}]}]}",
		 "\"params\" must be an object"},
		{"{\"subsystems\":[{\"subsystem\":\"beta\",\"config\":["
		 "{\"method\":\"test_ok\",\"parms\":{}}]}]}",
		 "unknown key \"parms\""},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		g_done_count = 0;
		g_last_error[0] = '\0';
		assert_int_equal(replay_text(cases[i].text), -EINVAL);
		assert_int_equal(g_call_count, 0);
		if (strstr(g_last_error, cases[i].message) == NULL) {
			fail_msg("case %zu: expected \"%s\" in \"%s\"", i, cases[i].message,
				 g_last_error);
		}
	}
}

static void test_empty_config_is_fine(void **state)
{
	assert_int_equal(replay_text("{\"subsystems\":[]}"), 0);
	assert_int_equal(g_call_count, 0);
}

static void test_long_config_does_not_grow_stack(void **state)
{
	json_t *config, *calls;
	int i;

	calls = json_array();
	for (i = 0; i < 5000; i++) {
		json_array_append_new(calls, json_pack("{s:s, s:{s:i}}", "method",
						       i % 2 ? "test_ok" : "test_async", "params",
						       "n", i));
	}
	config = json_pack("{s:[{s:s, s:o}]}", "subsystems", "subsystem", "alpha", "config",
			   calls);
	ust_config_load_json(config, config_done, NULL);
	json_decref(config);
	for (i = 0; i < 1000000 && g_done_count == 0; i++) {
		ust_thread_poll(g_thread, 0, 0);
	}
	assert_int_equal(g_done_count, 1);
	assert_int_equal(g_done_rc, 0);
	assert_int_equal(g_call_count, 5000);
	for (i = 0; i < 5000; i++) {
		assert_int_equal(g_calls[i], i);
	}
}

static void test_needs_a_thread(void **state)
{
	json_t *config = json_loads("{\"subsystems\":[]}", 0, NULL);

	ust_set_thread(NULL);
	ust_config_load_json(config, config_done, NULL);
	ust_set_thread(g_thread);
	json_decref(config);
	assert_int_equal(g_done_count, 1);
	assert_int_equal(g_done_rc, -EPERM);
}

static int load_file_and_wait(const char *path)
{
	int i;

	ust_config_load_file(path, config_done, NULL);
	for (i = 0; i < 100000 && g_done_count == 0; i++) {
		ust_thread_poll(g_thread, 0, 0);
	}
	assert_int_equal(g_done_count, 1);
	return g_done_rc;
}

static char *write_temp(const char *text)
{
	char *path = strdup("/tmp/config_ut_XXXXXX");
	int fd = mkstemp(path);
	size_t len = strlen(text);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_load_file(void **state)
{
	static const int expected[] = {9};
	char *good = write_temp("{\"subsystems\":[{\"subsystem\":\"alpha\",\"config\":["
				"{\"method\":\"test_ok\",\"params\":{\"n\":9}}]}]}");
	char *bad = write_temp("{\"subsystems\":[{\"subsystem\":\"alpha\",\n\"config\":[}");

	assert_int_equal(load_file_and_wait(good), 0);
	assert_calls(expected, 1);

	g_done_count = 0;
	assert_int_equal(load_file_and_wait(bad), -EINVAL);
	assert_non_null(strstr(g_last_error, "cannot parse"));
	assert_non_null(strstr(g_last_error, bad));
	assert_calls(expected, 1);

	g_done_count = 0;
	assert_int_equal(load_file_and_wait("/nonexistent/ustor.json"), -ENOENT);
	assert_non_null(strstr(g_last_error, "/nonexistent/ustor.json"));

	unlink(good);
	unlink(bad);
	free(good);
	free(bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_replays_in_order, setup),
		cmocka_unit_test_setup(test_stops_at_first_failure, setup),
		cmocka_unit_test_setup(test_unknown_method_fails, setup),
		cmocka_unit_test_setup(test_runtime_only_method_refused_at_startup, setup),
		cmocka_unit_test_setup(test_layout_errors_run_nothing, setup),
		cmocka_unit_test_setup(test_empty_config_is_fine, setup),
		cmocka_unit_test_setup(test_long_config_does_not_grow_stack, setup),
		cmocka_unit_test_setup(test_needs_a_thread, setup),
		cmocka_unit_test_setup(test_load_file, setup),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
