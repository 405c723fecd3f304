/*
 * Private to the file bdev modules (the .c files of bdev/file): a bdev over a regular
 * file or a block device, served by one of two kernel interfaces (libaio or
 * io_uring). The shared part (file_disk.c) opens the file, decides the block
 * size and O_DIRECT, registers the bdev and turns every I/O into a struct
 * file_io; a backend (file_aio.c, file_uring.c) owns one kernel queue per
 * thread and moves file_ios through it. Operations the backend cannot do
 * asynchronously go to the offload worker (file_offload.c), never to a
 * reactor.
 */
#ifndef USTOR_BDEV_FILE_INTERNAL_H
#define USTOR_BDEV_FILE_INTERNAL_H

#include <libaio.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "ustor/bdev_module.h"
#include "ustor/thread.h"
#include "ustor/worker.h"

#include "bdev_file.h"

/* Iovecs per kernel submission; longer I/O goes in several slices. */
#define FILE_IO_SLICE_IOVS 8
/* Per-thread kernel queue depth (aio context and uring ring). */
#define FILE_QUEUE_DEPTH 256

enum file_op {
	FILE_OP_READ,
	FILE_OP_WRITE,
	FILE_OP_FLUSH,
	FILE_OP_UNMAP,
	FILE_OP_WRITE_ZEROES,
};

struct file_disk;
struct file_io;

/* The offload worker's job; lives inside struct file_io. */
struct file_offload_job {
	int fd;
	enum file_op op;
	uint64_t offset;
	uint64_t len;
	int result; /* 0 or -errno */
	struct ust_thread *thread;
	void (*done)(struct file_offload_job *job);
	STAILQ_ENTRY(file_offload_job) link;
};

struct file_io {
	struct file_disk *disk;
	enum file_op op;
	uint64_t offset; /* bytes */
	uint64_t len;    /* bytes */
	uint64_t done;   /* bytes transferred so far (read/write) */
	int slice_cnt;
	struct iovec slice[FILE_IO_SLICE_IOVS];
	union {
		struct iocb iocb;             /* aio */
		struct file_offload_job job;  /* offloaded ops */
		struct {                      /* a write on the copy engine (file_copy.c) */
			struct ust_worker_job job;
			struct ust_thread *thread; /* the submitter, where it completes */
			int64_t result;            /* file_map_copy()'s */
		} copy;
	} u;
};

/*
 * A backend. submit() takes a file_io on the calling thread's group
 * channel context and returns 0 (the backend will call file_io_done()),
 * -EAGAIN (queue full: the core retries), or another -errno (failed).
 */
struct file_backend {
	const char *name;
	struct ust_bdev_module *module;
	void *group_device; /* io_device of the per-thread queue */
	int (*submit)(void *group_ctx, struct file_io *fio);
	/*
	 * 0 if the kernel gives this process the backend's queues. Queues are
	 * made per thread when a channel is first needed, long after the bdev
	 * exists; where they are refused (sysctl kernel.io_uring_disabled, a
	 * container's seccomp profile, fs.aio-max-nr used up) every channel
	 * would fail and the bdev be unusable, so create tries one first and
	 * fails with the kernel's reason instead.
	 */
	int (*probe)(void);
	bool readonly_option; /* bdev_<name>_create takes "readonly" */
};

struct file_disk {
	struct ust_bdev bdev;
	const struct file_backend *backend;
	char *filename;
	int fd;
	bool direct;
	bool readonly;
	bool is_blockdev;
	bool user_block_size; /* block_size given at creation */
	bool no_aio_fdsync;   /* the kernel refused IOCB_CMD_FDSYNC: offload it */
	/* on tmpfs/ramfs: flushes complete at once, reads/writes are copies (file_io_copy_inline) */
	bool in_memory;
	struct file_map *map; /* tmpfs: the file mapped (file_map.c); else NULL */
	_Atomic uint64_t copy_engine_writes; /* slices of writes the copy engine stored */
	TAILQ_ENTRY(file_disk) link;
};

