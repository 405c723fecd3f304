/*
 * Test environment: DMA memory and object pools on plain malloc.
 *
 * Every buffer and every pool object is its own posix_memalign() allocation
 * of exactly the requested size, so AddressSanitizer reports a write past
 * the end of any of them. IOVA = VA: ust_vtophys() returns the address itself
 * and reports the whole request as contiguous.
 *
 * Pools are exact (no per-core cache): ust_mempool_count() is the true number
 * of free objects and ust_mempool_get_bulk() fails only when fewer than the
 * request are free. A put of a foreign object, or of a free one, aborts.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"

#define CACHE_LINE 64
#define POOL_NAME_MAX 64
/*
 * Larger requests fail with ENOMEM here rather than reaching the allocator:
 * under AddressSanitizer an impossible size aborts instead of returning NULL,
 * and tests of out-of-memory paths must behave the same in both builds.
 */
#define DMA_MAX_SIZE (1ULL << 40)
/* Same limit as DPDK's per-lcore cache, so a bad size fails in unit tests too. */
#define POOL_CACHE_MAX 512

struct ust_mempool {
	char name[POOL_NAME_MAX];
	pthread_mutex_t lock;
	size_t count;
	size_t elt_size;
	void **objs;       /* every object, sorted by address */
	bool *obj_free;    /* obj_free[i]: objs[i] is in the pool */
	size_t *free_idx;  /* stack of indexes of free objects */
	size_t nfree;      /* written under lock, read atomically */
};

