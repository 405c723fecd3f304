/*
 * Unit tests for the bdev core (the bdev/ directory) through a test module whose I/O
 * completes when the test says so, with two ust_threads polled by hand:
 * registration, UUIDs, claims, splitting, bounce buffers, pool exhaustion
 * and io_wait, NOMEM requeue, reset and hot remove with I/O in flight,
 * write_zeroes / compare / compare_and_write emulation, statistics, QoS
 * arithmetic and rate limiting over simulated time, examine of a virtual
 * bdev and top-down shutdown that waits for an asynchronous fini_start.
 * The malloc and null modules and the bdev RPCs are in bdev_rpc_ut.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "env_test.h"
#include "ustor/bdev.h"
#include "ustor/bdev_module.h"
#include "ustor/env.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"
#include "ut_threads.h"

#include "../../../bdev/bdev_internal.h"
#include "../../../bdev/malloc/bdev_malloc.h"
#include "../../../bdev/null/bdev_null.h"

#define BS 512
#define POOL_SIZE 96
#define CACHE_SIZE 8

/* ---- the test module ---------------------------------------------------- */

#define MAX_SUBS 512

struct sub {
	struct ust_bdev_io *io;
	struct ust_thread *thread;
	enum ust_bdev_io_type type;
	uint64_t offset;
	uint64_t num;
	int iovcnt;
	struct iovec iovs[16];
	bool aligned;
	bool done;
};

static struct sub g_subs[MAX_SUBS];
static int g_nsubs;
static bool g_inline;             /* complete inside submit_request */
static int g_nomem_left;          /* answer NOMEM this many times */
static int g_destructs;
static char g_destruct_order[256];

struct ut_disk {
	struct ust_bdev bdev;
	uint32_t types; /* 1 << type accepted */
	uint8_t *data;  /* backing store, or NULL */
};

static int ut_io_device;

static int ut_ch_create(void *dev, void *ctx)
{
	return 0;
}

static void ut_ch_destroy(void *dev, void *ctx)
{
}

static int ut_init(void)
{
	ust_io_device_register(&ut_io_device, ut_ch_create, ut_ch_destroy, 0, "ut");
	return 0;
}

static void ut_fini(void)
{
	ust_io_device_unregister(&ut_io_device, NULL);
}

static int ut_ctx_size(void)
{
	return 48;
}

static struct ust_bdev_module g_ut_module = {
	.name = "ut",
	.module_init = ut_init,
	.module_fini = ut_fini,
	.get_ctx_size = ut_ctx_size,
};
UST_BDEV_MODULE_REGISTER(ut, &g_ut_module)

static void ut_apply_data(struct ut_disk *d, struct ust_bdev_io *io, int *status)
{
	uint8_t *p = d->data + io->offset_blocks * BS;
	size_t left = io->num_blocks * BS;
	int i;

	switch (io->type) {
	case UST_BDEV_IO_TYPE_READ:
	case UST_BDEV_IO_TYPE_WRITE:
	case UST_BDEV_IO_TYPE_COMPARE:
		for (i = 0; i < io->iovcnt && left > 0; i++) {
			size_t n = io->iovs[i].iov_len < left ? io->iovs[i].iov_len : left;

			if (io->type == UST_BDEV_IO_TYPE_READ)
				memcpy(io->iovs[i].iov_base, p, n);
			else if (io->type == UST_BDEV_IO_TYPE_WRITE)
				memcpy(p, io->iovs[i].iov_base, n);
			else if (memcmp(p, io->iovs[i].iov_base, n) != 0)
				*status = -EILSEQ;
			p += n;
			left -= n;
		}
		break;
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
	case UST_BDEV_IO_TYPE_UNMAP:
		memset(p, 0, left);
		break;
	default:
		break;
	}
}

static void ut_submit(struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct ut_disk *d = io->bdev->ctxt;
	struct sub *s;
	int i, status = 0;

	assert_true(g_nsubs < MAX_SUBS);
	assert_ptr_equal(ust_bdev_io_get_io_channel(io), ch);
	if (g_nomem_left > 0) {
		g_nomem_left--;
		ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_NOMEM);
		return;
	}
	s = &g_subs[g_nsubs++];
	memset(s, 0, sizeof(*s));
	s->io = io;
	s->thread = ust_get_thread();
	s->type = io->type;
	s->offset = io->offset_blocks;
	s->num = io->num_blocks;
	s->iovcnt = io->iovcnt;
	s->aligned = true;
	for (i = 0; i < io->iovcnt && i < 16; i++) {
		s->iovs[i] = io->iovs[i];
		if (d->bdev.buf_align > 1 &&
		    ((uintptr_t)io->iovs[i].iov_base % d->bdev.buf_align) != 0)
			s->aligned = false;
	}
	if (d->data != NULL)
		ut_apply_data(d, io, &status);
	if (g_inline) {
		s->done = true;
		ust_bdev_io_complete_errno(io, status);
	}
}

/* Completes held I/O number idx on its own thread. */
static void ut_complete(int idx, int status)
{
	struct ust_thread *cur = ust_get_thread();

	assert_false(g_subs[idx].done);
	g_subs[idx].done = true;
	ust_set_thread(g_subs[idx].thread);
	ust_bdev_io_complete_errno(g_subs[idx].io, status);
	ust_set_thread(cur);
}

static void ut_complete_all(int status)
{
	int i;

	for (i = 0; i < g_nsubs; i++) {
		if (!g_subs[i].done)
			ut_complete(i, status);
	}
}

static bool ut_io_type_supported(void *ctxt, enum ust_bdev_io_type type)
{
	struct ut_disk *d = ctxt;

	return (d->types & (1u << type)) != 0;
}

static struct ust_io_channel *ut_get_io_channel(void *ctxt)
{
	return ust_get_io_channel(&ut_io_device);
}

static int ut_destruct(void *ctxt)
{
	struct ut_disk *d = ctxt;

	g_destructs++;
	strncat(g_destruct_order, d->bdev.name, sizeof(g_destruct_order) - strlen(g_destruct_order) - 2);
	strcat(g_destruct_order, ",");
	free(d->data);
	free(d->bdev.name);
	free(d);
	return 0;
}

static const struct ust_bdev_fn_table g_ut_fn = {
	.destruct = ut_destruct,
	.submit_request = ut_submit,
	.io_type_supported = ut_io_type_supported,
	.get_io_channel = ut_get_io_channel,
};

#define RW_TYPES ((1u << UST_BDEV_IO_TYPE_READ) | (1u << UST_BDEV_IO_TYPE_WRITE))
#define ALL_TYPES                                                                              \
	(RW_TYPES | (1u << UST_BDEV_IO_TYPE_UNMAP) | (1u << UST_BDEV_IO_TYPE_FLUSH) |          \
	 (1u << UST_BDEV_IO_TYPE_RESET) | (1u << UST_BDEV_IO_TYPE_WRITE_ZEROES) |              \
	 (1u << UST_BDEV_IO_TYPE_COMPARE))

static struct ut_disk *ut_disk_new(const char *name, uint64_t blocks, uint32_t types,
				   bool backing)
{
	struct ut_disk *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	d->bdev.name = strdup(name);
	d->bdev.product_name = "UT disk";
	d->bdev.blocklen = BS;
	d->bdev.blockcnt = blocks;
	d->bdev.ctxt = d;
	d->bdev.module = &g_ut_module;
	d->bdev.fn_table = &g_ut_fn;
	d->types = types;
	if (backing)
		d->data = calloc(blocks, BS);
	return d;
}

static struct ut_disk *ut_disk_register(const char *name, uint64_t blocks, uint32_t types,
					bool backing)
{
	struct ut_disk *d = ut_disk_new(name, blocks, types, backing);

	assert_int_equal(ust_bdev_register(&d->bdev), 0);
	return d;
}

/* ---- consumer helpers --------------------------------------------------- */

struct done {
	int count;
	int status;
	struct ust_thread *thread;
};

static void io_done(struct ust_bdev_io *io, int status, void *arg)
{
	struct done *d = arg;

	d->count++;
	d->status = status;
	d->thread = ust_get_thread();
}

static int g_events[2];
static struct ust_thread *g_event_thread;

