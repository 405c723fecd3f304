/*
 * Lightweight threads and their message rings.
 *
 * A ust_thread is polled by exactly one OS thread at a time. Other OS threads
 * reach it only through ust_thread_send_msg(), which takes a message object
 * from the sender's own cache (no shared lock on the common path) and pushes
 * a pointer into the target's multi-producer ring; messages from one sender
 * therefore run in send order. The receiver returns message objects to its
 * own cache, so in steady state messages circulate between thread caches and
 * the shared pool is touched once per UST_THREAD_MSG_CACHE_BATCH messages.
 *
 * Guarantees: every callback of a thread runs on the OS thread polling it,
 * one at a time; a thread becomes exited only when its ring is empty and it
 * holds no pollers and no I/O channels; a send that returned 0 to a thread
 * that has not been destroyed is run.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/thread.h"

#include "thread_internal.h"

pthread_mutex_t g_ust_thread_lock = PTHREAD_MUTEX_INITIALIZER;
struct ust_thread_list g_ust_threads = TAILQ_HEAD_INITIALIZER(g_ust_threads);

static struct ust_mempool *g_msg_pool;
static struct ust_thread_lib_ops g_ops;
static bool g_lib_initialized;
static struct ust_thread *g_app_thread;
static uint32_t g_thread_count;
static uint64_t g_next_thread_id = 1;

static __thread struct ust_thread *tls_thread;

/* ---- library ------------------------------------------------------------ */

int ust_thread_lib_init(const struct ust_thread_lib_ops *ops)
{
	char name[64];

	if (g_lib_initialized) {
		UST_ERRLOG("thread library already initialised\n");
		return -EBUSY;
	}
	if (ops != NULL && ops->schedule == NULL) {
		UST_ERRLOG("thread library ops without a schedule function\n");
		return -EINVAL;
	}
	/* The pool name must be unique per process for the DPDK env. */
	snprintf(name, sizeof(name), "ust_msg_pool_%d", (int)getpid());
	g_msg_pool = ust_mempool_create(name, UST_THREAD_MSG_POOL_SIZE, sizeof(struct ust_msg), 0,
					UST_ENV_SOCKET_ANY);
	if (g_msg_pool == NULL) {
		UST_ERRLOG("cannot create the message pool (%d messages)\n",
			   UST_THREAD_MSG_POOL_SIZE);
		return -ENOMEM;
	}
	if (ops != NULL)
		g_ops = *ops;
	else
		memset(&g_ops, 0, sizeof(g_ops));
	g_lib_initialized = true;
	return 0;
}

void ust_thread_lib_fini(void)
{
	uint32_t left;

	if (!g_lib_initialized)
		return;
	pthread_mutex_lock(&g_ust_thread_lock);
	left = g_thread_count;
	pthread_mutex_unlock(&g_ust_thread_lock);
	if (left != 0) {
		/* Their message caches point into the pool: keep it rather than crash. */
		UST_ERRLOG("%" PRIu32 " thread(s) not destroyed; keeping the message pool\n", left);
		return;
	}
	/* Not fatal: a module forgot to unregister; with no threads left no channel can exist. */
	ust_io_device_drop_registered();
	ust_mempool_free(g_msg_pool);
	g_msg_pool = NULL;
	memset(&g_ops, 0, sizeof(g_ops));
	g_lib_initialized = false;
}

/* ---- message objects ---------------------------------------------------- */

static struct ust_msg *msg_get(struct ust_thread *local)
{
	if (local == NULL)
		return ust_mempool_get(g_msg_pool);
	if (local->msg_cache_count == 0) {
		if (ust_mempool_get_bulk(g_msg_pool, (void **)local->msg_cache,
					 UST_THREAD_MSG_CACHE_BATCH) == 0)
			local->msg_cache_count = UST_THREAD_MSG_CACHE_BATCH;
		else
			return ust_mempool_get(g_msg_pool);
	}
	return local->msg_cache[--local->msg_cache_count];
}

static void msg_put(struct ust_thread *local, struct ust_msg *msg)
{
	if (local == NULL) {
		ust_mempool_put(g_msg_pool, msg);
		return;
	}
	if (local->msg_cache_count == UST_THREAD_MSG_CACHE_SIZE) {
		local->msg_cache_count -= UST_THREAD_MSG_CACHE_BATCH;
		ust_mempool_put_bulk(g_msg_pool, (void **)&local->msg_cache[local->msg_cache_count],
				     UST_THREAD_MSG_CACHE_BATCH);
	}
	local->msg_cache[local->msg_cache_count++] = msg;
}

