/*
 * NVMe/TCP initiator, private header: the PDU formats of the NVMe/TCP
 * Transport Specification (revision 1.0a; "TCP 3.6.2.x" below names its
 * PDU sections), the connection (one TCP stream carrying one queue pair),
 * and the transport's controller and queue pair objects.
 *
 * Layers:
 *   tcp_pdu.c        PDU encode/decode and checks, CRC32C digests
 *   tcp_conn.c       one connection: non-blocking socket, ICReq/ICResp, the
 *                    send queue (partial writev) and the receive state
 *                    machine, command slots, R2T/H2CData and C2HData
 *   tcp_transport.c  struct nvme_transport_ops: controllers, queue pairs,
 *                    Connect, Property Get/Set for the core's registers
 *   tcp_discovery.c  ust_nvme_discover(): the Discovery Log over an admin queue
 *
 * A connection is used by one thread at a time (the qpair's owner; for the
 * admin queue, whoever holds the controller lock). Nothing here blocks except
 * the synchronous helpers named so (first I/O qpair connect, discovery).
 */
#ifndef USTOR_NVME_TCP_INTERNAL_H
#define USTOR_NVME_TCP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

#include "ustor/nvme.h"

#include "../nvme_internal.h"

/* ---- PDU formats (TCP 3.6.2) -------------------------------------------------- */

/* PDU-Type values (TCP 3.6.2.1, Figure 20). */
#define NVME_TCP_PDU_TYPE_ICREQ 0x00
#define NVME_TCP_PDU_TYPE_ICRESP 0x01
#define NVME_TCP_PDU_TYPE_H2C_TERM_REQ 0x02
#define NVME_TCP_PDU_TYPE_C2H_TERM_REQ 0x03
#define NVME_TCP_PDU_TYPE_CAPSULE_CMD 0x04
#define NVME_TCP_PDU_TYPE_CAPSULE_RESP 0x05
#define NVME_TCP_PDU_TYPE_H2C_DATA 0x06
#define NVME_TCP_PDU_TYPE_C2H_DATA 0x07
#define NVME_TCP_PDU_TYPE_R2T 0x09

/* CH FLAGS (TCP 3.6.2.1): bits 0 and 1 for all types, 2 and 3 per type. */
#define NVME_TCP_CH_FLAGS_HDGSTF (1u << 0)
#define NVME_TCP_CH_FLAGS_DDGSTF (1u << 1)
#define NVME_TCP_H2C_DATA_FLAGS_LAST_PDU (1u << 2)
#define NVME_TCP_C2H_DATA_FLAGS_LAST_PDU (1u << 2)
#define NVME_TCP_C2H_DATA_FLAGS_SUCCESS (1u << 3)

/* ICReq/ICResp DGST field. */
#define NVME_TCP_DGST_HDGST_ENABLE (1u << 0)
#define NVME_TCP_DGST_DDGST_ENABLE (1u << 1)

#define NVME_TCP_DIGEST_LEN 4
#define NVME_TCP_PFV_1_0 0
/* TCP 3.6.2.3: MAXH2CDATA is a multiple of dwords, no less than 4096. */
#define NVME_TCP_MIN_MAXH2CDATA 4096
/* TCP 2.1 / 3.2: the admin queue carries up to 8 KiB of in-capsule data. */
#define NVME_TCP_ADMIN_ICD_MAX 8192
/* C2HTermReq: the header, then up to 128 bytes of the offending PDU header. */
#define NVME_TCP_TERM_REQ_MAX_PLEN 152

/* Fatal Error Status of H2CTermReq/C2HTermReq (TCP 3.6.2.4/3.6.2.5). */
#define NVME_TCP_FES_INVALID_PDU_HDR 0x01
#define NVME_TCP_FES_PDU_SEQ_ERR 0x02
#define NVME_TCP_FES_HDR_DIGEST_ERR 0x03
#define NVME_TCP_FES_DATA_OUT_OF_RANGE 0x04
#define NVME_TCP_FES_DATA_LIMIT_EXCEEDED 0x05
#define NVME_TCP_FES_UNSUPPORTED_PARAM 0x06

/* Common Header: 8 bytes. */
struct nvme_tcp_ch {
	uint8_t pdu_type;
	uint8_t flags;
	uint8_t hlen; /* PDU header length, without the header digest */
	uint8_t pdo;  /* PDU data offset from the start of the PDU; 0: no data */
	uint32_t plen; /* total PDU length, digests and padding included */
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_tcp_ch) == 8, "CH is 8 bytes");

