/*
 * Files in memory (tmpfs), read and written through a shared mapping.
 *
 * A tmpfs file is nothing but page cache, so a read or write is one copy
 * whichever way it is made; pread/pwrite add a system call and a page-cache
 * lookup and lock per 4 KiB page around it, which on the reactor cost more
 * than the copy itself (bench/fs). So a file on tmpfs is mapped MAP_SHARED
 * once at open and its reads and writes are memcpy()s on the reactor (large
 * writes on the copy engine, file_copy.c), with the same coherence as
 * pread/pwrite: one page cache, seen by every other opener of the file.
 *
 * The price is paid once per page: the first access through the mapping is
 * a page fault. Measured on this project's test machine (a nested VM with
 * shadow paging, where faults are dear): a first touch costs 12-19 us per
 * 4 KiB page against about 2 us for a pread or pwrite of it, and every
 * later access 0.2-0.4 us against 2 us. On bare metal a fault costs well
 * under a microsecond. Counting I/Os per chunk to map only hot chunks was
 * tried and dropped: a sequential reader sees each chunk once per pass, so
 * its chunks turned hot all at once, late, and paid every fault together.
 *
 * The hazard of a mapping is that a page the kernel cannot provide is a
 * SIGBUS, not an error code: a store into a hole of a full tmpfs, or any
 * access past the end of the file. Both are kept out of the copy path:
 *  - The file is divided into chunks (64 KiB, or more for files over 1 TiB,
 *    so the bitmap stays small) and a bit per chunk says "every page of this
 *    chunk exists in the file". Only I/O whose chunks all have the bit is
 *    copied through the mapping. A write to another chunk first allocates it
 *    with fallocate(2), which fails cleanly with ENOSPC; a read first asks
 *    mincore(2) whether every page of the chunk exists, and a chunk with a
 *    hole is read with preadv (which returns zeros for holes without
 *    allocating).
 *    Unmap and write_zeroes clear the bits of every chunk they touch, before
 *    they are issued and again when they complete, so a punched chunk is
 *    allocated again before the next store into it.
 *  - Only the file's size at open is mapped. I/O beyond it (after a rescan
 *    that grew the file) uses the system calls. Shrinking is refused while
 *    the bdev is open (file_disk.c), but another process can still truncate
 *    the file behind our back. The copies therefore run under a SIGBUS
 *    guard (a thread-local jump target, set only around them): a fault
 *    there fails the I/O with -EIO, as preadv would have by coming up
 *    short. A SIGBUS anywhere else goes to the handler installed before
 *    ours, or kills the process as it would have without us.
 * fallocate and mincore on tmpfs touch memory only, never a device, so like
 * the copies they run on the reactor. Newly backed chunks are prefaulted (MADV_POPULATE_WRITE/READ) so their
 * first copies do not take a page fault per page.
 *
 * Only tmpfs files are mapped: ramfs has no fallocate (and no size limit),
 * so its files keep using preadv/pwritev. The bits are atomic: the channels
 * of several threads share one disk.
 */
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ustor/log.h"

#include "file_internal.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* 64 KiB chunks, doubled until the bitmap of the mapped size fits in 2^24 bits (2 MiB). */
#define FILE_MAP_MIN_CHUNK_SHIFT 16
#define FILE_MAP_MAX_CHUNKS (1ull << 24)

struct file_map {
	uint8_t *base;
	uint64_t len;            /* bytes mapped: the file's size at open */
	uint32_t chunk_shift;
	uint64_t nchunks;
	_Atomic uint64_t *backed; /* bit c: every page of chunk c exists in the file */
	bool copy_engine;         /* holds a reference to the copy engine (file_copy.c) */
};

/* Where a SIGBUS inside this thread's copy lands; NULL outside the copies. */
static __thread sigjmp_buf *t_copy_jmp;
static struct sigaction g_prev_sigbus;
static pthread_mutex_t g_sigbus_lock = PTHREAD_MUTEX_INITIALIZER;

