/* The data-plane entry points of the stream layer (include/openwfp/openwfp.h). */
#include <string.h>

#include "common/alloc.h"
#include "common/rcu.h"
#include "engine/filter_index.h"
#include "engine/flow.h"
#include "engine/view.h"
#include "stream.h"

/* Whether a new stream should have room for one stage: when its layer holds
 * exactly one filter, the path will have at most that stage; with none or
 * several, the room would be wasted or too small. */
static bool wants_slot(const struct owfp_flow *f)
{
    uint16_t layer = f->ip_version == 4 ? FWPS_LAYER_STREAM_V4 : FWPS_LAYER_STREAM_V6;
    owfp_rcu_read_lock();
    bool one = owfp_view_filter_count(owfp_view_current(f->engine, layer)) == 1;
    owfp_rcu_read_unlock();
    return one;
}

struct owfp_stream *owfp_stream_of(struct owfp_flow *f)
{
    static _Atomic uint64_t serials;
    if (f->stream)
        return f->stream;
    bool slot = wants_slot(f);
    struct owfp_stream *s = owfp_calloc(1, sizeof(*s) + (slot ? sizeof(s->slot[0]) : 0));
    if (!s)
        return NULL;
    s->has_slot = slot;
    s->flow = f;
    s->serial = atomic_fetch_add_explicit(&serials, 1, memory_order_relaxed) + 1;
    /* Other threads look at f->stream (injection, continue) under the lock. */
    owfp_flow_lock(f);
    f->stream = s;
    owfp_flow_unlock(f);
    return s;
}

void owfp_stream_destroy(struct owfp_stream *s)
{
    struct owfp_flow *f = s->flow;
    owfp_rcu_read_lock();
    owfp_stream_discard_inbox(s);
    owfp_queue_clear(&s->delivered, STATUS_SUCCESS);
    for (uint32_t k = 0; k < s->nstages; k++)
        for (int d = 0; d < 2; d++)
            owfp_queue_clear(&s->stages[k].d[d].q, STATUS_CANCELLED);
    for (int d = 0; d < 2; d++) {
        owfp_queue_clear(&s->out[d].q, STATUS_CANCELLED);
        owfp_free(s->out[d].spans);
    }
    owfp_rcu_read_unlock();
    owfp_flow_lock(f);
    f->stream = NULL;
    owfp_flow_unlock(f);
    if (s->stages != s->slot)
        owfp_free(s->stages);
    owfp_free(s);
}

/* What a direction may have inside the engine before new data is refused:
 * a stage holds at most 8 MiB for NEED_MORE_DATA, and a deferred direction
 * should not be read at all, so this is only reached by a data plane that
 * ignores OWFP_DIR_DEFERRED. */
#define OWFP_STREAM_BACKLOG (16u * 1024 * 1024)

static uint64_t held_bytes(const struct owfp_stream *s, int d)
{
    uint64_t n = 0;
    for (uint32_t k = 0; k < s->nstages; k++)
        n += s->stages[k].d[d].q.bytes;
    return n;
}

/* Whether the flow may leave the inspection path (spec O1, O4): no stage
 * left that still wants data, none holding any, and every callout that let
 * go allows offload. */
bool owfp_stream_offloadable(const struct owfp_stream *s)
{
    for (uint32_t k = 0; k < s->nstages; k++) {
        const struct owfp_stage *st = &s->stages[k];
        if (!st->gone || !st->allowed_offload || st->d[0].q.head || st->d[1].q.head)
            return false;
    }
    return true;
}

static bool fill_spans(struct owfp_out *o)
{
    size_t n = 0;
    for (struct owfp_item *it = o->q.head; it; it = it->next)
        n += it->kind == OWFP_ITEM_DATA && it->len;
    if (n > o->capspans) {
        if (n > UINT32_MAX)
            return false;
        struct owfp_span *sp = owfp_realloc(o->spans, n * sizeof(*sp));
        if (!sp)
            return false;
        o->spans = sp;
        o->capspans = (uint32_t)n;
    }
    o->nspans = 0;
    for (struct owfp_item *it = o->q.head; it; it = it->next) {
        if (it->kind == OWFP_ITEM_FIN)
            o->fin = true;
        else if (it->len)
            o->spans[o->nspans++] = (struct owfp_span){it->data, it->len, it->origin};
    }
    return true;
}

