/*
 * The management object store (what BFE keeps on Windows): providers,
 * sublayers, callout objects and filters, with the references between them
 * and the undo journal of the transaction in progress.
 *
 * Everything here is guarded by engine->mu. Classification never reads the
 * store; it reads the layer views built from it at commit (view.c).
 */
#ifndef OPENWFP_ENGINE_STORE_H
#define OPENWFP_ENGINE_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/hashmap.h"
#include "common/rcu.h"
#include "engine.h"
#include "layers.h"

/* What every stored object shares: identity, lifetime and references. */
struct owfp_object {
    GUID key;
    struct owfp_session *dynamic_owner; /* NULL for static objects */
    unsigned refs;                      /* objects referencing this one */
    bool live;                          /* in the store (possibly uncommitted) */
};

struct owfp_provider {
    struct owfp_object obj;
    uint32_t flags;
};

struct owfp_sublayer {
    struct owfp_object obj;
    uint32_t rank; /* evaluation order, recomputed at every view build */
    uint16_t weight;
    uint32_t flags;
    struct owfp_provider *provider;
};

struct owfp_mgmt_callout {
    struct owfp_object obj;
    uint32_t id;
    uint32_t flags;
    const struct owfp_layer_desc *layer;
    struct owfp_provider *provider;
};

struct owfp_filter {
    struct owfp_object obj;
    FWPS_FILTER0 rt;      /* what callouts see; rt.weight.uint64 -> weight */
    UINT64 weight;
    uint32_t mgmt_flags;  /* FWPM_FILTER_FLAG_* as added */
    const struct owfp_layer_desc *layer;
    struct owfp_sublayer *sublayer;
    struct owfp_mgmt_callout *callout; /* for the CALLOUT_* action types */
    struct owfp_provider *provider;
    /* The callout id that received the ADD notification, 0 if none: the
     * filter's DELETE notification goes to the same callout. */
    uint32_t notified_callout;
    struct owfp_filter *layer_prev, *layer_next;
    struct owfp_rcu_head rcu;
};

enum owfp_journal_op {
    OWFP_J_ADD,
    OWFP_J_DELETE,
};

enum owfp_object_kind {
    OWFP_K_PROVIDER,
    OWFP_K_SUBLAYER,
    OWFP_K_CALLOUT,
    OWFP_K_FILTER,
};

struct owfp_journal_entry {
    uint8_t op;
    uint8_t kind;
    void *object;
};

struct owfp_store {
    struct owfp_hmap providers, sublayers, callouts, filters_by_key, filters_by_id;
    struct owfp_filter *layer_filters[OWFP_VIEW_SLOTS];
    uint64_t filter_count;
    uint64_t next_filter_id;
    /* Undo journal of the open write transaction. */
    struct owfp_journal_entry *journal;
    size_t journal_len, journal_cap;
    bool dirty[OWFP_VIEW_SLOTS];
};

struct owfp_store *owfp_store_create(void);
void owfp_store_destroy(struct owfp_store *s);

uint64_t owfp_guid_hash(const GUID *key);
bool owfp_guid_is_zero(const GUID *key);
NTSTATUS owfp_guid_generate(GUID *out);

struct owfp_provider *owfp_store_provider(struct owfp_store *s, const GUID *key);
struct owfp_sublayer *owfp_store_sublayer(struct owfp_store *s, const GUID *key);
struct owfp_mgmt_callout *owfp_store_callout(struct owfp_store *s, const GUID *key);
struct owfp_mgmt_callout *owfp_store_callout_by_id(struct owfp_store *s, uint32_t id);
struct owfp_filter *owfp_store_filter(struct owfp_store *s, const GUID *key);
struct owfp_filter *owfp_store_filter_by_id(struct owfp_store *s, uint64_t id);

/* Insert/remove an object of `kind` in the store's tables (no journal). */
bool owfp_store_link(struct owfp_store *s, enum owfp_object_kind kind, void *object);
void owfp_store_unlink(struct owfp_store *s, enum owfp_object_kind kind, void *object);

/* Records an operation in the open transaction's journal. Reserve first so
 * recording cannot fail after the operation took effect. */
bool owfp_journal_reserve(struct owfp_store *s);
void owfp_journal_record(struct owfp_store *s, enum owfp_journal_op op,
                         enum owfp_object_kind kind, void *object);

void owfp_object_free(enum owfp_object_kind kind, void *object);

#endif
