/*
 * Injection handles, FwpsStreamInjectAsync0 and FwpsStreamContinue0 (spec
 * S19, S26-S29). Inline injection (from the callout's own classify) lands
 * where the callout stands; anything from another thread or outside classify
 * is queued in the flow's inbox, the data plane is woken, and the owner
 * thread applies it in call order.
 */
#include <pthread.h>
#include <string.h>

#include "common/alloc.h"
#include "engine/flow.h"
#include "stream.h"
#include "verify/verify.h"

#define MAX_HANDLES 1024u
#define ADDRESS_FAMILY_INET6_WINDOWS 23
#define ADDRESS_FAMILY_INET6_LINUX 10

struct injection_handle {
    uint32_t generation; /* 0 = never used */
    uint32_t types;      /* FWPS_INJECTION_TYPE_* */
    bool closing;
    /* Destroyed: the slot is free, but until it is reused its old handle
     * still answers STATUS_FWP_INJECT_HANDLE_CLOSING. */
    bool destroyed;
    uint64_t pending; /* NBLs injected and not yet completed */
};

static pthread_mutex_t handles_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t handles_idle = PTHREAD_COND_INITIALIZER;
static struct injection_handle handles[MAX_HANDLES];
static uint32_t next_generation = 1;

/* HANDLE value: slot + 1 in the low 16 bits, generation above. */
static struct injection_handle *lookup(HANDLE h)
{
    uintptr_t v = (uintptr_t)h;
    uint32_t slot = (uint32_t)(v & 0xffff) - 1;
    uint32_t gen = (uint32_t)(v >> 16);
    if (slot >= MAX_HANDLES || !gen || handles[slot].generation != gen)
        return NULL;
    return &handles[slot];
}

NTSTATUS FwpsInjectionHandleCreate0(ADDRESS_FAMILY addressFamily, UINT32 flags,
                                    HANDLE *injectionHandle)
{
    if (!injectionHandle)
        return STATUS_FWP_NULL_POINTER;
    /* Both numberings of AF_INET6 are accepted (include/wdk/ws2def.h). */
    if (addressFamily != AF_UNSPEC && addressFamily != AF_INET &&
        addressFamily != ADDRESS_FAMILY_INET6_WINDOWS &&
        addressFamily != ADDRESS_FAMILY_INET6_LINUX)
        return STATUS_INVALID_PARAMETER;
    if (!flags || (flags & ~(UINT32)0x3f))
        return STATUS_INVALID_PARAMETER;
    pthread_mutex_lock(&handles_lock);
    NTSTATUS st = STATUS_INSUFFICIENT_RESOURCES;
    /* Never-used slots first, so a destroyed handle stays recognisable. */
    for (int pass = 0; pass < 2 && st != STATUS_SUCCESS; pass++) {
        for (uint32_t i = 0; i < MAX_HANDLES; i++) {
            if (pass == 0 ? handles[i].generation != 0 : !handles[i].destroyed)
                continue;
            uint32_t gen = next_generation++;
            if (!(gen & 0xffff))
                gen = next_generation++;
            handles[i] = (struct injection_handle){gen & 0xffff, flags, false, false, 0};
            *injectionHandle = (HANDLE)(((uintptr_t)handles[i].generation << 16) | (i + 1));
            st = STATUS_SUCCESS;
            break;
        }
    }
    pthread_mutex_unlock(&handles_lock);
    return st;
}

NTSTATUS FwpsInjectionHandleDestroy0(HANDLE injectionHandle)
{
    /* Waiting for completions from inside a callout would wait on itself. */
    if (owfp_passive_refused("FwpsInjectionHandleDestroy0"))
        return STATUS_INVALID_DEVICE_STATE;
    pthread_mutex_lock(&handles_lock);
    struct injection_handle *h = lookup(injectionHandle);
    if (!h || h->destroyed) {
        pthread_mutex_unlock(&handles_lock);
        return STATUS_INVALID_PARAMETER;
    }
    h->closing = true;
    /* Pending injections complete when the data plane delivers them or
     * closes their flow (spec S26, E3 step 5). */
    while (h->pending)
        pthread_cond_wait(&handles_idle, &handles_lock);
    h->destroyed = true;
    pthread_mutex_unlock(&handles_lock);
    return STATUS_SUCCESS;
}

