/*
 * DPDK environment: cores (EAL lcores) and time.
 *
 * Cores are the lcores of the mask given to ust_env_init(); lcore id equals
 * the CPU number. Before init (or after fini) there are no cores: counts are
 * 0, iteration ends at once and launching fails with -ENODEV, instead of
 * reading EAL state that does not exist. Time is the TSC via EAL's timer
 * once EAL has calibrated it, CLOCK_MONOTONIC nanoseconds before that.
 */
#include <errno.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_launch.h>
#include <rte_lcore.h>

#include "env_internal.h"
#include "ustor/env.h"

#define NSEC_PER_SEC 1000000000ULL

static bool core_in_mask(uint32_t core)
{
	return ust_env_dpdk_running() && core < RTE_MAX_LCORE && rte_lcore_is_enabled(core);
}

uint32_t ust_env_get_core_count(void)
{
	return ust_env_dpdk_running() ? rte_lcore_count() : 0;
}

/* Iteration over enabled lcores, main included; RTE_MAX_LCORE marks the end. */
static uint32_t next_lcore_after(int prev)
{
	unsigned int next;

	if (!ust_env_dpdk_running())
		return UINT32_MAX;
	next = rte_get_next_lcore((unsigned int)prev, 0, 0);
	return next >= RTE_MAX_LCORE ? UINT32_MAX : next;
}

uint32_t ust_env_get_first_core(void)
{
	return next_lcore_after(-1);
}

uint32_t ust_env_get_next_core(uint32_t prev)
{
	if (prev >= RTE_MAX_LCORE)
		return UINT32_MAX;
	return next_lcore_after((int)prev);
}

uint32_t ust_env_get_main_core(void)
{
	return ust_env_dpdk_running() ? rte_get_main_lcore() : UINT32_MAX;
}

/* EAL threads know their lcore; any other thread reads LCORE_ID_ANY. */
uint32_t ust_env_get_current_core(void)
{
	unsigned int id;

	if (!ust_env_dpdk_running())
		return UINT32_MAX;
	id = rte_lcore_id();
	return id == LCORE_ID_ANY ? UINT32_MAX : id;
}

int ust_env_get_socket_id(uint32_t core)
{
	if (!core_in_mask(core))
		return -EINVAL;
	return (int)rte_lcore_to_socket_id(core);
}

int ust_env_launch_on_core(uint32_t core, int (*fn)(void *arg), void *arg)
{
	if (fn == NULL)
		return -EINVAL;
	if (!ust_env_dpdk_running())
		return -ENODEV;
	if (!core_in_mask(core) || core == rte_get_main_lcore())
		return -EINVAL;
	/* -EBUSY when the core still runs an earlier function. */
	return rte_eal_remote_launch(fn, arg, core);
}

void ust_env_wait_all_cores(void)
{
	if (ust_env_dpdk_running())
		rte_eal_mp_wait_lcore();
}

bool ust_env_dpdk_socket_valid(int socket_id)
{
	unsigned int i;

	if (socket_id == UST_ENV_SOCKET_ANY)
		return true;
	for (i = 0; i < rte_socket_count(); i++) {
		if (rte_socket_id_by_idx(i) == socket_id)
			return true;
	}
	return false;
}

/* ---- time ------------------------------------------------------------------- */

/*
 * EAL measures the TSC frequency in rte_eal_init(). Until then the clock is
 * CLOCK_MONOTONIC in nanoseconds, so a caller never divides by a zero hz.
 */
static bool tsc_calibrated(void)
{
	return rte_get_timer_hz() != 0;
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t ust_get_ticks(void)
{
	return tsc_calibrated() ? rte_get_timer_cycles() : monotonic_ns();
}

uint64_t ust_get_ticks_hz(void)
{
	return tsc_calibrated() ? rte_get_timer_hz() : NSEC_PER_SEC;
}

void ust_delay_us(unsigned int us)
{
	struct timespec ts;

	if (tsc_calibrated()) {
		rte_delay_us_block(us);
		return;
	}
	ts.tv_sec = us / 1000000;
	ts.tv_nsec = (long)(us % 1000000) * 1000;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}
