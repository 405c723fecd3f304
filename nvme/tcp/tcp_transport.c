/*
 * NVMe/TCP transport for the driver core (struct nvme_transport_ops).
 *
 * One controller is one association (NVMe-oF 1.1 3.2): the admin queue's
 * TCP connection, made by a Connect with CNTLID FFFFh (a new dynamic
 * controller), and one connection per I/O queue whose Connect names the
 * CNTLID the admin Connect returned. Registers are properties: the core's
 * reg_read/reg_write become Property Get/Set capsules on the admin queue
 * (one at a time, in order), completed from the admin queue's polling.
 *
 * Queue set-up is a small state machine per queue (nvme_tcp_qpair_step):
 * IDLE -> CONNECTING (non-blocking TCP connect, ICReq/ICResp) ->
 * FABRIC_CONNECT (Connect capsule with its 1024-byte data) -> READY.
 * The admin queue's machine runs from reg_read/reg_write, ctrlr_enable and
 * the admin poll; an I/O queue's set-up runs from the qpair's own polling
 * (-EAGAIN until READY), except a first set-up without async_connect
 * (ust_nvme_ctrlr_alloc_io_qpair's synchronous form, for tools), which
 * polls its socket until READY.
 *
 * The transport keeps one command slot per queue for itself (CID num_reqs,
 * outside the core's CIDs): Connect, Property Get/Set and, for discovery,
 * Get Log Page.
 *
 * Errors: a broken or malformed connection fails the queue. On the admin
 * queue this fails the controller (nvme_ctrlr_fail; a later reset makes a
 * new association); on an I/O queue process_completions returns the error
 * and the core completes what was outstanding. A reset tears the old
 * association down (it was enabled) and builds a new one, as the Linux host
 * does, so that the target never sees I/O queues of two generations.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "ustor/env.h"

#include "../nvme_internal.h"
#include "tcp_internal.h"

#define DEFAULT_TRSVCID "4420"
#define SYNC_POLL_MS 10

static const struct nvme_transport_ops g_tcp_ops;

static struct nvme_tcp_ctrlr *tcp_ctrlr(struct ust_nvme_ctrlr *ctrlr)
{
	return (struct nvme_tcp_ctrlr *)((uint8_t *)ctrlr - offsetof(struct nvme_tcp_ctrlr, ctrlr));
}

static struct nvme_tcp_qpair *tcp_qpair(struct ust_nvme_qpair *qpair)
{
	return (struct nvme_tcp_qpair *)((uint8_t *)qpair - offsetof(struct nvme_tcp_qpair, qpair));
}

static uint64_t setup_timeout_ticks(const struct nvme_tcp_ctrlr *tctrlr)
{
	uint64_t us = tctrlr->ctrlr.opts.admin_timeout_us;

	return nvme_us_to_ticks(us != 0 ? us : 10 * 1000 * 1000);
}

/* ---- completions from the connection ----------------------------------------------- */

static void prop_done(struct nvme_tcp_ctrlr *tctrlr, const struct ust_nvme_cpl *cpl);

static void fabric_done(struct nvme_tcp_qpair *tq, const struct ust_nvme_cpl *cpl)
{
	struct nvme_tcp_ctrlr *tctrlr = tq->tctrlr;
	enum nvme_tcp_fabric_op op = tq->fabric_op;

	tq->fabric_op = NVME_TCP_FABRIC_NONE;
	switch (op) {
	case NVME_TCP_FABRIC_CONNECT:
		if (ust_nvme_cpl_is_error(cpl)) {
			UST_ERRLOG("NVMe/TCP %s qid %u: Connect to %s rejected: %s (sct %u sc %#x, "
				   "DW0 %#x)\n",
				   tq->conn.peer, tq->qpair.id, tctrlr->subnqn,
				   ust_nvme_cpl_status_str(cpl), ust_nvme_cpl_sct(cpl),
				   ust_nvme_cpl_sc(cpl), cpl->cdw0);
			tq->state = NVME_TCP_QPAIR_FAILED;
			tq->error = -ECONNREFUSED;
			return;
		}
		if (tq->qpair.id == 0) {
			/* Connect response DW0 bits 15:0: the controller ID. */
			tctrlr->cntlid = (uint16_t)(cpl->cdw0 & 0xffff);
			tctrlr->assoc_gen = __atomic_load_n(&tctrlr->ctrlr.gen, __ATOMIC_ACQUIRE);
			tctrlr->assoc_enabled = false;
		}
		tq->state = NVME_TCP_QPAIR_READY;
		tq->ever_connected = true;
		UST_DEBUGLOG(nvme, "NVMe/TCP %s qid %u connected (cntlid %u, digests %s/%s)\n",
			     tq->conn.peer, tq->qpair.id, tctrlr->cntlid,
			     tq->conn.hdgst ? "header" : "-", tq->conn.ddgst ? "data" : "-");
		return;
	case NVME_TCP_FABRIC_PROPERTY:
		prop_done(tctrlr, cpl);
		return;
	case NVME_TCP_FABRIC_SYNC:
		tq->fabric_cpl = *cpl;
		tq->fabric_done = true;
		return;
	case NVME_TCP_FABRIC_NONE:
		break;
	}
}

