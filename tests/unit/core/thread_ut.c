/*
 * Unit tests for core/thread.c: thread life cycle, messages (to self and
 * others, ordering, ring full, exited target), the scheduler hooks,
 * for_each_thread, lookup by id, stats, and a two-OS-thread message storm
 * that checks every message arrives exactly once and in per-sender order.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "env_test.h"
#include "ustor/env.h"
#include "ustor/thread.h"

#include "../../../core/thread_internal.h"

static int setup(void **state)
{
	return ust_thread_lib_init(NULL);
}

static int teardown(void **state)
{
	ust_set_thread(NULL);
	if (ust_thread_get_count() != 0)
		return -1;
	ust_thread_lib_fini();
	ust_env_test_unfreeze_ticks();
	return 0;
}

/* Polls every thread given until a full round does nothing. */
static void poll_until_idle(struct ust_thread **threads, int n)
{
	int round, i, busy;

	for (round = 0; round < 1000; round++) {
		busy = 0;
		for (i = 0; i < n; i++)
			busy |= ust_thread_poll(threads[i], 0, 0);
		if (!busy)
			return;
	}
	fail_msg("threads still busy after 1000 rounds");
}

static void exit_and_destroy(struct ust_thread *t)
{
	int i;

	ust_set_thread(t);
	assert_int_equal(ust_thread_exit(t), 0);
	for (i = 0; i < 100 && !ust_thread_is_exited(t); i++)
		ust_thread_poll(t, 0, 0);
	assert_true(ust_thread_is_exited(t));
	ust_thread_destroy(t);
	ust_set_thread(NULL);
}

/* ---- life cycle --------------------------------------------------------- */

static void test_create_destroy(void **state)
{
	struct ust_thread *a, *b;
	struct ust_cpuset mask;

	assert_null(ust_thread_get_app_thread());
	a = ust_thread_create("a", NULL);
	assert_non_null(a);
	assert_int_equal(ust_cpuset_count(ust_thread_get_cpumask(a)), UST_CPUSET_SIZE);
	assert_int_equal(ust_cpuset_parse(&mask, "0x6"), 0);
	b = ust_thread_create(NULL, &mask);
	assert_non_null(b);
	assert_true(ust_cpuset_equal(ust_thread_get_cpumask(b), &mask));

	assert_string_equal(ust_thread_get_name(a), "a");
	assert_non_null(strstr(ust_thread_get_name(b), "thread"));
	assert_int_equal(ust_thread_get_count(), 2);
	assert_ptr_equal(ust_thread_get_app_thread(), a);
	assert_true(ust_thread_is_app_thread(a));
	assert_false(ust_thread_is_app_thread(b));
	ust_set_thread(b);
	assert_ptr_equal(ust_get_thread(), b);
	assert_false(ust_thread_is_app_thread(NULL));
	ust_set_thread(NULL);

	assert_true(ust_thread_is_running(a));
	assert_false(ust_thread_is_exited(a));
	assert_true(ust_thread_is_idle(a));
	/* No context without a scheduler asking for one. */
	assert_null(ust_thread_get_ctx(a));

	/* Destroying a thread that has not exited is refused. */
	ust_thread_destroy(a);
	assert_int_equal(ust_thread_get_count(), 2);

	exit_and_destroy(a);
	assert_null(ust_thread_get_app_thread());
	exit_and_destroy(b);
	assert_int_equal(ust_thread_get_count(), 0);
}

