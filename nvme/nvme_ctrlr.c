/*
 * NVMe controller core (nvme/): a controller's life cycle around its state
 * machine (nvme_ctrlr_init.c): options, construct and connect, failure,
 * admin submission, polling the admin queue, reset, detach, probe and the
 * accessors. Background work of a ready controller (AER, Keep Alive,
 * health check) is in nvme_ctrlr_events.c, admin commands for users in
 * nvme_ctrlr_cmd.c.
 *
 * Guarantees:
 *  - The controller and its admin queue may be used from any thread: a
 *    recursive per-controller lock serialises admin submission, polling and
 *    the state machine.
 *  - A failure stays until a reset: every outstanding admin command, a
 *    Format NVM waiting for its rescan included, completes with an error,
 *    and the generation bump tells every I/O qpair on its own thread.
 *  - A reset abandons whatever the state machine waited for and runs it
 *    from the top at the next poll, outside any completion loop. It is
 *    refused with -EBUSY while a bring-up or detach runs and with -ENXIO
 *    once the device is gone.
 *  - Detach is refused (-EBUSY) while I/O qpairs exist; it shuts the
 *    controller down (CC.SHN) before freeing it unless the controller
 *    failed or was never enabled by us.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"

#include "nvme_internal.h"

UST_LOG_REGISTER_COMPONENT(nvme)

/* ---- options and life cycle ---------------------------------------------- */

void ust_nvme_ctrlr_opts_init(struct ust_nvme_ctrlr_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->num_io_queues = 64;
	opts->io_queue_size = 256;
	opts->admin_queue_size = 32;
	opts->admin_timeout_us = 10 * 1000 * 1000ULL;
	opts->io_timeout_us = 30 * 1000 * 1000ULL;
	opts->health_check_interval_us = 100 * 1000;
	opts->prefer_sgl = true;
	opts->aer_count = 4;
}

static int check_opts(const struct ust_nvme_ctrlr_opts *opts)
{
	if (opts->num_io_queues == 0 || opts->num_io_queues > 65535)
		return -EINVAL;
	if (opts->io_queue_size < 2 || opts->io_queue_size > 65536)
		return -EINVAL;
	if (opts->admin_queue_size < 2 || opts->admin_queue_size > 4096)
		return -EINVAL;
	return 0;
}

int nvme_ctrlr_init_common(struct ust_nvme_ctrlr *ctrlr, const struct nvme_transport_ops *ops,
			   const struct ust_nvme_transport_id *trid,
			   const struct ust_nvme_ctrlr_opts *opts)
{
	pthread_mutexattr_t attr;

	ctrlr->ops = ops;
	ctrlr->trid = *trid;
	ctrlr->opts = *opts;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&ctrlr->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	TAILQ_INIT(&ctrlr->io_qpairs);
	ctrlr->state = NVME_CTRLR_STATE_INIT;
	ctrlr->init.purpose = NVME_INIT_ATTACH;
	ctrlr->init_status = -EAGAIN;
	ctrlr->cdata = ust_dma_zmalloc(sizeof(*ctrlr->cdata), 4096);
	ctrlr->scratch = ust_dma_zmalloc(4096, 4096);
	ctrlr->changed_ns_log = ust_dma_zmalloc(4096, 4096);
	if (ctrlr->cdata == NULL || ctrlr->scratch == NULL || ctrlr->changed_ns_log == NULL) {
		nvme_ctrlr_fini_common(ctrlr);
		return -ENOMEM;
	}
	return 0;
}

static void free_namespaces(struct ust_nvme_ctrlr *ctrlr)
{
	uint32_t i;

	if (ctrlr->ns != NULL) {
		for (i = 0; i < ctrlr->num_ns; i++)
			free(ctrlr->ns[i]);
	}
	free(ctrlr->ns);
	ctrlr->ns = NULL;
	ctrlr->num_ns = 0;
	free(ctrlr->active_ns);
	ctrlr->active_ns = NULL;
	ctrlr->num_active_ns = 0;
	free(ctrlr->new_active_ns);
	ctrlr->new_active_ns = NULL;
}

