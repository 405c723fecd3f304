/*
 * bdev I/O path: the submit functions consumers call, the gate every I/O
 * passes (removed, QoS, reset), the dispatch to split/emulation/bounce, the
 * call into the module, and completion back to the consumer.
 *
 * The common case (a plain read or write on a bdev without split, alignment
 * or QoS rules) is: validate, take an I/O object from the thread's cache,
 * call submit_request; on completion count it in the channel, call the
 * callback and put the object back. No lock, no atomic, no allocation and
 * no clock read: latency uses the thread's per-iteration tick.
 *
 * Guarantees: a consumer callback never runs inside the submit call that
 * accepted the I/O and always runs on the submitting channel's thread;
 * every accepted I/O is called back exactly once; a bounced read's data is
 * in the caller's buffers before its callback.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"
#include "ustor/log.h"

#include "bdev_internal.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* ---- helpers ------------------------------------------------------------ */

bool bdev_iovs_aligned(const struct iovec *iovs, int iovcnt, size_t align)
{
	uintptr_t mask = align - 1;
	int i;

	for (i = 0; i < iovcnt; i++) {
		if (((uintptr_t)iovs[i].iov_base & mask) != 0)
			return false;
		if (i < iovcnt - 1 && (iovs[i].iov_len & mask) != 0)
			return false;
	}
	return true;
}

static void copy_iovs_to_buf(void *buf, const struct iovec *iovs, int iovcnt, size_t len)
{
	uint8_t *dst = buf;
	int i;

	for (i = 0; i < iovcnt && len > 0; i++) {
		size_t n = iovs[i].iov_len < len ? iovs[i].iov_len : len;

		memcpy(dst, iovs[i].iov_base, n);
		dst += n;
		len -= n;
	}
}

static void copy_buf_to_iovs(const struct iovec *iovs, int iovcnt, const void *buf, size_t len)
{
	const uint8_t *src = buf;
	int i;

	for (i = 0; i < iovcnt && len > 0; i++) {
		size_t n = iovs[i].iov_len < len ? iovs[i].iov_len : len;

		memcpy(iovs[i].iov_base, src, n);
		src += n;
		len -= n;
	}
}

static inline uint64_t bdev_io_bytes(const struct ust_bdev_io *io)
{
	return io->num_blocks * io->bdev->blocklen;
}

void bdev_io_init(struct ust_bdev_io *io, struct bdev_channel *ch, enum ust_bdev_io_type type,
		  ust_bdev_io_cb cb, void *cb_arg)
{
	io->bdev = ch->bdev;
	io->type = type;
	io->fused_iovs = NULL;
	io->fused_iovcnt = 0;
	io->internal.ch = ch;
	io->internal.submit_ch = ch;
	io->internal.cb = cb;
	io->internal.cb_arg = cb_arg;
	io->internal.status = 0;
	io->internal.flags = 0;
	io->internal.state = BDEV_IO_STATE_NONE;
	io->internal.parent = NULL;
	io->internal.buf = NULL;
	io->internal.submit_tsc = ust_thread_get_last_tsc(ch->thread);
}

/* ---- into the module ---------------------------------------------------- */

void bdev_io_submit_to_module(struct bdev_channel *ch, struct ust_bdev_io *io)
{
	ch->io_outstanding++;
	io->internal.flags |= BDEV_IO_F_IN_SUBMIT;
	ch->submit_request(ch->module_ch, io);
	io->internal.flags &= ~BDEV_IO_F_IN_SUBMIT;
}

/* Deferred so that no callback runs inside a submit call. */
void bdev_io_fail(struct ust_bdev_io *io, int status)
{
	struct bdev_channel *ch = io->internal.submit_ch;

	io->internal.status = status;
	STAILQ_INSERT_TAIL(&ch->deferred, io, internal.link);
	if (!ch->deferred_poller_running)
		bdev_deferred_kick(ch);
}

static bool bdev_io_attach_buf(struct ust_bdev_io *io, size_t len)
{
	struct bdev_channel *ch = io->internal.submit_ch;
	size_t alloc_len;
	void *buf;

	buf = bdev_buf_get(ch->mgmt, len, io->bdev->priv->buf_align, &alloc_len);
	if (buf == NULL)
		return false;
	io->iovs[0].iov_base = buf;
	io->iovs[0].iov_len = len;
	io->internal.buf = buf;
	io->internal.buf_len = alloc_len;
	io->internal.flags |= BDEV_IO_F_CORE_BUF;
	return true;
}

