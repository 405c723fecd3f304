/*
 * NVMe over Fabrics commands shared by the fabrics transports (TCP, later
 * RDMA): Connect and its 1024-byte data, Property Get/Set (which stand in
 * for register reads and writes on a fabrics controller), and reading the
 * Discovery Log Page (LID 70h).
 *
 * References: NVMe Base spec 2.0 section 6 (Fabrics Command Set: 6.3
 * Connect, 6.5 Property Get, 6.6 Property Set) and 5.16.1.23 (Discovery Log
 * Page); NVMe-oF 1.1 section 3.3 (the same commands) and 5.3 (discovery log).
 * All fields are little endian on the wire; the host is little endian (the
 * SQE/CQE structs of nvme_spec.h are used as they are by the whole driver).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"

#include "nvme_internal.h"

/* Fabrics commands use SGLs only: PSDT 01b (Base spec 2.0 6.1, Figure 540). */
#define FABRIC_FLAGS_PSDT_SGL (UST_NVME_PSDT_SGL_MPTR_CONTIG << 6)

void nvme_fabric_connect_cmd(struct ust_nvme_cmd *cmd, uint16_t qid, uint32_t entries,
			     uint8_t cattr, uint32_t kato_ms)
{
	struct ust_nvmf_connect_cmd c;

	memset(&c, 0, sizeof(c));
	c.opcode = UST_NVME_OPC_FABRICS;
	c.flags = FABRIC_FLAGS_PSDT_SGL;
	c.fctype = UST_NVMF_FCTYPE_CONNECT;
	c.recfmt = 0;
	c.qid = qid;
	/* SQSIZE is 0's based (NVMe-oF 1.1 3.3, Figure 20). */
	c.sqsize = (uint16_t)(entries - 1);
	c.cattr = cattr;
	/* KATO is only meaningful when connecting the admin queue. */
	c.kato = qid == 0 ? kato_ms : 0;
	memcpy(cmd, &c, sizeof(*cmd));
}

static int copy_nqn(char dst[256], const char *nqn)
{
	size_t len = nqn != NULL ? strlen(nqn) : 0;

	/* NQNs are at most 223 bytes, NUL terminated, in a 256-byte field. */
	if (len == 0 || len > UST_NVME_NQN_MAX_LEN)
		return -EINVAL;
	memset(dst, 0, 256);
	memcpy(dst, nqn, len);
	return 0;
}

int nvme_fabric_connect_data(struct ust_nvmf_connect_data *data, const uint8_t hostid[16],
			     uint16_t cntlid, const char *subnqn, const char *hostnqn)
{
	memset(data, 0, sizeof(*data));
	memcpy(data->hostid, hostid, sizeof(data->hostid));
	data->cntlid = cntlid;
	if (copy_nqn(data->subnqn, subnqn) != 0 || copy_nqn(data->hostnqn, hostnqn) != 0)
		return -EINVAL;
	return 0;
}

static int prop_cmd(struct ust_nvme_cmd *cmd, uint8_t fctype, uint32_t offset, uint32_t size,
		    uint64_t value)
{
	struct ust_nvmf_property_cmd p;

	if (size != 4 && size != 8)
		return -EINVAL;
	memset(&p, 0, sizeof(p));
	p.opcode = UST_NVME_OPC_FABRICS;
	p.flags = FABRIC_FLAGS_PSDT_SGL;
	p.fctype = fctype;
	p.attrib = size == 8 ? UST_NVMF_PROP_SIZE_8 : UST_NVMF_PROP_SIZE_4;
	p.ofst = offset;
	if (fctype == UST_NVMF_FCTYPE_PROPERTY_SET)
		p.value = size == 8 ? value : (uint32_t)value;
	memcpy(cmd, &p, sizeof(*cmd));
	return 0;
}

int nvme_fabric_prop_get_cmd(struct ust_nvme_cmd *cmd, uint32_t offset, uint32_t size)
{
	return prop_cmd(cmd, UST_NVMF_FCTYPE_PROPERTY_GET, offset, size, 0);
}

int nvme_fabric_prop_set_cmd(struct ust_nvme_cmd *cmd, uint32_t offset, uint32_t size,
			     uint64_t value)
{
	return prop_cmd(cmd, UST_NVMF_FCTYPE_PROPERTY_SET, offset, size, value);
}

uint64_t nvme_fabric_prop_get_value(const struct ust_nvme_cpl *cpl, uint32_t size)
{
	/* Base spec 2.0 6.5: the value is in DW0 (and DW1 for 8-byte properties). */
	if (size == 8)
		return (uint64_t)cpl->cdw0 | ((uint64_t)cpl->cdw1 << 32);
	return cpl->cdw0;
}

uint32_t nvme_fabric_cmd_xfer(const struct ust_nvme_cmd *cmd)
{
	uint8_t opc = ust_nvme_cmd_opc(cmd);

	/*
	 * Bits 1:0 of the opcode give the direction; for a Fabrics command the
	 * same bits of FCTYPE (byte 04, the low byte of NSID's position) do.
	 */
	if (opc == UST_NVME_OPC_FABRICS)
		return (cmd->nsid & 0xff) & 3;
	return opc & 3;
}

