/*
 * ustor's userspace NVMe driver.
 *
 * A controller (struct ust_nvme_ctrlr) is reached through a transport
 * (PCIe here; NVMe/TCP plugs in through nvme/nvme_internal.h) named by a
 * transport ID. It is brought up by a state machine that the owner drives by
 * calling ust_nvme_ctrlr_process_admin_completions() (from a poller): no call
 * on the asynchronous path sleeps. ust_nvme_connect() is a synchronous
 * convenience for tools; it polls until the controller is ready.
 *
 * Threading:
 *  - The admin queue and the controller object may be used from any thread:
 *    admin submission and admin polling are serialised by a per-controller
 *    lock. Admin callbacks run on the thread that polls the admin queue.
 *  - An I/O queue pair belongs to the thread that uses it: submission and
 *    ust_nvme_qpair_process_completions() are not thread-safe by design and
 *    take no lock. Completion callbacks run inside process_completions.
 *  - After a controller reset, each I/O qpair reconnects itself (recreating
 *    its queues) on its own thread, inside its next process_completions call;
 *    requests that were outstanding when the controller went down complete
 *    with an "aborted" status. After a failure (CSTS.CFS, surprise removal)
 *    every outstanding and every new request fails.
 *
 * Buffers passed for data must be DMA memory (ust_dma_malloc) and stay valid
 * until the completion callback. Errors are negative errno; a submit that
 * returns an error called nothing back. -ENOMEM means the qpair has no free
 * request (queue full): retry after completions, nothing is queued hidden.
 * -EAGAIN means the qpair is waiting for a controller reset or for its own
 * connection (async_connect) to finish (keep polling it, then retry);
 * -ENXIO that the controller failed.
 */
#ifndef USTOR_NVME_H
#define USTOR_NVME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "ustor/nvme_spec.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ust_nvme_ctrlr;
struct ust_nvme_ns;
struct ust_nvme_qpair;

/* ---- transport IDs ------------------------------------------------------ */

enum ust_nvme_transport_type {
	UST_NVME_TRANSPORT_PCIE = 256, /* not a fabrics TRTYPE value */
	UST_NVME_TRANSPORT_RDMA = 1,   /* TRTYPE values of the Discovery log */
	UST_NVME_TRANSPORT_FC = 2,
	UST_NVME_TRANSPORT_TCP = 3,
};

enum ust_nvme_adrfam {
	UST_NVME_ADRFAM_NONE = 0,
	UST_NVME_ADRFAM_IPV4 = 1,
	UST_NVME_ADRFAM_IPV6 = 2,
	UST_NVME_ADRFAM_IB = 3,
	UST_NVME_ADRFAM_FC = 4,
};

#define UST_NVME_TRADDR_MAX_LEN 256
#define UST_NVME_TRSVCID_MAX_LEN 32
#define UST_NVME_NQN_MAX_LEN 223
#define UST_NVME_TRID_STRING_LEN 640

struct ust_nvme_transport_id {
	enum ust_nvme_transport_type trtype;
	enum ust_nvme_adrfam adrfam;
	char traddr[UST_NVME_TRADDR_MAX_LEN + 1];
	char trsvcid[UST_NVME_TRSVCID_MAX_LEN + 1];
	char subnqn[UST_NVME_NQN_MAX_LEN + 1];
};

/*
 * Parse "key:value key:value ..." (keys trtype, adrfam, traddr, trsvcid,
 * subnqn; case-insensitive; separated by spaces or tabs; '=' may be used
 * instead of ':'). PCIe addresses are normalised to "DDDD:BB:DD.F".
 * Returns 0 or -EINVAL, with a message naming the bad part in errbuf (if not
 * NULL). trid is zeroed first.
 */
int ust_nvme_transport_id_parse(struct ust_nvme_transport_id *trid, const char *str,
				char *errbuf, size_t errlen);
/* The canonical string form (only the keys that are set); -ENOSPC if too small. */
int ust_nvme_transport_id_fmt(char *buf, size_t len, const struct ust_nvme_transport_id *trid);
/* 0 when both name the same controller (trtype, adrfam, traddr, trsvcid, subnqn). */
int ust_nvme_transport_id_compare(const struct ust_nvme_transport_id *a,
				  const struct ust_nvme_transport_id *b);
