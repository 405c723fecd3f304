/*
 * fuse_buf: data buffers for read and write requests.
 *
 * The transport reads every request into a buffer big enough for a 1 MiB
 * WRITE (which keeps it until answered), and every READ needs one for its
 * data until the reply has left. Large buffers from malloc are mmap'ed and
 * unmapped per request, and filling a fresh mapping page-faults on every
 * 4 KiB: at 1 MiB per request that fault-in, not the copy, was half the
 * daemon's CPU. So large buffers are recycled through a lock-free ring
 * (never blocks) and keep their pages.
 *
 * Guarantees: fbuf_get returns a 4 KiB-aligned buffer of at least the size
 * asked for (up to FMNT_BUF_SIZE pooled), or NULL when memory is short; at
 * most FBUF_CACHED large buffers stay cached per mount; everything is freed
 * by fbuf_pool_fini.
 */
#include <errno.h>
#include <stdlib.h>

#include "fuse_internal.h"

/* Smaller requests come from malloc's own per-thread caches cheaply. */
#define FBUF_POOLED_MIN (64u * 1024)
/* More than the requests with data a mount has in flight in practice. */
#define FBUF_CACHED 32

int fbuf_pool_init(struct fmnt *m)
{
	m->bufs = ust_ring_create(UST_RING_MP_MC, FBUF_CACHED, -1);
	return m->bufs != NULL ? 0 : -ENOMEM;
}

void fbuf_pool_fini(struct fmnt *m)
{
	void *buf;

	if (m->bufs == NULL)
		return;
	while (ust_ring_dequeue(m->bufs, &buf, 1) == 1)
		free(buf);
	ust_ring_free(m->bufs);
	m->bufs = NULL;
}

static bool fbuf_pooled(size_t size)
{
	return size >= FBUF_POOLED_MIN && size <= FMNT_BUF_SIZE;
}

void *fbuf_get(struct fmnt *m, size_t size)
{
	void *buf = NULL;

	if (fbuf_pooled(size)) {
		if (ust_ring_dequeue(m->bufs, &buf, 1) == 1)
			return buf;
		size = FMNT_BUF_SIZE;
	}
	if (posix_memalign(&buf, 4096, size > 0 ? size : 1) != 0)
		return NULL;
	return buf;
}

void fbuf_put(struct fmnt *m, void *buf, size_t size)
{
	if (buf == NULL)
		return;
	if (fbuf_pooled(size) && ust_ring_enqueue(m->bufs, &buf, 1) == 1)
		return;
	free(buf);
}
