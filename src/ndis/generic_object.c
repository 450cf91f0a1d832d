/*
 * NDIS generic objects: the NdisHandle WFP callouts create once at load and
 * pass to the pool and injection functions. Nothing inspects it beyond that.
 */
#include "ndis_internal.h"

#include "common/alloc.h"

PNDIS_GENERIC_OBJECT NdisAllocateGenericObject(struct _DRIVER_OBJECT *DriverObject, ULONG Tag,
                                               USHORT Size)
{
    (void)Tag;
    PNDIS_GENERIC_OBJECT obj = owfp_calloc(1, sizeof(*obj) + Size);
    if (obj == NULL)
        return NULL;
    obj->Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
    obj->Header.Revision = 1;
    obj->Header.Size = (USHORT)sizeof(*obj);
    /* Who allocated it: what a debugger shows for a leaked object. */
    obj->Caller = __builtin_return_address(0);
    obj->DriverObject = DriverObject;
    return obj;
}

void NdisFreeGenericObject(PNDIS_GENERIC_OBJECT NdisObject)
{
    owfp_free(NdisObject);
}
