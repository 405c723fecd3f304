/*
 * Reactors: one per core of the mask, each pinned to its EAL lcore, each
 * polling the ust_threads placed on it. This file is the thread library's
 * scheduler: a new thread goes to the least-loaded reactor its cpumask
 * allows, through that reactor's multi-producer ring of new threads.
 *
 * Guarantees:
 *  - A thread is polled by exactly one reactor for its whole life, and is
 *    destroyed by that reactor once it has exited.
 *  - In adaptive mode an idle reactor sleeps (eventfd + ppoll) after
 *    REACTOR_IDLE_BEFORE_SLEEP_US of consecutive idle iterations, until the
 *    earliest timed poller is due or someone wakes it. A message or a new
 *    thread for a sleeping reactor is never lost: the reactor announces that
 *    it sleeps, then polls once more before blocking, and wakers check the
 *    announcement after publishing their work (both sides fence, so one of
 *    them always sees the other).
 *  - A reactor whose threads have active pollers sleeps at most
 *    REACTOR_ACTIVE_POLLER_SLEEP_US so polled devices keep being served,
 *    unless every such poller has an interrupt fd
 *    (ust_poller_set_interrupt_fd): then it waits on those fds as well and
 *    sleeps until one is readable, a message arrives or a timer is due.
 *  - Polling mode "always" never sleeps and never makes a system call on
 *    the message path.
 *  - After ust_reactors_stop() every reactor asks each of its threads to
 *    exit and stops once none is left.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include "ustor/cpuset.h"
#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/thread.h"

#include "app_internal.h"

/*
 * Idle time before sleeping: long enough that a steady stream of requests
 * (an RPC client, an I/O every few hundred microseconds) keeps the reactor
 * hot, short enough that an idle daemon is asleep almost all the time.
 */
#define REACTOR_IDLE_BEFORE_SLEEP_US 2000
/*
 * Sleep cap when a thread has active pollers (devices polled for
 * completions). 500 us bounds the extra latency of the first completion
 * after an idle stretch to well under a millisecond while costing roughly
 * 2000 cheap wake-ups per second (about 1% of a core).
 */
#define REACTOR_ACTIVE_POLLER_SLEEP_US 500

/* Interrupt fds a sleeping reactor waits on besides its own eventfd. */
#define REACTOR_MAX_WAIT_FDS 32
/* New threads taken from the ring per iteration. */
#define REACTOR_NEW_THREAD_BATCH 16
#define REACTOR_NEW_THREAD_RING_SIZE 1024

struct reactor;

/* Lives in each ust_thread's scheduler bytes. */
struct reactor_thread {
	struct reactor *reactor;
	bool exit_requested;
	TAILQ_ENTRY(reactor_thread) link;
};

struct reactor {
	uint32_t lcore;
	struct ust_ring *new_threads;
	TAILQ_HEAD(, reactor_thread) threads; /* owner only */
	int efd;
	atomic_int sleeping;
	atomic_uint thread_count; /* placed here and not yet destroyed */
	/* Written by the owner, read (racily, for statistics) by RPCs. */
	uint64_t busy_tsc;
	uint64_t idle_tsc;
	uint64_t sleep_tsc;
	uint64_t idle_since;
} __attribute__((aligned(64)));

static struct reactor *g_reactors;
static uint32_t g_reactor_count;
static struct reactor *g_main_reactor;
static enum ust_poll_mode g_poll_mode;
static atomic_bool g_stopping;
/* The main reactor's eventfd, for the signal handler. */
static volatile int g_main_efd = -1;
static uint64_t g_idle_before_sleep_ticks;

static struct reactor_thread *thread_rt(struct ust_thread *thread)
{
	return ust_thread_get_ctx(thread);
}

static void reactor_kick(struct reactor *r)
{
	uint64_t one = 1;
	ssize_t rc;

	if (g_poll_mode == UST_POLL_ALWAYS) {
		return;
	}
	/* Orders the caller's publication (ring enqueue) before reading the flag. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load(&r->sleeping)) {
		rc = write(r->efd, &one, sizeof(one));
		(void)rc; /* EAGAIN means the counter is already non-zero: it is awake */
	}
}

