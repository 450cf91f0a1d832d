/*
 * Layer views: the filters of one layer, sorted for arbitration and indexed
 * so that a classify visits few filters that cannot match.
 *
 * Order. Entries are sorted by (sublayer_rank asc, weight desc, filter_id
 * asc); an entry's position in that array is its evaluation order, so every
 * list below holds positions in increasing order and merging lists by
 * position yields evaluation order (spec A1, A8).
 *
 * Index. Each filter is filed under one of its condition groups (an OR group
 * or a single condition), chosen among the groups that can be looked up by
 * the incoming value:
 *   - EQUAL on an integer field, EQUAL on a 16-byte array, V4/V6 address
 *     masks, RANGEs of at most 256 integer values (expanded into their
 *     values); an OR group is indexable when all of its members are, and is
 *     filed under every alternative.
 * A key is (sublayer, field, incoming type, prefix length, the value's
 * leading prefix-length bits): exact integers use the type's width as the
 * prefix length, masks their prefix length, so a UINT32 address field has
 * one "structure" (field, type, prefix length) per prefix length in use.
 * One hash table maps keys to posting lists. The group chosen is the one
 * whose keys have the fewest candidate filters in the sublayer (counted over
 * all indexable groups of all filters), so an enum-like field shared by
 * everybody loses against a port or an address. Filters with no indexable
 * group, zero conditions included, go to the sublayer's residual list.
 *
 * Lookup. For each structure of the sublayer the incoming value of its field
 * is masked to the structure's prefix length and looked up: at most one
 * posting list per structure, plus the residual list. A sublayer keeps at
 * most OWFP_VIEW_ITER_MAX_CURSORS - 1 structures (those holding the most
 * candidates); groups that need a dropped structure are not eligible, so a
 * filter left without a group goes to the residual list. The iterator merges
 * the lists by position, skips repeats (a filter reached through two
 * alternatives of its OR group) and checks every candidate with
 * owfp_conditions_match(), which keeps the index a pure pre-filter.
 *
 * Build is O(n log n + K) for K candidate keys; a view is immutable and
 * read without locks.
 */
#include "filter_index.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "condition.h"

#define NONE UINT32_MAX
#define MAX_STRUCTS (OWFP_VIEW_ITER_MAX_CURSORS - 1) /* one cursor is the residual list */
#define MAX_GROUP_KEYS 256u
#define RANGE_EXPAND_MAX 256u

/* A posting list's key; a structure's key has hi == lo == 0. */
struct ikey {
    uint64_t hi, lo; /* the value as a 128-bit number; integers only use lo */
    uint32_t sub;
    uint32_t type; /* FWP_DATA_TYPE of the incoming value */
    uint16_t field;
    uint8_t plen; /* leading bits of the value that count */
};

struct view_struct {
    uint32_t type;
    uint16_t field;
    uint8_t plen;
};

struct view_sub {
    uint32_t rank;
    uint32_t first, count;       /* entries[first .. first + count) */
    uint32_t residual_off, nresidual;
    uint32_t struct_first, nstructs;
};

/* Open addressing over ids into a key array. */
struct table {
    uint32_t *slot;
    uint32_t mask;
};

struct owfp_layer_view {
    uint16_t layer_id;
    size_t n;
    struct owfp_view_entry *entries;
    struct view_sub *subs;
    uint32_t nsubs;
    struct view_struct *structs;
    struct ikey *keys;
    struct table tab;
    uint32_t *post_off, *post_len;
    uint32_t *postings;
};

/* ------------------------------------------------------------ key values */

static unsigned type_width(uint32_t t)
{
    switch (t) {
    case FWP_UINT8:
    case FWP_INT8:
        return 8;
    case FWP_UINT16:
    case FWP_INT16:
        return 16;
    case FWP_UINT32:
    case FWP_INT32:
        return 32;
    case FWP_UINT64:
    case FWP_INT64:
        return 64;
    case FWP_BYTE_ARRAY16_TYPE:
        return 128;
    default:
        return 0;
    }
}

static uint64_t width_mask(unsigned w)
{
    return w >= 64 ? UINT64_MAX : (UINT64_C(1) << w) - 1;
}

/* The bits a value is indexed by: integers as their w-bit two's complement,
 * byte arrays as a big-endian 128-bit number. */
