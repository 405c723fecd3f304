/*
 * ustor blobfs: a POSIX file system over a blobstore, one blob per inode.
 *
 * The API is inode based and asynchronous, shaped after the FUSE low-level
 * operations (fuse/ drives it), plus a path-based convenience API with the
 * same semantics for programs that link blobfs directly. The on-disk format,
 * the crash rules and the recovery procedure are docs/blobfs-format.md.
 *
 * Threading:
 *  - The thread that mounts (or formats) is the file system's metadata
 *    thread; it is also the blobstore's metadata thread. All state lives
 *    there.
 *  - Every call may be made from any ust_thread: a call from another thread
 *    is forwarded to the metadata thread by message, and its callback is
 *    sent back and runs on the calling thread. The callback never runs
 *    inside the call itself, except for argument errors found before
 *    forwarding (then it runs at once, on the calling thread).
 *  - The readdir fill function runs on the metadata thread while the caller
 *    waits for the readdir callback; it must not block or call blobfs.
 *  - Buffers, names and ctx passed to a call must stay valid until its
 *    callback has run.
 *
 * Durability: namespace changes, setattr and xattr changes are durable when
 * their callback reports success. Data writes are durable after fsync (or
 * release, or within sync_interval_ms). See docs/blobfs-format.md section 7.
 *
 * Errors are negative errno, as POSIX names them: -ENOENT, -EEXIST,
 * -ENOTDIR, -EISDIR, -ENOTEMPTY, -ENAMETOOLONG (a name over 255 bytes or a
 * path over 4095), -EINVAL, -EXDEV, -ENOSPC, -EPERM, -EACCES, -ELOOP,
 * -ENOTSUP (xattr namespaces other than user.), -ENODATA (no such xattr),
 * -ERANGE (xattr buffer too small), -EBADF (wrong handle kind), -ESTALE
 * (an inode number that is not a blobfs inode).
 */
#ifndef USTOR_BLOBFS_H
#define USTOR_BLOBFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ust_blobfs;
struct ust_blobfs_file; /* an open file or directory (FUSE's fi->fh) */

typedef uint64_t ust_blobfs_ino;

/* The root directory's inode number (FUSE_ROOT_ID). */
#define UST_BLOBFS_ROOT_INO 1
#define UST_BLOBFS_NAME_MAX 255
#define UST_BLOBFS_PATH_MAX 4096
/* The store type blobfs formats and loads; lvols sharing a store use it too. */
#define UST_BLOBFS_BSTYPE "ustor"

/* Who asks: FUSE's fuse_req_ctx(). */
struct ust_blobfs_ctx {
	uint32_t uid;
	uint32_t gid;
	uint32_t pid;
	/*
	 * Check permission bits (r/w/x on the inode and its directory) as the
	 * kernel would. FUSE with default_permissions leaves this false.
	 * Ownership rules of setattr and the sticky bit are always enforced.
	 */
	bool check_access;
	/*
	 * The caller may not keep set-user-ID and set-group-ID on what it
	 * changes (Linux: it lacks CAP_FSETID). Its write, truncate or
	 * open(O_TRUNC) then clears S_ISUID, and S_ISGID when the group may
	 * execute, as the kernel's own file systems do. FUSE sets it from the
	 * kernel's FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID and
	 * FUSE_OPEN_KILL_SUIDGID. Without it a write by another user than the
	 * owner still clears them, root's writes never do.
	 */
	bool kill_suidgid;
};

struct ust_blobfs_attr {
	ust_blobfs_ino ino;
	uint32_t mode; /* S_IFMT | permissions */
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint64_t rdev;
	uint64_t size;
	uint64_t blocks; /* 512-byte units allocated */
	uint32_t blksize;
	struct timespec atime;
	struct timespec mtime;
	struct timespec ctime;
	struct timespec btime;
};

/* A lookup result: FUSE's fuse_entry_param. Each counts as one lookup. */
struct ust_blobfs_entry {
	ust_blobfs_ino ino;
	uint64_t generation; /* always 0: inode numbers are never reused */
	struct ust_blobfs_attr attr;
};

struct ust_blobfs_statfs {
	uint64_t bsize;   /* cluster size */
	uint64_t frsize;  /* cluster size */
	uint64_t blocks;  /* data clusters */
	uint64_t bfree;
	uint64_t bavail;
	uint64_t files;   /* inode capacity (blob slots) */
	uint64_t ffree;
	uint64_t namemax; /* 255 */
};

