/*
 * Unit tests for the NVMe over Fabrics commands (nvme/nvme_fabric.c): the
 * byte layout of Connect and its 1024-byte data, Property Get/Set, the data
 * direction of commands, and the Discovery Log: parsing (truncated logs,
 * NUMREC larger than the data, unknown record format) and retrieval over a
 * fake executor (chunked reads with offsets, a log that changes while read,
 * errors).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ustor/log.h"

#include "../../../nvme/nvme_internal.h"

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static void test_connect_cmd(void **state)
{
	struct ust_nvme_cmd cmd;
	uint8_t *b = (uint8_t *)&cmd;

	memset(&cmd, 0xee, sizeof(cmd));
	nvme_fabric_connect_cmd(&cmd, 0, 32, 0, 15000);
	assert_int_equal(b[0], 0x7f);      /* opcode Fabrics */
	assert_int_equal(b[1], 0x40);      /* PSDT 01b */
	assert_int_equal(b[4], 0x01);      /* FCTYPE Connect */
	for (int i = 5; i < 40; i++)
		assert_int_equal(b[i], 0);  /* reserved; SGL filled by the transport */
	assert_int_equal(rd16(b + 40), 0); /* RECFMT */
	assert_int_equal(rd16(b + 42), 0); /* QID */
	assert_int_equal(rd16(b + 44), 31); /* SQSIZE, 0's based */
	assert_int_equal(b[46], 0);        /* CATTR */
	assert_int_equal(rd32(b + 48), 15000); /* KATO */
	assert_int_equal(nvme_fabric_cmd_xfer(&cmd), 1); /* host to controller */

	nvme_fabric_connect_cmd(&cmd, 3, 128, UST_NVMF_CATTR_DISABLE_SQ_FLOW_CONTROL, 15000);
	assert_int_equal(rd16(b + 42), 3);
	assert_int_equal(rd16(b + 44), 127);
	assert_int_equal(b[46], 0x04);
	assert_int_equal(rd32(b + 48), 0); /* KATO only on the admin queue */
}

static void test_connect_data(void **state)
{
	struct ust_nvmf_connect_data d;
	uint8_t hostid[16], *b = (uint8_t *)&d;
	char longnqn[300];

	for (int i = 0; i < 16; i++)
		hostid[i] = (uint8_t)(0xa0 + i);
	assert_int_equal(nvme_fabric_connect_data(&d, hostid, 0xffff, "nqn.2024-01.io.ustor:sub",
						  "nqn.2024-01.io.ustor:host"),
			 0);
	assert_memory_equal(b, hostid, 16);
	assert_int_equal(rd16(b + 16), 0xffff);
	assert_string_equal((char *)b + 256, "nqn.2024-01.io.ustor:sub");
	assert_string_equal((char *)b + 512, "nqn.2024-01.io.ustor:host");
	for (int i = 18; i < 256; i++)
		assert_int_equal(b[i], 0);
	for (int i = 768; i < 1024; i++)
		assert_int_equal(b[i], 0);

	memset(longnqn, 'a', sizeof(longnqn));
	longnqn[224] = '\0'; /* 224 bytes: one more than an NQN may have */
	assert_int_equal(nvme_fabric_connect_data(&d, hostid, 1, longnqn, "nqn.h"), -EINVAL);
	longnqn[223] = '\0';
	assert_int_equal(nvme_fabric_connect_data(&d, hostid, 1, longnqn, "nqn.h"), 0);
	assert_int_equal(nvme_fabric_connect_data(&d, hostid, 1, "", "nqn.h"), -EINVAL);
	assert_int_equal(nvme_fabric_connect_data(&d, hostid, 1, "nqn.s", NULL), -EINVAL);
}

static void test_property_cmds(void **state)
{
	struct ust_nvme_cmd cmd;
	struct ust_nvme_cpl cpl;
	uint8_t *b = (uint8_t *)&cmd;

	assert_int_equal(nvme_fabric_prop_get_cmd(&cmd, UST_NVME_REG_CAP, 8), 0);
	assert_int_equal(b[0], 0x7f);
	assert_int_equal(b[1], 0x40);
	assert_int_equal(b[4], 0x04); /* Property Get */
	assert_int_equal(b[40], 1);   /* ATTRIB: 8 bytes */
	assert_int_equal(rd32(b + 44), 0); /* OFST */
	assert_int_equal(nvme_fabric_cmd_xfer(&cmd), 0);

	assert_int_equal(nvme_fabric_prop_set_cmd(&cmd, UST_NVME_REG_CC, 4, 0x1234460001ULL), 0);
	assert_int_equal(b[4], 0x00); /* Property Set */
	assert_int_equal(b[40], 0);   /* 4 bytes */
	assert_int_equal(rd32(b + 44), 0x14);
	assert_int_equal(rd32(b + 48), 0x34460001); /* VALUE, truncated to 4 bytes */
	assert_int_equal(rd32(b + 52), 0);

	assert_int_equal(nvme_fabric_prop_get_cmd(&cmd, 0, 2), -EINVAL);
	assert_int_equal(nvme_fabric_prop_set_cmd(&cmd, 0, 16, 0), -EINVAL);

	memset(&cpl, 0, sizeof(cpl));
	cpl.cdw0 = 0x0030ffff;
	cpl.cdw1 = 0x00000020;
	assert_int_equal(nvme_fabric_prop_get_value(&cpl, 8), 0x000000200030ffffULL);
	assert_int_equal(nvme_fabric_prop_get_value(&cpl, 4), 0x0030ffff);
}

