/*
 * blobfs: the public entry points, the request plumbing that moves every
 * call to the metadata thread and its callback back to the caller's thread,
 * format / mount (with intent replay and orphan reclaim) / unmount, the super
 * blob, and the operations that only read or change one inode: lookup,
 * getattr, readlink, readdir, statfs and xattrs.
 *
 * Guarantees: a callback runs exactly once, on the calling thread, never
 * inside the call (except argument errors found before forwarding). A mount
 * that succeeds has replayed any interrupted namespace change and deleted
 * every orphan, so the tree it shows is consistent (docs/blobfs-format.md 6).
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
	if (fs != NULL && fs->inflight > 0) {
		fs->inflight--;
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
	req->fs->inflight++;
	if (ust_thread_send_msg(req->fs->thread, run_msg, req) != 0) {
		if (ust_get_thread() == req->fs->thread) {
			bfs_dispatch(req);
		} else {
			/* Nothing was touched on the metadata thread; fail here. */
			req->fs->inflight--;
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

/* ---- format, mount, unmount ------------------------------------------------------------------------ */

enum mount_state {
	M_START,
	M_FORMAT_PROBED,
	M_FORMAT_INIT,
	M_STORE_READY,
	M_CREATE_ROOT,
	M_ROOT_CREATED,
	M_SUPER_CREATED,
	M_SUPER_SET,
	M_OPEN_SUPER,
	M_SUPER_OPENED,
	M_ITER_NEXT,
	M_LOAD_ROOT,
	M_ROOT_LOADED,
	M_REPLAY_NEXT,
	M_REPLAYED,
	M_ORPHAN_NEXT,
	M_ORPHAN_DONE,
	M_SYNCED,
	M_FAIL_CLOSE,
	M_FAIL_UNLOAD,
	M_FAIL_UNLOAD2,
	M_DONE,
	U_START,
	U_SYNC_NEXT,
	U_SUPER_SYNCED,
	U_CLOSED,
	U_UNLOADED,
};

struct bfs_mount {
	enum mount_state state;
	bool format;
	/* format into a store other owners hold (lvols): add the file system, never format */
	bool join;
	int rc;
	char bdev[64];
	struct ust_blobfs_opts opts;
	struct ust_blobfs_ctx ctx;
	struct ust_blobfs *fs;
	struct ust_blob *blob;
	ust_blob_id root_id, super_id;
	struct bfs_disk_intent intent;
	char names[2 * (UST_BLOBFS_NAME_MAX + 1)];
	uint8_t *irecs; /* the intent's directory block records */
	size_t irecs_len;
	bool has_intent;
	int intent_k; /* the batch's next intent to replay */
	size_t orphan_i;
	uint64_t *orphans;
	size_t norphans;
	struct bfs_req *r; /* the internal request that iget and replay use */
	/* what create reads until it completes */
	struct bfs_disk_inode di;
	struct bfs_disk_super ds;
	struct ust_blob_xattr xa;
	struct ust_blob_opts o;
	size_t bucket;
	int pending;
	ust_blobfs_fs_cb cb;
	ust_blobfs_op_cb ucb;
	void *arg;
	struct ust_thread *caller;
};

static void mount_step(struct bfs_mount *m);
static void mount_finish(struct bfs_mount *m);

static void m_unload_failed_cb(void *arg, int rc)
{
	struct bfs_mount *m = arg;

	(void)rc;
	m->rc = m->pending;
	mount_finish(m);
}

static void m_bs_cb(void *arg, struct ust_blob_store *bs, int rc)
{
	struct bfs_mount *m = arg;

	m->fs->bs = bs;
	m->rc = rc;
	mount_step(m);
}

static void m_op_cb(void *arg, int rc)
{
	struct bfs_mount *m = arg;

	m->rc = rc;
	mount_step(m);
}

static void m_id_cb(void *arg, ust_blob_id id, int rc)
{
	struct bfs_mount *m = arg;

	m->rc = rc;
	if (m->state == M_ROOT_CREATED) {
		m->root_id = id;
	} else {
		m->super_id = id;
	}
	mount_step(m);
}

static void m_blob_cb(void *arg, struct ust_blob *blob, int rc)
{
	struct bfs_mount *m = arg;

	m->rc = rc;
	m->blob = blob;
	mount_step(m);
}

