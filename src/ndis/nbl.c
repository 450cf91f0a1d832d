/*
 * NET_BUFFER_LIST / NET_BUFFER: descriptors in caller storage, pool
 * allocation, context space, NdisGetDataBuffer and data-start moves.
 *
 * Nothing here copies data except NdisGetDataBuffer when the caller's bytes
 * straddle MDLs (and the caller gave Storage for exactly that case).
 */
#include "ndis_internal.h"

#include "common/alloc.h"
#include "verify/verify.h"

#include <limits.h>
#include <string.h>

/* Field offsets drivers compiled against the Windows x64 headers rely on. */
#if defined(__x86_64__)
_Static_assert(sizeof(MDL) == 48, "MDL size");
_Static_assert(offsetof(NET_BUFFER, DataOffset) == 40, "NET_BUFFER.DataOffset");
_Static_assert(offsetof(NET_BUFFER, DataOffset) ==
                   offsetof(NET_BUFFER, NetBufferHeader.NetBufferData.DataOffset),
               "NET_BUFFER_DATA aliasing");
_Static_assert(offsetof(NET_BUFFER, ChecksumBias) == 48, "NET_BUFFER.ChecksumBias");
_Static_assert(offsetof(NET_BUFFER, NdisPoolHandle) == 56, "NET_BUFFER.NdisPoolHandle");
_Static_assert(offsetof(NET_BUFFER, ProtocolReserved) == 80, "NET_BUFFER.ProtocolReserved");
_Static_assert(offsetof(NET_BUFFER, DataPhysicalAddress) == 160, "NET_BUFFER.DataPhysicalAddress");
_Static_assert(sizeof(NET_BUFFER) == 176, "NET_BUFFER size");
_Static_assert(offsetof(NET_BUFFER_LIST, Context) == 16, "NET_BUFFER_LIST.Context");
_Static_assert(offsetof(NET_BUFFER_LIST, NdisReserved) == 48, "NET_BUFFER_LIST.NdisReserved");
_Static_assert(offsetof(NET_BUFFER_LIST, Scratch) == 112, "NET_BUFFER_LIST.Scratch");
_Static_assert(offsetof(NET_BUFFER_LIST, Status) == 140, "NET_BUFFER_LIST.Status");
_Static_assert(offsetof(NET_BUFFER_LIST, NetBufferListInfo) == 144, "NET_BUFFER_LIST.NetBufferListInfo");
_Static_assert(sizeof(NET_BUFFER_LIST_CONTEXT) == 16, "NET_BUFFER_LIST_CONTEXT size");
#endif

/*
 * Retreat marks the MDLs it allocates through MDL.Process (meaningless in
 * user space) so advance frees those and never an MDL someone else owns.
 */
static char retreat_own_tag, retreat_driver_tag;
#define RETREAT_OWN ((struct _EPROCESS *)(void *)&retreat_own_tag)
#define RETREAT_DRIVER ((struct _EPROCESS *)(void *)&retreat_driver_tag)

/* The context block allocated with an NBL; it is freed with the NBL, not alone. */
#define NBL_OWN_CONTEXT(nbl) ((NET_BUFFER_LIST_CONTEXT *)(nbl)->NdisReserved[0])

static SIZE_T round16(SIZE_T n)
{
    return (n + 15) & ~(SIZE_T)15;
}

/* Writes the SIZE_T alias so a reader of either field sees the value. */
static void nb_set_length(NET_BUFFER *nb, ULONG len)
{
    nb->stDataLength = len;
}

/* ---- descriptors in caller storage --------------------------------------- */

/*
 * From byte `*off` of `mdl`, moves to the MDL that holds that byte, past
 * exhausted and empty MDLs; stops on the last MDL (at its end) if the chain
 * runs out, so a position just past the data still has an MDL.
 */
static MDL *mdl_seek(MDL *mdl, SIZE_T *off)
{
    while (mdl != NULL && *off >= mdl->ByteCount && mdl->Next != NULL) {
        *off -= mdl->ByteCount;
        mdl = mdl->Next;
    }
    return mdl;
}

void NdisAdjustNetBufferCurrentMdl(PNET_BUFFER NetBuffer)
{
    SIZE_T off = NetBuffer->DataOffset;
    MDL *mdl = mdl_seek(NetBuffer->MdlChain, &off);
    NetBuffer->CurrentMdl = mdl;
    NetBuffer->CurrentMdlOffset = mdl != NULL ? (ULONG)off : 0;
}

