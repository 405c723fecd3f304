/*
 * Unit tests for core/worker.c: every job taken runs exactly once, in the
 * order one producer took them, on a CPU outside the reactors' core mask
 * (the test environment's mask is core 0), also when it was asleep; a full
 * worker refuses a job instead of losing it; destroy runs what is queued;
 * a bound (--worker-mask) narrows the CPUs, and an empty one means none.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ustor/worker.h"

#define NJOBS 5000

struct tjob {
	struct ust_worker_job job;
	atomic_int runs;
	int cpu;
	int order; /* where it ran among its producer's jobs */
	atomic_int *seq;
	atomic_bool *gate; /* a job that waits for it before finishing */
	atomic_bool started;
};

static atomic_int g_done;

static struct tjob *tjob_of(struct ust_worker_job *job)
{
	return (struct tjob *)((char *)job - offsetof(struct tjob, job));
}

static void tjob_run(struct ust_worker_job *job)
{
	struct tjob *t = tjob_of(job);

	atomic_store(&t->started, true);
	while (t->gate != NULL && !atomic_load(t->gate)) {
		sched_yield();
	}
	t->cpu = sched_getcpu();
	if (t->seq != NULL) {
		t->order = atomic_fetch_add(t->seq, 1);
	}
	atomic_fetch_add(&t->runs, 1);
	atomic_fetch_add(&g_done, 1);
}

/* A worker, or NULL where this machine has no CPU besides core 0 (asserted to be so). */
static struct ust_worker *make_worker(uint32_t depth)
{
	struct ust_worker *w = NULL;
	int rc = ust_worker_create("ut_worker", depth, &w);

	if (rc == -ENODEV) {
		assert_int_equal(sysconf(_SC_NPROCESSORS_CONF), 1);
		return NULL;
	}
	assert_int_equal(rc, 0);
	assert_non_null(w);
	assert_false(ust_cpuset_get(ust_worker_get_cpumask(w), 0));
	assert_int_equal(ust_cpuset_count(ust_worker_get_cpumask(w)),
			 (uint32_t)sysconf(_SC_NPROCESSORS_CONF) - 1);
	return w;
}

static void wait_done(int want)
{
	for (int i = 0; i < 10000 && atomic_load(&g_done) < want; i++) {
		usleep(1000);
	}
	assert_int_equal(atomic_load(&g_done), want);
}

struct producer {
	struct ust_worker *w;
	struct tjob *jobs;
	atomic_int seq;
};

static void *produce(void *arg)
{
	struct producer *p = arg;

	for (int i = 0; i < NJOBS; i++) {
		p->jobs[i].job.fn = tjob_run;
		p->jobs[i].seq = &p->seq;
		while (!ust_worker_submit(p->w, &p->jobs[i].job)) {
			sched_yield();
		}
	}
	return NULL;
}

static void test_each_once_in_order(void **state)
{
	struct ust_worker *w = make_worker(64);
	struct producer p[2];
	pthread_t t[2];

	if (w == NULL) {
		skip();
	}
	atomic_store(&g_done, 0);
	for (int k = 0; k < 2; k++) {
		p[k].w = w;
		p[k].jobs = calloc(NJOBS, sizeof(struct tjob));
		assert_non_null(p[k].jobs);
		atomic_store(&p[k].seq, 0);
		assert_int_equal(pthread_create(&t[k], NULL, produce, &p[k]), 0);
	}
	for (int k = 0; k < 2; k++) {
		assert_int_equal(pthread_join(t[k], NULL), 0);
	}
	wait_done(2 * NJOBS);
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < NJOBS; i++) {
			assert_int_equal(atomic_load(&p[k].jobs[i].runs), 1);
			assert_int_equal(p[k].jobs[i].order, i);
			assert_true(ust_cpuset_get(ust_worker_get_cpumask(w), (uint32_t)p[k].jobs[i].cpu));
		}
		free(p[k].jobs);
	}
	ust_worker_destroy(w);
}

