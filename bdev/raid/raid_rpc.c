/*
 * JSON-RPC methods of the raid module, named and shaped as SPDK's:
 * bdev_raid_create, bdev_raid_delete, bdev_raid_get_bdevs,
 * bdev_raid_remove_base_bdev, bdev_raid_add_base_bdev.
 *
 * Guarantees: every request gets exactly one answer; bad parameters are
 * answered with INVALID_PARAMS naming what is wrong and change nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/json.h"
#include "ustor/log.h"
#include "ustor/rpc.h"

#include "raid_internal.h"

/* ---- names as the RPCs spell them ---------------------------------------- */

const char *raid_level_name(enum ust_raid_level level)
{
	return level == UST_RAID0 ? "raid0" : "raid1";
}

const char *raid_state_name(enum ust_raid_state state)
{
	switch (state) {
	case UST_RAID_CONFIGURING:
		return "configuring";
	case UST_RAID_ONLINE:
		return "online";
	default:
		return "offline";
	}
}

/* ---- bdev_raid_create --------------------------------------------------- */

struct rpc_raid_create {
	char *name;
	char *raid_level;
	json_t *base_bdevs;
	uint32_t strip_size_kb;
	char *uuid;
	bool superblock;
};

static const struct ust_json_object_decoder g_create_decoders[] = {
	{"name", offsetof(struct rpc_raid_create, name), ust_json_decode_string, false},
	{"raid_level", offsetof(struct rpc_raid_create, raid_level), ust_json_decode_string, false},
	{"base_bdevs", offsetof(struct rpc_raid_create, base_bdevs), ust_json_decode_value, false},
	{"strip_size_kb", offsetof(struct rpc_raid_create, strip_size_kb), ust_json_decode_uint32,
	 true},
	{"uuid", offsetof(struct rpc_raid_create, uuid), ust_json_decode_string, true},
	{"superblock", offsetof(struct rpc_raid_create, superblock), ust_json_decode_bool, true},
};

static int parse_level(const char *s, enum ust_raid_level *level)
{
	if (strcmp(s, "raid0") == 0 || strcmp(s, "0") == 0) {
		*level = UST_RAID0;
	} else if (strcmp(s, "raid1") == 0 || strcmp(s, "1") == 0) {
		*level = UST_RAID1;
	} else {
		return -EINVAL;
	}
	return 0;
}

/* base_bdevs: an array of names, or one string of space-separated names. */
static int parse_base_names(const json_t *val, char **storage, const char **names,
			    uint32_t *count)
{
	const char *tok;
	char *save = NULL;
	size_t i;

	*count = 0;
	if (json_is_array(val)) {
		if (json_array_size(val) > UST_RAID_MAX_BASES) {
			return -E2BIG;
		}
		for (i = 0; i < json_array_size(val); i++) {
			if (!json_is_string(json_array_get(val, i))) {
				return -EINVAL;
			}
			names[(*count)++] = json_string_value(json_array_get(val, i));
		}
		return 0;
	}
	if (!json_is_string(val)) {
		return -EINVAL;
	}
	*storage = strdup(json_string_value(val));
	if (*storage == NULL) {
		return -ENOMEM;
	}
	for (tok = strtok_r(*storage, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
		if (*count == UST_RAID_MAX_BASES) {
			return -E2BIG;
		}
		names[(*count)++] = tok;
	}
	return 0;
}

static void rpc_bdev_raid_create(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_raid_create p = {0};
	struct ust_raid_opts opts = {0};
	const char *names[UST_RAID_MAX_BASES];
	char *storage = NULL;
	int rc;

	if (!ust_rpc_decode_params(req, params, g_create_decoders,
				   sizeof(g_create_decoders) / sizeof(g_create_decoders[0]), &p)) {
		goto out;
	}
	if (p.superblock) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "superblock: on-disk raid metadata is not supported yet");
		goto out;
	}
	if (parse_level(p.raid_level, &opts.level) != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "raid_level '%s': expected raid0, 0, raid1 or 1", p.raid_level);
		goto out;
	}
	rc = parse_base_names(p.base_bdevs, &storage, names, &opts.num_bases);
	if (rc != 0 || opts.num_bases == 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "base_bdevs: expected 1 to %d bdev names (an array, or one "
				   "space-separated string)", UST_RAID_MAX_BASES);
		goto out;
	}
	if (opts.level == UST_RAID0 && p.strip_size_kb == 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "strip_size_kb: required for raid0 (a power of two)");
		goto out;
	}
	if (p.uuid != NULL && ust_uuid_parse(&opts.uuid, p.uuid) != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "uuid '%s' is invalid",
				   p.uuid);
		goto out;
	}
	opts.name = p.name;
	opts.base_names = names;
	opts.strip_size_kb = p.strip_size_kb;
	rc = ust_bdev_raid_create(&opts);
	if (rc == -EINVAL) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "cannot create raid %s: invalid parameters (see the log)", p.name);
	} else if (rc != 0) {
		ust_rpc_send_errno(req, rc);
	} else {
		ust_rpc_send_bool(req, true);
	}
