/*
 * NET_BUFFER_LIST and NET_BUFFER pools.
 *
 * A pool only remembers its parameters and counts what is outstanding;
 * every object is its own owfp_calloc block so fault injection reaches each
 * allocation. Lifetime is a reference count: one reference for the open
 * pool plus one per outstanding object, so a driver that frees the pool
 * before its last NBL (a bug, but one seen in unload paths) neither crashes
 * nor leaks: the pool goes away with its last object.
 */
#include "ndis_internal.h"

#include "common/alloc.h"

#include <stdatomic.h>
#include <stdbool.h>

struct owfp_ndis_pool {
    enum owfp_ndis_pool_kind kind; /* zeroed before release, to catch stale handles */
    atomic_bool closed;
    atomic_ulong refs;
    NDIS_HANDLE owner;
    ULONG tag;
    ULONG data_size;
    USHORT context_size;
    UCHAR protocol_id;
    BOOLEAN allocates_nb;
};

static BOOLEAN header_ok(const NDIS_OBJECT_HEADER *h, USHORT min_size)
{
    return h->Type == NDIS_OBJECT_TYPE_DEFAULT && h->Revision >= 1 && h->Size >= min_size;
}

static struct owfp_ndis_pool *pool_new(enum owfp_ndis_pool_kind kind, NDIS_HANDLE owner, ULONG tag,
                                       ULONG data_size)
{
    struct owfp_ndis_pool *p = owfp_calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->kind = kind;
    atomic_init(&p->closed, false);
    atomic_init(&p->refs, 1);
    p->owner = owner;
    p->tag = tag;
    p->data_size = data_size;
    return p;
}

static void pool_unref(struct owfp_ndis_pool *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1) {
        p->kind = 0;
        owfp_free(p);
    }
}

static void pool_close(NDIS_HANDLE handle, enum owfp_ndis_pool_kind kind)
{
    struct owfp_ndis_pool *p = owfp_ndis_pool_lookup(handle, kind);
    /* A second free of the same pool must not drop a reference it no longer holds. */
    if (p != NULL && !atomic_exchange(&p->closed, true))
        pool_unref(p);
}

NDIS_HANDLE NdisAllocateNetBufferListPool(NDIS_HANDLE NdisHandle,
                                          PNET_BUFFER_LIST_POOL_PARAMETERS Parameters)
{
    if (Parameters == NULL ||
        !header_ok(&Parameters->Header, NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1))
        return NULL;
    /* Data needs a NET_BUFFER to hang from (documented requirement). */
    if (Parameters->DataSize != 0 && !Parameters->fAllocateNetBuffer)
        return NULL;
    struct owfp_ndis_pool *p =
        pool_new(OWFP_POOL_NBL, NdisHandle, Parameters->PoolTag, Parameters->DataSize);
    if (p == NULL)
        return NULL;
    p->context_size = Parameters->ContextSize;
    p->protocol_id = Parameters->ProtocolId;
    p->allocates_nb = Parameters->fAllocateNetBuffer ? TRUE : FALSE;
    return p;
}

void NdisFreeNetBufferListPool(NDIS_HANDLE PoolHandle)
{
    pool_close(PoolHandle, OWFP_POOL_NBL);
}

NDIS_HANDLE NdisAllocateNetBufferPool(NDIS_HANDLE NdisHandle, PNET_BUFFER_POOL_PARAMETERS Parameters)
{
    if (Parameters == NULL ||
        !header_ok(&Parameters->Header, NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_1))
        return NULL;
    return pool_new(OWFP_POOL_NB, NdisHandle, Parameters->PoolTag, Parameters->DataSize);
}

void NdisFreeNetBufferPool(NDIS_HANDLE PoolHandle)
{
    pool_close(PoolHandle, OWFP_POOL_NB);
}

NDIS_HANDLE NdisGetPoolFromNetBufferList(PNET_BUFFER_LIST NetBufferList)
{
    return NetBufferList->NdisPoolHandle;
}

NDIS_HANDLE NdisGetPoolFromNetBuffer(PNET_BUFFER NetBuffer)
{
    return NetBuffer->NdisPoolHandle;
}

struct owfp_ndis_pool *owfp_ndis_pool_lookup(NDIS_HANDLE handle, enum owfp_ndis_pool_kind kind)
{
    struct owfp_ndis_pool *p = handle;
    return p != NULL && p->kind == kind ? p : NULL;
}

BOOLEAN owfp_ndis_pool_allocates_nb(const struct owfp_ndis_pool *pool)
{
    return pool->allocates_nb;
}

ULONG owfp_ndis_pool_data_size(const struct owfp_ndis_pool *pool)
{
    return pool->data_size;
}

void *owfp_ndis_pool_alloc(struct owfp_ndis_pool *pool, SIZE_T size)
{
    void *block = owfp_calloc(1, size);
    if (block != NULL)
        atomic_fetch_add_explicit(&pool->refs, 1, memory_order_relaxed);
    return block;
}

void owfp_ndis_pool_free(struct owfp_ndis_pool *pool, void *block)
{
    owfp_free(block);
    pool_unref(pool);
}

ULONG owfp_ndis_pool_outstanding(NDIS_HANDLE handle)
{
    struct owfp_ndis_pool *p = handle;
    if (p == NULL || (p->kind != OWFP_POOL_NBL && p->kind != OWFP_POOL_NB))
        return 0;
    unsigned long refs = atomic_load(&p->refs);
    return (ULONG)(atomic_load(&p->closed) ? refs : refs - 1);
}
