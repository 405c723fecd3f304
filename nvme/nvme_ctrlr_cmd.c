/*
 * Admin commands for users of the driver (identify, log pages, features,
 * abort, Format NVM, raw passthrough) and their synchronous forms for tools.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"

#include "nvme_internal.h"

static int submit_admin(struct ust_nvme_ctrlr *ctrlr, const struct ust_nvme_cmd *cmd, void *buf,
			uint32_t len, ust_nvme_cmd_cb cb, void *cb_arg)
{
	struct nvme_request *req;
	int rc;

	if (len > 0 && buf == NULL)
		return -EINVAL;
	if (len > ctrlr->max_xfer_size && ctrlr->max_xfer_size != 0)
		return -EINVAL;
	pthread_mutex_lock(&ctrlr->lock);
	req = nvme_qpair_alloc_request(ctrlr->adminq, cb, cb_arg);
	if (req == NULL) {
		pthread_mutex_unlock(&ctrlr->lock);
		return -ENOMEM;
	}
	req->cmd = *cmd;
	if (len > 0) {
		req->payload.type = NVME_PAYLOAD_CONTIG;
		req->payload.buf = buf;
		req->payload_size = len;
	}
	rc = nvme_qpair_submit_request(ctrlr->adminq, req);
	pthread_mutex_unlock(&ctrlr->lock);
	return rc;
}

int ust_nvme_ctrlr_cmd_admin_raw(struct ust_nvme_ctrlr *ctrlr, const struct ust_nvme_cmd *cmd,
				 void *buf, uint32_t len, ust_nvme_cmd_cb cb, void *cb_arg)
{
	struct ust_nvme_cmd c;

	if (ctrlr == NULL || cmd == NULL)
		return -EINVAL;
	/* The driver owns CID, PSDT and the data pointer. */
	c = *cmd;
	c.cdw0 &= 0x3ffu; /* OPC and FUSE */
	memset(&c.dptr, 0, sizeof(c.dptr));
	return submit_admin(ctrlr, &c, buf, len, cb, cb_arg);
}

int ust_nvme_ctrlr_cmd_identify(struct ust_nvme_ctrlr *ctrlr, uint8_t cns, uint16_t cntid,
				uint32_t nsid, void *buf, uint32_t len, ust_nvme_cmd_cb cb,
				void *cb_arg)
{
	struct ust_nvme_cmd cmd;

	if (len != 4096)
		return -EINVAL;
	nvme_cmd_identify(&cmd, cns, cntid, nsid);
	return submit_admin(ctrlr, &cmd, buf, len, cb, cb_arg);
}

int ust_nvme_ctrlr_cmd_get_log_page(struct ust_nvme_ctrlr *ctrlr, uint8_t lid, uint32_t nsid,
				    void *buf, uint32_t len, uint64_t offset, ust_nvme_cmd_cb cb,
				    void *cb_arg)
{
	struct ust_nvme_cmd cmd;

	/* Base spec 5.16: length and offset are in dwords. */
	if (len == 0 || len % 4 != 0 || offset % 4 != 0)
		return -EINVAL;
	nvme_cmd_get_log_page(&cmd, lid, nsid, len / 4, offset, false);
	return submit_admin(ctrlr, &cmd, buf, len, cb, cb_arg);
}

int ust_nvme_ctrlr_cmd_set_feature(struct ust_nvme_ctrlr *ctrlr, uint8_t fid, uint32_t cdw11,
				   uint32_t cdw12, void *buf, uint32_t len, ust_nvme_cmd_cb cb,
				   void *cb_arg)
{
	struct ust_nvme_cmd cmd;

	nvme_cmd_set_features(&cmd, fid, cdw11, cdw12);
	return submit_admin(ctrlr, &cmd, buf, len, cb, cb_arg);
}

int ust_nvme_ctrlr_cmd_get_feature(struct ust_nvme_ctrlr *ctrlr, uint8_t fid, uint32_t cdw11,
				   void *buf, uint32_t len, ust_nvme_cmd_cb cb, void *cb_arg)
{
	struct ust_nvme_cmd cmd;

	nvme_cmd_get_features(&cmd, fid, cdw11);
	return submit_admin(ctrlr, &cmd, buf, len, cb, cb_arg);
}

int ust_nvme_ctrlr_cmd_abort(struct ust_nvme_ctrlr *ctrlr, uint16_t sqid, uint16_t cid,
			     ust_nvme_cmd_cb cb, void *cb_arg)
{
	struct ust_nvme_cmd cmd;

	nvme_cmd_abort(&cmd, sqid, cid);
	return submit_admin(ctrlr, &cmd, NULL, 0, cb, cb_arg);
}

/* ---- Format NVM ------------------------------------------------------------ */

struct format_ctx {
	struct ust_nvme_ctrlr *ctrlr;
	ust_nvme_cmd_cb cb;
	void *cb_arg;
};

