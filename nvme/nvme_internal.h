/*
 * Private to nvme/: the driver core's objects and the transport interface.
 *
 * The core (nvme_ctrlr*.c, nvme_qpair.c, nvme_ns.c, nvme_request.c) owns the
 * controller state machine, the request pools, command IDs, outstanding
 * lists, timeouts and namespaces. A transport owns how bytes move: register
 * access, queue memory or sockets, data pointers (PRP/SGL for PCIe,
 * in-capsule or R2T data for TCP) and reaping completions. A transport is a
 * struct nvme_transport_ops registered once (from a constructor) with
 * nvme_transport_register(); the core finds it by trtype. Adding NVMe/TCP
 * means a new nvme_tcp*.c with its own ops and nothing else.
 *
 * Contract between the core and a transport:
 *  - ctrlr_construct allocates the transport's controller struct (which
 *    embeds struct ust_nvme_ctrlr, first member or not: the core only holds
 *    the embedded pointer), calls nvme_ctrlr_init_common() on it and creates
 *    the admin qpair (qid 0) with nvme_qpair_init(). The core then runs the
 *    bring-up (see nvme_ctrlr_init.c) using reg_read/reg_write/ctrlr_enable.
 *  - reg_read/reg_write complete through a callback, which a transport may
 *    call before returning (PCIe MMIO does) or later (fabrics Property
 *    Get/Set, completed from the admin queue's process_completions).
 *  - ctrlr_enable is called once before CC.EN is set (PCIe: AQA, ASQ, ACQ).
 *    It may return -EAGAIN to be called again at the next poll (a fabrics
 *    transport reconnecting its admin queue after a reset).
 *  - qpair_submit takes a request whose SQE is complete except the data
 *    pointer (and PSDT); the CID is req->cid. It returns 0 or a negative
 *    errno (nothing is then outstanding). The core has already put the
 *    request on the qpair's outstanding list and removes it on error.
 *  - qpair_process_completions reaps up to max CQEs and calls
 *    nvme_qpair_complete_request() for each one (by CID); it returns the
 *    number reaped or a negative errno (the controller is gone).
 *  - qpair_reset discards ring state after the controller lost the queue
 *    (disable/reset) so that qpair_connect can recreate it; outstanding
 *    requests are completed by the core, not by the transport.
 *  - qpair_connect/qpair_disconnect create/delete the I/O queue on the
 *    controller (PCIe: Create/Delete I/O CQ and SQ over the admin queue,
 *    synchronously; TCP: the connection and its Connect command). A
 *    transport may answer -EAGAIN from qpair_connect when qpair->async_connect
 *    is set, or when reconnecting after a reset: the core calls it again
 *    from the qpair's process_completions until it answers 0 or an error.
 *    They are never called for qid 0: an admin queue exists from
 *    ctrlr_construct to ctrlr_destruct.
 *  - Keep-alive: when opts.keep_alive_timeout_ms != 0 and the controller
 *    reports KAS, the core sets the Keep Alive Timer feature (transports
 *    whose Connect carries KATO set nvme_ctrlr flag kato_in_connect) and
 *    sends Keep Alive every KATO/2 from process_admin_completions.
 */
#ifndef USTOR_NVME_INTERNAL_H
#define USTOR_NVME_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "ustor/log.h"
#include "ustor/nvme.h"

UST_LOG_DECLARE_COMPONENT(nvme);

struct nvme_request;

/* ---- payloads ----------------------------------------------------------- */

enum nvme_payload_type {
	NVME_PAYLOAD_NONE,
	NVME_PAYLOAD_CONTIG, /* one virtually contiguous buffer */
	NVME_PAYLOAD_IOV,    /* an iovec array */
	NVME_PAYLOAD_SGL_CB, /* reset_sgl/next_sge callbacks */
};

