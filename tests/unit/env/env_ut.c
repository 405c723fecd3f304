/*
 * Unit tests of the plain-malloc test environment (env/test): DMA memory
 * alignment and vtophys, mempool exhaustion and all-or-nothing bulk gets,
 * misuse detection, ring semantics and a multi-threaded ring stress test
 * that checks every item arrives exactly once, cores and the tick hooks.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "env_test.h"
#include "ustor/env.h"

static void test_init_fini(void **state)
{
	struct ust_env_opts opts;

	ust_env_opts_init(&opts);
	assert_int_equal(opts.main_core, -1);
	assert_null(opts.core_mask);
	assert_false(opts.no_huge);

	assert_int_equal(ust_env_init(NULL), 0);
	assert_int_equal(ust_env_init(NULL), -EALREADY);
	ust_env_fini();

	opts.file_prefix = "ut_prefix";
	assert_int_equal(ust_env_init(&opts), 0);
	assert_string_equal(ust_env_get_file_prefix(), "ut_prefix");
	ust_env_fini();

	opts.file_prefix = NULL;
	opts.main_core = 3;
	assert_int_equal(ust_env_init(&opts), -EINVAL);
	opts.main_core = -1;
	opts.file_prefix = "";
	assert_int_equal(ust_env_init(&opts), -EINVAL);
	opts.file_prefix = NULL;
	opts.core_mask = "0x3";
	assert_int_equal(ust_env_init(&opts), -ENOTSUP);
	opts.core_mask = "[0-1]";
	assert_int_equal(ust_env_init(&opts), -ENOTSUP);
	opts.core_mask = "[0]";
	assert_int_equal(ust_env_init(&opts), 0);
	ust_env_fini();
	opts.core_mask = "0x1";
	opts.main_core = 0;
	assert_int_equal(ust_env_init(&opts), 0);
	ust_env_fini();

	assert_int_equal(ust_env_init(NULL), 0);
	{
		char want[64];

		snprintf(want, sizeof(want), "ustor_%d", (int)getpid());
		assert_string_equal(ust_env_get_file_prefix(), want);
	}
	assert_true(ust_env_no_huge());
	ust_env_fini();
}

static void test_dma_alignment(void **state)
{
	size_t aligns[] = {0, 1, 2, 8, 64, 512, 4096, 2 * 1024 * 1024};
	size_t i;

	for (i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
		size_t want = aligns[i] == 0 ? 64 : aligns[i];
		unsigned char *buf = ust_dma_malloc(1000, aligns[i]);

		assert_non_null(buf);
		assert_int_equal((uintptr_t)buf % want, 0);
		memset(buf, 0xab, 1000);
		ust_dma_free(buf);
	}

	errno = 0;
	assert_null(ust_dma_malloc(100, 3));
	assert_int_equal(errno, EINVAL);
	assert_null(ust_dma_malloc(100, 4096 + 64));
	assert_null(ust_dma_malloc(0, 0));
	errno = 0;
	assert_null(ust_dma_zmalloc(SIZE_MAX - 4096, 64));
	assert_int_equal(errno, ENOMEM);
	ust_dma_free(NULL);
}

static void test_dma_zmalloc(void **state)
{
	unsigned char *buf;
	size_t i;

	/* Dirty the heap first so zeroing is not an accident of fresh pages. */
	buf = ust_dma_malloc(8192, 4096);
	assert_non_null(buf);
	memset(buf, 0xff, 8192);
	ust_dma_free(buf);

	buf = ust_dma_zmalloc(8192, 4096);
	assert_non_null(buf);
	for (i = 0; i < 8192; i++)
		assert_int_equal(buf[i], 0);
	ust_dma_free(buf);
}

static void test_vtophys(void **state)
{
	void *buf = ust_dma_malloc(3 * 4096, 4096);
	uint64_t size;

	assert_non_null(buf);
	size = 3 * 4096;
	assert_int_equal(ust_vtophys(buf, &size), (uint64_t)(uintptr_t)buf);
	assert_int_equal(size, 3 * 4096);

	size = 100;
	assert_int_equal(ust_vtophys((char *)buf + 5000, &size), (uint64_t)(uintptr_t)buf + 5000);
	assert_int_equal(size, 100);

	assert_int_equal(ust_vtophys(buf, NULL), (uint64_t)(uintptr_t)buf);
	assert_int_equal(ust_vtophys(NULL, &size), UST_VTOPHYS_ERROR);
	assert_int_equal(ust_vtophys(NULL, NULL), UST_VTOPHYS_ERROR);
	ust_dma_free(buf);
}