static void conn_complete(void *ctx, struct nvme_tcp_conn *conn, uint16_t cid,
			  const struct ust_nvme_cpl *cpl)
{
	struct nvme_tcp_qpair *tq = ctx;
	struct nvme_request *req;

	if (cid == tq->fabric_slot) {
		fabric_done(tq, cpl);
		return;
	}
	req = nvme_qpair_get_request(&tq->qpair, cid);
	if (req == NULL)
		return; /* the core gave up on it (reset, timeout) */
	nvme_qpair_complete_request(&tq->qpair, req, cpl);
}

/* ---- queue set-up ------------------------------------------------------------------ */

static uint32_t io_max_icd(const struct nvme_tcp_ctrlr *tctrlr)
{
	const struct ust_nvme_ctrlr_data *cd = tctrlr->ctrlr.cdata;

	/*
	 * NVMe-oF: IOCCSZ is the I/O command capsule size in 16-byte units (the
	 * 64-byte SQE included); we put data at offset 0, so ICDOFF must be 0.
	 */
	if (cd == NULL || cd->ioccsz < 4 || cd->icdoff != 0)
		return 0;
	return cd->ioccsz * 16 - 64;
}

static int send_connect(struct nvme_tcp_qpair *tq)
{
	struct nvme_tcp_ctrlr *tctrlr = tq->tctrlr;
	struct ust_nvme_cmd cmd;
	struct iovec iov;
	uint16_t cntlid = tq->qpair.id == 0 ? UST_NVMF_CNTLID_DYNAMIC : tctrlr->cntlid;
	uint8_t cattr = tq->qpair.id == 0 ? 0 : UST_NVMF_CATTR_DISABLE_SQ_FLOW_CONTROL;
	int rc;

	rc = nvme_fabric_connect_data(&tq->connect_data, tctrlr->hostid, cntlid, tctrlr->subnqn,
				      tctrlr->hostnqn);
	if (rc != 0)
		return rc;
	nvme_fabric_connect_cmd(&cmd, tq->qpair.id, tq->qpair.num_entries, cattr,
				tctrlr->ctrlr.opts.keep_alive_timeout_ms);
	iov.iov_base = &tq->connect_data;
	iov.iov_len = sizeof(tq->connect_data);
	tq->fabric_op = NVME_TCP_FABRIC_CONNECT;
	rc = nvme_tcp_conn_submit(&tq->conn, tq->fabric_slot, &cmd, NVME_TCP_XFER_H2C, &iov, 1,
				  sizeof(tq->connect_data));
	if (rc != 0)
		tq->fabric_op = NVME_TCP_FABRIC_NONE;
	return rc;
}

static int qpair_fail(struct nvme_tcp_qpair *tq, int rc)
{
	tq->state = NVME_TCP_QPAIR_FAILED;
	tq->error = rc;
	tq->fabric_op = NVME_TCP_FABRIC_NONE;
	return rc;
}

static int check_deadline(struct nvme_tcp_qpair *tq)
{
	if ((int64_t)(ust_get_ticks() - tq->deadline) < 0)
		return 0;
	UST_ERRLOG("NVMe/TCP %s qid %u: connection set-up timed out (%s)\n", tq->conn.peer,
		   tq->qpair.id, tq->state == NVME_TCP_QPAIR_CONNECTING ? "TCP connect/ICReq"
									 : "Connect command");
	nvme_tcp_conn_close(&tq->conn);
	return qpair_fail(tq, -ETIMEDOUT);
}