/* ICReq (TCP 3.6.2.2). */
struct nvme_tcp_icreq {
	struct nvme_tcp_ch ch;
	uint16_t pfv;
	uint8_t hpda; /* host PDU data alignment, (HPDA + 1) * 4 bytes */
	uint8_t dgst;
	uint32_t maxr2t; /* 0's based outstanding R2Ts per command */
	uint8_t reserved16[112];
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_tcp_icreq) == 128, "ICReq is 128 bytes");

/* ICResp (TCP 3.6.2.3). */
struct nvme_tcp_icresp {
	struct nvme_tcp_ch ch;
	uint16_t pfv;
	uint8_t cpda; /* controller PDU data alignment, (CPDA + 1) * 4 bytes */
	uint8_t dgst;
	uint32_t maxh2cdata;
	uint8_t reserved16[112];
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_tcp_icresp) == 128, "ICResp is 128 bytes");

/* H2CTermReq and C2HTermReq (TCP 3.6.2.4, 3.6.2.5); FEI is unaligned. */
struct nvme_tcp_term_req {
	struct nvme_tcp_ch ch;
	uint16_t fes;
	uint32_t fei;
	uint8_t reserved14[10];
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_tcp_term_req) == 24, "TermReq header is 24 bytes");

/* CapsuleCmd (TCP 3.6.2.6): the SQE, then in-capsule data at PDO. */
struct nvme_tcp_capsule_cmd {
	struct nvme_tcp_ch ch;
	struct ust_nvme_cmd ccsqe;
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_tcp_capsule_cmd) == 72, "CapsuleCmd header is 72 bytes");

/* CapsuleResp (TCP 3.6.2.7). */
struct nvme_tcp_capsule_resp {
	struct nvme_tcp_ch ch;
	struct ust_nvme_cpl rccqe;
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_tcp_capsule_resp) == 24, "CapsuleResp is 24 bytes");

/* H2CData (TCP 3.6.2.8). */
struct nvme_tcp_h2c_data {
	struct nvme_tcp_ch ch;
	uint16_t cccid;
	uint16_t ttag;
	uint32_t datao;
	uint32_t datal;
	uint8_t reserved20[4];
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_tcp_h2c_data) == 24, "H2CData header is 24 bytes");

/* C2HData (TCP 3.6.2.9). */
struct nvme_tcp_c2h_data {
	struct nvme_tcp_ch ch;
	uint16_t cccid;
	uint8_t reserved10[2];
	uint32_t datao;
	uint32_t datal;
	uint8_t reserved20[4];
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_tcp_c2h_data) == 24, "C2HData header is 24 bytes");

/* R2T (TCP 3.6.2.10). */
struct nvme_tcp_r2t {
	struct nvme_tcp_ch ch;
	uint16_t cccid;
	uint16_t ttag;
	uint32_t r2to;
	uint32_t r2tl;
	uint8_t reserved20[4];
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_tcp_r2t) == 24, "R2T is 24 bytes");

/* ---- PDU helpers (tcp_pdu.c) --------------------------------------------------- */

/* CRC32C (Castagnoli) as NVMe/TCP digests use it: init all ones, result inverted. */
uint32_t nvme_tcp_crc32c(const void *buf, size_t len);
/* Incremental form: start with NVME_TCP_CRC32C_INIT, finish with nvme_tcp_crc32c_final. */
#define NVME_TCP_CRC32C_INIT 0xffffffffu
uint32_t nvme_tcp_crc32c_update(uint32_t crc, const void *buf, size_t len);
uint32_t nvme_tcp_crc32c_final(uint32_t crc);
/* A digest as it is on the wire (little endian). */
void nvme_tcp_put_digest(uint8_t *dst, uint32_t crc);
uint32_t nvme_tcp_get_digest(const uint8_t *src);

const char *nvme_tcp_pdu_type_str(uint8_t pdu_type);
const char *nvme_tcp_fes_str(uint16_t fes);

/* The fixed header length (HLEN) of a PDU type; 0 for an unknown type. */
uint8_t nvme_tcp_pdu_hlen(uint8_t pdu_type);

/* Host-order view of a received PDU header (decoded at one place). */
struct nvme_tcp_rx_hdr {
	uint8_t pdu_type;
	uint8_t flags;
	uint8_t hlen;
	uint8_t pdo;
	uint32_t plen;
	/* per type */
	uint16_t cccid;      /* C2HData, R2T */
	uint16_t ttag;       /* R2T */
	uint32_t offset;     /* C2HData DATAO, R2T R2TO */
	uint32_t length;     /* C2HData DATAL, R2T R2TL */
	struct ust_nvme_cpl cpl; /* CapsuleResp */
	uint16_t pfv;        /* ICResp */
	uint8_t cpda;        /* ICResp */
	uint8_t dgst;        /* ICResp */
	uint32_t maxh2cdata; /* ICResp */
	uint16_t fes;        /* C2HTermReq */
	uint32_t fei;        /* C2HTermReq */
};

