/*
 * The life cycle of a FUSE mount: one state machine (fmnt_step) on the
 * mount's own ust_thread takes it from "bdev name" to "serving requests"
 * (wait for examine, optionally check the bdev is blank, format or mount
 * blobfs, create the libfuse session, start the transport, wait for the
 * kernel mount) and back down (stop the transport, answer every request in
 * flight, unmount the kernel side, release what the kernel left open,
 * unmount blobfs, exit the thread).
 *
 * Guarantees:
 *  - Teardown starts from any of: ust_fuse_umount(), a failure during
 *    mount, or the kernel ending the session (fusermount3 -u). It always
 *    runs to the end, and the mount's callbacks run (on the app thread) only
 *    after blobfs is unmounted and the thread has exited its work.
 *  - A non-forced unmount is tried with umount2(2) (root) or fusermount3 -u
 *    (other users) on a helper pthread, so a busy mount answers -EBUSY and
 *    keeps serving; only success starts the teardown.
 *  - Nothing here blocks a reactor: the kernel mount/unmount calls run on
 *    the transport's helper pthread or on the umount helper here.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ustor/bdev.h"
#include "ustor/env.h"
#include "ustor/log.h"

#include "fuse_internal.h"

#define PROBE_BYTES (1u << 20)
/* Default attr/entry/negative timeout, seconds (see fmnt_parse_options). */
#define FMNT_CACHE_TIMEOUT 86400.0

static TAILQ_HEAD(, fmnt) g_mounts = TAILQ_HEAD_INITIALIZER(g_mounts);

static void fmnt_step(struct fmnt *m);

/* ---- options ---------------------------------------------------------------- */

