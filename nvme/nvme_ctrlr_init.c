/*
 * NVMe controller bring-up (nvme/): the one state machine that brings a
 * controller up, resets it, rescans its namespaces and shuts it down.
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
 *
 * Guarantees:
 *  - Every register wait is bounded: CSTS.RDY waits by CAP.TO, a shutdown
 *    by RTD3E (10 s when the controller gives none, 60 s at most). A
 *    controller that does not answer fails; nothing waits forever.
 *  - Registers reading all ones mean the device is gone: at any step the
 *    controller then fails as removed (-ENODEV).
 *  - Only the access the machine waits for advances it: a completion from
 *    a step that was abandoned (reset, detach) is ignored.
 *  - The machine runs under the controller lock and is never re-entered: a
 *    completion that arrives inline is taken up by the loop already running.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"

#include "nvme_internal.h"

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

void nvme_ctrlr_set_state(struct ust_nvme_ctrlr *ctrlr, enum nvme_ctrlr_state state)
{
	UST_DEBUGLOG(nvme, "NVMe %s: %s -> %s\n", ctrlr->trid.traddr,
		     nvme_ctrlr_state_str(ctrlr->state), nvme_ctrlr_state_str(state));
	ctrlr->init.have_value = false;
	__atomic_store_n(&ctrlr->state, (int)state, __ATOMIC_RELEASE);
}

/* CAP.TO is in 500 ms units (Base spec 3.1.3.1); never wait less than that. */
static void set_wait_state(struct ust_nvme_ctrlr *ctrlr, enum nvme_ctrlr_state state)
{
	uint64_t to = ust_nvme_cap_to(ctrlr->cap);

	if (to == 0)
		to = 1;
	ctrlr->init.deadline = ust_get_ticks() + nvme_us_to_ticks(to * 500 * 1000);
	nvme_ctrlr_set_state(ctrlr, state);
}

static bool deadline_passed(const struct ust_nvme_ctrlr *ctrlr)
{
	return (int64_t)(ust_get_ticks() - ctrlr->init.deadline) >= 0;
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
	rc = nvme_ctrlr_submit_admin_cmd(ctrlr, cmd, buf, len, NVME_REQ_INTERNAL, init_admin_done,
					 ctrlr, &cid);
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
	return ctrlr->init.rc == 0 && (uint32_t)ctrlr->init.value == NVME_REG_ALL_ONES;
}

/* The register read all ones: the device is gone, and the controller fails as removed. */
static bool reg_gone(struct ust_nvme_ctrlr *ctrlr)
{
	if (!reg_all_ones(ctrlr))
		return false;
	nvme_ctrlr_fail_removed(ctrlr);
	return true;
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
		nvme_ctrlr_fail_removed(ctrlr);
		return STEP_WAIT;
	}
	ctrlr->cap = ctrlr->init.value;
	choose_page_size(ctrlr);
	nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_READ_VS);
	return STEP_AGAIN;
}

static enum step_result state_read_vs(struct ust_nvme_ctrlr *ctrlr)
{
	if (!init_take(ctrlr))
		return init_read_reg(ctrlr, UST_NVME_REG_VS, 4);
	if (ctrlr->init.rc != 0)
		return init_fail(ctrlr, ctrlr->init.rc, "cannot read VS");
	ctrlr->vs = (uint32_t)ctrlr->init.value;
	nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_READ_CC);
	return STEP_AGAIN;
}

static enum step_result state_read_cc(struct ust_nvme_ctrlr *ctrlr)
{
	if (!init_take(ctrlr))
		return init_read_reg(ctrlr, UST_NVME_REG_CC, 4);
	if (reg_gone(ctrlr))
		return STEP_WAIT;
	if (ctrlr->init.rc != 0)
		return init_fail(ctrlr, ctrlr->init.rc, "cannot read CC");
	ctrlr->init.cc = (uint32_t)ctrlr->init.value;
	if (ctrlr->init.cc & UST_NVME_CC_EN)
		nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_CHECK_EN);
	else
		set_wait_state(ctrlr, NVME_CTRLR_STATE_DISABLE_WAIT_FOR_READY_0);
	return STEP_AGAIN;
}

/* CC.EN is 1: it may only be cleared once CSTS.RDY is 1 too (Base spec 3.5.1). */
static enum step_result state_check_en(struct ust_nvme_ctrlr *ctrlr)
{
	if (!init_take(ctrlr))
		return init_read_reg(ctrlr, UST_NVME_REG_CSTS, 4);
	if (reg_gone(ctrlr))
		return STEP_WAIT;
	if (ctrlr->init.value & UST_NVME_CSTS_RDY)
		nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_DISABLE);
	else
		set_wait_state(ctrlr, NVME_CTRLR_STATE_DISABLE_WAIT_FOR_READY_1);
	return STEP_AGAIN;
}

