/*
 * blobfs file data and attributes: open, read, write, fsync, release,
 * fallocate and setattr (including truncate), on top of io-unit blob I/O.
 *
 * Guarantees: reads and writes are byte-granular (partial io units are
 * read, merged and written back: a write reads only its partial first and
 * last units; aligned requests go to the blob without a copy). Writes that share an io unit, and truncates, never run at the same
 * time on one inode (a range lock), so a read-modify-write never loses a
 * neighbour's bytes. A lend (ust_blobfs_read_lend) holds its range in the
 * same lock, shared with other lends, until it is given back: what would
 * change or free the lent bytes waits. Bytes at or past the size read as zero (truncate down
 * zeroes the rest of its last cluster). Size and times changed by writes are
 * synced by fsync, the last release, unmount or the periodic flusher;
 * setattr and fallocate are durable when they complete.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ustor/env.h"
#include "ustor/log.h"

#include "blobfs_internal.h"

enum io_state {
	IO_START,
	IO_LOADED,
	IO_LOCKED,
	IO_RESIZED,
	IO_ALLOCATED,
	IO_HEAD_READ, /* unaligned write over 3+ units: its first unit is in the bounce */
	IO_READ_DONE,
	IO_LEND_LOCKED, /* a lend holds its range (shared) */
	IO_WRITE_DONE,
	IO_SYNCED,
	/* truncate to req->new_size under the lock, then req->after_trunc */
	T_LOCKED,
	T_HEAD_READ,
	T_HEAD_WRITTEN,
	T_UNMAPPED,
	T_RESIZED,
	/* fallocate punch */
	P_HEAD_DONE,
	P_TAIL_DONE,
	P_UNMAPPED,
	SA_APPLY,
	SA_DONE,
	REL_SYNCED,
	REL_LOCKED, /* the last handle of an unlinked file: its data goes once nothing holds it */
	REL_DONE,
	OPEN_TRUNCATED,
	OPEN_DONE,
};

static void io_step(struct bfs_req *req);

static void io_cb(void *arg, int rc)
{
	struct bfs_req *req = arg;

	req->rc = rc;
	io_step(req);
}

static void io_resume(struct bfs_req *req)
{
	io_step(req);
}

void bfs_io_run(struct bfs_req *req)
{
	io_step(req);
}

/* ---- sync ---------------------------------------------------------------------------------------- */

struct sync_ctx {
	void (*cb)(struct bfs_req *req);
	struct bfs_req *req;
	struct bfs_inode *ip;
};

static void sync_done(void *arg, int rc)
{
	struct sync_ctx *sc = arg;

	sc->ip->nsyncs--;
	if (rc != 0) {
		sc->ip->dirty = true; /* try again later */
	}
	if (sc->cb != NULL) {
		sc->req->rc = rc;
		sc->cb(sc->req);
	}
	free(sc);
}

void bfs_sync_inode(struct ust_blobfs *fs, struct bfs_inode *ip, void (*cb)(struct bfs_req *),
		    struct bfs_req *req)
{
	struct sync_ctx *sc;

	if (ip->blob == NULL) {
		if (cb != NULL) {
			req->rc = 0;
			cb(req);
		}
		return;
	}
	sc = calloc(1, sizeof(*sc));
	if (sc == NULL) {
		if (cb != NULL) {
			req->rc = -ENOMEM;
			cb(req);
		}
		return;
	}
	sc->cb = cb;
	sc->req = req;
	sc->ip = ip;
	bfs_inode_store(fs, ip);
	ip->dirty = false;
	ip->nsyncs++;
	ust_blob_sync_md(ip->blob, sync_done, sc);
}

/* ---- the range lock ----------------------------------------------------------------------------------- */

static bool range_overlaps(const struct bfs_req *list, uint64_t u0, uint64_t u1)
{
	for (; list != NULL; list = list->next) {
		if (list->u0 < u1 && u0 < list->u1) {
			return true;
		}
	}
	return false;
}

/*
 * Does an entry of list over req's range keep req out? Shared entries (the
 * lends of ust_blobfs_read_lend) exclude only exclusive ones (writes,
 * truncates, fallocates), which exclude everything.
 */
static bool range_conflicts(const struct bfs_req *list, const struct bfs_req *req)
{
	for (; list != NULL; list = list->next) {
		if (list->u0 < req->u1 && req->u0 < list->u1 && !(list->shared && req->shared)) {
			return true;
		}
	}
	return false;
}

