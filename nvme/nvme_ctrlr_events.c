/*
 * What a ready NVMe controller does in the background (nvme/):
 * Asynchronous Event Requests, Keep Alive and the health check of CSTS,
 * run from ust_nvme_ctrlr_process_admin_completions() under the
 * controller lock.
 *
 * Guarantees:
 *  - Every event's log page is read with RAE clear, which re-arms its event
 *    type (Base spec 5.2), and the request is resubmitted.
 *  - A Namespace Attribute Changed notice rescans the namespaces first; the
 *    ns-change and AER callbacks run after the rescan, so they see the new
 *    namespaces.
 *  - One Keep Alive at a time, at the interval bring-up set (half the
 *    timeout); a failed Keep Alive fails the controller.
 *  - CSTS reading all ones fails the controller as removed (-ENODEV),
 *    CSTS.CFS as failed (-EIO).
 */
#include <errno.h>
#include <stdint.h>

#include "ustor/env.h"

#include "nvme_internal.h"

static void aer_done(void *cb_arg, const struct ust_nvme_cpl *cpl);

int nvme_ctrlr_submit_aer(struct ust_nvme_ctrlr *ctrlr)
{
	struct ust_nvme_cmd cmd;
	int rc;

	nvme_cmd_async_event_request(&cmd);
	rc = nvme_ctrlr_submit_admin_cmd(ctrlr, &cmd, NULL, 0, NVME_REQ_AER | NVME_REQ_INTERNAL,
					 aer_done, ctrlr, NULL);
	if (rc == 0)
		ctrlr->num_aers++;
	return rc;
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
	if (nvme_ctrlr_submit_admin_cmd(ctrlr, &cmd, ctrlr->changed_ns_log, len, NVME_REQ_INTERNAL,
					NULL, NULL, NULL) != 0)
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
	if (nvme_ctrlr_submit_aer(ctrlr) != 0)
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

void nvme_ctrlr_send_keep_alive(struct ust_nvme_ctrlr *ctrlr, uint64_t now)
{
	struct ust_nvme_cmd cmd;

	if (ctrlr->keep_alive_interval_ticks == 0 || ctrlr->keep_alive_outstanding ||
	    now < ctrlr->next_keep_alive_tick)
		return;
	nvme_cmd_keep_alive(&cmd);
	if (nvme_ctrlr_submit_admin_cmd(ctrlr, &cmd, NULL, 0, NVME_REQ_INTERNAL, keep_alive_done,
					ctrlr, NULL) == 0)
		ctrlr->keep_alive_outstanding = true;
	ctrlr->next_keep_alive_tick = now + ctrlr->keep_alive_interval_ticks;
}

static void health_done(void *cb_arg, int rc, uint64_t value)
{
	struct ust_nvme_ctrlr *ctrlr = cb_arg;

	ctrlr->health_check_pending = false;
	if (rc != 0 || nvme_ctrlr_get_state(ctrlr) != NVME_CTRLR_STATE_READY)
		return;
	if ((uint32_t)value == NVME_REG_ALL_ONES)
		nvme_ctrlr_fail_removed(ctrlr);
	else if (value & UST_NVME_CSTS_CFS)
		nvme_ctrlr_fail(ctrlr, -EIO, "CSTS.CFS (controller fatal status) is set");
}

void nvme_ctrlr_check_health(struct ust_nvme_ctrlr *ctrlr, uint64_t now)
{
	if (ctrlr->health_check_pending || now < ctrlr->next_health_check_tick)
		return;
	ctrlr->next_health_check_tick =
		now + nvme_us_to_ticks(ctrlr->opts.health_check_interval_us);
	ctrlr->health_check_pending = true;
	if (ctrlr->ops->reg_read(ctrlr, UST_NVME_REG_CSTS, 4, health_done, ctrlr) != 0)
		ctrlr->health_check_pending = false;
}
