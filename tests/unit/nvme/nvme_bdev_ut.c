/*
 * Unit tests of the nvme bdev module (bdev/nvme) and of the driver's
 * handling of a fabrics-like transport, on the fake controller of
 * fake_ctrlr.c.
 *
 *  - The bdev module: attach creates NAMEn<nsid> bdevs, I/O of every type
 *    through the bdev layer, reset, namespace hot-add by AEN,
 *    get_controllers/save_config output, detach with shutdown.
 *  - A FAKE FABRICS TRANSPORT (trtype FC, unused otherwise): the PCIe
 *    transport on the same model, except that register accesses complete
 *    like Property Get/Set capsules, from a later poll of the admin queue,
 *    and that its "link" can go down: then register accesses are refused,
 *    the admin queue fails the controller and I/O queues report an error,
 *    as NVMe/TCP does when the target goes away.
 *    An I/O queue asked for with async_connect answers -EAGAIN to its
 *    first connect steps, as NVMe/TCP's non-blocking set-up does.
 *  - With it: bring-up and detach complete only because the core polls the
 *    admin queue while a register access is pending (the fix of commit
 *    e01cfbf); an async_connect qpair is returned at once and connects
 *    from its polls (the bdev module's channels use that); and the bdev
 *    module's reconnect state machine: outstanding
 *    I/O fails, new I/O is held, attempts back off (immediate, +2 s, +4 s),
 *    I/O resumes with its data once the link is back, fast_io_fail fails
 *    held I/O, ctrlr_loss_timeout removes the bdevs.
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
#include "../../../nvme/nvme_internal.h"

#include "fake_ctrlr.c"

/* ---- the fake fabrics transport ---------------------------------------------- */

struct shim_reg_op {
	bool is_write;
	uint32_t offset;
	uint32_t size;
	uint64_t value;
	int polls_left;
	nvme_reg_cb cb;
	void *cb_arg;
};

static struct {
	bool link_down;
	int reg_delay;     /* admin polls before an access completes */
	struct shim_reg_op ops[16];
	int nops;
	int deferred;      /* accesses completed from an admin poll */
	int refused;       /* accesses refused while the link was down */
	int connect_steps; /* -EAGAIN answers before an async I/O queue connects */
	int connect_eagain; /* -EAGAIN answers given */
	int sync_connects; /* I/O queues connected without async_connect */
} g_shim;

static struct nvme_transport_ops g_shim_ops;

static bool link_down(void)
{
	return __atomic_load_n(&g_shim.link_down, __ATOMIC_ACQUIRE);
}

static void set_link_down(bool down)
{
	__atomic_store_n(&g_shim.link_down, down, __ATOMIC_RELEASE);
}

static int shim_ctrlr_construct(const struct ust_nvme_transport_id *trid,
				const struct ust_nvme_ctrlr_opts *opts,
				struct ust_nvme_ctrlr **ctrlr)
{
	struct ust_nvme_transport_id pcie = *trid;
	int rc;

	pcie.trtype = UST_NVME_TRANSPORT_PCIE;
	rc = nvme_pcie_transport.ctrlr_construct(&pcie, opts, ctrlr);
	if (rc == 0)
		(*ctrlr)->ops = &g_shim_ops;
	return rc;
}

static int shim_queue(struct ust_nvme_ctrlr *ctrlr, bool is_write, uint32_t offset, uint32_t size,
		      uint64_t value, nvme_reg_cb cb, void *cb_arg)
{
	if (link_down()) {
		g_shim.refused++;
		return -ENOTCONN;
	}
	assert_true(g_shim.nops < 16);
	g_shim.ops[g_shim.nops++] = (struct shim_reg_op){is_write, offset, size, value,
							 g_shim.reg_delay, cb, cb_arg};
	return 0;
}

static int shim_reg_read(struct ust_nvme_ctrlr *ctrlr, uint32_t offset, uint32_t size,
			 nvme_reg_cb cb, void *cb_arg)
{
	return shim_queue(ctrlr, false, offset, size, 0, cb, cb_arg);
}

