/*
 * Unit tests for one NVMe/TCP connection (nvme/tcp/tcp_conn.c) against a fake
 * target on the other end of a socketpair: ICReq/ICResp negotiation and its
 * checks, CapsuleCmd layout (SGL, PDO with CPDA, in-capsule data, digests),
 * the receive state machine fed whole, byte by byte and in random chunkings
 * (with and without header/data digests and padding), C2HData with the
 * SUCCESS flag, R2T/H2CData sequencing split by MAXH2CDATA, partial writes
 * on a small socket buffer, every malformed PDU rejected with its error
 * (the connection fails, nothing completes, nothing crashes), and valid
 * streams damaged at random (seeded) handled without a crash.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../../nvme/tcp/tcp_internal.h"

#define NSLOTS 8

struct fix {
	struct nvme_tcp_conn conn;
	int tfd;
	int ncpl;
	uint16_t cids[64];
	struct ust_nvme_cpl cpls[64];
	/* negotiated */
	bool hd, dd;
	uint32_t cpda_align;
};

static struct fix g;

static void on_complete(void *ctx, struct nvme_tcp_conn *conn, uint16_t cid,
			const struct ust_nvme_cpl *cpl)
{
	struct fix *f = ctx;

	assert_true(f->ncpl < 64);
	f->cids[f->ncpl] = cid;
	f->cpls[f->ncpl++] = *cpl;
}

static void read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = read(fd, p, len);
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* Read one PDU the host sent; returns its length. */
static uint32_t target_read_pdu(uint8_t *buf, uint32_t size)
{
	uint32_t plen;

	read_full(g.tfd, buf, 8);
	plen = rd32(buf + 4);
	assert_true(plen >= 8 && plen <= size);
	read_full(g.tfd, buf + 8, plen - 8);
	return plen;
}

static void start_conn(bool ask_hd, bool ask_dd, bool sq_flow_disabled, uint32_t max_icd)
{
	struct nvme_tcp_conn_params p;
	int sv[2];

	memset(&g, 0, sizeof(g));
	memset(&p, 0, sizeof(p));
	p.qid = 1;
	p.hdgst = ask_hd;
	p.ddgst = ask_dd;
	p.sq_flow_disabled = sq_flow_disabled;
	p.max_icd = max_icd;
	p.num_slots = NSLOTS;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(nvme_tcp_conn_init(&g.conn, &p, on_complete, &g), 0);
	nvme_tcp_conn_attach_fd(&g.conn, sv[0]);
	g.tfd = sv[1];
	assert_int_equal(nvme_tcp_conn_process(&g.conn, 0), 0);
	assert_int_equal(g.conn.state, NVME_TCP_CONN_IC_WAIT);
}

static void expect_icreq(bool hd, bool dd)
{
	uint8_t b[128];

	read_full(g.tfd, b, 128);
	assert_int_equal(b[0], NVME_TCP_PDU_TYPE_ICREQ);
	assert_int_equal(b[2], 128);
	assert_int_equal(rd32(b + 4), 128);
	assert_int_equal(rd16(b + 8), 0); /* PFV */
	assert_int_equal(b[10], 0);       /* HPDA */
	assert_int_equal(b[11], (hd ? 1 : 0) | (dd ? 2 : 0));
	assert_int_equal(rd32(b + 12), 0); /* MAXR2T */
}

static int feed(const uint8_t *b, uint32_t len)
{
	return nvme_tcp_conn_rx_feed(&g.conn, b, len);
}

static void setup_ready(bool hd, bool dd, uint8_t cpda, uint32_t maxh2c, bool sqflow_off,
			uint32_t max_icd)
{
	uint8_t b[128];

	start_conn(hd, dd, sqflow_off, max_icd);
	expect_icreq(hd, dd);
	nvme_tcp_build_icresp(b, cpda, (hd ? 1 : 0) | (dd ? 2 : 0), maxh2c);
	assert_int_equal(feed(b, 128), 128);
	assert_int_equal(g.conn.state, NVME_TCP_CONN_READY);
	assert_int_equal(g.conn.hdgst, hd);
	assert_int_equal(g.conn.ddgst, dd);
	assert_int_equal(g.conn.maxh2cdata, maxh2c);
	g.hd = hd;
	g.dd = dd;
	g.cpda_align = (cpda + 1u) * 4;
}

static void teardown_conn(void)
{
	nvme_tcp_conn_fini(&g.conn);
	close(g.tfd);
}

/* ---- building target PDUs ------------------------------------------------------------ */

static uint32_t mk_resp(uint8_t *b, uint16_t cid, uint16_t status)
{
	struct ust_nvme_cpl cpl;
	uint32_t hd = g.hd ? 4 : 0;

	memset(&cpl, 0, sizeof(cpl));
	cpl.cid = cid;
	cpl.status = status;
	nvme_tcp_build_capsule_resp(b, &cpl, g.hd ? NVME_TCP_CH_FLAGS_HDGSTF : 0, 24 + hd);
	if (hd)
		nvme_tcp_put_digest(b + 24, nvme_tcp_crc32c(b, 24));
	return 24 + hd;
}

static uint32_t mk_c2h(uint8_t *b, uint16_t cid, uint32_t datao, const uint8_t *data,
		       uint32_t len, uint8_t flags, uint32_t pad)
{
	uint32_t hd = g.hd ? 4 : 0, dd = g.dd ? 4 : 0;
	uint32_t pdo = 24 + hd + pad;

	memset(b, 0, pdo);
	flags |= (g.hd ? NVME_TCP_CH_FLAGS_HDGSTF : 0) | (g.dd ? NVME_TCP_CH_FLAGS_DDGSTF : 0);
	nvme_tcp_build_c2h_data(b, cid, datao, len, flags, (uint8_t)pdo, pdo + len + dd);
	if (hd)
		nvme_tcp_put_digest(b + 24, nvme_tcp_crc32c(b, 24));
	memcpy(b + pdo, data, len);
	if (dd)
		nvme_tcp_put_digest(b + pdo + len, nvme_tcp_crc32c(data, len));
	return pdo + len + dd;
}

