/*
 * Unit tests for core/poller.c with a frozen clock: active pollers, exact
 * firing counts of timed pollers as time advances, the heap ordering with
 * many timers, unregistering (self, others, from messages), pause/resume,
 * thread exit waiting for pollers and the slow-exit warning.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "env_test.h"
#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/thread.h"

#define T0 1000000000ULL /* 1 s, so "due at 0" can never look right by accident */
#define MS 1000000ULL    /* ticks per millisecond with the test env's 1 GHz clock */

static struct ust_thread *g_thread;

static int setup(void **state)
{
	if (ust_get_ticks_hz() != 1000000000ULL)
		return -1;
	ust_env_test_set_ticks(T0);
	if (ust_thread_lib_init(NULL) != 0)
		return -1;
	g_thread = ust_thread_create("poller_ut", NULL);
	ust_set_thread(g_thread);
	return g_thread ? 0 : -1;
}

static int teardown(void **state)
{
	int i;

	ust_set_thread(g_thread);
	if (ust_thread_exit(g_thread) != 0)
		return -1;
	for (i = 0; i < 10 && !ust_thread_is_exited(g_thread); i++)
		ust_thread_poll(g_thread, 0, 0);
	if (!ust_thread_is_exited(g_thread))
		return -1;
	ust_thread_destroy(g_thread);
	ust_set_thread(NULL);
	ust_thread_lib_fini();
	ust_env_test_unfreeze_ticks();
	return 0;
}

struct counter {
	int calls;
	int rc;
	int unregister_at; /* unregister self on this call (0: never) */
	int pause_at;      /* pause self on this call (0: never) */
	struct ust_poller *self;
	struct ust_poller **victim; /* unregistered on the first call */
};

static int counting_poller(void *arg)
{
	struct counter *c = arg;

	c->calls++;
	if (c->victim != NULL && *c->victim != NULL)
		ust_poller_unregister(c->victim);
	if (c->unregister_at == c->calls)
		ust_poller_unregister(&c->self);
	if (c->pause_at == c->calls)
		ust_poller_pause(c->self);
	return c->rc;
}

static void poll_once(void)
{
	ust_thread_poll(g_thread, 0, 0);
}

static void test_active_poller(void **state)
{
	struct counter idle = {0}, busy = {.rc = UST_POLLER_BUSY};
	struct ust_poller *pi, *pb;

	assert_false(ust_thread_has_pollers(g_thread));
	pi = ust_poller_register(counting_poller, &idle, 0, "idle");
	assert_non_null(pi);
	assert_true(ust_thread_has_pollers(g_thread));
	assert_true(ust_thread_has_active_pollers(g_thread));
	assert_false(ust_thread_is_idle(g_thread));
	assert_int_equal(ust_thread_poll(g_thread, 0, 0), 0);
	assert_int_equal(ust_thread_poll(g_thread, 0, 0), 0);
	assert_int_equal(idle.calls, 2);

	pb = ust_poller_register(counting_poller, &busy, 0, "busy");
	assert_int_equal(ust_thread_poll(g_thread, 0, 0), 1);
	assert_int_equal(idle.calls, 3);
	assert_int_equal(busy.calls, 1);
	/* Active pollers have no expiration. */
	assert_int_equal(ust_thread_next_poller_expiration(g_thread), 0);

	ust_poller_unregister(&pi);
	ust_poller_unregister(&pb);
	assert_null(pi);
	assert_null(pb);
	assert_false(ust_thread_has_pollers(g_thread));
	assert_false(ust_thread_has_active_pollers(g_thread));
	poll_once();
	assert_int_equal(idle.calls, 3);
	assert_int_equal(busy.calls, 1);
	/* Unregistering NULL is a no-op. */
	ust_poller_unregister(&pi);
	ust_poller_unregister(NULL);
}

