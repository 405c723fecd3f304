/*
 * blobfs path API: resolve absolute paths over the inode API for programs
 * that link blobfs directly (no FUSE), then run the same inode operation a
 * FUSE request would, so both have the same semantics.
 *
 * Guarantees: a path over PATH_MAX - 1 bytes or a component over NAME_MAX
 * is -ENAMETOOLONG; symlinks in the middle of a path are followed (40 at
 * most: -ELOOP); the last component is followed by open and stat only.
 * Lookups made while walking do not count as FUSE lookups.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blobfs_internal.h"

#define BFS_MAX_SYMLINKS 40

enum path_op {
	P_OPEN,
	P_STAT,
	P_MKDIR,
	P_UNLINK,
	P_RMDIR,
	P_RENAME,
};

enum walk_state {
	W_START,
	W_NEXT,
	W_CHILD,
	W_RESOLVED,
	W_SECOND,
	W_OP_DONE,
};

struct bfs_path {
	enum path_op op;
	char buf[2 * UST_BLOBFS_PATH_MAX];
	char *rest;
	int links;
	bool follow_last;
	struct bfs_inode *cur;
	struct bfs_inode *child;
	char comp[UST_BLOBFS_NAME_MAX + 1];
	/* results of the walks: parent inode + last name (+ the target if it exists) */
	uint64_t parent1, parent2;
	char name1[UST_BLOBFS_NAME_MAX + 1], name2[UST_BLOBFS_NAME_MAX + 1];
	struct bfs_inode *target;
	bool second;
};

static void walk_resume(struct bfs_req *req)
{
	bfs_path_run(req);
}

void bfs_path_free(struct bfs_req *req)
{
	free(req->pw);
	req->pw = NULL;
}

static void path_done(struct bfs_req *req, int rc)
{
	bfs_path_free(req);
	bfs_complete(req, rc);
}

static int walk_begin(struct bfs_req *req, const char *path, bool follow_last)
{
	struct bfs_path *pw = req->pw;
	size_t len = strnlen(path, UST_BLOBFS_PATH_MAX);

	if (len >= UST_BLOBFS_PATH_MAX) {
		return -ENAMETOOLONG;
	}
	if (path[0] != '/') {
		return -EINVAL;
	}
	memcpy(pw->buf, path, len + 1);
	pw->rest = pw->buf;
	pw->links = 0;
	pw->follow_last = follow_last;
	pw->cur = req->fs->root;
	pw->target = NULL;
	return 0;
}

/* Submit the inode operation as an internal request; it resumes us at W_OP_DONE. */
static void run_child(struct bfs_req *req, enum bfs_kind kind)
{
	struct bfs_req *c = bfs_req_new(req->fs, kind, &req->ctx);

	if (c == NULL) {
		path_done(req, -ENOMEM);
		return;
	}
	c->parent = req;
	c->cb_kind = BFS_CB_NONE;
	req->state = W_OP_DONE;
	c->ino = bfs_ino_out(req->fs, req->pw->parent1);
	c->name = req->pw->name1;
	switch (kind) {
	case BFS_R_OPEN:
		c->ino = bfs_ino_out(req->fs, req->pw->target->ino);
		c->oflags = req->oflags;
		break;
	case BFS_R_CREATE:
		c->mode = S_IFREG | (req->mode & 07777);
		c->oflags = req->oflags;
		break;
	case BFS_R_MKDIR:
		c->mode = S_IFDIR | (req->mode & 07777);
		break;
	case BFS_R_RENAME:
		c->ino2 = bfs_ino_out(req->fs, req->pw->parent2);
		c->name2 = req->pw->name2;
		c->flags = req->flags;
		break;
	default:
		break;
	}
	atomic_fetch_add(&req->fs->inflight, 1);
	bfs_dispatch(c);
}

