/*
 * Unit tests for core/rpc_server.c over a real UNIX socket. The test drives
 * the app thread by hand (ust_thread_poll) while clients talk to the server
 * through non-blocking sockets, or from a pthread where a client must block.
 *
 * Covers: requests split byte by byte, several in one write, garbage then a
 * new connection, oversized requests, half-close, truncated input at EOF,
 * clients that vanish with a request in flight, answers from another OS
 * thread, 25 concurrent clients, socket mode 0600, a second server on the
 * same path, stale socket files, non-socket files, and ust_rpc_close() both
 * from outside and from inside a handler.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ustor/log.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"

static struct ust_thread *g_thread;
static char g_dir[64];
static char g_path[128];

/* ---- test methods ------------------------------------------------------- */

static void rpc_srv_echo(struct ust_rpc_request *req, const json_t *params)
{
	ust_rpc_send_result(req, params ? json_deep_copy(params) : json_null());
}
UST_RPC_REGISTER("srv_echo", rpc_srv_echo, UST_RPC_STARTUP | UST_RPC_RUNTIME)

static struct ust_rpc_request *g_pending;

static void rpc_srv_hold(struct ust_rpc_request *req, const json_t *params)
{
	g_pending = req;
}
UST_RPC_REGISTER("srv_hold", rpc_srv_hold, UST_RPC_STARTUP | UST_RPC_RUNTIME)

static void *answer_later(void *arg)
{
	usleep(2000);
	ust_rpc_send_result(arg, json_string("from worker"));
	return NULL;
}

static void rpc_srv_worker(struct ust_rpc_request *req, const json_t *params)
{
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, answer_later, req), 0);
	pthread_detach(t);
}
UST_RPC_REGISTER("srv_worker", rpc_srv_worker, UST_RPC_STARTUP | UST_RPC_RUNTIME)

static void rpc_srv_close(struct ust_rpc_request *req, const json_t *params)
{
	ust_rpc_close();
	ust_rpc_send_bool(req, true);
}
UST_RPC_REGISTER("srv_close", rpc_srv_close, UST_RPC_STARTUP | UST_RPC_RUNTIME)

/* ---- helpers ------------------------------------------------------------ */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void poll_server(int rounds)
{
	for (int i = 0; i < rounds; i++) {
		ust_thread_poll(g_thread, 0, 0);
		usleep(200);
	}
}

static int connect_client(const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	strcpy(addr.sun_path, path);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static void send_all(int fd, const char *text, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, text, len, MSG_NOSIGNAL);

		assert_true(n > 0);
		text += n;
		len -= (size_t)n;
	}
}

/*
 * Poll the server until fd has delivered one line (returned, without the
 * newline; caller frees) or EOF (NULL, *eof set). Fails after 60 s.
 */
struct reader {
	char buf[65536];
	size_t len;
};

static char *read_line(int fd, struct reader *r, bool *eof)
{
	uint64_t deadline = now_ms() + 60000; /* a hang guard, not a timing test */

	*eof = false;
	for (;;) {
		char *nl = memchr(r->buf, '\n', r->len);

		if (nl != NULL) {
			size_t n = (size_t)(nl - r->buf);
			char *line = strndup(r->buf, n);

			memmove(r->buf, nl + 1, r->len - n - 1);
			r->len -= n + 1;
			return line;
		}
		ssize_t got = recv(fd, r->buf + r->len, sizeof(r->buf) - r->len - 1, MSG_DONTWAIT);

		if (got == 0 || (got < 0 && errno == ECONNRESET)) {
			*eof = true;
			return NULL;
		}
		if (got > 0) {
			r->len += (size_t)got;
			continue;
		}
		assert_true(errno == EAGAIN);
		if (now_ms() > deadline) {
			fail_msg("no response within 60 s");
		}
		poll_server(1);
	}
}

static json_t *read_response(int fd, struct reader *r)
{
	bool eof;
	char *line = read_line(fd, r, &eof);
	json_t *v;

	if (line == NULL) {
		fail_msg("connection closed instead of a response");
	}
	v = json_loads(line, 0, NULL);
	assert_non_null(v);
	free(line);
	return v;
}

static void expect_eof(int fd, struct reader *r)
{
	bool eof;
	char *line = read_line(fd, r, &eof);

	if (line != NULL) {
		fail_msg("unexpected data '%s' instead of EOF", line);
	}
	assert_true(eof);
}

static int error_code(const json_t *resp)
{
	return (int)json_integer_value(json_object_get(json_object_get(resp, "error"), "code"));
}

