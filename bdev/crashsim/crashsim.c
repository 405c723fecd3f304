/*
 * The "crashsim" bdev module, recording half: a virtual bdev that forwards
 * every I/O to its base (so the running system reads what it wrote) and,
 * while recording, logs the submission and completion of every write,
 * unmap, write_zeroes and flush, with the written data, in one global order.
 * crash_image.c turns that log into post-power-loss device contents.
 *
 * Guarantees:
 *  - The log order is causal: an operation's submit event is logged before
 *    its completion is delivered, and its completion event before the
 *    consumer's callback runs, so anything a consumer submits in reaction
 *    to a completion comes later in the log.
 *  - The snapshot is the base's contents when recording began; nothing can
 *    write in between (start refuses while writes or flushes are in flight
 *    and fails new ones with -EBUSY until the snapshot is read).
 *  - An operation that cannot be logged (no memory) marks the log as
 *    incomplete: images are then refused rather than silently wrong.
 *  - The bdev reports a volatile write cache, so consumers flush. Flushes
 *    reach the base when it supports them and complete here otherwise.
 *
 * Identity: the bdev's UUID belongs to the configuration, not to one build:
 * given to bdev_crashsim_create ("uuid") or generated once at create time,
 * kept when the base goes and comes back, and written by save_config, so a
 * replayed config brings back the same UUID.
 *
 * The I/O path takes the crashsim's mutex (briefly, a few times per logged
 * operation): this is a test tool, and one global order across threads is
 * the point of it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"

#include "crashsim_internal.h"

/* Bytes per read while taking the snapshot. */
#define CRASHSIM_SNAPSHOT_CHUNK (1024 * 1024)

enum crashsim_start_state {
	CRASHSIM_START_READ,
	CRASHSIM_START_DONE,
};

/* One ust_crashsim_start(): reads the base into the snapshot, in chunks. */
struct crashsim_start {
	enum crashsim_start_state state;
	struct ust_crashsim *cs;
	struct ust_io_channel *base_ch;
	uint64_t offset; /* bytes submitted so far */
	int rc;
	void (*cb)(void *ctx, int rc);
	void *ctx;
};

static struct ust_vbdev_class g_crashsim_class;

/* ---- the log ------------------------------------------------------------ */

static bool io_type_is_logged(enum ust_bdev_io_type type)
{
	return type == UST_BDEV_IO_TYPE_WRITE || type == UST_BDEV_IO_TYPE_UNMAP ||
	       type == UST_BDEV_IO_TYPE_WRITE_ZEROES || type == UST_BDEV_IO_TYPE_FLUSH;
}

/* Make room for need elements of elt bytes in *arr; false on no memory. */
static bool grow_array(void **arr, uint64_t *cap, uint64_t need, size_t elt)
{
	uint64_t ncap = *cap ? *cap : 64;
	void *p;

	if (need <= *cap)
		return true;
	while (ncap < need)
		ncap *= 2;
	p = realloc(*arr, ncap * elt);
	if (p == NULL)
		return false;
	*arr = p;
	*cap = ncap;
	return true;
}

static void copy_from_iovs(uint8_t *dst, const struct iovec *iovs, int iovcnt, uint64_t len)
{
	int i;

	for (i = 0; i < iovcnt && len > 0; i++) {
		size_t n = iovs[i].iov_len < len ? iovs[i].iov_len : len;

		memcpy(dst, iovs[i].iov_base, n);
		dst += n;
		len -= n;
	}
}

static bool log_event(struct ust_crashsim *cs, uint64_t op, enum ust_crashsim_event_kind kind)
{
	if (!grow_array((void **)&cs->events, &cs->events_cap, cs->nevents + 1,
			sizeof(*cs->events)))
		return false;
	cs->events[cs->nevents].op = op;
	cs->events[cs->nevents].kind = kind;
	cs->nevents++;
	return true;
}

