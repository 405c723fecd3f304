/*
 * Unit tests for core/io_channel.c: channel refcounting and deferred
 * destroy, create/destroy callbacks on the right thread, device unregister
 * waiting for channels and walks, for_each_channel order, stop-on-error and
 * robustness against channels coming and going mid-walk, and thread exit
 * waiting for channels.
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

#define NTHREADS 4

static struct ust_thread *g_t[NTHREADS];

/* The io_device: any unique pointer; this one also records what happened. */
struct fake_dev {
	int creates;
	int destroys;
	int create_rc;
	struct ust_thread *created_on[8];
	struct ust_thread *destroyed_on[8];
	int unregistered;
	struct ust_thread *unregistered_on;
};

struct chan_ctx {
	uint64_t magic;
	struct ust_thread *owner;
};

static struct fake_dev g_dev, g_dev2;

static int dev_create(void *io_device, void *ctx_buf)
{
	struct fake_dev *d = io_device;
	struct chan_ctx *c = ctx_buf;

	if (d->create_rc != 0)
		return d->create_rc;
	c->magic = 0x1234;
	c->owner = ust_get_thread();
	d->created_on[d->creates++ % 8] = ust_get_thread();
	return 0;
}

static void dev_destroy(void *io_device, void *ctx_buf)
{
	struct fake_dev *d = io_device;
	struct chan_ctx *c = ctx_buf;

	assert_int_equal(c->magic, 0x1234);
	d->destroyed_on[d->destroys++ % 8] = ust_get_thread();
	c->magic = 0;
}

static void dev_unregistered(void *io_device)
{
	struct fake_dev *d = io_device;

	d->unregistered++;
	d->unregistered_on = ust_get_thread();
}

static int setup(void **state)
{
	int i;

	if (ust_thread_lib_init(NULL) != 0)
		return -1;
	for (i = 0; i < NTHREADS; i++) {
		g_t[i] = ust_thread_create(NULL, NULL);
		if (g_t[i] == NULL)
			return -1;
	}
	memset(&g_dev, 0, sizeof(g_dev));
	memset(&g_dev2, 0, sizeof(g_dev2));
	ust_io_device_register(&g_dev, dev_create, dev_destroy, sizeof(struct chan_ctx), "dev");
	return 0;
}

static void poll_all(void)
{
	int round, i, busy;

	for (round = 0; round < 1000; round++) {
		busy = 0;
		for (i = 0; i < NTHREADS; i++)
			busy |= ust_thread_poll(g_t[i], 0, 0);
		if (!busy)
			return;
	}
	fail_msg("threads still busy after 1000 rounds");
}

static int teardown(void **state)
{
	int i, j;

	ust_set_thread(g_t[0]);
	ust_io_device_unregister(&g_dev, NULL);
	for (i = 0; i < NTHREADS; i++) {
		ust_set_thread(g_t[i]);
		if (ust_thread_exit(g_t[i]) != 0)
			return -1;
	}
	ust_set_thread(NULL);
	for (j = 0; j < 10; j++)
		poll_all();
	for (i = 0; i < NTHREADS; i++) {
		if (!ust_thread_is_exited(g_t[i]))
			return -1;
		ust_thread_destroy(g_t[i]);
	}
	ust_thread_lib_fini();
	return 0;
}

