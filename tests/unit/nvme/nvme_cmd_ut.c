/*
 * Unit tests for the NVMe driver's pure parts: every field of the SQE built
 * for each command, completion status decoding (errno and names), and
 * transport ID parsing and printing with their errors.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ustor/nvme.h"

#include "../../../nvme/nvme_internal.h"

/* Every byte of cmd other than the ones named must be zero. */
static void assert_zero_except(const struct ust_nvme_cmd *cmd, const size_t *offs, size_t n)
{
	const uint8_t *p = (const uint8_t *)cmd;
	size_t i, j;

	for (i = 0; i < sizeof(*cmd); i++) {
		bool named = false;

		for (j = 0; j < n; j++) {
			if (i >= offs[j] && i < offs[j] + 4)
				named = true;
		}
		if (!named && p[i] != 0)
			fail_msg("byte %zu of the SQE is %02x, expected 0", i, p[i]);
	}
}

#define OFF(f) offsetof(struct ust_nvme_cmd, f)

static void test_identify(void **state)
{
	struct ust_nvme_cmd cmd;
	const size_t offs[] = {OFF(cdw0), OFF(nsid), OFF(cdw10)};

	memset(&cmd, 0xa5, sizeof(cmd));
	nvme_cmd_identify(&cmd, UST_NVME_CNS_ACTIVE_NS_LIST, 0x1234, 7);
	assert_int_equal(ust_nvme_cmd_opc(&cmd), 0x06);
	assert_int_equal(cmd.cdw0, 0x06);
	assert_int_equal(cmd.nsid, 7);
	assert_int_equal(cmd.cdw10, 0x12340002);
	assert_zero_except(&cmd, offs, 3);
}

static void test_set_get_features(void **state)
{
	struct ust_nvme_cmd cmd;
	const size_t offs[] = {OFF(cdw0), OFF(cdw10), OFF(cdw11), OFF(cdw12)};

	nvme_cmd_set_num_queues(&cmd, 8);
	assert_int_equal(cmd.cdw0, 0x09);
	assert_int_equal(cmd.cdw10, 0x07);
	/* NCQR 31:16 and NSQR 15:0, both 0's based */
	assert_int_equal(cmd.cdw11, 0x00070007);
	assert_zero_except(&cmd, offs, 3);

	nvme_cmd_set_features(&cmd, UST_NVME_FEAT_KEEP_ALIVE_TIMER, 10000, 0x55);
	assert_int_equal(cmd.cdw10, 0x0f);
	assert_int_equal(cmd.cdw11, 10000);
	assert_int_equal(cmd.cdw12, 0x55);
	assert_zero_except(&cmd, offs, 4);

	nvme_cmd_get_features(&cmd, UST_NVME_FEAT_VOLATILE_WRITE_CACHE, 3);
	assert_int_equal(cmd.cdw0, 0x0a);
	assert_int_equal(cmd.cdw10, 0x06);
	assert_int_equal(cmd.cdw11, 3);
	assert_zero_except(&cmd, offs, 3);
}

static void test_get_log_page(void **state)
{
	struct ust_nvme_cmd cmd;
	const size_t offs[] = {OFF(cdw0), OFF(nsid), OFF(cdw10), OFF(cdw11), OFF(cdw12),
			       OFF(cdw13)};

	nvme_cmd_get_log_page(&cmd, UST_NVME_LOG_HEALTH_INFORMATION, 0xffffffff, 128, 0, false);
	assert_int_equal(cmd.cdw0, 0x02);
	assert_int_equal(cmd.nsid, 0xffffffff);
	assert_int_equal(cmd.cdw10, (127u << 16) | 0x02); /* NUMDL 0's based */
	assert_int_equal(cmd.cdw11, 0);
	assert_zero_except(&cmd, offs, 3);

	/* 0x30000 dwords: NUMDU holds the high half; offset in LPOL/LPOU; RAE */
	nvme_cmd_get_log_page(&cmd, 0x04, 1, 0x30000, 0x123456789000ULL, true);
	assert_int_equal(cmd.cdw10, (0xffffu << 16) | (1u << 15) | 0x04);
	assert_int_equal(cmd.cdw11, 0x2);
	assert_int_equal(cmd.cdw12, 0x56789000);
	assert_int_equal(cmd.cdw13, 0x1234);
	assert_zero_except(&cmd, offs, 6);
}