void nvme_ctrlr_fini_common(struct ust_nvme_ctrlr *ctrlr)
{
	free_namespaces(ctrlr);
	free(ctrlr->qid_used);
	ctrlr->qid_used = NULL;
	ust_dma_free(ctrlr->cdata);
	ust_dma_free(ctrlr->scratch);
	ust_dma_free(ctrlr->changed_ns_log);
	ctrlr->cdata = NULL;
	ctrlr->scratch = NULL;
	ctrlr->changed_ns_log = NULL;
	pthread_mutex_destroy(&ctrlr->lock);
}

/* As other threads see it: a namespace rescan leaves the controller ready. */
int nvme_ctrlr_get_state(struct ust_nvme_ctrlr *ctrlr)
{
	if (__atomic_load_n(&ctrlr->rescanning, __ATOMIC_ACQUIRE))
		return NVME_CTRLR_STATE_READY;
	return __atomic_load_n(&ctrlr->state, __ATOMIC_ACQUIRE);
}

uint64_t nvme_us_to_ticks(uint64_t us)
{
	return us * ust_get_ticks_hz() / 1000000;
}

/* ---- failure -------------------------------------------------------------- */

void nvme_ctrlr_fail(struct ust_nvme_ctrlr *ctrlr, int rc, const char *why)
{
	pthread_mutex_lock(&ctrlr->lock);
	if (ctrlr->failed) {
		pthread_mutex_unlock(&ctrlr->lock);
		return;
	}
	UST_ERRLOG("NVMe %s: controller failed (%s) in state '%s'\n", ctrlr->trid.traddr, why,
		   nvme_ctrlr_state_str(ctrlr->state));
	ctrlr->init.pending = false;
	ctrlr->init.awaiting_admin = false;
	ctrlr->rescanning = false;
	ctrlr->init_status = rc;
	__atomic_store_n(&ctrlr->failed, true, __ATOMIC_RELEASE);
	/* Remembered so that a qpair that notices only after a reset began still knows. */
	__atomic_store_n(&ctrlr->fail_gen, __atomic_add_fetch(&ctrlr->gen, 1, __ATOMIC_ACQ_REL),
			 __ATOMIC_RELEASE);
	nvme_ctrlr_set_state(ctrlr, ctrlr->detaching ? NVME_CTRLR_STATE_SHUTDOWN_DONE :
						       NVME_CTRLR_STATE_FAILED);
	ctrlr->adminq->state = NVME_QPAIR_FAILED;
	nvme_qpair_abort_outstanding(ctrlr->adminq, true);
	ctrlr->num_aers = 0;
	ctrlr->keep_alive_outstanding = false;
	/* A Format NVM waiting for its rescan gets the failure. */
	if (ctrlr->init.format_cb != NULL) {
		ust_nvme_cmd_cb cb = ctrlr->init.format_cb;
		struct ust_nvme_cpl cpl;

		ctrlr->init.format_cb = NULL;
		nvme_cpl_set_status(&cpl, UST_NVME_SCT_GENERIC, UST_NVME_SC_ABORTED_SQ_DELETION,
				    true);
		cb(ctrlr->init.format_cb_arg, &cpl);
	}
	pthread_mutex_unlock(&ctrlr->lock);
}

void ust_nvme_ctrlr_fail(struct ust_nvme_ctrlr *ctrlr)
{
	nvme_ctrlr_fail(ctrlr, -ENXIO, "failed by request");
}

bool ust_nvme_ctrlr_is_failed(struct ust_nvme_ctrlr *ctrlr)
{
	return __atomic_load_n(&ctrlr->failed, __ATOMIC_ACQUIRE);
}

void nvme_ctrlr_fail_removed(struct ust_nvme_ctrlr *ctrlr)
{
	ctrlr->removed = true;
	nvme_ctrlr_fail(ctrlr, -ENODEV, "registers read all ones: device removed");
}

/* ---- admin submission -------------------------------------------------------- */

struct nvme_request *nvme_ctrlr_alloc_admin_request(struct ust_nvme_ctrlr *ctrlr,
						    ust_nvme_cmd_cb cb, void *cb_arg)
{
	struct nvme_request *req;

	pthread_mutex_lock(&ctrlr->lock);
	req = nvme_qpair_alloc_request(ctrlr->adminq, cb, cb_arg);
	pthread_mutex_unlock(&ctrlr->lock);
	return req;
}

int nvme_ctrlr_submit_admin(struct ust_nvme_ctrlr *ctrlr, struct nvme_request *req)
{
	int rc;

	pthread_mutex_lock(&ctrlr->lock);
	rc = nvme_qpair_submit_request(ctrlr->adminq, req);
	pthread_mutex_unlock(&ctrlr->lock);
	return rc;
}

