/*
 * Unit tests for the raid module (bdev/raid) over malloc bases, with the
 * error module injecting failures, two ust_threads polled by hand: raid0
 * data round trip across strips and the exact placement of every block on
 * its member, write_zeroes split over members; raid1 mirroring, degraded
 * reads (read errors retried on the other mirror), a failed write removing
 * the member, rebuild with writes from another thread racing it, remove /
 * add / hot removal of members, configuring arrays completed by examine,
 * bad arguments with their exact errors, the RPCs and save_config.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "env_test.h"
#include "ustor/bdev.h"
#include "ustor/bdev_module.h"
#include "ustor/env.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"
#include "ut_rpc.h"
#include "ut_threads.h"

#include "../../../bdev/error/bdev_error.h"
#include "../../../bdev/malloc/bdev_malloc.h"
#include "../../../bdev/raid/bdev_raid.h"
#include "../../../bdev/raid/raid_internal.h"

#define BS 512

static void poll_once(void)
{
	ust_thread_poll(ut_thread(0), 0, 0);
	ust_thread_poll(ut_thread(1), 0, 0);
	ust_set_thread(ut_thread(0));
}

static int setup(void **state)
{
	return ut_threads_setup(2) == 0 ? ut_bdev_start() : -1;
}

static int teardown(void **state)
{
	int rc = ut_bdev_stop();

	return ut_threads_teardown() == 0 ? rc : -1;
}

/* ---- helpers ------------------------------------------------------------ */

static void malloc_create(const char *name, uint64_t blocks)
{
	struct ust_malloc_opts opts = {.name = name, .num_blocks = blocks, .block_size = BS};

	assert_int_equal(ust_bdev_malloc_create(&opts, NULL), 0);
	ut_threads_poll();
}

static void rc_done(void *ctx, int rc)
{
	int *out = ctx;

	*out = rc == 0 ? 1 : rc;
}