static void event_cb(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	g_events[type]++;
	g_event_thread = ust_get_thread();
}

static void unreg_done(void *ctx, int rc)
{
	int *p = ctx;

	*p = rc == 0 ? 1 : rc;
}

static void unregister_sync(struct ust_bdev *bdev)
{
	int done = 0;

	ust_bdev_unregister(bdev, unreg_done, &done);
	ut_threads_poll();
	assert_int_equal(done, 1);
}

static void reset_subs(void)
{
	g_nsubs = 0;
	g_inline = false;
	g_nomem_left = 0;
}

/* ---- setup -------------------------------------------------------------- */

static int setup(void **state)
{
	struct ust_bdev_opts opts = {.bdev_io_pool_size = POOL_SIZE,
				     .bdev_io_cache_size = CACHE_SIZE};

	if (ut_threads_setup(2) != 0 || ust_bdev_set_opts(&opts) != 0)
		return -1;
	return ut_bdev_start();
}

/* The bdev layer is already finished: test_examine_and_shutdown, the last test, does it. */
static int teardown(void **state)
{
	int rc;

	ut_threads_poll();
	rc = ut_threads_teardown();
	ust_env_test_unfreeze_ticks();
	return rc;
}

/* ---- registration, names, UUIDs, claims --------------------------------- */

static void test_uuid(void **state)
{
	struct ust_uuid a, b;
	char buf[UST_UUID_STRING_LEN];

	ust_uuid_generate(&a);
	assert_false(ust_uuid_is_null(&a));
	assert_int_equal(a.u[6] >> 4, 4);
	assert_int_equal(a.u[8] & 0xc0, 0x80);
	assert_int_equal(ust_uuid_fmt(buf, sizeof(buf), &a), 0);
	assert_int_equal(ust_uuid_parse(&b, buf), 0);
	assert_int_equal(ust_uuid_compare(&a, &b), 0);
	assert_int_equal(ust_uuid_parse(&b, "01234567-89AB-cdef-0123-456789abcdef"), 0);
	assert_int_equal(ust_uuid_fmt(buf, sizeof(buf), &b), 0);
	assert_string_equal(buf, "01234567-89ab-cdef-0123-456789abcdef");
	assert_int_equal(ust_uuid_parse(&b, "01234567-89ab-cdef-0123-456789abcde"), -EINVAL);
	assert_int_equal(ust_uuid_parse(&b, "01234567x89ab-cdef-0123-456789abcdef"), -EINVAL);
	assert_int_equal(ust_uuid_parse(&b, "0123456g-89ab-cdef-0123-456789abcdef"), -EINVAL);
	assert_int_equal(ust_uuid_fmt(buf, 36, &a), -EINVAL);
}

static void test_register_and_names(void **state)
{
	struct ut_disk *d, *dup, *bad;
	struct ust_bdev_desc *desc;

	d = ut_disk_register("ut0", 100, ALL_TYPES, false);
	assert_false(ust_uuid_is_null(&d->bdev.uuid));
	assert_ptr_equal(ust_bdev_get_by_name("ut0"), &d->bdev);
	assert_int_equal(ust_bdev_alias_add(&d->bdev, "ut0-alias"), 0);
	assert_ptr_equal(ust_bdev_get_by_name("ut0-alias"), &d->bdev);
	assert_int_equal(ust_bdev_alias_add(&d->bdev, "ut0"), -EEXIST);

	dup = ut_disk_new("ut0-alias", 10, ALL_TYPES, false);
	assert_int_equal(ust_bdev_register(&dup->bdev), -EEXIST);
	bad = ut_disk_new("bad", 10, ALL_TYPES, false);
	bad->bdev.blocklen = 0;
	assert_int_equal(ust_bdev_register(&bad->bdev), -EINVAL);
	bad->bdev.blocklen = BS;
	bad->bdev.buf_align = 3;
	assert_int_equal(ust_bdev_register(&bad->bdev), -EINVAL);
	ut_destruct(dup);
	ut_destruct(bad);
	g_destructs -= 2;
	g_destruct_order[0] = '\0';

	assert_true(ust_bdev_io_type_supported(&d->bdev, UST_BDEV_IO_TYPE_COMPARE_AND_WRITE));
	assert_false(ust_bdev_io_type_supported(&d->bdev, UST_BDEV_IO_TYPE_NVME_IO));
	assert_int_equal(ust_bdev_open_ext("nope", false, event_cb, NULL, &desc), -ENODEV);
	assert_int_equal(ust_bdev_open_ext("ut0", false, NULL, NULL, &desc), -EINVAL);
	assert_int_equal(ust_bdev_open_ext("ut0-alias", true, event_cb, NULL, &desc), 0);
	assert_ptr_equal(ust_bdev_desc_get_bdev(desc), &d->bdev);
	ust_bdev_close(desc);
	assert_int_equal(ust_bdev_alias_del(&d->bdev, "ut0-alias"), 0);
	assert_int_equal(ust_bdev_alias_del(&d->bdev, "ut0-alias"), -ENOENT);
	assert_null(ust_bdev_get_by_name("ut0-alias"));
	unregister_sync(&d->bdev);
	assert_null(ust_bdev_get_by_name("ut0"));
	g_destructs = 0;
	g_destruct_order[0] = '\0';
}

/*
 * Names and aliases are hashed (bdev.c): 2000 bdevs, half with an alias,
 * found by both; once half are unregistered their names and aliases are
 * free again, and the others are still found.
 */
/* Unregister, and forget the destruct record (it holds 256 bytes of names). */
static void forget_sync(struct ust_bdev *bdev)
{
	unregister_sync(bdev);
	g_destruct_order[0] = '\0';
}

static void test_many_names(void **state)
{
	enum { NB = 2000 };
	struct ut_disk **d = calloc(NB, sizeof(*d)), *again;
	char name[32];
	int i;

	(void)state;
	assert_non_null(d);
	for (i = 0; i < NB; i++) {
		snprintf(name, sizeof(name), "many%d", i);
		d[i] = ut_disk_register(name, 8, ALL_TYPES, false);
		snprintf(name, sizeof(name), "alias%d", i);
		if (i % 2 == 0)
			assert_int_equal(ust_bdev_alias_add(&d[i]->bdev, name), 0);
	}
	for (i = 0; i < NB; i++) {
		snprintf(name, sizeof(name), "many%d", i);
		assert_ptr_equal(ust_bdev_get_by_name(name), &d[i]->bdev);
		snprintf(name, sizeof(name), "alias%d", i);
		assert_ptr_equal(ust_bdev_get_by_name(name), i % 2 == 0 ? &d[i]->bdev : NULL);
	}
	for (i = 0; i < NB; i += 4)
		forget_sync(&d[i]->bdev);
	for (i = 0; i < NB; i++) {
		snprintf(name, sizeof(name), "alias%d", i);
		assert_ptr_equal(ust_bdev_get_by_name(name),
				 i % 4 == 0 || i % 2 == 1 ? NULL : &d[i]->bdev);
		snprintf(name, sizeof(name), "many%d", i);
		assert_ptr_equal(ust_bdev_get_by_name(name), i % 4 == 0 ? NULL : &d[i]->bdev);
	}
	/* a gone bdev's alias is a free name again */
	again = ut_disk_register("alias0", 8, ALL_TYPES, false);
	assert_ptr_equal(ust_bdev_get_by_name("alias0"), &again->bdev);
	forget_sync(&again->bdev);
	for (i = 0; i < NB; i++) {
		if (i % 4 != 0)
			forget_sync(&d[i]->bdev);
	}
	assert_null(ust_bdev_get_by_name("many1"));
	assert_null(ust_bdev_get_by_name("alias2"));
	free(d);
	g_destructs = 0;
	g_destruct_order[0] = '\0';
}

