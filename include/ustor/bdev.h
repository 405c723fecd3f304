/*
 * ustor block devices: the consumer API.
 *
 * A bdev is a named array of fixed-size blocks provided by a module (malloc,
 * null, aio, nvme, a virtual bdev stacked on another bdev, ...). Consumers
 * open a descriptor, take a per-thread I/O channel from it and submit I/O on
 * that channel; the completion callback runs on the same thread.
 *
 * Contract:
 *  - Submit functions return 0 once the I/O is accepted; its callback then
 *    runs exactly once, never before the submit call has returned (even when
 *    the module completes inline), on the channel's thread. The io pointer
 *    given to the callback is valid only during the callback: the core
 *    recycles it when the callback returns.
 *  - A submit that returns an error accepted nothing and calls nothing back:
 *    -EINVAL bad range/alignment/arguments, -EBADF write I/O through a
 *    read-only descriptor, -ENOTSUP the bdev cannot do this I/O type,
 *    -ENODEV the bdev is being removed, -ENOMEM no I/O object is free on this
 *    thread (queue a ust_bdev_io_wait_entry and retry from its callback).
 *  - Completion status is 0 or a negative errno: -EIO device error,
 *    -EILSEQ miscompare (compare / compare_and_write only), -ENODEV the bdev
 *    was removed, -ECANCELED aborted by a reset, -ENOMEM no memory for a
 *    bounce buffer, or any errno a module reports.
 *  - Buffers (and iovec arrays) must stay valid until the callback. Buffers
 *    need no particular alignment: the core bounces through aligned DMA
 *    memory when the bdev requires it. Reads given a single iovec with a NULL
 *    base get a buffer from the core, readable in the callback.
 *  - Events (HOT_REMOVE, RESIZE) are delivered on the thread that opened the
 *    descriptor. ust_bdev_close() must be called on that thread too.
 *  - A channel (ust_bdev_get_io_channel) is used only on the thread that got
 *    it and released with ust_put_io_channel() before ust_bdev_close().
 */
#ifndef USTOR_BDEV_H
#define USTOR_BDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ust_bdev;
struct ust_bdev_desc;
struct ust_bdev_io;
struct ust_io_channel;

/* ---- UUIDs -------------------------------------------------------------- */

#define UST_UUID_STRING_LEN 37 /* 36 characters and the NUL */

struct ust_uuid {
	uint8_t u[16];
};

/* Random (version 4, RFC 4122) UUID. */
void ust_uuid_generate(struct ust_uuid *uuid);
/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (either case) -> uuid; -EINVAL otherwise. */
int ust_uuid_parse(struct ust_uuid *uuid, const char *str);
/* Lower-case text form into buf (at least UST_UUID_STRING_LEN bytes); -EINVAL if too small. */
int ust_uuid_fmt(char *buf, size_t len, const struct ust_uuid *uuid);
int ust_uuid_compare(const struct ust_uuid *a, const struct ust_uuid *b);
bool ust_uuid_is_null(const struct ust_uuid *uuid);

/* ---- types -------------------------------------------------------------- */

enum ust_bdev_io_type {
	UST_BDEV_IO_TYPE_INVALID = 0,
	UST_BDEV_IO_TYPE_READ,
	UST_BDEV_IO_TYPE_WRITE,
	UST_BDEV_IO_TYPE_UNMAP,
	UST_BDEV_IO_TYPE_FLUSH,
	UST_BDEV_IO_TYPE_RESET,
	UST_BDEV_IO_TYPE_WRITE_ZEROES,
	UST_BDEV_IO_TYPE_COMPARE,
	UST_BDEV_IO_TYPE_COMPARE_AND_WRITE,
	/* Reserved: no submit function yet. */
	UST_BDEV_IO_TYPE_NVME_ADMIN,
	UST_BDEV_IO_TYPE_NVME_IO,
	UST_BDEV_NUM_IO_TYPES
};

/* Lower-case name as used in RPC output ("write_zeroes"); NULL if out of range. */
const char *ust_bdev_io_type_name(enum ust_bdev_io_type type);