static void format_done(void *arg, const struct ust_nvme_cpl *cpl)
{
	struct format_ctx *f = arg;
	struct ust_nvme_ctrlr *ctrlr = f->ctrlr;
	ust_nvme_cmd_cb cb = f->cb;
	void *cb_arg = f->cb_arg;

	free(f);
	if (ust_nvme_cpl_is_error(cpl) || ctrlr->failed) {
		cb(cb_arg, cpl);
		return;
	}
	/* The LBA format changed: the caller hears back after the rescan. */
	pthread_mutex_lock(&ctrlr->lock);
	ctrlr->init.format_cb = cb;
	ctrlr->init.format_cb_arg = cb_arg;
	ctrlr->init.format_cpl = *cpl;
	ctrlr->ns_rescan_wanted = true;
	pthread_mutex_unlock(&ctrlr->lock);
}

int ust_nvme_ctrlr_cmd_format(struct ust_nvme_ctrlr *ctrlr, uint32_t nsid,
			      const struct ust_nvme_format *format, ust_nvme_cmd_cb cb, void *cb_arg)
{
	struct ust_nvme_cmd cmd;
	struct format_ctx *f;
	int rc;

	if (format == NULL || cb == NULL || format->lbaf > 63 || format->pi > 3 || format->ses > 2)
		return -EINVAL;
	if (!(ctrlr->cdata->oacs & UST_NVME_OACS_FORMAT_NVM))
		return -ENOTSUP;
	if (ctrlr->init.format_cb != NULL)
		return -EBUSY;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	f->ctrlr = ctrlr;
	f->cb = cb;
	f->cb_arg = cb_arg;
	nvme_cmd_format_nvm(&cmd, nsid, format);
	rc = submit_admin(ctrlr, &cmd, NULL, 0, format_done, f);
	if (rc != 0)
		free(f);
	return rc;
}

/* ---- synchronous forms ------------------------------------------------------- */

struct sync_wait {
	bool done;
	struct ust_nvme_cpl cpl;
};

static void sync_done(void *arg, const struct ust_nvme_cpl *cpl)
{
	struct sync_wait *w = arg;

	w->cpl = *cpl;
	__atomic_store_n(&w->done, true, __ATOMIC_RELEASE);
}

/*
 * Every admin request completes: by the controller, by the abort that a
 * reset after the admin timeout does, or by the controller failing. So the
 * loop ends, and w is never written after we return.
 */
static int sync_wait_for(struct ust_nvme_ctrlr *ctrlr, struct sync_wait *w,
			 struct ust_nvme_cpl *cpl)
{
	while (!__atomic_load_n(&w->done, __ATOMIC_ACQUIRE))
		ust_nvme_ctrlr_process_admin_completions(ctrlr);
	if (cpl != NULL)
		*cpl = w->cpl;
	return ust_nvme_cpl_is_error(&w->cpl) ? -EIO : 0;
}

int nvme_ctrlr_admin_wait(struct ust_nvme_ctrlr *ctrlr, const struct ust_nvme_cmd *cmd, void *buf,
			  uint32_t len, struct ust_nvme_cpl *cpl)
{
	struct sync_wait w = {0};
	int rc;

	rc = submit_admin(ctrlr, cmd, buf, len, sync_done, &w);
	if (rc != 0)
		return rc;
	return sync_wait_for(ctrlr, &w, cpl);
}

int ust_nvme_ctrlr_admin_sync(struct ust_nvme_ctrlr *ctrlr, const struct ust_nvme_cmd *cmd,
			      void *buf, uint32_t len, struct ust_nvme_cpl *cpl)
{
	struct sync_wait w = {0};
	int rc;

	rc = ust_nvme_ctrlr_cmd_admin_raw(ctrlr, cmd, buf, len, sync_done, &w);
	if (rc != 0)
		return rc;
	return sync_wait_for(ctrlr, &w, cpl);
}

int ust_nvme_ctrlr_get_health_log(struct ust_nvme_ctrlr *ctrlr, uint32_t nsid,
				  struct ust_nvme_health_log *log, struct ust_nvme_cpl *cpl)
{
	struct sync_wait w = {0};
	int rc;

	rc = ust_nvme_ctrlr_cmd_get_log_page(ctrlr, UST_NVME_LOG_HEALTH_INFORMATION, nsid, log,
					     sizeof(*log), 0, sync_done, &w);
	if (rc != 0)
		return rc;
	return sync_wait_for(ctrlr, &w, cpl);
}

int ust_nvme_ctrlr_get_error_log(struct ust_nvme_ctrlr *ctrlr, struct ust_nvme_error_log_entry *log,
				 uint32_t n, struct ust_nvme_cpl *cpl)
{
	struct sync_wait w = {0};
	int rc;

	if (n == 0 || n > 256)
		return -EINVAL;
	rc = ust_nvme_ctrlr_cmd_get_log_page(ctrlr, UST_NVME_LOG_ERROR, UINT32_MAX, log,
					     n * (uint32_t)sizeof(*log), 0, sync_done, &w);
	if (rc != 0)
		return rc;
	return sync_wait_for(ctrlr, &w, cpl);
}

int ust_nvme_ctrlr_format_sync(struct ust_nvme_ctrlr *ctrlr, uint32_t nsid,
			       const struct ust_nvme_format *format, struct ust_nvme_cpl *cpl)
{
	struct sync_wait w = {0};
	int rc;

	rc = ust_nvme_ctrlr_cmd_format(ctrlr, nsid, format, sync_done, &w);
	if (rc != 0)
		return rc;
	return sync_wait_for(ctrlr, &w, cpl);
}
