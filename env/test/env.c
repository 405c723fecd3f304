/*
 * Test environment: process set-up, cores and the tick clock, without EAL.
 *
 * Unit tests link this instead of env/dpdk. It guarantees one core (core 0,
 * socket 0) which the process's main OS thread is on, a nanosecond tick clock
 * that tests can freeze and move (env_test.h), and that every call works
 * whether or not ust_env_init() was called, so a test of one component does
 * not have to set up the environment first.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "env_test.h"
#include "ustor/env.h"

#define NSEC_PER_SEC 1000000000ULL
#define NSEC_PER_USEC 1000ULL
#define PREFIX_MAX 64

static pthread_mutex_t g_env_lock = PTHREAD_MUTEX_INITIALIZER;
static bool g_env_initialized;
static char g_file_prefix[PREFIX_MAX];

/*
 * The clock is either running (monotonic time + offset) or frozen at a
 * value. Unsigned arithmetic wraps, so a negative offset needs no sign.
 */
static pthread_mutex_t g_clock_lock = PTHREAD_MUTEX_INITIALIZER;
static bool g_clock_frozen;
static uint64_t g_clock_frozen_value;
static uint64_t g_clock_offset;

void ust_env_opts_init(struct ust_env_opts *opts)
{
	if (opts == NULL)
		return;
	memset(opts, 0, sizeof(*opts));
	opts->name = "ustor";
	opts->main_core = -1;
}

static void set_default_prefix_locked(void)
{
	if (g_file_prefix[0] == '\0')
		snprintf(g_file_prefix, sizeof(g_file_prefix), "ustor_%d", (int)getpid());
}

/* The test env has only core 0, so only masks naming exactly that core fit. */
static bool mask_is_core0(const char *mask)
{
	return mask == NULL || strcmp(mask, "0x1") == 0 || strcmp(mask, "0X1") == 0 ||
	       strcmp(mask, "1") == 0 || strcmp(mask, "[0]") == 0;
}

int ust_env_init(const struct ust_env_opts *opts)
{
	int rc = 0;

	pthread_mutex_lock(&g_env_lock);
	if (g_env_initialized) {
		rc = -EALREADY;
		goto out;
	}
	/* Quietly running one core when a test asked for more would hide bugs. */
	if (opts != NULL && !mask_is_core0(opts->core_mask)) {
		fprintf(stderr, "ust_env_init: the test env has only core 0, not '%s'\n",
			opts->core_mask);
		rc = -ENOTSUP;
		goto out;
	}
	if (opts != NULL && (opts->main_core > 0 || opts->mem_size_mb < 0)) {
		rc = -EINVAL;
		goto out;
	}
	if (opts != NULL && opts->file_prefix != NULL) {
		if (opts->file_prefix[0] == '\0' || strlen(opts->file_prefix) >= PREFIX_MAX) {
			rc = -EINVAL;
			goto out;
		}
		snprintf(g_file_prefix, sizeof(g_file_prefix), "%s", opts->file_prefix);
	} else {
		g_file_prefix[0] = '\0';
		set_default_prefix_locked();
	}
	g_env_initialized = true;
out:
	pthread_mutex_unlock(&g_env_lock);
	return rc;
}

void ust_env_fini(void)
{
	pthread_mutex_lock(&g_env_lock);
	g_env_initialized = false;
	pthread_mutex_unlock(&g_env_lock);
}

/* There are no hugepages here: memory is malloc'd and IOVA = VA. */
bool ust_env_no_huge(void)
{
	return true;
}

const char *ust_env_get_file_prefix(void)
{
	const char *prefix;

	pthread_mutex_lock(&g_env_lock);
	set_default_prefix_locked();
	prefix = g_file_prefix;
	pthread_mutex_unlock(&g_env_lock);
	return prefix;
}

/* ---- cores ---------------------------------------------------------------- */

uint32_t ust_env_get_core_count(void)
{
	return 1;
}

uint32_t ust_env_get_first_core(void)
{
	return 0;
}

uint32_t ust_env_get_next_core(uint32_t prev)
{
	(void)prev;
	return UINT32_MAX;
}

uint32_t ust_env_get_main_core(void)
{
	return 0;
}

/* Only the main OS thread counts as pinned; other pthreads are on no core. */
uint32_t ust_env_get_current_core(void)
{
	return gettid() == getpid() ? 0 : UINT32_MAX;
}

int ust_env_get_socket_id(uint32_t core)
{
	return core == 0 ? 0 : -EINVAL;
}

int ust_env_launch_on_core(uint32_t core, int (*fn)(void *arg), void *arg)
{
	(void)core;
	(void)arg;
	if (fn == NULL)
		return -EINVAL;
	return -ENOTSUP;
}

void ust_env_wait_all_cores(void)
{
}

/* ---- time ----------------------------------------------------------------- */

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t ust_get_ticks(void)
{
	uint64_t ticks;

	pthread_mutex_lock(&g_clock_lock);
	if (g_clock_frozen)
		ticks = g_clock_frozen_value;
	else
		ticks = monotonic_ns() + g_clock_offset;
	pthread_mutex_unlock(&g_clock_lock);
	return ticks;
}

uint64_t ust_get_ticks_hz(void)
{
	return NSEC_PER_SEC;
}

/* A frozen clock moves by the delay at once, so tests never really wait. */
void ust_delay_us(unsigned int us)
{
	struct timespec ts;
	bool frozen;

	pthread_mutex_lock(&g_clock_lock);
	frozen = g_clock_frozen;
	if (frozen)
		g_clock_frozen_value += (uint64_t)us * NSEC_PER_USEC;
	pthread_mutex_unlock(&g_clock_lock);
	if (frozen)
		return;

	ts.tv_sec = us / 1000000;
	ts.tv_nsec = (long)(us % 1000000) * 1000;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

void ust_env_test_set_ticks(uint64_t ticks)
{
	pthread_mutex_lock(&g_clock_lock);
	g_clock_frozen = true;
	g_clock_frozen_value = ticks;
	pthread_mutex_unlock(&g_clock_lock);
}

void ust_env_test_advance_ticks(uint64_t ticks)
{
	pthread_mutex_lock(&g_clock_lock);
	if (g_clock_frozen)
		g_clock_frozen_value += ticks;
	else
		g_clock_offset += ticks;
	pthread_mutex_unlock(&g_clock_lock);
}

void ust_env_test_unfreeze_ticks(void)
{
	pthread_mutex_lock(&g_clock_lock);
	if (g_clock_frozen) {
		g_clock_offset = g_clock_frozen_value - monotonic_ns();
		g_clock_frozen = false;
	}
	pthread_mutex_unlock(&g_clock_lock);
}