static bool bdev_io_bounce(struct ust_bdev_io *io)
{
	struct bdev_channel *ch = io->internal.submit_ch;
	size_t len = bdev_io_bytes(io);
	size_t alloc_len;
	void *buf;

	buf = bdev_buf_get(ch->mgmt, len, io->bdev->priv->buf_align, &alloc_len);
	if (buf == NULL)
		return false;
	if (io->type != UST_BDEV_IO_TYPE_READ)
		copy_iovs_to_buf(buf, io->iovs, io->iovcnt, len);
	io->internal.orig_iovs = io->iovs;
	io->internal.orig_iovcnt = io->iovcnt;
	io->internal.bounce_iov.iov_base = buf;
	io->internal.bounce_iov.iov_len = len;
	io->iovs = &io->internal.bounce_iov;
	io->iovcnt = 1;
	io->internal.buf = buf;
	io->internal.buf_len = alloc_len;
	io->internal.flags |= BDEV_IO_F_BOUNCED;
	return true;
}

static bool bdev_io_has_data(const struct ust_bdev_io *io)
{
	return io->type == UST_BDEV_IO_TYPE_READ || io->type == UST_BDEV_IO_TYPE_WRITE ||
	       io->type == UST_BDEV_IO_TYPE_COMPARE;
}

/* compare_and_write goes to the module only when it can take it whole. */
static bool bdev_caw_native_ok(const struct ust_bdev_io *io)
{
	const struct ust_bdev_priv *priv = io->bdev->priv;

	if (!bdev_io_type_native(priv, UST_BDEV_IO_TYPE_COMPARE_AND_WRITE))
		return false;
	if (bdev_io_should_split(io))
		return false;
	return bdev_iovs_aligned(io->iovs, io->iovcnt, priv->buf_align) &&
	       bdev_iovs_aligned(io->fused_iovs, io->fused_iovcnt, priv->buf_align);
}

void bdev_io_dispatch(struct ust_bdev_io *io)
{
	struct ust_bdev_priv *priv = io->bdev->priv;

	switch (io->type) {
	case UST_BDEV_IO_TYPE_READ:
		if (io->iovs[0].iov_base == NULL && !bdev_io_attach_buf(io, bdev_io_bytes(io))) {
			bdev_io_fail(io, -ENOMEM);
			return;
		}
		break;
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
		if (!bdev_io_type_native(priv, UST_BDEV_IO_TYPE_WRITE_ZEROES)) {
			bdev_zeroes_start(io);
			return;
		}
		break;
	case UST_BDEV_IO_TYPE_COMPARE:
		if (!bdev_io_type_native(priv, UST_BDEV_IO_TYPE_COMPARE)) {
			bdev_compare_start(io);
			return;
		}
		break;
	case UST_BDEV_IO_TYPE_COMPARE_AND_WRITE:
		if (!bdev_caw_native_ok(io)) {
			bdev_caw_start(io);
			return;
		}
		bdev_io_submit_to_module(io->internal.submit_ch, io);
		return;
	default:
		break;
	}
	if (priv->needs_checks) {
		if (bdev_io_should_split(io)) {
			bdev_split_start(io);
			return;
		}
		if (priv->buf_align > 1 && bdev_io_has_data(io) &&
		    !bdev_iovs_aligned(io->iovs, io->iovcnt, priv->buf_align) &&
		    !bdev_io_bounce(io)) {
			bdev_io_fail(io, -ENOMEM);
			return;
		}
	}
	bdev_io_submit_to_module(io->internal.submit_ch, io);
}

static void bdev_io_submit_slow(struct ust_bdev_io *io)
{
	struct bdev_channel *ch = io->internal.submit_ch;

	if (ch->flags & BDEV_CH_REMOVED) {
		bdev_io_fail(io, -ENODEV);
		return;
	}
	if ((ch->flags & BDEV_CH_QOS) && !(io->internal.flags & BDEV_IO_F_QOS_PASSED) &&
	    io->type != UST_BDEV_IO_TYPE_RESET) {
		bdev_qos_submit(io);
		return;
	}
	if (ch->flags & BDEV_CH_FROZEN) {
		STAILQ_INSERT_TAIL(&ch->frozen, io, internal.link);
		return;
	}
	bdev_io_dispatch(io);
}

