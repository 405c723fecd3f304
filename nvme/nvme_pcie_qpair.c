/*
 * PCIe queue pairs: submission and completion rings in DMA memory with
 * doorbells in BAR0 (Base spec 3.3 "Queue Mechanism" and 3.1.3 doorbells).
 *
 *  - A submission copies the SQE to sq[tail], advances the tail and rings
 *    SQyTDBL (or, with delay_sq_doorbell, marks it dirty for the next
 *    process_completions/flush: one doorbell per batch).
 *  - Completions are new while their phase tag equals the expected phase,
 *    which flips each time the head wraps; the CQyHDBL doorbell is written
 *    once per batch, after the batch's callbacks.
 *  - Each request slot owns the pages of its PRP list (as many as the
 *    controller's largest transfer needs, chained; one for the admin queue,
 *    made before the transfer size is known) or, in its first page, its SGL
 *    segment.
 *  - I/O queues are created with PC = 1 (physically contiguous) and no
 *    interrupts; Create I/O CQ precedes Create I/O SQ, deletion goes the
 *    other way (Base spec 5.4, 5.5, 5.6, 5.7).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nvme_pcie_internal.h"

static void *alloc_ring(size_t size, uint32_t page_size, uint64_t *bus)
{
	uint64_t contig = size;
	void *ring = ust_dma_zmalloc(size, page_size);

	if (ring == NULL)
		return NULL;
	*bus = ust_vtophys(ring, &contig);
	if (*bus == UST_VTOPHYS_ERROR || contig < size) {
		/* A queue must be physically contiguous (we create it with PC = 1). */
		ust_dma_free(ring);
		return NULL;
	}
	return ring;
}

static int alloc_lists(struct nvme_pcie_qpair *pq, uint32_t page_size, uint32_t list_pages)
{
	uint32_t i, n = pq->qpair.num_reqs * list_pages;

	pq->page_size = page_size;
	pq->list_pages = list_pages;
	pq->list_size = list_pages * page_size;
	pq->lists = ust_dma_zmalloc((size_t)n * page_size, page_size);
	pq->list_bus = calloc(n, sizeof(*pq->list_bus));
	if (pq->lists == NULL || pq->list_bus == NULL)
		return -ENOMEM;
	/* Per page: a request's list pages need not be contiguous in IO space. */
	for (i = 0; i < n; i++) {
		uint64_t len = page_size;

		pq->list_bus[i] = ust_vtophys(pq->lists + (size_t)i * page_size, &len);
		if (pq->list_bus[i] == UST_VTOPHYS_ERROR || len < page_size)
			return -EFAULT;
	}
	return 0;
}

void nvme_pcie_qpair_destroy(struct ust_nvme_qpair *qpair)
{
	struct nvme_pcie_qpair *pq = to_pcie_qpair(qpair);

	ust_dma_free(pq->sq);
	ust_dma_free(pq->cq);
	ust_dma_free(pq->lists);
	free(pq->list_bus);
	nvme_qpair_fini(qpair);
	free(pq);
}

void nvme_pcie_qpair_set_doorbells(struct ust_nvme_qpair *qpair)
{
	struct nvme_pcie_ctrlr *pc = to_pcie_ctrlr(qpair->ctrlr);
	struct nvme_pcie_qpair *pq = to_pcie_qpair(qpair);
	uint64_t sq_off = UST_NVME_REG_DOORBELL_BASE + (2ULL * qpair->id) * pc->doorbell_stride;
	uint64_t cq_off = sq_off + pc->doorbell_stride;

	pq->sq_tdbl = (volatile uint32_t *)(pc->regs + sq_off);
	pq->cq_hdbl = (volatile uint32_t *)(pc->regs + cq_off);
}

