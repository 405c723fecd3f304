/*
 * blobfs private structures: the on-disk records of docs/blobfs-format.md,
 * the in-memory file system, inode cache and the request that carries every
 * call from its thread to the metadata thread and back.
 */
#ifndef BLOBFS_INTERNAL_H
#define BLOBFS_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ustor/blob.h"
#include "ustor/blobfs.h"
#include "ustor/thread.h"

/* ---- on disk (little-endian, packed; host is little-endian, asserted) ------------ */

#define BFS_SUPER_MAGIC 0x53465342u  /* "BSFS" */
#define BFS_INODE_MAGIC 0x49534642u  /* "BFSI" */
#define BFS_INTENT_MAGIC 0x544e4942u /* "BINT" */
#define BFS_DBLOCK_MAGIC 0x44534642u /* "BFSD" */
#define BFS_VERSION 2       /* inodes */
#define BFS_SUPER_VERSION 3 /* the super blob: 3 adds batched intents (blobfs.intent.K) */

/* Directory blocks (docs/blobfs-format.md 4.2). */
#define BFS_DBLOCK_SIZE 4096u
#define BFS_DIR_MAX_DEPTH 24
#define BFS_DIR_MAX_SPLITS 4
/* Blocks one directory step may write: the bucket and its splits. */
#define BFS_DIR_MAX_WRITES 32

#define BFS_XA_SUPER "blobfs.super"
#define BFS_XA_INTENT "blobfs.intent"
/* A batch of namespace changes: intent k > 0 is "blobfs.intent.k" (format 5). */
#define BFS_BATCH_MAX 8
#define BFS_XA_ORPHANS "blobfs.orphans"
#define BFS_XA_INODE "blobfs.inode"
#define BFS_XA_REFS "blobfs.refs"
#define BFS_XA_LINK "blobfs.link"

struct bfs_disk_super {
	uint32_t magic;
	uint16_t version;
	uint16_t reserved;
	uint64_t root_ino;
	uint64_t next_seq;
	uint64_t reserved2;
} __attribute__((packed));
_Static_assert(sizeof(struct bfs_disk_super) == 32, "bfs_disk_super");

struct bfs_disk_ts {
	int64_t sec;
	uint32_t nsec;
	uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct bfs_disk_ts) == 16, "bfs_disk_ts");

struct bfs_disk_inode {
	uint32_t magic;
	uint16_t version;
	uint16_t reserved;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint32_t flags;
	uint64_t rdev;
	uint64_t size;
	uint64_t birth_seq;
	uint64_t dir_seed;
	struct bfs_disk_ts atime, mtime, ctime, btime;
} __attribute__((packed));
_Static_assert(sizeof(struct bfs_disk_inode) == 120, "bfs_disk_inode");

struct bfs_disk_dblock {
	uint32_t magic;
	uint8_t depth;
	uint8_t reserved;
	uint16_t nents;
	uint32_t index;
	uint32_t reserved2;
	uint64_t dir_ino;
	uint64_t checksum;
} __attribute__((packed));
_Static_assert(sizeof(struct bfs_disk_dblock) == 32, "bfs_disk_dblock");

struct bfs_disk_dentry {
	uint64_t cookie;
	uint64_t ino;
	uint8_t type;
	uint8_t name_len;
} __attribute__((packed));
_Static_assert(sizeof(struct bfs_disk_dentry) == 18, "bfs_disk_dentry");

#define BFS_DBLOCK_ROOM (BFS_DBLOCK_SIZE - sizeof(struct bfs_disk_dblock))

enum bfs_intent_op {
	BFS_OP_CREATE = 1,
	BFS_OP_LINK = 2,
	BFS_OP_UNLINK = 3,
	BFS_OP_RENAME = 4,
	BFS_OP_EXCHANGE = 5,
};

struct bfs_disk_intent {
	uint32_t magic;
	uint16_t op;
	uint16_t flags;
	uint64_t seq;
	uint64_t dir1;
	uint64_t ino1;
	uint64_t dir2;
	uint64_t ino2;
	uint16_t name1_len;
	uint16_t name2_len;
	uint8_t type1;
	uint8_t type2;
	uint8_t nblocks;
	uint8_t reserved[9];
} __attribute__((packed));
_Static_assert(sizeof(struct bfs_disk_intent) == 64, "bfs_disk_intent");

#define BFS_IBLK_EMPTY 1 /* the directory had no block: no image follows */
#define BFS_INTENT_MAX_BLOCKS 2

