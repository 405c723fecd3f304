/*
 * Examine storms: many bdevs registered in one call (a split into 128
 * parts), each examined by the lvol module for a store.
 *
 * The base is a RAM disk that counts the reads reaching it, so the test
 * sees how many examine loads are in flight: each one starts with a
 * superblock read, submitted before examine_disk returns. Checked: the
 * loads start 64 at a time (bdev/lvol/lvs.c, LVS_EXAMINE_MAX), the rest as
 * earlier ones finish, and every part is examined: a store on part 100, far
 * behind the limit, is loaded; a hot remove of all the parts while most of
 * their examines wait ends every examine (bdev_wait_for_examine answers),
 * loads nothing and leaks nothing; shutdown with examines waiting drops
 * them. And the removal of a part under a loaded store with an lvol
 * completes (the store lets go without writing its clean state), and the
 * part's return loads the store again, lvol and all.
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
#include "ustor/lvol.h"
#include "ustor/thread.h"
#include "ut_ramdisk.h"
#include "ut_threads.h"

#include "../../../bdev/split/bdev_split.h"

#define PARTS 128
#define PART_BYTES (1u << 20)
#define DISK_BYTES ((uint64_t)PARTS * PART_BYTES)
#define EXAMINE_MAX 64 /* LVS_EXAMINE_MAX */
#define STORE_PART 100

/* ---- the disk (ut_ramdisk.h: it counts its reads) ------------------------------------- */

static struct ut_ramdisk g_disk;

static void cram_register(void)
{
	g_disk.bytes = DISK_BYTES;
	ut_ramdisk_register(&g_disk, "Cram0");
}

/* ---- helpers ------------------------------------------------------------------------ */

static void examined_cb(void *ctx)
{
	(*(int *)ctx)++;
}

/* bdev_wait_for_examine answers once every examine has ended. */
static void assert_examine_over(void)
{
	int answered = 0;

	assert_int_equal(ust_bdev_wait_for_examine(examined_cb, &answered), 0);
	ut_threads_poll();
	assert_int_equal(answered, 1);
}

/* Split Cram0 into PARTS parts: the examine loads started before any poll. */
static uint64_t split_and_count_started(void)
{
	uint64_t before = g_disk.reads;

	assert_int_equal(ust_bdev_split_create("Cram0", PARTS, 0), 0);
	return g_disk.reads - before;
}

static void split_done(void *ctx, int rc)
{
	*(int *)ctx = rc;
}

static void split_delete(void)
{
	int rc = 1;

	assert_int_equal(ust_bdev_split_delete("Cram0", split_done, &rc), 0);
	ut_threads_poll();
	assert_int_equal(rc, 0);
	assert_null(ust_bdev_get_by_name("Cram0p0"));
}

static void lvs_done(void *arg, struct ust_lvol_store *lvs, int rc)
{
	*(int *)arg = rc;
}

static void lvol_done(void *arg, struct ust_lvol *lvol, int rc)
{
	*(int *)arg = rc;
}

static void unload_done(void *arg, int rc)
{
	*(int *)arg = rc;
}