void owfp_nb_init(NET_BUFFER *nb, MDL *chain, ULONG dataOffset, SIZE_T dataLength)
{
    memset(nb, 0, sizeof(*nb));
    nb->MdlChain = chain;
    nb->DataOffset = dataOffset;
    nb->stDataLength = dataLength;
    NdisAdjustNetBufferCurrentMdl(nb);
}

void owfp_nbl_init(NET_BUFFER_LIST *nbl, NET_BUFFER *first)
{
    memset(nbl, 0, sizeof(*nbl));
    nbl->FirstNetBuffer = first;
}

void owfp_nbl_free_contexts(NET_BUFFER_LIST *nbl)
{
    NET_BUFFER_LIST_CONTEXT *own = NBL_OWN_CONTEXT(nbl);
    NET_BUFFER_LIST_CONTEXT *ctx = nbl->Context;
    while (ctx != NULL && ctx != own) {
        NET_BUFFER_LIST_CONTEXT *next = ctx->Next;
        owfp_free(ctx);
        ctx = next;
    }
    nbl->Context = ctx;
}

/* ---- pool allocation ------------------------------------------------------- */

/*
 * One block per NBL: the NBL, then (pool with fAllocateNetBuffer) its NB,
 * then (pool DataSize) an MDL, then the context block, then the data.
 * A pool with data ignores `chain`: the NB uses its own data entirely.
 */
static NET_BUFFER_LIST *nbl_alloc(NDIS_HANDLE handle, USHORT ctx_size, USHORT ctx_backfill,
                                  MDL *chain, ULONG data_offset, SIZE_T data_length)
{
    struct owfp_ndis_pool *pool = owfp_ndis_pool_lookup(handle, OWFP_POOL_NBL);
    ULONG ctx_total = (ULONG)ctx_size + ctx_backfill;
    if (pool == NULL || ctx_total > USHRT_MAX)
        return NULL;
    BOOLEAN with_nb = owfp_ndis_pool_allocates_nb(pool);
    ULONG data = with_nb ? owfp_ndis_pool_data_size(pool) : 0;

    SIZE_T at = round16(sizeof(NET_BUFFER_LIST));
    SIZE_T nb_at = at;
    at += with_nb ? round16(sizeof(NET_BUFFER)) : 0;
    SIZE_T mdl_at = at;
    at += data != 0 ? round16(sizeof(MDL)) : 0;
    SIZE_T ctx_at = at;
    at += ctx_total != 0 ? sizeof(NET_BUFFER_LIST_CONTEXT) + round16(ctx_total) : 0;
    SIZE_T data_at = at;
    at += data;

    PUCHAR block = owfp_ndis_pool_alloc(pool, at);
    if (block == NULL)
        return NULL;
    NET_BUFFER_LIST *nbl = (NET_BUFFER_LIST *)block;
    NET_BUFFER *nb = NULL;
    if (with_nb) {
        nb = (NET_BUFFER *)(block + nb_at);
        if (data != 0)
            owfp_nb_init(nb, owfp_mdl_init_borrowed((MDL *)(block + mdl_at), block + data_at, data),
                         0, data);
        else
            owfp_nb_init(nb, chain, data_offset, data_length);
        nb->NdisPoolHandle = handle;
    }
    owfp_nbl_init(nbl, nb);
    nbl->NdisPoolHandle = handle;
    if (ctx_total != 0) {
        NET_BUFFER_LIST_CONTEXT *ctx = (NET_BUFFER_LIST_CONTEXT *)(block + ctx_at);
        ctx->Size = (USHORT)ctx_total;
        ctx->Offset = ctx_backfill;
        nbl->Context = ctx;
        nbl->NdisReserved[0] = ctx;
    }
    OWFP_VERIFY_COUNT(OWFP_VERIFY_RES_NBL, 1);
    return nbl;
}

PNET_BUFFER_LIST NdisAllocateNetBufferList(NDIS_HANDLE PoolHandle, USHORT ContextSize,
                                           USHORT ContextBackFill)
{
    return nbl_alloc(PoolHandle, ContextSize, ContextBackFill, NULL, 0, 0);
}