void owfp_injection_handles_open(uint64_t *open, uint64_t *pending)
{
    *open = *pending = 0;
    pthread_mutex_lock(&handles_lock);
    for (uint32_t i = 0; i < MAX_HANDLES; i++) {
        if (handles[i].generation && !handles[i].destroyed) {
            (*open)++;
            *pending += handles[i].pending;
        }
    }
    pthread_mutex_unlock(&handles_lock);
}

/* One injected NBL: its completion runs once, when the last item over its
 * bytes is released. */
struct injection {
    struct owfp_ref ref;
    NET_BUFFER_LIST *nbl;
    FWPS_INJECT_COMPLETE0 complete;
    void *context;
    struct injection_handle *handle;
};

static void injection_done(struct owfp_ref *ref, NTSTATUS status)
{
    struct injection *inj = (struct injection *)ref;
    inj->nbl->Status = status;
    inj->complete(inj->context, inj->nbl, FALSE);
    pthread_mutex_lock(&handles_lock);
    if (--inj->handle->pending == 0)
        pthread_cond_broadcast(&handles_idle);
    pthread_mutex_unlock(&handles_lock);
    owfp_free(inj);
}

static void free_items(struct owfp_item *it, NTSTATUS status)
{
    while (it) {
        struct owfp_item *next = it->next;
        owfp_item_free(it, status);
        it = next;
    }
}

/* Items for the bytes of one NBL's NBs, at most `*budget` bytes. */
static bool items_for_nbl(NET_BUFFER_LIST *nbl, struct owfp_ref *ref, SIZE_T *budget,
                          struct owfp_queue *q)
{
    for (NET_BUFFER *nb = NET_BUFFER_LIST_FIRST_NB(nbl); nb && *budget; nb = NET_BUFFER_NEXT_NB(nb)) {
        SIZE_T left = NET_BUFFER_DATA_LENGTH(nb);
        ULONG off = NET_BUFFER_CURRENT_MDL_OFFSET(nb);
        for (MDL *m = NET_BUFFER_CURRENT_MDL(nb); m && left && *budget; m = m->Next, off = 0) {
            SIZE_T avail = MmGetMdlByteCount(m) > off ? MmGetMdlByteCount(m) - off : 0;
            SIZE_T take = avail < left ? avail : left;
            take = take < *budget ? take : *budget;
            if (!take)
                continue;
            struct owfp_item *it = owfp_item_new();
            if (!it)
                return false;
            it->data = (const uint8_t *)MmGetSystemAddressForMdlSafe(m, NormalPagePriority) + off;
            it->len = take;
            it->ref = ref;
            it->origin = OWFP_SPAN_INJECTED;
            ref->refs++;
            owfp_queue_push(q, it);
            left -= take;
            *budget -= take;
        }
    }
    return true;
}

static NTSTATUS check_inject_args(UINT32 flags, UINT16 layerId, UINT32 streamFlags,
                                  NET_BUFFER_LIST *nbl, FWPS_INJECT_COMPLETE0 completionFn,
                                  int *dir)
{
    if (!completionFn)
        return STATUS_FWP_NULL_POINTER;
    if (flags || (layerId != FWPS_LAYER_STREAM_V4 && layerId != FWPS_LAYER_STREAM_V6))
        return STATUS_FWP_INVALID_PARAMETER;
    bool recv = streamFlags & FWPS_STREAM_FLAG_RECEIVE;
    bool send = streamFlags & FWPS_STREAM_FLAG_SEND;
    const UINT32 recv_ok = FWPS_STREAM_FLAG_RECEIVE | FWPS_STREAM_FLAG_RECEIVE_EXPEDITED |
                           FWPS_STREAM_FLAG_RECEIVE_DISCONNECT | FWPS_STREAM_FLAG_RECEIVE_PUSH;
    const UINT32 send_ok = FWPS_STREAM_FLAG_SEND | FWPS_STREAM_FLAG_SEND_EXPEDITED |
                           FWPS_STREAM_FLAG_SEND_NODELAY | FWPS_STREAM_FLAG_SEND_DISCONNECT;
    /* Spec S26, T21: exactly one direction, modifiers of that direction. */
    if (recv == send || (recv && (streamFlags & ~recv_ok)) || (send && (streamFlags & ~send_ok)))
        return STATUS_FWP_INVALID_PARAMETER;
    bool disconnect = streamFlags & (FWPS_STREAM_FLAG_RECEIVE_DISCONNECT |
                                     FWPS_STREAM_FLAG_SEND_DISCONNECT);
    if (!nbl && !disconnect)
        return STATUS_FWP_NULL_POINTER;
    *dir = recv ? OWFP_STREAM_RECEIVE : OWFP_STREAM_SEND;
    return STATUS_SUCCESS;
}

