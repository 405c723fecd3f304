/*
 * Tests of the DPDK environment (env/dpdk) on a real EAL in --no-huge mode:
 * option checking before EAL runs, two processes side by side, DMA memory
 * alignment, vtophys contiguity across a multi-page buffer, mempools with a
 * per-lcore cache, rings (also between two cores), launching on a second
 * core, the clock, and fini. The tests run in order and share one EAL.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ustor/env.h"

#define PAGE 4096

static bool g_two_cores;

static void init_opts(struct ust_env_opts *opts)
{
	ust_env_opts_init(opts);
	opts->name = "env_dpdk_test";
	opts->core_mask = g_two_cores ? "0x3" : "0x1";
	opts->no_huge = true;
	opts->quiet = true;
	opts->mem_size_mb = 256;
}

static void test_before_init(void **state)
{
	char want[64];

	errno = 0;
	assert_null(ust_dma_malloc(64, 0));
	assert_int_equal(errno, ENODEV);
	errno = 0;
	assert_null(ust_mempool_create("early", 16, 64, 0, UST_ENV_SOCKET_ANY));
	assert_int_equal(errno, ENODEV);
	errno = 0;
	assert_null(ust_ring_create(UST_RING_MP_MC, 16, UST_ENV_SOCKET_ANY));
	assert_int_equal(errno, ENODEV);
	assert_int_equal(ust_vtophys(&want, NULL), UST_VTOPHYS_ERROR);
	assert_int_equal(ust_env_get_core_count(), 0);
	assert_int_equal(ust_env_get_first_core(), UINT32_MAX);
	assert_int_equal(ust_env_get_current_core(), UINT32_MAX);
	assert_int_equal(ust_env_launch_on_core(1, NULL, NULL), -EINVAL);
	assert_int_not_equal(ust_get_ticks_hz(), 0);

	snprintf(want, sizeof(want), "ustor_%d", (int)getpid());
	assert_string_equal(ust_env_get_file_prefix(), want);
}

/* Each of these is refused before EAL runs, so EAL can still start later. */
static void test_bad_opts(void **state)
{
	const char *bad_masks[] = {"", "0x", "0x0", "zz", "0x1g", "[", "[]", "[3-1]", "[0-1",
				   "[0,]", "[a]", "[0-999]", "0x" "1000000000000000000000000000000000000000000000000000000000000000000"};
	struct ust_env_opts opts;
	size_t i;

	for (i = 0; i < sizeof(bad_masks) / sizeof(bad_masks[0]); i++) {
		init_opts(&opts);
		opts.core_mask = bad_masks[i];
		if (ust_env_init(&opts) != -EINVAL)
			fail_msg("core mask '%s' was not refused with -EINVAL", bad_masks[i]);
	}
	/* A core this machine or process does not have. */
	init_opts(&opts);
	opts.core_mask = "[200]";
	assert_int_equal(ust_env_init(&opts), -EINVAL);

	init_opts(&opts);
	opts.main_core = 5;
	assert_int_equal(ust_env_init(&opts), -EINVAL);
	init_opts(&opts);
	opts.mem_size_mb = -1;
	assert_int_equal(ust_env_init(&opts), -EINVAL);
	init_opts(&opts);
	opts.file_prefix = "a/b";
	assert_int_equal(ust_env_init(&opts), -EINVAL);
	init_opts(&opts);
	opts.file_prefix = "";
	assert_int_equal(ust_env_init(&opts), -EINVAL);
}

/*
 * A second process with its own EAL at the same time as ours. It does not
 * force --no-huge, so it takes the hugepage fallback path when this machine
 * has none; it exits 1 if it fell back, 0 if it used hugepages.
 */
static void run_peer(int ready_fd, int go_fd, int err_fd)
{
	struct ust_env_opts opts;
	char c = 0;
	void *buf;

	if (dup2(err_fd, STDERR_FILENO) < 0)
		_exit(9);
	ust_env_opts_init(&opts);
	opts.quiet = true;
	opts.mem_size_mb = 64;
	if (ust_env_init(&opts) != 0)
		_exit(10);
	buf = ust_dma_zmalloc(PAGE, PAGE);
	if (buf == NULL)
		_exit(11);
	c = 1;
	if (write(ready_fd, &c, 1) != 1 || read(go_fd, &c, 1) != 1)
		_exit(12);
	ust_dma_free(buf);
	c = ust_env_no_huge();
	ust_env_fini();
	_exit(c);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

/* Where EAL puts a prefix's runtime directory (as root, or per user). */
static void runtime_dir(char *buf, size_t len, int pid)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (getuid() == 0)
		snprintf(buf, len, "/var/run/dpdk/ustor_%d", pid);
	else
		snprintf(buf, len, "%s/dpdk/ustor_%d", xdg != NULL ? xdg : "/tmp", pid);
}

