/*
 * The FUSE low-level operations of a ustor mount, executed through blobfs.
 *
 * Each handler runs on the mount's ust_thread, inside
 * fuse_session_process_buf() called by the transport: it gathers what the
 * request needs (names, the file info, the caller's credentials) into one
 * struct fop - names are copied because the transport reads the next
 * request into the same buffer - and fop_run() makes the blobfs call at
 * once. A WRITE instead takes the buffer it was read into (fmnt_rx_take), so
 * its payload is never copied. The blobfs callback answers with
 * fuse_reply_*() and frees the fop. Nothing here blocks.
 *
 * Guarantees:
 *  - Every request gets exactly one answer (forget gets fuse_reply_none).
 *  - Errors are blobfs's negative errno, answered as that errno.
 *  - A lookup count is never leaked: when the kernel refuses an answer that
 *    carries one (the request was interrupted), it is forgotten again, and
 *    a handle whose open answer was refused is released.
 *  - Handles are tracked so that a mount ending with files still open can
 *    release them before blobfs is unmounted.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "ustor/log.h"

#include "fuse_internal.h"

enum fop_kind {
	FOP_LOOKUP,
	FOP_FORGET,
	FOP_FORGET_MULTI,
	FOP_GETATTR,
	FOP_SETATTR,
	FOP_READLINK,
	FOP_MKNOD,
	FOP_MKDIR,
	FOP_UNLINK,
	FOP_RMDIR,
	FOP_SYMLINK,
	FOP_RENAME,
	FOP_LINK,
	FOP_OPEN,
	FOP_READ,
	FOP_WRITE,
	FOP_RELEASE,
	FOP_FSYNC,
	FOP_OPENDIR,
	FOP_READDIR,
	FOP_RELEASEDIR,
	FOP_STATFS,
	FOP_SETXATTR,
	FOP_GETXATTR,
	FOP_LISTXATTR,
	FOP_REMOVEXATTR,
	FOP_CREATE,
	FOP_FALLOCATE,
};

struct fop {
	struct fmnt *m;
	fuse_req_t req;
	enum fop_kind kind;
	struct ust_blobfs_ctx ctx;
	uint64_t ino;  /* the inode, or the parent */
	uint64_t ino2; /* rename's new parent, link's new parent */
	struct fhandle *h;
	struct fuse_file_info fi;
	const char *name;
	const char *name2;
	char *buf; /* data in or out: owned, or in rx */
	size_t buf_size; /* read/write: buf is from fbuf_get(buf_size) */
	void *rx; /* write: the request's receive buffer (fmnt_rx_take) */
	/* write: where the payload still in the transport's pipe belongs in rx (fmnt_rx_pending) */
	char *in_pipe;
	size_t size;
	size_t used;    /* readdir: bytes filled */
	uint64_t off;
	uint64_t len;
	int flags;
	uint32_t mode;
	uint64_t rdev;
	uint32_t valid;
	bool plus;      /* readdirplus */
	bool datasync;
	struct ust_blobfs_attr attr; /* setattr */
	/* readdirplus: the inodes handed out (forgotten again if the reply fails) */
	uint64_t *plus_inos;
	size_t plus_count;
	size_t plus_cap;
	struct fuse_forget_data *forgets;
	/* read: the pieces blobfs lends (read_lend); a 1 MiB read over 64 KiB holes needs 16 */
	struct iovec lend_iov[FMNT_REPLY_IOV];
	struct ust_blobfs_lend *lend; /* read: held until the answer is written */
	struct fmnt_areply areply;    /* read: answered off the mount's thread */
	char names[];
};

/* Writes smaller than this are copied out of the receive buffer (fop_new_write). */
#define FMNT_WRITE_COPY_MAX (64u * 1024)

/* ---- helpers (mount thread) ------------------------------------------------- */

