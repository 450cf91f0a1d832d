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
 *     masks;
 *   - integer intervals: RANGE, and GREATER, LESS, GREATER_OR_EQUAL,
 *     LESS_OR_EQUAL as the interval up to the type's maximum or down to its
 *     minimum. An interval of at most RANGE_EXPAND_MAX values is expanded
 *     into its values; a wider one is split into the fewest aligned prefix
 *     blocks that cover it exactly (at most 2 * width - 2 blocks: 30 for a
 *     16-bit port, 62 for 32 bits), each looked up like an address mask.
 *     Signed types are split in their order by flipping the sign bit, which
 *     keeps every block a prefix of the two's complement value;
 *   - an OR group is indexable when all of its members are, and is filed
 *     under every alternative.
 * A key is (sublayer, field, incoming type, prefix length, the value's
 * leading prefix-length bits): exact integers use the type's width as the
 * prefix length, masks and interval blocks their prefix length, so a field
 * has one "structure" (field, type, prefix length) per prefix length in use.
 * The group chosen is the one whose keys have the fewest candidate filters
 * in the sublayer (counted over all indexable groups of all filters), so an
 * enum-like field shared by everybody loses against a port or an address.
 * Filters with no indexable group, zero conditions included, go to the
 * sublayer's residual list.
 *
 * The view keeps only the keys some filter is filed under, and only the
 * structures that hold such a key. A structure whose 2^plen possible values
 * are few (at most DIRECT_MIN_SLOTS, or DIRECT_SLOTS_PER_KEY per key it
 * holds) is an array indexed by the value's prefix; the others share one
 * open-addressing hash table keyed by (structure, prefix). Most lookups
 * find nothing, and a miss in a large table is a cache miss, so every
 * structure also has a small summary bitmap that is tested first: one bit
 * per possible prefix when there are few (EXACT_*), else HASHED_BITS_PER_KEY
 * bits per key indexed by the key's hash (about 6% false positives).
 *
 * Lookup. For each structure of the sublayer the incoming value of its field
 * is cut to the structure's prefix length and looked up: at most one
 * posting list per structure, plus the residual list. A sublayer keeps at
 * most OWFP_VIEW_ITER_MAX_CURSORS - 1 structures (those holding the most
 * candidates); groups that need a dropped structure are not eligible, so a
 * filter left without a group goes to the residual list. The iterator merges
 * the lists by position, skips repeats (a filter reached through two
 * alternatives of its OR group, or two blocks of overlapping intervals) and
 * checks every candidate with owfp_conditions_match(), which keeps the index
 * a pure pre-filter.
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
#define RANGE_EXPAND_MAX 16u      /* intervals of at most this many values: exact keys */
#define DIRECT_PLEN_MAX 24u       /* direct arrays have at most 2^24 slots... */
#define DIRECT_MIN_SLOTS 16u      /* ...and at most this many */
#define DIRECT_SLOTS_PER_KEY 8u   /* or this many per key they hold */
#define EXACT_BITS_MIN 512u       /* summaries of at most this many bits... */
#define EXACT_BITS_PER_KEY 32u    /* ...or this many per key are exact */
#define HASHED_BITS_PER_KEY 16u   /* else a hashed summary has this many per key */
_Static_assert(DIRECT_MIN_SLOTS <= EXACT_BITS_MIN && DIRECT_SLOTS_PER_KEY <= EXACT_BITS_PER_KEY,
               "a direct structure has an exact summary");

/* A key while building; a structure's key has hi == lo == 0. */
struct ikey {
    uint64_t hi, lo; /* the value as a 128-bit number; integers only use lo */
    uint32_t sub;
    uint32_t type; /* FWP_DATA_TYPE of the incoming value */
    uint16_t field;
    uint8_t plen; /* leading bits of the value that count */
};

/* A structure of the view: one lookup per classify of its sublayer. Its
 * summary says which values may have a list: one bit per possible prefix
 * when those are few (exact), else a bit per hash value (hashed). */
struct view_struct {
    uint32_t type;
    uint16_t field;
    uint8_t plen;
    uint8_t width;    /* the type's width in bits */
    uint32_t direct;  /* first of its 2^plen slots in view->direct; NONE: hashed */
    uint32_t summary; /* first word of its summary in view->summary */
    uint32_t sum_mask; /* hashed summary: bits - 1; NONE: exact */
};

