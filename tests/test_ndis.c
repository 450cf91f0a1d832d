/*
 * NET_BUFFER_LIST / NET_BUFFER / MDL and NDIS pools: descriptors over
 * borrowed memory, traversal, NdisGetDataBuffer, advance/retreat, pools,
 * contexts, generic objects, and clean failure under fault injection.
 * Leaks are caught by LeakSanitizer when built with -fsanitize=address.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "ndis/ndis_internal.h"

#define TAG 0x7473744f /* 'Otst' */

static UCHAR g_data[512];

static void fill_data(void)
{
    for (size_t i = 0; i < sizeof(g_data); i++)
        g_data[i] = (UCHAR)(i * 7 + 3);
}

static int setup(void **state)
{
    (void)state;
    fill_data();
    owfp_alloc_fail_reset();
    return 0;
}

/* Links `n` borrowed MDLs over consecutive slices of `base` with the given sizes. */
static MDL *chain_over(MDL *mdls, const ULONG *sizes, int n, const UCHAR *base)
{
    for (int i = 0; i < n; i++) {
        owfp_mdl_init_borrowed(&mdls[i], base, sizes[i]);
        mdls[i].Next = i + 1 < n ? &mdls[i + 1] : NULL;
        base += sizes[i];
    }
    return &mdls[0];
}

static SIZE_T chain_length(const MDL *mdl)
{
    SIZE_T total = 0;
    for (; mdl != NULL; mdl = mdl->Next)
        total += mdl->ByteCount;
    return total;
}

/*
 * The NDIS invariant, stated independently of the implementation: the byte
 * CurrentMdl/CurrentMdlOffset names is byte DataOffset of the chain, the
 * current MDL holds it (unless there is no used byte), the used bytes fit in
 * the chain, and the SIZE_T length alias agrees.
 */
static void assert_nb_consistent(const NET_BUFFER *nb)
{
    assert_int_equal(nb->stDataLength, nb->DataLength);
    if (nb->MdlChain == NULL) {
        assert_null(nb->CurrentMdl);
        assert_int_equal(nb->DataOffset, 0);
        assert_int_equal(nb->DataLength, 0);
        return;
    }
    SIZE_T before = 0;
    const MDL *mdl = nb->MdlChain;
    while (mdl != NULL && mdl != nb->CurrentMdl) {
        before += mdl->ByteCount;
        mdl = mdl->Next;
    }
    assert_non_null(mdl);
    assert_int_equal(before + nb->CurrentMdlOffset, nb->DataOffset);
    if (nb->DataLength != 0)
        assert_true(nb->CurrentMdlOffset < nb->CurrentMdl->ByteCount);
    assert_true((SIZE_T)nb->DataOffset + nb->DataLength <= chain_length(nb->MdlChain));
}

/* All used bytes of `nb`, through NdisGetDataBuffer. */
static void read_nb(NET_BUFFER *nb, UCHAR *out)
{
    PVOID p = NdisGetDataBuffer(nb, nb->DataLength, out, 1, 0);
    assert_non_null(p);
    if (p != out)
        memcpy(out, p, nb->DataLength);
}

static NDIS_HANDLE nbl_pool(BOOLEAN with_nb, USHORT context_size, ULONG data_size)
{
    NET_BUFFER_LIST_POOL_PARAMETERS params;
    memset(&params, 0, sizeof(params));
    params.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
    params.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    params.Header.Size = NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    params.ProtocolId = NDIS_PROTOCOL_ID_DEFAULT;
    params.fAllocateNetBuffer = with_nb;
    params.ContextSize = context_size;
    params.PoolTag = TAG;
    params.DataSize = data_size;
    return NdisAllocateNetBufferListPool(NULL, &params);
}

static NDIS_HANDLE nb_pool(ULONG data_size)
{
    NET_BUFFER_POOL_PARAMETERS params;
    memset(&params, 0, sizeof(params));
    params.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
    params.Header.Revision = NET_BUFFER_POOL_PARAMETERS_REVISION_1;
    params.Header.Size = NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_1;
    params.PoolTag = TAG;
    params.DataSize = data_size;
    return NdisAllocateNetBufferPool(NULL, &params);
}

/* ---- MDLs ---------------------------------------------------------------- */

static void test_ndis_borrowed_mdl_points_at_original_bytes(void **state)
{
    (void)state;
    MDL mdl;
    const UCHAR *data = &g_data[37];
    owfp_mdl_init_borrowed(&mdl, data, 100);
    assert_ptr_equal(MmGetSystemAddressForMdlSafe(&mdl, NormalPagePriority | MdlMappingNoExecute),
                     data);
    assert_ptr_equal(MmGetMdlVirtualAddress(&mdl), data);
    assert_int_equal((ULONG_PTR)mdl.StartVa % PAGE_SIZE, 0);
    assert_int_equal(MmGetMdlByteOffset(&mdl), (ULONG_PTR)data % PAGE_SIZE);
    assert_int_equal(MmGetMdlByteCount(&mdl), 100);
    assert_true(mdl.MdlFlags & MDL_SOURCE_IS_NONPAGED_POOL);
    assert_null(mdl.Next);
    /* Windows idiom: system address + offset reaches that byte. */
    assert_int_equal(((PUCHAR)MmGetSystemAddressForMdlSafe(&mdl, NormalPagePriority))[5], g_data[42]);
}

static void test_ndis_io_allocate_mdl_describes_range_without_copy(void **state)
{
    (void)state;
    PMDL mdl = IoAllocateMdl(&g_data[5], 100, FALSE, FALSE, NULL);
    assert_non_null(mdl);
    assert_ptr_equal(MmGetMdlVirtualAddress(mdl), &g_data[5]);
    assert_ptr_equal(MmGetSystemAddressForMdlSafe(mdl, NormalPagePriority), &g_data[5]);
    assert_int_equal(MmGetMdlByteCount(mdl), 100);
    assert_int_equal(mdl->Size, (CSHORT)MmSizeOfMdl(&g_data[5], 100));
    MmBuildMdlForNonPagedPool(mdl);
    assert_true(mdl->MdlFlags & MDL_SOURCE_IS_NONPAGED_POOL);
    assert_ptr_equal(MmGetSystemAddressForMdlSafe(mdl, NormalPagePriority), &g_data[5]);
    IoFreeMdl(mdl);

    mdl = NdisAllocateMdl(NULL, &g_data[9], 20);
    assert_non_null(mdl);
    PVOID va = NULL;
    UINT len = 0;
    NdisQueryMdl(mdl, &va, &len, NormalPagePriority);
    assert_ptr_equal(va, &g_data[9]);
    assert_int_equal(len, 20);
    PMDL next = mdl;
    NdisGetNextMdl(mdl, &next);
    assert_null(next);
    NdisFreeMdl(mdl);
}