int nvme_tcp_qpair_step(struct nvme_tcp_qpair *tq)
{
	struct nvme_tcp_ctrlr *tctrlr = tq->tctrlr;
	const struct ust_nvme_transport_id *trid = &tctrlr->ctrlr.trid;
	int rc;

	switch (tq->state) {
	case NVME_TCP_QPAIR_IDLE:
		tq->conn.params.max_icd = tq->qpair.id == 0 ? NVME_TCP_ADMIN_ICD_MAX
							    : io_max_icd(tctrlr);
		rc = nvme_tcp_conn_connect(&tq->conn, trid->adrfam, trid->traddr,
					   trid->trsvcid[0] ? trid->trsvcid : DEFAULT_TRSVCID);
		if (rc != 0)
			return qpair_fail(tq, rc);
		tq->deadline = ust_get_ticks() + setup_timeout_ticks(tctrlr);
		tq->state = NVME_TCP_QPAIR_CONNECTING;
		/* fall through */
	case NVME_TCP_QPAIR_CONNECTING:
		rc = nvme_tcp_conn_process(&tq->conn, 0);
		if (rc < 0)
			return qpair_fail(tq, rc);
		if (tq->conn.state != NVME_TCP_CONN_READY)
			return check_deadline(tq);
		rc = send_connect(tq);
		if (rc != 0)
			return qpair_fail(tq, rc);
		tq->state = NVME_TCP_QPAIR_FABRIC_CONNECT;
		/* fall through */
	case NVME_TCP_QPAIR_FABRIC_CONNECT:
		rc = nvme_tcp_conn_process(&tq->conn, 0);
		if (rc < 0)
			return qpair_fail(tq, rc);
		if (tq->state == NVME_TCP_QPAIR_FAILED) {
			nvme_tcp_conn_close(&tq->conn);
			return tq->error;
		}
		if (tq->state == NVME_TCP_QPAIR_READY)
			return 0;
		return check_deadline(tq);
	case NVME_TCP_QPAIR_READY:
		return 0;
	case NVME_TCP_QPAIR_FAILED:
		return tq->error;
	}
	return -EINVAL;
}

static void wait_socket(struct nvme_tcp_qpair *tq)
{
	struct pollfd pfd = {.fd = tq->conn.fd, .events = POLLIN};

	if (pfd.fd < 0)
		return;
	if (tq->conn.state == NVME_TCP_CONN_CONNECTING || !TAILQ_EMPTY(&tq->conn.send_queue))
		pfd.events |= POLLOUT;
	poll(&pfd, 1, SYNC_POLL_MS);
}

int nvme_tcp_qpair_connect_sync(struct nvme_tcp_qpair *tq)
{
	int rc;

	for (;;) {
		rc = nvme_tcp_qpair_step(tq);
		if (rc != 0 || tq->state == NVME_TCP_QPAIR_READY)
			return rc;
		wait_socket(tq);
	}
}

int nvme_tcp_qpair_exec_sync(struct nvme_tcp_qpair *tq, const struct ust_nvme_cmd *cmd,
			     enum nvme_tcp_xfer xfer, void *buf, uint32_t len,
			     struct ust_nvme_cpl *cpl)
{
	uint64_t deadline = ust_get_ticks() + setup_timeout_ticks(tq->tctrlr);
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	int rc;

