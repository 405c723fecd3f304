/*
 * Hand-polled ust_threads for the unit tests that drive the bdev layer (and
 * what sits on it) without a reactor: threads "t0".."t<n-1>" created and
 * destroyed around a cmocka group, polled round-robin until idle, and the
 * bdev layer started and stopped on thread 0. See ut_threads.c for what
 * each call guarantees.
 */
#ifndef USTOR_UT_THREADS_H
#define USTOR_UT_THREADS_H

#include "ustor/thread.h"

#define UT_MAX_THREADS 4

/*
 * Thread library and n threads (1..UT_MAX_THREADS), thread 0 current, RPCs
 * in the runtime state; 0 on success, -1 on any failure.
 */
int ut_threads_setup(unsigned n);
/* Exit and destroy every thread, then the library; -1 if one did not exit. */
int ut_threads_teardown(void);
/* Thread i of those made by ut_threads_setup (fails the test otherwise). */
struct ust_thread *ut_thread(unsigned i);
/* Poll every thread until a whole round finds nothing to do; thread 0 is then current. */
void ut_threads_poll(void);

/* ust_bdev_initialize on thread 0, polled to its end; 0 if it succeeded. */
int ut_bdev_start(void);
/* ust_bdev_finish on thread 0, polled to its end; 0 if it completed. */
int ut_bdev_stop(void);

/*
 * Exit t (a thread the test made itself) from its own context, poll it
 * until it has exited, and destroy it; the current thread is then none.
 * 0 if it exited (and was freed), -1 if it never did.
 */
int ut_thread_exit(struct ust_thread *t);

#endif