struct view_sub {
    uint32_t rank;
    uint32_t first, count; /* entries[first .. first + count) */
    uint32_t residual_off, nresidual;
    uint32_t struct_first, nstructs;
};

/* A posting list: postings[off .. off + len); len == 0 means none. */
struct vlist {
    uint32_t off, len;
};

/* A hashed key of the view: its structure's index in view->structs and the
 * value's prefix. Free slots have list.len == 0. */
struct vslot {
    uint64_t hi, lo;
    uint32_t st;
    struct vlist list;
};

/* A set of keys with open-addressing lookup; grows by doubling. The keys
 * live in an array of `stride`-byte records that start with the ikey; a
 * slot holds a record's id and the key's hash (hash << 32 | id), so that
 * probing and rehashing seldom touch the records. Used while building. */
#define EMPTY_SLOT UINT64_MAX
struct keyset_table {
    void *recs;
    size_t stride;
    uint32_t n, cap;
    uint64_t *slot;
    uint32_t mask;
};

struct owfp_layer_view {
    uint16_t layer_id;
    size_t n;
    struct owfp_view_entry *entries;
    struct view_sub *subs;
    uint32_t nsubs;
    struct view_struct *structs;
    struct vslot *slots; /* linear probing, load at most 1/2 */
    uint32_t slot_mask;
    struct vlist *direct;
    uint64_t *summary;
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

/* Keeps the leading `plen` bits of a `width`-bit value. */
static void keep_bits(uint64_t *hi, uint64_t *lo, unsigned width, unsigned plen)
{
    unsigned z = width > plen ? width - plen : 0;
    if (z >= 128) {
        *hi = *lo = 0;
    } else if (z >= 64) {
        *lo = 0;
        *hi &= ~width_mask(z - 64);
    } else if (z) {
        *lo &= ~width_mask(z);
    }
}

static void keep_prefix(struct ikey *k, unsigned width)
{
    keep_bits(&k->hi, &k->lo, width, k->plen);
}

/* The leading `plen` (at most 64) bits of a `width`-bit value as a number:
 * the slot of a direct structure. */
static uint32_t direct_index(uint64_t hi, uint64_t lo, unsigned width, unsigned plen)
{
    if (!plen)
        return 0;
    uint64_t top = width > 64 ? hi : lo << (64 - width);
    return (uint32_t)(top >> (64 - plen));
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
    return (uint32_t)mix(k->lo ^ (k->hi * UINT64_C(0x9e3779b97f4a7c15)) ^
                         ((((uint64_t)k->sub << 32) | k->type) * UINT64_C(0xc2b2ae3d27d4eb4f)) ^
                         ((((uint64_t)k->field << 8) | k->plen) * UINT64_C(0x165667b19e3779f9)));
}

static bool key_eq(const struct ikey *a, const struct ikey *b)
{
    return a->lo == b->lo && a->hi == b->hi && a->sub == b->sub && a->type == b->type &&
           a->field == b->field && a->plen == b->plen;
}

/* The view's hash: one round, the structure index standing for sublayer,
 * field, type and prefix length. The low half picks the slot, the high half
 * the bit of a hashed summary. */
static uint64_t slot_hash(uint32_t st, uint64_t hi, uint64_t lo)
{
    return mix(lo ^ (hi * UINT64_C(0x9e3779b97f4a7c15)) ^
               ((uint64_t)st * UINT64_C(0xc2b2ae3d27d4eb4f)));
}

static bool test_bit(const uint64_t *words, uint64_t bit)
{
    return (words[bit >> 6] >> (bit & 63)) & 1;
}

/* ----------------------------------------------------------- hash table */

static const struct ikey *rec_key(const struct keyset_table *t, uint32_t id)
{
    return (const struct ikey *)((const char *)t->recs + (size_t)id * t->stride);
}

/* The slot holding `k` (hash h), or the empty slot where it belongs. */
static uint64_t *table_slot(const struct keyset_table *t, const struct ikey *k, uint32_t h)
{
    uint32_t i = h & t->mask;
    for (;; i = (i + 1) & t->mask) {
        uint64_t s = t->slot[i];
        if (s == EMPTY_SLOT || ((uint32_t)(s >> 32) == h && key_eq(rec_key(t, (uint32_t)s), k)))
            return &t->slot[i];
    }
}

static bool table_rehash(struct keyset_table *t, uint64_t nslots)
{
    if (nslots > (uint64_t)UINT32_MAX + 1)
        return false;
    uint64_t *slot = owfp_malloc(sizeof(uint64_t) * nslots);
    if (!slot)
        return false;
    memset(slot, 0xFF, sizeof(uint64_t) * nslots);
    uint32_t mask = (uint32_t)(nslots - 1);
    for (uint64_t j = 0; t->slot && j <= t->mask; j++) {
        uint64_t s = t->slot[j];
        if (s == EMPTY_SLOT)
            continue;
        uint32_t i = (uint32_t)(s >> 32) & mask;
        while (slot[i] != EMPTY_SLOT)
            i = (i + 1) & mask;
        slot[i] = s;
    }
    owfp_free(t->slot);
    t->slot = slot;
    t->mask = mask;
    return true;
}

/* An empty table sized for about `n` keys (the records' memory is only
 * reserved, not touched). */
static bool table_init(struct keyset_table *t, size_t stride, uint64_t n)
{
    uint64_t nslots = 128;
    while (nslots < 2 * n && nslots <= UINT32_MAX / 2)
        nslots *= 2;
    t->stride = stride;
    t->cap = (uint32_t)(nslots / 2);
    t->recs = owfp_malloc(stride * t->cap);
    return t->recs && table_rehash(t, nslots);
}

/* Room for one more record: array and slots, load factor at most 1/2. */
static bool table_reserve(struct keyset_table *t)
{
    if (t->n == NONE - 1)
        return false;
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? (t->cap > NONE / 2 ? NONE - 1 : t->cap * 2) : 64;
        void *recs = owfp_realloc(t->recs, t->stride * cap);
        if (!recs)
            return false;
        t->recs = recs;
        t->cap = cap;
    }
    if (!t->slot || 2 * ((uint64_t)t->n + 1) > (uint64_t)t->mask + 1)
        return table_rehash(t, t->slot ? 2 * ((uint64_t)t->mask + 1) : 128);
    return true;
}

