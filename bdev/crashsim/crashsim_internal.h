/*
 * Private to bdev/crashsim: the recording vbdev (crashsim.c) and the crash
 * model with its images (crash_image.c) share these structures. Nothing
 * outside this folder includes it.
 */
#ifndef USTOR_CRASHSIM_INTERNAL_H
#define USTOR_CRASHSIM_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "ustor/bdev_module.h"
#include "ustor/crashsim.h"

/* data_off of an operation that carries no data (zeroes, flush). */
#define CRASHSIM_NO_DATA UINT64_MAX
/* Block codes hold op + 1 in 32 bits: the log stops growing below this. */
#define CRASHSIM_MAX_OPS (UINT32_MAX - 1u)
/* Block code: neither the snapshot nor one op's data (a tear, a restart's write). */
#define CRASHSIM_CODE_MIXED UINT32_MAX

/* One recorded write, unmap, write_zeroes or flush. */
struct crashsim_op {
	uint64_t offset_blocks;
	uint64_t num_blocks;
	uint64_t data_off; /* into ust_crashsim.data, or CRASHSIM_NO_DATA */
	uint64_t submit_ev;
	uint64_t complete_ev; /* UST_CRASHSIM_NO_EVENT until completed */
	int status;
	enum ust_bdev_io_type io_type;
};

struct crashsim_event {
	uint64_t op;
	enum ust_crashsim_event_kind kind;
};

enum crashsim_state {
	CRASHSIM_IDLE,      /* forwarding, not recording */
	CRASHSIM_STARTING,  /* reading the snapshot: writes are refused */
	CRASHSIM_RECORDING,
};

struct crashsim_start;

struct ust_crashsim {
	struct ust_vbdev vb; /* first: bdev.ctxt is this struct */
	uint64_t size;       /* bytes: blockcnt * blocklen, fixed at creation */

	/* Control path only. */
	struct crashsim_start *start; /* the snapshot read under way, or NULL */
	bool destruct_pending;        /* destruct waits for that read */
	TAILQ_HEAD(, ust_crashsim_image) images;

	/* Everything below is under lock (I/O threads record concurrently). */
	pthread_mutex_t lock;
	enum crashsim_state state;
	uint64_t generation; /* bumped by every start: identifies snapshot and log */
	bool log_valid;      /* a snapshot was taken: images can be built */
	bool log_overflow;   /* an operation could not be recorded */
	uint64_t inflight;   /* writes and flushes forwarded and not completed */

	uint8_t *snapshot; /* size bytes: the device when recording began */
	struct crashsim_op *ops;
	uint64_t nops, ops_cap;
	struct crashsim_event *events;
	uint64_t nevents, events_cap;
	uint8_t *data; /* write payloads, back to back */
	uint64_t data_len, data_cap;

	/* Scratch for building crash images (sized at start). */
	uint32_t *winner;  /* per block: its code at the cut being built, 0 = snapshot */
	uint32_t *touched; /* blocks with a non-zero winner */
	uint64_t *pending; /* ops at risk at the cut */
	uint64_t pending_cap;
};

/* A device-sized buffer that knows which blocks differ from a snapshot. */
struct ust_crashsim_image {
	struct ust_crashsim *cs; /* NULL once the crashsim is gone */
	uint64_t generation;     /* snapshot the dirty map is relative to; 0 none */
	uint8_t *data;
	uint64_t size;
	uint32_t blocklen;
	uint64_t nblocks;
	uint32_t *src;   /* per block: the code of what it holds (0 = snapshot's) */
	uint64_t *dirty; /* bit per block whose src is not 0: what a build must look at */
	TAILQ_ENTRY(ust_crashsim_image) link;

	/* The optional RAM bdev over data. */
	struct ust_bdev bdev;
	bool has_bdev;
	int channels; /* open channels of the bdev (atomic) */
	int refs;     /* the user's, and the bdev's while registered */
	void (*free_cb)(void *ctx);
	void *free_ctx;
};

/* Per-I/O state of both bdev kinds (io->driver_ctx). */
struct crashsim_io {
	uint64_t generation; /* 0: not recorded */
	uint64_t op;
	bool counted; /* counted in inflight */
};

extern struct ust_bdev_module g_crashsim_module;

/*
 * Build the crash of opts into dst (cs->size bytes). Without src, all of
 * dst is written. With src and dirty (an image's block codes and the
 * bitmap of blocks whose code is not 0, both describing dst correctly),
 * only blocks whose contents change are written and both are updated.
 * Caller holds cs->lock. Nothing is written when an error is returned.
 */
int crashsim_build_locked(struct ust_crashsim *cs, uint8_t *dst, uint32_t *src, uint64_t *dirty,
			  const struct ust_crashsim_crash_opts *opts,
			  struct ust_crashsim_outcome *outcome);
/* The crashsim is going away: detach its images. */
void crashsim_images_detach(struct ust_crashsim *cs);

#endif
