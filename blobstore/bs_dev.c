/*
 * The blobstore's device adapter: one claimed bdev descriptor, the metadata
 * thread's channel, and page/byte I/O helpers that report completion through
 * a plain (arg, rc) callback.
 *
 * It also owns the grace-period frees (bs_defer_free: batched, one walk over
 * the channels in flight at a time) and the bit search the allocators share.
 *
 * Guarantees: the store is the bdev's only writer (claim module
 * "blobstore": a second store or a writable open gets -EPERM); every helper
 * calls its done callback exactly once and never before it returns (a
 * refused submit is reported from a message), so step machines can count
 * outstanding I/O without special cases.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/bdev_module.h"
#include "ustor/env.h"
#include "ustor/log.h"

#include "blobstore_internal.h"

static void defer_drain(struct ust_blob_store *bs);

static struct ust_bdev_module g_bs_claim_module = {
	.name = "blobstore",
};

struct dev_io {
	bs_done_fn done;
	void *arg;
	int rc;
};

static void bdev_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	if (type == UST_BDEV_EVENT_REMOVE) {
		/* Its owner unloads it (lvstores and FUSE mounts watch for this themselves). */
		UST_WARNLOG("blobstore: bdev %s is being removed; the store must be unloaded\n",
			    ust_bdev_get_name(bdev));
	}
	(void)ctx;
}

bool bs_on_md_thread(const struct ust_blob_store *bs)
{
	return ust_get_thread() == bs->md_thread;
}

int bs_dev_claim(struct ust_blob_store *bs)
{
	int rc;

	if (bs->claimed) {
		return 0;
	}
	rc = ust_bdev_module_claim_bdev(bs->bdev, bs->desc, &g_bs_claim_module);
	if (rc != 0) {
		UST_ERRLOG("blobstore: cannot claim bdev %s: %s\n", ust_bdev_get_name(bs->bdev),
			   strerror(-rc));
		return rc;
	}
	bs->claimed = true;
	return 0;
}

int bs_dev_open(struct ust_blob_store *bs, const char *bdev_name, bool claim)
{
	int rc;

	rc = ust_bdev_open_ext(bdev_name, false, bdev_event, bs, &bs->desc);
	if (rc != 0) {
		UST_ERRLOG("blobstore: cannot open bdev %s: %s\n", bdev_name, strerror(-rc));
		return rc;
	}
	bs->bdev = ust_bdev_desc_get_bdev(bs->desc);
	rc = claim ? bs_dev_claim(bs) : 0;
	if (rc != 0) {
		ust_bdev_close(bs->desc);
		bs->desc = NULL;
		return rc;
	}
	bs->md_ch = ust_bdev_get_io_channel(bs->desc);
	if (bs->md_ch == NULL) {
		bs_dev_close(bs);
		return -ENOMEM;
	}
	bs->md_thread = ust_get_thread();
	bs->blocklen = ust_bdev_get_block_size(bs->bdev);
	return 0;
}

static void page_cache_drain(struct ust_blob_store *bs);

/*
 * Also the store's last word on its in-memory indexes: a teardown calls it
 * once every channel is destroyed, just before the store is freed.
 */
void bs_dev_close(struct ust_blob_store *bs)
{
	defer_drain(bs);
	page_cache_drain(bs);
	bs_open_index_free(bs);
	if (bs->md_ch != NULL) {
		ust_put_io_channel(bs->md_ch);
		bs->md_ch = NULL;
	}
	if (bs->claimed) {
		ust_bdev_module_release_bdev(bs->bdev);
		bs->claimed = false;
	}
	if (bs->desc != NULL) {
		ust_bdev_close(bs->desc);
		bs->desc = NULL;
	}
}

static void dev_io_deliver(void *ctx)
{
	struct dev_io *io = ctx;

	io->done(io->arg, io->rc);
	free(io);
}

static void dev_io_complete(struct ust_bdev_io *bio, int status, void *ctx)
{
	struct dev_io *io = ctx;

	(void)bio;
	io->rc = status;
	dev_io_deliver(io);
}

/* A refused submit still completes asynchronously, from a message. */
static void dev_io_submitted(struct dev_io *io, int rc)
{
	if (rc == 0) {
		return;
	}
	io->rc = rc;
	if (ust_thread_send_msg(ust_get_thread(), dev_io_deliver, io) != 0) {
		/* The ring is full: nothing better than completing inline. */
		dev_io_deliver(io);
	}
}

static struct dev_io *dev_io_new(bs_done_fn done, void *arg)
{
	struct dev_io *io = calloc(1, sizeof(*io));

	if (io == NULL) {
		return NULL;
	}
	io->done = done;
	io->arg = arg;
	return io;
}

static void dev_fail_nomem(bs_done_fn done, void *arg)
{
	struct dev_io fake = {.done = done, .arg = arg, .rc = -ENOMEM};

	/* No memory even for the completion record: report inline. */
	fake.done(fake.arg, fake.rc);
}

