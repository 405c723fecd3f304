/*
 * blobfs namespace changes, carrying out their steps: once a change's (or a
 * batch's) intents are durable, its actions are applied to the cached
 * inodes and directories in order, and every blob they changed is written
 * at the same time, one update per blob: a directory's changed blocks in
 * parallel and then one flush, an inode's metadata sync, the delete of an
 * inode nothing refers to any more, the creation of a new inode's blob.
 *
 * Guarantee (docs/blobfs-format.md 5, rule 3): every action is an
 * idempotent set or remove-if-equal on one blob and a replay redoes them
 * all from the intent, so the order in which the device receives these
 * updates does not matter; the change is acknowledged only when all of them
 * completed (each directory's flush after its block writes completed).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ustor/env.h"
#include "ustor/log.h"

#include "blobfs_internal.h"

/* ---- carrying out one action ------------------------------------------------------------------- */

/* The blob of t goes as soon as its last ref is removed: nothing else holds it. */
static bool goes_away(const struct ust_blobfs *fs, const struct bfs_inode *t)
{
	return t->nrefs == 0 && t->nopen == 0 && t != fs->root;
}

/*
 * Apply action a to its loaded blob in memory. 1: the inode changed (sync
 * it), 2: directory blocks changed (appended to w[*nw]), 0: nothing to do.
 */
static int apply(struct bfs_req *req, struct bfs_action *a, struct bfs_inode *t, uint32_t *w,
		 int *nw)
{
	struct bfs_dirent *de;
	struct timespec now;
	uint64_t ino = a->ino != 0 ? a->ino : req->new_ino;
	int rc;

	bfs_now(&now);
	switch (a->act) {
	case BFS_A_DIR_SET:
		de = bfs_dir_find(t, a->name);
		if (de != NULL && de->ino == ino) {
			return 0;
		}
		rc = bfs_dir_set(t, a->name, ino, a->type, w, nw);
		if (rc != 0) {
			return rc;
		}
		/* times reach the inode xattr like a file's size (flusher, unmount) */
		t->mtime = t->ctime = now;
		t->dirty = true;
		return 2;
	case BFS_A_DIR_REMOVE:
		de = bfs_dir_find(t, a->name);
		if (de == NULL || de->ino != ino) {
			return 0;
		}
		rc = bfs_dir_remove(t, a->name, w, nw);
		if (rc != 0) {
			return rc;
		}
		t->mtime = t->ctime = now;
		t->dirty = true;
		return 2;
	case BFS_A_REF_ADD:
		if (bfs_ref_find(t, a->dir, a->name) >= 0) {
			return 0;
		}
		if (S_ISDIR(t->mode)) {
			return -EIO; /* a damaged intent (a LINK names directories never): 9 */
		}
		rc = bfs_ref_add(t, a->dir, a->name);
		if (rc != 0) {
			return rc;
		}
		t->ctime = now;
		break;
	case BFS_A_REF_DEL:
		if (bfs_ref_find(t, a->dir, a->name) < 0) {
			return 0;
		}
		bfs_ref_del(t, a->dir, a->name);
		t->ctime = now;
		if (goes_away(req->fs, t)) {
			/*
			 * Its RECLAIM follows and deletes the blob: storing the ref
			 * change first would only make the close sync it. A crash
			 * before the delete is durable redoes this step from the intent.
			 */
			return 0;
		}
		break;
	case BFS_A_REF_MOVE:
		if (bfs_ref_find(t, a->dir, a->name) < 0 && bfs_ref_find(t, a->dir_b, a->name_b) >= 0) {
			return 0;
		}
		if (bfs_ref_find(t, a->dir, a->name) < 0) {
			/*
			 * Neither the old name nor the new: the inode was never
			 * where the intent says (a change checks that before its
			 * intent, so only a damaged intent gets here:
			 * docs/blobfs-format.md 9); moving it would give it a name
			 * no change gave it.
			 */
			return -EIO;
		}
		bfs_ref_del(t, a->dir, a->name);
		rc = bfs_ref_add(t, a->dir_b, a->name_b);
		if (rc != 0) {
			return rc;
		}
		t->ctime = now;
		break;
	default:
		return 0;
	}
	rc = bfs_refs_store(t);
	if (rc != 0) {
		return rc;
	}
	bfs_inode_store(req->fs, t);
	return 1;
}

