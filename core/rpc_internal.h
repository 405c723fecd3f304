/*
 * Private interface between the JSON-RPC pieces in core/: the dispatcher
 * (rpc.c), the UNIX socket server (rpc_server.c) and the built-in methods
 * (rpc_log.c).
 */
#ifndef USTOR_CORE_RPC_INTERNAL_H
#define USTOR_CORE_RPC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Largest single request (or batch) accepted, in bytes of JSON text. */
#define UST_RPC_MAX_REQUEST_SIZE (32u * 1024 * 1024)

/*
 * Receives the response to one parsed value: an object, a batch array, or
 * NULL when nothing is due (notifications). The callee owns the response.
 * Always called on the thread that called ust_rpc_handle_value().
 */
typedef void (*ust_rpc_done_fn)(void *ctx, json_t *response);

/*
 * Handle one parsed JSON value (a request or a batch; value is borrowed).
 * done is called exactly once, possibly before this returns, possibly much
 * later when an asynchronous handler answers.
 */
void ust_rpc_handle_value(const json_t *value, ust_rpc_done_fn done, void *ctx);

/* {"jsonrpc":"2.0","id":id,"error":{"code":code,"message":message}}; id NULL
 * means JSON null. Never returns NULL unless memory runs out. */
json_t *ust_rpc_error_response(const json_t *id, int code, const char *message);

/* Visit every registered name in sorted order. */
struct ust_rpc_method_info {
	const char *name;
	const char *alias_of; /* NULL for a method, the new name for an alias */
	bool valid_now;       /* callable in the current state */
};
void ust_rpc_foreach_method(void (*fn)(void *ctx, const struct ust_rpc_method_info *info),
			    void *ctx);

/* Defined by rpc_log.c; rpc.c refers to it so the built-in methods link. */
extern const int ust_rpc_builtin_methods_anchor;

#endif
