/*
 * Unit tests for the split bdev module (bdev/split) over malloc bdevs: data
 * written through each part lands in its slice of the base and reads back,
 * I/O past a part's end is rejected, split_size_mb, the claim (no second
 * split, no split of a claimed base, no write open of the base), a split
 * configured before its base exists, hot removal and return of the base,
 * delete, the RPCs and save_config output; each part's UUID follows the
 * documented rule (from the base UUID and the index), so it is the same
 * after delete/recreate and after the base comes back, and differs per part
 * and per base.
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
#include <xxhash.h>

#include "ustor/bdev.h"
#include "ustor/bdev_module.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"
#include "ut_rpc.h"
#include "ut_threads.h"

#include "../../../bdev/malloc/bdev_malloc.h"
#include "../../../bdev/split/bdev_split.h"

#define BS 512

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

static void event_cb(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
}

static void make_malloc_uuid(const char *name, uint64_t blocks, const struct ust_uuid *uuid)
{
	struct ust_malloc_opts opts = {.name = name, .num_blocks = blocks, .block_size = BS};

	if (uuid != NULL)
		opts.uuid = *uuid;
	assert_int_equal(ust_bdev_malloc_create(&opts, NULL), 0);
	ut_threads_poll();
}

static void make_malloc(const char *name, uint64_t blocks)
{
	make_malloc_uuid(name, blocks, NULL);
}

static void delete_malloc(const char *name)
{
	assert_int_equal(ust_bdev_malloc_delete(name, NULL, NULL), 0);
	ut_threads_poll();
	assert_null(ust_bdev_get_by_name(name));
}

static int rw(const char *name, bool write, void *buf, uint64_t off, uint64_t n)
{
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;
	struct io_result r = {0};
	int rc;

	assert_int_equal(ust_bdev_open_ext(name, write, event_cb, NULL, &desc), 0);
	ch = ust_bdev_get_io_channel(desc);
	assert_non_null(ch);
	if (write)
		rc = ust_bdev_write_blocks(desc, ch, buf, off, n, io_cb, &r);
	else
		rc = ust_bdev_read_blocks(desc, ch, buf, off, n, io_cb, &r);
	if (rc == 0) {
		ut_threads_poll();
		assert_int_equal(r.done, 1);
		rc = r.status;
	}
	ust_put_io_channel(ch);
	ust_bdev_close(desc);
	ut_threads_poll();
	return rc;
}

/* ---- tests -------------------------------------------------------------- */

static void test_roundtrip_and_bounds(void **state)
{
	uint8_t buf[16 * BS], base_data[64 * BS];
	struct ust_bdev_desc *desc;
	char name[16];
	json_t *r, *res;
	int i;

	make_malloc("M0", 64);
	r = ut_rpc("bdev_split_create", json_pack("{s:s, s:i}", "base_bdev", "M0", "split_count", 4));
	res = json_object_get(r, "result");
	assert_int_equal(json_array_size(res), 4);
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "M0p%d", i);
		assert_string_equal(json_string_value(json_array_get(res, i)), name);
		assert_int_equal(ust_bdev_get_num_blocks(ust_bdev_get_by_name(name)), 16);
	}
	json_decref(r);

	/* Each part's data lands in its quarter of the base. */
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "M0p%d", i);
		memset(buf, 'a' + i, sizeof(buf));
		assert_int_equal(rw(name, true, buf, 0, 16), 0);
	}
	assert_int_equal(rw("M0", false, base_data, 0, 64), 0);
	for (i = 0; i < 64 * BS; i++)
		assert_int_equal(base_data[i], 'a' + i / (16 * BS));
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "M0p%d", i);
		memset(buf, 0, sizeof(buf));
		assert_int_equal(rw(name, false, buf, 0, 16), 0);
		assert_int_equal(buf[0], 'a' + i);
		assert_int_equal(buf[sizeof(buf) - 1], 'a' + i);
	}

	/* Past a part's end: rejected, and the neighbour is untouched. */
	assert_int_equal(rw("M0p1", true, buf, 15, 2), -EINVAL);
	assert_int_equal(rw("M0p1", true, buf, 16, 1), -EINVAL);
	assert_int_equal(rw("M0p2", false, buf, 0, 1), 0);
	assert_int_equal(buf[0], 'c');

	/* Claimed: no second split, no write open of the base. */
	assert_int_equal(ust_bdev_open_ext("M0", true, event_cb, NULL, &desc), -EPERM);
	r = ut_rpc("bdev_split_create", json_pack("{s:s, s:i}", "base_bdev", "M0", "split_count", 2));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INTERNAL_ERROR);
	json_decref(r);
	assert_null(ust_bdev_get_by_name("M0p0p0"));

	r = ut_rpc("bdev_split_delete", json_pack("{s:s}", "base_bdev", "M0"));
	assert_true(json_is_true(json_object_get(r, "result")));
	json_decref(r);
	assert_null(ust_bdev_get_by_name("M0p0"));
	assert_null(ust_bdev_get_by_name("M0p3"));
	assert_false(ust_bdev_is_claimed(ust_bdev_get_by_name("M0")));
	r = ut_rpc("bdev_split_delete", json_pack("{s:s}", "base_bdev", "M0"));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INVALID_PARAMS);
	json_decref(r);
	delete_malloc("M0");
}

