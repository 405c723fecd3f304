/*
 * The calls on an open blob's metadata: resize, sync, the getters and the
 * xattrs (user and internal ones, in one list told apart by a flag).
 *
 * Guarantees: every call but the getters runs on the metadata thread
 * (-EXDEV otherwise);
 * a change (resize, an xattr set or removed) is refused with -EPERM on a
 * read-only blob and -EBUSY while a snapshot, merge, inflate or decouple
 * rewrites it, and stays in memory until the next sync (ust_blob_sync_md,
 * or the close) commits it; a resize that shrinks releases its clusters
 * only after that commit; a thin blob grows to at most
 * UST_BS_THIN_MAX_CLUSTERS (-EFBIG). Names are 1..UST_BS_XATTR_NAME_MAX
 * bytes and values at most UST_BS_XATTR_VALUE_MAX (-EINVAL, -E2BIG).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/log.h"

#include "blobstore_internal.h"

/* ---- resize and sync ------------------------------------------------------------------- */

static int blob_md_writable(struct ust_blob *blob)
{
	int rc = bs_md_thread_check(blob->bs);

	if (rc != 0) {
		return rc;
	}
	if ((blob->flags & UST_BS_BLOB_READ_ONLY) || blob->md_read_only) {
		return -EPERM;
	}
	if (blob->op_busy) {
		/* A snapshot, merge, inflate or decouple is rewriting it. */
		return -EBUSY;
	}
	return 0;
}

static int resize_shrink(struct ust_blob *blob, uint64_t n)
{
	const struct bs_map *m = blob->map;
	uint64_t i, before = blob->nfreed, released = 0;
	int rc;

	for (i = n; i < m->len; i++) {
		uint32_t c = bs_map_get(m, i);

		if (c == 0) {
			continue;
		}
		rc = bs_blob_defer_cluster_free(blob, c);
		if (rc != 0) {
			blob->nfreed = before;
			return rc;
		}
		released++;
	}
	rc = bs_blob_map_resize(blob, n);
	if (rc != 0) {
		blob->nfreed = before;
		return rc;
	}
	blob->num_allocated -= released;
	return 0;
}

static int resize_grow(struct ust_blob *blob, uint64_t n)
{
	struct ust_blob_store *bs = blob->bs;
	uint64_t old = blob->map->len, i;
	int rc;

	if (!(blob->flags & UST_BS_BLOB_THIN) && bs->free_clusters < n - old) {
		UST_ERRLOG("blob 0x%llx: growing to %llu clusters needs %llu, %llu free\n",
			   (unsigned long long)blob->id, (unsigned long long)n,
			   (unsigned long long)(n - old), (unsigned long long)bs->free_clusters);
		return -ENOSPC;
	}
	rc = bs_blob_map_resize(blob, n);
	if (rc != 0) {
		return rc;
	}
	if (!(blob->flags & UST_BS_BLOB_THIN)) {
		/* In memory now; durable with the next sync (9.4 "grow"). */
		for (i = old; i < n; i++) {
			__atomic_store_n(&blob->map->c[i], bs_cluster_alloc(bs), __ATOMIC_RELEASE);
		}
		blob->num_allocated += n - old;
	}
	return 0;
}

void ust_blob_resize(struct ust_blob *blob, uint64_t num_clusters, ust_blob_op_cb cb, void *arg)
{
	int rc = blob_md_writable(blob);

	if (cb == NULL) {
		cb = bs_noop_cb;
	}
	if (rc == 0 && num_clusters > UST_BS_MAX_BLOB_CLUSTERS) {
		rc = -EINVAL;
	}
	if (rc == 0 && (blob->flags & UST_BS_BLOB_THIN) && num_clusters > blob->map->len &&
	    num_clusters > UST_BS_THIN_MAX_CLUSTERS) {
		rc = bs_thin_too_large("blobstore: resize", num_clusters);
	}
	if (rc == 0 && num_clusters != blob->map->len) {
		rc = num_clusters < blob->map->len ? resize_shrink(blob, num_clusters)
						   : resize_grow(blob, num_clusters);
		if (rc == 0) {
			blob->num_clusters = num_clusters;
			blob->change_seq++;
		}
	}
	cb(arg, rc);
}

