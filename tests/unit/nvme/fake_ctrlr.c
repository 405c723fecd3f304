/*
 * The fake NVMe controller shared by the NVMe unit tests (nvme_ctrlr_ut.c,
 * nvme_bdev_ut.c), which #include it: a model of a controller's registers
 * and queues behind a fake PCI function, driven by fake_tick() (see
 * nvme_ctrlr_ut.c for what it models), plus the helpers that drive the
 * driver and the bdev layer against it. Not every test uses every helper.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
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

#pragma GCC diagnostic pop
