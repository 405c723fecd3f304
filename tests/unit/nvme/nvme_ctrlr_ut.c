/*
 * Unit tests of the NVMe driver (core + PCIe transport) against a FAKE
 * REGISTER FILE: a small model of an NVMe controller behind a fake PCI
 * function of the test environment. Its BAR 0 is memory holding CAP, VS,
 * CC, CSTS, AQA, ASQ, ACQ and the doorbells; fake_tick() plays the device:
 *
 *  - CSTS.RDY follows CC.EN only after rdy_delay ticks (Base spec 3.5.1);
 *    enabling takes the admin queue from AQA/ASQ/ACQ, disabling drops every
 *    queue; CC.SHN sets CSTS.SHST to complete;
 *  - for each queue it consumes SQEs up to the tail doorbell, moves data
 *    through the command's PRPs or SGL (checking the PRP rules), and posts
 *    CQEs with the phase tag, never overrunning the CQ head doorbell;
 *  - it answers Identify (controller, active namespace list, namespace)
 *    from canned 4 KiB structures, Set Features Number of Queues, queue
 *    creation/deletion, Get Log Page, Abort, AER (held until an event is
 *    posted), Format NVM and Keep Alive; I/O commands work on a RAM disk;
 *  - it can be told to hold commands of an opcode (timeouts), set
 *    CSTS.CFS, or read as all ones (surprise removal).
 *
 * The driver is driven by hand (tick, then poll) so every step of
 * bring-up, reset, failure detection and timeouts is deterministic; calls
 * that wait synchronously on the admin queue (I/O qpair creation) run with
 * the model on a thread of its own, like a real device. The clock is frozen.
 *
 * The last tests run the nvme bdev module (bdev/nvme) on the same model:
 * attach creates NAMEn<nsid> bdevs, I/O of every type through the bdev
 * layer, reset, namespace hot-add by AEN, get_controllers/save_config
 * output, and detach with shutdown.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "env_test.h"
#include "ustor/bdev.h"
#include "ustor/bdev_module.h"
#include "ustor/env.h"
#include "ustor/nvme.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"

#include "../../../bdev/nvme/bdev_nvme.h"

#define PAGE 4096u
#define BAR_SIZE 0x2000u
#define MAXQ 8
#define NN 4
#define BLOCKS 2048 /* of 512 bytes on namespace 1 */
#define MS(ms) ((uint64_t)(ms) * 1000000ULL) /* test clock: ns ticks */

/* ---- the fake controller ------------------------------------------------- */

struct fake_sq {
	bool valid;
	uint64_t base;
	uint32_t size;
	uint32_t head;
	uint16_t cqid;
};

struct fake_cq {
	bool valid;
	uint64_t base;
	uint32_t size;
	uint32_t tail;
	uint8_t phase;
};

struct held {
	uint16_t sqid;
	uint16_t cid;
};

struct fake {
	pthread_mutex_t lock;
	uint8_t *bar;
	bool enabled;
	int rdy_delay;
	int countdown;
	bool never_ready;
	bool cfs;
	bool removed;
	struct fake_sq sq[MAXQ];
	struct fake_cq cq[MAXQ];
	struct ust_nvme_ctrlr_data cdata;
	struct ust_nvme_ns_data ns[NN];
	bool ns_active[NN];
	uint8_t *media;
	bool active_list_unsupported;
	uint32_t nq_granted;
	/* held commands */
	int hold_admin_opc; /* -1: none */
	int hold_io_opc;
	struct held held[16];
	int nheld;
	bool abort_succeeds;
	struct held aers[8];
	int naers;
	/* what the device saw */
	int n_admin[256];
	int n_io[256];
	struct ust_nvme_cmd last_admin[256];
	struct ust_nvme_cmd last_io[256];
	uint8_t admin_order[64];
	int n_admin_order;
	int en_transitions; /* times CC.EN changed as seen by the device */
	uint32_t last_cc;
	/* thread mode */
	pthread_t thread;
	bool thread_running;
};

static struct fake g_f;
static const struct ust_pci_addr g_addr = {0, 0, 4, 0};
static struct ust_nvme_transport_id g_trid;

static uint32_t reg32(uint32_t off)
{
	return __atomic_load_n((uint32_t *)(g_f.bar + off), __ATOMIC_ACQUIRE);
}

static void set_reg32(uint32_t off, uint32_t v)
{
	__atomic_store_n((uint32_t *)(g_f.bar + off), v, __ATOMIC_RELEASE);
}

static uint64_t reg64(uint32_t off)
{
	return reg32(off) | ((uint64_t)reg32(off + 4) << 32);
}

static void set_reg64(uint32_t off, uint64_t v)
{
	set_reg32(off, (uint32_t)v);
	set_reg32(off + 4, (uint32_t)(v >> 32));
}

static volatile uint32_t *sq_doorbell(int q)
{
	return (volatile uint32_t *)(g_f.bar + 0x1000 + 8 * q);
}

static volatile uint32_t *cq_doorbell(int q)
{
	return (volatile uint32_t *)(g_f.bar + 0x1000 + 8 * q + 4);
}

/* Data movement through a command's PRPs or SGL; false on a rule violation. */
struct seg {
	uint8_t *p;
	uint32_t len;
};

static int gather(const struct ust_nvme_cmd *cmd, uint32_t len, struct seg *segs, int max)
{
	uint32_t psdt = ust_nvme_cmd_psdt(cmd), n, first, remaining = len, i;
	const struct ust_nvme_sgl_descriptor *d;
	uint64_t prp1 = cmd->dptr.prp.prp1, prp2 = cmd->dptr.prp.prp2, *list;
	int ns = 0;

	if (len == 0)
		return 0;
	if (psdt == UST_NVME_PSDT_SGL_MPTR_CONTIG) {
		d = &cmd->dptr.sgl1;
		n = 1;
		if ((d->sgl_identifier >> 4) == UST_NVME_SGL_TYPE_LAST_SEGMENT) {
			n = d->length / 16;
			d = (const struct ust_nvme_sgl_descriptor *)(uintptr_t)d->address;
		}
		for (i = 0; i < n && remaining > 0 && ns < max; i++) {
			if ((d[i].sgl_identifier >> 4) != UST_NVME_SGL_TYPE_DATA_BLOCK)
				return -1;
			segs[ns].p = (uint8_t *)(uintptr_t)d[i].address;
			segs[ns].len = d[i].length < remaining ? d[i].length : remaining;
			remaining -= segs[ns++].len;
		}
		return remaining == 0 ? ns : -1;
	}
	if (psdt != UST_NVME_PSDT_PRP || (prp1 & 3))
		return -1;
	first = PAGE - (uint32_t)(prp1 % PAGE);
	segs[ns].p = (uint8_t *)(uintptr_t)prp1;
	segs[ns].len = first < remaining ? first : remaining;
	remaining -= segs[ns++].len;
	if (remaining == 0)
		return ns;
	if (remaining <= PAGE) {
		if (prp2 % PAGE)
			return -1;
		segs[ns].p = (uint8_t *)(uintptr_t)prp2;
		segs[ns++].len = remaining;
		return ns;
	}
	list = (uint64_t *)(uintptr_t)prp2;
	for (i = 0; remaining > 0 && ns < max; i++) {
		/* the last slot of a list page chains to the next page when more follow */
		if (i == PAGE / 8 - 1 && remaining > PAGE) {
			list = (uint64_t *)(uintptr_t)list[i];
			i = (uint32_t)-1;
			continue;
		}
		if (list[i] % PAGE)
			return -1;
		segs[ns].p = (uint8_t *)(uintptr_t)list[i];
		segs[ns].len = remaining < PAGE ? remaining : PAGE;
		remaining -= segs[ns++].len;
	}
	return remaining == 0 ? ns : -1;
}

/* Copy between a flat buffer and the command's data; to_host: device -> host. */
static bool xfer(const struct ust_nvme_cmd *cmd, uint8_t *flat, uint32_t len, bool to_host)
{
	struct seg segs[600];
	int n = gather(cmd, len, segs, 600), i;

	if (n < 0)
		return false;
	for (i = 0; i < n; i++) {
		if (to_host)
			memcpy(segs[i].p, flat, segs[i].len);
		else
			memcpy(flat, segs[i].p, segs[i].len);
		flat += segs[i].len;
	}
	return true;
}

static bool cq_full(int cqid)
{
	struct fake_cq *cq = &g_f.cq[cqid];

	return (cq->tail + 1) % cq->size == *cq_doorbell(cqid);
}

static void post(int sqid, uint16_t cid, uint32_t cdw0, uint16_t status)
{
	struct fake_cq *cq = &g_f.cq[g_f.sq[sqid].cqid];
	struct ust_nvme_cpl *e = (struct ust_nvme_cpl *)(uintptr_t)cq->base + cq->tail;

	e->cdw0 = cdw0;
	e->cdw1 = 0;
	e->sqhd = (uint16_t)g_f.sq[sqid].head;
	e->sqid = (uint16_t)sqid;
	e->cid = cid;
	__atomic_store_n(&e->status, (uint16_t)(status | cq->phase), __ATOMIC_RELEASE);
	if (++cq->tail == cq->size) {
		cq->tail = 0;
		cq->phase ^= 1;
	}
}

static uint16_t st(uint32_t sct, uint32_t sc)
{
	return ust_nvme_status(sct, sc, 0);
}

static void drop_queues(void)
{
	memset(g_f.sq, 0, sizeof(g_f.sq));
	memset(g_f.cq, 0, sizeof(g_f.cq));
	g_f.naers = 0;
	g_f.nheld = 0;
}

static uint16_t admin_identify(const struct ust_nvme_cmd *cmd)
{
	uint8_t buf[4096];
	uint32_t cns = cmd->cdw10 & 0xff, i, n = 0;
	uint32_t *list = (uint32_t *)buf;

	memset(buf, 0, sizeof(buf));
	switch (cns) {
	case UST_NVME_CNS_CONTROLLER:
		memcpy(buf, &g_f.cdata, sizeof(g_f.cdata));
		break;
	case UST_NVME_CNS_ACTIVE_NS_LIST:
		if (g_f.active_list_unsupported)
			return st(0, UST_NVME_SC_INVALID_FIELD);
		for (i = 0; i < NN; i++) {
			if (g_f.ns_active[i] && i + 1 > cmd->nsid)
				list[n++] = i + 1;
		}
		break;
	case UST_NVME_CNS_NAMESPACE:
		if (cmd->nsid == 0 || cmd->nsid > NN)
			return st(0, UST_NVME_SC_INVALID_NAMESPACE_OR_FORMAT);
		if (g_f.ns_active[cmd->nsid - 1])
			memcpy(buf, &g_f.ns[cmd->nsid - 1], sizeof(buf));
		break;
	default:
		return st(0, UST_NVME_SC_INVALID_FIELD);
	}
	return xfer(cmd, buf, sizeof(buf), true) ? 0 : st(0, UST_NVME_SC_INVALID_PRP_OFFSET);
}

