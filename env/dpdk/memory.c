/*
 * DPDK environment: DMA memory, IO address translation and object pools.
 *
 * DMA memory comes from rte_malloc (hugepages, or anonymous memory with
 * IOVA = VA under --no-huge). ust_vtophys() reports an IO address only for
 * memory EAL manages, and the length it reports as contiguous is checked
 * page by page, so a buffer spanning physically scattered hugepages is never
 * described as one DMA segment. Pools are rte_mempools with a per-lcore
 * cache; their DPDK names are made unique here, so callers may reuse a name
 * and are not bound by DPDK's short name limit.
 * Everything fails cleanly (NULL / error) before ust_env_init().
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <rte_eal_memconfig.h>
#include <rte_errno.h>
#include <rte_fbarray.h>
#include <rte_malloc.h>
#include <rte_memory.h>
#include <rte_mempool.h>

#include "env_internal.h"
#include "ustor/env.h"

#define POOL_NAME_MAX 64

static bool is_power_of_two(size_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

static bool dma_args_valid(size_t size, size_t align)
{
	if (!ust_env_dpdk_running()) {
		errno = ENODEV;
		return false;
	}
	if (size == 0 || (align != 0 && !is_power_of_two(align)) || align > UINT_MAX) {
		errno = EINVAL;
		return false;
	}
	return true;
}

void *ust_dma_malloc(size_t size, size_t align)
{
	void *buf;

	if (!dma_args_valid(size, align))
		return NULL;
	/* rte_malloc treats align 0 as cache-line alignment, as we promise. */
	buf = rte_malloc(NULL, size, (unsigned int)align);
	if (buf == NULL)
		errno = ENOMEM;
	return buf;
}

void *ust_dma_zmalloc(size_t size, size_t align)
{
	void *buf;

	if (!dma_args_valid(size, align))
		return NULL;
	buf = rte_zmalloc(NULL, size, (unsigned int)align);
	if (buf == NULL)
		errno = ENOMEM;
	return buf;
}

void ust_dma_free(void *buf)
{
	if (buf != NULL)
		rte_free(buf);
}

/* ---- vtophys ----------------------------------------------------------------- */

/* The used memseg at idx of msl, or NULL if that page is not mapped. */
static const struct rte_memseg *used_memseg(struct rte_memseg_list *msl, size_t idx)
{
	if (idx >= msl->memseg_arr.len || rte_fbarray_is_used(&msl->memseg_arr, (unsigned int)idx) != 1)
		return NULL;
	return rte_fbarray_get(&msl->memseg_arr, (unsigned int)idx);
}

/* Bytes from offset off in segment idx on that stay contiguous in IO space, up to want. */
static uint64_t contiguous_length(struct rte_memseg_list *msl, size_t idx, uint64_t off,
				  uint64_t want)
{
	const struct rte_memseg *ms = used_memseg(msl, idx);
	uint64_t contig = ms->len - off;
	uint64_t next_iova = ms->iova + ms->len;

	while (contig < want) {
		ms = used_memseg(msl, ++idx);
		if (ms == NULL || ms->iova != next_iova)
			break;
		contig += ms->len;
		next_iova += ms->len;
	}
	return contig < want ? contig : want;
}

uint64_t ust_vtophys(const void *buf, uint64_t *size)
{
	struct rte_memseg_list *msl;
	const struct rte_memseg *ms;
	uint64_t iova = UST_VTOPHYS_ERROR, off;
	size_t idx;

	if (buf == NULL || !ust_env_dpdk_running())
		return UST_VTOPHYS_ERROR;
	/* Hold off memory hotplug while we read the memseg tables. */
	rte_mcfg_mem_read_lock();
	msl = rte_mem_virt2memseg_list(buf);
	if (msl == NULL)
		goto out;
	idx = (size_t)(((uintptr_t)buf - (uintptr_t)msl->base_va) / msl->page_sz);
	ms = used_memseg(msl, idx);
	if (ms == NULL || ms->iova == RTE_BAD_IOVA)
		goto out;
	off = (uintptr_t)buf - (uintptr_t)ms->addr;
	iova = ms->iova + off;
	if (size != NULL)
		*size = contiguous_length(msl, idx, off, *size);
out:
	rte_mcfg_mem_read_unlock();
	return iova;
}

