/*
 * Unit tests for NVMe/TCP PDU encoding/decoding and digests (nvme/tcp/tcp_pdu.c):
 * CRC32C against the published iSCSI vectors (RFC 3720 B.4) and the check
 * value of "123456789", incremental digests, the wire layout of every PDU
 * type (field offsets and little-endian byte order) and decoding back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../../nvme/tcp/tcp_internal.h"

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static void test_crc32c_vectors(void **state)
{
	uint8_t buf[32];
	int i;

	/* The CRC-32C check value. */
	assert_int_equal(nvme_tcp_crc32c("123456789", 9), 0xe3069283);
	/* RFC 3720 B.4: 32 bytes of zeros, of ones, incrementing, decrementing. */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(nvme_tcp_crc32c(buf, 32), 0x8a9136aa);
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(nvme_tcp_crc32c(buf, 32), 0x62a8ab43);
	for (i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(nvme_tcp_crc32c(buf, 32), 0x46dd794e);
	for (i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	assert_int_equal(nvme_tcp_crc32c(buf, 32), 0x113fdb5c);
	/* The empty message. */
	assert_int_equal(nvme_tcp_crc32c(buf, 0), 0);
}

static void test_crc32c_incremental_and_wire_order(void **state)
{
	uint8_t buf[1000], d[4];
	uint32_t crc = NVME_TCP_CRC32C_INIT;
	size_t off = 0, n;
	int i;

	for (i = 0; i < 1000; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	for (n = 1; off < sizeof(buf); n = n * 3 % 97 + 1) {
		if (n > sizeof(buf) - off)
			n = sizeof(buf) - off;
		crc = nvme_tcp_crc32c_update(crc, buf + off, n);
		off += n;
	}
	assert_int_equal(nvme_tcp_crc32c_final(crc), nvme_tcp_crc32c(buf, sizeof(buf)));
	/* Digests go on the wire least significant byte first. */
	nvme_tcp_put_digest(d, 0xe3069283);
	assert_int_equal(d[0], 0x83);
	assert_int_equal(d[1], 0x92);
	assert_int_equal(d[2], 0x06);
	assert_int_equal(d[3], 0xe3);
	assert_int_equal(nvme_tcp_get_digest(d), 0xe3069283);
}

static void test_icreq_icresp(void **state)
{
	uint8_t b[128];
	struct nvme_tcp_rx_hdr h;

	memset(b, 0xaa, sizeof(b));
	assert_int_equal(nvme_tcp_build_icreq(b, 2, 3, 0), 128);
	assert_int_equal(b[0], 0x00);   /* PDU-Type ICReq */
	assert_int_equal(b[1], 0);      /* FLAGS */
	assert_int_equal(b[2], 128);    /* HLEN */
	assert_int_equal(b[3], 0);      /* PDO */
	assert_int_equal(rd32(b + 4), 128); /* PLEN */
	assert_int_equal(rd16(b + 8), 0);   /* PFV */
	assert_int_equal(b[10], 2);         /* HPDA */
	assert_int_equal(b[11], 3);         /* DGST */
	assert_int_equal(rd32(b + 12), 0);  /* MAXR2T */
	for (int i = 16; i < 128; i++)
		assert_int_equal(b[i], 0);

	assert_int_equal(nvme_tcp_build_icresp(b, 7, 1, 0x20000), 128);
	assert_int_equal(b[0], 0x01);
	assert_int_equal(b[10], 7);             /* CPDA */
	assert_int_equal(b[11], 1);             /* DGST */
	assert_int_equal(rd32(b + 12), 0x20000); /* MAXH2CDATA */
	nvme_tcp_decode_ch(b, &h);
	nvme_tcp_decode_psh(b, &h);
	assert_int_equal(h.pdu_type, NVME_TCP_PDU_TYPE_ICRESP);
	assert_int_equal(h.hlen, 128);
	assert_int_equal(h.plen, 128);
	assert_int_equal(h.cpda, 7);
	assert_int_equal(h.dgst, 1);
	assert_int_equal(h.maxh2cdata, 0x20000);
}

static void test_capsule_cmd_resp(void **state)
{
	struct ust_nvme_cmd cmd;
	struct ust_nvme_cpl cpl;
	struct nvme_tcp_rx_hdr h;
	uint8_t b[128];

	memset(&cmd, 0, sizeof(cmd));
	cmd.cdw0 = 0x12340001; /* CID 0x1234, opcode Write */
	cmd.nsid = 1;
	cmd.cdw10 = 0xdeadbeef;
	assert_int_equal(nvme_tcp_build_capsule_cmd(b, &cmd, NVME_TCP_CH_FLAGS_HDGSTF, 76, 76 + 512 + 4),
			 72);
	assert_int_equal(b[0], 0x04);
	assert_int_equal(b[1], NVME_TCP_CH_FLAGS_HDGSTF);
	assert_int_equal(b[2], 72);
	assert_int_equal(b[3], 76);
	assert_int_equal(rd32(b + 4), 592);
	/* The SQE follows the CH unchanged: opcode at 8, CID at 10, CDW10 at 48. */
	assert_int_equal(b[8], 0x01);
	assert_int_equal(rd16(b + 10), 0x1234);
	assert_int_equal(rd32(b + 8 + 40), 0xdeadbeef);

	memset(&cpl, 0, sizeof(cpl));
	cpl.cdw0 = 0x55;
	cpl.cid = 0x1234;
	cpl.status = ust_nvme_status(UST_NVME_SCT_GENERIC, UST_NVME_SC_INVALID_FIELD, 1);
	assert_int_equal(nvme_tcp_build_capsule_resp(b, &cpl, 0, 24), 24);
	assert_int_equal(b[0], 0x05);
	assert_int_equal(b[2], 24);
	assert_int_equal(rd32(b + 4), 24);
	assert_int_equal(rd16(b + 8 + 12), 0x1234); /* CQE CID at byte 12 of the CQE */
	nvme_tcp_decode_ch(b, &h);
	nvme_tcp_decode_psh(b, &h);
	assert_int_equal(h.cpl.cid, 0x1234);
	assert_int_equal(h.cpl.cdw0, 0x55);
	assert_int_equal(ust_nvme_cpl_sc(&h.cpl), UST_NVME_SC_INVALID_FIELD);
	assert_int_equal(ust_nvme_cpl_dnr(&h.cpl), 1);
}

static void test_data_pdus_and_r2t(void **state)
{
	struct nvme_tcp_rx_hdr h;
	uint8_t b[64];

	assert_int_equal(nvme_tcp_build_h2c_data(b, 0x0102, 0x0304, 0x11223344, 4096,
						 NVME_TCP_H2C_DATA_FLAGS_LAST_PDU, 24, 24 + 4096),
			 24);
	assert_int_equal(b[0], 0x06);
	assert_int_equal(b[1], 0x04);
	assert_int_equal(b[2], 24);
	assert_int_equal(b[3], 24);
	assert_int_equal(rd32(b + 4), 4120);
	assert_int_equal(rd16(b + 8), 0x0102);      /* CCCID */
	assert_int_equal(rd16(b + 10), 0x0304);     /* TTAG */
	assert_int_equal(rd32(b + 12), 0x11223344); /* DATAO */
	assert_int_equal(rd32(b + 16), 4096);       /* DATAL */
	assert_int_equal(rd32(b + 20), 0);

	assert_int_equal(nvme_tcp_build_c2h_data(b, 7, 8192, 100, 0x0c, 28, 28 + 100 + 4), 24);
	assert_int_equal(b[0], 0x07);
	assert_int_equal(b[1], 0x0c);
	nvme_tcp_decode_ch(b, &h);
	nvme_tcp_decode_psh(b, &h);
	assert_int_equal(h.pdo, 28);
	assert_int_equal(h.plen, 132);
	assert_int_equal(h.cccid, 7);
	assert_int_equal(h.offset, 8192);
	assert_int_equal(h.length, 100);

	assert_int_equal(nvme_tcp_build_r2t(b, 9, 0xabcd, 4096, 65536, 0, 24), 24);
	assert_int_equal(b[0], 0x09);
	assert_int_equal(b[3], 0);
	nvme_tcp_decode_ch(b, &h);
	nvme_tcp_decode_psh(b, &h);
	assert_int_equal(h.cccid, 9);
	assert_int_equal(h.ttag, 0xabcd);
	assert_int_equal(h.offset, 4096);
	assert_int_equal(h.length, 65536);
}

static void test_term_req(void **state)
{
	struct nvme_tcp_rx_hdr h;
	uint8_t b[24];

	assert_int_equal(nvme_tcp_build_term_req(b, NVME_TCP_PDU_TYPE_C2H_TERM_REQ,
						 NVME_TCP_FES_HDR_DIGEST_ERR, 0x01020304, 24),
			 24);
	assert_int_equal(b[0], 0x03);
	assert_int_equal(b[2], 24);
	assert_int_equal(rd16(b + 8), 3);
	/* FEI sits unaligned at byte 10. */
	assert_int_equal(rd32(b + 10), 0x01020304);
	nvme_tcp_decode_ch(b, &h);
	nvme_tcp_decode_psh(b, &h);
	assert_int_equal(h.fes, 3);
	assert_int_equal(h.fei, 0x01020304);
	assert_string_equal(nvme_tcp_fes_str(h.fes), "header digest error");
}

static void test_hlen_table(void **state)
{
	assert_int_equal(nvme_tcp_pdu_hlen(NVME_TCP_PDU_TYPE_ICREQ), 128);
	assert_int_equal(nvme_tcp_pdu_hlen(NVME_TCP_PDU_TYPE_ICRESP), 128);
	assert_int_equal(nvme_tcp_pdu_hlen(NVME_TCP_PDU_TYPE_H2C_TERM_REQ), 24);
	assert_int_equal(nvme_tcp_pdu_hlen(NVME_TCP_PDU_TYPE_C2H_TERM_REQ), 24);
	assert_int_equal(nvme_tcp_pdu_hlen(NVME_TCP_PDU_TYPE_CAPSULE_CMD), 72);
	assert_int_equal(nvme_tcp_pdu_hlen(NVME_TCP_PDU_TYPE_CAPSULE_RESP), 24);
	assert_int_equal(nvme_tcp_pdu_hlen(NVME_TCP_PDU_TYPE_H2C_DATA), 24);
	assert_int_equal(nvme_tcp_pdu_hlen(NVME_TCP_PDU_TYPE_C2H_DATA), 24);
	assert_int_equal(nvme_tcp_pdu_hlen(NVME_TCP_PDU_TYPE_R2T), 24);
	assert_int_equal(nvme_tcp_pdu_hlen(0x08), 0);
	assert_int_equal(nvme_tcp_pdu_hlen(0xff), 0);
	assert_int_equal(nvme_tcp_align(72, 4), 72);
	assert_int_equal(nvme_tcp_align(76, 128), 128);
	assert_int_equal(offsetof(struct nvme_tcp_term_req, fei), 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_vectors),
		cmocka_unit_test(test_crc32c_incremental_and_wire_order),
		cmocka_unit_test(test_icreq_icresp),
		cmocka_unit_test(test_capsule_cmd_resp),
		cmocka_unit_test(test_data_pdus_and_r2t),
		cmocka_unit_test(test_term_req),
		cmocka_unit_test(test_hlen_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
