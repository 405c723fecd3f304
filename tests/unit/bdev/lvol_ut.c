/*
 * Unit tests for the lvol module (bdev/lvol) on a malloc bdev and on a RAM
 * disk defined here whose contents outlive unregistering (for "restarts"),
 * with two ust_threads polled by hand: lvstore creation and listing, thick
 * and thin lvols, I/O through the lvol bdev (flush from a second thread),
 * resize up and down, renames, deletes (refused while open), a restart that
 * brings every lvstore and lvol back with its names, UUIDs, sizes and data,
 * shutdown with live lvols, the RPC error paths; snapshots, clones,
 * inflate, decouple, revert (and a revert cut short, resolved at load),
 * delete-merge, all across restarts. Shutdown (a group of its own, each
 * test starting and finishing the bdev layer): the core keeps the bases
 * until every store, idle or busy with an operation, unloaded cleanly,
 * and finishes at once with no store.
 */
#include <endian.h>
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
#include "ustor/lvol.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"
#include "ut_ramdisk.h"
#include "ut_rpc.h"
#include "ut_threads.h"

#include "../../../bdev/malloc/bdev_malloc.h"
#include "../../../blobstore/format.h"

#define BLOCK 512
#define MALLOC_BYTES (16u << 20)
#define CLUSTER (64u << 10)
#define MIB (1u << 20)

/* ---- RAM disks whose bytes survive unregistering (ut_ramdisk.h) ---------------------- */

#define PRAM_BYTES (8u << 20)
#define PRAM_DISKS 2

/* Pram0 serves most tests; the shutdown test puts a store on each. */
static struct ut_ramdisk g_pram[PRAM_DISKS];

/* Register disk i ("Pram<i>") over its bytes, which it keeps across registrations. */
static void pram_register(int i)
{
	char name[8];

	snprintf(name, sizeof(name), "Pram%d", i);
	g_pram[i].bytes = PRAM_BYTES;
	ut_ramdisk_register(&g_pram[i], name);
}

static void pram_unregister(int i)
{
	ut_ramdisk_unregister(&g_pram[i]);
}

/* ---- RPC helpers -------------------------------------------------------------------- */

static const char *rpc_error_message(json_t *resp)
{
	return json_string_value(json_object_get(json_object_get(resp, "error"), "message"));
}

/* Expect an error response with that code whose message contains needle. */
static void rpc_expect_error(const char *method, json_t *params, int code, const char *needle)
{
	json_t *x = ut_rpc(method, params);

	assert_int_equal(ut_rpc_error_code(x), code);
	if (needle != NULL && strstr(rpc_error_message(x), needle) == NULL)
		fail_msg("%s: message '%s' lacks '%s'", method, rpc_error_message(x), needle);
	json_decref(x);
}

static void rpc_expect_true(const char *method, json_t *params)
{
	json_t *x = ut_rpc(method, params);

	if (!json_is_true(json_object_get(x, "result")))
		fail_msg("%s failed: %s", method, rpc_error_message(x));
	json_decref(x);
}

/* A string result, copied into out. */
static void rpc_expect_string(const char *method, json_t *params, char *out, size_t len)
{
	json_t *x = ut_rpc(method, params);
	const char *s = json_string_value(json_object_get(x, "result"));

	if (s == NULL)
		fail_msg("%s failed: %s", method, rpc_error_message(x));
	snprintf(out, len, "%s", s);
	json_decref(x);
}

/* The live lvstore on that base bdev, if any. */
static struct ust_lvol_store *lvs_on(const char *base)
{
	struct ust_lvol_store *lvs;

	for (lvs = ust_lvs_first(); lvs != NULL; lvs = ust_lvs_next(lvs)) {
		if (strcmp(ust_lvs_get_base_bdev_name(lvs), base) == 0)
			return lvs;
	}
	return NULL;
}

static void create_lvs(const char *bdev, const char *name, char *uuid)
{
	rpc_expect_string("bdev_lvol_create_lvstore",
			  json_pack("{s:s, s:s, s:i}", "bdev_name", bdev, "lvs_name", name,
				    "cluster_sz", CLUSTER),
			  uuid, UST_UUID_STRING_LEN);
}

static void create_lvol(const char *lvs, const char *name, int mib, bool thin, char *bdev_name)
{
	rpc_expect_string("bdev_lvol_create",
			  json_pack("{s:s, s:s, s:i, s:b}", "lvs_name", lvs, "lvol_name", name,
				    "size_in_mib", mib, "thin_provision", thin),
			  bdev_name, UST_UUID_STRING_LEN);
}

/* The one lvstore in bdev_lvol_get_lvstores {lvs_name}; caller decrefs the response. */
static json_t *get_lvs(const char *name, json_t **resp)
{
	json_t *list;

	*resp = ut_rpc("bdev_lvol_get_lvstores", json_pack("{s:s}", "lvs_name", name));
	list = json_object_get(*resp, "result");
	assert_true(json_is_array(list));
	assert_int_equal(json_array_size(list), 1);
	return json_array_get(list, 0);
}

static json_int_t lvs_int(const char *name, const char *key)
{
	json_t *resp, *lvs = get_lvs(name, &resp);
	json_int_t v = json_integer_value(json_object_get(lvs, key));

	json_decref(resp);
	return v;
}

/* ---- I/O helpers ---------------------------------------------------------------------- */

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

static int io_wait(struct io_result *r, int rc)
{
	assert_int_equal(rc, 0);
	ut_threads_poll();
	assert_int_equal(r->done, 1);
	return r->status;
}

static void fill(uint8_t *buf, size_t len, uint8_t seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed + i * 7 + (i >> 9));
}

static void event_cb(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	(void)type;
	(void)bdev;
	(void)ctx;
}

static void write_bdev(const char *name, uint64_t offset_blocks, void *buf, uint64_t blocks)
{
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;
	struct io_result r = {0};

	assert_int_equal(ust_bdev_open_ext(name, true, event_cb, NULL, &desc), 0);
	ch = ust_bdev_get_io_channel(desc);
	assert_non_null(ch);
	assert_int_equal(io_wait(&r, ust_bdev_write_blocks(desc, ch, buf, offset_blocks, blocks,
							   io_cb, &r)),
			 0);
	ust_put_io_channel(ch);
	ust_bdev_close(desc);
	ut_threads_poll();
}

static void read_bdev(const char *name, uint64_t offset_blocks, void *buf, uint64_t blocks)
{
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;
	struct io_result r = {0};

	assert_int_equal(ust_bdev_open_ext(name, false, event_cb, NULL, &desc), 0);
	ch = ust_bdev_get_io_channel(desc);
	assert_non_null(ch);
	assert_int_equal(io_wait(&r, ust_bdev_read_blocks(desc, ch, buf, offset_blocks, blocks,
							  io_cb, &r)),
			 0);
	ust_put_io_channel(ch);
	ust_bdev_close(desc);
	ut_threads_poll();
}

static void make_malloc(const char *name)
{
	struct ust_malloc_opts o = {.name = name, .num_blocks = MALLOC_BYTES / BLOCK,
				    .block_size = BLOCK};

	assert_int_equal(ust_bdev_malloc_create(&o, NULL), 0);
	ut_threads_poll();
}

static void deleted(void *ctx, int rc)
{
	*(int *)ctx = rc == 0 ? 1 : rc;
}