static void test_refcount_and_deferred_destroy(void **state)
{
	struct ust_io_channel *ch, *ch2;
	struct chan_ctx *c;

	ust_set_thread(g_t[1]);
	ch = ust_get_io_channel(&g_dev);
	assert_non_null(ch);
	assert_int_equal(g_dev.creates, 1);
	assert_ptr_equal(g_dev.created_on[0], g_t[1]);

	c = ust_io_channel_get_ctx(ch);
	assert_int_equal((uintptr_t)c % 64, 0);
	assert_int_equal(c->magic, 0x1234);
	assert_ptr_equal(c->owner, g_t[1]);
	assert_ptr_equal(ust_io_channel_from_ctx(c), ch);
	assert_ptr_equal(ust_io_channel_get_thread(ch), g_t[1]);
	assert_ptr_equal(ust_io_channel_get_io_device(ch), &g_dev);

	/* Same thread, same channel; no second create. */
	ch2 = ust_get_io_channel(&g_dev);
	assert_ptr_equal(ch2, ch);
	assert_int_equal(g_dev.creates, 1);

	ust_put_io_channel(ch2);
	ust_put_io_channel(ch);
	/* The last put only queues the destroy: the context is still valid. */
	assert_int_equal(g_dev.destroys, 0);
	assert_int_equal(c->magic, 0x1234);
	ust_set_thread(NULL);
	poll_all();
	assert_int_equal(g_dev.destroys, 1);
	assert_ptr_equal(g_dev.destroyed_on[0], g_t[1]);

	/* Other threads get their own channels. */
	ust_set_thread(g_t[2]);
	ch = ust_get_io_channel(&g_dev);
	ust_set_thread(g_t[3]);
	ch2 = ust_get_io_channel(&g_dev);
	assert_ptr_not_equal(ch, ch2);
	assert_int_equal(g_dev.creates, 3);
	assert_ptr_equal(g_dev.created_on[1], g_t[2]);
	assert_ptr_equal(g_dev.created_on[2], g_t[3]);
	ust_put_io_channel(ch2);
	/* A put from the wrong thread is refused. */
	ust_put_io_channel(ch);
	ust_set_thread(g_t[2]);
	ust_put_io_channel(ch);
	ust_set_thread(NULL);
	poll_all();
	assert_int_equal(g_dev.destroys, 3);
	assert_true((g_dev.destroyed_on[1] == g_t[3] && g_dev.destroyed_on[2] == g_t[2]) ||
		    (g_dev.destroyed_on[1] == g_t[2] && g_dev.destroyed_on[2] == g_t[3]));
}

static void test_revive_before_destroy(void **state)
{
	struct ust_io_channel *ch, *again;

	ust_set_thread(g_t[0]);
	ch = ust_get_io_channel(&g_dev);
	ust_put_io_channel(ch);
	/* Got again before the destroy message ran: the same channel survives. */
	again = ust_get_io_channel(&g_dev);
	assert_ptr_equal(again, ch);
	poll_all();
	assert_int_equal(g_dev.destroys, 0);
	assert_int_equal(g_dev.creates, 1);
	ust_set_thread(g_t[0]);
	ust_put_io_channel(again);
	poll_all();
	assert_int_equal(g_dev.destroys, 1);
}

struct put_in_cb {
	struct ust_io_channel *ch;
	int magic_after_put;
};

static void put_inside_callback(void *arg)
{
	struct put_in_cb *p = arg;
	struct chan_ctx *c = ust_io_channel_get_ctx(p->ch);

	ust_put_io_channel(p->ch);
	/* Still usable for the rest of this callback. */
	p->magic_after_put = (int)c->magic;
}

static void test_put_inside_callback(void **state)
{
	struct put_in_cb p;

	ust_set_thread(g_t[1]);
	p.ch = ust_get_io_channel(&g_dev);
	assert_int_equal(ust_thread_send_msg(g_t[1], put_inside_callback, &p), 0);
	ust_set_thread(NULL);
	poll_all();
	assert_int_equal(p.magic_after_put, 0x1234);
	assert_int_equal(g_dev.destroys, 1);
}

static void test_get_errors(void **state)
{
	int not_a_device;

	ust_set_thread(NULL);
	assert_null(ust_get_io_channel(&g_dev));
	ust_set_thread(g_t[0]);
	assert_null(ust_get_io_channel(&not_a_device));

	/* create_cb failure: no channel, and the device is not pinned by it. */
	ust_io_device_register(&g_dev2, dev_create, dev_destroy, 8, "dev2");
	g_dev2.create_rc = -ENXIO;
	assert_null(ust_get_io_channel(&g_dev2));
	assert_int_equal(g_dev2.creates, 0);
	ust_io_device_unregister(&g_dev2, dev_unregistered);
	poll_all();
	assert_int_equal(g_dev2.unregistered, 1);
	assert_ptr_equal(g_dev2.unregistered_on, g_t[0]);

	/* Registering the same pointer twice keeps the first registration. */
	ust_io_device_register(&g_dev, dev_create, dev_destroy, 8, "dup");
	ust_put_io_channel(ust_get_io_channel(&g_dev));
	poll_all();
	assert_int_equal(g_dev.creates, 1);
	assert_int_equal(g_dev.destroys, 1);
}

