/*
 * NVMe specification structures and constants.
 *
 * Names follow the NVM Express Base Specification (2.0) and the NVM Command
 * Set Specification. Everything here is little-endian on the wire; ustor
 * runs on little-endian hosts only (checked below), so the structures are
 * used in place and the "one boundary" of conversion is the field accessors
 * (the bit fields of registers and dwords are extracted with the helpers at
 * the end, never with C bit-fields, whose layout the C standard leaves to
 * the compiler).
 */
#ifndef USTOR_NVME_SPEC_H
#define USTOR_NVME_SPEC_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ustor's NVMe structures assume a little-endian host"
#endif

/* ---- controller registers (Base spec 3.1.3, "Controller Registers") ------ */

#define UST_NVME_REG_CAP 0x00    /* Controller Capabilities, 64 bits */
#define UST_NVME_REG_VS 0x08     /* Version */
#define UST_NVME_REG_INTMS 0x0c  /* Interrupt Mask Set */
#define UST_NVME_REG_INTMC 0x10  /* Interrupt Mask Clear */
#define UST_NVME_REG_CC 0x14     /* Controller Configuration */
#define UST_NVME_REG_CSTS 0x1c   /* Controller Status */
#define UST_NVME_REG_NSSR 0x20   /* NVM Subsystem Reset */
#define UST_NVME_REG_AQA 0x24    /* Admin Queue Attributes */
#define UST_NVME_REG_ASQ 0x28    /* Admin Submission Queue Base Address, 64 bits */
#define UST_NVME_REG_ACQ 0x30    /* Admin Completion Queue Base Address, 64 bits */
#define UST_NVME_REG_CMBLOC 0x38
#define UST_NVME_REG_CMBSZ 0x3c
/* Doorbells start at 1000h: SQyTDBL at 1000h + (2y * (4 << CAP.DSTRD)),
 * CQyHDBL at 1000h + ((2y + 1) * (4 << CAP.DSTRD)). */
#define UST_NVME_REG_DOORBELL_BASE 0x1000

/* CAP */
static inline uint32_t ust_nvme_cap_mqes(uint64_t cap) { return (uint32_t)(cap & 0xffff); }
static inline uint32_t ust_nvme_cap_cqr(uint64_t cap) { return (uint32_t)((cap >> 16) & 1); }
static inline uint32_t ust_nvme_cap_ams(uint64_t cap) { return (uint32_t)((cap >> 17) & 3); }
/* Worst-case time for CSTS.RDY to follow CC.EN, in 500 ms units. */
static inline uint32_t ust_nvme_cap_to(uint64_t cap) { return (uint32_t)((cap >> 24) & 0xff); }
static inline uint32_t ust_nvme_cap_dstrd(uint64_t cap) { return (uint32_t)((cap >> 32) & 0xf); }
static inline uint32_t ust_nvme_cap_nssrs(uint64_t cap) { return (uint32_t)((cap >> 36) & 1); }
static inline uint32_t ust_nvme_cap_css(uint64_t cap) { return (uint32_t)((cap >> 37) & 0xff); }
static inline uint32_t ust_nvme_cap_mpsmin(uint64_t cap) { return (uint32_t)((cap >> 48) & 0xf); }
static inline uint32_t ust_nvme_cap_mpsmax(uint64_t cap) { return (uint32_t)((cap >> 52) & 0xf); }

/* VS: MJR 31:16, MNR 15:8, TER 7:0 */
#define UST_NVME_VS(mjr, mnr, ter) (((uint32_t)(mjr) << 16) | ((uint32_t)(mnr) << 8) | (ter))

/* CC */
#define UST_NVME_CC_EN (1u << 0)
#define UST_NVME_CC_CSS_SHIFT 4
#define UST_NVME_CC_MPS_SHIFT 7
#define UST_NVME_CC_AMS_SHIFT 11
#define UST_NVME_CC_SHN_SHIFT 14
#define UST_NVME_CC_SHN_MASK (3u << 14)
#define UST_NVME_CC_SHN_NORMAL (1u << 14)
#define UST_NVME_CC_SHN_ABRUPT (2u << 14)
#define UST_NVME_CC_IOSQES_SHIFT 16
#define UST_NVME_CC_IOCQES_SHIFT 20

/* CSTS */
#define UST_NVME_CSTS_RDY (1u << 0)
#define UST_NVME_CSTS_CFS (1u << 1)
#define UST_NVME_CSTS_SHST_MASK (3u << 2)
#define UST_NVME_CSTS_SHST_OCCURRING (1u << 2)
#define UST_NVME_CSTS_SHST_COMPLETE (2u << 2)
#define UST_NVME_CSTS_NSSRO (1u << 4)
#define UST_NVME_CSTS_PP (1u << 5)

