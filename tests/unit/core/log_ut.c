/*
 * Unit tests for core/log.c: the line format, print level filtering, level
 * names, debug flags (registration order, "all", unknown names), long
 * messages not being truncated, and whole lines from concurrent threads.
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
#include <regex.h>

#include <cmocka.h>

#include "ustor/log.h"

UST_LOG_REGISTER_COMPONENT(ut_zeta)
UST_LOG_REGISTER_COMPONENT(ut_alpha)

#define MAX_LINES 4096

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static char *g_lines[MAX_LINES];
static enum ust_log_level g_levels[MAX_LINES];
static int g_nlines;

static void capture(enum ust_log_level level, const char *msg)
{
	pthread_mutex_lock(&g_lock);
	if (g_nlines < MAX_LINES) {
		g_levels[g_nlines] = level;
		g_lines[g_nlines++] = strdup(msg);
	}
	pthread_mutex_unlock(&g_lock);
}

static int setup(void **state)
{
	ust_log_set_sink(capture);
	ust_log_set_print_level(UST_LOG_NOTICE);
	return 0;
}

static int teardown(void **state)
{
	for (int i = 0; i < g_nlines; i++) {
		free(g_lines[i]);
	}
	g_nlines = 0;
	ust_log_clear_flag("all");
	ust_log_set_sink(NULL);
	return 0;
}

static void test_format(void **state)
{
	regex_t re;
	int line;

	line = __LINE__ + 1;
	UST_ERRLOG("disk %d failed\n", 3);
	assert_int_equal(g_nlines, 1);
	assert_int_equal(g_levels[0], UST_LOG_ERROR);
	assert_int_equal(regcomp(&re,
				 "^\\[[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}\\] "
				 ".*log_ut\\.c:[0-9]+ test_format: \\*ERROR\\*: disk 3 failed\n$",
				 REG_EXTENDED),
			 0);
	assert_int_equal(regexec(&re, g_lines[0], 0, NULL, 0), 0);
	regfree(&re);
	{
		char expect[32];

		snprintf(expect, sizeof(expect), "log_ut.c:%d ", line);
		assert_non_null(strstr(g_lines[0], expect));
	}
	/* A message without a newline still ends the line. */
	UST_WARNLOG("no newline");
	assert_int_equal(g_nlines, 2);
	assert_non_null(strstr(g_lines[1], "*WARNING*: no newline\n"));
}

static void test_print_level(void **state)
{
	UST_INFOLOG("hidden\n");
	UST_NOTICELOG("shown\n");
	assert_int_equal(g_nlines, 1);
	assert_non_null(strstr(g_lines[0], "*NOTICE*: shown"));

	ust_log_set_print_level(UST_LOG_INFO);
	assert_int_equal(ust_log_get_print_level(), UST_LOG_INFO);
	UST_INFOLOG("now shown\n");
	assert_int_equal(g_nlines, 2);

	ust_log_set_print_level(UST_LOG_DISABLED);
	UST_ERRLOG("even errors hidden\n");
	assert_int_equal(g_nlines, 2);

	/* Out-of-range levels are ignored, not stored. */
	ust_log_set_print_level((enum ust_log_level)42);
	assert_int_equal(ust_log_get_print_level(), UST_LOG_DISABLED);
	ust_log_set_print_level(UST_LOG_NOTICE);
}

static void test_level_names(void **state)
{
	enum ust_log_level l;

	assert_int_equal(ust_log_level_from_str("DEBUG", &l), 0);
	assert_int_equal(l, UST_LOG_DEBUG);
	assert_int_equal(ust_log_level_from_str("warning", &l), 0);
	assert_int_equal(l, UST_LOG_WARN);
	assert_int_equal(ust_log_level_from_str("Error", &l), 0);
	assert_int_equal(l, UST_LOG_ERROR);
	assert_int_equal(ust_log_level_from_str("disabled", &l), 0);
	assert_int_equal(l, UST_LOG_DISABLED);
	assert_int_equal(ust_log_level_from_str("verbose", &l), -EINVAL);
	assert_int_equal(ust_log_level_from_str(NULL, &l), -EINVAL);
	assert_string_equal(ust_log_level_to_str(UST_LOG_NOTICE), "NOTICE");
	assert_string_equal(ust_log_level_to_str(UST_LOG_WARN), "WARNING");
	assert_string_equal(ust_log_level_to_str(UST_LOG_DISABLED), "DISABLED");
	assert_null(ust_log_level_to_str((enum ust_log_level)9));

	ust_log_set_level(UST_LOG_ERROR);
	assert_int_equal(ust_log_get_level(), UST_LOG_ERROR);
	ust_log_set_level(UST_LOG_NOTICE);
}

