/*
 * The "blobfs" subsystem and its RPCs: blobfs_create (format a bdev),
 * blobfs_mount, blobfs_umount and blobfs_get_mounts.
 *
 * Guarantees: save_config writes one blobfs_mount call per mount (after the
 * bdev subsystem's calls, which create the bdevs), never a call that would
 * reformat: a mount made with "format" is saved without it. At shutdown the
 * subsystem's fini force-unmounts every mount (answering all requests,
 * releasing open files, unloading each blobstore cleanly) before the bdev
 * subsystem finishes. All handlers run on the app thread.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ustor/app.h"
#include "ustor/bdev.h"
#include "ustor/blobfs.h"
#include "ustor/fuse.h"
#include "ustor/json.h"
#include "ustor/log.h"
#include "ustor/rpc.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- blobfs_create ------------------------------------------------------------ */

struct rpc_create {
	char *bdev_name;
	uint32_t cluster_sz;
	uint32_t max_inodes;
	bool prealloc_md;
	struct ust_rpc_request *req;
};

static const struct ust_json_object_decoder g_create_decoders[] = {
	{"bdev_name", offsetof(struct rpc_create, bdev_name), ust_json_decode_string, false},
	{"cluster_sz", offsetof(struct rpc_create, cluster_sz), ust_json_decode_uint32, true},
	{"max_inodes", offsetof(struct rpc_create, max_inodes), ust_json_decode_uint32, true},
	{"prealloc_md", offsetof(struct rpc_create, prealloc_md), ust_json_decode_bool, true},
};

static void rpc_create_free(struct rpc_create *c)
{
	free(c->bdev_name);
	free(c);
}

static void create_unmounted(void *arg, int rc)
{
	struct rpc_create *c = arg;

	if (rc != 0) {
		ust_rpc_send_errno(c->req, rc);
	} else {
		ust_rpc_send_bool(c->req, true);
	}
	rpc_create_free(c);
}

static void create_formatted(void *arg, struct ust_blobfs *fs, int rc)
{
	struct rpc_create *c = arg;

	if (rc != 0) {
		ust_rpc_send_error(c->req, rc == -EINVAL ? UST_JSONRPC_ERROR_INVALID_PARAMS :
							    UST_JSONRPC_ERROR_INTERNAL_ERROR,
				   "cannot format %s: %s", c->bdev_name, strerror(-rc));
		rpc_create_free(c);
		return;
	}
	ust_blobfs_unmount(fs, create_unmounted, c);
}

static void create_examined(void *ctx)
{
	struct rpc_create *c = ctx;
	struct ust_blobfs_opts opts;

	ust_blobfs_opts_init(&opts);
	opts.cluster_size = c->cluster_sz;
	opts.max_inodes = c->max_inodes;
	opts.prealloc_md = c->prealloc_md;
	ust_blobfs_format(c->bdev_name, &opts, NULL, create_formatted, c);
}

/*
 * The decoder took any u32; above the blobstore's limit the format would
 * only say EINVAL, so name the limit here. 0 is blobfs's default.
 */
static bool max_inodes_ok(struct ust_rpc_request *req, uint32_t max_inodes)
{
	if (max_inodes <= UST_FUSE_MAX_INODES) {
		return true;
	}
	ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
			   "max_inodes %u is above the limit of %u", max_inodes,
			   UST_FUSE_MAX_INODES);
	return false;
}

static bool bdev_is_mounted(const char *bdev_name)
{
	struct ust_fuse_mount *m;

	for (m = ust_fuse_mount_first(); m != NULL; m = ust_fuse_mount_next(m)) {
		if (strcmp(ust_fuse_mount_get_bdev_name(m), bdev_name) == 0) {
			return true;
		}
	}
	return false;
}

static void rpc_blobfs_create(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_create *c = calloc(1, sizeof(*c));
	int rc;

	if (c == NULL) {
		ust_rpc_send_errno(req, -ENOMEM);
		return;
	}
	c->req = req;
	if (!ust_rpc_decode_params(req, params, g_create_decoders, ARRAY_LEN(g_create_decoders),
				   c) ||
	    !max_inodes_ok(req, c->max_inodes)) {
		rpc_create_free(c);
		return;
	}
	if (ust_bdev_get_by_name(c->bdev_name) == NULL) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "no bdev named %s",
				   c->bdev_name);
		rpc_create_free(c);
		return;
	}
	if (bdev_is_mounted(c->bdev_name)) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_STATE,
				   "bdev %s is mounted", c->bdev_name);
		rpc_create_free(c);
		return;
	}
	rc = ust_bdev_wait_for_examine(create_examined, c);
	if (rc != 0) {
		ust_rpc_send_errno(req, rc);
		rpc_create_free(c);
	}
}
UST_RPC_REGISTER("blobfs_create", rpc_blobfs_create, UST_RPC_STARTUP | UST_RPC_RUNTIME)

