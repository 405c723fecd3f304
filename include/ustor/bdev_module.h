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
 * its own bdev on top; a module with one base per bdev gets all of that
 * from the ust_vbdev helpers below (bdev/passthru is the worked example).
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
	/*
	 * Called at shutdown before any bdev is unregistered: the place for a
	 * module that holds bdevs without being a bdev on them (a blobstore's
	 * claim, an open descriptor) to let go of them.
	 */
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
	/*
	 * fini_start returns before it is done: it calls
	 * ust_bdev_module_fini_start_done(), and until every such module has,
	 * the core unregisters no bdev (so a store can still write its clean
	 * state to the bdev beneath it). Bdevs this module itself registered
	 * may be unregistered by it meanwhile.
	 */
	bool async_fini_start;

	/* Private to the core. */
	struct {
		uint32_t examine_in_progress;
		bool init_done;
		bool fini_start_pending;
		TAILQ_ENTRY(ust_bdev_module) link;
	} internal;
};

void ust_bdev_module_list_add(struct ust_bdev_module *module);
struct ust_bdev_module *ust_bdev_module_find(const char *name);
void ust_bdev_module_init_done(struct ust_bdev_module *module);
void ust_bdev_module_fini_done(void);
/* An async_fini_start module's fini_start is finished (from any thread). */
void ust_bdev_module_fini_start_done(struct ust_bdev_module *module);
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
	/*
	 * Optional: ust_bdev_read_lend() and ust_bdev_write_lend() for a bdev
	 * whose blocks are in its own memory. offset and len in bytes, already
	 * checked against the size; write: the caller stores into the range.
	 * 0 and *data, or -EAGAIN (not this range now; for a write also where
	 * storing could fault, e.g. no space behind a hole). Any thread.
	 */
	int (*lend)(void *ctxt, uint64_t offset, uint64_t len, bool write, void **data);
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

/* ---- virtual bdevs on one base (bdev_vbdev.c) ----------------------------- */

/*
 * What every "one bdev on top of one base bdev" module shares, so that each
 * such module is left with only its I/O path and its own settings:
 *  - the remembered configuration "name over base_name" (ust_vbdev_create):
 *    the bdev is built now if the base exists, otherwise when a bdev of that
 *    name registers (ust_vbdev_examine_config), so configs replay in any order;
 *  - the build: the base opened and claimed (nobody else writes under us),
 *    its geometry copied, the bdev registered with the configured UUID;
 *  - per-thread channels that start with the thread's base channel;
 *  - the base going away takes the vbdev with it, a resized base resizes it;
 *  - teardown in order: our channels gone, claim released, the base
 *    descriptor closed on the thread that opened it, destruct done, freed.
 *
 * A module describes itself with one static struct ust_vbdev_class. Its
 * per-bdev struct has struct ust_vbdev as its first member (so bdev.ctxt,
 * which is the struct ust_vbdev, is also the module's struct), its config
 * struct has struct ust_vbdev_config first and its channel context struct
 * ust_vbdev_channel first; the sizes go in the class. Its fn_table uses
 * ust_vbdev_destruct and ust_vbdev_get_io_channel. Everything here except
 * the I/O helpers is control path: call it on the app thread.
 */

struct ust_vbdev_class;

struct ust_vbdev_config {
	const char *name;      /* of the vbdev; a copy owned by the config */
	const char *base_name; /* of the base; a copy owned by the config */
	struct ust_uuid uuid;  /* all zero: the core generates one at each build */

	/* Private to bdev_vbdev.c. */
	struct ust_vbdev_class *cls;
	TAILQ_ENTRY(ust_vbdev_config) link;
};

struct ust_vbdev {
	struct ust_bdev bdev; /* registered; bdev.ctxt points back here */
	struct ust_bdev_desc *base_desc;
	struct ust_vbdev_config *config; /* NULL once deleted: save_config skips it */
	struct ust_vbdev_class *cls;
	bool removing; /* delete or hot remove under way */

	/* Private to bdev_vbdev.c. */
	struct ust_thread *desc_thread; /* base_desc is closed there */
	ust_bdev_unregister_cb remove_cb;
	void *remove_ctx;
	TAILQ_ENTRY(ust_vbdev) link;
};

/* First member of every channel context of a vbdev. */
struct ust_vbdev_channel {
	struct ust_io_channel *base_ch; /* this thread's channel of the base */
};

