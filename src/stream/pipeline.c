/*
 * The stream waterfall (spec §10.3-10.5, §10.7): each stage classifies the
 * data queued in front of it and routes what it decided on — permitted
 * bytes past the rest of its sublayer, continued bytes to the next stage,
 * blocked bytes nowhere — while everything moves through the stages in
 * stream order, so nothing ever overtakes held data.
 */
#include <string.h>

#include "common/alloc.h"
#include "engine/callout_registry.h"
#include "engine/flow.h"
#include "engine/layers.h"
#include "engine/store.h"
#include "ndis/ndis_internal.h"
#include "stream.h"

_Thread_local struct owfp_stream_call *owfp_stream_current;

/* Spec S17: what NEED_MORE_DATA may accumulate at one stage. */
#define OWFP_STREAM_LIMIT (8u * 1024 * 1024)

enum route {
    R_PERMIT,   /* on, past the rest of this sublayer */
    R_CONTINUE, /* on, to the next stage */
    R_BLOCK,    /* removed from the stream */
};

static struct owfp_queue *next_queue(struct owfp_stream *s, uint32_t k, int d)
{
    return k + 1 < s->nstages ? &s->stages[k + 1].d[d].q : &s->out[d].q;
}

static uint16_t stream_layer(const struct owfp_stream *s)
{
    return s->flow->ip_version == 4 ? FWPS_LAYER_STREAM_V4 : FWPS_LAYER_STREAM_V6;
}

static void route_item(struct owfp_stream *s, uint32_t k, int d, struct owfp_item *it,
                       enum route r)
{
    if (r == R_BLOCK) {
        for (uint32_t j = k + 1; j < s->nstages; j++)
            s->stages[j].d[d].missed += it->len;
        owfp_item_free(it, STATUS_SUCCESS);
        return;
    }
    it->skip_rank = r == R_PERMIT ? s->stages[k].rank : OWFP_NO_SKIP;
    owfp_queue_push(next_queue(s, k, d), it);
}

/* Spec A9 at the stream layer (S24). */
static enum route interpret(uint32_t filter_action, uint32_t answer)
{
    switch (filter_action) {
    case FWP_ACTION_PERMIT:
        return R_PERMIT;
    case FWP_ACTION_BLOCK:
        return R_BLOCK;
    case FWP_ACTION_CONTINUE:
    case FWP_ACTION_CALLOUT_INSPECTION:
        return R_CONTINUE;
    case FWP_ACTION_CALLOUT_TERMINATING:
        return answer == FWP_ACTION_PERMIT ? R_PERMIT : R_BLOCK;
    default:
        return answer == FWP_ACTION_PERMIT  ? R_PERMIT
               : answer == FWP_ACTION_BLOCK ? R_BLOCK
                                            : R_CONTINUE;
    }
}

/* The indication a stage is shown next: the run of data at the head of its
 * queue (up to the rest of a partly enforced indication, S16), or a FIN. */
struct batch {
    uint32_t nitems;
    uint64_t len;
    bool fin;         /* the batch is the FIN itself */
    bool fin_follows; /* NO_MORE_DATA */
};

/* Data the stage is shown: not what its sublayer already permitted or
 * injected (spec A2, S25), nor empty injected NBLs. */
static bool shown(const struct owfp_stage *st, const struct owfp_item *it)
{
    return it->kind == OWFP_ITEM_DATA && it->len && it->skip_rank != st->rank;
}