/* ---- pools ------------------------------------------------------------------- */

static struct rte_mempool *to_rte(struct ust_mempool *mp)
{
	return (struct rte_mempool *)mp;
}

static int pool_check_args(const char *name, size_t count, size_t elt_size, size_t cache_size,
			   int socket_id)
{
	if (!ust_env_dpdk_running())
		return ENODEV;
	if (name == NULL || count == 0 || elt_size == 0 || count > UINT_MAX ||
	    elt_size > UINT_MAX || cache_size > UINT_MAX)
		return EINVAL;
	if (strlen(name) >= POOL_NAME_MAX)
		return ENAMETOOLONG;
	if (!ust_env_dpdk_socket_valid(socket_id))
		return EINVAL;
	return 0;
}

/*
 * DPDK pool names must be unique and, with the ring driver, at most 25
 * characters ("RG_MP_" + name must fit a memzone name). Keep a readable
 * prefix of the caller's name and make it unique with a sequence number.
 */
static void pool_dpdk_name(const char *name, char *buf, size_t len)
{
	static unsigned int seq;
	unsigned int n = __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED);

	snprintf(buf, len, "%.12s_%x", name, n);
}

struct ust_mempool *ust_mempool_create(const char *name, size_t count, size_t elt_size,
				       size_t cache_size, int socket_id)
{
	char dpdk_name[RTE_MEMPOOL_NAMESIZE];
	struct rte_mempool *mp;
	int rc;

	rc = pool_check_args(name, count, elt_size, cache_size, socket_id);
	if (rc != 0) {
		errno = rc;
		return NULL;
	}
	pool_dpdk_name(name, dpdk_name, sizeof(dpdk_name));
	/* rte_mempool_create checks the cache size against count (EINVAL). */
	mp = rte_mempool_create(dpdk_name, (unsigned int)count, (unsigned int)elt_size,
				(unsigned int)cache_size, 0, NULL, NULL, NULL, NULL, socket_id, 0);
	if (mp == NULL) {
		errno = rte_errno > 0 ? rte_errno : ENOMEM;
		return NULL;
	}
	return (struct ust_mempool *)mp;
}

void ust_mempool_free(struct ust_mempool *mp)
{
	if (mp != NULL)
		rte_mempool_free(to_rte(mp));
}

void *ust_mempool_get(struct ust_mempool *mp)
{
	void *obj;

	if (mp == NULL || rte_mempool_get(to_rte(mp), &obj) != 0)
		return NULL;
	return obj;
}

int ust_mempool_get_bulk(struct ust_mempool *mp, void **objs, size_t count)
{
	if (mp == NULL || (objs == NULL && count > 0))
		return -EINVAL;
	if (count == 0)
		return 0;
	/* A pool never holds more than UINT_MAX objects. */
	if (count > UINT_MAX)
		return -ENOMEM;
	if (rte_mempool_get_bulk(to_rte(mp), objs, (unsigned int)count) != 0)
		return -ENOMEM;
	return 0;
}

void ust_mempool_put(struct ust_mempool *mp, void *obj)
{
	if (mp != NULL && obj != NULL)
		rte_mempool_put(to_rte(mp), obj);
}

void ust_mempool_put_bulk(struct ust_mempool *mp, void **objs, size_t count)
{
	if (mp == NULL || objs == NULL || count == 0 || count > UINT_MAX)
		return;
	rte_mempool_put_bulk(to_rte(mp), objs, (unsigned int)count);
}

size_t ust_mempool_count(const struct ust_mempool *mp)
{
	if (mp == NULL)
		return 0;
	return rte_mempool_avail_count((const struct rte_mempool *)mp);
}