static void test_cmd_xfer(void **state)
{
	struct ust_nvme_cmd cmd;

	memset(&cmd, 0, sizeof(cmd));
	nvme_cmd_rw(&cmd, UST_NVME_OPC_WRITE, 1, 0, 1, 0);
	assert_int_equal(nvme_fabric_cmd_xfer(&cmd), 1);
	nvme_cmd_rw(&cmd, UST_NVME_OPC_READ, 1, 0, 1, 0);
	assert_int_equal(nvme_fabric_cmd_xfer(&cmd), 2);
	nvme_cmd_identify(&cmd, UST_NVME_CNS_CONTROLLER, 0, 0);
	assert_int_equal(nvme_fabric_cmd_xfer(&cmd), 2);
	nvme_cmd_keep_alive(&cmd);
	assert_int_equal(nvme_fabric_cmd_xfer(&cmd), 0);
}

/* ---- discovery log -------------------------------------------------------------------- */

#define HDR 1024u
#define ENT 1024u

static uint8_t *make_log(uint64_t genctr, uint64_t numrec, uint32_t entries, size_t *len)
{
	uint8_t *log = calloc(1, HDR + ENT * entries);
	struct ust_nvmf_discovery_log_header *h = (void *)log;
	struct ust_nvmf_discovery_log_entry *e = (void *)(log + HDR);

	h->genctr = genctr;
	h->numrec = numrec;
	for (uint32_t i = 0; i < entries; i++) {
		e[i].trtype = UST_NVME_TRANSPORT_TCP;
		e[i].adrfam = UST_NVME_ADRFAM_IPV4;
		e[i].subtype = UST_NVMF_SUBTYPE_NVME;
		e[i].portid = (uint16_t)i;
		snprintf(e[i].trsvcid, sizeof(e[i].trsvcid), "%u", 4420 + i);
		snprintf(e[i].traddr, sizeof(e[i].traddr), "10.0.0.%u", i);
		snprintf(e[i].subnqn, sizeof(e[i].subnqn), "nqn.2024-01.io.ustor:s%u", i);
	}
	*len = HDR + ENT * entries;
	return log;
}

static void test_parse_discovery_log(void **state)
{
	const struct ust_nvmf_discovery_log_entry *e;
	uint64_t genctr, numrec;
	size_t len;
	uint8_t *log = make_log(7, 2, 2, &len);

	assert_int_equal(nvme_fabric_parse_discovery_log(log, len, &genctr, &numrec, &e), 0);
	assert_int_equal(genctr, 7);
	assert_int_equal(numrec, 2);
	assert_int_equal(e[1].portid, 1);
	assert_string_equal(e[1].traddr, "10.0.0.1");
	assert_string_equal(e[0].trsvcid, "4420");
	/* Field offsets of an entry. */
	assert_int_equal(offsetof(struct ust_nvmf_discovery_log_entry, trsvcid), 32);
	assert_int_equal(offsetof(struct ust_nvmf_discovery_log_entry, subnqn), 256);
	assert_int_equal(offsetof(struct ust_nvmf_discovery_log_entry, traddr), 512);
	assert_int_equal(offsetof(struct ust_nvmf_discovery_log_entry, tsas), 768);

	/* Truncated: shorter than the header. */
	assert_int_equal(nvme_fabric_parse_discovery_log(log, 1023, &genctr, &numrec, &e), -EPROTO);
	/* NUMREC larger than the data: the caller learns NUMREC and that it is short. */
	assert_int_equal(nvme_fabric_parse_discovery_log(log, len - 1, &genctr, &numrec, &e),
			 -EPROTO);
	assert_int_equal(numrec, 2);
	((struct ust_nvmf_discovery_log_header *)log)->numrec = UINT64_MAX;
	assert_int_equal(nvme_fabric_parse_discovery_log(log, len, &genctr, &numrec, &e), -EPROTO);
	((struct ust_nvmf_discovery_log_header *)log)->numrec = 2;
	((struct ust_nvmf_discovery_log_header *)log)->recfmt = 1;
	assert_int_equal(nvme_fabric_parse_discovery_log(log, len, &genctr, &numrec, &e), -EPROTO);
	free(log);
}