/* Append io as a new operation with its submit event (under lock). */
static int log_submit(struct ust_crashsim *cs, struct ust_bdev_io *io, uint64_t *opp)
{
	uint64_t len = io->num_blocks * cs->vb.bdev.blocklen;
	struct crashsim_op *op;

	if (cs->nops >= CRASHSIM_MAX_OPS)
		return -ENOMEM;
	if (!grow_array((void **)&cs->ops, &cs->ops_cap, cs->nops + 1, sizeof(*cs->ops)))
		return -ENOMEM;
	op = &cs->ops[cs->nops];
	op->data_off = CRASHSIM_NO_DATA;
	if (io->type == UST_BDEV_IO_TYPE_WRITE) {
		if (!grow_array((void **)&cs->data, &cs->data_cap, cs->data_len + len, 1))
			return -ENOMEM;
		copy_from_iovs(cs->data + cs->data_len, io->iovs, io->iovcnt, len);
		op->data_off = cs->data_len;
	}
	op->offset_blocks = io->offset_blocks;
	op->num_blocks = io->num_blocks;
	op->io_type = io->type;
	op->status = 0;
	op->submit_ev = cs->nevents;
	op->complete_ev = UST_CRASHSIM_NO_EVENT;
	if (!log_event(cs, cs->nops, UST_CRASHSIM_EVENT_SUBMIT))
		return -ENOMEM;
	if (op->data_off != CRASHSIM_NO_DATA)
		cs->data_len += len;
	*opp = cs->nops++;
	return 0;
}

/*
 * Before forwarding a logged type: refuse it while the snapshot is read,
 * count it in flight and note whether it belongs to the current log.
 */
static int io_admit(struct ust_crashsim *cs, struct crashsim_io *cio)
{
	int rc = 0;

	pthread_mutex_lock(&cs->lock);
	if (cs->state == CRASHSIM_STARTING) {
		rc = -EBUSY;
	} else {
		cs->inflight++;
		cio->counted = true;
		cio->generation = cs->state == CRASHSIM_RECORDING ? cs->generation : 0;
	}
	pthread_mutex_unlock(&cs->lock);
	return rc;
}

/* The base refused the I/O: it never happened. */
static void io_unadmit(struct ust_crashsim *cs, struct crashsim_io *cio)
{
	pthread_mutex_lock(&cs->lock);
	cs->inflight--;
	cio->counted = false;
	pthread_mutex_unlock(&cs->lock);
}

/* The base accepted the I/O: log its submission. */
static void io_record_submit(struct ust_crashsim *cs, struct ust_bdev_io *io,
			     struct crashsim_io *cio)
{
	pthread_mutex_lock(&cs->lock);
	if (cio->generation == 0 || cio->generation != cs->generation ||
	    cs->state != CRASHSIM_RECORDING) {
		cio->generation = 0;
	} else if (log_submit(cs, io, &cio->op) != 0) {
		cs->log_overflow = true;
		cio->generation = 0;
	}
	pthread_mutex_unlock(&cs->lock);
}

/* Log the completion (before the consumer hears of it). */
static void io_record_complete(struct ust_crashsim *cs, struct crashsim_io *cio, int status)
{
	struct crashsim_op *op;

	pthread_mutex_lock(&cs->lock);
	if (cio->counted)
		cs->inflight--;
	cio->counted = false;
	if (cio->generation != 0 && cio->generation == cs->generation &&
	    cs->state == CRASHSIM_RECORDING) {
		op = &cs->ops[cio->op];
		op->status = status;
		op->complete_ev = cs->nevents;
		if (!log_event(cs, cio->op, UST_CRASHSIM_EVENT_COMPLETE)) {
			op->complete_ev = UST_CRASHSIM_NO_EVENT;
			cs->log_overflow = true;
		}
	}
	pthread_mutex_unlock(&cs->lock);
}

/* ---- I/O path ----------------------------------------------------------- */

