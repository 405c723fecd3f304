/*
 * bdev core, control path: modules, registration, names and aliases,
 * descriptors and their events, module claims, examine, unregister, and the
 * bdev subsystem's start-up and shutdown.
 *
 * Guarantees: a name or alias is unique among registered bdevs; events reach
 * a descriptor on the thread that opened it and never after it was closed;
 * unregister finishes (destruct, then the caller's callback) only after
 * every descriptor is closed and every channel is gone; at shutdown bdevs go
 * top-down (a claimed bdev after every bdev on top of it), then modules
 * finish in reverse registration order.
 *
 * Everything here is control path and serialised by g_bdev_mgr.mutex; the
 * I/O path lives in bdev_io.c and never takes it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ustor/app.h"
#include "ustor/env.h"
#include "ustor/log.h"

#include "bdev_internal.h"

UST_LOG_REGISTER_COMPONENT(bdev)

static const int *const g_bdev_rpc_anchor __attribute__((used)) = &ust_bdev_rpc_anchor;

struct bdev_mgr g_bdev_mgr = {
	.mutex = PTHREAD_MUTEX_INITIALIZER,
	.bdevs = TAILQ_HEAD_INITIALIZER(g_bdev_mgr.bdevs),
	.names = UST_HASH_INITIALIZER,
	.modules = TAILQ_HEAD_INITIALIZER(g_bdev_mgr.modules),
};

static struct ust_bdev_opts g_bdev_opts = {
	.bdev_io_pool_size = BDEV_DEFAULT_IO_POOL_SIZE,
	.bdev_io_cache_size = BDEV_DEFAULT_IO_CACHE_SIZE,
};

/* ---- messages that must not be lost ------------------------------------- */

struct bdev_msg_retry {
	struct ust_thread *thread;
	ust_msg_fn fn;
	void *ctx;
	struct ust_poller *poller;
};

static int bdev_msg_retry_poll(void *arg)
{
	struct bdev_msg_retry *r = arg;

	if (ust_thread_send_msg(r->thread, r->fn, r->ctx) != 0)
		return UST_POLLER_IDLE;
	ust_poller_unregister(&r->poller);
	free(r);
	return UST_POLLER_BUSY;
}

/*
 * Control messages (events, unregister and reset steps) cannot be dropped
 * without hanging someone, so a full ring is retried from a timer rather
 * than reported.
 */
void bdev_send_msg(struct ust_thread *thread, ust_msg_fn fn, void *ctx)
{
	struct bdev_msg_retry *r;

	if (ust_thread_send_msg(thread, fn, ctx) == 0)
		return;
	r = calloc(1, sizeof(*r));
	if (r != NULL) {
		r->thread = thread;
		r->fn = fn;
		r->ctx = ctx;
		r->poller = ust_poller_register(bdev_msg_retry_poll, r, 100, "bdev_msg_retry");
		if (r->poller != NULL)
			return;
		free(r);
	}
	UST_ERRLOG("bdev: cannot send a control message to thread %s; an operation will hang\n",
		   ust_thread_get_name(thread));
}

/* ---- options ------------------------------------------------------------ */

void ust_bdev_get_opts(struct ust_bdev_opts *opts)
{
	if (opts != NULL)
		*opts = g_bdev_opts;
}

int ust_bdev_set_opts(const struct ust_bdev_opts *opts)
{
	if (opts == NULL || opts->bdev_io_pool_size == 0 ||
	    opts->bdev_io_cache_size > opts->bdev_io_pool_size)
		return -EINVAL;
	if (g_bdev_mgr.initialized)
		return -EBUSY;
	g_bdev_opts = *opts;
	return 0;
}

/* ---- modules ------------------------------------------------------------ */

void ust_bdev_module_list_add(struct ust_bdev_module *module)
{
	if (module == NULL || module->name == NULL)
		return;
	if (ust_bdev_module_find(module->name) != NULL) {
		UST_ERRLOG("bdev module %s registered twice\n", module->name);
		return;
	}
	TAILQ_INSERT_TAIL(&g_bdev_mgr.modules, module, internal.link);
}

struct ust_bdev_module *ust_bdev_module_find(const char *name)
{
	struct ust_bdev_module *m;

	if (name == NULL)
		return NULL;
	TAILQ_FOREACH(m, &g_bdev_mgr.modules, internal.link) {
		if (strcmp(m->name, name) == 0)
			return m;
	}
	return NULL;
}

/* ---- lookup ------------------------------------------------------------- */

/* Names and aliases are hashed: thousands of bdevs (lvols, splits) register in O(n), not O(n^2). */
static struct ust_bdev_priv *bdev_find_locked(const char *name)
{
	struct ust_hash_node *n;

	for (n = ust_hash_first(&g_bdev_mgr.names, ust_hash_str(name)); n != NULL;
	     n = ust_hash_next(n)) {
		struct bdev_name *e = (struct bdev_name *)((char *)n - offsetof(struct bdev_name, node));

		if (strcmp(e->name, name) == 0)
			return e->priv;
	}
	return NULL;
}

static void bdev_name_add_locked(struct bdev_name *e, const char *name, struct ust_bdev_priv *priv)
{
	e->name = name;
	e->priv = priv;
	ust_hash_insert(&g_bdev_mgr.names, &e->node, ust_hash_str(name));
}

static void bdev_name_del_locked(struct bdev_name *e)
{
	ust_hash_remove(&g_bdev_mgr.names, &e->node);
}

struct ust_bdev *ust_bdev_get_by_name(const char *name)
{
	struct ust_bdev_priv *priv;

	if (name == NULL)
		return NULL;
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	priv = bdev_find_locked(name);
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	return priv ? priv->bdev : NULL;
}

