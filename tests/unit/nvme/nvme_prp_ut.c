/*
 * Unit tests for the PCIe transport's data pointers: PRP1/PRP2 and PRP
 * lists (single page, two pages, a list, an unaligned first entry, several
 * iovecs, the errors for an unaligned middle element and a non-dword first
 * entry, the list capacity), chained PRP lists (a full page of 512 entries
 * without a chain, the chain pointer in the last slot when one more comes,
 * an unaligned first entry, an exact two-page list, scattered iovecs, the
 * page count for a transfer size) and SGLs (one data block, a last-segment list,
 * merging of adjacent elements, dword-alignment, capacity), for plain
 * buffers, iovec arrays and reset_sgl/next_sge callbacks. The test
 * environment's IO addresses equal virtual addresses, so expected entries
 * are computed from the buffers themselves.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ustor/env.h"
#include "ustor/nvme.h"

#include "../../../nvme/nvme_internal.h"

#define PAGE 4096u
#define PER_PAGE (PAGE / 8) /* PRP entries in one list page */
#define MEM_PAGES 1100      /* enough for a three-page chained list */
#define LIST_PAGES 3

static uint8_t *g_mem;    /* MEM_PAGES pages, page aligned */
static uint64_t *g_list;  /* LIST_PAGES PRP list pages */
static uint64_t g_list_bus[LIST_PAGES];
static struct ust_nvme_sgl_descriptor *g_sgl;

static int setup(void **state)
{
	int i;

	g_mem = ust_dma_zmalloc((size_t)MEM_PAGES * PAGE, PAGE);
	g_list = ust_dma_zmalloc(LIST_PAGES * PAGE, PAGE);
	for (i = 0; i < LIST_PAGES; i++)
		g_list_bus[i] = (uint64_t)(uintptr_t)(g_list + i * PER_PAGE);
	g_sgl = ust_dma_zmalloc(PAGE, PAGE);
	return g_mem && g_list && g_sgl ? 0 : -1;
}

static int teardown(void **state)
{
	ust_dma_free(g_mem);
	ust_dma_free(g_list);
	ust_dma_free(g_sgl);
	return 0;
}