static void base_io_done(struct ust_bdev_io *base_io, int status, void *cb_arg)
{
	struct ust_bdev_io *io = cb_arg;
	struct crashsim_io *cio = ust_bdev_io_get_driver_ctx(io);

	if (io_type_is_logged(io->type))
		io_record_complete(io->bdev->ctxt, cio, status);
	ust_bdev_io_complete_errno(io, status);
}

static bool base_supports(struct ust_crashsim *cs, enum ust_bdev_io_type type)
{
	return ust_vbdev_io_type_supported(cs, type);
}

/* A base without flush has no cache to flush: the flush is done at once. */
static void flush_without_base(struct ust_crashsim *cs, struct ust_bdev_io *io,
			       struct crashsim_io *cio)
{
	io_record_submit(cs, io, cio);
	io_record_complete(cs, cio, 0);
	ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_SUCCESS);
}

static void crashsim_submit_request(struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct ust_crashsim *cs = io->bdev->ctxt;
	struct ust_vbdev_channel *vch = ust_io_channel_get_ctx(ch);
	struct crashsim_io *cio = ust_bdev_io_get_driver_ctx(io);
	bool logged = io_type_is_logged(io->type);
	int rc;

	memset(cio, 0, sizeof(*cio));
	if (logged) {
		rc = io_admit(cs, cio);
		if (rc != 0) {
			ust_bdev_io_complete_errno(io, rc);
			return;
		}
	}
	if (io->type == UST_BDEV_IO_TYPE_FLUSH && !base_supports(cs, UST_BDEV_IO_TYPE_FLUSH)) {
		flush_without_base(cs, io, cio);
		return;
	}
	rc = ust_vbdev_forward(&cs->vb, vch->base_ch, io, base_io_done);
	if (rc != 0) {
		if (logged)
			io_unadmit(cs, cio);
		ust_vbdev_io_submit_failed(io, rc);
		return;
	}
	/* The base calls back only after this returns, so the submit is logged first. */
	if (logged)
		io_record_submit(cs, io, cio);
}

static bool crashsim_io_type_supported(void *ctxt, enum ust_bdev_io_type type)
{
	struct ust_crashsim *cs = ctxt;

	switch (type) {
	case UST_BDEV_IO_TYPE_READ:
	case UST_BDEV_IO_TYPE_WRITE:
	case UST_BDEV_IO_TYPE_FLUSH:
	case UST_BDEV_IO_TYPE_RESET:
		return true;
	case UST_BDEV_IO_TYPE_UNMAP:
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
	case UST_BDEV_IO_TYPE_COMPARE:
		return base_supports(cs, type);
	default:
		/* compare_and_write is emulated by the core: its write is logged here. */
		return false;
	}
}

/* ---- recording control -------------------------------------------------- */

static void start_step(struct crashsim_start *st);

static void start_read_done(struct ust_bdev_io *io, int status, void *cb_arg)
{
	struct crashsim_start *st = cb_arg;

	if (status != 0 && st->rc == 0)
		st->rc = status;
	start_step(st);
}

static void start_finish(struct crashsim_start *st)
{
	struct ust_crashsim *cs = st->cs;
	int rc = st->rc;

	ust_put_io_channel(st->base_ch);
	if (cs->destruct_pending && rc == 0)
		rc = -ENODEV;
	pthread_mutex_lock(&cs->lock);
	cs->state = rc == 0 ? CRASHSIM_RECORDING : CRASHSIM_IDLE;
	cs->log_valid = rc == 0;
	pthread_mutex_unlock(&cs->lock);
	cs->start = NULL;
	if (rc != 0)
		UST_ERRLOG("crashsim %s: snapshot of the base failed: %s\n", cs->vb.bdev.name,
			   strerror(-rc));
	if (st->cb != NULL)
		st->cb(st->ctx, rc);
	free(st);
	if (cs->destruct_pending)
		ust_vbdev_teardown(&cs->vb);
}

