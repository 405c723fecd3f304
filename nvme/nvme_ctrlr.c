/*
 * NVMe controller core: bring-up, reset, namespace scan, asynchronous
 * events, keep-alive, health check, failure and shutdown.
 *
 * Bring-up, reset, namespace rescans and shutdown are one state machine:
 * ctrlr->state names the step, nvme_ctrlr_init_step() switches on it and is
 * re-entered from every register access and admin completion and from every
 * ust_nvme_ctrlr_process_admin_completions() call (register waits poll).
 * The sequence follows the Base spec 3.5.1 ("Memory-based Controller
 * Initialization"):
 *
 *   read CAP, VS, CC
 *   if CC.EN = 1: wait for CSTS.RDY = 1 (EN must not change while RDY
 *                 differs from it), then CC.EN = 0
 *   wait CSTS.RDY = 0                      (CAP.TO bounds every RDY wait)
 *   AQA/ASQ/ACQ (transport), CC = {IOCQES 4, IOSQES 6, MPS, CSS NVM, EN 1}
 *   wait CSTS.RDY = 1
 *   Identify Controller (CNS 01h)
 *   Set Features Number of Queues (FID 07h)
 *   Set Features Keep Alive Timer (FID 0Fh) when asked for and KAS != 0
 *   Identify Active Namespace ID list (CNS 02h; before 1.1: every NSID 1..NN)
 *   Identify Namespace (CNS 00h) for each active NSID
 *   Set Features Asynchronous Event Configuration (FID 0Bh)
 *   Asynchronous Event Requests
 *   READY
 *
 * A reset runs the same sequence from the top; once CSTS.RDY reads 0 the
 * controller generation is bumped, which tells every I/O qpair (on its own
 * thread) that its queues are gone. A namespace rescan runs only the two
 * identify steps, with the controller staying usable (ctrlr->rescanning).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"

#include "nvme_internal.h"

UST_LOG_REGISTER_COMPONENT(nvme)

#define ALL_ONES_32 0xffffffffu
#define DEFAULT_SHUTDOWN_TIMEOUT_US (10 * 1000 * 1000)
#define MAX_SHUTDOWN_TIMEOUT_US (60 * 1000 * 1000)
#define MAX_NN (1u << 20)

enum step_result {
	STEP_AGAIN, /* run the next state now */
	STEP_WAIT,  /* wait for a completion or the next poll */
};

static const char *const g_state_names[] = {
	[NVME_CTRLR_STATE_INIT] = "init",
	[NVME_CTRLR_STATE_READ_VS] = "read VS",
	[NVME_CTRLR_STATE_READ_CC] = "read CC",
	[NVME_CTRLR_STATE_CHECK_EN] = "check CC.EN",
	[NVME_CTRLR_STATE_DISABLE_WAIT_FOR_READY_1] = "disable: wait for CSTS.RDY = 1",
	[NVME_CTRLR_STATE_DISABLE] = "disable",
	[NVME_CTRLR_STATE_DISABLE_WAIT_FOR_READY_0] = "disable: wait for CSTS.RDY = 0",
	[NVME_CTRLR_STATE_ENABLE_ADMIN_QUEUE] = "enable admin queue",
	[NVME_CTRLR_STATE_ENABLE] = "enable",
	[NVME_CTRLR_STATE_ENABLE_WAIT_FOR_READY_1] = "enable: wait for CSTS.RDY = 1",
	[NVME_CTRLR_STATE_IDENTIFY] = "identify controller",
	[NVME_CTRLR_STATE_SET_NUM_QUEUES] = "set number of queues",
	[NVME_CTRLR_STATE_SET_KEEP_ALIVE_TIMEOUT] = "set keep alive timeout",
	[NVME_CTRLR_STATE_IDENTIFY_ACTIVE_NS] = "identify active namespaces",
	[NVME_CTRLR_STATE_IDENTIFY_NS] = "identify namespace",
	[NVME_CTRLR_STATE_CONFIGURE_AER] = "configure asynchronous events",
	[NVME_CTRLR_STATE_SUBMIT_AERS] = "submit asynchronous event requests",
	[NVME_CTRLR_STATE_READY] = "ready",
	[NVME_CTRLR_STATE_SHUTDOWN] = "shutdown",
	[NVME_CTRLR_STATE_SHUTDOWN_WAIT] = "shutdown: wait for CSTS.SHST",
	[NVME_CTRLR_STATE_SHUTDOWN_DONE] = "shut down",
	[NVME_CTRLR_STATE_FAILED] = "failed",
};

const char *nvme_ctrlr_state_str(enum nvme_ctrlr_state state)
{
	if ((unsigned)state >= sizeof(g_state_names) / sizeof(g_state_names[0]))
		return "unknown";
	return g_state_names[state];
}

static void nvme_ctrlr_init_step(struct ust_nvme_ctrlr *ctrlr);

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

static void set_state(struct ust_nvme_ctrlr *ctrlr, enum nvme_ctrlr_state state)
{
	UST_DEBUGLOG(nvme, "NVMe %s: %s -> %s\n", ctrlr->trid.traddr,
		     nvme_ctrlr_state_str(ctrlr->state), nvme_ctrlr_state_str(state));
	ctrlr->init.have_value = false;
	__atomic_store_n(&ctrlr->state, (int)state, __ATOMIC_RELEASE);
}

static uint64_t us_to_ticks(uint64_t us)
{
	return us * ust_get_ticks_hz() / 1000000;
}

/* CAP.TO is in 500 ms units (Base spec 3.1.3.1); never wait less than that. */
static void set_wait_state(struct ust_nvme_ctrlr *ctrlr, enum nvme_ctrlr_state state)
{
	uint64_t to = ust_nvme_cap_to(ctrlr->cap);

	if (to == 0)
		to = 1;
	ctrlr->init.deadline = ust_get_ticks() + us_to_ticks(to * 500 * 1000);
	set_state(ctrlr, state);
}