/* The stage of `calloutId` in the flow's path, or -1. Under the flow lock.
 * Static filters' stages carry callout_id 0, which names no callout (R3). */
static int stage_of(const struct owfp_stream *s, UINT32 calloutId)
{
    for (uint32_t k = 0; calloutId && k < s->nstages; k++)
        if (s->stages[k].callout_id == calloutId && !s->stages[k].gone)
            return (int)k;
    return -1;
}

/* A stage where `calloutId` deferred direction `dir` (or is deciding right
 * now), or -1. A callout with several filters on the path may have deferred
 * at any of them (found by fuzz/fuzz_stream.c). Under the flow lock. */
static int deferred_stage_of(struct owfp_stream *s, UINT32 calloutId, int dir)
{
    uint32_t busy = atomic_load_explicit(&s->busy_stage, memory_order_acquire);
    for (uint32_t k = 0; calloutId && k < s->nstages; k++)
        if (s->stages[k].callout_id == calloutId && !s->stages[k].gone &&
            (s->stages[k].d[dir].deferred || busy == k + 1))
            return (int)k;
    return -1;
}

static void post(struct owfp_flow *f, struct owfp_inbox_op *op)
{
    struct owfp_stream *s = f->stream;
    if (s->inbox_tail)
        s->inbox_tail->next = op;
    else
        atomic_store_explicit(&s->inbox, op, memory_order_release);
    s->inbox_tail = op;
}

static void wake(struct owfp_flow *f)
{
    owfp_flow_lock(f);
    owfp_wakeup_fn fn = f->stream ? f->stream->wake : NULL;
    void *arg = f->stream ? f->stream->wake_arg : NULL;
    owfp_flow_unlock(f);
    if (fn)
        fn(arg, (owfp_flow *)f);
}