enum ust_bdev_event_type {
	UST_BDEV_EVENT_REMOVE, /* close the descriptor: the bdev goes away */
	UST_BDEV_EVENT_RESIZE, /* the block count changed */
};

typedef void (*ust_bdev_event_cb)(enum ust_bdev_event_type type, struct ust_bdev *bdev,
				  void *event_ctx);

/* status: 0 or a negative errno (see the contract above). */
typedef void (*ust_bdev_io_cb)(struct ust_bdev_io *io, int status, void *cb_arg);

/* Reserved for metadata/DIF: stored and reported, not acted on yet. */
enum ust_dif_type {
	UST_DIF_DISABLE = 0,
	UST_DIF_TYPE1 = 1,
	UST_DIF_TYPE2 = 2,
	UST_DIF_TYPE3 = 3,
};

/* ---- global state (the bdev subsystem calls these; tests call them too) - */

struct ust_bdev_opts {
	uint32_t bdev_io_pool_size;  /* I/O objects in the global pool (default 65535) */
	uint32_t bdev_io_cache_size; /* per-thread cache of them (default 256) */
};

void ust_bdev_get_opts(struct ust_bdev_opts *opts);
/* Only before ust_bdev_initialize(); -EINVAL for a zero pool or cache > pool, -EBUSY after. */
int ust_bdev_set_opts(const struct ust_bdev_opts *opts);

typedef void (*ust_bdev_init_cb)(void *ctx, int rc);
typedef void (*ust_bdev_fini_cb)(void *ctx);

/*
 * Create the I/O pool and initialise every registered module in
 * registration order; cb runs on the calling thread.
 */
void ust_bdev_initialize(ust_bdev_init_cb cb, void *ctx);
/*
 * Unregister every bdev top-down (a bdev claimed by a virtual bdev goes
 * after it), then finish every module in reverse order, then free the pool.
 */
void ust_bdev_finish(ust_bdev_fini_cb cb, void *ctx);

/* cb runs once no module is examining any bdev. */
typedef void (*ust_bdev_wait_for_examine_cb)(void *ctx);
int ust_bdev_wait_for_examine(ust_bdev_wait_for_examine_cb cb, void *ctx);

/* ---- lookup and properties ---------------------------------------------- */

/* By name or alias; NULL if none. */
struct ust_bdev *ust_bdev_get_by_name(const char *name);
/* Registration order; NULL at the end. Control path only. */
struct ust_bdev *ust_bdev_first(void);
struct ust_bdev *ust_bdev_next(struct ust_bdev *prev);

const char *ust_bdev_get_name(const struct ust_bdev *bdev);
const char *ust_bdev_get_product_name(const struct ust_bdev *bdev);
const char *ust_bdev_get_module_name(const struct ust_bdev *bdev);
uint32_t ust_bdev_get_block_size(const struct ust_bdev *bdev);
uint64_t ust_bdev_get_num_blocks(const struct ust_bdev *bdev);
const struct ust_uuid *ust_bdev_get_uuid(const struct ust_bdev *bdev);
uint32_t ust_bdev_get_optimal_io_boundary(const struct ust_bdev *bdev);
uint32_t ust_bdev_get_max_transfer_blocks(const struct ust_bdev *bdev);
/* Bytes; 1 when any alignment will do. */
size_t ust_bdev_get_buf_align(const struct ust_bdev *bdev);
bool ust_bdev_has_write_cache(const struct ust_bdev *bdev);
uint32_t ust_bdev_get_md_size(const struct ust_bdev *bdev);
bool ust_bdev_is_md_interleaved(const struct ust_bdev *bdev);
enum ust_dif_type ust_bdev_get_dif_type(const struct ust_bdev *bdev);
/* True when submitting this type can succeed (natively or emulated). */
bool ust_bdev_io_type_supported(struct ust_bdev *bdev, enum ust_bdev_io_type type);
bool ust_bdev_is_claimed(const struct ust_bdev *bdev);

/*
 * Aliases: extra names for lookup. -EEXIST if any bdev already has that
 * name or alias, -ENOENT when deleting one the bdev does not have.
 */
