/*
 * The helpers callouts use on stream data (spec S30, S31) and the generic
 * NBL allocation functions of fwpsk.h. Cloning is the one place a callout
 * asks the engine to copy stream bytes.
 */
#include <string.h>

#include "common/alloc.h"
#include "ndis/ndis_internal.h"
#include "stream.h"
#include "verify/verify.h"

/* Marks NBLs the functions here allocated, so the matching free is checked. */
#define CLONE_TAG ((PVOID)(uintptr_t)0x6f776670636c6e31ULL)

struct clone {
    NET_BUFFER_LIST nbl;
    NET_BUFFER nb;
    MDL mdl;
    uint8_t bytes[];
};

/* Walks the stream data from its first byte of interest (spec S5). */
static SIZE_T copy_stream(const FWPS_STREAM_DATA0 *sd, uint8_t *dst, SIZE_T want)
{
    SIZE_T done = 0;
    NET_BUFFER_LIST *nbl = sd->dataOffset.netBufferList;
    NET_BUFFER *nb = sd->dataOffset.netBuffer;
    MDL *mdl = sd->dataOffset.mdl;
    SIZE_T off = sd->dataOffset.mdlOffset;
    want = want < sd->dataLength ? want : sd->dataLength;
    while (nbl && done < want) {
        while (nb && done < want) {
            /* Bytes of this NB that lie in or after `mdl` at `off`. */
            SIZE_T nb_end = NET_BUFFER_DATA_OFFSET(nb) + NET_BUFFER_DATA_LENGTH(nb);
            SIZE_T pos = 0;
            for (MDL *m = NET_BUFFER_FIRST_MDL(nb); m && m != mdl; m = m->Next)
                pos += MmGetMdlByteCount(m);
            pos += off;
            for (MDL *m = mdl; m && done < want && pos < nb_end; m = m->Next, off = 0) {
                SIZE_T avail = MmGetMdlByteCount(m) - off;
                if (avail > nb_end - pos)
                    avail = nb_end - pos;
                SIZE_T take = avail < want - done ? avail : want - done;
                if (take && dst)
                    memcpy(dst + done,
                           (uint8_t *)MmGetSystemAddressForMdlSafe(m, NormalPagePriority) + off,
                           take);
                done += take;
                pos += avail;
            }
            nb = NET_BUFFER_NEXT_NB(nb);
            if (nb) {
                mdl = NET_BUFFER_CURRENT_MDL(nb);
                off = NET_BUFFER_CURRENT_MDL_OFFSET(nb);
            }
        }
        nbl = NET_BUFFER_LIST_NEXT_NBL(nbl);
        if (nbl) {
            nb = NET_BUFFER_LIST_FIRST_NB(nbl);
            mdl = nb ? NET_BUFFER_CURRENT_MDL(nb) : NULL;
            off = nb ? NET_BUFFER_CURRENT_MDL_OFFSET(nb) : 0;
        }
    }
    return done;
}

void FwpsCopyStreamDataToBuffer0(const FWPS_STREAM_DATA0 *calloutStreamData, PVOID buffer,
                                 SIZE_T bytesToCopy, SIZE_T *bytesCopied)
{
    SIZE_T n = 0;
    if (calloutStreamData && buffer)
        n = copy_stream(calloutStreamData, buffer, bytesToCopy);
    if (bytesCopied)
        *bytesCopied = n;
}

NTSTATUS FwpsCloneStreamData0(FWPS_STREAM_DATA0 *calloutStreamData,
                              NDIS_HANDLE netBufferListPoolHandle,
                              NDIS_HANDLE netBufferPoolHandle, ULONG allocateCloneFlags,
                              NET_BUFFER_LIST **netBufferListChain)
{
    (void)netBufferListPoolHandle;
    (void)netBufferPoolHandle;
    if (!calloutStreamData || !netBufferListChain)
        return STATUS_FWP_NULL_POINTER;
    if (allocateCloneFlags)
        return STATUS_INVALID_PARAMETER;
    SIZE_T len = calloutStreamData->dataLength;
    struct clone *c = owfp_malloc(sizeof(*c) + len);
    if (!c)
        return STATUS_INSUFFICIENT_RESOURCES;
    SIZE_T got = copy_stream(calloutStreamData, c->bytes, len);
    /* A FIN indication clones to an empty, injectable NBL (spec S30). */
    owfp_mdl_init_borrowed(&c->mdl, got ? c->bytes : NULL, (ULONG)got);
    owfp_nb_init(&c->nb, &c->mdl, 0, got);
    owfp_nbl_init(&c->nbl, &c->nb);
    c->nbl.SourceHandle = CLONE_TAG;
    *netBufferListChain = &c->nbl;
    OWFP_VERIFY_COUNT(OWFP_VERIFY_RES_CLONE, 1);
    return STATUS_SUCCESS;
}

static bool is_ours(const NET_BUFFER_LIST *nbl)
{
    return nbl && nbl->SourceHandle == CLONE_TAG;
}

void FwpsFreeCloneNetBufferList0(NET_BUFFER_LIST *netBufferList, ULONG freeCloneFlags)
{
    (void)freeCloneFlags;
    if (!is_ours(netBufferList))
        return; /* not from this engine: leave it alone rather than corrupt it */
    owfp_nbl_free_contexts(netBufferList);
    owfp_free((struct clone *)netBufferList);
    OWFP_VERIFY_COUNT(OWFP_VERIFY_RES_CLONE, -1);
}

void FwpsDiscardClonedStreamData0(NET_BUFFER_LIST *netBufferListChain, UINT32 allocateCloneFlags,
                                  BOOLEAN dispatchLevel)
{
    (void)allocateCloneFlags;
    (void)dispatchLevel;
    while (netBufferListChain) {
        NET_BUFFER_LIST *next = NET_BUFFER_LIST_NEXT_NBL(netBufferListChain);
        FwpsFreeCloneNetBufferList0(netBufferListChain, 0);
        netBufferListChain = next;
    }
}

NTSTATUS FwpsAllocateNetBufferAndNetBufferList0(NDIS_HANDLE poolHandle, USHORT contextSize,
                                                USHORT contextBackFill, MDL *mdlChain,
                                                ULONG dataOffset, SIZE_T dataLength,
                                                NET_BUFFER_LIST **netBufferList)
{
    if (!poolHandle || !netBufferList)
        return STATUS_FWP_NULL_POINTER;
    NET_BUFFER_LIST *nbl = NdisAllocateNetBufferAndNetBufferList(
        poolHandle, contextSize, contextBackFill, mdlChain, dataOffset, dataLength);
    if (!nbl)
        return STATUS_INSUFFICIENT_RESOURCES;
    *netBufferList = nbl;
    return STATUS_SUCCESS;
}

void FwpsFreeNetBufferList0(NET_BUFFER_LIST *netBufferList)
{
    if (netBufferList)
        NdisFreeNetBufferList(netBufferList);
}