static void m_req_cb(struct bfs_req *r)
{
	struct bfs_mount *m = r->buf;

	m->rc = r->rc;
	mount_step(m);
}

static bool is_super(struct ust_blob *blob, struct bfs_disk_super *out)
{
	const void *v;
	size_t len;

	if (ust_blob_get_internal_xattr(blob, BFS_XA_SUPER, &v, &len) != 0 || len < sizeof(*out)) {
		return false;
	}
	memcpy(out, v, sizeof(*out));
	return out->magic == BFS_SUPER_MAGIC;
}

static void inode_init(struct bfs_disk_inode *d, uint32_t mode, const struct ust_blobfs_ctx *ctx)
{
	struct timespec now;
	struct bfs_inode tmp;

	memset(&tmp, 0, sizeof(tmp));
	bfs_now(&now);
	tmp.mode = mode;
	tmp.uid = ctx->uid;
	tmp.gid = ctx->gid;
	tmp.dir_seed = bfs_dir_new_seed();
	tmp.atime = tmp.mtime = tmp.ctime = tmp.btime = now;
	bfs_encode_inode(&tmp, d);
}

static int flusher_poll(void *arg);

static void mount_deliver(void *arg)
{
	struct bfs_mount *m = arg;

	m->cb(m->arg, m->rc == 0 ? m->fs : NULL, m->rc);
	free(m);
}

/* On the metadata thread; the caller's callback runs on the caller's thread. */
static void mount_finish(struct bfs_mount *m)
{
	struct ust_blobfs *fs = m->fs;

	if (m->rc == 0) {
		fs->flusher = ust_poller_register(flusher_poll, fs, (uint64_t)fs->sync_interval_ms * 1000,
						  "blobfs_flush");
	} else {
		free(fs->itab);
		free(fs->orphans);
		free(fs);
		m->fs = NULL;
	}
	free(m->orphans);
	free(m->irecs);
	free(m->r);
	if (m->caller == ust_get_thread() || ust_thread_send_msg(m->caller, mount_deliver, m) != 0) {
		mount_deliver(m);
	}
}

/*
 * Closing every blob at unmount goes one blob at a time: a close may start
 * a cross-thread walk (the store's deferred frees), and tens of thousands of
 * them at once would overrun the threads' message rings.
 */
struct close_all {
	struct ust_blob **blobs;
	size_t n, next;
	bool in_loop, again;
	void (*done)(void *arg);
	void *arg;
};

static void close_next(struct close_all *c);

static void close_one_done(void *arg, int rc)
{
	struct close_all *c = arg;

	(void)rc;
	if (c->in_loop) {
		c->again = true; /* completed inside the call: the loop goes on */
		return;
	}
	close_next(c);
}

static void close_next(struct close_all *c)
{
	c->in_loop = true;
	while (c->next < c->n) {
		c->again = false;
		ust_blob_close(c->blobs[c->next++], close_one_done, c);
		if (!c->again) {
			c->in_loop = false;
			return; /* close_one_done continues */
		}
	}
	c->in_loop = false;
	c->done(c->arg);
	free(c->blobs);
	free(c);
}

/* Close every cached inode's blob and the super blob; done(arg) once all are closed. */
static void close_all_inodes(struct ust_blobfs *fs, void (*done)(void *arg), void *arg)
{
	struct close_all *c = calloc(1, sizeof(*c));
	struct bfs_inode *ip, *next;
	size_t i;

	if (c != NULL) {
		c->blobs = calloc(fs->ninodes + 1, sizeof(*c->blobs));
		c->done = done;
		c->arg = arg;
	}
	for (i = 0; i < fs->nibuckets; i++) {
		for (ip = fs->itab[i]; ip != NULL; ip = next) {
			next = ip->hnext;
			if (ip->blob != NULL) {
				if (c != NULL && c->blobs != NULL && c->n < fs->ninodes) {
					c->blobs[c->n++] = ip->blob;
				} else {
					/* without memory to wait, close anyway; the unload reports -EBUSY if it must */
					ust_blob_close(ip->blob, bfs_ignore_cb, NULL);
				}
			}
			bfs_inode_free(ip);
		}
		fs->itab[i] = NULL;
	}
	fs->ninodes = 0;
	fs->root = NULL;
	if (fs->super != NULL) {
		if (c != NULL && c->blobs != NULL) {
			c->blobs[c->n++] = fs->super;
		} else {
			ust_blob_close(fs->super, bfs_ignore_cb, NULL);
		}
		fs->super = NULL;
	}
	if (c == NULL || c->blobs == NULL) {
		if (c != NULL) {
			free(c);
		}
		done(arg);
		return;
	}
	close_next(c);
}

