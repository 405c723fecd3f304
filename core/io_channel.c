/*
 * I/O devices and per-thread I/O channels.
 *
 * An io_device is any unique pointer a module registers together with the
 * callbacks that build and tear down one thread's context for it (for NVMe,
 * a queue pair). ust_get_io_channel() returns the calling thread's channel,
 * creating it on first use; ust_put_io_channel() drops a reference and, at
 * zero, queues the destroy to the channel's thread so a put from inside an
 * I/O completion never frees memory its caller is still using. A channel
 * revived by a get before that message runs is kept.
 *
 * The registry, and every thread's channel list, are control-path state
 * under g_ust_thread_lock; channel callbacks always run without it. The
 * registry is hashed by the device pointer and a thread's channel for a
 * device is found among that device's channels (one per thread at most), so
 * registering and opening stay O(1) with thousands of devices (lvols).
 *
 * Guarantees: create_cb and destroy_cb run on the channel's thread; an
 * unregistered device hands out no new channels and its unregister_cb runs
 * on the unregistering thread only after its last channel is destroyed and
 * no for_each_channel walk is still visiting it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/hash.h"
#include "ustor/log.h"
#include "ustor/thread.h"

#include "thread_internal.h"

#define UST_IO_DEVICE_NAME_LEN 64

struct ust_io_device {
	void *io_device;
	ust_io_channel_create_cb create_cb;
	ust_io_channel_destroy_cb destroy_cb;
	uint32_t ctx_size;
	/* Channels in existence plus for_each walks in flight. */
	uint32_t refcnt;
	bool unregistered;
	ust_io_device_unregister_cb unregister_cb;
	struct ust_thread *unregister_thread;
	TAILQ_ENTRY(ust_io_device) link;
	struct ust_hash_node hnode;              /* in g_io_device_hash while registered */
	struct ust_io_channel_list channels;     /* one per thread at most */
	char name[UST_IO_DEVICE_NAME_LEN];
};

static TAILQ_HEAD(, ust_io_device) g_io_devices = TAILQ_HEAD_INITIALIZER(g_io_devices);
static struct ust_hash g_io_device_hash = UST_HASH_INITIALIZER;

struct ust_io_channel_iter {
	struct ust_io_device *dev;
	void *io_device;
	ust_channel_msg fn;
	ust_channel_for_each_cpl cpl;
	void *ctx;
	struct ust_thread *orig;
	uint64_t last_thread_id;
	struct ust_io_channel *ch;
	int status;
};

/* ---- registry ----------------------------------------------------------- */

static struct ust_io_device *device_find_locked(void *io_device)
{
	struct ust_hash_node *n;

	for (n = ust_hash_first(&g_io_device_hash, ust_hash_ptr(io_device)); n != NULL;
	     n = ust_hash_next(n)) {
		struct ust_io_device *dev = (struct ust_io_device *)((char *)n -
								     offsetof(struct ust_io_device, hnode));

		if (dev->io_device == io_device)
			return dev;
	}
	return NULL;
}

static void device_unlink_locked(struct ust_io_device *dev)
{
	TAILQ_REMOVE(&g_io_devices, dev, link);
	ust_hash_remove(&g_io_device_hash, &dev->hnode);
}

void ust_io_device_register(void *io_device, ust_io_channel_create_cb create_cb,
			    ust_io_channel_destroy_cb destroy_cb, uint32_t ctx_size,
			    const char *name)
{
	struct ust_io_device *dev;

	if (io_device == NULL || create_cb == NULL || destroy_cb == NULL) {
		UST_ERRLOG("io_device %s: device pointer and callbacks are required\n",
			   name ? name : "");
		return;
	}
	dev = calloc(1, sizeof(*dev));
	if (dev == NULL) {
		UST_ERRLOG("io_device %s: out of memory\n", name ? name : "");
		return;
	}
	dev->io_device = io_device;
	dev->create_cb = create_cb;
	dev->destroy_cb = destroy_cb;
	dev->ctx_size = ctx_size;
	TAILQ_INIT(&dev->channels);
	if (name != NULL)
		snprintf(dev->name, sizeof(dev->name), "%s", name);
	else
		snprintf(dev->name, sizeof(dev->name), "%p", io_device);

	pthread_mutex_lock(&g_ust_thread_lock);
	if (device_find_locked(io_device) != NULL) {
		pthread_mutex_unlock(&g_ust_thread_lock);
		UST_ERRLOG("io_device %s (%p) is already registered\n", dev->name, io_device);
		free(dev);
		return;
	}
	TAILQ_INSERT_TAIL(&g_io_devices, dev, link);
	ust_hash_insert(&g_io_device_hash, &dev->hnode, ust_hash_ptr(io_device));
	pthread_mutex_unlock(&g_ust_thread_lock);
}