static void test_unregister_waits_for_channels(void **state)
{
	struct ust_io_channel *c1, *c3;

	ust_io_device_register(&g_dev2, dev_create, dev_destroy, 8, "dev2");
	ust_set_thread(g_t[1]);
	c1 = ust_get_io_channel(&g_dev2);
	ust_set_thread(g_t[3]);
	c3 = ust_get_io_channel(&g_dev2);
	assert_non_null(c1);
	assert_non_null(c3);

	ust_set_thread(g_t[2]);
	ust_io_device_unregister(&g_dev2, dev_unregistered);
	/* No new channels for a device being unregistered, even on a holder. */
	assert_null(ust_get_io_channel(&g_dev2));
	ust_set_thread(g_t[1]);
	assert_null(ust_get_io_channel(&g_dev2));
	poll_all();
	assert_int_equal(g_dev2.unregistered, 0);

	ust_set_thread(g_t[1]);
	ust_put_io_channel(c1);
	poll_all();
	assert_int_equal(g_dev2.destroys, 1);
	assert_int_equal(g_dev2.unregistered, 0);

	ust_set_thread(g_t[3]);
	ust_put_io_channel(c3);
	poll_all();
	assert_int_equal(g_dev2.destroys, 2);
	assert_int_equal(g_dev2.unregistered, 1);
	assert_ptr_equal(g_dev2.unregistered_on, g_t[2]);

	/* The pointer may be registered again afterwards. */
	ust_io_device_register(&g_dev2, dev_create, dev_destroy, 8, "dev2-again");
	ust_set_thread(g_t[0]);
	c1 = ust_get_io_channel(&g_dev2);
	assert_non_null(c1);
	ust_put_io_channel(c1);
	ust_io_device_unregister(&g_dev2, dev_unregistered);
	poll_all();
	assert_int_equal(g_dev2.unregistered, 2);
}

static void test_unregister_without_channels_is_async(void **state)
{
	ust_io_device_register(&g_dev2, dev_create, dev_destroy, 8, "dev2");
	ust_set_thread(g_t[3]);
	ust_io_device_unregister(&g_dev2, dev_unregistered);
	assert_int_equal(g_dev2.unregistered, 0);
	poll_all();
	assert_int_equal(g_dev2.unregistered, 1);
	assert_ptr_equal(g_dev2.unregistered_on, g_t[3]);
	/* Unregistering an unknown device changes nothing. */
	ust_io_device_unregister(&g_dev2, dev_unregistered);
	poll_all();
	assert_int_equal(g_dev2.unregistered, 1);
}

/* ---- for_each_channel --------------------------------------------------- */

struct walk {
	struct ust_thread *visited[16];
	struct ust_io_channel *channels[16];
	int n;
	int fail_at;  /* status returned on this visit (1-based; 0: never) */
	int hold_at;  /* do not continue on this visit; the test does */
	struct ust_io_channel_iter *held;
	int cpl_status;
	int cpl_count;
	struct ust_thread *cpl_thread;
};

static void walk_visit(struct ust_io_channel_iter *i)
{
	struct walk *w = ust_io_channel_iter_get_ctx(i);
	struct ust_io_channel *ch = ust_io_channel_iter_get_channel(i);

	assert_ptr_equal(ust_io_channel_iter_get_io_device(i), &g_dev);
	assert_ptr_equal(ust_io_channel_get_thread(ch), ust_get_thread());
	w->visited[w->n] = ust_get_thread();
	w->channels[w->n++] = ch;
	if (w->hold_at == w->n) {
		w->held = i;
		return;
	}
	ust_for_each_channel_continue(i, w->fail_at == w->n ? -EAGAIN : 0);
}

static void walk_done(struct ust_io_channel_iter *i, int status)
{
	struct walk *w = ust_io_channel_iter_get_ctx(i);

	w->cpl_status = status;
	w->cpl_count++;
	w->cpl_thread = ust_get_thread();
}

static struct ust_io_channel *get_channel_on(int idx)
{
	struct ust_io_channel *ch;

	ust_set_thread(g_t[idx]);
	ch = ust_get_io_channel(&g_dev);
	assert_non_null(ch);
	return ch;
}

