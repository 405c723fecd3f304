/*
 * The "crashsim" bdev module, model half: turns the recorded log into the
 * contents a disk with a volatile write cache would hold after losing power
 * at a cut point, and keeps reusable images (optionally exposed as RAM
 * bdevs) to restart a consumer on. README.md states the model.
 *
 * Guarantees:
 *  - Deterministic: the same log, cut, seed and modes give the same bytes
 *    and the same outcome, whatever was built before.
 *  - Exactly the model: every durable write is present unless a later
 *    durable write or a surviving pending write covers it; nothing
 *    submitted at or after the cut is present; a torn write loses whole
 *    512-byte sectors and keeps at least one.
 *  - Cost of one build into an image: the log scanned once, plus a copy of
 *    only the blocks the previous build and the restarted consumer wrote
 *    (back to the snapshot) and of the blocks the log writes; the device
 *    size only matters for the first build after a new snapshot.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/thread.h"

#include "crashsim_internal.h"

/* ---- seeded pseudo-random numbers --------------------------------------- */

/* splitmix64: a tiny generator whose every seed gives a good sequence. */
struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	uint64_t z;

	r->s += 0x9e3779b97f4a7c15ull;
	z = r->s;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0. */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* Cut and seed both shape the stream, so (c, s) and (s, c) differ. */
static void rng_init(struct rng *r, uint64_t cut, uint64_t seed)
{
	struct rng c = {cut};

	r->s = seed ^ rng_next(&c);
	rng_next(r);
}

/* ---- the model ---------------------------------------------------------- */

static bool op_writes(const struct crashsim_op *op)
{
	return op->io_type != UST_BDEV_IO_TYPE_FLUSH;
}

/* Completed successfully before the flush submit that bounds durability. */
static bool op_is_durable(const struct crashsim_op *op, uint64_t boundary)
{
	return op_writes(op) && op->status == 0 && op->complete_ev < boundary;
}

/*
 * The latest submit event among flushes that completed successfully before
 * the cut: every write completed before it is on the media. 0 if none.
 */
static uint64_t durable_boundary(const struct ust_crashsim *cs, uint64_t cut)
{
	uint64_t i, boundary = 0;

	for (i = 0; i < cs->nops && cs->ops[i].submit_ev < cut; i++) {
		const struct crashsim_op *op = &cs->ops[i];

		if (op->io_type == UST_BDEV_IO_TYPE_FLUSH && op->status == 0 &&
		    op->complete_ev < cut && op->submit_ev > boundary)
			boundary = op->submit_ev;
	}
	return boundary;
}

/* Writes submitted before the cut that are not durable, into cs->pending. */
static int collect_pending(struct ust_crashsim *cs, uint64_t cut, uint64_t boundary,
			   uint64_t *npending)
{
	uint64_t i, n = 0;

	for (i = 0; i < cs->nops && cs->ops[i].submit_ev < cut; i++) {
		if (!op_writes(&cs->ops[i]) || op_is_durable(&cs->ops[i], boundary))
			continue;
		if (n == cs->pending_cap) {
			uint64_t ncap = cs->pending_cap ? cs->pending_cap * 2 : 64;
			uint64_t *p = realloc(cs->pending, ncap * sizeof(*p));

			if (p == NULL)
				return -ENOMEM;
			cs->pending = p;
			cs->pending_cap = ncap;
		}
		cs->pending[n++] = i;
	}
	*npending = n;
	return 0;
}

static enum ust_crashsim_survival resolve_survival(enum ust_crashsim_survival mode, struct rng *r)
{
	uint64_t x = rng_below(r, 8);

	if (mode != UST_CRASHSIM_SURVIVE_AUTO)
		return mode;
	if (x == 0)
		return UST_CRASHSIM_SURVIVE_ALL;
	if (x == 1)
		return UST_CRASHSIM_SURVIVE_NONE;
	return x < 6 ? UST_CRASHSIM_SURVIVE_SUBSET : UST_CRASHSIM_SURVIVE_REORDER;
}

static enum ust_crashsim_tear resolve_tear(enum ust_crashsim_tear mode, struct rng *r)
{
	uint64_t x = rng_below(r, 4);

