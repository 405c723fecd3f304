/*
 * Private to core/thread.c, core/poller.c and core/io_channel.c: the layout of
 * a ust_thread, its pollers and channels, and the few functions the three
 * files call in each other. Nothing outside core/ may include this.
 */
#ifndef USTOR_CORE_THREAD_INTERNAL_H
#define USTOR_CORE_THREAD_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "ustor/cpuset.h"
#include "ustor/thread.h"

/* Slots in each thread's message ring; a full ring makes send_msg -ENOMEM. */
#define UST_THREAD_MSG_RING_SIZE 8192
/* Message objects shared by all threads (plus each thread's local cache). */
#define UST_THREAD_MSG_POOL_SIZE (128 * 1024)
/* Messages a thread keeps for itself before returning them to the pool. */
#define UST_THREAD_MSG_CACHE_SIZE 256
/* Messages taken from / returned to the pool in one go. */
#define UST_THREAD_MSG_CACHE_BATCH 64
/* Messages run per ust_thread_poll() when the caller passes 0. */
#define UST_THREAD_MSG_BATCH 32
/* Seconds an exiting thread may wait for its pollers/channels before a warning. */
#define UST_THREAD_EXIT_WARN_SEC 5

#define UST_THREAD_NAME_LEN 64
#define UST_POLLER_NAME_LEN 48

enum ust_thread_state {
	UST_THREAD_STATE_RUNNING = 0,
	UST_THREAD_STATE_EXITING,
	UST_THREAD_STATE_EXITED,
};

enum ust_poller_state {
	UST_POLLER_STATE_WAITING = 0, /* registered, runs when due */
	UST_POLLER_STATE_PAUSED,
	UST_POLLER_STATE_UNREGISTERED, /* waiting to be freed */
};

struct ust_msg {
	ust_msg_fn fn;
	void *ctx;
};

/* A message that found the ring full (or no pooled message): see thread.c. */
struct ust_overflow_msg {
	ust_msg_fn fn;
	void *ctx;
	struct ust_overflow_msg *next;
};

struct ust_poller {
	ust_poller_fn fn;
	void *arg;
	struct ust_thread *thread;
	uint64_t period_ticks; /* 0: active poller */
	uint64_t next_run;     /* timed pollers: tick at which it is due */
	uint64_t seq;          /* ties among equal next_run run in arming order */
	uint32_t heap_idx;     /* timed pollers in the heap: their slot */
	enum ust_poller_state state;
	bool running;   /* its fn is on the stack right now */
	bool in_heap;   /* timed pollers only */
	int interrupt_fd; /* active pollers: readable when there is work; -1 none */
	TAILQ_ENTRY(ust_poller) link; /* active list, or paused-timed list */
	char name[UST_POLLER_NAME_LEN];
};

TAILQ_HEAD(ust_poller_list, ust_poller);

struct ust_io_device;

struct ust_io_channel {
	struct ust_thread *thread;
	struct ust_io_device *dev;
	uint32_t ref;
	bool destroy_pending; /* a destroy message is queued */
	TAILQ_ENTRY(ust_io_channel) link;     /* the thread's channels */
	TAILQ_ENTRY(ust_io_channel) dev_link; /* the device's channels */
	/* 64-byte aligned so a module's per-channel state can hold aligned types. */
	uint8_t ctx[] __attribute__((aligned(64)));
};

TAILQ_HEAD(ust_io_channel_list, ust_io_channel);

struct ust_thread {
	/*
	 * Read by senders on other OS threads: kept apart from the fields the
	 * owner writes on every iteration so senders do not bounce that line.
	 */
	struct ust_ring *messages;
	uint64_t id;
	int state; /* enum ust_thread_state, accessed atomically */
	/* Set while overflow_head holds messages: new ones queue behind them. */
	bool overflowing; /* accessed atomically */
	pthread_mutex_t overflow_lock;
	struct ust_overflow_msg *overflow_head, **overflow_tail;

	/* Owner-only from here on. */
	struct ust_msg *msg_cache[UST_THREAD_MSG_CACHE_SIZE] __attribute__((aligned(64)));
	uint32_t msg_cache_count;

	uint64_t tsc_last; /* start of the current/last iteration */
	struct ust_thread_stats stats;

	struct ust_poller_list active_pollers; /* includes paused/unregistered active ones */
	struct ust_poller_list paused_timed_pollers;
	struct ust_poller **timed_heap;
	uint32_t timed_count; /* timed pollers registered (heap capacity reserved) */
	uint32_t heap_len;
	uint32_t heap_cap;
	uint64_t poller_seq;
	uint32_t poller_count; /* registered, not unregistered */
	uint32_t active_running_count; /* active and not paused */
	uint32_t active_intr_count; /* of those, the ones with an interrupt fd */

	struct ust_io_channel_list io_channels; /* modified under g_ust_thread_lock */

	uint64_t exit_tsc;
	bool exit_warned;

	char name[UST_THREAD_NAME_LEN];
	struct ust_cpuset cpumask;
	TAILQ_ENTRY(ust_thread) link; /* g_ust_threads, ordered by id */

	/* The scheduler's ctx_size bytes. */
	uint8_t ctx[] __attribute__((aligned(64)));
};

TAILQ_HEAD(ust_thread_list, ust_thread);

/* Guards the thread list, the io_device registry and every thread's channel list. */
extern pthread_mutex_t g_ust_thread_lock;
extern struct ust_thread_list g_ust_threads;

static inline int ust_thread_state_get(const struct ust_thread *t)
{
	return __atomic_load_n(&t->state, __ATOMIC_ACQUIRE);
}

/* ---- poller.c, called by thread.c --------------------------------------- */

/* Runs every active poller once; returns true if one was busy. */
bool ust_poller_run_active(struct ust_thread *t);
/* Runs every timed poller due at now; returns true if one was busy. */
bool ust_poller_run_timed(struct ust_thread *t, uint64_t now);
/* Frees every poller of a thread being destroyed. */
void ust_poller_free_all(struct ust_thread *t);
/* Appends "name, name" of live pollers to buf (for the exit warning). */
void ust_poller_describe(struct ust_thread *t, char *buf, size_t len);

/* ---- io_channel.c, called by thread.c ----------------------------------- */

/* Destroys channels whose last put could not queue its destroy message. */
void ust_io_channel_reap_unreferenced(struct ust_thread *t);
/* Appends "device, device" of the thread's channels to buf. */
void ust_io_channel_describe(struct ust_thread *t, char *buf, size_t len);
/*
 * Lib fini, once no thread (so no channel) is left: logs and frees every
 * io_device still registered; returns how many there were.
 */
uint32_t ust_io_device_drop_registered(void);

#endif