void bdev_io_submit(struct ust_bdev_io *io)
{
	struct bdev_channel *ch = io->internal.submit_ch;

	if (likely((ch->flags | (io->internal.flags & BDEV_IO_F_PREP)) == 0))
		bdev_io_submit_to_module(ch, io);
	else
		bdev_io_submit_slow(io);
}

/* ---- completion --------------------------------------------------------- */

static inline void stat_latency(uint64_t *sum, uint64_t *max, uint64_t *min, uint64_t lat)
{
	*sum += lat;
	if (lat > *max)
		*max = lat;
	if (lat < *min)
		*min = lat;
}

static inline void bdev_io_count(struct bdev_channel *ch, struct ust_bdev_io *io)
{
	struct ust_bdev_io_stat *s = &ch->stat;
	uint64_t lat = ust_thread_get_last_tsc(ch->thread) - io->internal.submit_tsc;
	uint64_t bytes = bdev_io_bytes(io);

	if (unlikely(io->internal.status != 0)) {
		s->num_io_errors++;
		if (io->internal.status == -EILSEQ)
			s->num_miscompares++;
		return;
	}
	switch (io->type) {
	case UST_BDEV_IO_TYPE_READ:
		s->bytes_read += bytes;
		s->num_read_ops++;
		stat_latency(&s->read_latency_ticks, &s->max_read_latency_ticks,
			     &s->min_read_latency_ticks, lat);
		break;
	case UST_BDEV_IO_TYPE_WRITE:
		s->bytes_written += bytes;
		s->num_write_ops++;
		stat_latency(&s->write_latency_ticks, &s->max_write_latency_ticks,
			     &s->min_write_latency_ticks, lat);
		break;
	case UST_BDEV_IO_TYPE_UNMAP:
		s->bytes_unmapped += bytes;
		s->num_unmap_ops++;
		stat_latency(&s->unmap_latency_ticks, &s->max_unmap_latency_ticks,
			     &s->min_unmap_latency_ticks, lat);
		break;
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
		s->bytes_zeroed += bytes;
		s->num_write_zeroes_ops++;
		break;
	case UST_BDEV_IO_TYPE_COMPARE:
		s->bytes_compared += bytes;
		s->num_compare_ops++;
		break;
	case UST_BDEV_IO_TYPE_COMPARE_AND_WRITE:
		s->num_compare_and_write_ops++;
		break;
	case UST_BDEV_IO_TYPE_FLUSH:
		s->num_flush_ops++;
		break;
	case UST_BDEV_IO_TYPE_RESET:
		s->num_reset_ops++;
		break;
	default:
		break;
	}
}

static void bdev_io_complete_final_msg(void *arg)
{
	bdev_io_complete_final(arg);
}

/* Buffers and forwarding: everything an I/O may carry beyond the common case. */
static bool bdev_io_complete_slow(struct ust_bdev_io *io)
{
	struct bdev_channel *ch = io->internal.ch;

	if (io->internal.state == BDEV_IO_STATE_RESET) {
		bdev_reset_module_done(io, io->internal.status);
		return false;
	}
	if (io->internal.flags & BDEV_IO_F_FROM_QOS) {
		/* Done on the QoS thread: finish on the consumer's. */
		io->internal.flags &= ~BDEV_IO_F_FROM_QOS;
		io->internal.submit_ch = ch;
		bdev_send_msg(ch->thread, bdev_io_complete_final_msg, io);
		return false;
	}
	if (io->internal.flags & BDEV_IO_F_BOUNCED) {
		if (io->type == UST_BDEV_IO_TYPE_READ && io->internal.status == 0)
			copy_buf_to_iovs(io->internal.orig_iovs, io->internal.orig_iovcnt,
					 io->internal.buf, bdev_io_bytes(io));
		io->iovs = io->internal.orig_iovs;
		io->iovcnt = io->internal.orig_iovcnt;
		bdev_buf_put(ch->mgmt, io->internal.buf, io->internal.buf_len);
		io->internal.buf = NULL;
		io->internal.flags &= ~BDEV_IO_F_BOUNCED;
	}
	return true;
}

