/*
 * blobfs: the public entry points (but format and mount: blobfs_mount.c),
 * the request plumbing that moves every call to the metadata thread and its
 * callback back to the caller's thread, the super blob, and the operations
 * that only read or change one inode: lookup, getattr, readlink, readdir,
 * statfs and xattrs.
 *
 * Guarantees: a callback runs exactly once, on the calling thread, never
 * inside the call (except argument errors found before forwarding).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <dirent.h>

#include "ustor/log.h"

#include "blobfs_internal.h"

void bfs_ignore_cb(void *arg, int rc)
{
	(void)arg;
	(void)rc;
}

/* ---- requests ------------------------------------------------------------------------------ */

static const struct ust_blobfs_ctx g_root_ctx = {0};

struct bfs_req *bfs_req_new(struct ust_blobfs *fs, enum bfs_kind kind, const struct ust_blobfs_ctx *ctx)
{
	struct bfs_req *req = calloc(1, sizeof(*req));

	if (req == NULL) {
		return NULL;
	}
	req->fs = fs;
	req->kind = kind;
	req->ctx = ctx != NULL ? *ctx : g_root_ctx;
	req->caller = ust_get_thread();
	return req;
}

static void run_callback(struct bfs_req *req)
{
	int rc = req->rc;

	switch (req->cb_kind) {
	case BFS_CB_OP:
		if (req->cb.op != NULL) {
			req->cb.op(req->cb_arg, rc);
		}
		break;
	case BFS_CB_ENTRY:
		req->cb.entry(req->cb_arg, rc == 0 ? &req->entry : NULL, rc);
		break;
	case BFS_CB_ATTR:
		req->cb.attr(req->cb_arg, rc == 0 ? &req->attr : NULL, rc);
		break;
	case BFS_CB_OPEN:
		req->cb.open(req->cb_arg, rc == 0 ? req->out_fh : NULL, rc);
		break;
	case BFS_CB_CREATE:
		req->cb.create(req->cb_arg, rc == 0 ? &req->entry : NULL, rc == 0 ? req->out_fh : NULL, rc);
		break;
	case BFS_CB_SIZE:
		req->cb.size(req->cb_arg, rc == 0 ? req->result : rc);
		break;
	case BFS_CB_STATFS:
		req->cb.statfs(req->cb_arg, rc == 0 ? &req->st : NULL, rc);
		break;
	case BFS_CB_LEND:
		/* Only what lends nothing ends here; a lend is handed over by blobfs_io.c. */
		req->cb.lend(req->cb_arg, NULL, 0, rc == 0 ? req->result : rc);
		break;
	case BFS_CB_NONE:
		break;
	}
}

static void deliver(void *arg)
{
	struct bfs_req *req = arg;

	run_callback(req);
	free(req);
}

/* Finish a request on the metadata thread: its callback goes to the caller's thread. */
void bfs_complete(struct bfs_req *req, int rc)
{
	struct ust_blobfs *fs = req->fs;

	req->rc = rc;
	if (fs != NULL && atomic_load(&fs->inflight) > 0) {
		atomic_fetch_sub(&fs->inflight, 1);
	}
	if (fs != NULL && fs->nevict > 0 && atomic_load(&fs->inflight) == 0 && !fs->unmounting) {
		bfs_evict_deleted(fs);
	}
	if (req->parent != NULL) {
		/* an internal request: its owner continues */
		struct bfs_req *p = req->parent;

		p->rc = rc;
		p->entry = req->entry;
		p->attr = req->attr;
		p->out_fh = req->out_fh;
		free(req);
		bfs_dispatch(p);
		return;
	}
	if (req->caller == NULL || req->caller == ust_get_thread() ||
	    ust_thread_send_msg(req->caller, deliver, req) != 0) {
		deliver(req);
	}
}

static void run_msg(void *arg)
{
	bfs_dispatch(arg);
}

void bfs_submit(struct bfs_req *req)
{
	/* Counted before the message leaves, so an unmount cannot overtake it. */
	atomic_fetch_add(&req->fs->inflight, 1);
	if (ust_thread_send_msg(req->fs->thread, run_msg, req) != 0) {
		if (ust_get_thread() == req->fs->thread) {
			bfs_dispatch(req);
		} else {
			/* Nothing was touched on the metadata thread; fail here. */
			atomic_fetch_sub(&req->fs->inflight, 1);
			req->rc = -ENOMEM;
			deliver(req);
		}
	}
}

/* A failure before forwarding: the callback runs now, on the calling thread. */
static void fail_now(struct bfs_req *req, int rc)
{
	req->rc = rc;
	deliver(req);
}

int bfs_check_name(const char *name)
{
	size_t len;

	if (name == NULL) {
		return -EINVAL;
	}
	len = strnlen(name, UST_BLOBFS_NAME_MAX + 1);
	if (len > UST_BLOBFS_NAME_MAX) {
		return -ENAMETOOLONG;
	}
	if (len == 0 || strchr(name, '/') != NULL) {
		return -EINVAL;
	}
	return 0;
}