static uint32_t mk_r2t(uint8_t *b, uint16_t cid, uint16_t ttag, uint32_t off, uint32_t len)
{
	uint32_t hd = g.hd ? 4 : 0;

	nvme_tcp_build_r2t(b, cid, ttag, off, len, g.hd ? NVME_TCP_CH_FLAGS_HDGSTF : 0, 24 + hd);
	if (hd)
		nvme_tcp_put_digest(b + 24, nvme_tcp_crc32c(b, 24));
	return 24 + hd;
}

static void mk_cmd(struct ust_nvme_cmd *cmd, uint8_t opc)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->cdw0 = opc;
	cmd->nsid = 1;
}

/* Check the capsule the host sent for slot cid; returns PDO (0: no in-capsule data). */
static uint32_t expect_capsule(uint8_t *b, uint32_t size, uint16_t cid, uint8_t sgl_id,
			       uint32_t len)
{
	uint32_t plen = target_read_pdu(b, size);
	uint32_t hd = g.hd ? 4 : 0;
	struct ust_nvme_cmd cmd;

	assert_int_equal(b[0], NVME_TCP_PDU_TYPE_CAPSULE_CMD);
	assert_int_equal(b[2], 72);
	assert_int_equal(!!(b[1] & NVME_TCP_CH_FLAGS_HDGSTF), g.hd);
	if (hd)
		assert_int_equal(nvme_tcp_get_digest(b + 72), nvme_tcp_crc32c(b, 72));
	memcpy(&cmd, b + 8, sizeof(cmd));
	assert_int_equal(ust_nvme_cmd_cid(&cmd), cid);
	assert_int_equal(ust_nvme_cmd_psdt(&cmd), UST_NVME_PSDT_SGL_MPTR_CONTIG);
	assert_int_equal(cmd.dptr.sgl1.sgl_identifier, sgl_id);
	assert_int_equal(cmd.dptr.sgl1.length, len);
	assert_int_equal(cmd.dptr.sgl1.address, 0);
	if (b[3] == 0)
		assert_int_equal(plen, 72 + hd);
	return b[3];
}

enum { FEED_WHOLE, FEED_BYTES, FEED_RANDOM };

static void feed_mode(const uint8_t *b, uint32_t len, int mode)
{
	uint32_t off = 0, n;

	while (off < len) {
		if (mode == FEED_WHOLE)
			n = len - off;
		else if (mode == FEED_BYTES)
			n = 1;
		else
			n = (uint32_t)(rand() % 300) + 1;
		if (n > len - off)
			n = len - off;
		assert_int_equal(feed(b + off, n), (int)n);
		off += n;
	}
}

/* ---- tests --------------------------------------------------------------------------- */

static void check_read(bool hd, bool dd, uint8_t cpda, uint32_t pad)
{
	static uint8_t stream[20000], want[8192], got[8192], cap[256];
	struct iovec iov[2] = {{got, 3000}, {got + 3000, 5192}};
	struct ust_nvme_cmd cmd;
	uint32_t len, i;
	int mode;

	setup_ready(hd, dd, cpda, 65536, false, 8192);
	for (i = 0; i < sizeof(want); i++)
		want[i] = (uint8_t)(i * 13 + 5);
	for (mode = FEED_WHOLE; mode <= FEED_RANDOM; mode++) {
		memset(got, 0, sizeof(got));
		g.ncpl = 0;
		mk_cmd(&cmd, UST_NVME_OPC_READ);
		assert_int_equal(nvme_tcp_conn_submit(&g.conn, 3, &cmd, NVME_TCP_XFER_C2H, iov, 2,
						      8192),
				 0);
		assert_int_equal(expect_capsule(cap, sizeof(cap), 3, 0x5a, 8192), 0);
		/* Two C2HData PDUs, then the CapsuleResp, as one byte stream. */
		len = mk_c2h(stream, 3, 0, want, 5000, 0, pad);
		len += mk_c2h(stream + len, 3, 5000, want + 5000, 3192,
			      NVME_TCP_C2H_DATA_FLAGS_LAST_PDU, pad);
		len += mk_resp(stream + len, 3, 0);
		feed_mode(stream, len, mode);
		assert_int_equal(g.ncpl, 1);
		assert_int_equal(g.cids[0], 3);
		assert_false(ust_nvme_cpl_is_error(&g.cpls[0]));
		assert_memory_equal(got, want, sizeof(want));
		assert_false(nvme_tcp_conn_slot_active(&g.conn, 3));
		assert_int_equal(g.conn.rstate, NVME_TCP_RECV_CH);
	}
	teardown_conn();
}

static void test_read_plain(void **state)
{
	check_read(false, false, 0, 0);
}

static void test_read_digests(void **state)
{
	check_read(true, false, 0, 0);
	check_read(false, true, 0, 0);
	check_read(true, true, 0, 0);
}

static void test_read_padding(void **state)
{
	/* A target may pad up to PDO; HPDA 0 asks for nothing, but it is legal. */
	check_read(true, true, 7, 4);
	check_read(false, false, 0, 36);
}

static void test_read_success_flag(void **state)
{
	uint8_t stream[5000], want[4096], got[4096], cap[256];
	struct iovec iov = {got, sizeof(got)};
	struct ust_nvme_cmd cmd;
	uint32_t len;

	setup_ready(true, true, 0, 65536, true, 0);
	memset(want, 0x5c, sizeof(want));
	mk_cmd(&cmd, UST_NVME_OPC_READ);
	assert_int_equal(nvme_tcp_conn_submit(&g.conn, 5, &cmd, NVME_TCP_XFER_C2H, &iov, 1, 4096), 0);
	expect_capsule(cap, sizeof(cap), 5, 0x5a, 4096);
	len = mk_c2h(stream, 5, 0, want, 4096,
		     NVME_TCP_C2H_DATA_FLAGS_LAST_PDU | NVME_TCP_C2H_DATA_FLAGS_SUCCESS, 0);
	feed_mode(stream, len, FEED_RANDOM);
	/* The SUCCESS flag completes the command without a CapsuleResp. */
	assert_int_equal(g.ncpl, 1);
	assert_int_equal(g.cids[0], 5);
	assert_int_equal(g.cpls[0].cid, 5);
	assert_int_equal(g.cpls[0].sqid, 1);
	assert_false(ust_nvme_cpl_is_error(&g.cpls[0]));
	assert_memory_equal(got, want, sizeof(want));
	teardown_conn();
}