/* AQA: ASQS 11:0, ACQS 27:16, both 0's based. */
#define UST_NVME_AQA(asqs, acqs) ((((uint32_t)(acqs) - 1) << 16) | ((uint32_t)(asqs) - 1))

/* ---- submission queue entry (Base spec 4.2) ----------------------------- */

/* PSDT (CDW0 bits 15:14): how DPTR is to be read. */
#define UST_NVME_PSDT_PRP 0u
#define UST_NVME_PSDT_SGL_MPTR_CONTIG 1u
#define UST_NVME_PSDT_SGL_MPTR_SGL 2u

/* SGL descriptor (Base spec 4.1.2): 16 bytes. */
struct ust_nvme_sgl_descriptor {
	uint64_t address;
	uint32_t length;
	uint8_t reserved[3];
	uint8_t sgl_identifier; /* type 7:4, subtype 3:0 */
} __attribute__((packed));
_Static_assert(sizeof(struct ust_nvme_sgl_descriptor) == 16, "SGL descriptor is 16 bytes");

#define UST_NVME_SGL_TYPE_DATA_BLOCK 0x0
#define UST_NVME_SGL_TYPE_BIT_BUCKET 0x1
#define UST_NVME_SGL_TYPE_SEGMENT 0x2
#define UST_NVME_SGL_TYPE_LAST_SEGMENT 0x3
#define UST_NVME_SGL_TYPE_KEYED_DATA_BLOCK 0x4
#define UST_NVME_SGL_TYPE_TRANSPORT_DATA_BLOCK 0x5
#define UST_NVME_SGL_SUBTYPE_ADDRESS 0x0
#define UST_NVME_SGL_SUBTYPE_OFFSET 0x1
#define UST_NVME_SGL_SUBTYPE_TRANSPORT 0xa
#define UST_NVME_SGL_ID(type, subtype) ((uint8_t)(((type) << 4) | (subtype)))

/* Common command format: 64 bytes. */
struct ust_nvme_cmd {
	uint32_t cdw0; /* OPC 7:0, FUSE 9:8, PSDT 15:14, CID 31:16 */
	uint32_t nsid;
	uint32_t cdw2;
	uint32_t cdw3;
	uint64_t mptr;
	union {
		struct {
			uint64_t prp1;
			uint64_t prp2;
		} prp;
		struct ust_nvme_sgl_descriptor sgl1;
	} dptr;
	uint32_t cdw10;
	uint32_t cdw11;
	uint32_t cdw12;
	uint32_t cdw13;
	uint32_t cdw14;
	uint32_t cdw15;
} __attribute__((packed));
_Static_assert(sizeof(struct ust_nvme_cmd) == 64, "SQE is 64 bytes");

static inline uint8_t ust_nvme_cmd_opc(const struct ust_nvme_cmd *cmd)
{
	return (uint8_t)(cmd->cdw0 & 0xff);
}
static inline uint16_t ust_nvme_cmd_cid(const struct ust_nvme_cmd *cmd)
{
	return (uint16_t)(cmd->cdw0 >> 16);
}
static inline uint32_t ust_nvme_cmd_psdt(const struct ust_nvme_cmd *cmd)
{
	return (cmd->cdw0 >> 14) & 3;
}
static inline uint32_t ust_nvme_cmd_fuse(const struct ust_nvme_cmd *cmd)
{
	return (cmd->cdw0 >> 8) & 3;
}
static inline void ust_nvme_cmd_set_opc(struct ust_nvme_cmd *cmd, uint8_t opc)
{
	cmd->cdw0 = (cmd->cdw0 & ~0xffu) | opc;
}
static inline void ust_nvme_cmd_set_cid(struct ust_nvme_cmd *cmd, uint16_t cid)
{
	cmd->cdw0 = (cmd->cdw0 & 0xffffu) | ((uint32_t)cid << 16);
}
static inline void ust_nvme_cmd_set_psdt(struct ust_nvme_cmd *cmd, uint32_t psdt)
{
	cmd->cdw0 = (cmd->cdw0 & ~(3u << 14)) | ((psdt & 3) << 14);
}

/* ---- completion queue entry (Base spec 4.6) ------------------------------ */

struct ust_nvme_cpl {
	uint32_t cdw0; /* command specific */
	uint32_t cdw1;
	uint16_t sqhd; /* SQ head pointer */
	uint16_t sqid;
	uint16_t cid;
	uint16_t status; /* P 0, SC 8:1, SCT 11:9, CRD 13:12, M 14, DNR 15 */
} __attribute__((packed));
_Static_assert(sizeof(struct ust_nvme_cpl) == 16, "CQE is 16 bytes");