static void test_timed_poller_exact_counts(void **state)
{
	struct counter c = {.rc = UST_POLLER_BUSY};
	struct ust_poller *p;

	p = ust_poller_register(counting_poller, &c, 1000, "1ms");
	assert_non_null(p);
	assert_true(ust_thread_has_pollers(g_thread));
	assert_false(ust_thread_has_active_pollers(g_thread));
	assert_int_equal(ust_thread_next_poller_expiration(g_thread), T0 + MS);

	assert_int_equal(ust_thread_poll(g_thread, 0, 0), 0);
	ust_env_test_advance_ticks(MS - 1);
	assert_int_equal(ust_thread_poll(g_thread, 0, 0), 0);
	assert_int_equal(c.calls, 0);
	ust_env_test_advance_ticks(1);
	assert_int_equal(ust_thread_poll(g_thread, 0, 0), 1);
	assert_int_equal(c.calls, 1);
	assert_int_equal(ust_thread_next_poller_expiration(g_thread), T0 + 2 * MS);
	/* Same instant: not again. */
	assert_int_equal(ust_thread_poll(g_thread, 0, 0), 0);
	assert_int_equal(c.calls, 1);

	/* A late iteration runs it once, then re-arms a full period from now. */
	ust_env_test_advance_ticks(3 * MS + MS / 2);
	poll_once();
	assert_int_equal(c.calls, 2);
	assert_int_equal(ust_thread_next_poller_expiration(g_thread), T0 + 5 * MS + MS / 2);
	poll_once();
	assert_int_equal(c.calls, 2);

	/* A caller-supplied now is honoured. */
	ust_thread_poll(g_thread, 0, T0 + 5 * MS + MS / 2);
	assert_int_equal(c.calls, 3);
	ust_poller_unregister(&p);
	assert_int_equal(ust_thread_next_poller_expiration(g_thread), 0);
}

static void test_two_periods(void **state)
{
	struct counter fast = {0}, slow = {0};
	struct ust_poller *pf, *ps;
	int step;

	pf = ust_poller_register(counting_poller, &fast, 1000, "fast");
	ps = ust_poller_register(counting_poller, &slow, 3000, "slow");
	for (step = 0; step < 9; step++) {
		ust_env_test_advance_ticks(MS);
		poll_once();
	}
	assert_int_equal(fast.calls, 9);
	assert_int_equal(slow.calls, 3);
	ust_poller_unregister(&pf);
	ust_poller_unregister(&ps);
}

#define MANY 500

static void test_many_timed_pollers(void **state)
{
	static struct counter c[MANY];
	static struct ust_poller *p[MANY];
	int i, step;

	memset(c, 0, sizeof(c));
	for (i = 0; i < MANY; i++) {
		/* Periods of 1..37 ms in a scrambled order exercise the heap. */
		p[i] = ust_poller_register(counting_poller, &c[i], (uint64_t)((i * 7) % 37 + 1) * 1000,
					   "many");
		assert_non_null(p[i]);
	}
	for (step = 0; step < 200; step++) {
		ust_env_test_advance_ticks(MS);
		poll_once();
		/* Unregister a few in the middle to exercise removal from the heap. */
		if (step == 50) {
			for (i = 0; i < MANY; i += 10)
				ust_poller_unregister(&p[i]);
		}
	}
	for (i = 0; i < MANY; i++) {
		int period = (i * 7) % 37 + 1;
		int expect = i % 10 == 0 ? 51 / period : 200 / period;

		if (c[i].calls != expect)
			fail_msg("poller %d (period %d ms) ran %d times, expected %d", i, period,
				 c[i].calls, expect);
	}
	for (i = 0; i < MANY; i++)
		ust_poller_unregister(&p[i]);
	assert_false(ust_thread_has_pollers(g_thread));
}

static void test_unregister_self(void **state)
{
	struct counter a = {.unregister_at = 2}, t = {.unregister_at = 1};

	a.self = ust_poller_register(counting_poller, &a, 0, "active-self");
	t.self = ust_poller_register(counting_poller, &t, 1000, "timed-self");
	poll_once();
	assert_int_equal(a.calls, 1);
	assert_non_null(a.self);
	ust_env_test_advance_ticks(MS);
	poll_once();
	assert_int_equal(a.calls, 2);
	assert_int_equal(t.calls, 1);
	assert_null(a.self);
	assert_null(t.self);
	assert_false(ust_thread_has_pollers(g_thread));
	ust_env_test_advance_ticks(10 * MS);
	poll_once();
	poll_once();
	assert_int_equal(a.calls, 2);
	assert_int_equal(t.calls, 1);
}

static void test_unregister_others(void **state)
{
	struct counter killer = {0}, next_active = {0}, timed = {0};
	struct counter timed_killer = {0}, active_victim = {0};
	struct ust_poller *pk, *pn, *pt, *ptk, *pav;

	/* An active poller unregisters the one after it and a timed one. */
	pk = ust_poller_register(counting_poller, &killer, 0, "killer");
	pn = ust_poller_register(counting_poller, &next_active, 0, "next");
	pt = ust_poller_register(counting_poller, &timed, 1000, "timed");
	killer.victim = &pn;
	poll_once();
	assert_null(pn);
	assert_int_equal(next_active.calls, 0);
	killer.victim = &pt;
	ust_env_test_advance_ticks(MS);
	poll_once();
	assert_null(pt);
	assert_int_equal(timed.calls, 0);

	/* A timed poller unregisters an active one that already ran this iteration. */
	pav = ust_poller_register(counting_poller, &active_victim, 0, "victim");
	ptk = ust_poller_register(counting_poller, &timed_killer, 1000, "timed-killer");
	timed_killer.victim = &pav;
	ust_env_test_advance_ticks(MS);
	poll_once();
	assert_null(pav);
	assert_int_equal(active_victim.calls, 1);
	assert_int_equal(timed_killer.calls, 1);
	poll_once();
	assert_int_equal(active_victim.calls, 1);

	ust_poller_unregister(&pk);
	ust_poller_unregister(&ptk);
	assert_false(ust_thread_has_pollers(g_thread));
	poll_once();
}