/* "PCIe", "TCP", "RDMA", "FC"; NULL for an unknown value. */
const char *ust_nvme_transport_type_str(enum ust_nvme_transport_type trtype);
int ust_nvme_transport_type_parse(enum ust_nvme_transport_type *trtype, const char *str);
/* "IPv4", "IPv6", "IB", "FC"; NULL for none/unknown. */
const char *ust_nvme_adrfam_str(enum ust_nvme_adrfam adrfam);
int ust_nvme_adrfam_parse(enum ust_nvme_adrfam *adrfam, const char *str);

/* ---- controller options ------------------------------------------------- */

struct ust_nvme_ctrlr_opts {
	uint32_t num_io_queues;      /* I/O queue pairs to ask for (default 64) */
	uint32_t io_queue_size;      /* entries per I/O queue (default 256; capped by CAP.MQES) */
	uint32_t admin_queue_size;   /* entries of the admin queue (default 32) */
	uint32_t keep_alive_timeout_ms; /* 0: no keep-alive (default for PCIe) */
	uint64_t admin_timeout_us;   /* admin command timeout (default 10 s; 0 = none) */
	uint64_t io_timeout_us;      /* I/O command timeout (default 30 s; 0 = none) */
	uint32_t health_check_interval_us; /* how often CSTS is read when ready (default 100 ms) */
	bool prefer_sgl;             /* use SGLs when the controller supports them (default true) */
	uint32_t aer_count;          /* AERs kept outstanding, capped by AERL+1 (default 4) */
	char hostnqn[UST_NVME_NQN_MAX_LEN + 1]; /* for fabrics transports */
	bool header_digest;          /* NVMe/TCP: ask for CRC32C header digests (default off) */
	bool data_digest;            /* NVMe/TCP: ask for CRC32C data digests (default off) */
};

void ust_nvme_ctrlr_opts_init(struct ust_nvme_ctrlr_opts *opts);

/* ---- probe, attach, detach ---------------------------------------------- */

/*
 * Probe: for each controller that trid's transport finds (PCIe: every NVMe
 * function bound to vfio-pci or uio_pci_generic, or only trid->traddr when
 * set; fabrics: the one named), probe_cb decides whether to attach (and may
 * change opts). Each chosen controller is brought up synchronously and
 * handed to attach_cb; one that fails is logged and skipped. Returns the
 * number attached or a negative errno. For tools and start-up, not reactors.
 */
typedef bool (*ust_nvme_probe_cb)(void *ctx, const struct ust_nvme_transport_id *trid,
				  struct ust_nvme_ctrlr_opts *opts);
typedef void (*ust_nvme_attach_cb)(void *ctx, const struct ust_nvme_transport_id *trid,
				   struct ust_nvme_ctrlr *ctrlr);
int ust_nvme_probe(const struct ust_nvme_transport_id *trid, void *ctx, ust_nvme_probe_cb probe_cb,
		   ust_nvme_attach_cb attach_cb);

/*
 * Asynchronous attach: create the controller and start its bring-up; then
 * poll ust_nvme_ctrlr_process_admin_completions() until
 * ust_nvme_ctrlr_get_init_status() is no longer -EAGAIN. opts may be NULL.
 */
int ust_nvme_ctrlr_construct(const struct ust_nvme_transport_id *trid,
			     const struct ust_nvme_ctrlr_opts *opts, struct ust_nvme_ctrlr **ctrlr);
/* -EAGAIN while bringing up or resetting, 0 when ready, a negative errno once failed. */
int ust_nvme_ctrlr_get_init_status(struct ust_nvme_ctrlr *ctrlr);

/* Synchronous attach (construct + poll). NULL on failure, with errno set. */
struct ust_nvme_ctrlr *ust_nvme_connect(const struct ust_nvme_transport_id *trid,
					const struct ust_nvme_ctrlr_opts *opts);

/*
 * Detach: normal shutdown (CC.SHN, waiting CSTS.SHST up to RTD3E or 10 s)
 * and free everything. Every I/O qpair must have been freed (-EBUSY).
 * The asynchronous form starts the shutdown; poll
 * ust_nvme_ctrlr_detach_poll() until it returns 0 (then ctrlr is gone).
 */