static json_t *roundtrip(int fd, const char *text)
{
	struct reader *r = calloc(1, sizeof(*r));
	json_t *v;

	send_all(fd, text, strlen(text));
	v = read_response(fd, r);
	assert_int_equal(r->len, 0);
	free(r);
	return v;
}

static const char *g_echo = "{\"jsonrpc\":\"2.0\",\"method\":\"srv_echo\","
			    "\"params\":{\"x\":\"y z\"},\"id\":7}";

static void assert_echo(const json_t *resp, int id)
{
	assert_int_equal(json_integer_value(json_object_get(resp, "id")), id);
	assert_string_equal(json_string_value(json_object_get(json_object_get(resp, "result"), "x")),
			    "y z");
}

static int setup(void **state)
{
	if (ust_thread_lib_init(NULL) != 0) {
		return -1;
	}
	g_thread = ust_thread_create("app", NULL);
	if (g_thread == NULL) {
		return -1;
	}
	ust_set_thread(g_thread);
	ust_log_set_print_level(UST_LOG_WARN);
	strcpy(g_dir, "/tmp/ustor_rpc_srv.XXXXXX");
	if (mkdtemp(g_dir) == NULL) {
		return -1;
	}
	snprintf(g_path, sizeof(g_path), "%s/rpc.sock", g_dir);
	return ust_rpc_listen(g_path);
}

static int teardown(void **state)
{
	ust_rpc_close();
	if (access(g_path, F_OK) == 0) {
		return -1; /* close must remove the socket file */
	}
	poll_server(5);
	ust_thread_exit(g_thread);
	for (int i = 0; i < 100 && !ust_thread_is_exited(g_thread); i++) {
		ust_thread_poll(g_thread, 0, 0);
	}
	if (!ust_thread_is_exited(g_thread)) {
		return -1;
	}
	ust_thread_destroy(g_thread);
	ust_set_thread(NULL);
	ust_thread_lib_fini();
	rmdir(g_dir);
	ust_log_set_print_level(UST_LOG_NOTICE);
	return 0;
}

/* ---- tests -------------------------------------------------------------- */

static void test_basic_and_mode(void **state)
{
	struct stat st;
	int fd = connect_client(g_path);
	json_t *r = roundtrip(fd, g_echo);

	assert_echo(r, 7);
	json_decref(r);
	assert_int_equal(stat(g_path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	close(fd);
}

static void test_split_byte_by_byte(void **state)
{
	struct reader r = {0};
	int fd = connect_client(g_path);
	json_t *resp;
	/* Escapes and brackets inside strings must not confuse the scanner. */
	const char *text = "{\"jsonrpc\":\"2.0\",\"method\":\"srv_echo\",\"params\":"
			   "{\"x\":\"y z\",\"tricky\":\"}]\\\"{[\\\\\","
			   "\"n\":[true,false,null,-1.5e+3,\"\\u00e9\xc3\xa9\"]},\"id\":3}";

	for (size_t i = 0; i < strlen(text); i++) {
		send_all(fd, text + i, 1);
		poll_server(1);
		if (i + 1 < strlen(text)) {
			char c;

			assert_int_equal(recv(fd, &c, 1, MSG_DONTWAIT), -1);
			assert_int_equal(errno, EAGAIN);
		}
	}
	resp = read_response(fd, &r);
	assert_echo(resp, 3);
	assert_string_equal(json_string_value(json_object_get(json_object_get(resp, "result"),
								"tricky")),
			    "}]\"{[\\");
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(json_object_get(resp, "result"), "n"), 4)),
			    "\xc3\xa9\xc3\xa9");
	json_decref(resp);
	close(fd);
}

static void test_two_requests_one_write(void **state)
{
	struct reader r = {0};
	int fd = connect_client(g_path);
	char text[512];
	json_t *a, *b, *c;

	/* Two objects back to back, then a batch split in the middle. */
	snprintf(text, sizeof(text),
		 "%s\n%s[{\"jsonrpc\":\"2.0\",\"method\":\"srv_echo\",\"params\":{\"x\":\"y z\"},",
		 g_echo, g_echo);
	send_all(fd, text, strlen(text));
	a = read_response(fd, &r);
	b = read_response(fd, &r);
	assert_echo(a, 7);
	assert_echo(b, 7);
	send_all(fd, "\"id\":9}]", 8);
	c = read_response(fd, &r);
	assert_true(json_is_array(c));
	assert_echo(json_array_get(c, 0), 9);
	json_decref(a);
	json_decref(b);
	json_decref(c);
	close(fd);
}

