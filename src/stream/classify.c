/*
 * One stream classify (spec §10.2-10.4): the stage's batch described to its
 * callout straight over the queued bytes (S5), the callout called, and its
 * answer read back as the waterfall will apply it.
 */
#include <pthread.h>
#include <string.h>

#include "common/alloc.h"
#include "engine/callout_registry.h"
#include "engine/flow.h"
#include "engine/store.h"
#include "ndis/ndis_internal.h"
#include "stream.h"

_Thread_local struct owfp_stream_call *owfp_stream_current;

static uint16_t stream_layer(const struct owfp_stream *s)
{
    return s->flow->ip_version == 4 ? FWPS_LAYER_STREAM_V4 : FWPS_LAYER_STREAM_V6;
}

/*
 * What a classify shows its callout besides the data's own bytes: the
 * NBL/NB/MDL descriptors and the stream layer's fixed incoming values. They
 * live for one classify, so each thread keeps them, not each flow: one set
 * per classify nesting depth (a callout may indicate into another flow from
 * inside its classify, and the outer classify's set must stay put), grown
 * as a batch needs. A flow then carries none of it, and a classify writes
 * to memory that is warm rather than to its flow's own cold copy.
 *
 * A set remembers the stream it last served. For the same stream again,
 * as when each stream kept its own, the values stand and the descriptors
 * only get their data fields set; for another stream the values are built
 * and the descriptors zeroed first, so nothing a callout wrote into one
 * flow's descriptors shows in another's. Beyond SCRATCH_DEPTHS nested
 * classifies each one allocates a set of its own.
 */
#define SCRATCH_DEPTHS 4

struct scratch {
    uint64_t owner;        /* the serial of the stream served last; 0: none */
    struct owfp_desc *desc;
    size_t ndesc;
    size_t zeroed;         /* descriptors zeroed since `owner` took the set */
    FWPS_INCOMING_VALUE0 values[FWPS_FIELD_STREAM_V4_MAX];
    FWP_BYTE_ARRAY16 local6, remote6;
};

struct scratch_pool {
    struct scratch at[SCRATCH_DEPTHS];
    unsigned depth;  /* classifies in progress on this thread */
    bool registered; /* freed at thread exit */
};

static _Thread_local struct scratch_pool g_scratch;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void drop_scratch(void *arg)
{
    struct scratch_pool *p = arg;
    for (unsigned i = 0; i < SCRATCH_DEPTHS; i++) {
        owfp_free(p->at[i].desc);
        p->at[i] = (struct scratch){0};
    }
}

static void make_scratch_key(void)
{
    pthread_key_create(&scratch_key, drop_scratch);
}

void owfp_stream_desc_cache_drop(void)
{
    drop_scratch(&g_scratch);
}

/* `pool`: the thread's pool x belongs to (its memory is then freed at
 * thread exit), or NULL for a set of its own. */
static bool grow_desc(struct scratch *x, size_t n, struct scratch_pool *pool)
{
    size_t cap = x->ndesc ? x->ndesc : 1;
    while (cap < n)
        cap *= 2;
    struct owfp_desc *d = owfp_realloc(x->desc, cap * sizeof(*d));
    if (!d)
        return false;
    x->desc = d;
    x->ndesc = cap;
    if (pool && !pool->registered) {
        pthread_once(&scratch_once, make_scratch_key);
        pthread_setspecific(scratch_key, pool);
        pool->registered = true;
    }
    return true;
}

/* Makes x ready for a classify of stream s with n descriptors. */
static inline bool scratch_fit(struct scratch *x, const struct owfp_stream *s, size_t n,
                               struct scratch_pool *pool)
{
    if (x->owner == s->serial && x->zeroed >= n)
        return true; /* the same stream again: nothing to do */
    if (x->ndesc < n && !grow_desc(x, n, pool))
        return false;
    if (x->owner != s->serial) {
        owfp_stream_fixed_values(s->flow, x->values, &x->local6, &x->remote6);
        x->owner = s->serial;
        x->zeroed = 0;
    }
    if (x->zeroed < n) {
        memset(x->desc + x->zeroed, 0, (n - x->zeroed) * sizeof(*x->desc));
        x->zeroed = n;
    }
    return true;
}

/* The set for a classify of s at the current depth, with n descriptors;
 * scratch_put() gives it back. NULL when out of memory. */
