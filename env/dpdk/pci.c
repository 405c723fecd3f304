/*
 * DPDK environment: PCI functions for userspace drivers.
 *
 * Debian's DPDK 22.11 ships no driver SDK headers (struct rte_pci_device
 * and struct rte_pci_driver are opaque), so devices are found through sysfs
 * and opened here directly:
 *
 *   vfio-pci         rte_vfio_setup_device() puts the device's IOMMU group
 *                    into EAL's default VFIO container, which maps all of
 *                    EAL's DMA memory for it (and keeps hotplugged memory
 *                    mapped); no-IOMMU mode works the same way. BARs and
 *                    config space are regions of the VFIO device fd.
 *   uio_pci_generic  BARs are mmap()ed from sysfs resourceN, config space
 *                    is sysfs config; DMA uses physical addresses, so EAL
 *                    must run with IOVA as PA (hugepages, root).
 *
 * Attach enables memory decoding and bus mastering in the Command register;
 * detach clears bus mastering and unmaps everything.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/vfio.h>
#include <rte_eal.h>
#include <rte_vfio.h>

#include "env_internal.h"
#include "ustor/env.h"

#define SYSFS_PCI "/sys/bus/pci/devices"
#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define NUM_BARS 6

enum pci_driver {
	DRIVER_OTHER,
	DRIVER_VFIO,
	DRIVER_UIO,
};

struct pci_bar {
	void *addr;
	uint64_t size;
};

struct ust_pci_device {
	struct ust_pci_addr addr;
	struct ust_pci_id id;
	char name[UST_PCI_ADDR_STRLEN];
	enum pci_driver driver;
	int vfio_fd;      /* vfio-pci: the device fd */
	uint64_t cfg_off; /* vfio-pci: config region offset in vfio_fd */
	int cfg_fd;       /* uio: sysfs config */
	struct pci_bar bars[NUM_BARS];
	struct ust_pci_device *next;
};

static pthread_mutex_t g_pci_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ust_pci_device *g_attached;

/* ---- addresses ---------------------------------------------------------------- */

int ust_pci_addr_parse(struct ust_pci_addr *addr, const char *str)
{
	unsigned int domain = 0, bus, dev, func;
	char tail;

	if (addr == NULL || str == NULL)
		return -EINVAL;
	if (strpbrk(str, " -+") != NULL)
		return -EINVAL;
	if (sscanf(str, "%x:%x:%x.%x%c", &domain, &bus, &dev, &func, &tail) != 4) {
		domain = 0;
		if (sscanf(str, "%x:%x.%x%c", &bus, &dev, &func, &tail) != 3)
			return -EINVAL;
	}
	if (bus > 0xff || dev > 0x1f || func > 7)
		return -EINVAL;
	addr->domain = domain;
	addr->bus = (uint8_t)bus;
	addr->dev = (uint8_t)dev;
	addr->func = (uint8_t)func;
	return 0;
}

