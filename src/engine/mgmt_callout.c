/* FwpmCalloutAdd0 / FwpmCalloutDeleteById0 / FwpmCalloutDeleteByKey0 (spec M4, R3). */
#include "callout_registry.h"
#include "common/alloc.h"
#include "object_ops.h"

#define ADDABLE_FLAGS (FWPM_CALLOUT_FLAG_PERSISTENT | FWPM_CALLOUT_FLAG_USES_PROVIDER_CONTEXT)

NTSTATUS FwpmCalloutAdd0(HANDLE engineHandle, const FWPM_CALLOUT0 *callout,
                         PSECURITY_DESCRIPTOR sd, UINT32 *id)
{
    (void)sd;
    if (!callout)
        return STATUS_FWP_NULL_POINTER;
    struct owfp_mgmt_call call;
    NTSTATUS st = owfp_mgmt_enter(engineHandle, true, &call);
    if (st != STATUS_SUCCESS)
        return st;
    struct owfp_store *store = call.e->store;
    struct owfp_provider *provider = NULL;
    const struct owfp_layer_desc *layer = owfp_layer_by_key(&callout->applicableLayer);
    if (!callout->displayData.name) {
        st = STATUS_FWP_NULL_DISPLAY_NAME;
    } else if (callout->flags & ~(UINT32)ADDABLE_FLAGS) {
        st = STATUS_FWP_INVALID_FLAGS;
    } else if (owfp_store_callout(store, &callout->calloutKey)) {
        st = STATUS_FWP_ALREADY_EXISTS;
    } else if (!layer) {
        st = STATUS_FWP_LAYER_NOT_FOUND;
    } else if (callout->providerKey &&
               !(provider = owfp_store_provider(store, callout->providerKey))) {
        st = STATUS_FWP_PROVIDER_NOT_FOUND;
    } else if (provider &&
               (st = owfp_mgmt_may_reference(call.session, &provider->obj)) != STATUS_SUCCESS) {
        /* st set */
    } else {
        /* A zero key is generated (FWPM_CALLOUT0); such an object can only
         * pair with a registration that uses the generated key. */
        struct owfp_mgmt_callout *c = owfp_calloc(1, sizeof(*c));
        st = c ? owfp_object_init(&call, &c->obj, &callout->calloutKey)
               : STATUS_INSUFFICIENT_RESOURCES;
        uint32_t cid = NT_SUCCESS(st) ? owfp_callout_id_for_key(call.e, &c->obj.key, false) : 0;
        if (!cid) {
            owfp_free(c);
            st = NT_SUCCESS(st) ? STATUS_INSUFFICIENT_RESOURCES : st;
        } else {
            c->id = cid;
            c->flags = callout->flags;
            c->layer = layer;
            c->provider = provider;
            st = owfp_object_add(&call, OWFP_K_CALLOUT, &c->obj);
            if (st == STATUS_SUCCESS && id)
                *id = cid;
        }
    }
    return owfp_mgmt_leave(&call, st);
}

static NTSTATUS delete_callout(HANDLE engineHandle, const GUID *key, uint32_t id)
{
    struct owfp_mgmt_call call;
    NTSTATUS st = owfp_mgmt_enter(engineHandle, true, &call);
    if (st != STATUS_SUCCESS)
        return st;
    struct owfp_mgmt_callout *c = key ? owfp_store_callout(call.e->store, key)
                                      : owfp_store_callout_by_id(call.e->store, id);
    st = owfp_object_delete(&call, OWFP_K_CALLOUT, c ? &c->obj : NULL,
                            STATUS_FWP_CALLOUT_NOT_FOUND);
    return owfp_mgmt_leave(&call, st);
}

NTSTATUS FwpmCalloutDeleteById0(HANDLE engineHandle, UINT32 id)
{
    return delete_callout(engineHandle, NULL, id);
}

NTSTATUS FwpmCalloutDeleteByKey0(HANDLE engineHandle, const GUID *key)
{
    if (!key)
        return STATUS_FWP_NULL_POINTER;
    return delete_callout(engineHandle, key, 0);
}

void FwpmFreeMemory0(void **p)
{
    if (p && *p) {
        owfp_free(*p);
        *p = NULL;
    }
}