static void test_init_side_by_side(void **state)
{
	int ready[2], go[2], err[2], status;
	char errbuf[4096];
	ssize_t errlen;
	struct ust_env_opts opts;
	char want[PATH_MAX], c;
	struct stat st;
	pid_t pid;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(err), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		run_peer(ready[1], go[0], err[1]);
	close(err[1]);

	init_opts(&opts);
	assert_int_equal(ust_env_init(&opts), 0);
	assert_int_equal(ust_env_init(&opts), -EALREADY);
	assert_true(ust_env_no_huge());
	snprintf(want, sizeof(want), "ustor_%d", (int)getpid());
	assert_string_equal(ust_env_get_file_prefix(), want);

	/* Both EALs are up at once before either goes away. */
	assert_int_equal(read(ready[0], &c, 1), 1);
	c = 1;
	assert_int_equal(write(go[1], &c, 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	errlen = read(err[0], errbuf, sizeof(errbuf) - 1);
	assert_true(errlen >= 0);
	errbuf[errlen] = '\0';
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 1) {
		/* Fell back: exactly one line, saying what happened and what to do. */
		assert_int_equal(count_lines(errbuf), 1);
		assert_non_null(strstr(errbuf, "--no-huge"));
		assert_non_null(strstr(errbuf, "scripts/setup.sh"));
	} else {
		assert_int_equal(WEXITSTATUS(status), 0);
		assert_string_equal(errbuf, "");
	}

	/* Nothing is left in EAL's runtime directory, not even while running. */
	runtime_dir(want, sizeof(want), (int)pid);
	assert_int_not_equal(stat(want, &st), 0);
	runtime_dir(want, sizeof(want), (int)getpid());
	assert_int_not_equal(stat(want, &st), 0);
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
	close(err[0]);
}

static void test_dma_alignment(void **state)
{
	size_t aligns[] = {0, 8, 64, 4096, 65536, 2 * 1024 * 1024};
	size_t i;

	for (i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
		size_t want = aligns[i] == 0 ? 64 : aligns[i];
		unsigned char *buf = ust_dma_malloc(10000, aligns[i]);

		assert_non_null(buf);
		assert_int_equal((uintptr_t)buf % want, 0);
		memset(buf, 0x5a, 10000);
		ust_dma_free(buf);
	}
	errno = 0;
	assert_null(ust_dma_malloc(100, 48));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ust_dma_malloc(0, 0));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ust_dma_malloc((size_t)1 << 40, 0));
	assert_int_equal(errno, ENOMEM);
	ust_dma_free(NULL);
}

static void test_dma_zmalloc(void **state)
{
	unsigned char *buf = ust_dma_malloc(65536, PAGE);
	size_t i;

	assert_non_null(buf);
	memset(buf, 0xff, 65536);
	ust_dma_free(buf);
	buf = ust_dma_zmalloc(65536, PAGE);
	assert_non_null(buf);
	for (i = 0; i < 65536; i++)
		assert_int_equal(buf[i], 0);
	ust_dma_free(buf);
}

static void test_vtophys(void **state)
{
	const size_t len = 64 * PAGE;
	char *buf = ust_dma_malloc(len, PAGE);
	uint64_t base, size, off;
	char *heap;

	assert_non_null(buf);
	size = len;
	base = ust_vtophys(buf, &size);
	assert_int_not_equal(base, UST_VTOPHYS_ERROR);
	/* --no-huge runs with IOVA = VA. */
	assert_int_equal(base, (uint64_t)(uintptr_t)buf);
	assert_int_equal(size, len);

	/* Every byte position agrees with the base, across page boundaries. */
	for (off = 0; off < len; off += PAGE / 2 + 1) {
		size = len - off;
		assert_int_equal(ust_vtophys(buf + off, &size), base + off);
		assert_int_equal(size, len - off);
	}
	/* Never more than asked for. */
	size = 10;
	assert_int_equal(ust_vtophys(buf + PAGE - 5, &size), base + PAGE - 5);
	assert_int_equal(size, 10);
	size = 0;
	assert_int_equal(ust_vtophys(buf, &size), base);
	assert_int_equal(size, 0);
	/* Asking far past the end stops where EAL's memory stops. */
	size = (uint64_t)1 << 45;
	assert_int_equal(ust_vtophys(buf, &size), base);
	assert_true(size >= len);
	assert_true(size < (uint64_t)1 << 45);

	/* Not DMA memory. */
	heap = malloc(100);
	assert_non_null(heap);
	size = 100;
	assert_int_equal(ust_vtophys(heap, &size), UST_VTOPHYS_ERROR);
	assert_int_equal(ust_vtophys(&size, NULL), UST_VTOPHYS_ERROR);
	assert_int_equal(ust_vtophys(NULL, NULL), UST_VTOPHYS_ERROR);
	free(heap);
	ust_dma_free(buf);
}