static struct ust_bdev_module g_other_module = {.name = "other"};

static void test_sizes_and_claimed_base(void **state)
{
	struct ust_bdev_desc *desc;
	json_t *r;

	make_malloc("M1", 16384); /* 8 MiB */
	r = ut_rpc("bdev_split_create", json_pack("{s:s, s:i, s:i}", "base_bdev", "M1", "split_count",
					       5, "split_size_mb", 2));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INVALID_PARAMS);
	json_decref(r);
	assert_null(ust_bdev_get_by_name("M1p0"));
	r = ut_rpc("bdev_split_create", json_pack("{s:s, s:i}", "base_bdev", "M1", "split_count", 0));
	assert_int_equal(ut_rpc_error_code(r), UST_JSONRPC_ERROR_INVALID_PARAMS);
	json_decref(r);
	r = ut_rpc("bdev_split_create", json_pack("{s:s, s:i, s:i}", "base_bdev", "M1", "split_count",
					       3, "split_size_mb", 2));
	assert_int_equal(json_array_size(json_object_get(r, "result")), 3);
	json_decref(r);
	assert_int_equal(ust_bdev_get_num_blocks(ust_bdev_get_by_name("M1p2")), 4096);
	assert_null(ust_bdev_get_by_name("M1p3"));
	assert_int_equal(ust_bdev_split_delete("M1", NULL, NULL), 0);
	ut_threads_poll();
	assert_null(ust_bdev_get_by_name("M1p0"));

	/* A base claimed by someone else cannot be split. */
	assert_int_equal(ust_bdev_open_ext("M1", false, event_cb, NULL, &desc), 0);
	assert_int_equal(ust_bdev_module_claim_bdev(ust_bdev_get_by_name("M1"), desc,
						    &g_other_module), 0);
	assert_int_equal(ust_bdev_split_create("M1", 2, 0), -EPERM);
	assert_null(ust_bdev_get_by_name("M1p0"));
	assert_int_equal(ust_bdev_split_delete("M1", NULL, NULL), -ENODEV);
	ust_bdev_module_release_bdev(ust_bdev_get_by_name("M1"));
	ust_bdev_close(desc);
	ut_threads_poll();
	delete_malloc("M1");
}

static void test_late_base_hot_remove_and_config(void **state)
{
	struct ust_bdev_module *m = ust_bdev_module_find("split");
	json_t *r, *calls, *params;

	r = ut_rpc("bdev_split_create", json_pack("{s:s, s:i, s:i}", "base_bdev", "M2", "split_count",
					       2, "split_size_mb", 1));
	assert_int_equal(json_array_size(json_object_get(r, "result")), 0);
	json_decref(r);
	assert_int_equal(ust_bdev_split_create("M2", 2, 0), -EEXIST);

	make_malloc("M2", 8192);
	assert_non_null(ust_bdev_get_by_name("M2p0"));
	assert_non_null(ust_bdev_get_by_name("M2p1"));
	assert_int_equal(ust_bdev_get_num_blocks(ust_bdev_get_by_name("M2p1")), 2048);
	assert_true(ust_bdev_is_claimed(ust_bdev_get_by_name("M2")));

	assert_non_null(m);
	calls = json_array();
	m->config_json(calls);
	assert_int_equal(json_array_size(calls), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(calls, 0), "method")),
			    "bdev_split_create");
	params = json_object_get(json_array_get(calls, 0), "params");
	assert_string_equal(json_string_value(json_object_get(params, "base_bdev")), "M2");
	assert_int_equal(json_integer_value(json_object_get(params, "split_count")), 2);
	assert_int_equal(json_integer_value(json_object_get(params, "split_size_mb")), 1);
	json_decref(calls);

	/* Base gone: parts gone, configuration kept; base back: parts back. */
	delete_malloc("M2");
	assert_null(ust_bdev_get_by_name("M2p0"));
	make_malloc("M2", 8192);
	assert_non_null(ust_bdev_get_by_name("M2p1"));

	assert_int_equal(ust_bdev_split_delete("M2", NULL, NULL), 0);
	ut_threads_poll();
	assert_null(ust_bdev_get_by_name("M2p0"));
	calls = json_array();
	m->config_json(calls);
	assert_int_equal(json_array_size(calls), 0);
	json_decref(calls);
	delete_malloc("M2");
}

