/*
 * ustor block devices: the API for bdev modules (drivers and virtual bdevs).
 *
 * A module registers itself with UST_BDEV_MODULE_REGISTER and creates bdevs
 * by filling a struct ust_bdev (name, geometry, fn_table, ctxt) and calling
 * ust_bdev_register(). The core then routes I/O to fn_table->submit_request
 * on the module's own per-thread channel (fn_table->get_io_channel).
 *
 * Module rules:
 *  - submit_request runs on the thread of the channel it is given and must
 *    lead to exactly one ust_bdev_io_complete*() on that same thread, either
 *    inline (from inside submit_request: the core defers the consumer's
 *    callback, so inline completion never recurses) or later.
 *  - The core only submits what io_type_supported() accepts, with ranges
 *    inside the bdev, never longer than max_transfer_blocks and never
 *    crossing optimal_io_boundary when split_on_optimal_io_boundary is set,
 *    with every iov_base aligned to buf_align and every iov_len but the
 *    last a multiple of it, and with iovecs covering at least the blocks.
 *  - io->driver_ctx holds get_ctx_size() bytes of the module's per-I/O state
 *    (the largest size of any registered module is reserved for all).
 *  - Status UST_BDEV_IO_STATUS_NOMEM means "out of a resource, try again": the
 *    core requeues the I/O and resubmits it when another I/O completes on the
 *    channel (or after a short delay if none is outstanding).
 *  - A RESET request may arrive while other I/O is still outstanding in the
 *    module; the module must complete or abort all of it (the core waits for
 *    it to drain before the reset completes and new I/O flows again).
 *  - destruct() returns 0 when done, or 1 when it will finish later by
 *    calling ust_bdev_destruct_done(). The bdev struct may be freed by the
 *    module only once destruct is done; the core does not touch it after.
 *
 * Virtual bdevs: examine_config(bdev) runs synchronously on every new bdev
 * and must call ust_bdev_module_examine_done() before returning;
 * examine_disk(bdev) runs after it and may finish later. A vbdev module
 * opens the base, claims it with ust_bdev_module_claim_bdev() and registers
 * its own bdev on top.
 */
#ifndef USTOR_BDEV_MODULE_H
#define USTOR_BDEV_MODULE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

#include <jansson.h>

#include "ustor/bdev.h"
#include "ustor/thread.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ust_bdev_priv;  /* the core's private per-bdev state */
struct bdev_channel;   /* the core's private per-channel state */

/* ---- modules ------------------------------------------------------------ */

struct ust_bdev_module {
	const char *name;
	/* Called once at bdev subsystem start, in registration order. 0 or -errno. */
	int (*module_init)(void);
	/* Called after every module's init finished. */
	void (*init_complete)(void);
	/* Called at shutdown before any bdev is unregistered. */
	void (*fini_start)(void);
	/* Called once all bdevs are gone, in reverse registration order. */
	void (*module_fini)(void);
	/* Append module-level {"method","params"} calls (not per-bdev ones). */
	void (*config_json)(json_t *calls);
	/* Bytes of io->driver_ctx this module needs (0 if unset). */
	int (*get_ctx_size)(void);
	/* See the file comment. Either may be NULL. */
	void (*examine_config)(struct ust_bdev *bdev);
	void (*examine_disk)(struct ust_bdev *bdev);
	/* module_init returns before it is done: it calls ust_bdev_module_init_done(). */
	bool async_init;
	/* module_fini returns before it is done: it calls ust_bdev_module_fini_done(). */
	bool async_fini;

	/* Private to the core. */
	struct {
		uint32_t examine_in_progress;
		bool init_done;
		TAILQ_ENTRY(ust_bdev_module) link;
	} internal;
};

void ust_bdev_module_list_add(struct ust_bdev_module *module);
struct ust_bdev_module *ust_bdev_module_find(const char *name);
void ust_bdev_module_init_done(struct ust_bdev_module *module);
void ust_bdev_module_fini_done(void);
/* One examine_config or examine_disk call of this module is finished. */
void ust_bdev_module_examine_done(struct ust_bdev_module *module);

