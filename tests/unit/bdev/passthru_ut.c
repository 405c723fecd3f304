/*
 * Unit tests for the passthru bdev module (bdev/passthru) over a recording
 * RAM bdev defined here: every I/O type reaches the base with the same range
 * and comes back with the base's status, data round-trips, the base is
 * claimed, a configuration naming a missing base is built when the base
 * registers, hot removal of the base removes the passthru bdev, and the
 * RPCs and save_config output.
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

#include "../../../bdev/passthru/bdev_passthru.h"

#define BS 512
#define NBLOCKS 64

/* ---- a RAM bdev that records what reaches it ---------------------------- */

struct rec_entry {
	enum ust_bdev_io_type type;
	uint64_t offset;
	uint64_t num;
};

static struct rec_entry g_rec[64];
static int g_nrec;
static int g_rec_destructs;

struct rec_disk {
	struct ust_bdev bdev;
	uint8_t data[NBLOCKS * BS];
};

static int g_rec_device;

static int rec_ch_create(void *dev, void *ctx)
{
	return 0;
}

static void rec_ch_destroy(void *dev, void *ctx)
{
}

static int rec_init(void)
{
	ust_io_device_register(&g_rec_device, rec_ch_create, rec_ch_destroy, 0, "rec");
	return 0;
}

static void rec_fini(void)
{
	ust_io_device_unregister(&g_rec_device, NULL);
}

static struct ust_bdev_module g_rec_module = {
	.name = "rec",
	.module_init = rec_init,
	.module_fini = rec_fini,
};
UST_BDEV_MODULE_REGISTER(rec, &g_rec_module)

static int rec_copy(struct rec_disk *d, struct ust_bdev_io *io)
{
	uint8_t *p = d->data + io->offset_blocks * BS;
	size_t left = io->num_blocks * BS;
	int i;

	for (i = 0; i < io->iovcnt && left > 0; i++) {
		size_t n = io->iovs[i].iov_len < left ? io->iovs[i].iov_len : left;

		if (io->type == UST_BDEV_IO_TYPE_READ)
			memcpy(io->iovs[i].iov_base, p, n);
		else if (io->type == UST_BDEV_IO_TYPE_WRITE)
			memcpy(p, io->iovs[i].iov_base, n);
		else if (memcmp(p, io->iovs[i].iov_base, n) != 0)
			return -EILSEQ;
		p += n;
		left -= n;
	}
	return 0;
}

static void rec_submit(struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct rec_disk *d = io->bdev->ctxt;
	int status = 0;

	assert_true(g_nrec < 64);
	g_rec[g_nrec].type = io->type;
	g_rec[g_nrec].offset = io->offset_blocks;
	g_rec[g_nrec].num = io->num_blocks;
	g_nrec++;
	switch (io->type) {
	case UST_BDEV_IO_TYPE_READ:
	case UST_BDEV_IO_TYPE_WRITE:
	case UST_BDEV_IO_TYPE_COMPARE:
		status = rec_copy(d, io);
		break;
	case UST_BDEV_IO_TYPE_UNMAP:
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
		memset(d->data + io->offset_blocks * BS, 0, io->num_blocks * BS);
		break;
	default:
		break;
	}
	ust_bdev_io_complete_errno(io, status);
}

static bool rec_supported(void *ctxt, enum ust_bdev_io_type type)
{
	/* compare_and_write is left to the core's emulation. */
	return type != UST_BDEV_IO_TYPE_COMPARE_AND_WRITE && type < UST_BDEV_IO_TYPE_NVME_ADMIN;
}

static struct ust_io_channel *rec_get_io_channel(void *ctxt)
{
	return ust_get_io_channel(&g_rec_device);
}

static int rec_destruct(void *ctxt)
{
	g_rec_destructs++;
	free(ctxt);
	return 0;
}