static void test_mempool_exhaustion(void **state)
{
	struct ust_mempool *mp = ust_mempool_create("ut_exhaust", 8, 200, 0, UST_ENV_SOCKET_ANY);
	void *objs[8];
	size_t i, j;

	assert_non_null(mp);
	assert_int_equal(ust_mempool_count(mp), 8);
	for (i = 0; i < 8; i++) {
		objs[i] = ust_mempool_get(mp);
		assert_non_null(objs[i]);
		assert_int_equal((uintptr_t)objs[i] % 64, 0);
		memset(objs[i], (int)i, 200);
		for (j = 0; j < i; j++)
			assert_ptr_not_equal(objs[i], objs[j]);
		assert_int_equal(ust_mempool_count(mp), 7 - i);
	}
	assert_null(ust_mempool_get(mp));
	assert_int_equal(ust_mempool_count(mp), 0);

	/* Objects do not overlap: each still holds what was written to it. */
	for (i = 0; i < 8; i++)
		assert_int_equal(((unsigned char *)objs[i])[199], i);

	ust_mempool_put(mp, objs[3]);
	assert_int_equal(ust_mempool_count(mp), 1);
	assert_ptr_equal(ust_mempool_get(mp), objs[3]);
	ust_mempool_put_bulk(mp, objs, 8);
	assert_int_equal(ust_mempool_count(mp), 8);
	ust_mempool_free(mp);
}

static void test_mempool_bulk_all_or_nothing(void **state)
{
	struct ust_mempool *mp = ust_mempool_create("ut_bulk", 8, 64, 0, 0);
	void *a[5], *b[4];
	size_t i;

	assert_non_null(mp);
	assert_int_equal(ust_mempool_get_bulk(mp, a, 5), 0);
	assert_int_equal(ust_mempool_count(mp), 3);

	for (i = 0; i < 4; i++)
		b[i] = (void *)0x1;
	assert_int_equal(ust_mempool_get_bulk(mp, b, 4), -ENOMEM);
	assert_int_equal(ust_mempool_count(mp), 3);
	for (i = 0; i < 4; i++)
		assert_ptr_equal(b[i], (void *)0x1);

	assert_int_equal(ust_mempool_get_bulk(mp, b, 3), 0);
	assert_int_equal(ust_mempool_count(mp), 0);
	assert_int_equal(ust_mempool_get_bulk(mp, b, 0), 0);
	assert_int_equal(ust_mempool_get_bulk(mp, NULL, 1), -EINVAL);
	assert_int_equal(ust_mempool_get_bulk(NULL, b, 1), -EINVAL);

	ust_mempool_put_bulk(mp, a, 5);
	ust_mempool_put_bulk(mp, b, 3);
	assert_int_equal(ust_mempool_count(mp), 8);
	ust_mempool_free(mp);
}

static void test_mempool_bad_args(void **state)
{
	char long_name[100];

	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';

	errno = 0;
	assert_null(ust_mempool_create("x", 0, 64, 0, UST_ENV_SOCKET_ANY));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ust_mempool_create("x", 8, 0, 0, UST_ENV_SOCKET_ANY));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ust_mempool_create(NULL, 8, 64, 0, UST_ENV_SOCKET_ANY));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ust_mempool_create(long_name, 8, 64, 0, UST_ENV_SOCKET_ANY));
	assert_int_equal(errno, ENAMETOOLONG);
	errno = 0;
	assert_null(ust_mempool_create("x", 8, 64, 0, 7));
	assert_int_equal(errno, EINVAL);
	/* A cache that could hold more than 2/3 of the pool, as DPDK refuses it. */
	errno = 0;
	assert_null(ust_mempool_create("x", 8, 64, 6, UST_ENV_SOCKET_ANY));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ust_mempool_create("x", 100000, 64, 513, UST_ENV_SOCKET_ANY));
	assert_int_equal(errno, EINVAL);

	assert_null(ust_mempool_get(NULL));
	assert_int_equal(ust_mempool_count(NULL), 0);
	ust_mempool_free(NULL);
}