static inline uint32_t ust_nvme_cpl_p(const struct ust_nvme_cpl *cpl) { return cpl->status & 1; }
static inline uint32_t ust_nvme_cpl_sc(const struct ust_nvme_cpl *cpl)
{
	return (cpl->status >> 1) & 0xff;
}
static inline uint32_t ust_nvme_cpl_sct(const struct ust_nvme_cpl *cpl)
{
	return (cpl->status >> 9) & 7;
}
static inline uint32_t ust_nvme_cpl_crd(const struct ust_nvme_cpl *cpl)
{
	return (cpl->status >> 12) & 3;
}
static inline uint32_t ust_nvme_cpl_m(const struct ust_nvme_cpl *cpl)
{
	return (cpl->status >> 14) & 1;
}
static inline uint32_t ust_nvme_cpl_dnr(const struct ust_nvme_cpl *cpl)
{
	return (cpl->status >> 15) & 1;
}
/* The status field without the phase tag, as written in a CQE. */
static inline uint16_t ust_nvme_status(uint32_t sct, uint32_t sc, uint32_t dnr)
{
	return (uint16_t)(((sc & 0xff) << 1) | ((sct & 7) << 9) | ((dnr & 1) << 15));
}
static inline int ust_nvme_cpl_is_error(const struct ust_nvme_cpl *cpl)
{
	return ust_nvme_cpl_sc(cpl) != 0 || ust_nvme_cpl_sct(cpl) != 0;
}

/* Status code types (Base spec 4.6.1.2) */
#define UST_NVME_SCT_GENERIC 0x0
#define UST_NVME_SCT_COMMAND_SPECIFIC 0x1
#define UST_NVME_SCT_MEDIA_ERROR 0x2
#define UST_NVME_SCT_PATH 0x3
#define UST_NVME_SCT_VENDOR_SPECIFIC 0x7

/* Generic command status (SCT 0) */
#define UST_NVME_SC_SUCCESS 0x00
#define UST_NVME_SC_INVALID_OPCODE 0x01
#define UST_NVME_SC_INVALID_FIELD 0x02
#define UST_NVME_SC_COMMAND_ID_CONFLICT 0x03
#define UST_NVME_SC_DATA_TRANSFER_ERROR 0x04
#define UST_NVME_SC_ABORTED_POWER_LOSS 0x05
#define UST_NVME_SC_INTERNAL_DEVICE_ERROR 0x06
#define UST_NVME_SC_ABORTED_BY_REQUEST 0x07
#define UST_NVME_SC_ABORTED_SQ_DELETION 0x08
#define UST_NVME_SC_ABORTED_FAILED_FUSED 0x09
#define UST_NVME_SC_ABORTED_MISSING_FUSED 0x0a
#define UST_NVME_SC_INVALID_NAMESPACE_OR_FORMAT 0x0b
#define UST_NVME_SC_COMMAND_SEQUENCE_ERROR 0x0c
#define UST_NVME_SC_INVALID_SGL_SEG_DESCRIPTOR 0x0d
#define UST_NVME_SC_INVALID_NUM_SGL_DESCIRPTORS 0x0e
#define UST_NVME_SC_DATA_SGL_LENGTH_INVALID 0x0f
#define UST_NVME_SC_METADATA_SGL_LENGTH_INVALID 0x10
#define UST_NVME_SC_SGL_DESCRIPTOR_TYPE_INVALID 0x11
#define UST_NVME_SC_INVALID_CONTROLLER_MEM_BUF 0x12
#define UST_NVME_SC_INVALID_PRP_OFFSET 0x13
#define UST_NVME_SC_ATOMIC_WRITE_UNIT_EXCEEDED 0x14
#define UST_NVME_SC_OPERATION_DENIED 0x15
#define UST_NVME_SC_INVALID_SGL_OFFSET 0x16
#define UST_NVME_SC_NAMESPACE_IS_WRITE_PROTECTED 0x20
#define UST_NVME_SC_COMMAND_INTERRUPTED 0x21
#define UST_NVME_SC_LBA_OUT_OF_RANGE 0x80
#define UST_NVME_SC_CAPACITY_EXCEEDED 0x81
#define UST_NVME_SC_NAMESPACE_NOT_READY 0x82
#define UST_NVME_SC_RESERVATION_CONFLICT 0x83
#define UST_NVME_SC_FORMAT_IN_PROGRESS 0x84