struct ust_bdev *ust_bdev_first(void)
{
	struct ust_bdev_priv *priv;

	pthread_mutex_lock(&g_bdev_mgr.mutex);
	priv = TAILQ_FIRST(&g_bdev_mgr.bdevs);
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	return priv ? priv->bdev : NULL;
}

struct ust_bdev *ust_bdev_next(struct ust_bdev *prev)
{
	struct ust_bdev_priv *priv;

	if (prev == NULL || prev->priv == NULL)
		return NULL;
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	priv = TAILQ_NEXT(prev->priv, link);
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	return priv ? priv->bdev : NULL;
}

bool bdev_is_removing(struct ust_bdev *bdev)
{
	bool removing;

	pthread_mutex_lock(&g_bdev_mgr.mutex);
	removing = bdev->priv->status == BDEV_STATUS_REMOVING;
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	return removing;
}

/* ---- properties --------------------------------------------------------- */

const char *ust_bdev_get_name(const struct ust_bdev *bdev)
{
	return bdev->priv ? bdev->priv->name : bdev->name;
}

const char *ust_bdev_get_product_name(const struct ust_bdev *bdev)
{
	return bdev->priv ? bdev->priv->product_name : bdev->product_name;
}

const char *ust_bdev_get_module_name(const struct ust_bdev *bdev)
{
	return bdev->module->name;
}

uint32_t ust_bdev_get_block_size(const struct ust_bdev *bdev)
{
	return bdev->blocklen;
}

uint64_t ust_bdev_get_num_blocks(const struct ust_bdev *bdev)
{
	return __atomic_load_n(&bdev->blockcnt, __ATOMIC_RELAXED);
}

const struct ust_uuid *ust_bdev_get_uuid(const struct ust_bdev *bdev)
{
	return &bdev->uuid;
}

uint32_t ust_bdev_get_optimal_io_boundary(const struct ust_bdev *bdev)
{
	return bdev->optimal_io_boundary;
}

uint32_t ust_bdev_get_max_transfer_blocks(const struct ust_bdev *bdev)
{
	return bdev->max_transfer_blocks;
}

size_t ust_bdev_get_buf_align(const struct ust_bdev *bdev)
{
	return bdev->buf_align > 1 ? bdev->buf_align : 1;
}

bool ust_bdev_has_write_cache(const struct ust_bdev *bdev)
{
	return bdev->write_cache;
}

uint32_t ust_bdev_get_md_size(const struct ust_bdev *bdev)
{
	return bdev->md_len;
}

bool ust_bdev_is_md_interleaved(const struct ust_bdev *bdev)
{
	return bdev->md_interleave;
}

enum ust_dif_type ust_bdev_get_dif_type(const struct ust_bdev *bdev)
{
	return bdev->dif_type;
}

bool ust_bdev_io_type_supported(struct ust_bdev *bdev, enum ust_bdev_io_type type)
{
	struct ust_bdev_priv *priv = bdev->priv;

	if (type <= UST_BDEV_IO_TYPE_INVALID || type >= UST_BDEV_NUM_IO_TYPES)
		return false;
	if (bdev_io_type_native(priv, type))
		return true;
	switch (type) {
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
		return bdev_io_type_native(priv, UST_BDEV_IO_TYPE_WRITE);
	case UST_BDEV_IO_TYPE_COMPARE:
		return bdev_io_type_native(priv, UST_BDEV_IO_TYPE_READ);
	case UST_BDEV_IO_TYPE_COMPARE_AND_WRITE:
		return bdev_io_type_native(priv, UST_BDEV_IO_TYPE_WRITE) &&
		       (bdev_io_type_native(priv, UST_BDEV_IO_TYPE_COMPARE) ||
			bdev_io_type_native(priv, UST_BDEV_IO_TYPE_READ));
	default:
		return false;
	}
}

static const char *const g_io_type_names[UST_BDEV_NUM_IO_TYPES] = {
	[UST_BDEV_IO_TYPE_INVALID] = "invalid",
	[UST_BDEV_IO_TYPE_READ] = "read",
	[UST_BDEV_IO_TYPE_WRITE] = "write",
	[UST_BDEV_IO_TYPE_UNMAP] = "unmap",
	[UST_BDEV_IO_TYPE_FLUSH] = "flush",
	[UST_BDEV_IO_TYPE_RESET] = "reset",
	[UST_BDEV_IO_TYPE_WRITE_ZEROES] = "write_zeroes",
	[UST_BDEV_IO_TYPE_COMPARE] = "compare",
	[UST_BDEV_IO_TYPE_COMPARE_AND_WRITE] = "compare_and_write",
	[UST_BDEV_IO_TYPE_NVME_ADMIN] = "nvme_admin",
	[UST_BDEV_IO_TYPE_NVME_IO] = "nvme_io",
};

const char *ust_bdev_io_type_name(enum ust_bdev_io_type type)
{
	if (type < 0 || type >= UST_BDEV_NUM_IO_TYPES)
		return NULL;
	return g_io_type_names[type];
}

bool ust_bdev_is_claimed(const struct ust_bdev *bdev)
{
	return ust_bdev_get_claim_module(bdev) != NULL;
}

struct ust_bdev_module *ust_bdev_get_claim_module(const struct ust_bdev *bdev)
{
	struct ust_bdev_module *m;

	pthread_mutex_lock(&g_bdev_mgr.mutex);
	m = bdev->priv ? bdev->priv->claim_module : NULL;
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	return m;
}

/* ---- aliases ------------------------------------------------------------ */

