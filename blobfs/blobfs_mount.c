/*
 * blobfs mount life cycle: format (a new file system, or one added to a
 * store another owner holds), mount (load through the shared-store
 * registry, find the super blob, replay the interrupted namespace changes,
 * reclaim orphans, load the root), the periodic flusher of sizes and times,
 * and unmount (sync every dirty inode, close every blob, drop the intents,
 * release the store).
 *
 * Guarantees: a mount that succeeds has replayed any interrupted namespace
 * change and deleted every orphan it could read, so the tree it shows is
 * consistent (docs/blobfs-format.md 6); an orphan whose inode cannot be
 * read stays listed, untouched, rather than keep the whole tree from being
 * served. An unmount that succeeds leaves no intent and every inode synced,
 * so the next mount replays nothing.
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
	bool in_call, call_done; /* orphan_call: m_req_cb ran inside the call */
	uint64_t *orphans;
	size_t norphans;
	size_t nkept; /* orphans[0..nkept): unreadable ones, listed again (orphan_keep) */
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
	if (m->in_call) {
		m->call_done = true; /* completed inside the call: its caller goes on */
		return;
	}
	mount_step(m);
}

/*
 * Load (load: true) or reclaim the orphan m->orphans[m->orphan_i] through
 * m->r. true: it completed already (m->r->rc, m->r->ip set); false: it runs
 * on and m_req_cb resumes mount_step.
 */
static bool orphan_call(struct bfs_mount *m, bool load)
{
	struct ust_blobfs *fs = m->fs;

	m->in_call = true;
	m->call_done = false;
	if (load) {
		if (bfs_iget(fs, m->orphans[m->orphan_i], &m->r->ip, m_req_cb, m->r) != 0) {
			m->call_done = true;
		}
	} else {
		bfs_reclaim_inode(fs, m->r->ip, m_req_cb, m->r);
	}
	m->in_call = false;
	if (!m->call_done) {
		if (load) {
			m->orphan_i++; /* m_req_cb finds the next one's index */
		}
		return false;
	}
	return true;
}

/* An orphan loaded (m->rc, m->r->ip): true if its reclaim runs on (m_req_cb resumes). */
static bool orphan_done(struct bfs_mount *m)
{
	struct bfs_inode *ip = m->r->ip;

	m->state = M_ORPHAN_NEXT;
	if (m->rc == 0 && ip != NULL && ip->nrefs == 0 && !ip->deleted && !S_ISDIR(ip->mode)) {
		m->r->rc = 0;
		if (!orphan_call(m, false)) {
			return true;
		}
		m->rc = m->r->rc;
		return false;
	}
	if (m->rc == -ESTALE) {
		m->rc = 0; /* not ours (any more): nothing to reclaim */
	}
	return false;
}

/*
 * The orphan just handled failed with rc. Damage or a read error (EIO) in
 * one unlinked file is no reason to refuse the whole tree: it is logged and
 * kept for the list the mount writes back (true), and the next mount tries
 * again. Anything else (ENOMEM) fails the mount (false).
 */