static NTSTATUS begin(owfp_flow *flow, struct owfp_stream **out)
{
    struct owfp_flow *f = (struct owfp_flow *)flow;
    if (!f || f->engine != owfp_engine_get())
        return STATUS_INVALID_PARAMETER;
    struct owfp_stream *s = owfp_stream_of(f);
    if (!s)
        return STATUS_INSUFFICIENT_RESOURCES;
    s->idle = false; /* until the path has run again (finish) */
    owfp_rcu_read_lock();
    /* The previous call's spans have been delivered. */
    owfp_queue_clear(&s->delivered, STATUS_SUCCESS);
    for (int d = 0; d < 2; d++)
        s->out[d].nspans = 0;
    /* Out-of-band work joins the path it was queued for, so a stage that a
     * rebuild removes hands it on with the rest of its data (Q21). */
    if (s->path_built)
        owfp_stream_drain_inbox(s);
    NTSTATUS st = owfp_stream_path_sync(s);
    if (!NT_SUCCESS(st)) {
        owfp_rcu_read_unlock();
        return st;
    }
    owfp_stream_drain_inbox(s);
    if (atomic_load(&f->aborted) && !s->dropped)
        owfp_stream_drop(s); /* spec F10 */
    *out = s;
    return STATUS_SUCCESS;
}

/* Whether a stage direction takes new data as it comes (fast.c). */
static bool stage_idle(const struct owfp_stage *st, const struct owfp_stage_dir *sd)
{
    return !sd->q.head && (st->gone || (!sd->deferred && !sd->waiting && !sd->batch_left));
}

/* The items that reached the end of the path: those whose bytes a span
 * points into, or whose completion must wait for the spans' delivery, stay
 * until the next call; the caller's own bytes and FINs need nothing kept,
 * so an idle flow holds no item. */
static void keep_delivered(struct owfp_stream *s, struct owfp_queue *q)
{
    struct owfp_item *it;
    while ((it = owfp_queue_pop(q))) {
        if (it->ref)
            owfp_queue_push(&s->delivered, it);
        else
            owfp_item_free(it, STATUS_SUCCESS);
    }
}