/* Channel context of a disk: a reference to the thread's backend queue. */
struct file_disk_channel {
	struct ust_io_channel *group_ch;
};

/* ---- file_map.c --------------------------------------------------------- */

/* Map the first size bytes of disk->fd (a tmpfs file): sets disk->map. */
int file_map_open(struct file_disk *disk, uint64_t size);
void file_map_close(struct file_disk *disk);
/*
 * Copy fio's current slice through the mapping: bytes copied, 0 when it must
 * use preadv/pwritev instead (outside the mapping, or a read of a chunk with
 * a hole), or -errno (ENOSPC allocating a write's chunk).
 */
int64_t file_map_copy(struct file_io *fio);
/*
 * ust_bdev_read_lend() and ust_bdev_write_lend() for a file bdev (its
 * ctxt): the mapping's address of [offset, offset + len); -ENOTSUP when the
 * file is not mapped, -EAGAIN when part of the range lies outside the
 * mapping, or is a hole (read) or cannot be backed (write).
 */
int file_map_lend(void *ctxt, uint64_t offset, uint64_t len, bool write, void **data);
/* [offset, offset + len) may lose its pages (unmap, write_zeroes): allocate before storing. */
void file_map_forget(struct file_disk *disk, uint64_t offset, uint64_t len);

/* ---- file_copy.c -------------------------------------------------------- */

/*
 * Take a reference to the copy engine, starting it: 0, or -ENODEV when
 * every CPU is a reactor's (no engine; copies stay inline), or -errno.
 */
int file_copy_start(void);
void file_copy_stop(void);
/*
 * Hand a write's current slice to the engine: true if it took it (the slice
 * then completes through file_io_copied() on this thread), false to copy it
 * here (no engine, a small slice, or the engine's queue full).
 */
bool file_copy_submit(struct file_io *fio);

/* ---- file_disk.c -------------------------------------------------------- */

/* The engine copied fio's slice: res as file_map_copy() returned it. */
void file_io_copied(struct file_io *fio, int64_t res);

/* Fill fio->slice with the next part of the I/O's data (from fio->done). */
void file_io_build_slice(struct file_io *fio);
/* Bytes in fio->slice. */
uint64_t file_io_slice_len(const struct file_io *fio);
/*
 * The kernel finished one submission of fio with res (bytes or -errno).
 * Resubmits the rest of a short transfer, else completes the bdev I/O.
 */
void file_io_done(struct file_io *fio, int64_t res);
struct ust_bdev_io *file_io_to_bdev_io(struct file_io *fio);
int file_disk_create(const struct file_backend *backend, const struct ust_bdev_file_opts *opts,
		     struct ust_bdev **bdevp);
int file_disk_delete(const struct file_backend *backend, const char *name,
		     void (*cb)(void *ctx, int rc), void *ctx);
int file_disk_rescan(const struct file_backend *backend, const char *name);
int file_get_ctx_size(void);
/* Module-wide init and fini shared by both backends (the offload worker). */
int file_module_common_init(void);
void file_module_common_fini(void);

/* ---- file_rpc.c --------------------------------------------------------- */

/* The bodies of bdev_<backend>_create, _delete and _rescan. */
struct ust_rpc_request;
void file_rpc_create(const struct file_backend *backend, struct ust_rpc_request *req,
		     const json_t *params);
void file_rpc_delete(const struct file_backend *backend, struct ust_rpc_request *req,
		     const json_t *params);
void file_rpc_rescan(const struct file_backend *backend, struct ust_rpc_request *req,
		     const json_t *params);

/* ---- file_offload.c ----------------------------------------------------- */

/* Start the worker (refcounted; one worker for all file bdevs). */
int file_offload_start(void);
void file_offload_stop(void);
/* Run job on the worker; job->done runs later on job->thread (the caller's). */
void file_offload_submit(struct file_offload_job *job);
/* Offload a flush/unmap/write_zeroes file_io (for backends that cannot do it). */
void file_io_offload(struct file_io *fio);

#endif