struct sync_ctx {
	struct ust_blob *blob;
	ust_blob_op_cb cb;
	void *arg;
};

static void sync_md_done(void *arg, int rc)
{
	struct sync_ctx *c = arg;

	c->blob->bs->ops--;
	c->cb(c->arg, rc);
	free(c);
}

void ust_blob_sync_md(struct ust_blob *blob, ust_blob_op_cb cb, void *arg)
{
	struct sync_ctx *c;
	int rc = bs_md_thread_check(blob->bs);

	if (cb == NULL) {
		cb = bs_noop_cb;
	}
	if (rc == 0 && blob->md_read_only) {
		rc = -EPERM;
	}
	if (rc != 0) {
		cb(arg, rc);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		cb(arg, -ENOMEM);
		return;
	}
	c->blob = blob;
	c->cb = cb;
	c->arg = arg;
	blob->bs->ops++;
	bs_blob_sync(blob, sync_md_done, c);
}

/* ---- getters ------------------------------------------------------------------------- */

ust_blob_id ust_blob_get_id(const struct ust_blob *blob)
{
	return blob->id;
}

uint64_t ust_blob_get_num_clusters(const struct ust_blob *blob)
{
	return bs_blob_map(blob)->len;
}

uint64_t ust_blob_get_num_io_units(const struct ust_blob *blob)
{
	return bs_blob_map(blob)->len * blob->bs->units_per_cluster;
}

uint64_t ust_blob_get_num_allocated_clusters(const struct ust_blob *blob)
{
	return blob->num_allocated;
}

bool ust_blob_is_thin(const struct ust_blob *blob)
{
	return (blob->flags & UST_BS_BLOB_THIN) != 0;
}

bool ust_blob_is_read_only(const struct ust_blob *blob)
{
	return (blob->flags & UST_BS_BLOB_READ_ONLY) != 0 || blob->md_read_only;
}

ust_blob_id ust_blob_get_parent_id(const struct ust_blob *blob)
{
	return blob->parent_id;
}

bool ust_blob_is_snapshot(const struct ust_blob *blob)
{
	return (blob->flags & UST_BS_BLOB_SNAPSHOT) != 0;
}

bool ust_blob_is_clone(const struct ust_blob *blob)
{
	return blob->parent_id != 0;
}

/* ---- xattrs ------------------------------------------------------------------------------ */

static struct bs_xattr *xattr_lookup(struct ust_blob *blob, const char *name, bool internal)
{
	size_t len = strlen(name);
	struct bs_xattr *x;

	TAILQ_FOREACH(x, &blob->xattrs, link) {
		if (x->internal == internal && x->name_len == len && memcmp(x->name, name, len) == 0) {
			return x;
		}
	}
	return NULL;
}

static int xattr_set(struct ust_blob *blob, const char *name, const void *value, size_t len,
		     bool internal)
{
	struct bs_xattr *old, *x;

	if (!bs_xattr_name_ok(name) || (value == NULL && len != 0)) {
		return -EINVAL;
	}
	if (len > UST_BS_XATTR_VALUE_MAX) {
		return -E2BIG;
	}
	x = calloc(1, sizeof(*x));
	if (x == NULL) {
		return -ENOMEM;
	}
	x->name = strdup(name);
	x->value = malloc(len ? len : 1);
	if (x->name == NULL || x->value == NULL) {
		bs_xattr_free(x);
		return -ENOMEM;
	}
	x->name_len = (uint16_t)strlen(name);
	x->internal = internal;
	x->value_len = (uint32_t)len;
	if (len != 0) {
		memcpy(x->value, value, len);
	}
	old = xattr_lookup(blob, name, internal);
	if (old != NULL) {
		TAILQ_INSERT_AFTER(&blob->xattrs, old, x, link);
		TAILQ_REMOVE(&blob->xattrs, old, link);
	} else {
		TAILQ_INSERT_TAIL(&blob->xattrs, x, link);
	}
	if (!bs_blob_md_fits(blob)) {
		/* Undo: the blob's metadata would not fit its 65 pages. */
		if (old != NULL) {
			TAILQ_INSERT_AFTER(&blob->xattrs, x, old, link);
		}
		TAILQ_REMOVE(&blob->xattrs, x, link);
		bs_xattr_free(x);
		UST_ERRLOG("blob 0x%llx: xattr \"%s\" does not fit in the blob's metadata\n",
			   (unsigned long long)blob->id, name);
		return -ENOSPC;
	}
	bs_xattr_free(old);
	blob->change_seq++;
	return 0;
}