static void malloc_delete(const char *name)
{
	int done = 0;

	assert_int_equal(ust_bdev_malloc_delete(name, rc_done, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
}

static int raid_create(const char *name, enum ust_raid_level level, uint32_t strip_kb,
		       const char *b0, const char *b1, const char *b2)
{
	const char *names[3] = {b0, b1, b2};
	struct ust_raid_opts opts = {.name = name, .level = level, .base_names = names,
				     .strip_size_kb = strip_kb};
	int rc;

	opts.num_bases = b2 != NULL ? 3 : (b1 != NULL ? 2 : 1);
	rc = ust_bdev_raid_create(&opts);
	ut_threads_poll();
	return rc;
}

static void raid_delete(const char *name)
{
	int done = 0;

	assert_int_equal(ust_bdev_raid_delete(name, rc_done, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
	assert_null(ust_bdev_get_by_name(name));
}

static void event_cb(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	int *removed = ctx;

	if (removed != NULL && type == UST_BDEV_EVENT_REMOVE) {
		(*removed)++;
	}
}

struct io_wait {
	int done;
	int status;
};

static void io_done(struct ust_bdev_io *io, int status, void *cb_arg)
{
	struct io_wait *w = cb_arg;

	w->done++;
	w->status = status;
}

enum op { OP_READ, OP_WRITE, OP_ZEROES, OP_FLUSH };

/* One I/O, run to completion; returns its status. */
static int do_io(struct ust_bdev_desc *desc, struct ust_io_channel *ch, enum op op, void *buf,
		 uint64_t off, uint64_t n)
{
	struct io_wait w = {0};
	int rc;

	switch (op) {
	case OP_READ:
		rc = ust_bdev_read_blocks(desc, ch, buf, off, n, io_done, &w);
		break;
	case OP_WRITE:
		rc = ust_bdev_write_blocks(desc, ch, buf, off, n, io_done, &w);
		break;
	case OP_ZEROES:
		rc = ust_bdev_write_zeroes_blocks(desc, ch, off, n, io_done, &w);
		break;
	default:
		rc = ust_bdev_flush_blocks(desc, ch, off, n, io_done, &w);
		break;
	}
	assert_int_equal(rc, 0);
	ut_threads_poll();
	assert_int_equal(w.done, 1);
	return w.status;
}

struct handle {
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;
};

static void handle_open(struct handle *h, const char *name, bool write)
{
	ust_set_thread(ut_thread(0));
	assert_int_equal(ust_bdev_open_ext(name, write, event_cb, NULL, &h->desc), 0);
	h->ch = ust_bdev_get_io_channel(h->desc);
	assert_non_null(h->ch);
}

static void handle_close(struct handle *h)
{
	ust_set_thread(ut_thread(0));
	ust_put_io_channel(h->ch);
	ust_bdev_close(h->desc);
	ut_threads_poll();
}

/* Whole bdev contents (claimed bases are opened read-only, which is allowed). */
static uint8_t *read_all(const char *name, uint64_t *blocks)
{
	struct handle h;
	uint8_t *buf;
	uint64_t n;

	handle_open(&h, name, false);
	n = ust_bdev_get_num_blocks(ust_bdev_desc_get_bdev(h.desc));
	buf = malloc(n * BS);
	assert_non_null(buf);
	assert_int_equal(do_io(h.desc, h.ch, OP_READ, buf, 0, n), 0);
	handle_close(&h);
	if (blocks != NULL) {
		*blocks = n;
	}
	return buf;
}

static void fill_random(uint8_t *buf, size_t len, uint32_t seed)
{
	size_t i;

	for (i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
}

static void write_in_chunks(struct handle *h, uint8_t *data, uint64_t blocks, uint64_t chunk)
{
	uint64_t off, n;

	for (off = 0; off < blocks; off += n) {
		n = blocks - off < chunk ? blocks - off : chunk;
		assert_int_equal(do_io(h->desc, h->ch, OP_WRITE, data + off * BS, off, n), 0);
	}
}

static void get_info(const char *name, struct ust_raid_info *info)
{
	assert_int_equal(ust_bdev_raid_get_info(name, info), 0);
}

/* ---- raid0 -------------------------------------------------------------- */

static void test_raid0_layout(void **state)
{
	const uint32_t strip = 8, members = 3, member_blocks = 1024;
	const char *names[3] = {"R0M0", "R0M1", "R0M2"};
	uint8_t *data, *back, *member[3], *zero;
	uint64_t blocks, b, strip_idx, mb, off, n;
	struct ust_bdev *raid;
	struct handle h;
	uint32_t m, mm;
	uint64_t mblock;

	for (m = 0; m < members; m++) {
		malloc_create(names[m], member_blocks + 5); /* odd size: rounded to strips */
	}
	assert_int_equal(raid_create("r0", UST_RAID0, 4, names[0], names[1], names[2]), 0);
	raid = ust_bdev_get_by_name("r0");
	assert_non_null(raid);
	assert_int_equal(ust_bdev_get_num_blocks(raid), members * member_blocks);
	assert_int_equal(ust_bdev_get_block_size(raid), BS);
	assert_int_equal(ust_bdev_get_optimal_io_boundary(raid), strip);
	assert_true(ust_bdev_is_claimed(ust_bdev_get_by_name(names[1])));

	blocks = members * member_blocks;
	data = malloc(blocks * BS);
	back = malloc(blocks * BS);
	fill_random(data, blocks * BS, 7);
	handle_open(&h, "r0", true);
	/* Chunks of 100 blocks: every one crosses strips and members. */
	write_in_chunks(&h, data, blocks, 100);
	for (off = 0; off < blocks; off += n) {
		n = blocks - off < 77 ? blocks - off : 77;
		assert_int_equal(do_io(h.desc, h.ch, OP_READ, back + off * BS, off, n), 0);
	}
	assert_memory_equal(back, data, blocks * BS);

	/* Every block sits on member (strip % 3), at (strip / 3) * 8 + block % 8. */
	for (m = 0; m < members; m++) {
		member[m] = read_all(names[m], NULL);
	}
	for (b = 0; b < blocks; b++) {
		strip_idx = b / strip;
		m = (uint32_t)(strip_idx % members);
		mb = (strip_idx / members) * strip + b % strip;
		assert_memory_equal(member[m] + mb * BS, data + b * BS, BS);
		raid0_map_block(raid->ctxt, b, &mm, &mblock);
		assert_int_equal(mm, m);
		assert_int_equal(mblock, mb);
	}

	/* write_zeroes across strips of all members: exactly those blocks change. */
	assert_int_equal(do_io(h.desc, h.ch, OP_ZEROES, NULL, 5, 50), 0);
	assert_int_equal(do_io(h.desc, h.ch, OP_READ, back, 0, blocks), 0);
	zero = calloc(50, BS);
	assert_memory_equal(back + 5 * BS, zero, 50 * BS);
	assert_memory_equal(back, data, 5 * BS);
	assert_memory_equal(back + 55 * BS, data + 55 * BS, (blocks - 55) * BS);
	assert_int_equal(do_io(h.desc, h.ch, OP_FLUSH, NULL, 0, blocks), 0);
	handle_close(&h);

	raid_delete("r0");
	for (m = 0; m < members; m++) {
		assert_false(ust_bdev_is_claimed(ust_bdev_get_by_name(names[m])));
		free(member[m]);
		malloc_delete(names[m]);
	}
	free(zero);
	free(data);
	free(back);
}

/* ---- raid1 -------------------------------------------------------------- */

static void test_raid1_mirror_degraded(void **state)
{
	const uint64_t blocks = 512;
	uint8_t *data, *back, *m0, *m1;
	struct ust_raid_info info;
	struct handle h;
	int i;

	malloc_create("D0", blocks);
	malloc_create("D1", blocks);
	assert_int_equal(ust_bdev_error_create("D1", NULL), 0);
	ut_threads_poll();
	assert_int_equal(raid_create("r1", UST_RAID1, 0, "D0", "EE_D1", NULL), 0);
	assert_non_null(ust_bdev_get_by_name("r1"));
	assert_int_equal(ust_bdev_get_num_blocks(ust_bdev_get_by_name("r1")), blocks);

	data = malloc(blocks * BS);
	back = malloc(blocks * BS);
	fill_random(data, blocks * BS, 11);
	handle_open(&h, "r1", true);
	write_in_chunks(&h, data, blocks, 64);
	/* Both mirrors hold every write. */
	m0 = read_all("D0", NULL);
	m1 = read_all("EE_D1", NULL);
	assert_memory_equal(m0, data, blocks * BS);
	assert_memory_equal(m1, data, blocks * BS);
	free(m0);
	free(m1);

	/* Reads failing on one mirror are served by the other. */
	assert_int_equal(ust_bdev_error_inject("EE_D1", UST_BDEV_IO_TYPE_READ,
					       UST_BDEV_ERROR_FAILURE, 1000, 0, 0), 0);
	for (i = 0; i < 32; i++) {
		memset(back, 0, 16 * BS);
		assert_int_equal(do_io(h.desc, h.ch, OP_READ, back, (uint64_t)i * 16, 16), 0);
		assert_memory_equal(back, data + (uint64_t)i * 16 * BS, 16 * BS);
	}
	/* The failing mirror was really tried (round robin) and failed. */
	assert_true(ust_bdev_error_remaining("EE_D1", UST_BDEV_IO_TYPE_READ) < 1000);
	get_info("r1", &info);
	assert_int_equal(info.num_online, 2);

	/* A read failing on both mirrors fails. */
	assert_int_equal(ust_bdev_error_inject("D0", UST_BDEV_IO_TYPE_READ, UST_BDEV_ERROR_FAILURE,
					       1, 0, 0), -ENODEV); /* D0 is no error bdev */
	assert_int_equal(ust_bdev_error_inject("EE_D1", UST_BDEV_ERROR_IO_CLEAR,
					       UST_BDEV_ERROR_NONE, 0, 0, 0), 0);

	/* A failed write drops the member; the write itself succeeds on the other. */
	assert_int_equal(ust_bdev_error_inject("EE_D1", UST_BDEV_IO_TYPE_WRITE,
					       UST_BDEV_ERROR_FAILURE, 1, 0, 0), 0);
	fill_random(data, 8 * BS, 12);
	assert_int_equal(do_io(h.desc, h.ch, OP_WRITE, data, 0, 8), 0);
	ut_threads_poll();
	get_info("r1", &info);
	assert_int_equal(info.num_online, 1);
	assert_int_equal(info.state, UST_RAID_ONLINE);
	assert_false(ust_bdev_is_claimed(ust_bdev_get_by_name("EE_D1")));
	/* Degraded: still reads and writes, from and to the survivor. */
	assert_int_equal(do_io(h.desc, h.ch, OP_READ, back, 0, blocks), 0);
	assert_memory_equal(back, data, blocks * BS);
	assert_int_equal(do_io(h.desc, h.ch, OP_WRITE, data, 100, 8), 0);
	handle_close(&h);

	raid_delete("r1");
	assert_int_equal(ust_bdev_error_delete("EE_D1", rc_done, &i), 0);
	ut_threads_poll();
	malloc_delete("D0");
	malloc_delete("D1");
	free(data);
	free(back);
}

static void add_done(void *ctx, int rc)
{
	*(int *)ctx = rc == 0 ? 1 : rc;
}

static void test_raid1_rebuild(void **state)
{
	const uint64_t blocks = 8192; /* 4 MiB: four rebuild windows */
	uint8_t *data, *m0, *m1, *w1;
	struct ust_raid_info info;
	struct io_wait waits[8];
	struct ust_io_channel *ch1;
	struct handle h;
	int added = 0, round, k, submitted = 0, during = 0;
	uint64_t off;

	malloc_create("B0", blocks);
	malloc_create("B1", blocks);
	assert_int_equal(raid_create("rb", UST_RAID1, 0, "B0", NULL, NULL), 0);
	data = malloc(blocks * BS);
	fill_random(data, blocks * BS, 21);
	handle_open(&h, "rb", true);
	write_in_chunks(&h, data, blocks, 256);

	assert_int_equal(ust_bdev_raid_add_base("rb", "B1", add_done, &added), 0);
	/* Writes from another thread while the rebuild runs, ahead of and behind it. */
	ust_set_thread(ut_thread(1));
	ch1 = ust_bdev_get_io_channel(h.desc);
	assert_non_null(ch1);
	ust_set_thread(ut_thread(0));
	w1 = malloc(16 * BS * 8);
	fill_random(w1, 16 * BS * 8, 22);
	memset(waits, 0, sizeof(waits));
	for (round = 0; round < 1000000 && (added == 0 || submitted < 8 || info.rebuilding);
	     round++) {
		poll_once();
		get_info("rb", &info);
		if (added == 1 && submitted < 8 && (round % 3) == 0) {
			k = submitted++;
			during += info.rebuilding ? 1 : 0;
			off = (uint64_t)k * 1000 + 3;
			ust_set_thread(ut_thread(1));
			assert_int_equal(ust_bdev_write_blocks(h.desc, ch1, w1 + (size_t)k * 16 * BS,
							       off, 16, io_done, &waits[k]),
					 0);
			ust_set_thread(ut_thread(0));
			memcpy(data + off * BS, w1 + (size_t)k * 16 * BS, 16 * BS);
		}
	}
	ut_threads_poll();
	assert_int_equal(added, 1);
	assert_true(during > 0); /* the race really happened */
	for (k = 0; k < 8; k++) {
		assert_int_equal(waits[k].done, 1);
		assert_int_equal(waits[k].status, 0);
	}
	get_info("rb", &info);
	assert_false(info.rebuilding);
	assert_int_equal(info.num_online, 2);
	assert_int_equal(info.num_slots, 2);
	/* The new member holds exactly the array's data, racing writes included. */
	m0 = read_all("B0", NULL);
	m1 = read_all("B1", NULL);
	assert_memory_equal(m0, data, blocks * BS);
	assert_memory_equal(m1, data, blocks * BS);

	/* Now the new member alone serves reads correctly. */
	ust_set_thread(ut_thread(1));
	ust_put_io_channel(ch1);
	ust_set_thread(ut_thread(0));
	handle_close(&h);
	k = 0;
	assert_int_equal(ust_bdev_raid_remove_base("B0", rc_done, &k), 0);
	ut_threads_poll();
	assert_int_equal(k, 1);
	free(m0);
	m0 = read_all("rb", NULL);
	assert_memory_equal(m0, data, blocks * BS);

	raid_delete("rb");
	malloc_delete("B0");
	malloc_delete("B1");
	free(m0);
	free(m1);
	free(w1);
	free(data);
}

/* ---- membership --------------------------------------------------------- */

static void test_remove_add_hot_remove(void **state)
{
	struct ust_raid_info info;
	int done = 0, removed = 0;
	struct ust_bdev_desc *desc;

	malloc_create("H0", 256);
	malloc_create("H1", 256);
	malloc_create("H2", 256);
	malloc_create("H3", 256);
	assert_int_equal(raid_create("m1", UST_RAID1, 0, "H0", "H1", NULL), 0);
	assert_int_equal(raid_create("m0", UST_RAID0, 16, "H2", "H3", NULL), 0);

	/* raid1: remove a member on request, then add it back. */
	assert_int_equal(ust_bdev_raid_remove_base("H1", rc_done, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
	get_info("m1", &info);
	assert_int_equal(info.num_online, 1);
	assert_false(ust_bdev_is_claimed(ust_bdev_get_by_name("H1")));
	assert_int_equal(ust_bdev_raid_remove_base("H1", rc_done, &done), -ENODEV);
	done = 0;
	assert_int_equal(ust_bdev_raid_add_base("m1", "H1", add_done, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
	get_info("m1", &info);
	assert_int_equal(info.num_online, 2);
	assert_int_equal(info.num_slots, 2); /* the freed slot was reused */
	assert_true(ust_bdev_is_claimed(ust_bdev_get_by_name("H1")));

	/* raid1: hot removal of a member degrades the array. */
	malloc_delete("H1");
	get_info("m1", &info);
	assert_int_equal(info.num_online, 1);
	assert_non_null(ust_bdev_get_by_name("m1"));

	/* raid0: hot removal of a member takes the array offline. */
	assert_int_equal(ust_bdev_open_ext("m0", false, event_cb, &removed, &desc), 0);
	done = 0;
	assert_int_equal(ust_bdev_malloc_delete("H3", rc_done, &done), 0);
	ut_threads_poll();
	assert_int_equal(removed, 1);
	assert_int_equal(done, 0); /* H3 waits for the array, the array for our descriptor */
	ust_bdev_close(desc);
	ut_threads_poll();
	assert_int_equal(done, 1);
	assert_null(ust_bdev_get_by_name("m0"));
	assert_int_equal(ust_bdev_raid_get_info("m0", &info), -ENODEV);
	assert_false(ust_bdev_is_claimed(ust_bdev_get_by_name("H2")));

	/* raid1: removing the last member takes it offline too. */
	done = 0;
	assert_int_equal(ust_bdev_raid_remove_base("H0", rc_done, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
	assert_null(ust_bdev_get_by_name("m1"));
	assert_false(ust_bdev_is_claimed(ust_bdev_get_by_name("H0")));
	malloc_delete("H0");
	malloc_delete("H2");
}

static void test_configuring_then_examine(void **state)
{
	struct ust_raid_info info;

	assert_int_equal(raid_create("late", UST_RAID0, 8, "L0", "L1", NULL), 0);
	assert_null(ust_bdev_get_by_name("late"));
	get_info("late", &info);
	assert_int_equal(info.state, UST_RAID_CONFIGURING);
	malloc_create("L0", 128);
	assert_null(ust_bdev_get_by_name("late"));
	assert_true(ust_bdev_is_claimed(ust_bdev_get_by_name("L0")));
	malloc_create("L1", 128);
	assert_non_null(ust_bdev_get_by_name("late"));
	get_info("late", &info);
	assert_int_equal(info.state, UST_RAID_ONLINE);
	assert_int_equal(ust_bdev_get_num_blocks(ust_bdev_get_by_name("late")), 256);
	raid_delete("late");
	/* A configuring array is deleted at once. */
	assert_int_equal(raid_create("late2", UST_RAID1, 0, "L0", "nothere", NULL), 0);
	assert_true(ust_bdev_is_claimed(ust_bdev_get_by_name("L0")));
	raid_delete("late2");
	assert_false(ust_bdev_is_claimed(ust_bdev_get_by_name("L0")));
	malloc_delete("L0");
	malloc_delete("L1");
}

static void test_bad_arguments(void **state)
{
	const char *one[1] = {"E0"};
	struct ust_raid_opts opts = {.name = "bad", .level = UST_RAID0, .base_names = one,
				     .num_bases = 1, .strip_size_kb = 3};
	struct ust_malloc_opts mo = {.name = "E4K", .num_blocks = 64, .block_size = 4096};
	int done = 0;

	malloc_create("E0", 128);
	malloc_create("E1", 128);
	malloc_create("Esmall", 16);
	assert_int_equal(ust_bdev_malloc_create(&mo, NULL), 0);
	assert_int_equal(ust_bdev_raid_create(&opts), -EINVAL); /* strip not a power of two */
	opts.strip_size_kb = 0;
	assert_int_equal(ust_bdev_raid_create(&opts), -EINVAL);
	opts.strip_size_kb = 4;
	opts.num_bases = 0;
	assert_int_equal(ust_bdev_raid_create(&opts), -EINVAL);
	opts.num_bases = 1;
	opts.level = (enum ust_raid_level)5;
	assert_int_equal(ust_bdev_raid_create(&opts), -EINVAL);
	assert_int_equal(raid_create("bad", UST_RAID1, 0, "E0", "E0", NULL), -EINVAL);
	assert_int_equal(raid_create("E1", UST_RAID1, 0, "E0", NULL, NULL), -EEXIST);
	assert_int_equal(raid_create("bad", UST_RAID1, 0, "E0", "E4K", NULL), -EINVAL);
	assert_false(ust_bdev_is_claimed(ust_bdev_get_by_name("E0")));
	/* Strip smaller than a block. */
	assert_int_equal(raid_create("bad", UST_RAID0, 1, "E4K", NULL, NULL), -EINVAL);
	assert_null(ust_bdev_get_by_name("bad"));

	assert_int_equal(raid_create("ok0", UST_RAID0, 4, "E0", NULL, NULL), 0);
	assert_int_equal(raid_create("bad", UST_RAID1, 0, "E0", "E1", NULL), -EPERM);
	assert_int_equal(ust_bdev_raid_add_base("ok0", "E1", add_done, &done), -ENOTSUP);
	assert_int_equal(raid_create("ok1", UST_RAID1, 0, "E1", NULL, NULL), 0);
	assert_int_equal(ust_bdev_raid_add_base("ok1", "nope", add_done, &done), -ENODEV);
	assert_int_equal(ust_bdev_raid_add_base("nope", "Esmall", add_done, &done), -ENODEV);
	assert_int_equal(ust_bdev_raid_add_base("ok1", "Esmall", add_done, &done), -EINVAL);
	assert_int_equal(ust_bdev_raid_add_base("ok1", "E4K", add_done, &done), -EINVAL);
	assert_int_equal(ust_bdev_raid_add_base("ok1", "E0", add_done, &done), -EPERM);
	assert_int_equal(ust_bdev_raid_remove_base("Esmall", rc_done, &done), -ENODEV);
	assert_int_equal(ust_bdev_raid_delete("nope", rc_done, &done), -ENODEV);
	assert_int_equal(done, 0);
	raid_delete("ok0");
	raid_delete("ok1");
	malloc_delete("E0");
	malloc_delete("E1");
	malloc_delete("Esmall");
	malloc_delete("E4K");
}

/* ---- RPCs and save_config ----------------------------------------------- */

static void expect_rpc_error(const char *method, const char *params, int code)
{
	json_t *r = ut_rpc_text(method, params);

	assert_int_equal(ut_rpc_error_code(r), code);
	json_decref(r);
}

static void expect_rpc_true(const char *method, const char *params)
{
	json_t *r = ut_rpc_text(method, params);

	assert_int_equal(ut_rpc_error_code(r), 0);
	assert_true(json_is_true(json_object_get(r, "result")));
	json_decref(r);
}

static void test_rpc_and_config(void **state)
{
	struct ust_bdev *bdev;
	json_t *r, *list, *calls, *params;

	malloc_create("P0", 256);
	malloc_create("P1", 256);
	malloc_create("P2", 256);
	expect_rpc_true("bdev_raid_create",
			"{\"name\":\"rr\",\"raid_level\":\"0\",\"base_bdevs\":\"P0 P1\","
			"\"strip_size_kb\":64}");
	bdev = ust_bdev_get_by_name("rr");
	assert_non_null(bdev);
	assert_int_equal(ust_bdev_get_num_blocks(bdev), 512);
	expect_rpc_error("bdev_raid_create",
			 "{\"name\":\"x\",\"raid_level\":\"raid5\",\"base_bdevs\":[\"P2\"]}",
			 UST_JSONRPC_ERROR_INVALID_PARAMS);
	expect_rpc_error("bdev_raid_create",
			 "{\"name\":\"x\",\"raid_level\":\"raid0\",\"base_bdevs\":[\"P2\"]}",
			 UST_JSONRPC_ERROR_INVALID_PARAMS); /* no strip size */
	expect_rpc_error("bdev_raid_create",
			 "{\"name\":\"x\",\"raid_level\":\"raid1\",\"base_bdevs\":[]}",
			 UST_JSONRPC_ERROR_INVALID_PARAMS);
	expect_rpc_error("bdev_raid_create",
			 "{\"name\":\"x\",\"raid_level\":\"raid1\",\"base_bdevs\":[\"P2\"],"
			 "\"superblock\":true}",
			 UST_JSONRPC_ERROR_INVALID_PARAMS);
	expect_rpc_true("bdev_raid_create",
			"{\"name\":\"rm\",\"raid_level\":\"raid1\",\"base_bdevs\":[\"P2\"],"
			"\"uuid\":\"11111111-2222-4333-8444-555555555555\"}");

	r = ut_rpc_text("bdev_raid_get_bdevs", "{\"category\":\"online\"}");
	list = json_object_get(r, "result");
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "name")),
			    "rr");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0),
							    "num_base_bdevs")), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "uuid")),
			    "11111111-2222-4333-8444-555555555555");
	json_decref(r);
	r = ut_rpc_text("bdev_raid_get_bdevs", "{\"category\":\"configuring\"}");
	assert_int_equal(json_array_size(json_object_get(r, "result")), 0);
	json_decref(r);
	expect_rpc_error("bdev_raid_get_bdevs", "{\"category\":\"bogus\"}",
			 UST_JSONRPC_ERROR_INVALID_PARAMS);

	/* save_config recreates the array by name, level, strip and members. */
	calls = json_array();
	bdev->fn_table->write_config_json(bdev, calls);
	assert_int_equal(json_array_size(calls), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(calls, 0), "method")),
			    "bdev_raid_create");
	params = json_object_get(json_array_get(calls, 0), "params");
	assert_string_equal(json_string_value(json_object_get(params, "raid_level")), "raid0");
	assert_int_equal(json_integer_value(json_object_get(params, "strip_size_kb")), 64);
	assert_string_equal(json_string_value(json_array_get(json_object_get(params, "base_bdevs"), 1)),
			    "P1");
	json_decref(calls);

	expect_rpc_error("bdev_raid_add_base_bdev", "{\"raid_bdev\":\"rr\",\"base_bdev\":\"P2\"}",
			 UST_JSONRPC_ERROR_INVALID_PARAMS);
	expect_rpc_error("bdev_raid_remove_base_bdev", "{\"name\":\"nope\"}",
			 UST_JSONRPC_ERROR_INVALID_PARAMS);
	expect_rpc_true("bdev_raid_delete", "{\"name\":\"rr\"}");
	expect_rpc_true("bdev_raid_add_base_bdev", "{\"raid_bdev\":\"rm\",\"base_bdev\":\"P0\"}");
	expect_rpc_true("bdev_raid_remove_base_bdev", "{\"name\":\"P0\"}");
	expect_rpc_true("bdev_raid_delete", "{\"name\":\"rm\"}");
	expect_rpc_error("bdev_raid_delete", "{\"name\":\"rm\"}", UST_JSONRPC_ERROR_INVALID_PARAMS);
	assert_null(ust_bdev_get_by_name("rr"));
	malloc_delete("P0");
	malloc_delete("P1");
	malloc_delete("P2");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_raid0_layout),
		cmocka_unit_test(test_raid1_mirror_degraded),
		cmocka_unit_test(test_raid1_rebuild),
		cmocka_unit_test(test_remove_add_hot_remove),
		cmocka_unit_test(test_configuring_then_examine),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_rpc_and_config),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