/* setattr's valid mask (FUSE_SET_ATTR_* meaning). */
#define UST_BLOBFS_SET_MODE (1u << 0)
#define UST_BLOBFS_SET_UID (1u << 1)
#define UST_BLOBFS_SET_GID (1u << 2)
#define UST_BLOBFS_SET_SIZE (1u << 3)
#define UST_BLOBFS_SET_ATIME (1u << 4)
#define UST_BLOBFS_SET_MTIME (1u << 5)
#define UST_BLOBFS_SET_ATIME_NOW (1u << 7)
#define UST_BLOBFS_SET_MTIME_NOW (1u << 8)
/*
 * A caller that keeps the times itself (the kernel with the FUSE writeback
 * cache) sets ctime along with them. Its mtime is then taken as given even
 * from a caller that does not own the file when check_access is false: it
 * is the "now" of that caller's truncate or write, already checked.
 */
#define UST_BLOBFS_SET_CTIME (1u << 10)

/* rename flags (Linux values). */
#define UST_BLOBFS_RENAME_NOREPLACE (1u << 0)
#define UST_BLOBFS_RENAME_EXCHANGE (1u << 1)

/* fallocate modes (Linux values); others are -EOPNOTSUPP. */
#define UST_BLOBFS_FALLOC_KEEP_SIZE 0x01
#define UST_BLOBFS_FALLOC_PUNCH_HOLE 0x02

/* setxattr flags (Linux values). */
#define UST_BLOBFS_XATTR_CREATE 1
#define UST_BLOBFS_XATTR_REPLACE 2

typedef void (*ust_blobfs_op_cb)(void *arg, int rc);
typedef void (*ust_blobfs_fs_cb)(void *arg, struct ust_blobfs *fs, int rc);
typedef void (*ust_blobfs_entry_cb)(void *arg, const struct ust_blobfs_entry *entry, int rc);
typedef void (*ust_blobfs_attr_cb)(void *arg, const struct ust_blobfs_attr *attr, int rc);
typedef void (*ust_blobfs_open_cb)(void *arg, struct ust_blobfs_file *fh, int rc);
/* create: the entry (one lookup) and the open handle. */
typedef void (*ust_blobfs_create_cb)(void *arg, const struct ust_blobfs_entry *entry,
				     struct ust_blobfs_file *fh, int rc);
/* read/write/readlink/getxattr/listxattr: bytes (>= 0) or a negative errno. */
typedef void (*ust_blobfs_size_cb)(void *arg, int64_t result);
typedef void (*ust_blobfs_statfs_cb)(void *arg, const struct ust_blobfs_statfs *st, int rc);
/* Bytes lent by ust_blobfs_read_lend(), held until ust_blobfs_lend_release(). */
struct ust_blobfs_lend;
/*
 * read_lend: result as for a read; iovcnt entries of the caller's iov hold
 * the bytes, held by lend - non-NULL exactly when result > 0.
 */
typedef void (*ust_blobfs_lend_cb)(void *arg, struct ust_blobfs_lend *lend, int iovcnt,
				   int64_t result);

/* ---- format, mount, unmount ------------------------------------------------ */

struct ust_blobfs_opts {
	uint32_t cluster_size;     /* format only; 0: 64 KiB */
	/*
	 * Format only: the store's blob slots, fixed for its life. Every file,
	 * directory, symlink and special file takes one; two hold the file
	 * system itself (super blob, root directory). Fewer than 2, or more
	 * than the device has room for, fail with -ENOSPC; more than 2^24 with
	 * -EINVAL. A slot costs 12 KiB of the device: two 4 KiB root pages,
	 * written at format, and one metadata pool page. 0: the blobstore's default, the device's clusters / 4
	 * clamped to [64, 2^20]: with 64 KiB clusters one per 256 KiB (an 8 GiB
	 * device: 32,767). Adding a file system to another owner's store keeps
	 * that store's slots, shared with its blobs.
	 */
	uint32_t max_inodes;
	uint32_t sync_interval_ms; /* flush of size/times changed by writes; 0: 5000 */
	/*
	 * Format only: allocate the store's whole metadata region on the
	 * device at format (ust_bs_opts.prealloc_md), 12 KiB per inode slot.
	 * A new store only; adding to another owner's store keeps its region.
	 */
	bool prealloc_md;
};