#define UST_BDEV_MODULE_REGISTER(NAME, MODULE)                                             \
	__attribute__((constructor)) static void ust_bdev_module_register_##NAME(void)     \
	{                                                                                   \
		ust_bdev_module_list_add(MODULE);                                           \
	}

/* ---- bdevs -------------------------------------------------------------- */

struct ust_bdev_fn_table {
	/* Free the module's resources for this bdev (see the file comment). */
	int (*destruct)(void *ctxt);
	void (*submit_request)(struct ust_io_channel *ch, struct ust_bdev_io *io);
	bool (*io_type_supported)(void *ctxt, enum ust_bdev_io_type type);
	/* The calling thread's channel of the module (refcounted; the core puts it). */
	struct ust_io_channel *(*get_io_channel)(void *ctxt);
	/* Optional: add module-specific keys to the "driver_specific" object. */
	int (*dump_info_json)(void *ctxt, json_t *driver_specific);
	/* Optional: append the call that recreates this bdev (save_config). */
	void (*write_config_json)(struct ust_bdev *bdev, json_t *calls);
};

/*
 * Filled in by the module before ust_bdev_register(). Fields marked
 * "core" are set by the core; the module must not write them afterwards
 * except through the functions below.
 */
struct ust_bdev {
	void *ctxt;          /* passed to every fn_table callback */
	char *name;          /* required; the core copies it */
	char *product_name;  /* e.g. "Malloc disk"; copied */
	uint32_t blocklen;   /* bytes per block, > 0 */
	uint64_t blockcnt;   /* > 0; change with ust_bdev_notify_blockcnt_change() */
	bool write_cache;
	/* Blocks; 0 = none. With split_on_optimal_io_boundary the core splits at it. */
	uint32_t optimal_io_boundary;
	bool split_on_optimal_io_boundary;
	/* Largest read/write/compare the module accepts, in blocks; 0 = no limit. */
	uint32_t max_transfer_blocks;
	/* Largest unmap/write_zeroes, in blocks; 0 = no limit. */
	uint32_t max_unmap_blocks;
	/* Required alignment of every iov_base, in bytes (power of two); 0 or 1 = none. */
	uint32_t buf_align;
	struct ust_uuid uuid; /* all zero: the core generates one */
	/* Reserved for metadata/DIF: stored and reported only. */
	uint32_t md_len;
	bool md_interleave;
	enum ust_dif_type dif_type;

	struct ust_bdev_module *module;
	const struct ust_bdev_fn_table *fn_table;

	struct ust_bdev_priv *priv; /* core */
};

/* 0, -EINVAL (missing/invalid field), -EEXIST (name in use), -ENOMEM. */
int ust_bdev_register(struct ust_bdev *bdev);

typedef void (*ust_bdev_unregister_cb)(void *ctx, int rc);
/*
 * Remove the bdev: new opens and I/O fail with -ENODEV, I/O queued in the
 * core fails with -ENODEV, every descriptor gets UST_BDEV_EVENT_REMOVE; once
 * all are closed and every channel is gone, fn_table->destruct runs and then
 * cb (may be NULL) on the calling thread. A second unregister gets -EBUSY.
 */
void ust_bdev_unregister(struct ust_bdev *bdev, ust_bdev_unregister_cb cb, void *ctx);
/* Unregister by name if the bdev belongs to module: -ENODEV otherwise (cb not called). */
int ust_bdev_unregister_by_name(const char *name, struct ust_bdev_module *module,
				ust_bdev_unregister_cb cb, void *ctx);
/* For a destruct that returned 1. */
void ust_bdev_destruct_done(struct ust_bdev *bdev, int rc);

/*
 * The device grew or shrank: descriptors get UST_BDEV_EVENT_RESIZE.
 * Shrinking is refused with -EBUSY while any descriptor is open.
 */
int ust_bdev_notify_blockcnt_change(struct ust_bdev *bdev, uint64_t blockcnt);

/*
 * Exclusive write claim for a module (a vbdev on its base). desc, if given,
 * becomes writable. -EPERM if already claimed, or if another descriptor has
 * the bdev open for writing.
 */
int ust_bdev_module_claim_bdev(struct ust_bdev *bdev, struct ust_bdev_desc *desc,
			       struct ust_bdev_module *module);
