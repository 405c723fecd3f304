/*
 * The blobstore's device adapter: one claimed bdev descriptor, the metadata
 * thread's channel, and page/byte I/O helpers that report completion through
 * a plain (arg, rc) callback.
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
		UST_ERRLOG("blobstore: bdev %s is being removed; unload the store\n",
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

void bs_dev_close(struct ust_blob_store *bs)
{
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

void bs_dev_flush(struct ust_blob_store *bs, bs_done_fn done, void *arg)
{
	struct dev_io *io = dev_io_new(done, arg);

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

int bs_md_send(struct ust_blob_store *bs, ust_msg_fn fn, void *arg)
{
	return ust_thread_send_msg(bs->md_thread, fn, arg);
}

static void defer_free_visit(struct ust_io_channel_iter *i)
{
	ust_for_each_channel_continue(i, 0);
}

static void defer_free_done(struct ust_io_channel_iter *i, int status)
{
	(void)status;
	free(ust_io_channel_iter_get_ctx(i));
}

void bs_defer_free(struct ust_blob_store *bs, void *ptr)
{
	if (ptr == NULL) {
		return;
	}
	/* Every I/O reads the map inside one callback: one pass over the
	 * channels' threads is a grace period after which nobody holds ptr. */
	ust_for_each_channel(bs, defer_free_visit, ptr, defer_free_done);
}

uint64_t bs_bit_find_clear(const uint8_t *bm, uint64_t from, uint64_t end)
{
	uint64_t i = from;

	while (i < end) {
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