static void device_unregister_done(void *arg)
{
	struct ust_io_device *dev = arg;

	if (dev->unregister_cb != NULL)
		dev->unregister_cb(dev->io_device);
	free(dev);
}

/* Drops one reference; the last one of an unregistered device finishes it. */
static void device_put_locked(struct ust_io_device *dev)
{
	int rc;

	dev->refcnt--;
	if (!dev->unregistered || dev->refcnt > 0)
		return;
	rc = ust_thread_send_msg(dev->unregister_thread, device_unregister_done, dev);
	if (rc != 0) {
		UST_ERRLOG("io_device %s: cannot complete unregister on thread %s: %s\n",
			   dev->name, dev->unregister_thread->name, strerror(-rc));
		free(dev);
	}
}

void ust_io_device_unregister(void *io_device, ust_io_device_unregister_cb unregister_cb)
{
	struct ust_thread *t = ust_get_thread();
	struct ust_io_device *dev;

	if (t == NULL) {
		UST_ERRLOG("io_device %p unregistered with no current thread\n", io_device);
		return;
	}
	pthread_mutex_lock(&g_ust_thread_lock);
	dev = device_find_locked(io_device);
	if (dev == NULL) {
		pthread_mutex_unlock(&g_ust_thread_lock);
		UST_ERRLOG("io_device %p is not registered\n", io_device);
		return;
	}
	/* Off the registry at once: no new channels, and the pointer may be reused. */
	device_unlink_locked(dev);
	dev->unregistered = true;
	dev->unregister_cb = unregister_cb;
	dev->unregister_thread = t;
	/* Hold a reference so that "no channels" completes through the same path. */
	dev->refcnt++;
	device_put_locked(dev);
	pthread_mutex_unlock(&g_ust_thread_lock);
}

uint32_t ust_io_device_drop_registered(void)
{
	struct ust_io_device *dev;
	uint32_t n = 0;

	pthread_mutex_lock(&g_ust_thread_lock);
	while ((dev = TAILQ_FIRST(&g_io_devices)) != NULL) {
		UST_WARNLOG("io_device %s is still registered at thread library fini\n", dev->name);
		device_unlink_locked(dev);
		free(dev);
		n++;
	}
	pthread_mutex_unlock(&g_ust_thread_lock);
	return n;
}

/* ---- channels ----------------------------------------------------------- */

static struct ust_io_channel *thread_find_channel_locked(struct ust_thread *t,
							 struct ust_io_device *dev)
{
	struct ust_io_channel *ch;

	TAILQ_FOREACH(ch, &dev->channels, dev_link) {
		if (ch->thread == t)
			return ch;
	}
	return NULL;
}

static struct ust_io_channel *channel_create(struct ust_thread *t, struct ust_io_device *dev)
{
	struct ust_io_channel *ch;
	size_t size;
	int rc;

	size = sizeof(*ch) + dev->ctx_size;
	size = (size + 63) & ~(size_t)63;
	ch = aligned_alloc(64, size);
	if (ch == NULL)
		return NULL;
	memset(ch, 0, size);
	ch->thread = t;
	ch->dev = dev;
	ch->ref = 1;
	rc = dev->create_cb(dev->io_device, ch->ctx);
	if (rc != 0) {
		UST_ERRLOG("io_device %s: creating a channel on thread %s failed: %s\n", dev->name,
			   t->name, strerror(rc < 0 ? -rc : rc));
		free(ch);
		return NULL;
	}
	return ch;
}

struct ust_io_channel *ust_get_io_channel(void *io_device)
{
	struct ust_thread *t = ust_get_thread();
	struct ust_io_device *dev;
	struct ust_io_channel *ch;

	if (t == NULL) {
		UST_ERRLOG("ust_get_io_channel(%p) with no current thread\n", io_device);
		return NULL;
	}
	if (ust_thread_state_get(t) == UST_THREAD_STATE_EXITED)
		return NULL;