/* Runs fn in a child and reports whether the child died of SIGABRT. */
static bool child_aborts(void (*fn)(void))
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		/* Keep the expected message out of the test log's noise. */
		if (freopen("/dev/null", "w", stderr) == NULL)
			_exit(2);
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void double_put(void)
{
	struct ust_mempool *mp = ust_mempool_create("ut_double", 4, 64, 0, 0);
	void *obj = ust_mempool_get(mp);

	ust_mempool_put(mp, obj);
	ust_mempool_put(mp, obj);
}

static void foreign_put(void)
{
	struct ust_mempool *mp = ust_mempool_create("ut_foreign", 4, 64, 0, 0);
	static char not_an_object[64];

	ust_mempool_put(mp, not_an_object);
}

static void inner_put(void)
{
	struct ust_mempool *mp = ust_mempool_create("ut_inner", 4, 64, 0, 0);
	char *obj = ust_mempool_get(mp);

	ust_mempool_put(mp, obj + 8);
}

static void single_put(void)
{
	struct ust_mempool *mp = ust_mempool_create("ut_single", 4, 64, 0, 0);
	void *obj = ust_mempool_get(mp);

	ust_mempool_put(mp, obj);
	ust_mempool_free(mp);
}

static void test_mempool_misuse_aborts(void **state)
{
	assert_true(child_aborts(double_put));
	assert_true(child_aborts(foreign_put));
	assert_true(child_aborts(inner_put));
	/* The check itself must not fire on correct use. */
	assert_false(child_aborts(single_put));
}

static void test_ring_semantics(void **state)
{
	struct ust_ring *ring = ust_ring_create(UST_RING_SP_SC, 5, UST_ENV_SOCKET_ANY);
	void *in[10], *out[10];
	size_t i;

	assert_non_null(ring);
	for (i = 0; i < 10; i++)
		in[i] = (void *)(uintptr_t)(i + 1);

	assert_int_equal(ust_ring_count(ring), 0);
	assert_int_equal(ust_ring_dequeue(ring, out, 10), 0);
	/* Capacity is exactly the count asked for. */
	assert_int_equal(ust_ring_enqueue(ring, in, 10), 5);
	assert_int_equal(ust_ring_count(ring), 5);
	assert_int_equal(ust_ring_enqueue(ring, in + 5, 1), 0);

	assert_int_equal(ust_ring_dequeue(ring, out, 2), 2);
	assert_ptr_equal(out[0], in[0]);
	assert_ptr_equal(out[1], in[1]);
	assert_int_equal(ust_ring_count(ring), 3);

	/* Wrap around the end of the slot array and keep FIFO order. */
	assert_int_equal(ust_ring_enqueue(ring, in + 5, 5), 2);
	assert_int_equal(ust_ring_dequeue(ring, out, 10), 5);
	for (i = 0; i < 5; i++)
		assert_ptr_equal(out[i], in[i + 2]);
	assert_int_equal(ust_ring_count(ring), 0);

	assert_int_equal(ust_ring_enqueue(ring, NULL, 1), 0);
	assert_int_equal(ust_ring_enqueue(NULL, in, 1), 0);
	assert_int_equal(ust_ring_dequeue(NULL, out, 1), 0);
	assert_int_equal(ust_ring_count(NULL), 0);
	ust_ring_free(ring);
	ust_ring_free(NULL);
}

static void test_ring_bad_args(void **state)
{
	errno = 0;
	assert_null(ust_ring_create(UST_RING_MP_MC, 0, UST_ENV_SOCKET_ANY));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ust_ring_create((enum ust_ring_type)42, 16, UST_ENV_SOCKET_ANY));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ust_ring_create(UST_RING_MP_MC, (size_t)1 << 40, UST_ENV_SOCKET_ANY));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ust_ring_create(UST_RING_MP_MC, 16, 9));
	assert_int_equal(errno, EINVAL);
}

