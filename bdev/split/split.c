/*
 * The "split" bdev module: cuts a base bdev into N equal consecutive parts,
 * each a bdev of its own (<base>p0, <base>p1, ...), and its RPCs
 * bdev_split_create and bdev_split_delete.
 *
 * A split is configuration first: bdev_split_create remembers it, and the
 * parts are built whenever the base is present (now, or when it registers
 * later: examine_config). Hot removal of the base removes the parts but
 * keeps the configuration, so a base that comes back is split again.
 * save_config writes the configuration, not the parts.
 *
 * Guarantees: the base is claimed while split, so nothing else can write
 * it; a part's I/O goes to the base shifted by the part's start and, since
 * the core checks ranges against the part's size, never leaves the part.
 * All parts of a base share one per-thread channel holding the base channel.
 *
 * Identity: part i's UUID is a function of the base's UUID and i alone, so
 * a part keeps its UUID across delete/recreate, hot removal and a restart
 * that replays the configuration. The rule (also in README.md): hash the
 * 16 bytes "ustor-split-uuid" (a domain tag), the base UUID's 16 bytes and
 * i as 4 bytes little-endian with XXH3_128bits (seed 0); take the
 * canonical (big-endian) 16 bytes of the hash, then set the version nibble
 * to 8 (byte 6 = 0x8X, RFC 9562 custom UUID) and the variant bits to 10
 * (byte 8 = 0b10XXXXXX).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "ustor/log.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"

#include "bdev_split.h"

struct split_base;

struct split_config {
	char *base_name;
	uint32_t split_count;
	uint64_t split_size_mb;
	struct split_base *base; /* NULL while not split */
	TAILQ_ENTRY(split_config) link;
};

struct split_part {
	struct ust_bdev bdev;
	struct split_base *base;
	uint64_t offset_blocks;
	bool registered;
};

/* A base that is currently split; the io_device of its parts' channels. */
struct split_base {
	struct split_config *config; /* NULL once deleted */
	struct ust_bdev_desc *desc;
	struct ust_thread *desc_thread;
	uint32_t part_count;
	uint32_t live_parts; /* registered and not yet destructed */
	struct split_part *parts;
	void (*delete_cb)(void *ctx, int rc);
	void *delete_ctx;
};

struct split_channel {
	struct ust_io_channel *base_ch;
};

static TAILQ_HEAD(, split_config) g_split_configs = TAILQ_HEAD_INITIALIZER(g_split_configs);
static struct ust_bdev_module g_split_module;

/* ---- I/O ---------------------------------------------------------------- */

static void split_base_io_done(struct ust_bdev_io *base_io, int status, void *cb_arg)
{
	ust_bdev_io_complete_errno(cb_arg, status);
}

static int split_forward(struct split_part *part, struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct ust_bdev_desc *d = part->base->desc;
	uint64_t off = io->offset_blocks + part->offset_blocks, n = io->num_blocks;

	switch (io->type) {
	case UST_BDEV_IO_TYPE_READ:
		return ust_bdev_readv_blocks(d, ch, io->iovs, io->iovcnt, off, n,
					     split_base_io_done, io);
	case UST_BDEV_IO_TYPE_WRITE:
		return ust_bdev_writev_blocks(d, ch, io->iovs, io->iovcnt, off, n,
					      split_base_io_done, io);
	case UST_BDEV_IO_TYPE_UNMAP:
		return ust_bdev_unmap_blocks(d, ch, off, n, split_base_io_done, io);
	case UST_BDEV_IO_TYPE_FLUSH:
		return ust_bdev_flush_blocks(d, ch, off, n, split_base_io_done, io);
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
		return ust_bdev_write_zeroes_blocks(d, ch, off, n, split_base_io_done, io);
	case UST_BDEV_IO_TYPE_COMPARE:
		return ust_bdev_comparev_blocks(d, ch, io->iovs, io->iovcnt, off, n,
						split_base_io_done, io);
	case UST_BDEV_IO_TYPE_COMPARE_AND_WRITE:
		return ust_bdev_comparev_and_writev_blocks(d, ch, io->iovs, io->iovcnt,
							   io->fused_iovs, io->fused_iovcnt, off,
							   n, split_base_io_done, io);
	case UST_BDEV_IO_TYPE_RESET:
		/* Resets the whole base: the parts share one device. */
		return ust_bdev_reset(d, ch, split_base_io_done, io);
	default:
		return -ENOTSUP;
	}
}