	pthread_mutex_lock(&g_ust_thread_lock);
	dev = device_find_locked(io_device);
	if (dev == NULL) {
		pthread_mutex_unlock(&g_ust_thread_lock);
		return NULL;
	}
	ch = thread_find_channel_locked(t, dev);
	if (ch != NULL) {
		/* A pending destroy sees ref > 0 and leaves it alone. */
		ch->ref++;
		pthread_mutex_unlock(&g_ust_thread_lock);
		return ch;
	}
	/* Pins the device while create_cb runs unlocked. */
	dev->refcnt++;
	pthread_mutex_unlock(&g_ust_thread_lock);

	ch = channel_create(t, dev);

	pthread_mutex_lock(&g_ust_thread_lock);
	if (ch != NULL) {
		TAILQ_INSERT_TAIL(&t->io_channels, ch, link);
		TAILQ_INSERT_TAIL(&dev->channels, ch, dev_link);
	} else
		device_put_locked(dev);
	pthread_mutex_unlock(&g_ust_thread_lock);
	return ch;
}

static void channel_destroy(struct ust_io_channel *ch)
{
	struct ust_io_device *dev = ch->dev;

	/* Unlinked first so a get from inside destroy_cb builds a fresh channel. */
	pthread_mutex_lock(&g_ust_thread_lock);
	TAILQ_REMOVE(&ch->thread->io_channels, ch, link);
	TAILQ_REMOVE(&dev->channels, ch, dev_link);
	pthread_mutex_unlock(&g_ust_thread_lock);

	dev->destroy_cb(dev->io_device, ch->ctx);

	pthread_mutex_lock(&g_ust_thread_lock);
	device_put_locked(dev);
	pthread_mutex_unlock(&g_ust_thread_lock);
	free(ch);
}

static void channel_destroy_msg(void *arg)
{
	struct ust_io_channel *ch = arg;

	ch->destroy_pending = false;
	if (ch->ref > 0)
		return;
	channel_destroy(ch);
}

void ust_put_io_channel(struct ust_io_channel *ch)
{
	int rc;

	if (ch == NULL)
		return;
	if (ch->thread != ust_get_thread()) {
		UST_ERRLOG("io_device %s: channel of thread %s put from another thread\n",
			   ch->dev->name, ch->thread->name);
		return;
	}
	if (ch->ref == 0) {
		UST_ERRLOG("io_device %s: channel put more often than got\n", ch->dev->name);
		return;
	}
	if (--ch->ref > 0 || ch->destroy_pending)
		return;
	rc = ust_thread_send_msg(ch->thread, channel_destroy_msg, ch);
	if (rc == 0) {
		ch->destroy_pending = true;
		return;
	}
	/* The exit path (ust_io_channel_reap_unreferenced) destroys it instead. */
	UST_ERRLOG("io_device %s: cannot queue channel destroy on thread %s: %s\n",
		   ch->dev->name, ch->thread->name, strerror(-rc));
}

void ust_io_channel_reap_unreferenced(struct ust_thread *t)
{
	struct ust_io_channel *ch, *next;

	for (ch = TAILQ_FIRST(&t->io_channels); ch != NULL; ch = next) {
		next = TAILQ_NEXT(ch, link);
		if (ch->ref == 0 && !ch->destroy_pending) {
			channel_destroy(ch);
			/* destroy_cb may have changed the list. */
			next = TAILQ_FIRST(&t->io_channels);
		}
	}
}

void ust_io_channel_describe(struct ust_thread *t, char *buf, size_t len)
{
	struct ust_io_channel *ch;
	size_t used;

	pthread_mutex_lock(&g_ust_thread_lock);
	TAILQ_FOREACH(ch, &t->io_channels, link) {
		used = strlen(buf);
		if (used + 1 >= len)
			break;
		snprintf(buf + used, len - used, "%s%s", used ? ", " : "", ch->dev->name);
	}
	pthread_mutex_unlock(&g_ust_thread_lock);
}

void *ust_io_channel_get_ctx(struct ust_io_channel *ch)
{
	return ch->ctx;
}

struct ust_io_channel *ust_io_channel_from_ctx(void *ctx)
{
	if (ctx == NULL)
		return NULL;
	return (struct ust_io_channel *)((uint8_t *)ctx - offsetof(struct ust_io_channel, ctx));
}

struct ust_thread *ust_io_channel_get_thread(struct ust_io_channel *ch)
{
	return ch->thread;
}