static void test_exit_rules(void **state)
{
	struct ust_thread *a, *b;

	a = ust_thread_create("a", NULL);
	b = ust_thread_create("b", NULL);
	/* Only the thread itself may ask to exit. */
	ust_set_thread(NULL);
	assert_int_equal(ust_thread_exit(a), -EINVAL);
	assert_int_equal(ust_thread_exit(NULL), -EINVAL);
	ust_set_thread(b);
	assert_int_equal(ust_thread_exit(a), -EINVAL);
	assert_true(ust_thread_is_running(a));

	ust_set_thread(a);
	assert_int_equal(ust_thread_exit(NULL), 0);
	assert_false(ust_thread_is_running(a));
	assert_false(ust_thread_is_exited(a));
	/* Exiting twice is harmless. */
	assert_int_equal(ust_thread_exit(a), 0);
	ust_thread_poll(a, 0, 0);
	assert_true(ust_thread_is_exited(a));
	ust_thread_destroy(a);
	exit_and_destroy(b);
}

static void test_lib_init_errors(void **state)
{
	struct ust_thread_lib_ops ops = {0};

	assert_int_equal(ust_thread_lib_init(NULL), -EBUSY);
	ust_thread_lib_fini();
	assert_null(ust_thread_create("x", NULL));
	assert_int_equal(ust_thread_lib_init(&ops), -EINVAL);
	assert_int_equal(ust_thread_lib_init(NULL), 0);
}

/* ---- scheduler hooks ---------------------------------------------------- */

static struct ust_thread *g_scheduled[4];
static int g_scheduled_count;
static int g_wakeups;
static struct ust_thread *g_last_woken;
static int g_schedule_rc;

static int test_schedule(struct ust_thread *t)
{
	if (g_schedule_rc != 0)
		return g_schedule_rc;
	g_scheduled[g_scheduled_count++] = t;
	return 0;
}

static void test_wakeup(struct ust_thread *t)
{
	g_wakeups++;
	g_last_woken = t;
}

static void count_msg(void *ctx)
{
	(*(int *)ctx)++;
}

static void test_scheduler_ops(void **state)
{
	struct ust_thread_lib_ops ops = {
		.schedule = test_schedule, .wakeup = test_wakeup, .ctx_size = 40};
	struct ust_thread *a, *b;
	uint64_t *ctx;
	int ran = 0;

	ust_thread_lib_fini();
	assert_int_equal(ust_thread_lib_init(&ops), 0);
	g_scheduled_count = 0;
	g_wakeups = 0;
	g_schedule_rc = 0;

	a = ust_thread_create("a", NULL);
	assert_non_null(a);
	assert_int_equal(g_scheduled_count, 1);
	assert_ptr_equal(g_scheduled[0], a);

	ctx = ust_thread_get_ctx(a);
	assert_non_null(ctx);
	assert_int_equal((uintptr_t)ctx % 8, 0);
	memset(ctx, 0xab, 40);
	assert_ptr_equal(ust_thread_get_from_ctx(ctx), a);

	assert_int_equal(ust_thread_send_msg(a, count_msg, &ran), 0);
	assert_int_equal(g_wakeups, 1);
	assert_ptr_equal(g_last_woken, a);
	ust_thread_poll(a, 0, 0);
	assert_int_equal(ran, 1);

	/* A thread the scheduler refuses is not created. */
	g_schedule_rc = -ENOSPC;
	b = ust_thread_create("b", NULL);
	assert_null(b);
	assert_int_equal(ust_thread_get_count(), 1);
	g_schedule_rc = 0;

	exit_and_destroy(a);
	ust_thread_lib_fini();
	assert_int_equal(ust_thread_lib_init(NULL), 0);
}

/* ---- messages ----------------------------------------------------------- */

struct order_log {
	int seen[64];
	struct ust_thread *where[64];
	int n;
};

struct order_item {
	struct order_log *log;
	int value;
};

static void record_msg(void *arg)
{
	struct order_item *it = arg;

	it->log->where[it->log->n] = ust_get_thread();
	it->log->seen[it->log->n++] = it->value;
}