int ust_bdev_alias_add(struct ust_bdev *bdev, const char *alias)
{
	struct bdev_alias *a;

	if (bdev == NULL || bdev->priv == NULL || alias == NULL || alias[0] == '\0')
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return -ENOMEM;
	a->name = strdup(alias);
	if (a->name == NULL) {
		free(a);
		return -ENOMEM;
	}
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	if (bdev_find_locked(alias) != NULL) {
		pthread_mutex_unlock(&g_bdev_mgr.mutex);
		free(a->name);
		free(a);
		return -EEXIST;
	}
	TAILQ_INSERT_TAIL(&bdev->priv->aliases, a, link);
	if (bdev->priv->listed)
		bdev_name_add_locked(&a->entry, a->name, bdev->priv);
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	return 0;
}

int ust_bdev_alias_del(struct ust_bdev *bdev, const char *alias)
{
	struct bdev_alias *a;

	if (bdev == NULL || bdev->priv == NULL || alias == NULL)
		return -EINVAL;
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	TAILQ_FOREACH(a, &bdev->priv->aliases, link) {
		if (strcmp(a->name, alias) == 0)
			break;
	}
	if (a != NULL) {
		TAILQ_REMOVE(&bdev->priv->aliases, a, link);
		if (bdev->priv->listed)
			bdev_name_del_locked(&a->entry);
	}
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	if (a == NULL)
		return -ENOENT;
	free(a->name);
	free(a);
	return 0;
}

void ust_bdev_foreach_alias(struct ust_bdev *bdev, void (*fn)(const char *alias, void *ctx),
			    void *ctx)
{
	struct bdev_alias *a;

	pthread_mutex_lock(&g_bdev_mgr.mutex);
	TAILQ_FOREACH(a, &bdev->priv->aliases, link)
		fn(a->name, ctx);
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
}

/* ---- registration ------------------------------------------------------- */

static int bdev_check_fields(const struct ust_bdev *bdev)
{
	const struct ust_bdev_fn_table *fn = bdev->fn_table;

	if (bdev->name == NULL || bdev->name[0] == '\0') {
		UST_ERRLOG("bdev without a name\n");
		return -EINVAL;
	}
	if (bdev->module == NULL || fn == NULL || fn->submit_request == NULL ||
	    fn->get_io_channel == NULL || fn->destruct == NULL || fn->io_type_supported == NULL) {
		UST_ERRLOG("bdev %s: module and fn_table (destruct, submit_request, "
			   "io_type_supported, get_io_channel) are required\n", bdev->name);
		return -EINVAL;
	}
	if (bdev->blocklen == 0 || bdev->blockcnt == 0) {
		UST_ERRLOG("bdev %s: block size and block count must be non-zero\n", bdev->name);
		return -EINVAL;
	}
	if (bdev->blockcnt > UINT64_MAX / bdev->blocklen) {
		UST_ERRLOG("bdev %s: size overflows 64 bits\n", bdev->name);
		return -EINVAL;
	}
	if (bdev->buf_align > 1 && (bdev->buf_align & (bdev->buf_align - 1)) != 0) {
		UST_ERRLOG("bdev %s: buffer alignment %u is not a power of two\n", bdev->name,
			   bdev->buf_align);
		return -EINVAL;
	}
	return 0;
}

static uint32_t bdev_query_native_types(struct ust_bdev *bdev)
{
	uint32_t mask = 0;
	int t;

	for (t = UST_BDEV_IO_TYPE_READ; t < UST_BDEV_NUM_IO_TYPES; t++) {
		if (bdev->fn_table->io_type_supported(bdev->ctxt, (enum ust_bdev_io_type)t))
			mask |= 1u << t;
	}
	return mask;
}

static void bdev_priv_free(struct ust_bdev_priv *priv)
{
	struct bdev_alias *a;

	while ((a = TAILQ_FIRST(&priv->aliases)) != NULL) {
		TAILQ_REMOVE(&priv->aliases, a, link);
		free(a->name);
		free(a);
	}
	pthread_mutex_destroy(&priv->range_mutex);
	free(priv->qos);
	free(priv->name);
	free(priv->product_name);
	free(priv);
}

static struct ust_bdev_priv *bdev_priv_alloc(struct ust_bdev *bdev)
{
	struct ust_bdev_priv *priv = calloc(1, sizeof(*priv));

	if (priv == NULL)
		return NULL;
	priv->bdev = bdev;
	TAILQ_INIT(&priv->aliases);
	TAILQ_INIT(&priv->descs);
	STAILQ_INIT(&priv->pending_resets);
	STAILQ_INIT(&priv->locked_ranges);
	STAILQ_INIT(&priv->lock_waiters);
	pthread_mutex_init(&priv->range_mutex, NULL);
	ust_bdev_io_stat_init(&priv->retired_stat);
	priv->name = strdup(bdev->name);
	priv->product_name = strdup(bdev->product_name ? bdev->product_name : "");
	if (priv->name == NULL || priv->product_name == NULL) {
		bdev_priv_free(priv);
		return NULL;
	}
	priv->buf_align = bdev->buf_align > 1 ? bdev->buf_align : 1;
	priv->needs_checks = priv->buf_align > 1 || bdev->max_transfer_blocks != 0 ||
			     bdev->max_unmap_blocks != 0 ||
			     (bdev->split_on_optimal_io_boundary && bdev->optimal_io_boundary != 0);
	return priv;
}

static void bdev_examine(struct ust_bdev *bdev);