static void test_queue_commands(void **state)
{
	struct ust_nvme_cmd cmd;
	const size_t offs_create[] = {OFF(cdw0), OFF(dptr.prp.prp1), OFF(dptr.prp.prp1) + 4,
				      OFF(cdw10), OFF(cdw11)};
	const size_t offs_delete[] = {OFF(cdw0), OFF(cdw10)};

	nvme_cmd_create_io_cq(&cmd, 3, 256, 0x1234567000ULL);
	assert_int_equal(cmd.cdw0, 0x05);
	assert_int_equal(cmd.dptr.prp.prp1, 0x1234567000ULL);
	assert_int_equal(cmd.cdw10, (255u << 16) | 3);
	assert_int_equal(cmd.cdw11, 1); /* PC, no interrupts */
	assert_zero_except(&cmd, offs_create, 5);

	nvme_cmd_create_io_sq(&cmd, 3, 64, 3, 0xabc000);
	assert_int_equal(cmd.cdw0, 0x01);
	assert_int_equal(cmd.dptr.prp.prp1, 0xabc000);
	assert_int_equal(cmd.cdw10, (63u << 16) | 3);
	assert_int_equal(cmd.cdw11, (3u << 16) | 1); /* CQID, PC */
	assert_zero_except(&cmd, offs_create, 5);

	nvme_cmd_delete_io_sq(&cmd, 9);
	assert_int_equal(cmd.cdw0, 0x00);
	assert_int_equal(cmd.cdw10, 9);
	assert_zero_except(&cmd, offs_delete, 2);
	nvme_cmd_delete_io_cq(&cmd, 9);
	assert_int_equal(cmd.cdw0, 0x04);
	assert_int_equal(cmd.cdw10, 9);
	assert_zero_except(&cmd, offs_delete, 2);

	nvme_cmd_abort(&cmd, 2, 0x77);
	assert_int_equal(cmd.cdw0, 0x08);
	assert_int_equal(cmd.cdw10, (0x77u << 16) | 2);
	assert_zero_except(&cmd, offs_delete, 2);

	nvme_cmd_async_event_request(&cmd);
	assert_int_equal(cmd.cdw0, 0x0c);
	assert_zero_except(&cmd, offs_delete, 1);
	nvme_cmd_keep_alive(&cmd);
	assert_int_equal(cmd.cdw0, 0x18);
	assert_zero_except(&cmd, offs_delete, 1);
}

static void test_format(void **state)
{
	struct ust_nvme_cmd cmd;
	struct ust_nvme_format f = {.lbaf = 0x15, .mset = 1, .pi = 3, .pil = 1, .ses = 2};
	const size_t offs[] = {OFF(cdw0), OFF(nsid), OFF(cdw10)};

	nvme_cmd_format_nvm(&cmd, 1, &f);
	assert_int_equal(cmd.cdw0, 0x80);
	assert_int_equal(cmd.nsid, 1);
	/* LBAFL 5, MSET, PI 3, PIL, SES 2, LBAFU 1 */
	assert_int_equal(cmd.cdw10, 0x5u | (1u << 4) | (3u << 5) | (1u << 8) | (2u << 9) | (1u << 12));
	assert_zero_except(&cmd, offs, 3);
}

