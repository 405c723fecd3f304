/*
 * blobfs namespace changes: create, mknod, mkdir, symlink, link, unlink,
 * rmdir and rename (plain, NOREPLACE, EXCHANGE), and their replay at mount.
 *
 * Guarantee (docs/blobfs-format.md section 5): changes run one at a time,
 * or independent queued ones together as a batch (5.3: one intent each,
 * one super sync, their blobs written together, each all or nothing);
 * each is validated against the cached tree, recorded as an intent in the
 * super blob (synced) together with the pre-images of the directory
 * buckets it touches, then carried out as a list of idempotent actions,
 * applied in memory in order and written together: one metadata sync per
 * changed inode, and per changed directory its blocks written in place and
 * one flush. A crash anywhere after the intent is durable is finished at
 * the next mount by restoring the buckets from their pre-images (undoing
 * torn or partial block writes) and replaying the same actions, so every
 * change is all or nothing whatever subset of its writes reached the
 * device. Unlinked inodes that are still open become orphans and are
 * deleted at their last release (or at the next mount).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

#include "ustor/env.h"
#include "ustor/log.h"

#include "blobfs_internal.h"

enum ns_state {
	NS_START,
	NS_DIR1,
	NS_DIR2,
	NS_SRC,
	NS_VICTIM,
	NS_WALK,
	NS_INTENT_SYNCED,
	/* load every blob the actions change (creating the new inode's first) */
	NS_ACT_LOAD,
	NS_ACT_LOADED,
	/* apply them all in memory, then write every changed blob at once */
	NS_ACT_APPLY,
	NS_ACT_DONE,
	NS_REPLAY_CREATE_DIR,
	NS_REPLAY_CREATE_CHILD,
	NS_SCAN,
	NS_SCAN_DELETE,
	NS_FINISH,
	/* the blob updates started by bfs_ns_subs_issue() completed: check, then subs_then */
	NS_SUBS_DONE,
	/* replay: restore the intent's bucket pre-images, then rec_then */
	NS_RESTORE,
	NS_RESTORE_LOADED,
	NS_REPLAY_REDO,
};

static void ns_step(struct bfs_req *req);

static void ns_op_cb(void *arg, int rc)
{
	struct bfs_req *req = arg;

	req->rc = rc;
	ns_step(req);
}

static bool is_create(const struct bfs_req *req)
{
	return req->kind == BFS_R_MKNOD || req->kind == BFS_R_MKDIR || req->kind == BFS_R_SYMLINK ||
	       req->kind == BFS_R_CREATE;
}

struct bfs_req *bfs_ns_member(struct bfs_req *req, int k)
{
	return k == 0 ? req : req->batch[k - 1];
}

void bfs_ns_resume(struct bfs_req *req)
{
	ns_step(req);
}

/* Finish and let the next queued change run. */
static void ns_done(struct bfs_req *req, int rc)
{
	struct ust_blobfs *fs = req->fs;
	struct bfs_req *next = NULL;

	bfs_ns_subs_reset(req);
	free(req->subs);
	req->subs = NULL;
	/* members still here failed with the batch (the intents stay: the next mount decides) */
	while (req->nbatch > 0) {
		bfs_complete(req->batch[--req->nbatch], rc);
	}
	if (req->is_ns && fs->ns_active == req) {
		fs->ns_active = NULL;
		next = fs->ns_head;
		if (next != NULL) {
			fs->ns_head = next->next;
			if (fs->ns_head == NULL) {
				fs->ns_tail = NULL;
			}
		}
	}
	bfs_complete(req, rc);
	if (next != NULL) {
		fs->ns_active = next;
		ns_step(next);
	}
}

void bfs_ns_run(struct bfs_req *req)
{
	struct ust_blobfs *fs = req->fs;

	req->is_ns = true;
	if (fs->ns_active != NULL) {
		if (fs->ns_tail != NULL) {
			fs->ns_tail->next = req;
		} else {
			fs->ns_head = req;
		}
		fs->ns_tail = req;
		return;
	}
	fs->ns_active = req;
	ns_step(req);
}

/* ---- reclaim: delete an inode's blob once it has no refs and no open handles ---------------- */

struct reclaim {
	struct ust_blobfs *fs;
	struct bfs_inode *ip;
	struct ust_blob *blob; /* the inode's, taken from it */
	uint64_t ino;
	int state;
	int rc; /* state 2: the delete's result, kept across the close */
	void (*cb)(struct bfs_req *req);
	struct bfs_req *req;
};

static void reclaim_step(void *arg, int rc)
{
	struct reclaim *r = arg;

	switch (r->state) {
	case 0:
		/* Through the handle: no sync of a blob that goes, no re-read of its root. */
		r->state = 1;
		r->blob = r->ip->blob;
		r->ip->blob = NULL;
		ust_blob_delete(r->blob, reclaim_step, r);
		return;
	case 1:
		if (rc == -EBUSY) {
			/* Another reference holds it: drop ours; the next mount retries. */
			r->state = 2;
			r->rc = rc;
			ust_blob_close(r->blob, reclaim_step, r);
			return;
		}
		/* fall through */
	default:
		if (r->state == 2) {
			rc = r->rc;
		}
		if (rc != 0 && rc != -ENOENT) {
			/* still listed (or still in the intent): the next mount retries */
			UST_ERRLOG("blobfs: deleting 0x%" PRIx64 ": %d\n", r->ino, rc);
		} else {
			bfs_orphan_del(r->fs, r->ino);
		}
		if (r->req != NULL) {
			r->req->rc = rc == -ENOENT ? 0 : rc;
			r->cb(r->req);
		}
		free(r);
		return;
	}
}