bool bfs_may(const struct ust_blobfs_ctx *ctx, const struct bfs_inode *ip, int mask)
{
	uint32_t bits;

	if (!ctx->check_access || ctx->uid == 0) {
		return true;
	}
	if (ctx->uid == ip->uid) {
		bits = (ip->mode >> 6) & 7;
	} else if (ctx->gid == ip->gid) {
		bits = (ip->mode >> 3) & 7;
	} else {
		bits = ip->mode & 7;
	}
	return ((uint32_t)mask & ~bits) == 0;
}

/* ---- the super blob ------------------------------------------------------------------------------ */

int bfs_super_store(struct ust_blobfs *fs)
{
	struct bfs_disk_super s = {
		.magic = BFS_SUPER_MAGIC,
		.version = BFS_SUPER_VERSION,
		.root_ino = fs->root->ino,
		.next_seq = fs->next_seq,
	};
	int rc;

	rc = ust_blob_set_internal_xattr(fs->super, BFS_XA_SUPER, &s, sizeof(s));
	if (rc != 0) {
		return rc;
	}
	if (fs->norphans == 0) {
		rc = ust_blob_remove_internal_xattr(fs->super, BFS_XA_ORPHANS);
		return rc == -ENOENT ? 0 : rc;
	}
	return ust_blob_set_internal_xattr(fs->super, BFS_XA_ORPHANS, fs->orphans,
					   fs->norphans * sizeof(uint64_t));
}

void bfs_orphan_add(struct ust_blobfs *fs, uint64_t ino)
{
	uint64_t *o;
	size_t i;

	for (i = 0; i < fs->norphans; i++) {
		if (fs->orphans[i] == ino) {
			return;
		}
	}
	o = realloc(fs->orphans, (fs->norphans + 1) * sizeof(*o));
	if (o == NULL) {
		/* The intent that unlinked it stays the record until then. */
		UST_ERRLOG("blobfs: no memory to list orphan 0x%" PRIx64 "\n", ino);
		return;
	}
	fs->orphans = o;
	fs->orphans[fs->norphans++] = ino;
	bfs_super_store(fs);
}

void bfs_orphan_del(struct ust_blobfs *fs, uint64_t ino)
{
	size_t i;

	for (i = 0; i < fs->norphans; i++) {
		if (fs->orphans[i] == ino) {
			fs->orphans[i] = fs->orphans[--fs->norphans];
			bfs_super_store(fs);
			return;
		}
	}
}

/* ---- one-inode operations ---------------------------------------------------------------------------- */

static void attr_resume(struct bfs_req *req)
{
	bfs_attr_run(req);
}

static void attr_sync_cb(void *arg, int rc)
{
	struct bfs_req *req = arg;

	bfs_complete(req, rc);
}

static bool xattr_user(const char *name)
{
	return strncmp(name, "user.", 5) == 0 && name[5] != '\0';
}

struct list_ctx {
	char *buf;
	size_t size;
	size_t len;
	bool range;
};

static void list_one(void *arg, const char *name)
{
	struct list_ctx *l = arg;
	size_t n;

	if (!xattr_user(name)) {
		return;
	}
	n = strlen(name) + 1;
	if (l->size != 0) {
		if (l->len + n > l->size) {
			l->range = true;
		} else {
			memcpy(l->buf + l->len, name, n);
		}
	}
	l->len += n;
}

enum attr_state {
	A_START,
	A_LOADED,
	A_CHILD,
	A_DIR_NEXT,
	A_DIR_CHILD,
};

static void readdir_loop(struct bfs_req *req);

/*
 * The error of a lookup whose child did not load. A blob that is no blobfs
 * inode, a blob that does not exist while the entry still names it, and a
 * parent (a directory's ref) that does not exist, are damage
 * (docs/blobfs-format.md 9): EIO. ENOENT stays for an entry removed while
 * its inode loaded.
 */
static int lookup_child_error(struct bfs_req *req)
{
	struct bfs_dirent *de;

	if (req->rc == -ESTALE) {
		return -EIO;
	}
	if (req->rc == -ENOENT && strcmp(req->name, "..") == 0 && req->ip != NULL && !req->ip->deleted) {
		return -EIO; /* a live directory's parent exists: its ref is damaged */
	}
	if (req->rc == -ENOENT && strcmp(req->name, ".") != 0 && strcmp(req->name, "..") != 0 &&
	    req->ip != NULL && !req->ip->deleted) {
		de = bfs_dir_find(req->ip, req->name);
		if (de != NULL && de->ino == req->ino2) {
			return -EIO;
		}
	}
	return req->rc;
}

