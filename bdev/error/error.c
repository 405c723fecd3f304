/*
 * The "error" bdev module: a virtual bdev EE_<base> that forwards I/O to its
 * base except for the I/Os an operator (or a test) marked for failure with
 * bdev_error_inject_error. It exists to drive consumers' error paths, so it
 * is exact: "num" injections hit exactly the next num I/Os of that type (on
 * any thread, counted atomically), and then I/O flows normally again.
 *
 * Error types: failure (-EIO), nomem (the core requeues and retries; every
 * retry is an I/O and consumes an injection), pending (held until the
 * injections are cleared or the bdev is deleted, then -ECANCELED: a device
 * that stopped answering), corrupt_data (one byte XORed in the data a read
 * returns, or in a copy of the data a write stores; the caller's write
 * buffer is never modified).
 *
 * Also here: the RPCs bdev_error_create, bdev_error_delete and
 * bdev_error_inject_error. Configuration, build, base events and teardown
 * are the shared vbdev helpers' (bdev/bdev_vbdev.c), as for passthru; this
 * module adds a quiesce hook that releases held ("pending") I/O before the
 * bdev is unregistered.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"

#include "bdev_error.h"

/* One I/O type's injection; written by the control path, consumed by I/O threads. */
struct error_inject {
	uint32_t error_type;
	uint32_t count;
	uint64_t corrupt_offset;
	uint8_t corrupt_value;
};

/* One error bdev: its config is a plain struct ust_vbdev_config named EE_<base>. */
struct error_disk {
	struct ust_vbdev vb; /* first: bdev.ctxt is this struct */
	struct error_inject inject[UST_BDEV_NUM_IO_TYPES];
};

struct error_io {
	TAILQ_ENTRY(error_io) link; /* on the channel's pending list */
	void *write_copy;
	struct iovec write_iov;
	uint64_t corrupt_offset;
	uint8_t corrupt_value; /* 0: no read corruption */
};

struct error_channel {
	struct ust_vbdev_channel vch; /* first: holds the base channel */
	TAILQ_HEAD(, error_io) pending;
};

static struct ust_vbdev_class g_error_class;

/* ---- injections --------------------------------------------------------- */