void bs_dev_read_bytes(struct ust_blob_store *bs, uint64_t offset, uint64_t len, void *buf,
		       bs_done_fn done, void *arg)
{
	struct dev_io *io = dev_io_new(done, arg);

	if (io == NULL) {
		dev_fail_nomem(done, arg);
		return;
	}
	dev_io_submitted(io, ust_bdev_read_blocks(bs->desc, bs->md_ch, buf, offset / bs->blocklen,
						  len / bs->blocklen, dev_io_complete, io));
}

void bs_dev_write_bytes(struct ust_blob_store *bs, uint64_t offset, uint64_t len, const void *buf,
			bs_done_fn done, void *arg)
{
	struct dev_io *io = dev_io_new(done, arg);

	if (io == NULL) {
		dev_fail_nomem(done, arg);
		return;
	}
	dev_io_submitted(io, ust_bdev_write_blocks(bs->desc, bs->md_ch, (void *)buf,
						   offset / bs->blocklen, len / bs->blocklen,
						   dev_io_complete, io));
}

void bs_dev_read_pages(struct ust_blob_store *bs, uint64_t page, uint32_t count, void *buf,
		       bs_done_fn done, void *arg)
{
	bs_dev_read_bytes(bs, page * UST_BS_PAGE_SIZE, (uint64_t)count * UST_BS_PAGE_SIZE, buf, done,
			  arg);
}

/* A copy out of the bdev's memory in this turn, instead of an I/O completed in a later one. */
int bs_dev_read_pages_now(struct ust_blob_store *bs, uint64_t page, uint32_t count, void *buf)
{
	uint64_t per_page = UST_BS_PAGE_SIZE / bs->blocklen;
	const void *p;
	int rc;

	rc = ust_bdev_read_lend(bs->desc, bs->md_ch, page * per_page, count * per_page, &p);
	if (rc == 0) {
		memcpy(buf, p, (size_t)count * UST_BS_PAGE_SIZE);
	}
	return rc;
}

void bs_dev_write_pages(struct ust_blob_store *bs, uint64_t page, uint32_t count, const void *buf,
			bs_done_fn done, void *arg)
{
	bs_dev_write_bytes(bs, page * UST_BS_PAGE_SIZE, (uint64_t)count * UST_BS_PAGE_SIZE, buf, done,
			   arg);
}

void bs_dev_zero_pages(struct ust_blob_store *bs, uint64_t page, uint64_t count, bs_done_fn done,
		       void *arg)
{
	struct dev_io *io = dev_io_new(done, arg);
	uint64_t per_page = UST_BS_PAGE_SIZE / bs->blocklen;

	if (io == NULL) {
		dev_fail_nomem(done, arg);
		return;
	}
	dev_io_submitted(io, ust_bdev_write_zeroes_blocks(bs->desc, bs->md_ch, page * per_page,
							  count * per_page, dev_io_complete, io));
}

/*
 * On a bdev without a volatile write cache (memory; NVMe with VWC 0) every
 * completed write is already durable, so the flushes that order the
 * metadata commits (format doc 9.1) have nothing to wait for: done runs at
 * once, saving a device round trip - on the metadata thread, a reactor turn
 * - per commit. Every caller issues the flush as the last thing its step
 * does, so a completion inside the call is safe.
 */
void bs_dev_flush(struct ust_blob_store *bs, bs_done_fn done, void *arg)
{
	struct dev_io *io;

	if (!ust_bdev_has_write_cache(bs->bdev)) {
		done(arg, 0);
		return;
	}
	io = dev_io_new(done, arg);
	if (io == NULL) {
		dev_fail_nomem(done, arg);
		return;
	}
	dev_io_submitted(io, ust_bdev_flush_blocks(bs->desc, bs->md_ch, 0,
						   ust_bdev_get_num_blocks(bs->bdev),
						   dev_io_complete, io));
}

void *bs_dma_page_alloc(uint32_t count)
{
	return ust_dma_zmalloc((size_t)count * UST_BS_PAGE_SIZE, UST_BS_PAGE_SIZE);
}

void bs_dma_free(void *buf)
{
	if (buf != NULL) {
		ust_dma_free(buf);
	}
}

void *bs_md_page_get(struct ust_blob_store *bs)
{
	void *page;

	if (bs->npage_cache == 0 || ust_get_thread() != bs->md_thread) {
		return bs_dma_page_alloc(1);
	}
	page = bs->page_cache[--bs->npage_cache];
	memset(page, 0, UST_BS_PAGE_SIZE);
	return page;
}

void bs_md_page_put(struct ust_blob_store *bs, void *page)
{
	if (page == NULL) {
		return;
	}
	if (bs->npage_cache < BS_PAGE_CACHE_MAX && ust_get_thread() == bs->md_thread) {
		bs->page_cache[bs->npage_cache++] = page;
		return;
	}
	bs_dma_free(page);
}