static void test_io_commands(void **state)
{
	struct ust_nvme_cmd cmd;
	const size_t offs[] = {OFF(cdw0), OFF(nsid), OFF(cdw10), OFF(cdw11), OFF(cdw12)};

	nvme_cmd_rw(&cmd, UST_NVME_OPC_READ, 1, 0x123456789aULL, 8, 0);
	assert_int_equal(cmd.cdw0, 0x02);
	assert_int_equal(cmd.nsid, 1);
	assert_int_equal(cmd.cdw10, 0x3456789a);
	assert_int_equal(cmd.cdw11, 0x12);
	assert_int_equal(cmd.cdw12, 7); /* NLB 0's based */
	assert_zero_except(&cmd, offs, 5);

	nvme_cmd_rw(&cmd, UST_NVME_OPC_WRITE, 2, 5, 65536, UST_NVME_RW_FUA);
	assert_int_equal(cmd.cdw0, 0x01);
	assert_int_equal(cmd.cdw12, 0xffffu | (1u << 30));
	nvme_cmd_rw(&cmd, UST_NVME_OPC_COMPARE, 2, 5, 1, UST_NVME_RW_LR);
	assert_int_equal(cmd.cdw0, 0x05);
	assert_int_equal(cmd.cdw12, 1u << 31);
	nvme_cmd_rw(&cmd, UST_NVME_OPC_WRITE_ZEROES, 2, 5, 16, UST_NVME_WZ_DEAC);
	assert_int_equal(cmd.cdw0, 0x08);
	assert_int_equal(cmd.cdw12, 15u | (1u << 25));
	assert_zero_except(&cmd, offs, 5);

	nvme_cmd_flush(&cmd, 3);
	assert_int_equal(cmd.cdw0, 0x00);
	assert_int_equal(cmd.nsid, 3);
	assert_zero_except(&cmd, offs, 2);

	nvme_cmd_dsm(&cmd, 1, UST_NVME_DSM_ATTR_DEALLOCATE, 256);
	assert_int_equal(cmd.cdw0, 0x09);
	assert_int_equal(cmd.cdw10, 255); /* NR 0's based */
	assert_int_equal(cmd.cdw11, 4);   /* AD */
	assert_zero_except(&cmd, offs, 4);
}

static void test_cid_psdt(void **state)
{
	struct ust_nvme_cmd cmd;

	nvme_cmd_rw(&cmd, UST_NVME_OPC_READ, 1, 0, 1, 0);
	ust_nvme_cmd_set_cid(&cmd, 0xbeef);
	ust_nvme_cmd_set_psdt(&cmd, UST_NVME_PSDT_SGL_MPTR_CONTIG);
	assert_int_equal(cmd.cdw0, 0xbeef0000u | (1u << 14) | 0x02);
	assert_int_equal(ust_nvme_cmd_cid(&cmd), 0xbeef);
	assert_int_equal(ust_nvme_cmd_psdt(&cmd), 1);
	assert_int_equal(ust_nvme_cmd_opc(&cmd), 2);
}

static struct ust_nvme_cpl make_cpl(uint32_t sct, uint32_t sc, uint32_t dnr)
{
	struct ust_nvme_cpl cpl;

	memset(&cpl, 0, sizeof(cpl));
	cpl.status = (uint16_t)(ust_nvme_status(sct, sc, dnr) | 1); /* phase set */
	return cpl;
}