/* Command specific status (SCT 1) */
#define UST_NVME_SC_COMPLETION_QUEUE_INVALID 0x00
#define UST_NVME_SC_INVALID_QUEUE_IDENTIFIER 0x01
#define UST_NVME_SC_INVALID_QUEUE_SIZE 0x02
#define UST_NVME_SC_ABORT_COMMAND_LIMIT_EXCEEDED 0x03
#define UST_NVME_SC_ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED 0x05
#define UST_NVME_SC_INVALID_FIRMWARE_SLOT 0x06
#define UST_NVME_SC_INVALID_FIRMWARE_IMAGE 0x07
#define UST_NVME_SC_INVALID_INTERRUPT_VECTOR 0x08
#define UST_NVME_SC_INVALID_LOG_PAGE 0x09
#define UST_NVME_SC_INVALID_FORMAT 0x0a
#define UST_NVME_SC_INVALID_QUEUE_DELETION 0x0c
#define UST_NVME_SC_CONFLICTING_ATTRIBUTES 0x80
#define UST_NVME_SC_INVALID_PROTECTION_INFO 0x81
#define UST_NVME_SC_ATTEMPTED_WRITE_TO_RO_RANGE 0x82

/* Media and data integrity errors (SCT 2) */
#define UST_NVME_SC_WRITE_FAULTS 0x80
#define UST_NVME_SC_UNRECOVERED_READ_ERROR 0x81
#define UST_NVME_SC_GUARD_CHECK_ERROR 0x82
#define UST_NVME_SC_APPLICATION_TAG_CHECK_ERROR 0x83
#define UST_NVME_SC_REFERENCE_TAG_CHECK_ERROR 0x84
#define UST_NVME_SC_COMPARE_FAILURE 0x85
#define UST_NVME_SC_ACCESS_DENIED 0x86
#define UST_NVME_SC_DEALLOCATED_OR_UNWRITTEN_BLOCK 0x87

/* ---- opcodes ----------------------------------------------------------- */

/* Admin command set (Base spec 5) */
#define UST_NVME_OPC_DELETE_IO_SQ 0x00
#define UST_NVME_OPC_CREATE_IO_SQ 0x01
#define UST_NVME_OPC_GET_LOG_PAGE 0x02
#define UST_NVME_OPC_DELETE_IO_CQ 0x04
#define UST_NVME_OPC_CREATE_IO_CQ 0x05
#define UST_NVME_OPC_IDENTIFY 0x06
#define UST_NVME_OPC_ABORT 0x08
#define UST_NVME_OPC_SET_FEATURES 0x09
#define UST_NVME_OPC_GET_FEATURES 0x0a
#define UST_NVME_OPC_ASYNC_EVENT_REQUEST 0x0c
#define UST_NVME_OPC_NS_MANAGEMENT 0x0d
#define UST_NVME_OPC_FIRMWARE_COMMIT 0x10
#define UST_NVME_OPC_FIRMWARE_IMAGE_DOWNLOAD 0x11
#define UST_NVME_OPC_NS_ATTACHMENT 0x15
#define UST_NVME_OPC_KEEP_ALIVE 0x18
#define UST_NVME_OPC_FABRICS 0x7f
#define UST_NVME_OPC_FORMAT_NVM 0x80

/* NVM command set (NVM Command Set spec 3) */
#define UST_NVME_OPC_FLUSH 0x00
#define UST_NVME_OPC_WRITE 0x01
#define UST_NVME_OPC_READ 0x02
#define UST_NVME_OPC_WRITE_UNCORRECTABLE 0x04
#define UST_NVME_OPC_COMPARE 0x05
#define UST_NVME_OPC_WRITE_ZEROES 0x08
#define UST_NVME_OPC_DATASET_MANAGEMENT 0x09

/* Read/Write/Compare/Write Zeroes CDW12 */
#define UST_NVME_RW_LR (1u << 31)
#define UST_NVME_RW_FUA (1u << 30)
#define UST_NVME_WZ_DEAC (1u << 25)

/* Identify CNS values (Base spec 5.17) */
#define UST_NVME_CNS_NAMESPACE 0x00
#define UST_NVME_CNS_CONTROLLER 0x01
#define UST_NVME_CNS_ACTIVE_NS_LIST 0x02
#define UST_NVME_CNS_NS_ID_DESCRIPTOR_LIST 0x03

/* Feature identifiers (Base spec 5.27.1) */
#define UST_NVME_FEAT_ARBITRATION 0x01
#define UST_NVME_FEAT_POWER_MANAGEMENT 0x02
#define UST_NVME_FEAT_TEMPERATURE_THRESHOLD 0x04
#define UST_NVME_FEAT_ERROR_RECOVERY 0x05
#define UST_NVME_FEAT_VOLATILE_WRITE_CACHE 0x06
#define UST_NVME_FEAT_NUMBER_OF_QUEUES 0x07
#define UST_NVME_FEAT_INTERRUPT_COALESCING 0x08
#define UST_NVME_FEAT_ASYNC_EVENT_CONFIGURATION 0x0b
#define UST_NVME_FEAT_KEEP_ALIVE_TIMER 0x0f