static void put_channel_on(int idx, struct ust_io_channel *ch)
{
	ust_set_thread(g_t[idx]);
	ust_put_io_channel(ch);
}

static void test_for_each_channel_visits_each_once(void **state)
{
	struct ust_io_channel *c0, *c2, *c3;
	struct walk w = {0};

	c0 = get_channel_on(0);
	c2 = get_channel_on(2);
	c3 = get_channel_on(3);

	ust_set_thread(g_t[1]);
	ust_for_each_channel(&g_dev, walk_visit, &w, walk_done);
	assert_int_equal(w.n, 0);
	ust_set_thread(NULL);
	poll_all();
	assert_int_equal(w.n, 3);
	assert_ptr_equal(w.visited[0], g_t[0]);
	assert_ptr_equal(w.visited[1], g_t[2]);
	assert_ptr_equal(w.visited[2], g_t[3]);
	assert_ptr_equal(w.channels[0], c0);
	assert_ptr_equal(w.channels[1], c2);
	assert_ptr_equal(w.channels[2], c3);
	assert_int_equal(w.cpl_count, 1);
	assert_int_equal(w.cpl_status, 0);
	assert_ptr_equal(w.cpl_thread, g_t[1]);

	put_channel_on(0, c0);
	put_channel_on(2, c2);
	put_channel_on(3, c3);
	poll_all();
}

static void test_for_each_channel_stops_on_error(void **state)
{
	struct ust_io_channel *c0, *c2, *c3;
	struct walk w = {.fail_at = 2};

	c0 = get_channel_on(0);
	c2 = get_channel_on(2);
	c3 = get_channel_on(3);
	ust_set_thread(g_t[3]);
	ust_for_each_channel(&g_dev, walk_visit, &w, walk_done);
	poll_all();
	assert_int_equal(w.n, 2);
	assert_ptr_equal(w.visited[1], g_t[2]);
	assert_int_equal(w.cpl_count, 1);
	assert_int_equal(w.cpl_status, -EAGAIN);
	assert_ptr_equal(w.cpl_thread, g_t[3]);
	put_channel_on(0, c0);
	put_channel_on(2, c2);
	put_channel_on(3, c3);
	poll_all();
}

static void test_for_each_channel_no_channels(void **state)
{
	struct walk w = {0};
	int not_a_device;

	ust_set_thread(g_t[2]);
	ust_for_each_channel(&g_dev, walk_visit, &w, walk_done);
	poll_all();
	assert_int_equal(w.n, 0);
	assert_int_equal(w.cpl_count, 1);
	assert_int_equal(w.cpl_status, 0);
	assert_ptr_equal(w.cpl_thread, g_t[2]);

	memset(&w, 0, sizeof(w));
	ust_set_thread(g_t[2]);
	ust_for_each_channel(&not_a_device, walk_visit, &w, walk_done);
	poll_all();
	assert_int_equal(w.n, 0);
	assert_int_equal(w.cpl_count, 1);
	assert_int_equal(w.cpl_status, -ENODEV);
}

static void test_for_each_channel_churn(void **state)
{
	struct ust_io_channel *c0, *c1, *c2, *c3;
	struct walk w = {.hold_at = 1};

	c0 = get_channel_on(0);
	c1 = get_channel_on(1);
	c2 = get_channel_on(2);

	/* c1's destroy is queued before the walk's visit reaches thread 1. */
	put_channel_on(1, c1);
	ust_set_thread(g_t[0]);
	ust_for_each_channel(&g_dev, walk_visit, &w, walk_done);
	ust_set_thread(NULL);
	poll_all();
	/* Held on thread 0: meanwhile thread 2 drops its channel, thread 3 gains one. */
	assert_int_equal(w.n, 1);
	assert_non_null(w.held);
	put_channel_on(2, c2);
	c3 = get_channel_on(3);
	ust_set_thread(NULL);
	poll_all();
	assert_int_equal(g_dev.destroys, 2);

	ust_set_thread(g_t[0]);
	ust_for_each_channel_continue(w.held, 0);
	ust_set_thread(NULL);
	poll_all();
	assert_int_equal(w.n, 2);
	assert_ptr_equal(w.visited[0], g_t[0]);
	assert_ptr_equal(w.visited[1], g_t[3]);
	assert_ptr_equal(w.channels[1], c3);
	assert_int_equal(w.cpl_count, 1);
	assert_int_equal(w.cpl_status, 0);

	put_channel_on(0, c0);
	put_channel_on(3, c3);
	poll_all();
}