static bool lock_range(struct bfs_req *req)
{
	struct bfs_inode *ip = req->ip;
	struct bfs_req **pp;

	/*
	 * A shared request also queues behind a waiting exclusive one, so a
	 * stream of lends cannot keep a write out for ever.
	 */
	if (range_conflicts(ip->io_active, req) ||
	    (req->shared && range_conflicts(ip->io_waiting, req))) {
		pp = &ip->io_waiting;
		while (*pp != NULL) {
			pp = &(*pp)->next;
		}
		req->next = NULL;
		*pp = req;
		return false;
	}
	req->next = ip->io_active;
	ip->io_active = req;
	req->locked = true;
	return true;
}

/* Lock every unit of the file for req, which then goes on in state next: false while it waits. */
static bool lock_whole(struct bfs_req *req, int next)
{
	req->u0 = 0;
	req->u1 = UINT64_MAX;
	req->state = next;
	return lock_range(req);
}

static void unlock_range(struct bfs_req *req)
{
	struct bfs_inode *ip = req->ip;
	struct bfs_req **pp, *w, *next;

	if (!req->locked) {
		return; /* ip may be NULL: its load failed (a damaged inode) */
	}
	pp = &ip->io_active;
	req->locked = false;
	while (*pp != NULL && *pp != req) {
		pp = &(*pp)->next;
	}
	if (*pp == req) {
		*pp = req->next;
	}
	req->next = NULL;
	/*
	 * Let every waiter try again, in arrival order. Its state is the one
	 * after the lock, so it must take the lock here: one that still
	 * overlaps an active request (another waiter that got in first) waits
	 * again.
	 */
	w = ip->io_waiting;
	ip->io_waiting = NULL;
	for (; w != NULL; w = next) {
		next = w->next;
		w->next = NULL;
		if (lock_range(w)) {
			io_step(w);
		}
	}
}

static void io_finish(struct bfs_req *req, int rc)
{
	unlock_range(req);
	if (req->bounce != NULL) {
		ust_dma_free(req->bounce);
		req->bounce = NULL;
	}
	bfs_complete(req, rc);
}

static uint64_t capacity(const struct bfs_req *req)
{
	return ust_blob_get_num_clusters(req->ip->blob) * req->fs->cluster;
}

static uint64_t clusters_for(const struct ust_blobfs *fs, uint64_t bytes)
{
	return (bytes + fs->cluster - 1) / fs->cluster;
}

/* Read-modify-write of one io unit: zero bytes [from, to) of unit, then go to next. */
static void rmw_start(struct bfs_req *req, uint64_t unit, uint32_t from, uint32_t to, int next)
{
	struct ust_blobfs *fs = req->fs;

	req->rmw_next = next;
	req->rmw_unit = unit;
	req->rmw_from = from;
	req->rmw_to = to;
	if (req->bounce == NULL) {
		req->bounce = ust_dma_malloc(fs->io_unit, fs->io_unit);
	}
	if (req->bounce == NULL) {
		io_finish(req, -ENOMEM);
		return;
	}
	req->state = T_HEAD_READ;
	ust_blob_read(req->ip->blob, fs->ch, req->bounce, unit, 1, io_cb, req);
}

static void rmw_write(struct bfs_req *req, int next_state)
{
	memset((uint8_t *)req->bounce + req->rmw_from, 0, req->rmw_to - req->rmw_from);
	req->state = next_state;
	ust_blob_write(req->ip->blob, req->fs->ch, req->bounce, req->rmw_unit, 1, io_cb, req);
}

static bool owner_or_root(const struct bfs_req *req, const struct bfs_inode *ip)
{
	return req->ctx.uid == 0 || req->ctx.uid == ip->uid;
}

