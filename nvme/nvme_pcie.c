/*
 * The PCIe transport: controllers are PCI functions of class 010802h bound
 * to vfio-pci or uio_pci_generic. Registers are BAR0 MMIO (Base spec 3.1.3),
 * read and written as 32-bit accesses (64-bit registers low dword first);
 * the admin queue is set up through AQA/ASQ/ACQ before CC.EN is set.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nvme_pcie_internal.h"

/* Registers up to ACQ plus the admin doorbells at the smallest stride. */
#define MIN_BAR0_SIZE 0x1008

static uint32_t mmio_read32(struct nvme_pcie_ctrlr *pc, uint32_t offset)
{
	return *(volatile uint32_t *)(pc->regs + offset);
}

static void mmio_write32(struct nvme_pcie_ctrlr *pc, uint32_t offset, uint32_t value)
{
	*(volatile uint32_t *)(pc->regs + offset) = value;
}

static int pcie_reg_read(struct ust_nvme_ctrlr *ctrlr, uint32_t offset, uint32_t size,
			 nvme_reg_cb cb, void *cb_arg)
{
	struct nvme_pcie_ctrlr *pc = to_pcie_ctrlr(ctrlr);
	uint64_t value;

	if ((size != 4 && size != 8) || offset % 4 != 0 || offset + size > pc->regs_size)
		return -EINVAL;
	value = mmio_read32(pc, offset);
	if (size == 8)
		value |= (uint64_t)mmio_read32(pc, offset + 4) << 32;
	cb(cb_arg, 0, value);
	return 0;
}

static int pcie_reg_write(struct ust_nvme_ctrlr *ctrlr, uint32_t offset, uint32_t size,
			  uint64_t value, nvme_reg_cb cb, void *cb_arg)
{
	struct nvme_pcie_ctrlr *pc = to_pcie_ctrlr(ctrlr);

	if ((size != 4 && size != 8) || offset % 4 != 0 || offset + size > pc->regs_size)
		return -EINVAL;
	nvme_pcie_wmb();
	mmio_write32(pc, offset, (uint32_t)value);
	if (size == 8)
		mmio_write32(pc, offset + 4, (uint32_t)(value >> 32));
	cb(cb_arg, 0, 0);
	return 0;
}

/* Before CC.EN = 1: the admin queue's size and addresses (Base spec 3.5.1 step 3). */
static int pcie_ctrlr_enable(struct ust_nvme_ctrlr *ctrlr)
{
	struct nvme_pcie_ctrlr *pc = to_pcie_ctrlr(ctrlr);
	struct nvme_pcie_qpair *aq = to_pcie_qpair(ctrlr->adminq);
	uint32_t entries = ctrlr->adminq->num_entries;

	pc->doorbell_stride = 4u << ust_nvme_cap_dstrd(ctrlr->cap);
	if (UST_NVME_REG_DOORBELL_BASE + 2ULL * pc->doorbell_stride > pc->regs_size)
		return -ENXIO;
	nvme_pcie_qpair_set_doorbells(ctrlr->adminq);
	nvme_pcie_qpair_reset(ctrlr->adminq);
	nvme_pcie_wmb();
	mmio_write32(pc, UST_NVME_REG_AQA, UST_NVME_AQA(entries, entries));
	mmio_write32(pc, UST_NVME_REG_ASQ, (uint32_t)aq->sq_bus);
	mmio_write32(pc, UST_NVME_REG_ASQ + 4, (uint32_t)(aq->sq_bus >> 32));
	mmio_write32(pc, UST_NVME_REG_ACQ, (uint32_t)aq->cq_bus);
	mmio_write32(pc, UST_NVME_REG_ACQ + 4, (uint32_t)(aq->cq_bus >> 32));
	return 0;
}

/*
 * The driver's own bound, below MDTS when MDTS is larger or 0 (unlimited):
 * each request slot of an I/O queue keeps the chained PRP list pages for
 * this much (3 pages of 4 KiB for 4 MiB), allocated with the queue.
 */
#define PCIE_MAX_XFER_SIZE (4u << 20)

static uint32_t pcie_max_xfer_size(struct ust_nvme_ctrlr *ctrlr)
{
	return PCIE_MAX_XFER_SIZE;
}

