/*
 * Queue pairs, transport-independent part: request pools (one request per
 * queue slot, index == CID, so a full queue is -ENOMEM and nothing waits
 * hidden), the outstanding list in submission order, completion dispatch,
 * timeouts (Abort first, then a controller reset), and an I/O qpair's
 * reaction to its controller losing the queues: outstanding requests are
 * completed aborted and the qpair recreates its queues on its own thread
 * once the controller is ready again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"

#include "nvme_internal.h"

int nvme_qpair_init(struct ust_nvme_qpair *qpair, struct ust_nvme_ctrlr *ctrlr, uint16_t id,
		    uint32_t num_entries, uint32_t num_reqs)
{
	uint32_t i;

	qpair->ctrlr = ctrlr;
	qpair->id = id;
	qpair->num_entries = num_entries;
	qpair->num_reqs = num_reqs;
	qpair->num_outstanding = 0;
	qpair->state = NVME_QPAIR_DISCONNECTED;
	TAILQ_INIT(&qpair->free_reqs);
	TAILQ_INIT(&qpair->outstanding);
	/* DMA memory: short DSM range lists are sent from inside the request. */
	qpair->reqs = ust_dma_zmalloc(sizeof(*qpair->reqs) * num_reqs, 64);
	if (qpair->reqs == NULL)
		return -ENOMEM;
	for (i = 0; i < num_reqs; i++) {
		qpair->reqs[i].cid = (uint16_t)i;
		qpair->reqs[i].qpair = qpair;
		TAILQ_INSERT_TAIL(&qpair->free_reqs, &qpair->reqs[i], link);
	}
	return 0;
}

void nvme_qpair_fini(struct ust_nvme_qpair *qpair)
{
	ust_dma_free(qpair->reqs);
	qpair->reqs = NULL;
}

struct nvme_request *nvme_qpair_alloc_request(struct ust_nvme_qpair *qpair, ust_nvme_cmd_cb cb,
					      void *cb_arg)
{
	struct nvme_request *req = TAILQ_FIRST(&qpair->free_reqs);

	if (req == NULL)
		return NULL;
	TAILQ_REMOVE(&qpair->free_reqs, req, link);
	memset(&req->cmd, 0, sizeof(req->cmd));
	memset(&req->payload, 0, sizeof(req->payload));
	req->payload.type = NVME_PAYLOAD_NONE;
	req->payload_size = 0;
	req->flags = 0;
	req->cb_fn = cb;
	req->cb_arg = cb_arg;
	req->dsm_buf = NULL;
	return req;
}

void nvme_qpair_free_request(struct ust_nvme_qpair *qpair, struct nvme_request *req)
{
	if (req->dsm_buf != NULL) {
		ust_dma_free(req->dsm_buf);
		req->dsm_buf = NULL;
	}
	TAILQ_INSERT_HEAD(&qpair->free_reqs, req, link);
}

int nvme_qpair_submit_request(struct ust_nvme_qpair *qpair, struct nvme_request *req)
{
	const struct nvme_transport_ops *ops = qpair->ctrlr->ops;
	int rc;

	if (qpair->state != NVME_QPAIR_CONNECTED) {
		nvme_qpair_free_request(qpair, req);
		/* Disconnected: a reset is running, try again after it. */
		return qpair->state == NVME_QPAIR_FAILED ||
				       __atomic_load_n(&qpair->ctrlr->failed, __ATOMIC_ACQUIRE)
			       ? -ENXIO
			       : -EAGAIN;
	}
	ust_nvme_cmd_set_cid(&req->cmd, req->cid);
	req->submit_tick = ust_get_ticks();
	req->flags |= NVME_REQ_OUTSTANDING;
	TAILQ_INSERT_TAIL(&qpair->outstanding, req, link);
	qpair->num_outstanding++;
	rc = ops->qpair_submit(qpair, req);
	if (rc != 0) {
		TAILQ_REMOVE(&qpair->outstanding, req, link);
		qpair->num_outstanding--;
		req->flags &= (uint16_t)~NVME_REQ_OUTSTANDING;
		nvme_qpair_free_request(qpair, req);
	}
	return rc;
}

