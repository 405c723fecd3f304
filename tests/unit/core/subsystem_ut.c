/*
 * Unit tests of the subsystem registry (core/subsystem.c): dependency
 * ordering, missing dependencies and cycles reported by name, init failures
 * stopping the walk, asynchronous init/fini, reverse-order fini of only the
 * initialised subsystems, and the JSON views (running config, subsystem list).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ustor/app.h"
#include "ustor/log.h"

#include "../../../core/app_internal.h"

#define MAX_EVENTS 32

static char g_events[MAX_EVENTS][32];
static int g_event_count;
static char g_last_error[512];
static int g_init_rc[8];
static bool g_init_async[8];
static ust_subsystem_done_fn g_pending_done;
static int g_walk_rc;
static int g_walk_calls;

static void record(const char *what, const char *name)
{
	if (g_event_count < MAX_EVENTS) {
		snprintf(g_events[g_event_count++], sizeof(g_events[0]), "%s:%s", what, name);
	}
}

static void log_sink(enum ust_log_level level, const char *msg)
{
	if (level == UST_LOG_ERROR) {
		snprintf(g_last_error, sizeof(g_last_error), "%s", msg);
	}
}

/* A fixed pool of subsystems; each has its own hooks so they know their index. */
static struct ust_subsystem g_subs[8];
static char g_names[8][8];

static void sub_init(int i, ust_subsystem_done_fn done, void *ctx)
{
	record("init", g_names[i]);
	if (g_init_async[i]) {
		g_pending_done = done;
		return;
	}
	done(g_init_rc[i], ctx);
}

static void sub_fini(int i, ust_subsystem_done_fn done, void *ctx)
{
	record("fini", g_names[i]);
	done(0, ctx);
}

static void sub_write_config(json_t *calls)
{
	json_array_append_new(calls, json_pack("{s:s, s:{s:i}}", "method", "test_method",
					       "params", "value", 7));
}

static void init_0(ust_subsystem_done_fn done, void *ctx)
{
	sub_init(0, done, ctx);
}

static void fini_0(ust_subsystem_done_fn done, void *ctx)
{
	sub_fini(0, done, ctx);
}

static void init_1(ust_subsystem_done_fn done, void *ctx)
{
	sub_init(1, done, ctx);
}

static void fini_1(ust_subsystem_done_fn done, void *ctx)
{
	sub_fini(1, done, ctx);
}

static void init_2(ust_subsystem_done_fn done, void *ctx)
{
	sub_init(2, done, ctx);
}

static void fini_2(ust_subsystem_done_fn done, void *ctx)
{
	sub_fini(2, done, ctx);
}

static void init_3(ust_subsystem_done_fn done, void *ctx)
{
	sub_init(3, done, ctx);
}

static void fini_3(ust_subsystem_done_fn done, void *ctx)
{
	sub_fini(3, done, ctx);
}

static void init_4(ust_subsystem_done_fn done, void *ctx)
{
	sub_init(4, done, ctx);
}

static void fini_4(ust_subsystem_done_fn done, void *ctx)
{
	sub_fini(4, done, ctx);
}

static void (*const g_inits[])(ust_subsystem_done_fn, void *) = {init_0, init_1, init_2, init_3,
								   init_4};
static void (*const g_finis[])(ust_subsystem_done_fn, void *) = {fini_0, fini_1, fini_2, fini_3,
								   fini_4};

static void add_sub(int i, const char *name)
{
	snprintf(g_names[i], sizeof(g_names[i]), "%s", name);
	memset(&g_subs[i], 0, sizeof(g_subs[i]));
	g_subs[i].name = g_names[i];
	g_subs[i].init = g_inits[i];
	g_subs[i].fini = g_finis[i];
	ust_subsystem_register(&g_subs[i]);
}

static void walk_done(int rc, void *ctx)
{
	g_walk_rc = rc;
	g_walk_calls++;
}

static int setup(void **state)
{
	ust_subsystem_registry_reset();
	memset(g_events, 0, sizeof(g_events));
	memset(g_init_rc, 0, sizeof(g_init_rc));
	memset(g_init_async, 0, sizeof(g_init_async));
	g_event_count = 0;
	g_last_error[0] = '\0';
	g_pending_done = NULL;
	g_walk_rc = 1;
	g_walk_calls = 0;
	ust_log_set_sink(log_sink);
	return 0;
}