/* ---- blobfs_mount ------------------------------------------------------------- */

struct rpc_mount {
	char *bdev_name;
	char *mountpoint;
	char *options;
	bool format_if_empty;
	uint32_t cluster_sz;
	uint32_t max_inodes;
	bool prealloc_md;
	struct ust_rpc_request *req;
};

static const struct ust_json_object_decoder g_mount_decoders[] = {
	{"bdev_name", offsetof(struct rpc_mount, bdev_name), ust_json_decode_string, false},
	{"mountpoint", offsetof(struct rpc_mount, mountpoint), ust_json_decode_string, false},
	{"options", offsetof(struct rpc_mount, options), ust_json_decode_string, true},
	{"format_if_empty", offsetof(struct rpc_mount, format_if_empty), ust_json_decode_bool,
	 true},
	{"cluster_sz", offsetof(struct rpc_mount, cluster_sz), ust_json_decode_uint32, true},
	{"max_inodes", offsetof(struct rpc_mount, max_inodes), ust_json_decode_uint32, true},
	{"prealloc_md", offsetof(struct rpc_mount, prealloc_md), ust_json_decode_bool, true},
};

static void rpc_mount_free(struct rpc_mount *p)
{
	free(p->bdev_name);
	free(p->mountpoint);
	free(p->options);
	free(p);
}

/* A mount ended without an RPC asking: the kernel side was unmounted, or its bdev went away. */
static void mount_ended(void *arg, struct ust_fuse_mount *m, int rc)
{
	if (rc == -ENODEV) {
		UST_NOTICELOG("%s ended: its bdev %s went away\n", ust_fuse_mount_get_mountpoint(m),
			      ust_fuse_mount_get_bdev_name(m));
		return;
	}
	UST_NOTICELOG("%s was unmounted from outside%s\n", ust_fuse_mount_get_mountpoint(m),
		      rc == 0 ? "" : "; blobfs did not unmount cleanly");
}

static void mount_done(void *arg, struct ust_fuse_mount *m, int rc)
{
	struct rpc_mount *p = arg;

	if (rc != 0) {
		ust_rpc_send_error(p->req, rc == -EINVAL ? UST_JSONRPC_ERROR_INVALID_PARAMS :
							   UST_JSONRPC_ERROR_INTERNAL_ERROR,
				   "cannot mount %s at %s: %s", p->bdev_name, p->mountpoint,
				   strerror(-rc));
	} else {
		ust_rpc_send_bool(p->req, true);
	}
	rpc_mount_free(p);
}

/*
 * A relative mountpoint (a config such as "./mnt") is taken relative to the
 * daemon's working directory, textually: getcwd() only, no lookup that could
 * wait on a file system. save_config then writes the absolute path.
 */
static int make_absolute(char **path)
{
	char cwd[PATH_MAX], *abs;
	const char *rel = *path;
	size_t n;

	if (getcwd(cwd, sizeof(cwd)) == NULL) {
		return -errno;
	}
	while (rel[0] == '.' && rel[1] == '/') {
		rel += 2;
		while (rel[0] == '/') {
			rel++;
		}
	}
	if (strcmp(rel, ".") == 0) {
		rel = "";
	}
	n = strlen(cwd) + strlen(rel) + 2;
	abs = malloc(n);
	if (abs == NULL) {
		return -ENOMEM;
	}
	snprintf(abs, n, "%s%s%s", cwd, rel[0] != '\0' && strcmp(cwd, "/") != 0 ? "/" : "", rel);
	n = strlen(abs);
	while (n > 1 && abs[n - 1] == '/') {
		abs[--n] = '\0';
	}
	free(*path);
	*path = abs;
	return 0;
}

