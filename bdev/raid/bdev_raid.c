/*
 * The raid bdev module: arrays, their members and their life cycle.
 *
 * An array is created with a list of base bdev names. Each base is opened,
 * claimed and becomes a member; the array registers once every member is
 * present (bases that do not exist yet are picked up by examine as they
 * appear). Members leave when they fail (a raid1 write error), when they
 * are hot-removed, or on request: a raid1 array then runs degraded, a raid0
 * array goes offline (unregisters). A raid1 member can be added at run time
 * and is rebuilt in the background (raid_rebuild.c).
 *
 * Threading: every membership change runs on the app thread. Each I/O
 * thread's channel keeps its own view of which members are readable and
 * writable; a change is pushed to every channel with ust_for_each_channel,
 * and a member's descriptor is closed only after every channel has let go
 * of it and its I/O has drained. So no I/O ever reaches a closed member.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/bdev.h"
#include "ustor/bdev_module.h"
#include "ustor/log.h"
#include "ustor/thread.h"

#include "raid_internal.h"

static TAILQ_HEAD(, raid_bdev) g_raids = TAILQ_HEAD_INITIALIZER(g_raids);

static int raid_module_init(void);
static void raid_module_fini(void);
static int raid_get_ctx_size(void);
static void raid_examine_config(struct ust_bdev *bdev);

struct ust_bdev_module g_raid_module = {
	.name = "raid",
	.module_init = raid_module_init,
	.module_fini = raid_module_fini,
	.get_ctx_size = raid_get_ctx_size,
	.examine_config = raid_examine_config,
};
UST_BDEV_MODULE_REGISTER(raid, &g_raid_module)

static int raid_module_init(void)
{
	return 0;
}

/* ust_bdev_finish unregistered every array already; only configuring ones remain. */
static void raid_free(struct raid_bdev *raid);
static void raid_base_close(struct raid_base *base);

static void raid_module_fini(void)
{
	struct raid_bdev *raid;
	uint32_t i;

	while ((raid = TAILQ_FIRST(&g_raids)) != NULL) {
		TAILQ_REMOVE(&g_raids, raid, link);
		for (i = 0; i < raid->num_slots; i++) {
			raid_base_close(&raid->bases[i]);
		}
		raid_free(raid);
	}
}

static int raid_get_ctx_size(void)
{
	return (int)sizeof(struct raid_io);
}

/* ---- lookup ------------------------------------------------------------- */

struct raid_bdev *raid_find(const char *name)
{
	struct raid_bdev *raid;

	TAILQ_FOREACH(raid, &g_raids, link) {
		if (strcmp(raid->name, name) == 0) {
			return raid;
		}
	}
	return NULL;
}

struct raid_bdev *raid_first(void)
{
	return TAILQ_FIRST(&g_raids);
}

struct raid_bdev *raid_next(struct raid_bdev *raid)
{
	return TAILQ_NEXT(raid, link);
}

static bool raid_is_live(const struct raid_bdev *ptr)
{
	struct raid_bdev *raid;

	TAILQ_FOREACH(raid, &g_raids, link) {
		if (raid == ptr) {
			return true;
		}
	}
	return false;
}

struct raid_bdev *raid_find_by_base(const char *base_name, uint32_t *slot)
{
	struct raid_bdev *raid;
	uint32_t i;

	TAILQ_FOREACH(raid, &g_raids, link) {
		for (i = 0; i < raid->num_slots; i++) {
			if (raid->bases[i].name != NULL && strcmp(raid->bases[i].name, base_name) == 0) {
				*slot = i;
				return raid;
			}
		}
	}
	return NULL;
}

uint32_t raid_slot_of(const struct raid_bdev *raid, const struct ust_bdev *base)
{
	uint32_t i;

	for (i = 0; i < raid->num_slots; i++) {
		if (raid->bases[i].bdev == base) {
			return i;
		}
	}
	return UINT32_MAX;
}

void raid_get_info(struct raid_bdev *raid, struct ust_raid_info *info)
{
	uint32_t i;

	memset(info, 0, sizeof(*info));
	info->level = raid->level;
	info->state = raid->state;
	info->num_slots = raid->num_slots;
	for (i = 0; i < raid->num_slots; i++) {
		if (raid->bases[i].state == RAID_BASE_ONLINE) {
			info->num_online++;
		}
		if (raid->bases[i].state == RAID_BASE_ONLINE ||
		    raid->bases[i].state == RAID_BASE_REBUILDING) {
			info->num_discovered++;
		}
	}
	info->rebuilding = raid->rebuild != NULL;
	info->rebuild_done_blocks = raid_rebuild_progress(raid);
}

