/*
 * Split bdevs (module "split"): C API behind bdev_split_create and
 * bdev_split_delete. Control path: call on the app thread.
 */
#ifndef USTOR_BDEV_SPLIT_H
#define USTOR_BDEV_SPLIT_H

#include <stdint.h>

#include "ustor/bdev_module.h"

/*
 * Remember "split base_name into split_count parts" (each split_size_mb MiB,
 * or 0: base size / split_count) and split it now if the base exists, or as
 * soon as it is registered. The parts are named <base_name>p0, p1, ...
 * -EINVAL bad count/size or parts do not fit, -EEXIST base already
 * configured, -EPERM base claimed by another module, -ENOMEM.
 */
int ust_bdev_split_create(const char *base_name, uint32_t split_count, uint64_t split_size_mb);
/*
 * Forget the configuration and unregister every part; cb(ctx, rc) once all
 * are gone (at once if the base did not exist). -ENODEV: not configured.
 */
int ust_bdev_split_delete(const char *base_name, void (*cb)(void *ctx, int rc), void *ctx);

#endif