struct ust_vbdev_class {
	struct ust_bdev_module *module;
	const struct ust_bdev_fn_table *fn_table;
	const char *product_name;
	size_t vbdev_size;   /* >= sizeof(struct ust_vbdev) */
	size_t config_size;  /* >= sizeof(struct ust_vbdev_config) */
	size_t channel_size; /* >= sizeof(struct ust_vbdev_channel) */
	/* Keep the size of the build when the base resizes (default: follow it). */
	bool fixed_size;

	/* Optional hooks. */
	/* Refuse a base this module cannot sit on (-errno), before it is opened. */
	int (*check_base)(struct ust_bdev *base);
	/*
	 * The vbdev is built from base and config but not registered: set up the
	 * module's fields, adjust the geometry. On failure undo and return -errno.
	 */
	int (*init)(struct ust_vbdev *vb, struct ust_bdev *base);
	/* Undo init (teardown or a failed registration); the helper frees the rest. */
	void (*fini)(struct ust_vbdev *vb);
	/* On the channel's thread, after base_ch is taken / before it is put. */
	int (*channel_create)(struct ust_vbdev *vb, void *ctx);
	void (*channel_destroy)(struct ust_vbdev *vb, void *ctx);
	/*
	 * Before a delete or a hot remove unregisters the bdev: complete every
	 * I/O the module holds (consumers cannot close while it is held), then
	 * call ust_vbdev_quiesce_done().
	 */
	void (*quiesce)(struct ust_vbdev *vb);
	/*
	 * At destruct: return true to hold the teardown (something still uses
	 * the base) until the module calls ust_vbdev_teardown().
	 */
	bool (*destruct)(struct ust_vbdev *vb);

	/* Private to bdev_vbdev.c. */
	struct {
		bool lists_ready;
		TAILQ_HEAD(, ust_vbdev_config) configs;
		TAILQ_HEAD(, ust_vbdev) vbdevs;
	} internal;
};

/*
 * Remember tmpl (a config_size struct: the module's fields are copied, name
 * and base_name duplicated) and build the vbdev now if the base exists.
 * -EINVAL missing or equal names, -EEXIST name configured or in use, -EPERM
 * base claimed by another module, -ENOMEM; the config is not kept on error.
 */
int ust_vbdev_create(struct ust_vbdev_class *cls, const struct ust_vbdev_config *tmpl);
/*
 * Forget the configuration and remove the bdev: cb(ctx, rc) once it is
 * gone, or at once with 0 if it was only configured (-EBUSY if a removal
 * was already under way). -EINVAL no name, -ENODEV no such config.
 */
int ust_vbdev_delete(struct ust_vbdev_class *cls, const char *name, ust_bdev_unregister_cb cb,
		     void *ctx);
/* The built vbdev of that name, or NULL. */
struct ust_vbdev *ust_vbdev_find(struct ust_vbdev_class *cls, const char *name);
/* For the module's examine_config: build what was waiting for bdev; examine done. */
void ust_vbdev_examine_config(struct ust_vbdev_class *cls, struct ust_bdev *bdev);
/* For the module's module_fini: forget every configuration. */
void ust_vbdev_class_fini(struct ust_vbdev_class *cls);

/* fn_table entries. */
int ust_vbdev_destruct(void *ctxt);
struct ust_io_channel *ust_vbdev_get_io_channel(void *ctxt);
/* Whatever the base supports. */
bool ust_vbdev_io_type_supported(void *ctxt, enum ust_bdev_io_type type);

/* A held destruct (class destruct hook returned true) may go on. */
void ust_vbdev_teardown(struct ust_vbdev *vb);
/* The quiesce hook is done: unregister. */
void ust_vbdev_quiesce_done(struct ust_vbdev *vb);

static inline struct ust_bdev *ust_vbdev_get_base(struct ust_vbdev *vb)
{
	return ust_bdev_desc_get_bdev(vb->base_desc);
}

/*
 * I/O path: submit io's equivalent (same type, range, buffers) on the base,
 * with cb(base_io, status, io) at its completion. Returns what the submit
 * returned (-ENOTSUP for a type that cannot be forwarded).
 */
int ust_vbdev_forward(struct ust_vbdev *vb, struct ust_io_channel *base_ch,
		      struct ust_bdev_io *io, ust_bdev_io_cb cb);
/*
 * Complete io whose forwarding failed with rc: -ENOMEM (the base had no
 * free I/O object) becomes NOMEM, so the core requeues io and submits it
 * again later; anything else fails io with rc.
 */
void ust_vbdev_io_submit_failed(struct ust_bdev_io *io, int rc);

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