static void test_claims(void **state)
{
	struct ut_disk *d = ut_disk_register("claimme", 10, ALL_TYPES, false);
	struct ust_bdev_desc *rd, *wr, *other;
	struct ust_bdev_module other_mod = {.name = "other"};

	assert_false(ust_bdev_is_open(&d->bdev, false));
	assert_int_equal(ust_bdev_open_ext("claimme", false, event_cb, NULL, &rd), 0);
	assert_true(ust_bdev_is_open(&d->bdev, false));
	assert_false(ust_bdev_is_open(&d->bdev, true));
	assert_int_equal(ust_bdev_module_claim_bdev(&d->bdev, rd, &g_ut_module), 0);
	/* The claim made rd a writer. */
	assert_true(ust_bdev_is_open(&d->bdev, true));
	assert_true(ust_bdev_is_claimed(&d->bdev));
	assert_ptr_equal(ust_bdev_get_claim_module(&d->bdev), &g_ut_module);
	assert_int_equal(ust_bdev_module_claim_bdev(&d->bdev, NULL, &other_mod), -EPERM);
	assert_int_equal(ust_bdev_open_ext("claimme", true, event_cb, NULL, &wr), -EPERM);
	assert_int_equal(ust_bdev_open_ext("claimme", false, event_cb, NULL, &other), 0);
	ust_bdev_module_release_bdev(&d->bdev);
	assert_false(ust_bdev_is_claimed(&d->bdev));
	assert_int_equal(ust_bdev_open_ext("claimme", true, event_cb, NULL, &wr), 0);
	/* rd was made writable by the claim; wr is another writer now. */
	assert_int_equal(ust_bdev_module_claim_bdev(&d->bdev, NULL, &other_mod), -EPERM);
	ust_bdev_close(wr);
	ust_bdev_close(rd);
	assert_int_equal(ust_bdev_module_claim_bdev(&d->bdev, other, &other_mod), 0);
	/* Closing the claiming descriptor releases the claim. */
	ust_bdev_close(other);
	assert_false(ust_bdev_is_claimed(&d->bdev));
	assert_false(ust_bdev_is_open(&d->bdev, false));
	unregister_sync(&d->bdev);
}

/* ---- argument checks ---------------------------------------------------- */

static void test_bad_arguments(void **state)
{
	struct ut_disk *d = ut_disk_register("args", 64, RW_TYPES, false);
	struct ust_bdev_desc *desc, *ro;
	struct ust_io_channel *ch;
	struct done dn = {0};
	char buf[BS * 2];
	struct iovec iov[2] = {{buf, BS}, {NULL, BS}};

	reset_subs();
	assert_int_equal(ust_bdev_open_ext("args", true, event_cb, NULL, &desc), 0);
	assert_int_equal(ust_bdev_open_ext("args", false, event_cb, NULL, &ro), 0);
	ch = ust_bdev_get_io_channel(desc);
	assert_non_null(ch);
	assert_int_equal(ust_bdev_read_blocks(desc, ch, buf, 64, 1, io_done, &dn), -EINVAL);
	assert_int_equal(ust_bdev_read_blocks(desc, ch, buf, 63, 2, io_done, &dn), -EINVAL);
	assert_int_equal(ust_bdev_read_blocks(desc, ch, buf, 0, 0, io_done, &dn), -EINVAL);
	assert_int_equal(ust_bdev_read_blocks(desc, ch, buf, UINT64_MAX, 2, io_done, &dn), -EINVAL);
	assert_int_equal(ust_bdev_read_blocks(desc, ch, buf, 0, 1, NULL, &dn), -EINVAL);
	assert_int_equal(ust_bdev_write_blocks(ro, ch, buf, 0, 1, io_done, &dn), -EBADF);
	assert_int_equal(ust_bdev_write_blocks(desc, ch, NULL, 0, 1, io_done, &dn), -EINVAL);
	assert_int_equal(ust_bdev_read(desc, ch, buf, 100, BS, io_done, &dn), -EINVAL);
	assert_int_equal(ust_bdev_read(desc, ch, buf, 0, 100, io_done, &dn), -EINVAL);
	/* iovecs shorter than the blocks, or a NULL base among several. */
	assert_int_equal(ust_bdev_readv_blocks(desc, ch, iov, 1, 0, 2, io_done, &dn), -EINVAL);
	assert_int_equal(ust_bdev_writev_blocks(desc, ch, iov, 2, 0, 2, io_done, &dn), -EINVAL);
	assert_int_equal(ust_bdev_unmap_blocks(desc, ch, 0, 1, io_done, &dn), -ENOTSUP);
	assert_int_equal(ust_bdev_reset(desc, ch, io_done, &dn), -ENOTSUP);
	/* Emulated from read/write. */
	assert_true(ust_bdev_io_type_supported(&d->bdev, UST_BDEV_IO_TYPE_WRITE_ZEROES));
	assert_true(ust_bdev_io_type_supported(&d->bdev, UST_BDEV_IO_TYPE_COMPARE));
	assert_int_equal(g_nsubs, 0);
	assert_int_equal(dn.count, 0);

	/* Byte variant that is aligned works; callback not before return. */
	g_inline = true;
	assert_int_equal(ust_bdev_read(desc, ch, buf, BS, BS, io_done, &dn), 0);
	assert_int_equal(dn.count, 0);
	ut_threads_poll();
	assert_int_equal(dn.count, 1);
	assert_int_equal(dn.status, 0);
	assert_int_equal(g_subs[0].offset, 1);

	ust_put_io_channel(ch);
	ust_bdev_close(desc);
	ust_bdev_close(ro);
	ut_threads_poll();
	unregister_sync(&d->bdev);
}

/* ---- splitting ---------------------------------------------------------- */

struct split_env {
	struct ut_disk *d;
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;
};

static void split_env_open(struct split_env *e, const char *name, uint32_t boundary,
			   uint32_t max_transfer, uint32_t align, bool backing)
{
	e->d = ut_disk_new(name, 4096, ALL_TYPES, backing);
	e->d->bdev.optimal_io_boundary = boundary;
	e->d->bdev.split_on_optimal_io_boundary = boundary != 0;
	e->d->bdev.max_transfer_blocks = max_transfer;
	e->d->bdev.buf_align = align;
	assert_int_equal(ust_bdev_register(&e->d->bdev), 0);
	assert_int_equal(ust_bdev_open_ext(name, true, event_cb, NULL, &e->desc), 0);
	e->ch = ust_bdev_get_io_channel(e->desc);
	assert_non_null(e->ch);
	reset_subs();
}

static void split_env_close(struct split_env *e)
{
	ust_put_io_channel(e->ch);
	ust_bdev_close(e->desc);
	ut_threads_poll();
	unregister_sync(&e->d->bdev);
}

/* The children's iovecs, concatenated, must be exactly the parent's bytes. */
static void check_children_cover(uint8_t *base, uint64_t first_block, uint64_t nblocks)
{
	uint8_t *expect = base;
	uint64_t block = first_block;
	int i, j;

	for (i = 0; i < g_nsubs; i++) {
		size_t len = 0;

		assert_int_equal(g_subs[i].offset, block);
		for (j = 0; j < g_subs[i].iovcnt; j++) {
			assert_ptr_equal(g_subs[i].iovs[j].iov_base, expect);
			expect += g_subs[i].iovs[j].iov_len;
			len += g_subs[i].iovs[j].iov_len;
		}
		assert_int_equal(len, g_subs[i].num * BS);
		block += g_subs[i].num;
	}
	assert_int_equal(block, first_block + nblocks);
}

