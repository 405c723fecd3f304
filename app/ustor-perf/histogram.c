/*
 * ustor-perf's latency histogram: fixed-size, log-linear buckets so that
 * recording a latency on the I/O path is a few arithmetic instructions and
 * one increment, never an allocation.
 *
 * Guarantees: every 64-bit value maps to exactly one bucket; a bucket's
 * width is at most 1/32 of its low bound, so quantiles are exact to within
 * about 3%; merging histograms is exact.
 */
#include <string.h>

#include "perf.h"

void perf_hist_init(struct perf_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void perf_hist_merge(struct perf_hist *dst, const struct perf_hist *src)
{
	uint32_t i;

	for (i = 0; i < HIST_BUCKETS; i++) {
		dst->buckets[i] += src->buckets[i];
	}
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min) {
		dst->min = src->min;
	}
	if (src->max > dst->max) {
		dst->max = src->max;
	}
}

uint64_t perf_hist_bucket_low(uint32_t idx)
{
	uint32_t shift;

	if (idx < HIST_SUB_COUNT) {
		return idx;
	}
	shift = idx / HIST_SUB_COUNT - 1;
	return (uint64_t)(HIST_SUB_COUNT + idx % HIST_SUB_COUNT) << shift;
}

uint64_t perf_hist_bucket_high(uint32_t idx)
{
	uint32_t shift;

	if (idx < HIST_SUB_COUNT) {
		return idx;
	}
	shift = idx / HIST_SUB_COUNT - 1;
	return perf_hist_bucket_low(idx) + ((1ULL << shift) - 1);
}

uint64_t perf_hist_quantile(const struct perf_hist *h, double q)
{
	uint64_t target, seen = 0, low, high;
	uint32_t i;

	if (h->count == 0) {
		return 0;
	}
	/* The rank of the sample we want, 1-based: ceil(q * count), at least 1. */
	target = (uint64_t)(q * (double)h->count);
	if ((double)target < q * (double)h->count) {
		target++;
	}
	if (target == 0) {
		target = 1;
	}
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= target) {
			break;
		}
	}
	if (i == HIST_BUCKETS) {
		return h->max;
	}
	low = perf_hist_bucket_low(i);
	high = perf_hist_bucket_high(i);
	/* Clamp to what was really seen: a single-valued histogram reports that value. */
	if (low < h->min) {
		low = h->min;
	}
	if (high > h->max) {
		high = h->max;
	}
	return low + (high - low) / 2;
}
