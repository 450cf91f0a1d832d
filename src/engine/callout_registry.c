#include "callout_registry.h"

#include <string.h>

#include "common/alloc.h"
#include "kernel/irql.h"
#include "verify/verify.h"

static struct owfp_callout_table *table(const struct owfp_engine *e)
{
    return atomic_load_explicit(&((struct owfp_engine *)e)->callouts, memory_order_acquire);
}

struct owfp_callout *owfp_callout_locked(struct owfp_engine *e, uint32_t id)
{
    struct owfp_callout_table *t = table(e);
    if (!t || id >= t->capacity)
        return NULL;
    return atomic_load_explicit(&t->slot[id], memory_order_relaxed);
}

uint32_t owfp_callout_id_for_key(struct owfp_engine *e, const GUID *key, bool existing_only)
{
    for (uint32_t i = 0; i < e->key_id_count; i++)
        if (IsEqualGUID(&e->key_ids[i].key, key))
            return e->key_ids[i].id;
    if (existing_only)
        return 0;
    if (e->key_id_count == e->key_id_capacity) {
        uint32_t cap = e->key_id_capacity ? e->key_id_capacity * 2 : 16;
        struct owfp_key_id *n = owfp_realloc(e->key_ids, cap * sizeof(*n));
        if (!n)
            return 0;
        e->key_ids = n;
        e->key_id_capacity = cap;
    }
    /* Ids start at 1 so a zeroed calloutId never names a callout. */
    uint32_t id = e->key_id_count + 1;
    e->key_ids[e->key_id_count++] = (struct owfp_key_id){*key, id};
    return id;
}

/* Grows the slot table so `id` fits. With e->mu held, outside read sections. */
static NTSTATUS ensure_slot(struct owfp_engine *e, uint32_t id)
{
    struct owfp_callout_table *old = table(e);
    uint32_t have = old ? old->capacity : 0;
    if (id < have)
        return STATUS_SUCCESS;
    uint32_t cap = have ? have : 32;
    while (cap <= id)
        cap *= 2;
    struct owfp_callout_table *t = owfp_calloc(1, sizeof(*t) + cap * sizeof(t->slot[0]));
    if (!t)
        return STATUS_INSUFFICIENT_RESOURCES;
    t->capacity = cap;
    for (uint32_t i = 0; i < have; i++)
        atomic_init(&t->slot[i], atomic_load_explicit(&old->slot[i], memory_order_relaxed));
    atomic_store_explicit(&e->callouts, t, memory_order_release);
    if (old) {
        owfp_rcu_synchronize();
        owfp_free(old);
    }
    return STATUS_SUCCESS;
}

/* Flags each FWPS_CALLOUTn version may carry (spec R1, §2.6). Reserved bits
 * are accepted and ignored; bits a version cannot carry are refused (Q2). */
static const uint32_t version_flags[4] = {
    0x003,
    0x01f,
    0x0ff,
    0x7ff,
};

static NTSTATUS do_register(unsigned version, void *device_object, const GUID *key,
                            uint32_t flags, void *classify, void *notify,
                            FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0 flow_delete, UINT32 *out_id)
{
    if (owfp_passive_refused("FwpsCalloutRegister"))
        return STATUS_INVALID_DEVICE_STATE;
    struct owfp_engine *e = owfp_engine_get();
    if (!e)
        return STATUS_FWP_TCPIP_NOT_READY;
    if (!classify)
        return STATUS_INVALID_PARAMETER;
    if (flags & ~version_flags[version])
        return STATUS_FWP_INVALID_FLAGS;

    pthread_mutex_lock(&e->mu);
    NTSTATUS st = STATUS_SUCCESS;
    uint32_t id = owfp_callout_id_for_key(e, key, false);
    struct owfp_callout *c = NULL;
    if (!id) {
        st = STATUS_INSUFFICIENT_RESOURCES;
        goto out;
    }
    struct owfp_callout *existing = owfp_callout_locked(e, id);
    if (existing) {
        st = existing->unregister_running ? STATUS_FWP_IN_USE : STATUS_FWP_ALREADY_EXISTS;
        goto out;
    }
    st = ensure_slot(e, id);
    if (!NT_SUCCESS(st))
        goto out;
    c = owfp_calloc(1, sizeof(*c));
    if (!c) {
        st = STATUS_INSUFFICIENT_RESOURCES;
        goto out;
    }
    c->key = *key;
    c->id = id;
    c->flags = flags;
    c->version = version;
    c->classify = classify;
    c->notify = notify;
    c->flow_delete = flow_delete;
    c->device_object = device_object;
    atomic_init(&c->state, OWFP_CALLOUT_REGISTERED);
    atomic_init(&c->contexts, 0);
    if (OWFP_VERIFY_ON())
        owfp_verify_callout_registered(id, key, classify);
    atomic_store_explicit(&table(e)->slot[id], c, memory_order_release);
    if (out_id)
        *out_id = id;
out:
    pthread_mutex_unlock(&e->mu);
    return st;
}