int ust_nvme_detach(struct ust_nvme_ctrlr *ctrlr);
int ust_nvme_ctrlr_detach_start(struct ust_nvme_ctrlr *ctrlr);
int ust_nvme_ctrlr_detach_poll(struct ust_nvme_ctrlr *ctrlr);

/* ---- controller --------------------------------------------------------- */

/*
 * Drive the controller: the bring-up/reset state machine, admin completions
 * (their callbacks run here), AER handling, keep-alive, timeouts and the
 * health check. Returns the number of admin completions processed, or
 * -ENXIO once the controller has failed.
 */
int32_t ust_nvme_ctrlr_process_admin_completions(struct ust_nvme_ctrlr *ctrlr);

/*
 * Reset: disable, re-enable and re-initialise the controller (outstanding
 * admin commands complete aborted; I/O qpairs reconnect on their threads).
 * Asynchronous: progress through process_admin_completions; -EBUSY while a
 * reset or bring-up is already running, -ENXIO on a failed controller that
 * is gone (all-ones registers). ust_nvme_ctrlr_reset_sync() polls until done.
 */
int ust_nvme_ctrlr_reset(struct ust_nvme_ctrlr *ctrlr);
int ust_nvme_ctrlr_reset_sync(struct ust_nvme_ctrlr *ctrlr);
/* Mark the controller failed: every request completes with an error. */
void ust_nvme_ctrlr_fail(struct ust_nvme_ctrlr *ctrlr);
bool ust_nvme_ctrlr_is_failed(struct ust_nvme_ctrlr *ctrlr);

const struct ust_nvme_transport_id *ust_nvme_ctrlr_get_transport_id(struct ust_nvme_ctrlr *ctrlr);
const struct ust_nvme_ctrlr_data *ust_nvme_ctrlr_get_data(struct ust_nvme_ctrlr *ctrlr);
const struct ust_nvme_ctrlr_opts *ust_nvme_ctrlr_get_opts(struct ust_nvme_ctrlr *ctrlr);
uint64_t ust_nvme_ctrlr_get_cap(struct ust_nvme_ctrlr *ctrlr);
uint32_t ust_nvme_ctrlr_get_vs(struct ust_nvme_ctrlr *ctrlr);
/* Largest data transfer of one command, in bytes. */
uint32_t ust_nvme_ctrlr_get_max_xfer_size(struct ust_nvme_ctrlr *ctrlr);
/* Memory page size used for PRPs (CC.MPS), in bytes. */
uint32_t ust_nvme_ctrlr_get_page_size(struct ust_nvme_ctrlr *ctrlr);
/* I/O queue pairs granted by Set Features Number of Queues. */
uint32_t ust_nvme_ctrlr_get_num_io_queues(struct ust_nvme_ctrlr *ctrlr);
/* True when data pointers are built as SGLs rather than PRPs. */
bool ust_nvme_ctrlr_uses_sgl(struct ust_nvme_ctrlr *ctrlr);

/* Namespaces: NSIDs are 1..NN; only active ones have an object. */
uint32_t ust_nvme_ctrlr_get_num_ns(struct ust_nvme_ctrlr *ctrlr);
/* First/next active NSID; 0 at the end. */
uint32_t ust_nvme_ctrlr_get_first_active_ns(struct ust_nvme_ctrlr *ctrlr);
uint32_t ust_nvme_ctrlr_get_next_active_ns(struct ust_nvme_ctrlr *ctrlr, uint32_t prev_nsid);
bool ust_nvme_ctrlr_is_active_ns(struct ust_nvme_ctrlr *ctrlr, uint32_t nsid);
/* NULL if nsid is not active. */
struct ust_nvme_ns *ust_nvme_ctrlr_get_ns(struct ust_nvme_ctrlr *ctrlr, uint32_t nsid);

typedef void (*ust_nvme_cmd_cb)(void *cb_arg, const struct ust_nvme_cpl *cpl);

/*
 * Asynchronous events: cb runs (on the admin polling thread) for every AER
 * completion. A "namespace attribute changed" notice is handled first: the
 * driver reads the Changed Namespace List log, re-identifies the namespaces
 * and then calls ns_change_cb (if set) before aer_cb.
 */
typedef void (*ust_nvme_ns_change_cb)(void *ctx, struct ust_nvme_ctrlr *ctrlr);
void ust_nvme_ctrlr_register_aer_callback(struct ust_nvme_ctrlr *ctrlr, ust_nvme_cmd_cb cb,
					  void *cb_arg);