static int parse_double(const char *s, double *out)
{
	char *end;
	double v;

	v = strtod(s, &end);
	if (end == s || *end != '\0' || v < 0 || v > 86400.0 * 365) {
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int argv_add(struct fmnt *m, const char *s)
{
	char **nv = realloc(m->fuse_argv, (size_t)(m->fuse_argc + 2) * sizeof(char *));

	if (nv == NULL) {
		return -ENOMEM;
	}
	m->fuse_argv = nv;
	nv[m->fuse_argc] = strdup(s);
	if (nv[m->fuse_argc] == NULL) {
		return -ENOMEM;
	}
	m->fuse_argc++;
	nv[m->fuse_argc] = NULL;
	return 0;
}

/* Append s to the comma-separated list in *list. */
static int list_add(char **list, const char *s)
{
	size_t a = *list != NULL ? strlen(*list) : 0, b = strlen(s);
	char *n = realloc(*list, a + b + 2);

	if (n == NULL) {
		return -ENOMEM;
	}
	if (a > 0) {
		n[a++] = ',';
	}
	memcpy(n + a, s, b + 1);
	*list = n;
	return 0;
}

/* Split the -o string into ours and libfuse's; build libfuse's argv. */
static int fmnt_parse_options(struct fmnt *m)
{
	char *copy, *tok, *save = NULL, *fuse_opts = NULL;
	bool has_fsname = false, has_subtype = false;
	char fsname[320];
	double d = 0;
	int rc = 0;

	/*
	 * Cache entries, attributes and absent names for a day: only this
	 * mount changes the file system while it is mounted (the store is held
	 * exclusively, blobfs's path API is not used on a mounted store), and
	 * the kernel updates or invalidates what its own requests change
	 * (creates undo negative entries, setattr/write refresh attributes).
	 * blobfs changes nothing by itself that the kernel has cached: its
	 * periodic flusher persists sizes and times the kernel already has.
	 * A change made from the daemon side would have to call
	 * fuse_lowlevel_notify_inval_inode/entry before it is answered. A short
	 * timeout costs a GETATTR or LOOKUP round trip per access once it
	 * lapses (libfuse's passthrough examples use a day for an exclusive
	 * mount too).
	 */
	m->attr_timeout = FMNT_CACHE_TIMEOUT;
	m->entry_timeout = FMNT_CACHE_TIMEOUT;
	m->negative_timeout = FMNT_CACHE_TIMEOUT;
	copy = strdup(m->options);
	if (copy == NULL) {
		return -ENOMEM;
	}
	for (tok = strtok_r(copy, ",", &save); tok != NULL && rc == 0;
	     tok = strtok_r(NULL, ",", &save)) {
		if (strncmp(tok, "attr_timeout=", 13) == 0) {
			rc = parse_double(tok + 13, &m->attr_timeout);
		} else if (strncmp(tok, "entry_timeout=", 14) == 0) {
			rc = parse_double(tok + 14, &m->entry_timeout);
		} else if (strncmp(tok, "negative_timeout=", 17) == 0) {
			rc = parse_double(tok + 17, &m->negative_timeout);
		} else if (strncmp(tok, "sync_interval_ms=", 17) == 0) {
			rc = parse_double(tok + 17, &d);
			if (rc == 0 && (d < 1 || d > 3600000)) {
				rc = -EINVAL;
			}
			m->sync_interval_ms = (uint32_t)d;
		} else if (strcmp(tok, "writeback_cache") == 0) {
			m->writeback_cache = true;
		} else if (strcmp(tok, "no_writeback_cache") == 0) {
			m->writeback_cache = false;
		} else {
			if (strcmp(tok, "default_permissions") == 0) {
				m->default_permissions = true;
			}
			if (strncmp(tok, "fsname=", 7) == 0) {
				has_fsname = true;
			}
			if (strncmp(tok, "subtype=", 8) == 0) {
				has_subtype = true;
			}
			rc = list_add(&fuse_opts, tok);
		}
		if (rc == -EINVAL) {
			UST_ERRLOG("%s: bad mount option '%s'\n", m->mountpoint, tok);
		}
	}
	free(copy);
	/*
	 * The writeback cache opens write-only files for reading too (the
	 * kernel reads partial pages): only sound when the kernel checks
	 * permissions, so it implies default_permissions.
	 */
	if (rc == 0 && m->writeback_cache && !m->default_permissions) {
		m->default_permissions = true;
		rc = list_add(&fuse_opts, "default_permissions");
	}
	if (rc == 0 && !has_fsname) {
		snprintf(fsname, sizeof(fsname), "fsname=ustor:%s", m->bdev_name);
		/* libfuse's option parser treats ',' and '\\' specially */
		rc = strpbrk(m->bdev_name, ",\\") != NULL ? 0 : list_add(&fuse_opts, fsname);
	}
	if (rc == 0 && !has_subtype) {
		rc = list_add(&fuse_opts, "subtype=ustor");
	}
	if (rc == 0) {
		rc = argv_add(m, "ustor");
	}
	if (rc == 0 && fuse_opts != NULL) {
		rc = argv_add(m, "-o");
		if (rc == 0) {
			rc = argv_add(m, fuse_opts);
		}
	}
	free(fuse_opts);
	return rc;
}

/* ---- the mount structure ------------------------------------------------------ */

static void fmnt_free(struct fmnt *m)
{
	int i;

	for (i = 0; i < m->fuse_argc; i++) {
		free(m->fuse_argv[i]);
	}
	free(m->fuse_argv);
	free(m->bdev_name);
	free(m->mountpoint);
	free(m->options);
	fbuf_pool_fini(m);
	free(m);
}

void fmnt_post(struct fmnt *m, ust_msg_fn fn)
{
	int rc;

	for (;;) {
		rc = ust_thread_send_msg(m->thread, fn, m);
		if (rc != -ENOMEM) {
			break;
		}
		usleep(100);
	}
	if (rc != 0) {
		UST_ERRLOG("%s: cannot reach the mount's thread: %s\n", m->mountpoint,
			   strerror(-rc));
	}
}

static void fmnt_send_owner(struct fmnt *m, ust_msg_fn fn)
{
	if (ust_thread_send_msg(m->owner, fn, m) != 0) {
		UST_ERRLOG("%s: cannot reach the app thread\n", m->mountpoint);
	}
}

/* ---- app-thread side ------------------------------------------------------------ */

static void fmnt_stop_msg(void *ctx);

/* Stop whatever is open (app thread): the kernel side is aborted, then torn down. */
static void fmnt_force_stop(struct fmnt *m)
{
	m->ending = true;
	if (ust_thread_send_msg(m->thread, fmnt_stop_msg, m) != 0) {
		UST_ERRLOG("%s: cannot reach the mount's thread\n", m->mountpoint);
	}
}

/*
 * The bdev is being removed (hot remove, bdev_*_delete): it will take no
 * more I/O, so the mount ends at once, forced as at shutdown. Waiting for
 * an unmount would hold the bdev, and the removal with it, forever; blobfs
 * lets go of what was not yet synced (ust_blobfs_unmount, -ENODEV).
 */
static void watch_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	struct fmnt *m = ctx;

	if (type != UST_BDEV_EVENT_REMOVE || m->ending) {
		return;
	}
	UST_WARNLOG("%s: bdev %s is being removed; unmounting (files still open there get "
		    "ENOTCONN)\n", m->mountpoint, m->bdev_name);
	fmnt_force_stop(m);
}

static void owner_mounted(void *ctx)
{
	struct fmnt *m = ctx;
	ust_fuse_mount_cb cb = m->mount_cb;
	int rc;

	m->mount_cb = NULL;
	UST_NOTICELOG("blobfs on %s mounted at %s\n", m->bdev_name, m->mountpoint);
	rc = ust_bdev_open_ext(m->bdev_name, false, watch_event, m, &m->watch);
	if (rc != 0) {
		m->watch = NULL;
		UST_WARNLOG("%s: cannot watch bdev %s for removal: %s\n", m->mountpoint,
			    m->bdev_name, strerror(-rc));
	}
	if (cb != NULL) {
		cb(m->mount_arg, (struct ust_fuse_mount *)m, 0);
	}
}

/* The teardown is complete: the mount's thread has exited its work. */
static void owner_finished(void *ctx)
{
	struct fmnt *m = ctx;
	struct fmnt_waiter *w, *next;
	int rc = m->rc;

	if (m->umount_pending) {
		/*
		 * A successful umount(2) ends the session, so the teardown can
		 * finish before the helper thread that made the call reports
		 * back; it still points at m. Finish when it does.
		 */
		m->finish_deferred = true;
		return;
	}
	TAILQ_REMOVE(&g_mounts, m, link);
	if (m->watch != NULL) {
		ust_bdev_close(m->watch);
		m->watch = NULL;
	}
	if (m->mount_cb != NULL) {
		/* never went live */
		m->mount_cb(m->mount_arg, NULL, rc != 0 ? rc : -EIO);
	} else {
		UST_NOTICELOG("blobfs on %s unmounted from %s%s\n", m->bdev_name, m->mountpoint,
			      rc == 0 ? "" : " (with errors)");
		if (m->waiters == NULL && m->ended_cb != NULL) {
			m->ended_cb(m->ended_arg, (struct ust_fuse_mount *)m, rc);
		}
	}
	for (w = m->waiters; w != NULL; w = next) {
		next = w->next;
		w->cb(w->arg, rc);
		free(w);
	}
	fmnt_free(m);
}

/* ---- the state machine (mount thread) ----------------------------------------- */

static void fmnt_fail(struct fmnt *m, int rc)
{
	if (m->rc == 0) {
		m->rc = rc;
	}
}

static void probe_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
}

