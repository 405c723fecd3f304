/*
 * The malloc bdev module: a RAM disk in DMA memory. Private to bdev/malloc
 * and its tests; programs create malloc bdevs through the RPCs.
 */
#ifndef USTOR_BDEV_MALLOC_H
#define USTOR_BDEV_MALLOC_H

#include <stdbool.h>
#include <stdint.h>

#include "ustor/bdev.h"
#include "ustor/bdev_module.h"

struct ust_malloc_opts {
	const char *name;             /* NULL: the first free "MallocN" */
	uint64_t num_blocks;
	uint32_t block_size;          /* multiple of 512 (of the data part with md_interleave) */
	struct ust_uuid uuid;         /* all zero: generated */
	uint32_t optimal_io_boundary; /* blocks; split there when non-zero */
	uint32_t md_size;             /* reserved: stored and reported only */
	bool md_interleave;
	enum ust_dif_type dif_type;
};

/* -EINVAL bad geometry, -EEXIST name taken, -ENOMEM. *bdev may be NULL. */
int ust_bdev_malloc_create(const struct ust_malloc_opts *opts, struct ust_bdev **bdev);
/* -ENODEV if name is not a malloc bdev; else cb(ctx, rc) once it is gone. */
int ust_bdev_malloc_delete(const char *name, ust_bdev_unregister_cb cb, void *ctx);

#endif