void bfs_attr_run(struct bfs_req *req)
{
	struct ust_blobfs *fs = req->fs;
	struct bfs_inode *ip;
	struct bfs_dirent *de;
	const void *v;
	size_t len;
	int rc;

	switch (req->state) {
	case A_START:
		if (req->kind == BFS_R_STATFS) {
			req->st.bsize = req->st.frsize = fs->cluster;
			req->st.blocks = ust_bs_get_total_data_cluster_count(fs->bs);
			req->st.bfree = req->st.bavail = ust_bs_get_free_cluster_count(fs->bs);
			req->st.files = ust_bs_get_max_blobs(fs->bs);
			/* Every blob is an inode's, an lvol's or the super blob: free slots are free inodes. */
			req->st.ffree = ust_bs_get_free_blob_count(fs->bs);
			req->st.namemax = UST_BLOBFS_NAME_MAX;
			bfs_complete(req, 0);
			return;
		}
		if (req->fh != NULL) {
			req->ip = req->fh->ip;
			req->rc = 0;
		} else {
			req->state = A_LOADED;
			req->rc = 0;
			if (bfs_iget(fs, bfs_ino_in(fs, req->ino), &req->ip, attr_resume, req) == 0) {
				return;
			}
		}
		/* fallthrough */
	case A_LOADED:
		req->state = A_LOADED;
		if (req->rc != 0) {
			bfs_complete(req, req->rc);
			return;
		}
		ip = req->ip;
		switch (req->kind) {
		case BFS_R_LOOKUP:
			if (!S_ISDIR(ip->mode)) {
				bfs_complete(req, -ENOTDIR);
				return;
			}
			if (!bfs_may(&req->ctx, ip, 1)) {
				bfs_complete(req, -EACCES);
				return;
			}
			if (strcmp(req->name, ".") == 0) {
				req->ino2 = ip->ino;
			} else if (strcmp(req->name, "..") == 0) {
				req->ino2 = ip->nrefs > 0 ? ip->refs[0].parent : fs->root->ino;
			} else {
				de = bfs_dir_find(ip, req->name);
				if (de == NULL) {
					bfs_complete(req, bfs_dir_miss(ip, req->name));
					return;
				}
				req->ino2 = de->ino;
			}
			req->state = A_CHILD;
			req->rc = 0;
			if (bfs_iget(fs, req->ino2, &req->ip2, attr_resume, req) == 0) {
				return;
			}
			bfs_attr_run(req);
			return;
		case BFS_R_GETATTR:
			bfs_fill_attr(fs, ip, &req->attr);
			bfs_complete(req, 0);
			return;
		case BFS_R_READLINK:
			if (!S_ISLNK(ip->mode) || ip->link == NULL) {
				bfs_complete(req, -EINVAL);
				return;
			}
			len = strlen(ip->link);
			if (len > req->size) {
				len = req->size;
			}
			memcpy(req->buf, ip->link, len);
			req->result = (int64_t)len;
			bfs_complete(req, 0);
			return;
		case BFS_R_OPENDIR:
			if (!S_ISDIR(ip->mode)) {
				bfs_complete(req, -ENOTDIR);
				return;
			}
			if (!bfs_may(&req->ctx, ip, 4)) {
				bfs_complete(req, -EACCES);
				return;
			}
			req->out_fh = calloc(1, sizeof(*req->out_fh));
			if (req->out_fh == NULL) {
				bfs_complete(req, -ENOMEM);
				return;
			}
			req->out_fh->ip = ip;
			req->out_fh->dir = true;
			ip->nopen++;
			fs->nopen_files++;
			bfs_complete(req, 0);
			return;
		case BFS_R_READDIR:
			if (!req->fh->dir) {
				bfs_complete(req, -EBADF);
				return;
			}
			readdir_loop(req);
			return;
		case BFS_R_GETXATTR:
		case BFS_R_SETXATTR:
		case BFS_R_LISTXATTR:
		case BFS_R_REMOVEXATTR:
			if (ip->deleted) {
				bfs_complete(req, -ENOENT);
				return;
			}
			if (req->kind != BFS_R_LISTXATTR && !xattr_user(req->name)) {
				bfs_complete(req, -ENOTSUP);
				return;
			}
			break;
		default:
			bfs_complete(req, -EINVAL);
			return;
		}
		if (req->kind == BFS_R_GETXATTR) {
			if (!bfs_may(&req->ctx, ip, 4)) {
				bfs_complete(req, -EACCES);
				return;
			}
			if (ust_blob_get_xattr(ip->blob, req->name, &v, &len) != 0) {
				bfs_complete(req, -ENODATA);
				return;
			}
			if (req->size != 0) {
				if (len > req->size) {
					bfs_complete(req, -ERANGE);
					return;
				}
				if (len > 0) {
					memcpy(req->buf, v, len);
				}
			}
			req->result = (int64_t)len;
			bfs_complete(req, 0);
			return;
		}
		if (req->kind == BFS_R_LISTXATTR) {
			struct list_ctx l = {.buf = req->buf, .size = req->size};

			ust_blob_list_xattrs(ip->blob, list_one, &l);
			if (l.range) {
				bfs_complete(req, -ERANGE);
				return;
			}
			req->result = (int64_t)l.len;
			bfs_complete(req, 0);
			return;
		}
		/* set / remove: only files and directories carry user xattrs (as Linux) */
		if (!S_ISREG(ip->mode) && !S_ISDIR(ip->mode)) {
			bfs_complete(req, -EPERM);
			return;
		}
		if (!bfs_may(&req->ctx, ip, 2)) {
			bfs_complete(req, -EACCES);
			return;
		}
		if ((S_ISDIR(ip->mode) && (ip->mode & S_ISVTX)) && req->ctx.uid != 0 &&
		    req->ctx.uid != ip->uid && req->ctx.check_access) {
			bfs_complete(req, -EPERM);
			return;
		}
		rc = ust_blob_get_xattr(ip->blob, req->name, &v, &len);
		if (req->kind == BFS_R_REMOVEXATTR) {
			if (rc != 0) {
				bfs_complete(req, -ENODATA);
				return;
			}
			rc = ust_blob_remove_xattr(ip->blob, req->name);
		} else {
			if (rc == 0 && (req->flags & UST_BLOBFS_XATTR_CREATE)) {
				bfs_complete(req, -EEXIST);
				return;
			}
			if (rc != 0 && (req->flags & UST_BLOBFS_XATTR_REPLACE)) {
				bfs_complete(req, -ENODATA);
				return;
			}
			rc = ust_blob_set_xattr(ip->blob, req->name, req->cbuf, req->size);
			if (rc == -E2BIG) {
				rc = -E2BIG;
			}
		}
		if (rc != 0) {
			bfs_complete(req, rc);
			return;
		}
		bfs_now(&ip->ctime);
		bfs_inode_store(fs, ip);
		ust_blob_sync_md(ip->blob, attr_sync_cb, req);
		return;
	case A_CHILD:
		if (req->rc != 0) {
			bfs_complete(req, lookup_child_error(req));
			return;
		}
		req->ip2->nlookup++;
		req->entry.ino = bfs_ino_out(fs, req->ip2->ino);
		bfs_fill_attr(fs, req->ip2, &req->entry.attr);
		bfs_complete(req, 0);
		return;
	case A_DIR_CHILD:
		readdir_loop(req);
		return;
	default:
		bfs_complete(req, -EINVAL);
		return;
	}
}

