/*
 * Registered callouts (FwpsCalloutRegister0..3 / FwpsCalloutUnregister*).
 *
 * Ids are a function of the callout key (spec R3): whichever of
 * FwpsCalloutRegister and FwpmCalloutAdd sees a key first allocates its id,
 * and the id is never reused for another key during the engine's life.
 */
#ifndef OPENWFP_ENGINE_CALLOUT_REGISTRY_H
#define OPENWFP_ENGINE_CALLOUT_REGISTRY_H

#include <stdatomic.h>
#include <stdint.h>

#include "engine.h"

enum owfp_callout_state {
    OWFP_CALLOUT_REGISTERED = 0,
    /* Unregister answered STATUS_DEVICE_BUSY: still classified, refuses new
     * flow contexts until it is unregistered for good (spec Q3). */
    OWFP_CALLOUT_DRAINING = 1,
    /* Unregister in progress: never called again. */
    OWFP_CALLOUT_UNREGISTERING = 2,
};

struct owfp_callout {
    GUID key;
    uint32_t id;
    uint32_t flags;   /* FWP_CALLOUT_FLAG_* */
    unsigned version; /* 0..3: which FWPS_CALLOUTn registered it */
    void *classify;   /* FWPS_CALLOUT_CLASSIFY_FNn */
    void *notify;     /* FWPS_CALLOUT_NOTIFY_FNn, may be NULL */
    FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0 flow_delete;
    void *device_object;
    _Atomic int state;
    _Atomic int64_t contexts; /* flow contexts currently associated */
    bool unregister_running;  /* guarded by e->mu */
};

struct owfp_callout_table {
    uint32_t capacity;
    _Atomic(struct owfp_callout *) slot[];
};

/* Looks a callout up by id inside a read section; NULL when not registered
 * or being unregistered. Inline: every callout classify looks it up. */
static inline struct owfp_callout *owfp_callout_get(const struct owfp_engine *e, uint32_t id)
{
    struct owfp_callout_table *t =
        atomic_load_explicit(&((struct owfp_engine *)e)->callouts, memory_order_acquire);
    if (!t || id >= t->capacity)
        return NULL;
    struct owfp_callout *c = atomic_load_explicit(&t->slot[id], memory_order_acquire);
    if (!c || atomic_load_explicit(&c->state, memory_order_acquire) == OWFP_CALLOUT_UNREGISTERING)
        return NULL;
    return c;
}

/* With e->mu held: the id for `key`, allocating one if new. 0 when out of
 * memory. `existing_only` returns 0 instead of allocating. */
uint32_t owfp_callout_id_for_key(struct owfp_engine *e, const GUID *key, bool existing_only);

/* With e->mu held: the registered callout with that id (any state), or NULL. */
struct owfp_callout *owfp_callout_locked(struct owfp_engine *e, uint32_t id);

void owfp_callout_call_classify(const struct owfp_callout *c,
                                const FWPS_INCOMING_VALUES0 *in,
                                const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layer_data,
                                const void *classify_context, const FWPS_FILTER0 *filter,
                                UINT64 flow_context, FWPS_CLASSIFY_OUT0 *out);
/* Calls notifyFn (with e->mu held); a NULL notifyFn counts as success (spec R9, Q1). */
NTSTATUS owfp_callout_call_notify(const struct owfp_callout *c, FWPS_CALLOUT_NOTIFY_TYPE type,
                                  const GUID *filter_key, FWPS_FILTER0 *filter);

void owfp_callout_registry_destroy(struct owfp_engine *e);
uint64_t owfp_callout_registered_count(const struct owfp_engine *e);
/* Registered callouts (any state) whose classifyFn lies in [base, base +
 * size), for the verifier's unload check; *first gets the lowest id. Takes
 * e->mu. */
size_t owfp_callouts_in(struct owfp_engine *e, uintptr_t base, size_t size, uint32_t *first);

#endif