void nvme_fabric_default_hostnqn(char *buf, size_t len, const uint8_t id[16])
{
	snprintf(buf, len,
		 "nqn.2014-08.org.nvmexpress:uuid:%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7], id[8], id[9], id[10],
		 id[11], id[12], id[13], id[14], id[15]);
}

/* ---- discovery log ------------------------------------------------------------ */

#define DISC_HDR_SIZE sizeof(struct ust_nvmf_discovery_log_header)
#define DISC_ENTRY_SIZE sizeof(struct ust_nvmf_discovery_log_entry)
/* A sane bound: 1024 records is a 1 MiB log. */
#define DISC_MAX_RECORDS 1024u
/* Bytes per Get Log Page command. */
#define DISC_CHUNK (16u * 1024)
#define DISC_MAX_TRIES 5

int nvme_fabric_parse_discovery_log(const void *buf, size_t len, uint64_t *genctr,
				    uint64_t *numrec,
				    const struct ust_nvmf_discovery_log_entry **entries)
{
	const struct ust_nvmf_discovery_log_header *hdr = buf;

	if (len < DISC_HDR_SIZE)
		return -EPROTO;
	*genctr = hdr->genctr;
	*numrec = hdr->numrec;
	if (hdr->recfmt != 0)
		return -EPROTO;
	if (hdr->numrec > (len - DISC_HDR_SIZE) / DISC_ENTRY_SIZE)
		return -EPROTO;
	*entries = (const struct ust_nvmf_discovery_log_entry *)((const uint8_t *)buf +
								   DISC_HDR_SIZE);
	return 0;
}

static int read_log(nvme_fabric_exec_fn exec, void *ctx, uint8_t *buf, uint32_t len)
{
	struct ust_nvme_cmd cmd;
	struct ust_nvme_cpl cpl;
	uint32_t off, n;
	int rc;

	for (off = 0; off < len; off += n) {
		n = len - off < DISC_CHUNK ? len - off : DISC_CHUNK;
		/* NSID 0; RAE is not meaningful for this log. */
		nvme_cmd_get_log_page(&cmd, UST_NVME_LOG_DISCOVERY, 0, n / 4, off, false);
		rc = exec(ctx, &cmd, buf + off, n, &cpl);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int nvme_fabric_get_discovery_log(nvme_fabric_exec_fn exec, void *ctx,
				  struct ust_nvmf_discovery_log_entry **entries, uint32_t *count)
{
	const struct ust_nvmf_discovery_log_entry *parsed;
	uint64_t genctr, genctr2, numrec, numrec2;
	uint8_t *buf = NULL;
	uint32_t len;
	int rc, tries;

	*entries = NULL;
	*count = 0;
	for (tries = 0; tries < DISC_MAX_TRIES; tries++) {
		ust_dma_free(buf);
		buf = ust_dma_zmalloc(DISC_HDR_SIZE, 0);
		if (buf == NULL)
			return -ENOMEM;
		rc = read_log(exec, ctx, buf, DISC_HDR_SIZE);
		if (rc != 0)
			goto out;
		nvme_fabric_parse_discovery_log(buf, DISC_HDR_SIZE, &genctr, &numrec, &parsed);
		if (((const struct ust_nvmf_discovery_log_header *)buf)->recfmt != 0) {
			UST_ERRLOG("discovery log: unknown record format %u\n",
				   ((const struct ust_nvmf_discovery_log_header *)buf)->recfmt);
			rc = -EPROTO;
			goto out;
		}
		if (numrec > DISC_MAX_RECORDS) {
			UST_ERRLOG("discovery log: %llu records is more than %u\n",
				   (unsigned long long)numrec, DISC_MAX_RECORDS);
			rc = -EPROTO;
			goto out;
		}
		len = (uint32_t)(DISC_HDR_SIZE + numrec * DISC_ENTRY_SIZE);
		ust_dma_free(buf);
		buf = ust_dma_zmalloc(len, 0);
		if (buf == NULL)
			return -ENOMEM;
		rc = read_log(exec, ctx, buf, len);
		if (rc != 0)
			goto out;
		rc = nvme_fabric_parse_discovery_log(buf, len, &genctr2, &numrec2, &parsed);
		/*
		 * NVMe-oF 1.1 5.3: the log may change between the reads; GENCTR
		 * tells. Read it again until a whole copy is consistent.
		 */
		if (rc == 0 && genctr2 == genctr && numrec2 == numrec)
			break;
		if (rc != 0 && genctr2 == genctr) {
			UST_ERRLOG("discovery log: NUMREC %llu does not fit the %u bytes read\n",
				   (unsigned long long)numrec2, len);
			goto out;
		}
	}
	if (tries == DISC_MAX_TRIES) {
		UST_ERRLOG("discovery log kept changing while being read\n");
		rc = -EAGAIN;
		goto out;
	}
	if (numrec > 0) {
		*entries = malloc(numrec * DISC_ENTRY_SIZE);
		if (*entries == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(*entries, parsed, numrec * DISC_ENTRY_SIZE);
	}
	*count = (uint32_t)numrec;
	rc = 0;
out:
	ust_dma_free(buf);
	return rc;
}
