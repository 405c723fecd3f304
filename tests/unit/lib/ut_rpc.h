/*
 * JSON-RPC calls for the unit tests, made in-process (ust_rpc_call_local)
 * on hand-polled threads (ut_threads.h): each call polls until its answer
 * came and fails the test if none did.
 */
#ifndef USTOR_UT_RPC_H
#define USTOR_UT_RPC_H

#include <jansson.h>

/* Call method with params (its reference is taken; NULL: none); the whole response, to decref. */
json_t *ut_rpc(const char *method, json_t *params);
/* ut_rpc with params given as JSON text (NULL: none). */
json_t *ut_rpc_text(const char *method, const char *params_text);
/* The response's error code; 0 for a result. */
int ut_rpc_error_code(json_t *resp);
/* ut_rpc_text, answered: its error code (0 for a result); the response is freed. */
int ut_rpc_text_error(const char *method, const char *params_text);

#endif