void ust_blobfs_opts_init(struct ust_blobfs_opts *opts);

/*
 * Make an empty store (bstype "ustor") on the bdev with an empty root
 * directory (mode 0755, owned by ctx's uid/gid; ctx NULL: root) and mount it.
 */
void ust_blobfs_format(const char *bdev_name, const struct ust_blobfs_opts *opts,
		       const struct ust_blobfs_ctx *ctx, ust_blobfs_fs_cb cb, void *arg);

/*
 * Load the store, find the file system (docs/blobfs-format.md 1), replay an
 * interrupted namespace change and reclaim orphans. -ENODATA no file system
 * in the store, -ENOTSUP newer version; the store's load errors.
 */
void ust_blobfs_mount(const char *bdev_name, const struct ust_blobfs_opts *opts,
		      ust_blobfs_fs_cb cb, void *arg);

/*
 * Sync everything, delete orphans, unload the store. -EBUSY (and nothing
 * happens) while files are open or calls are in flight. Inodes still looked
 * up are forgotten. -ENODEV: the device is going away (its bdev is being
 * removed); the file system is unmounted all the same, without what was not
 * yet synced, as after a crash: the next mount of those bytes recovers.
 * Another error from the syncs leaves it mounted; after them it is
 * unmounted whatever the store's unload answers (that error is returned).
 */
void ust_blobfs_unmount(struct ust_blobfs *fs, ust_blobfs_op_cb cb, void *arg);

/* ---- inodes (FUSE lowlevel) ------------------------------------------------- */

void ust_blobfs_lookup(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		       ust_blobfs_ino parent, const char *name, ust_blobfs_entry_cb cb, void *arg);
/* Drop nlookup lookups; no reply. */
void ust_blobfs_forget(struct ust_blobfs *fs, ust_blobfs_ino ino, uint64_t nlookup);
void ust_blobfs_getattr(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			ust_blobfs_ino ino, ust_blobfs_attr_cb cb, void *arg);
/*
 * Change what valid says. fh may be NULL (it is unused beyond identifying
 * the inode). SIZE on a directory -EISDIR, on other non-files -EINVAL.
 */
void ust_blobfs_setattr(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			ust_blobfs_ino ino, const struct ust_blobfs_attr *attr, uint32_t valid,
			struct ust_blobfs_file *fh, ust_blobfs_attr_cb cb, void *arg);
void ust_blobfs_readlink(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			 ust_blobfs_ino ino, char *buf, size_t size, ust_blobfs_size_cb cb,
			 void *arg);
/* mode's S_IFMT: S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK (else -EINVAL). */
void ust_blobfs_mknod(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		      ust_blobfs_ino parent, const char *name, uint32_t mode, uint64_t rdev,
		      ust_blobfs_entry_cb cb, void *arg);
void ust_blobfs_mkdir(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		      ust_blobfs_ino parent, const char *name, uint32_t mode,
		      ust_blobfs_entry_cb cb, void *arg);
void ust_blobfs_symlink(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			const char *target, ust_blobfs_ino parent, const char *name,
			ust_blobfs_entry_cb cb, void *arg);
/* Hard link: directories -EPERM. */
void ust_blobfs_link(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		     ust_blobfs_ino ino, ust_blobfs_ino newparent, const char *newname,
		     ust_blobfs_entry_cb cb, void *arg);
void ust_blobfs_unlink(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		       ust_blobfs_ino parent, const char *name, ust_blobfs_op_cb cb, void *arg);
void ust_blobfs_rmdir(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		      ust_blobfs_ino parent, const char *name, ust_blobfs_op_cb cb, void *arg);
/* flags: 0, UST_BLOBFS_RENAME_NOREPLACE or UST_BLOBFS_RENAME_EXCHANGE. */
void ust_blobfs_rename(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		       ust_blobfs_ino parent, const char *name, ust_blobfs_ino newparent,
		       const char *newname, uint32_t flags, ust_blobfs_op_cb cb, void *arg);

/* ---- files ------------------------------------------------------------------- */

/*
 * flags: O_RDONLY/O_WRONLY/O_RDWR, O_TRUNC, O_APPEND. O_TRUNC truncates a
 * regular file whatever the access mode (as Linux; it needs write
 * permission) and is durable when cb reports success, like a setattr of
 * the size. Directories -EISDIR when opened for writing or with O_TRUNC;
 * symlinks and special files -EINVAL (FUSE never sends those).
 */