	if (mode != UST_CRASHSIM_TEAR_AUTO)
		return mode;
	if (x < 2)
		return UST_CRASHSIM_TEAR_NONE;
	return x == 2 ? UST_CRASHSIM_TEAR_PREFIX : UST_CRASHSIM_TEAR_SECTORS;
}

/* Keep the surviving pending writes at the front of cs->pending, in landing order. */
static uint64_t choose_survivors(struct ust_crashsim *cs, uint64_t npending,
				 enum ust_crashsim_survival mode, struct rng *r)
{
	uint64_t i, j, n = 0, t;

	if (mode == UST_CRASHSIM_SURVIVE_NONE)
		return 0;
	for (i = 0; i < npending; i++) {
		if (mode == UST_CRASHSIM_SURVIVE_ALL || (rng_next(r) & 1))
			cs->pending[n++] = cs->pending[i];
	}
	if (mode == UST_CRASHSIM_SURVIVE_REORDER) {
		for (i = n; i > 1; i--) {
			j = rng_below(r, i);
			t = cs->pending[i - 1];
			cs->pending[i - 1] = cs->pending[j];
			cs->pending[j] = t;
		}
	}
	return n;
}

/* The torn write and which of its sectors reach the media. */
struct tear {
	uint64_t op; /* UST_CRASHSIM_NO_EVENT: none */
	uint32_t nsect;
	uint32_t kept;
	uint8_t *keep;   /* nsect flags */
	uint32_t *under; /* per block of it: the code it lands on */
};

static uint32_t op_sectors(const struct ust_crashsim *cs, const struct crashsim_op *op)
{
	return (uint32_t)(op->num_blocks * cs->vb.bdev.blocklen / UST_CRASHSIM_SECTOR_SIZE);
}

/* Pick a survivor of at least two sectors and the sectors it keeps. */
static int choose_tear(struct ust_crashsim *cs, uint64_t nsurv, enum ust_crashsim_tear mode,
		       struct rng *r, struct tear *t)
{
	uint64_t i, eligible = 0, pick;
	uint32_t s, k;

	t->op = UST_CRASHSIM_NO_EVENT;
	if (mode == UST_CRASHSIM_TEAR_NONE)
		return 0;
	for (i = 0; i < nsurv; i++)
		eligible += op_sectors(cs, &cs->ops[cs->pending[i]]) >= 2;
	if (eligible == 0)
		return 0;
	pick = rng_below(r, eligible);
	for (i = 0; i < nsurv; i++) {
		if (op_sectors(cs, &cs->ops[cs->pending[i]]) < 2)
			continue;
		if (pick-- == 0)
			break;
	}
	t->op = cs->pending[i];
	t->nsect = op_sectors(cs, &cs->ops[t->op]);
	t->keep = malloc(t->nsect);
	t->under = malloc(cs->ops[t->op].num_blocks * sizeof(*t->under));
	if (t->keep == NULL || t->under == NULL) {
		free(t->keep);
		free(t->under);
		return -ENOMEM;
	}
	if (mode == UST_CRASHSIM_TEAR_PREFIX) {
		k = 1 + (uint32_t)rng_below(r, t->nsect - 1);
		for (s = 0; s < t->nsect; s++)
			t->keep[s] = s < k;
		t->kept = k;
		return 0;
	}
	t->kept = 0;
	for (s = 0; s < t->nsect; s++) {
		t->keep[s] = rng_next(r) & 1;
		t->kept += t->keep[s];
	}
	/* A tear keeps some and loses some: fix the two degenerate draws. */
	s = (uint32_t)rng_below(r, t->nsect);
	if (t->kept == t->nsect) {
		t->keep[s] = 0;
		t->kept--;
	} else if (t->kept == 0) {
		t->keep[s] = 1;
		t->kept++;
	}
	return 0;
}

/* ---- writing the image -------------------------------------------------- */

/*
 * A build first decides, for every block the log touches at this cut, its
 * source ("code"): op + 1 when the block is that op's data, CRASHSIM_CODE_MIXED
 * for blocks of the torn write (what lay under it plus its kept sectors).
 * Blocks without a code are the snapshot's. Only then is anything copied,
 * and into an image only the blocks whose source changed since last time.
 */

static void set_code(struct ust_crashsim *cs, uint64_t b, uint32_t code, uint64_t *ntouched)
{
	if (cs->winner[b] == 0)
		cs->touched[(*ntouched)++] = (uint32_t)b;
	cs->winner[b] = code;
}