static void probe_done(struct ust_bdev_io *io, int status, void *cb_arg)
{
	struct fmnt *m = cb_arg;
	const uint8_t *p = m->probe_buf;
	bool blank = true;
	uint32_t i;

	if (status != 0) {
		fmnt_fail(m, status);
	} else {
		for (i = 0; i < m->probe_len; i++) {
			if (p[i] != 0) {
				blank = false;
				break;
			}
		}
		m->do_format = blank;
		if (blank) {
			UST_NOTICELOG("bdev %s is blank: formatting it\n", m->bdev_name);
		}
	}
	ust_put_io_channel(m->ch);
	m->ch = NULL;
	ust_bdev_close(m->desc);
	m->desc = NULL;
	ust_dma_free(m->probe_buf);
	m->probe_buf = NULL;
	m->state = m->rc != 0 ? FM_DONE : m->do_format ? FM_FORMAT : FM_MOUNT_FS;
	fmnt_step(m);
}

/* Read the first MiB: all zero means nothing was ever written there. */
static int probe_start(struct fmnt *m)
{
	struct ust_bdev *bdev;
	uint64_t bytes;
	uint32_t bs;
	int rc;

	rc = ust_bdev_open_ext(m->bdev_name, false, probe_event, m, &m->desc);
	if (rc != 0) {
		return rc;
	}
	bdev = ust_bdev_desc_get_bdev(m->desc);
	bs = ust_bdev_get_block_size(bdev);
	bytes = ust_bdev_get_num_blocks(bdev) * bs;
	m->probe_len = bytes < PROBE_BYTES ? (uint32_t)bytes : PROBE_BYTES;
	m->probe_len -= m->probe_len % bs;
	m->ch = ust_bdev_get_io_channel(m->desc);
	m->probe_buf = ust_dma_malloc(m->probe_len > 0 ? m->probe_len : bs, 4096);
	if (m->ch == NULL || m->probe_buf == NULL || m->probe_len == 0) {
		rc = m->probe_len == 0 ? -EINVAL : -ENOMEM;
	} else {
		rc = ust_bdev_read_blocks(m->desc, m->ch, m->probe_buf, 0, m->probe_len / bs,
					  probe_done, m);
	}
	if (rc != 0) {
		if (m->ch != NULL) {
			ust_put_io_channel(m->ch);
			m->ch = NULL;
		}
		ust_dma_free(m->probe_buf);
		m->probe_buf = NULL;
		ust_bdev_close(m->desc);
		m->desc = NULL;
	}
	return rc;
}