/* Asynchronous Event Configuration (FID 0Bh) CDW11 */
#define UST_NVME_AEC_SMART_CRITICAL_WARNINGS 0xffu
#define UST_NVME_AEC_NS_ATTRIBUTE_NOTICES (1u << 8)
#define UST_NVME_AEC_FIRMWARE_ACTIVATION_NOTICES (1u << 9)

/* Log page identifiers (Base spec 5.16) */
#define UST_NVME_LOG_ERROR 0x01
#define UST_NVME_LOG_HEALTH_INFORMATION 0x02
#define UST_NVME_LOG_FIRMWARE_SLOT 0x03
#define UST_NVME_LOG_CHANGED_NS_LIST 0x04
#define UST_NVME_LOG_COMMAND_EFFECTS 0x05

/* Asynchronous event completion DW0 (Base spec 5.2) */
static inline uint32_t ust_nvme_aer_type(uint32_t cdw0) { return cdw0 & 7; }
static inline uint32_t ust_nvme_aer_info(uint32_t cdw0) { return (cdw0 >> 8) & 0xff; }
static inline uint32_t ust_nvme_aer_log_page(uint32_t cdw0) { return (cdw0 >> 16) & 0xff; }
#define UST_NVME_AER_TYPE_ERROR 0x0
#define UST_NVME_AER_TYPE_SMART 0x1
#define UST_NVME_AER_TYPE_NOTICE 0x2
#define UST_NVME_AER_TYPE_IO 0x6
#define UST_NVME_AER_TYPE_VENDOR 0x7
#define UST_NVME_AER_NOTICE_NS_ATTR_CHANGED 0x00
#define UST_NVME_AER_NOTICE_FW_ACTIVATION_STARTING 0x01

/* Dataset Management (NVM Command Set spec 3.2.3) */
#define UST_NVME_DSM_ATTR_IDR (1u << 0)
#define UST_NVME_DSM_ATTR_IDW (1u << 1)
#define UST_NVME_DSM_ATTR_DEALLOCATE (1u << 2)
#define UST_NVME_DSM_MAX_RANGES 256

struct ust_nvme_dsm_range {
	uint32_t context_attributes;
	uint32_t length; /* logical blocks (1's based) */
	uint64_t starting_lba;
} __attribute__((packed));
_Static_assert(sizeof(struct ust_nvme_dsm_range) == 16, "DSM range is 16 bytes");

/* ---- Identify Controller (Base spec 5.17.2.1, Figure 275) ---------------- */

struct ust_nvme_power_state {
	uint16_t mp;
	uint8_t reserved1;
	uint8_t flags; /* MXPS bit 0, NOPS bit 1 */
	uint32_t enlat;
	uint32_t exlat;
	uint8_t rrt;
	uint8_t rrl;
	uint8_t rwt;
	uint8_t rwl;
	uint16_t idlp;
	uint8_t ips;
	uint8_t reserved2;
	uint16_t actp;
	uint8_t apw_aps;
	uint8_t reserved3[9];
} __attribute__((packed));
_Static_assert(sizeof(struct ust_nvme_power_state) == 32, "power state descriptor is 32 bytes");

