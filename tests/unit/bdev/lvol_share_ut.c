/*
 * An lvstore and a blobfs file system in one blobstore (the shared-store
 * registry, blobstore/bs_share.c; bdev/lvol/README.md "Sharing the store"),
 * with two ust_threads polled by hand. The store lives on a passthru bdev
 * over a malloc bdev, so deleting and recreating the passthru is a
 * "restart" that examines the same bytes again.
 *
 * Checked: an lvstore created on a bdev blobfs formatted joins the store
 * (free space shared: the file system's free count drops by the lvol's
 * clusters); a blobfs mount from another thread attaches to the store the
 * lvol module loaded; a format of a store in use is refused (-EEXIST);
 * unmount then lvstore unload, and lvstore unload then unmount, each leave
 * the store loaded until the last owner lets go; examine finds the lvstore
 * whose marker is not the super blob; deleting the lvstore keeps the file
 * system; a legacy "LVOLSTORE" store still loads (exclusively).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ustor/bdev.h"
#include "ustor/bdev_module.h"
#include "ustor/blob.h"
#include "ustor/blobfs.h"
#include "ustor/lvol.h"
#include "ustor/thread.h"
#include "ut_threads.h"

#include "../../../bdev/malloc/bdev_malloc.h"
#include "../../../bdev/passthru/bdev_passthru.h"

#define BLOCK 512
#define MALLOC_BYTES (16u << 20)
#define MIB (1u << 20)

struct res {
	bool done;
	int rc;
	struct ust_thread *thread; /* where the callback ran */
	struct ust_blobfs *fs;
	struct ust_lvol_store *lvs;
	struct ust_lvol *lvol;
	struct ust_blobfs_statfs st;
};

static void op_cb(void *arg, int rc)
{
	struct res *r = arg;

	r->done = true;
	r->rc = rc;
	r->thread = ust_get_thread();
}

static void fs_cb(void *arg, struct ust_blobfs *fs, int rc)
{
	struct res *r = arg;

	r->fs = fs;
	op_cb(arg, rc);
}

static void lvs_cb(void *arg, struct ust_lvol_store *lvs, int rc)
{
	struct res *r = arg;

	r->lvs = lvs;
	op_cb(arg, rc);
}

static void lvol_cb(void *arg, struct ust_lvol *lvol, int rc)
{
	struct res *r = arg;

	r->lvol = lvol;
	op_cb(arg, rc);
}

static void statfs_cb(void *arg, const struct ust_blobfs_statfs *st, int rc)
{
	struct res *r = arg;

	if (rc == 0)
		r->st = *st;
	op_cb(arg, rc);
}

static int wait_rc(struct res *r)
{
	ut_threads_poll();
	assert_true(r->done);
	return r->rc;
}

/* Format (or mount) P0 from thread t; the answer comes back on t. */
static struct ust_blobfs *fs_open(struct ust_thread *t, bool format, int expect)
{
	struct res r = {0};

	ust_set_thread(t);
	if (format)
		ust_blobfs_format("P0", NULL, NULL, fs_cb, &r);
	else
		ust_blobfs_mount("P0", NULL, fs_cb, &r);
	assert_int_equal(wait_rc(&r), expect);
	assert_ptr_equal(r.thread, t);
	return r.fs;
}

static void fs_close(struct ust_blobfs *fs)
{
	struct res r = {0};

	ust_blobfs_unmount(fs, op_cb, &r);
	assert_int_equal(wait_rc(&r), 0);
}

static uint64_t fs_free(struct ust_blobfs *fs)
{
	struct res r = {0};

	ust_blobfs_statfs(fs, statfs_cb, &r);
	assert_int_equal(wait_rc(&r), 0);
	return r.st.bfree;
}

static bool p0_claimed(void)
{
	return ust_bdev_is_claimed(ust_bdev_get_by_name("P0"));
}