/* Decode the CH (8 bytes) into hdr; per-type fields once the whole header is in. */
void nvme_tcp_decode_ch(const uint8_t *buf, struct nvme_tcp_rx_hdr *hdr);
void nvme_tcp_decode_psh(const uint8_t *buf, struct nvme_tcp_rx_hdr *hdr);

/* Builders: write the PDU header into buf; return its length (HLEN). */
uint32_t nvme_tcp_build_icreq(uint8_t *buf, uint8_t hpda, uint8_t dgst, uint32_t maxr2t);
uint32_t nvme_tcp_build_capsule_cmd(uint8_t *buf, const struct ust_nvme_cmd *cmd, uint8_t flags,
				    uint8_t pdo, uint32_t plen);
uint32_t nvme_tcp_build_h2c_data(uint8_t *buf, uint16_t cccid, uint16_t ttag, uint32_t datao,
				 uint32_t datal, uint8_t flags, uint8_t pdo, uint32_t plen);
/* Used by tests (a fake target) and for completeness: controller-side PDUs. */
uint32_t nvme_tcp_build_icresp(uint8_t *buf, uint8_t cpda, uint8_t dgst, uint32_t maxh2cdata);
uint32_t nvme_tcp_build_capsule_resp(uint8_t *buf, const struct ust_nvme_cpl *cpl, uint8_t flags,
				     uint32_t plen);
uint32_t nvme_tcp_build_c2h_data(uint8_t *buf, uint16_t cccid, uint32_t datao, uint32_t datal,
				 uint8_t flags, uint8_t pdo, uint32_t plen);
uint32_t nvme_tcp_build_r2t(uint8_t *buf, uint16_t cccid, uint16_t ttag, uint32_t r2to,
			    uint32_t r2tl, uint8_t flags, uint32_t plen);
uint32_t nvme_tcp_build_term_req(uint8_t *buf, uint8_t pdu_type, uint16_t fes, uint32_t fei,
				 uint32_t plen);

/* Round len up to a multiple of align (a power of two or any positive value). */
static inline uint32_t nvme_tcp_align(uint32_t len, uint32_t align)
{
	return (len + align - 1) / align * align;
}

/* ---- connection (tcp_conn.c) --------------------------------------------------- */

enum nvme_tcp_conn_state {
	NVME_TCP_CONN_IDLE,       /* no socket */
	NVME_TCP_CONN_CONNECTING, /* TCP connect in progress */
	NVME_TCP_CONN_IC_WAIT,    /* ICReq queued, waiting for ICResp */
	NVME_TCP_CONN_READY,      /* capsules may flow */
	NVME_TCP_CONN_FAILED,     /* closed after an error; see conn->error */
};

enum nvme_tcp_recv_state {
	NVME_TCP_RECV_CH,    /* the 8-byte common header */
	NVME_TCP_RECV_PSH,   /* the rest of the header and its digest */
	NVME_TCP_RECV_PAD,   /* padding up to PDO */
	NVME_TCP_RECV_DATA,  /* PDU data into the command's buffer */
	NVME_TCP_RECV_DDGST, /* the data digest */
};

enum nvme_tcp_xfer {
	NVME_TCP_XFER_NONE,
	NVME_TCP_XFER_H2C,
	NVME_TCP_XFER_C2H,
};

/* Room for the largest header we send: 72 + digest + padding to 128-byte PDO. */
#define NVME_TCP_TX_HDR_MAX 128
/* Largest header we receive: ICResp (128, no digest) or TermReq with its data. */
#define NVME_TCP_RX_HDR_MAX 160
/* Data elements of one command. */
#define NVME_TCP_MAX_IOV 64

struct nvme_tcp_slot;

/* One PDU on the send queue: header bytes, a range of a slot's data, a digest. */
struct nvme_tcp_send_pdu {
	uint8_t hdr[NVME_TCP_TX_HDR_MAX];
	uint32_t hdr_len;   /* header, header digest and padding up to PDO */
	struct nvme_tcp_slot *slot; /* data source, NULL if no data */
	uint32_t data_off;
	uint32_t data_len;
	uint8_t ddgst[NVME_TCP_DIGEST_LEN];
	uint32_t ddgst_len;
	uint32_t total;     /* bytes of the PDU */
	uint32_t sent;      /* bytes already written */
	bool queued;
	bool h2c_data;      /* an H2CData PDU (R2T bookkeeping on completion) */
	TAILQ_ENTRY(nvme_tcp_send_pdu) link;
};