static void fs_ready(void *arg, struct ust_blobfs *fs, int rc)
{
	struct fmnt *m = arg;

	if (rc == -ENODATA && m->state == FM_MOUNT_FS && m->format == UST_FUSE_FORMAT_IF_EMPTY) {
		/* A store without a file system (lvols only): blobfs adds one to it. */
		m->state = FM_FORMAT;
		fmnt_step(m);
		return;
	}
	if (rc != 0) {
		UST_ERRLOG("cannot %s blobfs on %s: %s\n",
			   m->state == FM_FORMAT ? "format" : "mount", m->bdev_name, strerror(-rc));
		fmnt_fail(m, rc);
		m->state = FM_DONE;
	} else {
		m->fs = fs;
		m->state = FM_NEW_SESSION;
	}
	fmnt_step(m);
}

static void fs_unmounted(void *arg, int rc)
{
	struct fmnt *m = arg;

	if (rc == -ENODEV) {
		UST_ERRLOG("%s: the device went away; unmounted without what was not yet synced\n",
			   m->mountpoint);
		fmnt_fail(m, rc);
	} else if (rc != 0) {
		UST_ERRLOG("%s: blobfs unmount failed: %s\n", m->mountpoint, strerror(-rc));
		fmnt_fail(m, rc);
	}
	m->fs = NULL;
	m->state = FM_DONE;
	fmnt_step(m);
}

static void handles_released(struct fmnt *m)
{
	m->state = FM_UNMOUNT_FS;
	fmnt_step(m);
}

static void fmnt_check_drained(struct fmnt *m)
{
	if (m->state == FM_DRAINING && m->completed == atomic_load(&m->dispatched)) {
		m->state = FM_CLOSING;
		fmnt_step(m);
	}
}