int ust_bdev_register(struct ust_bdev *bdev)
{
	struct ust_bdev_priv *priv;
	int rc;

	if (bdev == NULL)
		return -EINVAL;
	rc = bdev_check_fields(bdev);
	if (rc != 0)
		return rc;
	if (!g_bdev_mgr.initialized) {
		UST_ERRLOG("bdev %s registered before the bdev layer was initialised\n", bdev->name);
		return -EINVAL;
	}
	if (ust_uuid_is_null(&bdev->uuid))
		ust_uuid_generate(&bdev->uuid);
	priv = bdev_priv_alloc(bdev);
	if (priv == NULL)
		return -ENOMEM;
	priv->native_mask = bdev_query_native_types(bdev);

	pthread_mutex_lock(&g_bdev_mgr.mutex);
	if (bdev_find_locked(priv->name) != NULL) {
		pthread_mutex_unlock(&g_bdev_mgr.mutex);
		UST_ERRLOG("bdev name %s is already in use\n", priv->name);
		bdev_priv_free(priv);
		return -EEXIST;
	}
	bdev->priv = priv;
	TAILQ_INSERT_TAIL(&g_bdev_mgr.bdevs, priv, link);
	bdev_name_add_locked(&priv->name_entry, priv->name, priv);
	priv->listed = true;
	pthread_mutex_unlock(&g_bdev_mgr.mutex);

	bdev_channel_register(priv);
	UST_DEBUGLOG(bdev, "registered bdev %s (%s)\n", priv->name, bdev->module->name);
	bdev_examine(bdev);
	return 0;
}

/* ---- examine ------------------------------------------------------------ */

struct examine_waiter {
	ust_bdev_wait_for_examine_cb cb;
	void *ctx;
	struct ust_thread *thread;
	TAILQ_ENTRY(examine_waiter) link;
};

static TAILQ_HEAD(, examine_waiter) g_examine_waiters = TAILQ_HEAD_INITIALIZER(g_examine_waiters);
static uint32_t g_examine_in_progress;

static void examine_waiter_run(void *arg)
{
	struct examine_waiter *w = arg;

	w->cb(w->ctx);
	free(w);
}

static void examine_wake_waiters_locked(void)
{
	struct examine_waiter *w;

	while ((w = TAILQ_FIRST(&g_examine_waiters)) != NULL) {
		TAILQ_REMOVE(&g_examine_waiters, w, link);
		bdev_send_msg(w->thread, examine_waiter_run, w);
	}
}

static void bdev_examine(struct ust_bdev *bdev)
{
	struct ust_bdev_module *m;

	TAILQ_FOREACH(m, &g_bdev_mgr.modules, internal.link) {
		if (m->examine_config == NULL)
			continue;
		pthread_mutex_lock(&g_bdev_mgr.mutex);
		m->internal.examine_in_progress++;
		g_examine_in_progress++;
		pthread_mutex_unlock(&g_bdev_mgr.mutex);
		m->examine_config(bdev);
	}
	TAILQ_FOREACH(m, &g_bdev_mgr.modules, internal.link) {
		struct ust_bdev_module *claimer;

		if (m->examine_disk == NULL)
			continue;
		/* A bdev claimed during examine_config belongs to that module only. */
		claimer = ust_bdev_get_claim_module(bdev);
		if (claimer != NULL && claimer != m)
			continue;
		pthread_mutex_lock(&g_bdev_mgr.mutex);
		m->internal.examine_in_progress++;
		g_examine_in_progress++;
		pthread_mutex_unlock(&g_bdev_mgr.mutex);
		m->examine_disk(bdev);
	}
}

void ust_bdev_module_examine_done(struct ust_bdev_module *module)
{
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	if (module->internal.examine_in_progress == 0) {
		pthread_mutex_unlock(&g_bdev_mgr.mutex);
		UST_ERRLOG("bdev module %s: examine_done without an examine\n", module->name);
		return;
	}
	module->internal.examine_in_progress--;
	if (--g_examine_in_progress == 0)
		examine_wake_waiters_locked();
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
}

int ust_bdev_wait_for_examine(ust_bdev_wait_for_examine_cb cb, void *ctx)
{
	struct examine_waiter *w;

	if (cb == NULL || ust_get_thread() == NULL)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	w->cb = cb;
	w->ctx = ctx;
	w->thread = ust_get_thread();
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	TAILQ_INSERT_TAIL(&g_examine_waiters, w, link);
	if (g_examine_in_progress == 0)
		examine_wake_waiters_locked();
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	return 0;
}

/* ---- descriptors -------------------------------------------------------- */

struct bdev_event_msg {
	struct ust_bdev_desc *desc;
	enum ust_bdev_event_type type;
};

static void desc_event_run(void *arg)
{
	struct bdev_event_msg *ev = arg;
	struct ust_bdev_desc *desc = ev->desc;
	bool closed, free_desc;

	pthread_mutex_lock(&g_bdev_mgr.mutex);
	desc->pending_events--;
	closed = desc->closed;
	free_desc = closed && desc->pending_events == 0;
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	if (!closed)
		desc->event_cb(ev->type, desc->bdev, desc->event_ctx);
	if (free_desc)
		free(desc);
	free(ev);
}

static void desc_send_event_locked(struct ust_bdev_desc *desc, enum ust_bdev_event_type type)
{
	struct bdev_event_msg *ev = calloc(1, sizeof(*ev));

	if (ev == NULL) {
		UST_ERRLOG("bdev %s: out of memory for an event\n", ust_bdev_get_name(desc->bdev));
		return;
	}
	ev->desc = desc;
	ev->type = type;
	desc->pending_events++;
	bdev_send_msg(desc->thread, desc_event_run, ev);
}

int ust_bdev_open_ext(const char *name, bool write, ust_bdev_event_cb event_cb, void *event_ctx,
		      struct ust_bdev_desc **descp)
{
	struct ust_bdev_priv *priv;
	struct ust_bdev_desc *desc;

	if (name == NULL || event_cb == NULL || descp == NULL)
		return -EINVAL;
	if (ust_get_thread() == NULL) {
		UST_ERRLOG("bdev %s opened with no current thread\n", name);
		return -EINVAL;
	}
	desc = calloc(1, sizeof(*desc));
	if (desc == NULL)
		return -ENOMEM;
	desc->thread = ust_get_thread();
	desc->event_cb = event_cb;
	desc->event_ctx = event_ctx;
	desc->write = write;