struct nvme_payload {
	enum nvme_payload_type type;
	void *buf;
	const struct iovec *iov;
	int iovcnt;
	ust_nvme_req_reset_sgl_cb reset_sgl;
	ust_nvme_req_next_sge_cb next_sge;
	void *sgl_cb_arg;
	/* iteration state (IOV and CONTIG) */
	int iov_idx;
	uint32_t iov_off;
	bool contig_done;
};

/* Start walking req's payload at offset 0. */
void nvme_payload_reset(struct nvme_request *req);
/*
 * Next element of the payload: *va and *len (len > 0). -EINVAL when the
 * payload has no more elements (or a callback failed).
 */
int nvme_payload_next(struct nvme_request *req, void **va, uint32_t *len);

/* ---- requests ----------------------------------------------------------- */

#define NVME_DSM_INLINE_RANGES 16

enum nvme_request_flags {
	NVME_REQ_AER = 1u << 0,        /* never times out; not reported on abort */
	NVME_REQ_ABORT_SENT = 1u << 1, /* an Abort was sent for it */
	NVME_REQ_INTERNAL = 1u << 2,   /* driver's own (keep-alive, abort, init) */
	NVME_REQ_OUTSTANDING = 1u << 3, /* submitted, not yet completed */
};

struct nvme_request {
	struct ust_nvme_cmd cmd;
	struct nvme_payload payload;
	uint32_t payload_size;
	uint16_t cid;
	uint16_t flags;
	uint64_t submit_tick;
	ust_nvme_cmd_cb cb_fn;
	void *cb_arg;
	struct ust_nvme_qpair *qpair;
	void *dsm_buf; /* ust_dma_malloc'd ranges beyond the inline ones */
	TAILQ_ENTRY(nvme_request) link;
	/* DMA memory (the request array is DMA memory) for short DSM lists */
	struct ust_nvme_dsm_range dsm_inline[NVME_DSM_INLINE_RANGES];
};

/* ---- queue pairs -------------------------------------------------------- */

enum nvme_qpair_state {
	NVME_QPAIR_DISCONNECTED,
	NVME_QPAIR_CONNECTED,
	NVME_QPAIR_FAILED,
};

struct ust_nvme_qpair {
	struct ust_nvme_ctrlr *ctrlr;
	uint16_t id;
	uint32_t num_entries; /* queue entries */
	struct nvme_request *reqs; /* num_reqs requests, index == CID */
	uint32_t num_reqs;
	TAILQ_HEAD(, nvme_request) free_reqs;
	TAILQ_HEAD(, nvme_request) outstanding; /* in submission order */
	uint32_t num_outstanding;
	enum nvme_qpair_state state;
	uint32_t ctrlr_gen; /* the controller generation the queue was created in */
	bool delay_sq_doorbell;
	bool async_connect; /* qpair_connect may answer -EAGAIN: finish it from polls */
	uint64_t next_timeout_check;
	TAILQ_ENTRY(ust_nvme_qpair) link; /* controller's list of I/O qpairs */
};

int nvme_qpair_init(struct ust_nvme_qpair *qpair, struct ust_nvme_ctrlr *ctrlr, uint16_t id,
		    uint32_t num_entries, uint32_t num_reqs);
void nvme_qpair_fini(struct ust_nvme_qpair *qpair);
/* A free request with cmd zeroed and the callback set; NULL when none is free. */
struct nvme_request *nvme_qpair_alloc_request(struct ust_nvme_qpair *qpair, ust_nvme_cmd_cb cb,
					      void *cb_arg);
void nvme_qpair_free_request(struct ust_nvme_qpair *qpair, struct nvme_request *req);
/* Submit: sets the CID, tracks the request; on error the request is freed. */
int nvme_qpair_submit_request(struct ust_nvme_qpair *qpair, struct nvme_request *req);
/* Called by transports for each CQE. cpl may be a driver-made one. */
void nvme_qpair_complete_request(struct ust_nvme_qpair *qpair, struct nvme_request *req,
				 const struct ust_nvme_cpl *cpl);
