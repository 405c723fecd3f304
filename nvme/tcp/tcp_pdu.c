/*
 * NVMe/TCP PDU encoding and decoding, and the CRC32C digests.
 *
 * Every multi-byte field of a PDU is little endian (TCP 3.6.2); this file is
 * the one place that converts them. Digests (TCP 3.6.1.2 / 3.3.3): HDGST is
 * CRC32C over the HLEN bytes of the header, DDGST is CRC32C over the PDU
 * data (not the padding). CRC32C here is the iSCSI one (RFC 3720 B.4):
 * register initialised to all ones, the result complemented, and the 32-bit
 * value sent least significant byte first.
 */
#include <endian.h>
#include <string.h>

#include <isa-l/crc.h>

#include "tcp_internal.h"

/*
 * ISA-L's crc32_iscsi(buf, len, init) runs the reflected CRC32C register
 * from init and returns the register as is: the caller does the initial
 * all-ones and the final inversion.
 */
uint32_t nvme_tcp_crc32c_update(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	/* crc32_iscsi takes an int length. */
	while (len > 0) {
		int n = len > (1u << 30) ? (1 << 30) : (int)len;

		crc = crc32_iscsi((unsigned char *)p, n, crc);
		p += n;
		len -= (size_t)n;
	}
	return crc;
}

uint32_t nvme_tcp_crc32c_final(uint32_t crc)
{
	return crc ^ 0xffffffffu;
}

uint32_t nvme_tcp_crc32c(const void *buf, size_t len)
{
	return nvme_tcp_crc32c_final(nvme_tcp_crc32c_update(NVME_TCP_CRC32C_INIT, buf, len));
}

void nvme_tcp_put_digest(uint8_t *dst, uint32_t crc)
{
	uint32_t le = htole32(crc);

	memcpy(dst, &le, sizeof(le));
}

uint32_t nvme_tcp_get_digest(const uint8_t *src)
{
	uint32_t le;

	memcpy(&le, src, sizeof(le));
	return le32toh(le);
}

const char *nvme_tcp_pdu_type_str(uint8_t pdu_type)
{
	switch (pdu_type) {
	case NVME_TCP_PDU_TYPE_ICREQ: return "ICReq";
	case NVME_TCP_PDU_TYPE_ICRESP: return "ICResp";
	case NVME_TCP_PDU_TYPE_H2C_TERM_REQ: return "H2CTermReq";
	case NVME_TCP_PDU_TYPE_C2H_TERM_REQ: return "C2HTermReq";
	case NVME_TCP_PDU_TYPE_CAPSULE_CMD: return "CapsuleCmd";
	case NVME_TCP_PDU_TYPE_CAPSULE_RESP: return "CapsuleResp";
	case NVME_TCP_PDU_TYPE_H2C_DATA: return "H2CData";
	case NVME_TCP_PDU_TYPE_C2H_DATA: return "C2HData";
	case NVME_TCP_PDU_TYPE_R2T: return "R2T";
	default: return "unknown";
	}
}

const char *nvme_tcp_fes_str(uint16_t fes)
{
	switch (fes) {
	case NVME_TCP_FES_INVALID_PDU_HDR: return "invalid PDU header field";
	case NVME_TCP_FES_PDU_SEQ_ERR: return "PDU sequence error";
	case NVME_TCP_FES_HDR_DIGEST_ERR: return "header digest error";
	case NVME_TCP_FES_DATA_OUT_OF_RANGE: return "data transfer out of range";
	case NVME_TCP_FES_DATA_LIMIT_EXCEEDED: return "data transfer limit exceeded";
	case NVME_TCP_FES_UNSUPPORTED_PARAM: return "unsupported parameter";
	default: return "unknown fatal error";
	}
}

uint8_t nvme_tcp_pdu_hlen(uint8_t pdu_type)
{
	switch (pdu_type) {
	case NVME_TCP_PDU_TYPE_ICREQ: return sizeof(struct nvme_tcp_icreq);
	case NVME_TCP_PDU_TYPE_ICRESP: return sizeof(struct nvme_tcp_icresp);
	case NVME_TCP_PDU_TYPE_H2C_TERM_REQ:
	case NVME_TCP_PDU_TYPE_C2H_TERM_REQ: return sizeof(struct nvme_tcp_term_req);
	case NVME_TCP_PDU_TYPE_CAPSULE_CMD: return sizeof(struct nvme_tcp_capsule_cmd);
	case NVME_TCP_PDU_TYPE_CAPSULE_RESP: return sizeof(struct nvme_tcp_capsule_resp);
	case NVME_TCP_PDU_TYPE_H2C_DATA: return sizeof(struct nvme_tcp_h2c_data);
	case NVME_TCP_PDU_TYPE_C2H_DATA: return sizeof(struct nvme_tcp_c2h_data);
	case NVME_TCP_PDU_TYPE_R2T: return sizeof(struct nvme_tcp_r2t);
	default: return 0;
	}
}