static uint16_t admin_log_page(const struct ust_nvme_cmd *cmd)
{
	uint8_t buf[4096];
	uint32_t numd = ((cmd->cdw10 >> 16) | (cmd->cdw11 << 16)) + 1;
	struct ust_nvme_health_log *h = (struct ust_nvme_health_log *)buf;

	memset(buf, 0, sizeof(buf));
	if (numd * 4 > sizeof(buf))
		return st(0, UST_NVME_SC_INVALID_FIELD);
	switch (cmd->cdw10 & 0xff) {
	case UST_NVME_LOG_HEALTH_INFORMATION:
		h->composite_temperature = 310;
		h->available_spare = 100;
		h->power_on_hours[0] = 42;
		break;
	case UST_NVME_LOG_ERROR:
		((struct ust_nvme_error_log_entry *)buf)->error_count = 7;
		break;
	case UST_NVME_LOG_CHANGED_NS_LIST:
		((uint32_t *)buf)[0] = 2;
		break;
	default:
		return st(1, UST_NVME_SC_INVALID_LOG_PAGE);
	}
	return xfer(cmd, buf, numd * 4, true) ? 0 : st(0, UST_NVME_SC_INVALID_PRP_OFFSET);
}

static uint16_t admin_abort(const struct ust_nvme_cmd *cmd, uint32_t *cdw0)
{
	uint16_t sqid = (uint16_t)cmd->cdw10, cid = (uint16_t)(cmd->cdw10 >> 16);
	int i;

	*cdw0 = 1; /* not aborted */
	for (i = 0; i < g_f.nheld; i++) {
		if (g_f.held[i].sqid != sqid || g_f.held[i].cid != cid || !g_f.abort_succeeds)
			continue;
		post(sqid, cid, 0, st(0, UST_NVME_SC_ABORTED_BY_REQUEST));
		g_f.held[i] = g_f.held[--g_f.nheld];
		*cdw0 = 0;
		break;
	}
	return 0;
}

/* Returns false if the command is held (no completion now). */
static bool exec_admin(const struct ust_nvme_cmd *cmd, uint32_t *cdw0, uint16_t *status)
{
	uint8_t opc = ust_nvme_cmd_opc(cmd);
	uint16_t qid = (uint16_t)cmd->cdw10;
	uint32_t qsize = (cmd->cdw10 >> 16) + 1;

	*cdw0 = 0;
	*status = 0;
	g_f.n_admin[opc]++;
	g_f.last_admin[opc] = *cmd;
	if (g_f.n_admin_order < 64)
		g_f.admin_order[g_f.n_admin_order++] = opc;
	if (opc == UST_NVME_OPC_ASYNC_EVENT_REQUEST) {
		if (g_f.naers >= (int)g_f.cdata.aerl + 1) {
			*status = st(1, UST_NVME_SC_ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED);
			return true;
		}
		g_f.aers[g_f.naers].sqid = 0;
		g_f.aers[g_f.naers++].cid = ust_nvme_cmd_cid(cmd);
		return false;
	}
	if (opc == g_f.hold_admin_opc) {
		g_f.held[g_f.nheld].sqid = 0;
		g_f.held[g_f.nheld++].cid = ust_nvme_cmd_cid(cmd);
		return false;
	}
	switch (opc) {
	case UST_NVME_OPC_IDENTIFY:
		*status = admin_identify(cmd);
		break;
	case UST_NVME_OPC_SET_FEATURES:
		if ((cmd->cdw10 & 0xff) == UST_NVME_FEAT_NUMBER_OF_QUEUES)
			*cdw0 = ((g_f.nq_granted - 1) << 16) | (g_f.nq_granted - 1);
		break;
	case UST_NVME_OPC_GET_LOG_PAGE:
		*status = admin_log_page(cmd);
		break;
	case UST_NVME_OPC_CREATE_IO_CQ:
		if (qid == 0 || qid >= MAXQ || g_f.cq[qid].valid)
			*status = st(1, UST_NVME_SC_INVALID_QUEUE_IDENTIFIER);
		else if (!(cmd->cdw11 & 1) || cmd->dptr.prp.prp1 % PAGE)
			*status = st(0, UST_NVME_SC_INVALID_FIELD);
		else
			g_f.cq[qid] = (struct fake_cq){true, cmd->dptr.prp.prp1, qsize, 0, 1};
		break;
	case UST_NVME_OPC_CREATE_IO_SQ:
		if (qid == 0 || qid >= MAXQ || g_f.sq[qid].valid)
			*status = st(1, UST_NVME_SC_INVALID_QUEUE_IDENTIFIER);
		else if (!g_f.cq[cmd->cdw11 >> 16].valid)
			*status = st(1, UST_NVME_SC_COMPLETION_QUEUE_INVALID);
		else
			g_f.sq[qid] = (struct fake_sq){true, cmd->dptr.prp.prp1, qsize, 0,
						       (uint16_t)(cmd->cdw11 >> 16)};
		break;
	case UST_NVME_OPC_DELETE_IO_SQ:
		if (qid == 0 || qid >= MAXQ || !g_f.sq[qid].valid)
			*status = st(1, UST_NVME_SC_INVALID_QUEUE_IDENTIFIER);
		else
			g_f.sq[qid].valid = false;
		break;
	case UST_NVME_OPC_DELETE_IO_CQ:
		if (qid == 0 || qid >= MAXQ || !g_f.cq[qid].valid)
			*status = st(1, UST_NVME_SC_INVALID_QUEUE_IDENTIFIER);
		else
			g_f.cq[qid].valid = false;
		break;
	case UST_NVME_OPC_ABORT:
		*status = admin_abort(cmd, cdw0);
		break;
	case UST_NVME_OPC_FORMAT_NVM:
		if (cmd->nsid == 0 || cmd->nsid > NN || (cmd->cdw10 & 0xf) > g_f.ns[0].nlbaf) {
			*status = st(1, UST_NVME_SC_INVALID_FORMAT);
			break;
		}
		g_f.ns[cmd->nsid - 1].flbas = (uint8_t)(cmd->cdw10 & 0xf);
		g_f.ns[cmd->nsid - 1].nsze = (uint64_t)BLOCKS * 512 /
					     (1u << ust_nvme_lbaf_lbads(g_f.ns[0].lbaf[cmd->cdw10 & 0xf]));
		break;
	case UST_NVME_OPC_KEEP_ALIVE:
		break;
	default:
		*status = st(0, UST_NVME_SC_INVALID_OPCODE);
	}
	return true;
}

static uint32_t fake_block_size(void)
{
	return 1u << ust_nvme_lbaf_lbads(g_f.ns[0].lbaf[g_f.ns[0].flbas & 0xf]);
}

static bool exec_io(int sqid, const struct ust_nvme_cmd *cmd, uint16_t *status)
{
	uint8_t opc = ust_nvme_cmd_opc(cmd), tmp[65536];
	uint64_t slba = cmd->cdw10 | ((uint64_t)cmd->cdw11 << 32);
	uint32_t nlb = (cmd->cdw12 & 0xffff) + 1, bs = fake_block_size(), len = nlb * bs, i;
	uint64_t nblocks = (uint64_t)BLOCKS * 512 / bs;
	struct ust_nvme_dsm_range r[256];

	*status = 0;
	g_f.n_io[opc]++;
	g_f.last_io[opc] = *cmd;
	if (opc == g_f.hold_io_opc) {
		g_f.held[g_f.nheld].sqid = (uint16_t)sqid;
		g_f.held[g_f.nheld++].cid = ust_nvme_cmd_cid(cmd);
		return false;
	}
	if (cmd->nsid != 1) {
		*status = st(0, UST_NVME_SC_INVALID_NAMESPACE_OR_FORMAT);
		return true;
	}
	switch (opc) {
	case UST_NVME_OPC_READ:
	case UST_NVME_OPC_WRITE:
	case UST_NVME_OPC_COMPARE:
	case UST_NVME_OPC_WRITE_ZEROES:
		if (slba + nlb > nblocks) {
			*status = st(0, UST_NVME_SC_LBA_OUT_OF_RANGE);
			break;
		}
		if (opc == UST_NVME_OPC_WRITE_ZEROES) {
			memset(g_f.media + slba * bs, 0, len);
		} else if (opc == UST_NVME_OPC_READ) {
			if (!xfer(cmd, g_f.media + slba * bs, len, true))
				*status = st(0, UST_NVME_SC_INVALID_PRP_OFFSET);
		} else if (opc == UST_NVME_OPC_WRITE) {
			if (!xfer(cmd, g_f.media + slba * bs, len, false))
				*status = st(0, UST_NVME_SC_INVALID_PRP_OFFSET);
		} else if (!xfer(cmd, tmp, len, false)) {
			*status = st(0, UST_NVME_SC_INVALID_PRP_OFFSET);
		} else if (memcmp(tmp, g_f.media + slba * bs, len) != 0) {
			*status = st(2, UST_NVME_SC_COMPARE_FAILURE);
		}
		break;
	case UST_NVME_OPC_FLUSH:
		break;
	case UST_NVME_OPC_DATASET_MANAGEMENT:
		if (!xfer(cmd, (uint8_t *)r, ((cmd->cdw10 & 0xff) + 1) * 16, false)) {
			*status = st(0, UST_NVME_SC_INVALID_PRP_OFFSET);
			break;
		}
		for (i = 0; i <= (cmd->cdw10 & 0xff); i++) {
			if (r[i].starting_lba + r[i].length <= nblocks)
				memset(g_f.media + r[i].starting_lba * bs, 0, r[i].length * bs);
		}
		break;
	default:
		*status = st(0, UST_NVME_SC_INVALID_OPCODE);
	}
	return true;
}

static void process_sq(int q)
{
	struct fake_sq *sq = &g_f.sq[q];
	struct ust_nvme_cmd cmd;
	uint32_t tail = *sq_doorbell(q), cdw0 = 0;
	uint16_t status;
	bool done;

	if (tail >= sq->size)
		return; /* invalid doorbell write: ignored */
	while (sq->head != tail && !cq_full(sq->cqid)) {
		cmd = ((struct ust_nvme_cmd *)(uintptr_t)sq->base)[sq->head];
		sq->head = (sq->head + 1) % sq->size;
		if (q == 0)
			done = exec_admin(&cmd, &cdw0, &status);
		else
			done = exec_io(q, &cmd, &status), cdw0 = 0;
		if (done)
			post(q, ust_nvme_cmd_cid(&cmd), cdw0, status);
		if (!g_f.sq[q].valid)
			break;
	}
}

static void fake_enable(void)
{
	uint32_t aqa = reg32(UST_NVME_REG_AQA);

	drop_queues();
	g_f.sq[0] = (struct fake_sq){true, reg64(UST_NVME_REG_ASQ), (aqa & 0xfff) + 1, 0, 0};
	g_f.cq[0] = (struct fake_cq){true, reg64(UST_NVME_REG_ACQ), ((aqa >> 16) & 0xfff) + 1, 0, 1};
	g_f.enabled = true;
}

