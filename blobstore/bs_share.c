/*
 * Shared stores: one loaded blobstore per bdev, held by several owners at
 * once (the lvols of an lvstore and a blobfs mount keep their blobs side by
 * side in one store; docs/blobfs-format.md 1, bdev/lvol/README.md).
 *
 * A store claims its bdev, so two owners cannot each load it: they take a
 * hold on the one loaded store instead. ust_bs_share_load() loads the store
 * or takes a hold on the loaded one; ust_bs_share_put() drops a hold and the
 * last one unloads it.
 *
 * Guarantees:
 *  - At most one load, format or unload of a bdev's shared store runs at a
 *    time; a hold asked for meanwhile waits for it (and after an unload,
 *    loads the store again) instead of failing on the claim.
 *  - Every hold is answered once, on the thread that asked for it.
 *  - The store's metadata thread is the thread of the load or format that
 *    brought it up; holders on other threads forward their calls to it
 *    (ust_bs_get_md_thread()).
 *  - A failed unload or destroy keeps the caller's hold: the store stays
 *    loaded and usable, and the error is reported.
 *
 * The table is touched from any thread (holds are asked for from the FUSE
 * mount threads and the app thread), so it has a mutex; nothing on the I/O
 * path takes it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/hash.h"
#include "ustor/log.h"

#include "blobstore_internal.h"

enum share_state {
	SH_LOADING,   /* a load or format runs; holds wait */
	SH_READY,     /* loaded: holds are taken at once */
	SH_UNLOADING, /* the last hold went; holds wait and then load again */
};

struct share_waiter {
	TAILQ_ENTRY(share_waiter) link;
	struct ust_thread *thread;
	ust_bs_op_with_handle_cb cb;
	void *arg;
	struct ust_blob_store *bs;
	int rc;
};
TAILQ_HEAD(share_waiter_list, share_waiter);

struct share_entry {
	TAILQ_ENTRY(share_entry) link;
	struct ust_hash_node hnode; /* in g_share_names, by bdev_name */
	char *bdev_name;
	enum share_state state;
	struct ust_bs_opts opts; /* how it was loaded (bstype): reloads use it */
	struct ust_blob_store *bs;
	uint32_t holders;
	bool destroying;
	struct share_waiter_list waiters;
	ust_bs_op_cb put_cb;
	void *put_arg;
};

static pthread_mutex_t g_share_lock = PTHREAD_MUTEX_INITIALIZER;
static TAILQ_HEAD(, share_entry) g_shared = TAILQ_HEAD_INITIALIZER(g_shared);
/*
 * By name too: every new bdev's examine asks here, so thousands of bdevs
 * being examined at once (a split into thousands) made a list scan O(n^2).
 */
static struct ust_hash g_share_names = UST_HASH_INITIALIZER;

static struct share_entry *share_find_name(const char *bdev_name)
{
	struct ust_hash_node *n;

	for (n = ust_hash_first(&g_share_names, ust_hash_str(bdev_name)); n != NULL;
	     n = ust_hash_next(n)) {
		struct share_entry *e = (struct share_entry *)((char *)n -
							       offsetof(struct share_entry, hnode));

		if (strcmp(e->bdev_name, bdev_name) == 0) {
			return e;
		}
	}
	return NULL;
}

static void share_link(struct share_entry *e)
{
	TAILQ_INSERT_TAIL(&g_shared, e, link);
	ust_hash_insert(&g_share_names, &e->hnode, ust_hash_str(e->bdev_name));
}

static void share_unlink(struct share_entry *e)
{
	TAILQ_REMOVE(&g_shared, e, link);
	ust_hash_remove(&g_share_names, &e->hnode);
}

static struct share_entry *share_find_bs(const struct ust_blob_store *bs)
{
	struct share_entry *e;

	TAILQ_FOREACH(e, &g_shared, link) {
		if (e->bs == bs && e->bs != NULL) {
			return e;
		}
	}
	return NULL;
}

static void waiter_deliver(void *arg)
{
	struct share_waiter *w = arg;

	w->cb(w->arg, w->rc == 0 ? w->bs : NULL, w->rc);
	free(w);
}

