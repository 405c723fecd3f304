/*
 * JSON helpers over jansson: table-driven decoding of objects into C structs,
 * parsing with positions in the error, and atomic file writes.
 *
 * Guarantees:
 *  - A decoder either converts the whole value into *out or returns an error
 *    and leaves *out untouched. Integers are range-checked exactly: a value
 *    that does not fit, a real (even 1.0), a boolean or a string is refused.
 *  - ust_json_decode_object() checks every key of the object before decoding
 *    any, so an unknown key never leaves half-decoded, allocated fields.
 *    Every error message names the key.
 *  - Parse errors carry line and column. Duplicate keys are an error, not a
 *    silent "last one wins".
 *  - ust_json_write_file() never leaves a partially written file at path: it
 *    writes a temporary file in the same directory, fsyncs it, renames it
 *    over path and fsyncs the directory.
 *
 * jansson stores integers as long long, so integers above INT64_MAX fail to
 * parse ("too big integer") rather than being rounded.
 */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ustor/json.h"

/* Config files are small; this bounds what a mistyped path can make us read. */
#define JSON_MAX_FILE_SIZE (256u * 1024 * 1024)

static __attribute__((format(printf, 3, 4))) void set_error(char *errbuf, size_t errlen,
							     const char *fmt, ...)
{
	va_list ap;

	if (errbuf == NULL || errlen == 0) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

/* ---- scalar decoders ---------------------------------------------------- */

int ust_json_decode_string(const json_t *val, void *out)
{
	char **str = out;
	char *copy;

	if (!json_is_string(val)) {
		return -EINVAL;
	}
	/* Embedded NULs would silently shorten the C string. */
	if (strlen(json_string_value(val)) != json_string_length(val)) {
		return -EINVAL;
	}
	copy = strdup(json_string_value(val));
	if (copy == NULL) {
		return -ENOMEM;
	}
	/* The old value is not freed: it may be a default the caller does not
	 * own. Each key is decoded once (duplicate keys are rejected), so
	 * nothing leaks in practice. */
	*str = copy;
	return 0;
}

int ust_json_decode_bool(const json_t *val, void *out)
{
	if (!json_is_boolean(val)) {
		return -EINVAL;
	}
	*(bool *)out = json_is_true(val);
	return 0;
}

static int decode_integer(const json_t *val, long long min, long long max, long long *out)
{
	long long v;

	if (!json_is_integer(val)) {
		return -EINVAL;
	}
	v = json_integer_value(val);
	if (v < min || v > max) {
		return -ERANGE;
	}
	*out = v;
	return 0;
}

int ust_json_decode_int32(const json_t *val, void *out)
{
	long long v;
	int rc = decode_integer(val, INT32_MIN, INT32_MAX, &v);

	if (rc == 0) {
		*(int32_t *)out = (int32_t)v;
	}
	return rc;
}

int ust_json_decode_uint8(const json_t *val, void *out)
{
	long long v;
	int rc = decode_integer(val, 0, UINT8_MAX, &v);

	if (rc == 0) {
		*(uint8_t *)out = (uint8_t)v;
	}
	return rc;
}

int ust_json_decode_uint16(const json_t *val, void *out)
{
	long long v;
	int rc = decode_integer(val, 0, UINT16_MAX, &v);

	if (rc == 0) {
		*(uint16_t *)out = (uint16_t)v;
	}
	return rc;
}

int ust_json_decode_uint32(const json_t *val, void *out)
{
	long long v;
	int rc = decode_integer(val, 0, UINT32_MAX, &v);

	if (rc == 0) {
		*(uint32_t *)out = (uint32_t)v;
	}
	return rc;
}

int ust_json_decode_uint64(const json_t *val, void *out)
{
	long long v;
	int rc = decode_integer(val, 0, LLONG_MAX, &v);

	if (rc == 0) {
		*(uint64_t *)out = (uint64_t)v;
	}
	return rc;
}

int ust_json_decode_int64(const json_t *val, void *out)
{
	long long v;
	int rc = decode_integer(val, LLONG_MIN, LLONG_MAX, &v);

	if (rc == 0) {
		*(int64_t *)out = (int64_t)v;
	}
	return rc;
}

int ust_json_decode_double(const json_t *val, void *out)
{
	if (!json_is_number(val)) {
		return -EINVAL;
	}
	*(double *)out = json_number_value(val);
	return 0;
}

int ust_json_decode_value(const json_t *val, void *out)
{
	json_t **dst = out;

	if (val == NULL) {
		return -EINVAL;
	}
	*dst = json_incref((json_t *)val);
	return 0;
}

/* ---- objects ------------------------------------------------------------ */

/* What a decoder expects, for messages; custom decoders get a generic text. */
static const char *decoder_expectation(ust_json_decode_fn fn)
{
	static const struct {
		ust_json_decode_fn fn;
		const char *what;
	} table[] = {
		{ust_json_decode_string, "string"},
		{ust_json_decode_bool, "boolean"},
		{ust_json_decode_int32, "signed 32-bit integer"},
		{ust_json_decode_uint8, "unsigned 8-bit integer"},
		{ust_json_decode_uint16, "unsigned 16-bit integer"},
		{ust_json_decode_uint32, "unsigned 32-bit integer"},
		{ust_json_decode_uint64, "unsigned 64-bit integer"},
		{ust_json_decode_int64, "signed 64-bit integer"},
		{ust_json_decode_double, "number"},
		{ust_json_decode_value, "JSON value"},
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (table[i].fn == fn) {
			return table[i].what;
		}
	}
	return NULL;
}

static const struct ust_json_object_decoder *find_decoder(const struct ust_json_object_decoder *d,
							  size_t count, const char *key)
{
	for (size_t i = 0; i < count; i++) {
		if (strcmp(d[i].name, key) == 0) {
			return &d[i];
		}
	}
	return NULL;
}

static int check_unknown_keys(const json_t *obj, const struct ust_json_object_decoder *decoders,
			      size_t count, char *errbuf, size_t errlen)
{
	const char *key;
	json_t *val;

	json_object_foreach((json_t *)obj, key, val) {
		if (find_decoder(decoders, count, key) == NULL) {
			set_error(errbuf, errlen, "unknown key '%s'", key);
			return -EINVAL;
		}
	}
	return 0;
}

static void describe_decode_error(const struct ust_json_object_decoder *d, const json_t *val,
				  int rc, char *errbuf, size_t errlen)
{
	const char *what = decoder_expectation(d->decode);

	if (rc == -ENOMEM) {
		set_error(errbuf, errlen, "key '%s': out of memory", d->name);
	} else if (rc == -ERANGE && what != NULL) {
		set_error(errbuf, errlen, "key '%s': value %lld out of range for %s", d->name,
			  json_integer_value(val), what);
	} else if (what != NULL) {
		set_error(errbuf, errlen, "key '%s': expected %s", d->name, what);
	} else {
		set_error(errbuf, errlen, "key '%s': invalid value", d->name);
	}
}

/*
 * A decode of the table failed at decoders[failed]: free the strings and
 * values this call decoded before it (the caller's out fields become NULL),
 * so that a handler that returns at once on a decode error leaks nothing.
 */
static void undo_decoded(const json_t *obj, const struct ust_json_object_decoder *decoders,
			 size_t failed, void *out)
{
	for (size_t i = 0; i < failed; i++) {
		const struct ust_json_object_decoder *d = &decoders[i];
		void *field = (char *)out + d->offset;

		if (obj == NULL || json_object_get(obj, d->name) == NULL) {
			continue; /* not decoded by this call: maybe a default the caller owns */
		}
		if (d->decode == ust_json_decode_string) {
			free(*(char **)field);
			*(char **)field = NULL;
		} else if (d->decode == ust_json_decode_value) {
			json_decref(*(json_t **)field);
			*(json_t **)field = NULL;
		}
	}
}

int ust_json_decode_object(const json_t *obj, const struct ust_json_object_decoder *decoders,
			   size_t count, void *out, char *errbuf, size_t errlen)
{
	int rc;

	if (decoders == NULL && count > 0) {
		set_error(errbuf, errlen, "no decoders");
		return -EINVAL;
	}
	if (obj != NULL && !json_is_object(obj)) {
		set_error(errbuf, errlen, "expected a JSON object");
		return -EINVAL;
	}
	if (obj != NULL) {
		rc = check_unknown_keys(obj, decoders, count, errbuf, errlen);
		if (rc != 0) {
			return rc;
		}
	}
	for (size_t i = 0; i < count; i++) {
		const struct ust_json_object_decoder *d = &decoders[i];
		json_t *val = obj ? json_object_get(obj, d->name) : NULL;

		if (val == NULL) {
			if (!d->optional) {
				set_error(errbuf, errlen, "missing key '%s'", d->name);
				undo_decoded(obj, decoders, i, out);
				return -EINVAL;
			}
			continue;
		}
		rc = d->decode(val, (char *)out + d->offset);
		if (rc != 0) {
			describe_decode_error(d, val, rc, errbuf, errlen);
			undo_decoded(obj, decoders, i, out);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- parsing ------------------------------------------------------------ */

json_t *ust_json_parse(const char *text, size_t len, char *errbuf, size_t errlen)
{
	json_error_t err;
	json_t *val;

	if (text == NULL) {
		set_error(errbuf, errlen, "no input");
		return NULL;
	}
	val = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
	if (val == NULL) {
		set_error(errbuf, errlen, "line %d, column %d: %s", err.line, err.column, err.text);
	}
	return val;
}

static char *read_whole_file(const char *path, size_t *len, char *errbuf, size_t errlen)
{
	struct stat st;
	char *buf;
	size_t off = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		set_error(errbuf, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > JSON_MAX_FILE_SIZE) {
		set_error(errbuf, errlen, "%s: not a regular file of at most %u bytes", path,
			  JSON_MAX_FILE_SIZE);
		close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		set_error(errbuf, errlen, "%s: out of memory", path);
		close(fd);
		return NULL;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			set_error(errbuf, errlen, "%s: read failed: %s", path,
				  n < 0 ? strerror(errno) : "file shrank while reading");
			free(buf);
			close(fd);
			return NULL;
		}
		off += (size_t)n;
	}
	close(fd);
	buf[off] = '\0';
	*len = off;
	return buf;
}

json_t *ust_json_load_file(const char *path, char *errbuf, size_t errlen)
{
	char msg[UST_JSON_ERRBUF_SIZE];
	size_t len;
	json_t *val;
	char *text;

	if (path == NULL) {
		set_error(errbuf, errlen, "no file name");
		return NULL;
	}
	text = read_whole_file(path, &len, errbuf, errlen);
	if (text == NULL) {
		return NULL;
	}
	val = ust_json_parse(text, len, msg, sizeof(msg));
	if (val == NULL) {
		set_error(errbuf, errlen, "%s: %s", path, msg);
	}
	free(text);
	return val;
}

/* ---- writing ------------------------------------------------------------ */

static int write_all_fd(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Make the rename durable: the directory entry lives in the directory. */
static int fsync_parent_dir(const char *path)
{
	char *dir = strdup(path);
	char *slash;
	int fd, rc = 0;

	if (dir == NULL) {
		return -ENOMEM;
	}
	slash = strrchr(dir, '/');
	if (slash == NULL) {
		strcpy(dir, ".");
	} else if (slash == dir) {
		dir[1] = '\0';
	} else {
		*slash = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		rc = -errno;
	}
	if (fd >= 0) {
		close(fd);
	}
	free(dir);
	return rc;
}

/* O_EXCL on a fresh name, so the mode follows the umask like any new file. */
static int create_temp_file(const char *path, char **tmp_path)
{
	for (unsigned int attempt = 0; attempt < 100; attempt++) {
		char *name;
		int fd;

		if (asprintf(&name, "%s.tmp.%d.%u", path, (int)getpid(), attempt) < 0) {
			return -ENOMEM;
		}
		fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd >= 0) {
			*tmp_path = name;
			return fd;
		}
		free(name);
		if (errno != EEXIST) {
			return -errno;
		}
	}
	return -EEXIST;
}

int ust_json_write_file(const char *path, const json_t *json)
{
	char *text, *tmp_path = NULL;
	int fd, rc;

	if (path == NULL || json == NULL) {
		return -EINVAL;
	}
	text = json_dumps(json, JSON_INDENT(2) | JSON_ENCODE_ANY);
	if (text == NULL) {
		return -ENOMEM;
	}
	fd = create_temp_file(path, &tmp_path);
	if (fd < 0) {
		free(text);
		return fd;
	}
	rc = write_all_fd(fd, text, strlen(text));
	if (rc == 0) {
		rc = write_all_fd(fd, "\n", 1);
	}
	if (rc == 0 && fsync(fd) != 0) {
		rc = -errno;
	}
	if (close(fd) != 0 && rc == 0) {
		rc = -errno;
	}
	if (rc == 0 && rename(tmp_path, path) != 0) {
		rc = -errno;
	}
	if (rc != 0) {
		unlink(tmp_path);
	} else {
		rc = fsync_parent_dir(path);
	}
	free(tmp_path);
	free(text);
	return rc;
}