static bool deadline_passed(const struct ust_nvme_ctrlr *ctrlr)
{
	return (int64_t)(ust_get_ticks() - ctrlr->init.deadline) >= 0;
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
	set_state(ctrlr, ctrlr->detaching ? NVME_CTRLR_STATE_SHUTDOWN_DONE : NVME_CTRLR_STATE_FAILED);
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

static void fail_removed(struct ust_nvme_ctrlr *ctrlr)
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

/* Submit cmd with an optional contiguous buffer on the admin queue. */
static int submit_admin_cmd(struct ust_nvme_ctrlr *ctrlr, const struct ust_nvme_cmd *cmd,
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

/* ---- state machine helpers ------------------------------------------------------ */

static void init_reg_done(void *cb_arg, int rc, uint64_t value)
{
	struct ust_nvme_ctrlr *ctrlr = cb_arg;

	if (!ctrlr->init.pending || ctrlr->init.awaiting_admin)
		return; /* stale: the machine was restarted */
	ctrlr->init.pending = false;
	ctrlr->init.have_value = true;
	ctrlr->init.rc = rc;
	ctrlr->init.value = value;
	nvme_ctrlr_init_step(ctrlr);
}

static void init_admin_done(void *cb_arg, const struct ust_nvme_cpl *cpl)
{
	struct ust_nvme_ctrlr *ctrlr = cb_arg;

	if (!ctrlr->init.pending || !ctrlr->init.awaiting_admin || cpl->cid != ctrlr->init.cid)
		return; /* stale: the machine was restarted (reset, detach) */
	ctrlr->init.pending = false;
	ctrlr->init.awaiting_admin = false;
	ctrlr->init.have_value = true;
	ctrlr->init.rc = ust_nvme_cpl_to_errno(cpl);
	ctrlr->init.cpl = *cpl;
	nvme_ctrlr_init_step(ctrlr);
}

static enum step_result init_read_reg(struct ust_nvme_ctrlr *ctrlr, uint32_t offset,
				      uint32_t size)
{
	int rc;

	ctrlr->init.pending = true;
	ctrlr->init.awaiting_admin = false;
	rc = ctrlr->ops->reg_read(ctrlr, offset, size, init_reg_done, ctrlr);
	if (rc != 0) {
		ctrlr->init.pending = false;
		nvme_ctrlr_fail(ctrlr, rc, "register read failed");
		return STEP_WAIT;
	}
	return STEP_AGAIN;
}

static enum step_result init_write_reg(struct ust_nvme_ctrlr *ctrlr, uint32_t offset,
				       uint32_t size, uint64_t value)
{
	int rc;

	ctrlr->init.pending = true;
	ctrlr->init.awaiting_admin = false;
	rc = ctrlr->ops->reg_write(ctrlr, offset, size, value, init_reg_done, ctrlr);
	if (rc != 0) {
		ctrlr->init.pending = false;
		nvme_ctrlr_fail(ctrlr, rc, "register write failed");
		return STEP_WAIT;
	}
	return STEP_AGAIN;
}

static enum step_result init_admin(struct ust_nvme_ctrlr *ctrlr, const struct ust_nvme_cmd *cmd,
				   void *buf, uint32_t len)
{
	uint16_t cid;
	int rc;

	ctrlr->init.pending = true;
	ctrlr->init.awaiting_admin = true;
	rc = submit_admin_cmd(ctrlr, cmd, buf, len, NVME_REQ_INTERNAL, init_admin_done, ctrlr,
			      &cid);
	if (rc != 0) {
		ctrlr->init.pending = false;
		ctrlr->init.awaiting_admin = false;
		nvme_ctrlr_fail(ctrlr, rc, "cannot submit an admin command");
		return STEP_WAIT;
	}
	/* The completion cannot have arrived yet: it is reaped by polling. */
	ctrlr->init.cid = cid;
	return STEP_AGAIN;
}

/* Take the result of the access just made; false if there is none yet. */
static bool init_take(struct ust_nvme_ctrlr *ctrlr)
{
	if (!ctrlr->init.have_value)
		return false;
	ctrlr->init.have_value = false;
	return true;
}

static bool reg_all_ones(const struct ust_nvme_ctrlr *ctrlr)
{
	return ctrlr->init.rc == 0 && (uint32_t)ctrlr->init.value == ALL_ONES_32;
}

static enum step_result init_fail(struct ust_nvme_ctrlr *ctrlr, int rc, const char *why)
{
	nvme_ctrlr_fail(ctrlr, rc, why);
	return STEP_WAIT;
}

/* ---- states -------------------------------------------------------------------- */

static void choose_page_size(struct ust_nvme_ctrlr *ctrlr)
{
	uint32_t mpsmin = ust_nvme_cap_mpsmin(ctrlr->cap), mpsmax = ust_nvme_cap_mpsmax(ctrlr->cap);
	uint32_t mps = 0; /* 4 KiB, the host page size, when the controller allows it */

	if (mps < mpsmin)
		mps = mpsmin;
	if (mps > mpsmax)
		mps = mpsmax;
	ctrlr->page_size = 1u << (12 + mps);
}

static enum step_result state_init(struct ust_nvme_ctrlr *ctrlr)
{
	if (!init_take(ctrlr))
		return init_read_reg(ctrlr, UST_NVME_REG_CAP, 8);
	if (ctrlr->init.rc != 0 || ctrlr->init.value == UINT64_MAX) {
		fail_removed(ctrlr);
		return STEP_WAIT;
	}
	ctrlr->cap = ctrlr->init.value;
	choose_page_size(ctrlr);
	set_state(ctrlr, NVME_CTRLR_STATE_READ_VS);
	return STEP_AGAIN;
}

static enum step_result state_read_vs(struct ust_nvme_ctrlr *ctrlr)
{
	if (!init_take(ctrlr))
		return init_read_reg(ctrlr, UST_NVME_REG_VS, 4);
	if (ctrlr->init.rc != 0)
		return init_fail(ctrlr, ctrlr->init.rc, "cannot read VS");
	ctrlr->vs = (uint32_t)ctrlr->init.value;
	set_state(ctrlr, NVME_CTRLR_STATE_READ_CC);
	return STEP_AGAIN;
}

static enum step_result state_read_cc(struct ust_nvme_ctrlr *ctrlr)
{
	if (!init_take(ctrlr))
		return init_read_reg(ctrlr, UST_NVME_REG_CC, 4);
	if (reg_all_ones(ctrlr)) {
		fail_removed(ctrlr);
		return STEP_WAIT;
	}
	if (ctrlr->init.rc != 0)
		return init_fail(ctrlr, ctrlr->init.rc, "cannot read CC");
	ctrlr->init.cc = (uint32_t)ctrlr->init.value;
	if (ctrlr->init.cc & UST_NVME_CC_EN)
		set_state(ctrlr, NVME_CTRLR_STATE_CHECK_EN);
	else
		set_wait_state(ctrlr, NVME_CTRLR_STATE_DISABLE_WAIT_FOR_READY_0);
	return STEP_AGAIN;
}

/* CC.EN is 1: it may only be cleared once CSTS.RDY is 1 too (Base spec 3.5.1). */
static enum step_result state_check_en(struct ust_nvme_ctrlr *ctrlr)
{
	if (!init_take(ctrlr))
		return init_read_reg(ctrlr, UST_NVME_REG_CSTS, 4);
	if (reg_all_ones(ctrlr)) {
		fail_removed(ctrlr);
		return STEP_WAIT;
	}
	if (ctrlr->init.value & UST_NVME_CSTS_RDY)
		set_state(ctrlr, NVME_CTRLR_STATE_DISABLE);
	else
		set_wait_state(ctrlr, NVME_CTRLR_STATE_DISABLE_WAIT_FOR_READY_1);
	return STEP_AGAIN;
}

static enum step_result state_disable_wait_for_ready_1(struct ust_nvme_ctrlr *ctrlr)
{
	if (!init_take(ctrlr))
		return init_read_reg(ctrlr, UST_NVME_REG_CSTS, 4);
	if (reg_all_ones(ctrlr)) {
		fail_removed(ctrlr);
		return STEP_WAIT;
	}
	if ((ctrlr->init.value & (UST_NVME_CSTS_RDY | UST_NVME_CSTS_CFS)) ||
	    deadline_passed(ctrlr)) {
		set_state(ctrlr, NVME_CTRLR_STATE_DISABLE);
		return STEP_AGAIN;
	}
	return STEP_WAIT;
}

static enum step_result state_disable(struct ust_nvme_ctrlr *ctrlr)
{
	if (!init_take(ctrlr))
		return init_write_reg(ctrlr, UST_NVME_REG_CC, 4, ctrlr->init.cc & ~UST_NVME_CC_EN);
	if (ctrlr->init.rc != 0)
		return init_fail(ctrlr, ctrlr->init.rc, "cannot write CC");
	set_wait_state(ctrlr, NVME_CTRLR_STATE_DISABLE_WAIT_FOR_READY_0);
	return STEP_AGAIN;
}

/* The controller is disabled: every queue it had is gone (Base spec 3.7.2). */
static void on_disabled(struct ust_nvme_ctrlr *ctrlr)
{
	__atomic_add_fetch(&ctrlr->gen, 1, __ATOMIC_ACQ_REL);
	ctrlr->adminq->state = NVME_QPAIR_DISCONNECTED;
	ctrlr->num_aers = 0;
	ctrlr->keep_alive_outstanding = false;
	nvme_qpair_abort_outstanding(ctrlr->adminq, false);
	ctrlr->ops->qpair_reset(ctrlr->adminq);
}

static enum step_result state_disable_wait_for_ready_0(struct ust_nvme_ctrlr *ctrlr)
{
	if (!init_take(ctrlr))
		return init_read_reg(ctrlr, UST_NVME_REG_CSTS, 4);
	if (reg_all_ones(ctrlr)) {
		fail_removed(ctrlr);
		return STEP_WAIT;
	}
	if (!(ctrlr->init.value & UST_NVME_CSTS_RDY)) {
		on_disabled(ctrlr);
		set_state(ctrlr, NVME_CTRLR_STATE_ENABLE_ADMIN_QUEUE);
		return STEP_AGAIN;
	}
	if (deadline_passed(ctrlr))
		return init_fail(ctrlr, -ETIMEDOUT, "CSTS.RDY did not clear within CAP.TO");
	return STEP_WAIT;
}

static enum step_result state_enable_admin_queue(struct ust_nvme_ctrlr *ctrlr)
{
	int rc = ctrlr->ops->ctrlr_enable(ctrlr);

	if (rc == -EAGAIN)
		return STEP_WAIT;
	if (rc != 0)
		return init_fail(ctrlr, rc, "cannot set up the admin queue");
	set_state(ctrlr, NVME_CTRLR_STATE_ENABLE);
	return STEP_AGAIN;
}

static uint32_t cc_for_enable(const struct ust_nvme_ctrlr *ctrlr)
{
	uint32_t mps = (uint32_t)__builtin_ctz(ctrlr->page_size) - 12;

	/* CSS 000b: NVM command set; AMS 000b: round robin; SHN 00b. */
	return UST_NVME_CC_EN | (mps << UST_NVME_CC_MPS_SHIFT) | (6u << UST_NVME_CC_IOSQES_SHIFT) |
	       (4u << UST_NVME_CC_IOCQES_SHIFT);
}

static enum step_result state_enable(struct ust_nvme_ctrlr *ctrlr)
{
	if (!init_take(ctrlr)) {
		ctrlr->init.cc = cc_for_enable(ctrlr);
		return init_write_reg(ctrlr, UST_NVME_REG_CC, 4, ctrlr->init.cc);
	}
	if (ctrlr->init.rc != 0)
		return init_fail(ctrlr, ctrlr->init.rc, "cannot write CC");
	set_wait_state(ctrlr, NVME_CTRLR_STATE_ENABLE_WAIT_FOR_READY_1);
	return STEP_AGAIN;
}

static enum step_result state_enable_wait_for_ready_1(struct ust_nvme_ctrlr *ctrlr)
{
	if (!init_take(ctrlr))
		return init_read_reg(ctrlr, UST_NVME_REG_CSTS, 4);
	if (reg_all_ones(ctrlr)) {
		fail_removed(ctrlr);
		return STEP_WAIT;
	}
	if (ctrlr->init.value & UST_NVME_CSTS_CFS)
		return init_fail(ctrlr, -EIO, "CSTS.CFS set while enabling");
	if (ctrlr->init.value & UST_NVME_CSTS_RDY) {
		ctrlr->adminq->state = NVME_QPAIR_CONNECTED;
		set_state(ctrlr, NVME_CTRLR_STATE_IDENTIFY);
		return STEP_AGAIN;
	}
	if (deadline_passed(ctrlr))
		return init_fail(ctrlr, -ETIMEDOUT, "CSTS.RDY did not set within CAP.TO");
	return STEP_WAIT;
}

static void apply_identify(struct ust_nvme_ctrlr *ctrlr)
{
	const struct ust_nvme_ctrlr_data *cd = ctrlr->cdata;
	uint32_t max = ctrlr->ops->max_xfer_size(ctrlr);
	uint64_t mdts_bytes;

	if (cd->mdts != 0) {
		mdts_bytes = (1ULL << cd->mdts) * (1ULL << (12 + ust_nvme_cap_mpsmin(ctrlr->cap)));
		if (mdts_bytes < max)
			max = (uint32_t)mdts_bytes;
	}
	ctrlr->max_xfer_size = max;
	ctrlr->use_sgl = ctrlr->opts.prefer_sgl && (cd->sgls & 3) != 0;
	ctrlr->sgl_dword_aligned = (cd->sgls & 3) == UST_NVME_SGLS_SUPPORTED_DWORD_ALIGNED;
	ctrlr->io_queue_size = ctrlr->opts.io_queue_size;
	if (ctrlr->io_queue_size > ust_nvme_cap_mqes(ctrlr->cap) + 1)
		ctrlr->io_queue_size = ust_nvme_cap_mqes(ctrlr->cap) + 1;
}

static int resize_namespaces(struct ust_nvme_ctrlr *ctrlr, uint32_t nn)
{
	struct ust_nvme_ns **ns;
	uint32_t i;

	if (nn > MAX_NN) {
		UST_WARNLOG("NVMe %s: NN %u; only namespaces 1..%u are used\n", ctrlr->trid.traddr,
			    nn, MAX_NN);
		nn = MAX_NN;
	}
	if (nn == ctrlr->num_ns)
		return 0;
	for (i = nn; i < ctrlr->num_ns; i++) {
		free(ctrlr->ns[i]);
		ctrlr->ns[i] = NULL;
	}
	ns = realloc(ctrlr->ns, sizeof(*ns) * (nn ? nn : 1));
	if (ns == NULL)
		return -ENOMEM;
	for (i = ctrlr->num_ns; i < nn; i++)
		ns[i] = NULL;
	ctrlr->ns = ns;
	ctrlr->num_ns = nn;
	return 0;
}

static enum step_result state_identify(struct ust_nvme_ctrlr *ctrlr)
{
	struct ust_nvme_cmd cmd;

	if (!init_take(ctrlr)) {
		nvme_cmd_identify(&cmd, UST_NVME_CNS_CONTROLLER, 0, 0);
		return init_admin(ctrlr, &cmd, ctrlr->cdata, sizeof(*ctrlr->cdata));
	}
	if (ctrlr->init.rc != 0)
		return init_fail(ctrlr, ctrlr->init.rc, "Identify Controller failed");
	apply_identify(ctrlr);
	if (resize_namespaces(ctrlr, ctrlr->cdata->nn) != 0)
		return init_fail(ctrlr, -ENOMEM, "no memory for the namespace table");
	set_state(ctrlr, NVME_CTRLR_STATE_SET_NUM_QUEUES);
	return STEP_AGAIN;
}

static enum step_result state_set_num_queues(struct ust_nvme_ctrlr *ctrlr)
{
	struct ust_nvme_cmd cmd;
	uint32_t nsqa, ncqa, n;
	bool *used;

	if (!init_take(ctrlr)) {
		nvme_cmd_set_num_queues(&cmd, ctrlr->opts.num_io_queues);
		return init_admin(ctrlr, &cmd, NULL, 0);
	}
	if (ctrlr->init.rc != 0)
		return init_fail(ctrlr, ctrlr->init.rc, "Set Features Number of Queues failed");
	/* Base spec 5.27.1.5: DW0 NCQA 31:16, NSQA 15:0, 0's based. */
	nsqa = (ctrlr->init.cpl.cdw0 & 0xffff) + 1;
	ncqa = (ctrlr->init.cpl.cdw0 >> 16) + 1;
	n = nsqa < ncqa ? nsqa : ncqa;
	if (n > ctrlr->opts.num_io_queues)
		n = ctrlr->opts.num_io_queues;
	/* Keep qid slots of qpairs that exist across a reset. */
	if (ctrlr->qid_used == NULL || n > ctrlr->num_io_queues) {
		used = calloc(n + 1, sizeof(*used));
		if (used == NULL)
			return init_fail(ctrlr, -ENOMEM, "no memory for queue IDs");
		if (ctrlr->qid_used != NULL)
			memcpy(used, ctrlr->qid_used, sizeof(*used) * (ctrlr->num_io_queues + 1));
		free(ctrlr->qid_used);
		ctrlr->qid_used = used;
		ctrlr->num_io_queues = n;
	}
	set_state(ctrlr, NVME_CTRLR_STATE_SET_KEEP_ALIVE_TIMEOUT);
	return STEP_AGAIN;
}

static enum step_result state_set_keep_alive_timeout(struct ust_nvme_ctrlr *ctrlr)
{
	uint32_t kato = ctrlr->opts.keep_alive_timeout_ms;
	struct ust_nvme_cmd cmd;

	if (kato == 0 || ctrlr->cdata->kas == 0) {
		ctrlr->keep_alive_interval_ticks = 0;
		set_state(ctrlr, NVME_CTRLR_STATE_IDENTIFY_ACTIVE_NS);
		return STEP_AGAIN;
	}
	if (!ctrlr->kato_in_connect && !init_take(ctrlr)) {
		nvme_cmd_set_features(&cmd, UST_NVME_FEAT_KEEP_ALIVE_TIMER, kato, 0);
		return init_admin(ctrlr, &cmd, NULL, 0);
	}
	if (!ctrlr->kato_in_connect && ctrlr->init.rc != 0) {
		UST_WARNLOG("NVMe %s: Keep Alive Timer not accepted; no keep-alive\n",
			    ctrlr->trid.traddr);
		ctrlr->keep_alive_interval_ticks = 0;
	} else {
		/* Send at half the timeout so one late command does not expire it. */
		ctrlr->keep_alive_interval_ticks = us_to_ticks((uint64_t)kato * 1000 / 2);
		ctrlr->next_keep_alive_tick = ust_get_ticks() + ctrlr->keep_alive_interval_ticks;
	}
	set_state(ctrlr, NVME_CTRLR_STATE_IDENTIFY_ACTIVE_NS);
	return STEP_AGAIN;
}

static int start_active_list(struct ust_nvme_ctrlr *ctrlr)
{
	free(ctrlr->new_active_ns);
	ctrlr->new_active_ns = calloc(ctrlr->num_ns ? ctrlr->num_ns : 1, sizeof(uint32_t));
	ctrlr->num_new_active_ns = 0;
	ctrlr->init.next_nsid = 0;
	ctrlr->init.ns_idx = 0;
	return ctrlr->new_active_ns != NULL ? 0 : -ENOMEM;
}

/* Before NVMe 1.1 there is no active list: try every NSID (Base spec 5.17.2.2). */
static void fallback_active_list(struct ust_nvme_ctrlr *ctrlr)
{
	uint32_t i;

	for (i = 0; i < ctrlr->num_ns; i++)
		ctrlr->new_active_ns[i] = i + 1;
	ctrlr->num_new_active_ns = ctrlr->num_ns;
}

static enum step_result state_identify_active_ns(struct ust_nvme_ctrlr *ctrlr)
{
	const uint32_t *list = ctrlr->scratch;
	struct ust_nvme_cmd cmd;
	uint32_t i, nsid = 0;

	if (!init_take(ctrlr)) {
		if (ctrlr->init.next_nsid == 0 && start_active_list(ctrlr) != 0)
			return init_fail(ctrlr, -ENOMEM, "no memory for the namespace list");
		if (ctrlr->vs < UST_NVME_VS(1, 1, 0) || ctrlr->init.active_list_fallback ||
		    ctrlr->num_ns == 0) {
			fallback_active_list(ctrlr);
			set_state(ctrlr, NVME_CTRLR_STATE_IDENTIFY_NS);
			return STEP_AGAIN;
		}
		nvme_cmd_identify(&cmd, UST_NVME_CNS_ACTIVE_NS_LIST, 0, ctrlr->init.next_nsid);
		return init_admin(ctrlr, &cmd, ctrlr->scratch, 4096);
	}
	if (ctrlr->init.rc != 0) {
		UST_NOTICELOG("NVMe %s: no active namespace list (%s); trying NSIDs 1..%u\n",
			      ctrlr->trid.traddr, ust_nvme_cpl_status_str(&ctrlr->init.cpl),
			      ctrlr->num_ns);
		ctrlr->init.active_list_fallback = true;
		fallback_active_list(ctrlr);
		set_state(ctrlr, NVME_CTRLR_STATE_IDENTIFY_NS);
		return STEP_AGAIN;
	}
	/* Up to 1024 NSIDs greater than next_nsid, ascending, ended by 0. */
	for (i = 0; i < 1024 && list[i] != 0; i++) {
		nsid = list[i];
		if (nsid > ctrlr->num_ns || nsid <= ctrlr->init.next_nsid ||
		    ctrlr->num_new_active_ns == ctrlr->num_ns)
			break;
		ctrlr->new_active_ns[ctrlr->num_new_active_ns++] = nsid;
	}
	if (i == 1024 && nsid < ctrlr->num_ns) {
		ctrlr->init.next_nsid = nsid;
		return STEP_AGAIN; /* the next 1024 */
	}
	set_state(ctrlr, NVME_CTRLR_STATE_IDENTIFY_NS);
	return STEP_AGAIN;
}

static int store_ns_data(struct ust_nvme_ctrlr *ctrlr, uint32_t nsid,
			 const struct ust_nvme_ns_data *data)
{
	struct ust_nvme_ns *ns = ctrlr->ns[nsid - 1];

	if (ns == NULL) {
		ns = calloc(1, sizeof(*ns));
		if (ns == NULL)
			return -ENOMEM;
		ns->ctrlr = ctrlr;
		ns->id = nsid;
		ctrlr->ns[nsid - 1] = ns;
	}
	nvme_ns_update(ns, data);
	return 0;
}

/* Swap in the new active list; namespaces that left it become inactive. */
static void commit_active_list(struct ust_nvme_ctrlr *ctrlr)
{
	uint32_t i;

	for (i = 0; i < ctrlr->num_ns; i++) {
		if (ctrlr->ns[i] != NULL)
			ctrlr->ns[i]->active = false;
	}
	for (i = 0; i < ctrlr->num_new_active_ns; i++)
		ctrlr->ns[ctrlr->new_active_ns[i] - 1]->active = true;
	free(ctrlr->active_ns);
	ctrlr->active_ns = ctrlr->new_active_ns;
	ctrlr->num_active_ns = ctrlr->num_new_active_ns;
	ctrlr->new_active_ns = NULL;
	ctrlr->num_new_active_ns = 0;
}

static void drop_new_active(struct ust_nvme_ctrlr *ctrlr, uint32_t idx)
{
	memmove(&ctrlr->new_active_ns[idx], &ctrlr->new_active_ns[idx + 1],
		sizeof(uint32_t) * (ctrlr->num_new_active_ns - idx - 1));
	ctrlr->num_new_active_ns--;
}

static enum step_result state_identify_ns(struct ust_nvme_ctrlr *ctrlr)
{
	const struct ust_nvme_ns_data *data = ctrlr->scratch;
	struct ust_nvme_cmd cmd;
	uint32_t idx = ctrlr->init.ns_idx, nsid;

	if (idx >= ctrlr->num_new_active_ns) {
		commit_active_list(ctrlr);
		if (ctrlr->init.purpose == NVME_INIT_NS_RESCAN) {
			set_state(ctrlr, NVME_CTRLR_STATE_READY);
			return STEP_AGAIN;
		}
		set_state(ctrlr, NVME_CTRLR_STATE_CONFIGURE_AER);
		return STEP_AGAIN;
	}
	nsid = ctrlr->new_active_ns[idx];
	if (!init_take(ctrlr)) {
		nvme_cmd_identify(&cmd, UST_NVME_CNS_NAMESPACE, 0, nsid);
		return init_admin(ctrlr, &cmd, ctrlr->scratch, 4096);
	}
	/* An inactive NSID identifies as all zeroes (Base spec 5.17.2.1). */
	if (ctrlr->init.rc != 0 || data->nsze == 0) {
		drop_new_active(ctrlr, idx);
		return STEP_AGAIN;
	}
	if (store_ns_data(ctrlr, nsid, data) != 0)
		return init_fail(ctrlr, -ENOMEM, "no memory for a namespace");
	ctrlr->init.ns_idx++;
	return STEP_AGAIN;
}

static enum step_result state_configure_aer(struct ust_nvme_ctrlr *ctrlr)
{
	struct ust_nvme_cmd cmd;
	/* SMART critical warnings: spare, temperature, reliability, read-only, backup. */
	uint32_t config = 0x1f;

	if (!init_take(ctrlr)) {
		if (ctrlr->cdata->oaes & UST_NVME_OAES_NS_ATTRIBUTE_NOTICES)
			config |= UST_NVME_AEC_NS_ATTRIBUTE_NOTICES;
		nvme_cmd_set_features(&cmd, UST_NVME_FEAT_ASYNC_EVENT_CONFIGURATION, config, 0);
		return init_admin(ctrlr, &cmd, NULL, 0);
	}
	if (ctrlr->init.rc != 0)
		UST_NOTICELOG("NVMe %s: Asynchronous Event Configuration refused: %s\n",
			      ctrlr->trid.traddr, ust_nvme_cpl_status_str(&ctrlr->init.cpl));
	set_state(ctrlr, NVME_CTRLR_STATE_SUBMIT_AERS);
	return STEP_AGAIN;
}

static void aer_done(void *cb_arg, const struct ust_nvme_cpl *cpl);

static int submit_aer(struct ust_nvme_ctrlr *ctrlr)
{
	struct ust_nvme_cmd cmd;
	int rc;

	nvme_cmd_async_event_request(&cmd);
	rc = submit_admin_cmd(ctrlr, &cmd, NULL, 0, NVME_REQ_AER | NVME_REQ_INTERNAL, aer_done,
			      ctrlr, NULL);
	if (rc == 0)
		ctrlr->num_aers++;
	return rc;
}

static enum step_result state_submit_aers(struct ust_nvme_ctrlr *ctrlr)
{
	uint32_t want = ctrlr->opts.aer_count;

	/* AERL is 0's based (Base spec 5.2). */
	if (want > (uint32_t)ctrlr->cdata->aerl + 1)
		want = (uint32_t)ctrlr->cdata->aerl + 1;
	while (ctrlr->num_aers < want) {
		if (submit_aer(ctrlr) != 0) {
			UST_WARNLOG("NVMe %s: cannot submit an Asynchronous Event Request\n",
				    ctrlr->trid.traddr);
			break;
		}
	}
	set_state(ctrlr, NVME_CTRLR_STATE_READY);
	return STEP_AGAIN;
}

static void finish_format(struct ust_nvme_ctrlr *ctrlr)
{
	ust_nvme_cmd_cb cb = ctrlr->init.format_cb;

	if (cb == NULL)
		return;
	ctrlr->init.format_cb = NULL;
	cb(ctrlr->init.format_cb_arg, &ctrlr->init.format_cpl);
}

static void notify_ns_change(struct ust_nvme_ctrlr *ctrlr)
{
	struct ust_nvme_cpl cpl;

	if (!ctrlr->pending_aen_valid)
		return;
	ctrlr->pending_aen_valid = false;
	cpl = ctrlr->pending_aen;
	if (ctrlr->ns_change_cb != NULL)
		ctrlr->ns_change_cb(ctrlr->ns_change_ctx, ctrlr);
	if (ctrlr->aer_cb != NULL)
		ctrlr->aer_cb(ctrlr->aer_cb_arg, &cpl);
}

static enum step_result state_ready(struct ust_nvme_ctrlr *ctrlr)
{
	enum nvme_ctrlr_init_purpose purpose = ctrlr->init.purpose;

	if (ctrlr->init_status == 0 && !ctrlr->rescanning)
		return STEP_WAIT;
	ctrlr->init_status = 0;
	ctrlr->rescanning = false;
	ctrlr->init.purpose = NVME_INIT_ATTACH;
	ctrlr->next_health_check_tick = ust_get_ticks() +
					us_to_ticks(ctrlr->opts.health_check_interval_us);
	if (purpose == NVME_INIT_RESET)
		UST_NOTICELOG("NVMe %s: controller reset complete\n", ctrlr->trid.traddr);
	else if (purpose == NVME_INIT_ATTACH)
		UST_INFOLOG("NVMe %s: controller ready, %u active namespace(s)\n",
			    ctrlr->trid.traddr, ctrlr->num_active_ns);
	finish_format(ctrlr);
	notify_ns_change(ctrlr);
	return STEP_WAIT;
}

/* ---- shutdown (Base spec 3.6.1: CC.SHN = 01b, wait for CSTS.SHST = 10b) ---- */

static enum step_result state_shutdown(struct ust_nvme_ctrlr *ctrlr)
{
	uint64_t us = ctrlr->cdata->rtd3e;

	/* init.cc is what enable wrote; EN stays 1 while shutting down. */
	if (!init_take(ctrlr))
		return init_write_reg(ctrlr, UST_NVME_REG_CC, 4,
				      (ctrlr->init.cc & ~UST_NVME_CC_SHN_MASK) |
					      UST_NVME_CC_SHN_NORMAL);
	if (ctrlr->init.rc != 0) {
		set_state(ctrlr, NVME_CTRLR_STATE_SHUTDOWN_DONE);
		return STEP_AGAIN;
	}
	/* RTD3E (microseconds) is the controller's own estimate, when it gives one. */
	if (us == 0)
		us = DEFAULT_SHUTDOWN_TIMEOUT_US;
	if (us > MAX_SHUTDOWN_TIMEOUT_US)
		us = MAX_SHUTDOWN_TIMEOUT_US;
	ctrlr->shutdown_deadline = ust_get_ticks() + us_to_ticks(us);
	set_state(ctrlr, NVME_CTRLR_STATE_SHUTDOWN_WAIT);
	return STEP_AGAIN;
}

static enum step_result state_shutdown_wait(struct ust_nvme_ctrlr *ctrlr)
{
	if (!init_take(ctrlr))
		return init_read_reg(ctrlr, UST_NVME_REG_CSTS, 4);
	if (ctrlr->init.rc != 0 || reg_all_ones(ctrlr) ||
	    (ctrlr->init.value & UST_NVME_CSTS_SHST_MASK) == UST_NVME_CSTS_SHST_COMPLETE) {
		set_state(ctrlr, NVME_CTRLR_STATE_SHUTDOWN_DONE);
		return STEP_AGAIN;
	}
	if ((int64_t)(ust_get_ticks() - ctrlr->shutdown_deadline) >= 0) {
		UST_WARNLOG("NVMe %s: shutdown did not complete in time\n", ctrlr->trid.traddr);
		set_state(ctrlr, NVME_CTRLR_STATE_SHUTDOWN_DONE);
		return STEP_AGAIN;
	}
	return STEP_WAIT;
}

static enum step_result init_step_once(struct ust_nvme_ctrlr *ctrlr)
{
	switch ((enum nvme_ctrlr_state)ctrlr->state) {
	case NVME_CTRLR_STATE_INIT:
		return state_init(ctrlr);
	case NVME_CTRLR_STATE_READ_VS:
		return state_read_vs(ctrlr);
	case NVME_CTRLR_STATE_READ_CC:
		return state_read_cc(ctrlr);
	case NVME_CTRLR_STATE_CHECK_EN:
		return state_check_en(ctrlr);
	case NVME_CTRLR_STATE_DISABLE_WAIT_FOR_READY_1:
		return state_disable_wait_for_ready_1(ctrlr);
	case NVME_CTRLR_STATE_DISABLE:
		return state_disable(ctrlr);
	case NVME_CTRLR_STATE_DISABLE_WAIT_FOR_READY_0:
		return state_disable_wait_for_ready_0(ctrlr);
	case NVME_CTRLR_STATE_ENABLE_ADMIN_QUEUE:
		return state_enable_admin_queue(ctrlr);
	case NVME_CTRLR_STATE_ENABLE:
		return state_enable(ctrlr);
	case NVME_CTRLR_STATE_ENABLE_WAIT_FOR_READY_1:
		return state_enable_wait_for_ready_1(ctrlr);
	case NVME_CTRLR_STATE_IDENTIFY:
		return state_identify(ctrlr);
	case NVME_CTRLR_STATE_SET_NUM_QUEUES:
		return state_set_num_queues(ctrlr);
	case NVME_CTRLR_STATE_SET_KEEP_ALIVE_TIMEOUT:
		return state_set_keep_alive_timeout(ctrlr);
	case NVME_CTRLR_STATE_IDENTIFY_ACTIVE_NS:
		return state_identify_active_ns(ctrlr);
	case NVME_CTRLR_STATE_IDENTIFY_NS:
		return state_identify_ns(ctrlr);
	case NVME_CTRLR_STATE_CONFIGURE_AER:
		return state_configure_aer(ctrlr);
	case NVME_CTRLR_STATE_SUBMIT_AERS:
		return state_submit_aers(ctrlr);
	case NVME_CTRLR_STATE_READY:
		return state_ready(ctrlr);
	case NVME_CTRLR_STATE_SHUTDOWN:
		return state_shutdown(ctrlr);
	case NVME_CTRLR_STATE_SHUTDOWN_WAIT:
		return state_shutdown_wait(ctrlr);
	case NVME_CTRLR_STATE_SHUTDOWN_DONE:
	case NVME_CTRLR_STATE_FAILED:
	default:
		return STEP_WAIT;
	}
}

static void nvme_ctrlr_init_step(struct ust_nvme_ctrlr *ctrlr)
{
	pthread_mutex_lock(&ctrlr->lock);
	if (ctrlr->init.in_step) {
		/* A completion arrived inline: the running loop picks it up. */
		pthread_mutex_unlock(&ctrlr->lock);
		return;
	}
	ctrlr->init.in_step = true;
	while (!ctrlr->init.pending && init_step_once(ctrlr) == STEP_AGAIN)
		;
	ctrlr->init.in_step = false;
	pthread_mutex_unlock(&ctrlr->lock);
}

/* ---- asynchronous events ---------------------------------------------------------- */

static uint32_t aen_log_size(uint32_t lid)
{
	switch (lid) {
	case UST_NVME_LOG_ERROR:
		return sizeof(struct ust_nvme_error_log_entry);
	case UST_NVME_LOG_CHANGED_NS_LIST:
		return sizeof(struct ust_nvme_ns_list);
	default:
		return sizeof(struct ust_nvme_health_log);
	}
}

/*
 * Read the log page the event names, with RAE clear: that re-arms the event
 * type (Base spec 5.2: an event is masked until its log page is read).
 */
static void read_aen_log(struct ust_nvme_ctrlr *ctrlr, uint32_t lid)
{
	struct ust_nvme_cmd cmd;
	uint32_t len = aen_log_size(lid);

	nvme_cmd_get_log_page(&cmd, (uint8_t)lid, UINT32_MAX, len / 4, 0, false);
	if (submit_admin_cmd(ctrlr, &cmd, ctrlr->changed_ns_log, len, NVME_REQ_INTERNAL, NULL,
			     NULL, NULL) != 0)
		UST_WARNLOG("NVMe %s: cannot read log page %02x for an event\n",
			    ctrlr->trid.traddr, lid);
}

static void aer_done(void *cb_arg, const struct ust_nvme_cpl *cpl)
{
	struct ust_nvme_ctrlr *ctrlr = cb_arg;
	uint32_t type, info;

	if (ctrlr->num_aers > 0)
		ctrlr->num_aers--;
	if (ust_nvme_cpl_sct(cpl) == UST_NVME_SCT_GENERIC &&
	    ust_nvme_cpl_sc(cpl) == UST_NVME_SC_ABORTED_SQ_DELETION)
		return; /* the queue went away; reinitialisation submits new ones */
	if (ust_nvme_cpl_is_error(cpl)) {
		UST_NOTICELOG("NVMe %s: Asynchronous Event Request failed: %s\n",
			      ctrlr->trid.traddr, ust_nvme_cpl_status_str(cpl));
		return;
	}
	type = ust_nvme_aer_type(cpl->cdw0);
	info = ust_nvme_aer_info(cpl->cdw0);
	UST_INFOLOG("NVMe %s: asynchronous event type %u info %02x log page %02x\n",
		    ctrlr->trid.traddr, type, info, ust_nvme_aer_log_page(cpl->cdw0));
	read_aen_log(ctrlr, ust_nvme_aer_log_page(cpl->cdw0));
	if (type == UST_NVME_AER_TYPE_NOTICE && info == UST_NVME_AER_NOTICE_NS_ATTR_CHANGED) {
		/* Rescanned from process_admin_completions; callbacks after it. */
		ctrlr->ns_rescan_wanted = true;
		ctrlr->pending_aen = *cpl;
		ctrlr->pending_aen_valid = true;
	} else if (ctrlr->aer_cb != NULL) {
		ctrlr->aer_cb(ctrlr->aer_cb_arg, cpl);
	}
	if (submit_aer(ctrlr) != 0)
		UST_WARNLOG("NVMe %s: cannot resubmit an Asynchronous Event Request\n",
			    ctrlr->trid.traddr);
}

void ust_nvme_ctrlr_register_aer_callback(struct ust_nvme_ctrlr *ctrlr, ust_nvme_cmd_cb cb,
					  void *cb_arg)
{
	pthread_mutex_lock(&ctrlr->lock);
	ctrlr->aer_cb = cb;
	ctrlr->aer_cb_arg = cb_arg;
	pthread_mutex_unlock(&ctrlr->lock);
}

void ust_nvme_ctrlr_register_ns_change_callback(struct ust_nvme_ctrlr *ctrlr,
						ust_nvme_ns_change_cb cb, void *ctx)
{
	pthread_mutex_lock(&ctrlr->lock);
	ctrlr->ns_change_cb = cb;
	ctrlr->ns_change_ctx = ctx;
	pthread_mutex_unlock(&ctrlr->lock);
}

/* Re-identify the namespaces while the controller stays ready. */
static void start_ns_rescan(struct ust_nvme_ctrlr *ctrlr)
{
	ctrlr->ns_rescan_wanted = false;
	ctrlr->rescanning = true;
	ctrlr->init.purpose = NVME_INIT_NS_RESCAN;
	ctrlr->init.active_list_fallback = false;
	ctrlr->init.next_nsid = 0;
	set_state(ctrlr, NVME_CTRLR_STATE_IDENTIFY_ACTIVE_NS);
	nvme_ctrlr_init_step(ctrlr);
}

/* ---- keep-alive and health ------------------------------------------------------- */

static void keep_alive_done(void *cb_arg, const struct ust_nvme_cpl *cpl)
{
	struct ust_nvme_ctrlr *ctrlr = cb_arg;

	ctrlr->keep_alive_outstanding = false;
	if (ust_nvme_cpl_sct(cpl) == UST_NVME_SCT_GENERIC &&
	    ust_nvme_cpl_sc(cpl) == UST_NVME_SC_ABORTED_SQ_DELETION)
		return;
	if (ust_nvme_cpl_is_error(cpl))
		nvme_ctrlr_fail(ctrlr, -ENXIO, "Keep Alive failed");
}

static void send_keep_alive(struct ust_nvme_ctrlr *ctrlr, uint64_t now)
{
	struct ust_nvme_cmd cmd;

	if (ctrlr->keep_alive_interval_ticks == 0 || ctrlr->keep_alive_outstanding ||
	    now < ctrlr->next_keep_alive_tick)
		return;
	nvme_cmd_keep_alive(&cmd);
	if (submit_admin_cmd(ctrlr, &cmd, NULL, 0, NVME_REQ_INTERNAL, keep_alive_done, ctrlr,
			     NULL) == 0)
		ctrlr->keep_alive_outstanding = true;
	ctrlr->next_keep_alive_tick = now + ctrlr->keep_alive_interval_ticks;
}

static void health_done(void *cb_arg, int rc, uint64_t value)
{
	struct ust_nvme_ctrlr *ctrlr = cb_arg;

	ctrlr->health_check_pending = false;
	if (rc != 0 || nvme_ctrlr_get_state(ctrlr) != NVME_CTRLR_STATE_READY)
		return;
	if ((uint32_t)value == ALL_ONES_32)
		fail_removed(ctrlr);
	else if (value & UST_NVME_CSTS_CFS)
		nvme_ctrlr_fail(ctrlr, -EIO, "CSTS.CFS (controller fatal status) is set");
}

static void check_health(struct ust_nvme_ctrlr *ctrlr, uint64_t now)
{
	if (ctrlr->health_check_pending || now < ctrlr->next_health_check_tick)
		return;
	ctrlr->next_health_check_tick = now + us_to_ticks(ctrlr->opts.health_check_interval_us);
	ctrlr->health_check_pending = true;
	if (ctrlr->ops->reg_read(ctrlr, UST_NVME_REG_CSTS, 4, health_done, ctrlr) != 0)
		ctrlr->health_check_pending = false;
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
		fail_removed(ctrlr);
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
			check_health(ctrlr, now);
		if (ctrlr->state == NVME_CTRLR_STATE_READY)
			send_keep_alive(ctrlr, now);
		if (ctrlr->ns_rescan_wanted && !ctrlr->rescanning &&
		    ctrlr->state == NVME_CTRLR_STATE_READY)
			start_ns_rescan(ctrlr);
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
	set_state(ctrlr, NVME_CTRLR_STATE_INIT);
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
		set_state(ctrlr, NVME_CTRLR_STATE_SHUTDOWN_DONE);
	else
		set_state(ctrlr, NVME_CTRLR_STATE_SHUTDOWN);
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
