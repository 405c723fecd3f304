/*
 * One NVMe/TCP connection: a non-blocking TCP stream that carries one queue
 * pair (TCP 3.3: "each NVMe/TCP connection is bound to a single queue").
 *
 * Send side: a FIFO of PDUs written with sendmsg(iovec) as far as the socket
 * takes them; a PDU is a header block (header, header digest, padding to
 * PDO), a range of a command's data and a data digest. Partial writes resume
 * at the byte where the socket stopped.
 *
 * Receive side: bytes from recv() go through a state machine (common header,
 * rest of the header with its digest, padding, data, data digest) that keeps
 * its place between calls, so a PDU may arrive split across any number of
 * reads and one read may hold several PDUs. Every header field is checked
 * before it is used; any error fails the whole connection (TCP 3.5: a fatal
 * transport error terminates the connection) and the owner completes what
 * was outstanding.
 *
 * Data transfer (TCP 3.3.5 - 3.3.8):
 *  - host to controller: in-capsule when the data fits the queue's in-capsule
 *    limit, else the controller asks with R2T PDUs; each R2T (R2TO, R2TL) is
 *    answered with H2CData PDUs of at most MAXH2CDATA data bytes, the last
 *    one flagged LAST_PDU. We announce MAXR2T 0: one R2T per command at a time.
 *  - controller to host: C2HData PDUs, in order; the last may carry SUCCESS
 *    (only when SQ flow control is disabled), which stands for a successful
 *    CapsuleResp that will not be sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ustor/log.h"

#include "tcp_internal.h"

#define RX_BUF_SIZE (64 * 1024)
#define SEND_IOV_BATCH 64
#define MAX_READS_PER_POLL 16

/* ---- life cycle ------------------------------------------------------------------ */

static void reset_rx(struct nvme_tcp_conn *conn)
{
	conn->rstate = NVME_TCP_RECV_CH;
	conn->rx_have = 0;
	conn->rx_need = sizeof(struct nvme_tcp_ch);
	conn->rx_slot = NULL;
	conn->rx_buf_head = 0;
	conn->rx_buf_tail = 0;
}

int nvme_tcp_conn_init(struct nvme_tcp_conn *conn, const struct nvme_tcp_conn_params *params,
		       nvme_tcp_complete_fn complete, void *ctx)
{
	uint32_t i;

	memset(conn, 0, sizeof(*conn));
	conn->fd = -1;
	conn->state = NVME_TCP_CONN_IDLE;
	conn->params = *params;
	conn->complete = complete;
	conn->complete_ctx = ctx;
	conn->num_slots = params->num_slots;
	TAILQ_INIT(&conn->send_queue);
	conn->slots = calloc(params->num_slots ? params->num_slots : 1, sizeof(*conn->slots));
	conn->rx_buf_size = RX_BUF_SIZE;
	conn->rx_buf = malloc(conn->rx_buf_size);
	if (conn->slots == NULL || conn->rx_buf == NULL) {
		nvme_tcp_conn_fini(conn);
		return -ENOMEM;
	}
	for (i = 0; i < conn->num_slots; i++)
		conn->slots[i].cid = (uint16_t)i;
	reset_rx(conn);
	return 0;
}

void nvme_tcp_conn_close(struct nvme_tcp_conn *conn)
{
	uint32_t i;

	if (conn->fd >= 0)
		close(conn->fd);
	conn->fd = -1;
	TAILQ_INIT(&conn->send_queue);
	conn->ctrl_pdu.queued = false;
	for (i = 0; i < conn->num_slots; i++) {
		conn->slots[i].active = false;
		conn->slots[i].pdu.queued = false;
	}
	conn->state = NVME_TCP_CONN_IDLE;
	conn->error = 0;
	conn->hdgst = false;
	conn->ddgst = false;
	reset_rx(conn);
}

void nvme_tcp_conn_fini(struct nvme_tcp_conn *conn)
{
	nvme_tcp_conn_close(conn);
	free(conn->slots);
	conn->slots = NULL;
	free(conn->rx_buf);
	conn->rx_buf = NULL;
}

void nvme_tcp_conn_fail(struct nvme_tcp_conn *conn, int rc, const char *fmt, ...)
{
	struct nvme_tcp_send_pdu *pdu;
	char msg[256];
	va_list ap;

	if (conn->state == NVME_TCP_CONN_FAILED)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	UST_ERRLOG("NVMe/TCP %s qid %u: %s; closing the connection\n", conn->peer,
		   conn->params.qid, msg);
	if (conn->fd >= 0)
		close(conn->fd);
	conn->fd = -1;
	while ((pdu = TAILQ_FIRST(&conn->send_queue)) != NULL) {
		TAILQ_REMOVE(&conn->send_queue, pdu, link);
		pdu->queued = false;
	}
	conn->state = NVME_TCP_CONN_FAILED;
	conn->error = rc < 0 ? rc : -EIO;
}

static void set_peer(struct nvme_tcp_conn *conn, const char *traddr, const char *trsvcid)
{
	snprintf(conn->peer, sizeof(conn->peer), "%s:%s", traddr, trsvcid);
}