struct ust_nvme_qpair *nvme_pcie_qpair_create(struct ust_nvme_ctrlr *ctrlr, uint16_t qid,
					      const struct ust_nvme_io_qpair_opts *opts)
{
	struct nvme_pcie_ctrlr *pc = to_pcie_ctrlr(ctrlr);
	uint32_t entries = qid == 0 ? ctrlr->opts.admin_queue_size : opts->io_queue_size;
	/* The page size is known once CAP is read; the admin queue comes first. */
	uint32_t page_size = ctrlr->page_size ? ctrlr->page_size : 4096;
	uint32_t list_pages = qid == 0 ? 1 : nvme_pcie_prp_list_pages(page_size, ctrlr->max_xfer_size);
	struct nvme_pcie_qpair *pq;

	if (qid != 0 && (uint64_t)UST_NVME_REG_DOORBELL_BASE +
				(2ULL * qid + 2) * pc->doorbell_stride > pc->regs_size)
		return NULL;
	pq = calloc(1, sizeof(*pq));
	if (pq == NULL)
		return NULL;
	/* One slot stays empty: a full ring would look empty (Base spec 3.3.1.5). */
	if (nvme_qpair_init(&pq->qpair, ctrlr, qid, entries, entries - 1) != 0)
		goto fail;
	pq->sq = alloc_ring(sizeof(*pq->sq) * entries, page_size, &pq->sq_bus);
	pq->cq = alloc_ring(sizeof(*pq->cq) * entries, page_size, &pq->cq_bus);
	if (pq->sq == NULL || pq->cq == NULL || alloc_lists(pq, page_size, list_pages) != 0)
		goto fail;
	pq->phase = 1;
	if (qid != 0)
		nvme_pcie_qpair_set_doorbells(&pq->qpair);
	return &pq->qpair;
fail:
	nvme_pcie_qpair_destroy(&pq->qpair);
	return NULL;
}

void nvme_pcie_qpair_reset(struct ust_nvme_qpair *qpair)
{
	struct nvme_pcie_qpair *pq = to_pcie_qpair(qpair);

	pq->sq_tail = 0;
	pq->cq_head = 0;
	pq->phase = 1;
	pq->sq_tail_dirty = false;
	memset(pq->cq, 0, sizeof(*pq->cq) * qpair->num_entries);
}

static int admin_status(int rc, const struct ust_nvme_cpl *cpl, const char *what, uint16_t qid)
{
	if (rc == -EIO)
		UST_ERRLOG("NVMe: %s for queue %u failed: %s\n", what, qid,
			   ust_nvme_cpl_status_str(cpl));
	return rc;
}

int nvme_pcie_qpair_connect(struct ust_nvme_qpair *qpair)
{
	struct nvme_pcie_qpair *pq = to_pcie_qpair(qpair);
	struct ust_nvme_ctrlr *ctrlr = qpair->ctrlr;
	struct ust_nvme_cpl cpl;
	struct ust_nvme_cmd cmd;
	int rc;

	nvme_pcie_qpair_reset(qpair);
	nvme_cmd_create_io_cq(&cmd, qpair->id, qpair->num_entries, pq->cq_bus);
	rc = nvme_ctrlr_admin_wait(ctrlr, &cmd, NULL, 0, &cpl);
	if (rc != 0)
		return admin_status(rc, &cpl, "Create I/O Completion Queue", qpair->id);
	nvme_cmd_create_io_sq(&cmd, qpair->id, qpair->num_entries, qpair->id, pq->sq_bus);
	rc = nvme_ctrlr_admin_wait(ctrlr, &cmd, NULL, 0, &cpl);
	if (rc != 0) {
		admin_status(rc, &cpl, "Create I/O Submission Queue", qpair->id);
		nvme_cmd_delete_io_cq(&cmd, qpair->id);
		nvme_ctrlr_admin_wait(ctrlr, &cmd, NULL, 0, &cpl);
		return rc;
	}
	return 0;
}

void nvme_pcie_qpair_disconnect(struct ust_nvme_qpair *qpair)
{
	struct ust_nvme_cpl cpl;
	struct ust_nvme_cmd cmd;
	int rc;

	nvme_cmd_delete_io_sq(&cmd, qpair->id);
	rc = nvme_ctrlr_admin_wait(qpair->ctrlr, &cmd, NULL, 0, &cpl);
	admin_status(rc, &cpl, "Delete I/O Submission Queue", qpair->id);
	nvme_cmd_delete_io_cq(&cmd, qpair->id);
	rc = nvme_ctrlr_admin_wait(qpair->ctrlr, &cmd, NULL, 0, &cpl);
	admin_status(rc, &cpl, "Delete I/O Completion Queue", qpair->id);
}

