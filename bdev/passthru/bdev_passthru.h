/*
 * Passthru bdevs (module "passthru"): C API behind bdev_passthru_create and
 * bdev_passthru_delete. Control path: call on the app thread.
 */
#ifndef USTOR_BDEV_PASSTHRU_H
#define USTOR_BDEV_PASSTHRU_H

#include "ustor/bdev_module.h"

/*
 * Remember "name on top of base_name" and create it now if the base exists,
 * or as soon as a bdev of that name is registered. uuid may be NULL.
 * -EINVAL bad names, -EEXIST name already configured or in use, -EPERM the
 * base is claimed by another module, -ENOMEM.
 */
int ust_bdev_passthru_create(const char *base_name, const char *name,
			     const struct ust_uuid *uuid);
/*
 * Forget the configuration and unregister the bdev (cb(ctx, rc) once gone,
 * or at once with 0 if it was only configured). -ENODEV: no such passthru.
 */
int ust_bdev_passthru_delete(const char *name, void (*cb)(void *ctx, int rc), void *ctx);

#endif