int ust_bdev_alias_add(struct ust_bdev *bdev, const char *alias);
int ust_bdev_alias_del(struct ust_bdev *bdev, const char *alias);
/* Calls fn for every alias (control path; under the bdev lock: do not re-enter). */
void ust_bdev_foreach_alias(struct ust_bdev *bdev, void (*fn)(const char *alias, void *ctx),
			    void *ctx);

/* ---- descriptors -------------------------------------------------------- */

/*
 * Open by name or alias. event_cb is required. -ENODEV no such bdev (or it is
 * being removed), -EPERM write open of a bdev claimed by a module, -EINVAL bad
 * arguments, -ENOMEM.
 */
int ust_bdev_open_ext(const char *name, bool write, ust_bdev_event_cb event_cb, void *event_ctx,
		      struct ust_bdev_desc **desc);
void ust_bdev_close(struct ust_bdev_desc *desc);
struct ust_bdev *ust_bdev_desc_get_bdev(struct ust_bdev_desc *desc);
/*
 * Whether any descriptor of bdev is open (with write, only descriptors open
 * for writing, which includes a claim's descriptor). A snapshot for control
 * decisions such as "refuse to delete what is in use": another thread may
 * open or close right after.
 */
bool ust_bdev_is_open(const struct ust_bdev *bdev, bool write);

/* The calling thread's channel (refcounted); NULL on error. */
struct ust_io_channel *ust_bdev_get_io_channel(struct ust_bdev_desc *desc);

/* ---- I/O ---------------------------------------------------------------- */

int ust_bdev_read_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch, void *buf,
			 uint64_t offset_blocks, uint64_t num_blocks, ust_bdev_io_cb cb,
			 void *cb_arg);
int ust_bdev_readv_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch,
			  struct iovec *iov, int iovcnt, uint64_t offset_blocks,
			  uint64_t num_blocks, ust_bdev_io_cb cb, void *cb_arg);
int ust_bdev_write_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch, void *buf,
			  uint64_t offset_blocks, uint64_t num_blocks, ust_bdev_io_cb cb,
			  void *cb_arg);
int ust_bdev_writev_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch,
			   struct iovec *iov, int iovcnt, uint64_t offset_blocks,
			   uint64_t num_blocks, ust_bdev_io_cb cb, void *cb_arg);

/*
 * Zero-copy read: instead of copying blocks [offset_blocks, + num_blocks)
 * into a buffer, point *data at the bdev's own memory that holds them, for
 * a caller that copies them out at once (a FUSE reply written straight from
 * it). Synchronous; counted in the channel's read statistics (without a
 * latency). The memory stays mapped while desc is open, but its content is
 * only what a read would return until the calling thread next polls: a
 * write completing after that may change it. Only bdevs that are memory
 * lend (malloc; a file on tmpfs, once the range is backed):
 * -ENOTSUP the bdev cannot lend at all (no memory of its own, per-block
 * metadata, QoS limits on the channel), -EAGAIN not this range now (a
 * hole in a tmpfs file): both mean "use ust_bdev_read_blocks()"; -EINVAL
 * bad range, -ENODEV the bdev is being removed.
 */
int ust_bdev_read_lend(struct ust_bdev_desc *desc, struct ust_io_channel *ch,
		       uint64_t offset_blocks, uint64_t num_blocks, const void **data);
/*
 * Zero-copy write: point *data at the bdev's own memory for blocks
 * [offset_blocks, + num_blocks), for a caller that stores the new content
 * there at once (a FUSE write's payload read straight from a pipe). Stored
 * bytes are the bdev's content as a completed write's are: visible to
 * every reader, durable after a flush as written blocks are. Synchronous;
 * counted as one write. The range is the caller's only until its thread
 * next polls: storing later races I/O the bdev completes meanwhile.
 * Errors as ust_bdev_read_lend(), and -EBADF on a read-only descriptor;
 * -EAGAIN also where a store could fault (a tmpfs hole that cannot be
 * backed now).
 */