NTSTATUS FwpsStreamInjectAsync0(HANDLE injectionHandle, HANDLE injectionContext, UINT32 flags,
                                UINT64 flowId, UINT32 calloutId, UINT16 layerId,
                                UINT32 streamFlags, NET_BUFFER_LIST *netBufferList,
                                SIZE_T dataLength, FWPS_INJECT_COMPLETE0 completionFn,
                                HANDLE completionContext)
{
    (void)injectionContext;
    int dir;
    NTSTATUS st = check_inject_args(flags, layerId, streamFlags, netBufferList, completionFn, &dir);
    if (!NT_SUCCESS(st))
        return st;
    struct owfp_engine *e = owfp_engine_get();
    if (!e)
        return STATUS_FWP_TCPIP_NOT_READY;

    /* Every NBL of the chain completes once: count them as pending now, so
     * FwpsInjectionHandleDestroy0 cannot miss an injection that is being
     * queued (or is already completing on the owner thread). */
    uint64_t nnbl = 0;
    for (NET_BUFFER_LIST *nbl = netBufferList; nbl; nbl = NET_BUFFER_LIST_NEXT_NBL(nbl))
        nnbl++;
    pthread_mutex_lock(&handles_lock);
    struct injection_handle *h = lookup(injectionHandle);
    if (!h || !(h->types & FWPS_INJECTION_TYPE_STREAM))
        st = STATUS_FWP_INJECT_HANDLE_STALE;
    else if (h->closing)
        st = STATUS_FWP_INJECT_HANDLE_CLOSING;
    else
        h->pending += nnbl;
    pthread_mutex_unlock(&handles_lock);
    if (!NT_SUCCESS(st))
        return st;

    /* Build the items first; nothing is owned by the engine until success. */
    struct owfp_queue q = {0};
    SIZE_T budget = dataLength;
    for (NET_BUFFER_LIST *nbl = netBufferList; nbl; nbl = NET_BUFFER_LIST_NEXT_NBL(nbl)) {
        struct injection *inj = owfp_calloc(1, sizeof(*inj));
        if (!inj) {
            st = STATUS_INSUFFICIENT_RESOURCES;
            break;
        }
        if (!items_for_nbl(nbl, &inj->ref, &budget, &q)) {
            /* Items already made hold it; the undo below frees it with them. */
            if (!inj->ref.refs)
                owfp_free(inj);
            st = STATUS_INSUFFICIENT_RESOURCES;
            break;
        }
        *inj = (struct injection){{inj->ref.refs, injection_done}, nbl, completionFn,
                                  completionContext, h};
        if (!inj->ref.refs) {
            /* An NBL with no bytes to inject still completes, at once. */
            inj->ref.refs = 1;
            struct owfp_item *marker = owfp_item_new();
            if (!marker) {
                owfp_free(inj);
                st = STATUS_INSUFFICIENT_RESOURCES;
                break;
            }
            marker->ref = &inj->ref;
            marker->origin = OWFP_SPAN_INJECTED;
            owfp_queue_push(&q, marker);
        }
    }
    if (NT_SUCCESS(st) && (streamFlags & (FWPS_STREAM_FLAG_RECEIVE_DISCONNECT |
                                          FWPS_STREAM_FLAG_SEND_DISCONNECT))) {
        struct owfp_item *fin = owfp_item_new();
        if (!fin) {
            st = STATUS_INSUFFICIENT_RESOURCES;
        } else {
            fin->kind = OWFP_ITEM_FIN;
            fin->origin = OWFP_SPAN_INJECTED;
            owfp_queue_push(&q, fin);
        }
    }
    if (!NT_SUCCESS(st))
        goto undo;

    owfp_rcu_read_lock();
    struct owfp_flow *f = owfp_flow_lookup(e, flowId);
    struct owfp_stream_call *cur = owfp_stream_current;
    if (!f) {
        st = STATUS_NOT_FOUND;
    } else if (cur && cur->in_classify && cur->stream->flow == f &&
               cur->stream->stages[cur->stage].callout_id == calloutId) {
        /* Inline (spec S28): placed when the classify returns. */
        owfp_queue_append(&cur->injected[dir], &q);
        if (OWFP_VERIFY_ON())
            owfp_verify_inject(f, calloutId, dir, streamFlags, true, false);
    } else {
        struct owfp_inbox_op *op = owfp_calloc(1, sizeof(*op));
        bool deferred = false; /* for the verifier (spec S27 b) */
        owfp_flow_lock(f);
        if (!op) {
            st = STATUS_INSUFFICIENT_RESOURCES;
        } else if (f->closing || !f->stream || stage_of(f->stream, calloutId) < 0) {
            st = f->closing || !f->stream ? STATUS_NOT_FOUND : STATUS_INVALID_PARAMETER;
        } else {
            *op = (struct owfp_inbox_op){NULL, OWFP_INBOX_INJECT, (uint8_t)dir, calloutId, q.head};
            post(f, op);
            op = NULL;
            q = (struct owfp_queue){0};
            if (OWFP_VERIFY_ON())
                for (uint32_t k = 0; k < f->stream->nstages; k++)
                    deferred |= f->stream->stages[k].callout_id == calloutId &&
                                f->stream->stages[k].d[dir].deferred;
        }
        owfp_flow_unlock(f);
        owfp_free(op);
        if (NT_SUCCESS(st) && OWFP_VERIFY_ON())
            owfp_verify_inject(f, calloutId, dir, streamFlags, false, deferred);
        if (NT_SUCCESS(st))
            wake(f);
    }
    owfp_rcu_read_unlock();
    if (NT_SUCCESS(st))
        return STATUS_SUCCESS;
undo:
    pthread_mutex_lock(&handles_lock);
    h->pending -= nnbl;
    if (!h->pending)
        pthread_cond_broadcast(&handles_idle);
    pthread_mutex_unlock(&handles_lock);
    /* On failure the caller keeps its NBLs and no completion runs (S26). */
    for (struct owfp_item *it = q.head; it; it = it->next)
        if (it->ref)
            it->ref->release = NULL;
    while (q.head) {
        struct owfp_item *it = owfp_queue_pop(&q);
        if (it->ref && --it->ref->refs == 0)
            owfp_free(it->ref);
        owfp_free(it);
    }
    return st;
}