static void test_flags(void **state)
{
	struct ust_log_flag *f;
	const char *prev = "";
	int seen = 0;

	/* Sorted by name regardless of registration order. */
	for (f = ust_log_get_next_flag(NULL); f != NULL; f = ust_log_get_next_flag(f)) {
		assert_true(strcmp(prev, f->name) < 0);
		prev = f->name;
		seen += strcmp(f->name, "ut_alpha") == 0 || strcmp(f->name, "ut_zeta") == 0;
	}
	assert_int_equal(seen, 2);

	UST_DEBUGLOG(ut_alpha, "flag off\n");
	assert_int_equal(g_nlines, 0);
	assert_int_equal(ust_log_set_flag("ut_alpha"), 0);
	assert_true(ust_log_get_flag("ut_alpha"));
	assert_false(ust_log_get_flag("ut_zeta"));
	UST_DEBUGLOG(ut_alpha, "flag on but print level notice\n");
	assert_int_equal(g_nlines, 0);
	ust_log_set_print_level(UST_LOG_DEBUG);
	UST_DEBUGLOG(ut_alpha, "visible %s\n", "now");
	UST_DEBUGLOG(ut_zeta, "zeta still off\n");
	assert_int_equal(g_nlines, 1);
	assert_non_null(strstr(g_lines[0], "*DEBUG*: visible now"));

	assert_int_equal(ust_log_set_flag("all"), 0);
	assert_true(ust_log_get_flag("ut_zeta"));
	assert_int_equal(ust_log_clear_flag("all"), 0);
	assert_false(ust_log_get_flag("ut_alpha"));
	assert_int_equal(ust_log_set_flag("nonexistent"), -EINVAL);
	assert_int_equal(ust_log_clear_flag("nonexistent"), -EINVAL);
	assert_int_equal(ust_log_set_flag(NULL), -EINVAL);
	assert_false(ust_log_get_flag("nonexistent"));

	/* Registering the same flag again does not duplicate it. */
	ust_log_register_flag(&ust_log_flag_ut_alpha);
	seen = 0;
	for (f = ust_log_get_next_flag(NULL); f != NULL; f = ust_log_get_next_flag(f)) {
		seen += strcmp(f->name, "ut_alpha") == 0;
	}
	assert_int_equal(seen, 1);
	ust_log_set_print_level(UST_LOG_NOTICE);
}

static void test_long_message_not_truncated(void **state)
{
	size_t n = 100000;
	char *big = malloc(n + 1);

	memset(big, 'x', n);
	big[n] = '\0';
	UST_ERRLOG("%s|end\n", big);
	assert_int_equal(g_nlines, 1);
	assert_non_null(strstr(g_lines[0], "|end\n"));
	assert_true(strlen(g_lines[0]) > n);
	free(big);
}

static void *log_worker(void *arg)
{
	for (int i = 0; i < 200; i++) {
		UST_ERRLOG("worker %ld line %d %s\n", (long)(intptr_t)arg, i,
			   "padding-padding-padding-padding-padding-padding");
	}
	return NULL;
}

static void test_threads_whole_lines(void **state)
{
	pthread_t t[4];

	for (long i = 0; i < 4; i++) {
		pthread_create(&t[i], NULL, log_worker, (void *)(intptr_t)i);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
	}
	assert_int_equal(g_nlines, 800);
	for (int i = 0; i < g_nlines; i++) {
		/* Each capture is exactly one whole line. */
		assert_non_null(strstr(g_lines[i], "padding\n"));
		assert_ptr_equal(strchr(g_lines[i], '\n'), g_lines[i] + strlen(g_lines[i]) - 1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_print_level, setup, teardown),
		cmocka_unit_test_setup_teardown(test_level_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_message_not_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads_whole_lines, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