/* Answer every waiter of list, each on its own thread. */
static void waiters_answer(struct share_waiter_list *list, struct ust_blob_store *bs, int rc)
{
	struct share_waiter *w;

	while ((w = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, w, link);
		w->bs = bs;
		w->rc = rc;
		if (w->thread == ust_get_thread() || ust_thread_send_msg(w->thread, waiter_deliver, w) != 0) {
			waiter_deliver(w);
		}
	}
}

static struct share_waiter *waiter_new(ust_bs_op_with_handle_cb cb, void *arg)
{
	struct share_waiter *w = calloc(1, sizeof(*w));

	if (w != NULL) {
		w->thread = ust_get_thread();
		w->cb = cb;
		w->arg = arg;
	}
	return w;
}

static void share_up_done(void *arg, struct ust_blob_store *bs, int rc);

/* Start the load (or format) of e on the calling thread. Lock not held. */
static void share_bring_up(struct share_entry *e, bool format)
{
	if (format) {
		ust_bs_init(e->bdev_name, &e->opts, share_up_done, e);
	} else {
		ust_bs_load(e->bdev_name, &e->opts, share_up_done, e);
	}
}

static void entry_free(struct share_entry *e)
{
	free(e->bdev_name);
	free(e);
}

static void share_up_done(void *arg, struct ust_blob_store *bs, int rc)
{
	struct share_entry *e = arg;
	struct share_waiter_list answer = TAILQ_HEAD_INITIALIZER(answer);
	struct share_waiter *w;

	pthread_mutex_lock(&g_share_lock);
	TAILQ_CONCAT(&answer, &e->waiters, link);
	if (rc == 0) {
		e->bs = bs;
		e->state = SH_READY;
		TAILQ_FOREACH(w, &answer, link) {
			e->holders++;
		}
	} else {
		share_unlink(e);
	}
	pthread_mutex_unlock(&g_share_lock);
	if (rc != 0) {
		entry_free(e);
	}
	waiters_answer(&answer, bs, rc);
}

/* The bstype a caller asks for matches the entry's (empty: any). */
static bool bstype_matches(const struct share_entry *e, const struct ust_bs_opts *opts)
{
	const char *have = e->bs != NULL ? ust_bs_get_bstype(e->bs) : e->opts.bstype;

	return opts->bstype[0] == '\0' || strcmp(opts->bstype, have) == 0;
}

static void share_open(const char *bdev_name, const struct ust_bs_opts *opts, bool format,
		       ust_bs_op_with_handle_cb cb, void *arg)
{
	struct ust_bs_opts defaults;
	struct share_entry *e;
	struct share_waiter *w;
	struct ust_blob_store *bs = NULL;
	int rc = 0;

	if (cb == NULL) {
		return;
	}
	if (opts == NULL) {
		ust_bs_opts_init(&defaults);
		opts = &defaults;
	}
	if (bdev_name == NULL || memchr(opts->bstype, 0, sizeof(opts->bstype)) == NULL) {
		cb(arg, NULL, -EINVAL);
		return;
	}
	w = waiter_new(cb, arg);
	if (w == NULL) {
		cb(arg, NULL, -ENOMEM);
		return;
	}
	pthread_mutex_lock(&g_share_lock);
	e = share_find_name(bdev_name);
	if (e != NULL && format) {
		rc = -EBUSY; /* a loaded store is never formatted over */
	} else if (e != NULL && !bstype_matches(e, opts)) {
		rc = -EILSEQ;
	} else if (e != NULL && e->state == SH_READY) {
		e->holders++;
		bs = e->bs;
	} else if (e != NULL) {
		TAILQ_INSERT_TAIL(&e->waiters, w, link);
		w = NULL;
	} else {
		e = calloc(1, sizeof(*e));
		if (e == NULL || (e->bdev_name = strdup(bdev_name)) == NULL) {
			free(e);
			rc = -ENOMEM;
		} else {
			e->state = SH_LOADING;
			e->opts = *opts;
			TAILQ_INIT(&e->waiters);
			TAILQ_INSERT_TAIL(&e->waiters, w, link);
			share_link(e);
			w = NULL;
			pthread_mutex_unlock(&g_share_lock);
			share_bring_up(e, format);
			return;
		}
	}
	pthread_mutex_unlock(&g_share_lock);
	if (w == NULL) {
		return; /* answered when the load or unload in flight ends */
	}
	free(w);
	if (rc == -EBUSY) {
		UST_ERRLOG("blobstore: %s holds a loaded store; not formatting it\n", bdev_name);
	}
	cb(arg, bs, rc);
}

