/* FwpmSubLayerAdd0 / FwpmSubLayerDeleteByKey0 (spec M3). */
#include "common/alloc.h"
#include "object_ops.h"

NTSTATUS FwpmSubLayerAdd0(HANDLE engineHandle, const FWPM_SUBLAYER0 *subLayer,
                          PSECURITY_DESCRIPTOR sd)
{
    (void)sd;
    if (!subLayer)
        return STATUS_FWP_NULL_POINTER;
    struct owfp_mgmt_call call;
    NTSTATUS st = owfp_mgmt_enter(engineHandle, true, &call);
    if (st != STATUS_SUCCESS)
        return st;
    struct owfp_store *store = call.e->store;
    struct owfp_provider *provider = NULL;
    /* Only the PERSISTENT bit is defined; mingw-built callers may leave the
     * upper half of the field uninitialised (spec §3 note). */
    uint32_t flags = subLayer->flags & 0xffff;
    if (!subLayer->displayData.name) {
        st = STATUS_FWP_NULL_DISPLAY_NAME;
    } else if (flags & ~(UINT32)FWPM_SUBLAYER_FLAG_PERSISTENT) {
        st = STATUS_FWP_INVALID_FLAGS;
    } else if (owfp_store_sublayer(store, &subLayer->subLayerKey)) {
        st = STATUS_FWP_ALREADY_EXISTS;
    } else if (subLayer->providerKey &&
               !(provider = owfp_store_provider(store, subLayer->providerKey))) {
        st = STATUS_FWP_PROVIDER_NOT_FOUND;
    } else if (provider &&
               (st = owfp_mgmt_may_reference(call.session, &provider->obj)) != STATUS_SUCCESS) {
        /* st set */
    } else {
        struct owfp_sublayer *sl = owfp_calloc(1, sizeof(*sl));
        if (!sl) {
            st = STATUS_INSUFFICIENT_RESOURCES;
        } else {
            sl->weight = subLayer->weight;
            sl->flags = flags;
            sl->provider = provider;
            st = owfp_object_init(&call, &sl->obj, &subLayer->subLayerKey);
            st = st == STATUS_SUCCESS ? owfp_object_add(&call, OWFP_K_SUBLAYER, &sl->obj)
                                      : (owfp_free(sl), st);
        }
    }
    return owfp_mgmt_leave(&call, st);
}

NTSTATUS FwpmSubLayerDeleteByKey0(HANDLE engineHandle, const GUID *key)
{
    if (!key)
        return STATUS_FWP_NULL_POINTER;
    struct owfp_mgmt_call call;
    NTSTATUS st = owfp_mgmt_enter(engineHandle, true, &call);
    if (st != STATUS_SUCCESS)
        return st;
    struct owfp_sublayer *sl = owfp_store_sublayer(call.e->store, key);
    if (sl && IsEqualGUID(key, &FWPM_SUBLAYER_UNIVERSAL))
        st = STATUS_FWP_BUILTIN_OBJECT;
    else
        st = owfp_object_delete(&call, OWFP_K_SUBLAYER, sl ? &sl->obj : NULL,
                                STATUS_FWP_SUBLAYER_NOT_FOUND);
    return owfp_mgmt_leave(&call, st);
}