static struct scratch *scratch_get(const struct owfp_stream *s, size_t n)
{
    struct scratch_pool *p = &g_scratch;
    struct scratch *x;
    if (p->depth >= SCRATCH_DEPTHS) {
        x = owfp_calloc(1, sizeof(*x));
        if (x && !scratch_fit(x, s, n, NULL)) {
            owfp_free(x);
            x = NULL;
        }
    } else {
        x = &p->at[p->depth];
        if (!scratch_fit(x, s, n, p))
            x = NULL;
    }
    if (x)
        p->depth++;
    return x;
}

static void scratch_put(struct scratch *x)
{
    struct scratch_pool *p = &g_scratch;
    if (--p->depth >= SCRATCH_DEPTHS) {
        owfp_free(x->desc);
        owfp_free(x);
    }
}

/* Points descriptor x at [data, data + len): the fields a callout reads to
 * find the bytes. The rest were zeroed when the set was taken. */
static void desc_set(struct owfp_desc *x, const uint8_t *data, size_t len)
{
    owfp_mdl_init_borrowed(&x->mdl, data, (ULONG)len);
    x->nb.Next = NULL;
    x->nb.MdlChain = x->nb.CurrentMdl = &x->mdl;
    x->nb.CurrentMdlOffset = 0;
    x->nb.DataOffset = 0;
    x->nb.stDataLength = len;
    x->nbl.Next = NULL;
    x->nbl.FirstNetBuffer = &x->nb;
}

static uint32_t modifier_flags(int d, uint32_t modifiers)
{
    uint32_t f = 0;
    if (d == OWFP_STREAM_RECEIVE) {
        if (modifiers & OWFP_STREAM_PUSH)
            f |= FWPS_STREAM_FLAG_RECEIVE_PUSH;
        if (modifiers & OWFP_STREAM_URGENT)
            f |= FWPS_STREAM_FLAG_RECEIVE_EXPEDITED;
    } else {
        if (modifiers & OWFP_STREAM_URGENT)
            f |= FWPS_STREAM_FLAG_SEND_EXPEDITED;
        if (modifiers & OWFP_STREAM_NODELAY)
            f |= FWPS_STREAM_FLAG_SEND_NODELAY;
    }
    return f;
}

/* Describes the batch to the callout in descriptors `x`: one NBL/NB/MDL
 * per item, straight over the item's bytes (spec S5). */
static void describe(struct owfp_desc *x, const struct owfp_stage *st, int d,
                     const struct owfp_batch *b, const struct owfp_item *it,
                     FWPS_STREAM_DATA0 *sd)
{
    uint32_t base = d == OWFP_STREAM_RECEIVE ? FWPS_STREAM_FLAG_RECEIVE : FWPS_STREAM_FLAG_SEND;
    uint32_t flags = base | b->stream_flags;
    if (!b->nitems) /* an ABORT indication: an empty chain */
        desc_set(&x[0], NULL, 0);
    for (uint32_t i = 0; i < b->nitems; it = it->next) {
        if (!b->fin && !owfp_item_shown(st, it))
            continue;
        struct owfp_desc *y = &x[i++];
        desc_set(y, it->data, it->len);
        if (y != x)
            y[-1].nbl.Next = &y->nbl;
        flags |= modifier_flags(d, it->modifiers);
    }
    if (b->fin)
        flags |= d == OWFP_STREAM_RECEIVE ? FWPS_STREAM_FLAG_RECEIVE_DISCONNECT
                                          : FWPS_STREAM_FLAG_SEND_DISCONNECT;
    *sd = (FWPS_STREAM_DATA0){
        .flags = flags,
        .dataOffset = {.netBufferList = &x[0].nbl, .netBuffer = &x[0].nb, .mdl = &x[0].mdl},
        .dataLength = b->len,
        .netBufferListChain = &x[0].nbl,
    };
}

/* Context blocks a callout added stay only for its classify; most add none. */
static void free_desc_contexts(struct owfp_desc *x, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (x[i].nbl.Context)
            owfp_nbl_free_contexts(&x[i].nbl);
}

/* The answer of a stage whose callout is not called. */
static bool without_callout(const struct owfp_stage *st, const struct owfp_callout *c,
                            struct owfp_answer *a)
{
    if (!st->callout_id) {
        a->route = owfp_stream_route(st->action, 0);
    } else if (!c) { /* spec R5, T19 */
        if (st->action == FWP_ACTION_CALLOUT_INSPECTION)
            a->route = OWFP_ROUTE_CONTINUE;
        else
            a->route = st->filter->rt.flags & FWPS_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED
                           ? OWFP_ROUTE_PERMIT
                           : OWFP_ROUTE_BLOCK;
    } else {
        return false;
    }
    return true;
}