int ust_pci_addr_fmt(char *buf, size_t len, const struct ust_pci_addr *addr)
{
	int n = snprintf(buf, len, "%04x:%02x:%02x.%x", addr->domain, addr->bus, addr->dev,
			 addr->func);

	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

int ust_pci_addr_compare(const struct ust_pci_addr *a, const struct ust_pci_addr *b)
{
	if (a->domain != b->domain)
		return a->domain < b->domain ? -1 : 1;
	if (a->bus != b->bus)
		return a->bus < b->bus ? -1 : 1;
	if (a->dev != b->dev)
		return a->dev < b->dev ? -1 : 1;
	if (a->func != b->func)
		return a->func < b->func ? -1 : 1;
	return 0;
}

/* ---- sysfs ---------------------------------------------------------------------- */

static int read_sysfs_hex(const char *name, const char *attr, unsigned long *value)
{
	char path[PATH_MAX];
	FILE *f;
	int rc;

	snprintf(path, sizeof(path), SYSFS_PCI "/%s/%s", name, attr);
	f = fopen(path, "r");
	if (f == NULL)
		return -errno;
	rc = fscanf(f, "%lx", value) == 1 ? 0 : -EINVAL;
	fclose(f);
	return rc;
}

static int read_id(const char *name, struct ust_pci_id *id)
{
	unsigned long v[5];

	if (read_sysfs_hex(name, "vendor", &v[0]) || read_sysfs_hex(name, "device", &v[1]) ||
	    read_sysfs_hex(name, "subsystem_vendor", &v[2]) ||
	    read_sysfs_hex(name, "subsystem_device", &v[3]) || read_sysfs_hex(name, "class", &v[4]))
		return -ENODEV;
	id->vendor_id = (uint16_t)v[0];
	id->device_id = (uint16_t)v[1];
	id->subvendor_id = (uint16_t)v[2];
	id->subdevice_id = (uint16_t)v[3];
	id->class_id = (uint32_t)v[4] & 0xffffff;
	return 0;
}

static enum pci_driver read_driver(const char *name, char *drv, size_t len)
{
	char path[PATH_MAX], link[PATH_MAX];
	const char *base;
	ssize_t n;

	snprintf(path, sizeof(path), SYSFS_PCI "/%s/driver", name);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0) {
		snprintf(drv, len, "none");
		return DRIVER_OTHER;
	}
	link[n] = '\0';
	base = strrchr(link, '/');
	base = base != NULL ? base + 1 : link;
	/* Driver names are short; a longer one is no driver we use anyway. */
	if (strlen(base) >= len)
		return DRIVER_OTHER;
	memcpy(drv, base, strlen(base) + 1);
	if (strcmp(base, "vfio-pci") == 0)
		return DRIVER_VFIO;
	if (strcmp(base, "uio_pci_generic") == 0)
		return DRIVER_UIO;
	return DRIVER_OTHER;
}

int ust_pci_enumerate(uint32_t class_id, ust_pci_enum_cb cb, void *ctx)
{
	struct ust_pci_addr addr;
	struct ust_pci_id id;
	struct dirent *d;
	char drv[64];
	DIR *dir;
	int rc = 0;

	if (cb == NULL)
		return -EINVAL;
	dir = opendir(SYSFS_PCI);
	if (dir == NULL)
		return -errno;
	while (rc == 0 && (d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.' || ust_pci_addr_parse(&addr, d->d_name) != 0)
			continue;
		if (read_id(d->d_name, &id) != 0 || (class_id != 0 && id.class_id != class_id))
			continue;
		if (read_driver(d->d_name, drv, sizeof(drv)) == DRIVER_OTHER)
			continue;
		rc = cb(ctx, &addr, &id, drv);
	}
	closedir(dir);
	return rc;
}

/* ---- config space ----------------------------------------------------------------- */

int ust_pci_device_cfg_read(struct ust_pci_device *dev, void *buf, uint32_t len, uint32_t offset)
{
	ssize_t n;

	if (dev == NULL || buf == NULL || len == 0)
		return -EINVAL;
	if (dev->driver == DRIVER_VFIO)
		n = pread(dev->vfio_fd, buf, len, (off_t)(dev->cfg_off + offset));
	else
		n = pread(dev->cfg_fd, buf, len, offset);
	if (n < 0)
		return -errno;
	return (uint32_t)n == len ? 0 : -EIO;
}

int ust_pci_device_cfg_write(struct ust_pci_device *dev, const void *buf, uint32_t len,
			     uint32_t offset)
{
	ssize_t n;

	if (dev == NULL || buf == NULL || len == 0)
		return -EINVAL;
	if (dev->driver == DRIVER_VFIO)
		n = pwrite(dev->vfio_fd, buf, len, (off_t)(dev->cfg_off + offset));
	else
		n = pwrite(dev->cfg_fd, buf, len, offset);
	if (n < 0)
		return -errno;
	return (uint32_t)n == len ? 0 : -EIO;
}

static int set_command_bits(struct ust_pci_device *dev, uint16_t set, uint16_t clear)
{
	uint16_t cmd;
	int rc;

	rc = ust_pci_device_cfg_read(dev, &cmd, sizeof(cmd), PCI_COMMAND);
	if (rc != 0)
		return rc;
	cmd = (uint16_t)((cmd | set) & ~clear);
	return ust_pci_device_cfg_write(dev, &cmd, sizeof(cmd), PCI_COMMAND);
}

/* ---- attach / detach ------------------------------------------------------------------ */

static int open_vfio(struct ust_pci_device *dev)
{
	struct vfio_region_info reg = {.argsz = sizeof(reg)};
	struct vfio_device_info info = {.argsz = sizeof(info)};
	int rc;

	dev->vfio_fd = -1;
	rc = rte_vfio_setup_device(SYSFS_PCI, dev->name, &dev->vfio_fd, &info);
	if (rc != 0) {
		fprintf(stderr, "ustor: %s: VFIO setup failed (is the IOMMU group viable, or "
				"no-IOMMU mode enabled?)\n",
			dev->name);
		return -EPERM;
	}
	reg.index = VFIO_PCI_CONFIG_REGION_INDEX;
	if (ioctl(dev->vfio_fd, VFIO_DEVICE_GET_REGION_INFO, &reg) != 0) {
		rc = -errno;
		rte_vfio_release_device(SYSFS_PCI, dev->name, dev->vfio_fd);
		dev->vfio_fd = -1;
		return rc;
	}
	dev->cfg_off = reg.offset;
	return 0;
}

static int open_uio(struct ust_pci_device *dev)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), SYSFS_PCI "/%s/config", dev->name);
	dev->cfg_fd = open(path, O_RDWR | O_CLOEXEC);
	return dev->cfg_fd < 0 ? -errno : 0;
}

