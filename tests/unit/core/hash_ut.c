/*
 * Unit tests for the intrusive hash table (core/hash.c): lookups of 100,000
 * names while the table grows, removal from the middle of chains, nodes
 * that share one hash (told apart by the caller's key), and clear.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ustor/hash.h"

#define N 100000

struct item {
	struct ust_hash_node node;
	char name[32];
	int value;
};

static struct item *find(const struct ust_hash *h, const char *name)
{
	struct ust_hash_node *n;

	for (n = ust_hash_first(h, ust_hash_str(name)); n != NULL; n = ust_hash_next(n)) {
		struct item *it = (struct item *)((char *)n - offsetof(struct item, node));

		if (strcmp(it->name, name) == 0)
			return it;
	}
	return NULL;
}

static void test_names(void **state)
{
	struct ust_hash h = UST_HASH_INITIALIZER;
	struct item *items = calloc(N, sizeof(*items));
	char name[32];
	int i;

	(void)state;
	assert_non_null(items);
	assert_null(find(&h, "nothing"));
	for (i = 0; i < N; i++) {
		snprintf(items[i].name, sizeof(items[i].name), "Malloc%dp%d", i / 7, i % 7);
		items[i].value = i;
		ust_hash_insert(&h, &items[i].node, ust_hash_str(items[i].name));
	}
	assert_int_equal(h.count, N);
	/* grown with the count: chains stay short */
	assert_true(h.nbuckets >= N);
	for (i = 0; i < N; i++)
		assert_ptr_equal(find(&h, items[i].name), &items[i]);
	assert_null(find(&h, "Malloc0"));
	/* every third one out */
	for (i = 0; i < N; i += 3)
		ust_hash_remove(&h, &items[i].node);
	for (i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "Malloc%dp%d", i / 7, i % 7);
		if (i % 3 == 0)
			assert_null(find(&h, name));
		else
			assert_int_equal(find(&h, name)->value, i);
	}
	assert_int_equal(h.count, N - (N + 2) / 3);
	ust_hash_clear(&h);
	assert_int_equal(h.count, 0);
	assert_null(find(&h, items[1].name));
	/* usable again after clear */
	ust_hash_insert(&h, &items[1].node, ust_hash_str(items[1].name));
	assert_ptr_equal(find(&h, items[1].name), &items[1]);
	/* the last node out frees the buckets */
	ust_hash_remove(&h, &items[1].node);
	assert_int_equal(h.count, 0);
	assert_int_equal(h.nbuckets, 0);
	assert_null(find(&h, items[1].name));
	ust_hash_clear(&h);
	free(items);
}

/* Nodes of one hash all come back; nodes of other hashes in their bucket do not. */
static void test_same_hash(void **state)
{
	struct ust_hash h = UST_HASH_INITIALIZER;
	struct item it[40];
	struct ust_hash_node *n;
	int i, seen;

	(void)state;
	memset(it, 0, sizeof(it));
	for (i = 0; i < 40; i++) {
		/* 7 and 7 + 2^40 share every bucket a table this small has */
		ust_hash_insert(&h, &it[i].node, i < 20 ? 7 : 7 + (1ull << 40));
	}
	for (seen = 0, n = ust_hash_first(&h, 7); n != NULL; n = ust_hash_next(n)) {
		assert_true(n >= &it[0].node && n <= &it[19].node);
		seen++;
	}
	assert_int_equal(seen, 20);
	ust_hash_remove(&h, &it[5].node);
	ust_hash_remove(&h, &it[25].node);
	for (seen = 0, n = ust_hash_first(&h, 7 + (1ull << 40)); n != NULL; n = ust_hash_next(n))
		seen++;
	assert_int_equal(seen, 19);
	assert_null(ust_hash_first(&h, 8));
	ust_hash_clear(&h);
}

static void test_ptr_hash_spreads(void **state)
{
	static char block[4096];
	uint64_t low = 0;
	int i;

	(void)state;
	/* 64-byte-aligned pointers still differ in their low bits */
	for (i = 0; i < 64; i++)
		low |= 1ull << (ust_hash_ptr(block + i * 64) & 63);
	assert_true(__builtin_popcountll(low) > 32);
	assert_true(ust_hash_str("a") != ust_hash_str("b"));
	assert_true(ust_hash_str("") != ust_hash_str("a"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_same_hash),
		cmocka_unit_test(test_ptr_hash_spreads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