static int xattr_get(struct ust_blob *blob, const char *name, const void **value, size_t *len,
		     bool internal)
{
	struct bs_xattr *x;
	int rc = bs_md_thread_check(blob->bs);

	if (rc != 0) {
		return rc;
	}
	if (!bs_xattr_name_ok(name) || value == NULL || len == NULL) {
		return -EINVAL;
	}
	x = xattr_lookup(blob, name, internal);
	if (x == NULL) {
		return -ENOENT;
	}
	*value = x->value;
	*len = x->value_len;
	return 0;
}

static int xattr_remove(struct ust_blob *blob, const char *name, bool internal)
{
	struct bs_xattr *x;
	int rc = blob_md_writable(blob);

	if (rc != 0) {
		return rc;
	}
	if (!bs_xattr_name_ok(name)) {
		return -EINVAL;
	}
	x = xattr_lookup(blob, name, internal);
	if (x == NULL) {
		return -ENOENT;
	}
	TAILQ_REMOVE(&blob->xattrs, x, link);
	bs_xattr_free(x);
	blob->change_seq++;
	return 0;
}

int bs_blob_set_xattrs(struct ust_blob *blob, const struct ust_blob_xattr *x, size_t n)
{
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		rc = xattr_set(blob, x[i].name, x[i].value, x[i].value_len, x[i].internal);
		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

int ust_blob_set_xattr(struct ust_blob *blob, const char *name, const void *value, size_t len)
{
	int rc = blob_md_writable(blob);

	return rc != 0 ? rc : xattr_set(blob, name, value, len, false);
}

int ust_blob_get_xattr(struct ust_blob *blob, const char *name, const void **value, size_t *len)
{
	return xattr_get(blob, name, value, len, false);
}

int ust_blob_remove_xattr(struct ust_blob *blob, const char *name)
{
	return xattr_remove(blob, name, false);
}

int ust_blob_set_internal_xattr(struct ust_blob *blob, const char *name, const void *value,
				size_t len)
{
	int rc = blob_md_writable(blob);

	return rc != 0 ? rc : xattr_set(blob, name, value, len, true);
}

int ust_blob_get_internal_xattr(struct ust_blob *blob, const char *name, const void **value,
				size_t *len)
{
	return xattr_get(blob, name, value, len, true);
}

int ust_blob_remove_internal_xattr(struct ust_blob *blob, const char *name)
{
	return xattr_remove(blob, name, true);
}

static size_t xattr_list(struct ust_blob *blob, void (*fn)(void *ctx, const char *name),
			 void *ctx, bool internal)
{
	struct bs_xattr *x;
	size_t n = 0;

	TAILQ_FOREACH(x, &blob->xattrs, link) {
		if (x->internal == internal) {
			if (fn != NULL) {
				fn(ctx, x->name);
			}
			n++;
		}
	}
	return n;
}

size_t ust_blob_list_xattrs(struct ust_blob *blob, void (*fn)(void *ctx, const char *name),
			    void *ctx)
{
	return xattr_list(blob, fn, ctx, false);
}

size_t ust_blob_list_internal_xattrs(struct ust_blob *blob,
				     void (*fn)(void *ctx, const char *name), void *ctx)
{
	return xattr_list(blob, fn, ctx, true);
}