static void drop_malloc(const char *name)
{
	int done = 0;

	assert_int_equal(ust_bdev_malloc_delete(name, deleted, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_lvstore_create_list_delete(void **state)
{
	char uuid[UST_UUID_STRING_LEN], uuid2[UST_UUID_STRING_LEN];
	struct ust_uuid u;
	json_t *resp, *lvs, *list;
	json_int_t clusters;

	make_malloc("M0");
	create_lvs("M0", "lvs0", uuid);
	assert_int_equal(ust_uuid_parse(&u, uuid), 0);
	assert_true(ust_bdev_is_claimed(ust_bdev_get_by_name("M0")));

	lvs = get_lvs("lvs0", &resp);
	assert_string_equal(json_string_value(json_object_get(lvs, "uuid")), uuid);
	assert_string_equal(json_string_value(json_object_get(lvs, "name")), "lvs0");
	assert_string_equal(json_string_value(json_object_get(lvs, "base_bdev")), "M0");
	assert_int_equal(json_integer_value(json_object_get(lvs, "cluster_size")), CLUSTER);
	assert_int_equal(json_integer_value(json_object_get(lvs, "block_size")), BLOCK);
	/* Metadata takes some clusters; nothing else is used yet. */
	assert_true(json_integer_value(json_object_get(lvs, "total_data_clusters")) > 200);
	assert_true(json_integer_value(json_object_get(lvs, "total_data_clusters")) <=
		    MALLOC_BYTES / CLUSTER);
	assert_int_equal(json_integer_value(json_object_get(lvs, "free_clusters")),
			 json_integer_value(json_object_get(lvs, "total_data_clusters")));
	json_decref(resp);

	/* By UUID, and the whole list. */
	resp = ut_rpc("bdev_lvol_get_lvstores", json_pack("{s:s}", "uuid", uuid));
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(resp, "result"), 0), "name")),
			    "lvs0");
	json_decref(resp);
	resp = ut_rpc("bdev_lvol_get_lvstores", NULL);
	list = json_object_get(resp, "result");
	assert_int_equal(json_array_size(list), 1);
	json_decref(resp);

	/* Errors: taken name, claimed bdev, missing bdev, bad names and selectors. */
	make_malloc("M1");
	rpc_expect_error("bdev_lvol_create_lvstore",
			 json_pack("{s:s, s:s}", "bdev_name", "M1", "lvs_name", "lvs0"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "File exists");
	rpc_expect_error("bdev_lvol_create_lvstore",
			 json_pack("{s:s, s:s}", "bdev_name", "M0", "lvs_name", "other"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "File exists");
	rpc_expect_error("bdev_lvol_create_lvstore",
			 json_pack("{s:s, s:s}", "bdev_name", "nope", "lvs_name", "other"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "no bdev named nope");
	rpc_expect_error("bdev_lvol_create_lvstore",
			 json_pack("{s:s, s:s}", "bdev_name", "M1", "lvs_name", "a/b"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "lvs_name");
	rpc_expect_error("bdev_lvol_create_lvstore",
			 json_pack("{s:s, s:s, s:s}", "bdev_name", "M1", "lvs_name", "x",
				   "clear_method", "shred"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "clear_method");
	rpc_expect_error("bdev_lvol_get_lvstores", json_pack("{s:s}", "lvs_name", "nope"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "no lvstore nope");
	rpc_expect_error("bdev_lvol_get_lvstores",
			 json_pack("{s:s, s:s}", "lvs_name", "lvs0", "uuid", uuid),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "exactly one");
	rpc_expect_error("bdev_lvol_delete_lvstore", json_pack("{s:s}", "uuid", "not-a-uuid"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "invalid uuid");
	/* Growing a store whose base has not grown changes nothing and succeeds. */
	clusters = lvs_int("lvs0", "total_data_clusters");
	rpc_expect_true("bdev_lvol_grow_lvstore", json_pack("{s:s}", "lvs_name", "lvs0"));
	assert_int_equal(lvs_int("lvs0", "total_data_clusters"), clusters);
	rpc_expect_error("bdev_lvol_grow_lvstore", json_pack("{s:s}", "lvs_name", "nope"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "no lvstore nope");

	/* A second store, with write_zeroes clearing; both listed. */
	rpc_expect_string("bdev_lvol_create_lvstore",
			  json_pack("{s:s, s:s, s:s}", "bdev_name", "M1", "lvs_name", "lvs1",
				    "clear_method", "write_zeroes"),
			  uuid2, sizeof(uuid2));
	assert_string_not_equal(uuid, uuid2);
	assert_int_equal(lvs_int("lvs1", "cluster_size"), 1 << 20); /* the default */
	resp = ut_rpc("bdev_lvol_get_lvstores", NULL);
	assert_int_equal(json_array_size(json_object_get(resp, "result")), 2);
	json_decref(resp);

	/* Delete by name and by UUID: the bases are free again. */
	rpc_expect_true("bdev_lvol_delete_lvstore", json_pack("{s:s}", "lvs_name", "lvs1"));
	rpc_expect_true("bdev_lvol_delete_lvstore", json_pack("{s:s}", "uuid", uuid));
	assert_false(ust_bdev_is_claimed(ust_bdev_get_by_name("M0")));
	assert_false(ust_bdev_is_claimed(ust_bdev_get_by_name("M1")));
	assert_null(ust_lvs_get_by_name("lvs0"));
	rpc_expect_error("bdev_lvol_delete_lvstore", json_pack("{s:s}", "lvs_name", "lvs0"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "no lvstore");

	/* A destroyed store is really gone: examining the bdev again finds nothing. */
	drop_malloc("M1");
	drop_malloc("M0");
}

static void test_lvols_io(void **state)
{
	char lvs_uuid[UST_UUID_STRING_LEN], thick[UST_UUID_STRING_LEN], thin[UST_UUID_STRING_LEN];
	char big[UST_UUID_STRING_LEN];
	uint8_t *w = malloc(4 * CLUSTER), *r = malloc(4 * CLUSTER);
	struct ust_bdev *bdev;
	struct ust_lvol *lvol;
	json_int_t free0;
	json_t *resp, *list, *e;
	size_t i;

	make_malloc("M0");
	create_lvs("M0", "lvs0", lvs_uuid);
	free0 = lvs_int("lvs0", "free_clusters");

	/* Thick: 1 MiB = 16 clusters taken at once; named by UUID, alias lvs/lvol. */
	create_lvol("lvs0", "thick", 1, false, thick);
	bdev = ust_bdev_get_by_name(thick);
	assert_non_null(bdev);
	assert_ptr_equal(ust_bdev_get_by_name("lvs0/thick"), bdev);
	assert_string_equal(ust_bdev_get_module_name(bdev), "lvol");
	assert_int_equal(ust_bdev_get_block_size(bdev), BLOCK);
	assert_int_equal(ust_bdev_get_num_blocks(bdev), MIB / BLOCK);
	{
		char buf[UST_UUID_STRING_LEN];

		ust_uuid_fmt(buf, sizeof(buf), ust_bdev_get_uuid(bdev));
		assert_string_equal(buf, thick);
	}
	assert_int_equal(lvs_int("lvs0", "free_clusters"), free0 - 16);

	/* Thin, sized in bytes (the old "size" parameter), rounded up to a cluster. */
	rpc_expect_string("bdev_lvol_create",
			  json_pack("{s:s, s:s, s:I, s:b}", "uuid", lvs_uuid, "lvol_name", "thin",
				    "size", (json_int_t)(2 * MIB + 1), "thin_provision", 1),
			  thin, sizeof(thin));
	assert_int_equal(ust_bdev_get_num_blocks(ust_bdev_get_by_name("lvs0/thin")),
			 (2 * MIB + CLUSTER) / BLOCK);
	assert_int_equal(lvs_int("lvs0", "free_clusters"), free0 - 16);

	/* A thin lvol may be larger than the store; a thick one may not. */
	create_lvol("lvs0", "huge_thin", 1024, true, big);
	rpc_expect_error("bdev_lvol_create",
			 json_pack("{s:s, s:s, s:i}", "lvs_name", "lvs0", "lvol_name", "huge",
				   "size_in_mib", 1024),
			 UST_JSONRPC_ERROR_INTERNAL_ERROR, "No space left");
	assert_null(ust_bdev_get_by_name("lvs0/huge"));
	assert_int_equal(lvs_int("lvs0", "free_clusters"), free0 - 16);
	/* Duplicate name, unknown store, bad sizes, bad names. */
	rpc_expect_error("bdev_lvol_create",
			 json_pack("{s:s, s:s, s:i}", "lvs_name", "lvs0", "lvol_name", "thick",
				   "size_in_mib", 1),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "File exists");
	rpc_expect_error("bdev_lvol_create",
			 json_pack("{s:s, s:s, s:i}", "lvs_name", "nope", "lvol_name", "x",
				   "size_in_mib", 1),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "no lvstore nope");
	rpc_expect_error("bdev_lvol_create", json_pack("{s:s, s:s}", "lvs_name", "lvs0",
						       "lvol_name", "x"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "size_in_mib");
	rpc_expect_error("bdev_lvol_create",
			 json_pack("{s:s, s:s, s:i, s:i}", "lvs_name", "lvs0", "lvol_name", "x",
				   "size_in_mib", 1, "size", 4096),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "not both");
	rpc_expect_error("bdev_lvol_create",
			 json_pack("{s:s, s:s, s:i}", "lvs_name", "lvs0", "lvol_name", "",
				   "size_in_mib", 1),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "lvol_name");
	rpc_expect_true("bdev_lvol_delete", json_pack("{s:s}", "name", big));

	/* I/O round trip through each lvol bdev, crossing clusters. */
	fill(w, 4 * CLUSTER, 3);
	write_bdev("lvs0/thick", CLUSTER / BLOCK - 8, w, 3 * CLUSTER / BLOCK);
	memset(r, 0, 4 * CLUSTER);
	read_bdev(thick, CLUSTER / BLOCK - 8, r, 3 * CLUSTER / BLOCK);
	assert_memory_equal(w, r, 3 * CLUSTER);
	lvol = ust_lvol_get_by_bdev_name("lvs0/thin");
	assert_non_null(lvol);
	assert_int_equal(ust_lvol_get_num_allocated_clusters(lvol), 0);
	fill(w, 4 * CLUSTER, 99);
	write_bdev("lvs0/thin", 2 * CLUSTER / BLOCK, w, CLUSTER / BLOCK + 1);
	assert_int_equal(ust_lvol_get_num_allocated_clusters(lvol), 2);
	assert_int_equal(lvs_int("lvs0", "free_clusters"), free0 - 18);
	memset(r, 0xee, 4 * CLUSTER);
	read_bdev("lvs0/thin", 0, r, 4 * CLUSTER / BLOCK);
	for (i = 0; i < 2 * CLUSTER; i++)
		assert_int_equal(r[i], 0); /* never written: zeros */
	assert_memory_equal(r + 2 * CLUSTER, w, CLUSTER + BLOCK);

	/* write_zeroes, unmap, flush (from another thread too), reset. */
	{
		struct ust_bdev_desc *desc;
		struct ust_io_channel *ch, *ch1;
		struct io_result res;

		assert_int_equal(ust_bdev_open_ext(thick, true, event_cb, NULL, &desc), 0);
		ch = ust_bdev_get_io_channel(desc);
		memset(&res, 0, sizeof(res));
		assert_int_equal(io_wait(&res, ust_bdev_write_zeroes_blocks(desc, ch, CLUSTER / BLOCK,
									    4, io_cb, &res)),
				 0);
		memset(&res, 0, sizeof(res));
		assert_int_equal(io_wait(&res, ust_bdev_unmap_blocks(desc, ch, CLUSTER / BLOCK + 4,
								     4, io_cb, &res)),
				 0);
		memset(&res, 0, sizeof(res));
		assert_int_equal(io_wait(&res, ust_bdev_flush_blocks(desc, ch, 0,
								     MIB / BLOCK, io_cb, &res)),
				 0);
		memset(&res, 0, sizeof(res));
		assert_int_equal(io_wait(&res, ust_bdev_reset(desc, ch, io_cb, &res)), 0);

		/* Flush submitted on t1 goes to the metadata thread (t0) and back. */
		ust_set_thread(ut_thread(1));
		ch1 = ust_bdev_get_io_channel(desc);
		assert_non_null(ch1);
		memset(&res, 0, sizeof(res));
		assert_int_equal(ust_bdev_flush_blocks(desc, ch1, 0, 8, io_cb, &res), 0);
		ut_threads_poll();
		assert_int_equal(res.done, 1);
		assert_int_equal(res.status, 0);
		memset(&res, 0, sizeof(res));
		ust_set_thread(ut_thread(1));
		assert_int_equal(ust_bdev_read_blocks(desc, ch1, r, CLUSTER / BLOCK - 8, 16,
						      io_cb, &res), 0);
		ut_threads_poll();
		assert_int_equal(res.done, 1);
		assert_int_equal(res.status, 0);
		fill(w, 8 * BLOCK, 3);
		assert_memory_equal(r, w, 8 * BLOCK); /* read on t1: intact before the zeroes */
		ust_set_thread(ut_thread(1));
		ust_put_io_channel(ch1);
		ust_set_thread(ut_thread(0));
		ust_put_io_channel(ch);
		ust_bdev_close(desc);
		ut_threads_poll();
	}
	fill(w, 4 * CLUSTER, 3);
	read_bdev(thick, CLUSTER / BLOCK - 8, r, 16);
	assert_memory_equal(r, w, 8 * BLOCK); /* before the zeroed range: intact */
	for (i = 8 * BLOCK; i < 16 * BLOCK; i++)
		assert_int_equal(r[i], 0);

	/* bdev_lvol_get_lvols */
	resp = ut_rpc("bdev_lvol_get_lvols", json_pack("{s:s}", "lvs_name", "lvs0"));
	list = json_object_get(resp, "result");
	assert_int_equal(json_array_size(list), 2);
	e = json_array_get(list, 0);
	assert_string_equal(json_string_value(json_object_get(e, "alias")), "lvs0/thick");
	assert_string_equal(json_string_value(json_object_get(e, "uuid")), thick);
	assert_string_equal(json_string_value(json_object_get(e, "name")), "thick");
	assert_false(json_is_true(json_object_get(e, "is_thin_provisioned")));
	assert_false(json_is_true(json_object_get(e, "is_snapshot")));
	assert_false(json_is_true(json_object_get(e, "is_clone")));
	assert_int_equal(json_integer_value(json_object_get(e, "num_allocated_clusters")), 16);
	assert_string_equal(json_string_value(json_object_get(json_object_get(e, "lvs"), "name")),
			    "lvs0");
	assert_string_equal(json_string_value(json_object_get(json_object_get(e, "lvs"), "uuid")),
			    lvs_uuid);
	e = json_array_get(list, 1);
	assert_string_equal(json_string_value(json_object_get(e, "alias")), "lvs0/thin");
	assert_true(json_is_true(json_object_get(e, "is_thin_provisioned")));
	assert_int_equal(json_integer_value(json_object_get(e, "num_allocated_clusters")), 2);
	json_decref(resp);
	resp = ut_rpc("bdev_lvol_get_lvols", NULL);
	assert_int_equal(json_array_size(json_object_get(resp, "result")), 2);
	json_decref(resp);
	rpc_expect_error("bdev_lvol_get_lvols", json_pack("{s:s}", "lvs_uuid", "x"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "invalid uuid");

	/* The lvol bdev describes itself in bdev_get_bdevs. */
	resp = ut_rpc("bdev_get_bdevs", json_pack("{s:s}", "name", "lvs0/thin"));
	e = json_object_get(json_object_get(json_array_get(json_object_get(resp, "result"), 0),
					    "driver_specific"),
			    "lvol");
	assert_non_null(e);
	assert_string_equal(json_string_value(json_object_get(e, "lvol_store_uuid")), lvs_uuid);
	assert_string_equal(json_string_value(json_object_get(e, "base_bdev")), "M0");
	assert_true(json_is_true(json_object_get(e, "thin_provision")));
	json_decref(resp);

	/* Leave lvs0 with its lvols loaded: teardown's shutdown must unload them. */
	free(w);
	free(r);
}

static void test_resize_rename_delete(void **state)
{
	char lvs_uuid[UST_UUID_STRING_LEN], vol[UST_UUID_STRING_LEN], other[UST_UUID_STRING_LEN];
	uint8_t *w = malloc(2 * MIB), *r = malloc(2 * MIB);
	struct ust_bdev_desc *desc;
	json_int_t free0;
	json_t *resp;

	make_malloc("M2");
	create_lvs("M2", "store", lvs_uuid);
	free0 = lvs_int("store", "free_clusters");
	create_lvol("store", "vol", 1, false, vol);
	create_lvol("store", "other", 1, true, other);
	fill(w, 2 * MIB, 41);
	write_bdev(vol, 0, w, MIB / BLOCK);

	/* Grow to 2 MiB: data kept, new clusters allocated, bdev bigger. */
	rpc_expect_true("bdev_lvol_resize", json_pack("{s:s, s:i}", "name", "store/vol",
						      "size_in_mib", 2));
	assert_int_equal(ust_bdev_get_num_blocks(ust_bdev_get_by_name(vol)), 2 * MIB / BLOCK);
	assert_int_equal(lvs_int("store", "free_clusters"), free0 - 32);
	write_bdev(vol, MIB / BLOCK, w + MIB, MIB / BLOCK);
	read_bdev(vol, 0, r, 2 * MIB / BLOCK);
	assert_memory_equal(r, w, 2 * MIB);

	/* Shrinking is refused while the bdev is open, and changes nothing. */
	assert_int_equal(ust_bdev_open_ext(vol, false, event_cb, NULL, &desc), 0);
	rpc_expect_error("bdev_lvol_resize", json_pack("{s:s, s:i}", "name", vol, "size", 65536),
			 UST_JSONRPC_ERROR_INVALID_STATE, "cannot resize lvol");
	ust_bdev_close(desc);
	ut_threads_poll();
	assert_int_equal(ust_bdev_get_num_blocks(ust_bdev_get_by_name(vol)), 2 * MIB / BLOCK);

	/* Shrink to 3 clusters (bytes, rounded up): the first 3 clusters kept. */
	rpc_expect_true("bdev_lvol_resize", json_pack("{s:s, s:i}", "name", vol, "size",
						      2 * CLUSTER + 1));
	assert_int_equal(ust_bdev_get_num_blocks(ust_bdev_get_by_name(vol)), 3 * CLUSTER / BLOCK);
	assert_int_equal(lvs_int("store", "free_clusters"), free0 - 3);
	read_bdev(vol, 0, r, 3 * CLUSTER / BLOCK);
	assert_memory_equal(r, w, 3 * CLUSTER);
	/* Too big for a thick lvol: ENOSPC and nothing changed. */
	rpc_expect_error("bdev_lvol_resize", json_pack("{s:s, s:i}", "name", vol, "size_in_mib",
						       64),
			 UST_JSONRPC_ERROR_INTERNAL_ERROR, "No space left");
	assert_int_equal(ust_bdev_get_num_blocks(ust_bdev_get_by_name(vol)), 3 * CLUSTER / BLOCK);
	assert_int_equal(lvs_int("store", "free_clusters"), free0 - 3);
	rpc_expect_error("bdev_lvol_resize", json_pack("{s:s, s:i}", "name", "store/nope",
						       "size_in_mib", 1),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "no lvol bdev");

	/* Rename the lvol: the alias follows; a taken name is refused. */
	rpc_expect_true("bdev_lvol_rename", json_pack("{s:s, s:s}", "old_name", "store/vol",
						      "new_name", "vol2"));
	assert_null(ust_bdev_get_by_name("store/vol"));
	assert_ptr_equal(ust_bdev_get_by_name("store/vol2"), ust_bdev_get_by_name(vol));
	assert_string_equal(ust_lvol_get_name(ust_lvol_get_by_bdev_name(vol)), "vol2");
	rpc_expect_error("bdev_lvol_rename", json_pack("{s:s, s:s}", "old_name", vol, "new_name",
						       "other"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "File exists");
	rpc_expect_error("bdev_lvol_rename", json_pack("{s:s, s:s}", "old_name", "M2", "new_name",
						       "x"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "no lvol bdev M2");

	/* Rename the store: every alias follows. */
	rpc_expect_true("bdev_lvol_rename_lvstore", json_pack("{s:s, s:s}", "old_name", "store",
							      "new_name", "pool"));
	assert_null(ust_lvs_get_by_name("store"));
	assert_non_null(ust_lvs_get_by_name("pool"));
	assert_ptr_equal(ust_bdev_get_by_name("pool/vol2"), ust_bdev_get_by_name(vol));
	assert_ptr_equal(ust_bdev_get_by_name("pool/other"), ust_bdev_get_by_name(other));
	assert_null(ust_bdev_get_by_name("store/other"));
	resp = ut_rpc("bdev_lvol_get_lvols", json_pack("{s:s}", "lvs_name", "pool"));
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(resp, "result"), 0), "alias")),
			    "pool/vol2");
	json_decref(resp);
	rpc_expect_error("bdev_lvol_rename_lvstore",
			 json_pack("{s:s, s:s}", "old_name", "store", "new_name", "x"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "no lvstore store");

	/* Delete: refused while open for writing, fine once closed. */
	assert_int_equal(ust_bdev_open_ext("pool/vol2", true, event_cb, NULL, &desc), 0);
	rpc_expect_error("bdev_lvol_delete", json_pack("{s:s}", "name", "pool/vol2"),
			 UST_JSONRPC_ERROR_INVALID_STATE, "open for writing");
	assert_non_null(ust_bdev_get_by_name(vol));
	rpc_expect_error("bdev_lvol_delete_lvstore", json_pack("{s:s}", "lvs_name", "pool"),
			 UST_JSONRPC_ERROR_INVALID_STATE, NULL);
	ust_bdev_close(desc);
	ut_threads_poll();
	rpc_expect_true("bdev_lvol_delete", json_pack("{s:s}", "name", "pool/vol2"));
	assert_null(ust_bdev_get_by_name(vol));
	assert_null(ust_bdev_get_by_name("pool/vol2"));
	assert_int_equal(lvs_int("pool", "free_clusters"), free0);
	rpc_expect_error("bdev_lvol_delete", json_pack("{s:s}", "name", vol),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "no lvol bdev");
	/* The name is free again. */
	create_lvol("pool", "vol2", 1, true, vol);

	/* Deleting the store takes its lvols with it. */
	rpc_expect_true("bdev_lvol_delete_lvstore", json_pack("{s:s}", "lvs_name", "pool"));
	assert_null(ust_bdev_get_by_name("pool/other"));
	assert_null(ust_bdev_get_by_name(vol));
	assert_false(ust_bdev_is_claimed(ust_bdev_get_by_name("M2")));
	drop_malloc("M2");
	free(w);
	free(r);
}

/* Unload (as at shutdown), unregister the base, register it again: all back. */
static void test_restart(void **state)
{
	char lvs_uuid[UST_UUID_STRING_LEN], a[UST_UUID_STRING_LEN], b[UST_UUID_STRING_LEN];
	uint8_t *w = malloc(MIB), *r = malloc(MIB);
	struct ust_lvol_store *lvs;
	struct ust_lvol *lvol;
	json_int_t free_before;
	json_t *resp, *e;
	int rc = 1;

	g_pram[0].data = calloc(1, PRAM_BYTES);
	pram_register(0);
	/* A blank bdev is examined quietly and left unclaimed. */
	assert_false(ust_bdev_is_claimed(&g_pram[0].bdev));
	assert_null(lvs_on("Pram0"));

	create_lvs("Pram0", "keep", lvs_uuid);
	create_lvol("keep", "a", 1, false, a);
	create_lvol("keep", "b", 2, true, b);
	rpc_expect_true("bdev_lvol_rename", json_pack("{s:s, s:s}", "old_name", "keep/b",
						      "new_name", "bee"));
	rpc_expect_true("bdev_lvol_resize", json_pack("{s:s, s:i}", "name", "keep/a",
						      "size_in_mib", 2));
	fill(w, MIB, 17);
	write_bdev(a, MIB / BLOCK, w, MIB / BLOCK);
	write_bdev(b, 5, w, 64);
	free_before = lvs_int("keep", "free_clusters");

	/* An lvol open for writing blocks an orderly unload. */
	lvs = ust_lvs_get_by_name("keep");
	{
		struct ust_bdev_desc *desc;

		assert_int_equal(ust_bdev_open_ext(a, true, event_cb, NULL, &desc), 0);
		ust_lvs_unload(lvs, deleted, &rc);
		ut_threads_poll();
		assert_int_equal(rc, -EBUSY);
		ust_bdev_close(desc);
		ut_threads_poll();
	}
	rc = 0;
	ust_lvs_unload(lvs, deleted, &rc);
	ut_threads_poll();
	assert_int_equal(rc, 1);
	assert_null(ust_bdev_get_by_name(a));
	assert_null(ust_bdev_get_by_name("keep/bee"));
	assert_null(ust_lvs_get_by_name("keep"));
	assert_false(ust_bdev_is_claimed(&g_pram[0].bdev));
	pram_unregister(0);

	/* "Restart": the same bytes come back as a new bdev; examine loads the store. */
	pram_register(0);
	lvs = ust_lvs_get_by_name("keep");
	assert_non_null(lvs);
	assert_true(ust_bdev_is_claimed(&g_pram[0].bdev));
	{
		char buf[UST_UUID_STRING_LEN];

		ust_uuid_fmt(buf, sizeof(buf), ust_lvs_get_uuid(lvs));
		assert_string_equal(buf, lvs_uuid);
	}
	assert_int_equal(lvs_int("keep", "free_clusters"), free_before);
	assert_int_equal(lvs_int("keep", "cluster_size"), CLUSTER);
	assert_ptr_equal(ust_bdev_get_by_name("keep/a"), ust_bdev_get_by_name(a));
	assert_ptr_equal(ust_bdev_get_by_name("keep/bee"), ust_bdev_get_by_name(b));
	assert_non_null(ust_bdev_get_by_name(a));
	assert_int_equal(ust_bdev_get_num_blocks(ust_bdev_get_by_name(a)), 2 * MIB / BLOCK);
	assert_int_equal(ust_bdev_get_num_blocks(ust_bdev_get_by_name(b)), 2 * MIB / BLOCK);
	lvol = ust_lvol_get_by_bdev_name(b);
	assert_true(ust_lvol_is_thin(lvol));
	assert_int_equal(ust_lvol_get_num_allocated_clusters(lvol), 1);
	read_bdev(a, MIB / BLOCK, r, MIB / BLOCK);
	assert_memory_equal(r, w, MIB);
	read_bdev("keep/bee", 5, r, 64);
	assert_memory_equal(r, w, 64 * BLOCK);
	resp = ut_rpc("bdev_lvol_get_lvols", json_pack("{s:s}", "lvs_uuid", lvs_uuid));
	assert_int_equal(json_array_size(json_object_get(resp, "result")), 2);
	e = json_array_get(json_object_get(resp, "result"), 1);
	assert_string_equal(json_string_value(json_object_get(e, "name")), "bee");
	assert_string_equal(json_string_value(json_object_get(e, "uuid")), b);
	json_decref(resp);

	/* Nothing lvol-related goes into save_config: it is all on disk. */
	{
		json_t *calls = json_array();
		struct ust_bdev *bd = ust_bdev_get_by_name(a);

		bd->fn_table->write_config_json(bd, calls);
		assert_int_equal(json_array_size(calls), 0);
		json_decref(calls);
	}

	rpc_expect_true("bdev_lvol_rename_lvstore", json_pack("{s:s, s:s}", "old_name", "keep",
							      "new_name", "moved"));

	/* After the rename and another restart the new name is what loads. */
	rc = 0;
	ust_lvs_unload(ust_lvs_get_by_name("moved"), deleted, &rc);
	ut_threads_poll();
	assert_int_equal(rc, 1);
	pram_unregister(0);
	pram_register(0);
	assert_non_null(ust_lvs_get_by_name("moved"));
	assert_non_null(ust_bdev_get_by_name("moved/a"));
	assert_non_null(ust_bdev_get_by_name("moved/bee"));
	assert_null(ust_lvs_get_by_name("keep"));

	/* Deleted lvols stay deleted across a restart. */
	rpc_expect_true("bdev_lvol_delete", json_pack("{s:s}", "name", "moved/bee"));
	rc = 0;
	ust_lvs_unload(ust_lvs_get_by_name("moved"), deleted, &rc);
	ut_threads_poll();
	assert_int_equal(rc, 1);
	pram_unregister(0);
	pram_register(0);
	assert_non_null(ust_bdev_get_by_name("moved/a"));
	assert_null(ust_bdev_get_by_name("moved/bee"));

	/* Shutdown unloads it; the test teardown checks the core finishes. */
	free(w);
	free(r);
}

/* Two stores may not share a name: the one found second is left alone. */
static void test_duplicate_store_name_at_examine(void **state)
{
	char u1[UST_UUID_STRING_LEN], u2[UST_UUID_STRING_LEN];
	struct ust_lvol_store *lvs;
	uint8_t *saved;
	int rc;

	/* Put "moved" aside and make "twin" on fresh bytes of Pram0. */
	rc = 0;
	ust_lvs_unload(ust_lvs_get_by_name("moved"), deleted, &rc);
	ut_threads_poll();
	assert_int_equal(rc, 1);
	pram_unregister(0);
	saved = g_pram[0].data;
	g_pram[0].data = calloc(1, PRAM_BYTES);
	pram_register(0);
	assert_null(lvs_on("Pram0"));
	create_lvs("Pram0", "twin", u1);
	rc = 0;
	ust_lvs_unload(ust_lvs_get_by_name("twin"), deleted, &rc);
	ut_threads_poll();
	assert_int_equal(rc, 1);
	pram_unregister(0);

	/* Another "twin" is loaded when Pram0 comes back: Pram0's stays on disk, unloaded. */
	make_malloc("M4");
	create_lvs("M4", "twin", u2);
	pram_register(0);
	lvs = ust_lvs_get_by_name("twin");
	assert_non_null(lvs);
	assert_string_equal(ust_lvs_get_base_bdev_name(lvs), "M4");
	assert_null(lvs_on("Pram0"));
	assert_false(ust_bdev_is_claimed(&g_pram[0].bdev));

	/* Once the other is gone, Pram0's loads. */
	rpc_expect_true("bdev_lvol_delete_lvstore", json_pack("{s:s}", "uuid", u2));
	drop_malloc("M4");
	pram_unregister(0);
	pram_register(0);
	lvs = ust_lvs_get_by_name("twin");
	assert_non_null(lvs);
	assert_string_equal(ust_lvs_get_base_bdev_name(lvs), "Pram0");

	/* "moved" back for the shutdown in teardown. */
	rc = 0;
	ust_lvs_unload(lvs, deleted, &rc);
	ut_threads_poll();
	assert_int_equal(rc, 1);
	pram_unregister(0);
	free(g_pram[0].data);
	g_pram[0].data = saved;
	pram_register(0);
	assert_non_null(ust_bdev_get_by_name("moved/a"));
}

/* ---- snapshots, clones, inflate, decouple, revert ------------------------------------- */

/* The entry of bdev_lvol_get_lvols {lvs_name} named name; NULL if absent. Caller decrefs *resp. */
static json_t *lvol_entry(const char *lvs, const char *name, json_t **resp)
{
	json_t *list, *e;
	size_t i;

	*resp = ut_rpc("bdev_lvol_get_lvols", json_pack("{s:s}", "lvs_name", lvs));
	list = json_object_get(*resp, "result");
	assert_true(json_is_array(list));
	json_array_foreach(list, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0)
			return e;
	}
	return NULL;
}

static size_t lvol_count(const char *lvs)
{
	json_t *resp = ut_rpc("bdev_lvol_get_lvols", json_pack("{s:s}", "lvs_name", lvs));
	size_t n = json_array_size(json_object_get(resp, "result"));

	json_decref(resp);
	return n;
}

/* is_snapshot, is_clone, base_snapshot (NULL: absent) and the clones' names joined by ','. */
static void expect_family(const char *lvs, const char *name, bool snap, bool clone,
			  const char *base, const char *clones)
{
	json_t *resp, *e = lvol_entry(lvs, name, &resp), *c, *x;
	char joined[256] = "";
	size_t i;

	assert_non_null(e);
	assert_int_equal(json_is_true(json_object_get(e, "is_snapshot")), snap);
	assert_int_equal(json_is_true(json_object_get(e, "is_clone")), clone);
	x = json_object_get(e, "base_snapshot");
	if (base == NULL)
		assert_null(x);
	else
		assert_string_equal(json_string_value(x), base);
	c = json_object_get(e, "clones");
	if (clones == NULL) {
		assert_null(c);
	} else {
		json_array_foreach(c, i, x) {
			if (i > 0)
				strcat(joined, ",");
			strcat(joined, json_string_value(x));
		}
		assert_string_equal(joined, clones);
	}
	json_decref(resp);
}

static void unload_store(const char *name)
{
	int rc = 0;

	ust_lvs_unload(ust_lvs_get_by_name(name), deleted, &rc);
	ut_threads_poll();
	assert_int_equal(rc, 1);
}

static void restart_pram(const char *store)
{
	unload_store(store);
	pram_unregister(0);
	pram_register(0);
	assert_non_null(ust_lvs_get_by_name(store));
}

struct blob_wait {
	int done;
	int rc;
	ust_blob_id id;
	struct ust_blob *blob;
};

static void blob_id_cb(void *arg, ust_blob_id id, int rc)
{
	struct blob_wait *w = arg;

	w->id = id;
	w->rc = rc;
	w->done = 1;
}

static void blob_rc_cb(void *arg, int rc)
{
	struct blob_wait *w = arg;

	w->rc = rc;
	w->done = 1;
}

/* The blob of the lvol named name: found by walking the store as examine does. */
static void iter_cb(void *arg, struct ust_blob *blob, int rc)
{
	struct blob_wait *w = arg;

	w->blob = rc == 0 ? blob : NULL;
	w->rc = rc;
	w->done = 1;
}

static ust_blob_id lvol_blob_id(struct ust_blob_store *bs, const char *name)
{
	struct blob_wait w = {0};
	ust_blob_id id = 0;
	const void *v;
	size_t len;

	ust_bs_iter_first(bs, iter_cb, &w);
	ut_threads_poll();
	while (w.rc == 0) {
		assert_int_equal(w.done, 1);
		if (ust_blob_get_internal_xattr(w.blob, "lvol.name", &v, &len) == 0 &&
		    len == strlen(name) && memcmp(v, name, len) == 0)
			id = ust_blob_get_id(w.blob);
		w.done = 0;
		ust_bs_iter_next(bs, w.blob, iter_cb, &w);
		ut_threads_poll();
	}
	assert_int_equal(w.rc, -ENOENT);
	assert_int_not_equal(id, 0);
	return id;
}

/* A clone of parent carrying an lvol identity and "lvol.revert_of" target: a revert's leftover. */
static void make_revert_leftover(struct ust_blob_store *bs, ust_blob_id parent, const char *name,
				 const char *uuid, ust_blob_id target)
{
	char hex[24];
	struct ust_blob_xattr x[4];
	struct blob_wait w = {0};

	snprintf(hex, sizeof(hex), "%llx", (unsigned long long)target);
	x[0] = (struct ust_blob_xattr){"lvol.name", name, strlen(name), true};
	x[1] = (struct ust_blob_xattr){"lvol.uuid", uuid, strlen(uuid), true};
	x[2] = (struct ust_blob_xattr){"lvol.clear_method", "unmap", 5, true};
	x[3] = (struct ust_blob_xattr){"lvol.revert_of", hex, strlen(hex), true};
	ust_bs_create_clone(bs, parent, x, 4, blob_id_cb, &w);
	ut_threads_poll();
	assert_int_equal(w.done, 1);
	assert_int_equal(w.rc, 0);
}

static bool bdev_writable(const char *name)
{
	return ust_bdev_io_type_supported(ust_bdev_get_by_name(name), UST_BDEV_IO_TYPE_WRITE);
}

static void test_snapshots(void **state)
{
	char u[UST_UUID_STRING_LEN], v[UST_UUID_STRING_LEN], s1[UST_UUID_STRING_LEN];
	char c1[UST_UUID_STRING_LEN], s2[UST_UUID_STRING_LEN], s3[UST_UUID_STRING_LEN];
	char x[UST_UUID_STRING_LEN];
	uint8_t *a = malloc(64 * BLOCK), *b = malloc(64 * BLOCK), *c = malloc(64 * BLOCK);
	uint8_t *r = malloc(64 * BLOCK);
	struct ust_blob_store *bs;
	struct blob_wait w = {0};
	uint8_t *saved;
	json_int_t free_before;
	ust_blob_id vid, gone;

	/* "moved" aside; a fresh store on new bytes of Pram0. */
	unload_store("moved");
	pram_unregister(0);
	saved = g_pram[0].data;
	g_pram[0].data = calloc(1, PRAM_BYTES);
	pram_register(0);
	create_lvs("Pram0", "snaps", u);
	create_lvol("snaps", "v", 1, false, v);
	fill(a, 64 * BLOCK, 1);
	fill(b, 64 * BLOCK, 2);
	fill(c, 64 * BLOCK, 3);
	write_bdev(v, 0, a, 64);
	write_bdev(v, 1024, a, 64);

	/* Snapshot: a read-only lvol bdev with the data; the lvol becomes its clone. */
	rpc_expect_string("bdev_lvol_snapshot",
			  json_pack("{s:s, s:s}", "lvol_name", "snaps/v", "snapshot_name", "s1"),
			  s1, sizeof(s1));
	assert_ptr_equal(ust_bdev_get_by_name("snaps/s1"), ust_bdev_get_by_name(s1));
	assert_false(bdev_writable(s1));
	assert_true(bdev_writable(v));
	expect_family("snaps", "s1", true, false, NULL, "v");
	expect_family("snaps", "v", false, true, "s1", NULL);
	write_bdev(v, 0, b, 64);
	read_bdev(s1, 0, r, 64);
	assert_memory_equal(r, a, 64 * BLOCK);
	read_bdev(v, 0, r, 64);
	assert_memory_equal(r, b, 64 * BLOCK);
	read_bdev(v, 1024, r, 64);
	assert_memory_equal(r, a, 64 * BLOCK);
	rpc_expect_error("bdev_lvol_snapshot",
			 json_pack("{s:s, s:s}", "lvol_name", "snaps/s1", "snapshot_name", "s9"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, NULL);
	rpc_expect_error("bdev_lvol_snapshot",
			 json_pack("{s:s, s:s}", "lvol_name", "snaps/v", "snapshot_name", "s1"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, "exists");

	/* Clone: a writable lvol reading the snapshot; a writable lvol cannot be cloned. */
	rpc_expect_string("bdev_lvol_clone",
			  json_pack("{s:s, s:s}", "snapshot_name", "snaps/s1", "clone_name", "c1"),
			  c1, sizeof(c1));
	rpc_expect_error("bdev_lvol_clone",
			 json_pack("{s:s, s:s}", "snapshot_name", v, "clone_name", "c2"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, NULL);
	read_bdev(c1, 0, r, 64);
	assert_memory_equal(r, a, 64 * BLOCK);
	expect_family("snaps", "s1", true, false, NULL, "v,c1");
	expect_family("snaps", "c1", false, true, "s1", NULL);

	/* Revert: same bdev name and UUID, the snapshot's data, a fresh clone of it. */
	rpc_expect_true("bdev_lvol_revert",
			json_pack("{s:s, s:s}", "name", "snaps/v", "snapshot_name", "snaps/s1"));
	assert_ptr_equal(ust_bdev_get_by_name("snaps/v"), ust_bdev_get_by_name(v));
	read_bdev(v, 0, r, 64);
	assert_memory_equal(r, a, 64 * BLOCK);
	expect_family("snaps", "v", false, true, "s1", NULL);
	assert_int_equal(lvol_count("snaps"), 3);
	/* Not onto a writable lvol, not while open for writing. */
	rpc_expect_error("bdev_lvol_revert",
			 json_pack("{s:s, s:s}", "name", "snaps/v", "snapshot_name", "snaps/c1"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, NULL);
	{
		struct ust_bdev_desc *desc;

		assert_int_equal(ust_bdev_open_ext(v, true, event_cb, NULL, &desc), 0);
		rpc_expect_error("bdev_lvol_revert",
				 json_pack("{s:s, s:s}", "name", v, "snapshot_name", s1),
				 UST_JSONRPC_ERROR_INVALID_STATE, NULL);
		ust_bdev_close(desc);
		ut_threads_poll();
	}

	/* Two clones: the snapshot cannot be deleted, and nothing changed. */
	rpc_expect_error("bdev_lvol_delete", json_pack("{s:s}", "name", "snaps/s1"),
			 UST_JSONRPC_ERROR_INVALID_STATE, NULL);
	assert_non_null(ust_bdev_get_by_name(s1));

	/* Inflate: c1 keeps its data and leaves the snapshot. */
	rpc_expect_true("bdev_lvol_inflate", json_pack("{s:s}", "name", "snaps/c1"));
	expect_family("snaps", "c1", false, false, NULL, NULL);
	read_bdev(c1, 0, r, 64);
	assert_memory_equal(r, a, 64 * BLOCK);
	expect_family("snaps", "s1", true, false, NULL, "v");

	/* One clone left: deleting the snapshot merges it into v. */
	write_bdev(v, 0, c, 64);
	rpc_expect_true("bdev_lvol_delete", json_pack("{s:s}", "name", "snaps/s1"));
	assert_null(ust_bdev_get_by_name(s1));
	expect_family("snaps", "v", false, false, NULL, NULL);
	read_bdev(v, 0, r, 64);
	assert_memory_equal(r, c, 64 * BLOCK);
	read_bdev(v, 1024, r, 64);
	assert_memory_equal(r, a, 64 * BLOCK);

	/* Decouple: v -> s3 -> s2 becomes v -> s2. */
	rpc_expect_string("bdev_lvol_snapshot",
			  json_pack("{s:s, s:s}", "lvol_name", v, "snapshot_name", "s2"), s2,
			  sizeof(s2));
	write_bdev(v, 0, b, 64);
	rpc_expect_string("bdev_lvol_snapshot",
			  json_pack("{s:s, s:s}", "lvol_name", v, "snapshot_name", "s3"), s3,
			  sizeof(s3));
	expect_family("snaps", "s3", true, true, "s2", "v");
	rpc_expect_error("bdev_lvol_decouple_parent", json_pack("{s:s}", "name", "snaps/c1"),
			 UST_JSONRPC_ERROR_INVALID_PARAMS, NULL);
	rpc_expect_true("bdev_lvol_decouple_parent", json_pack("{s:s}", "name", "snaps/v"));
	expect_family("snaps", "v", false, true, "s2", NULL);
	expect_family("snaps", "s3", true, true, "s2", "");
	read_bdev(v, 0, r, 64);
	assert_memory_equal(r, b, 64 * BLOCK);
	read_bdev(v, 1024, r, 64);
	assert_memory_equal(r, a, 64 * BLOCK);

	/* Restart: every lvol, its family and its data come back. */
	free_before = lvs_int("snaps", "free_clusters");
	restart_pram("snaps");
	assert_int_equal(lvs_int("snaps", "free_clusters"), free_before);
	assert_int_equal(lvol_count("snaps"), 4);
	assert_ptr_equal(ust_bdev_get_by_name("snaps/v"), ust_bdev_get_by_name(v));
	assert_ptr_equal(ust_bdev_get_by_name("snaps/s2"), ust_bdev_get_by_name(s2));
	expect_family("snaps", "v", false, true, "s2", NULL);
	expect_family("snaps", "s2", true, false, NULL, "s3,v");
	expect_family("snaps", "s3", true, true, "s2", "");
	expect_family("snaps", "c1", false, false, NULL, NULL);
	assert_false(bdev_writable(s2));
	read_bdev(v, 0, r, 64);
	assert_memory_equal(r, b, 64 * BLOCK);
	read_bdev(s2, 0, r, 64);
	assert_memory_equal(r, c, 64 * BLOCK);
	read_bdev(c1, 0, r, 64);
	assert_memory_equal(r, a, 64 * BLOCK);

	/*
	 * A revert cut short before its commit (the old blob still exists): the
	 * load deletes the new blob and keeps the old lvol. One cut short after
	 * it (the old blob gone): the new blob is the lvol.
	 */
	bs = ust_lvs_get_bs(ust_lvs_get_by_name("snaps"));
	vid = lvol_blob_id(bs, "v");
	make_revert_leftover(bs, lvol_blob_id(bs, "s2"), "v", v, vid);
	ust_bs_create_blob(bs, NULL, blob_id_cb, &w);
	ut_threads_poll();
	assert_int_equal(w.rc, 0);
	gone = w.id;
	w.done = 0;
	ust_bs_delete_blob(bs, gone, blob_rc_cb, &w);
	ut_threads_poll();
	assert_int_equal(w.done, 1);
	assert_int_equal(w.rc, 0);
	snprintf(x, sizeof(x), "%s", "0b5c7a52-1d0f-4c43-9e4b-6a7f0e3d2c11");
	make_revert_leftover(bs, lvol_blob_id(bs, "s2"), "x", x, gone);
	restart_pram("snaps");
	assert_int_equal(lvol_count("snaps"), 5);
	assert_ptr_equal(ust_bdev_get_by_name("snaps/v"), ust_bdev_get_by_name(v));
	read_bdev(v, 0, r, 64);
	assert_memory_equal(r, b, 64 * BLOCK);
	assert_ptr_equal(ust_bdev_get_by_name("snaps/x"), ust_bdev_get_by_name(x));
	read_bdev(x, 0, r, 64);
	assert_memory_equal(r, c, 64 * BLOCK);
	expect_family("snaps", "s2", true, false, NULL, "s3,v,x");
	/* The leftover is gone for good: the next load finds the same. */
	bs = ust_lvs_get_bs(ust_lvs_get_by_name("snaps"));
	assert_int_equal(lvol_blob_id(bs, "v"), vid);
	restart_pram("snaps");
	assert_int_equal(lvol_count("snaps"), 5);

	/* "moved" back for the shutdown in teardown. */
	unload_store("snaps");
	pram_unregister(0);
	free(g_pram[0].data);
	g_pram[0].data = saved;
	pram_register(0);
	assert_non_null(ust_bdev_get_by_name("moved/a"));
	free(a);
	free(b);
	free(c);
	free(r);
}

/* ---- setup -------------------------------------------------------------------------- */

/* ---- shutdown ------------------------------------------------------------------------- */

/* The primary superblock's clean flag (docs/blobstore-format.md, section 5). */
static bool pram_store_clean(int i)
{
	uint32_t clean;

	memcpy(&clean, g_pram[i].data + UST_BS_PAGE_HDR_SIZE +
	       offsetof(struct ust_bs_disk_super, clean), sizeof(clean));
	return le32toh(clean) == 1;
}

static void pram_alloc_all(void)
{
	int i;

	for (i = 0; i < PRAM_DISKS; i++) {
		g_pram[i].data = calloc(1, PRAM_BYTES);
		assert_non_null(g_pram[i].data);
	}
}

static void pram_free_all(void)
{
	int i;

	for (i = 0; i < PRAM_DISKS; i++) {
		free(g_pram[i].data);
		g_pram[i].data = NULL;
	}
}

/*
 * Shutdown with one idle store without lvols (nothing of it is a bdev the
 * core could wait for) and one with an lvol and a rename in flight: the
 * core unregisters the bases only after both stores unloaded, so both are
 * clean on disk, and the rename finished and is what loads next time.
 */
static void test_shutdown_waits_for_stores(void **state)
{
	char uuid[UST_UUID_STRING_LEN], vol[UST_UUID_STRING_LEN];
	int i, renamed = 0;

	pram_alloc_all();
	assert_int_equal(ut_bdev_start(), 0);
	for (i = 0; i < PRAM_DISKS; i++)
		pram_register(i);
	create_lvs("Pram0", "idle", uuid);
	create_lvs("Pram1", "busy", uuid);
	create_lvol("busy", "v", 1, false, vol);
	/* Loaded stores are dirty on disk: the check below can fail. */
	assert_false(pram_store_clean(0));
	assert_false(pram_store_clean(1));

	ust_lvs_rename(ust_lvs_get_by_name("busy"), "moved", deleted, &renamed);
	assert_int_equal(renamed, 0);
	assert_int_equal(ut_bdev_stop(), 0);
	assert_int_equal(renamed, 1);
	assert_null(ust_lvs_first());
	for (i = 0; i < PRAM_DISKS; i++) {
		assert_false(g_pram[i].registered);
		assert_true(pram_store_clean(i));
	}

	/* Restart: both stores load, the busy one under its new name. */
	assert_int_equal(ut_bdev_start(), 0);
	for (i = 0; i < PRAM_DISKS; i++)
		pram_register(i);
	assert_non_null(ust_lvs_get_by_name("idle"));
	assert_non_null(ust_lvs_get_by_name("moved"));
	assert_null(ust_lvs_get_by_name("busy"));
	assert_ptr_equal(ust_bdev_get_by_name("moved/v"), ust_bdev_get_by_name(vol));
	assert_non_null(ust_bdev_get_by_name(vol));
	assert_int_equal(ut_bdev_stop(), 0);
	assert_null(ust_lvs_first());
	for (i = 0; i < PRAM_DISKS; i++)
		assert_true(pram_store_clean(i));
	pram_free_all();
}

/* No lvstore at all: the lvol module lets the core go on at once. */
static void test_shutdown_without_lvstore(void **state)
{
	pram_alloc_all();
	assert_int_equal(ut_bdev_start(), 0);
	pram_register(0);
	make_malloc("M9");
	assert_null(ust_lvs_first());
	assert_int_equal(ut_bdev_stop(), 0);
	assert_false(g_pram[0].registered);
	assert_null(ust_bdev_get_by_name("M9"));
	pram_free_all();
}

/* ---- groups ------------------------------------------------------------------------------ */

static int setup(void **state)
{
	return ut_bdev_start();
}

static int teardown(void **state)
{
	/* lvs0 (with lvols, on M0) and "moved" (on Pram0) are still loaded. */
	if (ut_bdev_stop() != 0)
		return -1;
	if (ust_lvs_first() != NULL || g_pram[0].registered)
		return -1;
	free(g_pram[0].data);
	g_pram[0].data = NULL;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lvstore_create_list_delete),
		cmocka_unit_test(test_lvols_io),
		cmocka_unit_test(test_resize_rename_delete),
		cmocka_unit_test(test_restart),
		cmocka_unit_test(test_duplicate_store_name_at_examine),
		cmocka_unit_test(test_snapshots),
	};
	const struct CMUnitTest shutdown_tests[] = {
		cmocka_unit_test(test_shutdown_waits_for_stores),
		cmocka_unit_test(test_shutdown_without_lvstore),
	};
	int failed;

	if (ut_threads_setup(2) != 0)
		return 1;
	failed = cmocka_run_group_tests_name("lvol", tests, setup, teardown);
	failed += cmocka_run_group_tests_name("lvol shutdown", shutdown_tests, NULL, NULL);
	if (ut_threads_teardown() != 0)
		failed++;
	return failed;
}
