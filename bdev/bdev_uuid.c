/*
 * UUIDs for bdevs (and anything else that names itself with one): random
 * version-4 generation and the RFC 4122 text form.
 *
 * Guarantees: ust_uuid_parse accepts exactly 8-4-4-4-12 hex digits (either
 * case) and nothing else; ust_uuid_fmt writes lower case and never
 * overflows buf.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ustor/bdev.h"

static void fill_random(uint8_t *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = getrandom(buf + got, len - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got < len) {
		/* No entropy source: still unique enough per process and time. */
		struct timespec ts;
		uint64_t seed;
		size_t i;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
		for (i = got; i < len; i++) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			buf[i] = (uint8_t)(seed >> 56);
		}
	}
}

void ust_uuid_generate(struct ust_uuid *uuid)
{
	fill_random(uuid->u, sizeof(uuid->u));
	uuid->u[6] = (uint8_t)((uuid->u[6] & 0x0f) | 0x40); /* version 4 */
	uuid->u[8] = (uint8_t)((uuid->u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int ust_uuid_parse(struct ust_uuid *uuid, const char *str)
{
	struct ust_uuid out;
	size_t i, byte = 0;

	if (uuid == NULL || str == NULL || strlen(str) != UST_UUID_STRING_LEN - 1)
		return -EINVAL;
	for (i = 0; i < UST_UUID_STRING_LEN - 1;) {
		int hi, lo;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (str[i] != '-')
				return -EINVAL;
			i++;
			continue;
		}
		hi = hex_value(str[i]);
		lo = hex_value(str[i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out.u[byte++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	*uuid = out;
	return 0;
}

int ust_uuid_fmt(char *buf, size_t len, const struct ust_uuid *uuid)
{
	const uint8_t *u = uuid->u;

	if (buf == NULL || len < UST_UUID_STRING_LEN)
		return -EINVAL;
	snprintf(buf, len,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
		 u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
		 u[14], u[15]);
	return 0;
}

int ust_uuid_compare(const struct ust_uuid *a, const struct ust_uuid *b)
{
	return memcmp(a->u, b->u, sizeof(a->u));
}

bool ust_uuid_is_null(const struct ust_uuid *uuid)
{
	static const struct ust_uuid zero;

	return memcmp(uuid->u, zero.u, sizeof(zero.u)) == 0;
}