/* Request with CID cid if it is outstanding, else NULL (a bad CQE). */
struct nvme_request *nvme_qpair_get_request(struct ust_nvme_qpair *qpair, uint16_t cid);
/*
 * Complete every outstanding request with Aborted - SQ Deletion, DNR set
 * when dnr (the controller failed), skipping callbacks of AERs.
 */
void nvme_qpair_abort_outstanding(struct ust_nvme_qpair *qpair, bool dnr);
/* Timeout handling for the qpair (abort, then reset). */
void nvme_qpair_check_timeouts(struct ust_nvme_qpair *qpair, uint64_t now);

/* Fill cpl with a driver-made status. */
void nvme_cpl_set_status(struct ust_nvme_cpl *cpl, uint32_t sct, uint32_t sc, bool dnr);

/* ---- transports --------------------------------------------------------- */

typedef void (*nvme_reg_cb)(void *cb_arg, int rc, uint64_t value);
typedef int (*nvme_scan_cb)(void *ctx, const struct ust_nvme_transport_id *trid);

struct nvme_transport_ops {
	const char *name;
	enum ust_nvme_transport_type type;

	/* Call cb for every controller trid names (PCIe: traddr empty = all). */
	int (*scan)(const struct ust_nvme_transport_id *trid, nvme_scan_cb cb, void *ctx);

	int (*ctrlr_construct)(const struct ust_nvme_transport_id *trid,
			       const struct ust_nvme_ctrlr_opts *opts,
			       struct ust_nvme_ctrlr **ctrlr);
	void (*ctrlr_destruct)(struct ust_nvme_ctrlr *ctrlr);
	int (*ctrlr_enable)(struct ust_nvme_ctrlr *ctrlr);

	/* size 4 or 8 */
	int (*reg_read)(struct ust_nvme_ctrlr *ctrlr, uint32_t offset, uint32_t size,
			nvme_reg_cb cb, void *cb_arg);
	int (*reg_write)(struct ust_nvme_ctrlr *ctrlr, uint32_t offset, uint32_t size,
			 uint64_t value, nvme_reg_cb cb, void *cb_arg);

	/* Transport limits: bytes per command, data descriptors per command. */
	uint32_t (*max_xfer_size)(struct ust_nvme_ctrlr *ctrlr);

	struct ust_nvme_qpair *(*qpair_create)(struct ust_nvme_ctrlr *ctrlr, uint16_t qid,
					       const struct ust_nvme_io_qpair_opts *opts);
	void (*qpair_destroy)(struct ust_nvme_qpair *qpair);
	int (*qpair_connect)(struct ust_nvme_qpair *qpair);
	void (*qpair_disconnect)(struct ust_nvme_qpair *qpair);
	void (*qpair_reset)(struct ust_nvme_qpair *qpair);
	int (*qpair_submit)(struct ust_nvme_qpair *qpair, struct nvme_request *req);
	int32_t (*qpair_process_completions)(struct ust_nvme_qpair *qpair, uint32_t max);
	/* Ring a delayed SQ doorbell (may be NULL). */
	void (*qpair_flush)(struct ust_nvme_qpair *qpair);
};

/*
 * Register a transport (from a constructor). PCIe is built in and always
 * registered; other transports register themselves.
 */
void nvme_transport_register(const struct nvme_transport_ops *ops);
const struct nvme_transport_ops *nvme_transport_get(enum ust_nvme_transport_type type);
extern const struct nvme_transport_ops nvme_pcie_transport;

/* ---- controllers -------------------------------------------------------- */