static void check_incapsule_write(bool hd, bool dd, uint8_t cpda)
{
	uint8_t data[1000], pdu[2048];
	struct iovec iov[3] = {{data, 100}, {data + 100, 0}, {data + 100, 900}};
	struct ust_nvme_cmd cmd;
	uint32_t pdo, plen, i, dl = dd ? 4 : 0;

	setup_ready(hd, dd, cpda, 65536, false, 8192);
	for (i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i ^ 0x3c);
	mk_cmd(&cmd, UST_NVME_OPC_WRITE);
	assert_int_equal(nvme_tcp_conn_submit(&g.conn, 2, &cmd, NVME_TCP_XFER_H2C, iov, 3, 1000), 0);
	pdo = expect_capsule(pdu, sizeof(pdu), 2, 0x01, 1000);
	plen = rd32(pdu + 4);
	/* PDO: after header and digest, aligned to CPDA (TCP 3.6.2.6). */
	assert_int_equal(pdo, nvme_tcp_align(72 + (hd ? 4 : 0), (cpda + 1u) * 4));
	assert_int_equal(plen, pdo + 1000 + dl);
	assert_int_equal(!!(pdu[1] & NVME_TCP_CH_FLAGS_DDGSTF), dd);
	for (i = 72 + (hd ? 4 : 0); i < pdo; i++)
		assert_int_equal(pdu[i], 0);
	assert_memory_equal(pdu + pdo, data, 1000);
	if (dd)
		assert_int_equal(nvme_tcp_get_digest(pdu + pdo + 1000), nvme_tcp_crc32c(data, 1000));
	/* An R2T for a command whose data went in-capsule is a protocol error. */
	{
		uint8_t r[32];
		uint32_t n = mk_r2t(r, 2, 1, 0, 1000);

		assert_int_equal(feed(r, n), -EPROTO);
		assert_int_equal(g.conn.state, NVME_TCP_CONN_FAILED);
	}
	teardown_conn();
}

static void test_incapsule_write(void **state)
{
	check_incapsule_write(false, false, 0);
	check_incapsule_write(true, true, 0);
	check_incapsule_write(true, false, 3);
	check_incapsule_write(false, true, 31);
}

static void expect_h2c(uint8_t *pdu, uint32_t size, uint16_t cid, uint16_t ttag, uint32_t datao,
		       uint32_t datal, bool last, const uint8_t *src)
{
	uint32_t plen = target_read_pdu(pdu, size), pdo = pdu[3];
	uint32_t hd = g.hd ? 4 : 0, dd = g.dd ? 4 : 0;

	assert_int_equal(pdu[0], NVME_TCP_PDU_TYPE_H2C_DATA);
	assert_int_equal(pdu[2], 24);
	assert_int_equal(!!(pdu[1] & NVME_TCP_H2C_DATA_FLAGS_LAST_PDU), last);
	assert_int_equal(rd16(pdu + 8), cid);
	assert_int_equal(rd16(pdu + 10), ttag);
	assert_int_equal(rd32(pdu + 12), datao);
	assert_int_equal(rd32(pdu + 16), datal);
	assert_int_equal(pdo, nvme_tcp_align(24 + hd, g.cpda_align));
	assert_int_equal(plen, pdo + datal + dd);
	if (hd)
		assert_int_equal(nvme_tcp_get_digest(pdu + 24), nvme_tcp_crc32c(pdu, 24));
	assert_memory_equal(pdu + pdo, src + datao, datal);
	if (dd)
		assert_int_equal(nvme_tcp_get_digest(pdu + pdo + datal),
				 nvme_tcp_crc32c(src + datao, datal));
}

static void check_r2t_write(bool hd, bool dd, uint8_t cpda)
{
	static uint8_t data[10000], pdu[8192];
	struct iovec iov[2] = {{data, 4100}, {data + 4100, 5900}};
	struct ust_nvme_cmd cmd;
	uint8_t b[64];
	uint32_t n, i;

	/* max_icd 0: every write goes by R2T. */
	setup_ready(hd, dd, cpda, 4096, false, 0);
	for (i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 31 + 7);
	mk_cmd(&cmd, UST_NVME_OPC_WRITE);
	assert_int_equal(nvme_tcp_conn_submit(&g.conn, 6, &cmd, NVME_TCP_XFER_H2C, iov, 2, 10000), 0);
	assert_int_equal(expect_capsule(pdu, sizeof(pdu), 6, 0x5a, 10000), 0);

	/* First R2T: 6000 bytes, split at MAXH2CDATA 4096; LAST_PDU on the last one. */
	n = mk_r2t(b, 6, 0x77, 0, 6000);
	assert_int_equal(feed(b, n), (int)n);
	assert_int_equal(nvme_tcp_conn_flush(&g.conn), 0);
	expect_h2c(pdu, sizeof(pdu), 6, 0x77, 0, 4096, false, data);
	expect_h2c(pdu, sizeof(pdu), 6, 0x77, 4096, 1904, true, data);

	/* Second R2T: the rest, 4000 bytes in one PDU, a new TTAG. */
	n = mk_r2t(b, 6, 0x78, 6000, 4000);
	assert_int_equal(feed(b, n), (int)n);
	assert_int_equal(nvme_tcp_conn_flush(&g.conn), 0);
	expect_h2c(pdu, sizeof(pdu), 6, 0x78, 6000, 4000, true, data);

	n = mk_resp(b, 6, 0);
	assert_int_equal(feed(b, n), (int)n);
	assert_int_equal(g.ncpl, 1);
	assert_int_equal(g.cids[0], 6);
	teardown_conn();
}

