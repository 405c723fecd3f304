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

/*
 * What happens when a controller fails (target gone, connection reset,
 * keep-alive timeout, CSTS.CFS), with SPDK's parameter names and rules:
 *  - ctrlr_loss_timeout_sec: 0 no automatic reconnect (the controller stays
 *    failed until bdev_nvme_reset_controller); -1 reconnect forever; N > 0
 *    reconnect for N seconds after the failure, then remove the bdevs and
 *    detach the controller.
 *  - reconnect_delay_sec: the wait after a failed attempt (the first
 *    attempt is immediate); it doubles after each failure, up to 8 times
 *    reconnect_delay_sec. Must be > 0 (and <= ctrlr_loss_timeout_sec) when
 *    reconnecting, 0 otherwise.
 *  - fast_io_fail_timeout_sec: while reconnecting, new I/O is held (requeued
 *    by the bdev layer) until this many seconds after the failure, then
 *    fails with -ENXIO until the controller is back; 0 holds it for the
 *    whole reconnect period. Must be 0 or within
 *    [reconnect_delay_sec, ctrlr_loss_timeout_sec].
 * I/O outstanding when the controller fails always completes with an error.
 */
struct bdev_nvme_reconnect_opts {
	int32_t ctrlr_loss_timeout_sec;
	uint32_t reconnect_delay_sec;
	uint32_t fast_io_fail_timeout_sec;
};

/* 0, or -EINVAL with a reason in err (if not NULL). */
int bdev_nvme_check_reconnect_opts(const struct bdev_nvme_reconnect_opts *o, char *err,
				   size_t errlen);
/* Module defaults for later attaches (bdev_nvme_set_options); -EINVAL. */
int bdev_nvme_set_options(const struct bdev_nvme_reconnect_opts *o);
void bdev_nvme_get_options(struct bdev_nvme_reconnect_opts *o);

struct bdev_nvme_attach_opts {
	const char *name;
	struct ust_nvme_transport_id trid;
	const char *hostnqn; /* may be NULL */
	const struct bdev_nvme_reconnect_opts *reconnect; /* NULL: the module defaults */
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
/*
 * Append [{name, ctrlrs: [{state, trid, cntlid, host, reconnect_attempts}]}]
 * entries (name NULL: all); -ENODEV. state is "enabled", "resetting",
 * "reconnecting" (failed, with attempts to come), "failed", ...
 */
int bdev_nvme_get_controllers(const char *name, json_t *array);

#endif