static void test_mempool(void **state)
{
	struct ust_mempool *mp = ust_mempool_create("env_dpdk_test_pool_with_a_long_name", 1023,
						     200, 32, UST_ENV_SOCKET_ANY);
	struct ust_mempool *same_name = ust_mempool_create("env_dpdk_test_pool_with_a_long_name",
							   16, 64, 0, 0);
	void **objs = calloc(1024, sizeof(void *));
	size_t i;

	assert_non_null(mp);
	assert_non_null(same_name);
	assert_non_null(objs);
	assert_int_equal(ust_mempool_count(mp), 1023);

	for (i = 0; i < 1023; i++) {
		uint64_t size = 200;

		objs[i] = ust_mempool_get(mp);
		assert_non_null(objs[i]);
		assert_int_equal((uintptr_t)objs[i] % 64, 0);
		assert_int_not_equal(ust_vtophys(objs[i], &size), UST_VTOPHYS_ERROR);
		assert_int_equal(size, 200);
		memset(objs[i], (int)i, 200);
	}
	assert_null(ust_mempool_get(mp));
	assert_int_equal(ust_mempool_count(mp), 0);
	for (i = 0; i < 1023; i++)
		assert_int_equal(((unsigned char *)objs[i])[199], (unsigned char)i);
	ust_mempool_put_bulk(mp, objs, 1023);
	assert_int_equal(ust_mempool_count(mp), 1023);

	/* All or nothing. */
	assert_int_equal(ust_mempool_get_bulk(mp, objs, 1024), -ENOMEM);
	assert_int_equal(ust_mempool_count(mp), 1023);
	assert_int_equal(ust_mempool_get_bulk(mp, objs, 1000), 0);
	assert_int_equal(ust_mempool_count(mp), 23);
	assert_int_equal(ust_mempool_get_bulk(mp, objs + 1000, 24), -ENOMEM);
	assert_int_equal(ust_mempool_count(mp), 23);
	assert_int_equal(ust_mempool_get_bulk(mp, objs + 1000, 23), 0);
	assert_int_equal(ust_mempool_count(mp), 0);
	for (i = 0; i < 1023; i++)
		ust_mempool_put(mp, objs[i]);
	assert_int_equal(ust_mempool_count(mp), 1023);
	assert_int_equal(ust_mempool_get_bulk(mp, NULL, 1), -EINVAL);

	errno = 0;
	assert_null(ust_mempool_create("x", 8, 64, 6, UST_ENV_SOCKET_ANY));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ust_mempool_create("x", 0, 64, 0, UST_ENV_SOCKET_ANY));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ust_mempool_create("x", 8, 64, 0, 77));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ust_mempool_create("0123456789012345678901234567890123456789012345678901234567890123",
				       8, 64, 0, UST_ENV_SOCKET_ANY));
	assert_int_equal(errno, ENAMETOOLONG);

	free(objs);
	ust_mempool_free(same_name);
	ust_mempool_free(mp);
}

static void test_ring(void **state)
{
	struct ust_ring *ring = ust_ring_create(UST_RING_MP_MC, 5, 0);
	void *in[10], *out[10];
	size_t i;

	assert_non_null(ring);
	for (i = 0; i < 10; i++)
		in[i] = (void *)(uintptr_t)(i + 1);
	assert_int_equal(ust_ring_enqueue(ring, in, 10), 5);
	assert_int_equal(ust_ring_count(ring), 5);
	assert_int_equal(ust_ring_dequeue(ring, out, 3), 3);
	assert_int_equal(ust_ring_enqueue(ring, in + 5, 5), 3);
	assert_int_equal(ust_ring_dequeue(ring, out + 3, 10), 5);
	for (i = 0; i < 8; i++)
		assert_ptr_equal(out[i], in[i]);
	ust_ring_free(ring);

	errno = 0;
	assert_null(ust_ring_create(UST_RING_SP_SC, 0, UST_ENV_SOCKET_ANY));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ust_ring_create((enum ust_ring_type)9, 8, UST_ENV_SOCKET_ANY));
	assert_int_equal(errno, EINVAL);
}

/* ---- cores --------------------------------------------------------------------- */

static void *current_core_thread(void *arg)
{
	*(uint32_t *)arg = ust_env_get_current_core();
	return NULL;
}

