/*
 * The intrusive chained hash table of include/ustor/hash.h.
 *
 * Guarantees: a node is in exactly one chain, the one of its hash's
 * bucket (or the single chain before the first buckets could be had);
 * insert never fails (a failed grow keeps the chains it has); a table
 * that empties frees its buckets;
 * first/next return exactly the nodes inserted with the hash asked for.
 */
#include <stdlib.h>

#include "ustor/hash.h"

#define HASH_MIN_BUCKETS 16u

/* The chain a hash belongs to: one of the buckets, or the single chain before there are any. */
static struct ust_hash_node **chain_of(const struct ust_hash *h, uint64_t hash)
{
	if (h->nbuckets == 0)
		return (struct ust_hash_node **)&h->single;
	return &h->buckets[hash & (h->nbuckets - 1)];
}

static void chain_move(struct ust_hash_node *node, struct ust_hash_node **b, size_t n)
{
	struct ust_hash_node *next;

	for (; node != NULL; node = next) {
		next = node->next;
		node->next = b[node->hash & (n - 1)];
		b[node->hash & (n - 1)] = node;
	}
}

/* Double the buckets (or make the first ones) and move every node over. */
static void hash_grow(struct ust_hash *h)
{
	size_t n = h->nbuckets ? h->nbuckets * 2 : HASH_MIN_BUCKETS, i;
	struct ust_hash_node **b = calloc(n, sizeof(*b));

	if (b == NULL)
		return; /* longer chains, nothing lost */
	for (i = 0; i < h->nbuckets; i++)
		chain_move(h->buckets[i], b, n);
	chain_move(h->single, b, n);
	h->single = NULL;
	free(h->buckets);
	h->buckets = b;
	h->nbuckets = n;
}

void ust_hash_insert(struct ust_hash *h, struct ust_hash_node *node, uint64_t hash)
{
	struct ust_hash_node **head;

	if (h->count >= h->nbuckets)
		hash_grow(h);
	node->hash = hash;
	head = chain_of(h, hash);
	node->next = *head;
	*head = node;
	h->count++;
}

void ust_hash_remove(struct ust_hash *h, struct ust_hash_node *node)
{
	struct ust_hash_node **pp;

	for (pp = chain_of(h, node->hash); *pp != NULL; pp = &(*pp)->next) {
		if (*pp == node) {
			*pp = node->next;
			node->next = NULL;
			if (--h->count == 0)
				ust_hash_clear(h); /* an emptied table holds no memory */
			return;
		}
	}
}

static struct ust_hash_node *chain_match(struct ust_hash_node *node, uint64_t hash)
{
	while (node != NULL && node->hash != hash)
		node = node->next;
	return node;
}

struct ust_hash_node *ust_hash_first(const struct ust_hash *h, uint64_t hash)
{
	return chain_match(*chain_of(h, hash), hash);
}

struct ust_hash_node *ust_hash_next(const struct ust_hash_node *node)
{
	return chain_match(node->next, node->hash);
}

void ust_hash_clear(struct ust_hash *h)
{
	free(h->buckets);
	h->buckets = NULL;
	h->nbuckets = 0;
	h->count = 0;
	h->single = NULL;
}

/* FNV-1a, 64-bit: short keys, good spread in the low bits the buckets use. */
uint64_t ust_hash_str(const char *s)
{
	uint64_t x = 0xcbf29ce484222325ull;

	while (*s != '\0') {
		x ^= (uint8_t)*s++;
		x *= 0x100000001b3ull;
	}
	return x;
}

/* Pointers are aligned: mix so the low bits differ (splitmix64's finalizer). */
uint64_t ust_hash_ptr(const void *p)
{
	uint64_t x = (uint64_t)(uintptr_t)p;

	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}