void bdev_io_complete_final(struct ust_bdev_io *io)
{
	struct bdev_channel *ch = io->internal.ch;
	uint16_t flags = io->internal.flags;

	if (unlikely((flags & (BDEV_IO_F_FROM_QOS | BDEV_IO_F_BOUNCED)) ||
		     io->internal.state != BDEV_IO_STATE_NONE)) {
		if (!bdev_io_complete_slow(io))
			return;
	}
	if (likely(!(flags & BDEV_IO_F_CHILD)))
		bdev_io_count(ch, io);
	io->internal.cb(io, io->internal.status, io->internal.cb_arg);
	if (unlikely(io->internal.flags & BDEV_IO_F_CORE_BUF))
		bdev_buf_put(ch->mgmt, io->internal.buf, io->internal.buf_len);
	bdev_io_put(ch->mgmt, io);
}

static int bdev_nomem_poll(void *arg)
{
	struct bdev_channel *ch = arg;

	bdev_nomem_retry(ch);
	if (STAILQ_EMPTY(&ch->nomem) || ch->io_outstanding > 0)
		ust_poller_unregister(&ch->nomem_poller);
	return UST_POLLER_BUSY;
}

static void bdev_io_nomem(struct ust_bdev_io *io)
{
	struct bdev_channel *ch = io->internal.submit_ch;

	ch->io_outstanding--;
	STAILQ_INSERT_TAIL(&ch->nomem, io, internal.link);
	if (ch->reset_iter != NULL)
		bdev_channel_check_drained(ch);
	/* Nothing in flight will complete and trigger a retry: use a timer. */
	if (ch->io_outstanding == 0 && ch->nomem_poller == NULL)
		ch->nomem_poller = ust_poller_register(bdev_nomem_poll, ch, BDEV_NOMEM_RETRY_US,
						       "bdev_nomem");
}

/*
 * Resubmits I/O the module bounced. Each is tried at most once per call and
 * the walk stops at the first one bounced again, so a module that stays out
 * of resources cannot trap the thread here.
 */
void bdev_nomem_retry(struct bdev_channel *ch)
{
	struct ust_bdev_io *io;
	uint64_t n = 0, before = 0;

	STAILQ_FOREACH(io, &ch->nomem, internal.link)
		before++;
	while (n++ < before && (io = STAILQ_FIRST(&ch->nomem)) != NULL) {
		if (ch->flags & (BDEV_CH_FROZEN | BDEV_CH_REMOVED))
			return;
		STAILQ_REMOVE_HEAD(&ch->nomem, internal.link);
		bdev_io_submit_to_module(ch, io);
		if (!STAILQ_EMPTY(&ch->nomem) && ch->io_outstanding == 0)
			return;
	}
}

static inline void bdev_io_complete_rc(struct ust_bdev_io *io, int rc)
{
	struct bdev_channel *ch = io->internal.submit_ch;

	io->internal.status = rc;
	ch->io_outstanding--;
	if (unlikely(ch->reset_iter != NULL))
		bdev_channel_check_drained(ch);
	if (io->internal.flags & BDEV_IO_F_IN_SUBMIT) {
		STAILQ_INSERT_TAIL(&ch->deferred, io, internal.link);
		if (unlikely(!ch->deferred_poller_running))
			bdev_deferred_kick(ch);
		return;
	}
	bdev_io_complete_final(io);
	if (unlikely(!STAILQ_EMPTY(&ch->nomem)))
		bdev_nomem_retry(ch);
}

void ust_bdev_io_complete(struct ust_bdev_io *io, enum ust_bdev_io_status status)
{
	switch (status) {
	case UST_BDEV_IO_STATUS_SUCCESS:
		bdev_io_complete_rc(io, 0);
		return;
	case UST_BDEV_IO_STATUS_NOMEM:
		bdev_io_nomem(io);
		return;
	case UST_BDEV_IO_STATUS_MISCOMPARE:
		bdev_io_complete_rc(io, -EILSEQ);
		return;
	case UST_BDEV_IO_STATUS_ABORTED:
		bdev_io_complete_rc(io, -ECANCELED);
		return;
	case UST_BDEV_IO_STATUS_FAILED:
	default:
		bdev_io_complete_rc(io, -EIO);
		return;
	}
}

void ust_bdev_io_complete_errno(struct ust_bdev_io *io, int neg_errno)
{
	if (neg_errno > 0)
		neg_errno = -neg_errno;
	bdev_io_complete_rc(io, neg_errno);
}

/* ---- module helpers ----------------------------------------------------- */

struct ust_io_channel *ust_bdev_io_get_io_channel(struct ust_bdev_io *io)
{
	return io->internal.submit_ch->module_ch;
}

