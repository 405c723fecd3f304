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
 * The model and the helpers live in fake_ctrlr.c, shared with
 * nvme_bdev_ut.c (the nvme bdev module, reconnect, delayed registers).
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

#include "fake_ctrlr.c"

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
	/* QIDs go round robin: the one just freed is handed out last (4 granted) */
	for (i = 2; i <= 5; i++) {
		qpair = alloc_qpair(ctrlr, NULL);
		assert_int_equal(ust_nvme_qpair_get_id(qpair), (i - 1) % 4 + 1);
		free_qpair(qpair);
	}
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

/*
 * A failure, then a reset (a reconnect) started before the qpair's thread
 * polled: what was outstanding still ends as a failure (DNR, -ENXIO), not
 * as a reset's retryable abort, and the queue comes back.
 */
static void test_failure_noticed_after_reset_began(void **state)
{
	struct ust_nvme_ctrlr *ctrlr = attach(NULL);
	struct ust_nvme_ns *ns = ust_nvme_ctrlr_get_ns(ctrlr, 1);
	struct ust_nvme_qpair *qpair = alloc_qpair(ctrlr, NULL);
	uint8_t *buf = ust_dma_zmalloc(512, PAGE);
	struct io_result held = {0}, r = {0};
	int i;

	g_f.hold_io_opc = UST_NVME_OPC_READ;
	assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, buf, 0, 1, io_done, &held, 0), 0);
	poll_io(qpair, 2);
	assert_int_equal(held.done, 0);
	g_f.hold_io_opc = -1;
	ust_nvme_ctrlr_fail(ctrlr);
	assert_int_equal(ust_nvme_ctrlr_reset(ctrlr), 0);
	assert_int_equal(drive(ctrlr, 100), 0);
	fake_thread_start();
	for (i = 0; i < 1000 && held.done == 0; i++)
		ust_nvme_qpair_process_completions(qpair, 0);
	fake_thread_stop();
	assert_int_equal(held.done, 1);
	assert_int_equal(held.rc, -ENXIO);
	assert_true(ust_nvme_cpl_dnr(&held.cpl));
	assert_int_equal(ust_nvme_ns_cmd_read(ns, qpair, buf, 0, 1, io_done, &r, 0), 0);
	poll_io(qpair, 2);
	assert_int_equal(r.rc, 0);
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
		cmocka_unit_test_setup_teardown(test_failure_noticed_after_reset_began, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cfs_fails_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_surprise_removal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_timeout_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_timeout_resets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_aen_namespace_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_pages_and_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_probe_and_connect, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
