/*
 * Namespaces: geometry from Identify Namespace, and the NVM command set's
 * I/O commands (Read, Write, Compare, Write Zeroes, Flush, Dataset
 * Management, raw passthrough) submitted on an I/O qpair.
 */
#include <errno.h>
#include <string.h>

#include "ustor/env.h"

#include "nvme_internal.h"

void nvme_ns_update(struct ust_nvme_ns *ns, const struct ust_nvme_ns_data *data)
{
	struct ust_nvme_lbaf f;
	uint32_t idx;

	ns->data = *data;
	idx = ust_nvme_ns_flbas_index(data);
	if (idx > data->nlbaf)
		idx = 0;
	f = data->lbaf[idx];
	/* LBADS is a power of two, at least 9 (512 bytes) when in use. */
	ns->sector_size = ust_nvme_lbaf_lbads(f) >= 9 && ust_nvme_lbaf_lbads(f) < 32
				  ? 1u << ust_nvme_lbaf_lbads(f)
				  : 512;
	ns->md_size = ust_nvme_lbaf_ms(f);
	ns->num_sectors = data->nsze;
}

uint32_t ust_nvme_ns_get_id(const struct ust_nvme_ns *ns)
{
	return ns->id;
}

struct ust_nvme_ctrlr *ust_nvme_ns_get_ctrlr(const struct ust_nvme_ns *ns)
{
	return ns->ctrlr;
}

const struct ust_nvme_ns_data *ust_nvme_ns_get_data(const struct ust_nvme_ns *ns)
{
	return &ns->data;
}

uint32_t ust_nvme_ns_get_sector_size(const struct ust_nvme_ns *ns)
{
	return ns->sector_size;
}

uint64_t ust_nvme_ns_get_num_sectors(const struct ust_nvme_ns *ns)
{
	return ns->num_sectors;
}

uint64_t ust_nvme_ns_get_size(const struct ust_nvme_ns *ns)
{
	return ns->num_sectors * ns->sector_size;
}

uint32_t ust_nvme_ns_get_md_size(const struct ust_nvme_ns *ns)
{
	return ns->md_size;
}

/* Bytes moved per block: the metadata travels with the data in an extended LBA. */
static uint32_t ns_xfer_block_size(const struct ust_nvme_ns *ns)
{
	return (ns->data.flbas & 0x10) ? ns->sector_size + ns->md_size : ns->sector_size;
}

uint32_t ust_nvme_ns_get_max_io_blocks(const struct ust_nvme_ns *ns)
{
	uint32_t n = ns->ctrlr->max_xfer_size / ns_xfer_block_size(ns);

	return n > 65536 ? 65536 : n; /* NLB is 16 bits, 0's based */
}

bool ust_nvme_ns_get_uuid(const struct ust_nvme_ns *ns, uint8_t uuid[16])
{
	if (!ust_mem_is_zero(ns->data.nguid, sizeof(ns->data.nguid))) {
		memcpy(uuid, ns->data.nguid, 16);
		return true;
	}
	if (!ust_mem_is_zero(ns->data.eui64, sizeof(ns->data.eui64))) {
		memcpy(uuid, ns->data.eui64, 8);
		memcpy(uuid + 8, ns->data.eui64, 8);
		return true;
	}
	return false;
}

/* ---- I/O ---------------------------------------------------------------------- */

static struct nvme_request *ns_rw_request(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair,
					  uint8_t opc, uint64_t lba, uint32_t lba_count,
					  ust_nvme_cmd_cb cb, void *cb_arg, uint32_t io_flags,
					  int *rc)
{
	struct nvme_request *req;
	uint64_t bytes = (uint64_t)lba_count * ns_xfer_block_size(ns);

	*rc = -EINVAL;
	if (lba_count == 0 || lba_count > 65536 || lba + lba_count < lba ||
	    (opc != UST_NVME_OPC_WRITE_ZEROES && bytes > ns->ctrlr->max_xfer_size))
		return NULL;
	if (io_flags & ~(UST_NVME_RW_FUA | UST_NVME_RW_LR | UST_NVME_WZ_DEAC))
		return NULL;
	req = nvme_qpair_alloc_request(qpair, cb, cb_arg);
	if (req == NULL) {
		*rc = -ENOMEM;
		return NULL;
	}
	nvme_cmd_rw(&req->cmd, opc, ns->id, lba, lba_count, io_flags);
	if (opc != UST_NVME_OPC_WRITE_ZEROES)
		req->payload_size = (uint32_t)bytes;
	*rc = 0;
	return req;
}