/* ---- decode ----------------------------------------------------------------------- */

void nvme_tcp_decode_ch(const uint8_t *buf, struct nvme_tcp_rx_hdr *hdr)
{
	struct nvme_tcp_ch ch;

	memcpy(&ch, buf, sizeof(ch));
	memset(hdr, 0, sizeof(*hdr));
	hdr->pdu_type = ch.pdu_type;
	hdr->flags = ch.flags;
	hdr->hlen = ch.hlen;
	hdr->pdo = ch.pdo;
	hdr->plen = le32toh(ch.plen);
}

void nvme_tcp_decode_psh(const uint8_t *buf, struct nvme_tcp_rx_hdr *hdr)
{
	switch (hdr->pdu_type) {
	case NVME_TCP_PDU_TYPE_ICRESP: {
		struct nvme_tcp_icresp p;

		memcpy(&p, buf, sizeof(p));
		hdr->pfv = le16toh(p.pfv);
		hdr->cpda = p.cpda;
		hdr->dgst = p.dgst;
		hdr->maxh2cdata = le32toh(p.maxh2cdata);
		break;
	}
	case NVME_TCP_PDU_TYPE_C2H_TERM_REQ:
	case NVME_TCP_PDU_TYPE_H2C_TERM_REQ: {
		struct nvme_tcp_term_req p;

		memcpy(&p, buf, sizeof(p));
		hdr->fes = le16toh(p.fes);
		hdr->fei = le32toh(p.fei);
		break;
	}
	case NVME_TCP_PDU_TYPE_CAPSULE_RESP: {
		struct nvme_tcp_capsule_resp p;

		memcpy(&p, buf, sizeof(p));
		hdr->cpl = p.rccqe;
		break;
	}
	case NVME_TCP_PDU_TYPE_C2H_DATA: {
		struct nvme_tcp_c2h_data p;

		memcpy(&p, buf, sizeof(p));
		hdr->cccid = le16toh(p.cccid);
		hdr->offset = le32toh(p.datao);
		hdr->length = le32toh(p.datal);
		break;
	}
	case NVME_TCP_PDU_TYPE_R2T: {
		struct nvme_tcp_r2t p;

		memcpy(&p, buf, sizeof(p));
		hdr->cccid = le16toh(p.cccid);
		hdr->ttag = le16toh(p.ttag);
		hdr->offset = le32toh(p.r2to);
		hdr->length = le32toh(p.r2tl);
		break;
	}
	case NVME_TCP_PDU_TYPE_H2C_DATA: {
		struct nvme_tcp_h2c_data p;

		memcpy(&p, buf, sizeof(p));
		hdr->cccid = le16toh(p.cccid);
		hdr->ttag = le16toh(p.ttag);
		hdr->offset = le32toh(p.datao);
		hdr->length = le32toh(p.datal);
		break;
	}
	default:
		break;
	}
}

/* ---- encode ----------------------------------------------------------------------- */

static void put_ch(struct nvme_tcp_ch *ch, uint8_t type, uint8_t flags, uint8_t pdo,
		   uint32_t plen)
{
	ch->pdu_type = type;
	ch->flags = flags;
	ch->hlen = nvme_tcp_pdu_hlen(type);
	ch->pdo = pdo;
	ch->plen = htole32(plen);
}

uint32_t nvme_tcp_build_icreq(uint8_t *buf, uint8_t hpda, uint8_t dgst, uint32_t maxr2t)
{
	struct nvme_tcp_icreq p;

	memset(&p, 0, sizeof(p));
	/* TCP 3.6.2.2: HLEN = PLEN = 128, no digests, PDO 0. */
	put_ch(&p.ch, NVME_TCP_PDU_TYPE_ICREQ, 0, 0, sizeof(p));
	p.pfv = htole16(NVME_TCP_PFV_1_0);
	p.hpda = hpda;
	p.dgst = dgst;
	p.maxr2t = htole32(maxr2t);
	memcpy(buf, &p, sizeof(p));
	return sizeof(p);
}