static void fmnt_step(struct fmnt *m)
{
	struct ust_blobfs_opts bo;
	int rc;

	switch (m->state) {
	case FM_WAIT_EXAMINE:
		/* (handled on the app thread before the mount thread runs) */
		m->state = FM_CHECK_EMPTY;
		/* fall through */
	case FM_CHECK_EMPTY:
		if (m->format != UST_FUSE_FORMAT_IF_EMPTY) {
			m->state = m->format == UST_FUSE_FORMAT_ALWAYS ? FM_FORMAT : FM_MOUNT_FS;
			fmnt_step(m);
			return;
		}
		rc = probe_start(m);
		if (rc != 0) {
			UST_ERRLOG("cannot read bdev %s: %s\n", m->bdev_name, strerror(-rc));
			fmnt_fail(m, rc);
			m->state = FM_DONE;
			fmnt_step(m);
		}
		return;
	case FM_FORMAT:
		ust_blobfs_opts_init(&bo);
		bo.cluster_size = m->cluster_size;
		bo.max_inodes = m->max_inodes;
		bo.prealloc_md = m->prealloc_md;
		if (m->sync_interval_ms != 0) {
			bo.sync_interval_ms = m->sync_interval_ms;
		}
		ust_blobfs_format(m->bdev_name, &bo, NULL, fs_ready, m);
		return;
	case FM_MOUNT_FS:
		ust_blobfs_opts_init(&bo);
		if (m->sync_interval_ms != 0) {
			bo.sync_interval_ms = m->sync_interval_ms;
		}
		ust_blobfs_mount(m->bdev_name, &bo, fs_ready, m);
		return;
	case FM_NEW_SESSION: {
		struct fuse_args args = FUSE_ARGS_INIT(m->fuse_argc, m->fuse_argv);

		m->se = fuse_session_new(&args, &g_fmnt_ll_ops, sizeof(g_fmnt_ll_ops), m);
		/* libfuse rewrites args into its own copy (ours, m->fuse_argv, stays ours) */
		if (args.allocated) {
			fuse_opt_free_args(&args);
		}
		if (m->se == NULL) {
			UST_ERRLOG("%s: libfuse refused the options '%s'\n", m->mountpoint,
				   m->options);
			fmnt_fail(m, -EINVAL);
			m->state = FM_UNMOUNT_FS;
		} else {
			m->state = FM_START_TRANSPORT;
		}
		fmnt_step(m);
		return;
	}
	case FM_START_TRANSPORT:
		m->tops = &g_fmnt_dev_transport;
		rc = m->tops->start(m);
		if (rc != 0) {
			UST_ERRLOG("%s: cannot start the FUSE transport: %s\n", m->mountpoint,
				   strerror(-rc));
			fuse_session_destroy(m->se);
			m->se = NULL;
			fmnt_fail(m, rc);
			m->state = FM_UNMOUNT_FS;
			fmnt_step(m);
			return;
		}
		m->state = FM_WAIT_MOUNTED;
		return;
	case FM_WAIT_MOUNTED:
		return; /* fmnt_transport_mounted() */
	case FM_LIVE:
		if (m->stop_requested) {
			m->state = FM_STOPPING;
			fmnt_step(m);
		}
		return;
	case FM_STOPPING:
		if (!m->transport_stopped) {
			m->tops->stop(m);
			return; /* fmnt_transport_stopped() */
		}
		m->state = FM_DRAINING;
		fmnt_check_drained(m);
		return;
	case FM_DRAINING:
		return; /* fmnt_request_done() */
	case FM_CLOSING:
		m->tops->close(m);
		return; /* fmnt_transport_closed() */
	case FM_RELEASE_HANDLES:
		fmnt_release_all(m, handles_released);
		return;
	case FM_UNMOUNT_FS:
		if (m->fs == NULL) {
			m->state = FM_DONE;
			fmnt_step(m);
			return;
		}
		ust_blobfs_unmount(m->fs, fs_unmounted, m);
		return;
	case FM_DONE:
		atomic_store(&m->live, false);
		ust_thread_exit(ust_get_thread());
		fmnt_send_owner(m, owner_finished);
		return;
	}
}

void fmnt_transport_mounted(struct fmnt *m, int rc)
{
	if (rc != 0) {
		fmnt_fail(m, rc);
		m->state = FM_CLOSING; /* destroys the session; nothing was dispatched */
		fmnt_step(m);
		return;
	}
	m->state = FM_LIVE;
	m->was_live = true;
	atomic_store(&m->live, true);
	fmnt_send_owner(m, owner_mounted);
	fmnt_step(m);
}