/* Consume one injection of type; returns its error type (NONE if none left). */
static uint32_t error_take(struct error_disk *ed, enum ust_bdev_io_type type,
			   uint64_t *corrupt_offset, uint8_t *corrupt_value)
{
	struct error_inject *inj = &ed->inject[type];
	uint32_t n = __atomic_load_n(&inj->count, __ATOMIC_ACQUIRE);

	while (n > 0) {
		if (__atomic_compare_exchange_n(&inj->count, &n, n - 1, false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			*corrupt_offset = __atomic_load_n(&inj->corrupt_offset, __ATOMIC_RELAXED);
			*corrupt_value = __atomic_load_n(&inj->corrupt_value, __ATOMIC_RELAXED);
			return __atomic_load_n(&inj->error_type, __ATOMIC_RELAXED);
		}
	}
	return UST_BDEV_ERROR_NONE;
}

static void error_set(struct error_disk *ed, uint32_t type, uint32_t error_type, uint32_t num,
		      uint64_t corrupt_offset, uint8_t corrupt_value)
{
	struct error_inject *inj = &ed->inject[type];

	/* Count last, with release: a thread that sees the count sees the rest. */
	__atomic_store_n(&inj->count, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&inj->error_type, error_type, __ATOMIC_RELAXED);
	__atomic_store_n(&inj->corrupt_offset, corrupt_offset, __ATOMIC_RELAXED);
	__atomic_store_n(&inj->corrupt_value, corrupt_value, __ATOMIC_RELAXED);
	__atomic_store_n(&inj->count, num, __ATOMIC_RELEASE);
}

/* XOR the byte at offset (modulo the data length) of the first len bytes of iovs. */
static void error_corrupt_iovs(struct iovec *iovs, int iovcnt, uint64_t len, uint64_t offset,
			       uint8_t value)
{
	int i;

	if (len == 0)
		return;
	offset %= len;
	for (i = 0; i < iovcnt; i++) {
		if (offset < iovs[i].iov_len) {
			((uint8_t *)iovs[i].iov_base)[offset] ^= value;
			return;
		}
		offset -= iovs[i].iov_len;
	}
}

static void error_copy_from_iovs(uint8_t *dst, struct iovec *iovs, int iovcnt, uint64_t len)
{
	int i;

	for (i = 0; i < iovcnt && len > 0; i++) {
		size_t n = iovs[i].iov_len < len ? iovs[i].iov_len : len;

		memcpy(dst, iovs[i].iov_base, n);
		dst += n;
		len -= n;
	}
}

/* ---- I/O path ----------------------------------------------------------- */

static void error_base_io_done(struct ust_bdev_io *base_io, int status, void *cb_arg)
{
	struct ust_bdev_io *io = cb_arg;
	struct error_io *eio = ust_bdev_io_get_driver_ctx(io);

	if (status == 0 && io->type == UST_BDEV_IO_TYPE_READ && eio->corrupt_value != 0)
		error_corrupt_iovs(io->iovs, io->iovcnt, io->num_blocks * io->bdev->blocklen,
				   eio->corrupt_offset, eio->corrupt_value);
	free(eio->write_copy);
	eio->write_copy = NULL;
	ust_bdev_io_complete_errno(io, status);
}

/* Write a corrupted copy of the data; the caller's buffer stays intact. */
static int error_write_corrupted(struct error_disk *ed, struct ust_io_channel *base_ch,
				 struct ust_bdev_io *io)
{
	struct error_io *eio = ust_bdev_io_get_driver_ctx(io);
	uint64_t len = io->num_blocks * ed->vb.bdev.blocklen;

	eio->write_copy = malloc(len);
	if (eio->write_copy == NULL)
		return -ENOMEM;
	error_copy_from_iovs(eio->write_copy, io->iovs, io->iovcnt, len);
	eio->write_iov.iov_base = eio->write_copy;
	eio->write_iov.iov_len = len;
	error_corrupt_iovs(&eio->write_iov, 1, len, eio->corrupt_offset, eio->corrupt_value);
	return ust_bdev_writev_blocks(ed->vb.base_desc, base_ch, &eio->write_iov, 1,
				      io->offset_blocks, io->num_blocks, error_base_io_done, io);
}

static void error_reset_aborted(struct ust_io_channel_iter *i, int status);
static void error_abort_pending_on_channel(struct ust_io_channel_iter *i);

static void error_submit_request(struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct error_disk *ed = io->bdev->ctxt;
	struct error_channel *ech = ust_io_channel_get_ctx(ch);
	struct error_io *eio = ust_bdev_io_get_driver_ctx(io);
	uint32_t etype;
	int rc;

	memset(eio, 0, sizeof(*eio));
	etype = error_take(ed, io->type, &eio->corrupt_offset, &eio->corrupt_value);
	switch (etype) {
	case UST_BDEV_ERROR_FAILURE:
		ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_FAILED);
		return;
	case UST_BDEV_ERROR_NOMEM:
		ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_NOMEM);
		return;
	case UST_BDEV_ERROR_PENDING:
		TAILQ_INSERT_TAIL(&ech->pending, eio, link);
		return;
	default:
		break;
	}
	if (io->type == UST_BDEV_IO_TYPE_RESET && etype != UST_BDEV_ERROR_CORRUPT_DATA) {
		/*
		 * A reset is how a consumer recovers from I/O that never
		 * completes, so it releases what this module holds ("pending")
		 * on every thread, as a device reset aborts its commands, and
		 * then resets the base.
		 */
		ust_for_each_channel(ed, error_abort_pending_on_channel, io, error_reset_aborted);
		return;
	}
	switch (etype) {
	case UST_BDEV_ERROR_CORRUPT_DATA:
		if (io->type == UST_BDEV_IO_TYPE_WRITE) {
			rc = error_write_corrupted(ed, ech->vch.base_ch, io);
			break;
		}
		/* Reads are corrupted on completion; eio carries the byte. */
		rc = ust_vbdev_forward(&ed->vb, ech->vch.base_ch, io, error_base_io_done);
		break;
	default:
		eio->corrupt_value = 0;
		rc = ust_vbdev_forward(&ed->vb, ech->vch.base_ch, io, error_base_io_done);
		break;
	}
	if (rc == 0)
		return;
	free(eio->write_copy);
	eio->write_copy = NULL;
	ust_vbdev_io_submit_failed(io, rc);
}