struct nvme_request *nvme_qpair_get_request(struct ust_nvme_qpair *qpair, uint16_t cid)
{
	struct nvme_request *req;

	if (cid >= qpair->num_reqs)
		return NULL;
	req = &qpair->reqs[cid];
	/* A CQE for a request that is not outstanding is bogus (or late). */
	return (req->flags & NVME_REQ_OUTSTANDING) ? req : NULL;
}

void nvme_qpair_complete_request(struct ust_nvme_qpair *qpair, struct nvme_request *req,
				 const struct ust_nvme_cpl *cpl)
{
	ust_nvme_cmd_cb cb = req->cb_fn;
	void *cb_arg = req->cb_arg;

	if (ust_nvme_cpl_is_error(cpl) && !(req->flags & NVME_REQ_AER))
		UST_DEBUGLOG(nvme, "qpair %u cid %u opc %02x: %s (sct %u sc %02x)\n", qpair->id,
			     req->cid, ust_nvme_cmd_opc(&req->cmd), ust_nvme_cpl_status_str(cpl),
			     ust_nvme_cpl_sct(cpl), ust_nvme_cpl_sc(cpl));
	TAILQ_REMOVE(&qpair->outstanding, req, link);
	qpair->num_outstanding--;
	req->flags &= (uint16_t)~NVME_REQ_OUTSTANDING;
	/* Free first: the callback may submit again into this slot. */
	nvme_qpair_free_request(qpair, req);
	if (cb != NULL)
		cb(cb_arg, cpl);
}

void nvme_qpair_abort_outstanding(struct ust_nvme_qpair *qpair, bool dnr)
{
	struct nvme_request *req;
	struct ust_nvme_cpl cpl;

	/* Callbacks may submit new requests; those fail (the qpair is down). */
	while ((req = TAILQ_FIRST(&qpair->outstanding)) != NULL) {
		nvme_cpl_set_status(&cpl, UST_NVME_SCT_GENERIC, UST_NVME_SC_ABORTED_SQ_DELETION,
				    dnr);
		cpl.sqid = qpair->id;
		cpl.cid = req->cid;
		nvme_qpair_complete_request(qpair, req, &cpl);
	}
}

/* ---- timeouts --------------------------------------------------------------- */

static void abort_cmd_done(void *cb_arg, const struct ust_nvme_cpl *cpl)
{
	struct ust_nvme_ctrlr *ctrlr = cb_arg;

	/* Base spec 5.1: DW0 bit 0 set means the command was not aborted. */
	if (ust_nvme_cpl_is_error(cpl) || (cpl->cdw0 & 1))
		nvme_ctrlr_request_reset(ctrlr, "Abort of a timed-out command failed");
}

static void send_abort(struct ust_nvme_qpair *qpair, struct nvme_request *req)
{
	struct ust_nvme_ctrlr *ctrlr = qpair->ctrlr;
	struct nvme_request *abort_req;
	int rc = -ENOMEM;

	UST_WARNLOG("NVMe %s: command cid %u opc %02x on qpair %u timed out; aborting it\n",
		    ctrlr->trid.traddr, req->cid, ust_nvme_cmd_opc(&req->cmd), qpair->id);
	pthread_mutex_lock(&ctrlr->lock);
	abort_req = nvme_ctrlr_alloc_admin_request(ctrlr, abort_cmd_done, ctrlr);
	if (abort_req != NULL) {
		abort_req->flags |= NVME_REQ_INTERNAL;
		nvme_cmd_abort(&abort_req->cmd, qpair->id, req->cid);
		rc = nvme_ctrlr_submit_admin(ctrlr, abort_req);
	}
	pthread_mutex_unlock(&ctrlr->lock);
	if (rc != 0)
		nvme_ctrlr_request_reset(ctrlr, "cannot send Abort for a timed-out command");
}