void bfs_path_run(struct bfs_req *req)
{
	struct ust_blobfs *fs = req->fs;
	struct bfs_path *pw = req->pw;
	struct bfs_dirent *de;
	char *end;
	size_t len;
	int rc;

	for (;;) {
		switch (req->state) {
		case W_START:
			rc = walk_begin(req, req->path, pw->op == P_STAT ||
						(pw->op == P_OPEN && !(req->oflags & O_NOFOLLOW)));
			if (rc != 0) {
				path_done(req, rc);
				return;
			}
			req->state = W_NEXT;
			continue;
		case W_NEXT:
			while (*pw->rest == '/') {
				pw->rest++;
			}
			if (*pw->rest == '\0') {
				/* the path names a directory we already hold ("/" or "a/b/") */
				pw->target = pw->cur;
				pw->comp[0] = '\0';
				req->state = W_RESOLVED;
				continue;
			}
			end = strchr(pw->rest, '/');
			len = end != NULL ? (size_t)(end - pw->rest) : strlen(pw->rest);
			if (len > UST_BLOBFS_NAME_MAX) {
				path_done(req, -ENAMETOOLONG);
				return;
			}
			memcpy(pw->comp, pw->rest, len);
			pw->comp[len] = '\0';
			pw->rest += len;
			if (!S_ISDIR(pw->cur->mode)) {
				path_done(req, -ENOTDIR);
				return;
			}
			if (!bfs_may(&req->ctx, pw->cur, 1)) {
				path_done(req, -EACCES);
				return;
			}
			if (strcmp(pw->comp, ".") == 0 || strcmp(pw->comp, "..") == 0) {
				uint64_t ino = pw->cur->ino;

				if (pw->comp[1] == '.' && pw->cur != fs->root && pw->cur->nrefs > 0) {
					ino = pw->cur->refs[0].parent;
				}
				req->state = W_CHILD;
				req->rc = 0;
				if (bfs_iget(fs, ino, &pw->child, walk_resume, req) == 0) {
					return;
				}
				continue;
			}
			de = bfs_dir_find(pw->cur, pw->comp);
			if (de == NULL) {
				while (*pw->rest == '/') {
					pw->rest++;
				}
				if (*pw->rest != '\0') {
					path_done(req, bfs_dir_miss(pw->cur, pw->comp));
					return;
				}
				pw->target = NULL; /* the last name does not exist (yet) */
				req->state = W_RESOLVED;
				continue;
			}
			req->state = W_CHILD;
			req->rc = 0;
			if (bfs_iget(fs, de->ino, &pw->child, walk_resume, req) == 0) {
				return;
			}
			continue;
		case W_CHILD: {
			bool last;

			if (req->rc != 0) {
				path_done(req, req->rc);
				return;
			}
			end = pw->rest;
			while (*end == '/') {
				end++;
			}
			last = *end == '\0';
			if (S_ISLNK(pw->child->mode) && (!last || pw->follow_last)) {
				size_t tl = strlen(pw->child->link), rl = strlen(pw->rest);

				if (++pw->links > BFS_MAX_SYMLINKS) {
					path_done(req, -ELOOP);
					return;
				}
				if (tl + rl + 1 >= UST_BLOBFS_PATH_MAX) {
					path_done(req, -ENAMETOOLONG);
					return;
				}
				/* splice: target + rest, in the second half of buf */
				memmove(pw->buf + UST_BLOBFS_PATH_MAX + tl, pw->rest, rl + 1);
				memcpy(pw->buf + UST_BLOBFS_PATH_MAX, pw->child->link, tl);
				memmove(pw->buf, pw->buf + UST_BLOBFS_PATH_MAX, tl + rl + 1);
				pw->rest = pw->buf;
				if (pw->buf[0] == '/') {
					pw->cur = fs->root;
				}
				req->state = W_NEXT;
				continue;
			}
			if (!last) {
				pw->cur = pw->child;
				req->state = W_NEXT;
				continue;
			}
			pw->target = pw->child;
			req->state = W_RESOLVED;
			continue;
		}
		case W_RESOLVED:
			if (pw->comp[0] == '\0' && pw->op != P_STAT && pw->op != P_OPEN) {
				path_done(req, pw->op == P_MKDIR ? -EEXIST : -EBUSY);
				return;
			}
			if (!pw->second) {
				pw->parent1 = pw->cur->ino;
				memcpy(pw->name1, pw->comp, sizeof(pw->name1));
			} else {
				pw->parent2 = pw->cur->ino;
				memcpy(pw->name2, pw->comp, sizeof(pw->name2));
			}
			switch (pw->op) {
			case P_STAT:
				if (pw->target == NULL) {
					path_done(req, -ENOENT);
					return;
				}
				bfs_fill_attr(fs, pw->target, &req->attr);
				path_done(req, 0);
				return;
			case P_OPEN:
				if (pw->target == NULL) {
					if (!(req->oflags & O_CREAT)) {
						path_done(req, -ENOENT);
						return;
					}
					run_child(req, BFS_R_CREATE);
					return;
				}
				if ((req->oflags & O_CREAT) && (req->oflags & O_EXCL)) {
					path_done(req, -EEXIST);
					return;
				}
				if ((req->oflags & O_NOFOLLOW) && S_ISLNK(pw->target->mode)) {
					path_done(req, -ELOOP);
					return;
				}
				if ((req->oflags & O_DIRECTORY) && !S_ISDIR(pw->target->mode)) {
					path_done(req, -ENOTDIR);
					return;
				}
				run_child(req, BFS_R_OPEN);
				return;
			case P_MKDIR:
				run_child(req, BFS_R_MKDIR);
				return;
			case P_UNLINK:
				run_child(req, BFS_R_UNLINK);
				return;
			case P_RMDIR:
				run_child(req, BFS_R_RMDIR);
				return;
			case P_RENAME:
				if (!pw->second) {
					pw->second = true;
					rc = walk_begin(req, req->path2, false);
					if (rc != 0) {
						path_done(req, rc);
						return;
					}
					req->state = W_NEXT;
					continue;
				}
				run_child(req, BFS_R_RENAME);
				return;
			}
			return;
		case W_OP_DONE:
			if (req->rc == 0 && pw->op == P_OPEN && req->out_fh != NULL) {
				/* the walk's open is not a FUSE lookup: drop the one create counted */
				if (req->out_fh->ip->nlookup > 0 && pw->target == NULL) {
					req->out_fh->ip->nlookup--;
				}
			}
			path_done(req, req->rc);
			return;
		default:
			path_done(req, -EINVAL);
			return;
		}
	}
}