void ust_bdev_io_get_buf(struct ust_bdev_io *io, ust_bdev_io_get_buf_cb cb, uint64_t len)
{
	struct ust_io_channel *mch = io->internal.submit_ch->module_ch;

	if (io->iovcnt > 0 && io->iovs[0].iov_base != NULL) {
		cb(mch, io, true);
		return;
	}
	if (io->iovcnt == 0) {
		io->iovs = io->internal.inline_iovs;
		io->iovcnt = 1;
	}
	cb(mch, io, bdev_io_attach_buf(io, len));
}

struct ust_bdev *ust_bdev_io_get_bdev(const struct ust_bdev_io *io)
{
	return io->bdev;
}

enum ust_bdev_io_type ust_bdev_io_get_type(const struct ust_bdev_io *io)
{
	return io->type;
}

void ust_bdev_io_get_iovec(struct ust_bdev_io *io, struct iovec **iovs, int *iovcnt)
{
	*iovs = io->iovs;
	*iovcnt = io->iovcnt;
}

/* ---- the consumer API --------------------------------------------------- */

static inline int bdev_check_range(const struct ust_bdev *bdev, uint64_t offset, uint64_t num)
{
	uint64_t cnt = __atomic_load_n(&bdev->blockcnt, __ATOMIC_RELAXED);

	if (unlikely(num == 0 || offset >= cnt || num > cnt - offset))
		return -EINVAL;
	return 0;
}

static inline int bdev_check_common(struct ust_bdev_desc *desc, struct bdev_channel *ch,
				    enum ust_bdev_io_type type, uint64_t offset, uint64_t num,
				    ust_bdev_io_cb cb)
{
	struct ust_bdev *bdev = desc->bdev;

	if (unlikely(cb == NULL || ch->bdev != bdev))
		return -EINVAL;
	if (unlikely(bdev_check_range(bdev, offset, num) != 0))
		return -EINVAL;
	if (unlikely(type != UST_BDEV_IO_TYPE_READ && type != UST_BDEV_IO_TYPE_COMPARE &&
		     !desc->write))
		return -EBADF;
	if (unlikely(ch->flags & BDEV_CH_REMOVED))
		return -ENODEV;
	return 0;
}

/* The iovecs must cover the blocks; only a read may leave the (single) base NULL. */
static int bdev_check_iovs(const struct iovec *iov, int iovcnt, uint64_t bytes,
			   enum ust_bdev_io_type type, bool *null_buf)
{
	uint64_t total = 0;
	int i;

	if (iov == NULL || iovcnt <= 0)
		return -EINVAL;
	*null_buf = false;
	if (iovcnt == 1 && iov[0].iov_base == NULL) {
		if (type != UST_BDEV_IO_TYPE_READ)
			return -EINVAL;
		*null_buf = true;
		return 0;
	}
	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_base == NULL && iov[i].iov_len != 0)
			return -EINVAL;
		total += iov[i].iov_len;
	}
	return total >= bytes ? 0 : -EINVAL;
}

static int bdev_submit_data(struct ust_bdev_desc *desc, struct ust_io_channel *io_ch,
			    struct iovec *iov, int iovcnt, void *buf, uint64_t offset,
			    uint64_t num, enum ust_bdev_io_type type, ust_bdev_io_cb cb,
			    void *cb_arg)
{
	struct bdev_channel *ch = ust_io_channel_get_ctx(io_ch);
	struct ust_bdev *bdev = desc->bdev;
	struct ust_bdev_io *io;
	bool null_buf = false;
	int rc;

	rc = bdev_check_common(desc, ch, type, offset, num, cb);
	if (unlikely(rc != 0))
		return rc;
	if (iov != NULL) {
		rc = bdev_check_iovs(iov, iovcnt, num * bdev->blocklen, type, &null_buf);
		if (rc != 0)
			return rc;
	} else if (buf == NULL) {
		if (type != UST_BDEV_IO_TYPE_READ)
			return -EINVAL;
		null_buf = true;
	}
	io = bdev_io_get(ch->mgmt);
	if (unlikely(io == NULL))
		return -ENOMEM;
	bdev_io_init(io, ch, type, cb, cb_arg);
	io->offset_blocks = offset;
	io->num_blocks = num;
	if (iov != NULL) {
		io->iovs = iov;
		io->iovcnt = iovcnt;
	} else {
		io->internal.inline_iovs[0].iov_base = buf;
		io->internal.inline_iovs[0].iov_len = num * bdev->blocklen;
		io->iovs = io->internal.inline_iovs;
		io->iovcnt = 1;
	}
	if (null_buf || type == UST_BDEV_IO_TYPE_COMPARE)
		io->internal.flags |= BDEV_IO_F_PREP;
	bdev_io_submit(io);
	return 0;
}