struct ust_nvme_ctrlr_data {
	/* Controller capabilities and features */
	uint16_t vid;
	uint16_t ssvid;
	char sn[20];
	char mn[40];
	char fr[8];
	uint8_t rab;
	uint8_t ieee[3];
	uint8_t cmic;
	uint8_t mdts; /* max transfer: 2^MDTS units of CAP.MPSMIN; 0 = no limit */
	uint16_t cntlid;
	uint32_t ver;
	uint32_t rtd3r;
	uint32_t rtd3e;
	uint32_t oaes; /* bit 8: namespace attribute notices */
	uint32_t ctratt;
	uint16_t rrls;
	uint8_t reserved102[9];
	uint8_t cntrltype;
	uint8_t fguid[16];
	uint16_t crdt1;
	uint16_t crdt2;
	uint16_t crdt3;
	uint8_t reserved134[106];
	uint8_t nvmemi[16];
	/* Admin command set attributes */
	uint16_t oacs; /* bit 1: Format NVM, bit 3: NS management */
	uint8_t acl;   /* abort command limit, 0's based */
	uint8_t aerl;  /* AER limit, 0's based */
	uint8_t frmw;
	uint8_t lpa;
	uint8_t elpe; /* error log page entries, 0's based */
	uint8_t npss;
	uint8_t avscc;
	uint8_t apsta;
	uint16_t wctemp;
	uint16_t cctemp;
	uint16_t mtfa;
	uint32_t hmpre;
	uint32_t hmmin;
	uint8_t tnvmcap[16];
	uint8_t unvmcap[16];
	uint32_t rpmbs;
	uint16_t edstt;
	uint8_t dsto;
	uint8_t fwug;
	uint16_t kas; /* keep alive support, 100 ms units; 0 = none */
	uint16_t hctma;
	uint16_t mntmt;
	uint16_t mxtmt;
	uint32_t sanicap;
	uint32_t hmminds;
	uint16_t hmmaxd;
	uint16_t nsetidmax;
	uint16_t endgidmax;
	uint8_t anatt;
	uint8_t anacap;
	uint32_t anagrpmax;
	uint32_t nanagrpid;
	uint32_t pels;
	uint16_t domainid;
	uint8_t reserved358[10];
	uint8_t megcap[16];
	uint8_t reserved384[128];
	/* NVM command set attributes */
	uint8_t sqes;
	uint8_t cqes;
	uint16_t maxcmd;
	uint32_t nn; /* number of namespaces (highest valid NSID) */
	uint16_t oncs; /* optional NVM commands */
	uint16_t fuses;
	uint8_t fna;
	uint8_t vwc; /* bit 0: volatile write cache present */
	uint16_t awun;
	uint16_t awupf;
	uint8_t icsvscc;
	uint8_t nwpc;
	uint16_t acwu;
	uint16_t ocfs;
	uint32_t sgls; /* bits 1:0: 01b SGLs supported, 10b with dword alignment */
	uint32_t mnan;
	uint8_t maxdna[16];
	uint32_t maxcna;
	uint8_t reserved564[204];
	char subnqn[256];
	uint8_t reserved1024[768];
	/* NVMe over Fabrics attributes */
	uint32_t ioccsz;
	uint32_t iorcsz;
	uint16_t icdoff;
	uint8_t fcatt;
	uint8_t msdbd;
	uint16_t ofcs;
	uint8_t reserved1806[242];
	struct ust_nvme_power_state psd[32];
	uint8_t vs[1024];
} __attribute__((packed));
_Static_assert(sizeof(struct ust_nvme_ctrlr_data) == 4096, "identify controller is 4096 bytes");
_Static_assert(__builtin_offsetof(struct ust_nvme_ctrlr_data, oacs) == 256, "OACS at 256");
_Static_assert(__builtin_offsetof(struct ust_nvme_ctrlr_data, kas) == 320, "KAS at 320");
_Static_assert(__builtin_offsetof(struct ust_nvme_ctrlr_data, sqes) == 512, "SQES at 512");
_Static_assert(__builtin_offsetof(struct ust_nvme_ctrlr_data, sgls) == 536, "SGLS at 536");
_Static_assert(__builtin_offsetof(struct ust_nvme_ctrlr_data, subnqn) == 768, "SUBNQN at 768");
_Static_assert(__builtin_offsetof(struct ust_nvme_ctrlr_data, ioccsz) == 1792, "IOCCSZ at 1792");
_Static_assert(__builtin_offsetof(struct ust_nvme_ctrlr_data, psd) == 2048, "PSD0 at 2048");

/* OACS */
#define UST_NVME_OACS_SECURITY (1u << 0)
#define UST_NVME_OACS_FORMAT_NVM (1u << 1)
#define UST_NVME_OACS_FIRMWARE (1u << 2)
#define UST_NVME_OACS_NS_MANAGEMENT (1u << 3)
/* ONCS */
#define UST_NVME_ONCS_COMPARE (1u << 0)
#define UST_NVME_ONCS_WRITE_UNCORRECTABLE (1u << 1)
#define UST_NVME_ONCS_DSM (1u << 2)
#define UST_NVME_ONCS_WRITE_ZEROES (1u << 3)
/* OAES */
#define UST_NVME_OAES_NS_ATTRIBUTE_NOTICES (1u << 8)
/* SGLS bits 1:0 */
#define UST_NVME_SGLS_SUPPORTED 1u
#define UST_NVME_SGLS_SUPPORTED_DWORD_ALIGNED 2u
/* LPA */
#define UST_NVME_LPA_NS_SMART (1u << 0)
#define UST_NVME_LPA_EXTENDED_DATA (1u << 2)

/* ---- Identify Namespace (NVM Command Set spec 4.1.5.1) ------------------- */