/* Durable writes in submission order: the last one covering a block wins. */
static uint64_t code_durable(struct ust_crashsim *cs, uint64_t boundary, uint64_t *ntouched)
{
	uint64_t i, b, ndurable = 0;
	const struct crashsim_op *op;

	for (i = 0; i < cs->nops && cs->ops[i].submit_ev < boundary; i++) {
		op = &cs->ops[i];
		if (!op_is_durable(op, boundary))
			continue;
		ndurable++;
		for (b = op->offset_blocks; b < op->offset_blocks + op->num_blocks; b++)
			set_code(cs, b, (uint32_t)(i + 1), ntouched);
	}
	return ndurable;
}

/* Surviving pending writes in landing order; the torn one remembers what it lands on. */
static void code_survivors(struct ust_crashsim *cs, uint64_t nsurv, struct tear *t,
			   uint64_t *ntouched)
{
	const struct crashsim_op *op;
	uint64_t i, b;

	for (i = 0; i < nsurv; i++) {
		op = &cs->ops[cs->pending[i]];
		for (b = op->offset_blocks; b < op->offset_blocks + op->num_blocks; b++) {
			if (cs->pending[i] == t->op) {
				t->under[b - op->offset_blocks] = cs->winner[b];
				set_code(cs, b, CRASHSIM_CODE_MIXED, ntouched);
			} else {
				set_code(cs, b, (uint32_t)(cs->pending[i] + 1), ntouched);
			}
		}
	}
}

/* Bytes [from, from + len) of op's payload onto the device image. */
static void put_op_bytes(const struct ust_crashsim *cs, const struct crashsim_op *op, uint8_t *dst,
			 uint64_t from, uint64_t len)
{
	uint8_t *to = dst + op->offset_blocks * cs->vb.bdev.blocklen + from;

	if (op->data_off == CRASHSIM_NO_DATA)
		memset(to, 0, len);
	else
		memcpy(to, cs->data + op->data_off + from, len);
}

/* Block b from a plain source: the snapshot (code 0) or an op. */
static void put_block(const struct ust_crashsim *cs, uint8_t *dst, uint64_t b, uint32_t code)
{
	const struct crashsim_op *op;
	uint64_t bs = cs->vb.bdev.blocklen;

	if (code == 0) {
		memcpy(dst + b * bs, cs->snapshot + b * bs, bs);
		return;
	}
	op = &cs->ops[code - 1];
	put_op_bytes(cs, op, dst, (b - op->offset_blocks) * bs, bs);
}

static void put_torn_block(const struct ust_crashsim *cs, uint8_t *dst, uint64_t b,
			   const struct tear *t)
{
	const struct crashsim_op *op = &cs->ops[t->op];
	uint32_t per_block = cs->vb.bdev.blocklen / UST_CRASHSIM_SECTOR_SIZE;
	uint64_t rel = b - op->offset_blocks;
	uint32_t s;

	put_block(cs, dst, b, t->under[rel]);
	for (s = 0; s < per_block; s++) {
		if (t->keep[rel * per_block + s])
			put_op_bytes(cs, op, dst, (rel * per_block + s) * UST_CRASHSIM_SECTOR_SIZE,
				     UST_CRASHSIM_SECTOR_SIZE);
	}
}

static void put_coded_block(const struct ust_crashsim *cs, uint8_t *dst, uint64_t b,
			    const struct tear *t)
{
	if (cs->winner[b] == CRASHSIM_CODE_MIXED)
		put_torn_block(cs, dst, b, t);
	else
		put_block(cs, dst, b, cs->winner[b]);
}

/* A plain buffer: the snapshot everywhere, then every coded block. */
static void write_buffer(struct ust_crashsim *cs, uint8_t *dst, uint64_t ntouched,
			 const struct tear *t)
{
	uint64_t i;

	memcpy(dst, cs->snapshot, cs->size);
	for (i = 0; i < ntouched; i++) {
		put_coded_block(cs, dst, cs->touched[i], t);
		cs->winner[cs->touched[i]] = 0;
	}
}

/*
 * An image whose src[] says where each block came from (bits set in dirty
 * for every block whose source is not the snapshot): copy only what changes.
 */