static void fake_tick_locked(void)
{
	uint32_t cc, csts;
	int q;

	if (g_f.removed) {
		memset(g_f.bar, 0xff, BAR_SIZE);
		return;
	}
	cc = reg32(UST_NVME_REG_CC);
	csts = reg32(UST_NVME_REG_CSTS);
	if ((cc & UST_NVME_CC_EN) != (g_f.last_cc & UST_NVME_CC_EN)) {
		g_f.en_transitions++;
		g_f.countdown = g_f.rdy_delay;
	}
	g_f.last_cc = cc;
	if ((cc & UST_NVME_CC_EN) && !g_f.enabled && !g_f.never_ready) {
		if (g_f.countdown-- <= 0) {
			fake_enable();
			csts |= UST_NVME_CSTS_RDY;
		}
	} else if (!(cc & UST_NVME_CC_EN) && g_f.enabled) {
		if (g_f.countdown-- <= 0) {
			g_f.enabled = false;
			drop_queues();
			/* a controller reset clears the doorbells too */
			memset(g_f.bar + 0x1000, 0, BAR_SIZE - 0x1000);
			csts &= ~(UST_NVME_CSTS_RDY | UST_NVME_CSTS_SHST_MASK | UST_NVME_CSTS_CFS);
		}
	}
	if ((cc & UST_NVME_CC_SHN_MASK) && g_f.enabled)
		csts = (csts & ~UST_NVME_CSTS_SHST_MASK) | UST_NVME_CSTS_SHST_COMPLETE;
	if (g_f.cfs)
		csts |= UST_NVME_CSTS_CFS;
	set_reg32(UST_NVME_REG_CSTS, csts);
	if (!g_f.enabled || g_f.cfs)
		return;
	for (q = 0; q < MAXQ; q++) {
		if (g_f.sq[q].valid && g_f.cq[g_f.sq[q].cqid].valid)
			process_sq(q);
	}
}

static void fake_tick(void)
{
	pthread_mutex_lock(&g_f.lock);
	fake_tick_locked();
	pthread_mutex_unlock(&g_f.lock);
}

/* Post the completion of the oldest outstanding AER. */
static void fake_post_aer(uint32_t cdw0)
{
	pthread_mutex_lock(&g_f.lock);
	assert_true(g_f.naers > 0);
	post(0, g_f.aers[0].cid, cdw0, 0);
	memmove(&g_f.aers[0], &g_f.aers[1], sizeof(g_f.aers[0]) * (size_t)(--g_f.naers));
	pthread_mutex_unlock(&g_f.lock);
}

static void *fake_thread(void *arg)
{
	while (__atomic_load_n(&g_f.thread_running, __ATOMIC_ACQUIRE)) {
		fake_tick();
		sched_yield();
	}
	return NULL;
}

static void fake_thread_start(void)
{
	__atomic_store_n(&g_f.thread_running, true, __ATOMIC_RELEASE);
	assert_int_equal(pthread_create(&g_f.thread, NULL, fake_thread, NULL), 0);
}

static void fake_thread_stop(void)
{
	__atomic_store_n(&g_f.thread_running, false, __ATOMIC_RELEASE);
	pthread_join(g_f.thread, NULL);
}

static void set_lbaf(struct ust_nvme_ns_data *d, int i, uint32_t lbads)
{
	d->lbaf[i].raw = lbads << 16;
}

static void fake_init(void)
{
	struct ust_pci_id id = {0x1b36, 0x0010, 0x1af4, 0x1100, UST_PCI_CLASS_NVME};
	int i;

	memset(&g_f, 0, sizeof(g_f));
	pthread_mutex_init(&g_f.lock, NULL);
	g_f.bar = ust_dma_zmalloc(BAR_SIZE, PAGE);
	g_f.media = calloc(BLOCKS, 512);
	assert_non_null(g_f.bar);
	assert_non_null(g_f.media);
	/* CAP: MQES 63, CQR, TO 1 (500 ms), DSTRD 0, CSS NVM, MPSMIN = MPSMAX = 0 */
	set_reg64(UST_NVME_REG_CAP, 63 | (1u << 16) | (1u << 24) | (1ULL << 37));
	set_reg32(UST_NVME_REG_VS, UST_NVME_VS(1, 4, 0));
	g_f.rdy_delay = 2;
	g_f.hold_admin_opc = -1;
	g_f.hold_io_opc = -1;
	g_f.abort_succeeds = true;
	g_f.nq_granted = 4;
	memcpy(g_f.cdata.mn, "QEMU NVMe Ctrl                          ", 40);
	memcpy(g_f.cdata.sn, "deadbeef            ", 20);
	memcpy(g_f.cdata.fr, "8.0.0   ", 8);
	g_f.cdata.vid = 0x1b36;
	g_f.cdata.mdts = 5; /* 128 KiB */
	g_f.cdata.aerl = 3;
	g_f.cdata.nn = NN;
	g_f.cdata.oacs = UST_NVME_OACS_FORMAT_NVM;
	g_f.cdata.oaes = UST_NVME_OAES_NS_ATTRIBUTE_NOTICES;
	g_f.cdata.oncs = UST_NVME_ONCS_DSM | UST_NVME_ONCS_WRITE_ZEROES | UST_NVME_ONCS_COMPARE;
	g_f.cdata.sqes = 0x66;
	g_f.cdata.cqes = 0x44;
	for (i = 0; i < NN; i++) {
		g_f.ns[i].nsze = g_f.ns[i].ncap = BLOCKS;
		g_f.ns[i].nlbaf = 1;
		set_lbaf(&g_f.ns[i], 0, 9);
		set_lbaf(&g_f.ns[i], 1, 12);
		g_f.ns[i].nguid[0] = (uint8_t)(0x10 + i);
	}
	g_f.ns_active[0] = true;
	g_f.ns_active[2] = true;
	assert_int_equal(ust_env_test_pci_add(&g_addr, &id, g_f.bar, BAR_SIZE), 0);
	memset(&g_trid, 0, sizeof(g_trid));
	assert_int_equal(ust_nvme_transport_id_parse(&g_trid, "trtype:PCIe traddr:0000:00:04.0",
						     NULL, 0),
			 0);
}

static void fake_thread_stop(void);

static void fake_fini(void)
{
	if (g_f.thread_running)
		fake_thread_stop();
	ust_env_test_pci_remove(&g_addr);
	ust_dma_free(g_f.bar);
	free(g_f.media);
	pthread_mutex_destroy(&g_f.lock);
}

/* ---- driving the driver ----------------------------------------------------- */

static int drive(struct ust_nvme_ctrlr *ctrlr, int max_rounds)
{
	int i, rc = -EAGAIN;

	for (i = 0; i < max_rounds; i++) {
		fake_tick();
		ust_nvme_ctrlr_process_admin_completions(ctrlr);
		rc = ust_nvme_ctrlr_get_init_status(ctrlr);
		if (rc != -EAGAIN)
			break;
	}
	return rc;
}

static void poll_admin(struct ust_nvme_ctrlr *ctrlr, int rounds)
{
	while (rounds-- > 0) {
		fake_tick();
		ust_nvme_ctrlr_process_admin_completions(ctrlr);
	}
}

static struct ust_nvme_ctrlr *attach(struct ust_nvme_ctrlr_opts *opts)
{
	struct ust_nvme_ctrlr *ctrlr = NULL;

	assert_int_equal(ust_nvme_ctrlr_construct(&g_trid, opts, &ctrlr), 0);
	assert_int_equal(drive(ctrlr, 100), 0);
	poll_admin(ctrlr, 1); /* the device takes the AERs */
	return ctrlr;
}

static void detach(struct ust_nvme_ctrlr *ctrlr)
{
	int i;

	assert_int_equal(ust_nvme_ctrlr_detach_start(ctrlr), 0);
	for (i = 0; i < 100; i++) {
		fake_tick();
		if (ust_nvme_ctrlr_detach_poll(ctrlr) == 0)
			return;
	}
	fail_msg("detach did not finish");
}

static struct ust_nvme_qpair *alloc_qpair(struct ust_nvme_ctrlr *ctrlr,
					  const struct ust_nvme_io_qpair_opts *opts)
{
	struct ust_nvme_qpair *qpair;

	fake_thread_start();
	qpair = ust_nvme_ctrlr_alloc_io_qpair(ctrlr, opts);
	fake_thread_stop();
	assert_non_null(qpair);
	return qpair;
}

static void free_qpair(struct ust_nvme_qpair *qpair)
{
	fake_thread_start();
	assert_int_equal(ust_nvme_ctrlr_free_io_qpair(qpair), 0);
	fake_thread_stop();
}

struct io_result {
	int done;
	int rc;
	struct ust_nvme_cpl cpl;
};

static void io_done(void *arg, const struct ust_nvme_cpl *cpl)
{
	struct io_result *r = arg;

	r->done++;
	r->rc = ust_nvme_cpl_to_errno(cpl);
	r->cpl = *cpl;
}

/* reset_sgl/next_sge over two iovecs; the callbacks' argument is the I/O's */
struct sge_test {
	struct iovec iov[2];
	int idx;
	struct io_result r;
};

static void sge_reset(void *arg, uint32_t offset)
{
	struct sge_test *t = arg;

	assert_int_equal(offset, 0);
	t->idx = 0;
}

static int sge_next(void *arg, void **addr, uint32_t *len)
{
	struct sge_test *t = arg;

	if (t->idx >= 2)
		return -1;
	*addr = t->iov[t->idx].iov_base;
	*len = (uint32_t)t->iov[t->idx].iov_len;
	t->idx++;
	return 0;
}

static void sge_io_done(void *arg, const struct ust_nvme_cpl *cpl)
{
	io_done(&((struct sge_test *)arg)->r, cpl);
}

static void poll_io(struct ust_nvme_qpair *qpair, int rounds)
{
	while (rounds-- > 0) {
		fake_tick();
		ust_nvme_qpair_process_completions(qpair, 0);
	}
}

static int setup(void **state)
{
	ust_env_test_set_ticks(MS(1000));
	fake_init();
	return 0;
}

static int teardown(void **state)
{
	fake_fini();
	return 0;
}

/* ---- bring-up ------------------------------------------------------------------ */

