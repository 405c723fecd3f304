/*
 * Threads polled by hand for the unit tests of the bdev layer and of what
 * sits on it (ut_threads.h): the tests run without reactors, so one OS
 * thread owns a few ust_threads and polls them itself, and a cmocka group
 * brackets them with ut_threads_setup / ut_threads_teardown (and, usually,
 * ut_bdev_start / ut_bdev_stop).
 *
 * Guarantees: ut_threads_poll returns only when a whole round over every
 * thread was idle (or after a bound far above any test's needs, so a
 * poller that never rests cannot hang the run) and always leaves thread 0
 * current; the bdev layer is started and stopped from thread 0 and the
 * result says whether its callback ran with success; teardown exits the
 * threads in the reverse order of their creation, thread 0 last, and
 * reports a thread that would not exit instead of freeing it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "ustor/bdev.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"

#include "ut_threads.h"

/* Rounds of ut_threads_poll, and polls of a thread that is exiting. */
#define UT_POLL_ROUNDS 1000000
#define UT_EXIT_POLLS 1000

static struct ust_thread *g_ut_threads[UT_MAX_THREADS];
static unsigned g_ut_nthreads;

int ut_threads_setup(unsigned n)
{
	char name[16];

	if (n == 0 || n > UT_MAX_THREADS || g_ut_nthreads != 0 || ust_thread_lib_init(NULL) != 0) {
		return -1;
	}
	for (g_ut_nthreads = 0; g_ut_nthreads < n; g_ut_nthreads++) {
		snprintf(name, sizeof(name), "t%u", g_ut_nthreads);
		g_ut_threads[g_ut_nthreads] = ust_thread_create(name, NULL);
		if (g_ut_threads[g_ut_nthreads] == NULL) {
			return -1;
		}
	}
	ust_set_thread(g_ut_threads[0]);
	/* the tests call RPCs locally, as a client of the running daemon would */
	ust_rpc_set_state(UST_RPC_RUNTIME);
	return 0;
}

struct ust_thread *ut_thread(unsigned i)
{
	assert_true(i < g_ut_nthreads);
	return g_ut_threads[i];
}

void ut_threads_poll(void)
{
	int round, busy;
	unsigned i;

	for (round = 0; round < UT_POLL_ROUNDS; round++) {
		busy = 0;
		for (i = 0; i < g_ut_nthreads; i++) {
			busy |= ust_thread_poll(g_ut_threads[i], 0, 0) > 0;
		}
		if (!busy) {
			break;
		}
	}
	ust_set_thread(g_ut_threads[0]);
}

static void start_done(void *ctx, int rc)
{
	*(int *)ctx = rc == 0 ? 1 : rc;
}

int ut_bdev_start(void)
{
	int done = 0;

	ust_set_thread(g_ut_threads[0]);
	ust_bdev_initialize(start_done, &done);
	ut_threads_poll();
	return done == 1 ? 0 : -1;
}

static void stop_done(void *ctx)
{
	*(int *)ctx = 1;
}

int ut_bdev_stop(void)
{
	int done = 0;

	ust_set_thread(g_ut_threads[0]);
	ust_bdev_finish(stop_done, &done);
	ut_threads_poll();
	return done == 1 ? 0 : -1;
}

int ut_thread_exit(struct ust_thread *t)
{
	bool exited;
	int i;

	/* a thread may only ask itself to exit */
	ust_set_thread(t);
	ust_thread_exit(t);
	for (i = 0; i < UT_EXIT_POLLS && !ust_thread_is_exited(t); i++) {
		ust_thread_poll(t, 0, 0);
	}
	exited = ust_thread_is_exited(t);
	ust_thread_destroy(t); /* refuses (and logs) a thread that has not exited */
	ust_set_thread(NULL);
	return exited ? 0 : -1;
}

int ut_threads_teardown(void)
{
	int rc = 0;

	while (g_ut_nthreads > 0) {
		if (ut_thread_exit(g_ut_threads[--g_ut_nthreads]) != 0) {
			rc = -1;
		}
		g_ut_threads[g_ut_nthreads] = NULL;
	}
	ust_thread_lib_fini();
	return rc;
}