#define REGISTER_FN(n)                                                                          \
    NTSTATUS FwpsCalloutRegister##n(void *deviceObject, const FWPS_CALLOUT##n *callout,         \
                                    UINT32 *calloutId)                                          \
    {                                                                                           \
        if (!callout)                                                                           \
            return STATUS_FWP_NULL_POINTER;                                                     \
        return do_register(n, deviceObject, &callout->calloutKey, callout->flags,               \
                           (void *)callout->classifyFn, (void *)callout->notifyFn,              \
                           callout->flowDeleteFn, calloutId);                                   \
    }
REGISTER_FN(0)
REGISTER_FN(1)
REGISTER_FN(2)
REGISTER_FN(3)

/* The second half of unregistering: nothing may call the callout any more.
 * Called with e->mu held; drops it while readers drain so that a concurrent
 * register/unregister of the same callout sees it in use (spec R7). */
static NTSTATUS unregister(struct owfp_engine *e, struct owfp_callout *c)
{
    if (c->unregister_running)
        return STATUS_FWP_IN_USE;
    c->unregister_running = true;
    /* Refuse new contexts first, then let classifies that might be adding
     * one finish, then count. */
    atomic_store(&c->state, OWFP_CALLOUT_DRAINING);
    pthread_mutex_unlock(&e->mu);
    owfp_rcu_synchronize();
    pthread_mutex_lock(&e->mu);
    if (atomic_load(&c->contexts) > 0) {
        c->unregister_running = false;
        if (OWFP_VERIFY_ON())
            owfp_verify_unregister_busy(c->id, atomic_load(&c->contexts));
        return STATUS_DEVICE_BUSY;
    }
    atomic_store(&c->state, OWFP_CALLOUT_UNREGISTERING);
    pthread_mutex_unlock(&e->mu);
    owfp_rcu_synchronize();
    pthread_mutex_lock(&e->mu);
    if (atomic_load(&c->contexts) > 0) {
        /* A flowDeleteFn is still running on another thread. */
        atomic_store(&c->state, OWFP_CALLOUT_DRAINING);
        c->unregister_running = false;
        return STATUS_DEVICE_BUSY;
    }
    atomic_store_explicit(&table(e)->slot[c->id], NULL, memory_order_release);
    /* A reader may have loaded the slot just before it was cleared and still
     * be reading c->state (owfp_callout_get): free only after it left. */
    owfp_rcu_synchronize();
    owfp_free(c);
    return STATUS_SUCCESS;
}

NTSTATUS FwpsCalloutUnregisterById0(const UINT32 calloutId)
{
    if (owfp_passive_refused("FwpsCalloutUnregisterById0"))
        return STATUS_INVALID_DEVICE_STATE;
    struct owfp_engine *e = owfp_engine_get();
    if (!e)
        return STATUS_FWP_TCPIP_NOT_READY;
    pthread_mutex_lock(&e->mu);
    struct owfp_callout *c = owfp_callout_locked(e, calloutId);
    NTSTATUS st = c ? unregister(e, c) : STATUS_FWP_CALLOUT_NOT_FOUND;
    pthread_mutex_unlock(&e->mu);
    return st;
}

NTSTATUS FwpsCalloutUnregisterByKey0(const GUID *calloutKey)
{
    if (!calloutKey)
        return STATUS_FWP_NULL_POINTER;
    if (owfp_passive_refused("FwpsCalloutUnregisterByKey0"))
        return STATUS_INVALID_DEVICE_STATE;
    struct owfp_engine *e = owfp_engine_get();
    if (!e)
        return STATUS_FWP_TCPIP_NOT_READY;
    pthread_mutex_lock(&e->mu);
    uint32_t id = owfp_callout_id_for_key(e, calloutKey, true);
    struct owfp_callout *c = id ? owfp_callout_locked(e, id) : NULL;
    NTSTATUS st = c ? unregister(e, c) : STATUS_FWP_CALLOUT_NOT_FOUND;
    pthread_mutex_unlock(&e->mu);
    return st;
}