static bool cpumask_allows(const struct ust_cpuset *mask, uint32_t lcore)
{
	if (mask == NULL || ust_cpuset_count(mask) == 0) {
		return true;
	}
	return ust_cpuset_get(mask, lcore);
}

static struct reactor *reactor_least_loaded(const struct ust_cpuset *mask)
{
	struct reactor *best = NULL;
	unsigned int load, best_load = 0;
	uint32_t i;

	for (i = 0; i < g_reactor_count; i++) {
		if (!cpumask_allows(mask, g_reactors[i].lcore)) {
			continue;
		}
		load = atomic_load(&g_reactors[i].thread_count);
		if (best == NULL || load < best_load) {
			best = &g_reactors[i];
			best_load = load;
		}
	}
	return best;
}

static int reactor_schedule_thread(struct ust_thread *thread)
{
	struct reactor_thread *rt = thread_rt(thread);
	const struct ust_cpuset *mask = ust_thread_get_cpumask(thread);
	struct reactor *r;
	char buf[80];
	void *obj = thread;

	r = reactor_least_loaded(mask);
	if (r == NULL) {
		UST_ERRLOG("thread '%s': cpumask %s contains no reactor core\n",
			   ust_thread_get_name(thread), ust_cpuset_fmt(mask, buf, sizeof(buf)));
		return -EINVAL;
	}
	rt->reactor = r;
	rt->exit_requested = false;
	atomic_fetch_add(&r->thread_count, 1);
	if (ust_ring_enqueue(r->new_threads, &obj, 1) != 1) {
		atomic_fetch_sub(&r->thread_count, 1);
		rt->reactor = NULL;
		return -ENOMEM;
	}
	reactor_kick(r);
	return 0;
}

static void reactor_wakeup_thread(struct ust_thread *thread)
{
	struct reactor_thread *rt = thread_rt(thread);

	if (rt->reactor != NULL) {
		reactor_kick(rt->reactor);
	}
}

static const struct ust_thread_lib_ops g_reactor_ops = {
	.schedule = reactor_schedule_thread,
	.wakeup = reactor_wakeup_thread,
	.ctx_size = sizeof(struct reactor_thread),
};

/* ---- the loop ----------------------------------------------------------- */

static void reactor_adopt_new_threads(struct reactor *r)
{
	void *objs[REACTOR_NEW_THREAD_BATCH];
	size_t n, i;

	n = ust_ring_dequeue(r->new_threads, objs, REACTOR_NEW_THREAD_BATCH);
	for (i = 0; i < n; i++) {
		TAILQ_INSERT_TAIL(&r->threads, thread_rt(objs[i]), link);
	}
}

static void reactor_thread_exit_msg(void *ctx)
{
	ust_thread_exit(ust_get_thread());
}

static void reactor_request_exit(struct reactor_thread *rt, struct ust_thread *t)
{
	/* A failed send (out of memory) is tried again on the next iteration. */
	if (ust_thread_send_msg(t, reactor_thread_exit_msg, NULL) == 0) {
		rt->exit_requested = true;
	}
}

static void reactor_destroy_thread(struct reactor *r, struct reactor_thread *rt,
				   struct ust_thread *t)
{
	TAILQ_REMOVE(&r->threads, rt, link);
	ust_thread_destroy(t);
	atomic_fetch_sub(&r->thread_count, 1);
}

/* One pass over every thread; true if any did work. */
static bool reactor_poll_once(struct reactor *r)
{
	struct reactor_thread *rt, *tmp;
	struct ust_thread *t;
	bool stopping = atomic_load(&g_stopping);
	bool busy = false;
	uint64_t start, end;

	reactor_adopt_new_threads(r);
	start = ust_get_ticks();
	for (rt = TAILQ_FIRST(&r->threads); rt != NULL; rt = tmp) {
		tmp = TAILQ_NEXT(rt, link);
		t = ust_thread_get_from_ctx(rt);
		if (stopping && !rt->exit_requested) {
			reactor_request_exit(rt, t);
		}
		if (ust_thread_poll(t, 0, 0) > 0) {
			busy = true;
		}
		if (ust_thread_is_exited(t)) {
			reactor_destroy_thread(r, rt, t);
		}
	}
	end = ust_get_ticks();
	if (busy) {
		r->busy_tsc += end - start;
		r->idle_since = end;
	} else {
		r->idle_tsc += end - start;
	}
	return busy;
}