int nvme_tcp_conn_connect(struct nvme_tcp_conn *conn, enum ust_nvme_adrfam adrfam,
			  const char *traddr, const char *trsvcid)
{
	struct addrinfo hints, *res = NULL;
	int fd, rc, one = 1;

	nvme_tcp_conn_close(conn);
	set_peer(conn, traddr, trsvcid);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = adrfam == UST_NVME_ADRFAM_IPV6 ? AF_INET6 : AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	/* Numeric only: name resolution could block the reactor. */
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	rc = getaddrinfo(traddr, trsvcid, &hints, &res);
	if (rc != 0 || res == NULL) {
		UST_ERRLOG("NVMe/TCP: '%s' port '%s' is not a numeric %s address and port: %s\n",
			   traddr, trsvcid, adrfam == UST_NVME_ADRFAM_IPV6 ? "IPv6" : "IPv4",
			   gai_strerror(rc));
		if (res != NULL)
			freeaddrinfo(res);
		return -EINVAL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0) {
		rc = -errno;
		freeaddrinfo(res);
		return rc;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	rc = connect(fd, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	if (rc != 0 && errno != EINPROGRESS) {
		rc = -errno;
		UST_ERRLOG("NVMe/TCP %s: connect: %s\n", conn->peer, strerror(-rc));
		close(fd);
		return rc;
	}
	conn->fd = fd;
	conn->state = NVME_TCP_CONN_CONNECTING;
	return 0;
}

void nvme_tcp_conn_attach_fd(struct nvme_tcp_conn *conn, int fd)
{
	nvme_tcp_conn_close(conn);
	if (conn->peer[0] == '\0')
		set_peer(conn, "fd", "0");
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	conn->fd = fd;
	conn->state = NVME_TCP_CONN_CONNECTING;
}

bool nvme_tcp_conn_slot_active(const struct nvme_tcp_conn *conn, uint16_t slot)
{
	return slot < conn->num_slots && conn->slots[slot].active;
}

void nvme_tcp_conn_release_slot(struct nvme_tcp_conn *conn, uint16_t idx)
{
	struct nvme_tcp_slot *slot;

	if (idx >= conn->num_slots)
		return;
	slot = &conn->slots[idx];
	if (slot->pdu.queued) {
		/* A PDU half on the wire cannot be taken back. */
		if (slot->pdu.sent > 0 && conn->state != NVME_TCP_CONN_FAILED)
			nvme_tcp_conn_fail(conn, -ECANCELED,
					   "command %u released while its PDU was being sent", idx);
		if (slot->pdu.queued) {
			TAILQ_REMOVE(&conn->send_queue, &slot->pdu, link);
			slot->pdu.queued = false;
		}
	}
	if (conn->rx_slot == slot)
		conn->rx_slot = NULL;
	slot->active = false;
}

/* ---- data ranges of a slot ---------------------------------------------------------- */

/* Append the iovec pieces of [off, off + len) of the slot's data, after skipping *skip bytes. */
static int add_data_iov(struct iovec *out, int n, int max, const struct nvme_tcp_slot *slot,
			uint32_t off, uint32_t len, uint32_t *skip)
{
	uint32_t pos = 0, a, b;
	int i;

	if (*skip >= len) {
		*skip -= len;
		return n;
	}
	off += *skip;
	len -= *skip;
	*skip = 0;
	for (i = 0; i < slot->iovcnt && len > 0 && n < max; i++) {
		uint32_t ilen = (uint32_t)slot->iov[i].iov_len;

		if (off >= pos + ilen) {
			pos += ilen;
			continue;
		}
		a = off - pos;
		b = ilen - a < len ? ilen - a : len;
		out[n].iov_base = (uint8_t *)slot->iov[i].iov_base + a;
		out[n].iov_len = b;
		n++;
		off += b;
		len -= b;
		pos += ilen;
	}
	return n;
}

static uint32_t data_crc(const struct nvme_tcp_slot *slot, uint32_t off, uint32_t len)
{
	struct iovec iov[NVME_TCP_MAX_IOV];
	uint32_t crc = NVME_TCP_CRC32C_INIT, skip = 0;
	int i, n;

	n = add_data_iov(iov, 0, NVME_TCP_MAX_IOV, slot, off, len, &skip);
	for (i = 0; i < n; i++)
		crc = nvme_tcp_crc32c_update(crc, iov[i].iov_base, iov[i].iov_len);
	return nvme_tcp_crc32c_final(crc);
}

static void copy_to_slot(struct nvme_tcp_slot *slot, uint32_t off, const uint8_t *src,
			 uint32_t len)
{
	struct iovec iov[NVME_TCP_MAX_IOV];
	uint32_t skip = 0;
	int i, n;

	n = add_data_iov(iov, 0, NVME_TCP_MAX_IOV, slot, off, len, &skip);
	for (i = 0; i < n; i++) {
		memcpy(iov[i].iov_base, src, iov[i].iov_len);
		src += iov[i].iov_len;
	}
}

/* ---- send ------------------------------------------------------------------------- */

static void queue_pdu(struct nvme_tcp_conn *conn, struct nvme_tcp_send_pdu *pdu)
{
	pdu->total = pdu->hdr_len + pdu->data_len + pdu->ddgst_len;
	pdu->sent = 0;
	pdu->queued = true;
	TAILQ_INSERT_TAIL(&conn->send_queue, pdu, link);
}

static int add_pdu_iov(struct iovec *out, int n, int max, const struct nvme_tcp_send_pdu *pdu)
{
	uint32_t skip = pdu->sent;

	if (skip < pdu->hdr_len) {
		out[n].iov_base = (uint8_t *)pdu->hdr + skip;
		out[n].iov_len = pdu->hdr_len - skip;
		n++;
		skip = 0;
	} else {
		skip -= pdu->hdr_len;
	}
	if (pdu->data_len > 0 && n < max)
		n = add_data_iov(out, n, max, pdu->slot, pdu->data_off, pdu->data_len, &skip);
	if (pdu->ddgst_len > 0 && n < max && skip < pdu->ddgst_len) {
		out[n].iov_base = (uint8_t *)pdu->ddgst + skip;
		out[n].iov_len = pdu->ddgst_len - skip;
		n++;
	}
	return n;
}

/* Queue the next H2CData PDU of the R2T the slot serves (TCP 3.3.7). */
static void queue_h2c_data(struct nvme_tcp_conn *conn, struct nvme_tcp_slot *slot)
{
	struct nvme_tcp_send_pdu *pdu = &slot->pdu;
	uint32_t hd = conn->hdgst ? NVME_TCP_DIGEST_LEN : 0;
	uint32_t dd = conn->ddgst ? NVME_TCP_DIGEST_LEN : 0;
	uint32_t left = slot->r2t_end - slot->h2c_sent;
	uint32_t chunk = left < conn->maxh2cdata ? left : conn->maxh2cdata;
	uint32_t hlen = sizeof(struct nvme_tcp_h2c_data);
	uint32_t pdo = nvme_tcp_align(hlen + hd, conn->cpda_align);
	uint8_t flags = 0;

	if (conn->hdgst)
		flags |= NVME_TCP_CH_FLAGS_HDGSTF;
	if (conn->ddgst)
		flags |= NVME_TCP_CH_FLAGS_DDGSTF;
	if (chunk == left)
		flags |= NVME_TCP_H2C_DATA_FLAGS_LAST_PDU;
	memset(pdu->hdr, 0, pdo);
	nvme_tcp_build_h2c_data(pdu->hdr, slot->cid, slot->ttag, slot->h2c_sent, chunk, flags,
				(uint8_t)pdo, pdo + chunk + dd);
	if (hd)
		nvme_tcp_put_digest(pdu->hdr + hlen, nvme_tcp_crc32c(pdu->hdr, hlen));
	pdu->hdr_len = pdo;
	pdu->slot = slot;
	pdu->data_off = slot->h2c_sent;
	pdu->data_len = chunk;
	pdu->ddgst_len = dd;
	if (dd)
		nvme_tcp_put_digest(pdu->ddgst, data_crc(slot, pdu->data_off, chunk));
	pdu->h2c_data = true;
	slot->h2c_sent += chunk;
	queue_pdu(conn, pdu);
}

static void pdu_sent(struct nvme_tcp_conn *conn, struct nvme_tcp_send_pdu *pdu)
{
	struct nvme_tcp_slot *slot = pdu->slot;

	pdu->queued = false;
	if (!pdu->h2c_data || slot == NULL || !slot->active)
		return;
	if (slot->h2c_sent < slot->r2t_end)
		queue_h2c_data(conn, slot);
	else
		slot->r2t_active = false;
}

static void advance_sent(struct nvme_tcp_conn *conn, size_t n)
{
	struct nvme_tcp_send_pdu *pdu;
	uint32_t left;

	while (n > 0 && (pdu = TAILQ_FIRST(&conn->send_queue)) != NULL) {
		left = pdu->total - pdu->sent;
		if (n < left) {
			pdu->sent += (uint32_t)n;
			return;
		}
		n -= left;
		pdu->sent = pdu->total;
		TAILQ_REMOVE(&conn->send_queue, pdu, link);
		pdu_sent(conn, pdu);
	}
}

int nvme_tcp_conn_flush(struct nvme_tcp_conn *conn)
{
	struct iovec iov[SEND_IOV_BATCH];
	struct nvme_tcp_send_pdu *pdu;
	struct msghdr msg;
	ssize_t w;
	int n;

	if (conn->state == NVME_TCP_CONN_FAILED)
		return conn->error;
	if (conn->state == NVME_TCP_CONN_IDLE || conn->state == NVME_TCP_CONN_CONNECTING)
		return 0;
	while (!TAILQ_EMPTY(&conn->send_queue)) {
		n = 0;
		TAILQ_FOREACH(pdu, &conn->send_queue, link) {
			n = add_pdu_iov(iov, n, SEND_IOV_BATCH, pdu);
			if (n == SEND_IOV_BATCH)
				break;
		}
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t)n;
		w = sendmsg(conn->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			nvme_tcp_conn_fail(conn, -errno, "send: %s", strerror(errno));
			return conn->error;
		}
		advance_sent(conn, (size_t)w);
	}
	return 0;
}

int nvme_tcp_conn_submit(struct nvme_tcp_conn *conn, uint16_t idx, const struct ust_nvme_cmd *cmd,
			 enum nvme_tcp_xfer xfer, const struct iovec *iov, int iovcnt, uint32_t len)
{
	uint32_t hd = conn->hdgst ? NVME_TCP_DIGEST_LEN : 0;
	uint32_t hlen = sizeof(struct nvme_tcp_capsule_cmd);
	struct nvme_tcp_send_pdu *pdu;
	struct nvme_tcp_slot *slot;
	struct ust_nvme_cmd c;
	uint64_t total = 0;
	uint32_t pdo = 0, plen;
	uint8_t flags = 0;
	bool icd;
	int i;

	if (conn->state != NVME_TCP_CONN_READY)
		return conn->state == NVME_TCP_CONN_FAILED ? conn->error : -ENOTCONN;
	if (idx >= conn->num_slots || iovcnt < 0 || iovcnt > NVME_TCP_MAX_IOV)
		return -EINVAL;
	if ((xfer == NVME_TCP_XFER_NONE) != (len == 0))
		return -EINVAL;
	for (i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (total < len)
		return -EINVAL;
	slot = &conn->slots[idx];
	if (slot->active)
		return -EBUSY;
	slot->xfer = xfer;
	slot->len = len;
	if (iovcnt > 0)
		memcpy(slot->iov, iov, sizeof(*iov) * (size_t)iovcnt);
	slot->iovcnt = iovcnt;
	slot->c2h_received = 0;
	slot->h2c_sent = 0;
	slot->r2t_active = false;

	c = *cmd;
	ust_nvme_cmd_set_cid(&c, idx);
	/* NVMe/TCP uses SGLs only (TCP 3.3.4 / Base spec 6.1): PSDT 01b. */
	ust_nvme_cmd_set_psdt(&c, UST_NVME_PSDT_SGL_MPTR_CONTIG);
	memset(&c.dptr, 0, sizeof(c.dptr));
	c.dptr.sgl1.length = len;
	icd = xfer == NVME_TCP_XFER_H2C && len <= conn->params.max_icd;
	if (icd) {
		/* In-capsule data: an SGL Data Block with the Offset subtype (TCP 3.3.4). */
		c.dptr.sgl1.sgl_identifier =
			UST_NVME_SGL_ID(UST_NVME_SGL_TYPE_DATA_BLOCK, UST_NVME_SGL_SUBTYPE_OFFSET);
	} else {
		/* Data moved by R2T/H2CData or C2HData: Transport SGL Data Block. */
		c.dptr.sgl1.sgl_identifier = UST_NVME_SGL_ID(UST_NVME_SGL_TYPE_TRANSPORT_DATA_BLOCK,
							     UST_NVME_SGL_SUBTYPE_TRANSPORT);
	}

	pdu = &slot->pdu;
	if (conn->hdgst)
		flags |= NVME_TCP_CH_FLAGS_HDGSTF;
	if (icd) {
		pdo = nvme_tcp_align(hlen + hd, conn->cpda_align);
		if (conn->ddgst)
			flags |= NVME_TCP_CH_FLAGS_DDGSTF;
		plen = pdo + len + (conn->ddgst ? NVME_TCP_DIGEST_LEN : 0);
		pdu->hdr_len = pdo;
	} else {
		plen = hlen + hd;
		pdu->hdr_len = hlen + hd;
	}
	memset(pdu->hdr, 0, pdu->hdr_len);
	nvme_tcp_build_capsule_cmd(pdu->hdr, &c, flags, (uint8_t)pdo, plen);
	if (hd)
		nvme_tcp_put_digest(pdu->hdr + hlen, nvme_tcp_crc32c(pdu->hdr, hlen));
	pdu->slot = slot;
	pdu->h2c_data = false;
	pdu->data_off = 0;
	pdu->data_len = icd ? len : 0;
	pdu->ddgst_len = icd && conn->ddgst ? NVME_TCP_DIGEST_LEN : 0;
	if (pdu->ddgst_len)
		nvme_tcp_put_digest(pdu->ddgst, data_crc(slot, 0, len));
	if (icd)
		slot->h2c_sent = len;
	slot->active = true;
	queue_pdu(conn, pdu);
	/* A send error fails the connection; the command is then completed by the owner. */
	nvme_tcp_conn_flush(conn);
	return 0;
}

/* ---- receive ---------------------------------------------------------------------- */

static void rx_next_pdu(struct nvme_tcp_conn *conn)
{
	conn->rstate = NVME_TCP_RECV_CH;
	conn->rx_have = 0;
	conn->rx_need = sizeof(struct nvme_tcp_ch);
	conn->rx_slot = NULL;
}

static void complete_slot(struct nvme_tcp_conn *conn, struct nvme_tcp_slot *slot,
			  const struct ust_nvme_cpl *cpl)
{
	if (slot->pdu.queued) {
		if (slot->pdu.sent > 0) {
			nvme_tcp_conn_fail(conn, -EPROTO,
					   "completion of command %u while its data is being sent",
					   slot->cid);
			return;
		}
		TAILQ_REMOVE(&conn->send_queue, &slot->pdu, link);
		slot->pdu.queued = false;
	}
	slot->active = false;
	conn->completions++;
	conn->complete(conn->complete_ctx, conn, slot->cid, cpl);
}

/* The CH is in: check what can be checked and size the rest of the header. */
static int rx_check_ch(struct nvme_tcp_conn *conn)
{
	struct nvme_tcp_rx_hdr *h = &conn->rx;
	uint32_t hd = 0, dd;
	uint8_t hlen;

	nvme_tcp_decode_ch(conn->rx_hdr, h);
	hlen = nvme_tcp_pdu_hlen(h->pdu_type);
	switch (h->pdu_type) {
	case NVME_TCP_PDU_TYPE_ICRESP:
		if (conn->state != NVME_TCP_CONN_IC_WAIT)
			goto unexpected;
		break;
	case NVME_TCP_PDU_TYPE_C2H_TERM_REQ:
		break;
	case NVME_TCP_PDU_TYPE_CAPSULE_RESP:
	case NVME_TCP_PDU_TYPE_C2H_DATA:
	case NVME_TCP_PDU_TYPE_R2T:
		if (conn->state != NVME_TCP_CONN_READY)
			goto unexpected;
		break;
	default:
		goto unexpected;
	}
	if (h->hlen != hlen) {
		nvme_tcp_conn_fail(conn, -EPROTO, "%s with HLEN %u (expected %u)",
				   nvme_tcp_pdu_type_str(h->pdu_type), h->hlen, hlen);
		return -EPROTO;
	}
	if (h->pdu_type == NVME_TCP_PDU_TYPE_ICRESP) {
		/* TCP 3.6.2.3: PLEN 128, no digests, no data. */
		if (h->plen != hlen || h->pdo != 0 ||
		    (h->flags & (NVME_TCP_CH_FLAGS_HDGSTF | NVME_TCP_CH_FLAGS_DDGSTF))) {
			nvme_tcp_conn_fail(conn, -EPROTO, "malformed ICResp (PLEN %u PDO %u flags %#x)",
					   h->plen, h->pdo, h->flags);
			return -EPROTO;
		}
		conn->rx_need = hlen;
		return 0;
	}
	if (h->pdu_type == NVME_TCP_PDU_TYPE_C2H_TERM_REQ) {
		/* TCP 3.6.2.5: no digests; the offending header follows, up to 128 bytes. */
		if (h->plen < hlen || h->plen > NVME_TCP_TERM_REQ_MAX_PLEN) {
			nvme_tcp_conn_fail(conn, -EPROTO, "C2HTermReq with PLEN %u", h->plen);
			return -EPROTO;
		}
		conn->rx_need = hlen;
		return 0;
	}
	/* Header digests are on every other PDU once negotiated, and only then. */
	if (!!(h->flags & NVME_TCP_CH_FLAGS_HDGSTF) != conn->hdgst) {
		nvme_tcp_conn_fail(conn, -EPROTO, "%s with HDGSTF %s while header digests are %s",
				   nvme_tcp_pdu_type_str(h->pdu_type),
				   (h->flags & NVME_TCP_CH_FLAGS_HDGSTF) ? "set" : "clear",
				   conn->hdgst ? "on" : "off");
		return -EPROTO;
	}
	if (conn->hdgst)
		hd = NVME_TCP_DIGEST_LEN;
	if (h->pdu_type == NVME_TCP_PDU_TYPE_C2H_DATA) {
		if (!!(h->flags & NVME_TCP_CH_FLAGS_DDGSTF) != conn->ddgst) {
			nvme_tcp_conn_fail(conn, -EPROTO, "C2HData with DDGSTF %s while data digests are %s",
					   (h->flags & NVME_TCP_CH_FLAGS_DDGSTF) ? "set" : "clear",
					   conn->ddgst ? "on" : "off");
			return -EPROTO;
		}
		dd = conn->ddgst ? NVME_TCP_DIGEST_LEN : 0;
		/* TCP 3.6.2.9 / 3.3.3: data starts at PDO, after header, digest and padding. */
		if (h->pdo < hlen + hd || (uint64_t)h->plen < (uint64_t)h->pdo + dd + 1) {
			nvme_tcp_conn_fail(conn, -EPROTO, "C2HData with PDO %u and PLEN %u", h->pdo,
					   h->plen);
			return -EPROTO;
		}
	} else if (h->plen != hlen + hd || h->pdo != 0) {
		/* CapsuleResp and R2T carry no data. */
		nvme_tcp_conn_fail(conn, -EPROTO, "%s with PLEN %u PDO %u (expected %u and 0)",
				   nvme_tcp_pdu_type_str(h->pdu_type), h->plen, h->pdo, hlen + hd);
		return -EPROTO;
	}
	conn->rx_need = hlen + hd;
	return 0;

unexpected:
	nvme_tcp_conn_fail(conn, -EPROTO, "unexpected PDU type %#x (%s) in state %d", h->pdu_type,
			   nvme_tcp_pdu_type_str(h->pdu_type), conn->state);
	return -EPROTO;
}

static int rx_icresp(struct nvme_tcp_conn *conn)
{
	const struct nvme_tcp_rx_hdr *h = &conn->rx;
	uint8_t asked = (conn->params.hdgst ? NVME_TCP_DGST_HDGST_ENABLE : 0) |
			(conn->params.ddgst ? NVME_TCP_DGST_DDGST_ENABLE : 0);

	if (h->pfv != NVME_TCP_PFV_1_0) {
		nvme_tcp_conn_fail(conn, -EPROTO, "ICResp with unsupported PFV %u", h->pfv);
		return -EPROTO;
	}
	if (h->cpda > 31) {
		nvme_tcp_conn_fail(conn, -EPROTO, "ICResp with CPDA %u (at most 31)", h->cpda);
		return -EPROTO;
	}
	/* The controller may only enable digests the host asked for (TCP 3.6.2.3). */
	if (h->dgst & ~asked) {
		nvme_tcp_conn_fail(conn, -EPROTO, "ICResp enables digests %#x; we asked for %#x",
				   h->dgst, asked);
		return -EPROTO;
	}
	if (h->maxh2cdata < NVME_TCP_MIN_MAXH2CDATA || h->maxh2cdata % 4 != 0) {
		nvme_tcp_conn_fail(conn, -EPROTO,
				   "ICResp MAXH2CDATA %u (a multiple of 4, at least %u)",
				   h->maxh2cdata, NVME_TCP_MIN_MAXH2CDATA);
		return -EPROTO;
	}
	conn->hdgst = !!(h->dgst & NVME_TCP_DGST_HDGST_ENABLE);
	conn->ddgst = !!(h->dgst & NVME_TCP_DGST_DDGST_ENABLE);
	conn->cpda_align = ((uint32_t)h->cpda + 1) * 4;
	conn->maxh2cdata = h->maxh2cdata;
	conn->state = NVME_TCP_CONN_READY;
	return 0;
}

static struct nvme_tcp_slot *rx_lookup(struct nvme_tcp_conn *conn, uint16_t cid)
{
	if (cid >= conn->num_slots || !conn->slots[cid].active) {
		nvme_tcp_conn_fail(conn, -EPROTO, "%s for unknown command id %u",
				   nvme_tcp_pdu_type_str(conn->rx.pdu_type), cid);
		return NULL;
	}
	return &conn->slots[cid];
}

static int rx_capsule_resp(struct nvme_tcp_conn *conn)
{
	struct nvme_tcp_slot *slot = rx_lookup(conn, conn->rx.cpl.cid);

	if (slot == NULL)
		return -EPROTO;
	complete_slot(conn, slot, &conn->rx.cpl);
	return conn->state == NVME_TCP_CONN_FAILED ? conn->error : 0;
}

static int rx_r2t(struct nvme_tcp_conn *conn)
{
	const struct nvme_tcp_rx_hdr *h = &conn->rx;
	struct nvme_tcp_slot *slot = rx_lookup(conn, h->cccid);

	if (slot == NULL)
		return -EPROTO;
	if (slot->xfer != NVME_TCP_XFER_H2C || slot->r2t_active || slot->pdu.queued) {
		nvme_tcp_conn_fail(conn, -EPROTO,
				   "R2T for command %u, which %s", h->cccid,
				   slot->xfer != NVME_TCP_XFER_H2C ? "has no host-to-controller data"
								   : "already serves an R2T");
		return -EPROTO;
	}
	/*
	 * TCP 3.3.7: R2TO/R2TL name a range of the command's data; we allow one
	 * R2T at a time (MAXR2T 0), so it must start where the last one ended.
	 */
	if (h->length == 0 || h->offset != slot->h2c_sent ||
	    (uint64_t)h->offset + h->length > slot->len) {
		nvme_tcp_conn_fail(conn, -EPROTO,
				   "R2T for command %u asks for [%u, +%u) of %u bytes, %u already sent",
				   h->cccid, h->offset, h->length, slot->len, slot->h2c_sent);
		return -EPROTO;
	}
	slot->r2t_active = true;
	slot->ttag = h->ttag;
	slot->r2t_end = h->offset + h->length;
	queue_h2c_data(conn, slot);
	return 0;
}

static int rx_c2h_data_hdr(struct nvme_tcp_conn *conn)
{
	const struct nvme_tcp_rx_hdr *h = &conn->rx;
	uint32_t hd = conn->hdgst ? NVME_TCP_DIGEST_LEN : 0;
	uint32_t dd = conn->ddgst ? NVME_TCP_DIGEST_LEN : 0;
	struct nvme_tcp_slot *slot = rx_lookup(conn, h->cccid);

	if (slot == NULL)
		return -EPROTO;
	if (slot->xfer != NVME_TCP_XFER_C2H) {
		nvme_tcp_conn_fail(conn, -EPROTO, "C2HData for command %u, which reads no data",
				   h->cccid);
		return -EPROTO;
	}
	if (h->length != h->plen - h->pdo - dd) {
		nvme_tcp_conn_fail(conn, -EPROTO, "C2HData DATAL %u does not match PLEN %u - PDO %u",
				   h->length, h->plen, h->pdo);
		return -EPROTO;
	}
	if (h->offset != slot->c2h_received || (uint64_t)h->offset + h->length > slot->len) {
		nvme_tcp_conn_fail(conn, -EPROTO,
				   "C2HData for command %u at [%u, +%u): buffer is %u bytes, %u received",
				   h->cccid, h->offset, h->length, slot->len, slot->c2h_received);
		return -EPROTO;
	}
	if (h->flags & NVME_TCP_C2H_DATA_FLAGS_SUCCESS) {
		/* TCP 3.6.2.9: SUCCESS only with LAST_PDU, and only without SQ flow control. */
		if (!(h->flags & NVME_TCP_C2H_DATA_FLAGS_LAST_PDU) || !conn->params.sq_flow_disabled) {
			nvme_tcp_conn_fail(conn, -EPROTO, "C2HData SUCCESS flag %s",
					   conn->params.sq_flow_disabled ? "without LAST_PDU"
									 : "with SQ flow control on");
			return -EPROTO;
		}
	}
	conn->rx_slot = slot;
	conn->rx_data_off = h->offset;
	conn->rx_crc = NVME_TCP_CRC32C_INIT;
	conn->rx_have = 0;
	conn->rx_need = h->pdo - h->hlen - hd;
	conn->rstate = conn->rx_need > 0 ? NVME_TCP_RECV_PAD : NVME_TCP_RECV_DATA;
	if (conn->rstate == NVME_TCP_RECV_DATA)
		conn->rx_need = h->length;
	return 0;
}

static int rx_c2h_data_done(struct nvme_tcp_conn *conn)
{
	const struct nvme_tcp_rx_hdr *h = &conn->rx;
	struct nvme_tcp_slot *slot = conn->rx_slot;
	struct ust_nvme_cpl cpl;

	rx_next_pdu(conn);
	if (slot == NULL || !slot->active)
		return 0; /* released meanwhile */
	slot->c2h_received += h->length;
	if (h->flags & NVME_TCP_C2H_DATA_FLAGS_SUCCESS) {
		/* As if a CapsuleResp with success had come (TCP 3.3.8). */
		memset(&cpl, 0, sizeof(cpl));
		cpl.cid = slot->cid;
		cpl.sqid = conn->params.qid;
		complete_slot(conn, slot, &cpl);
	}
	return conn->state == NVME_TCP_CONN_FAILED ? conn->error : 0;
}

/* The whole header (and its digest) is in. */
static int rx_header_done(struct nvme_tcp_conn *conn)
{
	struct nvme_tcp_rx_hdr *h = &conn->rx;
	uint32_t expect, got;
	int rc;

	if ((h->flags & NVME_TCP_CH_FLAGS_HDGSTF) && h->pdu_type != NVME_TCP_PDU_TYPE_ICRESP &&
	    h->pdu_type != NVME_TCP_PDU_TYPE_C2H_TERM_REQ) {
		expect = nvme_tcp_crc32c(conn->rx_hdr, h->hlen);
		got = nvme_tcp_get_digest(conn->rx_hdr + h->hlen);
		if (expect != got) {
			nvme_tcp_conn_fail(conn, -EBADMSG,
					   "%s header digest %#010x, computed %#010x",
					   nvme_tcp_pdu_type_str(h->pdu_type), got, expect);
			return -EBADMSG;
		}
	}
	nvme_tcp_decode_psh(conn->rx_hdr, h);
	switch (h->pdu_type) {
	case NVME_TCP_PDU_TYPE_ICRESP:
		rc = rx_icresp(conn);
		break;
	case NVME_TCP_PDU_TYPE_C2H_TERM_REQ:
		nvme_tcp_conn_fail(conn, -ECONNRESET, "target terminated the connection: %s (FES %#x, FEI %#x)",
				   nvme_tcp_fes_str(h->fes), h->fes, h->fei);
		return -ECONNRESET;
	case NVME_TCP_PDU_TYPE_CAPSULE_RESP:
		rc = rx_capsule_resp(conn);
		break;
	case NVME_TCP_PDU_TYPE_R2T:
		rc = rx_r2t(conn);
		break;
	case NVME_TCP_PDU_TYPE_C2H_DATA:
		return rx_c2h_data_hdr(conn);
	default:
		rc = -EPROTO; /* rx_check_ch let nothing else through */
		break;
	}
	if (rc == 0 && conn->state != NVME_TCP_CONN_FAILED)
		rx_next_pdu(conn);
	return rc;
}

static int rx_data_done(struct nvme_tcp_conn *conn)
{
	if (!conn->ddgst)
		return rx_c2h_data_done(conn);
	conn->rstate = NVME_TCP_RECV_DDGST;
	conn->rx_have = 0;
	conn->rx_need = NVME_TCP_DIGEST_LEN;
	return 0;
}

static int rx_ddgst_done(struct nvme_tcp_conn *conn)
{
	uint32_t expect = nvme_tcp_crc32c_final(conn->rx_crc);
	uint32_t got = nvme_tcp_get_digest(conn->rx_hdr);

	if (expect != got) {
		nvme_tcp_conn_fail(conn, -EBADMSG,
				   "C2HData for command %u: data digest %#010x, computed %#010x",
				   conn->rx.cccid, got, expect);
		return -EBADMSG;
	}
	return rx_c2h_data_done(conn);
}

int nvme_tcp_conn_rx_feed(struct nvme_tcp_conn *conn, const uint8_t *buf, uint32_t len)
{
	uint32_t used = 0, n;
	int rc = 0;

	while (used < len && rc == 0) {
		if (conn->state == NVME_TCP_CONN_FAILED)
			return conn->error;
		if (conn->max_completions && conn->completions >= conn->max_completions)
			break;
		n = conn->rx_need - conn->rx_have;
		if (n > len - used)
			n = len - used;
		switch (conn->rstate) {
		case NVME_TCP_RECV_CH:
		case NVME_TCP_RECV_PSH:
			memcpy(conn->rx_hdr + conn->rx_have, buf + used, n);
			break;
		case NVME_TCP_RECV_PAD:
			break;
		case NVME_TCP_RECV_DATA:
			if (conn->rx_slot != NULL && conn->rx_slot->active)
				copy_to_slot(conn->rx_slot, conn->rx_data_off + conn->rx_have,
					     buf + used, n);
			if (conn->ddgst)
				conn->rx_crc = nvme_tcp_crc32c_update(conn->rx_crc, buf + used, n);
			break;
		case NVME_TCP_RECV_DDGST:
			memcpy(conn->rx_hdr + conn->rx_have, buf + used, n);
			break;
		}
		used += n;
		conn->rx_have += n;
		if (conn->rx_have < conn->rx_need)
			continue;
		switch (conn->rstate) {
		case NVME_TCP_RECV_CH:
			rc = rx_check_ch(conn);
			conn->rstate = NVME_TCP_RECV_PSH;
			/* rx_have stays: the CH is the start of the header buffer. */
			break;
		case NVME_TCP_RECV_PSH:
			rc = rx_header_done(conn);
			break;
		case NVME_TCP_RECV_PAD:
			conn->rstate = NVME_TCP_RECV_DATA;
			conn->rx_have = 0;
			conn->rx_need = conn->rx.length;
			break;
		case NVME_TCP_RECV_DATA:
			rc = rx_data_done(conn);
			break;
		case NVME_TCP_RECV_DDGST:
			rc = rx_ddgst_done(conn);
			break;
		}
	}
	if (conn->state == NVME_TCP_CONN_FAILED)
		return conn->error;
	return (int)used;
}

/* ---- connection progress --------------------------------------------------------------- */

static void send_icreq(struct nvme_tcp_conn *conn)
{
	struct nvme_tcp_send_pdu *pdu = &conn->ctrl_pdu;
	uint8_t dgst = (conn->params.hdgst ? NVME_TCP_DGST_HDGST_ENABLE : 0) |
		       (conn->params.ddgst ? NVME_TCP_DGST_DDGST_ENABLE : 0);

	memset(pdu, 0, sizeof(*pdu));
	/* HPDA 0: no alignment wanted for C2H data; MAXR2T 0: one R2T per command. */
	pdu->hdr_len = nvme_tcp_build_icreq(pdu->hdr, 0, dgst, 0);
	queue_pdu(conn, pdu);
	conn->state = NVME_TCP_CONN_IC_WAIT;
}

static int check_connected(struct nvme_tcp_conn *conn)
{
	struct pollfd pfd = {.fd = conn->fd, .events = POLLOUT};
	socklen_t len = sizeof(int);
	int err = 0;

	if (poll(&pfd, 1, 0) <= 0)
		return 0;
	if (getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err != 0) {
		nvme_tcp_conn_fail(conn, -err, "connect: %s", strerror(err));
		return conn->error;
	}
	send_icreq(conn);
	return 0;
}

static int read_and_parse(struct nvme_tcp_conn *conn)
{
	ssize_t r;
	int i, rc;

	for (i = 0; i < MAX_READS_PER_POLL; i++) {
		if (conn->rx_buf_head < conn->rx_buf_tail) {
			rc = nvme_tcp_conn_rx_feed(conn, conn->rx_buf + conn->rx_buf_head,
						   conn->rx_buf_tail - conn->rx_buf_head);
			if (rc < 0)
				return rc;
			conn->rx_buf_head += (uint32_t)rc;
			if (conn->rx_buf_head < conn->rx_buf_tail)
				return 0; /* completion budget used up */
		}
		conn->rx_buf_head = conn->rx_buf_tail = 0;
		r = recv(conn->fd, conn->rx_buf, conn->rx_buf_size, MSG_DONTWAIT);
		if (r == 0) {
			nvme_tcp_conn_fail(conn, -ECONNRESET, "connection closed by the target");
			return conn->error;
		}
		if (r < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			nvme_tcp_conn_fail(conn, -errno, "recv: %s", strerror(errno));
			return conn->error;
		}
		conn->rx_buf_tail = (uint32_t)r;
	}
	return 0;
}

int nvme_tcp_conn_process(struct nvme_tcp_conn *conn, uint32_t max)
{
	int rc;

	if (conn->state == NVME_TCP_CONN_FAILED)
		return conn->error;
	if (conn->state == NVME_TCP_CONN_IDLE)
		return -ENOTCONN;
	conn->completions = 0;
	conn->max_completions = max;
	if (conn->state == NVME_TCP_CONN_CONNECTING) {
		rc = check_connected(conn);
		if (rc != 0 || conn->state == NVME_TCP_CONN_CONNECTING)
			return rc;
	}
	rc = nvme_tcp_conn_flush(conn);
	if (rc == 0)
		rc = read_and_parse(conn);
	/* R2Ts and completion callbacks may have queued PDUs. */
	if (rc == 0)
		rc = nvme_tcp_conn_flush(conn);
	if (conn->state == NVME_TCP_CONN_FAILED)
		return conn->error;
	return (int)conn->completions;
}