void nvme_qpair_check_timeouts(struct ust_nvme_qpair *qpair, uint64_t now)
{
	const struct ust_nvme_ctrlr_opts *opts = &qpair->ctrlr->opts;
	uint64_t timeout_us = qpair->id == 0 ? opts->admin_timeout_us : opts->io_timeout_us;
	struct nvme_request *req;
	uint64_t ticks;

	if (timeout_us == 0 || qpair->num_outstanding == 0)
		return;
	ticks = timeout_us * ust_get_ticks_hz() / 1000000;
	TAILQ_FOREACH(req, &qpair->outstanding, link) {
		if (req->flags & NVME_REQ_AER)
			continue;
		if (now - req->submit_tick < ticks) {
			/* Requests without an Abort are in submission order. */
			if (req->flags & NVME_REQ_ABORT_SENT)
				continue;
			break;
		}
		if (qpair->id == 0 || (req->flags & NVME_REQ_ABORT_SENT)) {
			nvme_ctrlr_request_reset(qpair->ctrlr,
						 qpair->id == 0 ? "admin command timed out"
								: "aborted command did not complete");
			return;
		}
		req->flags |= NVME_REQ_ABORT_SENT;
		req->submit_tick = now; /* the Abort gets one more timeout period */
		send_abort(qpair, req);
		return; /* the admin queue may have been used: look again next time */
	}
}

/* ---- I/O qpairs ---------------------------------------------------------------- */

/*
 * Whether the controller failed since this queue was made: then its
 * requests end with DNR set (errors), also when a reset (a reconnect) has
 * already cleared the failure by the time this thread looks.
 */
static bool lost_to_failure(const struct ust_nvme_qpair *qpair)
{
	const struct ust_nvme_ctrlr *ctrlr = qpair->ctrlr;

	return __atomic_load_n(&ctrlr->failed, __ATOMIC_ACQUIRE) ||
	       (int32_t)(__atomic_load_n(&ctrlr->fail_gen, __ATOMIC_ACQUIRE) - qpair->ctrlr_gen) > 0;
}

/*
 * The controller lost this queue (reset, failure): finish what was
 * outstanding, then reconnect once the controller is ready again.
 * Returns 0 (connected, or waiting for the reset) or -ENXIO.
 */
static int qpair_handle_lost_queue(struct ust_nvme_qpair *qpair)
{
	struct ust_nvme_ctrlr *ctrlr = qpair->ctrlr;
	uint32_t gen;
	int rc, state;

	if (qpair->state == NVME_QPAIR_CONNECTED) {
		qpair->state = NVME_QPAIR_DISCONNECTED;
		nvme_qpair_abort_outstanding(qpair, lost_to_failure(qpair));
		ctrlr->ops->qpair_reset(qpair);
	}
	if (__atomic_load_n(&ctrlr->failed, __ATOMIC_ACQUIRE)) {
		qpair->state = NVME_QPAIR_FAILED;
		return -ENXIO;
	}
	gen = __atomic_load_n(&ctrlr->gen, __ATOMIC_ACQUIRE);
	/* Failed to reconnect in this generation: wait for the next reset. */
	if (qpair->state == NVME_QPAIR_FAILED && qpair->ctrlr_gen == gen)
		return -ENXIO;
	if (nvme_ctrlr_get_state(ctrlr) != NVME_CTRLR_STATE_READY)
		return 0;
	pthread_mutex_lock(&ctrlr->lock);
	/* Checked again under the lock: a reset takes it to begin. */
	gen = __atomic_load_n(&ctrlr->gen, __ATOMIC_ACQUIRE);
	state = nvme_ctrlr_get_state(ctrlr);
	rc = state == NVME_CTRLR_STATE_READY ? ctrlr->ops->qpair_connect(qpair) : -EAGAIN;
	pthread_mutex_unlock(&ctrlr->lock);
	if (rc == -EAGAIN) {
		/* Connecting (or waiting for the reset): submissions get -EAGAIN, not -ENXIO. */
		qpair->state = NVME_QPAIR_DISCONNECTED;
		return 0;
	}
	if (rc != 0) {
		UST_ERRLOG("NVMe %s: cannot recreate I/O queue %u: %d\n", ctrlr->trid.traddr,
			   qpair->id, rc);
		qpair->state = NVME_QPAIR_FAILED;
		qpair->ctrlr_gen = gen;
		ctrlr->ops->qpair_reset(qpair);
		return -ENXIO;
	}
	qpair->ctrlr_gen = gen;
	qpair->state = NVME_QPAIR_CONNECTED;
	UST_DEBUGLOG(nvme, "I/O queue %u reconnected\n", qpair->id);
	return 0;
}

