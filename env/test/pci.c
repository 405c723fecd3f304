/*
 * Test environment: fake PCI functions. A unit test registers a device with
 * ust_env_test_pci_add(), giving memory that stands for BAR 0; drivers then
 * find, attach and map it through the ordinary ust_pci_* calls. Config space
 * is a 256-byte array holding the IDs, with the Command register's Bus
 * Master Enable bit set by attach and cleared by detach.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"

#include "env_test.h"

#define MAX_FAKE_DEVICES 16
#define CFG_SIZE 256
#define PCI_COMMAND 0x04
#define PCI_COMMAND_MASTER 0x4

struct ust_pci_device {
	bool used;
	bool attached;
	struct ust_pci_addr addr;
	struct ust_pci_id id;
	void *bar0;
	uint64_t bar0_size;
	uint8_t cfg[CFG_SIZE];
};

static struct ust_pci_device g_devices[MAX_FAKE_DEVICES];
static pthread_mutex_t g_pci_lock = PTHREAD_MUTEX_INITIALIZER;

int ust_pci_addr_parse(struct ust_pci_addr *addr, const char *str)
{
	unsigned int domain = 0, bus, dev, func;
	char tail;

	if (addr == NULL || str == NULL)
		return -EINVAL;
	if (sscanf(str, "%x:%x:%x.%x%c", &domain, &bus, &dev, &func, &tail) != 4) {
		domain = 0;
		if (sscanf(str, "%x:%x.%x%c", &bus, &dev, &func, &tail) != 3)
			return -EINVAL;
	}
	if (strchr(str, ' ') != NULL || strchr(str, '-') != NULL || strchr(str, '+') != NULL)
		return -EINVAL;
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

static struct ust_pci_device *find_device(const struct ust_pci_addr *addr)
{
	int i;

	for (i = 0; i < MAX_FAKE_DEVICES; i++) {
		if (g_devices[i].used && ust_pci_addr_compare(&g_devices[i].addr, addr) == 0)
			return &g_devices[i];
	}
	return NULL;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

int ust_env_test_pci_add(const struct ust_pci_addr *addr, const struct ust_pci_id *id, void *bar0,
			 uint64_t size)
{
	int i, rc = -ENOSPC;

	pthread_mutex_lock(&g_pci_lock);
	if (find_device(addr) != NULL) {
		rc = -EEXIST;
		goto out;
	}
	for (i = 0; i < MAX_FAKE_DEVICES; i++) {
		struct ust_pci_device *d = &g_devices[i];

		if (d->used)
			continue;
		memset(d, 0, sizeof(*d));
		d->used = true;
		d->addr = *addr;
		d->id = *id;
		d->bar0 = bar0;
		d->bar0_size = size;
		put16(&d->cfg[0x00], id->vendor_id);
		put16(&d->cfg[0x02], id->device_id);
		d->cfg[0x09] = (uint8_t)id->class_id;
		d->cfg[0x0a] = (uint8_t)(id->class_id >> 8);
		d->cfg[0x0b] = (uint8_t)(id->class_id >> 16);
		put16(&d->cfg[0x2c], id->subvendor_id);
		put16(&d->cfg[0x2e], id->subdevice_id);
		rc = 0;
		break;
	}
out:
	pthread_mutex_unlock(&g_pci_lock);
	return rc;
}

void ust_env_test_pci_remove(const struct ust_pci_addr *addr)
{
	struct ust_pci_device *d;

	pthread_mutex_lock(&g_pci_lock);
	d = find_device(addr);
	if (d != NULL)
		memset(d, 0, sizeof(*d));
	pthread_mutex_unlock(&g_pci_lock);
}

int ust_pci_enumerate(uint32_t class_id, ust_pci_enum_cb cb, void *ctx)
{
	struct ust_pci_device snapshot[MAX_FAKE_DEVICES];
	int i, n = 0, rc;

	if (cb == NULL)
		return -EINVAL;
	pthread_mutex_lock(&g_pci_lock);
	for (i = 0; i < MAX_FAKE_DEVICES; i++) {
		if (g_devices[i].used && (class_id == 0 || g_devices[i].id.class_id == class_id))
			snapshot[n++] = g_devices[i];
	}
	pthread_mutex_unlock(&g_pci_lock);
	for (i = 0; i < n; i++) {
		rc = cb(ctx, &snapshot[i].addr, &snapshot[i].id, "vfio-pci");
		if (rc != 0)
			return rc;
	}
	return 0;
}

int ust_pci_device_attach(const struct ust_pci_addr *addr, struct ust_pci_device **devp)
{
	struct ust_pci_device *d;
	int rc = 0;

	if (addr == NULL || devp == NULL)
		return -EINVAL;
	pthread_mutex_lock(&g_pci_lock);
	d = find_device(addr);
	if (d == NULL)
		rc = -ENODEV;
	else if (d->attached)
		rc = -EBUSY;
	else {
		d->attached = true;
		d->cfg[PCI_COMMAND] |= PCI_COMMAND_MASTER;
		*devp = d;
	}
	pthread_mutex_unlock(&g_pci_lock);
	return rc;
}

void ust_pci_device_detach(struct ust_pci_device *dev)
{
	if (dev == NULL)
		return;
	pthread_mutex_lock(&g_pci_lock);
	dev->attached = false;
	dev->cfg[PCI_COMMAND] &= (uint8_t)~PCI_COMMAND_MASTER;
	pthread_mutex_unlock(&g_pci_lock);
}

int ust_pci_device_map_bar(struct ust_pci_device *dev, uint32_t bar, void **addr, uint64_t *size)
{
	if (dev == NULL || addr == NULL || size == NULL || bar > 5)
		return -EINVAL;
	if (bar != 0 || dev->bar0 == NULL)
		return -ENOENT;
	*addr = dev->bar0;
	*size = dev->bar0_size;
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

int ust_pci_device_cfg_read(struct ust_pci_device *dev, void *buf, uint32_t len, uint32_t offset)
{
	if (dev == NULL || buf == NULL || offset > CFG_SIZE || len > CFG_SIZE - offset)
		return -EINVAL;
	memcpy(buf, &dev->cfg[offset], len);
	return 0;
}

int ust_pci_device_cfg_write(struct ust_pci_device *dev, const void *buf, uint32_t len,
			     uint32_t offset)
{
	if (dev == NULL || buf == NULL || offset > CFG_SIZE || len > CFG_SIZE - offset)
		return -EINVAL;
	memcpy(&dev->cfg[offset], buf, len);
	return 0;
}
