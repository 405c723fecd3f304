/*
 * Test environment: lock-free rings, using DPDK's own ring code.
 *
 * rte_ring_init() works on caller-supplied memory and needs no EAL, so unit
 * tests run exactly the enqueue/dequeue code that production runs; only the
 * memory comes from malloc instead of hugepages. The ring is created with
 * RING_F_EXACT_SZ so its usable capacity is exactly the count asked for.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ring.h>

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

	if (ring_flags(type, &flags) != 0 || count == 0 || count >= RTE_RING_SZ_MASK ||
	    (socket_id != UST_ENV_SOCKET_ANY && socket_id != 0)) {
		errno = EINVAL;
		return NULL;
	}
	/* An exact-size ring of count slots needs the next power of two above count. */
	memsize = rte_ring_get_memsize(rte_align32pow2((uint32_t)count + 1));
	if (memsize < 0) {
		errno = (int)-memsize;
		return NULL;
	}
	if (posix_memalign(&mem, _Alignof(struct rte_ring), (size_t)memsize) != 0) {
		errno = ENOMEM;
		return NULL;
	}
	memset(mem, 0, (size_t)memsize);
	rc = rte_ring_init(mem, "ust_ring", (unsigned int)count, flags | RING_F_EXACT_SZ);
	if (rc != 0) {
		free(mem);
		errno = -rc;
		return NULL;
	}
	return mem;
}

void ust_ring_free(struct ust_ring *ring)
{
	free(ring);
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