static bool value_bits(const FWP_VALUE0 *v, uint64_t *hi, uint64_t *lo)
{
    *hi = 0;
    switch (v->type) {
    case FWP_UINT8:
        *lo = v->uint8;
        return true;
    case FWP_UINT16:
        *lo = v->uint16;
        return true;
    case FWP_UINT32:
        *lo = v->uint32;
        return true;
    case FWP_UINT64:
        if (!v->uint64)
            return false;
        *lo = *v->uint64;
        return true;
    case FWP_INT8:
        *lo = (uint8_t)v->int8;
        return true;
    case FWP_INT16:
        *lo = (uint16_t)v->int16;
        return true;
    case FWP_INT32:
        *lo = (uint32_t)v->int32;
        return true;
    case FWP_INT64:
        if (!v->int64)
            return false;
        *lo = (uint64_t)*v->int64;
        return true;
    case FWP_BYTE_ARRAY16_TYPE:
        if (!v->byteArray16)
            return false;
        *lo = 0;
        for (int i = 0; i < 8; i++) {
            *hi = (*hi << 8) | v->byteArray16->byteArray16[i];
            *lo = (*lo << 8) | v->byteArray16->byteArray16[8 + i];
        }
        return true;
    default:
        return false;
    }
}

/* Keeps the leading k->plen bits of a `width`-bit value. */
static void keep_prefix(struct ikey *k, unsigned width)
{
    unsigned z = width > k->plen ? width - k->plen : 0;
    if (z >= 128) {
        k->hi = k->lo = 0;
    } else if (z >= 64) {
        k->lo = 0;
        k->hi &= ~width_mask(z - 64);
    } else if (z) {
        k->lo &= ~width_mask(z);
    }
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

static uint32_t key_hash(const struct ikey *k)
{
    uint64_t h = mix(k->lo + UINT64_C(0x9e3779b97f4a7c15));
    h = mix(h ^ k->hi);
    h = mix(h ^ (((uint64_t)k->sub << 32) | k->type));
    h = mix(h ^ (((uint64_t)k->field << 8) | k->plen));
    return (uint32_t)h;
}

static bool key_eq(const struct ikey *a, const struct ikey *b)
{
    return a->lo == b->lo && a->hi == b->hi && a->sub == b->sub && a->type == b->type &&
           a->field == b->field && a->plen == b->plen;
}

/* ----------------------------------------------------------- hash table */

static bool table_init(struct table *t, uint32_t nkeys)
{
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)nkeys)
        cap *= 2;
    if (cap > UINT32_MAX)
        return false;
    t->slot = owfp_malloc(sizeof(uint32_t) * cap);
    if (!t->slot)
        return false;
    memset(t->slot, 0xFF, sizeof(uint32_t) * cap);
    t->mask = (uint32_t)(cap - 1);
    return true;
}

/* The slot holding `k`, or the empty slot where it belongs. */
static uint32_t *table_slot(const struct table *t, const struct ikey *keys, const struct ikey *k)
{
    uint32_t i = key_hash(k) & t->mask;
    while (t->slot[i] != NONE && !key_eq(&keys[t->slot[i]], k))
        i = (i + 1) & t->mask;
    return &t->slot[i];
}

static uint32_t table_find(const struct table *t, const struct ikey *keys, const struct ikey *k)
{
    return *table_slot(t, keys, k);
}

/* Capacity was sized from an upper bound of the keys, so no growth. */
static uint32_t table_insert(struct table *t, struct ikey *keys, uint32_t *nkeys,
                             const struct ikey *k, bool *created)
{
    uint32_t *s = table_slot(t, keys, k);
    *created = *s == NONE;
    if (*created) {
        keys[*nkeys] = *k;
        *s = (*nkeys)++;
    }
    return *s;
}

/* ------------------------------------------------------- group key sets */

struct keyset {
    uint32_t n;
    struct ikey k[MAX_GROUP_KEYS];
};

static bool push_key(struct keyset *ks, const struct ikey *k)
{
    if (ks->n >= MAX_GROUP_KEYS)
        return false;
    ks->k[ks->n++] = *k;
    return true;
}

