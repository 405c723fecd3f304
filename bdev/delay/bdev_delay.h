/*
 * Delay bdevs (module "delay"): C API behind bdev_delay_create,
 * bdev_delay_delete and bdev_delay_update_latency. Latencies are in
 * microseconds. Control path: call on the app thread.
 */
#ifndef USTOR_BDEV_DELAY_H
#define USTOR_BDEV_DELAY_H

#include <stdint.h>

#include "ustor/bdev_module.h"

enum ust_bdev_delay_latency {
	UST_BDEV_DELAY_AVG_READ = 0,
	UST_BDEV_DELAY_P99_READ,
	UST_BDEV_DELAY_AVG_WRITE,
	UST_BDEV_DELAY_P99_WRITE,
	UST_BDEV_DELAY_NUM_LATENCIES
};

struct ust_bdev_delay_opts {
	const char *base_bdev_name;
	const char *name;
	uint64_t latency_us[UST_BDEV_DELAY_NUM_LATENCIES];
	struct ust_uuid uuid; /* all zero: generated */
};

/*
 * Remember "name, delaying base_bdev_name" and build it now if the base
 * exists, or when it is registered. -EINVAL bad names or an average above
 * its p99, -EEXIST, -EPERM base claimed, -ENOMEM.
 */
int ust_bdev_delay_create(const struct ust_bdev_delay_opts *opts);
/* Forget and unregister. -ENODEV unknown name. */
int ust_bdev_delay_delete(const char *name, void (*cb)(void *ctx, int rc), void *ctx);
/*
 * Change one latency for I/O submitted from now on. -ENODEV unknown bdev,
 * -EINVAL an average above its p99 (or a p99 below its average).
 */
int ust_bdev_delay_update_latency(const char *name, enum ust_bdev_delay_latency type,
				  uint64_t latency_us);

#endif