enum nvme_ctrlr_state {
	NVME_CTRLR_STATE_INIT,              /* read CAP */
	NVME_CTRLR_STATE_READ_VS,
	NVME_CTRLR_STATE_READ_CC,
	NVME_CTRLR_STATE_CHECK_EN,          /* CC.EN was 1: look at CSTS.RDY */
	NVME_CTRLR_STATE_DISABLE_WAIT_FOR_READY_1,
	NVME_CTRLR_STATE_DISABLE,           /* write CC.EN = 0 */
	NVME_CTRLR_STATE_DISABLE_WAIT_FOR_READY_0,
	NVME_CTRLR_STATE_ENABLE_ADMIN_QUEUE, /* transport: AQA/ASQ/ACQ */
	NVME_CTRLR_STATE_ENABLE,            /* write CC with EN = 1 */
	NVME_CTRLR_STATE_ENABLE_WAIT_FOR_READY_1,
	NVME_CTRLR_STATE_IDENTIFY,
	NVME_CTRLR_STATE_SET_NUM_QUEUES,
	NVME_CTRLR_STATE_SET_KEEP_ALIVE_TIMEOUT,
	NVME_CTRLR_STATE_IDENTIFY_ACTIVE_NS,
	NVME_CTRLR_STATE_IDENTIFY_NS,
	NVME_CTRLR_STATE_CONFIGURE_AER,
	NVME_CTRLR_STATE_SUBMIT_AERS,
	NVME_CTRLR_STATE_READY,
	NVME_CTRLR_STATE_SHUTDOWN,          /* write CC.SHN = 01b */
	NVME_CTRLR_STATE_SHUTDOWN_WAIT,     /* wait CSTS.SHST = 10b */
	NVME_CTRLR_STATE_SHUTDOWN_DONE,
	NVME_CTRLR_STATE_FAILED,
};

const char *nvme_ctrlr_state_str(enum nvme_ctrlr_state state);

/* Why the state machine runs: first bring-up, reset, or a namespace rescan. */
enum nvme_ctrlr_init_purpose {
	NVME_INIT_ATTACH,
	NVME_INIT_RESET,
	NVME_INIT_NS_RESCAN,
};

struct nvme_ctrlr_init_ctx {
	enum nvme_ctrlr_init_purpose purpose;
	bool in_step;
	bool pending;      /* a register access or admin command is in flight */
	bool have_value;   /* result of the last access is in value/cpl */
	int rc;            /* of the last access */
	uint64_t value;    /* register value read */
	struct ust_nvme_cpl cpl; /* completion of the last admin command */
	uint64_t deadline; /* ticks; for register waits */
	uint32_t next_nsid; /* active NS list / identify walk */
	uint32_t ns_idx;
	uint32_t aers_submitted;
	uint32_t cc;
	bool active_list_fallback;
	bool awaiting_admin; /* pending is an admin command with CID cid */
	uint16_t cid;
	/* Format NVM waiting for its rescan */
	ust_nvme_cmd_cb format_cb;
	void *format_cb_arg;
	struct ust_nvme_cpl format_cpl;
};

struct ust_nvme_ns {
	struct ust_nvme_ctrlr *ctrlr;
	uint32_t id;
	bool active;
	struct ust_nvme_ns_data data;
	uint32_t sector_size;
	uint32_t md_size;
	uint64_t num_sectors;
};

struct ust_nvme_ctrlr {
	const struct nvme_transport_ops *ops;
	struct ust_nvme_transport_id trid;
	struct ust_nvme_ctrlr_opts opts;
	pthread_mutex_t lock; /* recursive; admin queue, state, qpair list */

	int state;      /* enum nvme_ctrlr_state, read atomically by I/O threads */
	uint32_t gen;   /* bumped when the queues are lost (disable, failure) */
	uint32_t fail_gen; /* the generation the last failure started */
	int init_status; /* -EAGAIN, 0, or the failure */
	bool failed;
	bool removed;   /* registers read all ones */
	bool detaching;
	bool kato_in_connect; /* fabrics: KATO set by Connect, skip Set Features */
	bool rescanning; /* READY, and re-identifying namespaces (AEN, format) */
	struct nvme_ctrlr_init_ctx init;