static void payload_contig(struct nvme_request *req, void *buf, uint32_t len)
{
	if (buf != NULL && len > 0) {
		req->payload.type = NVME_PAYLOAD_CONTIG;
		req->payload.buf = buf;
		req->payload_size = len;
	}
}

int nvme_ctrlr_submit_admin_cmd(struct ust_nvme_ctrlr *ctrlr, const struct ust_nvme_cmd *cmd,
				void *buf, uint32_t len, uint16_t flags, ust_nvme_cmd_cb cb,
				void *cb_arg, uint16_t *cid)
{
	struct nvme_request *req;
	int rc;

	pthread_mutex_lock(&ctrlr->lock);
	req = nvme_qpair_alloc_request(ctrlr->adminq, cb, cb_arg);
	if (req == NULL) {
		pthread_mutex_unlock(&ctrlr->lock);
		return -ENOMEM;
	}
	req->cmd = *cmd;
	req->flags |= flags;
	payload_contig(req, buf, len);
	if (cid != NULL)
		*cid = req->cid;
	rc = nvme_qpair_submit_request(ctrlr->adminq, req);
	pthread_mutex_unlock(&ctrlr->lock);
	return rc;
}

/* ---- polling ---------------------------------------------------------------------- */

static bool init_running(int state)
{
	return state != NVME_CTRLR_STATE_READY && state != NVME_CTRLR_STATE_FAILED &&
	       state != NVME_CTRLR_STATE_SHUTDOWN_DONE;
}

/*
 * A register access still in flight. On PCIe reg_read/reg_write call back
 * before returning, so this is only ever seen on fabrics, where a register
 * is a Property Get/Set capsule on the admin queue, completed by polling it.
 */
static bool reg_access_pending(const struct ust_nvme_ctrlr *ctrlr)
{
	return (ctrlr->init.pending && !ctrlr->init.awaiting_admin) || ctrlr->health_check_pending;
}

/*
 * Poll the admin queue when it carries commands (CONNECTED) or a register
 * access (fabrics: from the first CAP read of a bring-up, before the queue
 * counts as connected, and during a shutdown). Caller holds the lock.
 */
static int32_t poll_adminq(struct ust_nvme_ctrlr *ctrlr)
{
	int32_t n;

	if (ctrlr->adminq->state != NVME_QPAIR_CONNECTED &&
	    !(ctrlr->adminq->state != NVME_QPAIR_FAILED && reg_access_pending(ctrlr)))
		return 0;
	n = ctrlr->ops->qpair_process_completions(ctrlr->adminq, 0);
	if (n < 0) {
		nvme_ctrlr_fail_removed(ctrlr);
		n = 0;
	}
	return n;
}

int32_t ust_nvme_ctrlr_process_admin_completions(struct ust_nvme_ctrlr *ctrlr)
{
	uint64_t now;
	int32_t n = 0;

	pthread_mutex_lock(&ctrlr->lock);
	if (init_running(ctrlr->state) && !ctrlr->init.pending)
		nvme_ctrlr_init_step(ctrlr);
	n = poll_adminq(ctrlr);
	now = ust_get_ticks();
	if (ctrlr->adminq->state == NVME_QPAIR_CONNECTED)
		nvme_qpair_check_timeouts(ctrlr->adminq, now);
	if (ctrlr->state == NVME_CTRLR_STATE_READY && !ctrlr->failed) {
		if (!ctrlr->rescanning)
			nvme_ctrlr_check_health(ctrlr, now);
		if (ctrlr->state == NVME_CTRLR_STATE_READY)
			nvme_ctrlr_send_keep_alive(ctrlr, now);
		if (ctrlr->ns_rescan_wanted && !ctrlr->rescanning &&
		    ctrlr->state == NVME_CTRLR_STATE_READY)
			nvme_ctrlr_start_ns_rescan(ctrlr);
	}
	if (ctrlr->failed && ctrlr->state != NVME_CTRLR_STATE_SHUTDOWN_DONE)
		n = -ENXIO;
	pthread_mutex_unlock(&ctrlr->lock);
	return n;
}

