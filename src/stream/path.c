/*
 * A flow's stream path: the stream-layer filters whose conditions match the
 * flow, in arbitration order (spec §10.7). Built at the first stream call and
 * rebuilt when a stream-layer view is republished: stages whose filter is
 * gone release what they hold as permitted (Q21), and new filters join an
 * established flow only when their callout allows mid-stream inspection (S32).
 */
#include <string.h>

#include "common/alloc.h"
#include "engine/callout_registry.h"
#include "engine/filter_index.h"
#include "engine/flow.h"
#include "engine/store.h"
#include "engine/view.h"
#include "stream.h"

static uint32_t v4_host_order(const uint8_t *a)
{
    return (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
}

static uint8_t unicast_or_multicast(const struct owfp_flow *f)
{
    /* NL_ADDRESS_TYPE of the local address: multicast 3, else unicast 1. */
    bool mc = f->ip_version == 4 ? (f->local_addr[0] >= 224 && f->local_addr[0] <= 239)
                                 : f->local_addr[0] == 0xff;
    return mc ? 3 : 1;
}

void owfp_stream_fixed_values(const struct owfp_flow *f, FWPS_INCOMING_VALUE0 *v,
                              FWP_BYTE_ARRAY16 *local6, FWP_BYTE_ARRAY16 *remote6)
{
    memset(v, 0, sizeof(*v) * FWPS_FIELD_STREAM_V4_MAX);
    /* V4 and V6 stream fields share their numbering (spec §2.10). */
    if (f->ip_version == 4) {
        v[FWPS_FIELD_STREAM_V4_IP_LOCAL_ADDRESS].value.type = FWP_UINT32;
        v[FWPS_FIELD_STREAM_V4_IP_LOCAL_ADDRESS].value.uint32 = v4_host_order(f->local_addr);
        v[FWPS_FIELD_STREAM_V4_IP_REMOTE_ADDRESS].value.type = FWP_UINT32;
        v[FWPS_FIELD_STREAM_V4_IP_REMOTE_ADDRESS].value.uint32 = v4_host_order(f->remote_addr);
    } else {
        memcpy(local6->byteArray16, f->local_addr, 16);
        memcpy(remote6->byteArray16, f->remote_addr, 16);
        v[FWPS_FIELD_STREAM_V6_IP_LOCAL_ADDRESS].value.type = FWP_BYTE_ARRAY16_TYPE;
        v[FWPS_FIELD_STREAM_V6_IP_LOCAL_ADDRESS].value.byteArray16 = local6;
        v[FWPS_FIELD_STREAM_V6_IP_REMOTE_ADDRESS].value.type = FWP_BYTE_ARRAY16_TYPE;
        v[FWPS_FIELD_STREAM_V6_IP_REMOTE_ADDRESS].value.byteArray16 = remote6;
    }
    v[FWPS_FIELD_STREAM_V4_IP_LOCAL_ADDRESS_TYPE].value.type = FWP_UINT8;
    v[FWPS_FIELD_STREAM_V4_IP_LOCAL_ADDRESS_TYPE].value.uint8 = unicast_or_multicast(f);
    v[FWPS_FIELD_STREAM_V4_IP_LOCAL_PORT].value.type = FWP_UINT16;
    v[FWPS_FIELD_STREAM_V4_IP_LOCAL_PORT].value.uint16 = f->local_port;
    v[FWPS_FIELD_STREAM_V4_IP_REMOTE_PORT].value.type = FWP_UINT16;
    v[FWPS_FIELD_STREAM_V4_IP_REMOTE_PORT].value.uint16 = f->remote_port;
    /* Spec S2: the connection's direction, not the segment's. */
    v[FWPS_FIELD_STREAM_V4_DIRECTION].value.type = FWP_UINT32;
    v[FWPS_FIELD_STREAM_V4_DIRECTION].value.uint32 =
        f->direction == OWFP_INBOUND ? FWP_DIRECTION_INBOUND : FWP_DIRECTION_OUTBOUND;
    v[FWPS_FIELD_STREAM_V4_FLAGS].value.type = FWP_UINT32;
    v[FWPS_FIELD_STREAM_V4_FLAGS].value.uint32 = f->condition_flags;
    v[FWPS_FIELD_STREAM_V4_COMPARTMENT_ID].value.type = FWP_UINT32;
    v[FWPS_FIELD_STREAM_V4_COMPARTMENT_ID].value.uint32 = f->compartment_id;
}

static bool is_callout_action(uint32_t type)
{
    return type & FWP_ACTION_FLAG_CALLOUT;
}

/* The filters matching a flow and their sublayer ranks; the first few in
 * place, so building the usual path allocates nothing but its stages. */
#define FEW_MATCHES 8

struct matches {
    struct owfp_filter **flt;
    uint32_t *rank;
    uint32_t n, cap;
    struct owfp_filter *few_flt[FEW_MATCHES];
    uint32_t few_rank[FEW_MATCHES];
};

static void matches_init(struct matches *m)
{
    m->flt = m->few_flt;
    m->rank = m->few_rank;
    m->n = 0;
    m->cap = FEW_MATCHES;
}

static void matches_free(struct matches *m)
{
    if (m->flt != m->few_flt) {
        owfp_free(m->flt);
        owfp_free(m->rank);
    }
    matches_init(m);
}

static bool matches_grow(struct matches *m)
{
    uint32_t cap = m->cap * 2;
    struct owfp_filter **flt = owfp_malloc(cap * sizeof(*flt));
    uint32_t *rank = flt ? owfp_malloc(cap * sizeof(*rank)) : NULL;
    if (!rank) {
        owfp_free(flt);
        return false;
    }
    memcpy(flt, m->flt, m->n * sizeof(*flt));
    memcpy(rank, m->rank, m->n * sizeof(*rank));
    uint32_t n = m->n;
    matches_free(m);
    m->flt = flt;
    m->rank = rank;
    m->n = n;
    m->cap = cap;
    return true;
}

/* The matching filters of the current view, in evaluation order, with their
 * sublayer ranks as the view recorded them (the store's sublayer->rank is
 * rewritten by the management thread at every publish). */
static NTSTATUS matching_filters(struct owfp_stream *s, struct matches *m)
{
    struct owfp_flow *f = s->flow;
    uint16_t layer = f->ip_version == 4 ? FWPS_LAYER_STREAM_V4 : FWPS_LAYER_STREAM_V6;
    const struct owfp_layer_view *view = owfp_view_current(f->engine, layer);
    matches_init(m);
    if (!view)
        return STATUS_SUCCESS;
    FWPS_INCOMING_VALUE0 values[FWPS_FIELD_STREAM_V4_MAX];
    FWP_BYTE_ARRAY16 l6, r6;
    owfp_stream_fixed_values(f, values, &l6, &r6);
    FWPS_INCOMING_VALUES0 in = {layer, FWPS_FIELD_STREAM_V4_MAX, values};
    for (uint32_t sl = 0; sl < owfp_view_sublayer_count(view); sl++) {
        uint32_t rank = owfp_view_sublayer_rank(view, sl);
        struct owfp_view_iter it;
        owfp_view_iter_init(&it, view, sl, &in);
        struct owfp_filter *flt;
        while ((flt = owfp_view_iter_next(&it))) {
            if (m->n == m->cap && !matches_grow(m)) {
                matches_free(m);
                return STATUS_INSUFFICIENT_RESOURCES;
            }
            m->rank[m->n] = rank;
            m->flt[m->n++] = flt;
        }
    }
    return STATUS_SUCCESS;
}

static void init_stage(struct owfp_stage *st, struct owfp_filter *flt, uint32_t rank,
                       bool mid_stream)
{
    memset(st, 0, sizeof(*st));
    st->filter = flt;
    st->filter_id = flt->rt.filterId;
    st->action = flt->rt.action.type;
    st->callout_id = is_callout_action(st->action) ? flt->rt.action.calloutId : 0;
    st->rank = rank;
    st->mid_stream = mid_stream;
}

static struct owfp_stage *find_stage(struct owfp_stream *s, uint64_t filter_id)
{
    for (uint32_t i = 0; i < s->nstages; i++)
        if (s->stages[i].filter_id == filter_id)
            return &s->stages[i];
    return NULL;
}

static bool may_join(struct owfp_stream *s, const struct owfp_filter *flt)
{
    if (!s->path_built)
        return true;
    if (!is_callout_action(flt->rt.action.type))
        return false;
    struct owfp_callout *c = owfp_callout_get(s->flow->engine, flt->rt.action.calloutId);
    return c && (c->flags & FWP_CALLOUT_FLAG_ALLOW_MID_STREAM_INSPECTION);
}

/* Where the data of removed old stage `i` goes: the first later old stage
 * that survived (its new index), else the end of the path. */
static struct owfp_queue *successor(struct owfp_stream *s, const int32_t *new_index,
                                    struct owfp_stage *stages, uint32_t i, int d)
{
    for (uint32_t j = i + 1; j < s->nstages; j++)
        if (new_index[j] >= 0)
            return &stages[new_index[j]].d[d].q;
    return &s->out[d].q;
}

/* Inside a read section, on the owner thread. */
NTSTATUS owfp_stream_path_sync(struct owfp_stream *s)
{
    struct owfp_engine *e = s->flow->engine;
    uint64_t gen = atomic_load(&e->stream_generation);
    if (s->path_built && gen == s->generation)
        return STATUS_SUCCESS;
    struct matches m;
    NTSTATUS st = matching_filters(s, &m);
    if (!NT_SUCCESS(st))
        return st;
    /* No stages, no array: a flow without stream filters keeps none. One
     * stage goes in the stream's slot, unless the path being replaced is
     * still there (its data moves below). */
    struct owfp_stage *stages = NULL;
    if (m.n == 1 && s->has_slot && s->stages != s->slot) {
        stages = s->slot;
        memset(stages, 0, sizeof(*stages));
    } else if (m.n) {
        stages = owfp_calloc(m.n, sizeof(*stages));
    }
    int32_t few_index[FEW_MATCHES];
    int32_t *new_index = s->nstages <= FEW_MATCHES ? few_index
                                                    : owfp_malloc(s->nstages * sizeof(*new_index));
    if ((m.n && !stages) || !new_index) {
        if (stages != s->slot)
            owfp_free(stages);
        if (new_index != few_index)
            owfp_free(new_index);
        matches_free(&m);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    for (uint32_t i = 0; i < s->nstages; i++)
        new_index[i] = -1;
    uint32_t n = 0;
    for (uint32_t i = 0; i < m.n; i++) {
        struct owfp_stage *old = find_stage(s, m.flt[i]->rt.filterId);
        if (old) {
            new_index[old - s->stages] = (int32_t)n;
            stages[n] = *old;
            stages[n].filter = m.flt[i];
            stages[n].rank = m.rank[i];
            n++;
        } else if (may_join(s, m.flt[i])) {
            init_stage(&stages[n++], m.flt[i], m.rank[i], s->path_built);
        }
    }
    /* A stage whose filter went away hands on what it holds as if it had
     * permitted it (Q21). That data is newer than anything downstream of
     * it, so it joins the back of the successor's queue. */
    for (uint32_t i = 0; i < s->nstages; i++) {
        if (new_index[i] >= 0)
            continue;
        for (int d = 0; d < 2; d++) {
            struct owfp_queue *q = &s->stages[i].d[d].q;
            for (struct owfp_item *it = q->head; it; it = it->next)
                it->skip_rank = s->stages[i].rank;
            owfp_queue_append(successor(s, new_index, stages, i, d), q);
        }
    }
    if (new_index != few_index)
        owfp_free(new_index);
    matches_free(&m);
    /* Other threads look the stages up under the lock (FwpsStreamInjectAsync0,
     * FwpsStreamContinue0). */
    owfp_flow_lock(s->flow);
    struct owfp_stage *old_stages = s->stages;
    s->stages = stages;
    s->nstages = n;
    owfp_flow_unlock(s->flow);
    if (old_stages != s->slot)
        owfp_free(old_stages);
    s->generation = gen;
    s->path_built = true;
    return STATUS_SUCCESS;
}