static struct ust_poller *g_msg_victim;

static void unregister_msg(void *arg)
{
	ust_poller_unregister(&g_msg_victim);
}

static void test_unregister_from_message(void **state)
{
	struct counter c = {0};

	g_msg_victim = ust_poller_register(counting_poller, &c, 0, "msg-victim");
	assert_int_equal(ust_thread_send_msg(g_thread, unregister_msg, NULL), 0);
	poll_once();
	/* Messages run before pollers in an iteration. */
	assert_int_equal(c.calls, 0);
	assert_null(g_msg_victim);
	assert_false(ust_thread_has_pollers(g_thread));
}

/* Interrupt fds: who must be polled, and what a sleeping scheduler waits on. */
static void test_interrupt_fd(void **state)
{
	struct counter a = {0}, b = {0}, t = {0};
	struct ust_poller *pa, *pb, *pt;
	int fds[4];

	pa = ust_poller_register(counting_poller, &a, 0, "a");
	pb = ust_poller_register(counting_poller, &b, 0, "b");
	pt = ust_poller_register(counting_poller, &t, 1000, "t");
	assert_true(ust_thread_must_poll(g_thread));
	assert_int_equal(ust_thread_get_interrupt_fds(g_thread, fds, 4), 0);

	assert_int_equal(ust_poller_set_interrupt_fd(pt, 7), -EINVAL);
	assert_int_equal(ust_poller_set_interrupt_fd(pa, 7), 0);
	assert_true(ust_thread_must_poll(g_thread)); /* b still has no fd */
	assert_int_equal(ust_poller_set_interrupt_fd(pb, 9), 0);
	assert_false(ust_thread_must_poll(g_thread));
	assert_true(ust_thread_has_active_pollers(g_thread));
	assert_int_equal(ust_thread_get_interrupt_fds(g_thread, fds, 4), 2);
	assert_int_equal(fds[0], 7);
	assert_int_equal(fds[1], 9);
	/* More fds than room: the count says so, only max are written. */
	fds[1] = -1;
	assert_int_equal(ust_thread_get_interrupt_fds(g_thread, fds, 1), 2);
	assert_int_equal(fds[1], -1);

	/* A paused poller's fd is not waited on; resuming brings it back. */
	ust_poller_pause(pa);
	assert_int_equal(ust_thread_get_interrupt_fds(g_thread, fds, 4), 1);
	assert_int_equal(fds[0], 9);
	assert_int_equal(ust_poller_set_interrupt_fd(pa, -1), 0);
	ust_poller_resume(pa);
	assert_true(ust_thread_must_poll(g_thread));
	assert_int_equal(ust_poller_set_interrupt_fd(pa, 7), 0);
	assert_false(ust_thread_must_poll(g_thread));

	/* Pollers with fds still run every iteration. */
	poll_once();
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);

	ust_poller_unregister(&pb);
	assert_int_equal(ust_thread_get_interrupt_fds(g_thread, fds, 4), 1);
	ust_poller_unregister(&pa);
	ust_poller_unregister(&pt);
	poll_once();
	assert_false(ust_thread_must_poll(g_thread));
	assert_int_equal(ust_thread_get_interrupt_fds(g_thread, fds, 4), 0);
}