struct ust_nvme_lbaf {
	uint32_t raw; /* MS 15:0, LBADS 23:16, RP 25:24 */
} __attribute__((packed));

static inline uint32_t ust_nvme_lbaf_ms(struct ust_nvme_lbaf f) { return f.raw & 0xffff; }
static inline uint32_t ust_nvme_lbaf_lbads(struct ust_nvme_lbaf f) { return (f.raw >> 16) & 0xff; }
static inline uint32_t ust_nvme_lbaf_rp(struct ust_nvme_lbaf f) { return (f.raw >> 24) & 3; }

struct ust_nvme_ns_data {
	uint64_t nsze;
	uint64_t ncap;
	uint64_t nuse;
	uint8_t nsfeat;
	uint8_t nlbaf; /* number of LBA formats, 0's based */
	uint8_t flbas; /* format index 3:0 (and 6:5 for >16 formats), extended LBA bit 4 */
	uint8_t mc;
	uint8_t dpc;
	uint8_t dps;
	uint8_t nmic;
	uint8_t rescap;
	uint8_t fpi;
	uint8_t dlfeat;
	uint16_t nawun;
	uint16_t nawupf;
	uint16_t nacwu;
	uint16_t nabsn;
	uint16_t nabo;
	uint16_t nabspf;
	uint16_t noiob;
	uint8_t nvmcap[16];
	uint16_t npwg;
	uint16_t npwa;
	uint16_t npdg;
	uint16_t npda;
	uint16_t nows;
	uint16_t mssrl;
	uint32_t mcl;
	uint8_t msrc;
	uint8_t reserved81[11];
	uint32_t anagrpid;
	uint8_t reserved96[3];
	uint8_t nsattr;
	uint16_t nvmsetid;
	uint16_t endgid;
	uint8_t nguid[16];
	uint8_t eui64[8];
	struct ust_nvme_lbaf lbaf[64];
	uint8_t vs[3712];
} __attribute__((packed));
_Static_assert(sizeof(struct ust_nvme_ns_data) == 4096, "identify namespace is 4096 bytes");
_Static_assert(__builtin_offsetof(struct ust_nvme_ns_data, nguid) == 104, "NGUID at 104");
_Static_assert(__builtin_offsetof(struct ust_nvme_ns_data, lbaf) == 128, "LBAF0 at 128");

static inline uint32_t ust_nvme_ns_flbas_index(const struct ust_nvme_ns_data *d)
{
	return (d->flbas & 0xf) | (((uint32_t)d->flbas >> 5 & 3) << 4);
}

/* ---- log pages ---------------------------------------------------------- */

/* SMART / Health Information (Base spec 5.16.1.3): 512 bytes. */
struct ust_nvme_health_log {
	uint8_t critical_warning;
	uint16_t composite_temperature; /* kelvin */
	uint8_t available_spare;
	uint8_t available_spare_threshold;
	uint8_t percentage_used;
	uint8_t endurance_group_critical_warning;
	uint8_t reserved7[25];
	uint8_t data_units_read[16]; /* 128-bit counters, little-endian */
	uint8_t data_units_written[16];
	uint8_t host_read_commands[16];
	uint8_t host_write_commands[16];
	uint8_t controller_busy_time[16];
	uint8_t power_cycles[16];
	uint8_t power_on_hours[16];
	uint8_t unsafe_shutdowns[16];
	uint8_t media_errors[16];
	uint8_t num_error_info_log_entries[16];
	uint32_t warning_temp_time;
	uint32_t critical_temp_time;
	uint16_t temp_sensor[8];
	uint32_t thm_temp1_trans_count;
	uint32_t thm_temp2_trans_count;
	uint32_t thm_temp1_total_time;
	uint32_t thm_temp2_total_time;
	uint8_t reserved232[280];
} __attribute__((packed));
_Static_assert(sizeof(struct ust_nvme_health_log) == 512, "SMART log is 512 bytes");

/* Error Information log entry (Base spec 5.16.1.2): 64 bytes. */
struct ust_nvme_error_log_entry {
	uint64_t error_count;
	uint16_t sqid;
	uint16_t cid;
	uint16_t status; /* as in a CQE, bit 0 is the phase tag */
	uint16_t error_location;
	uint64_t lba;
	uint32_t nsid;
	uint8_t vendor_specific;
	uint8_t trtype;
	uint8_t reserved30[2];
	uint64_t command_specific;
	uint16_t trtype_specific;
	uint8_t reserved42[22];
} __attribute__((packed));
_Static_assert(sizeof(struct ust_nvme_error_log_entry) == 64, "error log entry is 64 bytes");

