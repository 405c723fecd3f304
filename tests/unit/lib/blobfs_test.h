/*
 * Shared by the blobfs unit tests (tests/unit/blobfs/): one record that an
 * asynchronous blobfs call's callback fills, and the callbacks for each
 * callback type of ustor/blobfs.h. A test zeroes a record, passes it as the
 * callback argument, polls the threads, and reads done, rc and the result.
 */
#ifndef USTOR_BLOBFS_TEST_H
#define USTOR_BLOBFS_TEST_H

#include <stdbool.h>
#include <stdint.h>

#include "ustor/blobfs.h"

struct bft_res {
	bool done; /* the callback ran */
	int rc;    /* its status (size_cb: the result when negative, else 0) */
	int64_t n; /* size_cb's result */
	struct ust_blobfs *fs;
	struct ust_blobfs_entry e;
	struct ust_blobfs_attr a;
	struct ust_blobfs_file *fh;
	struct ust_blobfs_statfs st;
};

void bft_fs_cb(void *arg, struct ust_blobfs *fs, int rc);
void bft_op_cb(void *arg, int rc);
void bft_entry_cb(void *arg, const struct ust_blobfs_entry *e, int rc);
void bft_attr_cb(void *arg, const struct ust_blobfs_attr *a, int rc);
void bft_open_cb(void *arg, struct ust_blobfs_file *fh, int rc);
void bft_create_cb(void *arg, const struct ust_blobfs_entry *e, struct ust_blobfs_file *fh, int rc);
void bft_size_cb(void *arg, int64_t n);
void bft_statfs_cb(void *arg, const struct ust_blobfs_statfs *st, int rc);

#endif
