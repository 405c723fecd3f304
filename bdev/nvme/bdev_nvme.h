/*
 * Private to bdev/nvme: the NVMe bdev module's controllers and their
 * management calls, used by its RPCs (bdev_nvme_rpc.c) and unit tests.
 *
 * A controller is attached under a name (NAME); each active namespace
 * becomes bdev NAMEn<nsid>. All calls run on the app thread, which also
 * polls every controller's admin queue; I/O runs on each thread's own
 * qpair, created when the thread first gets a channel.
 */
#ifndef USTOR_BDEV_NVME_H
#define USTOR_BDEV_NVME_H

#include <jansson.h>

#include "ustor/bdev_module.h"
#include "ustor/nvme.h"

struct bdev_nvme_attach_opts {
	const char *name;
	struct ust_nvme_transport_id trid;
	const char *hostnqn; /* may be NULL */
};

/*
 * cb gets 0 and the names of the bdevs created (a JSON array, borrowed), or
 * a negative errno and NULL: -EEXIST name in use, -EBUSY controller already
 * attached, -ENOTSUP no such transport, or the bring-up's error.
 */
typedef void (*bdev_nvme_attach_cb)(void *ctx, int rc, json_t *bdev_names);
int bdev_nvme_attach_controller(const struct bdev_nvme_attach_opts *opts, bdev_nvme_attach_cb cb,
				void *ctx);

typedef void (*bdev_nvme_done_cb)(void *ctx, int rc);
/* Unregister the controller's bdevs, then shut it down. -ENODEV if unknown. */
int bdev_nvme_detach_controller(const char *name, bdev_nvme_done_cb cb, void *ctx);
/* Reset; cb once the controller is ready again (or failed). */
int bdev_nvme_reset_controller(const char *name, bdev_nvme_done_cb cb, void *ctx);
/* Append [{name, ctrlrs: [{state, trid, cntlid, host}]}] entries (name NULL: all); -ENODEV. */
int bdev_nvme_get_controllers(const char *name, json_t *array);

#endif