/* A command in flight; index == CID. */
struct nvme_tcp_slot {
	bool active;
	enum nvme_tcp_xfer xfer;
	uint16_t cid;
	uint32_t len;          /* data bytes of the command */
	struct iovec iov[NVME_TCP_MAX_IOV];
	int iovcnt;
	uint32_t c2h_received; /* C2HData bytes placed, in order */
	uint32_t h2c_sent;     /* H2C bytes queued (in-capsule or H2CData) */
	bool r2t_active;       /* an R2T is being served */
	uint16_t ttag;
	uint32_t r2t_end;      /* R2TO + R2TL of the R2T being served */
	struct nvme_tcp_send_pdu pdu;
};

struct nvme_tcp_conn;

/* Called for every completed command (CapsuleResp or C2HData with SUCCESS). */
typedef void (*nvme_tcp_complete_fn)(void *ctx, struct nvme_tcp_conn *conn, uint16_t cid,
				     const struct ust_nvme_cpl *cpl);

struct nvme_tcp_conn_params {
	uint16_t qid;          /* for messages and CQE.SQID of implied completions */
	bool hdgst;            /* ask for header digests */
	bool ddgst;            /* ask for data digests */
	bool sq_flow_disabled; /* Connect set CATTR "disable SQ flow control" */
	uint32_t max_icd;      /* in-capsule data limit (0: none) */
	uint32_t num_slots;    /* CIDs 0..num_slots-1 */
};

struct nvme_tcp_conn {
	int fd;
	enum nvme_tcp_conn_state state;
	int error;            /* why it failed (negative errno) */
	char peer[UST_NVME_TRADDR_MAX_LEN + UST_NVME_TRSVCID_MAX_LEN + 4];
	struct nvme_tcp_conn_params params;
	nvme_tcp_complete_fn complete;
	void *complete_ctx;

	/* negotiated by ICReq/ICResp */
	bool hdgst;
	bool ddgst;
	uint32_t cpda_align;  /* bytes */
	uint32_t maxh2cdata;

	struct nvme_tcp_slot *slots;
	uint32_t num_slots;

	/* send side */
	TAILQ_HEAD(, nvme_tcp_send_pdu) send_queue;
	struct nvme_tcp_send_pdu ctrl_pdu; /* ICReq */

	/* receive side */
	enum nvme_tcp_recv_state rstate;
	uint8_t rx_hdr[NVME_TCP_RX_HDR_MAX];
	uint32_t rx_have;     /* bytes of the current part already in */
	uint32_t rx_need;     /* bytes of the current part */
	struct nvme_tcp_rx_hdr rx;
	struct nvme_tcp_slot *rx_slot; /* C2HData destination */
	uint32_t rx_data_off; /* where the current PDU's data goes */
	uint32_t rx_crc;      /* running data digest */
	uint8_t *rx_buf;      /* bytes read from the socket, not yet parsed */
	uint32_t rx_buf_size;
	uint32_t rx_buf_head;
	uint32_t rx_buf_tail;
	uint32_t completions; /* completions during one process call */
	uint32_t max_completions;
};

int nvme_tcp_conn_init(struct nvme_tcp_conn *conn, const struct nvme_tcp_conn_params *params,
		       nvme_tcp_complete_fn complete, void *ctx);
void nvme_tcp_conn_fini(struct nvme_tcp_conn *conn);
/*
 * Start a non-blocking connect to a numeric address (no name resolution on
 * the caller's thread); progress in nvme_tcp_conn_process().
 */
int nvme_tcp_conn_connect(struct nvme_tcp_conn *conn, enum ust_nvme_adrfam adrfam,
			  const char *traddr, const char *trsvcid);
