/*
 * Unit tests for the error-injection bdev module (bdev/error) over a malloc
 * bdev: exactly num failures then success, per I/O type and for "all";
 * nomem retried by the core until the injections are used up; pending I/O
 * held until cleared, and aborted when the bdev is deleted; read and write
 * data corruption (the caller's write buffer untouched); clear; argument
 * errors; hot removal of the base; the RPCs and save_config output.
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
#include "ustor/rpc.h"
#include "ustor/thread.h"
#include "ut_rpc.h"
#include "ut_threads.h"

#include "../../../bdev/error/bdev_error.h"
#include "../../../bdev/malloc/bdev_malloc.h"

#define BS 512
#define NBLOCKS 64

/* Poll until *flag; NOMEM retries wait on a short real-time timer. */
static void poll_until(const int *flag)
{
	int i;

	for (i = 0; i < 2000000 && !*flag; i++)
		ust_thread_poll(ut_thread(0), 0, 0);
	ut_threads_poll();
}

static void rpc_ok(const char *method, json_t *params)
{
	json_t *r = ut_rpc(method, params);

	assert_int_equal(ut_rpc_error_code(r), 0);
	json_decref(r);
}

static void inject(const char *io_type, const char *error_type, int num)
{
	rpc_ok("bdev_error_inject_error", json_pack("{s:s, s:s, s:s, s:i}", "name", "EE_M0",
						    "io_type", io_type, "error_type", error_type,
						    "num", num));
}

struct io_result {
	int done;
	int status;
};

static void io_cb(struct ust_bdev_io *io, int status, void *arg)
{
	struct io_result *r = arg;

	r->status = status;
	r->done++;
}

static struct ust_bdev_desc *g_desc;
static struct ust_io_channel *g_ch;
static int g_removes;

/* Close as a consumer must when its bdev goes away. */
static void event_cb(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	if (type != UST_BDEV_EVENT_REMOVE)
		return;
	g_removes++;
	if (g_ch != NULL)
		ust_put_io_channel(g_ch);
	g_ch = NULL;
	ust_bdev_close(g_desc);
	g_desc = NULL;
}

static void open_ee(void)
{
	assert_int_equal(ust_bdev_open_ext("EE_M0", true, event_cb, NULL, &g_desc), 0);
	g_ch = ust_bdev_get_io_channel(g_desc);
	assert_non_null(g_ch);
}

static void close_ee(void)
{
	ust_put_io_channel(g_ch);
	ust_bdev_close(g_desc);
	g_ch = NULL;
	g_desc = NULL;
	ut_threads_poll();
}

static int do_read(void *buf, uint64_t off, uint64_t n)
{
	struct io_result r = {0};

	assert_int_equal(ust_bdev_read_blocks(g_desc, g_ch, buf, off, n, io_cb, &r), 0);
	poll_until(&r.done);
	assert_int_equal(r.done, 1);
	return r.status;
}

static int do_write(void *buf, uint64_t off, uint64_t n)
{
	struct io_result r = {0};

	assert_int_equal(ust_bdev_write_blocks(g_desc, g_ch, buf, off, n, io_cb, &r), 0);
	poll_until(&r.done);
	assert_int_equal(r.done, 1);
	return r.status;
}

static int do_flush(void)
{
	struct io_result r = {0};

	assert_int_equal(ust_bdev_flush_blocks(g_desc, g_ch, 0, 1, io_cb, &r), 0);
	ut_threads_poll();
	assert_int_equal(r.done, 1);
	return r.status;
}

static void setup_ee(void)
{
	struct ust_malloc_opts opts = {.name = "M0", .num_blocks = NBLOCKS, .block_size = BS};
	json_t *r;

	assert_int_equal(ust_bdev_malloc_create(&opts, NULL), 0);
	r = ut_rpc("bdev_error_create", json_pack("{s:s}", "base_name", "M0"));
	assert_string_equal(json_string_value(json_object_get(r, "result")), "EE_M0");
	json_decref(r);
	assert_true(ust_bdev_is_claimed(ust_bdev_get_by_name("M0")));
	open_ee();
}