static void test_bringup(void **state)
{
	struct ust_nvme_ctrlr *ctrlr;
	const struct ust_nvme_ctrlr_data *cd;
	struct ust_nvme_ns *ns;
	uint32_t cc, aqa;
	uint8_t uuid[16];
	const uint8_t expect_order[] = {UST_NVME_OPC_IDENTIFY, UST_NVME_OPC_SET_FEATURES,
					UST_NVME_OPC_IDENTIFY, UST_NVME_OPC_IDENTIFY,
					UST_NVME_OPC_IDENTIFY, UST_NVME_OPC_SET_FEATURES};
	int i;

	ctrlr = attach(NULL);
	/* CC as the spec wants it: EN, MPS 0 (4 KiB), CSS NVM, IOSQES 6, IOCQES 4 */
	cc = reg32(UST_NVME_REG_CC);
	assert_int_equal(cc, 1u | (6u << 16) | (4u << 20));
	aqa = reg32(UST_NVME_REG_AQA);
	assert_int_equal(aqa, (31u << 16) | 31u); /* 32 entries, 0's based */
	assert_int_not_equal(reg64(UST_NVME_REG_ASQ), 0);
	assert_int_equal(reg64(UST_NVME_REG_ASQ) % PAGE, 0);
	assert_int_equal(g_f.en_transitions, 1);
	/* the admin commands in order: identify ctrlr, queues, active list, ns 1, ns 3, AEC */
	assert_true(g_f.n_admin_order >= 6);
	assert_memory_equal(g_f.admin_order, expect_order, sizeof(expect_order));
	assert_int_equal(g_f.last_admin[UST_NVME_OPC_SET_FEATURES].cdw10,
			 UST_NVME_FEAT_ASYNC_EVENT_CONFIGURATION);
	assert_int_equal(g_f.last_admin[UST_NVME_OPC_SET_FEATURES].cdw11,
			 0x1fu | UST_NVME_AEC_NS_ATTRIBUTE_NOTICES);
	/* AERL 3: four AERs outstanding */
	assert_int_equal(g_f.naers, 4);

	cd = ust_nvme_ctrlr_get_data(ctrlr);
	assert_memory_equal(cd->mn, "QEMU NVMe Ctrl", 14);
	assert_int_equal(ust_nvme_ctrlr_get_num_ns(ctrlr), NN);
	assert_int_equal(ust_nvme_ctrlr_get_num_io_queues(ctrlr), 4);
	assert_int_equal(ust_nvme_ctrlr_get_max_xfer_size(ctrlr), 128 * 1024);
	assert_int_equal(ust_nvme_ctrlr_get_page_size(ctrlr), 4096);
	assert_int_equal(ust_nvme_ctrlr_get_vs(ctrlr), UST_NVME_VS(1, 4, 0));
	assert_int_equal(ust_nvme_ctrlr_get_first_active_ns(ctrlr), 1);
	assert_int_equal(ust_nvme_ctrlr_get_next_active_ns(ctrlr, 1), 3);
	assert_int_equal(ust_nvme_ctrlr_get_next_active_ns(ctrlr, 3), 0);
	assert_null(ust_nvme_ctrlr_get_ns(ctrlr, 2));
	ns = ust_nvme_ctrlr_get_ns(ctrlr, 3);
	assert_non_null(ns);
	assert_int_equal(ust_nvme_ns_get_sector_size(ns), 512);
	assert_int_equal(ust_nvme_ns_get_num_sectors(ns), BLOCKS);
	assert_int_equal(ust_nvme_ns_get_size(ns), BLOCKS * 512);
	assert_int_equal(ust_nvme_ns_get_max_io_blocks(ns), 256);
	assert_true(ust_nvme_ns_get_uuid(ns, uuid));
	assert_int_equal(uuid[0], 0x12);
	for (i = 0; i < 3; i++)
		poll_admin(ctrlr, 1);
	assert_false(ust_nvme_ctrlr_is_failed(ctrlr));

	detach(ctrlr);
	/* normal shutdown notification: SHN = 01b with EN still set */
	assert_int_equal(reg32(UST_NVME_REG_CC) & (UST_NVME_CC_SHN_MASK | UST_NVME_CC_EN),
			 UST_NVME_CC_SHN_NORMAL | UST_NVME_CC_EN);
}

static void test_bringup_from_enabled(void **state)
{
	struct ust_nvme_ctrlr *ctrlr;

	/* Left enabled by someone else, and RDY not yet set: wait for RDY = 1 first. */
	set_reg32(UST_NVME_REG_CC, UST_NVME_CC_EN);
	g_f.last_cc = UST_NVME_CC_EN;
	g_f.countdown = 3;
	ctrlr = attach(NULL);
	/* the device saw EN go 1 -> 0 -> 1 after it had become ready */
	assert_int_equal(g_f.en_transitions, 2);
	assert_int_equal(ust_nvme_ctrlr_get_init_status(ctrlr), 0);
	detach(ctrlr);
}

static void test_bringup_active_list_fallback(void **state)
{
	struct ust_nvme_ctrlr *ctrlr;

	g_f.active_list_unsupported = true;
	g_f.ns_active[1] = true;
	ctrlr = attach(NULL);
	/* every NSID was identified; those identifying as zeroes are inactive */
	assert_int_equal(g_f.n_admin[UST_NVME_OPC_IDENTIFY], 1 + 1 + NN);
	assert_true(ust_nvme_ctrlr_is_active_ns(ctrlr, 1));
	assert_true(ust_nvme_ctrlr_is_active_ns(ctrlr, 2));
	assert_true(ust_nvme_ctrlr_is_active_ns(ctrlr, 3));
	assert_false(ust_nvme_ctrlr_is_active_ns(ctrlr, 4));
	detach(ctrlr);
}

static void test_bringup_timeout(void **state)
{
	struct ust_nvme_ctrlr *ctrlr = NULL;
	int i;

	g_f.never_ready = true;
	assert_int_equal(ust_nvme_ctrlr_construct(&g_trid, NULL, &ctrlr), 0);
	assert_int_equal(drive(ctrlr, 20), -EAGAIN);
	/* CAP.TO is 500 ms: 400 ms is not enough to give up ... */
	ust_env_test_advance_ticks(MS(400));
	assert_int_equal(drive(ctrlr, 5), -EAGAIN);
	/* ... 600 ms is */
	ust_env_test_advance_ticks(MS(200));
	assert_int_equal(drive(ctrlr, 5), -ETIMEDOUT);
	assert_true(ust_nvme_ctrlr_is_failed(ctrlr));
	for (i = 0; i < 3; i++)
		assert_int_equal(ust_nvme_ctrlr_process_admin_completions(ctrlr), -ENXIO);
	detach(ctrlr);
}

static void test_bringup_bad_device(void **state)
{
	struct ust_nvme_ctrlr *ctrlr = NULL;
	struct ust_nvme_transport_id trid = g_trid;

	/* no such device */
	snprintf(trid.traddr, sizeof(trid.traddr), "0000:00:05.0");
	assert_int_equal(ust_nvme_ctrlr_construct(&trid, NULL, &ctrlr), -ENODEV);
	/* registers all ones: removed before we start */
	g_f.removed = true;
	fake_tick();
	assert_int_equal(ust_nvme_ctrlr_construct(&g_trid, NULL, &ctrlr), 0);
	assert_int_equal(drive(ctrlr, 5), -ENODEV);
	assert_int_equal(ust_nvme_ctrlr_reset(ctrlr), -ENXIO);
	detach(ctrlr);
}

/* ---- I/O ---------------------------------------------------------------------------- */

static void test_io(void **state)
{
	struct ust_nvme_ctrlr *ctrlr = attach(NULL);
	struct ust_nvme_ns *ns = ust_nvme_ctrlr_get_ns(ctrlr, 1);
	struct ust_nvme_qpair *qpair = alloc_qpair(ctrlr, NULL);
	uint8_t *wbuf = ust_dma_malloc(8192, PAGE), *rbuf = ust_dma_zmalloc(8192, PAGE);
	struct ust_nvme_dsm_range range = {0, 4, 10}, many[20];
	struct io_result r = {0};
	struct sge_test sge = {0};
	const struct ust_nvme_cmd *c;
	struct ust_nvme_cmd raw;
	int i;

	assert_int_equal(ust_nvme_qpair_get_id(qpair), 1);
	assert_true(g_f.sq[1].valid && g_f.cq[1].valid);
	assert_int_equal(g_f.sq[1].size, 64); /* capped by CAP.MQES */
	for (i = 0; i < 8192; i++)
		wbuf[i] = (uint8_t)(i * 7);

	assert_int_equal(ust_nvme_ns_cmd_write(ns, qpair, wbuf, 8, 16, io_done, &r, UST_NVME_RW_FUA), 0);
	assert_int_equal(ust_nvme_qpair_get_num_outstanding(qpair), 1);
	poll_io(qpair, 2);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.rc, 0);
	c = &g_f.last_io[UST_NVME_OPC_WRITE];
	assert_int_equal(c->nsid, 1);
	assert_int_equal(c->cdw10, 8);
	assert_int_equal(c->cdw12, 15u | UST_NVME_RW_FUA);
	assert_int_equal(ust_nvme_cmd_psdt(c), UST_NVME_PSDT_PRP);
	assert_memory_equal(g_f.media + 8 * 512, wbuf, 8192);

	assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, rbuf, 8, 16, io_done, &r, 0), 0);
	poll_io(qpair, 2);
	assert_int_equal(r.done, 2);
	assert_int_equal(r.rc, 0);
	assert_memory_equal(rbuf, wbuf, 8192);

	assert_int_equal(ust_nvme_ns_cmd_compare(ns, qpair, wbuf, 8, 16, io_done, &r, 0), 0);
	poll_io(qpair, 2);
	assert_int_equal(r.rc, 0);
	wbuf[100] ^= 1;
	assert_int_equal(ust_nvme_ns_cmd_compare(ns, qpair, wbuf, 8, 16, io_done, &r, 0), 0);
	poll_io(qpair, 2);
	assert_int_equal(r.rc, -EILSEQ);

	assert_int_equal(ust_nvme_ns_cmd_write_zeroes(ns, qpair, 8, 2, io_done, &r, 0), 0);
	poll_io(qpair, 2);
	assert_int_equal(r.rc, 0);
	assert_int_equal(g_f.media[8 * 512 + 5], 0);
	assert_int_equal(g_f.media[10 * 512 + 5], wbuf[2 * 512 + 5]);

	assert_int_equal(ust_nvme_ns_cmd_dataset_management(ns, qpair, UST_NVME_DSM_ATTR_DEALLOCATE,
							    &range, 1, io_done, &r),
			 0);
	poll_io(qpair, 2);
	assert_int_equal(r.rc, 0);
	c = &g_f.last_io[UST_NVME_OPC_DATASET_MANAGEMENT];
	assert_int_equal(c->cdw10, 0);
	assert_int_equal(c->cdw11, UST_NVME_DSM_ATTR_DEALLOCATE);
	assert_int_equal(g_f.media[13 * 512], 0);

	assert_int_equal(ust_nvme_ns_cmd_flush(ns, qpair, io_done, &r), 0);
	poll_io(qpair, 2);
	assert_int_equal(r.rc, 0);
	assert_int_equal(g_f.n_io[UST_NVME_OPC_FLUSH], 1);

	/* more ranges than fit inside the request: a DMA copy of them is sent */
	memset(g_f.media, 0x5a, 64 * 512);
	for (i = 0; i < 20; i++) {
		many[i].context_attributes = 0;
		many[i].length = 1;
		many[i].starting_lba = (uint64_t)i * 3;
	}
	assert_int_equal(ust_nvme_ns_cmd_dataset_management(ns, qpair, UST_NVME_DSM_ATTR_DEALLOCATE,
							    many, 20, io_done, &r),
			 0);
	memset(many, 0xff, sizeof(many)); /* copied at submission */
	poll_io(qpair, 2);
	assert_int_equal(r.rc, 0);
	assert_int_equal(g_f.last_io[UST_NVME_OPC_DATASET_MANAGEMENT].cdw10, 19);
	assert_int_equal(g_f.media[57 * 512], 0);
	assert_int_equal(g_f.media[58 * 512], 0x5a);
	assert_int_equal(ust_nvme_ns_cmd_dataset_management(ns, qpair, 0, many, 1, io_done, &r),
			 -EINVAL);

	/* reset_sgl/next_sge callbacks: two pieces of wbuf */
	sge.iov[0].iov_base = wbuf + 4096;
	sge.iov[0].iov_len = 4096;
	sge.iov[1].iov_base = wbuf;
	sge.iov[1].iov_len = 4096;
	assert_int_equal(ust_nvme_ns_cmd_rw_sgl(ns, qpair, UST_NVME_OPC_WRITE, 40, 16, sge_io_done,
						&sge, 0, sge_reset, sge_next),
			 0);
	poll_io(qpair, 2);
	assert_int_equal(sge.r.rc, 0);
	assert_memory_equal(g_f.media + 40 * 512, wbuf + 4096, 4096);
	assert_memory_equal(g_f.media + 48 * 512, wbuf, 4096);

	/* raw I/O passthrough: a Read built by hand */
	memset(&raw, 0, sizeof(raw));
	raw.cdw0 = UST_NVME_OPC_READ | 0xabcd0000u; /* CID is the driver's */
	raw.nsid = 1;
	raw.cdw10 = 40;
	raw.cdw12 = 7;
	memset(rbuf, 0, 4096);
	assert_int_equal(ust_nvme_ctrlr_cmd_io_raw(ctrlr, qpair, &raw, rbuf, 4096, io_done, &r), 0);
	poll_io(qpair, 2);
	assert_int_equal(r.rc, 0);
	assert_memory_equal(rbuf, wbuf + 4096, 4096);
	assert_int_not_equal(ust_nvme_cmd_cid(&g_f.last_io[UST_NVME_OPC_READ]), 0xabcd);

	/* errors from the device and from argument checks */
	assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, rbuf, BLOCKS - 1, 2, io_done, &r, 0), 0);
	poll_io(qpair, 2);
	assert_int_equal(r.rc, -ERANGE);
	assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, rbuf, 0, 0, io_done, &r, 0), -EINVAL);
	assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, rbuf, 0, 257, io_done, &r, 0), -EINVAL);

	free_qpair(qpair);
	assert_false(g_f.sq[1].valid || g_f.cq[1].valid);
	assert_int_equal(g_f.n_admin[UST_NVME_OPC_DELETE_IO_SQ], 1);
	assert_int_equal(g_f.n_admin[UST_NVME_OPC_DELETE_IO_CQ], 1);
	ust_dma_free(wbuf);
	ust_dma_free(rbuf);
	detach(ctrlr);
}