uint32_t nvme_tcp_build_icresp(uint8_t *buf, uint8_t cpda, uint8_t dgst, uint32_t maxh2cdata)
{
	struct nvme_tcp_icresp p;

	memset(&p, 0, sizeof(p));
	put_ch(&p.ch, NVME_TCP_PDU_TYPE_ICRESP, 0, 0, sizeof(p));
	p.pfv = htole16(NVME_TCP_PFV_1_0);
	p.cpda = cpda;
	p.dgst = dgst;
	p.maxh2cdata = htole32(maxh2cdata);
	memcpy(buf, &p, sizeof(p));
	return sizeof(p);
}

uint32_t nvme_tcp_build_capsule_cmd(uint8_t *buf, const struct ust_nvme_cmd *cmd, uint8_t flags,
				    uint8_t pdo, uint32_t plen)
{
	struct nvme_tcp_capsule_cmd p;

	put_ch(&p.ch, NVME_TCP_PDU_TYPE_CAPSULE_CMD, flags, pdo, plen);
	p.ccsqe = *cmd;
	memcpy(buf, &p, sizeof(p));
	return sizeof(p);
}

uint32_t nvme_tcp_build_capsule_resp(uint8_t *buf, const struct ust_nvme_cpl *cpl, uint8_t flags,
				     uint32_t plen)
{
	struct nvme_tcp_capsule_resp p;

	put_ch(&p.ch, NVME_TCP_PDU_TYPE_CAPSULE_RESP, flags, 0, plen);
	p.rccqe = *cpl;
	memcpy(buf, &p, sizeof(p));
	return sizeof(p);
}

uint32_t nvme_tcp_build_h2c_data(uint8_t *buf, uint16_t cccid, uint16_t ttag, uint32_t datao,
				 uint32_t datal, uint8_t flags, uint8_t pdo, uint32_t plen)
{
	struct nvme_tcp_h2c_data p;

	memset(&p, 0, sizeof(p));
	put_ch(&p.ch, NVME_TCP_PDU_TYPE_H2C_DATA, flags, pdo, plen);
	p.cccid = htole16(cccid);
	p.ttag = htole16(ttag);
	p.datao = htole32(datao);
	p.datal = htole32(datal);
	memcpy(buf, &p, sizeof(p));
	return sizeof(p);
}

uint32_t nvme_tcp_build_c2h_data(uint8_t *buf, uint16_t cccid, uint32_t datao, uint32_t datal,
				 uint8_t flags, uint8_t pdo, uint32_t plen)
{
	struct nvme_tcp_c2h_data p;

	memset(&p, 0, sizeof(p));
	put_ch(&p.ch, NVME_TCP_PDU_TYPE_C2H_DATA, flags, pdo, plen);
	p.cccid = htole16(cccid);
	p.datao = htole32(datao);
	p.datal = htole32(datal);
	memcpy(buf, &p, sizeof(p));
	return sizeof(p);
}

uint32_t nvme_tcp_build_r2t(uint8_t *buf, uint16_t cccid, uint16_t ttag, uint32_t r2to,
			    uint32_t r2tl, uint8_t flags, uint32_t plen)
{
	struct nvme_tcp_r2t p;

	memset(&p, 0, sizeof(p));
	put_ch(&p.ch, NVME_TCP_PDU_TYPE_R2T, flags, 0, plen);
	p.cccid = htole16(cccid);
	p.ttag = htole16(ttag);
	p.r2to = htole32(r2to);
	p.r2tl = htole32(r2tl);
	memcpy(buf, &p, sizeof(p));
	return sizeof(p);
}

uint32_t nvme_tcp_build_term_req(uint8_t *buf, uint8_t pdu_type, uint16_t fes, uint32_t fei,
				 uint32_t plen)
{
	struct nvme_tcp_term_req p;

	memset(&p, 0, sizeof(p));
	put_ch(&p.ch, pdu_type, 0, 0, plen);
	p.fes = htole16(fes);
	p.fei = htole32(fei);
	memcpy(buf, &p, sizeof(p));
	return sizeof(p);
}