int ust_bdev_raid_get_info(const char *name, struct ust_raid_info *info)
{
	struct raid_bdev *raid = raid_find(name);

	if (raid == NULL) {
		return -ENODEV;
	}
	raid_get_info(raid, info);
	return 0;
}

/* ---- members ------------------------------------------------------------ */

static void raid_base_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx);

/* Open and claim the member's bdev. */
static int raid_base_open(struct raid_base *base)
{
	int rc;

	rc = ust_bdev_open_ext(base->name, false, raid_base_event, base, &base->desc);
	if (rc != 0) {
		base->desc = NULL;
		return rc;
	}
	base->bdev = ust_bdev_desc_get_bdev(base->desc);
	rc = ust_bdev_module_claim_bdev(base->bdev, base->desc, &g_raid_module);
	if (rc != 0) {
		UST_ERRLOG("raid %s: cannot claim base bdev %s: %s\n", base->raid->name, base->name,
			   strerror(-rc));
		ust_bdev_close(base->desc);
		base->desc = NULL;
		base->bdev = NULL;
		return rc;
	}
	return 0;
}

static void raid_base_close(struct raid_base *base)
{
	if (base->desc != NULL) {
		ust_bdev_module_release_bdev(base->bdev);
		ust_bdev_close(base->desc);
	}
	base->desc = NULL;
	base->bdev = NULL;
	base->state = RAID_BASE_MISSING;
}

static void raid_base_forget(struct raid_base *base)
{
	raid_base_close(base);
	free(base->name);
	base->name = NULL;
}

static void raid_free(struct raid_bdev *raid)
{
	uint32_t i;

	for (i = 0; i < raid->num_slots; i++) {
		free(raid->bases[i].name);
	}
	free(raid->name);
	free(raid);
}

/* ---- channels ----------------------------------------------------------- */

int raid_channel_create(void *io_device, void *ctx_buf)
{
	struct raid_bdev *raid = io_device;
	struct raid_channel *rch = ctx_buf;
	struct raid_base *base;
	uint32_t i;

	memset(rch, 0, sizeof(*rch));
	rch->raid = raid;
	TAILQ_INIT(&rch->inflight_writes);
	TAILQ_INIT(&rch->queued_writes);
	for (i = 0; i < raid->num_slots; i++) {
		base = &raid->bases[i];
		if (base->state != RAID_BASE_ONLINE && base->state != RAID_BASE_REBUILDING) {
			continue;
		}
		rch->base_ch[i] = ust_bdev_get_io_channel(base->desc);
		if (rch->base_ch[i] == NULL) {
			UST_ERRLOG("raid %s: no I/O channel for base bdev %s\n", raid->name,
				   base->name);
			raid_channel_destroy(io_device, ctx_buf);
			return -ENOMEM;
		}
		rch->writable[i] = true;
		rch->readable[i] = base->state == RAID_BASE_ONLINE;
	}
	if (raid->lock_active) {
		rch->lock_active = true;
		rch->lock_start = raid->lock_start;
		rch->lock_end = raid->lock_end;
	}
	return 0;
}

void raid_channel_destroy(void *io_device, void *ctx_buf)
{
	struct raid_channel *rch = ctx_buf;
	uint32_t i;

	for (i = 0; i < UST_RAID_MAX_BASES; i++) {
		if (rch->base_ch[i] != NULL) {
			ust_put_io_channel(rch->base_ch[i]);
			rch->base_ch[i] = NULL;
		}
	}
}

/* ---- destruct and delete ------------------------------------------------ */

static void raid_device_gone(void *io_device)
{
	struct raid_bdev *raid = io_device;
	uint32_t i;

	for (i = 0; i < raid->num_slots; i++) {
		raid_base_close(&raid->bases[i]);
	}
	ust_bdev_destruct_done(&raid->bdev, 0);
	raid_free(raid);
}

static void raid_destruct_continue(void *ctx)
{
	struct raid_bdev *raid = ctx;

	ust_io_device_unregister(raid, raid_device_gone);
}

static int raid_destruct(void *ctxt)
{
	struct raid_bdev *raid = ctxt;

	TAILQ_REMOVE(&g_raids, raid, link);
	raid->state = UST_RAID_OFFLINE;
	if (raid->rebuild != NULL) {
		raid_rebuild_abort(raid, raid_destruct_continue, raid);
	} else {
		raid_destruct_continue(raid);
	}
	return 1;
}

static void raid_go_offline(struct raid_bdev *raid, ust_bdev_unregister_cb cb, void *ctx)
{
	if (raid->state == UST_RAID_OFFLINE) {
		if (cb != NULL) {
			cb(ctx, 0);
		}
		return;
	}
	raid->state = UST_RAID_OFFLINE;
	UST_NOTICELOG("raid %s goes offline\n", raid->name);
	ust_bdev_unregister(&raid->bdev, cb, ctx);
}

