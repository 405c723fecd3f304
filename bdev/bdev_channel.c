/*
 * bdev channels: the per-thread state behind every I/O.
 *
 * Two kinds of channel exist. The management channel (one per thread, the
 * io_device is g_bdev_mgr) caches I/O objects and data buffers so the I/O
 * path touches the global pool only once per BDEV_IO_CACHE_BATCH objects,
 * and holds the thread's io_wait queue. A bdev channel (one per thread per
 * bdev, the io_device is the bdev's private state) wraps the module's
 * channel and carries the counters, the queues of held-back I/O and the
 * deferred-completion poller.
 *
 * Also here, because they are walks over a bdev's channels: reset (freeze,
 * abort queued, module reset, drain, unfreeze) and statistics gathering.
 *
 * Guarantees: a completion reported inside submit_request is delivered from
 * the channel's deferred poller, after the submit call returned; that poller
 * is paused whenever it has nothing to do, so an idle bdev channel costs its
 * thread nothing; a destroyed channel's counters are kept in the bdev's
 * totals.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"
#include "ustor/log.h"

#include "bdev_internal.h"

/* ---- management channel: I/O objects and buffers ------------------------ */

struct ust_bdev_io *bdev_io_cache_refill(struct bdev_mgmt_channel *mgmt)
{
	void *objs[BDEV_IO_CACHE_BATCH];
	uint32_t want = g_bdev_mgr.io_cache_size < BDEV_IO_CACHE_BATCH ? g_bdev_mgr.io_cache_size
									: BDEV_IO_CACHE_BATCH;
	uint32_t i;

	if (want > 1 && ust_mempool_get_bulk(g_bdev_mgr.io_pool, objs, want) == 0) {
		for (i = 1; i < want; i++) {
			STAILQ_INSERT_HEAD(&mgmt->io_cache, (struct ust_bdev_io *)objs[i], internal.link);
			mgmt->io_cache_count++;
		}
		return objs[0];
	}
	return ust_mempool_get(g_bdev_mgr.io_pool);
}

void bdev_io_cache_overflow(struct bdev_mgmt_channel *mgmt, struct ust_bdev_io *io)
{
	ust_mempool_put(g_bdev_mgr.io_pool, io);
}

void bdev_io_wake_waiter(struct bdev_mgmt_channel *mgmt)
{
	struct ust_bdev_io_wait_entry *entry = TAILQ_FIRST(&mgmt->io_wait_queue);

	TAILQ_REMOVE(&mgmt->io_wait_queue, entry, link);
	entry->cb_fn(entry->cb_arg);
}

void *bdev_buf_get(struct bdev_mgmt_channel *mgmt, size_t len, size_t align, size_t *alloc_len)
{
	if (len <= BDEV_BUF_SIZE && align <= BDEV_BUF_ALIGN) {
		*alloc_len = BDEV_BUF_SIZE;
		if (mgmt->buf_cache_count > 0)
			return mgmt->buf_cache[--mgmt->buf_cache_count];
		return ust_dma_malloc(BDEV_BUF_SIZE, BDEV_BUF_ALIGN);
	}
	*alloc_len = len;
	return ust_dma_malloc(len, align < 64 ? 64 : align);
}

void bdev_buf_put(struct bdev_mgmt_channel *mgmt, void *buf, size_t alloc_len)
{
	if (alloc_len == BDEV_BUF_SIZE && mgmt->buf_cache_count < BDEV_BUF_CACHE_COUNT) {
		mgmt->buf_cache[mgmt->buf_cache_count++] = buf;
		return;
	}
	ust_dma_free(buf);
}

static int bdev_mgmt_channel_create(void *io_device, void *ctx_buf)
{
	struct bdev_mgmt_channel *mgmt = ctx_buf;

	STAILQ_INIT(&mgmt->io_cache);
	mgmt->io_cache_count = 0;
	TAILQ_INIT(&mgmt->io_wait_queue);
	mgmt->buf_cache_count = 0;
	return 0;
}