void ust_bs_share_load(const char *bdev_name, const struct ust_bs_opts *opts,
		       ust_bs_op_with_handle_cb cb, void *arg)
{
	share_open(bdev_name, opts, false, cb, arg);
}

void ust_bs_share_init(const char *bdev_name, const struct ust_bs_opts *opts,
		       ust_bs_op_with_handle_cb cb, void *arg)
{
	share_open(bdev_name, opts, true, cb, arg);
}

static void share_down_done(void *arg, int rc)
{
	struct share_entry *e = arg;
	ust_bs_op_cb cb = e->put_cb;
	void *cb_arg = e->put_arg;
	struct share_waiter_list answer = TAILQ_HEAD_INITIALIZER(answer);
	struct ust_blob_store *kept = rc != 0 ? e->bs : NULL;
	struct share_waiter *w;
	bool reload = false, gone = false;

	pthread_mutex_lock(&g_share_lock);
	if (rc != 0) {
		/* Still loaded: the caller keeps its hold, and waiters get theirs. */
		UST_ERRLOG("blobstore on %s: %s failed: %s; it stays loaded\n", e->bdev_name,
			   e->destroying ? "destroy" : "unload", strerror(-rc));
		e->state = SH_READY;
		e->holders = 1;
		TAILQ_CONCAT(&answer, &e->waiters, link);
		TAILQ_FOREACH(w, &answer, link) {
			e->holders++;
		}
	} else if (!TAILQ_EMPTY(&e->waiters)) {
		e->bs = NULL;
		e->state = SH_LOADING;
		reload = true;
	} else {
		share_unlink(e);
		gone = true;
	}
	e->destroying = false;
	pthread_mutex_unlock(&g_share_lock);
	if (reload) {
		share_bring_up(e, false);
	}
	if (gone) {
		entry_free(e);
	}
	waiters_answer(&answer, kept, 0);
	cb(cb_arg, rc);
}

static void share_close(struct ust_blob_store *bs, bool destroy, ust_bs_op_cb cb, void *arg)
{
	struct share_entry *e;
	int rc = 0;

	if (bs_md_call_check(bs, &cb, arg) != 0) {
		return;
	}
	pthread_mutex_lock(&g_share_lock);
	e = share_find_bs(bs);
	if (e == NULL || e->state != SH_READY || e->holders == 0) {
		rc = -EINVAL;
	} else if (destroy && e->holders > 1) {
		rc = -EBUSY;
	} else if (--e->holders == 0) {
		e->state = SH_UNLOADING;
		e->destroying = destroy;
		e->put_cb = cb;
		e->put_arg = arg;
	} else {
		e = NULL; /* others still hold it */
	}
	pthread_mutex_unlock(&g_share_lock);
	if (rc != 0) {
		UST_ERRLOG("blobstore on %s: %s of a store %s\n", ust_bdev_get_name(bs->bdev),
			   destroy ? "destroy" : "release",
			   rc == -EBUSY ? "other owners still hold" : "not held as shared");
		cb(arg, rc);
	} else if (e == NULL) {
		cb(arg, 0);
	} else if (destroy) {
		ust_bs_destroy(bs, share_down_done, e);
	} else {
		ust_bs_unload(bs, share_down_done, e);
	}
}

void ust_bs_share_put(struct ust_blob_store *bs, ust_bs_op_cb cb, void *arg)
{
	share_close(bs, false, cb, arg);
}

void ust_bs_share_destroy(struct ust_blob_store *bs, ust_bs_op_cb cb, void *arg)
{
	share_close(bs, true, cb, arg);
}

uint32_t ust_bs_share_holders(const struct ust_blob_store *bs)
{
	struct share_entry *e;
	uint32_t n;

	pthread_mutex_lock(&g_share_lock);
	e = share_find_bs(bs);
	n = e != NULL ? e->holders : 0;
	pthread_mutex_unlock(&g_share_lock);
	return n;
}

struct ust_thread *ust_bs_get_md_thread(const struct ust_blob_store *bs)
{
	return bs->md_thread;
}