/* Id of `k` (hash h), added (record zeroed after the key) when new; NONE on
 * no memory. */
static uint32_t table_insert(struct keyset_table *t, const struct ikey *k, uint32_t h,
                             bool *created)
{
    *created = false;
    uint64_t *s = t->slot ? table_slot(t, k, h) : NULL;
    if (s && *s != EMPTY_SLOT)
        return (uint32_t)*s;
    if (!table_reserve(t))
        return NONE;
    s = table_slot(t, k, h); /* the table may have been rebuilt */
    char *rec = (char *)t->recs + (size_t)t->n * t->stride;
    memset(rec, 0, t->stride);
    memcpy(rec, k, sizeof(*k));
    *created = true;
    *s = ((uint64_t)h << 32) | t->n;
    return t->n++;
}

static void table_free(struct keyset_table *t)
{
    owfp_free(t->recs);
    owfp_free(t->slot);
}

/* ------------------------------------------------------- group key sets */

struct key_list {
    uint32_t n;
    struct ikey k[MAX_GROUP_KEYS];
};

static bool push_key(struct key_list *ks, const struct ikey *k)
{
    if (ks->n >= MAX_GROUP_KEYS)
        return false;
    ks->k[ks->n++] = *k;
    return true;
}

static bool exact_key(const FWP_VALUE0 *v, uint16_t field, uint32_t sub, struct key_list *ks)
{
    struct ikey k = {.sub = sub, .type = v->type, .field = field};
    k.plen = (uint8_t)type_width(v->type);
    return k.plen && value_bits(v, &k.hi, &k.lo) && push_key(ks, &k);
}

static bool v4_key(const FWP_V4_ADDR_AND_MASK *m, uint16_t field, uint32_t sub, struct key_list *ks)
{
    if (!m || ((~m->mask) & (~m->mask + 1u)) != 0)
        return false; /* not a prefix: cannot be looked up */
    struct ikey k = {.sub = sub, .type = FWP_UINT32, .field = field};
    k.plen = (uint8_t)__builtin_popcount(m->mask);
    k.lo = m->addr & m->mask;
    return push_key(ks, &k);
}