/* ---- channels and pending I/O ------------------------------------------- */

static void error_channel_abort_pending(struct error_channel *ech)
{
	struct error_io *eio;

	while ((eio = TAILQ_FIRST(&ech->pending)) != NULL) {
		TAILQ_REMOVE(&ech->pending, eio, link);
		ust_bdev_io_complete(ust_bdev_io_from_ctx(eio), UST_BDEV_IO_STATUS_ABORTED);
	}
}

static void error_abort_pending_on_channel(struct ust_io_channel_iter *i)
{
	struct ust_io_channel *ch = ust_io_channel_iter_get_channel(i);

	error_channel_abort_pending(ust_io_channel_get_ctx(ch));
	ust_for_each_channel_continue(i, 0);
}

static void error_reset_aborted(struct ust_io_channel_iter *i, int status)
{
	struct ust_bdev_io *io = ust_io_channel_iter_get_ctx(i);
	struct error_disk *ed = io->bdev->ctxt;
	struct error_channel *ech = ust_io_channel_get_ctx(ust_bdev_io_get_io_channel(io));
	int rc = ust_vbdev_forward(&ed->vb, ech->vch.base_ch, io, error_base_io_done);

	if (rc != 0)
		ust_vbdev_io_submit_failed(io, rc);
}

static void error_cleared(struct ust_io_channel_iter *i, int status)
{
}

/* Complete every held I/O on every thread with -ECANCELED (injections cleared). */
static void error_abort_all_pending(struct error_disk *ed)
{
	ust_for_each_channel(ed, error_abort_pending_on_channel, ed, error_cleared);
}

static void error_quiesced(struct ust_io_channel_iter *i, int status)
{
	struct error_disk *ed = ust_io_channel_iter_get_ctx(i);

	ust_vbdev_quiesce_done(&ed->vb);
}

/* Delete or hot remove: held I/O would keep consumers' channels forever. */
static void error_quiesce(struct ust_vbdev *vb)
{
	ust_for_each_channel(vb, error_abort_pending_on_channel, vb, error_quiesced);
}

static int error_channel_create(struct ust_vbdev *vb, void *ctx_buf)
{
	struct error_channel *ech = ctx_buf;

	TAILQ_INIT(&ech->pending);
	return 0;
}

static void error_channel_destroy(struct ust_vbdev *vb, void *ctx_buf)
{
	error_channel_abort_pending(ctx_buf);
}

/* ---- information -------------------------------------------------------- */

static const char *const g_error_type_names[] = {
	[UST_BDEV_ERROR_NONE] = "none",
	[UST_BDEV_ERROR_FAILURE] = "failure",
	[UST_BDEV_ERROR_PENDING] = "pending",
	[UST_BDEV_ERROR_CORRUPT_DATA] = "corrupt_data",
	[UST_BDEV_ERROR_NOMEM] = "nomem",
};

static int error_dump_info_json(void *ctxt, json_t *driver_specific)
{
	struct error_disk *ed = ctxt;
	json_t *injections = json_array();
	uint32_t t;

	for (t = UST_BDEV_IO_TYPE_READ; t < UST_BDEV_NUM_IO_TYPES; t++) {
		uint32_t n = __atomic_load_n(&ed->inject[t].count, __ATOMIC_ACQUIRE);
		uint32_t et = __atomic_load_n(&ed->inject[t].error_type, __ATOMIC_RELAXED);

		if (n == 0 || et > UST_BDEV_ERROR_NOMEM)
			continue;
		json_array_append_new(injections,
				      json_pack("{s:s, s:s, s:i}", "io_type",
						ust_bdev_io_type_name(t), "error_type",
						g_error_type_names[et], "num", (json_int_t)n));
	}
	json_object_set_new(driver_specific, "error_disk",
			    json_pack("{s:s, s:o}", "base_bdev",
				      ust_bdev_get_name(ust_vbdev_get_base(&ed->vb)),
				      "injections", injections));
	return 0;
}