/* readdir: req->offset is where to continue; re-seeked after every wait. */
/*
 * A child of readdirplus whose inode cannot be loaded because it is damaged
 * (no blobfs inode, a malformed one, no blob at all: docs/blobfs-format.md
 * 9): its entry is listed without attributes, as plain readdir would list
 * it, so one damaged inode does not hide its siblings; its own lookup
 * reports the damage.
 */
static bool child_damaged(int rc)
{
	return rc == -ESTALE || rc == -EIO || rc == -ENOENT || rc == -EUCLEAN;
}

static void readdir_loop(struct bfs_req *req)
{
	struct ust_blobfs *fs = req->fs;
	struct bfs_inode *dp = req->fh->ip;
	struct ust_blobfs_dirent d;
	struct ust_blobfs_attr a;
	struct bfs_dirent *de;

	memset(&d, 0, sizeof(d)); /* have_child fills it without the loop's reset */
	if (req->state == A_DIR_CHILD) {
		req->state = A_LOADED;
		if (req->rc != 0 && !child_damaged(req->rc)) {
			bfs_complete(req, req->rc);
			return;
		}
		goto have_child;
	}
	for (;;) {
		memset(&d, 0, sizeof(d));
		if (req->offset < 2) {
			struct bfs_inode *self = dp;

			d.name = req->offset == 0 ? "." : "..";
			d.type = DT_DIR;
			d.ino = req->offset == 0 ? bfs_ino_out(fs, dp->ino)
				: bfs_ino_out(fs, dp->nrefs > 0 ? dp->refs[0].parent : fs->root->ino);
			d.next_offset = req->offset + 1;
			if (req->plus) {
				/* ".." of a non-root directory may not be loaded: give our own attr with its ino */
				bfs_fill_attr(fs, self, &a);
				a.ino = d.ino;
				d.attr = &a;
			}
			if (req->fill(req->fill_arg, &d) != 0) {
				bfs_complete(req, 0);
				return;
			}
			req->offset++;
			continue;
		}
		if (dp->deleted || dp->nrefs == 0 ? dp != fs->root : false) {
			bfs_complete(req, 0); /* a removed directory is empty */
			return;
		}
		de = bfs_dir_next(dp, req->offset);
		if (de == NULL) {
			bfs_complete(req, 0);
			return;
		}
		if (req->plus) {
			req->length = de->cookie;
			req->state = A_DIR_CHILD;
			req->rc = 0;
			if (bfs_iget(fs, de->ino, &req->ip2, attr_resume, req) == 0) {
				return;
			}
			req->state = A_LOADED;
			if (req->rc != 0 && !child_damaged(req->rc)) {
				bfs_complete(req, req->rc);
				return;
			}
have_child:
			/* the entry may have gone while its inode loaded: look again */
			de = bfs_dir_next(dp, req->offset);
			if (de == NULL || de->cookie != req->length ||
			    (req->rc == 0 && de->ino != req->ip2->ino)) {
				continue;
			}
			if (req->rc == 0) {
				bfs_fill_attr(fs, req->ip2, &a);
				d.attr = &a;
			}
		}
		d.name = de->name;
		d.type = de->type;
		d.ino = bfs_ino_out(fs, de->ino);
		d.next_offset = de->cookie;
		if (req->fill(req->fill_arg, &d) != 0) {
			bfs_complete(req, 0);
			return;
		}
		if (d.attr != NULL) {
			req->ip2->nlookup++;
		}
		req->offset = de->cookie;
	}
}