void ust_blobfs_open(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		     ust_blobfs_ino ino, int flags, ust_blobfs_open_cb cb, void *arg);
/* Create and open a regular file; O_EXCL: -EEXIST if the name exists. */
void ust_blobfs_create(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		       ust_blobfs_ino parent, const char *name, uint32_t mode, int flags,
		       ust_blobfs_create_cb cb, void *arg);
/* Reads stop at end of file: result < size there, 0 at or past it. */
void ust_blobfs_read(struct ust_blobfs *fs, struct ust_blobfs_file *fh, void *buf, size_t size,
		     uint64_t offset, ust_blobfs_size_cb cb, void *arg);
/*
 * Zero-copy read: as ust_blobfs_read(), but cb finds the bytes where they
 * lie - in the bdev's memory (ust_bdev_read_lend()), or shared zeros for
 * holes - described by iov[0, iovcnt). They stay lent until the caller
 * gives lend back with ust_blobfs_lend_release(), so it may copy them out
 * later and elsewhere (a FUSE reply written by another thread). Meanwhile
 * writes, truncates and fallocates of the file whose io units overlap the
 * range wait, and ust_blobfs_write_fill() over it says -EAGAIN: the memory
 * keeps the bytes cb was shown, and stays this file's. Reads and other
 * lends of the range do not wait; a lend waits for a write in flight over
 * its range, so it never shows half of one. Only on the file system's
 * metadata thread: -ENOTSUP on another thread or when the bdev cannot
 * lend, -EAGAIN not this range now, -E2BIG more than iovcnt pieces: each
 * means "use ust_blobfs_read()". Other errors as a read.
 */
void ust_blobfs_read_lend(struct ust_blobfs *fs, struct ust_blobfs_file *fh, size_t size,
			  uint64_t offset, struct iovec *iov, int iovcnt, ust_blobfs_lend_cb cb,
			  void *arg);
/*
 * Give back what ust_blobfs_read_lend() lent (NULL: nothing), on the
 * metadata thread, before the file is released: until then a release that
 * would reclaim an unlinked file's data waits, and an unmount says -EBUSY.
 * The iovecs cb was given must not be used after it.
 */
void ust_blobfs_lend_release(struct ust_blobfs *fs, struct ust_blobfs_lend *lend);
/* Stores a write's bytes into iov[0, iovcnt) before returning: 0 or a negative errno. */
typedef int (*ust_blobfs_store_fn)(void *arg, const struct iovec *iov, int iovcnt);
/*
 * Zero-copy write, made at once where it can be: as ust_blobfs_write() of
 * size bytes at offset, but the bytes are not in memory yet: store puts
 * them straight into the bdev's memory where they belong
 * (ust_blob_write_fill()), and the result is returned, as a write's:
 * size, or an error (store's own, if it failed). -EAGAIN: not in place now
 * (unaligned to the io unit, past the file's allocated space or over a
 * hole, over a write or truncate still in flight, a set-id bit to drop,
 * O_APPEND); -ENOTSUP: not on the metadata thread, or the bdev cannot
 * lend. With those two store was not called: use ust_blobfs_write().
 */
int64_t ust_blobfs_write_fill(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			      struct ust_blobfs_file *fh, size_t size, uint64_t offset,
			      ust_blobfs_store_fn store, void *arg);
/* O_APPEND handles write at the end of file whatever offset says. */
void ust_blobfs_write(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
		      struct ust_blobfs_file *fh, const void *buf, size_t size, uint64_t offset,
		      ust_blobfs_size_cb cb, void *arg);
/* Sync this file's data and metadata; durable when cb reports 0. */
void ust_blobfs_flush(struct ust_blobfs *fs, struct ust_blobfs_file *fh, ust_blobfs_op_cb cb,
		      void *arg);
void ust_blobfs_fsync(struct ust_blobfs *fs, struct ust_blobfs_file *fh, bool datasync,
		      ust_blobfs_op_cb cb, void *arg);
/* The last release of an unlinked file frees its blob. fh is gone afterwards. */
void ust_blobfs_release(struct ust_blobfs *fs, struct ust_blobfs_file *fh, ust_blobfs_op_cb cb,
			void *arg);