int ust_bdev_raid_delete(const char *name, ust_bdev_unregister_cb cb, void *ctx)
{
	struct raid_bdev *raid = raid_find(name);
	uint32_t i;

	if (raid == NULL || raid->deleting) {
		return -ENODEV;
	}
	raid->deleting = true;
	if (raid->registered) {
		if (raid->state == UST_RAID_OFFLINE) {
			return -EBUSY; /* already going away */
		}
		raid->state = UST_RAID_OFFLINE;
		ust_bdev_unregister(&raid->bdev, cb, ctx);
		return 0;
	}
	TAILQ_REMOVE(&g_raids, raid, link);
	for (i = 0; i < raid->num_slots; i++) {
		raid_base_close(&raid->bases[i]);
	}
	raid_free(raid);
	if (cb != NULL) {
		cb(ctx, 0);
	}
	return 0;
}

/* ---- detaching a member ------------------------------------------------- */

struct raid_detach {
	struct raid_bdev *raid;
	uint32_t slot;
	void (*cb)(void *ctx, int rc);
	void *ctx;
};

static void raid_detach_channel(struct ust_io_channel_iter *i)
{
	struct raid_detach *det = ust_io_channel_iter_get_ctx(i);
	struct raid_channel *rch = ust_io_channel_get_ctx(ust_io_channel_iter_get_channel(i));
	uint32_t slot = det->slot;

	rch->readable[slot] = false;
	rch->writable[slot] = false;
	if (rch->outstanding[slot] > 0) {
		rch->detach_iter[slot] = i; /* raid_channel_base_idle continues */
		return;
	}
	if (rch->base_ch[slot] != NULL) {
		ust_put_io_channel(rch->base_ch[slot]);
		rch->base_ch[slot] = NULL;
	}
	ust_for_each_channel_continue(i, 0);
}

void raid_channel_base_idle(struct raid_channel *rch, uint32_t slot)
{
	struct ust_io_channel_iter *i = rch->detach_iter[slot];

	if (i == NULL) {
		return;
	}
	rch->detach_iter[slot] = NULL;
	ust_put_io_channel(rch->base_ch[slot]);
	rch->base_ch[slot] = NULL;
	ust_for_each_channel_continue(i, 0);
}

static bool raid_has_readable(const struct raid_bdev *raid)
{
	uint32_t i;

	for (i = 0; i < raid->num_slots; i++) {
		if (raid->bases[i].state == RAID_BASE_ONLINE) {
			return true;
		}
	}
	return false;
}

static void raid_restart_rebuild(struct raid_bdev *raid)
{
	uint32_t i;

	if (raid->rebuild != NULL || raid->state != UST_RAID_ONLINE || !raid_has_readable(raid)) {
		return;
	}
	for (i = 0; i < raid->num_slots; i++) {
		if (raid->bases[i].state == RAID_BASE_REBUILDING) {
			raid_rebuild_start(raid, i);
			return;
		}
	}
}

static void raid_detach_done(struct ust_io_channel_iter *i, int status)
{
	struct raid_detach *det = ust_io_channel_iter_get_ctx(i);
	struct raid_bdev *raid = det->raid;

	UST_NOTICELOG("raid %s: member %s (slot %u) released\n", raid->name,
		      raid->bases[det->slot].name, det->slot);
	raid_base_forget(&raid->bases[det->slot]);
	raid->detaching--;
	if (!raid_has_readable(raid)) {
		UST_ERRLOG("raid %s: no readable member left\n", raid->name);
		raid_go_offline(raid, NULL, NULL);
	} else if (raid->state == UST_RAID_ONLINE) {
		UST_WARNLOG("raid %s runs degraded\n", raid->name);
		raid_restart_rebuild(raid);
	}
	if (det->cb != NULL) {
		det->cb(det->ctx, 0);
	}
	free(det);
}

static void raid_detach_walk(void *ctx)
{
	struct raid_detach *det = ctx;

	ust_for_each_channel(det->raid, raid_detach_channel, det, raid_detach_done);
}

/*
 * Take a member out of a registered raid1 array: stop a rebuild that uses
 * it, release it on every channel once its I/O drained, then close it.
 */
static void raid1_detach(struct raid_bdev *raid, uint32_t slot, void (*cb)(void *ctx, int rc),
			 void *ctx)
{
	struct raid_detach *det = calloc(1, sizeof(*det));

	if (det == NULL) {
		UST_ERRLOG("raid %s: out of memory detaching member %u\n", raid->name, slot);
		if (cb != NULL) {
			cb(ctx, -ENOMEM);
		}
		return;
	}
	det->raid = raid;
	det->slot = slot;
	det->cb = cb;
	det->ctx = ctx;
	raid->bases[slot].state = RAID_BASE_DETACHING;
	raid->detaching++;
	if (raid->rebuild != NULL && raid_rebuild_uses_slot(raid, slot)) {
		raid_rebuild_abort(raid, raid_detach_walk, det);
	} else {
		raid_detach_walk(det);
	}
}

