/*
 * ustor FUSE mounts: a blobfs file system (ustor/blobfs.h) on a bdev,
 * served to the kernel through libfuse3's low-level API.
 *
 * Threading:
 *  - ust_fuse_mount(), ust_fuse_umount() and the list/lookup calls run on the
 *    app thread; every callback runs there too.
 *  - Each mount gets its own ust_thread (placed on the least-loaded reactor):
 *    it is the blobfs metadata thread and runs every FUSE operation.
 *    Requests are read from the kernel off the reactors (fuse/README.md).
 *
 * Life cycle: a mount is live once its callback reports 0 (the kernel mount
 * exists: `ls MOUNTPOINT` works). It ends by ust_fuse_umount() or when the
 * kernel side goes away (fusermount3 -u MOUNTPOINT); either way every
 * in-flight request is answered, handles the kernel never released are
 * released, blobfs is unmounted (blobstore unloaded cleanly) and only then
 * are the callbacks called and the mount freed.
 *
 * Errors are negative errno.
 */
#ifndef USTOR_FUSE_H
#define USTOR_FUSE_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ust_fuse_mount;

/*
 * The most inodes a file system can be formatted with: the blobstore's
 * limit on blob slots per store (docs/blobstore-format.md section 2).
 */
#define UST_FUSE_MAX_INODES (1u << 24)

enum ust_fuse_format {
	UST_FUSE_FORMAT_NEVER,    /* mount what is there */
	UST_FUSE_FORMAT_ALWAYS,   /* make a new, empty file system first */
	UST_FUSE_FORMAT_IF_EMPTY, /* format only if the bdev's first 1 MiB is all zero */
};

typedef void (*ust_fuse_mount_cb)(void *arg, struct ust_fuse_mount *m, int rc);
typedef void (*ust_fuse_op_cb)(void *arg, int rc);

struct ust_fuse_mount_opts {
	const char *bdev_name;  /* required */
	const char *mountpoint; /* required: an existing directory */
	/*
	 * Comma-separated options: libfuse's and the kernel's (allow_other,
	 * default_permissions, ro, fsname=, max_read=, ...) plus ustor's own:
	 * attr_timeout=SEC, entry_timeout=SEC, negative_timeout=SEC (kernel
	 * cache lifetimes, default 86400: only the mount changes the file
	 * system), writeback_cache, sync_interval_ms=N. NULL: none.
	 */
	const char *options;
	enum ust_fuse_format format;
	uint32_t cluster_size; /* format only; 0: blobfs's default */
	/*
	 * Format only: inode (blob slot) count of a new store, 1 ..
	 * UST_FUSE_MAX_INODES, else -EINVAL; 0: blobfs's default
	 * (ustor/blobfs.h). Adding a file system to another owner's store
	 * keeps that store's slots.
	 */
	uint32_t max_inodes;
	/* Format only: allocate the metadata region at format (ust_blobfs_opts). */
	bool prealloc_md;
	/*
	 * Called (app thread) when the mount ended without ust_fuse_umount():
	 * the kernel side was unmounted. rc is the teardown's result (0: the
	 * blobstore was unloaded cleanly). m is freed when it returns.
	 */
	void (*ended_cb)(void *arg, struct ust_fuse_mount *m, int rc);
	void *ended_arg;
};

void ust_fuse_mount_opts_init(struct ust_fuse_mount_opts *opts);

/*
 * Mount. -EEXIST something is already mounted by us at mountpoint; -ENODEV
 * no such bdev; -EINVAL bad options; blobfs's mount/format errors; the
 * kernel mount's errno.
 */
void ust_fuse_mount(const struct ust_fuse_mount_opts *opts, ust_fuse_mount_cb cb, void *arg);

/*
 * Unmount. force false: like umount(2), -EBUSY (and nothing changes) while
 * the kernel still has files of the mount open. force true: the kernel
 * mount is detached and its connection aborted whatever is open (processes
 * still using it get ENOTCONN); used at shutdown. A second call while one
 * is in progress joins it.
 */
void ust_fuse_umount(struct ust_fuse_mount *m, bool force, ust_fuse_op_cb cb, void *arg);

/* Force-unmount every mount; cb(arg, first error) once all are gone. */
void ust_fuse_umount_all(ust_fuse_op_cb cb, void *arg);

struct ust_fuse_mount *ust_fuse_mount_first(void);
struct ust_fuse_mount *ust_fuse_mount_next(struct ust_fuse_mount *m);
struct ust_fuse_mount *ust_fuse_mount_find(const char *mountpoint);

const char *ust_fuse_mount_get_bdev_name(const struct ust_fuse_mount *m);
const char *ust_fuse_mount_get_mountpoint(const struct ust_fuse_mount *m);
const char *ust_fuse_mount_get_options(const struct ust_fuse_mount *m); /* "" if none */
enum ust_fuse_format ust_fuse_mount_get_format(const struct ust_fuse_mount *m);
uint32_t ust_fuse_mount_get_cluster_size(const struct ust_fuse_mount *m);
uint32_t ust_fuse_mount_get_max_inodes(const struct ust_fuse_mount *m); /* as given */
bool ust_fuse_mount_get_prealloc_md(const struct ust_fuse_mount *m);
/* True while the mount serves requests (not starting, not ending). */
bool ust_fuse_mount_is_live(const struct ust_fuse_mount *m);

/* Request kinds counted apart: FUSE opcodes below this (linux/fuse.h). */
#define UST_FUSE_OPCODES 64

struct ust_fuse_mount_stats {
	uint64_t requests;      /* requests taken from the kernel */
	/* of requests, by FUSE opcode (ust_fuse_opcode_name); higher ones are in [0] */
	uint64_t requests_by_op[UST_FUSE_OPCODES];
	uint64_t in_flight;     /* requests not answered yet */
	uint64_t errors;        /* requests answered with an error */
	uint64_t bytes_read;
	uint64_t bytes_read_lent; /* of bytes_read: answered from blobfs's lent memory (no copy of ours) */
	/* READs whose answer a worker off the reactors wrote (the kernel's copy made there) */
	uint64_t reads_replied_off;
	uint64_t bytes_written;
	/* of bytes_written: stored straight into blobfs's lent memory (no copy of ours) */
	uint64_t bytes_written_lent;
	uint64_t max_write;     /* largest write request seen */
	uint64_t max_read;      /* largest read request seen */
	uint64_t open_handles;  /* files and directories open */
};
/* Read racily: a snapshot for monitoring. */
void ust_fuse_mount_get_stats(const struct ust_fuse_mount *m, struct ust_fuse_mount_stats *st);
/* The protocol's name of a FUSE opcode ("LOOKUP", "WRITE"); NULL if it has none. */
const char *ust_fuse_opcode_name(uint32_t opcode);

#ifdef __cplusplus
}
#endif

#endif
