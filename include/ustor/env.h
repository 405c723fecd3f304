/*
 * ustor environment: the one place that talks to DPDK's EAL.
 *
 * It gives the rest of the stack DMA-able memory with IO addresses, fixed-size
 * object pools, lock-free rings, CPU cores to run reactors on and a tick
 * clock. Two implementations exist behind this header:
 *
 *   env/dpdk  - DPDK EAL: hugepage memory (or --no-huge, IOVA = VA, when no
 *               hugepages are reserved), lcores pinned per core of the mask.
 *   env/test  - plain malloc, one core, for unit tests (no EAL).
 *
 * All functions are thread-safe unless noted. Errors are negative errno.
 */
#ifndef USTOR_ENV_H
#define USTOR_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UST_ENV_SOCKET_ANY (-1)
#define UST_ENV_MAX_CORES 256

struct ust_env_opts {
	const char *name;        /* process name, e.g. "ustord" */
	const char *core_mask;   /* hex mask "0x3" or list "[0-1]"; NULL = "0x1" */
	int main_core;           /* -1: the lowest core of the mask */
	int mem_size_mb;         /* memory to reserve up front; 0 = EAL default */
	const char *file_prefix; /* hugepage file prefix; NULL = "ustor_<pid>" */
	bool no_huge;            /* force --no-huge even if hugepages exist */
	bool pci;                /* scan the PCI bus (default off: --no-pci) */
	bool quiet;              /* keep EAL's own log at warnings and above */
};

void ust_env_opts_init(struct ust_env_opts *opts);

/*
 * Initialise the environment once per process. Falls back to --no-huge with
 * one warning when no hugepages are reserved or hugetlbfs is not mounted.
 */
int ust_env_init(const struct ust_env_opts *opts);
void ust_env_fini(void);
/* True if running without hugepages (explicitly or by fallback). */
bool ust_env_no_huge(void);

/*
 * Whether len bytes at p are all zero (a blank page, an unset id). The
 * first byte is zero and each byte equals the one before it: memcmp is
 * vectorised, where a byte loop with an early exit is not (4 KiB pages are
 * checked on every blob open).
 */
static inline bool ust_mem_is_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	return len == 0 || (b[0] == 0 && memcmp(b, b + 1, len - 1) == 0);
}

/*
 * The bytes [off, off + len) of src[0, cnt) as iovec entries in dst;
 * returns how many (at most cnt: dst must hold that many). dst may be src:
 * each entry is read before any entry at or after it is written.
 */
static inline int ust_iov_slice(struct iovec *dst, const struct iovec *src, int cnt, uint64_t off,
				uint64_t len)
{
	int i, k = 0;

	for (i = 0; i < cnt && len > 0; i++) {
		uint8_t *base = src[i].iov_base;
		uint64_t n = src[i].iov_len;

		if (off >= n) {
			off -= n;
			continue;
		}
		n -= off;
		if (n > len) {
			n = len;
		}
		dst[k].iov_base = base + off;
		dst[k].iov_len = n;
		k++;
		len -= n;
		off = 0;
	}
	return k;
}

/* ---- DMA memory --------------------------------------------------------- */

/*
 * Memory that a device can DMA to/from. align 0 means cache-line alignment;
 * otherwise a power of two. Returns NULL on failure.
 */
void *ust_dma_malloc(size_t size, size_t align);
void *ust_dma_zmalloc(size_t size, size_t align);
void ust_dma_free(void *buf);

#define UST_VTOPHYS_ERROR UINT64_MAX
/*
 * IO address of buf. If size is non-NULL, on input it is the length wanted
 * and on output the number of bytes from buf that are contiguous in IO space
 * (at most the input). Returns UST_VTOPHYS_ERROR for memory that is not DMA
 * memory.
 */
uint64_t ust_vtophys(const void *buf, uint64_t *size);

/* ---- object pools ------------------------------------------------------- */

struct ust_mempool;

/*
 * count objects of elt_size bytes, with a per-core cache of cache_size
 * objects (0: none). Objects are cache-line aligned DMA memory.
 */
struct ust_mempool *ust_mempool_create(const char *name, size_t count, size_t elt_size,
				       size_t cache_size, int socket_id);
void ust_mempool_free(struct ust_mempool *mp);
/* NULL when empty. */
void *ust_mempool_get(struct ust_mempool *mp);
/* All or nothing: 0 on success, -ENOMEM if fewer than count are free. */
int ust_mempool_get_bulk(struct ust_mempool *mp, void **objs, size_t count);
void ust_mempool_put(struct ust_mempool *mp, void *obj);
void ust_mempool_put_bulk(struct ust_mempool *mp, void **objs, size_t count);
/* Objects currently free (approximate while others use the pool). */
size_t ust_mempool_count(const struct ust_mempool *mp);

/* ---- lock-free rings ---------------------------------------------------- */