/* Devices DMA to IO addresses: without an IOMMU those must be physical. */
static int check_dma_mode(struct ust_pci_device *dev)
{
	if (!ust_env_dpdk_running()) {
		fprintf(stderr, "ustor: %s: the environment is not initialised\n", dev->name);
		return -ENODEV;
	}
	if (ust_env_no_huge()) {
		fprintf(stderr, "ustor: %s: running with --no-huge (IOVA = VA), the device cannot "
				"DMA; reserve hugepages with scripts/setup.sh\n",
			dev->name);
		return -ENOTSUP;
	}
	if ((dev->driver == DRIVER_UIO || rte_vfio_noiommu_is_enabled() == 1) &&
	    rte_eal_iova_mode() != RTE_IOVA_PA) {
		fprintf(stderr, "ustor: %s: without an IOMMU the device needs physical addresses "
				"(IOVA as PA), but EAL runs with IOVA as VA\n",
			dev->name);
		return -ENOTSUP;
	}
	return 0;
}

static void unmap_bars(struct ust_pci_device *dev)
{
	int i;

	for (i = 0; i < NUM_BARS; i++) {
		if (dev->bars[i].addr != NULL)
			munmap(dev->bars[i].addr, dev->bars[i].size);
		dev->bars[i].addr = NULL;
	}
}

static void close_device(struct ust_pci_device *dev)
{
	unmap_bars(dev);
	if (dev->driver == DRIVER_VFIO && dev->vfio_fd >= 0)
		rte_vfio_release_device(SYSFS_PCI, dev->name, dev->vfio_fd);
	if (dev->driver == DRIVER_UIO && dev->cfg_fd >= 0)
		close(dev->cfg_fd);
}