void fmnt_transport_stopped(struct fmnt *m)
{
	m->transport_stopped = true;
	atomic_store(&m->live, false);
	if (m->state == FM_LIVE) {
		/* The kernel ended the session (fusermount3 -u). */
		m->stop_requested = true;
	}
	m->state = FM_STOPPING;
	fmnt_step(m);
}

void fmnt_transport_closed(struct fmnt *m)
{
	m->tctx = NULL;
	m->state = m->was_live ? FM_RELEASE_HANDLES : FM_UNMOUNT_FS;
	fmnt_step(m);
}

void fmnt_request_done(struct fmnt *m)
{
	m->completed++;
	fmnt_check_drained(m);
}

/* Any stop request: from ust_fuse_umount (forced or after the kernel unmount). */
static void fmnt_stop_msg(void *ctx)
{
	struct fmnt *m = ctx;

	m->stop_requested = true;
	if (m->state == FM_LIVE) {
		fmnt_step(m);
	}
	/* Still mounting: FM_LIVE picks the request up. Already ending: nothing to do. */
}

static void fmnt_start_msg(void *ctx)
{
	fmnt_step(ctx);
}

/* ---- public API (app thread) ---------------------------------------------------- */

void ust_fuse_mount_opts_init(struct ust_fuse_mount_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->format = UST_FUSE_FORMAT_NEVER;
}

struct ust_fuse_mount *ust_fuse_mount_first(void)
{
	return (struct ust_fuse_mount *)TAILQ_FIRST(&g_mounts);
}

struct ust_fuse_mount *ust_fuse_mount_next(struct ust_fuse_mount *m)
{
	return (struct ust_fuse_mount *)TAILQ_NEXT((struct fmnt *)m, link);
}

struct ust_fuse_mount *ust_fuse_mount_find(const char *mountpoint)
{
	struct fmnt *m;

	TAILQ_FOREACH(m, &g_mounts, link) {
		if (strcmp(m->mountpoint, mountpoint) == 0) {
			return (struct ust_fuse_mount *)m;
		}
	}
	return NULL;
}

const char *ust_fuse_mount_get_bdev_name(const struct ust_fuse_mount *m)
{
	return ((const struct fmnt *)m)->bdev_name;
}

const char *ust_fuse_mount_get_mountpoint(const struct ust_fuse_mount *m)
{
	return ((const struct fmnt *)m)->mountpoint;
}

const char *ust_fuse_mount_get_options(const struct ust_fuse_mount *m)
{
	return ((const struct fmnt *)m)->options;
}

enum ust_fuse_format ust_fuse_mount_get_format(const struct ust_fuse_mount *m)
{
	return ((const struct fmnt *)m)->format;
}

uint32_t ust_fuse_mount_get_cluster_size(const struct ust_fuse_mount *m)
{
	return ((const struct fmnt *)m)->cluster_size;
}

uint32_t ust_fuse_mount_get_max_inodes(const struct ust_fuse_mount *m)
{
	return ((const struct fmnt *)m)->max_inodes;
}

bool ust_fuse_mount_get_prealloc_md(const struct ust_fuse_mount *m)
{
	return ((const struct fmnt *)m)->prealloc_md;
}

bool ust_fuse_mount_is_live(const struct ust_fuse_mount *m)
{
	return atomic_load(&((const struct fmnt *)m)->live);
}