static void test_garbage_then_new_connection(void **state)
{
	static const char *const garbage[] = {
		"hello world\n",
		"{\"jsonrpc\":\"2.0\",\"method\":\"srv_echo\",}",
		"}",
		"{\"a\":1]",
		/* Refused at once, without waiting for a closing brace. */
		"{bad",
		"[12x",
	};

	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		struct reader r = {0};
		int fd = connect_client(g_path);
		json_t *resp;

		/* A good request first: it is still answered before the error. */
		send_all(fd, g_echo, strlen(g_echo));
		send_all(fd, garbage[i], strlen(garbage[i]));
		resp = read_response(fd, &r);
		assert_echo(resp, 7);
		json_decref(resp);
		resp = read_response(fd, &r);
		assert_int_equal(error_code(resp), UST_JSONRPC_ERROR_PARSE_ERROR);
		assert_true(json_is_null(json_object_get(resp, "id")));
		json_decref(resp);
		expect_eof(fd, &r);
		close(fd);
	}
	{
		int fd = connect_client(g_path);
		json_t *resp = roundtrip(fd, g_echo);

		assert_echo(resp, 7);
		json_decref(resp);
		close(fd);
	}
}

static void test_scalars_and_eof(void **state)
{
	struct reader r = {0};
	int fd = connect_client(g_path);
	json_t *resp;

	/* A number is a value (an invalid request) once its end is known. */
	send_all(fd, "42", 2);
	poll_server(3);
	shutdown(fd, SHUT_WR);
	resp = read_response(fd, &r);
	assert_int_equal(error_code(resp), UST_JSONRPC_ERROR_INVALID_REQUEST);
	json_decref(resp);
	expect_eof(fd, &r);
	close(fd);

	/* Half-close after a full request: still answered, then closed. */
	fd = connect_client(g_path);
	memset(&r, 0, sizeof(r));
	send_all(fd, g_echo, strlen(g_echo));
	shutdown(fd, SHUT_WR);
	resp = read_response(fd, &r);
	assert_echo(resp, 7);
	json_decref(resp);
	expect_eof(fd, &r);
	close(fd);

	/* EOF in the middle of a request is a parse error. */
	fd = connect_client(g_path);
	memset(&r, 0, sizeof(r));
	send_all(fd, g_echo, 20);
	shutdown(fd, SHUT_WR);
	resp = read_response(fd, &r);
	assert_int_equal(error_code(resp), UST_JSONRPC_ERROR_PARSE_ERROR);
	json_decref(resp);
	expect_eof(fd, &r);
	close(fd);
}

struct big_sender {
	int fd;
	size_t len;
};

static void *send_big(void *arg)
{
	struct big_sender *s = arg;
	size_t chunk = 1 << 20, sent = 0;
	char *buf = malloc(chunk);

	memset(buf, ' ', chunk);
	buf[0] = '[';
	while (sent < s->len) {
		ssize_t n = send(s->fd, buf, chunk, MSG_NOSIGNAL);

		if (n <= 0) {
			break; /* the server closed on us: expected */
		}
		buf[0] = ' ';
		sent += (size_t)n;
	}
	free(buf);
	return NULL;
}

static void test_oversized_request(void **state)
{
	struct big_sender s = {.len = 40u << 20};
	struct reader r = {0};
	pthread_t t;
	json_t *resp;

	s.fd = connect_client(g_path);
	assert_int_equal(pthread_create(&t, NULL, send_big, &s), 0);
	resp = read_response(s.fd, &r);
	assert_int_equal(error_code(resp), UST_JSONRPC_ERROR_INVALID_REQUEST);
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(resp, "error"),
								   "message")),
			       "exceeds the limit"));
	json_decref(resp);
	expect_eof(s.fd, &r);
	pthread_join(t, NULL);
	close(s.fd);
}

static void test_disconnect_with_pending(void **state)
{
	int fd = connect_client(g_path);
	const char *hold = "{\"jsonrpc\":\"2.0\",\"method\":\"srv_hold\",\"id\":1}";
	uint64_t deadline = now_ms() + 60000; /* a hang guard, not a timing test */
	json_t *resp;

	g_pending = NULL;
	send_all(fd, hold, strlen(hold));
	while (g_pending == NULL && now_ms() < deadline) {
		poll_server(1);
	}
	assert_non_null(g_pending);
	close(fd);
	poll_server(10);
	/* The answer has nowhere to go and is dropped. */
	ust_rpc_send_bool(g_pending, true);
	g_pending = NULL;
	poll_server(10);

	/* Same again, but the server closes before the answer comes. */
	fd = connect_client(g_path);
	send_all(fd, hold, strlen(hold));
	while (g_pending == NULL && now_ms() < deadline) {
		poll_server(1);
	}
	assert_non_null(g_pending);
	close(fd);
	fd = connect_client(g_path);
	resp = roundtrip(fd, g_echo);
	assert_echo(resp, 7);
	json_decref(resp);
	close(fd);
	ust_rpc_close();
	ust_rpc_send_bool(g_pending, true);
	g_pending = NULL;
	assert_int_equal(ust_rpc_listen(g_path), 0);
}