static void bdev_mgmt_channel_destroy(void *io_device, void *ctx_buf)
{
	struct bdev_mgmt_channel *mgmt = ctx_buf;
	struct ust_bdev_io *io;

	if (!TAILQ_EMPTY(&mgmt->io_wait_queue))
		UST_ERRLOG("bdev: thread %s released its last bdev channel with io_wait entries "
			   "queued; they will never run\n", ust_thread_get_name(ust_get_thread()));
	while ((io = STAILQ_FIRST(&mgmt->io_cache)) != NULL) {
		STAILQ_REMOVE_HEAD(&mgmt->io_cache, internal.link);
		ust_mempool_put(g_bdev_mgr.io_pool, io);
	}
	mgmt->io_cache_count = 0;
	while (mgmt->buf_cache_count > 0)
		ust_dma_free(mgmt->buf_cache[--mgmt->buf_cache_count]);
}

int bdev_mgmt_register(void)
{
	ust_io_device_register(&g_bdev_mgr, bdev_mgmt_channel_create, bdev_mgmt_channel_destroy,
			       sizeof(struct bdev_mgmt_channel), "bdev_mgr");
	return 0;
}

static void (*g_mgmt_unregister_done)(void);

static void bdev_mgmt_gone(void *io_device)
{
	g_mgmt_unregister_done();
}

void bdev_mgmt_unregister(void (*done)(void))
{
	g_mgmt_unregister_done = done;
	ust_io_device_unregister(&g_bdev_mgr, bdev_mgmt_gone);
}

/* ---- bdev channels ------------------------------------------------------ */

/*
 * Delivers completions that arrived while their I/O was still inside
 * submit_request. Only the batch present on entry is run: callbacks that
 * resubmit (and complete inline again) wait for the next iteration, so one
 * busy channel cannot monopolise its thread.
 */
static int bdev_deferred_poll(void *arg)
{
	struct bdev_channel *ch = arg;
	struct bdev_io_list batch;
	struct ust_bdev_io *io;

	if (STAILQ_EMPTY(&ch->deferred)) {
		ust_poller_pause(ch->deferred_poller);
		ch->deferred_poller_running = false;
		if (!STAILQ_EMPTY(&ch->nomem))
			bdev_nomem_retry(ch);
		return UST_POLLER_IDLE;
	}
	STAILQ_INIT(&batch);
	STAILQ_CONCAT(&batch, &ch->deferred);
	while ((io = STAILQ_FIRST(&batch)) != NULL) {
		STAILQ_REMOVE_HEAD(&batch, internal.link);
		bdev_io_complete_final(io);
	}
	if (!STAILQ_EMPTY(&ch->nomem))
		bdev_nomem_retry(ch);
	return UST_POLLER_BUSY;
}

void bdev_deferred_kick(struct bdev_channel *ch)
{
	ch->deferred_poller_running = true;
	ust_poller_resume(ch->deferred_poller);
}

static int bdev_channel_create(void *io_device, void *ctx_buf)
{
	struct ust_bdev_priv *priv = io_device;
	struct ust_bdev *bdev = priv->bdev;
	struct bdev_channel *ch = ctx_buf;
	struct bdev_qos *qos;

	memset(ch, 0, sizeof(*ch));
	ch->bdev = bdev;
	ch->priv = priv;
	ch->thread = ust_get_thread();
	ch->submit_request = bdev->fn_table->submit_request;
	STAILQ_INIT(&ch->deferred);
	STAILQ_INIT(&ch->nomem);
	STAILQ_INIT(&ch->frozen);
	ust_bdev_io_stat_init(&ch->stat);

	ch->mgmt_io_ch = ust_get_io_channel(&g_bdev_mgr);
	if (ch->mgmt_io_ch == NULL)
		return -ENOMEM;
	ch->mgmt = ust_io_channel_get_ctx(ch->mgmt_io_ch);
	ch->module_ch = bdev->fn_table->get_io_channel(bdev->ctxt);
	if (ch->module_ch == NULL) {
		UST_ERRLOG("bdev %s: module %s gave no I/O channel\n", priv->name, bdev->module->name);
		ust_put_io_channel(ch->mgmt_io_ch);
		return -ENOMEM;
	}
	ch->deferred_poller = ust_poller_register(bdev_deferred_poll, ch, 0, "bdev_deferred");
	if (ch->deferred_poller == NULL) {
		ust_put_io_channel(ch->module_ch);
		ust_put_io_channel(ch->mgmt_io_ch);
		return -ENOMEM;
	}
	ust_poller_pause(ch->deferred_poller);

	if (priv->needs_checks)
		ch->flags |= BDEV_CH_CHECKS;
	if (bdev_is_removing(bdev))
		ch->flags |= BDEV_CH_REMOVED;
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	qos = priv->qos;
	if (qos != NULL && __atomic_load_n(&qos->enabled, __ATOMIC_ACQUIRE)) {
		ch->qos = qos;
		ch->flags |= BDEV_CH_QOS;
	} else {
		ch->qos = qos;
	}
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	return 0;
}