static void test_ndis_io_build_partial_mdl_describes_subrange(void **state)
{
    (void)state;
    MDL source, target;
    owfp_mdl_init_borrowed(&source, &g_data[10], 100);
    memset(&target, 0, sizeof(target));

    IoBuildPartialMdl(&source, &target, &g_data[30], 16);
    assert_ptr_equal(MmGetSystemAddressForMdlSafe(&target, NormalPagePriority), &g_data[30]);
    assert_int_equal(target.ByteCount, 16);
    assert_true(target.MdlFlags & MDL_PARTIAL);

    IoBuildPartialMdl(&source, &target, &g_data[90], 0); /* 0: to the end */
    assert_ptr_equal(MmGetMdlVirtualAddress(&target), &g_data[90]);
    assert_int_equal(target.ByteCount, 20);

    IoBuildPartialMdl(&source, &target, &g_data[200], 4); /* outside: empty */
    assert_int_equal(target.ByteCount, 0);
}

/* ---- descriptors and traversal ------------------------------------------- */

static void test_ndis_nb_fields_alias_documented_headers(void **state)
{
    (void)state;
    NET_BUFFER nb;
    NET_BUFFER_LIST nbl;
    owfp_nb_init(&nb, NULL, 0, 0);
    owfp_nbl_init(&nbl, &nb);
    nb.DataOffset = 11;
    nb.stDataLength = 22;
    assert_int_equal(nb.NetBufferHeader.NetBufferData.DataOffset, 11);
    assert_int_equal(nb.NetBufferHeader.NetBufferData.DataLength, 22);
    assert_int_equal(NET_BUFFER_DATA_LENGTH(&nb), 22);
    assert_ptr_equal(nbl.NetBufferListHeader.NetBufferListData.FirstNetBuffer, &nb);
    assert_int_equal(offsetof(NET_BUFFER_LIST, NetBufferListInfo), 144);
    assert_int_equal(sizeof(NET_BUFFER), 176);
}

static void test_ndis_nb_init_derives_current_mdl_at_boundaries(void **state)
{
    (void)state;
    MDL mdls[4];
    const ULONG sizes[] = {10, 0, 20, 30}; /* an empty MDL is skipped */
    MDL *chain = chain_over(mdls, sizes, 4, g_data);
    NET_BUFFER nb;

    owfp_nb_init(&nb, chain, 4, 10);
    assert_ptr_equal(NET_BUFFER_CURRENT_MDL(&nb), &mdls[0]);
    assert_int_equal(NET_BUFFER_CURRENT_MDL_OFFSET(&nb), 4);
    assert_nb_consistent(&nb);

    owfp_nb_init(&nb, chain, 10, 5); /* exactly on a boundary: the next MDL with data */
    assert_ptr_equal(NET_BUFFER_CURRENT_MDL(&nb), &mdls[2]);
    assert_int_equal(NET_BUFFER_CURRENT_MDL_OFFSET(&nb), 0);
    assert_nb_consistent(&nb);

    owfp_nb_init(&nb, chain, 45, 15);
    assert_ptr_equal(NET_BUFFER_CURRENT_MDL(&nb), &mdls[3]);
    assert_int_equal(NET_BUFFER_CURRENT_MDL_OFFSET(&nb), 15);
    assert_nb_consistent(&nb);

    owfp_nb_init(&nb, chain, 60, 0); /* all backfill: end of the last MDL */
    assert_ptr_equal(NET_BUFFER_CURRENT_MDL(&nb), &mdls[3]);
    assert_int_equal(NET_BUFFER_CURRENT_MDL_OFFSET(&nb), 30);
    assert_nb_consistent(&nb);
}

/*
 * Two NBLs; the first holds two NBs, the second one. Every NB spans three
 * MDLs over g_data and starts a little way into its chain. Walking with the
 * documented macros must yield the described bytes in order.
 */
static void test_ndis_traversal_macros_walk_chain_of_nbs_and_mdls(void **state)
{
    (void)state;
    MDL mdls[3][3];
    NET_BUFFER nbs[3];
    NET_BUFFER_LIST nbls[2];
    const ULONG sizes[3][3] = {{8, 16, 24}, {5, 1, 40}, {32, 32, 32}};
    const ULONG offsets[3] = {3, 5, 40};
    const ULONG lengths[3] = {40, 30, 50};
    const UCHAR *base = g_data;
    for (int i = 0; i < 3; i++) {
        MDL *chain = chain_over(mdls[i], sizes[i], 3, base);
        owfp_nb_init(&nbs[i], chain, offsets[i], lengths[i]);
        base += chain_length(chain);
    }
    owfp_nbl_init(&nbls[0], &nbs[0]);
    nbs[0].Next = &nbs[1];
    owfp_nbl_init(&nbls[1], &nbs[2]);
    nbls[0].Next = &nbls[1];

    UCHAR expect[256], got[256];
    SIZE_T n_expect = 0, n_got = 0;
    base = g_data;
    for (int i = 0; i < 3; i++) {
        memcpy(expect + n_expect, base + offsets[i], lengths[i]);
        n_expect += lengths[i];
        base += sizes[i][0] + sizes[i][1] + sizes[i][2];
    }

    int nb_count = 0;
    for (PNET_BUFFER_LIST nbl = &nbls[0]; nbl != NULL; nbl = NET_BUFFER_LIST_NEXT_NBL(nbl)) {
        for (PNET_BUFFER nb = NET_BUFFER_LIST_FIRST_NB(nbl); nb != NULL; nb = NET_BUFFER_NEXT_NB(nb)) {
            nb_count++;
            assert_nb_consistent(nb);
            ULONG left = NET_BUFFER_DATA_LENGTH(nb);
            ULONG off = NET_BUFFER_CURRENT_MDL_OFFSET(nb);
            for (PMDL mdl = NET_BUFFER_CURRENT_MDL(nb); mdl != NULL && left > 0; mdl = mdl->Next) {
                PUCHAR va = MmGetSystemAddressForMdlSafe(mdl, NormalPagePriority);
                ULONG take = MmGetMdlByteCount(mdl) - off;
                if (take > left)
                    take = left;
                memcpy(got + n_got, va + off, take);
                n_got += take;
                left -= take;
                off = 0;
            }
            assert_int_equal(left, 0);
            assert_ptr_equal(NET_BUFFER_FIRST_MDL(nb)->Next->Next->Next, NULL);
        }
    }
    assert_int_equal(nb_count, 3);
    assert_int_equal(n_got, n_expect);
    assert_memory_equal(got, expect, n_expect);
}