static bool exact_key(const FWP_VALUE0 *v, uint16_t field, uint32_t sub, struct keyset *ks)
{
    struct ikey k = {.sub = sub, .type = v->type, .field = field};
    k.plen = (uint8_t)type_width(v->type);
    return k.plen && value_bits(v, &k.hi, &k.lo) && push_key(ks, &k);
}

static bool v4_key(const FWP_V4_ADDR_AND_MASK *m, uint16_t field, uint32_t sub, struct keyset *ks)
{
    if (!m || ((~m->mask) & (~m->mask + 1u)) != 0)
        return false; /* not a prefix: cannot be looked up */
    struct ikey k = {.sub = sub, .type = FWP_UINT32, .field = field};
    k.plen = (uint8_t)__builtin_popcount(m->mask);
    k.lo = m->addr & m->mask;
    return push_key(ks, &k);
}

static bool v6_key(const FWP_V6_ADDR_AND_MASK *m, uint16_t field, uint32_t sub, struct keyset *ks)
{
    if (!m || m->prefixLength > 128)
        return false;
    FWP_BYTE_ARRAY16 a;
    memcpy(a.byteArray16, m->addr, 16);
    FWP_VALUE0 v = {.type = FWP_BYTE_ARRAY16_TYPE};
    v.byteArray16 = &a;
    struct ikey k = {.sub = sub, .type = FWP_BYTE_ARRAY16_TYPE, .field = field};
    k.plen = m->prefixLength;
    value_bits(&v, &k.hi, &k.lo);
    keep_prefix(&k, 128);
    return push_key(ks, &k);
}

/* A narrow integer range, expanded into its values. Signed types are walked
 * in their order by flipping the sign bit. */
static bool range_keys(const FWP_RANGE0 *r, uint16_t field, uint32_t sub, struct keyset *ks)
{
    uint32_t t = r->valueLow.type;
    unsigned w = type_width(t);
    uint64_t hi_unused, lo, hi;
    if (!w || w > 64 || r->valueHigh.type != t || !value_bits(&r->valueLow, &hi_unused, &lo) ||
        !value_bits(&r->valueHigh, &hi_unused, &hi))
        return false;
    uint64_t flip = (t >= FWP_INT8 && t <= FWP_INT64) ? UINT64_C(1) << (w - 1) : 0;
    uint64_t olo = lo ^ flip, ohi = hi ^ flip;
    if (olo > ohi || ohi - olo >= RANGE_EXPAND_MAX)
        return false;
    for (uint64_t o = olo;; o++) {
        struct ikey k = {.sub = sub, .type = t, .field = field, .plen = (uint8_t)w};
        k.lo = (o ^ flip) & width_mask(w);
        if (!push_key(ks, &k))
            return false;
        if (o == ohi)
            return true;
    }
}

static bool member_keys(const FWPS_FILTER_CONDITION0 *c, uint32_t sub, struct keyset *ks)
{
    const FWP_CONDITION_VALUE0 *cv = &c->conditionValue;
    switch (cv->type) {
    case FWP_V4_ADDR_MASK:
        return c->matchType == FWP_MATCH_EQUAL && v4_key(cv->v4AddrMask, c->fieldId, sub, ks);
    case FWP_V6_ADDR_MASK:
        return c->matchType == FWP_MATCH_EQUAL && v6_key(cv->v6AddrMask, c->fieldId, sub, ks);
    case FWP_RANGE_TYPE:
        return c->matchType == FWP_MATCH_RANGE && cv->rangeValue &&
               range_keys(cv->rangeValue, c->fieldId, sub, ks);
    default:
        break;
    }
    if (c->matchType != FWP_MATCH_EQUAL || !type_width(cv->type))
        return false;
    FWP_VALUE0 v = owfp_condition_value_plain(cv);
    return exact_key(&v, c->fieldId, sub, ks);
}

/* All keys of the OR group [b, e); false when some member is not indexable. */
static bool group_keys(const struct owfp_view_entry *e, uint32_t b, uint32_t end, uint32_t sub,
                       struct keyset *ks)
{
    ks->n = 0;
    for (uint32_t i = b; i < end; i++)
        if (!member_keys(&e->conds[i], sub, ks))
            return false;
    return true;
}

/* ---------------------------------------------------------------- build */

