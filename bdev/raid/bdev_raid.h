/*
 * The raid bdev module: raid0 (striping) and raid1 (mirroring) over any
 * bdevs. Private to bdev/raid and its tests; programs use the RPCs
 * (bdev_raid_create, bdev_raid_delete, bdev_raid_get_bdevs,
 * bdev_raid_remove_base_bdev, bdev_raid_add_base_bdev).
 *
 * All functions run on the app thread; callbacks run there too.
 */
#ifndef USTOR_BDEV_RAID_H
#define USTOR_BDEV_RAID_H

#include <stdbool.h>
#include <stdint.h>

#include "ustor/bdev.h"

#define UST_RAID_MAX_BASES 32

enum ust_raid_level {
	UST_RAID0 = 0,
	UST_RAID1 = 1,
};

enum ust_raid_state {
	UST_RAID_CONFIGURING, /* waiting for base bdevs to appear */
	UST_RAID_ONLINE,      /* registered and serving I/O */
	UST_RAID_OFFLINE,     /* being unregistered */
};

struct ust_raid_opts {
	const char *name;
	enum ust_raid_level level;
	const char *const *base_names;
	uint32_t num_bases;      /* 1..UST_RAID_MAX_BASES (raid1: at least 1) */
	uint32_t strip_size_kb;  /* raid0: power of two, > 0; raid1: ignored (0) */
	struct ust_uuid uuid;    /* all zero: generated */
};

/*
 * Create the array; it registers as soon as every base exists (at once, or
 * later as bases are registered: examine). -EINVAL bad options (message
 * logged), -EEXIST name taken, -EPERM a base is claimed by another module,
 * -ENOMEM.
 */
int ust_bdev_raid_create(const struct ust_raid_opts *opts);
/* -ENODEV no such array; else cb(ctx, 0) once it is gone. */
int ust_bdev_raid_delete(const char *name, ust_bdev_unregister_cb cb, void *ctx);
/*
 * Remove a member (by its bdev name): raid1 degrades, raid0 goes offline.
 * cb(ctx, 0) once the member is released. -ENODEV not a member of any array.
 */
int ust_bdev_raid_remove_base(const char *base_name, void (*cb)(void *ctx, int rc), void *ctx);
/*
 * raid1: add a member and rebuild it in the background. -ENOTSUP raid0,
 * -ENODEV no such array or base, -EINVAL block size differs or base too
 * small, -ENOSPC no free slot, -EPERM base claimed. cb(ctx, 0) once the
 * member takes writes (the rebuild then runs on); cb(ctx, -errno) on failure.
 */
int ust_bdev_raid_add_base(const char *raid_name, const char *base_name,
			   void (*cb)(void *ctx, int rc), void *ctx);

struct ust_raid_info {
	enum ust_raid_level level;
	enum ust_raid_state state;
	uint32_t num_slots;
	uint32_t num_online;     /* readable members */
	uint32_t num_discovered; /* members present (online, rebuilding) */
	bool rebuilding;
	uint64_t rebuild_done_blocks;
};

/* -ENODEV if name is not a raid array. */
int ust_bdev_raid_get_info(const char *name, struct ust_raid_info *info);

#endif