/* ---- NdisGetDataBuffer ---------------------------------------------------------- */

static void test_ndis_get_data_buffer_contiguous_is_zero_copy(void **state)
{
    (void)state;
    MDL mdls[2];
    const ULONG sizes[] = {64, 64};
    NET_BUFFER nb;
    owfp_nb_init(&nb, chain_over(mdls, sizes, 2, g_data), 70, 40);
    UCHAR storage[16];
    memset(storage, 0xEE, sizeof(storage));

    PUCHAR p = NdisGetDataBuffer(&nb, 16, storage, 1, 0);
    assert_ptr_equal(p, &g_data[70]); /* the caller's own bytes, not a copy */
    assert_int_equal(storage[0], 0xEE);
    assert_ptr_equal(NdisGetDataBuffer(&nb, 16, NULL, 1, 0), &g_data[70]);
    assert_ptr_equal(NdisGetDataBuffer(&nb, 40, NULL, 1, 0), &g_data[70]);
}

static void test_ndis_get_data_buffer_across_mdl_boundary_copies_to_storage(void **state)
{
    (void)state;
    MDL mdls[3];
    const ULONG sizes[] = {10, 3, 50};
    NET_BUFFER nb;
    owfp_nb_init(&nb, chain_over(mdls, sizes, 3, g_data), 6, 30);
    UCHAR storage[30];

    assert_null(NdisGetDataBuffer(&nb, 10, NULL, 1, 0));
    PUCHAR p = NdisGetDataBuffer(&nb, 10, storage, 1, 0);
    assert_ptr_equal(p, storage);
    assert_memory_equal(storage, &g_data[6], 10);
    p = NdisGetDataBuffer(&nb, 30, storage, 1, 0);
    assert_ptr_equal(p, storage);
    assert_memory_equal(storage, &g_data[6], 30);
    assert_nb_consistent(&nb); /* reading does not move the data start */
    assert_int_equal(nb.DataOffset, 6);
}

static void test_ndis_get_data_buffer_insufficient_data_returns_null(void **state)
{
    (void)state;
    MDL mdl;
    NET_BUFFER nb;
    owfp_nb_init(&nb, owfp_mdl_init_borrowed(&mdl, g_data, 100), 90, 10);
    UCHAR storage[64];
    assert_null(NdisGetDataBuffer(&nb, 11, storage, 1, 0));
    assert_null(NdisGetDataBuffer(&nb, 11, NULL, 1, 0));
    assert_non_null(NdisGetDataBuffer(&nb, 10, NULL, 1, 0));
}

static void test_ndis_get_data_buffer_misaligned_bytes_are_copied(void **state)
{
    (void)state;
    MDL mdl;
    NET_BUFFER nb;
    ULONG misalign = (ULONG)(((ULONG_PTR)g_data + 1) % 4 == 0 ? 2 : 1);
    owfp_nb_init(&nb, owfp_mdl_init_borrowed(&mdl, g_data, 64), misalign, 32);
    UCHAR storage[32] __attribute__((aligned(4)));
    assert_ptr_equal(NdisGetDataBuffer(&nb, 8, storage, 4, 0), storage);
    assert_null(NdisGetDataBuffer(&nb, 8, NULL, 4, 0));
    UINT wanted_offset = (UINT)(((ULONG_PTR)g_data + misalign) % 4);
    assert_ptr_equal(NdisGetDataBuffer(&nb, 8, NULL, 4, wanted_offset), &g_data[misalign]);
}

/* ---- advance / retreat ----------------------------------------------------------- */

static void test_ndis_advance_retreat_round_trip_across_mdls(void **state)
{
    (void)state;
    MDL mdls[3];
    const ULONG sizes[] = {10, 20, 30};
    NET_BUFFER nb;
    owfp_nb_init(&nb, chain_over(mdls, sizes, 3, g_data), 15, 40);
    UCHAR buf[64];

    NdisAdvanceNetBufferDataStart(&nb, 12, FALSE, NULL);
    assert_int_equal(nb.DataOffset, 27);
    assert_int_equal(nb.DataLength, 28);
    assert_ptr_equal(nb.CurrentMdl, &mdls[1]);
    assert_int_equal(nb.CurrentMdlOffset, 17);
    assert_nb_consistent(&nb);

    NdisAdvanceNetBufferDataStart(&nb, 3, FALSE, NULL); /* onto the MDL boundary */
    assert_ptr_equal(nb.CurrentMdl, &mdls[2]);
    assert_int_equal(nb.CurrentMdlOffset, 0);
    assert_nb_consistent(&nb);
    read_nb(&nb, buf);
    assert_memory_equal(buf, &g_data[30], 25);

    assert_int_equal(NdisRetreatNetBufferDataStart(&nb, 20, 0, NULL), NDIS_STATUS_SUCCESS);
    assert_ptr_equal(nb.CurrentMdl, &mdls[1]);
    assert_int_equal(nb.CurrentMdlOffset, 0);
    assert_int_equal(nb.DataOffset, 10);
    assert_int_equal(nb.DataLength, 45);
    assert_nb_consistent(&nb);

    assert_int_equal(NdisRetreatNetBufferDataStart(&nb, 10, 0, NULL), NDIS_STATUS_SUCCESS);
    assert_ptr_equal(nb.CurrentMdl, &mdls[0]);
    assert_int_equal(nb.CurrentMdlOffset, 0);
    assert_int_equal(nb.DataOffset, 0);
    assert_int_equal(nb.DataLength, 55);
    assert_ptr_equal(nb.MdlChain, &mdls[0]); /* no MDL was needed */
    assert_nb_consistent(&nb);
    read_nb(&nb, buf);
    assert_memory_equal(buf, g_data, 55);

    NdisAdvanceNetBufferDataStart(&nb, 15, TRUE, NULL); /* borrowed MDLs are never freed */
    assert_ptr_equal(nb.MdlChain, &mdls[0]);
    assert_int_equal(nb.DataOffset, 15);
    assert_int_equal(nb.DataLength, 40);
    assert_nb_consistent(&nb);
}