void ust_fuse_mount_get_stats(const struct ust_fuse_mount *mnt, struct ust_fuse_mount_stats *st)
{
	const struct fmnt *m = (const struct fmnt *)mnt;
	uint64_t dispatched = atomic_load(&m->dispatched);

	memset(st, 0, sizeof(*st));
	for (uint32_t op = 0; op < UST_FUSE_OPCODES; op++) {
		st->requests_by_op[op] = atomic_load(&m->requests_by_op[op]);
		st->requests += st->requests_by_op[op];
	}
	/* completed is the mount thread's; a racy read is good enough for a snapshot */
	st->in_flight = dispatched >= m->completed ? dispatched - m->completed : 0;
	st->errors = atomic_load(&m->errors);
	st->bytes_read = atomic_load(&m->bytes_read);
	st->bytes_read_lent = atomic_load(&m->bytes_read_lent);
	st->reads_replied_off = atomic_load(&m->reads_replied_off);
	st->bytes_written = atomic_load(&m->bytes_written);
	st->bytes_written_lent = atomic_load(&m->bytes_written_lent);
	st->max_write = atomic_load(&m->max_write);
	st->max_read = atomic_load(&m->max_read);
	st->open_handles = atomic_load(&m->open_handles);
}

static void mount_examined(void *ctx)
{
	struct fmnt *m = ctx;
	char name[64];
	int rc;

	if (ust_bdev_get_by_name(m->bdev_name) == NULL) {
		m->rc = -ENODEV;
		UST_ERRLOG("cannot mount %s: no bdev named %s\n", m->mountpoint, m->bdev_name);
		TAILQ_REMOVE(&g_mounts, m, link);
		m->mount_cb(m->mount_arg, NULL, -ENODEV);
		fmnt_free(m);
		return;
	}
	snprintf(name, sizeof(name), "fuse_%s", m->bdev_name);
	m->thread = ust_thread_create(name, NULL);
	rc = m->thread == NULL ? -ENOMEM : ust_thread_send_msg(m->thread, fmnt_start_msg, m);
	if (rc != 0) {
		TAILQ_REMOVE(&g_mounts, m, link);
		m->mount_cb(m->mount_arg, NULL, rc);
		fmnt_free(m);
	}
}

void ust_fuse_mount(const struct ust_fuse_mount_opts *opts, ust_fuse_mount_cb cb, void *arg)
{
	struct fmnt *m;
	int rc;

	if (opts == NULL || opts->bdev_name == NULL || opts->mountpoint == NULL ||
	    opts->mountpoint[0] == '\0' || opts->max_inodes > UST_FUSE_MAX_INODES || cb == NULL) {
		cb(arg, NULL, -EINVAL);
		return;
	}
	if (ust_fuse_mount_find(opts->mountpoint) != NULL) {
		cb(arg, NULL, -EEXIST);
		return;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		cb(arg, NULL, -ENOMEM);
		return;
	}
	TAILQ_INIT(&m->handles);
	m->bdev_name = strdup(opts->bdev_name);
	m->mountpoint = strdup(opts->mountpoint);
	m->options = strdup(opts->options != NULL ? opts->options : "");
	m->format = opts->format;
	m->cluster_size = opts->cluster_size;
	m->max_inodes = opts->max_inodes;
	m->prealloc_md = opts->prealloc_md;
	m->ended_cb = opts->ended_cb;
	m->ended_arg = opts->ended_arg;
	m->mount_cb = cb;
	m->mount_arg = arg;
	m->owner = ust_get_thread();
	m->state = FM_WAIT_EXAMINE;
	if (m->bdev_name == NULL || m->mountpoint == NULL || m->options == NULL ||
	    fbuf_pool_init(m) != 0) {
		fmnt_free(m);
		cb(arg, NULL, -ENOMEM);
		return;
	}
	rc = fmnt_parse_options(m);
	if (rc != 0) {
		fmnt_free(m);
		cb(arg, NULL, rc);
		return;
	}
	/* Listed at once, so a second mount at the same place is refused. */
	TAILQ_INSERT_TAIL(&g_mounts, m, link);
	/* Let bdev modules (lvol) finish looking at a new bdev before we claim it. */
	rc = ust_bdev_wait_for_examine(mount_examined, m);
	if (rc != 0) {
		TAILQ_REMOVE(&g_mounts, m, link);
		fmnt_free(m);
		cb(arg, NULL, rc);
	}
}

/* ---- non-forced unmount: the kernel decides (helper pthread) ------------------ */

struct umount_try {
	struct fmnt *m;
	int rc;
};