static void split_submit_request(struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct split_channel *sch = ust_io_channel_get_ctx(ch);
	int rc = split_forward(io->bdev->ctxt, sch->base_ch, io);

	if (rc == -ENOMEM)
		ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_NOMEM);
	else if (rc != 0)
		ust_bdev_io_complete_errno(io, rc);
}

static bool split_io_type_supported(void *ctxt, enum ust_bdev_io_type type)
{
	struct split_part *part = ctxt;

	return ust_bdev_io_type_supported(ust_bdev_desc_get_bdev(part->base->desc), type);
}

static int split_channel_create(void *io_device, void *ctx_buf)
{
	struct split_base *sb = io_device;
	struct split_channel *sch = ctx_buf;

	sch->base_ch = ust_bdev_get_io_channel(sb->desc);
	return sch->base_ch != NULL ? 0 : -ENOMEM;
}

static void split_channel_destroy(void *io_device, void *ctx_buf)
{
	struct split_channel *sch = ctx_buf;

	ust_put_io_channel(sch->base_ch);
}

static struct ust_io_channel *split_get_io_channel(void *ctxt)
{
	struct split_part *part = ctxt;

	return ust_get_io_channel(part->base);
}

/* ---- teardown ----------------------------------------------------------- */

static void split_close_desc_msg(void *arg)
{
	ust_bdev_close(arg);
}

static void split_base_free(struct split_base *sb)
{
	uint32_t i;

	for (i = 0; i < sb->part_count; i++)
		free(sb->parts[i].bdev.name);
	free(sb->parts);
	free(sb);
}

/* The last part is gone and so is every channel: release the base. */
static void split_base_gone(void *io_device)
{
	struct split_base *sb = io_device;
	struct split_part *last = NULL;
	uint32_t i;

	if (sb->config != NULL)
		sb->config->base = NULL;
	ust_bdev_module_release_bdev(ust_bdev_desc_get_bdev(sb->desc));
	if (sb->desc_thread == ust_get_thread())
		ust_bdev_close(sb->desc);
	else
		ust_thread_send_msg(sb->desc_thread, split_close_desc_msg, sb->desc);
	for (i = 0; i < sb->part_count; i++) {
		if (sb->parts[i].registered)
			last = &sb->parts[i];
	}
	if (last != NULL)
		ust_bdev_destruct_done(&last->bdev, 0);
	if (sb->delete_cb != NULL)
		sb->delete_cb(sb->delete_ctx, 0);
	split_base_free(sb);
}

static int split_destruct(void *ctxt)
{
	struct split_part *part = ctxt;
	struct split_base *sb = part->base;

	if (--sb->live_parts > 0) {
		part->registered = false;
		return 0; /* the part array stays until the last part is gone */
	}
	/* part stays marked registered: split_base_gone completes its destruct. */
	ust_io_device_unregister(sb, split_base_gone);
	return 1;
}

static void split_unregister_parts(struct split_base *sb)
{
	uint32_t i;

	for (i = 0; i < sb->part_count; i++) {
		if (sb->parts[i].registered)
			ust_bdev_unregister(&sb->parts[i].bdev, NULL, NULL);
	}
}

static void split_base_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	if (type == UST_BDEV_EVENT_REMOVE)
		split_unregister_parts(ctx);
	/* A resize of the base leaves the parts as they are. */
}

/* ---- information -------------------------------------------------------- */

static int split_dump_info_json(void *ctxt, json_t *driver_specific)
{
	struct split_part *part = ctxt;

	json_object_set_new(driver_specific, "split",
			    json_pack("{s:s, s:I}", "base_bdev",
				      ust_bdev_get_name(ust_bdev_desc_get_bdev(part->base->desc)),
				      "offset_blocks", (json_int_t)part->offset_blocks));
	return 0;
}