NTSTATUS FwpsStreamContinue0(UINT64 flowId, UINT32 calloutId, UINT16 layerId, UINT32 streamFlags)
{
    /* Spec S19: never from inside a classifyFn. */
    if (owfp_in_callout()) {
        if (OWFP_VERIFY_ON())
            owfp_verify_continue_in_callout(calloutId, flowId);
        return STATUS_INVALID_DEVICE_STATE;
    }
    if (layerId != FWPS_LAYER_STREAM_V4 && layerId != FWPS_LAYER_STREAM_V6)
        return STATUS_FWP_INVALID_PARAMETER;
    bool recv = streamFlags & FWPS_STREAM_FLAG_RECEIVE;
    bool send = streamFlags & FWPS_STREAM_FLAG_SEND;
    if (recv == send)
        return STATUS_FWP_INVALID_PARAMETER;
    int dir = recv ? OWFP_STREAM_RECEIVE : OWFP_STREAM_SEND;
    struct owfp_engine *e = owfp_engine_get();
    if (!e)
        return STATUS_FWP_TCPIP_NOT_READY;
    NTSTATUS st;
    struct owfp_inbox_op *op = owfp_calloc(1, sizeof(*op));
    if (!op)
        return STATUS_INSUFFICIENT_RESOURCES;
    owfp_rcu_read_lock();
    struct owfp_flow *f = owfp_flow_lookup(e, flowId);
    if (!f) {
        st = STATUS_NOT_FOUND;
    } else {
        owfp_flow_lock(f);
        int k = f->stream && !f->closing ? deferred_stage_of(f->stream, calloutId, dir) : -1;
        if (f->closing) {
            st = STATUS_NOT_FOUND; /* being closed: as good as gone (as for injection) */
        } else if (k < 0) {
            st = STATUS_INVALID_PARAMETER; /* nothing deferred to continue */
        } else {
            *op = (struct owfp_inbox_op){NULL, OWFP_INBOX_CONTINUE, (uint8_t)dir, calloutId, NULL};
            post(f, op);
            op = NULL;
            st = STATUS_SUCCESS;
        }
        owfp_flow_unlock(f);
        if (NT_SUCCESS(st))
            wake(f);
    }
    owfp_rcu_read_unlock();
    owfp_free(op);
    return st;
}

/* Owner thread: applies queued work in call order. */
void owfp_stream_drain_inbox(struct owfp_stream *s)
{
    if (!atomic_load_explicit(&s->inbox, memory_order_acquire))
        return;
    owfp_flow_lock(s->flow);
    struct owfp_inbox_op *op = atomic_load_explicit(&s->inbox, memory_order_relaxed);
    atomic_store_explicit(&s->inbox, NULL, memory_order_relaxed);
    s->inbox_tail = NULL;
    owfp_flow_unlock(s->flow);
    while (op) {
        struct owfp_inbox_op *next = op->next;
        int k = stage_of(s, op->callout_id);
        if (op->kind == OWFP_INBOX_CONTINUE) {
            /* Wherever the callout deferred that direction, it resumes. */
            owfp_flow_lock(s->flow);
            for (uint32_t j = 0; j < s->nstages; j++)
                if (s->stages[j].callout_id == op->callout_id)
                    s->stages[j].d[op->dir].deferred = false;
            owfp_flow_unlock(s->flow);
        } else if (k < 0 || s->dropped) {
            free_items(op->items, STATUS_CANCELLED);
        } else {
            /* Out-of-band data is appended where the callout stands (S28). */
            struct owfp_queue *q = (uint32_t)k + 1 < s->nstages ? &s->stages[k + 1].d[op->dir].q
                                                                : &s->out[op->dir].q;
            for (struct owfp_item *it = op->items; it;) {
                struct owfp_item *n = it->next;
                it->skip_rank = s->stages[k].rank;
                owfp_queue_push(q, it);
                it = n;
            }
        }
        owfp_free(op);
        op = next;
    }
}

void owfp_stream_discard_inbox(struct owfp_stream *s)
{
    owfp_flow_lock(s->flow);
    struct owfp_inbox_op *op = atomic_load_explicit(&s->inbox, memory_order_relaxed);
    atomic_store_explicit(&s->inbox, NULL, memory_order_relaxed);
    s->inbox_tail = NULL;
    owfp_flow_unlock(s->flow);
    while (op) {
        struct owfp_inbox_op *next = op->next;
        free_items(op->items, STATUS_CANCELLED);
        owfp_free(op);
        op = next;
    }
}