static int shim_reg_write(struct ust_nvme_ctrlr *ctrlr, uint32_t offset, uint32_t size,
			  uint64_t value, nvme_reg_cb cb, void *cb_arg)
{
	return shim_queue(ctrlr, true, offset, size, value, cb, cb_arg);
}

/* Complete the oldest access once its delay has passed (its callback may queue more). */
static void shim_complete_regs(struct ust_nvme_ctrlr *ctrlr)
{
	struct shim_reg_op op;

	if (g_shim.nops == 0 || g_shim.ops[0].polls_left-- > 0)
		return;
	op = g_shim.ops[0];
	memmove(&g_shim.ops[0], &g_shim.ops[1], sizeof(op) * (size_t)--g_shim.nops);
	g_shim.deferred++;
	if (op.is_write)
		nvme_pcie_transport.reg_write(ctrlr, op.offset, op.size, op.value, op.cb, op.cb_arg);
	else
		nvme_pcie_transport.reg_read(ctrlr, op.offset, op.size, op.cb, op.cb_arg);
}

static int32_t shim_process(struct ust_nvme_qpair *qpair, uint32_t max)
{
	if (qpair->id != 0)
		return link_down() ? -ENXIO : nvme_pcie_transport.qpair_process_completions(qpair,
											    max);
	if (link_down()) {
		/* Like NVMe/TCP: the admin connection failing fails the controller. */
		g_shim.nops = 0;
		nvme_ctrlr_fail(qpair->ctrlr, -ECONNRESET, "fake link down");
		return 0;
	}
	shim_complete_regs(qpair->ctrlr);
	if (qpair->state != NVME_QPAIR_CONNECTED)
		return 0;
	return nvme_pcie_transport.qpair_process_completions(qpair, max);
}

/* Like NVMe/TCP: an async_connect queue takes a few polls to connect. */
static int shim_qpair_connect(struct ust_nvme_qpair *qpair)
{
	static int steps_left;

	if (!qpair->async_connect) {
		g_shim.sync_connects++;
		return nvme_pcie_transport.qpair_connect(qpair);
	}
	if (steps_left == 0)
		steps_left = g_shim.connect_steps + 1;
	if (--steps_left > 0) {
		g_shim.connect_eagain++;
		return -EAGAIN;
	}
	return nvme_pcie_transport.qpair_connect(qpair);
}

static void shim_init(void)
{
	memset(&g_shim, 0, sizeof(g_shim));
	g_shim.reg_delay = 2;
	g_shim_ops = nvme_pcie_transport;
	g_shim_ops.name = "fake-fabrics";
	g_shim_ops.type = UST_NVME_TRANSPORT_FC;
	g_shim_ops.ctrlr_construct = shim_ctrlr_construct;
	g_shim_ops.reg_read = shim_reg_read;
	g_shim_ops.reg_write = shim_reg_write;
	g_shim_ops.qpair_process_completions = shim_process;
	g_shim_ops.qpair_connect = shim_qpair_connect;
	g_shim.connect_steps = 3;
	/* Registered once per process; the ops are refreshed in place. */
	if (nvme_transport_get(UST_NVME_TRANSPORT_FC) == NULL)
		nvme_transport_register(&g_shim_ops);
}

static void shim_trid(struct ust_nvme_transport_id *trid)
{
	*trid = g_trid;
	trid->trtype = UST_NVME_TRANSPORT_FC;
}

/* ---- delayed register access: the admin queue is polled for it --------------------- */