int ust_pci_device_attach(const struct ust_pci_addr *addr, struct ust_pci_device **devp)
{
	struct ust_pci_device *dev, *d;
	char drv[64];
	int rc;

	if (addr == NULL || devp == NULL)
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (dev == NULL)
		return -ENOMEM;
	dev->addr = *addr;
	dev->vfio_fd = -1;
	dev->cfg_fd = -1;
	ust_pci_addr_fmt(dev->name, sizeof(dev->name), addr);
	if (read_id(dev->name, &dev->id) != 0) {
		free(dev);
		return -ENODEV;
	}
	dev->driver = read_driver(dev->name, drv, sizeof(drv));
	if (dev->driver == DRIVER_OTHER) {
		fprintf(stderr, "ustor: %s is bound to '%s', not vfio-pci or uio_pci_generic "
				"(use scripts/setup.sh)\n",
			dev->name, drv);
		free(dev);
		return -EPERM;
	}
	pthread_mutex_lock(&g_pci_lock);
	for (d = g_attached; d != NULL; d = d->next) {
		if (ust_pci_addr_compare(&d->addr, addr) == 0) {
			pthread_mutex_unlock(&g_pci_lock);
			free(dev);
			return -EBUSY;
		}
	}
	rc = check_dma_mode(dev);
	if (rc == 0)
		rc = dev->driver == DRIVER_VFIO ? open_vfio(dev) : open_uio(dev);
	if (rc == 0) {
		rc = set_command_bits(dev, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 0);
		if (rc != 0)
			close_device(dev);
	}
	if (rc != 0) {
		pthread_mutex_unlock(&g_pci_lock);
		free(dev);
		return rc;
	}
	dev->next = g_attached;
	g_attached = dev;
	pthread_mutex_unlock(&g_pci_lock);
	*devp = dev;
	return 0;
}

void ust_pci_device_detach(struct ust_pci_device *dev)
{
	struct ust_pci_device **p;

	if (dev == NULL)
		return;
	pthread_mutex_lock(&g_pci_lock);
	for (p = &g_attached; *p != NULL; p = &(*p)->next) {
		if (*p == dev) {
			*p = dev->next;
			break;
		}
	}
	pthread_mutex_unlock(&g_pci_lock);
	set_command_bits(dev, 0, PCI_COMMAND_MASTER);
	close_device(dev);
	free(dev);
}

static int map_bar_vfio(struct ust_pci_device *dev, uint32_t bar)
{
	struct vfio_region_info reg = {.argsz = sizeof(reg)};
	void *p;

	reg.index = VFIO_PCI_BAR0_REGION_INDEX + bar;
	if (ioctl(dev->vfio_fd, VFIO_DEVICE_GET_REGION_INFO, &reg) != 0)
		return -errno;
	if (reg.size == 0)
		return -ENOENT;
	if (!(reg.flags & VFIO_REGION_INFO_FLAG_MMAP))
		return -ENOTSUP;
	p = mmap(NULL, reg.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev->vfio_fd,
		 (off_t)reg.offset);
	if (p == MAP_FAILED)
		return -errno;
	dev->bars[bar].addr = p;
	dev->bars[bar].size = reg.size;
	return 0;
}

static int map_bar_uio(struct ust_pci_device *dev, uint32_t bar)
{
	char path[PATH_MAX];
	struct stat st;
	void *p;
	int fd, rc = 0;

	snprintf(path, sizeof(path), SYSFS_PCI "/%s/resource%u", dev->name, bar);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -errno;
	if (fstat(fd, &st) != 0 || st.st_size == 0) {
		close(fd);
		return -ENOENT;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		rc = -errno;
	} else {
		dev->bars[bar].addr = p;
		dev->bars[bar].size = (uint64_t)st.st_size;
	}
	close(fd);
	return rc;
}

int ust_pci_device_map_bar(struct ust_pci_device *dev, uint32_t bar, void **addr, uint64_t *size)
{
	int rc = 0;

	if (dev == NULL || addr == NULL || size == NULL || bar >= NUM_BARS)
		return -EINVAL;
	if (dev->bars[bar].addr == NULL)
		rc = dev->driver == DRIVER_VFIO ? map_bar_vfio(dev, bar) : map_bar_uio(dev, bar);
	if (rc != 0)
		return rc;
	*addr = dev->bars[bar].addr;
	*size = dev->bars[bar].size;
	return 0;
}

struct ust_pci_addr ust_pci_device_get_addr(const struct ust_pci_device *dev)
{
	return dev->addr;
}

struct ust_pci_id ust_pci_device_get_id(const struct ust_pci_device *dev)
{
	return dev->id;
}