/* Read the base chunk by chunk into the snapshot; re-entered from each read. */
static void start_step(struct crashsim_start *st)
{
	struct ust_crashsim *cs = st->cs;
	uint64_t chunk = CRASHSIM_SNAPSHOT_CHUNK / cs->vb.bdev.blocklen * cs->vb.bdev.blocklen;
	uint64_t len;
	int rc;

	switch (st->state) {
	case CRASHSIM_START_READ:
		if (st->rc == 0 && st->offset < cs->size && !cs->destruct_pending) {
			if (chunk == 0)
				chunk = cs->vb.bdev.blocklen;
			len = cs->size - st->offset < chunk ? cs->size - st->offset : chunk;
			rc = ust_bdev_read(cs->vb.base_desc, st->base_ch, cs->snapshot + st->offset,
					   st->offset, len, start_read_done, st);
			if (rc == 0) {
				st->offset += len;
				return;
			}
			st->rc = rc;
		}
		st->state = CRASHSIM_START_DONE;
		/* fall through */
	case CRASHSIM_START_DONE:
		start_finish(st);
		return;
	}
}

/* Snapshot and build scratch, allocated once (the geometry is fixed). */
static int alloc_buffers(struct ust_crashsim *cs)
{
	if (cs->snapshot == NULL)
		cs->snapshot = aligned_alloc(4096, (cs->size + 4095) / 4096 * 4096);
	if (cs->winner == NULL)
		cs->winner = calloc(cs->vb.bdev.blockcnt, sizeof(*cs->winner));
	if (cs->touched == NULL)
		cs->touched = calloc(cs->vb.bdev.blockcnt, sizeof(*cs->touched));
	return cs->snapshot && cs->winner && cs->touched ? 0 : -ENOMEM;
}

/* Move to STARTING with an empty log; -EBUSY if anything is in the way. */
static int begin_start(struct ust_crashsim *cs)
{
	int rc = 0;

	pthread_mutex_lock(&cs->lock);
	if (cs->state == CRASHSIM_STARTING || cs->inflight != 0) {
		rc = -EBUSY;
	} else {
		cs->state = CRASHSIM_STARTING;
		cs->generation++;
		cs->log_valid = false;
		cs->log_overflow = false;
		cs->nops = 0;
		cs->nevents = 0;
		cs->data_len = 0;
	}
	pthread_mutex_unlock(&cs->lock);
	return rc;
}

int ust_crashsim_start(struct ust_crashsim *cs, void (*cb)(void *ctx, int rc), void *ctx)
{
	struct crashsim_start *st;
	int rc;

	if (cs == NULL || cs->destruct_pending)
		return -EINVAL;
	if (cs->start != NULL)
		return -EBUSY;
	rc = alloc_buffers(cs);
	if (rc != 0)
		return rc;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return -ENOMEM;
	st->base_ch = ust_bdev_get_io_channel(cs->vb.base_desc);
	if (st->base_ch == NULL) {
		free(st);
		return -ENOMEM;
	}
	rc = begin_start(cs);
	if (rc != 0) {
		ust_put_io_channel(st->base_ch);
		free(st);
		return rc;
	}
	st->state = CRASHSIM_START_READ;
	st->cs = cs;
	st->cb = cb;
	st->ctx = ctx;
	cs->start = st;
	start_step(st);
	return 0;
}

void ust_crashsim_stop(struct ust_crashsim *cs)
{
	pthread_mutex_lock(&cs->lock);
	if (cs->state == CRASHSIM_RECORDING)
		cs->state = CRASHSIM_IDLE;
	pthread_mutex_unlock(&cs->lock);
}

bool ust_crashsim_is_recording(struct ust_crashsim *cs)
{
	bool on;

	pthread_mutex_lock(&cs->lock);
	on = cs->state == CRASHSIM_RECORDING;
	pthread_mutex_unlock(&cs->lock);
	return on;
}