	pthread_mutex_lock(&g_bdev_mgr.mutex);
	priv = bdev_find_locked(name);
	if (priv == NULL || priv->status != BDEV_STATUS_READY) {
		pthread_mutex_unlock(&g_bdev_mgr.mutex);
		free(desc);
		return -ENODEV;
	}
	if (write && priv->claim_module != NULL) {
		pthread_mutex_unlock(&g_bdev_mgr.mutex);
		UST_ERRLOG("bdev %s is claimed by module %s: no write open\n", priv->name,
			   priv->claim_module->name);
		free(desc);
		return -EPERM;
	}
	desc->bdev = priv->bdev;
	TAILQ_INSERT_TAIL(&priv->descs, desc, link);
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	*descp = desc;
	return 0;
}

struct ust_bdev *ust_bdev_desc_get_bdev(struct ust_bdev_desc *desc)
{
	return desc ? desc->bdev : NULL;
}

bool ust_bdev_is_open(const struct ust_bdev *bdev, bool write)
{
	struct ust_bdev_desc *desc;
	bool open = false;

	if (bdev == NULL || bdev->priv == NULL)
		return false;
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	TAILQ_FOREACH(desc, &bdev->priv->descs, link) {
		if (!write || desc->write) {
			open = true;
			break;
		}
	}
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	return open;
}

static void bdev_unregister_finish(void *arg);

static void bdev_close_on_thread(void *arg)
{
	ust_bdev_close(arg);
}

void ust_bdev_close(struct ust_bdev_desc *desc)
{
	struct ust_bdev_priv *priv;
	bool free_desc, last;

	if (desc == NULL)
		return;
	if (desc->thread != ust_get_thread()) {
		UST_ERRLOG("bdev %s: descriptor closed on another thread than it was opened on\n",
			   ust_bdev_get_name(desc->bdev));
		bdev_send_msg(desc->thread, bdev_close_on_thread, desc);
		return;
	}
	priv = desc->bdev->priv;
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	TAILQ_REMOVE(&priv->descs, desc, link);
	if (priv->claim_desc == desc) {
		priv->claim_desc = NULL;
		priv->claim_module = NULL;
	}
	desc->closed = true;
	free_desc = desc->pending_events == 0;
	last = priv->status == BDEV_STATUS_REMOVING && priv->unreg_walked &&
	       TAILQ_EMPTY(&priv->descs);
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	if (free_desc)
		free(desc);
	if (last)
		bdev_send_msg(priv->unreg_thread, bdev_unregister_finish, priv);
}

/* ---- claims ------------------------------------------------------------- */

int ust_bdev_module_claim_bdev(struct ust_bdev *bdev, struct ust_bdev_desc *desc,
			       struct ust_bdev_module *module)
{
	struct ust_bdev_priv *priv;
	struct ust_bdev_desc *d;

	if (bdev == NULL || bdev->priv == NULL || module == NULL)
		return -EINVAL;
	if (desc != NULL && desc->bdev != bdev)
		return -EINVAL;
	priv = bdev->priv;
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	if (priv->claim_module != NULL) {
		pthread_mutex_unlock(&g_bdev_mgr.mutex);
		UST_ERRLOG("bdev %s is already claimed by module %s\n", priv->name,
			   priv->claim_module->name);
		return -EPERM;
	}
	TAILQ_FOREACH(d, &priv->descs, link) {
		if (d != desc && d->write) {
			pthread_mutex_unlock(&g_bdev_mgr.mutex);
			UST_ERRLOG("bdev %s is open for writing: module %s cannot claim it\n",
				   priv->name, module->name);
			return -EPERM;
		}
	}
	priv->claim_module = module;
	priv->claim_desc = desc;
	if (desc != NULL)
		desc->write = true;
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	return 0;
}

void ust_bdev_module_release_bdev(struct ust_bdev *bdev)
{
	if (bdev == NULL || bdev->priv == NULL)
		return;
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	bdev->priv->claim_module = NULL;
	bdev->priv->claim_desc = NULL;
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
}

/* ---- resize ------------------------------------------------------------- */

int ust_bdev_notify_blockcnt_change(struct ust_bdev *bdev, uint64_t blockcnt)
{
	struct ust_bdev_priv *priv;
	struct ust_bdev_desc *desc;

	if (bdev == NULL || bdev->priv == NULL || blockcnt == 0 ||
	    blockcnt > UINT64_MAX / bdev->blocklen)
		return -EINVAL;
	priv = bdev->priv;
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	if (blockcnt < bdev->blockcnt && !TAILQ_EMPTY(&priv->descs)) {
		pthread_mutex_unlock(&g_bdev_mgr.mutex);
		return -EBUSY;
	}
	if (blockcnt != bdev->blockcnt) {
		__atomic_store_n(&bdev->blockcnt, blockcnt, __ATOMIC_RELAXED);
		TAILQ_FOREACH(desc, &priv->descs, link)
			desc_send_event_locked(desc, UST_BDEV_EVENT_RESIZE);
	}
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	return 0;
}

/* ---- unregister --------------------------------------------------------- */

static void bdev_fini_next(void);
static bool g_fini_in_progress;

static void bdev_unregister_call_cb(struct ust_bdev_priv *priv, int rc)
{
	ust_bdev_unregister_cb cb = priv->unreg_cb;
	void *ctx = priv->unreg_ctx;

	UST_DEBUGLOG(bdev, "bdev %s destroyed (%d)\n", priv->name, rc);
	bdev_priv_free(priv);
	if (cb != NULL)
		cb(ctx, rc);
	if (g_fini_in_progress)
		bdev_fini_next();
}