static void test_io_iov_and_sgl(void **state)
{
	struct ust_nvme_ctrlr *ctrlr = attach(NULL);
	struct ust_nvme_ns *ns = ust_nvme_ctrlr_get_ns(ctrlr, 1);
	struct ust_nvme_qpair *qpair = alloc_qpair(ctrlr, NULL);
	uint8_t *a = ust_dma_malloc(PAGE, PAGE), *b = ust_dma_malloc(3 * PAGE, PAGE);
	uint8_t *out = ust_dma_zmalloc(3 * PAGE, PAGE);
	struct iovec iov[2] = {{a, PAGE}, {b, 2 * PAGE}};
	struct iovec bad[2] = {{a, 512}, {b, 2 * PAGE + 3584}};
	struct io_result r = {0};

	memset(a, 0xaa, PAGE);
	memset(b, 0xbb, 2 * PAGE);
	assert_int_equal(ust_nvme_ns_cmd_writev(ns, qpair, iov, 2, 100, 24, io_done, &r, 0), 0);
	poll_io(qpair, 2);
	assert_int_equal(r.rc, 0);
	assert_int_equal(g_f.media[100 * 512], 0xaa);
	assert_int_equal(g_f.media[100 * 512 + PAGE], 0xbb);
	assert_int_equal(g_f.media[100 * 512 + 3 * PAGE - 1], 0xbb);
	/* a first element ending mid-page cannot be described by PRPs */
	assert_int_equal(ust_nvme_ns_cmd_writev(ns, qpair, bad, 2, 100, 24, io_done, &r, 0),
			 -EINVAL);
	assert_int_equal(ust_nvme_qpair_get_num_outstanding(qpair), 0);
	assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, out, 100, 24, io_done, &r, 0), 0);
	poll_io(qpair, 2);
	assert_int_equal(out[0], 0xaa);
	assert_int_equal(out[3 * PAGE - 1], 0xbb);
	free_qpair(qpair);
	detach(ctrlr);

	/* The same controller with SGLs: the odd iovecs now work. */
	g_f.cdata.sgls = UST_NVME_SGLS_SUPPORTED;
	fake_fini();
	fake_init();
	g_f.cdata.sgls = UST_NVME_SGLS_SUPPORTED;
	ctrlr = attach(NULL);
	assert_true(ust_nvme_ctrlr_uses_sgl(ctrlr));
	ns = ust_nvme_ctrlr_get_ns(ctrlr, 1);
	qpair = alloc_qpair(ctrlr, NULL);
	memset(a, 0x11, 512);
	memset(b, 0x22, 2 * PAGE + 3584);
	assert_int_equal(ust_nvme_ns_cmd_writev(ns, qpair, bad, 2, 200, 24, io_done, &r, 0), 0);
	poll_io(qpair, 2);
	assert_int_equal(r.rc, 0);
	assert_int_equal(ust_nvme_cmd_psdt(&g_f.last_io[UST_NVME_OPC_WRITE]),
			 UST_NVME_PSDT_SGL_MPTR_CONTIG);
	assert_int_equal(g_f.last_io[UST_NVME_OPC_WRITE].dptr.sgl1.sgl_identifier, 0x30);
	assert_int_equal(g_f.media[200 * 512 + 511], 0x11);
	assert_int_equal(g_f.media[200 * 512 + 512], 0x22);
	free_qpair(qpair);
	detach(ctrlr);
	ust_dma_free(a);
	ust_dma_free(b);
	ust_dma_free(out);
}

/* Small queue: the phase tag flips many times; a full queue is -ENOMEM. */
static void test_phase_wrap_and_queue_full(void **state)
{
	struct ust_nvme_ctrlr *ctrlr = attach(NULL);
	struct ust_nvme_ns *ns = ust_nvme_ctrlr_get_ns(ctrlr, 1);
	struct ust_nvme_io_qpair_opts qo;
	struct ust_nvme_qpair *qpair;
	uint8_t *buf = ust_dma_zmalloc(512 * 4, PAGE);
	struct io_result r = {0};
	int i, total = 0;

	ust_nvme_io_qpair_opts_init(ctrlr, &qo);
	qo.io_queue_size = 4; /* three requests */
	qpair = alloc_qpair(ctrlr, &qo);
	for (i = 0; i < 3; i++)
		assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, buf + i * 512, (uint64_t)i, 1,
						      io_done, &r, 0),
				 0);
	assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, buf, 0, 1, io_done, &r, 0), -ENOMEM);
	poll_io(qpair, 2);
	assert_int_equal(r.done, 3);
	/* 30 more, two at a time: the CQ (4 entries) wraps 7 times */
	for (i = 0; i < 15; i++) {
		assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, buf, 1, 1, io_done, &r, 0), 0);
		assert_int_equal(ust_nvme_ns_cmd_write(ns, qpair, buf, 2, 1, io_done, &r, 0), 0);
		fake_tick();
		total += ust_nvme_qpair_process_completions(qpair, 0);
		/* the CQ head doorbell follows the driver's head after each batch */
		assert_int_equal(*cq_doorbell(1), (uint32_t)(3 + total) % 4);
	}
	assert_int_equal(total, 30);
	assert_int_equal(r.done, 33);
	assert_int_equal(r.rc, 0);
	/* max bounds a batch */
	for (i = 0; i < 3; i++)
		assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, buf, 1, 1, io_done, &r, 0), 0);
	fake_tick();
	assert_int_equal(ust_nvme_qpair_process_completions(qpair, 2), 2);
	assert_int_equal(ust_nvme_qpair_process_completions(qpair, 2), 1);
	free_qpair(qpair);
	ust_dma_free(buf);
	detach(ctrlr);
}

static void test_delayed_doorbell(void **state)
{
	struct ust_nvme_ctrlr *ctrlr = attach(NULL);
	struct ust_nvme_ns *ns = ust_nvme_ctrlr_get_ns(ctrlr, 1);
	struct ust_nvme_io_qpair_opts qo;
	struct ust_nvme_qpair *qpair;
	uint8_t *buf = ust_dma_zmalloc(512, PAGE);
	struct io_result r = {0};
	int i;

	ust_nvme_io_qpair_opts_init(ctrlr, &qo);
	qo.delay_sq_doorbell = true;
	qpair = alloc_qpair(ctrlr, &qo);
	for (i = 0; i < 3; i++)
		assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, buf, 0, 1, io_done, &r, 0), 0);
	/* nothing rung yet: the device sees no work */
	assert_int_equal(*sq_doorbell(1), 0);
	fake_tick();
	assert_int_equal(g_f.n_io[UST_NVME_OPC_READ], 0);
	/* one doorbell for the batch, at the next poll */
	assert_int_equal(ust_nvme_qpair_process_completions(qpair, 0), 0);
	assert_int_equal(*sq_doorbell(1), 3);
	fake_tick();
	assert_int_equal(g_f.n_io[UST_NVME_OPC_READ], 3);
	assert_int_equal(ust_nvme_qpair_process_completions(qpair, 0), 3);
	/* explicit flush */
	assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, buf, 0, 1, io_done, &r, 0), 0);
	ust_nvme_qpair_flush(qpair);
	assert_int_equal(*sq_doorbell(1), 4);
	poll_io(qpair, 1);
	assert_int_equal(r.done, 4);
	free_qpair(qpair);
	ust_dma_free(buf);
	detach(ctrlr);
}

/* ---- reset, failure, timeouts --------------------------------------------------------- */