uint64_t ust_crashsim_num_events(struct ust_crashsim *cs)
{
	uint64_t n;

	pthread_mutex_lock(&cs->lock);
	n = cs->nevents;
	pthread_mutex_unlock(&cs->lock);
	return n;
}

uint64_t ust_crashsim_num_ops(struct ust_crashsim *cs)
{
	uint64_t n;

	pthread_mutex_lock(&cs->lock);
	n = cs->nops;
	pthread_mutex_unlock(&cs->lock);
	return n;
}

int ust_crashsim_get_event(struct ust_crashsim *cs, uint64_t index,
			   struct ust_crashsim_event *event)
{
	const struct crashsim_op *op;
	int rc = 0;

	if (cs == NULL || event == NULL)
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	if (!cs->log_valid) {
		rc = -ENODATA;
	} else if (index >= cs->nevents) {
		rc = -ERANGE;
	} else {
		op = &cs->ops[cs->events[index].op];
		event->kind = cs->events[index].kind;
		event->io_type = op->io_type;
		event->op = cs->events[index].op;
		event->offset_blocks = op->offset_blocks;
		event->num_blocks = op->num_blocks;
		event->submit_event = op->submit_ev;
		event->complete_event = op->complete_ev;
		event->status = op->status;
	}
	pthread_mutex_unlock(&cs->lock);
	return rc;
}

struct ust_bdev *ust_crashsim_get_bdev(struct ust_crashsim *cs)
{
	return &cs->vb.bdev;
}

struct ust_crashsim *ust_crashsim_get(const char *name)
{
	return (struct ust_crashsim *)ust_vbdev_find(&g_crashsim_class, name);
}

/* ---- teardown ----------------------------------------------------------- */

/* Undo crashsim_init and free what recording allocated (vbdev helpers free the rest). */
static void crashsim_fini(struct ust_vbdev *vb)
{
	struct ust_crashsim *cs = (struct ust_crashsim *)vb;

	pthread_mutex_destroy(&cs->lock);
	free(cs->snapshot);
	free(cs->ops);
	free(cs->events);
	free(cs->data);
	free(cs->winner);
	free(cs->touched);
	free(cs->pending);
}

static bool crashsim_destruct(struct ust_vbdev *vb)
{
	struct ust_crashsim *cs = (struct ust_crashsim *)vb;

	crashsim_images_detach(cs);
	/* A snapshot read holds a base channel: it finishes the teardown. */
	if (cs->start != NULL)
		cs->destruct_pending = true;
	return cs->destruct_pending;
}

/* ---- information -------------------------------------------------------- */

static int crashsim_dump_info_json(void *ctxt, json_t *driver_specific)
{
	struct ust_crashsim *cs = ctxt;
	bool recording = ust_crashsim_is_recording(cs);

	json_object_set_new(
		driver_specific, "crashsim",
		json_pack("{s:s, s:s, s:b, s:I, s:I}", "name", cs->vb.bdev.name, "base_bdev_name",
			  ust_bdev_get_name(ust_bdev_desc_get_bdev(cs->vb.base_desc)), "recording",
			  recording, "num_events", (json_int_t)ust_crashsim_num_events(cs),
			  "num_ops", (json_int_t)ust_crashsim_num_ops(cs)));
	return 0;
}

static void crashsim_write_config_json(struct ust_bdev *bdev, json_t *calls)
{
	struct ust_crashsim *cs = bdev->ctxt;

	char uuid[UST_UUID_STRING_LEN];

	if (cs->vb.config == NULL || ust_uuid_fmt(uuid, sizeof(uuid), &cs->vb.config->uuid) != 0)
		return;
	json_array_append_new(calls, json_pack("{s:s, s:{s:s, s:s, s:s}}", "method",
					       "bdev_crashsim_create", "params", "base_bdev_name",
					       cs->vb.config->base_name, "name", cs->vb.config->name,
					       "uuid", uuid));
}