static void msg_cache_release(struct ust_thread *t)
{
	if (t->msg_cache_count > 0)
		ust_mempool_put_bulk(g_msg_pool, (void **)t->msg_cache, t->msg_cache_count);
	t->msg_cache_count = 0;
}

/* ---- overflow ---------------------------------------------------------- */

/*
 * Messages never fail for a full ring. A burst (thousands of bdevs being
 * examined, each sending a few control messages to one thread) can fill
 * the 8192 slots, and a control message dropped there hangs whoever waits
 * for it. So a message that finds the ring full, or no pooled message,
 * goes to the target's overflow list (malloc'd, under a lock: the rare
 * path), and while that list is not empty every new message queues behind
 * it, so each sender's messages still run in the order sent. The owner
 * runs the list once its ring is drained. Only malloc failing fails a send.
 */
static int overflow_push(struct ust_thread *target, ust_msg_fn fn, void *ctx)
{
	struct ust_overflow_msg *m = malloc(sizeof(*m));

	if (m == NULL)
		return -ENOMEM;
	m->fn = fn;
	m->ctx = ctx;
	m->next = NULL;
	pthread_mutex_lock(&target->overflow_lock);
	*target->overflow_tail = m;
	target->overflow_tail = &m->next;
	__atomic_store_n(&target->overflowing, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&target->overflow_lock);
	return 0;
}

/* The overflow list, taken whole; new sends go to the ring again from now on. */
static struct ust_overflow_msg *overflow_take(struct ust_thread *t)
{
	struct ust_overflow_msg *head;

	pthread_mutex_lock(&t->overflow_lock);
	head = t->overflow_head;
	t->overflow_head = NULL;
	t->overflow_tail = &t->overflow_head;
	__atomic_store_n(&t->overflowing, false, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&t->overflow_lock);
	return head;
}

/* Take the overflow list and run (run: true) or drop each message: how many. */
static uint32_t overflow_consume(struct ust_thread *t, bool run)
{
	struct ust_overflow_msg *m, *next;
	uint32_t n = 0;

	for (m = overflow_take(t); m != NULL; m = next) {
		next = m->next;
		if (run)
			m->fn(m->ctx);
		free(m);
		n++;
	}
	return n;
}

static bool overflow_pending(const struct ust_thread *t)
{
	return __atomic_load_n(&t->overflowing, __ATOMIC_ACQUIRE);
}

/* Messages in the ring or on the overflow list. */
static bool thread_msgs_pending(struct ust_thread *t)
{
	return ust_ring_count(t->messages) != 0 || overflow_pending(t);
}

/*
 * Run the overflow list after the ring is empty: everything in the ring was
 * sent before the list began (new sends queued behind it), and whatever
 * reaches the ring after the take is newer than the whole list.
 */
static uint32_t thread_run_overflow(struct ust_thread *t)
{
	if (!overflow_pending(t) || ust_ring_count(t->messages) != 0)
		return 0;
	return overflow_consume(t, true);
}

/* ---- threads ------------------------------------------------------------ */

static void thread_init_fields(struct ust_thread *t, const char *name,
			       const struct ust_cpuset *cpumask)
{
	uint32_t cpu;

	TAILQ_INIT(&t->active_pollers);
	TAILQ_INIT(&t->paused_timed_pollers);
	TAILQ_INIT(&t->io_channels);
	t->state = UST_THREAD_STATE_RUNNING;
	t->tsc_last = ust_get_ticks();
	if (cpumask != NULL) {
		t->cpumask = *cpumask;
	} else {
		ust_cpuset_zero(&t->cpumask);
		for (cpu = 0; cpu < UST_CPUSET_SIZE; cpu++)
			ust_cpuset_set(&t->cpumask, cpu, true);
	}
	if (name != NULL)
		snprintf(t->name, sizeof(t->name), "%s", name);
	else
		snprintf(t->name, sizeof(t->name), "thread%" PRIu64, t->id);
}

static void thread_unlink(struct ust_thread *t)
{
	pthread_mutex_lock(&g_ust_thread_lock);
	TAILQ_REMOVE(&g_ust_threads, t, link);
	g_thread_count--;
	if (g_app_thread == t)
		g_app_thread = NULL;
	pthread_mutex_unlock(&g_ust_thread_lock);
}