static bool v6_key(const FWP_V6_ADDR_AND_MASK *m, uint16_t field, uint32_t sub, struct key_list *ks)
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

/* Added to a signed type's bits to walk its values in order. */
static uint64_t sign_flip(uint32_t t)
{
    return (t >= FWP_INT8 && t <= FWP_INT64) ? UINT64_C(1) << (type_width(t) - 1) : 0;
}

/* An integer value (at most 64 bits) as its rank in the type's order. */
static bool order_of(const FWP_VALUE0 *v, uint64_t *o)
{
    uint64_t hi_unused;
    unsigned w = type_width(v->type);
    if (!w || w > 64 || !value_bits(v, &hi_unused, o))
        return false;
    *o ^= sign_flip(v->type);
    return true;
}

/* The keys of the values of type `t` ranked olo..ohi: the values themselves
 * when few, else the fewest aligned prefix blocks covering them. An empty
 * interval (the condition never matches) is not indexed. */
static bool interval_keys(uint32_t t, uint64_t olo, uint64_t ohi, uint16_t field, uint32_t sub,
                          struct key_list *ks)
{
    unsigned w = type_width(t);
    uint64_t flip = sign_flip(t);
    if (olo > ohi)
        return false;
    struct ikey k = {.sub = sub, .type = t, .field = field, .plen = (uint8_t)w};
    if (ohi - olo < RANGE_EXPAND_MAX) {
        for (uint64_t o = olo;; o++) {
            k.lo = (o ^ flip) & width_mask(w);
            if (!push_key(ks, &k))
                return false;
            if (o == ohi)
                return true;
        }
    }
    for (uint64_t a = olo;;) {
        /* The largest block aligned at `a` that ends at or before ohi. */
        unsigned z = a ? (unsigned)__builtin_ctzll(a) : 64;
        if (z > w)
            z = w;
        while (z && width_mask(z) > ohi - a)
            z--;
        k.plen = (uint8_t)(w - z);
        k.hi = 0;
        k.lo = (a ^ flip) & width_mask(w);
        keep_prefix(&k, w);
        if (!push_key(ks, &k))
            return false;
        uint64_t last = a + width_mask(z);
        if (last == ohi)
            return true;
        a = last + 1;
    }
}

static bool range_keys(const FWP_RANGE0 *r, uint16_t field, uint32_t sub, struct key_list *ks)
{
    uint64_t olo, ohi;
    uint32_t t = r->valueLow.type;
    if (r->valueHigh.type != t || !order_of(&r->valueLow, &olo) || !order_of(&r->valueHigh, &ohi))
        return false;
    return interval_keys(t, olo, ohi, field, sub, ks);
}

/* GREATER, LESS, GREATER_OR_EQUAL, LESS_OR_EQUAL on an integer, as the
 * interval of the values that match. */
static bool order_keys(uint32_t match, const FWP_VALUE0 *v, uint16_t field, uint32_t sub,
                       struct key_list *ks)
{
    uint64_t o;
    if (!order_of(v, &o))
        return false;
    uint64_t max = width_mask(type_width(v->type));
    switch (match) {
    case FWP_MATCH_GREATER:
        return o < max && interval_keys(v->type, o + 1, max, field, sub, ks);
    case FWP_MATCH_GREATER_OR_EQUAL:
        return interval_keys(v->type, o, max, field, sub, ks);
    case FWP_MATCH_LESS:
        return o > 0 && interval_keys(v->type, 0, o - 1, field, sub, ks);
    case FWP_MATCH_LESS_OR_EQUAL:
        return interval_keys(v->type, 0, o, field, sub, ks);
    default:
        return false;
    }
}

static bool member_keys(const FWPS_FILTER_CONDITION0 *c, uint32_t sub, struct key_list *ks)
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
    if (!type_width(cv->type))
        return false;
    FWP_VALUE0 v = owfp_condition_value_plain(cv);
    switch (c->matchType) {
    case FWP_MATCH_EQUAL:
        return exact_key(&v, c->fieldId, sub, ks);
    case FWP_MATCH_GREATER:
    case FWP_MATCH_GREATER_OR_EQUAL:
    case FWP_MATCH_LESS:
    case FWP_MATCH_LESS_OR_EQUAL:
        return order_keys(c->matchType, &v, c->fieldId, sub, ks);
    default:
        return false;
    }
}