static void test_reset_recreates_queues(void **state)
{
	struct ust_nvme_ctrlr *ctrlr = attach(NULL);
	struct ust_nvme_ns *ns = ust_nvme_ctrlr_get_ns(ctrlr, 1);
	struct ust_nvme_qpair *qpair = alloc_qpair(ctrlr, NULL), *late;
	uint8_t *buf = ust_dma_zmalloc(512, PAGE);
	struct io_result held = {0}, r = {0};
	int i;

	/* an I/O the device sits on when the reset comes */
	g_f.hold_io_opc = UST_NVME_OPC_READ;
	assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, buf, 0, 1, io_done, &held, 0), 0);
	poll_io(qpair, 2);
	assert_int_equal(held.done, 0);
	g_f.hold_io_opc = -1;

	assert_int_equal(ust_nvme_ctrlr_reset(ctrlr), 0);
	assert_int_equal(ust_nvme_ctrlr_reset(ctrlr), -EBUSY);
	assert_int_equal(ust_nvme_ctrlr_get_init_status(ctrlr), -EAGAIN);
	/* a qpair asked for during the reset comes unconnected; I/O on it waits */
	late = ust_nvme_ctrlr_alloc_io_qpair(ctrlr, NULL);
	assert_non_null(late);
	assert_int_equal(ust_nvme_ns_cmd_read(ns, late, buf, 0, 1, io_done, &r, 0), -EAGAIN);
	assert_int_equal(drive(ctrlr, 100), 0);
	poll_admin(ctrlr, 1);
	assert_int_equal(g_f.en_transitions, 3); /* on, off, on */
	assert_int_equal(g_f.naers, 4);          /* AERs resubmitted */
	assert_false(g_f.sq[1].valid);           /* the I/O queue is gone ... */

	/* ... until its owner polls: the held I/O is aborted, the queue recreated */
	fake_thread_start();
	for (i = 0; i < 1000 && held.done == 0; i++)
		ust_nvme_qpair_process_completions(qpair, 0);
	fake_thread_stop();
	assert_int_equal(held.done, 1);
	assert_int_equal(held.rc, -ECANCELED);
	assert_true(g_f.sq[1].valid);
	assert_int_equal(g_f.n_admin[UST_NVME_OPC_CREATE_IO_SQ], 2);
	assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, buf, 0, 1, io_done, &r, 0), 0);
	poll_io(qpair, 2);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.rc, 0);
	/* the late qpair connects at its first poll */
	fake_thread_start();
	assert_int_equal(ust_nvme_qpair_process_completions(late, 0), 0);
	fake_thread_stop();
	assert_true(g_f.sq[ust_nvme_qpair_get_id(late)].valid);
	assert_int_equal(ust_nvme_ns_cmd_read(ns, late, buf, 0, 1, io_done, &r, 0), 0);
	poll_io(late, 2);
	assert_int_equal(r.done, 2);
	assert_int_equal(r.rc, 0);
	free_qpair(late);
	free_qpair(qpair);
	ust_dma_free(buf);
	detach(ctrlr);
}

static void test_cfs_fails_everything(void **state)
{
	struct ust_nvme_ctrlr_opts opts;
	struct ust_nvme_ctrlr *ctrlr;
	struct ust_nvme_ns *ns;
	struct ust_nvme_qpair *qpair;
	uint8_t *buf = ust_dma_zmalloc(512, PAGE);
	struct io_result held = {0};

	ust_nvme_ctrlr_opts_init(&opts);
	opts.health_check_interval_us = 50000;
	ctrlr = attach(&opts);
	ns = ust_nvme_ctrlr_get_ns(ctrlr, 1);
	qpair = alloc_qpair(ctrlr, NULL);
	g_f.hold_io_opc = UST_NVME_OPC_READ;
	assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, buf, 0, 1, io_done, &held, 0), 0);
	poll_io(qpair, 2);

	g_f.cfs = true;
	poll_admin(ctrlr, 2);
	/* not checked before the health interval has passed */
	assert_false(ust_nvme_ctrlr_is_failed(ctrlr));
	ust_env_test_advance_ticks(MS(60));
	poll_admin(ctrlr, 1);
	assert_true(ust_nvme_ctrlr_is_failed(ctrlr));
	assert_int_equal(ust_nvme_ctrlr_get_init_status(ctrlr), -EIO);
	assert_int_equal(ust_nvme_ctrlr_process_admin_completions(ctrlr), -ENXIO);

	/* the I/O qpair learns it at its next poll: everything fails, DNR */
	assert_int_equal(ust_nvme_qpair_process_completions(qpair, 0), -ENXIO);
	assert_int_equal(held.done, 1);
	assert_int_equal(held.rc, -ENXIO);
	assert_int_equal(ust_nvme_cpl_dnr(&held.cpl), 1);
	assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, buf, 0, 1, io_done, &held, 0), -ENXIO);
	/* admin commands too */
	assert_int_equal(ust_nvme_ctrlr_cmd_get_log_page(ctrlr, UST_NVME_LOG_HEALTH_INFORMATION,
							 UINT32_MAX, buf, 512, 0, io_done, &held),
			 -ENXIO);

	/* a reset can recover from CFS: the qpair reconnects afterwards */
	g_f.cfs = false;
	g_f.hold_io_opc = -1;
	assert_int_equal(ust_nvme_ctrlr_reset(ctrlr), 0);
	assert_int_equal(drive(ctrlr, 100), 0);
	assert_false(ust_nvme_ctrlr_is_failed(ctrlr));
	fake_thread_start();
	assert_int_equal(ust_nvme_qpair_process_completions(qpair, 0), 0);
	fake_thread_stop();
	held.done = 0;
	assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, buf, 0, 1, io_done, &held, 0), 0);
	poll_io(qpair, 2);
	assert_int_equal(held.done, 1);
	assert_int_equal(held.rc, 0);
	free_qpair(qpair);
	ust_dma_free(buf);
	detach(ctrlr);
}

static void test_surprise_removal(void **state)
{
	struct ust_nvme_ctrlr_opts opts;
	struct ust_nvme_ctrlr *ctrlr;
	struct ust_nvme_qpair *qpair;
	uint8_t *buf = ust_dma_zmalloc(512, PAGE);
	struct io_result r = {0};

	ust_nvme_ctrlr_opts_init(&opts);
	opts.health_check_interval_us = 1000;
	ctrlr = attach(&opts);
	qpair = alloc_qpair(ctrlr, NULL);
	g_f.hold_admin_opc = UST_NVME_OPC_GET_LOG_PAGE;
	assert_int_equal(ust_nvme_ctrlr_cmd_get_log_page(ctrlr, UST_NVME_LOG_HEALTH_INFORMATION,
							 UINT32_MAX, buf, 512, 0, io_done, &r),
			 0);
	poll_admin(ctrlr, 2);
	assert_int_equal(r.done, 0);
	g_f.removed = true;
	ust_env_test_advance_ticks(MS(2));
	poll_admin(ctrlr, 1);
	assert_true(ust_nvme_ctrlr_is_failed(ctrlr));
	assert_int_equal(ust_nvme_ctrlr_get_init_status(ctrlr), -ENODEV);
	/* the outstanding admin command failed */
	assert_int_equal(r.done, 1);
	assert_int_equal(r.rc, -ENXIO);
	assert_int_equal(ust_nvme_ctrlr_reset(ctrlr), -ENXIO);
	assert_int_equal(ust_nvme_qpair_process_completions(qpair, 0), -ENXIO);
	/* freeing the qpair sends nothing to a dead controller */
	assert_int_equal(ust_nvme_ctrlr_free_io_qpair(qpair), 0);
	detach(ctrlr);
	ust_dma_free(buf);
}

static void test_io_timeout_abort(void **state)
{
	struct ust_nvme_ctrlr_opts opts;
	struct ust_nvme_ctrlr *ctrlr;
	struct ust_nvme_ns *ns;
	struct ust_nvme_qpair *qpair;
	uint8_t *buf = ust_dma_zmalloc(512, PAGE);
	struct io_result r = {0};
	uint16_t cid;

	ust_nvme_ctrlr_opts_init(&opts);
	opts.io_timeout_us = 100000;
	ctrlr = attach(&opts);
	ns = ust_nvme_ctrlr_get_ns(ctrlr, 1);
	qpair = alloc_qpair(ctrlr, NULL);
	g_f.hold_io_opc = UST_NVME_OPC_WRITE;
	assert_int_equal(ust_nvme_ns_cmd_write(ns, qpair, buf, 0, 1, io_done, &r, 0), 0);
	poll_io(qpair, 2);
	cid = ust_nvme_cmd_cid(&g_f.last_io[UST_NVME_OPC_WRITE]);
	assert_int_equal(g_f.n_admin[UST_NVME_OPC_ABORT], 0);

	ust_env_test_advance_ticks(MS(150));
	ust_nvme_qpair_process_completions(qpair, 0);
	/* Abort sent for exactly that command */
	poll_admin(ctrlr, 2);
	assert_int_equal(g_f.n_admin[UST_NVME_OPC_ABORT], 1);
	assert_int_equal(g_f.last_admin[UST_NVME_OPC_ABORT].cdw10, ((uint32_t)cid << 16) | 1);
	poll_io(qpair, 1);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.rc, -ECANCELED);
	assert_int_equal(ust_nvme_cpl_sc(&r.cpl), UST_NVME_SC_ABORTED_BY_REQUEST);
	assert_int_equal(g_f.en_transitions, 1); /* no reset was needed */

	/* Now the device refuses the Abort: the driver resets the controller. */
	g_f.abort_succeeds = false;
	assert_int_equal(ust_nvme_ns_cmd_write(ns, qpair, buf, 0, 1, io_done, &r, 0), 0);
	poll_io(qpair, 2);
	ust_env_test_advance_ticks(MS(150));
	ust_nvme_qpair_process_completions(qpair, 0);
	poll_admin(ctrlr, 2); /* the Abort completes with "not aborted" */
	assert_int_equal(g_f.n_admin[UST_NVME_OPC_ABORT], 2);
	assert_int_equal(ust_nvme_ctrlr_get_init_status(ctrlr), -EAGAIN);
	assert_int_equal(drive(ctrlr, 100), 0);
	assert_int_equal(g_f.en_transitions, 3);
	g_f.hold_io_opc = -1;
	fake_thread_start();
	ust_nvme_qpair_process_completions(qpair, 0);
	fake_thread_stop();
	assert_int_equal(r.done, 2);
	assert_int_equal(r.rc, -ECANCELED);
	free_qpair(qpair);
	ust_dma_free(buf);
	detach(ctrlr);
}

static void test_admin_timeout_resets(void **state)
{
	struct ust_nvme_ctrlr_opts opts;
	struct ust_nvme_ctrlr *ctrlr;
	uint8_t *buf = ust_dma_zmalloc(512, PAGE);
	struct io_result r = {0};

	ust_nvme_ctrlr_opts_init(&opts);
	opts.admin_timeout_us = 200000;
	ctrlr = attach(&opts);
	g_f.hold_admin_opc = UST_NVME_OPC_GET_LOG_PAGE;
	assert_int_equal(ust_nvme_ctrlr_cmd_get_log_page(ctrlr, UST_NVME_LOG_HEALTH_INFORMATION,
							 UINT32_MAX, buf, 512, 0, io_done, &r),
			 0);
	poll_admin(ctrlr, 3);
	ust_env_test_advance_ticks(MS(100));
	poll_admin(ctrlr, 3);
	assert_int_equal(r.done, 0); /* AERs never time out, this one not yet */
	ust_env_test_advance_ticks(MS(150));
	g_f.hold_admin_opc = -1;
	poll_admin(ctrlr, 1);
	assert_int_equal(ust_nvme_ctrlr_get_init_status(ctrlr), -EAGAIN);
	assert_int_equal(drive(ctrlr, 100), 0);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.rc, -ECANCELED);
	ust_dma_free(buf);
	detach(ctrlr);
}

/* ---- events, log pages, format --------------------------------------------------------- */

struct aen_seen {
	int ns_changes;
	int aers;
	uint32_t cdw0;
};

static void on_ns_change(void *ctx, struct ust_nvme_ctrlr *ctrlr)
{
	struct aen_seen *s = ctx;

	s->ns_changes++;
	/* the namespaces are already re-identified when we hear of it */
	assert_true(ust_nvme_ctrlr_is_active_ns(ctrlr, 2));
}