static void teardown_ee(void)
{
	if (g_desc != NULL)
		close_ee();
	rpc_ok("bdev_error_delete", json_pack("{s:s}", "name", "EE_M0"));
	assert_null(ust_bdev_get_by_name("EE_M0"));
	assert_int_equal(ust_bdev_malloc_delete("M0", NULL, NULL), 0);
	ut_threads_poll();
}

/* ---- tests -------------------------------------------------------------- */

static void test_failure_counts(void **state)
{
	uint8_t buf[BS] = {1};

	setup_ee();
	inject("write", "failure", 3);
	assert_int_equal(ust_bdev_error_remaining("EE_M0", UST_BDEV_IO_TYPE_WRITE), 3);
	assert_int_equal(do_read(buf, 0, 1), 0); /* other types pass */
	assert_int_equal(do_write(buf, 0, 1), -EIO);
	assert_int_equal(do_write(buf, 0, 1), -EIO);
	assert_int_equal(do_write(buf, 0, 1), -EIO);
	assert_int_equal(ust_bdev_error_remaining("EE_M0", UST_BDEV_IO_TYPE_WRITE), 0);
	assert_int_equal(do_write(buf, 0, 1), 0);
	assert_int_equal(do_write(buf, 0, 1), 0);

	/* "all": each type gets num. */
	inject("all", "failure", 1);
	assert_int_equal(do_flush(), -EIO);
	assert_int_equal(do_read(buf, 0, 1), -EIO);
	assert_int_equal(do_write(buf, 0, 1), -EIO);
	assert_int_equal(do_flush(), 0);
	assert_int_equal(do_read(buf, 0, 1), 0);
	assert_int_equal(do_write(buf, 0, 1), 0);
	assert_int_equal(ust_bdev_error_remaining("EE_M0", UST_BDEV_IO_TYPE_UNMAP), 1);

	/* clear drops the rest. */
	inject("clear", "failure", 1);
	assert_int_equal(ust_bdev_error_remaining("EE_M0", UST_BDEV_IO_TYPE_UNMAP), 0);
	teardown_ee();
}

static void test_nomem_retried(void **state)
{
	uint8_t w[2 * BS], r[2 * BS];

	setup_ee();
	memset(w, 0x3c, sizeof(w));
	assert_int_equal(do_write(w, 4, 2), 0);
	inject("read", "nomem", 2);
	/* The core requeues the I/O; each retry consumes one injection; then it succeeds. */
	assert_int_equal(do_read(r, 4, 2), 0);
	assert_memory_equal(w, r, sizeof(w));
	assert_int_equal(ust_bdev_error_remaining("EE_M0", UST_BDEV_IO_TYPE_READ), 0);
	teardown_ee();
}

static void test_pending_until_clear(void **state)
{
	uint8_t b1[BS], b2[BS];
	struct io_result held = {0};

	setup_ee();
	inject("read", "pending", 1);
	assert_int_equal(ust_bdev_read_blocks(g_desc, g_ch, b1, 0, 1, io_cb, &held), 0);
	ut_threads_poll();
	assert_int_equal(held.done, 0);
	assert_int_equal(do_read(b2, 0, 1), 0); /* only one was marked */
	ut_threads_poll();
	assert_int_equal(held.done, 0);
	inject("clear", "pending", 1);
	assert_int_equal(held.done, 1);
	assert_int_equal(held.status, -ECANCELED);
	assert_int_equal(do_read(b2, 0, 1), 0);
	teardown_ee();
}