/* All keys of the OR group [b, e); false when some member is not indexable. */
static bool group_keys(const struct owfp_view_entry *e, uint32_t b, uint32_t end, uint32_t sub,
                       struct key_list *ks)
{
    ks->n = 0;
    for (uint32_t i = b; i < end; i++)
        if (!member_keys(&e->conds[i], sub, ks))
            return false;
    return true;
}

/* ---------------------------------------------------------------- build */

/* An indexable group of one entry, as found while counting candidates. */
struct cand_group {
    uint32_t entry;
    uint32_t first_key; /* into builder.cand_ids */
    uint32_t nkeys;
};

/* A candidate key while building. */
struct bkey {
    struct ikey k;
    uint32_t freq;  /* candidate groups with this key; later the fill counter */
    uint32_t strct; /* its structure */
    uint32_t last;  /* last entry filed under it */
    uint32_t len;   /* entries filed under it */
    uint32_t off;   /* its list in view->postings */
};

/* A structure (value-free key) and how many candidates it would hold. */
struct struct_rec {
    struct ikey k;
    uint64_t weight;
    uint32_t nfiled;  /* keys with a posting list */
    uint32_t view_id; /* index in view->structs */
    bool kept;        /* within its sublayer's budget */
};

struct builder {
    struct owfp_layer_view *v;
    struct key_list ks;
    struct keyset_table keys;    /* records: struct bkey */
    struct keyset_table structs; /* records: struct struct_rec */
    struct struct_rec **order;   /* structures by sublayer, most candidates first */
    struct cand_group *groups;   /* in entry order */
    uint32_t ngroups, groups_cap;
    uint32_t *cand_ids; /* key ids of every candidate group, back to back */
    uint32_t ncand, cand_cap;
    uint32_t *choice; /* per entry: its group in `groups`, NONE = residual list */
};

static struct bkey *bkey_of(struct builder *b, uint32_t id)
{
    return (struct bkey *)b->keys.recs + id;
}

static struct struct_rec *struct_of(struct builder *b, uint32_t id)
{
    return (struct struct_rec *)b->structs.recs + id;
}

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

/* Calls fn on every indexable group of every entry, in entry order, with
 * the group's keys in b->ks. */
typedef bool (*group_fn)(struct builder *b, uint32_t entry);

static bool for_each_group(struct builder *b, group_fn fn)
{
    struct owfp_layer_view *v = b->v;
    for (uint32_t s = 0; s < v->nsubs; s++) {
        const struct view_sub *sub = &v->subs[s];
        for (uint32_t i = sub->first; i < sub->first + sub->count; i++) {
            const struct owfp_view_entry *e = &v->entries[i];
            if (!e->conds)
                continue;
            for (uint32_t g = 0, end; g < e->nconds; g = end) {
                end = owfp_condition_group_end(e->conds, e->nconds, g);
                if (group_keys(e, g, end, s, &b->ks) && !fn(b, i))
                    return false;
            }
        }
    }
    return true;
}

/* The key's id, registering key and structure on first sight. */
static uint32_t register_key(struct builder *b, const struct ikey *k, uint32_t h)
{
    bool created;
    uint32_t id = table_insert(&b->keys, k, h, &created);
    if (id == NONE || !created)
        return id;
    struct ikey sk = *k;
    sk.hi = sk.lo = 0;
    uint32_t st = table_insert(&b->structs, &sk, key_hash(&sk), &created);
    if (st == NONE)
        return NONE;
    bkey_of(b, id)->strct = st;
    bkey_of(b, id)->last = NONE;
    return id;
}

