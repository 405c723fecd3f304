/*
 * ustor threads, pollers, messages and I/O channels.
 *
 * A ust_thread is a lightweight, cooperatively scheduled context. It owns a
 * lock-free multi-producer message ring and a set of pollers; whoever drives
 * it (a reactor, or a unit test) calls ust_thread_poll() in a loop. Every
 * callback registered on a thread runs on that thread, one at a time, so
 * per-thread state needs no locks.
 *
 * Rules:
 *  - ust_thread_send_msg() may be called from any OS thread; the function runs
 *    on the target thread, in the order sent from one sender.
 *  - Pollers belong to the thread that registered them and are unregistered
 *    on it.
 *  - I/O channels give each thread its own context for an io_device (for
 *    NVMe, its own queue pair). A channel is used only on its thread.
 *  - A thread exits once ust_thread_exit() was called on it and it has no
 *    pollers and no channels left; ust_thread_destroy() then frees it.
 *
 * Errors are negative errno.
 */
#ifndef USTOR_THREAD_H
#define USTOR_THREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ustor/cpuset.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ust_thread;
struct ust_poller;
struct ust_io_channel;
struct ust_io_channel_iter;

typedef void (*ust_msg_fn)(void *ctx);

#define UST_POLLER_IDLE 0
#define UST_POLLER_BUSY 1
/* Returns UST_POLLER_BUSY if it did work, UST_POLLER_IDLE otherwise. */
typedef int (*ust_poller_fn)(void *ctx);

/* ---- library ------------------------------------------------------------ */

/*
 * The scheduler (the reactors, or a test) that places threads on cores.
 * schedule() is called for every new thread, on the creating OS thread; it
 * returns 0 once the thread will be polled, or a negative errno.
 * wakeup(), if set, is called after a message is queued to a thread whose
 * scheduler may be asleep; it must be cheap and safe from any OS thread.
 */
struct ust_thread_lib_ops {
	int (*schedule)(struct ust_thread *thread);
	void (*wakeup)(struct ust_thread *thread);
	size_t ctx_size; /* per-thread bytes reserved for the scheduler */
};

/* ops may be NULL: threads are then polled by whoever created them. */
int ust_thread_lib_init(const struct ust_thread_lib_ops *ops);
void ust_thread_lib_fini(void);

/* ---- threads ------------------------------------------------------------ */

/* cpumask NULL means any core. The first thread created is the app thread. */
struct ust_thread *ust_thread_create(const char *name, const struct ust_cpuset *cpumask);
/* Ask the calling thread (or t, from its own context) to exit. */
int ust_thread_exit(struct ust_thread *thread);
bool ust_thread_is_exited(struct ust_thread *thread);
bool ust_thread_is_running(struct ust_thread *thread);
/* Free an exited thread. */
void ust_thread_destroy(struct ust_thread *thread);

/*
 * Run one iteration: up to max_msgs queued messages (0: a default batch),
 * every active poller once, and every timed poller that is due at now
 * (ticks; 0: read the clock). Returns >0 if anything was busy, 0 if idle.
 * Sets the calling OS thread's current thread for the duration.
 */
int ust_thread_poll(struct ust_thread *thread, uint32_t max_msgs, uint64_t now);
/* Tick at which the earliest timed poller is due; 0 if none. */
uint64_t ust_thread_next_poller_expiration(struct ust_thread *thread);
bool ust_thread_has_active_pollers(struct ust_thread *thread);
/*
 * True when an active poller without an interrupt fd is running: the
 * scheduler must keep calling it (or wake up often), since nothing tells
 * it when that poller has work.
 */
bool ust_thread_must_poll(struct ust_thread *thread);
/*
 * Up to max interrupt fds of the thread's running active pollers, into fds;
 * returns how many the thread has (which may exceed max). A scheduler that
 * sleeps waits on these as well as on its own wake-up.
 */
size_t ust_thread_get_interrupt_fds(struct ust_thread *thread, int *fds, size_t max);
bool ust_thread_has_pollers(struct ust_thread *thread);
/* No queued messages and no pollers. */
bool ust_thread_is_idle(struct ust_thread *thread);

struct ust_thread *ust_get_thread(void);
void ust_set_thread(struct ust_thread *thread);
struct ust_thread *ust_thread_get_app_thread(void);
bool ust_thread_is_app_thread(struct ust_thread *thread); /* NULL: current */
const char *ust_thread_get_name(const struct ust_thread *thread);
uint64_t ust_thread_get_id(const struct ust_thread *thread);
struct ust_thread *ust_thread_get_by_id(uint64_t id);
const struct ust_cpuset *ust_thread_get_cpumask(const struct ust_thread *thread);
void *ust_thread_get_ctx(struct ust_thread *thread);
struct ust_thread *ust_thread_get_from_ctx(void *ctx);
uint32_t ust_thread_get_count(void);