static void on_aer(void *arg, const struct ust_nvme_cpl *cpl)
{
	struct aen_seen *s = arg;

	s->aers++;
	s->cdw0 = cpl->cdw0;
}

static void test_aen_namespace_change(void **state)
{
	struct ust_nvme_ctrlr *ctrlr = attach(NULL);
	struct aen_seen seen = {0};
	uint32_t aen = UST_NVME_AER_TYPE_NOTICE | (UST_NVME_AER_NOTICE_NS_ATTR_CHANGED << 8) |
		       (UST_NVME_LOG_CHANGED_NS_LIST << 16);
	uint32_t smart = UST_NVME_AER_TYPE_SMART | (UST_NVME_LOG_HEALTH_INFORMATION << 16);

	ust_nvme_ctrlr_register_ns_change_callback(ctrlr, on_ns_change, &seen);
	ust_nvme_ctrlr_register_aer_callback(ctrlr, on_aer, &seen);
	assert_false(ust_nvme_ctrlr_is_active_ns(ctrlr, 2));
	g_f.ns_active[1] = true;
	g_f.ns[1].nsze = 1000;
	fake_post_aer(aen);
	poll_admin(ctrlr, 10);
	assert_int_equal(seen.ns_changes, 1);
	assert_int_equal(seen.aers, 1);
	assert_int_equal(seen.cdw0, aen);
	assert_true(ust_nvme_ctrlr_is_active_ns(ctrlr, 2));
	assert_int_equal(ust_nvme_ns_get_num_sectors(ust_nvme_ctrlr_get_ns(ctrlr, 2)), 1000);
	/* the Changed Namespace List was read (RAE clear) to re-arm the event */
	assert_int_equal(g_f.last_admin[UST_NVME_OPC_GET_LOG_PAGE].cdw10 & 0x80ff, 0x04);
	/* and the AER was replaced */
	assert_int_equal(g_f.naers, 4);

	/* a namespace goes away */
	g_f.ns_active[0] = false;
	fake_post_aer(aen);
	poll_admin(ctrlr, 10);
	assert_int_equal(seen.ns_changes, 2);
	assert_null(ust_nvme_ctrlr_get_ns(ctrlr, 1));

	/* other events go to the AER callback after their log page is read */
	fake_post_aer(smart);
	poll_admin(ctrlr, 5);
	assert_int_equal(seen.aers, 3);
	assert_int_equal(seen.cdw0, smart);
	assert_int_equal(g_f.last_admin[UST_NVME_OPC_GET_LOG_PAGE].cdw10 & 0xff, 0x02);
	assert_int_equal(seen.ns_changes, 2);
	detach(ctrlr);
}

static void test_log_pages_and_format(void **state)
{
	struct ust_nvme_ctrlr *ctrlr = attach(NULL);
	struct ust_nvme_health_log *h = ust_dma_zmalloc(sizeof(*h), PAGE);
	struct ust_nvme_error_log_entry *e = ust_dma_zmalloc(sizeof(*e) * 4, PAGE);
	struct ust_nvme_format fmt = {.lbaf = 1};
	struct ust_nvme_cpl cpl;
	struct ust_nvme_cmd raw;
	uint8_t *idbuf = ust_dma_zmalloc(4096, PAGE);

	fake_thread_start();
	assert_int_equal(ust_nvme_ctrlr_get_health_log(ctrlr, UINT32_MAX, h, &cpl), 0);
	assert_int_equal(h->composite_temperature, 310);
	assert_int_equal(h->power_on_hours[0], 42);
	assert_int_equal(g_f.last_admin[UST_NVME_OPC_GET_LOG_PAGE].cdw10, (127u << 16) | 0x02);
	assert_int_equal(ust_nvme_ctrlr_get_error_log(ctrlr, e, 4, &cpl), 0);
	assert_int_equal(e[0].error_count, 7);
	assert_int_equal(g_f.last_admin[UST_NVME_OPC_GET_LOG_PAGE].cdw10, (63u << 16) | 0x01);

	/* raw passthrough: the driver fills CID and the data pointer */
	memset(&raw, 0, sizeof(raw));
	raw.cdw0 = UST_NVME_OPC_IDENTIFY | 0xffff0000u;
	raw.cdw10 = UST_NVME_CNS_CONTROLLER;
	assert_int_equal(ust_nvme_ctrlr_admin_sync(ctrlr, &raw, idbuf, 4096, &cpl), 0);
	assert_memory_equal(idbuf + 24, "QEMU NVMe Ctrl", 14);
	raw.cdw0 = 0xc1; /* vendor specific: the fake does not know it */
	assert_int_equal(ust_nvme_ctrlr_admin_sync(ctrlr, &raw, NULL, 0, &cpl), -EIO);
	assert_int_equal(ust_nvme_cpl_sc(&cpl), UST_NVME_SC_INVALID_OPCODE);

	/* Format NVM to 4 KiB blocks: the namespace is re-identified before we hear back */
	assert_int_equal(ust_nvme_ctrlr_format_sync(ctrlr, 1, &fmt, &cpl), 0);
	assert_int_equal(g_f.last_admin[UST_NVME_OPC_FORMAT_NVM].cdw10, 1);
	assert_int_equal(ust_nvme_ns_get_sector_size(ust_nvme_ctrlr_get_ns(ctrlr, 1)), 4096);
	assert_int_equal(ust_nvme_ns_get_num_sectors(ust_nvme_ctrlr_get_ns(ctrlr, 1)), BLOCKS / 8);
	fmt.lbaf = 5;
	assert_int_equal(ust_nvme_ctrlr_format_sync(ctrlr, 1, &fmt, &cpl), -EIO);
	assert_int_equal(ust_nvme_cpl_sc(&cpl), UST_NVME_SC_INVALID_FORMAT);
	fake_thread_stop();
	ust_dma_free(h);
	ust_dma_free(e);
	ust_dma_free(idbuf);
	detach(ctrlr);
}

static void test_keep_alive(void **state)
{
	struct ust_nvme_ctrlr_opts opts;
	struct ust_nvme_ctrlr *ctrlr;

	g_f.cdata.kas = 10; /* 1 s granularity */
	ust_nvme_ctrlr_opts_init(&opts);
	opts.keep_alive_timeout_ms = 2000;
	ctrlr = attach(&opts);
	assert_int_equal(g_f.n_admin[UST_NVME_OPC_SET_FEATURES], 3);
	poll_admin(ctrlr, 3);
	assert_int_equal(g_f.n_admin[UST_NVME_OPC_KEEP_ALIVE], 0);
	ust_env_test_advance_ticks(MS(1001));
	poll_admin(ctrlr, 3);
	assert_int_equal(g_f.n_admin[UST_NVME_OPC_KEEP_ALIVE], 1);
	ust_env_test_advance_ticks(MS(500));
	poll_admin(ctrlr, 3);
	assert_int_equal(g_f.n_admin[UST_NVME_OPC_KEEP_ALIVE], 1);
	ust_env_test_advance_ticks(MS(600));
	poll_admin(ctrlr, 3);
	assert_int_equal(g_f.n_admin[UST_NVME_OPC_KEEP_ALIVE], 2);
	detach(ctrlr);
}

struct probe_seen {
	int probed;
	int attached;
	struct ust_nvme_ctrlr *ctrlr;
};

static bool probe_cb(void *ctx, const struct ust_nvme_transport_id *trid,
		     struct ust_nvme_ctrlr_opts *opts)
{
	struct probe_seen *p = ctx;

	p->probed++;
	assert_string_equal(trid->traddr, "0000:00:04.0");
	opts->num_io_queues = 2;
	return true;
}

static void attach_cb(void *ctx, const struct ust_nvme_transport_id *trid,
		      struct ust_nvme_ctrlr *ctrlr)
{
	struct probe_seen *p = ctx;

	p->attached++;
	p->ctrlr = ctrlr;
}

static void test_probe_and_connect(void **state)
{
	struct probe_seen p = {0};
	struct ust_nvme_ctrlr *ctrlr;

	/* The synchronous calls wait in real time (ust_delay_us) for the device thread. */
	ust_env_test_unfreeze_ticks();
	fake_thread_start();
	assert_int_equal(ust_nvme_probe(NULL, &p, probe_cb, attach_cb), 1);
	assert_int_equal(p.probed, 1);
	assert_int_equal(p.attached, 1);
	assert_int_equal(g_f.last_admin[UST_NVME_OPC_SET_FEATURES].cdw10, 0x0b);
	assert_int_equal(ust_nvme_ctrlr_get_num_io_queues(p.ctrlr), 2);
	/* attached once: a second attach of the same function is refused */
	assert_null(ust_nvme_connect(&g_trid, NULL));
	assert_int_equal(errno, EBUSY);
	assert_int_equal(ust_nvme_detach(p.ctrlr), 0);
	/* and the synchronous connect works once it is free */
	ctrlr = ust_nvme_connect(&g_trid, NULL);
	assert_non_null(ctrlr);
	assert_int_equal(ust_nvme_detach(ctrlr), 0);
	fake_thread_stop();
}


/* ---- the bdev module ----------------------------------------------------------------- */

static struct ust_thread *g_t0;

static void bdev_poll(int rounds)
{
	while (rounds-- > 0) {
		/* the device thread runs too; this tick only makes progress certain */
		fake_tick();
		/* timed pollers (the admin poller, every 1 ms) need the clock to move */
		ust_env_test_advance_ticks(MS(1));
		ust_thread_poll(g_t0, 0, 0);
	}
}

static void flag_done(void *ctx, int rc)
{
	*(int *)ctx = rc == 0 ? 1 : rc;
}

static void fini_done(void *ctx)
{
	*(int *)ctx = 1;
}

static int bdev_setup(void **state)
{
	int done = 0;

	setup(state);
	if (ust_thread_lib_init(NULL) != 0)
		return -1;
	g_t0 = ust_thread_create("t0", NULL);
	ust_set_thread(g_t0);
	ust_rpc_set_state(UST_RPC_RUNTIME);
	ust_bdev_initialize(flag_done, &done);
	bdev_poll(10);
	fake_thread_start();
	return done == 1 ? 0 : -1;
}

static int bdev_teardown(void **state)
{
	int done = 0, i;

	ust_bdev_finish(fini_done, &done);
	for (i = 0; i < 1000 && done == 0; i++)
		bdev_poll(1);
	fake_thread_stop();
	ust_thread_exit(g_t0);
	for (i = 0; i < 1000 && !ust_thread_is_exited(g_t0); i++)
		ust_thread_poll(g_t0, 0, 0);
	ust_thread_destroy(g_t0);
	ust_set_thread(NULL);
	ust_thread_lib_fini();
	teardown(state);
	return 0;
}

struct attach_result {
	int done;
	int rc;
	char names[4][32];
	size_t n;
};

static void attach_done(void *ctx, int rc, json_t *names)
{
	struct attach_result *a = ctx;
	size_t i;

	a->done = 1;
	a->rc = rc;
	for (i = 0; names != NULL && i < json_array_size(names) && i < 4; i++)
		snprintf(a->names[i], sizeof(a->names[i]), "%s",
			 json_string_value(json_array_get(names, i)));
	a->n = names != NULL ? json_array_size(names) : 0;
}