struct bfs_disk_intent_block {
	uint64_t dir;
	uint32_t index;
	uint8_t depth;
	uint8_t flags;
	uint16_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct bfs_disk_intent_block) == 16, "bfs_disk_intent_block");

#define BFS_INTENT_MAX_BYTES                                                                 \
	(sizeof(struct bfs_disk_intent) + 2 * UST_BLOBFS_NAME_MAX +                          \
	 BFS_INTENT_MAX_BLOCKS * (sizeof(struct bfs_disk_intent_block) + BFS_DBLOCK_SIZE))

/* ---- in memory ------------------------------------------------------------------- */

/* One directory entry, cached (the name follows, NUL-terminated). */
struct bfs_dirent {
	uint64_t cookie;
	uint64_t ino;
	uint32_t key;
	uint8_t type;
	uint8_t len;
	char name[];
};

/* One directory block (bucket), cached: entries by ascending cookie. */
struct bfs_dblock {
	uint32_t index;
	uint8_t depth;
	bool bad;       /* failed validation at load (torn or damaged): no entries */
	uint32_t nents, cap;
	uint32_t bytes; /* on-disk size of the entries */
	struct bfs_dirent **ents;
};

struct bfs_ref {
	uint64_t parent;
	uint16_t len;
	char name[UST_BLOBFS_NAME_MAX + 1];
};

struct bfs_waiter;
struct bfs_req;

struct bfs_inode {
	struct ust_blobfs *fs;
	uint64_t ino; /* blob id */
	struct ust_blob *blob;
	struct bfs_inode *hnext;
	bool loading;
	bool deleted;   /* blob gone: only attributes remain for FUSE */
	bool dirty;     /* size/times changed by writes, not yet synced */
	bool unlinked;  /* its last ref went while it was open: the last release deletes it */
	int load_rc;
	struct bfs_waiter *waiters;

	uint32_t mode, uid, gid;
	uint64_t rdev, size, birth_seq, dir_seed;
	struct timespec atime, mtime, ctime, btime;

	struct bfs_ref *refs;
	uint32_t nrefs;
	char *link; /* symlink target */

	/* directories: blocks[i] is block i (NULL: absent), i < nblocks */
	struct bfs_dblock **blocks;
	uint32_t nblocks;
	uint8_t max_depth;
	size_t nents;
	uint32_t nsubdirs;
	/* directory load in progress */
	uint8_t *dload_buf;
	uint64_t dload_next, dload_end;

	uint64_t nlookup;
	uint32_t nopen;
	uint32_t nsyncs; /* metadata syncs in flight that hold this inode (bfs_sync_inode) */
	/* data: writes and truncates that overlap wait for each other */
	struct bfs_req *io_active;
	struct bfs_req *io_waiting;
};

struct ust_blobfs_file {
	struct bfs_inode *ip;
	int flags;
	bool dir;
};

struct ust_blobfs {
	struct ust_blob_store *bs;
	struct ust_thread *thread;
	struct ust_io_channel *ch;
	uint64_t io_unit;
	uint64_t cluster;
	struct bfs_inode *root;
	struct ust_blob *super;
	uint64_t next_seq;
	uint64_t *orphans;
	size_t norphans;
	struct bfs_inode **itab;
	size_t nibuckets;
	size_t ninodes;
	uint32_t nopen_files;
	/*
	 * Deleted inodes that may have nothing left pointing at them (their
	 * lookups forgotten, their last handle released): freed once no
	 * request is in flight (bfs_evict_deleted), so no step machine can
	 * still hold one.
	 */
	uint64_t *evict_q;
	size_t nevict, evict_cap;
	atomic_uint inflight; /* submitted on any thread (bfs_submit), done here */
	struct bfs_req *ns_active;
	struct bfs_req *ns_head, *ns_tail;
	struct ust_poller *flusher;
	uint32_t sync_interval_ms;
	bool unmounting;
};

/* ---- requests -------------------------------------------------------------------- */

