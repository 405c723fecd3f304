/*
 * Pollers: functions a thread calls on every iteration (active) or at most
 * once per period (timed).
 *
 * Active pollers sit in a list walked once per iteration. Timed pollers sit
 * in a binary min-heap keyed by the tick at which they are next due, so an
 * iteration looks only at the pollers that are due rather than at all of
 * them. A timed poller is rescheduled to (iteration start + period) after it
 * runs: late iterations do not cause catch-up bursts.
 *
 * Guarantees: ust_poller_unregister() may be called from inside any callback
 * of the owning thread, including the poller's own; the poller is never run
 * again and its memory is freed only once no walk can still reach it. A
 * paused poller is not run until resumed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/thread.h"

#include "thread_internal.h"

/* ---- timed heap --------------------------------------------------------- */

static bool poller_due_before(const struct ust_poller *a, const struct ust_poller *b)
{
	if (a->next_run != b->next_run)
		return a->next_run < b->next_run;
	return a->seq < b->seq;
}

static void heap_place(struct ust_thread *t, uint32_t idx, struct ust_poller *p)
{
	t->timed_heap[idx] = p;
	p->heap_idx = idx;
}

static void heap_sift_up(struct ust_thread *t, uint32_t idx)
{
	struct ust_poller *p = t->timed_heap[idx];

	while (idx > 0) {
		uint32_t parent = (idx - 1) / 2;

		if (!poller_due_before(p, t->timed_heap[parent]))
			break;
		heap_place(t, idx, t->timed_heap[parent]);
		idx = parent;
	}
	heap_place(t, idx, p);
}

static void heap_sift_down(struct ust_thread *t, uint32_t idx)
{
	struct ust_poller *p = t->timed_heap[idx];

	for (;;) {
		uint32_t child = 2 * idx + 1;

		if (child >= t->heap_len)
			break;
		if (child + 1 < t->heap_len &&
		    poller_due_before(t->timed_heap[child + 1], t->timed_heap[child]))
			child++;
		if (!poller_due_before(t->timed_heap[child], p))
			break;
		heap_place(t, idx, t->timed_heap[child]);
		idx = child;
	}
	heap_place(t, idx, p);
}

/* Capacity for every timed poller is reserved at registration: never fails. */
static void heap_push(struct ust_thread *t, struct ust_poller *p)
{
	p->seq = t->poller_seq++;
	p->in_heap = true;
	heap_place(t, t->heap_len++, p);
	heap_sift_up(t, p->heap_idx);
}

static void heap_remove(struct ust_thread *t, struct ust_poller *p)
{
	uint32_t idx = p->heap_idx;
	struct ust_poller *last;

	p->in_heap = false;
	last = t->timed_heap[--t->heap_len];
	if (last == p)
		return;
	heap_place(t, idx, last);
	/* The moved poller may belong above or below the hole. */
	heap_sift_up(t, idx);
	heap_sift_down(t, last->heap_idx);
}

static int heap_reserve(struct ust_thread *t, uint32_t want)
{
	struct ust_poller **heap;
	uint32_t cap;

	if (want <= t->heap_cap)
		return 0;
	cap = t->heap_cap ? t->heap_cap * 2 : 16;
	while (cap < want)
		cap *= 2;
	heap = realloc(t->timed_heap, cap * sizeof(*heap));
	if (heap == NULL)
		return -ENOMEM;
	t->timed_heap = heap;
	t->heap_cap = cap;
	return 0;
}

/* ---- registration ------------------------------------------------------- */

static uint64_t period_us_to_ticks(uint64_t period_us)
{
	uint64_t hz = ust_get_ticks_hz();
	uint64_t ticks;

	/* Split so period_us * hz cannot overflow for any realistic period. */
	ticks = (period_us / 1000000) * hz + (period_us % 1000000) * hz / 1000000;
	return ticks ? ticks : 1;
}

static void poller_arm(struct ust_thread *t, struct ust_poller *p, uint64_t now)
{
	p->next_run = now + p->period_ticks;
	heap_push(t, p);
}