/* The new inode's blob: its options and xattrs, read by the store until the create completes. */
static void create_opts(struct bfs_req *req)
{
	struct bfs_inode tmp;
	uint16_t nl = req->intent.name1_len;
	struct timespec now;
	size_t n = 0;

	memset(&tmp, 0, sizeof(tmp));
	bfs_now(&now);
	tmp.mode = req->mode;
	tmp.uid = req->ctx.uid;
	tmp.gid = req->ctx.gid;
	if (req->dp->mode & S_ISGID) {
		tmp.gid = req->dp->gid; /* BSD group semantics of a set-group-ID directory */
		if (S_ISDIR(tmp.mode)) {
			tmp.mode |= S_ISGID;
		}
	}
	tmp.rdev = req->rdev;
	tmp.birth_seq = req->intent.seq;
	tmp.dir_seed = S_ISDIR(tmp.mode) ? bfs_dir_new_seed() : 0;
	tmp.atime = tmp.mtime = tmp.ctime = tmp.btime = now;
	if (S_ISLNK(tmp.mode)) {
		tmp.size = strlen(req->path);
	}
	bfs_encode_inode(&tmp, &req->cdi);
	req->cxa[n++] = (struct ust_blob_xattr){.name = BFS_XA_INODE, .value = &req->cdi,
						.value_len = sizeof(req->cdi), .internal = true};
	memcpy(req->crefs, &req->intent.dir1, 8);
	memcpy(req->crefs + 8, &nl, 2);
	memcpy(req->crefs + 10, req->iname1, nl);
	req->cxa[n++] = (struct ust_blob_xattr){.name = BFS_XA_REFS, .value = req->crefs,
						.value_len = 10u + nl, .internal = true};
	if (S_ISLNK(tmp.mode)) {
		req->cxa[n++] = (struct ust_blob_xattr){.name = BFS_XA_LINK, .value = req->path,
							.value_len = strlen(req->path), .internal = true};
	}
	ust_blob_opts_init(&req->copts);
	req->copts.thin_provision = true;
	req->copts.xattrs = req->cxa;
	req->copts.xattr_count = n;
}

/* ---- the blob updates of one step, issued together ------------------------------------------ */

/*
 * Once the intent is durable every action is an idempotent set or
 * remove-if-equal on one blob, and a crash anywhere is finished by the
 * replay of all of them (docs/blobfs-format.md 5.1): their order on the
 * device does not matter. So the actions are applied in memory in order,
 * and then every changed blob is written at the same time, one update per
 * blob: a directory writes its changed blocks in parallel and then syncs
 * (one flush), an inode syncs its metadata, an unreferenced inode is
 * deleted. The change is acknowledged when all of them completed.
 */
enum sub_kind {
	SUB_DIR,     /* write dw[0, ndw), then sync the directory blob */
	SUB_INODE,   /* sync the inode blob's metadata */
	SUB_RECLAIM, /* bfs_reclaim_inode() */
	SUB_LOAD,    /* bring the new inode into the cache */
	SUB_CREATE,  /* create member's new inode blob */
};

/*
 * Blocks one directory may write for a batch: every member of it writes
 * its bucket and at most BFS_DIR_MAX_SPLITS new ones (4.2); a replay's
 * restore of one record writes at most BFS_DIR_MAX_WRITES.
 */
#define SUB_DW_MAX (BFS_BATCH_MAX * (1 + BFS_DIR_MAX_SPLITS))
_Static_assert(SUB_DW_MAX >= BFS_DIR_MAX_WRITES, "a restore fits a directory sub");

enum sub_state {
	SUB_START,
	SUB_RESIZED,
	SUB_SYNCED,
};

struct bfs_ns_sub {
	struct bfs_req *req;
	enum sub_kind kind;
	enum sub_state state;
	bool done;
	struct bfs_inode *t;
	struct bfs_req *member; /* SUB_CREATE */
	uint64_t ino; /* SUB_LOAD */
	uint32_t dw[SUB_DW_MAX];
	int ndw;
	int writes; /* block writes in flight, plus one while issuing */
	int rc;
	uint8_t *bounce; /* ndw blocks */
};

/* Updates of a change or batch: per member one per action, plus its new inode's load. */
static int subs_max(const struct bfs_req *req)
{
	return (req->nbatch + 1) * (BFS_MAX_ACTIONS + 1);
}

void bfs_ns_subs_reset(struct bfs_req *req)
{
	int k;

	for (k = 0; k < req->nsubs; k++) {
		if (req->subs[k].bounce != NULL) {
			ust_dma_free(req->subs[k].bounce);
		}
	}
	req->nsubs = 0;
}

/* The sub of this kind for t (one update per blob), added if new. NULL: out of memory. */
static struct bfs_ns_sub *sub_get(struct bfs_req *req, enum sub_kind kind, struct bfs_inode *t)
{
	struct bfs_ns_sub *s;
	int k;