int ust_bdev_read_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch, void *buf,
			 uint64_t offset_blocks, uint64_t num_blocks, ust_bdev_io_cb cb,
			 void *cb_arg)
{
	return bdev_submit_data(desc, ch, NULL, 0, buf, offset_blocks, num_blocks,
				UST_BDEV_IO_TYPE_READ, cb, cb_arg);
}

int ust_bdev_readv_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch,
			  struct iovec *iov, int iovcnt, uint64_t offset_blocks,
			  uint64_t num_blocks, ust_bdev_io_cb cb, void *cb_arg)
{
	return bdev_submit_data(desc, ch, iov, iovcnt, NULL, offset_blocks, num_blocks,
				UST_BDEV_IO_TYPE_READ, cb, cb_arg);
}

static int bdev_lend(struct ust_bdev_desc *desc, struct ust_io_channel *io_ch,
		     uint64_t offset_blocks, uint64_t num_blocks, bool write, void **data)
{
	struct bdev_channel *ch = ust_io_channel_get_ctx(io_ch);
	struct ust_bdev *bdev = desc->bdev;
	uint64_t bytes = num_blocks * bdev->blocklen;
	int rc;

	if (ch->bdev != bdev || data == NULL || bdev_check_range(bdev, offset_blocks, num_blocks) != 0)
		return -EINVAL;
	if (write && !desc->write)
		return -EBADF;
	if (ch->flags & BDEV_CH_REMOVED)
		return -ENODEV;
	/* QoS counts what it lets through: its limits hold only on the I/O path. */
	if (bdev->fn_table->lend == NULL || bdev->md_len != 0 || (ch->flags & BDEV_CH_QOS))
		return -ENOTSUP;
	rc = bdev->fn_table->lend(bdev->ctxt, offset_blocks * bdev->blocklen, bytes, write, data);
	if (rc != 0)
		return rc;
	if (write) {
		ch->stat.bytes_written += bytes;
		ch->stat.num_write_ops++;
	} else {
		ch->stat.bytes_read += bytes;
		ch->stat.num_read_ops++;
	}
	return 0;
}

int ust_bdev_read_lend(struct ust_bdev_desc *desc, struct ust_io_channel *io_ch,
		       uint64_t offset_blocks, uint64_t num_blocks, const void **data)
{
	void *p;
	int rc;

	if (data == NULL)
		return -EINVAL;
	rc = bdev_lend(desc, io_ch, offset_blocks, num_blocks, false, &p);
	if (rc == 0)
		*data = p;
	return rc;
}

int ust_bdev_write_lend(struct ust_bdev_desc *desc, struct ust_io_channel *io_ch,
			uint64_t offset_blocks, uint64_t num_blocks, void **data)
{
	return bdev_lend(desc, io_ch, offset_blocks, num_blocks, true, data);
}

int ust_bdev_write_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch, void *buf,
			  uint64_t offset_blocks, uint64_t num_blocks, ust_bdev_io_cb cb,
			  void *cb_arg)
{
	return bdev_submit_data(desc, ch, NULL, 0, buf, offset_blocks, num_blocks,
				UST_BDEV_IO_TYPE_WRITE, cb, cb_arg);
}

int ust_bdev_writev_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch,
			   struct iovec *iov, int iovcnt, uint64_t offset_blocks,
			   uint64_t num_blocks, ust_bdev_io_cb cb, void *cb_arg)
{
	return bdev_submit_data(desc, ch, iov, iovcnt, NULL, offset_blocks, num_blocks,
				UST_BDEV_IO_TYPE_WRITE, cb, cb_arg);
}

static int bytes_to_blocks(struct ust_bdev_desc *desc, uint64_t offset, uint64_t nbytes,
			   uint64_t *offset_blocks, uint64_t *num_blocks)
{
	uint32_t bs;

	if (desc == NULL)
		return -EINVAL;
	bs = desc->bdev->blocklen;
	if (offset % bs != 0 || nbytes % bs != 0)
		return -EINVAL;
	*offset_blocks = offset / bs;
	*num_blocks = nbytes / bs;
	return 0;
}