/* Room for `more` elements in a growing array of `cap` elements. */
static bool grow(void **arr, uint32_t *cap, uint32_t n, uint32_t more, size_t elem)
{
    if ((uint64_t)n + more <= *cap)
        return true;
    if (more > NONE - 1 - n)
        return false;
    uint64_t want = *cap ? *cap : 64;
    while (want < (uint64_t)n + more)
        want *= 2;
    if (want > NONE - 1)
        want = NONE - 1;
    void *p = owfp_realloc(*arr, want * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = (uint32_t)want;
    return true;
}

static bool add_candidates(struct builder *b, uint32_t entry)
{
    if (!grow((void **)&b->groups, &b->groups_cap, b->ngroups, 1, sizeof(*b->groups)) ||
        !grow((void **)&b->cand_ids, &b->cand_cap, b->ncand, b->ks.n, sizeof(*b->cand_ids)))
        return false;
    /* The keys' slots are fetched together: mostly cache misses. */
    uint32_t h[MAX_GROUP_KEYS];
    for (uint32_t i = 0; i < b->ks.n; i++) {
        h[i] = key_hash(&b->ks.k[i]);
        if (b->keys.slot)
            __builtin_prefetch(&b->keys.slot[h[i] & b->keys.mask]);
    }
    b->groups[b->ngroups++] = (struct cand_group){entry, b->ncand, b->ks.n};
    for (uint32_t i = 0; i < b->ks.n; i++) {
        uint32_t id = register_key(b, &b->ks.k[i], h[i]);
        if (id == NONE)
            return false;
        struct bkey *bk = bkey_of(b, id);
        b->cand_ids[b->ncand++] = id;
        bk->freq++;
        struct_of(b, bk->strct)->weight++;
    }
    return true;
}

/* Expect about KEYS_PER_ENTRY distinct candidate keys per entry. */
#define KEYS_PER_ENTRY 4u

static bool alloc_builder(struct builder *b)
{
    size_t n = b->v->n;
    b->choice = owfp_malloc(sizeof(uint32_t) * (n ? n : 1));
    if (!b->choice || !table_init(&b->keys, sizeof(struct bkey), (uint64_t)n * KEYS_PER_ENTRY) ||
        !table_init(&b->structs, sizeof(struct struct_rec), 64))
        return false;
    memset(b->choice, 0xFF, sizeof(uint32_t) * (n ? n : 1));
    return true;
}

/* Structure order for keeping: by sublayer, most candidates first, then a
 * fixed order so the choice does not depend on hash layout. */
static int cmp_structs(const void *pa, const void *pb)
{
    const struct struct_rec *a = *(const struct struct_rec *const *)pa;
    const struct struct_rec *b = *(const struct struct_rec *const *)pb;
    if (a->k.sub != b->k.sub)
        return a->k.sub < b->k.sub ? -1 : 1;
    if (a->weight != b->weight)
        return a->weight > b->weight ? -1 : 1;
    if (a->k.field != b->k.field)
        return a->k.field < b->k.field ? -1 : 1;
    if (a->k.type != b->k.type)
        return a->k.type < b->k.type ? -1 : 1;
    return (a->k.plen > b->k.plen) - (a->k.plen < b->k.plen);
}

/* Marks the structures each sublayer can afford. */
static bool keep_structs(struct builder *b)
{
    uint32_t n = b->structs.n;
    b->order = owfp_malloc(sizeof(*b->order) * (n ? n : 1));
    if (!b->order)
        return false;
    for (uint32_t i = 0; i < n; i++)
        b->order[i] = struct_of(b, i);
    qsort(b->order, n, sizeof(*b->order), cmp_structs);
    uint32_t in_sub = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i == 0 || b->order[i]->k.sub != b->order[i - 1]->k.sub)
            in_sub = 0;
        if (in_sub < MAX_STRUCTS) {
            b->order[i]->kept = true;
            in_sub++;
        }
    }
    return true;
}

/* Cost of filing under a group: its keys' candidates; UINT64_MAX when it
 * needs a dropped structure. */
static uint64_t group_cost(struct builder *b, const struct cand_group *g)
{
    uint64_t cost = 0;
    for (uint32_t i = 0; i < g->nkeys; i++) {
        const struct bkey *bk = bkey_of(b, b->cand_ids[g->first_key + i]);
        if (!struct_of(b, bk->strct)->kept)
            return UINT64_MAX;
        cost += bk->freq;
    }
    return cost;
}