out:
	free(storage);
	free(p.name);
	free(p.raid_level);
	free(p.uuid);
	json_decref(p.base_bdevs);
}
UST_RPC_REGISTER("bdev_raid_create", rpc_bdev_raid_create, UST_RPC_STARTUP | UST_RPC_RUNTIME)

/* ---- bdev_raid_delete --------------------------------------------------- */

struct rpc_name {
	char *name;
};

static const struct ust_json_object_decoder g_name_decoders[] = {
	{"name", offsetof(struct rpc_name, name), ust_json_decode_string, false},
};

static void rpc_done(void *ctx, int rc)
{
	struct ust_rpc_request *req = ctx;

	if (rc == 0) {
		ust_rpc_send_bool(req, true);
	} else {
		ust_rpc_send_errno(req, rc);
	}
}

static void rpc_bdev_raid_delete(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_name p = {0};
	int rc;

	if (!ust_rpc_decode_params(req, params, g_name_decoders, 1, &p)) {
		return;
	}
	rc = ust_bdev_raid_delete(p.name, rpc_done, req);
	if (rc != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "raid bdev '%s' not found", p.name);
	}
	free(p.name);
}
UST_RPC_REGISTER("bdev_raid_delete", rpc_bdev_raid_delete, UST_RPC_RUNTIME)

/* ---- bdev_raid_get_bdevs ------------------------------------------------ */

struct rpc_get_bdevs {
	char *category;
};

static const struct ust_json_object_decoder g_get_decoders[] = {
	{"category", offsetof(struct rpc_get_bdevs, category), ust_json_decode_string, true},
};

static bool category_matches(const char *category, enum ust_raid_state state)
{
	if (strcmp(category, "all") == 0) {
		return true;
	}
	if (strcmp(category, "online") == 0) {
		return state == UST_RAID_ONLINE;
	}
	if (strcmp(category, "configuring") == 0) {
		return state == UST_RAID_CONFIGURING;
	}
	return state == UST_RAID_OFFLINE; /* "offline" */
}

static void rpc_bdev_raid_get_bdevs(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_get_bdevs p = {0};
	struct raid_bdev *raid;
	const char *category;
	json_t *list;

	if (!ust_rpc_decode_params(req, params, g_get_decoders, 1, &p)) {
		return;
	}
	category = p.category != NULL ? p.category : "all";
	if (strcmp(category, "all") != 0 && strcmp(category, "online") != 0 &&
	    strcmp(category, "configuring") != 0 && strcmp(category, "offline") != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "category '%s': expected all, online, configuring or offline",
				   category);
		free(p.category);
		return;
	}
	list = json_array();
	for (raid = raid_first(); raid != NULL; raid = raid_next(raid)) {
		if (category_matches(category, raid->state)) {
			json_array_append_new(list, raid_info_json(raid));
		}
	}
	ust_rpc_send_result(req, list);
	free(p.category);
}
UST_RPC_REGISTER("bdev_raid_get_bdevs", rpc_bdev_raid_get_bdevs, UST_RPC_RUNTIME)

/* ---- members ------------------------------------------------------------ */

static void rpc_bdev_raid_remove_base_bdev(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_name p = {0};
	int rc;

	if (!ust_rpc_decode_params(req, params, g_name_decoders, 1, &p)) {
		return;
	}
	rc = ust_bdev_raid_remove_base(p.name, rpc_done, req);
	if (rc == -ENODEV) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "bdev '%s' is not a member of any raid", p.name);
	} else if (rc != 0) {
		ust_rpc_send_errno(req, rc);
	}
	free(p.name);
}
UST_RPC_REGISTER("bdev_raid_remove_base_bdev", rpc_bdev_raid_remove_base_bdev, UST_RPC_RUNTIME)

struct rpc_add_base {
	char *raid_bdev;
	char *base_bdev;
};

static const struct ust_json_object_decoder g_add_decoders[] = {
	{"raid_bdev", offsetof(struct rpc_add_base, raid_bdev), ust_json_decode_string, false},
	{"base_bdev", offsetof(struct rpc_add_base, base_bdev), ust_json_decode_string, false},
};

static void rpc_bdev_raid_add_base_bdev(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_add_base p = {0};
	int rc;

	if (!ust_rpc_decode_params(req, params, g_add_decoders, 2, &p)) {
		goto out;
	}
	rc = ust_bdev_raid_add_base(p.raid_bdev, p.base_bdev, rpc_done, req);
	if (rc == -ENODEV) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "raid bdev '%s' or bdev '%s' not found", p.raid_bdev,
				   p.base_bdev);
	} else if (rc == -ENOTSUP) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "raid bdev '%s' is not raid1: only mirrors take new members",
				   p.raid_bdev);
	} else if (rc != 0) {
		ust_rpc_send_errno(req, rc);
	}
out:
	free(p.raid_bdev);
	free(p.base_bdev);
}
UST_RPC_REGISTER("bdev_raid_add_base_bdev", rpc_bdev_raid_add_base_bdev, UST_RPC_RUNTIME)