	if (tq->state != NVME_TCP_QPAIR_READY || tq->fabric_op != NVME_TCP_FABRIC_NONE)
		return -EBUSY;
	tq->fabric_op = NVME_TCP_FABRIC_SYNC;
	tq->fabric_done = false;
	rc = nvme_tcp_conn_submit(&tq->conn, tq->fabric_slot, cmd,
				  len == 0 ? NVME_TCP_XFER_NONE : xfer, &iov, len ? 1 : 0, len);
	if (rc != 0) {
		tq->fabric_op = NVME_TCP_FABRIC_NONE;
		return rc;
	}
	while (!tq->fabric_done) {
		rc = nvme_tcp_conn_process(&tq->conn, 0);
		if (rc < 0) {
			tq->fabric_op = NVME_TCP_FABRIC_NONE;
			return rc;
		}
		if (tq->fabric_done)
			break;
		if ((int64_t)(ust_get_ticks() - deadline) >= 0) {
			UST_ERRLOG("NVMe/TCP %s: command opc %#x timed out\n", tq->conn.peer,
				   ust_nvme_cmd_opc(cmd));
			nvme_tcp_conn_fail(&tq->conn, -ETIMEDOUT, "command timed out");
			tq->fabric_op = NVME_TCP_FABRIC_NONE;
			return -ETIMEDOUT;
		}
		wait_socket(tq);
	}
	if (cpl != NULL)
		*cpl = tq->fabric_cpl;
	return ust_nvme_cpl_is_error(&tq->fabric_cpl) ? -EIO : 0;
}

/* ---- queue pair objects ------------------------------------------------------------- */

static struct nvme_tcp_qpair *qpair_alloc(struct nvme_tcp_ctrlr *tctrlr, uint16_t qid,
					  uint32_t entries)
{
	const struct ust_nvme_ctrlr_opts *opts = &tctrlr->ctrlr.opts;
	struct nvme_tcp_conn_params params;
	struct nvme_tcp_qpair *tq;

	if (entries < 2)
		return NULL;
	tq = calloc(1, sizeof(*tq));
	if (tq == NULL)
		return NULL;
	tq->tctrlr = tctrlr;
	/* A queue of n entries holds n - 1 commands (SQ full rule, Base spec 3.3.1.2). */
	if (nvme_qpair_init(&tq->qpair, &tctrlr->ctrlr, qid, entries, entries - 1) != 0) {
		free(tq);
		return NULL;
	}
	memset(&params, 0, sizeof(params));
	params.qid = qid;
	params.hdgst = opts->header_digest;
	params.ddgst = opts->data_digest;
	params.sq_flow_disabled = qid != 0;
	params.num_slots = entries; /* the core's entries - 1, and ours */
	tq->fabric_slot = (uint16_t)(entries - 1);
	if (nvme_tcp_conn_init(&tq->conn, &params, conn_complete, tq) != 0) {
		nvme_qpair_fini(&tq->qpair);
		free(tq);
		return NULL;
	}
	return tq;
}

static void qpair_free(struct nvme_tcp_qpair *tq)
{
	nvme_tcp_conn_fini(&tq->conn);
	nvme_qpair_fini(&tq->qpair);
	free(tq);
}

/* ---- controllers -------------------------------------------------------------------- */

static void fill_hostid(uint8_t id[16])
{
	size_t got = 0;
	ssize_t n;

	while (got < 16) {
		n = getrandom(id + got, 16 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got < 16) {
		/* No entropy source: still unique enough per process and controller. */
		uint64_t t = ust_get_ticks() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)id;

		memcpy(id, &t, sizeof(t));
		memcpy(id + 8, &t, sizeof(t));
	}
	/* RFC 4122 version 4 UUID. */
	id[6] = (uint8_t)((id[6] & 0x0f) | 0x40);
	id[8] = (uint8_t)((id[8] & 0x3f) | 0x80);
}