	for (k = 0; k < req->nsubs; k++) {
		if (req->subs[k].kind == kind && req->subs[k].t == t && t != NULL) {
			return &req->subs[k];
		}
	}
	if (req->subs == NULL) {
		/* sized once per change: the batch is complete before the first update */
		req->subs = malloc((size_t)subs_max(req) * sizeof(*req->subs));
		if (req->subs == NULL) {
			return NULL;
		}
	}
	assert(req->nsubs < subs_max(req));
	s = &req->subs[req->nsubs++];
	memset(s, 0, sizeof(*s));
	s->req = req;
	s->kind = kind;
	s->t = t;
	return s;
}

static void sub_finish(struct bfs_ns_sub *s, int rc)
{
	struct bfs_req *req = s->req;

	s->done = true;
	if (rc != 0 && req->subs_rc == 0) {
		req->subs_rc = rc;
	}
	if (--req->subs_pending == 0) {
		bfs_ns_resume(req);
	}
}

/* The first pending sub of a kind whose completion names only the request. */
static void sub_finish_first(struct bfs_req *req, enum sub_kind kind)
{
	int k;

	for (k = 0; k < req->nsubs; k++) {
		if (req->subs[k].kind == kind && !req->subs[k].done) {
			sub_finish(&req->subs[k], req->rc);
			return;
		}
	}
	assert(false);
}

static void reclaim_sub_done(struct bfs_req *req)
{
	sub_finish_first(req, SUB_RECLAIM);
}

static void load_sub_done(struct bfs_req *req)
{
	sub_finish_first(req, SUB_LOAD);
}

static void inode_sub_synced(void *arg, int rc)
{
	sub_finish(arg, rc);
}

static void dir_sub_step(void *arg, int rc);

static void dir_block_written(void *arg, int rc)
{
	struct bfs_ns_sub *s = arg;

	if (rc != 0 && s->rc == 0) {
		s->rc = rc;
	}
	if (--s->writes > 0) {
		return;
	}
	if (s->rc != 0) {
		UST_ERRLOG("blobfs: writing directory 0x%" PRIx64 ": %d\n", s->t->ino, s->rc);
		sub_finish(s, s->rc);
		return;
	}
	/* the flush that makes the blocks durable (and the blob's growth) */
	s->state = SUB_SYNCED;
	ust_blob_sync_md(s->t->blob, dir_sub_step, s);
}

/* Write the changed blocks of one directory, growing its blob first if one lies past its end. */
static void dir_sub_step(void *arg, int rc)
{
	struct bfs_ns_sub *s = arg;
	struct ust_blobfs *fs = s->req->fs;
	struct bfs_inode *t = s->t;
	uint64_t need = 0, have, units = BFS_DBLOCK_SIZE / fs->io_unit;
	uint8_t *img;
	uint32_t idx;
	int k;

	switch (s->state) {
	case SUB_START:
		for (k = 0; k < s->ndw; k++) {
			if (s->dw[k] + 1ull > need) {
				need = s->dw[k] + 1ull;
			}
		}
		need = (need * BFS_DBLOCK_SIZE + fs->cluster - 1) / fs->cluster;
		have = ust_blob_get_num_clusters(t->blob);
		s->state = SUB_RESIZED;
		if (need > have) {
			ust_blob_resize(t->blob, need > 2 * have ? need : 2 * have, dir_sub_step, s);
			return;
		}
		/* fall through */
	case SUB_RESIZED:
		if (rc != 0) {
			UST_ERRLOG("blobfs: growing directory 0x%" PRIx64 ": %d\n", t->ino, rc);
			sub_finish(s, rc);
			return;
		}
		s->bounce = s->ndw > 0 ? ust_dma_malloc((size_t)s->ndw * BFS_DBLOCK_SIZE, 4096) : NULL;
		if (s->ndw > 0 && s->bounce == NULL) {
			sub_finish(s, -ENOMEM);
			return;
		}
		s->writes = 1;
		for (k = 0; k < s->ndw; k++) {
			idx = s->dw[k];
			s->writes++;
			if (idx >= t->nblocks || t->blocks[idx] == NULL) {
				ust_blob_write_zeroes(t->blob, fs->ch, idx * units, units, dir_block_written, s);
				continue;
			}
			img = s->bounce + (size_t)k * BFS_DBLOCK_SIZE;
			bfs_dir_encode(t, idx, img);
			ust_blob_write(t->blob, fs->ch, img, idx * units, units, dir_block_written, s);
		}
		dir_block_written(s, 0);
		return;
	case SUB_SYNCED:
		sub_finish(s, rc);
		return;
	}
}

/*
 * A failed create fails only its member: nothing names the blob, and its
 * intent rolls it back if a mount finds it (6.1). The new blob comes back
 * open: a file's inode is cached from it at once (the load step then finds
 * it), anything else is closed and loaded as usual.
 */