static const struct ust_bdev_fn_table g_split_fn_table = {
	.destruct = split_destruct,
	.submit_request = split_submit_request,
	.io_type_supported = split_io_type_supported,
	.get_io_channel = split_get_io_channel,
	.dump_info_json = split_dump_info_json,
};

/* ---- construction ------------------------------------------------------- */

/* Part index's UUID, derived from the base's UUID (rule in the file comment). */
static void split_part_uuid(const struct ust_uuid *base_uuid, uint32_t index,
			    struct ust_uuid *out)
{
	static const char tag[16] = {'u', 's', 't', 'o', 'r', '-', 's', 'p',
				     'l', 'i', 't', '-', 'u', 'u', 'i', 'd'};
	uint8_t in[sizeof(tag) + sizeof(base_uuid->u) + 4];
	XXH128_canonical_t canon;

	memcpy(in, tag, sizeof(tag));
	memcpy(in + sizeof(tag), base_uuid->u, sizeof(base_uuid->u));
	in[32] = (uint8_t)index;
	in[33] = (uint8_t)(index >> 8);
	in[34] = (uint8_t)(index >> 16);
	in[35] = (uint8_t)(index >> 24);
	XXH128_canonicalFromHash(&canon, XXH3_128bits(in, sizeof(in)));
	_Static_assert(sizeof(canon.digest) == sizeof(out->u), "a UUID is 128 bits");
	memcpy(out->u, canon.digest, sizeof(out->u));
	out->u[6] = (uint8_t)((out->u[6] & 0x0f) | 0x80);
	out->u[8] = (uint8_t)((out->u[8] & 0x3f) | 0x80);
}

static int split_part_blocks(const struct split_config *c, struct ust_bdev *base, uint64_t *blocks)
{
	uint64_t base_blocks = ust_bdev_get_num_blocks(base);
	uint32_t bs = ust_bdev_get_block_size(base);
	uint64_t part;

	if (c->split_size_mb != 0) {
		if (c->split_size_mb > UINT64_MAX / (1024 * 1024))
			return -EINVAL;
		part = c->split_size_mb * 1024 * 1024 / bs;
		if (part == 0 || part > base_blocks / c->split_count) {
			UST_ERRLOG("split of %s: %u parts of %" PRIu64 " MiB do not fit in %" PRIu64
				   " blocks of %u bytes\n", c->base_name, c->split_count,
				   c->split_size_mb, base_blocks, bs);
			return -EINVAL;
		}
	} else {
		part = base_blocks / c->split_count;
		if (part == 0) {
			UST_ERRLOG("split of %s: %" PRIu64 " blocks cannot make %u parts\n",
				   c->base_name, base_blocks, c->split_count);
			return -EINVAL;
		}
	}
	*blocks = part;
	return 0;
}

static int split_part_init(struct split_base *sb, struct ust_bdev *base, uint32_t i,
			   uint64_t part_blocks)
{
	struct split_part *part = &sb->parts[i];
	char name[256];

	if (snprintf(name, sizeof(name), "%sp%u", sb->config->base_name, i) >= (int)sizeof(name))
		return -EINVAL;
	part->bdev.name = strdup(name);
	if (part->bdev.name == NULL)
		return -ENOMEM;
	part->base = sb;
	part->offset_blocks = (uint64_t)i * part_blocks;
	part->bdev.product_name = "Split Disk";
	part->bdev.blocklen = ust_bdev_get_block_size(base);
	part->bdev.blockcnt = part_blocks;
	part->bdev.write_cache = ust_bdev_has_write_cache(base);
	part->bdev.md_len = ust_bdev_get_md_size(base);
	part->bdev.md_interleave = ust_bdev_is_md_interleaved(base);
	part->bdev.dif_type = ust_bdev_get_dif_type(base);
	split_part_uuid(ust_bdev_get_uuid(base), i, &part->bdev.uuid);
	part->bdev.ctxt = part;
	part->bdev.module = &g_split_module;
	part->bdev.fn_table = &g_split_fn_table;
	return 0;
}

