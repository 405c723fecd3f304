/*
 * ustor crash-consistency simulator (bdev module "crashsim"): a virtual
 * bdev that behaves like a disk with a volatile write cache and can show
 * what that disk would hold after a power loss at any moment of a run.
 *
 * Use: put a crashsim bdev on a RAM bdev, start recording, run the workload
 * (a blobstore, the file layer) on the crashsim bdev, then build crash
 * images for many (cut, seed) pairs and restart the consumer on each one
 * through an image bdev. bdev/crashsim/README.md states the model exactly.
 *
 * The model in one paragraph: the log is a sequence of events, the submit
 * and the completion of every write, unmap, write_zeroes and flush. "Cut c"
 * means power was lost after the first c events. A write that completed
 * successfully before the submission of a flush that completed successfully
 * before the cut is durable. Every other write submitted before the cut is
 * pending: it may have reached the media or not, independently of the
 * others, and (in REORDER mode) in any order. One pending write may be torn
 * at 512-byte sector granularity. Nothing submitted at or after the cut is
 * present. Unmap and write_zeroes are writes of zeroes.
 *
 * Threading: create, delete, start and the image functions are control
 * path (call on the app thread, or the thread the test polls). Recording
 * itself works from any number of I/O threads (one mutex orders the log).
 * Errors are negative errno.
 */
#ifndef USTOR_CRASHSIM_H
#define USTOR_CRASHSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ustor/bdev.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Torn writes keep or lose whole sectors of this size. */
#define UST_CRASHSIM_SECTOR_SIZE 512
/* complete_event of an operation that has not completed (within the log). */
#define UST_CRASHSIM_NO_EVENT UINT64_MAX

struct ust_crashsim;
struct ust_crashsim_image;

/* ---- bdevs -------------------------------------------------------------- */

/*
 * Remember "name on top of base_name" and build it now if the base exists,
 * or when a bdev of that name registers. The crashsim bdev has the base's
 * geometry and reports a volatile write cache. -EINVAL bad names or a block
 * size that is not a multiple of UST_CRASHSIM_SECTOR_SIZE, -EEXIST name in
 * use, -EPERM base claimed by another module, -ENOMEM.
 */
int ust_crashsim_create(const char *base_name, const char *name);
/*
 * Forget and unregister (cb(ctx, rc) once gone, or at once if only
 * configured). The log, the snapshot and every image's link to them go
 * with it. -ENODEV unknown name.
 */
int ust_crashsim_delete(const char *name, void (*cb)(void *ctx, int rc), void *ctx);
/* The live crashsim bdev called name; NULL if none (or not built yet). */
struct ust_crashsim *ust_crashsim_get(const char *name);
struct ust_bdev *ust_crashsim_get_bdev(struct ust_crashsim *cs);

/* ---- recording ---------------------------------------------------------- */

/*
 * Discard any previous log, read the whole base into the snapshot, then
 * record every write, unmap, write_zeroes and flush. cb(ctx, rc) runs on
 * the calling thread once recording is on (rc 0) or failed. Writes and
 * flushes submitted to the crashsim bdev while the snapshot is read fail
 * with -EBUSY, so start it on a quiet device. -EBUSY: a write or flush is
 * in flight or a start is under way (cb not called); -ENOMEM.
 */
int ust_crashsim_start(struct ust_crashsim *cs, void (*cb)(void *ctx, int rc), void *ctx);
/* Stop recording; the log and the snapshot stay for building images. */
void ust_crashsim_stop(struct ust_crashsim *cs);
bool ust_crashsim_is_recording(struct ust_crashsim *cs);
/* Events in the log: valid cuts are 0 ..= this. */
uint64_t ust_crashsim_num_events(struct ust_crashsim *cs);
/* Recorded operations (writes, unmaps, write_zeroes, flushes). */
uint64_t ust_crashsim_num_ops(struct ust_crashsim *cs);

enum ust_crashsim_event_kind {
	UST_CRASHSIM_EVENT_SUBMIT,
	UST_CRASHSIM_EVENT_COMPLETE,
};

struct ust_crashsim_event {
	enum ust_crashsim_event_kind kind;
	enum ust_bdev_io_type io_type; /* WRITE, UNMAP, WRITE_ZEROES or FLUSH */
	uint64_t op;                   /* operation number: its place in submission order */
	uint64_t offset_blocks;
	uint64_t num_blocks;
	uint64_t submit_event;   /* index of the op's submit event */
	uint64_t complete_event; /* index of its completion, UST_CRASHSIM_NO_EVENT if none yet */
	int status;              /* completion status (0 until completed) */
};

