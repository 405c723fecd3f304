/*
 * JSON-RPC 2.0 server and method registry.
 *
 * The server listens on a UNIX socket (default /var/tmp/ustor.sock, mode
 * 0600) and is polled on the app thread; it accepts many clients, reads
 * partial and large requests, and answers malformed or oversized input with
 * a JSON-RPC error. Handlers run on the app thread and may answer later
 * (asynchronously) from any thread: the reply is carried back by message.
 *
 * Every request gets exactly one answer: a handler must call one of the
 * ust_rpc_send_* functions exactly once (notifications' answers are dropped).
 */
#ifndef USTOR_RPC_H
#define USTOR_RPC_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "ustor/json.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UST_DEFAULT_RPC_ADDR "/var/tmp/ustor.sock"

/* JSON-RPC 2.0, section 5.1 */
#define UST_JSONRPC_ERROR_PARSE_ERROR -32700
#define UST_JSONRPC_ERROR_INVALID_REQUEST -32600
#define UST_JSONRPC_ERROR_METHOD_NOT_FOUND -32601
#define UST_JSONRPC_ERROR_INVALID_PARAMS -32602
#define UST_JSONRPC_ERROR_INTERNAL_ERROR -32603
/* Implementation-defined server errors (-32000 to -32099). */
#define UST_JSONRPC_ERROR_INVALID_STATE -32000

/* When a method may be called. */
#define UST_RPC_STARTUP 0x1 /* while the config is replayed, before start-up ends */
#define UST_RPC_RUNTIME 0x2 /* once start-up is complete */

struct ust_rpc_request;
typedef void (*ust_rpc_method_fn)(struct ust_rpc_request *req, const json_t *params);

void ust_rpc_register_method(const char *method, ust_rpc_method_fn fn, uint32_t state_mask);
/* An older name kept working: calls warn once, then run method. */
void ust_rpc_register_alias_deprecated(const char *method, const char *alias);
bool ust_rpc_method_exists(const char *method);

#define UST_RPC_REGISTER(METHOD, FN, MASK)                                                 \
	__attribute__((constructor)) static void ust_rpc_register_##FN(void)               \
	{                                                                                   \
		ust_rpc_register_method(METHOD, FN, MASK);                                  \
	}
#define UST_RPC_REGISTER_ALIAS_DEPRECATED(METHOD, ALIAS)                                   \
	__attribute__((constructor)) static void ust_rpc_register_alias_##ALIAS(void)      \
	{                                                                                   \
		ust_rpc_register_alias_deprecated(METHOD, #ALIAS);                          \
	}

/* Answer with result (reference stolen). */
void ust_rpc_send_result(struct ust_rpc_request *req, json_t *result);
void ust_rpc_send_bool(struct ust_rpc_request *req, bool value);
void ust_rpc_send_error(struct ust_rpc_request *req, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Error from a negative errno: INVALID_PARAMS for -EINVAL, else INTERNAL_ERROR,
 * message strerror(). */
void ust_rpc_send_errno(struct ust_rpc_request *req, int neg_errno);
const char *ust_rpc_request_get_method(const struct ust_rpc_request *req);

/*
 * Decode params (may be NULL when every key is optional) into out. On error
 * answers the request with INVALID_PARAMS naming the key and returns false.
 */
bool ust_rpc_decode_params(struct ust_rpc_request *req, const json_t *params,
			   const struct ust_json_object_decoder *decoders, size_t count, void *out);

/* Current state (UST_RPC_STARTUP or UST_RPC_RUNTIME). */
void ust_rpc_set_state(uint32_t state);
uint32_t ust_rpc_get_state(void);

/* ---- server (app thread) ------------------------------------------------ */

/*
 * Start serving on path; call on the app thread (the server is a poller on
 * the calling ust_thread). -EADDRINUSE if a live server owns path, -EEXIST if
 * path is some other kind of file, -EBUSY if already serving elsewhere. A
 * stale socket file left by a dead server is replaced.
 */
int ust_rpc_listen(const char *path);
/* Stop serving, close every connection and remove the socket file. */
void ust_rpc_close(void);

/* ---- local calls (config replay, tests) --------------------------------- */

/*
 * Called with the complete response object ({"jsonrpc","id","result"|"error"})
 * on the calling thread. The response is borrowed: valid until cb returns
 * (json_incref it to keep it). cb may run before ust_rpc_call_local returns.
 */
typedef void (*ust_rpc_local_cb)(void *ctx, json_t *response);
/* Call method with params (reference borrowed) as if a client had. */
int ust_rpc_call_local(const char *method, const json_t *params, ust_rpc_local_cb cb, void *ctx);

/*
 * Process one raw request buffer (a JSON-RPC request or batch) exactly as the
 * socket server does; responses (if any) are passed to cb as text (NUL
 * terminated, without trailing newline) on the calling thread. For tests and
 * for other transports.
 */
typedef void (*ust_rpc_raw_cb)(void *ctx, const char *response, size_t len);
void ust_rpc_process_raw(const char *buf, size_t len, ust_rpc_raw_cb cb, void *ctx);

#ifdef __cplusplus
}
#endif

#endif