static int teardown(void **state)
{
	ust_log_set_sink(NULL);
	ust_subsystem_registry_reset();
	return 0;
}

static void assert_events(const char *const *expected, int count)
{
	int i;

	assert_int_equal(g_event_count, count);
	for (i = 0; i < count; i++) {
		assert_string_equal(g_events[i], expected[i]);
	}
}

static void test_order_follows_dependencies(void **state)
{
	static const char *const inits[] = {"init:b", "init:c", "init:a", "init:d"};
	static const char *const finis[] = {"fini:d", "fini:a", "fini:c", "fini:b"};

	add_sub(0, "a");
	add_sub(1, "b");
	add_sub(2, "c");
	add_sub(3, "d");
	ust_subsystem_add_dependency("a", "c");
	ust_subsystem_add_dependency("c", "b");

	ust_subsystem_init_all(walk_done, NULL);
	assert_int_equal(g_walk_calls, 1);
	assert_int_equal(g_walk_rc, 0);
	assert_events(inits, 4);
	assert_true(g_subs[0].initialized && g_subs[1].initialized && g_subs[2].initialized &&
		    g_subs[3].initialized);
	assert_string_equal(ust_subsystem_get_nth(0)->name, "b");
	assert_null(ust_subsystem_get_nth(4));

	g_event_count = 0;
	ust_subsystem_fini_all(walk_done, NULL);
	assert_int_equal(g_walk_calls, 2);
	assert_int_equal(g_walk_rc, 0);
	assert_events(finis, 4);
	assert_false(g_subs[0].initialized);
}

static void test_missing_dependency(void **state)
{
	add_sub(0, "a");
	add_sub(1, "b");
	ust_subsystem_add_dependency("b", "nope");

	assert_int_equal(ust_subsystem_sort(), -ENOENT);
	assert_non_null(strstr(g_last_error, "'b' depends on 'nope'"));

	ust_subsystem_init_all(walk_done, NULL);
	assert_int_equal(g_walk_rc, -ENOENT);
	assert_int_equal(g_event_count, 0);
	assert_false(g_subs[0].initialized);
}

static void test_dependency_of_unknown_subsystem(void **state)
{
	add_sub(0, "a");
	ust_subsystem_add_dependency("ghost", "a");

	assert_int_equal(ust_subsystem_sort(), -ENOENT);
	assert_non_null(strstr(g_last_error, "'ghost'"));
}

static void test_cycle_is_reported(void **state)
{
	add_sub(0, "a");
	add_sub(1, "b");
	add_sub(2, "c");
	add_sub(3, "d");
	ust_subsystem_add_dependency("a", "b");
	ust_subsystem_add_dependency("b", "c");
	ust_subsystem_add_dependency("c", "a");

	ust_subsystem_init_all(walk_done, NULL);
	assert_int_equal(g_walk_rc, -ELOOP);
	assert_int_equal(g_event_count, 0);
	assert_non_null(strstr(g_last_error, "a -> b -> c -> a"));
}

static void test_self_dependency_is_a_cycle(void **state)
{
	add_sub(0, "a");
	ust_subsystem_add_dependency("a", "a");
	assert_int_equal(ust_subsystem_sort(), -ELOOP);
	assert_non_null(strstr(g_last_error, "a -> a"));
}

static void test_duplicate_name(void **state)
{
	static struct ust_subsystem dup = {.name = "a"};

	add_sub(0, "a");
	ust_subsystem_register(&dup);
	assert_int_equal(ust_subsystem_sort(), -EEXIST);
}

static void test_init_failure_stops_and_fini_only_initialised(void **state)
{
	static const char *const inits[] = {"init:a", "init:b"};
	static const char *const finis[] = {"fini:a"};

	add_sub(0, "a");
	add_sub(1, "b");
	add_sub(2, "c");
	g_init_rc[1] = -EIO;

	ust_subsystem_init_all(walk_done, NULL);
	assert_int_equal(g_walk_rc, -EIO);
	assert_events(inits, 2);
	assert_non_null(strstr(g_last_error, "'b' failed to initialise"));
	assert_true(g_subs[0].initialized);
	assert_false(g_subs[1].initialized);
	assert_false(g_subs[2].initialized);

	g_event_count = 0;
	ust_subsystem_fini_all(walk_done, NULL);
	assert_int_equal(g_walk_rc, 0);
	assert_events(finis, 1);
}