int nvme_tcp_ctrlr_create(const struct ust_nvme_transport_id *trid,
			  const struct ust_nvme_ctrlr_opts *opts, struct nvme_tcp_ctrlr **out)
{
	struct nvme_tcp_ctrlr *tctrlr;
	int rc;

	if (trid->adrfam != UST_NVME_ADRFAM_IPV4 && trid->adrfam != UST_NVME_ADRFAM_IPV6 &&
	    trid->adrfam != UST_NVME_ADRFAM_NONE) {
		UST_ERRLOG("NVMe/TCP: address family must be IPv4 or IPv6\n");
		return -EINVAL;
	}
	if (trid->subnqn[0] == '\0') {
		UST_ERRLOG("NVMe/TCP %s: a subsystem NQN (subnqn) is required\n", trid->traddr);
		return -EINVAL;
	}
	tctrlr = calloc(1, sizeof(*tctrlr));
	if (tctrlr == NULL)
		return -ENOMEM;
	rc = nvme_ctrlr_init_common(&tctrlr->ctrlr, &g_tcp_ops, trid, opts);
	if (rc != 0) {
		free(tctrlr);
		return rc;
	}
	TAILQ_INIT(&tctrlr->props);
	snprintf(tctrlr->subnqn, sizeof(tctrlr->subnqn), "%s", trid->subnqn);
	fill_hostid(tctrlr->hostid);
	if (opts->hostnqn[0] != '\0')
		snprintf(tctrlr->hostnqn, sizeof(tctrlr->hostnqn), "%s", opts->hostnqn);
	else
		nvme_fabric_default_hostnqn(tctrlr->hostnqn, sizeof(tctrlr->hostnqn),
					    tctrlr->hostid);
	/* KATO travels in the admin Connect (NVMe-oF 1.1 3.3). */
	tctrlr->ctrlr.kato_in_connect = true;
	tctrlr->adminq = qpair_alloc(tctrlr, 0, opts->admin_queue_size);
	if (tctrlr->adminq == NULL) {
		nvme_ctrlr_fini_common(&tctrlr->ctrlr);
		free(tctrlr);
		return -ENOMEM;
	}
	tctrlr->ctrlr.adminq = &tctrlr->adminq->qpair;
	*out = tctrlr;
	return 0;
}

static void drop_props(struct nvme_tcp_ctrlr *tctrlr)
{
	struct nvme_tcp_prop_op *op;

	/*
	 * Waiters are the core's init machine and health check, which abandon
	 * their accesses when the controller fails or resets: no callback.
	 */
	free(tctrlr->prop_inflight);
	tctrlr->prop_inflight = NULL;
	while ((op = TAILQ_FIRST(&tctrlr->props)) != NULL) {
		TAILQ_REMOVE(&tctrlr->props, op, link);
		free(op);
	}
}

void nvme_tcp_ctrlr_free(struct nvme_tcp_ctrlr *tctrlr)
{
	drop_props(tctrlr);
	qpair_free(tctrlr->adminq);
	nvme_ctrlr_fini_common(&tctrlr->ctrlr);
	free(tctrlr);
}

static int tcp_ctrlr_construct(const struct ust_nvme_transport_id *trid,
			       const struct ust_nvme_ctrlr_opts *opts, struct ust_nvme_ctrlr **ctrlr)
{
	struct nvme_tcp_ctrlr *tctrlr;
	int rc;

	rc = nvme_tcp_ctrlr_create(trid, opts, &tctrlr);
	if (rc != 0)
		return rc;
	/* Start connecting now; the first register read waits for it. */
	rc = nvme_tcp_qpair_step(tctrlr->adminq);
	if (rc != 0) {
		nvme_tcp_ctrlr_free(tctrlr);
		return rc;
	}
	*ctrlr = &tctrlr->ctrlr;
	return 0;
}

static void tcp_ctrlr_destruct(struct ust_nvme_ctrlr *ctrlr)
{
	nvme_tcp_ctrlr_free(tcp_ctrlr(ctrlr));
}

/* ---- the admin association ---------------------------------------------------------- */

static bool core_slots_active(const struct nvme_tcp_qpair *tq)
{
	uint32_t i;

	for (i = 0; i < tq->fabric_slot; i++) {
		if (nvme_tcp_conn_slot_active(&tq->conn, (uint16_t)i))
			return true;
	}
	return false;
}

static void admin_teardown(struct nvme_tcp_ctrlr *tctrlr)
{
	struct nvme_tcp_qpair *tq = tctrlr->adminq;

	drop_props(tctrlr);
	nvme_tcp_conn_close(&tq->conn);
	tq->state = NVME_TCP_QPAIR_IDLE;
	tq->fabric_op = NVME_TCP_FABRIC_NONE;
	tctrlr->assoc_enabled = false;
}

/*
 * The core bumps ctrlr->gen when the controller's queues are gone (disabled,
 * failed); it may have completed our admin commands without us. An
 * association that was enabled, or that still has commands of the core in
 * flight, is then torn down: a new one is made on the next access.
 */