static bool orphan_keep(struct bfs_mount *m, int rc)
{
	uint64_t ino = m->orphans[m->orphan_i - 1];
	size_t k;

	if (rc != -EIO) {
		UST_ERRLOG("blobfs: orphan 0x%" PRIx64 ": %d\n", ino, rc);
		return false;
	}
	for (k = 0; k < m->nkept; k++) {
		if (m->orphans[k] == ino) {
			return true; /* a damaged list may repeat it */
		}
	}
	UST_ERRLOG("blobfs: orphan 0x%" PRIx64 " cannot be read or deleted (%d): it stays on the "
		   "orphan list and keeps its space\n", ino, rc);
	/* Handled entries only: the list is compacted behind the loop's index. */
	m->orphans[m->nkept++] = ino;
	return true;
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
		free(fs->evict_q);
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

static bool dt_valid(uint8_t t)
{
	return t == DT_REG || t == DT_DIR || t == DT_LNK || t == DT_FIFO || t == DT_SOCK ||
	       t == DT_CHR || t == DT_BLK;
}

static bool intent_name_valid(const char *p, uint16_t len)
{
	return len >= 1 && len <= UST_BLOBFS_NAME_MAX && memchr(p, '/', len) == NULL &&
	       memchr(p, '\0', len) == NULL && !(len == 1 && p[0] == '.') &&
	       !(len == 2 && p[0] == '.' && p[1] == '.');
}

/* Do the ranges of two pre-image records of one directory overlap (4.2)? */
static bool records_overlap(const struct bfs_disk_intent_block *a, const struct bfs_disk_intent_block *b)
{
	unsigned d = a->depth < b->depth ? a->depth : b->depth; /* both <= 24 unless EMPTY */

	if (a->dir != b->dir) {
		return false;
	}
	if ((a->flags & BFS_IBLK_EMPTY) || (b->flags & BFS_IBLK_EMPTY)) {
		return true;
	}
	return (a->index & ((1u << d) - 1u)) == (b->index & ((1u << d) - 1u));
}

/*
 * An intent that passed the record layout check describes a change this
 * writer could have made (docs/blobfs-format.md 5, 5.3): a known op, a seq
 * of the last batch, valid names, the inodes and directories it needs and
 * none that no change can name (the root as an entry, the super blob),
 * and one pre-image record per directory bucket it touches, in range and
 * disjoint. Anything else is damage (9): replaying it would make changes
 * no operation makes (give the root a parent, a directory a second name).
 */
static bool intent_valid(const struct bfs_mount *m, const struct bfs_disk_intent *in, const char *names,
			 const uint8_t *recs)
{
	bool two = in->op == BFS_OP_RENAME || in->op == BFS_OP_EXCHANGE;
	struct bfs_disk_intent_block r[BFS_INTENT_MAX_BLOCKS];
	size_t off = 0;
	int k;

	if (in->op < BFS_OP_CREATE || in->op > BFS_OP_EXCHANGE || in->seq >= m->fs->next_seq ||
	    in->seq + BFS_BATCH_MAX < m->fs->next_seq || in->seq == 0) {
		return false;
	}
	if (!intent_name_valid(names, in->name1_len) ||
	    (two ? !intent_name_valid(names + in->name1_len, in->name2_len) : in->name2_len != 0)) {
		return false;
	}
	if (in->dir1 == 0 || (two && in->dir2 == 0) || (in->op == BFS_OP_CREATE) != (in->ino1 == 0) ||
	    (in->op == BFS_OP_EXCHANGE && in->ino2 == 0) || !dt_valid(in->type1) ||
	    (in->ino2 != 0 && !dt_valid(in->type2)) || (in->op == BFS_OP_LINK && in->type1 == DT_DIR)) {
		return false;
	}
	if (in->ino1 == m->root_id || in->ino2 == m->root_id || in->ino1 == m->super_id ||
	    in->ino2 == m->super_id || in->dir1 == m->super_id || in->dir2 == m->super_id ||
	    (in->ino1 != 0 && (in->ino1 == in->dir1 || in->ino1 == in->dir2)) ||
	    (in->ino2 != 0 && (in->ino2 == in->dir1 || in->ino2 == in->dir2))) {
		return false;
	}
	if (in->nblocks < 1 || (!two && in->nblocks != 1)) {
		return false;
	}
	for (k = 0; k < in->nblocks; k++) {
		memcpy(&r[k], recs + off, sizeof(r[k]));
		off += sizeof(r[k]) + ((r[k].flags & BFS_IBLK_EMPTY) ? 0 : BFS_DBLOCK_SIZE);
		if ((r[k].dir != in->dir1 && (!two || r[k].dir != in->dir2)) ||
		    (!(r[k].flags & BFS_IBLK_EMPTY) &&
		     (r[k].depth > BFS_DIR_MAX_DEPTH || r[k].index >= (1u << r[k].depth)))) {
			return false;
		}
	}
	return in->nblocks < 2 || !records_overlap(&r[0], &r[1]);
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

	m->has_intent = false;
	free(m->irecs);
	m->irecs = NULL;
	m->irecs_len = 0;
	if (ust_blob_get_internal_xattr(m->fs->super, bfs_intent_xattr_name(k), &v, &len) != 0) {
		return 0;
	}
	in = v;
	head = sizeof(*in) + (len >= sizeof(*in) ? in->name1_len + in->name2_len : 0);
	if (len < sizeof(*in) || in->magic != BFS_INTENT_MAGIC || len < head ||
	    in->name1_len > UST_BLOBFS_NAME_MAX || in->name2_len > UST_BLOBFS_NAME_MAX ||
	    in->nblocks > BFS_INTENT_MAX_BLOCKS ||
	    bfs_intent_records_check((const uint8_t *)v + head, len - head, in->nblocks) != 0 ||
	    !intent_valid(m, in, (const char *)v + sizeof(*in), (const uint8_t *)v + head)) {
		UST_ERRLOG("blobfs: malformed intent record (%s)\n", bfs_intent_xattr_name(k));
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
		bo.prealloc_md = m->opts.prealloc_md;
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
		/*
		 * The super blob's root_ino must name a directory without refs
		 * (docs/blobfs-format.md 3, 4): anything else, a missing blob or
		 * one that is no blobfs inode included, is damage (9).
		 */
		if (m->rc != 0 || fs->root == NULL || !S_ISDIR(fs->root->mode) || fs->root->nrefs != 0) {
			UST_ERRLOG("blobfs: root directory 0x%" PRIx64 " unreadable or no root: %d\n",
				   m->root_id, m->rc);
			m->rc = m->rc == -ENOMEM ? m->rc : -EIO;
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
			atomic_fetch_add(&fs->inflight, 1);
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
	case M_ORPHAN_DONE:
		/*
		 * A loop, not one mount_step per orphan: a damaged list may hold
		 * thousands of entries that complete at once (cached, already
		 * reclaimed, the super blob), and recursing per entry would run
		 * out of stack. Calls that complete inline only mark it
		 * (m_req_cb, in_call) and the loop goes on.
		 */
		for (;;) {
			if (m->state == M_ORPHAN_DONE && orphan_done(m)) {
				return; /* the reclaim runs on: m_req_cb resumes here */
			}
			m->state = M_ORPHAN_NEXT;
			if (m->orphan_i > 0 && m->rc != 0 && m->rc != -ENOENT) {
				if (!orphan_keep(m, m->rc)) {
					m->state = M_FAIL_CLOSE;
					mount_step(m);
					return;
				}
				m->rc = 0;
			}
			if (m->orphan_i >= m->norphans) {
				break;
			}
			m->state = M_ORPHAN_DONE;
			m->r->rc = 0;
			m->r->ip = bfs_icache_find(fs, m->orphans[m->orphan_i]);
			if (m->r->ip == NULL && !orphan_call(m, true)) {
				return;
			}
			m->orphan_i++;
			m->rc = m->r->rc;
		}
		free(fs->orphans);
		fs->orphans = NULL;
		fs->norphans = 0;
		if (m->nkept > 0) {
			fs->orphans = m->orphans;
			fs->norphans = m->nkept;
			m->orphans = NULL;
		}
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


static void um_closed(void *arg)
{
	bfs_unmount_step(arg);
}

static void um_op_cb(void *arg, int rc)
{
	struct bfs_req *req = arg;

	req->rc = rc;
	bfs_unmount_step(req);
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
		bfs_unmount_step(owner);
	}
}

/*
 * The device is going away: its bdev is being removed, every I/O answers
 * -ENODEV and always will. Nothing more can be written, so the unmount
 * lets go without its syncs, as a crash would: what was not yet synced is
 * lost, and the next mount of the same bytes replays and reclaims
 * (docs/blobfs-format.md 5, 6). Staying mounted would hold the bdev open,
 * and its removal, and a shutdown, would wait forever. Answered -ENODEV.
 */
static void um_device_gone(struct bfs_req *req)
{
	UST_WARNLOG("blobfs: the device is going away; unmounting without writing what is "
		    "not yet synced (the next mount recovers)\n");
	req->result = -ENODEV;
	req->state = UM_CLOSED;
	close_all_inodes(req->fs, um_closed, req);
}

void bfs_unmount_step(struct bfs_req *req)
{
	struct ust_blobfs *fs = req->fs;
	struct bfs_inode *ip;
	size_t i;
	int rc;

	switch (req->state) {
	case UM_START:
		if (fs->nopen_files > 0 || fs->ns_active != NULL || atomic_load(&fs->inflight) > 1 ||
		    fs->unmounting) {
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
		if (req->rc == -ENODEV) {
			um_device_gone(req);
			return;
		}
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
		if (req->rc == -ENODEV) {
			um_device_gone(req);
			return;
		}
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
			bfs_unmount_step(req);
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
		free(fs->evict_q);
		rc = req->rc != 0 ? req->rc : (int)req->result;
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