static void test_for_each_channel_destroyed_before_visit(void **state)
{
	struct ust_io_channel *c0, *c2;
	struct walk w = {0};

	c0 = get_channel_on(0);
	c2 = get_channel_on(2);
	/* Thread 2's destroy message is ahead of the walk in its ring. */
	put_channel_on(2, c2);
	ust_set_thread(g_t[0]);
	ust_for_each_channel(&g_dev, walk_visit, &w, walk_done);
	ust_thread_poll(g_t[0], 0, 0);
	assert_int_equal(w.n, 1);
	ust_set_thread(NULL);
	poll_all();
	assert_int_equal(w.n, 1);
	assert_int_equal(w.cpl_count, 1);
	assert_int_equal(g_dev.destroys, 1);
	put_channel_on(0, c0);
	poll_all();
}

static void test_unregister_waits_for_walk(void **state)
{
	struct ust_io_channel *c1;
	struct walk w = {.hold_at = 1};

	c1 = get_channel_on(1);
	ust_set_thread(g_t[0]);
	ust_for_each_channel(&g_dev, walk_visit, &w, walk_done);
	poll_all();
	assert_non_null(w.held);
	put_channel_on(1, c1);
	ust_set_thread(g_t[0]);
	ust_io_device_unregister(&g_dev, dev_unregistered);
	poll_all();
	/* The channel is gone, but the walk still holds the device. */
	assert_int_equal(g_dev.destroys, 1);
	assert_int_equal(g_dev.unregistered, 0);
	ust_set_thread(g_t[1]);
	ust_for_each_channel_continue(w.held, 0);
	poll_all();
	assert_int_equal(w.cpl_count, 1);
	assert_int_equal(g_dev.unregistered, 1);
	assert_ptr_equal(g_dev.unregistered_on, g_t[0]);
	/* teardown's unregister of the now unknown device is harmless */
}

static void test_exit_waits_for_channels(void **state)
{
	struct ust_io_channel *ch;
	int i;

	ch = get_channel_on(1);
	assert_int_equal(ust_thread_exit(g_t[1]), 0);
	for (i = 0; i < 5; i++)
		ust_thread_poll(g_t[1], 0, 0);
	assert_false(ust_thread_is_exited(g_t[1]));
	/* An exiting thread can still get and put its channels. */
	assert_ptr_equal(ust_get_io_channel(&g_dev), ch);
	ust_put_io_channel(ch);
	ust_thread_poll(g_t[1], 0, 0);
	assert_false(ust_thread_is_exited(g_t[1]));
	ust_put_io_channel(ch);
	ust_thread_poll(g_t[1], 0, 0);
	assert_int_equal(g_dev.destroys, 1);
	assert_true(ust_thread_is_exited(g_t[1]));
	/* An exited thread gets no channel. */
	assert_null(ust_get_io_channel(&g_dev));
}

static char g_warning[256];

static void capture_log(enum ust_log_level level, const char *msg)
{
	if (level == UST_LOG_WARN)
		snprintf(g_warning, sizeof(g_warning), "%s", msg);
}

static void test_fini_drops_forgotten_device(void **state)
{
	/* Never unregistered: lib fini must name it and free it (ASan checks the free). */
	ust_io_device_register(&g_dev2, dev_create, dev_destroy, 8, "forgotten");
	g_warning[0] = '\0';
	ust_log_set_sink(capture_log);
	/* Destroys every thread, then finishes the library. */
	assert_int_equal(teardown(state), 0);
	ust_log_set_sink(NULL);
	assert_non_null(strstr(g_warning, "forgotten"));
	/* teardown already ran; give the real one a fresh library to finish. */
	assert_int_equal(setup(state), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_refcount_and_deferred_destroy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revive_before_destroy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_inside_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unregister_waits_for_channels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unregister_without_channels_is_async, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_for_each_channel_visits_each_once, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_for_each_channel_stops_on_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_for_each_channel_no_channels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_for_each_channel_churn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_for_each_channel_destroyed_before_visit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unregister_waits_for_walk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_waits_for_channels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fini_drops_forgotten_device, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