int ust_bdev_read(struct ust_bdev_desc *desc, struct ust_io_channel *ch, void *buf,
		  uint64_t offset, uint64_t nbytes, ust_bdev_io_cb cb, void *cb_arg)
{
	uint64_t ob, nb;
	int rc = bytes_to_blocks(desc, offset, nbytes, &ob, &nb);

	return rc ? rc : ust_bdev_read_blocks(desc, ch, buf, ob, nb, cb, cb_arg);
}

int ust_bdev_readv(struct ust_bdev_desc *desc, struct ust_io_channel *ch, struct iovec *iov,
		   int iovcnt, uint64_t offset, uint64_t nbytes, ust_bdev_io_cb cb, void *cb_arg)
{
	uint64_t ob, nb;
	int rc = bytes_to_blocks(desc, offset, nbytes, &ob, &nb);

	return rc ? rc : ust_bdev_readv_blocks(desc, ch, iov, iovcnt, ob, nb, cb, cb_arg);
}

int ust_bdev_write(struct ust_bdev_desc *desc, struct ust_io_channel *ch, void *buf,
		   uint64_t offset, uint64_t nbytes, ust_bdev_io_cb cb, void *cb_arg)
{
	uint64_t ob, nb;
	int rc = bytes_to_blocks(desc, offset, nbytes, &ob, &nb);

	return rc ? rc : ust_bdev_write_blocks(desc, ch, buf, ob, nb, cb, cb_arg);
}

int ust_bdev_writev(struct ust_bdev_desc *desc, struct ust_io_channel *ch, struct iovec *iov,
		    int iovcnt, uint64_t offset, uint64_t nbytes, ust_bdev_io_cb cb, void *cb_arg)
{
	uint64_t ob, nb;
	int rc = bytes_to_blocks(desc, offset, nbytes, &ob, &nb);

	return rc ? rc : ust_bdev_writev_blocks(desc, ch, iov, iovcnt, ob, nb, cb, cb_arg);
}

/* unmap, flush, write_zeroes: no data. */
static int bdev_submit_nodata(struct ust_bdev_desc *desc, struct ust_io_channel *io_ch,
			      uint64_t offset, uint64_t num, enum ust_bdev_io_type type,
			      ust_bdev_io_cb cb, void *cb_arg)
{
	struct bdev_channel *ch = ust_io_channel_get_ctx(io_ch);
	struct ust_bdev_io *io;
	int rc;

	rc = bdev_check_common(desc, ch, type, offset, num, cb);
	if (rc != 0)
		return rc;
	if (!ust_bdev_io_type_supported(desc->bdev, type))
		return -ENOTSUP;
	io = bdev_io_get(ch->mgmt);
	if (io == NULL)
		return -ENOMEM;
	bdev_io_init(io, ch, type, cb, cb_arg);
	io->offset_blocks = offset;
	io->num_blocks = num;
	io->iovs = NULL;
	io->iovcnt = 0;
	if (type == UST_BDEV_IO_TYPE_WRITE_ZEROES &&
	    !bdev_io_type_native(desc->bdev->priv, UST_BDEV_IO_TYPE_WRITE_ZEROES))
		io->internal.flags |= BDEV_IO_F_PREP;
	bdev_io_submit(io);
	return 0;
}

int ust_bdev_write_zeroes_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch,
				 uint64_t offset_blocks, uint64_t num_blocks, ust_bdev_io_cb cb,
				 void *cb_arg)
{
	return bdev_submit_nodata(desc, ch, offset_blocks, num_blocks,
				  UST_BDEV_IO_TYPE_WRITE_ZEROES, cb, cb_arg);
}

int ust_bdev_unmap_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch,
			  uint64_t offset_blocks, uint64_t num_blocks, ust_bdev_io_cb cb,
			  void *cb_arg)
{
	return bdev_submit_nodata(desc, ch, offset_blocks, num_blocks, UST_BDEV_IO_TYPE_UNMAP,
				  cb, cb_arg);
}

int ust_bdev_flush_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch,
			  uint64_t offset_blocks, uint64_t num_blocks, ust_bdev_io_cb cb,
			  void *cb_arg)
{
	return bdev_submit_nodata(desc, ch, offset_blocks, num_blocks, UST_BDEV_IO_TYPE_FLUSH,
				  cb, cb_arg);
}

