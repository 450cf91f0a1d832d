/*
 * The stream waterfall (spec §10.3-10.5, §10.7): each stage classifies the
 * data queued in front of it and routes what it decided on — permitted
 * bytes past the rest of its sublayer, continued bytes to the next stage,
 * blocked bytes nowhere — while everything moves through the stages in
 * stream order, so nothing ever overtakes held data.
 */
#include "engine/flow.h"
#include "stream.h"

static struct owfp_queue *next_queue(struct owfp_stream *s, uint32_t k, int d)
{
    return k + 1 < s->nstages ? &s->stages[k + 1].d[d].q : &s->out[d].q;
}

static void route_item(struct owfp_stream *s, uint32_t k, int d, struct owfp_item *it,
                       enum owfp_route r)
{
    if (r == OWFP_ROUTE_BLOCK) {
        for (uint32_t j = k + 1; j < s->nstages; j++)
            s->stages[j].d[d].missed += it->len;
        owfp_item_free(it, STATUS_SUCCESS);
        return;
    }
    it->skip_rank = r == OWFP_ROUTE_PERMIT ? s->stages[k].rank : OWFP_NO_SKIP;
    owfp_queue_push(next_queue(s, k, d), it);
}

static void take_batch(const struct owfp_stage *st, int d, struct owfp_batch *b)
{
    const struct owfp_stage_dir *sd = &st->d[d];
    *b = (struct owfp_batch){0};
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
        if (owfp_item_shown(st, it)) {
            b->len += it->len;
            b->nitems++;
        }
        it = it->next;
    }
    b->fin_follows = it && it->kind == OWFP_ITEM_FIN;
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
static bool route_bytes(struct owfp_stream *s, uint32_t k, int d, uint64_t n, enum owfp_route r)
{
    struct owfp_queue *q = &s->stages[k].d[d].q;
    while (n > 0) {
        struct owfp_item *it = q->head;
        if (!owfp_item_shown(&s->stages[k], it)) { /* skipped by the indication: keeps its place */
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

/* Spec S20: the indication passes whole; the callout is done with the flow
 * in both directions. */
static bool allow_connection(struct owfp_stream *s, uint32_t k, int d, const struct owfp_batch *b)
{
    struct owfp_stage *st = &s->stages[k];
    struct owfp_stage_dir *sd = &st->d[d];
    sd->waiting = false;
    sd->batch_left = 0;
    if (b->fin)
        route_item(s, k, d, owfp_queue_pop(&sd->q), OWFP_ROUTE_PERMIT);
    else if (!route_bytes(s, k, d, b->len, OWFP_ROUTE_PERMIT))
        drop_nomem(s);
    /* It is done at every filter that names it (a callout may have several
     * on the path: found by fuzz/fuzz_stream.c). What those stages hold or
     * deferred passes on too: nothing can continue a callout that left the
     * flow. */
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
}

bool owfp_stream_apply(struct owfp_stream *s, uint32_t k, int d, const struct owfp_batch *b,
                       const struct owfp_answer *a)
{
    struct owfp_stage_dir *sd = &s->stages[k].d[d];
    if (!a) {
        drop_nomem(s);
        return false;
    }
    switch (a->action) {
    case FWPS_STREAM_ACTION_NONE:
        sd->waiting = false;
        if (b->fin) {
            struct owfp_item *fin = owfp_queue_pop(&sd->q);
            route_item(s, k, d, fin, a->route); /* BLOCK pends the FIN (spec S29) */
            return true;
        }
        sd->batch_left = a->enforced < b->len ? b->len - a->enforced : 0; /* spec S16 */
        if (!route_bytes(s, k, d, a->enforced, a->route))
            drop_nomem(s);
        return true;
    case FWPS_STREAM_ACTION_NEED_MORE_DATA:
        if (b->out_flags || b->fin) {
            owfp_stream_drop(s); /* Q16: no more data can come */
            return false;
        }
        sd->waiting = true;
        sd->required = a->required;
        sd->waiting_len = b->len;
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
        return allow_connection(s, k, d, b);
    default:
        owfp_stream_drop(s);
        return false;
    }
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
    struct owfp_batch b;
    take_batch(st, d, &b);
    bool limit = b.len >= OWFP_STREAM_LIMIT;
    /* Spec S17: re-indicate held data only once new bytes make it reach the
     * callout's threshold, at the limit, or at the end of the stream. */
    if (sd->waiting && !b.fin && !b.fin_follows && !limit &&
        !(b.len > sd->waiting_len && b.len >= sd->required))
        return false;
    b.out_flags = (b.fin_follows ? FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA : 0) |
                  (limit ? FWPS_CLASSIFY_OUT_FLAG_BUFFER_LIMIT_REACHED : 0);
    struct owfp_answer a;
    bool classified = owfp_stream_classify(s, k, d, &b, sd->q.head, &a);
    return owfp_stream_apply(s, k, d, &b, classified ? &a : NULL);
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
void owfp_stream_run_from(struct owfp_stream *s, int d, uint32_t k, bool moved)
{
    for (;;) {
        for (; d < 2 && !s->dropped; d++, k = 0)
            for (; k < s->nstages; k++)
                while (step(s, k, d))
                    moved = true;
        if (!moved || s->dropped)
            return;
        moved = false;
        d = 0;
        k = 0;
    }
}

void owfp_stream_run(struct owfp_stream *s)
{
    owfp_stream_run_from(s, 0, 0, false);
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
    struct owfp_batch b = {
        .out_flags = FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA,
        .stream_flags = d == OWFP_STREAM_RECEIVE ? FWPS_STREAM_FLAG_RECEIVE_ABORT
                                                 : FWPS_STREAM_FLAG_SEND_ABORT,
    };
    for (uint32_t k = 0; k < s->nstages && !s->dropped; k++) {
        struct owfp_stage *st = &s->stages[k];
        if (st->gone || !st->callout_id)
            continue;
        struct owfp_answer a;
        if (!owfp_stream_classify(s, k, d, &b, NULL, &a)) {
            s->nomem = true; /* the later callouts miss the ABORT indication */
            break;
        }
    }
    owfp_stream_drop(s);
}
