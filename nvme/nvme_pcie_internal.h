/*
 * Private to the PCIe transport (nvme_pcie.c, nvme_pcie_qpair.c).
 */
#ifndef USTOR_NVME_PCIE_INTERNAL_H
#define USTOR_NVME_PCIE_INTERNAL_H

#include "ustor/env.h"

#include "nvme_internal.h"

struct nvme_pcie_ctrlr {
	struct ust_nvme_ctrlr ctrlr;
	struct ust_pci_device *pci;
	volatile uint8_t *regs; /* BAR0 */
	uint64_t regs_size;
	uint32_t doorbell_stride; /* bytes: 4 << CAP.DSTRD */
};

struct nvme_pcie_qpair {
	struct ust_nvme_qpair qpair;
	struct ust_nvme_cmd *sq;
	struct ust_nvme_cpl *cq;
	uint64_t sq_bus;
	uint64_t cq_bus;
	volatile uint32_t *sq_tdbl; /* SQyTDBL */
	volatile uint32_t *cq_hdbl; /* CQyHDBL */
	uint32_t sq_tail;
	uint32_t cq_head;
	uint8_t phase;          /* the phase tag of new CQEs */
	bool sq_tail_dirty;     /* tail moved since the doorbell was rung */
	uint8_t *lists;         /* list_size bytes per request: PRP list or SGL segment */
	uint32_t list_size;     /* list_pages * page_size */
	uint32_t list_pages;
	uint32_t page_size;     /* of the lists (the admin queue's predates CC.MPS) */
	uint64_t *list_bus;     /* IO address of every list page, list_pages per request */
};

static inline struct nvme_pcie_ctrlr *to_pcie_ctrlr(struct ust_nvme_ctrlr *ctrlr)
{
	return (struct nvme_pcie_ctrlr *)((uint8_t *)ctrlr - offsetof(struct nvme_pcie_ctrlr, ctrlr));
}

static inline struct nvme_pcie_qpair *to_pcie_qpair(struct ust_nvme_qpair *qpair)
{
	return (struct nvme_pcie_qpair *)((uint8_t *)qpair - offsetof(struct nvme_pcie_qpair, qpair));
}

/* Order memory writes (SQEs) before the doorbell write that publishes them. */
static inline void nvme_pcie_wmb(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ volatile("sfence" ::: "memory");
#else
	__sync_synchronize();
#endif
}

struct ust_nvme_qpair *nvme_pcie_qpair_create(struct ust_nvme_ctrlr *ctrlr, uint16_t qid,
					      const struct ust_nvme_io_qpair_opts *opts);
void nvme_pcie_qpair_destroy(struct ust_nvme_qpair *qpair);
int nvme_pcie_qpair_connect(struct ust_nvme_qpair *qpair);
void nvme_pcie_qpair_disconnect(struct ust_nvme_qpair *qpair);
void nvme_pcie_qpair_reset(struct ust_nvme_qpair *qpair);
int nvme_pcie_qpair_submit(struct ust_nvme_qpair *qpair, struct nvme_request *req);
int32_t nvme_pcie_qpair_process_completions(struct ust_nvme_qpair *qpair, uint32_t max);
void nvme_pcie_qpair_flush(struct ust_nvme_qpair *qpair);
/* Point the qpair's doorbells into BAR0 (needs CAP.DSTRD). */
void nvme_pcie_qpair_set_doorbells(struct ust_nvme_qpair *qpair);

#endif