static void page_cache_drain(struct ust_blob_store *bs)
{
	while (bs->npage_cache > 0) {
		bs_dma_free(bs->page_cache[--bs->npage_cache]);
	}
}

int bs_md_send(struct ust_blob_store *bs, ust_msg_fn fn, void *arg)
{
	return ust_thread_send_msg(bs->md_thread, fn, arg);
}

/* ---- deferred frees ------------------------------------------------------------------ */

/*
 * Every I/O reads a map (or parent pointer) inside one callback on its
 * thread, so one pass over the threads holding a channel of the store is a
 * grace period: whatever was unpublished before the pass started is held by
 * nobody once it ends. Frees are batched behind that pass: the walk in
 * flight releases its batch, and frees arriving meanwhile wait for the next
 * walk, started when this one ends. So a storm of frees (closing or
 * recovering 100 000 blobs) costs one walk at a time, a handful of
 * messages, rather than one walk and its messages per pointer.
 *
 * The walk holds a reference on the store's io_device, so an unload's
 * teardown waits for it; a walk that ends after the teardown began starts
 * no other, and bs_dev_close() (run once every channel is destroyed, which
 * is itself a pass over their threads) frees what is still queued.
 */

static void defer_list_release(struct bs_defer_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->ptr[i]);
	}
	l->n = 0;
}

static int defer_list_add(struct bs_defer_list *l, void *ptr)
{
	void **grown;
	size_t cap;

	if (l->n == l->cap) {
		cap = l->cap != 0 ? l->cap * 2 : 64;
		grown = realloc(l->ptr, cap * sizeof(*grown));
		if (grown == NULL) {
			return -ENOMEM;
		}
		l->ptr = grown;
		l->cap = cap;
	}
	l->ptr[l->n++] = ptr;
	return 0;
}

static void defer_visit(struct ust_io_channel_iter *i)
{
	ust_for_each_channel_continue(i, 0);
}

static void defer_walk_start(struct ust_blob_store *bs);

static void defer_walk_done(struct ust_io_channel_iter *i, int status)
{
	struct ust_blob_store *bs = ust_io_channel_iter_get_ctx(i);
	struct bs_defer *d = &bs->defer;

	(void)status;
	defer_list_release(&d->walking);
	d->in_flight = false;
	if (d->queued.n != 0 && bs->io_device) {
		defer_walk_start(bs);
	}
}

static void defer_walk_start(struct ust_blob_store *bs)
{
	struct bs_defer *d = &bs->defer;
	struct bs_defer_list t = d->walking;

	/* The batch moves to the walk; the (empty) walking array becomes the queue. */
	d->walking = d->queued;
	d->queued = t;
	d->in_flight = true;
	d->walks++;
	ust_for_each_channel(bs, defer_visit, bs, defer_walk_done);
}

/* No memory to queue ptr: a walk of its own, as before batching. */
static void defer_single_done(struct ust_io_channel_iter *i, int status)
{
	(void)status;
	free(ust_io_channel_iter_get_ctx(i));
}

void bs_defer_free(struct ust_blob_store *bs, void *ptr)
{
	struct bs_defer *d = &bs->defer;

	if (ptr == NULL) {
		return;
	}
	if (defer_list_add(&d->queued, ptr) != 0) {
		ust_for_each_channel(bs, defer_visit, ptr, defer_single_done);
		return;
	}
	if (!d->in_flight && bs->io_device) {
		defer_walk_start(bs);
	}
}

void bs_defer_counts(const struct ust_blob_store *bs, size_t *queued, size_t *walking)
{
	*queued = bs->defer.queued.n;
	*walking = bs->defer.in_flight ? bs->defer.walking.n : 0;
}

/* The store is going away and no channel is left: nothing can hold what is queued. */
static void defer_drain(struct ust_blob_store *bs)
{
	struct bs_defer *d = &bs->defer;

	defer_list_release(&d->walking);
	defer_list_release(&d->queued);
	free(d->walking.ptr);
	free(d->queued.ptr);
	memset(d, 0, sizeof(*d));
}

uint64_t bs_bit_find_clear(const uint8_t *bm, uint64_t from, uint64_t end)
{
	uint64_t i = from, word;

	while (i < end) {
		/* Whole words of used bits first: a full bitmap of 100 000
		 * slots is 1 600 words, not 100 000 bits. */
		if ((i % 64) == 0 && end - i >= 64) {
			memcpy(&word, bm + i / 8, sizeof(word));
			if (word == UINT64_MAX) {
				i += 64;
				continue;
			}
		}
		if ((i % 8) == 0 && end - i >= 8 && bm[i / 8] == 0xff) {
			i += 8;
			continue;
		}
		if (!bs_bit_get(bm, i)) {
			return i;
		}
		i++;
	}
	return end;
}
