/*
 * QoS: per-bdev rate limits (I/Os per second, and megabytes per second for
 * reads+writes, reads only and writes only) applied across all threads.
 *
 * One thread (the one that first set limits on the bdev) owns the token
 * buckets. While limits are on, every channel forwards its I/O there by
 * message; the QoS thread admits what the buckets allow and submits it on
 * its own channel of the bdev, queueing the rest until a timeslice poller
 * (BDEV_QOS_TIMESLICE_US) refills the buckets. Completions go back to the
 * submitting thread. Turning every limit off returns channels to the direct
 * path and releases whatever is still queued.
 *
 * Buckets count in units x ticks_hz so refill is exact integer arithmetic
 * (limit x elapsed ticks) with no rounding drift. A bucket holds at most
 * one timeslice of credit (or one unit, if a timeslice earns less), so the
 * rate over any period exceeds the limit by at most that burst; an I/O
 * larger than the burst is admitted from a full bucket and paid back as
 * debt, so it is delayed by its cost and never stuck.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"
#include "ustor/log.h"

#include "bdev_internal.h"

#define MBYTE (1024ULL * 1024ULL)

static int64_t clamp_i128(__int128 v)
{
	if (v > INT64_MAX)
		return INT64_MAX;
	if (v < INT64_MIN)
		return INT64_MIN;
	return (int64_t)v;
}

void bdev_qos_bucket_set(struct bdev_qos_bucket *b, uint64_t limit, uint64_t timeslice_ticks,
			 uint64_t ticks_hz, uint64_t unit_size)
{
	__int128 max;

	b->limit = limit;
	if (limit == 0) {
		b->tokens = 0;
		b->max_tokens = 0;
		return;
	}
	max = (__int128)limit * timeslice_ticks;
	if (max < (__int128)unit_size * ticks_hz)
		max = (__int128)unit_size * ticks_hz;
	b->max_tokens = clamp_i128(max);
	b->tokens = b->max_tokens;
}

void bdev_qos_bucket_refill(struct bdev_qos_bucket *b, uint64_t elapsed_ticks)
{
	__int128 t;

	if (b->limit == 0)
		return;
	t = (__int128)b->tokens + (__int128)b->limit * elapsed_ticks;
	if (t > b->max_tokens)
		t = b->max_tokens;
	b->tokens = clamp_i128(t);
}

/*
 * An I/O needs its full cost in credit, except one costing more than a
 * whole timeslice: that one goes when the bucket is full and leaves a debt,
 * so it is delayed by exactly its cost without ever being stuck.
 */
bool bdev_qos_bucket_allows(const struct bdev_qos_bucket *b, uint64_t units, uint64_t ticks_hz)
{
	__int128 need;

	if (b->limit == 0)
		return true;
	need = (__int128)units * ticks_hz;
	if (need > b->max_tokens)
		need = b->max_tokens;
	return b->tokens >= need;
}

void bdev_qos_bucket_charge(struct bdev_qos_bucket *b, uint64_t units, uint64_t ticks_hz)
{
	if (b->limit == 0)
		return;
	b->tokens = clamp_i128((__int128)b->tokens - (__int128)units * ticks_hz);
}

/* ---- admission ---------------------------------------------------------- */

static bool io_is_read(const struct ust_bdev_io *io)
{
	return io->type == UST_BDEV_IO_TYPE_READ || io->type == UST_BDEV_IO_TYPE_COMPARE;
}

static bool io_is_write(const struct ust_bdev_io *io)
{
	return io->type == UST_BDEV_IO_TYPE_WRITE ||
	       io->type == UST_BDEV_IO_TYPE_COMPARE_AND_WRITE;
}

static bool qos_admits(struct bdev_qos *qos, const struct ust_bdev_io *io)
{
	struct bdev_qos_bucket *b = qos->buckets;
	uint64_t bytes = io->num_blocks * io->bdev->blocklen;
	uint64_t hz = qos->ticks_hz;

	if (!bdev_qos_bucket_allows(&b[UST_BDEV_QOS_RW_IOPS_RATE_LIMIT], 1, hz))
		return false;
	if ((io_is_read(io) || io_is_write(io)) &&
	    !bdev_qos_bucket_allows(&b[UST_BDEV_QOS_RW_BPS_RATE_LIMIT], bytes, hz))
		return false;
	if (io_is_read(io) && !bdev_qos_bucket_allows(&b[UST_BDEV_QOS_R_BPS_RATE_LIMIT], bytes, hz))
		return false;
	if (io_is_write(io) &&
	    !bdev_qos_bucket_allows(&b[UST_BDEV_QOS_W_BPS_RATE_LIMIT], bytes, hz))
		return false;
	return true;
}

