/*
 * Unit tests for the crash simulator (bdev/crashsim) on a malloc base, one
 * ust_thread polled by hand. A scripted workload of writes, unmaps,
 * write_zeroes and flushes (with writes in flight across flushes) is
 * recorded; then every cut point with many seeds is checked against an
 * oracle written here from the event log alone: each 512-byte sector holds
 * its durable value or the data of a pending write covering it, never the
 * data of a write submitted after the cut; NONE and ALL modes match the
 * oracle exactly; over seeds a pending write is seen present, absent and
 * torn; REORDER (only) lands an older write over a newer one; results are
 * deterministic and identical between images and plain buffers; a flush
 * not completed at the cut guarantees nothing. Also: the image bdev as a
 * restart target (reads the crash, undoes the restarted consumer's writes),
 * error cases, the RPCs (a crashsim's UUID given, generated, saved and
 * kept across a replay and the base's return), and thousands of cuts on a 16 MiB device.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "ustor/bdev.h"
#include "ustor/bdev_module.h"
#include "ustor/crashsim.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"
#include "ut_rpc.h"
#include "ut_threads.h"

#include "../../../bdev/malloc/bdev_malloc.h"

#define BS 4096
#define NBLOCKS 64
#define SECT UST_CRASHSIM_SECTOR_SIZE
#define DEV_SIZE ((size_t)BS * NBLOCKS)
#define NSECT (DEV_SIZE / SECT)
#define MAGIC 0xc0ffee00u
#define MAX_OPS 64

/* ---- sector stamps: who wrote a sector ---------------------------------- */

/* Stamp id 0 is the contents before recording; CLASS_ZERO an all-zero sector. */
#define CLASS_ZERO 0xffffffffu
#define CLASS_BAD 0xfffffffeu

static void stamp_sector(uint8_t *p, uint32_t id, uint64_t sector)
{
	uint32_t w[SECT / 4];
	size_t i;

	for (i = 0; i < SECT / 4; i += 4) {
		w[i] = MAGIC;
		w[i + 1] = id;
		w[i + 2] = (uint32_t)sector;
		w[i + 3] = (uint32_t)(i ^ id);
	}
	memcpy(p, w, SECT);
}

/* Which stamp a device sector carries, CLASS_BAD if it is no valid one. */
static uint32_t sector_class(const uint8_t *dev, uint64_t sector)
{
	const uint8_t *p = dev + sector * SECT;
	uint8_t want[SECT];
	uint32_t id;
	size_t i;

	for (i = 0; i < SECT && p[i] == 0; i++)
		;
	if (i == SECT)
		return CLASS_ZERO;
	memcpy(&id, p + 4, 4);
	stamp_sector(want, id, sector);
	return memcmp(p, want, SECT) == 0 ? id : CLASS_BAD;
}

/* ---- I/O helpers -------------------------------------------------------- */

struct ctx {
	struct ust_crashsim *cs;
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;
	uint8_t *bufs[MAX_OPS];
	int nbufs;
	int outstanding;
	int last_status;
};

static void event_cb(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
}

static void io_done(struct ust_bdev_io *io, int status, void *arg)
{
	struct ctx *c = arg;

	c->outstanding--;
	c->last_status = status;
	assert_int_equal(status, 0);
}

static uint8_t *stamped_blocks(uint32_t id, uint64_t off, uint64_t n)
{
	uint8_t *buf = malloc(n * BS);
	uint64_t s;

	for (s = 0; s < n * BS / SECT; s++)
		stamp_sector(buf + s * SECT, id, off * (BS / SECT) + s);
	return buf;
}

/* Submit a write stamped with its future op number + 1; returns the op number. */
static uint64_t submit_write(struct ctx *c, uint64_t off, uint64_t n)
{
	uint64_t op = ust_crashsim_num_ops(c->cs);
	uint8_t *buf = stamped_blocks((uint32_t)op + 1, off, n);

	c->bufs[c->nbufs++] = buf;
	assert_int_equal(ust_bdev_write_blocks(c->desc, c->ch, buf, off, n, io_done, c), 0);
	c->outstanding++;
	assert_int_equal(ust_crashsim_num_ops(c->cs), op + 1);
	return op;
}

static uint64_t submit_other(struct ctx *c, enum ust_bdev_io_type type, uint64_t off, uint64_t n)
{
	uint64_t op = ust_crashsim_num_ops(c->cs);
	int rc;

	if (type == UST_BDEV_IO_TYPE_FLUSH)
		rc = ust_bdev_flush_blocks(c->desc, c->ch, 0, NBLOCKS, io_done, c);
	else if (type == UST_BDEV_IO_TYPE_UNMAP)
		rc = ust_bdev_unmap_blocks(c->desc, c->ch, off, n, io_done, c);
	else
		rc = ust_bdev_write_zeroes_blocks(c->desc, c->ch, off, n, io_done, c);
	assert_int_equal(rc, 0);
	c->outstanding++;
	assert_int_equal(ust_crashsim_num_ops(c->cs), op + 1);
	return op;
}

static void wait_all(struct ctx *c)
{
	ut_threads_poll();
	assert_int_equal(c->outstanding, 0);
}

static void start_done(void *arg, int rc)
{
	*(int *)arg = rc == 0 ? 1 : rc;
}