void bfs_dispatch(struct bfs_req *req)
{
	switch (req->kind) {
	case BFS_R_INTERNAL:
		req->resume(req);
		return;
	case BFS_R_UNMOUNT:
		bfs_unmount_step(req);
		return;
	case BFS_R_FORGET: {
		struct bfs_inode *ip = bfs_icache_find(req->fs, bfs_ino_in(req->fs, req->ino));

		if (ip != NULL && ip != req->fs->root) {
			ip->nlookup = ip->nlookup > req->length ? ip->nlookup - req->length : 0;
			bfs_evict_queue(req->fs, ip);
		}
		bfs_complete(req, 0);
		return;
	}
	case BFS_R_MKNOD:
	case BFS_R_MKDIR:
	case BFS_R_SYMLINK:
	case BFS_R_LINK:
	case BFS_R_UNLINK:
	case BFS_R_RMDIR:
	case BFS_R_RENAME:
	case BFS_R_CREATE:
		bfs_ns_run(req);
		return;
	case BFS_R_OPEN:
	case BFS_R_READ:
	case BFS_R_WRITE:
	case BFS_R_FSYNC:
	case BFS_R_RELEASE:
	case BFS_R_RELEASEDIR:
	case BFS_R_FALLOCATE:
	case BFS_R_SETATTR:
		bfs_io_run(req);
		return;
	case BFS_R_PATH:
		bfs_path_run(req);
		return;
	default:
		bfs_attr_run(req);
		return;
	}
}

/* ---- public entry points ------------------------------------------------------------------------------ */

static struct bfs_req *new_op(struct ust_blobfs *fs, enum bfs_kind kind,
			      const struct ust_blobfs_ctx *ctx, ust_blobfs_op_cb cb, void *arg)
{
	struct bfs_req *req = bfs_req_new(fs, kind, ctx);

	if (req == NULL) {
		if (cb != NULL) {
			cb(arg, -ENOMEM);
		}
		return NULL;
	}
	req->cb_kind = BFS_CB_OP;
	req->cb.op = cb;
	req->cb_arg = arg;
	return req;
}

void ust_blobfs_unmount(struct ust_blobfs *fs, ust_blobfs_op_cb cb, void *arg)
{
	struct bfs_req *req = new_op(fs, BFS_R_UNMOUNT, NULL, cb, arg);

	if (req != NULL) {
		bfs_submit(req);
	}
}

/*
 * A request for a public call. NULL when out of memory: the callback has then
 * been told (-ENOMEM) by fail_alloc(), which each caller runs with its own
 * callback type.
 */
/*
 * A request of kind for callback cb (of the type cbk names). NULL when it
 * cannot be allocated: cb has then already been told -ENOMEM.
 */
static struct bfs_req *mkreq(struct ust_blobfs *fs, enum bfs_kind kind, const struct ust_blobfs_ctx *ctx,
			     enum bfs_cb_kind cbk, union bfs_cb cb, void *arg)
{
	struct bfs_req *req = bfs_req_new(fs, kind, ctx);

	if (req == NULL) {
		struct bfs_req nomem = {.cb_kind = cbk, .cb = cb, .cb_arg = arg, .rc = -ENOMEM};

		run_callback(&nomem);
		return NULL;
	}
	req->cb_kind = cbk;
	req->cb = cb;
	req->cb_arg = arg;
	return req;
}

void ust_blobfs_lookup(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		       ust_blobfs_ino parent, const char *name, ust_blobfs_entry_cb cb, void *arg)
{
	struct bfs_req *req = mkreq(fs, BFS_R_LOOKUP, ctx, BFS_CB_ENTRY,
				    (union bfs_cb){.entry = cb}, arg);

	if (req == NULL) {
		return;
	}
	int rc = bfs_check_name(name);

	if (rc != 0) {
		fail_now(req, rc);
		return;
	}
	req->ino = parent;
	req->name = name;
	bfs_submit(req);
}

void ust_blobfs_forget(struct ust_blobfs *fs, ust_blobfs_ino ino, uint64_t nlookup)
{
	struct bfs_req *req = bfs_req_new(fs, BFS_R_FORGET, NULL);

	if (req == NULL) {
		return;
	}
	req->cb_kind = BFS_CB_NONE;
	req->ino = ino;
	req->length = nlookup;
	bfs_submit(req);
}

void ust_blobfs_getattr(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			ust_blobfs_ino ino, ust_blobfs_attr_cb cb, void *arg)
{
	struct bfs_req *req = mkreq(fs, BFS_R_GETATTR, ctx, BFS_CB_ATTR,
				    (union bfs_cb){.attr = cb}, arg);

	if (req == NULL) {
		return;
	}
	req->ino = ino;
	bfs_submit(req);
}

void ust_blobfs_setattr(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			ust_blobfs_ino ino, const struct ust_blobfs_attr *attr, uint32_t valid,
			struct ust_blobfs_file *fh, ust_blobfs_attr_cb cb, void *arg)
{
	struct bfs_req *req = mkreq(fs, BFS_R_SETATTR, ctx, BFS_CB_ATTR,
				    (union bfs_cb){.attr = cb}, arg);

	if (req == NULL) {
		return;
	}
	req->ino = ino;
	req->in_attr = *attr;
	req->valid = valid;
	(void)fh;
	bfs_submit(req);
}

void ust_blobfs_readlink(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			 ust_blobfs_ino ino, char *buf, size_t size, ust_blobfs_size_cb cb, void *arg)
{
	struct bfs_req *req = mkreq(fs, BFS_R_READLINK, ctx, BFS_CB_SIZE,
				    (union bfs_cb){.size = cb}, arg);

	if (req == NULL) {
		return;
	}
	req->ino = ino;
	req->buf = buf;
	req->size = size;
	bfs_submit(req);
}