/*
 * mode 0 and UST_BLOBFS_FALLOC_KEEP_SIZE allocate every cluster of [offset,
 * offset + length) (later writes there cannot fail with -ENOSPC; -ENOSPC if
 * the range does not fit); PUNCH_HOLE | KEEP_SIZE zeroes the range and
 * releases its whole clusters. Durable when cb reports success.
 */
void ust_blobfs_fallocate(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			  struct ust_blobfs_file *fh, int mode, uint64_t offset, uint64_t length,
			  ust_blobfs_op_cb cb, void *arg);

/* ---- directories ------------------------------------------------------------- */

void ust_blobfs_opendir(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			ust_blobfs_ino ino, ust_blobfs_open_cb cb, void *arg);

/*
 * One readdir result. next_offset is what to pass to continue after this
 * entry (FUSE's off). attr is set only for readdirplus; then each entry the
 * fill function accepts other than "." and ".." counts as one lookup.
 */
struct ust_blobfs_dirent {
	ust_blobfs_ino ino;
	uint32_t type; /* DT_* */
	const char *name;
	uint64_t next_offset;
	const struct ust_blobfs_attr *attr;
};
/* Return 0 to take the entry and continue, non-zero to stop without taking it. */
typedef int (*ust_blobfs_fill_fn)(void *fill_arg, const struct ust_blobfs_dirent *d);

/*
 * Entries after offset (0: from the start), in a stable order: entries
 * added or removed meanwhile never make another one repeat or vanish.
 * cb(arg, rc) after the last entry or the first refused one.
 */
void ust_blobfs_readdir(struct ust_blobfs *fs, struct ust_blobfs_file *dh, uint64_t offset,
			bool plus, ust_blobfs_fill_fn fill, void *fill_arg, ust_blobfs_op_cb cb,
			void *arg);
void ust_blobfs_releasedir(struct ust_blobfs *fs, struct ust_blobfs_file *dh,
			   ust_blobfs_op_cb cb, void *arg);

void ust_blobfs_statfs(struct ust_blobfs *fs, ust_blobfs_statfs_cb cb, void *arg);

/* ---- extended attributes (user.* only) ------------------------------------- */

void ust_blobfs_setxattr(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			 ust_blobfs_ino ino, const char *name, const void *value, size_t size,
			 int flags, ust_blobfs_op_cb cb, void *arg);
/* size 0: result is the value's length. */
void ust_blobfs_getxattr(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			 ust_blobfs_ino ino, const char *name, void *buf, size_t size,
			 ust_blobfs_size_cb cb, void *arg);
/* NUL-separated names; size 0: result is the length needed. */
void ust_blobfs_listxattr(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			  ust_blobfs_ino ino, char *buf, size_t size, ust_blobfs_size_cb cb,
			  void *arg);
void ust_blobfs_removexattr(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			    ust_blobfs_ino ino, const char *name, ust_blobfs_op_cb cb, void *arg);

/* ---- paths ------------------------------------------------------------------- */

/*
 * Absolute paths ("/a/b"). Symlinks in the middle of a path are followed
 * (at most 40: -ELOOP); the last component is followed by open and stat
 * (not with O_NOFOLLOW: -ELOOP on a symlink) and never by the others.
 * A handle from path_open is a normal handle: read, write, fsync, release.
 */
void ust_blobfs_path_open(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			  const char *path, int flags, uint32_t mode, ust_blobfs_open_cb cb,
			  void *arg);
void ust_blobfs_path_stat(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			  const char *path, ust_blobfs_attr_cb cb, void *arg);
void ust_blobfs_path_mkdir(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			   const char *path, uint32_t mode, ust_blobfs_op_cb cb, void *arg);
void ust_blobfs_path_unlink(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			    const char *path, ust_blobfs_op_cb cb, void *arg);
void ust_blobfs_path_rmdir(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			   const char *path, ust_blobfs_op_cb cb, void *arg);
void ust_blobfs_path_rename(struct ust_blobfs *fs, const struct ust_blobfs_ctx *ctx,
			    const char *from, const char *to, uint32_t flags, ust_blobfs_op_cb cb,
			    void *arg);

/* The inode a handle refers to. */
ust_blobfs_ino ust_blobfs_file_ino(const struct ust_blobfs_file *fh);

#ifdef __cplusplus
}
#endif

#endif
