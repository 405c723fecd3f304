/*
 * File bdevs (module names "aio" and "uring"): C API behind the RPCs
 * bdev_aio_create/delete/rescan and bdev_uring_create/delete/rescan.
 * Control path: call on the app thread (the thread that runs RPCs).
 */
#ifndef USTOR_BDEV_FILE_H
#define USTOR_BDEV_FILE_H

#include <stdbool.h>
#include <stdint.h>

#include "ustor/bdev_module.h"

struct ust_bdev_file_opts {
	const char *name;     /* required */
	const char *filename; /* required: regular file or block device */
	uint32_t block_size;  /* 0: detect (device logical block size, 512 for files) */
	bool readonly;
	struct ust_uuid uuid; /* all zero: generated */
};

/*
 * Create and register. -EINVAL bad block size, size not a multiple of it,
 * empty file or bad name; -EEXIST name in use; -errno from open/stat.
 */
int ust_bdev_aio_create(const struct ust_bdev_file_opts *opts, struct ust_bdev **bdev);
int ust_bdev_uring_create(const struct ust_bdev_file_opts *opts, struct ust_bdev **bdev);

/* Unregister; cb(ctx, rc) when gone. -ENODEV: no such bdev of this module. */
int ust_bdev_aio_delete(const char *name, void (*cb)(void *ctx, int rc), void *ctx);
int ust_bdev_uring_delete(const char *name, void (*cb)(void *ctx, int rc), void *ctx);

/*
 * Re-read the file size; when it changed, the bdev's block count follows and
 * open descriptors get UST_BDEV_EVENT_RESIZE. -ENODEV no such bdev; -EBUSY
 * the file shrank while the bdev is open.
 */
int ust_bdev_aio_rescan(const char *name);
int ust_bdev_uring_rescan(const char *name);

#endif