static void bdev_channel_destroy(void *io_device, void *ctx_buf)
{
	struct bdev_channel *ch = ctx_buf;
	struct ust_bdev_priv *priv = io_device;

	if (!STAILQ_EMPTY(&ch->deferred) || !STAILQ_EMPTY(&ch->nomem) ||
	    !STAILQ_EMPTY(&ch->frozen) || ch->io_outstanding != 0) {
		UST_ERRLOG("bdev %s: channel released with I/O outstanding\n", priv->name);
		bdev_channel_fail_queued(ch, -ENODEV);
		bdev_deferred_poll(ch);
	}
	ust_poller_unregister(&ch->deferred_poller);
	ust_poller_unregister(&ch->nomem_poller);
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	ust_bdev_io_stat_add(&priv->retired_stat, &ch->stat);
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	ust_put_io_channel(ch->module_ch);
	ust_put_io_channel(ch->mgmt_io_ch);
}

void bdev_channel_register(struct ust_bdev_priv *priv)
{
	ust_io_device_register(priv, bdev_channel_create, bdev_channel_destroy,
			       sizeof(struct bdev_channel), priv->name);
}

struct ust_io_channel *ust_bdev_get_io_channel(struct ust_bdev_desc *desc)
{
	if (desc == NULL)
		return NULL;
	return ust_get_io_channel(desc->bdev->priv);
}

void bdev_channel_fail_queued(struct bdev_channel *ch, int status)
{
	struct bdev_io_list list;
	struct ust_bdev_io *io;

	STAILQ_INIT(&list);
	STAILQ_CONCAT(&list, &ch->nomem);
	STAILQ_CONCAT(&list, &ch->frozen);
	while ((io = STAILQ_FIRST(&list)) != NULL) {
		STAILQ_REMOVE_HEAD(&list, internal.link);
		bdev_io_fail(io, status);
	}
}

int ust_bdev_queue_io_wait(struct ust_bdev *bdev, struct ust_io_channel *io_ch,
			   struct ust_bdev_io_wait_entry *entry)
{
	struct bdev_channel *ch;

	if (bdev == NULL || io_ch == NULL || entry == NULL || entry->bdev != bdev ||
	    entry->cb_fn == NULL)
		return -EINVAL;
	ch = ust_io_channel_get_ctx(io_ch);
	if (ch->bdev != bdev || ch->mgmt->io_cache_count > 0)
		return -EINVAL;
	TAILQ_INSERT_TAIL(&ch->mgmt->io_wait_queue, entry, link);
	return 0;
}

/* ---- reset -------------------------------------------------------------- */

/*
 * One reset runs per bdev at a time; resets that arrive meanwhile ride on it
 * and complete with its status.
 */
static void reset_unfreeze_channel(struct ust_io_channel_iter *i);
static void reset_unfrozen(struct ust_io_channel_iter *i, int status);

static void reset_freeze_channel(struct ust_io_channel_iter *i)
{
	struct bdev_channel *ch = ust_io_channel_get_ctx(ust_io_channel_iter_get_channel(i));

	ch->flags |= BDEV_CH_FROZEN;
	bdev_channel_fail_queued(ch, -ECANCELED);
	if (ch->qos != NULL && ch->qos->thread == ch->thread)
		bdev_qos_fail_queued(ch->qos, -ECANCELED);
	ust_for_each_channel_continue(i, 0);
}