/* setattr's checks (they hold with or without check_access). */
static int setattr_check(struct bfs_req *req)
{
	struct bfs_inode *ip = req->ip;
	const struct ust_blobfs_attr *a = &req->in_attr;
	uint32_t v = req->valid;
	/*
	 * Only a kernel that keeps the times itself (the FUSE writeback cache)
	 * sends a ctime, and it sends the "now" of a truncate, an
	 * open(O_TRUNC) or a write as an explicit mtime, which any writer may
	 * set. Without check_access it has checked the caller already (FUSE's
	 * default_permissions: Linux's setattr_prepare), so its times are
	 * taken as they come.
	 */
	bool kernel_times = (v & UST_BLOBFS_SET_CTIME) && !req->ctx.check_access;

	if ((v & UST_BLOBFS_SET_MODE) && !owner_or_root(req, ip)) {
		return -EPERM;
	}
	if ((v & UST_BLOBFS_SET_UID) && a->uid != ip->uid && req->ctx.uid != 0) {
		return -EPERM;
	}
	if ((v & UST_BLOBFS_SET_GID) && a->gid != ip->gid && req->ctx.uid != 0 &&
	    (req->ctx.uid != ip->uid || a->gid != req->ctx.gid)) {
		return -EPERM;
	}
	if ((v & (UST_BLOBFS_SET_ATIME | UST_BLOBFS_SET_MTIME)) &&
	    !(v & (UST_BLOBFS_SET_ATIME_NOW | UST_BLOBFS_SET_MTIME_NOW)) && !kernel_times &&
	    !owner_or_root(req, ip)) {
		return -EPERM;
	}
	if ((v & (UST_BLOBFS_SET_ATIME_NOW | UST_BLOBFS_SET_MTIME_NOW)) && !owner_or_root(req, ip) &&
	    !bfs_may(&req->ctx, ip, 2)) {
		return -EACCES;
	}
	if (v & UST_BLOBFS_SET_SIZE) {
		if (S_ISDIR(ip->mode)) {
			return -EISDIR;
		}
		if (!S_ISREG(ip->mode)) {
			return -EINVAL;
		}
		if (!bfs_may(&req->ctx, ip, 2)) {
			return -EACCES;
		}
	}
	return 0;
}

/*
 * Drop set-user-ID, and set-group-ID when the group may execute (without
 * group execute S_ISGID marks mandatory locking, not a privilege, and
 * stays): Linux's rule for a write, truncate or chown. True if the mode
 * changed.
 */
static uint32_t suidgid_bits(const struct bfs_inode *ip)
{
	return ip->mode & (S_ISUID | ((ip->mode & S_IXGRP) ? S_ISGID : 0));
}

static bool kill_suidgid(struct bfs_inode *ip)
{
	uint32_t bits = suidgid_bits(ip);

	ip->mode &= ~bits;
	return bits != 0;
}

/* A write by ctx drops the set-id bits of ip that kill_suidgid() drops: are there any? */
static bool write_kills_suidgid(const struct ust_blobfs_ctx *ctx, const struct bfs_inode *ip)
{
	if (!ctx->kill_suidgid && (ctx->uid == 0 || ctx->uid == ip->uid)) {
		return false;
	}
	return suidgid_bits(ip) != 0;
}

/* Data up to end was written: the size grows to it, mtime and ctime are now, the flusher persists them. */
static void note_written(struct bfs_inode *ip, uint64_t end)
{
	struct timespec now;

	bfs_now(&now);
	if (end > ip->size) {
		ip->size = end;
	}
	ip->mtime = ip->ctime = now;
	ip->dirty = true;
}

/*
 * The write in place: everything a write does after its data is stored
 * (IO_WRITE_DONE) happens here in the same call, so the only cases taken
 * are those where nothing has to wait - no lock to wait for (a write in
 * flight or waiting over the range, a truncate), no resize, no unit to
 * merge, no mode change to sync. Anything else is -EAGAIN, and the caller
 * makes an ordinary write.
 */
int64_t bfs_write_fill(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		       struct ust_blobfs_file *fh, size_t size, uint64_t offset,
		       ust_blobfs_store_fn store, void *arg)
{
	struct bfs_inode *ip = fh->ip;
	uint64_t U = fs->io_unit, end = offset + size;
	int rc;

	if (fh->dir) {
		return -EISDIR;
	}
	if ((fh->flags & O_ACCMODE) == O_RDONLY) {
		return -EBADF;
	}
	if (size == 0 || (fh->flags & O_APPEND) || end < offset || offset % U != 0 ||
	    size % U != 0 || end > ust_blob_get_num_clusters(ip->blob) * fs->cluster ||
	    range_overlaps(ip->io_active, offset / U, end / U) ||
	    range_overlaps(ip->io_waiting, offset / U, end / U) || write_kills_suidgid(ctx, ip)) {
		return -EAGAIN;
	}
	rc = ust_blob_write_fill(ip->blob, fs->ch, offset / U, size / U, store, arg);
	if (rc != 0) {
		return rc;
	}
	note_written(ip, end);
	return (int64_t)size;
}