enum ust_ring_type {
	UST_RING_SP_SC, /* one producer thread, one consumer thread */
	UST_RING_MP_SC, /* many producers, one consumer */
	UST_RING_MP_MC, /* many producers, many consumers */
};

struct ust_ring;

/* count is rounded up to a power of two; usable capacity is count. */
struct ust_ring *ust_ring_create(enum ust_ring_type type, size_t count, int socket_id);
void ust_ring_free(struct ust_ring *ring);
/* Enqueues up to count objects; returns how many were enqueued. */
size_t ust_ring_enqueue(struct ust_ring *ring, void **objs, size_t count);
/* Dequeues up to count objects; returns how many were dequeued. */
size_t ust_ring_dequeue(struct ust_ring *ring, void **objs, size_t count);
size_t ust_ring_count(struct ust_ring *ring);

/* ---- cores -------------------------------------------------------------- */

/* Cores in the mask given to ust_env_init. */
uint32_t ust_env_get_core_count(void);
uint32_t ust_env_get_first_core(void);
/* UINT32_MAX after the last core. */
uint32_t ust_env_get_next_core(uint32_t prev);
uint32_t ust_env_get_main_core(void);
/* The core the calling OS thread is pinned to; UINT32_MAX if none. */
uint32_t ust_env_get_current_core(void);
int ust_env_get_socket_id(uint32_t core);
/* Run fn(arg) on the (non-main) core's pinned OS thread. */
int ust_env_launch_on_core(uint32_t core, int (*fn)(void *arg), void *arg);
/* Wait for every launched function to return. */
void ust_env_wait_all_cores(void);

/* ---- time --------------------------------------------------------------- */

uint64_t ust_get_ticks(void);
uint64_t ust_get_ticks_hz(void);
void ust_delay_us(unsigned int us);

/* ---- PCI devices -------------------------------------------------------- */

/*
 * Userspace access to PCI functions bound to vfio-pci (with an IOMMU or in
 * no-IOMMU mode) or uio_pci_generic. env/dpdk implements it over sysfs and
 * DPDK's VFIO container (so DMA memory is mapped for the device); env/test
 * serves fake devices whose BARs are test memory. Control path only.
 */
struct ust_pci_addr {
	uint32_t domain;
	uint8_t bus;
	uint8_t dev;
	uint8_t func;
};

struct ust_pci_id {
	uint16_t vendor_id;
	uint16_t device_id;
	uint16_t subvendor_id;
	uint16_t subdevice_id;
	uint32_t class_id; /* base class 23:16, subclass 15:8, prog-if 7:0 */
};

#define UST_PCI_CLASS_NVME 0x010802
#define UST_PCI_ADDR_STRLEN 16 /* "DDDD:BB:DD.F" and the NUL, with room */

struct ust_pci_device;

/* "DDDD:BB:DD.F" or "BB:DD.F" (domain 0), hexadecimal; -EINVAL otherwise. */
int ust_pci_addr_parse(struct ust_pci_addr *addr, const char *str);
/* "0000:00:04.0"; -ENOSPC if len is too small. */
int ust_pci_addr_fmt(char *buf, size_t len, const struct ust_pci_addr *addr);
int ust_pci_addr_compare(const struct ust_pci_addr *a, const struct ust_pci_addr *b);

/*
 * Call cb for every PCI function of class class_id (0: any) that is bound to
 * a userspace driver; driver is "vfio-pci" or "uio_pci_generic". cb returns 0
 * to go on, anything else stops the walk and is returned.
 */
typedef int (*ust_pci_enum_cb)(void *ctx, const struct ust_pci_addr *addr,
			       const struct ust_pci_id *id, const char *driver);
int ust_pci_enumerate(uint32_t class_id, ust_pci_enum_cb cb, void *ctx);

/*
 * Open a function for use: -ENODEV not present, -EPERM not bound to a
 * userspace driver (or no permission), -EBUSY already attached. Bus
 * mastering is enabled.
 */
int ust_pci_device_attach(const struct ust_pci_addr *addr, struct ust_pci_device **dev);
/* Unmap every BAR, disable bus mastering and close the device. */
void ust_pci_device_detach(struct ust_pci_device *dev);
/* Map memory BAR bar (0-5); mapped once, the same address is returned again. */
int ust_pci_device_map_bar(struct ust_pci_device *dev, uint32_t bar, void **addr,
			   uint64_t *size);
struct ust_pci_addr ust_pci_device_get_addr(const struct ust_pci_device *dev);
struct ust_pci_id ust_pci_device_get_id(const struct ust_pci_device *dev);
int ust_pci_device_cfg_read(struct ust_pci_device *dev, void *buf, uint32_t len,
			    uint32_t offset);
int ust_pci_device_cfg_write(struct ust_pci_device *dev, const void *buf, uint32_t len,
			     uint32_t offset);

/* Process-unique prefix in use (for shared-memory names), e.g. "ustor_1234". */
const char *ust_env_get_file_prefix(void);

#ifdef __cplusplus
}
#endif

#endif