/* Open and claim base, then register every part. */
static int split_build(struct split_config *c, struct ust_bdev *base)
{
	struct split_base *sb;
	uint64_t part_blocks;
	uint32_t i;
	int rc;

	rc = split_part_blocks(c, base, &part_blocks);
	if (rc != 0)
		return rc;
	sb = calloc(1, sizeof(*sb));
	if (sb == NULL)
		return -ENOMEM;
	sb->parts = calloc(c->split_count, sizeof(*sb->parts));
	if (sb->parts == NULL) {
		free(sb);
		return -ENOMEM;
	}
	sb->config = c;
	sb->part_count = c->split_count;
	sb->desc_thread = ust_get_thread();
	rc = ust_bdev_open_ext(ust_bdev_get_name(base), false, split_base_event, sb, &sb->desc);
	if (rc != 0) {
		split_base_free(sb);
		return rc;
	}
	rc = ust_bdev_module_claim_bdev(base, sb->desc, &g_split_module);
	for (i = 0; rc == 0 && i < sb->part_count; i++)
		rc = split_part_init(sb, base, i, part_blocks);
	if (rc != 0) {
		if (rc != -EPERM)
			ust_bdev_module_release_bdev(base);
		ust_bdev_close(sb->desc);
		split_base_free(sb);
		return rc;
	}
	ust_io_device_register(sb, split_channel_create, split_channel_destroy,
			       sizeof(struct split_channel), c->base_name);
	c->base = sb;
	/* Count every part live first: a failed register must not finish the base early. */
	sb->live_parts = sb->part_count + 1;
	for (i = 0; i < sb->part_count; i++) {
		rc = ust_bdev_register(&sb->parts[i].bdev);
		if (rc != 0) {
			UST_ERRLOG("split of %s: cannot register %s: %s\n", c->base_name,
				   sb->parts[i].bdev.name, strerror(-rc));
			break;
		}
		sb->parts[i].registered = true;
	}
	sb->live_parts = i;
	if (rc == 0)
		return 0;
	/* Undo: the unregistered parts' destructs release the base. */
	c->base = NULL;
	sb->config = NULL;
	if (i == 0) {
		ust_io_device_unregister(sb, NULL);
		ust_bdev_module_release_bdev(base);
		ust_bdev_close(sb->desc);
		split_base_free(sb);
	} else {
		split_unregister_parts(sb);
	}
	return rc;
}

static struct split_config *split_config_find(const char *base_name)
{
	struct split_config *c;

	TAILQ_FOREACH(c, &g_split_configs, link) {
		if (strcmp(c->base_name, base_name) == 0)
			return c;
	}
	return NULL;
}

static void split_config_free(struct split_config *c)
{
	TAILQ_REMOVE(&g_split_configs, c, link);
	free(c->base_name);
	free(c);
}

int ust_bdev_split_create(const char *base_name, uint32_t split_count, uint64_t split_size_mb)
{
	struct split_config *c;
	struct ust_bdev *base;
	int rc;

	if (base_name == NULL || base_name[0] == '\0' || split_count == 0)
		return -EINVAL;
	if (split_config_find(base_name) != NULL)
		return -EEXIST;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->base_name = strdup(base_name);
	c->split_count = split_count;
	c->split_size_mb = split_size_mb;
	TAILQ_INSERT_TAIL(&g_split_configs, c, link);
	if (c->base_name == NULL) {
		split_config_free(c);
		return -ENOMEM;
	}
	base = ust_bdev_get_by_name(base_name);
	if (base == NULL)
		return 0;
	rc = split_build(c, base);
	if (rc != 0)
		split_config_free(c);
	return rc;
}

int ust_bdev_split_delete(const char *base_name, void (*cb)(void *ctx, int rc), void *ctx)
{
	struct split_config *c;
	struct split_base *sb;

	if (base_name == NULL)
		return -EINVAL;
	c = split_config_find(base_name);
	if (c == NULL)
		return -ENODEV;
	sb = c->base;
	split_config_free(c);
	if (sb == NULL || sb->delete_cb != NULL) {
		if (sb != NULL)
			sb->config = NULL;
		if (cb != NULL)
			cb(ctx, 0);
		return 0;
	}
	sb->config = NULL;
	sb->delete_cb = cb;
	sb->delete_ctx = ctx;
	split_unregister_parts(sb);
	return 0;
}

/* ---- module ------------------------------------------------------------- */