void *ust_io_channel_get_io_device(struct ust_io_channel *ch)
{
	return ch->dev->io_device;
}

/* ---- for_each_channel --------------------------------------------------- */

static void iter_visit(void *arg);

static void iter_complete_msg(void *arg)
{
	struct ust_io_channel_iter *i = arg;

	i->ch = NULL;
	i->cpl(i, i->status);
	if (i->dev != NULL) {
		pthread_mutex_lock(&g_ust_thread_lock);
		device_put_locked(i->dev);
		pthread_mutex_unlock(&g_ust_thread_lock);
	}
	free(i);
}

static void iter_finish(struct ust_io_channel_iter *i)
{
	int rc;

	rc = ust_thread_send_msg(i->orig, iter_complete_msg, i);
	if (rc != 0) {
		UST_ERRLOG("for_each_channel cannot complete on thread %s: %s\n", i->orig->name,
			   strerror(-rc));
		if (i->dev != NULL) {
			pthread_mutex_lock(&g_ust_thread_lock);
			device_put_locked(i->dev);
			pthread_mutex_unlock(&g_ust_thread_lock);
		}
		free(i);
	}
}

/*
 * Sends the walk to the next thread (by id) holding a channel of the device.
 * Threads are visited by id rather than by channel pointer so that channels
 * destroyed or created meanwhile can never leave the walk holding freed memory.
 */
static bool iter_advance(struct ust_io_channel_iter *i)
{
	struct ust_thread *t;
	int rc;

	pthread_mutex_lock(&g_ust_thread_lock);
	TAILQ_FOREACH(t, &g_ust_threads, link) {
		if (t->id <= i->last_thread_id)
			continue;
		if (thread_find_channel_locked(t, i->dev) == NULL)
			continue;
		i->last_thread_id = t->id;
		rc = ust_thread_send_msg(t, iter_visit, i);
		if (rc == 0)
			break;
		UST_ERRLOG("for_each_channel skips thread %s: %s\n", t->name, strerror(-rc));
	}
	pthread_mutex_unlock(&g_ust_thread_lock);
	return t != NULL;
}

static void iter_visit(void *arg)
{
	struct ust_io_channel_iter *i = arg;
	struct ust_io_channel *ch;

	pthread_mutex_lock(&g_ust_thread_lock);
	ch = thread_find_channel_locked(ust_get_thread(), i->dev);
	pthread_mutex_unlock(&g_ust_thread_lock);
	if (ch == NULL) {
		/* Destroyed since the walk chose this thread. */
		if (!iter_advance(i))
			iter_finish(i);
		return;
	}
	i->ch = ch;
	i->fn(i);
}

void ust_for_each_channel_continue(struct ust_io_channel_iter *i, int status)
{
	i->status = status;
	i->ch = NULL;
	if (status != 0 || !iter_advance(i))
		iter_finish(i);
}

void ust_for_each_channel(void *io_device, ust_channel_msg fn, void *ctx,
			  ust_channel_for_each_cpl cpl)
{
	struct ust_thread *t = ust_get_thread();
	struct ust_io_channel_iter *i;

	if (t == NULL || fn == NULL || cpl == NULL) {
		UST_ERRLOG("ust_for_each_channel needs a current thread, fn and cpl\n");
		return;
	}
	i = calloc(1, sizeof(*i));
	if (i == NULL) {
		UST_ERRLOG("ust_for_each_channel: out of memory\n");
		return;
	}
	i->io_device = io_device;
	i->fn = fn;
	i->cpl = cpl;
	i->ctx = ctx;
	i->orig = t;

	pthread_mutex_lock(&g_ust_thread_lock);
	i->dev = device_find_locked(io_device);
	if (i->dev != NULL)
		i->dev->refcnt++;
	pthread_mutex_unlock(&g_ust_thread_lock);

	if (i->dev == NULL) {
		UST_ERRLOG("ust_for_each_channel: io_device %p is not registered\n", io_device);
		i->status = -ENODEV;
		iter_finish(i);
		return;
	}
	if (!iter_advance(i))
		iter_finish(i);
}

void *ust_io_channel_iter_get_io_device(struct ust_io_channel_iter *i)
{
	return i->io_device;
}

struct ust_io_channel *ust_io_channel_iter_get_channel(struct ust_io_channel_iter *i)
{
	return i->ch;
}

void *ust_io_channel_iter_get_ctx(struct ust_io_channel_iter *i)
{
	return i->ctx;
}