static void bdev_event(enum ust_bdev_event_type type, struct ust_bdev *bdev, void *ctx)
{
	if (type == UST_BDEV_EVENT_REMOVE)
		(*(int *)ctx)++;
}

struct bio_result {
	int done;
	int status;
};

static void bio_done(struct ust_bdev_io *io, int status, void *arg)
{
	struct bio_result *r = arg;

	r->done++;
	r->status = status;
}

static void bdev_wait(struct bio_result *r, int want)
{
	int i;

	for (i = 0; i < 2000 && r->done < want; i++)
		bdev_poll(1);
	assert_int_equal(r->done, want);
}

static int attach_nvme0(struct attach_result *a)
{
	struct bdev_nvme_attach_opts o;
	int i, rc;

	memset(&o, 0, sizeof(o));
	o.name = "Nvme0";
	o.trid = g_trid;
	o.hostnqn = "nqn.2014-08.org.nvmexpress:uuid:test";
	rc = bdev_nvme_attach_controller(&o, attach_done, a);
	if (rc != 0)
		return rc;
	for (i = 0; i < 2000 && !a->done; i++)
		bdev_poll(1);
	return a->done ? a->rc : -ETIMEDOUT;
}

static void test_bdev_nvme(void **state)
{
	struct attach_result a = {0}, dup = {0};
	struct bdev_nvme_attach_opts o;
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;
	struct ust_bdev *bdev;
	struct bio_result r = {0};
	uint8_t *w = ust_dma_malloc(8 * 512, PAGE), *rd = ust_dma_zmalloc(8 * 512, PAGE);
	json_t *arr, *calls;
	char *text;
	int removed = 0, done = 0, i;
	uint32_t aen = UST_NVME_AER_TYPE_NOTICE | (UST_NVME_LOG_CHANGED_NS_LIST << 16);

	if (attach_nvme0(&a) != 0) {
		ust_dma_free(w);
		ust_dma_free(rd);
		fail_msg("attach failed: %d", a.rc);
	}
	assert_int_equal(a.n, 2);
	assert_string_equal(a.names[0], "Nvme0n1");
	assert_string_equal(a.names[1], "Nvme0n3");
	/* the same name or the same controller again is refused */
	memset(&o, 0, sizeof(o));
	o.name = "Nvme0";
	o.trid = g_trid;
	assert_int_equal(bdev_nvme_attach_controller(&o, attach_done, &dup), -EEXIST);
	o.name = "Nvme1";
	assert_int_equal(bdev_nvme_attach_controller(&o, attach_done, &dup), -EBUSY);

	bdev = ust_bdev_get_by_name("Nvme0n1");
	assert_non_null(bdev);
	assert_int_equal(ust_bdev_get_block_size(bdev), 512);
	assert_int_equal(ust_bdev_get_num_blocks(bdev), BLOCKS);
	assert_int_equal(ust_bdev_get_max_transfer_blocks(bdev), 256);
	assert_string_equal(ust_bdev_get_module_name(bdev), "nvme");
	assert_true(ust_bdev_io_type_supported(bdev, UST_BDEV_IO_TYPE_UNMAP));
	assert_true(ust_bdev_io_type_supported(bdev, UST_BDEV_IO_TYPE_COMPARE));
	assert_int_equal(ust_bdev_get_uuid(bdev)->u[0], 0x10);

	assert_int_equal(ust_bdev_open_ext("Nvme0n1", true, bdev_event, &removed, &desc), 0);
	ch = ust_bdev_get_io_channel(desc);
	assert_non_null(ch);
	for (i = 0; i < 8 * 512; i++)
		w[i] = (uint8_t)(i * 13 + 1);
	assert_int_equal(ust_bdev_write_blocks(desc, ch, w, 16, 8, bio_done, &r), 0);
	bdev_wait(&r, 1);
	assert_int_equal(r.status, 0);
	assert_memory_equal(g_f.media + 16 * 512, w, 8 * 512);
	assert_int_equal(ust_bdev_read_blocks(desc, ch, rd, 16, 8, bio_done, &r), 0);
	bdev_wait(&r, 2);
	assert_int_equal(r.status, 0);
	assert_memory_equal(rd, w, 8 * 512);
	assert_int_equal(ust_bdev_compare_blocks(desc, ch, w, 16, 8, bio_done, &r), 0);
	bdev_wait(&r, 3);
	assert_int_equal(r.status, 0);
	w[7] ^= 0xff;
	assert_int_equal(ust_bdev_compare_blocks(desc, ch, w, 16, 8, bio_done, &r), 0);
	bdev_wait(&r, 4);
	assert_int_equal(r.status, -EILSEQ);
	assert_int_equal(ust_bdev_unmap_blocks(desc, ch, 16, 2, bio_done, &r), 0);
	bdev_wait(&r, 5);
	assert_int_equal(r.status, 0);
	assert_int_equal(g_f.media[16 * 512 + 1], 0);
	assert_int_equal(ust_bdev_write_zeroes_blocks(desc, ch, 18, 2, bio_done, &r), 0);
	bdev_wait(&r, 6);
	assert_int_equal(g_f.n_io[UST_NVME_OPC_WRITE_ZEROES], 1);
	assert_int_equal(ust_bdev_flush_blocks(desc, ch, 0, 8, bio_done, &r), 0);
	bdev_wait(&r, 7);
	assert_int_equal(r.status, 0);

	/* reset: the controller goes down and up, I/O works after it */
	assert_int_equal(ust_bdev_reset(desc, ch, bio_done, &r), 0);
	bdev_wait(&r, 8);
	assert_int_equal(r.status, 0);
	assert_int_equal(g_f.en_transitions, 3);
	assert_int_equal(ust_bdev_read_blocks(desc, ch, rd, 20, 8, bio_done, &r), 0);
	bdev_wait(&r, 9);
	assert_int_equal(r.status, 0);
	assert_memory_equal(rd, g_f.media + 20 * 512, 8 * 512);

	/*
	 * A controller reset under an outstanding I/O (here: the RPC's path,
	 * which the bdev layer does not drain): the aborted read is requeued by
	 * the core and succeeds once the qpair has reconnected.
	 */
	pthread_mutex_lock(&g_f.lock);
	g_f.hold_io_opc = UST_NVME_OPC_READ;
	pthread_mutex_unlock(&g_f.lock);
	memset(rd, 0, 8 * 512);
	assert_int_equal(ust_bdev_read_blocks(desc, ch, rd, 20, 8, bio_done, &r), 0);
	for (i = 0; i < 50 && g_f.nheld == 0; i++)
		bdev_poll(1);
	assert_int_equal(g_f.nheld, 1);
	pthread_mutex_lock(&g_f.lock);
	g_f.hold_io_opc = -1;
	pthread_mutex_unlock(&g_f.lock);
	assert_int_equal(bdev_nvme_reset_controller("Nvme0", flag_done, &done), 0);
	bdev_wait(&r, 10);
	assert_int_equal(r.status, 0);
	assert_memory_equal(rd, g_f.media + 20 * 512, 8 * 512);
	for (i = 0; i < 200 && done == 0; i++)
		bdev_poll(1);
	assert_int_equal(done, 1);
	done = 0;

	/* get_controllers and save_config */
	arr = json_array();
	assert_int_equal(bdev_nvme_get_controllers("Nvme0", arr), 0);
	text = json_dumps(arr, JSON_COMPACT | JSON_SORT_KEYS);
	assert_non_null(strstr(text, "\"name\":\"Nvme0\""));
	assert_non_null(strstr(text, "\"state\":\"enabled\""));
	assert_non_null(strstr(text, "\"traddr\":\"0000:00:04.0\""));
	assert_non_null(strstr(text, "\"trtype\":\"PCIe\""));
	free(text);
	json_decref(arr);
	arr = json_array();
	assert_int_equal(bdev_nvme_get_controllers("Nvme9", arr), -ENODEV);
	json_decref(arr);
	calls = json_array();
	ust_bdev_module_find("nvme")->config_json(calls);
	text = json_dumps(calls, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text, "[{\"method\":\"bdev_nvme_attach_controller\",\"params\":{"
				  "\"hostnqn\":\"nqn.2014-08.org.nvmexpress:uuid:test\","
				  "\"name\":\"Nvme0\",\"traddr\":\"0000:00:04.0\","
				  "\"trtype\":\"PCIe\"}}]");
	free(text);
	json_decref(calls);

	/* a namespace appears: Nvme0n2 is registered */
	pthread_mutex_lock(&g_f.lock);
	g_f.ns_active[1] = true;
	pthread_mutex_unlock(&g_f.lock);
	fake_post_aer(aen);
	for (i = 0; i < 200 && ust_bdev_get_by_name("Nvme0n2") == NULL; i++)
		bdev_poll(1);
	assert_non_null(ust_bdev_get_by_name("Nvme0n2"));

	/* detach: bdevs go (our descriptor hears REMOVE), then the controller shuts down */
	assert_int_equal(bdev_nvme_detach_controller("Nvme0", flag_done, &done), 0);
	for (i = 0; i < 200 && removed == 0; i++)
		bdev_poll(1);
	assert_int_equal(removed, 1);
	ust_put_io_channel(ch);
	ust_bdev_close(desc);
	for (i = 0; i < 2000 && done == 0; i++)
		bdev_poll(1);
	assert_int_equal(done, 1);
	assert_null(ust_bdev_get_by_name("Nvme0n1"));
	assert_null(ust_bdev_get_by_name("Nvme0n3"));
	assert_int_equal(reg32(UST_NVME_REG_CC) & UST_NVME_CC_SHN_MASK, UST_NVME_CC_SHN_NORMAL);
	assert_int_equal(bdev_nvme_detach_controller("Nvme0", flag_done, &done), -ENODEV);
	ust_dma_free(w);
	ust_dma_free(rd);
}

static void test_bdev_nvme_attach_failure(void **state)
{
	struct attach_result a = {0};

	/* the controller never becomes ready: the attach fails after CAP.TO */
	g_f.never_ready = true;
	assert_int_equal(attach_nvme0(&a), -ETIMEDOUT);
	assert_int_equal(a.n, 0);
	assert_null(ust_bdev_get_by_name("Nvme0n1"));
	/* and it is forgotten: the name can be used again */
	g_f.never_ready = false;
	memset(&a, 0, sizeof(a));
	bdev_poll(10);
	assert_int_equal(attach_nvme0(&a), 0);
	assert_int_equal(a.n, 2);
	/* module shutdown (teardown) detaches it */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bringup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bringup_from_enabled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bringup_active_list_fallback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bringup_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bringup_bad_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_iov_and_sgl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_phase_wrap_and_queue_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delayed_doorbell, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_recreates_queues, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cfs_fails_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_surprise_removal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_timeout_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_timeout_resets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_aen_namespace_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_pages_and_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_probe_and_connect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bdev_nvme, bdev_setup, bdev_teardown),
		cmocka_unit_test_setup_teardown(test_bdev_nvme_attach_failure, bdev_setup,
						bdev_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