/* Why a member leaves does not matter: the same path for failure, removal, request. */
static void raid_base_detach(struct raid_bdev *raid, uint32_t slot, void (*cb)(void *ctx, int rc),
			     void *ctx)
{
	struct raid_base *base = &raid->bases[slot];

	if (base->state == RAID_BASE_MISSING || base->state == RAID_BASE_DETACHING) {
		if (cb != NULL) {
			cb(ctx, base->state == RAID_BASE_MISSING ? -ENODEV : -EBUSY);
		}
		return;
	}
	if (!raid->registered) {
		raid_base_close(base);
		if (cb != NULL) {
			cb(ctx, 0);
		}
		return;
	}
	if (raid->level == UST_RAID0) {
		/* A stripe set without a member has holes: take the whole array down. */
		raid_go_offline(raid, cb, ctx);
		return;
	}
	raid1_detach(raid, slot, cb, ctx);
}

static void raid_base_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	struct raid_base *base = ctx;
	struct raid_bdev *raid = base->raid;

	if (type != UST_BDEV_EVENT_REMOVE) {
		return;
	}
	UST_WARNLOG("raid %s: base bdev %s was removed\n", raid->name, base->name);
	if (!raid->registered) {
		raid_base_close(base); /* the array keeps waiting for it */
		return;
	}
	raid_base_detach(raid, base->slot, NULL, NULL);
}

struct raid_fail_msg {
	struct raid_bdev *raid;
	uint32_t slot;
	struct ust_bdev *bdev;
};

static void raid_base_failed_on_app(void *arg)
{
	struct raid_fail_msg *m = arg;
	struct raid_bdev *raid = m->raid;

	if (raid_is_live(raid) && raid->state == UST_RAID_ONLINE &&
	    raid->bases[m->slot].bdev == m->bdev &&
	    (raid->bases[m->slot].state == RAID_BASE_ONLINE ||
	     raid->bases[m->slot].state == RAID_BASE_REBUILDING)) {
		UST_ERRLOG("raid %s: member %s failed a write; removing it\n", raid->name,
			   raid->bases[m->slot].name);
		raid_base_detach(raid, m->slot, NULL, NULL);
	}
	free(m);
}

void raid_base_failed(struct raid_bdev *raid, uint32_t slot)
{
	struct raid_fail_msg *m = calloc(1, sizeof(*m));

	if (m == NULL) {
		UST_ERRLOG("raid %s: out of memory reporting a failed member\n", raid->name);
		return;
	}
	m->raid = raid;
	m->slot = slot;
	m->bdev = raid->bases[slot].bdev;
	if (ust_thread_send_msg(ust_thread_get_app_thread(), raid_base_failed_on_app, m) != 0) {
		UST_ERRLOG("raid %s: cannot report a failed member\n", raid->name);
		free(m);
	}
}

int ust_bdev_raid_remove_base(const char *base_name, void (*cb)(void *ctx, int rc), void *ctx)
{
	struct raid_bdev *raid;
	uint32_t slot;

	raid = raid_find_by_base(base_name, &slot);
	if (raid == NULL || raid->bases[slot].state == RAID_BASE_MISSING) {
		return -ENODEV;
	}
	if (raid->bases[slot].state == RAID_BASE_DETACHING || raid->state == UST_RAID_OFFLINE) {
		return -EBUSY;
	}
	if (!raid->registered) {
		/* Configuring: the slot is left empty and the array keeps waiting for the name. */
		raid_base_close(&raid->bases[slot]);
		cb(ctx, 0);
		return 0;
	}
	raid_base_detach(raid, slot, cb, ctx);
	return 0;
}

/* ---- registering -------------------------------------------------------- */

static uint32_t log2_u32(uint32_t v)
{
	return 31 - (uint32_t)__builtin_clz(v);
}