struct destruct_done_msg {
	struct ust_bdev_priv *priv;
	int rc;
};

static void bdev_destruct_done_msg(void *arg)
{
	struct destruct_done_msg *m = arg;

	bdev_unregister_call_cb(m->priv, m->rc);
	free(m);
}

static void bdev_destruct_finish(struct ust_bdev_priv *priv, int rc)
{
	struct destruct_done_msg *m;

	if (ust_get_thread() == priv->unreg_thread) {
		bdev_unregister_call_cb(priv, rc);
		return;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		UST_ERRLOG("bdev %s: out of memory finishing unregister\n", priv->name);
		return;
	}
	m->priv = priv;
	m->rc = rc;
	bdev_send_msg(priv->unreg_thread, bdev_destruct_done_msg, m);
}

/* Bdevs whose destruct returned 1, until the module calls ust_bdev_destruct_done(). */
static TAILQ_HEAD(, ust_bdev_priv) g_destructing = TAILQ_HEAD_INITIALIZER(g_destructing);

void ust_bdev_destruct_done(struct ust_bdev *bdev, int rc)
{
	struct ust_bdev_priv *priv;

	pthread_mutex_lock(&g_bdev_mgr.mutex);
	TAILQ_FOREACH(priv, &g_destructing, link) {
		if (priv->bdev == bdev)
			break;
	}
	if (priv != NULL)
		TAILQ_REMOVE(&g_destructing, priv, link);
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	if (priv == NULL) {
		UST_ERRLOG("ust_bdev_destruct_done on a bdev that is not being destroyed\n");
		return;
	}
	bdev_destruct_finish(priv, rc);
}

/*
 * The module may free the bdev inside destruct, so bdev->priv is cleared
 * first and the bdev is not touched after.
 */
static void bdev_io_device_gone(void *io_device)
{
	struct ust_bdev_priv *priv = io_device;
	struct ust_bdev *bdev = priv->bdev;
	int rc;

	bdev->priv = NULL;
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	TAILQ_INSERT_TAIL(&g_destructing, priv, link);
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	rc = bdev->fn_table->destruct(bdev->ctxt);
	if (rc > 0)
		return; /* the module calls ust_bdev_destruct_done() */
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	TAILQ_REMOVE(&g_destructing, priv, link);
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	bdev_destruct_finish(priv, rc);
}

static void bdev_unregister_release_device(void *arg)
{
	struct ust_bdev_priv *priv = arg;

	ust_io_device_unregister(priv, bdev_io_device_gone);
}

/* Runs on the unregistering thread once the last descriptor closed. */
static void bdev_unregister_finish(void *arg)
{
	struct ust_bdev_priv *priv = arg;
	struct bdev_alias *a;

	pthread_mutex_lock(&g_bdev_mgr.mutex);
	TAILQ_REMOVE(&g_bdev_mgr.bdevs, priv, link);
	bdev_name_del_locked(&priv->name_entry);
	TAILQ_FOREACH(a, &priv->aliases, link)
		bdev_name_del_locked(&a->entry);
	priv->listed = false;
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	if (priv->qos != NULL)
		bdev_qos_destroy(priv, bdev_unregister_release_device, priv);
	else
		bdev_unregister_release_device(priv);
}

static void bdev_unregister_channel(struct ust_io_channel_iter *i)
{
	struct bdev_channel *ch = ust_io_channel_get_ctx(ust_io_channel_iter_get_channel(i));

	ch->flags |= BDEV_CH_REMOVED;
	bdev_channel_fail_queued(ch, -ENODEV);
	if (ch->qos != NULL && ch->qos->thread == ch->thread)
		bdev_qos_fail_queued(ch->qos, -ENODEV);
	ust_for_each_channel_continue(i, 0);
}

static void bdev_unregister_channels_done(struct ust_io_channel_iter *i, int status)
{
	struct ust_bdev_priv *priv = ust_io_channel_iter_get_ctx(i);
	struct ust_bdev_desc *desc;
	bool none;

	pthread_mutex_lock(&g_bdev_mgr.mutex);
	priv->unreg_walked = true;
	TAILQ_FOREACH(desc, &priv->descs, link) {
		if (!desc->remove_notified) {
			desc->remove_notified = true;
			desc_send_event_locked(desc, UST_BDEV_EVENT_REMOVE);
		}
	}
	none = TAILQ_EMPTY(&priv->descs);
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	if (none)
		bdev_unregister_finish(priv);
}

void ust_bdev_unregister(struct ust_bdev *bdev, ust_bdev_unregister_cb cb, void *ctx)
{
	struct ust_bdev_priv *priv;

	if (bdev == NULL || bdev->priv == NULL || ust_get_thread() == NULL) {
		if (cb != NULL)
			cb(ctx, -EINVAL);
		return;
	}
	priv = bdev->priv;
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	if (priv->status == BDEV_STATUS_REMOVING) {
		pthread_mutex_unlock(&g_bdev_mgr.mutex);
		if (cb != NULL)
			cb(ctx, -EBUSY);
		return;
	}
	priv->status = BDEV_STATUS_REMOVING;
	priv->unreg_thread = ust_get_thread();
	priv->unreg_cb = cb;
	priv->unreg_ctx = ctx;
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	UST_DEBUGLOG(bdev, "unregistering bdev %s\n", priv->name);
	ust_for_each_channel(priv, bdev_unregister_channel, priv, bdev_unregister_channels_done);
}