static void test_pause_resume(void **state)
{
	struct counter a = {0}, t = {0};
	struct ust_poller *pa, *pt;

	pa = ust_poller_register(counting_poller, &a, 0, "a");
	pt = ust_poller_register(counting_poller, &t, 1000, "t");
	ust_poller_pause(pa);
	ust_poller_pause(pt);
	ust_poller_pause(pt); /* twice is harmless */
	assert_false(ust_thread_has_active_pollers(g_thread));
	assert_true(ust_thread_has_pollers(g_thread));
	assert_int_equal(ust_thread_next_poller_expiration(g_thread), 0);
	ust_env_test_advance_ticks(5 * MS);
	poll_once();
	assert_int_equal(a.calls, 0);
	assert_int_equal(t.calls, 0);

	ust_poller_resume(pa);
	ust_poller_resume(pt);
	ust_poller_resume(pt);
	assert_true(ust_thread_has_active_pollers(g_thread));
	/* A resumed timer counts its period from the resume. */
	assert_int_equal(ust_thread_next_poller_expiration(g_thread), T0 + 6 * MS);
	poll_once();
	assert_int_equal(a.calls, 1);
	assert_int_equal(t.calls, 0);
	ust_env_test_advance_ticks(MS);
	poll_once();
	assert_int_equal(t.calls, 1);

	/* Pausing itself from inside: a timed poller is parked after it returns. */
	t.self = pt;
	t.pause_at = 2;
	ust_env_test_advance_ticks(MS);
	poll_once();
	assert_int_equal(t.calls, 2);
	ust_env_test_advance_ticks(5 * MS);
	poll_once();
	assert_int_equal(t.calls, 2);
	ust_poller_resume(pt);
	ust_env_test_advance_ticks(MS);
	poll_once();
	assert_int_equal(t.calls, 3);

	/* A paused poller can be unregistered. */
	ust_poller_pause(pt);
	ust_poller_pause(pa);
	ust_poller_unregister(&pt);
	ust_poller_unregister(&pa);
	assert_false(ust_thread_has_pollers(g_thread));
	poll_once();
}

static void test_register_errors(void **state)
{
	struct counter c = {0};
	struct ust_thread *other;
	struct ust_poller *p;

	ust_set_thread(NULL);
	assert_null(ust_poller_register(counting_poller, &c, 0, "none"));
	ust_set_thread(g_thread);
	assert_null(ust_poller_register(NULL, &c, 0, "nofn"));

	/* A poller is unregistered only on its own thread. */
	p = ust_poller_register(counting_poller, &c, 0, "mine");
	other = ust_thread_create("other", NULL);
	ust_set_thread(other);
	ust_poller_unregister(&p);
	assert_non_null(p);
	ust_poller_pause(p);
	ust_set_thread(g_thread);
	poll_once();
	assert_int_equal(c.calls, 1);
	ust_poller_unregister(&p);
	assert_null(p);

	/* An exited thread takes no pollers. */
	ust_set_thread(other);
	assert_int_equal(ust_thread_exit(other), 0);
	ust_thread_poll(other, 0, 0);
	assert_true(ust_thread_is_exited(other));
	assert_null(ust_poller_register(counting_poller, &c, 0, "late"));
	ust_thread_destroy(other);
	ust_set_thread(g_thread);
}

static char g_warning[512];

static void capture_log(enum ust_log_level level, const char *msg)
{
	if (level == UST_LOG_WARN)
		snprintf(g_warning, sizeof(g_warning), "%s", msg);
}

static void test_exit_waits_for_pollers(void **state)
{
	struct counter a = {0}, t = {0};
	struct ust_thread *th;
	struct ust_poller *pa, *pt;
	int i;

	th = ust_thread_create("exiting", NULL);
	ust_set_thread(th);
	pa = ust_poller_register(counting_poller, &a, 0, "still-active");
	pt = ust_poller_register(counting_poller, &t, 1000, "still-timed");
	assert_int_equal(ust_thread_exit(th), 0);
	for (i = 0; i < 10; i++)
		ust_thread_poll(th, 0, 0);
	assert_false(ust_thread_is_exited(th));
	/* Pollers keep running while the thread waits to exit. */
	assert_int_equal(a.calls, 10);

	/* After a few seconds it names what is left, and keeps waiting. */
	g_warning[0] = '\0';
	ust_log_set_sink(capture_log);
	ust_env_test_advance_ticks(6ULL * 1000 * MS);
	ust_thread_poll(th, 0, 0);
	ust_log_set_sink(NULL);
	assert_non_null(strstr(g_warning, "exiting"));
	assert_non_null(strstr(g_warning, "still-active"));
	assert_non_null(strstr(g_warning, "still-timed"));
	assert_false(ust_thread_is_exited(th));

	ust_poller_unregister(&pa);
	ust_thread_poll(th, 0, 0);
	assert_false(ust_thread_is_exited(th));
	ust_poller_unregister(&pt);
	ust_thread_poll(th, 0, 0);
	assert_true(ust_thread_is_exited(th));
	ust_thread_destroy(th);
	ust_set_thread(g_thread);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_active_poller, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timed_poller_exact_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_periods, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_timed_pollers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unregister_self, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unregister_others, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unregister_from_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupt_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_waits_for_pollers, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
