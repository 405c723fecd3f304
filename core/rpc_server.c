/*
 * JSON-RPC server on a UNIX stream socket, polled on the app thread.
 *
 * Guarantees:
 *  - The socket is created with mode 0600 before anyone can connect: it is
 *    chmod'ed between bind() and listen(), and connect() is refused until
 *    listen(). A path owned by a live server is refused (-EADDRINUSE); a
 *    stale socket file left by a dead one is replaced; any other kind of file
 *    is never removed (-EEXIST).
 *  - Nothing blocks: accept, recv and send are non-blocking. Requests may
 *    arrive split across any number of reads or several in one read; each
 *    complete JSON value is dispatched as soon as its last byte arrives.
 *    Responses are queued per connection, written as the peer accepts them,
 *    and each ends with "\n".
 *  - Bounded memory per connection: a request larger than
 *    UST_RPC_MAX_REQUEST_SIZE is answered with an error and the connection is
 *    closed; while more than RPC_MAX_OUT_BACKLOG bytes of responses wait for
 *    a peer that does not read them, nothing more is read from it.
 *  - Malformed JSON is answered with -32700 and the connection is closed
 *    after the answers already due are flushed: a byte stream cannot be
 *    resynchronised after a syntax error.
 *  - A client may half-close (shutdown(SHUT_WR)) after sending: everything it
 *    sent is still answered. A client that disconnects with requests in
 *    flight costs nothing but memory until the handlers answer; the answers
 *    are then dropped.
 *
 * Finding where a value ends uses a small incremental scanner (bracket depth,
 * strings and escapes) that resumes where the previous read stopped, so a
 * large request arriving in many pieces is scanned once, not re-parsed from
 * its start on every read. jansson then parses each complete value exactly
 * once and reports any syntax error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ustor/log.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"

#include "rpc_internal.h"

/*
 * RPC is the control path: while clients are connected, 1 ms adds at most a
 * millisecond to a call (well under a Python client's own overhead). With no
 * client for a while the server drops to a 20 ms period, so an idle daemon's
 * reactor is woken 50 times a second rather than 1000 (the first call after a
 * quiet spell waits at most 20 ms for its accept()).
 */
#define RPC_POLL_PERIOD_US 1000
#define RPC_IDLE_POLL_PERIOD_US 20000
/* Fast polls with no connection and nothing accepted before slowing down. */
#define RPC_IDLE_POLLS_BEFORE_SLOW 200
#define RPC_MAX_CONNS 256
#define RPC_ACCEPT_PER_POLL 64
#define RPC_LISTEN_BACKLOG 128
#define RPC_RECV_CHUNK (64u * 1024)
/* Per connection and poll, so one busy client cannot starve the others. */
#define RPC_READ_PER_POLL (4u * 1024 * 1024)
#define RPC_MAX_OUT_BACKLOG (64u * 1024 * 1024)

enum scan_kind {
	SCAN_CONTAINER,
	SCAN_STRING,
	SCAN_SCALAR,
};

enum scan_result {
	SCAN_NEED_MORE,
	SCAN_COMPLETE,
	SCAN_MALFORMED,
};

/* Where the next value in the input stream ends; offsets index conn->in. */
struct rpc_scanner {
	size_t pos;
	size_t start;
	uint32_t depth;
	enum scan_kind kind;
	bool in_value;
	bool in_string;
	bool escaped;
};

struct rpc_conn {
	int fd;
	uint32_t refs;    /* the server list + each request in flight */
	uint32_t pending; /* requests in flight */
	bool dead;        /* socket closed: answers are dropped */
	bool eof;         /* peer sent everything it will send */
	bool closing;     /* protocol error: read nothing more, close when flushed */
	char *in;
	size_t in_len, in_off, in_cap;
	struct rpc_scanner scan;
	char *out;
	size_t out_len, out_off, out_cap;
	struct rpc_conn *next;
};

static struct {
	int fd;
	bool listening;
	bool in_poll;
	bool close_requested;
	uint32_t nconns;
	struct ust_poller *poller;
	uint64_t poll_period_us;
	uint32_t idle_polls;
	struct rpc_conn *conns;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
} g_server = {.fd = -1};

/* ---- connections -------------------------------------------------------- */

static void conn_put(struct rpc_conn *c)
{
	if (--c->refs > 0) {
		return;
	}
	free(c->in);
	free(c->out);
	free(c);
}