static void test_status(void **state)
{
	struct ust_nvme_cpl cpl = make_cpl(0, 0, 0);

	assert_false(ust_nvme_cpl_is_error(&cpl));
	assert_int_equal(ust_nvme_cpl_to_errno(&cpl), 0);
	assert_string_equal(ust_nvme_cpl_status_str(&cpl), "SUCCESS");
	assert_int_equal(ust_nvme_cpl_p(&cpl), 1);

	cpl = make_cpl(UST_NVME_SCT_MEDIA_ERROR, UST_NVME_SC_COMPARE_FAILURE, 1);
	assert_true(ust_nvme_cpl_is_error(&cpl));
	assert_int_equal(ust_nvme_cpl_sct(&cpl), 2);
	assert_int_equal(ust_nvme_cpl_sc(&cpl), 0x85);
	assert_int_equal(ust_nvme_cpl_dnr(&cpl), 1);
	assert_int_equal(ust_nvme_cpl_to_errno(&cpl), -EILSEQ);
	assert_string_equal(ust_nvme_cpl_status_str(&cpl), "COMPARE FAILURE");

	cpl = make_cpl(0, UST_NVME_SC_ABORTED_SQ_DELETION, 0);
	assert_int_equal(ust_nvme_cpl_to_errno(&cpl), -ECANCELED);
	cpl = make_cpl(0, UST_NVME_SC_ABORTED_SQ_DELETION, 1);
	assert_int_equal(ust_nvme_cpl_to_errno(&cpl), -ENXIO);
	cpl = make_cpl(0, UST_NVME_SC_ABORTED_BY_REQUEST, 0);
	assert_int_equal(ust_nvme_cpl_to_errno(&cpl), -ECANCELED);
	cpl = make_cpl(0, UST_NVME_SC_LBA_OUT_OF_RANGE, 0);
	assert_int_equal(ust_nvme_cpl_to_errno(&cpl), -ERANGE);
	assert_string_equal(ust_nvme_cpl_status_str(&cpl), "LBA OUT OF RANGE");
	cpl = make_cpl(0, UST_NVME_SC_INVALID_OPCODE, 1);
	assert_int_equal(ust_nvme_cpl_to_errno(&cpl), -EINVAL);
	cpl = make_cpl(1, UST_NVME_SC_INVALID_LOG_PAGE, 1);
	assert_int_equal(ust_nvme_cpl_to_errno(&cpl), -EIO);
	assert_string_equal(ust_nvme_cpl_status_str(&cpl), "INVALID LOG PAGE");
	cpl = make_cpl(7, 0xc0, 0);
	assert_int_equal(ust_nvme_cpl_to_errno(&cpl), -EIO);
	assert_string_equal(ust_nvme_cpl_status_str(&cpl), "VENDOR SPECIFIC");
	cpl = make_cpl(0, 0x7f, 0);
	assert_string_equal(ust_nvme_cpl_status_str(&cpl), "GENERIC (unknown status code)");
}

/* ---- transport IDs ---------------------------------------------------------- */

static void test_trid_pcie(void **state)
{
	struct ust_nvme_transport_id trid, other;
	char buf[UST_NVME_TRID_STRING_LEN], err[128];

	assert_int_equal(ust_nvme_transport_id_parse(&trid, "trtype:PCIe traddr:0000:00:04.0", err,
						     sizeof(err)),
			 0);
	assert_int_equal(trid.trtype, UST_NVME_TRANSPORT_PCIE);
	assert_string_equal(trid.traddr, "0000:00:04.0");
	assert_int_equal(ust_nvme_transport_id_fmt(buf, sizeof(buf), &trid), 0);
	assert_string_equal(buf, "trtype:PCIe traddr:0000:00:04.0");

	/* Case-insensitive keys and values, '=', tabs, short address normalised. */
	assert_int_equal(ust_nvme_transport_id_parse(&other, "  TRTYPE=pcie\tTrAddr:00:04.0 ", err,
						     sizeof(err)),
			 0);
	assert_string_equal(other.traddr, "0000:00:04.0");
	assert_int_equal(ust_nvme_transport_id_compare(&trid, &other), 0);
	assert_int_equal(ust_nvme_transport_id_parse(&other, "trtype:PCIe traddr:0000:00:05.0",
						     NULL, 0),
			 0);
	assert_true(ust_nvme_transport_id_compare(&trid, &other) < 0);

	/* No traddr means every PCIe controller (probing). */
	assert_int_equal(ust_nvme_transport_id_parse(&trid, "trtype:PCIe", err, sizeof(err)), 0);
	assert_string_equal(trid.traddr, "");
}

static void test_trid_tcp(void **state)
{
	struct ust_nvme_transport_id trid, back;
	char buf[UST_NVME_TRID_STRING_LEN], err[128];
	const char *s = "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 "
			"subnqn:nqn.2016-06.io.spdk:cnode1";

	assert_int_equal(ust_nvme_transport_id_parse(&trid, s, err, sizeof(err)), 0);
	assert_int_equal(trid.trtype, UST_NVME_TRANSPORT_TCP);
	assert_int_equal(trid.adrfam, UST_NVME_ADRFAM_IPV4);
	assert_string_equal(trid.traddr, "127.0.0.1");
	assert_string_equal(trid.trsvcid, "4420");
	assert_string_equal(trid.subnqn, "nqn.2016-06.io.spdk:cnode1");
	assert_int_equal(ust_nvme_transport_id_fmt(buf, sizeof(buf), &trid), 0);
	assert_string_equal(buf, s);
	assert_int_equal(ust_nvme_transport_id_parse(&back, buf, NULL, 0), 0);
	assert_int_equal(ust_nvme_transport_id_compare(&trid, &back), 0);
	assert_int_equal(ust_nvme_transport_id_fmt(buf, 20, &trid), -ENOSPC);

	/* adrfam inferred from the address when missing */
	assert_int_equal(ust_nvme_transport_id_parse(&trid, "trtype:tcp traddr:::1 trsvcid:4420",
						     err, sizeof(err)),
			 0);
	assert_int_equal(trid.adrfam, UST_NVME_ADRFAM_IPV6);
	assert_string_equal(trid.traddr, "::1");
}