static void rpc_blobfs_mount(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_mount *p = calloc(1, sizeof(*p));
	struct ust_fuse_mount_opts opts;

	if (p == NULL) {
		ust_rpc_send_errno(req, -ENOMEM);
		return;
	}
	p->req = req;
	if (!ust_rpc_decode_params(req, params, g_mount_decoders, ARRAY_LEN(g_mount_decoders),
				   p) ||
	    !max_inodes_ok(req, p->max_inodes)) {
		rpc_mount_free(p);
		return;
	}
	if (p->mountpoint[0] != '/' && make_absolute(&p->mountpoint) != 0) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "cannot make the mountpoint %s absolute", p->mountpoint);
		rpc_mount_free(p);
		return;
	}
	if (ust_fuse_mount_find(p->mountpoint) != NULL) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_STATE,
				   "%s is already mounted", p->mountpoint);
		rpc_mount_free(p);
		return;
	}
	if (bdev_is_mounted(p->bdev_name)) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_STATE,
				   "bdev %s is already mounted", p->bdev_name);
		rpc_mount_free(p);
		return;
	}
	ust_fuse_mount_opts_init(&opts);
	opts.bdev_name = p->bdev_name;
	opts.mountpoint = p->mountpoint;
	opts.options = p->options;
	opts.format = p->format_if_empty ? UST_FUSE_FORMAT_IF_EMPTY : UST_FUSE_FORMAT_NEVER;
	opts.cluster_size = p->cluster_sz;
	opts.max_inodes = p->max_inodes;
	opts.prealloc_md = p->prealloc_md;
	opts.ended_cb = mount_ended;
	ust_fuse_mount(&opts, mount_done, p);
}
UST_RPC_REGISTER("blobfs_mount", rpc_blobfs_mount, UST_RPC_STARTUP | UST_RPC_RUNTIME)

/* ---- blobfs_umount ------------------------------------------------------------ */

struct rpc_umount {
	char *mountpoint;
	bool force;
};

static const struct ust_json_object_decoder g_umount_decoders[] = {
	{"mountpoint", offsetof(struct rpc_umount, mountpoint), ust_json_decode_string, false},
	{"force", offsetof(struct rpc_umount, force), ust_json_decode_bool, true},
};

static void umount_done(void *arg, int rc)
{
	struct ust_rpc_request *req = arg;

	if (rc == -EBUSY) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_STATE,
				   "mount is busy (files open); use force to detach it anyway");
	} else if (rc != 0) {
		ust_rpc_send_errno(req, rc);
	} else {
		ust_rpc_send_bool(req, true);
	}
}

static void rpc_blobfs_umount(struct ust_rpc_request *req, const json_t *params)
{
	struct rpc_umount p = {0};
	struct ust_fuse_mount *m;

	if (!ust_rpc_decode_params(req, params, g_umount_decoders, ARRAY_LEN(g_umount_decoders),
				   &p)) {
		free(p.mountpoint);
		return;
	}
	m = ust_fuse_mount_find(p.mountpoint);
	if (m == NULL) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS, "nothing mounted at %s",
				   p.mountpoint);
	} else {
		ust_fuse_umount(m, p.force, umount_done, req);
	}
	free(p.mountpoint);
}
UST_RPC_REGISTER("blobfs_umount", rpc_blobfs_umount, UST_RPC_RUNTIME)

/* ---- blobfs_get_mounts -------------------------------------------------------- */

/* {"LOOKUP": n, ...}: the kinds seen; unnamed opcodes as "op<N>", anything unknown as "other" */
static json_t *requests_by_op_json(const struct ust_fuse_mount_stats *st)
{
	json_t *o = json_object();
	char name[16];

	for (uint32_t op = 0; o != NULL && op < UST_FUSE_OPCODES; op++) {
		const char *n = op == 0 ? "other" : ust_fuse_opcode_name(op);

		if (st->requests_by_op[op] == 0) {
			continue;
		}
		if (n == NULL) {
			snprintf(name, sizeof(name), "op%u", op);
			n = name;
		}
		json_object_set_new(o, n, json_integer((json_int_t)st->requests_by_op[op]));
	}
	return o;
}

static json_t *mount_json(struct ust_fuse_mount *m)
{
	struct ust_fuse_mount_stats st;
	json_t *o;

	ust_fuse_mount_get_stats(m, &st);
	o = json_pack("{s:s, s:s, s:s, s:b, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
			 "bdev_name", ust_fuse_mount_get_bdev_name(m), "mountpoint",
			 ust_fuse_mount_get_mountpoint(m), "options",
			 ust_fuse_mount_get_options(m), "live", ust_fuse_mount_is_live(m),
			 "stats", "requests", (json_int_t)st.requests, "in_flight",
			 (json_int_t)st.in_flight, "errors", (json_int_t)st.errors, "bytes_read",
			 (json_int_t)st.bytes_read, "bytes_read_lent", (json_int_t)st.bytes_read_lent,
			 "reads_replied_off", (json_int_t)st.reads_replied_off,
			 "bytes_written", (json_int_t)st.bytes_written,
			 "bytes_written_lent", (json_int_t)st.bytes_written_lent,
			 "max_read", (json_int_t)st.max_read, "max_write",
			 (json_int_t)st.max_write, "open_handles", (json_int_t)st.open_handles);
	if (o != NULL) {
		json_object_set_new(json_object_get(o, "stats"), "requests_by_op", requests_by_op_json(&st));
	}
	return o;
}

