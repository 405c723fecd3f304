/*
 * Shared helpers for the blobstore unit tests (tests/unit/blobstore/):
 * ust_threads polled by hand (ut_threads.h, under the bt_ names these tests
 * use), synchronous wrappers around the asynchronous blobstore calls, a
 * begin/finish record for tests that make the calls themselves, raw bdev
 * I/O and malloc bdevs. Every wrapper polls until its callback ran and
 * fails the test (cmocka) if it never does.
 */
#ifndef USTOR_BLOB_TEST_H
#define USTOR_BLOB_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ustor/bdev.h"
#include "ustor/blob.h"
#include "ustor/blob_fsck.h"
#include "ustor/thread.h"

#include "ut_threads.h"

/*
 * Thread library, threads "t0".."t<n-1>" (n up to UT_MAX_THREADS) and the
 * bdev layer; 0 on success.
 */
int bt_env_setup_threads(unsigned nthreads);
/* The same with the one thread "t0". */
int bt_env_setup(void);
/* Bdev layer stopped, then every thread; -1 if either did not finish. */
int bt_env_teardown(void);

/* Thread i of those made by the setup. */
static inline struct ust_thread *bt_thread(unsigned i)
{
	return ut_thread(i);
}

/* Poll every thread until none has anything left to do; thread 0 is then current. */
static inline void bt_poll(void)
{
	ut_threads_poll();
}

/* A malloc bdev of bytes / block blocks. */
int bt_malloc_create(const char *name, uint64_t bytes, uint32_t block);
int bt_malloc_delete(const char *name);

/* Raw bdev access (only while no store claims it: opened read-write otherwise). */
void bt_raw_read(const char *bdev, uint64_t offset, void *buf, uint64_t len);
void bt_raw_write(const char *bdev, uint64_t offset, const void *buf, uint64_t len);
/* The bdev's I/O statistics (ust_bdev_get_iostat), asserting success. */
void bt_iostat(const char *bdev, struct ust_bdev_io_stat *st);

/* ---- synchronous blobstore calls: each returns the callback's errno ------------- */

int bt_init(const char *bdev, uint32_t cluster_size, uint32_t max_blobs,
	    struct ust_blob_store **bs);
int bt_init_opts(const char *bdev, const struct ust_bs_opts *opts, struct ust_blob_store **bs);
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
/* Load the store on bdev, assert blob id is there with clusters clusters, unload. */
void bt_check_reloaded(const char *bdev, ust_blob_id id, uint64_t clusters);

/* ---- asynchronous completion records (for several operations in flight) ---------- */

struct bt_done {
	bool done;
	int rc;
	ust_blob_id id;
	struct ust_blob *blob;
	struct ust_blob_store *bs;
	struct ust_bs_fsck_report *rep;
	uint64_t at_event; /* filled by the caller's hook, if any (see bt_set_ack_hook) */
};

/* Called from every bt_done callback (crash_ut records the event counter). */
void bt_set_ack_hook(void (*hook)(struct bt_done *d));

void bt_op_cb(void *arg, int rc);
void bt_id_cb(void *arg, ust_blob_id id, int rc);
void bt_blob_cb(void *arg, struct ust_blob *blob, int rc);
void bt_bs_cb(void *arg, struct ust_blob_store *bs, int rc);
void bt_fsck_cb(void *arg, struct ust_bs_fsck_report *rep, int rc);

/*
 * One call at a time made by the test itself:
 *   ust_bs_open_blob(bs, id, bt_blob_cb, bt_begin()); bt_finish(); use bt_r.blob
 * bt_begin() clears bt_r and returns it as the callback argument; bt_finish()
 * polls and fails the test unless the callback ran.
 */
extern struct bt_done bt_r;
struct bt_done *bt_begin(void);
void bt_finish(void);

/* Deterministic pseudo-random numbers (xorshift64*); seed must not be 0. */
uint64_t bt_rand(uint64_t *state);

/* ---- cmocka group setup and teardown of the plain environment ------------------- */

/* bt_env_setup / bt_env_teardown with cmocka's signature. */
int bt_group_setup(void **state);
int bt_group_teardown(void **state);

/* ---- crash recording (blob_crash_util.c) ---------------------------------------- */

struct ust_crashsim;
struct ust_crashsim_image;

/*
 * The crashsim bdev "CS0" over base. With stamp_acks, every bt_done
 * callback records the event count it ran at in at_event.
 */
struct ust_crashsim *bt_crash_create(const char *base, bool stamp_acks);
/* Start recording; returns once the crashsim says it records. */
void bt_crash_start(struct ust_crashsim *cs);
/* Free img (may be NULL), delete "CS0" and then the malloc bdev base. */
void bt_crash_destroy(struct ust_crashsim_image *img, const char *base);

#endif
