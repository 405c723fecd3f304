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
 * The large buffers are 2 MiB-aligned mappings of 2 MiB, asked to be one
 * transparent huge page each (MADV_HUGEPAGE). The kernel copies a request
 * into them, and a reply out of them, pinning one 4 KiB page at a time
 * (fuse_copy_fill): on a huge page each pin is a walk one level shorter
 * on one shared folio. 1 MiB O_DIRECT writes on this project's 2-vCPU VM
 * went from 4,800-5,700 to 6,100-6,700 MiB/s (bench/fs). Where the kernel
 * gives no huge page the buffer works the same with small ones.
 *
 * Guarantees: fbuf_get returns a 4 KiB-aligned buffer of at least the size
 * asked for (up to FMNT_BUF_SIZE pooled), or NULL when memory is short; at
 * most FBUF_CACHED large buffers stay cached per mount; everything is freed
 * by fbuf_pool_fini.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "fuse_internal.h"

#define FBUF_HUGE (2u << 20)
_Static_assert(FMNT_BUF_SIZE <= FBUF_HUGE, "a pooled buffer is one huge page");

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
		munmap(buf, FBUF_HUGE);
	ust_ring_free(m->bufs);
	m->bufs = NULL;
}

static bool fbuf_pooled(size_t size)
{
	return size >= FBUF_POOLED_MIN && size <= FMNT_BUF_SIZE;
}

/* FBUF_HUGE bytes at a FBUF_HUGE boundary: twice that mapped, the ends unmapped. */
static void *huge_buffer(void)
{
	uint8_t *p = mmap(NULL, 2 * FBUF_HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *buf;
	size_t head;

	if (p == MAP_FAILED)
		return NULL;
	buf = (uint8_t *)(((uintptr_t)p + FBUF_HUGE - 1) & ~((uintptr_t)FBUF_HUGE - 1));
	head = (size_t)(buf - p);
	if (head > 0)
		munmap(p, head);
	munmap(buf + FBUF_HUGE, FBUF_HUGE - head);
	(void)madvise(buf, FBUF_HUGE, MADV_HUGEPAGE); /* advice: small pages work too */
	return buf;
}

void *fbuf_get(struct fmnt *m, size_t size)
{
	void *buf = NULL;

	if (fbuf_pooled(size)) {
		if (ust_ring_dequeue(m->bufs, &buf, 1) == 1)
			return buf;
		return huge_buffer();
	}
	if (posix_memalign(&buf, 4096, size > 0 ? size : 1) != 0)
		return NULL;
	return buf;
}

void fbuf_put(struct fmnt *m, void *buf, size_t size)
{
	if (buf == NULL)
		return;
	if (!fbuf_pooled(size)) {
		free(buf);
	} else if (ust_ring_enqueue(m->bufs, &buf, 1) != 1) {
		munmap(buf, FBUF_HUGE);
	}
}
