/*
 * NVMe command builders: each fills a zeroed 64-byte SQE field by field as
 * the specification lays it out. The CID, PSDT and data pointer are left to
 * submission (the core sets the CID, the transport the data pointer).
 */
#include <string.h>

#include "nvme_internal.h"

static void cmd_init(struct ust_nvme_cmd *cmd, uint8_t opc, uint32_t nsid)
{
	memset(cmd, 0, sizeof(*cmd));
	ust_nvme_cmd_set_opc(cmd, opc);
	cmd->nsid = nsid;
}

/* Base spec 5.17: CDW10 CNTID 31:16, CNS 7:0. */
void nvme_cmd_identify(struct ust_nvme_cmd *cmd, uint8_t cns, uint16_t cntid, uint32_t nsid)
{
	cmd_init(cmd, UST_NVME_OPC_IDENTIFY, nsid);
	cmd->cdw10 = ((uint32_t)cntid << 16) | cns;
}

/* Base spec 5.27: CDW10 FID 7:0 (SV bit 31 left clear). */
void nvme_cmd_set_features(struct ust_nvme_cmd *cmd, uint8_t fid, uint32_t cdw11, uint32_t cdw12)
{
	cmd_init(cmd, UST_NVME_OPC_SET_FEATURES, 0);
	cmd->cdw10 = fid;
	cmd->cdw11 = cdw11;
	cmd->cdw12 = cdw12;
}

/* Base spec 5.15: CDW10 SEL 10:8 (0 = current), FID 7:0. */
void nvme_cmd_get_features(struct ust_nvme_cmd *cmd, uint8_t fid, uint32_t cdw11)
{
	cmd_init(cmd, UST_NVME_OPC_GET_FEATURES, 0);
	cmd->cdw10 = fid;
	cmd->cdw11 = cdw11;
}

/* Base spec 5.27.1.5: CDW11 NCQR 31:16, NSQR 15:0, both 0's based. */
void nvme_cmd_set_num_queues(struct ust_nvme_cmd *cmd, uint32_t nqueues)
{
	uint32_t n = nqueues - 1;

	nvme_cmd_set_features(cmd, UST_NVME_FEAT_NUMBER_OF_QUEUES, (n << 16) | n, 0);
}

/*
 * Base spec 5.16: CDW10 NUMDL 31:16, RAE 15, LID 7:0; CDW11 NUMDU 15:0;
 * CDW12/13 the byte offset (LPOL/LPOU). NUMD is 0's based.
 */
void nvme_cmd_get_log_page(struct ust_nvme_cmd *cmd, uint8_t lid, uint32_t nsid, uint32_t numd,
			   uint64_t offset, bool rae)
{
	uint32_t n = numd - 1;

	cmd_init(cmd, UST_NVME_OPC_GET_LOG_PAGE, nsid);
	cmd->cdw10 = ((n & 0xffff) << 16) | (rae ? 1u << 15 : 0) | lid;
	cmd->cdw11 = n >> 16;
	cmd->cdw12 = (uint32_t)offset;
	cmd->cdw13 = (uint32_t)(offset >> 32);
}

/*
 * Base spec 5.4: CDW10 QSIZE 31:16 (0's based), QID 15:0; CDW11 IV 31:16,
 * IEN bit 1 (clear: we poll), PC bit 0 (physically contiguous: set).
 */
void nvme_cmd_create_io_cq(struct ust_nvme_cmd *cmd, uint16_t qid, uint32_t entries,
			   uint64_t prp1)
{
	cmd_init(cmd, UST_NVME_OPC_CREATE_IO_CQ, 0);
	cmd->dptr.prp.prp1 = prp1;
	cmd->cdw10 = ((entries - 1) << 16) | qid;
	cmd->cdw11 = 1;
}

