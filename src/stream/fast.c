/*
 * The fast path of owfp_stream_indicate. Most indications find their flow
 * idle (every stage empty and ready, nothing queued by other threads, the
 * path current), and most answers let a whole indication through. Such an
 * indication goes down the path as one piece, shown to each stage in turn
 * without being queued, and comes back as one span over the caller's bytes.
 * The first answer that needs more (a hold, a defer, part of the bytes, an
 * inline injection, no memory) puts the piece where the general path would
 * have it at that moment, and the general path carries on from there: the
 * outcome is the same either way.
 */
#include "engine/flow.h"
#include "stream.h"

enum walk {
    WALK_THROUGH, /* every stage let it on */
    WALK_BLOCKED, /* a stage blocked it */
    WALK_HANDED,  /* the general path took it over */
};

/* Checked once the previous call's spans are released: their completions
 * may queue work or change the path. */
static bool eligible(const struct owfp_stream *s, int d, size_t len)
{
    const struct owfp_flow *f = s->flow;
    return !s->out[d].closed && len < OWFP_STREAM_LIMIT &&
           !atomic_load_explicit(&s->inbox, memory_order_acquire) &&
           !atomic_load_explicit(&f->aborted, memory_order_acquire) &&
           atomic_load_explicit(&f->engine->stream_generation, memory_order_acquire) ==
               s->generation;
}

/* Stage k answered something only the general path applies. Until now the
 * general path would have moved the piece from stage to stage with no
 * other queue in use, and would now find it alone at the head of stage k's
 * queue. */
static void hand_over(struct owfp_stream *s, uint32_t k, int d, struct owfp_item *it,
                      const struct owfp_batch *b, const struct owfp_answer *a)
{
    s->idle = false;
    owfp_queue_push(&s->stages[k].d[d].q, it);
    bool moved = owfp_stream_apply(s, k, d, b, a);
    atomic_store_explicit(&s->busy_stage, 0, memory_order_release);
    /* Every stage before k moved the piece on. */
    owfp_stream_run_from(s, d, moved ? k : k + 1, moved || k > 0);
}

/* The general path's first pass over direction d, for one piece with every
 * other queue empty (step_stage, route_item and pass_over in pipeline.c). */
static enum walk walk(struct owfp_stream *s, int d, struct owfp_item *it)
{
    for (uint32_t k = 0; k < s->nstages; k++) {
        struct owfp_stage *st = &s->stages[k];
        if (st->gone)
            continue;
        if (it->skip_rank == st->rank) { /* decided higher in its sublayer (S7, Q12) */
            st->d[d].missed += it->len;
            continue;
        }
        struct owfp_batch b = {.nitems = 1, .len = it->len};
        struct owfp_answer a;
        atomic_store_explicit(&s->busy_stage, k + 1, memory_order_release);
        bool ok = owfp_stream_classify(s, k, d, &b, it, &a);
        if (!ok || a.injected || a.action != FWPS_STREAM_ACTION_NONE || a.enforced != b.len) {
            hand_over(s, k, d, it, &b, ok ? &a : NULL);
            return WALK_HANDED;
        }
        atomic_store_explicit(&s->busy_stage, 0, memory_order_release);
        if (a.route == OWFP_ROUTE_BLOCK) {
            for (uint32_t j = k + 1; j < s->nstages; j++)
                s->stages[j].d[d].missed += it->len;
            return WALK_BLOCKED;
        }
        it->skip_rank = a.route == OWFP_ROUTE_PERMIT ? st->rank : OWFP_NO_SKIP;
    }
    return WALK_THROUGH;
}

/* What owfp_stream_report says of an idle flow that let `len` bytes (0:
 * none) of direction d through. */
static void report_idle(struct owfp_stream *s, int d, const uint8_t *data, size_t len,
                        struct owfp_stream_result *r)
{
    for (int e = 0; e < 2; e++) {
        const struct owfp_out *o = &s->out[e];
        struct owfp_stream_output *ro = &r->dir[e];
        ro->spans = o->spans;
        ro->nspans = 0;
        ro->bytes = 0;
        ro->state = (o->fin ? OWFP_DIR_FIN : 0u) | (o->closed ? OWFP_DIR_CLOSED : 0u);
        ro->held_bytes = 0;
    }
    if (len) {
        s->fast_span = (struct owfp_span){data, len, OWFP_SPAN_ORIGINAL};
        r->dir[d].spans = &s->fast_span;
        r->dir[d].nspans = 1;
        r->dir[d].bytes = len;
    }
    r->flow_state = s->flow_state;
}

/* Callouts run, and the previous call's items complete (their completion
 * functions are callout code), inside a read section: it is also what
 * refuses PASSIVE-only calls from them. The piece is an item from the
 * thread's cache: it stays only if an answer hands it to the general path. */
static bool walk_path(struct owfp_stream *s, int d, const uint8_t *data, size_t len,
                      uint32_t flags, struct owfp_stream_result *r, NTSTATUS *status)
{
    owfp_rcu_read_lock();
    if (s->delivered.head)
        owfp_queue_clear(&s->delivered, STATUS_SUCCESS); /* the previous call's spans */
    struct owfp_item *it = NULL;
    if (!eligible(s, d, len) || (s->nstages && !(it = owfp_item_take()))) {
        owfp_rcu_read_unlock();
        return false;
    }
    enum walk w = WALK_THROUGH;
    if (s->nstages) {
        *it = (struct owfp_item){
            .data = data, .len = len, .skip_rank = OWFP_NO_SKIP, .modifiers = flags};
        w = walk(s, d, it);
    }
    if (w == WALK_HANDED) {
        *status = owfp_stream_report(s, r);
        return true;
    }
    if (it)
        owfp_item_give(it);
    report_idle(s, d, data, w == WALK_THROUGH ? len : 0, r);
    owfp_rcu_read_unlock();
    *status = STATUS_SUCCESS;
    return true;
}

/* Whether a flow without a path yet (its first stream call) could build it
 * here and go on idle: a new path leaves every stage empty and ready, the
 * state the general path would find after building it. */
static bool start_path(struct owfp_stream *s)
{
    if (s->path_built || s->dropped || atomic_load_explicit(&s->inbox, memory_order_acquire) ||
        atomic_load_explicit(&s->flow->aborted, memory_order_acquire))
        return false;
    owfp_rcu_read_lock();
    bool ok = NT_SUCCESS(owfp_stream_path_sync(s));
    owfp_rcu_read_unlock();
    if (!ok)
        return false;
    if (owfp_stream_offloadable(s))
        s->flow_state |= OWFP_FLOW_OFFLOADABLE;
    s->idle = true;
    return true;
}

owfp_status owfp_stream_indicate(owfp_flow *flow, enum owfp_stream_direction dir,
                                 const void *data, size_t len, uint32_t flags,
                                 struct owfp_stream_result *result)
{
    struct owfp_flow *f = (struct owfp_flow *)flow;
    struct owfp_stream *s = NULL;
    if (f && f->engine == owfp_engine_get() &&
        owfp_stream_indication_valid(dir, data, len, flags, result))
        s = f->stream;
    if (!s || (!s->idle && !start_path(s)))
        return owfp_stream_indicate_general(flow, dir, data, len, flags, result);
    NTSTATUS st = STATUS_SUCCESS;
    if (s->nstages || s->delivered.head) {
        if (walk_path(s, dir, data, len, flags, result, &st))
            return st;
    } else if (eligible(s, dir, len)) { /* no stream filter: the caller's bytes as they are */
        report_idle(s, dir, data, len, result);
        return st;
    }
    return owfp_stream_indicate_general(flow, dir, data, len, flags, result);
}