	uint64_t cap;
	uint32_t vs;
	uint32_t page_size;
	uint32_t max_xfer_size;
	uint32_t num_io_queues; /* granted */
	uint32_t io_queue_size; /* entries, after CAP.MQES */
	bool use_sgl;
	bool sgl_dword_aligned;
	struct ust_nvme_ctrlr_data *cdata; /* DMA memory */
	void *scratch;                     /* 4 KiB DMA buffer for init commands */

	/* namespaces: ns[nsid - 1] for nsid in 1..num_ns, allocated when first active */
	uint32_t num_ns;
	struct ust_nvme_ns **ns;
	uint32_t *active_ns;      /* sorted */
	uint32_t num_active_ns;
	uint32_t *new_active_ns;  /* being built by the state machine */
	uint32_t num_new_active_ns;

	struct ust_nvme_qpair *adminq;
	TAILQ_HEAD(, ust_nvme_qpair) io_qpairs;
	bool *qid_used; /* [num_io_queues + 1] */
	uint32_t last_qid; /* the QID handed out last (0: none yet) */

	/* asynchronous events */
	uint32_t num_aers;
	ust_nvme_cmd_cb aer_cb;
	void *aer_cb_arg;
	ust_nvme_ns_change_cb ns_change_cb;
	void *ns_change_ctx;
	bool ns_rescan_wanted;
	struct ust_nvme_cpl pending_aen; /* AEN waiting for the rescan */
	bool pending_aen_valid;
	void *changed_ns_log; /* DMA 4 KiB */

	/* keep-alive and health */
	uint64_t keep_alive_interval_ticks;
	uint64_t next_keep_alive_tick;
	bool keep_alive_outstanding;
	uint64_t next_health_check_tick;
	bool health_check_pending;

	/* shutdown */
	uint64_t shutdown_deadline;
};

/* Fill the generic part; the transport sets ops first. */
int nvme_ctrlr_init_common(struct ust_nvme_ctrlr *ctrlr, const struct nvme_transport_ops *ops,
			   const struct ust_nvme_transport_id *trid,
			   const struct ust_nvme_ctrlr_opts *opts);
void nvme_ctrlr_fini_common(struct ust_nvme_ctrlr *ctrlr);
/* Fail the controller (logs why); everything outstanding completes with an error. */
void nvme_ctrlr_fail(struct ust_nvme_ctrlr *ctrlr, int rc, const char *why);
/* Submit an admin request (takes the lock). */
int nvme_ctrlr_submit_admin(struct ust_nvme_ctrlr *ctrlr, struct nvme_request *req);
/* Allocate an admin request (takes the lock); NULL when none is free. */
struct nvme_request *nvme_ctrlr_alloc_admin_request(struct ust_nvme_ctrlr *ctrlr,
						    ust_nvme_cmd_cb cb, void *cb_arg);
/* Run admin commands synchronously (qpair connect): poll until done or timeout. */
int nvme_ctrlr_admin_wait(struct ust_nvme_ctrlr *ctrlr, const struct ust_nvme_cmd *cmd,
			  void *buf, uint32_t len, struct ust_nvme_cpl *cpl);
/* Ask for a reset from any context (timeouts); no-op while one runs. */
void nvme_ctrlr_request_reset(struct ust_nvme_ctrlr *ctrlr, const char *why);
int nvme_ctrlr_get_state(struct ust_nvme_ctrlr *ctrlr);

/* What a read of a 32-bit register gives once the device is gone. */
#define NVME_REG_ALL_ONES 0xffffffffu

/* Shared by nvme_ctrlr.c, nvme_ctrlr_init.c and nvme_ctrlr_events.c. */
uint64_t nvme_us_to_ticks(uint64_t us);
/* Registers read all ones: mark the controller removed and fail it (-ENODEV). */
void nvme_ctrlr_fail_removed(struct ust_nvme_ctrlr *ctrlr);
/* Submit cmd with an optional contiguous buffer on the admin queue (takes the lock). */
int nvme_ctrlr_submit_admin_cmd(struct ust_nvme_ctrlr *ctrlr, const struct ust_nvme_cmd *cmd,
				void *buf, uint32_t len, uint16_t flags, ust_nvme_cmd_cb cb,
				void *cb_arg, uint16_t *cid);