static void thread_free(struct ust_thread *t)
{
	void *msgs[UST_THREAD_MSG_BATCH];
	size_t n, dropped = 0;

	/* A sender that raced with the exit may have queued after the last poll. */
	while ((n = ust_ring_dequeue(t->messages, msgs, UST_THREAD_MSG_BATCH)) > 0) {
		ust_mempool_put_bulk(g_msg_pool, msgs, n);
		dropped += n;
	}
	dropped += overflow_consume(t, false);
	if (dropped > 0)
		UST_WARNLOG("thread %s destroyed with %zu message(s) never run\n", t->name, dropped);
	pthread_mutex_destroy(&t->overflow_lock);
	ust_ring_free(t->messages);
	msg_cache_release(t);
	ust_poller_free_all(t);
	free(t);
}

struct ust_thread *ust_thread_create(const char *name, const struct ust_cpuset *cpumask)
{
	struct ust_thread *t;
	size_t size;
	int rc;

	if (!g_lib_initialized) {
		UST_ERRLOG("ust_thread_lib_init() has not been called\n");
		return NULL;
	}
	size = sizeof(*t) + g_ops.ctx_size;
	size = (size + 63) & ~(size_t)63;
	t = aligned_alloc(64, size);
	if (t == NULL)
		return NULL;
	memset(t, 0, size);
	pthread_mutex_init(&t->overflow_lock, NULL);
	t->overflow_tail = &t->overflow_head;
	t->messages = ust_ring_create(UST_RING_MP_SC, UST_THREAD_MSG_RING_SIZE, UST_ENV_SOCKET_ANY);
	if (t->messages == NULL) {
		UST_ERRLOG("cannot create the message ring of thread %s\n", name ? name : "");
		free(t);
		return NULL;
	}

	pthread_mutex_lock(&g_ust_thread_lock);
	t->id = g_next_thread_id++;
	thread_init_fields(t, name, cpumask);
	TAILQ_INSERT_TAIL(&g_ust_threads, t, link);
	g_thread_count++;
	if (g_app_thread == NULL)
		g_app_thread = t;
	pthread_mutex_unlock(&g_ust_thread_lock);

	if (g_ops.schedule != NULL) {
		rc = g_ops.schedule(t);
		if (rc != 0) {
			UST_ERRLOG("cannot schedule thread %s: %s\n", t->name, strerror(-rc));
			thread_unlink(t);
			thread_free(t);
			return NULL;
		}
	}
	return t;
}

int ust_thread_exit(struct ust_thread *thread)
{
	if (thread == NULL)
		thread = tls_thread;
	if (thread == NULL || thread != tls_thread) {
		UST_ERRLOG("ust_thread_exit must be called on the thread that exits\n");
		return -EINVAL;
	}
	if (ust_thread_state_get(thread) != UST_THREAD_STATE_RUNNING)
		return 0;
	thread->exit_tsc = ust_get_ticks();
	thread->exit_warned = false;
	__atomic_store_n(&thread->state, UST_THREAD_STATE_EXITING, __ATOMIC_RELEASE);
	return 0;
}

bool ust_thread_is_exited(struct ust_thread *thread)
{
	return ust_thread_state_get(thread) == UST_THREAD_STATE_EXITED;
}

bool ust_thread_is_running(struct ust_thread *thread)
{
	return ust_thread_state_get(thread) == UST_THREAD_STATE_RUNNING;
}

void ust_thread_destroy(struct ust_thread *thread)
{
	if (thread == NULL)
		return;
	if (!ust_thread_is_exited(thread)) {
		UST_ERRLOG("thread %s destroyed before it exited; not freeing it\n", thread->name);
		return;
	}
	thread_unlink(thread);
	if (tls_thread == thread)
		tls_thread = NULL;
	thread_free(thread);
}

/* ---- polling ------------------------------------------------------------ */

static uint32_t thread_run_msgs(struct ust_thread *t, uint32_t max_msgs)
{
	void *msgs[UST_THREAD_MSG_BATCH];
	uint32_t done = 0;
	size_t n, i;

	if (max_msgs == 0)
		max_msgs = UST_THREAD_MSG_BATCH;
	while (done < max_msgs) {
		uint32_t want = max_msgs - done;

		if (want > UST_THREAD_MSG_BATCH)
			want = UST_THREAD_MSG_BATCH;
		n = ust_ring_dequeue(t->messages, msgs, want);
		for (i = 0; i < n; i++) {
			struct ust_msg *msg = msgs[i];
			ust_msg_fn fn = msg->fn;
			void *ctx = msg->ctx;

			/* Released first so fn's own sends can reuse it. */
			msg_put(t, msg);
			fn(ctx);
		}
		done += n;
		if (n < want)
			break;
	}
	return done + thread_run_overflow(t);
}