/* A reset is how a consumer recovers from I/O that never completes. */
static void test_pending_released_by_reset(void **state)
{
	uint8_t b1[BS], b2[BS];
	struct io_result held = {0}, reset = {0};

	setup_ee();
	inject("write", "pending", 1);
	memset(b1, 0x5a, sizeof(b1));
	assert_int_equal(ust_bdev_write_blocks(g_desc, g_ch, b1, 3, 1, io_cb, &held), 0);
	ut_threads_poll();
	assert_int_equal(held.done, 0);
	assert_int_equal(ust_bdev_reset(g_desc, g_ch, io_cb, &reset), 0);
	ut_threads_poll();
	assert_int_equal(held.done, 1);
	assert_int_equal(held.status, -ECANCELED);
	assert_int_equal(reset.done, 1);
	assert_int_equal(reset.status, 0);
	/* The bdev works again after the reset. */
	assert_int_equal(do_write(b1, 3, 1), 0);
	assert_int_equal(do_read(b2, 3, 1), 0);
	assert_memory_equal(b1, b2, BS);
	teardown_ee();
}

static void test_pending_aborted_by_delete(void **state)
{
	uint8_t b1[BS];
	struct io_result held = {0};
	json_t *r;

	setup_ee();
	inject("write", "pending", 5);
	assert_int_equal(ust_bdev_write_blocks(g_desc, g_ch, b1, 0, 1, io_cb, &held), 0);
	ut_threads_poll();
	assert_int_equal(held.done, 0);
	g_removes = 0;
	r = ut_rpc("bdev_error_delete", json_pack("{s:s}", "name", "EE_M0"));
	assert_true(json_is_true(json_object_get(r, "result")));
	json_decref(r);
	assert_int_equal(held.done, 1);
	assert_int_equal(held.status, -ECANCELED);
	assert_int_equal(g_removes, 1);
	assert_null(ust_bdev_get_by_name("EE_M0"));
	assert_false(ust_bdev_is_claimed(ust_bdev_get_by_name("M0")));
	assert_int_equal(ust_bdev_malloc_delete("M0", NULL, NULL), 0);
	ut_threads_poll();
}

static void test_corrupt_data(void **state)
{
	uint8_t w[2 * BS], r[2 * BS], orig[2 * BS];
	int i;

	setup_ee();
	for (i = 0; i < (int)sizeof(w); i++)
		w[i] = (uint8_t)i;
	memcpy(orig, w, sizeof(w));
	assert_int_equal(do_write(w, 8, 2), 0);

	rpc_ok("bdev_error_inject_error",
	       json_pack("{s:s, s:s, s:s, s:i, s:i, s:i}", "name", "EE_M0", "io_type", "read",
			 "error_type", "corrupt_data", "num", 1, "corrupt_offset", 700,
			 "corrupt_value", 0xff));
	assert_int_equal(do_read(r, 8, 2), 0);
	for (i = 0; i < (int)sizeof(r); i++)
		assert_int_equal(r[i], i == 700 ? (uint8_t)(orig[i] ^ 0xff) : orig[i]);
	assert_int_equal(do_read(r, 8, 2), 0); /* only once */
	assert_memory_equal(r, orig, sizeof(r));

	/* Write corruption: the stored data changes, the caller's buffer does not. */
	rpc_ok("bdev_error_inject_error",
	       json_pack("{s:s, s:s, s:s, s:i, s:i}", "name", "EE_M0", "io_type", "write",
			 "error_type", "corrupt_data", "corrupt_offset", 3, "corrupt_value", 0x0f));
	assert_int_equal(do_write(w, 8, 2), 0);
	assert_memory_equal(w, orig, sizeof(w));
	assert_int_equal(do_read(r, 8, 2), 0);
	for (i = 0; i < (int)sizeof(r); i++)
		assert_int_equal(r[i], i == 3 ? (uint8_t)(orig[i] ^ 0x0f) : orig[i]);
	teardown_ee();
}

