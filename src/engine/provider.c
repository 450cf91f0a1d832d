/* FwpmProviderAdd0 / FwpmProviderDeleteByKey0: providers only group objects. */
#include "common/alloc.h"
#include "object_ops.h"

NTSTATUS FwpmProviderAdd0(HANDLE engineHandle, const FWPM_PROVIDER0 *provider,
                          PSECURITY_DESCRIPTOR sd)
{
    (void)sd;
    if (!provider)
        return STATUS_FWP_NULL_POINTER;
    struct owfp_mgmt_call call;
    NTSTATUS st = owfp_mgmt_enter(engineHandle, true, &call);
    if (st != STATUS_SUCCESS)
        return st;
    if (!provider->displayData.name) {
        st = STATUS_FWP_NULL_DISPLAY_NAME;
    } else if (provider->flags & ~(UINT32)FWPM_PROVIDER_FLAG_PERSISTENT) {
        st = STATUS_FWP_INVALID_FLAGS;
    } else if (owfp_store_provider(call.e->store, &provider->providerKey)) {
        st = STATUS_FWP_ALREADY_EXISTS;
    } else {
        struct owfp_provider *p = owfp_calloc(1, sizeof(*p));
        if (!p) {
            st = STATUS_INSUFFICIENT_RESOURCES;
        } else {
            p->flags = provider->flags;
            st = owfp_object_init(&call, &p->obj, &provider->providerKey);
            st = st == STATUS_SUCCESS ? owfp_object_add(&call, OWFP_K_PROVIDER, &p->obj)
                                      : (owfp_free(p), st);
        }
    }
    return owfp_mgmt_leave(&call, st);
}

NTSTATUS FwpmProviderDeleteByKey0(HANDLE engineHandle, const GUID *key)
{
    if (!key)
        return STATUS_FWP_NULL_POINTER;
    struct owfp_mgmt_call call;
    NTSTATUS st = owfp_mgmt_enter(engineHandle, true, &call);
    if (st != STATUS_SUCCESS)
        return st;
    struct owfp_provider *p = owfp_store_provider(call.e->store, key);
    st = owfp_object_delete(&call, OWFP_K_PROVIDER, p ? &p->obj : NULL,
                            STATUS_FWP_PROVIDER_NOT_FOUND);
    return owfp_mgmt_leave(&call, st);
}