static void write_image(struct ust_crashsim *cs, uint8_t *dst, uint32_t *src, uint64_t *dirty,
			uint64_t ntouched, const struct tear *t)
{
	uint64_t words = (cs->vb.bdev.blockcnt + 63) / 64, w, b, i, bits;
	uint32_t code;

	for (w = 0; w < words; w++) {
		for (bits = dirty[w]; bits != 0; bits &= bits - 1) {
			b = w * 64 + (uint64_t)__builtin_ctzll(bits);
			if (cs->winner[b] != 0)
				continue;
			put_block(cs, dst, b, 0);
			src[b] = 0;
			dirty[w] &= ~(1ull << (b % 64));
		}
	}
	for (i = 0; i < ntouched; i++) {
		b = cs->touched[i];
		code = cs->winner[b];
		if (code == CRASHSIM_CODE_MIXED || code != src[b]) {
			put_coded_block(cs, dst, b, t);
			src[b] = code;
			dirty[b / 64] |= 1ull << (b % 64);
		}
		cs->winner[b] = 0;
	}
}

static int check_opts(const struct ust_crashsim *cs, const struct ust_crashsim_crash_opts *opts)
{
	if (opts == NULL || opts->survival > UST_CRASHSIM_SURVIVE_REORDER ||
	    opts->tear > UST_CRASHSIM_TEAR_SECTORS)
		return -EINVAL;
	if (!cs->log_valid)
		return -ENODATA;
	if (cs->log_overflow)
		return -ENOMEM;
	if (opts->cut > cs->nevents)
		return -ERANGE;
	return 0;
}

int crashsim_build_locked(struct ust_crashsim *cs, uint8_t *dst, uint32_t *src, uint64_t *dirty,
			  const struct ust_crashsim_crash_opts *opts,
			  struct ust_crashsim_outcome *outcome)
{
	struct ust_crashsim_outcome out = {0};
	struct tear t = {.op = UST_CRASHSIM_NO_EVENT};
	uint64_t boundary, npending, nsurv, ntouched = 0;
	struct rng r;
	int rc;

	rc = check_opts(cs, opts);
	if (rc != 0)
		return rc;
	boundary = durable_boundary(cs, opts->cut);
	rc = collect_pending(cs, opts->cut, boundary, &npending);
	if (rc != 0)
		return rc;
	/* Every choice is drawn before anything is written, in a fixed order. */
	rng_init(&r, opts->cut, opts->seed);
	out.survival = resolve_survival(opts->survival, &r);
	out.tear = resolve_tear(opts->tear, &r);
	nsurv = choose_survivors(cs, npending, out.survival, &r);
	rc = choose_tear(cs, nsurv, out.tear, &r, &t);
	if (rc != 0)
		return rc;

	out.durable_writes = code_durable(cs, boundary, &ntouched);
	code_survivors(cs, nsurv, &t, &ntouched);
	if (src != NULL)
		write_image(cs, dst, src, dirty, ntouched, &t);
	else
		write_buffer(cs, dst, ntouched, &t);

	out.durable_before = boundary;
	out.pending_writes = npending;
	out.survived_writes = nsurv;
	out.torn_op = t.op;
	out.torn_sectors_kept = t.op != UST_CRASHSIM_NO_EVENT ? t.kept : 0;
	out.torn_sectors_total = t.op != UST_CRASHSIM_NO_EVENT ? t.nsect : 0;
	free(t.keep);
	free(t.under);
	if (outcome != NULL)
		*outcome = out;
	return 0;
}

int ust_crashsim_crash_to_buffer(struct ust_crashsim *cs, const struct ust_crashsim_crash_opts *opts,
				 void *buf, size_t len, struct ust_crashsim_outcome *outcome)
{
	int rc;

	if (cs == NULL || buf == NULL || len != cs->size)
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	rc = crashsim_build_locked(cs, buf, NULL, NULL, opts, outcome);
	pthread_mutex_unlock(&cs->lock);
	return rc;
}

/* ---- images ------------------------------------------------------------- */

static void image_put(struct ust_crashsim_image *img)
{
	if (--img->refs > 0)
		return;
	if (img->free_cb != NULL)
		img->free_cb(img->free_ctx);
	free(img->bdev.name);
	free(img->src);
	free(img->dirty);
	free(img->data);
	free(img);
}

