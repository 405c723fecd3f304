/*
 * ust_nvme_discover() over NVMe/TCP: a short-lived association with a
 * Discovery controller (NVMe-oF 1.1 5): Connect the admin queue, enable the
 * controller with Property Set (CC.EN = 1) and wait for CSTS.RDY with
 * Property Get, read the Discovery Log Page (LID 70h) and close the
 * connection. Synchronous: for tools and start-up, never on a reactor.
 *
 * It does not go through the core's bring-up, which is for NVM controllers
 * (a discovery controller has no I/O queues, namespaces or Set Features
 * Number of Queues).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ustor/env.h"

#include "../nvme_internal.h"
#include "tcp_internal.h"

static int prop_sync(struct nvme_tcp_qpair *tq, bool is_set, uint32_t offset, uint32_t size,
		     uint64_t *value)
{
	struct ust_nvme_cmd cmd;
	struct ust_nvme_cpl cpl;
	int rc;

	if (is_set)
		nvme_fabric_prop_set_cmd(&cmd, offset, size, *value);
	else
		nvme_fabric_prop_get_cmd(&cmd, offset, size);
	rc = nvme_tcp_qpair_exec_sync(tq, &cmd, NVME_TCP_XFER_NONE, NULL, 0, &cpl);
	if (rc == -EIO)
		UST_ERRLOG("NVMe/TCP %s: Property %s %#x failed: %s\n", tq->conn.peer,
			   is_set ? "Set" : "Get", offset, ust_nvme_cpl_status_str(&cpl));
	if (rc == 0 && !is_set)
		*value = nvme_fabric_prop_get_value(&cpl, size);
	return rc;
}

static int enable_ctrlr(struct nvme_tcp_qpair *tq)
{
	uint64_t cap, cc, csts, deadline;
	int rc;

	rc = prop_sync(tq, false, UST_NVME_REG_CAP, 8, &cap);
	if (rc != 0)
		return rc;
	/* CC: EN, IOSQES 6 (64 bytes), IOCQES 4 (16 bytes), MPS 0, CSS NVM. */
	cc = UST_NVME_CC_EN | (6u << UST_NVME_CC_IOSQES_SHIFT) | (4u << UST_NVME_CC_IOCQES_SHIFT);
	rc = prop_sync(tq, true, UST_NVME_REG_CC, 4, &cc);
	if (rc != 0)
		return rc;
	/* CAP.TO (bits 31:24) in 500 ms units bounds the wait for CSTS.RDY. */
	deadline = ust_get_ticks() +
		   (((cap >> 24) & 0xff) + 1) * 500 * (ust_get_ticks_hz() / 1000);
	for (;;) {
		rc = prop_sync(tq, false, UST_NVME_REG_CSTS, 4, &csts);
		if (rc != 0)
			return rc;
		if (csts & UST_NVME_CSTS_CFS)
			return -EIO;
		if (csts & UST_NVME_CSTS_RDY)
			return 0;
		if ((int64_t)(ust_get_ticks() - deadline) >= 0)
			return -ETIMEDOUT;
		ust_delay_us(1000);
	}
}

static int exec_log(void *ctx, const struct ust_nvme_cmd *cmd, void *buf, uint32_t len,
		    struct ust_nvme_cpl *cpl)
{
	return nvme_tcp_qpair_exec_sync(ctx, cmd, NVME_TCP_XFER_C2H, buf, len, cpl);
}

int ust_nvme_discover(const struct ust_nvme_transport_id *trid,
		      const struct ust_nvme_ctrlr_opts *user_opts,
		      struct ust_nvmf_discovery_log_entry **entries, uint32_t *count)
{
	struct ust_nvme_transport_id t;
	struct ust_nvme_ctrlr_opts opts;
	struct nvme_tcp_ctrlr *tctrlr;
	int rc;

	if (trid == NULL || entries == NULL || count == NULL)
		return -EINVAL;
	*entries = NULL;
	*count = 0;
	if (trid->trtype != UST_NVME_TRANSPORT_TCP)
		return -ENOTSUP;
	t = *trid;
	if (t.subnqn[0] == '\0')
		snprintf(t.subnqn, sizeof(t.subnqn), "%s", UST_NVMF_DISCOVERY_NQN);
	if (user_opts != NULL)
		opts = *user_opts;
	else
		ust_nvme_ctrlr_opts_init(&opts);
	/* No keep-alive for this short association. */
	opts.keep_alive_timeout_ms = 0;
	rc = nvme_tcp_ctrlr_create(&t, &opts, &tctrlr);
	if (rc != 0)
		return rc;
	rc = nvme_tcp_qpair_connect_sync(tctrlr->adminq);
	if (rc == 0)
		rc = enable_ctrlr(tctrlr->adminq);
	if (rc == 0)
		rc = nvme_fabric_get_discovery_log(exec_log, tctrlr->adminq, entries, count);
	if (rc != 0)
		UST_ERRLOG("NVMe/TCP discovery at %s:%s failed: %s\n", t.traddr, t.trsvcid,
			   strerror(-rc));
	nvme_tcp_ctrlr_free(tctrlr);
	return rc;
}