int32_t ust_nvme_qpair_process_completions(struct ust_nvme_qpair *qpair, uint32_t max)
{
	struct ust_nvme_ctrlr *ctrlr = qpair->ctrlr;
	int32_t n;
	int rc;

	if (qpair->id == 0)
		return ust_nvme_ctrlr_process_admin_completions(ctrlr);
	if (__builtin_expect(qpair->state != NVME_QPAIR_CONNECTED ||
				     qpair->ctrlr_gen != __atomic_load_n(&ctrlr->gen, __ATOMIC_ACQUIRE),
			     0)) {
		rc = qpair_handle_lost_queue(qpair);
		if (rc != 0 || qpair->state != NVME_QPAIR_CONNECTED)
			return rc;
	}
	if (qpair->delay_sq_doorbell && ctrlr->ops->qpair_flush != NULL)
		ctrlr->ops->qpair_flush(qpair);
	n = ctrlr->ops->qpair_process_completions(qpair, max);
	if (n < 0) {
		nvme_ctrlr_fail(ctrlr, -ENXIO, "I/O queue reports the controller gone");
		qpair_handle_lost_queue(qpair);
		return -ENXIO;
	}
	if (qpair->num_outstanding > 0)
		nvme_qpair_check_timeouts(qpair, ust_get_ticks());
	return n;
}

void ust_nvme_qpair_flush(struct ust_nvme_qpair *qpair)
{
	if (qpair->ctrlr->ops->qpair_flush != NULL && qpair->state == NVME_QPAIR_CONNECTED)
		qpair->ctrlr->ops->qpair_flush(qpair);
}

uint16_t ust_nvme_qpair_get_id(const struct ust_nvme_qpair *qpair)
{
	return qpair->id;
}

uint32_t ust_nvme_qpair_get_num_outstanding(const struct ust_nvme_qpair *qpair)
{
	return qpair->num_outstanding;
}

void ust_nvme_io_qpair_opts_init(struct ust_nvme_ctrlr *ctrlr, struct ust_nvme_io_qpair_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->io_queue_size = ctrlr->io_queue_size;
}

/*
 * Round robin from the last QID handed out: a QID freed just now is taken
 * last. A fabrics target tears a closed queue's connection down on its own
 * time, and the Linux target refuses a Connect for a QID it still has
 * ("Command Sequence Error"), so an immediate reuse would race it.
 */
static int alloc_qid(struct ust_nvme_ctrlr *ctrlr)
{
	uint32_t i, qid, n = ctrlr->num_io_queues;

	for (i = 0; i < n; i++) {
		qid = (ctrlr->last_qid + i) % n + 1;
		if (!ctrlr->qid_used[qid]) {
			ctrlr->qid_used[qid] = true;
			ctrlr->last_qid = qid;
			return (int)qid;
		}
	}
	return -ENOSPC;
}