static void admin_sync_gen(struct nvme_tcp_ctrlr *tctrlr)
{
	struct nvme_tcp_qpair *tq = tctrlr->adminq;
	uint32_t gen = __atomic_load_n(&tctrlr->ctrlr.gen, __ATOMIC_ACQUIRE);

	if (gen == tctrlr->assoc_gen)
		return;
	tctrlr->assoc_gen = gen;
	if (tq->state == NVME_TCP_QPAIR_FAILED ||
	    (tq->state != NVME_TCP_QPAIR_IDLE && (tctrlr->assoc_enabled || core_slots_active(tq))))
		admin_teardown(tctrlr);
}

static void prop_pump(struct nvme_tcp_ctrlr *tctrlr)
{
	struct nvme_tcp_qpair *tq = tctrlr->adminq;
	struct nvme_tcp_prop_op *op;
	struct ust_nvme_cmd cmd;
	int rc;

	if (tq->state != NVME_TCP_QPAIR_READY || tctrlr->prop_inflight != NULL ||
	    tq->fabric_op != NVME_TCP_FABRIC_NONE)
		return;
	op = TAILQ_FIRST(&tctrlr->props);
	if (op == NULL)
		return;
	if (op->is_set)
		nvme_fabric_prop_set_cmd(&cmd, op->offset, op->size, op->value);
	else
		nvme_fabric_prop_get_cmd(&cmd, op->offset, op->size);
	tq->fabric_op = NVME_TCP_FABRIC_PROPERTY;
	rc = nvme_tcp_conn_submit(&tq->conn, tq->fabric_slot, &cmd, NVME_TCP_XFER_NONE, NULL, 0,
				  0);
	if (rc != 0) {
		/* The connection failed; the poll that notices reports it. */
		tq->fabric_op = NVME_TCP_FABRIC_NONE;
		return;
	}
	TAILQ_REMOVE(&tctrlr->props, op, link);
	op->deadline = ust_get_ticks() + setup_timeout_ticks(tctrlr);
	tctrlr->prop_inflight = op;
}

static void prop_done(struct nvme_tcp_ctrlr *tctrlr, const struct ust_nvme_cpl *cpl)
{
	struct nvme_tcp_prop_op *op = tctrlr->prop_inflight;
	uint64_t value = 0;
	int rc;

	if (op == NULL)
		return;
	tctrlr->prop_inflight = NULL;
	rc = ust_nvme_cpl_to_errno(cpl);
	if (rc != 0)
		UST_ERRLOG("NVMe/TCP %s: Property %s of offset %#x failed: %s\n",
			   tctrlr->adminq->conn.peer, op->is_set ? "Set" : "Get", op->offset,
			   ust_nvme_cpl_status_str(cpl));
	else if (!op->is_set)
		value = nvme_fabric_prop_get_value(cpl, op->size);
	if (rc == 0 && op->is_set && op->offset == UST_NVME_REG_CC && (op->value & UST_NVME_CC_EN))
		tctrlr->assoc_enabled = true;
	/* The callback may queue the next access; it goes out after this one. */
	op->cb(op->cb_arg, rc, value);
	free(op);
	prop_pump(tctrlr);
}

/* Drive the admin association; an error means it is gone (and torn down). */
static int admin_drive(struct nvme_tcp_ctrlr *tctrlr)
{
	struct nvme_tcp_qpair *tq = tctrlr->adminq;
	int rc;

	admin_sync_gen(tctrlr);
	rc = nvme_tcp_qpair_step(tq);
	if (rc == 0 && tq->state == NVME_TCP_QPAIR_READY)
		prop_pump(tctrlr);
	if (rc != 0)
		admin_teardown(tctrlr);
	return rc;
}

static int queue_prop(struct ust_nvme_ctrlr *ctrlr, bool is_set, uint32_t offset, uint32_t size,
		      uint64_t value, nvme_reg_cb cb, void *cb_arg)
{
	struct nvme_tcp_ctrlr *tctrlr = tcp_ctrlr(ctrlr);
	struct nvme_tcp_prop_op *op;
	int rc;

	if (size != 4 && size != 8)
		return -EINVAL;
	rc = admin_drive(tctrlr);
	if (rc != 0)
		return rc;
	op = calloc(1, sizeof(*op));
	if (op == NULL)
		return -ENOMEM;
	op->is_set = is_set;
	op->offset = offset;
	op->size = size;
	op->value = value;
	op->cb = cb;
	op->cb_arg = cb_arg;
	TAILQ_INSERT_TAIL(&tctrlr->props, op, link);
	prop_pump(tctrlr);
	return 0;
}