static bool reactor_is_done(struct reactor *r)
{
	return atomic_load(&g_stopping) && TAILQ_EMPTY(&r->threads) &&
	       ust_ring_count(r->new_threads) == 0;
}

static uint64_t ticks_to_ns(uint64_t ticks)
{
	uint64_t hz = ust_get_ticks_hz();

	return (uint64_t)((unsigned __int128)ticks * 1000000000u / hz);
}

/*
 * How long the reactor may block, in ns; UINT64_MAX for "until woken",
 * 0 for "do not sleep".
 */
static uint64_t reactor_sleep_budget_ns(struct reactor *r)
{
	struct reactor_thread *rt;
	struct ust_thread *t;
	uint64_t budget = UINT64_MAX, now = ust_get_ticks(), due, ns;

	TAILQ_FOREACH(rt, &r->threads, link) {
		t = ust_thread_get_from_ctx(rt);
		if (ust_thread_must_poll(t) &&
		    budget > REACTOR_ACTIVE_POLLER_SLEEP_US * 1000ull) {
			budget = REACTOR_ACTIVE_POLLER_SLEEP_US * 1000ull;
		}
		due = ust_thread_next_poller_expiration(t);
		if (due == 0) {
			continue;
		}
		if (due <= now) {
			return 0;
		}
		ns = ticks_to_ns(due - now);
		if (ns < budget) {
			budget = ns;
		}
	}
	return budget;
}

/*
 * Fill pfds with the reactor's own eventfd and its pollers' interrupt fds.
 * More interrupt fds than fit: the budget is capped as for pollers without
 * one, so the ones left out are still called often.
 */
static nfds_t reactor_collect_fds(struct reactor *r, struct pollfd *pfds, uint64_t *budget_ns)
{
	int fds[REACTOR_MAX_WAIT_FDS];
	struct reactor_thread *rt;
	nfds_t n = 1;
	size_t got, i, room;

	pfds[0] = (struct pollfd){.fd = r->efd, .events = POLLIN};
	TAILQ_FOREACH(rt, &r->threads, link) {
		room = REACTOR_MAX_WAIT_FDS + 1 - n;
		got = ust_thread_get_interrupt_fds(ust_thread_get_from_ctx(rt), fds, room);
		if (got > room && *budget_ns > REACTOR_ACTIVE_POLLER_SLEEP_US * 1000ull)
			*budget_ns = REACTOR_ACTIVE_POLLER_SLEEP_US * 1000ull;
		for (i = 0; i < got && i < room; i++)
			pfds[n++] = (struct pollfd){.fd = fds[i], .events = POLLIN};
	}
	return n;
}

static void reactor_block(struct reactor *r, uint64_t budget_ns)
{
	struct pollfd pfds[REACTOR_MAX_WAIT_FDS + 1];
	struct timespec ts, *tsp = NULL;
	uint64_t counter, start = ust_get_ticks();
	nfds_t n;
	ssize_t rc;

	n = reactor_collect_fds(r, pfds, &budget_ns);
	if (budget_ns != UINT64_MAX) {
		ts.tv_sec = (time_t)(budget_ns / 1000000000u);
		ts.tv_nsec = (long)(budget_ns % 1000000000u);
		tsp = &ts;
	}
	/* Interrupt fds are drained by their pollers, not here. */
	if (ppoll(pfds, n, tsp, NULL) > 0 && (pfds[0].revents & POLLIN)) {
		rc = read(r->efd, &counter, sizeof(counter));
		(void)rc; /* EAGAIN: another reader drained it; nothing to do */
	}
	r->sleep_tsc += ust_get_ticks() - start;
}

