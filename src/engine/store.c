#include "store.h"

#include <string.h>
#include <sys/random.h>

#include "common/alloc.h"
#include "condition.h"

uint64_t owfp_guid_hash(const GUID *key)
{
    return owfp_hash_bytes(key, sizeof(*key));
}

bool owfp_guid_is_zero(const GUID *key)
{
    static const GUID zero;
    return IsEqualGUID(key, &zero);
}

NTSTATUS owfp_guid_generate(GUID *out)
{
    uint8_t b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        return STATUS_UNSUCCESSFUL;
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    memcpy(out, b, sizeof(*out));
    return STATUS_SUCCESS;
}

struct owfp_store *owfp_store_create(void)
{
    struct owfp_store *s = owfp_calloc(1, sizeof(*s));
    if (s)
        s->next_filter_id = 1;
    return s;
}

static bool key_eq(const void *value, const void *arg)
{
    return IsEqualGUID(&((const struct owfp_object *)value)->key, arg);
}

static bool filter_id_eq(const void *value, const void *arg)
{
    return ((const struct owfp_filter *)value)->rt.filterId == *(const uint64_t *)arg;
}

static bool callout_id_eq(const void *value, const void *arg)
{
    return ((const struct owfp_mgmt_callout *)value)->id == *(const uint32_t *)arg;
}

struct owfp_provider *owfp_store_provider(struct owfp_store *s, const GUID *key)
{
    return owfp_hmap_find(&s->providers, owfp_guid_hash(key), key_eq, key);
}

struct owfp_sublayer *owfp_store_sublayer(struct owfp_store *s, const GUID *key)
{
    return owfp_hmap_find(&s->sublayers, owfp_guid_hash(key), key_eq, key);
}

struct owfp_mgmt_callout *owfp_store_callout(struct owfp_store *s, const GUID *key)
{
    return owfp_hmap_find(&s->callouts, owfp_guid_hash(key), key_eq, key);
}

struct owfp_mgmt_callout *owfp_store_callout_by_id(struct owfp_store *s, uint32_t id)
{
    /* Callout objects are few; a scan keeps one table per kind. */
    for (size_t i = 0; i < s->callouts.capacity; i++) {
        void *v = owfp_hmap_at(&s->callouts, i);
        if (v && callout_id_eq(v, &id))
            return v;
    }
    return NULL;
}

struct owfp_filter *owfp_store_filter(struct owfp_store *s, const GUID *key)
{
    return owfp_hmap_find(&s->filters_by_key, owfp_guid_hash(key), key_eq, key);
}

struct owfp_filter *owfp_store_filter_by_id(struct owfp_store *s, uint64_t id)
{
    return owfp_hmap_find(&s->filters_by_id, owfp_hash_u64(id), filter_id_eq, &id);
}

static struct owfp_hmap *table_of(struct owfp_store *s, enum owfp_object_kind kind)
{
    switch (kind) {
    case OWFP_K_PROVIDER:
        return &s->providers;
    case OWFP_K_SUBLAYER:
        return &s->sublayers;
    case OWFP_K_CALLOUT:
        return &s->callouts;
    default:
        return &s->filters_by_key;
    }
}

static void filter_list_insert(struct owfp_store *s, struct owfp_filter *f)
{
    int slot = owfp_view_slot(f->layer->id);
    f->layer_prev = NULL;
    f->layer_next = s->layer_filters[slot];
    if (f->layer_next)
        f->layer_next->layer_prev = f;
    s->layer_filters[slot] = f;
    s->dirty[slot] = true;
    s->filter_count++;
}

static void filter_list_remove(struct owfp_store *s, struct owfp_filter *f)
{
    int slot = owfp_view_slot(f->layer->id);
    if (f->layer_prev)
        f->layer_prev->layer_next = f->layer_next;
    else
        s->layer_filters[slot] = f->layer_next;
    if (f->layer_next)
        f->layer_next->layer_prev = f->layer_prev;
    f->layer_prev = f->layer_next = NULL;
    s->dirty[slot] = true;
    s->filter_count--;
}

bool owfp_store_link(struct owfp_store *s, enum owfp_object_kind kind, void *object)
{
    struct owfp_object *o = object;
    if (kind == OWFP_K_FILTER) {
        struct owfp_filter *f = object;
        if (!owfp_hmap_reserve(&s->filters_by_key, 1) || !owfp_hmap_reserve(&s->filters_by_id, 1))
            return false;
        owfp_hmap_insert(&s->filters_by_key, owfp_guid_hash(&o->key), o);
        owfp_hmap_insert(&s->filters_by_id, owfp_hash_u64(f->rt.filterId), o);
        filter_list_insert(s, f);
    } else if (!owfp_hmap_insert(table_of(s, kind), owfp_guid_hash(&o->key), o)) {
        return false;
    }
    o->live = true;
    return true;
}

void owfp_store_unlink(struct owfp_store *s, enum owfp_object_kind kind, void *object)
{
    struct owfp_object *o = object;
    owfp_hmap_remove(table_of(s, kind), owfp_guid_hash(&o->key), o);
    if (kind == OWFP_K_FILTER) {
        struct owfp_filter *f = object;
        owfp_hmap_remove(&s->filters_by_id, owfp_hash_u64(f->rt.filterId), o);
        filter_list_remove(s, f);
    }
    o->live = false;
}

bool owfp_journal_reserve(struct owfp_store *s)
{
    if (s->journal_len < s->journal_cap)
        return true;
    size_t cap = s->journal_cap ? s->journal_cap * 2 : 16;
    struct owfp_journal_entry *j = owfp_realloc(s->journal, cap * sizeof(*j));
    if (!j)
        return false;
    s->journal = j;
    s->journal_cap = cap;
    return true;
}

void owfp_journal_record(struct owfp_store *s, enum owfp_journal_op op,
                         enum owfp_object_kind kind, void *object)
{
    s->journal[s->journal_len++] = (struct owfp_journal_entry){(uint8_t)op, (uint8_t)kind, object};
}

void owfp_object_free(enum owfp_object_kind kind, void *object)
{
    if (kind == OWFP_K_FILTER)
        owfp_conditions_free(((struct owfp_filter *)object)->rt.filterCondition);
    owfp_free(object);
}

static void free_table(struct owfp_hmap *m, enum owfp_object_kind kind)
{
    for (size_t i = 0; i < m->capacity; i++) {
        struct owfp_object *o = owfp_hmap_at(m, i);
        if (o)
            owfp_object_free(kind, o);
    }
    owfp_hmap_free(m);
}

void owfp_store_destroy(struct owfp_store *s)
{
    if (!s)
        return;
    free_table(&s->filters_by_key, OWFP_K_FILTER);
    owfp_hmap_free(&s->filters_by_id);
    free_table(&s->callouts, OWFP_K_CALLOUT);
    free_table(&s->sublayers, OWFP_K_SUBLAYER);
    free_table(&s->providers, OWFP_K_PROVIDER);
    owfp_free(s->journal);
    owfp_free(s);
}