static void test_send_self_and_other(void **state)
{
	struct ust_thread *a, *b, *threads[2];
	struct order_log log = {0};
	struct order_item items[20];
	int i;

	a = ust_thread_create("a", NULL);
	b = ust_thread_create("b", NULL);
	threads[0] = a;
	threads[1] = b;
	for (i = 0; i < 20; i++) {
		items[i].log = &log;
		items[i].value = i;
	}

	/* To self: runs on the next poll, not inside send. */
	ust_set_thread(a);
	assert_int_equal(ust_thread_send_msg(a, record_msg, &items[0]), 0);
	assert_int_equal(log.n, 0);
	assert_false(ust_thread_is_idle(a));
	assert_int_equal(ust_thread_poll(a, 0, 0), 1);
	assert_int_equal(log.n, 1);
	assert_ptr_equal(log.where[0], a);
	/* poll restores the caller's current thread. */
	assert_ptr_equal(ust_get_thread(), a);
	assert_int_equal(ust_thread_poll(a, 0, 0), 0);

	/* To another, in send order; sends from no thread and from a both work. */
	for (i = 1; i < 20; i++) {
		ust_set_thread(i % 2 ? a : NULL);
		assert_int_equal(ust_thread_send_msg(b, record_msg, &items[i]), 0);
	}
	ust_set_thread(NULL);
	poll_until_idle(threads, 2);
	assert_int_equal(log.n, 20);
	for (i = 1; i < 20; i++) {
		assert_int_equal(log.seen[i], i);
		assert_ptr_equal(log.where[i], b);
	}

	assert_int_equal(ust_thread_send_msg(NULL, record_msg, &items[0]), -EINVAL);
	assert_int_equal(ust_thread_send_msg(a, NULL, NULL), -EINVAL);
	exit_and_destroy(a);
	exit_and_destroy(b);
}

static void test_max_msgs_batch(void **state)
{
	struct ust_thread *a;
	int ran = 0, i;

	a = ust_thread_create("a", NULL);
	for (i = 0; i < 100; i++)
		assert_int_equal(ust_thread_send_msg(a, count_msg, &ran), 0);
	ust_thread_poll(a, 3, 0);
	assert_int_equal(ran, 3);
	ust_thread_poll(a, 0, 0);
	assert_int_equal(ran, 3 + UST_THREAD_MSG_BATCH);
	ust_thread_poll(a, 1000, 0);
	assert_int_equal(ran, 100);
	exit_and_destroy(a);
}

struct seq_check {
	int next; /* index of the message that must run next */
	int errors;
};

struct seq_msg {
	struct seq_check *c;
	int idx;
};

static void seq_msg_run(void *arg)
{
	struct seq_msg *m = arg;

	if (m->idx != m->c->next)
		m->c->errors++;
	m->c->next = m->idx + 1;
}

/*
 * A full ring does not fail a send: the rest wait on the overflow list, and
 * while it holds any, later messages (even with room in the ring again) queue
 * behind them, so the sender's order holds; once it is drained, messages use
 * the ring again.
 */
static void test_ring_full(void **state)
{
	enum { N = UST_THREAD_MSG_RING_SIZE + 1000, MORE = 300 };
	static struct seq_msg m[N + MORE + 1];
	struct seq_check c = {0, 0};
	struct ust_thread *a, *b;
	int i;

	a = ust_thread_create("a", NULL);
	b = ust_thread_create("b", NULL);
	ust_set_thread(a);
	for (i = 0; i < N; i++) {
		m[i] = (struct seq_msg){&c, i};
		assert_int_equal(ust_thread_send_msg(b, seq_msg_run, &m[i]), 0);
	}
	assert_false(ust_thread_is_idle(b));
	/* Half the ring run: room again, but the overflow is not empty. */
	ust_set_thread(NULL);
	ust_thread_poll(b, UST_THREAD_MSG_RING_SIZE / 2, 0);
	assert_int_equal(c.next, UST_THREAD_MSG_RING_SIZE / 2);
	ust_set_thread(a);
	for (i = N; i < N + MORE; i++) {
		m[i] = (struct seq_msg){&c, i};
		assert_int_equal(ust_thread_send_msg(b, seq_msg_run, &m[i]), 0);
	}
	ust_set_thread(NULL);
	while (!ust_thread_is_idle(b))
		ust_thread_poll(b, 0, 0);
	assert_int_equal(c.next, N + MORE);
	assert_int_equal(c.errors, 0);
	/* Drained: the ring again. */
	ust_set_thread(a);
	m[N + MORE] = (struct seq_msg){&c, N + MORE};
	assert_int_equal(ust_thread_send_msg(b, seq_msg_run, &m[N + MORE]), 0);
	ust_thread_poll(b, 0, 0);
	assert_int_equal(c.next, N + MORE + 1);
	assert_int_equal(c.errors, 0);
	exit_and_destroy(a);
	exit_and_destroy(b);
}

