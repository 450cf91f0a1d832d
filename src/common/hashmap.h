/*
 * Open-addressing hash set of pointers, keyed by a caller-computed 64-bit
 * hash and matched by a caller-supplied predicate. Not thread-safe.
 */
#ifndef OPENWFP_COMMON_HASHMAP_H
#define OPENWFP_COMMON_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct owfp_hmap_slot {
    uint64_t hash;
    void *value; /* NULL = empty */
};

struct owfp_hmap {
    struct owfp_hmap_slot *slots;
    size_t capacity; /* power of two */
    size_t count;
};

typedef bool (*owfp_hmap_eq)(const void *value, const void *arg);

void *owfp_hmap_find(const struct owfp_hmap *m, uint64_t hash, owfp_hmap_eq eq, const void *arg);
/* Returns false when out of memory. `value` must not be NULL. */
bool owfp_hmap_insert(struct owfp_hmap *m, uint64_t hash, void *value);
/* Removes exactly `value` (by identity). Entries after it may move to lower
 * slots; it leaves no tombstone, so inserting it again needs no new memory. */
void owfp_hmap_remove(struct owfp_hmap *m, uint64_t hash, const void *value);
/* Makes sure `extra` more inserts cannot fail for lack of memory. */
bool owfp_hmap_reserve(struct owfp_hmap *m, size_t extra);
void owfp_hmap_free(struct owfp_hmap *m);
/* Hints for a lookup to come, no effect on the map: ask the CPU for the
 * home slot of `hash`; the first value stored under `hash` (unverified:
 * maybe not the one a lookup would find), once the slot has arrived. */
static inline void owfp_hmap_prefetch(const struct owfp_hmap *m, uint64_t hash)
{
    if (m->capacity)
        __builtin_prefetch(&m->slots[hash & (m->capacity - 1)]);
}
void *owfp_hmap_peek(const struct owfp_hmap *m, uint64_t hash);
/* Iteration: the value in slot i (0 <= i < capacity), or NULL. */
void *owfp_hmap_at(const struct owfp_hmap *m, size_t i);

uint64_t owfp_hash_u64(uint64_t x);
uint64_t owfp_hash_bytes(const void *data, size_t len);

#endif
