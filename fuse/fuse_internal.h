/*
 * fuse/ private header: the mount structure shared by the mount life cycle
 * (fuse_mount.c), the request handlers (fuse_ops.c) and the transport that
 * carries requests in and replies out (fuse_dev.c for /dev/fuse).
 */
#ifndef USTOR_FUSE_INTERNAL_H
#define USTOR_FUSE_INTERNAL_H

#define FUSE_USE_VERSION 314

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

#include <fuse_lowlevel.h>

#include "ustor/blobfs.h"
#include "ustor/env.h"
#include "ustor/fuse.h"
#include "ustor/thread.h"
#include "ustor/worker.h"

/* Requests up to 1 MiB of data each way (max_write, max_read, readahead). */
#define FMNT_MAX_IO (1u << 20)
/*
 * A pooled buffer (fuse_buf.c): the largest request the kernel sends (a
 * WRITE of FMNT_MAX_IO plus its headers) read at a page offset chosen by the
 * transport, or the data of a READ.
 */
#define FMNT_BUF_SIZE (FMNT_MAX_IO + 8192u)

struct fmnt;

/* The most pieces a READ is answered from (the memory blobfs lends). */
#define FMNT_REPLY_IOV 32

/*
 * A READ answered off the mount's thread (fmnt_transport_ops.reply_async):
 * the kernel's copy of the data into the reader's pages is made there, not
 * on the reactor's core. Filled by the caller except job and rc.
 */
struct fmnt_areply {
	struct ust_worker_job job; /* the transport's */
	struct fmnt *m;            /* the transport's */
	uint64_t unique;           /* the request's, from its header (fmnt_note_request) */
	const struct iovec *iov;   /* the data: it must stay put until done runs */
	int iovcnt;                /* at most FMNT_REPLY_IOV */
	size_t len;                /* the bytes in iov */
	int rc;                    /* 0: the kernel took the answer; else the negative errno */
	/*
	 * On the mount's thread, once the answer is written (or refused):
	 * free libfuse's request without answering it (fuse_reply_none).
	 */
	void (*done)(struct fmnt_areply *r);
};

/*
 * The transport: how requests arrive and how the kernel mount is made and
 * undone. Requests are handed to fuse_session_process_buf() on the mount's
 * ust_thread, whose handlers (fuse_ops.c) call blobfs there and then. Replies
 * leave through libfuse's fuse_reply_*(), from the mount's thread.
 *
 * Events reach the mount's thread in this order (fmnt_transport_*(), called
 * on that thread): mounted(rc) once; if rc was 0, stopped() once no more
 * requests will be dispatched (after stop(), possibly from inside stop(),
 * or when the kernel ends the session); closed() after close(). After
 * posting closed the transport touches nothing of the mount again.
 */
struct fmnt_transport_ops {
	const char *name;
	/* Make the kernel mount of m->se at m->mountpoint and start serving. */
	int (*start)(struct fmnt *m);
	/* Stop taking requests (no-op once stopped). */
	void (*stop)(struct fmnt *m);
	/*
	 * All dispatched requests are answered: unmount the kernel side (lazy
	 * detach + abort of the connection), destroy the session, free the
	 * transport's state, post closed.
	 */
	void (*close)(struct fmnt *m);
	/*
	 * Optional: take r and write its answer from another thread; false:
	 * not now (no such thread, or it has enough in hand), answer inline.
	 * The answer does not pass through fmnt_patch_reply: only READ's are
	 * taken, which have nothing to patch.
	 */
	bool (*reply_async)(struct fmnt *m, struct fmnt_areply *r);
};

extern const struct fmnt_transport_ops g_fmnt_dev_transport;
/*
 * Mount thread, inside a handler: take over the buffer the current request
 * was read into, if p points into it (a WRITE's payload), so the data is
 * used where the kernel put it. The taker returns it with
 * fbuf_put(m, buf, FMNT_BUF_SIZE) once the request is answered; the
 * transport reads the next request into another buffer. NULL if p is not
 * in the transport's buffer.
 */
void *fmnt_rx_take(struct fmnt *m, const void *p);
/*
 * A WRITE whose payload is at least this big may arrive with its payload
 * still in the transport's pipe (fuse_dev.c, splice mode).
 */
#define FMNT_RX_PIPE_MIN (64u * 1024)
/*
 * Mount thread, inside the handler of a WRITE read at p: the bytes of its
 * payload that are still in the transport's pipe, not in the receive
 * buffer (0 if none). The handler must take them with fmnt_rx_fill before
 * it returns; whatever it leaves is discarded.
 */
size_t fmnt_rx_pending(struct fmnt *m, const void *p);
/*
 * Move the pending payload into iov[0, iovcnt), whose total must be its
 * size exactly: 0, or -EINVAL (wrong size), -EFAULT (memory that cannot be
 * stored to), -EIO (the pipe came up short).
 */
int fmnt_rx_fill(struct fmnt *m, const struct iovec *iov, int iovcnt);
/*
 * Every transport calls these (fuse_proto.c): fmnt_note_request with each
 * raw request just before fuse_session_process_buf, fmnt_patch_reply with
 * each raw reply just before it is written. They carry what libfuse 3.14
 * drops or cannot say.
 */
void fmnt_note_request(struct fmnt *m, const void *req, size_t len);
void fmnt_patch_reply(struct fmnt *m, struct iovec *iov, int count);

/* An open file or directory: FUSE's fi->fh. Owned by the mount's thread. */
struct fhandle {
	struct ust_blobfs_file *bfh;
	bool dir;
	TAILQ_ENTRY(fhandle) link;
};