struct ust_thread_stats {
	uint64_t busy_tsc; /* ticks spent in iterations that did work */
	uint64_t idle_tsc; /* ticks spent in iterations that did nothing */
};
int ust_thread_get_stats(struct ust_thread *thread, struct ust_thread_stats *stats);
/* Ticks of the current poll iteration (cheap; no clock read). */
uint64_t ust_thread_get_last_tsc(struct ust_thread *thread);

/* Pollers of a thread by kind (for thread_get_stats). */
struct ust_thread_poller_counts {
	uint32_t active; /* period 0, not paused */
	uint32_t timed;  /* period > 0, not paused */
	uint32_t paused;
};
/* Call on the thread itself: pollers are the owner's state. */
int ust_thread_get_poller_counts(struct ust_thread *thread,
				 struct ust_thread_poller_counts *counts);

/*
 * Queue fn(ctx) to run on thread. Safe from any OS thread. Messages from
 * one sender run in the order sent. A full ring does not fail the send: the
 * message waits on the thread's overflow list (core/thread.c); -ENOMEM only
 * if that allocation fails, -EIO if the thread has exited.
 */
int ust_thread_send_msg(const struct ust_thread *thread, ust_msg_fn fn, void *ctx);

/*
 * Run fn(ctx) on every thread in turn, then cpl(ctx) on the calling thread.
 */
void ust_for_each_thread(ust_msg_fn fn, void *ctx, ust_msg_fn cpl);

/* Iterate over all threads (control path; takes the library lock). */
void ust_thread_foreach(void (*fn)(struct ust_thread *thread, void *ctx), void *ctx);

/* ---- pollers ------------------------------------------------------------ */

/*
 * Register fn(arg) on the current thread. period_us 0: called every
 * iteration (active); otherwise at most every period_us microseconds.
 */
struct ust_poller *ust_poller_register(ust_poller_fn fn, void *arg, uint64_t period_us,
				       const char *name);
/* Sets *poller to NULL. Safe to call from inside the poller itself. */
void ust_poller_unregister(struct ust_poller **poller);
void ust_poller_pause(struct ust_poller *poller);
void ust_poller_resume(struct ust_poller *poller);
/*
 * Declare that the active poller has nothing to do until fd is readable
 * (fd -1 withdraws it). A sleeping reactor then waits on fd instead of
 * waking every few hundred microseconds to call the poller. The poller owns
 * fd and must drain it *before* it looks for work, so that work arriving
 * after the look makes fd readable again (an eventfd fed by the kernel,
 * e.g. io_uring_register_eventfd, fits). -EINVAL for timed pollers.
 */
int ust_poller_set_interrupt_fd(struct ust_poller *poller, int fd);

/* ---- I/O channels ------------------------------------------------------- */

typedef int (*ust_io_channel_create_cb)(void *io_device, void *ctx_buf);
typedef void (*ust_io_channel_destroy_cb)(void *io_device, void *ctx_buf);
typedef void (*ust_io_device_unregister_cb)(void *io_device);

/*
 * Register io_device (any unique pointer). Each thread that calls
 * ust_get_io_channel() gets a channel with ctx_size bytes of context,
 * initialised by create_cb on that thread.
 */
void ust_io_device_register(void *io_device, ust_io_channel_create_cb create_cb,
			    ust_io_channel_destroy_cb destroy_cb, uint32_t ctx_size,
			    const char *name);
/*
 * Unregister; unregister_cb (may be NULL) runs on the calling thread once
 * every channel has been released.
 */
void ust_io_device_unregister(void *io_device, ust_io_device_unregister_cb unregister_cb);

/* The current thread's channel (refcounted); NULL on error. */
struct ust_io_channel *ust_get_io_channel(void *io_device);
/* Drop a reference; the channel is destroyed (deferred) at zero. */
void ust_put_io_channel(struct ust_io_channel *ch);
void *ust_io_channel_get_ctx(struct ust_io_channel *ch);
struct ust_io_channel *ust_io_channel_from_ctx(void *ctx);
struct ust_thread *ust_io_channel_get_thread(struct ust_io_channel *ch);
void *ust_io_channel_get_io_device(struct ust_io_channel *ch);

typedef void (*ust_channel_msg)(struct ust_io_channel_iter *i);
typedef void (*ust_channel_for_each_cpl)(struct ust_io_channel_iter *i, int status);

/*
 * Call fn on the thread of each channel of io_device, one after another;
 * each call must end with ust_for_each_channel_continue(). A non-zero status
 * stops the walk. cpl runs on the calling thread with the last status.
 */
void ust_for_each_channel(void *io_device, ust_channel_msg fn, void *ctx,
			  ust_channel_for_each_cpl cpl);
void ust_for_each_channel_continue(struct ust_io_channel_iter *i, int status);
void *ust_io_channel_iter_get_io_device(struct ust_io_channel_iter *i);
struct ust_io_channel *ust_io_channel_iter_get_channel(struct ust_io_channel_iter *i);
void *ust_io_channel_iter_get_ctx(struct ust_io_channel_iter *i);

#ifdef __cplusplus
}
#endif

#endif