/* Close the socket now; the struct lives on while answers are pending. */
static void conn_kill(struct rpc_conn *c)
{
	if (c->dead) {
		return;
	}
	c->dead = true;
	close(c->fd);
	c->fd = -1;
	free(c->in);
	c->in = NULL;
	c->in_len = c->in_off = c->in_cap = 0;
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = c->out_cap = 0;
}

static int reserve(char **buf, size_t *cap, size_t need)
{
	size_t new_cap = *cap ? *cap : RPC_RECV_CHUNK;
	char *p;

	if (need <= *cap) {
		return 0;
	}
	while (new_cap < need) {
		new_cap *= 2;
	}
	p = realloc(*buf, new_cap);
	if (p == NULL) {
		return -ENOMEM;
	}
	*buf = p;
	*cap = new_cap;
	return 0;
}

static void conn_flush(struct rpc_conn *c)
{
	while (!c->dead && c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				/* The peer went away; its answers have nowhere to go. */
				conn_kill(c);
			}
			return;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
	}
}

static void conn_queue_response(struct rpc_conn *c, json_t *response)
{
	char *text;
	size_t len;

	if (c->dead) {
		return;
	}
	text = json_dumps(response, JSON_COMPACT | JSON_ENCODE_ANY);
	if (text == NULL) {
		UST_ERRLOG("out of memory encoding an RPC response; closing the connection\n");
		conn_kill(c);
		return;
	}
	len = strlen(text);
	if (c->out_off > 0) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (reserve(&c->out, &c->out_cap, c->out_len + len + 1) != 0) {
		UST_ERRLOG("out of memory queueing an RPC response; closing the connection\n");
		free(text);
		conn_kill(c);
		return;
	}
	memcpy(c->out + c->out_len, text, len);
	c->out[c->out_len + len] = '\n';
	c->out_len += len + 1;
	free(text);
	conn_flush(c);
}

/* Called on the app thread when a request (or batch) is answered. */
static void conn_response(void *ctx, json_t *response)
{
	struct rpc_conn *c = ctx;

	c->pending--;
	if (response != NULL) {
		conn_queue_response(c, response);
		json_decref(response);
	}
	conn_put(c);
}

/* Answer, stop reading, and close once everything due has been written. */
static void conn_protocol_error(struct rpc_conn *c, int code, const char *message)
{
	json_t *resp = ust_rpc_error_response(NULL, code, message);

	UST_NOTICELOG("RPC connection closed: %s\n", message);
	c->closing = true;
	if (resp != NULL) {
		conn_queue_response(c, resp);
		json_decref(resp);
	}
}

static void conn_dispatch(struct rpc_conn *c, const char *text, size_t len)
{
	char err[UST_JSON_ERRBUF_SIZE];
	char msg[UST_JSON_ERRBUF_SIZE + 16];
	json_t *value = ust_json_parse(text, len, err, sizeof(err));

	if (value == NULL) {
		snprintf(msg, sizeof(msg), "Parse error: %s", err);
		conn_protocol_error(c, UST_JSONRPC_ERROR_PARSE_ERROR, msg);
		return;
	}
	c->pending++;
	c->refs++;
	ust_rpc_handle_value(value, conn_response, c);
	json_decref(value);
}

/* ---- finding value boundaries ------------------------------------------- */

