/*
 * An intrusive chained hash table, for the registries that are looked up by
 * name or pointer (bdevs, io_devices, shared blobstores): with thousands of
 * entries (lvols, splits) a list scan per lookup made registering n of them
 * cost O(n^2).
 *
 * The caller embeds a struct ust_hash_node in its object, computes the
 * key's hash (ust_hash_str, ust_hash_ptr) and compares keys itself while
 * walking the nodes of one hash (ust_hash_first/next). The table doubles
 * when it holds more nodes than buckets; if that allocation fails it keeps
 * its buckets and only lookups get slower, so an insert never fails. No
 * locking: the caller's lock covers the table as it covered its list.
 */
#ifndef USTOR_HASH_H
#define USTOR_HASH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ust_hash_node {
	struct ust_hash_node *next;
	uint64_t hash;
};

struct ust_hash {
	struct ust_hash_node **buckets; /* NULL until the first insert */
	size_t nbuckets;                /* a power of two, or 0 */
	size_t count;
	struct ust_hash_node *single;   /* the one chain while nbuckets is 0 */
};

#define UST_HASH_INITIALIZER {NULL, 0, 0, NULL}

void ust_hash_insert(struct ust_hash *h, struct ust_hash_node *node, uint64_t hash);
/* node must be in h. The last node out frees the buckets: an empty table holds no memory. */
void ust_hash_remove(struct ust_hash *h, struct ust_hash_node *node);
/* A node inserted with this hash, then the next such node (any order); NULL after the last. */
struct ust_hash_node *ust_hash_first(const struct ust_hash *h, uint64_t hash);
struct ust_hash_node *ust_hash_next(const struct ust_hash_node *node);
/* Frees the buckets (not the nodes): the table is empty and usable again. */
void ust_hash_clear(struct ust_hash *h);

uint64_t ust_hash_str(const char *s);
uint64_t ust_hash_ptr(const void *p);

#ifdef __cplusplus
}
#endif

#endif