static void lvs_close(const char *name)
{
	struct res r = {0};

	ust_lvs_unload(ust_lvs_get_by_name(name), op_cb, &r);
	assert_int_equal(wait_rc(&r), 0);
	assert_null(ust_lvs_get_by_name(name));
}

static void p0_create(void)
{
	assert_int_equal(ust_bdev_passthru_create("M0", "P0", NULL), 0);
	ut_threads_poll();
	assert_non_null(ust_bdev_get_by_name("P0"));
}

static void p0_delete(void)
{
	struct res r = {0};

	assert_int_equal(ust_bdev_passthru_delete("P0", op_cb, &r), 0);
	assert_int_equal(wait_rc(&r), 0);
}

/* Unregister and register the passthru again: examine sees the same bytes. */
static void restart(void)
{
	assert_false(p0_claimed());
	p0_delete();
	p0_create();
}

static void test_share(void **state)
{
	struct ust_malloc_opts mo = {.name = "M0", .num_blocks = MALLOC_BYTES / BLOCK,
				     .block_size = BLOCK};
	struct ust_blobfs *fs;
	struct res r = {0};
	uint64_t free0, cluster;
	char lvol_name[64];

	(void)state;
	assert_int_equal(ust_bdev_malloc_create(&mo, NULL), 0);
	p0_create();
	assert_false(p0_claimed()); /* blank: examine leaves it alone */

	/* blobfs first: format, note the free space, unmount (the store unloads). */
	fs = fs_open(ut_thread(0), true, 0);
	free0 = fs_free(fs);
	fs_close(fs);
	assert_false(p0_claimed());

	/* An lvstore on it joins the store: nothing of the file system is lost. */
	ust_lvs_create("P0", "lvs", NULL, lvs_cb, &r);
	assert_int_equal(wait_rc(&r), 0);
	assert_true(p0_claimed());
	cluster = ust_bs_get_cluster_size(ust_lvs_get_bs(r.lvs));
	assert_int_equal(cluster, 64u << 10); /* blobfs's format, not the lvstore default */
	memset(&r, 0, sizeof(r));
	ust_lvol_create(ust_lvs_get_by_name("lvs"), "vol", MIB, false, UST_LVOL_CLEAR_NONE,
			lvol_cb, &r);
	assert_int_equal(wait_rc(&r), 0);
	snprintf(lvol_name, sizeof(lvol_name), "%s",
		 ust_bdev_get_name(ust_lvol_get_bdev(r.lvol)));

	/* A mount from another thread attaches to the loaded store (runs on its thread). */
	fs = fs_open(ut_thread(1), false, 0);
	assert_int_equal(ust_bs_share_holders(ust_lvs_get_bs(ust_lvs_get_by_name("lvs"))), 2);
	assert_int_equal(fs_free(fs), free0 - MIB / cluster);
	/* Formatting a store in use: refused, both owners untouched. */
	assert_null(fs_open(ut_thread(0), true, -EEXIST));
	assert_int_equal(fs_free(fs), free0 - MIB / cluster);

	/* Unmount first: the lvols keep the store. */
	fs_close(fs);
	assert_true(p0_claimed());
	assert_non_null(ust_bdev_get_by_name(lvol_name));
	lvs_close("lvs");
	assert_false(p0_claimed());

	/* Restart: examine finds the lvstore (its marker is not the super blob). */
	restart();
	assert_non_null(ust_lvs_get_by_name("lvs"));
	assert_non_null(ust_bdev_get_by_name("lvs/vol"));
	fs = fs_open(ut_thread(0), false, 0);
	/* Unload the lvstore first: the mount keeps the store. */
	lvs_close("lvs");
	assert_true(p0_claimed());
	assert_int_equal(fs_free(fs), free0 - MIB / cluster);
	fs_close(fs);
	assert_false(p0_claimed());

	restart();
	/* Deleting the lvstore deletes its blobs only: the file system stays. */
	assert_non_null(ust_lvs_get_by_name("lvs"));
	fs = fs_open(ut_thread(0), false, 0);
	memset(&r, 0, sizeof(r));
	ust_lvs_destroy(ust_lvs_get_by_name("lvs"), op_cb, &r);
	assert_int_equal(wait_rc(&r), 0);
	assert_null(ust_lvs_get_by_name("lvs"));
	assert_int_equal(fs_free(fs), free0);
	fs_close(fs);
	restart();
	assert_null(ust_lvs_first());
	assert_false(p0_claimed());
	fs = fs_open(ut_thread(0), false, 0);
	fs_close(fs);

	p0_delete();
	memset(&r, 0, sizeof(r));
	assert_int_equal(ust_bdev_malloc_delete("M0", op_cb, &r), 0);
	assert_int_equal(wait_rc(&r), 0);
}