PNET_BUFFER_LIST NdisAllocateNetBufferAndNetBufferList(NDIS_HANDLE PoolHandle, USHORT ContextSize,
                                                       USHORT ContextBackFill, PMDL MdlChain,
                                                       ULONG DataOffset, SIZE_T DataLength)
{
    struct owfp_ndis_pool *pool = owfp_ndis_pool_lookup(PoolHandle, OWFP_POOL_NBL);
    if (pool == NULL || !owfp_ndis_pool_allocates_nb(pool) || owfp_ndis_pool_data_size(pool) != 0)
        return NULL;
    if (MdlChain == NULL && (DataOffset != 0 || DataLength != 0))
        return NULL;
    return nbl_alloc(PoolHandle, ContextSize, ContextBackFill, MdlChain, DataOffset, DataLength);
}

void NdisFreeNetBufferList(PNET_BUFFER_LIST NetBufferList)
{
    if (NetBufferList == NULL)
        return;
    /* No pool: the engine's own descriptor, not the caller's to free. */
    struct owfp_ndis_pool *pool = owfp_ndis_pool_lookup(NetBufferList->NdisPoolHandle, OWFP_POOL_NBL);
    if (pool == NULL)
        return;
    owfp_nbl_free_contexts(NetBufferList);
    owfp_ndis_pool_free(pool, NetBufferList);
    OWFP_VERIFY_COUNT(OWFP_VERIFY_RES_NBL, -1);
}

PNET_BUFFER NdisAllocateNetBuffer(NDIS_HANDLE PoolHandle, PMDL MdlChain, ULONG DataOffset,
                                  SIZE_T DataLength)
{
    struct owfp_ndis_pool *pool = owfp_ndis_pool_lookup(PoolHandle, OWFP_POOL_NB);
    if (pool == NULL)
        return NULL;
    NET_BUFFER *nb = owfp_ndis_pool_alloc(pool, sizeof(*nb));
    if (nb == NULL)
        return NULL;
    owfp_nb_init(nb, MdlChain, DataOffset, DataLength);
    nb->NdisPoolHandle = PoolHandle;
    OWFP_VERIFY_COUNT(OWFP_VERIFY_RES_NB, 1);
    return nb;
}

PNET_BUFFER NdisAllocateNetBufferMdlAndData(NDIS_HANDLE PoolHandle)
{
    struct owfp_ndis_pool *pool = owfp_ndis_pool_lookup(PoolHandle, OWFP_POOL_NB);
    ULONG data = pool != NULL ? owfp_ndis_pool_data_size(pool) : 0;
    if (data == 0)
        return NULL;
    SIZE_T mdl_at = round16(sizeof(NET_BUFFER));
    SIZE_T data_at = mdl_at + round16(sizeof(MDL));
    PUCHAR block = owfp_ndis_pool_alloc(pool, data_at + data);
    if (block == NULL)
        return NULL;
    NET_BUFFER *nb = (NET_BUFFER *)block;
    owfp_nb_init(nb, owfp_mdl_init_borrowed((MDL *)(block + mdl_at), block + data_at, data), 0, data);
    nb->NdisPoolHandle = PoolHandle;
    OWFP_VERIFY_COUNT(OWFP_VERIFY_RES_NB, 1);
    return nb;
}

void NdisFreeNetBuffer(PNET_BUFFER NetBuffer)
{
    if (NetBuffer == NULL)
        return;
    /* Ignores engine NBs and the NB that lives inside a pool NBL. */
    struct owfp_ndis_pool *pool = owfp_ndis_pool_lookup(NetBuffer->NdisPoolHandle, OWFP_POOL_NB);
    if (pool != NULL) {
        owfp_ndis_pool_free(pool, NetBuffer);
        OWFP_VERIFY_COUNT(OWFP_VERIFY_RES_NB, -1);
    }
}

/* ---- context space ------------------------------------------------------------ */

NDIS_STATUS NdisAllocateNetBufferListContext(PNET_BUFFER_LIST NetBufferList, USHORT ContextSize,
                                             USHORT ContextBackFill, ULONG PoolTag)
{
    (void)PoolTag;
    NET_BUFFER_LIST_CONTEXT *ctx = NetBufferList->Context;
    if (ctx != NULL && ctx->Offset >= ContextSize) {
        ctx->Offset = (USHORT)(ctx->Offset - ContextSize);
        return NDIS_STATUS_SUCCESS;
    }
    ULONG total = (ULONG)ContextSize + ContextBackFill;
    if (total > USHRT_MAX)
        return NDIS_STATUS_INVALID_LENGTH;
    ctx = owfp_calloc(1, sizeof(*ctx) + round16(total));
    if (ctx == NULL)
        return NDIS_STATUS_RESOURCES;
    ctx->Next = NetBufferList->Context;
    ctx->Size = (USHORT)total;
    ctx->Offset = ContextBackFill;
    NetBufferList->Context = ctx;
    return NDIS_STATUS_SUCCESS;
}