static void reactor_try_sleep(struct reactor *r)
{
	uint64_t budget;

	if (ust_get_ticks() - r->idle_since < g_idle_before_sleep_ticks) {
		return;
	}
	atomic_store(&r->sleeping, 1);
	/* The re-check: anything published before the announcement is seen here. */
	if (reactor_poll_once(r) || reactor_is_done(r)) {
		atomic_store(&r->sleeping, 0);
		return;
	}
	budget = reactor_sleep_budget_ns(r);
	if (budget > 0) {
		reactor_block(r, budget);
	}
	atomic_store(&r->sleeping, 0);
}

static int reactor_run(void *arg)
{
	struct reactor *r = arg;

	r->idle_since = ust_get_ticks();
	while (true) {
		reactor_poll_once(r);
		if (r == g_main_reactor) {
			ust_app_poll_signals();
		}
		if (reactor_is_done(r)) {
			break;
		}
		if (g_poll_mode == UST_POLL_ADAPTIVE) {
			reactor_try_sleep(r);
		}
	}
	return 0;
}

/* ---- life cycle --------------------------------------------------------- */

static int reactor_init_one(struct reactor *r, uint32_t lcore)
{
	r->lcore = lcore;
	TAILQ_INIT(&r->threads);
	atomic_init(&r->sleeping, 0);
	atomic_init(&r->thread_count, 0);
	r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->efd < 0) {
		UST_ERRLOG("reactor %u: eventfd: %s\n", lcore, strerror(errno));
		return -errno;
	}
	r->new_threads = ust_ring_create(UST_RING_MP_SC, REACTOR_NEW_THREAD_RING_SIZE,
					 ust_env_get_socket_id(lcore));
	if (r->new_threads == NULL) {
		UST_ERRLOG("reactor %u: cannot create its thread ring\n", lcore);
		return -ENOMEM;
	}
	return 0;
}

static void reactor_fini_one(struct reactor *r)
{
	if (r->efd >= 0) {
		close(r->efd);
		r->efd = -1;
	}
	if (r->new_threads != NULL) {
		ust_ring_free(r->new_threads);
		r->new_threads = NULL;
	}
}

void ust_reactors_fini(void)
{
	uint32_t i;

	g_main_efd = -1;
	for (i = 0; i < g_reactor_count; i++) {
		reactor_fini_one(&g_reactors[i]);
	}
	free(g_reactors);
	g_reactors = NULL;
	g_reactor_count = 0;
	g_main_reactor = NULL;
}

static int reactors_create(void)
{
	uint32_t core, i = 0, main_core = ust_env_get_main_core();
	int rc;

	g_reactor_count = ust_env_get_core_count();
	if (g_reactor_count == 0) {
		UST_ERRLOG("no cores to run reactors on\n");
		return -EINVAL;
	}
	g_reactors = aligned_alloc(64, sizeof(*g_reactors) * g_reactor_count);
	if (g_reactors == NULL) {
		return -ENOMEM;
	}
	memset(g_reactors, 0, sizeof(*g_reactors) * g_reactor_count);
	for (i = 0; i < g_reactor_count; i++) {
		g_reactors[i].efd = -1;
	}
	i = 0;
	for (core = ust_env_get_first_core(); core != UINT32_MAX && i < g_reactor_count;
	     core = ust_env_get_next_core(core)) {
		rc = reactor_init_one(&g_reactors[i], core);
		if (rc != 0) {
			return rc;
		}
		if (core == main_core) {
			g_main_reactor = &g_reactors[i];
		}
		i++;
	}
	if (g_main_reactor == NULL) {
		UST_ERRLOG("the main core %u is not in the core mask\n", main_core);
		return -EINVAL;
	}
	return 0;
}