int ust_bdev_unregister_by_name(const char *name, struct ust_bdev_module *module,
				ust_bdev_unregister_cb cb, void *ctx)
{
	struct ust_bdev_priv *priv;
	struct ust_bdev *bdev = NULL;

	if (name == NULL)
		return -EINVAL;
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	TAILQ_FOREACH(priv, &g_bdev_mgr.bdevs, link) {
		/* By its own name only: an alias must not delete the wrong bdev. */
		if (strcmp(priv->name, name) == 0)
			break;
	}
	if (priv != NULL && priv->bdev->module == module && priv->status == BDEV_STATUS_READY)
		bdev = priv->bdev;
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	if (bdev == NULL)
		return -ENODEV;
	ust_bdev_unregister(bdev, cb, ctx);
	return 0;
}

/* ---- start-up ----------------------------------------------------------- */

static ust_bdev_init_cb g_init_cb;
static void *g_init_ctx;
static struct ust_bdev_module *g_init_module; /* module whose init is running */
static struct ust_thread *g_init_thread;

static size_t bdev_max_ctx_size(void)
{
	struct ust_bdev_module *m;
	size_t max = 0;
	int sz;

	TAILQ_FOREACH(m, &g_bdev_mgr.modules, internal.link) {
		if (m->get_ctx_size == NULL)
			continue;
		sz = m->get_ctx_size();
		if (sz > 0 && (size_t)sz > max)
			max = (size_t)sz;
	}
	return max;
}

static void bdev_init_finish(int rc)
{
	struct ust_bdev_module *m;
	ust_bdev_init_cb cb = g_init_cb;

	g_init_cb = NULL;
	if (rc == 0) {
		TAILQ_FOREACH(m, &g_bdev_mgr.modules, internal.link) {
			if (m->init_complete != NULL)
				m->init_complete();
		}
	}
	if (cb != NULL)
		cb(g_init_ctx, rc);
}

static void bdev_init_next_module(void *arg)
{
	struct ust_bdev_module *m = arg;
	int rc;

	for (; m != NULL; m = TAILQ_NEXT(m, internal.link)) {
		g_init_module = m;
		if (m->module_init == NULL) {
			m->internal.init_done = true;
			continue;
		}
		rc = m->module_init();
		if (rc != 0) {
			UST_ERRLOG("bdev module %s failed to initialise: %s\n", m->name,
				   strerror(-rc));
			g_init_module = NULL;
			bdev_init_finish(rc);
			return;
		}
		if (m->async_init)
			return; /* continued by ust_bdev_module_init_done() */
		m->internal.init_done = true;
	}
	g_init_module = NULL;
	bdev_init_finish(0);
}

void ust_bdev_module_init_done(struct ust_bdev_module *module)
{
	if (module == NULL || module != g_init_module) {
		UST_ERRLOG("bdev module %s: init_done out of turn\n", module ? module->name : "?");
		return;
	}
	module->internal.init_done = true;
	bdev_send_msg(g_init_thread, bdev_init_next_module, TAILQ_NEXT(module, internal.link));
}

void ust_bdev_initialize(ust_bdev_init_cb cb, void *ctx)
{
	char name[64];
	int rc;

	if (g_bdev_mgr.initialized) {
		cb(ctx, -EALREADY);
		return;
	}
	g_bdev_mgr.io_size = sizeof(struct ust_bdev_io) + bdev_max_ctx_size();
	g_bdev_mgr.io_size = (g_bdev_mgr.io_size + 63) & ~(size_t)63;
	g_bdev_mgr.io_cache_size = g_bdev_opts.bdev_io_cache_size;
	snprintf(name, sizeof(name), "ust_bdev_io_%d", (int)getpid());
	g_bdev_mgr.io_pool = ust_mempool_create(name, g_bdev_opts.bdev_io_pool_size,
						g_bdev_mgr.io_size, 0, UST_ENV_SOCKET_ANY);
	if (g_bdev_mgr.io_pool == NULL) {
		UST_ERRLOG("cannot create the bdev I/O pool (%u x %zu bytes)\n",
			   g_bdev_opts.bdev_io_pool_size, g_bdev_mgr.io_size);
		cb(ctx, -ENOMEM);
		return;
	}
	g_bdev_mgr.zero_buf = ust_dma_zmalloc(BDEV_ZERO_BUF_SIZE, BDEV_BUF_ALIGN);
	if (g_bdev_mgr.zero_buf == NULL) {
		ust_mempool_free(g_bdev_mgr.io_pool);
		g_bdev_mgr.io_pool = NULL;
		cb(ctx, -ENOMEM);
		return;
	}
	rc = bdev_mgmt_register();
	if (rc != 0) {
		ust_dma_free(g_bdev_mgr.zero_buf);
		ust_mempool_free(g_bdev_mgr.io_pool);
		g_bdev_mgr.io_pool = NULL;
		cb(ctx, rc);
		return;
	}
	g_bdev_mgr.initialized = true;
	g_init_cb = cb;
	g_init_ctx = ctx;
	g_init_thread = ust_get_thread();
	bdev_init_next_module(TAILQ_FIRST(&g_bdev_mgr.modules));
}

/* ---- shutdown ----------------------------------------------------------- */

static ust_bdev_fini_cb g_fini_cb;
static void *g_fini_ctx;
static struct ust_bdev_module *g_fini_module;
static struct ust_thread *g_fini_thread;

static void bdev_fini_pool_gone(void)
{
	ust_bdev_fini_cb cb = g_fini_cb;

	ust_dma_free(g_bdev_mgr.zero_buf);
	g_bdev_mgr.zero_buf = NULL;
	ust_mempool_free(g_bdev_mgr.io_pool);
	g_bdev_mgr.io_pool = NULL;
	g_bdev_mgr.initialized = false;
	g_fini_cb = NULL;
	if (cb != NULL)
		cb(g_fini_ctx);
}