static void create_sub_done(void *arg, struct ust_blob *blob, int rc)
{
	struct bfs_ns_sub *s = arg;

	s->member->new_ino = blob != NULL ? ust_blob_get_id(blob) : 0;
	s->member->create_rc = rc;
	if (blob != NULL && !bfs_inode_adopt(s->req->fs, blob)) {
		ust_blob_close(blob, bfs_ignore_cb, NULL);
	}
	sub_finish(s, 0);
}

int bfs_ns_sub_create(struct bfs_req *req, struct bfs_req *m)
{
	struct bfs_ns_sub *s = sub_get(req, SUB_CREATE, NULL);

	if (s == NULL) {
		return -ENOMEM;
	}
	s->member = m;
	create_opts(m);
	return 0;
}

static void sub_start(struct bfs_ns_sub *s)
{
	struct bfs_req *req = s->req;

	switch (s->kind) {
	case SUB_DIR:
		dir_sub_step(s, 0);
		return;
	case SUB_INODE:
		ust_blob_sync_md(s->t->blob, inode_sub_synced, s);
		return;
	case SUB_RECLAIM:
		bfs_reclaim_inode(req->fs, s->t, reclaim_sub_done, req);
		return;
	case SUB_CREATE:
		ust_bs_create_open_blob(req->fs->bs, &s->member->copts, create_sub_done, s);
		return;
	case SUB_LOAD:
		req->rc = 0;
		if (bfs_iget(req->fs, s->ino, &s->t, load_sub_done, req) == 1) {
			sub_finish(s, req->rc);
		}
		return;
	}
}

int bfs_ns_subs_issue(struct bfs_req *req)
{
	int k;

	req->subs_rc = 0;
	req->subs_pending = req->nsubs + 1;
	for (k = 0; k < req->nsubs; k++) {
		sub_start(&req->subs[k]);
	}
	return --req->subs_pending == 0;
}

/* Add the block indexes w[0, nw) to t's directory sub. */
int bfs_ns_sub_dir_blocks(struct bfs_req *req, struct bfs_inode *t, const uint32_t *w, int nw)
{
	struct bfs_ns_sub *s = sub_get(req, SUB_DIR, t);
	int i, k;

	if (s == NULL) {
		return -ENOMEM;
	}
	for (i = 0; i < nw; i++) {
		for (k = 0; k < s->ndw && s->dw[k] != w[i]; k++) {
		}
		if (k < s->ndw) {
			continue;
		}
		if (s->ndw >= BFS_DIR_MAX_WRITES) {
			return -EIO;
		}
		s->dw[s->ndw++] = w[i];
	}
	return 0;
}

static int apply_member(struct bfs_req *req, struct bfs_req *m);

/* Apply every member's actions in memory, in order, and collect the blob updates they need. */
int bfs_ns_apply_all(struct bfs_req *req)
{
	int i, rc;

	bfs_ns_subs_reset(req);
	for (i = 0; i <= req->nbatch; i++) {
		rc = apply_member(req, bfs_ns_member(req, i));
		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

/* Apply one member's actions; its blob updates join req's subs. */
static int apply_member(struct bfs_req *req, struct bfs_req *m)
{
	struct ust_blobfs *fs = req->fs;
	struct bfs_action *a;
	struct bfs_ns_sub *s;
	struct bfs_inode *t;
	uint32_t w[BFS_DIR_MAX_WRITES];
	int k, nw, rc;

	if (m->create_rc != 0) {
		return 0; /* its create failed: it changes nothing */
	}
	for (k = 0; k < m->nacts; k++) {
		a = &m->acts[k];
		if (a->act == BFS_A_CREATE_BLOB) {
			s = sub_get(req, SUB_LOAD, NULL);
			if (s == NULL) {
				return -ENOMEM;
			}
			s->ino = m->new_ino;
			continue;
		}
		t = bfs_icache_find(fs, a->target);
		if (t == NULL || t->loading || t->deleted) {
			continue; /* the blob is gone: by this change or a later release (6.1) */
		}
		if (a->act == BFS_A_RECLAIM) {
			if (sub_get(req, SUB_RECLAIM, t) == NULL) {
				return -ENOMEM;
			}
			continue;
		}
		nw = 0;
		rc = apply(m, a, t, w, &nw);
		if (rc == 2) {
			rc = bfs_ns_sub_dir_blocks(req, t, w, nw);
		} else if (rc == 1) {
			rc = sub_get(req, SUB_INODE, t) == NULL ? -ENOMEM : 0;
		}
		if (rc < 0) {
			UST_ERRLOG("blobfs: change %" PRIu64 " step %d: %d\n", m->intent.seq, k, rc);
			return rc;
		}
	}
	return 0;
}

