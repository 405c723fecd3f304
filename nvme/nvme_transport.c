/*
 * The transport registry: fabrics transports (nvme/tcp, later rdma)
 * register their ops from a constructor; PCIe is built in and added here,
 * which also makes every static link of the core carry it. The core looks
 * transports up by trtype.
 */
#include <pthread.h>
#include <stddef.h>

#include "nvme_internal.h"

#define MAX_TRANSPORTS 8

static const struct nvme_transport_ops *g_transports[MAX_TRANSPORTS];
static int g_num_transports;
static pthread_mutex_t g_transport_lock = PTHREAD_MUTEX_INITIALIZER;

static const struct nvme_transport_ops *find_locked(enum ust_nvme_transport_type type)
{
	int i;

	for (i = 0; i < g_num_transports; i++) {
		if (g_transports[i]->type == type)
			return g_transports[i];
	}
	return NULL;
}

static void register_locked(const struct nvme_transport_ops *ops)
{
	if (g_num_transports == MAX_TRANSPORTS || find_locked(ops->type) != NULL) {
		UST_ERRLOG("NVMe transport %s registered twice or too many transports\n", ops->name);
		return;
	}
	g_transports[g_num_transports++] = ops;
}

static void add_builtin_locked(void)
{
	if (find_locked(UST_NVME_TRANSPORT_PCIE) == NULL)
		register_locked(&nvme_pcie_transport);
}

void nvme_transport_register(const struct nvme_transport_ops *ops)
{
	pthread_mutex_lock(&g_transport_lock);
	add_builtin_locked();
	register_locked(ops);
	pthread_mutex_unlock(&g_transport_lock);
}

const struct nvme_transport_ops *nvme_transport_get(enum ust_nvme_transport_type type)
{
	const struct nvme_transport_ops *ops;

	pthread_mutex_lock(&g_transport_lock);
	add_builtin_locked();
	ops = find_locked(type);
	pthread_mutex_unlock(&g_transport_lock);
	return ops;
}