static void rpc_blobfs_get_mounts(struct ust_rpc_request *req, const json_t *params)
{
	struct ust_fuse_mount *m;
	json_t *arr = json_array(), *o;

	if (params != NULL && !(json_is_object(params) && json_object_size(params) == 0)) {
		json_decref(arr);
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_PARAMS,
				   "blobfs_get_mounts takes no parameters");
		return;
	}
	if (arr == NULL) {
		ust_rpc_send_errno(req, -ENOMEM);
		return;
	}
	for (m = ust_fuse_mount_first(); m != NULL; m = ust_fuse_mount_next(m)) {
		o = mount_json(m);
		if (o == NULL || json_array_append_new(arr, o) != 0) {
			json_decref(arr);
			ust_rpc_send_errno(req, -ENOMEM);
			return;
		}
	}
	ust_rpc_send_result(req, arr);
}
UST_RPC_REGISTER("blobfs_get_mounts", rpc_blobfs_get_mounts, UST_RPC_RUNTIME)

/* ---- the subsystem -------------------------------------------------------------- */

static void blobfs_subsystem_init(ust_subsystem_done_fn done, void *ctx)
{
	done(0, ctx);
}

struct fini_ctx {
	ust_subsystem_done_fn done;
	void *ctx;
};

static void fini_unmounted(void *arg, int rc)
{
	struct fini_ctx *f = arg;

	if (rc != 0) {
		UST_ERRLOG("a blobfs mount did not unmount cleanly: %s\n", strerror(-rc));
	}
	f->done(0, f->ctx);
	free(f);
}

static void blobfs_subsystem_fini(ust_subsystem_done_fn done, void *ctx)
{
	struct fini_ctx *f = calloc(1, sizeof(*f));

	if (f == NULL) {
		done(-ENOMEM, ctx);
		return;
	}
	f->done = done;
	f->ctx = ctx;
	ust_fuse_umount_all(fini_unmounted, f);
}

static void blobfs_write_config_json(json_t *calls)
{
	struct ust_fuse_mount *m;
	json_t *params;

	for (m = ust_fuse_mount_first(); m != NULL; m = ust_fuse_mount_next(m)) {
		params = json_pack("{s:s, s:s}", "bdev_name", ust_fuse_mount_get_bdev_name(m),
				   "mountpoint", ust_fuse_mount_get_mountpoint(m));
		if (params == NULL) {
			continue;
		}
		if (ust_fuse_mount_get_options(m)[0] != '\0') {
			json_object_set_new(params, "options",
					    json_string(ust_fuse_mount_get_options(m)));
		}
		if (ust_fuse_mount_get_format(m) == UST_FUSE_FORMAT_IF_EMPTY) {
			json_object_set_new(params, "format_if_empty", json_true());
			if (ust_fuse_mount_get_cluster_size(m) != 0) {
				json_object_set_new(params, "cluster_sz",
						    json_integer(ust_fuse_mount_get_cluster_size(m)));
			}
			if (ust_fuse_mount_get_max_inodes(m) != 0) {
				json_object_set_new(params, "max_inodes",
						    json_integer(ust_fuse_mount_get_max_inodes(m)));
			}
			if (ust_fuse_mount_get_prealloc_md(m)) {
				json_object_set_new(params, "prealloc_md", json_true());
			}
		}
		json_array_append_new(calls, json_pack("{s:s, s:o}", "method", "blobfs_mount",
						       "params", params));
	}
}

static struct ust_subsystem g_blobfs_subsystem = {
	.name = "blobfs",
	.init = blobfs_subsystem_init,
	.fini = blobfs_subsystem_fini,
	.write_config_json = blobfs_write_config_json,
};
UST_SUBSYSTEM_REGISTER(g_blobfs_subsystem)
UST_SUBSYSTEM_DEPEND(blobfs, bdev)