/* Use an already connected (or connecting) stream socket; for tests. */
void nvme_tcp_conn_attach_fd(struct nvme_tcp_conn *conn, int fd);
/* Close the socket and forget every slot; ready for another connect. */
void nvme_tcp_conn_close(struct nvme_tcp_conn *conn);
/* Fail the connection: logs why, closes the socket; slots are left to the owner. */
void nvme_tcp_conn_fail(struct nvme_tcp_conn *conn, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Move bytes: finish connecting, send what is queued, read and handle what
 * arrived (calling complete for up to max completions; 0: no limit). Returns
 * the number of completions or conn->error once failed.
 */
int nvme_tcp_conn_process(struct nvme_tcp_conn *conn, uint32_t max);
/* Handle len received bytes (what process does after recv); for tests. */
int nvme_tcp_conn_rx_feed(struct nvme_tcp_conn *conn, const uint8_t *buf, uint32_t len);
/* Write what the send queue holds; 0, or the connection's error. */
int nvme_tcp_conn_flush(struct nvme_tcp_conn *conn);

/*
 * Send cmd (CID set to slot) with len bytes of data in iov, in the direction
 * xfer: in-capsule when it fits max_icd, else by R2T (host to controller)
 * or C2HData (controller to host). -EBUSY slot in use, -ENOTCONN not ready,
 * -EINVAL bad data description.
 */
int nvme_tcp_conn_submit(struct nvme_tcp_conn *conn, uint16_t slot, const struct ust_nvme_cmd *cmd,
			 enum nvme_tcp_xfer xfer, const struct iovec *iov, int iovcnt, uint32_t len);
/* Forget a slot (its owner completed it otherwise). */
void nvme_tcp_conn_release_slot(struct nvme_tcp_conn *conn, uint16_t slot);
bool nvme_tcp_conn_slot_active(const struct nvme_tcp_conn *conn, uint16_t slot);

/* ---- transport objects (tcp_transport.c) ----------------------------------------- */

struct nvme_tcp_ctrlr;

enum nvme_tcp_qpair_state {
	NVME_TCP_QPAIR_IDLE,           /* no connection */
	NVME_TCP_QPAIR_CONNECTING,     /* TCP connect and ICReq/ICResp */
	NVME_TCP_QPAIR_FABRIC_CONNECT, /* Connect command sent */
	NVME_TCP_QPAIR_READY,
	NVME_TCP_QPAIR_FAILED,         /* see error; back to IDLE by a reset */
};

/* What the transport's own command slot (CID num_reqs) carries. */
enum nvme_tcp_fabric_op {
	NVME_TCP_FABRIC_NONE,
	NVME_TCP_FABRIC_CONNECT,
	NVME_TCP_FABRIC_PROPERTY,
	NVME_TCP_FABRIC_SYNC, /* a command run by nvme_tcp_qpair_exec_sync() */
};

struct nvme_tcp_qpair {
	struct ust_nvme_qpair qpair;
	struct nvme_tcp_ctrlr *tctrlr;
	struct nvme_tcp_conn conn;
	enum nvme_tcp_qpair_state state;
	int error;
	bool ever_connected;
	uint64_t deadline; /* ticks: connection set-up must be done by then */
	uint16_t fabric_slot;
	enum nvme_tcp_fabric_op fabric_op;
	bool fabric_done;
	struct ust_nvme_cpl fabric_cpl;
	struct ust_nvmf_connect_data connect_data;
};

/* A Property Get/Set standing in for a register access. */
struct nvme_tcp_prop_op {
	TAILQ_ENTRY(nvme_tcp_prop_op) link;
	bool is_set;
	uint32_t offset;
	uint32_t size;
	uint64_t value;
	uint64_t deadline;
	void (*cb)(void *cb_arg, int rc, uint64_t value);
	void *cb_arg;
};

struct nvme_tcp_ctrlr {
	struct ust_nvme_ctrlr ctrlr;
	struct nvme_tcp_qpair *adminq;
	char subnqn[UST_NVME_NQN_MAX_LEN + 1];
	char hostnqn[UST_NVME_NQN_MAX_LEN + 1];
	uint8_t hostid[16];
	uint16_t cntlid;     /* of the current association */
	uint32_t assoc_gen;  /* ctrlr->gen when the admin association was made */
	bool assoc_enabled;  /* CC.EN was set to 1 on this association */
	TAILQ_HEAD(, nvme_tcp_prop_op) props;
	struct nvme_tcp_prop_op *prop_inflight;
};

int nvme_tcp_ctrlr_create(const struct ust_nvme_transport_id *trid,
			  const struct ust_nvme_ctrlr_opts *opts, struct nvme_tcp_ctrlr **out);
void nvme_tcp_ctrlr_free(struct nvme_tcp_ctrlr *tctrlr);
/* Advance a queue's connection set-up; 0 (READY or still going) or an error. */
int nvme_tcp_qpair_step(struct nvme_tcp_qpair *tq);
/* Run the set-up to READY, polling the socket (blocking; tools, first connect). */
int nvme_tcp_qpair_connect_sync(struct nvme_tcp_qpair *tq);
/* Run one command on the transport's slot and wait (blocking; tools). */
int nvme_tcp_qpair_exec_sync(struct nvme_tcp_qpair *tq, const struct ust_nvme_cmd *cmd,
			     enum nvme_tcp_xfer xfer, void *buf, uint32_t len,
			     struct ust_nvme_cpl *cpl);

#endif