void bfs_reclaim_inode(struct ust_blobfs *fs, struct bfs_inode *ip, void (*cb)(struct bfs_req *),
		       struct bfs_req *req)
{
	struct reclaim *r;

	if (ip->nrefs > 0 || ip->deleted || ip == fs->root) {
		req->rc = 0;
		cb(req);
		return;
	}
	if (ip->nopen > 0) {
		ip->unlinked = true;
		bfs_orphan_add(fs, ip->ino);
		req->rc = 0;
		cb(req);
		return;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		req->rc = -ENOMEM;
		cb(req);
		return;
	}
	/* From here on the inode is gone for every caller; attributes stay for FUSE. */
	ip->deleted = true;
	ip->dirty = false;
	bfs_evict_queue(fs, ip);
	r->fs = fs;
	r->ip = ip;
	r->ino = ip->ino;
	r->cb = cb;
	r->req = req;
	reclaim_step(r, 0);
}

/* ---- building the action list ---------------------------------------------------------------- */

static void add_act(struct bfs_req *req, enum bfs_act act, uint64_t target, uint64_t dir,
		    const char *name, uint64_t ino, uint8_t type)
{
	struct bfs_action *a = &req->acts[req->nacts++];

	memset(a, 0, sizeof(*a));
	a->act = act;
	a->target = target;
	a->dir = dir;
	a->name = name;
	a->ino = ino;
	a->type = type;
}

static void add_move(struct bfs_req *req, uint64_t ino, uint64_t dir, const char *name,
		     uint64_t dir_b, const char *name_b)
{
	add_act(req, BFS_A_REF_MOVE, ino, dir, name, ino, 0);
	req->acts[req->nacts - 1].dir_b = dir_b;
	req->acts[req->nacts - 1].name_b = name_b;
}

/* The actions of docs/blobfs-format.md section 5's table, from the intent. */
static void build_actions(struct bfs_req *req)
{
	const struct bfs_disk_intent *in = &req->intent;
	const char *n1 = req->iname1, *n2 = req->iname2;

	req->nacts = 0;
	req->cur = 0;
	switch (in->op) {
	case BFS_OP_CREATE:
		add_act(req, BFS_A_CREATE_BLOB, 0, in->dir1, n1, 0, in->type1);
		add_act(req, BFS_A_DIR_SET, in->dir1, in->dir1, n1, 0, in->type1);
		break;
	case BFS_OP_LINK:
		add_act(req, BFS_A_REF_ADD, in->ino1, in->dir1, n1, in->ino1, in->type1);
		add_act(req, BFS_A_DIR_SET, in->dir1, in->dir1, n1, in->ino1, in->type1);
		break;
	case BFS_OP_UNLINK:
		add_act(req, BFS_A_DIR_REMOVE, in->dir1, in->dir1, n1, in->ino1, in->type1);
		add_act(req, BFS_A_REF_DEL, in->ino1, in->dir1, n1, in->ino1, in->type1);
		add_act(req, BFS_A_RECLAIM, in->ino1, 0, NULL, in->ino1, 0);
		break;
	case BFS_OP_RENAME:
		add_act(req, BFS_A_DIR_SET, in->dir2, in->dir2, n2, in->ino1, in->type1);
		add_act(req, BFS_A_DIR_REMOVE, in->dir1, in->dir1, n1, in->ino1, in->type1);
		add_move(req, in->ino1, in->dir1, n1, in->dir2, n2);
		if (in->ino2 != 0) {
			add_act(req, BFS_A_REF_DEL, in->ino2, in->dir2, n2, in->ino2, in->type2);
			add_act(req, BFS_A_RECLAIM, in->ino2, 0, NULL, in->ino2, 0);
		}
		break;
	case BFS_OP_EXCHANGE:
		add_act(req, BFS_A_DIR_SET, in->dir2, in->dir2, n2, in->ino1, in->type1);
		add_act(req, BFS_A_DIR_SET, in->dir1, in->dir1, n1, in->ino2, in->type2);
		add_move(req, in->ino1, in->dir1, n1, in->dir2, n2);
		add_move(req, in->ino2, in->dir2, n2, in->dir1, n1);
		break;
	default:
		break;
	}
}

/* ---- validation ---------------------------------------------------------------------------------- */

static bool sticky_denied(const struct bfs_req *req, const struct bfs_inode *dp,
			  const struct bfs_inode *ip)
{
	return (dp->mode & S_ISVTX) && req->ctx.uid != 0 && req->ctx.uid != dp->uid &&
	       req->ctx.uid != ip->uid;
}