struct ust_nvme_qpair *ust_nvme_ctrlr_alloc_io_qpair(struct ust_nvme_ctrlr *ctrlr,
						     const struct ust_nvme_io_qpair_opts *user_opts)
{
	struct ust_nvme_io_qpair_opts opts;
	struct ust_nvme_qpair *qpair;
	bool ready;
	int qid, rc;

	ust_nvme_io_qpair_opts_init(ctrlr, &opts);
	if (user_opts != NULL)
		opts = *user_opts;
	if (opts.io_queue_size == 0 || opts.io_queue_size > ctrlr->io_queue_size)
		opts.io_queue_size = ctrlr->io_queue_size;
	if (opts.io_queue_size < 2) {
		errno = EINVAL;
		return NULL;
	}
	pthread_mutex_lock(&ctrlr->lock);
	ready = nvme_ctrlr_get_state(ctrlr) == NVME_CTRLR_STATE_READY;
	/*
	 * While a reset runs the qpair is made now and connects itself at its
	 * first poll once the controller is back; before the first bring-up
	 * finished (no queue count yet) or after a failure there is nothing to do.
	 */
	if (ctrlr->failed || ctrlr->detaching || ctrlr->qid_used == NULL) {
		pthread_mutex_unlock(&ctrlr->lock);
		errno = ctrlr->failed ? ENXIO : EAGAIN;
		return NULL;
	}
	qid = alloc_qid(ctrlr);
	if (qid < 0) {
		pthread_mutex_unlock(&ctrlr->lock);
		errno = ENOSPC;
		return NULL;
	}
	qpair = ctrlr->ops->qpair_create(ctrlr, (uint16_t)qid, &opts);
	if (qpair == NULL) {
		ctrlr->qid_used[qid] = false;
		pthread_mutex_unlock(&ctrlr->lock);
		errno = ENOMEM;
		return NULL;
	}
	qpair->delay_sq_doorbell = opts.delay_sq_doorbell;
	qpair->async_connect = opts.async_connect;
	qpair->ctrlr_gen = __atomic_load_n(&ctrlr->gen, __ATOMIC_ACQUIRE);
	rc = ready ? ctrlr->ops->qpair_connect(qpair) : -EAGAIN;
	if (rc == -EAGAIN) {
		/* Not ready, or connecting asynchronously: finishes in process_completions. */
		qpair->ctrlr_gen--;
		qpair->state = NVME_QPAIR_DISCONNECTED;
		TAILQ_INSERT_TAIL(&ctrlr->io_qpairs, qpair, link);
		pthread_mutex_unlock(&ctrlr->lock);
		return qpair;
	}
	if (rc != 0) {
		ctrlr->ops->qpair_destroy(qpair);
		ctrlr->qid_used[qid] = false;
		pthread_mutex_unlock(&ctrlr->lock);
		errno = -rc;
		return NULL;
	}
	qpair->state = NVME_QPAIR_CONNECTED;
	TAILQ_INSERT_TAIL(&ctrlr->io_qpairs, qpair, link);
	pthread_mutex_unlock(&ctrlr->lock);
	return qpair;
}

int ust_nvme_ctrlr_free_io_qpair(struct ust_nvme_qpair *qpair)
{
	struct ust_nvme_ctrlr *ctrlr;
	bool alive;

	if (qpair == NULL)
		return 0;
	if (qpair->id == 0)
		return -EINVAL;
	ctrlr = qpair->ctrlr;
	alive = qpair->state == NVME_QPAIR_CONNECTED &&
		qpair->ctrlr_gen == __atomic_load_n(&ctrlr->gen, __ATOMIC_ACQUIRE);
	pthread_mutex_lock(&ctrlr->lock);
	if (alive)
		ctrlr->ops->qpair_disconnect(qpair);
	qpair->state = NVME_QPAIR_DISCONNECTED;
	nvme_qpair_abort_outstanding(qpair, false);
	TAILQ_REMOVE(&ctrlr->io_qpairs, qpair, link);
	ctrlr->qid_used[qpair->id] = false;
	ctrlr->ops->qpair_destroy(qpair);
	pthread_mutex_unlock(&ctrlr->lock);
	return 0;
}