void crashsim_images_detach(struct ust_crashsim *cs)
{
	struct ust_crashsim_image *img;

	while ((img = TAILQ_FIRST(&cs->images)) != NULL) {
		TAILQ_REMOVE(&cs->images, img, link);
		img->cs = NULL;
	}
}

/* Writes by the restarted consumer: the next build must undo them. */
static void image_mark_written(struct ust_crashsim_image *img, uint64_t first, uint64_t count)
{
	uint64_t b;

	for (b = first; b < first + count; b++) {
		__atomic_store_n(&img->src[b], CRASHSIM_CODE_MIXED, __ATOMIC_RELAXED);
		__atomic_fetch_or(&img->dirty[b / 64], 1ull << (b % 64), __ATOMIC_RELAXED);
	}
}

static void image_copy(struct ust_crashsim_image *img, struct ust_bdev_io *io, bool to_image)
{
	uint8_t *p = img->data + io->offset_blocks * img->blocklen;
	uint64_t left = io->num_blocks * img->blocklen;
	int i;

	for (i = 0; i < io->iovcnt && left > 0; i++) {
		size_t n = io->iovs[i].iov_len < left ? io->iovs[i].iov_len : left;

		if (to_image)
			memcpy(p, io->iovs[i].iov_base, n);
		else
			memcpy(io->iovs[i].iov_base, p, n);
		p += n;
		left -= n;
	}
}

static void image_submit_request(struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct ust_crashsim_image *img = io->bdev->ctxt;

	switch (io->type) {
	case UST_BDEV_IO_TYPE_READ:
		image_copy(img, io, false);
		break;
	case UST_BDEV_IO_TYPE_WRITE:
		image_mark_written(img, io->offset_blocks, io->num_blocks);
		image_copy(img, io, true);
		break;
	case UST_BDEV_IO_TYPE_UNMAP:
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
		image_mark_written(img, io->offset_blocks, io->num_blocks);
		memset(img->data + io->offset_blocks * img->blocklen, 0,
		       io->num_blocks * img->blocklen);
		break;
	case UST_BDEV_IO_TYPE_FLUSH:
	case UST_BDEV_IO_TYPE_RESET:
		break;
	default:
		ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_FAILED);
		return;
	}
	ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_SUCCESS);
}

static bool image_io_type_supported(void *ctxt, enum ust_bdev_io_type type)
{
	switch (type) {
	case UST_BDEV_IO_TYPE_READ:
	case UST_BDEV_IO_TYPE_WRITE:
	case UST_BDEV_IO_TYPE_UNMAP:
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
	case UST_BDEV_IO_TYPE_FLUSH:
	case UST_BDEV_IO_TYPE_RESET:
		return true;
	default:
		return false;
	}
}

static int image_channel_create(void *io_device, void *ctx_buf)
{
	struct ust_crashsim_image *img = io_device;

	__atomic_fetch_add(&img->channels, 1, __ATOMIC_ACQ_REL);
	return 0;
}

static void image_channel_destroy(void *io_device, void *ctx_buf)
{
	struct ust_crashsim_image *img = io_device;

	__atomic_fetch_sub(&img->channels, 1, __ATOMIC_ACQ_REL);
}

static struct ust_io_channel *image_get_io_channel(void *ctxt)
{
	return ust_get_io_channel(ctxt);
}

static void image_device_gone(void *io_device)
{
	struct ust_crashsim_image *img = io_device;

	ust_bdev_destruct_done(&img->bdev, 0);
	image_put(img);
}

static int image_destruct(void *ctxt)
{
	struct ust_crashsim_image *img = ctxt;

	img->has_bdev = false;
	ust_io_device_unregister(img, image_device_gone);
	return 1;
}

static const struct ust_bdev_fn_table g_image_fn_table = {
	.destruct = image_destruct,
	.submit_request = image_submit_request,
	.io_type_supported = image_io_type_supported,
	.get_io_channel = image_get_io_channel,
};