static int raid_compute_geometry(struct raid_bdev *raid)
{
	uint64_t min_blocks = UINT64_MAX, n;
	uint32_t blocklen = 0, align = 1, i, a;

	for (i = 0; i < raid->num_slots; i++) {
		struct ust_bdev *b = raid->bases[i].bdev;

		if (blocklen != 0 && ust_bdev_get_block_size(b) != blocklen) {
			UST_ERRLOG("raid %s: base bdevs have different block sizes (%u, %u)\n",
				   raid->name, blocklen, ust_bdev_get_block_size(b));
			return -EINVAL;
		}
		blocklen = ust_bdev_get_block_size(b);
		n = ust_bdev_get_num_blocks(b);
		min_blocks = n < min_blocks ? n : min_blocks;
		a = (uint32_t)ust_bdev_get_buf_align(b);
		align = a > align ? a : align;
	}
	raid->bdev.blocklen = blocklen;
	raid->bdev.buf_align = align;
	if (raid->level == UST_RAID1) {
		raid->bdev.blockcnt = min_blocks;
		return 0;
	}
	if ((uint64_t)raid->strip_size_kb * 1024 < blocklen) {
		UST_ERRLOG("raid %s: strip size %u KiB is smaller than the block size %u\n",
			   raid->name, raid->strip_size_kb, blocklen);
		return -EINVAL;
	}
	raid->strip_blocks = (uint32_t)((uint64_t)raid->strip_size_kb * 1024 / blocklen);
	if ((raid->strip_blocks & (raid->strip_blocks - 1)) != 0) {
		UST_ERRLOG("raid %s: strip of %u blocks is not a power of two\n", raid->name,
			   raid->strip_blocks);
		return -EINVAL;
	}
	raid->strip_shift = log2_u32(raid->strip_blocks);
	n = (min_blocks >> raid->strip_shift) << raid->strip_shift;
	if (n == 0) {
		UST_ERRLOG("raid %s: base bdevs are smaller than one strip\n", raid->name);
		return -EINVAL;
	}
	raid->bdev.blockcnt = n * raid->num_slots;
	raid->bdev.optimal_io_boundary = raid->strip_blocks;
	raid->bdev.split_on_optimal_io_boundary = true;
	return 0;
}

static int raid_register(struct raid_bdev *raid)
{
	uint32_t i;
	int rc;

	rc = raid_compute_geometry(raid);
	if (rc != 0) {
		return rc;
	}
	raid->bdev.name = raid->name;
	raid->bdev.product_name = "Raid Volume";
	raid->bdev.ctxt = raid;
	raid->bdev.module = &g_raid_module;
	raid->bdev.fn_table = &g_raid_fn_table;
	for (i = 0; i < raid->num_slots; i++) {
		raid->bases[i].state = RAID_BASE_ONLINE;
		raid->bdev.write_cache |= ust_bdev_has_write_cache(raid->bases[i].bdev);
	}
	ust_io_device_register(raid, raid_channel_create, raid_channel_destroy,
			       sizeof(struct raid_channel), raid->name);
	raid->state = UST_RAID_ONLINE;
	raid->registered = true;
	rc = ust_bdev_register(&raid->bdev);
	if (rc != 0) {
		UST_ERRLOG("raid %s: cannot register: %s\n", raid->name, strerror(-rc));
		raid->registered = false;
		raid->state = UST_RAID_CONFIGURING;
		ust_io_device_unregister(raid, NULL);
		for (i = 0; i < raid->num_slots; i++) {
			raid->bases[i].state = RAID_BASE_MISSING;
		}
		return rc;
	}
	UST_NOTICELOG("raid %s online: raid%d, %u members, %llu blocks of %u bytes\n", raid->name,
		      raid->level, raid->num_slots, (unsigned long long)raid->bdev.blockcnt,
		      raid->bdev.blocklen);
	return 0;
}

static bool raid_all_present(const struct raid_bdev *raid)
{
	uint32_t i;

	for (i = 0; i < raid->num_slots; i++) {
		if (raid->bases[i].desc == NULL) {
			return false;
		}
	}
	return true;
}

/* A new bdev may be a member some configuring array waits for. */
static void raid_examine_config(struct ust_bdev *bdev)
{
	struct raid_bdev *raid;
	uint32_t slot;
	int rc;

	raid = raid_find_by_base(ust_bdev_get_name(bdev), &slot);
	if (raid != NULL && !raid->registered && !raid->deleting &&
	    raid->bases[slot].desc == NULL) {
		rc = raid_base_open(&raid->bases[slot]);
		if (rc == 0 && raid_all_present(raid)) {
			raid_register(raid);
		}
	}
	ust_bdev_module_examine_done(&g_raid_module);
}

/* ---- create ------------------------------------------------------------- */