static uint64_t bus(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

static void req_contig(struct nvme_request *req, void *buf, uint32_t len)
{
	memset(req, 0, sizeof(*req));
	req->payload.type = NVME_PAYLOAD_CONTIG;
	req->payload.buf = buf;
	req->payload_size = len;
}

static void req_iov(struct nvme_request *req, const struct iovec *iov, int n, uint32_t len)
{
	memset(req, 0, sizeof(*req));
	req->payload.type = NVME_PAYLOAD_IOV;
	req->payload.iov = iov;
	req->payload.iovcnt = n;
	req->payload_size = len;
}

static int build_prps_pages(struct nvme_request *req, uint32_t list_pages)
{
	memset(g_list, 0, LIST_PAGES * PAGE);
	return nvme_pcie_build_prps(req, PAGE, g_list, g_list_bus, list_pages);
}

static int build_prps(struct nvme_request *req)
{
	return build_prps_pages(req, 1);
}

static void test_prp_single_page(void **state)
{
	struct nvme_request req;

	req_contig(&req, g_mem, PAGE);
	assert_int_equal(build_prps(&req), 0);
	assert_int_equal(ust_nvme_cmd_psdt(&req.cmd), UST_NVME_PSDT_PRP);
	assert_int_equal(req.cmd.dptr.prp.prp1, bus(g_mem));
	assert_int_equal(req.cmd.dptr.prp.prp2, 0);

	/* 512 bytes at an offset, within the page: PRP1 only */
	req_contig(&req, g_mem + 1024, 512);
	assert_int_equal(build_prps(&req), 0);
	assert_int_equal(req.cmd.dptr.prp.prp1, bus(g_mem + 1024));
	assert_int_equal(req.cmd.dptr.prp.prp2, 0);
}

static void test_prp_two_pages(void **state)
{
	struct nvme_request req;

	req_contig(&req, g_mem, 2 * PAGE);
	assert_int_equal(build_prps(&req), 0);
	assert_int_equal(req.cmd.dptr.prp.prp1, bus(g_mem));
	assert_int_equal(req.cmd.dptr.prp.prp2, bus(g_mem + PAGE));

	/* unaligned first entry crossing one boundary: PRP2 is the next page */
	req_contig(&req, g_mem + 3072, 2048);
	assert_int_equal(build_prps(&req), 0);
	assert_int_equal(req.cmd.dptr.prp.prp1, bus(g_mem + 3072));
	assert_int_equal(req.cmd.dptr.prp.prp2, bus(g_mem + PAGE));
}

static void test_prp_list(void **state)
{
	struct nvme_request req;
	int i;

	req_contig(&req, g_mem, 5 * PAGE);
	assert_int_equal(build_prps(&req), 0);
	assert_int_equal(req.cmd.dptr.prp.prp1, bus(g_mem));
	assert_int_equal(req.cmd.dptr.prp.prp2, bus(g_list));
	for (i = 0; i < 4; i++)
		assert_int_equal(g_list[i], bus(g_mem + (i + 1) * PAGE));
	assert_int_equal(g_list[4], 0);

	/* unaligned first entry: 3 KiB + 8 KiB + 1 KiB = PRP1 and a list of 3 */
	req_contig(&req, g_mem + 1024, 3072 + 2 * PAGE + 1024);
	assert_int_equal(build_prps(&req), 0);
	assert_int_equal(req.cmd.dptr.prp.prp1, bus(g_mem + 1024));
	assert_int_equal(req.cmd.dptr.prp.prp2, bus(g_list));
	assert_int_equal(g_list[0], bus(g_mem + PAGE));
	assert_int_equal(g_list[1], bus(g_mem + 2 * PAGE));
	assert_int_equal(g_list[2], bus(g_mem + 3 * PAGE));
	assert_int_equal(g_list[3], 0);
}

static void test_prp_list_capacity(void **state)
{
	struct nvme_request req;

	/* one list page: PRP1 + 512 entries fit, one more page needs a chain */
	req_contig(&req, g_mem, (1 + PER_PAGE) * PAGE);
	assert_int_equal(build_prps(&req), 0);
	req_contig(&req, g_mem, (2 + PER_PAGE) * PAGE);
	assert_int_equal(build_prps(&req), -EINVAL);
	/* no list page at all (admin queue, larger MPS): PRP1 and PRP2 only */
	req_contig(&req, g_mem, 2 * PAGE);
	assert_int_equal(build_prps_pages(&req, 0), 0);
	assert_int_equal(req.cmd.dptr.prp.prp2, bus(g_mem + PAGE));
	req_contig(&req, g_mem, 3 * PAGE);
	assert_int_equal(build_prps_pages(&req, 0), -EINVAL);
}

/* Every list entry in slots [from, to) is page start + i pages. */
static void assert_entries(uint32_t from, uint32_t to, const uint8_t *first_page)
{
	uint32_t i;

	for (i = from; i < to; i++)
		assert_int_equal(g_list[i], bus(first_page + (size_t)(i - from) * PAGE));
}

static void test_prp_chain_full_page_no_chain(void **state)
{
	struct nvme_request req;

	/* 513 aligned pages: PRP1 and exactly 512 entries, the whole page, no pointer */
	req_contig(&req, g_mem, (1 + PER_PAGE) * PAGE);
	assert_int_equal(build_prps_pages(&req, 2), 0);
	assert_int_equal(req.cmd.dptr.prp.prp1, bus(g_mem));
	assert_int_equal(req.cmd.dptr.prp.prp2, g_list_bus[0]);
	assert_entries(0, PER_PAGE, g_mem + PAGE);
	assert_int_equal(g_list[PER_PAGE], 0); /* the second page is not used */
}

static void test_prp_chain_one_more(void **state)
{
	struct nvme_request req;

	/* 514 aligned pages: 511 entries, the chain pointer, then 2 on the next page */
	req_contig(&req, g_mem, (2 + PER_PAGE) * PAGE);
	assert_int_equal(build_prps_pages(&req, 2), 0);
	assert_int_equal(req.cmd.dptr.prp.prp1, bus(g_mem));
	assert_int_equal(req.cmd.dptr.prp.prp2, g_list_bus[0]);
	assert_entries(0, PER_PAGE - 1, g_mem + PAGE);
	assert_int_equal(g_list[PER_PAGE - 1], g_list_bus[1]);
	assert_int_equal(g_list[PER_PAGE], bus(g_mem + PER_PAGE * PAGE));
	assert_int_equal(g_list[PER_PAGE + 1], bus(g_mem + (PER_PAGE + 1) * PAGE));
	assert_int_equal(g_list[PER_PAGE + 2], 0);
}

static void test_prp_chain_unaligned_first(void **state)
{
	struct nvme_request req;
	uint32_t len = 2048 + PER_PAGE * PAGE + 100;

	/* 2 KiB in PRP1's page, 512 whole pages, 100 bytes: 513 list entries */
	req_contig(&req, g_mem + 2048, len);
	assert_int_equal(build_prps_pages(&req, 2), 0);
	assert_int_equal(req.cmd.dptr.prp.prp1, bus(g_mem + 2048));
	assert_int_equal(req.cmd.dptr.prp.prp2, g_list_bus[0]);
	assert_entries(0, PER_PAGE - 1, g_mem + PAGE);
	assert_int_equal(g_list[PER_PAGE - 1], g_list_bus[1]);
	assert_entries(PER_PAGE, PER_PAGE + 2, g_mem + PER_PAGE * PAGE);
	assert_int_equal(g_list[PER_PAGE + 2], 0);
}

static void test_prp_chain_exact_two_pages(void **state)
{
	struct nvme_request req;
	/* PRP1 + 511 + 512 entries: two list pages, the second exactly full */
	uint32_t pages = 1 + (PER_PAGE - 1) + PER_PAGE;

	req_contig(&req, g_mem, pages * PAGE);
	assert_int_equal(build_prps_pages(&req, 2), 0);
	assert_int_equal(g_list[PER_PAGE - 1], g_list_bus[1]);
	assert_entries(PER_PAGE, 2 * PER_PAGE, g_mem + PER_PAGE * PAGE);
	/* one page more needs a third list page */
	req_contig(&req, g_mem, (pages + 1) * PAGE);
	assert_int_equal(build_prps_pages(&req, 2), -EINVAL);
	req_contig(&req, g_mem, (pages + 1) * PAGE);
	assert_int_equal(build_prps_pages(&req, 3), 0);
	assert_int_equal(g_list[2 * PER_PAGE - 1], g_list_bus[2]);
	assert_int_equal(g_list[2 * PER_PAGE], bus(g_mem + (pages - 1) * PAGE));
	assert_int_equal(g_list[2 * PER_PAGE + 1], bus(g_mem + pages * PAGE));
}

static void test_prp_chain_scattered_iovecs(void **state)
{
	struct iovec iov[600];
	struct nvme_request req;
	uint32_t i, len = 0, slot;

	/* a first element ending on a page, then 599 pages scattered through memory */
	iov[0].iov_base = g_mem + 1024;
	iov[0].iov_len = PAGE - 1024;
	for (i = 1; i < 600; i++) {
		iov[i].iov_base = g_mem + (size_t)((i * 37) % MEM_PAGES) * PAGE;
		iov[i].iov_len = PAGE;
	}
	for (i = 0; i < 600; i++)
		len += (uint32_t)iov[i].iov_len;
	req_iov(&req, iov, 600, len);
	assert_int_equal(build_prps_pages(&req, 2), 0);
	assert_int_equal(req.cmd.dptr.prp.prp1, bus(g_mem + 1024));
	assert_int_equal(req.cmd.dptr.prp.prp2, g_list_bus[0]);
	for (i = 1, slot = 0; i < 600; i++, slot++) {
		if (slot == PER_PAGE - 1) {
			assert_int_equal(g_list[slot], g_list_bus[1]);
			slot++;
		}
		assert_int_equal(g_list[slot], bus(iov[i].iov_base));
	}
}

static void test_prp_list_pages_for_size(void **state)
{
	assert_int_equal(nvme_pcie_prp_list_pages(PAGE, 128 * 1024), 1);
	/* 2 MiB: an unaligned PRP1 leaves 512 entries, one full page */
	assert_int_equal(nvme_pcie_prp_list_pages(PAGE, 2u << 20), 1);
	assert_int_equal(nvme_pcie_prp_list_pages(PAGE, (2u << 20) + PAGE), 2);
	/* 511 + 512 entries in two pages; 1024 entries need a third */
	assert_int_equal(nvme_pcie_prp_list_pages(PAGE, 1023 * PAGE), 2);
	assert_int_equal(nvme_pcie_prp_list_pages(PAGE, 4u << 20), 3);
	/* 8 KiB memory pages hold 1024 entries */
	assert_int_equal(nvme_pcie_prp_list_pages(8192, 8u << 20), 1);
}

static void test_prp_iovecs(void **state)
{
	struct nvme_request req;
	struct iovec iov[3] = {
		{g_mem + 2048, 2048},          /* first: may start mid-page, ends on a page */
		{g_mem + 8 * PAGE, 2 * PAGE},  /* middle: whole pages */
		{g_mem + 20 * PAGE, 100},      /* last: may end anywhere */
	};

	req_iov(&req, iov, 3, 2048 + 2 * PAGE + 100);
	assert_int_equal(build_prps(&req), 0);
	assert_int_equal(req.cmd.dptr.prp.prp1, bus(g_mem + 2048));
	assert_int_equal(req.cmd.dptr.prp.prp2, bus(g_list));
	assert_int_equal(g_list[0], bus(g_mem + 8 * PAGE));
	assert_int_equal(g_list[1], bus(g_mem + 9 * PAGE));
	assert_int_equal(g_list[2], bus(g_mem + 20 * PAGE));

	/* two iovecs, the second a page: PRP2 is that page */
	req_iov(&req, iov + 1, 2, 2 * PAGE + 100);
	assert_int_equal(build_prps(&req), 0);
	assert_int_equal(req.cmd.dptr.prp.prp1, bus(g_mem + 8 * PAGE));
	assert_int_equal(req.cmd.dptr.prp.prp2, bus(g_list));

	/* the command moves less than the iovecs hold: only what it needs */
	req_iov(&req, iov, 3, 2048 + PAGE);
	assert_int_equal(build_prps(&req), 0);
	assert_int_equal(req.cmd.dptr.prp.prp1, bus(g_mem + 2048));
	assert_int_equal(req.cmd.dptr.prp.prp2, bus(g_mem + 8 * PAGE));
}

static void test_prp_errors(void **state)
{
	struct nvme_request req;
	struct iovec mid_unaligned[3] = {
		{g_mem, PAGE},
		{g_mem + 8 * PAGE + 512, PAGE}, /* middle element not page aligned */
		{g_mem + 20 * PAGE, PAGE},
	};
	struct iovec first_short[2] = {
		{g_mem, 1024}, /* ends before the page boundary, and is not the last */
		{g_mem + 8 * PAGE, PAGE},
	};
	struct iovec too_few[1] = {{g_mem, 512}};

	req_iov(&req, mid_unaligned, 3, 3 * PAGE);
	assert_int_equal(build_prps(&req), -EINVAL);
	req_iov(&req, first_short, 2, 1024 + PAGE);
	assert_int_equal(build_prps(&req), -EINVAL);
	/* PRP1 must be dword aligned */
	req_contig(&req, g_mem + 2, 512);
	assert_int_equal(build_prps(&req), -EINVAL);
	/* iovecs shorter than the transfer */
	req_iov(&req, too_few, 1, 1024);
	assert_int_equal(build_prps(&req), -EINVAL);
	/* memory without an IO address */
	req_contig(&req, NULL, 512);
	assert_int_equal(build_prps(&req), -EFAULT);
}

static void test_prp_adjacent_iovecs_merge(void **state)
{
	struct nvme_request req;
	/* contiguous in memory although split mid-page: one PRP range */
	struct iovec iov[2] = {{g_mem + 512, 1024}, {g_mem + 1536, PAGE}};

	req_iov(&req, iov, 2, 1024 + PAGE);
	assert_int_equal(build_prps(&req), 0);
	assert_int_equal(req.cmd.dptr.prp.prp1, bus(g_mem + 512));
	assert_int_equal(req.cmd.dptr.prp.prp2, bus(g_mem + PAGE));
}

/* reset_sgl/next_sge callbacks over a fixed table */
struct sge_ctx {
	struct iovec *iov;
	int n;
	int idx;
	uint32_t last_reset;
};

static void sge_reset(void *arg, uint32_t offset)
{
	struct sge_ctx *c = arg;

	c->idx = 0;
	c->last_reset = offset;
}

static int sge_next(void *arg, void **addr, uint32_t *len)
{
	struct sge_ctx *c = arg;

	if (c->idx >= c->n)
		return -1;
	*addr = c->iov[c->idx].iov_base;
	*len = (uint32_t)c->iov[c->idx].iov_len;
	c->idx++;
	return 0;
}

static void test_prp_sgl_callbacks(void **state)
{
	struct iovec iov[2] = {{g_mem + 4 * PAGE, PAGE}, {g_mem + 10 * PAGE, PAGE}};
	struct sge_ctx c = {iov, 2, 5, 99};
	struct nvme_request req;

	memset(&req, 0, sizeof(req));
	req.payload.type = NVME_PAYLOAD_SGL_CB;
	req.payload.reset_sgl = sge_reset;
	req.payload.next_sge = sge_next;
	req.payload.sgl_cb_arg = &c;
	req.payload_size = 2 * PAGE;
	assert_int_equal(build_prps(&req), 0);
	assert_int_equal(c.last_reset, 0);
	assert_int_equal(req.cmd.dptr.prp.prp1, bus(g_mem + 4 * PAGE));
	assert_int_equal(req.cmd.dptr.prp.prp2, bus(g_mem + 10 * PAGE));
}

static void test_sgl_single(void **state)
{
	struct nvme_request req;

	req_contig(&req, g_mem + 100, 5000);
	assert_int_equal(nvme_pcie_build_sgl(&req, g_sgl, bus(g_sgl), 256, false), 0);
	assert_int_equal(ust_nvme_cmd_psdt(&req.cmd), UST_NVME_PSDT_SGL_MPTR_CONTIG);
	assert_int_equal(req.cmd.dptr.sgl1.address, bus(g_mem + 100));
	assert_int_equal(req.cmd.dptr.sgl1.length, 5000);
	assert_int_equal(req.cmd.dptr.sgl1.sgl_identifier, 0x00); /* data block, address */
}

static void test_sgl_list(void **state)
{
	struct nvme_request req;
	struct iovec iov[3] = {
		{g_mem + 100, 300},
		{g_mem + 8 * PAGE + 7, 1000}, /* any alignment with SGLs */
		{g_mem + 20 * PAGE, 4},
	};

	req_iov(&req, iov, 3, 1304);
	assert_int_equal(nvme_pcie_build_sgl(&req, g_sgl, bus(g_sgl), 256, false), 0);
	assert_int_equal(req.cmd.dptr.sgl1.address, bus(g_sgl));
	assert_int_equal(req.cmd.dptr.sgl1.length, 3 * 16);
	assert_int_equal(req.cmd.dptr.sgl1.sgl_identifier, 0x30); /* last segment */
	assert_int_equal(g_sgl[0].address, bus(g_mem + 100));
	assert_int_equal(g_sgl[0].length, 300);
	assert_int_equal(g_sgl[1].address, bus(g_mem + 8 * PAGE + 7));
	assert_int_equal(g_sgl[1].length, 1000);
	assert_int_equal(g_sgl[2].length, 4);
	assert_int_equal(g_sgl[2].sgl_identifier, 0x00);

	/* dword alignment required: the odd address is refused */
	req_iov(&req, iov, 3, 1304);
	assert_int_equal(nvme_pcie_build_sgl(&req, g_sgl, bus(g_sgl), 256, true), -EINVAL);
	/* too many descriptors for the segment */
	req_iov(&req, iov, 3, 1304);
	assert_int_equal(nvme_pcie_build_sgl(&req, g_sgl, bus(g_sgl), 2, false), -EINVAL);
}

static void test_sgl_merge(void **state)
{
	struct nvme_request req;
	struct iovec iov[2] = {{g_mem, 512}, {g_mem + 512, 512}};

	req_iov(&req, iov, 2, 1024);
	assert_int_equal(nvme_pcie_build_sgl(&req, g_sgl, bus(g_sgl), 256, true), 0);
	assert_int_equal(req.cmd.dptr.sgl1.sgl_identifier, 0x00);
	assert_int_equal(req.cmd.dptr.sgl1.address, bus(g_mem));
	assert_int_equal(req.cmd.dptr.sgl1.length, 1024);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prp_single_page),
		cmocka_unit_test(test_prp_two_pages),
		cmocka_unit_test(test_prp_list),
		cmocka_unit_test(test_prp_list_capacity),
		cmocka_unit_test(test_prp_chain_full_page_no_chain),
		cmocka_unit_test(test_prp_chain_one_more),
		cmocka_unit_test(test_prp_chain_unaligned_first),
		cmocka_unit_test(test_prp_chain_exact_two_pages),
		cmocka_unit_test(test_prp_chain_scattered_iovecs),
		cmocka_unit_test(test_prp_list_pages_for_size),
		cmocka_unit_test(test_prp_iovecs),
		cmocka_unit_test(test_prp_errors),
		cmocka_unit_test(test_prp_adjacent_iovecs_merge),
		cmocka_unit_test(test_prp_sgl_callbacks),
		cmocka_unit_test(test_sgl_single),
		cmocka_unit_test(test_sgl_list),
		cmocka_unit_test(test_sgl_merge),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