static void test_cores(void **state)
{
	uint32_t other = 0;
	pthread_t t;

	assert_int_equal(ust_env_get_core_count(), g_two_cores ? 2 : 1);
	assert_int_equal(ust_env_get_first_core(), 0);
	assert_int_equal(ust_env_get_next_core(0), g_two_cores ? 1 : UINT32_MAX);
	if (g_two_cores)
		assert_int_equal(ust_env_get_next_core(1), UINT32_MAX);
	assert_int_equal(ust_env_get_next_core(UINT32_MAX), UINT32_MAX);
	assert_int_equal(ust_env_get_main_core(), 0);
	assert_int_equal(ust_env_get_current_core(), 0);
	assert_true(ust_env_get_socket_id(0) >= 0);
	assert_int_equal(ust_env_get_socket_id(100), -EINVAL);

	assert_int_equal(pthread_create(&t, NULL, current_core_thread, &other), 0);
	pthread_join(t, NULL);
	assert_int_equal(other, UINT32_MAX);
}

#define CROSS_ITEMS 200000

struct cross {
	struct ust_ring *ring;
	uint32_t core_seen;
	volatile int release;
};

static int produce_on_core(void *arg)
{
	struct cross *c = arg;
	uintptr_t next = 1;

	c->core_seen = ust_env_get_current_core();
	while (next <= CROSS_ITEMS) {
		void *obj = (void *)next;

		if (ust_ring_enqueue(c->ring, &obj, 1) == 1)
			next++;
	}
	return 0;
}

static int wait_for_release(void *arg)
{
	struct cross *c = arg;

	while (!__atomic_load_n(&c->release, __ATOMIC_ACQUIRE))
		sched_yield();
	return 0;
}

static int never_run(void *arg)
{
	return 0;
}

static void test_launch_on_second_core(void **state)
{
	struct cross c = {0};
	uintptr_t want = 1;

	if (!g_two_cores) {
		/* Only the launch refusals can be checked on a one-core machine. */
		assert_int_equal(ust_env_launch_on_core(0, never_run, NULL), -EINVAL);
		return;
	}
	assert_int_equal(ust_env_launch_on_core(0, never_run, NULL), -EINVAL);
	assert_int_equal(ust_env_launch_on_core(7, never_run, NULL), -EINVAL);
	assert_int_equal(ust_env_launch_on_core(1, NULL, NULL), -EINVAL);

	c.ring = ust_ring_create(UST_RING_SP_SC, 256, ust_env_get_socket_id(1));
	assert_non_null(c.ring);
	assert_int_equal(ust_env_launch_on_core(1, produce_on_core, &c), 0);
	while (want <= CROSS_ITEMS) {
		void *objs[32];
		size_t n = ust_ring_dequeue(c.ring, objs, 32), i;

		for (i = 0; i < n; i++) {
			if ((uintptr_t)objs[i] != want)
				fail_msg("got item %zu, expected %zu", (size_t)(uintptr_t)objs[i],
					 (size_t)want);
			want++;
		}
	}
	ust_env_wait_all_cores();
	assert_int_equal(c.core_seen, 1);
	assert_int_equal(ust_ring_count(c.ring), 0);

	/* A core still running a function refuses another. */
	assert_int_equal(ust_env_launch_on_core(1, wait_for_release, &c), 0);
	assert_int_equal(ust_env_launch_on_core(1, never_run, NULL), -EBUSY);
	__atomic_store_n(&c.release, 1, __ATOMIC_RELEASE);
	ust_env_wait_all_cores();
	ust_ring_free(c.ring);
}

static void test_ticks(void **state)
{
	uint64_t hz = ust_get_ticks_hz(), a, b;

	assert_true(hz >= 1000000);
	a = ust_get_ticks();
	ust_delay_us(5000);
	b = ust_get_ticks();
	assert_true(b - a >= hz / 200);
	assert_true(b - a < hz * 2);
}

static void test_fini(void **state)
{
	struct ust_env_opts opts;
	char dir[PATH_MAX];
	struct stat st;

	ust_env_fini();
	runtime_dir(dir, sizeof(dir), (int)getpid());
	assert_int_not_equal(stat(dir, &st), 0);
	errno = 0;
	assert_null(ust_dma_malloc(64, 0));
	assert_int_equal(errno, ENODEV);
	assert_int_equal(ust_env_get_core_count(), 0);
	ust_env_fini();
	/* DPDK allows one EAL per process. */
	init_opts(&opts);
	assert_int_equal(ust_env_init(&opts), -EALREADY);
}

static bool have_two_cores(void)
{
	cpu_set_t set;

	return sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_ISSET(0, &set) &&
	       CPU_ISSET(1, &set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_before_init),
		cmocka_unit_test(test_bad_opts),
		cmocka_unit_test(test_init_side_by_side),
		cmocka_unit_test(test_dma_alignment),
		cmocka_unit_test(test_dma_zmalloc),
		cmocka_unit_test(test_vtophys),
		cmocka_unit_test(test_mempool),
		cmocka_unit_test(test_ring),
		cmocka_unit_test(test_cores),
		cmocka_unit_test(test_launch_on_second_core),
		cmocka_unit_test(test_ticks),
		cmocka_unit_test(test_fini),
	};

	g_two_cores = have_two_cores();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