/* The state machine (nvme_ctrlr_init.c): run it until it must wait (takes the lock). */
void nvme_ctrlr_init_step(struct ust_nvme_ctrlr *ctrlr);
void nvme_ctrlr_set_state(struct ust_nvme_ctrlr *ctrlr, enum nvme_ctrlr_state state);
/* Re-identify the namespaces while the controller stays ready. */
void nvme_ctrlr_start_ns_rescan(struct ust_nvme_ctrlr *ctrlr);
/* Background work of a ready controller (nvme_ctrlr_events.c); caller holds the lock. */
int nvme_ctrlr_submit_aer(struct ust_nvme_ctrlr *ctrlr);
void nvme_ctrlr_send_keep_alive(struct ust_nvme_ctrlr *ctrlr, uint64_t now);
void nvme_ctrlr_check_health(struct ust_nvme_ctrlr *ctrlr, uint64_t now);

/* Namespace data refresh from a freshly identified page. */
void nvme_ns_update(struct ust_nvme_ns *ns, const struct ust_nvme_ns_data *data);

/* ---- command builders (nvme_cmd.c): every field of the SQE -------------- */

void nvme_cmd_identify(struct ust_nvme_cmd *cmd, uint8_t cns, uint16_t cntid, uint32_t nsid);
void nvme_cmd_set_features(struct ust_nvme_cmd *cmd, uint8_t fid, uint32_t cdw11,
			   uint32_t cdw12);
void nvme_cmd_get_features(struct ust_nvme_cmd *cmd, uint8_t fid, uint32_t cdw11);
/* nqueues: I/O SQs and CQs wanted (1's based; encoded 0's based). */
void nvme_cmd_set_num_queues(struct ust_nvme_cmd *cmd, uint32_t nqueues);
/* numd: dwords (1's based). */
void nvme_cmd_get_log_page(struct ust_nvme_cmd *cmd, uint8_t lid, uint32_t nsid, uint32_t numd,
			   uint64_t offset, bool rae);
void nvme_cmd_create_io_cq(struct ust_nvme_cmd *cmd, uint16_t qid, uint32_t entries,
			   uint64_t prp1);
void nvme_cmd_create_io_sq(struct ust_nvme_cmd *cmd, uint16_t qid, uint32_t entries,
			   uint16_t cqid, uint64_t prp1);
void nvme_cmd_delete_io_sq(struct ust_nvme_cmd *cmd, uint16_t qid);
void nvme_cmd_delete_io_cq(struct ust_nvme_cmd *cmd, uint16_t qid);
void nvme_cmd_abort(struct ust_nvme_cmd *cmd, uint16_t sqid, uint16_t cid);
void nvme_cmd_async_event_request(struct ust_nvme_cmd *cmd);
void nvme_cmd_keep_alive(struct ust_nvme_cmd *cmd);
void nvme_cmd_format_nvm(struct ust_nvme_cmd *cmd, uint32_t nsid,
			 const struct ust_nvme_format *format);
/* opc READ, WRITE, COMPARE, WRITE_ZEROES; lba_count 1's based (1..65536). */
void nvme_cmd_rw(struct ust_nvme_cmd *cmd, uint8_t opc, uint32_t nsid, uint64_t lba,
		 uint32_t lba_count, uint32_t io_flags);
void nvme_cmd_flush(struct ust_nvme_cmd *cmd, uint32_t nsid);
void nvme_cmd_dsm(struct ust_nvme_cmd *cmd, uint32_t nsid, uint32_t attributes,
		  uint16_t num_ranges);

/* ---- PCIe data pointers (nvme_pcie_prp.c), exposed for unit tests ------- */