struct builder {
    struct owfp_layer_view *v;
    struct keyset ks;
    uint32_t nkeys;
    uint32_t *freq;    /* per key: candidate filters; later a fill counter */
    uint32_t *kstruct; /* per key: its structure */
    uint32_t *last;    /* per key: last entry filed there */
    struct ikey *skeys;
    struct table stab;
    uint32_t nstructs;
    uint64_t *sweight; /* per structure: candidate postings */
    bool *skept;
    uint32_t *choice;  /* per entry: first condition of its group, NONE = residual */
};

struct sortable {
    struct owfp_view_entry e;
    uint32_t idx;
};

static int cmp_eval_order(const void *pa, const void *pb)
{
    const struct sortable *a = pa, *b = pb;
    if (a->e.sublayer_rank != b->e.sublayer_rank)
        return a->e.sublayer_rank < b->e.sublayer_rank ? -1 : 1;
    if (a->e.weight != b->e.weight)
        return a->e.weight > b->e.weight ? -1 : 1;
    if (a->e.filter_id != b->e.filter_id)
        return a->e.filter_id < b->e.filter_id ? -1 : 1;
    return a->idx < b->idx ? -1 : (a->idx > b->idx);
}

static bool sort_entries(struct owfp_layer_view *v, const struct owfp_view_entry *in, size_t n)
{
    struct sortable *tmp = owfp_malloc(sizeof(*tmp) * n);
    v->entries = owfp_malloc(sizeof(*v->entries) * n);
    if (!tmp || !v->entries) {
        owfp_free(tmp);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        tmp[i].e = in[i];
        tmp[i].idx = (uint32_t)i;
    }
    qsort(tmp, n, sizeof(*tmp), cmp_eval_order);
    for (size_t i = 0; i < n; i++)
        v->entries[i] = tmp[i].e;
    owfp_free(tmp);
    return true;
}

static bool split_sublayers(struct owfp_layer_view *v)
{
    uint32_t count = 0;
    for (size_t i = 0; i < v->n; i++)
        if (i == 0 || v->entries[i].sublayer_rank != v->entries[i - 1].sublayer_rank)
            count++;
    v->subs = owfp_calloc(count, sizeof(*v->subs));
    if (!v->subs)
        return false;
    for (size_t i = 0; i < v->n; i++) {
        if (i == 0 || v->entries[i].sublayer_rank != v->entries[i - 1].sublayer_rank) {
            v->subs[v->nsubs].rank = v->entries[i].sublayer_rank;
            v->subs[v->nsubs].first = (uint32_t)i;
            v->nsubs++;
        }
        v->subs[v->nsubs - 1].count++;
    }
    return true;
}

/* Calls fn on every indexable group of every entry, with its keys in b->ks. */
typedef bool (*group_fn)(struct builder *b, uint32_t entry, uint32_t group);

static bool for_each_group(struct builder *b, group_fn fn)
{
    struct owfp_layer_view *v = b->v;
    for (uint32_t s = 0; s < v->nsubs; s++) {
        const struct view_sub *sub = &v->subs[s];
        for (uint32_t i = sub->first; i < sub->first + sub->count; i++) {
            const struct owfp_view_entry *e = &v->entries[i];
            if (!e->conds)
                continue;
            for (uint32_t g = 0; g < e->nconds; g = owfp_condition_group_end(e->conds, e->nconds, g))
                if (group_keys(e, g, owfp_condition_group_end(e->conds, e->nconds, g), s, &b->ks) &&
                    !fn(b, i, g))
                    return false;
        }
    }
    return true;
}

static bool count_keys(struct builder *b, uint32_t entry, uint32_t group)
{
    (void)entry;
    (void)group;
    if (b->nkeys > NONE - 1 - b->ks.n)
        return false;
    b->nkeys += b->ks.n;
    return true;
}

static bool add_candidates(struct builder *b, uint32_t entry, uint32_t group)
{
    struct owfp_layer_view *v = b->v;
    (void)entry;
    (void)group;
    for (uint32_t i = 0; i < b->ks.n; i++) {
        bool created;
        uint32_t id = table_insert(&v->tab, v->keys, &b->nkeys, &b->ks.k[i], &created);
        if (created) {
            struct ikey sk = b->ks.k[i];
            sk.hi = sk.lo = 0;
            b->kstruct[id] = table_insert(&b->stab, b->skeys, &b->nstructs, &sk, &created);
        }
        b->freq[id]++;
        b->sweight[b->kstruct[id]]++;
    }
    return true;
}