static void m_msg(void *arg)
{
	mount_step(arg);
}

static void m_closed(void *arg)
{
	struct bfs_mount *m = arg;

	m->state = M_FAIL_UNLOAD;
	m->rc = m->pending;
	mount_step(m);
}

/*
 * Read intent k of the super blob into m (has_intent false when absent).
 * 0, or -EIO when it is malformed, -ENOMEM.
 */
static int mount_read_intent(struct bfs_mount *m, int k)
{
	const struct bfs_disk_intent *in;
	const void *v;
	size_t len, head;
	char name[32];

	m->has_intent = false;
	free(m->irecs);
	m->irecs = NULL;
	m->irecs_len = 0;
	bfs_intent_xattr_name(k, name);
	if (ust_blob_get_internal_xattr(m->fs->super, name, &v, &len) != 0) {
		return 0;
	}
	in = v;
	head = sizeof(*in) + (len >= sizeof(*in) ? in->name1_len + in->name2_len : 0);
	if (len < sizeof(*in) || in->magic != BFS_INTENT_MAGIC || len < head ||
	    in->name1_len > UST_BLOBFS_NAME_MAX || in->name2_len > UST_BLOBFS_NAME_MAX ||
	    in->nblocks > BFS_INTENT_MAX_BLOCKS ||
	    bfs_intent_records_check((const uint8_t *)v + head, len - head, in->nblocks) != 0) {
		UST_ERRLOG("blobfs: malformed intent record (%s)\n", name);
		return -EIO;
	}
	m->intent = *in;
	memcpy(m->names, (const uint8_t *)v + sizeof(*in), in->name1_len + in->name2_len);
	m->irecs_len = len - head;
	if (m->irecs_len > 0) {
		m->irecs = malloc(m->irecs_len);
		if (m->irecs == NULL) {
			return -ENOMEM;
		}
		memcpy(m->irecs, (const uint8_t *)v + head, m->irecs_len);
	}
	m->has_intent = true;
	return 0;
}