static void setattr_apply(struct bfs_req *req)
{
	struct bfs_inode *ip = req->ip;
	const struct ust_blobfs_attr *a = &req->in_attr;
	uint32_t v = req->valid;
	struct timespec now;

	bfs_now(&now);
	if (v & UST_BLOBFS_SET_MODE) {
		ip->mode = (ip->mode & S_IFMT) | (a->mode & 07777);
		if (req->ctx.uid != 0 && req->ctx.gid != ip->gid) {
			ip->mode &= ~(uint32_t)S_ISGID;
		}
	}
	if (v & (UST_BLOBFS_SET_UID | UST_BLOBFS_SET_GID)) {
		if (v & UST_BLOBFS_SET_UID) {
			ip->uid = a->uid;
		}
		if (v & UST_BLOBFS_SET_GID) {
			ip->gid = a->gid;
		}
		if (!S_ISDIR(ip->mode)) {
			kill_suidgid(ip);
		}
	}
	if ((v & UST_BLOBFS_SET_SIZE) && req->ctx.kill_suidgid) {
		kill_suidgid(ip);
	}
	if (v & UST_BLOBFS_SET_ATIME) {
		ip->atime = (v & UST_BLOBFS_SET_ATIME_NOW) ? now : a->atime;
	}
	if (v & UST_BLOBFS_SET_MTIME) {
		ip->mtime = (v & UST_BLOBFS_SET_MTIME_NOW) ? now : a->mtime;
	}
	ip->ctime = (v & UST_BLOBFS_SET_CTIME) ? a->ctime : now;
}

/*
 * A read's extent against the file's size now: req->length and
 * req->result, and the io units [u0, u1) that hold them. False at or past
 * the end of file (result 0).
 */
static bool read_extent(struct bfs_req *req)
{
	uint64_t U = req->fs->io_unit, size = req->ip->size;

	if (req->offset >= size || req->size == 0) {
		req->result = 0;
		return false;
	}
	req->length = req->size < size - req->offset ? req->size : size - req->offset;
	req->result = (int64_t)req->length;
	req->u0 = req->offset / U;
	req->u1 = (req->offset + req->length + U - 1) / U;
	return true;
}

/*
 * A read's bytes lent in place, under its shared lock: the size is read
 * now, after any truncate it waited for; then its io units from the blob,
 * cut to the bytes asked for. The request stays in flight, its range
 * locked, until ust_blobfs_lend_release() (bfs_lend_release).
 */
static int read_lend(struct bfs_req *req)
{
	uint64_t U = req->fs->io_unit;
	int n = req->lend_cnt, rc;

	if (!read_extent(req)) {
		return 0;
	}
	rc = ust_blob_read_lend(req->ip->blob, req->fs->ch, req->u0, req->u1 - req->u0, req->lend_iov,
				&n);
	if (rc != 0) {
		return rc;
	}
	req->lend_cnt = ust_iov_slice(req->lend_iov, req->lend_iov, n, req->offset - req->u0 * U,
				      req->length);
	return 0;
}

void bfs_lend_release(struct bfs_req *req)
{
	req->cb_kind = BFS_CB_NONE;
	io_finish(req, 0);
}

