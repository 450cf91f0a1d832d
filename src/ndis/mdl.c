/*
 * MDLs over existing memory: allocated ones (IoAllocateMdl, NdisAllocateMdl),
 * borrowed ones in engine storage, partial ones, and chain copies.
 */
#include "ndis_internal.h"

#include "common/alloc.h"
#include "verify/verify.h"

#include <string.h>

PMDL IoAllocateMdl(PVOID VirtualAddress, ULONG Length, BOOLEAN SecondaryBuffer,
                   BOOLEAN ChargeQuota, PVOID Irp)
{
    /* No IRPs and no quotas in user space; see mdl.h. */
    (void)SecondaryBuffer;
    (void)ChargeQuota;
    (void)Irp;
    PMDL mdl = owfp_malloc(sizeof(*mdl));
    if (mdl == NULL)
        return NULL;
    MmInitializeMdl(mdl, VirtualAddress, Length);
    mdl->MdlFlags = MDL_ALLOCATED_FIXED_SIZE;
    OWFP_VERIFY_COUNT(OWFP_VERIFY_RES_MDL, 1);
    return mdl;
}

void IoFreeMdl(PMDL Mdl)
{
    if (Mdl)
        OWFP_VERIFY_COUNT(OWFP_VERIFY_RES_MDL, -1);
    owfp_free(Mdl);
}

void IoBuildPartialMdl(PMDL SourceMdl, PMDL TargetMdl, PVOID VirtualAddress, ULONG Length)
{
    ULONG_PTR start = (ULONG_PTR)MmGetMdlVirtualAddress(SourceMdl);
    ULONG_PTR va = (ULONG_PTR)VirtualAddress;
    ULONG offset = 0;
    ULONG count = 0;
    if (va >= start && va - start <= SourceMdl->ByteCount) {
        offset = (ULONG)(va - start);
        ULONG room = SourceMdl->ByteCount - offset;
        count = (Length == 0 || Length > room) ? room : Length;
    }
    PMDL next = TargetMdl->Next;
    CSHORT keep = (CSHORT)(TargetMdl->MdlFlags & MDL_ALLOCATED_FIXED_SIZE);
    MmInitializeMdl(TargetMdl, (PVOID)(start + offset), count);
    TargetMdl->Next = next;
    TargetMdl->MdlFlags = (CSHORT)(keep | MDL_PARTIAL | (SourceMdl->MdlFlags & MDL_MAPPING_FLAGS));
    if (TargetMdl->MdlFlags & MDL_MAPPING_FLAGS)
        TargetMdl->MappedSystemVa = (PVOID)(start + offset);
}

PMDL NdisAllocateMdl(NDIS_HANDLE NdisHandle, PVOID VirtualAddress, UINT Length)
{
    (void)NdisHandle;
    PMDL mdl = IoAllocateMdl(VirtualAddress, Length, FALSE, FALSE, NULL);
    if (mdl != NULL)
        MmBuildMdlForNonPagedPool(mdl);
    return mdl;
}

void NdisFreeMdl(PMDL Mdl)
{
    IoFreeMdl(Mdl);
}

SIZE_T owfp_mdl_chain_copy(MDL *mdl, SIZE_T offset, void *dst, SIZE_T len)
{
    PUCHAR out = dst;
    SIZE_T done = 0;
    for (; mdl != NULL && done < len; mdl = mdl->Next) {
        if (offset >= mdl->ByteCount) {
            offset -= mdl->ByteCount;
            continue;
        }
        SIZE_T n = mdl->ByteCount - offset;
        if (n > len - done)
            n = len - done;
        memcpy(out + done, (PUCHAR)MmGetSystemAddressForMdlSafe(mdl, NormalPagePriority) + offset, n);
        done += n;
        offset = 0;
    }
    return done;
}