static int raid_check_opts(const struct ust_raid_opts *opts)
{
	uint32_t i, j;

	if (opts->name == NULL || opts->name[0] == '\0') {
		UST_ERRLOG("raid: a name is required\n");
		return -EINVAL;
	}
	if (opts->level != UST_RAID0 && opts->level != UST_RAID1) {
		UST_ERRLOG("raid %s: unsupported raid level %d\n", opts->name, opts->level);
		return -EINVAL;
	}
	if (opts->num_bases == 0 || opts->num_bases > UST_RAID_MAX_BASES) {
		UST_ERRLOG("raid %s: %u base bdevs (expected 1..%d)\n", opts->name, opts->num_bases,
			   UST_RAID_MAX_BASES);
		return -EINVAL;
	}
	if (opts->level == UST_RAID0 &&
	    (opts->strip_size_kb == 0 || (opts->strip_size_kb & (opts->strip_size_kb - 1)) != 0)) {
		UST_ERRLOG("raid %s: strip_size_kb %u is not a power of two\n", opts->name,
			   opts->strip_size_kb);
		return -EINVAL;
	}
	for (i = 0; i < opts->num_bases; i++) {
		if (opts->base_names[i] == NULL || opts->base_names[i][0] == '\0') {
			UST_ERRLOG("raid %s: empty base bdev name\n", opts->name);
			return -EINVAL;
		}
		for (j = 0; j < i; j++) {
			if (strcmp(opts->base_names[i], opts->base_names[j]) == 0) {
				UST_ERRLOG("raid %s: base bdev %s listed twice\n", opts->name,
					   opts->base_names[i]);
				return -EINVAL;
			}
		}
		if (raid_find_by_base(opts->base_names[i], &j) != NULL) {
			UST_ERRLOG("raid %s: base bdev %s already belongs to an array\n", opts->name,
				   opts->base_names[i]);
			return -EPERM;
		}
	}
	if (raid_find(opts->name) != NULL || ust_bdev_get_by_name(opts->name) != NULL) {
		UST_ERRLOG("raid %s: the name is taken\n", opts->name);
		return -EEXIST;
	}
	return 0;
}

static struct raid_bdev *raid_alloc(const struct ust_raid_opts *opts)
{
	struct raid_bdev *raid = calloc(1, sizeof(*raid));
	uint32_t i;

	if (raid == NULL) {
		return NULL;
	}
	raid->name = strdup(opts->name);
	raid->level = opts->level;
	raid->strip_size_kb = opts->level == UST_RAID0 ? opts->strip_size_kb : 0;
	raid->num_slots = opts->num_bases;
	raid->state = UST_RAID_CONFIGURING;
	raid->bdev.uuid = opts->uuid;
	if (ust_uuid_is_null(&raid->bdev.uuid)) {
		ust_uuid_generate(&raid->bdev.uuid);
	}
	for (i = 0; i < opts->num_bases; i++) {
		raid->bases[i].raid = raid;
		raid->bases[i].slot = i;
		raid->bases[i].name = strdup(opts->base_names[i]);
		if (raid->bases[i].name == NULL) {
			raid_free(raid);
			return NULL;
		}
	}
	if (raid->name == NULL) {
		raid_free(raid);
		return NULL;
	}
	return raid;
}

int ust_bdev_raid_create(const struct ust_raid_opts *opts)
{
	struct raid_bdev *raid;
	uint32_t i;
	int rc;

	rc = raid_check_opts(opts);
	if (rc != 0) {
		return rc;
	}
	raid = raid_alloc(opts);
	if (raid == NULL) {
		return -ENOMEM;
	}
	for (i = 0; i < raid->num_slots; i++) {
		if (ust_bdev_get_by_name(raid->bases[i].name) == NULL) {
			continue; /* examine picks it up when it appears */
		}
		rc = raid_base_open(&raid->bases[i]);
		if (rc != 0) {
			goto fail;
		}
	}
	if (raid_all_present(raid)) {
		rc = raid_register(raid);
		if (rc != 0) {
			goto fail;
		}
	} else {
		UST_NOTICELOG("raid %s: waiting for its base bdevs (configuring)\n", raid->name);
	}
	TAILQ_INSERT_TAIL(&g_raids, raid, link);
	return 0;
fail:
	for (i = 0; i < raid->num_slots; i++) {
		raid_base_close(&raid->bases[i]);
	}
	raid_free(raid);
	return rc;
}

/* ---- adding a raid1 member ---------------------------------------------- */

struct raid_attach {
	struct raid_bdev *raid;
	uint32_t slot;
	void (*cb)(void *ctx, int rc);
	void *ctx;
};

static void raid_attach_channel(struct ust_io_channel_iter *i)
{
	struct raid_attach *att = ust_io_channel_iter_get_ctx(i);
	struct raid_channel *rch = ust_io_channel_get_ctx(ust_io_channel_iter_get_channel(i));
	struct raid_base *base = &att->raid->bases[att->slot];

	if (rch->base_ch[att->slot] == NULL) {
		rch->base_ch[att->slot] = ust_bdev_get_io_channel(base->desc);
		if (rch->base_ch[att->slot] == NULL) {
			ust_for_each_channel_continue(i, -ENOMEM);
			return;
		}
	}
	rch->writable[att->slot] = true;
	rch->readable[att->slot] = false;
	ust_for_each_channel_continue(i, 0);
}