static void error_write_config_json(struct ust_bdev *bdev, json_t *calls)
{
	struct error_disk *ed = bdev->ctxt;
	char uuid[UST_UUID_STRING_LEN];
	json_t *params;

	if (ed->vb.config == NULL)
		return;
	params = json_pack("{s:s}", "base_name", ed->vb.config->base_name);
	if (ust_uuid_fmt(uuid, sizeof(uuid), ust_bdev_get_uuid(bdev)) == 0)
		json_object_set_new(params, "uuid", json_string(uuid));
	json_array_append_new(calls, json_pack("{s:s, s:o}", "method", "bdev_error_create",
					       "params", params));
}

static const struct ust_bdev_fn_table g_error_fn_table = {
	.destruct = ust_vbdev_destruct,
	.submit_request = error_submit_request,
	.io_type_supported = ust_vbdev_io_type_supported,
	.get_io_channel = ust_vbdev_get_io_channel,
	.dump_info_json = error_dump_info_json,
	.write_config_json = error_write_config_json,
};

/* ---- construction ------------------------------------------------------- */

static struct error_disk *error_disk_find(const char *name)
{
	return (struct error_disk *)ust_vbdev_find(&g_error_class, name);
}

int ust_bdev_error_create(const char *base_name, const struct ust_uuid *uuid)
{
	struct ust_vbdev_config c = {.base_name = base_name};
	char name[256];

	if (base_name == NULL || base_name[0] == '\0' ||
	    snprintf(name, sizeof(name), "EE_%s", base_name) >= (int)sizeof(name))
		return -EINVAL;
	c.name = name;
	if (uuid != NULL)
		c.uuid = *uuid;
	return ust_vbdev_create(&g_error_class, &c);
}

int ust_bdev_error_delete(const char *name, void (*cb)(void *ctx, int rc), void *ctx)
{
	return ust_vbdev_delete(&g_error_class, name, cb, ctx);
}

static bool error_type_valid_for(uint32_t io_type, uint32_t error_type)
{
	if (error_type != UST_BDEV_ERROR_CORRUPT_DATA)
		return true;
	return io_type == UST_BDEV_IO_TYPE_READ || io_type == UST_BDEV_IO_TYPE_WRITE ||
	       io_type == UST_BDEV_ERROR_IO_ALL;
}

int ust_bdev_error_inject(const char *name, uint32_t io_type, enum ust_bdev_error_type error_type,
			  uint32_t num, uint64_t corrupt_offset, uint8_t corrupt_value)
{
	struct error_disk *ed;
	uint32_t t;

	if (name == NULL || io_type > UST_BDEV_ERROR_IO_ALL)
		return -EINVAL;
	ed = error_disk_find(name);
	if (ed == NULL || ed->vb.removing)
		return -ENODEV;
	if (io_type == UST_BDEV_ERROR_IO_CLEAR) {
		for (t = 0; t < UST_BDEV_NUM_IO_TYPES; t++)
			error_set(ed, t, UST_BDEV_ERROR_NONE, 0, 0, 0);
		error_abort_all_pending(ed);
		return 0;
	}
	if (error_type <= UST_BDEV_ERROR_NONE || error_type > UST_BDEV_ERROR_NOMEM || num == 0 ||
	    !error_type_valid_for(io_type, error_type))
		return -EINVAL;
	if (error_type == UST_BDEV_ERROR_CORRUPT_DATA && corrupt_value == 0)
		return -EINVAL; /* XOR with 0 would change nothing */
	if (io_type != UST_BDEV_ERROR_IO_ALL) {
		error_set(ed, io_type, error_type, num, corrupt_offset, corrupt_value);
		return 0;
	}
	for (t = UST_BDEV_IO_TYPE_READ; t < UST_BDEV_NUM_IO_TYPES; t++) {
		if (error_type_valid_for(t, error_type))
			error_set(ed, t, error_type, num, corrupt_offset, corrupt_value);
	}
	return 0;
}