static bool is_json_space(unsigned char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static bool ends_scalar(unsigned char ch)
{
	return is_json_space(ch) || ch == '{' || ch == '}' || ch == '[' || ch == ']' ||
	       ch == ',' || ch == ':' || ch == '"';
}

static bool starts_scalar(unsigned char ch)
{
	return ch == '-' || (ch >= '0' && ch <= '9') || ch == 't' || ch == 'f' || ch == 'n';
}

/*
 * Outside strings, valid JSON uses only these bytes. Anything else cannot
 * become valid with more data, so "{bad" is refused at once instead of the
 * connection waiting for a closing brace that will never make it valid.
 */
static bool may_appear_outside_string(unsigned char ch)
{
	return ch != '\0' && strchr(" \t\r\n{}[],:\"-+.0123456789eEtrufalsn", ch) != NULL;
}

static void scan_begin(struct rpc_scanner *s, unsigned char ch)
{
	s->in_value = true;
	s->start = s->pos;
	s->in_string = false;
	s->escaped = false;
	s->depth = 0;
	if (ch == '{' || ch == '[') {
		s->kind = SCAN_CONTAINER;
		s->depth = 1;
	} else if (ch == '"') {
		s->kind = SCAN_STRING;
		s->in_string = true;
	} else {
		s->kind = SCAN_SCALAR;
	}
	s->pos++;
}

/* Inside a string: true when this byte closed it. */
static bool scan_string_byte(struct rpc_scanner *s, unsigned char ch)
{
	if (s->escaped) {
		s->escaped = false;
	} else if (ch == '\\') {
		s->escaped = true;
	} else if (ch == '"') {
		s->in_string = false;
		return true;
	}
	return false;
}

/*
 * Advance over buf[s->pos..len). On SCAN_COMPLETE the value is
 * buf[s->start..s->pos). Whitespace between values is skipped and reported
 * in *skipped_to so the caller can drop it.
 */
static enum scan_result scan(struct rpc_scanner *s, const char *buf, size_t len,
			     size_t *skipped_to)
{
	while (s->pos < len) {
		unsigned char ch = (unsigned char)buf[s->pos];

		if (!s->in_value) {
			if (is_json_space(ch)) {
				*skipped_to = ++s->pos;
				continue;
			}
			if (ch != '{' && ch != '[' && ch != '"' && !starts_scalar(ch)) {
				return SCAN_MALFORMED;
			}
			scan_begin(s, ch);
			continue;
		}
		if (!s->in_string && !may_appear_outside_string(ch)) {
			return SCAN_MALFORMED;
		}
		if (s->kind == SCAN_SCALAR) {
			if (ends_scalar(ch)) {
				return SCAN_COMPLETE;
			}
			s->pos++;
			continue;
		}
		s->pos++;
		if (s->in_string) {
			if (scan_string_byte(s, ch) && s->kind == SCAN_STRING) {
				return SCAN_COMPLETE;
			}
		} else if (ch == '"') {
			s->in_string = true;
		} else if (ch == '{' || ch == '[') {
			s->depth++;
		} else if ((ch == '}' || ch == ']') && --s->depth == 0) {
			return SCAN_COMPLETE;
		}
	}
	return SCAN_NEED_MORE;
}

/* Dispatch every complete value in the input buffer. */
static void conn_process_input(struct rpc_conn *c)
{
	char msg[128];

	while (!c->dead && !c->closing) {
		size_t skipped = c->in_off;
		enum scan_result r = scan(&c->scan, c->in, c->in_len, &skipped);

		c->in_off = skipped;
		if (r == SCAN_MALFORMED) {
			snprintf(msg, sizeof(msg), "Parse error: unexpected byte 0x%02x",
				 (unsigned char)c->in[c->scan.pos]);
			conn_protocol_error(c, UST_JSONRPC_ERROR_PARSE_ERROR, msg);
			return;
		}
		if (c->scan.in_value && c->scan.pos - c->scan.start > UST_RPC_MAX_REQUEST_SIZE) {
			snprintf(msg, sizeof(msg), "request exceeds the limit of %u bytes",
				 UST_RPC_MAX_REQUEST_SIZE);
			conn_protocol_error(c, UST_JSONRPC_ERROR_INVALID_REQUEST, msg);
			return;
		}
		if (r == SCAN_NEED_MORE) {
			return;
		}
		c->scan.in_value = false;
		c->in_off = c->scan.pos;
		conn_dispatch(c, c->in + c->scan.start, c->scan.pos - c->scan.start);
	}
}

/* The peer will send nothing more: a trailing number completes, anything
 * else unfinished is a truncated request. */
static void conn_process_eof(struct rpc_conn *c)
{
	struct rpc_scanner *s = &c->scan;

	c->eof = true;
	if (c->dead || c->closing || !s->in_value) {
		return;
	}
	if (s->kind == SCAN_SCALAR) {
		s->in_value = false;
		c->in_off = s->pos;
		conn_dispatch(c, c->in + s->start, s->pos - s->start);
		return;
	}
	conn_protocol_error(c, UST_JSONRPC_ERROR_PARSE_ERROR,
			    "Parse error: connection closed in the middle of a request");
}

/* Drop consumed bytes so the buffer holds at most one partial request. */
static void conn_compact_input(struct rpc_conn *c)
{
	size_t off = c->in_off;

	if (off == 0) {
		return;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	c->in_off = 0;
	c->scan.pos -= off;
	if (c->scan.in_value) {
		c->scan.start -= off;
	}
}

static bool conn_may_read(const struct rpc_conn *c)
{
	return !c->dead && !c->eof && !c->closing &&
	       c->out_len - c->out_off < RPC_MAX_OUT_BACKLOG;
}

/* Returns true if anything was read. */
static bool conn_read(struct rpc_conn *c)
{
	size_t total = 0;

	while (conn_may_read(c) && total < RPC_READ_PER_POLL) {
		ssize_t n;

		conn_compact_input(c);
		if (reserve(&c->in, &c->in_cap, c->in_len + RPC_RECV_CHUNK) != 0) {
			conn_protocol_error(c, UST_JSONRPC_ERROR_INTERNAL_ERROR,
					    "out of memory reading the request");
			break;
		}
		n = recv(c->fd, c->in + c->in_len, RPC_RECV_CHUNK, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				conn_kill(c);
			}
			break;
		}
		if (n == 0) {
			conn_process_eof(c);
			break;
		}
		c->in_len += (size_t)n;
		total += (size_t)n;
		conn_process_input(c);
	}
	return total > 0;
}

static bool conn_finished(const struct rpc_conn *c)
{
	return (c->eof || c->closing) && c->pending == 0 && c->out_off == c->out_len;
}

static int conn_poll(struct rpc_conn *c)
{
	bool busy;

	if (c->dead) {
		return UST_POLLER_IDLE;
	}
	busy = conn_read(c);
	conn_flush(c);
	if (!c->dead && conn_finished(c)) {
		conn_kill(c);
	}
	return busy ? UST_POLLER_BUSY : UST_POLLER_IDLE;
}

/* ---- accepting ---------------------------------------------------------- */

static void refuse_connection(int fd)
{
	char msg[96];
	json_t *resp;
	char *text;

	snprintf(msg, sizeof(msg), "too many RPC connections (limit %d)", RPC_MAX_CONNS);
	resp = ust_rpc_error_response(NULL, UST_JSONRPC_ERROR_INTERNAL_ERROR, msg);
	text = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
	if (text != NULL) {
		/* Best effort: a fresh socket buffer always takes this much. */
		if (send(fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT) >= 0) {
			send(fd, "\n", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		}
	}
	free(text);
	json_decref(resp);
	close(fd);
}

static bool accept_connections(void)
{
	bool busy = false;

	for (int i = 0; i < RPC_ACCEPT_PER_POLL; i++) {
		int fd = accept4(g_server.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct rpc_conn *c;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED) {
				continue;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				UST_ERRLOG("RPC accept failed: %s\n", strerror(errno));
			}
			break;
		}
		busy = true;
		if (g_server.nconns >= RPC_MAX_CONNS) {
			refuse_connection(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			UST_ERRLOG("out of memory accepting an RPC connection\n");
			close(fd);
			continue;
		}
		c->fd = fd;
		c->refs = 1;
		c->next = g_server.conns;
		g_server.conns = c;
		g_server.nconns++;
	}
	return busy;
}

/* Unlink and release closed connections; only outside the iteration. */
static void reap_connections(bool all)
{
	struct rpc_conn **pos = &g_server.conns;

	while (*pos != NULL) {
		struct rpc_conn *c = *pos;

		if (all) {
			conn_kill(c);
		}
		if (c->dead) {
			*pos = c->next;
			g_server.nconns--;
			conn_put(c);
		} else {
			pos = &c->next;
		}
	}
}

static void server_teardown(void)
{
	reap_connections(true);
	ust_poller_unregister(&g_server.poller);
	g_server.listening = false;
	g_server.close_requested = false;
}

static int rpc_server_poll(void *arg);

/* Switch between the fast and the idle period (see RPC_IDLE_POLL_PERIOD_US). */
static void adapt_poll_period(bool active)
{
	uint64_t want;

	if (active) {
		g_server.idle_polls = 0;
		want = RPC_POLL_PERIOD_US;
	} else if (++g_server.idle_polls >= RPC_IDLE_POLLS_BEFORE_SLOW) {
		want = RPC_IDLE_POLL_PERIOD_US;
	} else {
		want = g_server.poll_period_us;
	}
	if (want == g_server.poll_period_us) {
		return;
	}
	struct ust_poller *p = ust_poller_register(rpc_server_poll, NULL, want, "rpc");

	if (p == NULL) {
		return; /* keep the current poller; the period is only a cost trade-off */
	}
	ust_poller_unregister(&g_server.poller);
	g_server.poller = p;
	g_server.poll_period_us = want;
}

static int rpc_server_poll(void *arg)
{
	int busy = UST_POLLER_IDLE;

	g_server.in_poll = true;
	if (accept_connections()) {
		busy = UST_POLLER_BUSY;
	}
	for (struct rpc_conn *c = g_server.conns; c != NULL && !g_server.close_requested;
	     c = c->next) {
		/* A handler may close this connection, never unlink it: the list
		 * is only changed by reap_connections() below. */
		if (conn_poll(c) == UST_POLLER_BUSY) {
			busy = UST_POLLER_BUSY;
		}
	}
	g_server.in_poll = false;
	if (g_server.close_requested) {
		server_teardown();
	} else {
		reap_connections(false);
		adapt_poll_period(busy == UST_POLLER_BUSY || g_server.conns != NULL);
	}
	return busy;
}

/* ---- listen / close ----------------------------------------------------- */

static int fill_address(const char *path, struct sockaddr_un *addr)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(addr->sun_path)) {
		return -ENAMETOOLONG;
	}
	strcpy(addr->sun_path, path);
	return 0;
}