static void test_ndis_retreat_beyond_backfill_allocates_mdl_in_front(void **state)
{
    (void)state;
    MDL mdl;
    NET_BUFFER nb;
    owfp_nb_init(&nb, owfp_mdl_init_borrowed(&mdl, g_data, 50), 0, 50);
    UCHAR buf[128];

    assert_int_equal(NdisRetreatNetBufferDataStart(&nb, 8, 16, NULL), NDIS_STATUS_SUCCESS);
    PMDL added = nb.MdlChain;
    assert_ptr_not_equal(added, &mdl);
    assert_ptr_equal(added->Next, &mdl);
    assert_int_equal(added->ByteCount, 24);
    assert_ptr_equal(nb.CurrentMdl, added);
    assert_int_equal(nb.CurrentMdlOffset, 16);
    assert_int_equal(nb.DataOffset, 16);
    assert_int_equal(nb.DataLength, 58);
    assert_nb_consistent(&nb);

    /* The new header space is contiguous, as drivers writing a header expect. */
    PUCHAR hdr = NdisGetDataBuffer(&nb, 8, NULL, 1, 0);
    assert_non_null(hdr);
    memset(hdr, 0xAB, 8);
    read_nb(&nb, buf);
    for (int i = 0; i < 8; i++)
        assert_int_equal(buf[i], 0xAB);
    assert_memory_equal(buf + 8, g_data, 50);

    /* Kept MDL is reused by the next retreat without allocating. */
    NdisAdvanceNetBufferDataStart(&nb, 8, FALSE, NULL);
    assert_ptr_equal(nb.MdlChain, added);
    assert_ptr_equal(nb.CurrentMdl, &mdl);
    assert_nb_consistent(&nb);
    owfp_alloc_fail_after(0);
    assert_int_equal(NdisRetreatNetBufferDataStart(&nb, 20, 0, NULL), NDIS_STATUS_SUCCESS);
    owfp_alloc_fail_reset();
    assert_ptr_equal(nb.CurrentMdl, added);
    assert_int_equal(nb.CurrentMdlOffset, 4);
    assert_nb_consistent(&nb);

    NdisAdvanceNetBufferDataStart(&nb, 20, TRUE, NULL); /* frees the retreat MDL */
    assert_ptr_equal(nb.MdlChain, &mdl);
    assert_ptr_equal(nb.CurrentMdl, &mdl);
    assert_int_equal(nb.DataOffset, 0);
    assert_int_equal(nb.DataLength, 50);
    assert_nb_consistent(&nb);
}

static void test_ndis_retreat_uses_partial_backfill_then_allocates_shortfall(void **state)
{
    (void)state;
    MDL mdl;
    NET_BUFFER nb;
    owfp_nb_init(&nb, owfp_mdl_init_borrowed(&mdl, g_data, 50), 4, 46);
    UCHAR buf[64];

    assert_int_equal(NdisRetreatNetBufferDataStart(&nb, 10, 0, NULL), NDIS_STATUS_SUCCESS);
    assert_int_equal(nb.MdlChain->ByteCount, 6);
    assert_int_equal(nb.DataOffset, 0);
    assert_int_equal(nb.DataLength, 56);
    assert_nb_consistent(&nb);
    read_nb(&nb, buf);
    assert_memory_equal(buf + 6, g_data, 50); /* old backfill, then the old data */

    NdisAdvanceNetBufferDataStart(&nb, 10, TRUE, NULL);
    assert_ptr_equal(nb.MdlChain, &mdl);
    assert_int_equal(nb.DataOffset, 4);
    assert_int_equal(nb.DataLength, 46);
    assert_nb_consistent(&nb);
}

static void test_ndis_retreat_on_empty_nb_allocates_first_mdl(void **state)
{
    (void)state;
    NDIS_HANDLE pool = nb_pool(0);
    assert_non_null(pool);
    PNET_BUFFER nb = NdisAllocateNetBuffer(pool, NULL, 0, 0);
    assert_non_null(nb);
    assert_nb_consistent(nb);

    assert_int_equal(NdisRetreatNetBufferDataStart(nb, 20, 0, NULL), NDIS_STATUS_SUCCESS);
    assert_non_null(nb->MdlChain);
    assert_int_equal(nb->DataLength, 20);
    assert_nb_consistent(nb);
    assert_non_null(NdisGetDataBuffer(nb, 20, NULL, 1, 0));

    NdisAdvanceNetBufferDataStart(nb, 20, TRUE, NULL);
    assert_null(nb->MdlChain);
    assert_null(nb->CurrentMdl);
    assert_int_equal(nb->DataOffset, 0);
    assert_int_equal(nb->DataLength, 0);
    NdisFreeNetBuffer(nb);
    NdisFreeNetBufferPool(pool);
}

static int g_driver_allocs, g_driver_frees;

static PMDL driver_allocate_mdl(PULONG size)
{
    ULONG n = *size + 4; /* drivers may hand out more than asked */
    PUCHAR mem = owfp_malloc(n);
    if (mem == NULL)
        return NULL;
    PMDL mdl = IoAllocateMdl(mem, n, FALSE, FALSE, NULL);
    if (mdl == NULL) {
        owfp_free(mem);
        return NULL;
    }
    g_driver_allocs++;
    return mdl;
}

static void driver_free_mdl(PMDL mdl)
{
    g_driver_frees++;
    owfp_free(MmGetMdlVirtualAddress(mdl));
    IoFreeMdl(mdl);
}