static void raid_attach_failed_detached(void *ctx, int rc)
{
	struct raid_attach *att = ctx;

	att->cb(att->ctx, -ENOMEM);
	free(att);
}

static void raid_attach_done(struct ust_io_channel_iter *i, int status)
{
	struct raid_attach *att = ust_io_channel_iter_get_ctx(i);
	struct raid_bdev *raid = att->raid;
	int rc;

	if (status != 0) {
		/* Some channels took it: release it everywhere the normal way. */
		raid1_detach(raid, att->slot, raid_attach_failed_detached, att);
		return;
	}
	UST_NOTICELOG("raid %s: member %s added in slot %u; rebuilding\n", raid->name,
		      raid->bases[att->slot].name, att->slot);
	rc = 0;
	if (raid->rebuild == NULL) {
		rc = raid_rebuild_start(raid, att->slot);
	}
	att->cb(att->ctx, rc);
	free(att);
}

static int raid_check_new_member(struct raid_bdev *raid, struct ust_bdev *bdev)
{
	if (ust_bdev_get_block_size(bdev) != raid->bdev.blocklen) {
		UST_ERRLOG("raid %s: %s has %u-byte blocks, the array %u\n", raid->name,
			   ust_bdev_get_name(bdev), ust_bdev_get_block_size(bdev),
			   raid->bdev.blocklen);
		return -EINVAL;
	}
	if (ust_bdev_get_num_blocks(bdev) < raid->bdev.blockcnt) {
		UST_ERRLOG("raid %s: %s has %llu blocks, the array needs %llu\n", raid->name,
			   ust_bdev_get_name(bdev),
			   (unsigned long long)ust_bdev_get_num_blocks(bdev),
			   (unsigned long long)raid->bdev.blockcnt);
		return -EINVAL;
	}
	return 0;
}

static int raid_free_slot(struct raid_bdev *raid, uint32_t *slot)
{
	uint32_t i;

	for (i = 0; i < raid->num_slots; i++) {
		if (raid->bases[i].state == RAID_BASE_MISSING && raid->bases[i].name == NULL) {
			*slot = i;
			return 0;
		}
	}
	if (raid->num_slots == UST_RAID_MAX_BASES) {
		return -ENOSPC;
	}
	*slot = raid->num_slots;
	return 0;
}

int ust_bdev_raid_add_base(const char *raid_name, const char *base_name,
			   void (*cb)(void *ctx, int rc), void *ctx)
{
	struct raid_bdev *raid = raid_find(raid_name);
	struct ust_bdev *bdev = ust_bdev_get_by_name(base_name);
	struct raid_attach *att;
	struct raid_base *base;
	uint32_t slot;
	int rc;

	if (raid == NULL || bdev == NULL) {
		return -ENODEV;
	}
	if (raid->level != UST_RAID1) {
		UST_ERRLOG("raid %s: only raid1 arrays take new members\n", raid->name);
		return -ENOTSUP;
	}
	if (!raid->registered || raid->state != UST_RAID_ONLINE || raid->deleting) {
		return -EBUSY;
	}
	if (raid_find_by_base(base_name, &slot) != NULL) {
		return -EPERM;
	}
	rc = raid_check_new_member(raid, bdev);
	if (rc == 0) {
		rc = raid_free_slot(raid, &slot);
	}
	if (rc != 0) {
		return rc;
	}
	att = calloc(1, sizeof(*att));
	if (att == NULL) {
		return -ENOMEM;
	}
	base = &raid->bases[slot];
	memset(base, 0, sizeof(*base));
	base->raid = raid;
	base->slot = slot;
	base->name = strdup(base_name);
	rc = base->name == NULL ? -ENOMEM : raid_base_open(base);
	if (rc != 0) {
		free(base->name);
		base->name = NULL;
		free(att);
		return rc;
	}
	if (slot == raid->num_slots) {
		raid->num_slots++;
	}
	/* Written from now on, readable once rebuilt. */
	base->state = RAID_BASE_REBUILDING;
	att->raid = raid;
	att->slot = slot;
	att->cb = cb;
	att->ctx = ctx;
	ust_for_each_channel(raid, raid_attach_channel, att, raid_attach_done);
	return 0;
}

/* ---- bdev callbacks ----------------------------------------------------- */

static struct ust_io_channel *raid_get_io_channel(void *ctxt)
{
	return ust_get_io_channel(ctxt);
}

static const char *raid_base_state_name(enum raid_base_state state)
{
	switch (state) {
	case RAID_BASE_ONLINE:
		return "online";
	case RAID_BASE_REBUILDING:
		return "rebuilding";
	case RAID_BASE_DETACHING:
		return "removing";
	default:
		return "missing";
	}
}