static enum step_result state_disable_wait_for_ready_1(struct ust_nvme_ctrlr *ctrlr)
{
	if (!init_take(ctrlr))
		return init_read_reg(ctrlr, UST_NVME_REG_CSTS, 4);
	if (reg_gone(ctrlr))
		return STEP_WAIT;
	if ((ctrlr->init.value & (UST_NVME_CSTS_RDY | UST_NVME_CSTS_CFS)) ||
	    deadline_passed(ctrlr)) {
		nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_DISABLE);
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
	if (reg_gone(ctrlr))
		return STEP_WAIT;
	if (!(ctrlr->init.value & UST_NVME_CSTS_RDY)) {
		on_disabled(ctrlr);
		nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_ENABLE_ADMIN_QUEUE);
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
	nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_ENABLE);
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
	if (reg_gone(ctrlr))
		return STEP_WAIT;
	if (ctrlr->init.value & UST_NVME_CSTS_CFS)
		return init_fail(ctrlr, -EIO, "CSTS.CFS set while enabling");
	if (ctrlr->init.value & UST_NVME_CSTS_RDY) {
		ctrlr->adminq->state = NVME_QPAIR_CONNECTED;
		nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_IDENTIFY);
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
	nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_SET_NUM_QUEUES);
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
	nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_SET_KEEP_ALIVE_TIMEOUT);
	return STEP_AGAIN;
}

static enum step_result state_set_keep_alive_timeout(struct ust_nvme_ctrlr *ctrlr)
{
	uint32_t kato = ctrlr->opts.keep_alive_timeout_ms;
	struct ust_nvme_cmd cmd;

	if (kato == 0 || ctrlr->cdata->kas == 0) {
		ctrlr->keep_alive_interval_ticks = 0;
		nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_IDENTIFY_ACTIVE_NS);
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
		ctrlr->keep_alive_interval_ticks = nvme_us_to_ticks((uint64_t)kato * 1000 / 2);
		ctrlr->next_keep_alive_tick = ust_get_ticks() + ctrlr->keep_alive_interval_ticks;
	}
	nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_IDENTIFY_ACTIVE_NS);
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
			nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_IDENTIFY_NS);
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
		nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_IDENTIFY_NS);
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
	nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_IDENTIFY_NS);
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
			nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_READY);
			return STEP_AGAIN;
		}
		nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_CONFIGURE_AER);
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
	nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_SUBMIT_AERS);
	return STEP_AGAIN;
}

static enum step_result state_submit_aers(struct ust_nvme_ctrlr *ctrlr)
{
	uint32_t want = ctrlr->opts.aer_count;

	/* AERL is 0's based (Base spec 5.2). */
	if (want > (uint32_t)ctrlr->cdata->aerl + 1)
		want = (uint32_t)ctrlr->cdata->aerl + 1;
	while (ctrlr->num_aers < want) {
		if (nvme_ctrlr_submit_aer(ctrlr) != 0) {
			UST_WARNLOG("NVMe %s: cannot submit an Asynchronous Event Request\n",
				    ctrlr->trid.traddr);
			break;
		}
	}
	nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_READY);
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
					nvme_us_to_ticks(ctrlr->opts.health_check_interval_us);
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
		nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_SHUTDOWN_DONE);
		return STEP_AGAIN;
	}
	/* RTD3E (microseconds) is the controller's own estimate, when it gives one. */
	if (us == 0)
		us = DEFAULT_SHUTDOWN_TIMEOUT_US;
	if (us > MAX_SHUTDOWN_TIMEOUT_US)
		us = MAX_SHUTDOWN_TIMEOUT_US;
	ctrlr->shutdown_deadline = ust_get_ticks() + nvme_us_to_ticks(us);
	nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_SHUTDOWN_WAIT);
	return STEP_AGAIN;
}

static enum step_result state_shutdown_wait(struct ust_nvme_ctrlr *ctrlr)
{
	if (!init_take(ctrlr))
		return init_read_reg(ctrlr, UST_NVME_REG_CSTS, 4);
	if (ctrlr->init.rc != 0 || reg_all_ones(ctrlr) ||
	    (ctrlr->init.value & UST_NVME_CSTS_SHST_MASK) == UST_NVME_CSTS_SHST_COMPLETE) {
		nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_SHUTDOWN_DONE);
		return STEP_AGAIN;
	}
	if ((int64_t)(ust_get_ticks() - ctrlr->shutdown_deadline) >= 0) {
		UST_WARNLOG("NVMe %s: shutdown did not complete in time\n", ctrlr->trid.traddr);
		nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_SHUTDOWN_DONE);
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

void nvme_ctrlr_init_step(struct ust_nvme_ctrlr *ctrlr)
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

/* Re-identify the namespaces while the controller stays ready. */
void nvme_ctrlr_start_ns_rescan(struct ust_nvme_ctrlr *ctrlr)
{
	ctrlr->ns_rescan_wanted = false;
	ctrlr->rescanning = true;
	ctrlr->init.purpose = NVME_INIT_NS_RESCAN;
	ctrlr->init.active_list_fallback = false;
	ctrlr->init.next_nsid = 0;
	nvme_ctrlr_set_state(ctrlr, NVME_CTRLR_STATE_IDENTIFY_ACTIVE_NS);
	nvme_ctrlr_init_step(ctrlr);
}