void NdisFreeNetBufferListContext(PNET_BUFFER_LIST NetBufferList, USHORT ContextSize)
{
    NET_BUFFER_LIST_CONTEXT *ctx = NetBufferList->Context;
    if (ctx == NULL)
        return;
    ULONG offset = (ULONG)ctx->Offset + ContextSize;
    ctx->Offset = (USHORT)(offset < ctx->Size ? offset : ctx->Size);
    /* An emptied block we allocated goes; the NBL's own block stays for reuse. */
    if (ctx->Offset == ctx->Size && ctx != NBL_OWN_CONTEXT(NetBufferList)) {
        NetBufferList->Context = ctx->Next;
        owfp_free(ctx);
    }
}

/* ---- reading data ------------------------------------------------------------------ */

PVOID NdisGetDataBuffer(PNET_BUFFER NetBuffer, ULONG BytesNeeded, PVOID Storage,
                        UINT AlignMultiple, UINT AlignOffset)
{
    if (NetBuffer->DataLength < BytesNeeded)
        return NULL;
    /* Tolerates a driver that left CurrentMdl at the end of an MDL. */
    SIZE_T off = NetBuffer->CurrentMdlOffset;
    MDL *mdl = mdl_seek(NetBuffer->CurrentMdl, &off);
    if (mdl == NULL || off > mdl->ByteCount)
        return NULL;
    PUCHAR p = (PUCHAR)MmGetSystemAddressForMdlSafe(mdl, NormalPagePriority) + off;
    ULONG_PTR mask = AlignMultiple > 1 ? (ULONG_PTR)AlignMultiple - 1 : 0;
    BOOLEAN aligned = ((ULONG_PTR)p & mask) == ((ULONG_PTR)AlignOffset & mask);
    if (mdl->ByteCount - off >= BytesNeeded && aligned)
        return p;
    if (Storage == NULL || owfp_mdl_chain_copy(mdl, off, Storage, BytesNeeded) != BytesNeeded)
        return NULL;
    return Storage;
}

/* ---- moving the data start ------------------------------------------------------------ */

static MDL *retreat_mdl_alloc(ULONG size, NET_BUFFER_ALLOCATE_MDL_HANDLER handler)
{
    MDL *mdl;
    if (handler != NULL) {
        ULONG asked = size;
        mdl = handler(&asked);
        if (mdl == NULL)
            return NULL;
        mdl->Process = RETREAT_DRIVER;
        return mdl;
    }
    /* MDL and its bytes in one block, so IoFreeMdl would free it too. */
    mdl = owfp_malloc(sizeof(MDL) + size);
    if (mdl == NULL)
        return NULL;
    owfp_mdl_init_borrowed(mdl, mdl + 1, size);
    mdl->MdlFlags |= MDL_ALLOCATED_FIXED_SIZE;
    mdl->Process = RETREAT_OWN;
    return mdl;
}

NDIS_STATUS NdisRetreatNetBufferDataStart(PNET_BUFFER NetBuffer, ULONG DataOffsetDelta,
                                          ULONG DataBackFill,
                                          NET_BUFFER_ALLOCATE_MDL_HANDLER AllocateMdlHandler)
{
    ULONG len = NetBuffer->DataLength;
    if (DataOffsetDelta > UINT32_MAX - len)
        return NDIS_STATUS_INVALID_LENGTH;
    if (DataOffsetDelta <= NetBuffer->DataOffset) {
        NetBuffer->DataOffset -= DataOffsetDelta;
        nb_set_length(NetBuffer, len + DataOffsetDelta);
        if (NetBuffer->CurrentMdl != NULL && DataOffsetDelta <= NetBuffer->CurrentMdlOffset)
            NetBuffer->CurrentMdlOffset -= DataOffsetDelta;
        else
            NdisAdjustNetBufferCurrentMdl(NetBuffer);
        return NDIS_STATUS_SUCCESS;
    }
    /* Only the shortfall is new: the old unused space stays in the chain, in use. */
    ULONG shortfall = DataOffsetDelta - NetBuffer->DataOffset;
    if (DataBackFill > UINT32_MAX - shortfall)
        return NDIS_STATUS_RESOURCES;
    MDL *mdl = retreat_mdl_alloc(shortfall + DataBackFill, AllocateMdlHandler);
    if (mdl == NULL)
        return NDIS_STATUS_RESOURCES;
    /* A driver allocator that under-delivers breaks its contract; its MDL is
     * left to it since only its free handler could release it. */
    if (mdl->ByteCount < shortfall)
        return NDIS_STATUS_FAILURE;
    ULONG unused = mdl->ByteCount - shortfall;
    mdl->Next = NetBuffer->MdlChain;
    NetBuffer->MdlChain = mdl;
    NetBuffer->DataOffset = unused;
    NetBuffer->CurrentMdl = mdl;
    NetBuffer->CurrentMdlOffset = unused;
    nb_set_length(NetBuffer, len + DataOffsetDelta);
    return NDIS_STATUS_SUCCESS;
}