static void qos_charge(struct bdev_qos *qos, const struct ust_bdev_io *io)
{
	struct bdev_qos_bucket *b = qos->buckets;
	uint64_t bytes = io->num_blocks * io->bdev->blocklen;

	bdev_qos_bucket_charge(&b[UST_BDEV_QOS_RW_IOPS_RATE_LIMIT], 1, qos->ticks_hz);
	if (io_is_read(io) || io_is_write(io))
		bdev_qos_bucket_charge(&b[UST_BDEV_QOS_RW_BPS_RATE_LIMIT], bytes, qos->ticks_hz);
	if (io_is_read(io))
		bdev_qos_bucket_charge(&b[UST_BDEV_QOS_R_BPS_RATE_LIMIT], bytes, qos->ticks_hz);
	if (io_is_write(io))
		bdev_qos_bucket_charge(&b[UST_BDEV_QOS_W_BPS_RATE_LIMIT], bytes, qos->ticks_hz);
}

static bool qos_dispatch(struct bdev_qos *qos, bool all)
{
	struct ust_bdev_io *io;
	bool any = false;

	while ((io = STAILQ_FIRST(&qos->queued)) != NULL) {
		if (!all && !qos_admits(qos, io))
			break;
		STAILQ_REMOVE_HEAD(&qos->queued, internal.link);
		if (!all)
			qos_charge(qos, io);
		io->internal.flags |= BDEV_IO_F_QOS_PASSED;
		bdev_io_submit(io);
		any = true;
	}
	return any;
}

static int qos_timeslice_poll(void *arg)
{
	struct bdev_qos *qos = arg;
	uint64_t now = ust_get_ticks();
	uint64_t elapsed;
	int i;

	if (now < qos->last_tsc + qos->timeslice_ticks)
		return UST_POLLER_IDLE;
	elapsed = now - qos->last_tsc;
	qos->last_tsc = now;
	for (i = 0; i < UST_BDEV_QOS_NUM_RATE_LIMIT_TYPES; i++)
		bdev_qos_bucket_refill(&qos->buckets[i], elapsed);
	return qos_dispatch(qos, false) ? UST_POLLER_BUSY : UST_POLLER_IDLE;
}

static void qos_bypass_msg(void *arg)
{
	struct ust_bdev_io *io = arg;

	io->internal.flags |= BDEV_IO_F_QOS_PASSED;
	bdev_io_submit(io);
}

/* On the QoS thread: adopt the I/O onto the QoS channel and queue it. */
static void qos_enqueue(void *arg)
{
	struct ust_bdev_io *io = arg;
	struct bdev_qos *qos = io->bdev->priv->qos;
	struct bdev_channel *qch;

	if (!qos->enabled || qos->io_ch == NULL) {
		/* Limits went off while the message was in flight. */
		if (io->internal.ch->thread == ust_get_thread())
			qos_bypass_msg(io);
		else
			bdev_send_msg(io->internal.ch->thread, qos_bypass_msg, io);
		return;
	}
	qch = ust_io_channel_get_ctx(qos->io_ch);
	io->internal.submit_ch = qch;
	if (qch != io->internal.ch)
		io->internal.flags |= BDEV_IO_F_FROM_QOS;
	STAILQ_INSERT_TAIL(&qos->queued, io, internal.link);
	qos_dispatch(qos, false);
}

void bdev_qos_submit(struct ust_bdev_io *io)
{
	struct bdev_qos *qos = io->internal.ch->qos;

	if (qos->thread == ust_get_thread())
		qos_enqueue(io);
	else
		bdev_send_msg(qos->thread, qos_enqueue, io);
}