/* ---- entry points -------------------------------------------------------------------------------- */

static struct bfs_req *path_req(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
				enum path_op op, const char *path)
{
	struct bfs_req *req = bfs_req_new(fs, BFS_R_PATH, ctx);

	if (req == NULL) {
		return NULL;
	}
	req->pw = calloc(1, sizeof(*req->pw));
	if (req->pw == NULL) {
		free(req);
		return NULL;
	}
	req->pw->op = op;
	req->path = path;
	return req;
}

void ust_blobfs_path_open(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			  const char *path, int flags, uint32_t mode, ust_blobfs_open_cb cb,
			  void *arg)
{
	struct bfs_req *req = path_req(fs, ctx, P_OPEN, path);

	if (req == NULL) {
		cb(arg, NULL, -ENOMEM);
		return;
	}
	req->cb_kind = BFS_CB_OPEN;
	req->cb.open = cb;
	req->cb_arg = arg;
	req->oflags = flags;
	req->mode = mode;
	bfs_submit(req);
}

void ust_blobfs_path_stat(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			  const char *path, ust_blobfs_attr_cb cb, void *arg)
{
	struct bfs_req *req = path_req(fs, ctx, P_STAT, path);

	if (req == NULL) {
		cb(arg, NULL, -ENOMEM);
		return;
	}
	req->cb_kind = BFS_CB_ATTR;
	req->cb.attr = cb;
	req->cb_arg = arg;
	bfs_submit(req);
}

static void path_op(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx, enum path_op op,
		    const char *path, const char *path2, uint32_t mode, uint32_t flags,
		    ust_blobfs_op_cb cb, void *arg)
{
	struct bfs_req *req = path_req(fs, ctx, op, path);

	if (req == NULL) {
		cb(arg, -ENOMEM);
		return;
	}
	req->cb_kind = BFS_CB_OP;
	req->cb.op = cb;
	req->cb_arg = arg;
	req->path2 = path2;
	req->mode = mode;
	req->flags = flags;
	bfs_submit(req);
}

void ust_blobfs_path_mkdir(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			   const char *path, uint32_t mode, ust_blobfs_op_cb cb, void *arg)
{
	path_op(fs, ctx, P_MKDIR, path, NULL, mode, 0, cb, arg);
}

void ust_blobfs_path_unlink(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			    const char *path, ust_blobfs_op_cb cb, void *arg)
{
	path_op(fs, ctx, P_UNLINK, path, NULL, 0, 0, cb, arg);
}

void ust_blobfs_path_rmdir(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			   const char *path, ust_blobfs_op_cb cb, void *arg)
{
	path_op(fs, ctx, P_RMDIR, path, NULL, 0, 0, cb, arg);
}

void ust_blobfs_path_rename(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			    const char *from, const char *to, uint32_t flags, ust_blobfs_op_cb cb,
			    void *arg)
{
	path_op(fs, ctx, P_RENAME, from, to, 0, flags, cb, arg);
}