static void umount_try_done(void *ctx)
{
	struct umount_try *t = ctx;
	struct fmnt *m = t->m;
	struct fmnt_waiter *w, *list;
	int rc = t->rc;

	free(t);
	m->umount_pending = false;
	if (m->finish_deferred) {
		owner_finished(m);
		return;
	}
	if (rc == 0 || m->ending) {
		/* The session ends now (the poller sees it); make sure of it either way. */
		m->ending = true;
		if (ust_thread_send_msg(m->thread, fmnt_stop_msg, m) != 0) {
			UST_ERRLOG("%s: cannot reach the mount's thread\n", m->mountpoint);
		}
		return;
	}
	/* Refused (busy): answer every waiter, keep serving. */
	list = m->waiters;
	m->waiters = NULL;
	while (list != NULL) {
		w = list;
		list = w->next;
		w->cb(w->arg, rc);
		free(w);
	}
}

static void *umount_try_main(void *arg)
{
	struct umount_try *t = arg;
	struct fmnt *m = t->m;
	sigset_t all;
	pid_t pid;
	int status;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	if (geteuid() == 0) {
		t->rc = umount2(m->mountpoint, UMOUNT_NOFOLLOW) == 0 ? 0 : -errno;
	} else {
		pid = fork();
		if (pid == 0) {
			execlp("fusermount3", "fusermount3", "-u", "-q", m->mountpoint, (char *)NULL);
			_exit(127);
		}
		if (pid < 0) {
			t->rc = -errno;
		} else if (waitpid(pid, &status, 0) < 0) {
			t->rc = -errno;
		} else {
			t->rc = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EBUSY;
		}
	}
	while (ust_thread_send_msg(m->owner, umount_try_done, t) == -ENOMEM) {
		usleep(100);
	}
	return NULL;
}

void ust_fuse_umount(struct ust_fuse_mount *mnt, bool force, ust_fuse_op_cb cb, void *arg)
{
	struct fmnt *m = (struct fmnt *)mnt;
	struct fmnt_waiter *w = calloc(1, sizeof(*w));
	struct umount_try *t;
	pthread_attr_t attr;
	pthread_t tid;
	int rc;

	if (w == NULL) {
		cb(arg, -ENOMEM);
		return;
	}
	w->cb = cb;
	w->arg = arg;
	w->next = m->waiters;
	m->waiters = w;
	if (m->ending || m->mount_cb != NULL) {
		/* Ending already, or still mounting: stop as soon as it is live. */
		if (!m->ending) {
			fmnt_force_stop(m);
		}
		return;
	}
	if (force) {
		fmnt_force_stop(m);
		return;
	}
	if (m->umount_pending) {
		return; /* joins the try in progress */
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		m->waiters = w->next;
		free(w);
		cb(arg, -ENOMEM);
		return;
	}
	t->m = m;
	m->umount_pending = true;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&tid, &attr, umount_try_main, t);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		free(t);
		m->umount_pending = false;
		m->waiters = w->next;
		free(w);
		cb(arg, -rc);
	}
}

struct umount_all {
	uint32_t pending;
	int rc;
	ust_fuse_op_cb cb;
	void *arg;
};

static void umount_all_one(void *arg, int rc)
{
	struct umount_all *ua = arg;

	if (rc != 0 && ua->rc == 0) {
		ua->rc = rc;
	}
	if (--ua->pending == 0) {
		ua->cb(ua->arg, ua->rc);
		free(ua);
	}
}

void ust_fuse_umount_all(ust_fuse_op_cb cb, void *arg)
{
	struct umount_all *ua = calloc(1, sizeof(*ua));
	struct fmnt *m;

	if (ua == NULL) {
		cb(arg, -ENOMEM);
		return;
	}
	ua->cb = cb;
	ua->arg = arg;
	ua->pending = 1;
	TAILQ_FOREACH(m, &g_mounts, link) {
		ua->pending++;
		ust_fuse_umount((struct ust_fuse_mount *)m, true, umount_all_one, ua);
	}
	umount_all_one(ua, 0);
}