int ust_reactors_init(enum ust_poll_mode mode)
{
	int rc;

	if (g_reactors != NULL) {
		return -EALREADY;
	}
	g_poll_mode = mode;
	atomic_store(&g_stopping, false);
	g_idle_before_sleep_ticks = ust_get_ticks_hz() * REACTOR_IDLE_BEFORE_SLEEP_US / 1000000;
	rc = reactors_create();
	if (rc == 0) {
		rc = ust_thread_lib_init(&g_reactor_ops);
		if (rc != 0) {
			UST_ERRLOG("thread library: %s\n", strerror(-rc));
		}
	}
	if (rc != 0) {
		ust_reactors_fini();
		return rc;
	}
	g_main_efd = g_main_reactor->efd;
	return 0;
}

static int reactor_launch_cb(void *arg)
{
	return reactor_run(arg);
}

int ust_reactors_run(void)
{
	uint32_t i;
	int rc = 0;

	for (i = 0; i < g_reactor_count; i++) {
		if (&g_reactors[i] == g_main_reactor) {
			continue;
		}
		rc = ust_env_launch_on_core(g_reactors[i].lcore, reactor_launch_cb, &g_reactors[i]);
		if (rc != 0) {
			UST_ERRLOG("cannot start the reactor on core %u: %s\n", g_reactors[i].lcore,
				   strerror(-rc));
			/* Threads already placed there would never run: stop everything. */
			ust_reactors_stop();
			break;
		}
	}
	reactor_run(g_main_reactor);
	ust_env_wait_all_cores();
	return rc;
}

void ust_reactors_stop(void)
{
	uint32_t i;

	atomic_store(&g_stopping, true);
	for (i = 0; i < g_reactor_count; i++) {
		reactor_kick(&g_reactors[i]);
	}
}

void ust_reactors_kick_main(void)
{
	uint64_t one = 1;
	int fd = g_main_efd;
	ssize_t rc;

	if (fd >= 0) {
		rc = write(fd, &one, sizeof(one));
		(void)rc;
	}
}

/* ---- framework_get_reactors --------------------------------------------- */

static json_t *reactor_info_json(const struct reactor *r)
{
	return json_pack("{s:i, s:I, s:I, s:I, s:b, s:b, s:[]}", "lcore", (int)r->lcore,
			 "busy", (json_int_t)r->busy_tsc, "idle", (json_int_t)r->idle_tsc,
			 "sleep", (json_int_t)r->sleep_tsc, "in_interrupt",
			 g_poll_mode == UST_POLL_ADAPTIVE, "sleeping",
			 atomic_load(&((struct reactor *)r)->sleeping) != 0, "lw_threads");
}

struct threads_walk {
	json_t *reactors;
	int rc;
};

static void reactor_add_thread_json(struct ust_thread *t, void *ctx)
{
	struct threads_walk *w = ctx;
	struct reactor_thread *rt = thread_rt(t);
	json_t *entry, *list;
	char mask[80];

	if (rt->reactor == NULL || w->rc != 0) {
		return;
	}
	list = json_object_get(json_array_get(w->reactors, (size_t)(rt->reactor - g_reactors)),
			       "lw_threads");
	entry = json_pack("{s:s, s:I, s:s}", "name", ust_thread_get_name(t), "id",
			  (json_int_t)ust_thread_get_id(t), "cpumask",
			  ust_cpuset_fmt(ust_thread_get_cpumask(t), mask, sizeof(mask)));
	if (list == NULL || entry == NULL || json_array_append_new(list, entry) != 0) {
		w->rc = -ENOMEM;
	}
}

json_t *ust_reactors_info_json(void)
{
	struct threads_walk w = {.reactors = json_array()};
	json_t *result;
	uint32_t i;

	for (i = 0; w.reactors != NULL && i < g_reactor_count; i++) {
		if (json_array_append_new(w.reactors, reactor_info_json(&g_reactors[i])) != 0) {
			w.rc = -ENOMEM;
		}
	}
	if (w.reactors != NULL && w.rc == 0) {
		ust_thread_foreach(reactor_add_thread_json, &w);
	}
	if (w.reactors == NULL || w.rc != 0) {
		json_decref(w.reactors);
		return NULL;
	}
	result = json_pack("{s:I, s:i, s:o}", "tick_rate", (json_int_t)ust_get_ticks_hz(), "pid",
			   (int)getpid(), "reactors", w.reactors);
	return result;
}