static void reset_drain_channel(struct ust_io_channel_iter *i)
{
	struct bdev_channel *ch = ust_io_channel_get_ctx(ust_io_channel_iter_get_channel(i));

	if (ch->io_outstanding == 0) {
		ust_for_each_channel_continue(i, 0);
		return;
	}
	ch->reset_iter = i; /* continued by bdev_channel_check_drained() */
}

void bdev_channel_check_drained(struct bdev_channel *ch)
{
	struct ust_io_channel_iter *i = ch->reset_iter;

	if (i == NULL || ch->io_outstanding != 0)
		return;
	ch->reset_iter = NULL;
	ust_for_each_channel_continue(i, 0);
}

/*
 * The module's reset runs while I/O may still be outstanding in it: a reset is
 * what one sends when I/O hangs (an NVMe controller with stuck commands, an
 * error bdev holding "pending" I/O), so it must not wait for that I/O first.
 * The module completes or aborts what it holds as part of its reset; only then
 * does the core wait for every channel to drain and unfreeze.
 */
static void reset_drained(struct ust_io_channel_iter *i, int status)
{
	struct ust_bdev_io *io = ust_io_channel_iter_get_ctx(i);

	ust_for_each_channel(io->bdev->priv, reset_unfreeze_channel, io, reset_unfrozen);
}

static void reset_frozen(struct ust_io_channel_iter *i, int status)
{
	struct ust_bdev_io *io = ust_io_channel_iter_get_ctx(i);

	io->internal.state = BDEV_IO_STATE_RESET;
	bdev_io_submit_to_module(io->internal.submit_ch, io);
}

void bdev_reset_start(struct ust_bdev_io *io)
{
	struct ust_bdev_priv *priv = io->bdev->priv;

	pthread_mutex_lock(&priv->range_mutex);
	if (priv->reset_in_progress != NULL) {
		STAILQ_INSERT_TAIL(&priv->pending_resets, io, internal.link);
		pthread_mutex_unlock(&priv->range_mutex);
		return;
	}
	priv->reset_in_progress = io;
	pthread_mutex_unlock(&priv->range_mutex);
	ust_for_each_channel(priv, reset_freeze_channel, io, reset_frozen);
}

static void reset_unfreeze_channel(struct ust_io_channel_iter *i)
{
	struct bdev_channel *ch = ust_io_channel_get_ctx(ust_io_channel_iter_get_channel(i));
	struct bdev_io_list held;
	struct ust_bdev_io *io;

	ch->flags &= ~BDEV_CH_FROZEN;
	STAILQ_INIT(&held);
	STAILQ_CONCAT(&held, &ch->frozen);
	while ((io = STAILQ_FIRST(&held)) != NULL) {
		STAILQ_REMOVE_HEAD(&held, internal.link);
		bdev_io_submit(io);
	}
	ust_for_each_channel_continue(i, 0);
}

static void reset_complete_msg(void *arg)
{
	bdev_io_complete_final(arg);
}

static void reset_unfrozen(struct ust_io_channel_iter *i, int status)
{
	struct ust_bdev_io *io = ust_io_channel_iter_get_ctx(i);
	struct ust_bdev_priv *priv = io->bdev->priv;
	struct bdev_io_list riders;
	struct ust_bdev_io *rider;

	STAILQ_INIT(&riders);
	pthread_mutex_lock(&priv->range_mutex);
	STAILQ_CONCAT(&riders, &priv->pending_resets);
	priv->reset_in_progress = NULL;
	pthread_mutex_unlock(&priv->range_mutex);

	io->internal.state = BDEV_IO_STATE_NONE;
	while ((rider = STAILQ_FIRST(&riders)) != NULL) {
		STAILQ_REMOVE_HEAD(&riders, internal.link);
		rider->internal.status = io->internal.status;
		bdev_send_msg(rider->internal.ch->thread, reset_complete_msg, rider);
	}
	bdev_io_complete_final(io);
}

void bdev_reset_module_done(struct ust_bdev_io *io, int status)
{
	io->internal.status = status;
	ust_for_each_channel(io->bdev->priv, reset_drain_channel, io, reset_drained);
}

/* ---- statistics --------------------------------------------------------- */