static void submit_ns_entry(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			    enum bfs_kind kind, ust_blobfs_ino parent, const char *name, uint32_t mode,
			    uint64_t rdev, const char *target, uint64_t ino, ust_blobfs_entry_cb cb,
			    void *arg)
{
	struct bfs_req *req = mkreq(fs, kind, ctx, BFS_CB_ENTRY, (union bfs_cb){.entry = cb}, arg);

	if (req == NULL) {
		return;
	}
	int rc = bfs_check_name(name);

	if (rc == 0 && (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)) {
		rc = -EEXIST;
	}
	if (rc == 0 && target != NULL) {
		size_t tl = strnlen(target, UST_BLOBFS_PATH_MAX);

		rc = tl == 0 ? -ENOENT : tl >= UST_BLOBFS_PATH_MAX ? -ENAMETOOLONG : 0;
	}
	if (rc != 0) {
		fail_now(req, rc);
		return;
	}
	req->ino = parent;
	req->name = name;
	req->mode = mode;
	req->rdev = rdev;
	req->path = target;
	req->ino2 = ino;
	bfs_submit(req);
}

void ust_blobfs_mknod(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		      ust_blobfs_ino parent, const char *name, uint32_t mode, uint64_t rdev,
		      ust_blobfs_entry_cb cb, void *arg)
{
	submit_ns_entry(fs, ctx, BFS_R_MKNOD, parent, name, mode, rdev, NULL, 0, cb, arg);
}

void ust_blobfs_mkdir(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		      ust_blobfs_ino parent, const char *name, uint32_t mode,
		      ust_blobfs_entry_cb cb, void *arg)
{
	submit_ns_entry(fs, ctx, BFS_R_MKDIR, parent, name, S_IFDIR | (mode & 07777), 0, NULL, 0,
			cb, arg);
}

void ust_blobfs_symlink(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			const char *target, ust_blobfs_ino parent, const char *name,
			ust_blobfs_entry_cb cb, void *arg)
{
	submit_ns_entry(fs, ctx, BFS_R_SYMLINK, parent, name, S_IFLNK | 0777, 0,
			target != NULL ? target : "", 0, cb, arg);
}

void ust_blobfs_link(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		     ust_blobfs_ino ino, ust_blobfs_ino newparent, const char *newname,
		     ust_blobfs_entry_cb cb, void *arg)
{
	submit_ns_entry(fs, ctx, BFS_R_LINK, newparent, newname, 0, 0, NULL, ino, cb, arg);
}

static void submit_ns_op(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			 enum bfs_kind kind, ust_blobfs_ino parent, const char *name,
			 ust_blobfs_ino newparent, const char *newname, uint32_t flags,
			 ust_blobfs_op_cb cb, void *arg)
{
	struct bfs_req *req = mkreq(fs, kind, ctx, BFS_CB_OP, (union bfs_cb){.op = cb}, arg);

	if (req == NULL) {
		return;
	}
	int rc = bfs_check_name(name);

	if (rc == 0 && newname != NULL) {
		rc = bfs_check_name(newname);
	}
	if (rc == 0 && (flags & ~(UST_BLOBFS_RENAME_NOREPLACE | UST_BLOBFS_RENAME_EXCHANGE)) != 0) {
		rc = -EINVAL;
	}
	if (rc == 0 && flags == (UST_BLOBFS_RENAME_NOREPLACE | UST_BLOBFS_RENAME_EXCHANGE)) {
		rc = -EINVAL;
	}
	if (rc != 0) {
		fail_now(req, rc);
		return;
	}
	req->ino = parent;
	req->name = name;
	req->ino2 = newparent;
	req->name2 = newname;
	req->flags = flags;
	bfs_submit(req);
}

void ust_blobfs_unlink(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		       ust_blobfs_ino parent, const char *name, ust_blobfs_op_cb cb, void *arg)
{
	submit_ns_op(fs, ctx, BFS_R_UNLINK, parent, name, 0, NULL, 0, cb, arg);
}

void ust_blobfs_rmdir(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		      ust_blobfs_ino parent, const char *name, ust_blobfs_op_cb cb, void *arg)
{
	submit_ns_op(fs, ctx, BFS_R_RMDIR, parent, name, 0, NULL, 0, cb, arg);
}

void ust_blobfs_rename(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		       ust_blobfs_ino parent, const char *name, ust_blobfs_ino newparent,
		       const char *newname, uint32_t flags, ust_blobfs_op_cb cb, void *arg)
{
	submit_ns_op(fs, ctx, BFS_R_RENAME, parent, name, newparent, newname != NULL ? newname : "",
		     flags, cb, arg);
}

void ust_blobfs_open(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		     ust_blobfs_ino ino, int flags, ust_blobfs_open_cb cb, void *arg)
{
	struct bfs_req *req = mkreq(fs, BFS_R_OPEN, ctx, BFS_CB_OPEN,
				    (union bfs_cb){.open = cb}, arg);

	if (req == NULL) {
		return;
	}
	req->ino = ino;
	req->oflags = flags;
	bfs_submit(req);
}