void bdev_qos_fail_queued(struct bdev_qos *qos, int status)
{
	struct bdev_io_list list;
	struct ust_bdev_io *io;

	STAILQ_INIT(&list);
	STAILQ_CONCAT(&list, &qos->queued);
	while ((io = STAILQ_FIRST(&list)) != NULL) {
		STAILQ_REMOVE_HEAD(&list, internal.link);
		bdev_io_fail(io, status);
	}
}

/* ---- configuration ------------------------------------------------------ */

struct qos_set_ctx {
	struct ust_bdev *bdev;
	uint64_t limits[UST_BDEV_QOS_NUM_RATE_LIMIT_TYPES];
	struct ust_thread *caller;
	void (*cb)(void *ctx, int rc);
	void *cb_ctx;
	int rc;
};

static void qos_set_finish_msg(void *arg)
{
	struct qos_set_ctx *c = arg;

	if (c->cb != NULL)
		c->cb(c->cb_ctx, c->rc);
	free(c);
}

static void qos_set_finish(struct qos_set_ctx *c, int rc)
{
	struct bdev_qos *qos = c->bdev->priv->qos;

	pthread_mutex_lock(&g_bdev_mgr.mutex);
	qos->busy = false;
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	c->rc = rc;
	bdev_send_msg(c->caller, qos_set_finish_msg, c);
}

static void qos_channel_enable(struct ust_io_channel_iter *i)
{
	struct bdev_channel *ch = ust_io_channel_get_ctx(ust_io_channel_iter_get_channel(i));

	ch->qos = ch->priv->qos;
	ch->flags |= BDEV_CH_QOS;
	ust_for_each_channel_continue(i, 0);
}

static void qos_channel_disable(struct ust_io_channel_iter *i)
{
	struct bdev_channel *ch = ust_io_channel_get_ctx(ust_io_channel_iter_get_channel(i));

	ch->flags &= ~BDEV_CH_QOS;
	ust_for_each_channel_continue(i, 0);
}

static void qos_walk_done(struct ust_io_channel_iter *i, int status)
{
	struct qos_set_ctx *c = ust_io_channel_iter_get_ctx(i);
	struct bdev_qos *qos = c->bdev->priv->qos;

	if (!qos->enabled) {
		/* Everything held back goes now, unmetered. */
		qos_dispatch(qos, true);
	}
	qos_set_finish(c, status);
}

static void qos_apply_buckets(struct bdev_qos *qos, const uint64_t *limits)
{
	int i;

	for (i = 0; i < UST_BDEV_QOS_NUM_RATE_LIMIT_TYPES; i++) {
		uint64_t limit = limits[i];
		uint64_t unit = 1;

		if (i != UST_BDEV_QOS_RW_IOPS_RATE_LIMIT) {
			limit = limit > UINT64_MAX / MBYTE ? UINT64_MAX : limit * MBYTE;
			unit = 1;
		}
		bdev_qos_bucket_set(&qos->buckets[i], limit, qos->timeslice_ticks, qos->ticks_hz,
				    unit);
	}
}

/* On the QoS thread. */
static void qos_apply(void *arg)
{
	struct qos_set_ctx *c = arg;
	struct ust_bdev_priv *priv = c->bdev->priv;
	struct bdev_qos *qos = priv->qos;
	bool enable = false;
	int i;

	for (i = 0; i < UST_BDEV_QOS_NUM_RATE_LIMIT_TYPES; i++)
		enable |= c->limits[i] != 0;
	qos_apply_buckets(qos, c->limits);
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	memcpy(priv->qos_limits, c->limits, sizeof(priv->qos_limits));
	pthread_mutex_unlock(&g_bdev_mgr.mutex);

	if (enable == qos->enabled) {
		qos_dispatch(qos, false);
		qos_set_finish(c, 0);
		return;
	}
	if (enable) {
		if (qos->io_ch == NULL)
			qos->io_ch = ust_get_io_channel(priv);
		if (qos->io_ch == NULL) {
			qos_set_finish(c, -ENOMEM);
			return;
		}
		qos->poller = ust_poller_register(qos_timeslice_poll, qos, BDEV_QOS_TIMESLICE_US,
						  "bdev_qos");
		if (qos->poller == NULL) {
			qos_set_finish(c, -ENOMEM);
			return;
		}
		qos->last_tsc = ust_get_ticks();
		__atomic_store_n(&qos->enabled, true, __ATOMIC_RELEASE);
		ust_for_each_channel(priv, qos_channel_enable, c, qos_walk_done);
		return;
	}
	__atomic_store_n(&qos->enabled, false, __ATOMIC_RELEASE);
	ust_poller_unregister(&qos->poller);
	ust_for_each_channel(priv, qos_channel_disable, c, qos_walk_done);
}