void ust_nvme_ctrlr_register_ns_change_callback(struct ust_nvme_ctrlr *ctrlr,
						ust_nvme_ns_change_cb cb, void *ctx);

/* ---- admin commands (asynchronous; buffers are DMA memory) -------------- */

int ust_nvme_ctrlr_cmd_admin_raw(struct ust_nvme_ctrlr *ctrlr, const struct ust_nvme_cmd *cmd,
				 void *buf, uint32_t len, ust_nvme_cmd_cb cb, void *cb_arg);
int ust_nvme_ctrlr_cmd_identify(struct ust_nvme_ctrlr *ctrlr, uint8_t cns, uint16_t cntid,
				uint32_t nsid, void *buf, uint32_t len, ust_nvme_cmd_cb cb,
				void *cb_arg);
/* nsid UINT32_MAX: controller-wide. len a multiple of 4. */
int ust_nvme_ctrlr_cmd_get_log_page(struct ust_nvme_ctrlr *ctrlr, uint8_t lid, uint32_t nsid,
				    void *buf, uint32_t len, uint64_t offset, ust_nvme_cmd_cb cb,
				    void *cb_arg);
int ust_nvme_ctrlr_cmd_set_feature(struct ust_nvme_ctrlr *ctrlr, uint8_t fid, uint32_t cdw11,
				   uint32_t cdw12, void *buf, uint32_t len, ust_nvme_cmd_cb cb,
				   void *cb_arg);
int ust_nvme_ctrlr_cmd_get_feature(struct ust_nvme_ctrlr *ctrlr, uint8_t fid, uint32_t cdw11,
				   void *buf, uint32_t len, ust_nvme_cmd_cb cb, void *cb_arg);
/* Abort the command cid on queue sqid. */
int ust_nvme_ctrlr_cmd_abort(struct ust_nvme_ctrlr *ctrlr, uint16_t sqid, uint16_t cid,
			     ust_nvme_cmd_cb cb, void *cb_arg);

struct ust_nvme_format {
	uint8_t lbaf; /* LBA format index */
	uint8_t mset; /* 1: metadata as part of an extended LBA */
	uint8_t pi;   /* protection information type, 0-3 */
	uint8_t pil;  /* 1: PI in the first bytes of metadata */
	uint8_t ses;  /* secure erase: 0 none, 1 user data, 2 cryptographic */
};
/*
 * Format NVM (nsid UINT32_MAX: all namespaces). After success the driver
 * re-identifies the namespaces before cb runs.
 */
int ust_nvme_ctrlr_cmd_format(struct ust_nvme_ctrlr *ctrlr, uint32_t nsid,
			      const struct ust_nvme_format *format, ust_nvme_cmd_cb cb, void *cb_arg);

/*
 * Synchronous helpers for tools: submit and poll the admin queue until the
 * completion (or the admin timeout). Return 0, -EIO with *cpl (if not NULL)
 * holding the error status, or another negative errno.
 */
int ust_nvme_ctrlr_get_health_log(struct ust_nvme_ctrlr *ctrlr, uint32_t nsid,
				  struct ust_nvme_health_log *log, struct ust_nvme_cpl *cpl);
/* Up to n entries (n <= ELPE+1 is sensible); log must be DMA memory of n entries. */
int ust_nvme_ctrlr_get_error_log(struct ust_nvme_ctrlr *ctrlr, struct ust_nvme_error_log_entry *log,
				 uint32_t n, struct ust_nvme_cpl *cpl);
int ust_nvme_ctrlr_format_sync(struct ust_nvme_ctrlr *ctrlr, uint32_t nsid,
			       const struct ust_nvme_format *format, struct ust_nvme_cpl *cpl);
int ust_nvme_ctrlr_admin_sync(struct ust_nvme_ctrlr *ctrlr, const struct ust_nvme_cmd *cmd,
			      void *buf, uint32_t len, struct ust_nvme_cpl *cpl);

/* ---- namespaces --------------------------------------------------------- */

