/*
 * Unit tests for core/json.c: every scalar decoder on valid values, wrong
 * types and range edges; object decoding with unknown, missing and mistyped
 * keys (exact messages); parse errors with line and column; file loading and
 * the atomic writer.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include <cmocka.h>

#include "ustor/json.h"

static json_t *parse(const char *text)
{
	char err[UST_JSON_ERRBUF_SIZE];
	json_t *v = ust_json_parse(text, strlen(text), err, sizeof(err));

	if (v == NULL) {
		fail_msg("parse '%s': %s", text, err);
	}
	return v;
}

/* Runs decoder on the JSON text; returns its rc. */
static int decode_text(ust_json_decode_fn fn, const char *text, void *out)
{
	json_t *v = parse(text);
	int rc = fn(v, out);

	json_decref(v);
	return rc;
}

static void test_uint32(void **state)
{
	uint32_t v = 7;

	assert_int_equal(decode_text(ust_json_decode_uint32, "0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(decode_text(ust_json_decode_uint32, "4294967295", &v), 0);
	assert_int_equal(v, UINT32_MAX);
	v = 7;
	assert_int_equal(decode_text(ust_json_decode_uint32, "4294967296", &v), -ERANGE);
	assert_int_equal(decode_text(ust_json_decode_uint32, "-1", &v), -ERANGE);
	assert_int_equal(decode_text(ust_json_decode_uint32, "1.0", &v), -EINVAL);
	assert_int_equal(decode_text(ust_json_decode_uint32, "true", &v), -EINVAL);
	assert_int_equal(decode_text(ust_json_decode_uint32, "\"5\"", &v), -EINVAL);
	assert_int_equal(decode_text(ust_json_decode_uint32, "null", &v), -EINVAL);
	assert_int_equal(decode_text(ust_json_decode_uint32, "[1]", &v), -EINVAL);
	/* Failures leave the output untouched. */
	assert_int_equal(v, 7);
}

static void test_small_unsigned(void **state)
{
	uint8_t u8 = 1;
	uint16_t u16 = 1;

	assert_int_equal(decode_text(ust_json_decode_uint8, "255", &u8), 0);
	assert_int_equal(u8, 255);
	assert_int_equal(decode_text(ust_json_decode_uint8, "256", &u8), -ERANGE);
	assert_int_equal(decode_text(ust_json_decode_uint8, "-1", &u8), -ERANGE);
	assert_int_equal(u8, 255);
	assert_int_equal(decode_text(ust_json_decode_uint16, "65535", &u16), 0);
	assert_int_equal(u16, 65535);
	assert_int_equal(decode_text(ust_json_decode_uint16, "65536", &u16), -ERANGE);
	assert_int_equal(decode_text(ust_json_decode_uint16, "false", &u16), -EINVAL);
}

static void test_signed_and_64(void **state)
{
	int32_t i32 = 0;
	int64_t i64 = 0;
	uint64_t u64 = 0;

	assert_int_equal(decode_text(ust_json_decode_int32, "-2147483648", &i32), 0);
	assert_int_equal(i32, INT32_MIN);
	assert_int_equal(decode_text(ust_json_decode_int32, "2147483647", &i32), 0);
	assert_int_equal(i32, INT32_MAX);
	assert_int_equal(decode_text(ust_json_decode_int32, "2147483648", &i32), -ERANGE);
	assert_int_equal(decode_text(ust_json_decode_int32, "-2147483649", &i32), -ERANGE);

	assert_int_equal(decode_text(ust_json_decode_int64, "-9223372036854775808", &i64), 0);
	assert_true(i64 == INT64_MIN);
	assert_int_equal(decode_text(ust_json_decode_uint64, "9223372036854775807", &u64), 0);
	assert_true(u64 == (uint64_t)INT64_MAX);
	assert_int_equal(decode_text(ust_json_decode_uint64, "-1", &u64), -ERANGE);
	assert_int_equal(decode_text(ust_json_decode_uint64, "1e3", &u64), -EINVAL);
	assert_true(u64 == (uint64_t)INT64_MAX);
}

static void test_bool_double_string_value(void **state)
{
	bool b = false;
	double d = 0;
	char *s = NULL;
	json_t *v = NULL;

	assert_int_equal(decode_text(ust_json_decode_bool, "true", &b), 0);
	assert_true(b);
	assert_int_equal(decode_text(ust_json_decode_bool, "1", &b), -EINVAL);
	assert_int_equal(decode_text(ust_json_decode_bool, "\"true\"", &b), -EINVAL);

	assert_int_equal(decode_text(ust_json_decode_double, "1.5", &d), 0);
	assert_true(d == 1.5);
	assert_int_equal(decode_text(ust_json_decode_double, "3", &d), 0);
	assert_true(d == 3.0);
	assert_int_equal(decode_text(ust_json_decode_double, "\"3\"", &d), -EINVAL);

	assert_int_equal(decode_text(ust_json_decode_string, "\"Malloc0\"", &s), 0);
	assert_string_equal(s, "Malloc0");
	free(s);
	s = NULL;
	assert_int_equal(decode_text(ust_json_decode_string, "\"x\"", &s), 0);
	assert_string_equal(s, "x");
	assert_int_equal(decode_text(ust_json_decode_string, "5", &s), -EINVAL);
	assert_int_equal(decode_text(ust_json_decode_string, "null", &s), -EINVAL);
	assert_string_equal(s, "x");
	free(s);

	assert_int_equal(decode_text(ust_json_decode_value, "{\"a\":[1,2]}", &v), 0);
	assert_true(json_is_object(v));
	assert_int_equal(json_array_size(json_object_get(v, "a")), 2);
	json_decref(v);
}

static void test_string_with_nul_rejected(void **state)
{
	json_t *v = json_stringn("a\0b", 3);
	char *s = NULL;

	assert_int_equal(ust_json_decode_string(v, &s), -EINVAL);
	assert_null(s);
	json_decref(v);
}

struct create_params {
	char *name;
	uint64_t num_blocks;
	uint32_t block_size;
	bool readonly;
	json_t *extra;
};

static const struct ust_json_object_decoder g_create_decoders[] = {
	{"name", offsetof(struct create_params, name), ust_json_decode_string, false},
	{"num_blocks", offsetof(struct create_params, num_blocks), ust_json_decode_uint64, false},
	{"block_size", offsetof(struct create_params, block_size), ust_json_decode_uint32, false},
	{"readonly", offsetof(struct create_params, readonly), ust_json_decode_bool, true},
	{"extra", offsetof(struct create_params, extra), ust_json_decode_value, true},
};
#define NDEC (sizeof(g_create_decoders) / sizeof(g_create_decoders[0]))

static int decode_create(const char *text, struct create_params *p, char *err)
{
	json_t *v = parse(text);
	int rc;

	memset(p, 0, sizeof(*p));
	err[0] = '\0';
	rc = ust_json_decode_object(v, g_create_decoders, NDEC, p, err, UST_JSON_ERRBUF_SIZE);
	json_decref(v);
	return rc;
}

static void free_create(struct create_params *p)
{
	free(p->name);
	json_decref(p->extra);
}

static void test_object_valid(void **state)
{
	char err[UST_JSON_ERRBUF_SIZE];
	struct create_params p;

	assert_int_equal(decode_create("{\"name\":\"Malloc0\",\"num_blocks\":65536,"
				       "\"block_size\":4096}",
				       &p, err),
			 0);
	assert_string_equal(p.name, "Malloc0");
	assert_true(p.num_blocks == 65536);
	assert_int_equal(p.block_size, 4096);
	assert_false(p.readonly);
	assert_null(p.extra);
	free_create(&p);

	assert_int_equal(decode_create("{\"readonly\":true,\"name\":\"a\",\"num_blocks\":1,"
				       "\"block_size\":512,\"extra\":[1]}",
				       &p, err),
			 0);
	assert_true(p.readonly);
	assert_true(json_is_array(p.extra));
	free_create(&p);
}

static void test_object_errors(void **state)
{
	char err[UST_JSON_ERRBUF_SIZE];
	struct create_params p;

	assert_int_equal(decode_create("{\"name\":\"a\",\"num_blocks\":1,\"block_size\":512,"
				       "\"foo\":1}",
				       &p, err),
			 -EINVAL);
	assert_string_equal(err, "unknown key 'foo'");
	/* Unknown keys are found before anything is decoded. */
	assert_null(p.name);

	assert_int_equal(decode_create("{\"num_blocks\":1,\"block_size\":512}", &p, err), -EINVAL);
	assert_string_equal(err, "missing key 'name'");
	free_create(&p);

	assert_int_equal(decode_create("{\"name\":\"a\",\"num_blocks\":\"big\",\"block_size\":512}",
				       &p, err),
			 -EINVAL);
	assert_string_equal(err, "key 'num_blocks': expected unsigned 64-bit integer");
	free_create(&p);

	assert_int_equal(decode_create("{\"name\":\"a\",\"num_blocks\":1,\"block_size\":4294967296}",
				       &p, err),
			 -EINVAL);
	assert_string_equal(err,
			    "key 'block_size': value 4294967296 out of range for unsigned 32-bit "
			    "integer");
	free_create(&p);

	assert_int_equal(decode_create("{\"name\":\"a\",\"num_blocks\":1,\"block_size\":-1}", &p,
				       err),
			 -EINVAL);
	assert_string_equal(err, "key 'block_size': value -1 out of range for unsigned 32-bit "
				 "integer");
	free_create(&p);

	assert_int_equal(decode_create("{\"name\":\"a\",\"num_blocks\":1,\"block_size\":1,"
				       "\"readonly\":1}",
				       &p, err),
			 -EINVAL);
	assert_string_equal(err, "key 'readonly': expected boolean");
	free_create(&p);

	assert_int_equal(decode_create("[1,2]", &p, err), -EINVAL);
	assert_string_equal(err, "expected a JSON object");
}

/*
 * A failed decode releases what it decoded before the failure (strings,
 * values) and leaves NULL there, so a caller that returns at once leaks
 * nothing; a default the caller set for an absent key is not touched.
 */
static void test_object_error_releases(void **state)
{
	static const struct ust_json_object_decoder decs[] = {
		{"extra", offsetof(struct create_params, extra), ust_json_decode_value, true},
		{"name", offsetof(struct create_params, name), ust_json_decode_string, true},
		{"num_blocks", offsetof(struct create_params, num_blocks), ust_json_decode_uint64, false},
	};
	char err[UST_JSON_ERRBUF_SIZE];
	char dflt[] = "default";
	struct create_params p = {0};
	json_t *v;

	(void)state;
	v = parse("{\"extra\":{\"a\":[1,2]},\"name\":\"Malloc0\",\"num_blocks\":\"x\"}");
	assert_int_equal(ust_json_decode_object(v, decs, 3, &p, err, sizeof(err)), -EINVAL);
	assert_null(p.extra);
	assert_null(p.name);
	/* v still holds its members: only the decoded reference was dropped */
	assert_int_equal(json_array_size(json_object_get(json_object_get(v, "extra"), "a")), 2);
	json_decref(v);

	v = parse("{\"extra\":7}");
	p.name = dflt;
	assert_int_equal(ust_json_decode_object(v, decs, 3, &p, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "missing key 'num_blocks'");
	assert_null(p.extra);
	assert_ptr_equal(p.name, dflt);
	json_decref(v);
}

static int decode_even(const json_t *val, void *out)
{
	if (!json_is_integer(val) || json_integer_value(val) % 2 != 0) {
		return -EINVAL;
	}
	*(int *)out = (int)json_integer_value(val);
	return 0;
}

static void test_object_null_and_custom(void **state)
{
	static const struct ust_json_object_decoder opt[] = {
		{"n", 0, decode_even, true},
	};
	char err[UST_JSON_ERRBUF_SIZE];
	struct create_params p;
	json_t *v;
	int n = 0;

	/* NULL params: fine when all keys are optional, else names the key. */
	assert_int_equal(ust_json_decode_object(NULL, opt, 1, &n, err, sizeof(err)), 0);
	assert_int_equal(ust_json_decode_object(NULL, g_create_decoders, NDEC, &p, err,
						sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "missing key 'name'");

	v = parse("{\"n\":3}");
	assert_int_equal(ust_json_decode_object(v, opt, 1, &n, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "key 'n': invalid value");
	json_decref(v);
	v = parse("{\"n\":4}");
	assert_int_equal(ust_json_decode_object(v, opt, 1, &n, NULL, 0), 0);
	assert_int_equal(n, 4);
	json_decref(v);
}

static void test_parse_errors(void **state)
{
	char err[UST_JSON_ERRBUF_SIZE];
	const char *bad = "{\n  \"a\": 1,\n  \"b\": ]\n}";
	json_t *v;

	assert_null(ust_json_parse(bad, strlen(bad), err, sizeof(err)));
	assert_non_null(strstr(err, "line 3, column"));

	assert_null(ust_json_parse("{\"a\":1} x", 9, err, sizeof(err)));
	assert_non_null(strstr(err, "line 1, column"));
	assert_null(ust_json_parse("{\"a\":1,\"a\":2}", 13, err, sizeof(err)));
	assert_non_null(strstr(err, "duplicate"));
	assert_null(ust_json_parse("", 0, err, sizeof(err)));
	assert_null(ust_json_parse(NULL, 0, err, sizeof(err)));
	assert_string_equal(err, "no input");

	/* len bounds the text: no NUL needed, bytes after len ignored. */
	v = ust_json_parse("[1]garbage", 3, err, sizeof(err));
	assert_non_null(v);
	json_decref(v);
	v = ust_json_parse("\"scalar\"", 8, err, sizeof(err));
	assert_true(json_is_string(v));
	json_decref(v);
}

static char g_dir[64];

static int make_dir(void **state)
{
	strcpy(g_dir, "/tmp/ustor_json_ut.XXXXXX");
	return mkdtemp(g_dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
	DIR *d = opendir(g_dir);
	struct dirent *e;
	char path[512];

	while (d && (e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", g_dir, e->d_name);
			unlink(path);
		}
	}
	if (d) {
		closedir(d);
	}
	return rmdir(g_dir);
}

static int count_dir_entries(void)
{
	DIR *d = opendir(g_dir);
	struct dirent *e;
	int n = 0;

	while ((e = readdir(d)) != NULL) {
		n += e->d_name[0] != '.';
	}
	closedir(d);
	return n;
}

static void test_files(void **state)
{
	char err[UST_JSON_ERRBUF_SIZE], path[128];
	json_t *v, *back;
	FILE *f;

	snprintf(path, sizeof(path), "%s/missing.json", g_dir);
	assert_null(ust_json_load_file(path, err, sizeof(err)));
	assert_non_null(strstr(err, "No such file or directory"));

	snprintf(path, sizeof(path), "%s/config.json", g_dir);
	v = parse("{\"subsystems\":[{\"subsystem\":\"bdev\",\"config\":[]}]}");
	assert_int_equal(ust_json_write_file(path, v), 0);
	back = ust_json_load_file(path, err, sizeof(err));
	assert_non_null(back);
	assert_true(json_equal(v, back));
	json_decref(back);
	/* Overwrite atomically: no temporary file is left behind. */
	assert_int_equal(ust_json_write_file(path, v), 0);
	assert_int_equal(count_dir_entries(), 1);
	json_decref(v);

	f = fopen(path, "w");
	fputs("{\n\"a\": 1,\n\"b\" 2\n}\n", f);
	fclose(f);
	assert_null(ust_json_load_file(path, err, sizeof(err)));
	assert_non_null(strstr(err, "config.json: line 3, column"));

	assert_null(ust_json_load_file(g_dir, err, sizeof(err)));
	assert_non_null(strstr(err, "not a regular file"));

	snprintf(path, sizeof(path), "%s/no/such/dir.json", g_dir);
	assert_int_equal(ust_json_write_file(path, json_null()), -ENOENT);
	assert_int_equal(ust_json_write_file(NULL, json_null()), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uint32),
		cmocka_unit_test(test_small_unsigned),
		cmocka_unit_test(test_signed_and_64),
		cmocka_unit_test(test_bool_double_string_value),
		cmocka_unit_test(test_string_with_nul_rejected),
		cmocka_unit_test(test_object_valid),
		cmocka_unit_test(test_object_errors),
		cmocka_unit_test(test_object_error_releases),
		cmocka_unit_test(test_object_null_and_custom),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test_setup_teardown(test_files, make_dir, remove_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
