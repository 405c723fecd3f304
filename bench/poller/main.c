/*
 * poller: cost of the poll loop itself. A ust_thread alone on a reactor
 * runs N empty active pollers (N = 1, then 8); the first poller counts the
 * loop iterations. Prints iterations per second and ns per iteration (and
 * per poller call), measured with the tick clock. Defaults: -m 0x3
 * --no-huge --poll-mode always, 1 s per case; the measured thread goes on
 * the last core of the mask, away from the app thread.
 * A benchmark, not a test: it always exits 0 once it has printed results.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "../bench_util.h"
#include "ustor/app.h"
#include "ustor/cpuset.h"
#include "ustor/env.h"
#include "ustor/thread.h"

#define MAX_POLLERS 8
/* Read the clock only every this many iterations, to keep it out of the cost. */
#define CLOCK_EVERY 4096

static const int g_cases[] = {1, 8};
#define CASE_COUNT (sizeof(g_cases) / sizeof(g_cases[0]))

struct bench {
	double seconds;
	uint32_t core;
	struct ust_thread *app;
	struct ust_thread *thread;
	size_t case_idx;
	int npollers;
	struct ust_poller *pollers[MAX_POLLERS];
	uint64_t iterations;
	uint64_t start_tsc;
	uint64_t end_tsc;
};

static struct bench g_bench = {.seconds = 1.0};

static void case_start(void *ctx);

static int empty_poll(void *ctx)
{
	return UST_POLLER_IDLE;
}

static void case_report(void *ctx)
{
	struct bench *b = ctx;
	uint64_t elapsed = ust_get_ticks() - b->start_tsc;
	double ns = (double)elapsed * 1e9 / (double)ust_get_ticks_hz();
	double per_iter = ns / (double)b->iterations;

	printf("%d empty poller%s: %12.0f iterations/s  %7.2f ns/iteration  %7.2f ns/poller "
	       "call\n",
	       b->npollers, b->npollers == 1 ? " " : "s", (double)b->iterations * 1e9 / ns,
	       per_iter, per_iter / b->npollers);
	b->case_idx++;
	if (b->case_idx < CASE_COUNT) {
		ust_thread_send_msg(b->thread, case_start, b);
	} else {
		ust_app_stop(0);
	}
}

static int counting_poll(void *ctx)
{
	struct bench *b = ctx;
	int i;

	b->iterations++;
	if (b->iterations % CLOCK_EVERY != 0 || ust_get_ticks() < b->end_tsc) {
		return UST_POLLER_IDLE;
	}
	for (i = b->npollers - 1; i >= 0; i--) {
		ust_poller_unregister(&b->pollers[i]);
	}
	ust_thread_send_msg(b->app, case_report, b);
	return UST_POLLER_IDLE;
}

static void case_start(void *ctx)
{
	struct bench *b = ctx;
	int i;

	b->npollers = g_cases[b->case_idx];
	b->iterations = 0;
	b->start_tsc = ust_get_ticks();
	b->end_tsc = b->start_tsc + (uint64_t)(b->seconds * (double)ust_get_ticks_hz());
	b->pollers[0] = ust_poller_register(counting_poll, b, 0, "count");
	for (i = 1; i < b->npollers; i++) {
		b->pollers[i] = ust_poller_register(empty_poll, b, 0, "empty");
	}
	for (i = 0; i < b->npollers; i++) {
		if (b->pollers[i] == NULL) {
			fprintf(stderr, "poller: cannot register %d pollers\n", b->npollers);
			ust_app_stop(1);
			return;
		}
	}
}

static void bench_start(void *ctx)
{
	struct bench *b = ctx;
	struct ust_cpuset mask;
	uint32_t core, last = ust_env_get_first_core();

	for (core = last; core != UINT32_MAX; core = ust_env_get_next_core(core)) {
		last = core;
	}
	b->core = last;
	b->app = ust_get_thread();
	ust_cpuset_zero(&mask);
	ust_cpuset_set(&mask, b->core, true);
	b->thread = ust_thread_create("poller_bench", &mask);
	if (b->thread == NULL) {
		fprintf(stderr, "poller: cannot create the thread\n");
		ust_app_stop(1);
		return;
	}
	printf("poller: thread on core %u%s, %.1f s per case, tick rate %llu Hz\n", b->core,
	       b->core == ust_env_get_main_core() ? " (shared with the app thread)" : "",
	       b->seconds, (unsigned long long)ust_get_ticks_hz());
	ust_thread_send_msg(b->thread, case_start, b);
}

static const struct option g_long[] = {
	{"time", required_argument, NULL, 't'},
	{NULL, 0, NULL, 0},
};

static int parse_opt(int ch, char *arg, void *ctx)
{
	struct bench *b = ctx;
	char *end;

	if (ch != 't') {
		return -EINVAL;
	}
	b->seconds = strtod(arg, &end);
	if (*end != '\0' || b->seconds <= 0 || b->seconds > 3600) {
		fprintf(stderr, "invalid -t '%s' (seconds, > 0)\n", arg);
		return -EINVAL;
	}
	return 0;
}

static void usage(void)
{
	printf("Usage: poller [-t SECONDS] [OPTION]...\n"
	       "Iterations per second of a thread with 1 and 8 empty active pollers.\n"
	       " -t, --time SECONDS      duration of each case (default 1)\n\n");
}

int main(int argc, char **argv)
{
	struct ust_app_opts opts;
	int rc;

	bench_app_opts_init(&opts, "poller", "0x3");
	rc = ust_app_parse_args(argc, argv, &opts, "t:", g_long, parse_opt, usage, &g_bench);
	if (rc != 0) {
		return rc == 1 ? 0 : 2;
	}
	rc = ust_app_start(&opts, bench_start, &g_bench);
	return rc == 0 ? 0 : 1;
}