static void test_answer_from_worker_thread(void **state)
{
	int fd = connect_client(g_path);
	json_t *resp = roundtrip(fd, "{\"jsonrpc\":\"2.0\",\"method\":\"srv_worker\",\"id\":5}");

	assert_string_equal(json_string_value(json_object_get(resp, "result")), "from worker");
	assert_int_equal(json_integer_value(json_object_get(resp, "id")), 5);
	json_decref(resp);
	close(fd);
}

#define NCLIENTS 25

static void test_many_clients(void **state)
{
	static struct reader readers[NCLIENTS];
	int fds[NCLIENTS];
	char text[256];

	for (int i = 0; i < NCLIENTS; i++) {
		fds[i] = connect_client(g_path);
		assert_true(fds[i] >= 0);
		memset(&readers[i], 0, sizeof(readers[i]));
	}
	/* Everyone sends before anyone is served. */
	for (int i = 0; i < NCLIENTS; i++) {
		snprintf(text, sizeof(text),
			 "{\"jsonrpc\":\"2.0\",\"method\":\"srv_echo\",\"params\":{\"x\":\"y z\"},"
			 "\"id\":%d}",
			 100 + i);
		send_all(fds[i], text, strlen(text));
	}
	for (int i = NCLIENTS - 1; i >= 0; i--) {
		json_t *resp = read_response(fds[i], &readers[i]);

		assert_echo(resp, 100 + i);
		json_decref(resp);
		close(fds[i]);
	}
}

static void test_listen_conflicts(void **state)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	char other[160];
	struct stat st;
	int fd, raw;
	json_t *resp;

	/* Our own live server on the same path. */
	assert_int_equal(ust_rpc_listen(g_path), -EADDRINUSE);
	ust_rpc_close();

	/* Someone else's live server. */
	raw = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(addr.sun_path, g_path);
	assert_int_equal(bind(raw, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(raw, 4), 0);
	assert_int_equal(ust_rpc_listen(g_path), -EADDRINUSE);
	assert_int_equal(access(g_path, F_OK), 0);
	/* It dies without removing its socket: the file is stale now. */
	close(raw);
	assert_int_equal(ust_rpc_listen(g_path), 0);
	fd = connect_client(g_path);
	resp = roundtrip(fd, g_echo);
	assert_echo(resp, 7);
	json_decref(resp);
	close(fd);

	/* A regular file is never removed. */
	snprintf(other, sizeof(other), "%s/file", g_dir);
	fd = open(other, O_CREAT | O_WRONLY, 0644);
	close(fd);
	ust_rpc_close();
	assert_int_equal(ust_rpc_listen(other), -EEXIST);
	assert_int_equal(stat(other, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	unlink(other);

	assert_int_equal(ust_rpc_listen(""), -EINVAL);
	memset(other, 'a', sizeof(other) - 1);
	other[sizeof(other) - 1] = '\0';
	assert_int_equal(ust_rpc_listen(other), -ENAMETOOLONG);
	snprintf(other, sizeof(other), "%s/no/such/dir.sock", g_dir);
	assert_int_equal(ust_rpc_listen(other), -ENOENT);

	assert_int_equal(ust_rpc_listen(g_path), 0);
	snprintf(other, sizeof(other), "%s/second.sock", g_dir);
	assert_int_equal(ust_rpc_listen(other), -EBUSY);
}

static void test_close_drops_connections(void **state)
{
	static const char *g_close = "{\"jsonrpc\":\"2.0\",\"method\":\"srv_close\",\"id\":1}";
	struct reader r = {0};
	int fd = connect_client(g_path);
	json_t *resp = roundtrip(fd, g_echo);

	json_decref(resp);
	ust_rpc_close();
	assert_int_equal(access(g_path, F_OK), -1);
	expect_eof(fd, &r);
	close(fd);
	assert_int_equal(connect_client(g_path), -ENOENT);

	/* Closing from inside a handler. */
	assert_int_equal(ust_rpc_listen(g_path), 0);
	fd = connect_client(g_path);
	memset(&r, 0, sizeof(r));
	send_all(fd, g_close, strlen(g_close));
	expect_eof(fd, &r);
	close(fd);
	assert_int_equal(access(g_path, F_OK), -1);
	assert_int_equal(ust_rpc_listen(g_path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_basic_and_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split_byte_by_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_requests_one_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_then_new_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scalars_and_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_with_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_answer_from_worker_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_conflicts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_drops_connections, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