/* Per entry, the cheapest group (ties: fewer keys, then the first). */
static void choose_groups(struct builder *b)
{
    uint64_t best = UINT64_MAX;
    uint32_t best_keys = 0;
    for (uint32_t gi = 0; gi < b->ngroups; gi++) {
        const struct cand_group *g = &b->groups[gi];
        if (gi == 0 || g->entry != b->groups[gi - 1].entry)
            best = UINT64_MAX;
        uint64_t cost = group_cost(b, g);
        if (cost == UINT64_MAX)
            continue;
        if (cost < best || (cost == best && g->nkeys < best_keys)) {
            best = cost;
            best_keys = g->nkeys;
            b->choice[g->entry] = gi;
        }
    }
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
            const struct cand_group *g = &b->groups[b->choice[i]];
            for (uint32_t k = 0; k < g->nkeys; k++) {
                struct bkey *bk = bkey_of(b, b->cand_ids[g->first_key + k]);
                if (bk->last == i)
                    continue;
                bk->last = i;
                if (fill)
                    v->postings[bk->off + bk->freq++] = i;
                else if (bk->len++ == 0)
                    struct_of(b, bk->strct)->nfiled++;
            }
        }
        sub->nresidual = residual;
    }
}

/* The view's structures: the kept ones some filter is filed under, each
 * made direct or hashed, with an exact or hashed summary; allocates the
 * summaries, the direct arrays and the hash table. */
static bool finish_structs(struct builder *b)
{
    struct owfp_layer_view *v = b->v;
    uint32_t n = b->structs.n, nv = 0;
    uint64_t ndirect = 0, nhashed = 0, nwords = 0;
    v->structs = owfp_malloc(sizeof(*v->structs) * (n ? n : 1));
    if (!v->structs)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        struct struct_rec *r = b->order[i];
        if (!r->kept || !r->nfiled)
            continue;
        struct view_sub *sub = &v->subs[r->k.sub];
        if (sub->nstructs++ == 0)
            sub->struct_first = nv;
        struct view_struct *st = &v->structs[nv];
        *st = (struct view_struct){r->k.type, r->k.field, r->k.plen,
                                   (uint8_t)type_width(r->k.type), NONE, 0, NONE};
        /* Possible prefixes, when few enough to be counted. */
        uint64_t size = r->k.plen <= DIRECT_PLEN_MAX ? UINT64_C(1) << r->k.plen : 0;
        uint64_t keys = r->nfiled;
        if (size && ndirect + size < NONE &&
            (size <= DIRECT_MIN_SLOTS || size <= DIRECT_SLOTS_PER_KEY * keys)) {
            st->direct = (uint32_t)ndirect;
            ndirect += size;
        } else {
            nhashed += keys;
        }
        /* Exact when direct, since DIRECT_* <= EXACT_*. */
        uint64_t bits = size;
        if (!size || (size > EXACT_BITS_MIN && size > EXACT_BITS_PER_KEY * keys)) {
            for (bits = 64; bits < HASHED_BITS_PER_KEY * keys && bits < UINT32_MAX / 2;)
                bits *= 2;
            st->sum_mask = (uint32_t)(bits - 1);
        }
        st->summary = (uint32_t)nwords;
        nwords += (bits + 63) / 64;
        if (nwords >= NONE)
            return false;
        r->view_id = nv++;
    }
    v->summary = owfp_calloc(nwords ? nwords : 1, sizeof(*v->summary));
    if (!v->summary)
        return false;
    v->direct = owfp_calloc(ndirect ? ndirect : 1, sizeof(*v->direct));
    if (!v->direct)
        return false;
    if (!nhashed)
        return true;
    uint64_t cap = 16;
    while (cap < 2 * nhashed)
        cap *= 2;
    if (cap > (uint64_t)UINT32_MAX + 1)
        return false;
    v->slots = owfp_calloc(cap, sizeof(*v->slots));
    v->slot_mask = (uint32_t)(cap - 1);
    return v->slots != NULL;
}