static const struct ust_bdev_fn_table g_crashsim_fn_table = {
	.destruct = ust_vbdev_destruct,
	.submit_request = crashsim_submit_request,
	.io_type_supported = crashsim_io_type_supported,
	.get_io_channel = ust_vbdev_get_io_channel,
	.dump_info_json = crashsim_dump_info_json,
	.write_config_json = crashsim_write_config_json,
};

/* ---- construction ------------------------------------------------------- */

static int check_base_geometry(struct ust_bdev *base)
{
	uint32_t bs = ust_bdev_get_block_size(base);

	/* Tearing is by 512-byte sector: blocks must be whole sectors of plain data. */
	if (bs % UST_CRASHSIM_SECTOR_SIZE != 0 || ust_bdev_get_md_size(base) != 0 ||
	    ust_bdev_get_num_blocks(base) > UINT32_MAX)
		return -EINVAL;
	return 0;
}

/* The log is sized at creation and a crashsim simulates a volatile write cache. */
static int crashsim_init(struct ust_vbdev *vb, struct ust_bdev *base)
{
	struct ust_crashsim *cs = (struct ust_crashsim *)vb;

	pthread_mutex_init(&cs->lock, NULL);
	TAILQ_INIT(&cs->images);
	cs->vb.bdev.write_cache = true;
	cs->size = cs->vb.bdev.blockcnt * cs->vb.bdev.blocklen;
	return 0;
}

/*
 * ust_crashsim_create() with the bdev's UUID (NULL or all zero: a random
 * one, generated here so that it belongs to the configuration and survives
 * the base going and coming back).
 */
static int crashsim_create(const char *base_name, const char *name, const struct ust_uuid *uuid)
{
	struct ust_vbdev_config c = {.name = name, .base_name = base_name};

	if (uuid != NULL && !ust_uuid_is_null(uuid))
		c.uuid = *uuid;
	else
		ust_uuid_generate(&c.uuid);
	return ust_vbdev_create(&g_crashsim_class, &c);
}

int ust_crashsim_create(const char *base_name, const char *name)
{
	return crashsim_create(base_name, name, NULL);
}

int ust_crashsim_delete(const char *name, void (*cb)(void *ctx, int rc), void *ctx)
{
	return ust_vbdev_delete(&g_crashsim_class, name, cb, ctx);
}

/* ---- module ------------------------------------------------------------- */

static void crashsim_examine_config(struct ust_bdev *bdev)
{
	ust_vbdev_examine_config(&g_crashsim_class, bdev);
}

static int crashsim_get_ctx_size(void)
{
	return sizeof(struct crashsim_io);
}

static void crashsim_module_fini(void)
{
	ust_vbdev_class_fini(&g_crashsim_class);
}

struct ust_bdev_module g_crashsim_module = {
	.name = "crashsim",
	.module_fini = crashsim_module_fini,
	.examine_config = crashsim_examine_config,
	.get_ctx_size = crashsim_get_ctx_size,
};
UST_BDEV_MODULE_REGISTER(crashsim, &g_crashsim_module)

static struct ust_vbdev_class g_crashsim_class = {
	.module = &g_crashsim_module,
	.fn_table = &g_crashsim_fn_table,
	.product_name = "crashsim",
	.vbdev_size = sizeof(struct ust_crashsim),
	.config_size = sizeof(struct ust_vbdev_config),
	.channel_size = sizeof(struct ust_vbdev_channel),
	.fixed_size = true, /* the snapshot and the log are sized at creation */
	.check_base = check_base_geometry,
	.init = crashsim_init,
	.fini = crashsim_fini,
	.destruct = crashsim_destruct,
};

/* ---- RPCs --------------------------------------------------------------- */

struct rpc_crashsim_create {
	char *base_bdev_name;
	char *name;
	char *uuid;
};