int ust_bdev_write_lend(struct ust_bdev_desc *desc, struct ust_io_channel *ch,
			uint64_t offset_blocks, uint64_t num_blocks, void **data);

/* Byte variants: offset and nbytes must be multiples of the block size (-EINVAL). */
int ust_bdev_read(struct ust_bdev_desc *desc, struct ust_io_channel *ch, void *buf,
		  uint64_t offset, uint64_t nbytes, ust_bdev_io_cb cb, void *cb_arg);
int ust_bdev_readv(struct ust_bdev_desc *desc, struct ust_io_channel *ch, struct iovec *iov,
		   int iovcnt, uint64_t offset, uint64_t nbytes, ust_bdev_io_cb cb, void *cb_arg);
int ust_bdev_write(struct ust_bdev_desc *desc, struct ust_io_channel *ch, void *buf,
		   uint64_t offset, uint64_t nbytes, ust_bdev_io_cb cb, void *cb_arg);
int ust_bdev_writev(struct ust_bdev_desc *desc, struct ust_io_channel *ch, struct iovec *iov,
		    int iovcnt, uint64_t offset, uint64_t nbytes, ust_bdev_io_cb cb, void *cb_arg);

/* Emulated with writes of a shared zero buffer when the module lacks it. */
int ust_bdev_write_zeroes_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch,
				 uint64_t offset_blocks, uint64_t num_blocks, ust_bdev_io_cb cb,
				 void *cb_arg);
int ust_bdev_unmap_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch,
			  uint64_t offset_blocks, uint64_t num_blocks, ust_bdev_io_cb cb,
			  void *cb_arg);
int ust_bdev_flush_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch,
			  uint64_t offset_blocks, uint64_t num_blocks, ust_bdev_io_cb cb,
			  void *cb_arg);
/*
 * Reset: new I/O on every channel is held, I/O queued in the core is aborted
 * (-ECANCELED), the module resets (completing or aborting what it holds),
 * I/O still in flight drains, then the held I/O proceeds. Concurrent resets
 * of one bdev share one module reset.
 */
int ust_bdev_reset(struct ust_bdev_desc *desc, struct ust_io_channel *ch, ust_bdev_io_cb cb,
		   void *cb_arg);

/* Compare the blocks with buf: status -EILSEQ when they differ. */
int ust_bdev_compare_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch, void *buf,
			    uint64_t offset_blocks, uint64_t num_blocks, ust_bdev_io_cb cb,
			    void *cb_arg);
int ust_bdev_comparev_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch,
			     struct iovec *iov, int iovcnt, uint64_t offset_blocks,
			     uint64_t num_blocks, ust_bdev_io_cb cb, void *cb_arg);
/*
 * Write write_iov only if the blocks equal cmp_iov (else -EILSEQ, nothing
 * written). Atomic with respect to every other compare_and_write of an
 * overlapping range of this bdev, from any channel. Not atomic with respect
 * to plain writes unless the module implements compare_and_write natively.
 */
int ust_bdev_comparev_and_writev_blocks(struct ust_bdev_desc *desc, struct ust_io_channel *ch,
					struct iovec *cmp_iov, int cmp_iovcnt,
					struct iovec *write_iov, int write_iovcnt,
					uint64_t offset_blocks, uint64_t num_blocks,
					ust_bdev_io_cb cb, void *cb_arg);

/* Accessors usable in a completion callback. */
struct ust_bdev *ust_bdev_io_get_bdev(const struct ust_bdev_io *io);
enum ust_bdev_io_type ust_bdev_io_get_type(const struct ust_bdev_io *io);
/* The data iovecs (for reads given a NULL buffer: the core's buffer). */
void ust_bdev_io_get_iovec(struct ust_bdev_io *io, struct iovec **iovs, int *iovcnt);

/* ---- waiting for a free I/O object -------------------------------------- */

typedef void (*ust_bdev_io_wait_cb)(void *cb_arg);