enum fmnt_state {
	FM_WAIT_EXAMINE,
	FM_CHECK_EMPTY,
	FM_FORMAT,
	FM_MOUNT_FS,
	FM_NEW_SESSION,
	FM_START_TRANSPORT,
	FM_WAIT_MOUNTED,
	FM_LIVE,
	FM_STOPPING,
	FM_DRAINING,
	FM_CLOSING,
	FM_RELEASE_HANDLES,
	FM_UNMOUNT_FS,
	FM_DONE,
};

struct fmnt_waiter {
	ust_fuse_op_cb cb;
	void *arg;
	struct fmnt_waiter *next;
};

struct fmnt {
	/* Identity: set at creation, immutable. */
	char *bdev_name;
	char *mountpoint;
	char *options;      /* as given (for save_config) */
	enum ust_fuse_format format;
	uint32_t cluster_size;
	uint32_t max_inodes;
	bool prealloc_md;
	struct ust_ring *bufs; /* recycled large data buffers (fuse_buf.c) */

	/* From the options. */
	bool default_permissions;
	bool writeback_cache;
	double attr_timeout;
	double entry_timeout;
	double negative_timeout;
	uint32_t sync_interval_ms;
	int fuse_argc;
	char **fuse_argv; /* what libfuse gets: argv[0], -o, its options */

	struct ust_thread *owner;  /* the app thread: callbacks */
	struct ust_thread *thread; /* the mount's thread: blobfs and every request */

	/* ---- mount thread only ---- */
	enum fmnt_state state;
	int rc;
	bool was_live;
	bool do_format; /* FM_CHECK_EMPTY's verdict */
	bool stop_requested; /* an unmount or a forced stop was asked for */
	bool transport_stopped;
	struct ust_blobfs *fs;
	/* Reads are answered from blobfs's lent memory (ust_blobfs_read_lend)
	 * until blobfs says it cannot lend at all (-ENOTSUP). */
	bool no_read_lend;
	/* Likewise for writes stored in place (ust_blobfs_write_fill): then
	 * the transport stops receiving large WRITEs by splice. */
	bool no_write_lend;
	bool reply_fault_logged; /* fuse_dev.c: a reply from lent memory faulted */
	struct fuse_session *se;
	const struct fmnt_transport_ops *tops;
	void *tctx; /* the transport's state */
	uint64_t completed;
	/*
	 * The protocol beyond libfuse 3.14 (fmnt_note_request and
	 * fmnt_patch_reply). reply_open_flags: open flags it has no
	 * fuse_file_info field for (FOPEN_PARALLEL_DIRECT_WRITES), set around
	 * fuse_reply_open/create, which write on this thread at once.
	 * reply_init_flags: INIT flags it does not know, set by ll_init for
	 * the answer written right after it. kernel_init_flags: what the
	 * kernel's INIT offered. req_kill_suidgid: the request being
	 * processed asks to drop set-user-ID/set-group-ID (KILL_SUIDGID).
	 */
	uint32_t reply_open_flags;
	uint32_t reply_init_flags;
	uint32_t kernel_init_flags;
	bool req_kill_suidgid;
	uint64_t req_unique; /* the request being processed: its header's unique */
	TAILQ_HEAD(, fhandle) handles;
	/* FM_CHECK_EMPTY */
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;
	void *probe_buf;
	uint32_t probe_len;

	/* ---- app thread only ---- */
	ust_fuse_mount_cb mount_cb;
	void *mount_arg;
	struct fmnt_waiter *waiters; /* ust_fuse_umount callers */
	bool umount_pending;         /* a non-forced kernel unmount is being tried */
	bool finish_deferred;        /* torn down while that try still points at us */
	bool ending;                 /* teardown started: no more umount tries */
	struct ust_bdev_desc *watch; /* while live: told when the bdev is being removed */
	void (*ended_cb)(void *arg, struct ust_fuse_mount *m, int rc);
	void *ended_arg;
	TAILQ_ENTRY(fmnt) link;

	/* ---- any thread ---- */
	atomic_bool live;
	atomic_bool init_done; /* the kernel's INIT was answered */
	atomic_uint_fast64_t dispatched; /* requests handed to blobfs */
	atomic_uint_fast64_t requests_by_op[UST_FUSE_OPCODES]; /* every request, by kind */
	atomic_uint_fast64_t errors;
	atomic_uint_fast64_t bytes_read;
	atomic_uint_fast64_t bytes_read_lent;
	atomic_uint_fast64_t reads_replied_off; /* READs whose answer a transport's worker wrote */
	atomic_uint_fast64_t bytes_written;
	atomic_uint_fast64_t bytes_written_lent;
	atomic_uint_fast64_t max_write;
	atomic_uint_fast64_t max_read;
	atomic_uint_fast64_t open_handles;
};

/* fuse_mount.c: transport events, posted to the mount's thread. */
void fmnt_transport_mounted(struct fmnt *m, int rc);
void fmnt_transport_stopped(struct fmnt *m);
void fmnt_transport_closed(struct fmnt *m);
/* Run fn(m) on the mount's thread; retries while the ring is full (non-reactor threads only). */
void fmnt_post(struct fmnt *m, ust_msg_fn fn);

/* fuse_buf.c: read/write data buffers; put with the size given to get. */
int fbuf_pool_init(struct fmnt *m);
void fbuf_pool_fini(struct fmnt *m);
void *fbuf_get(struct fmnt *m, size_t size);
void fbuf_put(struct fmnt *m, void *buf, size_t size);
/* A request handed to blobfs is answered (mount thread). */
void fmnt_request_done(struct fmnt *m);

/* fuse_ops.c */
extern const struct fuse_lowlevel_ops g_fmnt_ll_ops;
/* Release every handle the kernel left open, one by one; cb when none is left. */
void fmnt_release_all(struct fmnt *m, void (*cb)(struct fmnt *m));

#endif