static void split_examine_config(struct ust_bdev *bdev)
{
	struct split_config *c = split_config_find(ust_bdev_get_name(bdev));

	if (c != NULL && c->base == NULL)
		split_build(c, bdev);
	ust_bdev_module_examine_done(&g_split_module);
}

static void split_config_json(json_t *calls)
{
	struct split_config *c;

	TAILQ_FOREACH(c, &g_split_configs, link) {
		json_t *params = json_pack("{s:s, s:i}", "base_bdev", c->base_name, "split_count",
					   (json_int_t)c->split_count);

		if (c->split_size_mb != 0)
			json_object_set_new(params, "split_size_mb",
					    json_integer((json_int_t)c->split_size_mb));
		json_array_append_new(calls, json_pack("{s:s, s:o}", "method", "bdev_split_create",
						       "params", params));
	}
}

static void split_module_fini(void)
{
	struct split_config *c;

	while ((c = TAILQ_FIRST(&g_split_configs)) != NULL)
		split_config_free(c);
}

static int split_get_ctx_size(void)
{
	return 0;
}

static struct ust_bdev_module g_split_module = {
	.name = "split",
	.module_fini = split_module_fini,
	.config_json = split_config_json,
	.examine_config = split_examine_config,
	.get_ctx_size = split_get_ctx_size,
};
UST_BDEV_MODULE_REGISTER(split, &g_split_module)

/* ---- RPCs --------------------------------------------------------------- */

struct rpc_split_create {
	char *base_bdev;
	uint32_t split_count;
	uint64_t split_size_mb;
};

static const struct ust_json_object_decoder g_rpc_split_create_decoders[] = {
	{"base_bdev", offsetof(struct rpc_split_create, base_bdev), ust_json_decode_string, false},
	{"split_count", offsetof(struct rpc_split_create, split_count), ust_json_decode_uint32,
	 false},
	{"split_size_mb", offsetof(struct rpc_split_create, split_size_mb),
	 ust_json_decode_uint64, true},
};

static void rpc_bdev_split_create(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_split_create p = {0};
	struct split_config *c;
	json_t *names;
	uint32_t i;
	int rc;

	if (!ust_rpc_decode_params(req, params, g_rpc_split_create_decoders, 3, &p))
		goto out;
	rc = ust_bdev_split_create(p.base_bdev, p.split_count, p.split_size_mb);
	if (rc != 0) {
		ust_rpc_send_error(req, rc == -EINVAL ? UST_JSONRPC_ERROR_INVALID_PARAMS :
							UST_JSONRPC_ERROR_INTERNAL_ERROR,
				   "cannot split %s into %u: %s", p.base_bdev, p.split_count,
				   strerror(-rc));
		goto out;
	}
	/* The parts' names; empty while the base does not exist yet. */
	names = json_array();
	c = split_config_find(p.base_bdev);
	for (i = 0; c != NULL && c->base != NULL && i < c->base->part_count; i++)
		json_array_append_new(names, json_string(c->base->parts[i].bdev.name));
	ust_rpc_send_result(req, names);
out:
	free(p.base_bdev);
}
UST_RPC_REGISTER("bdev_split_create", rpc_bdev_split_create, UST_RPC_STARTUP | UST_RPC_RUNTIME)

struct rpc_split_delete {
	char *base_bdev;
};

static const struct ust_json_object_decoder g_rpc_split_delete_decoders[] = {
	{"base_bdev", offsetof(struct rpc_split_delete, base_bdev), ust_json_decode_string, false},
};

static void rpc_split_delete_done(void *ctx, int rc)
{
	if (rc != 0)
		ust_rpc_send_errno(ctx, rc);
	else
		ust_rpc_send_bool(ctx, true);
}

static void rpc_bdev_split_delete(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_split_delete p = {0};

	if (!ust_rpc_decode_params(req, params, g_rpc_split_delete_decoders, 1, &p))
		return;
	if (ust_bdev_split_delete(p.base_bdev, rpc_split_delete_done, req) != 0)
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "%s is not split",
				   p.base_bdev);
	free(p.base_bdev);
}
UST_RPC_REGISTER("bdev_split_delete", rpc_bdev_split_delete, UST_RPC_RUNTIME)