int64_t ust_bdev_error_remaining(const char *name, enum ust_bdev_io_type io_type)
{
	struct error_disk *ed;

	if (name == NULL || io_type <= UST_BDEV_IO_TYPE_INVALID || io_type >= UST_BDEV_NUM_IO_TYPES)
		return -EINVAL;
	ed = error_disk_find(name);
	if (ed == NULL)
		return -ENODEV;
	return __atomic_load_n(&ed->inject[io_type].count, __ATOMIC_ACQUIRE);
}

/* ---- module ------------------------------------------------------------- */

static void error_examine_config(struct ust_bdev *bdev)
{
	ust_vbdev_examine_config(&g_error_class, bdev);
}

static int error_get_ctx_size(void)
{
	return (int)sizeof(struct error_io);
}

static void error_module_fini(void)
{
	ust_vbdev_class_fini(&g_error_class);
}

static struct ust_bdev_module g_error_module = {
	.name = "error",
	.module_fini = error_module_fini,
	.examine_config = error_examine_config,
	.get_ctx_size = error_get_ctx_size,
};
UST_BDEV_MODULE_REGISTER(error, &g_error_module)

static struct ust_vbdev_class g_error_class = {
	.module = &g_error_module,
	.fn_table = &g_error_fn_table,
	.product_name = "Error Injection Disk",
	.vbdev_size = sizeof(struct error_disk),
	.config_size = sizeof(struct ust_vbdev_config),
	.channel_size = sizeof(struct error_channel),
	.channel_create = error_channel_create,
	.channel_destroy = error_channel_destroy,
	.quiesce = error_quiesce,
};

/* ---- RPCs --------------------------------------------------------------- */

struct rpc_error_create {
	char *base_name;
	char *uuid;
};

static const struct ust_json_object_decoder g_rpc_error_create_decoders[] = {
	{"base_name", offsetof(struct rpc_error_create, base_name), ust_json_decode_string, false},
	{"uuid", offsetof(struct rpc_error_create, uuid), ust_json_decode_string, true},
};

static void rpc_bdev_error_create(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_error_create p = {0};
	struct ust_uuid uuid = {0};
	char name[256];
	int rc;

	if (!ust_rpc_decode_params(req, params, g_rpc_error_create_decoders, 2, &p))
		goto out;
	if (p.uuid != NULL && ust_uuid_parse(&uuid, p.uuid) != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "invalid uuid '%s'",
				   p.uuid);
		goto out;
	}
	rc = ust_bdev_error_create(p.base_name, &uuid);
	if (rc != 0) {
		ust_rpc_send_error(req, rc == -EINVAL ? UST_JSONRPC_ERROR_INVALID_PARAMS :
							UST_JSONRPC_ERROR_INTERNAL_ERROR,
				   "cannot create error bdev on %s: %s", p.base_name, strerror(-rc));
		goto out;
	}
	snprintf(name, sizeof(name), "EE_%s", p.base_name);
	ust_rpc_send_result(req, json_string(name));
out:
	free(p.base_name);
	free(p.uuid);
}
UST_RPC_REGISTER("bdev_error_create", rpc_bdev_error_create, UST_RPC_STARTUP | UST_RPC_RUNTIME)

struct rpc_error_delete {
	char *name;
};

static const struct ust_json_object_decoder g_rpc_error_delete_decoders[] = {
	{"name", offsetof(struct rpc_error_delete, name), ust_json_decode_string, false},
};

static void rpc_error_delete_done(void *ctx, int rc)
{
	if (rc != 0)
		ust_rpc_send_errno(ctx, rc);
	else
		ust_rpc_send_bool(ctx, true);
}

