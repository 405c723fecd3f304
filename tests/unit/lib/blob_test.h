/*
 * Shared helpers for the blobstore crash and corruption tests
 * (tests/unit/blobstore/crash_ut.c, corrupt_ut.c): one ust_thread polled by
 * hand, synchronous wrappers around the asynchronous blobstore calls, raw
 * bdev I/O and malloc bdevs. Every wrapper polls until its callback ran and
 * fails the test (cmocka) if it never does.
 */
#ifndef USTOR_BLOB_TEST_H
#define USTOR_BLOB_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ustor/blob.h"

/* Thread library, one thread "t0" and the bdev layer; 0 on success. */
int bt_env_setup(void);
int bt_env_teardown(void);
/* Poll until nothing is left to do. */
void bt_poll(void);

/* A malloc bdev of bytes / block blocks. */
int bt_malloc_create(const char *name, uint64_t bytes, uint32_t block);
int bt_malloc_delete(const char *name);

/* Raw bdev access (only while no store claims it: opened read-write otherwise). */
void bt_raw_read(const char *bdev, uint64_t offset, void *buf, uint64_t len);
void bt_raw_write(const char *bdev, uint64_t offset, const void *buf, uint64_t len);

/* ---- synchronous blobstore calls: each returns the callback's errno ------------- */

int bt_init(const char *bdev, uint32_t cluster_size, uint32_t max_blobs,
	    struct ust_blob_store **bs);
int bt_load(const char *bdev, struct ust_blob_store **bs);
int bt_unload(struct ust_blob_store *bs);
int bt_create(struct ust_blob_store *bs, uint64_t clusters, bool thin, ust_blob_id *id);
int bt_create_opts(struct ust_blob_store *bs, const struct ust_blob_opts *opts, ust_blob_id *id);
int bt_open(struct ust_blob_store *bs, ust_blob_id id, struct ust_blob **blob);
int bt_close(struct ust_blob *blob);
int bt_delete(struct ust_blob_store *bs, ust_blob_id id);
int bt_sync(struct ust_blob *blob);
int bt_resize(struct ust_blob *blob, uint64_t clusters);
int bt_write(struct ust_blob *blob, struct ust_io_channel *ch, void *buf, uint64_t off,
	     uint64_t len);
int bt_read(struct ust_blob *blob, struct ust_io_channel *ch, void *buf, uint64_t off,
	    uint64_t len);

/* ---- asynchronous completion records (for several operations in flight) ---------- */

struct bt_done {
	bool done;
	int rc;
	ust_blob_id id;
	struct ust_blob *blob;
	struct ust_blob_store *bs;
	uint64_t at_event; /* filled by the caller's hook, if any (see bt_set_ack_hook) */
};

/* Called from every bt_done callback (crash_ut records the event counter). */
void bt_set_ack_hook(void (*hook)(struct bt_done *d));

void bt_op_cb(void *arg, int rc);
void bt_id_cb(void *arg, ust_blob_id id, int rc);
void bt_blob_cb(void *arg, struct ust_blob *blob, int rc);
void bt_bs_cb(void *arg, struct ust_blob_store *bs, int rc);

/* Deterministic pseudo-random numbers (xorshift64*); seed must not be 0. */
uint64_t bt_rand(uint64_t *state);

#endif
