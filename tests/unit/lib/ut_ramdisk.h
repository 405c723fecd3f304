/*
 * A RAM disk bdev for the unit tests (module "ut_ramdisk"): 512-byte
 * blocks over bytes the test owns, which outlive the bdev, so that
 * unregistering it and registering it again is a restart that finds the
 * same bytes. Reads, writes, unmap, write_zeroes and flush complete inline
 * (the bdev core delivers the completion on the next poll); reads are
 * counted, so a test sees how many reached the disk.
 */
#ifndef USTOR_UT_RAMDISK_H
#define USTOR_UT_RAMDISK_H

#include <stdbool.h>
#include <stdint.h>

#include "ustor/bdev_module.h"

#define UT_RAMDISK_BLOCK 512

struct ut_ramdisk {
	uint8_t *data;   /* the bytes: allocated and freed by the test */
	uint64_t bytes;  /* their length, a multiple of UT_RAMDISK_BLOCK */
	uint64_t reads;  /* read I/Os submitted, over every registration */
	bool registered; /* from register to destruct */
	struct ust_bdev bdev;
	char name[32];
};

/* Register d as name over d->data, then poll until idle (examine included). */
void ut_ramdisk_register(struct ut_ramdisk *d, const char *name);
/* Unregister d and poll until idle; the test fails if it was not destructed. */
void ut_ramdisk_unregister(struct ut_ramdisk *d);

#endif