static void test_ndis_retreat_and_advance_use_driver_mdl_handlers(void **state)
{
    (void)state;
    g_driver_allocs = g_driver_frees = 0;
    MDL mdl;
    NET_BUFFER nb;
    owfp_nb_init(&nb, owfp_mdl_init_borrowed(&mdl, g_data, 30), 0, 30);

    assert_int_equal(NdisRetreatNetBufferDataStart(&nb, 12, 0, driver_allocate_mdl),
                     NDIS_STATUS_SUCCESS);
    assert_int_equal(g_driver_allocs, 1);
    assert_int_equal(nb.DataOffset, 4); /* the extra bytes became backfill */
    assert_int_equal(nb.DataLength, 42);
    assert_nb_consistent(&nb);

    NdisAdvanceNetBufferDataStart(&nb, 12, TRUE, NULL); /* no handler: not ours to free */
    assert_int_equal(g_driver_frees, 0);
    assert_ptr_not_equal(nb.MdlChain, &mdl);
    assert_nb_consistent(&nb);
    assert_int_equal(NdisRetreatNetBufferDataStart(&nb, 12, 0, driver_allocate_mdl),
                     NDIS_STATUS_SUCCESS);
    assert_int_equal(g_driver_allocs, 1);

    NdisAdvanceNetBufferDataStart(&nb, 12, TRUE, driver_free_mdl);
    assert_int_equal(g_driver_frees, 1);
    assert_ptr_equal(nb.MdlChain, &mdl);
    assert_int_equal(nb.DataOffset, 0);
    assert_nb_consistent(&nb);
}

static void test_ndis_advance_past_data_length_stops_at_end(void **state)
{
    (void)state;
    MDL mdl;
    NET_BUFFER nb;
    owfp_nb_init(&nb, owfp_mdl_init_borrowed(&mdl, g_data, 30), 10, 10);
    NdisAdvanceNetBufferDataStart(&nb, 25, FALSE, NULL);
    assert_int_equal(nb.DataOffset, 20);
    assert_int_equal(nb.DataLength, 0);
    assert_nb_consistent(&nb);
    assert_null(NdisGetDataBuffer(&nb, 1, NULL, 1, 0));
}

static void test_ndis_nbl_retreat_undoes_earlier_nbs_when_one_fails(void **state)
{
    (void)state;
    MDL mdls[2];
    NET_BUFFER nbs[2];
    NET_BUFFER_LIST nbl;
    owfp_nb_init(&nbs[0], owfp_mdl_init_borrowed(&mdls[0], g_data, 20), 0, 20);
    owfp_nb_init(&nbs[1], owfp_mdl_init_borrowed(&mdls[1], g_data + 20, 20), 0, 20);
    nbs[0].Next = &nbs[1];
    owfp_nbl_init(&nbl, &nbs[0]);

    owfp_alloc_fail_after(1); /* first NB gets its MDL, the second does not */
    assert_int_equal(NdisRetreatNetBufferListDataStart(&nbl, 8, 0, NULL, NULL),
                     NDIS_STATUS_RESOURCES);
    owfp_alloc_fail_reset();
    for (int i = 0; i < 2; i++) {
        assert_ptr_equal(nbs[i].MdlChain, &mdls[i]);
        assert_int_equal(nbs[i].DataOffset, 0);
        assert_int_equal(nbs[i].DataLength, 20);
        assert_nb_consistent(&nbs[i]);
    }

    assert_int_equal(NdisRetreatNetBufferListDataStart(&nbl, 8, 0, NULL, NULL), NDIS_STATUS_SUCCESS);
    assert_int_equal(nbs[1].DataLength, 28);
    NdisAdvanceNetBufferListDataStart(&nbl, 8, TRUE, NULL);
    assert_ptr_equal(nbs[0].MdlChain, &mdls[0]);
    assert_ptr_equal(nbs[1].MdlChain, &mdls[1]);
}

/* ---- pools and contexts ---------------------------------------------------------- */

static void test_ndis_pool_nbl_with_context_and_nb(void **state)
{
    (void)state;
    MDL mdl;
    NDIS_HANDLE pool = nbl_pool(TRUE, 32, 0);
    assert_non_null(pool);
    owfp_mdl_init_borrowed(&mdl, g_data, 64);

    PNET_BUFFER_LIST nbl = NdisAllocateNetBufferAndNetBufferList(pool, 16, 16, &mdl, 2, 10);
    assert_non_null(nbl);
    assert_int_equal(owfp_ndis_pool_outstanding(pool), 1);
    assert_ptr_equal(NdisGetPoolFromNetBufferList(nbl), pool);
    assert_null(NET_BUFFER_LIST_NEXT_NBL(nbl));
    PNET_BUFFER nb = NET_BUFFER_LIST_FIRST_NB(nbl);
    assert_non_null(nb);
    assert_null(NET_BUFFER_NEXT_NB(nb));
    assert_ptr_equal(NET_BUFFER_FIRST_MDL(nb), &mdl);
    assert_int_equal(NET_BUFFER_DATA_OFFSET(nb), 2);
    assert_int_equal(NET_BUFFER_DATA_LENGTH(nb), 10);
    assert_nb_consistent(nb);
    assert_ptr_equal(NdisGetDataBuffer(nb, 10, NULL, 1, 0), &g_data[2]);

    assert_int_equal(NET_BUFFER_LIST_CONTEXT_DATA_SIZE(nbl), 16);
    PUCHAR ctx = NET_BUFFER_LIST_CONTEXT_DATA_START(nbl);
    assert_int_equal((ULONG_PTR)ctx % MEMORY_ALLOCATION_ALIGNMENT, 0);
    memset(ctx, 0x5A, 16);

    /* The backfill absorbs the next 16 bytes without allocating. */
    owfp_alloc_fail_after(0);
    assert_int_equal(NdisAllocateNetBufferListContext(nbl, 16, 0, TAG), NDIS_STATUS_SUCCESS);
    owfp_alloc_fail_reset();
    assert_int_equal(NET_BUFFER_LIST_CONTEXT_DATA_SIZE(nbl), 32);
    assert_int_equal(NET_BUFFER_LIST_CONTEXT_DATA_START(nbl)[16], 0x5A);

    /* No room left: a new block in front, freed again when emptied. */
    PNET_BUFFER_LIST_CONTEXT own = nbl->Context;
    assert_int_equal(NdisAllocateNetBufferListContext(nbl, 32, 16, TAG), NDIS_STATUS_SUCCESS);
    assert_ptr_not_equal(nbl->Context, own);
    assert_int_equal(NET_BUFFER_LIST_CONTEXT_DATA_SIZE(nbl), 32);
    memset(NET_BUFFER_LIST_CONTEXT_DATA_START(nbl), 0x11, 32);
    NdisFreeNetBufferListContext(nbl, 32);
    assert_ptr_equal(nbl->Context, own);
    NdisFreeNetBufferListContext(nbl, 16);
    assert_int_equal(NET_BUFFER_LIST_CONTEXT_DATA_SIZE(nbl), 16);
    assert_int_equal(NET_BUFFER_LIST_CONTEXT_DATA_START(nbl)[0], 0x5A);

    /* A context left behind is released with the NBL. */
    assert_int_equal(NdisAllocateNetBufferListContext(nbl, 64, 0, TAG), NDIS_STATUS_SUCCESS);
    NdisFreeNetBufferList(nbl);
    assert_int_equal(owfp_ndis_pool_outstanding(pool), 0);
    NdisFreeNetBufferListPool(pool);
}