static bool is_power_of_two(size_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

static void *aligned_buffer(size_t size, size_t align)
{
	void *buf;
	int rc;

	if (size == 0) {
		errno = EINVAL;
		return NULL;
	}
	if (size > DMA_MAX_SIZE) {
		errno = ENOMEM;
		return NULL;
	}
	if (align == 0)
		align = CACHE_LINE;
	if (!is_power_of_two(align)) {
		errno = EINVAL;
		return NULL;
	}
	/* posix_memalign wants at least pointer alignment. */
	if (align < sizeof(void *))
		align = sizeof(void *);
	rc = posix_memalign(&buf, align, size);
	if (rc != 0) {
		errno = rc;
		return NULL;
	}
	return buf;
}

void *ust_dma_malloc(size_t size, size_t align)
{
	return aligned_buffer(size, align);
}

void *ust_dma_zmalloc(size_t size, size_t align)
{
	void *buf = aligned_buffer(size, align);

	if (buf != NULL)
		memset(buf, 0, size);
	return buf;
}

void ust_dma_free(void *buf)
{
	free(buf);
}

uint64_t ust_vtophys(const void *buf, uint64_t *size)
{
	if (buf == NULL)
		return UST_VTOPHYS_ERROR;
	/* *size is left as given: with IOVA = VA all of it is contiguous. */
	return (uint64_t)(uintptr_t)buf;
}

/* ---- pools ---------------------------------------------------------------- */

static int compare_ptr(const void *a, const void *b)
{
	uintptr_t pa = (uintptr_t) * (void *const *)a;
	uintptr_t pb = (uintptr_t) * (void *const *)b;

	return pa < pb ? -1 : pa > pb;
}

static void pool_release(struct ust_mempool *mp)
{
	size_t i;

	if (mp->objs != NULL) {
		for (i = 0; i < mp->count; i++)
			free(mp->objs[i]);
	}
	free(mp->objs);
	free(mp->obj_free);
	free(mp->free_idx);
	pthread_mutex_destroy(&mp->lock);
	free(mp);
}

static int pool_check_args(const char *name, size_t count, size_t elt_size, size_t cache_size,
			   int socket_id)
{
	if (name == NULL || count == 0 || elt_size == 0)
		return EINVAL;
	if (strlen(name) >= POOL_NAME_MAX)
		return ENAMETOOLONG;
	if (socket_id != UST_ENV_SOCKET_ANY && socket_id != 0)
		return EINVAL;
	/* DPDK refuses a cache that could hold more than 2/3 of the pool. */
	if (cache_size > POOL_CACHE_MAX || cache_size * 3 / 2 > count)
		return EINVAL;
	if (count > DMA_MAX_SIZE / sizeof(void *) || elt_size > DMA_MAX_SIZE)
		return ENOMEM;
	return 0;
}

static int pool_fill(struct ust_mempool *mp)
{
	size_t i;

	mp->objs = calloc(mp->count, sizeof(*mp->objs));
	mp->obj_free = calloc(mp->count, sizeof(*mp->obj_free));
	mp->free_idx = calloc(mp->count, sizeof(*mp->free_idx));
	if (mp->objs == NULL || mp->obj_free == NULL || mp->free_idx == NULL)
		return ENOMEM;
	for (i = 0; i < mp->count; i++) {
		mp->objs[i] = aligned_buffer(mp->elt_size, CACHE_LINE);
		if (mp->objs[i] == NULL)
			return ENOMEM;
	}
	qsort(mp->objs, mp->count, sizeof(*mp->objs), compare_ptr);
	/* Hand out the lowest addresses first, like a fresh DPDK pool. */
	for (i = 0; i < mp->count; i++) {
		mp->obj_free[i] = true;
		mp->free_idx[i] = mp->count - 1 - i;
	}
	mp->nfree = mp->count;
	return 0;
}

struct ust_mempool *ust_mempool_create(const char *name, size_t count, size_t elt_size,
				       size_t cache_size, int socket_id)
{
	struct ust_mempool *mp;
	int rc;

	rc = pool_check_args(name, count, elt_size, cache_size, socket_id);
	if (rc != 0) {
		errno = rc;
		return NULL;
	}
	mp = calloc(1, sizeof(*mp));
	if (mp == NULL)
		return NULL;
	snprintf(mp->name, sizeof(mp->name), "%s", name);
	pthread_mutex_init(&mp->lock, NULL);
	mp->count = count;
	mp->elt_size = elt_size;
	rc = pool_fill(mp);
	if (rc != 0) {
		pool_release(mp);
		errno = rc;
		return NULL;
	}
	return mp;
}

void ust_mempool_free(struct ust_mempool *mp)
{
	if (mp != NULL)
		pool_release(mp);
}

static void *pool_pop_locked(struct ust_mempool *mp)
{
	size_t idx = mp->free_idx[mp->nfree - 1];

	__atomic_store_n(&mp->nfree, mp->nfree - 1, __ATOMIC_RELAXED);
	mp->obj_free[idx] = false;
	return mp->objs[idx];
}

void *ust_mempool_get(struct ust_mempool *mp)
{
	void *obj = NULL;

	if (mp == NULL)
		return NULL;
	pthread_mutex_lock(&mp->lock);
	if (mp->nfree > 0)
		obj = pool_pop_locked(mp);
	pthread_mutex_unlock(&mp->lock);
	return obj;
}

int ust_mempool_get_bulk(struct ust_mempool *mp, void **objs, size_t count)
{
	size_t i;

	if (mp == NULL || (objs == NULL && count > 0))
		return -EINVAL;
	pthread_mutex_lock(&mp->lock);
	if (mp->nfree < count) {
		pthread_mutex_unlock(&mp->lock);
		return -ENOMEM;
	}
	for (i = 0; i < count; i++)
		objs[i] = pool_pop_locked(mp);
	pthread_mutex_unlock(&mp->lock);
	return 0;
}

static void pool_misuse(const struct ust_mempool *mp, const void *obj, const char *what)
{
	fprintf(stderr, "ust_mempool_put: %p %s of pool '%s'\n", obj, what, mp->name);
	abort();
}

static size_t pool_index_of(const struct ust_mempool *mp, void *obj)
{
	void **hit = bsearch(&obj, mp->objs, mp->count, sizeof(*mp->objs), compare_ptr);

	if (hit == NULL)
		pool_misuse(mp, obj, "is not an object");
	return (size_t)(hit - mp->objs);
}

static void pool_push_locked(struct ust_mempool *mp, void *obj)
{
	size_t idx;

	if (obj == NULL)
		pool_misuse(mp, obj, "(NULL) is not an object");
	idx = pool_index_of(mp, obj);

	if (mp->obj_free[idx])
		pool_misuse(mp, obj, "put twice: it is already a free object");
	mp->obj_free[idx] = true;
	mp->free_idx[mp->nfree] = idx;
	__atomic_store_n(&mp->nfree, mp->nfree + 1, __ATOMIC_RELAXED);
}

void ust_mempool_put(struct ust_mempool *mp, void *obj)
{
	if (mp == NULL)
		return;
	pthread_mutex_lock(&mp->lock);
	pool_push_locked(mp, obj);
	pthread_mutex_unlock(&mp->lock);
}

void ust_mempool_put_bulk(struct ust_mempool *mp, void **objs, size_t count)
{
	size_t i;

	if (mp == NULL || objs == NULL)
		return;
	pthread_mutex_lock(&mp->lock);
	for (i = 0; i < count; i++)
		pool_push_locked(mp, objs[i]);
	pthread_mutex_unlock(&mp->lock);
}

size_t ust_mempool_count(const struct ust_mempool *mp)
{
	if (mp == NULL)
		return 0;
	return __atomic_load_n(&mp->nfree, __ATOMIC_RELAXED);
}
