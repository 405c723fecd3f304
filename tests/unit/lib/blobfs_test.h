/*
 * Shared by the blobfs unit tests (tests/unit/blobfs/): one record that an
 * asynchronous blobfs call's callback fills, and the callbacks for each
 * callback type of ustor/blobfs.h. A test zeroes a record, passes it as the
 * callback argument, polls the threads, and reads done, rc and the result.
 *
 * The tests on hand-polled threads (ut_threads.h) also share one file system
 * under test, bft_fs, and synchronous forms of the calls on it
 * (blobfs_test_ops.c): each fills bft_r, fails the test if its callback did
 * not run, and returns the operation's status (or byte count); bft_r then
 * still holds the whole result (the entry of a lookup, for instance).
 */
#ifndef USTOR_BLOBFS_TEST_H
#define USTOR_BLOBFS_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ustor/blobfs.h"

struct bft_res {
	bool done; /* the callback ran */
	int rc;    /* its status (size_cb: the result when negative, else 0) */
	int64_t n; /* size_cb's result */
	struct ust_blobfs *fs;
	struct ust_blobfs_entry e;
	struct ust_blobfs_attr a;
	struct ust_blobfs_file *fh;
	struct ust_blobfs_statfs st;
};

void bft_fs_cb(void *arg, struct ust_blobfs *fs, int rc);
void bft_op_cb(void *arg, int rc);
void bft_entry_cb(void *arg, const struct ust_blobfs_entry *e, int rc);
void bft_attr_cb(void *arg, const struct ust_blobfs_attr *a, int rc);
void bft_open_cb(void *arg, struct ust_blobfs_file *fh, int rc);
void bft_create_cb(void *arg, const struct ust_blobfs_entry *e, struct ust_blobfs_file *fh, int rc);
void bft_size_cb(void *arg, int64_t n);
void bft_statfs_cb(void *arg, const struct ust_blobfs_statfs *st, int rc);

/* ---- synchronous calls on bft_fs (blobfs_test_ops.c; threads from ut_threads.h) ---- */

#define BFT_ROOT UST_BLOBFS_ROOT_INO
#define BFT_BDEV_BYTES (32u << 20) /* size of each malloc bdev bft_make_malloc makes */

extern struct ust_blobfs *bft_fs;           /* the file system the calls below act on */
extern const struct ust_blobfs_ctx bft_ctx; /* root, no permission checks */
extern struct bft_res bft_r;                /* the record of the last call */

/* Zero bft_r and return it: the callback argument of a call made by hand. */
struct bft_res *bft_begin(void);
/* Poll until idle; the call's callback must have run. */
void bft_finish(void);

/* Format "M0" (64 KiB clusters) into bft_fs. */
int bft_format(void);
/* Mount bdev into bft_fs. */
int bft_mount(const char *bdev);
/* Unmount bft_fs; it is NULL afterwards if that succeeded. */
int bft_unmount(void);

/* The calls with bft_ctx; ino, fh: the result, where not NULL. */
int bft_lookup(uint64_t parent, const char *name, uint64_t *ino);
int bft_getattr(uint64_t ino, struct ust_blobfs_attr *a);
int bft_mkdir(uint64_t parent, const char *name, uint64_t *ino); /* mode 0755 */
int bft_mknod(uint64_t parent, const char *name, uint32_t mode, uint64_t rdev, uint64_t *ino);
/* Create with mode 0644 as ctx. */
int bft_create_ctx(const struct ust_blobfs_ctx *ctx, uint64_t parent, const char *name, int flags,
		   struct ust_blobfs_file **fh, uint64_t *ino);
/* bft_create_ctx as root with O_RDWR | O_CREAT | O_EXCL. */
int bft_create(uint64_t parent, const char *name, struct ust_blobfs_file **fh, uint64_t *ino);
int bft_open(uint64_t ino, int flags, struct ust_blobfs_file **fh);
int bft_release(struct ust_blobfs_file *fh);
/* Bytes written or read, or a negative errno. */
int64_t bft_pwrite_ctx(const struct ust_blobfs_ctx *ctx, struct ust_blobfs_file *fh,
		       const void *buf, size_t len, uint64_t off);
int64_t bft_pwrite(struct ust_blobfs_file *fh, const void *buf, size_t len, uint64_t off);
int64_t bft_pread(struct ust_blobfs_file *fh, void *buf, size_t len, uint64_t off);
int bft_fsync(struct ust_blobfs_file *fh);
int bft_unlink(uint64_t parent, const char *name);
int bft_rmdir(uint64_t parent, const char *name);
int bft_rename(uint64_t p, const char *n, uint64_t np, const char *nn, uint32_t flags);
int bft_link(uint64_t ino, uint64_t np, const char *nn);
/* Set the valid fields of *a as ctx; *a is then the inode's new attributes. */
int bft_setattr_ctx(const struct ust_blobfs_ctx *ctx, uint64_t ino, struct ust_blobfs_attr *a,
		    uint32_t valid);
int bft_truncate(uint64_t ino, uint64_t size);

/* A pattern of len bytes that differs with seed and along the buffer. */
void bft_fill(uint8_t *buf, size_t len, uint32_t seed);
/* statfs's free clusters (fails the test if statfs does). */
uint64_t bft_free_clusters(void);

/* What one readdir call returned: at most max (up to 64) entries. */
struct bft_dirlist {
	char names[64][32];
	uint64_t offs[64]; /* each entry's next_offset */
	uint64_t inos[64];
	int n;
	int max;
};

/* readdir of the open directory dh from off into *l, at most max entries. */
int bft_readdir(struct ust_blobfs_file *dh, uint64_t off, int max, struct bft_dirlist *l);
bool bft_dirlist_has(const struct bft_dirlist *l, const char *name);
/* Entries of directory dir (with "." and ".."), by one full readdir. */
uint64_t bft_count_entries(uint64_t dir);

/*
 * Read (write: false) or write the first len bytes of bdev name from or to
 * buf (DMA memory), as a crash or a damaged image would leave the device.
 */
void bft_raw_io(const char *name, bool write, void *buf, uint64_t len);

/* ---- fixtures ---- */

/* cmocka group set-up and tear-down: threads t0 and t1 and the bdev layer. */
int bft_group_setup(void **state);
int bft_group_teardown(void **state);
/* A malloc bdev of BFT_BDEV_BYTES in 512-byte blocks. */
int bft_make_malloc(const char *name);
/* Per-test set-up: "M0" with a fresh blobfs in bft_fs. */
int bft_make_fs(void **state);
/* Per-test tear-down: unmount bft_fs if mounted, drop "M0" and "M1". */
int bft_drop_fs(void **state);
/* A completion callback of (ctx, rc): *(int *)ctx becomes 1 on success, else rc. */
void bft_done_cb(void *ctx, int rc);

#endif