static void thread_warn_slow_exit(struct ust_thread *t)
{
	char pollers[256] = "", channels[256] = "";

	ust_poller_describe(t, pollers, sizeof(pollers));
	ust_io_channel_describe(t, channels, sizeof(channels));
	UST_WARNLOG("thread %s has been exiting for over %d s; pollers left: [%s], "
		    "I/O channels left: [%s]\n",
		    t->name, UST_THREAD_EXIT_WARN_SEC, pollers, channels);
	t->exit_warned = true;
}

static void thread_try_exit(struct ust_thread *t, uint64_t now)
{
	ust_io_channel_reap_unreferenced(t);
	if (t->poller_count == 0 && TAILQ_EMPTY(&t->io_channels) && !thread_msgs_pending(t)) {
		__atomic_store_n(&t->state, UST_THREAD_STATE_EXITED, __ATOMIC_RELEASE);
		return;
	}
	if (!t->exit_warned && now > t->exit_tsc &&
	    now - t->exit_tsc > UST_THREAD_EXIT_WARN_SEC * ust_get_ticks_hz())
		thread_warn_slow_exit(t);
}

static void thread_account(struct ust_thread *t, uint64_t start, bool busy)
{
	uint64_t end = ust_get_ticks();

	/* A caller-supplied now may be ahead of the clock; never count backwards. */
	if (end < start)
		end = start;
	if (busy)
		t->stats.busy_tsc += end - start;
	else
		t->stats.idle_tsc += end - start;
	t->tsc_last = end;
}

int ust_thread_poll(struct ust_thread *thread, uint32_t max_msgs, uint64_t now)
{
	struct ust_thread *orig = tls_thread;
	bool busy;

	if (__builtin_expect(thread == NULL, 0))
		return -EINVAL;
	tls_thread = thread;
	if (now == 0)
		now = ust_get_ticks();
	thread->tsc_last = now;

	busy = thread_run_msgs(thread, max_msgs) > 0;
	if (!TAILQ_EMPTY(&thread->active_pollers))
		busy |= ust_poller_run_active(thread);
	if (thread->heap_len > 0)
		busy |= ust_poller_run_timed(thread, now);
	if (__builtin_expect(ust_thread_state_get(thread) == UST_THREAD_STATE_EXITING, 0))
		thread_try_exit(thread, now);

	thread_account(thread, now, busy);
	tls_thread = orig;
	return busy ? 1 : 0;
}

uint64_t ust_thread_next_poller_expiration(struct ust_thread *thread)
{
	if (thread->heap_len == 0)
		return 0;
	return thread->timed_heap[0]->next_run;
}

bool ust_thread_has_active_pollers(struct ust_thread *thread)
{
	return thread->active_running_count > 0;
}

bool ust_thread_must_poll(struct ust_thread *thread)
{
	return thread->active_running_count > thread->active_intr_count;
}

bool ust_thread_has_pollers(struct ust_thread *thread)
{
	return thread->poller_count > 0;
}

bool ust_thread_is_idle(struct ust_thread *thread)
{
	return !thread_msgs_pending(thread) && thread->poller_count == 0;
}

/* ---- accessors ---------------------------------------------------------- */

struct ust_thread *ust_get_thread(void)
{
	return tls_thread;
}

void ust_set_thread(struct ust_thread *thread)
{
	tls_thread = thread;
}

struct ust_thread *ust_thread_get_app_thread(void)
{
	struct ust_thread *t;

	pthread_mutex_lock(&g_ust_thread_lock);
	t = g_app_thread;
	pthread_mutex_unlock(&g_ust_thread_lock);
	return t;
}

bool ust_thread_is_app_thread(struct ust_thread *thread)
{
	if (thread == NULL)
		thread = tls_thread;
	return thread != NULL && thread == ust_thread_get_app_thread();
}

const char *ust_thread_get_name(const struct ust_thread *thread)
{
	return thread->name;
}

uint64_t ust_thread_get_id(const struct ust_thread *thread)
{
	return thread->id;
}

struct ust_thread *ust_thread_get_by_id(uint64_t id)
{
	struct ust_thread *t;

	pthread_mutex_lock(&g_ust_thread_lock);
	TAILQ_FOREACH(t, &g_ust_threads, link) {
		if (t->id == id)
			break;
	}
	pthread_mutex_unlock(&g_ust_thread_lock);
	return t;
}

const struct ust_cpuset *ust_thread_get_cpumask(const struct ust_thread *thread)
{
	return &thread->cpumask;
}

void *ust_thread_get_ctx(struct ust_thread *thread)
{
	if (g_ops.ctx_size == 0)
		return NULL;
	return thread->ctx;
}

