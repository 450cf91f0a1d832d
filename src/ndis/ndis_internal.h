/*
 * What the engine uses to describe its own memory to callouts without
 * copying: descriptors placed in caller storage (per-flow slabs, stack),
 * plus the pool bookkeeping the NDIS functions share.
 *
 * Descriptors initialised here have no pool (NdisPoolHandle NULL): they
 * stay the caller's, NdisFreeNetBufferList / NdisFreeNetBuffer ignore them,
 * and the memory they describe must outlive every use a callout may make of
 * them (the classify call, or until the engine takes the NBL back).
 */
#ifndef OPENWFP_NDIS_INTERNAL_H
#define OPENWFP_NDIS_INTERNAL_H

#include <ndis.h>

/*
 * Makes `storage` describe [data, data + len), marked as mapped. No
 * allocation, no copy; `data` is only read through the MDL unless a callout
 * writes via it. Returns `storage`. Inline: the stream layer sets one up
 * for every classify.
 */
static inline MDL *owfp_mdl_init_borrowed(MDL *storage, const void *data, ULONG len)
{
    /* The cast only drops const for the WDK field type. */
    MmInitializeMdl(storage, (PVOID)(ULONG_PTR)data, len);
    MmBuildMdlForNonPagedPool(storage);
    return storage;
}

/*
 * Makes `nb` (caller storage) a NET_BUFFER over `chain`: dataOffset unused
 * bytes, then dataLength used bytes (must fit in ULONG). Every other field is
 * zeroed; CurrentMdl / CurrentMdlOffset are derived.
 */
void owfp_nb_init(NET_BUFFER *nb, MDL *chain, ULONG dataOffset, SIZE_T dataLength);

/* Makes `nbl` (caller storage) an NBL whose NB list starts at `first`;
 * every other field is zeroed. */
void owfp_nbl_init(NET_BUFFER_LIST *nbl, NET_BUFFER *first);

/*
 * Frees context blocks a callout added with NdisAllocateNetBufferListContext
 * and left behind; call before reusing or dropping an engine NBL that was
 * shown to callouts.
 */
void owfp_nbl_free_contexts(NET_BUFFER_LIST *nbl);

/*
 * Copies up to `len` bytes that start `offset` bytes into the MDL chain
 * `mdl` into `dst`; returns the number copied (less at the end of the chain).
 */
SIZE_T owfp_mdl_chain_copy(MDL *mdl, SIZE_T offset, void *dst, SIZE_T len);

/* Objects currently allocated from an NBL or NB pool (0 for a bad handle). */
ULONG owfp_ndis_pool_outstanding(NDIS_HANDLE pool);

/* ---- shared by nbl.c and nbl_pool.c ---- */

enum owfp_ndis_pool_kind { OWFP_POOL_NBL = 0x4e424c50, OWFP_POOL_NB = 0x4e425f50 };

struct owfp_ndis_pool;

/* The pool behind `handle`, or NULL for NULL / a handle of another kind. */
struct owfp_ndis_pool *owfp_ndis_pool_lookup(NDIS_HANDLE handle, enum owfp_ndis_pool_kind kind);
BOOLEAN owfp_ndis_pool_allocates_nb(const struct owfp_ndis_pool *pool);
ULONG owfp_ndis_pool_data_size(const struct owfp_ndis_pool *pool);
/* Allocates `size` zeroed bytes counted as one outstanding object. */
void *owfp_ndis_pool_alloc(struct owfp_ndis_pool *pool, SIZE_T size);
/* Returns a block from owfp_ndis_pool_alloc; may release a closed pool. */
void owfp_ndis_pool_free(struct owfp_ndis_pool *pool, void *block);

#endif
