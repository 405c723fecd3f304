/*
 * DPDK environment: lock-free rings (rte_ring) in DPDK memory.
 *
 * The ring lives in rte_malloc memory on the requested socket and is set up
 * with rte_ring_init(), not rte_ring_create(), so it needs no unique name.
 * RING_F_EXACT_SZ makes the usable capacity exactly the count asked for.
 * The enqueue/dequeue code is DPDK's, identical to what env/test runs.
 */
#include <errno.h>
#include <limits.h>

#include <rte_malloc.h>
#include <rte_ring.h>

#include "env_internal.h"
#include "ustor/env.h"

static struct rte_ring *to_rte(struct ust_ring *ring)
{
	return (struct rte_ring *)ring;
}

static int ring_flags(enum ust_ring_type type, unsigned int *flags)
{
	switch (type) {
	case UST_RING_SP_SC:
		*flags = RING_F_SP_ENQ | RING_F_SC_DEQ;
		return 0;
	case UST_RING_MP_SC:
		*flags = RING_F_SC_DEQ;
		return 0;
	case UST_RING_MP_MC:
		*flags = 0;
		return 0;
	}
	return -EINVAL;
}

struct ust_ring *ust_ring_create(enum ust_ring_type type, size_t count, int socket_id)
{
	unsigned int flags;
	ssize_t memsize;
	void *mem;
	int rc;

	if (!ust_env_dpdk_running()) {
		errno = ENODEV;
		return NULL;
	}
	if (ring_flags(type, &flags) != 0 || count == 0 || count >= RTE_RING_SZ_MASK ||
	    !ust_env_dpdk_socket_valid(socket_id)) {
		errno = EINVAL;
		return NULL;
	}
	/* An exact-size ring of count slots needs the next power of two above count. */
	memsize = rte_ring_get_memsize(rte_align32pow2((uint32_t)count + 1));
	if (memsize < 0) {
		errno = (int)-memsize;
		return NULL;
	}
	mem = rte_zmalloc_socket(NULL, (size_t)memsize, _Alignof(struct rte_ring), socket_id);
	if (mem == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	rc = rte_ring_init(mem, "ust_ring", (unsigned int)count, flags | RING_F_EXACT_SZ);
	if (rc != 0) {
		rte_free(mem);
		errno = -rc;
		return NULL;
	}
	return mem;
}

void ust_ring_free(struct ust_ring *ring)
{
	if (ring != NULL)
		rte_free(ring);
}

/* The burst calls take an unsigned int count; larger requests are capped. */
static unsigned int burst_len(size_t count)
{
	return count > UINT_MAX ? UINT_MAX : (unsigned int)count;
}

size_t ust_ring_enqueue(struct ust_ring *ring, void **objs, size_t count)
{
	if (ring == NULL || objs == NULL)
		return 0;
	return rte_ring_enqueue_burst(to_rte(ring), objs, burst_len(count), NULL);
}

size_t ust_ring_dequeue(struct ust_ring *ring, void **objs, size_t count)
{
	if (ring == NULL || objs == NULL)
		return 0;
	return rte_ring_dequeue_burst(to_rte(ring), objs, burst_len(count), NULL);
}

size_t ust_ring_count(struct ust_ring *ring)
{
	if (ring == NULL)
		return 0;
	return rte_ring_count(to_rte(ring));
}
