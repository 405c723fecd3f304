/*
 * Test helpers for the blobstore unit tests (blob_test.h): the ut_threads
 * environment with the bdev layer started, synchronous wrappers over the
 * blobstore API, the begin/finish record for tests that call the API
 * themselves, raw bdev reads and writes, and a small deterministic PRNG.
 *
 * Guarantees: a wrapper returns only after its callback ran (it fails the
 * running cmocka test if the callback never comes); polling always ends
 * with thread 0 current; nothing here keeps a bdev open or a channel alive
 * between calls.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ustor/bdev.h"
#include "ustor/blob.h"
#include "ustor/thread.h"

#include "../../../bdev/malloc/bdev_malloc.h"
#include "blob_test.h"

static void (*g_ack_hook)(struct bt_done *d);

struct bt_done bt_r;

int bt_env_setup_threads(unsigned nthreads)
{
	return ut_threads_setup(nthreads) == 0 ? ut_bdev_start() : -1;
}

int bt_env_setup(void)
{
	return bt_env_setup_threads(1);
}

int bt_env_teardown(void)
{
	int rc = ut_bdev_stop();

	return ut_threads_teardown() == 0 ? rc : -1;
}

int bt_group_setup(void **state)
{
	(void)state;
	return bt_env_setup();
}

int bt_group_teardown(void **state)
{
	(void)state;
	return bt_env_teardown();
}

int bt_malloc_create(const char *name, uint64_t bytes, uint32_t block)
{
	struct ust_malloc_opts o = {.name = name, .num_blocks = bytes / block, .block_size = block};

	ust_set_thread(ut_thread(0));
	return ust_bdev_malloc_create(&o, NULL);
}

static void bt_deleted(void *ctx, int rc)
{
	*(int *)ctx = rc == 0 ? 1 : rc;
}

int bt_malloc_delete(const char *name)
{
	int done = 0;

	ust_set_thread(ut_thread(0));
	if (ust_bdev_malloc_delete(name, bt_deleted, &done) != 0) {
		return -1;
	}
	bt_poll();
	return done == 1 ? 0 : -1;
}

/* ---- completions ------------------------------------------------------------------ */

void bt_set_ack_hook(void (*hook)(struct bt_done *d))
{
	g_ack_hook = hook;
}

static void bt_ack(struct bt_done *d, int rc)
{
	d->done = true;
	d->rc = rc;
	if (g_ack_hook != NULL) {
		g_ack_hook(d);
	}
}

void bt_op_cb(void *arg, int rc)
{
	bt_ack(arg, rc);
}

void bt_id_cb(void *arg, ust_blob_id id, int rc)
{
	struct bt_done *d = arg;

	d->id = id;
	bt_ack(d, rc);
}

void bt_blob_cb(void *arg, struct ust_blob *blob, int rc)
{
	struct bt_done *d = arg;

	d->blob = blob;
	bt_ack(d, rc);
}

void bt_bs_cb(void *arg, struct ust_blob_store *bs, int rc)
{
	struct bt_done *d = arg;

	d->bs = bs;
	bt_ack(d, rc);
}

void bt_fsck_cb(void *arg, struct ust_bs_fsck_report *rep, int rc)
{
	struct bt_done *d = arg;

	d->rep = rep;
	bt_ack(d, rc);
}

static void bt_wait(struct bt_done *d)
{
	bt_poll();
	assert_true(d->done);
}

struct bt_done *bt_begin(void)
{
	memset(&bt_r, 0, sizeof(bt_r));
	return &bt_r;
}

void bt_finish(void)
{
	bt_wait(&bt_r);
}

/* ---- raw bdev I/O ------------------------------------------------------------------- */

static void bt_raw_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	(void)type;
	(void)bdev;
	(void)ctx;
}

static void bt_raw_done(struct ust_bdev_io *io, int status, void *arg)
{
	(void)io;
	bt_ack(arg, status);
}

static void bt_raw_io(const char *bdev, bool write, uint64_t offset, void *buf, uint64_t len)
{
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;
	struct bt_done d = {0};

	assert_int_equal(ust_bdev_open_ext(bdev, write, bt_raw_event, NULL, &desc), 0);
	ch = ust_bdev_get_io_channel(desc);
	assert_non_null(ch);
	if (write) {
		assert_int_equal(ust_bdev_write(desc, ch, buf, offset, len, bt_raw_done, &d), 0);
	} else {
		assert_int_equal(ust_bdev_read(desc, ch, buf, offset, len, bt_raw_done, &d), 0);
	}
	bt_wait(&d);
	assert_int_equal(d.rc, 0);
	ust_put_io_channel(ch);
	bt_poll();
	ust_bdev_close(desc);
	bt_poll();
}

void bt_raw_read(const char *bdev, uint64_t offset, void *buf, uint64_t len)
{
	bt_raw_io(bdev, false, offset, buf, len);
}

