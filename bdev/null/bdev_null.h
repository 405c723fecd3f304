/*
 * The null bdev module: accepts every read and write and moves no data.
 * Reads leave the buffer untouched; writes are discarded. It measures the
 * cost of the bdev layer itself. Private to bdev/null and its tests.
 */
#ifndef USTOR_BDEV_NULL_H
#define USTOR_BDEV_NULL_H

#include <stdbool.h>
#include <stdint.h>

#include "ustor/bdev.h"
#include "ustor/bdev_module.h"

struct ust_null_opts {
	const char *name; /* required */
	uint64_t num_blocks;
	uint32_t block_size; /* multiple of 512 (of the data part with md_interleave) */
	struct ust_uuid uuid;
	uint32_t md_size; /* reserved: stored and reported only */
	bool md_interleave;
	enum ust_dif_type dif_type;
};

int ust_bdev_null_create(const struct ust_null_opts *opts, struct ust_bdev **bdev);
int ust_bdev_null_delete(const char *name, ust_bdev_unregister_cb cb, void *ctx);

#endif