static void pcie_ctrlr_destruct(struct ust_nvme_ctrlr *ctrlr)
{
	struct nvme_pcie_ctrlr *pc = to_pcie_ctrlr(ctrlr);

	if (ctrlr->adminq != NULL)
		nvme_pcie_qpair_destroy(ctrlr->adminq);
	nvme_ctrlr_fini_common(ctrlr);
	if (pc->pci != NULL)
		ust_pci_device_detach(pc->pci);
	free(pc);
}

static int pcie_ctrlr_construct(const struct ust_nvme_transport_id *trid,
				const struct ust_nvme_ctrlr_opts *opts,
				struct ust_nvme_ctrlr **ctrlrp)
{
	struct nvme_pcie_ctrlr *pc;
	struct ust_pci_addr addr;
	void *bar;
	int rc;

	if (ust_pci_addr_parse(&addr, trid->traddr) != 0)
		return -EINVAL;
	pc = calloc(1, sizeof(*pc));
	if (pc == NULL)
		return -ENOMEM;
	rc = ust_pci_device_attach(&addr, &pc->pci);
	if (rc != 0) {
		UST_ERRLOG("NVMe %s: cannot open the PCI device: %s\n", trid->traddr,
			   strerror(-rc));
		free(pc);
		return rc;
	}
	rc = ust_pci_device_map_bar(pc->pci, 0, &bar, &pc->regs_size);
	if (rc == 0 && pc->regs_size < MIN_BAR0_SIZE)
		rc = -ENXIO;
	if (rc != 0) {
		UST_ERRLOG("NVMe %s: cannot map BAR0: %s\n", trid->traddr, strerror(-rc));
		ust_pci_device_detach(pc->pci);
		free(pc);
		return rc;
	}
	pc->regs = bar;
	pc->doorbell_stride = 4;
	rc = nvme_ctrlr_init_common(&pc->ctrlr, &nvme_pcie_transport, trid, opts);
	if (rc != 0) {
		ust_pci_device_detach(pc->pci);
		free(pc);
		return rc;
	}
	pc->ctrlr.adminq = nvme_pcie_qpair_create(&pc->ctrlr, 0, NULL);
	if (pc->ctrlr.adminq == NULL) {
		pcie_ctrlr_destruct(&pc->ctrlr);
		return -ENOMEM;
	}
	*ctrlrp = &pc->ctrlr;
	return 0;
}

struct pcie_scan_ctx {
	const struct ust_nvme_transport_id *filter;
	nvme_scan_cb cb;
	void *ctx;
};

static int pcie_scan_one(void *arg, const struct ust_pci_addr *addr, const struct ust_pci_id *id,
			 const char *driver)
{
	struct pcie_scan_ctx *s = arg;
	struct ust_nvme_transport_id trid = {.trtype = UST_NVME_TRANSPORT_PCIE};

	ust_pci_addr_fmt(trid.traddr, sizeof(trid.traddr), addr);
	if (s->filter->traddr[0] != '\0' && ust_nvme_transport_id_compare(&trid, s->filter) != 0)
		return 0;
	UST_DEBUGLOG(nvme, "found NVMe %s (%04x:%04x) on %s\n", trid.traddr, id->vendor_id,
		     id->device_id, driver);
	return s->cb(s->ctx, &trid);
}

static int pcie_scan(const struct ust_nvme_transport_id *trid, nvme_scan_cb cb, void *ctx)
{
	struct pcie_scan_ctx s = {trid, cb, ctx};

	return ust_pci_enumerate(UST_PCI_CLASS_NVME, pcie_scan_one, &s);
}

/* Built in: nvme_transport.c registers it (so static links always carry it). */
const struct nvme_transport_ops nvme_pcie_transport = {
	.name = "PCIe",
	.type = UST_NVME_TRANSPORT_PCIE,
	.scan = pcie_scan,
	.ctrlr_construct = pcie_ctrlr_construct,
	.ctrlr_destruct = pcie_ctrlr_destruct,
	.ctrlr_enable = pcie_ctrlr_enable,
	.reg_read = pcie_reg_read,
	.reg_write = pcie_reg_write,
	.max_xfer_size = pcie_max_xfer_size,
	.qpair_create = nvme_pcie_qpair_create,
	.qpair_destroy = nvme_pcie_qpair_destroy,
	.qpair_connect = nvme_pcie_qpair_connect,
	.qpair_disconnect = nvme_pcie_qpair_disconnect,
	.qpair_reset = nvme_pcie_qpair_reset,
	.qpair_submit = nvme_pcie_qpair_submit,
	.qpair_process_completions = nvme_pcie_qpair_process_completions,
	.qpair_flush = nvme_pcie_qpair_flush,
};