static void map_sigbus(int sig, siginfo_t *si, void *uc)
{
	sigjmp_buf *jb = t_copy_jmp;

	if (jb != NULL) {
		t_copy_jmp = NULL;
		siglongjmp(*jb, 1);
	}
	if (g_prev_sigbus.sa_flags & SA_SIGINFO) {
		g_prev_sigbus.sa_sigaction(sig, si, uc);
	} else if (g_prev_sigbus.sa_handler != SIG_DFL && g_prev_sigbus.sa_handler != SIG_IGN) {
		g_prev_sigbus.sa_handler(sig);
	} else {
		/* Returning would fault again: die of it, as without us. */
		signal(SIGBUS, SIG_DFL);
		raise(SIGBUS);
	}
}

/*
 * Install the guard's handler unless it is in place. Checked at every open,
 * not once: a handler installed after ours (a test harness, another
 * library) replaces it, and the next mapping then gets the guard back.
 */
static int map_install_sigbus(void)
{
	struct sigaction sa, cur;
	int rc = 0;

	pthread_mutex_lock(&g_sigbus_lock);
	if (sigaction(SIGBUS, NULL, &cur) != 0) {
		rc = -errno;
	} else if (!(cur.sa_flags & SA_SIGINFO) || cur.sa_sigaction != map_sigbus) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = map_sigbus;
		/* NODEFER: the jump leaves the handler, and sigsetjmp(, 0) saves no mask to restore. */
		sa.sa_flags = SA_SIGINFO | SA_NODEFER;
		sigemptyset(&sa.sa_mask);
		g_prev_sigbus = cur;
		if (sigaction(SIGBUS, &sa, NULL) != 0) {
			rc = -errno;
		}
	}
	pthread_mutex_unlock(&g_sigbus_lock);
	return rc;
}

static bool map_test(const struct file_map *fm, uint64_t c)
{
	return (atomic_load_explicit(&fm->backed[c / 64], memory_order_acquire) >> (c % 64)) & 1;
}

static void map_set(struct file_map *fm, uint64_t c)
{
	atomic_fetch_or_explicit(&fm->backed[c / 64], 1ull << (c % 64), memory_order_release);
}

static void map_clear(struct file_map *fm, uint64_t c)
{
	atomic_fetch_and_explicit(&fm->backed[c / 64], ~(1ull << (c % 64)), memory_order_release);
}

int file_map_open(struct file_disk *disk, uint64_t size)
{
	struct file_map *fm;
	uint32_t shift = FILE_MAP_MIN_CHUNK_SHIFT;
	void *base;
	int rc;

	if (size == 0) {
		return -EINVAL;
	}
	rc = map_install_sigbus();
	if (rc != 0) {
		return rc;
	}
	while ((size >> shift) >= FILE_MAP_MAX_CHUNKS) {
		shift++;
	}
	fm = calloc(1, sizeof(*fm));
	if (fm == NULL) {
		return -ENOMEM;
	}
	fm->len = size;
	fm->chunk_shift = shift;
	fm->nchunks = (size + (1ull << shift) - 1) >> shift;
	fm->backed = calloc((fm->nchunks + 63) / 64, sizeof(*fm->backed));
	base = mmap(NULL, size, disk->readonly ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED,
		    disk->fd, 0);
	if (fm->backed == NULL || base == MAP_FAILED) {
		rc = fm->backed == NULL ? -ENOMEM : -errno;

		free(fm->backed);
		free(fm);
		return rc;
	}
	fm->base = base;
	fm->copy_engine = !disk->readonly && file_copy_start() == 0;
	disk->map = fm;
	return 0;
}

void file_map_close(struct file_disk *disk)
{
	struct file_map *fm = disk->map;

	if (fm == NULL) {
		return;
	}
	if (fm->copy_engine) {
		file_copy_stop();
	}
	munmap(fm->base, fm->len);
	free(fm->backed);
	free(fm);
	disk->map = NULL;
}