void ust_bdev_io_stat_init(struct ust_bdev_io_stat *stat)
{
	memset(stat, 0, sizeof(*stat));
	stat->min_read_latency_ticks = UINT64_MAX;
	stat->min_write_latency_ticks = UINT64_MAX;
	stat->min_unmap_latency_ticks = UINT64_MAX;
}

static void stat_max(uint64_t *dst, uint64_t src)
{
	if (src > *dst)
		*dst = src;
}

static void stat_min(uint64_t *dst, uint64_t src)
{
	if (src < *dst)
		*dst = src;
}

void ust_bdev_io_stat_add(struct ust_bdev_io_stat *dst, const struct ust_bdev_io_stat *src)
{
	dst->bytes_read += src->bytes_read;
	dst->num_read_ops += src->num_read_ops;
	dst->bytes_written += src->bytes_written;
	dst->num_write_ops += src->num_write_ops;
	dst->bytes_unmapped += src->bytes_unmapped;
	dst->num_unmap_ops += src->num_unmap_ops;
	dst->bytes_zeroed += src->bytes_zeroed;
	dst->num_write_zeroes_ops += src->num_write_zeroes_ops;
	dst->bytes_compared += src->bytes_compared;
	dst->num_compare_ops += src->num_compare_ops;
	dst->num_compare_and_write_ops += src->num_compare_and_write_ops;
	dst->num_flush_ops += src->num_flush_ops;
	dst->num_reset_ops += src->num_reset_ops;
	dst->read_latency_ticks += src->read_latency_ticks;
	dst->write_latency_ticks += src->write_latency_ticks;
	dst->unmap_latency_ticks += src->unmap_latency_ticks;
	stat_max(&dst->max_read_latency_ticks, src->max_read_latency_ticks);
	stat_max(&dst->max_write_latency_ticks, src->max_write_latency_ticks);
	stat_max(&dst->max_unmap_latency_ticks, src->max_unmap_latency_ticks);
	stat_min(&dst->min_read_latency_ticks, src->min_read_latency_ticks);
	stat_min(&dst->min_write_latency_ticks, src->min_write_latency_ticks);
	stat_min(&dst->min_unmap_latency_ticks, src->min_unmap_latency_ticks);
	dst->num_io_errors += src->num_io_errors;
	dst->num_miscompares += src->num_miscompares;
}

void ust_bdev_get_channel_iostat(struct ust_io_channel *io_ch, struct ust_bdev_io_stat *stat)
{
	struct bdev_channel *ch = ust_io_channel_get_ctx(io_ch);

	*stat = ch->stat;
}

struct iostat_ctx {
	struct ust_bdev *bdev;
	struct ust_bdev_io_stat *stat;
	ust_bdev_iostat_cb cb;
	void *ctx;
};

static void iostat_channel(struct ust_io_channel_iter *i)
{
	struct iostat_ctx *c = ust_io_channel_iter_get_ctx(i);
	struct bdev_channel *ch = ust_io_channel_get_ctx(ust_io_channel_iter_get_channel(i));

	ust_bdev_io_stat_add(c->stat, &ch->stat);
	ust_for_each_channel_continue(i, 0);
}

static void iostat_done(struct ust_io_channel_iter *i, int status)
{
	struct iostat_ctx *c = ust_io_channel_iter_get_ctx(i);

	c->cb(c->bdev, c->stat, c->ctx, status);
	free(c);
}

void ust_bdev_get_iostat(struct ust_bdev *bdev, struct ust_bdev_io_stat *stat,
			 ust_bdev_iostat_cb cb, void *ctx)
{
	struct iostat_ctx *c;

	if (bdev == NULL || bdev->priv == NULL || stat == NULL || cb == NULL) {
		if (cb != NULL)
			cb(bdev, stat, ctx, -EINVAL);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		cb(bdev, stat, ctx, -ENOMEM);
		return;
	}
	c->bdev = bdev;
	c->stat = stat;
	c->cb = cb;
	c->ctx = ctx;
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	*stat = bdev->priv->retired_stat;
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	ust_for_each_channel(bdev->priv, iostat_channel, c, iostat_done);
}