NTSTATUS owfp_stream_report(struct owfp_stream *s, struct owfp_stream_result *r)
{
    NTSTATUS status = STATUS_SUCCESS;
    if (s->nomem) {
        s->nomem = false;
        status = STATUS_INSUFFICIENT_RESOURCES;
    }
    bool idle = s->path_built;
    for (int d = 0; d < 2; d++) {
        struct owfp_stream_output *ro = &r->dir[d];
        ro->state = 0;
        ro->held_bytes = 0;
        for (uint32_t k = 0; k < s->nstages; k++) {
            struct owfp_stage_dir *sd = &s->stages[k].d[d];
            idle = idle && stage_idle(&s->stages[k], sd);
            if (sd->deferred)
                ro->state |= OWFP_DIR_DEFERRED;
            if (!sd->q.head)
                continue;
            /* Whatever stays inside must outlive the caller's buffer. */
            if (!s->dropped && !owfp_queue_own(&sd->q)) {
                owfp_stream_drop(s);
                status = STATUS_INSUFFICIENT_RESOURCES;
                continue;
            }
            ro->state |= OWFP_DIR_HELD;
            ro->held_bytes += sd->q.bytes;
        }
    }
    /* Both directions' spans first: a drop for either discards both
     * (found by fuzz/fuzz_stream.c). */
    for (int d = 0; d < 2; d++) {
        if (!fill_spans(&s->out[d])) {
            owfp_stream_drop(s);
            status = STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    for (int d = 0; d < 2; d++) {
        struct owfp_out *o = &s->out[d];
        struct owfp_stream_output *ro = &r->dir[d];
        if (s->dropped) { /* a drop above emptied the stages and the output */
            ro->state &= ~(uint32_t)(OWFP_DIR_HELD | OWFP_DIR_DEFERRED);
            ro->held_bytes = 0;
            o->nspans = 0;
        }
        ro->spans = o->spans;
        ro->nspans = o->nspans;
        ro->bytes = o->q.bytes;
        ro->state |= (o->fin ? OWFP_DIR_FIN : 0) | (o->closed ? OWFP_DIR_CLOSED : 0);
        keep_delivered(s, &o->q);
    }
    if (!s->dropped && !(s->flow_state & OWFP_FLOW_OFFLOADABLE) && owfp_stream_offloadable(s))
        s->flow_state |= OWFP_FLOW_OFFLOADABLE;
    r->flow_state = s->flow_state;
    s->idle = idle && !s->dropped;
    owfp_rcu_read_unlock();
    return status;
}

static NTSTATUS finish(struct owfp_stream *s, struct owfp_stream_result *r)
{
    owfp_stream_run(s);
    return owfp_stream_report(s, r);
}

static struct owfp_queue *entry_queue(struct owfp_stream *s, int d)
{
    return s->nstages ? &s->stages[0].d[d].q : &s->out[d].q;
}

NTSTATUS owfp_stream_indicate_general(owfp_flow *flow, int dir, const void *data, size_t len,
                                      uint32_t flags, struct owfp_stream_result *result)
{
    if (!owfp_stream_indication_valid(dir, data, len, flags, result))
        return STATUS_INVALID_PARAMETER;
    struct owfp_stream *s;
    NTSTATUS st = begin(flow, &s);
    if (!NT_SUCCESS(st))
        return st;
    if (s->out[dir].closed) {
        st = STATUS_INVALID_DEVICE_STATE; /* data after FIN or RST */
    } else if (held_bytes(s, dir) >= OWFP_STREAM_BACKLOG) {
        st = STATUS_DEVICE_BUSY; /* the data plane ignored DEFERRED or HELD */
    } else if (!s->dropped) {
        struct owfp_item *it = owfp_item_new();
        if (!it) {
            st = STATUS_INSUFFICIENT_RESOURCES;
        } else {
            it->data = data;
            it->len = len;
            it->modifiers = flags;
            owfp_queue_push(entry_queue(s, dir), it);
        }
    }
    NTSTATUS fst = finish(s, result);
    return NT_SUCCESS(st) ? fst : st;
}

owfp_status owfp_stream_fin(owfp_flow *flow, enum owfp_stream_direction dir,
                            struct owfp_stream_result *result)
{
    if ((dir != OWFP_STREAM_SEND && dir != OWFP_STREAM_RECEIVE) || !result)
        return STATUS_INVALID_PARAMETER;
    struct owfp_stream *s;
    NTSTATUS st = begin(flow, &s);
    if (!NT_SUCCESS(st))
        return st;
    if (s->out[dir].closed) {
        st = STATUS_INVALID_DEVICE_STATE;
    } else {
        struct owfp_item *it = s->dropped ? NULL : owfp_item_new();
        if (it) {
            it->kind = OWFP_ITEM_FIN;
            owfp_queue_push(entry_queue(s, dir), it);
        } else if (!s->dropped) {
            /* Not taken: the direction stays open so the FIN can be sent
             * again (found by fuzz/fuzz_stream.c). */
            st = STATUS_INSUFFICIENT_RESOURCES;
        }
        if (it || s->dropped)
            s->out[dir].closed = true;
    }
    NTSTATUS fst = finish(s, result);
    return NT_SUCCESS(st) ? fst : st;
}

owfp_status owfp_stream_abort(owfp_flow *flow, enum owfp_stream_direction dir,
                              struct owfp_stream_result *result)
{
    if ((dir != OWFP_STREAM_SEND && dir != OWFP_STREAM_RECEIVE) || !result)
        return STATUS_INVALID_PARAMETER;
    struct owfp_stream *s;
    NTSTATUS st = begin(flow, &s);
    if (!NT_SUCCESS(st))
        return st;
    s->out[0].closed = s->out[1].closed = true;
    if (!s->dropped)
        owfp_stream_abort_path(s, dir);
    return finish(s, result);
}

owfp_status owfp_stream_gap(owfp_flow *flow, enum owfp_stream_direction dir, uint64_t len,
                            struct owfp_stream_result *result)
{
    if ((dir != OWFP_STREAM_SEND && dir != OWFP_STREAM_RECEIVE) || !len || !result)
        return STATUS_INVALID_PARAMETER;
    struct owfp_stream *s;
    NTSTATUS st = begin(flow, &s);
    if (!NT_SUCCESS(st))
        return st;
    if (s->out[dir].closed)
        st = STATUS_INVALID_DEVICE_STATE;
    else
        for (uint32_t k = 0; k < s->nstages; k++)
            s->stages[k].d[dir].missed += len;
    NTSTATUS fst = finish(s, result);
    return NT_SUCCESS(st) ? fst : st;
}

owfp_status owfp_stream_poll(owfp_flow *flow, struct owfp_stream_result *result)
{
    if (!result)
        return STATUS_INVALID_PARAMETER;
    struct owfp_stream *s;
    NTSTATUS st = begin(flow, &s);
    return NT_SUCCESS(st) ? finish(s, result) : st;
}

owfp_status owfp_flow_set_wakeup(owfp_flow *flow, owfp_wakeup_fn fn, void *arg)
{
    struct owfp_flow *f = (struct owfp_flow *)flow;
    if (!f)
        return STATUS_INVALID_PARAMETER;
    struct owfp_stream *s = owfp_stream_of(f);
    if (!s)
        return STATUS_INSUFFICIENT_RESOURCES;
    owfp_flow_lock(f);
    s->wake = fn;
    s->wake_arg = arg;
    owfp_flow_unlock(f);
    return STATUS_SUCCESS;
}

static void prefetch_lines(const void *p, size_t n)
{
    for (size_t off = 0; off < n; off += 64)
        __builtin_prefetch((const char *)p + off);
}

void owfp_flow_prefetch(owfp_flow *flow, unsigned depth)
{
    const struct owfp_flow *f = (const struct owfp_flow *)flow;
    if (!f)
        return;
    if (depth == 0) {
        prefetch_lines(f, sizeof(*f));
        return;
    }
    const struct owfp_stream *s = f->stream;
    if (!s)
        return;
    if (depth == 1)
        prefetch_lines(s, sizeof(*s));
    else if (s->nstages)
        prefetch_lines(s->stages, sizeof(*s->stages));
}