static void test_delayed_registers_bringup_and_detach(void **state)
{
	struct ust_nvme_transport_id trid;
	struct ust_nvme_ctrlr *ctrlr = NULL;
	int i, rc = -EAGAIN;

	shim_init();
	shim_trid(&trid);
	assert_int_equal(ust_nvme_ctrlr_construct(&trid, NULL, &ctrlr), 0);
	for (i = 0; i < 500 && rc == -EAGAIN; i++) {
		fake_tick();
		ust_nvme_ctrlr_process_admin_completions(ctrlr);
		rc = ust_nvme_ctrlr_get_init_status(ctrlr);
	}
	/* CAP, VS, CC, CC.EN = 0/1, CSTS waits: all completed from admin polls */
	assert_int_equal(rc, 0);
	assert_true(g_shim.deferred >= 6);
	assert_int_equal(ust_nvme_ctrlr_get_num_ns(ctrlr), NN);
	assert_true(reg32(UST_NVME_REG_CC) & UST_NVME_CC_EN);

	/* the shutdown's CC write and CSTS reads complete from detach_poll's admin poll */
	assert_int_equal(ust_nvme_ctrlr_detach_start(ctrlr), 0);
	for (i = 0; i < 500; i++) {
		fake_tick();
		if (ust_nvme_ctrlr_detach_poll(ctrlr) == 0)
			break;
	}
	assert_true(i < 500);
	assert_int_equal(reg32(UST_NVME_REG_CC) & UST_NVME_CC_SHN_MASK, UST_NVME_CC_SHN_NORMAL);
	assert_int_equal(g_shim.nops, 0);
}

/* ---- asynchronous I/O qpair connection --------------------------------------------- */

static void test_async_connect(void **state)
{
	struct ust_nvme_transport_id trid;
	struct ust_nvme_ctrlr *ctrlr = NULL;
	struct ust_nvme_io_qpair_opts qopts;
	struct ust_nvme_qpair *qpair;
	struct ust_nvme_ns *ns;
	uint8_t *buf = ust_dma_zmalloc(512, PAGE);
	struct io_result r = {0};
	int i;

	shim_init();
	shim_trid(&trid);
	assert_int_equal(ust_nvme_ctrlr_construct(&trid, NULL, &ctrlr), 0);
	assert_int_equal(drive(ctrlr, 500), 0);
	ns = ust_nvme_ctrlr_get_ns(ctrlr, 1);
	ust_nvme_io_qpair_opts_init(ctrlr, &qopts);
	qopts.async_connect = true;
	/* returned at once after one step, unconnected: I/O waits (-EAGAIN) */
	qpair = ust_nvme_ctrlr_alloc_io_qpair(ctrlr, &qopts);
	assert_non_null(qpair);
	assert_int_equal(g_shim.connect_eagain, 1);
	assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, buf, 0, 1, io_done, &r, 0), -EAGAIN);
	/* each poll takes one more step; the last creates the queues */
	fake_thread_start();
	for (i = 0; i < 10 && !g_f.sq[ust_nvme_qpair_get_id(qpair)].valid; i++)
		assert_int_equal(ust_nvme_qpair_process_completions(qpair, 0), 0);
	fake_thread_stop();
	assert_int_equal(g_shim.connect_eagain, 3);
	assert_int_equal(g_shim.sync_connects, 0);
	assert_true(g_f.sq[ust_nvme_qpair_get_id(qpair)].valid);
	assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, buf, 0, 1, io_done, &r, 0), 0);
	poll_io(qpair, 2);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.rc, 0);
	free_qpair(qpair);
	ust_dma_free(buf);
	detach(ctrlr);
}

/* ---- the bdev module ------------------------------------------------------------ */

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
	assert_string_equal(text, "[{\"method\":\"bdev_nvme_set_options\",\"params\":{"
				  "\"ctrlr_loss_timeout_sec\":0,\"fast_io_fail_timeout_sec\":0,"
				  "\"reconnect_delay_sec\":0}},"
				  "{\"method\":\"bdev_nvme_attach_controller\",\"params\":{"
				  "\"ctrlr_loss_timeout_sec\":0,\"fast_io_fail_timeout_sec\":0,"
				  "\"hostnqn\":\"nqn.2014-08.org.nvmexpress:uuid:test\","
				  "\"name\":\"Nvme0\",\"reconnect_delay_sec\":0,"
				  "\"traddr\":\"0000:00:04.0\",\"trtype\":\"PCIe\"}}]");
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


/* ---- reconnect -------------------------------------------------------------------------- */

static int attach_shim(struct attach_result *a, const struct bdev_nvme_reconnect_opts *ro)
{
	struct bdev_nvme_attach_opts o;
	int i, rc;

	memset(&o, 0, sizeof(o));
	o.name = "Fab0";
	shim_trid(&o.trid);
	o.reconnect = ro;
	rc = bdev_nvme_attach_controller(&o, attach_done, a);
	if (rc != 0)
		return rc;
	for (i = 0; i < 2000 && !a->done; i++)
		bdev_poll(1);
	return a->done ? a->rc : -ETIMEDOUT;
}