static void rpc_bdev_error_delete(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_error_delete p = {0};

	if (!ust_rpc_decode_params(req, params, g_rpc_error_delete_decoders, 1, &p))
		return;
	if (ust_bdev_error_delete(p.name, rpc_error_delete_done, req) != 0)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "no error bdev named %s",
				   p.name);
	free(p.name);
}
UST_RPC_REGISTER("bdev_error_delete", rpc_bdev_error_delete, UST_RPC_RUNTIME)

struct rpc_error_inject {
	char *name;
	char *io_type;
	char *error_type;
	uint32_t num;
	uint64_t corrupt_offset;
	uint8_t corrupt_value;
};

static const struct ust_json_object_decoder g_rpc_error_inject_decoders[] = {
	{"name", offsetof(struct rpc_error_inject, name), ust_json_decode_string, false},
	{"io_type", offsetof(struct rpc_error_inject, io_type), ust_json_decode_string, false},
	{"error_type", offsetof(struct rpc_error_inject, error_type), ust_json_decode_string,
	 false},
	{"num", offsetof(struct rpc_error_inject, num), ust_json_decode_uint32, true},
	{"corrupt_offset", offsetof(struct rpc_error_inject, corrupt_offset),
	 ust_json_decode_uint64, true},
	{"corrupt_value", offsetof(struct rpc_error_inject, corrupt_value), ust_json_decode_uint8,
	 true},
};

static int error_parse_io_type(const char *s, uint32_t *io_type)
{
	uint32_t t;

	if (strcmp(s, "all") == 0) {
		*io_type = UST_BDEV_ERROR_IO_ALL;
		return 0;
	}
	if (strcmp(s, "clear") == 0) {
		*io_type = UST_BDEV_ERROR_IO_CLEAR;
		return 0;
	}
	for (t = UST_BDEV_IO_TYPE_READ; t < UST_BDEV_NUM_IO_TYPES; t++) {
		const char *n = ust_bdev_io_type_name(t);

		if (n != NULL && strcmp(n, s) == 0) {
			*io_type = t;
			return 0;
		}
	}
	return -EINVAL;
}

static int error_parse_error_type(const char *s, enum ust_bdev_error_type *et)
{
	uint32_t i;

	for (i = UST_BDEV_ERROR_FAILURE; i <= UST_BDEV_ERROR_NOMEM; i++) {
		if (strcmp(g_error_type_names[i], s) == 0) {
			*et = i;
			return 0;
		}
	}
	return -EINVAL;
}

static void rpc_bdev_error_inject_error(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_error_inject p = {.num = 1};
	enum ust_bdev_error_type et = UST_BDEV_ERROR_NONE;
	uint32_t io_type;
	int rc;

	if (!ust_rpc_decode_params(req, params, g_rpc_error_inject_decoders, 6, &p))
		goto out;
	if (error_parse_io_type(p.io_type, &io_type) != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "unknown io_type '%s' (read, write, unmap, flush, reset, "
				   "write_zeroes, compare, compare_and_write, all, clear)", p.io_type);
		goto out;
	}
	if (error_parse_error_type(p.error_type, &et) != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "unknown error_type '%s' (failure, pending, corrupt_data, nomem)",
				   p.error_type);
		goto out;
	}
	rc = ust_bdev_error_inject(p.name, io_type, et, p.num, p.corrupt_offset, p.corrupt_value);
	if (rc == -ENODEV)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "no error bdev named %s",
				   p.name);
	else if (rc == -EINVAL)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "invalid injection: num must be > 0; corrupt_data needs io_type "
				   "read, write or all and a non-zero corrupt_value");
	else if (rc != 0)
		ust_rpc_send_errno(req, rc);
	else
		ust_rpc_send_bool(req, true);
out:
	free(p.name);
	free(p.io_type);
	free(p.error_type);
}
UST_RPC_REGISTER("bdev_error_inject_error", rpc_bdev_error_inject_error, UST_RPC_RUNTIME)