static void test_r2t_h2c_data(void **state)
{
	check_r2t_write(false, false, 0);
	check_r2t_write(true, true, 0);
	check_r2t_write(true, true, 15);
}

static void test_r2t_sequencing_errors(void **state)
{
	static uint8_t data[10000], pdu[8192];
	struct iovec iov = {data, sizeof(data)};
	struct ust_nvme_cmd cmd;
	uint8_t b[64];
	uint32_t n;

	/* An R2T that does not start where the data sent so far ends. */
	setup_ready(false, false, 0, 4096, false, 0);
	mk_cmd(&cmd, UST_NVME_OPC_WRITE);
	assert_int_equal(nvme_tcp_conn_submit(&g.conn, 1, &cmd, NVME_TCP_XFER_H2C, &iov, 1, 10000), 0);
	expect_capsule(pdu, sizeof(pdu), 1, 0x5a, 10000);
	n = mk_r2t(b, 1, 1, 0, 4096);
	assert_int_equal(feed(b, n), (int)n);
	assert_int_equal(nvme_tcp_conn_flush(&g.conn), 0);
	expect_h2c(pdu, sizeof(pdu), 1, 1, 0, 4096, true, data);
	n = mk_r2t(b, 1, 2, 0, 4096);
	assert_int_equal(feed(b, n), -EPROTO);
	assert_int_equal(g.ncpl, 0);
	teardown_conn();

	/* A second R2T while the first is being served (MAXR2T 0). */
	setup_ready(false, false, 0, 4096, false, 0);
	assert_int_equal(nvme_tcp_conn_submit(&g.conn, 1, &cmd, NVME_TCP_XFER_H2C, &iov, 1, 10000), 0);
	n = mk_r2t(b, 1, 1, 0, 8192);
	assert_int_equal(feed(b, n), (int)n);
	n = mk_r2t(b, 1, 2, 8192, 1808);
	assert_int_equal(feed(b, n), -EPROTO);
	teardown_conn();

	/* Zero-length R2T. */
	setup_ready(false, false, 0, 4096, false, 0);
	assert_int_equal(nvme_tcp_conn_submit(&g.conn, 1, &cmd, NVME_TCP_XFER_H2C, &iov, 1, 10000), 0);
	n = mk_r2t(b, 1, 1, 0, 0);
	assert_int_equal(feed(b, n), -EPROTO);
	teardown_conn();
}