/*
 * Build PRP1/PRP2 for req's payload with memory page size page_size; list is
 * list_pages virtually contiguous pages, list_bus[i] the IO address of page
 * i, chained when one page is not enough. -EINVAL for a payload PRPs cannot
 * describe (first entry not dword aligned, a later element not page aligned,
 * an element other than the last not ending on a page boundary, more entries
 * than the pages hold); -EFAULT for memory with no IO address.
 */
int nvme_pcie_build_prps(struct nvme_request *req, uint32_t page_size, uint64_t *list,
			 const uint64_t *list_bus, uint32_t list_pages);
/* PRP list pages one request needs for transfers up to max_xfer bytes. */
uint32_t nvme_pcie_prp_list_pages(uint32_t page_size, uint32_t max_xfer);
/*
 * Build SGL1 (one Data Block descriptor, or a Last Segment descriptor
 * pointing at list) for req's payload; list holds max_desc descriptors.
 * dword_aligned: the controller requires dword-aligned addresses/lengths.
 */
int nvme_pcie_build_sgl(struct nvme_request *req, struct ust_nvme_sgl_descriptor *list,
			uint64_t list_bus, uint32_t max_desc, bool dword_aligned);

/* ---- NVMe over Fabrics commands (nvme_fabric.c), shared by TCP and RDMA ---- */

/* Connect (fctype 01h) for queue qid with entries slots; kato_ms only for qid 0. */
void nvme_fabric_connect_cmd(struct ust_nvme_cmd *cmd, uint16_t qid, uint32_t entries,
			     uint8_t cattr, uint32_t kato_ms);
/* The 1024-byte Connect data; -EINVAL if an NQN is empty or too long. */
int nvme_fabric_connect_data(struct ust_nvmf_connect_data *data, const uint8_t hostid[16],
			     uint16_t cntlid, const char *subnqn, const char *hostnqn);
/* Property Get (fctype 04h) / Set (00h) of size 4 or 8; -EINVAL otherwise. */
int nvme_fabric_prop_get_cmd(struct ust_nvme_cmd *cmd, uint32_t offset, uint32_t size);
int nvme_fabric_prop_set_cmd(struct ust_nvme_cmd *cmd, uint32_t offset, uint32_t size,
			     uint64_t value);
/* The value a successful Property Get returned (CQE DW0, and DW1 for size 8). */
uint64_t nvme_fabric_prop_get_value(const struct ust_nvme_cpl *cpl, uint32_t size);
/* Data transfer direction of a command: 0 none, 1 host to controller, 2 controller to host, 3 both. */
uint32_t nvme_fabric_cmd_xfer(const struct ust_nvme_cmd *cmd);
/* Default host NQN from a host ID (nqn.2014-08.org.nvmexpress:uuid:...). */
void nvme_fabric_default_hostnqn(char *buf, size_t len, const uint8_t hostid[16]);

/*
 * Discovery log retrieval over a synchronous admin command executor: exec
 * runs one admin command with len bytes of controller-to-host data into buf
 * and returns 0, -EIO with *cpl holding the error status, or another errno.
 */
typedef int (*nvme_fabric_exec_fn)(void *ctx, const struct ust_nvme_cmd *cmd, void *buf,
				   uint32_t len, struct ust_nvme_cpl *cpl);
/*
 * Parse a discovery log of len bytes: -EPROTO when shorter than the header or
 * than NUMREC entries (*numrec is still set, for the caller to ask for more).
 * On success *entries points into buf.
 */
int nvme_fabric_parse_discovery_log(const void *buf, size_t len, uint64_t *genctr,
				    uint64_t *numrec,
				    const struct ust_nvmf_discovery_log_entry **entries);
/* Read the whole log (re-reading while GENCTR changes); *entries is malloc'd. */
int nvme_fabric_get_discovery_log(nvme_fabric_exec_fn exec, void *ctx,
				  struct ust_nvmf_discovery_log_entry **entries, uint32_t *count);

#endif