/* Frees retreat MDLs at the chain head that hold no used byte. */
static void free_unused_retreat_mdls(NET_BUFFER *nb, NET_BUFFER_FREE_MDL_HANDLER handler)
{
    BOOLEAN freed = FALSE;
    MDL *mdl;
    while ((mdl = nb->MdlChain) != NULL && nb->DataOffset >= mdl->ByteCount) {
        BOOLEAN own = mdl->Process == RETREAT_OWN;
        if (!own && !(mdl->Process == RETREAT_DRIVER && handler != NULL))
            break;
        nb->MdlChain = mdl->Next;
        nb->DataOffset -= mdl->ByteCount;
        mdl->Next = NULL;
        if (own)
            owfp_free(mdl);
        else
            handler(mdl);
        freed = TRUE;
    }
    if (freed)
        NdisAdjustNetBufferCurrentMdl(nb);
}

void NdisAdvanceNetBufferDataStart(PNET_BUFFER NetBuffer, ULONG DataOffsetDelta, BOOLEAN FreeMdl,
                                   NET_BUFFER_FREE_MDL_HANDLER FreeMdlHandler)
{
    ULONG len = NetBuffer->DataLength;
    /* Advancing past the used data is a driver bug; stop at its end. */
    if (DataOffsetDelta > len)
        DataOffsetDelta = len;
    NetBuffer->DataOffset += DataOffsetDelta;
    nb_set_length(NetBuffer, len - DataOffsetDelta);
    if (NetBuffer->CurrentMdl == NULL) {
        NdisAdjustNetBufferCurrentMdl(NetBuffer);
    } else {
        /* Walk on from the current MDL rather than from the chain head. */
        SIZE_T off = (SIZE_T)NetBuffer->CurrentMdlOffset + DataOffsetDelta;
        NetBuffer->CurrentMdl = mdl_seek(NetBuffer->CurrentMdl, &off);
        NetBuffer->CurrentMdlOffset = (ULONG)off;
    }
    if (FreeMdl)
        free_unused_retreat_mdls(NetBuffer, FreeMdlHandler);
}

NDIS_STATUS NdisRetreatNetBufferListDataStart(PNET_BUFFER_LIST NetBufferList,
                                              ULONG DataOffsetDelta, ULONG DataBackFill,
                                              NET_BUFFER_ALLOCATE_MDL_HANDLER AllocateMdlHandler,
                                              NET_BUFFER_FREE_MDL_HANDLER FreeMdlHandler)
{
    for (NET_BUFFER *nb = NetBufferList->FirstNetBuffer; nb != NULL; nb = nb->Next) {
        NDIS_STATUS status =
            NdisRetreatNetBufferDataStart(nb, DataOffsetDelta, DataBackFill, AllocateMdlHandler);
        if (status == NDIS_STATUS_SUCCESS)
            continue;
        for (NET_BUFFER *done = NetBufferList->FirstNetBuffer; done != nb; done = done->Next)
            NdisAdvanceNetBufferDataStart(done, DataOffsetDelta, TRUE, FreeMdlHandler);
        return status;
    }
    return NDIS_STATUS_SUCCESS;
}

void NdisAdvanceNetBufferListDataStart(PNET_BUFFER_LIST NetBufferList, ULONG DataOffsetDelta,
                                       BOOLEAN FreeMdl, NET_BUFFER_FREE_MDL_HANDLER FreeMdlHandler)
{
    for (NET_BUFFER *nb = NetBufferList->FirstNetBuffer; nb != NULL; nb = nb->Next)
        NdisAdvanceNetBufferDataStart(nb, DataOffsetDelta, FreeMdl, FreeMdlHandler);
}