void ust_bdev_set_qos_rate_limits(struct ust_bdev *bdev, const uint64_t *limits,
				  void (*cb)(void *ctx, int rc), void *ctx)
{
	struct ust_bdev_priv *priv;
	struct qos_set_ctx *c;
	struct bdev_qos *qos;
	int i;

	if (bdev == NULL || bdev->priv == NULL || limits == NULL || ust_get_thread() == NULL) {
		if (cb != NULL)
			cb(ctx, -EINVAL);
		return;
	}
	priv = bdev->priv;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		if (cb != NULL)
			cb(ctx, -ENOMEM);
		return;
	}
	c->bdev = bdev;
	c->caller = ust_get_thread();
	c->cb = cb;
	c->cb_ctx = ctx;

	pthread_mutex_lock(&g_bdev_mgr.mutex);
	if (priv->status != BDEV_STATUS_READY || (priv->qos != NULL && priv->qos->busy)) {
		int rc = priv->status != BDEV_STATUS_READY ? -ENODEV : -EBUSY;

		pthread_mutex_unlock(&g_bdev_mgr.mutex);
		free(c);
		if (cb != NULL)
			cb(ctx, rc);
		return;
	}
	if (priv->qos == NULL) {
		qos = calloc(1, sizeof(*qos));
		if (qos == NULL) {
			pthread_mutex_unlock(&g_bdev_mgr.mutex);
			free(c);
			if (cb != NULL)
				cb(ctx, -ENOMEM);
			return;
		}
		qos->bdev = bdev;
		qos->thread = ust_get_thread();
		qos->ticks_hz = ust_get_ticks_hz();
		qos->timeslice_ticks = qos->ticks_hz * BDEV_QOS_TIMESLICE_US / 1000000;
		STAILQ_INIT(&qos->queued);
		priv->qos = qos;
	}
	priv->qos->busy = true;
	for (i = 0; i < UST_BDEV_QOS_NUM_RATE_LIMIT_TYPES; i++)
		c->limits[i] = limits[i] == UINT64_MAX ? priv->qos_limits[i] : limits[i];
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	bdev_send_msg(priv->qos->thread, qos_apply, c);
}

void ust_bdev_get_qos_rate_limits(struct ust_bdev *bdev, uint64_t *limits)
{
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	memcpy(limits, bdev->priv->qos_limits, sizeof(bdev->priv->qos_limits));
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
}

/* ---- teardown ----------------------------------------------------------- */

struct qos_destroy_ctx {
	struct ust_bdev_priv *priv;
	struct ust_thread *caller;
	void (*done)(void *ctx);
	void *ctx;
};

static void qos_destroy_done_msg(void *arg)
{
	struct qos_destroy_ctx *d = arg;

	d->done(d->ctx);
	free(d);
}

static void qos_destroy_on_thread(void *arg)
{
	struct qos_destroy_ctx *d = arg;
	struct bdev_qos *qos = d->priv->qos;

	__atomic_store_n(&qos->enabled, false, __ATOMIC_RELEASE);
	ust_poller_unregister(&qos->poller);
	bdev_qos_fail_queued(qos, -ENODEV);
	if (qos->io_ch != NULL) {
		ust_put_io_channel(qos->io_ch);
		qos->io_ch = NULL;
	}
	bdev_send_msg(d->caller, qos_destroy_done_msg, d);
}

/* Releases the QoS thread's channel and poller; done runs on the calling thread. */
void bdev_qos_destroy(struct ust_bdev_priv *priv, void (*done)(void *ctx), void *ctx)
{
	struct qos_destroy_ctx *d = calloc(1, sizeof(*d));

	if (d == NULL) {
		UST_ERRLOG("bdev %s: out of memory releasing QoS\n", priv->name);
		done(ctx);
		return;
	}
	d->priv = priv;
	d->caller = ust_get_thread();
	d->done = done;
	d->ctx = ctx;
	bdev_send_msg(priv->qos->thread, qos_destroy_on_thread, d);
}
