/*
 * thread_msg: cost of ust_thread messages between two reactors.
 *
 * Two ust_threads, pinned to two different cores, measure (1) ping-pong: one
 * message there, one back, strictly one in flight; and (2) one-way
 * streaming: the sender keeps up to STREAM_WINDOW messages in flight and
 * the receiver counts them. Prints messages per second and ns per message
 * for both. Defaults: -m 0x3 --no-huge --poll-mode always, 1 s per test.
 * A benchmark, not a test: it always exits 0 once it has printed results.
 */
#include <errno.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "../bench_util.h"
#include "ustor/app.h"
#include "ustor/cpuset.h"
#include "ustor/env.h"
#include "ustor/thread.h"

/* Well under the thread ring's size, so a full ring never stalls the sender. */
#define STREAM_WINDOW 4096
#define STREAM_BATCH 64

struct bench {
	double seconds;
	struct ust_thread *app;
	struct ust_thread *a; /* sender */
	struct ust_thread *b; /* echoer / receiver */
	uint64_t end_tsc;
	uint64_t start_tsc;
	/* ping-pong */
	uint64_t round_trips;
	/* streaming */
	struct ust_poller *stream_poller;
	uint64_t sent;
	atomic_uint_fast64_t received; /* written by b only */
	uint64_t send_failures;
};

static struct bench g_bench = {.seconds = 1.0};

static double ticks_to_ns(uint64_t ticks)
{
	return (double)ticks * 1e9 / (double)ust_get_ticks_hz();
}

static void bench_finish(void *ctx)
{
	ust_app_stop(0);
}

/* ---- streaming ---------------------------------------------------------- */

static void stream_report(void *ctx)
{
	struct bench *b = ctx;
	uint64_t elapsed = ust_get_ticks() - b->start_tsc;
	double ns = ticks_to_ns(elapsed);
	uint64_t n = atomic_load(&b->received);

	printf("one-way stream:  %12.0f messages/s  %8.1f ns/message  (%llu messages, "
	       "window %d)\n",
	       (double)n * 1e9 / ns, ns / (double)n, (unsigned long long)n, STREAM_WINDOW);
	ust_thread_send_msg(b->app, bench_finish, b);
}

static void stream_end(void *ctx)
{
	struct bench *b = ctx;

	/* Messages from one sender arrive in order: every data message is counted. */
	ust_thread_send_msg(b->a, stream_report, b);
}

static void stream_msg(void *ctx)
{
	struct bench *b = ctx;

	atomic_store_explicit(&b->received, atomic_load_explicit(&b->received,
								  memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static int stream_poll(void *ctx)
{
	struct bench *b = ctx;
	uint64_t in_flight;
	int i;

	if (ust_get_ticks() >= b->end_tsc) {
		ust_poller_unregister(&b->stream_poller);
		while (ust_thread_send_msg(b->b, stream_end, b) != 0) {
		}
		return UST_POLLER_BUSY;
	}
	in_flight = b->sent - atomic_load_explicit(&b->received, memory_order_relaxed);
	for (i = 0; i < STREAM_BATCH && in_flight < STREAM_WINDOW; i++, in_flight++) {
		if (ust_thread_send_msg(b->b, stream_msg, b) != 0) {
			b->send_failures++;
			break;
		}
		b->sent++;
	}
	return UST_POLLER_BUSY;
}

static void stream_start(void *ctx)
{
	struct bench *b = ctx;

	b->start_tsc = ust_get_ticks();
	b->end_tsc = b->start_tsc + (uint64_t)(b->seconds * (double)ust_get_ticks_hz());
	b->stream_poller = ust_poller_register(stream_poll, b, 0, "stream");
	if (b->stream_poller == NULL) {
		fprintf(stderr, "thread_msg: cannot register the stream poller\n");
		ust_thread_send_msg(b->app, bench_finish, b);
	}
}

/* ---- ping-pong ---------------------------------------------------------- */

static void ping(void *ctx);

static void pong(void *ctx)
{
	struct bench *b = ctx;
	uint64_t now = ust_get_ticks();
	double ns;

	b->round_trips++;
	if (now < b->end_tsc) {
		ust_thread_send_msg(b->b, ping, b);
		return;
	}
	ns = ticks_to_ns(now - b->start_tsc);
	printf("ping-pong:       %12.0f messages/s  %8.1f ns/message  (%llu round trips, "
	       "%.1f ns each)\n",
	       2.0 * (double)b->round_trips * 1e9 / ns, ns / (2.0 * (double)b->round_trips),
	       (unsigned long long)b->round_trips, ns / (double)b->round_trips);
	stream_start(b);
}

static void ping(void *ctx)
{
	struct bench *b = ctx;

	ust_thread_send_msg(b->a, pong, b);
}

static void pingpong_start(void *ctx)
{
	struct bench *b = ctx;

	b->start_tsc = ust_get_ticks();
	b->end_tsc = b->start_tsc + (uint64_t)(b->seconds * (double)ust_get_ticks_hz());
	ust_thread_send_msg(b->b, ping, b);
}

/* ---- set-up ------------------------------------------------------------- */

static struct ust_thread *thread_on_core(const char *name, uint32_t core)
{
	struct ust_cpuset mask;

	ust_cpuset_zero(&mask);
	ust_cpuset_set(&mask, core, true);
	return ust_thread_create(name, &mask);
}

static void bench_start(void *ctx)
{
	struct bench *b = ctx;
	uint32_t first = ust_env_get_first_core();
	uint32_t second = ust_env_get_next_core(first);

	if (second == UINT32_MAX) {
		printf("note: one core only; both threads share core %u\n", first);
		second = first;
	}
	b->app = ust_get_thread();
	b->a = thread_on_core("msg_a", first);
	b->b = thread_on_core("msg_b", second);
	if (b->a == NULL || b->b == NULL) {
		fprintf(stderr, "thread_msg: cannot create the threads\n");
		ust_app_stop(1);
		return;
	}
	printf("thread_msg: threads on cores %u and %u, %.1f s per test, tick rate %llu Hz\n",
	       first, second, b->seconds, (unsigned long long)ust_get_ticks_hz());
	ust_thread_send_msg(b->a, pingpong_start, b);
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
	printf("Usage: thread_msg [-t SECONDS] [OPTION]...\n"
	       "Message rate between two ust_threads on two cores (ping-pong and stream).\n"
	       " -t, --time SECONDS      duration of each test (default 1)\n\n");
}

int main(int argc, char **argv)
{
	struct ust_app_opts opts;
	int rc;

	bench_app_opts_init(&opts, "thread_msg", "0x3");
	rc = ust_app_parse_args(argc, argv, &opts, "t:", g_long, parse_opt, usage, &g_bench);
	if (rc != 0) {
		return rc == 1 ? 0 : 2;
	}
	rc = ust_app_start(&opts, bench_start, &g_bench);
	if (g_bench.send_failures > 0) {
		printf("(%llu sends found the ring or pool full)\n",
		       (unsigned long long)g_bench.send_failures);
	}
	return rc == 0 ? 0 : 1;
}