static const struct ust_json_object_decoder g_rpc_create_decoders[] = {
	{"base_bdev_name", offsetof(struct rpc_crashsim_create, base_bdev_name),
	 ust_json_decode_string, false},
	{"name", offsetof(struct rpc_crashsim_create, name), ust_json_decode_string, false},
	{"uuid", offsetof(struct rpc_crashsim_create, uuid), ust_json_decode_string, true},
};

static void rpc_bdev_crashsim_create(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_crashsim_create p = {0};
	struct ust_uuid uuid = {0};
	int rc;

	if (!ust_rpc_decode_params(req, params, g_rpc_create_decoders, 3, &p))
		goto out;
	if (p.uuid != NULL && ust_uuid_parse(&uuid, p.uuid) != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "invalid uuid '%s'",
				   p.uuid);
		goto out;
	}
	rc = crashsim_create(p.base_bdev_name, p.name, &uuid);
	if (rc != 0) {
		ust_rpc_send_error(req, rc == -EINVAL ? UST_JSONRPC_ERROR_INVALID_PARAMS :
							UST_JSONRPC_ERROR_INTERNAL_ERROR,
				   "cannot create crashsim %s on %s: %s", p.name, p.base_bdev_name,
				   strerror(-rc));
		goto out;
	}
	ust_rpc_send_result(req, json_string(p.name));
out:
	free(p.base_bdev_name);
	free(p.name);
	free(p.uuid);
}
UST_RPC_REGISTER("bdev_crashsim_create", rpc_bdev_crashsim_create,
		 UST_RPC_STARTUP | UST_RPC_RUNTIME)

struct rpc_crashsim_name {
	char *name;
};

static const struct ust_json_object_decoder g_rpc_name_decoders[] = {
	{"name", offsetof(struct rpc_crashsim_name, name), ust_json_decode_string, false},
};

static void rpc_bool_done(void *ctx, int rc)
{
	if (rc != 0)
		ust_rpc_send_errno(ctx, rc);
	else
		ust_rpc_send_bool(ctx, true);
}

static void rpc_bdev_crashsim_delete(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_crashsim_name p = {0};

	if (!ust_rpc_decode_params(req, params, g_rpc_name_decoders, 1, &p))
		return;
	if (ust_crashsim_delete(p.name, rpc_bool_done, req) != 0)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "no crashsim bdev named %s", p.name);
	free(p.name);
}
UST_RPC_REGISTER("bdev_crashsim_delete", rpc_bdev_crashsim_delete, UST_RPC_RUNTIME)

static void rpc_bdev_crashsim_start_recording(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_crashsim_name p = {0};
	struct ust_crashsim *cs;
	int rc;

	if (!ust_rpc_decode_params(req, params, g_rpc_name_decoders, 1, &p))
		return;
	cs = ust_crashsim_get(p.name);
	if (cs == NULL) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "no crashsim bdev named %s", p.name);
	} else {
		rc = ust_crashsim_start(cs, rpc_bool_done, req);
		if (rc != 0)
			ust_rpc_send_errno(req, rc);
	}
	free(p.name);
}
UST_RPC_REGISTER("bdev_crashsim_start_recording", rpc_bdev_crashsim_start_recording,
		 UST_RPC_RUNTIME)

static void rpc_bdev_crashsim_stop_recording(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_crashsim_name p = {0};
	struct ust_crashsim *cs;

	if (!ust_rpc_decode_params(req, params, g_rpc_name_decoders, 1, &p))
		return;
	cs = ust_crashsim_get(p.name);
	if (cs == NULL) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "no crashsim bdev named %s", p.name);
	} else {
		ust_crashsim_stop(cs);
		ust_rpc_send_result(req, json_pack("{s:I, s:I}", "num_events",
						   (json_int_t)ust_crashsim_num_events(cs),
						   "num_ops", (json_int_t)ust_crashsim_num_ops(cs)));
	}
	free(p.name);
}
UST_RPC_REGISTER("bdev_crashsim_stop_recording", rpc_bdev_crashsim_stop_recording,
		 UST_RPC_RUNTIME)