/* After a pause the worker sleeps; a job then still wakes it, every time. */
static void test_wakes_from_sleep(void **state)
{
	struct ust_worker *w = make_worker(8);
	struct tjob j[5];

	if (w == NULL) {
		skip();
	}
	memset(j, 0, sizeof(j));
	atomic_store(&g_done, 0);
	for (int i = 0; i < 5; i++) {
		usleep(20000);
		j[i].job.fn = tjob_run;
		assert_true(ust_worker_submit(w, &j[i].job));
		wait_done(i + 1);
	}
	ust_worker_destroy(w);
}

/* A full worker says so; the jobs it took all run, the last ones during destroy. */
static void test_full_then_destroy_drains(void **state)
{
	struct ust_worker *w = make_worker(4);
	atomic_bool gate = false;
	struct tjob blocker, j[5];

	if (w == NULL) {
		skip();
	}
	memset(&blocker, 0, sizeof(blocker));
	memset(j, 0, sizeof(j));
	atomic_store(&g_done, 0);
	blocker.job.fn = tjob_run;
	blocker.gate = &gate;
	assert_true(ust_worker_submit(w, &blocker.job));
	for (int i = 0; i < 1000 && !atomic_load(&blocker.started); i++) {
		usleep(1000);
	}
	assert_true(atomic_load(&blocker.started)); /* out of the ring: 4 places free */
	for (int i = 0; i < 4; i++) {
		j[i].job.fn = tjob_run;
		assert_true(ust_worker_submit(w, &j[i].job));
	}
	j[4].job.fn = tjob_run;
	assert_false(ust_worker_submit(w, &j[4].job));
	atomic_store(&gate, true);
	ust_worker_destroy(w);
	assert_int_equal(atomic_load(&g_done), 5);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(atomic_load(&j[i].runs), 1);
	}
	assert_int_equal(atomic_load(&j[4].runs), 0);
}

/* --worker-mask: only its CPUs outside the core mask (core 0 here); none at all when empty. */
static void test_cpumask_bound(void **state)
{
	struct ust_worker *w = NULL;
	struct ust_cpuset mask;
	struct tjob j;

	ust_cpuset_zero(&mask);
	ust_worker_set_cpumask(&mask);
	assert_int_equal(ust_worker_create("ut_worker", 4, &w), -ENODEV);
	assert_null(w);
	ust_cpuset_set(&mask, 0, true); /* the reactor's core only */
	ust_worker_set_cpumask(&mask);
	assert_int_equal(ust_worker_create("ut_worker", 4, &w), -ENODEV);
	if (sysconf(_SC_NPROCESSORS_CONF) > 1) {
		ust_cpuset_set(&mask, 1, true);
		ust_worker_set_cpumask(&mask);
		assert_int_equal(ust_worker_create("ut_worker", 4, &w), 0);
		assert_int_equal(ust_cpuset_count(ust_worker_get_cpumask(w)), 1);
		assert_true(ust_cpuset_get(ust_worker_get_cpumask(w), 1));
		memset(&j, 0, sizeof(j));
		j.job.fn = tjob_run;
		atomic_store(&g_done, 0);
		assert_true(ust_worker_submit(w, &j.job));
		wait_done(1);
		assert_int_equal(j.cpu, 1);
		ust_worker_destroy(w);
	}
	/* unbound again: the default of every CPU outside the core mask */
	ust_worker_set_cpumask(NULL);
	w = make_worker(4);
	ust_worker_destroy(w);
}

static void test_bad_args(void **state)
{
	struct ust_worker *w = (struct ust_worker *)&w;

	assert_int_equal(ust_worker_create(NULL, 4, &w), -EINVAL);
	assert_null(w);
	assert_int_equal(ust_worker_create("x", 0, &w), -EINVAL);
	assert_null(w);
	ust_worker_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_once_in_order),
		cmocka_unit_test(test_wakes_from_sleep),
		cmocka_unit_test(test_full_then_destroy_drains),
		cmocka_unit_test(test_cpumask_bound),
		cmocka_unit_test(test_bad_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