void owfp_callout_call_classify(const struct owfp_callout *c,
                                const FWPS_INCOMING_VALUES0 *in,
                                const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layer_data,
                                const void *classify_context, const FWPS_FILTER0 *filter,
                                UINT64 flow_context, FWPS_CLASSIFY_OUT0 *out)
{
    struct owfp_verify_frame fr;
    bool verify = OWFP_VERIFY_ON();
    if (verify)
        owfp_verify_enter_classify(&fr, c->id, c->classify, in, meta, layer_data, filter, out);
    unsigned char irql = owfp_irql_enter_callout();
    /* FWPS_FILTER0..3 share one layout; only the provider-context pointee differs. */
    switch (c->version) {
    case 0:
        ((FWPS_CALLOUT_CLASSIFY_FN0)c->classify)(in, meta, layer_data, filter, flow_context,
                                                  out);
        break;
    case 1:
        ((FWPS_CALLOUT_CLASSIFY_FN1)c->classify)(in, meta, layer_data, classify_context,
                                                  (const FWPS_FILTER1 *)filter, flow_context,
                                                  out);
        break;
    case 2:
        ((FWPS_CALLOUT_CLASSIFY_FN2)c->classify)(in, meta, layer_data, classify_context,
                                                  (const FWPS_FILTER2 *)filter, flow_context,
                                                  out);
        break;
    default:
        ((FWPS_CALLOUT_CLASSIFY_FN3)c->classify)(in, meta, layer_data, classify_context,
                                                  (const FWPS_FILTER3 *)filter, flow_context,
                                                  out);
        break;
    }
    owfp_irql_leave_callout(irql, "classifyFn");
    if (verify)
        owfp_verify_leave_classify(&fr);
}

NTSTATUS owfp_callout_call_notify(const struct owfp_callout *c, FWPS_CALLOUT_NOTIFY_TYPE type,
                                  const GUID *filter_key, FWPS_FILTER0 *filter)
{
    if (!c->notify)
        return STATUS_SUCCESS;
    NTSTATUS st;
    owfp_notify_depth++;
    struct owfp_verify_frame fr;
    bool verify = OWFP_VERIFY_ON();
    if (verify)
        owfp_verify_enter(&fr, c->id, OWFP_VERIFY_NOTIFY, c->notify, 0);
    unsigned char irql = owfp_irql_enter_callout();
    switch (c->version) {
    case 0:
        st = ((FWPS_CALLOUT_NOTIFY_FN0)c->notify)(type, filter_key, filter);
        break;
    case 1:
        st = ((FWPS_CALLOUT_NOTIFY_FN1)c->notify)(type, filter_key, (FWPS_FILTER1 *)filter);
        break;
    case 2:
        st = ((FWPS_CALLOUT_NOTIFY_FN2)c->notify)(type, filter_key, (FWPS_FILTER2 *)filter);
        break;
    default:
        st = ((FWPS_CALLOUT_NOTIFY_FN3)c->notify)(type, filter_key, (FWPS_FILTER3 *)filter);
        break;
    }
    owfp_irql_leave_callout(irql, "notifyFn");
    if (verify)
        owfp_verify_leave(&fr);
    owfp_notify_depth--;
    return st;
}

void owfp_callout_registry_destroy(struct owfp_engine *e)
{
    struct owfp_callout_table *t = table(e);
    if (t) {
        for (uint32_t i = 0; i < t->capacity; i++)
            owfp_free(atomic_load(&t->slot[i]));
        owfp_free(t);
    }
    atomic_store(&e->callouts, NULL);
    owfp_free(e->key_ids);
    e->key_ids = NULL;
    e->key_id_count = e->key_id_capacity = 0;
}

size_t owfp_callouts_in(struct owfp_engine *e, uintptr_t base, size_t size, uint32_t *first)
{
    size_t n = 0;
    pthread_mutex_lock(&e->mu);
    struct owfp_callout_table *t = table(e);
    for (uint32_t i = 0; t && i < t->capacity; i++) {
        const struct owfp_callout *c = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
        if (c && (uintptr_t)c->classify - base < size && !n++)
            *first = c->id;
    }
    pthread_mutex_unlock(&e->mu);
    return n;
}

uint64_t owfp_callout_registered_count(const struct owfp_engine *e)
{
    struct owfp_callout_table *t = table(e);
    uint64_t n = 0;
    for (uint32_t i = 0; t && i < t->capacity; i++)
        n += atomic_load(&t->slot[i]) != NULL;
    return n;
}