/* Changed Namespace List (Base spec 5.16.1.5): up to 1024 NSIDs. */
struct ust_nvme_ns_list {
	uint32_t ns_list[1024];
} __attribute__((packed));
_Static_assert(sizeof(struct ust_nvme_ns_list) == 4096, "namespace list is 4096 bytes");

/* ---- NVMe over Fabrics (Base spec 2.0 6, NVMe-oF 1.1 3 and 5) ----------- */

/* Fabrics command types (FCTYPE, byte 04 of a Fabrics command). */
#define UST_NVMF_FCTYPE_PROPERTY_SET 0x00
#define UST_NVMF_FCTYPE_CONNECT 0x01
#define UST_NVMF_FCTYPE_PROPERTY_GET 0x04

#define UST_NVMF_DISCOVERY_NQN "nqn.2014-08.org.nvmexpress.discovery"
#define UST_NVME_LOG_DISCOVERY 0x70

/* Connect CATTR bit 2: disable SQ flow control (SQHD is then reserved). */
#define UST_NVMF_CATTR_DISABLE_SQ_FLOW_CONTROL (1u << 2)
/* Property Get/Set ATTRIB bits 2:0: property size. */
#define UST_NVMF_PROP_SIZE_4 0u
#define UST_NVMF_PROP_SIZE_8 1u
/* Connect for the admin queue asks for a new (dynamic) controller. */
#define UST_NVMF_CNTLID_DYNAMIC 0xffff

/* Connect command (fctype 01h): 64 bytes. */
struct ust_nvmf_connect_cmd {
	uint8_t opcode; /* 7Fh */
	uint8_t flags;  /* PSDT in bits 7:6 */
	uint16_t cid;
	uint8_t fctype;
	uint8_t reserved5[19];
	struct ust_nvme_sgl_descriptor sgl1;
	uint16_t recfmt; /* 0 */
	uint16_t qid;
	uint16_t sqsize; /* 0's based */
	uint8_t cattr;
	uint8_t reserved47;
	uint32_t kato; /* milliseconds; admin queue only */
	uint8_t reserved52[12];
} __attribute__((packed));
_Static_assert(sizeof(struct ust_nvmf_connect_cmd) == 64, "Connect command is 64 bytes");

/* Connect command data: 1024 bytes. */
struct ust_nvmf_connect_data {
	uint8_t hostid[16];
	uint16_t cntlid;
	uint8_t reserved18[238];
	char subnqn[256];
	char hostnqn[256];
	uint8_t reserved768[256];
} __attribute__((packed));
_Static_assert(sizeof(struct ust_nvmf_connect_data) == 1024, "Connect data is 1024 bytes");

/* Property Get (fctype 04h) and Property Set (fctype 00h): 64 bytes. */
struct ust_nvmf_property_cmd {
	uint8_t opcode;
	uint8_t flags;
	uint16_t cid;
	uint8_t fctype;
	uint8_t reserved5[35];
	uint8_t attrib; /* bits 2:0 size */
	uint8_t reserved41[3];
	uint32_t ofst;
	uint64_t value; /* Property Set only; reserved for Get */
	uint8_t reserved56[8];
} __attribute__((packed));
_Static_assert(sizeof(struct ust_nvmf_property_cmd) == 64, "Property command is 64 bytes");

/* Discovery Log Page entry (LID 70h): 1024 bytes. */
struct ust_nvmf_discovery_log_entry {
	uint8_t trtype;
	uint8_t adrfam;
	uint8_t subtype; /* 1: referral to a discovery service, 2: NVM subsystem, 3: current discovery */
	uint8_t treq;
	uint16_t portid;
	uint16_t cntlid;
	uint16_t asqsz;
	uint16_t eflags;
	uint8_t reserved12[20];
	char trsvcid[32];
	uint8_t reserved64[192];
	char subnqn[256];
	char traddr[256];
	uint8_t tsas[256];
} __attribute__((packed));
_Static_assert(sizeof(struct ust_nvmf_discovery_log_entry) == 1024, "discovery entry is 1024 bytes");

/* Discovery Log Page header: 1024 bytes, then NUMREC entries. */
struct ust_nvmf_discovery_log_header {
	uint64_t genctr;
	uint64_t numrec;
	uint16_t recfmt;
	uint8_t reserved18[1006];
} __attribute__((packed));
_Static_assert(sizeof(struct ust_nvmf_discovery_log_header) == 1024, "discovery header is 1024 bytes");

#define UST_NVMF_SUBTYPE_DISCOVERY_REFERRAL 1
#define UST_NVMF_SUBTYPE_NVME 2
#define UST_NVMF_SUBTYPE_DISCOVERY_CURRENT 3

#ifdef __cplusplus
}
#endif

#endif