static void ring_sq_doorbell(struct nvme_pcie_qpair *pq)
{
	nvme_pcie_wmb();
	*pq->sq_tdbl = pq->sq_tail;
	pq->sq_tail_dirty = false;
}

void nvme_pcie_qpair_flush(struct ust_nvme_qpair *qpair)
{
	struct nvme_pcie_qpair *pq = to_pcie_qpair(qpair);

	if (pq->sq_tail_dirty)
		ring_sq_doorbell(pq);
}

static int build_data_pointer(struct nvme_pcie_qpair *pq, struct nvme_request *req)
{
	struct ust_nvme_ctrlr *ctrlr = pq->qpair.ctrlr;
	void *list = pq->lists + (size_t)req->cid * pq->list_size;
	const uint64_t *list_bus = &pq->list_bus[(size_t)req->cid * pq->list_pages];

	/* Admin commands always use PRPs over PCIe (Base spec 4.1.2). */
	if (ctrlr->use_sgl && pq->qpair.id != 0 && req->payload_size > 0)
		return nvme_pcie_build_sgl(req, list, list_bus[0],
					   pq->page_size / sizeof(struct ust_nvme_sgl_descriptor),
					   ctrlr->sgl_dword_aligned);
	/*
	 * The admin queue's list page was sized before CC.MPS was chosen; with
	 * a larger memory page it cannot be a list page, so PRP1/PRP2 only.
	 */
	return nvme_pcie_build_prps(req, ctrlr->page_size, list, list_bus,
				    pq->page_size == ctrlr->page_size ? pq->list_pages : 0);
}

int nvme_pcie_qpair_submit(struct ust_nvme_qpair *qpair, struct nvme_request *req)
{
	struct nvme_pcie_qpair *pq = to_pcie_qpair(qpair);
	int rc;

	rc = build_data_pointer(pq, req);
	if (rc != 0)
		return rc;
	pq->sq[pq->sq_tail] = req->cmd;
	if (++pq->sq_tail == qpair->num_entries)
		pq->sq_tail = 0;
	if (qpair->delay_sq_doorbell)
		pq->sq_tail_dirty = true;
	else
		ring_sq_doorbell(pq);
	return 0;
}

int32_t nvme_pcie_qpair_process_completions(struct ust_nvme_qpair *qpair, uint32_t max)
{
	struct nvme_pcie_qpair *pq = to_pcie_qpair(qpair);
	struct nvme_request *req;
	struct ust_nvme_cpl cpl;
	volatile struct ust_nvme_cpl *entry;
	uint32_t n = 0;
	bool consumed = false;

	/* At most what can be outstanding, so a callback's resubmits wait for the next call. */
	if (max == 0 || max > qpair->num_reqs)
		max = qpair->num_reqs;
	while (n < max) {
		entry = &pq->cq[pq->cq_head];
		if ((entry->status & 1) != pq->phase)
			break;
		/* Read the rest of the CQE only after seeing its phase tag. */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		cpl.cdw0 = entry->cdw0;
		cpl.cdw1 = entry->cdw1;
		cpl.sqhd = entry->sqhd;
		cpl.sqid = entry->sqid;
		cpl.cid = entry->cid;
		cpl.status = entry->status;
		if (++pq->cq_head == qpair->num_entries) {
			pq->cq_head = 0;
			pq->phase ^= 1;
		}
		consumed = true;
		req = nvme_qpair_get_request(qpair, cpl.cid);
		if (req == NULL) {
			UST_ERRLOG("NVMe: queue %u: completion for unknown command id %u\n",
				   qpair->id, cpl.cid);
			continue;
		}
		n++;
		nvme_qpair_complete_request(qpair, req, &cpl);
		if (qpair->state != NVME_QPAIR_CONNECTED)
			break; /* a callback failed or reset the queue */
	}
	if (consumed && qpair->state == NVME_QPAIR_CONNECTED)
		*pq->cq_hdbl = pq->cq_head;
	return (int32_t)n;
}