/* Spec S28: injected data stands where the callout is, before whatever the
 * answer lets through. */
static bool place_injected(struct owfp_stream *s, uint32_t k, struct owfp_stream_call *call)
{
    bool any = false;
    for (int id = 0; id < 2; id++) {
        if (!call->injected[id].head)
            continue;
        for (struct owfp_item *it = call->injected[id].head; it; it = it->next)
            it->skip_rank = s->stages[k].rank;
        struct owfp_queue *next =
            k + 1 < s->nstages ? &s->stages[k + 1].d[id].q : &s->out[id].q;
        owfp_queue_append(next, &call->injected[id]);
        any = true;
    }
    return any;
}

static const FWPS_INCOMING_METADATA_VALUES0 *metadata(const struct owfp_stage *st,
                                                      const struct owfp_flow *f)
{
    /* Only the fields whose bits are set are meaningful; the rest stay zero
     * from the thread's first classify. */
    static _Thread_local FWPS_INCOMING_METADATA_VALUES0 meta;
    meta.currentMetadataValues = FWPS_METADATA_FIELD_FLOW_HANDLE |
                                 FWPS_METADATA_FIELD_COMPARTMENT_ID;
    meta.flags = st->mid_stream ? FWPS_INCOMING_FLAG_MID_STREAM_INSPECTION : 0;
    meta.flowHandle = f->id;
    meta.compartmentId = f->compartment_id;
    return &meta;
}

bool owfp_stream_classify(struct owfp_stream *s, uint32_t k, int d, const struct owfp_batch *b,
                          const struct owfp_item *head, struct owfp_answer *a)
{
    struct owfp_stage *st = &s->stages[k];
    struct owfp_flow *f = s->flow;
    *a = (struct owfp_answer){FWPS_STREAM_ACTION_NONE, OWFP_ROUTE_CONTINUE, b->len, 0, false};
    struct owfp_callout *c = st->callout_id ? owfp_callout_get(f->engine, st->callout_id) : NULL;
    if (without_callout(st, c, a))
        return true;
    uint16_t layer = stream_layer(s);
    uint64_t flow_ctx = 0;
    bool has_ctx = atomic_load_explicit(&f->any_ctx, memory_order_acquire) &&
                   owfp_flow_context(f, layer, c->id, &flow_ctx);
    if ((c->flags & FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW) && !has_ctx)
        return true; /* spec F9: as if the filter did not match (CONTINUE) */
    uint32_t ndesc = b->nitems ? b->nitems : 1;
    struct scratch *x = scratch_get(s, ndesc);
    if (!x)
        return false;
    FWPS_STREAM_DATA0 data;
    describe(x->desc, st, d, b, head, &data);
    FWPS_STREAM_CALLOUT_IO_PACKET0 io = {
        .streamData = &data,
        .missedBytes = st->d[d].missed, /* spec S6, S7 */
    };
    st->d[d].missed = 0;
    FWPS_INCOMING_VALUES0 in = {layer, FWPS_FIELD_STREAM_V4_MAX, x->values};
    const FWPS_INCOMING_METADATA_VALUES0 *meta = metadata(st, f);
    FWPS_CLASSIFY_OUT0 out = {
        .filterId = st->filter_id,
        .rights = FWPS_RIGHT_ACTION_WRITE,
        .flags = b->out_flags,
    };
    struct owfp_stream_call call = {.stream = s, .stage = k, .dir = (uint8_t)d,
                                    .in_classify = true};
    struct owfp_stream_call *outer = owfp_stream_current;
    owfp_stream_current = &call;
    owfp_flow_classify_begin(f);
    atomic_fetch_add_explicit(&f->engine->classifies, 1, memory_order_relaxed);
    owfp_callout_call_classify(c, &in, meta, &io, &io, &st->filter->rt, flow_ctx, &out);
    owfp_flow_classify_end(f);
    owfp_stream_current = outer;
    st->mid_stream = false;
    free_desc_contexts(x->desc, ndesc);
    scratch_put(x);
    a->injected = place_injected(s, k, &call);
    owfp_stream_read_answer(st->action, &io, &out, b->len, a);
    if (a->action == FWPS_STREAM_ACTION_ALLOW_CONNECTION)
        st->allowed_offload = c->flags & FWP_CALLOUT_FLAG_ALLOW_OFFLOAD;
    return true;
}