static void test_bad_arguments(void **state)
{
	json_t *r;

	setup_ee();
	/* corrupt_data needs a non-zero value, and read/write/all. */
	r = ut_rpc("bdev_error_inject_error", json_pack("{s:s, s:s, s:s}", "name", "EE_M0", "io_type",
						     "read", "error_type", "corrupt_data"));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INVALID_PARAMS);
	json_decref(r);
	r = ut_rpc("bdev_error_inject_error",
		json_pack("{s:s, s:s, s:s, s:i}", "name", "EE_M0", "io_type", "unmap", "error_type",
			  "corrupt_data", "corrupt_value", 1));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INVALID_PARAMS);
	json_decref(r);
	r = ut_rpc("bdev_error_inject_error", json_pack("{s:s, s:s, s:s}", "name", "EE_M0", "io_type",
						     "sideways", "error_type", "failure"));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INVALID_PARAMS);
	json_decref(r);
	r = ut_rpc("bdev_error_inject_error", json_pack("{s:s, s:s, s:s}", "name", "EE_M0", "io_type",
						     "read", "error_type", "explode"));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INVALID_PARAMS);
	json_decref(r);
	r = ut_rpc("bdev_error_inject_error", json_pack("{s:s, s:s, s:s, s:i}", "name", "EE_M0",
						     "io_type", "read", "error_type", "failure",
						     "num", 0));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INVALID_PARAMS);
	json_decref(r);
	r = ut_rpc("bdev_error_inject_error", json_pack("{s:s, s:s, s:s}", "name", "EE_nope",
						     "io_type", "read", "error_type", "failure"));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INVALID_PARAMS);
	json_decref(r);
	assert_int_equal(ust_bdev_error_remaining("EE_M0", UST_BDEV_IO_TYPE_READ), 0);
	assert_int_equal(ust_bdev_error_inject("M0", UST_BDEV_IO_TYPE_READ, UST_BDEV_ERROR_FAILURE,
					       1, 0, 0), -ENODEV);
	/* A second error bdev on the same base. */
	r = ut_rpc("bdev_error_create", json_pack("{s:s}", "base_name", "M0"));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INTERNAL_ERROR);
	json_decref(r);
	r = ut_rpc("bdev_error_delete", json_pack("{s:s}", "name", "EE_nope"));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INVALID_PARAMS);
	json_decref(r);
	teardown_ee();
}

static void test_config_and_hot_remove(void **state)
{
	struct ust_bdev *ee;
	json_t *calls, *params;

	setup_ee();
	ee = ust_bdev_get_by_name("EE_M0");
	calls = json_array();
	ee->fn_table->write_config_json(ee, calls);
	assert_string_equal(json_string_value(json_object_get(json_array_get(calls, 0), "method")),
			    "bdev_error_create");
	params = json_object_get(json_array_get(calls, 0), "params");
	assert_string_equal(json_string_value(json_object_get(params, "base_name")), "M0");
	json_decref(calls);

	/* The base goes: so does EE_M0, and our descriptor hears of it. */
	g_removes = 0;
	assert_int_equal(ust_bdev_malloc_delete("M0", NULL, NULL), 0);
	ut_threads_poll();
	assert_int_equal(g_removes, 1);
	assert_null(ust_bdev_get_by_name("EE_M0"));
	assert_null(ust_bdev_get_by_name("M0"));
	assert_int_equal(ust_bdev_error_delete("EE_M0", NULL, NULL), 0);
	assert_int_equal(ust_bdev_error_delete("EE_M0", NULL, NULL), -ENODEV);
}

/* ---- setup -------------------------------------------------------------- */

static int setup(void **state)
{
	return ut_threads_setup(1) == 0 ? ut_bdev_start() : -1;
}

static int teardown(void **state)
{
	int rc = ut_bdev_stop();

	return ut_threads_teardown() == 0 ? rc : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failure_counts),
		cmocka_unit_test(test_nomem_retried),
		cmocka_unit_test(test_pending_until_clear),
		cmocka_unit_test(test_pending_aborted_by_delete),
		cmocka_unit_test(test_pending_released_by_reset),
		cmocka_unit_test(test_corrupt_data),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_config_and_hot_remove),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