static void test_split_boundary(void **state)
{
	struct split_env e;
	struct done dn = {0};
	uint8_t *buf = malloc(64 * BS);
	static const uint64_t want[][2] = {{5, 3}, {8, 8}, {16, 8}, {24, 1}};
	int i;

	split_env_open(&e, "split8", 8, 0, 0, false);
	/* Inside one boundary: no split. */
	assert_int_equal(ust_bdev_read_blocks(e.desc, e.ch, buf, 8, 8, io_done, &dn), 0);
	assert_int_equal(g_nsubs, 1);
	ut_complete_all(0);
	ut_threads_poll();
	assert_int_equal(dn.count, 1);
	reset_subs();

	assert_int_equal(ust_bdev_write_blocks(e.desc, e.ch, buf, 5, 20, io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(g_nsubs, 4);
	for (i = 0; i < 4; i++) {
		assert_int_equal(g_subs[i].type, UST_BDEV_IO_TYPE_WRITE);
		assert_int_equal(g_subs[i].offset, want[i][0]);
		assert_int_equal(g_subs[i].num, want[i][1]);
	}
	check_children_cover(buf, 5, 20);
	/* Parent completes after the last child, with the first error. */
	ut_complete(1, -EIO);
	ut_complete(0, 0);
	ut_complete(3, -ENOSPC);
	ut_threads_poll();
	assert_int_equal(dn.count, 1);
	ut_complete(2, 0);
	ut_threads_poll();
	assert_int_equal(dn.count, 2);
	assert_int_equal(dn.status, -EIO);
	split_env_close(&e);
	free(buf);
}

static void test_split_max_transfer_iovs(void **state)
{
	struct split_env e;
	struct done dn = {0};
	uint8_t *buf = malloc(64 * BS);
	struct iovec iov[4];

	split_env_open(&e, "splitmax", 0, 3, 0, false);
	/* 1.5 + 2.5 + 3 + 3 blocks of iovecs for 10 blocks. */
	iov[0] = (struct iovec){buf, BS + BS / 2};
	iov[1] = (struct iovec){buf + BS + BS / 2, 2 * BS + BS / 2};
	iov[2] = (struct iovec){buf + 4 * BS, 3 * BS};
	iov[3] = (struct iovec){buf + 7 * BS, 3 * BS + 100}; /* longer than needed */
	g_inline = true;
	assert_int_equal(ust_bdev_readv_blocks(e.desc, e.ch, iov, 4, 100, 10, io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(dn.count, 1);
	assert_int_equal(dn.status, 0);
	assert_int_equal(g_nsubs, 4);
	assert_int_equal(g_subs[0].num, 3);
	assert_int_equal(g_subs[0].iovcnt, 2);
	assert_int_equal(g_subs[1].iovcnt, 2);
	assert_int_equal(g_subs[3].num, 1);
	check_children_cover(buf, 100, 10);
	split_env_close(&e);
	free(buf);
}

static void test_split_iov_limit(void **state)
{
	struct split_env e;
	struct done dn = {0};
	uint8_t *buf = malloc(64 * BS);
	struct iovec iov[40];
	int i;

	split_env_open(&e, "splitiov", 0, 8, 0, false);
	/* 32 iovecs of half a block: a child holds at most 8 of them = 4 blocks. */
	for (i = 0; i < 32; i++)
		iov[i] = (struct iovec){buf + i * (BS / 2), BS / 2};
	g_inline = true;
	assert_int_equal(ust_bdev_readv_blocks(e.desc, e.ch, iov, 32, 0, 16, io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(dn.status, 0);
	assert_int_equal(g_nsubs, 4);
	for (i = 0; i < 4; i++) {
		assert_int_equal(g_subs[i].num, 4);
		assert_int_equal(g_subs[i].iovcnt, 8);
	}
	check_children_cover(buf, 0, 16);

	/* Odd pieces: 3 x 200 bytes + rest; cuts must land on block boundaries. */
	reset_subs();
	for (i = 0; i < 39; i++)
		iov[i] = (struct iovec){buf + i * 200, 200};
	iov[39] = (struct iovec){buf + 39 * 200, 20 * BS - 39 * 200};
	g_inline = true;
	assert_int_equal(ust_bdev_writev_blocks(e.desc, e.ch, iov, 40, 0, 20, io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(dn.count, 2);
	assert_int_equal(dn.status, 0);
	check_children_cover(buf, 0, 20);

	/* One block spread over more iovecs than a child can hold: -EINVAL. */
	reset_subs();
	for (i = 0; i < 16; i++)
		iov[i] = (struct iovec){buf + i * 32, 32};
	iov[16] = (struct iovec){buf + 512, 16 * BS};
	assert_int_equal(ust_bdev_readv_blocks(e.desc, e.ch, iov, 17, 0, 17, io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(dn.count, 3);
	assert_int_equal(dn.status, -EINVAL);
	assert_int_equal(g_nsubs, 0);
	split_env_close(&e);
	free(buf);
}

/* ---- alignment and bounce ----------------------------------------------- */

static void test_bounce(void **state)
{
	struct split_env e;
	struct done dn = {0};
	uint8_t *raw = malloc(16 * BS + 4096 + 1);
	uint8_t *mis = (uint8_t *)(((uintptr_t)raw + 4095) & ~(uintptr_t)4095) + 1;
	uint8_t *back = malloc(16 * BS + 1);
	int i;

	split_env_open(&e, "bounce", 0, 0, 4096, true);
	for (i = 0; i < 8 * BS; i++)
		mis[i] = (uint8_t)(i * 7 + 3);
	g_inline = true;
	assert_int_equal(ust_bdev_write_blocks(e.desc, e.ch, mis, 10, 8, io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(dn.status, 0);
	assert_int_equal(g_nsubs, 1);
	assert_true(g_subs[0].aligned);
	assert_memory_equal(e.d->data + 10 * BS, mis, 8 * BS);

	memset(back + 1, 0, 8 * BS);
	assert_int_equal(ust_bdev_read_blocks(e.desc, e.ch, back + 1, 10, 8, io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(dn.count, 2);
	assert_int_equal(dn.status, 0);
	assert_true(g_subs[1].aligned);
	assert_ptr_not_equal(g_subs[1].iovs[0].iov_base, back + 1);
	assert_memory_equal(back + 1, mis, 8 * BS);
	split_env_close(&e);
	free(raw);
	free(back);
}

static uint8_t g_nullbuf_first;
static void nullbuf_done(struct ust_bdev_io *io, int status, void *arg)
{
	struct iovec *iovs;
	int iovcnt;

	ust_bdev_io_get_iovec(io, &iovs, &iovcnt);
	assert_int_equal(iovcnt, 1);
	assert_non_null(iovs[0].iov_base);
	g_nullbuf_first = ((uint8_t *)iovs[0].iov_base)[0];
	io_done(io, status, arg);
}

static void test_null_buffer_read(void **state)
{
	struct split_env e;
	struct done dn = {0};

	split_env_open(&e, "nullbuf", 0, 0, 512, true);
	e.d->data[3 * BS] = 0x5a;
	g_inline = true;
	assert_int_equal(ust_bdev_read_blocks(e.desc, e.ch, NULL, 3, 2, nullbuf_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(dn.status, 0);
	assert_int_equal(g_nullbuf_first, 0x5a);
	assert_true(g_subs[0].aligned);
	split_env_close(&e);
}

/* ---- pool exhaustion, io_wait, NOMEM ------------------------------------ */

static int g_wait_fired;
static void wait_cb(void *arg)
{
	g_wait_fired++;
}

static void test_pool_exhaustion(void **state)
{
	struct split_env e;
	struct done dn = {0};
	struct ust_bdev_io_wait_entry entry = {0};
	char buf[BS];
	int n = 0, rc;

	split_env_open(&e, "pool", 0, 0, 0, false);
	while ((rc = ust_bdev_read_blocks(e.desc, e.ch, buf, 0, 1, io_done, &dn)) == 0)
		n++;
	assert_int_equal(rc, -ENOMEM);
	assert_int_equal(n, POOL_SIZE);
	entry.bdev = NULL;
	entry.cb_fn = wait_cb;
	assert_int_equal(ust_bdev_queue_io_wait(&e.d->bdev, e.ch, &entry), -EINVAL);
	entry.bdev = &e.d->bdev;
	assert_int_equal(ust_bdev_queue_io_wait(&e.d->bdev, e.ch, &entry), 0);
	ut_complete(0, 0);
	ut_threads_poll();
	assert_int_equal(g_wait_fired, 1);
	assert_int_equal(dn.count, 1);
	/* An object is free now: queueing is refused (just retry). */
	assert_int_equal(ust_bdev_queue_io_wait(&e.d->bdev, e.ch, &entry), -EINVAL);
	ut_complete_all(0);
	ut_threads_poll();
	assert_int_equal(dn.count, POOL_SIZE);
	split_env_close(&e);
}

static void test_nomem_requeue(void **state)
{
	struct split_env e;
	struct done a = {0}, b = {0};
	char buf[BS];

	split_env_open(&e, "nomem", 0, 0, 0, false);
	assert_int_equal(ust_bdev_read_blocks(e.desc, e.ch, buf, 0, 1, io_done, &a), 0);
	g_nomem_left = 1;
	assert_int_equal(ust_bdev_read_blocks(e.desc, e.ch, buf, 1, 1, io_done, &b), 0);
	assert_int_equal(g_nsubs, 1);
	/* Another completion on the channel resubmits it. */
	ut_complete(0, 0);
	ut_threads_poll();
	assert_int_equal(a.count, 1);
	assert_int_equal(g_nsubs, 2);
	assert_int_equal(g_subs[1].offset, 1);
	ut_complete(1, 0);
	ut_threads_poll();
	assert_int_equal(b.count, 1);
	assert_int_equal(b.status, 0);

	/* Nothing else in flight: a timer retries. */
	ust_env_test_set_ticks(1000000000ULL);
	g_nomem_left = 1;
	assert_int_equal(ust_bdev_read_blocks(e.desc, e.ch, buf, 2, 1, io_done, &b), 0);
	ut_threads_poll();
	assert_int_equal(g_nsubs, 2);
	ust_env_test_advance_ticks(BDEV_NOMEM_RETRY_US * 1000ULL);
	ut_threads_poll();
	assert_int_equal(g_nsubs, 3);
	ut_complete(2, 0);
	ut_threads_poll();
	assert_int_equal(b.count, 2);
	ust_env_test_unfreeze_ticks();
	split_env_close(&e);
}

/* ---- reset -------------------------------------------------------------- */

static void test_reset_two_threads(void **state)
{
	struct split_env e;
	struct ust_io_channel *ch1;
	struct done r0 = {0}, r1 = {0}, w1 = {0}, rs = {0}, rs2 = {0};
	char buf[BS];
	int i, reset_idx = -1;

	split_env_open(&e, "reset", 0, 0, 0, false);
	assert_int_equal(ust_bdev_read_blocks(e.desc, e.ch, buf, 0, 1, io_done, &r0), 0);
	ust_set_thread(ut_thread(1));
	ch1 = ust_bdev_get_io_channel(e.desc);
	assert_int_equal(ust_bdev_read_blocks(e.desc, ch1, buf, 1, 1, io_done, &r1), 0);
	ust_set_thread(ut_thread(0));
	/* One more I/O held back by NOMEM: the reset aborts it. */
	g_nomem_left = 1;
	assert_int_equal(ust_bdev_read_blocks(e.desc, e.ch, buf, 9, 1, io_done, &w1), 0);
	assert_int_equal(g_nsubs, 2);

	assert_int_equal(ust_bdev_reset(e.desc, e.ch, io_done, &rs), 0);
	ust_set_thread(ut_thread(1));
	assert_int_equal(ust_bdev_reset(e.desc, ch1, io_done, &rs2), 0);
	ust_set_thread(ut_thread(0));
	ut_threads_poll();
	assert_int_equal(w1.count, 1);
	assert_int_equal(w1.status, -ECANCELED);
	/*
	 * The module sees the reset while the two reads are still in flight
	 * (a reset is how hung I/O is recovered, so it must not wait for it).
	 */
	assert_int_equal(g_nsubs, 3);
	assert_int_equal(g_subs[2].type, UST_BDEV_IO_TYPE_RESET);
	reset_idx = 2;

	/* New I/O during the reset is held, not submitted. */
	ust_set_thread(ut_thread(1));
	assert_int_equal(ust_bdev_write_blocks(e.desc, ch1, buf, 5, 1, io_done, &w1), 0);
	ust_set_thread(ut_thread(0));
	ut_threads_poll();
	assert_int_equal(g_nsubs, 3);

	/* The module's reset is done, but the reset completes only once drained. */
	ut_complete(reset_idx, 0);
	ut_threads_poll();
	assert_int_equal(rs.count, 0);
	assert_int_equal(rs2.count, 0);
	assert_int_equal(g_nsubs, 3);
	ut_complete(0, 0);
	ut_threads_poll();
	assert_int_equal(rs.count, 0);
	assert_int_equal(g_nsubs, 3);
	ut_complete(1, 0);
	ut_threads_poll();
	assert_int_equal(r0.count + r1.count, 2);
	assert_int_equal(rs.count, 1);
	assert_int_equal(rs.status, 0);
	assert_ptr_equal(rs.thread, ut_thread(0));
	assert_int_equal(rs2.count, 1);
	assert_ptr_equal(rs2.thread, ut_thread(1));
	/* The held write went to the module after the unfreeze. */
	assert_int_equal(g_nsubs, 4);
	assert_int_equal(g_subs[3].type, UST_BDEV_IO_TYPE_WRITE);
	for (i = 0; i < g_nsubs; i++)
		if (!g_subs[i].done)
			ut_complete(i, 0);
	ut_threads_poll();
	assert_int_equal(w1.count, 2);
	assert_int_equal(w1.status, 0);
	ust_set_thread(ut_thread(1));
	ust_put_io_channel(ch1);
	ust_set_thread(ut_thread(0));
	split_env_close(&e);
}

/* ---- hot remove --------------------------------------------------------- */

static void test_hot_remove(void **state)
{
	struct ut_disk *d = ut_disk_register("hot", 64, ALL_TYPES, false);
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;
	struct done inflight = {0}, queued = {0};
	int unreg = 0;
	char buf[BS];

	reset_subs();
	g_events[0] = g_events[1] = 0;
	g_destructs = 0;
	ust_set_thread(ut_thread(1));
	assert_int_equal(ust_bdev_open_ext("hot", true, event_cb, NULL, &desc), 0);
	ch = ust_bdev_get_io_channel(desc);
	assert_int_equal(ust_bdev_read_blocks(desc, ch, buf, 0, 1, io_done, &inflight), 0);
	g_nomem_left = 1;
	assert_int_equal(ust_bdev_read_blocks(desc, ch, buf, 1, 1, io_done, &queued), 0);
	ust_set_thread(ut_thread(0));

	ust_bdev_unregister(&d->bdev, unreg_done, &unreg);
	ut_threads_poll();
	assert_int_equal(g_events[UST_BDEV_EVENT_REMOVE], 1);
	assert_ptr_equal(g_event_thread, ut_thread(1));
	assert_int_equal(queued.count, 1);
	assert_int_equal(queued.status, -ENODEV);
	assert_int_equal(unreg, 0);
	assert_int_equal(ust_bdev_open_ext("hot", false, event_cb, NULL, &desc) == -ENODEV, 1);

	ust_set_thread(ut_thread(1));
	assert_int_equal(ust_bdev_read_blocks(desc, ch, buf, 0, 1, io_done, &queued), -ENODEV);
	ust_set_thread(ut_thread(0));
	ut_complete(0, -EIO);
	ut_threads_poll();
	assert_int_equal(inflight.count, 1);
	assert_int_equal(inflight.status, -EIO);
	assert_int_equal(unreg, 0);
	ust_set_thread(ut_thread(1));
	ust_put_io_channel(ch);
	ust_bdev_close(desc);
	ust_set_thread(ut_thread(0));
	ut_threads_poll();
	assert_int_equal(unreg, 1);
	assert_int_equal(g_destructs, 1);
	g_destructs = 0;
	g_destruct_order[0] = '\0';
	/* A second unregister of a gone bdev is refused by name. */
	assert_int_equal(ust_bdev_unregister_by_name("hot", &g_ut_module, NULL, NULL), -ENODEV);

	/*
	 * The last descriptor closes while the unregister's channel walk is
	 * still under way (an examine's load giving up): the unregister is
	 * finished once, by whichever comes last. It was finished twice, and
	 * the second removal of the gone bdev from the list unlinked the bdev
	 * registered in between.
	 */
	d = ut_disk_register("hot2", 64, ALL_TYPES, false);
	ust_set_thread(ut_thread(1));
	assert_int_equal(ust_bdev_open_ext("hot2", false, event_cb, NULL, &desc), 0);
	ch = ust_bdev_get_io_channel(desc);
	ust_set_thread(ut_thread(0));
	unreg = 0;
	ust_bdev_unregister(&d->bdev, unreg_done, &unreg);
	ust_set_thread(ut_thread(1));
	ust_put_io_channel(ch);
	ust_bdev_close(desc);
	/* Thread 0 alone: the walk still waits on thread 1. */
	ust_thread_poll(ut_thread(0), 0, 0);
	ust_set_thread(ut_thread(0));
	d = ut_disk_register("hot3", 64, ALL_TYPES, false);
	ut_threads_poll();
	assert_int_equal(unreg, 1);
	assert_int_equal(g_destructs, 1);
	assert_null(ust_bdev_get_by_name("hot2"));
	{
		struct ust_bdev *b;

		for (b = ust_bdev_first(); b != NULL && b != &d->bdev; b = ust_bdev_next(b)) {
		}
		assert_ptr_equal(b, &d->bdev);
	}
	unregister_sync(&d->bdev);
	g_destructs = 0;
	g_destruct_order[0] = '\0';
}

static void test_resize(void **state)
{
	struct ut_disk *d = ut_disk_register("resize", 64, ALL_TYPES, false);
	struct ust_bdev_desc *desc;

	g_events[0] = g_events[1] = 0;
	assert_int_equal(ust_bdev_open_ext("resize", false, event_cb, NULL, &desc), 0);
	assert_int_equal(ust_bdev_notify_blockcnt_change(&d->bdev, 32), -EBUSY);
	assert_int_equal(ust_bdev_notify_blockcnt_change(&d->bdev, 128), 0);
	ut_threads_poll();
	assert_int_equal(g_events[UST_BDEV_EVENT_RESIZE], 1);
	assert_int_equal(ust_bdev_get_num_blocks(&d->bdev), 128);
	ust_bdev_close(desc);
	assert_int_equal(ust_bdev_notify_blockcnt_change(&d->bdev, 32), 0);
	unregister_sync(&d->bdev);
	g_destructs = 0;
	g_destruct_order[0] = '\0';
}

/* ---- emulation ---------------------------------------------------------- */

static void test_write_zeroes_emulation(void **state)
{
	struct ut_disk *d = ut_disk_register("wz", 4096, RW_TYPES, true);
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;
	struct done dn = {0};
	uint64_t i;

	reset_subs();
	memset(d->data, 0xff, 4096 * BS);
	assert_int_equal(ust_bdev_open_ext("wz", true, event_cb, NULL, &desc), 0);
	ch = ust_bdev_get_io_channel(desc);
	g_inline = true;
	assert_int_equal(ust_bdev_write_zeroes_blocks(desc, ch, 7, 3000, io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(dn.count, 1);
	assert_int_equal(dn.status, 0);
	/* 1 MiB zero buffer = 2048 blocks per write. */
	assert_int_equal(g_nsubs, 2);
	assert_int_equal(g_subs[0].type, UST_BDEV_IO_TYPE_WRITE);
	assert_int_equal(g_subs[0].num, 2048);
	assert_int_equal(g_subs[1].offset, 7 + 2048);
	assert_int_equal(g_subs[1].num, 3000 - 2048);
	for (i = 7 * BS; i < 3007 * BS; i++)
		if (d->data[i] != 0)
			fail_msg("byte %" PRIu64 " not zeroed", i);
	assert_int_equal(d->data[7 * BS - 1], 0xff);
	assert_int_equal(d->data[3007 * BS], 0xff);
	ust_put_io_channel(ch);
	ust_bdev_close(desc);
	ut_threads_poll();
	unregister_sync(&d->bdev);
}

static void test_compare_emulated_and_caw(void **state)
{
	struct ut_disk *d = ut_disk_register("cmp", 64, RW_TYPES, true);
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;
	struct done dn = {0};
	uint8_t pat[2 * BS], other[2 * BS], newdata[2 * BS];
	struct iovec cmp = {pat, sizeof(pat)}, wr = {newdata, sizeof(newdata)};
	struct iovec bad = {other, sizeof(other)};

	reset_subs();
	memset(pat, 0xab, sizeof(pat));
	memset(other, 0xcd, sizeof(other));
	memset(newdata, 0x11, sizeof(newdata));
	memcpy(d->data + 4 * BS, pat, sizeof(pat));
	assert_int_equal(ust_bdev_open_ext("cmp", true, event_cb, NULL, &desc), 0);
	ch = ust_bdev_get_io_channel(desc);
	g_inline = true;
	assert_int_equal(ust_bdev_compare_blocks(desc, ch, pat, 4, 2, io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(dn.status, 0);
	assert_int_equal(g_subs[0].type, UST_BDEV_IO_TYPE_READ);
	assert_int_equal(ust_bdev_compare_blocks(desc, ch, other, 4, 2, io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(dn.status, -EILSEQ);

	/* Miscompare: nothing written. */
	assert_int_equal(ust_bdev_comparev_and_writev_blocks(desc, ch, &bad, 1, &wr, 1, 4, 2,
							     io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(dn.status, -EILSEQ);
	assert_memory_equal(d->data + 4 * BS, pat, sizeof(pat));
	assert_int_equal(ust_bdev_comparev_and_writev_blocks(desc, ch, &cmp, 1, &wr, 1, 4, 2,
							     io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(dn.count, 4);
	assert_int_equal(dn.status, 0);
	assert_memory_equal(d->data + 4 * BS, newdata, sizeof(newdata));
	ust_put_io_channel(ch);
	ust_bdev_close(desc);
	ut_threads_poll();
	unregister_sync(&d->bdev);
}

static void test_caw_range_lock(void **state)
{
	struct ut_disk *d = ut_disk_register("caw", 64, ALL_TYPES, true);
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch0, *ch1;
	struct done a = {0}, b = {0}, c = {0};
	uint8_t zero[4 * BS] = {0}, one[4 * BS], two[4 * BS];
	struct iovec z = {zero, sizeof(zero)}, o = {one, sizeof(one)}, t = {two, sizeof(two)};

	reset_subs();
	memset(one, 1, sizeof(one));
	memset(two, 2, sizeof(two));
	assert_int_equal(ust_bdev_open_ext("caw", true, event_cb, NULL, &desc), 0);
	ch0 = ust_bdev_get_io_channel(desc);
	ust_set_thread(ut_thread(1));
	ch1 = ust_bdev_get_io_channel(desc);
	ust_set_thread(ut_thread(0));

	/* A: 0 -> 1 on blocks 0-3 (thread 0). B: 0 -> 2 on blocks 2-5 (thread 1). */
	assert_int_equal(ust_bdev_comparev_and_writev_blocks(desc, ch0, &z, 1, &o, 1, 0, 4,
							     io_done, &a), 0);
	ust_set_thread(ut_thread(1));
	assert_int_equal(ust_bdev_comparev_and_writev_blocks(desc, ch1, &z, 1, &t, 1, 2, 4,
							     io_done, &b), 0);
	/* C does not overlap A or B's ranges beyond block 8: proceeds at once. */
	assert_int_equal(ust_bdev_comparev_and_writev_blocks(desc, ch1, &z, 1, &t, 1, 8, 4,
							     io_done, &c), 0);
	ust_set_thread(ut_thread(0));
	ut_threads_poll();
	/* A's compare and C's compare are in the module; B waits for the lock. */
	assert_int_equal(g_nsubs, 2);
	assert_int_equal(g_subs[0].offset, 0);
	assert_int_equal(g_subs[1].offset, 8);
	ut_complete(0, 0);
	ut_threads_poll();
	assert_int_equal(g_nsubs, 3);
	assert_int_equal(g_subs[2].type, UST_BDEV_IO_TYPE_WRITE);
	ut_complete(2, 0);
	ut_threads_poll();
	assert_int_equal(a.count, 1);
	assert_int_equal(a.status, 0);
	/* Now B compares against A's result and fails. */
	assert_int_equal(g_nsubs, 4);
	assert_int_equal(g_subs[3].type, UST_BDEV_IO_TYPE_COMPARE);
	assert_int_equal(g_subs[3].offset, 2);
	g_inline = true;
	ut_complete(3, -EILSEQ);
	ut_complete(1, 0);
	ut_threads_poll();
	assert_int_equal(b.count, 1);
	assert_int_equal(b.status, -EILSEQ);
	assert_int_equal(c.count, 1);
	assert_int_equal(c.status, 0);
	ust_set_thread(ut_thread(1));
	ust_put_io_channel(ch1);
	ust_set_thread(ut_thread(0));
	ust_put_io_channel(ch0);
	ust_bdev_close(desc);
	ut_threads_poll();
	unregister_sync(&d->bdev);
}

/* ---- statistics --------------------------------------------------------- */

static void iostat_cb(struct ust_bdev *bdev, struct ust_bdev_io_stat *stat, void *ctx, int rc)
{
	*(int *)ctx = rc == 0 ? 1 : rc;
}

static void test_stats(void **state)
{
	struct split_env e;
	struct ust_io_channel *ch1;
	struct ust_bdev_io_stat st;
	struct done dn = {0};
	char buf[4 * BS];
	int got = 0;

	split_env_open(&e, "stats", 0, 0, 0, false);
	ust_env_test_set_ticks(1000);
	ust_thread_poll(ut_thread(0), 0, 0);
	assert_int_equal(ust_bdev_read_blocks(e.desc, e.ch, buf, 0, 4, io_done, &dn), 0);
	ust_env_test_set_ticks(1500);
	ust_thread_poll(ut_thread(0), 0, 0);
	ut_complete(0, 0);
	ust_thread_poll(ut_thread(0), 0, 0);
	assert_int_equal(dn.count, 1);
	assert_int_equal(ust_bdev_write_blocks(e.desc, e.ch, buf, 0, 2, io_done, &dn), 0);
	ut_complete(1, -EIO);
	ut_threads_poll();
	ust_set_thread(ut_thread(1));
	ch1 = ust_bdev_get_io_channel(e.desc);
	g_inline = true;
	assert_int_equal(ust_bdev_write_blocks(e.desc, ch1, buf, 0, 3, io_done, &dn), 0);
	ust_set_thread(ut_thread(0));
	ut_threads_poll();
	ust_bdev_get_channel_iostat(e.ch, &st);
	assert_int_equal(st.num_read_ops, 1);
	assert_int_equal(st.bytes_read, 4 * BS);
	assert_int_equal(st.read_latency_ticks, 500);
	assert_int_equal(st.max_read_latency_ticks, 500);
	assert_int_equal(st.min_read_latency_ticks, 500);
	assert_int_equal(st.num_write_ops, 0);
	assert_int_equal(st.num_io_errors, 1);

	ust_bdev_get_iostat(&e.d->bdev, &st, iostat_cb, &got);
	ut_threads_poll();
	assert_int_equal(got, 1);
	assert_int_equal(st.num_read_ops, 1);
	assert_int_equal(st.num_write_ops, 1);
	assert_int_equal(st.bytes_written, 3 * BS);
	assert_int_equal(st.num_io_errors, 1);
	/* A destroyed channel's counters stay in the totals. */
	ust_set_thread(ut_thread(1));
	ust_put_io_channel(ch1);
	ust_set_thread(ut_thread(0));
	ut_threads_poll();
	got = 0;
	ust_bdev_get_iostat(&e.d->bdev, &st, iostat_cb, &got);
	ut_threads_poll();
	assert_int_equal(got, 1);
	assert_int_equal(st.num_write_ops, 1);
	assert_int_equal(st.bytes_written, 3 * BS);
	ust_env_test_unfreeze_ticks();
	split_env_close(&e);
}

/* ---- QoS ---------------------------------------------------------------- */

static void test_qos_bucket_arithmetic(void **state)
{
	struct bdev_qos_bucket b;
	const uint64_t hz = 1000000000ULL, slice = 1000000ULL; /* 1 ms */

	/* 1000 IOPS: one I/O per 1 ms slice. */
	bdev_qos_bucket_set(&b, 1000, slice, hz, 1);
	assert_true(bdev_qos_bucket_allows(&b, 1, hz));
	bdev_qos_bucket_charge(&b, 1, hz);
	assert_false(bdev_qos_bucket_allows(&b, 1, hz));
	bdev_qos_bucket_refill(&b, slice / 2);
	assert_false(bdev_qos_bucket_allows(&b, 1, hz));
	bdev_qos_bucket_refill(&b, slice / 2);
	assert_true(bdev_qos_bucket_allows(&b, 1, hz));
	assert_int_equal(b.tokens, (int64_t)hz);
	/* Idle time does not bank more than one slice. */
	bdev_qos_bucket_refill(&b, 100 * slice);
	assert_int_equal(b.tokens, b.max_tokens);
	assert_int_equal(b.max_tokens, (int64_t)hz);

	/* 100 IOPS: less than one per slice, still exactly one per 10 ms. */
	bdev_qos_bucket_set(&b, 100, slice, hz, 1);
	bdev_qos_bucket_charge(&b, 1, hz);
	bdev_qos_bucket_refill(&b, slice);
	assert_false(bdev_qos_bucket_allows(&b, 1, hz));
	bdev_qos_bucket_refill(&b, 8 * slice);
	assert_false(bdev_qos_bucket_allows(&b, 1, hz));
	bdev_qos_bucket_refill(&b, slice - 1);
	assert_false(bdev_qos_bucket_allows(&b, 1, hz));
	bdev_qos_bucket_refill(&b, 1);
	assert_true(bdev_qos_bucket_allows(&b, 1, hz));

	/* 10 MiB/s: a 4 KiB I/O fits in a slice's 10 KiB; two of them, not three. */
	bdev_qos_bucket_set(&b, 10 * 1048576, slice, hz, 1);
	assert_true(bdev_qos_bucket_allows(&b, 4096, hz));
	bdev_qos_bucket_charge(&b, 4096, hz);
	assert_true(bdev_qos_bucket_allows(&b, 4096, hz));
	bdev_qos_bucket_charge(&b, 4096, hz);
	assert_false(bdev_qos_bucket_allows(&b, 4096, hz));

	/* 1 MiB/s and a 64 KiB I/O (more than a slice): debt paid over 62.5 ms. */
	bdev_qos_bucket_set(&b, 1048576, slice, hz, 1);
	assert_true(bdev_qos_bucket_allows(&b, 65536, hz));
	bdev_qos_bucket_charge(&b, 65536, hz);
	assert_false(bdev_qos_bucket_allows(&b, 65536, hz));
	bdev_qos_bucket_refill(&b, 62 * slice);
	assert_false(bdev_qos_bucket_allows(&b, 65536, hz));
	bdev_qos_bucket_refill(&b, slice);
	assert_true(bdev_qos_bucket_allows(&b, 65536, hz));

	/* No limit: always allows, charge is ignored. */
	bdev_qos_bucket_set(&b, 0, slice, hz, 1);
	bdev_qos_bucket_charge(&b, 1000, hz);
	assert_true(bdev_qos_bucket_allows(&b, UINT64_MAX / hz, hz));
}

static void qos_set_done(void *ctx, int rc)
{
	*(int *)ctx = rc == 0 ? 1 : rc;
}

static void test_qos_rate_limit(void **state)
{
	struct split_env e;
	struct ust_io_channel *ch1;
	struct done dn = {0};
	uint64_t limits[4] = {1000, 0, 0, 0}, got[4];
	char buf[8 * BS];
	int set = 0, i;

	ust_env_test_set_ticks(5000000000ULL);
	split_env_open(&e, "qos", 0, 0, 0, false);
	ust_bdev_set_qos_rate_limits(&e.d->bdev, limits, qos_set_done, &set);
	ut_threads_poll();
	assert_int_equal(set, 1);
	ust_bdev_get_qos_rate_limits(&e.d->bdev, got);
	assert_int_equal(got[0], 1000);

	g_inline = true;
	/* Five I/O from thread 1 (forwarded to thread 0, the QoS thread). */
	ust_set_thread(ut_thread(1));
	ch1 = ust_bdev_get_io_channel(e.desc);
	for (i = 0; i < 5; i++)
		assert_int_equal(ust_bdev_read_blocks(e.desc, ch1, buf, i, 1, io_done, &dn), 0);
	ust_set_thread(ut_thread(0));
	ut_threads_poll();
	assert_int_equal(g_nsubs, 1);
	assert_int_equal(dn.count, 1);
	assert_ptr_equal(dn.thread, ut_thread(1));
	assert_ptr_equal(g_subs[0].thread, ut_thread(0));
	for (i = 2; i <= 4; i++) {
		ust_env_test_advance_ticks(1000000ULL);
		ut_threads_poll();
		assert_int_equal(g_nsubs, i);
		assert_int_equal(dn.count, i);
	}
	/* Switch to a bandwidth limit: 1 MB/s with 4 KiB writes: ~4 ms each. */
	limits[0] = 0;
	limits[3] = 1;
	set = 0;
	ust_bdev_set_qos_rate_limits(&e.d->bdev, limits, qos_set_done, &set);
	ut_threads_poll();
	assert_int_equal(set, 1);
	/* The reads still queued pass unmetered by the write limit. */
	assert_int_equal(g_nsubs, 5);
	for (i = 0; i < 3; i++)
		assert_int_equal(ust_bdev_write_blocks(e.desc, e.ch, buf, 0, 8, io_done, &dn), 0);
	ut_threads_poll();
	assert_int_equal(g_nsubs, 6);
	ust_env_test_advance_ticks(3000000ULL);
	ut_threads_poll();
	assert_int_equal(g_nsubs, 6);
	ust_env_test_advance_ticks(1000000ULL);
	ut_threads_poll();
	assert_int_equal(g_nsubs, 7);
	/* Off: the rest goes at once. */
	limits[3] = 0;
	set = 0;
	ust_bdev_set_qos_rate_limits(&e.d->bdev, limits, qos_set_done, &set);
	ut_threads_poll();
	assert_int_equal(set, 1);
	assert_int_equal(g_nsubs, 8);
	assert_int_equal(dn.count, 8);
	/* Direct path again. */
	assert_int_equal(ust_bdev_write_blocks(e.desc, e.ch, buf, 0, 8, io_done, &dn), 0);
	assert_int_equal(g_nsubs, 9);
	ust_set_thread(ut_thread(1));
	ust_put_io_channel(ch1);
	ust_set_thread(ut_thread(0));
	ut_threads_poll();
	ust_env_test_unfreeze_ticks();
	split_env_close(&e);
}

/* ---- examine and shutdown ----------------------------------------------- */

/* A vbdev module: claims any bdev named "base*" and stacks "vb_<name>" on it. */
struct vbdev {
	struct ust_bdev bdev;
	struct ust_bdev_desc *base_desc;
	struct ust_bdev *base;
};

static struct ust_bdev_module g_vb_module;
static int g_vb_examined;

static void vb_base_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
}

static int vb_destruct(void *ctxt)
{
	struct vbdev *v = ctxt;

	strcat(g_destruct_order, v->bdev.name);
	strcat(g_destruct_order, ",");
	ust_bdev_module_release_bdev(v->base);
	ust_bdev_close(v->base_desc);
	free(v->bdev.name);
	free(v);
	return 0;
}

static const struct ust_bdev_fn_table g_vb_fn = {
	.destruct = vb_destruct,
	.submit_request = ut_submit,
	.io_type_supported = ut_io_type_supported,
	.get_io_channel = ut_get_io_channel,
};

static void vb_examine_disk(struct ust_bdev *bdev)
{
	struct vbdev *v;
	char name[64];

	g_vb_examined++;
	if (strncmp(ust_bdev_get_name(bdev), "base", 4) != 0) {
		ust_bdev_module_examine_done(&g_vb_module);
		return;
	}
	v = calloc(1, sizeof(*v));
	snprintf(name, sizeof(name), "vb_%s", ust_bdev_get_name(bdev));
	assert_int_equal(ust_bdev_open_ext(ust_bdev_get_name(bdev), false, vb_base_event, NULL,
					   &v->base_desc), 0);
	assert_int_equal(ust_bdev_module_claim_bdev(bdev, v->base_desc, &g_vb_module), 0);
	v->base = bdev;
	v->bdev.name = strdup(name);
	v->bdev.blocklen = bdev->blocklen;
	v->bdev.blockcnt = bdev->blockcnt;
	v->bdev.ctxt = bdev->ctxt; /* submit through the ut module's handler */
	v->bdev.module = &g_vb_module;
	v->bdev.fn_table = &g_vb_fn;
	/* The vbdev is both a struct ust_bdev and owns its context via destruct. */
	v->bdev.ctxt = v;
	assert_int_equal(ust_bdev_register(&v->bdev), 0);
	ust_bdev_module_examine_done(&g_vb_module);
}

static bool g_vb_fini;
static void vb_fini(void)
{
	g_vb_fini = true;
}

static struct ust_bdev_module g_vb_module = {
	.name = "vb",
	.examine_disk = vb_examine_disk,
	.module_fini = vb_fini,
};
UST_BDEV_MODULE_REGISTER(vb, &g_vb_module)

/*
 * A module that holds a bdev without being a bdev on it (as a blobstore
 * does) and lets go of it asynchronously at shutdown.
 */
static struct ust_bdev_module g_holder_module;
static int g_holder_fini_starts;

static void holder_fini_start(void)
{
	g_holder_fini_starts++; /* done later, by the test */
}

static struct ust_bdev_module g_holder_module = {
	.name = "holder",
	.fini_start = holder_fini_start,
	.async_fini_start = true,
};
UST_BDEV_MODULE_REGISTER(holder, &g_holder_module)

static int g_examine_waited;
static void examine_waited(void *ctx)
{
	g_examine_waited++;
}

static void fini_done(void *ctx)
{
	*(int *)ctx = 1;
}

static void test_examine_and_shutdown(void **state)
{
	struct ut_disk *base;
	struct ust_bdev *plain;
	int done = 0;

	g_destruct_order[0] = '\0';
	ut_disk_register("plain", 8, ALL_TYPES, false);
	base = ut_disk_register("base0", 8, ALL_TYPES, false);
	assert_int_equal(ust_bdev_wait_for_examine(examine_waited, NULL), 0);
	ut_threads_poll();
	assert_int_equal(g_examine_waited, 1);
	assert_non_null(ust_bdev_get_by_name("vb_base0"));
	assert_true(ust_bdev_is_claimed(&base->bdev));
	assert_ptr_equal(ust_bdev_get_claim_module(&base->bdev), &g_vb_module);
	/* The vbdev itself was examined too. */
	assert_true(g_vb_examined >= 3);
	/* Register a bdev after the vbdev so "newest first" alone would be wrong. */
	ut_disk_register("last", 8, ALL_TYPES, false);
	plain = ust_bdev_get_by_name("plain");
	assert_int_equal(ust_bdev_module_claim_bdev(plain, NULL, &g_holder_module), 0);

	/* No bdev goes while the holder's fini_start is unfinished. */
	ust_bdev_finish(fini_done, &done);
	ut_threads_poll();
	assert_int_equal(g_holder_fini_starts, 1);
	assert_int_equal(done, 0);
	assert_string_equal(g_destruct_order, "");
	assert_non_null(ust_bdev_get_by_name("last"));
	ust_bdev_module_release_bdev(plain);
	ust_bdev_module_fini_start_done(&g_holder_module);
	ut_threads_poll();
	assert_int_equal(done, 1);
	assert_string_equal(g_destruct_order, "last,vb_base0,base0,plain,");
	assert_true(g_vb_fini);
	assert_null(ust_bdev_first());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid),
		cmocka_unit_test(test_register_and_names),
		cmocka_unit_test(test_many_names),
		cmocka_unit_test(test_claims),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_split_boundary),
		cmocka_unit_test(test_split_max_transfer_iovs),
		cmocka_unit_test(test_split_iov_limit),
		cmocka_unit_test(test_bounce),
		cmocka_unit_test(test_null_buffer_read),
		cmocka_unit_test(test_pool_exhaustion),
		cmocka_unit_test(test_nomem_requeue),
		cmocka_unit_test(test_reset_two_threads),
		cmocka_unit_test(test_hot_remove),
		cmocka_unit_test(test_resize),
		cmocka_unit_test(test_write_zeroes_emulation),
		cmocka_unit_test(test_compare_emulated_and_caw),
		cmocka_unit_test(test_caw_range_lock),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_qos_bucket_arithmetic),
		cmocka_unit_test(test_qos_rate_limit),
		cmocka_unit_test(test_examine_and_shutdown),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