static const struct ust_bdev_fn_table g_rec_fn_table = {
	.destruct = rec_destruct,
	.submit_request = rec_submit,
	.io_type_supported = rec_supported,
	.get_io_channel = rec_get_io_channel,
};

static struct rec_disk *rec_register(const char *name)
{
	struct rec_disk *d = calloc(1, sizeof(*d));

	d->bdev.name = (char *)name;
	d->bdev.product_name = "rec";
	d->bdev.blocklen = BS;
	d->bdev.blockcnt = NBLOCKS;
	d->bdev.ctxt = d;
	d->bdev.module = &g_rec_module;
	d->bdev.fn_table = &g_rec_fn_table;
	assert_int_equal(ust_bdev_register(&d->bdev), 0);
	return d;
}

/* ---- helpers ------------------------------------------------------------ */

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

static int g_removes;

static void event_cb(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	if (type == UST_BDEV_EVENT_REMOVE)
		g_removes++;
}

static int finish(struct io_result *r, int rc)
{
	assert_int_equal(rc, 0);
	ut_threads_poll();
	assert_int_equal(r->done, 1);
	return r->status;
}

/* ---- tests -------------------------------------------------------------- */

static void test_forwards_every_type(void **state)
{
	struct rec_disk *base = rec_register("Rec0");
	struct ust_bdev_desc *desc, *bad;
	struct ust_io_channel *ch;
	uint8_t w[4 * BS], r[4 * BS], other[4 * BS];
	struct iovec cmp = {w, sizeof(w)}, wr = {other, sizeof(other)};
	struct io_result res;
	json_t *x;
	int i;

	x = ut_rpc("bdev_passthru_create", json_pack("{s:s, s:s}", "base_bdev_name", "Rec0", "name",
						  "PT0"));
	assert_string_equal(json_string_value(json_object_get(x, "result")), "PT0");
	json_decref(x);
	assert_true(ust_bdev_is_claimed(&base->bdev));
	assert_int_equal(ust_bdev_open_ext("Rec0", true, event_cb, NULL, &bad), -EPERM);
	assert_int_equal(ust_bdev_get_num_blocks(ust_bdev_get_by_name("PT0")), NBLOCKS);

	assert_int_equal(ust_bdev_open_ext("PT0", true, event_cb, NULL, &desc), 0);
	ch = ust_bdev_get_io_channel(desc);
	assert_non_null(ch);
	g_nrec = 0;
	for (i = 0; i < (int)sizeof(w); i++) {
		w[i] = (uint8_t)(i * 13 + 1);
		other[i] = (uint8_t)~w[i];
	}

	memset(&res, 0, sizeof(res));
	assert_int_equal(finish(&res, ust_bdev_write_blocks(desc, ch, w, 4, 4, io_cb, &res)), 0);
	memset(&res, 0, sizeof(res));
	assert_int_equal(finish(&res, ust_bdev_read_blocks(desc, ch, r, 4, 4, io_cb, &res)), 0);
	assert_memory_equal(w, r, sizeof(w));
	assert_memory_equal(base->data + 4 * BS, w, sizeof(w));
	memset(&res, 0, sizeof(res));
	assert_int_equal(finish(&res, ust_bdev_compare_blocks(desc, ch, w, 4, 4, io_cb, &res)), 0);
	memset(&res, 0, sizeof(res));
	assert_int_equal(finish(&res, ust_bdev_compare_blocks(desc, ch, other, 4, 4, io_cb, &res)),
			 -EILSEQ);
	memset(&res, 0, sizeof(res));
	assert_int_equal(finish(&res, ust_bdev_comparev_and_writev_blocks(desc, ch, &cmp, 1, &wr, 1,
									   4, 4, io_cb, &res)),
			 0);
	assert_memory_equal(base->data + 4 * BS, other, sizeof(other));
	memset(&res, 0, sizeof(res));
	assert_int_equal(finish(&res, ust_bdev_unmap_blocks(desc, ch, 8, 2, io_cb, &res)), 0);
	memset(&res, 0, sizeof(res));
	assert_int_equal(finish(&res, ust_bdev_flush_blocks(desc, ch, 0, NBLOCKS, io_cb, &res)), 0);
	memset(&res, 0, sizeof(res));
	assert_int_equal(finish(&res, ust_bdev_write_zeroes_blocks(desc, ch, 5, 2, io_cb, &res)), 0);
	memset(&res, 0, sizeof(res));
	assert_int_equal(finish(&res, ust_bdev_reset(desc, ch, io_cb, &res)), 0);

	/* What the base saw, in order (compare_and_write = its compare + write). */
	{
		const struct rec_entry want[] = {
			{UST_BDEV_IO_TYPE_WRITE, 4, 4},   {UST_BDEV_IO_TYPE_READ, 4, 4},
			{UST_BDEV_IO_TYPE_COMPARE, 4, 4}, {UST_BDEV_IO_TYPE_COMPARE, 4, 4},
			{UST_BDEV_IO_TYPE_COMPARE, 4, 4}, {UST_BDEV_IO_TYPE_WRITE, 4, 4},
			{UST_BDEV_IO_TYPE_UNMAP, 8, 2},   {UST_BDEV_IO_TYPE_FLUSH, 0, NBLOCKS},
			{UST_BDEV_IO_TYPE_WRITE_ZEROES, 5, 2},
		};

		assert_int_equal(g_nrec, 10);
		for (i = 0; i < 9; i++) {
			assert_int_equal(g_rec[i].type, want[i].type);
			assert_int_equal(g_rec[i].offset, want[i].offset);
			assert_int_equal(g_rec[i].num, want[i].num);
		}
		assert_int_equal(g_rec[9].type, UST_BDEV_IO_TYPE_RESET);
	}
	/* The range check is the passthru bdev's own. */
	memset(&res, 0, sizeof(res));
	assert_int_equal(ust_bdev_read_blocks(desc, ch, r, NBLOCKS - 1, 2, io_cb, &res), -EINVAL);

	ust_put_io_channel(ch);
	ust_bdev_close(desc);
	ut_threads_poll();

	/* A second vbdev cannot claim the same base. */
	x = ut_rpc("bdev_passthru_create", json_pack("{s:s, s:s}", "base_bdev_name", "Rec0", "name",
						  "PT1"));
	assert_int_equal(ut_rpc_error_code(x), UST_JSONRPC_ERROR_INTERNAL_ERROR);
	json_decref(x);
	assert_null(ust_bdev_get_by_name("PT1"));

	x = ut_rpc("bdev_passthru_delete", json_pack("{s:s}", "name", "PT0"));
	assert_true(json_is_true(json_object_get(x, "result")));
	json_decref(x);
	assert_null(ust_bdev_get_by_name("PT0"));
	assert_false(ust_bdev_is_claimed(&base->bdev));
	x = ut_rpc("bdev_passthru_delete", json_pack("{s:s}", "name", "PT0"));
	assert_int_equal(ut_rpc_error_code(x), UST_JSONRPC_ERROR_INVALID_PARAMS);
	json_decref(x);
	ust_bdev_unregister(&base->bdev, NULL, NULL);
	ut_threads_poll();
}