void bt_raw_write(const char *bdev, uint64_t offset, const void *buf, uint64_t len)
{
	bt_raw_io(bdev, true, offset, (void *)buf, len);
}

/* ---- synchronous blobstore calls ------------------------------------------------------ */

static void iostat_done(struct ust_bdev *bdev, struct ust_bdev_io_stat *stat, void *ctx, int rc)
{
	(void)bdev;
	(void)stat;
	bt_op_cb(ctx, rc);
}

void bt_iostat(const char *bdev, struct ust_bdev_io_stat *st)
{
	ust_bdev_get_iostat(ust_bdev_get_by_name(bdev), st, iostat_done, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
}

int bt_init(const char *bdev, uint32_t cluster_size, uint32_t max_blobs,
	    struct ust_blob_store **bs)
{
	struct ust_bs_opts o;

	ust_bs_opts_init(&o);
	o.cluster_size = cluster_size;
	o.max_blobs = max_blobs;
	return bt_init_opts(bdev, &o, bs);
}

int bt_init_opts(const char *bdev, const struct ust_bs_opts *opts, struct ust_blob_store **bs)
{
	struct bt_done d = {0};

	ust_bs_init(bdev, opts, bt_bs_cb, &d);
	bt_wait(&d);
	*bs = d.bs;
	return d.rc;
}

int bt_load(const char *bdev, struct ust_blob_store **bs)
{
	struct bt_done d = {0};

	ust_bs_load(bdev, NULL, bt_bs_cb, &d);
	bt_wait(&d);
	*bs = d.bs;
	return d.rc;
}

void bt_check_reloaded(const char *bdev, ust_blob_id id, uint64_t clusters)
{
	struct ust_blob_store *bs;
	struct ust_blob *blob;

	assert_int_equal(bt_load(bdev, &bs), 0);
	assert_int_equal(bt_open(bs, id, &blob), 0);
	assert_int_equal(ust_blob_get_num_clusters(blob), clusters);
	assert_int_equal(bt_close(blob), 0);
	assert_int_equal(bt_unload(bs), 0);
}

int bt_unload(struct ust_blob_store *bs)
{
	struct bt_done d = {0};

	ust_bs_unload(bs, bt_op_cb, &d);
	bt_wait(&d);
	return d.rc;
}

int bt_create_opts(struct ust_blob_store *bs, const struct ust_blob_opts *opts, ust_blob_id *id)
{
	struct bt_done d = {0};

	ust_bs_create_blob(bs, opts, bt_id_cb, &d);
	bt_wait(&d);
	*id = d.id;
	return d.rc;
}

int bt_create(struct ust_blob_store *bs, uint64_t clusters, bool thin, ust_blob_id *id)
{
	struct ust_blob_opts o;

	ust_blob_opts_init(&o);
	o.num_clusters = clusters;
	o.thin_provision = thin;
	return bt_create_opts(bs, &o, id);
}

int bt_open(struct ust_blob_store *bs, ust_blob_id id, struct ust_blob **blob)
{
	struct bt_done d = {0};

	ust_bs_open_blob(bs, id, bt_blob_cb, &d);
	bt_wait(&d);
	*blob = d.blob;
	return d.rc;
}

int bt_close(struct ust_blob *blob)
{
	struct bt_done d = {0};

	ust_blob_close(blob, bt_op_cb, &d);
	bt_wait(&d);
	return d.rc;
}

int bt_delete(struct ust_blob_store *bs, ust_blob_id id)
{
	struct bt_done d = {0};

	ust_bs_delete_blob(bs, id, bt_op_cb, &d);
	bt_wait(&d);
	return d.rc;
}

int bt_sync(struct ust_blob *blob)
{
	struct bt_done d = {0};

	ust_blob_sync_md(blob, bt_op_cb, &d);
	bt_wait(&d);
	return d.rc;
}

int bt_resize(struct ust_blob *blob, uint64_t clusters)
{
	struct bt_done d = {0};

	ust_blob_resize(blob, clusters, bt_op_cb, &d);
	bt_wait(&d);
	return d.rc;
}

int bt_write(struct ust_blob *blob, struct ust_io_channel *ch, void *buf, uint64_t off,
	     uint64_t len)
{
	struct bt_done d = {0};

	ust_blob_write(blob, ch, buf, off, len, bt_op_cb, &d);
	bt_wait(&d);
	return d.rc;
}

int bt_read(struct ust_blob *blob, struct ust_io_channel *ch, void *buf, uint64_t off,
	    uint64_t len)
{
	struct bt_done d = {0};

	ust_blob_read(blob, ch, buf, off, len, bt_op_cb, &d);
	bt_wait(&d);
	return d.rc;
}

uint64_t bt_rand(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}
