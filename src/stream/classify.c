/*
 * One stream classify (spec §10.2-10.4): the stage's batch described to its
 * callout straight over the queued bytes (S5), the callout called, and its
 * answer read back as the waterfall will apply it.
 */
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

static bool ensure_desc(struct owfp_stream *s, size_t n)
{
    if (s->ndesc >= n)
        return true;
    size_t cap = s->ndesc ? s->ndesc : 1;
    while (cap < n)
        cap *= 2;
    struct owfp_desc *d = owfp_realloc(s->desc, cap * sizeof(*d));
    if (!d)
        return false;
    memset(d + s->ndesc, 0, (cap - s->ndesc) * sizeof(*d));
    s->desc = d;
    s->ndesc = cap;
    return true;
}

/* Points descriptor x at [data, data + len): the fields a callout reads to
 * find the bytes. The rest were zeroed when the array grew. */
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

/* Describes the batch to the callout: one NBL/NB/MDL per item, straight
 * over the item's bytes (spec S5). */
static bool describe(struct owfp_stream *s, const struct owfp_stage *st, int d,
                     const struct owfp_batch *b, const struct owfp_item *it,
                     FWPS_STREAM_DATA0 *sd)
{
    if (!ensure_desc(s, b->nitems ? b->nitems : 1))
        return false;
    uint32_t base = d == OWFP_STREAM_RECEIVE ? FWPS_STREAM_FLAG_RECEIVE : FWPS_STREAM_FLAG_SEND;
    uint32_t flags = base | b->stream_flags;
    if (!b->nitems) /* an ABORT indication: an empty chain */
        desc_set(&s->desc[0], NULL, 0);
    for (uint32_t i = 0; i < b->nitems; it = it->next) {
        if (!b->fin && !owfp_item_shown(st, it))
            continue;
        struct owfp_desc *x = &s->desc[i++];
        desc_set(x, it->data, it->len);
        if (x != s->desc)
            x[-1].nbl.Next = &x->nbl;
        flags |= modifier_flags(d, it->modifiers);
    }
    if (b->fin)
        flags |= d == OWFP_STREAM_RECEIVE ? FWPS_STREAM_FLAG_RECEIVE_DISCONNECT
                                          : FWPS_STREAM_FLAG_SEND_DISCONNECT;
    *sd = (FWPS_STREAM_DATA0){
        .flags = flags,
        .dataOffset = {.netBufferList = &s->desc[0].nbl,
                       .netBuffer = &s->desc[0].nb,
                       .mdl = &s->desc[0].mdl},
        .dataLength = b->len,
        .netBufferListChain = &s->desc[0].nbl,
    };
    return true;
}

/* Context blocks a callout added stay only for its classify; most add none. */
static void free_desc_contexts(struct owfp_stream *s, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (s->desc[i].nbl.Context)
            owfp_nbl_free_contexts(&s->desc[i].nbl);
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
    FWPS_STREAM_DATA0 data;
    if (!describe(s, st, d, b, head, &data))
        return false;
    FWPS_STREAM_CALLOUT_IO_PACKET0 io = {
        .streamData = &data,
        .missedBytes = st->d[d].missed, /* spec S6, S7 */
    };
    st->d[d].missed = 0;
    FWPS_INCOMING_VALUES0 in = {layer, FWPS_FIELD_STREAM_V4_MAX, s->values};
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
    free_desc_contexts(s, b->nitems ? b->nitems : 1);
    a->injected = place_injected(s, k, &call);
    owfp_stream_read_answer(st->action, &io, &out, b->len, a);
    if (a->action == FWPS_STREAM_ACTION_ALLOW_CONNECTION)
        st->allowed_offload = c->flags & FWP_CALLOUT_FLAG_ALLOW_OFFLOAD;
    return true;
}