static int tcp_reg_read(struct ust_nvme_ctrlr *ctrlr, uint32_t offset, uint32_t size,
			nvme_reg_cb cb, void *cb_arg)
{
	return queue_prop(ctrlr, false, offset, size, 0, cb, cb_arg);
}

static int tcp_reg_write(struct ust_nvme_ctrlr *ctrlr, uint32_t offset, uint32_t size,
			 uint64_t value, nvme_reg_cb cb, void *cb_arg)
{
	return queue_prop(ctrlr, true, offset, size, value, cb, cb_arg);
}

static int tcp_ctrlr_enable(struct ust_nvme_ctrlr *ctrlr)
{
	struct nvme_tcp_ctrlr *tctrlr = tcp_ctrlr(ctrlr);
	int rc = admin_drive(tctrlr);

	if (rc != 0)
		return rc;
	return tctrlr->adminq->state == NVME_TCP_QPAIR_READY ? 0 : -EAGAIN;
}

static int32_t admin_process(struct nvme_tcp_qpair *tq, uint32_t max)
{
	struct nvme_tcp_ctrlr *tctrlr = tq->tctrlr;
	struct nvme_tcp_prop_op *op;
	int rc;

	rc = admin_drive(tctrlr);
	if (rc == 0 && tq->state == NVME_TCP_QPAIR_READY) {
		rc = nvme_tcp_conn_process(&tq->conn, max);
		op = tctrlr->prop_inflight;
		if (rc >= 0 && op != NULL && (int64_t)(ust_get_ticks() - op->deadline) >= 0) {
			nvme_tcp_conn_fail(&tq->conn, -ETIMEDOUT, "Property %s of %#x timed out",
					   op->is_set ? "Set" : "Get", op->offset);
			rc = -ETIMEDOUT;
		}
		if (rc < 0)
			admin_teardown(tctrlr);
	}
	if (rc < 0) {
		nvme_ctrlr_fail(&tctrlr->ctrlr, rc, "NVMe/TCP admin queue connection failed");
		return 0;
	}
	return rc;
}

/* ---- transport ops for queue pairs ---------------------------------------------------- */

static uint32_t tcp_max_xfer_size(struct ust_nvme_ctrlr *ctrlr)
{
	/* Bounded by the data elements one command may carry (4 KiB each at worst). */
	return NVME_TCP_MAX_IOV * 4096;
}

static struct ust_nvme_qpair *tcp_qpair_create(struct ust_nvme_ctrlr *ctrlr, uint16_t qid,
					       const struct ust_nvme_io_qpair_opts *opts)
{
	struct nvme_tcp_qpair *tq = qpair_alloc(tcp_ctrlr(ctrlr), qid, opts->io_queue_size);

	return tq != NULL ? &tq->qpair : NULL;
}

static void tcp_qpair_destroy(struct ust_nvme_qpair *qpair)
{
	qpair_free(tcp_qpair(qpair));
}

static int tcp_qpair_connect(struct ust_nvme_qpair *qpair)
{
	struct nvme_tcp_qpair *tq = tcp_qpair(qpair);
	int rc;

	if (tq->state == NVME_TCP_QPAIR_FAILED) {
		nvme_tcp_conn_close(&tq->conn);
		tq->state = NVME_TCP_QPAIR_IDLE;
	}
	/*
	 * The first connect waits (alloc_io_qpair's synchronous contract, as
	 * PCIe's Create I/O SQ), unless the caller asked for async_connect;
	 * otherwise, and for a reconnect after a reset, each call takes one
	 * non-blocking step and reports -EAGAIN until the queue is ready.
	 */
	if (!tq->ever_connected && !qpair->async_connect)
		rc = nvme_tcp_qpair_connect_sync(tq);
	else
		rc = nvme_tcp_qpair_step(tq);
	if (rc != 0) {
		nvme_tcp_conn_close(&tq->conn);
		tq->state = NVME_TCP_QPAIR_IDLE;
		return rc;
	}
	return tq->state == NVME_TCP_QPAIR_READY ? 0 : -EAGAIN;
}