uint32_t ust_nvme_ns_get_id(const struct ust_nvme_ns *ns);
struct ust_nvme_ctrlr *ust_nvme_ns_get_ctrlr(const struct ust_nvme_ns *ns);
const struct ust_nvme_ns_data *ust_nvme_ns_get_data(const struct ust_nvme_ns *ns);
/* Data bytes per logical block of the current format. */
uint32_t ust_nvme_ns_get_sector_size(const struct ust_nvme_ns *ns);
uint64_t ust_nvme_ns_get_num_sectors(const struct ust_nvme_ns *ns);
uint64_t ust_nvme_ns_get_size(const struct ust_nvme_ns *ns);
uint32_t ust_nvme_ns_get_md_size(const struct ust_nvme_ns *ns);
/* Largest read/write in blocks (max transfer and the 16-bit NLB field). */
uint32_t ust_nvme_ns_get_max_io_blocks(const struct ust_nvme_ns *ns);
/* True when the namespace has a 128-bit NGUID or EUI64 (uuid gets NGUID, or EUI64 twice). */
bool ust_nvme_ns_get_uuid(const struct ust_nvme_ns *ns, uint8_t uuid[16]);

/* ---- I/O queue pairs ---------------------------------------------------- */

struct ust_nvme_io_qpair_opts {
	uint32_t io_queue_size;   /* entries (default: the controller's opts) */
	/* Ring the SQ tail doorbell once per process_completions call (or
	 * ust_nvme_qpair_flush) instead of once per submission. */
	bool delay_sq_doorbell;
	/*
	 * Return without waiting for a fabrics queue's connection (NVMe/TCP:
	 * TCP connect, ICReq/ICResp, Connect command): the qpair connects from
	 * its own process_completions calls, and submissions return -EAGAIN
	 * until it has. For reactors. PCIe queues are created synchronously
	 * either way (two admin commands, microseconds on a live device).
	 */
	bool async_connect;
};

void ust_nvme_io_qpair_opts_init(struct ust_nvme_ctrlr *ctrlr, struct ust_nvme_io_qpair_opts *opts);
/*
 * Allocate and connect an I/O qpair (PCIe: Create I/O CQ, Create I/O SQ,
 * waiting on the admin queue for those two commands; fabrics: the queue's
 * connection, waited for unless opts->async_connect). During a controller
 * reset, or with async_connect, the qpair may be returned unconnected and
 * connects from its own polls. opts may be NULL. NULL on failure with errno
 * set (ENOSPC: no queue left, EAGAIN: bring-up not finished, ENXIO: failed).
 */
struct ust_nvme_qpair *ust_nvme_ctrlr_alloc_io_qpair(struct ust_nvme_ctrlr *ctrlr,
						     const struct ust_nvme_io_qpair_opts *opts);
/* Outstanding requests complete aborted; queues are deleted. On the owning thread. */
int ust_nvme_ctrlr_free_io_qpair(struct ust_nvme_qpair *qpair);

/*
 * Reap up to max completions (0: all available) and call their callbacks.
 * Returns the number reaped, or -ENXIO when the controller has failed (all
 * outstanding requests were completed with an error first).
 */
int32_t ust_nvme_qpair_process_completions(struct ust_nvme_qpair *qpair, uint32_t max);
/* Ring the SQ tail doorbell for submissions held by delay_sq_doorbell. */
void ust_nvme_qpair_flush(struct ust_nvme_qpair *qpair);
uint16_t ust_nvme_qpair_get_id(const struct ust_nvme_qpair *qpair);
/* Requests submitted and not yet completed. */
uint32_t ust_nvme_qpair_get_num_outstanding(const struct ust_nvme_qpair *qpair);

/* Scatter-gather payloads: reset_sgl(cb_arg, offset) then next_sge() per element. */
typedef void (*ust_nvme_req_reset_sgl_cb)(void *cb_arg, uint32_t offset);
typedef int (*ust_nvme_req_next_sge_cb)(void *cb_arg, void **address, uint32_t *length);

/* I/O flags (CDW12 bits): UST_NVME_RW_FUA, UST_NVME_RW_LR. */
int ust_nvme_ns_cmd_read(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair, void *buf,
			 uint64_t lba, uint32_t lba_count, ust_nvme_cmd_cb cb, void *cb_arg,
			 uint32_t io_flags);
int ust_nvme_ns_cmd_write(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair, void *buf,
			  uint64_t lba, uint32_t lba_count, ust_nvme_cmd_cb cb, void *cb_arg,
			  uint32_t io_flags);
