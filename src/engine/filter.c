/* FwpmFilterAdd0 / FwpmFilterDeleteById0 / FwpmFilterDeleteByKey0 (spec M5, N1-N7). */
#include <string.h>

#include "callout_registry.h"
#include "common/alloc.h"
#include "condition.h"
#include "session.h"
#include "weight.h"

/* Management filter flags accepted on add. DISABLED is output only. */
#define ADDABLE_FLAGS                                                                          \
    (FWPM_FILTER_FLAG_PERSISTENT | FWPM_FILTER_FLAG_BOOTTIME |                                 \
     FWPM_FILTER_FLAG_HAS_PROVIDER_CONTEXT | FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT |             \
     FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED | FWPM_FILTER_FLAG_INDEXED |              \
     FWPM_FILTER_FLAG_HAS_SECURITY_REALM_PROVIDER_CONTEXT | FWPM_FILTER_FLAG_SYSTEMOS_ONLY |   \
     FWPM_FILTER_FLAG_GAMEOS_ONLY | FWPM_FILTER_FLAG_SILENT_MODE |                             \
     FWPM_FILTER_FLAG_IPSEC_NO_ACQUIRE_INITIATE)

/* FWPM_FILTER_FLAG_* -> FWPS_FILTER_FLAG_* (spec §2.7). */
static uint16_t runtime_flags(uint32_t mgmt, bool or_groups)
{
    uint16_t f = 0;
    if (mgmt & FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT)
        f |= FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT;
    if (mgmt & FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED)
        f |= FWPS_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED;
    if (mgmt & FWPM_FILTER_FLAG_HAS_SECURITY_REALM_PROVIDER_CONTEXT)
        f |= FWPS_FILTER_FLAG_HAS_SECURITY_REALM_PROVIDER_CONTEXT;
    if (mgmt & FWPM_FILTER_FLAG_SILENT_MODE)
        f |= FWPS_FILTER_FLAG_SILENT_MODE;
    if (mgmt & FWPM_FILTER_FLAG_IPSEC_NO_ACQUIRE_INITIATE)
        f |= FWPS_FILTER_FLAG_IPSEC_NO_ACQUIRE_INITIATE;
    if (or_groups)
        f |= FWPS_FILTER_FLAG_OR_CONDITIONS;
    return f;
}

static bool is_callout_action(uint32_t type)
{
    return type == FWP_ACTION_CALLOUT_TERMINATING || type == FWP_ACTION_CALLOUT_INSPECTION ||
           type == FWP_ACTION_CALLOUT_UNKNOWN;
}

static NTSTATUS check_action(const FWPM_FILTER0 *in)
{
    switch (in->action.type) {
    case FWP_ACTION_BLOCK:
    case FWP_ACTION_PERMIT:
    case FWP_ACTION_CONTINUE: /* accepted as a static action (spec M5 note c) */
    case FWP_ACTION_CALLOUT_TERMINATING:
    case FWP_ACTION_CALLOUT_UNKNOWN:
        return STATUS_SUCCESS;
    case FWP_ACTION_CALLOUT_INSPECTION:
        /* PERMIT_IF_CALLOUT_UNREGISTERED only makes sense where the callout
         * could decide (spec R5). */
        return in->flags & FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED
                   ? STATUS_FWP_INVALID_FLAGS
                   : STATUS_SUCCESS;
    default:
        return STATUS_FWP_INVALID_ACTION_TYPE;
    }
}

void owfp_filter_ref(struct owfp_filter *f)
{
    f->sublayer->obj.refs++;
    if (f->callout)
        f->callout->obj.refs++;
    if (f->provider)
        f->provider->obj.refs++;
}

void owfp_filter_unref(struct owfp_filter *f)
{
    f->sublayer->obj.refs--;
    if (f->callout)
        f->callout->obj.refs--;
    if (f->provider)
        f->provider->obj.refs--;
}

/* The registered callout a filter's notifications go to, or NULL. */
static struct owfp_callout *notify_target(struct owfp_engine *e, const struct owfp_filter *f)
{
    if (!is_callout_action(f->rt.action.type))
        return NULL;
    struct owfp_callout *c = owfp_callout_locked(e, f->rt.action.calloutId);
    if (!c || atomic_load(&c->state) == OWFP_CALLOUT_UNREGISTERING)
        return NULL;
    return c;
}

/* Every deleted filter that names a registered callout is reported to it,
 * whether or not that callout saw the ADD (spec N3, N4). */
void owfp_filter_notify_delete(struct owfp_engine *e, struct owfp_filter *f)
{
    struct owfp_callout *c = notify_target(e, f);
    if (c)
        (void)owfp_callout_call_notify(c, FWPS_CALLOUT_NOTIFY_DELETE_FILTER, NULL, &f->rt);
}