static void bs_cb(void *arg, struct ust_blob_store *bs, int rc)
{
	struct ust_blob_store **out = arg;

	*out = rc == 0 ? bs : NULL;
}

static void id_cb(void *arg, ust_blob_id id, int rc)
{
	*(ust_blob_id *)arg = rc == 0 ? id : 0;
}

/* A store written by the lvol module before stores were shared still loads. */
static void test_legacy_store(void **state)
{
	struct ust_malloc_opts mo = {.name = "M0", .num_blocks = MALLOC_BYTES / BLOCK,
				     .block_size = BLOCK};
	const char *uuid = "8a0c6d8e-6f1e-4c2a-9d3b-2f1e0c9b8a71";
	struct ust_blob_xattr x[2] = {{"lvs.name", "old", 3, true},
				      {"lvs.uuid", uuid, strlen(uuid), true}};
	struct ust_blob_opts bo;
	struct ust_blob_store *bs = NULL;
	struct ust_bs_opts o;
	ust_blob_id id = 0;
	struct res r = {0};

	(void)state;
	assert_int_equal(ust_bdev_malloc_create(&mo, NULL), 0);
	ut_threads_poll();
	ust_bs_opts_init(&o);
	snprintf(o.bstype, sizeof(o.bstype), "%s", UST_LVS_BSTYPE_LEGACY);
	ust_bs_init("M0", &o, bs_cb, &bs);
	ut_threads_poll();
	assert_non_null(bs);
	ust_blob_opts_init(&bo);
	bo.xattrs = x;
	bo.xattr_count = 2;
	ust_bs_create_blob(bs, &bo, id_cb, &id);
	ut_threads_poll();
	assert_true(id != 0);
	ust_bs_set_super(bs, id, op_cb, &r);
	assert_int_equal(wait_rc(&r), 0);
	memset(&r, 0, sizeof(r));
	ust_bs_unload(bs, op_cb, &r);
	assert_int_equal(wait_rc(&r), 0);

	p0_create();
	assert_non_null(ust_lvs_get_by_name("old"));
	assert_string_equal(ust_bs_get_bstype(ust_lvs_get_bs(ust_lvs_get_by_name("old"))),
			    UST_LVS_BSTYPE_LEGACY);
	/* Exclusive: not in the registry, and blobfs does not take its type. */
	assert_int_equal(ust_bs_share_holders(ust_lvs_get_bs(ust_lvs_get_by_name("old"))), 0);
	assert_null(fs_open(ut_thread(0), false, -EILSEQ)); /* another type: not blobfs's */
	lvs_close("old");
	p0_delete();
	memset(&r, 0, sizeof(r));
	assert_int_equal(ust_bdev_malloc_delete("M0", op_cb, &r), 0);
	assert_int_equal(wait_rc(&r), 0);
}

/* ---- setup -------------------------------------------------------------------------- */

static int setup(void **state)
{
	(void)state;
	return ut_threads_setup(2) == 0 ? ut_bdev_start() : -1;
}

static int teardown(void **state)
{
	(void)state;
	if (ut_bdev_stop() != 0 || ust_lvs_first() != NULL)
		return -1;
	return ut_threads_teardown();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_share),
		cmocka_unit_test(test_legacy_store),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
