#include "flow.h"

#include <sched.h>
#include <string.h>

#include "callout_registry.h"
#include "common/alloc.h"
#include "kernel/irql.h"
#include "layers.h"
#include "stream/stream.h"
#include "verify/verify.h"

#define SEG_BITS 12
#define SEG_SIZE (1u << SEG_BITS)
#define MAX_SEGS 4096u /* 16M concurrent flows */

struct owfp_flow_table {
    pthread_mutex_t lock; /* free list, segment allocation */
    _Atomic(_Atomic(struct owfp_flow *) *) seg[MAX_SEGS];
    uint32_t next_slot;
    uint32_t *free_slots;
    uint32_t nfree, capfree;
    uint32_t generation;
    _Atomic uint64_t open;
    _Atomic uint64_t contexts;
};

void owfp_flow_lock(struct owfp_flow *f)
{
    for (;;) {
        int expected = 0;
        if (atomic_compare_exchange_weak_explicit(&f->lock, &expected, 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return;
        sched_yield();
    }
}

void owfp_flow_unlock(struct owfp_flow *f)
{
    atomic_store_explicit(&f->lock, 0, memory_order_release);
}

struct owfp_flow_table *owfp_flow_table_create(void)
{
    struct owfp_flow_table *t = owfp_calloc(1, sizeof(*t));
    if (t)
        pthread_mutex_init(&t->lock, NULL);
    return t;
}

static _Atomic(struct owfp_flow *) *slot_ref(struct owfp_flow_table *t, uint32_t slot)
{
    _Atomic(struct owfp_flow *) *seg = atomic_load_explicit(&t->seg[slot >> SEG_BITS],
                                                            memory_order_acquire);
    return seg ? &seg[slot & (SEG_SIZE - 1)] : NULL;
}

/* A free slot index, or UINT32_MAX. With t->lock held. */
static uint32_t take_slot(struct owfp_flow_table *t)
{
    if (t->nfree)
        return t->free_slots[--t->nfree];
    uint32_t slot = t->next_slot;
    if ((slot >> SEG_BITS) >= MAX_SEGS)
        return UINT32_MAX;
    if (!atomic_load(&t->seg[slot >> SEG_BITS])) {
        _Atomic(struct owfp_flow *) *seg = owfp_calloc(SEG_SIZE, sizeof(*seg));
        if (!seg)
            return UINT32_MAX;
        atomic_store_explicit(&t->seg[slot >> SEG_BITS], seg, memory_order_release);
    }
    t->next_slot++;
    return slot;
}

struct owfp_flow *owfp_flow_new(struct owfp_engine *e, uint8_t ip_version)
{
    struct owfp_flow_table *t = e->flows;
    struct owfp_flow *f = owfp_calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    pthread_mutex_lock(&t->lock);
    /* Every slot ever handed out may come back at once: keep room for all of
     * them so closing never allocates. */
    if (!t->nfree && t->next_slot >= t->capfree) {
        uint32_t cap = t->capfree ? t->capfree * 2 : 1024;
        uint32_t *n = owfp_realloc(t->free_slots, cap * sizeof(*n));
        if (!n) {
            pthread_mutex_unlock(&t->lock);
            owfp_free(f);
            return NULL;
        }
        t->free_slots = n;
        t->capfree = cap;
    }
    uint32_t slot = take_slot(t);
    uint32_t gen = ++t->generation ? t->generation : ++t->generation;
    pthread_mutex_unlock(&t->lock);
    if (slot == UINT32_MAX) {
        owfp_free(f);
        return NULL;
    }
    f->id = ((uint64_t)gen << 32) | slot;
    f->engine = e;
    f->ip_version = ip_version;
    f->ctx = &f->one_ctx;
    atomic_store_explicit(slot_ref(t, slot), f, memory_order_release);
    atomic_fetch_add(&t->open, 1);
    return f;
}

struct owfp_flow *owfp_flow_lookup(struct owfp_engine *e, uint64_t id)
{
    uint32_t slot = (uint32_t)id;
    if ((slot >> SEG_BITS) >= MAX_SEGS)
        return NULL;
    _Atomic(struct owfp_flow *) *ref = slot_ref(e->flows, slot);
    struct owfp_flow *f = ref ? atomic_load_explicit(ref, memory_order_acquire) : NULL;
    return f && f->id == id ? f : NULL;
}

/* Calls flowDeleteFn for one detached association (spec F7). The callout
 * cannot finish unregistering while the association counted. */
static void deliver_delete(struct owfp_engine *e, const struct owfp_flow_ctx *c)
{
    owfp_rcu_read_lock();
    struct owfp_callout_table *t = atomic_load_explicit(&e->callouts, memory_order_acquire);
    struct owfp_callout *co = t && c->callout_id < t->capacity
                                  ? atomic_load_explicit(&t->slot[c->callout_id],
                                                         memory_order_acquire)
                                  : NULL;
    if (co && co->flow_delete) {
        struct owfp_verify_frame fr;
        bool verify = OWFP_VERIFY_ON();
        if (verify) {
            owfp_verify_enter(&fr, c->callout_id, OWFP_VERIFY_FLOW_DELETE,
                              (const void *)co->flow_delete, 0);
            if (c->pending_delete)
                owfp_verify_pending_delivered(c->callout_id);
        }
        unsigned char irql = owfp_irql_enter_callout();
        co->flow_delete(c->layer, c->callout_id, c->context);
        owfp_irql_leave_callout(irql, "flowDeleteFn");
        if (verify)
            owfp_verify_leave(&fr);
    }
    if (co)
        atomic_fetch_sub(&co->contexts, 1);
    atomic_fetch_sub(&e->flows->contexts, 1);
    owfp_rcu_read_unlock();
}

static void remove_at(struct owfp_flow *f, uint16_t i)
{
    f->ctx[i] = f->ctx[--f->nctx];
}

static void release_flow(struct owfp_rcu_head *h)
{
    struct owfp_flow *f = (struct owfp_flow *)((char *)h - offsetof(struct owfp_flow, rcu));
    if (f->ctx != &f->one_ctx)
        owfp_free(f->ctx);
    void *verify = atomic_load_explicit(&f->verify, memory_order_relaxed);
    if (verify)
        owfp_verify_flow_free(verify);
    owfp_free(f);
}

void owfp_flow_end(struct owfp_flow *f)
{
    struct owfp_engine *e = f->engine;
    struct owfp_flow_table *t = e->flows;
    uint32_t slot = (uint32_t)f->id;

    owfp_flow_lock(f);
    f->closing = true;
    owfp_flow_unlock(f);
    atomic_store_explicit(slot_ref(t, slot), NULL, memory_order_release);
    /* Pending injections complete before the contexts go (spec E3 step 5). */
    if (f->stream)
        owfp_stream_destroy(f->stream);
    /* No one can add or remove a context now; deliver what is left. */
    while (f->nctx) {
        struct owfp_flow_ctx c = f->ctx[f->nctx - 1];
        f->nctx--;
        deliver_delete(e, &c);
    }
    atomic_store(&f->any_ctx, false);
    pthread_mutex_lock(&t->lock);
    t->free_slots[t->nfree++] = slot;
    pthread_mutex_unlock(&t->lock);
    atomic_fetch_sub(&t->open, 1);
    owfp_rcu_retire(&f->rcu, release_flow);
}

/* With the lock held. */
static void note_contexts(struct owfp_flow *f)
{
    bool pending = false;
    for (uint16_t i = 0; i < f->nctx; i++)
        pending |= f->ctx[i].pending_delete;
    atomic_store(&f->pending_deletes, pending);
    atomic_store(&f->any_ctx, f->nctx > 0);
}

void owfp_flow_deliver_pending(struct owfp_flow *f)
{
    do {
        struct owfp_flow_ctx pending;
        bool found = false;
        owfp_flow_lock(f);
        if (atomic_load(&f->classifying) == 0) {
            for (uint16_t i = 0; i < f->nctx; i++) {
                if (f->ctx[i].pending_delete) {
                    pending = f->ctx[i];
                    remove_at(f, i);
                    found = true;
                    break;
                }
            }
            note_contexts(f);
        }
        owfp_flow_unlock(f);
        if (!found)
            return;
        deliver_delete(f->engine, &pending);
    } while (atomic_load(&f->pending_deletes));
}

static int find_ctx(const struct owfp_flow *f, uint16_t layer, uint32_t callout_id)
{
    for (uint16_t i = 0; i < f->nctx; i++)
        if (f->ctx[i].layer == layer && f->ctx[i].callout_id == callout_id &&
            !f->ctx[i].pending_delete)
            return i;
    return -1;
}

bool owfp_flow_context(struct owfp_flow *f, uint16_t layer, uint32_t callout_id, uint64_t *ctx)
{
    if (!atomic_load_explicit(&f->any_ctx, memory_order_acquire))
        return false;
    owfp_flow_lock(f);
    int i = find_ctx(f, layer, callout_id);
    if (i >= 0)
        *ctx = f->ctx[i].context;
    owfp_flow_unlock(f);
    return i >= 0;
}

static bool grow_ctx(struct owfp_flow *f)
{
    if (f->nctx < (f->ctx == &f->one_ctx ? 1 : f->capctx))
        return true;
    uint16_t cap = f->ctx == &f->one_ctx ? 4 : (uint16_t)(f->capctx * 2);
    if (cap < f->capctx)
        return false;
    struct owfp_flow_ctx *n = owfp_malloc(cap * sizeof(*n));
    if (!n)
        return false;
    memcpy(n, f->ctx, f->nctx * sizeof(*n));
    if (f->ctx != &f->one_ctx)
        owfp_free(f->ctx);
    f->ctx = n;
    f->capctx = cap;
    return true;
}

NTSTATUS FwpsFlowAssociateContext0(UINT64 flowId, UINT16 layerId, UINT32 calloutId,
                                   UINT64 flowContext)
{
    if (!flowContext)
        return STATUS_INVALID_PARAMETER;
    struct owfp_engine *e = owfp_engine_get();
    if (!e)
        return STATUS_FWP_TCPIP_NOT_READY;
    const struct owfp_layer_desc *layer = owfp_layer_by_id(layerId);
    if (!layer || !layer->flow_capable)
        return STATUS_FWP_INCOMPATIBLE_LAYER;
    NTSTATUS st;
    owfp_rcu_read_lock();
    struct owfp_callout *c = owfp_callout_get(e, calloutId);
    struct owfp_flow *f = owfp_flow_lookup(e, flowId);
    if (!c) {
        st = STATUS_FWP_CALLOUT_NOT_FOUND;
    } else if (!c->flow_delete) {
        st = STATUS_INVALID_PARAMETER; /* no way to ever hand it back (F4) */
        if (OWFP_VERIFY_ON())
            owfp_verify_associate_no_flow_delete(calloutId, flowId);
    } else if (atomic_load(&c->state) != OWFP_CALLOUT_REGISTERED) {
        st = STATUS_INVALID_DEVICE_STATE; /* unregistering (spec Q3) */
    } else if (!f) {
        st = STATUS_NOT_FOUND;
    } else {
        owfp_flow_lock(f);
        if (f->closing) {
            st = STATUS_NOT_FOUND;
        } else if (find_ctx(f, layerId, calloutId) >= 0) {
            st = STATUS_OBJECT_NAME_EXISTS;
        } else if (!grow_ctx(f)) {
            st = STATUS_INSUFFICIENT_RESOURCES;
        } else {
            f->ctx[f->nctx++] = (struct owfp_flow_ctx){layerId, false, calloutId, flowContext};
            note_contexts(f);
            atomic_fetch_add(&c->contexts, 1);
            atomic_fetch_add(&e->flows->contexts, 1);
            st = STATUS_SUCCESS;
        }
        owfp_flow_unlock(f);
    }
    owfp_rcu_read_unlock();
    return st;
}

NTSTATUS FwpsFlowRemoveContext0(UINT64 flowId, UINT16 layerId, UINT32 calloutId)
{
    struct owfp_engine *e = owfp_engine_get();
    if (!e)
        return STATUS_FWP_TCPIP_NOT_READY;
    NTSTATUS st = STATUS_UNSUCCESSFUL;
    struct owfp_flow_ctx removed;
    bool missing = false; /* for the verifier: an open flow without that context */
    owfp_rcu_read_lock();
    struct owfp_flow *f = owfp_flow_lookup(e, flowId);
    if (f) {
        owfp_flow_lock(f);
        int i = f->closing ? -1 : find_ctx(f, layerId, calloutId);
        missing = i < 0 && !f->closing;
        if (i >= 0) {
            atomic_store(&f->pending_deletes, true);
            if (atomic_load(&f->classifying)) {
                f->ctx[i].pending_delete = true;
                st = STATUS_PENDING;
                if (OWFP_VERIFY_ON())
                    owfp_verify_remove_pending(calloutId);
            } else {
                removed = f->ctx[i];
                remove_at(f, (uint16_t)i);
                st = STATUS_SUCCESS;
            }
            note_contexts(f);
        }
        owfp_flow_unlock(f);
    }
    if (st == STATUS_SUCCESS)
        deliver_delete(e, &removed);
    owfp_rcu_read_unlock();
    if (missing && OWFP_VERIFY_ON())
        owfp_verify_remove_missing(calloutId, flowId, layerId);
    return st;
}

NTSTATUS FwpsFlowAbort0(UINT64 flowId)
{
    struct owfp_engine *e = owfp_engine_get();
    if (!e)
        return STATUS_FWP_TCPIP_NOT_READY;
    owfp_rcu_read_lock();
    struct owfp_flow *f = owfp_flow_lookup(e, flowId);
    if (f)
        atomic_store(&f->aborted, true);
    owfp_rcu_read_unlock();
    return f ? STATUS_SUCCESS : STATUS_NOT_FOUND;
}

uint64_t owfp_flow_open_count(const struct owfp_engine *e)
{
    return atomic_load(&e->flows->open);
}

uint64_t owfp_flow_context_count(const struct owfp_engine *e)
{
    return atomic_load(&e->flows->contexts);
}

void owfp_flow_table_destroy(struct owfp_engine *e)
{
    struct owfp_flow_table *t = e->flows;
    if (!t)
        return;
    for (uint32_t s = 0; s < MAX_SEGS; s++) {
        _Atomic(struct owfp_flow *) *seg = atomic_load(&t->seg[s]);
        if (!seg)
            continue;
        for (uint32_t i = 0; i < SEG_SIZE; i++) {
            struct owfp_flow *f = atomic_load(&seg[i]);
            if (f)
                owfp_flow_end(f);
        }
    }
    owfp_rcu_reclaim(true);
    for (uint32_t s = 0; s < MAX_SEGS; s++)
        owfp_free(atomic_load(&t->seg[s]));
    owfp_free(t->free_slots);
    pthread_mutex_destroy(&t->lock);
    owfp_free(t);
    e->flows = NULL;
}