static void tcp_qpair_disconnect(struct ust_nvme_qpair *qpair)
{
	struct nvme_tcp_qpair *tq = tcp_qpair(qpair);

	/* Closing the connection deletes the I/O queue (TCP 3.4, NVMe-oF 1.1 3.6). */
	nvme_tcp_conn_close(&tq->conn);
	tq->state = NVME_TCP_QPAIR_IDLE;
}

static void tcp_qpair_reset(struct ust_nvme_qpair *qpair)
{
	struct nvme_tcp_qpair *tq = tcp_qpair(qpair);

	if (qpair->id == 0) {
		admin_sync_gen(tq->tctrlr);
		return;
	}
	nvme_tcp_conn_close(&tq->conn);
	tq->state = NVME_TCP_QPAIR_IDLE;
}

static int payload_iov(struct nvme_request *req, struct iovec *iov, int *iovcnt)
{
	uint32_t left = req->payload_size, len;
	void *va;
	int n = 0;

	nvme_payload_reset(req);
	while (left > 0) {
		if (n == NVME_TCP_MAX_IOV || nvme_payload_next(req, &va, &len) != 0)
			return -EINVAL;
		if (len > left)
			len = left;
		iov[n].iov_base = va;
		iov[n].iov_len = len;
		n++;
		left -= len;
	}
	*iovcnt = n;
	return 0;
}

static int tcp_qpair_submit(struct ust_nvme_qpair *qpair, struct nvme_request *req)
{
	struct nvme_tcp_qpair *tq = tcp_qpair(qpair);
	struct iovec iov[NVME_TCP_MAX_IOV];
	enum nvme_tcp_xfer xfer = NVME_TCP_XFER_NONE;
	int iovcnt = 0, rc;

	if (tq->state != NVME_TCP_QPAIR_READY || tq->conn.state != NVME_TCP_CONN_READY)
		return -ENXIO;
	if (req->payload_size > 0) {
		switch (nvme_fabric_cmd_xfer(&req->cmd)) {
		case 1:
			xfer = NVME_TCP_XFER_H2C;
			break;
		case 2:
			xfer = NVME_TCP_XFER_C2H;
			break;
		default:
			return -EINVAL; /* no direction, or bidirectional */
		}
		rc = payload_iov(req, iov, &iovcnt);
		if (rc != 0)
			return rc;
	}
	rc = nvme_tcp_conn_submit(&tq->conn, req->cid, &req->cmd, xfer, iov, iovcnt,
				  req->payload_size);
	/* Keep the SQE as sent (CID, SGL) for the core's logs and aborts. */
	return rc;
}

static int32_t tcp_qpair_process_completions(struct ust_nvme_qpair *qpair, uint32_t max)
{
	struct nvme_tcp_qpair *tq = tcp_qpair(qpair);

	if (qpair->id == 0)
		return admin_process(tq, max);
	if (tq->state != NVME_TCP_QPAIR_READY)
		return tq->state == NVME_TCP_QPAIR_FAILED ? tq->error : 0;
	return nvme_tcp_conn_process(&tq->conn, max);
}

static int tcp_scan(const struct ust_nvme_transport_id *trid, nvme_scan_cb cb, void *ctx)
{
	/* A fabrics transport ID names exactly one controller. */
	return cb(ctx, trid);
}

static const struct nvme_transport_ops g_tcp_ops = {
	.name = "TCP",
	.type = UST_NVME_TRANSPORT_TCP,
	.scan = tcp_scan,
	.ctrlr_construct = tcp_ctrlr_construct,
	.ctrlr_destruct = tcp_ctrlr_destruct,
	.ctrlr_enable = tcp_ctrlr_enable,
	.reg_read = tcp_reg_read,
	.reg_write = tcp_reg_write,
	.max_xfer_size = tcp_max_xfer_size,
	.qpair_create = tcp_qpair_create,
	.qpair_destroy = tcp_qpair_destroy,
	.qpair_connect = tcp_qpair_connect,
	.qpair_disconnect = tcp_qpair_disconnect,
	.qpair_reset = tcp_qpair_reset,
	.qpair_submit = tcp_qpair_submit,
	.qpair_process_completions = tcp_qpair_process_completions,
	.qpair_flush = NULL,
};

__attribute__((constructor)) static void nvme_tcp_register(void)
{
	nvme_transport_register(&g_tcp_ops);
}