/* The rule of bdev/split/README.md, written out independently. */
static void expected_part_uuid(const struct ust_uuid *base, uint32_t index, uint8_t out[16])
{
	uint8_t in[36];
	XXH128_canonical_t c;

	memcpy(in, "ustor-split-uuid", 16);
	memcpy(in + 16, base->u, 16);
	in[32] = index & 0xff;
	in[33] = (index >> 8) & 0xff;
	in[34] = (index >> 16) & 0xff;
	in[35] = index >> 24;
	XXH128_canonicalFromHash(&c, XXH3_128bits(in, sizeof(in)));
	memcpy(out, c.digest, 16);
	out[6] = (out[6] & 0x0f) | 0x80;
	out[8] = (out[8] & 0x3f) | 0x80;
}

#define UUID_PARTS 3

static void part_uuids(const char *base, struct ust_uuid *out)
{
	char name[16];
	int i;

	for (i = 0; i < UUID_PARTS; i++) {
		snprintf(name, sizeof(name), "%sp%d", base, i);
		assert_non_null(ust_bdev_get_by_name(name));
		out[i] = *ust_bdev_get_uuid(ust_bdev_get_by_name(name));
	}
}

static void test_part_uuids_stable(void **state)
{
	struct ust_uuid base_uuid, other_uuid, first[UUID_PARTS], again[UUID_PARTS];
	uint8_t want[16];
	json_t *r;
	int i, j;

	assert_int_equal(ust_uuid_parse(&base_uuid, "0b4f3c2a-1d5e-4f60-8a7b-9c8d7e6f5a4b"), 0);
	assert_int_equal(ust_uuid_parse(&other_uuid, "0b4f3c2a-1d5e-4f60-8a7b-9c8d7e6f5a4c"), 0);
	make_malloc_uuid("M3", 96, &base_uuid);
	assert_int_equal(ust_bdev_split_create("M3", UUID_PARTS, 0), 0);
	part_uuids("M3", first);
	for (i = 0; i < UUID_PARTS; i++) {
		expected_part_uuid(&base_uuid, (uint32_t)i, want);
		assert_memory_equal(first[i].u, want, 16);
		assert_int_equal(first[i].u[6] >> 4, 8);      /* version 8 */
		assert_int_equal(first[i].u[8] & 0xc0, 0x80); /* RFC variant */
		assert_int_not_equal(ust_uuid_compare(&first[i], &base_uuid), 0);
		for (j = 0; j < i; j++)
			assert_int_not_equal(ust_uuid_compare(&first[i], &first[j]), 0);
	}

	/* Delete and recreate the split (through the RPC, as a config replay does). */
	assert_int_equal(ust_bdev_split_delete("M3", NULL, NULL), 0);
	ut_threads_poll();
	assert_null(ust_bdev_get_by_name("M3p0"));
	r = ut_rpc("bdev_split_create", json_pack("{s:s, s:i}", "base_bdev", "M3", "split_count",
					       UUID_PARTS));
	assert_int_equal(json_array_size(json_object_get(r, "result")), UUID_PARTS);
	json_decref(r);
	part_uuids("M3", again);
	assert_memory_equal(first, again, sizeof(first));

	/* The base goes away and comes back with its UUID: the same part UUIDs. */
	delete_malloc("M3");
	assert_null(ust_bdev_get_by_name("M3p0"));
	make_malloc_uuid("M3", 96, &base_uuid);
	part_uuids("M3", again);
	assert_memory_equal(first, again, sizeof(first));

	/* A base with another UUID (one bit apart) gives other part UUIDs. */
	delete_malloc("M3");
	make_malloc_uuid("M3", 96, &other_uuid);
	part_uuids("M3", again);
	for (i = 0; i < UUID_PARTS; i++) {
		for (j = 0; j < UUID_PARTS; j++)
			assert_int_not_equal(ust_uuid_compare(&again[i], &first[j]), 0);
	}
	assert_int_equal(ust_bdev_split_delete("M3", NULL, NULL), 0);
	ut_threads_poll();
	delete_malloc("M3");
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
		cmocka_unit_test(test_roundtrip_and_bounds),
		cmocka_unit_test(test_sizes_and_claimed_base),
		cmocka_unit_test(test_late_base_hot_remove_and_config),
		cmocka_unit_test(test_part_uuids_stable),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