static void bdev_fini_modules(void *arg)
{
	struct ust_bdev_module *m = arg;

	for (; m != NULL; m = TAILQ_PREV(m, bdev_module_list, internal.link)) {
		if (!m->internal.init_done)
			continue;
		m->internal.init_done = false;
		if (m->module_fini == NULL)
			continue;
		g_fini_module = m;
		m->module_fini();
		if (m->async_fini)
			return; /* continued by ust_bdev_module_fini_done() */
	}
	g_fini_module = NULL;
	bdev_mgmt_unregister(bdev_fini_pool_gone);
}

void ust_bdev_module_fini_done(void)
{
	struct ust_bdev_module *m = g_fini_module;

	if (m == NULL) {
		UST_ERRLOG("bdev module fini_done out of turn\n");
		return;
	}
	bdev_send_msg(g_fini_thread, bdev_fini_modules, TAILQ_PREV(m, bdev_module_list, internal.link));
}

static bool bdev_claimed_by_registered(struct ust_bdev_priv *priv)
{
	return priv->claim_module != NULL;
}

/*
 * Picks the next bdev to unregister: the newest one nobody claims, so a
 * vbdev always goes before its base (whose claim its destruct releases).
 */
static struct ust_bdev *bdev_fini_pick(void)
{
	struct ust_bdev_priv *priv, *fallback = NULL;
	struct ust_bdev *bdev = NULL;

	pthread_mutex_lock(&g_bdev_mgr.mutex);
	TAILQ_FOREACH_REVERSE(priv, &g_bdev_mgr.bdevs, bdev_priv_list, link) {
		if (priv->status != BDEV_STATUS_READY) {
			/* One at a time: a vbdev's destruct must release its base first. */
			bdev = NULL;
			fallback = NULL;
			break;
		}
		if (fallback == NULL)
			fallback = priv;
		if (bdev == NULL && !bdev_claimed_by_registered(priv))
			bdev = priv->bdev;
	}
	if (bdev == NULL && fallback != NULL) {
		UST_WARNLOG("bdev %s is still claimed at shutdown; unregistering it anyway\n",
			    fallback->name);
		bdev = fallback->bdev;
	}
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	return bdev;
}

static void bdev_fini_next(void)
{
	struct ust_bdev *bdev = bdev_fini_pick();
	bool busy;

	if (bdev != NULL) {
		ust_bdev_unregister(bdev, NULL, NULL);
		return;
	}
	pthread_mutex_lock(&g_bdev_mgr.mutex);
	busy = !TAILQ_EMPTY(&g_bdev_mgr.bdevs);
	pthread_mutex_unlock(&g_bdev_mgr.mutex);
	if (busy)
		return; /* an unregister in progress calls back here */
	g_fini_in_progress = false;
	bdev_fini_modules(TAILQ_LAST(&g_bdev_mgr.modules, bdev_module_list));
}

/* fini_starts still running, plus one for the loop starting them (g_fini_thread only). */
static uint32_t g_fini_start_pending;

/* One fini_start is finished: once all are, unregister the bdevs top-down. */
static void bdev_fini_start_put(void)
{
	if (--g_fini_start_pending > 0)
		return;
	g_fini_in_progress = true;
	bdev_fini_next();
}

static void bdev_fini_start_done_msg(void *arg)
{
	struct ust_bdev_module *m = arg;

	if (!m->internal.fini_start_pending) {
		UST_ERRLOG("bdev module %s: fini_start_done out of turn\n", m->name);
		return;
	}
	m->internal.fini_start_pending = false;
	bdev_fini_start_put();
}

void ust_bdev_module_fini_start_done(struct ust_bdev_module *module)
{
	if (module == NULL || g_fini_thread == NULL) {
		UST_ERRLOG("bdev module fini_start_done outside of shutdown\n");
		return;
	}
	/* Always by message: a fini_start may call this before returning. */
	bdev_send_msg(g_fini_thread, bdev_fini_start_done_msg, module);
}

void ust_bdev_finish(ust_bdev_fini_cb cb, void *ctx)
{
	struct ust_bdev_module *m;

	if (!g_bdev_mgr.initialized) {
		if (cb != NULL)
			cb(ctx);
		return;
	}
	g_fini_cb = cb;
	g_fini_ctx = ctx;
	g_fini_thread = ust_get_thread();
	g_fini_start_pending = 1;
	TAILQ_FOREACH(m, &g_bdev_mgr.modules, internal.link) {
		if (m->fini_start == NULL || !m->internal.init_done)
			continue;
		if (m->async_fini_start) {
			m->internal.fini_start_pending = true;
			g_fini_start_pending++;
		}
		m->fini_start();
	}
	bdev_fini_start_put();
}

/* ---- the bdev subsystem ------------------------------------------------- */

static ust_subsystem_done_fn g_subsys_done;

static void bdev_subsystem_init_done(void *ctx, int rc)
{
	g_subsys_done(rc, ctx);
}

static void bdev_subsystem_init(ust_subsystem_done_fn done, void *ctx)
{
	g_subsys_done = done;
	ust_bdev_initialize(bdev_subsystem_init_done, ctx);
}

static void bdev_subsystem_fini_done(void *ctx)
{
	g_subsys_done(0, ctx);
}

static void bdev_subsystem_fini(ust_subsystem_done_fn done, void *ctx)
{
	g_subsys_done = done;
	ust_bdev_finish(bdev_subsystem_fini_done, ctx);
}

static struct ust_subsystem g_bdev_subsystem = {
	.name = "bdev",
	.init = bdev_subsystem_init,
	.fini = bdev_subsystem_fini,
	.write_config_json = bdev_write_config_json,
};

UST_SUBSYSTEM_REGISTER(g_bdev_subsystem)