static void take_batch(const struct owfp_stage *st, int d, struct batch *b)
{
    const struct owfp_stage_dir *sd = &st->d[d];
    *b = (struct batch){0};
    struct owfp_item *it = sd->q.head;
    if (it->kind == OWFP_ITEM_FIN) {
        b->fin = b->fin_follows = true;
        b->nitems = 1;
        return;
    }
    uint64_t limit = sd->batch_left ? sd->batch_left : UINT64_MAX;
    /* Everything queued up to the FIN, minus what the stage is not shown:
     * that keeps its place in the queue and moves on when the bytes before
     * it are routed, so nothing overtakes held data. */
    while (it && it->kind == OWFP_ITEM_DATA && b->len < limit) {
        if (shown(st, it)) {
            b->len += it->len;
            b->nitems++;
        }
        it = it->next;
    }
    b->fin_follows = it && it->kind == OWFP_ITEM_FIN;
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
                     const struct batch *b, uint32_t extra_flags, FWPS_STREAM_DATA0 *sd)
{
    if (!ensure_desc(s, b->nitems ? b->nitems : 1))
        return false;
    uint32_t base = d == OWFP_STREAM_RECEIVE ? FWPS_STREAM_FLAG_RECEIVE : FWPS_STREAM_FLAG_SEND;
    uint32_t flags = base | extra_flags;
    struct owfp_item *it = st->d[d].q.head;
    if (!b->nitems) /* an ABORT indication: an empty chain */
        desc_set(&s->desc[0], NULL, 0);
    for (uint32_t i = 0; i < b->nitems; it = it->next) {
        if (!b->fin && !shown(st, it))
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
    memset(sd, 0, sizeof(*sd));
    sd->flags = flags;
    sd->dataOffset.netBufferList = &s->desc[0].nbl;
    sd->dataOffset.netBuffer = &s->desc[0].nb;
    sd->dataOffset.mdl = &s->desc[0].mdl;
    sd->dataLength = b->len;
    sd->netBufferListChain = &s->desc[0].nbl;
    return true;
}

static void free_desc_contexts(struct owfp_stream *s, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        owfp_nbl_free_contexts(&s->desc[i].nbl);
}

/* The answer of one classify, as the engine will apply it. */
struct answer {
    uint32_t action;   /* FWPS_STREAM_ACTION_* */
    enum route route;  /* with FWPS_STREAM_ACTION_NONE */
    uint64_t enforced; /* with NONE: leading bytes the route covers */
    uint32_t required;
};

/* Calls the stage's callout (or applies its static action) for the batch. */
static bool classify(struct owfp_stream *s, uint32_t k, int d, const struct batch *b,
                     uint32_t out_flags, uint32_t extra_stream_flags, struct answer *a)
{
    struct owfp_stage *st = &s->stages[k];
    struct owfp_flow *f = s->flow;
    *a = (struct answer){FWPS_STREAM_ACTION_NONE, R_CONTINUE, b->len, 0};
    if (!st->callout_id) {
        a->route = interpret(st->action, 0);
        return true;
    }
    struct owfp_callout *c = owfp_callout_get(f->engine, st->callout_id);
    if (!c) { /* spec R5, T19 */
        if (st->action == FWP_ACTION_CALLOUT_INSPECTION)
            a->route = R_CONTINUE;
        else
            a->route = st->filter->rt.flags & FWPS_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED
                           ? R_PERMIT
                           : R_BLOCK;
        return true;
    }
    uint16_t layer = stream_layer(s);
    uint64_t flow_ctx = 0;
    bool has_ctx = owfp_flow_context(f, layer, c->id, &flow_ctx);
    if ((c->flags & FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW) && !has_ctx) {
        a->route = R_CONTINUE; /* spec F9: as if the filter did not match */
        return true;
    }
    FWPS_STREAM_DATA0 data;
    if (!describe(s, st, d, b, extra_stream_flags, &data))
        return false;
    FWPS_STREAM_CALLOUT_IO_PACKET0 io = {
        .streamData = &data,
        .missedBytes = st->d[d].missed, /* spec S6, S7 */
    };
    st->d[d].missed = 0;
    FWPS_INCOMING_VALUES0 in = {layer, FWPS_FIELD_STREAM_V4_MAX, s->values};
    /* Only the fields whose bits are set are meaningful; the rest stay zero
     * from the thread's first classify. */
    static _Thread_local FWPS_INCOMING_METADATA_VALUES0 meta;
    meta.currentMetadataValues = FWPS_METADATA_FIELD_FLOW_HANDLE |
                                 FWPS_METADATA_FIELD_COMPARTMENT_ID;
    meta.flags = st->mid_stream ? FWPS_INCOMING_FLAG_MID_STREAM_INSPECTION : 0;
    meta.flowHandle = f->id;
    meta.compartmentId = f->compartment_id;
    FWPS_CLASSIFY_OUT0 out = {
        .filterId = st->filter_id,
        .rights = FWPS_RIGHT_ACTION_WRITE,
        .flags = out_flags,
    };
    struct owfp_stream_call call = {.stream = s, .stage = k, .dir = (uint8_t)d,
                                    .in_classify = true};
    struct owfp_stream_call *outer = owfp_stream_current;
    owfp_stream_current = &call;
    owfp_flow_classify_begin(f);
    atomic_fetch_add_explicit(&f->engine->classifies, 1, memory_order_relaxed);
    owfp_callout_call_classify(c, &in, &meta, &io, &io, &st->filter->rt, flow_ctx, &out);
    owfp_flow_classify_end(f);
    owfp_stream_current = outer;
    st->mid_stream = false;
    free_desc_contexts(s, b->nitems ? b->nitems : 1);

    /* Spec S28: injected data stands where the callout is, before whatever
     * the answer lets through. */
    for (int id = 0; id < 2; id++) {
        if (!call.injected[id].head)
            continue;
        for (struct owfp_item *it = call.injected[id].head; it; it = it->next)
            it->skip_rank = st->rank;
        owfp_queue_append(next_queue(s, k, id), &call.injected[id]);
    }

    a->action = io.streamAction;
    a->required = io.countBytesRequired;
    if (a->action >= FWPS_STREAM_ACTION_TYPE_MAX)
        a->action = FWPS_STREAM_ACTION_DROP_CONNECTION; /* spec S21 */
    if (a->action == FWPS_STREAM_ACTION_DROP_CONNECTION &&
        st->action == FWP_ACTION_CALLOUT_INSPECTION)
        a->action = FWPS_STREAM_ACTION_NONE; /* spec S18: ignored for inspection */
    if (a->action == FWPS_STREAM_ACTION_NONE) {
        a->route = interpret(st->action, out.actionType);
        /* Spec S15: 0 covers everything; more than there is is clamped. */
        a->enforced = io.countBytesEnforced && io.countBytesEnforced < b->len
                          ? io.countBytesEnforced
                          : b->len;
    }
    if (a->action == FWPS_STREAM_ACTION_ALLOW_CONNECTION)
        st->allowed_offload = c->flags & FWP_CALLOUT_FLAG_ALLOW_OFFLOAD;
    return true;
}

/* Passes an item the stage is not shown. Original bytes a higher filter of
 * the stage's sublayer decided count as missed (spec S7, Q12); injected
 * bytes never were part of what the callout could see. */
static void pass_over(struct owfp_stream *s, uint32_t k, int d, struct owfp_item *it)
{
    if (it->origin == OWFP_SPAN_ORIGINAL && it->skip_rank == s->stages[k].rank)
        s->stages[k].d[d].missed += it->len;
    owfp_queue_push(next_queue(s, k, d), it);
}

/* Moves the first `n` bytes of the stage's queue on; splits an item that
 * straddles the boundary. */
static bool route_bytes(struct owfp_stream *s, uint32_t k, int d, uint64_t n, enum route r)
{
    struct owfp_queue *q = &s->stages[k].d[d].q;
    while (n > 0) {
        struct owfp_item *it = q->head;
        if (!shown(&s->stages[k], it)) { /* skipped by the indication: keeps its place */
            pass_over(s, k, d, owfp_queue_pop(q));
            continue;
        }
        if (it->len > n) {
            if (!owfp_item_split(it, (size_t)n))
                return false;
            if (q->tail == it)
                q->tail = it->next;
        }
        it = owfp_queue_pop(q);
        n -= it->len;
        route_item(s, k, d, it, r);
    }
    return true;
}

static void set_deferred(struct owfp_stream *s, struct owfp_stage_dir *sd, bool on)
{
    owfp_flow_lock(s->flow);
    sd->deferred = on;
    owfp_flow_unlock(s->flow);
}

/* Data the engine already took cannot be kept or passed on: the flow is
 * dropped, and the data plane's call answers STATUS_INSUFFICIENT_RESOURCES
 * (found by tests/test_stream_alloc_failure.c). */
static void drop_nomem(struct owfp_stream *s)
{
    s->nomem = true;
    owfp_stream_drop(s);
}

/* One step of stage k in direction d; false when it cannot move. */
static bool step_stage(struct owfp_stream *s, uint32_t k, int d)
{
    struct owfp_stage *st = &s->stages[k];
    struct owfp_stage_dir *sd = &st->d[d];
    if (!sd->q.head || sd->deferred || s->dropped)
        return false;
    if (st->gone) {
        owfp_queue_append(next_queue(s, k, d), &sd->q);
        return true;
    }
    /* Empty data (a zero-byte injected NBL) only carries its completion. */
    if (sd->q.head->kind == OWFP_ITEM_DATA &&
        (!sd->q.head->len || (!sd->waiting && sd->q.head->skip_rank == st->rank))) {
        pass_over(s, k, d, owfp_queue_pop(&sd->q));
        return true;
    }
    struct batch b;
    take_batch(st, d, &b);
    bool limit = b.len >= OWFP_STREAM_LIMIT;
    /* Spec S17: re-indicate held data only once new bytes make it reach the
     * callout's threshold, at the limit, or at the end of the stream. */
    if (sd->waiting && !b.fin && !b.fin_follows && !limit &&
        !(b.len > sd->waiting_len && b.len >= sd->required))
        return false;
    uint32_t out_flags = (b.fin_follows ? FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA : 0) |
                         (limit ? FWPS_CLASSIFY_OUT_FLAG_BUFFER_LIMIT_REACHED : 0);
    struct answer a;
    if (!classify(s, k, d, &b, out_flags, 0, &a)) {
        drop_nomem(s);
        return false;
    }
    switch (a.action) {
    case FWPS_STREAM_ACTION_NONE:
        sd->waiting = false;
        if (b.fin) {
            struct owfp_item *fin = owfp_queue_pop(&sd->q);
            route_item(s, k, d, fin, a.route); /* BLOCK pends the FIN (spec S29) */
            return true;
        }
        sd->batch_left = a.enforced < b.len ? b.len - a.enforced : 0; /* spec S16 */
        if (!route_bytes(s, k, d, a.enforced, a.route))
            drop_nomem(s);
        return true;
    case FWPS_STREAM_ACTION_NEED_MORE_DATA:
        if (out_flags || b.fin) {
            owfp_stream_drop(s); /* Q16: no more data can come */
            return false;
        }
        sd->waiting = true;
        sd->required = a.required;
        sd->waiting_len = b.len;
        sd->batch_left = 0;
        return false;
    case FWPS_STREAM_ACTION_DEFER:
        /* Spec S19: the indication stays and is shown again, with whatever
         * arrives meanwhile, after FwpsStreamContinue0. */
        sd->waiting = false;
        sd->batch_left = 0;
        set_deferred(s, sd, true);
        return false;
    case FWPS_STREAM_ACTION_ALLOW_CONNECTION:
        /* Spec S20: this indication passes whole; the callout is done with
         * the flow in both directions. */
        sd->waiting = false;
        sd->batch_left = 0;
        if (b.fin)
            route_item(s, k, d, owfp_queue_pop(&sd->q), R_PERMIT);
        else if (!route_bytes(s, k, d, b.len, R_PERMIT))
            drop_nomem(s);
        /* It is done at every filter that names it (a callout may have
         * several on the path: found by fuzz/fuzz_stream.c). What those
         * stages hold or deferred passes on too: nothing can continue a
         * callout that left the flow. */
        for (uint32_t j = 0; j < s->nstages; j++) {
            struct owfp_stage *o = &s->stages[j];
            if (o->callout_id != st->callout_id)
                continue;
            owfp_flow_lock(s->flow); /* injecting threads read it (stage_of) */
            o->gone = true;
            owfp_flow_unlock(s->flow);
            o->allowed_offload = st->allowed_offload;
            o->d[0].waiting = o->d[1].waiting = false;
            set_deferred(s, &o->d[0], false);
            set_deferred(s, &o->d[1], false);
        }
        return true;
    default:
        owfp_stream_drop(s);
        return false;
    }
}

/* While a stage classifies and applies the answer, FwpsStreamContinue0 for
 * it is accepted even before DEFER is recorded: a callout may hand the
 * continue to its worker from inside the deferring classify. */
static bool step(struct owfp_stream *s, uint32_t k, int d)
{
    const struct owfp_stage_dir *sd = &s->stages[k].d[d];
    if (!sd->q.head || sd->deferred)
        return false;
    atomic_store_explicit(&s->busy_stage, k + 1, memory_order_release);
    bool moved = step_stage(s, k, d);
    atomic_store_explicit(&s->busy_stage, 0, memory_order_release);
    return moved;
}

/* Passes over both directions until nothing moves: a stage may become able
 * to move again after later work (the other direction's stage let go, a
 * FIN or NEED_MORE_DATA threshold reached through another route). An idle
 * pass only looks at each queue's head. */
void owfp_stream_run(struct owfp_stream *s)
{
    bool moved;
    do {
        moved = false;
        for (int d = 0; d < 2 && !s->dropped; d++)
            for (uint32_t k = 0; k < s->nstages; k++)
                while (step(s, k, d))
                    moved = true;
    } while (moved && !s->dropped);
}

void owfp_stream_drop(struct owfp_stream *s)
{
    s->dropped = true;
    s->flow_state |= OWFP_FLOW_DROPPED;
    for (uint32_t k = 0; k < s->nstages; k++)
        for (int d = 0; d < 2; d++) {
            owfp_queue_clear(&s->stages[k].d[d].q, STATUS_CANCELLED);
            set_deferred(s, &s->stages[k].d[d], false); /* nothing left to defer */
        }
    for (int d = 0; d < 2; d++)
        owfp_queue_clear(&s->out[d].q, STATUS_CANCELLED);
}

/* Spec S10: a RST travelling in direction d is shown to every stage still
 * inspecting the flow as a zero-length ABORT indication; answers and
 * injections are void, held data is discarded. */
void owfp_stream_abort_path(struct owfp_stream *s, int d)
{
    uint32_t abort_flag =
        d == OWFP_STREAM_RECEIVE ? FWPS_STREAM_FLAG_RECEIVE_ABORT : FWPS_STREAM_FLAG_SEND_ABORT;
    struct batch b = {0};
    for (uint32_t k = 0; k < s->nstages && !s->dropped; k++) {
        struct owfp_stage *st = &s->stages[k];
        if (st->gone || !st->callout_id)
            continue;
        struct answer a;
        if (!classify(s, k, d, &b, FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA, abort_flag, &a)) {
            s->nomem = true; /* the later callouts miss the ABORT indication */
            break;
        }
    }
    owfp_stream_drop(s);
}