static void test_ring_power_of_two_capacity(void **state)
{
	struct ust_ring *ring = ust_ring_create(UST_RING_MP_MC, 1024, 0);
	void *objs[2048];
	size_t i;

	assert_non_null(ring);
	for (i = 0; i < 2048; i++)
		objs[i] = &objs[i];
	assert_int_equal(ust_ring_enqueue(ring, objs, 2048), 1024);
	assert_int_equal(ust_ring_count(ring), 1024);
	assert_int_equal(ust_ring_dequeue(ring, objs + 1024, 2048 - 1024), 1024);
	for (i = 0; i < 1024; i++)
		assert_ptr_equal(objs[1024 + i], &objs[i]);
	ust_ring_free(ring);
}

/* ---- multi-threaded stress --------------------------------------------------- */

#define STRESS_PRODUCERS 4
#define STRESS_ITEMS 50000
#define STRESS_CONSUMERS 2

struct stress {
	struct ust_ring *ring;
	unsigned int producer;
	unsigned int done_producers; /* atomic */
	unsigned char *seen;         /* atomic bytes, one per item */
	unsigned int out_of_order;   /* atomic */
};

/* Items encode producer and sequence; + 1 so no item is NULL. */
static void *stress_item(unsigned int producer, unsigned int seq)
{
	return (void *)(uintptr_t)((size_t)producer * STRESS_ITEMS + seq + 1);
}

struct producer_arg {
	struct stress *st;
	unsigned int id;
};