static void test_send_to_exited(void **state)
{
	struct ust_thread *a, *b;
	int ran = 0;

	a = ust_thread_create("a", NULL);
	b = ust_thread_create("b", NULL);
	ust_set_thread(b);
	assert_int_equal(ust_thread_exit(b), 0);
	/* An exiting thread still takes messages, and drains them before it exits. */
	ust_set_thread(a);
	assert_int_equal(ust_thread_send_msg(b, count_msg, &ran), 0);
	assert_int_equal(ust_thread_send_msg(b, count_msg, &ran), 0);
	ust_thread_poll(b, 1, 0);
	assert_int_equal(ran, 1);
	assert_false(ust_thread_is_exited(b));
	ust_thread_poll(b, 0, 0);
	assert_int_equal(ran, 2);
	assert_true(ust_thread_is_exited(b));

	assert_int_equal(ust_thread_send_msg(b, count_msg, &ran), -EIO);
	ust_thread_destroy(b);
	exit_and_destroy(a);
}

static void resend_msg(void *arg)
{
	int *left = arg;

	if (--*left > 0)
		assert_int_equal(ust_thread_send_msg(ust_get_thread(), resend_msg, left), 0);
}

static void test_exit_waits_for_self_sent_msgs(void **state)
{
	struct ust_thread *a;
	int left = 5, polls = 0;

	a = ust_thread_create("a", NULL);
	ust_set_thread(a);
	assert_int_equal(ust_thread_send_msg(a, resend_msg, &left), 0);
	assert_int_equal(ust_thread_exit(a), 0);
	while (!ust_thread_is_exited(a) && polls < 100) {
		ust_thread_poll(a, 0, 0);
		polls++;
	}
	assert_int_equal(left, 0);
	assert_int_equal(polls, 5);
	ust_thread_destroy(a);
}

/* ---- lookup and iteration ----------------------------------------------- */

static void test_get_by_id(void **state)
{
	struct ust_thread *a, *b;
	uint64_t ida, idb;

	a = ust_thread_create("a", NULL);
	b = ust_thread_create("b", NULL);
	ida = ust_thread_get_id(a);
	idb = ust_thread_get_id(b);
	assert_true(ida != 0 && idb != 0 && ida != idb);
	assert_ptr_equal(ust_thread_get_by_id(ida), a);
	assert_ptr_equal(ust_thread_get_by_id(idb), b);
	assert_null(ust_thread_get_by_id(0));
	assert_null(ust_thread_get_by_id(idb + 1000));
	exit_and_destroy(a);
	assert_null(ust_thread_get_by_id(ida));
	assert_ptr_equal(ust_thread_get_by_id(idb), b);
	exit_and_destroy(b);
}

static void count_thread(struct ust_thread *t, void *ctx)
{
	struct order_log *log = ctx;

	log->where[log->n++] = t;
}

static void test_thread_foreach(void **state)
{
	struct ust_thread *t[3];
	struct order_log log = {0};
	int i;

	for (i = 0; i < 3; i++)
		t[i] = ust_thread_create(NULL, NULL);
	ust_thread_foreach(count_thread, &log);
	assert_int_equal(log.n, 3);
	for (i = 0; i < 3; i++)
		assert_ptr_equal(log.where[i], t[i]);
	for (i = 0; i < 3; i++)
		exit_and_destroy(t[i]);
}