static void test_ndis_pool_outstanding_counts_nbls_and_nbs(void **state)
{
    (void)state;
    NDIS_HANDLE nbls = nbl_pool(FALSE, 0, 0);
    NDIS_HANDLE nbs = nb_pool(0);
    assert_non_null(nbls);
    assert_non_null(nbs);
    PNET_BUFFER_LIST l[3];
    PNET_BUFFER b[3];
    for (int i = 0; i < 3; i++) {
        l[i] = NdisAllocateNetBufferList(nbls, 0, 0);
        b[i] = NdisAllocateNetBuffer(nbs, NULL, 0, 0);
        assert_non_null(l[i]);
        assert_non_null(b[i]);
        assert_null(NET_BUFFER_LIST_FIRST_NB(l[i])); /* the pool has no NBs */
        assert_null(l[i]->Context);
        assert_ptr_equal(NdisGetPoolFromNetBuffer(b[i]), nbs);
    }
    assert_int_equal(owfp_ndis_pool_outstanding(nbls), 3);
    assert_int_equal(owfp_ndis_pool_outstanding(nbs), 3);

    /* The driver's own chaining of pool NBs into an NBL. */
    l[0]->FirstNetBuffer = b[0];
    b[0]->Next = b[1];
    NdisFreeNetBufferList(l[1]);
    NdisFreeNetBuffer(b[2]);
    assert_int_equal(owfp_ndis_pool_outstanding(nbls), 2);
    assert_int_equal(owfp_ndis_pool_outstanding(nbs), 2);

    NdisFreeNetBufferList(l[0]); /* NBs from an NB pool stay allocated */
    assert_int_equal(owfp_ndis_pool_outstanding(nbs), 2);
    NdisFreeNetBuffer(b[0]);
    NdisFreeNetBuffer(b[1]);
    NdisFreeNetBufferList(l[2]);
    assert_int_equal(owfp_ndis_pool_outstanding(nbls), 0);
    assert_int_equal(owfp_ndis_pool_outstanding(nbs), 0);
    NdisFreeNetBufferListPool(nbls);
    NdisFreeNetBufferPool(nbs);
}

static void test_ndis_pool_freed_with_outstanding_nbl_lives_until_last_free(void **state)
{
    (void)state;
    NDIS_HANDLE pool = nbl_pool(TRUE, 0, 0);
    assert_non_null(pool);
    PNET_BUFFER_LIST a = NdisAllocateNetBufferList(pool, 16, 0);
    PNET_BUFFER_LIST b = NdisAllocateNetBufferList(pool, 0, 0);
    assert_non_null(a);
    assert_non_null(b);
    NdisFreeNetBufferListPool(pool);
    NdisFreeNetBufferListPool(pool); /* a second free must not drop a reference */
    assert_int_equal(owfp_ndis_pool_outstanding(pool), 2);
    NdisFreeNetBufferList(a);
    assert_int_equal(owfp_ndis_pool_outstanding(pool), 1);
    NdisFreeNetBufferList(b); /* releases the pool; ASan/LSan check the rest */
}

static void test_ndis_pool_rejects_bad_parameters_and_mismatched_requests(void **state)
{
    (void)state;
    NET_BUFFER_LIST_POOL_PARAMETERS params;
    memset(&params, 0, sizeof(params));
    params.Header.Type = 0x11;
    params.Header.Revision = 1;
    params.Header.Size = sizeof(params);
    assert_null(NdisAllocateNetBufferListPool(NULL, &params));
    params.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
    params.Header.Size = 4;
    assert_null(NdisAllocateNetBufferListPool(NULL, &params));
    params.Header.Size = sizeof(params);
    params.DataSize = 128; /* data without NBs */
    assert_null(NdisAllocateNetBufferListPool(NULL, &params));
    assert_null(NdisAllocateNetBufferListPool(NULL, NULL));
    assert_null(NdisAllocateNetBufferPool(NULL, NULL));

    MDL mdl;
    owfp_mdl_init_borrowed(&mdl, g_data, 8);
    NDIS_HANDLE no_nb = nbl_pool(FALSE, 0, 0);
    NDIS_HANDLE with_data = nbl_pool(TRUE, 0, 64);
    NDIS_HANDLE with_nb = nbl_pool(TRUE, 0, 0);
    NDIS_HANDLE nbs = nb_pool(0);
    assert_null(NdisAllocateNetBufferAndNetBufferList(no_nb, 0, 0, &mdl, 0, 8));
    assert_null(NdisAllocateNetBufferAndNetBufferList(with_data, 0, 0, &mdl, 0, 8));
    assert_null(NdisAllocateNetBufferAndNetBufferList(with_nb, 0, 0, NULL, 0, 8));
    assert_null(NdisAllocateNetBufferAndNetBufferList(nbs, 0, 0, &mdl, 0, 8));
    assert_null(NdisAllocateNetBufferList(with_nb, 0xFFFF, 16)); /* context too big */
    assert_null(NdisAllocateNetBuffer(with_nb, &mdl, 0, 8));
    assert_null(NdisAllocateNetBufferMdlAndData(nbs)); /* pool has no DataSize */
    assert_int_equal(owfp_ndis_pool_outstanding(with_nb), 0);
    NdisFreeNetBufferListPool(no_nb);
    NdisFreeNetBufferListPool(with_data);
    NdisFreeNetBufferListPool(with_nb);
    NdisFreeNetBufferPool(nbs);
}