int ust_nvme_ctrlr_get_init_status(struct ust_nvme_ctrlr *ctrlr)
{
	int rc;

	pthread_mutex_lock(&ctrlr->lock);
	rc = ctrlr->init_status;
	pthread_mutex_unlock(&ctrlr->lock);
	return rc;
}

/* ---- reset ---------------------------------------------------------------------- */

int ust_nvme_ctrlr_reset(struct ust_nvme_ctrlr *ctrlr)
{
	int state;

	pthread_mutex_lock(&ctrlr->lock);
	state = ctrlr->state;
	if (ctrlr->removed) {
		pthread_mutex_unlock(&ctrlr->lock);
		return -ENXIO;
	}
	if (ctrlr->detaching || (init_running(state) && !ctrlr->rescanning)) {
		pthread_mutex_unlock(&ctrlr->lock);
		return -EBUSY;
	}
	UST_NOTICELOG("NVMe %s: resetting the controller\n", ctrlr->trid.traddr);
	/* Whatever the machine waited for is abandoned; its completion is ignored. */
	ctrlr->init.pending = false;
	ctrlr->init.awaiting_admin = false;
	ctrlr->rescanning = false;
	ctrlr->init.purpose = NVME_INIT_RESET;
	ctrlr->init.active_list_fallback = false;
	ctrlr->init_status = -EAGAIN;
	ctrlr->health_check_pending = false;
	__atomic_store_n(&ctrlr->failed, false, __ATOMIC_RELEASE);
	if (ctrlr->adminq->state == NVME_QPAIR_FAILED)
		ctrlr->adminq->state = NVME_QPAIR_DISCONNECTED;
	/* Runs at the next process_admin_completions, outside any completion loop. */
	nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_INIT);
	pthread_mutex_unlock(&ctrlr->lock);
	return 0;
}

void nvme_ctrlr_request_reset(struct ust_nvme_ctrlr *ctrlr, const char *why)
{
	int state;

	pthread_mutex_lock(&ctrlr->lock);
	state = ctrlr->state;
	if (state == NVME_CTRLR_STATE_READY && !ctrlr->detaching) {
		UST_WARNLOG("NVMe %s: %s; resetting the controller\n", ctrlr->trid.traddr, why);
		ust_nvme_ctrlr_reset(ctrlr);
	} else if (init_running(state) && !ctrlr->detaching &&
		   !(ctrlr->init.purpose == NVME_INIT_RESET &&
		     state <= NVME_CTRLR_STATE_ENABLE_WAIT_FOR_READY_1)) {
		/*
		 * Bring-up itself is stuck. (Before a reset has disabled the
		 * controller, timeouts of commands from before it are expected:
		 * the disable aborts those.)
		 */
		nvme_ctrlr_fail(ctrlr, -ETIMEDOUT, why);
	}
	pthread_mutex_unlock(&ctrlr->lock);
}

/* Poll until the state machine settles; for tools (never on a reactor). */
static int poll_until_settled(struct ust_nvme_ctrlr *ctrlr)
{
	int rc;

	for (;;) {
		ust_nvme_ctrlr_process_admin_completions(ctrlr);
		rc = ust_nvme_ctrlr_get_init_status(ctrlr);
		if (rc != -EAGAIN)
			return rc;
		ust_delay_us(100);
	}
}

int ust_nvme_ctrlr_reset_sync(struct ust_nvme_ctrlr *ctrlr)
{
	int rc = ust_nvme_ctrlr_reset(ctrlr);

	return rc != 0 ? rc : poll_until_settled(ctrlr);
}

/* ---- attach / detach ------------------------------------------------------------- */

int ust_nvme_ctrlr_construct(const struct ust_nvme_transport_id *trid,
			     const struct ust_nvme_ctrlr_opts *user_opts,
			     struct ust_nvme_ctrlr **ctrlrp)
{
	const struct nvme_transport_ops *ops;
	struct ust_nvme_ctrlr_opts opts;
	struct ust_nvme_ctrlr *ctrlr;
	int rc;

	if (trid == NULL || ctrlrp == NULL)
		return -EINVAL;
	if (user_opts != NULL)
		opts = *user_opts;
	else
		ust_nvme_ctrlr_opts_init(&opts);
	if (check_opts(&opts) != 0)
		return -EINVAL;
	ops = nvme_transport_get(trid->trtype);
	if (ops == NULL) {
		UST_ERRLOG("NVMe transport %s is not available\n",
			   ust_nvme_transport_type_str(trid->trtype) ?: "(unknown)");
		return -ENOTSUP;
	}
	if (trid->traddr[0] == '\0')
		return -EINVAL;
	rc = ops->ctrlr_construct(trid, &opts, &ctrlr);
	if (rc != 0)
		return rc;
	nvme_ctrlr_init_step(ctrlr);
	*ctrlrp = ctrlr;
	return 0;
}