static void mount_step(struct bfs_mount *m)
{
	struct ust_blobfs *fs = m->fs;
	struct ust_bs_opts bo;
	struct bfs_disk_super ds;
	const void *v;
	size_t len;

	switch (m->state) {
	case M_START:
		/*
		 * The store is held through the shared-store registry: lvols may
		 * hold it too (docs/blobfs-format.md 1). A format first looks for
		 * a store to join.
		 */
		ust_bs_opts_init(&bo);
		snprintf(bo.bstype, sizeof(bo.bstype), "%s", UST_BLOBFS_BSTYPE);
		m->state = m->format ? M_FORMAT_PROBED : M_STORE_READY;
		ust_bs_share_load(m->bdev, &bo, m_bs_cb, m);
		return;
	case M_FORMAT_PROBED:
		if (m->rc == 0 && ust_bs_share_holders(fs->bs) > 1) {
			/* Others keep blobs in it: add the file system beside them. */
			UST_NOTICELOG("blobfs: %s holds a store in use (lvols); adding the file system to it\n",
				      m->bdev);
			m->join = true;
			m->state = M_STORE_READY;
			mount_step(m);
			return;
		}
		m->state = M_FORMAT_INIT;
		if (m->rc == 0) {
			/* Only ours: formatting anew is what format means. */
			ust_bs_share_put(fs->bs, m_op_cb, m);
			return;
		}
		if (m->rc != -ENODATA && m->rc != -EUCLEAN && m->rc != -EILSEQ) {
			m->state = M_STORE_READY; /* claimed, or unreadable: fail */
			mount_step(m);
			return;
		}
		m->rc = 0;
		/* fall through */
	case M_FORMAT_INIT:
		fs->bs = NULL;
		if (m->rc != 0) {
			mount_finish(m);
			return;
		}
		ust_bs_opts_init(&bo);
		snprintf(bo.bstype, sizeof(bo.bstype), "%s", UST_BLOBFS_BSTYPE);
		bo.cluster_size = m->opts.cluster_size != 0 ? m->opts.cluster_size : 64u << 10;
		bo.max_blobs = m->opts.max_inodes;
		m->state = M_STORE_READY;
		ust_bs_share_init(m->bdev, &bo, m_bs_cb, m);
		return;
	case M_STORE_READY:
		if (m->rc != 0) {
			mount_finish(m);
			return;
		}
		if (ust_bs_get_md_thread(fs->bs) != ust_get_thread()) {
			/* Another owner loaded the store: run where it lives. */
			fs->thread = ust_bs_get_md_thread(fs->bs);
			if (ust_thread_send_msg(fs->thread, m_msg, m) != 0) {
				UST_ERRLOG("blobfs: cannot reach the thread of the store on %s\n", m->bdev);
				m->rc = -ENOMEM; /* the hold leaks until shutdown */
				mount_finish(m);
			}
			return;
		}
		fs->io_unit = ust_bs_get_io_unit_size(fs->bs);
		fs->cluster = ust_bs_get_cluster_size(fs->bs);
		fs->ch = ust_bs_alloc_io_channel(fs->bs);
		if (fs->ch == NULL) {
			m->rc = -ENOMEM;
			m->state = M_FAIL_UNLOAD;
			mount_step(m);
			return;
		}
		if (!m->format || m->join) {
			m->state = M_OPEN_SUPER;
			mount_step(m);
			return;
		}
		/* fall through */
	case M_CREATE_ROOT:
		m->join = false; /* from here on, the file system found is the one made here */
		inode_init(&m->di, S_IFDIR | 0755, &m->ctx);
		m->xa = (struct ust_blob_xattr){.name = BFS_XA_INODE, .value = &m->di,
						.value_len = sizeof(m->di), .internal = true};
		ust_blob_opts_init(&m->o);
		m->o.thin_provision = true;
		m->o.xattrs = &m->xa;
		m->o.xattr_count = 1;
		m->state = M_ROOT_CREATED;
		ust_bs_create_blob(fs->bs, &m->o, m_id_cb, m);
		return;
	case M_ROOT_CREATED:
		if (m->rc != 0) {
			m->state = M_FAIL_UNLOAD;
			mount_step(m);
			return;
		}
		m->ds = (struct bfs_disk_super){.magic = BFS_SUPER_MAGIC, .version = BFS_SUPER_VERSION,
						.root_ino = m->root_id, .next_seq = 1};
		m->xa = (struct ust_blob_xattr){.name = BFS_XA_SUPER, .value = &m->ds,
						.value_len = sizeof(m->ds), .internal = true};
		ust_blob_opts_init(&m->o);
		m->o.xattrs = &m->xa;
		m->o.xattr_count = 1;
		m->state = M_SUPER_CREATED;
		ust_bs_create_blob(fs->bs, &m->o, m_id_cb, m);
		return;
	case M_SUPER_CREATED:
		if (m->rc != 0) {
			m->state = M_FAIL_UNLOAD;
			mount_step(m);
			return;
		}
		m->state = M_SUPER_SET;
		if (ust_bs_get_super(fs->bs) == 0) {
			ust_bs_set_super(fs->bs, m->super_id, m_op_cb, m);
			return;
		}
		mount_step(m);
		return;
	case M_SUPER_SET:
		if (m->rc != 0) {
			m->state = M_FAIL_UNLOAD;
			mount_step(m);
			return;
		}
		m->state = M_SUPER_OPENED;
		ust_bs_open_blob(fs->bs, m->super_id, m_blob_cb, m);
		return;
	case M_OPEN_SUPER:
		m->super_id = ust_bs_get_super(fs->bs);
		if (m->super_id != 0) {
			m->state = M_SUPER_OPENED;
			ust_bs_open_blob(fs->bs, m->super_id, m_blob_cb, m);
			return;
		}
		m->state = M_ITER_NEXT;
		m->blob = NULL;
		ust_bs_iter_first(fs->bs, m_blob_cb, m);
		return;
	case M_SUPER_OPENED:
		if (m->rc == 0 && is_super(m->blob, &ds)) {
			m->state = M_LOAD_ROOT;
			mount_step(m);
			return;
		}
		if (m->rc == 0) {
			ust_blob_close(m->blob, bfs_ignore_cb, NULL);
		}
		/* The store's super blob belongs to another owner: find ours. */
		m->state = M_ITER_NEXT;
		m->blob = NULL;
		ust_bs_iter_first(fs->bs, m_blob_cb, m);
		return;
	case M_ITER_NEXT:
		if (m->rc == -ENOENT && m->blob == NULL && m->join) {
			m->state = M_CREATE_ROOT;
			mount_step(m);
			return;
		}
		if (m->rc == -ENOENT && m->blob == NULL) {
			UST_ERRLOG("blobfs: no file system on %s\n", m->bdev);
			m->rc = -ENODATA;
			m->state = M_FAIL_UNLOAD;
			mount_step(m);
			return;
		}
		if (m->rc != 0) {
			m->state = M_FAIL_UNLOAD;
			mount_step(m);
			return;
		}
		if (is_super(m->blob, &ds)) {
			/* stop here: the iterator's reference becomes ours */
			m->super_id = ust_blob_get_id(m->blob);
			m->state = M_LOAD_ROOT;
			mount_step(m);
			return;
		}
		ust_bs_iter_next(fs->bs, m->blob, m_blob_cb, m);
		m->blob = NULL;
		return;
	case M_LOAD_ROOT:
		fs->super = m->blob;
		if (m->join) {
			UST_ERRLOG("blobfs: %s holds a file system already; not formatting a store in use\n",
				   m->bdev);
			m->rc = -EEXIST;
			m->state = M_FAIL_CLOSE;
			mount_step(m);
			return;
		}
		if (!is_super(fs->super, &ds)) {
			m->rc = -ENODATA;
			m->state = M_FAIL_CLOSE;
			mount_step(m);
			return;
		}
		/* version 2 has no batched intents: its single intent reads the same */
		if (ds.version < 2 || ds.version > BFS_SUPER_VERSION) {
			UST_ERRLOG("blobfs: version %u unsupported\n", ds.version);
			m->rc = -ENOTSUP;
			m->state = M_FAIL_CLOSE;
			mount_step(m);
			return;
		}
		fs->next_seq = ds.next_seq;
		m->root_id = ds.root_ino;
		if (ust_blob_get_internal_xattr(fs->super, BFS_XA_ORPHANS, &v, &len) == 0 && len >= 8) {
			m->norphans = len / 8;
			m->orphans = malloc(len);
			if (m->orphans == NULL) {
				m->rc = -ENOMEM;
				m->state = M_FAIL_CLOSE;
				mount_step(m);
				return;
			}
			memcpy(m->orphans, v, m->norphans * 8);
		}
		m->r = bfs_req_new(fs, BFS_R_UNMOUNT, NULL);
		if (m->r == NULL) {
			m->rc = -ENOMEM;
			m->state = M_FAIL_CLOSE;
			mount_step(m);
			return;
		}
		m->r->buf = m;
		m->r->kind = BFS_R_INTERNAL;
		m->r->resume = m_req_cb;
		m->state = M_ROOT_LOADED;
		if (bfs_iget(fs, m->root_id, &fs->root, m_req_cb, m->r) == 0) {
			return;
		}
		m->rc = m->r->rc;
		/* fallthrough */
	case M_ROOT_LOADED:
		if (m->rc != 0 || fs->root == NULL || !S_ISDIR(fs->root->mode)) {
			UST_ERRLOG("blobfs: root directory unreadable: %d\n", m->rc);
			m->rc = m->rc != 0 ? m->rc : -EIO;
			m->state = M_FAIL_CLOSE;
			mount_step(m);
			return;
		}
		fs->root->nlookup = 1; /* never forgotten */
		m->intent_k = 0;
		/* fallthrough */
	case M_REPLAY_NEXT:
		/* the intents of the last batch, one by one: they are independent (5.3) */
		m->state = M_REPLAYED;
		m->has_intent = false;
		m->rc = m->intent_k < BFS_BATCH_MAX ? mount_read_intent(m, m->intent_k++) : 0;
		if (m->rc < 0) {
			m->state = M_FAIL_CLOSE;
			mount_step(m);
			return;
		}
		if (m->has_intent) {
			struct bfs_req *r = bfs_req_new(fs, BFS_R_UNMOUNT, NULL);

			if (r == NULL) {
				m->rc = -ENOMEM;
				m->state = M_FAIL_CLOSE;
				mount_step(m);
				return;
			}
			r->intent = m->intent;
			memcpy(r->iname1, m->names, m->intent.name1_len);
			memcpy(r->iname2, m->names + m->intent.name1_len, m->intent.name2_len);
			r->irecs = m->irecs;
			r->irecs_len = m->irecs_len;
			r->parent = m->r;
			m->r->rc = 0;
			m->r->state = 0;
			fs->inflight++;
			bfs_ns_replay(r);
			return;
		}
		m->rc = 0;
		/* fallthrough */
	case M_REPLAYED:
		if (m->rc != 0) {
			UST_ERRLOG("blobfs: replaying the interrupted change failed: %d\n", m->rc);
			m->state = M_FAIL_CLOSE;
			mount_step(m);
			return;
		}
		if (m->has_intent) {
			m->state = M_REPLAY_NEXT;
			mount_step(m);
			return;
		}
		m->orphan_i = 0;
		m->state = M_ORPHAN_NEXT;
		m->rc = 0;
		/* fallthrough */
	case M_ORPHAN_NEXT:
		if (m->orphan_i > 0 && m->rc != 0 && m->rc != -ENOENT) {
			UST_ERRLOG("blobfs: orphan 0x%" PRIx64 ": %d\n", m->orphans[m->orphan_i - 1], m->rc);
			m->state = M_FAIL_CLOSE;
			mount_step(m);
			return;
		}
		if (m->orphan_i < m->norphans) {
			uint64_t ino = m->orphans[m->orphan_i++];
			struct bfs_inode *ip = bfs_icache_find(fs, ino);

			if (ip == NULL) {
				if (bfs_iget(fs, ino, &m->r->ip, m_req_cb, m->r) == 0) {
					m->state = M_ORPHAN_DONE;
					return;
				}
				ip = m->r->ip;
			}
			m->r->ip = ip;
			m->rc = m->r->rc;
			m->state = M_ORPHAN_DONE;
			mount_step(m);
			return;
		}
		free(fs->orphans);
		fs->orphans = NULL;
		fs->norphans = 0;
		bfs_intent_remove_all(fs);
		m->rc = bfs_super_store(fs);
		if (m->rc != 0) {
			m->state = M_FAIL_CLOSE;
			mount_step(m);
			return;
		}
		m->state = M_SYNCED;
		ust_blob_sync_md(fs->super, m_op_cb, m);
		return;
	case M_ORPHAN_DONE:
		m->state = M_ORPHAN_NEXT;
		if (m->rc == 0 && m->r->ip != NULL && m->r->ip->nrefs == 0 && !S_ISDIR(m->r->ip->mode)) {
			m->r->rc = 0;
			bfs_reclaim_inode(fs, m->r->ip, m_req_cb, m->r);
			return;
		}
		if (m->rc == -ESTALE) {
			m->rc = 0; /* not ours (any more): nothing to reclaim */
		}
		mount_step(m);
		return;
	case M_SYNCED:
		if (m->rc != 0) {
			m->state = M_FAIL_CLOSE;
			mount_step(m);
			return;
		}
		m->state = M_DONE;
		mount_finish(m);
		return;
	case M_FAIL_CLOSE:
		m->pending = m->rc;
		close_all_inodes(fs, m_closed, m);
		return;
	case M_FAIL_UNLOAD:
		m->pending = m->rc;
		if (fs->ch != NULL) {
			ust_bs_free_io_channel(fs->ch);
			fs->ch = NULL;
		}
		m->state = M_FAIL_UNLOAD2;
		if (ust_thread_send_msg(fs->thread, m_msg, m) != 0) {
			mount_step(m);
		}
		return;
	case M_FAIL_UNLOAD2:
		m->state = M_DONE;
		ust_bs_share_put(fs->bs, m_unload_failed_cb, m);
		return;
	default:
		break;
	}
}