static bool dot_name(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

/* A directory a change may add to or remove from. */
static int dir_check(const struct bfs_req *req, const struct bfs_inode *dp)
{
	if (!S_ISDIR(dp->mode)) {
		return -ENOTDIR;
	}
	if (dp->deleted || (dp->nrefs == 0 && dp != req->fs->root)) {
		return -ENOENT;
	}
	if (!bfs_may(&req->ctx, dp, 3)) {
		return -EACCES;
	}
	return 0;
}

static void set_intent(struct bfs_req *req, uint16_t op, uint64_t dir1, const char *n1, uint64_t ino1,
		       uint8_t t1, uint64_t dir2, const char *n2, uint64_t ino2, uint8_t t2)
{
	struct bfs_disk_intent *in = &req->intent;

	memset(in, 0, sizeof(*in));
	in->magic = BFS_INTENT_MAGIC;
	in->op = op;
	in->dir1 = dir1;
	in->ino1 = ino1;
	in->type1 = t1;
	in->dir2 = dir2;
	in->ino2 = ino2;
	in->type2 = t2;
	in->name1_len = (uint16_t)strlen(n1);
	memcpy(req->iname1, n1, in->name1_len + 1u);
	if (n2 != NULL) {
		in->name2_len = (uint16_t)strlen(n2);
		memcpy(req->iname2, n2, in->name2_len + 1u);
	}
}

/*
 * Check the request against the cached tree and fill the intent.
 * Returns 0 to go on, 1 when done without a change (rename onto itself),
 * or a negative errno.
 */
static int validate(struct bfs_req *req)
{
	struct ust_blobfs *fs = req->fs;
	struct bfs_inode *dp = req->dp, *dp2 = req->dp2, *ip = req->ip, *v = req->ip2;
	uint32_t fmt;
	int rc;

	if (is_create(req)) {
		fmt = req->mode & S_IFMT;
		if (req->kind == BFS_R_MKNOD) {
			if (fmt == 0) {
				fmt = S_IFREG;
				req->mode |= S_IFREG;
			}
			if (fmt != S_IFREG && fmt != S_IFIFO && fmt != S_IFSOCK && fmt != S_IFCHR &&
			    fmt != S_IFBLK) {
				return -EINVAL;
			}
		}
		rc = bfs_dir_can_add(dp, req->name);
		if (rc != 0) {
			return rc;
		}
		set_intent(req, BFS_OP_CREATE, dp->ino, req->name, 0, bfs_mode_to_dt(req->mode), 0,
			   NULL, 0, 0);
		return 0;
	}
	switch (req->kind) {
	case BFS_R_LINK:
		if (S_ISDIR(ip->mode)) {
			return -EPERM;
		}
		if (ip->deleted || ip->nrefs == 0) {
			return -ENOENT;
		}
		if (ip->nrefs >= 65000) {
			return -EMLINK;
		}
		rc = bfs_dir_can_add(dp, req->name);
		if (rc != 0) {
			return rc;
		}
		set_intent(req, BFS_OP_LINK, dp->ino, req->name, ip->ino, bfs_mode_to_dt(ip->mode), 0,
			   NULL, 0, 0);
		return 0;
	case BFS_R_UNLINK:
	case BFS_R_RMDIR:
		if (ip == fs->root) {
			return -EBUSY;
		}
		if (req->kind == BFS_R_UNLINK && S_ISDIR(ip->mode)) {
			return -EISDIR;
		}
		if (req->kind == BFS_R_RMDIR) {
			if (!S_ISDIR(ip->mode)) {
				return -ENOTDIR;
			}
			if (ip->nents > 0) {
				return -ENOTEMPTY;
			}
		}
		if (sticky_denied(req, dp, ip)) {
			return -EPERM;
		}
		if (bfs_ref_find(ip, dp->ino, req->name) < 0) {
			/*
			 * The entry names an inode without its ref (damage, 9): its
			 * refs cannot be trusted to say whether other names remain,
			 * so the unlink would delete data other entries still name.
			 */
			return -EIO;
		}
		set_intent(req, BFS_OP_UNLINK, dp->ino, req->name, ip->ino, bfs_mode_to_dt(ip->mode), 0,
			   NULL, 0, 0);
		return 0;
	case BFS_R_RENAME:
		if (sticky_denied(req, dp, ip) || (v != NULL && sticky_denied(req, dp2, v))) {
			return -EPERM;
		}
		/*
		 * The entries must agree with the inodes' refs (4): an entry
		 * naming an inode that lacks its ref is damage (9), and moving
		 * that ref would fail in the middle of the change and at every
		 * replay of its intent.
		 */
		if (ip == fs->root || bfs_ref_find(ip, dp->ino, req->name) < 0 ||
		    ((req->flags & UST_BLOBFS_RENAME_EXCHANGE) && v != NULL &&
		     (v == fs->root || bfs_ref_find(v, dp2->ino, req->name2) < 0))) {
			return -EIO;
		}
		if (req->flags & UST_BLOBFS_RENAME_EXCHANGE) {
			if (v == NULL) {
				return -ENOENT;
			}
			if (v == ip) {
				return 1;
			}
			set_intent(req, BFS_OP_EXCHANGE, dp->ino, req->name, ip->ino,
				   bfs_mode_to_dt(ip->mode), dp2->ino, req->name2, v->ino,
				   bfs_mode_to_dt(v->mode));
			return 0;
		}
		if (v != NULL) {
			if (req->flags & UST_BLOBFS_RENAME_NOREPLACE) {
				return -EEXIST;
			}
			if (v == ip) {
				return 1; /* two links of one inode: POSIX says do nothing */
			}
			if (S_ISDIR(ip->mode) && !S_ISDIR(v->mode)) {
				return -ENOTDIR;
			}
			if (!S_ISDIR(ip->mode) && S_ISDIR(v->mode)) {
				return -EISDIR;
			}
			if (S_ISDIR(v->mode) && v->nents > 0) {
				return -ENOTEMPTY;
			}
		} else {
			rc = bfs_dir_can_add(dp2, req->name2);
			if (rc != 0) {
				return rc;
			}
		}
		set_intent(req, BFS_OP_RENAME, dp->ino, req->name, ip->ino, bfs_mode_to_dt(ip->mode),
			   dp2->ino, req->name2, v != NULL ? v->ino : 0,
			   v != NULL ? bfs_mode_to_dt(v->mode) : 0);
		return 0;
	default:
		return -EINVAL;
	}
}

/* ---- the replay scan (a CREATE that did not complete) ------------------------------------------ */

struct scan {
	struct bfs_req *req;
	uint64_t *ids;
	size_t n;
	size_t i;
};

static void scan_cb(void *arg, struct ust_blob *blob, int rc)
{
	struct scan *sc = arg;
	struct bfs_req *req = sc->req;
	const struct bfs_disk_inode *d;
	const void *v;
	size_t len;

	if (rc != 0) {
		req->rc = rc == -ENOENT ? 0 : rc;
		req->state = NS_SCAN_DELETE;
		req->tmp = (struct bfs_inode *)sc;
		ns_step(req);
		return;
	}
	if (ust_blob_get_internal_xattr(blob, BFS_XA_INODE, &v, &len) == 0 && len >= sizeof(*d)) {
		d = v;
		if (d->magic == BFS_INODE_MAGIC && d->birth_seq == req->intent.seq) {
			uint64_t *ids = realloc(sc->ids, (sc->n + 1) * sizeof(*ids));

			if (ids != NULL) {
				sc->ids = ids;
				sc->ids[sc->n++] = ust_blob_get_id(blob);
			}
		}
	}
	ust_bs_iter_next(req->fs->bs, blob, scan_cb, sc);
}

/* ---- intent block records (docs/blobfs-format.md 5, 5.2) ------------------------------------------- */

int bfs_intent_records_check(const uint8_t *p, size_t len, int n)
{
	struct bfs_disk_intent_block r;
	size_t off = 0;
	int k;

	for (k = 0; k < n; k++) {
		if (off + sizeof(r) > len) {
			return -EIO;
		}
		memcpy(&r, p + off, sizeof(r));
		off += sizeof(r) + ((r.flags & BFS_IBLK_EMPTY) ? 0 : BFS_DBLOCK_SIZE);
		if ((r.flags & ~BFS_IBLK_EMPTY) != 0 || off > len) {
			return -EIO;
		}
	}
	return off == len ? 0 : -EIO;
}

/* Record k of the intent: *r and its image (NULL for EMPTY). */
static const uint8_t *rec_at(const struct bfs_req *req, int k, struct bfs_disk_intent_block *r)
{
	size_t off = 0;
	int i;

	for (i = 0;; i++) {
		memcpy(r, req->irecs + off, sizeof(*r));
		if (i == k) {
			return (r->flags & BFS_IBLK_EMPTY) ? NULL : req->irecs + off + sizeof(*r);
		}
		off += sizeof(*r) + ((r->flags & BFS_IBLK_EMPTY) ? 0 : BFS_DBLOCK_SIZE);
	}
}

/*
 * Append the pre-image records of the buckets the change touches: (dir1,
 * name1) and, for RENAME/EXCHANGE, (dir2, name2) unless the first covers it.
 */
static size_t build_records(struct bfs_req *req, uint8_t *buf)
{
	size_t len;

	len = bfs_dir_record(req->dp, req->iname1, buf);
	req->intent.nblocks = 1;
	if ((req->intent.op == BFS_OP_RENAME || req->intent.op == BFS_OP_EXCHANGE) &&
	    !bfs_dir_record_covers(req->dp2, req->iname2, buf)) {
		len += bfs_dir_record(req->dp2, req->iname2, buf + len);
		req->intent.nblocks = 2;
	}
	return len;
}

/* Every record of directory dp: its range is valid. */
static bool records_valid(struct bfs_req *req, struct bfs_inode *dp)
{
	struct bfs_disk_intent_block r;
	int k;

	for (k = 0; k < req->intent.nblocks; k++) {
		rec_at(req, k, &r);
		if (r.dir == dp->ino && !bfs_dir_range_valid(dp, &r)) {
			return false;
		}
	}
	return true;
}

/* ---- the intent, and the changes that join its batch (docs/blobfs-format.md 5.3) ------------- */

/* Batch member k's intent xattr: a table, as every change looks its names up several times. */
const char *bfs_intent_xattr_name(int k)
{
	static const char *const names[] = {
		BFS_XA_INTENT,	    BFS_XA_INTENT ".1", BFS_XA_INTENT ".2", BFS_XA_INTENT ".3",
		BFS_XA_INTENT ".4", BFS_XA_INTENT ".5", BFS_XA_INTENT ".6", BFS_XA_INTENT ".7",
	};

	_Static_assert(sizeof(names) / sizeof(names[0]) == BFS_BATCH_MAX, "one name per batch member");
	assert(k >= 0 && k < BFS_BATCH_MAX);
	return names[k];
}

void bfs_intent_remove_all(struct ust_blobfs *fs)
{
	int k;

	for (k = 0; k < BFS_BATCH_MAX; k++) {
		ust_blob_remove_internal_xattr(fs->super, bfs_intent_xattr_name(k)); /* -ENOENT when absent */
	}
}

/* Intent k of the batch: req's change with a new seq and its buckets' pre-images. */
static int set_intent_xattr(struct bfs_req *req, int k)
{
	struct ust_blobfs *fs = req->fs;
	uint8_t *ibuf;
	size_t ilen;
	int rc;

	ibuf = malloc(BFS_INTENT_MAX_BYTES);
	if (ibuf == NULL) {
		return -ENOMEM;
	}
	req->intent.seq = fs->next_seq++;
	ilen = sizeof(req->intent) + req->intent.name1_len + req->intent.name2_len;
	ilen += build_records(req, ibuf + ilen);
	memcpy(ibuf, &req->intent, sizeof(req->intent));
	memcpy(ibuf + sizeof(req->intent), req->iname1, req->intent.name1_len);
	memcpy(ibuf + sizeof(req->intent) + req->intent.name1_len, req->iname2, req->intent.name2_len);
	rc = ust_blob_set_internal_xattr(fs->super, bfs_intent_xattr_name(k), ibuf, ilen);
	free(ibuf);
	return rc;
}

/* Kinds that may share an intent batch: one directory, one name, at most one existing inode. */
static bool batchable(const struct bfs_req *req)
{
	return is_create(req) || req->kind == BFS_R_UNLINK || req->kind == BFS_R_RMDIR;
}

/* The first pre-image record of batch member m (its directory's bucket of name1). */
static const uint8_t *member_record(struct bfs_req *leader, int k)
{
	const void *v;
	size_t len;
	const struct bfs_disk_intent *in;

	if (ust_blob_get_internal_xattr(leader->fs->super, bfs_intent_xattr_name(k), &v, &len) != 0) {
		return NULL;
	}
	in = v;
	return (const uint8_t *)v + sizeof(*in) + in->name1_len + in->name2_len;
}

/*
 * Whether queued change q can join leader's batch: validated now, from the
 * cache alone, against the tree as it is before the batch, and independent
 * of every member, so that each member's steps and each member's replay
 * give the same result in any order. Independent means: no inode that one
 * removes is another's inode or directory, and no two touch one directory
 * bucket (distinct buckets of a directory are distinct block ranges, also
 * when one splits; so one member's pre-image never covers another's
 * change). A change that cannot join stays queued and runs on its own,
 * where it is validated again (an error it would get here is not final).
 */
static bool join_check(struct bfs_req *leader, struct bfs_req *q)
{
	struct ust_blobfs *fs = leader->fs;
	struct bfs_dirent *de;
	struct bfs_inode *dp;
	struct bfs_req *m;
	const uint8_t *rec;
	int k;

	if (!batchable(q) || q->ino2 != 0) {
		return false;
	}
	dp = bfs_icache_find(fs, bfs_ino_in(fs, q->ino));
	if (dp == NULL || dp->loading || dir_check(q, dp) != 0) {
		return false;
	}
	q->dp = q->dp2 = dp;
	q->ip = q->ip2 = NULL;
	q->tmp = NULL;
	de = bfs_dir_find(dp, q->name);
	if (is_create(q) ? de != NULL : (de == NULL || dot_name(q->name))) {
		return false;
	}
	if (de != NULL) {
		q->ip = bfs_icache_find(fs, de->ino);
		if (q->ip == NULL || q->ip->loading) {
			return false;
		}
	}
	if (validate(q) != 0) {
		return false;
	}
	for (k = 0; k <= leader->nbatch; k++) {
		m = k == 0 ? leader : leader->batch[k - 1];
		if (q->ip != NULL && (q->ip == m->ip || q->ip == m->dp)) {
			return false;
		}
		if (m->ip != NULL && m->ip == q->dp) {
			return false;
		}
		if (m->dp == q->dp) {
			rec = member_record(leader, k);
			if (rec == NULL || bfs_dir_record_covers(dp, q->name, rec)) {
				return false;
			}
		}
	}
	return true;
}

/*
 * Set the intent of req and of every queued change that can join it
 * (section 5.3), each under its own xattr; the caller syncs the super blob.
 */
static int write_intents(struct bfs_req *req)
{
	struct ust_blobfs *fs = req->fs;
	struct bfs_req *q;
	int k, rc;

	req->nbatch = 0;
	rc = set_intent_xattr(req, 0);
	if (rc != 0) {
		return rc;
	}
	while (batchable(req) && !fs->unmounting && fs->ns_head != NULL &&
	       req->nbatch + 1 < BFS_BATCH_MAX && join_check(req, fs->ns_head)) {
		q = fs->ns_head;
		if (set_intent_xattr(q, req->nbatch + 1) != 0) {
			break; /* e.g. the super blob's metadata is full: q runs on its own */
		}
		fs->ns_head = q->next;
		if (fs->ns_head == NULL) {
			fs->ns_tail = NULL;
		}
		q->next = NULL;
		q->rc = 0;
		req->batch[req->nbatch++] = q;
	}
	/* the previous batch's other intents are complete: they go in the same sync */
	for (k = req->nbatch + 1; k < BFS_BATCH_MAX; k++) {
		ust_blob_remove_internal_xattr(fs->super, bfs_intent_xattr_name(k));
	}
	return bfs_super_store(fs);
}

/* ---- the step machine ---------------------------------------------------------------------------- */

/* Load ino into *slot: 1 if it is there now (req->rc says how it went), 0 if ns_step comes later. */
/*
 * The error of loading the inode a directory entry names: changes run one
 * at a time, so an entry naming no blob, or a blob that is no blobfs
 * inode, is damage (docs/blobfs-format.md 9), not a stale number.
 */
static int entry_load_error(int rc)
{
	return rc == -ESTALE || rc == -ENOENT ? -EIO : rc;
}

static int load(struct bfs_req *req, uint64_t ino, struct bfs_inode **slot, int next_state)
{
	req->state = next_state;
	req->rc = 0;
	return bfs_iget(req->fs, ino, slot, bfs_ns_resume, req);
}

static void finish_result(struct bfs_req *req)
{
	struct ust_blobfs *fs = req->fs;
	struct bfs_inode *ip = req->ip;

	if (ip == NULL) {
		return;
	}
	ip->nlookup++;
	req->entry.ino = bfs_ino_out(fs, ip->ino);
	bfs_fill_attr(fs, ip, &req->entry.attr);
	if (req->kind == BFS_R_CREATE) {
		req->out_fh = calloc(1, sizeof(*req->out_fh));
		if (req->out_fh == NULL) {
			ip->nlookup--;
			req->rc = -ENOMEM;
			return;
		}
		req->out_fh->ip = ip;
		req->out_fh->flags = req->oflags;
		ip->nopen++;
		fs->nopen_files++;
	}
}

/* The result of a change that went through (or of a create that found its name). */
static int finish_one(struct bfs_req *req)
{
	if (req->rc != 0) {
		return req->rc;
	}
	if (req->kind == BFS_R_CREATE && req->ip != NULL && S_ISDIR(req->ip->mode)) {
		return -EISDIR;
	}
	if (req->kind == BFS_R_CREATE && req->ip != NULL && !S_ISREG(req->ip->mode)) {
		return -EEXIST;
	}
	if (req->kind == BFS_R_LINK || is_create(req)) {
		finish_result(req);
	}
	return req->rc;
}

static void ns_step(struct bfs_req *req)
{
	struct ust_blobfs *fs = req->fs;
	struct bfs_dirent *de;
	struct bfs_action *a;
	struct bfs_inode *t;
	struct bfs_req *m;
	struct bfs_disk_intent_block r;
	const uint8_t *img;
	int k, rc;

	for (;;) {
		switch (req->state) {
		case NS_START:
			if (fs->unmounting) {
				ns_done(req, -EBUSY);
				return;
			}
			if (load(req, bfs_ino_in(fs, req->ino), &req->dp, NS_DIR1) == 0) {
				return;
			}
			continue;
		case NS_DIR1:
			rc = req->rc != 0 ? req->rc : dir_check(req, req->dp);
			if (rc != 0) {
				ns_done(req, rc);
				return;
			}
			req->dp2 = req->dp;
			if (req->kind == BFS_R_RENAME) {
				if (load(req, bfs_ino_in(fs, req->ino2), &req->dp2, NS_DIR2) == 0) {
					return;
				}
				continue;
			}
			req->state = NS_DIR2;
			req->rc = 0;
			continue;
		case NS_DIR2:
			rc = req->rc != 0 ? req->rc : dir_check(req, req->dp2);
			if (rc != 0) {
				ns_done(req, rc);
				return;
			}
			if (is_create(req)) {
				de = bfs_dir_find(req->dp, req->name);
				if (de != NULL) {
					if (req->kind != BFS_R_CREATE || (req->oflags & O_EXCL)) {
						ns_done(req, -EEXIST);
						return;
					}
					/* create of an existing name without O_EXCL opens it */
					if (load(req, de->ino, &req->ip, NS_FINISH) == 0) {
						return;
					}
					continue;
				}
				req->state = NS_WALK;
				continue;
			}
			if (req->kind == BFS_R_LINK) {
				if (bfs_dir_find(req->dp, req->name) != NULL) {
					ns_done(req, -EEXIST);
					return;
				}
				if (load(req, bfs_ino_in(fs, req->ino2), &req->ip, NS_SRC) == 0) {
					return;
				}
				continue;
			}
			if (dot_name(req->name) || (req->name2 != NULL && dot_name(req->name2))) {
				ns_done(req, -EINVAL);
				return;
			}
			de = bfs_dir_find(req->dp, req->name);
			if (de == NULL) {
				ns_done(req, bfs_dir_miss(req->dp, req->name));
				return;
			}
			if (load(req, de->ino, &req->ip, NS_SRC) == 0) {
				return;
			}
			continue;
		case NS_SRC:
			if (req->rc != 0) {
				/* LINK's source comes by number; the others' from an entry (entry_load_error) */
				ns_done(req, req->kind == BFS_R_LINK ? req->rc : entry_load_error(req->rc));
				return;
			}
			req->ip2 = NULL;
			if (req->kind == BFS_R_RENAME) {
				de = bfs_dir_find(req->dp2, req->name2);
				if (de != NULL) {
					if (load(req, de->ino, &req->ip2, NS_VICTIM) == 0) {
						return;
					}
					continue;
				}
			}
			req->state = NS_VICTIM;
			req->rc = 0;
			continue;
		case NS_VICTIM:
			if (req->rc != 0) {
				ns_done(req, entry_load_error(req->rc));
				return;
			}
			/* a directory may not move below itself: walk up from the target directory */
			req->tmp = NULL;
			if (req->kind == BFS_R_RENAME && S_ISDIR(req->ip->mode) && req->dp2 != req->dp) {
				req->tmp = req->dp2;
			}
			req->state = NS_WALK;
			req->rc = 0;
			continue;
		case NS_WALK:
			if (req->rc != 0) {
				ns_done(req, req->rc);
				return;
			}
			if (req->tmp != NULL) {
				t = req->tmp;
				if (t == req->ip) {
					ns_done(req, -EINVAL);
					return;
				}
				if (t != fs->root && t->nrefs > 0) {
					if (load(req, t->refs[0].parent, &req->tmp, NS_WALK) == 0) {
						return;
					}
					continue;
				}
				req->tmp = NULL;
			}
			if ((req->flags & UST_BLOBFS_RENAME_EXCHANGE) && req->ip2 != NULL &&
			    S_ISDIR(req->ip2->mode) && req->dp2 != req->dp && !req->locked) {
				/* the exchanged directory moves below dp: walk from there too */
				req->locked = true;
				req->tmp = req->dp;
				{
					struct bfs_inode *swap = req->ip;

					req->ip = req->ip2;
					req->ip2 = swap;
					req->u0 = 1; /* swapped: undo after the walk */
				}
				continue;
			}
			if (req->u0 == 1) {
				struct bfs_inode *swap = req->ip;

				req->ip = req->ip2;
				req->ip2 = swap;
				req->u0 = 0;
			}
			rc = validate(req);
			if (rc != 0) {
				ns_done(req, rc < 0 ? rc : 0);
				return;
			}
			/* the intents with the buckets' pre-images: durable before any blob changes */
			rc = write_intents(req);
			if (rc != 0) {
				ns_done(req, rc);
				return;
			}
			req->state = NS_INTENT_SYNCED;
			ust_blob_sync_md(fs->super, ns_op_cb, req);
			return;
		case NS_INTENT_SYNCED:
			if (req->rc != 0) {
				/* Whether the intent reached the disk is unknown: the next mount decides. */
				ns_done(req, req->rc);
				return;
			}
			/* the new inodes' blobs first: their directory steps need the numbers */
			bfs_ns_subs_reset(req);
			req->bcur = 0;
			for (k = 0; k <= req->nbatch; k++) {
				bfs_ns_member(req, k)->create_rc = 0;
				build_actions(bfs_ns_member(req, k));
				if (is_create(bfs_ns_member(req, k))) {
					rc = bfs_ns_sub_create(req, bfs_ns_member(req, k));
					if (rc != 0) {
						ns_done(req, rc);
						return;
					}
				}
			}
			req->state = NS_SUBS_DONE;
			req->subs_then = NS_ACT_LOAD;
			if (bfs_ns_subs_issue(req) == 0) {
				return;
			}
			continue;
		case NS_ACT_LOAD:
			/* every blob the members' actions change, into the cache */
			m = bfs_ns_member(req, req->bcur);
			if (m->create_rc != 0 || m->cur >= m->nacts) {
				if (++req->bcur <= req->nbatch) {
					continue;
				}
				req->state = NS_ACT_APPLY;
				continue;
			}
			a = &m->acts[m->cur];
			if (a->act == BFS_A_CREATE_BLOB) {
				if (req->replay) {
					if (load(req, a->dir, &req->dp, NS_REPLAY_CREATE_DIR) == 0) {
						return;
					}
					continue;
				}
				m->cur++; /* created above */
				continue;
			}
			if (load(req, a->target, &req->tmp, NS_ACT_LOADED) == 0) {
				return;
			}
			continue;
		case NS_ACT_LOADED:
			/* ENOENT: the blob is gone (by this change or a later release, 6.1): skipped */
			if (req->rc != 0 && req->rc != -ENOENT) {
				/* a blob that is no blobfs inode where the intent names one: damage (9) */
				ns_done(req, req->rc == -ESTALE ? -EIO : req->rc);
				return;
			}
			bfs_ns_member(req, req->bcur)->cur++;
			req->state = NS_ACT_LOAD;
			continue;
		case NS_ACT_APPLY:
			rc = bfs_ns_apply_all(req);
			if (rc != 0) {
				/* e.g. a directory whose metadata is full: the intent stays, the next mount retries */
				ns_done(req, rc);
				return;
			}
			req->state = NS_SUBS_DONE;
			req->subs_then = NS_ACT_DONE;
			if (bfs_ns_subs_issue(req) == 0) {
				return;
			}
			continue;
		case NS_ACT_DONE:
			for (k = 0; k <= req->nbatch; k++) {
				m = bfs_ns_member(req, k);
				m->rc = m->create_rc;
				if (is_create(m) && m->rc == 0) {
					m->ip = bfs_icache_find(fs, m->new_ino);
				}
			}
			while (req->nbatch > 0) {
				m = req->batch[--req->nbatch];
				bfs_complete(m, finish_one(m));
			}
			ns_done(req, finish_one(req));
			return;
		case NS_SUBS_DONE:
			if (req->subs_rc != 0) {
				ns_done(req, req->subs_rc);
				return;
			}
			req->state = req->subs_then;
			req->rc = 0;
			continue;
		case NS_REPLAY_CREATE_DIR:
			/*
			 * replay of a CREATE: completed if dir1's touched blocks are all
			 * valid and dir1/name1 names a blob born of this intent; else
			 * restore the blocks and roll back
			 */
			req->rec_cur = 0;
			req->rec_then = NS_SCAN;
			if (req->rc != 0 || !records_valid(req, req->dp)) {
				req->state = NS_RESTORE;
				continue;
			}
			de = bfs_dir_find(req->dp, req->iname1);
			if (de == NULL) {
				req->state = NS_RESTORE;
				continue;
			}
			if (load(req, de->ino, &req->ip, NS_REPLAY_CREATE_CHILD) == 0) {
				return;
			}
			continue;
		case NS_REPLAY_CREATE_CHILD:
			if (req->rc == 0 && req->ip->birth_seq == req->intent.seq) {
				ns_done(req, 0);
				return;
			}
			req->ip = NULL;
			req->state = NS_RESTORE;
			continue;
		case NS_RESTORE:
			if (req->rec_cur >= req->intent.nblocks) {
				req->state = req->rec_then;
				req->rc = 0;
				continue;
			}
			rec_at(req, req->rec_cur, &r);
			if (load(req, r.dir, &req->tmp, NS_RESTORE_LOADED) == 0) {
				return;
			}
			continue;
		case NS_RESTORE_LOADED:
			img = rec_at(req, req->rec_cur++, &r);
			if (req->rc == -ENOENT || req->rc == -ESTALE ||
			    (req->rc == 0 && req->tmp->deleted)) {
				req->state = NS_RESTORE; /* the directory is gone: nothing to restore */
				continue;
			}
			if (req->rc != 0) {
				ns_done(req, req->rc);
				return;
			}
			bfs_ns_subs_reset(req);
			{
				uint32_t w[BFS_DIR_MAX_WRITES];
				int nw = 0;

				rc = bfs_dir_restore(req->tmp, &r, img, w, &nw);
				if (rc == 0) {
					/* a sub even without blocks: the restore ends with a flush (5.2) */
					rc = bfs_ns_sub_dir_blocks(req, req->tmp, w, nw);
				}
			}
			if (rc != 0) {
				ns_done(req, rc);
				return;
			}
			req->state = NS_SUBS_DONE;
			req->subs_then = NS_RESTORE;
			if (bfs_ns_subs_issue(req) == 0) {
				return;
			}
			continue;
		case NS_REPLAY_REDO:
			build_actions(req);
			req->state = NS_ACT_LOAD;
			continue;
		case NS_SCAN: {
			struct scan *sc = calloc(1, sizeof(*sc));

			if (sc == NULL) {
				ns_done(req, -ENOMEM);
				return;
			}
			UST_NOTICELOG("blobfs: rolling back an interrupted create (scan)\n");
			sc->req = req;
			ust_bs_iter_first(fs->bs, scan_cb, sc);
			return;
		}
		case NS_SCAN_DELETE: {
			struct scan *sc = (struct scan *)req->tmp;

			if (req->rc != 0 || sc->i >= sc->n) {
				rc = req->rc;
				free(sc->ids);
				free(sc);
				req->tmp = NULL;
				ns_done(req, rc);
				return;
			}
			ust_bs_delete_blob(fs->bs, sc->ids[sc->i++], ns_op_cb, req);
			return;
		}
		case NS_FINISH:
			ns_done(req, finish_one(req));
			return;
		}
	}
}

void bfs_ns_replay(struct bfs_req *req)
{
	req->replay = true;
	req->is_ns = false;
	if (req->intent.op == BFS_OP_CREATE) {
		/* first find out whether it completed (NS_REPLAY_CREATE_DIR) */
		build_actions(req);
		req->state = NS_ACT_LOAD;
	} else {
		req->rec_cur = 0;
		req->rec_then = NS_REPLAY_REDO;
		req->state = NS_RESTORE;
	}
	ns_step(req);
}