/* Malloc0 stamped with id 0, CS0 on it, recording, opened. */
static void setup_recording(struct ctx *c, const char *base, const char *name, uint64_t nblocks)
{
	struct ust_malloc_opts mo = {.name = base, .num_blocks = nblocks, .block_size = BS};
	struct ust_bdev_desc *bd;
	struct ust_io_channel *bch;
	uint8_t *init;
	int done = 0;

	memset(c, 0, sizeof(*c));
	assert_int_equal(ust_bdev_malloc_create(&mo, NULL), 0);
	/* Recognisable contents before recording: the snapshot must hold them. */
	assert_int_equal(ust_bdev_open_ext(base, true, event_cb, NULL, &bd), 0);
	bch = ust_bdev_get_io_channel(bd);
	init = stamped_blocks(0, 0, nblocks);
	assert_int_equal(ust_bdev_write_blocks(bd, bch, init, 0, nblocks, io_done, c), 0);
	c->outstanding++;
	wait_all(c);
	free(init);
	ust_put_io_channel(bch);
	ust_bdev_close(bd);
	ut_threads_poll();

	assert_int_equal(ust_crashsim_create(base, name), 0);
	c->cs = ust_crashsim_get(name);
	assert_non_null(c->cs);
	assert_true(ust_bdev_has_write_cache(ust_crashsim_get_bdev(c->cs)));
	assert_int_equal(ust_crashsim_start(c->cs, start_done, &done), 0);
	assert_int_equal(ust_crashsim_start(c->cs, start_done, &done), -EBUSY);
	ut_threads_poll();
	assert_int_equal(done, 1);
	assert_true(ust_crashsim_is_recording(c->cs));
	assert_int_equal(ust_crashsim_num_events(c->cs), 0);
	assert_int_equal(ust_bdev_open_ext(name, true, event_cb, NULL, &c->desc), 0);
	c->ch = ust_bdev_get_io_channel(c->desc);
	assert_non_null(c->ch);
}

static void deleted(void *arg, int rc)
{
	*(int *)arg = rc == 0 ? 1 : rc;
}