/* ---- unmount -------------------------------------------------------------------------------------- */

enum um_state {
	UM_START,
	UM_SYNCING,
	UM_SUPER_SYNCED,
	UM_CLOSED,
	UM_CHANNEL_GONE,
	UM_UNLOADED,
};

static void um_step(struct bfs_req *req);

static void um_closed(void *arg)
{
	um_step(arg);
}

static void um_op_cb(void *arg, int rc)
{
	struct bfs_req *req = arg;

	req->rc = rc;
	um_step(req);
}

static void um_sync_done(struct bfs_req *req)
{
	struct bfs_req *owner = req->parent;

	if (req->rc != 0 && owner->result == 0) {
		owner->result = req->rc;
	}
	free(req);
	if (--owner->length == 0) {
		owner->rc = (int)owner->result;
		um_step(owner);
	}
}

static void um_step(struct bfs_req *req)
{
	struct ust_blobfs *fs = req->fs;
	struct bfs_inode *ip;
	size_t i;
	int rc;

	switch (req->state) {
	case UM_START:
		if (fs->nopen_files > 0 || fs->ns_active != NULL || fs->inflight > 1 || fs->unmounting) {
			bfs_complete(req, -EBUSY);
			return;
		}
		fs->unmounting = true;
		ust_poller_unregister(&fs->flusher);
		req->state = UM_SYNCING;
		req->length = 1; /* held until every sync is started */
		req->result = 0;
		for (i = 0; i < fs->nibuckets; i++) {
			for (ip = fs->itab[i]; ip != NULL; ip = ip->hnext) {
				struct bfs_req *s;

				if (!ip->dirty || ip->blob == NULL) {
					continue;
				}
				s = bfs_req_new(fs, BFS_R_INTERNAL, NULL);
				if (s == NULL) {
					req->result = -ENOMEM;
					continue;
				}
				s->parent = req;
				req->length++;
				bfs_sync_inode(fs, ip, um_sync_done, s);
			}
		}
		if (--req->length > 0) {
			return;
		}
		req->rc = (int)req->result;
		/* fallthrough */
	case UM_SYNCING:
		if (req->rc != 0) {
			fs->unmounting = false;
			bfs_complete(req, req->rc);
			return;
		}
		bfs_intent_remove_all(fs);
		rc = bfs_super_store(fs);
		if (rc != 0) {
			fs->unmounting = false;
			bfs_complete(req, rc);
			return;
		}
		req->state = UM_SUPER_SYNCED;
		ust_blob_sync_md(fs->super, um_op_cb, req);
		return;
	case UM_SUPER_SYNCED:
		if (req->rc != 0) {
			fs->unmounting = false;
			bfs_complete(req, req->rc);
			return;
		}
		req->state = UM_CLOSED;
		close_all_inodes(fs, um_closed, req);
		return;
	case UM_CLOSED:
		/* the channel goes by a deferred message: unload after it */
		ust_bs_free_io_channel(fs->ch);
		fs->ch = NULL;
		req->state = UM_CHANNEL_GONE;
		if (ust_thread_send_msg(fs->thread, um_closed, req) != 0) {
			um_step(req);
		}
		return;
	case UM_CHANNEL_GONE:
		/* The last holder unloads the store; lvols may still hold it. */
		req->state = UM_UNLOADED;
		ust_bs_share_put(fs->bs, um_op_cb, req);
		return;
	case UM_UNLOADED:
		if (req->rc != 0) {
			UST_ERRLOG("blobfs: unloading the store: %d\n", req->rc);
		}
		free(fs->itab);
		free(fs->orphans);
		rc = req->rc;
		req->fs = NULL;
		free(fs);
		bfs_complete(req, rc);
		return;
	}
}