void file_map_forget(struct file_disk *disk, uint64_t offset, uint64_t len)
{
	struct file_map *fm = disk->map;
	uint64_t c, last;

	if (fm == NULL || len == 0 || offset >= fm->len) {
		return;
	}
	if (len > fm->len - offset) {
		len = fm->len - offset;
	}
	last = (offset + len - 1) >> fm->chunk_shift;
	for (c = offset >> fm->chunk_shift; c <= last; c++) {
		map_clear(fm, c);
	}
}

/*
 * Every page of [p, p + len) is in the file's page cache, so none is a hole.
 * mincore, not lseek(SEEK_HOLE): that one walks the page cache from the
 * offset to the next hole, which behind a large written region (a store's
 * metadata) made every first read of a chunk scan hundreds of MiB. A page
 * swapped out reads as absent here: preadv then serves it, which is safe.
 * A file's last chunk may end inside a page: that page counts too.
 */
static bool map_all_pages_exist(uint8_t *p, uint64_t len)
{
	unsigned char vec[1024];
	uint64_t pages = (len + 4095) / 4096, n, i;

	while (pages > 0) {
		n = pages < sizeof(vec) ? pages : sizeof(vec);
		if (mincore(p, n * 4096, vec) != 0) {
			return false;
		}
		for (i = 0; i < n; i++) {
			if ((vec[i] & 1) == 0) {
				return false;
			}
		}
		p += n * 4096;
		pages -= n;
	}
	return true;
}

/*
 * Make chunk c usable: 0; 1 when a read must go through preadv (the chunk
 * has a hole); -errno (ENOSPC) to fail a write.
 */
static int map_back_chunk(struct file_disk *disk, struct file_map *fm, uint64_t c, bool write)
{
	uint64_t start = c << fm->chunk_shift;
	uint64_t len = 1ull << fm->chunk_shift;

	if (len > fm->len - start) {
		len = fm->len - start;
	}
	if (write) {
		if (fallocate(disk->fd, 0, (off_t)start, (off_t)len) != 0) {
			return -errno;
		}
		/* Best effort: only saves the page faults. */
		madvise(fm->base + start, len, MADV_POPULATE_WRITE);
	} else {
		if (!map_all_pages_exist(fm->base + start, len)) {
			return 1;
		}
		madvise(fm->base + start, len, MADV_POPULATE_READ);
	}
	map_set(fm, c);
	return 0;
}

/*
 * A write's bytes go to the image, which nobody on this core reads again
 * soon: a 1 MiB write overruns the L2 anyway, and what a reader asks for
 * next comes from memory either way. Ordinary stores make the core fetch
 * every destination line before overwriting it and push the caller's data
 * and our own hot state out of the caches; streaming (non-temporal) stores
 * do neither. Measured on this project's test machine (AMD EPYC guest),
 * copying into a tmpfs mapping from a hot 1 MiB buffer: memcpy 18-20 GB/s
 * for pieces of 16 KiB to 1 MiB, streaming stores 21 GB/s at 16 KiB, 23.5
 * at 32 KiB and 24.7-25.3 from 128 KiB; at 4 KiB the fence after each piece
 * makes them slower (16 GB/s against 20). Hence the threshold. SSE2, part
 * of x86-64 itself, is as fast here as AVX-512 for this loop. A file
 * opened O_DIRECT (tmpfs takes it since Linux 6.6) has the core align
 * every buffer to its block, so a piece and its place in the mapping are
 * whole cache lines; any piece that is not is memcpy'd.
 */
#define MAP_STREAM_MIN (32u << 10)