enum bfs_kind {
	BFS_R_LOOKUP,
	BFS_R_GETATTR,
	BFS_R_SETATTR,
	BFS_R_READLINK,
	BFS_R_MKNOD,
	BFS_R_MKDIR,
	BFS_R_SYMLINK,
	BFS_R_LINK,
	BFS_R_UNLINK,
	BFS_R_RMDIR,
	BFS_R_RENAME,
	BFS_R_OPEN,
	BFS_R_CREATE,
	BFS_R_READ,
	BFS_R_WRITE,
	BFS_R_FSYNC,
	BFS_R_RELEASE,
	BFS_R_FALLOCATE,
	BFS_R_OPENDIR,
	BFS_R_READDIR,
	BFS_R_RELEASEDIR,
	BFS_R_STATFS,
	BFS_R_SETXATTR,
	BFS_R_GETXATTR,
	BFS_R_LISTXATTR,
	BFS_R_REMOVEXATTR,
	BFS_R_FORGET,
	BFS_R_PATH,
	BFS_R_UNMOUNT,
	BFS_R_INTERNAL, /* resume(req) continues its owner */
};

enum bfs_cb_kind {
	BFS_CB_OP,
	BFS_CB_ENTRY,
	BFS_CB_ATTR,
	BFS_CB_OPEN,
	BFS_CB_CREATE,
	BFS_CB_SIZE,
	BFS_CB_STATFS,
	BFS_CB_LEND,
	BFS_CB_NONE,
};

/* The namespace engine's actions (docs/blobfs-format.md section 5). */
enum bfs_act {
	BFS_A_CREATE_BLOB,
	BFS_A_DIR_SET,
	BFS_A_DIR_REMOVE,
	BFS_A_REF_ADD,
	BFS_A_REF_DEL,
	BFS_A_REF_MOVE,
	BFS_A_RECLAIM,
};

struct bfs_action {
	enum bfs_act act;
	uint64_t target; /* the blob this action changes */
	uint64_t dir;    /* entry / ref directory */
	const char *name;
	uint64_t ino;    /* the inode the entry names / whose ref moves */
	uint8_t type;
	uint64_t dir_b;  /* REF_MOVE: the new (dir, name) */
	const char *name_b;
};

#define BFS_MAX_ACTIONS 8

struct bfs_ns_sub;

struct bfs_req {
	struct ust_blobfs *fs;
	enum bfs_kind kind;
	struct ust_blobfs_ctx ctx;
	struct ust_thread *caller;
	struct bfs_req *next;

	/* arguments */
	uint64_t ino, ino2;
	const char *name, *name2;
	const char *path, *path2;
	uint32_t mode, flags, valid;
	uint64_t rdev;
	int oflags;
	void *buf;
	const void *cbuf;
	size_t size;
	uint64_t offset, length;
	struct ust_blobfs_attr in_attr;
	struct ust_blobfs_file *fh;
	struct iovec *lend_iov; /* read_lend: the caller's iovec, lend_cnt entries */
	int lend_cnt;
	ust_blobfs_fill_fn fill;
	void *fill_arg;
	bool plus, datasync;

	/* results */
	int rc;
	int64_t result;
	struct ust_blobfs_entry entry;
	struct ust_blobfs_attr attr;
	struct ust_blobfs_file *out_fh;
	struct ust_blobfs_statfs st;

	enum bfs_cb_kind cb_kind;
	union bfs_cb {
		ust_blobfs_op_cb op;
		ust_blobfs_entry_cb entry;
		ust_blobfs_attr_cb attr;
		ust_blobfs_open_cb open;
		ust_blobfs_create_cb create;
		ust_blobfs_size_cb size;
		ust_blobfs_statfs_cb statfs;
		ust_blobfs_lend_cb lend;
	} cb;
	void *cb_arg;

	/* step machines: every op keeps its place here */
	int state;
	struct bfs_inode *ip, *dp, *dp2, *ip2, *tmp;
	/* namespace engine */
	bool replay;
	bool is_ns;
	struct bfs_disk_intent intent;
	char iname1[UST_BLOBFS_NAME_MAX + 1], iname2[UST_BLOBFS_NAME_MAX + 1];
	struct bfs_action acts[BFS_MAX_ACTIONS];
	int nacts, cur;
	uint64_t new_ino;
	/* the new blob's xattrs: the store reads them until create completes */
	struct bfs_disk_inode cdi;
	uint8_t crefs[10 + UST_BLOBFS_NAME_MAX];
	struct ust_blob_xattr cxa[3];
	struct ust_blob_opts copts;
	/* data path */
	uint64_t u0, u1; /* io-unit range locked */
	bool locked;
	bool shared; /* the lock is shared with other shared ones (a lend) */
	void *bounce;
	uint64_t end;
	uint64_t rmw_unit;
	uint32_t rmw_from, rmw_to;
	int rmw_next;
	int after_trunc;
	uint64_t new_size;
	bool changed;
	/* namespace engine: the blob updates of one step, issued together (blobfs_ns.c) */
	struct bfs_ns_sub *subs;
	int nsubs, subs_pending, subs_rc;
	int subs_then; /* the state once they all completed */
	/* the changes that joined this one's intent batch, and the one being loaded */
	struct bfs_req *batch[BFS_BATCH_MAX - 1];
	int nbatch, bcur;
	int create_rc; /* this member's new blob could not be created */
	/* replay: the intent's directory block records (owned by the mount) */
	const uint8_t *irecs;
	size_t irecs_len;
	int rec_cur;
	int rec_then; /* the state after the records are restored */
	/* readdir */
	size_t di;
	/* path walk */
	struct bfs_path *pw;
	void (*resume)(struct bfs_req *req);
	/* a request that made this one and resumes when it finishes */
	struct bfs_req *parent;
};