void ust_blobfs_create(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		       ust_blobfs_ino parent, const char *name, uint32_t mode, int flags,
		       ust_blobfs_create_cb cb, void *arg)
{
	struct bfs_req *req = mkreq(fs, BFS_R_CREATE, ctx, BFS_CB_CREATE,
				    (union bfs_cb){.create = cb}, arg);

	if (req == NULL) {
		return;
	}
	int rc = bfs_check_name(name);

	if (rc != 0) {
		fail_now(req, rc);
		return;
	}
	req->ino = parent;
	req->name = name;
	req->mode = S_IFREG | (mode & 07777);
	req->oflags = flags;
	bfs_submit(req);
}

void ust_blobfs_read(struct ust_blobfs *fs, struct ust_blobfs_file *fh, void *buf, size_t size,
		     uint64_t offset, ust_blobfs_size_cb cb, void *arg)
{
	const struct ust_blobfs_ctx *ctx = NULL;
	struct bfs_req *req = mkreq(fs, BFS_R_READ, ctx, BFS_CB_SIZE,
				    (union bfs_cb){.size = cb}, arg);

	if (req == NULL) {
		return;
	}
	req->fh = fh;
	req->buf = buf;
	req->size = size;
	req->offset = offset;
	bfs_submit(req);
}

void ust_blobfs_read_lend(struct ust_blobfs *fs, struct ust_blobfs_file *fh, size_t size,
			  uint64_t offset, struct iovec *iov, int iovcnt, ust_blobfs_lend_cb cb,
			  void *arg)
{
	struct bfs_req *req = mkreq(fs, BFS_R_READ, NULL, BFS_CB_LEND,
				    (union bfs_cb){.lend = cb}, arg);

	if (req == NULL) {
		return;
	}
	if (ust_get_thread() != fs->thread || iov == NULL || iovcnt <= 0) {
		fail_now(req, iov == NULL || iovcnt <= 0 ? -EINVAL : -ENOTSUP);
		return;
	}
	req->fh = fh;
	req->size = size;
	req->offset = offset;
	req->lend_iov = iov;
	req->lend_cnt = iovcnt;
	bfs_submit(req);
}

static void lend_release_msg(void *arg)
{
	bfs_lend_release(arg);
}

void ust_blobfs_lend_release(struct ust_blobfs *fs, struct ust_blobfs_lend *lend)
{
	struct bfs_req *req = (struct bfs_req *)lend;

	if (lend == NULL) {
		return;
	}
	if (ust_get_thread() == fs->thread) {
		bfs_lend_release(req);
		return;
	}
	/* Misuse, but the range must not stay locked: finish where it belongs. */
	UST_ERRLOG("blobfs: a lend released off the metadata thread\n");
	if (ust_thread_send_msg(fs->thread, lend_release_msg, req) != 0) {
		UST_ERRLOG("blobfs: cannot release a lend: its range stays locked\n");
	}
}

void ust_blobfs_write(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		      struct ust_blobfs_file *fh, const void *buf, size_t size, uint64_t offset,
		      ust_blobfs_size_cb cb, void *arg)
{
	struct bfs_req *req = mkreq(fs, BFS_R_WRITE, ctx, BFS_CB_SIZE,
				    (union bfs_cb){.size = cb}, arg);

	if (req == NULL) {
		return;
	}
	req->fh = fh;
	req->cbuf = buf;
	req->size = size;
	req->offset = offset;
	bfs_submit(req);
}

int64_t ust_blobfs_write_fill(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			      struct ust_blobfs_file *fh, size_t size, uint64_t offset,
			      ust_blobfs_store_fn store, void *arg)
{
	if (fs == NULL || ctx == NULL || fh == NULL || store == NULL) {
		return -EINVAL;
	}
	/* No message to the metadata thread: the bytes must be taken now. */
	if (ust_get_thread() != fs->thread) {
		return -ENOTSUP;
	}
	return bfs_write_fill(fs, ctx, fh, size, offset, store, arg);
}

void ust_blobfs_flush(struct ust_blobfs *fs, struct ust_blobfs_file *fh, ust_blobfs_op_cb cb,
		      void *arg)
{
	ust_blobfs_fsync(fs, fh, false, cb, arg);
}

void ust_blobfs_fsync(struct ust_blobfs *fs, struct ust_blobfs_file *fh, bool datasync,
		      ust_blobfs_op_cb cb, void *arg)
{
	const struct ust_blobfs_ctx *ctx = NULL;
	struct bfs_req *req = mkreq(fs, BFS_R_FSYNC, ctx, BFS_CB_OP, (union bfs_cb){.op = cb}, arg);

	if (req == NULL) {
		return;
	}
	req->fh = fh;
	req->datasync = datasync;
	bfs_submit(req);
}

void ust_blobfs_release(struct ust_blobfs *fs, struct ust_blobfs_file *fh, ust_blobfs_op_cb cb,
			void *arg)
{
	const struct ust_blobfs_ctx *ctx = NULL;
	struct bfs_req *req = mkreq(fs, BFS_R_RELEASE, ctx, BFS_CB_OP,
				    (union bfs_cb){.op = cb}, arg);

	if (req == NULL) {
		return;
	}
	req->fh = fh;
	bfs_submit(req);
}

