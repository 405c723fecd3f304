/* JSON-RPC calls for the unit tests (ut_rpc.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ustor/rpc.h"
#include "ut_rpc.h"
#include "ut_threads.h"

static void rpc_answered(void *ctx, json_t *response)
{
	*(json_t **)ctx = json_incref(response);
}

json_t *ut_rpc(const char *method, json_t *params)
{
	json_t *resp = NULL;

	assert_int_equal(ust_rpc_call_local(method, params, rpc_answered, &resp), 0);
	json_decref(params);
	ut_threads_poll();
	assert_non_null(resp);
	return resp;
}

json_t *ut_rpc_text(const char *method, const char *params_text)
{
	return ut_rpc(method, params_text != NULL ? json_loads(params_text, 0, NULL) : NULL);
}

int ut_rpc_error_code(json_t *resp)
{
	json_t *err = json_object_get(resp, "error");

	return err != NULL ? (int)json_integer_value(json_object_get(err, "code")) : 0;
}

int ut_rpc_text_error(const char *method, const char *params_text)
{
	json_t *r = ut_rpc_text(method, params_text);
	int code = ut_rpc_error_code(r);

	json_decref(r);
	return code;
}
