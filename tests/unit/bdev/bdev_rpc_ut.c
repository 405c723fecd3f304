/*
 * Unit tests for the malloc and null modules and the bdev layer's JSON-RPC
 * methods (bdev/bdev_rpc.c, the modules' RPCs), on two ust_threads polled
 * by hand: data written through malloc reads back, null reads zeroes and
 * drops writes, bad create options fail; every RPC with good and bad
 * parameters, SPDK's deprecated names, and the error codes JSON-RPC names.
 * The bdev core's own tests are in bdev_ut.c.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ustor/bdev.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"
#include "ut_rpc.h"
#include "ut_threads.h"

#include "../../../bdev/bdev_internal.h"
#include "../../../bdev/malloc/bdev_malloc.h"
#include "../../../bdev/null/bdev_null.h"

/* ---- consumer helpers --------------------------------------------------- */

struct done {
	int count;
	int status;
};

static void io_done(struct ust_bdev_io *io, int status, void *arg)
{
	struct done *d = arg;

	d->count++;
	d->status = status;
}

static void event_cb(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
}

static void unreg_done(void *ctx, int rc)
{
	*(int *)ctx = rc == 0 ? 1 : rc;
}

/* ---- malloc and null ---------------------------------------------------- */

static void test_malloc_null_roundtrip(void **state)
{
	struct ust_malloc_opts mo = {.num_blocks = 128, .block_size = 4096};
	struct ust_null_opts no = {.name = "Null0", .num_blocks = 1 << 20, .block_size = 512};
	struct ust_bdev *m, *n;
	struct ust_bdev_desc *md, *nd;
	struct ust_io_channel *mch, *nch;
	struct done dn = {0};
	uint8_t *w = malloc(3 * 4096), *r = malloc(3 * 4096);
	int i, done = 0;

	assert_int_equal(ust_bdev_malloc_create(&mo, &m), 0);
	assert_string_equal(ust_bdev_get_name(m), "Malloc0");
	mo.block_size = 1000;
	assert_int_equal(ust_bdev_malloc_create(&mo, NULL), -EINVAL);
	assert_int_equal(ust_bdev_null_create(&no, &n), 0);
	assert_int_equal(ust_bdev_null_create(&no, NULL), -EEXIST);

	assert_int_equal(ust_bdev_open_ext("Malloc0", true, event_cb, NULL, &md), 0);
	mch = ust_bdev_get_io_channel(md);
	for (i = 0; i < 3 * 4096; i++)
		w[i] = (uint8_t)(i ^ (i >> 8));
	memset(r, 0xee, 3 * 4096);
	assert_int_equal(ust_bdev_read_blocks(md, mch, r, 5, 1, io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(r[0], 0); /* new disks read as zeroes */
	assert_int_equal(ust_bdev_write_blocks(md, mch, w, 5, 3, io_done, &dn), 0);
	assert_int_equal(ust_bdev_read_blocks(md, mch, r, 5, 3, io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(dn.count, 3);
	assert_int_equal(dn.status, 0);
	assert_memory_equal(r, w, 3 * 4096);
	assert_int_equal(ust_bdev_compare_blocks(md, mch, w, 5, 3, io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(dn.status, 0);
	assert_int_equal(ust_bdev_unmap_blocks(md, mch, 6, 1, io_done, &dn), 0);
	assert_int_equal(ust_bdev_compare_blocks(md, mch, w, 5, 3, io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(dn.status, -EILSEQ);
	assert_int_equal(ust_bdev_read_blocks(md, mch, r, 6, 1, io_done, &dn), 0);
	assert_int_equal(ust_bdev_flush_blocks(md, mch, 0, 128, io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(dn.status, 0);
	for (i = 0; i < 4096; i++)
		assert_int_equal(r[i], 0);

	assert_int_equal(ust_bdev_open_ext("Null0", true, event_cb, NULL, &nd), 0);
	nch = ust_bdev_get_io_channel(nd);
	memset(r, 0x77, 4096);
	assert_int_equal(ust_bdev_read_blocks(nd, nch, r, 1000, 8, io_done, &dn), 0);
	assert_int_equal(ust_bdev_write_blocks(nd, nch, w, 1000, 8, io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(dn.status, 0);
	for (i = 0; i < 4096; i++)
		assert_int_equal(r[i], 0x77);
	assert_false(ust_bdev_io_type_supported(n, UST_BDEV_IO_TYPE_NVME_IO));
	assert_int_equal(ust_bdev_get_block_size(n), 512);
	assert_int_equal(ust_bdev_get_num_blocks(n), 1 << 20);

	ust_put_io_channel(mch);
	ust_put_io_channel(nch);
	ust_bdev_close(md);
	ust_bdev_close(nd);
	ut_threads_poll();
	assert_int_equal(ust_bdev_null_delete("Malloc0", unreg_done, &done), -ENODEV);
	assert_int_equal(ust_bdev_malloc_delete("Malloc0", unreg_done, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
	done = 0;
	assert_int_equal(ust_bdev_null_delete("Null0", unreg_done, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
	free(w);
	free(r);
}

/* ---- RPCs --------------------------------------------------------------- */

static void test_rpc(void **state)
{
	json_t *r, *res, *b;
	const char *uuid = "11111111-2222-4333-8444-555555555555";

	r = ut_rpc_text("bdev_malloc_create",
		"{\"name\":\"M1\",\"num_blocks\":256,\"block_size\":512,"
		"\"uuid\":\"11111111-2222-4333-8444-555555555555\",\"optimal_io_boundary\":16}");
	assert_string_equal(json_string_value(json_object_get(r, "result")), "M1");
	json_decref(r);
	assert_int_equal(ut_rpc_text_error("bdev_malloc_create",
			"{\"num_blocks\":256,\"block_size\":100}"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS);
	assert_int_equal(ut_rpc_text_error("bdev_malloc_create", "{\"block_size\":512}"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS);
	assert_int_equal(ut_rpc_text_error("bdev_malloc_create",
			"{\"name\":\"M1\",\"num_blocks\":8,\"block_size\":512}"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS);
	assert_int_equal(ut_rpc_text_error("bdev_malloc_create",
		"{\"name\":\"M2\",\"num_blocks\":8,\"block_size\":512,\"uuid\":\"xyz\"}"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS);
	/* Deprecated name still works. */
	r = ut_rpc_text("construct_malloc_bdev", "{\"name\":\"M2\",\"num_blocks\":8,\"block_size\":4096}");
	assert_string_equal(json_string_value(json_object_get(r, "result")), "M2");
	json_decref(r);

	r = ut_rpc_text("bdev_get_bdevs", "{\"name\":\"M1\"}");
	res = json_object_get(r, "result");
	assert_int_equal(json_array_size(res), 1);
	b = json_array_get(res, 0);
	assert_string_equal(json_string_value(json_object_get(b, "name")), "M1");
	assert_string_equal(json_string_value(json_object_get(b, "product_name")), "Malloc disk");
	assert_int_equal(json_integer_value(json_object_get(b, "block_size")), 512);
	assert_int_equal(json_integer_value(json_object_get(b, "num_blocks")), 256);
	assert_string_equal(json_string_value(json_object_get(b, "uuid")), uuid);
	assert_true(json_is_false(json_object_get(b, "claimed")));
	assert_true(json_is_true(json_object_get(json_object_get(b, "supported_io_types"),
						 "write_zeroes")));
	assert_true(json_is_true(json_object_get(json_object_get(b, "supported_io_types"),
						 "compare_and_write")));
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(b, "assigned_rate_limits"), "rw_ios_per_sec")), 0);
	assert_int_equal(json_integer_value(json_object_get(b, "optimal_io_boundary")), 16);
	json_decref(r);
	r = ut_rpc_text("get_bdevs", NULL);
	assert_int_equal(json_array_size(json_object_get(r, "result")), 2);
	json_decref(r);
	assert_int_equal(ut_rpc_text_error("bdev_get_bdevs", "{\"name\":\"nope\"}"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS);

	r = ut_rpc_text("bdev_set_qos_limit", "{\"name\":\"M1\",\"rw_ios_per_sec\":20000}");
	assert_true(json_is_true(json_object_get(r, "result")));
	json_decref(r);
	assert_int_equal(ut_rpc_text_error("bdev_set_qos_limit", "{\"name\":\"M1\"}"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS);
	assert_int_equal(ut_rpc_text_error("bdev_set_qos_limit",
			"{\"name\":\"zz\",\"rw_ios_per_sec\":1}"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS);
	r = ut_rpc_text("bdev_get_bdevs", "{\"name\":\"M1\"}");
	b = json_array_get(json_object_get(r, "result"), 0);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(b, "assigned_rate_limits"), "rw_ios_per_sec")),
			 20000);
	json_decref(r);

	r = ut_rpc_text("bdev_get_iostat", NULL);
	res = json_object_get(r, "result");
	assert_int_equal(json_integer_value(json_object_get(res, "tick_rate")), 1000000000);
	assert_int_equal(json_array_size(json_object_get(res, "bdevs")), 2);
	assert_non_null(json_object_get(json_array_get(json_object_get(res, "bdevs"), 0),
					"num_read_ops"));
	json_decref(r);
	assert_int_equal(ut_rpc_text_error("bdev_get_iostat", "{\"name\":\"nope\"}"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS);
	r = ut_rpc_text("bdev_wait_for_examine", NULL);
	assert_true(json_is_true(json_object_get(r, "result")));
	json_decref(r);

	/* save_config: creates, QoS, then wait_for_examine last. */
	{
		json_t *calls = json_array();
		size_t n;

		bdev_write_config_json(calls);
		n = json_array_size(calls);
		assert_true(n >= 4);
		assert_string_equal(json_string_value(json_object_get(json_array_get(calls, 0),
								      "method")),
				    "bdev_malloc_create");
		assert_string_equal(json_string_value(json_object_get(json_array_get(calls, n - 2),
								      "method")),
				    "bdev_set_qos_limit");
		assert_string_equal(json_string_value(json_object_get(json_array_get(calls, n - 1),
								      "method")),
				    "bdev_wait_for_examine");
		json_decref(calls);
	}

	r = ut_rpc_text("bdev_null_create", "{\"name\":\"N1\",\"num_blocks\":16,\"block_size\":512,"
				    "\"md_size\":8}");
	assert_string_equal(json_string_value(json_object_get(r, "result")), "N1");
	json_decref(r);
	assert_int_equal(ut_rpc_text_error("construct_null_bdev",
			"{\"name\":\"N2\",\"num_blocks\":16}"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS);
	/* A null bdev needs a name and has no optimal_io_boundary (malloc has both). */
	assert_int_equal(ut_rpc_text_error("bdev_null_create",
			"{\"num_blocks\":16,\"block_size\":512}"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS);
	assert_int_equal(ut_rpc_text_error("bdev_null_create",
			"{\"name\":\"N3\",\"num_blocks\":16,\"block_size\":512,"
				    "\"optimal_io_boundary\":8}"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS);
	assert_null(ust_bdev_get_by_name("N3"));
	r = ut_rpc_text("bdev_null_delete", "{\"name\":\"N1\"}");
	assert_true(json_is_true(json_object_get(r, "result")));
	json_decref(r);
	r = ut_rpc_text("bdev_malloc_delete", "{\"name\":\"M1\"}");
	assert_true(json_is_true(json_object_get(r, "result")));
	json_decref(r);
	r = ut_rpc_text("delete_malloc_bdev", "{\"name\":\"M2\"}");
	assert_true(json_is_true(json_object_get(r, "result")));
	json_decref(r);
	assert_int_equal(ut_rpc_text_error("bdev_malloc_delete", "{\"name\":\"M2\"}"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS);
	assert_null(ust_bdev_first());
}

static int setup(void **state)
{
	if (ut_threads_setup(2) != 0)
		return -1;
	return ut_bdev_start();
}

static int teardown(void **state)
{
	int rc = ut_bdev_stop();

	if (ut_threads_teardown() != 0)
		rc = -1;
	return rc;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_malloc_null_roundtrip),
		cmocka_unit_test(test_rpc),
	};

	return cmocka_run_group_tests_name("bdev rpc", tests, setup, teardown);
}