void ust_blobfs_fallocate(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			  struct ust_blobfs_file *fh, int mode, uint64_t offset, uint64_t length,
			  ust_blobfs_op_cb cb, void *arg)
{
	struct bfs_req *req = mkreq(fs, BFS_R_FALLOCATE, ctx, BFS_CB_OP,
				    (union bfs_cb){.op = cb}, arg);

	if (req == NULL) {
		return;
	}
	if (length == 0 || offset + length < offset) {
		fail_now(req, -EINVAL);
		return;
	}
	req->fh = fh;
	req->mode = (uint32_t)mode;
	req->offset = offset;
	req->length = length;
	bfs_submit(req);
}

void ust_blobfs_opendir(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			ust_blobfs_ino ino, ust_blobfs_open_cb cb, void *arg)
{
	struct bfs_req *req = mkreq(fs, BFS_R_OPENDIR, ctx, BFS_CB_OPEN,
				    (union bfs_cb){.open = cb}, arg);

	if (req == NULL) {
		return;
	}
	req->ino = ino;
	bfs_submit(req);
}

void ust_blobfs_readdir(struct ust_blobfs *fs, struct ust_blobfs_file *dh, uint64_t offset,
			bool plus, ust_blobfs_fill_fn fill, void *fill_arg, ust_blobfs_op_cb cb,
			void *arg)
{
	const struct ust_blobfs_ctx *ctx = NULL;
	struct bfs_req *req = mkreq(fs, BFS_R_READDIR, ctx, BFS_CB_OP,
				    (union bfs_cb){.op = cb}, arg);

	if (req == NULL) {
		return;
	}
	req->fh = dh;
	req->offset = offset;
	req->plus = plus;
	req->fill = fill;
	req->fill_arg = fill_arg;
	bfs_submit(req);
}

void ust_blobfs_releasedir(struct ust_blobfs *fs, struct ust_blobfs_file *dh,
			   ust_blobfs_op_cb cb, void *arg)
{
	const struct ust_blobfs_ctx *ctx = NULL;
	struct bfs_req *req = mkreq(fs, BFS_R_RELEASEDIR, ctx, BFS_CB_OP,
				    (union bfs_cb){.op = cb}, arg);

	if (req == NULL) {
		return;
	}
	req->fh = dh;
	bfs_submit(req);
}

void ust_blobfs_statfs(struct ust_blobfs *fs, ust_blobfs_statfs_cb cb, void *arg)
{
	const struct ust_blobfs_ctx *ctx = NULL;
	struct bfs_req *req = mkreq(fs, BFS_R_STATFS, ctx, BFS_CB_STATFS,
				    (union bfs_cb){.statfs = cb}, arg);

	if (req == NULL) {
		return;
	}
	bfs_submit(req);
}

void ust_blobfs_setxattr(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			 ust_blobfs_ino ino, const char *name, const void *value, size_t size,
			 int flags, ust_blobfs_op_cb cb, void *arg)
{
	struct bfs_req *req = mkreq(fs, BFS_R_SETXATTR, ctx, BFS_CB_OP,
				    (union bfs_cb){.op = cb}, arg);

	if (req == NULL) {
		return;
	}
	if (name == NULL || strnlen(name, 256) > 255) {
		fail_now(req, -ERANGE);
		return;
	}
	req->ino = ino;
	req->name = name;
	req->cbuf = value;
	req->size = size;
	req->flags = (uint32_t)flags;
	bfs_submit(req);
}

void ust_blobfs_getxattr(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			 ust_blobfs_ino ino, const char *name, void *buf, size_t size,
			 ust_blobfs_size_cb cb, void *arg)
{
	struct bfs_req *req = mkreq(fs, BFS_R_GETXATTR, ctx, BFS_CB_SIZE,
				    (union bfs_cb){.size = cb}, arg);

	if (req == NULL) {
		return;
	}
	if (name == NULL || strnlen(name, 256) > 255) {
		fail_now(req, -ERANGE);
		return;
	}
	req->ino = ino;
	req->name = name;
	req->buf = buf;
	req->size = size;
	bfs_submit(req);
}

void ust_blobfs_listxattr(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			  ust_blobfs_ino ino, char *buf, size_t size, ust_blobfs_size_cb cb,
			  void *arg)
{
	struct bfs_req *req = mkreq(fs, BFS_R_LISTXATTR, ctx, BFS_CB_SIZE,
				    (union bfs_cb){.size = cb}, arg);

	if (req == NULL) {
		return;
	}
	req->ino = ino;
	req->buf = buf;
	req->size = size;
	bfs_submit(req);
}

void ust_blobfs_removexattr(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			    ust_blobfs_ino ino, const char *name, ust_blobfs_op_cb cb, void *arg)
{
	struct bfs_req *req = mkreq(fs, BFS_R_REMOVEXATTR, ctx, BFS_CB_OP,
				    (union bfs_cb){.op = cb}, arg);

	if (req == NULL) {
		return;
	}
	if (name == NULL || strnlen(name, 256) > 255) {
		fail_now(req, -ERANGE);
		return;
	}
	req->ino = ino;
	req->name = name;
	bfs_submit(req);
}

ust_blobfs_ino ust_blobfs_file_ino(const struct ust_blobfs_file *fh)
{
	return bfs_ino_out(fh->ip->fs, fh->ip->ino);
}