static void test_ndis_pool_data_size_gives_nb_with_its_own_data(void **state)
{
    (void)state;
    NDIS_HANDLE nbls = nbl_pool(TRUE, 0, 64);
    NDIS_HANDLE nbs = nb_pool(32);
    PNET_BUFFER_LIST nbl = NdisAllocateNetBufferList(nbls, 0, 0);
    assert_non_null(nbl);
    PNET_BUFFER nb = NET_BUFFER_LIST_FIRST_NB(nbl);
    assert_non_null(nb);
    assert_non_null(NET_BUFFER_FIRST_MDL(nb));
    assert_int_equal(NET_BUFFER_DATA_LENGTH(nb), 64);
    assert_nb_consistent(nb);
    PUCHAR data = NdisGetDataBuffer(nb, 64, NULL, 1, 0);
    assert_non_null(data);
    memset(data, 0x42, 64);
    NdisFreeNetBuffer(nb); /* belongs to the NBL: ignored */
    assert_int_equal(owfp_ndis_pool_outstanding(nbls), 1);
    NdisFreeNetBufferList(nbl);

    nb = NdisAllocateNetBufferMdlAndData(nbs);
    assert_non_null(nb);
    assert_int_equal(NET_BUFFER_DATA_LENGTH(nb), 32);
    assert_nb_consistent(nb);
    memset(NdisGetDataBuffer(nb, 32, NULL, 1, 0), 0x24, 32);
    NdisAdvanceNetBufferDataStart(nb, 14, TRUE, NULL); /* its MDL is not a retreat MDL */
    assert_non_null(NET_BUFFER_FIRST_MDL(nb));
    assert_nb_consistent(nb);
    NdisFreeNetBuffer(nb);
    NdisFreeNetBufferListPool(nbls);
    NdisFreeNetBufferPool(nbs);
}

static void test_ndis_free_ignores_engine_owned_descriptors(void **state)
{
    (void)state;
    MDL mdl;
    NET_BUFFER nb;
    NET_BUFFER_LIST nbl;
    owfp_nb_init(&nb, owfp_mdl_init_borrowed(&mdl, g_data, 16), 0, 16);
    owfp_nbl_init(&nbl, &nb);
    NdisFreeNetBuffer(&nb); /* a callout freeing what it does not own */
    NdisFreeNetBufferList(&nbl);
    NdisFreeNetBufferList(NULL);
    NdisFreeNetBuffer(NULL);
    assert_ptr_equal(nbl.FirstNetBuffer, &nb);
    assert_ptr_equal(nb.MdlChain, &mdl);
}

static void test_ndis_context_added_to_engine_nbl_is_released(void **state)
{
    (void)state;
    NET_BUFFER_LIST nbl;
    owfp_nbl_init(&nbl, NULL);
    assert_int_equal(NdisAllocateNetBufferListContext(&nbl, 16, 0, TAG), NDIS_STATUS_SUCCESS);
    NdisFreeNetBufferListContext(&nbl, 16); /* emptied: freed at once */
    assert_null(nbl.Context);

    assert_int_equal(NdisAllocateNetBufferListContext(&nbl, 16, 16, TAG), NDIS_STATUS_SUCCESS);
    assert_int_equal(NdisAllocateNetBufferListContext(&nbl, 48, 0, TAG), NDIS_STATUS_SUCCESS);
    owfp_nbl_free_contexts(&nbl); /* what the callout forgot */
    assert_null(nbl.Context);
}

static void test_ndis_nbl_accessor_macros_reach_fields(void **state)
{
    (void)state;
    NET_BUFFER_LIST nbl;
    owfp_nbl_init(&nbl, NULL);
    NET_BUFFER_LIST_STATUS(&nbl) = NDIS_STATUS_RESOURCES;
    assert_int_equal(nbl.Status, NDIS_STATUS_RESOURCES);
    assert_false(NT_SUCCESS(NET_BUFFER_LIST_STATUS(&nbl)));
    NET_BUFFER_LIST_FLAGS(&nbl) = 0x10;
    assert_int_equal(nbl.Flags, 0x10);
    NdisSetNblFlag(&nbl, 0x3);
    assert_true(NdisTestNblFlag(&nbl, 0x1));
    assert_true(NdisTestNblFlags(&nbl, 0x3));
    NdisClearNblFlag(&nbl, 0x1);
    assert_false(NdisTestNblFlags(&nbl, 0x3));
    assert_int_equal(NET_BUFFER_LIST_NBL_FLAGS(&nbl), 0x2);
    NET_BUFFER_LIST_INFO(&nbl, WfpNetBufferListInfo) = &nbl;
    assert_ptr_equal(nbl.NetBufferListInfo[10], &nbl);
    assert_int_equal(MaxNetBufferListInfo, 27);
}

/* ---- generic objects and allocation failure ---------------------------------------- */

static void test_ndis_generic_object_allocate_and_free(void **state)
{
    (void)state;
    struct _DRIVER_OBJECT *driver = (struct _DRIVER_OBJECT *)(void *)g_data;
    PNDIS_GENERIC_OBJECT obj = NdisAllocateGenericObject(driver, TAG, 24);
    assert_non_null(obj);
    assert_int_equal(obj->Header.Type, NDIS_OBJECT_TYPE_DEFAULT);
    assert_int_equal(obj->Header.Size, sizeof(NDIS_GENERIC_OBJECT));
    assert_ptr_equal(obj->DriverObject, driver);
    PUCHAR extra = (PUCHAR)(obj + 1);
    for (int i = 0; i < 24; i++)
        assert_int_equal(extra[i], 0);

    /* The usual WFP sample pattern: the object is the pools' NdisHandle. */
    NET_BUFFER_LIST_POOL_PARAMETERS params;
    memset(&params, 0, sizeof(params));
    params.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
    params.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    params.Header.Size = NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    params.fAllocateNetBuffer = TRUE;
    params.PoolTag = TAG;
    NDIS_HANDLE pool = NdisAllocateNetBufferListPool(obj, &params);
    assert_non_null(pool);
    NdisFreeNetBufferListPool(pool);
    NdisFreeGenericObject(obj);
}

