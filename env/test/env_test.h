/*
 * Test hooks of the plain-malloc test environment (env/test).
 *
 * Unit tests include this as "env_test.h" to control the tick clock. By
 * default ust_get_ticks() follows CLOCK_MONOTONIC in nanoseconds
 * (ust_get_ticks_hz() == 1e9). Freezing the clock makes timer and poller
 * tests deterministic: time then moves only through these hooks and through
 * ust_delay_us(), which advances a frozen clock instead of sleeping.
 *
 * The test environment also checks mempool use: putting an object that does
 * not belong to the pool, or putting it twice, aborts with a message naming
 * the pool, because either one is a bug that the DPDK environment would turn
 * into silent corruption.
 */
#ifndef USTOR_ENV_TEST_H
#define USTOR_ENV_TEST_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Freeze the clock: ust_get_ticks() returns ticks until changed. */
void ust_env_test_set_ticks(uint64_t ticks);
/*
 * Move the clock forward by ticks. Works frozen or not: an unfrozen clock
 * keeps running from its new position.
 */
void ust_env_test_advance_ticks(uint64_t ticks);
/* Let the clock run again, continuing from the frozen value (no jump back). */
void ust_env_test_unfreeze_ticks(void);

/*
 * Fake PCI functions (env/test/pci.c) for drivers' unit tests: a device at
 * addr with identity id whose BAR 0 is the test's memory bar0 of size bytes
 * (a model of the device's registers that the test drives). It appears in
 * ust_pci_enumerate() as bound to "vfio-pci". -EEXIST if addr is taken,
 * -ENOSPC when 16 are registered. Remove it when the test ends.
 */
struct ust_pci_addr;
struct ust_pci_id;
int ust_env_test_pci_add(const struct ust_pci_addr *addr, const struct ust_pci_id *id, void *bar0,
			 uint64_t size);
void ust_env_test_pci_remove(const struct ust_pci_addr *addr);

#ifdef __cplusplus
}
#endif

#endif