static void test_partial_writes(void **state)
{
	static uint8_t data[60000], pdu[70000];
	struct iovec iov[4] = {{data, 1}, {data + 1, 20000}, {data + 20001, 39998}, {data + 59999, 1}};
	struct ust_nvme_cmd cmd;
	int sz = 4096, rounds = 0;
	uint32_t got = 0, plen = 0, i;
	ssize_t r;

	setup_ready(true, true, 0, 65536, false, 65536);
	setsockopt(g.conn.fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	for (i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i % 251);
	mk_cmd(&cmd, UST_NVME_OPC_WRITE);
	assert_int_equal(nvme_tcp_conn_submit(&g.conn, 0, &cmd, NVME_TCP_XFER_H2C, iov, 4, 60000), 0);
	/* The socket takes only part of it; the rest goes as the target reads. */
	assert_false(TAILQ_EMPTY(&g.conn.send_queue));
	while (got < 8 || got < plen) {
		r = read(g.tfd, pdu + got, 1000);
		assert_true(r > 0);
		got += (uint32_t)r;
		if (got >= 8)
			plen = rd32(pdu + 4);
		assert_int_equal(nvme_tcp_conn_flush(&g.conn), 0);
		rounds++;
	}
	assert_true(rounds > 3);
	assert_int_equal(got, plen);
	assert_int_equal(plen, 76 + 60000 + 4);
	assert_memory_equal(pdu + 76, data, 60000);
	assert_int_equal(nvme_tcp_get_digest(pdu + 76 + 60000), nvme_tcp_crc32c(data, 60000));
	assert_true(TAILQ_EMPTY(&g.conn.send_queue));
	teardown_conn();
}

static void test_several_pdus_per_read_through_socket(void **state)
{
	uint8_t stream[4096], got[2][512], want[512], cap[256];
	struct iovec iov0 = {got[0], 512}, iov1 = {got[1], 512};
	struct ust_nvme_cmd cmd;
	uint32_t len = 0;

	setup_ready(true, false, 0, 65536, false, 8192);
	memset(want, 0xa7, sizeof(want));
	mk_cmd(&cmd, UST_NVME_OPC_READ);
	assert_int_equal(nvme_tcp_conn_submit(&g.conn, 0, &cmd, NVME_TCP_XFER_C2H, &iov0, 1, 512), 0);
	assert_int_equal(nvme_tcp_conn_submit(&g.conn, 1, &cmd, NVME_TCP_XFER_C2H, &iov1, 1, 512), 0);
	expect_capsule(cap, sizeof(cap), 0, 0x5a, 512);
	expect_capsule(cap, sizeof(cap), 1, 0x5a, 512);
	len += mk_c2h(stream + len, 1, 0, want, 512, NVME_TCP_C2H_DATA_FLAGS_LAST_PDU, 0);
	len += mk_c2h(stream + len, 0, 0, want, 512, NVME_TCP_C2H_DATA_FLAGS_LAST_PDU, 0);
	len += mk_resp(stream + len, 1, 0);
	len += mk_resp(stream + len, 0, ust_nvme_status(UST_NVME_SCT_MEDIA_ERROR, 0x81, 1));
	assert_int_equal(write(g.tfd, stream, len), (ssize_t)len);
	/* A completion budget of 1 leaves the rest for the next call. */
	assert_int_equal(nvme_tcp_conn_process(&g.conn, 1), 1);
	assert_int_equal(g.ncpl, 1);
	assert_int_equal(nvme_tcp_conn_process(&g.conn, 0), 1);
	assert_int_equal(g.ncpl, 2);
	assert_int_equal(g.cids[0], 1);
	assert_int_equal(g.cids[1], 0);
	assert_int_equal(ust_nvme_cpl_sct(&g.cpls[1]), UST_NVME_SCT_MEDIA_ERROR);
	assert_memory_equal(got[0], want, 512);
	assert_memory_equal(got[1], want, 512);
	/* The target closing the connection fails it. */
	close(g.tfd);
	g.tfd = -1;
	assert_int_equal(nvme_tcp_conn_process(&g.conn, 0), -ECONNRESET);
	assert_int_equal(g.conn.state, NVME_TCP_CONN_FAILED);
	assert_int_equal(nvme_tcp_conn_submit(&g.conn, 2, &cmd, NVME_TCP_XFER_C2H, &iov0, 1, 512),
			 -ECONNRESET);
	nvme_tcp_conn_fini(&g.conn);
}

/* ---- malformed PDUs -------------------------------------------------------------------- */

struct bad_case {
	const char *name;
	bool hd, dd, sqflow_off;
	int rc;
	uint32_t (*make)(uint8_t *b);
};

/* Outstanding while a case runs: slot 1 reads 4096 bytes, slot 2 writes 4096 by R2T. */
static uint8_t g_data[4096];

static uint32_t bad_unknown_type(uint8_t *b)
{
	uint32_t n = mk_resp(b, 1, 0);

	b[0] = 0x08;
	return n;
}

static uint32_t bad_hlen(uint8_t *b)
{
	uint32_t n = mk_resp(b, 1, 0);

	b[2] = 25;
	return n;
}

static uint32_t bad_resp_plen(uint8_t *b)
{
	uint32_t n = mk_resp(b, 1, 0);

	b[4] = 28;
	memset(b + n, 0, 4);
	return n + 4;
}

static uint32_t bad_resp_pdo(uint8_t *b)
{
	uint32_t n = mk_resp(b, 1, 0);

	b[3] = 24;
	return n;
}

static uint32_t bad_c2h_pdo(uint8_t *b)
{
	uint32_t n = mk_c2h(b, 1, 0, g_data, 100, 0, 0);

	b[3] = 16; /* data would start inside the header */
	return n;
}

static uint32_t bad_c2h_datal(uint8_t *b)
{
	uint32_t n = mk_c2h(b, 1, 0, g_data, 100, 0, 0);

	b[16] = 99;
	return n;
}

static uint32_t bad_c2h_unknown_cid(uint8_t *b)
{
	return mk_c2h(b, 5, 0, g_data, 100, 0, 0);
}

static uint32_t bad_c2h_cid_out_of_range(uint8_t *b)
{
	return mk_c2h(b, 0x4000, 0, g_data, 100, 0, 0);
}

static uint32_t bad_c2h_beyond_buffer(uint8_t *b)
{
	uint32_t n = mk_c2h(b, 1, 0, g_data, 4096, 0, 0);

	n += mk_c2h(b + n, 1, 4096, g_data, 8, 0, 0);
	return n;
}

static uint32_t bad_c2h_out_of_order(uint8_t *b)
{
	return mk_c2h(b, 1, 100, g_data, 100, 0, 0);
}

static uint32_t bad_c2h_for_write(uint8_t *b)
{
	return mk_c2h(b, 2, 0, g_data, 100, 0, 0);
}

static uint32_t bad_resp_unknown_cid(uint8_t *b)
{
	return mk_resp(b, 7, 0);
}

static uint32_t bad_r2t_for_read(uint8_t *b)
{
	return mk_r2t(b, 1, 1, 0, 4096);
}

static uint32_t bad_r2t_beyond(uint8_t *b)
{
	return mk_r2t(b, 2, 1, 0, 8192);
}

static uint32_t bad_hdgst(uint8_t *b)
{
	uint32_t n = mk_resp(b, 1, 0);

	b[24] ^= 1;
	return n;
}

static uint32_t bad_ddgst(uint8_t *b)
{
	uint32_t n = mk_c2h(b, 1, 0, g_data, 100, 0, 0);

	b[n - 1] ^= 0x80;
	return n;
}

static uint32_t bad_missing_hdgstf(uint8_t *b)
{
	uint32_t n = mk_resp(b, 1, 0);

	b[1] = 0;
	return n;
}

static uint32_t bad_missing_ddgstf(uint8_t *b)
{
	uint32_t n = mk_c2h(b, 1, 0, g_data, 100, 0, 0);

	b[1] &= (uint8_t)~NVME_TCP_CH_FLAGS_DDGSTF;
	return n;
}

static uint32_t bad_success_not_last(uint8_t *b)
{
	return mk_c2h(b, 1, 0, g_data, 4096, NVME_TCP_C2H_DATA_FLAGS_SUCCESS, 0);
}

static uint32_t bad_success_with_flow_control(uint8_t *b)
{
	return mk_c2h(b, 1, 0, g_data, 4096,
		      NVME_TCP_C2H_DATA_FLAGS_SUCCESS | NVME_TCP_C2H_DATA_FLAGS_LAST_PDU, 0);
}

static uint32_t bad_term_req(uint8_t *b)
{
	uint32_t n = nvme_tcp_build_term_req(b, NVME_TCP_PDU_TYPE_C2H_TERM_REQ,
					     NVME_TCP_FES_INVALID_PDU_HDR, 2, 24 + 8);

	memset(b + n, 0x11, 8);
	return n + 8;
}

static uint32_t bad_term_req_plen(uint8_t *b)
{
	return nvme_tcp_build_term_req(b, NVME_TCP_PDU_TYPE_C2H_TERM_REQ, 1, 0, 1000);
}

static uint32_t bad_icresp_again(uint8_t *b)
{
	return nvme_tcp_build_icresp(b, 0, 0, 65536);
}

static uint32_t bad_h2c_from_target(uint8_t *b)
{
	return nvme_tcp_build_h2c_data(b, 1, 0, 0, 4, 0, 24, 28);
}

static uint32_t bad_capsule_cmd_from_target(uint8_t *b)
{
	struct ust_nvme_cmd cmd;

	mk_cmd(&cmd, 1);
	return nvme_tcp_build_capsule_cmd(b, &cmd, 0, 0, 72);
}

static const struct bad_case g_bad[] = {
	{"unknown PDU type", false, false, false, -EPROTO, bad_unknown_type},
	{"wrong HLEN", false, false, false, -EPROTO, bad_hlen},
	{"CapsuleResp PLEN", false, false, false, -EPROTO, bad_resp_plen},
	{"CapsuleResp PDO", false, false, false, -EPROTO, bad_resp_pdo},
	{"C2HData PDO inside the header", false, false, false, -EPROTO, bad_c2h_pdo},
	{"C2HData DATAL vs PLEN", false, false, false, -EPROTO, bad_c2h_datal},
	{"C2HData unknown CID", false, false, false, -EPROTO, bad_c2h_unknown_cid},
	{"C2HData CID out of range", false, false, false, -EPROTO, bad_c2h_cid_out_of_range},
	{"C2HData beyond the buffer", false, false, false, -EPROTO, bad_c2h_beyond_buffer},
	{"C2HData out of order", false, false, false, -EPROTO, bad_c2h_out_of_order},
	{"C2HData for a write", false, false, false, -EPROTO, bad_c2h_for_write},
	{"CapsuleResp unknown CID", false, false, false, -EPROTO, bad_resp_unknown_cid},
	{"R2T for a read", false, false, false, -EPROTO, bad_r2t_for_read},
	{"R2T beyond the data", false, false, false, -EPROTO, bad_r2t_beyond},
	{"header digest mismatch", true, false, false, -EBADMSG, bad_hdgst},
	{"data digest mismatch", false, true, false, -EBADMSG, bad_ddgst},
	{"HDGSTF missing", true, false, false, -EPROTO, bad_missing_hdgstf},
	{"DDGSTF missing", false, true, false, -EPROTO, bad_missing_ddgstf},
	{"SUCCESS without LAST_PDU", false, false, true, -EPROTO, bad_success_not_last},
	{"SUCCESS with SQ flow control", false, false, false, -EPROTO, bad_success_with_flow_control},
	{"C2HTermReq", false, false, false, -ECONNRESET, bad_term_req},
	{"C2HTermReq PLEN", false, false, false, -EPROTO, bad_term_req_plen},
	{"ICResp when ready", false, false, false, -EPROTO, bad_icresp_again},
	{"H2CData from the target", false, false, false, -EPROTO, bad_h2c_from_target},
	{"CapsuleCmd from the target", false, false, false, -EPROTO, bad_capsule_cmd_from_target},
};

static void test_malformed_pdus(void **state)
{
	static uint8_t b[16384], rbuf[4096], cap[256];
	struct iovec riov = {rbuf, sizeof(rbuf)}, wiov = {g_data, sizeof(g_data)};
	struct ust_nvme_cmd rcmd, wcmd;
	size_t i;
	uint32_t n;
	int mode, rc;

	mk_cmd(&rcmd, UST_NVME_OPC_READ);
	mk_cmd(&wcmd, UST_NVME_OPC_WRITE);
	for (i = 0; i < sizeof(g_bad) / sizeof(g_bad[0]); i++) {
		for (mode = FEED_WHOLE; mode <= FEED_BYTES; mode++) {
			const struct bad_case *c = &g_bad[i];
			uint32_t off = 0;

			print_message("  %s (%s)\n", c->name, mode == FEED_WHOLE ? "whole" : "bytes");
			setup_ready(c->hd, c->dd, 0, 65536, c->sqflow_off, 0);
			assert_int_equal(nvme_tcp_conn_submit(&g.conn, 1, &rcmd, NVME_TCP_XFER_C2H,
							      &riov, 1, 4096),
					 0);
			assert_int_equal(nvme_tcp_conn_submit(&g.conn, 2, &wcmd, NVME_TCP_XFER_H2C,
							      &wiov, 1, 4096),
					 0);
			expect_capsule(cap, sizeof(cap), 1, 0x5a, 4096);
			expect_capsule(cap, sizeof(cap), 2, 0x5a, 4096);
			n = c->make(b);
			rc = 0;
			while (off < n && rc >= 0) {
				uint32_t k = mode == FEED_WHOLE ? n : 1;

				rc = feed(b + off, k);
				if (rc >= 0)
					off += (uint32_t)rc;
			}
			assert_int_equal(rc, c->rc);
			assert_int_equal(g.conn.state, NVME_TCP_CONN_FAILED);
			assert_int_equal(g.conn.error, c->rc);
			assert_int_equal(g.conn.fd, -1);
			assert_int_equal(g.ncpl, 0);
			/* Once failed, nothing more is taken and nothing is sent. */
			assert_int_equal(feed(b, n), c->rc);
			assert_int_equal(nvme_tcp_conn_process(&g.conn, 0), c->rc);
			teardown_conn();
		}
	}
}

static void check_bad_icresp(bool hd, uint8_t cpda, uint8_t dgst, uint32_t maxh2c, uint16_t pfv)
{
	uint8_t b[128];

	start_conn(hd, false, false, 0);
	expect_icreq(hd, false);
	nvme_tcp_build_icresp(b, cpda, dgst, maxh2c);
	b[8] = (uint8_t)pfv;
	assert_int_equal(feed(b, 128), -EPROTO);
	assert_int_equal(g.conn.state, NVME_TCP_CONN_FAILED);
	teardown_conn();
}

static void test_icresp_checks(void **state)
{
	uint8_t b[128];

	check_bad_icresp(false, 0, 0, 4095, 0);      /* MAXH2CDATA below 4096 */
	check_bad_icresp(false, 0, 0, 4098, 0);      /* not a multiple of 4 */
	check_bad_icresp(false, 0, 1, 65536, 0);     /* header digest not asked for */
	check_bad_icresp(true, 0, 2, 65536, 0);      /* data digest not asked for */
	check_bad_icresp(false, 32, 0, 65536, 0);    /* CPDA above 31 */
	check_bad_icresp(false, 0, 0, 65536, 1);     /* unknown PFV */

	/* A CapsuleResp before ICResp. */
	start_conn(false, false, false, 0);
	expect_icreq(false, false);
	assert_int_equal(feed(b, mk_resp(b, 0, 0)), -EPROTO);
	teardown_conn();

	/* The target may decline digests we asked for. */
	start_conn(true, true, false, 0);
	expect_icreq(true, true);
	nvme_tcp_build_icresp(b, 0, 0, 8192);
	assert_int_equal(feed(b, 128), 128);
	assert_int_equal(g.conn.state, NVME_TCP_CONN_READY);
	assert_false(g.conn.hdgst);
	assert_false(g.conn.ddgst);
	teardown_conn();
}

static void test_submit_checks(void **state)
{
	uint8_t buf[64], cap[256];
	struct iovec iov = {buf, sizeof(buf)};
	struct ust_nvme_cmd cmd;

	mk_cmd(&cmd, UST_NVME_OPC_READ);
	start_conn(false, false, false, 0);
	/* Not ready before ICResp. */
	assert_int_equal(nvme_tcp_conn_submit(&g.conn, 1, &cmd, NVME_TCP_XFER_C2H, &iov, 1, 64),
			 -ENOTCONN);
	teardown_conn();
	setup_ready(false, false, 0, 8192, false, 0);
	assert_int_equal(nvme_tcp_conn_submit(&g.conn, NSLOTS, &cmd, NVME_TCP_XFER_C2H, &iov, 1, 64),
			 -EINVAL);
	assert_int_equal(nvme_tcp_conn_submit(&g.conn, 1, &cmd, NVME_TCP_XFER_C2H, &iov, 1, 65),
			 -EINVAL);
	assert_int_equal(nvme_tcp_conn_submit(&g.conn, 1, &cmd, NVME_TCP_XFER_NONE, &iov, 1, 64),
			 -EINVAL);
	assert_int_equal(nvme_tcp_conn_submit(&g.conn, 1, &cmd, NVME_TCP_XFER_C2H, &iov, 1, 64), 0);
	assert_int_equal(nvme_tcp_conn_submit(&g.conn, 1, &cmd, NVME_TCP_XFER_C2H, &iov, 1, 64),
			 -EBUSY);
	/* A command with no data: Transport SGL with length 0. */
	mk_cmd(&cmd, 0x00);
	assert_int_equal(nvme_tcp_conn_submit(&g.conn, 4, &cmd, NVME_TCP_XFER_NONE, NULL, 0, 0), 0);
	expect_capsule(cap, sizeof(cap), 1, 0x5a, 64);
	expect_capsule(cap, sizeof(cap), 4, 0x5a, 0);
	teardown_conn();
}

/* ---- random damage ---------------------------------------------------------------------- */

/* Read whatever the host sent and the test did not: H2CData, capsules. */
static void drain_target(void)
{
	uint8_t b[4096];

	while (recv(g.tfd, b, sizeof(b), MSG_DONTWAIT) > 0) {
	}
}

static uint32_t fuzz_rand(uint32_t n)
{
	return n == 0 ? 0 : (uint32_t)rand() % n;
}

/* Damage stream[0, len) once: a byte changed, a field set to an edge, cut, repeated or grown. */
static uint32_t mutate_stream(uint8_t *stream, uint32_t len, uint32_t cap)
{
	static const uint8_t edges[] = {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff};
	uint32_t at = fuzz_rand(len), n;

	switch (fuzz_rand(6)) {
	case 0:
		stream[at] ^= (uint8_t)(1u << fuzz_rand(8));
		return len;
	case 1:
		stream[at] = edges[fuzz_rand(sizeof(edges))];
		return len;
	case 2: /* a 32-bit field (PLEN, DATAO, DATAL, R2T offset) at an edge */
		at &= ~3u;
		if (at + 4 <= len) {
			uint32_t v = fuzz_rand(2) ? 0xffffffffu - fuzz_rand(64) : fuzz_rand(9000);

			memcpy(stream + at, &v, 4);
		}
		return len;
	case 3:
		return at;
	case 4: /* a piece repeated */
		n = fuzz_rand(200) + 1;
		if (at + n > len)
			n = len - at;
		if (len + n > cap)
			return len;
		memmove(stream + at + n, stream + at, len - at);
		return len + n;
	default: /* random bytes inserted */
		n = fuzz_rand(40) + 1;
		if (len + n > cap)
			return len;
		memmove(stream + at + n, stream + at, len - at);
		for (uint32_t i = 0; i < n; i++)
			stream[at + i] = (uint8_t)rand();
		return len + n;
	}
}

/*
 * Valid target streams - a read answered by C2HData PDUs and a CapsuleResp,
 * a write answered by R2Ts and a CapsuleResp, with and without digests,
 * padding and in-capsule data - damaged one to four times at random and fed
 * in random pieces. Whatever the bytes, the host must not crash or write
 * outside the buffers it was given (ASan, heap buffers of the exact size):
 * either the connection fails with a negative errno (and stays failed,
 * its socket closed), or it goes on; every completion is for a command that
 * was submitted, once; and with header and data digests on, a read that
 * completes without error has exactly the data sent.
 */
static void test_mutated_streams(void **state)
{
	const char *env = getenv("USTOR_TCP_FUZZ_ITERS");
	int iters = env != NULL ? atoi(env) : 3000, it;
	static uint8_t stream[40000], want[8192], icr[128];
	unsigned seed = (unsigned)time(NULL);
	int failed = 0, both = 0, digested = 0;

	(void)state;
	if (getenv("USTOR_TCP_FUZZ_SEED") != NULL)
		seed = (unsigned)strtoul(getenv("USTOR_TCP_FUZZ_SEED"), NULL, 0);
	print_message("  seed %u (USTOR_TCP_FUZZ_SEED), %d streams\n", seed, iters);
	srand(seed);
	for (uint32_t i = 0; i < sizeof(want); i++)
		want[i] = (uint8_t)(i * 29 + 3);
	for (it = 0; it < iters; it++) {
		bool hd = fuzz_rand(2), dd = fuzz_rand(2), icd = fuzz_rand(2);
		uint8_t cpda = (uint8_t)fuzz_rand(4);
		uint32_t maxh2c = 4096u * (fuzz_rand(3) + 1), len = 0, rlen = 2000 + fuzz_rand(6193);
		uint32_t wlen = icd ? 1000 + fuzz_rand(3000) : 4000 + fuzz_rand(4193), off, n, k;
		uint8_t *rbuf = malloc(rlen), *wbuf = malloc(wlen);
		struct iovec riov = {rbuf, rlen}, wiov = {wbuf, wlen};
		struct ust_nvme_cmd rcmd, wcmd;
		bool done[NSLOTS] = {false};
		int rc = 0, i;

		assert_non_null(rbuf);
		assert_non_null(wbuf);
		memset(wbuf, 0x5c, wlen);
		if (fuzz_rand(10) == 0) {
			/* The ICResp itself damaged. */
			start_conn(hd, dd, false, icd ? 4096 : 0);
			expect_icreq(hd, dd);
			nvme_tcp_build_icresp(icr, cpda, (hd ? 1 : 0) | (dd ? 2 : 0), maxh2c);
			n = mutate_stream(icr, 128, 128);
			rc = feed(icr, n);
			assert_true(rc < 0 || g.conn.state == NVME_TCP_CONN_READY ||
				    g.conn.state == NVME_TCP_CONN_IC_WAIT);
			if (rc < 0) {
				assert_int_equal(g.conn.state, NVME_TCP_CONN_FAILED);
				assert_int_equal(g.conn.fd, -1);
			}
			teardown_conn();
			free(rbuf);
			free(wbuf);
			continue;
		}
		setup_ready(hd, dd, cpda, maxh2c, false, icd ? 4096 : 0);
		mk_cmd(&rcmd, UST_NVME_OPC_READ);
		mk_cmd(&wcmd, UST_NVME_OPC_WRITE);
		assert_int_equal(nvme_tcp_conn_submit(&g.conn, 1, &rcmd, NVME_TCP_XFER_C2H, &riov, 1,
						      rlen), 0);
		assert_int_equal(nvme_tcp_conn_submit(&g.conn, 2, &wcmd, NVME_TCP_XFER_H2C, &wiov, 1,
						      wlen), 0);
		assert_int_equal(nvme_tcp_conn_flush(&g.conn), 0);
		drain_target();
		/* The read's data in one to three C2HData PDUs, LAST_PDU on the last. */
		for (off = 0, k = fuzz_rand(3) + 1; off < rlen; k--) {
			n = k == 1 ? rlen - off : fuzz_rand(rlen - off) + 1;
			len += mk_c2h(stream + len, 1, off, want + off, n,
				      off + n == rlen ? NVME_TCP_C2H_DATA_FLAGS_LAST_PDU : 0,
				      fuzz_rand(2) ? 0 : fuzz_rand(8));
			off += n;
		}
		len += mk_resp(stream + len, 1, 0);
		if (!icd) {
			n = wlen > maxh2c * 2 ? maxh2c * 2 : wlen;
			len += mk_r2t(stream + len, 2, 0x10, 0, n);
			if (n < wlen)
				len += mk_r2t(stream + len, 2, 0x11, n, wlen - n);
		}
		len += mk_resp(stream + len, 2, 0);
		for (k = fuzz_rand(4) + 1; k > 0; k--)
			len = mutate_stream(stream, len, sizeof(stream));
		for (off = 0; off < len && rc >= 0; off += (uint32_t)rc) {
			n = fuzz_rand(3) == 0 ? len - off : fuzz_rand(300) + 1;
			rc = feed(stream + off, n > len - off ? len - off : n);
			if (rc >= 0 && nvme_tcp_conn_flush(&g.conn) < 0)
				rc = g.conn.error;
			drain_target();
		}
		if (rc < 0) {
			assert_int_equal(g.conn.state, NVME_TCP_CONN_FAILED);
			assert_int_equal(g.conn.error, rc);
			assert_int_equal(g.conn.fd, -1);
			assert_int_equal(feed(stream, len), rc);
			failed++;
		}
		both += g.ncpl == 2;
		for (i = 0; i < g.ncpl; i++) {
			assert_true(g.cids[i] == 1 || g.cids[i] == 2);
			assert_false(done[g.cids[i]]);
			done[g.cids[i]] = true;
			/* With both digests, damaged data or headers never pass as a good read. */
			if (hd && dd && g.cids[i] == 1 && !ust_nvme_cpl_is_error(&g.cpls[i])) {
				assert_memory_equal(rbuf, want, rlen);
				digested++;
			}
		}
		teardown_conn();
		free(rbuf);
		free(wbuf);
	}
	/* Both outcomes must occur, or the damage is too much or too little to tell anything. */
	print_message("  %d connections failed, %d completed both commands, %d good reads checked "
		      "against their digests\n", failed, both, digested);
	assert_true(failed > 0 && both > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_plain),
		cmocka_unit_test(test_read_digests),
		cmocka_unit_test(test_read_padding),
		cmocka_unit_test(test_read_success_flag),
		cmocka_unit_test(test_incapsule_write),
		cmocka_unit_test(test_r2t_h2c_data),
		cmocka_unit_test(test_r2t_sequencing_errors),
		cmocka_unit_test(test_partial_writes),
		cmocka_unit_test(test_several_pdus_per_read_through_socket),
		cmocka_unit_test(test_malformed_pdus),
		cmocka_unit_test(test_icresp_checks),
		cmocka_unit_test(test_submit_checks),
		cmocka_unit_test(test_mutated_streams),
	};

	srand(12345);
	/* Connection errors are logged; keep the test output readable. */
	ust_log_set_print_level(UST_LOG_DISABLED);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
