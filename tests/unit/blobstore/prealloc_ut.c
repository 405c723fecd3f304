/*
 * Unit tests for ust_bs_opts.prealloc_md (blobstore/bs_store.c fill_md):
 * a format that preallocates writes every page of the metadata region,
 * root slots and pool, with plain writes and no write-zeroes, so that a
 * thin device backs all of it; one without leaves the pool as it found it
 * and clears the root slots by write-zeroes. The device starts full of a
 * pattern, so every page the format did not write still shows it. The
 * store made either way loads, and its blobs survive a reload. One
 * ust_thread polled by hand, a malloc bdev.
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

#include "../../../blobstore/format.h"
#include "blob_test.h"

#define DEV "M0"
#define BLOCK 4096u
#define DEV_BYTES (16u << 20)
#define PATTERN 0xa5

static int make_bdev(void **state)
{
	uint8_t *buf = malloc(DEV_BYTES);
	int rc;

	(void)state;
	rc = bt_malloc_create(DEV, DEV_BYTES, BLOCK);
	if (rc != 0 || buf == NULL) {
		free(buf);
		return -1;
	}
	memset(buf, PATTERN, DEV_BYTES);
	bt_raw_write(DEV, 0, buf, DEV_BYTES);
	free(buf);
	return 0;
}

static int drop_bdev(void **state)
{
	(void)state;
	bt_poll();
	return bt_malloc_delete(DEV);
}

/* Format with 64 KiB clusters and 300 slots; the superblock it wrote. */
static void format(bool prealloc, struct ust_bs_super *sb)
{
	struct ust_blob_store *bs;
	struct ust_bs_opts o;
	struct ust_bs_fmt_err err;
	uint8_t page[UST_BS_PAGE_SIZE];

	ust_bs_opts_init(&o);
	o.cluster_size = 64u << 10;
	o.max_blobs = 300;
	o.prealloc_md = prealloc;
	assert_int_equal(bt_init_opts(DEV, &o, &bs), 0);
	assert_int_equal(bt_unload(bs), 0);
	bt_raw_read(DEV, 0, page, sizeof(page));
	assert_int_equal(ust_bs_fmt_super_decode(page, sb, &err), 0);
}

/* Pages of [start, start + pages) that hold no byte but b. */
static uint64_t pages_all(uint64_t start, uint64_t pages, uint8_t b)
{
	uint8_t *buf = malloc(pages * UST_BS_PAGE_SIZE);
	uint64_t i, j, n = 0;

	assert_non_null(buf);
	bt_raw_read(DEV, start * UST_BS_PAGE_SIZE, buf, pages * UST_BS_PAGE_SIZE);
	for (i = 0; i < pages; i++) {
		for (j = 0; j < UST_BS_PAGE_SIZE && buf[i * UST_BS_PAGE_SIZE + j] == b; j++) {
		}
		n += j == UST_BS_PAGE_SIZE;
	}
	free(buf);
	return n;
}

/* Blobs made in the store survive an unload and a load. */
static void check_usable(void)
{
	struct ust_blob_store *bs;
	ust_blob_id id;

	assert_int_equal(bt_load(DEV, &bs), 0);
	assert_int_equal(ust_bs_get_max_blobs(bs), 300);
	assert_int_equal(bt_create(bs, 3, false, &id), 0);
	assert_int_equal(bt_unload(bs), 0);
	bt_check_reloaded(DEV, id, 3);
}

static void test_prealloc_writes_whole_region(void **state)
{
	struct ust_bdev_io_stat before, after;
	struct ust_bs_super sb;
	uint64_t end;

	(void)state;
	bt_iostat(DEV, &before);
	format(true, &sb);
	bt_iostat(DEV, &after);
	end = (uint64_t)sb.md_pool.start + sb.md_pool.pages;
	assert_int_equal(sb.root_slots.pages, 600);
	assert_true(sb.md_pool.pages >= 300);
	assert_int_equal(sb.root_slots.start + sb.root_slots.pages, sb.md_pool.start);

	/* every page from the first root slot to the end of the pool was written */
	assert_int_equal(pages_all(sb.root_slots.start, end - sb.root_slots.start, 0),
			 end - sb.root_slots.start);
	/*
	 * by writes: a write-zeroes, which a thin device may answer with a
	 * hole, cleared only the superblock's page before it was written
	 */
	assert_int_equal(after.bytes_zeroed - before.bytes_zeroed, UST_BS_PAGE_SIZE);
	assert_true(after.bytes_written - before.bytes_written >=
		    (end - sb.root_slots.start) * UST_BS_PAGE_SIZE);
	/* and nothing past the metadata clusters */
	assert_int_equal(pages_all(end, DEV_BYTES / UST_BS_PAGE_SIZE - end - 1, PATTERN),
			 DEV_BYTES / UST_BS_PAGE_SIZE - end - 1);
	check_usable();
}

/* The control: without the option the pool keeps the device's old bytes. */
static void test_lazy_format_leaves_pool(void **state)
{
	struct ust_bdev_io_stat before, after;
	struct ust_bs_super sb;

	(void)state;
	bt_iostat(DEV, &before);
	format(false, &sb);
	bt_iostat(DEV, &after);
	assert_int_equal(pages_all(sb.root_slots.start, sb.root_slots.pages, 0), sb.root_slots.pages);
	assert_int_equal(pages_all(sb.md_pool.start, sb.md_pool.pages, PATTERN), sb.md_pool.pages);
	assert_int_equal(after.bytes_zeroed - before.bytes_zeroed,
			 (1 + sb.root_slots.pages) * UST_BS_PAGE_SIZE);
	check_usable();
}

/* A load takes no notice of the option: the store is as it was formatted. */
static void test_load_ignores_prealloc(void **state)
{
	struct ust_blob_store *bs;
	struct ust_bs_super sb;
	struct ust_bs_opts o;
	struct ust_bdev_io_stat before, after;

	(void)state;
	format(false, &sb);
	ust_bs_opts_init(&o);
	o.prealloc_md = true;
	bt_iostat(DEV, &before);
	ust_bs_load(DEV, &o, bt_bs_cb, bt_begin());
	bt_finish();
	assert_int_equal(bt_r.rc, 0);
	bs = bt_r.bs;
	assert_int_equal(bt_unload(bs), 0);
	bt_iostat(DEV, &after);
	assert_int_equal(pages_all(sb.md_pool.start, sb.md_pool.pages, PATTERN), sb.md_pool.pages);
	assert_true(after.bytes_written - before.bytes_written < 64u * UST_BS_PAGE_SIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_prealloc_writes_whole_region, make_bdev,
						drop_bdev),
		cmocka_unit_test_setup_teardown(test_lazy_format_leaves_pool, make_bdev, drop_bdev),
		cmocka_unit_test_setup_teardown(test_load_ignores_prealloc, make_bdev, drop_bdev),
	};

	return cmocka_run_group_tests(tests, bt_group_setup, bt_group_teardown);
}