static struct fmnt *req_mount(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct fop *fop_new(fuse_req_t req, enum fop_kind kind, const char *name,
			   const char *name2)
{
	size_t l1 = name != NULL ? strlen(name) + 1 : 0;
	size_t l2 = name2 != NULL ? strlen(name2) + 1 : 0;
	const struct fuse_ctx *fc = fuse_req_ctx(req);
	struct fop *op;

	op = calloc(1, sizeof(*op) + l1 + l2);
	if (op == NULL) {
		return NULL;
	}
	op->m = req_mount(req);
	op->req = req;
	op->kind = kind;
	op->ctx.uid = fc->uid;
	op->ctx.gid = fc->gid;
	op->ctx.pid = (uint32_t)fc->pid;
	op->ctx.check_access = !op->m->default_permissions;
	op->ctx.kill_suidgid = op->m->req_kill_suidgid;
	if (name != NULL) {
		memcpy(op->names, name, l1);
		op->name = op->names;
	}
	if (name2 != NULL) {
		memcpy(op->names + l1, name2, l2);
		op->name2 = op->names + l1;
	}
	return op;
}

/* Give op a pooled data buffer of size bytes: 0 or -ENOMEM (op unchanged). */
static int fop_get_buf(struct fop *op, size_t size)
{
	size_t want = size > 0 ? size : 1;

	op->buf = fbuf_get(op->m, want);
	if (op->buf == NULL)
		return -ENOMEM;
	op->buf_size = want;
	return 0;
}

/* A read or write request with its data buffer; NULL when memory is short. */
static struct fop *fop_new_data(fuse_req_t req, enum fop_kind kind, size_t size)
{
	struct fop *op = fop_new(req, kind, NULL, NULL);

	if (op != NULL && fop_get_buf(op, size) != 0) {
		free(op);
		return NULL;
	}
	return op;
}

static void fop_free(struct fop *op)
{
	if (op->rx != NULL)
		fbuf_put(op->m, op->rx, FMNT_BUF_SIZE); /* buf points into it */
	else if (op->buf_size > 0)
		fbuf_put(op->m, op->buf, op->buf_size);
	else
		free(op->buf);
	free(op->plus_inos);
	free(op->forgets);
	free(op);
}

static void fop_run(void *ctx);

/* Count the request in flight and make its blobfs call (answered by fop_done). */
static void fop_dispatch(struct fop *op)
{
	struct fmnt *m = op->m;

	atomic_fetch_add(&m->dispatched, 1);
	fop_run(op);
}

/* Mount thread: the request is answered. */
static void fop_done(struct fop *op)
{
	struct fmnt *m = op->m;

	fop_free(op);
	fmnt_request_done(m);
}

static void fop_reply_err(struct fop *op, int rc)
{
	if (rc < 0) {
		atomic_fetch_add_explicit(&op->m->errors, 1, memory_order_relaxed);
	}
	fuse_reply_err(op->req, rc < 0 ? -rc : 0);
	fop_done(op);
}

static void stat_max(atomic_uint_fast64_t *v, uint64_t x)
{
	uint64_t cur = atomic_load_explicit(v, memory_order_relaxed);

	while (x > cur && !atomic_compare_exchange_weak(v, &cur, x)) {
	}
}

static void attr_to_stat(const struct ust_blobfs_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_rdev = a->rdev;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_blksize = a->blksize;
	st->st_atim = a->atime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
}

static void entry_param(const struct fmnt *m, const struct ust_blobfs_entry *e,
			struct fuse_entry_param *p)
{
	memset(p, 0, sizeof(*p));
	p->ino = e->ino;
	p->generation = e->generation;
	attr_to_stat(&e->attr, &p->attr);
	p->attr_timeout = m->attr_timeout;
	p->entry_timeout = m->entry_timeout;
}

static struct fhandle *fi_handle(const struct fuse_file_info *fi)
{
	return fi != NULL ? (struct fhandle *)(uintptr_t)fi->fh : NULL;
}

/* With the writeback cache the kernel reads pages of write-only files and does O_APPEND itself. */
static int open_flags(const struct fmnt *m, int flags)
{
	int f = flags & (O_ACCMODE | O_TRUNC | O_APPEND | O_EXCL);

	if (m->writeback_cache) {
		if ((f & O_ACCMODE) == O_WRONLY) {
			f = (f & ~O_ACCMODE) | O_RDWR;
		}
		f &= ~O_APPEND;
	}
	return f;
}

/* ---- completions (mount thread) --------------------------------------------- */

static void cb_entry(void *arg, const struct ust_blobfs_entry *entry, int rc)
{
	struct fop *op = arg;
	struct fmnt *m = op->m;
	struct fuse_entry_param p;

	if (rc == -ENOENT && op->kind == FOP_LOOKUP && m->negative_timeout > 0) {
		/* A negative entry: the kernel caches the absence; its own creates undo it. */
		memset(&p, 0, sizeof(p));
		p.entry_timeout = m->negative_timeout;
		fuse_reply_entry(op->req, &p);
		fop_done(op);
		return;
	}
	if (rc != 0) {
		fop_reply_err(op, rc);
		return;
	}
	entry_param(m, entry, &p);
	if (fuse_reply_entry(op->req, &p) != 0) {
		ust_blobfs_forget(m->fs, entry->ino, 1);
	}
	fop_done(op);
}

static void cb_attr(void *arg, const struct ust_blobfs_attr *attr, int rc)
{
	struct fop *op = arg;
	struct stat st;

	if (rc != 0) {
		fop_reply_err(op, rc);
		return;
	}
	attr_to_stat(attr, &st);
	fuse_reply_attr(op->req, &st, op->m->attr_timeout);
	fop_done(op);
}

static void cb_op(void *arg, int rc)
{
	fop_reply_err(arg, rc);
}

static void cb_readlink(void *arg, int64_t result)
{
	struct fop *op = arg;

	if (result < 0) {
		fop_reply_err(op, (int)result);
		return;
	}
	op->buf[result] = '\0';
	fuse_reply_readlink(op->req, op->buf);
	fop_done(op);
}

static struct fhandle *handle_new(struct fmnt *m, struct ust_blobfs_file *bfh, bool dir)
{
	struct fhandle *h = calloc(1, sizeof(*h));

	if (h == NULL) {
		return NULL;
	}
	h->bfh = bfh;
	h->dir = dir;
	TAILQ_INSERT_TAIL(&m->handles, h, link);
	atomic_fetch_add_explicit(&m->open_handles, 1, memory_order_relaxed);
	return h;
}

static void handle_free(struct fmnt *m, struct fhandle *h)
{
	TAILQ_REMOVE(&m->handles, h, link);
	atomic_fetch_sub_explicit(&m->open_handles, 1, memory_order_relaxed);
	free(h);
}

static void release_quiet_done(void *arg, int rc)
{
	if (rc != 0) {
		UST_WARNLOG("releasing a handle the kernel refused: %s\n", strerror(-rc));
	}
}

/* The kernel refused the answer to an open/create: nobody will release it. */
static void handle_abandon(struct fmnt *m, struct fhandle *h)
{
	struct ust_blobfs_file *bfh = h->bfh;
	bool dir = h->dir;

	handle_free(m, h);
	if (dir) {
		ust_blobfs_releasedir(m->fs, bfh, release_quiet_done, NULL);
	} else {
		ust_blobfs_release(m->fs, bfh, release_quiet_done, NULL);
	}
}

static void cb_open(void *arg, struct ust_blobfs_file *bfh, int rc)
{
	struct fop *op = arg;
	struct fmnt *m = op->m;
	bool dir = op->kind == FOP_OPENDIR;
	struct fhandle *h;

	if (rc != 0) {
		fop_reply_err(op, rc);
		return;
	}
	h = handle_new(m, bfh, dir);
	if (h == NULL) {
		if (dir) {
			ust_blobfs_releasedir(m->fs, bfh, release_quiet_done, NULL);
		} else {
			ust_blobfs_release(m->fs, bfh, release_quiet_done, NULL);
		}
		fop_reply_err(op, -ENOMEM);
		return;
	}
	op->fi.fh = (uint64_t)(uintptr_t)h;
	if (dir) {
		op->fi.cache_readdir = 0;
		op->fi.keep_cache = 0;
	} else {
		/* Every change goes through this kernel: its page cache stays right. */
		op->fi.keep_cache = 1;
	}
	m->reply_open_flags = dir ? 0 : FOPEN_PARALLEL_DIRECT_WRITES;
	rc = fuse_reply_open(op->req, &op->fi);
	m->reply_open_flags = 0;
	if (rc != 0) {
		handle_abandon(m, h);
	}
	fop_done(op);
}

static void cb_create(void *arg, const struct ust_blobfs_entry *entry,
		      struct ust_blobfs_file *bfh, int rc)
{
	struct fop *op = arg;
	struct fmnt *m = op->m;
	struct fuse_entry_param p;
	struct fhandle *h;

	if (rc != 0) {
		fop_reply_err(op, rc);
		return;
	}
	h = handle_new(m, bfh, false);
	if (h == NULL) {
		ust_blobfs_release(m->fs, bfh, release_quiet_done, NULL);
		ust_blobfs_forget(m->fs, entry->ino, 1);
		fop_reply_err(op, -ENOMEM);
		return;
	}
	entry_param(m, entry, &p);
	op->fi.fh = (uint64_t)(uintptr_t)h;
	op->fi.keep_cache = 1;
	m->reply_open_flags = FOPEN_PARALLEL_DIRECT_WRITES;
	rc = fuse_reply_create(op->req, &p, &op->fi);
	m->reply_open_flags = 0;
	if (rc != 0) {
		ust_blobfs_forget(m->fs, entry->ino, 1);
		handle_abandon(m, h);
	}
	fop_done(op);
}

static void cb_read(void *arg, int64_t result)
{
	struct fop *op = arg;

	if (result < 0) {
		fop_reply_err(op, (int)result);
		return;
	}
	atomic_fetch_add_explicit(&op->m->bytes_read, (uint64_t)result, memory_order_relaxed);
	fuse_reply_buf(op->req, op->buf, (size_t)result);
	fop_done(op);
}

/* A READ's answer was written off the mount's thread: give the bytes back, free libfuse's request. */
static void read_replied(struct fmnt_areply *r)
{
	struct fop *op = (struct fop *)((char *)r - offsetof(struct fop, areply));

	ust_blobfs_lend_release(op->m->fs, op->lend);
	fuse_reply_none(op->req); /* answered already: only frees it */
	fop_done(op);
}

/*
 * A read answered from the memory blobfs lends: one copy, the kernel's, into
 * the reader's pages, instead of ours into a buffer first. A large answer
 * is written by the transport's worker where it takes it (fuse_dev.c),
 * blobfs holding the bytes until then; otherwise here. Where blobfs
 * cannot lend this range (-EAGAIN, -E2BIG) the read is made again the
 * usual way; where it cannot lend at all (-ENOTSUP: the bdev is not
 * memory, or blobfs runs on another thread) the mount stops asking. A page
 * that vanished from under the lent memory (the image truncated behind our
 * back) fails the answer's writev with EFAULT; the kernel has then already
 * ended the request with EIO.
 */
static void cb_read_lend(void *arg, struct ust_blobfs_lend *lend, int iovcnt, int64_t result)
{
	struct fop *op = arg;
	struct fmnt *m = op->m;

	if (result == -ENOTSUP || result == -EAGAIN || result == -E2BIG) {
		if (result == -ENOTSUP)
			m->no_read_lend = true;
		if (fop_get_buf(op, op->size) != 0) {
			fop_reply_err(op, -ENOMEM);
			return;
		}
		ust_blobfs_read(m->fs, op->h != NULL ? op->h->bfh : NULL, op->buf, op->size, op->off,
				cb_read, op);
		return;
	}
	if (result < 0) {
		fop_reply_err(op, (int)result);
		return;
	}
	atomic_fetch_add_explicit(&m->bytes_read, (uint64_t)result, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->bytes_read_lent, (uint64_t)result, memory_order_relaxed);
	op->lend = lend;
	if (m->tops->reply_async != NULL) {
		op->areply.iov = op->lend_iov;
		op->areply.iovcnt = iovcnt;
		op->areply.len = (size_t)result;
		op->areply.done = read_replied;
		if (m->tops->reply_async(m, &op->areply))
			return;
	}
	fuse_reply_iov(op->req, op->lend_iov, iovcnt);
	ust_blobfs_lend_release(m->fs, lend);
	fop_done(op);
}

static void cb_write(void *arg, int64_t result)
{
	struct fop *op = arg;

	if (result < 0) {
		fop_reply_err(op, (int)result);
		return;
	}
	atomic_fetch_add_explicit(&op->m->bytes_written, (uint64_t)result, memory_order_relaxed);
	fuse_reply_write(op->req, (size_t)result);
	fop_done(op);
}

static void cb_release(void *arg, int rc)
{
	fop_reply_err(arg, rc);
}

static void cb_xattr_size(void *arg, int64_t result)
{
	struct fop *op = arg;

	if (result < 0) {
		fop_reply_err(op, (int)result);
		return;
	}
	if (op->size == 0) {
		fuse_reply_xattr(op->req, (size_t)result);
	} else {
		fuse_reply_buf(op->req, op->buf, (size_t)result);
	}
	fop_done(op);
}

static void cb_statfs(void *arg, const struct ust_blobfs_statfs *s, int rc)
{
	struct fop *op = arg;
	struct statvfs sv;

	if (rc != 0) {
		fop_reply_err(op, rc);
		return;
	}
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = s->bsize;
	sv.f_frsize = s->frsize;
	sv.f_blocks = s->blocks;
	sv.f_bfree = s->bfree;
	sv.f_bavail = s->bavail;
	sv.f_files = s->files;
	sv.f_ffree = s->ffree;
	sv.f_favail = s->ffree;
	sv.f_namemax = s->namemax;
	fuse_reply_statfs(op->req, &sv);
	fop_done(op);
}

/* readdir's fill function: runs on the mount thread during ust_blobfs_readdir. */
static int readdir_fill(void *fill_arg, const struct ust_blobfs_dirent *d)
{
	struct fop *op = fill_arg;
	size_t room = op->size - op->used;
	bool dot = strcmp(d->name, ".") == 0 || strcmp(d->name, "..") == 0;
	struct fuse_entry_param p;
	uint64_t *inos;
	size_t need, cap;
	struct stat st;

	if (!op->plus) {
		memset(&st, 0, sizeof(st));
		st.st_ino = d->ino;
		st.st_mode = (mode_t)(d->type << 12);
		need = fuse_add_direntry(op->req, op->buf + op->used, room, d->name, &st,
					 (off_t)d->next_offset);
		if (need > room) {
			return 1;
		}
		op->used += need;
		return 0;
	}
	memset(&p, 0, sizeof(p));
	if (d->attr != NULL && !dot) {
		p.ino = d->ino;
		attr_to_stat(d->attr, &p.attr);
		p.attr_timeout = op->m->attr_timeout;
		p.entry_timeout = op->m->entry_timeout;
	} else {
		/* nodeid 0: the kernel takes the name only (no lookup counted). */
		p.attr.st_ino = d->ino;
		p.attr.st_mode = (mode_t)(d->type << 12);
	}
	if (p.ino != 0 && op->plus_count == op->plus_cap) {
		cap = op->plus_cap != 0 ? op->plus_cap * 2 : 64;
		inos = realloc(op->plus_inos, cap * sizeof(*inos));
		if (inos == NULL) {
			return 1;
		}
		op->plus_inos = inos;
		op->plus_cap = cap;
	}
	need = fuse_add_direntry_plus(op->req, op->buf + op->used, room, d->name, &p,
				      (off_t)d->next_offset);
	if (need > room) {
		return 1;
	}
	op->used += need;
	if (p.ino != 0) {
		op->plus_inos[op->plus_count++] = p.ino;
	}
	return 0;
}

static void cb_readdir(void *arg, int rc)
{
	struct fop *op = arg;
	struct fmnt *m = op->m;
	size_t i;

	if (rc != 0 && op->used == 0) {
		fop_reply_err(op, rc);
		return;
	}
	/* Entries already taken are answered (they may carry lookups); the error shows next call. */
	if (fuse_reply_buf(op->req, op->buf, op->used) != 0) {
		for (i = 0; i < op->plus_count; i++) {
			ust_blobfs_forget(m->fs, op->plus_inos[i], 1);
		}
	}
	fop_done(op);
}

/* ust_blobfs_write_fill's store: the payload out of the pipe into the lent memory. */
static int store_from_pipe(void *arg, const struct iovec *iov, int iovcnt)
{
	struct fop *op = arg;

	/* EFAULT: the image's pages vanished (cut behind our back); the writer sees EIO */
	return fmnt_rx_fill(op->m, iov, iovcnt) == 0 ? 0 : -EIO;
}

/*
 * A WRITE whose payload is still in the transport's pipe: stored straight
 * into the memory blobfs lends for it, the only copy, where blobfs can do
 * that now; otherwise read into the receive buffer, where a read(2) would
 * have put it, and written the usual way. Runs inside the request's
 * handler: the payload must leave the pipe before the next request comes.
 */
static void fop_write_from_pipe(struct fop *op, struct ust_blobfs_file *bfh)
{
	struct fmnt *m = op->m;
	struct iovec iov = {.iov_base = op->in_pipe, .iov_len = op->size};
	int64_t r = -ENOTSUP;
	int rc;

	if (!m->no_write_lend && bfh != NULL) {
		r = ust_blobfs_write_fill(m->fs, &op->ctx, bfh, op->size, op->off, store_from_pipe, op);
		if (r == -ENOTSUP) {
			m->no_write_lend = true; /* the transport stops splicing */
		}
	}
	if (r != -EAGAIN && r != -ENOTSUP) {
		if (r > 0) {
			atomic_fetch_add_explicit(&m->bytes_written_lent, (uint64_t)r,
						  memory_order_relaxed);
		}
		cb_write(op, r);
		return;
	}
	rc = fmnt_rx_fill(m, &iov, 1);
	if (rc != 0) {
		cb_write(op, -EIO);
		return;
	}
	op->rx = fmnt_rx_take(m, op->in_pipe);
	op->buf = op->in_pipe;
	op->in_pipe = NULL;
	ust_blobfs_write(m->fs, &op->ctx, bfh, op->buf, op->size, op->off, cb_write, op);
}

/* ---- execution (mount thread) ----------------------------------------------- */

static void fop_run(void *ctx)
{
	struct fop *op = ctx;
	struct fmnt *m = op->m;
	struct ust_blobfs *fs = m->fs;
	struct ust_blobfs_file *bfh = op->h != NULL ? op->h->bfh : NULL;
	size_t i;

	switch (op->kind) {
	case FOP_LOOKUP:
		ust_blobfs_lookup(fs, &op->ctx, op->ino, op->name, cb_entry, op);
		return;
	case FOP_FORGET:
		ust_blobfs_forget(fs, op->ino, op->len);
		fuse_reply_none(op->req);
		fop_done(op);
		return;
	case FOP_FORGET_MULTI:
		for (i = 0; i < op->size; i++) {
			ust_blobfs_forget(fs, op->forgets[i].ino, op->forgets[i].nlookup);
		}
		fuse_reply_none(op->req);
		fop_done(op);
		return;
	case FOP_GETATTR:
		ust_blobfs_getattr(fs, &op->ctx, op->ino, cb_attr, op);
		return;
	case FOP_SETATTR:
		ust_blobfs_setattr(fs, &op->ctx, op->ino, &op->attr, op->valid, bfh, cb_attr, op);
		return;
	case FOP_READLINK:
		ust_blobfs_readlink(fs, &op->ctx, op->ino, op->buf, op->size, cb_readlink, op);
		return;
	case FOP_MKNOD:
		ust_blobfs_mknod(fs, &op->ctx, op->ino, op->name, op->mode, op->rdev, cb_entry, op);
		return;
	case FOP_MKDIR:
		ust_blobfs_mkdir(fs, &op->ctx, op->ino, op->name, op->mode, cb_entry, op);
		return;
	case FOP_UNLINK:
		ust_blobfs_unlink(fs, &op->ctx, op->ino, op->name, cb_op, op);
		return;
	case FOP_RMDIR:
		ust_blobfs_rmdir(fs, &op->ctx, op->ino, op->name, cb_op, op);
		return;
	case FOP_SYMLINK:
		/* name: the target; name2: the new entry's name */
		ust_blobfs_symlink(fs, &op->ctx, op->name, op->ino, op->name2, cb_entry, op);
		return;
	case FOP_RENAME:
		ust_blobfs_rename(fs, &op->ctx, op->ino, op->name, op->ino2, op->name2,
				  (uint32_t)op->flags, cb_op, op);
		return;
	case FOP_LINK:
		ust_blobfs_link(fs, &op->ctx, op->ino, op->ino2, op->name, cb_entry, op);
		return;
	case FOP_OPEN:
		ust_blobfs_open(fs, &op->ctx, op->ino, open_flags(m, op->fi.flags), cb_open, op);
		return;
	case FOP_OPENDIR:
		ust_blobfs_opendir(fs, &op->ctx, op->ino, cb_open, op);
		return;
	case FOP_CREATE:
		ust_blobfs_create(fs, &op->ctx, op->ino, op->name, op->mode,
				  open_flags(m, op->fi.flags), cb_create, op);
		return;
	case FOP_READ:
		if (op->buf == NULL) {
			ust_blobfs_read_lend(fs, bfh, op->size, op->off, op->lend_iov, FMNT_REPLY_IOV,
					     cb_read_lend, op);
			return;
		}
		ust_blobfs_read(fs, bfh, op->buf, op->size, op->off, cb_read, op);
		return;
	case FOP_WRITE:
		if (op->in_pipe != NULL) {
			fop_write_from_pipe(op, bfh);
			return;
		}
		ust_blobfs_write(fs, &op->ctx, bfh, op->buf, op->size, op->off, cb_write, op);
		return;
	case FOP_FSYNC:
		ust_blobfs_fsync(fs, bfh, op->datasync, cb_op, op);
		return;
	case FOP_RELEASE:
		handle_free(m, op->h);
		op->h = NULL;
		ust_blobfs_release(fs, bfh, cb_release, op);
		return;
	case FOP_RELEASEDIR:
		handle_free(m, op->h);
		op->h = NULL;
		ust_blobfs_releasedir(fs, bfh, cb_release, op);
		return;
	case FOP_READDIR:
		ust_blobfs_readdir(fs, bfh, op->off, op->plus, readdir_fill, op, cb_readdir, op);
		return;
	case FOP_STATFS:
		ust_blobfs_statfs(fs, cb_statfs, op);
		return;
	case FOP_SETXATTR:
		ust_blobfs_setxattr(fs, &op->ctx, op->ino, op->name, op->buf, op->size, op->flags,
				    cb_op, op);
		return;
	case FOP_GETXATTR:
		ust_blobfs_getxattr(fs, &op->ctx, op->ino, op->name, op->buf, op->size,
				    cb_xattr_size, op);
		return;
	case FOP_LISTXATTR:
		ust_blobfs_listxattr(fs, &op->ctx, op->ino, op->buf, op->size, cb_xattr_size, op);
		return;
	case FOP_REMOVEXATTR:
		ust_blobfs_removexattr(fs, &op->ctx, op->ino, op->name, cb_op, op);
		return;
	case FOP_FALLOCATE:
		ust_blobfs_fallocate(fs, &op->ctx, bfh, op->flags, op->off, op->len, cb_op, op);
		return;
	}
	fop_reply_err(op, -ENOSYS);
}

/* ---- handlers (mount thread, inside fuse_session_process_buf) --------------- */

static void ll_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fmnt *m = userdata;

	/*
	 * Requests are read into memory and used there (a WRITE's payload
	 * too); splicing would only add pipe round trips.
	 */
	conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
				  FUSE_CAP_SPLICE_MOVE);
	/*
	 * Not v1 (drop set-user-ID on every write, whoever writes) but v2,
	 * which libfuse 3.14 does not know: the kernel says when to drop
	 * (fuse_proto.c), and stops asking for security.capability before
	 * each write.
	 */
	conn->want &= ~(unsigned)FUSE_CAP_HANDLE_KILLPRIV;
	if ((m->kernel_init_flags & FUSE_HANDLE_KILLPRIV_V2) != 0) {
		m->reply_init_flags |= FUSE_HANDLE_KILLPRIV_V2;
	}
	/*
	 * open(O_TRUNC) reaches blobfs as one open that truncates and syncs
	 * before answering: one request instead of a setattr and an open, and
	 * the permission check and the truncate cannot be separated.
	 */
	if ((conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) != 0) {
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	}
	if ((conn->capable & FUSE_CAP_CACHE_SYMLINKS) != 0) {
		conn->want |= FUSE_CAP_CACHE_SYMLINKS; /* targets never change */
	}
	if (m->writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE) != 0) {
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	} else {
		conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	}
	conn->max_write = FMNT_MAX_IO;
	if (conn->max_readahead > FMNT_MAX_IO) {
		conn->max_readahead = FMNT_MAX_IO;
	}
	conn->max_background = 128;
	conn->congestion_threshold = 96;
	conn->time_gran = 1;
	atomic_store(&m->init_done, true);
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fop *op = fop_new(req, FOP_LOOKUP, name, NULL);

	if (op == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	op->ino = parent;
	fop_dispatch(op);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fop *op = fop_new(req, FOP_FORGET, NULL, NULL);

	if (op == NULL) {
		/* Cannot forget: the inode stays referenced until unmount (which drops it). */
		fuse_reply_none(req);
		return;
	}
	op->ino = ino;
	op->len = nlookup;
	fop_dispatch(op);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fop *op = fop_new(req, FOP_FORGET_MULTI, NULL, NULL);

	if (op != NULL && count > 0) {
		op->forgets = malloc(count * sizeof(*forgets));
		if (op->forgets == NULL) {
			free(op);
			op = NULL;
		}
	}
	if (op == NULL) {
		fuse_reply_none(req);
		return;
	}
	if (count > 0) {
		memcpy(op->forgets, forgets, count * sizeof(*forgets));
	}
	op->size = count;
	fop_dispatch(op);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fop *op = fop_new(req, FOP_GETATTR, NULL, NULL);

	if (op == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	op->ino = ino;
	fop_dispatch(op);
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fop *op = fop_new(req, FOP_SETATTR, NULL, NULL);
	uint32_t v = 0;

	if (op == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (to_set & FUSE_SET_ATTR_MODE) {
		v |= UST_BLOBFS_SET_MODE;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		v |= UST_BLOBFS_SET_UID;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		v |= UST_BLOBFS_SET_GID;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		v |= UST_BLOBFS_SET_SIZE;
	}
	if (to_set & FUSE_SET_ATTR_ATIME) {
		v |= UST_BLOBFS_SET_ATIME;
	}
	if (to_set & FUSE_SET_ATTR_MTIME) {
		v |= UST_BLOBFS_SET_MTIME;
	}
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		v |= UST_BLOBFS_SET_ATIME_NOW;
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		v |= UST_BLOBFS_SET_MTIME_NOW;
	}
	if (to_set & FUSE_SET_ATTR_CTIME) {
		v |= UST_BLOBFS_SET_CTIME;
	}
	op->ino = ino;
	op->valid = v;
	op->h = fi_handle(fi);
	op->attr.ino = ino;
	op->attr.mode = attr->st_mode;
	op->attr.uid = attr->st_uid;
	op->attr.gid = attr->st_gid;
	op->attr.size = (uint64_t)attr->st_size;
	op->attr.atime = attr->st_atim;
	op->attr.mtime = attr->st_mtim;
	op->attr.ctime = attr->st_ctim;
	fop_dispatch(op);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fop *op = fop_new(req, FOP_READLINK, NULL, NULL);

	if (op == NULL || (op->buf = malloc(UST_BLOBFS_PATH_MAX + 1)) == NULL) {
		free(op);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	op->ino = ino;
	op->size = UST_BLOBFS_PATH_MAX;
	fop_dispatch(op);
}

static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct fop *op = fop_new(req, FOP_MKNOD, name, NULL);

	if (op == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	op->ino = parent;
	op->mode = mode;
	op->rdev = rdev;
	fop_dispatch(op);
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fop *op = fop_new(req, FOP_MKDIR, name, NULL);

	if (op == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	op->ino = parent;
	op->mode = mode;
	fop_dispatch(op);
}

static void ll_name_op(fuse_req_t req, enum fop_kind kind, fuse_ino_t parent, const char *name)
{
	struct fop *op = fop_new(req, kind, name, NULL);

	if (op == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	op->ino = parent;
	fop_dispatch(op);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	ll_name_op(req, FOP_UNLINK, parent, name);
}

static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	ll_name_op(req, FOP_RMDIR, parent, name);
}

static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct fop *op = fop_new(req, FOP_SYMLINK, link, name);

	if (op == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	op->ino = parent;
	fop_dispatch(op);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct fop *op;

	if ((flags & ~(unsigned)(UST_BLOBFS_RENAME_NOREPLACE | UST_BLOBFS_RENAME_EXCHANGE)) != 0) {
		fuse_reply_err(req, EINVAL); /* RENAME_WHITEOUT: overlayfs only */
		return;
	}
	op = fop_new(req, FOP_RENAME, name, newname);
	if (op == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	op->ino = parent;
	op->ino2 = newparent;
	op->flags = (int)flags;
	fop_dispatch(op);
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct fop *op = fop_new(req, FOP_LINK, newname, NULL);

	if (op == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	op->ino = ino;
	op->ino2 = newparent;
	fop_dispatch(op);
}

static void ll_file_op(fuse_req_t req, enum fop_kind kind, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fop *op = fop_new(req, kind, NULL, NULL);

	if (op == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	op->ino = ino;
	op->fi = *fi;
	op->h = fi_handle(fi);
	fop_dispatch(op);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	ll_file_op(req, FOP_OPEN, ino, fi);
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	ll_file_op(req, FOP_OPENDIR, ino, fi);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	ll_file_op(req, FOP_RELEASE, ino, fi);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	ll_file_op(req, FOP_RELEASEDIR, ino, fi);
}

static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fop *op = fop_new(req, FOP_FSYNC, NULL, NULL);

	if (op == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	op->ino = ino;
	op->h = fi_handle(fi);
	op->datasync = datasync != 0;
	fop_dispatch(op);
}

static void ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	/*
	 * blobfs makes every namespace change durable before answering it
	 * (blobfs.h "Durability"): a directory has nothing left to sync.
	 */
	fuse_reply_err(req, 0);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fmnt *m = req_mount(req);
	/* Without a buffer, the read first asks blobfs to lend the bytes (cb_read_lend). */
	struct fop *op = m->no_read_lend ? fop_new_data(req, FOP_READ, size) :
					   fop_new(req, FOP_READ, NULL, NULL);

	if (op == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	op->ino = ino;
	op->h = fi_handle(fi);
	op->size = size;
	op->off = (uint64_t)off;
	op->areply.unique = m->req_unique; /* for an answer written off this thread */
	stat_max(&op->m->max_read, size);
	fop_dispatch(op);
}

/*
 * The op of a WRITE, with buf pointing at its payload. A large payload stays
 * where the transport read it: the op takes the receive buffer
 * (fmnt_rx_take). A small one is copied out instead, so that many small
 * writes in flight do not each hold a buffer sized for 1 MiB.
 */
static int fop_new_write(fuse_req_t req, const struct fuse_bufvec *bufv, size_t size,
			 struct fop **out)
{
	struct fmnt *m = req_mount(req);
	const struct fuse_buf *b = &bufv->buf[0];
	size_t pending;
	struct fop *op;

	if (bufv->count != 1 || (b->flags & FUSE_BUF_IS_FD) != 0 || b->size < size) {
		/* libfuse passes memory we read, in one piece (no splice) */
		UST_ERRLOG("%s: unexpected write buffer from libfuse\n", m->mountpoint);
		return -EIO;
	}
	pending = fmnt_rx_pending(m, b->mem);
	if (pending > 0) {
		/* the payload is still in the transport's pipe (fop_write_from_pipe) */
		if (pending != size) {
			UST_ERRLOG("%s: a write of %zu bytes has %zu in the pipe\n", m->mountpoint,
				   size, pending);
			return -EIO;
		}
		op = fop_new(req, FOP_WRITE, NULL, NULL);
		if (op == NULL) {
			return -ENOMEM;
		}
		op->in_pipe = b->mem;
		*out = op;
		return 0;
	}
	if (size < FMNT_WRITE_COPY_MAX) {
		op = fop_new_data(req, FOP_WRITE, size);
		if (op == NULL) {
			return -ENOMEM;
		}
		memcpy(op->buf, b->mem, size);
		*out = op;
		return 0;
	}
	op = fop_new(req, FOP_WRITE, NULL, NULL);
	if (op == NULL) {
		return -ENOMEM;
	}
	op->rx = fmnt_rx_take(m, b->mem);
	if (op->rx == NULL) {
		UST_ERRLOG("%s: a write's data is not in the receive buffer\n", m->mountpoint);
		free(op);
		return -EIO;
	}
	op->buf = b->mem;
	*out = op;
	return 0;
}

static void ll_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off,
			 struct fuse_file_info *fi)
{
	size_t size = fuse_buf_size(bufv);
	struct fop *op = NULL;
	int rc = fop_new_write(req, bufv, size, &op);

	if (rc != 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	op->ino = ino;
	op->h = fi_handle(fi);
	op->size = size;
	op->off = (uint64_t)off;
	stat_max(&op->m->max_write, size);
	fop_dispatch(op);
}

static void ll_readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			      struct fuse_file_info *fi, bool plus)
{
	struct fop *op = fop_new(req, FOP_READDIR, NULL, NULL);

	if (op == NULL || (op->buf = malloc(size > 0 ? size : 1)) == NULL) {
		free(op);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	op->ino = ino;
	op->h = fi_handle(fi);
	op->size = size;
	op->off = (uint64_t)off;
	op->plus = plus;
	fop_dispatch(op);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	ll_readdir_common(req, ino, size, off, fi, false);
}

static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	ll_readdir_common(req, ino, size, off, fi, true);
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fop *op = fop_new(req, FOP_STATFS, NULL, NULL);

	if (op == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	op->ino = ino;
	fop_dispatch(op);
}

static void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct fop *op = fop_new(req, FOP_SETXATTR, name, NULL);

	if (op == NULL || (op->buf = malloc(size > 0 ? size : 1)) == NULL) {
		free(op);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (size > 0) {
		memcpy(op->buf, value, size);
	}
	op->ino = ino;
	op->size = size;
	op->flags = flags;
	fop_dispatch(op);
}

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fop *op;

	if (strncmp(name, "user.", 5) != 0) {
		/*
		 * blobfs keeps only user.* (blobfs.h: -ENOTSUP for the others).
		 * Answered here because the kernel asks for security.capability
		 * before a write to a file with set-user-ID or set-group-ID (before
		 * every write where FUSE_HANDLE_KILLPRIV_V2 is not offered:
		 * fuse_proto.c); the answer is the one blobfs would give.
		 */
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	op = fop_new(req, FOP_GETXATTR, name, NULL);
	if (op == NULL || (size > 0 && (op->buf = malloc(size)) == NULL)) {
		free(op);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	op->ino = ino;
	op->size = size;
	fop_dispatch(op);
}

static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fop *op = fop_new(req, FOP_LISTXATTR, NULL, NULL);

	if (op == NULL || (size > 0 && (op->buf = malloc(size)) == NULL)) {
		free(op);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	op->ino = ino;
	op->size = size;
	fop_dispatch(op);
}

static void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	ll_name_op(req, FOP_REMOVEXATTR, ino, name);
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fop *op = fop_new(req, FOP_CREATE, name, NULL);

	if (op == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	op->ino = parent;
	op->mode = mode;
	op->fi = *fi;
	fop_dispatch(op);
}

static void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	struct fop *op = fop_new(req, FOP_FALLOCATE, NULL, NULL);

	if (op == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	op->ino = ino;
	op->h = fi_handle(fi);
	op->flags = mode;
	op->off = (uint64_t)offset;
	op->len = (uint64_t)length;
	fop_dispatch(op);
}

const struct fuse_lowlevel_ops g_fmnt_ll_ops = {
	.init = ll_init,
	.lookup = ll_lookup,
	.forget = ll_forget,
	.forget_multi = ll_forget_multi,
	.getattr = ll_getattr,
	.setattr = ll_setattr,
	.readlink = ll_readlink,
	.mknod = ll_mknod,
	.mkdir = ll_mkdir,
	.unlink = ll_unlink,
	.rmdir = ll_rmdir,
	.symlink = ll_symlink,
	.rename = ll_rename,
	.link = ll_link,
	.open = ll_open,
	.read = ll_read,
	.write_buf = ll_write_buf,
	.release = ll_release,
	.fsync = ll_fsync,
	.opendir = ll_opendir,
	.readdir = ll_readdir,
	.readdirplus = ll_readdirplus,
	.releasedir = ll_releasedir,
	.fsyncdir = ll_fsyncdir,
	.statfs = ll_statfs,
	.setxattr = ll_setxattr,
	.getxattr = ll_getxattr,
	.listxattr = ll_listxattr,
	.removexattr = ll_removexattr,
	.create = ll_create,
	.fallocate = ll_fallocate,
};

/* ---- teardown (mount thread) ------------------------------------------------ */

struct release_all {
	struct fmnt *m;
	void (*cb)(struct fmnt *m);
};

static void release_all_next(void *arg, int rc)
{
	struct release_all *ra = arg;
	struct fmnt *m = ra->m;
	struct ust_blobfs_file *bfh;
	struct fhandle *h;
	bool dir;

	if (rc != 0) {
		UST_WARNLOG("%s: releasing a handle left open: %s\n", m->mountpoint,
			    strerror(-rc));
	}
	h = TAILQ_FIRST(&m->handles);
	if (h == NULL) {
		void (*cb)(struct fmnt *) = ra->cb;

		free(ra);
		cb(m);
		return;
	}
	bfh = h->bfh;
	dir = h->dir;
	handle_free(m, h);
	if (dir) {
		ust_blobfs_releasedir(m->fs, bfh, release_all_next, ra);
	} else {
		ust_blobfs_release(m->fs, bfh, release_all_next, ra);
	}
}

void fmnt_release_all(struct fmnt *m, void (*cb)(struct fmnt *m))
{
	struct release_all *ra = calloc(1, sizeof(*ra));

	if (ra == NULL) {
		/* Without memory the handles stay; blobfs's unmount then answers -EBUSY. */
		cb(m);
		return;
	}
	ra->m = m;
	ra->cb = cb;
	release_all_next(ra, 0);
}