/* Caller-owned; must stay valid until cb runs. */
struct ust_bdev_io_wait_entry {
	struct ust_bdev *bdev;
	ust_bdev_io_wait_cb cb_fn;
	void *cb_arg;
	TAILQ_ENTRY(ust_bdev_io_wait_entry) link; /* private */
};

/*
 * After a submit on ch returned -ENOMEM: cb_fn(cb_arg) runs on ch's thread
 * as soon as an I/O object is freed on that thread (one entry per free, in
 * queue order). -EINVAL if entry->bdev is not bdev, or if an I/O object is
 * free on this thread right now (then just retry).
 */
int ust_bdev_queue_io_wait(struct ust_bdev *bdev, struct ust_io_channel *ch,
			   struct ust_bdev_io_wait_entry *entry);

/* ---- statistics --------------------------------------------------------- */

/* Latencies are in ticks (ust_get_ticks_hz() per second), measured per poll iteration. */
struct ust_bdev_io_stat {
	uint64_t bytes_read;
	uint64_t num_read_ops;
	uint64_t bytes_written;
	uint64_t num_write_ops;
	uint64_t bytes_unmapped;
	uint64_t num_unmap_ops;
	uint64_t bytes_zeroed;
	uint64_t num_write_zeroes_ops;
	uint64_t bytes_compared;
	uint64_t num_compare_ops;
	uint64_t num_compare_and_write_ops;
	uint64_t num_flush_ops;
	uint64_t num_reset_ops;
	uint64_t read_latency_ticks;
	uint64_t max_read_latency_ticks;
	uint64_t min_read_latency_ticks; /* UINT64_MAX while num_read_ops is 0 */
	uint64_t write_latency_ticks;
	uint64_t max_write_latency_ticks;
	uint64_t min_write_latency_ticks;
	uint64_t unmap_latency_ticks;
	uint64_t max_unmap_latency_ticks;
	uint64_t min_unmap_latency_ticks;
	uint64_t num_io_errors;  /* I/Os completed with any error */
	uint64_t num_miscompares; /* of those, -EILSEQ */
};

void ust_bdev_io_stat_init(struct ust_bdev_io_stat *stat);
/* dst += src (maxima and minima combined). */
void ust_bdev_io_stat_add(struct ust_bdev_io_stat *dst, const struct ust_bdev_io_stat *src);

/* One channel's counters (on its thread). */
void ust_bdev_get_channel_iostat(struct ust_io_channel *ch, struct ust_bdev_io_stat *stat);

typedef void (*ust_bdev_iostat_cb)(struct ust_bdev *bdev, struct ust_bdev_io_stat *stat,
				   void *ctx, int rc);
/*
 * The bdev's totals since registration: every channel's counters (gathered
 * on the channels' threads) plus those of channels already destroyed.
 * *stat is filled before cb runs on the calling thread.
 */
void ust_bdev_get_iostat(struct ust_bdev *bdev, struct ust_bdev_io_stat *stat,
			 ust_bdev_iostat_cb cb, void *ctx);

/* ---- QoS ---------------------------------------------------------------- */

enum ust_bdev_qos_rate_limit_type {
	UST_BDEV_QOS_RW_IOPS_RATE_LIMIT = 0,
	UST_BDEV_QOS_RW_BPS_RATE_LIMIT,
	UST_BDEV_QOS_R_BPS_RATE_LIMIT,
	UST_BDEV_QOS_W_BPS_RATE_LIMIT,
	UST_BDEV_QOS_NUM_RATE_LIMIT_TYPES
};

/*
 * limits[type]: I/Os per second for RW_IOPS, megabytes (2^20 bytes) per
 * second for the others; 0 = no limit, UINT64_MAX = leave unchanged. All
 * zero disables QoS. cb runs on the calling thread once the limits apply on
 * every channel.
 */
void ust_bdev_set_qos_rate_limits(struct ust_bdev *bdev, const uint64_t *limits,
				  void (*cb)(void *ctx, int rc), void *ctx);
void ust_bdev_get_qos_rate_limits(struct ust_bdev *bdev, uint64_t *limits);

#ifdef __cplusplus
}
#endif

#endif