static void unload(const char *name)
{
	int rc = 1;

	ust_lvs_unload(ust_lvs_get_by_name(name), unload_done, &rc);
	ut_threads_poll();
	assert_int_equal(rc, 0);
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_storm_limited_and_complete(void **state)
{
	char part[32];
	struct ust_lvs_opts opts;
	struct ust_lvol_store *lvs;
	int rc = 1;

	/* Blank parts: 64 loads start at once, all 128 parts are read in the end. */
	assert_int_equal(split_and_count_started(), EXAMINE_MAX);
	ut_threads_poll();
	assert_examine_over();
	assert_true(g_disk.reads >= PARTS);
	assert_null(ust_lvs_first());

	/* A store on part 100; then the parts go and come back. */
	snprintf(part, sizeof(part), "Cram0p%d", STORE_PART);
	ust_lvs_opts_init(&opts);
	opts.cluster_sz = 64u << 10;
	ust_lvs_create(part, "storm", &opts, lvs_done, &rc);
	ut_threads_poll();
	assert_int_equal(rc, 0);
	unload("storm");
	split_delete();

	assert_int_equal(split_and_count_started(), EXAMINE_MAX);
	ut_threads_poll();
	assert_examine_over();
	lvs = ust_lvs_get_by_name("storm");
	assert_non_null(lvs);
	assert_string_equal(ust_lvs_get_base_bdev_name(lvs), part);
	assert_true(ust_bdev_is_claimed(ust_bdev_get_by_name(part)));
	assert_ptr_equal(ust_lvs_next(lvs), NULL);
	unload("storm");
	split_delete();
}

static void test_storm_removed_while_waiting(void **state)
{
	int rc = 1;

	/* Every part goes before any examine load could answer: 64 in flight, 64 waiting. */
	assert_int_equal(split_and_count_started(), EXAMINE_MAX);
	assert_int_equal(ust_bdev_split_delete("Cram0", split_done, &rc), 0);
	ut_threads_poll();
	assert_int_equal(rc, 0);
	assert_examine_over();
	assert_null(ust_lvs_first());
	assert_null(ust_bdev_get_by_name("Cram0p127"));
}

static void test_store_part_removed(void **state)
{
	struct ust_lvs_opts opts;
	int rc = 1;

	split_and_count_started();
	ut_threads_poll();
	assert_examine_over();
	ust_lvs_opts_init(&opts);
	opts.cluster_sz = 64u << 10;
	ust_lvs_create("Cram0p7", "hot", &opts, lvs_done, &rc);
	ut_threads_poll();
	assert_int_equal(rc, 0);
	rc = 1;
	ust_lvol_create(ust_lvs_get_by_name("hot"), "v", 256u << 10, true, UST_LVOL_CLEAR_NONE,
			lvol_done, &rc);
	ut_threads_poll();
	assert_int_equal(rc, 0);
	assert_non_null(ust_bdev_get_by_name("hot/v"));

	/* No unload first: the parts are pulled from under the store. */
	split_delete();
	assert_null(ust_lvs_get_by_name("hot"));
	assert_null(ust_bdev_get_by_name("hot/v"));

	split_and_count_started();
	ut_threads_poll();
	assert_examine_over();
	assert_non_null(ust_lvs_get_by_name("hot"));
	assert_non_null(ust_bdev_get_by_name("hot/v"));
	unload("hot");
	split_delete();
}

static int setup(void **state)
{
	g_disk.data = calloc(1, DISK_BYTES);
	if (g_disk.data == NULL || ut_bdev_start() != 0)
		return -1;
	cram_register();
	return 0;
}

static int teardown(void **state)
{
	int rc = ut_bdev_stop();

	if (g_disk.registered)
		rc = -1;
	free(g_disk.data);
	g_disk.data = NULL;
	return rc;
}

/* Shutdown with examines waiting: they are dropped and the bdev layer stops. */
static void test_shutdown_during_storm(void **state)
{
	g_disk.data = calloc(1, DISK_BYTES);
	assert_non_null(g_disk.data);
	assert_int_equal(ut_bdev_start(), 0);
	cram_register();
	assert_int_equal(split_and_count_started(), EXAMINE_MAX);
	assert_int_equal(ut_bdev_stop(), 0);
	assert_false(g_disk.registered);
	assert_null(ust_bdev_get_by_name("Cram0p0"));
	free(g_disk.data);
	g_disk.data = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_storm_limited_and_complete),
		cmocka_unit_test(test_storm_removed_while_waiting),
		cmocka_unit_test(test_store_part_removed),
	};
	const struct CMUnitTest shutdown_tests[] = {
		cmocka_unit_test(test_shutdown_during_storm),
	};
	int failed;

	if (ut_threads_setup(1) != 0)
		return 1;
	failed = cmocka_run_group_tests_name("lvol examine", tests, setup, teardown);
	failed += cmocka_run_group_tests_name("lvol examine shutdown", shutdown_tests, NULL, NULL);
	if (ut_threads_teardown() != 0)
		failed++;
	return failed;
}