static bool alloc_build_arrays(struct builder *b, uint32_t bound)
{
    struct owfp_layer_view *v = b->v;
    size_t cap = bound ? bound : 1;
    v->keys = owfp_malloc(sizeof(*v->keys) * cap);
    b->skeys = owfp_malloc(sizeof(*b->skeys) * cap);
    b->freq = owfp_calloc(cap, sizeof(uint32_t));
    b->kstruct = owfp_malloc(sizeof(uint32_t) * cap);
    b->last = owfp_malloc(sizeof(uint32_t) * cap);
    b->sweight = owfp_calloc(cap, sizeof(uint64_t));
    b->skept = owfp_calloc(cap, sizeof(bool));
    v->post_off = owfp_calloc(cap, sizeof(uint32_t));
    v->post_len = owfp_calloc(cap, sizeof(uint32_t));
    b->choice = owfp_malloc(sizeof(uint32_t) * (v->n ? v->n : 1));
    if (!v->keys || !b->skeys || !b->freq || !b->kstruct || !b->last || !b->sweight ||
        !b->skept || !v->post_off || !v->post_len || !b->choice)
        return false;
    memset(b->last, 0xFF, sizeof(uint32_t) * cap);
    return table_init(&v->tab, bound) && table_init(&b->stab, bound);
}

/* Structure order for keeping: by sublayer, most candidates first, then a
 * fixed order so the choice does not depend on hash layout. */
struct struct_rank {
    uint64_t weight;
    uint32_t sub, type, id;
    uint16_t field;
    uint8_t plen;
};

static int cmp_structs(const void *pa, const void *pb)
{
    const struct struct_rank *a = pa, *b = pb;
    if (a->sub != b->sub)
        return a->sub < b->sub ? -1 : 1;
    if (a->weight != b->weight)
        return a->weight > b->weight ? -1 : 1;
    if (a->field != b->field)
        return a->field < b->field ? -1 : 1;
    if (a->type != b->type)
        return a->type < b->type ? -1 : 1;
    return (a->plen > b->plen) - (a->plen < b->plen);
}

static bool keep_structs(struct builder *b)
{
    struct owfp_layer_view *v = b->v;
    size_t cap = b->nstructs ? b->nstructs : 1;
    struct struct_rank *order = owfp_malloc(sizeof(*order) * cap);
    v->structs = owfp_malloc(sizeof(*v->structs) * cap);
    if (!order || !v->structs) {
        owfp_free(order);
        return false;
    }
    for (uint32_t i = 0; i < b->nstructs; i++) {
        const struct ikey *k = &b->skeys[i];
        order[i] = (struct struct_rank){b->sweight[i], k->sub, k->type, i, k->field, k->plen};
    }
    qsort(order, b->nstructs, sizeof(*order), cmp_structs);
    uint32_t kept = 0;
    for (uint32_t i = 0; i < b->nstructs; i++) {
        struct view_sub *sub = &v->subs[order[i].sub];
        if (sub->nstructs == 0)
            sub->struct_first = kept;
        if (sub->nstructs >= MAX_STRUCTS)
            continue;
        b->skept[order[i].id] = true;
        v->structs[kept++] = (struct view_struct){order[i].type, order[i].field, order[i].plen};
        sub->nstructs++;
    }
    owfp_free(order);
    return true;
}

/* Cost of filing under the group in b->ks: its candidates; NONE when it
 * needs a dropped structure. */
static uint64_t group_cost(const struct builder *b)
{
    uint64_t cost = 0;
    for (uint32_t i = 0; i < b->ks.n; i++) {
        uint32_t id = table_find(&b->v->tab, b->v->keys, &b->ks.k[i]);
        if (!b->skept[b->kstruct[id]])
            return UINT64_MAX;
        cost += b->freq[id];
    }
    return cost;
}

