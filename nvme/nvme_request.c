/*
 * Request payloads and completion status: walking a payload element by
 * element (one buffer, an iovec array or the caller's SGL callbacks), and
 * turning a completion's status into an errno and a name.
 */
#include <errno.h>
#include <string.h>

#include "nvme_internal.h"

void nvme_payload_reset(struct nvme_request *req)
{
	struct nvme_payload *p = &req->payload;

	p->iov_idx = 0;
	p->iov_off = 0;
	p->contig_done = false;
	if (p->type == NVME_PAYLOAD_SGL_CB)
		p->reset_sgl(p->sgl_cb_arg, 0);
}

int nvme_payload_next(struct nvme_request *req, void **va, uint32_t *len)
{
	struct nvme_payload *p = &req->payload;
	const struct iovec *iov;
	int rc;

	switch (p->type) {
	case NVME_PAYLOAD_CONTIG:
		if (p->contig_done)
			return -EINVAL;
		p->contig_done = true;
		*va = p->buf;
		*len = req->payload_size;
		return 0;
	case NVME_PAYLOAD_IOV:
		while (p->iov_idx < p->iovcnt && p->iov[p->iov_idx].iov_len == 0)
			p->iov_idx++;
		if (p->iov_idx >= p->iovcnt)
			return -EINVAL;
		iov = &p->iov[p->iov_idx++];
		if (iov->iov_len > UINT32_MAX)
			return -EINVAL;
		*va = iov->iov_base;
		*len = (uint32_t)iov->iov_len;
		return 0;
	case NVME_PAYLOAD_SGL_CB:
		rc = p->next_sge(p->sgl_cb_arg, va, len);
		if (rc != 0 || *len == 0)
			return -EINVAL;
		return 0;
	default:
		return -EINVAL;
	}
}

void nvme_cpl_set_status(struct ust_nvme_cpl *cpl, uint32_t sct, uint32_t sc, bool dnr)
{
	memset(cpl, 0, sizeof(*cpl));
	cpl->status = ust_nvme_status(sct, sc, dnr ? 1 : 0);
}

int ust_nvme_cpl_to_errno(const struct ust_nvme_cpl *cpl)
{
	uint32_t sct = ust_nvme_cpl_sct(cpl), sc = ust_nvme_cpl_sc(cpl);

	if (!ust_nvme_cpl_is_error(cpl))
		return 0;
	if (sct == UST_NVME_SCT_MEDIA_ERROR && sc == UST_NVME_SC_COMPARE_FAILURE)
		return -EILSEQ;
	if (sct != UST_NVME_SCT_GENERIC)
		return -EIO;
	switch (sc) {
	case UST_NVME_SC_ABORTED_SQ_DELETION:
		/* The driver completes with DNR set when the controller failed. */
		return ust_nvme_cpl_dnr(cpl) ? -ENXIO : -ECANCELED;
	case UST_NVME_SC_ABORTED_BY_REQUEST:
		return -ECANCELED;
	case UST_NVME_SC_INVALID_OPCODE:
	case UST_NVME_SC_INVALID_FIELD:
	case UST_NVME_SC_INVALID_NAMESPACE_OR_FORMAT:
		return -EINVAL;
	case UST_NVME_SC_LBA_OUT_OF_RANGE:
		return -ERANGE;
	case UST_NVME_SC_CAPACITY_EXCEEDED:
		return -ENOSPC;
	default:
		return -EIO;
	}
}

struct status_name {
	uint8_t sct;
	uint8_t sc;
	const char *name;
};