int ust_bdev_reset(struct ust_bdev_desc *desc, struct ust_io_channel *io_ch, ust_bdev_io_cb cb,
		   void *cb_arg)
{
	struct bdev_channel *ch;
	struct ust_bdev_io *io;

	if (desc == NULL || io_ch == NULL || cb == NULL)
		return -EINVAL;
	ch = ust_io_channel_get_ctx(io_ch);
	if (ch->bdev != desc->bdev)
		return -EINVAL;
	if (!bdev_io_type_native(desc->bdev->priv, UST_BDEV_IO_TYPE_RESET))
		return -ENOTSUP;
	if (ch->flags & BDEV_CH_REMOVED)
		return -ENODEV;
	io = bdev_io_get(ch->mgmt);
	if (io == NULL)
		return -ENOMEM;
	bdev_io_init(io, ch, UST_BDEV_IO_TYPE_RESET, cb, cb_arg);
	io->offset_blocks = 0;
	io->num_blocks = 0;
	io->iovs = NULL;
	io->iovcnt = 0;
	bdev_reset_start(io);
	return 0;
}

int ust_bdev_compare_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch, void *buf,
			    uint64_t offset_blocks, uint64_t num_blocks, ust_bdev_io_cb cb,
			    void *cb_arg)
{
	if (buf == NULL)
		return -EINVAL;
	if (desc != NULL && !ust_bdev_io_type_supported(desc->bdev, UST_BDEV_IO_TYPE_COMPARE))
		return -ENOTSUP;
	return bdev_submit_data(desc, ch, NULL, 0, buf, offset_blocks, num_blocks,
				UST_BDEV_IO_TYPE_COMPARE, cb, cb_arg);
}

int ust_bdev_comparev_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch,
			     struct iovec *iov, int iovcnt, uint64_t offset_blocks,
			     uint64_t num_blocks, ust_bdev_io_cb cb, void *cb_arg)
{
	if (desc != NULL && !ust_bdev_io_type_supported(desc->bdev, UST_BDEV_IO_TYPE_COMPARE))
		return -ENOTSUP;
	return bdev_submit_data(desc, ch, iov, iovcnt, NULL, offset_blocks, num_blocks,
				UST_BDEV_IO_TYPE_COMPARE, cb, cb_arg);
}

int ust_bdev_comparev_and_writev_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *io_ch,
					struct iovec *cmp_iov, int cmp_iovcnt,
					struct iovec *write_iov, int write_iovcnt,
					uint64_t offset_blocks, uint64_t num_blocks,
					ust_bdev_io_cb cb, void *cb_arg)
{
	struct bdev_channel *ch;
	struct ust_bdev_io *io;
	uint64_t bytes;
	bool null_buf;
	int rc;

	if (desc == NULL || io_ch == NULL)
		return -EINVAL;
	ch = ust_io_channel_get_ctx(io_ch);
	rc = bdev_check_common(desc, ch, UST_BDEV_IO_TYPE_COMPARE_AND_WRITE, offset_blocks,
			       num_blocks, cb);
	if (rc != 0)
		return rc;
	if (!ust_bdev_io_type_supported(desc->bdev, UST_BDEV_IO_TYPE_COMPARE_AND_WRITE))
		return -ENOTSUP;
	bytes = num_blocks * desc->bdev->blocklen;
	if (bdev_check_iovs(cmp_iov, cmp_iovcnt, bytes, UST_BDEV_IO_TYPE_WRITE, &null_buf) != 0 ||
	    bdev_check_iovs(write_iov, write_iovcnt, bytes, UST_BDEV_IO_TYPE_WRITE, &null_buf) != 0)
		return -EINVAL;
	io = bdev_io_get(ch->mgmt);
	if (io == NULL)
		return -ENOMEM;
	bdev_io_init(io, ch, UST_BDEV_IO_TYPE_COMPARE_AND_WRITE, cb, cb_arg);
	io->offset_blocks = offset_blocks;
	io->num_blocks = num_blocks;
	io->iovs = cmp_iov;
	io->iovcnt = cmp_iovcnt;
	io->fused_iovs = write_iov;
	io->fused_iovcnt = write_iovcnt;
	io->internal.flags |= BDEV_IO_F_PREP;
	bdev_io_submit(io);
	return 0;
}