/* blobfs_inode.c */
uint64_t bfs_ino_in(struct ust_blobfs *fs, uint64_t ino);
uint64_t bfs_ino_out(struct ust_blobfs *fs, uint64_t ino);
struct bfs_inode *bfs_icache_find(struct ust_blobfs *fs, uint64_t ino);
/* 1: *out is loaded now; 0: cb(req) later with req->rc set. */
int bfs_iget(struct ust_blobfs *fs, uint64_t ino, struct bfs_inode **out, void (*cb)(struct bfs_req *),
	     struct bfs_req *req);
int bfs_inode_parse(struct bfs_inode *ip);
int bfs_inode_adopt(struct ust_blobfs *fs, struct ust_blob *blob);
void bfs_inode_store(struct ust_blobfs *fs, struct bfs_inode *ip);
int bfs_refs_store(struct bfs_inode *ip);
void bfs_inode_free(struct bfs_inode *ip);
/* ip was deleted and may become unreferenced: queue it for bfs_evict_deleted. */
void bfs_evict_queue(struct ust_blobfs *fs, struct bfs_inode *ip);
/* No request is in flight: free the queued deleted inodes nothing refers to. */
void bfs_evict_deleted(struct ust_blobfs *fs);
void bfs_icache_remove(struct ust_blobfs *fs, struct bfs_inode *ip);
void bfs_fill_attr(struct ust_blobfs *fs, const struct bfs_inode *ip, struct ust_blobfs_attr *a);
void bfs_now(struct timespec *ts);
uint8_t bfs_mode_to_dt(uint32_t mode);
void bfs_iget_dir_loaded(struct bfs_inode *ip, int rc);
int bfs_ref_find(const struct bfs_inode *ip, uint64_t parent, const char *name);
int bfs_ref_add(struct bfs_inode *ip, uint64_t parent, const char *name);
void bfs_ref_del(struct bfs_inode *ip, uint64_t parent, const char *name);
uint32_t bfs_nlink(const struct bfs_inode *ip);
int bfs_encode_inode(const struct bfs_inode *ip, struct bfs_disk_inode *d);

/* blobfs_dir.c: directory blocks (docs/blobfs-format.md 4.2, 5.2) */
uint64_t bfs_dir_new_seed(void);
void bfs_dir_free(struct bfs_inode *dp);
/* Read and parse every block of an open directory blob; then bfs_iget_dir_loaded(). */
void bfs_dir_load(struct bfs_inode *dp);
struct bfs_dirent *bfs_dir_find(struct bfs_inode *dp, const char *name);
/* Why bfs_dir_find found nothing: -ENOENT, or -EIO when name's bucket is damaged (5.2). */
int bfs_dir_miss(struct bfs_inode *dp, const char *name);
/* The entry with the smallest cookie > offset, NULL at the end. */
struct bfs_dirent *bfs_dir_next(struct bfs_inode *dp, uint64_t offset);
/* 0 if name can be added (splits included), -ENOSPC, -EIO (its bucket is invalid). */
int bfs_dir_can_add(struct bfs_inode *dp, const char *name);
/*
 * Change the cache; the indexes of the blocks to write are appended to
 * w[*nw] (at most BFS_DIR_MAX_WRITES in all).
 */
int bfs_dir_set(struct bfs_inode *dp, const char *name, uint64_t ino, uint8_t type, uint32_t *w,
		int *nw);