void ust_bdev_module_release_bdev(struct ust_bdev *bdev);
/* The claiming module, or NULL. */
struct ust_bdev_module *ust_bdev_get_claim_module(const struct ust_bdev *bdev);

/* ---- I/O as modules see it ---------------------------------------------- */

enum ust_bdev_io_status {
	UST_BDEV_IO_STATUS_SUCCESS = 0,
	UST_BDEV_IO_STATUS_FAILED,     /* -EIO */
	UST_BDEV_IO_STATUS_NOMEM,      /* requeue (see the file comment) */
	UST_BDEV_IO_STATUS_MISCOMPARE, /* -EILSEQ */
	UST_BDEV_IO_STATUS_ABORTED,    /* -ECANCELED */
};

/* Number of iovecs the core keeps inside each I/O (child and bounce I/O use them). */
#define UST_BDEV_IO_NUM_INLINE_IOVS 8

typedef void (*ust_bdev_io_get_buf_cb)(struct ust_io_channel *ch, struct ust_bdev_io *io,
				       bool success);

/* Private to the core; defined here only so the size is known. */
struct ust_bdev_io_internal {
	struct bdev_channel *ch;        /* the consumer's channel: completion goes here */
	struct bdev_channel *submit_ch; /* the channel the module was given */
	ust_bdev_io_cb cb;
	void *cb_arg;
	uint64_t submit_tsc;
	int status;
	uint16_t flags;
	uint8_t state;
	STAILQ_ENTRY(ust_bdev_io) link;
	/* Split children, write_zeroes emulation, compare_and_write: */
	struct ust_bdev_io *parent;
	uint64_t child_offset;   /* next block to generate */
	uint64_t child_remaining; /* blocks not yet generated */
	uint32_t child_iov_idx;  /* position in the parent's iovecs */
	size_t child_iov_off;
	uint32_t child_outstanding;
	int child_status;
	/* Bounce and core-provided buffers: */
	void *buf;
	size_t buf_len;
	struct iovec *orig_iovs;
	int orig_iovcnt;
	struct iovec bounce_iov;
	/* compare_and_write range lock */
	STAILQ_ENTRY(ust_bdev_io) lock_link;
	ust_bdev_io_get_buf_cb get_buf_cb;
	struct ust_bdev_io_wait_entry wait;
	struct iovec inline_iovs[UST_BDEV_IO_NUM_INLINE_IOVS];
};

struct ust_bdev_io {
	struct ust_bdev *bdev;
	enum ust_bdev_io_type type;
	uint64_t offset_blocks;
	uint64_t num_blocks;
	/* Data for read/write/compare; compare_and_write: the compare data. */
	struct iovec *iovs;
	int iovcnt;
	/* compare_and_write: the data to write. */
	struct iovec *fused_iovs;
	int fused_iovcnt;
	struct ust_bdev_io_internal internal;
	uint8_t driver_ctx[] __attribute__((aligned(16)));
};

void ust_bdev_io_complete(struct ust_bdev_io *io, enum ust_bdev_io_status status);
/* 0 = success; a negative errno reaches the consumer unchanged (-ENOMEM is a failure, not a requeue). */
void ust_bdev_io_complete_errno(struct ust_bdev_io *io, int neg_errno);

/* The module channel this I/O was submitted on. */
struct ust_io_channel *ust_bdev_io_get_io_channel(struct ust_bdev_io *io);
static inline void *ust_bdev_io_get_driver_ctx(struct ust_bdev_io *io)
{
	return io->driver_ctx;
}
static inline struct ust_bdev_io *ust_bdev_io_from_ctx(void *driver_ctx)
{
	return (struct ust_bdev_io *)((uint8_t *)driver_ctx - offsetof(struct ust_bdev_io, driver_ctx));
}

/*
 * Make sure a read has a data buffer of len bytes (aligned to the bdev's
 * buf_align): when io already has one, cb runs at once; otherwise the core
 * attaches one (freed after the consumer's callback) and calls cb, with
 * success false if no memory was available.
 */
void ust_bdev_io_get_buf(struct ust_bdev_io *io, ust_bdev_io_get_buf_cb cb, uint64_t len);

#ifdef __cplusplus
}
#endif

#endif
