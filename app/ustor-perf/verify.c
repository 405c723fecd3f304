/*
 * ustor-perf -w verify: the data pattern and its checker, and the random
 * cutting of a region into extents.
 *
 * Every block written carries a header (magic, its own LBA, the pass's
 * sequence number, an XXH64 checksum of the whole block) followed by
 * pseudo-random words derived from (LBA, sequence). So a block that lands
 * at the wrong address, a stale block from an earlier pass, a torn or
 * corrupted block and a block never written are all told apart and
 * reported with the expected and the found value.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "perf.h"

#define HDR_SIZE sizeof(struct perf_block_hdr)

static uint64_t block_seed(uint64_t lba, uint64_t seq)
{
	return lba * 0xd6e8feb86659fd93ULL ^ seq;
}

static void fill_payload(uint8_t *payload, size_t len, uint64_t lba, uint64_t seq)
{
	uint64_t state = block_seed(lba, seq);
	uint64_t word;
	size_t off = 0;

	for (; off + sizeof(word) <= len; off += sizeof(word)) {
		word = perf_rand(&state);
		memcpy(payload + off, &word, sizeof(word));
	}
	if (off < len) {
		word = perf_rand(&state);
		memcpy(payload + off, &word, len - off);
	}
}

static void fill_block(uint8_t *block, uint32_t block_size, uint64_t lba, uint64_t seq)
{
	struct perf_block_hdr hdr = {.magic = PERF_BLOCK_MAGIC, .lba = lba, .seq = seq};

	memcpy(block, &hdr, HDR_SIZE);
	fill_payload(block + HDR_SIZE, block_size - HDR_SIZE, lba, seq);
	hdr.checksum = XXH64(block, block_size, 0);
	memcpy(block, &hdr, HDR_SIZE);
}

void perf_pattern_fill(void *buf, uint32_t block_size, uint64_t lba, uint64_t nblocks,
		       uint64_t seq)
{
	uint64_t i;

	for (i = 0; i < nblocks; i++) {
		fill_block((uint8_t *)buf + i * block_size, block_size, lba + i, seq);
	}
}

static bool stored_checksum_ok(const uint8_t *block, uint32_t block_size, uint8_t *scratch,
				   uint64_t *computed)
{
	struct perf_block_hdr hdr;

	memcpy(scratch, block, block_size);
	memcpy(&hdr, scratch, HDR_SIZE);
	hdr.checksum = 0;
	memcpy(scratch, &hdr, HDR_SIZE);
	*computed = XXH64(scratch, block_size, 0);
	memcpy(&hdr, block, HDR_SIZE);
	return hdr.checksum == *computed;
}

/* Describe how one block differs from what was written; 0 when it does not. */
static int check_block(const uint8_t *block, uint32_t block_size, uint64_t lba, uint64_t seq,
		       uint8_t *scratch, char *msg, size_t msglen)
{
	struct perf_block_hdr hdr;
	uint64_t computed;
	uint8_t expected;
	uint32_t i;

	memcpy(&hdr, block, HDR_SIZE);
	if (hdr.magic != PERF_BLOCK_MAGIC) {
		snprintf(msg, msglen, "bad magic: expected 0x%016" PRIx64 ", found 0x%016" PRIx64
			 " (block not written by this verify run, or overwritten)",
			 (uint64_t)PERF_BLOCK_MAGIC, hdr.magic);
		return -EILSEQ;
	}
	if (hdr.lba != lba) {
		snprintf(msg, msglen, "wrong address: expected the data of block %" PRIu64
			 ", found that of block %" PRIu64, lba, hdr.lba);
		return -EILSEQ;
	}
	if (hdr.seq != seq) {
		snprintf(msg, msglen, "stale data: expected sequence %" PRIu64 ", found %" PRIu64,
			 seq, hdr.seq);
		return -EILSEQ;
	}
	fill_block(scratch, block_size, lba, seq);
	if (memcmp(scratch, block, block_size) == 0) {
		return 0;
	}
	for (i = 0; i < block_size && scratch[i] == block[i]; i++) {
	}
	expected = scratch[i];
	/* The checksum tells a block corrupted after it was written from one written wrong. */
	snprintf(msg, msglen, "data mismatch at byte %u: expected 0x%02x, found 0x%02x; the "
		 "block's checksum %s its contents", i, expected, block[i],
		 stored_checksum_ok(block, block_size, scratch, &computed) ? "matches"
									   : "does not match");
	return -EILSEQ;
}

int perf_pattern_check(const void *buf, uint32_t block_size, uint64_t lba, uint64_t nblocks,
		       uint64_t seq, void *scratch, char *msg, size_t msglen)
{
	char detail[256];
	uint64_t i;

	for (i = 0; i < nblocks; i++) {
		if (check_block((const uint8_t *)buf + i * block_size, block_size, lba + i, seq,
				scratch, detail, sizeof(detail)) != 0) {
			snprintf(msg, msglen, "block %" PRIu64 " (byte offset %" PRIu64 "): %s",
				 lba + i, (lba + i) * block_size, detail);
			return -EILSEQ;
		}
	}
	return 0;
}

/* The extent list grows by this many entries at a time. */
#define EXTENTS_GROW 4096

struct perf_extent *perf_extents_make(uint64_t start, uint64_t len, uint32_t max_blocks,
				      uint64_t *rng, uint64_t *count)
{
	struct perf_extent *ext = NULL, *grown;
	uint64_t n = 0, cap = 0, pos = start, end = start + len;
	uint64_t blocks;

	while (pos < end) {
		if (n == cap) {
			cap += EXTENTS_GROW;
			grown = realloc(ext, cap * sizeof(*ext));
			if (grown == NULL) {
				free(ext);
				return NULL;
			}
			ext = grown;
		}
		blocks = 1 + perf_rand_below(rng, max_blocks);
		if (blocks > end - pos) {
			blocks = end - pos;
		}
		ext[n].offset = pos;
		ext[n].blocks = (uint32_t)blocks;
		ext[n].failed = false;
		n++;
		pos += blocks;
	}
	perf_extents_shuffle(ext, n, rng);
	*count = n;
	return ext;
}

void perf_extents_shuffle(struct perf_extent *ext, uint64_t count, uint64_t *rng)
{
	struct perf_extent tmp;
	uint64_t i, j;

	/* Fisher-Yates. */
	for (i = count; i > 1; i--) {
		j = perf_rand_below(rng, i);
		tmp = ext[i - 1];
		ext[i - 1] = ext[j];
		ext[j] = tmp;
	}
}