static void test_late_base_and_hot_remove(void **state)
{
	struct rec_disk *base;
	struct ust_bdev_desc *desc;
	struct ust_bdev *pt;
	struct ust_uuid uuid;
	json_t *calls, *params;
	char buf[UST_UUID_STRING_LEN];
	int destructs;

	assert_int_equal(ust_uuid_parse(&uuid, "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"), 0);
	assert_int_equal(ust_bdev_passthru_create("Later", "PT2", &uuid), 0);
	assert_null(ust_bdev_get_by_name("PT2"));
	assert_int_equal(ust_bdev_passthru_create("Later", "PT2", NULL), -EEXIST);
	assert_int_equal(ust_bdev_passthru_create("Same", "Same", NULL), -EINVAL);
	base = rec_register("Later");
	pt = ust_bdev_get_by_name("PT2");
	assert_non_null(pt);
	ust_uuid_fmt(buf, sizeof(buf), ust_bdev_get_uuid(pt));
	assert_string_equal(buf, "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");

	calls = json_array();
	pt->fn_table->write_config_json(pt, calls);
	assert_string_equal(json_string_value(json_object_get(json_array_get(calls, 0), "method")),
			    "bdev_passthru_create");
	params = json_object_get(json_array_get(calls, 0), "params");
	assert_string_equal(json_string_value(json_object_get(params, "base_bdev_name")), "Later");
	assert_string_equal(json_string_value(json_object_get(params, "name")), "PT2");
	assert_string_equal(json_string_value(json_object_get(params, "uuid")), buf);
	json_decref(calls);

	/* Hot remove of the base takes the passthru bdev with it. */
	assert_int_equal(ust_bdev_open_ext("PT2", false, event_cb, NULL, &desc), 0);
	g_removes = 0;
	destructs = g_rec_destructs;
	ust_bdev_unregister(&base->bdev, NULL, NULL);
	ut_threads_poll();
	assert_int_equal(g_removes, 1);
	ust_bdev_close(desc);
	ut_threads_poll();
	assert_null(ust_bdev_get_by_name("PT2"));
	assert_null(ust_bdev_get_by_name("Later"));
	assert_int_equal(g_rec_destructs, destructs + 1);

	/* The configuration stays: the base coming back brings PT2 back. */
	base = rec_register("Later");
	assert_non_null(ust_bdev_get_by_name("PT2"));
	assert_int_equal(ust_bdev_passthru_delete("PT2", NULL, NULL), 0);
	ut_threads_poll();
	assert_null(ust_bdev_get_by_name("PT2"));
	assert_int_equal(ust_bdev_passthru_delete("PT2", NULL, NULL), -ENODEV);
	ust_bdev_unregister(&base->bdev, NULL, NULL);
	ut_threads_poll();
}

