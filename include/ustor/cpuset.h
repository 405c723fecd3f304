/*
 * CPU sets: which cores a thread may run on, and core masks as users write
 * them ("0x3", "3", "[0-3,6]").
 */
#ifndef USTOR_CPUSET_H
#define USTOR_CPUSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UST_CPUSET_SIZE 256

struct ust_cpuset {
	uint64_t bits[UST_CPUSET_SIZE / 64];
};

void ust_cpuset_zero(struct ust_cpuset *set);
void ust_cpuset_set(struct ust_cpuset *set, uint32_t cpu, bool on);
bool ust_cpuset_get(const struct ust_cpuset *set, uint32_t cpu);
uint32_t ust_cpuset_count(const struct ust_cpuset *set);
bool ust_cpuset_equal(const struct ust_cpuset *a, const struct ust_cpuset *b);
void ust_cpuset_and(struct ust_cpuset *dst, const struct ust_cpuset *src);
void ust_cpuset_or(struct ust_cpuset *dst, const struct ust_cpuset *src);
/* Parse "0x3", "3" (hex) or "[0-3,6]". -EINVAL on bad input or out of range. */
int ust_cpuset_parse(struct ust_cpuset *set, const char *str);
/* Hex mask without leading zeros, e.g. "0x3"; buf of at least 68 bytes. */
const char *ust_cpuset_fmt(const struct ust_cpuset *set, char *buf, size_t len);

#endif