static const char *ctrlr_state(void)
{
	static char buf[64];
	json_t *arr = json_array();
	json_t *c;

	buf[0] = '\0';
	if (bdev_nvme_get_controllers("Fab0", arr) == 0) {
		c = json_array_get(json_object_get(json_array_get(arr, 0), "ctrlrs"), 0);
		snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(c, "state")));
	}
	json_decref(arr);
	return buf;
}

/* Move the clock by ms in 1 ms poll rounds plus one jump (pollers run at each). */
static void advance_ms(uint64_t ms)
{
	ust_env_test_advance_ticks(MS(ms));
	bdev_poll(20);
}

static void test_bdev_nvme_reconnect(void **state)
{
	struct bdev_nvme_reconnect_opts ro = {.ctrlr_loss_timeout_sec = 30,
					      .reconnect_delay_sec = 2,
					      .fast_io_fail_timeout_sec = 20};
	struct bdev_nvme_reconnect_opts bad = {.ctrlr_loss_timeout_sec = 0,
					       .reconnect_delay_sec = 1};
	struct attach_result a = {0};
	struct ust_bdev_desc *desc;
	struct ust_io_channel *ch;
	struct bio_result r = {0}, held = {0}, fast = {0};
	uint8_t *w = ust_dma_malloc(8 * 512, PAGE), *rd = ust_dma_zmalloc(8 * 512, PAGE);
	int removed = 0, i, refused;

	shim_init();
	/* SPDK's rules: a delay without a loss timeout is refused */
	assert_int_equal(attach_shim(&a, &bad), -EINVAL);
	assert_int_equal(attach_shim(&a, &ro), 0);
	assert_int_equal(ust_bdev_open_ext("Fab0n1", true, bdev_event, &removed, &desc), 0);
	/* the channel's qpair connects from its poller (async_connect), not in a wait */
	g_shim.connect_eagain = 0;
	ch = ust_bdev_get_io_channel(desc);
	assert_non_null(ch);
	for (i = 0; i < 8 * 512; i++)
		w[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(ust_bdev_write_blocks(desc, ch, w, 0, 8, bio_done, &r), 0);
	bdev_wait(&r, 1);
	assert_int_equal(r.status, 0);
	assert_int_equal(g_shim.connect_eagain, 3);
	assert_int_equal(g_shim.sync_connects, 0);

	/* the link goes down under an outstanding read: it fails */
	pthread_mutex_lock(&g_f.lock);
	g_f.hold_io_opc = UST_NVME_OPC_READ;
	pthread_mutex_unlock(&g_f.lock);
	assert_int_equal(ust_bdev_read_blocks(desc, ch, rd, 0, 8, bio_done, &r), 0);
	for (i = 0; i < 100 && g_f.nheld == 0; i++)
		bdev_poll(1);
	assert_int_equal(g_f.nheld, 1);
	set_link_down(true);
	bdev_wait(&r, 2);
	assert_int_equal(r.status, -ENXIO);
	pthread_mutex_lock(&g_f.lock);
	g_f.hold_io_opc = -1;
	g_f.nheld = 0;
	pthread_mutex_unlock(&g_f.lock);

	/* the first attempt is immediate and refused; the bdev stays */
	for (i = 0; i < 100 && g_shim.refused == 0; i++)
		bdev_poll(1);
	assert_int_equal(g_shim.refused, 1);
	assert_string_equal(ctrlr_state(), "reconnecting");
	assert_non_null(ust_bdev_get_by_name("Fab0n1"));

	/* new I/O is held while reconnecting, before fast_io_fail_timeout_sec */
	for (i = 0; i < 8 * 512; i++)
		w[i] = (uint8_t)(i * 5 + 1);
	assert_int_equal(ust_bdev_write_blocks(desc, ch, w, 8, 8, bio_done, &held), 0);
	bdev_poll(200);
	assert_int_equal(held.done, 0);

	/* back-off: the next attempt 2 s after the first failure (~0.2 s ago), then 4 s later */
	advance_ms(1500);
	assert_int_equal(g_shim.refused, 1);
	advance_ms(500);
	assert_int_equal(g_shim.refused, 2);
	advance_ms(3000);
	assert_int_equal(g_shim.refused, 2);
	advance_ms(1100);
	assert_int_equal(g_shim.refused, 3);
	assert_int_equal(held.done, 0);

	/* the link comes back: the next attempt (8 s later) reconnects, held I/O runs */
	set_link_down(false);
	advance_ms(7000);
	assert_string_equal(ctrlr_state(), "reconnecting");
	advance_ms(1100);
	for (i = 0; i < 2000 && held.done == 0; i++)
		bdev_poll(1);
	assert_int_equal(held.done, 1);
	assert_int_equal(held.status, 0);
	assert_string_equal(ctrlr_state(), "enabled");
	memset(rd, 0, 8 * 512);
	assert_int_equal(ust_bdev_read_blocks(desc, ch, rd, 8, 8, bio_done, &r), 0);
	bdev_wait(&r, 3);
	assert_int_equal(r.status, 0);
	assert_memory_equal(rd, w, 8 * 512);
	assert_memory_equal(g_f.media + 8 * 512, w, 8 * 512);

	/* down again: after fast_io_fail_timeout_sec held I/O fails fast */
	set_link_down(true);
	for (i = 0; i < 200 && strcmp(ctrlr_state(), "reconnecting") != 0; i++)
		bdev_poll(1);
	assert_string_equal(ctrlr_state(), "reconnecting");
	assert_int_equal(ust_bdev_read_blocks(desc, ch, rd, 0, 8, bio_done, &fast), 0);
	advance_ms(15000);
	assert_int_equal(fast.done, 0);
	advance_ms(5100);
	for (i = 0; i < 200 && fast.done == 0; i++)
		bdev_poll(1);
	assert_int_equal(fast.done, 1);
	assert_int_equal(fast.status, -ENXIO);

	/* ctrlr_loss_timeout_sec: the bdevs are removed, the controller detached */
	refused = g_shim.refused;
	for (i = 0; i < 25 && removed == 0; i++)
		advance_ms(1000);
	assert_int_equal(removed, 1);
	assert_true(g_shim.refused > refused);
	ust_put_io_channel(ch);
	ust_bdev_close(desc);
	for (i = 0; i < 2000 && ust_bdev_get_by_name("Fab0n1") != NULL; i++)
		bdev_poll(1);
	assert_null(ust_bdev_get_by_name("Fab0n1"));
	for (i = 0; i < 2000 && ctrlr_state()[0] != '\0'; i++)
		bdev_poll(1);
	assert_string_equal(ctrlr_state(), "");
	set_link_down(false);
	ust_dma_free(w);
	ust_dma_free(rd);
}

static void test_bdev_nvme_no_reconnect_by_default(void **state)
{
	struct attach_result a = {0};
	struct bdev_nvme_reconnect_opts o;
	int i;

	shim_init();
	bdev_nvme_get_options(&o);
	assert_int_equal(o.ctrlr_loss_timeout_sec, 0);
	assert_int_equal(attach_shim(&a, NULL), 0);
	set_link_down(true);
	for (i = 0; i < 200 && strcmp(ctrlr_state(), "failed") != 0; i++)
		bdev_poll(1);
	assert_string_equal(ctrlr_state(), "failed");
	advance_ms(5000);
	/* nothing tried to reconnect; the bdev stays until detached */
	assert_int_equal(g_shim.refused, 0);
	assert_non_null(ust_bdev_get_by_name("Fab0n1"));
	set_link_down(false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_delayed_registers_bringup_and_detach, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_async_connect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bdev_nvme, bdev_setup, bdev_teardown),
		cmocka_unit_test_setup_teardown(test_bdev_nvme_attach_failure, bdev_setup,
						bdev_teardown),
		cmocka_unit_test_setup_teardown(test_bdev_nvme_reconnect, bdev_setup, bdev_teardown),
		cmocka_unit_test_setup_teardown(test_bdev_nvme_no_reconnect_by_default, bdev_setup,
						bdev_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