struct ust_thread *ust_thread_get_from_ctx(void *ctx)
{
	if (ctx == NULL)
		return NULL;
	return (struct ust_thread *)((uint8_t *)ctx - offsetof(struct ust_thread, ctx));
}

uint32_t ust_thread_get_count(void)
{
	uint32_t n;

	pthread_mutex_lock(&g_ust_thread_lock);
	n = g_thread_count;
	pthread_mutex_unlock(&g_ust_thread_lock);
	return n;
}

int ust_thread_get_stats(struct ust_thread *thread, struct ust_thread_stats *stats)
{
	if (thread == NULL)
		thread = tls_thread;
	if (thread == NULL || stats == NULL)
		return -EINVAL;
	*stats = thread->stats;
	return 0;
}

uint64_t ust_thread_get_last_tsc(struct ust_thread *thread)
{
	if (thread == NULL)
		thread = tls_thread;
	if (thread == NULL)
		return ust_get_ticks();
	return thread->tsc_last;
}

/* ---- messages ----------------------------------------------------------- */

int ust_thread_send_msg(const struct ust_thread *thread, ust_msg_fn fn, void *ctx)
{
	struct ust_thread *target = (struct ust_thread *)thread;
	struct ust_thread *local = tls_thread;
	struct ust_msg *msg = NULL;
	int rc = 0;

	if (target == NULL || fn == NULL)
		return -EINVAL;
	if (__builtin_expect(ust_thread_state_get(target) == UST_THREAD_STATE_EXITED, 0))
		return -EIO;
	if (__builtin_expect(!overflow_pending(target), 1))
		msg = msg_get(local);
	if (msg != NULL) {
		msg->fn = fn;
		msg->ctx = ctx;
		if (ust_ring_enqueue(target->messages, (void **)&msg, 1) != 1) {
			msg_put(local, msg);
			msg = NULL;
		}
	}
	if (msg == NULL)
		rc = overflow_push(target, fn, ctx); /* see overflow_push */
	if (rc == 0 && g_ops.wakeup != NULL)
		g_ops.wakeup(target);
	return rc;
}

struct thread_walk {
	ust_msg_fn fn;
	ust_msg_fn cpl;
	void *ctx;
	struct ust_thread *orig;
	uint64_t last_id;
};

static void thread_walk_step(void *arg);

static void thread_walk_finish(struct thread_walk *w)
{
	int rc;

	rc = ust_thread_send_msg(w->orig, w->cpl, w->ctx);
	if (rc != 0)
		UST_ERRLOG("for_each_thread cannot complete on thread %s: %s\n", w->orig->name,
			   strerror(-rc));
	free(w);
}

/* Sends the walk to the next live thread after last_id; false when none is left. */
static bool thread_walk_advance(struct thread_walk *w)
{
	struct ust_thread *t;
	int rc;

	pthread_mutex_lock(&g_ust_thread_lock);
	for (t = TAILQ_FIRST(&g_ust_threads); t != NULL; t = TAILQ_NEXT(t, link)) {
		if (t->id <= w->last_id)
			continue;
		w->last_id = t->id;
		rc = ust_thread_send_msg(t, thread_walk_step, w);
		if (rc == 0)
			break;
		if (rc != -EIO)
			UST_ERRLOG("for_each_thread skips thread %s: %s\n", t->name, strerror(-rc));
	}
	pthread_mutex_unlock(&g_ust_thread_lock);
	return t != NULL;
}

static void thread_walk_step(void *arg)
{
	struct thread_walk *w = arg;

	w->fn(w->ctx);
	if (!thread_walk_advance(w))
		thread_walk_finish(w);
}

void ust_for_each_thread(ust_msg_fn fn, void *ctx, ust_msg_fn cpl)
{
	struct thread_walk *w;

	if (tls_thread == NULL || fn == NULL || cpl == NULL) {
		UST_ERRLOG("ust_for_each_thread needs a current thread, fn and cpl\n");
		return;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		UST_ERRLOG("ust_for_each_thread: out of memory\n");
		return;
	}
	w->fn = fn;
	w->cpl = cpl;
	w->ctx = ctx;
	w->orig = tls_thread;
	if (!thread_walk_advance(w))
		thread_walk_finish(w);
}

void ust_thread_foreach(void (*fn)(struct ust_thread *thread, void *ctx), void *ctx)
{
	struct ust_thread *t;

	pthread_mutex_lock(&g_ust_thread_lock);
	TAILQ_FOREACH(t, &g_ust_threads, link)
		fn(t, ctx);
	pthread_mutex_unlock(&g_ust_thread_lock);
}
