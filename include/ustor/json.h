/*
 * JSON helpers over jansson: decoding RPC parameters and config entries into
 * C structs with clear errors, and small writers.
 *
 * A decoder table names each key, where its value goes (offset into the
 * output struct) and how to convert it. Unknown keys, missing required keys
 * and wrong types are errors; the message names the key.
 */
#ifndef USTOR_JSON_H
#define USTOR_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Convert val into *out; return 0 or -EINVAL (or -ERANGE) without side effects. */
typedef int (*ust_json_decode_fn)(const json_t *val, void *out);

struct ust_json_object_decoder {
	const char *name;
	size_t offset;
	ust_json_decode_fn decode;
	bool optional;
};

#define UST_JSON_ERRBUF_SIZE 256

/*
 * Decode the members of obj with the table. On error returns -EINVAL and
 * writes a message naming the key into errbuf (if not NULL). What this call
 * decoded before the failure with ust_json_decode_string or
 * ust_json_decode_value is released and its field set to NULL, so a caller
 * may return at once or free its struct as usual; fields of other
 * (caller-written) decoders are the caller's to release.
 */
int ust_json_decode_object(const json_t *obj, const struct ust_json_object_decoder *decoders,
			   size_t count, void *out, char *errbuf, size_t errlen);

/* Decoders for the common types (out points at the field). */
/* char **: strdup'd (the previous value is overwritten, not freed) */
int ust_json_decode_string(const json_t *val, void *out);
int ust_json_decode_bool(const json_t *val, void *out);     /* bool * */
int ust_json_decode_int32(const json_t *val, void *out);    /* int32_t * */
int ust_json_decode_uint8(const json_t *val, void *out);    /* uint8_t * */
int ust_json_decode_uint16(const json_t *val, void *out);   /* uint16_t * */
int ust_json_decode_uint32(const json_t *val, void *out);   /* uint32_t * */
int ust_json_decode_uint64(const json_t *val, void *out);   /* uint64_t * */
int ust_json_decode_int64(const json_t *val, void *out);    /* int64_t * */
int ust_json_decode_double(const json_t *val, void *out);   /* double * */
/* Any JSON value: *out = json_incref(val) (json_t **). */
int ust_json_decode_value(const json_t *val, void *out);

/*
 * Parse text of len bytes (no NUL needed). Returns NULL and writes a message
 * with line and column into errbuf on malformed input.
 */
json_t *ust_json_parse(const char *text, size_t len, char *errbuf, size_t errlen);
/* Read and parse a whole file. */
json_t *ust_json_load_file(const char *path, char *errbuf, size_t errlen);
/* Write pretty-printed JSON to path atomically (temp file + rename). */
int ust_json_write_file(const char *path, const json_t *json);

#ifdef __cplusplus
}
#endif

#endif