struct ust_poller *ust_poller_register(ust_poller_fn fn, void *arg, uint64_t period_us,
				       const char *name)
{
	struct ust_thread *t = ust_get_thread();
	struct ust_poller *p;

	if (t == NULL) {
		UST_ERRLOG("poller %s registered with no current thread\n", name ? name : "");
		return NULL;
	}
	if (fn == NULL || ust_thread_state_get(t) == UST_THREAD_STATE_EXITED) {
		UST_ERRLOG("cannot register poller %s on thread %s\n", name ? name : "", t->name);
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->fn = fn;
	p->arg = arg;
	p->thread = t;
	snprintf(p->name, sizeof(p->name), "%s", name ? name : "unnamed");
	p->state = UST_POLLER_STATE_WAITING;
	p->interrupt_fd = -1;

	if (period_us == 0) {
		TAILQ_INSERT_TAIL(&t->active_pollers, p, link);
		t->active_running_count++;
	} else {
		if (heap_reserve(t, t->timed_count + 1) != 0) {
			free(p);
			return NULL;
		}
		t->timed_count++;
		p->period_ticks = period_us_to_ticks(period_us);
		poller_arm(t, p, ust_get_ticks());
	}
	t->poller_count++;
	return p;
}

/* An active poller stops or starts running (pause, resume, unregister). */
static void active_stop(struct ust_thread *t, struct ust_poller *p)
{
	t->active_running_count--;
	if (p->interrupt_fd >= 0)
		t->active_intr_count--;
}

static void active_start(struct ust_thread *t, struct ust_poller *p)
{
	t->active_running_count++;
	if (p->interrupt_fd >= 0)
		t->active_intr_count++;
}

static bool poller_check_owner(struct ust_poller *p, const char *what)
{
	if (p->thread != ust_get_thread()) {
		UST_ERRLOG("poller %s %s from thread %s, but it belongs to %s\n", p->name, what,
			   ust_get_thread() ? ust_thread_get_name(ust_get_thread()) : "(none)",
			   p->thread->name);
		return false;
	}
	return true;
}

static void poller_release_timed(struct ust_thread *t, struct ust_poller *p)
{
	t->timed_count--;
	free(p);
}

void ust_poller_unregister(struct ust_poller **pp)
{
	struct ust_poller *p;
	struct ust_thread *t;

	if (pp == NULL || *pp == NULL)
		return;
	p = *pp;
	if (!poller_check_owner(p, "unregistered"))
		return;
	*pp = NULL;
	if (p->state == UST_POLLER_STATE_UNREGISTERED)
		return;
	t = p->thread;
	t->poller_count--;
	if (p->period_ticks == 0) {
		if (p->state == UST_POLLER_STATE_WAITING)
			active_stop(t, p);
		/* The active walk may be standing on it: the walk frees it. */
		p->state = UST_POLLER_STATE_UNREGISTERED;
		return;
	}
	if (p->running) {
		/* Freed by the timed walk once its fn returns. */
		p->state = UST_POLLER_STATE_UNREGISTERED;
		return;
	}
	if (p->in_heap)
		heap_remove(t, p);
	else
		TAILQ_REMOVE(&t->paused_timed_pollers, p, link);
	poller_release_timed(t, p);
}

void ust_poller_pause(struct ust_poller *p)
{
	struct ust_thread *t;

	if (p == NULL || !poller_check_owner(p, "paused"))
		return;
	if (p->state != UST_POLLER_STATE_WAITING)
		return;
	t = p->thread;
	p->state = UST_POLLER_STATE_PAUSED;
	if (p->period_ticks == 0) {
		active_stop(t, p);
		return;
	}
	if (p->in_heap) {
		heap_remove(t, p);
		TAILQ_INSERT_TAIL(&t->paused_timed_pollers, p, link);
	}
	/* A running timed poller is parked by the timed walk when it returns. */
}

void ust_poller_resume(struct ust_poller *p)
{
	struct ust_thread *t;

	if (p == NULL || !poller_check_owner(p, "resumed"))
		return;
	if (p->state != UST_POLLER_STATE_PAUSED)
		return;
	t = p->thread;
	p->state = UST_POLLER_STATE_WAITING;
	if (p->period_ticks == 0) {
		active_start(t, p);
		return;
	}
	if (!p->running) {
		TAILQ_REMOVE(&t->paused_timed_pollers, p, link);
		poller_arm(t, p, ust_get_ticks());
	}
}

int ust_poller_set_interrupt_fd(struct ust_poller *p, int fd)
{
	bool counted;

	if (p == NULL || !poller_check_owner(p, "given an interrupt fd"))
		return -EINVAL;
	if (p->period_ticks != 0 || p->state == UST_POLLER_STATE_UNREGISTERED)
		return -EINVAL;
	counted = p->state == UST_POLLER_STATE_WAITING;
	if (counted && p->interrupt_fd >= 0)
		p->thread->active_intr_count--;
	p->interrupt_fd = fd < 0 ? -1 : fd;
	if (counted && p->interrupt_fd >= 0)
		p->thread->active_intr_count++;
	return 0;
}

size_t ust_thread_get_interrupt_fds(struct ust_thread *t, int *fds, size_t max)
{
	struct ust_poller *p;
	size_t n = 0;

	TAILQ_FOREACH(p, &t->active_pollers, link) {
		if (p->state != UST_POLLER_STATE_WAITING || p->interrupt_fd < 0)
			continue;
		if (n < max)
			fds[n] = p->interrupt_fd;
		n++;
	}
	return n;
}

/* ---- running ------------------------------------------------------------ */

bool ust_poller_run_active(struct ust_thread *t)
{
	struct ust_poller *p, *next;
	bool busy = false;

	for (p = TAILQ_FIRST(&t->active_pollers); p != NULL; p = next) {
		if (p->state == UST_POLLER_STATE_WAITING) {
			p->running = true;
			if (p->fn(p->arg) > 0)
				busy = true;
			p->running = false;
		}
		/* Read after fn: it may have unregistered the next one (still linked). */
		next = TAILQ_NEXT(p, link);
		if (p->state == UST_POLLER_STATE_UNREGISTERED) {
			TAILQ_REMOVE(&t->active_pollers, p, link);
			free(p);
		}
	}
	return busy;
}

bool ust_poller_run_timed(struct ust_thread *t, uint64_t now)
{
	struct ust_poller *p;
	bool busy = false;

	while (t->heap_len > 0 && t->timed_heap[0]->next_run <= now) {
		p = t->timed_heap[0];
		heap_remove(t, p);
		p->running = true;
		if (p->fn(p->arg) > 0)
			busy = true;
		p->running = false;
		switch (p->state) {
		case UST_POLLER_STATE_UNREGISTERED:
			poller_release_timed(t, p);
			break;
		case UST_POLLER_STATE_PAUSED:
			TAILQ_INSERT_TAIL(&t->paused_timed_pollers, p, link);
			break;
		case UST_POLLER_STATE_WAITING:
			/* now + period > now, so this loop ends. */
			poller_arm(t, p, now);
			break;
		}
	}
	return busy;
}

void ust_poller_free_all(struct ust_thread *t)
{
	struct ust_poller *p;

	while ((p = TAILQ_FIRST(&t->active_pollers)) != NULL) {
		TAILQ_REMOVE(&t->active_pollers, p, link);
		free(p);
	}
	while ((p = TAILQ_FIRST(&t->paused_timed_pollers)) != NULL) {
		TAILQ_REMOVE(&t->paused_timed_pollers, p, link);
		free(p);
	}
	while (t->heap_len > 0)
		free(t->timed_heap[--t->heap_len]);
	free(t->timed_heap);
	t->timed_heap = NULL;
	t->heap_cap = 0;
	t->timed_count = 0;
	t->poller_count = 0;
	t->active_running_count = 0;
	t->active_intr_count = 0;
}

static void describe_append(char *buf, size_t len, const char *name)
{
	size_t used = strlen(buf);

	if (used + 1 >= len)
		return;
	snprintf(buf + used, len - used, "%s%s", used ? ", " : "", name);
}

void ust_poller_describe(struct ust_thread *t, char *buf, size_t len)
{
	struct ust_poller *p;
	uint32_t i;

	TAILQ_FOREACH(p, &t->active_pollers, link) {
		if (p->state != UST_POLLER_STATE_UNREGISTERED)
			describe_append(buf, len, p->name);
	}
	TAILQ_FOREACH(p, &t->paused_timed_pollers, link)
		describe_append(buf, len, p->name);
	for (i = 0; i < t->heap_len; i++)
		describe_append(buf, len, t->timed_heap[i]->name);
}

/* Added by the app helper for thread_get_stats (see include/ustor/thread.h). */
int ust_thread_get_poller_counts(struct ust_thread *t, struct ust_thread_poller_counts *counts)
{
	struct ust_poller *p;
	uint32_t i;

	if (t == NULL || counts == NULL)
		return -EINVAL;
	memset(counts, 0, sizeof(*counts));
	TAILQ_FOREACH(p, &t->active_pollers, link) {
		if (p->state == UST_POLLER_STATE_WAITING)
			counts->active++;
		else if (p->state == UST_POLLER_STATE_PAUSED)
			counts->paused++;
	}
	TAILQ_FOREACH(p, &t->paused_timed_pollers, link)
		counts->paused++;
	for (i = 0; i < t->heap_len; i++) {
		if (t->timed_heap[i]->state == UST_POLLER_STATE_WAITING)
			counts->timed++;
	}
	return 0;
}