/* The periodic flush of sizes and times that writes changed (the durability window). */
static int flusher_poll(void *arg)
{
	struct ust_blobfs *fs = arg;
	struct bfs_inode *ip;
	size_t i;
	int busy = UST_POLLER_IDLE;

	for (i = 0; i < fs->nibuckets; i++) {
		for (ip = fs->itab[i]; ip != NULL; ip = ip->hnext) {
			if (ip->dirty && ip->blob != NULL) {
				bfs_sync_inode(fs, ip, NULL, NULL);
				busy = UST_POLLER_BUSY;
			}
		}
	}
	return busy;
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
			req->st.ffree = req->st.files > fs->ninodes + 1 ? req->st.files - fs->ninodes - 1 : 0;
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
					bfs_complete(req, -ENOENT);
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
			bfs_complete(req, req->rc == -ESTALE ? -EIO : req->rc);
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
static void readdir_loop(struct bfs_req *req)
{
	struct ust_blobfs *fs = req->fs;
	struct bfs_inode *dp = req->fh->ip;
	struct ust_blobfs_dirent d;
	struct ust_blobfs_attr a;
	struct bfs_dirent *de;

	if (req->state == A_DIR_CHILD) {
		req->state = A_LOADED;
		if (req->rc != 0) {
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
			if (req->rc != 0) {
				bfs_complete(req, req->rc);
				return;
			}
have_child:
			/* the entry may have gone while its inode loaded: look again */
			de = bfs_dir_next(dp, req->offset);
			if (de == NULL || de->cookie != req->length || de->ino != req->ip2->ino) {
				continue;
			}
			bfs_fill_attr(fs, req->ip2, &a);
			d.attr = &a;
		}
		d.name = de->name;
		d.type = de->type;
		d.ino = bfs_ino_out(fs, de->ino);
		d.next_offset = de->cookie;
		if (req->fill(req->fill_arg, &d) != 0) {
			bfs_complete(req, 0);
			return;
		}
		if (req->plus) {
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
		um_step(req);
		return;
	case BFS_R_FORGET: {
		struct bfs_inode *ip = bfs_icache_find(req->fs, bfs_ino_in(req->fs, req->ino));

		if (ip != NULL && ip != req->fs->root) {
			ip->nlookup = ip->nlookup > req->length ? ip->nlookup - req->length : 0;
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

void ust_blobfs_opts_init(struct ust_blobfs_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->cluster_size = 64u << 10;
	opts->sync_interval_ms = 5000;
}

static void start_mount(const char *bdev_name, const struct ust_blobfs_opts *opts,
			const struct ust_blobfs_ctx *ctx, bool format, ust_blobfs_fs_cb cb, void *arg)
{
	struct bfs_mount *m = calloc(1, sizeof(*m));
	struct ust_blobfs *fs = calloc(1, sizeof(*fs));

	if (m == NULL || fs == NULL || bdev_name == NULL || strlen(bdev_name) >= sizeof(m->bdev)) {
		free(m);
		free(fs);
		cb(arg, NULL, bdev_name == NULL ? -EINVAL : -ENOMEM);
		return;
	}
	fs->nibuckets = 64;
	fs->itab = calloc(fs->nibuckets, sizeof(*fs->itab));
	if (fs->itab == NULL) {
		free(m);
		free(fs);
		cb(arg, NULL, -ENOMEM);
		return;
	}
	fs->thread = ust_get_thread();
	m->caller = fs->thread;
	if (opts != NULL) {
		m->opts = *opts;
	} else {
		ust_blobfs_opts_init(&m->opts);
	}
	fs->sync_interval_ms = m->opts.sync_interval_ms != 0 ? m->opts.sync_interval_ms : 5000;
	if (ctx != NULL) {
		m->ctx = *ctx;
	}
	snprintf(m->bdev, sizeof(m->bdev), "%s", bdev_name);
	m->format = format;
	m->fs = fs;
	m->cb = cb;
	m->arg = arg;
	m->state = M_START;
	mount_step(m);
}

void ust_blobfs_format(const char *bdev_name, const struct ust_blobfs_opts *opts,
		       const struct ust_blobfs_ctx *ctx, ust_blobfs_fs_cb cb, void *arg)
{
	start_mount(bdev_name, opts, ctx, true, cb, arg);
}

void ust_blobfs_mount(const char *bdev_name, const struct ust_blobfs_opts *opts,
		      ust_blobfs_fs_cb cb, void *arg)
{
	start_mount(bdev_name, opts, NULL, false, cb, arg);
}

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
