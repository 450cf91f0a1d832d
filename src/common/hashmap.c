#include "hashmap.h"

#include "alloc.h"


uint64_t owfp_hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

uint64_t owfp_hash_bytes(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return owfp_hash_u64(h);
}

void *owfp_hmap_find(const struct owfp_hmap *m, uint64_t hash, owfp_hmap_eq eq, const void *arg)
{
    if (!m->capacity)
        return NULL;
    size_t mask = m->capacity - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        struct owfp_hmap_slot *s = &m->slots[i];
        if (!s->value)
            return NULL;
        if (s->hash == hash && eq(s->value, arg))
            return s->value;
    }
}

void *owfp_hmap_peek(const struct owfp_hmap *m, uint64_t hash)
{
    if (!m->capacity)
        return NULL;
    size_t mask = m->capacity - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        const struct owfp_hmap_slot *s = &m->slots[i];
        if (!s->value || s->hash == hash)
            return s->value;
    }
}

static bool rehash(struct owfp_hmap *m, size_t capacity)
{
    struct owfp_hmap_slot *slots = owfp_calloc(capacity, sizeof(*slots));
    if (!slots)
        return false;
    for (size_t i = 0; i < m->capacity; i++) {
        struct owfp_hmap_slot *s = &m->slots[i];
        if (!s->value)
            continue;
        size_t j = s->hash & (capacity - 1);
        while (slots[j].value)
            j = (j + 1) & (capacity - 1);
        slots[j] = *s;
    }
    owfp_free(m->slots);
    m->slots = slots;
    m->capacity = capacity;
    return true;
}

bool owfp_hmap_reserve(struct owfp_hmap *m, size_t extra)
{
    size_t need = m->count + extra;
    if (need * 4 < m->capacity * 3)
        return true;
    size_t cap = m->capacity ? m->capacity : 16;
    while ((m->count + extra) * 2 >= cap)
        cap *= 2;
    return rehash(m, cap);
}

bool owfp_hmap_insert(struct owfp_hmap *m, uint64_t hash, void *value)
{
    if (!owfp_hmap_reserve(m, 1))
        return false;
    size_t mask = m->capacity - 1;
    size_t i = hash & mask;
    while (m->slots[i].value)
        i = (i + 1) & mask;
    m->slots[i] = (struct owfp_hmap_slot){hash, value};
    m->count++;
    return true;
}

/* Backward-shift deletion, no tombstones: the table then only grows, and
 * putting back what was removed (a transaction's undo) never needs a rehash,
 * so it cannot fail for lack of memory. Entries after the removed one may
 * move to a lower slot (iterators that remove must look at slot i again). */
void owfp_hmap_remove(struct owfp_hmap *m, uint64_t hash, const void *value)
{
    if (!m->capacity)
        return;
    size_t mask = m->capacity - 1;
    size_t hole = hash & mask;
    while (m->slots[hole].value && m->slots[hole].value != value)
        hole = (hole + 1) & mask;
    if (!m->slots[hole].value)
        return;
    for (size_t j = (hole + 1) & mask; m->slots[j].value; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        /* An entry whose home lies cyclically in (hole, j] stays. */
        bool stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
        if (!stays) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].value = NULL;
    m->count--;
}

void owfp_hmap_free(struct owfp_hmap *m)
{
    owfp_free(m->slots);
    *m = (struct owfp_hmap){0};
}

void *owfp_hmap_at(const struct owfp_hmap *m, size_t i)
{
    return m->slots[i].value;
}