/* The event at index (0-based) of the log. -ERANGE past the end, -ENODATA no log. */
int ust_crashsim_get_event(struct ust_crashsim *cs, uint64_t index,
			   struct ust_crashsim_event *event);

/* ---- crash images ------------------------------------------------------- */

/* Which pending writes reach the media. */
enum ust_crashsim_survival {
	UST_CRASHSIM_SURVIVE_AUTO = 0, /* the seed picks one of the modes below */
	UST_CRASHSIM_SURVIVE_ALL,      /* every pending write, in submission order */
	UST_CRASHSIM_SURVIVE_NONE,     /* none: only the durable writes */
	UST_CRASHSIM_SURVIVE_SUBSET,   /* each one with probability 1/2, in submission order */
	UST_CRASHSIM_SURVIVE_REORDER,  /* a random subset, landing in a random order */
};

/* Whether one surviving pending write is torn. */
enum ust_crashsim_tear {
	UST_CRASHSIM_TEAR_AUTO = 0, /* the seed picks: none (1/2), prefix or sectors (1/4 each) */
	UST_CRASHSIM_TEAR_NONE,
	UST_CRASHSIM_TEAR_PREFIX,  /* it keeps only its first k sectors, 0 < k < all */
	UST_CRASHSIM_TEAR_SECTORS, /* it keeps a random proper, non-empty subset of its sectors */
};

struct ust_crashsim_crash_opts {
	uint64_t cut;  /* power lost after the first cut events (0 ..= num_events) */
	uint64_t seed; /* with cut, fixes every random choice */
	enum ust_crashsim_survival survival;
	enum ust_crashsim_tear tear;
};

/* What a build did: for assertions and for reporting a failing case. */
struct ust_crashsim_outcome {
	/* Writes completed before this event are durable (submit of the flush). 0: no flush. */
	uint64_t durable_before;
	uint64_t durable_writes;
	uint64_t pending_writes;  /* writes at risk */
	uint64_t survived_writes; /* of those, applied whole or torn */
	enum ust_crashsim_survival survival; /* the mode used (AUTO resolved) */
	enum ust_crashsim_tear tear;
	uint64_t torn_op;         /* operation number, UST_CRASHSIM_NO_EVENT if none was torn */
	uint32_t torn_sectors_kept;
	uint32_t torn_sectors_total;
};

/*
 * Write the device contents after the crash described by opts into buf
 * (exactly the device size: blocks * block size). Deterministic in
 * (log, opts). outcome may be NULL. -EINVAL bad opts or length, -ERANGE
 * cut past the end of the log, -ENODATA nothing recorded, -ENOMEM the log
 * lost an operation for lack of memory.
 */
int ust_crashsim_crash_to_buffer(struct ust_crashsim *cs, const struct ust_crashsim_crash_opts *opts,
				 void *buf, size_t len, struct ust_crashsim_outcome *outcome);

/*
 * An image: a device-sized buffer that remembers which blocks differ from
 * the snapshot, so building the next crash into it costs the blocks the
 * log and the last restart touched, not the device size. Meant for loops
 * over thousands of (cut, seed) pairs.
 *
 * With bdev_name, the image is also registered as a RAM bdev of the
 * crashsim's geometry (module "crashsim", product "crashsim image"): the
 * restart target. A consumer loads from it with its normal code path; its
 * writes land in the image and are undone by the next build.
 * -EINVAL, -EEXIST bdev name in use, -ENODATA nothing recorded yet, -ENOMEM.
 */
int ust_crashsim_image_create(struct ust_crashsim *cs, const char *bdev_name,
			      struct ust_crashsim_image **image);
/*
 * Make the image the device contents after the crash described by opts.
 * -EBUSY the image bdev has an I/O channel open (release channels first;
 * descriptors may stay open), -ENODEV its crashsim was deleted, and the
 * errors of ust_crashsim_crash_to_buffer.
 */
int ust_crashsim_image_build(struct ust_crashsim_image *image,
			     const struct ust_crashsim_crash_opts *opts,
			     struct ust_crashsim_outcome *outcome);
/* The contents (valid until the image is freed; do not write through it). */
const void *ust_crashsim_image_data(struct ust_crashsim_image *image, size_t *len);
/* The image's bdev, NULL without one (or once it was unregistered). */
struct ust_bdev *ust_crashsim_image_get_bdev(struct ust_crashsim_image *image);
/*
 * Unregister the image's bdev (if any) and free the image; cb(ctx) may be
 * NULL and runs once everything is gone (perhaps before this returns).
 */
void ust_crashsim_image_free(struct ust_crashsim_image *image, void (*cb)(void *ctx), void *ctx);

#ifdef __cplusplus
}
#endif

#endif