static void ctrlr_destroy(struct ust_nvme_ctrlr *ctrlr)
{
	const struct nvme_transport_ops *ops = ctrlr->ops;

	ops->ctrlr_destruct(ctrlr);
}

struct ust_nvme_ctrlr *ust_nvme_connect(const struct ust_nvme_transport_id *trid,
					const struct ust_nvme_ctrlr_opts *opts)
{
	struct ust_nvme_ctrlr *ctrlr;
	int rc;

	rc = ust_nvme_ctrlr_construct(trid, opts, &ctrlr);
	if (rc != 0) {
		errno = -rc;
		return NULL;
	}
	rc = poll_until_settled(ctrlr);
	if (rc != 0) {
		ctrlr->adminq->state = NVME_QPAIR_FAILED;
		nvme_qpair_abort_outstanding(ctrlr->adminq, true);
		ctrlr_destroy(ctrlr);
		errno = -rc;
		return NULL;
	}
	return ctrlr;
}

int ust_nvme_ctrlr_detach_start(struct ust_nvme_ctrlr *ctrlr)
{
	pthread_mutex_lock(&ctrlr->lock);
	if (!TAILQ_EMPTY(&ctrlr->io_qpairs)) {
		pthread_mutex_unlock(&ctrlr->lock);
		return -EBUSY;
	}
	if (ctrlr->detaching) {
		pthread_mutex_unlock(&ctrlr->lock);
		return 0;
	}
	ctrlr->detaching = true;
	ctrlr->init.pending = false;
	ctrlr->init.awaiting_admin = false;
	ctrlr->rescanning = false;
	/* Nothing to shut down on a controller that failed or was never enabled by us. */
	if (ctrlr->failed || ctrlr->removed || ctrlr->state < NVME_CTRLR_STATE_ENABLE_WAIT_FOR_READY_1)
		nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_SHUTDOWN_DONE);
	else
		nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_SHUTDOWN);
	pthread_mutex_unlock(&ctrlr->lock);
	return 0;
}

int ust_nvme_ctrlr_detach_poll(struct ust_nvme_ctrlr *ctrlr)
{
	pthread_mutex_lock(&ctrlr->lock);
	if (ctrlr->state != NVME_CTRLR_STATE_SHUTDOWN_DONE && !ctrlr->init.pending)
		nvme_ctrlr_init_step(ctrlr);
	/* The shutdown's CC/CSTS accesses complete from the admin queue on fabrics. */
	if (ctrlr->state != NVME_CTRLR_STATE_SHUTDOWN_DONE)
		poll_adminq(ctrlr);
	if (ctrlr->state != NVME_CTRLR_STATE_SHUTDOWN_DONE) {
		pthread_mutex_unlock(&ctrlr->lock);
		return -EAGAIN;
	}
	ctrlr->adminq->state = NVME_QPAIR_FAILED;
	nvme_qpair_abort_outstanding(ctrlr->adminq, true);
	pthread_mutex_unlock(&ctrlr->lock);
	ctrlr_destroy(ctrlr);
	return 0;
}

int ust_nvme_detach(struct ust_nvme_ctrlr *ctrlr)
{
	int rc;

	if (ctrlr == NULL)
		return -EINVAL;
	rc = ust_nvme_ctrlr_detach_start(ctrlr);
	if (rc != 0)
		return rc;
	while (ust_nvme_ctrlr_detach_poll(ctrlr) == -EAGAIN)
		ust_delay_us(100);
	return 0;
}

struct probe_ctx {
	const struct ust_nvme_transport_id *filter;
	void *ctx;
	ust_nvme_probe_cb probe_cb;
	ust_nvme_attach_cb attach_cb;
	int attached;
};