static void choose_group(struct builder *b, uint32_t entry, uint32_t sub)
{
    const struct owfp_view_entry *e = &b->v->entries[entry];
    uint64_t best = UINT64_MAX;
    uint32_t best_keys = 0;
    b->choice[entry] = NONE;
    if (!e->conds)
        return;
    for (uint32_t g = 0; g < e->nconds; g = owfp_condition_group_end(e->conds, e->nconds, g)) {
        if (!group_keys(e, g, owfp_condition_group_end(e->conds, e->nconds, g), sub, &b->ks))
            continue;
        uint64_t cost = group_cost(b);
        if (cost < best || (cost == best && cost != UINT64_MAX && b->ks.n < best_keys)) {
            best = cost;
            best_keys = b->ks.n;
            b->choice[entry] = g;
        }
    }
}

/* Keys of the group chosen for `entry`, into b->ks. */
static void chosen_keys(struct builder *b, uint32_t entry, uint32_t sub)
{
    const struct owfp_view_entry *e = &b->v->entries[entry];
    uint32_t g = b->choice[entry];
    group_keys(e, g, owfp_condition_group_end(e->conds, e->nconds, g), sub, &b->ks);
}

/* Counts (fill == false) or writes (fill == true) the postings. Repeated
 * keys of one filter are filed once. */
static void file_postings(struct builder *b, bool fill)
{
    struct owfp_layer_view *v = b->v;
    for (uint32_t s = 0; s < v->nsubs; s++) {
        struct view_sub *sub = &v->subs[s];
        uint32_t residual = 0;
        for (uint32_t i = sub->first; i < sub->first + sub->count; i++) {
            if (b->choice[i] == NONE) {
                if (fill)
                    v->postings[sub->residual_off + residual] = i;
                residual++;
                continue;
            }
            chosen_keys(b, i, s);
            for (uint32_t k = 0; k < b->ks.n; k++) {
                uint32_t id = table_find(&v->tab, v->keys, &b->ks.k[k]);
                if (b->last[id] == i)
                    continue;
                b->last[id] = i;
                if (fill)
                    v->postings[v->post_off[id] + b->freq[id]++] = i;
                else
                    v->post_len[id]++;
            }
        }
        sub->nresidual = residual;
    }
}

static bool lay_out_postings(struct builder *b)
{
    struct owfp_layer_view *v = b->v;
    uint64_t total = 0;
    for (uint32_t id = 0; id < b->nkeys; id++) {
        v->post_off[id] = (uint32_t)total;
        total += v->post_len[id];
    }
    for (uint32_t s = 0; s < v->nsubs; s++) {
        v->subs[s].residual_off = (uint32_t)total;
        total += v->subs[s].nresidual;
    }
    if (total >= NONE)
        return false;
    v->postings = owfp_malloc(sizeof(uint32_t) * (total ? total : 1));
    if (!v->postings)
        return false;
    memset(b->freq, 0, sizeof(uint32_t) * b->nkeys);
    memset(b->last, 0xFF, sizeof(uint32_t) * b->nkeys);
    return true;
}

static bool build_index(struct builder *b)
{
    b->nkeys = 0;
    if (!for_each_group(b, count_keys))
        return false;
    uint32_t bound = b->nkeys;
    b->nkeys = 0;
    if (!alloc_build_arrays(b, bound) || !for_each_group(b, add_candidates) || !keep_structs(b))
        return false;
    for (uint32_t s = 0; s < b->v->nsubs; s++)
        for (uint32_t i = 0; i < b->v->subs[s].count; i++)
            choose_group(b, b->v->subs[s].first + i, s);
    file_postings(b, false);
    if (!lay_out_postings(b))
        return false;
    file_postings(b, true);
    return true;
}

static void free_builder(struct builder *b)
{
    owfp_free(b->freq);
    owfp_free(b->kstruct);
    owfp_free(b->last);
    owfp_free(b->skeys);
    owfp_free(b->stab.slot);
    owfp_free(b->sweight);
    owfp_free(b->skept);
    owfp_free(b->choice);
    owfp_free(b);
}