/* A fake discovery controller: serves its log by Get Log Page (LID 70h, LPO, NUMD). */
struct fake_disc {
	uint8_t *log[2];
	size_t len[2];
	int version;     /* which log is served */
	int switch_after; /* commands after which the log changes (-1: never) */
	int cmds;
	int fail_at;     /* command number that fails (-1: none) */
	uint32_t max_len;
};

static int fake_exec(void *ctx, const struct ust_nvme_cmd *cmd, void *buf, uint32_t len,
		     struct ust_nvme_cpl *cpl)
{
	struct fake_disc *f = ctx;
	uint32_t numd = ((cmd->cdw10 >> 16) | (cmd->cdw11 << 16)) + 1;
	uint64_t off = cmd->cdw12 | ((uint64_t)cmd->cdw13 << 32);
	const uint8_t *log;
	size_t loglen;

	assert_int_equal(ust_nvme_cmd_opc(cmd), UST_NVME_OPC_GET_LOG_PAGE);
	assert_int_equal(cmd->cdw10 & 0xff, 0x70);
	assert_int_equal(cmd->nsid, 0);
	assert_int_equal(numd * 4, len);
	if (len > f->max_len)
		f->max_len = len;
	if (f->cmds == f->fail_at) {
		f->cmds++;
		nvme_cpl_set_status(cpl, UST_NVME_SCT_GENERIC, UST_NVME_SC_INVALID_FIELD, true);
		return -EIO;
	}
	if (f->switch_after >= 0 && f->cmds == f->switch_after)
		f->version = 1;
	f->cmds++;
	log = f->log[f->version];
	loglen = f->len[f->version];
	memset(buf, 0, len);
	if (off < loglen)
		memcpy(buf, log + off, loglen - off < len ? loglen - off : len);
	memset(cpl, 0, sizeof(*cpl));
	return 0;
}

static void test_get_discovery_log(void **state)
{
	struct ust_nvmf_discovery_log_entry *e;
	struct fake_disc f;
	uint32_t count;

	/* 20 records: 21 KiB, read in chunks at increasing offsets. */
	memset(&f, 0, sizeof(f));
	f.log[0] = make_log(1, 20, 20, &f.len[0]);
	f.switch_after = -1;
	f.fail_at = -1;
	assert_int_equal(nvme_fabric_get_discovery_log(fake_exec, &f, &e, &count), 0);
	assert_int_equal(count, 20);
	assert_string_equal(e[19].subnqn, "nqn.2024-01.io.ustor:s19");
	assert_int_equal(e[19].portid, 19);
	assert_int_equal(f.cmds, 1 + 2); /* header, then 16 KiB + 5 KiB */
	assert_int_equal(f.max_len, 16384);
	free(e);

	/* The log changes (GENCTR 1 -> 2, 20 -> 3 records) between the reads: read again. */
	memset(&f.cmds, 0, sizeof(f) - offsetof(struct fake_disc, cmds));
	f.version = 0;
	f.log[1] = make_log(2, 3, 3, &f.len[1]);
	f.switch_after = 1;
	f.fail_at = -1;
	assert_int_equal(nvme_fabric_get_discovery_log(fake_exec, &f, &e, &count), 0);
	assert_int_equal(count, 3);
	assert_string_equal(e[2].traddr, "10.0.0.2");
	free(e);

	/* Empty log. */
	free(f.log[1]);
	f.log[1] = make_log(3, 0, 0, &f.len[1]);
	f.version = 1;
	f.switch_after = -1;
	f.cmds = 0;
	assert_int_equal(nvme_fabric_get_discovery_log(fake_exec, &f, &e, &count), 0);
	assert_int_equal(count, 0);
	assert_null(e);

	/* An error status is passed on. */
	f.version = 0;
	f.cmds = 0;
	f.fail_at = 1;
	assert_int_equal(nvme_fabric_get_discovery_log(fake_exec, &f, &e, &count), -EIO);
	assert_null(e);
	assert_int_equal(count, 0);

	/* NUMREC absurdly large. */
	((struct ust_nvmf_discovery_log_header *)f.log[0])->numrec = 1u << 20;
	f.cmds = 0;
	f.fail_at = -1;
	assert_int_equal(nvme_fabric_get_discovery_log(fake_exec, &f, &e, &count), -EPROTO);
	free(f.log[0]);
	free(f.log[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_cmd),
		cmocka_unit_test(test_connect_data),
		cmocka_unit_test(test_property_cmds),
		cmocka_unit_test(test_cmd_xfer),
		cmocka_unit_test(test_parse_discovery_log),
		cmocka_unit_test(test_get_discovery_log),
	};

	ust_log_set_print_level(UST_LOG_DISABLED);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
