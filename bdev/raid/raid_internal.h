/*
 * Private to bdev/raid: the array, its members, its per-thread channel and
 * the per-I/O state, shared by the module's files.
 */
#ifndef USTOR_RAID_INTERNAL_H
#define USTOR_RAID_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "ustor/bdev.h"
#include "ustor/bdev_module.h"
#include "ustor/thread.h"

#include "bdev_raid.h"

enum raid_base_state {
	RAID_BASE_MISSING = 0, /* slot empty: not yet present, or removed */
	RAID_BASE_ONLINE,      /* readable and written */
	RAID_BASE_REBUILDING,  /* written, not readable until the rebuild ends */
	RAID_BASE_DETACHING,   /* failed or removed: channels being released */
};

struct raid_bdev;

struct raid_base {
	struct raid_bdev *raid;
	uint32_t slot;
	char *name;
	struct ust_bdev *bdev;
	struct ust_bdev_desc *desc;
	enum raid_base_state state;
};

struct raid_rebuild;

struct raid_bdev {
	struct ust_bdev bdev;
	char *name;
	enum ust_raid_level level;
	enum ust_raid_state state;
	uint32_t strip_size_kb;
	uint32_t strip_blocks;
	uint32_t strip_shift;
	uint32_t num_slots;
	struct raid_base bases[UST_RAID_MAX_BASES];
	bool registered;
	bool deleting;
	bool destruct_pending; /* destruct waits for the rebuild to stop */
	uint32_t detaching;    /* member detaches in progress */
	struct raid_rebuild *rebuild;
	/* Window the rebuild is copying: writes overlapping it wait (see raid_io.c). */
	uint64_t lock_start;
	uint64_t lock_end;
	bool lock_active;
	ust_bdev_unregister_cb delete_cb;
	void *delete_ctx;
	TAILQ_ENTRY(raid_bdev) link;
};

TAILQ_HEAD(raid_io_list, raid_io);

struct raid_channel {
	struct raid_bdev *raid;
	struct ust_io_channel *base_ch[UST_RAID_MAX_BASES];
	uint32_t outstanding[UST_RAID_MAX_BASES];
	bool readable[UST_RAID_MAX_BASES];
	bool writable[UST_RAID_MAX_BASES];
	uint32_t rr; /* raid1: round-robin cursor among equally loaded members */
	/* Releasing a member: wait for its I/O on this channel to drain. */
	struct ust_io_channel_iter *detach_iter[UST_RAID_MAX_BASES];
	/* Rebuild lock. */
	bool lock_active;
	uint64_t lock_start;
	uint64_t lock_end;
	uint32_t lock_waiting; /* in-flight writes overlapping the window */
	struct ust_io_channel_iter *lock_iter;
	struct raid_io_list inflight_writes;
	struct raid_io_list queued_writes;
};

/* io->driver_ctx */
struct raid_io {
	struct raid_channel *rch;
	uint32_t next;       /* next member to submit to */
	uint32_t remaining;  /* children in flight, plus one while submitting */
	uint32_t succeeded;
	int status;
	uint32_t read_slot;
	uint32_t tried;      /* raid1 reads: bit per member already tried */
	bool in_flight_list;
	bool overlaps_lock;
	TAILQ_ENTRY(raid_io) link;
	struct ust_bdev_io_wait_entry wait;
};

extern struct ust_bdev_module g_raid_module;
extern const struct ust_bdev_fn_table g_raid_fn_table;

/* bdev_raid.c */
struct raid_bdev *raid_find(const char *name);
struct raid_bdev *raid_find_by_base(const char *base_name, uint32_t *slot);
int raid_channel_create(void *io_device, void *ctx_buf);
void raid_channel_destroy(void *io_device, void *ctx_buf);
/* From any thread: a write to this member failed; detach it (raid1). */
void raid_base_failed(struct raid_bdev *raid, uint32_t slot);
uint32_t raid_slot_of(const struct raid_bdev *raid, const struct ust_bdev *base);
void raid_get_info(struct raid_bdev *raid, struct ust_raid_info *info);
/* The array as bdev_raid_get_bdevs reports it. */
json_t *raid_info_json(struct raid_bdev *raid);
/* Called by the rebuild when it has finished (raid->rebuild already cleared). */
void raid_member_rebuilt(struct raid_bdev *raid, uint32_t slot);
/* Every array, for the RPCs. */
struct raid_bdev *raid_first(void);
struct raid_bdev *raid_next(struct raid_bdev *raid);

/* raid_rpc.c: names as the RPCs and save_config spell them. */
const char *raid_level_name(enum ust_raid_level level);
const char *raid_state_name(enum ust_raid_state state);

/* raid_io.c */
void raid_submit_request(struct ust_io_channel *ch, struct ust_bdev_io *io);
bool raid_io_type_supported(void *ctxt, enum ust_bdev_io_type type);
/* A member's last I/O on this channel completed: continue its detach walk. */
void raid_channel_base_idle(struct raid_channel *rch, uint32_t slot);
/* Raid0 mapping, exposed for unit tests: member and member offset of a block. */
void raid0_map_block(const struct raid_bdev *raid, uint64_t block, uint32_t *member,
		     uint64_t *member_block);
/* Rebuild lock on the calling thread's channel (for_each_channel steps). */
void raid_channel_lock(struct ust_io_channel_iter *i);
void raid_channel_unlock(struct ust_io_channel_iter *i);

/* raid_rebuild.c */
int raid_rebuild_start(struct raid_bdev *raid, uint32_t target_slot);
/* Stop the rebuild; done(ctx) runs on the app thread once it has released everything. */
void raid_rebuild_abort(struct raid_bdev *raid, void (*done)(void *ctx), void *ctx);
bool raid_rebuild_uses_slot(const struct raid_bdev *raid, uint32_t slot);
uint64_t raid_rebuild_progress(const struct raid_bdev *raid);

#endif
