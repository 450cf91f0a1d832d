/* The engine singleton and the data-plane entry points of include/openwfp/openwfp.h. */
#include "engine.h"

#include <string.h>

#include "ale.h"
#include "callout_registry.h"
#include "common/alloc.h"
#include "flow.h"
#include "object_ops.h"
#include "session.h"
#include "store.h"
#include "view.h"
#include "stream/stream.h"

_Atomic(struct owfp_engine *) owfp_the_engine;
_Thread_local unsigned owfp_notify_depth;
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;

struct owfp_flow;

/* The built-in sublayer for filters that name none (spec M5). Its weight is
 * not documented; the middle of the range leaves room on both sides. */
#define UNIVERSAL_SUBLAYER_WEIGHT 0x8000

static NTSTATUS add_builtin_objects(struct owfp_engine *e)
{
    struct owfp_sublayer *sl = owfp_calloc(1, sizeof(*sl));
    if (!sl)
        return STATUS_INSUFFICIENT_RESOURCES;
    sl->obj.key = FWPM_SUBLAYER_UNIVERSAL;
    sl->weight = UNIVERSAL_SUBLAYER_WEIGHT;
    sl->obj.refs = 1; /* never deletable */
    if (!owfp_store_link(e->store, OWFP_K_SUBLAYER, sl)) {
        owfp_free(sl);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    return STATUS_SUCCESS;
}

static void free_engine(struct owfp_engine *e)
{
    owfp_views_destroy(e);
    owfp_store_destroy(e->store);
    owfp_callout_registry_destroy(e);
    pthread_cond_destroy(&e->txn_released);
    pthread_mutex_destroy(&e->mu);
    owfp_free(e);
}

owfp_status owfp_engine_create(const struct owfp_engine_config *config, owfp_engine **engine)
{
    (void)config;
    if (!engine)
        return STATUS_INVALID_PARAMETER;
    pthread_mutex_lock(&create_lock);
    NTSTATUS st = STATUS_SUCCESS;
    struct owfp_engine *e = NULL;
    if (owfp_engine_get()) {
        st = STATUS_FWP_ALREADY_EXISTS;
        goto out;
    }
    e = owfp_calloc(1, sizeof(*e));
    if (!e) {
        st = STATUS_INSUFFICIENT_RESOURCES;
        goto out;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->txn_released, NULL);
    e->store = owfp_store_create();
    e->flows = owfp_flow_table_create();
    if (!e->store || !e->flows || add_builtin_objects(e) != STATUS_SUCCESS) {
        owfp_free(e->flows);
        free_engine(e);
        e = NULL;
        st = STATUS_INSUFFICIENT_RESOURCES;
        goto out;
    }
    atomic_store_explicit(&owfp_the_engine, e, memory_order_release);
    *engine = e;
out:
    pthread_mutex_unlock(&create_lock);
    return st;
}

owfp_engine *owfp_engine_current(void)
{
    return owfp_engine_get();
}

/* Static filters left at teardown are deleted with DELETE notifications,
 * so callouts can free what they keep per filter. */
static void delete_remaining_filters(struct owfp_engine *e)
{
    HANDLE h;
    if (FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, &h) != STATUS_SUCCESS)
        return;
    struct owfp_mgmt_call call;
    if (owfp_mgmt_enter(h, true, &call) == STATUS_SUCCESS) {
        for (int slot = 0; slot < OWFP_VIEW_SLOTS; slot++) {
            struct owfp_filter *f = e->store->layer_filters[slot];
            while (f) {
                struct owfp_filter *next = f->layer_next;
                if (owfp_journal_reserve(e->store))
                    owfp_filter_delete_locked(e, f);
                f = next;
            }
        }
        owfp_mgmt_leave(&call, STATUS_SUCCESS);
    }
    FwpmEngineClose0(h);
}

void owfp_engine_destroy(owfp_engine *e)
{
    if (!e || e != owfp_engine_get())
        return;
    owfp_flow_table_destroy(e);
    owfp_sessions_close_all(e);
    delete_remaining_filters(e);
    pthread_mutex_lock(&create_lock);
    atomic_store(&owfp_the_engine, NULL);
    pthread_mutex_unlock(&create_lock);
    owfp_rcu_reclaim(true);
    owfp_item_cache_drop();
    owfp_stream_desc_cache_drop();
    free_engine(e);
}

static bool valid_params(const struct owfp_flow_params *p)
{
    return p && (p->ip_version == 4 || p->ip_version == 6) &&
           (p->direction == OWFP_OUTBOUND || p->direction == OWFP_INBOUND);
}

owfp_status owfp_flow_open(owfp_engine *e, const struct owfp_flow_params *params,
                           owfp_flow **flow, enum owfp_flow_verdict *verdict)
{
    if (!e || e != owfp_engine_get())
        return STATUS_FWP_TCPIP_NOT_READY;
    if (!flow || !valid_params(params))
        return STATUS_INVALID_PARAMETER;
    struct owfp_flow *f = owfp_flow_new(e, params->ip_version);
    if (!f)
        return STATUS_INSUFFICIENT_RESOURCES;
    f->direction = params->direction;
    f->local_port = params->local_port;
    f->remote_port = params->remote_port;
    f->condition_flags = params->condition_flags;
    f->compartment_id = params->compartment_id;
    memcpy(f->local_addr, params->local_addr, sizeof(f->local_addr));
    memcpy(f->remote_addr, params->remote_addr, sizeof(f->remote_addr));
    struct owfp_verdict v;
    owfp_ale_flow_established(e, f, params, &v);
    if (verdict)
        *verdict = v.action == FWP_ACTION_BLOCK ? OWFP_FLOW_BLOCKED : OWFP_FLOW_PERMITTED;
    *flow = (owfp_flow *)f;
    return STATUS_SUCCESS;
}

uint64_t owfp_flow_id(const owfp_flow *flow)
{
    return ((const struct owfp_flow *)flow)->id;
}

int owfp_flow_aborted(const owfp_flow *flow)
{
    return atomic_load(&((struct owfp_flow *)flow)->aborted);
}

void owfp_flow_close(owfp_flow *flow)
{
    if (flow)
        owfp_flow_end((struct owfp_flow *)flow);
}

void owfp_engine_get_stats(const owfp_engine *e, struct owfp_engine_stats *s)
{
    memset(s, 0, sizeof(*s));
    if (!e)
        return;
    s->flows_open = owfp_flow_open_count(e);
    s->flow_contexts = owfp_flow_context_count(e);
    pthread_mutex_lock((pthread_mutex_t *)&e->mu);
    s->filters = e->store->filter_count;
    pthread_mutex_unlock((pthread_mutex_t *)&e->mu);
    s->callouts_registered = owfp_callout_registered_count(e);
    s->classifies = atomic_load(&e->classifies);
}