/* A piece of a write into the mapping: streamed where it is large and whole cache lines. */
static void map_store(uint8_t *dst, const uint8_t *src, size_t n)
{
#ifdef __SSE2__
	if (n >= MAP_STREAM_MIN && (((uintptr_t)dst | n) & 63) == 0) {
		for (size_t i = 0; i < n; i += 64) {
			__m128i a = _mm_loadu_si128((const __m128i *)(src + i));
			__m128i b = _mm_loadu_si128((const __m128i *)(src + i + 16));
			__m128i c = _mm_loadu_si128((const __m128i *)(src + i + 32));
			__m128i d = _mm_loadu_si128((const __m128i *)(src + i + 48));

			_mm_stream_si128((__m128i *)(dst + i), a);
			_mm_stream_si128((__m128i *)(dst + i + 16), b);
			_mm_stream_si128((__m128i *)(dst + i + 32), c);
			_mm_stream_si128((__m128i *)(dst + i + 48), d);
		}
		/* Streaming stores are weakly ordered: fence them before the I/O completes. */
		_mm_sfence();
		return;
	}
#endif
	memcpy(dst, src, n);
}

static void map_copy_slices(const struct file_io *fio)
{
	uint8_t *p = fio->disk->map->base + fio->offset + fio->done;
	int i;

	for (i = 0; i < fio->slice_cnt; i++) {
		if (fio->op == FILE_OP_WRITE) {
			map_store(p, fio->slice[i].iov_base, fio->slice[i].iov_len);
		} else {
			memcpy(fio->slice[i].iov_base, p, fio->slice[i].iov_len);
		}
		p += fio->slice[i].iov_len;
	}
}

/* The copies, under the SIGBUS guard: false if the file was shorter than mapped. */
static bool map_copy_guarded(const struct file_io *fio)
{
	sigjmp_buf jb;

	if (sigsetjmp(jb, 0) != 0) {
		UST_ERRLOG("%s: the file is shorter than when it was opened (truncated by "
			   "someone else?): I/O at %" PRIu64 " fails\n", fio->disk->filename,
			   fio->offset);
		return false;
	}
	t_copy_jmp = &jb;
	map_copy_slices(fio);
	t_copy_jmp = NULL;
	return true;
}

/*
 * Make every chunk of [off, off + len) usable for a read or a write: 0;
 * 1 when the range cannot go through the mapping (outside it, or a read
 * of a chunk with a hole); -errno (ENOSPC) to fail a write.
 */
static int map_back_range(struct file_disk *disk, uint64_t off, uint64_t len, bool write)
{
	struct file_map *fm = disk->map;
	uint64_t c, last;
	int rc;

	if (len == 0 || off >= fm->len || len > fm->len - off) {
		return 1;
	}
	last = (off + len - 1) >> fm->chunk_shift;
	for (c = off >> fm->chunk_shift; c <= last; c++) {
		if (map_test(fm, c)) {
			continue;
		}
		rc = map_back_chunk(disk, fm, c, write);
		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

int64_t file_map_copy(struct file_io *fio)
{
	uint64_t len = file_io_slice_len(fio);
	int rc;

	rc = map_back_range(fio->disk, fio->offset + fio->done, len, fio->op == FILE_OP_WRITE);
	if (rc != 0) {
		return rc > 0 ? 0 : rc;
	}
	return map_copy_guarded(fio) ? (int64_t)len : -EIO;
}

/*
 * The lent range is copied by whoever reads or fills it: the kernel, for a
 * FUSE reply or a FUSE write's payload read from a pipe, whose copy from or
 * to a page that vanished (the file truncated behind our back) is an EFAULT
 * from writev or read, not a SIGBUS here. A write lend backs its chunks
 * first, as a write does; a chunk that cannot be backed (ENOSPC) is -EAGAIN,
 * so the caller's ordinary write reports the error.
 */
int file_map_lend(void *ctxt, uint64_t offset, uint64_t len, bool write, void **data)
{
	struct file_disk *disk = ctxt;

	if (disk->map == NULL) {
		return -ENOTSUP;
	}
	if (map_back_range(disk, offset, len, write) != 0) {
		return -EAGAIN;
	}
	*data = disk->map->base + offset;
	return 0;
}