static void teardown_recording(struct ctx *c, const char *base, const char *name)
{
	int done = 0, i;

	ust_put_io_channel(c->ch);
	ust_bdev_close(c->desc);
	ut_threads_poll();
	assert_int_equal(ust_crashsim_delete(name, deleted, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
	done = 0;
	assert_int_equal(ust_bdev_malloc_delete(base, deleted, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
	for (i = 0; i < c->nbufs; i++)
		free(c->bufs[i]);
}

/* ---- the oracle: the model computed from the event log alone ------------ */

struct orc_op {
	enum ust_bdev_io_type type;
	uint64_t off, n, submit, complete;
	int status;
};

struct oracle {
	struct orc_op ops[MAX_OPS];
	uint64_t nops, nevents;
	/* Per cut: */
	uint64_t boundary;
	uint32_t durable[NSECT];  /* class of the durable value */
	uint64_t pending[NSECT];  /* bit per op: a pending write covering the sector */
	bool is_pending[MAX_OPS];
};

static void oracle_load(struct oracle *o, struct ust_crashsim *cs)
{
	struct ust_crashsim_event ev;
	uint64_t i;

	memset(o, 0, sizeof(*o));
	o->nevents = ust_crashsim_num_events(cs);
	for (i = 0; i < o->nevents; i++) {
		assert_int_equal(ust_crashsim_get_event(cs, i, &ev), 0);
		assert_true(ev.op < MAX_OPS);
		if (ev.kind == UST_CRASHSIM_EVENT_SUBMIT) {
			assert_int_equal(ev.submit_event, i);
			assert_int_equal(ev.op, o->nops);
			o->ops[o->nops].type = ev.io_type;
			o->ops[o->nops].off = ev.offset_blocks;
			o->ops[o->nops].n = ev.num_blocks;
			o->ops[o->nops].submit = ev.submit_event;
			o->ops[o->nops].complete = ev.complete_event;
			o->ops[o->nops].status = ev.status;
			o->nops++;
		} else {
			assert_int_equal(ev.complete_event, i);
		}
	}
	assert_int_equal(o->nops, ust_crashsim_num_ops(cs));
	assert_int_equal(ust_crashsim_get_event(cs, o->nevents, &ev), -ERANGE);
}

static uint32_t op_class(const struct oracle *o, uint64_t k)
{
	return o->ops[k].type == UST_BDEV_IO_TYPE_WRITE ? (uint32_t)k + 1 : CLASS_ZERO;
}

static void oracle_cut(struct oracle *o, uint64_t cut)
{
	uint64_t k, s, b = 0;
	bool durable;

	for (k = 0; k < o->nops; k++) {
		if (o->ops[k].type == UST_BDEV_IO_TYPE_FLUSH && o->ops[k].complete < cut &&
		    o->ops[k].status == 0 && o->ops[k].submit > b)
			b = o->ops[k].submit;
	}
	o->boundary = b;
	for (s = 0; s < NSECT; s++) {
		o->durable[s] = 0;
		o->pending[s] = 0;
	}
	for (k = 0; k < o->nops; k++) {
		const struct orc_op *op = &o->ops[k];

		o->is_pending[k] = false;
		if (op->type == UST_BDEV_IO_TYPE_FLUSH || op->submit >= cut)
			continue;
		durable = op->status == 0 && op->complete < b;
		o->is_pending[k] = !durable;
		for (s = op->off * (BS / SECT); s < (op->off + op->n) * (BS / SECT); s++) {
			if (durable)
				o->durable[s] = op_class(o, k);
			else
				o->pending[s] |= 1ull << k;
		}
	}
}

/* Every sector holds its durable value or a covering pending write's data. */
static void check_allowed(const struct oracle *o, const uint8_t *img)
{
	uint64_t s, k;
	uint32_t cl;
	bool ok;

	for (s = 0; s < NSECT; s++) {
		cl = sector_class(img, s);
		assert_int_not_equal(cl, CLASS_BAD);
		ok = cl == o->durable[s];
		for (k = 0; !ok && k < o->nops; k++)
			ok = (o->pending[s] >> k & 1) && op_class(o, k) == cl;
		if (!ok)
			fail_msg("sector %" PRIu64 " holds %x: not durable (%x) nor pending", s, cl,
				 o->durable[s]);
	}
}

/* The durable values exactly, then (with_pending) every pending write in order. */
static void check_exact(const struct oracle *o, const uint8_t *img, bool with_pending)
{
	uint64_t s, k;
	uint32_t want;

	for (s = 0; s < NSECT; s++) {
		want = o->durable[s];
		for (k = 0; with_pending && k < o->nops; k++) {
			if (o->pending[s] >> k & 1)
				want = op_class(o, k);
		}
		assert_int_equal(sector_class(img, s), want);
	}
}

/* How much of write op k's own sectors carry its stamp: 0, some, all. */
static int presence(const struct oracle *o, const uint8_t *img, uint64_t k)
{
	uint64_t s, first = o->ops[k].off * (BS / SECT), n = o->ops[k].n * (BS / SECT), have = 0;

	for (s = first; s < first + n; s++)
		have += sector_class(img, s) == op_class(o, k);
	return have == 0 ? 0 : have == n ? 2 : 1;
}

/* ---- the scripted workload ---------------------------------------------- */

struct script {
	uint64_t w1, w2, f1, w3, w4, w5, u6, z7, f2, w8, w9, p1, p2, w10, f3, w11, w12;
};

static void run_script(struct ctx *c, struct script *s)
{
	s->w1 = submit_write(c, 0, 4);
	s->w2 = submit_write(c, 4, 4);
	wait_all(c);
	/* w3 is submitted after f1: f1 does not cover it. */
	s->f1 = submit_other(c, UST_BDEV_IO_TYPE_FLUSH, 0, 0);
	s->w3 = submit_write(c, 8, 2);
	wait_all(c);
	s->w4 = submit_write(c, 16, 8);
	s->w5 = submit_write(c, 6, 4); /* over w2 and w3 */
	s->u6 = submit_other(c, UST_BDEV_IO_TYPE_UNMAP, 18, 2);
	s->z7 = submit_other(c, UST_BDEV_IO_TYPE_WRITE_ZEROES, 24, 1);
	wait_all(c);
	s->f2 = submit_other(c, UST_BDEV_IO_TYPE_FLUSH, 0, 0);
	wait_all(c);
	s->w8 = submit_write(c, 0, 4);
	wait_all(c);
	s->w9 = submit_write(c, 30, 2);
	wait_all(c);
	s->p1 = submit_write(c, 50, 2);
	s->p2 = submit_write(c, 51, 2); /* partly over p1 */
	wait_all(c);
	/* w10 is in flight across f3's submit; w11 is submitted after it. */
	s->w10 = submit_write(c, 40, 4);
	s->f3 = submit_other(c, UST_BDEV_IO_TYPE_FLUSH, 0, 0);
	s->w11 = submit_write(c, 44, 2);
	wait_all(c);
	s->w12 = submit_write(c, 56, 2);
	wait_all(c);
}

static struct ust_crashsim_outcome build(struct ctx *c, uint64_t cut, uint64_t seed,
					 enum ust_crashsim_survival sv, enum ust_crashsim_tear tr,
					 uint8_t *img)
{
	struct ust_crashsim_crash_opts opts = {.cut = cut, .seed = seed, .survival = sv, .tear = tr};
	struct ust_crashsim_outcome out;

	assert_int_equal(ust_crashsim_crash_to_buffer(c->cs, &opts, img, DEV_SIZE, &out), 0);
	return out;
}

/* ---- tests -------------------------------------------------------------- */

static void test_model(void **state)
{
	static struct oracle o;
	struct ctx c;
	struct script s;
	struct ust_crashsim_image *image;
	struct ust_crashsim_outcome out, out2;
	struct ust_crashsim_crash_opts opts;
	uint8_t *img = malloc(DEV_SIZE), *img2 = malloc(DEV_SIZE);
	const uint8_t *idata;
	size_t ilen;
	uint64_t cut, seed, k, w9_seen[3] = {0}, w8_lost_unflushed = 0, torn_total = 0;
	uint64_t reorder_seen = 0, subset_inverted = 0, sv_seen[5] = {0};
	uint64_t before_f3, f3_done;
	int p;

	setup_recording(&c, "Malloc0", "CS0", NBLOCKS);
	run_script(&c, &s);
	ust_crashsim_stop(c.cs);
	assert_false(ust_crashsim_is_recording(c.cs));
	oracle_load(&o, c.cs);
	assert_int_equal(o.nops, s.w12 + 1);
	assert_int_equal(o.nevents, 2 * o.nops);
	assert_int_equal(o.ops[s.u6].type, UST_BDEV_IO_TYPE_UNMAP);
	assert_int_equal(o.ops[s.z7].type, UST_BDEV_IO_TYPE_WRITE_ZEROES);
	assert_int_equal(o.ops[s.f3].type, UST_BDEV_IO_TYPE_FLUSH);
	/* The script's concurrency really happened. */
	assert_true(o.ops[s.w3].submit > o.ops[s.f1].submit);
	assert_true(o.ops[s.w10].complete > o.ops[s.f3].submit);
	assert_int_equal(ust_crashsim_image_create(c.cs, NULL, &image), 0);
	before_f3 = o.ops[s.f3].submit;
	f3_done = o.ops[s.f3].complete;

	for (cut = 0; cut <= o.nevents; cut++) {
		oracle_cut(&o, cut);
		for (seed = 0; seed < 200; seed++) {
			opts = (struct ust_crashsim_crash_opts){.cut = cut, .seed = seed};
			out = build(&c, cut, seed, UST_CRASHSIM_SURVIVE_AUTO, UST_CRASHSIM_TEAR_AUTO,
				    img);
			assert_int_equal(out.durable_before, o.boundary);
			check_allowed(&o, img);
			sv_seen[out.survival]++;
			if (out.torn_op != UST_CRASHSIM_NO_EVENT) {
				torn_total++;
				assert_true(o.is_pending[out.torn_op]);
				assert_true(out.torn_sectors_kept > 0);
				assert_true(out.torn_sectors_kept < out.torn_sectors_total);
			}
			/* The image, reused across cuts, gives the same bytes as a fresh buffer. */
			if (seed % 5 == 0) {
				assert_int_equal(ust_crashsim_image_build(image, &opts, &out2), 0);
				idata = ust_crashsim_image_data(image, &ilen);
				assert_int_equal(ilen, DEV_SIZE);
				assert_memory_equal(idata, img, DEV_SIZE);
				assert_memory_equal(&out, &out2, sizeof(out));
			}
			if (cut > o.ops[s.w9].complete && cut <= f3_done) {
				p = presence(&o, img, s.w9);
				w9_seen[p]++;
			}
			/* f3 submitted, not completed: w8 (after f2) is not safe yet. */
			if (cut > before_f3 && cut <= f3_done) {
				assert_int_equal(out.durable_before, o.ops[s.f2].submit);
				w8_lost_unflushed += presence(&o, img, s.w8) == 0;
			}
			/* After f3 completed, w8 is there, all of it. */
			if (cut > f3_done)
				assert_int_equal(presence(&o, img, s.w8), 2);
		}
		/* NONE: exactly the durable state; ALL untorn: durable then every pending write. */
		build(&c, cut, 7, UST_CRASHSIM_SURVIVE_NONE, UST_CRASHSIM_TEAR_AUTO, img);
		check_exact(&o, img, false);
		out = build(&c, cut, 7, UST_CRASHSIM_SURVIVE_ALL, UST_CRASHSIM_TEAR_NONE, img);
		check_exact(&o, img, true);
		assert_int_equal(out.survived_writes, out.pending_writes);
	}
	/* Over seeds, a pending write was seen lost, whole and torn. */
	assert_true(w9_seen[0] > 0);
	assert_true(w9_seen[1] > 0);
	assert_true(w9_seen[2] > 0);
	assert_true(w8_lost_unflushed > 0);
	assert_true(torn_total > 0);
	for (k = UST_CRASHSIM_SURVIVE_ALL; k <= UST_CRASHSIM_SURVIVE_REORDER; k++)
		assert_true(sv_seen[k] > 0);

	/* Cut 0: the snapshot, i.e. the contents before recording. */
	build(&c, 0, 1, UST_CRASHSIM_SURVIVE_ALL, UST_CRASHSIM_TEAR_NONE, img);
	for (k = 0; k < NSECT; k++)
		assert_int_equal(sector_class(img, k), 0);

	/*
	 * p1 then p2 (overlapping in block 51), both pending before f3: only
	 * REORDER may show p1 in block 51 while p2 is in block 52.
	 */
	cut = before_f3;
	for (seed = 0; seed < 400; seed++) {
		bool inverted;

		build(&c, cut, seed, UST_CRASHSIM_SURVIVE_REORDER, UST_CRASHSIM_TEAR_NONE, img);
		inverted = sector_class(img, 51 * (BS / SECT)) == s.p1 + 1 &&
			   sector_class(img, 52 * (BS / SECT)) == s.p2 + 1;
		reorder_seen += inverted;
		build(&c, cut, seed, UST_CRASHSIM_SURVIVE_SUBSET, UST_CRASHSIM_TEAR_NONE, img);
		inverted = sector_class(img, 51 * (BS / SECT)) == s.p1 + 1 &&
			   sector_class(img, 52 * (BS / SECT)) == s.p2 + 1;
		subset_inverted += inverted;
	}
	assert_true(reorder_seen > 0);
	assert_int_equal(subset_inverted, 0);

	/* Tear modes: a prefix tear keeps the first k sectors of the torn write. */
	for (seed = 0; seed < 50; seed++) {
		out = build(&c, o.nevents, seed, UST_CRASHSIM_SURVIVE_ALL, UST_CRASHSIM_TEAR_PREFIX,
			    img);
		assert_int_not_equal(out.torn_op, UST_CRASHSIM_NO_EVENT);
		oracle_cut(&o, o.nevents);
		if (out.torn_op == s.w12 || out.torn_op == s.w10 || out.torn_op == s.w11) {
			uint64_t first = o.ops[out.torn_op].off * (BS / SECT);

			for (k = 0; k < out.torn_sectors_total; k++)
				assert_int_equal(sector_class(img, first + k) == out.torn_op + 1,
						 k < out.torn_sectors_kept);
		}
	}

	/* Determinism: same (cut, seed) after other builds, same bytes and outcome. */
	for (seed = 0; seed < 20; seed++) {
		cut = (seed * 7) % (o.nevents + 1);
		out = build(&c, cut, seed, UST_CRASHSIM_SURVIVE_AUTO, UST_CRASHSIM_TEAR_AUTO, img);
		build(&c, (cut + 3) % (o.nevents + 1), seed + 1, UST_CRASHSIM_SURVIVE_AUTO,
		      UST_CRASHSIM_TEAR_AUTO, img2);
		out2 = build(&c, cut, seed, UST_CRASHSIM_SURVIVE_AUTO, UST_CRASHSIM_TEAR_AUTO, img2);
		assert_memory_equal(img, img2, DEV_SIZE);
		assert_memory_equal(&out, &out2, sizeof(out));
	}

	ust_crashsim_image_free(image, NULL, NULL);
	free(img);
	free(img2);
	teardown_recording(&c, "Malloc0", "CS0");
}

static void read_done(struct ust_bdev_io *io, int status, void *arg)
{
	*(int *)arg = status == 0 ? 1 : status;
}

static void freed(void *arg)
{
	*(int *)arg = 1;
}

/* The image bdev: the restart target reads the crash; its own writes are undone. */
static void test_image_bdev_restart(void **state)
{
	struct ctx c;
	struct script s;
	struct ust_crashsim_image *image;
	struct ust_crashsim_crash_opts opts = {.seed = 3};
	struct ust_bdev_desc *d;
	struct ust_io_channel *ch;
	uint8_t *want = malloc(DEV_SIZE), *got = malloc(DEV_SIZE), *junk;
	uint64_t nev;
	int done, i;

	setup_recording(&c, "Malloc1", "CS1", NBLOCKS);
	run_script(&c, &s);
	nev = ust_crashsim_num_events(c.cs);
	assert_int_equal(ust_crashsim_image_create(c.cs, "CS1", &image), -EEXIST);
	assert_int_equal(ust_crashsim_image_create(c.cs, "Img1", &image), 0);
	assert_non_null(ust_crashsim_image_get_bdev(image));
	assert_int_equal(ust_bdev_get_num_blocks(ust_bdev_get_by_name("Img1")), NBLOCKS);
	junk = stamped_blocks(999, 0, NBLOCKS);

	for (i = 0; i < 6; i++) {
		opts.cut = (uint64_t)i * nev / 5;
		opts.seed = (uint64_t)i;
		assert_int_equal(ust_crashsim_image_build(image, &opts, NULL), 0);
		/* What the restarted consumer reads is the crash image. */
		assert_int_equal(ust_bdev_open_ext("Img1", true, event_cb, NULL, &d), 0);
		ch = ust_bdev_get_io_channel(d);
		assert_int_equal(ust_crashsim_image_build(image, &opts, NULL), -EBUSY);
		done = 0;
		assert_int_equal(ust_bdev_read_blocks(d, ch, got, 0, NBLOCKS, read_done, &done), 0);
		ut_threads_poll();
		assert_int_equal(done, 1);
		assert_int_equal(ust_crashsim_crash_to_buffer(c.cs, &opts, want, DEV_SIZE, NULL), 0);
		assert_memory_equal(got, want, DEV_SIZE);
		/* "Recovery" writes and unmaps all over it; the next build must undo them. */
		done = 0;
		assert_int_equal(ust_bdev_write_blocks(d, ch, junk, (uint64_t)i * 3, 5, read_done,
						       &done),
				 0);
		ut_threads_poll();
		assert_int_equal(done, 1);
		done = 0;
		assert_int_equal(ust_bdev_unmap_blocks(d, ch, 60 - (uint64_t)i, 2, read_done, &done),
				 0);
		ut_threads_poll();
		assert_int_equal(done, 1);
		ust_put_io_channel(ch);
		ust_bdev_close(d);
		ut_threads_poll();
	}
	/* Recording continues meanwhile: a new write shows up at the last cut. */
	submit_write(&c, 33, 1);
	wait_all(&c);
	opts.cut = ust_crashsim_num_events(c.cs);
	opts.survival = UST_CRASHSIM_SURVIVE_ALL;
	opts.tear = UST_CRASHSIM_TEAR_NONE;
	assert_int_equal(ust_crashsim_image_build(image, &opts, NULL), 0);
	assert_int_equal(sector_class(ust_crashsim_image_data(image, NULL), 33 * (BS / SECT)),
			 (uint32_t)ust_crashsim_num_ops(c.cs));

	/* A new recording (new snapshot) still gives exact images. */
	ust_put_io_channel(c.ch);
	ut_threads_poll();
	done = 0;
	assert_int_equal(ust_crashsim_start(c.cs, start_done, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
	c.ch = ust_bdev_get_io_channel(c.desc);
	assert_int_equal(ust_crashsim_num_events(c.cs), 0);
	opts = (struct ust_crashsim_crash_opts){.cut = 0};
	assert_int_equal(ust_crashsim_image_build(image, &opts, NULL), 0);
	assert_int_equal(ust_crashsim_crash_to_buffer(c.cs, &opts, want, DEV_SIZE, NULL), 0);
	assert_memory_equal(ust_crashsim_image_data(image, NULL), want, DEV_SIZE);
	/* The new snapshot holds everything written before it. */
	assert_int_equal(sector_class(want, 33 * (BS / SECT)), s.w12 + 2);

	done = 0;
	ust_crashsim_image_free(image, freed, &done);
	ut_threads_poll();
	assert_int_equal(done, 1);
	assert_null(ust_bdev_get_by_name("Img1"));
	free(junk);
	free(want);
	free(got);
	teardown_recording(&c, "Malloc1", "CS1");
}

static void test_errors(void **state)
{
	struct ctx c;
	struct ust_crashsim_image *image;
	struct ust_crashsim_crash_opts opts = {0};
	struct ust_crashsim_event ev;
	struct ust_malloc_opts mo = {.name = "Malloc3", .num_blocks = 8, .block_size = BS};
	struct ust_crashsim *cs3;
	uint8_t *img = malloc(DEV_SIZE);
	int done = 0;

	assert_int_equal(ust_crashsim_create(NULL, "X"), -EINVAL);
	assert_int_equal(ust_crashsim_create("A", "A"), -EINVAL);
	assert_int_equal(ust_crashsim_create("A", ""), -EINVAL);
	assert_int_equal(ust_crashsim_delete("nope", NULL, NULL), -ENODEV);

	/* Nothing recorded yet: no images. */
	assert_int_equal(ust_bdev_malloc_create(&mo, NULL), 0);
	assert_int_equal(ust_crashsim_create("Malloc3", "CS3"), 0);
	assert_int_equal(ust_crashsim_create("Malloc3", "CS3"), -EEXIST);
	cs3 = ust_crashsim_get("CS3");
	assert_non_null(cs3);
	assert_int_equal(ust_crashsim_crash_to_buffer(cs3, &opts, img, 8 * BS, NULL), -ENODATA);
	assert_int_equal(ust_crashsim_image_create(cs3, NULL, &image), -ENODATA);
	assert_int_equal(ust_crashsim_get_event(cs3, 0, &ev), -ENODATA);
	/* The base is claimed. */
	{
		struct ust_bdev_desc *bd;

		assert_int_equal(ust_bdev_open_ext("Malloc3", true, event_cb, NULL, &bd), -EPERM);
	}
	assert_int_equal(ust_crashsim_delete("CS3", NULL, NULL), 0);
	ut_threads_poll();
	assert_null(ust_crashsim_get("CS3"));
	assert_int_equal(ust_bdev_malloc_delete("Malloc3", NULL, NULL), 0);
	ut_threads_poll();

	setup_recording(&c, "Malloc2", "CS2", NBLOCKS);
	submit_write(&c, 0, 1);
	/* A write in flight: no new start. */
	assert_int_equal(ust_crashsim_start(c.cs, start_done, &done), -EBUSY);
	wait_all(&c);
	opts.cut = ust_crashsim_num_events(c.cs) + 1;
	assert_int_equal(ust_crashsim_crash_to_buffer(c.cs, &opts, img, DEV_SIZE, NULL), -ERANGE);
	opts.cut = 0;
	assert_int_equal(ust_crashsim_crash_to_buffer(c.cs, &opts, img, DEV_SIZE - 1, NULL), -EINVAL);
	opts.survival = 99;
	assert_int_equal(ust_crashsim_crash_to_buffer(c.cs, &opts, img, DEV_SIZE, NULL), -EINVAL);
	opts.survival = UST_CRASHSIM_SURVIVE_AUTO;

	/* While the snapshot is read, writes are refused. */
	assert_int_equal(ust_crashsim_start(c.cs, start_done, &done), 0);
	{
		uint8_t *buf = stamped_blocks(5, 0, 1);
		struct ctx probe = {0};

		probe.outstanding = 1;
		assert_int_equal(ust_bdev_write_blocks(c.desc, c.ch, buf, 0, 1, read_done,
						       &probe.last_status),
				 0);
		ut_threads_poll();
		assert_int_equal(probe.last_status, -EBUSY);
		free(buf);
	}
	assert_int_equal(done, 1);

	/* The image outlives its crashsim, but cannot be built any more. */
	assert_int_equal(ust_crashsim_image_create(c.cs, NULL, &image), 0);
	teardown_recording(&c, "Malloc2", "CS2");
	assert_int_equal(ust_crashsim_image_build(image, &opts, NULL), -ENODEV);
	ust_crashsim_image_free(image, NULL, NULL);
	free(img);
}

/* ---- RPCs --------------------------------------------------------------- */

static bool rpc_ok(json_t *resp)
{
	bool ok = json_object_get(resp, "error") == NULL;

	json_decref(resp);
	return ok;
}

static void test_rpcs(void **state)
{
	struct ust_malloc_opts mo = {.name = "Malloc4", .num_blocks = 16, .block_size = BS};
	struct ust_bdev *b;
	json_t *r, *calls;

	/* Configured before its base exists: built when the base registers. */
	assert_true(rpc_ok(ut_rpc("bdev_crashsim_create",
			       json_pack("{s:s, s:s}", "base_bdev_name", "Malloc4", "name", "CS4"))));
	assert_null(ust_crashsim_get("CS4"));
	assert_int_equal(ust_bdev_malloc_create(&mo, NULL), 0);
	assert_non_null(ust_crashsim_get("CS4"));
	b = ust_bdev_get_by_name("CS4");
	assert_string_equal(ust_bdev_get_module_name(b), "crashsim");

	calls = json_array();
	b->fn_table->write_config_json(b, calls);
	r = json_object_get(json_array_get(calls, 0), "params");
	assert_string_equal(json_string_value(json_object_get(json_array_get(calls, 0), "method")),
			    "bdev_crashsim_create");
	assert_string_equal(json_string_value(json_object_get(r, "base_bdev_name")), "Malloc4");
	assert_string_equal(json_string_value(json_object_get(r, "name")), "CS4");
	json_decref(calls);

	assert_true(rpc_ok(ut_rpc("bdev_crashsim_start_recording", json_pack("{s:s}", "name", "CS4"))));
	assert_true(ust_crashsim_is_recording(ust_crashsim_get("CS4")));
	r = ut_rpc("bdev_crashsim_stop_recording", json_pack("{s:s}", "name", "CS4"));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "result"),
							    "num_events")),
			 0);
	json_decref(r);
	assert_false(ust_crashsim_is_recording(ust_crashsim_get("CS4")));
	assert_false(rpc_ok(ut_rpc("bdev_crashsim_start_recording", json_pack("{s:s}", "name", "X"))));
	assert_false(rpc_ok(ut_rpc("bdev_crashsim_create", json_pack("{s:s}", "name", "Y"))));
	assert_true(rpc_ok(ut_rpc("bdev_crashsim_delete", json_pack("{s:s}", "name", "CS4"))));
	assert_null(ust_bdev_get_by_name("CS4"));
	assert_false(rpc_ok(ut_rpc("bdev_crashsim_delete", json_pack("{s:s}", "name", "CS4"))));
	assert_int_equal(ust_bdev_malloc_delete("Malloc4", NULL, NULL), 0);
	ut_threads_poll();
}

static void uuid_of(const char *name, char fmt[UST_UUID_STRING_LEN])
{
	struct ust_bdev *b = ust_bdev_get_by_name(name);

	assert_non_null(b);
	assert_int_equal(ust_uuid_fmt(fmt, UST_UUID_STRING_LEN, ust_bdev_get_uuid(b)), 0);
}

/*
 * The UUID: given to bdev_crashsim_create, kept when the base goes and comes
 * back, written by save_config, and the same after a replay of that call;
 * without one, a generated UUID that is still kept and saved. Bad UUIDs are
 * refused.
 */
static void test_rpc_uuid(void **state)
{
	struct ust_malloc_opts mo = {.name = "Malloc5", .num_blocks = 16, .block_size = BS};
	const char *text = "6a1f0c3e-2b4d-4e5f-9a0b-1c2d3e4f5a6b";
	char fmt[UST_UUID_STRING_LEN], generated[UST_UUID_STRING_LEN];
	struct ust_bdev *b;
	json_t *calls, *params, *saved;

	assert_int_equal(ust_bdev_malloc_create(&mo, NULL), 0);
	assert_false(rpc_ok(ut_rpc("bdev_crashsim_create",
				json_pack("{s:s, s:s, s:s}", "base_bdev_name", "Malloc5", "name",
					  "CS5", "uuid", "not-a-uuid"))));
	assert_null(ust_bdev_get_by_name("CS5"));
	assert_true(rpc_ok(ut_rpc("bdev_crashsim_create",
			       json_pack("{s:s, s:s, s:s}", "base_bdev_name", "Malloc5", "name",
					 "CS5", "uuid", text))));
	b = ust_bdev_get_by_name("CS5");
	assert_non_null(b);
	assert_int_equal(ust_uuid_fmt(fmt, sizeof(fmt), ust_bdev_get_uuid(b)), 0);
	assert_string_equal(fmt, text);

	/* save_config carries it; replaying the saved call gives the same UUID. */
	calls = json_array();
	b->fn_table->write_config_json(b, calls);
	params = json_object_get(json_array_get(calls, 0), "params");
	assert_string_equal(json_string_value(json_object_get(params, "uuid")), text);
	saved = json_deep_copy(params);
	json_decref(calls);
	assert_true(rpc_ok(ut_rpc("bdev_crashsim_delete", json_pack("{s:s}", "name", "CS5"))));
	assert_null(ust_bdev_get_by_name("CS5"));
	assert_true(rpc_ok(ut_rpc("bdev_crashsim_create", saved)));
	uuid_of("CS5", fmt);
	assert_string_equal(fmt, text);

	/* The base goes and comes back: the rebuilt bdev keeps the UUID. */
	assert_int_equal(ust_bdev_malloc_delete("Malloc5", NULL, NULL), 0);
	ut_threads_poll();
	assert_null(ust_bdev_get_by_name("CS5"));
	assert_int_equal(ust_bdev_malloc_create(&mo, NULL), 0);
	assert_non_null(ust_bdev_get_by_name("CS5"));
	uuid_of("CS5", fmt);
	assert_string_equal(fmt, text);
	assert_true(rpc_ok(ut_rpc("bdev_crashsim_delete", json_pack("{s:s}", "name", "CS5"))));

	/* No UUID given: one is generated, saved, and survives the base's return. */
	assert_true(rpc_ok(ut_rpc("bdev_crashsim_create",
			       json_pack("{s:s, s:s}", "base_bdev_name", "Malloc5", "name", "CS5"))));
	b = ust_bdev_get_by_name("CS5");
	assert_false(ust_uuid_is_null(ust_bdev_get_uuid(b)));
	assert_int_equal(ust_uuid_fmt(generated, sizeof(generated), ust_bdev_get_uuid(b)), 0);
	assert_string_not_equal(generated, text);
	calls = json_array();
	b->fn_table->write_config_json(b, calls);
	params = json_object_get(json_array_get(calls, 0), "params");
	assert_string_equal(json_string_value(json_object_get(params, "uuid")), generated);
	json_decref(calls);
	assert_int_equal(ust_bdev_malloc_delete("Malloc5", NULL, NULL), 0);
	ut_threads_poll();
	assert_int_equal(ust_bdev_malloc_create(&mo, NULL), 0);
	uuid_of("CS5", fmt);
	assert_string_equal(fmt, generated);
	assert_true(rpc_ok(ut_rpc("bdev_crashsim_delete", json_pack("{s:s}", "name", "CS5"))));
	assert_int_equal(ust_bdev_malloc_delete("Malloc5", NULL, NULL), 0);
	ut_threads_poll();
}

/* Recording from two threads: one log, one order; a crashsim stacks on an image. */
static void test_two_threads_and_stacking(void **state)
{
	struct ust_thread *t1 = ust_thread_create("t1", NULL);
	struct ust_crashsim_crash_opts opts = {.survival = UST_CRASHSIM_SURVIVE_ALL,
					       .tear = UST_CRASHSIM_TEAR_NONE};
	struct ust_crashsim_image *image;
	struct ust_crashsim_event ev;
	struct ust_io_channel *ch1;
	struct ust_bdev *b;
	struct ctx c;
	uint8_t *buf0, *buf1, *img = malloc(DEV_SIZE);
	json_t *info;
	int i, done = 0;

	setup_recording(&c, "Malloc6", "CS6", NBLOCKS);
	buf0 = stamped_blocks(1, 0, 2);
	buf1 = stamped_blocks(2, 10, 2);
	ust_set_thread(t1);
	ch1 = ust_bdev_get_io_channel(c.desc);
	assert_non_null(ch1);
	assert_int_equal(ust_bdev_write_blocks(c.desc, ch1, buf1, 10, 2, io_done, &c), 0);
	ust_set_thread(ut_thread(0));
	assert_int_equal(ust_bdev_write_blocks(c.desc, c.ch, buf0, 0, 2, io_done, &c), 0);
	c.outstanding = 2;
	for (i = 0; i < 1000; i++) {
		ust_thread_poll(t1, 0, 0);
		ust_thread_poll(ut_thread(0), 0, 0);
	}
	assert_int_equal(c.outstanding, 0);
	assert_int_equal(ust_crashsim_num_events(c.cs), 4);
	assert_int_equal(ust_crashsim_get_event(c.cs, 0, &ev), 0);
	assert_int_equal(ev.offset_blocks, 10); /* t1's write was submitted first */
	opts.cut = 4;
	assert_int_equal(ust_crashsim_crash_to_buffer(c.cs, &opts, img, DEV_SIZE, NULL), 0);
	assert_int_equal(sector_class(img, 0), 1);
	assert_int_equal(sector_class(img, 10 * (BS / SECT)), 2);
	ust_set_thread(t1);
	ust_put_io_channel(ch1);
	ust_set_thread(ut_thread(0));
	for (i = 0; i < 100; i++) {
		ust_thread_poll(t1, 0, 0);
		ust_thread_poll(ut_thread(0), 0, 0);
	}

	/* The bdev's information. */
	b = ust_crashsim_get_bdev(c.cs);
	info = json_object();
	assert_int_equal(b->fn_table->dump_info_json(b->ctxt, info), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(info, "crashsim"),
							      "base_bdev_name")),
			    "Malloc6");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(info, "crashsim"),
							    "num_events")),
			 4);
	json_decref(info);

	/* A crash during recovery: record on top of an image bdev. */
	assert_int_equal(ust_crashsim_image_create(c.cs, "Img6", &image), 0);
	assert_int_equal(ust_crashsim_image_build(image, &opts, NULL), 0);
	assert_int_equal(ust_crashsim_create("Img6", "CS6b"), 0);
	assert_int_equal(ust_crashsim_start(ust_crashsim_get("CS6b"), start_done, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
	opts.cut = 0;
	assert_int_equal(ust_crashsim_crash_to_buffer(ust_crashsim_get("CS6b"), &opts, img, DEV_SIZE,
						      NULL),
			 0);
	assert_int_equal(sector_class(img, 10 * (BS / SECT)), 2);
	assert_int_equal(ust_crashsim_delete("CS6b", NULL, NULL), 0);
	ut_threads_poll();
	ust_crashsim_image_free(image, NULL, NULL);
	ut_threads_poll();
	assert_null(ust_bdev_get_by_name("Img6"));

	assert_int_equal(ut_thread_exit(t1), 0);
	ust_set_thread(ut_thread(0));
	free(buf0);
	free(buf1);
	free(img);
	teardown_recording(&c, "Malloc6", "CS6");
}

/* ---- scale: thousands of cuts on a 16 MiB device ------------------------ */

#define BIG_BLOCKS 4096 /* 16 MiB of 4 KiB blocks */

static void big_done(struct ust_bdev_io *io, int status, void *arg)
{
	assert_int_equal(status, 0);
	(*(int *)arg)--;
}

static void test_many_cuts(void **state)
{
	struct ust_malloc_opts mo = {.name = "Malloc5", .num_blocks = BIG_BLOCKS, .block_size = BS};
	struct ust_crashsim *cs;
	struct ust_bdev_desc *d;
	struct ust_io_channel *ch;
	struct ust_crashsim_image *image;
	struct ust_crashsim_crash_opts opts = {0};
	uint8_t *buf = malloc(8 * BS), *full = malloc((size_t)BIG_BLOCKS * BS);
	uint64_t nev, i, x = 12345;
	struct timespec t0, t1;
	int outstanding = 0, done = 0;

	assert_int_equal(ust_bdev_malloc_create(&mo, NULL), 0);
	assert_int_equal(ust_crashsim_create("Malloc5", "CS5"), 0);
	cs = ust_crashsim_get("CS5");
	assert_int_equal(ust_crashsim_start(cs, start_done, &done), 0);
	ut_threads_poll();
	assert_int_equal(done, 1);
	assert_int_equal(ust_bdev_open_ext("CS5", true, event_cb, NULL, &d), 0);
	ch = ust_bdev_get_io_channel(d);
	/* 2000 writes of 1-8 blocks at pseudo-random places, a flush every 40. */
	memset(buf, 0x5a, 8 * BS);
	for (i = 0; i < 2000; i++) {
		uint64_t n;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		n = 1 + (x >> 60) % 8;
		buf[0] = (uint8_t)i;
		assert_int_equal(ust_bdev_write_blocks(d, ch, buf, (x >> 20) % (BIG_BLOCKS - 8), n,
						       big_done, &outstanding),
				 0);
		outstanding++;
		if (i % 40 == 39) {
			assert_int_equal(ust_bdev_flush_blocks(d, ch, 0, BIG_BLOCKS, big_done,
							       &outstanding),
					 0);
			outstanding++;
		}
		if (i % 4 == 3)
			ut_threads_poll();
	}
	ut_threads_poll();
	assert_int_equal(outstanding, 0);
	nev = ust_crashsim_num_events(cs);
	assert_int_equal(nev, 2 * ust_crashsim_num_ops(cs));

	assert_int_equal(ust_crashsim_image_create(cs, NULL, &image), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 3000; i++) {
		opts.cut = (i * 2654435761u) % (nev + 1);
		opts.seed = i;
		assert_int_equal(ust_crashsim_image_build(image, &opts, NULL), 0);
		/* Spot-check the incremental image against a full build. */
		if (i % 300 == 0) {
			assert_int_equal(ust_crashsim_crash_to_buffer(cs, &opts, full,
								      (size_t)BIG_BLOCKS * BS, NULL),
					 0);
			assert_memory_equal(ust_crashsim_image_data(image, NULL), full,
					    (size_t)BIG_BLOCKS * BS);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	print_message("3000 crash images of 16 MiB (%" PRIu64 " events): %.2f s\n", nev,
		      (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);

	ust_crashsim_image_free(image, NULL, NULL);
	ust_put_io_channel(ch);
	ust_bdev_close(d);
	ut_threads_poll();
	assert_int_equal(ust_crashsim_delete("CS5", NULL, NULL), 0);
	ut_threads_poll();
	assert_int_equal(ust_bdev_malloc_delete("Malloc5", NULL, NULL), 0);
	ut_threads_poll();
	free(buf);
	free(full);
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
		cmocka_unit_test(test_model),
		cmocka_unit_test(test_image_bdev_restart),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_rpcs),
		cmocka_unit_test(test_rpc_uuid),
		cmocka_unit_test(test_two_threads_and_stacking),
		cmocka_unit_test(test_many_cuts),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