static int probe_one(void *arg, const struct ust_nvme_transport_id *trid)
{
	struct probe_ctx *p = arg;
	struct ust_nvme_ctrlr_opts opts;
	struct ust_nvme_ctrlr *ctrlr;

	ust_nvme_ctrlr_opts_init(&opts);
	if (p->probe_cb != NULL && !p->probe_cb(p->ctx, trid, &opts))
		return 0;
	ctrlr = ust_nvme_connect(trid, &opts);
	if (ctrlr == NULL) {
		UST_ERRLOG("NVMe %s: attach failed: %s\n", trid->traddr, strerror(errno));
		return 0;
	}
	p->attached++;
	if (p->attach_cb != NULL)
		p->attach_cb(p->ctx, trid, ctrlr);
	return 0;
}

int ust_nvme_probe(const struct ust_nvme_transport_id *trid, void *ctx, ust_nvme_probe_cb probe_cb,
		   ust_nvme_attach_cb attach_cb)
{
	struct ust_nvme_transport_id all_pcie = {.trtype = UST_NVME_TRANSPORT_PCIE};
	struct probe_ctx p = {trid, ctx, probe_cb, attach_cb, 0};
	const struct nvme_transport_ops *ops;
	int rc;

	if (trid == NULL)
		trid = &all_pcie;
	ops = nvme_transport_get(trid->trtype);
	if (ops == NULL)
		return -ENOTSUP;
	if (ops->scan == NULL)
		rc = probe_one(&p, trid);
	else
		rc = ops->scan(trid, probe_one, &p);
	return rc < 0 ? rc : p.attached;
}

/* ---- accessors --------------------------------------------------------------------- */

const struct ust_nvme_transport_id *ust_nvme_ctrlr_get_transport_id(struct ust_nvme_ctrlr *ctrlr)
{
	return &ctrlr->trid;
}

const struct ust_nvme_ctrlr_data *ust_nvme_ctrlr_get_data(struct ust_nvme_ctrlr *ctrlr)
{
	return ctrlr->cdata;
}

const struct ust_nvme_ctrlr_opts *ust_nvme_ctrlr_get_opts(struct ust_nvme_ctrlr *ctrlr)
{
	return &ctrlr->opts;
}

uint64_t ust_nvme_ctrlr_get_cap(struct ust_nvme_ctrlr *ctrlr)
{
	return ctrlr->cap;
}

uint32_t ust_nvme_ctrlr_get_vs(struct ust_nvme_ctrlr *ctrlr)
{
	return ctrlr->vs;
}

uint32_t ust_nvme_ctrlr_get_max_xfer_size(struct ust_nvme_ctrlr *ctrlr)
{
	return ctrlr->max_xfer_size;
}

uint32_t ust_nvme_ctrlr_get_page_size(struct ust_nvme_ctrlr *ctrlr)
{
	return ctrlr->page_size;
}

uint32_t ust_nvme_ctrlr_get_num_io_queues(struct ust_nvme_ctrlr *ctrlr)
{
	return ctrlr->num_io_queues;
}

bool ust_nvme_ctrlr_uses_sgl(struct ust_nvme_ctrlr *ctrlr)
{
	return ctrlr->use_sgl;
}

uint32_t ust_nvme_ctrlr_get_num_ns(struct ust_nvme_ctrlr *ctrlr)
{
	return ctrlr->num_ns;
}

uint32_t ust_nvme_ctrlr_get_first_active_ns(struct ust_nvme_ctrlr *ctrlr)
{
	return ctrlr->num_active_ns > 0 ? ctrlr->active_ns[0] : 0;
}

uint32_t ust_nvme_ctrlr_get_next_active_ns(struct ust_nvme_ctrlr *ctrlr, uint32_t prev_nsid)
{
	uint32_t i;

	for (i = 0; i < ctrlr->num_active_ns; i++) {
		if (ctrlr->active_ns[i] > prev_nsid)
			return ctrlr->active_ns[i];
	}
	return 0;
}

bool ust_nvme_ctrlr_is_active_ns(struct ust_nvme_ctrlr *ctrlr, uint32_t nsid)
{
	return nsid >= 1 && nsid <= ctrlr->num_ns && ctrlr->ns[nsid - 1] != NULL &&
	       ctrlr->ns[nsid - 1]->active;
}

struct ust_nvme_ns *ust_nvme_ctrlr_get_ns(struct ust_nvme_ctrlr *ctrlr, uint32_t nsid)
{
	return ust_nvme_ctrlr_is_active_ns(ctrlr, nsid) ? ctrlr->ns[nsid - 1] : NULL;
}
