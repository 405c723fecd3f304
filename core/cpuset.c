/*
 * CPU sets and the core masks users type: a hex mask ("0x3", "3") or a
 * bracketed list of cores and ranges ("[0-3,6]").
 *
 * Guarantees: parsing is all or nothing (the set is untouched on error); a
 * core at or above UST_CPUSET_SIZE, an empty or malformed mask, a reversed
 * range or trailing text is -EINVAL, never silently dropped. Formatting
 * never writes past the buffer.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ustor/cpuset.h"

#define CPUSET_WORDS (UST_CPUSET_SIZE / 64)
#define CPUSET_HEX_DIGITS (UST_CPUSET_SIZE / 4)

void ust_cpuset_zero(struct ust_cpuset *set)
{
	memset(set, 0, sizeof(*set));
}

void ust_cpuset_set(struct ust_cpuset *set, uint32_t cpu, bool on)
{
	if (cpu >= UST_CPUSET_SIZE)
		return;
	if (on)
		set->bits[cpu / 64] |= UINT64_C(1) << (cpu % 64);
	else
		set->bits[cpu / 64] &= ~(UINT64_C(1) << (cpu % 64));
}

bool ust_cpuset_get(const struct ust_cpuset *set, uint32_t cpu)
{
	if (cpu >= UST_CPUSET_SIZE)
		return false;
	return (set->bits[cpu / 64] >> (cpu % 64)) & 1;
}

uint32_t ust_cpuset_count(const struct ust_cpuset *set)
{
	uint32_t n = 0;
	int w;

	for (w = 0; w < CPUSET_WORDS; w++)
		n += (uint32_t)__builtin_popcountll(set->bits[w]);
	return n;
}

bool ust_cpuset_equal(const struct ust_cpuset *a, const struct ust_cpuset *b)
{
	return memcmp(a->bits, b->bits, sizeof(a->bits)) == 0;
}

void ust_cpuset_and(struct ust_cpuset *dst, const struct ust_cpuset *src)
{
	int w;

	for (w = 0; w < CPUSET_WORDS; w++)
		dst->bits[w] &= src->bits[w];
}

void ust_cpuset_or(struct ust_cpuset *dst, const struct ust_cpuset *src)
{
	int w;

	for (w = 0; w < CPUSET_WORDS; w++)
		dst->bits[w] |= src->bits[w];
}

static int hex_digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int parse_hex_mask(struct ust_cpuset *set, const char *s, size_t len)
{
	size_t i, digit;
	int v;

	if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		len -= 2;
	}
	if (len == 0)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (hex_digit_value(s[i]) < 0)
			return -EINVAL;
	}
	/* Leading zeros are harmless; only significant digits can be out of range. */
	while (len > 1 && s[0] == '0') {
		s++;
		len--;
	}
	if (len > CPUSET_HEX_DIGITS)
		return -EINVAL;
	for (digit = 0; digit < len; digit++) {
		v = hex_digit_value(s[len - 1 - digit]);
		set->bits[digit / 16] |= (uint64_t)v << ((digit % 16) * 4);
	}
	return 0;
}

/* Reads a decimal core number below UST_CPUSET_SIZE; advances *p past it. */
static int parse_core_number(const char **p, const char *end, uint32_t *core)
{
	const char *s = *p;
	uint32_t v = 0;

	if (s == end || !isdigit((unsigned char)*s))
		return -EINVAL;
	while (s < end && isdigit((unsigned char)*s)) {
		v = v * 10 + (uint32_t)(*s - '0');
		if (v >= UST_CPUSET_SIZE)
			return -EINVAL;
		s++;
	}
	*p = s;
	*core = v;
	return 0;
}

static const char *skip_spaces(const char *p, const char *end)
{
	while (p < end && isspace((unsigned char)*p))
		p++;
	return p;
}

static int parse_core_list(struct ust_cpuset *set, const char *s, size_t len)
{
	const char *p = s + 1, *end = s + len - 1; /* inside the brackets */
	uint32_t first, last, cpu;

	for (;;) {
		p = skip_spaces(p, end);
		if (parse_core_number(&p, end, &first) != 0)
			return -EINVAL;
		p = skip_spaces(p, end);
		last = first;
		if (p < end && *p == '-') {
			p = skip_spaces(p + 1, end);
			if (parse_core_number(&p, end, &last) != 0 || last < first)
				return -EINVAL;
			p = skip_spaces(p, end);
		}
		for (cpu = first; cpu <= last; cpu++)
			ust_cpuset_set(set, cpu, true);
		if (p == end)
			return 0;
		if (*p != ',')
			return -EINVAL;
		p++;
	}
}

int ust_cpuset_parse(struct ust_cpuset *set, const char *str)
{
	struct ust_cpuset tmp;
	size_t len;
	int rc;

	if (set == NULL || str == NULL)
		return -EINVAL;
	while (isspace((unsigned char)*str))
		str++;
	len = strlen(str);
	while (len > 0 && isspace((unsigned char)str[len - 1]))
		len--;
	if (len == 0)
		return -EINVAL;

	ust_cpuset_zero(&tmp);
	if (str[0] == '[') {
		if (len < 2 || str[len - 1] != ']')
			return -EINVAL;
		rc = parse_core_list(&tmp, str, len);
	} else {
		rc = parse_hex_mask(&tmp, str, len);
	}
	if (rc != 0)
		return rc;
	*set = tmp;
	return 0;
}

const char *ust_cpuset_fmt(const struct ust_cpuset *set, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char digits[CPUSET_HEX_DIGITS + 1];
	int d, top = -1;
	size_t n = 0;

	for (d = CPUSET_HEX_DIGITS - 1; d >= 0; d--) {
		unsigned v = (unsigned)(set->bits[d / 16] >> ((d % 16) * 4)) & 0xf;

		if (top < 0 && v == 0 && d > 0)
			continue;
		if (top < 0)
			top = d;
		digits[n++] = hex[v];
	}
	digits[n] = '\0';
	if (buf == NULL || len < n + 3)
		return NULL;
	snprintf(buf, len, "0x%s", digits);
	return buf;
}