static struct order_log g_walk_log;
static struct ust_thread *g_walk_cpl_thread;
static int g_walk_cpl_count;

static void walk_fn(void *ctx)
{
	assert_ptr_equal(ctx, &g_walk_log);
	g_walk_log.where[g_walk_log.n++] = ust_get_thread();
}

static void walk_cpl(void *ctx)
{
	assert_ptr_equal(ctx, &g_walk_log);
	g_walk_cpl_thread = ust_get_thread();
	g_walk_cpl_count++;
}

static void test_for_each_thread(void **state)
{
	struct ust_thread *t[4];
	int i;

	for (i = 0; i < 4; i++)
		t[i] = ust_thread_create(NULL, NULL);
	/* An exited (not yet destroyed) thread is skipped. */
	ust_set_thread(t[2]);
	assert_int_equal(ust_thread_exit(t[2]), 0);
	ust_thread_poll(t[2], 0, 0);
	assert_true(ust_thread_is_exited(t[2]));

	memset(&g_walk_log, 0, sizeof(g_walk_log));
	g_walk_cpl_count = 0;
	ust_set_thread(t[1]);
	ust_for_each_thread(walk_fn, &g_walk_log, walk_cpl);
	/* Nothing runs synchronously. */
	assert_int_equal(g_walk_log.n, 0);
	ust_set_thread(NULL);
	poll_until_idle(t, 4);

	assert_int_equal(g_walk_log.n, 3);
	assert_ptr_equal(g_walk_log.where[0], t[0]);
	assert_ptr_equal(g_walk_log.where[1], t[1]);
	assert_ptr_equal(g_walk_log.where[2], t[3]);
	assert_int_equal(g_walk_cpl_count, 1);
	assert_ptr_equal(g_walk_cpl_thread, t[1]);

	ust_thread_destroy(t[2]);
	exit_and_destroy(t[0]);
	exit_and_destroy(t[1]);
	exit_and_destroy(t[3]);
}

/* ---- stats -------------------------------------------------------------- */

static int busy_advancing_poller(void *arg)
{
	uint64_t *seen_tsc = arg;

	*seen_tsc = ust_thread_get_last_tsc(ust_get_thread());
	ust_env_test_advance_ticks(50);
	return UST_POLLER_BUSY;
}

static int idle_advancing_poller(void *arg)
{
	ust_env_test_advance_ticks(30);
	return UST_POLLER_IDLE;
}

static void test_stats(void **state)
{
	struct ust_thread *a;
	struct ust_poller *busy, *idle;
	struct ust_thread_stats st;
	uint64_t seen = 0;

	ust_env_test_set_ticks(1000);
	a = ust_thread_create("a", NULL);
	ust_set_thread(a);
	busy = ust_poller_register(busy_advancing_poller, &seen, 0, "busy");
	assert_int_equal(ust_thread_poll(a, 0, 0), 1);
	assert_int_equal(seen, 1000);
	assert_int_equal(ust_thread_get_last_tsc(a), 1050);
	assert_int_equal(ust_thread_get_stats(a, &st), 0);
	assert_int_equal(st.busy_tsc, 50);
	assert_int_equal(st.idle_tsc, 0);

	ust_poller_unregister(&busy);
	assert_null(busy);
	idle = ust_poller_register(idle_advancing_poller, NULL, 0, "idle");
	assert_int_equal(ust_thread_poll(a, 0, 0), 0);
	assert_int_equal(ust_thread_poll(a, 0, 0), 0);
	assert_int_equal(ust_thread_get_stats(NULL, &st), 0);
	assert_int_equal(st.busy_tsc, 50);
	assert_int_equal(st.idle_tsc, 60);
	ust_poller_unregister(&idle);

	/* A caller-supplied start ahead of the clock never counts backwards. */
	assert_int_equal(ust_thread_poll(a, 0, 5000), 0);
	assert_int_equal(ust_thread_get_stats(a, &st), 0);
	assert_int_equal(st.idle_tsc, 60);
	assert_int_equal(ust_thread_get_last_tsc(a), 5000);

	ust_set_thread(NULL);
	assert_int_equal(ust_thread_get_stats(NULL, &st), -EINVAL);
	assert_int_equal(ust_thread_get_stats(a, NULL), -EINVAL);
	exit_and_destroy(a);
}