static void test_ndis_allocation_failure_returns_null_and_leaks_nothing(void **state)
{
    (void)state;
    MDL mdl;
    NET_BUFFER nb;
    NET_BUFFER_LIST engine_nbl;
    owfp_nb_init(&nb, owfp_mdl_init_borrowed(&mdl, g_data, 16), 0, 16);
    owfp_nbl_init(&engine_nbl, &nb);
    NDIS_HANDLE nbls = nbl_pool(TRUE, 0, 0);
    NDIS_HANDLE data_nbls = nbl_pool(TRUE, 0, 32);
    NDIS_HANDLE nbs = nb_pool(0);
    NDIS_HANDLE data_nbs = nb_pool(32);
    assert_non_null(nbls);
    assert_non_null(data_nbls);
    assert_non_null(nbs);
    assert_non_null(data_nbs);

    owfp_alloc_fail_after(0);
    assert_null(nbl_pool(TRUE, 0, 0));
    assert_null(nb_pool(0));
    assert_null(NdisAllocateNetBufferList(nbls, 16, 16));
    assert_null(NdisAllocateNetBufferList(data_nbls, 0, 0));
    assert_null(NdisAllocateNetBufferAndNetBufferList(nbls, 0, 0, &mdl, 0, 16));
    assert_null(NdisAllocateNetBuffer(nbs, &mdl, 0, 16));
    assert_null(NdisAllocateNetBufferMdlAndData(data_nbs));
    assert_int_equal(NdisAllocateNetBufferListContext(&engine_nbl, 16, 0, TAG), NDIS_STATUS_RESOURCES);
    assert_null(engine_nbl.Context);
    assert_int_equal(NdisRetreatNetBufferDataStart(&nb, 4, 0, NULL), NDIS_STATUS_RESOURCES);
    assert_null(IoAllocateMdl(g_data, 16, FALSE, FALSE, NULL));
    assert_null(NdisAllocateMdl(NULL, g_data, 16));
    assert_null(NdisAllocateGenericObject(NULL, TAG, 0));
    assert_true(owfp_alloc_failures() >= 12);
    owfp_alloc_fail_reset();

    /* Failed calls changed nothing they were given. */
    assert_ptr_equal(nb.MdlChain, &mdl);
    assert_int_equal(nb.DataOffset, 0);
    assert_int_equal(nb.DataLength, 16);
    assert_nb_consistent(&nb);
    assert_int_equal(owfp_ndis_pool_outstanding(nbls), 0);
    assert_int_equal(owfp_ndis_pool_outstanding(data_nbls), 0);
    assert_int_equal(owfp_ndis_pool_outstanding(nbs), 0);
    assert_int_equal(owfp_ndis_pool_outstanding(data_nbs), 0);
    NdisFreeNetBufferListPool(nbls);
    NdisFreeNetBufferListPool(data_nbls);
    NdisFreeNetBufferPool(nbs);
    NdisFreeNetBufferPool(data_nbs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_ndis_borrowed_mdl_points_at_original_bytes, setup),
        cmocka_unit_test_setup(test_ndis_io_allocate_mdl_describes_range_without_copy, setup),
        cmocka_unit_test_setup(test_ndis_io_build_partial_mdl_describes_subrange, setup),
        cmocka_unit_test_setup(test_ndis_nb_fields_alias_documented_headers, setup),
        cmocka_unit_test_setup(test_ndis_nb_init_derives_current_mdl_at_boundaries, setup),
        cmocka_unit_test_setup(test_ndis_traversal_macros_walk_chain_of_nbs_and_mdls, setup),
        cmocka_unit_test_setup(test_ndis_get_data_buffer_contiguous_is_zero_copy, setup),
        cmocka_unit_test_setup(test_ndis_get_data_buffer_across_mdl_boundary_copies_to_storage, setup),
        cmocka_unit_test_setup(test_ndis_get_data_buffer_insufficient_data_returns_null, setup),
        cmocka_unit_test_setup(test_ndis_get_data_buffer_misaligned_bytes_are_copied, setup),
        cmocka_unit_test_setup(test_ndis_advance_retreat_round_trip_across_mdls, setup),
        cmocka_unit_test_setup(test_ndis_retreat_beyond_backfill_allocates_mdl_in_front, setup),
        cmocka_unit_test_setup(test_ndis_retreat_uses_partial_backfill_then_allocates_shortfall, setup),
        cmocka_unit_test_setup(test_ndis_retreat_on_empty_nb_allocates_first_mdl, setup),
        cmocka_unit_test_setup(test_ndis_retreat_and_advance_use_driver_mdl_handlers, setup),
        cmocka_unit_test_setup(test_ndis_advance_past_data_length_stops_at_end, setup),
        cmocka_unit_test_setup(test_ndis_nbl_retreat_undoes_earlier_nbs_when_one_fails, setup),
        cmocka_unit_test_setup(test_ndis_pool_nbl_with_context_and_nb, setup),
        cmocka_unit_test_setup(test_ndis_pool_outstanding_counts_nbls_and_nbs, setup),
        cmocka_unit_test_setup(test_ndis_pool_freed_with_outstanding_nbl_lives_until_last_free, setup),
        cmocka_unit_test_setup(test_ndis_pool_rejects_bad_parameters_and_mismatched_requests, setup),
        cmocka_unit_test_setup(test_ndis_pool_data_size_gives_nb_with_its_own_data, setup),
        cmocka_unit_test_setup(test_ndis_free_ignores_engine_owned_descriptors, setup),
        cmocka_unit_test_setup(test_ndis_context_added_to_engine_nbl_is_released, setup),
        cmocka_unit_test_setup(test_ndis_nbl_accessor_macros_reach_fields, setup),
        cmocka_unit_test_setup(test_ndis_generic_object_allocate_and_free, setup),
        cmocka_unit_test_setup(test_ndis_allocation_failure_returns_null_and_leaks_nothing, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