/* 0 if path is free (or was a dead server's socket, now removed). */
static int claim_path(const char *path, const struct sockaddr_un *addr)
{
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) != 0) {
		return errno == ENOENT ? 0 : -errno;
	}
	if (!S_ISSOCK(st.st_mode)) {
		UST_ERRLOG("RPC socket path %s exists and is not a socket\n", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	rc = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
	rc = rc == 0 ? 0 : -errno;
	close(fd);
	if (rc == 0 || rc == -EAGAIN || rc == -EINPROGRESS) {
		/* Someone accepts (or has a full backlog): a live server. */
		UST_ERRLOG("RPC socket %s is in use by a running server\n", path);
		return -EADDRINUSE;
	}
	if (rc == -ECONNREFUSED) {
		UST_NOTICELOG("removing stale RPC socket %s\n", path);
		return unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
	}
	return rc == -ENOENT ? 0 : rc;
}

static int open_listener(const char *path, const struct sockaddr_un *addr)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int rc;

	if (fd < 0) {
		return -errno;
	}
	if (bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	/* Nobody can connect before listen(), so the mode is right in time. */
	if (chmod(path, 0600) != 0 || listen(fd, RPC_LISTEN_BACKLOG) != 0) {
		rc = -errno;
		unlink(path);
		close(fd);
		return rc;
	}
	return fd;
}

int ust_rpc_listen(const char *path)
{
	struct sockaddr_un addr;
	int rc, fd;

	if (path == NULL || path[0] == '\0') {
		return -EINVAL;
	}
	rc = fill_address(path, &addr);
	if (rc != 0) {
		UST_ERRLOG("RPC socket path too long: %s\n", path);
		return rc;
	}
	if (g_server.listening) {
		return strcmp(path, g_server.path) == 0 ? -EADDRINUSE : -EBUSY;
	}
	if (ust_get_thread() == NULL) {
		UST_ERRLOG("ust_rpc_listen() must be called on an ust_thread\n");
		return -EINVAL;
	}
	rc = claim_path(path, &addr);
	if (rc != 0) {
		return rc;
	}
	fd = open_listener(path, &addr);
	if (fd < 0) {
		UST_ERRLOG("cannot listen on %s: %s\n", path, strerror(-fd));
		return fd;
	}
	g_server.poller = ust_poller_register(rpc_server_poll, NULL, RPC_POLL_PERIOD_US, "rpc");
	g_server.poll_period_us = RPC_POLL_PERIOD_US;
	g_server.idle_polls = 0;
	if (g_server.poller == NULL) {
		close(fd);
		unlink(path);
		return -ENOMEM;
	}
	g_server.fd = fd;
	strcpy(g_server.path, path);
	g_server.listening = true;
	g_server.nconns = 0;
	UST_INFOLOG("RPC server listening on %s\n", path);
	return 0;
}

void ust_rpc_close(void)
{
	if (!g_server.listening || g_server.fd < 0) {
		return;
	}
	close(g_server.fd);
	g_server.fd = -1;
	unlink(g_server.path);
	if (g_server.in_poll) {
		/* Called from a handler inside our poller: the poller finishes the
		 * job once it is out of its connection loop. */
		for (struct rpc_conn *c = g_server.conns; c != NULL; c = c->next) {
			conn_kill(c);
		}
		g_server.close_requested = true;
		return;
	}
	server_teardown();
}