void owfp_filter_notify_post_commit(struct owfp_engine *e, struct owfp_filter *f)
{
    struct owfp_callout *c = notify_target(e, f);
    if (c && (c->flags & FWP_CALLOUT_FLAG_ENABLE_COMMIT_ADD_NOTIFY))
        (void)owfp_callout_call_notify(c, FWPS_CALLOUT_NOTIFY_ADD_FILTER_POST_COMMIT,
                                       &f->obj.key, &f->rt);
}

static NTSTATUS resolve_refs(struct owfp_mgmt_call *call, const FWPM_FILTER0 *in,
                             struct owfp_filter *f)
{
    struct owfp_store *st = call->e->store;
    NTSTATUS status;
    const GUID *slk = owfp_guid_is_zero(&in->subLayerKey) ? &FWPM_SUBLAYER_UNIVERSAL
                                                          : &in->subLayerKey;
    f->sublayer = owfp_store_sublayer(st, slk);
    if (!f->sublayer)
        return STATUS_FWP_SUBLAYER_NOT_FOUND;
    if ((status = owfp_mgmt_may_reference(call->session, &f->sublayer->obj)) != STATUS_SUCCESS)
        return status;
    if (in->providerKey) {
        f->provider = owfp_store_provider(st, in->providerKey);
        if (!f->provider)
            return STATUS_FWP_PROVIDER_NOT_FOUND;
        if ((status = owfp_mgmt_may_reference(call->session, &f->provider->obj)) != STATUS_SUCCESS)
            return status;
    }
    if (is_callout_action(in->action.type)) {
        f->callout = owfp_store_callout(st, &in->action.calloutKey);
        if (!f->callout)
            return STATUS_FWP_CALLOUT_NOT_FOUND;
        if ((status = owfp_mgmt_may_reference(call->session, &f->callout->obj)) != STATUS_SUCCESS)
            return status;
        /* A callout object serves the one layer it was added for (Q8). */
        if (f->callout->layer != f->layer)
            return STATUS_FWP_INCOMPATIBLE_LAYER;
    }
    return STATUS_SUCCESS;
}

static NTSTATUS build_filter(struct owfp_mgmt_call *call, const FWPM_FILTER0 *in,
                             struct owfp_filter **out)
{
    struct owfp_store *st = call->e->store;
    NTSTATUS status;
    if (!in->displayData.name)
        return STATUS_FWP_NULL_DISPLAY_NAME;
    if (in->flags & ~(uint32_t)ADDABLE_FLAGS)
        return STATUS_FWP_INVALID_FLAGS;
    /* Provider contexts (FwpmProviderContextAdd) are not part of the engine,
     * so no key can name one. */
    if (in->flags & FWPM_FILTER_FLAG_HAS_PROVIDER_CONTEXT)
        return STATUS_FWP_PROVIDER_CONTEXT_NOT_FOUND;
    if ((status = check_action(in)) != STATUS_SUCCESS)
        return status;
    const struct owfp_layer_desc *layer = owfp_layer_by_key(&in->layerKey);
    if (!layer)
        return STATUS_FWP_LAYER_NOT_FOUND;
    if (!layer->filterable)
        return STATUS_FWP_INCOMPATIBLE_LAYER;
    if (!owfp_guid_is_zero(&in->filterKey) && owfp_store_filter(st, &in->filterKey))
        return STATUS_FWP_ALREADY_EXISTS;

    struct owfp_filter *f = owfp_calloc(1, sizeof(*f));
    if (!f)
        return STATUS_INSUFFICIENT_RESOURCES;
    f->layer = layer;
    if ((status = resolve_refs(call, in, f)) != STATUS_SUCCESS)
        goto fail;
    bool or_groups = false;
    /* Callers often pass a stale pointer with zero conditions (spec M5 a). */
    if (in->numFilterConditions) {
        if (!in->filterCondition) {
            status = STATUS_FWP_NULL_POINTER;
            goto fail;
        }
        status = owfp_conditions_compile(layer, in->filterCondition, in->numFilterConditions,
                                         &f->rt.filterCondition, &or_groups);
        if (status != STATUS_SUCCESS)
            goto fail;
    }
    status = owfp_weight_effective(&in->weight, f->rt.filterCondition, in->numFilterConditions,
                                   &f->weight);
    if (status != STATUS_SUCCESS)
        goto fail;
    if (owfp_guid_is_zero(&in->filterKey)) {
        if ((status = owfp_guid_generate(&f->obj.key)) != STATUS_SUCCESS)
            goto fail;
    } else {
        f->obj.key = in->filterKey;
    }
    f->mgmt_flags = in->flags;
    f->rt.filterId = st->next_filter_id++;
    f->rt.weight.type = FWP_UINT64;
    f->rt.weight.uint64 = &f->weight;
    f->rt.subLayerWeight = f->sublayer->weight;
    f->rt.flags = runtime_flags(in->flags, or_groups);
    f->rt.numFilterConditions = in->numFilterConditions;
    f->rt.action.type = in->action.type;
    f->rt.action.calloutId = f->callout ? f->callout->id : 0;
    f->rt.context = in->rawContext; /* spec N1 */
    if (call->session->flags & FWPM_SESSION_FLAG_DYNAMIC)
        f->obj.dynamic_owner = call->session;
    *out = f;
    return STATUS_SUCCESS;
fail:
    owfp_object_free(OWFP_K_FILTER, f);
    return status;
}