static int image_register_bdev(struct ust_crashsim_image *img, const char *name)
{
	int rc;

	img->bdev.name = strdup(name);
	if (img->bdev.name == NULL)
		return -ENOMEM;
	img->bdev.product_name = "crashsim image";
	img->bdev.blocklen = img->blocklen;
	img->bdev.blockcnt = img->nblocks;
	img->bdev.ctxt = img;
	img->bdev.module = &g_crashsim_module;
	img->bdev.fn_table = &g_image_fn_table;
	ust_io_device_register(img, image_channel_create, image_channel_destroy, 0, name);
	rc = ust_bdev_register(&img->bdev);
	if (rc != 0) {
		ust_io_device_unregister(img, NULL);
		return rc;
	}
	img->has_bdev = true;
	img->refs++;
	return 0;
}

/* The image becomes the snapshot (under cs->lock). */
static void image_reset(struct ust_crashsim_image *img, struct ust_crashsim *cs)
{
	memcpy(img->data, cs->snapshot, img->size);
	memset(img->src, 0, img->nblocks * sizeof(*img->src));
	memset(img->dirty, 0, (img->nblocks + 63) / 64 * sizeof(*img->dirty));
	img->generation = cs->generation;
}

int ust_crashsim_image_create(struct ust_crashsim *cs, const char *bdev_name,
			      struct ust_crashsim_image **image)
{
	struct ust_crashsim_image *img;
	int rc;

	if (cs == NULL || image == NULL || (bdev_name != NULL && bdev_name[0] == '\0'))
		return -EINVAL;
	img = calloc(1, sizeof(*img));
	if (img == NULL)
		return -ENOMEM;
	img->refs = 1;
	img->size = cs->size;
	img->blocklen = cs->vb.bdev.blocklen;
	img->nblocks = cs->vb.bdev.blockcnt;
	img->data = aligned_alloc(4096, (img->size + 4095) / 4096 * 4096);
	img->src = calloc(img->nblocks, sizeof(*img->src));
	img->dirty = calloc((img->nblocks + 63) / 64, sizeof(*img->dirty));
	if (img->data == NULL || img->src == NULL || img->dirty == NULL) {
		image_put(img);
		return -ENOMEM;
	}
	pthread_mutex_lock(&cs->lock);
	rc = cs->log_valid ? 0 : -ENODATA;
	if (rc == 0)
		image_reset(img, cs);
	pthread_mutex_unlock(&cs->lock);
	if (rc == 0 && bdev_name != NULL)
		rc = image_register_bdev(img, bdev_name);
	if (rc != 0) {
		image_put(img);
		return rc;
	}
	img->cs = cs;
	TAILQ_INSERT_TAIL(&cs->images, img, link);
	*image = img;
	return 0;
}

int ust_crashsim_image_build(struct ust_crashsim_image *img,
			     const struct ust_crashsim_crash_opts *opts,
			     struct ust_crashsim_outcome *outcome)
{
	struct ust_crashsim *cs;
	int rc;

	if (img == NULL)
		return -EINVAL;
	cs = img->cs;
	if (cs == NULL)
		return -ENODEV;
	if (__atomic_load_n(&img->channels, __ATOMIC_ACQUIRE) != 0)
		return -EBUSY;
	pthread_mutex_lock(&cs->lock);
	rc = check_opts(cs, opts);
	if (rc == 0 && img->generation != cs->generation) {
		/* A new snapshot: the block codes describe the old one. */
		image_reset(img, cs);
	}
	if (rc == 0)
		rc = crashsim_build_locked(cs, img->data, img->src, img->dirty, opts, outcome);
	pthread_mutex_unlock(&cs->lock);
	return rc;
}

const void *ust_crashsim_image_data(struct ust_crashsim_image *img, size_t *len)
{
	if (len != NULL)
		*len = img->size;
	return img->data;
}

struct ust_bdev *ust_crashsim_image_get_bdev(struct ust_crashsim_image *img)
{
	return img->has_bdev ? &img->bdev : NULL;
}

void ust_crashsim_image_free(struct ust_crashsim_image *img, void (*cb)(void *ctx), void *ctx)
{
	if (img == NULL) {
		if (cb != NULL)
			cb(ctx);
		return;
	}
	if (img->cs != NULL) {
		TAILQ_REMOVE(&img->cs->images, img, link);
		img->cs = NULL;
	}
	img->free_cb = cb;
	img->free_ctx = ctx;
	if (img->has_bdev)
		ust_bdev_unregister(&img->bdev, NULL, NULL);
	image_put(img);
}