static void io_step(struct bfs_req *req)
{
	struct ust_blobfs *fs = req->fs;
	struct bfs_inode *ip;
	struct timespec now;
	uint64_t U = fs->io_unit, off, len;
	int rc;

	for (;;) {
		switch (req->state) {
		case IO_START:
			if (req->fh != NULL) {
				req->ip = req->fh->ip;
				req->rc = 0;
				req->state = IO_LOADED;
				continue;
			}
			req->state = IO_LOADED;
			req->rc = 0;
			if (bfs_iget(fs, bfs_ino_in(fs, req->ino), &req->ip, io_resume, req) == 0) {
				return;
			}
			continue;
		case IO_LOADED:
			if (req->rc != 0) {
				io_finish(req, req->rc);
				return;
			}
			ip = req->ip;
			switch (req->kind) {
			case BFS_R_OPEN: {
				int acc = req->oflags & O_ACCMODE;
				int mask = acc == O_RDONLY ? 4 : acc == O_WRONLY ? 2 : 6;
				bool killed;

				if (ip->deleted) {
					io_finish(req, -ENOENT);
					return;
				}
				if (S_ISDIR(ip->mode) && (acc != O_RDONLY || (req->oflags & O_TRUNC))) {
					io_finish(req, -EISDIR);
					return;
				}
				if (S_ISLNK(ip->mode)) {
					io_finish(req, -ELOOP);
					return;
				}
				/* As Linux: O_TRUNC truncates (and needs write permission) whatever the access mode. */
				if (req->oflags & O_TRUNC) {
					mask |= 2;
				}
				if (!bfs_may(&req->ctx, ip, mask)) {
					io_finish(req, -EACCES);
					return;
				}
				killed = (req->oflags & O_TRUNC) && S_ISREG(ip->mode) && req->ctx.kill_suidgid &&
					 kill_suidgid(ip);
				if (killed) {
					bfs_now(&ip->ctime);
				}
				if ((req->oflags & O_TRUNC) && S_ISREG(ip->mode) && ip->size > 0) {
					req->new_size = 0;
					req->after_trunc = OPEN_TRUNCATED;
					if (!lock_whole(req, T_LOCKED)) {
						return;
					}
					continue;
				}
				/* a mode change is durable when answered, as a chmod is (docs/blobfs-format.md 7) */
				req->state = killed ? OPEN_TRUNCATED : OPEN_DONE;
				continue;
			}
			case BFS_R_READ:
				if (req->fh->dir) {
					io_finish(req, -EISDIR);
					return;
				}
				if ((req->fh->flags & O_ACCMODE) == O_WRONLY) {
					io_finish(req, -EBADF);
					return;
				}
				if (req->lend_iov != NULL) {
					req->shared = true;
					req->u0 = req->offset / U;
					req->u1 = req->offset + req->size < req->offset ?
							  UINT64_MAX :
							  (req->offset + req->size + U - 1) / U;
					req->state = IO_LEND_LOCKED;
					if (!lock_range(req)) {
						return;
					}
					continue;
				}
				if (!read_extent(req)) {
					io_finish(req, 0);
					return;
				}
				req->state = IO_READ_DONE;
				if (req->offset % U == 0 && req->length % U == 0) {
					ust_blob_read(ip->blob, fs->ch, req->buf, req->u0, req->u1 - req->u0, io_cb,
						      req);
					return;
				}
				req->bounce = ust_dma_malloc((req->u1 - req->u0) * U, U);
				if (req->bounce == NULL) {
					io_finish(req, -ENOMEM);
					return;
				}
				ust_blob_read(ip->blob, fs->ch, req->bounce, req->u0, req->u1 - req->u0, io_cb,
					      req);
				return;
			case BFS_R_WRITE:
				if (req->fh->dir) {
					io_finish(req, -EISDIR);
					return;
				}
				if ((req->fh->flags & O_ACCMODE) == O_RDONLY) {
					io_finish(req, -EBADF);
					return;
				}
				if (req->size == 0) {
					req->result = 0;
					io_finish(req, 0);
					return;
				}
				if (req->fh->flags & O_APPEND) {
					req->u0 = 0;
					req->u1 = UINT64_MAX;
				} else {
					if (req->offset + req->size < req->offset) {
						io_finish(req, -EFBIG);
						return;
					}
					req->u0 = req->offset / U;
					req->u1 = (req->offset + req->size + U - 1) / U;
				}
				req->state = IO_LOCKED;
				if (!lock_range(req)) {
					return;
				}
				continue;
			case BFS_R_FSYNC:
				req->state = IO_SYNCED;
				bfs_sync_inode(fs, ip, io_resume, req);
				return;
			case BFS_R_RELEASE:
			case BFS_R_RELEASEDIR:
				if (req->fh->dir != (req->kind == BFS_R_RELEASEDIR)) {
					io_finish(req, -EBADF);
					return;
				}
				req->state = REL_SYNCED;
				if (ip->dirty) {
					bfs_sync_inode(fs, ip, io_resume, req);
					return;
				}
				req->rc = 0;
				continue;
			case BFS_R_SETATTR:
				if (ip->deleted && (req->valid & UST_BLOBFS_SET_SIZE)) {
					io_finish(req, -ENOENT);
					return;
				}
				rc = setattr_check(req);
				if (rc != 0) {
					io_finish(req, rc);
					return;
				}
				if (ip->deleted) {
					/* an unlinked inode kept for FUSE: attributes in memory only */
					setattr_apply(req);
					bfs_fill_attr(fs, ip, &req->attr);
					io_finish(req, 0);
					return;
				}
				if (req->valid & UST_BLOBFS_SET_SIZE) {
					req->new_size = req->in_attr.size;
					req->after_trunc = SA_APPLY;
					if (!lock_whole(req, T_LOCKED)) {
						return;
					}
					continue;
				}
				req->state = SA_APPLY;
				continue;
			case BFS_R_FALLOCATE:
				if (req->fh->dir || !S_ISREG(ip->mode)) {
					io_finish(req, S_ISDIR(ip->mode) ? -EISDIR : -ENODEV);
					return;
				}
				if ((req->fh->flags & O_ACCMODE) == O_RDONLY) {
					io_finish(req, -EBADF);
					return;
				}
				if (req->mode != 0 && req->mode != UST_BLOBFS_FALLOC_KEEP_SIZE &&
				    req->mode != (UST_BLOBFS_FALLOC_PUNCH_HOLE | UST_BLOBFS_FALLOC_KEEP_SIZE)) {
					io_finish(req, -EOPNOTSUPP);
					return;
				}
				if (!lock_whole(req, IO_LOCKED)) {
					return;
				}
				continue;
			default:
				io_finish(req, -EINVAL);
				return;
			}
		case OPEN_TRUNCATED:
			/* durable before the open returns, as a setattr(size) would be */
			req->state = OPEN_DONE;
			bfs_sync_inode(fs, req->ip, io_resume, req);
			return;
		case OPEN_DONE:
			if (req->rc != 0) {
				io_finish(req, req->rc);
				return;
			}
			req->out_fh = calloc(1, sizeof(*req->out_fh));
			if (req->out_fh == NULL) {
				io_finish(req, -ENOMEM);
				return;
			}
			req->out_fh->ip = req->ip;
			req->out_fh->flags = req->oflags;
			req->ip->nopen++;
			fs->nopen_files++;
			io_finish(req, 0);
			return;
		case IO_LOCKED:
			ip = req->ip;
			if (req->kind == BFS_R_FALLOCATE) {
				if (req->mode & UST_BLOBFS_FALLOC_PUNCH_HOLE) {
					/* zero [offset, min(end, size)): edges by RMW, the middle unmapped */
					req->end = req->offset + req->length;
					if (req->end > ip->size) {
						req->end = ip->size;
					}
					if (req->offset >= req->end) {
						req->state = SA_DONE;
						req->rc = 0;
						continue;
					}
					off = req->offset;
					if (off % U != 0) {
						uint64_t to = off / U == (req->end - 1) / U ? req->end % U : 0;

						rmw_start(req, off / U, (uint32_t)(off % U),
							  (uint32_t)(to == 0 ? U : to), P_HEAD_DONE);
						return;
					}
					req->rc = 0;
					req->state = P_HEAD_DONE;
					continue;
				}
				req->end = req->offset + req->length;
				if (req->end > capacity(req)) {
					uint64_t need = clusters_for(fs, req->end) -
							ust_blob_get_num_clusters(ip->blob);

					if (need > ust_bs_get_free_cluster_count(fs->bs)) {
						io_finish(req, -ENOSPC);
						return;
					}
					req->state = IO_RESIZED;
					ust_blob_resize(ip->blob, clusters_for(fs, req->end), io_cb, req);
					return;
				}
				req->rc = 0;
				req->state = IO_RESIZED;
				continue;
			}
			/* write */
			if (req->fh->flags & O_APPEND) {
				req->offset = ip->size;
			}
			req->end = req->offset + req->size;
			if (req->end > capacity(req)) {
				req->state = IO_RESIZED;
				ust_blob_resize(ip->blob, clusters_for(fs, req->end), io_cb, req);
				return;
			}
			req->rc = 0;
			req->state = IO_RESIZED;
			continue;
		case IO_RESIZED:
			ip = req->ip;
			if (req->rc != 0) {
				io_finish(req, req->rc);
				return;
			}
			if (req->kind == BFS_R_FALLOCATE) {
				/* every cluster of the range gets real space, durably */
				req->state = IO_ALLOCATED;
				ust_blob_allocate(ip->blob, req->offset / U,
						  (req->end + U - 1) / U - req->offset / U, io_cb, req);
				return;
			}
			req->u0 = req->offset / U;
			req->u1 = (req->end + U - 1) / U;
			req->state = IO_WRITE_DONE;
			if (req->offset % U == 0 && req->size % U == 0) {
				/* aligned: straight from the caller's buffer */
				ust_blob_write(ip->blob, fs->ch, (void *)req->cbuf, req->u0, req->u1 - req->u0,
					       io_cb, req);
				return;
			}
			req->bounce = ust_dma_malloc((req->u1 - req->u0) * U, U);
			if (req->bounce == NULL) {
				io_finish(req, -ENOMEM);
				return;
			}
			if (req->u1 - req->u0 <= 2) {
				req->state = IO_READ_DONE;
				ust_blob_read(ip->blob, fs->ch, req->bounce, req->u0, req->u1 - req->u0, io_cb,
					      req);
				return;
			}
			/* only the partial first and last units need their old bytes */
			req->state = IO_HEAD_READ;
			if (req->offset % U != 0) {
				ust_blob_read(ip->blob, fs->ch, req->bounce, req->u0, 1, io_cb, req);
				return;
			}
			req->rc = 0;
			continue;
		case IO_HEAD_READ:
			if (req->rc != 0) {
				io_finish(req, req->rc);
				return;
			}
			req->state = IO_READ_DONE;
			if (req->end % U != 0) {
				ust_blob_read(req->ip->blob, fs->ch,
					      (uint8_t *)req->bounce + (req->u1 - 1 - req->u0) * U, req->u1 - 1,
					      1, io_cb, req);
				return;
			}
			req->rc = 0;
			continue;
		case IO_ALLOCATED:
			ip = req->ip;
			if (req->rc != 0) {
				io_finish(req, req->rc);
				return;
			}
			bfs_now(&now);
			if (!(req->mode & UST_BLOBFS_FALLOC_KEEP_SIZE) && req->end > ip->size) {
				ip->size = req->end;
				ip->mtime = now;
			}
			ip->ctime = now;
			req->state = SA_DONE;
			bfs_sync_inode(fs, ip, io_resume, req);
			return;
		case IO_LEND_LOCKED:
			rc = read_lend(req);
			if (rc != 0 || req->result == 0) {
				io_finish(req, rc);
				return;
			}
			req->cb.lend(req->cb_arg, (struct ust_blobfs_lend *)req, req->lend_cnt, req->result);
			return;
		case IO_READ_DONE:
			ip = req->ip;
			if (req->rc != 0) {
				io_finish(req, req->rc);
				return;
			}
			if (req->kind == BFS_R_READ) {
				if (req->bounce != NULL) {
					memcpy(req->buf, (uint8_t *)req->bounce + (req->offset - req->u0 * U),
					       req->length);
				}
				io_finish(req, 0);
				return;
			}
			memcpy((uint8_t *)req->bounce + (req->offset - req->u0 * U), req->cbuf, req->size);
			req->state = IO_WRITE_DONE;
			ust_blob_write(ip->blob, fs->ch, req->bounce, req->u0, req->u1 - req->u0, io_cb, req);
			return;
		case IO_WRITE_DONE:
			ip = req->ip;
			if (req->rc != 0) {
				io_finish(req, req->rc);
				return;
			}
			note_written(ip, req->end);
			req->result = (int64_t)req->size;
			if (write_kills_suidgid(&req->ctx, ip)) {
				kill_suidgid(ip);
				/* a mode change is durable when answered, as a chmod is (docs/blobfs-format.md 7) */
				req->state = IO_SYNCED;
				bfs_sync_inode(fs, ip, io_resume, req);
				return;
			}
			io_finish(req, 0);
			return;
		case IO_SYNCED:
			io_finish(req, req->rc);
			return;
		/* ---- truncate ---- */
		case T_LOCKED:
			ip = req->ip;
			off = req->new_size;
			if (off < ip->size && off < capacity(req) && off % U != 0) {
				rmw_start(req, off / U, (uint32_t)(off % U), (uint32_t)U, T_HEAD_WRITTEN);
				return;
			}
			req->rc = 0;
			req->state = T_HEAD_WRITTEN;
			continue;
		case T_HEAD_READ:
			if (req->rc != 0) {
				io_finish(req, req->rc);
				return;
			}
			rmw_write(req, req->rmw_next);
			return;
		case T_HEAD_WRITTEN:
			ip = req->ip;
			if (req->rc != 0) {
				io_finish(req, req->rc);
				return;
			}
			off = (req->new_size + U - 1) / U;                              /* first unit past */
			len = clusters_for(fs, req->new_size) * fs->cluster / U;         /* end of last cluster */
			if (req->new_size < ip->size && off < len && len * U <= capacity(req)) {
				req->state = T_UNMAPPED;
				ust_blob_unmap(ip->blob, fs->ch, off, len - off, io_cb, req);
				return;
			}
			req->rc = 0;
			req->state = T_UNMAPPED;
			continue;
		case T_UNMAPPED:
			ip = req->ip;
			if (req->rc != 0) {
				io_finish(req, req->rc);
				return;
			}
			req->state = T_RESIZED;
			if (clusters_for(fs, req->new_size) != ust_blob_get_num_clusters(ip->blob) &&
			    (req->new_size < ip->size || clusters_for(fs, req->new_size) >
								  ust_blob_get_num_clusters(ip->blob))) {
				ust_blob_resize(ip->blob, clusters_for(fs, req->new_size), io_cb, req);
				return;
			}
			req->rc = 0;
			continue;
		case T_RESIZED:
			ip = req->ip;
			if (req->rc != 0) {
				io_finish(req, req->rc);
				return;
			}
			bfs_now(&now);
			ip->size = req->new_size;
			ip->mtime = ip->ctime = now;
			req->state = req->after_trunc;
			req->rc = 0;
			continue;
		/* ---- punch hole ---- */
		case P_HEAD_DONE:
			ip = req->ip;
			if (req->rc != 0) {
				io_finish(req, req->rc);
				return;
			}
			off = (req->offset + U - 1) / U;
			if (req->end % U != 0 && req->end / U >= off && req->end / U > req->offset / U) {
				rmw_start(req, req->end / U, 0, (uint32_t)(req->end % U), P_TAIL_DONE);
				return;
			}
			req->rc = 0;
			req->state = P_TAIL_DONE;
			continue;
		case P_TAIL_DONE:
			ip = req->ip;
			if (req->rc != 0) {
				io_finish(req, req->rc);
				return;
			}
			off = (req->offset + U - 1) / U;
			len = req->end / U;
			req->state = P_UNMAPPED;
			if (len > off) {
				ust_blob_unmap(ip->blob, fs->ch, off, len - off, io_cb, req);
				return;
			}
			req->rc = 0;
			continue;
		case P_UNMAPPED:
			if (req->rc != 0) {
				io_finish(req, req->rc);
				return;
			}
			bfs_now(&req->ip->mtime);
			req->ip->ctime = req->ip->mtime;
			req->state = SA_DONE;
			bfs_sync_inode(fs, req->ip, io_resume, req);
			return;
		/* ---- setattr ---- */
		case SA_APPLY:
			if (req->rc != 0) {
				io_finish(req, req->rc);
				return;
			}
			setattr_apply(req);
			req->state = SA_DONE;
			bfs_sync_inode(fs, req->ip, io_resume, req);
			return;
		case SA_DONE:
			if (req->rc == 0 && req->kind == BFS_R_SETATTR) {
				bfs_fill_attr(fs, req->ip, &req->attr);
			}
			io_finish(req, req->rc);
			return;
		/* ---- release ---- */
		case REL_SYNCED:
			ip = req->ip;
			rc = req->rc;
			free(req->fh);
			req->fh = NULL;
			ip->nopen--;
			fs->nopen_files--;
			if (rc != 0) {
				UST_ERRLOG("blobfs: sync at release of 0x%" PRIx64 ": %d\n", ip->ino, rc);
			}
			req->result = rc;
			req->state = REL_DONE;
			/*
			 * Only an inode unlinked while open goes now: one loaded
			 * without refs although an entry named it (damaged refs, 9)
			 * keeps its data.
			 */
			if (ip->nopen == 0 && ip->nrefs == 0 && ip->unlinked && ip != fs->root && !ip->deleted) {
				if (!lock_whole(req, REL_LOCKED)) {
					return;
				}
				continue;
			}
			req->rc = 0;
			continue;
		case REL_LOCKED:
			/* an open by number (the kernel's /proc/PID/fd) may have come meanwhile */
			ip = req->ip;
			req->state = REL_DONE;
			if (ip->nopen == 0 && !ip->deleted) {
				bfs_reclaim_inode(fs, ip, io_resume, req);
				return;
			}
			req->rc = 0;
			continue;
		case REL_DONE:
			io_finish(req, req->result != 0 ? (int)req->result : req->rc);
			return;
		default:
			io_finish(req, -EINVAL);
			return;
		}
	}
}