NTSTATUS FwpmFilterAdd0(HANDLE engineHandle, const FWPM_FILTER0 *filter, PSECURITY_DESCRIPTOR sd,
                        UINT64 *id)
{
    (void)sd;
    if (!filter)
        return STATUS_FWP_NULL_POINTER;
    struct owfp_mgmt_call call;
    NTSTATUS status = owfp_mgmt_enter(engineHandle, true, &call);
    if (status != STATUS_SUCCESS)
        return status;
    struct owfp_store *st = call.e->store;
    struct owfp_filter *f = NULL;
    status = build_filter(&call, filter, &f);
    if (status != STATUS_SUCCESS)
        return owfp_mgmt_leave(&call, status);
    if (!owfp_journal_reserve(st) || !owfp_store_link(st, OWFP_K_FILTER, f)) {
        owfp_object_free(OWFP_K_FILTER, f);
        return owfp_mgmt_leave(&call, STATUS_INSUFFICIENT_RESOURCES);
    }
    /* The callout sees the filter before it becomes visible to classify and
     * may veto it (spec N1, N2). */
    struct owfp_callout *c = notify_target(call.e, f);
    if (c) {
        NTSTATUS nst = owfp_callout_call_notify(c, FWPS_CALLOUT_NOTIFY_ADD_FILTER, &f->obj.key,
                                                &f->rt);
        if (!NT_SUCCESS(nst)) {
            owfp_store_unlink(st, OWFP_K_FILTER, f);
            owfp_object_free(OWFP_K_FILTER, f);
            return owfp_mgmt_leave(&call, STATUS_FWP_CALLOUT_NOTIFICATION_FAILED);
        }
        f->notified_callout = c->id;
    }
    owfp_filter_ref(f);
    owfp_journal_record(st, OWFP_J_ADD, OWFP_K_FILTER, f);
    if (id)
        *id = f->rt.filterId;
    return owfp_mgmt_leave(&call, STATUS_SUCCESS);
}

void owfp_filter_delete_locked(struct owfp_engine *e, struct owfp_filter *f)
{
    owfp_store_unlink(e->store, OWFP_K_FILTER, f);
    owfp_filter_unref(f);
    owfp_journal_record(e->store, OWFP_J_DELETE, OWFP_K_FILTER, f);
}

static NTSTATUS delete_filter(struct owfp_mgmt_call *call, struct owfp_filter *f)
{
    if (!f)
        return STATUS_FWP_FILTER_NOT_FOUND;
    NTSTATUS status = owfp_mgmt_may_delete(call->session, &f->obj);
    if (status != STATUS_SUCCESS)
        return status;
    if (!owfp_journal_reserve(call->e->store))
        return STATUS_INSUFFICIENT_RESOURCES;
    owfp_filter_delete_locked(call->e, f);
    return STATUS_SUCCESS;
}

NTSTATUS FwpmFilterDeleteById0(HANDLE engineHandle, UINT64 id)
{
    struct owfp_mgmt_call call;
    NTSTATUS status = owfp_mgmt_enter(engineHandle, true, &call);
    if (status != STATUS_SUCCESS)
        return status;
    status = delete_filter(&call, owfp_store_filter_by_id(call.e->store, id));
    return owfp_mgmt_leave(&call, status);
}

NTSTATUS FwpmFilterDeleteByKey0(HANDLE engineHandle, const GUID *key)
{
    if (!key)
        return STATUS_FWP_NULL_POINTER;
    struct owfp_mgmt_call call;
    NTSTATUS status = owfp_mgmt_enter(engineHandle, true, &call);
    if (status != STATUS_SUCCESS)
        return status;
    status = delete_filter(&call, owfp_store_filter(call.e->store, key));
    return owfp_mgmt_leave(&call, status);
}