static bool lay_out_postings(struct builder *b)
{
    struct owfp_layer_view *v = b->v;
    uint64_t total = 0;
    for (uint32_t id = 0; id < b->keys.n; id++) {
        struct bkey *bk = bkey_of(b, id);
        bk->off = (uint32_t)total;
        total += bk->len;
        bk->freq = 0;
        bk->last = NONE;
        if (total >= NONE)
            return false;
    }
    for (uint32_t s = 0; s < v->nsubs; s++) {
        v->subs[s].residual_off = (uint32_t)total;
        total += v->subs[s].nresidual;
    }
    if (total >= NONE)
        return false;
    v->postings = owfp_malloc(sizeof(uint32_t) * (total ? total : 1));
    return v->postings != NULL;
}

/* Points every filed key's slot (direct or hashed) at its posting list. */
static void fill_lookup(struct builder *b)
{
    struct owfp_layer_view *v = b->v;
    for (uint32_t id = 0; id < b->keys.n; id++) {
        const struct bkey *bk = bkey_of(b, id);
        if (!bk->len)
            continue;
        uint32_t sid = struct_of(b, bk->strct)->view_id;
        const struct view_struct *st = &v->structs[sid];
        struct vlist list = {bk->off, bk->len};
        bool exact = st->sum_mask == NONE; /* then plen <= DIRECT_PLEN_MAX */
        uint32_t x = exact ? direct_index(bk->k.hi, bk->k.lo, st->width, st->plen) : 0;
        uint64_t h = slot_hash(sid, bk->k.hi, bk->k.lo);
        uint64_t bit = exact ? x : (h >> 32) & st->sum_mask;
        v->summary[st->summary + (bit >> 6)] |= UINT64_C(1) << (bit & 63);
        if (st->direct != NONE) {
            v->direct[st->direct + x] = list;
            continue;
        }
        uint32_t i = (uint32_t)h & v->slot_mask;
        while (v->slots[i].list.len)
            i = (i + 1) & v->slot_mask;
        v->slots[i] = (struct vslot){bk->k.hi, bk->k.lo, sid, list};
    }
}

static bool build_index(struct builder *b)
{
    if (!alloc_builder(b) || !for_each_group(b, add_candidates) || !keep_structs(b))
        return false;
    choose_groups(b);
    file_postings(b, false);
    if (!finish_structs(b) || !lay_out_postings(b))
        return false;
    fill_lookup(b);
    file_postings(b, true);
    return true;
}

static void free_builder(struct builder *b)
{
    table_free(&b->keys);
    table_free(&b->structs);
    owfp_free(b->order);
    owfp_free(b->groups);
    owfp_free(b->cand_ids);
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
    owfp_free(view->slots);
    owfp_free(view->direct);
    owfp_free(view->summary);
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

/* The posting list structure `sid` holds for the incoming values, if any. */
static void add_struct_cursor(struct owfp_view_iter *it, uint32_t sid)
{
    const struct owfp_layer_view *v = it->view;
    const struct view_struct *st = &v->structs[sid];
    if (st->field >= it->in->valueCount)
        return;
    const FWP_VALUE0 *val = &it->in->incomingValue[st->field].value;
    uint64_t hi, lo;
    if (val->type != st->type || !value_bits(val, &hi, &lo))
        return;
    const uint64_t *summary = v->summary + st->summary;
    uint64_t h = 0;
    if (st->sum_mask == NONE) {
        uint32_t x = direct_index(hi, lo, st->width, st->plen);
        if (!test_bit(summary, x))
            return;
        if (st->direct != NONE) {
            const struct vlist *l = &v->direct[st->direct + x];
            add_cursor(it, v->postings + l->off, l->len);
            return;
        }
        keep_bits(&hi, &lo, st->width, st->plen);
        h = slot_hash(sid, hi, lo);
    } else {
        keep_bits(&hi, &lo, st->width, st->plen);
        h = slot_hash(sid, hi, lo);
        if (!test_bit(summary, (h >> 32) & st->sum_mask))
            return;
    }
    for (uint32_t i = (uint32_t)h & v->slot_mask;; i = (i + 1) & v->slot_mask) {
        const struct vslot *s = &v->slots[i];
        if (!s->list.len)
            return;
        if (s->lo == lo && s->hi == hi && s->st == sid) {
            add_cursor(it, v->postings + s->list.off, s->list.len);
            return;
        }
    }
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
    if (!in || !in->incomingValue)
        return;
    for (uint32_t i = 0; i < sub->nstructs; i++)
        add_struct_cursor(it, sub->struct_first + i);
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