static void *stress_produce(void *arg)
{
	struct producer_arg *pa = arg;
	unsigned int seq = 0;

	while (seq < STRESS_ITEMS) {
		void *batch[7];
		unsigned int n = 0, sent;

		while (n < 7 && seq + n < STRESS_ITEMS) {
			batch[n] = stress_item(pa->id, seq + n);
			n++;
		}
		sent = (unsigned int)ust_ring_enqueue(pa->st->ring, batch, n);
		seq += sent;
		if (sent == 0)
			sched_yield();
	}
	__atomic_add_fetch(&pa->st->done_producers, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Drains until every producer is done and the ring is empty. */
static void *stress_consume(void *arg)
{
	struct stress *st = arg;
	unsigned int last[STRESS_PRODUCERS];
	unsigned int i;

	for (i = 0; i < STRESS_PRODUCERS; i++)
		last[i] = UINT32_MAX;
	for (;;) {
		void *batch[16];
		unsigned int done = __atomic_load_n(&st->done_producers, __ATOMIC_ACQUIRE);
		size_t n = ust_ring_dequeue(st->ring, batch, 16);

		for (i = 0; i < n; i++) {
			size_t v = (uintptr_t)batch[i] - 1;
			unsigned int p = (unsigned int)(v / STRESS_ITEMS);
			unsigned int seq = (unsigned int)(v % STRESS_ITEMS);

			__atomic_add_fetch(&st->seen[v], 1, __ATOMIC_RELAXED);
			/* Each consumer must see one producer's items in order. */
			if (last[p] != UINT32_MAX && seq <= last[p])
				__atomic_add_fetch(&st->out_of_order, 1, __ATOMIC_RELAXED);
			last[p] = seq;
		}
		if (n == 0 && done == STRESS_PRODUCERS)
			break;
		if (n == 0)
			sched_yield();
	}
	return NULL;
}

static void run_stress(enum ust_ring_type type, unsigned int consumers)
{
	struct stress st = {0};
	struct producer_arg pargs[STRESS_PRODUCERS];
	pthread_t prod[STRESS_PRODUCERS], cons[STRESS_CONSUMERS];
	size_t total = (size_t)STRESS_PRODUCERS * STRESS_ITEMS, i;

	st.ring = ust_ring_create(type, 64, UST_ENV_SOCKET_ANY);
	assert_non_null(st.ring);
	st.seen = calloc(total, 1);
	assert_non_null(st.seen);

	for (i = 0; i < consumers; i++)
		assert_int_equal(pthread_create(&cons[i], NULL, stress_consume, &st), 0);
	for (i = 0; i < STRESS_PRODUCERS; i++) {
		pargs[i].st = &st;
		pargs[i].id = (unsigned int)i;
		assert_int_equal(pthread_create(&prod[i], NULL, stress_produce, &pargs[i]), 0);
	}
	for (i = 0; i < STRESS_PRODUCERS; i++)
		pthread_join(prod[i], NULL);
	for (i = 0; i < consumers; i++)
		pthread_join(cons[i], NULL);

	for (i = 0; i < total; i++) {
		if (st.seen[i] != 1)
			fail_msg("item %zu seen %u times", i, st.seen[i]);
	}
	assert_int_equal(st.out_of_order, 0);
	assert_int_equal(ust_ring_count(st.ring), 0);
	free(st.seen);
	ust_ring_free(st.ring);
}

static void test_ring_mp_sc_stress(void **state)
{
	run_stress(UST_RING_MP_SC, 1);
}

static void test_ring_mp_mc_stress(void **state)
{
	run_stress(UST_RING_MP_MC, STRESS_CONSUMERS);
}

/* ---- cores and time ------------------------------------------------------------ */

static void *current_core_thread(void *arg)
{
	*(uint32_t *)arg = ust_env_get_current_core();
	return NULL;
}

static int never_run(void *arg)
{
	return 0;
}

static void test_cores(void **state)
{
	pthread_t t;
	uint32_t other = 0;

	assert_int_equal(ust_env_get_core_count(), 1);
	assert_int_equal(ust_env_get_first_core(), 0);
	assert_int_equal(ust_env_get_next_core(0), UINT32_MAX);
	assert_int_equal(ust_env_get_main_core(), 0);
	assert_int_equal(ust_env_get_current_core(), 0);
	assert_int_equal(ust_env_get_socket_id(0), 0);
	assert_int_equal(ust_env_get_socket_id(1), -EINVAL);

	assert_int_equal(pthread_create(&t, NULL, current_core_thread, &other), 0);
	pthread_join(t, NULL);
	assert_int_equal(other, UINT32_MAX);

	assert_int_equal(ust_env_launch_on_core(1, never_run, NULL), -ENOTSUP);
	assert_int_equal(ust_env_launch_on_core(0, NULL, NULL), -EINVAL);
	ust_env_wait_all_cores();
}

static void test_ticks_running(void **state)
{
	uint64_t a, b;

	assert_int_equal(ust_get_ticks_hz(), 1000000000ULL);
	a = ust_get_ticks();
	ust_delay_us(2000);
	b = ust_get_ticks();
	assert_true(b - a >= 2000000);
	/* Generous upper bound: a loaded CI machine may oversleep. */
	assert_true(b - a < 2000000000ULL);
}

static void test_ticks_hooks(void **state)
{
	uint64_t t;

	ust_env_test_set_ticks(1000);
	assert_int_equal(ust_get_ticks(), 1000);
	assert_int_equal(ust_get_ticks(), 1000);
	ust_env_test_advance_ticks(500);
	assert_int_equal(ust_get_ticks(), 1500);
	/* A delay under a frozen clock moves it by exactly the delay. */
	ust_delay_us(3);
	assert_int_equal(ust_get_ticks(), 4500);
	ust_delay_us(1000000);
	assert_int_equal(ust_get_ticks(), 1000004500ULL);

	ust_env_test_unfreeze_ticks();
	t = ust_get_ticks();
	assert_true(t >= 1000004500ULL);
	/* Continues from the frozen value, not from the real clock. */
	assert_true(t < 1000004500ULL + 1000000000ULL);

	ust_env_test_advance_ticks(5000000000ULL);
	assert_true(ust_get_ticks() >= t + 5000000000ULL);

	/* Leave the clock frozen at a fresh value, then running again. */
	ust_env_test_set_ticks(7);
	assert_int_equal(ust_get_ticks(), 7);
	ust_env_test_unfreeze_ticks();
	assert_true(ust_get_ticks() >= 7);
}

/* Every length, and one set byte at every place (first, last, middle): found. */
static void test_mem_is_zero(void **state)
{
	uint8_t buf[4097 + 1];
	size_t len, at;

	(void)state;
	memset(buf, 0, sizeof(buf));
	buf[4097] = 0xff; /* past every length checked: must never be looked at */
	assert_true(ust_mem_is_zero(buf, 0));
	assert_true(ust_mem_is_zero(NULL, 0));
	for (len = 1; len <= 4097; len += (len < 70 ? 1 : 509)) {
		assert_true(ust_mem_is_zero(buf, len));
		for (at = 0; at < len; at += (at < 40 || at + 40 > len ? 1 : 97)) {
			buf[at] = (uint8_t)(1u << (at % 8));
			assert_false(ust_mem_is_zero(buf, len));
			buf[at] = 0;
		}
	}
	assert_true(ust_mem_is_zero(buf, 4097));
}

/* Slices of three entries (10, 20, 30 bytes), into another array and in place. */
static void test_iov_slice(void **state)
{
	static uint8_t a[10], b[20], c[30];
	const struct iovec src[3] = {{a, 10}, {b, 20}, {c, 30}};
	struct iovec dst[3], in[3];
	int n;

	(void)state;
	n = ust_iov_slice(dst, src, 3, 0, 60);
	assert_int_equal(n, 3);
	assert_memory_equal(dst, src, sizeof(src));
	/* starts inside b, ends inside c */
	n = ust_iov_slice(dst, src, 3, 15, 30);
	assert_int_equal(n, 2);
	assert_ptr_equal(dst[0].iov_base, b + 5);
	assert_int_equal(dst[0].iov_len, 15);
	assert_ptr_equal(dst[1].iov_base, c);
	assert_int_equal(dst[1].iov_len, 15);
	/* wholly inside one entry; nothing; past the end */
	n = ust_iov_slice(dst, src, 3, 12, 3);
	assert_int_equal(n, 1);
	assert_ptr_equal(dst[0].iov_base, b + 2);
	assert_int_equal(dst[0].iov_len, 3);
	assert_int_equal(ust_iov_slice(dst, src, 3, 7, 0), 0);
	assert_int_equal(ust_iov_slice(dst, src, 3, 60, 5), 0);
	n = ust_iov_slice(dst, src, 3, 55, 100);
	assert_int_equal(n, 1);
	assert_ptr_equal(dst[0].iov_base, c + 25);
	assert_int_equal(dst[0].iov_len, 5);
	/* in place: the same answer as into another array */
	memcpy(in, src, sizeof(src));
	n = ust_iov_slice(in, in, 3, 9, 22);
	assert_int_equal(n, 3);
	assert_ptr_equal(in[0].iov_base, a + 9);
	assert_int_equal(in[0].iov_len, 1);
	assert_ptr_equal(in[1].iov_base, b);
	assert_int_equal(in[1].iov_len, 20);
	assert_ptr_equal(in[2].iov_base, c);
	assert_int_equal(in[2].iov_len, 1);
	memcpy(in, src, sizeof(src));
	n = ust_iov_slice(in, in, 3, 35, 25);
	assert_int_equal(n, 1);
	assert_ptr_equal(in[0].iov_base, c + 5);
	assert_int_equal(in[0].iov_len, 25);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_fini),
		cmocka_unit_test(test_dma_alignment),
		cmocka_unit_test(test_dma_zmalloc),
		cmocka_unit_test(test_mem_is_zero),
		cmocka_unit_test(test_iov_slice),
		cmocka_unit_test(test_vtophys),
		cmocka_unit_test(test_mempool_exhaustion),
		cmocka_unit_test(test_mempool_bulk_all_or_nothing),
		cmocka_unit_test(test_mempool_bad_args),
		cmocka_unit_test(test_mempool_misuse_aborts),
		cmocka_unit_test(test_ring_semantics),
		cmocka_unit_test(test_ring_bad_args),
		cmocka_unit_test(test_ring_power_of_two_capacity),
		cmocka_unit_test(test_ring_mp_sc_stress),
		cmocka_unit_test(test_ring_mp_mc_stress),
		cmocka_unit_test(test_cores),
		cmocka_unit_test(test_ticks_running),
		cmocka_unit_test(test_ticks_hooks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