/* ---- two OS threads ----------------------------------------------------- */

#define STORM_MSGS 150000

struct storm_side {
	struct ust_thread *self;
	struct ust_thread *peer;
	uint32_t id;
	/* Written only by the OS thread polling self. */
	uint64_t received;
	uint64_t next_expected[2];
	uint64_t order_errors;
	uint64_t enomem;
	int *done; /* sides finished receiving */
};

static struct storm_side g_sides[2];

static void storm_msg(void *ctx)
{
	uintptr_t v = (uintptr_t)ctx;
	uint32_t sender = (uint32_t)(v >> 32) & 1;
	uint64_t seq = v & 0xffffffffu;
	struct storm_side *s = NULL;
	int i;

	for (i = 0; i < 2; i++) {
		if (g_sides[i].self == ust_get_thread())
			s = &g_sides[i];
	}
	if (s == NULL)
		abort();
	if (seq != s->next_expected[sender])
		s->order_errors++;
	s->next_expected[sender] = seq + 1;
	if (++s->received == STORM_MSGS)
		__atomic_add_fetch(s->done, 1, __ATOMIC_RELEASE);
}

static void *storm_thread(void *arg)
{
	struct storm_side *s = arg;
	uint64_t sent = 0;
	int rc;

	ust_set_thread(s->self);
	while (sent < STORM_MSGS || __atomic_load_n(s->done, __ATOMIC_ACQUIRE) < 2) {
		if (sent < STORM_MSGS) {
			uintptr_t v = ((uintptr_t)s->id << 32) | sent;

			rc = ust_thread_send_msg(s->peer, storm_msg, (void *)v);
			if (rc == 0)
				sent++;
			else if (rc == -ENOMEM)
				s->enomem++;
			else
				return (void *)(uintptr_t)1;
		}
		ust_thread_poll(s->self, 0, 0);
	}
	ust_set_thread(NULL);
	return NULL;
}

static void test_two_os_threads(void **state)
{
	pthread_t tid[2];
	void *ret[2];
	int done = 0, i;

	memset(g_sides, 0, sizeof(g_sides));
	g_sides[0].self = ust_thread_create("storm0", NULL);
	g_sides[1].self = ust_thread_create("storm1", NULL);
	for (i = 0; i < 2; i++) {
		g_sides[i].peer = g_sides[1 - i].self;
		g_sides[i].id = (uint32_t)i;
		g_sides[i].done = &done;
	}
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, storm_thread, &g_sides[i]), 0);
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_join(tid[i], &ret[i]), 0);
	for (i = 0; i < 2; i++) {
		assert_null(ret[i]);
		assert_int_equal(g_sides[i].received, STORM_MSGS);
		assert_int_equal(g_sides[i].order_errors, 0);
		/* Each side hears only from its peer, every sequence number once. */
		assert_int_equal(g_sides[i].next_expected[1 - i], STORM_MSGS);
		assert_int_equal(g_sides[i].next_expected[i], 0);
	}
	exit_and_destroy(g_sides[0].self);
	exit_and_destroy(g_sides[1].self);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_destroy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lib_init_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scheduler_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_self_and_other, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_msgs_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ring_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_to_exited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_waits_for_self_sent_msgs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_by_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thread_foreach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_for_each_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_os_threads, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