json_t *raid_info_json(struct raid_bdev *raid)
{
	struct ust_raid_info info;
	char uuid[UST_UUID_STRING_LEN];
	json_t *obj, *bases;
	uint32_t i;

	raid_get_info(raid, &info);
	ust_uuid_fmt(uuid, sizeof(uuid), &raid->bdev.uuid);
	bases = json_array();
	for (i = 0; i < raid->num_slots; i++) {
		struct raid_base *b = &raid->bases[i];

		json_array_append_new(bases, json_pack("{s:s?, s:b, s:s}", "name", b->name,
						       "is_configured",
						       b->state == RAID_BASE_ONLINE ||
						       b->state == RAID_BASE_REBUILDING,
						       "state", raid_base_state_name(b->state)));
	}
	obj = json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:I, s:I, s:o}", "name", raid->name,
			"uuid", uuid, "strip_size_kb", (json_int_t)raid->strip_size_kb, "state",
			raid_state_name(raid->state), "raid_level", raid_level_name(raid->level),
			"num_base_bdevs", (json_int_t)raid->num_slots,
			"num_base_bdevs_discovered", (json_int_t)info.num_discovered,
			"num_base_bdevs_operational", (json_int_t)info.num_online,
			"base_bdevs_list", bases);
	if (obj != NULL && raid->rebuild != NULL) {
		json_object_set_new(obj, "process",
				    json_pack("{s:s, s:I, s:I}", "type", "rebuild", "blocks_done",
					      (json_int_t)info.rebuild_done_blocks, "blocks_total",
					      (json_int_t)raid->bdev.blockcnt));
	}
	return obj;
}

static int raid_dump_info_json(void *ctxt, json_t *driver_specific)
{
	json_t *info = raid_info_json(ctxt);

	if (info == NULL) {
		return -ENOMEM;
	}
	json_object_set_new(driver_specific, "raid", info);
	return 0;
}

static void raid_write_config_json(struct ust_bdev *bdev, json_t *calls)
{
	struct raid_bdev *raid = bdev->ctxt;
	char uuid[UST_UUID_STRING_LEN];
	json_t *bases = json_array(), *params;
	uint32_t i;

	/* Members being rebuilt do not hold the data yet: a replay must not trust them. */
	for (i = 0; i < raid->num_slots; i++) {
		if (raid->bases[i].state == RAID_BASE_ONLINE) {
			json_array_append_new(bases, json_string(raid->bases[i].name));
		}
	}
	ust_uuid_fmt(uuid, sizeof(uuid), &raid->bdev.uuid);
	params = json_pack("{s:s, s:s, s:o, s:s}", "name", raid->name, "raid_level",
			   raid_level_name(raid->level), "base_bdevs", bases, "uuid", uuid);
	if (params == NULL) {
		return;
	}
	if (raid->level == UST_RAID0) {
		json_object_set_new(params, "strip_size_kb", json_integer(raid->strip_size_kb));
	}
	json_array_append_new(calls, json_pack("{s:s, s:o}", "method", "bdev_raid_create",
					       "params", params));
}

const struct ust_bdev_fn_table g_raid_fn_table = {
	.destruct = raid_destruct,
	.submit_request = raid_submit_request,
	.io_type_supported = raid_io_type_supported,
	.get_io_channel = raid_get_io_channel,
	.dump_info_json = raid_dump_info_json,
	.write_config_json = raid_write_config_json,
};

/* ---- rebuild hand-over -------------------------------------------------- */

static void raid_member_online_channel(struct ust_io_channel_iter *i)
{
	uint32_t *slot = ust_io_channel_iter_get_ctx(i);
	struct raid_channel *rch = ust_io_channel_get_ctx(ust_io_channel_iter_get_channel(i));

	if (rch->base_ch[*slot] != NULL) {
		rch->readable[*slot] = true;
	}
	ust_for_each_channel_continue(i, 0);
}

static void raid_member_online_done(struct ust_io_channel_iter *i, int status)
{
	free(ust_io_channel_iter_get_ctx(i));
}

void raid_member_rebuilt(struct raid_bdev *raid, uint32_t slot)
{
	uint32_t *arg = malloc(sizeof(*arg));

	raid->bases[slot].state = RAID_BASE_ONLINE;
	UST_NOTICELOG("raid %s: member %s rebuilt and online\n", raid->name, raid->bases[slot].name);
	if (arg == NULL) {
		UST_ERRLOG("raid %s: out of memory; member %u stays write-only\n", raid->name, slot);
		return;
	}
	*arg = slot;
	ust_for_each_channel(raid, raid_member_online_channel, arg, raid_member_online_done);
	/* Another member may be waiting for its own rebuild. */
	raid_restart_rebuild(raid);
}