static void test_async_init_waits(void **state)
{
	static const char *const before[] = {"init:a"};
	static const char *const after[] = {"init:a", "init:b"};

	add_sub(0, "a");
	add_sub(1, "b");
	ust_subsystem_add_dependency("b", "a");
	g_init_async[0] = true;

	ust_subsystem_init_all(walk_done, NULL);
	assert_int_equal(g_walk_calls, 0);
	assert_events(before, 1);
	assert_non_null(g_pending_done);

	/* A second walk while one is in flight is refused. */
	ust_subsystem_init_all(walk_done, NULL);
	assert_int_equal(g_walk_calls, 1);
	assert_int_equal(g_walk_rc, -EBUSY);

	g_pending_done(0, NULL);
	assert_int_equal(g_walk_calls, 2);
	assert_int_equal(g_walk_rc, 0);
	assert_events(after, 2);
}

static void test_config_json_in_init_order(void **state)
{
	json_t *config, *list, *entry;

	add_sub(0, "bdev");
	add_sub(1, "accel");
	g_subs[0].write_config_json = sub_write_config;
	ust_subsystem_add_dependency("bdev", "accel");
	assert_int_equal(ust_subsystem_sort(), 0);

	config = ust_app_config_json();
	assert_non_null(config);
	list = json_object_get(config, "subsystems");
	assert_true(json_is_array(list));
	assert_int_equal(json_array_size(list), 2);

	entry = json_array_get(list, 0);
	assert_string_equal(json_string_value(json_object_get(entry, "subsystem")), "accel");
	assert_true(json_is_array(json_object_get(entry, "config")));
	assert_int_equal(json_array_size(json_object_get(entry, "config")), 0);

	entry = json_array_get(list, 1);
	assert_string_equal(json_string_value(json_object_get(entry, "subsystem")), "bdev");
	assert_int_equal(json_array_size(json_object_get(entry, "config")), 1);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(entry, "config"), 0), "method")),
			    "test_method");
	json_decref(config);

	assert_null(ust_subsystem_config_json("nope"));
	list = ust_subsystem_config_json("bdev");
	assert_int_equal(json_array_size(list), 1);
	json_decref(list);
}

static void test_list_json_names_dependencies(void **state)
{
	json_t *list, *deps;

	add_sub(0, "bdev");
	add_sub(1, "accel");
	add_sub(2, "vmd");
	ust_subsystem_add_dependency("bdev", "accel");
	ust_subsystem_add_dependency("bdev", "vmd");

	list = ust_subsystem_list_json();
	assert_int_equal(json_array_size(list), 3);
	/* accel, vmd, bdev: bdev after both of its dependencies. */
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 2), "subsystem")),
			    "bdev");
	deps = json_object_get(json_array_get(list, 2), "depends_on");
	assert_int_equal(json_array_size(deps), 2);
	assert_string_equal(json_string_value(json_array_get(deps, 0)), "accel");
	assert_string_equal(json_string_value(json_array_get(deps, 1)), "vmd");
	assert_int_equal(json_array_size(json_object_get(json_array_get(list, 0), "depends_on")),
			 0);
	json_decref(list);
}

static void test_empty_registry(void **state)
{
	json_t *config;

	ust_subsystem_init_all(walk_done, NULL);
	assert_int_equal(g_walk_rc, 0);
	config = ust_app_config_json();
	assert_int_equal(json_array_size(json_object_get(config, "subsystems")), 0);
	json_decref(config);
	ust_subsystem_fini_all(walk_done, NULL);
	assert_int_equal(g_walk_calls, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_order_follows_dependencies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_dependency, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dependency_of_unknown_subsystem, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cycle_is_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_self_dependency_is_a_cycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_failure_stops_and_fini_only_initialised,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_init_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_json_in_init_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_json_names_dependencies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_registry, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
