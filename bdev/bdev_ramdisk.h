/*
 * Private to bdev/ and its in-memory modules (malloc/, null/): what both
 * share. Their geometry rules, their save_config entry, their create and
 * delete RPCs (same parameters, same answers) and their empty per-thread
 * channel device.
 */
#ifndef USTOR_BDEV_RAMDISK_H
#define USTOR_BDEV_RAMDISK_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "ustor/bdev_module.h"
#include "ustor/rpc.h"

/* What bdev_malloc_create and bdev_null_create both describe. */
struct bdev_ramdisk_geometry {
	const char *name; /* may be NULL where the module picks one */
	uint64_t num_blocks;
	uint32_t block_size; /* multiple of 512 (of the data part with md_interleave) */
	struct ust_uuid uuid;
	uint32_t optimal_io_boundary; /* malloc only */
	uint32_t md_size;
	bool md_interleave;
	enum ust_dif_type dif_type;
};

/* 0 or -EINVAL (logged): block size, md, dif, and num_blocks * block_size <= max_bytes. */
int bdev_ramdisk_check_geometry(const char *module, const struct bdev_ramdisk_geometry *g,
				uint64_t max_bytes);
/* Copy g's geometry (not the name) into a bdev about to be registered. */
void bdev_ramdisk_fill(struct ust_bdev *bdev, const struct bdev_ramdisk_geometry *g);
/*
 * Register a filled bdev. On failure its fn_table->destruct(ctxt) runs, so
 * the caller owns nothing afterwards either way; on success *bdevp (may be
 * NULL) is set.
 */
int bdev_ramdisk_register(struct ust_bdev *bdev, struct ust_bdev **bdevp);
/* Append the create call that rebuilds bdev (method: "bdev_malloc_create", ...). */
void bdev_ramdisk_write_config_json(struct ust_bdev *bdev, const char *method, json_t *calls);

/* A module's side of the create and delete RPCs. */
struct bdev_ramdisk_rpc {
	const char *module; /* "malloc": for messages */
	bool name_required;
	bool has_optimal_io_boundary;
	int (*create)(const struct bdev_ramdisk_geometry *g, struct ust_bdev **bdev);
	int (*delete)(const char *name, ust_bdev_unregister_cb cb, void *ctx);
};

void bdev_ramdisk_rpc_create(const struct bdev_ramdisk_rpc *kind, struct ust_rpc_request *req,
			     const json_t *params);
void bdev_ramdisk_rpc_delete(const struct bdev_ramdisk_rpc *kind, struct ust_rpc_request *req,
			     const json_t *params);

/* The module-wide io_device of a module whose channels hold nothing. */
void bdev_ramdisk_io_device_register(void *io_device, const char *name);

#endif