static int ns_rw_contig(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair, uint8_t opc,
			void *buf, uint64_t lba, uint32_t lba_count, ust_nvme_cmd_cb cb,
			void *cb_arg, uint32_t io_flags)
{
	struct nvme_request *req;
	int rc;

	if (buf == NULL)
		return -EINVAL;
	req = ns_rw_request(ns, qpair, opc, lba, lba_count, cb, cb_arg, io_flags, &rc);
	if (req == NULL)
		return rc;
	req->payload.type = NVME_PAYLOAD_CONTIG;
	req->payload.buf = buf;
	return nvme_qpair_submit_request(qpair, req);
}

static int ns_rw_iov(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair, uint8_t opc,
		     const struct iovec *iov, int iovcnt, uint64_t lba, uint32_t lba_count,
		     ust_nvme_cmd_cb cb, void *cb_arg, uint32_t io_flags)
{
	struct nvme_request *req;
	uint64_t total = 0;
	int rc, i;

	if (iov == NULL || iovcnt <= 0)
		return -EINVAL;
	for (i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	req = ns_rw_request(ns, qpair, opc, lba, lba_count, cb, cb_arg, io_flags, &rc);
	if (req == NULL)
		return rc;
	if (total < req->payload_size) {
		nvme_qpair_free_request(qpair, req);
		return -EINVAL;
	}
	req->payload.type = NVME_PAYLOAD_IOV;
	req->payload.iov = iov;
	req->payload.iovcnt = iovcnt;
	return nvme_qpair_submit_request(qpair, req);
}

int ust_nvme_ns_cmd_read(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair, void *buf,
			 uint64_t lba, uint32_t lba_count, ust_nvme_cmd_cb cb, void *cb_arg,
			 uint32_t io_flags)
{
	return ns_rw_contig(ns, qpair, UST_NVME_OPC_READ, buf, lba, lba_count, cb, cb_arg,
			    io_flags);
}

int ust_nvme_ns_cmd_write(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair, void *buf,
			  uint64_t lba, uint32_t lba_count, ust_nvme_cmd_cb cb, void *cb_arg,
			  uint32_t io_flags)
{
	return ns_rw_contig(ns, qpair, UST_NVME_OPC_WRITE, buf, lba, lba_count, cb, cb_arg,
			    io_flags);
}

int ust_nvme_ns_cmd_compare(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair, void *buf,
			    uint64_t lba, uint32_t lba_count, ust_nvme_cmd_cb cb, void *cb_arg,
			    uint32_t io_flags)
{
	return ns_rw_contig(ns, qpair, UST_NVME_OPC_COMPARE, buf, lba, lba_count, cb, cb_arg,
			    io_flags);
}

int ust_nvme_ns_cmd_readv(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair,
			  const struct iovec *iov, int iovcnt, uint64_t lba, uint32_t lba_count,
			  ust_nvme_cmd_cb cb, void *cb_arg, uint32_t io_flags)
{
	return ns_rw_iov(ns, qpair, UST_NVME_OPC_READ, iov, iovcnt, lba, lba_count, cb, cb_arg,
			 io_flags);
}

int ust_nvme_ns_cmd_writev(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair,
			   const struct iovec *iov, int iovcnt, uint64_t lba, uint32_t lba_count,
			   ust_nvme_cmd_cb cb, void *cb_arg, uint32_t io_flags)
{
	return ns_rw_iov(ns, qpair, UST_NVME_OPC_WRITE, iov, iovcnt, lba, lba_count, cb, cb_arg,
			 io_flags);
}

int ust_nvme_ns_cmd_comparev(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair,
			     const struct iovec *iov, int iovcnt, uint64_t lba, uint32_t lba_count,
			     ust_nvme_cmd_cb cb, void *cb_arg, uint32_t io_flags)
{
	return ns_rw_iov(ns, qpair, UST_NVME_OPC_COMPARE, iov, iovcnt, lba, lba_count, cb,
			 cb_arg, io_flags);
}

int ust_nvme_ns_cmd_rw_sgl(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair, uint8_t opc,
			   uint64_t lba, uint32_t lba_count, ust_nvme_cmd_cb cb, void *cb_arg,
			   uint32_t io_flags, ust_nvme_req_reset_sgl_cb reset_sgl,
			   ust_nvme_req_next_sge_cb next_sge)
{
	struct nvme_request *req;
	int rc;

	if (reset_sgl == NULL || next_sge == NULL ||
	    (opc != UST_NVME_OPC_READ && opc != UST_NVME_OPC_WRITE && opc != UST_NVME_OPC_COMPARE))
		return -EINVAL;
	req = ns_rw_request(ns, qpair, opc, lba, lba_count, cb, cb_arg, io_flags, &rc);
	if (req == NULL)
		return rc;
	req->payload.type = NVME_PAYLOAD_SGL_CB;
	req->payload.reset_sgl = reset_sgl;
	req->payload.next_sge = next_sge;
	req->payload.sgl_cb_arg = cb_arg;
	return nvme_qpair_submit_request(qpair, req);
}

int ust_nvme_ns_cmd_write_zeroes(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair,
				 uint64_t lba, uint32_t lba_count, ust_nvme_cmd_cb cb,
				 void *cb_arg, uint32_t io_flags)
{
	struct nvme_request *req;
	int rc;

	req = ns_rw_request(ns, qpair, UST_NVME_OPC_WRITE_ZEROES, lba, lba_count, cb, cb_arg,
			    io_flags, &rc);
	if (req == NULL)
		return rc;
	return nvme_qpair_submit_request(qpair, req);
}

int ust_nvme_ns_cmd_flush(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair,
			  ust_nvme_cmd_cb cb, void *cb_arg)
{
	struct nvme_request *req = nvme_qpair_alloc_request(qpair, cb, cb_arg);

	if (req == NULL)
		return -ENOMEM;
	nvme_cmd_flush(&req->cmd, ns->id);
	return nvme_qpair_submit_request(qpair, req);
}

int ust_nvme_ns_cmd_dataset_management(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair,
				       uint32_t attributes,
				       const struct ust_nvme_dsm_range *ranges,
				       uint16_t num_ranges, ust_nvme_cmd_cb cb, void *cb_arg)
{
	size_t len = sizeof(*ranges) * num_ranges;
	struct nvme_request *req;
	void *buf;

	if (ranges == NULL || num_ranges == 0 || num_ranges > UST_NVME_DSM_MAX_RANGES ||
	    attributes == 0 || (attributes & ~7u))
		return -EINVAL;
	req = nvme_qpair_alloc_request(qpair, cb, cb_arg);
	if (req == NULL)
		return -ENOMEM;
	if (num_ranges <= NVME_DSM_INLINE_RANGES) {
		buf = req->dsm_inline;
	} else {
		req->dsm_buf = ust_dma_malloc(len, 4096);
		if (req->dsm_buf == NULL) {
			nvme_qpair_free_request(qpair, req);
			return -ENOMEM;
		}
		buf = req->dsm_buf;
	}
	memcpy(buf, ranges, len);
	nvme_cmd_dsm(&req->cmd, ns->id, attributes, num_ranges);
	req->payload.type = NVME_PAYLOAD_CONTIG;
	req->payload.buf = buf;
	req->payload_size = (uint32_t)len;
	return nvme_qpair_submit_request(qpair, req);
}

int ust_nvme_ctrlr_cmd_io_raw(struct ust_nvme_ctrlr *ctrlr, struct ust_nvme_qpair *qpair,
			      const struct ust_nvme_cmd *cmd, void *buf, uint32_t len,
			      ust_nvme_cmd_cb cb, void *cb_arg)
{
	struct nvme_request *req;

	if (cmd == NULL || qpair == NULL || qpair->ctrlr != ctrlr || (len > 0 && buf == NULL) ||
	    len > ctrlr->max_xfer_size)
		return -EINVAL;
	req = nvme_qpair_alloc_request(qpair, cb, cb_arg);
	if (req == NULL)
		return -ENOMEM;
	req->cmd = *cmd;
	req->cmd.cdw0 &= 0x3ffu; /* OPC and FUSE; the driver sets CID and PSDT */
	req->cmd.mptr = 0;
	memset(&req->cmd.dptr, 0, sizeof(req->cmd.dptr));
	if (len > 0) {
		req->payload.type = NVME_PAYLOAD_CONTIG;
		req->payload.buf = buf;
		req->payload_size = len;
	}
	return nvme_qpair_submit_request(qpair, req);
}