static const struct status_name g_status_names[] = {
	{0, UST_NVME_SC_SUCCESS, "SUCCESS"},
	{0, UST_NVME_SC_INVALID_OPCODE, "INVALID OPCODE"},
	{0, UST_NVME_SC_INVALID_FIELD, "INVALID FIELD"},
	{0, UST_NVME_SC_COMMAND_ID_CONFLICT, "COMMAND ID CONFLICT"},
	{0, UST_NVME_SC_DATA_TRANSFER_ERROR, "DATA TRANSFER ERROR"},
	{0, UST_NVME_SC_ABORTED_POWER_LOSS, "ABORTED - POWER LOSS"},
	{0, UST_NVME_SC_INTERNAL_DEVICE_ERROR, "INTERNAL DEVICE ERROR"},
	{0, UST_NVME_SC_ABORTED_BY_REQUEST, "ABORTED - BY REQUEST"},
	{0, UST_NVME_SC_ABORTED_SQ_DELETION, "ABORTED - SQ DELETION"},
	{0, UST_NVME_SC_ABORTED_FAILED_FUSED, "ABORTED - FAILED FUSED"},
	{0, UST_NVME_SC_ABORTED_MISSING_FUSED, "ABORTED - MISSING FUSED"},
	{0, UST_NVME_SC_INVALID_NAMESPACE_OR_FORMAT, "INVALID NAMESPACE OR FORMAT"},
	{0, UST_NVME_SC_COMMAND_SEQUENCE_ERROR, "COMMAND SEQUENCE ERROR"},
	{0, UST_NVME_SC_INVALID_SGL_SEG_DESCRIPTOR, "INVALID SGL SEGMENT DESCRIPTOR"},
	{0, UST_NVME_SC_INVALID_NUM_SGL_DESCIRPTORS, "INVALID NUMBER OF SGL DESCRIPTORS"},
	{0, UST_NVME_SC_DATA_SGL_LENGTH_INVALID, "DATA SGL LENGTH INVALID"},
	{0, UST_NVME_SC_SGL_DESCRIPTOR_TYPE_INVALID, "SGL DESCRIPTOR TYPE INVALID"},
	{0, UST_NVME_SC_INVALID_PRP_OFFSET, "INVALID PRP OFFSET"},
	{0, UST_NVME_SC_OPERATION_DENIED, "OPERATION DENIED"},
	{0, UST_NVME_SC_NAMESPACE_IS_WRITE_PROTECTED, "NAMESPACE IS WRITE PROTECTED"},
	{0, UST_NVME_SC_LBA_OUT_OF_RANGE, "LBA OUT OF RANGE"},
	{0, UST_NVME_SC_CAPACITY_EXCEEDED, "CAPACITY EXCEEDED"},
	{0, UST_NVME_SC_NAMESPACE_NOT_READY, "NAMESPACE NOT READY"},
	{0, UST_NVME_SC_RESERVATION_CONFLICT, "RESERVATION CONFLICT"},
	{0, UST_NVME_SC_FORMAT_IN_PROGRESS, "FORMAT IN PROGRESS"},
	{1, UST_NVME_SC_COMPLETION_QUEUE_INVALID, "COMPLETION QUEUE INVALID"},
	{1, UST_NVME_SC_INVALID_QUEUE_IDENTIFIER, "INVALID QUEUE IDENTIFIER"},
	{1, UST_NVME_SC_INVALID_QUEUE_SIZE, "INVALID QUEUE SIZE"},
	{1, UST_NVME_SC_ABORT_COMMAND_LIMIT_EXCEEDED, "ABORT COMMAND LIMIT EXCEEDED"},
	{1, UST_NVME_SC_ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED, "ASYNC EVENT REQUEST LIMIT EXCEEDED"},
	{1, UST_NVME_SC_INVALID_LOG_PAGE, "INVALID LOG PAGE"},
	{1, UST_NVME_SC_INVALID_FORMAT, "INVALID FORMAT"},
	{1, UST_NVME_SC_INVALID_QUEUE_DELETION, "INVALID QUEUE DELETION"},
	{1, UST_NVME_SC_CONFLICTING_ATTRIBUTES, "CONFLICTING ATTRIBUTES"},
	{1, UST_NVME_SC_INVALID_PROTECTION_INFO, "INVALID PROTECTION INFO"},
	{1, UST_NVME_SC_ATTEMPTED_WRITE_TO_RO_RANGE, "WRITE TO READ ONLY RANGE"},
	{2, UST_NVME_SC_WRITE_FAULTS, "WRITE FAULTS"},
	{2, UST_NVME_SC_UNRECOVERED_READ_ERROR, "UNRECOVERED READ ERROR"},
	{2, UST_NVME_SC_GUARD_CHECK_ERROR, "GUARD CHECK ERROR"},
	{2, UST_NVME_SC_APPLICATION_TAG_CHECK_ERROR, "APPLICATION TAG CHECK ERROR"},
	{2, UST_NVME_SC_REFERENCE_TAG_CHECK_ERROR, "REFERENCE TAG CHECK ERROR"},
	{2, UST_NVME_SC_COMPARE_FAILURE, "COMPARE FAILURE"},
	{2, UST_NVME_SC_ACCESS_DENIED, "ACCESS DENIED"},
	{2, UST_NVME_SC_DEALLOCATED_OR_UNWRITTEN_BLOCK, "DEALLOCATED OR UNWRITTEN BLOCK"},
};

const char *ust_nvme_cpl_status_str(const struct ust_nvme_cpl *cpl)
{
	uint32_t sct = ust_nvme_cpl_sct(cpl), sc = ust_nvme_cpl_sc(cpl);
	size_t i;

	for (i = 0; i < sizeof(g_status_names) / sizeof(g_status_names[0]); i++) {
		if (g_status_names[i].sct == sct && g_status_names[i].sc == sc)
			return g_status_names[i].name;
	}
	switch (sct) {
	case UST_NVME_SCT_GENERIC: return "GENERIC (unknown status code)";
	case UST_NVME_SCT_COMMAND_SPECIFIC: return "COMMAND SPECIFIC (unknown status code)";
	case UST_NVME_SCT_MEDIA_ERROR: return "MEDIA ERROR (unknown status code)";
	case UST_NVME_SCT_PATH: return "PATH RELATED";
	case UST_NVME_SCT_VENDOR_SPECIFIC: return "VENDOR SPECIFIC";
	default: return "RESERVED STATUS CODE TYPE";
	}
}