/* Base spec 5.5: CDW11 CQID 31:16, QPRIO 2:1 (0 = urgent/ignored), PC bit 0. */
void nvme_cmd_create_io_sq(struct ust_nvme_cmd *cmd, uint16_t qid, uint32_t entries,
			   uint16_t cqid, uint64_t prp1)
{
	cmd_init(cmd, UST_NVME_OPC_CREATE_IO_SQ, 0);
	cmd->dptr.prp.prp1 = prp1;
	cmd->cdw10 = ((entries - 1) << 16) | qid;
	cmd->cdw11 = ((uint32_t)cqid << 16) | 1;
}

void nvme_cmd_delete_io_sq(struct ust_nvme_cmd *cmd, uint16_t qid)
{
	cmd_init(cmd, UST_NVME_OPC_DELETE_IO_SQ, 0);
	cmd->cdw10 = qid;
}

void nvme_cmd_delete_io_cq(struct ust_nvme_cmd *cmd, uint16_t qid)
{
	cmd_init(cmd, UST_NVME_OPC_DELETE_IO_CQ, 0);
	cmd->cdw10 = qid;
}

/* Base spec 5.1: CDW10 CID 31:16, SQID 15:0. */
void nvme_cmd_abort(struct ust_nvme_cmd *cmd, uint16_t sqid, uint16_t cid)
{
	cmd_init(cmd, UST_NVME_OPC_ABORT, 0);
	cmd->cdw10 = ((uint32_t)cid << 16) | sqid;
}

void nvme_cmd_async_event_request(struct ust_nvme_cmd *cmd)
{
	cmd_init(cmd, UST_NVME_OPC_ASYNC_EVENT_REQUEST, 0);
}

void nvme_cmd_keep_alive(struct ust_nvme_cmd *cmd)
{
	cmd_init(cmd, UST_NVME_OPC_KEEP_ALIVE, 0);
}

/*
 * NVM Command Set spec 4.2 (Format NVM): CDW10 LBAFU 13:12, SES 11:9,
 * PIL 8, PI 7:5, MSET 4, LBAFL 3:0.
 */
void nvme_cmd_format_nvm(struct ust_nvme_cmd *cmd, uint32_t nsid,
			 const struct ust_nvme_format *format)
{
	cmd_init(cmd, UST_NVME_OPC_FORMAT_NVM, nsid);
	cmd->cdw10 = (format->lbaf & 0xfu) | ((uint32_t)(format->mset & 1) << 4) |
		     ((uint32_t)(format->pi & 7) << 5) | ((uint32_t)(format->pil & 1) << 8) |
		     ((uint32_t)(format->ses & 7) << 9) | ((uint32_t)(format->lbaf >> 4 & 3) << 12);
}

/*
 * NVM Command Set spec 3.2.4/3.2.6/3.2.1/3.2.8: CDW10/11 SLBA, CDW12 NLB
 * 15:0 (0's based) plus the flags (LR 31, FUA 30, DEAC 25 for Write Zeroes).
 */
void nvme_cmd_rw(struct ust_nvme_cmd *cmd, uint8_t opc, uint32_t nsid, uint64_t lba,
		 uint32_t lba_count, uint32_t io_flags)
{
	cmd_init(cmd, opc, nsid);
	cmd->cdw10 = (uint32_t)lba;
	cmd->cdw11 = (uint32_t)(lba >> 32);
	cmd->cdw12 = ((lba_count - 1) & 0xffff) | (io_flags & 0xffff0000u);
}

void nvme_cmd_flush(struct ust_nvme_cmd *cmd, uint32_t nsid)
{
	cmd_init(cmd, UST_NVME_OPC_FLUSH, nsid);
}

/* NVM Command Set spec 3.2.3: CDW10 NR 7:0 (0's based), CDW11 attributes. */
void nvme_cmd_dsm(struct ust_nvme_cmd *cmd, uint32_t nsid, uint32_t attributes,
		  uint16_t num_ranges)
{
	cmd_init(cmd, UST_NVME_OPC_DATASET_MANAGEMENT, nsid);
	cmd->cdw10 = (uint32_t)(num_ranges - 1) & 0xff;
	cmd->cdw11 = attributes & 7;
}