static void expect_trid_error(const char *str, const char *needle)
{
	struct ust_nvme_transport_id trid;
	char err[256];

	assert_int_equal(ust_nvme_transport_id_parse(&trid, str, err, sizeof(err)), -EINVAL);
	if (strstr(err, needle) == NULL)
		fail_msg("error for '%s' is '%s', expected it to mention '%s'", str, err, needle);
}

static void test_trid_errors(void **state)
{
	char longaddr[400];

	expect_trid_error("", "trtype is missing");
	expect_trid_error("traddr:0000:00:04.0", "trtype is missing");
	expect_trid_error("trtype:FOO traddr:1", "trtype 'FOO' is not known");
	expect_trid_error("trtype:PCIe traddr:zz:00.0", "not a PCI address");
	expect_trid_error("trtype:PCIe traddr:0000:00:20.0", "not a PCI address");
	expect_trid_error("trtype:PCIe bogus:1", "unknown key 'bogus'");
	expect_trid_error("trtype:PCIe trtype:PCIe", "trtype is given twice");
	expect_trid_error("trtype:PCIe traddr:", "traddr has no value");
	expect_trid_error("trtype:PCIe justaword", "'justaword' is not key:value");
	expect_trid_error("trtype:TCP trsvcid:4420", "traddr is missing");
	expect_trid_error("trtype:TCP adrfam:IPX traddr:1.2.3.4", "adrfam 'IPX' is not known");
	expect_trid_error("trtype:PCIe traddr:0000:00:04.0 trsvcid:1", "PCIe takes only traddr");
	memset(longaddr, 'a', sizeof(longaddr));
	memcpy(longaddr, "trtype:TCP traddr:", 18);
	longaddr[sizeof(longaddr) - 1] = '\0';
	expect_trid_error(longaddr, "traddr is too long");
	assert_int_equal(ust_nvme_transport_id_parse(NULL, "trtype:PCIe", NULL, 0), -EINVAL);
}

static void test_trtype_adrfam_names(void **state)
{
	enum ust_nvme_transport_type t;
	enum ust_nvme_adrfam a;

	assert_string_equal(ust_nvme_transport_type_str(UST_NVME_TRANSPORT_TCP), "TCP");
	assert_null(ust_nvme_transport_type_str((enum ust_nvme_transport_type)99));
	assert_int_equal(ust_nvme_transport_type_parse(&t, "rdma"), 0);
	assert_int_equal(t, UST_NVME_TRANSPORT_RDMA);
	assert_int_equal(ust_nvme_transport_type_parse(&t, "x"), -EINVAL);
	assert_int_equal(ust_nvme_adrfam_parse(&a, "ipv6"), 0);
	assert_int_equal(a, UST_NVME_ADRFAM_IPV6);
	assert_string_equal(ust_nvme_adrfam_str(UST_NVME_ADRFAM_IPV4), "IPv4");
	assert_null(ust_nvme_adrfam_str(UST_NVME_ADRFAM_NONE));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identify),
		cmocka_unit_test(test_set_get_features),
		cmocka_unit_test(test_get_log_page),
		cmocka_unit_test(test_queue_commands),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_io_commands),
		cmocka_unit_test(test_cid_psdt),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_trid_pcie),
		cmocka_unit_test(test_trid_tcp),
		cmocka_unit_test(test_trid_errors),
		cmocka_unit_test(test_trtype_adrfam_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