int ust_nvme_ns_cmd_compare(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair, void *buf,
			    uint64_t lba, uint32_t lba_count, ust_nvme_cmd_cb cb, void *cb_arg,
			    uint32_t io_flags);
/* iovec variants: the iov array must stay valid until the callback. */
int ust_nvme_ns_cmd_readv(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair,
			  const struct iovec *iov, int iovcnt, uint64_t lba, uint32_t lba_count,
			  ust_nvme_cmd_cb cb, void *cb_arg, uint32_t io_flags);
int ust_nvme_ns_cmd_writev(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair,
			   const struct iovec *iov, int iovcnt, uint64_t lba, uint32_t lba_count,
			   ust_nvme_cmd_cb cb, void *cb_arg, uint32_t io_flags);
int ust_nvme_ns_cmd_comparev(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair,
			     const struct iovec *iov, int iovcnt, uint64_t lba, uint32_t lba_count,
			     ust_nvme_cmd_cb cb, void *cb_arg, uint32_t io_flags);
/* Callback-driven scatter-gather (opcode: READ, WRITE or COMPARE). */
int ust_nvme_ns_cmd_rw_sgl(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair, uint8_t opc,
			   uint64_t lba, uint32_t lba_count, ust_nvme_cmd_cb cb, void *cb_arg,
			   uint32_t io_flags, ust_nvme_req_reset_sgl_cb reset_sgl,
			   ust_nvme_req_next_sge_cb next_sge);
int ust_nvme_ns_cmd_write_zeroes(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair,
				 uint64_t lba, uint32_t lba_count, ust_nvme_cmd_cb cb,
				 void *cb_arg, uint32_t io_flags);
int ust_nvme_ns_cmd_flush(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair,
			  ust_nvme_cmd_cb cb, void *cb_arg);
/*
 * Dataset Management with attributes (UST_NVME_DSM_ATTR_DEALLOCATE, ...).
 * Up to 256 ranges; they are copied, so ranges may be any memory.
 */
int ust_nvme_ns_cmd_dataset_management(struct ust_nvme_ns *ns, struct ust_nvme_qpair *qpair,
				       uint32_t attributes,
				       const struct ust_nvme_dsm_range *ranges,
				       uint16_t num_ranges, ust_nvme_cmd_cb cb, void *cb_arg);
/* Raw I/O command (nsid, opcode and CDWs from cmd; CID/PSDT/DPTR filled in). */
int ust_nvme_ctrlr_cmd_io_raw(struct ust_nvme_ctrlr *ctrlr, struct ust_nvme_qpair *qpair,
			      const struct ust_nvme_cmd *cmd, void *buf, uint32_t len,
			      ust_nvme_cmd_cb cb, void *cb_arg);

/* ---- fabrics discovery ------------------------------------------------- */

/*
 * Read the Discovery Log (Get Log Page 70h) of the discovery controller trid
 * names (trtype TCP; subnqn empty means nqn.2014-08.org.nvmexpress.discovery):
 * connect an admin queue, enable the controller, read the log (again while
 * its generation counter changes under us) and disconnect. Synchronous, for
 * tools and start-up, not reactors. On success *entries is malloc'd (free()
 * it; NULL when *count is 0). opts may be NULL; hostnqn and admin_timeout_us
 * are used. -ENOTSUP for a transport without discovery, -EPROTO for a
 * malformed log.
 */
int ust_nvme_discover(const struct ust_nvme_transport_id *trid,
		      const struct ust_nvme_ctrlr_opts *opts,
		      struct ust_nvmf_discovery_log_entry **entries, uint32_t *count);

/* ---- status ------------------------------------------------------------- */

/*
 * errno for a completion: 0 success, -EILSEQ compare failure, -ECANCELED
 * aborted (by request, by SQ deletion, or by the driver on reset/failure),
 * -ENXIO the controller failed, -EINVAL invalid field/opcode/namespace,
 * -ERANGE LBA out of range, -ENOSPC capacity exceeded, -EIO anything else.
 */
int ust_nvme_cpl_to_errno(const struct ust_nvme_cpl *cpl);
/* "SUCCESS", "LBA OUT OF RANGE", ... (static strings) */
const char *ust_nvme_cpl_status_str(const struct ust_nvme_cpl *cpl);

#ifdef __cplusplus
}
#endif

#endif