int bfs_dir_remove(struct bfs_inode *dp, const char *name, uint32_t *w, int *nw);
/* Append the pre-image record of name's bucket to buf (room: 16 + 4096). Returns bytes. */
size_t bfs_dir_record(struct bfs_inode *dp, const char *name, uint8_t *buf);
/* true if rec (a record of this directory) already names name's bucket */
bool bfs_dir_record_covers(struct bfs_inode *dp, const char *name, const uint8_t *rec);
/* Restore a record's range in the cache (5.2); blocks to write go to w. */
int bfs_dir_restore(struct bfs_inode *dp, const struct bfs_disk_intent_block *r, const uint8_t *img,
		    uint32_t *w, int *nw);
/* The record's range is valid and completely covered by its blocks. */
bool bfs_dir_range_valid(struct bfs_inode *dp, const struct bfs_disk_intent_block *r);
/* The 4096-byte on-disk image of block index (zeros when absent). */
void bfs_dir_encode(struct bfs_inode *dp, uint32_t index, uint8_t *out);

/* blobfs.c */
/* For closes whose outcome nobody waits for (the store logs failures). */
void bfs_ignore_cb(void *arg, int rc);
void bfs_complete(struct bfs_req *req, int rc);
struct bfs_req *bfs_req_new(struct ust_blobfs *fs, enum bfs_kind kind, const struct ust_blobfs_ctx *ctx);
void bfs_submit(struct bfs_req *req);
int bfs_super_store(struct ust_blobfs *fs);
void bfs_orphan_add(struct ust_blobfs *fs, uint64_t ino);
void bfs_orphan_del(struct ust_blobfs *fs, uint64_t ino);
int bfs_check_name(const char *name);
bool bfs_may(const struct ust_blobfs_ctx *ctx, const struct bfs_inode *ip, int mask);

/* blobfs_ns.c */
/* The name of intent k of a batch (buf: 32 bytes). */
const char *bfs_intent_xattr_name(int k);
/* Remove every intent xattr from the super blob (in memory). */
void bfs_intent_remove_all(struct ust_blobfs *fs);
void bfs_ns_run(struct bfs_req *req);
/* Continue req's step machine (an engine completion). */
void bfs_ns_resume(struct bfs_req *req);
/* Member k of req's batch: 0 is req itself, then req->batch[]. */
struct bfs_req *bfs_ns_member(struct bfs_req *req, int k);

/* blobfs_ns_write.c: the blob updates of a change or batch (req->subs) */
void bfs_ns_subs_reset(struct bfs_req *req);
/* Create member m's new inode blob (m->new_ino, m->create_rc). */
int bfs_ns_sub_create(struct bfs_req *req, struct bfs_req *m);
/* Write blocks w[0, nw) of directory t and flush it (even with nw 0). */
int bfs_ns_sub_dir_blocks(struct bfs_req *req, struct bfs_inode *t, const uint32_t *w, int nw);
/* Apply every member's actions in memory and add the updates they need. */
int bfs_ns_apply_all(struct bfs_req *req);
/* Start them all: 1 if they completed already, else bfs_ns_resume() comes with the last. */
int bfs_ns_subs_issue(struct bfs_req *req);
void bfs_ns_replay(struct bfs_req *req);
/* 0 if p[0, len) holds exactly n well-formed intent block records. */
int bfs_intent_records_check(const uint8_t *p, size_t len, int n);
void bfs_reclaim_inode(struct ust_blobfs *fs, struct bfs_inode *ip, void (*cb)(struct bfs_req *),
		       struct bfs_req *req);

/* blobfs_io.c */
void bfs_io_run(struct bfs_req *req);
/* A lend's request (ust_blobfs_lend_release): unlock its range, complete it without a callback. */
void bfs_lend_release(struct bfs_req *req);
/* ust_blobfs_write_fill() on the metadata thread. */
int64_t bfs_write_fill(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		       struct ust_blobfs_file *fh, size_t size, uint64_t offset,
		       ust_blobfs_store_fn store, void *arg);
void bfs_sync_inode(struct ust_blobfs *fs, struct bfs_inode *ip, void (*cb)(struct bfs_req *),
		    struct bfs_req *req);

/* blobfs_path.c */
void bfs_path_run(struct bfs_req *req);
void bfs_path_free(struct bfs_req *req);

/* run a request on the metadata thread (dispatch by kind) */
void bfs_dispatch(struct bfs_req *req);
/* blobfs_mount.c: an unmount request's steps */
void bfs_unmount_step(struct bfs_req *req);
void bfs_attr_run(struct bfs_req *req);

#endif
