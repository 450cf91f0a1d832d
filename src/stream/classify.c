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
 * Descriptors shown to callouts. They only live for one classify, so each
 * thread keeps them instead of each flow: one array per classify nesting
 * depth (a callout may indicate or inject into another flow from inside its
 * classify, and the outer classify's descriptors must stay put), grown as
 * a batch needs. A flow then carries no descriptors, and a classify writes
 * to memory that is warm rather than to its flow's own cold copy. Beyond
 * DESC_DEPTHS nested classifies each one allocates its own.
 */
#define DESC_DEPTHS 4

struct desc_pool {
    struct owfp_desc *d[DESC_DEPTHS];
    size_t n[DESC_DEPTHS];
    unsigned depth; /* classifies in progress on this thread */
    bool registered; /* freed at thread exit */
};

static _Thread_local struct desc_pool g_descs;
static pthread_key_t desc_key;
static pthread_once_t desc_once = PTHREAD_ONCE_INIT;

static void drop_descs(void *arg)
{
    struct desc_pool *p = arg;
    for (unsigned i = 0; i < DESC_DEPTHS; i++) {
        owfp_free(p->d[i]);
        p->d[i] = NULL;
        p->n[i] = 0;
    }
}

static void make_desc_key(void)
{
    pthread_key_create(&desc_key, drop_descs);
}

void owfp_stream_desc_cache_drop(void)
{
    drop_descs(&g_descs);
}

/* `n` descriptors for the classify about to run at the current depth;
 * desc_put() gives them back. NULL when out of memory. */
static struct owfp_desc *desc_get(size_t n)
{
    struct desc_pool *p = &g_descs;
    unsigned i = p->depth;
    struct owfp_desc *d;
    if (i >= DESC_DEPTHS) {
        if (!(d = owfp_malloc(n * sizeof(*d))))
            return NULL;
    } else if (p->n[i] < n) {
        size_t cap = p->n[i] ? p->n[i] : 1;
        while (cap < n)
            cap *= 2;
        if (!(d = owfp_realloc(p->d[i], cap * sizeof(*d))))
            return NULL;
        p->d[i] = d;
        p->n[i] = cap;
        if (!p->registered) {
            pthread_once(&desc_once, make_desc_key);
            pthread_setspecific(desc_key, p);
            p->registered = true;
        }
    } else {
        d = p->d[i];
    }
    p->depth++;
    return d;
}

static void desc_put(struct owfp_desc *d)
{
    struct desc_pool *p = &g_descs;
    if (--p->depth >= DESC_DEPTHS)
        owfp_free(d);
}

/* Points descriptor x at [data, data + len). Everything else is zero, as
 * for a fresh NBL: nothing a callout wrote into another classify's
 * descriptors shows through. */
static void desc_set(struct owfp_desc *x, const uint8_t *data, size_t len)
{
    memset(x, 0, sizeof(*x));
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
    struct owfp_desc *x = desc_get(ndesc);
    if (!x)
        return false;
    FWPS_STREAM_DATA0 data;
    describe(x, st, d, b, head, &data);
    FWPS_STREAM_CALLOUT_IO_PACKET0 io = {
        .streamData = &data,
        .missedBytes = st->d[d].missed, /* spec S6, S7 */
    };
    st->d[d].missed = 0;
    /* Built for each classify, on the stack: cheaper than keeping them in
     * every flow, where they would be cold by the next classify anyway. */
    FWPS_INCOMING_VALUE0 values[FWPS_FIELD_STREAM_V4_MAX];
    FWP_BYTE_ARRAY16 local6, remote6;
    owfp_stream_fixed_values(f, values, &local6, &remote6);
    FWPS_INCOMING_VALUES0 in = {layer, FWPS_FIELD_STREAM_V4_MAX, values};
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
    free_desc_contexts(x, ndesc);
    desc_put(x);
    a->injected = place_injected(s, k, &call);
    owfp_stream_read_answer(st->action, &io, &out, b->len, a);
    if (a->action == FWPS_STREAM_ACTION_ALLOW_CONNECTION)
        st->allowed_offload = c->flags & FWP_CALLOUT_FLAG_ALLOW_OFFLOAD;
    return true;
}