struct owfp_layer_view *owfp_view_build(uint16_t layer_id, const struct owfp_view_entry *entries,
                                        size_t n)
{
    if ((n && !entries) || n >= NONE)
        return NULL;
    struct owfp_layer_view *v = owfp_calloc(1, sizeof(*v));
    struct builder *b = owfp_calloc(1, sizeof(*b));
    if (!v || !b) {
        owfp_free(v);
        owfp_free(b);
        return NULL;
    }
    v->layer_id = layer_id;
    v->n = n;
    b->v = v;
    bool ok = n == 0 || (sort_entries(v, entries, n) && split_sublayers(v) && build_index(b));
    free_builder(b);
    if (!ok) {
        owfp_view_free(v);
        return NULL;
    }
    return v;
}

void owfp_view_free(struct owfp_layer_view *view)
{
    if (!view)
        return;
    owfp_free(view->entries);
    owfp_free(view->subs);
    owfp_free(view->structs);
    owfp_free(view->keys);
    owfp_free(view->tab.slot);
    owfp_free(view->post_off);
    owfp_free(view->post_len);
    owfp_free(view->postings);
    owfp_free(view);
}

uint32_t owfp_view_sublayer_count(const struct owfp_layer_view *view)
{
    return view ? view->nsubs : 0;
}

uint32_t owfp_view_sublayer_rank(const struct owfp_layer_view *view, uint32_t index)
{
    return view && index < view->nsubs ? view->subs[index].rank : UINT32_MAX;
}

size_t owfp_view_filter_count(const struct owfp_layer_view *view)
{
    return view ? view->n : 0;
}

/* ----------------------------------------------------------- iteration */

static void add_cursor(struct owfp_view_iter *it, const uint32_t *list, uint32_t len)
{
    if (!len)
        return;
    it->cursor[it->ncursors].pos = list;
    it->cursor[it->ncursors].end = list + len;
    it->ncursors++;
}

static void add_struct_cursor(struct owfp_view_iter *it, uint32_t sub, const struct view_struct *st)
{
    const struct owfp_layer_view *v = it->view;
    if (!it->in || !it->in->incomingValue || st->field >= it->in->valueCount)
        return;
    const FWP_VALUE0 *val = &it->in->incomingValue[st->field].value;
    struct ikey k = {.sub = sub, .type = st->type, .field = st->field, .plen = st->plen};
    if (val->type != st->type || !value_bits(val, &k.hi, &k.lo))
        return;
    keep_prefix(&k, type_width(st->type));
    uint32_t id = table_find(&v->tab, v->keys, &k);
    if (id != NONE)
        add_cursor(it, v->postings + v->post_off[id], v->post_len[id]);
}

void owfp_view_iter_init(struct owfp_view_iter *it, const struct owfp_layer_view *view,
                         uint32_t sublayer_index, const FWPS_INCOMING_VALUES0 *in)
{
    it->view = view;
    it->in = in;
    it->sublayer = sublayer_index;
    it->ncursors = 0;
    it->last_id = 0;
    it->have_last = 0;
    if (!view || sublayer_index >= view->nsubs)
        return;
    const struct view_sub *sub = &view->subs[sublayer_index];
    add_cursor(it, view->postings + sub->residual_off, sub->nresidual);
    for (uint32_t i = 0; i < sub->nstructs; i++)
        add_struct_cursor(it, sublayer_index, &view->structs[sub->struct_first + i]);
}

/* Smallest head position over the cursors, advancing that cursor; drops
 * exhausted cursors. NONE when all are exhausted. */
static uint32_t pop_min(struct owfp_view_iter *it)
{
    uint32_t best = NONE, bi = 0;
    for (uint32_t c = 0; c < it->ncursors; c++) {
        if (*it->cursor[c].pos < best) {
            best = *it->cursor[c].pos;
            bi = c;
        }
    }
    if (best == NONE)
        return NONE;
    if (++it->cursor[bi].pos == it->cursor[bi].end)
        it->cursor[bi] = it->cursor[--it->ncursors];
    return best;
}

void *owfp_view_iter_next(struct owfp_view_iter *it)
{
    for (;;) {
        uint32_t pos = pop_min(it);
        if (pos == NONE)
            return NULL;
        if (it->have_last && it->last_id == pos)
            continue;
        it->have_last = 1;
        it->last_id = pos;
        const struct owfp_view_entry *e = &it->view->entries[pos];
        if (owfp_conditions_match(e->conds, e->nconds, it->in))
            return e->owner;
    }
}