/* A claimed base refuses the passthru (config not kept); a grown base grows it. */
static void test_claimed_base_and_resize(void **state)
{
	struct rec_disk *base = rec_register("Grows");
	struct ust_bdev *pt;

	assert_int_equal(ust_bdev_module_claim_bdev(&base->bdev, NULL, &g_rec_module), 0);
	assert_int_equal(ust_bdev_passthru_create("Grows", "PT3", NULL), -EPERM);
	assert_int_equal(ust_bdev_passthru_delete("PT3", NULL, NULL), -ENODEV);
	ust_bdev_module_release_bdev(&base->bdev);

	assert_int_equal(ust_bdev_passthru_create("Grows", "PT3", NULL), 0);
	pt = ust_bdev_get_by_name("PT3");
	assert_non_null(pt);
	assert_true(ust_bdev_is_claimed(&base->bdev));
	assert_int_equal(ust_bdev_get_num_blocks(pt), NBLOCKS);
	assert_int_equal(ust_bdev_notify_blockcnt_change(&base->bdev, NBLOCKS * 2), 0);
	ut_threads_poll();
	assert_int_equal(ust_bdev_get_num_blocks(pt), NBLOCKS * 2);

	assert_int_equal(ust_bdev_passthru_delete("PT3", NULL, NULL), 0);
	ut_threads_poll();
	assert_null(ust_bdev_get_by_name("PT3"));
	assert_false(ust_bdev_is_claimed(&base->bdev));
	assert_false(ust_bdev_is_open(&base->bdev, false));
	ust_bdev_unregister(&base->bdev, NULL, NULL);
	ut_threads_poll();
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
		cmocka_unit_test(test_forwards_every_type),
		cmocka_unit_test(test_late_base_and_hot_remove),
		cmocka_unit_test(test_claimed_base_and_resize),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
