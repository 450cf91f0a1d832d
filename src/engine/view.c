#include "view.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "store.h"

int owfp_view_slot(uint16_t layer_id)
{
    switch (layer_id) {
    case FWPS_LAYER_STREAM_V4:
        return 0;
    case FWPS_LAYER_STREAM_V6:
        return 1;
    case FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4:
        return 2;
    case FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6:
        return 3;
    default:
        return -1;
    }
}

static const uint16_t slot_layer[OWFP_VIEW_SLOTS] = {
    FWPS_LAYER_STREAM_V4,
    FWPS_LAYER_STREAM_V6,
    FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4,
    FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6,
};

const struct owfp_layer_view *owfp_view_current(const struct owfp_engine *e, uint16_t layer_id)
{
    int slot = owfp_view_slot(layer_id);
    if (slot < 0)
        return NULL;
    return atomic_load_explicit(&((struct owfp_engine *)e)->views[slot], memory_order_acquire);
}

static int sublayer_order(const void *a, const void *b)
{
    const struct owfp_sublayer *x = *(struct owfp_sublayer *const *)a;
    const struct owfp_sublayer *y = *(struct owfp_sublayer *const *)b;
    if (x->weight != y->weight)
        return x->weight > y->weight ? -1 : 1;
    /* Equal weights: a stable, documented order by key. */
    return memcmp(&x->obj.key, &y->obj.key, sizeof(GUID));
}

/* Sublayers higher in weight are evaluated first (spec A1). */
static NTSTATUS rank_sublayers(struct owfp_store *st)
{
    size_t n = st->sublayers.count, k = 0;
    struct owfp_sublayer **all = owfp_malloc((n ? n : 1) * sizeof(*all));
    if (!all)
        return STATUS_INSUFFICIENT_RESOURCES;
    for (size_t i = 0; i < st->sublayers.capacity; i++) {
        struct owfp_sublayer *sl = owfp_hmap_at(&st->sublayers, i);
        if (sl)
            all[k++] = sl;
    }
    qsort(all, k, sizeof(*all), sublayer_order);
    for (size_t i = 0; i < k; i++)
        all[i]->rank = (uint32_t)i;
    owfp_free(all);
    return STATUS_SUCCESS;
}

static struct owfp_layer_view *build(struct owfp_store *st, int slot)
{
    size_t n = 0;
    for (struct owfp_filter *f = st->layer_filters[slot]; f; f = f->layer_next)
        n++;
    struct owfp_view_entry *entries = owfp_malloc((n ? n : 1) * sizeof(*entries));
    if (!entries)
        return NULL;
    size_t i = 0;
    for (struct owfp_filter *f = st->layer_filters[slot]; f; f = f->layer_next) {
        entries[i++] = (struct owfp_view_entry){
            .owner = f,
            .filter_id = f->rt.filterId,
            .weight = f->weight,
            .sublayer_rank = f->sublayer->rank,
            .conds = f->rt.filterCondition,
            .nconds = f->rt.numFilterConditions,
        };
    }
    struct owfp_layer_view *v = owfp_view_build(slot_layer[slot], entries, n);
    owfp_free(entries);
    return v;
}

NTSTATUS owfp_views_publish(struct owfp_engine *e)
{
    struct owfp_store *st = e->store;
    struct owfp_layer_view *fresh[OWFP_VIEW_SLOTS] = {0};
    bool any = false;
    if (rank_sublayers(st) != STATUS_SUCCESS)
        return STATUS_INSUFFICIENT_RESOURCES;
    for (int s = 0; s < OWFP_VIEW_SLOTS; s++) {
        if (!st->dirty[s])
            continue;
        fresh[s] = build(st, s);
        if (!fresh[s]) {
            for (int t = 0; t < s; t++)
                owfp_view_free(fresh[t]);
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        any = true;
    }
    if (!any)
        return STATUS_SUCCESS;
    struct owfp_layer_view *old[OWFP_VIEW_SLOTS] = {0};
    for (int s = 0; s < OWFP_VIEW_SLOTS; s++) {
        if (fresh[s])
            old[s] = atomic_exchange_explicit(&e->views[s], fresh[s], memory_order_acq_rel);
        st->dirty[s] = false;
    }
    /* Before the wait: a flow that still sees the old generation is inside
     * a read section the wait covers, so its filter pointers stay valid. */
    if (fresh[0] || fresh[1])
        atomic_fetch_add(&e->stream_generation, 1);
    owfp_rcu_synchronize();
    for (int s = 0; s < OWFP_VIEW_SLOTS; s++)
        owfp_view_free(old[s]);
    return STATUS_SUCCESS;
}

void owfp_views_destroy(struct owfp_engine *e)
{
    for (int s = 0; s < OWFP_VIEW_SLOTS; s++)
        owfp_view_free(atomic_exchange(&e->views[s], NULL));
}
